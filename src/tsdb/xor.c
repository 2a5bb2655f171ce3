/*
 * xor.c — XOR chunk encoder, decoder and chunk-list sample iterator.
 */
#include "tsdb/xor.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/varint.h"
#include "tsdb/hslab.h"

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

/*
 * The hot path (xor_dec_batch → dec_run) keeps the decoder state in locals and reads the bit stream
 * with unaligned big-endian 8-byte loads at any bit position: one for a sample's control bits and
 * timestamp, one for its value bits. A sample reads at most XOR_SAMPLE_MAX_READ bytes from the byte
 * it starts in (see dec_run). While a sample starts at least that far from the end of the chunk no
 * bounds are checked at all; the last samples are decoded from a zero-padded copy of the chunk's
 * tail (XOR_TAIL_BUF bytes: at most XOR_SAMPLE_MAX_READ of data plus one sample's reads), checking
 * after them that the data did not end early.
 */
#define XOR_SAMPLE_MAX_READ 32
#define XOR_TAIL_BUF        64
/* the tail copy holds at most XOR_SAMPLE_MAX_READ bytes, and a sample starting at its end reads 20 */
_Static_assert(XOR_TAIL_BUF >= XOR_SAMPLE_MAX_READ + 20, "xor tail buffer too small");

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

static inline uint64_t be64_load(const uint8_t *q)
{
	uint64_t w;
	memcpy(&w, q, 8);
	return __builtin_bswap64(w);
}

/* The 64 bits starting at bit pos of b; b must hold 9 bytes from pos/8 on. */
static inline uint64_t ld(const uint8_t *b, uint64_t pos)
{
	const uint8_t *q = b + (pos >> 3);
	unsigned sh = (unsigned)(pos & 7);
	/* sh == 0: q[8] >> 8 == 0, so no branch */
	return (be64_load(q) << sh) | (uint64_t)(q[8] >> (8 - sh));
}

/* The bits starting at bit pos of b, of which the first 57 are valid (the rest are zero); one
 * 8-byte load from pos/8. */
static inline uint64_t ld57(const uint8_t *b, uint64_t pos)
{
	return be64_load(b + (pos >> 3)) << (pos & 7);
}

/* The 64 bits starting at bit pos, zero-filled past the end (slow path for the first samples). */
static inline uint64_t peek64(const xor_dec_t *d)
{
	size_t byte = (size_t)(d->pos >> 3);
	if (byte + 9 <= d->len)
		return ld(d->p, d->pos);
	uint8_t tmp[9] = {0};
	for (size_t k = 0; k < 9 && byte + k < d->len; k++)
		tmp[k] = d->p[byte + k];
	return ld(tmp, d->pos & 7);
}

static inline uint64_t read_bits(xor_dec_t *d, int n)
{
	uint64_t w = peek64(d) >> (64 - n); /* 1 <= n <= 64 */
	d->pos += (uint64_t)n;
	return w;
}

static int dec_corrupt(const xor_dec_t *d, unsigned sample, uint64_t pos, err_t *err)
{
	return err_set(err, ERR_CORRUPT, "xor chunk: sample %u of %u: data ends at bit %llu of %zu", sample,
	               d->total, (unsigned long long)pos, d->len * 8);
}

static int bad_window(uint64_t pos, unsigned lead, unsigned sig, err_t *err)
{
	return err_set(err, ERR_CORRUPT, "xor chunk: bit %llu: leading %u + significant %u bits > 64",
	               (unsigned long long)pos, lead, sig);
}

/* Decoder state in registers while a batch runs. */
typedef struct dstate {
	uint64_t pos;
	int64_t t, td;
	uint64_t v;
	unsigned trail, sig; /* the value window: sig (1..64) significant bits above trail zero bits */
} dstate_t;

/*
 * Decode samples (not the first two) from b into ot[]/ov[] while fewer than cap are decoded and the
 * next one starts at or before bit stop. Returns the number decoded, or ERR_CORRUPT for a value
 * window wider than 64 bits (pos_base + its position names the bit in the message).
 *
 * Bits read: the 8-byte load at the sample's start covers the timestamp (at most 24 bits) and the
 * value's control bits (at most 13) except in the rare 64-bit dod form, which reloads at +4 and +68;
 * the value bits (at most 64) are one more load at most 81 bits on. So a sample reads at most 20
 * bytes from the byte it starts in (< XOR_SAMPLE_MAX_READ).
 *
 * Speed comes from the next sample's bit position, the loop's only long dependency chain. Each common
 * form has its own branch with a width known in advance: dod 0 (1 bit), dod in '10'+14 bits (16 bits,
 * jittered scrapes), value unchanged (1 bit), value in the previous window (2 + sig bits). When these
 * branches are predicted, the next position is known before this sample's bits have been loaded, and
 * samples decode in parallel. Computing widths arithmetically from the loaded bits instead (branch
 * free) makes every sample wait for its load: measured 1.5-2x slower with bench/tsdb_bench.
 */
static inline __attribute__((always_inline)) int dec_run(const uint8_t *b, uint64_t stop, dstate_t *st,
                                                         int64_t *ot, double *ov, int cap, uint64_t pos_base,
                                                         err_t *err)
{
	uint64_t pos = st->pos, v = st->v;
	int64_t t = st->t, td = st->td;
	unsigned trail = st->trail, sig = st->sig;
	int n = 0;
	while (n < cap && pos <= stop) {
		uint64_t w = ld57(b, pos);
		unsigned c; /* bits of w consumed */
		if (!(w >> 62)) {
			/* '0' '0' pairs: dod 0 and value unchanged (constant series). Up to 28 pairs come
			 * from the 57 valid bits; the run is cut where a sample would start after stop. */
			unsigned run = (unsigned)__builtin_clzll(w | 0x80) / 2;
			uint64_t room = (stop - pos) / 2 + 1;
			if (run > room)
				run = (unsigned)room;
			if (run > (unsigned)(cap - n))
				run = (unsigned)(cap - n);
			double vf = u2f(v);
			for (unsigned i = 0; i < run; i++) {
				t = (int64_t)((uint64_t)t + (uint64_t)td);
				ot[n] = t;
				ov[n] = vf;
				n++;
			}
			pos += 2 * (uint64_t)run;
			continue;
		}
		if (!(w >> 63)) {
			c = 1; /* dod 0, the common case for regular scrapes */
		} else if ((w >> 62) == 2) {
			/* '10' + 14 bits, the common case for jittered scrapes. Prometheus reads an n-bit dod
			 * above 2^(n-1) as negative. */
			uint64_t u = (w << 2) >> 50;
			td = (int64_t)((uint64_t)td + u - (u > 8192 ? 16384 : 0));
			c = 16;
		} else {
			/* '110' + 17 bits, '1110' + 20, '1111' + 64 */
			unsigned k = (unsigned)__builtin_clzll(~w | (1ull << 59)); /* leading ones: 2..4 */
			uint64_t dod;
			if (k < 4) {
				unsigned nb = 11 + 3 * k; /* 17, 20 */
				uint64_t u = (w << (k + 1)) >> (64 - nb), half = 1ull << (nb - 1);
				dod = u - (u > half ? half << 1 : 0);
				c = k + 1 + nb;
			} else {
				dod = ld(b, pos + 4);
				pos += 68;
				w = ld57(b, pos);
				c = 0;
			}
			td = (int64_t)((uint64_t)td + dod);
		}
		t = (int64_t)((uint64_t)t + (uint64_t)td);
		uint64_t ctl = w << c; /* at least 33 valid bits */
		if (!(ctl >> 63)) {
			c += 1; /* value unchanged */
		} else {
			if (ctl & (1ull << 62)) {
				/* '11' lllll ssssss: a new window; sig 0 means 64 */
				unsigned lead = (unsigned)(ctl >> 57) & 31;
				sig = (((unsigned)(ctl >> 51) - 1) & 63) + 1;
				if (__builtin_expect(lead + sig > 64, 0)) {
					return bad_window(pos_base + pos + c, lead, sig, err);
				}
				trail = 64 - lead - sig;
				c += 13;
			} else {
				c += 2; /* '10': the previous window, width known before the bits arrive */
			}
			/* one 8-byte load holds 57 bits; wider windows (rare) need a ninth byte */
			uint64_t x = sig <= 57 ? ld57(b, pos + c) : ld(b, pos + c);
			v ^= (x >> (64 - sig)) << trail;
			c += sig;
		}
		pos += c;
		ot[n] = t;
		ov[n] = u2f(v);
		n++;
	}
	*st = (dstate_t){pos, t, td, v, trail, sig};
	return n;
}

static int dec_value_slow(xor_dec_t *d, err_t *err)
{
	uint64_t w = peek64(d);
	if (!(w >> 63)) {
		d->pos += 1;
		return 0;
	}
	if ((w >> 62) & 1) {
		unsigned lead = (unsigned)(w >> 57) & 31;
		unsigned sig = (unsigned)(w >> 51) & 63;
		if (sig == 0)
			sig = 64;
		if (lead + sig > 64)
			return bad_window(d->pos, lead, sig, err);
		d->leading = (uint8_t)lead;
		d->trailing = (uint8_t)(64 - lead - sig);
		d->pos += 13;
	} else {
		d->pos += 2;
	}
	int sig = 64 - d->leading - d->trailing;
	d->v ^= read_bits(d, sig) << d->trailing;
	return 0;
}

/* The first two samples: varint timestamp + raw value, uvarint delta + XOR value. */
static int dec_head(xor_dec_t *d, int64_t *t, double *v, err_t *err)
{
	size_t off = (size_t)(d->pos >> 3);
	if (d->read == 0) {
		int64_t t0;
		int k = varint_get(d->p + off, d->p + d->len, &t0);
		if (k <= 0)
			return err_set(err, ERR_CORRUPT, "xor chunk: byte %zu: bad first timestamp varint",
			               off);
		d->pos += (uint64_t)k * 8;
		d->t = t0;
		d->v = read_bits(d, 64);
	} else {
		uint64_t td;
		if (d->pos & 7)
			return err_set(err, ERR_CORRUPT, "xor chunk: misaligned second timestamp");
		int k = uvarint_get(d->p + off, d->p + d->len, &td);
		if (k <= 0)
			return err_set(err, ERR_CORRUPT, "xor chunk: byte %zu: bad timestamp delta uvarint",
			               off);
		d->pos += (uint64_t)k * 8;
		d->tdelta = (int64_t)td;
		d->t = (int64_t)((uint64_t)d->t + td);
		int rc = dec_value_slow(d, err);
		if (rc)
			return rc;
	}
	if (d->pos > (uint64_t)d->len * 8)
		return dec_corrupt(d, d->read + 1u, d->pos, err);
	d->read++;
	*t = d->t;
	*v = u2f(d->v);
	return 0;
}

int xor_dec_batch(xor_dec_t *d, int64_t *ts, double *vs, int cap, err_t *err)
{
	int n = 0;
	while (n < cap && d->read < 2 && d->read < d->total) {
		int rc = dec_head(d, &ts[n], &vs[n], err);
		if (rc)
			return rc;
		n++;
	}
	int left = d->total - d->read;
	if (left > cap - n)
		left = cap - n;
	if (left <= 0)
		return n;
	dstate_t s = {d->pos, d->t, d->tdelta, d->v, d->trailing, 64u - d->leading - d->trailing};
	const uint64_t limit = (uint64_t)d->len * 8;
	int k = 0;
	/* fast region: samples that start XOR_SAMPLE_MAX_READ bytes or more before the end */
	if (d->len >= XOR_SAMPLE_MAX_READ) {
		k = dec_run(d->p, (uint64_t)(d->len - XOR_SAMPLE_MAX_READ) * 8, &s, ts + n, vs + n, left, 0,
		            err);
		if (k < 0)
			return k;
	}
	if (k < left) {
		/* tail: a zero-padded copy. Samples start at most at the end of the data, so their reads
		 * stay inside the copy; the first one that runs past the data is the last decoded. */
		uint8_t tail[XOR_TAIL_BUF] = {0};
		size_t start = (size_t)(s.pos >> 3);
		memcpy(tail, d->p + start, d->len - start);
		uint64_t base = (uint64_t)start * 8;
		s.pos -= base;
		int kt = dec_run(tail, limit - base, &s, ts + n + k, vs + n + k, left - k, base, err);
		if (kt < 0)
			return kt;
		s.pos += base;
		k += kt;
		if (s.pos > limit)
			return dec_corrupt(d, d->read + (unsigned)k, s.pos, err);
		/* otherwise dec_run stopped at left samples: it only stops early after passing the end */
	}
	d->read = (uint16_t)(d->read + k);
	d->pos = s.pos;
	d->t = s.t;
	d->tdelta = s.td;
	d->v = s.v;
	d->leading = (uint8_t)(64 - s.sig - s.trail);
	d->trailing = (uint8_t)s.trail;
	return n + k;
}

int xor_dec_next(xor_dec_t *d, int64_t *t, double *v, err_t *err)
{
	if (d->read >= d->total)
		return 0;
	return xor_dec_batch(d, t, v, 1, err); /* 1 sample, or an error */
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
			return err_set(err, ERR_INVALID,
			               "chunk %zu: unsupported chunk encoding %u (only XOR)", it->ci, c->enc);
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
		int k = xor_dec_batch(&it->dec, t + n, v + n, cap - n, err);
		if (k < 0)
			return k;
		if (k == 0) {
			it->active = false;
			it->ci++;
			/* Chunks of a series may overlap (blocks overlapping in time, e.g. a compacted block
			 * and its sources until they are deleted): the next chunk starts after the last
			 * sample given, as Thanos's chunk series iterator does, so nothing is given twice. */
			if (n > 0 && t[n - 1] >= it->mint)
				it->mint = t[n - 1] + 1;
			else if (it->have_last && it->last >= it->mint)
				it->mint = it->last + 1;
			continue;
		}
		if (t[n] < it->mint) {
			/* only in the chunk the range (or a seek) starts in */
			int skip = (int)samples_upper_bound(t + n, (size_t)k, it->mint - 1);
			memmove(t + n, t + n + skip, (size_t)(k - skip) * sizeof *t);
			memmove(v + n, v + n + skip, (size_t)(k - skip) * sizeof *v);
			k -= skip;
			if (k == 0)
				continue;
		}
		if (t[n + k - 1] > it->maxt) {
			k = (int)samples_upper_bound(t + n, (size_t)k, it->maxt);
			it->done = true;
		}
		n += k;
	}
	if (n > 0) {
		it->have_last = true;
		it->last = t[n - 1];
	}
	return n;
}

#define XOR_SEEK_BATCH 16

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
	t = it->mint; /* never land before the range: a seek below mint goes to mint */
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
		/* Decode in batches; the batch that reaches t is decoded again from a copy of the decoder
		 * state up to its first sample >= t (in decode order), which becomes the pending one. Twice
		 * a batch is cheaper than sample by sample. */
		int64_t bt[XOR_SEEK_BATCH];
		double bv[XOR_SEEK_BATCH];
		xor_dec_t saved = it->dec;
		int k = xor_dec_batch(&it->dec, bt, bv, XOR_SEEK_BATCH, err);
		if (k < 0)
			return k;
		if (k == 0) {
			it->active = false;
			it->ci++;
			continue;
		}
		int i = 0;
		while (i < k && bt[i] < t)
			i++;
		if (i == k)
			continue;
		it->dec = saved;
		k = xor_dec_batch(&it->dec, bt, bv, i + 1, err);
		BUG_ON(k != i + 1); /* the same bytes decode the same way */
		it->have_pending = true;
		it->pt = bt[i], it->pv = bv[i];
		return 0;
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

int64_t xor_decode_chunks(const chunk_t *chunks, size_t n, int64_t mint, int64_t maxt, int64_t **t,
                          double **v, size_t *cap, err_t *err)
{
	xor_iter_t it;
	xor_iter_init(&it, chunks, n, mint, maxt);
	return sample_iter_drain(&it.base, t, v, cap, err);
}

/* ---- compact appender ---- */

void xor_app_init(xor_app_t *a)
{
	memset(a, 0, sizeof *a);
	a->leading = 0xff;
}

void xor_app_release(xor_app_t *a, hslab_t *slab)
{
	if (slab)
		hslab_free(slab, a->p, a->cap);
	else
		free(a->p);
	xor_app_init(a);
}

void xor_app_reset(xor_app_t *a)
{
	if (a->p)
		memset(a->p, 0,
		       (size_t)(a->nbits + 7) / 8 + 1 < a->cap ? (size_t)(a->nbits + 7) / 8 + 1 : a->cap);
	uint8_t *p = a->p;
	uint16_t cap = a->cap;
	xor_app_init(a);
	a->p = p;
	a->cap = cap;
}

/* Room for nb more bits plus 9 bytes of slack (app_put writes whole 64-bit words). From a slab: the
 * next 16-byte size (a million series pay for every byte of slack, and a cut chunk's buffer goes back);
 * from the heap: grown by about an eighth to sizes of 16k + 8 bytes (what a malloc chunk of 16(k + 1)
 * bytes holds). */
static void app_reserve(xor_app_t *a, hslab_t *slab, unsigned nb)
{
	size_t need = (size_t)(a->nbits + nb + 7) / 8 + 9;
	if (need <= a->cap)
		return;
	size_t cap;
	if (slab) {
		cap = hslab_round(need);
		BUG_ON(cap > UINT16_MAX);
		a->p = hslab_resize(slab, a->p, a->cap, cap);
	} else {
		cap = a->cap ? a->cap + a->cap / 8 : 40;
		if (cap < need)
			cap = need;
		cap = ((cap + 8 + 15) & ~(size_t)15) - 8;
		BUG_ON(cap > UINT16_MAX);
		a->p = xrealloc(a->p, cap);
		memset(a->p + a->cap, 0, cap - a->cap);
	}
	a->cap = (uint16_t)cap;
}

static inline void be64_store(uint8_t *q, uint64_t w)
{
	w = __builtin_bswap64(w);
	memcpy(q, &w, 8);
}

/* Append the low nb (1..64) bits of v, MSB first: one or two word-sized read-modify-writes (the bits
 * past the written ones are zero, so OR-ing is enough). */
static void app_put(xor_app_t *a, hslab_t *slab, uint64_t v, unsigned nb)
{
	app_reserve(a, slab, nb);
	a->bytewise = nb % 8 == 0;
	if (nb < 64)
		v &= (1ull << nb) - 1;
	uint8_t *q = a->p + (a->nbits >> 3);
	unsigned used = a->nbits & 7;
	if (used + nb <= 64) {
		be64_store(q, be64_load(q) | (v << (64 - used - nb)));
	} else {
		unsigned hi = 64 - used; /* bits that fit in this word; the other 1..7 go to the next byte */
		be64_store(q, be64_load(q) | (v >> (nb - hi)));
		q[8] |= (uint8_t)(v << (8 - (nb - hi)));
	}
	a->nbits = (uint16_t)(a->nbits + nb);
}

static void app_value(xor_app_t *a, hslab_t *slab, uint64_t vb)
{
	uint64_t delta = vb ^ a->v;
	if (delta == 0) {
		app_put(a, slab, 0, 1);
		return;
	}
	uint8_t lead = (uint8_t)__builtin_clzll(delta), trail = (uint8_t)__builtin_ctzll(delta);
	if (lead >= 32)
		lead = 31;
	if (a->leading != 0xff && lead >= a->leading && trail >= a->trailing) {
		app_put(a, slab, 2, 2);
		app_put(a, slab, delta >> a->trailing, 64u - a->leading - a->trailing);
		return;
	}
	a->leading = lead;
	a->trailing = trail;
	unsigned sig = 64u - lead - trail;
	app_put(a, slab, (3u << 11) | ((uint64_t)lead << 6) | (sig & 63), 13);
	app_put(a, slab, delta >> trail, sig);
}

void xor_app_append(xor_app_t *a, hslab_t *slab, int64_t t, double v)
{
	uint64_t vb = f2u(v);
	uint8_t tmp[VARINT_MAX_LEN];
	BUG_ON(a->num >= XOR_APP_MAX_SAMPLES);
	BUG_ON(a->num && t - a->t > XOR_APP_MAX_DELTA);
	if (a->num == 0) {
		app_reserve(a, slab, 16);
		a->nbits = 16;
		size_t k = varint_put(tmp, t);
		for (size_t i = 0; i < k; i++)
			app_put(a, slab, tmp[i], 8);
		app_put(a, slab, vb, 64);
	} else if (a->num == 1) {
		int64_t td = t - a->t;
		size_t k = uvarint_put(tmp, (uint64_t)td);
		for (size_t i = 0; i < k; i++)
			app_put(a, slab, tmp[i], 8);
		app_value(a, slab, vb);
		a->tdelta = (int32_t)td;
	} else {
		int64_t td = t - a->t, dod = td - a->tdelta;
		if (dod == 0)
			app_put(a, slab, 0, 1);
		else if (dod >= -8191 && dod <= 8192)
			app_put(a, slab, (2u << 14) | ((uint64_t)dod & 0x3fff), 16);
		else if (dod >= -65535 && dod <= 65536)
			app_put(a, slab, (6u << 17) | ((uint64_t)dod & 0x1ffff), 20);
		else if (dod >= -524287 && dod <= 524288)
			app_put(a, slab, (14u << 20) | ((uint64_t)dod & 0xfffff), 24);
		else {
			app_put(a, slab, 15, 4);
			app_put(a, slab, (uint64_t)dod, 64);
		}
		app_value(a, slab, vb);
		a->tdelta = (int32_t)td;
	}
	a->t = t;
	a->v = vb;
	a->num++;
	be16_put(a->p, a->num);
}

const uint8_t *xor_app_bytes(const xor_app_t *a, size_t *len)
{
	if (!a->num) {
		*len = 0;
		return NULL;
	}
	size_t n = (size_t)(a->nbits + 7) / 8;
	if (a->nbits % 8 == 0 && a->bytewise)
		n++; /* Prometheus's bstream leaves an empty byte after a whole-byte write */
	*len = n;
	return a->p;
}
