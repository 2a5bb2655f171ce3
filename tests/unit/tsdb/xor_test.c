#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "test.h"
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
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
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

TEST_MAIN()
