/*
 * compactor.c — one iteration of the compactor main loop (see compactor.h).
 */
#include "compact/compactor.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/log.h"
#include "base/workers.h"
#include "block/fetcher.h"
#include "compact/cleanup.h"
#include "compact/cmetrics.h"
#include "compact/downsampler.h"
#include "tsdb/downsample.h"
#include "compact/group.h"
#include "compact/planner.h"
#include "store/dedup.h"

struct compactor {
	compactor_config_t cfg;
	char *data_dir, *work_dir, *meta_dir, *ds_dir;
	char **replica;
	int dedup_mode;
	size_t nranges;
	block_fetcher_t *fetcher;
	workers_t *group_pool, *download_pool, *ds_pool;
	atomic_bool stop;
	pthread_mutex_t mu; /* stats, ids */
	compactor_stats_t stats;
	char (*ids)[ULID_LEN + 1]; /* the last main sync's selection (compactor_block_ids) */
	size_t nids;
};

/* The configuration's checks; the dedup mode and the number of level ranges on success. */
static int check_config(const compactor_config_t *cfg, dedup_mode_t *mode, int *level, err_t *err)
{
	*mode = DEDUP_CHAIN; /* "": one-to-one, identical timestamps collapsed */
	const char *f = cfg->dedup_func ? cfg->dedup_func : "";
	if (*f && dedup_mode_parse(str_c(f), mode))
		return err_set(
		    err, ERR_INVALID,
		    "--deduplication.func: unknown \"%s\" (want \"\", penalty, penalty-thanos or chain)", f);
	*level = cfg->max_level ? cfg->max_level : PLANNER_MAX_LEVEL;
	if (*level < 1 || *level > PLANNER_MAX_LEVEL)
		return err_set(err, ERR_INVALID, "--debug.max-compaction-level: %d is not in [1, %d]", *level,
		               PLANNER_MAX_LEVEL);
	if (!cfg->bkt || !cfg->data_dir || !*cfg->data_dir)
		return err_set(err, ERR_INVALID, "compactor: a bucket and a data directory are required");
	return 0;
}

int compactor_check_config(const compactor_config_t *cfg, err_t *err)
{
	dedup_mode_t mode;
	int level;
	return check_config(cfg, &mode, &level, err);
}

int compactor_new(compactor_t **out, const compactor_config_t *cfg, err_t *err)
{
	*out = NULL;
	dedup_mode_t mode;
	int level;
	if (check_config(cfg, &mode, &level, err))
		return err->code;
	cmetrics_init();
	compactor_t *c = xcalloc(1, sizeof *c);
	c->cfg = *cfg;
	c->dedup_mode = (int)mode;
	c->nranges = (size_t)level;
	c->data_dir = xstrdup(cfg->data_dir);
	size_t n = strlen(c->data_dir) + 32;
	c->work_dir = xmalloc(n);
	snprintf(c->work_dir, n, "%s/compact", c->data_dir);
	c->meta_dir = xmalloc(n);
	snprintf(c->meta_dir, n, "%s/meta-syncer", c->data_dir);
	c->ds_dir = xmalloc(n);
	snprintf(c->ds_dir, n, "%s/downsample", c->data_dir);
	c->replica = xcalloc(cfg->nreplica_labels + 1, sizeof *c->replica);
	for (size_t i = 0; i < cfg->nreplica_labels; i++)
		c->replica[i] = xstrdup(cfg->replica_labels[i]);
	c->cfg.replica_labels = c->replica;
	c->cfg.data_dir = c->data_dir;
	c->cfg.dedup_func = NULL;
	if (c->cfg.max_index_size <= 0)
		c->cfg.max_index_size = 64ll << 30;
	int rc = fsutil_mkdir_p(c->meta_dir, err);
	if (rc) {
		compactor_free(c);
		return rc;
	}
	c->fetcher = block_fetcher_new(&(block_fetcher_config_t){
	    .bkt = cfg->bkt, .cache_dir = c->meta_dir, .concurrency = cfg->meta_fetch_concurrency});
	if (cfg->concurrency > 1)
		c->group_pool = workers_new(cfg->concurrency - 1);
	if (cfg->fetch_concurrency > 1)
		c->download_pool = workers_new(cfg->fetch_concurrency - 1);
	if (cfg->downsample_concurrency > 1)
		c->ds_pool = workers_new(cfg->downsample_concurrency - 1);
	atomic_init(&c->stop, false);
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void compactor_free(compactor_t *c)
{
	if (!c)
		return;
	block_fetcher_free(c->fetcher);
	workers_free(c->group_pool);
	workers_free(c->download_pool);
	workers_free(c->ds_pool);
	for (size_t i = 0; i < c->cfg.nreplica_labels; i++)
		free(c->replica[i]);
	free(c->replica);
	free(c->data_dir);
	free(c->work_dir);
	free(c->meta_dir);
	free(c->ds_dir);
	pthread_mutex_destroy(&c->mu);
	free(c->ids);
	free(c);
}

void compactor_stop(compactor_t *c)
{
	atomic_store(&c->stop, true);
}

void compactor_stats(compactor_t *c, compactor_stats_t *out)
{
	pthread_mutex_lock(&c->mu);
	*out = c->stats;
	pthread_mutex_unlock(&c->mu);
}

size_t compactor_block_ids(compactor_t *c, arena_t *a, const char ***ids)
{
	pthread_mutex_lock(&c->mu);
	const char **v = arena_calloc(a, c->nids + 1, sizeof *v);
	for (size_t i = 0; i < c->nids; i++)
		v[i] = arena_strdup(a, c->ids[i]);
	size_t n = c->nids;
	pthread_mutex_unlock(&c->mu);
	*ids = v;
	return n;
}

static void set_ids(compactor_t *c, const fetch_list_t *l)
{
	char(*ids)[ULID_LEN + 1] = xcalloc(l->n + 1, sizeof *ids);
	for (size_t i = 0; i < l->n; i++)
		snprintf(ids[i], sizeof ids[i], "%s", l->v[i].ulid);
	pthread_mutex_lock(&c->mu);
	free(c->ids);
	c->ids = ids;
	c->nids = l->n;
	pthread_mutex_unlock(&c->mu);
}

static void add_stats(compactor_t *c, const compactor_stats_t *d)
{
	pthread_mutex_lock(&c->mu);
	c->stats.compactions += d->compactions;
	c->stats.vertical += d->vertical;
	c->stats.marked_no_compact += d->marked_no_compact;
	c->stats.marked_deletion += d->marked_deletion;
	c->stats.gc += d->gc;
	c->stats.deleted += d->deleted;
	c->stats.partial_deleted += d->partial_deleted;
	c->stats.skipped += d->skipped;
	c->stats.downsampled += d->downsampled;
	pthread_mutex_unlock(&c->mu);
}

/* Step 1: the blocks this compactor works on. */
static int sync_blocks(compactor_t *c, fetch_list_t *l, err_t *err)
{
	int rc = block_fetcher_fetch(c->fetcher, l, err);
	if (rc)
		return rc;
	int64_t now = clock_now_ms();
	fetch_filter_time(l, c->cfg.min_time, c->cfg.max_time);
	fetch_drop_labels(l, c->replica, c->cfg.nreplica_labels);
	if (c->cfg.select)
		fetch_filter_labels(l, c->cfg.select, c->cfg.select_arg);
	fetch_filter_consistency(l, c->cfg.consistency_delay_ms, now);
	fetch_filter_deleted(l, 0, now);
	fetch_filter_duplicates(l);
	fetch_list_publish(l);
	set_ids(c, l);
	return 0;
}

/* Step 2: duplicates (sources covered by another block of the stream) marked for deletion. */
static int garbage_collect(compactor_t *c, const fetch_list_t *l, size_t *marked, err_t *err)
{
	int first = 0;
	*marked = 0;
	for (size_t i = 0; i < l->ndropped; i++) {
		const fetched_block_t *fb = &l->dropped[i];
		if (fb->state != FETCH_DUPLICATE || fb->mark_ms[MARKER_DELETION] >= 0)
			continue;
		err_t e = {0};
		int rc = cmetrics_mark(c->cfg.bkt, fb->ulid, MARKER_DELETION, "duplicate",
		                       "all its sources are in another block of its stream", &e);
		if (rc) {
			log_error("marking a duplicate block failed", "block", fb->ulid, "err", e.msg);
			if (!first) {
				first = rc;
				*err = e;
			}
			continue;
		}
		metric_inc(metric_with(cmetrics.gc_blocks));
		(*marked)++;
	}
	return first;
}

typedef struct gjob {
	compactor_t *c;
	group_t *g;
	group_env_t env;
	group_result_t res;
	int rc;
	err_t err;
} gjob_t;

static void set_progress(const group_t *g, const group_env_t *env)
{
	size_t todo, blocks;
	group_progress(g, env, &todo, &blocks);
	metric_set(metric_with(cmetrics.todo_compactions, g->key), (double)todo);
	metric_set(metric_with(cmetrics.todo_compaction_blocks, g->key), (double)blocks);
}

static void run_group(void *arg, size_t i)
{
	gjob_t *j = &((gjob_t *)arg)[i];
	j->rc = group_compact(j->g, &j->env, &j->res, &j->err);
	set_progress(j->g, &j->env);
	if (j->rc && j->rc != ERR_CANCELED)
		log_error("compaction of a group failed; retried next iteration", "group", j->g->key, "err",
		          j->err.msg);
}

/* Step 3: every stream compacted until nothing is left. */
static int compact_groups(compactor_t *c, const fetch_list_t *l, compactor_stats_t *st, err_t *err)
{
	group_t *gs;
	size_t ng;
	group_list(l, &gs, &ng);
	gjob_t *jobs = xcalloc(ng ? ng : 1, sizeof *jobs);
	size_t marked = 0;
	for (size_t i = 0; i < ng; i++) {
		jobs[i].c = c;
		jobs[i].g = &gs[i];
		jobs[i].env = (group_env_t){.bkt = c->cfg.bkt,
		                            .work_dir = c->work_dir,
		                            .download_pool = c->download_pool,
		                            .ranges = planner_default_ranges,
		                            .nranges = c->nranges,
		                            .vertical = c->cfg.vertical,
		                            .dedup_mode = c->dedup_mode,
		                            .max_index_size = c->cfg.max_index_size,
		                            .stop = &c->stop};
		set_progress(&gs[i], &jobs[i].env);
		for (size_t k = 0; k < gs[i].n; k++)
			marked += gs[i].b[k].no_compact;
	}
	workers_parallel_for(c->group_pool, ng, run_group, jobs);
	int rc = 0;
	size_t overlaps = 0;
	for (size_t i = 0; i < ng; i++) {
		st->compactions += jobs[i].res.compactions;
		st->vertical += jobs[i].res.vertical;
		st->marked_no_compact += jobs[i].res.marked_no_compact;
		st->marked_deletion += jobs[i].res.marked_deletion;
		overlaps += jobs[i].res.skipped_overlaps;
		if (jobs[i].rc && !rc) {
			rc = jobs[i].rc;
			*err = jobs[i].err;
		}
	}
	st->skipped += marked + overlaps;
	metric_set(metric_with(cmetrics.skipped, "no-compact-mark"), (double)marked);
	metric_set(metric_with(cmetrics.skipped, "overlap-vertical-compaction-off"), (double)overlaps);
	metric_set(metric_with(cmetrics.skipped, "too-fresh"), (double)l->counts[FETCH_TOO_FRESH]);
	free(jobs);
	group_list_free(gs, ng);
	return rc;
}

/* Step 4: a pass raw -> 5m, then 5m -> 1h, each on a fresh view of the bucket. */
static int downsample(compactor_t *c, compactor_stats_t *st, err_t *err)
{
	static const int64_t res[2] = {DOWNSAMPLE_RES_5M, DOWNSAMPLE_RES_1H};
	downsampler_env_t env = {
	    .bkt = c->cfg.bkt, .work_dir = c->ds_dir, .pool = c->ds_pool, .stop = &c->stop};
	int first = 0;
	for (int i = 0; i < 2 && !atomic_load(&c->stop); i++) {
		fetch_list_t l;
		int rc = sync_blocks(c, &l, err);
		if (rc)
			return rc;
		size_t n = 0;
		err_t e = {0};
		if ((rc = downsampler_pass(&env, &l, res[i], &n, &e)) != 0 && !first) {
			first = rc;
			*err = e;
		}
		st->downsampled += n;
		fetch_list_release(&l);
	}
	fsutil_rm_rf(c->ds_dir, NULL);
	return first;
}

/* Steps 5-6 on a fresh view of the bucket. */
static int retention_and_cleanup(compactor_t *c, bool retention, compactor_stats_t *st, err_t *err)
{
	fetch_list_t l;
	int rc = sync_blocks(c, &l, err);
	if (rc)
		return rc;
	int first = 0;
	err_t e = {0};
	int64_t now = clock_now_ms();
	size_t n = 0;
	if (retention && (rc = cleanup_retention(c->cfg.bkt, &l, c->cfg.retention_ms, now, &n, &e)) != 0 &&
	    !first)
		first = rc, *err = e;
	st->marked_deletion += n;
	if (n) { /* the new marks are seen by a fresh fetch */
		fetch_list_release(&l);
		if ((rc = sync_blocks(c, &l, err)))
			return rc;
	}
	if ((rc = cleanup_deleted(c->cfg.bkt, &l, c->cfg.delete_delay_ms, now, &n, &e)) != 0 && !first)
		first = rc, *err = e;
	st->deleted += n;
	if ((rc = cleanup_partial(c->cfg.bkt, &l, now, &n, &e)) != 0 && !first)
		first = rc, *err = e;
	st->partial_deleted += n;
	fetch_list_release(&l);
	return first;
}

int compactor_cleanup(compactor_t *c, err_t *err)
{
	compactor_stats_t st = {0};
	int rc = retention_and_cleanup(c, false, &st, err);
	add_stats(c, &st);
	return rc;
}

int compactor_run(compactor_t *c, err_t *err)
{
	uint64_t t0 = clock_mono_ns();
	compactor_stats_t st = {0};
	log_info("compaction iteration started");
	/* Whatever a stopped or crashed run left locally is useless now. */
	int rc = fsutil_rm_rf(c->work_dir, err);
	if (!rc)
		rc = fsutil_mkdir_p(c->work_dir, err);
	fetch_list_t l = {0};
	if (!rc)
		rc = sync_blocks(c, &l, err);
	if (rc) {
		fetch_list_release(&l);
		return err_wrap(err, "compaction iteration");
	}
	err_t e = {0};
	int first = garbage_collect(c, &l, &st.gc, &e);
	if (first)
		*err = e;
	rc = compact_groups(c, &l, &st, &e);
	fetch_list_release(&l);
	if (rc && !first)
		first = rc, *err = e;
	if (!rc && !c->cfg.downsampling_disable && !atomic_load(&c->stop)) {
		rc = downsample(c, &st, &e);
		if (rc && !first)
			first = rc, *err = e;
	}
	if (!atomic_load(&c->stop)) {
		/* Retention only after a clean compaction (a failed one may still hold blocks it needs);
		 * cleanup always. */
		rc = retention_and_cleanup(c, rc == 0, &st, &e);
		if (rc && !first)
			first = rc, *err = e;
	} else if (!first) {
		first = err_set(err, ERR_CANCELED, "compaction iteration stopped");
	}
	add_stats(c, &st);
	double secs = clock_since_s(t0);
	metric_observe(metric_with(cmetrics.iteration_duration), secs);
	char a[32], b[32], d[32], f[32], g[32], h[32];
	char ds[32];
	snprintf(ds, sizeof ds, "%zu", st.downsampled);
	snprintf(a, sizeof a, "%zu", st.compactions);
	snprintf(b, sizeof b, "%zu", st.marked_no_compact);
	snprintf(d, sizeof d, "%zu", st.deleted + st.partial_deleted);
	snprintf(f, sizeof f, "%zu", st.gc);
	snprintf(g, sizeof g, "%zu", st.skipped);
	snprintf(h, sizeof h, "%.3fs", secs);
	if (first) {
		log_error("compaction iteration failed; the next one retries", "err", err->msg, "compactions",
		          a, "duration", h);
		fsutil_rm_rf(c->work_dir, NULL);
		return first;
	}
	metric_inc(metric_with(cmetrics.iterations));
	log_info("compaction iteration done", "compactions", a, "marked_no_compact", b, "garbage_collected",
	         f, "deleted", d, "skipped", g, "duration", h);
	return 0;
}
