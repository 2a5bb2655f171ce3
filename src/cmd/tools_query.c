/*
 * tools_query.c — `strata tools query`: evaluate PromQL over the blocks of a local data directory and
 * print the result as the Prometheus HTTP API's JSON "data" object.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/duration.h"
#include "cmd/cmd.h"
#include "promql/engine.h"
#include "promql/merge.h"
#include "tsdb/block.h"
#include "tsdb/xor.h"

/* Float seconds (rounded to ms) or RFC 3339, like the HTTP API's time parameters. */
static bool parse_time(const char *s, int64_t *ms)
{
	double f;
	if (str_to_double(str_c(s), &f) && isfinite(f)) {
		*ms = (int64_t)llround(f * 1000);
		return true;
	}
	return rfc3339_parse_ms(str_c(s), ms);
}

static bool parse_step(const char *s, int64_t *ms)
{
	double f;
	if (str_to_double(str_c(s), &f) && isfinite(f)) {
		*ms = (int64_t)llround(f * 1000);
		return true;
	}
	err_t err = {0};
	return duration_parse(str_c(s), ms, &err) == 0;
}

int cmd_tools_query(int argc, char **argv)
{
	static char *data_dir, *time_s, *start_s, *end_s, *step_s;
	static int64_t lookback, timeout, max_samples, max_memory;
	static bool stats;
	flag_def_t defs[] = {
		{"data-dir", FLAG_STRING, &data_dir, NULL, "Directory holding TSDB blocks (<ULID>/meta.json)."},
		{"time", FLAG_STRING, &time_s, NULL, "Instant query evaluation time (unix seconds or RFC 3339); default now."},
		{"start", FLAG_STRING, &start_s, NULL, "Range query start (unix seconds or RFC 3339)."},
		{"end", FLAG_STRING, &end_s, NULL, "Range query end (unix seconds or RFC 3339)."},
		{"step", FLAG_STRING, &step_s, NULL, "Range query step (duration or float seconds)."},
		{"query.lookback-delta", FLAG_DURATION, &lookback, "5m", "Maximum lookback for instant selectors."},
		{"query.timeout", FLAG_DURATION, &timeout, "2m", "Maximum time to evaluate the query."},
		{"query.max-samples", FLAG_INT, &max_samples, "50000000", "Maximum samples loaded into memory at once."},
		{"query.max-memory", FLAG_BYTES, &max_memory, "0",
		 "Memory the query may hold at once; past it the query fails. 0 = a quarter of the machine's memory."},
		{"stats", FLAG_BOOL, &stats, "false", "Print query statistics on stderr as Prometheus's stats=all names them: peakSamples (in memory at once) and totalQueryableSamples (read)."},
	};
	flags_result_t res = {0};
	int exit_now;
	int rc = cmd_parse_flags(argv[0], "Evaluate a PromQL expression over local blocks.", defs, ARRAY_LEN(defs), argc,
				 argv, &res, &exit_now);
	if (exit_now)
		return rc;
	if (!data_dir || res.npos != 1) {
		fprintf(stderr, "%s: need --data-dir and exactly one EXPR argument\n", argv[0]);
		free(res.pos);
		return 2;
	}
	const char *expr = res.pos[0];
	int64_t start, end, step = 0;
	bool range = start_s || end_s || step_s;
	if (range) {
		if (!start_s || !end_s || !step_s || !parse_time(start_s, &start) || !parse_time(end_s, &end) ||
		    !parse_step(step_s, &step) || step <= 0) {
			fprintf(stderr, "%s: range queries need valid --start, --end and a positive --step\n", argv[0]);
			free(res.pos);
			return 2;
		}
		if (end < start) {
			fprintf(stderr, "%s: --end must not be before --start\n", argv[0]);
			free(res.pos);
			return 2;
		}
		if (((uint64_t)end - (uint64_t)start) / (uint64_t)step > 11000) { /* the HTTP API's limit */
			fprintf(stderr, "%s: bad_data: exceeded maximum resolution of 11,000 points per timeseries. Try "
					"decreasing the query resolution (?step=XX)\n", argv[0]);
			free(res.pos);
			return 1;
		}
	} else if (time_s) {
		if (!parse_time(time_s, &start)) {
			fprintf(stderr, "%s: invalid --time %s\n", argv[0], time_s);
			free(res.pos);
			return 2;
		}
		end = start;
	} else {
		start = end = clock_now_ms();
	}
	DIR *d = opendir(data_dir);
	if (!d) {
		fprintf(stderr, "%s: cannot open --data-dir %s: %s\n", argv[0], data_dir, strerror(errno));
		free(res.pos);
		return 1;
	}
	block_t **blocks = NULL;
	queryable_t **qs = NULL;
	size_t nb = 0, cap = 0;
	struct dirent *de;
	int ret = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char meta[4096], dir[4096];
		snprintf(dir, sizeof dir, "%s/%s", data_dir, de->d_name);
		snprintf(meta, sizeof meta, "%s/meta.json", dir);
		struct stat st;
		if (stat(meta, &st) != 0)
			continue;
		block_t *b;
		err_t err = {0};
		if (block_open(&b, dir, &err)) {
			fprintf(stderr, "%s: %s\n", argv[0], err.msg);
			ret = 1;
			break;
		}
		if (nb == cap) {
			cap = alloc_grow_cap(cap, nb + 1);
			blocks = xreallocarray(blocks, cap, sizeof *blocks);
			qs = xreallocarray(qs, cap, sizeof *qs);
		}
		blocks[nb] = b;
		qs[nb] = &b->q;
		nb++;
	}
	closedir(d);
	if (ret == 0) {
		promql_merge_t *m = promql_merge_new(qs, nb);
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		/* one worker per core (workers_parallel_for runs inline on a 1-thread pool; this thread
		 * claims work too) */
		workers_t *w = ncpu > 1 ? workers_new((int)ncpu) : NULL;
		promql_opts_t o = {.lookback_ms = lookback,
				   .timeout_ms = timeout,
				   .max_samples = max_samples,
				   .max_memory = (size_t)max_memory,
				   .workers = w,
				   .decode_chunks = xor_decode_chunks,
				   .stats = stats ? PROMQL_STATS_TOTAL : PROMQL_STATS_NONE};
		arena_t a;
		arena_init(&a, 1 << 16);
		promql_result_t r;
		err_t err = {0};
		if (promql_query(&o, promql_merge_queryable(m), &a, str_c(expr), start, end, step, &r, &err)) {
			fprintf(stderr, "%s: %s: %s\n", argv[0], r.error_type ? r.error_type : "error", err.msg);
			ret = 1;
		} else {
			buf_t b;
			buf_init(&b);
			promql_result_json(&b, &r);
			buf_putc(&b, '\n');
			fwrite(b.p, 1, b.n, stdout);
			buf_release(&b);
			if (stats)
				fprintf(stderr, "peakSamples %lld\ntotalQueryableSamples %lld\n", (long long)r.samples_peak,
					(long long)r.samples_total);
		}
		arena_release(&a);
		if (w)
			workers_free(w);
		promql_merge_free(m);
	}
	for (size_t i = 0; i < nb; i++)
		block_close(blocks[i]);
	free(blocks);
	free(qs);
	free(res.pos);
	return ret;
}
