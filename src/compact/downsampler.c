/*
 * downsampler.c — downsampling passes over a bucket (see downsampler.h).
 */
#include "compact/downsampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/hmap.h"
#include "base/log.h"
#include "block/shipper.h"
#include "compact/blockio.h"
#include "compact/cmetrics.h"
#include "tsdb/blockmerge.h"
#include "tsdb/downsample.h"

static const char *res_label(int64_t res)
{
	return res == DOWNSAMPLE_RES_5M ? "300000" : "3600000";
}

/* The blocks a pass at res works on: indexes into l->v, in ULID order. */
static size_t eligible(const fetch_list_t *l, int64_t res, size_t *out)
{
	int64_t from = res == DOWNSAMPLE_RES_5M ? DOWNSAMPLE_RES_RAW : DOWNSAMPLE_RES_5M;
	int64_t min_span = res == DOWNSAMPLE_RES_5M ? DOWNSAMPLE_RANGE_5M : DOWNSAMPLE_RANGE_1H;
	/* Sources already downsampled to res. */
	hmap_t covered;
	hmap_init(&covered, 0);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].meta.resolution == res)
			for (size_t s = 0; s < l->v[i].meta.nsources; s++)
				hmap_put(&covered, str_c(l->v[i].meta.sources[s]), (void *)1);
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) {
		const fetched_block_t *b = &l->v[i];
		if (b->meta.resolution != from || b->meta.maxt - b->meta.mint < min_span ||
		    b->mark_ms[MARKER_NO_DOWNSAMPLE] >= 0)
			continue;
		bool all = b->meta.nsources > 0;
		for (size_t s = 0; s < b->meta.nsources && all; s++)
			all = hmap_has(&covered, str_c(b->meta.sources[s]));
		if (!all)
			out[k++] = i;
	}
	hmap_release(&covered);
	return k;
}

size_t downsampler_todo(const fetch_list_t *l, int64_t res)
{
	size_t *idx = xcalloc(l->n + 1, sizeof *idx);
	size_t k = eligible(l, res, idx);
	free(idx);
	return k;
}

typedef struct job {
	const downsampler_env_t *env;
	const fetched_block_t *b;
	int64_t res;
	int rc;
	bool marked; /* unreadable: marked no-downsample */
	bool written;
	err_t err;
} job_t;

static bool keep_going(void *arg, uint64_t series)
{
	(void)series;
	return !(arg && atomic_load((atomic_bool *)arg));
}

static void run_one(void *arg, size_t i)
{
	job_t *j = &((job_t *)arg)[i];
	const fetched_block_t *fb = j->b;
	uint64_t t0 = clock_mono_ns();
	metric_inc(metric_with(cmetrics.downsamples, res_label(j->res)));
	char dir[4096], in_dir[4200], out_dir[4200];
	snprintf(dir, sizeof dir, "%s/%s", j->env->work_dir, fb->ulid);
	snprintf(in_dir, sizeof in_dir, "%s/%s", dir, fb->ulid);
	snprintf(out_dir, sizeof out_dir, "%s/out", dir);
	log_info("downsampling block", "block", fb->ulid, "resolution", res_label(j->res));
	int rc = fsutil_rm_rf(dir, &j->err);
	if (!rc)
		rc = blockio_download(j->env->bkt, fb->ulid, in_dir, &j->err);
	block_t *in = NULL;
	int read_rc = 0;
	if (!rc && (read_rc = block_open(&in, in_dir, &j->err)) != 0)
		rc = read_rc;
	downsample_result_t res = {0};
	if (!rc) {
		block_meta_t m;
		meta_copy(&m,
		          &fb->meta); /* labels as filtered (replica labels gone), compaction section kept */
		m.resolution = j->res;
		m.has_thanos = true;
		free(m.source);
		m.source = xstrdup("compactor");
		rc = read_rc =
		    downsample_block(in, out_dir, j->res, &m, keep_going, j->env->stop, &res, &j->err);
		meta_release(&m);
	}
	block_close(in);
	if (!rc && !res.empty && (rc = blockmerge_verify(res.dir, &j->err)) != 0)
		log_error("downsampled block failed verification; not uploaded", "block", fb->ulid, "err",
		          j->err.msg);
	if (!rc && !res.empty) {
		const char *slash = strrchr(res.dir, '/');
		block_upload_opts_t uo = {.source = "compactor", .keep_source = true};
		rc = shipper_upload_block(j->env->bkt, out_dir, slash + 1, &uo, &j->err);
		j->written = rc == 0;
	}
	fsutil_rm_rf(dir, NULL);
	if (rc && read_rc && (read_rc == ERR_CORRUPT || read_rc == ERR_INVALID)) {
		/* Unreadable: mark it and go on (never halt). */
		err_t e2 = {0};
		if (cmetrics_mark(j->env->bkt, fb->ulid, MARKER_NO_DOWNSAMPLE, MARKER_REASON_CORRUPT,
		                  j->err.msg, &e2) == 0) {
			log_error("block cannot be downsampled; marked no-downsample", "block", fb->ulid,
			          "err", j->err.msg);
			j->marked = true;
			rc = 0;
		}
	}
	j->rc = rc;
	if (rc) {
		metric_inc(metric_with(cmetrics.downsample_failures, res_label(j->res)));
		if (rc != ERR_CANCELED)
			log_error("downsampling failed; retried next iteration", "block", fb->ulid, "err",
			          j->err.msg);
		return;
	}
	double secs = clock_since_s(t0);
	metric_observe(metric_with(cmetrics.downsample_duration, res_label(j->res)), secs);
	if (j->written) {
		char a[32], b[32], c[32];
		snprintf(a, sizeof a, "%llu", (unsigned long long)res.samples_in);
		snprintf(b, sizeof b, "%llu", (unsigned long long)res.samples_out);
		snprintf(c, sizeof c, "%.3fs", secs);
		log_info("downsampled block", "block", fb->ulid, "resolution", res_label(j->res), "into",
		         strrchr(res.dir, '/') + 1, "samples_in", a, "samples_out", b, "duration", c);
	}
}

int downsampler_pass(const downsampler_env_t *env, const fetch_list_t *l, int64_t res, size_t *done,
                     err_t *err)
{
	cmetrics_init();
	*done = 0;
	size_t *idx = xcalloc(l->n + 1, sizeof *idx);
	size_t k = eligible(l, res, idx);
	metric_set(metric_with(cmetrics.todo_downsample_blocks, res_label(res)), (double)k);
	job_t *jobs = xcalloc(k + 1, sizeof *jobs);
	for (size_t i = 0; i < k; i++)
		jobs[i] = (job_t){.env = env, .b = &l->v[idx[i]], .res = res};
	workers_parallel_for(env->pool, k, run_one, jobs);
	int first = 0;
	size_t left = 0;
	for (size_t i = 0; i < k; i++) {
		if (jobs[i].written)
			(*done)++;
		if (jobs[i].rc) {
			left++;
			if (!first) {
				first = jobs[i].rc;
				*err = jobs[i].err;
			}
		}
	}
	metric_set(metric_with(cmetrics.todo_downsample_blocks, res_label(res)), (double)left);
	free(jobs);
	free(idx);
	return first;
}
