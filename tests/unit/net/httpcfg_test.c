/* httpcfg_test.c — Thanos's HTTP client configuration: what parses, what is refused and where. The
 * requests themselves are tls_grpc.py's (a sidecar against a Prometheus with HTTPS and basic auth). */
#include "net/httpcfg.h"
#include "test.h"

static httpcfg_t *parse(const char *yaml, err_t *err)
{
	httpcfg_t *c = NULL;
	if (httpcfg_parse(yaml, strlen(yaml), "cfg.yml", &c, err))
		return NULL;
	return c;
}

TEST(parses_thanos_client_config)
{
	err_t err = {0};
	httpcfg_t *c = parse("basic_auth:\n  username: u\n  password: p\n"
	                     "tls_config:\n  ca_file: /dev/null\n  server_name: prom.example\n"
	                     "  insecure_skip_verify: true\n"
	                     "transport_config:\n  max_idle_conns: 100\n  idle_conn_timeout: 90s\n"
	                     "proxy_url: http://proxy:3128\n",
	                     &err);
	if (!c)
		TEST_FAILF("%s", err.msg);
	CHECK_STR(c->username, "u");
	CHECK_STR(c->password, "p");
	CHECK_STR(c->ca_file, "/dev/null");
	CHECK_STR(c->server_name, "prom.example");
	CHECK(c->insecure_skip_verify);
	CHECK_STR(c->proxy_url, "http://proxy:3128");
	httpcfg_free(c);
	c = parse("", &err); /* empty: nothing configured */
	CHECK(c != NULL && !c->username && !c->bearer_token);
	httpcfg_free(c);
	c = parse("bearer_token: t\n", &err);
	CHECK(c != NULL);
	CHECK_STR(c->bearer_token, "t");
	httpcfg_free(c);
}

static void refused(const char *yaml, const char *want)
{
	err_t err = {0};
	httpcfg_t *c = parse(yaml, &err);
	httpcfg_free(c);
	CHECK(c == NULL);
	if (!strstr(err.msg, want))
		TEST_FAILF("error \"%s\" does not say \"%s\"", err.msg, want);
}

TEST(refuses_with_the_place)
{
	refused("basic_auth:\n  user: x\n", "cfg.yml:2:3: user: unknown key");
	refused("tls_config:\n  insecure_skip_verify: maybe\n",
	        "cfg.yml:2:25: insecure_skip_verify: want true or false");
	refused("bearer_token: t\nbasic_auth: {username: u, password: p}\n",
	        "at most one of basic_auth and bearer_token");
	refused("tls_config: {ca_file: /nonexistent/ca.pem}\n", "/nonexistent/ca.pem");
	refused("tls_config: {cert_file: /dev/null}\n", "cert_file and key_file go together");
	refused("basic_auth: [\n", "cfg.yml:");
	refused("- a\n", "want a mapping");
}

TEST_MAIN()
