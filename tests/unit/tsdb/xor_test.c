#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "test.h"
#include "tsdb/hslab.h"
#include "tsdb/xor.h"

static uint64_t bits_of(double v)
{
	uint64_t b;
	memcpy(&b, &v, 8);
	return b;
}

TEST(xor_hand_vector)
{
	/* (1000,1.0) (2000,1.0) (3000,2.0): worked out bit by bit from the reference §1.5. */
	static const uint8_t want[] = {0x00, 0x03, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xe8, 0x07, 0x30, 0x97, 0xff, 0xc0};
	xor_enc_t e;
	xor_enc_init(&e);
	xor_enc_append(&e, 1000, 1.0);
	xor_enc_append(&e, 2000, 1.0);
	xor_enc_append(&e, 3000, 2.0);
	size_t len;
	const uint8_t *p = xor_enc_bytes(&e, &len);
	CHECK_EQ_INT(len, sizeof want);
	CHECK(memcmp(p, want, len) == 0);
	xor_dec_t d;
	CHECK_EQ_INT(xor_dec_init(&d, want, sizeof want, NULL), 0);
	int64_t t;
	double v;
	CHECK_EQ_INT(xor_dec_next(&d, &t, &v, NULL), 1);
	CHECK_EQ_INT(t, 1000);
	CHECK(v == 1.0);
	CHECK_EQ_INT(xor_dec_next(&d, &t, &v, NULL), 1);
	CHECK_EQ_INT(xor_dec_next(&d, &t, &v, NULL), 1);
	CHECK_EQ_INT(t, 3000);
	CHECK(v == 2.0);
	CHECK_EQ_INT(xor_dec_next(&d, &t, &v, NULL), 0);
	xor_enc_release(&e);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xr(void)
{
	return test_xorshift(&rng);
}

static void roundtrip(const int64_t *ts, const double *vs, int n)
{
	xor_enc_t e;
	xor_enc_init(&e);
	for (int i = 0; i < n; i++)
		xor_enc_append(&e, ts[i], vs[i]);
	size_t len;
	const uint8_t *p = xor_enc_bytes(&e, &len);
	xor_dec_t d;
	err_t err = {0};
	CHECK_EQ_INT(xor_dec_init(&d, p, len, &err), 0);
	CHECK_EQ_INT(xor_dec_count(&d), n);
	for (int i = 0; i < n; i++) {
		int64_t t;
		double v;
		int rc = xor_dec_next(&d, &t, &v, &err);
		if (rc != 1)
			TEST_FAILF("sample %d: rc %d %s", i, rc, err.msg);
		CHECK_EQ_INT(t, ts[i]);
		CHECK_EQ_U64(bits_of(v), bits_of(vs[i]));
	}
	CHECK_EQ_INT(xor_dec_next(&d, NULL, NULL, &err), 0);
	/* Every truncation is an error, never a crash or a read past the end. */
	for (size_t cut = 0; cut + 1 < len; cut++) {
		uint8_t *c = malloc(cut ? cut : 1);
		memcpy(c, p, cut);
		int rc = xor_dec_init(&d, c, cut, &err);
		int got = 0;
		while (rc == 0) {
			int64_t t;
			double v;
			rc = xor_dec_next(&d, &t, &v, &err);
			if (rc == 1) {
				got++;
				rc = 0;
			} else if (rc == 0) {
				break;
			}
		}
		free(c);
		CHECK(rc < 0 || got < n || cut >= len - 1);
	}
	xor_enc_release(&e);
}

TEST(xor_dod_bucket_boundaries)
{
	static const int64_t dods[] = {0, 1, -1, 8192, -8191, 8193, -8192, 65536, -65535, 65537, -65536, 524288,
				       -524287, 524289, -524288, 1ll << 40, -(1ll << 40)};
	int64_t ts[64];
	double vs[64];
	int n = 0;
	int64_t t = 1600000000000, delta = 15000;
	ts[n] = t, vs[n++] = 1;
	t += delta;
	ts[n] = t, vs[n++] = 2;
	for (size_t i = 0; i < ARRAY_LEN(dods); i++) {
		delta += dods[i];
		t += delta;
		ts[n] = t, vs[n++] = (double)i;
	}
	roundtrip(ts, vs, n);
}

TEST(xor_special_values)
{
	double inf = 1.0 / 0.0;
	int64_t ts[] = {-5, 0, 7, 100, 200, 300, 301, 302, 303, 304};
	double vs[] = {stale_nan(), -0.0, inf, -inf, stale_nan(), 1e-300, 0x1p-1074, 1.0, stale_nan(), 12345.678};
	roundtrip(ts, vs, 10);
	CHECK(value_is_stale_nan(stale_nan()));
	CHECK(!value_is_stale_nan(0.0 / 0.0));
	/* A 64-significant-bit XOR (sig written as 0). */
	int64_t t2[] = {1, 2, 3};
	uint64_t a = 0x8000000000000001ull, b = 0;
	double va, vb;
	memcpy(&va, &a, 8);
	memcpy(&vb, &b, 8);
	double v2[] = {vb, va, vb};
	roundtrip(t2, v2, 3);
}

TEST(xor_random_roundtrip)
{
	for (int round = 0; round < 50; round++) {
		int n = 1 + (int)(xr() % 240);
		int64_t ts[240];
		double vs[240];
		int64_t t = (int64_t)(xr() % 2000000000000ull) - 1000000000000ll;
		double v = (double)(xr() % 1000);
		for (int i = 0; i < n; i++) {
			t += (int64_t)(xr() % (round % 3 == 0 ? 100000 : 30000)) + 1;
			switch (xr() % 4) {
			case 0: break;
			case 1: v += (double)(xr() % 100); break;
			case 2: v = (double)(int64_t)xr() / 7.0; break;
			default: v *= 1.0001; break;
			}
			ts[i] = t, vs[i] = v;
		}
		roundtrip(ts, vs, n);
	}
}

/* The head's compact appender writes exactly xor_enc_t's bytes after every append. */
TEST(xor_app_matches_encoder)
{
	hslab_t slab;
	hslab_init(&slab);
	for (int round = 0; round < 200; round++) {
		hslab_t *sl = round % 3 ? NULL : &slab; /* heap or slab buffers: the same bytes */
		xor_enc_t e;
		xor_app_t a;
		xor_enc_init(&e);
		xor_app_init(&a);
		int n = 1 + (int)(xr() % XOR_APP_MAX_SAMPLES);
		int64_t t = (int64_t)(xr() % 2000000000000ull) - 1000000000000ll;
		double v = (double)(xr() % 1000);
		for (int i = 0; i < n; i++) {
			switch (round % 5) {
			case 0:
				t += 15000;
				break;
			case 1:
				t += 15000 + (int64_t)(xr() % 50) - 25;
				break;
			case 2:
				t += (int64_t)(xr() % 1000000000ull) + 1;
				break;
			case 3:
				t += (int64_t)(xr() % 70000) + 1;
				break;
			default:
				t += 1 + (int64_t)(xr() % 3);
				break;
			}
			switch (xr() % 5) {
			case 0:
				break;
			case 1:
				v += (double)(xr() % 100);
				break;
			case 2:
				v = (double)(int64_t)xr() / 7.0;
				break;
			case 3:
				v = stale_nan();
				break;
			default:
				v *= 1.0001;
				break;
			}
			xor_enc_append(&e, t, v);
			xor_app_append(&a, sl, t, v);
			size_t el, al;
			const uint8_t *ep = xor_enc_bytes(&e, &el), *ap = xor_app_bytes(&a, &al);
			if (el != al || memcmp(ep, ap, el) != 0)
				TEST_FAILF("round %d sample %d: %zu vs %zu bytes", round, i, el, al);
		}
		if (round % 2) { /* reset reuses the buffer and starts clean */
			xor_app_reset(&a);
			xor_enc_reset(&e);
			xor_enc_append(&e, 5, 1.0);
			xor_app_append(&a, sl, 5, 1.0);
			size_t el, al;
			const uint8_t *ep = xor_enc_bytes(&e, &el), *ap = xor_app_bytes(&a, &al);
			CHECK(el == al && memcmp(ep, ap, el) == 0);
		}
		xor_enc_release(&e);
		xor_app_release(&a, sl);
	}
	CHECK_EQ_INT(hslab_bytes(&slab), 0);
	hslab_release(&slab);
}

TEST(xor_corrupt_header_and_window)
{
	xor_dec_t d;
	err_t err = {0};
	uint8_t one[1] = {0};
	CHECK_EQ_INT(xor_dec_init(&d, one, 1, &err), ERR_CORRUPT);
	/* Claims 5 samples but holds one. */
	uint8_t b[] = {0x00, 0x05, 0x02, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
	CHECK_EQ_INT(xor_dec_init(&d, b, sizeof b, &err), 0);
	int64_t t;
	double v;
	CHECK_EQ_INT(xor_dec_next(&d, &t, &v, &err), 1);
	CHECK(xor_dec_next(&d, &t, &v, &err) < 0);
	CHECK(strstr(err.msg, "xor chunk") != NULL);
	/* Second sample's '10' value block (64-bit window, as Prometheus' initial state) cut short. */
	uint8_t c[] = {0x00, 0x02, 0x02, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x01, 0x80, 0, 0, 0, 0, 0, 0};
	CHECK_EQ_INT(xor_dec_init(&d, c, sizeof c, &err), 0);
	CHECK_EQ_INT(xor_dec_next(&d, &t, &v, &err), 1);
	CHECK_EQ_INT(xor_dec_next(&d, &t, &v, &err), ERR_CORRUPT);
}

/* Batches of every size give the same samples as one-by-one decoding, and truncated chunks fail
 * in batch mode too (the fast loop must hand over to the checked tail before the data ends). */
TEST(xor_batch_decode_matches)
{
	static int64_t ts[240];
	static double vs[240];
	int64_t t = 1700000000000;
	for (int i = 0; i < 240; i++) {
		t += (i % 7 == 0) ? (int64_t)(xr() % 10000000) : 15000;
		ts[i] = t;
		vs[i] = (i % 3) ? (double)(int64_t)xr() : (double)i;
	}
	xor_enc_t e;
	xor_enc_init(&e);
	for (int i = 0; i < 240; i++)
		xor_enc_append(&e, ts[i], vs[i]);
	size_t len;
	const uint8_t *p = xor_enc_bytes(&e, &len);
	for (int cap = 1; cap <= 241; cap += (cap < 10 ? 1 : 37)) {
		xor_dec_t d;
		CHECK_EQ_INT(xor_dec_init(&d, p, len, NULL), 0);
		int64_t bt[241];
		double bv[241];
		int got = 0, k;
		while ((k = xor_dec_batch(&d, bt + got, bv + got, cap, NULL)) > 0)
			got += k;
		CHECK_EQ_INT(k, 0);
		CHECK_EQ_INT(got, 240);
		for (int i = 0; i < 240; i++) {
			CHECK_EQ_INT(bt[i], ts[i]);
			CHECK_EQ_U64(bits_of(bv[i]), bits_of(vs[i]));
		}
	}
	for (size_t cut = 2; cut + 1 < len; cut++) {
		uint8_t *c = malloc(cut);
		memcpy(c, p, cut);
		xor_dec_t d;
		err_t err = {0};
		CHECK_EQ_INT(xor_dec_init(&d, c, cut, &err), 0);
		int64_t bt[240];
		double bv[240];
		int k = xor_dec_batch(&d, bt, bv, 240, &err);
		free(c);
		CHECK_EQ_INT(k, ERR_CORRUPT);
		CHECK(strstr(err.msg, "xor chunk") != NULL);
	}
	xor_enc_release(&e);
}

static void make_chunk(xor_enc_t *e, chunk_t *c, int64_t from, int n, int64_t step)
{
	xor_enc_init(e);
	for (int i = 0; i < n; i++)
		xor_enc_append(e, from + i * step, (double)(from + i * step));
	size_t len;
	c->data = xor_enc_bytes(e, &len);
	c->len = len;
	c->enc = CHUNK_ENC_XOR;
	c->mint = from;
	c->maxt = from + (n - 1) * step;
}

TEST(xor_iter_trim_and_seek)
{
	xor_enc_t e[3];
	chunk_t c[3];
	make_chunk(&e[0], &c[0], 0, 120, 10);    /* 0..1190 */
	make_chunk(&e[1], &c[1], 1200, 120, 10); /* 1200..2390 */
	make_chunk(&e[2], &c[2], 2400, 120, 10); /* 2400..3590 */
	xor_iter_t it;
	xor_iter_init(&it, c, 3, 1195, 2405);
	int64_t t[64];
	double v[64];
	int total = 0, n;
	int64_t first = -1, last = -1;
	while ((n = sample_iter_next_batch(&it.base, t, v, 64, NULL)) > 0) {
		if (first < 0)
			first = t[0];
		last = t[n - 1];
		for (int i = 0; i < n; i++)
			CHECK(v[i] == (double)t[i]);
		total += n;
	}
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(first, 1200);
	CHECK_EQ_INT(last, 2400);
	CHECK_EQ_INT(total, 121);
	/* seek forward into the third chunk, then backwards is a no-op */
	xor_iter_init(&it, c, 3, INT64_MIN, INT64_MAX);
	CHECK_EQ_INT(sample_iter_next_batch(&it.base, t, v, 2, NULL), 2);
	CHECK_EQ_INT(sample_iter_seek(&it.base, 2455, NULL), 0);
	CHECK_EQ_INT(sample_iter_seek(&it.base, 100, NULL), 0);
	CHECK_EQ_INT(sample_iter_next_batch(&it.base, t, v, 1, NULL), 1);
	CHECK_EQ_INT(t[0], 2460);
	CHECK_EQ_INT(sample_iter_seek(&it.base, 99999, NULL), 0);
	CHECK_EQ_INT(sample_iter_next_batch(&it.base, t, v, 64, NULL), 0);
	/* non-XOR chunk is an error */
	c[1].enc = CHUNK_ENC_HISTOGRAM;
	xor_iter_init(&it, c, 3, 1300, 1400);
	err_t err = {0};
	CHECK(sample_iter_next_batch(&it.base, t, v, 64, &err) < 0);
	for (int i = 0; i < 3; i++)
		xor_enc_release(&e[i]);
}

TEST(xor_iter_overlapping_chunks_once)
{
	/* A compacted block's chunk and its sources' chunks in one series: [0, 2390] and the same data
	 * again in two chunks [0, 1190], [1200, 2390], plus a chunk going on after them. */
	xor_enc_t e[4];
	chunk_t c[4];
	make_chunk(&e[0], &c[0], 0, 240, 10);
	make_chunk(&e[1], &c[1], 0, 120, 10);
	make_chunk(&e[2], &c[2], 1200, 120, 10);
	make_chunk(&e[3], &c[3], 2000, 100, 10); /* 2000..2990: overlaps, then goes on */
	for (int cap = 1; cap <= 512; cap *= 8) {
		xor_iter_t it;
		xor_iter_init(&it, c, 4, INT64_MIN, INT64_MAX);
		int64_t t[512], prev = -1;
		double v[512];
		int total = 0, n;
		while ((n = sample_iter_next_batch(&it.base, t, v, cap, NULL)) > 0)
			for (int i = 0; i < n; i++, total++) {
				CHECK(t[i] > prev);
				CHECK_EQ_INT(t[i], (int64_t)total * 10);
				prev = t[i];
			}
		CHECK_EQ_INT(total, 300);
	}
	int64_t *t = NULL;
	double *v = NULL;
	size_t cap = 0;
	CHECK_EQ_INT(xor_decode_chunks(c, 4, 100, 2500, &t, &v, &cap, NULL), 241);
	free(t);
	free(v);
	for (int i = 0; i < 4; i++)
		xor_enc_release(&e[i]);
}

/* ---- a bit-at-a-time reference decoder, written straight from the format table (reference
 * prometheus.md §1.5), to hold the fast decoder to on valid, truncated and corrupted chunks ---- */

typedef struct ref_bits {
	const uint8_t *p;
	size_t len;
	uint64_t pos;
	bool past_end;
} ref_bits_t;

static uint64_t ref_get(ref_bits_t *r, int n)
{
	uint64_t x = 0;
	for (int i = 0; i < n; i++) {
		if (r->pos >= (uint64_t)r->len * 8) {
			r->past_end = true;
			return 0;
		}
		x = (x << 1) | ((r->p[r->pos >> 3] >> (7 - (r->pos & 7))) & 1);
		r->pos++;
	}
	return x;
}

/* Go's binary.Uvarint: at most 10 bytes, the 10th at most 1. */
static bool ref_uvarint(ref_bits_t *r, uint64_t *u)
{
	*u = 0;
	for (int i = 0; i < 10; i++) {
		uint64_t b = ref_get(r, 8);
		if (r->past_end || (i == 9 && b > 1))
			return false;
		*u |= (b & 0x7f) << (7 * i);
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* Decodes into t[]/v[] (room for the header's count); returns how many samples decode before the
 * first error and sets *bad if there is one (data ends inside a sample, bad varint, window > 64). */
static int ref_decode(const uint8_t *p, size_t len, int64_t *t, uint64_t *v, bool *bad)
{
	*bad = true;
	if (len < 2)
		return 0;
	int total = (p[0] << 8) | p[1];
	ref_bits_t r = {p, len, 16, false};
	int64_t tcur = 0, td = 0;
	uint64_t vcur = 0;
	unsigned lead = 0, trail = 0;
	for (int i = 0; i < total; i++) {
		if (i == 0) {
			uint64_t u;
			if (!ref_uvarint(&r, &u))
				return i;
			tcur = (int64_t)(u >> 1) ^ -(int64_t)(u & 1); /* zig-zag */
			vcur = ref_get(&r, 64);
		} else {
			if (i == 1) {
				uint64_t u;
				if (!ref_uvarint(&r, &u))
					return i;
				td = (int64_t)u;
			} else {
				int ones = 0;
				while (ones < 4 && ref_get(&r, 1))
					ones++;
				static const int payload[] = {0, 14, 17, 20, 64};
				int nb = payload[ones];
				uint64_t u = nb ? ref_get(&r, nb) : 0;
				if (nb && nb < 64 && u > (1ull << (nb - 1)))
					u -= 1ull << nb;
				td = (int64_t)((uint64_t)td + u);
			}
			tcur = (int64_t)((uint64_t)tcur + (uint64_t)td);
			if (ref_get(&r, 1)) {
				if (ref_get(&r, 1)) {
					lead = (unsigned)ref_get(&r, 5);
					unsigned sig = (unsigned)ref_get(&r, 6);
					if (sig == 0)
						sig = 64;
					if (lead + sig > 64)
						return i;
					trail = 64 - lead - sig;
				}
				unsigned sig = 64 - lead - trail;
				vcur ^= ref_get(&r, (int)sig) << trail;
			}
		}
		if (r.past_end)
			return i;
		t[i] = tcur;
		v[i] = vcur;
	}
	*bad = false;
	return total;
}

/* The fast decoder agrees with the reference on p[0..len): one sample at a time (the same sample
 * fails) and in batches of mixed sizes (same samples, or an error where the reference has one). */
static void check_vs_ref(const uint8_t *p, size_t len)
{
	static int64_t rt[65536], bt[65536 + 300];
	static uint64_t rv[65536];
	static double bv[65536 + 300];
	bool bad;
	int good = ref_decode(p, len, rt, rv, &bad);
	xor_dec_t d;
	err_t err = {0};
	int rc = xor_dec_init(&d, p, len, &err);
	if (len < 2) {
		CHECK_EQ_INT(rc, ERR_CORRUPT);
		return;
	}
	CHECK_EQ_INT(rc, 0);
	int i = 0;
	for (;; i++) {
		int64_t t;
		double v;
		rc = xor_dec_next(&d, &t, &v, &err);
		if (rc != 1)
			break;
		if (i >= good)
			TEST_FAILF("sample %d decodes, the reference fails after %d (len %zu)", i, good, len);
		CHECK_EQ_INT(t, rt[i]);
		CHECK_EQ_U64(bits_of(v), rv[i]);
	}
	if (bad) {
		if (rc != ERR_CORRUPT)
			TEST_FAILF("reference fails at sample %d, fast decoder rc %d after %d (len %zu)", good, rc, i, len);
		CHECK(strstr(err.msg, "xor chunk") != NULL);
	} else {
		CHECK_EQ_INT(rc, 0);
	}
	if (i != good)
		TEST_FAILF("fast decoder stops after %d samples (%s), the reference after %d (len %zu)", i,
			   rc ? err.msg : "no error", good, len);
	for (int round = 0; round < 3; round++) {
		CHECK_EQ_INT(xor_dec_init(&d, p, len, &err), 0);
		int got = 0, k;
		for (;;) {
			int cap = round == 0 ? 65536 : round == 1 ? 64 : 1 + (int)(xr() % 50);
			k = xor_dec_batch(&d, bt + got, bv + got, cap, &err);
			if (k <= 0)
				break;
			CHECK(k <= cap);
			got += k;
		}
		CHECK_EQ_INT(k, bad ? ERR_CORRUPT : 0);
		CHECK(got <= good);
		if (!bad)
			CHECK_EQ_INT(got, good);
		for (int j = 0; j < got; j++) {
			CHECK_EQ_INT(bt[j], rt[j]);
			CHECK_EQ_U64(bits_of(bv[j]), rv[j]);
		}
	}
}

static double from_bits(uint64_t b)
{
	double v;
	memcpy(&v, &b, 8);
	return v;
}

/* Timestamp shapes: each draws the next delta-of-delta. */
static int64_t next_dod(int shape, int i)
{
	static const int64_t edges[] = {0, 1, -1, 8192, -8191, 8193, -8192, 65536, -65535, 65537, -65536, 524288,
					-524287, 524289, -524288, 1ll << 40, -(1ll << 40), 1ll << 50};
	switch (shape) {
	case 0: return 0;                                                  /* regular scrapes */
	case 1: return xr() % 20 == 0 ? (int64_t)(xr() % 7) - 3 : 0;     /* a little jitter */
	case 2: return (int64_t)(xr() % 31) - 15;                        /* every timestamp jittered */
	case 3: return (int64_t)(xr() % 16385) - 8191;                   /* 14-bit bucket */
	case 4: return (int64_t)(xr() % 131071) - 65535;                 /* up to 17 bits */
	case 5: return (int64_t)(xr() % 1048575) - 524287;               /* up to 20 bits */
	case 6: return edges[xr() % ARRAY_LEN(edges)];                   /* bucket edges and 64-bit */
	default: return i % 2 ? (1ll << 41) + (int64_t)(xr() % 1000) : -(1ll << 41); /* 64-bit form */
	}
}

/* Value shapes: each draws the next value from the previous one. */
static double next_value(int shape, double v)
{
	static const uint64_t specials[] = {STALE_NAN_BITS, 0x7ff8000000000001ull, 0xfff8000000000000ull,
					    0x7ff0000000000000ull, 0xfff0000000000000ull, 0x8000000000000000ull, 0,
					    1, 0x000fffffffffffffull, 0x3ff0000000000000ull};
	uint64_t b = bits_of(v);
	switch (shape) {
	case 0: return v;                                                  /* constant */
	case 1: return xr() % 30 ? v : (double)(xr() % 4);               /* mostly constant */
	case 2: return v + (double)(xr() % 100);                          /* counter */
	case 3: return v + ((double)(xr() % 1000) - 500) / 1000.0;        /* wandering gauge */
	case 4: return from_bits(xr());                                   /* every bit random */
	case 5: return from_bits(b ^ (1ull << (xr() % 64)));              /* one bit flips: lead 0..31 (clamped), trail 0..63 */
	case 6: return from_bits(specials[xr() % ARRAY_LEN(specials)]);   /* NaN payloads, stale, Inf, -0, denormals */
	default: return from_bits(b ^ (xr() % 2 ? 1 : 0x8000000000000001ull)); /* lead 63 → 31, sig 64 */
	}
}

/* Encodes n samples of the given shapes; the fast decoder (one at a time and in batches) and the
 * reference return exactly what went in, and every truncation fails the same way in both. */
static void shape_roundtrip(int tshape, int vshape, int n, bool cuts)
{
	static int64_t ts[400];
	static double vs[400];
	int64_t t = (int64_t)(xr() % 4000000000000ull) - 2000000000000ll, delta = 1 + (int64_t)(xr() % 60000);
	double v = vshape == 4 ? from_bits(xr()) : (double)(xr() % 1000);
	for (int i = 0; i < n; i++) {
		if (i >= 2)
			delta += next_dod(tshape, i);
		if (i >= 1) {
			if (delta <= 0)
				delta = 1 + (int64_t)(xr() % 1000); /* timestamps strictly increase */
			t += delta;
			v = next_value(vshape, v);
		}
		ts[i] = t, vs[i] = v;
	}
	xor_enc_t e;
	xor_enc_init(&e);
	for (int i = 0; i < n; i++)
		xor_enc_append(&e, ts[i], vs[i]);
	size_t len;
	const uint8_t *p = xor_enc_bytes(&e, &len);
	static int64_t rt[400];
	static uint64_t rv[400];
	bool bad;
	CHECK_EQ_INT(ref_decode(p, len, rt, rv, &bad), n);
	CHECK(!bad);
	for (int i = 0; i < n; i++) {
		CHECK_EQ_INT(rt[i], ts[i]);
		CHECK_EQ_U64(rv[i], bits_of(vs[i]));
	}
	check_vs_ref(p, len);
	if (cuts) {
		/* every cut of short chunks; of longer ones the last 16 bytes and 48 random cuts */
		for (size_t k = 0; k < len; k++) {
			size_t cut = k;
			if (len > 64 && k + 16 < len) {
				if (k >= 48)
					continue;
				cut = (size_t)(xr() % len);
			}
			uint8_t *c = xmalloc(cut ? cut : 1); /* exactly cut bytes, so ASan sees any overread */
			memcpy(c, p, cut);
			check_vs_ref(c, cut);
			free(c);
		}
	}
	xor_enc_release(&e);
}

TEST(xor_shapes_roundtrip_vs_reference)
{
	for (int tshape = 0; tshape < 8; tshape++)
		for (int vshape = 0; vshape < 8; vshape++)
			for (int k = 0; k < 6; k++) {
				static const int lens[] = {1, 2, 3, 120, 240, 400};
				shape_roundtrip(tshape, vshape, lens[k], k == 3);
			}
	/* random shape, random length */
	for (int round = 0; round < 300; round++)
		shape_roundtrip((int)(xr() % 8), (int)(xr() % 8), 1 + (int)(xr() % 400), round % 10 == 0);
}

/* Random bit flips and byte overwrites of valid chunks: the fast decoder fails exactly where the
 * reference does (or decodes the same samples), never reads out of bounds (ASan). */
TEST(xor_corrupted_vs_reference)
{
	static uint8_t buf[8192];
	for (int round = 0; round < 3000; round++) {
		int n = 1 + (int)(xr() % 300);
		xor_enc_t e;
		xor_enc_init(&e);
		int64_t t = 1700000000000, delta = 15000;
		double v = 1;
		int tshape = (int)(xr() % 8), vshape = (int)(xr() % 8);
		for (int i = 0; i < n; i++) {
			if (i >= 2)
				delta += next_dod(tshape, i);
			if (delta <= 0)
				delta = 1;
			t += delta;
			v = next_value(vshape, v);
			xor_enc_append(&e, t, v);
		}
		size_t len;
		const uint8_t *p = xor_enc_bytes(&e, &len);
		CHECK(len <= sizeof buf);
		memcpy(buf, p, len);
		int flips = 1 + (int)(xr() % 4);
		for (int f = 0; f < flips; f++) {
			size_t at = 2 + (size_t)(xr() % (len > 2 ? len - 2 : 1));
			if (at >= len)
				continue;
			if (xr() % 2)
				buf[at] ^= (uint8_t)(1u << (xr() % 8));
			else
				buf[at] = (uint8_t)xr();
		}
		if (xr() % 4 == 0) /* claim more (or fewer) samples than the data holds */
			buf[1] = (uint8_t)(buf[1] + (int)(xr() % 9) - 4);
		size_t cut = xr() % 3 == 0 ? (size_t)(xr() % (len + 1)) : len;
		uint8_t *c = xmalloc(cut ? cut : 1); /* exactly cut bytes, so ASan sees any overread */
		memcpy(c, buf, cut);
		check_vs_ref(c, cut);
		free(c);
		xor_enc_release(&e);
	}
	/* pure noise */
	for (int round = 0; round < 200; round++) {
		size_t len = (size_t)(xr() % 200);
		uint8_t *c = xmalloc(len ? len : 1);
		for (size_t i = 0; i < len; i++)
			c[i] = (uint8_t)xr();
		if (len >= 2)
			c[0] = 0;
		check_vs_ref(c, len);
		free(c);
	}
}

/* Each edge of the format by itself, at the start of a chunk and deep in it (past the fast region's
 * start, so both the bounds-check-free loop and the checked tail see it). */
TEST(xor_edge_cases)
{
	int64_t ts[200];
	double vs[200];
	/* first sample only; first and second only; extreme first timestamps */
	int64_t t1[] = {INT64_MIN + 1};
	double v1[] = {-0.0};
	roundtrip(t1, v1, 1);
	int64_t t2[] = {INT64_MAX - 10, INT64_MAX - 1};
	double v2[] = {stale_nan(), stale_nan()};
	roundtrip(t2, v2, 2);
	int64_t t3[] = {-1, 0, 1};
	double v3[] = {1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0};
	roundtrip(t3, v3, 3);
	/* Maximum leading zeros: XOR 1 has 63 of them, written as 31 (sig 33); then a window reuse. */
	for (int pre = 0; pre < 150; pre += 149) {
		int n = 0;
		for (int i = 0; i < pre; i++)
			ts[n] = 1000 * (n + 1), vs[n] = (double)(i * 17), n++;
		uint64_t b = 0x4000000000000000ull;
		static const uint64_t xors[] = {1, 1, 3, 0x8000000000000000ull, 0x8000000000000000ull,
						0x8000000000000001ull, 0xffffffffffffffffull, 0, 2, 0x7fffffff80000000ull};
		for (size_t i = 0; i < ARRAY_LEN(xors); i++) {
			b ^= xors[i];
			ts[n] = 1000 * (n + 1), vs[n] = from_bits(b), n++;
		}
		roundtrip(ts, vs, n);
		xor_enc_t e;
		xor_enc_init(&e);
		for (int i = 0; i < n; i++)
			xor_enc_append(&e, ts[i], vs[i]);
		size_t len;
		const uint8_t *p = xor_enc_bytes(&e, &len);
		check_vs_ref(p, len);
		xor_enc_release(&e);
	}
	/* a stale marker in a run of constants, deep in a chunk */
	for (int i = 0; i < 200; i++)
		ts[i] = 15000 * i, vs[i] = (i == 150 || i == 151) ? stale_nan() : 5.0;
	roundtrip(ts, vs, 200);
}

/* A window wider than 64 bits ('11', leading 31, sig 40) is an error naming its bit, whether it
 * sits in the fast region (40 more bytes follow) or in the checked tail. */
TEST(xor_bad_window_fast_and_tail)
{
	for (int at = 2; at < 120; at += 117) {
		for (size_t extra = 0; extra <= 40; extra += 40) {
			xor_enc_t f;
			xor_enc_init(&f);
			for (int i = 0; i < at; i++)
				xor_enc_append(&f, 15000 * i, (double)i);
			size_t flen;
			const uint8_t *fp = xor_enc_bytes(&f, &flen);
			uint8_t buf[2048] = {0};
			CHECK(flen + 64 < sizeof buf);
			memcpy(buf, fp, flen);
			/* sample at: '0' (dod 0), then '11' 11111 101000 */
			uint64_t bitpos = (uint64_t)f.n * 8 + (uint64_t)f.nacc;
			if (f.nacc == 0)
				buf[f.n] = 0; /* drop the empty byte Prometheus leaves after a byte-aligned end */
			uint64_t pat = 0x1fe8; /* 0 11 11111 101000 (14 bits) */
			for (int k = 0; k < 14; k++) {
				uint64_t bp = bitpos + (uint64_t)k;
				if ((pat >> (13 - k)) & 1)
					buf[bp >> 3] |= (uint8_t)(0x80u >> (bp & 7));
			}
			buf[0] = 0, buf[1] = (uint8_t)(at + 1);
			size_t blen = (size_t)((bitpos + 14 + 40 + 7) / 8) + extra;
			check_vs_ref(buf, blen);
			xor_dec_t d;
			err_t err = {0};
			CHECK_EQ_INT(xor_dec_init(&d, buf, blen, &err), 0);
			int64_t bt[200];
			double bv[200];
			CHECK_EQ_INT(xor_dec_batch(&d, bt, bv, 200, &err), ERR_CORRUPT);
			char want[96];
			snprintf(want, sizeof want, "bit %llu: leading 31 + significant 40 bits > 64",
				 (unsigned long long)(bitpos + 1));
			if (!strstr(err.msg, want))
				TEST_FAILF("'%s' does not say '%s'", err.msg, want);
			xor_enc_release(&f);
		}
	}
}

/* A chunk claiming more samples than it holds: the zero padding after the data reads as '0' '0'
 * pairs (dod 0, value unchanged), which the batch loop takes in runs. The error names the first
 * sample that does not fit, as the one-at-a-time reference sees it, not one from the middle of a run. */
TEST(xor_claims_more_than_it_holds)
{
	for (int n = 3; n < 130; n += 7) {
		xor_enc_t e;
		xor_enc_init(&e);
		for (int i = 0; i < n; i++)
			xor_enc_append(&e, 15000 * i, 42.0);
		size_t len;
		const uint8_t *p = xor_enc_bytes(&e, &len);
		uint8_t *c = xmalloc(len);
		memcpy(c, p, len);
		c[0] = 0, c[1] = 200;
		int64_t rt[200];
		uint64_t rv[200];
		bool bad;
		int good = ref_decode(c, len, rt, rv, &bad);
		CHECK(bad);
		CHECK(good >= n && good <= n + 4); /* the padding holds up to 4 pairs */
		check_vs_ref(c, len);
		xor_dec_t d;
		err_t err = {0};
		CHECK_EQ_INT(xor_dec_init(&d, c, len, &err), 0);
		int64_t bt[200];
		double bv[200];
		CHECK_EQ_INT(xor_dec_batch(&d, bt, bv, 200, &err), ERR_CORRUPT);
		char want[64];
		snprintf(want, sizeof want, "sample %d of 200:", good + 1);
		if (!strstr(err.msg, want))
			TEST_FAILF("n %d: '%s' does not name %s", n, err.msg, want);
		free(c);
		xor_enc_release(&e);
	}
}

/* Seek (batch decode, then the batch that reaches t decoded again up to it) lands where a scan of
 * all samples says: random chunk lists, ranges, reads before the seek, seeks forward and backward. */
TEST(xor_iter_seek_matches_scan)
{
	enum { NC = 4, PER = 130 };
	xor_enc_t e[NC];
	chunk_t c[NC];
	static int64_t all_t[NC * PER];
	static double all_v[NC * PER];
	for (int round = 0; round < 200; round++) {
		int nc = 1 + (int)(xr() % NC), n = 0;
		int64_t t = (int64_t)(xr() % 1000000) - 500000;
		for (int k = 0; k < nc; k++) {
			int per = 1 + (int)(xr() % PER);
			xor_enc_init(&e[k]);
			for (int i = 0; i < per; i++) {
				t += 1 + (int64_t)(xr() % 20000);
				all_t[n] = t, all_v[n] = (double)(xr() % 1000);
				xor_enc_append(&e[k], all_t[n], all_v[n]);
				n++;
			}
			size_t len;
			c[k].data = xor_enc_bytes(&e[k], &len);
			c[k].len = len;
			c[k].enc = CHUNK_ENC_XOR;
			c[k].mint = all_t[n - per];
			c[k].maxt = all_t[n - 1];
		}
		int64_t lo = all_t[0] - 10, hi = all_t[n - 1] + 10;
		int64_t mint = xr() % 4 ? INT64_MIN : lo + (int64_t)(xr() % (uint64_t)(hi - lo));
		int64_t maxt = xr() % 4 ? INT64_MAX : lo + (int64_t)(xr() % (uint64_t)(hi - lo));
		xor_iter_t it;
		xor_iter_init(&it, c, (size_t)nc, mint, maxt);
		int64_t bt[64];
		double bv[64];
		int at = 0; /* index in all_t of the next sample the scan expects */
		while (at < n && all_t[at] < mint)
			at++;
		int pre = (int)(xr() % 3); /* read a little before seeking */
		if (pre) {
			int k = sample_iter_next_batch(&it.base, bt, bv, pre, NULL);
			CHECK(k >= 0);
			for (int i = 0; i < k; i++, at++)
				CHECK_EQ_INT(bt[i], all_t[at]);
		}
		for (int s = 0; s < 3; s++) {
			int64_t target = xr() % 2 ? all_t[xr() % (uint64_t)n] : lo + (int64_t)(xr() % (uint64_t)(hi - lo));
			CHECK_EQ_INT(sample_iter_seek(&it.base, target, NULL), 0);
			while (at < n && all_t[at] < target)
				at++; /* a backward seek is a no-op */
			int k = sample_iter_next_batch(&it.base, bt, bv, 1 + (int)(xr() % 5), NULL);
			CHECK(k >= 0);
			for (int i = 0; i < k; i++, at++) {
				CHECK(at < n && all_t[at] <= maxt);
				CHECK_EQ_INT(bt[i], all_t[at]);
				CHECK(bv[i] == all_v[at]);
			}
			if (k == 0)
				CHECK(at >= n || all_t[at] > maxt);
		}
		int k;
		while ((k = sample_iter_next_batch(&it.base, bt, bv, 64, NULL)) > 0)
			for (int i = 0; i < k; i++, at++) {
				CHECK_EQ_INT(bt[i], all_t[at]);
				CHECK(bv[i] == all_v[at]);
			}
		CHECK_EQ_INT(k, 0);
		CHECK(at >= n || all_t[at] > maxt);
		for (int k2 = 0; k2 < nc; k2++)
			xor_enc_release(&e[k2]);
	}
}

TEST_MAIN()
