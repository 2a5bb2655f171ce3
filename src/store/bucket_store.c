/*
 * bucket_store.c — store gateway: bucket sync, refcounted blocks, and the Series / label paths over
 * range reads (see bucket_store.h).
 */
#include "store/bucket_store.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/varint.h"
#include "base/vec.h"
#include "store/indexcache.h"
#include "store/indexheader.h"
#include "tsdb/index.h"
#include "tsdb/meta.h"
#include "tsdb/postings.h"
#include "tsdb/xor.h"

#define POSTINGS_MERGE_GAP (512 * 1024) /* as Thanos: ranges closer than this are read as one */
#define SERIES_MERGE_GAP (64 * 1024)
#define SERIES_EST 4096                 /* bytes read per series entry when its end is unknown */
#define CHUNK_MERGE_GAP (16 * 1024)
#define CHUNK_EST 16000                 /* bytes read per chunk when its end is unknown */
#define BATCH_SERIES 1024
#define BATCH_BYTES (8u << 20)
#define FETCH_CONCURRENCY 16

/* ================================ metrics ================================ */

static metric_t *m_loads, *m_load_fail, *m_drops, *m_syncs, *m_sync_fail, *m_synced, *m_fetched, *m_fetched_bytes,
	*m_dropped, *m_get_all, *m_blocks_queried, *m_result_series, *m_hdr_load, *m_hdr_unload, *m_loaded;

static void init_metrics(void)
{
	m_loads = metrics_counter("thanos_bucket_store_block_loads_total",
				  "Total number of remote block loading attempts.", NULL);
	m_load_fail = metrics_counter("thanos_bucket_store_block_load_failures_total",
				      "Total number of failed remote block loading attempts.", NULL);
	m_drops = metrics_counter("thanos_bucket_store_block_drops_total", "Total number of local blocks that were dropped.",
				  NULL);
	m_syncs = metrics_counter("thanos_blocks_meta_syncs_total", "Total blocks metadata synchronization attempts.", NULL);
	m_sync_fail = metrics_counter("thanos_blocks_meta_sync_failures_total",
				      "Total blocks metadata synchronization failures.", NULL);
	m_synced = metrics_gauge("thanos_blocks_meta_synced", "Number of block metadata synced.", "state");
	m_fetched = metrics_counter("thanos_bucket_store_series_data_fetched_total",
				    "Items (postings lists, series entries, chunks) fetched from the bucket.", "data_type");
	m_fetched_bytes = metrics_counter("thanos_bucket_store_series_data_size_fetched_bytes_total",
					  "Bytes fetched from the bucket for Series/label calls.", "data_type");
	m_dropped = metrics_counter("thanos_bucket_store_queries_dropped_total",
				    "Number of queries that were dropped due to a limit.", "reason");
	m_get_all = metrics_histogram("thanos_bucket_store_series_get_all_duration_seconds",
				      "Time it takes until all per-block prepares and loads for a query are finished.",
				      NULL, NULL, 0);
	static const double qb[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
	m_blocks_queried = metrics_histogram("thanos_bucket_store_series_blocks_queried",
					     "Number of blocks in a bucket store that were touched to satisfy a query.",
					     NULL, qb, ARRAY_LEN(qb));
	static const double sb[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
	m_result_series = metrics_histogram("thanos_bucket_store_series_result_series",
					    "Number of series observed in the final result of a query.", NULL, sb,
					    ARRAY_LEN(sb));
	m_hdr_load = metrics_counter("thanos_bucket_store_indexheader_lazy_load_total",
				     "Total number of index-header lazy load operations.", NULL);
	m_loaded = metrics_gauge("thanos_bucket_store_blocks_loaded", "Number of currently loaded blocks.", NULL);
	m_hdr_unload = metrics_counter("thanos_bucket_store_indexheader_lazy_unload_total",
				       "Total number of index-header lazy unload operations.", NULL);
}

/* ================================ blocks ================================ */

typedef struct bs_block {
	atomic_int refs;
	bucket_store_t *st;
	char ulid[ULID_LEN + 1];
	block_meta_t meta;
	arena_t arena; /* ext labels, segment names, paths */
	labels_t ext;
	char *dir;      /* data_dir/<ULID> */
	char *hdr_path;
	char **segs;    /* chunk segment object names by position */
	size_t nsegs;
	pthread_mutex_t mu; /* guards hdr and last_used */
	indexheader_t *hdr;
	int64_t last_used_ms;
} bs_block_t;

struct bucket_store {
	store_t base;
	bucket_store_config_t cfg;
	char *data_dir;
	indexcache_t *cache;
	pthread_mutex_t mu; /* guards blocks */
	bs_block_t **blocks;
	size_t nblocks;
	pthread_mutex_t sync_mu;
	bool synced_once;
	atomic_int open_sets;
	atomic_llong pool_used;
	atomic_size_t header_builds, load_failures;
};

static void block_unref(bs_block_t *b)
{
	if (atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	indexheader_close(b->hdr);
	indexcache_drop_block(b->st->cache, b->ulid);
	meta_release(&b->meta);
	pthread_mutex_destroy(&b->mu);
	arena_release(&b->arena);
	free(b);
}

static void block_unref_cb(void *arg)
{
	block_unref(arg);
}

/* The block's index-header, opened (or rebuilt if missing/corrupt) on first use. */
static int block_header(bs_block_t *b, indexheader_t **out, err_t *err)
{
	pthread_mutex_lock(&b->mu);
	int rc = 0;
	if (!b->hdr) {
		rc = indexheader_open(&b->hdr, b->hdr_path, err);
		if (rc == ERR_CORRUPT || rc == ERR_NOT_FOUND) {
			log_warn("rebuilding index-header", "block", b->ulid, "err", err ? err->msg : "");
			char name[64];
			snprintf(name, sizeof name, "%s/index", b->ulid);
			rc = indexheader_build(b->st->cfg.bkt, name, -1, b->hdr_path, err);
			if (!rc) {
				atomic_fetch_add(&b->st->header_builds, 1);
				rc = indexheader_open(&b->hdr, b->hdr_path, err);
			}
		}
		if (!rc)
			metric_inc(metric_with(m_hdr_load));
	}
	b->last_used_ms = clock_now_ms();
	*out = b->hdr;
	pthread_mutex_unlock(&b->mu);
	if (rc)
		err_wrap(err, "block %s", b->ulid);
	return rc;
}

/* Snapshot of the loaded blocks overlapping [mint, maxt], each referenced until a is released. */
static size_t acquire_blocks(bucket_store_t *st, arena_t *a, int64_t mint, int64_t maxt, bs_block_t ***out)
{
	pthread_mutex_lock(&st->mu);
	bs_block_t **v = ARENA_NEW_ARRAY(a, bs_block_t *, st->nblocks + 1);
	size_t n = 0;
	for (size_t i = 0; i < st->nblocks; i++) {
		bs_block_t *b = st->blocks[i];
		if (b->meta.mint > maxt || b->meta.maxt <= mint)
			continue;
		atomic_fetch_add(&b->refs, 1);
		arena_on_release(a, block_unref_cb, b);
		v[n++] = b;
	}
	pthread_mutex_unlock(&st->mu);
	*out = v;
	return n;
}

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

static int mkdir_p(const char *path, err_t *err)
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
	bs_block_t *b;
	int rc;
	err_t err;
} load_job_t;

static void build_segments(bs_block_t *b)
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

static const char *segment_name(bs_block_t *b, arena_t *a, uint32_t pos)
{
	if (pos < b->nsegs)
		return b->segs[pos];
	return arena_printf(a, "%s/chunks/%06u", b->ulid, pos + 1); /* Prometheus numbering */
}

static void load_one(void *arg)
{
	load_job_t *j = arg;
	bs_block_t *b = j->b;
	err_t *err = &j->err;
	metric_inc(metric_with(m_loads));
	if ((j->rc = mkdir_p(b->dir, err)))
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

static bs_block_t *find_block(bs_block_t **v, size_t n, const char *id)
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
	return strcmp((*(bs_block_t *const *)a)->ulid, (*(bs_block_t *const *)b)->ulid);
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
	if (!rc && mkdir_p(dir, NULL) == 0) {
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
	metric_inc(metric_with(m_syncs));
	VEC(char *) ids = {0};
	int rc = bucket_iter(st->cfg.bkt, "", 0, collect_ulids, &ids, err);
	if (rc) {
		metric_inc(metric_with(m_sync_fail));
		for (size_t i = 0; i < ids.n; i++)
			free(ids.v[i]);
		VEC_FREE(&ids);
		pthread_mutex_unlock(&st->sync_mu);
		return err_wrap(err, "bucket store sync");
	}
	/* Current set (only this thread changes it). */
	pthread_mutex_lock(&st->mu);
	size_t ncur = st->nblocks;
	bs_block_t **cur = xmemdup(st->blocks ? (void *)st->blocks : (void *)"", ncur * sizeof *cur + 1);
	pthread_mutex_unlock(&st->mu);

	size_t counts[ST_N] = {0};
	VEC(bs_block_t *) keep = {0};
	VEC(load_job_t) jobs = {0};
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < ids.n; i++) {
		const char *id = ids.v[i];
		err_t e = {0};
		int64_t marked;
		bs_block_t *old = find_block(cur, ncur, id);
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
		bs_block_t *b = xcalloc(1, sizeof *b);
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
				block_unref(b);
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
			metric_inc(metric_with(m_load_fail));
			atomic_fetch_add(&st->load_failures, 1);
			log_error("loading block failed; it is not served", "block", j->b->ulid, "err", j->err.msg);
			counts[ST_FAILED]++;
			block_unref(j->b);
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
	bs_block_t **oldv = st->blocks;
	size_t oldn = st->nblocks;
	st->blocks = keep.v;
	st->nblocks = keep.n;
	pthread_mutex_unlock(&st->mu);
	for (size_t i = 0; i < oldn; i++) {
		if (find_block(st->blocks, st->nblocks, oldv[i]->ulid))
			continue;
		metric_inc(metric_with(m_drops));
		log_info("dropped block", "block", oldv[i]->ulid);
		rm_block_dir(oldv[i]->dir);
		block_unref(oldv[i]);
	}
	free(oldv);
	free(cur);
	for (int s = 0; s < ST_N; s++)
		metric_set(metric_with(m_synced, state_names[s]), (double)counts[s]);
	for (size_t i = 0; i < ids.n; i++)
		free(ids.v[i]);
	VEC_FREE(&ids);
	st->synced_once = true;
	metric_set(metric_with(m_loaded), (double)keep.n);
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
		bs_block_t *b = st->blocks[i];
		if (atomic_load(&b->refs) != 1)
			continue; /* a call holds it */
		pthread_mutex_lock(&b->mu);
		if (b->hdr && now - b->last_used_ms >= st->cfg.header_idle_timeout_ms) {
			indexheader_close(b->hdr);
			b->hdr = NULL;
			metric_inc(metric_with(m_hdr_unload));
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

/* ================================ per-call context ================================ */

typedef struct call {
	bucket_store_t *st;
	arena_t *a;
	int64_t bytes;      /* downloaded so far */
	err_t *err;
} call_t;

static int charge(call_t *c, int64_t n, const char *what)
{
	c->bytes += n;
	if (c->st->cfg.bytes_limit > 0 && c->bytes > c->st->cfg.bytes_limit) {
		metric_inc(metric_with(m_dropped, "bytes"));
		return err_set(c->err, ERR_LIMIT,
			       "bucket store: exceeded bytes limit while fetching %s: %lld bytes downloaded, limit %lld",
			       what, (long long)c->bytes, (long long)c->st->cfg.bytes_limit);
	}
	return 0;
}

/* One merged range read: [off, off+len) of object name. */
typedef struct span {
	int64_t off, end;
	char *data;
	int64_t got;
} span_t;

/* Items to read: each has a start and an estimated end; spans are merged when closer than gap. */
typedef struct want {
	int64_t start, end;
	size_t span; /* filled */
	size_t idx;  /* caller's index */
} want_t;

static int want_cmp(const void *a, const void *b)
{
	const want_t *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort wants, merge into spans and fetch them in parallel (one object). */
static int fetch_spans(call_t *c, const char *name, want_t *w, size_t n, int64_t gap, const char *what, span_t **out,
		       size_t *nout)
{
	qsort(w, n, sizeof *w, want_cmp);
	span_t *sp = ARENA_NEW_ARRAY(c->a, span_t, n + 1);
	size_t ns = 0;
	for (size_t i = 0; i < n; i++) {
		if (ns && w[i].start <= sp[ns - 1].end + gap) {
			if (w[i].end > sp[ns - 1].end)
				sp[ns - 1].end = w[i].end;
		} else {
			sp[ns++] = (span_t){w[i].start, w[i].end, NULL, 0};
		}
		w[i].span = ns - 1;
	}
	int64_t total = 0;
	for (size_t i = 0; i < ns; i++)
		total += sp[i].end - sp[i].off;
	int rc = charge(c, total, what);
	if (rc)
		return rc;
	bucket_range_t *r = ARENA_NEW_ARRAY(c->a, bucket_range_t, ns + 1);
	for (size_t i = 0; i < ns; i++) {
		sp[i].data = arena_alloc(c->a, (size_t)(sp[i].end - sp[i].off) + 1);
		r[i] = (bucket_range_t){.name = name, .off = sp[i].off, .len = sp[i].end - sp[i].off, .dst = sp[i].data};
	}
	if (ns && (rc = bucket_get_ranges(c->st->cfg.bkt, r, ns, FETCH_CONCURRENCY, c->err)))
		return rc;
	for (size_t i = 0; i < ns; i++)
		sp[i].got = r[i].got;
	metric_add(metric_with(m_fetched_bytes, what), (double)total);
	*out = sp;
	*nout = ns;
	return 0;
}

/* ================================ postings ================================ */

typedef struct pkey {
	str_t name, value;
	int64_t start, end;
	postings_t p;
} pkey_t;

typedef struct keylist {
	call_t *c;
	VEC(pkey_t) keys;
	const matcher_t *m;
	bool want;
	str_t name;
} keylist_t;

static bool add_matching(void *arg, str_t value, int64_t start, int64_t end)
{
	keylist_t *kl = arg;
	if (matcher_matches(kl->m, value) == kl->want)
		VEC_PUSH(&kl->keys, ((pkey_t){kl->name, value, start, end, {NULL, 0}}));
	return true;
}

/* Keys of one matcher (values for which match == want). */
static void matcher_keys(const indexheader_t *h, keylist_t *kl, const matcher_t *m, bool want)
{
	kl->m = m;
	kl->want = want;
	kl->name = m->name;
	const str_t *lits;
	int nl = want ? matcher_literal_values(m, &lits) : -1;
	if (nl >= 0) {
		for (int i = 0; i < nl; i++) {
			int64_t s, e;
			if (indexheader_postings_range(h, m->name, lits[i], &s, &e))
				VEC_PUSH(&kl->keys, ((pkey_t){m->name, lits[i], s, e, {NULL, 0}}));
		}
		return;
	}
	indexheader_each_value(h, m->name, add_matching, kl);
}

static str_t pkey_cache_key(arena_t *a, const pkey_t *k)
{
	char *p = arena_alloc(a, k->name.n + k->value.n + 1);
	memcpy(p, k->name.p, k->name.n);
	p[k->name.n] = '\xff';
	memcpy(p + k->name.n + 1, k->value.p, k->value.n);
	return str_from(p, k->name.n + k->value.n + 1);
}

/* Decode a postings body (count + ids) into p. */
static int decode_postings(call_t *c, bs_block_t *b, const uint8_t *body, size_t bl, int64_t off, postings_t *p)
{
	uint32_t n = be32_get(body);
	if ((uint64_t)n * 4 + 4 != bl)
		return err_set(c->err, ERR_CORRUPT, "block %s: index: offset %lld: postings list of %u entries does not fit its length %zu",
			       b->ulid, (long long)off, n, bl);
	p->v = arena_alloc(c->a, (size_t)n * 4 + 4);
	p->n = n;
	for (uint32_t i = 0; i < n; i++) {
		p->v[i] = be32_get(body + 4 + 4 * (size_t)i);
		if (i && p->v[i] <= p->v[i - 1])
			return err_set(c->err, ERR_CORRUPT, "block %s: index: offset %lld: postings not ascending at entry %u",
				       b->ulid, (long long)off, i);
	}
	return 0;
}

/* Fill every key's postings: index cache first, then merged range reads. */
static int fetch_postings(call_t *c, bs_block_t *b, pkey_t *keys, size_t n)
{
	want_t *w = ARENA_NEW_ARRAY(c->a, want_t, n + 1);
	str_t *ck = ARENA_NEW_ARRAY(c->a, str_t, n + 1);
	size_t nw = 0;
	int rc;
	for (size_t i = 0; i < n; i++) {
		ck[i] = pkey_cache_key(c->a, &keys[i]);
		str_t v;
		if (indexcache_get(c->st->cache, b->ulid, INDEXCACHE_POSTINGS, ck[i], c->a, &v)) {
			if ((rc = decode_postings(c, b, (const uint8_t *)v.p, v.n, keys[i].start, &keys[i].p)))
				return rc;
			continue;
		}
		w[nw++] = (want_t){keys[i].start, keys[i].end, 0, i};
	}
	if (!nw)
		return 0;
	char name[64];
	snprintf(name, sizeof name, "%s/index", b->ulid);
	span_t *sp;
	size_t ns;
	if ((rc = fetch_spans(c, name, w, nw, POSTINGS_MERGE_GAP, "postings", &sp, &ns)))
		return err_wrap(c->err, "block %s", b->ulid);
	metric_add(metric_with(m_fetched, "postings"), (double)nw);
	for (size_t i = 0; i < nw; i++) {
		pkey_t *k = &keys[w[i].idx];
		span_t *s = &sp[w[i].span];
		int64_t rel = k->start - s->off;
		const uint8_t *p = (const uint8_t *)s->data + rel;
		int64_t avail = s->got - rel;
		uint32_t l = avail >= 4 ? be32_get(p) : 0;
		if (avail < 8 || (int64_t)l + 8 > avail || l < 4)
			return err_set(c->err, ERR_CORRUPT, "block %s: index: offset %lld: postings list runs past its range",
				       b->ulid, (long long)k->start);
		if (crc32c(0, p + 4, l) != be32_get(p + 4 + l))
			return err_set(c->err, ERR_CORRUPT, "block %s: index: offset %lld: postings list: bad CRC32C",
				       b->ulid, (long long)k->start);
		if ((rc = decode_postings(c, b, p + 4, l, k->start, &k->p)))
			return rc;
		indexcache_put(c->st->cache, b->ulid, INDEXCACHE_POSTINGS, ck[w[i].idx], p + 4, l);
	}
	return 0;
}

/* Matchers (external ones already removed) to series IDs, like index_reader_postings_for_matchers. */
static int block_postings(call_t *c, bs_block_t *b, const indexheader_t *h, const matcher_t *ms, size_t nms,
			  postings_t *out)
{
	out->v = NULL, out->n = 0;
	/* groups[i] = key range of matcher i; all keys fetched in one go. */
	keylist_t kl = {.c = c};
	size_t *gfirst = ARENA_NEW_ARRAY(c->a, size_t, nms + 2), *gend = ARENA_NEW_ARRAY(c->a, size_t, nms + 2);
	bool have_pos = false;
	for (size_t i = 0; i < nms; i++) {
		bool pos = !matcher_matches_empty(&ms[i]);
		gfirst[i] = kl.keys.n;
		matcher_keys(h, &kl, &ms[i], pos);
		gend[i] = kl.keys.n;
		if (pos) {
			have_pos = true;
			if (gend[i] == gfirst[i]) { /* a positive matcher without values: nothing matches */
				VEC_FREE(&kl.keys);
				return 0;
			}
		}
	}
	gfirst[nms] = kl.keys.n;
	if (!have_pos) {
		int64_t s, e;
		if (!indexheader_postings_range(h, STR_NULL, STR_NULL, &s, &e)) {
			VEC_FREE(&kl.keys);
			return err_set(c->err, ERR_CORRUPT, "block %s: index has no all-postings list", b->ulid);
		}
		VEC_PUSH(&kl.keys, ((pkey_t){STR_NULL, STR_NULL, s, e, {NULL, 0}}));
	}
	gend[nms] = kl.keys.n;
	pkey_t *keys = arena_memdup(c->a, kl.keys.v ? (void *)kl.keys.v : (void *)"", kl.keys.n * sizeof(pkey_t) + 1);
	size_t nkeys = kl.keys.n;
	VEC_FREE(&kl.keys);
	int rc = fetch_postings(c, b, keys, nkeys);
	if (rc)
		return rc;
	postings_t acc = {NULL, 0}, neg = {NULL, 0};
	bool have_acc = false, have_neg = false;
	if (!have_pos) {
		acc = keys[gfirst[nms]].p;
		have_acc = true;
	}
	for (size_t i = 0; i < nms; i++) {
		size_t cnt = gend[i] - gfirst[i];
		postings_t *lists = ARENA_NEW_ARRAY(c->a, postings_t, cnt + 1);
		for (size_t k = 0; k < cnt; k++)
			lists[k] = keys[gfirst[i] + k].p;
		postings_t u = postings_merge(c->a, lists, cnt);
		if (!matcher_matches_empty(&ms[i])) {
			acc = have_acc ? postings_intersect(c->a, acc, u) : u;
			have_acc = true;
		} else if (u.n) {
			postings_t two[2] = {neg, u};
			neg = have_neg ? postings_merge(c->a, two, 2) : u;
			have_neg = true;
		}
	}
	*out = have_neg ? postings_subtract(c->a, acc, neg) : acc;
	return 0;
}

/* ================================ series entries ================================ */

typedef struct sentry {
	labels_t ls;
	chunk_meta_t *chks;
	size_t nchks;
} sentry_t;

static int decode_series(call_t *c, bs_block_t *b, const indexheader_t *h, uint32_t id, const uint8_t *p, size_t bl,
			 sentry_t *out)
{
	const uint8_t *be = p + bl;
	uint64_t off = (uint64_t)id * 16;
	int k;
	uint64_t nl;
#define SBAD(what) err_set(c->err, ERR_CORRUPT, "block %s: index: offset %llu: series %u: %s", b->ulid, \
			   (unsigned long long)off, id, what)
	if ((k = uvarint_get(p, be, &nl)) <= 0 || nl > bl)
		return SBAD("bad label count");
	p += k;
	out->ls.n = (size_t)nl;
	out->ls.v = arena_alloc(c->a, (size_t)nl * sizeof(label_t) + 1);
	for (uint64_t i = 0; i < nl; i++) {
		uint64_t ns, vs;
		if ((k = uvarint_get(p, be, &ns)) <= 0)
			return SBAD("bad label name ref");
		p += k;
		if ((k = uvarint_get(p, be, &vs)) <= 0)
			return SBAD("bad label value ref");
		p += k;
		if (ns > UINT32_MAX || vs > UINT32_MAX || indexheader_symbol(h, (uint32_t)ns, &out->ls.v[i].name, NULL) ||
		    indexheader_symbol(h, (uint32_t)vs, &out->ls.v[i].value, NULL))
			return SBAD("symbol reference out of range");
	}
	uint64_t nc;
	if ((k = uvarint_get(p, be, &nc)) <= 0 || nc > bl)
		return SBAD("bad chunk count");
	p += k;
	chunk_meta_t *cm = arena_alloc(c->a, (size_t)nc * sizeof *cm + 1);
	for (uint64_t i = 0; i < nc; i++) {
		if (i == 0) {
			int64_t mint;
			uint64_t dur, ref;
			if ((k = varint_get(p, be, &mint)) <= 0 || (p += k, (k = uvarint_get(p, be, &dur)) <= 0) ||
			    (p += k, (k = uvarint_get(p, be, &ref)) <= 0))
				return SBAD("malformed chunk metadata");
			p += k;
			cm[0] = (chunk_meta_t){mint, (int64_t)((uint64_t)mint + dur), ref};
		} else {
			uint64_t d, dur;
			int64_t dref;
			if ((k = uvarint_get(p, be, &d)) <= 0 || (p += k, (k = uvarint_get(p, be, &dur)) <= 0) ||
			    (p += k, (k = varint_get(p, be, &dref)) <= 0))
				return SBAD("malformed chunk metadata");
			p += k;
			cm[i].mint = (int64_t)((uint64_t)cm[i - 1].maxt + d);
			cm[i].maxt = (int64_t)((uint64_t)cm[i].mint + dur);
			cm[i].ref = cm[i - 1].ref + (uint64_t)dref;
		}
	}
#undef SBAD
	out->chks = cm;
	out->nchks = (size_t)nc;
	return 0;
}

/* Entry at p[0..avail): body pointer/length after checks; 1 = needs more bytes (*need total). */
static int frame_series(call_t *c, bs_block_t *b, uint32_t id, const uint8_t *p, int64_t avail, const uint8_t **body,
			size_t *bl, int64_t *need)
{
	uint64_t len;
	int k = uvarint_get(p, p + (avail > 0 ? avail : 0), &len);
	if (k == 0) {
		*need = 16;
		return avail >= 16 ? err_set(c->err, ERR_CORRUPT, "block %s: series %u: bad length", b->ulid, id) : 1;
	}
	if (k < 0 || len > (1u << 30))
		return err_set(c->err, ERR_CORRUPT, "block %s: index: offset %llu: series %u: bad length", b->ulid,
			       (unsigned long long)id * 16, id);
	*need = k + (int64_t)len + 4;
	if (*need > avail)
		return 1;
	if (crc32c(0, p + k, (size_t)len) != be32_get(p + k + len))
		return err_set(c->err, ERR_CORRUPT, "block %s: index: offset %llu: series %u: bad CRC32C", b->ulid,
			       (unsigned long long)id * 16, id);
	*body = p + k;
	*bl = (size_t)len;
	return 0;
}

static int fetch_series(call_t *c, bs_block_t *b, const indexheader_t *h, postings_t ids, sentry_t *out)
{
	want_t *w = ARENA_NEW_ARRAY(c->a, want_t, ids.n + 1);
	size_t nw = 0;
	int rc;
	for (size_t i = 0; i < ids.n; i++) {
		str_t v;
		uint32_t id = ids.v[i];
		if (indexcache_get(c->st->cache, b->ulid, INDEXCACHE_SERIES, str_from((const char *)&id, 4), c->a, &v)) {
			if ((rc = decode_series(c, b, h, id, (const uint8_t *)v.p, v.n, &out[i])))
				return rc;
			continue;
		}
		int64_t s = (int64_t)id * 16, e = s + SERIES_EST;
		if (i + 1 < ids.n && (int64_t)ids.v[i + 1] * 16 < e)
			e = (int64_t)ids.v[i + 1] * 16;
		w[nw++] = (want_t){s, e, 0, i};
	}
	if (!nw)
		return 0;
	char name[64];
	snprintf(name, sizeof name, "%s/index", b->ulid);
	span_t *sp;
	size_t ns;
	if ((rc = fetch_spans(c, name, w, nw, SERIES_MERGE_GAP, "series", &sp, &ns)))
		return err_wrap(c->err, "block %s", b->ulid);
	metric_add(metric_with(m_fetched, "series"), (double)nw);
	for (size_t i = 0; i < nw; i++) {
		uint32_t id = ids.v[w[i].idx];
		span_t *s = &sp[w[i].span];
		int64_t rel = w[i].start - s->off;
		const uint8_t *body;
		size_t bl;
		int64_t need;
		rc = frame_series(c, b, id, (const uint8_t *)s->data + rel, s->got - rel, &body, &bl, &need);
		if (rc == 1) { /* longer than estimated: read it exactly */
			buf_t d = BUF_INIT;
			if (!(rc = charge(c, need, "series")))
				rc = bucket_get_range(c->st->cfg.bkt, name, w[i].start, need, &d, c->err);
			if (!rc) {
				char *cp = arena_memdup(c->a, d.p, d.n + 1);
				rc = frame_series(c, b, id, (const uint8_t *)cp, (int64_t)d.n, &body, &bl, &need);
				if (rc == 1)
					rc = err_set(c->err, ERR_CORRUPT, "block %s: series %u runs past the end of the index",
						     b->ulid, id);
			}
			buf_release(&d);
		}
		if (rc)
			return rc;
		if ((rc = decode_series(c, b, h, id, body, bl, &out[w[i].idx])))
			return rc;
		indexcache_put(c->st->cache, b->ulid, INDEXCACHE_SERIES, str_from((const char *)&id, 4), body, bl);
	}
	return 0;
}

/* ================================ series set ================================ */

typedef struct cref {
	bs_block_t *b;
	chunk_meta_t m;
} cref_t;

typedef struct oseries {
	labels_t ls;
	cref_t *refs;
	size_t nrefs;
	int64_t bmint; /* block mint, for ordering equal label sets */
	chunk_t *chunks; /* filled per batch */
} oseries_t;

typedef struct bs_set {
	series_set_t base;
	bucket_store_t *st;
	call_t c;
	err_t cerr;
	oseries_t *v;
	size_t n, pos;   /* pos = next series to return */
	size_t bend;     /* series [pos, bend) have chunks fetched */
	bool skip_chunks;
	int64_t mint, maxt;
	arena_t batch;   /* chunk bytes of the current batch */
	int64_t pool_held;
	oseries_t *cur;
	xor_iter_t it;
	bool counted;    /* holds an open_sets slot */
} bs_set_t;

static void pool_release(bs_set_t *s)
{
	if (s->pool_held) {
		atomic_fetch_sub(&s->st->pool_used, s->pool_held);
		s->pool_held = 0;
	}
}

typedef struct cwant {
	bs_block_t *b;
	uint32_t seg;
	int64_t off, end;
	size_t si, ci; /* series index, chunk index */
} cwant_t;

static int cwant_cmp(const void *a, const void *b)
{
	const cwant_t *x = a, *y = b;
	if (x->b != y->b)
		return x->b < y->b ? -1 : 1;
	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Parse a chunk record at p[0..avail): 1 = needs *need bytes. */
static int frame_chunk(bs_set_t *s, const cwant_t *w, const uint8_t *p, int64_t avail, chunk_t *out, int64_t *need)
{
	uint64_t len;
	int k = uvarint_get(p, p + (avail > 0 ? avail : 0), &len);
	if (k == 0) {
		*need = 16;
		return avail >= 16 ? -1 : 1;
	}
	if (k < 0 || len > (1u << 24))
		return -1;
	*need = k + 1 + (int64_t)len + 4;
	if (*need > avail)
		return 1;
	if (crc32c(0, p + k, (size_t)len + 1) != be32_get(p + k + 1 + len))
		return -2;
	out->enc = p[k];
	out->data = p + k + 1;
	out->len = (size_t)len;
	(void)s;
	return 0;
}

/* Fetch the chunks of series [pos, ...) up to the batch bounds. */
static int fetch_batch(bs_set_t *s, err_t *err)
{
	arena_reset(&s->batch);
	pool_release(s);
	size_t from = s->pos, to = from, nchunks = 0;
	int64_t est = 0;
	while (to < s->n && (to == from || (to - from < BATCH_SERIES && est < (int64_t)BATCH_BYTES))) {
		for (size_t k = 0; k < s->v[to].nrefs; k++)
			est += 200; /* typical XOR chunk; only for batch sizing */
		nchunks += s->v[to].nrefs;
		to++;
	}
	cwant_t *w = ARENA_NEW_ARRAY(&s->batch, cwant_t, nchunks + 1);
	size_t nw = 0;
	for (size_t i = from; i < to; i++) {
		s->v[i].chunks = ARENA_NEW_ARRAY(&s->batch, chunk_t, s->v[i].nrefs + 1);
		for (size_t k = 0; k < s->v[i].nrefs; k++) {
			cref_t *r = &s->v[i].refs[k];
			w[nw++] = (cwant_t){r->b, (uint32_t)(r->m.ref >> 32), (int64_t)(r->m.ref & 0xffffffffu), 0, i, k};
		}
	}
	qsort(w, nw, sizeof *w, cwant_cmp);
	for (size_t i = 0; i < nw; i++) {
		w[i].end = w[i].off + CHUNK_EST;
		if (i + 1 < nw && w[i + 1].b == w[i].b && w[i + 1].seg == w[i].seg && w[i + 1].off > w[i].off &&
		    w[i + 1].off < w[i].end)
			w[i].end = w[i + 1].off;
	}
	/* Merge into ranges per (block, segment). */
	bucket_range_t *r = ARENA_NEW_ARRAY(&s->batch, bucket_range_t, nw + 1);
	size_t *rof = ARENA_NEW_ARRAY(&s->batch, size_t, nw + 1);
	size_t nr = 0;
	for (size_t i = 0; i < nw; i++) {
		bucket_range_t *last = nr ? &r[nr - 1] : NULL;
		if (last && w[i - 1].b == w[i].b && w[i - 1].seg == w[i].seg && w[i].off <= last->off + last->len + CHUNK_MERGE_GAP) {
			if (w[i].end > last->off + last->len)
				last->len = w[i].end - last->off;
		} else {
			r[nr++] = (bucket_range_t){.name = segment_name(w[i].b, &s->batch, w[i].seg), .off = w[i].off,
						   .len = w[i].end - w[i].off};
		}
		rof[i] = nr - 1;
	}
	int64_t total = 0;
	for (size_t i = 0; i < nr; i++)
		total += r[i].len;
	int rc;
	s->c.err = err;
	if ((rc = charge(&s->c, total, "chunks")))
		return rc;
	if (s->st->cfg.chunk_pool_size > 0) {
		int64_t used = atomic_fetch_add(&s->st->pool_used, total) + total;
		s->pool_held = total;
		if (used > s->st->cfg.chunk_pool_size) {
			metric_inc(metric_with(m_dropped, "chunk_pool"));
			return err_set(err, ERR_LIMIT,
				       "bucket store: chunk pool exhausted: %lld bytes of chunks in flight, --chunk-pool-size %lld",
				       (long long)used, (long long)s->st->cfg.chunk_pool_size);
		}
	}
	for (size_t i = 0; i < nr; i++)
		r[i].dst = arena_alloc(&s->batch, (size_t)r[i].len + 1);
	if (nr && (rc = bucket_get_ranges(s->st->cfg.bkt, r, nr, FETCH_CONCURRENCY, err)))
		return err_wrap(err, "fetching chunks");
	metric_add(metric_with(m_fetched, "chunks"), (double)nw);
	metric_add(metric_with(m_fetched_bytes, "chunks"), (double)total);
	for (size_t i = 0; i < nw; i++) {
		bucket_range_t *rr = &r[rof[i]];
		int64_t rel = w[i].off - rr->off;
		chunk_t *ch = &s->v[w[i].si].chunks[w[i].ci];
		int64_t need;
		const char *seg = rr->name;
		int f = frame_chunk(s, &w[i], (const uint8_t *)rr->dst + rel, rr->got - rel, ch, &need);
		if (f == 1) {
			buf_t d = BUF_INIT;
			if (!(rc = charge(&s->c, need, "chunks")))
				rc = bucket_get_range(s->st->cfg.bkt, seg, w[i].off, need, &d, err);
			if (!rc) {
				char *cp = arena_memdup(&s->batch, d.p, d.n + 1);
				f = frame_chunk(s, &w[i], (const uint8_t *)cp, (int64_t)d.n, ch, &need);
			}
			buf_release(&d);
			if (rc)
				return rc;
		}
		if (f)
			return err_set(err, ERR_CORRUPT, "block %s: %s: offset %lld: %s", w[i].b->ulid, seg,
				       (long long)w[i].off,
				       f == -2 ? "chunk: bad CRC32C" : f == 1 ? "chunk runs past the end of the segment"
									       : "chunk: bad length");
		cref_t *cr = &s->v[w[i].si].refs[w[i].ci];
		ch->mint = cr->m.mint;
		ch->maxt = cr->m.maxt;
	}
	s->bend = to;
	return 0;
}

static int set_next(series_set_t *base, err_t *err)
{
	bs_set_t *s = (bs_set_t *)base;
	if (s->pos >= s->n) {
		s->cur = NULL;
		return 0;
	}
	if (!s->skip_chunks && s->pos >= s->bend) {
		int rc = fetch_batch(s, err);
		if (rc)
			return rc;
	}
	s->cur = &s->v[s->pos++];
	return 1;
}

static const labels_t *set_labels(series_set_t *base)
{
	return &((bs_set_t *)base)->cur->ls;
}

static sample_iter_t *set_samples(series_set_t *base)
{
	bs_set_t *s = (bs_set_t *)base;
	if (s->skip_chunks)
		return sample_iter_empty();
	xor_iter_init(&s->it, s->cur->chunks, s->cur->nrefs, s->mint, s->maxt);
	return &s->it.base;
}

static int set_chunks(series_set_t *base, const chunk_t **out)
{
	bs_set_t *s = (bs_set_t *)base;
	if (s->skip_chunks) {
		*out = NULL;
		return 0;
	}
	*out = s->cur->chunks;
	return (int)s->cur->nrefs;
}

static void set_close(series_set_t *base)
{
	bs_set_t *s = (bs_set_t *)base;
	pool_release(s);
	arena_release(&s->batch);
	if (s->counted) {
		atomic_fetch_sub(&s->st->open_sets, 1);
		s->counted = false;
	}
	s->n = s->pos = 0;
}

static const struct series_set_ops bs_set_ops = {
	.next = set_next,
	.labels = set_labels,
	.samples = set_samples,
	.chunks = set_chunks,
	.warnings = NULL,
	.close = set_close,
};

static void set_cleanup(void *arg)
{
	set_close(arg); /* idempotent; covers callers that release the arena without closing */
}

static int oseries_cmp(const void *a, const void *b)
{
	const oseries_t *x = a, *y = b;
	int c = labels_cmp(&x->ls, &y->ls);
	if (c)
		return c;
	return x->bmint < y->bmint ? -1 : x->bmint > y->bmint;
}

typedef VEC(oseries_t) ovec_t;

/* Postings of a block for the request's matchers (external labels applied); *skip when the block
 * cannot match. */
static int block_ids(call_t *c, bs_block_t *b, const matcher_t *ms, size_t nms, const indexheader_t **hp,
		     postings_t *ids, bool *skip)
{
	const matcher_t *rest;
	size_t nrest;
	*skip = false;
	ids->n = 0;
	if (!store_match_external(c->a, &b->ext, ms, nms, &rest, &nrest)) {
		*skip = true;
		return 0;
	}
	indexheader_t *h;
	int rc = block_header(b, &h, c->err);
	if (rc)
		return rc;
	*hp = h;
	return block_postings(c, b, h, rest, nrest, ids);
}

/* Series of one block matching the request, appended to out (labels merged with the block's). */
static int block_series(call_t *c, bs_block_t *b, const store_series_req_t *req, ovec_t *out, size_t *touched)
{
	const indexheader_t *h = NULL;
	postings_t ids;
	bool skip;
	int rc = block_ids(c, b, req->ms, req->nms, &h, &ids, &skip);
	if (rc || skip || !ids.n)
		return rc;
	*touched += ids.n;
	if (c->st->cfg.series_touched_limit > 0 && (int64_t)*touched > c->st->cfg.series_touched_limit) {
		metric_inc(metric_with(m_dropped, "series"));
		return err_set(c->err, ERR_LIMIT, "bucket store: exceeded series limit: %zu series touched, limit %lld",
			       *touched, (long long)c->st->cfg.series_touched_limit);
	}
	sentry_t *se = ARENA_NEW_ARRAY(c->a, sentry_t, ids.n + 1);
	if ((rc = fetch_series(c, b, h, ids, se)))
		return rc;
	for (size_t i = 0; i < ids.n; i++) {
		size_t lo = 0, hi;
		while (lo < se[i].nchks && se[i].chks[lo].maxt < req->mint)
			lo++;
		hi = lo;
		while (hi < se[i].nchks && se[i].chks[hi].mint <= req->maxt)
			hi++;
		if (hi == lo)
			continue;
		oseries_t *o = VEC_ADD(out);
		o->ls = store_merge_external(c->a, &se[i].ls, &b->ext);
		o->nrefs = hi - lo;
		o->refs = ARENA_NEW_ARRAY(c->a, cref_t, o->nrefs);
		for (size_t k = lo; k < hi; k++)
			o->refs[k - lo] = (cref_t){b, se[i].chks[k]};
		o->bmint = b->meta.mint;
	}
	return 0;
}

static int bs_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	bucket_store_t *st = (bucket_store_t *)base;
	uint64_t t0 = clock_mono_ns();
	int maxc = st->cfg.series_max_concurrency > 0 ? st->cfg.series_max_concurrency : 20;
	if (atomic_fetch_add(&st->open_sets, 1) >= maxc) {
		atomic_fetch_sub(&st->open_sets, 1);
		metric_inc(metric_with(m_dropped, "concurrency"));
		return err_set(err, ERR_LIMIT, "bucket store: too many concurrent Series calls (limit %d)", maxc);
	}
	bs_set_t *s = ARENA_NEW(a, bs_set_t);
	s->base.ops = &bs_set_ops;
	s->st = st;
	s->counted = true;
	s->skip_chunks = req->skip_chunks;
	s->mint = req->mint;
	s->maxt = req->maxt;
	arena_init(&s->batch, 64 * 1024);
	arena_on_release(a, set_cleanup, s);
	s->c = (call_t){st, a, 0, err};

	bs_block_t **blocks;
	size_t nb = acquire_blocks(st, a, req->mint, req->maxt, &blocks);
	ovec_t all = {0};
	size_t touched = 0;
	int rc = 0;
	for (size_t i = 0; i < nb && !rc; i++)
		rc = block_series(&s->c, blocks[i], req, &all, &touched);
	if (rc) {
		VEC_FREE(&all);
		set_close(&s->base);
		return rc;
	}
	if (all.n > 1)
		qsort(all.v, all.n, sizeof *all.v, oseries_cmp);
	/* Same labels from several blocks (consecutive time ranges): one series, chunks in time order. */
	size_t w = 0, nchunks = 0;
	for (size_t i = 0; i < all.n; i++) {
		if (w && labels_eq(&all.v[w - 1].ls, &all.v[i].ls)) {
			oseries_t *o = &all.v[w - 1];
			cref_t *r = ARENA_NEW_ARRAY(a, cref_t, o->nrefs + all.v[i].nrefs);
			memcpy(r, o->refs, o->nrefs * sizeof *r);
			memcpy(r + o->nrefs, all.v[i].refs, all.v[i].nrefs * sizeof *r);
			o->refs = r;
			o->nrefs += all.v[i].nrefs;
		} else {
			all.v[w++] = all.v[i];
		}
		nchunks += all.v[i].nrefs;
	}
	if (req->limit > 0 && (int64_t)w > req->limit)
		w = (size_t)req->limit;
	if (!req->skip_chunks && st->cfg.series_sample_limit > 0 &&
	    (int64_t)nchunks * XOR_SAMPLES_PER_CHUNK > st->cfg.series_sample_limit) {
		VEC_FREE(&all);
		set_close(&s->base);
		metric_inc(metric_with(m_dropped, "samples"));
		return err_set(err, ERR_LIMIT,
			       "bucket store: exceeded samples limit: %zu chunks (~%zu samples) requested, limit %lld",
			       nchunks, nchunks * XOR_SAMPLES_PER_CHUNK, (long long)st->cfg.series_sample_limit);
	}
	s->v = arena_memdup(a, all.v ? (void *)all.v : (void *)"", w * sizeof(oseries_t) + 1);
	s->n = w;
	VEC_FREE(&all);
	metric_observe(metric_with(m_get_all), clock_since_s(t0));
	metric_observe(metric_with(m_blocks_queried), (double)nb);
	metric_observe(metric_with(m_result_series), (double)w);
	*out = &s->base;
	return 0;
}

/* ================================ labels ================================ */

typedef VEC(str_t) strvec_t;

static bool push_value(void *arg, str_t value, int64_t start, int64_t end)
{
	(void)start, (void)end;
	VEC_PUSH((strvec_t *)arg, value);
	return true;
}

static int label_call(bucket_store_t *st, arena_t *a, const store_label_req_t *req, bool names, store_strings_t *out,
		      err_t *err)
{
	memset(out, 0, sizeof *out);
	bs_block_t **blocks;
	size_t nb = acquire_blocks(st, a, req->mint, req->maxt, &blocks);
	call_t c = {st, a, 0, err};
	strvec_t acc = {0};
	int rc = 0;
	for (size_t i = 0; i < nb && !rc; i++) {
		bs_block_t *b = blocks[i];
		const matcher_t *rest;
		size_t nrest;
		if (!store_match_external(a, &b->ext, req->ms, req->nms, &rest, &nrest))
			continue;
		bool ext_found;
		str_t ext_val = names ? STR_NULL : labels_get(&b->ext, req->name, &ext_found);
		if (!names && ext_found && !nrest) {
			VEC_PUSH(&acc, ext_val);
			continue;
		}
		indexheader_t *h;
		if ((rc = block_header(b, &h, err)))
			break;
		if (!nrest) { /* straight from the index-header */
			if (names) {
				str_t *v;
				size_t n;
				indexheader_label_names(h, a, &v, &n);
				for (size_t k = 0; k < n; k++)
					VEC_PUSH(&acc, v[k]);
				for (size_t k = 0; k < b->ext.n; k++)
					VEC_PUSH(&acc, b->ext.v[k].name);
			} else {
				indexheader_each_value(h, req->name, push_value, &acc);
			}
			continue;
		}
		postings_t ids;
		if ((rc = block_postings(&c, b, h, rest, nrest, &ids)))
			break;
		sentry_t *se = ARENA_NEW_ARRAY(a, sentry_t, ids.n + 1);
		if ((rc = fetch_series(&c, b, h, ids, se)))
			break;
		for (size_t k = 0; k < ids.n; k++) {
			labels_t ls = store_merge_external(a, &se[k].ls, &b->ext);
			for (size_t j = 0; j < ls.n; j++) {
				if (names)
					VEC_PUSH(&acc, ls.v[j].name);
				else if (str_eq(ls.v[j].name, req->name))
					VEC_PUSH(&acc, ls.v[j].value);
			}
		}
	}
	if (!rc) {
		size_t n = store_strings_sort_unique(acc.v, acc.n);
		if (req->limit > 0 && (int64_t)n > req->limit)
			n = (size_t)req->limit;
		out->v = arena_memdup(a, acc.v ? (void *)acc.v : (void *)"", n * sizeof(str_t) + 1);
		out->n = n;
	}
	VEC_FREE(&acc);
	return rc;
}

static int bs_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return label_call((bucket_store_t *)base, a, req, true, out, err);
}

static int bs_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return label_call((bucket_store_t *)base, a, req, false, out, err);
}

static int bs_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	bucket_store_t *st = (bucket_store_t *)base;
	(void)err;
	pthread_mutex_lock(&st->mu);
	labels_t *sets = ARENA_NEW_ARRAY(a, labels_t, st->nblocks + 1);
	size_t ns = 0;
	int64_t mint = INT64_MAX, maxt = INT64_MIN;
	for (size_t i = 0; i < st->nblocks; i++) {
		bs_block_t *b = st->blocks[i];
		if (b->meta.mint < mint)
			mint = b->meta.mint;
		if (b->meta.maxt - 1 > maxt)
			maxt = b->meta.maxt - 1;
		bool dup = false;
		for (size_t k = 0; k < ns && !dup; k++)
			dup = labels_eq(&sets[k], &b->ext);
		if (!dup)
			sets[ns++] = labels_copy(a, &b->ext);
	}
	pthread_mutex_unlock(&st->mu);
	out->label_sets = sets;
	out->nlabel_sets = ns;
	out->mint = mint;
	out->maxt = maxt;
	return 0;
}

static void bs_free_base(store_t *base)
{
	bucket_store_free((bucket_store_t *)base);
}

static const struct store_ops bs_ops = {
	.series = bs_series,
	.label_names = bs_label_names,
	.label_values = bs_label_values,
	.info = bs_info,
	.free = bs_free_base,
};

int bucket_store_new(bucket_store_t **out, const bucket_store_config_t *cfg, err_t *err)
{
	*out = NULL;
	if (!cfg->bkt || !cfg->data_dir || !*cfg->data_dir)
		return err_set(err, ERR_INVALID, "bucket store: a bucket and a data directory are required");
	int rc = mkdir_p(cfg->data_dir, err);
	if (rc)
		return err_wrap(err, "bucket store: data dir");
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init_metrics);
	bucket_store_t *st = xcalloc(1, sizeof *st);
	st->base.ops = &bs_ops;
	st->base.name = "bucket";
	st->cfg = *cfg;
	st->data_dir = xstrdup(cfg->data_dir);
	st->cfg.data_dir = st->data_dir;
	st->cache = indexcache_new(cfg->index_cache_size, cfg->index_cache_item_size);
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->sync_mu, NULL);
	*out = st;
	return 0;
}

store_t *bucket_store_base(bucket_store_t *s)
{
	return &s->base;
}

void bucket_store_free(bucket_store_t *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nblocks; i++)
		block_unref(st->blocks[i]);
	free(st->blocks);
	indexcache_free(st->cache);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->sync_mu);
	free(st->data_dir);
	free(st);
}
