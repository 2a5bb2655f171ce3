/*
 * seriesenc.c — SeriesResponse{series} encoded by hand (see seriesenc.h).
 */
#include "store/seriesenc.h"

#include <string.h>

#include "base/varint.h"

/* Wire types: 0 varint, 2 length-delimited; every field number here is below 16 (one tag byte). */
#define TAG(field, wt) ((uint8_t)((field) << 3 | (wt)))

/* The varint v at p; returns the byte after it. */
static inline uint8_t *vput(uint8_t *p, uint64_t v)
{
	return p + uvarint_put(p, v);
}

/* A length-delimited field of a body of n bytes: tag, length, body. */
static inline size_t lenfield(size_t n)
{
	return 1 + uvarint_len(n) + n;
}

/* A varint scalar: left out when zero. */
static inline size_t varfield(uint64_t v)
{
	return v ? 1 + uvarint_len(v) : 0;
}

static inline uint8_t *put_bytes(uint8_t *p, uint8_t tag, const void *s, size_t n)
{
	if (!n)
		return p;
	*p++ = tag;
	p = vput(p, n);
	memcpy(p, s, n);
	return p + n;
}

static inline uint8_t *put_var(uint8_t *p, uint8_t tag, uint64_t v)
{
	if (!v)
		return p;
	*p++ = tag;
	return vput(p, v);
}

/* An enum is an int32: a negative one goes out sign-extended to ten bytes. */
static inline uint64_t enum_wire(int v)
{
	return (uint64_t)(int64_t)v;
}

static size_t label_body(const label_t *l)
{
	return (l->name.n ? lenfield(l->name.n) : 0) + (l->value.n ? lenfield(l->value.n) : 0);
}

static size_t chunk_body(const Thanos__Chunk *c)
{
	return varfield(enum_wire((int)c->type)) + (c->data.len ? lenfield(c->data.len) : 0) +
	       varfield(c->hash);
}

/* AggrChunk's sub-chunks in field order (raw = 3 ... counter = 8). */
#define NSUB 6
static inline void subs(const Thanos__AggrChunk *a, const Thanos__Chunk *out[NSUB])
{
	out[0] = a->raw, out[1] = a->count, out[2] = a->sum;
	out[3] = a->min, out[4] = a->max, out[5] = a->counter;
}

static size_t aggr_body(const Thanos__AggrChunk *a)
{
	size_t n = varfield((uint64_t)a->min_time) + varfield((uint64_t)a->max_time);
	const Thanos__Chunk *s[NSUB];
	subs(a, s);
	for (int i = 0; i < NSUB; i++)
		if (s[i])
			n += lenfield(chunk_body(s[i]));
	return n;
}

static size_t series_body(const labels_t *ls, Thanos__AggrChunk *const *cs, size_t n)
{
	size_t b = 0;
	for (size_t i = 0; i < ls->n; i++)
		b += lenfield(label_body(&ls->v[i]));
	for (size_t i = 0; i < n; i++)
		b += lenfield(aggr_body(cs[i]));
	return b;
}

size_t seriesenc_size(const labels_t *ls, Thanos__AggrChunk *const *cs, size_t n)
{
	return lenfield(series_body(ls, cs, n));
}

uint8_t *seriesenc_write(uint8_t *p, size_t len, const labels_t *ls, Thanos__AggrChunk *const *cs, size_t n)
{
	size_t body = 0; /* len = 1 + uvarint_len(body) + body */
	for (size_t k = 1; k <= 10 && k + 1 <= len; k++)
		if (uvarint_len(len - 1 - k) == k) {
			body = len - 1 - k;
			break;
		}
	*p++ = TAG(1, 2); /* SeriesResponse.series */
	p = vput(p, body);
	for (size_t i = 0; i < ls->n; i++) {
		const label_t *l = &ls->v[i];
		*p++ = TAG(1, 2); /* Series.labels */
		p = vput(p, label_body(l));
		p = put_bytes(p, TAG(1, 2), l->name.p, l->name.n);
		p = put_bytes(p, TAG(2, 2), l->value.p, l->value.n);
	}
	for (size_t i = 0; i < n; i++) {
		const Thanos__AggrChunk *a = cs[i];
		*p++ = TAG(2, 2); /* Series.chunks */
		p = vput(p, aggr_body(a));
		p = put_var(p, TAG(1, 0), (uint64_t)a->min_time);
		p = put_var(p, TAG(2, 0), (uint64_t)a->max_time);
		const Thanos__Chunk *s[NSUB];
		subs(a, s);
		for (int k = 0; k < NSUB; k++) {
			if (!s[k])
				continue;
			*p++ = TAG(3 + k, 2);
			p = vput(p, chunk_body(s[k]));
			p = put_var(p, TAG(1, 0), enum_wire((int)s[k]->type));
			p = put_bytes(p, TAG(2, 2), s[k]->data.data, s[k]->data.len);
			p = put_var(p, TAG(3, 0), s[k]->hash);
		}
	}
	return p;
}
