#include "test.h"

#include <stdio.h>
#include <unistd.h>

#include "base/log.h"

static char out[4096];

static void capture(void (*fn)(void))
{
	int fds[2];
	if (pipe(fds))
		abort();
	log_set_fd(fds[1]);
	fn();
	log_set_fd(-1);
	close(fds[1]);
	ssize_t n = read(fds[0], out, sizeof out - 1);
	out[n > 0 ? n : 0] = 0;
	close(fds[0]);
}

static void emit(void)
{
	log_info("hello world", "addr", "0.0.0.0:10902", "q", "a=\"b\"", "empty", "", "nil", NULL);
	log_debug("hidden");
}

TEST(logfmt_quotes_and_levels)
{
	err_t err;
	CHECK_EQ_INT(log_setup("info", "logfmt", &err), 0);
	capture(emit);
	CHECK(strstr(out, "level=info") != NULL);
	CHECK(strstr(out, "caller=log_test.c:") != NULL);
	CHECK(strstr(out, "msg=\"hello world\"") != NULL);
	CHECK(strstr(out, " addr=0.0.0.0:10902") != NULL);
	CHECK(strstr(out, " q=\"a=\\\"b\\\"\"") != NULL);
	CHECK(strstr(out, " empty=\"\"") != NULL);
	CHECK(strstr(out, "hidden") == NULL);
	CHECK(strncmp(out, "ts=", 3) == 0);
}

TEST(json_format)
{
	err_t err;
	CHECK_EQ_INT(log_setup("debug", "json", &err), 0);
	capture(emit);
	CHECK(strstr(out, "{\"ts\":\"") == out);
	CHECK(strstr(out, "\"msg\":\"hello world\"") != NULL);
	CHECK(strstr(out, "\"q\":\"a=\\\"b\\\"\"") != NULL);
	CHECK(strstr(out, "hidden") != NULL);
	CHECK_EQ_INT(log_setup("info", "logfmt", &err), 0);
}

TEST(bad_setup)
{
	err_t err;
	CHECK_EQ_INT(log_setup("verbose", "logfmt", &err), ERR_INVALID);
	CHECK(strstr(err.msg, "verbose") != NULL);
	CHECK_EQ_INT(log_setup("info", "xml", &err), ERR_INVALID);
}

TEST_MAIN()
