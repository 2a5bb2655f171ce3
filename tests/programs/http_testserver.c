/*
 * http_testserver.c — the net/ HTTP server with a few test handlers, for tests/integration/http_*
 * and bench/http_bench.sh. Flags are the common server flags (cmd.h) plus test knobs.
 *
 *   GET  /fast                    "fast\n"
 *   GET|POST /echo                one "key=value" line per form parameter (query, then form body)
 *   POST /body                    "<body length>\n"
 *   GET  /slow?ms=N               responds "slow\n" after N ms (loop timer; the loop stays free)
 *   GET  /work?n=N&sleep_ms=M     on the worker pool: sums N square roots, sleeps M ms, returns the sum
 *   GET  /stream?n=N&ms=M         chunked: N lines, one every M ms
 *   GET  /wstream?n=N&size=S      streamed from a worker: N parts of S bytes ("<part number>:" then dots,
 *                                 then "\n"), stopping early when the client goes away
 *   GET  /wstream_made            how many parts the last /wstream produced before it returned
 *   GET  /inflight                number of requests being handled right now
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "cmd/cmd.h"
#include "net/http.h"

static int64_t param_int(http_req_t *r, const char *key, int64_t def)
{
	str_t v;
	int64_t n;
	if (http_req_param(r, key, &v) && str_to_i64(v, &n))
		return n;
	return def;
}

static void h_fast(http_req_t *r, void *arg)
{
	http_respond(r, 200, "text/plain; charset=utf-8", "fast\n", 5);
}

static void h_echo(http_req_t *r, void *arg)
{
	buf_t b = BUF_INIT;
	for (size_t i = 0; i < r->form.n; i++)
		buf_printf(&b, STR_FMT "=" STR_FMT "\n", STR_ARG(r->form.v[i].key), STR_ARG(r->form.v[i].val));
	http_respond_buf(r, 200, "text/plain; charset=utf-8", &b);
	buf_release(&b);
}

static void h_body(http_req_t *r, void *arg)
{
	char s[32];
	int n = snprintf(s, sizeof s, "%zu\n", r->body.n);
	http_respond(r, 200, "text/plain; charset=utf-8", s, (size_t)n);
}

static int64_t slow_done(loop_t *l, uint64_t id, void *arg)
{
	http_respond(arg, 200, "text/plain; charset=utf-8", "slow\n", 5);
	return LOOP_TIMER_DONE;
}

static void h_slow(http_req_t *r, void *arg)
{
	loop_add_timer(http_req_loop(r), param_int(r, "ms", 1000), slow_done, r);
}

static void work(http_req_t *r, void *arg)
{
	int64_t n = param_int(r, "n", 100000), sleep_ms = param_int(r, "sleep_ms", 0);
	double sum = 0;
	for (int64_t i = 0; i < n; i++)
		sum += sqrt((double)i);
	if (sleep_ms > 0) {
		struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	char *s = arena_printf(&r->arena, "%.6f\n", sum);
	http_respond(r, 200, "text/plain; charset=utf-8", s, strlen(s));
}

static void h_work(http_req_t *r, void *arg)
{
	http_run_on_worker(r, work, NULL);
}

typedef struct stream {
	http_req_t *r;
	int64_t left, ms, i;
} stream_t;

static int64_t stream_tick(loop_t *l, uint64_t id, void *arg)
{
	stream_t *s = arg;
	if (!http_req_connected(s->r) || s->left == 0) {
		http_stream_end(s->r);
		return LOOP_TIMER_DONE;
	}
	char line[64];
	int n = snprintf(line, sizeof line, "line %lld\n", (long long)s->i++);
	http_stream_write(s->r, line, (size_t)n);
	s->left--;
	return s->ms;
}

static void h_stream(http_req_t *r, void *arg)
{
	stream_t *s = ARENA_NEW(&r->arena, stream_t);
	s->r = r;
	s->left = param_int(r, "n", 5);
	s->ms = param_int(r, "ms", 10);
	http_stream_begin(r, 200, "text/plain; charset=utf-8");
	loop_add_timer(http_req_loop(r), 0, stream_tick, s);
}

static atomic_llong wstream_made;

static void wstream_work(http_req_t *r, void *arg)
{
	int64_t n = param_int(r, "n", 10), size = param_int(r, "size", 1000);
	char *part = xmalloc((size_t)size + 32);
	http_add_header(r, "X-Made-By", "worker");
	http_stream_begin(r, 200, "text/plain; charset=utf-8");
	int64_t i = 0;
	for (; i < n && !http_stream_gone(r); i++) {
		int k = snprintf(part, 32, "%lld:", (long long)i);
		memset(part + k, '.', (size_t)(size - k - 1));
		part[size - 1] = '\n';
		http_stream_write(r, part, (size_t)size);
	}
	atomic_store(&wstream_made, i);
	http_stream_end(r);
	free(part);
}

static void h_wstream(http_req_t *r, void *arg)
{
	atomic_store(&wstream_made, -1);
	http_run_on_worker(r, wstream_work, NULL);
}

static void h_wstream_made(http_req_t *r, void *arg)
{
	char s[32];
	int n = snprintf(s, sizeof s, "%lld\n", (long long)atomic_load(&wstream_made));
	http_respond(r, 200, "text/plain; charset=utf-8", s, (size_t)n);
}

static void h_inflight(http_req_t *r, void *arg)
{
	char s[32];
	int n = snprintf(s, sizeof s, "%zu\n", http_server_inflight(r->server));
	http_respond(r, 200, "text/plain; charset=utf-8", s, (size_t)n);
}

static int64_t become_ready(loop_t *l, uint64_t id, void *arg)
{
	http_server_set_ready(arg, true);
	log_info("ready");
	return LOOP_TIMER_DONE;
}

int main(int argc, char **argv)
{
	static cmd_server_flags_t sf;
	static int64_t read_timeout, idle_timeout, max_header, max_body, ready_after, workers;
	flag_def_t defs[] = {
		CMD_SERVER_FLAGS(&sf, "127.0.0.1:10902"),
		{"http.read-timeout", FLAG_DURATION, &read_timeout, "10s", "Whole-request read timeout."},
		{"http.idle-timeout", FLAG_DURATION, &idle_timeout, "1m", "Keep-alive idle timeout."},
		{"http.max-header-bytes", FLAG_BYTES, &max_header, "64KiB", "Request line + headers limit."},
		{"http.max-body-bytes", FLAG_BYTES, &max_body, "1MiB", "Request body limit."},
		{"ready-after", FLAG_DURATION, &ready_after, "0s", "Report ready only after this long."},
		{"workers", FLAG_INT, &workers, "2", "Worker threads."},
	};
	flags_result_t res;
	int exit_now;
	int rc = cmd_parse_flags("http_testserver", "HTTP server with test handlers.", defs, ARRAY_LEN(defs), argc,
				 argv, &res, &exit_now);
	if (exit_now)
		return rc;
	if (res.npos > 0) {
		fprintf(stderr, "http_testserver: unexpected argument \"%s\"\n", res.pos[0]);
		free(res.pos);
		return 2;
	}
	free(res.pos);
	if ((rc = cmd_server_setup_logging("http_testserver", &sf)))
		return rc;

	loop_t *loop;
	err_t err = {0};
	if (loop_new(&loop, &err)) {
		log_error("loop failed", "err", err.msg);
		return 1;
	}
	http_server_config_t cfg = {
		.address = sf.http_address,
		.component = "http_testserver",
		.max_header_bytes = (size_t)max_header,
		.max_body_bytes = (size_t)max_body,
		.read_timeout_ms = read_timeout,
		.idle_timeout_ms = idle_timeout,
		.worker_threads = (int)workers,
		.web_config_file = sf.http_config,
	};
	http_server_t *srv;
	if (http_server_new(&srv, loop, &cfg, &err)) {
		log_error("cannot start HTTP server", "err", err.msg);
		loop_free(loop);
		return 1;
	}
	http_handle(srv, HTTP_M_GET, "/fast", h_fast, NULL);
	http_handle(srv, HTTP_M_GET | HTTP_M_POST, "/echo", h_echo, NULL);
	http_handle(srv, HTTP_M_POST, "/body", h_body, NULL);
	http_handle(srv, HTTP_M_GET, "/slow", h_slow, NULL);
	http_handle(srv, HTTP_M_GET, "/work", h_work, NULL);
	http_handle(srv, HTTP_M_GET, "/stream", h_stream, NULL);
	http_handle(srv, HTTP_M_GET, "/wstream", h_wstream, NULL);
	http_handle(srv, HTTP_M_GET, "/wstream_made", h_wstream_made, NULL);
	http_handle(srv, HTTP_M_GET, "/inflight", h_inflight, NULL);
	if (ready_after > 0)
		loop_add_timer(loop, ready_after, become_ready, srv);
	else
		http_server_set_ready(srv, true);
	char port[16];
	snprintf(port, sizeof port, "%d", http_server_port(srv));
	log_info("listening", "address", sf.http_address, "port", port);
	rc = http_server_run(srv, sf.http_grace_ms, &err);
	if (rc)
		log_error("server failed", "err", err.msg);
	http_server_free(srv);
	loop_free(loop);
	log_info("exiting");
	return rc ? 1 : 0;
}
