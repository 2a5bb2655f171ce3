#include "test.h"

#include "base/alloc.h"
#include "base/flags.h"

static char *addr, *mode;
static bool verbose, on;
static int64_t n, dur, bytes;
static double ratio;
static strlist_t eps;

static const flag_def_t defs[] = {
	{"http-address", FLAG_STRING, &addr, "0.0.0.0:10902", "listen"},
	{"verbose", FLAG_BOOL, &verbose, "false", "v"},
	{"enabled", FLAG_BOOL, &on, "true", "on"},
	{"count", FLAG_INT, &n, "3", "n"},
	{"ratio", FLAG_FLOAT, &ratio, "0.5", "r"},
	{"timeout", FLAG_DURATION, &dur, "2m", "t"},
	{"size", FLAG_BYTES, &bytes, "512MiB", "s"},
	{"endpoint", FLAG_STRINGS, &eps, NULL, "e"},
	{"mode", FLAG_ENUM, &mode, "a", "m", "a|b|c"},
};

static int parse(int argc, char **argv, flags_result_t *r, err_t *err)
{
	return flags_parse(defs, ARRAY_LEN(defs), argc, argv, r, err);
}

TEST(defaults)
{
	flags_result_t r;
	err_t err;
	CHECK_EQ_INT(parse(0, NULL, &r, &err), 0);
	CHECK_STR(addr, "0.0.0.0:10902");
	CHECK(!verbose && on);
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(dur, 120000);
	CHECK_EQ_INT(bytes, 512LL << 20);
	CHECK_EQ_INT(eps.n, 0);
	CHECK_STR(mode, "a");
	free(r.pos);
}

TEST(values_forms_and_positionals)
{
	char *argv[] = {"--http-address=127.0.0.1:1", "--verbose", "--no-enabled", "--count", "7", "pos1",
			"--endpoint=a:1", "--endpoint", "b:2", "--timeout=1h30m", "--size=1GB", "--mode=c",
			"--ratio=0.25", "--", "--not-a-flag"};
	flags_result_t r;
	err_t err;
	CHECK_EQ_INT(parse(ARRAY_LEN(argv), argv, &r, &err), 0);
	CHECK_STR(addr, "127.0.0.1:1");
	CHECK(verbose && !on);
	CHECK_EQ_INT(n, 7);
	CHECK_EQ_INT(eps.n, 2);
	CHECK_STR(eps.v[1], "b:2");
	CHECK_EQ_INT(dur, 5400000);
	CHECK_EQ_INT(bytes, 1000000000);
	CHECK_STR(mode, "c");
	CHECK(ratio == 0.25);
	CHECK_EQ_INT(r.npos, 2);
	CHECK_STR(r.pos[0], "pos1");
	CHECK_STR(r.pos[1], "--not-a-flag");
	CHECK(flags_given(defs, ARRAY_LEN(defs), "count"));
	CHECK(!flags_given(defs, ARRAY_LEN(defs), "http-addressx"));
	free(r.pos);
}

TEST(errors_name_the_flag)
{
	struct {
		char *arg;
		const char *want;
	} cases[] = {
		{"--bogus=1", "--bogus"},       {"--count=x", "--count"}, {"--timeout=5", "--timeout"},
		{"--verbose=maybe", "--verbose"}, {"--mode=z", "--mode"},   {"-x", "-x"},
		{"--size=12XB", "--size"},       {"--count", "--count"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *argv[] = {cases[i].arg};
		flags_result_t r;
		err_t err = {0};
		CHECK(parse(1, argv, &r, &err) != 0);
		(void)i;
		if (!strstr(err.msg, cases[i].want))
			TEST_FAILF("%s: message \"%s\" does not name the flag", cases[i].arg, err.msg);
		free(r.pos);
	}
}

TEST(help)
{
	char *argv[] = {"--help"};
	flags_result_t r;
	err_t err;
	CHECK_EQ_INT(parse(1, argv, &r, &err), 0);
	CHECK(r.help);
	free(r.pos);
	FILE *f = tmpfile();
	flags_usage(f, "strata test [flags]", "Testing.", defs, ARRAY_LEN(defs));
	CHECK(ftell(f) > 100);
	fclose(f);
}

TEST_MAIN()
