/*
 * indexcache_test.c — the index cache: --index-cache.config parsing (both types, Thanos keys, errors
 * with line:column), the in-memory LRU, and the MEMCACHED backend against a real /usr/bin/memcached
 * (round trips through get_multi, enabled_items, values that fail the key/CRC check are misses).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/metrics.h"
#include "net/memcache.h"
#include "storegw/indexcache.h"
#include "test.h"
#include "test_memcached.h"

static int parse(const char *yaml, indexcache_config_t *c, err_t *err)
{
	indexcache_config_init(c, 100, 0);
	return indexcache_config_parse(yaml, strlen(yaml), "cache.yaml", c, err);
}

TEST(config_in_memory)
{
	indexcache_config_t c;
	err_t err = {0};
	CHECK(parse("type: IN-MEMORY\nconfig:\n  max_size: 1MiB\n  max_item_size: 1KiB\n", &c, &err) == 0);
	CHECK(c.backend == INDEXCACHE_IN_MEMORY && c.max_size == (1u << 20) && c.max_item_size == 1024);
	indexcache_config_release(&c);
	CHECK(parse("type: in-memory\n", &c, &err) == 0 && c.max_size == 100);
	indexcache_config_release(&c);
	CHECK(parse("type: IN-MEMORY\nconfig:\n  max_size: 1MiB\n  bogus: 1\n", &c, &err) == ERR_INVALID);
	CHECK_STR(err.msg, "cache.yaml:4:3: unknown key: bogus");
	indexcache_config_release(&c);
	/* the old entry point still works for IN-MEMORY and refuses MEMCACHED */
	size_t ms = 5, mi = 6;
	const char *y = "type: IN-MEMORY\nconfig: {max_size: 2KB}\n";
	CHECK(indexcache_parse_config(y, strlen(y), "x", &ms, &mi, &err) == 0 && ms == 2000 && mi == 6);
	y = "type: MEMCACHED\nconfig: {addresses: [\"127.0.0.1:1\"]}\n";
	CHECK(indexcache_parse_config(y, strlen(y), "x", &ms, &mi, &err) == ERR_INVALID);
}

TEST(config_memcached)
{
	indexcache_config_t c;
	err_t err = {0};
	const char *y = "type: MEMCACHED\n"
	                "config:\n"
	                "  addresses: [\"127.0.0.1:11211\", \"dns+localhost:11212\"]\n"
	                "  timeout: 1s\n"
	                "  max_idle_connections: 5\n"
	                "  max_async_concurrency: 2\n"
	                "  max_async_buffer_size: 50\n"
	                "  max_get_multi_concurrency: 4\n"
	                "  max_get_multi_batch_size: 3\n"
	                "  max_item_size: 2MiB\n"
	                "  dns_provider_update_interval: 30s\n"
	                "  auto_discovery: false\n"
	                "  set_async_circuit_breaker_config: {enabled: false, open_duration: 5s}\n"
	                "enabled_items: [Series]\n"
	                "ttl: 2h\n";
	CHECK(parse(y, &c, &err) == 0);
	CHECK(c.backend == INDEXCACHE_MEMCACHED);
	CHECK(c.memcached.naddresses == 2 && strcmp(c.memcached.addresses[1], "dns+localhost:11212") == 0);
	CHECK(c.memcached.timeout_ms == 1000 && c.memcached.max_idle_connections == 5);
	CHECK(c.memcached.max_async_concurrency == 2 && c.memcached.max_async_buffer_size == 50);
	CHECK(c.memcached.max_get_multi_concurrency == 4 && c.memcached.max_get_multi_batch_size == 3);
	CHECK(c.memcached.max_item_size == (2u << 20) && c.memcached.dns_update_interval_ms == 30000);
	CHECK(c.enabled_items == (1u << INDEXCACHE_SERIES) && c.ttl_ms == 2 * 3600 * 1000);
	indexcache_config_release(&c);

	struct {
		const char *yaml, *want;
	} bad[] = {
	    {"type: MEMCACHED\nconfig:\n  addresses: [a:1]\n  timeot: 1s\n",
	     "cache.yaml:4:3: unknown key: timeot"},
	    {"type: MEMCACHED\nconfig:\n  addresses: [a:1]\n  timeout: soon\n",
	     "cache.yaml:4:12: timeout: invalid duration \"soon\""},
	    {"type: MEMCACHED\nconfig:\n  timeout: 1s\n",
	     "cache.yaml:3:3: MEMCACHED: addresses must list at least one host:port"},
	    {"type: MEMCACHED\n", "cache.yaml:1:1: MEMCACHED: config with addresses is required"},
	    {"type: MEMCACHED\nconfig:\n  addresses: a:1\n",
	     "cache.yaml:3:14: addresses must be a list of host:port"},
	    {"type: MEMCACHED\nconfig:\n  addresses: [a:1]\n  auto_discovery: true\n",
	     "cache.yaml:4:19: auto_discovery: only false is supported (memcached auto discovery is not "
	     "implemented)"},
	    {"type: MEMCACHED\nconfig:\n  addresses: [a:1]\n  set_async_circuit_breaker_config: {enabled: "
	     "true}\n",
	     "cache.yaml:4:47: set_async_circuit_breaker_config: only enabled: false is supported"},
	    {"type: REDIS\nconfig: {addr: x}\n",
	     "cache.yaml:1:1: unsupported index cache type (IN-MEMORY or MEMCACHED): REDIS"},
	    {"type: IN-MEMORY\nenabled_items: [Postings, Chunks]\n",
	     "cache.yaml:2:27: enabled_items: unknown item type (Postings, Series, ExpandedPostings): "
	     "Chunks"},
	    {"type: IN-MEMORY\nttl: forever\n", "cache.yaml:2:6: ttl: bad duration: forever"},
	    {"type: IN-MEMORY\nextra: 1\n", "cache.yaml:2:1: unknown key: extra"},
	    {"type: [x\n", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = parse(bad[i].yaml, &c, &err);
		indexcache_config_release(&c);
		CHECK(rc == ERR_INVALID);
		if (bad[i].want && strcmp(err.msg, bad[i].want) != 0)
			TEST_FAILF("case %zu: got \"%s\", want \"%s\"", i, err.msg, bad[i].want);
		CHECK(strncmp(err.msg, "cache.yaml:", 11) == 0);
	}
	/* dnssrv is refused when the cache is built */
	CHECK(parse("type: MEMCACHED\nconfig: {addresses: [\"dnssrv+_mc._tcp.example.com\"]}\n", &c, &err) ==
	      0);
	indexcache_t *ic;
	CHECK(indexcache_new_from_config(&ic, &c, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "dnssrv+_mc._tcp.example.com") != NULL);
	indexcache_config_release(&c);
}

TEST(in_memory_lru)
{
	indexcache_t *c = indexcache_new(2000, 0);
	arena_t a;
	arena_init(&a, 0);
	char v[300];
	memset(v, 'v', sizeof v);
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		indexcache_put(c, "B1", INDEXCACHE_POSTINGS, str_c(k), v, sizeof v);
	}
	CHECK(indexcache_bytes(c) <= 2000 && indexcache_items(c) >= 3);
	str_t keys[3] = {str_c("k19"), str_c("k0"), str_c("k18")}, vals[3];
	bool hit[3];
	CHECK(indexcache_get_multi(c, "B1", INDEXCACHE_POSTINGS, keys, 3, &a, vals, hit) == 2);
	CHECK(hit[0] && !hit[1] && hit[2] && vals[0].n == sizeof v);
	CHECK(!indexcache_get(c, "B1", INDEXCACHE_SERIES, str_c("k19"), &a,
	                      &vals[0])); /* type is part of the key */
	indexcache_drop_block(c, "B1");
	CHECK(indexcache_items(c) == 0);
	indexcache_free(c);
	arena_release(&a);
}

/* ---- MEMCACHED backend against the real memcached ---- */

static indexcache_t *mc_cache(int port, const char *extra)
{
	char y[512];
	snprintf(y, sizeof y,
	         "type: MEMCACHED\nconfig: {addresses: [\"127.0.0.1:%d\"], max_get_multi_batch_size: 2}\n%s",
	         port, extra);
	indexcache_config_t c;
	err_t err = {0};
	indexcache_t *ic = NULL;
	if (parse(y, &c, &err) || indexcache_new_from_config(&ic, &c, &err))
		fprintf(stderr, "memcached cache: %s\n", err.msg);
	indexcache_config_release(&c);
	return ic;
}

static double hits_total(const char *type)
{
	metric_t *m =
	    metrics_counter("thanos_store_index_cache_hits_total",
	                    "Total number of items requests to the cache that were a hit.", "item_type");
	return metric_value(metric_with(m, type));
}

TEST(memcached_backend)
{
	int port = test_free_port();
	pid_t pid = test_memcached_start(port);
	CHECK(pid > 0);
	indexcache_t *c = mc_cache(port, "ttl: 10m\n");
	arena_t a;
	arena_init(&a, 0);
	if (!c) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		TEST_FAILF("no cache");
	}
	/* postings keys with bytes memcached could not take in a key; series keys are 4-byte ids */
	const char lv[] =
	    "job\xff"
	    "a value with spaces\r\n and a very long tail ..........................................."
	    "................................................................................................"
	    "...."
	    "................................................................................................"
	    "....";
	uint32_t id = 12345;
	indexcache_put(c, "01ARZ3NDEKTSV4RRFFQ69G5FAV", INDEXCACHE_POSTINGS, str_from(lv, sizeof lv - 1),
	               "\0\0\0\1\0\0\0\7", 8);
	indexcache_put(c, "01ARZ3NDEKTSV4RRFFQ69G5FAV", INDEXCACHE_SERIES, str_from((const char *)&id, 4),
	               "series", 6);
	indexcache_flush(c);
	double h0 = hits_total("Postings");
	str_t keys[3] = {str_from(lv, sizeof lv - 1), str_c("job\xffother"), str_c("x")}, vals[3];
	bool hit[3];
	CHECK(indexcache_get_multi(c, "01ARZ3NDEKTSV4RRFFQ69G5FAV", INDEXCACHE_POSTINGS, keys, 3, &a, vals,
	                           hit) == 1);
	CHECK(hit[0] && !hit[1] && !hit[2]);
	CHECK(vals[0].n == 8 && memcmp(vals[0].p, "\0\0\0\1\0\0\0\7", 8) == 0);
	CHECK(hits_total("Postings") - h0 == 1);
	str_t v;
	CHECK(indexcache_get(c, "01ARZ3NDEKTSV4RRFFQ69G5FAV", INDEXCACHE_SERIES,
	                     str_from((const char *)&id, 4), &a, &v));
	CHECK(str_eq_c(v, "series"));
	CHECK(!indexcache_get(c, "01BX5ZZKBKACTAV9WEVGEMMVRZ", INDEXCACHE_SERIES,
	                      str_from((const char *)&id, 4), &a, &v));

	/* A foreign value (a Thanos store, damage) under our key is a miss, not an error. */
	memcache_config_t mcfg;
	memcache_config_init(&mcfg, "t-raw");
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	memcache_config_add_address(&mcfg, addr);
	memcache_t *raw;
	err_t err = {0};
	CHECK(memcache_new(&raw, &mcfg, &err) == 0);
	memcache_config_release(&mcfg);
	char mk[64];
	snprintf(mk, sizeof mk, "strata:S:01ARZ3NDEKTSV4RRFFQ69G5FAV:%u", id);
	CHECK(memcache_set(raw, str_c(mk), "\x01\x04garbage-garbage", 17, 60, &err) == 0);
	CHECK(!indexcache_get(c, "01ARZ3NDEKTSV4RRFFQ69G5FAV", INDEXCACHE_SERIES,
	                      str_from((const char *)&id, 4), &a, &v));
	memcache_free(raw);
	indexcache_free(c);

	/* enabled_items: [Series] — postings are neither stored nor looked up */
	c = mc_cache(port, "enabled_items: [Series]\n");
	CHECK(c != NULL);
	indexcache_put(c, "01ARZ3NDEKTSV4RRFFQ69G5FAW", INDEXCACHE_POSTINGS,
	               str_c("a\xff"
	                     "b"),
	               "pp", 2);
	indexcache_put(c, "01ARZ3NDEKTSV4RRFFQ69G5FAW", INDEXCACHE_SERIES, str_c("abcd"), "ss", 2);
	indexcache_flush(c);
	CHECK(!indexcache_get(c, "01ARZ3NDEKTSV4RRFFQ69G5FAW", INDEXCACHE_POSTINGS,
	                      str_c("a\xff"
	                            "b"),
	                      &a, &v));
	CHECK(indexcache_get(c, "01ARZ3NDEKTSV4RRFFQ69G5FAW", INDEXCACHE_SERIES, str_c("abcd"), &a, &v));
	indexcache_free(c);

	/* memcached gone: misses, no error, no hang */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	c = mc_cache(port, "");
	CHECK(c != NULL);
	CHECK(indexcache_get_multi(c, "01ARZ3NDEKTSV4RRFFQ69G5FAV", INDEXCACHE_POSTINGS, keys, 3, &a, vals,
	                           hit) == 0);
	indexcache_put(c, "01ARZ3NDEKTSV4RRFFQ69G5FAV", INDEXCACHE_SERIES, str_c("abcd"), "ss", 2);
	indexcache_flush(c);
	indexcache_free(c);
	arena_release(&a);
}

TEST_MAIN()
