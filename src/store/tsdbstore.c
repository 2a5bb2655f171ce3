/*
 * tsdbstore.c — StoreAPI over a local TSDB: collect, sort by served labels, merge sources.
 */
#include "store/tsdbstore.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/vec.h"
#include "tsdb/xor.h"

struct tsdb_store {
	store_t base;
	db_t *db;
	arena_t arena; /* ext, names */
	labels_t ext;
	char *component;
};

typedef struct entry {
	labels_t ls; /* served labels */
	chunk_t *chunks;
	size_t nchunks;
	int64_t *t; /* samples, when the source had no usable chunks */
	double *v;
	size_t ns;
	bool samples;
	uint32_t seq; /* collection order: source order for equal labels */
} entry_t;

typedef struct tset {
	series_set_t base;
	arena_t *a;
	entry_t *e;
	size_t n, i;
	int64_t mint, maxt;
	bool skip_chunks;
	series_set_t **srcs; /* kept open: their chunk bytes are referenced */
	size_t nsrcs;
	xor_iter_t xit;
	sample_iter_array_t ait;
} tset_t;

static int set_next(series_set_t *base, err_t *err)
{
	(void)err;
	tset_t *s = (tset_t *)base;
	if (s->i >= s->n)
		return 0;
	s->i++;
	return 1;
}

static const labels_t *set_labels(series_set_t *base)
{
	tset_t *s = (tset_t *)base;
	return &s->e[s->i - 1].ls;
}

static sample_iter_t *set_samples(series_set_t *base)
{
	tset_t *s = (tset_t *)base;
	const entry_t *e = &s->e[s->i - 1];
	if (s->skip_chunks)
		return sample_iter_empty();
	if (e->samples) {
		return sample_iter_array_init(&s->ait, e->t, e->v, e->ns);
	}
	xor_iter_init(&s->xit, e->chunks, e->nchunks, s->mint, s->maxt);
	return &s->xit.base;
}

static int set_chunks(series_set_t *base, const chunk_t **out)
{
	tset_t *s = (tset_t *)base;
	const entry_t *e = &s->e[s->i - 1];
	if (s->skip_chunks) {
		*out = NULL;
		return 0;
	}
	if (e->samples)
		return -1;
	*out = e->chunks;
	return (int)e->nchunks;
}

static void set_close(series_set_t *base)
{
	tset_t *s = (tset_t *)base;
	for (size_t i = 0; i < s->nsrcs; i++)
		series_set_close(s->srcs[i]);
	s->nsrcs = 0;
}

static bool set_stable(series_set_t *base)
{
	(void)base;
	return true;
}

static const struct series_set_ops tset_ops = {
    .next = set_next,
    .labels = set_labels,
    .samples = set_samples,
    .chunks = set_chunks,
    .close = set_close,
    .chunk_data_stable = set_stable,
};

/* Samples of a set's current series into arena arrays. */
static int read_samples(arena_t *a, series_set_t *set, int64_t **t, double **v, size_t *n, err_t *err)
{
	sample_iter_t *it = series_set_samples(set);
	size_t cap = 256, k = 0;
	int64_t *ts = arena_alloc(a, cap * sizeof *ts);
	double *vs = arena_alloc(a, cap * sizeof *vs);
	for (;;) {
		if (cap - k < 128) {
			ts = arena_realloc(a, ts, cap * sizeof *ts, 2 * cap * sizeof *ts);
			vs = arena_realloc(a, vs, cap * sizeof *vs, 2 * cap * sizeof *vs);
			cap *= 2;
		}
		int r = sample_iter_next_batch(it, ts + k, vs + k, (int)(cap - k), err);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		k += (size_t)r;
	}
	*t = ts;
	*v = vs;
	*n = k;
	return 0;
}

/* arena copy of n bytes (n may be 0, p then NULL): never a NULL result */
static void *dup(arena_t *a, const void *p, size_t n)
{
	void *d = arena_alloc(a, n ? n : 1);
	if (n)
		memcpy(d, p, n);
	return d;
}

static int cmp_entry(const void *x, const void *y)
{
	const entry_t *a = x, *b = y;
	int c = labels_cmp(&a->ls, &b->ls);
	if (c)
		return c;
	return (a->seq > b->seq) - (a->seq < b->seq);
}

static int cmp_chunk(const void *x, const void *y)
{
	const chunk_t *a = x, *b = y;
	return (a->mint > b->mint) - (a->mint < b->mint);
}

/* One entry from the run e[0..n) of equal labels: chunks concatenated in time order, or merged samples
 * (earlier sources win on equal timestamps) when chunks overlap or a source gave samples. */
static int merge_run(arena_t *a, entry_t *e, size_t n, int64_t mint, int64_t maxt, err_t *err)
{
	if (n == 1)
		return 0;
	bool samples = false;
	size_t nc = 0;
	for (size_t i = 0; i < n; i++) {
		samples |= e[i].samples;
		nc += e[i].nchunks;
	}
	chunk_t *cs = ARENA_NEW_ARRAY(a, chunk_t, nc ? nc : 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < e[i].nchunks; j++)
			cs[k++] = e[i].chunks[j];
	qsort(cs, nc, sizeof *cs, cmp_chunk);
	for (size_t i = 1; i < nc && !samples; i++)
		if (cs[i].mint <= cs[i - 1].maxt)
			samples = true;
	if (!samples) {
		e[0].chunks = cs;
		e[0].nchunks = nc;
		return 0;
	}
	/* decode every source, then merge: a later source only fills timestamps the earlier ones lack */
	int64_t *mt = NULL;
	double *mv = NULL;
	size_t mn = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t *t = e[i].t;
		double *v = e[i].v;
		size_t ns = e[i].ns;
		if (!e[i].samples) {
			size_t cap = 0;
			int64_t *ht = NULL;
			double *hv = NULL;
			int64_t r =
			    xor_decode_chunks(e[i].chunks, e[i].nchunks, mint, maxt, &ht, &hv, &cap, err);
			if (r < 0) {
				free(ht);
				free(hv);
				return (int)r;
			}
			t = dup(a, ht, (size_t)r * sizeof *t);
			v = dup(a, hv, (size_t)r * sizeof *v);
			ns = (size_t)r;
			free(ht);
			free(hv);
		}
		int64_t *ot = ARENA_NEW_ARRAY(a, int64_t, mn + ns + 1);
		double *ov = ARENA_NEW_ARRAY(a, double, mn + ns + 1);
		size_t x = 0, y = 0, o = 0;
		while (x < mn || y < ns) {
			if (y >= ns || (x < mn && mt[x] <= t[y])) {
				if (y < ns && mt[x] == t[y])
					y++;
				ot[o] = mt[x];
				ov[o++] = mv[x++];
			} else {
				ot[o] = t[y];
				ov[o++] = v[y++];
			}
		}
		mt = ot;
		mv = ov;
		mn = o;
	}
	e[0].samples = true;
	e[0].t = mt;
	e[0].v = mv;
	e[0].ns = mn;
	e[0].chunks = NULL;
	e[0].nchunks = 0;
	return 0;
}

static int ts_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	tsdb_store_t *st = (tsdb_store_t *)base;
	const matcher_t *rest;
	size_t nrest;
	if (!store_match_external(a, &st->ext, req->ms, req->nms, &rest, &nrest)) {
		*out = series_set_empty();
		return 0;
	}
	tset_t *s = ARENA_NEW(a, tset_t);
	s->base.ops = &tset_ops;
	s->a = a;
	s->mint = req->mint;
	s->maxt = req->maxt;
	s->skip_chunks = req->skip_chunks;
	arena_on_release(a, (void (*)(void *))set_close, s);
	db_view_t view;
	db_view(st->db, a, &view);
	s->srcs = ARENA_NEW_ARRAY(a, series_set_t *, view.n);
	select_hints_t hints = {
	    .start = req->mint, .end = req->maxt, .func = req->skip_chunks ? "series" : req->func};
	VEC(entry_t) all = {0};
	int rc = 0;
	for (size_t q = 0; !rc && q < view.n; q++) {
		series_set_t *set;
		if ((rc = view.q[q]->ops->select(view.q[q], a, rest, nrest, req->mint, req->maxt, &hints,
		                                 &set, err)) != 0)
			break;
		s->srcs[s->nsrcs++] = set;
		bool stable = set->ops->chunk_data_stable && set->ops->chunk_data_stable(set);
		int r;
		while ((r = series_set_next(set, err)) == 1) {
			entry_t *e = VEC_ADD(&all);
			e->ls = store_merge_external(a, series_set_labels(set), &st->ext);
			e->seq = (uint32_t)all.n;
			if (req->skip_chunks)
				continue;
			const chunk_t *cs = NULL;
			int nc = set->ops->chunks ? set->ops->chunks(set, &cs) : -1;
			if (nc < 0) {
				e->samples = true;
				if ((rc = read_samples(a, set, &e->t, &e->v, &e->ns, err)) != 0)
					break;
				continue;
			}
			e->chunks = dup(a, cs, (size_t)nc * sizeof *cs);
			e->nchunks = (size_t)nc;
			if (!stable)
				for (int i = 0; i < nc; i++)
					e->chunks[i].data = dup(a, cs[i].data, cs[i].len);
		}
		if (!rc && r < 0)
			rc = r;
	}
	if (rc) {
		VEC_FREE(&all);
		return err_wrap(err, "store %s", base->name);
	}
	if (all.n > 1)
		qsort(all.v, all.n, sizeof(entry_t), cmp_entry);
	size_t w = 0;
	for (size_t i = 0, j; !rc && i < all.n; i = j) {
		for (j = i + 1; j < all.n && labels_eq(&all.v[i].ls, &all.v[j].ls); j++)
			;
		rc = merge_run(a, &all.v[i], j - i, req->mint, req->maxt, err);
		all.v[w++] = all.v[i];
		if (req->limit > 0 && (int64_t)w >= req->limit)
			break;
	}
	s->e = dup(a, all.v, w * sizeof(entry_t));
	s->n = w;
	VEC_FREE(&all);
	if (rc)
		return err_wrap(err, "store %s", base->name);
	*out = &s->base;
	return 0;
}

/* Label calls: the union of every source's answer, plus the external labels. */
static int ts_labels(store_t *base, arena_t *a, const store_label_req_t *req, bool names,
                     store_strings_t *out, err_t *err)
{
	tsdb_store_t *st = (tsdb_store_t *)base;
	memset(out, 0, sizeof *out);
	const matcher_t *rest;
	size_t nrest;
	if (!store_match_external(a, &st->ext, req->ms, req->nms, &rest, &nrest))
		return 0;
	VEC(str_t) acc = {0};
	bool found;
	str_t ev = labels_get(&st->ext, req->name, &found);
	if (!names && found) {
		/* an external label: its one value, if any series matches */
		VEC_PUSH(&acc, ev);
	} else {
		db_view_t view;
		db_view(st->db, a, &view);
		for (size_t q = 0; q < view.n; q++) {
			str_t *v;
			size_t n;
			int rc = names ? view.q[q]->ops->label_names(view.q[q], a, rest, nrest, req->mint,
			                                             req->maxt, &v, &n, err)
			               : view.q[q]->ops->label_values(view.q[q], a, req->name, rest, nrest,
			                                              req->mint, req->maxt, &v, &n, err);
			if (rc) {
				VEC_FREE(&acc);
				return err_wrap(err, "store %s", base->name);
			}
			for (size_t i = 0; i < n; i++)
				VEC_PUSH(&acc, v[i]);
		}
		if (names && acc.n)
			for (size_t i = 0; i < st->ext.n; i++)
				VEC_PUSH(&acc, st->ext.v[i].name);
	}
	size_t n = store_strings_sort_unique(acc.v, acc.n);
	if (req->limit > 0 && (int64_t)n > req->limit)
		n = (size_t)req->limit;
	out->v = dup(a, acc.v, n * sizeof(str_t));
	out->n = n;
	VEC_FREE(&acc);
	return 0;
}

static int ts_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
                          err_t *err)
{
	return ts_labels(base, a, req, true, out, err);
}

static int ts_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
                           err_t *err)
{
	return ts_labels(base, a, req, false, out, err);
}

static int ts_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	(void)err;
	tsdb_store_t *st = (tsdb_store_t *)base;
	labels_t *ls = ARENA_NEW(a, labels_t);
	*ls = labels_copy(a, &st->ext);
	out->label_sets = ls;
	out->nlabel_sets = 1;
	out->mint = db_min_time(st->db);
	out->maxt = db_max_time(st->db);
	out->component_type = st->component;
	return 0;
}

static void ts_free(store_t *base)
{
	tsdb_store_free((tsdb_store_t *)base);
}

static const struct store_ops tsdb_store_ops = {
    .series = ts_series,
    .label_names = ts_label_names,
    .label_values = ts_label_values,
    .info = ts_info,
    .free = ts_free,
};

tsdb_store_t *tsdb_store_new(const char *name, db_t *db, const labels_t *ext, const char *component_type)
{
	tsdb_store_t *s = xcalloc(1, sizeof *s);
	s->base.ops = &tsdb_store_ops;
	arena_init(&s->arena, 0);
	s->base.name = arena_strdup(&s->arena, name);
	s->db = db;
	s->ext = labels_copy(&s->arena, ext);
	s->component = component_type ? arena_strdup(&s->arena, component_type) : NULL;
	return s;
}

store_t *tsdb_store_base(tsdb_store_t *s)
{
	return &s->base;
}

void tsdb_store_free(tsdb_store_t *s)
{
	if (!s)
		return;
	arena_release(&s->arena);
	free(s);
}

labels_t tsdb_store_external_labels(tsdb_store_t *s, arena_t *a)
{
	return labels_copy(a, &s->ext);
}
