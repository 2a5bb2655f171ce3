/* fmt.c — Go-compatible float formatting; see fmt.h.
 *
 * Shortest round-trip digits, without snprintf/strtod, in three steps (fastest first):
 *  1. Integers below 2^53: their own digits (every other decimal of at most as many digits is an integer
 *     too, at least 1 away, outside the rounding interval of half an ulp <= 0.5).
 *  2. Decimals of at most 15 significant digits: |v| scaled by an exact power of ten (10^0..10^22) to 15
 *     digits and rounded to an integer x, checked by computing x / 10^m (or x * 10^m) back: both operands
 *     are exact doubles, so the one IEEE operation is correctly rounded, i.e. exactly what parsing the
 *     decimal gives. A decimal of <= 15 digits that round-trips is the only one in the rounding interval
 *     (such decimals are more than 4 ulps apart for normal doubles), so it is the shortest.
 *  3. Everything else: Schubfach (R. Giulietti, "The Schubfach way to render doubles", 2020): v's rounding
 *     interval scaled by 10^-k (k = floor(log10 of the interval's width)) with a 126-bit approximation of
 *     10^-k (fmt_pow10.h), computed with a sticky bit so that membership tests are exact. Of the
 *     multiples of 10^(k+1) at most one lies in the interval; if one does it is the shortest answer;
 *     otherwise the multiple of 10^k in the interval closest to v, ties to even.
 * That is the shortest decimal that parses back to v and, among those, the one closest to v, which is
 * what Go's strconv (Ryu) picks. tests/unit/base/fmt_test.c checks millions of doubles against the
 * snprintf/strtod formatter this replaced; they differ only on 46 powers of two, where that one tried just
 * the correctly rounded 16-digit decimal, which lies below v where the interval is half as wide, and fell
 * back to 17 digits, while another 16-digit decimal above v parses back to v: Go prints that one
 * (2^-24 = 5.960464477539063e-08; checked with Prometheus 2.42's promtool). bench/fmt_bench.c measures it. */
#include "base/fmt.h"

#include <math.h>
#include <string.h>

#include "base/fmt_pow10.h"

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static const uint64_t pow10_u64[20] = {1ULL,
                                       10ULL,
                                       100ULL,
                                       1000ULL,
                                       10000ULL,
                                       100000ULL,
                                       1000000ULL,
                                       10000000ULL,
                                       100000000ULL,
                                       1000000000ULL,
                                       10000000000ULL,
                                       100000000000ULL,
                                       1000000000000ULL,
                                       10000000000000ULL,
                                       100000000000000ULL,
                                       1000000000000000ULL,
                                       10000000000000000ULL,
                                       100000000000000000ULL,
                                       1000000000000000000ULL,
                                       10000000000000000000ULL};

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* floor(log10(2^q)), floor(log10(3/4 * 2^q)), floor(log2(10^e)): exact over every exponent a double can
 * have (checked by scripts/gen_fmt_pow10.py); >> of a negative value is arithmetic with GCC and Clang. */
static inline int flog10_pow2(int q)
{
	return (int)(((int64_t)q * 661971961083LL) >> 41);
}

static inline int flog10_3q_pow2(int q)
{
	return (int)(((int64_t)q * 661971961083LL - 274743187321LL) >> 41);
}

static inline int flog2_pow10(int e)
{
	return (int)(((int64_t)e * 913124641741LL) >> 38);
}

/* floor(g * cp / 2^127) with bit 0 set when the discarded part is not zero ("round to odd");
 * g = {g >> 63, g & (2^63 - 1)}. */
static inline uint64_t rop(const uint64_t g[2], uint64_t cp)
{
	unsigned __int128 x = (unsigned __int128)g[1] * cp;
	unsigned __int128 y = (unsigned __int128)g[0] * cp;
	uint64_t z = ((uint64_t)y >> 1) + (uint64_t)(x >> 64);
	uint64_t hi = (uint64_t)(y >> 64) + (z >> 63);
	const uint64_t m63 = (1ULL << 63) - 1;
	return hi | (((z & m63) + m63) >> 63);
}

/* v = c * 2^q (c < 2^53, not 0): the decimal f * 10^*e10 picked as described at the top. f < 10^17. */
static uint64_t schubfach(uint64_t c, int q, int *e10)
{
	uint64_t out = c & 1; /* odd c: the interval's ends do not round to v */
	uint64_t cb = c << 2, cbr = cb + 2, cbl;
	int k;
	if (c != 1ULL << 52 || q == -1074) {
		cbl = cb - 2;
		k = flog10_pow2(q);
	} else { /* a power of two: the interval below is half as wide */
		cbl = cb - 1;
		k = flog10_3q_pow2(q);
	}
	int h = q + flog2_pow10(-k) + 2;
	const uint64_t *g = fmt_pow10_g[k - FMT_POW10_KMIN];
	uint64_t vb = rop(g, cb << h), vbl = rop(g, cbl << h), vbr = rop(g, cbr << h);
	uint64_t s = vb >> 2; /* floor(v / 10^k) */
	*e10 = k;
	uint64_t sp10 = s / 10 * 10, tp10 = sp10 + 10;
	bool upin = vbl + out <= sp10 << 2, wpin = (tp10 << 2) + out <= vbr;
	if (upin != wpin)
		return upin ? sp10 : tp10;
	uint64_t t = s + 1;
	bool uin = vbl + out <= s << 2, win = (t << 2) + out <= vbr;
	if (uin != win)
		return uin ? s : t;
	uint64_t mid = (s + t) << 1;
	return vb < mid || (vb == mid && (s & 1) == 0) ? s : t;
}

static inline uint64_t strip_zeros(uint64_t f, int *e10)
{
	while (f % 100000000 == 0) {
		f /= 100000000;
		*e10 += 8;
	}
	if (f % 10000 == 0) {
		f /= 10000;
		*e10 += 4;
	}
	if (f % 100 == 0) {
		f /= 100;
		*e10 += 2;
	}
	if (f % 10 == 0) {
		f /= 10;
		*e10 += 1;
	}
	return f;
}

/* |v| (finite, not zero) = f * 10^e10 exactly as its shortest decimal, f without trailing zeros. */
static uint64_t shortest(double v, int *e10)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof bits);
	uint64_t c = bits & ((1ULL << 52) - 1);
	int be = (int)(bits >> 52 & 0x7ff), q = -1074;
	if (be) {
		c |= 1ULL << 52;
		q = be - 1075;
	}
	*e10 = 0;
	if (q <= 0 && q > -53 && (c & ((1ULL << -q) - 1)) == 0) /* an integer below 2^53 */
		return strip_zeros(c >> -q, e10);
	int k = flog10_pow2(q + 52); /* floor(log10 |v|) is k or k + 1 */
	if (k >= -8 && k <= 36) {
		double a = fabs(v);
		int m = 14 - k;
		double y = m >= 0 ? a * pow10_exact[m] : a / pow10_exact[-m];
		if (y >= 1e15 && --m >= -22)
			y = m >= 0 ? a * pow10_exact[m] : a / pow10_exact[-m];
		if (m >= -22) {
			uint64_t x = (uint64_t)(y + 0.5);
			double back = m >= 0 ? (double)x / pow10_exact[m] : (double)x * pow10_exact[-m];
			if (back == a) {
				*e10 = -m;
				return strip_zeros(x, e10);
			}
		}
	}
	return strip_zeros(schubfach(c, q, e10), e10);
}

static inline int count_digits(uint64_t f)
{
	int t = ((64 - __builtin_clzll(f | 1)) * 1233) >> 12;
	return t - ((f | 1) < pow10_u64[t]) + 1; /* 1 for 0 */
}

/* The nd digits of f into d[0..nd). */
static inline void put_digits(char *d, uint64_t f, int nd)
{
	char *p = d + nd;
	while (f >= 100000000) { /* 8 digits at a time in 32-bit arithmetic, their pairs independent */
		uint32_t lo = (uint32_t)(f % 100000000), a = lo / 10000, b = lo % 10000;
		f /= 100000000;
		p -= 8;
		memcpy(p, digit_pairs + 2 * (a / 100), 2);
		memcpy(p + 2, digit_pairs + 2 * (a % 100), 2);
		memcpy(p + 4, digit_pairs + 2 * (b / 100), 2);
		memcpy(p + 6, digit_pairs + 2 * (b % 100), 2);
	}
	uint32_t x = (uint32_t)f;
	while (x >= 100) {
		uint32_t r = x % 100;
		x /= 100;
		p -= 2;
		memcpy(p, digit_pairs + 2 * r, 2);
	}
	if (x >= 10) {
		p -= 2;
		memcpy(p, digit_pairs + 2 * x, 2);
	} else {
		*--p = (char)('0' + x);
	}
}

int float_shortest_digits(double v, char *d, int *dp)
{
	int e10;
	uint64_t f = shortest(v, &e10);
	int nd = count_digits(f);
	put_digits(d, f, nd);
	*dp = nd + e10;
	return nd;
}

/* "e+05", "e-123": the exponent part of the 'e' layout. */
static char *put_exp(char *p, int exp)
{
	*p++ = 'e';
	*p++ = exp < 0 ? '-' : '+';
	if (exp < 0)
		exp = -exp;
	if (exp >= 100) {
		*p++ = (char)('0' + exp / 100);
		exp %= 100;
	}
	memcpy(p, digit_pairs + 2 * exp, 2);
	return p + 2;
}

static char *put_e(char *p, const char *d, int nd, int dp)
{
	*p++ = d[0];
	if (nd > 1) {
		*p++ = '.';
		memcpy(p, d + 1, (size_t)nd - 1);
		p += nd - 1;
	}
	return put_exp(p, dp - 1);
}

static char *put_f(char *p, const char *d, int nd, int dp)
{
	if (dp <= 0) {
		memcpy(p, "0.", 2);
		p += 2;
		memset(p, '0', (size_t)-dp);
		p += -dp;
		memcpy(p, d, (size_t)nd);
		return p + nd;
	}
	if (dp >= nd) {
		memcpy(p, d, (size_t)nd);
		memset(p + nd, '0', (size_t)(dp - nd));
		return p + dp;
	}
	memcpy(p, d, (size_t)dp);
	p[dp] = '.';
	memcpy(p + dp + 1, d + dp, (size_t)(nd - dp));
	return p + nd + 1;
}

size_t fmt_float(char *out, double v, char fmt)
{
	char *p = out;
	if (isnan(v)) {
		memcpy(p, "NaN", 3);
		return 3;
	}
	if (isinf(v)) {
		memcpy(p, v > 0 ? "+Inf" : "-Inf", 4);
		return 4;
	}
	if (signbit(v))
		*p++ = '-';
	if (v == 0) {
		if (fmt == 'e') {
			memcpy(p, "0e+00", 5);
			return (size_t)(p - out) + 5;
		}
		*p = '0';
		return (size_t)(p - out) + 1;
	}
	char d[24];
	int dp;
	int nd = float_shortest_digits(v, d, &dp);
	if (fmt == 'g')
		fmt = (dp - 1 < -4 || dp - 1 >= 6) ? 'e' : 'f';
	p = fmt == 'e' ? put_e(p, d, nd, dp) : put_f(p, d, nd, dp);
	return (size_t)(p - out);
}

/* 'e' layout of f (nd digits, decimal point position dp) at p: digits written one byte to the right, the
 * first moved left in front of the '.'. */
static char *put_e_digits(char *p, uint64_t f, int nd, int dp)
{
	put_digits(p + 1, f, nd);
	p[0] = p[1];
	if (nd > 1) {
		p[1] = '.';
		p += nd + 1;
	} else {
		p++;
	}
	return put_exp(p, dp - 1);
}

/* The same layout as fmt_float(out, v, 'e' or 'f'), built in place without a digit buffer and with
 * fixed-size copies only (no memcpy/memmove calls of variable length): every write stays within
 * out[0, FMT_PROM_VALUE_MAX) (the longest output, "-0.00000" and 17 digits, is 25 bytes). */
size_t fmt_prom_value(char *out, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof bits);
	uint64_t abits = bits & ~(1ULL << 63);
	char *p = out;
	if (abits >= 0x7ff0000000000000ULL) {
		if (abits > 0x7ff0000000000000ULL) {
			memcpy(p, "NaN", 3);
			return 3;
		}
		memcpy(p, bits >> 63 ? "-Inf" : "+Inf", 4);
		return 4;
	}
	if (bits >> 63)
		*p++ = '-';
	if (abits == 0) {
		*p = '0';
		return (size_t)(p - out) + 1;
	}
	double a = fabs(v);
	if (a < 9007199254740992.0) { /* an integer below 2^53 is its own digits ('f', as |v| < 1e21) */
		int64_t i = (int64_t)a;
		if ((double)i == a) {
			int nd = count_digits((uint64_t)i);
			put_digits(p, (uint64_t)i, nd);
			return (size_t)(p - out) + (size_t)nd;
		}
	}
	int e10;
	uint64_t f = shortest(v, &e10);
	int nd = count_digits(f), dp = nd + e10;
	if (a < 1e-6 || a >= 1e21) {
		p = put_e_digits(p, f, nd, dp);
	} else if (dp <= 0) { /* |v| >= 1e-6: at most 5 zeros after the point */
		memcpy(p, "0.00000", 7);
		put_digits(p + 2 - dp, f, nd);
		p += 2 - dp + nd;
	} else if (dp >= nd) { /* at most 21 digits (|v| < 1e21) */
		if (dp <= 19) {
			put_digits(p, f * pow10_u64[dp - nd], dp);
		} else {
			put_digits(p, f, nd);
			memset(p + nd, '0', (size_t)(dp - nd));
		}
		p += dp;
	} else { /* the digits, then the fraction (at most 16 digits) moved right by one for the '.' */
		put_digits(p, f, nd);
		if (nd - dp <= 8)
			memmove(p + dp + 1, p + dp, 8);
		else /* dp <= 8 */
			memmove(p + dp + 1, p + dp, 16);
		p[dp] = '.';
		p += nd + 1;
	}
	return (size_t)(p - out);
}

size_t fmt_prom_ts(char *out, int64_t ms)
{
	char *p = out;
	uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	if (ms < 0)
		*p++ = '-';
	uint64_t s = u / 1000;
	int nd = count_digits(s);
	put_digits(p, s, nd);
	p += nd;
	unsigned frac = (unsigned)(u % 1000);
	if (frac) {
		p[0] = '.';
		p[1] = (char)('0' + frac / 100);
		memcpy(p + 2, digit_pairs + 2 * (frac % 100), 2);
		p += 4;
	}
	return (size_t)(p - out);
}

void buf_put_float(buf_t *b, double v, char fmt)
{
	char tmp[FMT_FLOAT_MAX];
	buf_append(b, tmp, fmt_float(tmp, v, fmt));
}

void buf_put_prom_value(buf_t *b, double v)
{
	if (b->n + FMT_PROM_VALUE_MAX + 1 > b->cap) /* the call only when it has something to do */
		buf_reserve(b, FMT_PROM_VALUE_MAX);
	b->n += fmt_prom_value(b->p + b->n, v);
	b->p[b->n] = 0;
}

void buf_put_prom_ts(buf_t *b, int64_t ms)
{
	buf_reserve(b, FMT_PROM_TS_MAX);
	b->n += fmt_prom_ts(b->p + b->n, ms);
	b->p[b->n] = 0;
}

void buf_put_json_seconds(buf_t *b, int64_t ms)
{
	/* Go encoding/json: 'f' unless 0 < |v| < 1e-6 or |v| >= 1e21, then 'e' with a minimal exponent
	 * ("1e-07" becomes "1e-7"). */
	double v = (double)ms / 1000.0;
	double a = fabs(v);
	if (v != 0 && (a < 1e-6 || a >= 1e21)) {
		size_t start = b->n;
		buf_put_float(b, v, 'e');
		char *e = strchr(b->p + start, 'e');
		if (e && e[2] == '0' && e[3]) {
			memmove(e + 2, e + 3, strlen(e + 3) + 1);
			b->n--;
		}
		return;
	}
	buf_put_float(b, v, 'f');
}
