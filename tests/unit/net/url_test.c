/* url_test.c — percent-decoding and query/form parsing (Go net/url semantics). */
#include "test.h"

#include "net/url.h"

TEST(unescape_basic)
{
	arena_t a;
	arena_init(&a, 0);
	str_t out;
	CHECK_EQ_INT(url_unescape(&a, STR("a%20b+c%2Fd%e2%82%AC"), true, &out, NULL), 0);
	CHECK_SLICE(out, "a b c/d\xe2\x82\xac");
	CHECK_EQ_INT(url_unescape(&a, STR("a+b"), false, &out, NULL), 0);
	CHECK_SLICE(out, "a+b");
	CHECK_EQ_INT(url_unescape(&a, STR(""), true, &out, NULL), 0);
	CHECK_EQ_INT(out.n, 0);
	arena_release(&a);
}

TEST(unescape_errors)
{
	arena_t a;
	arena_init(&a, 0);
	str_t out;
	err_t err = {0};
	CHECK_EQ_INT(url_unescape(&a, STR("abc%zz"), true, &out, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "%zz") != NULL);
	CHECK(strstr(err.msg, "offset 3") != NULL);
	CHECK_EQ_INT(url_unescape(&a, STR("abc%4"), true, &out, &err), ERR_INVALID);
	CHECK_EQ_INT(url_unescape(&a, STR("%"), true, &out, &err), ERR_INVALID);
	arena_release(&a);
}

TEST(query_repeated_keys)
{
	arena_t a;
	arena_init(&a, 0);
	url_params_t p = {0};
	CHECK_EQ_INT(url_parse_query(&a, STR("match[]=up&query=rate(x%5B5m%5D)&&match%5B%5D=%7Bjob%3D%22a%22%7D&flag&e="),
				     &p, NULL),
		     0);
	CHECK_EQ_INT(p.n, 5);
	str_t v[4];
	CHECK_EQ_INT(url_params_all(&p, "match[]", v, 4), 2);
	CHECK_SLICE(v[0], "up");
	CHECK_SLICE(v[1], "{job=\"a\"}");
	str_t q;
	CHECK(url_params_get(&p, "query", &q));
	CHECK_SLICE(q, "rate(x[5m])");
	CHECK(url_params_get(&p, "flag", &q));
	CHECK_EQ_INT(q.n, 0);
	CHECK(url_params_get(&p, "e", &q));
	CHECK_EQ_INT(q.n, 0);
	CHECK(!url_params_get(&p, "missing", &q));
	CHECK_EQ_INT(url_params_all(&p, "missing", NULL, 0), 0);
	arena_release(&a);
}

TEST(query_many_params_grow)
{
	arena_t a;
	arena_init(&a, 0);
	url_params_t p = {0};
	buf_t b = BUF_INIT;
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%sk%d=v%d", i ? "&" : "", i, i);
	CHECK_EQ_INT(url_parse_query(&a, buf_str(&b), &p, NULL), 0);
	CHECK_EQ_INT(p.n, 1000);
	CHECK_SLICE(p.v[999].key, "k999");
	CHECK_SLICE(p.v[999].val, "v999");
	CHECK_SLICE(p.v[0].val, "v0");
	buf_release(&b);
	arena_release(&a);
}

TEST(query_errors)
{
	arena_t a;
	arena_init(&a, 0);
	url_params_t p = {0};
	err_t err = {0};
	CHECK_EQ_INT(url_parse_query(&a, STR("a=1&b=%GG&c=3"), &p, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "b=%GG") != NULL);
	CHECK_EQ_INT(p.n, 1); /* pairs before the bad one are kept */
	p = (url_params_t){0};
	CHECK_EQ_INT(url_parse_query(&a, STR("a=1;b=2"), &p, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "semicolon") != NULL);
	arena_release(&a);
}

TEST(escape_roundtrip)
{
	arena_t a;
	arena_init(&a, 0);
	buf_t b = BUF_INIT;
	str_t in = STR("sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m])) & 100%");
	url_escape(&b, in);
	CHECK(strchr(b.p, ' ') == NULL);
	CHECK(strchr(b.p, '&') == NULL);
	str_t out;
	CHECK_EQ_INT(url_unescape(&a, buf_str(&b), true, &out, NULL), 0);
	CHECK(str_eq(out, in));
	buf_release(&b);
	arena_release(&a);
}

TEST_MAIN()
