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

#include "net/grpc.h"

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

typedef struct env {
	loop_t *loop;
	grpc_server_t *srv;
	listener_t *ls;
	prod_state_t st;
} env_t;

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

TEST_MAIN()
