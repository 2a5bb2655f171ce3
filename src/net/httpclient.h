/*
 * httpclient.h — a small blocking HTTP client (libcurl) for talking to Prometheus and Alertmanager.
 *
 *     httpc_resp_t resp; httpc_resp_init(&resp);
 *     httpc_req_t req = {.method = "GET", .url = "http://127.0.0.1:9090/-/ready", .timeout_ms = 5000};
 *     if (httpc_do(&req, &resp, &err)) log_error("prometheus", "err", err.msg);
 *     else if (resp.status == 200) ...;
 *     httpc_resp_release(&resp);
 *
 * Three ways to get a response:
 *   - httpc_do: the whole body into resp->body (bounded by req->max_body, default 64 MiB);
 *   - httpc_do_many: several httpc_do exchanges at once, at most `parallel` in flight, driven by one
 *     curl multi handle in the calling thread (no extra threads);
 *   - httpc_stream_*: the body is pulled on demand (httpc_stream_fill), so a long streamed response
 *     (remote read) never has to sit in memory at once. Bytes arrive only while the caller asks.
 *
 * Any HTTP status is a successful exchange (the caller decides what a 4xx/5xx means). Errors are
 * transport failures, always naming the method and URL: ERR_UNAVAILABLE (connection refused, DNS,
 * reset), ERR_TIMEOUT (connect/total timeout), ERR_LIMIT (body over max_body), ERR_INVALID (bad URL).
 * Thread-safe: every call uses its own curl handle, so any number of threads may call concurrently.
 * Calls block; never use them on an event-loop thread that has other work.
 *
 * Keep-alive: without a pool each request opens (and closes) its own connection. httpc_do requests
 * naming the same httpc_pool_t leave their connection open in the pool when done and reuse an idle one
 * to the same host (a client sending many small requests to one server, e.g. the ruler's queries,
 * saves a TCP (and TLS) handshake per request); httpc_do_many and streams ignore the pool. A pool is
 * thread-safe and keeps at most 64 idle handles; free it after its last request.
 */
#ifndef STRATA_NET_HTTPCLIENT_H
#define STRATA_NET_HTTPCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

typedef struct httpc_req {
	const char *method;          /* "GET" (default when NULL), "POST", ... */
	const char *url;
	const char *const *headers;  /* "Name: value" strings */
	size_t nheaders;
	const void *body;            /* request body (POST), may be NULL */
	size_t body_len;
	int64_t timeout_ms;          /* whole exchange; 0 = none (streams: idle timeout instead) */
	int64_t connect_timeout_ms;  /* 0 = 10s */
	size_t max_body;             /* httpc_do only: 0 = 64 MiB */
	const struct httpcfg *cfg;   /* auth, TLS, proxy (net/httpcfg.h); NULL = none */
	struct httpc_pool *pool;     /* httpc_do: keep-alive connections (below); NULL = a new connection */
} httpc_req_t;

typedef struct httpc_resp {
	long status;        /* HTTP status code */
	char *content_type; /* heap copy, NULL if absent */
	buf_t body;
	buf_t headers;      /* httpc_do/httpc_do_many: the final response's header lines "Name: value\r\n" */
	bool reused;        /* httpc_do: sent over a connection kept open from an earlier request (no connect) */
} httpc_resp_t;

typedef struct httpc_pool httpc_pool_t;
httpc_pool_t *httpc_pool_new(void);
void httpc_pool_free(httpc_pool_t *p); /* NULL ok; closes the idle connections */

void httpc_resp_init(httpc_resp_t *r);
void httpc_resp_release(httpc_resp_t *r);

int httpc_do(const httpc_req_t *req, httpc_resp_t *resp, err_t *err);
/* Run n exchanges concurrently, at most `parallel` (<= 0: all) at a time; each ends like httpc_do:
 * rcs[i] is 0 or its negative ERR_* with errs[i] set. resps[i] must be initialised. Returns when all
 * have finished. */
void httpc_do_many(const httpc_req_t *reqs, httpc_resp_t *resps, int *rcs, err_t *errs, size_t n, int parallel);
/* Value of the first response header `name` (case-insensitive) in resp->headers; false if absent. */
bool httpc_resp_header(const httpc_resp_t *resp, const char *name, str_t *value);

/* ---- pull-based streaming ---- */
typedef struct httpc_stream httpc_stream_t;

/* Send the request and wait for the response headers. On success *out is a stream whose status and
 * content type are known; the caller then pulls the body with httpc_stream_fill. req and what it
 * points to must stay valid until httpc_stream_free. */
int httpc_stream_open(httpc_stream_t **out, const httpc_req_t *req, err_t *err);
long httpc_stream_status(const httpc_stream_t *s);
const char *httpc_stream_content_type(const httpc_stream_t *s); /* NULL if absent */
/* Receive until the stream's buffer holds at least `want` unread bytes or the body ends. Returns 0
 * (check httpc_stream_buf / httpc_stream_eof) or a negative ERR_* (transport error / timeout).
 * With req->timeout_ms set, each fill waits at most that long without receiving anything. */
int httpc_stream_fill(httpc_stream_t *s, size_t want, err_t *err);
/* The unread bytes buffered so far. */
str_t httpc_stream_buf(const httpc_stream_t *s);
/* Drop n unread bytes from the front (after parsing them). */
void httpc_stream_consume(httpc_stream_t *s, size_t n);
bool httpc_stream_eof(const httpc_stream_t *s);
void httpc_stream_free(httpc_stream_t *s); /* NULL ok; aborts the transfer if unfinished */

#endif
