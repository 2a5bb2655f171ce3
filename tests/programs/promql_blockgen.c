/*
 * promql_blockgen — writes the PromQL benchmark dataset (issue 4) as one Prometheus TSDB block.
 *
 *   promql_blockgen OUT_DIR [--series-scale F] [--hours H]
 *
 * Series (sorted by labels, written in that order so chunks are laid out like a compacted block):
 *   x{code, handler, instance, job}       counters, 10 codes x 20 handlers x 50 instances x 10 jobs = 100,000
 *   mem_bytes{instance, job}              gauges, 500
 *   lat_seconds_bucket{handler, job, le}  classic histogram buckets (10 le), 2,000
 *   lat_seconds_count{handler, job}       200
 * Samples every 15s with a per-target phase and 0-3 ms scrape jitter, H hours (default 24) from
 * T0 = 1700006400000 (a 2h boundary). Counters grow by random integer increments, about 1 in 20
 * series resets once. Chunks are cut like Prometheus' head (2h chunk range), so one 24h block holds
 * what compaction of twelve 2h blocks would. Deterministic: same arguments, same samples.
 * Prints the block directory and "samples N" on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "tsdb/block.h"

#define T0 1700006400000ll

static uint64_t rng(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	uint64_t x = *s;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

typedef struct gseries {
	labels_t ls;
	int kind; /* 0 counter, 1 gauge, 2 bucket, 3 count */
	uint32_t target; /* job * 1000 + instance (phase) */
	double scale;
} gseries_t;

static int gs_cmp(const void *a, const void *b)
{
	return labels_cmp(&((const gseries_t *)a)->ls, &((const gseries_t *)b)->ls);
}

static labels_t mk(arena_t *a, int n, const char **kv)
{
	labels_t ls = {arena_alloc(a, (size_t)n * sizeof(label_t)), (size_t)n};
	for (int i = 0; i < n; i++)
		ls.v[i] = (label_t){str_c(arena_strdup(a, kv[2 * i])), str_c(arena_strdup(a, kv[2 * i + 1]))};
	if (labels_normalize(&ls))
		die("promql_blockgen: bad labels");
	return ls;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s OUT_DIR [--series-scale F] [--hours H]\n", argv[0]);
		return 2;
	}
	double scale = 1;
	int hours = 24;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--series-scale"))
			scale = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--hours"))
			hours = atoi(argv[i + 1]);
	}
	int ninst = (int)(50 * scale);
	if (ninst < 1)
		ninst = 1;
	if (hours < 1 || hours > 24 * 14) {
		fprintf(stderr, "%s: --hours must be 1..336\n", argv[0]);
		return 2;
	}
	arena_t a;
	arena_init(&a, 1 << 20);
	static const char *codes[] = {"200", "201", "204", "301", "400", "401", "403", "404", "500", "503"};
	static const char *les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"};
	size_t cap = (size_t)10 * 20 * (size_t)ninst * 10 + 10 * (size_t)ninst + 2200;
	gseries_t *s = xcalloc(cap, sizeof *s);
	size_t n = 0;
	char job[32], inst[32], h[32];
	for (int j = 0; j < 10; j++) {
		snprintf(job, sizeof job, "job-%d", j);
		for (int i = 0; i < ninst; i++) {
			snprintf(inst, sizeof inst, "10.0.%d.%d:9100", j, i);
			for (int hd = 0; hd < 20; hd++) {
				snprintf(h, sizeof h, "/api/v1/h%02d", hd);
				for (int c = 0; c < 10; c++) {
					const char *kv[] = {"__name__", "x", "code", codes[c], "handler", h, "instance", inst, "job", job};
					s[n++] = (gseries_t){mk(&a, 5, kv), 0, (uint32_t)(j * 1000 + i), c < 3 ? 20.0 / (hd + 1) : 0.5};
				}
			}
			const char *kv[] = {"__name__", "mem_bytes", "instance", inst, "job", job};
			s[n++] = (gseries_t){mk(&a, 3, kv), 1, (uint32_t)(j * 1000 + i), 1e9};
		}
		for (int hd = 0; hd < 20; hd++) {
			snprintf(h, sizeof h, "/api/v1/h%02d", hd);
			for (int l = 0; l < 10; l++) {
				const char *kv[] = {"__name__", "lat_seconds_bucket", "handler", h, "job", job, "le", les[l]};
				s[n++] = (gseries_t){mk(&a, 4, kv), 2, (uint32_t)(j * 1000 + hd), (double)(l + 1)};
			}
			const char *kv[] = {"__name__", "lat_seconds_count", "handler", h, "job", job};
			s[n++] = (gseries_t){mk(&a, 3, kv), 3, (uint32_t)(j * 1000 + hd), 10};
		}
	}
	qsort(s, n, sizeof *s, gs_cmp);
	size_t ns = (size_t)hours * 240;
	int64_t *t = xmalloc(ns * sizeof *t);
	double *v = xmalloc(ns * sizeof *v);
	block_writer_t *bw;
	err_t err = {0};
	if (block_writer_new(&bw, argv[1], NULL, &err)) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		return 1;
	}
	size_t total = 0;
	for (size_t k = 0; k < n; k++) {
		/* buckets and count of one (job, handler) share a random stream so buckets stay cumulative */
		uint64_t seed = s[k].kind >= 2 ? s[k].target * 0x9e3779b97f4a7c15ull + 3 : labels_hash(&s[k].ls) | 1;
		uint64_t phase_seed = s[k].target * 2654435761u + 7;
		int64_t phase = (int64_t)(rng(&phase_seed) % 15000);
		double val = s[k].kind >= 2 ? 0 : (double)(rng(&seed) % 100000);
		size_t reset_at = rng(&seed) % 20 == 0 ? (size_t)(rng(&seed) % ns) : (size_t)-1;
		for (size_t i = 0; i < ns; i++) {
			uint64_t r = rng(&seed);
			t[i] = T0 + phase + (int64_t)i * 15000 + (int64_t)(r & 3);
			switch (s[k].kind) {
			case 0:
				if (i == reset_at)
					val = 0;
				val += (double)((r >> 8) % (uint64_t)(s[k].scale * 10 + 1));
				v[i] = val;
				break;
			case 1:
				v[i] = s[k].scale + (double)((r >> 8) % 4096) * 4096;
				break;
			default:
				/* bucket le index l has scale l+1, the count scale 10: floor(inc*scale/10) grows with le */
				val += (double)(((r >> 8) % 21) * (uint64_t)s[k].scale / 10);
				v[i] = val;
				break;
			}
		}
		if (block_writer_add_series(bw, &s[k].ls, t, v, ns, &err)) {
			fprintf(stderr, "%s: %s\n", argv[0], err.msg);
			block_writer_abort(bw);
			return 1;
		}
		total += ns;
	}
	char out[4096];
	if (block_writer_finish(bw, NULL, out, &err)) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		return 1;
	}
	printf("%s\nseries %zu\nsamples %zu\n", out, n, total);
	free(t);
	free(v);
	free(s);
	arena_release(&a);
	return 0;
}
