/*
 * xor.c — XOR chunk encoder, decoder and chunk-list sample iterator.
 */
#include "tsdb/xor.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/varint.h"

bool value_is_stale_nan(double v)
{
	uint64_t b;
	memcpy(&b, &v, 8);
	return b == STALE_NAN_BITS;
}

double stale_nan(void)
{
	uint64_t b = STALE_NAN_BITS;
	double v;
	memcpy(&v, &b, 8);
	return v;
}

static inline uint64_t f2u(double v)
{
	uint64_t b;
	memcpy(&b, &v, 8);
	return b;
}

static inline double u2f(uint64_t b)
{
	double v;
	memcpy(&v, &b, 8);
	return v;
}

/* ---- encoder ---- */

static void enc_grow(xor_enc_t *e, size_t extra)
{
	if (e->n + extra > e->cap) {
		e->cap = alloc_grow_cap(e->cap, e->n + extra);
		e->p = xrealloc(e->p, e->cap);
	}
}

void xor_enc_init(xor_enc_t *e)
{
	memset(e, 0, sizeof *e);
	e->cap = 128;
	e->p = xmalloc(e->cap);
	xor_enc_reset(e);
}

void xor_enc_release(xor_enc_t *e)
{
	free(e->p);
	memset(e, 0, sizeof *e);
}

void xor_enc_reset(xor_enc_t *e)
{
	e->p[0] = e->p[1] = 0;
	e->n = 2;
	e->acc = 0;
	e->nacc = 0;
	e->num = 0;
	e->t = e->tdelta = 0;
	e->v = 0;
	e->leading = 0xff;
	e->trailing = 0;
	e->last_bytewise = false;
}

/* Append the low nb (<= 32) bits of v. */
static inline void put_bits(xor_enc_t *e, uint64_t v, int nb)
{
	e->acc = (e->acc << nb) | (v & ((nb == 64) ? ~0ull : ((1ull << nb) - 1)));
	e->nacc += nb;
	if (e->nacc >= 8) {
		enc_grow(e, 8);
		while (e->nacc >= 8) {
			e->nacc -= 8;
			e->p[e->n++] = (uint8_t)(e->acc >> e->nacc);
		}
	}
}

static inline void put_bits64(xor_enc_t *e, uint64_t v, int nb)
{
	if (nb > 32) {
		put_bits(e, v >> 32, nb - 32);
		put_bits(e, v, 32);
	} else if (nb > 0) {
		put_bits(e, v, nb);
	}
}

static void put_bytes(xor_enc_t *e, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_bits(e, b[i], 8);
}

static void put_value(xor_enc_t *e, uint64_t vb)
{
	uint64_t delta = vb ^ e->v;
	if (delta == 0) {
		put_bits(e, 0, 1);
		e->last_bytewise = false;
		return;
	}
	uint8_t lead = (uint8_t)__builtin_clzll(delta);
	uint8_t trail = (uint8_t)__builtin_ctzll(delta);
	if (lead >= 32)
		lead = 31;
	if (e->leading != 0xff && lead >= e->leading && trail >= e->trailing) {
		put_bits(e, 2, 2); /* 10 */
		put_bits64(e, delta >> e->trailing, 64 - e->leading - e->trailing);
		e->last_bytewise = (64 - e->leading - e->trailing) % 8 == 0;
		return;
	}
	e->leading = lead;
	e->trailing = trail;
	int sig = 64 - lead - trail;
	/* 11, 5 bits leading, 6 bits sig (64 -> 0): 13 bits */
	put_bits(e, (3u << 11) | ((uint64_t)lead << 6) | ((uint64_t)sig & 63), 13);
	put_bits64(e, delta >> trail, sig);
	e->last_bytewise = sig % 8 == 0;
}

void xor_enc_append(xor_enc_t *e, int64_t t, double v)
{
	uint64_t vb = f2u(v);
	uint8_t tmp[VARINT_MAX_LEN];
	if (e->num == 0) {
		put_bytes(e, tmp, varint_put(tmp, t));
		put_bits64(e, vb, 64);
		e->last_bytewise = true;
	} else if (e->num == 1) {
		int64_t td = t - e->t;
		put_bytes(e, tmp, uvarint_put(tmp, (uint64_t)td));
		put_value(e, vb);
		e->tdelta = td;
	} else {
		int64_t td = t - e->t;
		int64_t dod = td - e->tdelta;
		if (dod == 0) {
			put_bits(e, 0, 1);
		} else if (dod >= -8191 && dod <= 8192) {
			put_bits(e, (2u << 14) | ((uint64_t)dod & 0x3fff), 16);
		} else if (dod >= -65535 && dod <= 65536) {
			put_bits(e, (6u << 17) | ((uint64_t)dod & 0x1ffff), 20);
		} else if (dod >= -524287 && dod <= 524288) {
			put_bits(e, (14u << 20) | ((uint64_t)dod & 0xfffff), 24);
		} else {
			put_bits(e, 15, 4);
			put_bits64(e, (uint64_t)dod, 64);
		}
		put_value(e, vb);
		e->tdelta = td;
	}
	e->t = t;
	e->v = vb;
	e->num++;
	be16_put(e->p, e->num);
}

const uint8_t *xor_enc_bytes(xor_enc_t *e, size_t *len)
{
	if (e->nacc) {
		enc_grow(e, 1);
		e->p[e->n] = (uint8_t)(e->acc << (8 - e->nacc));
		*len = e->n + 1;
	} else if (e->num > 0 && e->last_bytewise) {
		/* Prometheus' bstream.writeByte leaves an empty trailing byte when it ends byte-aligned. */
		enc_grow(e, 1);
		e->p[e->n] = 0;
		*len = e->n + 1;
	} else {
		*len = e->n;
	}
	return e->p;
}

/* ---- decoder ---- */

int xor_dec_init(xor_dec_t *d, const uint8_t *p, size_t len, err_t *err)
{
	memset(d, 0, sizeof *d);
	if (len < 2)
		return err_set(err, ERR_CORRUPT, "xor chunk: %zu bytes, shorter than its 2-byte header", len);
	d->p = p;
	d->len = len;
	d->total = be16_get(p);
	d->pos = 16;
	d->leading = 0;
	d->trailing = 0;
	return 0;
}

/* The 64 bits starting at bit pos, zero-filled past the end. */
static inline uint64_t peek64(const xor_dec_t *d)
{
	size_t byte = (size_t)(d->pos >> 3);
	unsigned sh = (unsigned)(d->pos & 7);
	uint64_t w;
	if (byte + 9 <= d->len) {
		w = be64_get(d->p + byte);
		if (sh)
			w = (w << sh) | (d->p[byte + 8] >> (8 - sh));
		return w;
	}
	w = 0;
	for (size_t k = 0; k < 9; k++) {
		uint64_t b = byte + k < d->len ? d->p[byte + k] : 0;
		if (k < 8)
			w = (w << 8) | b;
		else if (sh)
			w = (w << sh) | (b >> (8 - sh));
		if (k == 7 && sh == 0)
			break;
	}
	return w;
}

static inline uint64_t read_bits(xor_dec_t *d, int n)
{
	if (n == 0)
		return 0;
	uint64_t w = peek64(d) >> (64 - n);
	d->pos += (uint64_t)n;
	return w;
}

static int dec_corrupt(const xor_dec_t *d, err_t *err)
{
	return err_set(err, ERR_CORRUPT, "xor chunk: sample %u of %u: data ends at bit %llu of %zu", d->read + 1,
		       d->total, (unsigned long long)d->pos, d->len * 8);
}

static inline int read_value(xor_dec_t *d, err_t *err)
{
	uint64_t w = peek64(d);
	if (!(w >> 63)) {
		d->pos += 1;
	} else if (!((w >> 62) & 1)) {
		d->pos += 2;
		int sig = 64 - d->leading - d->trailing;
		if (sig <= 0)
			return err_set(err, ERR_CORRUPT, "xor chunk: bit %llu: value window reused before it was set",
				       (unsigned long long)d->pos);
		uint64_t x = read_bits(d, sig);
		d->v ^= x << d->trailing;
	} else {
		uint32_t hdr = (uint32_t)(w >> (64 - 13)); /* 11 lllll ssssss */
		d->pos += 13;
		unsigned lead = (hdr >> 6) & 31;
		unsigned sig = hdr & 63;
		if (sig == 0)
			sig = 64;
		if (lead + sig > 64)
			return err_set(err, ERR_CORRUPT, "xor chunk: bit %llu: leading %u + significant %u bits > 64",
				       (unsigned long long)d->pos, lead, sig);
		d->leading = (uint8_t)lead;
		d->trailing = (uint8_t)(64 - lead - sig);
		uint64_t x = read_bits(d, (int)sig);
		d->v ^= x << d->trailing;
	}
	return 0;
}

int xor_dec_next(xor_dec_t *d, int64_t *t, double *v, err_t *err)
{
	if (d->read >= d->total)
		return 0;
	uint64_t bits = (uint64_t)d->len * 8;
	if (d->read == 0) {
		int64_t t0;
		size_t off = (size_t)(d->pos >> 3);
		int k = varint_get(d->p + off, d->p + d->len, &t0);
		if (k <= 0)
			return err_set(err, ERR_CORRUPT, "xor chunk: byte %zu: bad first timestamp varint", off);
		d->pos += (uint64_t)k * 8;
		d->t = t0;
		d->v = read_bits(d, 64);
	} else if (d->read == 1) {
		uint64_t td;
		size_t off = (size_t)(d->pos >> 3);
		if (d->pos & 7)
			return err_set(err, ERR_CORRUPT, "xor chunk: misaligned second timestamp");
		int k = uvarint_get(d->p + off, d->p + d->len, &td);
		if (k <= 0)
			return err_set(err, ERR_CORRUPT, "xor chunk: byte %zu: bad timestamp delta uvarint", off);
		d->pos += (uint64_t)k * 8;
		d->tdelta = (int64_t)td;
		d->t += d->tdelta;
		int rc = read_value(d, err);
		if (rc)
			return rc;
	} else {
		uint64_t w = peek64(d);
		int64_t dod;
		if (!(w >> 63)) {
			d->pos += 1;
			dod = 0;
		} else if (!((w >> 62) & 1)) {
			uint64_t u = (w >> 48) & 0x3fff;
			d->pos += 16;
			dod = u > 8192 ? (int64_t)u - 16384 : (int64_t)u;
		} else if (!((w >> 61) & 1)) {
			uint64_t u = (w >> 44) & 0x1ffff;
			d->pos += 20;
			dod = u > 65536 ? (int64_t)u - 131072 : (int64_t)u;
		} else if (!((w >> 60) & 1)) {
			uint64_t u = (w >> 40) & 0xfffff;
			d->pos += 24;
			dod = u > 524288 ? (int64_t)u - 1048576 : (int64_t)u;
		} else {
			d->pos += 4;
			dod = (int64_t)read_bits(d, 64);
		}
		d->tdelta = (int64_t)((uint64_t)d->tdelta + (uint64_t)dod);
		d->t = (int64_t)((uint64_t)d->t + (uint64_t)d->tdelta);
		int rc = read_value(d, err);
		if (rc)
			return rc;
	}
	if (d->pos > bits)
		return dec_corrupt(d, err);
	d->read++;
	*t = d->t;
	*v = u2f(d->v);
	return 1;
}

/* ---- chunk list iterator ---- */

static int iter_open_next_chunk(xor_iter_t *it, err_t *err)
{
	while (it->ci < it->nchunks) {
		const chunk_t *c = &it->chunks[it->ci];
		if (c->maxt < it->mint) {
			it->ci++;
			continue;
		}
		if (c->mint > it->maxt) {
			it->ci = it->nchunks;
			break;
		}
		if (c->enc != CHUNK_ENC_XOR)
			return err_set(err, ERR_INVALID, "chunk %zu: unsupported chunk encoding %u (only XOR)", it->ci,
				       c->enc);
		int rc = xor_dec_init(&it->dec, c->data, c->len, err);
		if (rc)
			return rc;
		it->active = true;
		return 0;
	}
	it->done = true;
	return 0;
}

static int xor_iter_next_batch(sample_iter_t *base, int64_t *t, double *v, int cap, err_t *err)
{
	xor_iter_t *it = (xor_iter_t *)base;
	int n = 0;
	if (it->have_pending && cap > 0) {
		it->have_pending = false;
		if (it->pt > it->maxt) {
			it->done = true;
			return 0;
		}
		t[n] = it->pt, v[n] = it->pv, n++;
	}
	while (n < cap && !it->done) {
		if (!it->active) {
			int rc = iter_open_next_chunk(it, err);
			if (rc)
				return rc;
			continue;
		}
		xor_dec_t *d = &it->dec;
		while (n < cap) {
			int rc = xor_dec_next(d, &t[n], &v[n], err);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				it->active = false;
				it->ci++;
				break;
			}
			if (t[n] < it->mint)
				continue;
			if (t[n] > it->maxt) {
				it->done = true;
				break;
			}
			n++;
		}
	}
	return n;
}

static int xor_iter_seek(sample_iter_t *base, int64_t t, err_t *err)
{
	xor_iter_t *it = (xor_iter_t *)base;
	if (it->have_pending) {
		if (it->pt >= t)
			return 0;
		it->have_pending = false;
	}
	if (t > it->mint)
		it->mint = t;
	/* Skip whole chunks that end before t without decoding them. */
	if (it->active && it->chunks[it->ci].maxt < t) {
		it->active = false;
		it->ci++;
	}
	while (!it->done) {
		if (!it->active) {
			int rc = iter_open_next_chunk(it, err);
			if (rc)
				return rc;
			continue;
		}
		int64_t st;
		double sv;
		int rc = xor_dec_next(&it->dec, &st, &sv, err);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			it->active = false;
			it->ci++;
			continue;
		}
		if (st >= t) {
			it->have_pending = true;
			it->pt = st, it->pv = sv;
			return 0;
		}
	}
	return 0;
}

static const struct sample_iter_ops xor_iter_ops = {xor_iter_next_batch, xor_iter_seek};

void xor_iter_init(xor_iter_t *it, const chunk_t *chunks, size_t n, int64_t mint, int64_t maxt)
{
	memset(it, 0, sizeof *it);
	it->base.ops = &xor_iter_ops;
	it->chunks = chunks;
	it->nchunks = n;
	it->mint = mint;
	it->maxt = maxt;
}
