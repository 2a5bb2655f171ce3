/* Unit tests for promql_expr_pretty (format_query's layout). Expected outputs are what a real
 * Prometheus 2.42 answers on /api/v1/format_query for the same input (tests/integration/
 * promql_format_query.py checks thousands more against the binary). */
#include "test.h"

#include "base/alloc.h"
#include "base/arena.h"
#include "promql/ast.h"

/* A run of n copies of 'a' (n < 256), in a static buffer per slot. */
static const char *aa(int slot, size_t n)
{
	static char s[4][256];
	memset(s[slot], 'a', n);
	s[slot][n] = 0;
	return s[slot];
}

static void pretty_is(const char *q, const char *want)
{
	arena_t a;
	arena_init(&a, 0);
	promql_expr_t *e;
	err_t err = {0};
	if (promql_parse(&a, q, strlen(q), &e, &err)) {
		arena_release(&a);
		TEST_FAILF("parse %s: %s", q, err.msg);
	}
	buf_t b = BUF_INIT;
	promql_expr_pretty(&b, e);
	const char *got = b.p ? b.p : "";
	bool ok = strcmp(got, want) == 0;
	if (!ok)
		fprintf(stderr, "pretty %s:\n--- got\n%s\n--- want\n%s\n", q, got, want);
	buf_release(&b);
	arena_release(&a);
	CHECK(ok);
}

/* Concatenation into one of two static buffers (query and expectation), so a failing check leaks nothing. */
static char *cat(const char *a, const char *b, const char *c, const char *d, const char *e)
{
	static char s[2][1024];
	static int slot;
	slot ^= 1;
	snprintf(s[slot], sizeof s[slot], "%s%s%s%s%s", a, b, c, d, e);
	return s[slot];
}

TEST(short_expressions_stay_on_one_line)
{
	pretty_is("sum(rate(x[5m]))", "sum(rate(x[5m]))");
	pretty_is("sum(rate(x[5m])) by (job)", "sum by (job) (rate(x[5m]))");
	pretty_is("a / on(job) group_left b", "a / on (job) group_left () b");
	pretty_is("time()", "time()");
	pretty_is("-Inf ^ 2", "-+Inf ^ 2"); /* unary minus over Inf ^ 2, as 2.42 prints it */
	pretty_is("+Inf ^ a", "++Inf ^ a");
}

TEST(limit_is_100_bytes_without_indentation)
{
	char *q = cat("sum(", aa(0, 95), ")", "", "");
	pretty_is(q, q); /* exactly 100 */
	q = cat("sum(", aa(0, 96), ")", "", "");
	char *w = cat("sum(\n  ", aa(0, 96), "\n)", "", "");
	pretty_is(q, w);
	/* the inner call is 100 bytes: it stays whole although indented */
	q = cat("topk(1, abs(", aa(0, 95), "))", "", "");
	w = cat("topk(\n  1,\n  abs(", aa(0, 95), ")\n)", "", "");
	pretty_is(q, w);
}

TEST(aggregations_and_calls)
{
	pretty_is("topk(5, sum by (job, instance, aaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbbbbbbb) "
		  "(rate(http_requests_total{job=\"api\"}[5m])))",
		  "topk(\n"
		  "  5,\n"
		  "  sum by (job, instance, aaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbbbbbbbbbb) (\n"
		  "    rate(http_requests_total{job=\"api\"}[5m])\n"
		  "  )\n"
		  ")");
	char *q = cat("sum without () (", aa(0, 100), ")", "", "");
	char *w = cat("sum without () (\n  ", aa(0, 100), "\n)", "", "");
	pretty_is(q, w);
	q = cat("sum by () (", aa(0, 100), ")", "", "");
	w = cat("sum(\n  ", aa(0, 100), "\n)", "", "");
	pretty_is(q, w);
	pretty_is("label_replace(http_requests_total_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa{job=\"api\"}, \"dst\", "
		  "\"replacement-$1\", \"src\", \"(.*)\")",
		  "label_replace(\n"
		  "  http_requests_total_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa{job=\"api\"},\n"
		  "  \"dst\",\n"
		  "  \"replacement-$1\",\n"
		  "  \"src\",\n"
		  "  \"(.*)\"\n"
		  ")");
}

TEST(binary_operators)
{
	pretty_is("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa + bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb * cccccccccccccccccccccccccccccc + "
		  "dddddddddddddddddd",
		  "    aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
		  "  +\n"
		  "    bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb * cccccccccccccccccccccccccccccc\n"
		  "+\n"
		  "  dddddddddddddddddd");
	char *q = cat(aa(0, 50), " > bool on (x) group_right (y, z) ", aa(1, 50), "", "");
	char *w = cat("  ", aa(0, 50), "\n> bool on (x) group_right (y, z)\n  ", aa(1, 50), "");
	pretty_is(q, w);
	q = cat(aa(0, 50), " * ignoring (b) group_left ", aa(1, 50), "", "");
	w = cat("  ", aa(0, 50), "\n* ignoring (b) group_left ()\n  ", aa(1, 50), "");
	pretty_is(q, w);
	q = cat(aa(0, 50), " + ignoring () ", aa(1, 50), "", "");
	w = cat("  ", aa(0, 50), "\n+\n  ", aa(1, 50), "");
	pretty_is(q, w);
}

TEST(parentheses_and_unary)
{
	char *q = cat("(", aa(0, 60), " ^ ", aa(1, 60), ")");
	char *w = cat("(\n    ", aa(0, 60), "\n  ^\n    ", aa(1, 60), "\n)");
	pretty_is(q, w);
	/* a unary operator is glued to its operand's first line, whose indentation is dropped */
	q = cat("-", aa(0, 60), " ^ ", aa(1, 60), "");
	w = cat("-", aa(0, 60), "\n^\n  ", aa(1, 60), "");
	pretty_is(q, w);
	q = cat("sum(-", aa(0, 60), " ^ ", aa(1, 60), ")");
	w = cat("sum(\n  -", aa(0, 60), "\n  ^\n    ", aa(1, 60), "\n)");
	pretty_is(q, w);
	q = cat("-abs(", aa(0, 100), ")", "", "");
	w = cat("-abs(\n  ", aa(0, 100), "\n)", "", "");
	pretty_is(q, w);
}

TEST(subqueries)
{
	pretty_is("max_over_time(rate(http_requests_total_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa{job=\"api\",instance=\"aaaaaaaaaaaaaaaaa\"}"
		  "[5m])[1h:1m] offset 5m)",
		  "max_over_time(\n"
		  "  rate(\n"
		  "    http_requests_total_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa{instance=\"aaaaaaaaaaaaaaaaa\",job=\"api\"}[5m]\n"
		  "  )[1h:1m] offset 5m\n"
		  ")");
	/* a subquery that fits on a line is not indented (2.42) */
	char *q = cat("predict_linear(x[5m:1m], scalar(sum(", aa(0, 80), ")))", "", "");
	char *w = cat("predict_linear(\nx[5m:1m],\n  scalar(sum(", aa(0, 80), "))\n)", "", "");
	pretty_is(q, w);
	q = cat("sum(", aa(0, 100), ")[5m:]", "", "");
	w = cat("sum(\n  ", aa(0, 100), "\n)[5m:]", "", "");
	pretty_is(q, w);
}

TEST(selectors_and_literals_are_never_split)
{
	char *q = cat(aa(0, 100), "[5m] @ 100 offset 5m", "", "", "");
	char *w = cat(aa(0, 100), "[5m] @ 100.000 offset 5m", "", "", "");
	pretty_is(q, w);
	q = cat("\"", aa(0, 120), "\"", "", "");
	pretty_is(q, q);
	pretty_is("123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890",
		  "1.2345678901234568e+119");
	q = cat("sum(", aa(0, 100), "{x=\"1\"} offset -5m @ end())", "", "");
	w = cat("sum(\n  ", aa(0, 100), "{x=\"1\"} @ end() offset -5m\n)", "", "");
	pretty_is(q, w);
}

TEST_MAIN()
