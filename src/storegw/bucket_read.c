/*
 * bucket_read.c — the store gateway's read path (see bucket_store.h): matchers resolved to postings
 * through the index-header's postings offset table and merged range reads of the remote index (with
 * the index cache in front), intersected; series entries fetched the same way; then a series set that
 * fetches only the chunks overlapping the request, lazily in batches of series with parallel range
 * GETs, under the per-call limits and the shared chunk pool. Label names/values from the header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/varint.h"
#include "base/vec.h"
#include "storegw/bucket_block.h"
#include "tsdb/index.h"
#include "tsdb/postings.h"
#include "tsdb/xor.h"

#define POSTINGS_MERGE_GAP (512 * 1024) /* as Thanos: ranges closer than this are read as one */
#define SERIES_MERGE_GAP (64 * 1024)
#define SERIES_EST 4096                 /* bytes read per series entry when its end is unknown */
#define CHUNK_MERGE_GAP (16 * 1024)
#define CHUNK_EST 2048                  /* bytes read per chunk when its end is unknown: a 120-sample XOR
					 * chunk is ~0.2-1.5 KiB; longer ones are re-read exactly in one batch */
#define BATCH_SERIES 1024
#define BATCH_GROUPS      64 /* blocks per batch whose chunks are placed by block, not sorted */
#define BATCH_BYTES (2u << 20)
#define FETCH_CONCURRENCY 16

/* ================================ per-call context ================================ */

/* One thread's view of a call: blocks of one call are read on several threads (see scan_t), each
 * with its own arena and error, sharing the byte counter. */
typedef struct call {
	bucket_store_t *st;
	arena_t *a;
	atomic_llong *bytes; /* downloaded so far by the whole call */
	err_t *err;
	/* Label calls need only some of a series' symbols (decode_series leaves the others STR_NULL):
	 * names_only, or the names and only the value of *only_name. Neither: all of them. */
	bool names_only;
	const str_t *only_name;
	struct symcache *syms; /* fetch_series: the block's symbols looked up so far */
} call_t;

static int charge(call_t *c, int64_t n, const char *what)
{
	long long total = atomic_fetch_add(c->bytes, n) + n;
	if (c->st->cfg.bytes_limit > 0 && total > c->st->cfg.bytes_limit) {
		metric_inc(metric_with(bucket_metrics.dropped, "bytes"));
		return err_set(c->err, ERR_LIMIT,
			       "bucket store: exceeded bytes limit while fetching %s: %lld bytes downloaded, limit %lld",
			       what, total, (long long)c->st->cfg.bytes_limit);
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
	metric_add(metric_with(bucket_metrics.fetched_bytes, what), (double)total);
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
static int decode_postings(call_t *c, bucket_block_t *b, const uint8_t *body, size_t bl, int64_t off, postings_t *p)
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
static int fetch_postings(call_t *c, bucket_block_t *b, pkey_t *keys, size_t n)
{
	want_t *w = ARENA_NEW_ARRAY(c->a, want_t, n + 1);
	str_t *ck = ARENA_NEW_ARRAY(c->a, str_t, n + 1);
	str_t *cv = ARENA_NEW_ARRAY(c->a, str_t, n + 1);
	bool *hit = ARENA_NEW_ARRAY(c->a, bool, n + 1);
	size_t nw = 0;
	int rc;
	for (size_t i = 0; i < n; i++)
		ck[i] = pkey_cache_key(c->a, &keys[i]);
	indexcache_get_multi(c->st->cache, b->ulid, INDEXCACHE_POSTINGS, ck, n, c->a, cv, hit); /* one round trip */
	for (size_t i = 0; i < n; i++) {
		if (hit[i]) {
			if ((rc = decode_postings(c, b, (const uint8_t *)cv[i].p, cv[i].n, keys[i].start, &keys[i].p)))
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
	metric_add(metric_with(bucket_metrics.fetched, "postings"), (double)nw);
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
static int block_postings(call_t *c, bucket_block_t *b, const indexheader_t *h, const matcher_t *ms, size_t nms,
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

/* Symbols a call has looked up in one block, direct-mapped by reference: the series of a block share
 * most of their symbols (every label name, most values), and a lookup in the index-header walks up
 * to 31 strings from the last sampled one. */
#define SYMCACHE_MAX 1024
typedef struct symcache {
	uint32_t mask;
	uint32_t *ref; /* UINT32_MAX: empty */
	str_t *s;
} symcache_t;

static symcache_t *symcache_new(arena_t *a, uint32_t nsymbols)
{
	uint32_t n = 16;
	while (n < nsymbols && n < SYMCACHE_MAX)
		n *= 2;
	symcache_t *sc = ARENA_NEW(a, symcache_t);
	sc->mask = n - 1;
	sc->ref = arena_alloc(a, n * sizeof *sc->ref);
	memset(sc->ref, 0xff, n * sizeof *sc->ref);
	sc->s = arena_alloc(a, n * sizeof *sc->s);
	return sc;
}

/* Symbol ref (< nsymbols, checked by the caller). */
static str_t block_symbol(const call_t *c, const indexheader_t *h, uint32_t ref)
{
	str_t v;
	symcache_t *sc = c->syms;
	if (!sc) {
		indexheader_symbol(h, ref, &v, NULL);
		return v;
	}
	uint32_t k = ref & sc->mask;
	if (sc->ref[k] != ref) {
		indexheader_symbol(h, ref, &sc->s[k], NULL);
		sc->ref[k] = ref;
	}
	return sc->s[k];
}

typedef struct sentry {
	labels_t ls;
	chunk_meta_t *chks;
	size_t nchks;
} sentry_t;

static int decode_series(call_t *c, bucket_block_t *b, const indexheader_t *h, uint32_t id, const uint8_t *p, size_t bl,
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
		if (ns >= indexheader_nsymbols(h) || vs >= indexheader_nsymbols(h))
			return SBAD("symbol reference out of range");
		label_t *l = &out->ls.v[i];
		l->name = block_symbol(c, h, (uint32_t)ns);
		l->value = STR_NULL;
		if (!c->names_only && (!c->only_name || str_eq(l->name, *c->only_name)))
			l->value = block_symbol(c, h, (uint32_t)vs);
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
	index_chunk_metas_order(cm, (size_t)nc);
	out->chks = cm;
	out->nchks = (size_t)nc;
	return 0;
}

/* Entry at p[0..avail): body pointer/length after checks; 1 = needs more bytes (*need total). */
static int frame_series(call_t *c, bucket_block_t *b, uint32_t id, const uint8_t *p, int64_t avail, const uint8_t **body,
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

/* Series entries of ids in block b into out[] (labels resolved through a cache of the block's
 * symbols when there are enough entries to share them). */
static int fetch_series(call_t *cp, bucket_block_t *b, const indexheader_t *h, postings_t ids, sentry_t *out)
{
	call_t cc = *cp, *c = &cc;
	c->syms = ids.n >= 8 ? symcache_new(c->a, indexheader_nsymbols(h)) : NULL;
	want_t *w = ARENA_NEW_ARRAY(c->a, want_t, ids.n + 1);
	str_t *ck = ARENA_NEW_ARRAY(c->a, str_t, ids.n + 1), *cv = ARENA_NEW_ARRAY(c->a, str_t, ids.n + 1);
	bool *hit = ARENA_NEW_ARRAY(c->a, bool, ids.n + 1);
	size_t nw = 0;
	int rc;
	for (size_t i = 0; i < ids.n; i++)
		ck[i] = str_from((const char *)&ids.v[i], 4);
	indexcache_get_multi(c->st->cache, b->ulid, INDEXCACHE_SERIES, ck, ids.n, c->a, cv, hit); /* one round trip */
	for (size_t i = 0; i < ids.n; i++) {
		uint32_t id = ids.v[i];
		if (hit[i]) {
			if ((rc = decode_series(c, b, h, id, (const uint8_t *)cv[i].p, cv[i].n, &out[i])))
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
	metric_add(metric_with(bucket_metrics.fetched, "series"), (double)nw);
	/* Entries longer than estimated are re-read exactly, all in one batch after the first pass.
	 * The ranges (bucket_range_t holds an err_t, ~1 KiB) are allocated only for those: one per entry up
	 * front was the largest allocation of a Series call (~1.6 KiB per series, zeroed). */
	bucket_range_t *again = NULL;
	size_t *again_w = ARENA_NEW_ARRAY(c->a, size_t, nw + 1);
	int64_t *again_need = ARENA_NEW_ARRAY(c->a, int64_t, nw + 1);
	size_t nagain = 0;
	int64_t again_bytes = 0;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (!nagain)
				break;
			if ((rc = charge(c, again_bytes, "series")))
				return rc;
			again = ARENA_NEW_ARRAY(c->a, bucket_range_t, nagain);
			for (size_t k = 0; k < nagain; k++) {
				again[k] = (bucket_range_t){.name = name, .off = w[again_w[k]].start, .len = again_need[k]};
				again[k].dst = arena_alloc(c->a, (size_t)again[k].len + 1);
			}
			if ((rc = bucket_get_ranges(c->st->cfg.bkt, again, nagain, FETCH_CONCURRENCY, c->err)))
				return err_wrap(c->err, "block %s", b->ulid);
		}
		size_t nloop = pass ? nagain : nw;
		for (size_t j = 0; j < nloop; j++) {
			size_t i = pass ? again_w[j] : j;
			uint32_t id = ids.v[w[i].idx];
			const uint8_t *p;
			int64_t avail;
			if (pass) {
				p = (const uint8_t *)again[j].dst;
				avail = again[j].got;
			} else {
				span_t *s = &sp[w[i].span];
				int64_t rel = w[i].start - s->off;
				p = (const uint8_t *)s->data + rel;
				avail = s->got - rel;
			}
			const uint8_t *body = NULL; /* set by frame_series when it returns 0 (gcc -O2 cannot tell) */
			size_t bl = 0;
			int64_t need = 0;
			rc = frame_series(c, b, id, p, avail, &body, &bl, &need);
			if (rc == 1 && !pass) { /* longer than estimated: read it exactly in the second pass */
				again_need[nagain] = need;
				again_w[nagain++] = i;
				again_bytes += need;
				continue;
			}
			if (rc == 1)
				rc = err_set(c->err, ERR_CORRUPT, "block %s: series %u runs past the end of the index", b->ulid,
					     id);
			if (rc)
				return rc;
			if ((rc = decode_series(c, b, h, id, body, bl, &out[w[i].idx])))
				return rc;
			indexcache_put(c->st->cache, b->ulid, INDEXCACHE_SERIES, str_from((const char *)&id, 4), body, bl);
		}
	}
	return 0;
}

/* ================================ series set ================================ */

typedef struct cref {
	bucket_block_t *b;
	chunk_meta_t m;
} cref_t;

typedef struct oseries {
	labels_t ls;
	labels_t rkey; /* without_replica_labels: the replica labels removed from ls (else empty) */
	cref_t *refs;
	size_t nrefs;
	int64_t bmint; /* block mint, for ordering equal label sets */
	chunk_t *chunks; /* filled per batch */
} oseries_t;

typedef struct bs_set {
	series_set_t base;
	bucket_store_t *st;
	call_t c;
	atomic_llong bytes; /* downloaded by the whole call */
	oseries_t *v;
	size_t n, pos;   /* pos = next series to return */
	size_t bend;     /* series [pos, bend) have chunks fetched */
	bool skip_chunks;
	int64_t mint, maxt;
	arena_t batch; /* the current batch's bookkeeping (and re-read chunks) */
	/* The current batch's per-chunk arrays (meta) and chunk bytes (data): one buffer each, reused by
	 * the call's later batches (call_buf), so that a call of many batches faults their pages in once,
	 * not once per batch. */
	uint8_t *meta, *data;
	size_t meta_cap, data_cap;
	int64_t pool_held;
	oseries_t *cur;
	xor_iter_t it;
	aggr_iter_t ait; /* a series with aggregate chunks (downsampled blocks) */
	aggr_view_t view;
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
	bucket_block_t *b;
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

/* Parse a chunk record at p[0..avail): 1 = needs *need bytes. Its CRC32C (over the encoding byte and
 * the data, stored right after them) is checked when its series is returned (chunk_crc_ok): then the
 * bytes are still in the cache for the consumer, not evicted by the rest of a batch of megabytes. */
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
	out->enc = p[k];
	out->data = p + k + 1;
	out->len = (size_t)len;
	(void)s;
	return 0;
}

/* *p with room for n bytes (contents not kept). Below malloc's mmap threshold (base/alloc.h: 256 KiB)
 * the buffer comes from the heap, whose pages earlier calls faulted in already; above it, it gets room
 * to grow, as mapped pages left untouched cost nothing, so a later, somewhat larger batch does not map
 * and fault in a fresh buffer. */
#define CALL_BUF_HEAP (192u << 10)
static void *call_buf(uint8_t **p, size_t *cap, size_t n)
{
	if (n > *cap) {
		free(*p);
		if (n < CALL_BUF_HEAP)
			*cap = (n + 4095) & ~(size_t)4095;
		else
			*cap = (n + n / 2 + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
		*p = xmalloc(*cap);
	}
	return *p;
}

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

/* Fetch the chunks of series [pos, ...) up to the batch bounds. */
static int fetch_batch(bs_set_t *s, err_t *err)
{
	arena_reset(&s->batch);
	pool_release(s);
	size_t from = s->pos, to = from, nchunks = 0;
	int64_t est = 0;
	while (to < s->n && (to == from || (to - from < BATCH_SERIES && est < (int64_t)BATCH_BYTES))) {
		/* only for batch sizing: a chunk followed by the series' next one in the same segment spans
		 * the distance to it (aggregate chunks of downsampled blocks are ~10x an XOR chunk), others
		 * a typical XOR chunk */
		const cref_t *r = s->v[to].refs;
		for (size_t k = 0; k < s->v[to].nrefs; k++) {
			int64_t d = k + 1 < s->v[to].nrefs && r[k + 1].b == r[k].b &&
			                    r[k + 1].m.ref >> 32 == r[k].m.ref >> 32
			                ? (int64_t)(r[k + 1].m.ref & 0xffffffffu) -
			                      (int64_t)(r[k].m.ref & 0xffffffffu)
			                : 0;
			est += d > 0 && d <= CHUNK_EST ? d : 200;
		}
		nchunks += s->v[to].nrefs;
		to++;
	}
	/* the per-chunk arrays: w, rof, again_w, again_need, then every series' chunk_t array */
	size_t nc1 = nchunks + 1;
	size_t mbytes = ALIGN16(nc1 * sizeof(cwant_t)) + 3 * ALIGN16(nc1 * sizeof(size_t)) +
	                (to - from) * sizeof(chunk_t) + nchunks * sizeof(chunk_t);
	uint8_t *mp = call_buf(&s->meta, &s->meta_cap, mbytes);
	cwant_t *w = (cwant_t *)mp;
	mp += ALIGN16(nc1 * sizeof(cwant_t));
	size_t *rof = (size_t *)mp;
	mp += ALIGN16(nc1 * sizeof(size_t));
	size_t *again_w = (size_t *)mp;
	mp += ALIGN16(nc1 * sizeof(size_t));
	int64_t *again_need = (int64_t *)mp;
	mp += ALIGN16(nc1 * sizeof(int64_t));
	/* w in (block, segment, offset) order. A block's chunks, taken in series (label) order, are in
	 * segment order already (its index lists series in label order and they were written so): the
	 * chunks are placed by block, and only a block whose chunks are not is sorted. */
	bucket_block_t *gb[BATCH_GROUPS];
	size_t gn[BATCH_GROUPS], ng = 0, last = 0;
	for (size_t i = from; i < to && ng <= BATCH_GROUPS; i++)
		for (size_t k = 0; k < s->v[i].nrefs; k++) {
			bucket_block_t *b = s->v[i].refs[k].b;
			if (ng && gb[last] == b) {
				gn[last]++;
				continue;
			}
			for (last = 0; last < ng && gb[last] != b; last++)
				;
			if (last == ng) {
				if (ng == BATCH_GROUPS) {
					ng++; /* too many blocks: one sort of everything */
					break;
				}
				gb[ng] = b, gn[ng++] = 0;
			}
			gn[last]++;
		}
	size_t gstart[BATCH_GROUPS + 1], gnext[BATCH_GROUPS];
	bool grouped = ng <= BATCH_GROUPS;
	if (grouped) { /* groups in block address order, as cwant_cmp orders them */
		for (size_t i = 1; i < ng; i++)
			for (size_t j = i; j > 0 && gb[j - 1] > gb[j]; j--) {
				bucket_block_t *tb = gb[j];
				size_t tn = gn[j];
				gb[j] = gb[j - 1], gn[j] = gn[j - 1];
				gb[j - 1] = tb, gn[j - 1] = tn;
			}
		gstart[0] = 0;
		for (size_t g = 0; g < ng; g++)
			gnext[g] = gstart[g], gstart[g + 1] = gstart[g] + gn[g];
	}
	size_t nw = 0, g = 0;
	for (size_t i = from; i < to; i++) {
		s->v[i].chunks = (chunk_t *)mp;
		mp += (s->v[i].nrefs + 1) * sizeof(chunk_t);
		memset(s->v[i].chunks, 0, (s->v[i].nrefs + 1) * sizeof(chunk_t));
		for (size_t k = 0; k < s->v[i].nrefs; k++) {
			cref_t *r = &s->v[i].refs[k];
			size_t at = nw;
			if (grouped) {
				if (gb[g] != r->b)
					for (g = 0; gb[g] != r->b; g++)
						;
				at = gnext[g]++;
			}
			uint32_t seg = (uint32_t)(r->m.ref >> 32);
			w[at] = (cwant_t){r->b, seg, (int64_t)(r->m.ref & 0xffffffffu), 0, i, k};
			nw++;
		}
	}
	if (!grouped) {
		qsort(w, nw, sizeof *w, cwant_cmp);
	} else {
		for (size_t k = 0; k < ng; k++) {
			cwant_t *gw = w + gstart[k];
			for (size_t i = 1; i < gn[k]; i++)
				if (cwant_cmp(&gw[i - 1], &gw[i]) > 0) {
					qsort(gw, gn[k], sizeof *gw, cwant_cmp);
					break;
				}
		}
	}
	for (size_t i = 0; i < nw; i++) {
		w[i].end = w[i].off + CHUNK_EST;
		if (i + 1 < nw && w[i + 1].b == w[i].b && w[i + 1].seg == w[i].seg && w[i + 1].off > w[i].off &&
		    w[i + 1].off < w[i].end)
			w[i].end = w[i + 1].off;
	}
	/* Merge into ranges per (block, segment): counted first, as a bucket_range_t holds an err_t. */
	size_t nr = 0;
	int64_t lend = 0;
	for (size_t i = 0; i < nw; i++) {
		if (nr && w[i - 1].b == w[i].b && w[i - 1].seg == w[i].seg &&
		    w[i].off <= lend + CHUNK_MERGE_GAP) {
			if (w[i].end > lend)
				lend = w[i].end;
		} else {
			nr++;
			lend = w[i].end;
		}
		rof[i] = nr - 1;
	}
	bucket_range_t *r = ARENA_NEW_ARRAY(&s->batch, bucket_range_t, nr + 1);
	for (size_t i = 0; i < nw; i++) {
		bucket_range_t *x = &r[rof[i]];
		if (i == 0 || rof[i] != rof[i - 1])
			*x = (bucket_range_t){.name = bucket_block_segment_name(w[i].b, &s->batch, w[i].seg), .off = w[i].off,
					      .len = w[i].end - w[i].off};
		else if (w[i].end > x->off + x->len)
			x->len = w[i].end - x->off;
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
			metric_inc(metric_with(bucket_metrics.dropped, "chunk_pool"));
			return err_set(err, ERR_LIMIT,
				       "bucket store: chunk pool exhausted: %lld bytes of chunks in flight, --chunk-pool-size %lld",
				       (long long)used, (long long)s->st->cfg.chunk_pool_size);
		}
	}
	size_t bytes = 0;
	for (size_t i = 0; i < nr; i++)
		bytes += (size_t)r[i].len + 1;
	uint8_t *dp = call_buf(&s->data, &s->data_cap, bytes);
	for (size_t i = 0; i < nr; i++) {
		r[i].dst = (char *)dp;
		dp += (size_t)r[i].len + 1;
	}
	if (nr && (rc = bucket_get_ranges(s->st->cfg.bkt, r, nr, FETCH_CONCURRENCY, err)))
		return err_wrap(err, "fetching chunks");
	/* Chunks longer than estimated are re-read exactly, all in one batch after the first pass.
	 * Their ranges are allocated only then (a bucket_range_t holds an err_t, ~1 KiB). */
	bucket_range_t *again = NULL;
	size_t nagain = 0;
	int64_t again_bytes = 0;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (!nagain)
				break;
			if ((rc = charge(&s->c, again_bytes, "chunks")))
				return rc;
			if (s->st->cfg.chunk_pool_size > 0) {
				atomic_fetch_add(&s->st->pool_used, again_bytes);
				s->pool_held += again_bytes;
			}
			again = ARENA_NEW_ARRAY(&s->batch, bucket_range_t, nagain);
			for (size_t k = 0; k < nagain; k++) {
				size_t i = again_w[k];
				again[k] = (bucket_range_t){.name = r[rof[i]].name, .off = w[i].off, .len = again_need[k]};
				again[k].dst = arena_alloc(&s->batch, (size_t)again[k].len + 1);
			}
			if ((rc = bucket_get_ranges(s->st->cfg.bkt, again, nagain, FETCH_CONCURRENCY, err)))
				return err_wrap(err, "fetching chunks");
			total += again_bytes;
		}
		size_t nloop = pass ? nagain : nw;
		for (size_t j = 0; j < nloop; j++) {
			size_t i = pass ? again_w[j] : j;
			bucket_range_t *rr = pass ? &again[j] : &r[rof[i]];
			int64_t rel = w[i].off - rr->off;
			chunk_t *ch = &s->v[w[i].si].chunks[w[i].ci];
			int64_t need;
			const char *seg = rr->name;
			int f = frame_chunk(s, &w[i], (const uint8_t *)rr->dst + rel, rr->got - rel, ch, &need);
			if (f == 1 && !pass) {
				again_need[nagain] = need;
				again_w[nagain++] = i;
				again_bytes += need;
				continue;
			}
			if (f)
				return err_set(err, ERR_CORRUPT, "block %s: %s: offset %lld: %s",
				               w[i].b->ulid, seg, (long long)w[i].off,
				               f == 1 ? "chunk runs past the end of the segment"
				                      : "chunk: bad length");
			cref_t *cr = &s->v[w[i].si].refs[w[i].ci];
			ch->mint = cr->m.mint;
			ch->maxt = cr->m.maxt;
		}
	}
	metric_add(metric_with(bucket_metrics.fetched, "chunks"), (double)nw);
	metric_add(metric_with(bucket_metrics.fetched_bytes, "chunks"), (double)total);
	s->bend = to;
	return 0;
}

/* A chunk framed by frame_chunk: its CRC32C covers the encoding byte before the data and the data. */
static bool chunk_crc_ok(const chunk_t *c)
{
	return crc32c(0, c->data - 1, c->len + 1) == be32_get(c->data + c->len);
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
	oseries_t *o = &s->v[s->pos++];
	for (size_t k = 0; !s->skip_chunks && k < o->nrefs; k++)
		if (!chunk_crc_ok(&o->chunks[k])) {
			cref_t *r = &o->refs[k];
			return err_set(err, ERR_CORRUPT, "block %s: %s: offset %lld: chunk: bad CRC32C",
			               r->b->ulid,
			               bucket_block_segment_name(r->b, &s->batch, (uint32_t)(r->m.ref >> 32)),
			               (long long)(r->m.ref & 0xffffffffu));
		}
	s->cur = o;
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
	if (aggr_chunks_any(s->cur->chunks, s->cur->nrefs)) {
		aggr_iter_init(&s->ait, s->cur->chunks, s->cur->nrefs, s->mint, s->maxt, s->view);
		return &s->ait.base;
	}
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
	free(s->meta);
	free(s->data);
	s->meta = s->data = NULL;
	s->meta_cap = s->data_cap = 0;
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
	if ((c = labels_cmp(&x->rkey, &y->rkey)) != 0) /* replicas: consecutive, in replica label order */
		return c;
	if (x->bmint != y->bmint)
		return x->bmint < y->bmint ? -1 : 1;
	/* overlapping blocks with the same start: by ULID, so the output does not depend on read order */
	return x->nrefs && y->nrefs ? strcmp(x->refs[0].b->ulid, y->refs[0].b->ulid) : 0;
}

typedef VEC(oseries_t) ovec_t;

static bool run_sorted(const oseries_t *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (oseries_cmp(&v[i - 1], &v[i]) > 0)
			return false;
	return true;
}

/* Sort v[0..n) by oseries_cmp. runs[0..nruns) are where the blocks' series start (ascending, the first
 * 0): a block's series come in the order of its index, which is label order unless external or
 * replica labels moved them, so a check of each run and a merge of the runs replace the full sort. */
static void sort_series(oseries_t *v, size_t n, const size_t *runs, size_t nruns)
{
	if (n < 2)
		return;
	bool sorted = nruns > 0 && runs[0] == 0;
	for (size_t r = 0; r < nruns && sorted; r++)
		sorted = run_sorted(v + runs[r], (r + 1 < nruns ? runs[r + 1] : n) - runs[r]);
	if (!sorted) {
		qsort(v, n, sizeof *v, oseries_cmp);
		return;
	}
	if (nruns < 2)
		return;
	/* bottom-up: merge neighbouring runs, halving their number per round */
	size_t *b = xmalloc((nruns + 1) * sizeof *b);
	memcpy(b, runs, nruns * sizeof *b);
	b[nruns] = n;
	size_t nb = nruns;
	oseries_t *src = v, *dst = xmalloc(n * sizeof *v), *tmp = dst;
	while (nb > 1) {
		size_t w = 0;
		for (size_t r = 0; r < nb; r += 2) {
			size_t lo = b[r], mid = b[r + 1], hi = r + 2 <= nb ? b[r + 2] : mid;
			size_t i = lo, j = mid, o = lo;
			while (i < mid && j < hi)
				dst[o++] = oseries_cmp(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
			while (i < mid)
				dst[o++] = src[i++];
			while (j < hi)
				dst[o++] = src[j++];
			b[w++] = lo;
		}
		b[w] = n;
		nb = w;
		oseries_t *t = src;
		src = dst;
		dst = t;
	}
	if (src != v)
		memcpy(v, src, n * sizeof *v);
	free(tmp);
	free(b);
}

/* Postings of a block for the request's matchers (external labels applied); *skip when the block
 * cannot match. */
static int block_ids(call_t *c, bucket_block_t *b, const matcher_t *ms, size_t nms, const indexheader_t **hp,
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
	int rc = bucket_block_header(b, &h, c->err);
	if (rc)
		return rc;
	*hp = h;
	return block_postings(c, b, h, rest, nrest, ids);
}

/* Count n more series touched by the call against series_touched_limit. */
static int touch(call_t *c, atomic_llong *touched, size_t n)
{
	long long t = atomic_fetch_add(touched, (long long)n) + (long long)n;
	if (c->st->cfg.series_touched_limit > 0 && t > c->st->cfg.series_touched_limit) {
		metric_inc(metric_with(bucket_metrics.dropped, "series"));
		return err_set(c->err, ERR_LIMIT, "bucket store: exceeded series limit: %lld series touched, limit %lld", t,
			       (long long)c->st->cfg.series_touched_limit);
	}
	return 0;
}

/* without_replica_labels: move the labels named in names[0..n) from *ls (in place, order kept) to *rkey
 * (allocated in a when there are any). Whether they came from the block's external labels (constant
 * per block) or the series' own, the series of one replica keep their relative order. */
static void split_replicas(arena_t *a, labels_t *ls, labels_t *rkey, const str_t *names, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < ls->n; i++) {
		bool drop = false;
		for (size_t j = 0; j < n && !drop; j++)
			drop = str_eq(ls->v[i].name, names[j]);
		if (!drop) {
			ls->v[w++] = ls->v[i];
			continue;
		}
		if (!rkey->v)
			rkey->v = ARENA_NEW_ARRAY(a, label_t, n);
		rkey->v[rkey->n++] = ls->v[i];
	}
	ls->n = w;
}

/* Series of one block matching the request, appended to out (labels merged with the block's). The
 * block's postings and series entries are read into c->a (scratch); what outlives the block (label
 * sets, chunk refs) goes to keep. */
static int block_series(call_t *c, arena_t *keep, bucket_block_t *b, const store_series_req_t *req, ovec_t *out,
			atomic_llong *touched)
{
	const indexheader_t *h = NULL;
	postings_t ids;
	bool skip;
	int rc = block_ids(c, b, req->ms, req->nms, &h, &ids, &skip);
	if (rc || skip || !ids.n)
		return rc;
	if ((rc = touch(c, touched, ids.n)))
		return rc;
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
		o->ls = store_merge_external(keep, &se[i].ls, &b->ext);
		o->rkey = (labels_t){0};
		if (req->without_replica_labels && req->nreplica_labels)
			split_replicas(keep, &o->ls, &o->rkey, req->replica_labels, req->nreplica_labels);
		o->nrefs = hi - lo;
		o->refs = ARENA_NEW_ARRAY(keep, cref_t, o->nrefs);
		for (size_t k = lo; k < hi; k++)
			o->refs[k - lo] = (cref_t){b, se[i].chks[k]};
		o->bmint = b->meta.mint;
		o->chunks = NULL;
	}
	return 0;
}

/* ---- the per-block phase of a call (Series, and label calls with matchers), on the store's read pool ----
 * Blocks are independent until their results are merged, so a call reads them on up to
 * read_concurrency lanes at once: its own thread plus helper jobs on the store's pool. Each lane
 * claims the next unread block, runs the call's block function on it with its own scratch arena
 * (reset after every block, so memory is one block's index reads per lane) and appends the block's
 * result to its own vectors: Series' series (kept in the lane's arena until the call ends; chunks are
 * fetched later, lazily and batched across blocks, by fetch_batch), or a label call's strings (which
 * point into the block's index-header or external labels, both alive while the call holds the block).
 * With local reads (a FILESYSTEM bucket, no remote index cache) the caller starts alone and wakes
 * helpers only when its first blocks show the rest is worth it (HELPER_MIN_NS); remote reads start
 * every lane at once.
 * The caller waits only for blocks claimed by helpers, never for helpers to start: a helper that
 * runs late (pool busy with other calls) finds nothing left and only drops its reference to the
 * scan, which is therefore on the heap and freed by whoever leaves it last. A helper touches the
 * call's memory (lanes, request, blocks) only while it holds a claimed block. */
typedef VEC(str_t) strvec_t;

typedef struct lane {
	arena_t keep, scratch;
	err_t err;
	int rc;
	size_t failed_block;
	ovec_t out;    /* Series */
	VEC(size_t) runs; /* Series: where each block's series start in out */
	strvec_t strs; /* label calls: the blocks' names or values */
} lane_t;

/* What a call does with one block, on lane l; arg is the call's request. */
typedef int (*scan_fn)(call_t *c, lane_t *l, bucket_block_t *b, const void *arg, atomic_llong *touched);

typedef struct scan {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;             /* caller + helper jobs not yet finished; under mu */
	size_t next, inflight; /* under mu */
	bool stop;            /* under mu: a block failed, claim nothing more */
	atomic_size_t lanes_used;
	bucket_store_t *st;
	scan_fn fn;
	const void *arg;
	bucket_block_t **blocks;
	size_t nb;
	lane_t *lanes;
	atomic_llong *bytes;
	atomic_llong touched;
	/* the caller's thread only: helpers not started yet (local reads) and when the scan began */
	size_t deferred;
	uint64_t t0;
} scan_t;

static void scan_unref(scan_t *sc)
{
	pthread_mutex_lock(&sc->mu);
	bool last = --sc->refs == 0;
	pthread_mutex_unlock(&sc->mu);
	if (last) {
		pthread_mutex_destroy(&sc->mu);
		pthread_cond_destroy(&sc->cv);
		free(sc);
	}
}

/* Claim the next block; SIZE_MAX when none is left (or the scan stopped). */
static size_t scan_claim(scan_t *sc)
{
	size_t i = SIZE_MAX;
	pthread_mutex_lock(&sc->mu);
	if (!sc->stop && sc->next < sc->nb) {
		i = sc->next++;
		sc->inflight++;
	}
	pthread_mutex_unlock(&sc->mu);
	return i;
}

static void scan_finish(scan_t *sc, int rc)
{
	pthread_mutex_lock(&sc->mu);
	sc->inflight--;
	if (rc)
		sc->stop = true;
	if (!sc->inflight)
		pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
}

static void scan_helper(void *arg);

/* Start n helpers (the caller's thread, before it waits). */
static void scan_start_helpers(scan_t *sc, size_t n)
{
	if (!n)
		return;
	pthread_mutex_lock(&sc->mu);
	sc->refs += (int)n;
	pthread_mutex_unlock(&sc->mu);
	for (size_t i = 0; i < n; i++)
		workers_submit(sc->st->pool, scan_helper, sc);
}

/* Local reads: helpers start only once the caller's blocks so far say the rest would take it at least
 * this long alone. A small call (a few blocks of page-cache reads, tens of microseconds each) then
 * wakes no thread, which mostly found nothing left to read and cost the call two context switches. */
#define HELPER_MIN_NS (500 * 1000)

/* The caller finished its done-th block: start the deferred helpers if the rest looks slow enough. */
static void scan_maybe_help(scan_t *sc, size_t done)
{
	pthread_mutex_lock(&sc->mu);
	size_t left = sc->stop ? 0 : sc->nb - sc->next;
	pthread_mutex_unlock(&sc->mu);
	if (!left) {
		sc->deferred = 0;
		return;
	}
	uint64_t spent = clock_mono_ns() - sc->t0;
	if (spent / done * left < HELPER_MIN_NS)
		return;
	size_t n = sc->deferred < left ? sc->deferred : left;
	sc->deferred = 0;
	scan_start_helpers(sc, n);
}

/* Read blocks until none is left; lane li (or a fresh one on the first claim when li == SIZE_MAX).
 * Lane 0 is the caller's. */
static void scan_run(scan_t *sc, size_t li)
{
	size_t i, done = 0;
	while ((i = scan_claim(sc)) != SIZE_MAX) {
		if (li == SIZE_MAX)
			li = atomic_fetch_add(&sc->lanes_used, 1);
		lane_t *l = &sc->lanes[li];
		call_t c = {sc->st, &l->scratch, sc->bytes, &l->err};
		int rc = sc->fn(&c, l, sc->blocks[i], sc->arg, &sc->touched);
		arena_reset(&l->scratch);
		if (rc) {
			l->rc = rc;
			l->failed_block = i;
		}
		scan_finish(sc, rc);
		if (rc)
			break;
		if (li == 0 && sc->deferred)
			scan_maybe_help(sc, ++done);
	}
}

static void scan_helper(void *arg)
{
	scan_t *sc = arg;
	scan_run(sc, SIZE_MAX);
	scan_unref(sc);
}

static void lane_release(void *arg)
{
	lane_t *l = arg;
	arena_release(&l->keep);
	arena_release(&l->scratch);
	VEC_FREE(&l->out);
	VEC_FREE(&l->runs);
	VEC_FREE(&l->strs);
}

/* Blocks per helper: below this a block's reads are cheaper than waking a thread. */
#define BLOCKS_PER_HELPER 4

/* Run fn(arg) on every block, on up to read_concurrency lanes (one when !parallel); the lanes are
 * returned in *lanes_out / *nlanes_out, in a. On failure, the error of the first failing block in
 * block order (as a sequential walk would report it); blocks not yet claimed are not read. */
static int scan_blocks(bucket_store_t *st, arena_t *a, scan_fn fn, const void *arg, bool parallel,
		       bucket_block_t **blocks, size_t nb, atomic_llong *bytes, lane_t **lanes_out, size_t *nlanes_out,
		       err_t *err)
{
	size_t helpers = (size_t)bucket_store_read_lanes(st) - 1;
	if (!st->pool || !parallel)
		helpers = 0;
	if (helpers > nb / BLOCKS_PER_HELPER)
		helpers = nb / BLOCKS_PER_HELPER;
	lane_t *lanes = ARENA_NEW_ARRAY(a, lane_t, helpers + 1);
	for (size_t i = 0; i < helpers + 1; i++) {
		arena_init(&lanes[i].keep, 16 * 1024);
		arena_init(&lanes[i].scratch, 64 * 1024);
		arena_on_release(a, lane_release, &lanes[i]);
	}
	scan_t *sc = xcalloc(1, sizeof *sc);
	pthread_mutex_init(&sc->mu, NULL);
	pthread_cond_init(&sc->cv, NULL);
	sc->refs = 1;
	atomic_init(&sc->lanes_used, 1); /* lane 0 is the caller's */
	sc->st = st, sc->fn = fn, sc->arg = arg, sc->blocks = blocks, sc->nb = nb, sc->lanes = lanes, sc->bytes = bytes;
	atomic_init(&sc->touched, 0);
	if (st->local_reads) {
		sc->deferred = helpers;
		sc->t0 = clock_mono_ns();
	} else {
		scan_start_helpers(sc, helpers); /* a remote read waits a round trip: all lanes at once */
	}
	scan_run(sc, 0);
	pthread_mutex_lock(&sc->mu);
	while (sc->inflight)
		pthread_cond_wait(&sc->cv, &sc->mu);
	sc->stop = true; /* late helpers claim nothing */
	pthread_mutex_unlock(&sc->mu);
	scan_unref(sc);
	/* The error of the first failing block (in block order). */
	lane_t *bad = NULL;
	for (size_t i = 0; i < helpers + 1; i++)
		if (lanes[i].rc && (!bad || lanes[i].failed_block < bad->failed_block))
			bad = &lanes[i];
	if (bad) {
		*err = bad->err;
		return bad->rc;
	}
	*lanes_out = lanes;
	*nlanes_out = helpers + 1;
	return 0;
}

static int series_block(call_t *c, lane_t *l, bucket_block_t *b, const void *arg, atomic_llong *touched)
{
	VEC_PUSH(&l->runs, l->out.n);
	return block_series(c, &l->keep, b, arg, &l->out, touched);
}

/* ---- resolution choice (thanos.md §4.5, Thanos's getFor) ---- */

static const int64_t resolutions[] = {3600000, 300000, 0}; /* coarse to fine */

static int block_mint_cmp(const void *a, const void *b)
{
	const bucket_block_t *x = *(bucket_block_t *const *)a, *y = *(bucket_block_t *const *)b;
	return x->meta.mint < y->meta.mint ? -1 : x->meta.mint > y->meta.mint;
}

/* Blocks of v[0..n) (one stream, sorted by mint) to read for [mint, maxt], starting at resolution
 * index ri: that resolution's blocks, and the gaps before, between and after them filled with finer
 * ones. used[] (parallel to v) keeps a finer block that fills gaps on both sides of a coarser one
 * from being taken twice. */
static void get_for(bucket_block_t **v, bool *used, size_t n, int64_t mint, int64_t maxt, size_t ri,
                    bucket_block_t **out, size_t *nout)
{
	if (mint > maxt || ri >= sizeof resolutions / sizeof *resolutions)
		return;
	int64_t start = mint;
	for (size_t i = 0; i < n; i++) {
		bucket_block_t *b = v[i];
		if (b->meta.resolution != resolutions[ri] || b->meta.maxt <= mint)
			continue;
		if (b->meta.mint > maxt)
			break;
		get_for(v, used, n, start, b->meta.mint - 1, ri + 1, out, nout);
		if (!used[i]) {
			used[i] = true;
			out[(*nout)++] = b;
		}
		if (b->meta.maxt > start)
			start = b->meta.maxt;
	}
	get_for(v, used, n, start, maxt, ri + 1, out, nout);
}

/* The blocks a request for [mint, maxt] at max_res reads: per stream (external labels), the coarsest
 * resolution not above max_res first, gaps filled with finer data. Keeps blocks[0..n) referenced
 * (the call's arena holds them); returns the new count, blocks reordered in place. */
static size_t select_resolution(arena_t *a, bucket_block_t **blocks, size_t n, int64_t mint, int64_t maxt,
                                int64_t max_res)
{
	bool any = false;
	for (size_t i = 0; i < n && !any; i++)
		any = blocks[i]->meta.resolution != 0;
	if (!any)
		return n; /* raw data only: nothing to choose */
	size_t ri = 0;
	while (ri + 1 < sizeof resolutions / sizeof *resolutions && resolutions[ri] > max_res)
		ri++;
	bucket_block_t **sorted = arena_memdup(a, blocks, n * sizeof *blocks);
	qsort(sorted, n, sizeof *sorted, block_mint_cmp);
	bool *done = ARENA_NEW_ARRAY(a, bool, n);
	bool *used = ARENA_NEW_ARRAY(a, bool, n);
	bucket_block_t **group = ARENA_NEW_ARRAY(a, bucket_block_t *, n);
	size_t nout = 0;
	for (size_t i = 0; i < n; i++) {
		if (done[i])
			continue;
		size_t ng = 0;
		for (size_t k = i; k < n; k++)
			if (!done[k] && labels_eq(&sorted[k]->ext, &sorted[i]->ext)) {
				done[k] = true;
				used[ng] = false;
				group[ng++] = sorted[k];
			}
		get_for(group, used, ng, mint, maxt, ri, blocks + nout, &nout);
	}
	return nout;
}

int bucket_read_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	bucket_store_t *st = (bucket_store_t *)base;
	uint64_t t0 = clock_mono_ns();
	int maxc = st->cfg.series_max_concurrency > 0 ? st->cfg.series_max_concurrency : 20;
	if (atomic_fetch_add(&st->open_sets, 1) >= maxc) {
		atomic_fetch_sub(&st->open_sets, 1);
		metric_inc(metric_with(bucket_metrics.dropped, "concurrency"));
		return err_set(err, ERR_LIMIT, "bucket store: too many concurrent Series calls (limit %d)", maxc);
	}
	bs_set_t *s = ARENA_NEW(a, bs_set_t);
	atomic_init(&s->bytes, 0);
	s->base.ops = &bs_set_ops;
	s->st = st;
	s->counted = true;
	s->skip_chunks = req->skip_chunks;
	s->mint = req->mint;
	s->maxt = req->maxt;
	s->view = store_aggr_view(req->aggregates);
	arena_init(&s->batch, 64 * 1024);
	arena_on_release(a, set_cleanup, s);
	s->c = (call_t){st, a, &s->bytes, err};

	bucket_block_t **blocks;
	size_t nb = bucket_store_acquire_blocks(st, a, req->mint, req->maxt, &blocks);
	nb = select_resolution(a, blocks, nb, req->mint, req->maxt, req->max_resolution);
	lane_t *lanes = NULL;
	size_t nlanes = 0;
	int rc = scan_blocks(st, a, series_block, req, true, blocks, nb, &s->bytes, &lanes, &nlanes, err);
	if (rc) {
		set_close(&s->base);
		return rc;
	}
	ovec_t all = {0};
	VEC(size_t) runs = {0};
	for (size_t i = 0; i < nlanes; i++) {
		lane_t *l = &lanes[i];
		for (size_t k = 0; k < l->runs.n; k++)
			if (l->runs.v[k] < l->out.n &&
			    (k + 1 == l->runs.n || l->runs.v[k + 1] > l->runs.v[k]))
				VEC_PUSH(&runs, all.n + l->runs.v[k]); /* non-empty runs only */
		for (size_t k = 0; k < l->out.n; k++)
			VEC_PUSH(&all, l->out.v[k]);
		VEC_FREE(&l->out);
		VEC_FREE(&l->runs);
	}
	sort_series(all.v, all.n, runs.v, runs.n);
	VEC_FREE(&runs);
	/* Same labels from several blocks (consecutive time ranges): one series, chunks in time order.
	 * Without replica labels, only blocks of one replica (equal rkey) merge: the replicas of a series
	 * stay separate consecutive series for the caller's dedup. */
	size_t w = 0, nchunks = 0;
	for (size_t i = 0, j; i < all.n; i = j) {
		size_t run = all.v[i].nrefs;
		for (j = i + 1; j < all.n && labels_eq(&all.v[i].ls, &all.v[j].ls) &&
				labels_eq(&all.v[i].rkey, &all.v[j].rkey);
		     j++)
			run += all.v[j].nrefs;
		oseries_t o = all.v[i];
		if (j - i > 1) { /* one allocation per merged series, not one per block */
			o.refs = ARENA_NEW_ARRAY(a, cref_t, run);
			o.nrefs = 0;
			for (size_t k = i; k < j; k++) {
				memcpy(o.refs + o.nrefs, all.v[k].refs, all.v[k].nrefs * sizeof *o.refs);
				o.nrefs += all.v[k].nrefs;
			}
		}
		all.v[w++] = o;
		nchunks += run;
	}
	if (req->limit > 0 && (int64_t)w > req->limit)
		w = (size_t)req->limit;
	if (!req->skip_chunks && st->cfg.series_sample_limit > 0 &&
	    (int64_t)nchunks * XOR_SAMPLES_PER_CHUNK > st->cfg.series_sample_limit) {
		VEC_FREE(&all);
		set_close(&s->base);
		metric_inc(metric_with(bucket_metrics.dropped, "samples"));
		return err_set(err, ERR_LIMIT,
			       "bucket store: exceeded samples limit: %zu chunks (~%zu samples) requested, limit %lld",
			       nchunks, nchunks * XOR_SAMPLES_PER_CHUNK, (long long)st->cfg.series_sample_limit);
	}
	s->v = arena_memdup(a, all.v ? (void *)all.v : (void *)"", w * sizeof(oseries_t) + 1);
	s->n = w;
	VEC_FREE(&all);
	metric_observe(metric_with(bucket_metrics.get_all), clock_since_s(t0));
	metric_observe(metric_with(bucket_metrics.blocks_queried), (double)nb);
	metric_observe(metric_with(bucket_metrics.result_series), (double)w);
	*out = &s->base;
	return 0;
}

/* ================================ labels ================================ */

/* A label call reads each block like Series does (scan_blocks): straight from the index-header when no
 * matcher is left after the block's external labels, else through postings and series entries (whose
 * strings are deduplicated per block on its lane); the lanes' strings are sorted and deduplicated at
 * the end, so the answer does not depend on which lane read which block. */
typedef struct label_scan {
	const store_label_req_t *req;
	bool names;
} label_scan_t;

static bool push_value(void *arg, str_t value, int64_t start, int64_t end)
{
	(void)start, (void)end;
	VEC_PUSH((strvec_t *)arg, value);
	return true;
}

/* The block's names or values appended to out; *repeats when they may repeat (read from series). */
static int label_block_strings(call_t *c, bucket_block_t *b, const label_scan_t *ls, strvec_t *out, bool *repeats,
			       atomic_llong *touched)
{
	const store_label_req_t *req = ls->req;
	const matcher_t *rest;
	size_t nrest;
	if (!store_match_external(c->a, &b->ext, req->ms, req->nms, &rest, &nrest))
		return 0;
	bool ext_found = false;
	str_t ext_val = ls->names ? STR_NULL : labels_get(&b->ext, req->name, &ext_found);
	if (!ls->names && ext_found && !nrest) {
		VEC_PUSH(out, ext_val);
		return 0;
	}
	indexheader_t *h;
	int rc = bucket_block_header(b, &h, c->err);
	if (rc)
		return rc;
	if (!nrest) { /* straight from the index-header */
		if (ls->names) {
			str_t *v;
			size_t n;
			indexheader_label_names(h, c->a, &v, &n);
			for (size_t k = 0; k < n; k++)
				VEC_PUSH(out, v[k]);
			for (size_t k = 0; k < b->ext.n; k++)
				VEC_PUSH(out, b->ext.v[k].name);
		} else {
			indexheader_each_value(h, req->name, push_value, out);
		}
		return 0;
	}
	postings_t ids;
	if ((rc = block_postings(c, b, h, rest, nrest, &ids)) || !ids.n)
		return rc;
	if ((rc = touch(c, touched, ids.n)))
		return rc;
	sentry_t *se = ARENA_NEW_ARRAY(c->a, sentry_t, ids.n + 1);
	call_t lc = *c; /* resolves only the symbols used below */
	lc.names_only = ls->names;
	lc.only_name = ls->names ? NULL : &req->name;
	if ((rc = fetch_series(&lc, b, h, ids, se)))
		return rc;
	*repeats = true;
	/* A series' labels merged with the block's external ones (which win): for names the union, for
	 * values the external value when the block has one. */
	if (ls->names) {
		for (size_t k = 0; k < b->ext.n; k++)
			VEC_PUSH(out, b->ext.v[k].name);
		for (size_t k = 0; k < ids.n; k++)
			for (size_t j = 0; j < se[k].ls.n; j++)
				VEC_PUSH(out, se[k].ls.v[j].name);
	} else if (ext_found) {
		VEC_PUSH(out, ext_val);
	} else {
		for (size_t k = 0; k < ids.n; k++) {
			bool found;
			str_t v = labels_get(&se[k].ls, req->name, &found);
			if (found)
				VEC_PUSH(out, v);
		}
	}
	return 0;
}

static int label_block(call_t *c, lane_t *l, bucket_block_t *b, const void *arg, atomic_llong *touched)
{
	size_t from = l->strs.n;
	bool repeats = false;
	int rc = label_block_strings(c, b, arg, &l->strs, &repeats, touched);
	if (!rc && repeats) /* one copy per block of what its series repeat */
		l->strs.n = from + store_strings_sort_unique(l->strs.v + from, l->strs.n - from);
	return rc;
}

static int label_call(bucket_store_t *st, arena_t *a, const store_label_req_t *req, bool names, store_strings_t *out,
		      err_t *err)
{
	memset(out, 0, sizeof *out);
	bucket_block_t **blocks;
	size_t nb = bucket_store_acquire_blocks(st, a, req->mint, req->maxt, &blocks);
	atomic_llong bytes;
	atomic_init(&bytes, 0);
	label_scan_t ls = {req, names};
	lane_t *lanes;
	size_t nlanes;
	/* Without matchers every block is a walk of its index-header's tables: microseconds, cheaper on
	 * one thread than waking helpers. */
	int rc = scan_blocks(st, a, label_block, &ls, req->nms > 0, blocks, nb, &bytes, &lanes, &nlanes, err);
	if (rc)
		return rc;
	strvec_t acc = {0};
	for (size_t i = 0; i < nlanes; i++) {
		VEC_RESERVE(&acc, acc.n + lanes[i].strs.n);
		if (lanes[i].strs.n)
			memcpy(acc.v + acc.n, lanes[i].strs.v, lanes[i].strs.n * sizeof *acc.v);
		acc.n += lanes[i].strs.n;
	}
	size_t n = store_strings_sort_unique(acc.v, acc.n);
	if (req->limit > 0 && (int64_t)n > req->limit)
		n = (size_t)req->limit;
	out->v = arena_memdup(a, acc.v ? (void *)acc.v : (void *)"", n * sizeof(str_t) + 1);
	out->n = n;
	VEC_FREE(&acc);
	return 0;
}

int bucket_read_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return label_call((bucket_store_t *)base, a, req, true, out, err);
}

int bucket_read_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return label_call((bucket_store_t *)base, a, req, false, out, err);
}
