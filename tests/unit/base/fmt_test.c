#include "test.h"

#include <math.h>

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
