/*
 * inmem.c — in-memory store (see inmem.h).
 */
#include "store/inmem.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/hmap.h"
#include "tsdb/xor.h"

typedef struct inmem_series {
	labels_t ls;  /* local labels: what the remaining matchers see */
	labels_t out; /* with the external labels merged in: what is served, and the sort key */
	chunk_t *chunks;
	size_t nchunks;
} inmem_series_t;

struct inmem_store {
	store_t base;
	arena_t arena; /* labels and chunk bytes */
	labels_t ext;
	inmem_series_t *series;
	size_t n, cap;
	bool sorted;
	imap_t by_hash; /* labels_hash -> index + 1, for duplicate detection */
	int fail_after;
	int64_t mint, maxt;
	const char *component; /* Info ComponentType, NULL = not set */
};

typedef struct inmem_set {
	series_set_t base;
	inmem_store_t *st;
	arena_t *a;
	const matcher_t *ms;
	size_t nms;
	int64_t mint, maxt, limit, returned;
	bool skip_chunks;
	size_t idx; /* next series to look at */
	labels_t cur;
	const chunk_t *chunks;
	size_t nchunks;
	xor_iter_t it;
} inmem_set_t;

static int series_cmp(const void *a, const void *b)
{
	/* By the served labels: merging external labels in can reorder series ({a} < {a,b} locally, but
	 * {a,z} > {a,b,z} with z external). */
	return labels_cmp(&((const inmem_series_t *)a)->out, &((const inmem_series_t *)b)->out);
}

static void ensure_sorted(inmem_store_t *s)
{
	if (!s->sorted) {
		qsort(s->series, s->n, sizeof *s->series, series_cmp);
		s->sorted = true;
	}
}

static int set_next(series_set_t *base, err_t *err)
{
	inmem_set_t *set = (inmem_set_t *)base;
	inmem_store_t *st = set->st;
	if (set->limit > 0 && set->returned >= set->limit)
		return 0;
	if (st->fail_after > 0 && set->returned >= st->fail_after)
		return err_set(err, ERR_UNAVAILABLE, "store %s: injected failure after %d series", st->base.name,
			       st->fail_after);
	while (set->idx < st->n) {
		inmem_series_t *se = &st->series[set->idx++];
		bool ok = true;
		for (size_t i = 0; i < set->nms && ok; i++)
			ok = matcher_matches_labels(&set->ms[i], &se->ls);
		if (!ok)
			continue;
		/* Chunks overlapping [mint, maxt]; chunks are sorted by time and disjoint. */
		size_t lo = 0;
		while (lo < se->nchunks && se->chunks[lo].maxt < set->mint)
			lo++;
		size_t hi = lo;
		while (hi < se->nchunks && se->chunks[hi].mint <= set->maxt)
			hi++;
		if (hi == lo)
			continue;
		set->cur = se->out;
		set->chunks = se->chunks + lo;
		set->nchunks = hi - lo;
		set->returned++;
		return 1;
	}
	return 0;
}

static const labels_t *set_labels(series_set_t *base)
{
	return &((inmem_set_t *)base)->cur;
}

static sample_iter_t *set_samples(series_set_t *base)
{
	inmem_set_t *set = (inmem_set_t *)base;
	if (set->skip_chunks)
		return sample_iter_empty();
	xor_iter_init(&set->it, set->chunks, set->nchunks, set->mint, set->maxt);
	return &set->it.base;
}

static int set_chunks(series_set_t *base, const chunk_t **out)
{
	inmem_set_t *set = (inmem_set_t *)base;
	if (set->skip_chunks) {
		*out = NULL;
		return 0;
	}
	*out = set->chunks;
	return (int)set->nchunks;
}

static void set_close(series_set_t *base)
{
	(void)base; /* arena-owned */
}

static const struct series_set_ops inmem_set_ops = {
	.next = set_next,
	.labels = set_labels,
	.samples = set_samples,
	.chunks = set_chunks,
	.warnings = NULL,
	.close = set_close,
};

static int inmem_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	inmem_store_t *st = (inmem_store_t *)base;
	if (st->fail_after == 0)
		return err_set(err, ERR_UNAVAILABLE, "store %s: injected failure", base->name);
	ensure_sorted(st);
	const matcher_t *rest;
	size_t nrest;
	if (!store_match_external(a, &st->ext, req->ms, req->nms, &rest, &nrest)) {
		*out = series_set_empty();
		return 0;
	}
	inmem_set_t *set = ARENA_NEW(a, inmem_set_t);
	set->base.ops = &inmem_set_ops;
	set->st = st;
	set->a = a;
	set->ms = rest;
	set->nms = nrest;
	set->mint = req->mint;
	set->maxt = req->maxt;
	set->limit = req->limit;
	set->skip_chunks = req->skip_chunks;
	*out = &set->base;
	return 0;
}

/* Series of this store (external labels merged) matching req; used by both label calls. */
static int label_scan(inmem_store_t *st, arena_t *a, const store_label_req_t *req, bool names, store_strings_t *out,
		      err_t *err)
{
	memset(out, 0, sizeof *out);
	if (st->fail_after == 0)
		return err_set(err, ERR_UNAVAILABLE, "store %s: injected failure", st->base.name);
	ensure_sorted(st);
	const matcher_t *rest;
	size_t nrest;
	if (!store_match_external(a, &st->ext, req->ms, req->nms, &rest, &nrest))
		return 0;
	size_t cap = 16, n = 0;
	str_t *v = ARENA_NEW_ARRAY(a, str_t, cap);
	for (size_t i = 0; i < st->n; i++) {
		inmem_series_t *se = &st->series[i];
		bool ok = se->nchunks > 0 && se->chunks[0].mint <= req->maxt && se->chunks[se->nchunks - 1].maxt >= req->mint;
		for (size_t j = 0; j < nrest && ok; j++)
			ok = matcher_matches_labels(&rest[j], &se->ls);
		if (!ok)
			continue;
		const labels_t ls = se->out;
		for (size_t j = 0; j < ls.n; j++) {
			if (!names && !str_eq(ls.v[j].name, req->name))
				continue;
			if (n == cap) {
				v = arena_realloc(a, v, cap * sizeof *v, 2 * cap * sizeof *v);
				cap *= 2;
			}
			v[n++] = names ? ls.v[j].name : ls.v[j].value;
		}
	}
	n = store_strings_sort_unique(v, n);
	if (req->limit > 0 && (int64_t)n > req->limit)
		n = (size_t)req->limit;
	out->v = v;
	out->n = n;
	return 0;
}

static int inmem_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
			     err_t *err)
{
	return label_scan((inmem_store_t *)base, a, req, true, out, err);
}

static int inmem_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
			      err_t *err)
{
	return label_scan((inmem_store_t *)base, a, req, false, out, err);
}

static int inmem_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	inmem_store_t *st = (inmem_store_t *)base;
	(void)a, (void)err;
	out->label_sets = st->ext.n ? &st->ext : NULL;
	out->nlabel_sets = st->ext.n ? 1 : 0;
	out->mint = st->mint;
	out->maxt = st->maxt;
	out->component_type = st->component;
	return 0;
}

static void inmem_free_base(store_t *base)
{
	inmem_store_free((inmem_store_t *)base);
}

static const struct store_ops inmem_ops = {
	.series = inmem_series,
	.label_names = inmem_label_names,
	.label_values = inmem_label_values,
	.info = inmem_info,
	.free = inmem_free_base,
};

void inmem_store_set_component(inmem_store_t *s, const char *component_type)
{
	s->component = component_type ? arena_strdup(&s->arena, component_type) : NULL;
}

inmem_store_t *inmem_store_new(const char *name, const labels_t *ext)
{
	inmem_store_t *s = xcalloc(1, sizeof *s);
	arena_init(&s->arena, 64 * 1024);
	s->base.ops = &inmem_ops;
	s->base.name = arena_strdup(&s->arena, name);
	labels_t none = {NULL, 0};
	s->ext = labels_copy(&s->arena, ext ? ext : &none);
	s->fail_after = -1;
	s->mint = INT64_MAX;
	s->maxt = INT64_MIN;
	s->sorted = true;
	imap_init(&s->by_hash, 0);
	return s;
}

store_t *inmem_store_base(inmem_store_t *s)
{
	return &s->base;
}

void inmem_store_free(inmem_store_t *s)
{
	if (!s)
		return;
	arena_release(&s->arena);
	imap_release(&s->by_hash);
	free(s->series);
	free(s);
}

int inmem_store_add(inmem_store_t *s, const labels_t *ls, const int64_t *t, const double *v, size_t n, err_t *err)
{
	for (size_t i = 1; i < n; i++)
		if (t[i] <= t[i - 1])
			return err_set(err, ERR_INVALID, "inmem store %s: sample %zu: timestamp %lld not after %lld",
				       s->base.name, i, (long long)t[i], (long long)t[i - 1]);
	uint64_t h = labels_hash(ls), idx;
	bool collision = false;
	if (imap_get(&s->by_hash, h, &idx)) {
		collision = true;
		for (size_t i = 0; i < s->n; i++) /* rare: same hash; series may have been re-sorted */
			if (labels_eq(&s->series[i].ls, ls))
				return err_set(err, ERR_INVALID, "inmem store %s: duplicate series", s->base.name);
	}
	if (s->n == s->cap) {
		s->cap = alloc_grow_cap(s->cap, s->n + 1);
		s->series = xreallocarray(s->series, s->cap, sizeof *s->series);
	}
	inmem_series_t *se = &s->series[s->n++];
	se->ls = labels_copy(&s->arena, ls);
	se->out = store_merge_external(&s->arena, &se->ls, &s->ext);
	se->nchunks = (n + XOR_SAMPLES_PER_CHUNK - 1) / XOR_SAMPLES_PER_CHUNK;
	se->chunks = ARENA_NEW_ARRAY(&s->arena, chunk_t, se->nchunks ? se->nchunks : 1);
	xor_enc_t e;
	xor_enc_init(&e);
	for (size_t c = 0; c < se->nchunks; c++) {
		size_t from = c * XOR_SAMPLES_PER_CHUNK, to = from + XOR_SAMPLES_PER_CHUNK;
		if (to > n)
			to = n;
		xor_enc_reset(&e);
		for (size_t i = from; i < to; i++)
			xor_enc_append(&e, t[i], v[i]);
		size_t len;
		const uint8_t *p = xor_enc_bytes(&e, &len);
		se->chunks[c] = (chunk_t){.mint = t[from], .maxt = t[to - 1], .enc = CHUNK_ENC_XOR,
					  .data = arena_memdup(&s->arena, p, len), .len = len};
	}
	xor_enc_release(&e);
	if (n) {
		if (t[0] < s->mint)
			s->mint = t[0];
		if (t[n - 1] > s->maxt)
			s->maxt = t[n - 1];
	}
	if (!collision)
		imap_put(&s->by_hash, h, s->n);
	s->sorted = s->n < 2 || (s->sorted && labels_cmp(&s->series[s->n - 2].out, &se->out) < 0);
	return 0;
}

void inmem_store_set_fail(inmem_store_t *s, int fail_after)
{
	s->fail_after = fail_after;
}

size_t inmem_store_series_count(const inmem_store_t *s)
{
	return s->n;
}
