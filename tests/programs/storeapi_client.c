/*
 * storeapi_client — drives the StoreAPI gRPC client (store/grpc_client.h) from the command line, for
 * interop tests against other gRPC stacks.
 *
 *   storeapi_client [--compress] [--timeout ms] ADDRESS info
 *   storeapi_client [--compress] [--timeout ms] ADDRESS series SELECTOR [MINT MAXT] [skip_chunks]
 *   storeapi_client [--compress] [--timeout ms] ADDRESS labels [SELECTOR]
 *   storeapi_client [--compress] [--timeout ms] ADDRESS values NAME [SELECTOR]
 *
 * Output (stdout), one line per item:
 *   info:   "labelset {a=\"b\"}" lines, then "range MINT MAXT"
 *   series: "{labels} chunks=N samples=M sum=S first=T last=T" (samples decoded within [MINT, MAXT];
 *           "chunks=N" counts the encoded chunks)
 *   labels/values: one string per line
 *   warnings: "warning: ..." lines
 * Errors go to stderr ("error: ...") with exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "model/selector.h"
#include "store/grpc_client.h"

static int fail(const err_t *err)
{
	fprintf(stderr, "error: %s\n", err->msg);
	return 1;
}

int main(int argc, char **argv)
{
	store_grpc_client_config_t cfg = {0};
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--compress") == 0)
			cfg.compress = true;
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			cfg.timeout_ms = cfg.info_timeout_ms = strtoll(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: storeapi_client [--compress] [--timeout ms] ADDRESS info|series|labels|values ...\n");
		return 2;
	}
	const char *addr = argv[i], *cmd = argv[i + 1];
	char **rest = argv + i + 2;
	int nrest = argc - i - 2;
	err_t err = {0};
	store_t *s;
	if (store_grpc_client_new(&s, addr, &cfg, &err))
		return fail(&err);
	arena_t a;
	arena_init(&a, 0);
	int status = 0;
	matcher_t *ms = NULL;
	size_t nms = 0;
	buf_t b = BUF_INIT;
	if (strcmp(cmd, "info") == 0) {
		store_info_t info;
		if (store_info(s, &a, &info, &err)) {
			status = fail(&err);
			goto out;
		}
		for (size_t k = 0; k < info.nlabel_sets; k++) {
			buf_reset(&b);
			labels_format(&b, &info.label_sets[k]);
			printf("labelset %s\n", b.p);
		}
		printf("range %lld %lld\n", (long long)info.mint, (long long)info.maxt);
		printf("component %s\n", info.component_type ? info.component_type : "-");
	} else if (strcmp(cmd, "series") == 0 && nrest >= 1) {
		if (selector_parse(str_c(rest[0]), &ms, &nms, &err)) {
			status = fail(&err);
			goto out;
		}
		store_series_req_t req = {.mint = INT64_MIN, .maxt = INT64_MAX, .ms = ms, .nms = nms};
		if (nrest >= 3) {
			req.mint = strtoll(rest[1], NULL, 10);
			req.maxt = strtoll(rest[2], NULL, 10);
		}
		req.skip_chunks = nrest >= 4 && strcmp(rest[3], "skip_chunks") == 0;
		series_set_t *set;
		if (store_series(s, &a, &req, &set, &err)) {
			status = fail(&err);
			goto out;
		}
		int rc;
		while ((rc = series_set_next(set, &err)) == 1) {
			buf_reset(&b);
			labels_format(&b, series_set_labels(set));
			const chunk_t *cs;
			int nc = set->ops->chunks(set, &cs);
			sample_iter_t *it = series_set_samples(set);
			int64_t t[256], first = 0, last = 0;
			double v[256], sum = 0;
			long n = 0;
			int k;
			while ((k = sample_iter_next_batch(it, t, v, 256, &err)) > 0) {
				for (int j = 0; j < k; j++) {
					if (n++ == 0)
						first = t[j];
					last = t[j];
					sum += v[j];
				}
			}
			if (k < 0) {
				rc = k;
				break;
			}
			printf("%s chunks=%d samples=%ld sum=%g first=%lld last=%lld\n", b.p, nc, n, sum, (long long)first,
			       (long long)last);
		}
		const char *const *w;
		size_t nw = set->ops->warnings(set, &w);
		for (size_t k = 0; k < nw; k++)
			printf("warning: %s\n", w[k]);
		series_set_close(set);
		if (rc < 0)
			status = fail(&err);
	} else if ((strcmp(cmd, "labels") == 0) || (strcmp(cmd, "values") == 0 && nrest >= 1)) {
		bool values = cmd[0] == 'v';
		const char *sel = nrest > (values ? 1 : 0) ? rest[values ? 1 : 0] : NULL;
		if (sel && selector_parse(str_c(sel), &ms, &nms, &err)) {
			status = fail(&err);
			goto out;
		}
		store_label_req_t req = {.mint = INT64_MIN, .maxt = INT64_MAX, .ms = ms, .nms = nms};
		store_strings_t r;
		int rc;
		if (values) {
			req.name = str_c(rest[0]);
			rc = store_label_values(s, &a, &req, &r, &err);
		} else {
			rc = store_label_names(s, &a, &req, &r, &err);
		}
		if (rc) {
			status = fail(&err);
			goto out;
		}
		for (size_t k = 0; k < r.n; k++)
			printf("%.*s\n", STR_ARG(r.v[k]));
		for (size_t k = 0; k < r.nwarnings; k++)
			printf("warning: %s\n", r.warnings[k]);
	} else {
		fprintf(stderr, "unknown command %s\n", cmd);
		status = 2;
	}
out:
	fflush(stdout);
	if (ms)
		selector_free(ms, nms);
	buf_release(&b);
	arena_release(&a);
	store_free(s);
	return status;
}
