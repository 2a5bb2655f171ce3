/*
 * bucket_sync.c — the store gateway's bucket sync: list block directories, read new meta.json files,
 * apply time/label filters and deletion marks, load new blocks in parallel (index-header built or
 * reused under data_dir), swap the block list and drop gone blocks (references keep calls in flight
 * safe); plus idle index-header unloading and stats (see bucket_store.h, bucket_block.h).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/vec.h"
#include "storegw/bucket_block.h"

/* ================================ sync ================================ */

static int collect_ulids(void *arg, const char *name)
{
	VEC(char *) *ids = arg;
	size_t n = strlen(name);
	if (n != ULID_LEN + 1 || name[ULID_LEN] != '/')
		return 0;
	char id[ULID_LEN + 1];
	memcpy(id, name, ULID_LEN);
	id[ULID_LEN] = 0;
	if (ulid_valid(id))
		VEC_PUSH(ids, xstrdup(id));
	return 0;
}

int bucket_mkdir_p(const char *path, err_t *err)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			int rc = err_errno(err, "mkdir %s", p);
			free(p);
			return rc;
		}
		*s = '/';
	}
	int rc = 0;
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		rc = err_errno(err, "mkdir %s", p);
	free(p);
	return rc;
}

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

/* Deletion mark: *marked_ms = deletion time in ms, or -1 when there is none. */
static int read_deletion_mark(bucket_t *bkt, const char *ulid, int64_t *marked_ms, err_t *err)
{
	char name[64];
	snprintf(name, sizeof name, "%s/deletion-mark.json", ulid);
	buf_t d = BUF_INIT;
	*marked_ms = -1;
	int rc = bucket_get(bkt, name, &d, err);
	if (rc == ERR_NOT_FOUND) {
		buf_release(&d);
		err_clear(err);
		return 0;
	}
	if (rc) {
		buf_release(&d);
		return rc;
	}
	json_error_t je;
	json_t *j = json_loadb(d.p, d.n, 0, &je);
	buf_release(&d);
	json_t *t = j ? json_object_get(j, "deletion_time") : NULL;
	if (!j || !json_is_integer(t)) {
		json_decref(j);
		return err_set(err, ERR_CORRUPT, "%s: malformed deletion mark (need integer deletion_time)", name);
	}
	*marked_ms = (int64_t)json_integer_value(t) * 1000;
	json_decref(j);
	return 0;
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
	if ((j->rc = bucket_mkdir_p(b->dir, err)))
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

/* Meta from the local cache (data_dir/<id>/meta.json) or the bucket (then cached). 1 = partial. */
static int fetch_meta(bucket_store_t *st, const char *id, block_meta_t *m, err_t *err)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/%s", st->data_dir, id);
	if (meta_read(m, dir, err) == 0 && strcmp(m->ulid, id) == 0)
		return 0;
	meta_release(m);
	memset(m, 0, sizeof *m);
	err_clear(err);
	char name[64];
	snprintf(name, sizeof name, "%s/meta.json", id);
	buf_t d = BUF_INIT;
	int rc = bucket_get(st->cfg.bkt, name, &d, err);
	if (rc == ERR_NOT_FOUND) {
		buf_release(&d);
		return 1;
	}
	if (!rc)
		rc = meta_parse(m, d.p, d.n, name, err);
	if (!rc && strcmp(m->ulid, id) != 0)
		rc = err_set(err, ERR_CORRUPT, "%s: ulid %s does not match its directory", name, m->ulid);
	if (!rc && bucket_mkdir_p(dir, NULL) == 0) {
		char path[4200], tmp[4200];
		snprintf(path, sizeof path, "%s/meta.json", dir);
		snprintf(tmp, sizeof tmp, "%s/meta.json.tmp", dir);
		FILE *f = fopen(tmp, "w");
		if (f) {
			bool ok = fwrite(d.p, 1, d.n, f) == d.n;
			ok = fclose(f) == 0 && ok;
			if (!ok || rename(tmp, path) != 0)
				unlink(tmp);
		}
	}
	buf_release(&d);
	return rc;
}

enum { ST_LOADED, ST_PARTIAL, ST_FAILED, ST_MARKED, ST_TIME, ST_LABEL, ST_DOWNSAMPLED, ST_N };
static const char *const state_names[ST_N] = {"loaded", "partial", "failed", "marked-for-deletion",
					      "time-excluded", "label-excluded", "downsampled-excluded"};

int bucket_store_sync(bucket_store_t *st, err_t *err)
{
	pthread_mutex_lock(&st->sync_mu);
	metric_inc(metric_with(bucket_metrics.syncs));
	VEC(char *) ids = {0};
	int rc = bucket_iter(st->cfg.bkt, "", 0, collect_ulids, &ids, err);
	if (rc) {
		metric_inc(metric_with(bucket_metrics.sync_fail));
		for (size_t i = 0; i < ids.n; i++)
			free(ids.v[i]);
		VEC_FREE(&ids);
		pthread_mutex_unlock(&st->sync_mu);
		return err_wrap(err, "bucket store sync");
	}
	/* Current set (only this thread changes it). */
	pthread_mutex_lock(&st->mu);
	size_t ncur = st->nblocks;
	bucket_block_t **cur = xmemdup(st->blocks ? (void *)st->blocks : (void *)"", ncur * sizeof *cur + 1);
	pthread_mutex_unlock(&st->mu);

	size_t counts[ST_N] = {0};
	VEC(bucket_block_t *) keep = {0};
	VEC(load_job_t) jobs = {0};
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < ids.n; i++) {
		const char *id = ids.v[i];
		err_t e = {0};
		int64_t marked;
		bucket_block_t *old = find_block(cur, ncur, id);
		if (read_deletion_mark(st->cfg.bkt, id, &marked, &e))
			log_warn("reading deletion mark failed", "block", id, "err", e.msg);
		if (marked >= 0 && now - marked >= st->cfg.ignore_deletion_marks_delay_ms) {
			counts[ST_MARKED]++;
			continue;
		}
		if (old) {
			VEC_PUSH(&keep, old);
			counts[ST_LOADED]++;
			continue;
		}
		block_meta_t m = {0};
		int mr = fetch_meta(st, id, &m, &e);
		if (mr == 1) {
			log_debug("block without meta.json ignored (partial upload)", "block", id);
			counts[ST_PARTIAL]++;
			continue;
		}
		if (mr) {
			log_warn("block meta.json unreadable, block ignored", "block", id, "err", e.msg);
			meta_release(&m);
			counts[ST_FAILED]++;
			continue;
		}
		if (m.maxt < st->cfg.min_time || m.mint > st->cfg.max_time) {
			meta_release(&m);
			counts[ST_TIME]++;
			continue;
		}
		if (m.resolution != 0) {
			log_info("downsampled block not served (raw resolution only)", "block", id);
			meta_release(&m);
			counts[ST_DOWNSAMPLED]++;
			continue;
		}
		bucket_block_t *b = xcalloc(1, sizeof *b);
		atomic_init(&b->refs, 1);
		b->st = st;
		memcpy(b->ulid, id, sizeof b->ulid);
		b->meta = m;
		arena_init(&b->arena, 1024);
		pthread_mutex_init(&b->mu, NULL);
		labels_t ext = {ARENA_NEW_ARRAY(&b->arena, label_t, m.nlabels + 1), 0};
		for (size_t k = 0; k < m.nlabels; k++)
			ext.v[ext.n++] = (label_t){str_c(m.labels[2 * k]), str_c(m.labels[2 * k + 1])};
		labels_normalize(&ext);
		b->ext = ext;
		if (st->cfg.select) {
			arena_t ta;
			arena_init(&ta, 0);
			labels_builder_t lb;
			labels_builder_init(&lb, &ta, &ext);
			labels_builder_set(&lb, STR("__block_id"), str_c(b->ulid));
			labels_t with_id = labels_builder_finish(&lb);
			bool sel = st->cfg.select(st->cfg.select_arg, &with_id);
			arena_release(&ta);
			if (!sel) {
				counts[ST_LABEL]++;
				bucket_block_unref(b);
				continue;
			}
		}
		b->dir = arena_printf(&b->arena, "%s/%s", st->data_dir, id);
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
			counts[ST_FAILED]++;
			bucket_block_unref(j->b);
			continue;
		}
		VEC_PUSH(&keep, j->b);
		counts[ST_LOADED]++;
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
	for (int s = 0; s < ST_N; s++)
		metric_set(metric_with(bucket_metrics.synced, state_names[s]), (double)counts[s]);
	for (size_t i = 0; i < ids.n; i++)
		free(ids.v[i]);
	VEC_FREE(&ids);
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
