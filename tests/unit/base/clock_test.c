#include "test.h"

#include "base/clock.h"

static const char *rfc(int64_t ms)
{
	static buf_t b = BUF_INIT;
	buf_reset(&b);
	buf_put_rfc3339_ms(&b, ms);
	return b.p;
}

TEST(format)
{
	CHECK_STR(rfc(0), "1970-01-01T00:00:00.000Z");
	CHECK_STR(rfc(1700000600123), "2023-11-14T22:23:20.123Z");
	CHECK_STR(rfc(-1), "1969-12-31T23:59:59.999Z");
	CHECK_STR(rfc(951782400000), "2000-02-29T00:00:00.000Z");
}

TEST(parse)
{
	int64_t ms;
	CHECK(rfc3339_parse_ms(STR("2023-11-14T22:23:20.123Z"), &ms) && ms == 1700000600123);
	CHECK(rfc3339_parse_ms(STR("2023-11-14T22:23:20Z"), &ms) && ms == 1700000600000);
	CHECK(rfc3339_parse_ms(STR("2023-11-14T23:23:20.5+01:00"), &ms) && ms == 1700000600500);
	CHECK(rfc3339_parse_ms(STR("2023-11-14T22:23:20.123456789Z"), &ms) && ms == 1700000600123);
	CHECK(rfc3339_parse_ms(STR("1969-12-31T23:59:59Z"), &ms) && ms == -1000);
	CHECK(!rfc3339_parse_ms(STR("2023-02-29T00:00:00Z"), &ms));
	CHECK(!rfc3339_parse_ms(STR("2023-11-14 22:23:20Z"), &ms));
	CHECK(!rfc3339_parse_ms(STR("2023-11-14T22:23:20"), &ms));
	CHECK(!rfc3339_parse_ms(STR("2023-11-14T22:23:20.Z"), &ms));
	CHECK(!rfc3339_parse_ms(STR("abc"), &ms));
}

TEST(clocks_move_forward)
{
	uint64_t a = clock_mono_ns();
	int64_t w = clock_now_ms();
	CHECK(w > 1600000000000LL);
	uint64_t b = clock_mono_ns();
	CHECK(b >= a);
	CHECK(clock_since_s(a) >= 0);
}

TEST_MAIN()
