/*
 * http.h — HTTP/1.1 server on the event loop (request parsing by libhttp-parser).
 *
 *     http_server_config_t cfg = {.address = "127.0.0.1:10902", .component = "query"};
 *     http_server_t *srv; if (http_server_new(&srv, loop, &cfg, &err)) ...
 *     http_handle(srv, HTTP_M_GET | HTTP_M_POST, "/api/v1/query", query_handler, ctx);
 *     http_server_set_ready(srv, true);
 *     http_server_run(srv);            // until SIGTERM/SIGINT, then a graceful drain
 *
 * Protocol: keep-alive; pipelining (requests on one connection are handled one at a time, so
 * responses leave in request order); Content-Length and chunked request bodies; chunked streamed
 * responses (HTTP/1.0 clients get close-delimited ones); "Expect: 100-continue"; HEAD. Limits: request
 * line + headers over max_header_bytes -> 431, body over max_body_bytes -> 413, malformed requests
 * -> 400, each followed by closing the connection. A request whose line and headers (and body) do
 * not arrive within read_timeout_ms gets 408 and the connection is closed (slowloris); an idle
 * keep-alive connection is closed after idle_timeout_ms.
 *
 * Requests: each http_req_t owns an arena that every request-scoped allocation should use; it is
 * released once the response has been fully queued (after the handler's last call; for an answer a
 * worker wrote to the socket itself, on the loop just after the client may have it). A handler must
 * respond exactly once (http_respond* / http_error or a complete stream), either before returning
 * or later from the loop thread (timer, I/O completion), or from a worker via http_run_on_worker.
 * If the client disconnects first the response is simply discarded; the request stays valid until
 * the handler responds.
 *
 * Built in: GET /metrics (base/metrics.h registry), /-/healthy ("OK"), /-/ready (200 "OK" only after
 * http_server_set_ready(srv, true), 503 otherwise). Every handler is instrumented with
 * http_requests_total{code,handler,method} and http_request_duration_seconds{handler}; the handler
 * label is the route pattern as registered.
 *
 * Seam for HTTP/2: connection handling (accept, buffers, deadlines, shutdown) lives in net/conn.h;
 * this module is one conn_proto_t on top of it. gRPC/h2c will be another protocol on the same
 * listener and loop, chosen per connection, sharing the router-free parts (metrics, readiness,
 * graceful shutdown through the same listener).
 *
 * Threading: everything runs on the loop thread except http_server_set_ready (any thread) and
 * what http_run_on_worker's work function does (see there).
 */
#ifndef STRATA_NET_HTTP_H
#define STRATA_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "net/conn.h"
#include "net/loop.h"
#include "net/router.h"
#include "net/url.h"

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;
typedef void (*http_handler_fn)(http_req_t *r, void *arg);

typedef struct http_header {
	str_t name, value;
} http_header_t;

typedef struct http_req_priv http_req_priv_t;

struct http_req {
	arena_t arena;
	str_t method;      /* "GET" */
	unsigned method_bit; /* HTTP_M_* */
	str_t target;      /* raw request target: "/api/v1/query?query=up" */
	str_t path;        /* percent-decoded path */
	str_t raw_query;   /* undecoded, without '?' */
	http_header_t *headers;
	size_t nheaders;
	str_t body;
	url_params_t query; /* decoded URL query parameters, in order, repeated keys kept */
	url_params_t form;  /* query parameters followed by an x-www-form-urlencoded POST/PUT/PATCH body */
	int http_minor;     /* 0 or 1 (HTTP/1.x) */
	const char *handler; /* route pattern ("/api/v1/" + "*") or "other" */
	http_server_t *server;
	http_req_priv_t *priv;
};

typedef struct http_server_config {
	const char *address;        /* "0.0.0.0:10902" */
	const char *component;      /* if set, registers process metrics with this component name */
	size_t max_header_bytes;    /* 0 = 1 MiB (request line + headers) */
	size_t max_body_bytes;      /* 0 = 32 MiB */
	int64_t read_timeout_ms;    /* 0 = 60s: whole request (headers + body) must arrive in this */
	int64_t idle_timeout_ms;    /* 0 = 5m: keep-alive idle */
	int64_t write_timeout_ms;   /* 0 = 60s: a peer not reading our response for this long is dropped */
	int worker_threads;         /* pool for http_run_on_worker: 0 = number of CPUs, < 0 = no pool */
	int max_conns;              /* 0 = 10000 */
	const char
	    *web_config_file; /* --http.config: TLS, basic auth, headers (net/webconfig.h); NULL = none */
	int64_t handshake_timeout_ms; /* 0 = 10s: a TLS handshake must finish in this */
	struct tls_server *tls;       /* TLS from flags (net/tls.h; borrowed, outlives the server), e.g. the
	                                 receiver's --remote-write.server-tls-*; exclusive with the web
	                                 configuration's tls_server_config. NULL = per web_config_file */
} http_server_config_t;

/* Listen and register the built-in endpoints. Errors name the address, or the web configuration file
 * and what is wrong with it. With a web configuration every request (built-in endpoints included)
 * needs the configured basic auth credentials (else 401 with WWW-Authenticate: Basic) and gets its
 * headers; with its tls_server_config the listener speaks HTTPS only. */
int http_server_new(http_server_t **out, loop_t *loop, const http_server_config_t *cfg, err_t *err);
/* Close everything, wait for running worker jobs, free their requests, free the server. */
void http_server_free(http_server_t *srv);
/* Register a handler. pattern: exact "/-/reload" or prefix "/api/v1/" + "*". methods: HTTP_M_* mask. */
void http_handle(http_server_t *srv, unsigned methods, const char *pattern, http_handler_fn fn, void *arg);
/* --web.route-prefix: handlers registered after this call are served under prefix ("/thanos"; a
 * trailing '/' is dropped, "" or "/" is the root): the route matches prefix + pattern and the handler
 * sees r->path without the prefix (r->target keeps it). "/" and the bare prefix redirect (302) to
 * prefix + "/". The built-in /metrics, /-/healthy and /-/ready stay at the root, as Thanos has them.
 * Errors: a prefix not starting with '/', or holding '*', '?', '#', '%' or blanks. */
int http_server_set_route_prefix(http_server_t *srv, const char *prefix, err_t *err);
void http_server_set_ready(http_server_t *srv, bool ready); /* thread-safe */
int http_server_port(const http_server_t *srv);
/* Whether the server speaks HTTPS. */
bool http_server_tls(const http_server_t *srv);
loop_t *http_server_loop(const http_server_t *srv);
/* Serve an already-connected stream socket (socketpair end, inherited fd) like an accepted one;
 * takes fd over (closed on failure). See listener_adopt. */
int http_server_adopt(http_server_t *srv, int fd, const char *peer, err_t *err);
/* Open connections (accepted or adopted). */
size_t http_server_conn_count(const http_server_t *srv);
/* Requests currently being handled (dispatched and not yet responded). */
size_t http_server_inflight(const http_server_t *srv);

/* Graceful shutdown: stop accepting, close idle connections, let in-flight requests finish (their
 * connections close after the response), then call done(arg). After grace_ms, remaining
 * connections are closed and done is called anyway. done runs on the loop thread, exactly once. */
void http_server_shutdown(http_server_t *srv, int64_t grace_ms, void (*done)(http_server_t *srv, void *arg),
			  void *arg);
/* Convenience for components: handle SIGTERM/SIGINT on the loop, run it, and on the first signal
 * shut down gracefully with grace_ms, returning 0 once drained. A second signal forces the stop. */
int http_server_run(http_server_t *srv, int64_t grace_ms, err_t *err);

/* ---- requests ---- */

/* Case-insensitive header lookup (first occurrence); false if absent. */
bool http_req_header(const http_req_t *r, const char *name, str_t *value);
/* A subject field of the client certificate the TLS handshake verified (net/tls.h
 * tls_peer_subject_field: "organization", "organizationalUnit", "commonName"), appended to out.
 * ERR_NOT_FOUND naming what is missing (plaintext connection, no certificate, no such field). Loop
 * thread only (in the handler, before http_run_on_worker). */
int http_req_tls_subject(const http_req_t *r, const char *field, buf_t *out, err_t *err);
/* First value of a form/query parameter (r->form: query then body). */
bool http_req_param(const http_req_t *r, const char *key, str_t *value);
loop_t *http_req_loop(const http_req_t *r);

/* ---- responses (exactly one per request) ---- */

/* Extra response header, copied (call before responding). Content-Length, Transfer-Encoding and
 * Connection are managed by the server. */
void http_add_header(http_req_t *r, const char *name, const char *value);
/* Complete response; body is copied. content_type may be NULL (no Content-Type). */
void http_respond(http_req_t *r, int status, const char *content_type, const void *body, size_t n);
/* Complete response taking over body's memory (no copy); body is left empty. */
void http_respond_buf(http_req_t *r, int status, const char *content_type, buf_t *body);
/* text/plain error (or any short text) response: msg followed by "\n". */
void http_error(http_req_t *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Streaming: begin, write any number of parts, end. Each write is sent as one chunk as soon as the
 * socket allows (HTTP/1.0 clients: the body ends with the connection). On the loop thread,
 * http_stream_pending tells how much is still queued so a producer can wait (e.g. on a timer) instead of
 * buffering without bound. From a work function (http_run_on_worker) the same calls send each part
 * straight to the socket while it takes them (the head waits for the first part or the end, to go in
 * the same send), else post it to the loop, and http_stream_write blocks while more than 1 MiB of earlier parts has not reached the
 * socket yet (a slow reader slows the producer; memory stays bounded); once the client is gone writes
 * are dropped and http_stream_gone turns true, so the producer can stop. There http_stream_end sends
 * the end of the body after the parts before it (the client has the whole answer; nothing may be written
 * after it) and the request ends when the work function returns (without http_stream_end, the body
 * ends then too). Add headers before beginning. */
void http_stream_begin(http_req_t *r, int status, const char *content_type);
void http_stream_write(http_req_t *r, const void *p, size_t n);
/* Like http_stream_write of b's bytes, leaving b empty; from a worker whose part goes through the loop,
 * b's memory itself is handed to the loop (no copy; b gets a new buffer as it grows again), else b
 * keeps it. */
void http_stream_write_buf(http_req_t *r, buf_t *b);
/* Like http_stream_write of the bytes of iov[0..n) in order, as one chunk, without copying them on the
 * way: the loop sends them with one sendmsg and copies only what the socket does not take. From a
 * worker the bytes are read later, on the loop: they must stay valid and unchanged until the request
 * ends (memory of its arena or held by it); iov itself is copied. n <= HTTP_STREAM_IOV_MAX. */
#define HTTP_STREAM_IOV_MAX 512
void http_stream_writev(http_req_t *r, const struct iovec *iov, int n);
void http_stream_end(http_req_t *r);
size_t http_stream_pending(const http_req_t *r);
bool http_stream_gone(http_req_t *r);
/* Whether the client is still connected (a streaming producer stops early when false). */
bool http_req_connected(const http_req_t *r);
/* Whether the client has shut down its sending side (EOF: a full close or a half-close) while this
 * request is in flight. The server still answers a half-closed client (HTTP allows it to read the
 * response), but a handler of long work may take EOF as the client going away, as Go's net/http does
 * (it cancels the request's context on EOF; Prometheus's queries stop then). */
bool http_req_peer_eof(const http_req_t *r);

/* Run work(r, arg) on the server's worker pool. The work function may read r and allocate from
 * r->arena, and must respond with http_respond, http_respond_buf, http_error or a stream (see above);
 * if it does not, the client gets a 500. On a plain TCP connection with nothing queued at the hand-off
 * the worker writes its answer (a stream's parts too) to the socket itself, without a wake-up of the
 * loop per answer or part; what the socket does not take at once, and everything after it, goes
 * through the loop as on a TLS connection. The request ends on the loop after the work function
 * returns. The calling handler must not touch r after this call. Without a pool
 * (worker_threads < 0) work runs inline. */
void http_run_on_worker(http_req_t *r, void (*work)(http_req_t *r, void *arg), void *arg);
/* Like http_run_on_worker, and done(arg) runs on the loop once work has returned, just before the
 * request ends: the caller's own completion (a query's slot, its timer) in the one post per request,
 * instead of a post of its own waking the loop a second time. Without a pool, done is posted. */
void http_run_on_worker_then(http_req_t *r, void (*work)(http_req_t *r, void *arg), void (*done)(void *arg),
                             void *arg);

const char *http_status_text(int status);

#endif
