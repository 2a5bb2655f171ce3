/* Unit tests for the PromQL parser and printer: round trips for every node type, errors. */
#include "test.h"

#include "base/alloc.h"
#include "base/arena.h"
#include "promql/ast.h"

/* Parse q, print it, compare with want (NULL = same as q), and check the print re-parses to the same print. */
static void roundtrip(const char *q, const char *want)
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
	promql_expr_format(&b, e);
	char got[1024];
	snprintf(got, sizeof got, "%s", b.p);
	promql_expr_t *e2;
	int rc = promql_parse(&a, b.p, b.n, &e2, &err);
	buf_t b2 = BUF_INIT;
	if (!rc)
		promql_expr_format(&b2, e2);
	char got2[1024];
	snprintf(got2, sizeof got2, "%s", b2.p);
	buf_release(&b);
	buf_release(&b2);
	arena_release(&a);
	if (strcmp(got, want ? want : q))
		TEST_FAILF("print %s: got %s want %s", q, got, want ? want : q);
	if (rc || strcmp(got, got2))
		TEST_FAILF("reparse of %s: %s", got, rc ? err.msg : got2);
}

static void parse_error(const char *q, const char *msg)
{
	arena_t a;
	arena_init(&a, 0);
	promql_expr_t *e;
	err_t err = {0};
	int rc = promql_parse(&a, q, strlen(q), &e, &err);
	arena_release(&a);
	if (rc == 0)
		TEST_FAILF("%s: expected error %s", q, msg);
	if (rc != ERR_INVALID || strcmp(err.msg, msg))
		TEST_FAILF("%s: got error \"%s\" want \"%s\"", q, err.msg, msg);
}

TEST(roundtrip_literals)
{
	roundtrip("1", NULL);
	roundtrip("-1.5", NULL);
	roundtrip("0x1f", "31");
	roundtrip("1e+06", "1e+06");
	roundtrip("1e21", "1e+21");
	roundtrip("Inf", "+Inf");
	roundtrip("-inf", "-Inf");
	roundtrip("NaN", NULL);
	roundtrip("\"a\\nb\"", NULL);
	roundtrip("'single'", "\"single\"");
	roundtrip("`raw\\n`", "\"raw\\\\n\"");
	roundtrip("\"\\u00e9\\x41\\101\"", "\"éAA\"");
}

TEST(roundtrip_selectors)
{
	roundtrip("foo", NULL);
	roundtrip("foo{a=\"b\"}", NULL);
	roundtrip("foo{b!=\"x\",a=~\"y.*\",c!~\"z\"}", "foo{a=~\"y.*\",b!=\"x\",c!~\"z\"}");
	roundtrip("{__name__=\"foo\",a=\"b\",}", "{__name__=\"foo\",a=\"b\"}");
	roundtrip("foo[5m]", NULL);
	roundtrip("foo[1h30m]", NULL);
	roundtrip("foo offset 5m", NULL);
	roundtrip("foo offset -5m", NULL);
	roundtrip("foo[5m] offset 1w", NULL);
	roundtrip("foo @ 100", "foo @ 100.000");
	roundtrip("foo @ 1.5 offset 1m", "foo @ 1.500 offset 1m");
	roundtrip("foo offset 1m @ start()", "foo @ start() offset 1m");
	roundtrip("foo[1m] @ end()", NULL);
	roundtrip("by{on=\"x\"}", NULL);
	roundtrip("offset offset 1m", NULL);
	parse_error("on", "1:1: parse error: unexpected <on>");
	parse_error("sum(,)", "1:5: parse error: unexpected \",\" in aggregation");
	parse_error("abs(,)", "1:5: parse error: unexpected \",\"");
	parse_error("foo \"abcdefghijklmnop\"", "1:5: parse error: unexpected string \"\\\"abcdefghi\"...");
	parse_error("foo{a=\"\\x4g\"}", "1:7: parse error: illegal character U+0067 'g' in escape sequence");
	parse_error("foo{a=\"\\q\"}", "1:7: parse error: unknown escape sequence U+0071 'q'");
	parse_error("foo offset 0s", "1:12: parse error: duration must be greater than 0");
	parse_error("foo[5m:0s]", "1:8: parse error: duration must be greater than 0");
}

TEST(roundtrip_subquery_and_calls)
{
	roundtrip("rate(foo[5m])[30m:1m]", NULL);
	roundtrip("foo[5m:]", NULL);
	roundtrip("max_over_time(rate(foo[1m])[1h:5m] offset 10m)", NULL);
	roundtrip("sum_over_time(foo[10m:1m] @ 100 offset 5m)", "sum_over_time(foo[10m:1m] @ 100.000 offset 5m)");
	roundtrip("label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")", NULL);
	roundtrip("label_join(up, \"a\", \",\", \"b\", \"c\")", NULL);
	roundtrip("round(foo, 0.5)", NULL);
	roundtrip("time()", NULL);
	roundtrip("day_of_week()", NULL);
	roundtrip("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))", NULL);
}

TEST(roundtrip_aggregations)
{
	roundtrip("sum(foo)", NULL);
	roundtrip("sum by (a, b) (foo)", NULL);
	roundtrip("sum(foo) by (a)", "sum by (a) (foo)");
	roundtrip("avg without (a) (foo)", NULL);
	roundtrip("count without () (foo)", NULL);
	roundtrip("sum by () (foo)", "sum(foo)");
	roundtrip("topk(5, foo)", NULL);
	roundtrip("bottomk by (x) (2, foo)", NULL);
	roundtrip("quantile(0.9, foo)", NULL);
	roundtrip("count_values(\"v\", foo)", NULL);
	roundtrip("SUM(foo)", "sum(foo)");
	roundtrip("group(foo)", NULL);
	roundtrip("stddev(foo) + stdvar(bar)", NULL);
}

TEST(roundtrip_binary_and_unary)
{
	roundtrip("a + b * c", NULL);
	roundtrip("(a + b) * c", NULL);
	roundtrip("a ^ b ^ c", NULL);
	roundtrip("-a", NULL);
	roundtrip("-(a)", NULL);
	roundtrip("+a", NULL);
	roundtrip("a > bool 1", NULL);
	roundtrip("1 == bool 1", NULL);
	roundtrip("a and b", NULL);
	roundtrip("a AND b", "a and b");
	roundtrip("a or b unless c", NULL);
	roundtrip("a / on (x, y) b", NULL);
	roundtrip("a / on() b", "a / on () b");
	roundtrip("a * ignoring (x) group_left (y) b", NULL);
	roundtrip("a * on (x) group_right b", "a * on (x) group_right () b");
	roundtrip("a atan2 b", NULL);
	roundtrip("a % b - c / d", NULL);
	roundtrip("foo # comment\n + bar", "foo + bar");
}

TEST(precedence)
{
	/* -2^2 is -(2^2); printed form keeps the tree */
	arena_t a;
	arena_init(&a, 0);
	promql_expr_t *e;
	err_t err = {0};
	CHECK(promql_parse(&a, "-2 ^ 2", 6, &e, &err) == 0);
	CHECK(e->kind == PROMQL_UNARY);
	CHECK(promql_parse(&a, "a - b - c", 9, &e, &err) == 0);
	CHECK(e->kind == PROMQL_BINARY && e->u.bin.lhs->kind == PROMQL_BINARY);
	CHECK(promql_parse(&a, "a ^ b ^ c", 9, &e, &err) == 0);
	CHECK(e->kind == PROMQL_BINARY && e->u.bin.rhs->kind == PROMQL_BINARY);
	CHECK(promql_parse(&a, "a or b and c", 12, &e, &err) == 0);
	CHECK(e->u.bin.op == PROMQL_OP_OR);
	CHECK(promql_parse(&a, "1 + 2 > bool 2 * 1", 18, &e, &err) == 0);
	CHECK(e->u.bin.op == PROMQL_OP_GTR);
	arena_release(&a);
}

TEST(errors_with_positions)
{
	parse_error("sum(", "1:5: parse error: unclosed left parenthesis");
	parse_error("foo)", "1:4: parse error: unexpected right parenthesis ')'");
	parse_error("", "1:1: parse error: no expression found in input");
	parse_error("{__name__=~\".*\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher");
	parse_error("foo{a=\"b\"", "1:10: parse error: unexpected end of input inside braces");
	parse_error("rate(foo)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector");
	parse_error("abs(foo[5m])", "1:5: parse error: expected type instant vector in call to function \"abs\", got range vector");
	parse_error("nosuch(foo)", "1:1: parse error: unknown function with name \"nosuch\"");
	parse_error("label_join(a, \"b\")", "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 2");
	parse_error("round(a, 1, 2)", "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3");
	parse_error("time(1)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1");
	parse_error("1 > 2", "1:3: parse error: comparisons between scalars must use BOOL modifier");
	parse_error("a + bool b", "1:3: parse error: bool modifier can only be used on comparison operators");
	parse_error("1 and foo", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression");
	parse_error("a and on(x) group_left b", "1:1: parse error: no grouping allowed for \"and\" operation");
	parse_error("a * on(x) group_left(x) b", "1:3: parse error: label \"x\" must not occur in ON and GROUP clause at once");
	parse_error("foo[5m] + 1", "1:1: parse error: binary expression must contain only scalar and instant vector types");
	parse_error("(foo)[5m]", "1:1: parse error: ranges only allowed for vector selectors");
	parse_error("foo offset 5m [5m]", "1:1: parse error: no offset modifiers allowed before range");
	parse_error("foo offset 1m offset 2m", "1:15: parse error: offset may not be set multiple times");
	parse_error("sum(foo) offset 1m", "1:10: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery");
	parse_error("foo @ 1 @ 2", "1:9: parse error: @ <timestamp> may not be set multiple times");
	parse_error("topk(foo)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1");
	parse_error("count_values(1, foo)", "1:14: parse error: expected type string in aggregation parameter, got scalar");
	parse_error("sum(foo[5m])", "1:5: parse error: expected type instant vector in aggregation expression, got range vector");
	parse_error("foo{__name__=\"bar\"}", "1:1: parse error: metric name must not be set twice: \"foo\" or \"bar\"");
	parse_error("\"abc", "1:1: parse error: unterminated quoted string");
	parse_error("-\"a\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"string\"");
	parse_error("foo{a=~\"(\"}", "1:5: parse error: error parsing regexp: missing closing ): `(`");
	parse_error("a\n+ )", "2:3: parse error: unexpected right parenthesis ')'");
	/* What Prometheus 2.42 quotes: the number it scanned, plus one character after a unit. */
	parse_error("1a", "1:1: parse error: bad number or duration syntax: \"1\"");
	parse_error("1_000", "1:1: parse error: bad number or duration syntax: \"1\"");
	parse_error("0x1g", "1:1: parse error: bad number or duration syntax: \"0x1\"");
	parse_error("5m3x", "1:1: parse error: bad number or duration syntax: \"5m3\"");
	parse_error("5mx", "1:1: parse error: bad number or duration syntax: \"5mx\"");
	parse_error("foo[5]", "1:5: parse error: missing unit character in duration");
	parse_error("foo[1y2y]", "1:5: parse error: bad duration syntax: \"1y2\"");
	parse_error("foo[1m1h]", "1:5: parse error: not a valid duration string: \"1m1h\"");
	parse_error("foo offset .5m", "1:12: parse error: not a valid duration string: \".5m\"");
	parse_error("1m1h", "1:1: parse error: unexpected duration \"1m1h\"");
	parse_error("1e", "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e\": invalid syntax");
}

TEST(types)
{
	arena_t a;
	arena_init(&a, 0);
	promql_expr_t *e;
	err_t err = {0};
	struct {
		const char *q;
		promql_type_t t;
	} cases[] = {
		{"1", PROMQL_TYPE_SCALAR}, {"\"s\"", PROMQL_TYPE_STRING}, {"foo", PROMQL_TYPE_VECTOR},
		{"foo[1m]", PROMQL_TYPE_MATRIX}, {"foo[1m:]", PROMQL_TYPE_MATRIX}, {"1 + 1", PROMQL_TYPE_SCALAR},
		{"foo + 1", PROMQL_TYPE_VECTOR}, {"scalar(foo)", PROMQL_TYPE_SCALAR}, {"(foo)", PROMQL_TYPE_VECTOR},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		CHECK(promql_parse(&a, cases[i].q, strlen(cases[i].q), &e, &err) == 0);
		CHECK_EQ_INT(promql_expr_type(e), cases[i].t);
	}
	CHECK(promql_func_lookup(STR("holt_winters")) != NULL);
	CHECK(promql_func_lookup(STR("nope")) == NULL);
	arena_release(&a);
}

TEST(long_chains_parse_print_and_pretty_without_recursion)
{
	/* Prometheus parses 20,000-term chains, right-associative ^ included */
	arena_t a;
	arena_init(&a, 0);
	for (int pow = 0; pow < 2; pow++) {
		buf_t q = BUF_INIT;
		buf_puts(&q, "up");
		for (int i = 1; i < 20000; i++)
			buf_puts(&q, pow ? " ^ up" : " + up");
		promql_expr_t *e;
		err_t err = {0};
		CHECK(promql_parse(&a, q.p, q.n, &e, &err) == 0);
		CHECK(e->kind == PROMQL_BINARY);
		CHECK((pow ? e->u.bin.lhs : e->u.bin.rhs)->kind == PROMQL_VECTOR_SEL); /* a ^ (b ^ ...), (a + b) + ... */
		CHECK_EQ_INT(promql_expr_type(e), PROMQL_TYPE_VECTOR);
		buf_t f = BUF_INIT;
		promql_expr_format(&f, e);
		CHECK_STR(f.p, q.p);
		buf_t pr = BUF_INIT;
		CHECK(!promql_expr_pretty_max(&pr, e, 1 << 20)); /* one level of indentation per operator */
		buf_release(&pr);
		buf_release(&f);
		buf_release(&q);
	}
	arena_release(&a);
}

TEST_MAIN()
