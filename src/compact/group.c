/*
 * group.c — a stream's planning and compactions (see group.h).
 */
#include "compact/group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/log.h"
#include "base/vec.h"
#include "block/shipper.h"
#include "compact/blockio.h"
#include "compact/cmetrics.h"
#include "compact/planner.h"
#include "store/dedup.h"
#include "tsdb/blockmerge.h"

/* ---- building groups ---- */

static int block_cmp(const void *a, const void *b)
{
	const group_block_t *x = a, *y = b;
	if (x->meta.mint != y->meta.mint)
		return x->meta.mint < y->meta.mint ? -1 : 1;
	return strcmp(x->meta.ulid, y->meta.ulid);
}

static int group_cmp(const void *a, const void *b)
{
	return strcmp(((const group_t *)a)->key, ((const group_t *)b)->key);
}

static void group_add(group_t *g, const block_meta_t *m, bool no_compact)
{
	if (g->n == g->cap) {
		g->cap = alloc_grow_cap(g->cap, g->n + 1);
		g->b = xreallocarray(g->b, g->cap, sizeof *g->b);
	}
	group_block_t *b = &g->b[g->n++];
	meta_copy(&b->meta, m);
	b->no_compact = no_compact;
}

void group_list(const fetch_list_t *l, group_t **out, size_t *n)
{
	VEC(group_t) gs = {0};
	for (size_t i = 0; i < l->n; i++) {
		const fetched_block_t *fb = &l->v[i];
		char key[64];
		fetched_block_group_key(fb, key, sizeof key);
		group_t *g = NULL;
		for (size_t k = 0; k < gs.n && !g; k++)
			if (!strcmp(gs.v[k].key, key))
				g = &gs.v[k];
		if (!g) {
			g = VEC_ADD(&gs);
			snprintf(g->key, sizeof g->key, "%s", key);
			g->resolution = fb->meta.resolution;
			for (size_t k = 0; k < fb->meta.nlabels; k++)
				meta_set_label(&g->labels, fb->meta.labels[2 * k],
				               fb->meta.labels[2 * k + 1]);
		}
		group_add(g, &fb->meta, fb->mark_ms[MARKER_NO_COMPACT] >= 0);
	}
	for (size_t k = 0; k < gs.n; k++)
		if (gs.v[k].n > 1)
			qsort(gs.v[k].b, gs.v[k].n, sizeof *gs.v[k].b, block_cmp);
	if (gs.n > 1)
		qsort(gs.v, gs.n, sizeof *gs.v, group_cmp);
	*out = gs.v;
	*n = gs.n;
}

void group_list_free(group_t *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < g[i].n; k++)
			meta_release(&g[i].b[k].meta);
		free(g[i].b);
		meta_release(&g[i].labels);
	}
	free(g);
}

/* ---- planning ---- */

static planner_block_t *to_planner(const group_t *g)
{
	planner_block_t *pb = xcalloc(g->n ? g->n : 1, sizeof *pb);
	for (size_t i = 0; i < g->n; i++) {
		const block_meta_t *m = &g->b[i].meta;
		pb[i] = (planner_block_t){m->mint,   m->maxt,       g->b[i].no_compact,
		                          m->failed, m->num_series, m->num_tombstones};
	}
	return pb;
}

void group_progress(const group_t *g, const group_env_t *env, size_t *compactions, size_t *blocks)
{
	planner_block_t *pb = to_planner(g);
	planner_progress(pb, g->n, env->ranges, env->nranges, compactions, blocks);
	free(pb);
}

static const char *resolution_label(int64_t res)
{
	return res == 0 ? "0" : res == 300000 ? "300000" : res == 3600000 ? "3600000" : "other";
}

static int64_t index_size(const block_meta_t *m)
{
	for (size_t i = 0; i < m->nfiles; i++)
		if (!strcmp(m->files[i].rel_path, "index"))
			return m->files[i].size_bytes;
	return 0;
}

/* Mark g->b[i] no-compact (persisted) and set it aside. */
static int set_aside(group_t *g, size_t i, const group_env_t *env, const char *reason, const char *details,
                     group_result_t *res, err_t *err)
{
	g->b[i].no_compact = true;
	int rc = cmetrics_mark(env->bkt, g->b[i].meta.ulid, MARKER_NO_COMPACT, reason, details, err);
	if (!rc)
		res->marked_no_compact++;
	return rc;
}

/* ---- one compaction ---- */

typedef struct dl_job {
	bucket_t *bkt;
	const char *ulid;
	char dir[4096]; /* local block directory */
	int rc;
	err_t err;
} dl_job_t;

static void download_one(void *arg, size_t i)
{
	dl_job_t *j = &((dl_job_t *)arg)[i];
	j->rc = blockio_download(j->bkt, j->ulid, j->dir, &j->err);
}

/* Dedup of overlapping samples through store/dedup.h, so the querier's algorithm (and its
 * improvements) apply to offline dedup too. */
typedef struct dedup_merger {
	blockmerge_merger_t base;
	dedup_mode_t mode;
	dedup_iter_t it;
	dedup_cursor_t *cur;
	size_t cap;
} dedup_merger_t;

static sample_iter_t *dedup_merge(blockmerge_merger_t *m, sample_iter_t *const *its, size_t n)
{
	dedup_merger_t *d = (dedup_merger_t *)m;
	if (n > d->cap) {
		d->cap = n;
		d->cur = xreallocarray(d->cur, n, sizeof *d->cur);
	}
	dedup_iter_init(&d->it, d->cur, its, n, d->mode, false);
	return &d->it.base;
}

/* Equal external labels as in the blocks' own meta.json (replica labels included, where the group's
 * metas have them dropped): blocks of one stream, e.g. one replica's. */
static bool same_labels(const block_meta_t *a, const block_meta_t *b)
{
	if (a->nlabels != b->nlabels)
		return false;
	for (size_t i = 0; i < 2 * a->nlabels; i++)
		if (strcmp(a->labels[i], b->labels[i]))
			return false;
	return true;
}

/* The merge's progress callback: stops it when asked to, and logs a progress line every 30s of a
 * long compaction. */
typedef struct progress {
	atomic_bool *stop;
	const char *group;
	uint64_t last_ns;
} progress_t;

static bool keep_going(void *arg, uint64_t series)
{
	progress_t *p = arg;
	uint64_t now = clock_mono_ns();
	if (now - p->last_ns >= 30ull * 1000000000) {
		p->last_ns = now;
		char n[32];
		snprintf(n, sizeof n, "%llu", (unsigned long long)series);
		log_info("compaction in progress", "group", p->group, "series_written", n);
	}
	return !atomic_load(p->stop);
}

static int source_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* The output's meta: level, sources, parents, the stream's thanos section. */
static void output_meta(const group_t *g, const size_t *idx, size_t k, block_meta_t *m)
{
	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < k; i++) {
		const block_meta_t *in = &g->b[idx[i]].meta;
		if (in->level + 1 > m->level)
			m->level = in->level + 1;
		for (size_t s = 0; s < in->nsources; s++)
			meta_add_source(m, in->sources[s]);
		if (!in->nsources)
			meta_add_source(m, in->ulid);
		m->parents = xreallocarray(m->parents, m->nparents + 1, sizeof *m->parents);
		block_parent_t *p = &m->parents[m->nparents++];
		snprintf(p->ulid, sizeof p->ulid, "%s", in->ulid);
		p->mint = in->mint;
		p->maxt = in->maxt;
	}
	qsort(m->sources, m->nsources, sizeof *m->sources, source_cmp);
	size_t w = 0;
	for (size_t i = 0; i < m->nsources; i++)
		if (!w || strcmp(m->sources[w - 1], m->sources[i]))
			memmove(m->sources[w++], m->sources[i], sizeof *m->sources);
	m->nsources = w;
	m->has_thanos = true;
	for (size_t i = 0; i < g->labels.nlabels; i++)
		meta_set_label(m, g->labels.labels[2 * i], g->labels.labels[2 * i + 1]);
	m->resolution = g->resolution;
	m->source = xstrdup("compactor");
}

/* Replace the inputs idx[0..k) of g by the block in dir (NULL: none, the output was empty). */
static int replace_inputs(group_t *g, const size_t *idx, size_t k, const char *dir, err_t *err)
{
	block_meta_t nm;
	if (dir && meta_read(&nm, dir, err))
		return err_wrap(err, "compacted block");
	size_t w = 0, oi = 0;
	for (size_t i = 0; i < g->n; i++) {
		if (oi < k && idx[oi] == i) {
			oi++;
			meta_release(&g->b[i].meta);
			continue;
		}
		g->b[w++] = g->b[i];
	}
	g->n = w;
	if (dir) {
		group_add(g, &nm, false);
		meta_release(&nm);
		qsort(g->b, g->n, sizeof *g->b, block_cmp);
	}
	return 0;
}

/* One compaction of g->b[idx[0..k)]. Returns 0 after the inputs were replaced in g, 1 when an input
 * turned out unreadable (it is marked and set aside; plan again), or an error. */
static int compact_one(group_t *g, const size_t *idx, size_t k, bool vertical, const group_env_t *env,
                       group_result_t *res, err_t *err)
{
	const char *resl = resolution_label(g->resolution);
	metric_inc(metric_with(cmetrics.group_runs_started, resl));
	uint64_t t0 = clock_mono_ns();
	char dir[4096], outdir[4200];
	snprintf(dir, sizeof dir, "%s/%s", env->work_dir, g->key);
	snprintf(outdir, sizeof outdir, "%s/out", dir);
	int rc = fsutil_rm_rf(dir, err);
	if (!rc)
		rc = fsutil_mkdir_p(dir, err);
	if (rc)
		return rc;
	{
		buf_t ids = BUF_INIT;
		for (size_t i = 0; i < k; i++)
			buf_printf(&ids, "%s%s", i ? "," : "", g->b[idx[i]].meta.ulid);
		char nb[32];
		snprintf(nb, sizeof nb, "%zu", k);
		log_info("compacting blocks", "group", g->key, "blocks", nb, "ids", ids.p, "vertical",
		         vertical ? "true" : "false");
		buf_release(&ids);
	}
	dl_job_t *jobs = xcalloc(k, sizeof *jobs);
	for (size_t i = 0; i < k; i++) {
		jobs[i].bkt = env->bkt;
		jobs[i].ulid = g->b[idx[i]].meta.ulid;
		snprintf(jobs[i].dir, sizeof jobs[i].dir, "%s/%s", dir, g->b[idx[i]].meta.ulid);
	}
	workers_parallel_for(env->download_pool, k, download_one, jobs);
	block_t **in = xcalloc(k, sizeof *in);
	int bad = -1;
	for (size_t i = 0; !rc && i < k; i++) {
		if (jobs[i].rc) {
			*err = jobs[i].err;
			rc = err_wrap(err, "download block %s", jobs[i].ulid);
			if (jobs[i].rc == ERR_CORRUPT)
				bad = (int)i;
			break;
		}
		if ((rc = block_open(&in[i], jobs[i].dir, err)) != 0)
			bad = (int)i;
	}
	blockmerge_result_t mr = {.bad_input = -1};
	block_meta_t m = {0};
	if (!rc && atomic_load(env->stop))
		rc = err_set(err, ERR_CANCELED, "compaction of group %s stopped", g->key);
	if (!rc) {
		output_meta(g, idx, k, &m);
		dedup_merger_t dm = {.base = {dedup_merge}, .mode = (dedup_mode_t)env->dedup_mode};
		progress_t pg = {env->stop, g->key, clock_mono_ns()};
		size_t *streams = xcalloc(k, sizeof *streams);
		for (size_t i = 0; i < k; i++) {
			streams[i] = i;
			for (size_t j = 0; j < i; j++)
				if (same_labels(&in[i]->meta, &in[j]->meta)) {
					streams[i] = streams[j];
					break;
				}
		}
		blockmerge_opts_t o = {.merger = &dm.base,
		                       .streams = streams,
		                       .progress = keep_going,
		                       .progress_arg = &pg,
		                       .progress_every = 1024};
		rc = blockmerge_run(in, k, outdir, &m, &o, &mr, err);
		free(dm.cur);
		free(streams);
		if (rc && mr.bad_input >= 0)
			bad = mr.bad_input;
	}
	for (size_t i = 0; i < k; i++)
		block_close(in[i]);
	free(in);
	free(jobs);
	if (rc && bad >= 0 && (rc == ERR_CORRUPT || rc == ERR_INVALID)) {
		/* An unreadable input: set it aside with the reason, the rest of the stream goes on. */
		meta_release(&m);
		err_t e2 = {0};
		int mrc = set_aside(g, idx[bad], env, MARKER_REASON_CORRUPT, err->msg, res, &e2);
		fsutil_rm_rf(dir, NULL);
		log_error("block cannot be compacted; marked no-compact, compaction goes on without it",
		          "group", g->key, "block", g->b[idx[bad]].meta.ulid, "err", err->msg);
		if (mrc) {
			*err = e2;
			return mrc;
		}
		err_clear(err);
		return 1;
	}
	if (!rc && !mr.empty && (rc = blockmerge_verify(mr.dir, err)) != 0)
		log_error("compacted block failed verification; not uploaded", "group", g->key, "err",
		          err->msg);
	char ulid[ULID_LEN + 1] = "";
	if (!rc && !mr.empty) {
		const char *slash = strrchr(mr.dir, '/');
		snprintf(ulid, sizeof ulid, "%s", slash ? slash + 1 : mr.dir);
		log_info("uploading compacted block", "group", g->key, "block", ulid);
		block_upload_opts_t uo = {.source = "compactor", .keep_source = true};
		rc = shipper_upload_block(env->bkt, outdir, ulid, &uo, err);
	}
	/* Only now are the inputs marked: the output is complete in the bucket (or there is none). */
	for (size_t i = 0; !rc && i < k; i++) {
		rc = cmetrics_mark(env->bkt, g->b[idx[i]].meta.ulid, MARKER_DELETION,
		                   mr.empty ? "compacted-empty" : "compacted",
		                   ulid[0] ? ulid : "compaction left no samples", err);
		if (!rc)
			res->marked_deletion++;
	}
	meta_release(&m);
	if (!rc)
		rc = replace_inputs(g, idx, k, mr.empty ? NULL : mr.dir, err);
	fsutil_rm_rf(dir, NULL);
	if (rc) {
		metric_inc(metric_with(cmetrics.group_failures, resl));
		return rc;
	}
	res->compactions++;
	metric_inc(metric_with(cmetrics.group_runs_completed, resl));
	if (!mr.empty)
		metric_inc(metric_with(cmetrics.group_compactions, resl));
	if (vertical) {
		res->vertical++;
		metric_inc(metric_with(cmetrics.group_vertical, resl));
	}
	double secs = clock_since_s(t0);
	metric_observe(metric_with(cmetrics.group_duration, resl), secs);
	char a[32], b[32], c[32], d[32], e[32];
	snprintf(a, sizeof a, "%llu", (unsigned long long)mr.series);
	snprintf(b, sizeof b, "%llu", (unsigned long long)mr.samples);
	snprintf(c, sizeof c, "%llu", (unsigned long long)mr.chunks_copied);
	snprintf(d, sizeof d, "%llu", (unsigned long long)mr.chunks_reencoded);
	snprintf(e, sizeof e, "%.3fs", secs);
	log_info("compacted blocks", "group", g->key, "block", ulid[0] ? ulid : "(empty)", "series", a,
	         "samples", b, "chunks_copied", c, "chunks_reencoded", d, "duration", e);
	return 0;
}

static bool plan_overlaps(const size_t *idx, size_t k, const group_t *g)
{
	for (size_t i = 1; i < k; i++)
		for (size_t j = 0; j < i; j++)
			if (g->b[idx[i]].meta.mint < g->b[idx[j]].meta.maxt &&
			    g->b[idx[j]].meta.mint < g->b[idx[i]].meta.maxt)
				return true;
	return false;
}

int group_compact(group_t *g, const group_env_t *env, group_result_t *res, err_t *err)
{
	memset(res, 0, sizeof *res);
	size_t *idx = xcalloc(g->n + 1, sizeof *idx);
	size_t cap = g->n + 1;
	int rc = 0;
	for (;;) {
		if (atomic_load(env->stop)) {
			rc = err_set(err, ERR_CANCELED, "compaction of group %s stopped", g->key);
			break;
		}
		if (g->n + 1 > cap) {
			cap = g->n + 1;
			idx = xreallocarray(idx, cap, sizeof *idx);
		}
		planner_block_t *pb = to_planner(g);
		size_t k = planner_overlaps(pb, g->n, idx);
		if (k && (g->resolution != 0 || !env->vertical)) {
			free(pb);
			for (size_t i = 0; !rc && i < k; i++) {
				group_block_t *b = &g->b[idx[i]];
				if (g->resolution != 0) {
					rc = set_aside(g, idx[i], env, MARKER_REASON_DOWNSAMPLE_VERTICAL,
					               "overlapping downsampled blocks cannot be merged", res,
					               err);
				} else {
					b->no_compact = true; /* this iteration only */
					res->skipped_overlaps++;
					log_warn("overlapping blocks left alone: vertical compaction is off",
					         "group", g->key, "block", b->meta.ulid);
				}
			}
			if (rc)
				break;
			continue;
		}
		k = planner_plan(pb, g->n, env->ranges, env->nranges, idx);
		free(pb);
		if (k == 0)
			break;
		/* Index size guard: the biggest input goes when the plan's indexes get too big. */
		int64_t total = 0, biggest = -1;
		size_t bi = 0;
		for (size_t i = 0; i < k; i++) {
			int64_t sz = index_size(&g->b[idx[i]].meta);
			total += sz;
			if (sz > biggest)
				biggest = sz, bi = idx[i];
		}
		if (k > 1 && (double)total >= 0.85 * (double)env->max_index_size) {
			char det[160];
			snprintf(det, sizeof det,
			         "index sizes of a planned compaction add up to %lld bytes (limit %lld)",
			         (long long)total, (long long)env->max_index_size);
			if ((rc = set_aside(g, bi, env, MARKER_REASON_INDEX_SIZE, det, res, err)))
				break;
			continue;
		}
		rc = compact_one(g, idx, k, plan_overlaps(idx, k, g), env, res, err);
		if (rc == 1) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
	}
	free(idx);
	return rc;
}
