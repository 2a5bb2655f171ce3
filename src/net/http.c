/*
 * http.c — HTTP/1.1 protocol on top of net/conn.h: request parsing with libhttp-parser, one request
 * in flight per connection (pipelined requests wait in the input buffer, paused parser), responses
 * written in order, built-in endpoints, metrics, worker hand-off and graceful shutdown. See http.h.
 */
#include "net/http.h"

#include <errno.h>
#include <http_parser.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/workers.h"
#include "net/tls.h"
#include "net/webconfig.h"

typedef struct http_conn http_conn_t;

typedef struct http_route {
	http_handler_fn fn;
	void *arg;
	const char *pattern; /* as registered, without the route prefix */
	size_t strip;        /* bytes of route prefix taken off r->path before fn runs */
	metric_child_t *duration;
} http_route_t;

struct http_req_priv {
	http_req_t *req;
	http_conn_t *hc; /* NULL once the connection is gone (response is discarded) */
	size_t hdr_cap;
	buf_t body;
	buf_t extra_headers;
	http_route_t *route;
	uint64_t start_ns;
	int status;
	bool keep_alive;
	bool head;
	bool expect_continue;
	bool dispatched;
	bool responded; /* response started (complete or stream begun) */
	bool streaming, chunked;
	bool finished;
	webcfg_auth_t *auth; /* basic auth check running on the web config's bcrypt thread */
	/* worker hand-off */
	bool on_worker;
	bool w_set;
	int w_status;
	const char *w_ctype;
	buf_t w_body;
	void (*work)(http_req_t *r, void *arg);
	void *work_arg;
	void (*work_done)(void *arg); /* http_run_on_worker_then: on the loop once work has returned */
	/* streaming from the worker: w_stream is the worker's (set at its http_stream_begin, read by
	 * worker_done after the work returned); the counters and w_gone are shared under w_mu */
	bool w_stream;
	bool body_ended; /* loop thread: the stream's end is written (the request may still be running) */
	pthread_mutex_t w_mu;
	pthread_cond_t w_cv;
	size_t w_posted;       /* bytes the worker handed to the loop */
	size_t w_sent;         /* of those, bytes the loop has written to the socket */
	size_t w_loop_written; /* loop thread: bytes of posted parts it queued on the connection */
	bool w_gone;           /* the connection went away: the worker's writes are dropped */
	/* direct answers: on a plain TCP connection with nothing queued at hand-off, the worker writes its
	 * answer to the socket itself (no post to the loop and no wake-up of it per answer or part).
	 * w_direct is fixed at hand-off; the socket w_fd is used only under w_mu while !w_gone (the loop
	 * sets w_gone, under w_mu, before it closes the socket). What the socket does not take at once
	 * is posted to the loop as raw bytes and from then on (w_posted_mode) everything goes through
	 * the loop as without w_direct, so the order stays. */
	bool w_direct;
	int w_fd;
	bool w_direct_resp; /* worker: the answer (or the stream's head) was begun directly */
	bool w_posted_mode; /* worker: direct writing stopped after a partial send */
	bool w_failed;      /* a direct send failed: the connection closes after the request */
	buf_t w_head;       /* worker, direct stream: the head, sent with the first part */
	/* server's list of dispatched requests (freed at server free if never completed) */
	http_req_t *prev, *next;
};

struct http_conn {
	conn_t *c;
	http_server_t *srv;
	http_parser parser;
	http_req_t *cur;    /* being received */
	http_req_t *active; /* dispatched, response not finished */
	buf_t url, hfield, hval;
	bool in_value;
	size_t header_bytes;
	int err_status; /* set by a callback that aborts parsing */
	bool processing;
	bool closed;
};

struct http_server {
	loop_t *loop;
	listener_t *listener;
	router_t router;
	workers_t *workers;
	http_server_config_t cfg;
	webcfg_t *web; /* --http.config: TLS, basic auth, headers; NULL = none */
	bool freeing;
	atomic_bool ready;
	size_t inflight;
	http_req_t *reqs;
	metric_t *m_requests;
	metric_t *m_duration;
	metric_child_t *other_duration;
	char *route_prefix; /* "/thanos" or NULL (http_server_set_route_prefix) */
	/* shutdown */
	atomic_bool draining; /* read by workers writing their answers (format_head) */
	bool done_called;
	uint64_t grace_timer;
	void (*done)(http_server_t *srv, void *arg);
	void *done_arg;
	/* http_server_run */
	int64_t run_grace_ms;
	int signals;
};

static http_parser_settings parser_settings;
static const conn_proto_t http1_proto;

const char *http_status_text(int status)
{
	const char *s = http_status_str((enum http_status)status);
	return s && strcmp(s, "<unknown>") != 0 ? s : "Unknown";
}

/* ---- request lifetime ---- */

static http_req_t *req_new(http_conn_t *hc)
{
	http_req_t *r = xcalloc(1, sizeof *r);
	arena_init(&r->arena, 4096);
	http_req_priv_t *p = ARENA_NEW(&r->arena, http_req_priv_t);
	buf_init(&p->body);
	buf_init(&p->extra_headers);
	buf_init(&p->w_body);
	buf_init(&p->w_head);
	pthread_mutex_init(&p->w_mu, NULL);
	pthread_cond_init(&p->w_cv, NULL);
	p->req = r;
	p->hc = hc;
	r->priv = p;
	r->server = hc->srv;
	r->handler = "other";
	return r;
}

static void req_free(http_req_t *r)
{
	http_req_priv_t *p = r->priv;
	http_server_t *srv = r->server;
	if (p->dispatched) {
		if (p->prev)
			p->prev->priv->next = p->next;
		else
			srv->reqs = p->next;
		if (p->next)
			p->next->priv->prev = p->prev;
	}
	buf_release(&p->body);
	buf_release(&p->extra_headers);
	buf_release(&p->w_body);
	buf_release(&p->w_head);
	pthread_mutex_destroy(&p->w_mu);
	pthread_cond_destroy(&p->w_cv);
	if (p->auth)
		webcfg_auth_release(p->auth);
	arena_release(&r->arena);
	free(r);
}

/* ---- response writing ---- */

static void process_input(http_conn_t *hc);

/* The status line and headers, appended to out. A server that is draining answers with
 * "Connection: close" (p->keep_alive turns false). Any thread that owns the response. */
static void format_head(http_req_t *r, int status, const char *ctype, const char *length_or_te, buf_t *out)
{
	http_req_priv_t *p = r->priv;
	if (atomic_load_explicit(&r->server->draining, memory_order_relaxed))
		p->keep_alive = false;
	buf_printf(out, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	if (ctype) {
		buf_puts(out, "Content-Type: ");
		buf_puts(out, ctype);
		buf_puts(out, "\r\n");
	}
	buf_puts(out, length_or_te);
	buf_append(out, p->extra_headers.p, p->extra_headers.n);
	if (!p->keep_alive)
		buf_puts(out, "Connection: close\r\n");
	else if (r->http_minor == 0)
		buf_puts(out, "Connection: keep-alive\r\n");
	buf_puts(out, "\r\n");
}

static void write_head(http_req_t *r, int status, const char *ctype, const char *length_or_te)
{
	http_req_priv_t *p = r->priv;
	if (!p->hc)
		return;
	buf_t h = BUF_INIT;
	format_head(r, status, ctype, length_or_te, &h);
	conn_write(p->hc->c, h.p, h.n);
	buf_release(&h);
}

static void finish(http_req_t *r)
{
	http_req_priv_t *p = r->priv;
	http_server_t *srv = r->server;
	http_conn_t *hc = p->hc;
	BUG_ON(p->finished);
	p->finished = true;
	if (p->dispatched) {
		char code[8];
		snprintf(code, sizeof code, "%d", p->status);
		char method[16];
		size_t mn = r->method.n < sizeof method - 1 ? r->method.n : sizeof method - 1;
		for (size_t i = 0; i < mn; i++)
			method[i] = (char)((r->method.p[i] >= 'A' && r->method.p[i] <= 'Z') ? r->method.p[i] + 32
											     : r->method.p[i]);
		method[mn] = 0;
		metric_inc(metric_with(srv->m_requests, code, r->handler, method));
		srv->inflight--;
	}
	if (hc) {
		hc->active = NULL;
		if (!p->keep_alive)
			conn_close_after_flush(hc->c);
		else
			conn_set_deadline(hc->c, srv->cfg.idle_timeout_ms);
	}
	req_free(r);
	if (hc && !hc->closed && !hc->processing) {
		conn_flush(hc->c);
		if (!hc->closed)
			process_input(hc);
		if (!hc->closed)
			conn_flush(hc->c);
	}
}

static void observe(http_req_t *r)
{
	http_req_priv_t *p = r->priv;
	if (!p->dispatched)
		return;
	metric_child_t *h = p->route ? p->route->duration : r->server->other_duration;
	metric_observe(h, clock_since_s(p->start_ns));
}

static void respond_now(http_req_t *r, int status, const char *ctype, const void *body, size_t n)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(p->responded);
	p->responded = true;
	p->status = status;
	if (p->hc) {
		char len[48];
		snprintf(len, sizeof len, "Content-Length: %zu\r\n", n);
		write_head(r, status, ctype, len);
		if (!p->head && n)
			conn_write(p->hc->c, body, n);
	}
	observe(r);
	finish(r);
}

static void direct_respond(http_req_t *r, int status, const char *ctype, const void *body, size_t n);
static void direct_stream_begin(http_req_t *r, int status, const char *ctype);
static void direct_stream_part(http_req_t *r, const struct iovec *data, int nd, size_t n);
static void direct_stream_end(http_req_t *r);

/* Worker: whether this request's answer still goes straight to the socket. */
static bool direct_now(const http_req_priv_t *p)
{
	return p->w_direct && !p->w_posted_mode;
}

void http_respond(http_req_t *r, int status, const char *ctype, const void *body, size_t n)
{
	http_req_priv_t *p = r->priv;
	if (p->on_worker && direct_now(p)) {
		direct_respond(r, status, ctype, body, n);
		return;
	}
	if (p->on_worker) {
		BUG_ON(p->w_set);
		p->w_set = true;
		p->w_status = status;
		p->w_ctype = ctype ? arena_strdup(&r->arena, ctype) : NULL;
		buf_append(&p->w_body, body, n);
		return;
	}
	respond_now(r, status, ctype, body, n);
}

void http_respond_buf(http_req_t *r, int status, const char *ctype, buf_t *body)
{
	http_req_priv_t *p = r->priv;
	if (p->on_worker && direct_now(p)) {
		direct_respond(r, status, ctype, body->p, body->n);
		buf_release(body);
		return;
	}
	if (p->on_worker) {
		BUG_ON(p->w_set);
		p->w_set = true;
		p->w_status = status;
		p->w_ctype = ctype ? arena_strdup(&r->arena, ctype) : NULL;
		buf_release(&p->w_body);
		p->w_body = *body;
		buf_init(body);
		return;
	}
	respond_now(r, status, ctype, body->p, body->n);
	buf_release(body); /* as documented: the body is given away (here: copied, then freed) */
}

void http_error(http_req_t *r, int status, const char *fmt, ...)
{
	buf_t b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_putc(&b, '\n');
	http_respond_buf(r, status, "text/plain; charset=utf-8", &b);
	buf_release(&b);
}

void http_add_header(http_req_t *r, const char *name, const char *value)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(p->responded);
	buf_puts(&p->extra_headers, name);
	buf_puts(&p->extra_headers, ": ");
	buf_puts(&p->extra_headers, value);
	buf_puts(&p->extra_headers, "\r\n");
}

/* A streamed answer's state; returns the head's framing header (chunked, or none: the body ends with
 * the connection). */
static const char *stream_state(http_req_priv_t *p, const http_req_t *r, int status)
{
	BUG_ON(p->responded);
	p->responded = true;
	p->streaming = true;
	p->status = status;
	p->chunked = r->http_minor >= 1;
	if (!p->chunked)
		p->keep_alive = false; /* HTTP/1.0: the body ends when the connection does */
	return p->chunked ? "Transfer-Encoding: chunked\r\n" : "";
}

static void stream_begin_now(http_req_t *r, int status, const char *ctype)
{
	http_req_priv_t *p = r->priv;
	write_head(r, status, ctype, stream_state(p, r, status));
	if (p->hc)
		conn_flush(p->hc->c);
}

/* The nd parts of data (n bytes in all) as one chunk. */
/* The nd parts of data (n bytes in all) as the body carries them (chunked: size line, data, CRLF), into
 * iov from index k (sz holds the size line); returns the new count. */
static int body_iov(const http_req_priv_t *p, struct iovec *iov, int k, char sz[24], const struct iovec *data,
                    int nd, size_t n)
{
	if (p->chunked)
		iov[k++] = (struct iovec){sz, (size_t)snprintf(sz, 24, "%zx\r\n", n)};
	for (int i = 0; i < nd; i++)
		iov[k++] = data[i];
	if (p->chunked)
		iov[k++] = (struct iovec){"\r\n", 2};
	return k;
}

static void stream_writev_now(http_req_t *r, const struct iovec *data, int nd, size_t n)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(!p->streaming || p->finished || p->body_ended || nd > HTTP_STREAM_IOV_MAX);
	if (!p->hc || n == 0 || p->head)
		return;
	conn_t *c = p->hc->c;
	char sz[24];
	struct iovec iov[HTTP_STREAM_IOV_MAX + 2];
	int k = body_iov(p, iov, 0, sz, data, nd, n);
	if (!p->hc->processing) { /* sent from data when nothing is queued before it */
		conn_writev_flush(c, iov, k);
		return;
	}
	for (int i = 0; i < k; i++)
		conn_write(c, iov[i].iov_base, iov[i].iov_len);
}

static void stream_write_now(http_req_t *r, const void *data, size_t n)
{
	struct iovec v = {(void *)data, n};
	stream_writev_now(r, &v, 1, n);
}

/* The end of the body (chunked: the last chunk), once. */
static void stream_end_body(http_req_t *r)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(!p->streaming);
	if (p->body_ended)
		return;
	p->body_ended = true;
	if (p->hc && p->chunked && !p->head) {
		conn_write(p->hc->c, "0\r\n\r\n", 5);
		if (!p->hc->processing)
			conn_flush(p->hc->c);
	}
}

static void stream_end_now(http_req_t *r)
{
	stream_end_body(r);
	observe(r);
	finish(r);
}

/* ---- streaming from a worker: parts are posted to the loop, the worker waits while more than
 * HTTP_WORKER_STREAM_AHEAD bytes are not yet written to the socket ---- */

#define HTTP_WORKER_STREAM_AHEAD (1u << 20)

typedef struct stream_post {
	http_req_t *r;
	int status;
	const char *ctype; /* begin only (request arena) */
	size_t n;          /* write: n bytes follow (or are at own) */
	char *own;         /* http_stream_write_buf: the worker's buffer, freed here */
	struct iovec *iov; /* http_stream_writev: niov parts (xmalloc'd), their bytes the request's */
	int niov;
	char data[];
} stream_post_t;

/* Loop thread: everything queued so far has left (or the connection is gone): let the worker go on. */
static void stream_ack(http_req_t *r)
{
	http_req_priv_t *p = r->priv;
	pthread_mutex_lock(&p->w_mu);
	if (!p->hc)
		p->w_gone = true;
	else if (conn_pending_out(p->hc->c) == 0)
		p->w_sent = p->w_loop_written;
	pthread_cond_broadcast(&p->w_cv);
	pthread_mutex_unlock(&p->w_mu);
}

static void stream_begin_post(void *arg)
{
	stream_post_t *sp = arg;
	stream_begin_now(sp->r, sp->status, sp->ctype);
	free(sp);
}

static void stream_write_post(void *arg)
{
	stream_post_t *sp = arg;
	http_req_t *r = sp->r;
	if (sp->iov)
		stream_writev_now(r, sp->iov, sp->niov, sp->n);
	else
		stream_write_now(r, sp->own ? sp->own : sp->data, sp->n);
	r->priv->w_loop_written += sp->n;
	free(sp->own);
	free(sp->iov);
	free(sp);
	stream_ack(r);
}

/* ---- direct answers from a worker (w_direct) ---- */

/* Loop: bytes a worker could not send directly, queued as they are (already framed). */
static void raw_write_post(void *arg)
{
	stream_post_t *sp = arg;
	http_req_t *r = sp->r;
	http_req_priv_t *p = r->priv;
	if (p->hc) {
		conn_write(p->hc->c, sp->own, sp->n);
		conn_flush(p->hc->c);
	}
	p->w_loop_written += sp->n;
	free(sp->own);
	free(sp);
	stream_ack(r);
}

/* Worker: send iov[0..n) (total bytes) on the socket now. What the socket does not take is posted to
 * the loop, and from then on every write goes through the loop (w_posted_mode). Dropped once the
 * connection is gone; a failed send marks it gone and has it closed after the request. */
static void direct_send(http_req_t *r, const struct iovec *iov, int n, size_t total)
{
	http_req_priv_t *p = r->priv;
	if (total == 0)
		return;
	pthread_mutex_lock(&p->w_mu);
	if (p->w_gone) {
		pthread_mutex_unlock(&p->w_mu);
		return;
	}
	ssize_t w;
	do {
		struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
		w = sendmsg(p->w_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (w < 0 && errno == EINTR);
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { /* EPIPE, ECONNRESET: the peer is gone */
		p->w_gone = true;
		p->w_failed = true;
		pthread_mutex_unlock(&p->w_mu);
		return;
	}
	size_t skip = w > 0 ? (size_t)w : 0;
	if (skip == total) {
		pthread_mutex_unlock(&p->w_mu);
		return;
	}
	size_t rest = total - skip;
	p->w_posted_mode = true;
	p->w_posted += rest;
	pthread_mutex_unlock(&p->w_mu);
	stream_post_t *sp = xmalloc(sizeof *sp);
	sp->r = r;
	sp->n = rest;
	sp->iov = NULL;
	sp->own = xmalloc(rest);
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		size_t len = iov[i].iov_len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		memcpy(sp->own + at, (const char *)iov[i].iov_base + skip, len - skip);
		at += len - skip;
		skip = 0;
	}
	loop_post(r->server->loop, raw_write_post, sp);
}

static void direct_respond(http_req_t *r, int status, const char *ctype, const void *body, size_t n)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(p->w_set || p->w_stream || p->w_direct_resp);
	p->w_direct_resp = true;
	p->responded = true;
	p->status = status;
	char len[48];
	snprintf(len, sizeof len, "Content-Length: %zu\r\n", n);
	buf_t h = BUF_INIT;
	format_head(r, status, ctype, len, &h);
	struct iovec iov[2] = {{h.p, h.n}, {(void *)body, p->head ? 0 : n}};
	direct_send(r, iov, 2, h.n + iov[1].iov_len);
	buf_release(&h);
}

/* The head waits in w_head to go out with the first part (one send, one segment). */
static void direct_stream_begin(http_req_t *r, int status, const char *ctype)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(p->w_stream || p->w_set || p->w_direct_resp);
	p->w_stream = true;
	p->w_direct_resp = true;
	format_head(r, status, ctype, stream_state(p, r, status), &p->w_head);
}

/* The nd parts of data (n bytes in all) as one chunk, after the head if it has not gone yet. */
static void direct_stream_part(http_req_t *r, const struct iovec *data, int nd, size_t n)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(p->body_ended || nd > HTTP_STREAM_IOV_MAX);
	if (n == 0 || p->head)
		return;
	char sz[24];
	struct iovec iov[HTTP_STREAM_IOV_MAX + 3];
	int k = 0;
	size_t total = n;
	if (p->w_head.n) {
		iov[k++] = (struct iovec){p->w_head.p, p->w_head.n};
		total += p->w_head.n;
	}
	int kb = k;
	k = body_iov(p, iov, k, sz, data, nd, n);
	if (p->chunked) /* the size line and the CRLF around the nd parts */
		total += iov[kb].iov_len + iov[k - 1].iov_len;
	direct_send(r, iov, k, total);
	buf_release(&p->w_head);
}

/* The end of the body (chunked: the last chunk), after the head if it has not gone yet; once. */
static void direct_stream_end(http_req_t *r)
{
	http_req_priv_t *p = r->priv;
	if (p->body_ended)
		return;
	p->body_ended = true;
	struct iovec iov[2];
	int k = 0;
	size_t total = 0;
	if (p->w_head.n) {
		iov[k++] = (struct iovec){p->w_head.p, p->w_head.n};
		total += p->w_head.n;
	}
	if (p->chunked && !p->head) {
		iov[k++] = (struct iovec){"0\r\n\r\n", 5};
		total += 5;
	}
	direct_send(r, iov, k, total);
	buf_release(&p->w_head);
}

void http_stream_begin(http_req_t *r, int status, const char *ctype)
{
	http_req_priv_t *p = r->priv;
	if (p->on_worker && direct_now(p)) {
		direct_stream_begin(r, status, ctype);
		return;
	}
	if (p->on_worker) {
		BUG_ON(p->w_stream || p->w_set);
		p->w_stream = true;
		stream_post_t *sp = xcalloc(1, sizeof *sp);
		sp->r = r;
		sp->status = status;
		sp->ctype = ctype ? arena_strdup(&r->arena, ctype) : NULL;
		loop_post(r->server->loop, stream_begin_post, sp);
		return;
	}
	stream_begin_now(r, status, ctype);
}

/* Worker: wait until the part may be posted; false once the connection is gone. */
static bool stream_worker_admit(http_req_priv_t *p, size_t n)
{
	pthread_mutex_lock(&p->w_mu);
	while (!p->w_gone && p->w_posted - p->w_sent > HTTP_WORKER_STREAM_AHEAD)
		pthread_cond_wait(&p->w_cv, &p->w_mu);
	bool gone = p->w_gone;
	if (!gone)
		p->w_posted += n;
	pthread_mutex_unlock(&p->w_mu);
	return !gone;
}

void http_stream_write(http_req_t *r, const void *data, size_t n)
{
	http_req_priv_t *p = r->priv;
	if (!p->on_worker) {
		stream_write_now(r, data, n);
		return;
	}
	BUG_ON(!p->w_stream);
	if (direct_now(p)) {
		struct iovec v = {(void *)data, n};
		direct_stream_part(r, &v, 1, n);
		return;
	}
	if (n == 0 || !stream_worker_admit(p, n))
		return;
	stream_post_t *sp = xmalloc(st_add(sizeof *sp, n));
	sp->r = r;
	sp->n = n;
	sp->own = NULL;
	sp->iov = NULL;
	memcpy(sp->data, data, n);
	loop_post(r->server->loop, stream_write_post, sp);
}

void http_stream_write_buf(http_req_t *r, buf_t *b)
{
	http_req_priv_t *p = r->priv;
	if (!p->on_worker || b->n == 0) {
		http_stream_write(r, b->p, b->n);
		buf_reset(b);
		return;
	}
	BUG_ON(!p->w_stream);
	if (direct_now(p)) { /* sent (or copied) now: b keeps its memory for the next part */
		struct iovec v = {b->p, b->n};
		direct_stream_part(r, &v, 1, b->n);
		buf_reset(b);
		return;
	}
	if (!stream_worker_admit(p, b->n)) {
		buf_reset(b);
		return;
	}
	stream_post_t *sp = xmalloc(sizeof *sp);
	sp->r = r;
	sp->iov = NULL;
	sp->own = buf_detach(b, &sp->n);
	loop_post(r->server->loop, stream_write_post, sp);
}

void http_stream_writev(http_req_t *r, const struct iovec *iov, int n)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(n < 0 || n > HTTP_STREAM_IOV_MAX);
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total = st_add(total, iov[i].iov_len);
	if (!p->on_worker) {
		stream_writev_now(r, iov, n, total);
		return;
	}
	BUG_ON(!p->w_stream);
	if (direct_now(p)) {
		direct_stream_part(r, iov, n, total);
		return;
	}
	if (total == 0 || !stream_worker_admit(p, total))
		return;
	stream_post_t *sp = xmalloc(sizeof *sp);
	sp->r = r;
	sp->n = total;
	sp->own = NULL;
	sp->iov = xmalloc(st_mult((size_t)n, sizeof *iov));
	memcpy(sp->iov, iov, (size_t)n * sizeof *iov);
	sp->niov = n;
	loop_post(r->server->loop, stream_write_post, sp);
}

static void stream_end_body_post(void *arg)
{
	stream_end_body(arg);
}

void http_stream_end(http_req_t *r)
{
	http_req_priv_t *p = r->priv;
	if (p->on_worker && direct_now(p)) {
		BUG_ON(!p->w_stream);
		direct_stream_end(r);
		return;
	}
	if (p->on_worker) {
		BUG_ON(!p->w_stream);
		/* the client gets the end after the parts posted before it; the request itself ends
		 * (worker_done) once the work function has returned */
		loop_post(r->server->loop, stream_end_body_post, r);
		return;
	}
	stream_end_now(r);
}

bool http_stream_gone(http_req_t *r)
{
	http_req_priv_t *p = r->priv;
	if (!p->on_worker)
		return !http_req_connected(r);
	pthread_mutex_lock(&p->w_mu);
	bool gone = p->w_gone;
	pthread_mutex_unlock(&p->w_mu);
	return gone;
}

size_t http_stream_pending(const http_req_t *r)
{
	return r->priv->hc ? conn_pending_out(r->priv->hc->c) : 0;
}

bool http_req_connected(const http_req_t *r)
{
	return r->priv->hc != NULL && !r->priv->hc->closed;
}

bool http_server_tls(const http_server_t *srv)
{
	return srv->cfg.tls || (srv->web && webcfg_tls(srv->web));
}

static SSL *flags_tls_new_ssl(void *arg)
{
	return tls_server_new_ssl(arg);
}

int http_req_tls_subject(const http_req_t *r, const char *field, buf_t *out, err_t *err)
{
	if (!r->priv->hc || !r->priv->hc->c->ssl)
		return err_set(err, ERR_NOT_FOUND,
		               "could not get required certificate (not a TLS connection)");
	return tls_peer_subject_field(r->priv->hc->c->ssl, field, out, err);
}

bool http_req_peer_eof(const http_req_t *r)
{
	return r->priv->hc != NULL && r->priv->hc->c->peer_eof;
}

/* ---- worker hand-off ---- */

static void worker_done(void *arg)
{
	http_req_t *r = arg;
	http_req_priv_t *p = r->priv;
	p->on_worker = false;
	if (p->work_done)
		p->work_done(p->work_arg);
	if (p->w_failed)
		p->keep_alive = false;
	if (p->w_stream) {
		stream_end_now(r);
		return;
	}
	if (p->w_direct_resp) { /* written by the worker (what the socket did not take is queued) */
		observe(r);
		finish(r);
		return;
	}
	if (!p->w_set) {
		log_error("handler did not respond", "handler", r->handler);
		http_error(r, 500, "internal error: handler did not respond");
		return;
	}
	buf_t body = p->w_body;
	buf_init(&p->w_body);
	respond_now(r, p->w_status, p->w_ctype, body.p, body.n);
	buf_release(&body);
}

static void worker_main(void *arg)
{
	http_req_t *r = arg;
	http_req_priv_t *p = r->priv;
	p->work(r, p->work_arg);
	if (p->w_stream && direct_now(p))
		direct_stream_end(r); /* the body ends with the work function */
	loop_post(r->server->loop, worker_done, r);
}

void http_run_on_worker_then(http_req_t *r, void (*work)(http_req_t *r, void *arg), void (*done)(void *arg),
                             void *arg)
{
	http_req_priv_t *p = r->priv;
	BUG_ON(p->responded || p->on_worker);
	p->on_worker = true;
	p->work = work;
	p->work_arg = arg;
	p->work_done = done;
	if (r->server->workers) {
		/* Direct answers need the socket to be ours alone meanwhile: plain TCP (an SSL object is
		 * not shared with the loop's reads) and nothing queued before the answer. */
		http_conn_t *hc = p->hc;
		if (hc && !hc->closed && !hc->c->ssl && !hc->c->handshaking && conn_pending_out(hc->c) == 0) {
			p->w_direct = true;
			p->w_fd = hc->c->fd;
		}
		workers_submit(r->server->workers, worker_main, r);
	} else {
		work(r, arg);
		if (done) { /* later, as from a worker: the caller may still be setting up */
			p->work_done = NULL;
			loop_post(r->server->loop, done, arg);
		}
		worker_done(r);
	}
}

void http_run_on_worker(http_req_t *r, void (*work)(http_req_t *r, void *arg), void *arg)
{
	http_run_on_worker_then(r, work, NULL, arg);
}

/* ---- request accessors ---- */

bool http_req_header(const http_req_t *r, const char *name, str_t *value)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < r->nheaders; i++) {
		if (r->headers[i].name.n == n && strncasecmp(r->headers[i].name.p, name, n) == 0) {
			if (value)
				*value = r->headers[i].value;
			return true;
		}
	}
	return false;
}

bool http_req_param(const http_req_t *r, const char *key, str_t *value)
{
	return url_params_get(&r->form, key, value);
}

loop_t *http_req_loop(const http_req_t *r)
{
	return r->server->loop;
}

/* ---- parser callbacks (conn-level scratch, copied into the request arena) ---- */

static int too_big(http_conn_t *hc, size_t n)
{
	hc->header_bytes += n;
	if (hc->header_bytes > hc->srv->cfg.max_header_bytes) {
		hc->err_status = 431;
		return -1;
	}
	return 0;
}

static int on_message_begin(http_parser *hp)
{
	http_conn_t *hc = hp->data;
	BUG_ON(hc->cur != NULL);
	hc->cur = req_new(hc);
	hc->cur->priv->start_ns = clock_mono_ns();
	buf_reset(&hc->url);
	buf_reset(&hc->hfield);
	buf_reset(&hc->hval);
	hc->in_value = false;
	hc->header_bytes = 0;
	conn_set_deadline(hc->c, hc->srv->cfg.read_timeout_ms);
	return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
	http_conn_t *hc = hp->data;
	if (too_big(hc, n))
		return -1;
	buf_append(&hc->url, at, n);
	return 0;
}

static void push_header(http_conn_t *hc)
{
	http_req_t *r = hc->cur;
	http_req_priv_t *p = r->priv;
	if (r->nheaders == p->hdr_cap) {
		size_t ncap = p->hdr_cap ? p->hdr_cap * 2 : 16;
		r->headers = arena_realloc(&r->arena, r->headers, p->hdr_cap * sizeof *r->headers,
					   ncap * sizeof *r->headers);
		p->hdr_cap = ncap;
	}
	http_header_t *h = &r->headers[r->nheaders++];
	h->name = (str_t){arena_strndup(&r->arena, hc->hfield.p, hc->hfield.n), hc->hfield.n};
	h->value = (str_t){arena_strndup(&r->arena, hc->hval.p, hc->hval.n), hc->hval.n};
	buf_reset(&hc->hfield);
	buf_reset(&hc->hval);
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
	http_conn_t *hc = hp->data;
	if (too_big(hc, n + 4))
		return -1;
	if (hc->in_value) {
		push_header(hc);
		hc->in_value = false;
	}
	buf_append(&hc->hfield, at, n);
	return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
	http_conn_t *hc = hp->data;
	if (too_big(hc, n))
		return -1;
	hc->in_value = true;
	buf_append(&hc->hval, at, n);
	return 0;
}

/* RFC 9110 token: the parser is lenient about header names ("Bad Name: v"); we are not. */
static bool is_token(str_t s)
{
	if (s.n == 0)
		return false;
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c <= 32 || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c))
			return false;
	}
	return true;
}

static int on_headers_complete(http_parser *hp)
{
	http_conn_t *hc = hp->data;
	http_req_t *r = hc->cur;
	http_req_priv_t *p = r->priv;
	if (hc->in_value || hc->hfield.n)
		push_header(hc);
	hc->in_value = false;
	for (size_t i = 0; i < r->nheaders; i++) {
		if (!is_token(r->headers[i].name)) {
			hc->err_status = 400;
			return -1;
		}
	}
	r->method = str_c(http_method_str((enum http_method)hp->method));
	r->method_bit = http_method_bit(r->method);
	r->http_minor = hp->http_major == 1 ? hp->http_minor : 1;
	r->target = (str_t){arena_strndup(&r->arena, hc->url.p, hc->url.n), hc->url.n};
	p->keep_alive = http_should_keep_alive(hp) != 0;
	p->head = r->method_bit == HTTP_M_HEAD;
	if (!(hp->flags & F_CHUNKED) && hp->content_length != UINT64_MAX &&
	    hp->content_length > hc->srv->cfg.max_body_bytes) {
		hc->err_status = 413;
		return -1;
	}
	str_t expect;
	if (http_req_header(r, "Expect", &expect)) {
		if (expect.n == 12 && strncasecmp(expect.p, "100-continue", 12) == 0) {
			if (r->http_minor >= 1)
				conn_write(hc->c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		} else {
			hc->err_status = 417;
			return -1;
		}
	}
	return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
	http_conn_t *hc = hp->data;
	http_req_priv_t *p = hc->cur->priv;
	if (p->body.n + n > hc->srv->cfg.max_body_bytes) {
		hc->err_status = 413;
		return -1;
	}
	buf_append(&p->body, at, n);
	return 0;
}

static int on_message_complete(http_parser *hp)
{
	/* One request at a time: stop here; process_input dispatches and resumes later. */
	http_parser_pause(hp, 1);
	return 0;
}

/* ---- dispatch ---- */

static void builtin_metrics(http_req_t *r, void *arg)
{
	buf_t b = BUF_INIT;
	metrics_write(&b);
	http_respond_buf(r, 200, METRICS_CONTENT_TYPE, &b);
	buf_release(&b);
}

static void builtin_healthy(http_req_t *r, void *arg)
{
	http_respond(r, 200, "text/plain; charset=utf-8", "OK", 2);
}

static void builtin_ready(http_req_t *r, void *arg)
{
	if (atomic_load(&r->server->ready))
		http_respond(r, 200, "text/plain; charset=utf-8", "OK", 2);
	else
		http_respond(r, 503, "text/plain; charset=utf-8", "not ready", 9);
}

static bool is_form(const http_req_t *r)
{
	if (!(r->method_bit & (HTTP_M_POST | HTTP_M_PUT | HTTP_M_PATCH)))
		return false;
	str_t ct;
	if (!http_req_header(r, "Content-Type", &ct))
		return false;
	static const char form[] = "application/x-www-form-urlencoded";
	return ct.n >= sizeof form - 1 && strncasecmp(ct.p, form, sizeof form - 1) == 0 &&
	       (ct.n == sizeof form - 1 || ct.p[sizeof form - 1] == ';' || ct.p[sizeof form - 1] == ' ');
}

static void route(http_req_t *r);

static void unauthorized(http_req_t *r)
{
	str_t peer = STR("unknown");
	if (r->priv->hc)
		peer = str_c(r->priv->hc->c->peer);
	log_debug("basic auth failed", "peer", peer.p, "user",
	          r->priv->auth ? webcfg_auth_user(r->priv->auth) : "");
	http_add_header(r, "WWW-Authenticate", "Basic");
	http_error(r, 401, "Unauthorized");
}

/* On the loop, after the bcrypt thread has checked the password. */
static void auth_done(void *arg)
{
	http_req_t *r = arg;
	http_req_priv_t *p = r->priv;
	if (r->server->freeing || !p->hc)
		http_error(r, 503, "server shutting down"); /* discarded: nobody is listening */
	else if (p->auth->ok)
		route(r);
	else
		unauthorized(r);
}

static void auth_checked(void *arg)
{
	http_req_t *r = arg;
	loop_post(r->server->loop, auth_done, r);
}

static void dispatch(http_conn_t *hc)
{
	http_server_t *srv = hc->srv;
	http_req_t *r = hc->cur;
	http_req_priv_t *p = r->priv;
	hc->cur = NULL;
	hc->active = r;
	conn_set_deadline(hc->c, -1);
	r->body = buf_str(&p->body);
	p->dispatched = true;
	p->start_ns = clock_mono_ns();
	p->next = srv->reqs;
	if (srv->reqs)
		srv->reqs->priv->prev = r;
	srv->reqs = r;
	srv->inflight++;
	if (srv->web) {
		webcfg_append_headers(srv->web, &p->extra_headers);
		if (webcfg_auth_required(srv->web)) {
			str_t h;
			p->auth = ARENA_NEW(&r->arena, webcfg_auth_t);
			int a = webcfg_auth_begin(
			    srv->web, http_req_header(r, "Authorization", &h) ? &h : NULL, p->auth);
			if (a == WEBCFG_AUTH_PENDING) {
				if (webcfg_auth_run(srv->web, p->auth, auth_checked, r))
					http_error(r, 503, "too many logins waiting to be checked");
				return;
			}
			if (a != WEBCFG_AUTH_OK) {
				unauthorized(r);
				return;
			}
		}
	}
	route(r);
}

static void route(http_req_t *r)
{
	http_server_t *srv = r->server;
	http_req_priv_t *p = r->priv;
	err_t err = {0};
	struct http_parser_url u;
	http_parser_url_init(&u);
	str_t raw_path = r->target;
	if (r->target.n == 0 || http_parser_parse_url(r->target.p, r->target.n, 0, &u) != 0) {
		http_error(r, 400, "bad request: malformed request target");
		return;
	}
	if (u.field_set & (1 << UF_PATH))
		raw_path = str_from(r->target.p + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	else
		raw_path = STR("/");
	if (u.field_set & (1 << UF_QUERY))
		r->raw_query = str_from(r->target.p + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
	if (url_unescape(&r->arena, raw_path, false, &r->path, &err)) {
		http_error(r, 400, "bad request: path: %s", err.msg);
		return;
	}
	if (url_parse_query(&r->arena, r->raw_query, &r->query, &err)) {
		http_error(r, 400, "bad request: %s", err.msg);
		return;
	}
	for (size_t i = 0; i < r->query.n; i++)
		url_params_add(&r->arena, &r->form, r->query.v[i].key, r->query.v[i].val);
	if (is_form(r) && url_parse_query(&r->arena, r->body, &r->form, &err)) {
		http_error(r, 400, "bad request: form body: %s", err.msg);
		return;
	}

	const route_t *rt = NULL;
	unsigned allowed = 0;
	int rc = router_match(&srv->router, r->method_bit, r->path, &rt, &allowed);
	if (rc == 404) {
		http_error(r, 404, "404 page not found");
		return;
	}
	if (rc == 405) {
		buf_t allow = BUF_INIT;
		http_methods_format(&allow, allowed);
		http_add_header(r, "Allow", allow.p);
		buf_release(&allow);
		http_error(r, 405, "method not allowed");
		return;
	}
	http_route_t *route = rt->data;
	r->handler = route->pattern;
	p->route = route;
	r->path.p += route->strip;
	r->path.n -= route->strip;
	route->fn(r, route->arg);
}

static void send_error_and_close(http_conn_t *hc, int status, const char *msg)
{
	char head[256];
	size_t mlen = strlen(msg);
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 status, http_status_text(status), mlen + 1);
	conn_write(hc->c, head, (size_t)n);
	conn_write(hc->c, msg, mlen);
	conn_write(hc->c, "\n", 1);
	char code[8];
	snprintf(code, sizeof code, "%d", status);
	metric_inc(metric_with(hc->srv->m_requests, code, "other", ""));
	conn_close_after_flush(hc->c);
}

static void process_input(http_conn_t *hc)
{
	conn_t *c = hc->c;
	if (hc->processing)
		return;
	hc->processing = true;
	while (!hc->closed && !hc->active && !c->close_after_flush) {
		str_t in = conn_input(c);
		if (in.n == 0)
			break;
		size_t n = http_parser_execute(&hc->parser, &parser_settings, in.p, in.n);
		if (hc->closed)
			break;
		conn_consume(c, n);
		enum http_errno e = HTTP_PARSER_ERRNO(&hc->parser);
		if (e == HPE_PAUSED) {
			http_parser_pause(&hc->parser, 0);
			dispatch(hc);
			continue;
		}
		if (e != HPE_OK) {
			int status = hc->err_status ? hc->err_status : (e == HPE_HEADER_OVERFLOW ? 431 : 400);
			const char *msg = status == 431   ? "request header fields too large"
					  : status == 413 ? "request body too large"
					  : status == 417 ? "unsupported Expect header"
					  : hc->err_status == 400 ? "malformed header field name"
							  : http_errno_description(e);
			log_debug("bad request", "peer", c->peer, "err", http_errno_name(e));
			if (hc->cur) {
				req_free(hc->cur);
				hc->cur = NULL;
			}
			send_error_and_close(hc, status, msg);
			break;
		}
		if (n < in.n) /* should not happen without an error; never spin */
			break;
	}
	hc->processing = false;
	if (hc->closed || hc->active || c->close_after_flush)
		return;
	if (c->peer_eof) {
		/* The peer will send nothing more: a partial request can never complete. */
		conn_close_after_flush(c);
		return;
	}
	if (hc->srv->draining && !hc->cur)
		conn_close_after_flush(c);
}

/* ---- conn protocol ---- */

static void http1_on_data(conn_t *c)
{
	http_conn_t *hc = c->proto_data;
	process_input(hc);
}

static void http1_on_timeout(conn_t *c)
{
	http_conn_t *hc = c->proto_data;
	if (hc->active)
		return;
	if (hc->cur) {
		log_debug("request read timeout", "peer", c->peer);
		req_free(hc->cur);
		hc->cur = NULL;
		send_error_and_close(hc, 408, "request timeout");
	} else {
		conn_close(c);
	}
}

static void hc_free_post(void *arg)
{
	http_conn_t *hc = arg;
	buf_release(&hc->url);
	buf_release(&hc->hfield);
	buf_release(&hc->hval);
	free(hc);
}

static void check_drained(void *arg);

static void http1_on_close(conn_t *c)
{
	http_conn_t *hc = c->proto_data;
	hc->closed = true;
	if (hc->cur) {
		req_free(hc->cur);
		hc->cur = NULL;
	}
	if (hc->active) {
		hc->active->priv->hc = NULL; /* the handler still owns it; its response is discarded */
		stream_ack(hc->active);      /* a worker streaming into it stops waiting */
		hc->active = NULL;
	}
	if (hc->srv->draining)
		loop_post(c->loop, check_drained, hc->srv);
	loop_post(c->loop, hc_free_post, hc);
}

static void http1_on_drained(conn_t *c)
{
	http_conn_t *hc = c->proto_data;
	if (hc->active && hc->active->priv->on_worker)
		stream_ack(hc->active);
}

static const conn_proto_t http1_proto = {
    .name = "http/1.1",
    .on_data = http1_on_data,
    .on_drained = http1_on_drained,
    .on_timeout = http1_on_timeout,
    .on_close = http1_on_close,
};

static void on_accept(listener_t *ls, conn_t *c, void *arg)
{
	http_server_t *srv = arg;
	http_conn_t *hc = xcalloc(1, sizeof *hc);
	hc->c = c;
	hc->srv = srv;
	http_parser_init(&hc->parser, HTTP_REQUEST);
	hc->parser.data = hc;
	buf_init(&hc->url);
	buf_init(&hc->hfield);
	buf_init(&hc->hval);
	c->in_max = srv->cfg.max_header_bytes + 65536;
	conn_set_proto(c, &http1_proto, hc);
	conn_set_deadline(c, srv->cfg.read_timeout_ms);
	(void)ls;
}

/* ---- server ---- */

static void route_add(http_server_t *srv, unsigned methods, const char *pattern, http_handler_fn fn,
                      void *arg, const char *prefix)
{
	http_route_t *route = xcalloc(1, sizeof *route);
	route->fn = fn;
	route->arg = arg;
	route->pattern = xstrdup(pattern);
	route->duration = metric_with(srv->m_duration, pattern);
	buf_t full = BUF_INIT;
	buf_printf(&full, "%s%s", prefix, pattern);
	route->strip = strlen(prefix);
	router_add(&srv->router, methods, full.p, route);
	buf_release(&full);
}

void http_handle(http_server_t *srv, unsigned methods, const char *pattern, http_handler_fn fn, void *arg)
{
	route_add(srv, methods, pattern, fn, arg, srv->route_prefix ? srv->route_prefix : "");
}

/* "/" and the bare prefix lead to the prefix with a slash (where a UI registers its "/"). */
static void route_prefix_redirect(http_req_t *r, void *arg)
{
	http_server_t *srv = arg;
	buf_t loc = BUF_INIT;
	buf_printf(&loc, "%s/", srv->route_prefix);
	http_add_header(r, "Location", loc.p);
	buf_release(&loc);
	http_respond(r, 302, "text/html; charset=utf-8", "", 0);
}

int http_server_set_route_prefix(http_server_t *srv, const char *prefix, err_t *err)
{
	size_t n = strlen(prefix);
	while (n && prefix[n - 1] == '/')
		n--;
	if (!n)
		return 0; /* "" or "/": the root */
	if (prefix[0] != '/')
		return err_set(err, ERR_INVALID, "route prefix %s must start with '/'", prefix);
	for (size_t i = 0; i < n; i++)
		if (prefix[i] == '*' || prefix[i] == '?' || prefix[i] == '#' || prefix[i] == '%' ||
		    (unsigned char)prefix[i] <= ' ')
			return err_set(err, ERR_INVALID, "route prefix %s: '%c' is not allowed in it", prefix,
			               prefix[i]);
	free(srv->route_prefix);
	srv->route_prefix = xstrndup(prefix, n);
	unsigned get = HTTP_M_GET | HTTP_M_HEAD;
	route_add(srv, get, "/", route_prefix_redirect, srv, "");
	route_add(srv, get, srv->route_prefix, route_prefix_redirect, srv, "");
	return 0;
}

int http_server_new(http_server_t **out, loop_t *loop, const http_server_config_t *cfg, err_t *err)
{
	*out = NULL;
	static bool settings_done;
	if (!settings_done) {
		http_parser_settings_init(&parser_settings);
		parser_settings.on_message_begin = on_message_begin;
		parser_settings.on_url = on_url;
		parser_settings.on_header_field = on_header_field;
		parser_settings.on_header_value = on_header_value;
		parser_settings.on_headers_complete = on_headers_complete;
		parser_settings.on_body = on_body;
		parser_settings.on_message_complete = on_message_complete;
		settings_done = true;
	}
	http_server_t *srv = xcalloc(1, sizeof *srv);
	srv->loop = loop;
	srv->cfg = *cfg;
	if (!srv->cfg.max_header_bytes)
		srv->cfg.max_header_bytes = 1u << 20;
	if (!srv->cfg.max_body_bytes)
		srv->cfg.max_body_bytes = 32u << 20;
	if (srv->cfg.read_timeout_ms <= 0)
		srv->cfg.read_timeout_ms = 60000;
	if (srv->cfg.idle_timeout_ms <= 0)
		srv->cfg.idle_timeout_ms = 300000;
	/* The parser's own limit must not trip before ours (ours answers 431 with a message). */
	http_parser_set_max_header_size((uint32_t)(srv->cfg.max_header_bytes + 4096));
	atomic_init(&srv->ready, false);
	router_init(&srv->router);
	srv->m_requests = metrics_counter("http_requests_total",
					  "Tracks the number of HTTP requests.", "code,handler,method");
	srv->m_duration = metrics_histogram("http_request_duration_seconds",
					    "Tracks the latencies for HTTP requests.", "handler", NULL, 0);
	srv->other_duration = metric_with(srv->m_duration, "other");
	if (cfg->web_config_file && *cfg->web_config_file) {
		int rc = webcfg_new(&srv->web, cfg->web_config_file, err);
		if (!rc && cfg->tls && webcfg_tls(srv->web))
			rc = err_set(err, ERR_INVALID,
			             "%s: tls_server_config cannot be used on this listener "
			             "(its TLS comes from flags)",
			             cfg->web_config_file);
		if (rc) {
			webcfg_free(srv->web);
			router_release(&srv->router);
			free(srv);
			return rc;
		}
	}
	if (cfg->component)
		metrics_register_process(cfg->component);
	listener_config_t lc = {
	    .address = cfg->address,
	    .write_timeout_ms = cfg->write_timeout_ms,
	    .max_conns = cfg->max_conns,
	    .on_accept = on_accept,
	    .arg = srv,
	    .tls_new_ssl = cfg->tls                           ? flags_tls_new_ssl
	                   : srv->web && webcfg_tls(srv->web) ? webcfg_new_ssl
	                                                      : NULL,
	    .tls_arg = cfg->tls ? (void *)cfg->tls : srv->web,
	    .handshake_timeout_ms = cfg->handshake_timeout_ms,
	};
	int rc = listener_new(&srv->listener, loop, &lc, err);
	if (rc) {
		webcfg_free(srv->web);
		router_release(&srv->router);
		free(srv);
		return rc;
	}
	if (cfg->worker_threads >= 0)
		srv->workers = workers_new(cfg->worker_threads);
	http_handle(srv, HTTP_M_GET, "/metrics", builtin_metrics, NULL);
	http_handle(srv, HTTP_M_GET, "/-/healthy", builtin_healthy, NULL);
	http_handle(srv, HTTP_M_GET, "/-/ready", builtin_ready, NULL);
	*out = srv;
	return 0;
}

void http_server_free(http_server_t *srv)
{
	if (!srv)
		return;
	srv->freeing = true;
	if (srv->grace_timer)
		loop_del_timer(srv->loop, srv->grace_timer);
	listener_free(srv->listener); /* orphans in-flight requests */
	workers_free(srv->workers);   /* waits for running jobs; their completions are posted */
	webcfg_free(srv->web);        /* waits for password checks; their completions are posted */
	while (loop_run_posts(srv->loop))
		;
	/* Requests whose handlers never responded (e.g. waiting on a timer that will not fire now). */
	while (srv->reqs)
		req_free(srv->reqs);
	for (size_t i = 0; i < srv->router.n; i++) {
		http_route_t *route = srv->router.v[i].data;
		free((char *)route->pattern);
		free(route);
	}
	router_release(&srv->router);
	free(srv->route_prefix);
	free(srv);
}

void http_server_set_ready(http_server_t *srv, bool ready)
{
	atomic_store(&srv->ready, ready);
}

int http_server_port(const http_server_t *srv)
{
	return listener_port(srv->listener);
}

loop_t *http_server_loop(const http_server_t *srv)
{
	return srv->loop;
}

int http_server_adopt(http_server_t *srv, int fd, const char *peer, err_t *err)
{
	return listener_adopt(srv->listener, fd, peer, err);
}

size_t http_server_conn_count(const http_server_t *srv)
{
	return listener_conn_count(srv->listener);
}

size_t http_server_inflight(const http_server_t *srv)
{
	return srv->inflight;
}

static void check_drained(void *arg)
{
	http_server_t *srv = arg;
	if (!srv->draining || srv->done_called || listener_conn_count(srv->listener) > 0)
		return;
	srv->done_called = true;
	if (srv->grace_timer) {
		loop_del_timer(srv->loop, srv->grace_timer);
		srv->grace_timer = 0;
	}
	if (srv->done)
		srv->done(srv, srv->done_arg);
}

static int64_t grace_expired(loop_t *l, uint64_t id, void *arg)
{
	http_server_t *srv = arg;
	srv->grace_timer = 0;
	size_t n = listener_conn_count(srv->listener);
	if (n > 0) {
		char nbuf[32];
		snprintf(nbuf, sizeof nbuf, "%zu", n);
		log_warn("grace period over; closing remaining connections", "connections", nbuf);
	}
	while (listener_first(srv->listener))
		conn_close(listener_first(srv->listener));
	loop_post(l, check_drained, srv);
	(void)id;
	return LOOP_TIMER_DONE;
}

void http_server_shutdown(http_server_t *srv, int64_t grace_ms, void (*done)(http_server_t *srv, void *arg),
			  void *arg)
{
	if (srv->draining)
		return;
	srv->draining = true;
	srv->done = done;
	srv->done_arg = arg;
	http_server_set_ready(srv, false);
	listener_stop_accepting(srv->listener);
	conn_t *next;
	for (conn_t *c = listener_first(srv->listener); c; c = next) {
		next = c->next;
		http_conn_t *hc = c->proto_data;
		if (!hc || (!hc->active && !hc->cur))
			conn_close_after_flush(c);
	}
	srv->grace_timer = loop_add_timer(srv->loop, grace_ms, grace_expired, srv);
	loop_post(srv->loop, check_drained, srv);
}

static void run_done(http_server_t *srv, void *arg)
{
	log_info("HTTP server drained");
	loop_stop(srv->loop);
}

static void run_signal(loop_t *l, int signo, void *arg)
{
	http_server_t *srv = arg;
	if (srv->signals++ > 0) {
		log_warn("second signal; stopping now");
		loop_stop(l);
		return;
	}
	char inflight[32];
	snprintf(inflight, sizeof inflight, "%zu", srv->inflight);
	log_info("received signal, shutting down gracefully", "signal", signo == 15 ? "SIGTERM" : "SIGINT",
		 "inflight", inflight);
	http_server_shutdown(srv, srv->run_grace_ms, run_done, NULL);
}

int http_server_run(http_server_t *srv, int64_t grace_ms, err_t *err)
{
	srv->run_grace_ms = grace_ms;
	int rc = loop_handle_signals(srv->loop, run_signal, srv, err);
	if (rc)
		return rc;
	rc = loop_run(srv->loop);
	if (rc)
		return err_set(err, rc, "event loop failed");
	return 0;
}
