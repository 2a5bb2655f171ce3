/*
 * grpc_pool.c — unary gRPC calls on pooled connections, driven by the calling thread (see grpc_pool.h).
 *
 * A connection (pconn_t) carries at most one call at a time; its nghttp2 session, output buffer and
 * socket belong to the thread running that call. The pool itself is only a locked list of idle
 * connections. Nothing here blocks without a bound: connecting polls until the connect timeout or the
 * deadline, running polls until the earliest deadline of the calls still running.
 */
#include "net/grpc_pool.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "net/grpc.h"
#include "net/tls.h"

#define OUT_HIGH (256u * 1024)

typedef struct pconn pconn_t;

struct grpc_pool {
	char *target;
	char host[256], port[16];
	grpc_pool_config_t c;
	pthread_mutex_t mu;
	pconn_t *idle;     /* mu */
	size_t nidle;      /* mu */
	uint64_t connects; /* mu */
	/* cfg.backoff_max_ms: after a failed connect, calls fail at once until retry_at (mu) */
	uint64_t retry_at, backoff;
	char last_fail[300];
};

struct pconn {
	grpc_pool_t *p;
	int fd;
	SSL *ssl;
	nghttp2_session *s;
	bool dead, goaway, tls_want_write;
	char reason[256];
	buf_t out;
	size_t out_off;
	grpc_pool_call_t *call; /* the call it carries, if any */
	pconn_t *next;          /* idle list */
};

struct grpc_pool_call {
	grpc_pool_t *p;
	pconn_t *c;
	char *path;
	char *md_key, *md_val; /* one metadata pair sent with the request (stream calls), or NULL */
	buf_t req;             /* framed request */
	size_t req_off, req_sent;
	uint64_t deadline;
	int64_t timeout_ms;
	int32_t id;
	bool ended, reused, heard, retried, refused, clean;
	err_t err;
	int http_status;
	bool grpc_ct, got_status, snappy;
	int status;
	char *status_msg;
	uint8_t hdr[5]; /* response framing: the prefix being read, then the rest of its message */
	size_t hdr_n, left;
	int nmsgs;
	bool stream;      /* grpc_pool_stream_start: the response's messages are kept for recv */
	buf_t in;         /* stream: framed response bytes received and not yet taken */
	size_t in_off;    /* stream: where the next message's prefix starts in in */
	buf_t plain;      /* stream: the last message taken, decompressed */
	int taken;        /* stream: messages recv returned (only the nmsgs checked ones are) */
	bool undecodable; /* stream: a message failed to decompress (the call's error) */
};

/* ---- ending ---- */

static void call_fail(grpc_pool_call_t *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void call_set_end(grpc_pool_call_t *call, int status, const char *msg)
{
	if (call->ended)
		return;
	call->ended = true;
	if (status != GRPC_OK)
		err_set(&call->err, grpc_err_from_status(status), "grpc %s%s: %s: %s", call->p->target,
		        call->path, grpc_status_name(status), msg && msg[0] ? msg : "(no message)");
}

static void call_fail(grpc_pool_call_t *call, int status, const char *fmt, ...)
{
	char m[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	call_set_end(call, status, m);
}

static void pconn_fail(pconn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pconn_fail(pconn_t *c, const char *fmt, ...)
{
	if (c->dead)
		return;
	c->dead = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof c->reason, fmt, ap);
	va_end(ap);
}

static void pconn_destroy(pconn_t *c)
{
	if (!c)
		return;
	if (c->s)
		nghttp2_session_del(c->s);
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	buf_release(&c->out);
	free(c);
}

/* ---- HTTP/2 callbacks (user data: the connection) ---- */

static grpc_pool_call_t *call_of(pconn_t *c, int32_t id)
{
	return c->call && c->call->id == id && !c->call->ended ? c->call : NULL;
}

static ssize_t req_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
	grpc_pool_call_t *call = call_of(ud, id);
	(void)s, (void)src, (void)buf;
	if (!call)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	size_t n = call->req.n - call->req_off < length ? call->req.n - call->req_off : length;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY; /* send_data copies it once, into the output */
	call->req_off += n;
	if (call->req_off == call->req.n)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int send_data(nghttp2_session *s, nghttp2_frame *f, const uint8_t *framehd, size_t length,
                     nghttp2_data_source *src, void *ud)
{
	pconn_t *c = ud;
	grpc_pool_call_t *call = call_of(c, f->hd.stream_id);
	(void)s, (void)src;
	if (!call || call->req_sent + length > call->req.n)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	size_t pad = f->data.padlen;
	buf_append(&c->out, framehd, 9);
	if (pad)
		buf_putc(&c->out, (char)(pad - 1));
	buf_append(&c->out, call->req.p + call->req_sent, length);
	call->req_sent += length;
	if (pad > 1)
		memset(buf_extend(&c->out, pad - 1), 0, pad - 1);
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)flags, (void)s;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	grpc_pool_call_t *call = call_of(ud, f->hd.stream_id);
	if (!call)
		return 0;
	call->heard = true;
	if (nl == 7 && memcmp(name, ":status", 7) == 0) {
		call->http_status = 0;
		for (size_t i = 0; i < vl && i < 4; i++)
			call->http_status = call->http_status * 10 + (value[i] - '0');
	} else if (nl == 12 && memcmp(name, "content-type", 12) == 0) {
		call->grpc_ct = vl >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
		                (vl == 16 || value[16] == '+' || value[16] == ';');
	} else if (nl == 13 && memcmp(name, "grpc-encoding", 13) == 0) {
		call->snappy = vl == 6 && memcmp(value, "snappy", 6) == 0;
	} else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0) {
		int code = 0;
		bool ok = vl > 0 && vl < 4;
		for (size_t i = 0; i < vl && ok; i++) {
			ok = value[i] >= '0' && value[i] <= '9';
			code = code * 10 + (value[i] - '0');
		}
		call->got_status = true;
		call->status = ok ? code : GRPC_UNKNOWN;
	} else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0) {
		char *m = xmalloc(vl + 1), *w = m; /* percent-decoded */
		for (size_t i = 0; i < vl; i++) {
			unsigned hi, lo;
			if (value[i] == '%' && i + 2 < vl &&
			    sscanf((const char *)value + i + 1, "%1x%1x", &hi, &lo) == 2) {
				*w++ = (char)(hi << 4 | lo);
				i += 2;
			} else {
				*w++ = (char)value[i];
			}
		}
		*w = 0;
		free(call->status_msg);
		call->status_msg = m;
	}
	return 0;
}

/* The response's messages are framed, checked and counted; their bytes are not kept. */
static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *ud)
{
	pconn_t *c = ud;
	grpc_pool_call_t *call = call_of(c, id);
	(void)flags;
	if (!call)
		return 0;
	call->heard = true;
	if (call->stream)
		buf_append(&call->in, data, len);
	while (len) {
		if (call->hdr_n < 5) {
			size_t k = 5 - call->hdr_n < len ? 5 - call->hdr_n : len;
			memcpy(call->hdr + call->hdr_n, data, k);
			call->hdr_n += k, data += k, len -= k;
			if (call->hdr_n < 5)
				break;
			const uint8_t *h = call->hdr;
			size_t mlen = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
			const char *bad = h[0] > 1 ? "response: bad message flag byte (garbage frame)"
			                  : h[0] == 1 && !call->snappy
			                      ? "response: compressed message without grpc-encoding snappy"
			                      : NULL;
			if (!bad && mlen > call->p->c.max_recv_msg) {
				call_fail(call, GRPC_RESOURCE_EXHAUSTED,
				          "response message of %zu bytes larger than max (%zu)", mlen,
				          call->p->c.max_recv_msg);
			} else if (bad) {
				call_fail(call, GRPC_INTERNAL, "%s", bad);
			} else {
				call->left = mlen;
			}
			if (call->ended) {
				nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
				c->goaway = true; /* not worth keeping */
				return 0;
			}
		}
		size_t k = call->left < len ? call->left : len;
		call->left -= k, data += k, len -= k;
		if (!call->left) {
			call->nmsgs++;
			call->hdr_n = 0;
		}
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	pconn_t *c = ud;
	(void)s;
	if (f->hd.type == NGHTTP2_GOAWAY)
		c->goaway = true;
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	(void)s;
	grpc_pool_call_t *call = call_of(ud, id);
	if (!call)
		return 0;
	call->clean = true;
	if (call->http_status && call->http_status != 200) {
		int hs = call->http_status;
		int status = hs == 400                                            ? GRPC_INTERNAL
		             : hs == 401                                          ? 16
		             : hs == 403                                          ? 7
		             : hs == 404                                          ? GRPC_UNIMPLEMENTED
		             : (hs == 429 || hs == 502 || hs == 503 || hs == 504) ? GRPC_UNAVAILABLE
		                                                                  : GRPC_UNKNOWN;
		call_fail(call, status, "unexpected HTTP status %d", hs);
	} else if (call->got_status) {
		if (call->status == GRPC_OK && call->hdr_n)
			call_fail(call, GRPC_INTERNAL,
			          "response ended inside a message (%zu bytes of a frame)",
			          call->hdr_n + (call->hdr_n == 5 ? call->left : 0));
		else if (call->status == GRPC_OK && call->http_status == 200 && !call->grpc_ct)
			call_set_end(call, GRPC_UNKNOWN, "response content-type is not application/grpc");
		else
			call_set_end(call, call->status, call->status_msg);
	} else if (code == NGHTTP2_REFUSED_STREAM) {
		call->refused = true; /* not seen by the server: may go again (call_lost) */
		((pconn_t *)ud)->goaway = true;
	} else if (code != NGHTTP2_NO_ERROR) {
		call_fail(call, code == NGHTTP2_CANCEL ? GRPC_CANCELLED : GRPC_UNAVAILABLE,
		          "stream reset by the server: %s", nghttp2_http2_strerror(code));
	} else {
		call_set_end(call, GRPC_INTERNAL, "response ended without grpc-status (truncated)");
	}
	return 0;
}

/* ---- transport ---- */

/* nghttp2's output into the socket, as far as it takes it now. */
static void pconn_flush(pconn_t *c)
{
	while (!c->dead && c->out.n - c->out_off < OUT_HIGH) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(c->s, &d);
		if (n < 0)
			pconn_fail(c, "http2: %s", nghttp2_strerror((int)n));
		if (n <= 0)
			break;
		buf_append(&c->out, d, (size_t)n);
	}
	while (!c->dead && c->out_off < c->out.n) {
		ssize_t w = tls_io_send(c->fd, c->ssl, c->out.p + c->out_off, c->out.n - c->out_off);
		if (w > 0)
			c->out_off += (size_t)w;
		else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else
			pconn_fail(c, "send: %s", strerror(errno));
	}
	if (c->out_off == c->out.n) {
		buf_reset(&c->out);
		c->out_off = 0;
	}
}

/* Everything the socket holds, through nghttp2. */
static void pconn_read(pconn_t *c)
{
	uint8_t buf[16384];
	char why[256] = "";
	while (!c->dead) {
		ssize_t r = tls_io_recv(c->fd, c->ssl, buf, sizeof buf, &c->tls_want_write, why, sizeof why);
		if (r > 0) {
			ssize_t n = nghttp2_session_mem_recv(c->s, buf, (size_t)r);
			if (n < 0)
				pconn_fail(c, "bad http2 from server: %s", nghttp2_strerror((int)n));
			if ((size_t)r < sizeof buf && !c->ssl)
				break; /* drained (a short read): no EAGAIN round trip */
			continue;
		}
		if (r == 0)
			pconn_fail(c, "connection closed by the server");
		else if (errno == EINTR)
			continue;
		else if (errno == EPROTO)
			pconn_fail(c, "TLS: %s", why);
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			pconn_fail(c, "recv: %s", strerror(errno));
		break;
	}
}

/* Wait for fd to be ready for events until the absolute time until_ms: > 0 ready, 0 timed out. */
static int wait_fd(int fd, short events, uint64_t until_ms)
{
	for (;;) {
		uint64_t now = clock_mono_ms();
		if (now >= until_ms)
			return 0;
		struct pollfd pf = {.fd = fd, .events = events};
		int r = poll(&pf, 1, (int)(until_ms - now > 60000 ? 60000 : until_ms - now));
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return 1; /* let the next operation say what is wrong */
	}
}

static nghttp2_session_callbacks *g_cb;
static pthread_once_t g_cb_once = PTHREAD_ONCE_INIT;

static void cb_init(void)
{
	if (nghttp2_session_callbacks_new(&g_cb) != 0)
		die("nghttp2: out of memory");
	nghttp2_session_callbacks_set_on_header_callback(g_cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g_cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(g_cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(g_cb, on_stream_close);
	nghttp2_session_callbacks_set_send_data_callback(g_cb, send_data);
}

/* A new connection, ready for a call (connected, TLS done, HTTP/2 session with our SETTINGS queued);
 * NULL with why set. */
static pconn_t *pconn_open(grpc_pool_t *p, uint64_t deadline, char *why, size_t whyn)
{
	uint64_t now = clock_mono_ms();
	uint64_t until = now + (uint64_t)p->c.connect_timeout_ms;
	if (until > deadline)
		until = deadline;
	struct addrinfo hints = {0}, *res = NULL, *ai;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int gai = getaddrinfo(p->host[0] ? p->host : "localhost", p->port, &hints, &res);
	if (gai) {
		snprintf(why, whyn, "resolve %s: %s", p->target, gai_strerror(gai));
		return NULL;
	}
	for (ai = res; ai && ai->ai_family != AF_INET; ai = ai->ai_next)
		;
	if (!ai)
		ai = res;
	pconn_t *c = xcalloc(1, sizeof *c);
	c->p = p;
	buf_init(&c->out);
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = 0;
	if (c->fd < 0) {
		snprintf(why, whyn, "socket: %s", strerror(errno));
	} else if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		snprintf(why, whyn, "connect %s: %s", p->target, strerror(errno));
	} else if (!wait_fd(c->fd, POLLOUT, until)) {
		snprintf(why, whyn, "connect %s: timed out after %lld ms", p->target,
		         (long long)(until - now));
	} else {
		socklen_t el = sizeof e;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
			e = errno;
		if (e)
			snprintf(why, whyn, "connect %s: %s", p->target, strerror(e));
	}
	freeaddrinfo(res);
	if (c->fd < 0 || why[0]) {
		pconn_destroy(c);
		return NULL;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (p->c.tls) {
		c->ssl = tls_client_new_ssl(p->c.tls, p->host[0] ? p->host : "localhost");
		SSL_set_fd(c->ssl, c->fd);
		SSL_set_connect_state(c->ssl);
		for (;;) {
			ERR_clear_error();
			int r = SSL_do_handshake(c->ssl);
			if (r == 1)
				break;
			int se = SSL_get_error(c->ssl, r);
			if ((se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) &&
			    wait_fd(c->fd, se == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, until))
				continue;
			char m[300];
			long v = SSL_get_verify_result(c->ssl);
			if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE)
				snprintf(m, sizeof m, "timed out");
			else if (v != X509_V_OK)
				snprintf(m, sizeof m, "certificate verify failed: %s",
				         X509_verify_cert_error_string(v));
			else if (se == SSL_ERROR_SYSCALL && !ERR_peek_error())
				snprintf(m, sizeof m, "%s",
				         errno ? strerror(errno) : "connection closed by the server");
			else
				tls_errors(m, sizeof m);
			snprintf(why, whyn, "TLS handshake with %s: %s", p->target, m);
			pconn_destroy(c);
			return NULL;
		}
	}
	pthread_mutex_lock(&p->mu);
	p->connects++;
	pthread_mutex_unlock(&p->mu);
	pthread_once(&g_cb_once, cb_init);
	if (nghttp2_session_client_new(&c->s, g_cb, c) != 0)
		die("nghttp2: out of memory");
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	                               {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)p->c.stream_window}};
	nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, p->c.stream_window ? 2 : 1);
	if (p->c.stream_window)
		nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0,
		                                      (int32_t)p->c.stream_window);
	return c;
}

/* Put the call's request on c (nothing is sent until the connection is flushed). */
static void pconn_submit(pconn_t *c, grpc_pool_call_t *call)
{
	grpc_pool_t *p = c->p;
	char timeout[32];
	nghttp2_nv nva[12];
	size_t n = 0;
#define H(k, v)                                                                                              \
	nva[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE}
	H(":method", "POST");
	H(":scheme", p->c.tls ? "https" : "http");
	H(":path", call->path);
	H(":authority", p->target);
	H("content-type", "application/grpc");
	H("te", "trailers");
	H("user-agent", "strata-grpc/" STRATA_VERSION);
	H("grpc-accept-encoding", "snappy");
	if (p->c.compress)
		H("grpc-encoding", "snappy");
	uint64_t now = clock_mono_ms();
	long long left = call->deadline > now ? (long long)(call->deadline - now) : 1;
	if (left < 100000000)
		snprintf(timeout, sizeof timeout, "%lldm", left);
	else
		snprintf(timeout, sizeof timeout, "%lldS", left / 1000 + 1);
	H("grpc-timeout", timeout);
	if (call->md_key)
		H(call->md_key, call->md_val);
#undef H
	call->c = c;
	c->call = call;
	call->req_off = call->req_sent = 0;
	call->id = 0;
	call->heard = call->refused = call->clean = false;
	call->http_status = 0;
	call->hdr_n = call->left = 0;
	call->nmsgs = 0;
	nghttp2_data_provider prd = {.source.ptr = call, .read_callback = req_read};
	int32_t id = nghttp2_submit_request(c->s, NULL, nva, n, &prd, NULL);
	if (id < 0) {
		c->goaway = true;
		call_fail(call, GRPC_UNAVAILABLE, "%s", nghttp2_strerror(id));
		return;
	}
	call->id = id;
}

/* pconn_open, failing at once while backing off after a failed connect (cfg.backoff_max_ms). */
static pconn_t *pool_connect(grpc_pool_t *p, uint64_t deadline, char *why, size_t whyn)
{
	if (p->c.backoff_max_ms > 0) {
		pthread_mutex_lock(&p->mu);
		bool wait = clock_mono_ms() < p->retry_at;
		if (wait)
			snprintf(why, whyn, "%s (backing off)", p->last_fail);
		pthread_mutex_unlock(&p->mu);
		if (wait)
			return NULL;
	}
	pconn_t *c = pconn_open(p, deadline, why, whyn);
	if (p->c.backoff_max_ms > 0) {
		pthread_mutex_lock(&p->mu);
		if (c) {
			p->backoff = 0;
		} else {
			p->backoff = p->backoff ? 2 * p->backoff : 100;
			if (p->backoff > (uint64_t)p->c.backoff_max_ms)
				p->backoff = (uint64_t)p->c.backoff_max_ms;
			p->retry_at = clock_mono_ms() + p->backoff;
			snprintf(p->last_fail, sizeof p->last_fail, "%s", why);
		}
		pthread_mutex_unlock(&p->mu);
	}
	return c;
}

/* Give call a connection: an idle one (reused) or a new one. */
static void call_attach(grpc_pool_call_t *call)
{
	grpc_pool_t *p = call->p;
	pthread_mutex_lock(&p->mu);
	pconn_t *c = p->idle;
	if (c) {
		p->idle = c->next;
		p->nidle--;
	}
	pthread_mutex_unlock(&p->mu);
	call->reused = c != NULL;
	if (!c) {
		char why[300] = "";
		c = pool_connect(p, call->deadline, why, sizeof why);
		if (!c) {
			call_fail(call, GRPC_UNAVAILABLE, "connect failed: %s", why);
			return;
		}
	}
	c->next = NULL;
	pconn_submit(c, call);
}

/* The call's connection is gone (or refused the stream) before the call ended: once more on a new
 * connection if that one was an old idle one that never answered this call, else fail it. */
static void call_lost(grpc_pool_call_t *call)
{
	pconn_t *c = call->c;
	char why[300];
	snprintf(why, sizeof why, "%s", c->dead ? c->reason : "stream refused by the server");
	bool again = call->reused && !call->heard && !call->retried;
	call->c = NULL;
	c->call = NULL;
	pconn_destroy(c);
	if (!again) {
		call_fail(call, GRPC_UNAVAILABLE, "connection lost: %s", why);
		return;
	}
	call->retried = true;
	char cw[300] = "";
	pconn_t *n = pool_connect(call->p, call->deadline, cw, sizeof cw);
	if (!n) {
		call_fail(call, GRPC_UNAVAILABLE, "connect failed: %s", cw);
		return;
	}
	call->reused = false;
	pconn_submit(n, call);
}

/* ---- API ---- */

int grpc_pool_new(grpc_pool_t **out, const char *target, const grpc_pool_config_t *cfg, err_t *err)
{
	*out = NULL;
	const char *colon = strrchr(target, ':');
	if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5)
		return err_set(err, ERR_INVALID, "grpc target \"%s\": want host:port", target);
	size_t hl = (size_t)(colon - target);
	const char *h = target;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	if (hl >= 256)
		return err_set(err, ERR_INVALID, "grpc target \"%s\": host too long", target);
	grpc_pool_t *p = xcalloc(1, sizeof *p);
	memcpy(p->host, h, hl);
	snprintf(p->port, sizeof p->port, "%s", colon + 1);
	p->target = xstrdup(target);
	if (cfg)
		p->c = *cfg;
	if (p->c.connect_timeout_ms <= 0)
		p->c.connect_timeout_ms = 5000;
	if (!p->c.max_idle)
		p->c.max_idle = 16;
	if (!p->c.max_recv_msg)
		p->c.max_recv_msg = 4u << 20;
	pthread_mutex_init(&p->mu, NULL);
	*out = p;
	return 0;
}

void grpc_pool_free(grpc_pool_t *p)
{
	if (!p)
		return;
	for (pconn_t *c = p->idle, *n; c; c = n) {
		n = c->next;
		pconn_destroy(c);
	}
	pthread_mutex_destroy(&p->mu);
	free(p->target);
	free(p);
}

uint64_t grpc_pool_connects(grpc_pool_t *p)
{
	pthread_mutex_lock(&p->mu);
	uint64_t n = p->connects;
	pthread_mutex_unlock(&p->mu);
	return n;
}

static grpc_pool_call_t *call_new(grpc_pool_t *p, const char *path, buf_t *msg, uint64_t deadline_ms)
{
	grpc_pool_call_t *call = xcalloc(1, sizeof *call);
	call->p = p;
	buf_init(&call->in);
	buf_init(&call->plain);
	call->path = xstrdup(path);
	call->req = *msg;
	buf_init(msg);
	call->deadline = deadline_ms;
	return call;
}

/* Past its deadline already, or on a connection with its request submitted. */
static void call_begin(grpc_pool_call_t *call)
{
	uint64_t now = clock_mono_ms();
	call->timeout_ms = call->deadline > now ? (int64_t)(call->deadline - now) : 0;
	if (now >= call->deadline)
		call_fail(call, GRPC_DEADLINE_EXCEEDED, "deadline of %lld ms exceeded",
		          (long long)call->timeout_ms);
	else
		call_attach(call);
}

grpc_pool_call_t *grpc_pool_call_start(grpc_pool_t *p, const char *path, buf_t *msg, uint64_t deadline_ms)
{
	grpc_pool_call_t *call = call_new(p, path, msg, deadline_ms);
	call_begin(call);
	return call;
}

/* Before a poll: the call's output flushed, a lost connection re-made, its deadline enforced; then
 * *pf set to what to wait for. false: the call has ended (nothing to wait for). */
static bool call_prepare(grpc_pool_call_t *call, uint64_t now, struct pollfd *pf)
{
	if (!call || call->ended)
		return false;
	if (call->c && !call->c->dead)
		pconn_flush(call->c);
	while (!call->ended && call->c && (call->c->dead || call->refused))
		call_lost(call); /* (flushes on the next round) */
	if (call->ended)
		return false;
	if (now >= call->deadline) {
		call->c->goaway = true; /* the stream is still open there: close it */
		call_fail(call, GRPC_DEADLINE_EXCEEDED, "deadline of %lld ms exceeded",
		          (long long)call->timeout_ms);
		return false;
	}
	pconn_t *c = call->c;
	*pf = (struct pollfd){.fd = c->fd,
	                      .events = POLLIN | (c->out_off < c->out.n || c->tls_want_write ? POLLOUT : 0)};
	return true;
}

/* After the poll: what the socket has, through nghttp2. */
static void call_ready(grpc_pool_call_t *call, short revents)
{
	pconn_t *c = call->c;
	bool rd = (revents & (POLLIN | POLLERR | POLLHUP)) != 0;
	if (c->tls_want_write && (revents & POLLOUT)) {
		c->tls_want_write = false; /* the read that needed the socket writable goes on */
		rd = true;
	}
	if (rd)
		pconn_read(c);
}

void grpc_pool_run(grpc_pool_call_t **calls, size_t n)
{
	struct pollfd *pf = xcalloc(n ? n : 1, sizeof *pf);
	size_t *which = xcalloc(n ? n : 1, sizeof *which);
	for (;;) {
		uint64_t now = clock_mono_ms(), wake = UINT64_MAX;
		size_t nf = 0;
		for (size_t i = 0; i < n; i++) {
			if (!call_prepare(calls[i], now, &pf[nf]))
				continue;
			which[nf++] = i;
			if (calls[i]->deadline < wake)
				wake = calls[i]->deadline;
		}
		if (!nf)
			break;
		int r = poll(pf, nf, (int)(wake - now > 60000 ? 60000 : wake - now));
		if (r <= 0)
			continue;
		for (size_t k = 0; k < nf; k++)
			if (pf[k].revents)
				call_ready(calls[which[k]], pf[k].revents);
	}
	free(pf);
	free(which);
}

grpc_pool_call_t *grpc_pool_stream_start(grpc_pool_t *p, const char *path, buf_t *msg, uint64_t deadline_ms,
                                         const char *md_key, const char *md_val)
{
	grpc_pool_call_t *call = call_new(p, path, msg, deadline_ms);
	call->stream = true;
	if (md_key && md_val) {
		call->md_key = xstrdup(md_key);
		call->md_val = xstrdup(md_val);
	}
	call_begin(call);
	struct pollfd pf;
	call_prepare(call, clock_mono_ms(), &pf); /* the request goes out now */
	return call;
}

/* The next complete message in call->in that on_data_chunk has checked, if any. */
static bool stream_take(grpc_pool_call_t *call, const uint8_t **msg, size_t *len, err_t *err, int *rc)
{
	if (call->taken >= call->nmsgs || call->undecodable)
		return false;
	const uint8_t *h = (const uint8_t *)call->in.p + call->in_off;
	size_t mlen = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
	call->taken++;
	call->in_off += 5 + mlen;
	*rc = 1;
	if (h[0] != 1) {
		*msg = h + 5;
		*len = mlen;
		return true;
	}
	buf_reset(&call->plain);
	err_t derr = {0};
	int drc = grpc_snappy_decode(&call->plain, h + 5, mlen, call->p->c.max_recv_msg, &derr);
	if (drc) {
		call_fail(call, GRPC_INTERNAL, "response: %s", derr.msg);
		if (call->c)
			call->c->goaway = true; /* the stream may still be open there */
		if (err)
			*err = call->err;
		*rc = drc == ERR_LIMIT ? ERR_LIMIT : ERR_CORRUPT;
		if (err)
			err->code = *rc;
		call->err.code = *rc;
		call->undecodable = true; /* nothing more comes out */
		return true;
	}
	*msg = (const uint8_t *)call->plain.p;
	*len = call->plain.n;
	return true;
}

int grpc_pool_stream_recv(grpc_pool_call_t *call, const uint8_t **msg, size_t *len, err_t *err)
{
	int rc;
	for (;;) {
		if (stream_take(call, msg, len, err, &rc))
			return rc;
		if (call->in_off) { /* every message taken: the partial one to the front */
			size_t rest = call->in.n - call->in_off;
			memmove(call->in.p, call->in.p + call->in_off, rest);
			call->in.n = rest;
			call->in_off = 0;
		}
		struct pollfd pf;
		uint64_t now = clock_mono_ms();
		if (!call_prepare(call, now, &pf))
			break;
		int r = poll(&pf, 1, (int)(call->deadline - now > 60000 ? 60000 : call->deadline - now));
		if (r > 0)
			call_ready(call, pf.revents);
		if (call->c && !call->c->dead)
			pconn_flush(call->c); /* the window for what was read: the server goes on meanwhile */
	}
	if (stream_take(call, msg, len, err, &rc)) /* checked before it ended */
		return rc;
	if (call->err.code && err)
		*err = call->err;
	return call->err.code;
}

int grpc_pool_call_end(grpc_pool_call_t *call, int *nmsgs, err_t *err)
{
	if (!call->ended) /* not run to its end: a caller's mistake, but never a hang */
		call_fail(call, GRPC_CANCELLED, "call not run");
	pconn_t *c = call->c;
	if (c) {
		c->call = NULL;
		bool keep = call->clean && !c->dead && !c->goaway;
		if (keep)
			pconn_flush(c); /* e.g. the window updates for the answer */
		grpc_pool_t *p = call->p;
		if (keep && !c->dead) {
			pthread_mutex_lock(&p->mu);
			if (p->nidle < p->c.max_idle) {
				c->next = p->idle;
				p->idle = c;
				p->nidle++;
				c = NULL;
			}
			pthread_mutex_unlock(&p->mu);
		}
		pconn_destroy(c);
	}
	if (nmsgs)
		*nmsgs = call->nmsgs;
	int rc = call->err.code;
	if (rc && err)
		*err = call->err;
	buf_release(&call->req);
	buf_release(&call->in);
	buf_release(&call->plain);
	free(call->status_msg);
	free(call->md_key);
	free(call->md_val);
	free(call->path);
	free(call);
	return rc;
}
