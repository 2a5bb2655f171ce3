/*
 * grpc_client.c — gRPC client channel on nghttp2 (see grpc_client.h).
 *
 * Two sides meet in a grpc_stream_t: the loop side (HTTP/2 stream, frame assembly, timers; loop
 * thread only) and the consumer side (message queue, final status; under ch->mu, waited on with the
 * stream's condition variable). A stream is freed when its reference count drops to zero: one
 * reference for the consumer (until grpc_stream_free), one for the loop (until the call ended there),
 * one per loop_post in flight.
 *
 * Connections are only destroyed from outermost loop entry points (fd events, timers, posts), never
 * from inside nghttp2 callbacks: callbacks mark a connection dead and h2c_after() tears it down.
 */
#include "net/grpc_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/hmap.h"
#include "base/log.h"
#include "net/tls.h"

#define CONN_OUT_HIGH (256u * 1024)
#define STREAM_WINDOW (1u << 20)
#define CONN_WINDOW (64u << 20)
#define READ_BUDGET (1u << 20)

typedef struct msg {
	struct msg *next;
	size_t len;
	uint8_t flag;
	uint8_t data[];
} msg_t;

typedef struct h2c h2c_t;

struct grpc_stream {
	grpc_channel_t *ch;
	/* shared (ch->mu) */
	pthread_cond_t cv;
	int refs;
	msg_t *head, *tail;
	size_t queued;
	bool ended;
	err_t final; /* code 0 = OK */
	bool withheld;
	bool resume_posted;
	bool cancel_posted;
	/* consumer side */
	msg_t *cur;
	buf_t plain;
	bool user_failed;
	err_t user_err;
	/* loop side */
	char *path;
	char *md_key, *md_value; /* one request metadata pair (grpc_channel_call_md), NULL = none */
	buf_t req; /* framed request */
	size_t req_off;  /* handed to nghttp2 (req_read) */
	size_t req_sent; /* copied into the connection's output (send_data) */
	int64_t timeout_ms;
	uint64_t timer;
	h2c_t *conn;
	int32_t id;
	bool loop_done;
	bool on_list;
	grpc_stream_t *prev, *next;
	bool wake_pending; /* on its connection's wake list (holds a reference) */
	grpc_stream_t *wake_next;
	buf_t partial;
	size_t partial_off;
	size_t unacked;
	int http_status;
	bool grpc_ct, got_status, snappy;
	int status;
	char *status_msg;
};

struct h2c {
	grpc_channel_t *ch;
	int fd;
	SSL *ssl;            /* TLS session (channel with tls), NULL for h2c */
	bool handshaking;    /* TCP connected, TLS handshake running */
	bool tls_want_write; /* OpenSSL needs the socket writable to go on reading */
	bool heard;          /* the server has sent something since the handshake */
	nghttp2_session *s;
	bool ready, goaway, dead;
	char reason[256];
	buf_t out;
	size_t out_off;
	grpc_stream_t *active;
	size_t nactive;
	imap_t ids; /* HTTP/2 stream id -> grpc_stream_t * of active calls (not nghttp2 stream user data:
		     * a call may end before nghttp2 has opened its stream) */
	uint64_t connect_timer, ping_timer, ping_timeout_timer;
	bool ping_outstanding;
	h2c_t *next_draining;
	grpc_stream_t *wake; /* streams given messages during this read, woken once it is done */
};

struct grpc_channel {
	loop_t *loop;
	bool own_loop;
	pthread_t thread;
	char *target;
	char host[256], port[16];
	size_t max_recv;
	int64_t connect_timeout_ms, backoff_initial_ms, backoff_max_ms, keepalive_ms, keepalive_timeout_ms;
	size_t stream_buffer;
	bool compress;
	tls_client_t *tls; /* borrowed; NULL = plaintext */
	pthread_mutex_t mu;
	uint64_t connects;
	/* loop side */
	h2c_t *conn;     /* current connection (connecting or ready), NULL if none */
	h2c_t *draining; /* after GOAWAY: finishing their streams */
	grpc_stream_t *pending; /* waiting for the connection */
	int64_t backoff_ms;
	uint64_t backoff_until;
	char last_err[256];
	bool closing;
};

static void h2c_after(h2c_t *c);
static void h2c_ready(h2c_t *c);
static void h2c_fail(h2c_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- references and the consumer-visible end ---- */

static void stream_destroy(grpc_stream_t *st)
{
	for (msg_t *m = st->head, *n; m; m = n) {
		n = m->next;
		free(m);
	}
	free(st->cur);
	buf_release(&st->plain);
	buf_release(&st->req);
	buf_release(&st->partial);
	free(st->path);
	free(st->md_key);
	free(st->md_value);
	free(st->status_msg);
	pthread_cond_destroy(&st->cv);
	free(st);
}

static void stream_unref(grpc_stream_t *st)
{
	grpc_channel_t *ch = st->ch;
	pthread_mutex_lock(&ch->mu);
	bool last = --st->refs == 0;
	pthread_mutex_unlock(&ch->mu);
	if (last)
		stream_destroy(st);
}

static void list_add(grpc_stream_t **head, grpc_stream_t *st)
{
	st->prev = NULL;
	st->next = *head;
	if (*head)
		(*head)->prev = st;
	*head = st;
	st->on_list = true;
}

static void list_del(grpc_stream_t **head, grpc_stream_t *st)
{
	if (!st->on_list)
		return;
	if (st->prev)
		st->prev->next = st->next;
	else
		*head = st->next;
	if (st->next)
		st->next->prev = st->prev;
	st->prev = st->next = NULL;
	st->on_list = false;
}

/* Loop side: the call is over. Detaches it from its connection (resetting the HTTP/2 stream if it is
 * still open), publishes the status and drops the loop's reference. */
static void stream_end(grpc_stream_t *st, int status, const char *msg, bool reset)
{
	if (st->loop_done)
		return;
	st->loop_done = true;
	grpc_channel_t *ch = st->ch;
	if (st->timer) {
		loop_del_timer(ch->loop, st->timer);
		st->timer = 0;
	}
	h2c_t *c = st->conn;
	if (c) {
		list_del(&c->active, st);
		c->nactive--;
		if (st->id > 0)
			imap_del(&c->ids, (uint64_t)st->id);
		if (st->id > 0 && !c->dead) {
			if (st->unacked)
				nghttp2_session_consume_connection(c->s, st->unacked);
			if (reset)
				nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
		}
		st->conn = NULL;
	} else {
		list_del(&ch->pending, st);
	}
	st->unacked = 0;
	pthread_mutex_lock(&ch->mu);
	st->ended = true;
	if (status != GRPC_OK)
		err_set(&st->final, grpc_err_from_status(status), "grpc %s%s: %s: %s", ch->target, st->path,
			grpc_status_name(status), msg && msg[0] ? msg : "(no message)");
	pthread_cond_broadcast(&st->cv);
	bool last = --st->refs == 0;
	pthread_mutex_unlock(&ch->mu);
	if (last)
		stream_destroy(st);
}

/* ---- loop side: HTTP/2 callbacks ---- */

static grpc_stream_t *find_stream(h2c_t *c, int32_t id)
{
	uint64_t v;
	return imap_get(&c->ids, (uint64_t)id, &v) ? (grpc_stream_t *)(uintptr_t)v : NULL;
}

static ssize_t req_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
			nghttp2_data_source *src, void *ud)
{
	grpc_stream_t *st = find_stream(ud, id);
	(void)s, (void)src;
	if (!st) /* the call ended before its request was sent */
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	size_t n = st->req.n - st->req_off < length ? st->req.n - st->req_off : length;
	(void)buf; /* copied once, by send_data, straight into the connection's output */
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	st->req_off += n;
	if (st->req_off == st->req.n)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* A DATA frame of the request (req_read said how long): its header and bytes into the output. */
static int send_data(nghttp2_session *s, nghttp2_frame *f, const uint8_t *framehd, size_t length,
		     nghttp2_data_source *src, void *ud)
{
	h2c_t *c = ud;
	grpc_stream_t *st = find_stream(c, f->hd.stream_id);
	(void)s, (void)src;
	if (!st || st->req_sent + length > st->req.n)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
	size_t pad = f->data.padlen;
	buf_append(&c->out, framehd, 9);
	if (pad)
		buf_putc(&c->out, (char)(pad - 1));
	buf_append(&c->out, st->req.p + st->req_sent, length);
	st->req_sent += length;
	if (pad > 1)
		memset(buf_extend(&c->out, pad - 1), 0, pad - 1);
	return 0;
}

/* Return received bytes to the flow-control windows unless the consumer is behind. */
static void stream_ack(grpc_stream_t *st)
{
	h2c_t *c = st->conn;
	if (!c || c->dead || st->id <= 0)
		return;
	grpc_channel_t *ch = st->ch;
	pthread_mutex_lock(&ch->mu);
	st->withheld = st->queued >= ch->stream_buffer;
	bool ok = !st->withheld;
	pthread_mutex_unlock(&ch->mu);
	if (ok && st->unacked) {
		nghttp2_session_consume(c->s, st->id, st->unacked);
		st->unacked = 0;
	}
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)flags, (void)s;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	grpc_stream_t *st = find_stream(ud, f->hd.stream_id);
	if (!st)
		return 0;
	if (nl == 7 && memcmp(name, ":status", 7) == 0) {
		st->http_status = 0;
		for (size_t i = 0; i < vl && i < 4; i++)
			st->http_status = st->http_status * 10 + (value[i] - '0');
	} else if (nl == 12 && memcmp(name, "content-type", 12) == 0) {
		st->grpc_ct = vl >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
			      (vl == 16 || value[16] == '+' || value[16] == ';');
	} else if (nl == 13 && memcmp(name, "grpc-encoding", 13) == 0) {
		st->snappy = vl == 6 && memcmp(value, "snappy", 6) == 0;
	} else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0) {
		int code = 0;
		bool ok = vl > 0 && vl < 4;
		for (size_t i = 0; i < vl && ok; i++) {
			ok = value[i] >= '0' && value[i] <= '9';
			code = code * 10 + (value[i] - '0');
		}
		st->got_status = true;
		st->status = ok ? code : GRPC_UNKNOWN;
	} else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0) {
		/* percent-decode */
		char *m = xmalloc(vl + 1), *w = m;
		for (size_t i = 0; i < vl; i++) {
			unsigned hi, lo;
			if (value[i] == '%' && i + 2 < vl && sscanf((const char *)value + i + 1, "%1x%1x", &hi, &lo) == 2) {
				*w++ = (char)(hi << 4 | lo);
				i += 2;
			} else {
				*w++ = (char)value[i];
			}
		}
		*w = 0;
		free(st->status_msg);
		st->status_msg = m;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
	(void)flags;
	h2c_t *c = ud;
	grpc_stream_t *st = find_stream(c, id);
	if (!st) {
		nghttp2_session_consume_connection(s, len);
		return 0;
	}
	grpc_channel_t *ch = st->ch;
	st->unacked += len;
	buf_append(&st->partial, data, len);
	for (;;) {
		size_t avail = st->partial.n - st->partial_off;
		const uint8_t *p = (const uint8_t *)st->partial.p + st->partial_off;
		if (avail < 5)
			break;
		size_t mlen = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
		if (p[0] > 1) {
			stream_end(st, GRPC_INTERNAL, "response: bad message flag byte (garbage frame)", true);
			return 0;
		}
		if (p[0] == 1 && !st->snappy) {
			stream_end(st, GRPC_INTERNAL, "response: compressed message without grpc-encoding snappy", true);
			return 0;
		}
		if (mlen > ch->max_recv) {
			char m[128];
			snprintf(m, sizeof m, "response message of %zu bytes larger than max (%zu)", mlen, ch->max_recv);
			stream_end(st, GRPC_RESOURCE_EXHAUSTED, m, true);
			return 0;
		}
		if (avail < 5 + mlen)
			break;
		msg_t *m = xmalloc(sizeof *m + (mlen ? mlen : 1));
		m->next = NULL;
		m->len = mlen;
		m->flag = p[0];
		memcpy(m->data, p + 5, mlen);
		st->partial_off += 5 + mlen;
		pthread_mutex_lock(&ch->mu);
		if (st->tail)
			st->tail->next = m;
		else
			st->head = m;
		st->tail = m;
		st->queued += 5 + mlen;
		if (!st->wake_pending) { /* woken after the read (h2c_wake), not once per message */
			st->wake_pending = true;
			st->refs++;
			st->wake_next = c->wake;
			c->wake = st;
		}
		pthread_mutex_unlock(&ch->mu);
	}
	if (st->partial_off == st->partial.n) {
		buf_reset(&st->partial);
		st->partial_off = 0;
	} else if (st->partial_off > 65536) {
		size_t rest = st->partial.n - st->partial_off;
		memmove(st->partial.p, st->partial.p + st->partial_off, rest);
		buf_truncate(&st->partial, rest);
		st->partial_off = 0;
	}
	stream_ack(st);
	return 0;
}

/* Wake the consumers of the streams that got messages during a read: one wakeup per stream and read
 * instead of one per message (a consumer woken per message ran one message at a time, preempting
 * this thread before the next: ~10 switches per small query). */
static void h2c_wake(h2c_t *c)
{
	grpc_stream_t *st;
	while ((st = c->wake)) {
		c->wake = st->wake_next;
		pthread_mutex_lock(&st->ch->mu);
		st->wake_pending = false;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->ch->mu);
		stream_unref(st);
	}
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	h2c_t *c = ud;
	(void)s;
	if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
		c->ping_outstanding = false;
		if (c->ping_timeout_timer) {
			loop_del_timer(c->ch->loop, c->ping_timeout_timer);
			c->ping_timeout_timer = 0;
		}
	} else if (f->hd.type == NGHTTP2_GOAWAY) {
		c->goaway = true;
	}
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	(void)s;
	grpc_stream_t *st = find_stream(ud, id);
	if (!st)
		return 0;
	char m[300];
	int status;
	const char *msg = m;
	if (st->http_status && st->http_status != 200) {
		int hs = st->http_status;
		status = hs == 400 ? GRPC_INTERNAL
			 : hs == 401 ? 16
			 : hs == 403 ? 7
			 : hs == 404 ? GRPC_UNIMPLEMENTED
			 : (hs == 429 || hs == 502 || hs == 503 || hs == 504) ? GRPC_UNAVAILABLE
									       : GRPC_UNKNOWN;
		snprintf(m, sizeof m, "unexpected HTTP status %d", hs);
	} else if (st->got_status) {
		status = st->status;
		msg = st->status_msg;
		if (status == GRPC_OK && st->partial.n > st->partial_off) {
			status = GRPC_INTERNAL;
			snprintf(m, sizeof m, "response ended inside a message (%zu bytes of a frame)",
				 st->partial.n - st->partial_off);
			msg = m;
		} else if (status == GRPC_OK && st->http_status == 200 && !st->grpc_ct) {
			status = GRPC_UNKNOWN;
			msg = "response content-type is not application/grpc";
		}
	} else if (code == NGHTTP2_REFUSED_STREAM) {
		status = GRPC_UNAVAILABLE;
		msg = "stream refused by the server";
	} else if (code != NGHTTP2_NO_ERROR) {
		status = code == NGHTTP2_CANCEL ? GRPC_CANCELLED : GRPC_UNAVAILABLE;
		snprintf(m, sizeof m, "stream reset by the server: %s", nghttp2_http2_strerror(code));
	} else {
		status = GRPC_INTERNAL;
		msg = "response ended without grpc-status (truncated)";
	}
	stream_end(st, status, msg, false);
	return 0;
}

/* ---- loop side: connection ---- */

static void h2c_fail(h2c_t *c, const char *fmt, ...)
{
	if (c->dead)
		return;
	c->dead = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof c->reason, fmt, ap);
	va_end(ap);
}

static void h2c_destroy(h2c_t *c)
{
	grpc_channel_t *ch = c->ch;
	bool was_ready = c->ready;
	if (ch->conn == c)
		ch->conn = NULL;
	for (h2c_t **pp = &ch->draining; *pp; pp = &(*pp)->next_draining)
		if (*pp == c) {
			*pp = c->next_draining;
			break;
		}
	char msg[320];
	snprintf(msg, sizeof msg, "%s: %s", was_ready ? "connection lost" : "connect failed", c->reason);
	snprintf(ch->last_err, sizeof ch->last_err, "%s", msg);
	while (c->active)
		stream_end(c->active, GRPC_UNAVAILABLE, msg, false);
	if (!was_ready) {
		/* connect failed: calls waiting for this connection fail; back off */
		while (ch->pending)
			stream_end(ch->pending, GRPC_UNAVAILABLE, msg, false);
		if (!ch->backoff_ms)
			ch->backoff_ms = ch->backoff_initial_ms;
		else if ((ch->backoff_ms *= 2) > ch->backoff_max_ms)
			ch->backoff_ms = ch->backoff_max_ms;
		ch->backoff_until = loop_now_ms(ch->loop) + (uint64_t)ch->backoff_ms;
	}
	if (c->connect_timer)
		loop_del_timer(ch->loop, c->connect_timer);
	if (c->ping_timer)
		loop_del_timer(ch->loop, c->ping_timer);
	if (c->ping_timeout_timer)
		loop_del_timer(ch->loop, c->ping_timeout_timer);
	if (c->fd >= 0) {
		loop_del_fd(ch->loop, c->fd);
		close(c->fd);
	}
	if (c->ssl)
		SSL_free(c->ssl); /* no close_notify: the peer sees the TCP close either way */
	if (c->s)
		nghttp2_session_del(c->s);
	buf_release(&c->out);
	imap_release(&c->ids);
	free(c);
}

static void channel_connect(grpc_channel_t *ch);

/* ---- the transport: plain socket or TLS ---- */

/* TLS 1.3 servers check the client certificate after the client has finished its handshake: a
 * connection cut before the server said anything is most likely that refusal. */
static const char *refused_hint(const h2c_t *c)
{
	return c->ssl && !c->heard ? " (right after the TLS handshake: is our client certificate accepted by the server?)"
	                           : "";
}

/* One step of the client handshake (the connection timer bounds it); ready when it completes. */
static void tls_handshake(h2c_t *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		h2c_ready(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		loop_set_events(c->ch->loop, c->fd, e == SSL_ERROR_WANT_WRITE ? LOOP_WRITE : LOOP_READ);
		return;
	}
	char why[512];
	long v = SSL_get_verify_result(c->ssl);
	if (v != X509_V_OK)
		snprintf(why, sizeof why, "certificate verify failed: %s", X509_verify_cert_error_string(v));
	else if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
		snprintf(why, sizeof why, "%s", errno ? strerror(errno) : "connection closed by the server");
	else
		tls_errors(why, sizeof why);
	h2c_fail(c, "TLS handshake with %s: %s", c->ch->target, why);
}

/* Push nghttp2's output into the socket; tear down a dead or finished connection. */
static void h2c_after(h2c_t *c)
{
	grpc_channel_t *ch = c->ch;
	if (!c->dead && c->ready) {
		while (c->out.n - c->out_off < CONN_OUT_HIGH) {
			const uint8_t *d;
			ssize_t n = nghttp2_session_mem_send(c->s, &d);
			if (n < 0) {
				h2c_fail(c, "http2: %s", nghttp2_strerror((int)n));
				break;
			}
			if (n == 0)
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
				h2c_fail(c, "send: %s%s", strerror(errno), refused_hint(c));
		}
		if (c->out_off == c->out.n) {
			buf_reset(&c->out);
			c->out_off = 0;
		}
		if (!c->dead && !nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s))
			h2c_fail(c, "connection closed (GOAWAY)");
		if (!c->dead && c->goaway && ch->conn == c) {
			ch->conn = NULL;
			c->next_draining = ch->draining;
			ch->draining = c;
		}
		if (!c->dead && c->goaway && c->nactive == 0 && c->out_off == c->out.n)
			h2c_fail(c, "closed after GOAWAY");
		if (!c->dead)
			loop_set_events(ch->loop, c->fd,
			                LOOP_READ | (c->out_off < c->out.n || c->tls_want_write ? LOOP_WRITE : 0));
	}
	if (c->dead) {
		bool was_current_ready = c->ready;
		h2c_destroy(c);
		/* calls queued behind a lost or drained connection get a fresh one */
		if (was_current_ready && ch->pending && !ch->conn && !ch->closing)
			channel_connect(ch);
	}
}

static void h2c_submit(h2c_t *c, grpc_stream_t *st)
{
	grpc_channel_t *ch = c->ch;
	char timeout[32];
	nghttp2_nv nva[11];
	size_t n = 0;
#define H(k, v) nva[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE}
	H(":method", "POST");
	H(":scheme", ch->tls ? "https" : "http");
	H(":path", st->path);
	H(":authority", ch->target);
	H("content-type", "application/grpc");
	H("te", "trailers");
	H("user-agent", "strata-grpc/" STRATA_VERSION);
	H("grpc-accept-encoding", "snappy");
	if (ch->compress)
		H("grpc-encoding", "snappy");
	if (st->md_key)
		H(st->md_key, st->md_value);
	if (st->timeout_ms > 0) {
		uint64_t now = loop_now_ms(ch->loop);
		uint64_t due = loop_timer_due(ch->loop, st->timer);
		int64_t left = due > now ? (int64_t)(due - now) : 1;
		if (left < 100000000)
			snprintf(timeout, sizeof timeout, "%lldm", (long long)left);
		else
			snprintf(timeout, sizeof timeout, "%lldS", (long long)(left / 1000 + 1));
		H("grpc-timeout", timeout);
	}
#undef H
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = req_read};
	int32_t id = nghttp2_submit_request(c->s, NULL, nva, n, &prd, NULL);
	if (id < 0) {
		c->goaway = true; /* e.g. stream ids exhausted: use a new connection for later calls */
		stream_end(st, GRPC_UNAVAILABLE, nghttp2_strerror(id), false);
		return;
	}
	st->id = id;
	st->conn = c;
	imap_put(&c->ids, (uint64_t)id, (uint64_t)(uintptr_t)st);
	list_add(&c->active, st);
	c->nactive++;
}

static int64_t ping_timeout_fired(loop_t *l, uint64_t id, void *arg)
{
	h2c_t *c = arg;
	(void)l, (void)id;
	c->ping_timeout_timer = 0;
	h2c_fail(c, "keepalive ping not acknowledged within %lld ms", (long long)c->ch->keepalive_timeout_ms);
	h2c_after(c);
	return LOOP_TIMER_DONE;
}

static int64_t ping_fired(loop_t *l, uint64_t id, void *arg)
{
	h2c_t *c = arg;
	(void)id;
	if (c->nactive > 0 && !c->ping_outstanding && !c->dead) {
		nghttp2_submit_ping(c->s, NGHTTP2_FLAG_NONE, NULL);
		c->ping_outstanding = true;
		c->ping_timeout_timer = loop_add_timer(l, c->ch->keepalive_timeout_ms, ping_timeout_fired, c);
		h2c_after(c); /* never dead here: nothing failed */
	}
	return c->ch->keepalive_ms;
}

static void h2c_ready(h2c_t *c)
{
	grpc_channel_t *ch = c->ch;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->ready = true;
	if (c->connect_timer) {
		loop_del_timer(ch->loop, c->connect_timer);
		c->connect_timer = 0;
	}
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		die("nghttp2: out of memory");
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data);
	nghttp2_option *opt;
	if (nghttp2_option_new(&opt) != 0)
		die("nghttp2: out of memory");
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (nghttp2_session_client_new2(&c->s, cb, c, opt) != 0)
		die("nghttp2: out of memory");
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	};
	nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
	nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
	pthread_mutex_lock(&ch->mu);
	ch->connects++;
	pthread_mutex_unlock(&ch->mu);
	ch->backoff_ms = 0;
	ch->backoff_until = 0;
	if (ch->keepalive_ms > 0)
		c->ping_timer = loop_add_timer(ch->loop, ch->keepalive_ms, ping_fired, c);
	while (ch->pending) {
		grpc_stream_t *st = ch->pending;
		list_del(&ch->pending, st);
		h2c_submit(c, st);
	}
}

static void h2c_on_event(loop_t *l, int fd, int events, void *arg)
{
	h2c_t *c = arg;
	(void)l;
	if (c->handshaking) {
		tls_handshake(c);
		h2c_after(c);
		return;
	}
	if (!c->ready) {
		int e = 0;
		socklen_t el = sizeof e;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
			e = errno;
		if (e) {
			h2c_fail(c, "connect %s: %s", c->ch->target, strerror(e));
			h2c_after(c);
			return;
		}
		if (c->ch->tls) {
			int one = 1; /* the handshake's flights must not wait for delayed ACKs */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			c->ssl = tls_client_new_ssl(c->ch->tls, c->ch->host[0] ? c->ch->host : "localhost");
			SSL_set_fd(c->ssl, fd);
			SSL_set_connect_state(c->ssl);
			c->handshaking = true;
			tls_handshake(c);
		} else {
			h2c_ready(c);
		}
		h2c_after(c);
		return;
	}
	if (c->tls_want_write && (events & LOOP_WRITE)) {
		c->tls_want_write = false; /* the read that needed the socket writable goes on */
		events |= LOOP_READ;
	}
	if (events & LOOP_READ) {
		uint8_t buf[65536];
		size_t got = 0;
		char why[256] = "";
		/* TLS: decrypted bytes OpenSSL holds are invisible to epoll, so they are always taken */
		while (!c->dead && (got < READ_BUDGET || (c->ssl && SSL_pending(c->ssl) > 0))) {
			ssize_t r = tls_io_recv(c->fd, c->ssl, buf, sizeof buf, &c->tls_want_write, why, sizeof why);
			if (r > 0) {
				got += (size_t)r;
				c->heard = true;
				ssize_t n = nghttp2_session_mem_recv(c->s, buf, (size_t)r);
				if (n < 0)
					h2c_fail(c, "bad http2 from server: %s", nghttp2_strerror((int)n));
				continue;
			}
			if (r == 0)
				h2c_fail(c, "connection closed by the server%s", refused_hint(c));
			else if (errno == EINTR)
				continue;
			else if (errno == EPROTO)
				h2c_fail(c, "TLS: %s", why);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				h2c_fail(c, "recv: %s%s", strerror(errno), refused_hint(c));
			break;
		}
		h2c_wake(c);
	}
	h2c_after(c);
}

static int64_t connect_timeout_fired(loop_t *l, uint64_t id, void *arg)
{
	h2c_t *c = arg;
	(void)l, (void)id;
	c->connect_timer = 0;
	h2c_fail(c, "connect %s: timed out after %lld ms", c->ch->target, (long long)c->ch->connect_timeout_ms);
	h2c_after(c);
	return LOOP_TIMER_DONE;
}

/* Start connecting; on immediate failure the pending calls fail and the channel backs off. */
static void channel_connect(grpc_channel_t *ch)
{
	h2c_t *c = xcalloc(1, sizeof *c);
	c->ch = ch;
	c->fd = -1;
	buf_init(&c->out);
	imap_init(&c->ids, 16);
	ch->conn = c;
	struct addrinfo hints = {0}, *res = NULL, *ai;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int gai = getaddrinfo(ch->host[0] ? ch->host : "localhost", ch->port, &hints, &res);
	if (gai) {
		h2c_fail(c, "resolve %s: %s", ch->target, gai_strerror(gai));
		h2c_after(c);
		return;
	}
	for (ai = res; ai && ai->ai_family != AF_INET; ai = ai->ai_next)
		;
	if (!ai)
		ai = res;
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		h2c_fail(c, "socket: %s", strerror(errno));
	} else if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		h2c_fail(c, "connect %s: %s", ch->target, strerror(errno));
	} else if (loop_add_fd(ch->loop, c->fd, LOOP_WRITE, h2c_on_event, c, NULL) != 0) {
		close(c->fd);
		c->fd = -1;
		h2c_fail(c, "connect %s: cannot register socket", ch->target);
	} else {
		c->connect_timer = loop_add_timer(ch->loop, ch->connect_timeout_ms, connect_timeout_fired, c);
	}
	freeaddrinfo(res);
	if (c->dead)
		h2c_after(c);
}

/* ---- loop side: posts from consumer threads ---- */

static int64_t deadline_fired(loop_t *l, uint64_t id, void *arg)
{
	grpc_stream_t *st = arg;
	(void)l, (void)id;
	st->timer = 0;
	h2c_t *c = st->conn;
	char m[64];
	snprintf(m, sizeof m, "deadline of %lld ms exceeded", (long long)st->timeout_ms);
	stream_end(st, GRPC_DEADLINE_EXCEEDED, m, true);
	if (c)
		h2c_after(c);
	return LOOP_TIMER_DONE;
}

static void post_start(void *arg)
{
	grpc_stream_t *st = arg;
	grpc_channel_t *ch = st->ch;
	if (st->loop_done) { /* cancelled before it started */
		stream_unref(st);
		return;
	}
	if (st->timeout_ms > 0)
		st->timer = loop_add_timer(ch->loop, st->timeout_ms, deadline_fired, st);
	if (ch->closing) {
		stream_end(st, GRPC_UNAVAILABLE, "channel closed", false);
	} else if (ch->conn && ch->conn->ready) {
		h2c_t *c = ch->conn;
		h2c_submit(c, st);
		h2c_after(c);
	} else if (ch->conn || ch->draining) {
		list_add(&ch->pending, st); /* connecting, or waiting for a drained connection to go */
	} else if (ch->backoff_until && loop_now_ms(ch->loop) < ch->backoff_until) {
		char m[400];
		snprintf(m, sizeof m, "%s (reconnecting in %llu ms)", ch->last_err,
			 (unsigned long long)(ch->backoff_until - loop_now_ms(ch->loop)));
		stream_end(st, GRPC_UNAVAILABLE, m, false);
	} else {
		list_add(&ch->pending, st);
		channel_connect(ch);
	}
	stream_unref(st);
}

static void post_cancel(void *arg)
{
	grpc_stream_t *st = arg;
	if (!st->loop_done) {
		h2c_t *c = st->conn;
		stream_end(st, GRPC_CANCELLED, "cancelled by the client", true);
		if (c)
			h2c_after(c);
	}
	stream_unref(st);
}

static void post_resume(void *arg)
{
	grpc_stream_t *st = arg;
	pthread_mutex_lock(&st->ch->mu);
	st->resume_posted = false;
	pthread_mutex_unlock(&st->ch->mu);
	if (!st->loop_done && st->conn) {
		h2c_t *c = st->conn;
		stream_ack(st);
		h2c_after(c);
	}
	stream_unref(st);
}

/* ---- consumer API ---- */

static grpc_stream_t *stream_new(grpc_channel_t *ch, const char *path, int64_t timeout_ms)
{
	grpc_stream_t *st = xcalloc(1, sizeof *st);
	st->ch = ch;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cv, &ca);
	pthread_condattr_destroy(&ca);
	st->refs = 3; /* consumer, loop, the start post */
	st->path = xstrdup(path);
	st->timeout_ms = timeout_ms;
	buf_init(&st->plain);
	buf_init(&st->req);
	buf_init(&st->partial);
	return st;
}

grpc_stream_t *grpc_channel_call(grpc_channel_t *ch, const char *path, const void *req, size_t len,
				 int64_t timeout_ms)
{
	return grpc_channel_call_md(ch, path, req, len, timeout_ms, NULL, NULL);
}

grpc_stream_t *grpc_channel_call_md(grpc_channel_t *ch, const char *path, const void *req, size_t len,
				    int64_t timeout_ms, const char *md_key, const char *md_value)
{
	grpc_stream_t *st = stream_new(ch, path, timeout_ms);
	if (md_key) {
		st->md_key = xstrdup(md_key);
		st->md_value = xstrdup(md_value ? md_value : "");
	}
	uint8_t *h = (uint8_t *)buf_extend(&st->req, 5);
	if (ch->compress)
		grpc_snappy_encode(&st->req, req, len);
	else
		buf_append(&st->req, req, len);
	h = (uint8_t *)st->req.p;
	size_t n = st->req.n - 5;
	h[0] = ch->compress ? 1 : 0;
	h[1] = (uint8_t)(n >> 24), h[2] = (uint8_t)(n >> 16), h[3] = (uint8_t)(n >> 8), h[4] = (uint8_t)n;
	loop_post(ch->loop, post_start, st);
	return st;
}

grpc_stream_t *grpc_channel_call_framed(grpc_channel_t *ch, const char *path, buf_t *msg, int64_t timeout_ms)
{
	grpc_stream_t *st = stream_new(ch, path, timeout_ms);
	st->req = *msg;
	buf_init(msg);
	loop_post(ch->loop, post_start, st);
	return st;
}

bool grpc_channel_compresses(const grpc_channel_t *ch)
{
	return ch->compress;
}

int grpc_stream_recv_timed(grpc_stream_t *st, const uint8_t **msg, size_t *len, int64_t wait_ms, err_t *err)
{
	grpc_channel_t *ch = st->ch;
	free(st->cur);
	st->cur = NULL;
	if (st->user_failed) {
		if (err)
			*err = st->user_err;
		return st->user_err.code;
	}
	struct timespec until;
	if (wait_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += wait_ms / 1000;
		until.tv_nsec += (wait_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&ch->mu);
	while (!st->head && !st->ended) {
		if (wait_ms < 0) {
			pthread_cond_wait(&st->cv, &ch->mu);
		} else if (pthread_cond_timedwait(&st->cv, &ch->mu, &until) == ETIMEDOUT && !st->head && !st->ended) {
			pthread_mutex_unlock(&ch->mu);
			return err_set(err, ERR_TIMEOUT, "grpc %s%s: no message within %lld ms", ch->target, st->path,
				       (long long)wait_ms);
		}
	}
	msg_t *m = st->head;
	if (!m) {
		err_t final = st->final;
		pthread_mutex_unlock(&ch->mu);
		if (final.code && err)
			*err = final;
		return final.code;
	}
	st->head = m->next;
	if (!st->head)
		st->tail = NULL;
	st->queued -= 5 + m->len;
	bool post = st->withheld && st->queued < ch->stream_buffer && !st->resume_posted && !st->ended;
	if (post) {
		st->resume_posted = true;
		st->refs++;
	}
	pthread_mutex_unlock(&ch->mu);
	if (post)
		loop_post(ch->loop, post_resume, st);
	st->cur = m;
	if (m->flag == 1) {
		buf_reset(&st->plain);
		err_t derr = {0};
		int rc = grpc_snappy_decode(&st->plain, m->data, m->len, ch->max_recv, &derr);
		if (rc) {
			st->user_failed = true;
			err_set(&st->user_err, rc == ERR_LIMIT ? ERR_LIMIT : ERR_CORRUPT, "grpc %s%s: response: %s",
				ch->target, st->path, derr.msg);
			grpc_stream_cancel(st);
			if (err)
				*err = st->user_err;
			return st->user_err.code;
		}
		*msg = (const uint8_t *)st->plain.p;
		*len = st->plain.n;
		return 1;
	}
	*msg = m->data;
	*len = m->len;
	return 1;
}

int grpc_stream_recv(grpc_stream_t *st, const uint8_t **msg, size_t *len, err_t *err)
{
	return grpc_stream_recv_timed(st, msg, len, -1, err);
}

void grpc_stream_cancel(grpc_stream_t *st)
{
	grpc_channel_t *ch = st->ch;
	pthread_mutex_lock(&ch->mu);
	bool post = !st->ended && !st->cancel_posted;
	if (post) {
		st->cancel_posted = true;
		st->refs++;
	}
	pthread_mutex_unlock(&ch->mu);
	if (post)
		loop_post(ch->loop, post_cancel, st);
}

void grpc_stream_free(grpc_stream_t *st)
{
	if (!st)
		return;
	grpc_stream_cancel(st);
	stream_unref(st);
}

size_t grpc_stream_buffered(grpc_stream_t *st)
{
	pthread_mutex_lock(&st->ch->mu);
	size_t q = st->queued;
	pthread_mutex_unlock(&st->ch->mu);
	return q;
}

int grpc_channel_unary(grpc_channel_t *ch, const char *path, const void *req, size_t len, int64_t timeout_ms,
		       arena_t *a, uint8_t **resp, size_t *resp_len, err_t *err)
{
	return grpc_channel_unary_md(ch, path, req, len, timeout_ms, NULL, NULL, a, resp, resp_len, err);
}

int grpc_channel_unary_md(grpc_channel_t *ch, const char *path, const void *req, size_t len, int64_t timeout_ms,
			  const char *md_key, const char *md_value, arena_t *a, uint8_t **resp, size_t *resp_len,
			  err_t *err)
{
	grpc_stream_t *st = grpc_channel_call_md(ch, path, req, len, timeout_ms, md_key, md_value);
	const uint8_t *m;
	size_t n;
	int got = 0, rc;
	while ((rc = grpc_stream_recv(st, &m, &n, err)) == 1) {
		if (got++ == 0) {
			*resp = arena_alloc(a, n + 1);
			memcpy(*resp, m, n);
			(*resp)[n] = 0;
			*resp_len = n;
		}
	}
	grpc_stream_free(st);
	if (rc < 0)
		return rc;
	if (got != 1)
		return err_set(err, ERR_CORRUPT, "grpc %s%s: unary call answered with %d messages", ch->target, path, got);
	return 0;
}

/* ---- channel ---- */

static void *channel_thread(void *arg)
{
	grpc_channel_t *ch = arg;
	loop_run(ch->loop);
	return NULL;
}

int grpc_channel_new(grpc_channel_t **out, loop_t *loop, const char *target, const grpc_channel_config_t *cfg,
		     err_t *err)
{
	*out = NULL;
	const char *colon = strrchr(target, ':');
	if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5)
		return err_set(err, ERR_INVALID, "grpc target \"%s\": want host:port", target);
	size_t hl = (size_t)(colon - target);
	const char *h = target;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	if (hl >= 256)
		return err_set(err, ERR_INVALID, "grpc target \"%s\": host too long", target);
	grpc_channel_t *ch = xcalloc(1, sizeof *ch);
	memcpy(ch->host, h, hl);
	snprintf(ch->port, sizeof ch->port, "%s", colon + 1);
	ch->target = xstrdup(target);
	grpc_channel_config_t d = {0};
	if (!cfg)
		cfg = &d;
	ch->max_recv = cfg->max_recv_msg ? cfg->max_recv_msg : 256u << 20;
	ch->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
	ch->backoff_initial_ms = cfg->backoff_initial_ms > 0 ? cfg->backoff_initial_ms : 100;
	ch->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 10000;
	ch->keepalive_ms = cfg->keepalive_ms == 0 ? 10000 : cfg->keepalive_ms;
	ch->keepalive_timeout_ms = cfg->keepalive_timeout_ms > 0 ? cfg->keepalive_timeout_ms : 5000;
	ch->stream_buffer = cfg->stream_buffer ? cfg->stream_buffer : 256u * 1024;
	ch->compress = cfg->compress;
	ch->tls = cfg->tls;
	pthread_mutex_init(&ch->mu, NULL);
	if (loop) {
		ch->loop = loop;
	} else {
		int rc = loop_new(&ch->loop, err);
		if (rc) {
			pthread_mutex_destroy(&ch->mu);
			free(ch->target);
			free(ch);
			return rc;
		}
		ch->own_loop = true;
		if (pthread_create(&ch->thread, NULL, channel_thread, ch) != 0)
			die("grpc channel: cannot start its loop thread");
	}
	*out = ch;
	return 0;
}

static void channel_shutdown(grpc_channel_t *ch)
{
	ch->closing = true;
	while (ch->pending)
		stream_end(ch->pending, GRPC_UNAVAILABLE, "channel closed", false);
	while (ch->draining) {
		h2c_fail(ch->draining, "channel closed");
		h2c_after(ch->draining);
	}
	if (ch->conn) {
		h2c_fail(ch->conn, "channel closed");
		h2c_after(ch->conn);
	}
}

static void post_shutdown(void *arg)
{
	grpc_channel_t *ch = arg;
	channel_shutdown(ch);
	loop_stop(ch->loop);
}

void grpc_channel_free(grpc_channel_t *ch)
{
	if (!ch)
		return;
	if (ch->own_loop) {
		loop_post(ch->loop, post_shutdown, ch);
		pthread_join(ch->thread, NULL);
		loop_free(ch->loop);
	} else {
		loop_run_posts(ch->loop);
		channel_shutdown(ch);
	}
	pthread_mutex_destroy(&ch->mu);
	free(ch->target);
	free(ch);
}

const char *grpc_channel_target(const grpc_channel_t *ch)
{
	return ch->target;
}

uint64_t grpc_channel_connects(grpc_channel_t *ch)
{
	pthread_mutex_lock(&ch->mu);
	uint64_t n = ch->connects;
	pthread_mutex_unlock(&ch->mu);
	return n;
}
