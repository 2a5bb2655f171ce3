/*
 * httpclient_test.c — the HTTP client against Strata's own HTTP server running on a thread.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "net/http.h"
#include "net/httpclient.h"
#include "test.h"

typedef struct srv {
	loop_t *loop;
	http_server_t *http;
	pthread_t thr;
	char base[64];
} srv_t;

static void *srv_main(void *arg)
{
	srv_t *s = arg;
	loop_run(s->loop);
	return NULL;
}

static void h_hello(http_req_t *r, void *arg)
{
	(void)arg;
	http_respond(r, 200, "text/plain", "hello", 5);
}

static void h_echo(http_req_t *r, void *arg)
{
	(void)arg;
	str_t ct = STR_NULL;
	http_req_header(r, "X-Test", &ct);
	buf_t b = BUF_INIT;
	buf_printf(&b, "%.*s|" STR_FMT "|" STR_FMT, (int)r->method.n, r->method.p, STR_ARG(ct), STR_ARG(r->body));
	http_respond(r, 201, "application/x-echo", b.p, b.n);
	buf_release(&b);
}

static void h_missing(http_req_t *r, void *arg)
{
	(void)arg;
	http_error(r, 404, "no such thing");
}

static int64_t slow_fire(loop_t *l, uint64_t id, void *arg)
{
	(void)l, (void)id;
	http_respond(arg, 200, "text/plain", "late", 4);
	return LOOP_TIMER_DONE;
}

static void h_slow(http_req_t *r, void *arg)
{
	(void)arg;
	loop_add_timer(http_req_loop(r), 1500, slow_fire, r);
}

static void h_big(http_req_t *r, void *arg)
{
	(void)arg;
	char *p = xmalloc(300000);
	memset(p, 'x', 300000);
	http_respond(r, 200, "application/octet-stream", p, 300000);
	free(p);
}

static void h_stream(http_req_t *r, void *arg)
{
	(void)arg;
	http_stream_begin(r, 200, "application/x-streamed");
	for (int i = 0; i < 50; i++) {
		char line[32];
		int n = snprintf(line, sizeof line, "part%02d;", i);
		http_stream_write(r, line, (size_t)n);
	}
	http_stream_end(r);
}

/* http_stream_writev: WRITEV_PARTS chunks of WRITEV_IOV parts each, the bytes in the request's arena
 * (read by the loop after the call returned when on a worker); byte i of the body is 'a' + i % 23. */
#define WRITEV_PARTS 40
#define WRITEV_IOV   300
#define WRITEV_LEN   331
static void writev_body(http_req_t *r)
{
	http_stream_begin(r, 200, "application/x-writev");
	size_t off = 0;
	for (int k = 0; k < WRITEV_PARTS; k++) {
		struct iovec iov[WRITEV_IOV];
		for (int i = 0; i < WRITEV_IOV; i++) {
			size_t n = WRITEV_LEN + (size_t)(i % 3); /* uneven lengths */
			char *p = arena_alloc(&r->arena, n);
			for (size_t j = 0; j < n; j++)
				p[j] = (char)('a' + (off + j) % 23);
			off += n;
			iov[i] = (struct iovec){p, n};
		}
		http_stream_writev(r, iov, WRITEV_IOV);
	}
	http_stream_end(r);
}

static void writev_work(http_req_t *r, void *arg)
{
	(void)arg;
	writev_body(r);
}

static void h_writev_worker(http_req_t *r, void *arg)
{
	(void)arg;
	http_run_on_worker(r, writev_work, NULL);
}

static void h_writev_loop(http_req_t *r, void *arg)
{
	(void)arg;
	writev_body(r);
}

/* A worker that ends its stream and then goes on (a cache update after the answer): the client has the
 * whole answer while the work function still runs (it waits for the test to open the gate). */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void end_early_work(http_req_t *r, void *arg)
{
	(void)arg;
	http_stream_begin(r, 200, "text/plain");
	http_stream_write(r, "whole ", 6);
	http_stream_write(r, "answer", 6);
	http_stream_end(r);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&gate_mu);
	while (!gate_open && pthread_cond_timedwait(&gate_cv, &gate_mu, &until) == 0)
		;
	pthread_mutex_unlock(&gate_mu);
}

static void h_end_early(http_req_t *r, void *arg)
{
	(void)arg;
	http_run_on_worker(r, end_early_work, NULL);
}

static void srv_start(srv_t *s)
{
	err_t err = {0};
	memset(s, 0, sizeof *s);
	if (loop_new(&s->loop, &err))
		TEST_FAILF("loop: %s", err.msg);
	http_server_config_t cfg = {.address = "127.0.0.1:0", .worker_threads = 2};
	if (http_server_new(&s->http, s->loop, &cfg, &err))
		TEST_FAILF("server: %s", err.msg);
	http_handle(s->http, HTTP_M_GET, "/hello", h_hello, NULL);
	http_handle(s->http, HTTP_M_GET | HTTP_M_POST | HTTP_M_PUT, "/echo", h_echo, NULL);
	http_handle(s->http, HTTP_M_GET, "/missing", h_missing, NULL);
	http_handle(s->http, HTTP_M_GET, "/slow", h_slow, NULL);
	http_handle(s->http, HTTP_M_GET, "/big", h_big, NULL);
	http_handle(s->http, HTTP_M_GET, "/stream", h_stream, NULL);
	http_handle(s->http, HTTP_M_GET, "/writev-worker", h_writev_worker, NULL);
	http_handle(s->http, HTTP_M_GET, "/writev-loop", h_writev_loop, NULL);
	http_handle(s->http, HTTP_M_GET, "/end-early", h_end_early, NULL);
	snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", http_server_port(s->http));
	pthread_create(&s->thr, NULL, srv_main, s);
}

static void srv_stop(srv_t *s)
{
	loop_stop(s->loop);
	pthread_join(s->thr, NULL);
	http_server_free(s->http);
	loop_free(s->loop);
}

TEST(get_body_status_content_type)
{
	srv_t s;
	srv_start(&s);
	char url[128];
	snprintf(url, sizeof url, "%s/hello", s.base);
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0};
	httpc_req_t req = {.url = url, .timeout_ms = 5000};
	int rc = httpc_do(&req, &resp, &err);
	int status = (int)resp.status;
	char body[32] = {0}, ct[64] = {0};
	snprintf(body, sizeof body, "%s", resp.body.p);
	snprintf(ct, sizeof ct, "%s", resp.content_type ? resp.content_type : "");
	snprintf(url, sizeof url, "%s/missing", s.base);
	int rc2 = httpc_do(&req, &resp, &err);
	int status2 = (int)resp.status;
	httpc_resp_release(&resp);
	srv_stop(&s);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(status, 200);
	CHECK_STR(body, "hello");
	CHECK_STR(ct, "text/plain");
	CHECK_EQ_INT(rc2, 0); /* a 404 is an answer, not a transport error */
	CHECK_EQ_INT(status2, 404);
}

TEST(post_and_put_with_headers)
{
	srv_t s;
	srv_start(&s);
	char url[128];
	snprintf(url, sizeof url, "%s/echo", s.base);
	const char *hdrs[] = {"X-Test: yes"};
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0};
	httpc_req_t req = {.method = "POST", .url = url, .headers = hdrs, .nheaders = 1, .body = "a=b", .body_len = 3,
			   .timeout_ms = 5000};
	int rc = httpc_do(&req, &resp, &err);
	char body[64] = {0};
	snprintf(body, sizeof body, "%s", resp.body.p);
	req.method = "PUT";
	int rc2 = httpc_do(&req, &resp, &err);
	char body2[64] = {0};
	snprintf(body2, sizeof body2, "%s", resp.body.p);
	int status = (int)resp.status;
	httpc_resp_release(&resp);
	srv_stop(&s);
	CHECK_EQ_INT(rc, 0);
	CHECK_STR(body, "POST|yes|a=b");
	CHECK_EQ_INT(rc2, 0);
	CHECK_STR(body2, "PUT|yes|a=b");
	CHECK_EQ_INT(status, 201);
}

TEST(connection_refused_names_url)
{
	/* Grab a free port, close it, then connect to it. */
	srv_t s;
	srv_start(&s);
	char url[128];
	snprintf(url, sizeof url, "%s/hello", s.base);
	srv_stop(&s);
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0};
	httpc_req_t req = {.url = url, .timeout_ms = 2000};
	int rc = httpc_do(&req, &resp, &err);
	httpc_resp_release(&resp);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, url) != NULL);
	CHECK(strstr(err.msg, "GET") != NULL);
}

TEST(timeout_and_body_limit)
{
	srv_t s;
	srv_start(&s);
	char url[128];
	snprintf(url, sizeof url, "%s/slow", s.base);
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0}, err2 = {0};
	httpc_req_t req = {.url = url, .timeout_ms = 300};
	int rc = httpc_do(&req, &resp, &err);
	char url2[128];
	snprintf(url2, sizeof url2, "%s/big", s.base);
	httpc_req_t req2 = {.url = url2, .timeout_ms = 5000, .max_body = 100000};
	int rc2 = httpc_do(&req2, &resp, &err2);
	req2.max_body = 0;
	int rc3 = httpc_do(&req2, &resp, &err2);
	size_t n3 = resp.body.n;
	httpc_resp_release(&resp);
	usleep(1400 * 1000); /* let the slow handler answer its (abandoned) request before stopping */
	srv_stop(&s);
	CHECK_EQ_INT(rc, ERR_TIMEOUT);
	CHECK(strstr(err.msg, "/slow") != NULL);
	CHECK_EQ_INT(rc2, ERR_LIMIT);
	CHECK_EQ_INT(rc3, 0);
	CHECK_EQ_INT(n3, 300000);
}

TEST(stream_pulls_on_demand)
{
	srv_t s;
	srv_start(&s);
	char url[128];
	snprintf(url, sizeof url, "%s/stream", s.base);
	err_t err = {0};
	httpc_req_t req = {.url = url, .timeout_ms = 5000};
	httpc_stream_t *st = NULL;
	int rc = httpc_stream_open(&st, &req, &err);
	long status = rc ? 0 : httpc_stream_status(st);
	char ct[64] = {0};
	if (!rc && httpc_stream_content_type(st))
		snprintf(ct, sizeof ct, "%s", httpc_stream_content_type(st));
	buf_t all = BUF_INIT;
	int parts = 0;
	while (!rc) {
		rc = httpc_stream_fill(st, 7, &err);
		if (rc)
			break;
		str_t b = httpc_stream_buf(st);
		if (b.n < 7)
			break;
		buf_append(&all, b.p, 7);
		httpc_stream_consume(st, 7);
		parts++;
	}
	bool eof = st && httpc_stream_eof(st);
	httpc_stream_free(st);
	srv_stop(&s);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(status, 200);
	CHECK_STR(ct, "application/x-streamed");
	CHECK_EQ_INT(parts, 50);
	CHECK(eof);
	CHECK(!memcmp(all.p, "part00;part01;", 14));
	CHECK(!memcmp(all.p + 49 * 7, "part49;", 7));
	buf_release(&all);
}

/* Parts by reference, from a worker (several MiB: the worker waits for the socket, the loop copies only
 * what the socket does not take) and from the loop thread: the body is every part's bytes in order. */
TEST(stream_writev_parts_by_reference)
{
	srv_t s;
	srv_start(&s);
	const char *paths[2] = {"/writev-worker", "/writev-loop"};
	size_t want = 0;
	for (int i = 0; i < WRITEV_IOV; i++)
		want += WRITEV_LEN + (size_t)(i % 3);
	want *= WRITEV_PARTS;
	for (int k = 0; k < 2; k++) {
		char url[128];
		snprintf(url, sizeof url, "%s%s", s.base, paths[k]);
		httpc_resp_t resp;
		httpc_resp_init(&resp);
		err_t err = {0};
		httpc_req_t req = {.url = url, .timeout_ms = 20000};
		int rc = httpc_do(&req, &resp, &err);
		size_t bad = resp.body.n;
		for (size_t i = 0; i < resp.body.n; i++)
			if (resp.body.p[i] != (char)('a' + i % 23)) {
				bad = i;
				break;
			}
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT((int)resp.status, 200);
		CHECK_EQ_INT((long long)resp.body.n, (long long)want);
		CHECK_EQ_INT((long long)bad, (long long)resp.body.n);
		httpc_resp_release(&resp);
	}
	srv_stop(&s);
}

TEST(stream_end_from_worker_reaches_client_before_work_returns)
{
	srv_t s;
	srv_start(&s);
	char url[128];
	snprintf(url, sizeof url, "%s/end-early", s.base);
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0};
	httpc_req_t req = {.url = url, .timeout_ms = 20000};
	pthread_mutex_lock(&gate_mu);
	gate_open = false;
	pthread_mutex_unlock(&gate_mu);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = httpc_do(&req, &resp, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT((int)resp.status, 200);
	CHECK(resp.body.n == 12 && memcmp(resp.body.p, "whole answer", 12) == 0);
	CHECK(secs < 5); /* not held until the worker's 10 s wait ends */
	httpc_resp_release(&resp);
	srv_stop(&s);
}

TEST(bad_url_is_invalid)
{
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0};
	httpc_req_t req = {.url = "ftp://127.0.0.1:1/x", .timeout_ms = 1000};
	int rc = httpc_do(&req, &resp, &err);
	httpc_resp_release(&resp);
	CHECK_EQ_INT(rc, ERR_INVALID);
	CHECK(strstr(err.msg, "ftp://127.0.0.1:1/x") != NULL);
}

typedef struct pooled {
	const char *url;
	httpc_pool_t *pool;
	int reused;
} pooled_t;

static void *pooled_gets(void *arg)
{
	pooled_t *p = arg;
	for (int i = 0; i < 10; i++) {
		httpc_req_t req = {.url = p->url, .timeout_ms = 10000, .pool = p->pool};
		httpc_resp_t resp;
		httpc_resp_init(&resp);
		err_t err = {0};
		if (httpc_do(&req, &resp, &err) == 0 && resp.status == 200 && resp.body.n == 5)
			p->reused += resp.reused;
		else
			p->reused = -1000;
		httpc_resp_release(&resp);
	}
	return NULL;
}

TEST(pool_keeps_connections_alive)
{
	srv_t s;
	srv_start(&s);
	char url[128];
	snprintf(url, sizeof url, "%s/hello", s.base);
	/* without a pool every request connects */
	pooled_t none = {url, NULL, 0};
	pooled_gets(&none);
	CHECK(none.reused == 0);
	/* with one, shared by three threads: each thread's later requests find an idle connection */
	httpc_pool_t *pool = httpc_pool_new();
	pooled_t p[3] = {{url, pool, 0}, {url, pool, 0}, {url, pool, 0}};
	pthread_t thr[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&thr[i], NULL, pooled_gets, &p[i]);
	for (int i = 0; i < 3; i++)
		pthread_join(thr[i], NULL);
	CHECK(p[0].reused + p[1].reused + p[2].reused >= 27);
	httpc_pool_free(pool);
	srv_stop(&s);
}

TEST_MAIN()
