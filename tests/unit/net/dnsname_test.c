/* dnsname_test.c — Thanos's DNS prefixes: parsing, and resolving names that need no DNS server. */
#include "test.h"

#include "net/dnsname.h"

TEST(parse_kinds)
{
	dnsname_t d;
	err_t err = {0};
	CHECK_EQ_INT(dnsname_parse("10.0.0.1:10901", &d, &err), 0);
	CHECK_EQ_INT(d.kind, DNSNAME_PLAIN);
	CHECK_STR(d.name, "10.0.0.1:10901");
	dnsname_release(&d);
	CHECK_EQ_INT(dnsname_parse("dns+query.ns.svc:10901", &d, &err), 0);
	CHECK_EQ_INT(d.kind, DNSNAME_DNS);
	CHECK_STR(d.name, "query.ns.svc");
	CHECK_STR(d.port, "10901");
	dnsname_release(&d);
	CHECK_EQ_INT(dnsname_parse("dns+[::1]:9", &d, &err), 0);
	CHECK_STR(d.name, "::1");
	dnsname_release(&d);
	CHECK_EQ_INT(dnsname_parse("dnssrv+_grpc._tcp.query.ns.svc", &d, &err), 0);
	CHECK_EQ_INT(d.kind, DNSNAME_DNSSRV);
	CHECK_STR(d.name, "_grpc._tcp.query.ns.svc");
	dnsname_release(&d);
	CHECK_EQ_INT(dnsname_parse("dnssrvnoa+_grpc._tcp.q", &d, &err), 0);
	CHECK_EQ_INT(d.kind, DNSNAME_DNSSRVNOA);
	dnsname_release(&d);
}

TEST(parse_errors)
{
	dnsname_t d;
	err_t err = {0};
	CHECK_EQ_INT(dnsname_parse("dnsx+a:1", &d, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "unknown lookup prefix") != NULL);
	CHECK_EQ_INT(dnsname_parse("dns+", &d, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "empty address") != NULL);
	CHECK_EQ_INT(dnsname_parse("host", &d, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "missing port") != NULL);
	CHECK_EQ_INT(dnsname_parse("dns+host:x1", &d, &err), ERR_INVALID);
	CHECK_EQ_INT(dnsname_parse("dns+:1", &d, &err), ERR_INVALID);
}

TEST(resolve_numeric)
{
	dnsname_t d;
	err_t err = {0};
	strlist_t out = {0};
	CHECK_EQ_INT(dnsname_parse("dns+127.0.0.1:10901", &d, &err), 0);
	CHECK_EQ_INT(dnsname_resolve(&d, &out, &err), 0);
	CHECK_EQ_INT(dnsname_resolve(&d, &out, &err), 0); /* no duplicates */
	CHECK_EQ_INT(out.n, 1);
	CHECK_STR(out.v[0], "127.0.0.1:10901");
	dnsname_release(&d);
	CHECK_EQ_INT(dnsname_parse("[::1]:5", &d, &err), 0);
	CHECK_EQ_INT(dnsname_resolve(&d, &out, &err), 0);
	CHECK_EQ_INT(out.n, 2);
	CHECK_STR(out.v[1], "[::1]:5");
	dnsname_release(&d);
	strlist_free(&out);
}

TEST_MAIN()
