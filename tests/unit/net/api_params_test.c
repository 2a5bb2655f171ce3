#include "test.h"

#include "net/api_params.h"

TEST(times)
{
	int64_t ms;
	err_t err;
	CHECK(api_parse_time(STR("1700000000.5"), &ms, &err) == 0 && ms == 1700000000500);
	CHECK(api_parse_time(STR("1700000000.1234"), &ms, &err) == 0 && ms == 1700000000123);
	CHECK(api_parse_time(STR("1700000000.9996"), &ms, &err) == 0 && ms == 1700000001000);
	CHECK(api_parse_time(STR("-1.5"), &ms, &err) == 0 && ms == -1500);
	CHECK(api_parse_time(STR("2023-11-14T22:13:20Z"), &ms, &err) == 0 && ms == 1700000000000);
	CHECK(api_parse_time(STR("-292273086-05-16T16:47:06Z"), &ms, &err) == 0 && ms == API_MIN_TIME_MS);
	CHECK(api_parse_time(STR("292277025-08-18T07:12:54.999999999Z"), &ms, &err) == 0 && ms == API_MAX_TIME_MS);
	CHECK(api_parse_time(STR("abc"), &ms, &err) == ERR_INVALID);
	CHECK_STR(err.msg, "cannot parse \"abc\" to a valid timestamp");
	CHECK(api_param_time(STR("abc"), "time", 0, &ms, &err) == ERR_INVALID);
	CHECK_STR(err.msg, "invalid parameter \"time\": Invalid time value for 'time': cannot parse \"abc\" to a "
			   "valid timestamp");
	CHECK(api_param_time(STR(""), "start", 42, &ms, &err) == 0 && ms == 42);
}

TEST(durations)
{
	int64_t ms;
	err_t err;
	CHECK(api_parse_duration(STR("15"), &ms, &err) == 0 && ms == 15000);
	CHECK(api_parse_duration(STR("0.5"), &ms, &err) == 0 && ms == 500);
	CHECK(api_parse_duration(STR("1m30s"), &ms, &err) == 0 && ms == 90000);
	CHECK(api_parse_duration(STR("x"), &ms, &err) == ERR_INVALID);
	CHECK_STR(err.msg, "cannot parse \"x\" to a valid duration");
	CHECK(api_parse_duration(STR("1e300"), &ms, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "overflows int64") != NULL);
}

TEST(range_validation_messages)
{
	int64_t s, e, st;
	err_t err;
	CHECK(api_range_params(STR("0"), STR("3600"), STR("15s"), &s, &e, &st, &err) == 0);
	CHECK(s == 0 && e == 3600000 && st == 15000);
	CHECK(api_range_params(STR("10"), STR("5"), STR("1"), &s, &e, &st, &err) == ERR_INVALID);
	CHECK_STR(err.msg, "invalid parameter \"end\": end timestamp must not be before start time");
	CHECK(api_range_params(STR("0"), STR("5"), STR("0"), &s, &e, &st, &err) == ERR_INVALID);
	CHECK_STR(err.msg, "invalid parameter \"step\": zero or negative query resolution step widths are not "
			   "accepted. Try a positive integer");
	CHECK(api_range_params(STR("0"), STR("11001"), STR("1"), &s, &e, &st, &err) == ERR_INVALID);
	CHECK_STR(err.msg, "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
			   "resolution (?step=XX)");
	CHECK(api_range_params(STR("0"), STR("11000"), STR("1"), &s, &e, &st, &err) == 0);
	CHECK(api_range_params(STR("x"), STR("1"), STR("1"), &s, &e, &st, &err) == ERR_INVALID);
	CHECK_STR(err.msg, "invalid parameter \"start\": cannot parse \"x\" to a valid timestamp");
}

TEST_MAIN()
