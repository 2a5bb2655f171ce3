#include "test.h"

#include <math.h>

#include "base/alloc.h"
#include "base/fmt.h"

static const char *f(double v, char fmt)
{
	static buf_t b = BUF_INIT;
	buf_reset(&b);
	buf_put_float(&b, v, fmt);
	return b.p;
}

static const char *pv(double v)
{
	static buf_t b = BUF_INIT;
	buf_reset(&b);
	buf_put_prom_value(&b, v);
	return b.p;
}

static const char *ts(int64_t ms)
{
	static buf_t b = BUF_INIT;
	buf_reset(&b);
	buf_put_prom_ts(&b, ms);
	return b.p;
}

static const char *js(int64_t ms)
{
	static buf_t b = BUF_INIT;
	buf_reset(&b);
	buf_put_json_seconds(&b, ms);
	return b.p;
}

TEST(prometheus_sample_values)
{
	/* Values verified against Prometheus 2.42's API output (reference §5.4). */
	CHECK_STR(pv(21.25), "21.25");
	CHECK_STR(pv(1e-7), "1e-07");
	CHECK_STR(pv(1e21), "1e+21");
	CHECK_STR(pv(123456789012345678.0), "123456789012345680");
	CHECK_STR(pv(0.1 + 0.2), "0.30000000000000004");
	CHECK_STR(pv(0.1), "0.1");
	CHECK_STR(pv(-0.0), "-0");
	CHECK_STR(pv(0.0), "0");
	CHECK_STR(pv(NAN), "NaN");
	CHECK_STR(pv(INFINITY), "+Inf");
	CHECK_STR(pv(-INFINITY), "-Inf");
	CHECK_STR(pv(1e-6), "0.000001");
	CHECK_STR(pv(9.99e20), "999000000000000000000");
	CHECK_STR(pv(-2.5e-10), "-2.5e-10");
	CHECK_STR(pv(1.7976931348623157e308), "1.7976931348623157e+308");
	CHECK_STR(pv(5e-324), "5e-324");
	CHECK_STR(pv(100), "100");
	CHECK_STR(pv(1.0 / 3), "0.3333333333333333");
	CHECK_STR(pv(2.0 / 3), "0.6666666666666666");
}

TEST(go_formats)
{
	CHECK_STR(f(1e-7, 'f'), "0.0000001");
	CHECK_STR(f(1e21, 'f'), "1000000000000000000000");
	CHECK_STR(f(1234.5678, 'e'), "1.2345678e+03");
	CHECK_STR(f(1e100, 'e'), "1e+100");
	CHECK_STR(f(0, 'e'), "0e+00");
	/* 'g' shortest switches to exponent at 1e6 and below 1e-4, as client_golang prints. */
	CHECK_STR(f(17560473, 'g'), "1.7560473e+07");
	CHECK_STR(f(8.8104e-05, 'g'), "8.8104e-05");
	CHECK_STR(f(123456, 'g'), "123456");
	CHECK_STR(f(1000000, 'g'), "1e+06");
	CHECK_STR(f(0.0001, 'g'), "0.0001");
	CHECK_STR(f(0.5, 'g'), "0.5");
	CHECK_STR(f(0.005, 'g'), "0.005");
	CHECK_STR(f(2.5, 'g'), "2.5");
}

TEST(round_trip_random_doubles)
{
	uint64_t x = 88172645463325252ULL;
	char d[24];
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		double v;
		memcpy(&v, &x, sizeof v);
		if (!isfinite(v) || v == 0)
			continue;
		int dp;
		int nd = float_shortest_digits(v, d, &dp);
		CHECK(nd >= 1 && nd <= 17);
		const char *s = f(v, 'e');
		CHECK(strtod(s, NULL) == v);
	}
}

/* ---- the formatter this one replaced (snprintf + strtod), kept as the reference ----
 * The correctly rounded 15-significant-digit decimal round-trips for every double whose shortest
 * representation has at most 15 digits; otherwise try 16, then 17 (always enough). Subnormals: search
 * from 1 digit. */
static int ref_shortest_digits(double v, char *d, int *dp)
{
	char tmp[40];
	double a = fabs(v);
	for (int prec = a < 2.2250738585072014e-308 ? 1 : 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, a);
		if (prec < 17 && strtod(tmp, NULL) != a)
			continue;
		int nd = 0;
		const char *p = tmp;
		for (; *p && *p != 'e'; p++)
			if (*p != '.')
				d[nd++] = *p;
		int exp = atoi(p + 1);
		while (nd > 1 && d[nd - 1] == '0')
			nd--;
		*dp = exp + 1;
		return nd;
	}
	return 0;
}

/* Values compared per test: ~1.9 million under the sanitizers (make test), three times that in the
 * optimised build (build/tests/fmt_test). */
#ifdef __SANITIZE_ADDRESS__
#define SCALE 1
#else
#define SCALE 3
#endif

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static double from_bits(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof v);
	return v;
}

static uint64_t to_bits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
	return b;
}

static long nshorter;

/* Same digits and decimal point as the reference, or fail naming the value. The one exception: a power of
 * two whose rounding interval holds a 16-digit decimal above it but not the correctly rounded one below
 * (the interval below a power of two is half as wide): the reference then fell back to 17 digits, Go and
 * this formatter print the 16 (counted in nshorter; see go_powers_of_two). */
static void same_digits(double v)
{
	if (!isfinite(v) || v == 0)
		return;
	char d[24], rd[24];
	int dp, rdp;
	int nd = float_shortest_digits(v, d, &dp);
	int rnd = ref_shortest_digits(v, rd, &rdp);
	if (nd == rnd && dp == rdp && memcmp(d, rd, (size_t)nd) == 0)
		return;
	if ((to_bits(v) & ((1ULL << 52) - 1)) == 0 && nd == 16 && rnd == 17 && dp == rdp) {
		char lit[40];
		snprintf(lit, sizeof lit, "0.%.*se%d", nd, d, dp);
		if (strtod(lit, NULL) == fabs(v) && memcmp(d, rd, 15) == 0) {
			nshorter++;
			return;
		}
	}
	TEST_FAILF("%.17g (bits %016llx): %.*s dp %d, reference %.*s dp %d", v,
	           (unsigned long long)to_bits(v), nd, d, dp, rnd, rd, rdp);
}

TEST(shortest_digits_equal_reference_random_bits)
{
	/* Every exponent, subnormals included: uniformly random bit patterns, both signs. */
	for (int i = 0; i < 1000000 * SCALE; i++)
		same_digits(from_bits(rng()));
	/* Subnormals only (exponent field 0). */
	for (int i = 0; i < 100000 * SCALE; i++)
		same_digits(from_bits(rng() & ((1ULL << 52) - 1)));
}

TEST(shortest_digits_equal_reference_typical_values)
{
	static const double scale[] = {1e-9, 1e-6, 1e-3, 1, 1e3, 1e6, 1e9, 1e15, 1e18, 1e21};
	for (int i = 0; i < 150000 * SCALE; i++) {
		uint64_t r = rng();
		/* integers of every size, below and above 2^53 */
		same_digits((double)(r >> (r % 64)));
		/* short decimals: n / 10^k */
		same_digits((double)(r % 100000000) / pow(10, (double)((r >> 40) % 23)));
		/* what queries compute: ratios, rates, means */
		same_digits((double)(r % 1000003) / (double)(1 + (r >> 32) % 997));
		same_digits((double)(r >> 11) / 9007199254740992.0 * scale[(r >> 3) % 10]);
	}
}

TEST(shortest_digits_equal_reference_edges)
{
	/* Every power of two (the rounding interval is asymmetric there) and its neighbours. */
	nshorter = 0;
	for (int e = -1074; e <= 1023; e++) {
		double p = ldexp(1, e);
		same_digits(p);
		same_digits(-p);
		same_digits(nextafter(p, 0));
		same_digits(nextafter(p, INFINITY));
	}
	CHECK_EQ_INT(nshorter, 2 * 46);
	/* The smallest subnormals, where several shortest decimals can round to the same double. */
	for (uint64_t c = 1; c <= 100000; c++)
		same_digits(from_bits(c));
	/* Powers of ten, their neighbours, and the largest doubles. */
	for (int e = -323; e <= 308; e++) {
		char lit[16];
		snprintf(lit, sizeof lit, "1e%d", e);
		double p = strtod(lit, NULL);
		same_digits(p);
		same_digits(nextafter(p, 0));
		same_digits(nextafter(p, INFINITY));
	}
	same_digits(1.7976931348623157e308);
	same_digits(2.2250738585072014e-308);
	same_digits(2.2250738585072009e-308);
	/* Integers near 2^53 and multiples of powers of ten. */
	for (uint64_t i = 0; i < 2000; i++) {
		same_digits((double)((1ULL << 53) - i));
		same_digits((double)((1ULL << 53) + 2 * i));
		same_digits((double)(i * 1000000000ULL));
	}
}

TEST(go_powers_of_two)
{
	/* Where the old formatter printed 17 digits: Prometheus 2.42's promtool tsdb dump (Go's %g) prints
	 * these. */
	CHECK_STR(f(ldexp(1, -24), 'g'), "5.960464477539063e-08");
	CHECK_STR(f(ldexp(1, -1017), 'g'), "7.120236347223045e-307");
	CHECK_STR(f(ldexp(1, -44), 'g'), "5.684341886080802e-14");
	CHECK_STR(f(ldexp(1, 89), 'g'), "6.189700196426902e+26");
	CHECK_STR(f(ldexp(1, 275), 'g'), "6.070840288205404e+82");
	CHECK_STR(pv(ldexp(1, -24)), "5.960464477539063e-08");
}

/* Whole outputs in every layout the API and the metrics use, against the reference digits laid out as
 * before. */
static void ref_layout(buf_t *b, double v, char fmt)
{
	if (isnan(v)) {
		buf_puts(b, "NaN");
		return;
	}
	if (isinf(v)) {
		buf_puts(b, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (signbit(v))
		buf_putc(b, '-');
	if (v == 0) {
		buf_puts(b, fmt == 'e' ? "0e+00" : "0");
		return;
	}
	char d[24];
	int dp;
	int nd = ref_shortest_digits(v, d, &dp);
	if (fmt == 'g')
		fmt = (dp - 1 < -4 || dp - 1 >= 6) ? 'e' : 'f';
	if (fmt == 'e') {
		buf_putc(b, d[0]);
		if (nd > 1) {
			buf_putc(b, '.');
			buf_append(b, d + 1, (size_t)nd - 1);
		}
		int exp = dp - 1;
		buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
	} else if (dp <= 0) {
		buf_puts(b, "0.");
		for (int i = 0; i < -dp; i++)
			buf_putc(b, '0');
		buf_append(b, d, (size_t)nd);
	} else if (dp >= nd) {
		buf_append(b, d, (size_t)nd);
		for (int i = nd; i < dp; i++)
			buf_putc(b, '0');
	} else {
		buf_append(b, d, (size_t)dp);
		buf_putc(b, '.');
		buf_append(b, d + dp, (size_t)(nd - dp));
	}
}

TEST(layouts_equal_reference)
{
	buf_t got = BUF_INIT, want = BUF_INIT;
	static const double fixed[] = {0.0,     -0.0,   NAN,   INFINITY, -INFINITY, 1e-7, 1e21,   1e-6,
	                               9.99e20, 5e-324, 1e300, -1e-300,  123456,    1e6,  0.0001, 8.8104e-05};
	for (int i = 0; i < 50000 * SCALE + (int)ARRAY_LEN(fixed); i++) {
		double v = i < (int)ARRAY_LEN(fixed) ? fixed[i] : from_bits(rng());
		if (i % 2)
			v = (double)(rng() % 100000) / pow(10, (double)(rng() % 30)) * (i % 4 == 1 ? -1 : 1);
		const char fmts[] = {'e', 'f', 'g'};
		for (size_t k = 0; k < 3; k++) {
			buf_reset(&got);
			buf_reset(&want);
			buf_put_float(&got, v, fmts[k]);
			ref_layout(&want, v, fmts[k]);
			if (strcmp(got.p, want.p) != 0)
				TEST_FAILF("%.17g '%c': %s, reference %s", v, fmts[k], got.p, want.p);
		}
		double a = fabs(v);
		buf_reset(&got);
		buf_reset(&want);
		buf_put_prom_value(&got, v);
		ref_layout(&want, v, (v != 0 && (a < 1e-6 || a >= 1e21) && isfinite(v)) ? 'e' : 'f');
		if (strcmp(got.p, want.p) != 0)
			TEST_FAILF("%.17g prom value: %s, reference %s", v, got.p, want.p);
	}
	buf_release(&got);
	buf_release(&want);
}

static uint64_t pow10_of(int n)
{
	uint64_t p = 1;
	while (n-- > 0)
		p *= 10;
	return p;
}

/* fmt_prom_value builds its layouts in place with fixed-size copies: every branch (integers below and
 * above 2^53, 19-21 digit integers, 0.00000ddd, 16-17 digits below 10^7 with the point inserted into a
 * word at every position, other fractions of 8 and 9 digits either side of the copy width, 'e'), each
 * into a heap buffer of exactly FMT_PROM_VALUE_MAX bytes (ASan: no write past it), against
 * buf_put_float's 'e'/'f' layout of the same value. */
TEST(prom_value_layouts_in_place)
{
	static const double fixed[] = {1,
	                               -7,
	                               9007199254740991.0,
	                               9007199254740992.0,
	                               9007199254740994.0,
	                               -9223372036854775808.0,
	                               1e18,
	                               1.2345678901234567e18,
	                               1e19,
	                               1.8446744073709552e19,
	                               1e20,
	                               -9.999999999999999e20,
	                               9.99e20,
	                               1e21,
	                               1.12345678,
	                               1.123456789,
	                               12345678.123456789,
	                               123456789.12345678,
	                               -1234567.8901234567,
	                               0.1,
	                               0.12345678901234567,
	                               -0.000001234567890123456,
	                               1e-6,
	                               9.99999e-7,
	                               -1.5e-6,
	                               0.5,
	                               1e-300,
	                               -5e-324,
	                               1.7976931348623157e308};
	char *out = xmalloc(FMT_PROM_VALUE_MAX);
	buf_t want = BUF_INIT;
	uint64_t x = 0x243F6A8885A308D3ULL;
	for (int i = 0; i < 300000 * SCALE; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		double v;
		if (i < (int)ARRAY_LEN(fixed))
			v = fixed[i];
		else if (i % 4 == 0) /* 1 to 17 digits, point anywhere from 10^-8 to 10^22 */
			v = (double)(x % pow10_of((int)(x >> 59) % 17 + 1) + 1) /
			    pow(10, (double)((x >> 40) % 31) - 8);
		else if (i % 4 == 1) /* integers of up to 2^64 */
			v = (double)(x >> (x & 63));
		else if (i % 4 == 2 && i % 8 == 2) /* query-like ratios */
			v = (double)(x % 1000003) / (double)(1 + (x >> 32) % 997) *
			    ((x >> 20) % 2 ? 1e-3 : 1);
		else if (i % 4 ==
		         2) /* 16-17 digits from 10^-6 to 10^8 (the branch-free layouts, and around) */
			v = ldexp((double)(x >> 11), -53) * pow(10, (double)((x >> 3) % 14) - 5);
		else
			v = from_bits(x);
		if (x & (1ULL << 31))
			v = -v;
		double a = fabs(v);
		size_t n = fmt_prom_value(out, v);
		buf_reset(&want);
		buf_put_float(&want, v, (v != 0 && (a < 1e-6 || a >= 1e21) && isfinite(v)) ? 'e' : 'f');
		if (n != want.n || memcmp(out, want.p, n) != 0)
			TEST_FAILF("%.17g: %.*s, want %s", v, (int)n, out, want.p);
	}
	CHECK_STR(pv(1e20), "100000000000000000000");
	CHECK_STR(pv(-1.5e-6), "-0.0000015");
	CHECK_STR(pv(1.123456789), "1.123456789");
	CHECK_STR(pv(9007199254740993.0), "9007199254740992");
	/* 16 and 17 digits, the point before them or after 1 to 7 of them */
	CHECK_STR(pv(2.0 / 3 * 1e6), "666666.6666666666");
	CHECK_STR(pv(1.0 / 7), "0.14285714285714285");
	CHECK_STR(pv(-1.0 / 7 * 1e-5), "-0.0000014285714285714286");
	CHECK_STR(pv(12.345678901234567), "12.345678901234567");
	CHECK_STR(pv(-1234567.8901234567), "-1234567.8901234567");
	CHECK_STR(pv(9999999.999999998), "9999999.999999998");
	CHECK_STR(pv(0.1 + 0.7), "0.7999999999999999");
	CHECK_STR(pv(2.0 / 3 * 1e-6), "6.666666666666666e-07");
	buf_release(&want);
	free(out);
}

/* Values as queries produce them (rates, ratios, counters, ulps around powers of ten): every answer
 * round-trips, no shorter digit string does (rounding one place shorter never gives the value back),
 * and of its length it is the correctly rounded decimal. */
TEST(shortest_query_values)
{
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	char d[24], s[48];
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		double v;
		switch (i % 5) {
		case 0:
			v = (double)(x % 100000) / (double)(1 + (x >> 20) % 997);
			break;
		case 1:
			v = (double)(x % 1000000) / 1000.0;
			break;
		case 2:
			v = ldexp((double)(x >> 11), -53) * pow(10, (double)((x >> 3) % 22) - 7);
			break;
		case 3:
			v = (double)(x % 10000) * 0.1;
			break;
		default: /* a few ulps around a power of ten */
			v = pow(10, (double)((x >> 5) % 22) - 6);
			for (int k = (int)(x % 7) - 3; k; k += k > 0 ? -1 : 1)
				v = nextafter(v, k > 0 ? INFINITY : 0);
			break;
		}
		if (v == 0)
			continue;
		int dp, nd = float_shortest_digits(v, d, &dp);
		snprintf(s, sizeof s, "0.%.*se%d", nd, d, dp);
		CHECK(strtod(s, NULL) == v);
		if (nd > 1) {
			snprintf(s, sizeof s, "%.*e", nd - 2, v); /* the nearest decimal one digit shorter */
			CHECK(strtod(s, NULL) != v);
		}
		/* and of that length the nearest one: the correctly rounded decimal */
		snprintf(s, sizeof s, "%.*e", nd - 1, v);
		char want[24];
		int nw = 0;
		for (const char *q = s; *q && *q != 'e'; q++)
			if (*q != '.')
				want[nw++] = *q;
		CHECK(nw == nd && memcmp(want, d, (size_t)nd) == 0);
	}
	CHECK_STR(f(0.3, 'f'), "0.3");
	CHECK_STR(f(0.09999999999999999, 'f'), "0.09999999999999999");
	CHECK_STR(f(0.9999999999999999, 'f'), "0.9999999999999999");
	CHECK_STR(f(1.0 / 60, 'f'), "0.016666666666666666");
	CHECK_STR(f(999999999999999.0, 'f'), "999999999999999");
	CHECK_STR(f(1e15, 'f'), "1000000000000000");
	CHECK_STR(f(1e-7, 'e'), "1e-07");
	CHECK_STR(f(123456.789, 'f'), "123456.789");
}

TEST(timestamps)
{
	CHECK_STR(ts(1700000600000), "1700000600");
	CHECK_STR(ts(1700000600500), "1700000600.500");
	CHECK_STR(ts(300), "0.300");
	CHECK_STR(ts(-1500), "-1.500");
	CHECK_STR(ts(0), "0");
	CHECK_STR(js(1700000600500), "1700000600.5");
	CHECK_STR(js(1700000600123), "1700000600.123");
	CHECK_STR(js(1000), "1");
	CHECK_STR(js(0), "0");
}

TEST_MAIN()
