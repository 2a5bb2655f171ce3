#include <xxhash.h>

#include "model/labels.h"
#include "model/matcher.h"
#include "model/selector.h"
#include "model/series.h"
#include "test.h"

#define L(n, v) {STR(n), STR(v)}

TEST(labels_hash_matches_prometheus_layout)
{
	label_t v[] = {L("__name__", "up"), L("job", "x")};
	labels_t ls = {v, 2};
	static const char raw[] = "__name__\xffup\xffjob\xffx\xff";
	CHECK_EQ_U64(labels_hash(&ls), XXH64(raw, sizeof raw - 1, 0));
	labels_t empty = {NULL, 0};
	CHECK_EQ_U64(labels_hash(&empty), XXH64("", 0, 0));
	/* Separators matter: {a="bc"} != {ab="c"}. */
	label_t a1[] = {L("a", "bc")}, a2[] = {L("ab", "c")};
	labels_t x = {a1, 1}, y = {a2, 1};
	CHECK(labels_hash(&x) != labels_hash(&y));
}

TEST(labels_cmp_order)
{
	label_t a[] = {L("a", "1"), L("b", "2")};
	label_t b[] = {L("a", "1")};
	label_t c[] = {L("a", "2")};
	labels_t la = {a, 2}, lb = {b, 1}, lc = {c, 1};
	CHECK(labels_cmp(&lb, &la) < 0); /* proper prefix first */
	CHECK(labels_cmp(&la, &lc) < 0);
	CHECK(labels_cmp(&la, &la) == 0);
	CHECK(labels_eq(&la, &la));
	CHECK(!labels_eq(&la, &lb));
	bool found;
	CHECK_SLICE(labels_get(&la, STR("b"), &found), "2");
	CHECK(found);
	labels_get(&la, STR("zz"), &found);
	CHECK(!found);
}

TEST(labels_format_forms)
{
	label_t v[] = {L("__name__", "up"), L("job", "a\"b\n"), L("x", "é\x01")};
	labels_t ls = {v, 3};
	buf_t b = BUF_INIT;
	labels_format(&b, &ls);
	CHECK_STR(b.p, "up{job=\"a\\\"b\\n\", x=\"é\\x01\"}");
	buf_reset(&b);
	labels_format_full(&b, &ls);
	CHECK_STR(b.p, "{__name__=\"up\", job=\"a\\\"b\\n\", x=\"é\\x01\"}");
	buf_reset(&b);
	labels_t only = {v, 1};
	labels_format(&b, &only);
	CHECK_STR(b.p, "up");
	buf_reset(&b);
	labels_t none = {NULL, 0};
	labels_format(&b, &none);
	CHECK_STR(b.p, "{}");
	buf_reset(&b);
	labels_quote(&b, str_from("\xff\xc2\xad", 3));
	CHECK_STR(b.p, "\"\\xff\\u00ad\"");
	buf_release(&b);
}

TEST(labels_builder_and_copy)
{
	arena_t a;
	arena_init(&a, 0);
	label_t v[] = {L("b", "2"), L("a", "1")};
	labels_t base = {v, 2};
	CHECK_EQ_INT(labels_normalize(&base), 0);
	CHECK_SLICE(base.v[0].name, "a");
	labels_builder_t lb;
	labels_builder_init(&lb, &a, &base);
	labels_builder_set(&lb, STR("c"), STR("3"));
	labels_builder_set(&lb, STR("a"), STR(""));
	labels_builder_set(&lb, STR("0"), STR("z"));
	labels_builder_set(&lb, STR("d"), STR("4"));
	labels_builder_set(&lb, STR("e"), STR("5"));
	labels_builder_set(&lb, STR("f"), STR("6"));
	labels_builder_del(&lb, STR("d"));
	labels_t out = labels_builder_finish(&lb);
	CHECK_EQ_INT(out.n, 5);
	CHECK_SLICE(out.v[0].name, "0");
	CHECK_SLICE(out.v[1].name, "b");
	CHECK_SLICE(out.v[4].name, "f");
	labels_t cp = labels_copy(&a, &out);
	CHECK(labels_eq(&cp, &out));
	CHECK(cp.v[0].name.p != out.v[0].name.p);
	label_t dup[] = {L("a", "1"), L("a", "2")};
	labels_t d = {dup, 2};
	CHECK_EQ_INT(labels_normalize(&d), ERR_INVALID);
	arena_release(&a);
}

TEST(label_name_validity)
{
	CHECK(label_name_valid(STR("_a1")));
	CHECK(!label_name_valid(STR("1a")));
	CHECK(!label_name_valid(STR("a:b")));
	CHECK(metric_name_valid(STR("a:b")));
	CHECK(!metric_name_valid(STR("")));
	CHECK(!label_name_valid(STR("a-b")));
}

static bool m(match_type_t t, const char *re, const char *v)
{
	matcher_t mt;
	err_t err = {0};
	if (matcher_init(&mt, t, STR("x"), str_c(re), &err))
		return false;
	bool r = matcher_matches(&mt, str_c(v));
	matcher_release(&mt);
	return r;
}

TEST(matcher_basic)
{
	CHECK(m(MATCH_EQ, "a", "a"));
	CHECK(!m(MATCH_EQ, "a", "ab"));
	CHECK(m(MATCH_NEQ, "a", "b"));
	CHECK(m(MATCH_RE, "a.*", "abc"));
	CHECK(!m(MATCH_RE, "a.*", "xabc")); /* anchored at start */
	CHECK(!m(MATCH_RE, "b", "abc"));    /* anchored both ends */
	CHECK(!m(MATCH_RE, "a|ab", "abc"));
	CHECK(m(MATCH_RE, "a|ab", "ab")); /* alternation anchored as a whole */
	CHECK(!m(MATCH_RE, "abc$", "abc\n"));
	CHECK(!m(MATCH_RE, "a.c", "a\nc"));
	CHECK(m(MATCH_RE, "(?i)ABC", "abc"));
	CHECK(m(MATCH_NRE, "foo|bar", "baz"));
	CHECK(!m(MATCH_NRE, "foo|bar", "bar"));
	CHECK(m(MATCH_RE, "", ""));
	CHECK(!m(MATCH_RE, "", "a"));
	CHECK(m(MATCH_RE, "\\d+", "123"));
	CHECK(m(MATCH_RE, "a\\.b", "a.b"));
	CHECK(!m(MATCH_RE, "a\\.b", "axb"));
	CHECK(m(MATCH_RE, "é+", "éé"));
	CHECK(m(MATCH_RE, ".*", "\xff\xfe")); /* invalid UTF-8 subject must not fail */
	CHECK(m(MATCH_RE, "x{2,3}", "xxx"));
	CHECK(m(MATCH_RE, "[[:alpha:]]+", "abc"));
	CHECK(m(MATCH_RE, "a*?b", "aab"));
}

TEST(matcher_empty_and_labels)
{
	matcher_t mt;
	CHECK_EQ_INT(matcher_init(&mt, MATCH_RE, STR("job"), STR("a|"), NULL), 0);
	CHECK(matcher_matches_empty(&mt));
	label_t v[] = {L("job", "b")};
	labels_t ls = {v, 1};
	CHECK(!matcher_matches_labels(&mt, &ls));
	labels_t none = {NULL, 0};
	CHECK(matcher_matches_labels(&mt, &none));
	matcher_release(&mt);
}

TEST(matcher_literal_fast_path)
{
	matcher_t mt;
	const str_t *vals;
	CHECK_EQ_INT(matcher_init(&mt, MATCH_RE, STR("x"), STR("foo|bar\\.baz|foo"), NULL), 0);
	int n = matcher_literal_values(&mt, &vals);
	CHECK_EQ_INT(n, 2);
	CHECK_SLICE(vals[0], "foo");
	CHECK_SLICE(vals[1], "bar.baz");
	CHECK(matcher_matches(&mt, STR("bar.baz")));
	CHECK(!matcher_matches(&mt, STR("barxbaz")));
	matcher_release(&mt);
	CHECK_EQ_INT(matcher_init(&mt, MATCH_RE, STR("x"), STR("fo+"), NULL), 0);
	CHECK_EQ_INT(matcher_literal_values(&mt, &vals), -1);
	matcher_release(&mt);
	CHECK_EQ_INT(matcher_init(&mt, MATCH_EQ, STR("x"), STR("v"), NULL), 0);
	CHECK_EQ_INT(matcher_literal_values(&mt, &vals), 1);
	CHECK_SLICE(vals[0], "v");
	matcher_release(&mt);
	CHECK_EQ_INT(matcher_init(&mt, MATCH_NRE, STR("x"), STR("v"), NULL), 0);
	CHECK_EQ_INT(matcher_literal_values(&mt, &vals), -1);
	matcher_release(&mt);
}

static const char *bad(const char *re)
{
	static err_t err;
	matcher_t mt;
	err_clear(&err);
	int rc = matcher_init(&mt, MATCH_RE, STR("x"), str_c(re), &err);
	if (rc == 0) {
		matcher_release(&mt);
		return NULL;
	}
	return err.msg;
}

TEST(matcher_rejects_non_re2)
{
	CHECK_STR(bad("(a"), "error parsing regexp: missing closing ): `(a`");
	CHECK_STR(bad("(a)\\1"), "error parsing regexp: invalid escape sequence: `\\1`");
	CHECK_STR(bad("a(?=b)"), "error parsing regexp: invalid or unsupported Perl syntax: `(?=`");
	CHECK_STR(bad("(?<!a)b"), "error parsing regexp: invalid or unsupported Perl syntax: `(?<!`");
	CHECK_STR(bad("a++"), "error parsing regexp: invalid nested repetition operator: `++`");
	CHECK_STR(bad("*a"), "error parsing regexp: missing argument to repetition operator: `*`");
	CHECK_STR(bad("a{1001}"), "error parsing regexp: invalid repeat count: `{1001}`");
	CHECK_STR(bad("[a"), "error parsing regexp: missing closing ]: `[a`");
	CHECK(bad("(?>a)") != NULL);
	CHECK(bad("\\Ka") != NULL);
	CHECK(bad("a)") != NULL);
	CHECK(bad("(?P<n>a)") == NULL);
	CHECK(bad("a{,5}") == NULL); /* literal in RE2 */
}

TEST(matcher_match_limit_no_hang)
{
	/* Catastrophic backtracking must end quickly (JIT + match limit); result is "no match". */
	CHECK(!m(MATCH_RE, "(a+)+b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

TEST(matchers_format_and_selector)
{
	matcher_t *ms;
	size_t n;
	err_t err = {0};
	CHECK_EQ_INT(selector_parse(STR(" up{job=~\"a|b\", x!='y\\n', z!~`\\d`,} "), &ms, &n, &err), 0);
	CHECK_EQ_INT(n, 4);
	buf_t b = BUF_INIT;
	matchers_format(&b, ms, n);
	CHECK_STR(b.p, "{__name__=\"up\", job=~\"a|b\", x!=\"y\\n\", z!~\"\\\\d\"}");
	selector_free(ms, n);
	CHECK_EQ_INT(selector_parse(STR("{a=\"\\u00e9\"}"), &ms, &n, &err), 0);
	CHECK_SLICE(ms[0].value, "é");
	selector_free(ms, n);
	CHECK_EQ_INT(selector_parse(STR("{}"), &ms, &n, &err), ERR_INVALID);
	CHECK_EQ_INT(selector_parse(STR("{a=\"b"), &ms, &n, &err), ERR_INVALID);
	CHECK_EQ_INT(selector_parse(STR("{a~\"b\"}"), &ms, &n, &err), ERR_INVALID);
	CHECK_EQ_INT(selector_parse(STR("{a=~\"(\"}"), &ms, &n, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "missing closing )") != NULL);
	CHECK_EQ_INT(selector_parse(STR("up x"), &ms, &n, &err), ERR_INVALID);
	buf_release(&b);
}

TEST(series_set_empty_is_empty)
{
	series_set_t *s = series_set_empty();
	CHECK_EQ_INT(series_set_next(s, NULL), 0);
	int64_t t[4];
	double v[4];
	CHECK_EQ_INT(sample_iter_next_batch(sample_iter_empty(), t, v, 4, NULL), 0);
	series_set_close(s);
}

TEST_MAIN()
