/* router_test.c — exact vs prefix routes, longest prefix, 404 vs 405, HEAD via GET. */
#include "test.h"

#include "net/router.h"

static int A, B, C, D;

TEST(exact_and_prefix)
{
	router_t r;
	router_init(&r);
	router_add(&r, HTTP_M_GET, "/api/v1/*", &A);
	router_add(&r, HTTP_M_GET | HTTP_M_POST, "/api/v1/query", &B);
	router_add(&r, HTTP_M_GET, "/api/v1/labels/*", &C);
	router_add(&r, HTTP_M_POST, "/-/reload", &D);
	const route_t *rt = NULL;
	unsigned allowed = 0;
	CHECK_EQ_INT(router_match(&r, HTTP_M_GET, STR("/api/v1/query"), &rt, &allowed), 200);
	CHECK(rt->data == &B);
	CHECK_EQ_INT(router_match(&r, HTTP_M_POST, STR("/api/v1/query"), &rt, &allowed), 200);
	CHECK(rt->data == &B);
	CHECK_EQ_INT(router_match(&r, HTTP_M_GET, STR("/api/v1/series"), &rt, &allowed), 200);
	CHECK(rt->data == &A);
	CHECK_STR(rt->pattern, "/api/v1/*");
	CHECK_EQ_INT(router_match(&r, HTTP_M_GET, STR("/api/v1/labels/job/values"), &rt, &allowed), 200);
	CHECK(rt->data == &C); /* longest prefix wins */
	CHECK_EQ_INT(router_match(&r, HTTP_M_HEAD, STR("/api/v1/series"), &rt, &allowed), 200);
	CHECK_EQ_INT(router_match(&r, HTTP_M_GET, STR("/api/v2"), &rt, &allowed), 404);
	CHECK_EQ_INT(router_match(&r, HTTP_M_GET, STR("/-/reload/x"), &rt, &allowed), 404);
	router_release(&r);
}

TEST(method_not_allowed)
{
	router_t r;
	router_init(&r);
	router_add(&r, HTTP_M_POST, "/-/reload", &D);
	router_add(&r, HTTP_M_GET, "/x/*", &A);
	const route_t *rt = NULL;
	unsigned allowed = 0;
	CHECK_EQ_INT(router_match(&r, HTTP_M_GET, STR("/-/reload"), &rt, &allowed), 405);
	CHECK_EQ_INT(allowed, HTTP_M_POST);
	CHECK_EQ_INT(router_match(&r, HTTP_M_DELETE, STR("/x/y"), &rt, &allowed), 405);
	buf_t b = BUF_INIT;
	http_methods_format(&b, allowed);
	CHECK_STR(b.p, "GET, HEAD");
	buf_release(&b);
	router_release(&r);
}

TEST(method_bits)
{
	CHECK_EQ_INT(http_method_bit(STR("GET")), HTTP_M_GET);
	CHECK_EQ_INT(http_method_bit(STR("POST")), HTTP_M_POST);
	CHECK_EQ_INT(http_method_bit(STR("PATCH")), HTTP_M_PATCH);
	CHECK_EQ_INT(http_method_bit(STR("BREW")), HTTP_M_OTHER);
	CHECK_EQ_INT(http_method_bit(STR("get")), HTTP_M_OTHER);
}

TEST_MAIN()
