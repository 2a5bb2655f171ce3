/*
 * db.c — head + blocks of one TSDB directory: open, cut, retention, views.
 */
#include "tsdb/db.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/vec.h"
#include "tsdb/block.h"
#include "tsdb/meta.h"

typedef struct dblock {
	block_t *b;
	char ulid[ULID_LEN + 1];
	int64_t mint, maxt;
	atomic_int refs; /* the db's own reference + one per view */
} dblock_t;

struct db {
	char *dir;
	db_opts_t o;
	head_t *head;
	pthread_mutex_t mu;     /* blocks */
	VEC(dblock_t *) blocks; /* by mint, then ULID */
	metric_child_t *m_blocks, *m_compactions, *m_compaction_fail, *m_compaction_secs, *m_ooo_blocks;
};

static metric_child_t *child(metric_t *m, const char *tenant)
{
	return tenant ? metric_with(m, tenant) : metric_with(m);
}

static void unref(dblock_t *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1) {
		block_close(d->b);
		free(d);
	}
}

static int cmp_block(const void *a, const void *b)
{
	const dblock_t *x = *(dblock_t *const *)a, *y = *(dblock_t *const *)b;
	if (x->mint != y->mint)
		return x->mint < y->mint ? -1 : 1;
	return strcmp(x->ulid, y->ulid);
}

/* Open <dir>/<ulid> and add it to the list (mu not held: open time, or the cutter's own thread). */
static int add_block(db_t *db, const char *path, err_t *err)
{
	block_t *b;
	int rc = block_open(&b, path, err);
	if (!rc && (rc = index_reader_load(&b->ix, err)) != 0)
		block_close(b);
	if (rc)
		return rc;
	dblock_t *d = xcalloc(1, sizeof *d);
	d->b = b;
	snprintf(d->ulid, sizeof d->ulid, "%s", b->meta.ulid);
	d->mint = b->meta.mint;
	d->maxt = b->meta.maxt;
	atomic_store(&d->refs, 1);
	pthread_mutex_lock(&db->mu);
	VEC_PUSH(&db->blocks, d);
	qsort(db->blocks.v, db->blocks.n, sizeof(dblock_t *), cmp_block);
	pthread_mutex_unlock(&db->mu);
	return 0;
}

static int load_blocks(db_t *db, err_t *err)
{
	DIR *d = opendir(db->dir);
	if (!d)
		return err_errno(err, "tsdb: open %s", db->dir);
	struct dirent *de;
	int rc = 0;
	while (!rc && (de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", db->dir, n);
		if (strlen(n) > ULID_LEN && !strncmp(n + ULID_LEN, ".tmp", 4)) {
			fileio_rm_rf(p); /* a block being written or deleted when the process stopped */
			continue;
		}
		if (strlen(n) != ULID_LEN || !ulid_valid(n))
			continue;
		char meta[4096];
		snprintf(meta, sizeof meta, "%s/meta.json", p);
		if (access(meta, F_OK) != 0)
			continue;
		rc = add_block(db, p, err);
	}
	closedir(d);
	return rc;
}

int db_open(db_t **out, const char *dir, const db_opts_t *opts, head_replay_stats_t *stats, err_t *err)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return err_errno(err, "tsdb: mkdir %s", dir);
	db_t *db = xcalloc(1, sizeof *db);
	db->dir = xstrdup(dir);
	if (opts)
		db->o = *opts;
	if (db->o.block_duration <= 0)
		db->o.block_duration = 2 * 3600 * 1000ll;
	db->o.head.chunk_range = db->o.block_duration;
	pthread_mutex_init(&db->mu, NULL);
	const char *tenant = db->o.head.metrics_tenant;
	const char *tl = tenant ? "tenant" : NULL;
	db->m_blocks = child(
	    metrics_gauge("prometheus_tsdb_blocks_loaded", "Number of currently loaded data blocks", tl),
	    tenant);
	db->m_compactions =
	    child(metrics_counter("prometheus_tsdb_compactions_total",
	                          "Total number of compactions that were executed for the partition.", tl),
	          tenant);
	db->m_compaction_fail =
	    child(metrics_counter("prometheus_tsdb_compactions_failed_total",
	                          "Total number of compactions that failed for the partition.", tl),
	          tenant);
	db->m_compaction_secs = child(
	    metrics_histogram("prometheus_tsdb_compaction_duration_seconds", "Duration of compaction runs",
	                      tl, (const double[]){1, 2, 4, 8, 16, 32, 64, 128, 256, 512}, 10),
	    tenant);
	db->m_ooo_blocks = child(metrics_counter("prometheus_tsdb_out_of_order_blocks_total",
	                                         "Blocks written from out-of-order samples.", tl),
	                         tenant);
	int rc = load_blocks(db, err);
	int64_t min_valid = INT64_MIN;
	for (size_t i = 0; i < db->blocks.n; i++)
		if (db->blocks.v[i]->maxt > min_valid)
			min_valid = db->blocks.v[i]->maxt;
	if (!rc)
		rc = head_open(&db->head, dir, &db->o.head, min_valid, stats, err);
	if (rc) {
		for (size_t i = 0; i < db->blocks.n; i++)
			unref(db->blocks.v[i]);
		VEC_FREE(&db->blocks);
		pthread_mutex_destroy(&db->mu);
		free(db->dir);
		free(db);
		return rc;
	}
	db_publish_metrics(db);
	*out = db;
	return 0;
}

int db_close(db_t *db, err_t *err)
{
	if (!db)
		return 0;
	int rc = head_close(db->head, err);
	for (size_t i = 0; i < db->blocks.n; i++)
		unref(db->blocks.v[i]);
	VEC_FREE(&db->blocks);
	pthread_mutex_destroy(&db->mu);
	free(db->dir);
	free(db);
	return rc;
}

head_t *db_head(db_t *db)
{
	return db->head;
}

const char *db_dir(const db_t *db)
{
	return db->dir;
}

/* ---- cutting ---- */

/* Write the samples of [mint, maxt) from the chosen head sources as a block. *written = 0 when there
 * were none (no block). */
static int write_block(db_t *db, int64_t mint, int64_t maxt, int sources, int *written, err_t *err)
{
	*written = 0;
	arena_t a;
	arena_init(&a, 0);
	series_set_t *set;
	int rc = head_select(db->head, &a, NULL, 0, mint, maxt - 1, sources, &set, err);
	if (rc) {
		arena_release(&a);
		return rc;
	}
	block_writer_opts_t bo = {.chunk_range = db->o.block_duration, .meta_mint = mint, .meta_maxt = maxt};
	block_writer_t *bw = NULL;
	VEC(int64_t) ts = {0};
	VEC(double) vs = {0};
	size_t nseries = 0;
	int r;
	while (!rc && (r = series_set_next(set, err)) == 1) {
		sample_iter_t *it = series_set_samples(set);
		VEC_CLEAR(&ts);
		VEC_CLEAR(&vs);
		for (;;) {
			VEC_RESERVE(&ts, ts.n + 256);
			VEC_RESERVE(&vs, vs.n + 256);
			int k = sample_iter_next_batch(it, ts.v + ts.n, vs.v + vs.n, 256, err);
			if (k < 0) {
				rc = k;
				break;
			}
			if (k == 0)
				break;
			ts.n += (size_t)k;
			vs.n += (size_t)k;
		}
		if (rc || !ts.n)
			continue;
		if (!bw && (rc = block_writer_new(&bw, db->dir, &bo, err)) != 0)
			break;
		rc = block_writer_add_series(bw, series_set_labels(set), ts.v, vs.v, ts.n, err);
		nseries++;
	}
	if (!rc && r < 0)
		rc = r;
	series_set_close(set);
	arena_release(&a);
	VEC_FREE(&ts);
	VEC_FREE(&vs);
	if (rc) {
		block_writer_abort(bw);
		return err_wrap(err, "tsdb %s: cutting block [%lld, %lld)", db->dir, (long long)mint,
		                (long long)maxt);
	}
	if (!bw)
		return 0;
	char path[4096];
	if ((rc = block_writer_finish(bw, NULL, path, err)) != 0)
		return err_wrap(err, "tsdb %s: cutting block [%lld, %lld)", db->dir, (long long)mint,
		                (long long)maxt);
	if ((rc = add_block(db, path, err)) != 0)
		return rc;
	*written = 1;
	char ns[32];
	snprintf(ns, sizeof ns, "%zu", nseries);
	log_info("block cut from the head", "block", path, "series", ns, "from_out_of_order",
	         sources == HEAD_SEL_OOO_CUT ? "true" : "false");
	return 0;
}

static int64_t align_end(int64_t t, int64_t range)
{
	int64_t q = t / range;
	if (t < 0 && t % range)
		q--; /* floor for times before 1970 */
	return q * range + range;
}

/* Out-of-order samples: one block per aligned window they fall in. */
static int cut_ooo(db_t *db, int *nblocks, err_t *err)
{
	int seg;
	int64_t mint, maxt;
	if (!head_ooo_swap(db->head, &seg, &mint, &maxt, err))
		return err->code ? err->code : 0;
	int rc = 0;
	for (int64_t start = align_end(mint, db->o.block_duration) - db->o.block_duration;
	     !rc && start <= maxt; start += db->o.block_duration) {
		int w;
		rc = write_block(db, start, start + db->o.block_duration, HEAD_SEL_OOO_CUT, &w, err);
		*nblocks += w;
		if (w)
			metric_inc(db->m_ooo_blocks);
	}
	if (!rc)
		rc = head_ooo_release(db->head, seg, err);
	return rc;
}

int db_compact(db_t *db, bool flush, int *nblocks_out, err_t *err)
{
	int nblocks = 0, rc = 0;
	bool truncated = false;
	uint64_t t0 = clock_mono_ns();
	int64_t range = db->o.block_duration;
	for (;;) {
		int64_t mint = head_min_time(db->head), maxt = head_max_time(db->head);
		if (mint == INT64_MAX || maxt < mint)
			break;
		if (!flush && maxt - mint <= range / 2 * 3)
			break;
		int64_t end = align_end(mint, range);
		if (flush && end > maxt + 1)
			end = maxt + 1; /* as Thanos's flush: the head ends after its last sample, not at the
			                   boundary */
		int w;
		if ((rc = write_block(db, mint, end, HEAD_SEL_INORDER, &w, err)) != 0)
			break;
		nblocks += w;
		if ((rc = head_truncate(db->head, end, err)) != 0)
			break;
		truncated = true;
	}
	if (!rc && (truncated || flush) && head_ooo_samples(db->head))
		rc = cut_ooo(db, &nblocks, err);
	if (!rc && truncated)
		rc = head_checkpoint(db->head, err);
	if (nblocks || rc) {
		metric_inc(db->m_compactions);
		metric_observe(db->m_compaction_secs, clock_since_s(t0));
	}
	if (rc)
		metric_inc(db->m_compaction_fail);
	db_publish_metrics(db);
	if (nblocks_out)
		*nblocks_out = nblocks;
	return rc;
}

int db_delete_blocks(db_t *db, int64_t before_ms, bool (*may_delete)(void *arg, const char *ulid), void *arg,
                     int *ndeleted, err_t *err)
{
	(void)err;
	VEC(dblock_t *) gone = {0};
	pthread_mutex_lock(&db->mu);
	size_t k = 0;
	for (size_t i = 0; i < db->blocks.n; i++) {
		dblock_t *d = db->blocks.v[i];
		if (d->maxt <= before_ms && (!may_delete || may_delete(arg, d->ulid)))
			VEC_PUSH(&gone, d);
		else
			db->blocks.v[k++] = d;
	}
	db->blocks.n = k;
	pthread_mutex_unlock(&db->mu);
	for (size_t i = 0; i < gone.n; i++) {
		dblock_t *d = gone.v[i];
		/* rename first so a crash midway never leaves a half-deleted block looking whole */
		char p[4096], tmp[4096];
		snprintf(p, sizeof p, "%s/%s", db->dir, d->ulid);
		snprintf(tmp, sizeof tmp, "%s/%s.tmp-for-deletion", db->dir, d->ulid);
		if (rename(p, tmp) == 0)
			fileio_rm_rf(tmp);
		log_info("deleted block past retention", "block", p);
		unref(d); /* mapped files stay readable for views still holding it */
	}
	if (ndeleted)
		*ndeleted = (int)gone.n;
	VEC_FREE(&gone);
	db_publish_metrics(db);
	return 0;
}

/* ---- reading ---- */

static void view_release(void *arg)
{
	unref(arg);
}

void db_view(db_t *db, arena_t *a, db_view_t *out)
{
	pthread_mutex_lock(&db->mu);
	out->n = 1 + db->blocks.n;
	out->q = ARENA_NEW_ARRAY(a, queryable_t *, out->n);
	out->q[0] = head_queryable(db->head);
	for (size_t i = 0; i < db->blocks.n; i++) {
		dblock_t *d = db->blocks.v[i];
		atomic_fetch_add(&d->refs, 1);
		arena_on_release(a, view_release, d);
		out->q[1 + i] = &d->b->q;
	}
	pthread_mutex_unlock(&db->mu);
}

int64_t db_min_time(db_t *db)
{
	int64_t m = head_min_time(db->head);
	pthread_mutex_lock(&db->mu);
	if (db->blocks.n && db->blocks.v[0]->mint < m)
		m = db->blocks.v[0]->mint;
	pthread_mutex_unlock(&db->mu);
	return m;
}

int64_t db_max_time(db_t *db)
{
	int64_t m = head_max_time(db->head);
	pthread_mutex_lock(&db->mu);
	for (size_t i = 0; i < db->blocks.n; i++)
		if (db->blocks.v[i]->maxt - 1 > m)
			m = db->blocks.v[i]->maxt - 1;
	pthread_mutex_unlock(&db->mu);
	return m;
}

size_t db_num_blocks(db_t *db)
{
	pthread_mutex_lock(&db->mu);
	size_t n = db->blocks.n;
	pthread_mutex_unlock(&db->mu);
	return n;
}

void db_publish_metrics(db_t *db)
{
	head_publish_metrics(db->head);
	metric_set(db->m_blocks, (double)db_num_blocks(db));
}
