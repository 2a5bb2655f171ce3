/*
 * cache_test.c — the frontend's response cache: YAML config (§7.4), IN-MEMORY LRU by bytes and items
 * with validity, MEMCACHED over a real memcached (and a dead one: misses, never errors), and the
 * downstream tripper config.
 */
#include <string.h>
#include <unistd.h>

#include "frontend/cache.h"
#include "frontend/downstream.h"
#include "net/httpcfg.h"
#include "test.h"
#include "test_memcached.h"

static fecache_t *parse_new(const char *yaml, err_t *err)
{
	fecache_config_t c;
	fecache_config_init(&c);
	fecache_t *fc = NULL;
	if (fecache_config_parse(yaml, strlen(yaml), "cfg", &c, err) == 0)
		fecache_new(&fc, &c, "query_range", err);
	fecache_config_release(&c);
	return fc;
}

TEST(config_errors_name_line_and_column)
{
	fecache_config_t c;
	err_t err = {0};
	const char *bad[] = {"type: REDIS\nconfig: {}\n",
	                     "type: IN-MEMORY\nconfig:\n  max_size: lots\n",
	                     "type: IN-MEMORY\nconfig:\n  bogus: 1\n",
	                     "type: MEMCACHED\nconfig:\n  timeout: 1s\n",
	                     "type: MEMCACHED\nconfig:\n  addresses: [a:1]\n  expiration: soon\n",
	                     "[",
	                     "config: {}\n"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		fecache_config_init(&c);
		err = (err_t){0};
		CHECK(fecache_config_parse(bad[i], strlen(bad[i]), "cfg", &c, &err) == ERR_INVALID);
		CHECK(strncmp(err.msg, "cfg:", 4) == 0);
		fecache_config_release(&c);
	}
	fecache_config_init(&c);
	CHECK(fecache_config_parse("type: IN-MEMORY\nconfig:\n  validity: 1m\n", 38, "cfg", &c, &err) == 0);
	CHECK(c.type == FECACHE_NONE); /* no size: no cache, as Thanos */
	fecache_config_release(&c);
}

TEST(inmemory_lru_items_bytes_validity)
{
	err_t err = {0};
	fecache_t *c = parse_new("type: IN-MEMORY\nconfig:\n  max_size_items: 2\n", &err);
	CHECK(c != NULL);
	arena_t a;
	arena_init(&a, 0);
	fecache_put(c, STR("a"), "1", 1);
	fecache_put(c, STR("b"), "2", 1);
	str_t keys[] = {STR("a")}, vals[3];
	bool found[3];
	CHECK(fecache_get_multi(c, keys, 1, &a, vals, found) == 1); /* a is now the most recent */
	fecache_put(c, STR("c"), "3", 1);                           /* evicts b */
	str_t k3[] = {STR("a"), STR("b"), STR("c")};
	CHECK(fecache_get_multi(c, k3, 3, &a, vals, found) == 2);
	CHECK(found[0] && !found[1] && found[2] && str_eq_c(vals[2], "3"));
	CHECK_EQ_INT(fecache_items(c), 2);
	/* fingerprints: peeked values are not copied; either way the fingerprint is the value's */
	bool peek[3] = {true, true, false};
	fecache_fp_t fps[3];
	CHECK(fecache_get_multi_fp(c, k3, 3, peek, &a, vals, found, fps) == 2);
	CHECK(found[0] && vals[0].p == NULL && fps[0].len == 1 &&
	      fps[0].hash == fecache_fingerprint("1", 1).hash);
	CHECK(found[2] && str_eq_c(vals[2], "3") && fps[2].hash == fecache_fingerprint("3", 1).hash);
	CHECK(fps[0].hash != fps[2].hash);
	CHECK(fecache_get_values(c, k3, 1, &a, vals, found) == 1 && str_eq_c(vals[0], "1"));
	fecache_put(c, STR("a"), "4", 1); /* replaced: another fingerprint */
	CHECK(fecache_get_multi_fp(c, k3, 1, peek, &a, vals, found, fps) == 1 &&
	      fps[0].hash == fecache_fingerprint("4", 1).hash);
	/* values are lent, not copied: one replaced or evicted meanwhile stays readable until the arena
	 * that got it goes */
	str_t kb[] = {STR("c")};
	CHECK(fecache_get_multi(c, kb, 1, &a, vals, found) == 1 && str_eq_c(vals[0], "3"));
	const char *lent = vals[0].p;
	fecache_put(c, STR("c"), "5", 1);
	fecache_put(c, STR("d"), "6", 1);
	fecache_put(c, STR("e"), "7", 1); /* evicts the new c too */
	CHECK(lent[0] == '3' && fecache_items(c) == 2);
	CHECK(fecache_get_multi(c, kb, 1, &a, vals, found) == 0);
	arena_reset(&a); /* gives the old c back: freed (ASan would report a leak or a double free) */
	fecache_free(c);

	c = parse_new("type: IN-MEMORY\nconfig:\n  max_size: 1KB\n  validity: 1s\n", &err);
	static char big[2000];
	fecache_put(c, STR("x"), big, 600);
	fecache_put(c, STR("y"), big, 600); /* 2 x (600 + overhead) > 1000: x goes */
	CHECK(fecache_bytes(c) <= 1000 && fecache_items(c) == 1);
	fecache_put(c, STR("z"), big, 2000); /* larger than the whole cache: not stored */
	CHECK_EQ_INT(fecache_items(c), 1);
	str_t ky[] = {STR("y")};
	CHECK(fecache_get_multi(c, ky, 1, &a, vals, found) == 1);
	usleep(1100 * 1000);
	CHECK(fecache_get_multi(c, ky, 1, &a, vals, found) == 0); /* past validity */
	arena_release(&a);
	fecache_free(c);
}

TEST(memcached_and_dead_memcached)
{
	int port = test_free_port();
	pid_t pid = test_memcached_start(port);
	CHECK(pid > 0);
	char yaml[256];
	snprintf(
	    yaml, sizeof yaml,
	    "type: MEMCACHED\nconfig:\n  addresses: [127.0.0.1:%d]\n  timeout: 200ms\n  expiration: 1h\n",
	    port);
	err_t err = {0};
	fecache_t *c = parse_new(yaml, &err);
	CHECK(c != NULL);
	arena_t a;
	arena_init(&a, 0);
	fecache_put(c, STR("0123456789abcdef"), "value", 5);
	fecache_flush(c);
	str_t keys[] = {STR("0123456789abcdef"), STR("fedcba9876543210")}, vals[2];
	bool found[2];
	CHECK(fecache_get_multi(c, keys, 2, &a, vals, found) == 1);
	CHECK(found[0] && str_eq_c(vals[0], "value") && !found[1]);
	bool peek[2] = {true, true}; /* memcached values always arrive, fingerprinted */
	fecache_fp_t fps[2];
	CHECK(fecache_get_multi_fp(c, keys, 2, peek, &a, vals, found, fps) == 1);
	CHECK(found[0] && str_eq_c(vals[0], "value") && fps[0].len == 5 &&
	      fps[0].hash == fecache_fingerprint("value", 5).hash);
	test_memcached_stop(pid);
	CHECK(fecache_get_multi(c, keys, 2, &a, vals, found) == 0); /* a dead server is a miss */
	fecache_put(c, STR("0123456789abcdef"), "v", 1);            /* and a set never fails */
	fecache_free(c);
	arena_release(&a);
}

TEST(tripper_config)
{
	downstream_config_t c = {0};
	err_t err = {0};
	const char *ok = "idle_conn_timeout: 90s\nresponse_header_timeout: 30s\ntls_handshake_timeout: 5s\n"
	                 "max_idle_conns: 100\nmax_idle_conns_per_host: 100\nmax_conns_per_host: 0\n";
	CHECK(downstream_tripper_parse(ok, strlen(ok), "t", &c, &err) == 0);
	CHECK(c.timeout_ms == 30000 && c.connect_timeout_ms == 5000);
	CHECK(downstream_tripper_parse("bogus: 1\n", 9, "t", &c, &err) == ERR_INVALID &&
	      strstr(err.msg, "bogus"));
	CHECK(downstream_tripper_parse("max_idle_conns: -1\n", 19, "t", &c, &err) == ERR_INVALID);
	/* tls_config: parsed into c.tls; unknown keys and missing files are errors naming them */
	const char *tls = "tls_config:\n  insecure_skip_verify: true\n  server_name: querier.example\n";
	CHECK(downstream_tripper_parse(tls, strlen(tls), "t", &c, &err) == 0);
	CHECK(c.tls && c.tls->insecure_skip_verify && !strcmp(c.tls->server_name, "querier.example"));
	const char *tls_bad = "tls_config:\n  ca_file: /nonexistent/ca.crt\n";
	CHECK(downstream_tripper_parse(tls_bad, strlen(tls_bad), "t", &c, &err) != 0 &&
	      strstr(err.msg, "/nonexistent/ca.crt"));
	const char *tls_unknown = "tls_config:\n  cipher: x\n";
	CHECK(downstream_tripper_parse(tls_unknown, strlen(tls_unknown), "t", &c, &err) == ERR_INVALID &&
	      strstr(err.msg, "cipher"));
	httpcfg_free(c.tls);
	c.tls = NULL;
	downstream_t *d;
	downstream_config_t bad = {.url = "localhost:9090"};
	CHECK(downstream_new(&d, &bad, &err) == ERR_INVALID);
}

TEST_MAIN()
