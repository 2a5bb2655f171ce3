/*
 * grpc_test.c — the gRPC server against an nghttp2 client driven in-process: unary calls, framing
 * errors, max message size, unknown methods, grpc-timeout deadlines, peer cancellation and
 * flow-control back-pressure on a streaming producer.
 */
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pthread.h>
#include <stdatomic.h>

#include "net/grpc.h"
#include "net/grpc_client.h"
#include "net/grpc_pool.h"
#include "base/clock.h"
#include "base/crc32c.h"

typedef struct client {
	int fd;
	nghttp2_session *s;
	int32_t sid;
	int status;     /* grpc-status, -1 until seen */
	char message[256];
	int http_status;
	size_t body;    /* DATA bytes received */
	bool closed;
	const uint8_t *req;
	size_t req_len, req_off;
} client_t;

static ssize_t cl_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	client_t *c = ud;
	size_t n = c->req_len - c->req_off < len ? c->req_len - c->req_off : len;
	memcpy(buf, c->req + c->req_off, n);
	c->req_off += n;
	if (c->req_off == c->req_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int cl_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl, const uint8_t *value,
		     size_t vl, uint8_t flags, void *ud)
{
	client_t *c = ud;
	if (nl == 11 && !memcmp(name, "grpc-status", 11))
		c->status = atoi((const char *)value);
	else if (nl == 12 && !memcmp(name, "grpc-message", 12))
		snprintf(c->message, sizeof c->message, "%.*s", (int)vl, value);
	else if (nl == 7 && !memcmp(name, ":status", 7))
		c->http_status = atoi((const char *)value);
	return 0;
}

static int cl_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t len, void *ud)
{
	((client_t *)ud)->body += len;
	return 0;
}

static int cl_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	((client_t *)ud)->closed = true;
	return 0;
}

static void client_init(client_t *c, int port, bool auto_window)
{
	memset(c, 0, sizeof *c);
	c->status = -1;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		TEST_FAILF("connect: %s", strerror(errno));
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	nghttp2_session_callbacks *cb;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, cl_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, cl_close);
	nghttp2_option *opt;
	nghttp2_option_new(&opt);
	nghttp2_option_set_no_auto_window_update(opt, !auto_window);
	nghttp2_session_client_new2(&c->s, cb, c, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, NULL, 0);
}

static void client_free(client_t *c)
{
	nghttp2_session_del(c->s);
	close(c->fd);
}

#define HDR(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}

/* Start a call with a raw body (caller frames it). */
static void client_call(client_t *c, const char *path, const uint8_t *body, size_t len, const char *timeout)
{
	nghttp2_nv nva[7] = {HDR(":method", "POST"), HDR(":scheme", "http"), HDR(":authority", "x"),
			     HDR(":path", path), HDR("content-type", "application/grpc"), HDR("te", "trailers"),
			     HDR("grpc-timeout", timeout ? timeout : "")};
	c->req = body;
	c->req_len = len;
	c->req_off = 0;
	nghttp2_data_provider prd = {.read_callback = cl_read};
	c->sid = nghttp2_submit_request(c->s, NULL, nva, timeout ? 7 : 6, &prd, NULL);
}

/* Exchange bytes both ways and run the server loop for a while (reading only if read). */
static void pump(client_t *c, loop_t *l, int rounds, bool rd)
{
	for (int i = 0; i < rounds; i++) {
		const uint8_t *d;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(c->s, &d)) > 0)
			if (write(c->fd, d, (size_t)n) != n)
				TEST_FAILF("client write");
		loop_run_once(l, 5);
		if (!rd)
			continue;
		uint8_t buf[16384];
		while ((n = read(c->fd, buf, sizeof buf)) > 0)
			nghttp2_session_mem_recv(c->s, buf, (size_t)n);
	}
}

static void frame(uint8_t *out, const void *msg, size_t len, uint8_t flag)
{
	out[0] = flag;
	out[1] = (uint8_t)(len >> 24), out[2] = (uint8_t)(len >> 16), out[3] = (uint8_t)(len >> 8), out[4] = (uint8_t)len;
	memcpy(out + 5, msg, len);
}

/* Echo: one reply "echo:<msg>". */
static void h_echo(grpc_call_t *call, str_t msg, void *arg)
{
	char buf[128];
	int n = snprintf(buf, sizeof buf, "echo:%.*s", (int)msg.n, msg.p);
	grpc_call_send(call, buf, (size_t)n);
	grpc_call_finish(call, GRPC_OK, NULL);
}

typedef struct prod_state {
	size_t produced;
	int done;
	bool never_finish;
} prod_state_t;

static void p_produce(grpc_call_t *call, void *arg)
{
	prod_state_t *st = arg;
	static const char kb[1024];
	while (grpc_call_pending(call) < GRPC_OUT_HIGH) {
		grpc_call_send(call, kb, sizeof kb);
		st->produced += sizeof kb;
	}
}

static void p_done(grpc_call_t *call, void *arg)
{
	((prod_state_t *)arg)->done++;
}

static void h_stream(grpc_call_t *call, str_t msg, void *arg)
{
	grpc_call_set_producer(call, p_produce, p_done, arg);
}

static void h_hang(grpc_call_t *call, str_t msg, void *arg)
{
	grpc_call_set_producer(call, NULL, p_done, arg);
}

/* Held: the handler holds the call and leaves it to a "worker" thread (held_worker), which frames a
 * message and posts it back; held_fn sends it and finishes, held_drop runs if the call is gone. */
typedef struct held {
	grpc_call_t *call;
	int done, fn_runs, drops;
	bool cancelled_seen;
	buf_t frames;
} held_t;

static void held_done(grpc_call_t *call, void *arg)
{
	((held_t *)arg)->done++;
}

static void h_held(grpc_call_t *call, str_t msg, void *arg)
{
	held_t *h = arg;
	grpc_call_hold(call);
	h->call = call;
	grpc_call_set_producer(call, NULL, held_done, h);
}

static void held_fn(grpc_call_t *call, void *arg)
{
	held_t *h = arg;
	h->fn_runs++;
	grpc_call_send_framed(call, h->frames.p, h->frames.n);
	buf_release(&h->frames);
	grpc_call_finish(call, GRPC_OK, NULL);
}

static void held_drop(grpc_call_t *call, void *arg)
{
	held_t *h = arg;
	h->drops++;
	buf_release(&h->frames);
}

static void *held_worker(void *arg)
{
	held_t *h = arg;
	h->cancelled_seen = grpc_call_cancelled(h->call);
	/* the request is still readable in the call's arena */
	char *p = arena_alloc(grpc_call_arena(h->call), 16);
	memcpy(p, "late", 5);
	buf_init(&h->frames);
	grpc_frame_append(&h->frames, grpc_call_compresses(h->call), p, 4);
	grpc_call_post(h->call, held_fn, held_drop, h);
	grpc_call_release(h->call);
	return NULL;
}

static void run_held_worker(held_t *h)
{
	pthread_t th;
	pthread_create(&th, NULL, held_worker, h);
	pthread_join(th, NULL);
}

typedef struct env {
	loop_t *loop;
	grpc_server_t *srv;
	listener_t *ls;
	prod_state_t st;
	held_t held;
} env_t;

/* Pump until the Held handler has run (a later request on a connection can sit ~40 ms in Nagle's
 * algorithm against delayed ACKs, so a fixed number of rounds is not enough). */
static void held_wait_call(client_t *c, env_t *e)
{
	for (int i = 0; i < 400 && !e->held.call; i++)
		pump(c, e->loop, 1, true);
	CHECK(e->held.call != NULL);
}

static void env_init(env_t *e)
{
	memset(e, 0, sizeof *e);
	err_t err = {0};
	if (loop_new(&e->loop, &err))
		TEST_FAILF("loop: %s", err.msg);
	grpc_server_config_t cfg = {.max_recv_msg = 1024};
	e->srv = grpc_server_new(e->loop, &cfg);
	grpc_server_register(e->srv, "/t.S/Echo", h_echo, NULL);
	grpc_server_register(e->srv, "/t.S/Stream", h_stream, &e->st);
	grpc_server_register(e->srv, "/t.S/Hang", h_hang, &e->st);
	grpc_server_register(e->srv, "/t.S/Held", h_held, &e->held);
	if (grpc_server_listen(e->srv, "127.0.0.1:0", &e->ls, &err))
		TEST_FAILF("listen: %s", err.msg);
}

static void env_release(env_t *e)
{
	listener_free(e->ls);
	grpc_server_free(e->srv);
	loop_free(e->loop);
}

TEST(unary_echo_and_errors)
{
	env_t e;
	env_init(&e);
	uint8_t body[2048];
	client_t c;
	client_init(&c, listener_port(e.ls), true);
	frame(body, "hi", 2, 0);
	client_call(&c, "/t.S/Echo", body, 7, NULL);
	pump(&c, e.loop, 20, true);
	CHECK_EQ_INT(c.http_status, 200);
	CHECK_EQ_INT(c.status, GRPC_OK);
	CHECK_EQ_INT(c.body, 5 + 7); /* framed "echo:hi" */
	/* unknown method, on the same connection */
	c.status = -1;
	client_call(&c, "/t.S/Nope", body, 7, NULL);
	pump(&c, e.loop, 20, true);
	CHECK_EQ_INT(c.status, GRPC_UNIMPLEMENTED);
	CHECK(strstr(c.message, "/t.S/Nope") != NULL);
	/* frame length disagrees with the body */
	c.status = -1;
	frame(body, "hi", 2, 0);
	body[4] = 9;
	client_call(&c, "/t.S/Echo", body, 7, NULL);
	pump(&c, e.loop, 20, true);
	CHECK_EQ_INT(c.status, GRPC_INTERNAL);
	/* compressed flag */
	c.status = -1;
	frame(body, "hi", 2, 1);
	client_call(&c, "/t.S/Echo", body, 7, NULL);
	pump(&c, e.loop, 20, true);
	CHECK_EQ_INT(c.status, GRPC_UNIMPLEMENTED);
	/* over max_recv_msg (1024) */
	c.status = -1;
	static const char big[1500];
	frame(body, big, sizeof big, 0);
	client_call(&c, "/t.S/Echo", body, 5 + sizeof big, NULL);
	pump(&c, e.loop, 20, true);
	CHECK_EQ_INT(c.status, GRPC_RESOURCE_EXHAUSTED);
	client_free(&c);
	env_release(&e);
}

TEST(deadline_ends_a_hanging_call)
{
	env_t e;
	env_init(&e);
	uint8_t body[8];
	client_t c;
	client_init(&c, listener_port(e.ls), true);
	frame(body, "", 0, 0);
	client_call(&c, "/t.S/Hang", body, 5, "50m");
	pump(&c, e.loop, 5, true);
	CHECK_EQ_INT(c.status, -1);
	CHECK_EQ_INT(e.st.done, 0);
	for (int i = 0; i < 40 && c.status < 0; i++)
		pump(&c, e.loop, 1, true), usleep(5000);
	CHECK_EQ_INT(c.status, GRPC_DEADLINE_EXCEEDED);
	CHECK_EQ_INT(e.st.done, 1);
	client_free(&c);
	env_release(&e);
}

TEST(flow_control_stops_the_producer_and_cancel_releases)
{
	env_t e;
	env_init(&e);
	uint8_t body[8];
	client_t c;
	client_init(&c, listener_port(e.ls), false); /* never grants more window */
	frame(body, "", 0, 0);
	client_call(&c, "/t.S/Stream", body, 5, NULL);
	pump(&c, e.loop, 50, true);
	/* 64 KiB initial window + what fits in the call buffer: nowhere near unbounded */
	CHECK(c.body > 0);
	CHECK(c.body <= 65535);
	CHECK(e.st.produced <= 65535 + GRPC_OUT_HIGH + 2048);
	size_t before = e.st.produced;
	pump(&c, e.loop, 50, true);
	CHECK_EQ_INT(e.st.produced, before);
	CHECK_EQ_INT(e.st.done, 0);
	/* the peer resets the stream: the call ends and its done runs */
	nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, c.sid, NGHTTP2_CANCEL);
	pump(&c, e.loop, 10, true);
	CHECK_EQ_INT(e.st.done, 1);
	/* a second stream whose client disconnects: done runs on connection close */
	client_call(&c, "/t.S/Stream", body, 5, NULL);
	pump(&c, e.loop, 10, true);
	client_free(&c);
	for (int i = 0; i < 20; i++)
		loop_run_once(e.loop, 5);
	CHECK_EQ_INT(e.st.done, 2);
	env_release(&e);
}

TEST(held_call_answered_from_another_thread_or_dropped_once_gone)
{
	env_t e;
	env_init(&e);
	uint8_t body[8];
	frame(body, "", 0, 0);
	client_t c;
	client_init(&c, listener_port(e.ls), true);
	/* live: the worker's post sends and finishes */
	client_call(&c, "/t.S/Held", body, 5, NULL);
	held_wait_call(&c, &e);
	CHECK_EQ_INT(c.status, -1);
	run_held_worker(&e.held);
	CHECK(!e.held.cancelled_seen);
	for (int i = 0; i < 400 && c.status < 0; i++)
		pump(&c, e.loop, 1, true);
	CHECK_EQ_INT(e.held.fn_runs, 1);
	CHECK_EQ_INT(e.held.drops, 0);
	CHECK_EQ_INT(c.status, GRPC_OK);
	CHECK_EQ_INT(c.body, 5 + 4);
	CHECK_EQ_INT(e.held.done, 1);
	/* the peer resets first: done runs at once, the held call stays readable, the post is dropped */
	e.held.call = NULL;
	c.status = -1;
	client_call(&c, "/t.S/Held", body, 5, NULL);
	held_wait_call(&c, &e);
	nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, c.sid, NGHTTP2_CANCEL);
	for (int i = 0; i < 400 && e.held.done < 2; i++)
		pump(&c, e.loop, 1, true);
	CHECK_EQ_INT(e.held.done, 2);
	run_held_worker(&e.held);
	CHECK(e.held.cancelled_seen);
	pump(&c, e.loop, 5, true);
	CHECK_EQ_INT(e.held.fn_runs, 1);
	CHECK_EQ_INT(e.held.drops, 1);
	/* the connection goes away under a held call */
	e.held.call = NULL;
	client_call(&c, "/t.S/Held", body, 5, NULL);
	held_wait_call(&c, &e);
	client_free(&c);
	for (int i = 0; i < 400 && e.held.done < 3; i++)
		loop_run_once(e.loop, 5);
	CHECK_EQ_INT(e.held.done, 3);
	run_held_worker(&e.held);
	CHECK(e.held.cancelled_seen);
	loop_run_once(e.loop, 5);
	CHECK_EQ_INT(e.held.drops, 2);
	/* a post still queued when the loop is freed: drop runs then */
	client_init(&c, listener_port(e.ls), true);
	e.held.call = NULL;
	client_call(&c, "/t.S/Held", body, 5, NULL);
	held_wait_call(&c, &e);
	client_free(&c);
	listener_free(e.ls);
	run_held_worker(&e.held);
	grpc_server_free(e.srv);
	loop_free(e.loop);
	CHECK_EQ_INT(e.held.drops, 3);
}

/* ---- the client (net/grpc_client.h) against the server running on its own thread ---- */

typedef struct srv_env {
	loop_t *loop;
	grpc_server_t *srv;
	listener_t *ls;
	pthread_t th;
	int port;
	atomic_size_t produced;
	atomic_int done;
	atomic_int limit; /* messages a Count stream sends, 0 = unbounded */
} srv_env_t;

typedef struct count_state {
	srv_env_t *e;
	int sent, limit;
	size_t size;
} count_state_t;

static void c_produce(grpc_call_t *call, void *arg)
{
	count_state_t *st = arg;
	static char payload[8192];
	while (grpc_call_pending(call) < GRPC_OUT_HIGH) {
		if (st->limit && st->sent == st->limit) {
			grpc_call_finish(call, GRPC_OK, NULL);
			return;
		}
		memset(payload, 'a' + st->sent % 26, st->size);
		snprintf(payload, 16, "%08d", st->sent);
		grpc_call_send(call, payload, st->size);
		st->sent++;
		atomic_fetch_add(&st->e->produced, st->size);
	}
}

static void c_done(grpc_call_t *call, void *arg)
{
	count_state_t *st = arg;
	atomic_fetch_add(&st->e->done, 1);
}

/* Count: streams messages "%08d" padded to the size given in the request (text), limit from env. */
static void h_count(grpc_call_t *call, str_t msg, void *arg)
{
	srv_env_t *e = arg;
	count_state_t *st = ARENA_NEW(grpc_call_arena(call), count_state_t);
	st->e = e;
	st->limit = atomic_load(&e->limit);
	st->size = msg.n ? (size_t)atoi(arena_strndup(grpc_call_arena(call), msg.p, msg.n)) : 16;
	if (st->size < 16 || st->size > 8192)
		st->size = 16;
	grpc_call_set_producer(call, c_produce, c_done, st);
}

static void h_fail(grpc_call_t *call, str_t msg, void *arg)
{
	grpc_call_finish(call, GRPC_NOT_FOUND, "no such thing: 100% gone");
}

static void h_big(grpc_call_t *call, str_t msg, void *arg)
{
	uint8_t *p = grpc_call_reserve(call, 100000);
	memset(p, 'x', 100000);
	grpc_call_finish(call, GRPC_OK, NULL);
}

/* Size: one reply, the request's length in decimal. */
static void h_size(grpc_call_t *call, str_t msg, void *arg)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%zu", msg.n);
	grpc_call_send(call, buf, (size_t)n);
	grpc_call_finish(call, GRPC_OK, NULL);
}

static void h_hang2(grpc_call_t *call, str_t msg, void *arg)
{
	srv_env_t *e = arg;
	count_state_t *st = ARENA_NEW(grpc_call_arena(call), count_state_t);
	st->e = e;
	grpc_call_set_producer(call, NULL, c_done, st);
}

static void *srv_thread(void *arg)
{
	loop_run(((srv_env_t *)arg)->loop);
	return NULL;
}

static void srv_listen(srv_env_t *e, const char *addr)
{
	err_t err = {0};
	if (grpc_server_listen(e->srv, addr, &e->ls, &err))
		TEST_FAILF("listen: %s", err.msg);
	e->port = listener_port(e->ls);
}

static void srv_start(srv_env_t *e, bool compress)
{
	memset(e, 0, sizeof *e);
	err_t err = {0};
	if (loop_new(&e->loop, &err))
		TEST_FAILF("loop: %s", err.msg);
	grpc_server_config_t cfg = {.compress = compress};
	e->srv = grpc_server_new(e->loop, &cfg);
	grpc_server_register(e->srv, "/t.S/Echo", h_echo, NULL);
	grpc_server_register(e->srv, "/t.S/Count", h_count, e);
	grpc_server_register(e->srv, "/t.S/Fail", h_fail, NULL);
	grpc_server_register(e->srv, "/t.S/Big", h_big, NULL);
	grpc_server_register(e->srv, "/t.S/Hang", h_hang2, e);
	grpc_server_register(e->srv, "/t.S/Size", h_size, NULL);
	srv_listen(e, "127.0.0.1:0");
	pthread_create(&e->th, NULL, srv_thread, e);
}

static void srv_stop_thread(srv_env_t *e)
{
	loop_stop(e->loop);
	loop_wakeup(e->loop);
	pthread_join(e->th, NULL);
}

static void srv_free(srv_env_t *e)
{
	srv_stop_thread(e);
	listener_free(e->ls);
	grpc_server_free(e->srv);
	loop_free(e->loop);
}

static grpc_channel_t *chan(int port, const grpc_channel_config_t *cfg)
{
	char target[64];
	snprintf(target, sizeof target, "127.0.0.1:%d", port);
	grpc_channel_t *ch;
	err_t err = {0};
	if (grpc_channel_new(&ch, NULL, target, cfg, &err))
		TEST_FAILF("channel: %s", err.msg);
	return ch;
}

static int drain(grpc_stream_t *st, int *n, err_t *err)
{
	const uint8_t *m;
	size_t len;
	int rc;
	*n = 0;
	while ((rc = grpc_stream_recv(st, &m, &len, err)) == 1)
		(*n)++;
	return rc;
}

static int wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 400 && atomic_load(v) < want; i++)
		usleep(5000);
	return atomic_load(v);
}

TEST(client_unary_stream_and_reuse)
{
	srv_env_t e;
	srv_start(&e, false);
	grpc_channel_t *ch = chan(e.port, NULL);
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	uint8_t *resp;
	size_t n;
	volatile int rc = grpc_channel_unary(ch, "/t.S/Echo", "hi", 2, 5000, &a, &resp, &n, &err);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(n, 7);
	CHECK(memcmp(resp, "echo:hi", 7) == 0);
	/* a stream of 1000 messages of 100 bytes, in order */
	atomic_store(&e.limit, 1000);
	grpc_stream_t *st = grpc_channel_call(ch, "/t.S/Count", "100", 3, 5000);
	const uint8_t *m;
	size_t len;
	int got = 0;
	while ((rc = grpc_stream_recv(st, &m, &len, &err)) == 1) {
		char want[16];
		snprintf(want, sizeof want, "%08d", got++);
		CHECK_EQ_INT(len, 100);
		CHECK(memcmp(m, want, 8) == 0);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(got, 1000);
	/* end is sticky */
	CHECK_EQ_INT(grpc_stream_recv(st, &m, &len, &err), 0);
	grpc_stream_free(st);
	/* status and percent-decoded message */
	rc = grpc_channel_unary(ch, "/t.S/Fail", "", 0, 5000, &a, &resp, &n, &err);
	CHECK_EQ_INT(rc, ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "NotFound: no such thing: 100% gone") != NULL);
	CHECK(strstr(err.msg, "/t.S/Fail") != NULL);
	rc = grpc_channel_unary(ch, "/t.S/Nope", "", 0, 5000, &a, &resp, &n, &err);
	CHECK_EQ_INT(rc, ERR_INTERNAL);
	CHECK(strstr(err.msg, "Unimplemented") != NULL);
	/* several streams at once on one connection */
	grpc_stream_t *sts[8];
	for (int i = 0; i < 8; i++)
		sts[i] = grpc_channel_call(ch, "/t.S/Count", "1000", 4, 5000);
	for (int i = 0; i < 8; i++) {
		int k;
		CHECK_EQ_INT(drain(sts[i], &k, &err), 0);
		CHECK_EQ_INT(k, 1000);
		grpc_stream_free(sts[i]);
	}
	CHECK_EQ_INT(grpc_channel_connects(ch), 1);
	arena_release(&a);
	grpc_channel_free(ch);
	srv_free(&e);
}

TEST(client_deadline_cancel_and_max_message)
{
	srv_env_t e;
	srv_start(&e, false);
	grpc_channel_config_t cfg = {.max_recv_msg = 50000};
	grpc_channel_t *ch = chan(e.port, &cfg);
	err_t err = {0};
	/* deadline: the hanging call ends on both sides */
	grpc_stream_t *st = grpc_channel_call(ch, "/t.S/Hang", "", 0, 100);
	int k;
	volatile int rc = drain(st, &k, &err);
	CHECK_EQ_INT(rc, ERR_TIMEOUT);
	CHECK(strstr(err.msg, "DeadlineExceeded") != NULL);
	grpc_stream_free(st);
	CHECK_EQ_INT(wait_for(&e.done, 1), 1);
	/* cancel in the middle of an endless stream */
	atomic_store(&e.limit, 0);
	st = grpc_channel_call(ch, "/t.S/Count", "64", 2, 0);
	const uint8_t *m;
	size_t len;
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(grpc_stream_recv(st, &m, &len, &err), 1);
	grpc_stream_cancel(st);
	while ((rc = grpc_stream_recv(st, &m, &len, &err)) == 1)
		;
	CHECK_EQ_INT(rc, ERR_CANCELED);
	grpc_stream_free(st);
	CHECK_EQ_INT(wait_for(&e.done, 2), 2);
	/* freeing an unfinished stream cancels it too */
	st = grpc_channel_call(ch, "/t.S/Count", "64", 2, 0);
	CHECK_EQ_INT(grpc_stream_recv(st, &m, &len, &err), 1);
	grpc_stream_free(st);
	CHECK_EQ_INT(wait_for(&e.done, 3), 3);
	/* a message over max_recv_msg */
	arena_t a;
	arena_init(&a, 0);
	uint8_t *resp;
	rc = grpc_channel_unary(ch, "/t.S/Big", "", 0, 5000, &a, &resp, &len, &err);
	CHECK_EQ_INT(rc, ERR_LIMIT);
	CHECK(strstr(err.msg, "larger than max") != NULL);
	/* the connection still works */
	CHECK_EQ_INT(grpc_channel_unary(ch, "/t.S/Echo", "x", 1, 5000, &a, &resp, &len, &err), 0);
	CHECK_EQ_INT(grpc_channel_connects(ch), 1);
	arena_release(&a);
	grpc_channel_free(ch);
	srv_free(&e);
}

TEST(client_flow_control_bounds_memory)
{
	srv_env_t e;
	srv_start(&e, false);
	grpc_channel_config_t cfg = {.stream_buffer = 64 * 1024};
	grpc_channel_t *ch = chan(e.port, &cfg);
	err_t err = {0};
	atomic_store(&e.limit, 0);
	grpc_stream_t *st = grpc_channel_call(ch, "/t.S/Count", "8192", 4, 0);
	const uint8_t *m;
	size_t len;
	CHECK_EQ_INT(grpc_stream_recv(st, &m, &len, &err), 1);
	usleep(300000); /* a slow consumer */
	size_t p1 = atomic_load(&e.produced);
	usleep(200000);
	size_t p2 = atomic_load(&e.produced);
	/* the server stopped: stream window (1 MiB) + our buffer + its own buffer, not unbounded */
	CHECK_EQ_INT(p1, p2);
	CHECK(p2 < (1u << 20) + 64 * 1024 + 2 * GRPC_OUT_HIGH + 4 * 8192);
	CHECK(grpc_stream_buffered(st) < (1u << 20) + 64 * 1024 + 8192 + 5);
	/* consuming lets it continue */
	for (int i = 0; i < 1000; i++)
		CHECK_EQ_INT(grpc_stream_recv(st, &m, &len, &err), 1);
	CHECK(atomic_load(&e.produced) > p2);
	grpc_stream_free(st);
	CHECK_EQ_INT(wait_for(&e.done, 1), 1);
	grpc_channel_free(ch);
	srv_free(&e);
}

TEST(client_snappy_both_ways)
{
	srv_env_t e;
	srv_start(&e, true);
	grpc_channel_config_t cfg = {.compress = true};
	grpc_channel_t *ch = chan(e.port, &cfg);
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	uint8_t *resp;
	size_t n;
	volatile int rc = grpc_channel_unary(ch, "/t.S/Echo", "hello", 5, 5000, &a, &resp, &n, &err);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(n, 10);
	CHECK(memcmp(resp, "echo:hello", 10) == 0);
	atomic_store(&e.limit, 300);
	grpc_stream_t *st = grpc_channel_call(ch, "/t.S/Count", "8000", 4, 5000);
	const uint8_t *m;
	size_t len;
	int got = 0;
	while ((rc = grpc_stream_recv(st, &m, &len, &err)) == 1) {
		CHECK_EQ_INT(len, 8000);
		CHECK(m[7999] == 'a' + got % 26);
		got++;
	}
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(got, 300);
	grpc_stream_free(st);
	arena_release(&a);
	grpc_channel_free(ch);
	srv_free(&e);
}

TEST(snappy_framing_codec)
{
	buf_t enc = BUF_INIT, dec = BUF_INIT;
	err_t err = {0};
	static char big[200000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i % 251 < 100 ? 'z' : i % 7);
	grpc_snappy_encode(&enc, big, sizeof big);
	CHECK(memcmp(enc.p, "\xff\x06\x00\x00sNaPpY", 10) == 0);
	CHECK(enc.n < sizeof big);
	CHECK_EQ_INT(grpc_snappy_decode(&dec, enc.p, enc.n, sizeof big, &err), 0);
	CHECK_EQ_INT(dec.n, sizeof big);
	CHECK(memcmp(dec.p, big, sizeof big) == 0);
	/* max */
	buf_reset(&dec);
	CHECK_EQ_INT(grpc_snappy_decode(&dec, enc.p, enc.n, 1000, &err), ERR_LIMIT);
	/* an uncompressed chunk written by hand: type 1, len, masked crc32c, data */
	uint8_t hand[64] = {0xff, 6, 0, 0, 's', 'N', 'a', 'P', 'p', 'Y', 0x01, 4 + 3, 0, 0};
	uint32_t c = crc32c(0, "abc", 3);
	c = ((c >> 15) | (c << 17)) + 0xa282ead8u;
	hand[14] = (uint8_t)c, hand[15] = (uint8_t)(c >> 8), hand[16] = (uint8_t)(c >> 16), hand[17] = (uint8_t)(c >> 24);
	memcpy(hand + 18, "abc", 3);
	/* plus a padding chunk, skipped */
	hand[21] = 0xfe, hand[22] = 2, hand[23] = 0, hand[24] = 0;
	buf_reset(&dec);
	CHECK_EQ_INT(grpc_snappy_decode(&dec, hand, 27, 100, &err), 0);
	CHECK_SLICE(buf_str(&dec), "abc");
	/* corruptions: checksum, missing identifier, truncation, reserved type */
	hand[18] = 'x';
	CHECK_EQ_INT(grpc_snappy_decode(&dec, hand, 21, 100, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "checksum") != NULL);
	hand[18] = 'a';
	CHECK_EQ_INT(grpc_snappy_decode(&dec, hand + 10, 11, 100, &err), ERR_CORRUPT);
	CHECK_EQ_INT(grpc_snappy_decode(&dec, hand, 20, 100, &err), ERR_CORRUPT);
	hand[10] = 0x05;
	CHECK_EQ_INT(grpc_snappy_decode(&dec, hand, 21, 100, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "unskippable") != NULL);
	/* empty */
	buf_reset(&enc);
	grpc_snappy_encode(&enc, "", 0);
	CHECK_EQ_INT(enc.n, 0);
	buf_release(&enc);
	buf_release(&dec);
}

static void post_stop_listening(void *arg)
{
	srv_env_t *e = arg;
	listener_free(e->ls);
	e->ls = NULL;
}

static void post_listen_again(void *arg)
{
	srv_env_t *e = arg;
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", e->port);
	err_t err = {0};
	if (grpc_server_listen(e->srv, addr, &e->ls, &err))
		e->ls = NULL;
}

TEST(client_reconnects_with_backoff)
{
	srv_env_t e;
	srv_start(&e, false);
	grpc_channel_config_t cfg = {.backoff_initial_ms = 50, .backoff_max_ms = 200};
	grpc_channel_t *ch = chan(e.port, &cfg);
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	uint8_t *resp;
	size_t n;
	CHECK_EQ_INT(grpc_channel_unary(ch, "/t.S/Echo", "a", 1, 5000, &a, &resp, &n, &err), 0);
	/* a stream in flight when the server goes away fails with UNAVAILABLE */
	atomic_store(&e.limit, 0);
	grpc_stream_t *st = grpc_channel_call(ch, "/t.S/Count", "64", 2, 0);
	const uint8_t *m;
	size_t len;
	CHECK_EQ_INT(grpc_stream_recv(st, &m, &len, &err), 1);
	loop_post(e.loop, post_stop_listening, &e);
	int k;
	volatile int rc = drain(st, &k, &err);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "connection lost") != NULL);
	grpc_stream_free(st);
	/* nothing listens: connect refused, then fail-fast during the backoff */
	rc = grpc_channel_unary(ch, "/t.S/Echo", "a", 1, 5000, &a, &resp, &n, &err);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "connect") != NULL);
	rc = grpc_channel_unary(ch, "/t.S/Echo", "a", 1, 5000, &a, &resp, &n, &err);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	/* back: within a few backoffs the channel reconnects */
	loop_post(e.loop, post_listen_again, &e);
	for (int i = 0; i < 100; i++) {
		rc = grpc_channel_unary(ch, "/t.S/Echo", "b", 1, 5000, &a, &resp, &n, &err);
		if (rc == 0)
			break;
		usleep(20000);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK(memcmp(resp, "echo:b", 6) == 0);
	CHECK_EQ_INT(grpc_channel_connects(ch), 2);
	arena_release(&a);
	grpc_channel_free(ch);
	srv_free(&e);
}

static void junk_accept(listener_t *ls, conn_t *c, void *arg)
{
	static const char junk[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\nthis is not http/2 at all";
	conn_write(c, junk, sizeof junk - 1);
	conn_close_after_flush(c);
}

TEST(client_survives_a_non_grpc_peer)
{
	loop_t *l;
	err_t err = {0};
	CHECK_EQ_INT(loop_new(&l, &err), 0);
	listener_t *ls;
	listener_config_t lc = {.address = "127.0.0.1:0", .on_accept = junk_accept};
	CHECK_EQ_INT(listener_new(&ls, l, &lc, &err), 0);
	srv_env_t e = {.loop = l};
	pthread_create(&e.th, NULL, srv_thread, &e);
	grpc_channel_t *ch = chan(listener_port(ls), NULL);
	grpc_stream_t *st = grpc_channel_call(ch, "/t.S/Echo", "x", 1, 2000);
	int k;
	volatile int rc = drain(st, &k, &err);
	CHECK(rc == ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "127.0.0.1:") != NULL);
	grpc_stream_free(st);
	grpc_channel_free(ch);
	srv_stop_thread(&e);
	listener_free(ls);
	loop_free(l);
}

/* ---- grpc_pool: calls from the calling thread ---- */

/* A test server (compressing its answers or not) and a pool of connections to it. */
static grpc_pool_t *pool_start(srv_env_t *e, bool srv_compress, const grpc_pool_config_t *cfg)
{
	srv_start(e, srv_compress);
	char target[64];
	snprintf(target, sizeof target, "127.0.0.1:%d", e->port);
	grpc_pool_t *p = NULL;
	err_t err = {0};
	CHECK_EQ_INT(grpc_pool_new(&p, target, cfg, &err), 0);
	return p;
}

static grpc_pool_call_t *pool_call_as(grpc_pool_t *p, const char *path, const char *msg, bool snappy,
                                      int64_t timeout_ms, bool stream)
{
	buf_t b = BUF_INIT;
	buf_extend(&b, 5);
	if (snappy)
		grpc_snappy_encode(&b, msg, strlen(msg));
	else
		buf_puts(&b, msg);
	uint8_t *h = (uint8_t *)b.p;
	size_t n = b.n - 5;
	h[0] = snappy;
	h[1] = (uint8_t)(n >> 24), h[2] = (uint8_t)(n >> 16), h[3] = (uint8_t)(n >> 8), h[4] = (uint8_t)n;
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	return stream ? grpc_pool_stream_start(p, path, &b, deadline, NULL, NULL) : grpc_pool_call_start(p, path, &b, deadline);
}

static grpc_pool_call_t *pool_call(grpc_pool_t *p, const char *path, const char *msg, bool snappy, int64_t timeout_ms)
{
	return pool_call_as(p, path, msg, snappy, timeout_ms, false);
}

static void pool_case(bool snappy)
{
	srv_env_t e;
	grpc_pool_t *p = pool_start(&e, false, &(grpc_pool_config_t){.compress = snappy});
	err_t err = {0};
	/* two at once, then two more on the same connections */
	for (int round = 0; round < 2; round++) {
		grpc_pool_call_t *c[2] = {pool_call(p, "/t.S/Echo", "a", snappy, 5000),
		                          pool_call(p, "/t.S/Echo", "bb", snappy, 5000)};
		grpc_pool_run(c, 2);
		for (int i = 0; i < 2; i++) {
			int nm = -1;
			volatile int rc = grpc_pool_call_end(c[i], &nm, &err);
			CHECK_EQ_INT(rc, 0);
			CHECK_EQ_INT(nm, 1);
		}
		CHECK_EQ_INT(grpc_pool_connects(p), 2);
	}
	/* a request far over the HTTP/2 windows (64 KiB until the server's updates come) */
	char *big = malloc(3u << 20);
	for (size_t i = 0; i < (3u << 20) - 1; i++)
		big[i] = (char)('a' + (i * 7 + i / 1000) % 26);
	big[(3u << 20) - 1] = 0;
	grpc_pool_call_t *c = pool_call(p, "/t.S/Size", big, snappy, 10000);
	free(big);
	grpc_pool_run(&c, 1);
	int nm;
	volatile int rc = grpc_pool_call_end(c, &nm, &err);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(nm, 1);
	/* a status and its message */
	c = pool_call(p, "/t.S/Fail", "x", snappy, 5000);
	grpc_pool_run(&c, 1);
	rc = grpc_pool_call_end(c, &nm, &err);
	CHECK_EQ_INT(rc, grpc_err_from_status(GRPC_NOT_FOUND));
	CHECK(strstr(err.msg, "/t.S/Fail: NotFound: no such thing: 100% gone") != NULL);
	/* a call that is never answered ends at its deadline */
	uint64_t t0 = clock_mono_ms();
	c = pool_call(p, "/t.S/Hang", "x", snappy, 300);
	grpc_pool_run(&c, 1);
	rc = grpc_pool_call_end(c, &nm, &err);
	uint64_t took = clock_mono_ms() - t0;
	CHECK(rc == ERR_TIMEOUT);
	CHECK(took >= 290 && took < 3000);
	/* the server drops the idle connections: the next calls go again on new ones, unharmed */
	loop_post(e.loop, post_stop_listening, &e);
	usleep(100000);
	loop_post(e.loop, post_listen_again, &e);
	usleep(100000);
	uint64_t before = grpc_pool_connects(p);
	grpc_pool_call_t *c2[2] = {pool_call(p, "/t.S/Echo", "a", snappy, 5000),
	                           pool_call(p, "/t.S/Echo", "b", snappy, 5000)};
	grpc_pool_run(c2, 2);
	for (int i = 0; i < 2; i++) {
		rc = grpc_pool_call_end(c2[i], &nm, &err);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(nm, 1);
	}
	CHECK(grpc_pool_connects(p) > before);
	/* nothing listens: Unavailable, saying so */
	loop_post(e.loop, post_stop_listening, &e);
	usleep(100000);
	c = pool_call(p, "/t.S/Echo", "a", snappy, 5000);
	grpc_pool_run(&c, 1);
	rc = grpc_pool_call_end(c, &nm, &err);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "connect") != NULL);
	grpc_pool_free(p);
	srv_free(&e);
}

TEST(pool_calls_reuse_statuses_deadline_reconnect)
{
	pool_case(false);
	pool_case(true);
}

/* Server streaming on pooled connections, read by the calling thread. */
static void pool_stream_case(bool compress)
{
	srv_env_t e;
	grpc_pool_t *p = pool_start(&e, compress, &(grpc_pool_config_t){.compress = compress, .stream_window = 256u << 10});
	err_t err = {0};
	/* every message, in order, then OK; twice on the same connection */
	atomic_store(&e.limit, 3000);
	for (int round = 0; round < 2; round++) {
		grpc_pool_call_t *c = pool_call_as(p, "/t.S/Count", "100", compress, 10000, true);
		const uint8_t *m;
		size_t len;
		int rc, n = 0;
		bool ordered = true;
		while ((rc = grpc_pool_stream_recv(c, &m, &len, &err)) == 1) {
			char want[16];
			snprintf(want, sizeof want, "%08d", n++);
			ordered = ordered && len == 100 && memcmp(m, want, 8) == 0;
		}
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(n, 3000);
		CHECK(ordered);
		CHECK_EQ_INT(grpc_pool_stream_recv(c, &m, &len, &err), 0);
		CHECK_EQ_INT(grpc_pool_call_end(c, NULL, &err), 0);
	}
	CHECK_EQ_INT(grpc_pool_connects(p), 1);
	/* a consumer that stops reading stops the server (the window, plus what the server buffers) */
	atomic_store(&e.limit, 0);
	atomic_store(&e.produced, 0);
	grpc_pool_call_t *c = pool_call_as(p, "/t.S/Count", "8192", compress, 10000, true);
	const uint8_t *m;
	size_t len;
	CHECK_EQ_INT(grpc_pool_stream_recv(c, &m, &len, &err), 1);
	usleep(300000);
	size_t p1 = atomic_load(&e.produced);
	usleep(200000);
	CHECK_EQ_INT(atomic_load(&e.produced), p1);
	if (!compress) /* (compressed, the window holds many more messages) */
		CHECK(p1 <= 2 * (256u << 10) + GRPC_OUT_HIGH + 3 * 8192);
	for (int i = 0; i < 100000 && atomic_load(&e.produced) == p1; i++) /* reading lets it go on */
		CHECK_EQ_INT(grpc_pool_stream_recv(c, &m, &len, &err), 1);
	CHECK(atomic_load(&e.produced) > p1);
	/* ending it early cancels it on the server */
	int done0 = atomic_load(&e.done);
	grpc_pool_call_end(c, NULL, &err);
	for (int i = 0; i < 200 && atomic_load(&e.done) == done0; i++)
		usleep(10000);
	CHECK_EQ_INT(atomic_load(&e.done), done0 + 1);
	/* the deadline ends a stream that stalls */
	uint64_t t0 = clock_mono_ms();
	c = pool_call_as(p, "/t.S/Hang", "x", compress, 300, true);
	volatile int rc = grpc_pool_stream_recv(c, &m, &len, &err);
	CHECK(rc == ERR_TIMEOUT);
	CHECK(clock_mono_ms() - t0 >= 290);
	grpc_pool_call_end(c, NULL, &err);
	/* a status */
	c = pool_call_as(p, "/t.S/Fail", "x", compress, 5000, true);
	rc = grpc_pool_stream_recv(c, &m, &len, &err);
	CHECK_EQ_INT(rc, grpc_err_from_status(GRPC_NOT_FOUND));
	CHECK(strstr(err.msg, "NotFound: no such thing") != NULL);
	grpc_pool_call_end(c, NULL, &err);
	grpc_pool_free(p);
	srv_free(&e);
}

/* backoff_max_ms: after a failed connect the next calls fail at once, then connect again. */
TEST(pool_backoff_after_a_failed_connect)
{
	srv_env_t e;
	grpc_pool_t *p = pool_start(&e, false, &(grpc_pool_config_t){.backoff_max_ms = 400});
	err_t err = {0};
	loop_post(e.loop, post_stop_listening, &e);
	usleep(100000);
	grpc_pool_call_t *c = pool_call_as(p, "/t.S/Echo", "a", false, 5000, true);
	const uint8_t *m;
	size_t len;
	volatile int rc = grpc_pool_stream_recv(c, &m, &len, &err);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	grpc_pool_call_end(c, NULL, &err);
	uint64_t n = grpc_pool_connects(p);
	c = pool_call_as(p, "/t.S/Echo", "a", false, 5000, true);
	rc = grpc_pool_stream_recv(c, &m, &len, &err);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "backing off") != NULL);
	grpc_pool_call_end(c, NULL, &err);
	loop_post(e.loop, post_listen_again, &e);
	usleep(100000);
	for (int i = 0; i < 100; i++) {
		c = pool_call_as(p, "/t.S/Echo", "a", false, 5000, true);
		while ((rc = grpc_pool_stream_recv(c, &m, &len, &err)) == 1)
			;
		grpc_pool_call_end(c, NULL, &err);
		if (rc == 0)
			break;
		usleep(20000);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK(grpc_pool_connects(p) > n);
	grpc_pool_free(p);
	srv_free(&e);
}

TEST(pool_stream_order_flow_control_cancel_deadline)
{
	pool_stream_case(false);
	pool_stream_case(true);
}

TEST_MAIN()
