#include "test.h"

#include "base/duration.h"

static int64_t parse(const char *s)
{
	int64_t ms = -12345;
	err_t err;
	if (duration_parse(str_c(s), &ms, &err))
		return -1;
	return ms;
}

static const char *fmt(int64_t ms)
{
	static buf_t b = BUF_INIT;
	buf_reset(&b);
	duration_format(&b, ms);
	return b.p;
}

TEST(parse_valid)
{
	CHECK_EQ_INT(parse("1h30m"), 90 * 60 * 1000);
	CHECK_EQ_INT(parse("2d"), 2 * 86400000LL);
	CHECK_EQ_INT(parse("1w"), 7 * 86400000LL);
	CHECK_EQ_INT(parse("1y"), 365 * 86400000LL);
	CHECK_EQ_INT(parse("500ms"), 500);
	CHECK_EQ_INT(parse("0"), 0);
	CHECK_EQ_INT(parse("0s"), 0);
	CHECK_EQ_INT(parse("1m1s1ms"), 61001);
	CHECK_EQ_INT(parse("5m"), 300000);
	CHECK_EQ_INT(parse("1y2w3d4h5m6s7ms"),
		     365 * 86400000LL + 14 * 86400000LL + 3 * 86400000LL + 4 * 3600000 + 5 * 60000 + 6007);
}

TEST(parse_errors)
{
	const char *bad[] = {"", "1", "h", "1h1h", "1m1h", "1.5h", "-1h", "1hh", "1 h", "1x", "10msx", "1s500",
			     "99999999999999999999y"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse(bad[i]) != -1)
			TEST_FAILF("\"%s\" should not parse", bad[i]);
	}
	err_t err;
	int64_t ms;
	CHECK_EQ_INT(duration_parse(STR("abc"), &ms, &err), ERR_INVALID);
	CHECK_STR(err.msg, "not a valid duration string: \"abc\"");
}

TEST(format_like_prometheus)
{
	CHECK_STR(fmt(0), "0s");
	CHECK_STR(fmt(90 * 60 * 1000), "1h30m");
	CHECK_STR(fmt(14 * 86400000LL), "2w");
	CHECK_STR(fmt(90 * 86400000LL), "90d");
	CHECK_STR(fmt(365 * 86400000LL), "1y");
	CHECK_STR(fmt(500), "500ms");
	CHECK_STR(fmt(61001), "1m1s1ms");
	CHECK_STR(fmt(300000), "5m");
}

TEST_MAIN()
