/* http_fuzz — the HTTP/1.1 server's request handling (net/http.c over net/conn.c) fed fuzzer bytes
 * through a socketpair adopted by a real server on a private loop: parsing, limits, pipelining,
 * chunked bodies, Expect, form decoding, routing, streaming, deferred and worker responses.
 *
 * Input: byte 0 = flags (bit 0: half-close instead of a full close at the end; bit 1: read the
 * responses only after everything was sent), byte 1 = split size (the rest is written in pieces of
 * that many bytes, 0 = all at once, with one loop iteration between pieces), then the bytes.
 * Invariants: never a crash/leak/UB; the server closes a half-closed connection within a bound
 * (no request can hang forever once the peer has sent everything); all it ever writes is HTTP/1.1
 * responses; every request is finished once the connection is gone. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/clock.h"
#include "base/log.h"
#include "fuzz_util.h"
#include "net/http.h"
#include "net/loop.h"

static loop_t *loop;
static http_server_t *srv;

static void h_echo(http_req_t *r, void *arg)
{
	buf_t b = BUF_INIT;
	for (size_t i = 0; i < r->form.n; i++)
		buf_printf(&b, STR_FMT "=" STR_FMT "\n", STR_ARG(r->form.v[i].key), STR_ARG(r->form.v[i].val));
	str_t v;
	if (http_req_header(r, "X-Echo", &v))
		buf_printf(&b, "x-echo: " STR_FMT "\n", STR_ARG(v));
	buf_printf(&b, "path=" STR_FMT " body=%zu\n", STR_ARG(r->path), r->body.n);
	http_add_header(r, "X-Handler", "echo");
	http_respond_buf(r, 200, "text/plain; charset=utf-8", &b);
	buf_release(&b);
}

static int param_small(const http_req_t *r, const char *key, int def)
{
	str_t v;
	if (!http_req_param(r, key, &v) || v.n != 1 || v.p[0] < '0' || v.p[0] > '9')
		return def;
	return v.p[0] - '0';
}

/* Synchronous stream: begin, n parts, end, all inside the handler. */
static void h_stream(http_req_t *r, void *arg)
{
	int n = param_small(r, "n", 3);
	http_stream_begin(r, 200, "text/plain; charset=utf-8");
	for (int i = 0; i < n; i++) {
		char line[32];
		int k = snprintf(line, sizeof line, "line %d\n", i);
		http_stream_write(r, line, (size_t)k);
	}
	http_stream_end(r);
}

/* Deferred stream: parts from 0 ms timers, after the handler returned (the client may be gone). */
typedef struct later {
	http_req_t *r;
	int left;
} later_t;

static int64_t later_tick(loop_t *l, uint64_t id, void *arg)
{
	later_t *s = arg;
	if (!http_req_connected(s->r) || s->left == 0) {
		http_stream_end(s->r);
		return LOOP_TIMER_DONE;
	}
	http_stream_write(s->r, "part\n", 5);
	s->left--;
	(void)l;
	(void)id;
	return 0;
}

static void h_later(http_req_t *r, void *arg)
{
	later_t *s = ARENA_NEW(&r->arena, later_t);
	s->r = r;
	s->left = param_small(r, "n", 2);
	http_stream_begin(r, 200, "text/plain; charset=utf-8");
	loop_add_timer(http_req_loop(r), 0, later_tick, s);
}

static void work(http_req_t *r, void *arg)
{
	char *s = arena_printf(&r->arena, "worked %zu %zu\n", r->form.n, r->body.n);
	if (param_small(r, "fail", 0) == 1)
		return; /* does not respond: the server answers 500 */
	http_respond(r, 200, "text/plain; charset=utf-8", s, strlen(s));
}

static void h_work(http_req_t *r, void *arg)
{
	http_run_on_worker(r, work, NULL);
}

static void setup(void)
{
	log_set_level(LOG_ERROR);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (devnull >= 0 && !getenv("HTTP_FUZZ_LOG"))
		log_set_fd(devnull); /* "handler did not respond" is expected here */
	err_t err = {0};
	if (loop_new(&loop, &err))
		die("loop_new: %s", err.msg);
	http_server_config_t cfg = {
		.address = "127.0.0.1:0",
		.max_header_bytes = 4096,
		.max_body_bytes = 8192,
		.worker_threads = 1,
	};
	if (http_server_new(&srv, loop, &cfg, &err))
		die("http_server_new: %s", err.msg);
	http_server_set_ready(srv, true);
	http_handle(srv, HTTP_M_GET | HTTP_M_POST | HTTP_M_PUT | HTTP_M_HEAD, "/echo", h_echo, NULL);
	http_handle(srv, HTTP_M_GET | HTTP_M_HEAD, "/stream", h_stream, NULL);
	http_handle(srv, HTTP_M_GET | HTTP_M_HEAD, "/later", h_later, NULL);
	http_handle(srv, HTTP_M_GET | HTTP_M_POST, "/work/*", h_work, NULL);
}

/* Read what the server sent so far; check it starts like an HTTP/1.1 response. */
static void drain(int fd, buf_t *got)
{
	char tmp[16384];
	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
		if (n > 0) {
			buf_append(got, tmp, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 65536)
		return 0;
	if (!srv)
		setup();
	int flags = data[0];
	size_t split = data[1] ? data[1] : size;
	char *in = fuzz_copy(data + 2, size - 2);
	size_t n = size - 2;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair: %s", strerror(errno));
	err_t err = {0};
	if (http_server_adopt(srv, sv[0], "fuzz", &err))
		die("http_server_adopt: %s", err.msg);
	int cfd = sv[1];
	buf_t got = BUF_INIT;
	size_t off = 0;
	int stuck = 0;
	while (off < n) {
		size_t want = n - off < split ? n - off : split;
		ssize_t w = send(cfd, in + off, want, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			stuck = 0;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (++stuck > 1000)
				break; /* the server stopped reading (e.g. a paused pipeline) */
		} else {
			break; /* the server closed (EPIPE): what it sent is still readable */
		}
		if (loop_run_once(loop, 0) < 0)
			die("loop_run_once failed");
		if (!(flags & 2))
			drain(cfd, &got);
	}
	bool half = flags & 1;
	if (half)
		shutdown(cfd, SHUT_WR);
	else
		close(cfd);

	/* Until the server has closed the connection and every request is finished; each iteration
	 * waits at most 10 ms (for the worker thread), the whole run at most 5 s. */
	uint64_t t0 = clock_mono_ms();
	while (http_server_conn_count(srv) > 0 || http_server_inflight(srv) > 0) {
		if (loop_run_once(loop, 10) < 0)
			die("loop_run_once failed");
		if (half)
			drain(cfd, &got);
		if (clock_mono_ms() - t0 > 5000) {
			fprintf(stderr, "http_fuzz: connection not closed after the peer half-closed "
					"(conns %zu, inflight %zu)\n",
				http_server_conn_count(srv), http_server_inflight(srv));
			abort();
		}
	}
	while (loop_run_posts(loop)) /* deferred frees of the conn and its protocol state */
		;
	if (half) {
		drain(cfd, &got);
		close(cfd);
	}
	if (got.n && (got.n < 9 || memcmp(got.p, "HTTP/1.1 ", 9) != 0)) {
		fprintf(stderr, "http_fuzz: output does not start with a status line: %.40s\n", got.p);
		abort();
	}
	if (getenv("HTTP_FUZZ_PRINT")) /* see what the server answered to one input */
		fwrite(got.p ? got.p : "", 1, got.n, stderr);
	buf_release(&got);
	free(in);
	return 0;
}
