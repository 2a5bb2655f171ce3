/*
 * headreplay.c — opening a head: chunks_head/ + the newest checkpoint + WAL segments (+ the
 * out-of-order WAL), torn-tail repair, and writing checkpoints.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "tsdb/head_int.h"

#define CHECKPOINT_PREFIX "checkpoint."

/* ---- metrics ---- */

static metric_child_t *child(metric_t *m, const head_opts_t *o)
{
	return o->metrics_tenant ? metric_with(m, o->metrics_tenant) : metric_with(m);
}

static void observe_fsync(void *arg, double s)
{
	metric_observe((metric_child_t *)arg, s);
}

static void init_metrics(head_t *h)
{
	const char *tl = h->o.metrics_tenant ? "tenant" : NULL;
	const char *tt = h->o.metrics_tenant ? "type,tenant" : "type";
	const head_opts_t *o = &h->o;
#define TYPED(m)                                                                                             \
	(o->metrics_tenant ? metric_with((m), "float", o->metrics_tenant) : metric_with((m), "float"))
	h->m_series = child(
	    metrics_gauge("prometheus_tsdb_head_series", "Total number of series in the head block.", tl), o);
	h->m_appended = TYPED(metrics_counter("prometheus_tsdb_head_samples_appended_total",
	                                      "Total number of appended samples.", tt));
	h->m_oob = TYPED(metrics_counter("prometheus_tsdb_out_of_bound_samples_total",
	                                 "Total number of out of bound samples ingestion failed attempts "
	                                 "with out of order support disabled.",
	                                 tt));
	h->m_ooo_rejected = TYPED(metrics_counter("prometheus_tsdb_out_of_order_samples_total",
	                                          "Total number of out of order samples ingestion failed "
	                                          "attempts due to out of order being disabled.",
	                                          tt));
	h->m_too_old =
	    TYPED(metrics_counter("prometheus_tsdb_too_old_samples_total",
	                          "Total number of out of order samples ingestion failed attempts with out "
	                          "of support enabled, but sample outside of time window.",
	                          tt));
#undef TYPED
	h->m_created = child(metrics_counter("prometheus_tsdb_head_series_created_total",
	                                     "Total number of series created in the head", tl),
	                     o);
	h->m_removed = child(metrics_counter("prometheus_tsdb_head_series_removed_total",
	                                     "Total number of series removed in the head", tl),
	                     o);
	h->m_chunks_created = child(metrics_counter("prometheus_tsdb_head_chunks_created_total",
	                                            "Total number of chunks created in the head", tl),
	                            o);
	h->m_truncations = child(metrics_counter("prometheus_tsdb_head_truncations_total",
	                                         "Total number of head truncations attempted.", tl),
	                         o);
	h->m_fsync = child(metrics_histogram("prometheus_tsdb_wal_fsync_duration_seconds",
	                                     "Duration of WAL fsync.", tl,
	                                     (const double[]){0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	                                                      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
	                                     13),
	                   o);
	h->m_wal_corruptions = child(
	    metrics_counter("prometheus_tsdb_wal_corruptions_total", "Total number of WAL corruptions.", tl),
	    o);
	h->m_replay = child(metrics_gauge("prometheus_tsdb_data_replay_duration_seconds",
	                                  "Time taken to replay the data on disk.", tl),
	                    o);
	h->m_checkpoints = child(metrics_counter("prometheus_tsdb_checkpoint_creations_total",
	                                         "Total number of checkpoint creations attempted.", tl),
	                         o);
	h->m_ooo_appended = child(metrics_counter("prometheus_tsdb_head_out_of_order_samples_appended_total",
	                                          "Total number of appended out of order samples.", tl),
	                          o);
	h->m_min_time = child(
	    metrics_gauge("prometheus_tsdb_head_min_time", "Minimum time bound of the head block.", tl), o);
	h->m_max_time = child(
	    metrics_gauge("prometheus_tsdb_head_max_time", "Maximum timestamp of the head block.", tl), o);
}

void head_publish_metrics(head_t *h)
{
	err_t err = {0};
	if (headchunks_flush(h->hc, &err) != 0)
		log_warn("writing head chunks failed (the WAL still has their samples)", "err", err.msg);
	metric_set(h->m_series, (double)head_num_series(h));
	int64_t mn = head_min_time(h), mx = head_max_time(h);
	metric_set(h->m_min_time, mn == INT64_MAX ? 0 : (double)mn);
	metric_set(h->m_max_time, mx == INT64_MIN ? 0 : (double)mx);
}

/* ---- checkpoint directories ---- */

/* Newest checkpoint.N in dir (no .tmp): *idx = N and path, or -1. */
static int last_checkpoint(const char *dir, int *idx, char *path, err_t *err)
{
	*idx = -1;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_errno(err, "wal: open %s", dir);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (strncmp(n, CHECKPOINT_PREFIX, strlen(CHECKPOINT_PREFIX)) != 0)
			continue;
		const char *num = n + strlen(CHECKPOINT_PREFIX);
		size_t k = strlen(num);
		if (!k || k > 9 || strspn(num, "0123456789") != k)
			continue;
		int v = atoi(num);
		if (v > *idx) {
			*idx = v;
			snprintf(path, 4096, "%s/%s", dir, n);
		}
	}
	closedir(d);
	return 0;
}

/* Delete checkpoint.N (and leftover .tmp dirs) with N < before. */
static void delete_checkpoints(const char *dir, int before)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (strncmp(n, CHECKPOINT_PREFIX, strlen(CHECKPOINT_PREFIX)) != 0)
			continue;
		int v = atoi(n + strlen(CHECKPOINT_PREFIX));
		bool tmp = strstr(n, ".tmp") != NULL;
		if (v < before || tmp) {
			char p[4096];
			snprintf(p, sizeof p, "%s/%s", dir, n);
			fileio_rm_rf(p);
		}
	}
	closedir(d);
}

/* ---- replay ---- */

typedef struct replay {
	head_t *h;
	int64_t min_valid;
	imap_t remap;          /* WAL ref -> series id, where they differ */
	imap_t mm_index;       /* series ref -> index into mm */
	VEC(VEC(hchunk_t)) mm; /* full chunks from chunks_head/, per series ref */
	head_replay_stats_t *st;
	buf_t kb;
	VEC(label_t) lbuf;
	bool warned_hist;
	int64_t mint, maxt;
} replay_t;

static int on_mmapped(void *arg, uint64_t sref, uint64_t cref, int64_t mint, int64_t maxt, uint8_t enc)
{
	replay_t *r = arg;
	if (enc != CHUNK_ENC_XOR || maxt < r->min_valid)
		return 0;
	uint64_t ix;
	if (!imap_get(&r->mm_index, sref, &ix)) {
		ix = r->mm.n;
		imap_put(&r->mm_index, sref, ix);
		VEC_ADD(&r->mm);
	}
	VEC_PUSH(&r->mm.v[ix], ((hchunk_t){mint, maxt, cref}));
	r->st->mmapped_chunks++;
	return 0;
}

static hseries_t *series_of(replay_t *r, uint64_t ref)
{
	uint64_t id;
	if (imap_get(&r->remap, ref, &id))
		return head_series_at(r->h, (uint32_t)id);
	return ref <= UINT32_MAX ? head_series_at(r->h, (uint32_t)ref) : NULL;
}

static int cmp_hchunk(const void *a, const void *b)
{
	const hchunk_t *x = a, *y = b;
	return (x->mint > y->mint) - (x->mint < y->mint);
}

static void attach_mmapped(replay_t *r, hseries_t *s, uint64_t ref)
{
	uint64_t ix;
	if (head_mm_count(s) || !imap_get(&r->mm_index, ref, &ix))
		return;
	VEC(hchunk_t) *v = (void *)&r->mm.v[ix];
	if (!v->n)
		return;
	qsort(v->v, v->n, sizeof(hchunk_t), cmp_hchunk);
	/* keep a strictly increasing run (overlapping leftovers of a crash are dropped) */
	size_t k = 0;
	for (size_t i = 0; i < v->n; i++)
		if (!k || v->v[i].mint > v->v[k - 1].maxt)
			v->v[k++] = v->v[i];
	if (k > UINT16_MAX / 2)
		k = UINT16_MAX / 2;
	head_mm_set(r->h, s, v->v, (unsigned)k);
	if (v->v[0].mint < r->mint)
		r->mint = v->v[0].mint;
	if (v->v[k - 1].maxt > r->maxt)
		r->maxt = v->v[k - 1].maxt;
	VEC_FREE(v);
}

static int replay_series(replay_t *r, str_t rec, err_t *err)
{
	walrec_iter_t it;
	int rc = walrec_iter_init(&it, rec, err);
	uint64_t ref;
	labels_t ls;
	while (!rc && (rc = walrec_next_series(&it, &ref, &ls, err)) == 1) {
		/* never hand out a ref the WAL has used, even for a series gone since: older segments may
		 * still hold samples under it */
		if (ref < UINT32_MAX && ref >= r->h->next_id)
			r->h->next_id = (uint32_t)ref + 1;
		VEC_CLEAR(&r->lbuf);
		for (size_t i = 0; i < ls.n; i++)
			VEC_PUSH(&r->lbuf, ls.v[i]);
		labels_t norm = {r->lbuf.v, r->lbuf.n};
		if (labels_normalize(&norm) != 0)
			continue; /* not a valid label set: Prometheus would not have written it */
		uint64_t key[2];
		head_labels_key(&r->kb, &norm, key);
		hseries_t *s = head_series_lookup(r->h, key);
		if (!s) {
			s = head_series_create(r->h, &norm, key, ref <= UINT32_MAX ? (uint32_t)ref : 0);
			r->st->series++;
		}
		if (s->id != ref)
			imap_put(&r->remap, ref, s->id);
		else
			imap_del(&r->remap, ref);
		attach_mmapped(r, s, ref);
		rc = 0;
	}
	walrec_iter_release(&it);
	return rc < 0 ? rc : 0;
}

static int replay_samples(replay_t *r, str_t rec, bool ooo, err_t *err)
{
	walrec_iter_t it;
	int rc = walrec_iter_init(&it, rec, err);
	walrec_sample_t smp;
	head_t *h = r->h;
	while (!rc && (rc = walrec_next_sample(&it, &smp, err)) == 1) {
		rc = 0;
		hseries_t *s = series_of(r, smp.ref);
		if (!s) {
			if (smp.ref < UINT32_MAX && smp.ref >= h->next_id)
				h->next_id =
				    (uint32_t)smp.ref + 1; /* a series gone since: its ref stays unused */
			r->st->skipped_samples++;
			continue;
		}
		if (ooo) {
			if (head_ooo_insert(s, false, smp.t, smp.v)) {
				atomic_fetch_add(&h->ooo_samples, 1);
				r->st->samples++;
			}
			continue;
		}
		if (smp.t < r->min_valid || smp.t <= head_series_maxt(s)) {
			r->st->skipped_samples++;
			continue;
		}
		if ((rc = head_series_append(h, s, smp.t, smp.v, err)) != 0)
			break;
		r->st->samples++;
		if (smp.t < r->mint)
			r->mint = smp.t;
		if (smp.t > r->maxt)
			r->maxt = smp.t;
	}
	walrec_iter_release(&it);
	return rc < 0 ? rc : 0;
}

static int replay_meta(replay_t *r, str_t rec, err_t *err)
{
	walrec_iter_t it;
	int rc = walrec_iter_init(&it, rec, err);
	walrec_meta_t m;
	while (!rc && (rc = walrec_next_metadata(&it, &m, err)) == 1) {
		rc = 0;
		hseries_t *s = series_of(r, m.ref);
		if (s)
			head_series_set_meta(r->h, s, m.type, m.unit, m.help);
	}
	walrec_iter_release(&it);
	return rc < 0 ? rc : 0;
}

static int replay_record(replay_t *r, str_t rec, bool ooo, err_t *err)
{
	r->st->records++;
	switch (walrec_type(rec)) {
	case WALREC_SERIES:
		return ooo ? 0 : replay_series(r, rec, err);
	case WALREC_SAMPLES:
		return replay_samples(r, rec, ooo, err);
	case WALREC_METADATA:
		return ooo ? 0 : replay_meta(r, rec, err);
	case WALREC_HISTOGRAMS:
	case WALREC_FLOAT_HISTOGRAMS:
		if (!r->warned_hist)
			log_warn("WAL holds native histogram samples, which are not supported: skipped",
			         "dir", r->h->dir);
		r->warned_hist = true;
		return 0;
	default: /* tombstones, exemplars, m-map markers: nothing to keep */
		return 0;
	}
}

/* Replay segments [first, last] of dir. A corrupt segment is repaired when repair is set (its tail
 * and every later segment are dropped) and replay stops there; otherwise it is an error. */
static int replay_dir(replay_t *r, const char *dir, int first, int last, bool ooo, bool repair, err_t *err)
{
	for (int seg = first; seg <= last; seg++) {
		char path[4096];
		wal_segment_path(path, dir, seg);
		wal_reader_t rd;
		int rc = wal_reader_open(&rd, path, err);
		if (rc)
			return rc;
		str_t rec;
		while ((rc = wal_reader_next(&rd, &rec, err)) == 1)
			if ((rc = replay_record(r, rec, ooo, err)) != 0)
				break;
		size_t valid_end = rd.valid_end;
		wal_reader_close(&rd);
		if (rc == ERR_CORRUPT && repair) {
			metric_inc(r->h->m_wal_corruptions);
			log_warn("WAL corruption found: truncating at the last valid record", "segment", path,
			         "err", err->msg);
			r->st->wal_repaired = true;
			snprintf(r->st->repair_msg, sizeof r->st->repair_msg, "%s", err->msg);
			char off[32];
			snprintf(off, sizeof off, "%zu", valid_end);
			if ((rc = wal_repair(dir, seg, valid_end, err)) != 0)
				return rc;
			log_info("WAL repaired", "segment", path, "valid_bytes", off);
			return 0;
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int replay_all(head_t *h, int64_t min_valid, head_replay_stats_t *st, err_t *err)
{
	replay_t r = {.h = h, .min_valid = min_valid, .st = st, .mint = INT64_MAX, .maxt = INT64_MIN};
	imap_init(&r.remap, 0);
	imap_init(&r.mm_index, 0);
	buf_init(&r.kb);
	int rc = headchunks_iterate(h->hc, on_mmapped, &r, err);
	char wdir[4096], cp[4096];
	snprintf(wdir, sizeof wdir, "%s/wal", h->dir);
	int cidx = -1, first = -1, last = -1;
	if (!rc)
		rc = last_checkpoint(wdir, &cidx, cp, err);
	if (!rc && cidx >= 0) {
		int cf, cl;
		if (!(rc = wal_segments(cp, &cf, &cl, err)))
			rc = replay_dir(&r, cp, cf, cl, false, false, err);
		if (rc)
			err_wrap(err, "checkpoint %s", cp);
	}
	if (!rc)
		rc = wal_segments(wdir, &first, &last, err);
	if (!rc && first >= 0) {
		if (first <= cidx)
			first = cidx + 1;
		rc = replay_dir(&r, wdir, first, last, false, true, err);
	}
	if (!rc && h->o.ooo_window > 0) {
		char bdir[4096];
		snprintf(bdir, sizeof bdir, "%s/wbl", h->dir);
		if (!(rc = wal_segments(bdir, &first, &last, err)) && first >= 0)
			rc = replay_dir(&r, bdir, first, last, true, true, err);
	}
	head_update_range(h, r.mint, r.maxt);
	for (size_t i = 0; i < r.mm.n; i++)
		VEC_FREE(&r.mm.v[i]);
	VEC_FREE(&r.mm);
	VEC_FREE(&r.lbuf);
	buf_release(&r.kb);
	imap_release(&r.remap);
	imap_release(&r.mm_index);
	return rc;
}

/* ---- open / close ---- */

static void free_tables(head_t *h)
{
	for (size_t i = 0; i < h->all.n; i++) {
		hseries_t *s = head_series_at(h, h->all.v[i]);
		if (!s)
			continue;
		head_series_free(h, s);
	}
	for (size_t i = 0; i < h->pages.n; i++)
		free(h->pages.v[i]);
	VEC_FREE(&h->pages);
	VEC_FREE(&h->page_counts);
	VEC_FREE(&h->all);
	for (size_t i = 0; i < h->syms.n; i++) {
		hsym_t *y = head_sym(h, (uint32_t)i);
		hslab_free(&h->slab, y->p, (size_t)y->len + 1);
	}
	pvec_release(&h->syms);
	for (size_t i = 0; i < h->pairs.n; i++) {
		hpair_t *p = head_pair(h, (uint32_t)i);
		if (p->cap)
			free(p->u.ids);
	}
	pvec_release(&h->pairs);
	for (size_t i = 0; i < h->names.n; i++)
		VEC_FREE(&h->names.v[i].pairs);
	VEC_FREE(&h->names);
	VEC_FREE(&h->free_syms);
	VEC_FREE(&h->free_pairs);
	imap_release(&h->name_idx);
	head_htab_release(&h->series_tab);
	head_htab_release(&h->sym_tab);
	head_htab_release(&h->pair_tab);
	for (size_t i = 0; i < h->families.n; i++) {
		free(h->families.v[i].name);
		free(h->families.v[i].unit);
		free(h->families.v[i].help);
	}
	VEC_FREE(&h->families);
	hmap_release(&h->family_map);
	buf_release(&h->rec_series);
	buf_release(&h->rec_samples);
	buf_release(&h->rec_meta);
	buf_release(&h->rec_ooo);
	VEC_FREE(&h->app_samples);
	VEC_FREE(&h->app_ooo);
	VEC_FREE(&h->app_meta);
	VEC_FREE(&h->app_kinds);
	VEC_FREE(&h->app_ser);
}

static void destroy(head_t *h)
{
	free_tables(h);
	hslab_release(&h->slab);
	hgc_destroy(&h->gc);
	pthread_mutex_destroy(&h->app_mu);
	pthread_rwlock_destroy(&h->idx);
	for (int i = 0; i < HEAD_STRIPES; i++)
		pthread_mutex_destroy(&h->stripes[i]);
	free(h->dir);
	free((char *)h->o.metrics_tenant);
	free(h);
}

int head_open(head_t **out, const char *dir, const head_opts_t *opts, int64_t min_valid_time,
              head_replay_stats_t *stats, err_t *err)
{
	head_replay_stats_t dummy;
	head_replay_stats_t *st = stats ? stats : &dummy;
	memset(st, 0, sizeof *st);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return err_errno(err, "head: mkdir %s", dir);
	head_t *h = xcalloc(1, sizeof *h);
	h->q.ops = &head_queryable_ops;
	h->dir = xstrdup(dir);
	if (opts)
		h->o = *opts;
	if (h->o.chunk_range <= 0)
		h->o.chunk_range = 2 * 3600 * 1000;
	if (h->o.metrics_tenant)
		h->o.metrics_tenant = xstrdup(h->o.metrics_tenant);
	hslab_init(&h->slab);
	hgc_init(&h->gc);
	pthread_mutex_init(&h->app_mu, NULL);
	pthread_rwlock_init(&h->idx, NULL);
	for (int i = 0; i < HEAD_STRIPES; i++)
		pthread_mutex_init(&h->stripes[i], NULL);
	head_htab_init(&h->series_tab, 1024);
	head_htab_init(&h->sym_tab, 1024);
	head_htab_init(&h->pair_tab, 1024);
	pvec_init(&h->syms, sizeof(hsym_t));
	pvec_init(&h->pairs, sizeof(hpair_t));
	imap_init(&h->name_idx, 0);
	hmap_init(&h->family_map, 0);
	buf_init(&h->rec_series);
	buf_init(&h->rec_samples);
	buf_init(&h->rec_meta);
	buf_init(&h->rec_ooo);
	h->next_id = 1;
	atomic_store(&h->mint, INT64_MAX);
	atomic_store(&h->maxt, INT64_MIN);
	atomic_store(&h->min_valid, min_valid_time);
	init_metrics(h);
	uint64_t t0 = clock_mono_ns();
	char path[4096];
	snprintf(path, sizeof path, "%s/chunks_head", dir);
	int rc = headchunks_open(&h->hc, path, &st->chunks_repaired, err);
	if (!rc)
		rc = replay_all(h, min_valid_time, st, err);
	wal_opts_t wo = {.segment_size = h->o.wal_segment_size, .compress = h->o.wal_compression};
	if (!rc) {
		snprintf(path, sizeof path, "%s/wal", dir);
		rc = wal_open(&h->wal, path, &wo, err);
	}
	if (!rc && h->o.ooo_window > 0) {
		snprintf(path, sizeof path, "%s/wbl", dir);
		rc = wal_open(&h->wbl, path, &wo, err);
	}
	if (rc) {
		if (h->wal)
			wal_close(h->wal, NULL);
		if (h->hc)
			headchunks_close(h->hc, NULL);
		destroy(h);
		return rc;
	}
	wal_set_fsync_observer(h->wal, observe_fsync, h->m_fsync);
	if (h->wbl)
		wal_set_fsync_observer(h->wbl, observe_fsync, h->m_fsync);
	st->seconds = clock_since_s(t0);
	metric_set(h->m_replay, st->seconds);
	head_publish_metrics(h);
	*out = h;
	return 0;
}

int head_close(head_t *h, err_t *err)
{
	if (!h)
		return 0;
	err_t e2 = {0};
	int rc = wal_close(h->wal, err);
	if (h->wbl) {
		int r2 = wal_close(h->wbl, rc ? &e2 : err);
		rc = rc ? rc : r2;
	}
	int r3 = headchunks_close(h->hc, rc ? &e2 : err);
	rc = rc ? rc : r3;
	destroy(h);
	return rc;
}

/* ---- checkpoint ---- */

typedef struct cpw {
	head_t *h;
	wal_t *w;
	buf_t rec;
	VEC(walrec_sample_t) smp;
	imap_t refmap; /* ref in the folded WAL -> current id */
	buf_t kb;
	VEC(label_t) lbuf;
	uint64_t kept, dropped;
} cpw_t;

static int cp_flush_samples(cpw_t *c, err_t *err)
{
	if (!c->smp.n)
		return 0;
	buf_reset(&c->rec);
	walrec_samples_encode(&c->rec, c->smp.v, c->smp.n);
	VEC_CLEAR(&c->smp);
	str_t r = buf_str(&c->rec);
	return wal_log(c->w, &r, 1, NULL, err);
}

static int cp_record(cpw_t *c, str_t rec, int64_t mint, err_t *err)
{
	walrec_iter_t it;
	int rc = walrec_iter_init(&it, rec, err);
	if (rc)
		return rc;
	int type = walrec_type(rec);
	if (type == WALREC_SERIES) {
		uint64_t ref;
		labels_t ls;
		while ((rc = walrec_next_series(&it, &ref, &ls, err)) == 1) {
			VEC_CLEAR(&c->lbuf);
			for (size_t i = 0; i < ls.n; i++)
				VEC_PUSH(&c->lbuf, ls.v[i]);
			labels_t norm = {c->lbuf.v, c->lbuf.n};
			if (labels_normalize(&norm) != 0)
				continue;
			uint64_t key[2];
			head_labels_key(&c->kb, &norm, key);
			pthread_mutex_lock(&c->h->app_mu);
			hseries_t *s = head_series_lookup(c->h, key);
			uint32_t id = s ? s->id : 0;
			pthread_mutex_unlock(&c->h->app_mu);
			if (id)
				imap_put(&c->refmap, ref, id);
			else
				imap_del(&c->refmap, ref);
		}
	} else if (type == WALREC_SAMPLES) {
		walrec_sample_t s;
		while ((rc = walrec_next_sample(&it, &s, err)) == 1) {
			uint64_t id;
			if (s.t < mint || !imap_get(&c->refmap, s.ref, &id)) {
				c->dropped++;
				continue;
			}
			s.ref = id;
			VEC_PUSH(&c->smp, s);
			c->kept++;
		}
		if (!rc && c->smp.n >= 65536)
			rc = cp_flush_samples(c, err);
	}
	walrec_iter_release(&it);
	return rc < 0 ? rc : 0;
}

/* Series records for every series in the head, and the metadata of those with a family. */
static int cp_series(cpw_t *c, err_t *err)
{
	head_t *h = c->h;
	int rc = 0;
	buf_t meta = BUF_INIT;
	walrec_metadata_begin(&meta);
	size_t nmeta = 0;
	pthread_mutex_lock(&h->app_mu);
	buf_reset(&c->rec);
	walrec_series_begin(&c->rec);
	for (size_t i = 0; !rc && i < h->all.n; i++) {
		hseries_t *s = head_series_at(h, h->all.v[i]);
		VEC_CLEAR(&c->lbuf);
		for (uint16_t k = 0; k < s->nlabels; k++) {
			const hpair_t *p = head_pair(h, s->pairs[k]);
			label_t l = {head_sym_str(h, p->name), head_sym_str(h, p->value)};
			VEC_PUSH(&c->lbuf, l);
		}
		labels_t ls = {c->lbuf.v, c->lbuf.n};
		walrec_series_add(&c->rec, s->id, &ls);
		if (s->family && h->families.v[s->family - 1].set) {
			const hfamily_t *f = &h->families.v[s->family - 1];
			walrec_meta_t m = {s->id, f->type, str_c(f->unit), str_c(f->help)};
			walrec_metadata_add(&meta, &m);
			nmeta++;
		}
		if (c->rec.n >= (1u << 20)) {
			str_t r = buf_str(&c->rec);
			rc = wal_log(c->w, &r, 1, NULL, err);
			buf_reset(&c->rec);
			walrec_series_begin(&c->rec);
		}
	}
	pthread_mutex_unlock(&h->app_mu);
	if (!rc && c->rec.n > 1) {
		str_t r = buf_str(&c->rec);
		rc = wal_log(c->w, &r, 1, NULL, err);
	}
	if (!rc && nmeta) {
		str_t r = buf_str(&meta);
		rc = wal_log(c->w, &r, 1, NULL, err);
	}
	buf_release(&meta);
	return rc;
}

int head_checkpoint(head_t *h, err_t *err)
{
	char wdir[4096];
	snprintf(wdir, sizeof wdir, "%s/wal", h->dir);
	int first, last, cur;
	int rc = wal_next_segment(h->wal, &cur, err);
	if (!rc)
		rc = wal_segments(wdir, &first, &last, err);
	if (rc || first < 0)
		return rc;
	last = cur - 1;
	last = first + (last - first) * 2 / 3;
	if (last <= first)
		return 0;
	metric_inc(h->m_checkpoints);
	int cidx;
	char cp[4096];
	if ((rc = last_checkpoint(wdir, &cidx, cp, err)) != 0)
		return rc;
	char tmp[4096], final[4096];
	snprintf(final, sizeof final, "%s/" CHECKPOINT_PREFIX "%08d", wdir, last);
	snprintf(tmp, sizeof tmp, "%s.tmp", final);
	fileio_rm_rf(tmp);
	cpw_t c = {.h = h};
	buf_init(&c.rec);
	buf_init(&c.kb);
	imap_init(&c.refmap, 0);
	wal_opts_t wo = {.compress = h->o.wal_compression};
	int64_t mint = head_min_valid_time(h);
	uint64_t t0 = clock_mono_ns();
	rc = wal_open(&c.w, tmp, &wo, err);
	if (!rc)
		rc = cp_series(&c, err);
	/* samples at or after mint from the old checkpoint and the folded segments */
	for (int pass = 0; !rc && pass < 2; pass++) {
		const char *dir = pass == 0 ? cp : wdir;
		int f = first, l = last;
		if (pass == 0) {
			if (cidx < 0)
				continue;
			if ((rc = wal_segments(cp, &f, &l, err)) != 0 || f < 0)
				continue;
		} else if (f <= cidx) {
			f = cidx + 1;
		}
		for (int seg = f; !rc && seg <= l; seg++) {
			char path[4096];
			wal_segment_path(path, dir, seg);
			wal_reader_t rd;
			if ((rc = wal_reader_open(&rd, path, err)) != 0)
				break;
			str_t rec;
			int r;
			while ((r = wal_reader_next(&rd, &rec, err)) == 1)
				if ((rc = cp_record(&c, rec, mint, err)) != 0)
					break;
			if (!rc && r < 0)
				rc = r;
			wal_reader_close(&rd);
		}
	}
	if (!rc)
		rc = cp_flush_samples(&c, err);
	if (c.w) {
		int r2 = wal_close(c.w, rc ? NULL : err);
		rc = rc ? rc : r2;
	}
	if (!rc && rename(tmp, final) != 0)
		rc = err_errno(err, "checkpoint: rename %s", tmp);
	buf_release(&c.rec);
	buf_release(&c.kb);
	VEC_FREE(&c.smp);
	VEC_FREE(&c.lbuf);
	imap_release(&c.refmap);
	if (rc) {
		fileio_rm_rf(tmp);
		return err_wrap(err, "checkpoint of %s", wdir);
	}
	/* Only now are the folded segments redundant. */
	if ((rc = wal_truncate(h->wal, last + 1, err)) != 0)
		return rc;
	delete_checkpoints(wdir, last);
	char secs[32], kept[32];
	snprintf(secs, sizeof secs, "%.3f", clock_since_s(t0));
	snprintf(kept, sizeof kept, "%llu", (unsigned long long)c.kept);
	log_info("WAL checkpoint complete", "checkpoint", final, "samples_kept", kept, "duration_seconds",
	         secs);
	return 0;
}
