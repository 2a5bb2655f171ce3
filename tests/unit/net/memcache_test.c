/*
 * memcache_test.c — the memcached client: error paths against a tiny in-process fake server (garbage,
 * short reads, silence, server errors), config parsing, jump-hash consistency, and the real
 * /usr/bin/memcached (two instances on free 127.0.0.1 ports, -U 0): set/get round trips, batched
 * multi-gets over both servers, async sets, and a killed server turning into misses, never a hang.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hmap.h"
#include "base/metrics.h"
#include "net/memcache.h"
#include "test.h"
#include "test_memcached.h"

/* ---- fake server: answers every request with a fixed reply ---- */

typedef struct fake {
	int lfd, port;
	const char *reply; /* NULL = never answer */
	size_t reply_len;
	bool close_after;
	volatile bool stop;
	pthread_t th;
} fake_t;

static void *fake_main(void *arg)
{
	fake_t *f = arg;
	int cfd = -1;
	char buf[4096];
	while (!f->stop) {
		struct pollfd p[2] = {{.fd = f->lfd, .events = POLLIN}, {.fd = cfd, .events = POLLIN}};
		if (poll(p, cfd >= 0 ? 2 : 1, 20) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			if (cfd >= 0)
				close(cfd);
			cfd = accept(f->lfd, NULL, NULL);
			continue;
		}
		if (cfd >= 0 && (p[1].revents & (POLLIN | POLLHUP))) {
			ssize_t r = recv(cfd, buf, sizeof buf, 0);
			if (r <= 0) {
				close(cfd);
				cfd = -1;
				continue;
			}
			if (!memchr(buf, '\n', (size_t)r) || !f->reply)
				continue;
			if (send(cfd, f->reply, f->reply_len, MSG_NOSIGNAL) < 0)
				continue;
			if (f->close_after) {
				close(cfd);
				cfd = -1;
			}
		}
	}
	if (cfd >= 0)
		close(cfd);
	return NULL;
}

static void fake_start(fake_t *f, const char *reply, size_t len, bool close_after)
{
	*f = (fake_t){.reply = reply, .reply_len = len, .close_after = close_after};
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	if (bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(f->lfd, 16) ||
	    getsockname(f->lfd, (struct sockaddr *)&sa, &sl))
		abort();
	f->port = ntohs(sa.sin_port);
	pthread_create(&f->th, NULL, fake_main, f);
}

static void fake_stop(fake_t *f)
{
	f->stop = true;
	pthread_join(f->th, NULL);
	close(f->lfd);
}

static memcache_t *client_for(int port, int64_t timeout_ms, const char *name)
{
	memcache_config_t cfg;
	memcache_config_init(&cfg, name);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	memcache_config_add_address(&cfg, addr);
	cfg.timeout_ms = timeout_ms;
	memcache_t *m = NULL;
	err_t err = {0};
	if (memcache_new(&m, &cfg, &err))
		fprintf(stderr, "memcache_new: %s\n", err.msg);
	memcache_config_release(&cfg);
	return m;
}

static double failures(const char *name, const char *op, const char *reason)
{
	metric_t *f = metrics_counter("thanos_memcached_operation_failures_total",
	                              "Total number of operations against memcached that failed.",
	                              "name,operation,reason");
	return metric_value(metric_with(f, name, op, reason));
}

/* One get of "k" against a fake answering `reply`; returns whether it hit and the failure delta. */
static bool fake_get(const char *reply, size_t len, bool close_after, int64_t timeout_ms, const char *name,
                     const char *reason, double *fail_delta, str_t *val, arena_t *a)
{
	fake_t f;
	fake_start(&f, reply, len, close_after);
	memcache_t *m = client_for(f.port, timeout_ms, name);
	double before = failures(name, "getmulti", reason);
	str_t keys[1] = {str_c("k")};
	bool found[1];
	memcache_get_multi(m, keys, 1, a, val, found);
	*fail_delta = failures(name, "getmulti", reason) - before;
	memcache_free(m);
	fake_stop(&f);
	return found[0];
}

TEST(fake_valid_reply_parses)
{
	arena_t a;
	arena_init(&a, 0);
	const char r[] = "VALUE k 0 5\r\nhe\r\no\r\nEND\r\n"; /* value containing CRLF */
	double d;
	str_t v;
	bool hit = fake_get(r, sizeof r - 1, false, 1000, "t-ok", "other", &d, &v, &a);
	CHECK(hit);
	CHECK(str_eq_c(v, "he\r\no"));
	CHECK(d == 0);
	arena_release(&a);
}

TEST(fake_garbage_reply_is_miss)
{
	arena_t a;
	arena_init(&a, 0);
	double d;
	str_t v;
	const char r[] = "HELLO THERE\r\n";
	CHECK(!fake_get(r, sizeof r - 1, false, 1000, "t-garbage", "other", &d, &v, &a));
	CHECK(d == 1);
	const char r2[] = "VALUE k 0 notanumber\r\nEND\r\n";
	CHECK(!fake_get(r2, sizeof r2 - 1, false, 1000, "t-garbage2", "other", &d, &v, &a));
	CHECK(d == 1);
	const char r3[] = "VALUE other 0 1\r\nx\r\nEND\r\n"; /* a key we did not ask for */
	CHECK(!fake_get(r3, sizeof r3 - 1, false, 1000, "t-garbage3", "other", &d, &v, &a));
	CHECK(d == 1);
	const char r4[] = "VALUE k 0 1\r\nxyEND\r\n"; /* value not followed by CRLF */
	CHECK(!fake_get(r4, sizeof r4 - 1, false, 1000, "t-garbage4", "other", &d, &v, &a));
	CHECK(d == 1);
	arena_release(&a);
}

TEST(fake_server_error_is_miss)
{
	arena_t a;
	arena_init(&a, 0);
	double d;
	str_t v;
	const char r[] = "SERVER_ERROR out of memory\r\n";
	CHECK(!fake_get(r, sizeof r - 1, false, 1000, "t-srverr", "server-error", &d, &v, &a));
	CHECK(d == 1);
	arena_release(&a);
}

TEST(fake_short_read_is_miss)
{
	arena_t a;
	arena_init(&a, 0);
	double d;
	str_t v;
	const char r[] = "VALUE k 0 100\r\nonly a few bytes"; /* then the server closes */
	uint64_t t0 = clock_mono_ms();
	CHECK(!fake_get(r, sizeof r - 1, true, 5000, "t-short", "network-error", &d, &v, &a));
	CHECK(d == 1);
	CHECK(clock_mono_ms() - t0 < 2000); /* EOF is noticed at once, not at the timeout */
	arena_release(&a);
}

TEST(fake_silent_server_times_out)
{
	arena_t a;
	arena_init(&a, 0);
	double d;
	str_t v;
	uint64_t t0 = clock_mono_ms();
	CHECK(!fake_get(NULL, 0, false, 200, "t-silent", "timeout", &d, &v, &a));
	uint64_t el = clock_mono_ms() - t0;
	CHECK(d == 1);
	CHECK(el >= 190 && el < 2000);
	arena_release(&a);
}

TEST(refused_connection_is_miss)
{
	fake_t f; /* bind a port, then close it: nothing listens there */
	fake_start(&f, NULL, 0, false);
	int port = f.port;
	fake_stop(&f);
	memcache_t *m = client_for(port, 1000, "t-refused");
	CHECK(m != NULL);
	arena_t a;
	arena_init(&a, 0);
	str_t keys[2] = {str_c("a"), str_c("b")}, vals[2];
	bool found[2];
	double before = failures("t-refused", "getmulti", "network-error");
	CHECK(memcache_get_multi(m, keys, 2, &a, vals, found) == 0);
	CHECK(!found[0] && !found[1]);
	CHECK(failures("t-refused", "getmulti", "network-error") - before == 1);
	err_t err = {0};
	CHECK(memcache_set(m, str_c("a"), "x", 1, 0, &err) == ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "network-error") != NULL);
	memcache_free(m);
	arena_release(&a);
}

TEST(bad_keys_are_skipped)
{
	fake_t f;
	const char r[] = "END\r\n";
	fake_start(&f, r, sizeof r - 1, false);
	memcache_t *m = client_for(f.port, 1000, "t-keys");
	char longkey[300];
	memset(longkey, 'k', sizeof longkey);
	str_t keys[3] = {str_from(longkey, sizeof longkey), str_c("has space"), str_c("")}, vals[3];
	bool found[3];
	arena_t a;
	arena_init(&a, 0);
	double before = failures("t-keys", "getmulti", "malformed-key");
	CHECK(memcache_get_multi(m, keys, 3, &a, vals, found) == 0);
	CHECK(failures("t-keys", "getmulti", "malformed-key") - before == 3);
	err_t err = {0};
	CHECK(memcache_set(m, str_c("bad\nkey"), "x", 1, 0, &err) == ERR_INVALID);
	CHECK(!memcache_set_async(m, str_from(longkey, 251), "x", 1, 0));
	memcache_free(m);
	fake_stop(&f);
	arena_release(&a);
}

TEST(full_async_buffer_drops_sets)
{
	fake_t f; /* never answers: the one set thread is stuck in its first set until the timeout */
	fake_start(&f, NULL, 0, false);
	memcache_config_t cfg;
	memcache_config_init(&cfg, "t-full");
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", f.port);
	memcache_config_add_address(&cfg, addr);
	cfg.timeout_ms = 300;
	cfg.max_async_concurrency = 1;
	cfg.max_async_buffer_size = 2;
	cfg.max_item_size = 10;
	memcache_t *m;
	err_t err = {0};
	CHECK(memcache_new(&m, &cfg, &err) == 0);
	memcache_config_release(&cfg);
	metric_t *skip = metrics_counter(
	    "thanos_memcached_operation_skipped_total",
	    "Total number of operations against memcached that have been skipped.", "name,operation,reason");
	CHECK(memcache_set_async(m, str_c("a"), "1", 1, 0));
	usleep(50000); /* the thread takes "a" and waits for a reply */
	uint64_t t0 = clock_mono_ms();
	CHECK(memcache_set_async(m, str_c("b"), "1", 1, 0));
	CHECK(memcache_set_async(m, str_c("c"), "1", 1, 0));
	CHECK(!memcache_set_async(m, str_c("d"), "1", 1, 0)); /* buffer full: dropped, not blocked */
	CHECK(!memcache_set_async(m, str_c("e"), "01234567890", 11, 0)); /* over max_item_size */
	CHECK(clock_mono_ms() - t0 < 100);
	CHECK(metric_value(metric_with(skip, "t-full", "set", "async-buffer-full")) == 1);
	CHECK(metric_value(metric_with(skip, "t-full", "set", "max-item-size")) == 1);
	memcache_wait_async(m);
	CHECK(failures("t-full", "set", "timeout") == 3);
	memcache_free(m);
	fake_stop(&f);
}

TEST(config_keys)
{
	memcache_config_t c;
	memcache_config_init(&c, "cfg");
	err_t err = {0};
	CHECK(c.timeout_ms == 500 && c.max_idle_connections == 100 && c.max_item_size == (1u << 20));
	CHECK(memcache_config_set(&c, "timeout", "2s", &err) == 0 && c.timeout_ms == 2000);
	CHECK(memcache_config_set(&c, "max_item_size", "2MiB", &err) == 0 && c.max_item_size == (2u << 20));
	CHECK(memcache_config_set(&c, "max_get_multi_batch_size", "7", &err) == 0 &&
	      c.max_get_multi_batch_size == 7);
	CHECK(memcache_config_set(&c, "dns_provider_update_interval", "1m", &err) == 0 &&
	      c.dns_update_interval_ms == 60000);
	CHECK(memcache_config_set(&c, "auto_discovery", "false", &err) == 0);
	CHECK(memcache_config_set(&c, "auto_discovery", "true", &err) == ERR_INVALID);
	CHECK(memcache_config_set(&c, "max_idle_connections", "-1", &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "max_idle_connections") != NULL);
	CHECK(memcache_config_set(&c, "timeout", "soon", &err) == ERR_INVALID);
	CHECK(memcache_config_set(&c, "nonsense", "1", &err) == ERR_NOT_FOUND);
	memcache_t *m = NULL;
	CHECK(memcache_new(&m, &c, &err) == ERR_INVALID); /* no addresses */
	memcache_config_add_address(&c, "dnssrv+_memcached._tcp.example.com");
	CHECK(memcache_new(&m, &c, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "SRV") != NULL);
	memcache_config_release(&c);
	memcache_config_init(&c, "cfg");
	memcache_config_add_address(&c, "no-port-here");
	CHECK(memcache_new(&m, &c, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "no-port-here") != NULL);
	memcache_config_release(&c);
	memcache_config_init(&c, "cfg");
	memcache_config_add_address(&c, "dns+localhost:11211"); /* dns+ resolves to every address */
	memcache_config_add_address(&c, "127.0.0.1:11211");
	CHECK(memcache_new(&m, &c, &err) == 0);
	CHECK(memcache_servers(m) >= 1);
	memcache_free(m);
	memcache_config_release(&c);
}

TEST(jump_hash_is_consistent)
{
	/* Growing n -> n+1 moves a key only to the new bucket, and keys spread over all buckets. */
	int counts[10] = {0};
	for (uint64_t k = 0; k < 20000; k++) {
		uint64_t key = k * 0x9E3779B97F4A7C15ULL;
		int prev = memcache_jump_hash(key, 1);
		CHECK(prev == 0);
		for (int n = 2; n <= 10; n++) {
			int b = memcache_jump_hash(key, n);
			CHECK(b >= 0 && b < n);
			CHECK(b == prev || b == n - 1);
			prev = b;
		}
		counts[prev]++;
	}
	for (int i = 0; i < 10; i++)
		CHECK(counts[i] > 1700 && counts[i] < 2300);
}

/* ---- the real memcached ---- */

TEST(real_memcached_two_servers)
{
	int p1 = test_free_port(), p2 = test_free_port();
	pid_t m1 = test_memcached_start(p1), m2 = test_memcached_start(p2);
	CHECK(m1 > 0 && m2 > 0);
	memcache_config_t cfg;
	memcache_config_init(&cfg, "t-real");
	char a1[64], a2[64];
	snprintf(a1, sizeof a1, "127.0.0.1:%d", p1);
	snprintf(a2, sizeof a2, "127.0.0.1:%d", p2);
	memcache_config_add_address(&cfg, a1);
	memcache_config_add_address(&cfg, a2);
	cfg.max_get_multi_batch_size = 7;
	cfg.max_get_multi_concurrency = 3;
	cfg.max_item_size = 4096;
	memcache_t *m;
	err_t err = {0};
	int rc = memcache_new(&m, &cfg, &err);
	memcache_config_release(&cfg);
	CHECK(rc == 0);
	CHECK(memcache_servers(m) == 2);
	enum { N = 100 };
	char kb[N][32], vb[N][64];
	str_t keys[N + 1], vals[N + 1];
	bool found[N + 1];
	for (int i = 0; i < N; i++) {
		snprintf(kb[i], sizeof kb[i], "key:%d", i);
		snprintf(vb[i], sizeof vb[i], "value \r\n %d", i * 7);
		keys[i] = str_c(kb[i]);
	}
	/* sync and async sets of every even key */
	for (int i = 0; i < N; i += 2) {
		if (i % 4)
			CHECK(memcache_set_async(m, keys[i], vb[i], strlen(vb[i]), 60));
		else
			CHECK(memcache_set(m, keys[i], vb[i], strlen(vb[i]), 60, &err) == 0);
	}
	memcache_wait_async(m);
	char big[5000];
	memset(big, 'b', sizeof big);
	CHECK(!memcache_set_async(m, str_c("big"), big, sizeof big, 60)); /* over max_item_size */
	keys[N] = str_c("big");
	arena_t a;
	arena_init(&a, 0);
	CHECK(memcache_get_multi(m, keys, N + 1, &a, vals, found) == N / 2);
	int servers_hit[2] = {0};
	for (int i = 0; i < N; i++) {
		CHECK(found[i] == (i % 2 == 0));
		if (found[i]) {
			CHECK(str_eq_c(vals[i], vb[i]));
			servers_hit[memcache_jump_hash(hash_bytes(keys[i].p, keys[i].n), 2)]++;
		}
	}
	CHECK(!found[N]);
	CHECK(servers_hit[0] > 5 && servers_hit[1] > 5);
	/* one unbatched `get` of 3000 keys (a 100 KB request line) per server */
	enum { BIG = 3000 };
	str_t *bk = arena_alloc(&a, BIG * sizeof *bk), *bv = arena_alloc(&a, BIG * sizeof *bv);
	bool *bf = arena_alloc(&a, BIG);
	for (int i = 0; i < BIG; i++)
		bk[i] =
		    i < N ? keys[i] : str_c(arena_printf(&a, "a-rather-long-key-that-is-not-there-%08d", i));
	memcache_config_t one;
	memcache_config_init(&one, "t-real-big");
	memcache_config_add_address(&one, a1);
	memcache_config_add_address(&one, a2);
	memcache_t *mb;
	CHECK(memcache_new(&mb, &one, &err) == 0);
	memcache_config_release(&one);
	size_t bh = memcache_get_multi(mb, bk, BIG, &a, bv, bf);
	memcache_free(mb);
	CHECK(bh == N / 2);
	CHECK(failures("t-real-big", "getmulti", "other") == 0 &&
	      failures("t-real-big", "getmulti", "network-error") == 0);
	/* one server dies: its keys miss, the other's still hit, nothing hangs. Servers are sorted by
	 * address, so m1 is bucket 0 iff its address sorts first. */
	int live = strcmp(a1, a2) < 0 ? 0 : 1;
	test_memcached_stop(m2);
	m2 = -1;
	uint64_t t0 = clock_mono_ms();
	size_t hits = memcache_get_multi(m, keys, N, &a, vals, found);
	CHECK(clock_mono_ms() - t0 < 1000);
	CHECK(hits == (size_t)servers_hit[live]);
	CHECK(memcache_get_multi(m, keys, N, &a, vals, found) == (size_t)servers_hit[live]);
	memcache_set_async(m, keys[1], "x", 1, 0); /* sets to the dead server fail quietly */
	memcache_wait_async(m);
	memcache_free(m);
	arena_release(&a);
	test_memcached_stop(m1);
	test_memcached_stop(m2);
}

TEST_MAIN()
