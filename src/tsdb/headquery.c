/*
 * headquery.c — reading the head: postings for matchers, series sets, label names and values.
 *
 * A select resolves its series (postings under idx, read) and sorts them by labels, holding the gc
 * gate shared until the set is closed; each next() copies one series' chunk list and open chunk
 * under its stripe lock (the open chunk into the select's arena, so every chunk handed out stays
 * valid until close). Labels point straight at the head's strings (stable under gc).
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "tsdb/head_int.h"
#include "tsdb/postings.h"

/* ---- postings ---- */

static postings_t copy_list(arena_t *a, const hpair_t *p)
{
	postings_t r = {ARENA_NEW_ARRAY(a, uint32_t, p->n ? p->n : 1), p->n};
	memcpy(r.v, hpair_ids(p), p->n * sizeof(uint32_t));
	return r;
}

/* Union of the postings of name's values v with m(v) == want (idx held). */
static postings_t values_matching(const head_t *h, arena_t *a, const matcher_t *m, bool want)
{
	postings_t empty = {NULL, 0};
	int64_t nsym = head_sym_find(h, m->name);
	if (nsym < 0)
		return empty;
	if (want && (m->type == MATCH_EQ || m->type == MATCH_RE)) {
		const str_t *lits;
		int nl = matcher_literal_values(m, &lits);
		if (nl >= 0) {
			postings_t *ls = ARENA_NEW_ARRAY(a, postings_t, nl ? (size_t)nl : 1);
			size_t k = 0;
			for (int i = 0; i < nl; i++) {
				int64_t vsym = head_sym_find(h, lits[i]);
				int64_t pid =
				    vsym < 0 ? -1 : head_pair_find(h, (uint32_t)nsym, (uint32_t)vsym);
				if (pid >= 0)
					ls[k++] = copy_list(a, head_pair(h, (uint32_t)pid));
			}
			return k == 1 ? ls[0] : postings_merge(a, ls, k);
		}
	}
	const hname_t *nm = head_name_find(h, (uint32_t)nsym);
	if (!nm)
		return empty;
	postings_t *ls = ARENA_NEW_ARRAY(a, postings_t, nm->pairs.n ? nm->pairs.n : 1);
	size_t k = 0;
	for (size_t i = 0; i < nm->pairs.n; i++) {
		const hpair_t *p = head_pair(h, nm->pairs.v[i]);
		if (p->n && matcher_matches(m, head_sym_str(h, p->value)) == want)
			ls[k++] = copy_list(a, p);
	}
	return postings_merge(a, ls, k);
}

/* Prometheus's PostingsForMatchers: a series lacking a label has it as "", so a matcher that matches
 * "" removes the series whose value it rejects, and any other matcher keeps only the series whose
 * value it accepts (idx held). */
static postings_t postings_for_matchers(const head_t *h, arena_t *a, const matcher_t *ms, size_t n)
{
	postings_t cur = {NULL, 0};
	bool have = false;
	postings_t *nots = ARENA_NEW_ARRAY(a, postings_t, n ? n : 1);
	size_t nn = 0;
	for (size_t i = 0; i < n; i++) {
		if (matcher_matches_empty(&ms[i])) {
			nots[nn++] = values_matching(h, a, &ms[i], false);
			continue;
		}
		postings_t p = values_matching(h, a, &ms[i], true);
		cur = have ? postings_intersect(a, cur, p) : p;
		have = true;
		if (!cur.n)
			return cur;
	}
	if (!have) {
		cur.v = ARENA_NEW_ARRAY(a, uint32_t, h->all.n ? h->all.n : 1);
		cur.n = h->all.n;
		if (h->all.n)
			memcpy(cur.v, h->all.v, h->all.n * sizeof(uint32_t));
	}
	for (size_t i = 0; i < nn && cur.n; i++)
		if (nots[i].n)
			cur = postings_subtract(a, cur, nots[i]);
	return cur;
}

/* ---- labels ---- */

static int series_label_cmp(const head_t *h, const hseries_t *a, const hseries_t *b)
{
	uint16_t n = a->nlabels < b->nlabels ? a->nlabels : b->nlabels;
	for (uint16_t i = 0; i < n; i++) {
		if (a->pairs[i] == b->pairs[i])
			continue;
		const hpair_t *pa = head_pair(h, a->pairs[i]), *pb = head_pair(h, b->pairs[i]);
		int c =
		    pa->name == pb->name ? 0 : str_cmp(head_sym_str(h, pa->name), head_sym_str(h, pb->name));
		if (c)
			return c;
		c = str_cmp(head_sym_str(h, pa->value), head_sym_str(h, pb->value));
		if (c)
			return c;
	}
	return (a->nlabels > b->nlabels) - (a->nlabels < b->nlabels);
}

/* Sort by labels: a bottom-up merge sort (qsort has no context argument for the head). */
static void sort_series(const head_t *h, hseries_t **v, size_t n)
{
	if (n < 2)
		return;
	hseries_t **tmp = xmalloc(n * sizeof *tmp);
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t i = lo, j = mid, k = lo;
			if (mid >= hi || series_label_cmp(h, v[mid - 1], v[mid]) <= 0) {
				memcpy(tmp + lo, v + lo, (hi - lo) * sizeof *v);
				continue;
			}
			while (i < mid && j < hi)
				tmp[k++] = series_label_cmp(h, v[i], v[j]) <= 0 ? v[i++] : v[j++];
			while (i < mid)
				tmp[k++] = v[i++];
			while (j < hi)
				tmp[k++] = v[j++];
		}
		memcpy(v, tmp, n * sizeof *v);
	}
	free(tmp);
}

/* ---- series set ---- */

typedef struct hset {
	series_set_t base;
	head_t *h;
	arena_t *a;
	hseries_t **v;
	size_t n, i;
	int64_t mint, maxt;
	int sources;
	bool gated;
	/* current series */
	labels_t ls;
	label_t *lbuf;
	size_t lcap;
	VEC(hchunk_t) mm;
	VEC(chunk_t) chunks;
	buf_t open; /* the open chunk, copied under the stripe lock */
	VEC(int64_t) ot;
	VEC(double) ov; /* out-of-order samples in range */
	VEC(int64_t) mt;
	VEC(double) mv; /* merged samples (when out-of-order ones exist) */
	bool merged;
	xor_iter_t xit;
	sample_iter_array_t ait;
	int rc;
	err_t err;
} hset_t;

static void ooo_copy(hset_t *s, const hooo_t *o)
{
	if (!o)
		return;
	for (uint32_t i = 0; i < o->n; i++)
		if (o->t[i] >= s->mint && o->t[i] <= s->maxt) {
			VEC_PUSH(&s->ot, o->t[i]);
			VEC_PUSH(&s->ov, o->v[i]);
		}
}

/* Merge the in-order chunks' samples with the out-of-order ones (sorted; a timestamp held by both
 * keeps the in-order value). */
static int merge_samples(hset_t *s, err_t *err)
{
	/* the two out-of-order generations may interleave: sort the copy by time */
	for (size_t i = 1; i < s->ot.n; i++)
		for (size_t j = i; j > 0 && s->ot.v[j - 1] > s->ot.v[j]; j--) {
			int64_t t = s->ot.v[j];
			s->ot.v[j] = s->ot.v[j - 1];
			s->ot.v[j - 1] = t;
			double v = s->ov.v[j];
			s->ov.v[j] = s->ov.v[j - 1];
			s->ov.v[j - 1] = v;
		}
	int64_t *it = NULL;
	double *iv = NULL;
	size_t cap = 0;
	int64_t n = s->chunks.n
	                ? xor_decode_chunks(s->chunks.v, s->chunks.n, s->mint, s->maxt, &it, &iv, &cap, err)
	                : 0;
	if (n < 0) {
		free(it);
		free(iv);
		return (int)n;
	}
	VEC_CLEAR(&s->mt);
	VEC_CLEAR(&s->mv);
	size_t i = 0, j = 0;
	while (i < (size_t)n || j < s->ot.n) {
		bool take_in = j >= s->ot.n || (i < (size_t)n && it[i] <= s->ot.v[j]);
		if (take_in) {
			if (j < s->ot.n && s->ot.v[j] == it[i])
				j++;
			VEC_PUSH(&s->mt, it[i]);
			VEC_PUSH(&s->mv, iv[i]);
			i++;
		} else {
			if (!s->mt.n || VEC_LAST(&s->mt) != s->ot.v[j]) {
				VEC_PUSH(&s->mt, s->ot.v[j]);
				VEC_PUSH(&s->mv, s->ov.v[j]);
			}
			j++;
		}
	}
	free(it);
	free(iv);
	return 0;
}

/* Load series s into the set: its chunks overlapping [mint, maxt] (and out-of-order samples). Returns
 * 1 if it has anything in range, 0 if not, <0 on error. */
static int load(hset_t *st, hseries_t *s, err_t *err)
{
	head_t *h = st->h;
	VEC_CLEAR(&st->mm);
	VEC_CLEAR(&st->chunks);
	VEC_CLEAR(&st->ot);
	VEC_CLEAR(&st->ov);
	buf_reset(&st->open);
	int64_t omint = 0, omaxt = 0;
	pthread_mutex_t *mu = head_stripe(h, s->id);
	pthread_mutex_lock(mu);
	if (st->sources & HEAD_SEL_INORDER) {
		for (unsigned i = 0; i < head_mm_count(s); i++) {
			hchunk_t m = head_mm_at(s, i);
			if (m.maxt >= st->mint && m.mint <= st->maxt)
				VEC_PUSH(&st->mm, m);
		}
		if (s->app.num && s->app.t >= st->mint && s->cmint <= st->maxt) {
			size_t len;
			const uint8_t *p = xor_app_bytes(&s->app, &len);
			buf_append(&st->open, p, len);
			omint = s->cmint;
			omaxt = s->app.t;
		}
	}
	if (st->sources & HEAD_SEL_OOO)
		ooo_copy(st, head_ooo_cur(s));
	if (st->sources & HEAD_SEL_OOO_CUT)
		ooo_copy(st, head_ooo_cut(s));
	pthread_mutex_unlock(mu);
	for (size_t i = 0; i < st->mm.n; i++) {
		chunk_t c = {.mint = st->mm.v[i].mint, .maxt = st->mm.v[i].maxt};
		int rc = headchunks_get(h->hc, st->mm.v[i].ref, &c, err);
		if (rc)
			return rc;
		VEC_PUSH(&st->chunks, c);
	}
	if (st->open.n)
		VEC_PUSH(&st->chunks,
		         ((chunk_t){omint, omaxt, CHUNK_ENC_XOR, (const uint8_t *)st->open.p, st->open.n}));
	st->merged = st->ot.n > 0;
	if (st->merged) {
		int rc = merge_samples(st, err);
		if (rc)
			return rc;
		return st->mt.n > 0;
	}
	return st->chunks.n > 0;
}

static int set_next(series_set_t *base, err_t *err)
{
	hset_t *st = (hset_t *)base;
	while (st->i < st->n) {
		hseries_t *s = st->v[st->i++];
		int rc = load(st, s, err);
		if (rc < 0)
			return rc;
		if (!rc)
			continue;
		if (s->nlabels > st->lcap) {
			st->lcap = s->nlabels;
			st->lbuf = xreallocarray(st->lbuf, st->lcap, sizeof(label_t));
		}
		for (uint16_t k = 0; k < s->nlabels; k++) {
			const hpair_t *p = head_pair(st->h, s->pairs[k]);
			st->lbuf[k].name = head_sym_str(st->h, p->name);
			st->lbuf[k].value = head_sym_str(st->h, p->value);
		}
		st->ls = (labels_t){st->lbuf, s->nlabels};
		return 1;
	}
	return 0;
}

static const labels_t *set_labels(series_set_t *base)
{
	return &((hset_t *)base)->ls;
}

static sample_iter_t *set_samples(series_set_t *base)
{
	hset_t *st = (hset_t *)base;
	if (st->merged) {
		return sample_iter_array_init(&st->ait, st->mt.v, st->mv.v, st->mt.n);
	}
	xor_iter_init(&st->xit, st->chunks.v, st->chunks.n, st->mint, st->maxt);
	return &st->xit.base;
}

static int set_chunks(series_set_t *base, const chunk_t **out)
{
	hset_t *st = (hset_t *)base;
	if (st->merged)
		return -1;
	*out = st->chunks.v;
	return (int)st->chunks.n;
}

static void set_close(series_set_t *base)
{
	hset_t *st = (hset_t *)base;
	if (st->gated)
		hgc_read_unlock(&st->h->gc);
	st->gated = false;
	free(st->v);
	free(st->lbuf);
	VEC_FREE(&st->mm);
	VEC_FREE(&st->chunks);
	VEC_FREE(&st->ot);
	VEC_FREE(&st->ov);
	VEC_FREE(&st->mt);
	VEC_FREE(&st->mv);
	buf_release(&st->open);
	st->v = NULL;
	st->lbuf = NULL;
}

static const struct series_set_ops hset_ops = {
    .next = set_next,
    .labels = set_labels,
    .samples = set_samples,
    .chunks = set_chunks,
    .close = set_close,
};

/* The series matching ms (all if nms == 0), sorted, with the gc gate held (shared) by the caller. */
static hseries_t **resolve(head_t *h, arena_t *a, const matcher_t *ms, size_t nms, size_t *n)
{
	pthread_rwlock_rdlock(&h->idx);
	postings_t p = postings_for_matchers(h, a, ms, nms);
	hseries_t **v = xmalloc((p.n ? p.n : 1) * sizeof *v);
	size_t k = 0;
	for (size_t i = 0; i < p.n; i++) {
		hseries_t *s = head_series_at(h, p.v[i]);
		if (s)
			v[k++] = s;
	}
	pthread_rwlock_unlock(&h->idx);
	sort_series(h, v, k);
	*n = k;
	return v;
}

int head_select(head_t *h, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
                int sources, series_set_t **out, err_t *err)
{
	(void)err;
	hset_t *st = ARENA_NEW(a, hset_t);
	st->base.ops = &hset_ops;
	st->h = h;
	st->a = a;
	st->mint = mint;
	st->maxt = maxt;
	st->sources = sources;
	buf_init(&st->open);
	hgc_read_lock(&h->gc);
	st->gated = true;
	/* cheap rejection when the range misses every in-order sample and nothing else is asked for */
	if (sources == HEAD_SEL_INORDER && (mint > head_max_time(h) || maxt < head_min_time(h))) {
		st->v = NULL;
		st->n = 0;
	} else {
		st->v = resolve(h, a, ms, nms, &st->n);
	}
	arena_on_release(a, (void (*)(void *))set_close, st);
	*out = &st->base;
	return 0;
}

static int q_select(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
                    const select_hints_t *hints, series_set_t **out, err_t *err)
{
	(void)hints;
	return head_select((head_t *)q, a, ms, nms, mint, maxt, HEAD_SEL_ALL, out, err);
}

/* ---- label names and values ---- */

static int str_cmp_q(const void *a, const void *b)
{
	return str_cmp(*(const str_t *)a, *(const str_t *)b);
}

static size_t sort_unique(str_t *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, str_cmp_q);
	size_t k = 1;
	for (size_t i = 1; i < n; i++)
		if (!str_eq(v[i], v[k - 1]))
			v[k++] = v[i];
	return k;
}

/* Copy into the arena: label calls return strings that outlive the gc gate. */
static str_t dup(arena_t *a, str_t s)
{
	return str_from(arena_memdup(a, s.n ? s.p : "", s.n), s.n);
}

static bool overlaps(head_t *h, int64_t mint, int64_t maxt)
{
	if (head_ooo_samples(h))
		return true;
	return head_min_time(h) <= maxt && head_max_time(h) >= mint;
}

static int q_label_names(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint,
                         int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	(void)err;
	head_t *h = (head_t *)q;
	*out = NULL;
	*n = 0;
	if (!overlaps(h, mint, maxt))
		return 0;
	hgc_read_lock(&h->gc);
	VEC(str_t) v = {0};
	if (!nms) {
		pthread_rwlock_rdlock(&h->idx);
		for (size_t i = 0; i < h->names.n; i++) {
			const hname_t *nm = &h->names.v[i];
			for (size_t j = 0; j < nm->pairs.n; j++)
				if (head_pair(h, nm->pairs.v[j])->n) {
					VEC_PUSH(&v, dup(a, head_sym_str(h, nm->sym)));
					break;
				}
		}
		pthread_rwlock_unlock(&h->idx);
	} else {
		size_t ns;
		hseries_t **ss = resolve(h, a, ms, nms, &ns);
		uint64_t *seen = xcalloc(h->syms.n / 64 + 1, sizeof(uint64_t));
		for (size_t i = 0; i < ns; i++)
			for (uint16_t k = 0; k < ss[i]->nlabels; k++) {
				uint32_t name = head_pair(h, ss[i]->pairs[k])->name;
				if (!(seen[name >> 6] >> (name & 63) & 1)) {
					seen[name >> 6] |= 1ull << (name & 63);
					VEC_PUSH(&v, dup(a, head_sym_str(h, name)));
				}
			}
		free(seen);
		free(ss);
	}
	hgc_read_unlock(&h->gc);
	*n = sort_unique(v.v, v.n);
	*out = ARENA_NEW_ARRAY(a, str_t, *n ? *n : 1);
	if (*n)
		memcpy(*out, v.v, *n * sizeof(str_t));
	VEC_FREE(&v);
	return 0;
}

static int q_label_values(queryable_t *q, arena_t *a, str_t name, const matcher_t *ms, size_t nms,
                          int64_t mint, int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	(void)err;
	head_t *h = (head_t *)q;
	*out = NULL;
	*n = 0;
	if (!overlaps(h, mint, maxt))
		return 0;
	hgc_read_lock(&h->gc);
	VEC(str_t) v = {0};
	int64_t nsym = head_sym_find(h, name);
	if (nsym >= 0 && !nms) {
		pthread_rwlock_rdlock(&h->idx);
		const hname_t *nm = head_name_find(h, (uint32_t)nsym);
		for (size_t j = 0; nm && j < nm->pairs.n; j++) {
			const hpair_t *p = head_pair(h, nm->pairs.v[j]);
			if (p->n)
				VEC_PUSH(&v, dup(a, head_sym_str(h, p->value)));
		}
		pthread_rwlock_unlock(&h->idx);
	} else if (nsym >= 0) {
		size_t ns;
		hseries_t **ss = resolve(h, a, ms, nms, &ns);
		for (size_t i = 0; i < ns; i++)
			for (uint16_t k = 0; k < ss[i]->nlabels; k++) {
				const hpair_t *p = head_pair(h, ss[i]->pairs[k]);
				if (p->name == (uint32_t)nsym)
					VEC_PUSH(&v, head_sym_str(h, p->value));
			}
		free(ss);
		for (size_t i = 0; i < v.n; i++)
			v.v[i] = dup(a, v.v[i]);
	}
	hgc_read_unlock(&h->gc);
	*n = sort_unique(v.v, v.n);
	*out = ARENA_NEW_ARRAY(a, str_t, *n ? *n : 1);
	if (*n)
		memcpy(*out, v.v, *n * sizeof(str_t));
	VEC_FREE(&v);
	return 0;
}

const struct queryable_ops head_queryable_ops = {q_select, q_label_names, q_label_values};

queryable_t *head_queryable(head_t *h)
{
	return &h->q;
}
