/*
 * memstore.c — in-memory series storage implementing queryable_t.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/hmap.h"
#include "base/str.h"
#include "model/memstore.h"

typedef struct mseries {
	labels_t ls;   /* in m->arena */
	int64_t *t;
	double *v;
	size_t n, cap;
} mseries_t;

struct memstore {
	queryable_t q;
	arena_t arena; /* labels and keys */
	hmap_t byKey;  /* serialized labels -> mseries_t* */
	mseries_t **all;
	size_t n, cap;
};

static const struct queryable_ops memstore_ops;

memstore_t *memstore_new(void)
{
	memstore_t *m = xcalloc(1, sizeof *m);
	m->q.ops = &memstore_ops;
	arena_init(&m->arena, 0);
	hmap_init(&m->byKey, 16);
	return m;
}

void memstore_clear(memstore_t *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->all[i]->t);
		free(m->all[i]->v);
		free(m->all[i]);
	}
	m->n = 0;
	hmap_clear(&m->byKey);
	arena_reset(&m->arena);
}

void memstore_free(memstore_t *m)
{
	if (!m)
		return;
	memstore_clear(m);
	free(m->all);
	hmap_release(&m->byKey);
	arena_release(&m->arena);
	free(m);
}

size_t memstore_series_count(const memstore_t *m)
{
	return m->n;
}

queryable_t *memstore_queryable(memstore_t *m)
{
	return &m->q;
}

static void key_of(buf_t *b, const labels_t *ls)
{
	for (size_t i = 0; i < ls->n; i++) {
		buf_append_str(b, ls->v[i].name);
		buf_putc(b, '\xff');
		buf_append_str(b, ls->v[i].value);
		buf_putc(b, '\xff');
	}
}

void memstore_add(memstore_t *m, const labels_t *ls, int64_t t, double v)
{
	buf_t key;
	buf_init(&key);
	key_of(&key, ls);
	mseries_t *s = hmap_get(&m->byKey, buf_str(&key));
	if (!s) {
		s = xcalloc(1, sizeof *s);
		s->ls = labels_copy(&m->arena, ls);
		char *k = arena_memdup(&m->arena, key.p, key.n ? key.n : 1);
		hmap_put(&m->byKey, (str_t){k, key.n}, s);
		if (m->n == m->cap) {
			m->cap = alloc_grow_cap(m->cap, m->n + 1);
			m->all = xreallocarray(m->all, m->cap, sizeof *m->all);
		}
		m->all[m->n++] = s;
	}
	buf_release(&key);
	/* Find the insert position (appends are the common case). */
	size_t pos = s->n;
	while (pos > 0 && s->t[pos - 1] > t)
		pos--;
	if (pos > 0 && s->t[pos - 1] == t) {
		s->v[pos - 1] = v;
		return;
	}
	if (s->n == s->cap) {
		s->cap = alloc_grow_cap(s->cap, s->n + 1);
		s->t = xreallocarray(s->t, s->cap, sizeof *s->t);
		s->v = xreallocarray(s->v, s->cap, sizeof *s->v);
	}
	memmove(s->t + pos + 1, s->t + pos, (s->n - pos) * sizeof *s->t);
	memmove(s->v + pos + 1, s->v + pos, (s->n - pos) * sizeof *s->v);
	s->t[pos] = t;
	s->v[pos] = v;
	s->n++;
}

/* ------------------------------------------------------------------------- read side */

typedef struct msample_iter {
	sample_iter_t it;
	const mseries_t *s;
	size_t i, end;
} msample_iter_t;

typedef struct mset {
	series_set_t set;
	mseries_t **sel;
	size_t n, cur;
	int64_t mint, maxt;
	msample_iter_t it;
} mset_t;

static int mit_next_batch(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	msample_iter_t *m = (msample_iter_t *)it;
	int k = 0;
	while (k < cap && m->i < m->end) {
		t[k] = m->s->t[m->i];
		v[k] = m->s->v[m->i];
		k++;
		m->i++;
	}
	return k;
}

static int mit_seek(sample_iter_t *it, int64_t t, err_t *err)
{
	msample_iter_t *m = (msample_iter_t *)it;
	size_t lo = m->i, hi = m->end;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->s->t[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	m->i = lo;
	return 0;
}

static const struct sample_iter_ops mit_ops = {mit_next_batch, mit_seek};

static int mset_next(series_set_t *ss, err_t *err)
{
	mset_t *s = (mset_t *)ss;
	if (s->cur >= s->n)
		return 0;
	s->cur++;
	return s->cur <= s->n ? 1 : 0;
}

static const labels_t *mset_labels(series_set_t *ss)
{
	mset_t *s = (mset_t *)ss;
	return &s->sel[s->cur - 1]->ls;
}

static size_t lower_bound(const int64_t *t, size_t n, int64_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static sample_iter_t *mset_samples(series_set_t *ss)
{
	mset_t *s = (mset_t *)ss;
	const mseries_t *ms = s->sel[s->cur - 1];
	s->it.it.ops = &mit_ops;
	s->it.s = ms;
	s->it.i = lower_bound(ms->t, ms->n, s->mint);
	s->it.end = s->maxt == INT64_MAX ? ms->n : lower_bound(ms->t, ms->n, s->maxt + 1);
	return &s->it.it;
}

static void mset_close(series_set_t *ss)
{
}

static const struct series_set_ops mset_ops = {
	.next = mset_next, .labels = mset_labels, .samples = mset_samples, .close = mset_close};

static bool series_matches(const mseries_t *s, const matcher_t *ms, size_t nms)
{
	for (size_t i = 0; i < nms; i++)
		if (!matcher_matches_labels(&ms[i], &s->ls))
			return false;
	return true;
}

static int cmp_series(const void *a, const void *b)
{
	const mseries_t *x = *(mseries_t *const *)a, *y = *(mseries_t *const *)b;
	return labels_cmp(&x->ls, &y->ls);
}

static bool has_samples_in(const mseries_t *s, int64_t mint, int64_t maxt)
{
	size_t i = lower_bound(s->t, s->n, mint);
	return i < s->n && s->t[i] <= maxt;
}

static int ms_select(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
		     const select_hints_t *hints, series_set_t **out, err_t *err)
{
	memstore_t *m = (memstore_t *)q;
	mset_t *s = ARENA_NEW(a, mset_t);
	s->set.ops = &mset_ops;
	s->mint = mint;
	s->maxt = maxt;
	s->sel = arena_alloc(a, (m->n ? m->n : 1) * sizeof(mseries_t *));
	for (size_t i = 0; i < m->n; i++)
		if (series_matches(m->all[i], ms, nms) && has_samples_in(m->all[i], mint, maxt))
			s->sel[s->n++] = m->all[i];
	qsort(s->sel, s->n, sizeof *s->sel, cmp_series);
	*out = &s->set;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return str_cmp(*(const str_t *)a, *(const str_t *)b);
}

static size_t sort_unique(str_t *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (k == 0 || !str_eq(v[k - 1], v[i]))
			v[k++] = v[i];
	return k;
}

static int ms_label_names(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			  str_t **out, size_t *n, err_t *err)
{
	memstore_t *m = (memstore_t *)q;
	size_t cap = 16, k = 0;
	str_t *v = arena_alloc(a, cap * sizeof *v);
	for (size_t i = 0; i < m->n; i++) {
		const mseries_t *s = m->all[i];
		if (!series_matches(s, ms, nms) || !has_samples_in(s, mint, maxt))
			continue;
		for (size_t j = 0; j < s->ls.n; j++) {
			if (k == cap) {
				v = arena_realloc(a, v, cap * sizeof *v, 2 * cap * sizeof *v);
				cap *= 2;
			}
			v[k++] = s->ls.v[j].name;
		}
	}
	*n = sort_unique(v, k);
	*out = v;
	return 0;
}

static int ms_label_values(queryable_t *q, arena_t *a, str_t name, const matcher_t *ms, size_t nms, int64_t mint,
			   int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	memstore_t *m = (memstore_t *)q;
	size_t cap = 16, k = 0;
	str_t *v = arena_alloc(a, cap * sizeof *v);
	for (size_t i = 0; i < m->n; i++) {
		const mseries_t *s = m->all[i];
		if (!series_matches(s, ms, nms) || !has_samples_in(s, mint, maxt))
			continue;
		bool found;
		str_t val = labels_get(&s->ls, name, &found);
		if (!found)
			continue;
		if (k == cap) {
			v = arena_realloc(a, v, cap * sizeof *v, 2 * cap * sizeof *v);
			cap *= 2;
		}
		v[k++] = val;
	}
	*n = sort_unique(v, k);
	*out = v;
	return 0;
}

static const struct queryable_ops memstore_ops = {ms_select, ms_label_names, ms_label_values};
