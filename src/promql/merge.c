/*
 * merge.c — k-way merge of series sets from several queryables.
 *
 * Lazy: next() only finds the sources holding the smallest label set; their samples are merged when
 * samples() is asked for, and chunks() hands out the sources' chunks (concatenated, sorted by time)
 * when they do not overlap in time — blocks of a data directory never do — so callers can decode them
 * in parallel. Overlapping chunks (or a source without chunks) make chunks() return -1 and callers
 * use samples(), which resolves equal timestamps in favour of the earlier source.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "promql/merge.h"

struct promql_merge {
	queryable_t q;
	queryable_t **srcs;
	size_t n;
};

typedef struct child {
	series_set_t *set;
	int state; /* 1 = has a current series, 0 = exhausted */
} child_t;

typedef struct mset {
	series_set_t set;
	child_t *c;
	size_t n;
	arena_t *a;
	labels_t cur;
	label_t *lbuf;
	size_t lcap;
	char *sbuf;
	size_t scap;
	int64_t *t, *tt; /* merged samples, scratch */
	double *v, *vv;
	size_t ns, cap;
	size_t *cur_src; /* children holding the current series, in source order */
	size_t ncur;
	bool pending;  /* the cur_src children still have to be advanced */
	bool absorbed; /* t/v hold the current series' merged samples */
	int rc;        /* error while merging samples (reported by the iterator) */
	err_t err;
	chunk_t *chks;
	size_t nchks, chkcap;
	struct msit {
		sample_iter_t it;
		struct mset *m;
		size_t i;
	} it;
} mset_t;

static int msit_next(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	struct msit *s = (struct msit *)it;
	if (s->m->rc) {
		*err = s->m->err;
		return s->m->rc;
	}
	int k = 0;
	while (k < cap && s->i < s->m->ns) {
		t[k] = s->m->t[s->i];
		v[k] = s->m->v[s->i];
		k++;
		s->i++;
	}
	return k;
}

static int msit_seek(sample_iter_t *it, int64_t t, err_t *err)
{
	struct msit *s = (struct msit *)it;
	while (s->i < s->m->ns && s->m->t[s->i] < t)
		s->i++;
	return 0;
}

static const struct sample_iter_ops msit_ops = {msit_next, msit_seek};

static void grow(mset_t *m, size_t need)
{
	if (need <= m->cap)
		return;
	size_t nc = alloc_grow_cap(m->cap, need);
	m->t = xreallocarray(m->t, nc, sizeof(int64_t));
	m->v = xreallocarray(m->v, nc, sizeof(double));
	m->tt = xreallocarray(m->tt, nc, sizeof(int64_t));
	m->vv = xreallocarray(m->vv, nc, sizeof(double));
	m->cap = nc;
}

/* Append the samples of child c's current series, merged with what is there. */
static int absorb(mset_t *m, series_set_t *set, bool first, err_t *err)
{
	sample_iter_t *it = series_set_samples(set);
	size_t n = 0;
	for (;;) {
		grow(m, n + 1024);
		int got = sample_iter_next_batch(it, m->tt + n, m->vv + n, 1024, err);
		if (got < 0)
			return got;
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (first) {
		memcpy(m->t, m->tt, n * sizeof(int64_t));
		memcpy(m->v, m->vv, n * sizeof(double));
		m->ns = n;
		return 0;
	}
	/* merge m->t/v (older sources win on equal timestamps) with tt/vv */
	int64_t *ot = xmalloc((m->ns + n + 1) * sizeof(int64_t));
	double *ov = xmalloc((m->ns + n + 1) * sizeof(double));
	size_t i = 0, j = 0, k = 0;
	while (i < m->ns || j < n) {
		if (j >= n || (i < m->ns && m->t[i] <= m->tt[j])) {
			if (j < n && m->t[i] == m->tt[j])
				j++;
			ot[k] = m->t[i];
			ov[k++] = m->v[i++];
		} else {
			ot[k] = m->tt[j];
			ov[k++] = m->vv[j++];
		}
	}
	grow(m, k + 1);
	memcpy(m->t, ot, k * sizeof(int64_t));
	memcpy(m->v, ov, k * sizeof(double));
	m->ns = k;
	free(ot);
	free(ov);
	return 0;
}

static void copy_labels(mset_t *m, const labels_t *ls)
{
	size_t bytes = 0;
	for (size_t i = 0; i < ls->n; i++)
		bytes += ls->v[i].name.n + ls->v[i].value.n;
	if (ls->n > m->lcap) {
		m->lcap = ls->n * 2;
		m->lbuf = xreallocarray(m->lbuf, m->lcap, sizeof(label_t));
	}
	if (bytes + 1 > m->scap) {
		m->scap = bytes * 2 + 1;
		m->sbuf = xrealloc(m->sbuf, m->scap);
	}
	size_t off = 0;
	for (size_t i = 0; i < ls->n; i++) {
		memcpy(m->sbuf + off, ls->v[i].name.p, ls->v[i].name.n);
		m->lbuf[i].name = (str_t){m->sbuf + off, ls->v[i].name.n};
		off += ls->v[i].name.n;
		memcpy(m->sbuf + off, ls->v[i].value.p, ls->v[i].value.n);
		m->lbuf[i].value = (str_t){m->sbuf + off, ls->v[i].value.n};
		off += ls->v[i].value.n;
	}
	m->cur = (labels_t){m->lbuf, ls->n};
}

static int mset_next(series_set_t *ss, err_t *err)
{
	mset_t *m = (mset_t *)ss;
	if (m->pending) {
		for (size_t k = 0; k < m->ncur; k++) {
			child_t *c = &m->c[m->cur_src[k]];
			int rc = series_set_next(c->set, err);
			if (rc < 0)
				return rc;
			c->state = rc;
		}
		m->pending = false;
	}
	/* pick the smallest current labels */
	ssize_t best = -1;
	for (size_t i = 0; i < m->n; i++) {
		if (!m->c[i].state)
			continue;
		if (best < 0 || labels_cmp(series_set_labels(m->c[i].set), series_set_labels(m->c[best].set)) < 0)
			best = (ssize_t)i;
	}
	if (best < 0)
		return 0;
	copy_labels(m, series_set_labels(m->c[best].set));
	m->ncur = 0;
	for (size_t i = 0; i < m->n; i++)
		if (m->c[i].state && labels_eq(series_set_labels(m->c[i].set), &m->cur))
			m->cur_src[m->ncur++] = i;
	m->pending = true;
	m->absorbed = false;
	m->rc = 0;
	m->it.i = 0;
	return 1;
}

static const labels_t *mset_labels(series_set_t *ss)
{
	return &((mset_t *)ss)->cur;
}

static sample_iter_t *mset_samples(series_set_t *ss)
{
	mset_t *m = (mset_t *)ss;
	if (!m->absorbed) {
		m->absorbed = true;
		for (size_t k = 0; k < m->ncur && !m->rc; k++)
			m->rc = absorb(m, m->c[m->cur_src[k]].set, k == 0, &m->err);
	}
	m->it.it.ops = &msit_ops;
	m->it.m = m;
	m->it.i = 0;
	return &m->it.it;
}

static int cmp_chunk_mint(const void *a, const void *b)
{
	const chunk_t *x = a, *y = b;
	return x->mint < y->mint ? -1 : x->mint > y->mint;
}

static int mset_chunks(series_set_t *ss, const chunk_t **out)
{
	mset_t *m = (mset_t *)ss;
	m->nchks = 0;
	for (size_t k = 0; k < m->ncur; k++) {
		series_set_t *cs = m->c[m->cur_src[k]].set;
		const chunk_t *c;
		int n = cs->ops->chunks ? cs->ops->chunks(cs, &c) : -1;
		if (n < 0)
			return -1;
		if (m->nchks + (size_t)n > m->chkcap) {
			m->chkcap = alloc_grow_cap(m->chkcap, m->nchks + (size_t)n);
			m->chks = xreallocarray(m->chks, m->chkcap, sizeof(chunk_t));
		}
		if (n)
			memcpy(m->chks + m->nchks, c, (size_t)n * sizeof(chunk_t));
		m->nchks += (size_t)n;
	}
	if (m->ncur > 1)
		qsort(m->chks, m->nchks, sizeof(chunk_t), cmp_chunk_mint);
	for (size_t i = 1; i < m->nchks; i++)
		if (m->chks[i].mint <= m->chks[i - 1].maxt)
			return -1; /* overlapping sources: samples() deduplicates */
	*out = m->chks;
	return (int)m->nchks;
}

static bool mset_chunk_data_stable(series_set_t *ss)
{
	mset_t *m = (mset_t *)ss;
	for (size_t i = 0; i < m->n; i++) {
		series_set_t *cs = m->c[i].set;
		if (!cs->ops->chunk_data_stable || !cs->ops->chunk_data_stable(cs))
			return false;
	}
	return true;
}

static void mset_close(series_set_t *ss)
{
	mset_t *m = (mset_t *)ss;
	for (size_t i = 0; i < m->n; i++)
		series_set_close(m->c[i].set);
	m->n = 0;
	free(m->lbuf);
	free(m->sbuf);
	free(m->t);
	free(m->v);
	free(m->tt);
	free(m->vv);
	free(m->chks);
	m->chks = NULL;
	m->nchks = m->chkcap = 0;
	m->lbuf = NULL;
	m->sbuf = NULL;
	m->t = m->tt = NULL;
	m->v = m->vv = NULL;
}

static const struct series_set_ops mset_ops = {
	.next = mset_next, .labels = mset_labels, .samples = mset_samples, .chunks = mset_chunks, .close = mset_close,
	.chunk_data_stable = mset_chunk_data_stable};

static int merge_select(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			const select_hints_t *hints, series_set_t **out, err_t *err)
{
	promql_merge_t *pm = (promql_merge_t *)q;
	if (pm->n == 1) /* nothing to merge: the source's own set (keeps its chunks() and lazy decoding) */
		return pm->srcs[0]->ops->select(pm->srcs[0], a, ms, nms, mint, maxt, hints, out, err);
	mset_t *m = ARENA_NEW(a, mset_t);
	m->set.ops = &mset_ops;
	m->a = a;
	m->c = ARENA_NEW_ARRAY(a, child_t, pm->n ? pm->n : 1);
	m->cur_src = ARENA_NEW_ARRAY(a, size_t, pm->n ? pm->n : 1);
	for (size_t i = 0; i < pm->n; i++) {
		series_set_t *s = NULL;
		int rc = pm->srcs[i]->ops->select(pm->srcs[i], a, ms, nms, mint, maxt, hints, &s, err);
		if (rc == 0) {
			m->c[m->n].set = s;
			m->n++;
			rc = series_set_next(s, err);
			m->c[m->n - 1].state = rc > 0;
		}
		if (rc < 0) {
			mset_close(&m->set);
			return rc;
		}
	}
	*out = &m->set;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return str_cmp(*(const str_t *)a, *(const str_t *)b);
}

static int merge_strings(promql_merge_t *pm, arena_t *a, bool values, str_t name, const matcher_t *ms, size_t nms,
			 int64_t mint, int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	str_t *all = NULL;
	size_t total = 0;
	for (size_t i = 0; i < pm->n; i++) {
		str_t *v;
		size_t k;
		queryable_t *s = pm->srcs[i];
		int rc = values ? s->ops->label_values(s, a, name, ms, nms, mint, maxt, &v, &k, err)
				: s->ops->label_names(s, a, ms, nms, mint, maxt, &v, &k, err);
		if (rc)
			return rc;
		str_t *na = arena_alloc(a, (total + k + 1) * sizeof(str_t));
		if (total)
			memcpy(na, all, total * sizeof(str_t));
		memcpy(na + total, v, k * sizeof(str_t));
		all = na;
		total += k;
	}
	if (total)
		qsort(all, total, sizeof *all, cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < total; i++)
		if (k == 0 || !str_eq(all[k - 1], all[i]))
			all[k++] = all[i];
	*out = all;
	*n = k;
	return 0;
}

static int merge_label_names(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			     str_t **out, size_t *n, err_t *err)
{
	return merge_strings((promql_merge_t *)q, a, false, STR_NULL, ms, nms, mint, maxt, out, n, err);
}

static int merge_label_values(queryable_t *q, arena_t *a, str_t name, const matcher_t *ms, size_t nms, int64_t mint,
			      int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	return merge_strings((promql_merge_t *)q, a, true, name, ms, nms, mint, maxt, out, n, err);
}

static const struct queryable_ops merge_ops = {merge_select, merge_label_names, merge_label_values};

promql_merge_t *promql_merge_new(queryable_t *const *srcs, size_t n)
{
	promql_merge_t *m = xcalloc(1, sizeof *m);
	m->q.ops = &merge_ops;
	m->srcs = xcalloc(n ? n : 1, sizeof(queryable_t *));
	memcpy(m->srcs, srcs, n * sizeof(queryable_t *));
	m->n = n;
	return m;
}

void promql_merge_free(promql_merge_t *m)
{
	if (!m)
		return;
	free(m->srcs);
	free(m);
}

queryable_t *promql_merge_queryable(promql_merge_t *m)
{
	return &m->q;
}
