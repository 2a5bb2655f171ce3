/* fmt.c — Go-compatible float formatting; see fmt.h.
 *
 * Shortest round-trip digits, without snprintf/strtod:
 *  1. Integers below 2^53: their own digits (every other decimal of at most as many digits is an integer
 *     too, at least 1 away, outside the rounding interval of half an ulp <= 0.5).
 *  2. Everything else: Dragonbox (J. Jeon, "Dragonbox: A New Floating-Point Binary-to-Decimal Conversion
 *     Algorithm", 2020). v's rounding interval is scaled by 10^k (a 128-bit approximation of it,
 *     fmt_pow10.h) so that its width delta lies in [100, 1000): of the multiples of 1000 at most one lies
 *     in the interval, and if one does it is the shortest answer; otherwise the multiple of 100 closest to
 *     v, ties to even. One 64x128-bit product (the interval's upper end) decides nearly every value; the
 *     exact comparisons at the boundaries take one more. A power of two (the interval below is half as
 *     wide) has its own short case.
 * That is the shortest decimal that parses back to v and, among those, the one closest to v, which is
 * what Go's strconv (Ryu) picks. tests/unit/base/fmt_test.c checks millions of doubles against the
 * snprintf/strtod formatter this replaced; they differ only on 46 powers of two, where that one tried just
 * the correctly rounded 16-digit decimal, which lies below v where the interval is half as wide, and fell
 * back to 17 digits, while another 16-digit decimal above v parses back to v: Go prints that one
 * (2^-24 = 5.960464477539063e-08; checked with Prometheus 2.42's promtool). bench/fmt_bench.c measures it.
 * (Before: Schubfach, three 64x126-bit products per value, behind a check whether a <= 15-digit decimal
 * round-trips, which fails for ~90% of what queries compute.) */
#include "base/fmt.h"

#include <math.h>
#include <string.h>

#include "base/fmt_pow10.h"

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

typedef struct u128_pair {
	uint64_t hi, lo;
} u128_pair_t;

/* The upper 128 bits of the 192-bit product x * phi. */
static inline u128_pair_t mul_upper(uint64_t x, const uint64_t phi[2])
{
	unsigned __int128 h = (unsigned __int128)x * phi[0];
	h += (uint64_t)(((unsigned __int128)x * phi[1]) >> 64);
	return (u128_pair_t){(uint64_t)(h >> 64), (uint64_t)h};
}

/* x * 2^q * 10^k's integer part's lowest bit (*integer: the fractional part is 0), from the lower 128
 * bits of x * phi, the binary point beta bits below their top. */
static inline bool mul_parity(uint64_t x, const uint64_t phi[2], int beta, bool *integer)
{
	unsigned __int128 l = (unsigned __int128)x * phi[1];
	uint64_t hi = x * phi[0] + (uint64_t)(l >> 64), lo = (uint64_t)l;
	*integer = ((hi << beta) | (lo >> (64 - beta))) == 0;
	return (hi >> (64 - beta)) & 1;
}

/* f without its trailing zeros, *e10 counting them; most values of 16-17 digits have none. */
static inline uint64_t strip_zeros(uint64_t f, int *e10)
{
	if (f % 10)
		return f;
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

/* v = c * 2^q (c < 2^53, not 0): the decimal f * 10^*e10 picked as described at the top, f < 10^17
 * without trailing zeros. */
static uint64_t dragonbox(uint64_t c, int q, int *e10)
{
	bool even = (c & 1) == 0; /* the interval's ends round to v (to even) */
	if (c == 1ULL << 52 && q != -1074) {
		/* A power of two: the interval below v is half as wide as above, [v - 2^(q-2), v + 2^(q-1)].
		 * Its ends and centre scaled by 10^k (so that the centre is 2^52 * [4/3, 40/3)) from phi's
		 * top half; c is even, so both ends are in. */
		int k = -flog10_3q_pow2(q), beta = q + flog2_pow10(k);
		uint64_t ph = fmt_pow10_phi[k - FMT_POW10_KMIN][0];
		uint64_t xi = (ph - (ph >> 54)) >> (11 - beta), zi = (ph + (ph >> 53)) >> (11 - beta);
		if (q < 2 || q > 3) /* the left end is not an integer (scripts/gen_fmt_pow10.py) */
			xi++;
		uint64_t s = zi / 10;
		if (s * 10 >= xi) {
			*e10 = 1 - k;
			return strip_zeros(s, e10);
		}
		s = ((ph >> (10 - beta)) + 1) / 2; /* the centre rounded half up */
		*e10 = -k;
		if ((s & 1) && q == -77) /* the centre is a half-integer only there: to even */
			s--;
		else if (s < xi)
			s++;
		return s;
	}
	/* The interval [v - 2^(q-1), v + 2^(q-1)] scaled by 10^k so that its width delta is in [100, 1000):
	 * zi = its upper end, rounded down. */
	int k = 2 - flog10_pow2(q), beta = q + flog2_pow10(k);
	const uint64_t *phi = fmt_pow10_phi[k - FMT_POW10_KMIN];
	uint32_t delta = (uint32_t)(phi[0] >> (63 - beta));
	u128_pair_t z = mul_upper(((c << 1) | 1) << beta, phi);
	uint64_t s = z.hi / 1000;
	uint32_t r = (uint32_t)(z.hi - s * 1000);
	if (r == 0 && z.lo == 0 && !even) { /* s * 1000 is the upper end, which is out */
		s--;
		r = 1000;
	}
	/* s * 1000, the largest multiple of 1000 not above the upper end: at most one multiple of 1000 fits
	 * in the interval, and if it does it is the shortest decimal. */
	bool big = r < delta;
	if (r == delta) { /* s * 1000 is the lower end rounded down or up: the parity of the latter says */
		bool integer, odd = mul_parity((c << 1) - 1, phi, beta, &integer);
		big = odd || (integer && even);
	}
	/* Otherwise the multiple of 100 closest to v, ties to even; from the distance of the upper end to the
	 * centre (delta / 2) in steps of 100, exact unless the centre lies on such a multiple's boundary. It
	 * is not a multiple of 1000 (that would have been found above). Both are computed and one picked
	 * without a branch: which one it is is a coin toss for values of 16-17 digits. */
	uint32_t dist = r - delta / 2 + 50;
	bool approx_odd = ((dist ^ 50) & 1) != 0, exact = dist % 100 == 0;
	uint64_t sc = s * 10 + dist / 100;
	if (exact) {
		bool integer, odd = mul_parity(c << 1, phi, beta, &integer);
		if (odd != approx_odd)
			sc--;
		else if ((sc & 1) && integer)
			sc--;
	}
	uint64_t m = (uint64_t)0 - big;
	*e10 = 2 - k + big;
	return strip_zeros((s & m) | (sc & ~m), e10);
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
	return dragonbox(c, q, e10);
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

/* The 8 digits of x < 10^8, leading zeros included, as ASCII in one word (first digit in the lowest byte:
 * stored as is, it reads left to right). */
static inline uint64_t digits8(uint32_t x)
{
	uint32_t a = x / 10000, b = x % 10000;
	uint16_t p0, p1, p2, p3;
	memcpy(&p0, digit_pairs + 2 * (a / 100), 2);
	memcpy(&p1, digit_pairs + 2 * (a % 100), 2);
	memcpy(&p2, digit_pairs + 2 * (b / 100), 2);
	memcpy(&p3, digit_pairs + 2 * (b % 100), 2);
	return p0 | (uint64_t)p1 << 16 | (uint64_t)p2 << 32 | (uint64_t)p3 << 48;
}

static inline void store8(char *p, uint64_t w)
{
	memcpy(p, &w, 8);
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
	uint64_t c = abits & ((1ULL << 52) - 1);
	int q = -1074;
	if (abits >> 52) {
		c |= 1ULL << 52;
		q = (int)(abits >> 52) - 1075;
	}
	if (q <= 0 && q > -53 && (c & ((1ULL << -q) - 1)) == 0) { /* an integer below 2^53: its digits */
		uint64_t i = c >> -q;
		int nd = count_digits(i);
		put_digits(p, i, nd);
		return (size_t)(p - out) + (size_t)nd;
	}
	int e10;
	uint64_t f = dragonbox(c, q, &e10);
	int nd = count_digits(f), dp = nd + e10;
	if (nd >= 16 && dp <= 7 && dp > -6) {
		/* The common case (a ratio, rate or mean: 16 or 17 digits, below 10^7) without a branch on
		 * the digits: the 17 digits of f (a leading 0 when nd is 16) as t, then the words w1 and w2
		 * of 8 each; s0 s1 s2 the digits left-aligned (s2 the 17th, if any); whole-word stores, the
		 * bytes past the end zeros or digits, all within FMT_PROM_VALUE_MAX. */
		uint64_t hi = f / 100000000, t = hi / 100000000;
		uint64_t w1 = digits8((uint32_t)(hi - t * 100000000)),
		         w2 = digits8((uint32_t)(f - hi * 100000000));
		uint64_t m = (uint64_t)0 - (uint64_t)(nd - 16); /* all ones when nd is 17 */
		uint64_t s0 = ((('0' + t) | w1 << 8) & m) | (w1 & ~m);
		uint64_t s1 = ((w1 >> 56 | w2 << 8) & m) | (w2 & ~m);
		uint64_t s2 = (w2 >> 56) & m;
		if (dp <= 0) { /* |v| >= 1e-6: at most 5 zeros after the point */
			memcpy(p, "0.000000", 8);
			p += 2 - dp;
			store8(p, s0);
			store8(p + 8, s1);
			p[16] = (char)s2;
			p += nd;
		} else { /* the point inserted after dp digits into the first word */
			uint64_t lo = (1ULL << 8 * dp) - 1;
			store8(p, (s0 & lo) | (uint64_t)'.' << 8 * dp | (s0 << 8 & ~lo << 8));
			store8(p + 8, s0 >> 56 | s1 << 8);
			store8(p + 16, s1 >> 56 | s2 << 8);
			p += nd + 1;
		}
	} else if (dp < -5 ||
	           dp >= 22) { /* |v| < 1e-6 or >= 1e21: v's shortest decimal is in [10^(dp-1), 10^dp) */
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
