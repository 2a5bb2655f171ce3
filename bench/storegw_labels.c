/*
 * storegw_labels — latency of the store gateway's LabelNames / LabelValues over many blocks, the
 * requests Grafana's label pickers send (`/api/v1/labels?match[]=...`, `/api/v1/label/<n>/values?
 * match[]=...`), in-process against a FILESYSTEM bucket.
 *
 *   storegw_labels [NBLOCKS [SERIES [RUNS]]]     (defaults 200, 500, 15; env STOREGW_LABELS_DIR keeps
 *                                                 the bucket there between runs instead of a temp dir,
 *                                                 STOREGW_LABELS_ONLY=<substring> runs only matching
 *                                                 requests)
 *
 * Writes NBLOCKS consecutive 2h blocks of SERIES series bench_metric{a (10 values), b (10 values), c
 * (SERIES/100 values)} with 12 samples each, then opens four stores over the bucket: read_concurrency 1
 * (blocks one after another) and 4 (the default), each with a 250 MiB index cache like `strata
 * store` (warm: every request is sent once first) and without one (every call reads postings and
 * series entries from the bucket). Answers are compared between the stores (the bench fails on any
 * difference); each request is sent RUNS times to each store; prints the median per request as
 * RESULT lines, in ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/clock.h"
#include "objstore/config.h"
#include "storegw/bucket_store.h"
#include "tsdb/block.h"

#define H2 (2 * 3600 * 1000ll)

static int write_blocks(const char *dir, long nblocks, long nseries, err_t *err)
{
	arena_t a;
	arena_init(&a, 1 << 16);
	labels_t *ls = xcalloc((size_t)nseries, sizeof *ls);
	long nc = nseries / 100, k = 0;
	char buf[16];
	for (int i = 0; i < 10; i++)
		for (int j = 0; j < 10; j++)
			for (long c = 0; c < nc; c++, k++) {
				label_t *l = arena_alloc(&a, 4 * sizeof *l);
				l[0] = (label_t){STR("__name__"), STR("bench_metric")};
				snprintf(buf, sizeof buf, "a%d", i);
				l[1] = (label_t){STR("a"), str_c(arena_strdup(&a, buf))};
				snprintf(buf, sizeof buf, "b%d", j);
				l[2] = (label_t){STR("b"), str_c(arena_strdup(&a, buf))};
				snprintf(buf, sizeof buf, "c%05ld", c);
				l[3] = (label_t){STR("c"), str_c(arena_strdup(&a, buf))};
				ls[k] = (labels_t){l, 4};
			}
	block_meta_t meta = {0};
	meta.has_thanos = true;
	meta_set_label(&meta, "cluster", "bench");
	meta.source = xstrdup("bench");
	int64_t t[12];
	double v[12];
	int rc = 0;
	for (long bi = 0; bi < nblocks && !rc; bi++) {
		block_writer_t *bw;
		if ((rc = block_writer_new(&bw, dir, NULL, err)))
			break;
		for (long s = 0; s < nseries && !rc; s++) {
			for (int i = 0; i < 12; i++) {
				t[i] = bi * H2 + i * 600000;
				v[i] = (double)(s + i);
			}
			rc = block_writer_add_series(bw, &ls[s], t, v, 12, err);
		}
		if (rc)
			block_writer_abort(bw);
		else
			rc = block_writer_finish(bw, &meta, NULL, err);
	}
	meta_release(&meta);
	free(ls);
	arena_release(&a);
	return rc;
}

typedef struct req {
	const char *name;  /* RESULT name */
	const char *label; /* NULL: label names */
	const char *mname[2], *mvalue[2];
	size_t nm;
} req_t;

static const req_t reqs[] = {
    {"names_match_one_a", NULL, {"a"}, {"a1"}, 1},
    {"values_c_match_a_b", "c", {"a", "b"}, {"a1", "b2"}, 2},
    {"values_b_match_metric", "b", {"__name__"}, {"bench_metric"}, 1},
    {"names_no_match", NULL, {0}, {0}, 0},
};
#define NREQ (sizeof reqs / sizeof *reqs)

static int call(store_t *st, const req_t *r, arena_t *a, store_strings_t *out, err_t *err)
{
	matcher_t ms[2];
	for (size_t i = 0; i < r->nm; i++)
		if (matcher_init(&ms[i], MATCH_EQ, str_c(r->mname[i]), str_c(r->mvalue[i]), err))
			return -1;
	store_label_req_t lr = {.mint = INT64_MIN, .maxt = INT64_MAX, .ms = ms, .nms = r->nm};
	int rc;
	if (r->label) {
		lr.name = str_c(r->label);
		rc = store_label_values(st, a, &lr, out, err);
	} else {
		rc = store_label_names(st, a, &lr, out, err);
	}
	for (size_t i = 0; i < r->nm; i++)
		matcher_release(&ms[i]);
	return rc;
}

static int dbl_cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
	long nblocks = argc > 1 ? atol(argv[1]) : 200, nseries = argc > 2 ? atol(argv[2]) : 500;
	int runs = argc > 3 ? atoi(argv[3]) : 15;
	if (nblocks < 1 || nseries < 100 || nseries % 100 || runs < 1) {
		fprintf(stderr, "usage: storegw_labels [NBLOCKS [SERIES (multiple of 100) [RUNS]]]\n");
		return 2;
	}
	err_t err = {0};
	char tmp[256], bdir[300], ddir[300];
	const char *keep = getenv("STOREGW_LABELS_DIR");
	if (keep) {
		snprintf(tmp, sizeof tmp, "%s", keep);
		mkdir(tmp, 0755);
	} else {
		snprintf(tmp, sizeof tmp, "/tmp/strata-storegw-labels.XXXXXX");
		if (!mkdtemp(tmp))
			die("mkdtemp failed");
	}
	snprintf(bdir, sizeof bdir, "%s/bucket", tmp);
	snprintf(ddir, sizeof ddir, "%s/data", tmp);
	struct stat sb;
	if (!keep || stat(bdir, &sb) != 0) {
		mkdir(bdir, 0755);
		uint64_t t0 = clock_mono_ns();
		if (write_blocks(bdir, nblocks, nseries, &err))
			die("storegw_labels: %s", err.msg);
		printf("%ld blocks of %ld series written in %.1f s\n", nblocks, nseries, clock_since_s(t0));
	}
	char yaml[512];
	snprintf(yaml, sizeof yaml, "type: FILESYSTEM\nconfig: {directory: %s}", bdir);
	bucket_t *b;
	if (objstore_from_config(yaml, strlen(yaml), &b, &err))
		die("storegw_labels: %s", err.msg);
	enum { NS = 4 };
	bucket_store_t *bs[NS];
	const int conc[NS] = {1, 4, 1, 4};
	const char *const kind[NS] = {"", "", "_nocache", "_nocache"};
	for (int i = 0; i < NS; i++) {
		bucket_store_config_t cfg = {.bkt = b,
		                             .data_dir = ddir,
		                             .min_time = INT64_MIN,
		                             .max_time = INT64_MAX,
		                             .index_cache_size = i < 2 ? 250u << 20 : 0,
		                             .read_concurrency = conc[i]};
		if (bucket_store_new(&bs[i], &cfg, &err) || bucket_store_sync(bs[i], &err))
			die("storegw_labels: %s", err.msg);
	}
	int bad = 0;
	double *ms = xcalloc((size_t)runs, sizeof *ms);
	const char *only = getenv("STOREGW_LABELS_ONLY");
	for (size_t q = 0; q < NREQ; q++) {
		if (only && !strstr(reqs[q].name, only))
			continue;
		arena_t a[NS];
		store_strings_t out[NS];
		for (int i = 0; i < NS; i++) {
			arena_init(&a[i], 0);
			if (call(bucket_store_base(bs[i]), &reqs[q], &a[i], &out[i], &err))
				die("storegw_labels: %s: %s", reqs[q].name, err.msg);
		}
		bool same = true;
		for (int i = 1; i < NS; i++) {
			bool eq = out[0].n == out[i].n;
			for (size_t k = 0; eq && k < out[0].n; k++)
				eq = str_eq(out[0].v[k], out[i].v[k]);
			same = same && eq;
		}
		for (size_t k = 1; same && k < out[0].n; k++)
			same = str_cmp(out[0].v[k - 1], out[0].v[k]) < 0;
		if (!same) {
			fprintf(stderr,
			        "storegw_labels: %s: the stores disagree or the answer is not sorted\n",
			        reqs[q].name);
			bad = 1;
		}
		size_t n = out[0].n;
		for (int i = 0; i < NS; i++)
			arena_release(&a[i]);
		for (int i = 0; i < NS; i++) {
			for (int r = 0; r < runs; r++) {
				arena_t ra;
				arena_init(&ra, 0);
				store_strings_t o;
				uint64_t t0 = clock_mono_ns();
				if (call(bucket_store_base(bs[i]), &reqs[q], &ra, &o, &err))
					die("storegw_labels: %s: %s", reqs[q].name, err.msg);
				ms[r] = clock_since_s(t0) * 1e3;
				arena_release(&ra);
			}
			qsort(ms, (size_t)runs, sizeof *ms, dbl_cmp);
			printf("RESULT storegw_labels_%s_conc%d%s %.2f ms (%ld blocks, %zu strings, median "
			       "of %d)\n",
			       reqs[q].name, conc[i], kind[i], ms[runs / 2], nblocks, n, runs);
		}
	}
	free(ms);
	for (int i = 0; i < NS; i++)
		bucket_store_free(bs[i]);
	bucket_free(b);
	if (!keep) {
		char cmd[400];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "storegw_labels: could not remove %s\n", tmp);
	}
	return bad;
}
