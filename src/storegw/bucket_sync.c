/*
 * bucket_sync.c — the store gateway's bucket sync: the shared meta fetcher (block/fetcher.h: list,
 * meta.json, markers) with the time, label, consistency-delay and deletion-mark filters, then new
 * blocks loaded in parallel (index-header built or reused under data_dir), the block list swapped
 * and gone blocks dropped (references keep calls in flight safe); plus idle index-header unloading
 * and stats (see bucket_store.h, bucket_block.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/log.h"
#include "base/vec.h"
#include "storegw/bucket_block.h"

/* ================================ sync ================================ */

static void rm_block_dir(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, INDEXHEADER_FILE);
	unlink(path);
	snprintf(path, sizeof path, "%s/%s.tmp", dir, INDEXHEADER_FILE);
	unlink(path);
	snprintf(path, sizeof path, "%s/meta.json", dir);
	unlink(path);
	rmdir(dir);
}

typedef struct load_job {
	bucket_store_t *st;
	bucket_block_t *b;
	int rc;
	err_t err;
} load_job_t;

static void build_segments(bucket_block_t *b)
{
	VEC(char *) segs = {0};
	for (size_t i = 0; i < b->meta.nfiles; i++) {
		const char *rp = b->meta.files[i].rel_path;
		if (strncmp(rp, "chunks/", 7) == 0)
			VEC_PUSH(&segs, arena_printf(&b->arena, "%s/%s", b->ulid, rp));
	}
	if (!segs.n)
		for (size_t i = 0; i < b->meta.nsegment_files; i++)
			VEC_PUSH(&segs, arena_printf(&b->arena, "%s/chunks/%s", b->ulid, b->meta.segment_files[i]));
	if (segs.n) {
		b->segs = arena_memdup(&b->arena, segs.v, segs.n * sizeof(char *));
		b->nsegs = segs.n;
	}
	VEC_FREE(&segs);
}


static void load_one(void *arg)
{
	load_job_t *j = arg;
	bucket_block_t *b = j->b;
	err_t *err = &j->err;
	metric_inc(metric_with(bucket_metrics.loads));
	if ((j->rc = fsutil_mkdir_p(b->dir, err)))
		return;
	struct stat sb;
	if (stat(b->hdr_path, &sb) == 0 && sb.st_size > 0)
		return; /* warm: reuse; validated when first opened */
	char name[64];
	snprintf(name, sizeof name, "%s/index", b->ulid);
	int64_t size = -1;
	for (size_t i = 0; i < b->meta.nfiles; i++)
		if (strcmp(b->meta.files[i].rel_path, "index") == 0 && b->meta.files[i].size_bytes > 0)
			size = b->meta.files[i].size_bytes;
	j->rc = indexheader_build(j->st->cfg.bkt, name, size, b->hdr_path, err);
	if (!j->rc)
		atomic_fetch_add(&j->st->header_builds, 1);
}

typedef struct load_pool {
	load_job_t *jobs;
	size_t n;
	atomic_size_t next;
} load_pool_t;

static void *load_worker(void *arg)
{
	load_pool_t *p = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->n)
			return NULL;
		load_one(&p->jobs[i]);
	}
}

static void run_loads(load_job_t *jobs, size_t n, int conc)
{
	if (!n)
		return;
	if (conc <= 0)
		conc = 20;
	if ((size_t)conc > n)
		conc = (int)n;
	load_pool_t p = {jobs, n, 0};
	pthread_t *th = xcalloc((size_t)conc, sizeof *th);
	int started = 0;
	for (int i = 1; i < conc; i++) {
		if (pthread_create(&th[i], NULL, load_worker, &p) != 0)
			break;
		started++;
	}
	load_worker(&p);
	for (int i = 1; i <= started; i++)
		pthread_join(th[i], NULL);
	free(th);
}

static bucket_block_t *find_block(bucket_block_t **v, size_t n, const char *id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid]->ulid, id);
		if (c == 0)
			return v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int block_cmp_id(const void *a, const void *b)
{
	return strcmp((*(bucket_block_t *const *)a)->ulid, (*(bucket_block_t *const *)b)->ulid);
}

int bucket_store_sync(bucket_store_t *st, err_t *err)
{
	pthread_mutex_lock(&st->sync_mu);
	fetch_list_t l;
	int rc = block_fetcher_fetch(st->fetcher, &l, err);
	if (rc) {
		pthread_mutex_unlock(&st->sync_mu);
		return err_wrap(err, "bucket store sync");
	}
	fetch_filter_time(&l, st->cfg.min_time, st->cfg.max_time);
	if (st->cfg.select)
		fetch_filter_labels(&l, st->cfg.select, st->cfg.select_arg);
	int64_t now = clock_now_ms();
	fetch_filter_consistency(&l, st->cfg.consistency_delay_ms, now);
	fetch_filter_deleted(&l, st->cfg.ignore_deletion_marks_delay_ms, now);
	/* Current set (only this thread changes it). */
	pthread_mutex_lock(&st->mu);
	size_t ncur = st->nblocks;
	bucket_block_t **cur = xmemdup(st->blocks ? (void *)st->blocks : (void *)"", ncur * sizeof *cur + 1);
	pthread_mutex_unlock(&st->mu);

	VEC(bucket_block_t *) keep = {0};
	VEC(load_job_t) jobs = {0};
	for (size_t i = 0; i < l.n; i++) {
		fetched_block_t *fb = &l.v[i];
		bucket_block_t *old = find_block(cur, ncur, fb->ulid);
		if (old) {
			VEC_PUSH(&keep, old);
			continue;
		}
		bucket_block_t *b = xcalloc(1, sizeof *b);
		atomic_init(&b->refs, 1);
		b->st = st;
		memcpy(b->ulid, fb->ulid, sizeof b->ulid);
		arena_init(&b->arena, 1024);
		pthread_mutex_init(&b->mu, NULL);
		b->ext = fetched_block_labels(fb, &b->arena); /* views of the meta's strings, moved below */
		b->meta = fb->meta;
		memset(&fb->meta, 0, sizeof fb->meta);
		b->dir = arena_printf(&b->arena, "%s/%s", st->data_dir, b->ulid);
		b->hdr_path = arena_printf(&b->arena, "%s/%s", b->dir, INDEXHEADER_FILE);
		build_segments(b);
		load_job_t *j = VEC_ADD(&jobs);
		j->st = st;
		j->b = b;
	}
	run_loads(jobs.v, jobs.n, st->cfg.block_sync_concurrency);
	for (size_t i = 0; i < jobs.n; i++) {
		load_job_t *j = &jobs.v[i];
		if (j->rc) {
			metric_inc(metric_with(bucket_metrics.load_fail));
			atomic_fetch_add(&st->load_failures, 1);
			log_error("loading block failed; it is not served", "block", j->b->ulid, "err", j->err.msg);
			l.counts[FETCH_LOADED]--;
			l.counts[FETCH_FAILED]++;
			bucket_block_unref(j->b);
			continue;
		}
		VEC_PUSH(&keep, j->b);
	}
	VEC_FREE(&jobs);
	if (keep.n > 1)
		qsort(keep.v, keep.n, sizeof *keep.v, block_cmp_id);
	/* Swap, then release the dropped ones (calls in flight keep their own references). */
	pthread_mutex_lock(&st->mu);
	bucket_block_t **oldv = st->blocks;
	size_t oldn = st->nblocks;
	st->blocks = keep.v;
	st->nblocks = keep.n;
	pthread_mutex_unlock(&st->mu);
	for (size_t i = 0; i < oldn; i++) {
		if (find_block(st->blocks, st->nblocks, oldv[i]->ulid))
			continue;
		metric_inc(metric_with(bucket_metrics.drops));
		log_info("dropped block", "block", oldv[i]->ulid);
		rm_block_dir(oldv[i]->dir);
		bucket_block_unref(oldv[i]);
	}
	free(oldv);
	free(cur);
	fetch_list_publish(&l);
	fetch_list_release(&l);
	st->synced_once = true;
	metric_set(metric_with(bucket_metrics.loaded), (double)keep.n);
	pthread_mutex_unlock(&st->sync_mu);
	return 0;
}

void bucket_store_unload_idle(bucket_store_t *st)
{
	if (st->cfg.header_idle_timeout_ms <= 0)
		return;
	int64_t now = clock_now_ms();
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < st->nblocks; i++) {
		bucket_block_t *b = st->blocks[i];
		if (atomic_load(&b->refs) != 1)
			continue; /* a call holds it */
		pthread_mutex_lock(&b->mu);
		if (b->hdr && now - b->last_used_ms >= st->cfg.header_idle_timeout_ms) {
			indexheader_close(b->hdr);
			b->hdr = NULL;
			metric_inc(metric_with(bucket_metrics.hdr_unload));
		}
		pthread_mutex_unlock(&b->mu);
	}
	pthread_mutex_unlock(&st->mu);
}

void bucket_store_stats(bucket_store_t *st, bucket_store_stats_t *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&st->mu);
	out->blocks = st->nblocks;
	for (size_t i = 0; i < st->nblocks; i++) {
		pthread_mutex_lock(&st->blocks[i]->mu);
		out->headers_open += st->blocks[i]->hdr != NULL;
		pthread_mutex_unlock(&st->blocks[i]->mu);
	}
	pthread_mutex_unlock(&st->mu);
	out->header_builds = atomic_load(&st->header_builds);
	out->load_failures = atomic_load(&st->load_failures);
}

size_t bucket_store_block_ids(bucket_store_t *st, arena_t *a, const char ***out)
{
	pthread_mutex_lock(&st->mu);
	const char **v = ARENA_NEW_ARRAY(a, const char *, st->nblocks + 1);
	for (size_t i = 0; i < st->nblocks; i++)
		v[i] = arena_strdup(a, st->blocks[i]->ulid);
	size_t n = st->nblocks;
	pthread_mutex_unlock(&st->mu);
	*out = v;
	return n;
}
