/*
 * conn.h — TCP listener and connections on the event loop, independent of any wire protocol.
 *
 * A listener accepts non-blocking sockets and hands each new conn_t to its on_accept callback, which
 * attaches a protocol (conn_set_proto). The protocol sees bytes, not sockets:
 *   - on_data:    new bytes are in c->in from c->in_off; the protocol consumes with conn_consume();
 *   - on_drained: everything queued with conn_write has been sent (e.g. to stream the next part);
 *   - on_timeout: the deadline set with conn_set_deadline passed;
 *   - on_close:   the connection is going away; release protocol state (must not write).
 *
 * This is the seam for gRPC over HTTP/2 (h2c via nghttp2, a later issue): its on_accept (or an
 * HTTP/1 proto seeing the "PRI * HTTP/2.0" preface / an h2c Upgrade) calls conn_set_proto with an
 * HTTP/2 protocol on the same listener, loop, buffers, deadlines and shutdown handling.
 *
 * TLS: a listener configured with tls_new_ssl wraps every connection in an OpenSSL session (net/tls.h
 * makes the contexts). The handshake runs non-blocking on the loop before the protocol sees a byte;
 * it must finish within handshake_timeout_ms (slow or silent peers are closed), and when the listener
 * is full a new connection evicts the oldest one still handshaking, so half-open connections cannot
 * lock clients out. Output queued meanwhile (an HTTP/2 preface) is sent once it completes. A failed
 * handshake (no or untrusted client certificate, plaintext on a TLS port) just closes that connection.
 *
 * Output is queued with conn_write and sent by conn_flush (called automatically after on_data;
 * protocols call it after writing from other callbacks). A peer that stops reading for longer than
 * the listener's write_timeout_ms is disconnected. Closed connections are freed from a loop post, so
 * a protocol may close from inside its own callbacks and the conn_t stays valid until they return.
 * Everything here runs on the loop thread only.
 */
#ifndef STRATA_NET_CONN_H
#define STRATA_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/err.h"
#include "base/str.h"
#include "net/loop.h"

typedef struct conn conn_t;
typedef struct listener listener_t;

typedef struct conn_proto {
	const char *name;
	void (*on_data)(conn_t *c);
	void (*on_drained)(conn_t *c);
	void (*on_timeout)(conn_t *c);
	void (*on_close)(conn_t *c);
} conn_proto_t;

struct conn {
	int fd;
	loop_t *loop;
	listener_t *listener;
	buf_t in;      /* received bytes; unconsumed ones are in [in_off, in.n) */
	size_t in_off;
	size_t in_max; /* stop reading while more than this is unconsumed (0 = 1 MiB) */
	buf_t out;     /* queued output; unsent bytes are in [out_off, out.n) */
	size_t out_off;
	const conn_proto_t *proto;
	void *proto_data;
	uint64_t deadline;    /* mono ms, 0 = none */
	uint64_t stall_since; /* mono ms when output first could not be fully sent, 0 = not stalled */
	bool peer_eof;        /* peer shut down its sending side */
	bool read_paused;
	bool closed;
	bool close_after_flush;
	bool in_callback;
	struct ssl_st *ssl;   /* TLS session, NULL for plaintext */
	bool handshaking;     /* TLS handshake still running: the protocol sees nothing yet */
	bool tls_want_write;  /* OpenSSL needs the socket writable before it can go on */
	uint64_t hs_deadline; /* mono ms by which the handshake must be done */
	char peer[64]; /* "ip:port" */
	conn_t *prev, *next;
};

typedef struct listener_config {
	const char *address;       /* "host:port", ":port", "[::1]:port"; port 0 picks a free one */
	int64_t write_timeout_ms;  /* 0 = 60s */
	int max_conns;             /* 0 = 10000; beyond it new connections are closed at once */
	void (*on_accept)(listener_t *ls, conn_t *c, void *arg);
	void *arg;
	/* TLS: when set, called for each new connection for its SSL (e.g. tls_server_new_ssl). */
	struct ssl_st *(*tls_new_ssl)(void *arg);
	void *tls_arg;
	int64_t handshake_timeout_ms; /* 0 = 10s */
} listener_config_t;

/* Bind and listen. ERR_INVALID for a malformed address, ERR_IO for bind/listen failures
 * (message names the address). */
int listener_new(listener_t **out, loop_t *loop, const listener_config_t *cfg, err_t *err);
/* What listener_new checks before it binds: the address's form and that its host resolves
 * (ERR_INVALID naming the address). Binds nothing (for configuration dry runs). */
int listener_check_address(const char *address, err_t *err);
/* Close every connection (running on_close) and the socket, then free. */
void listener_free(listener_t *ls);
/* Stop accepting (closes the listening socket); existing connections stay. */
void listener_stop_accepting(listener_t *ls);
/* The bound port (useful with port 0) and the address string as given. */
int listener_port(const listener_t *ls);
size_t listener_conn_count(const listener_t *ls);
/* Iterate live connections: for (conn_t *c = listener_first(ls); c; c = c->next) */
conn_t *listener_first(listener_t *ls);
/* Serve an already-connected stream socket (a socketpair end, an inherited fd) as if it had been
 * accepted: made non-blocking, counted, handed to on_accept. Not subject to max_conns. Takes fd over:
 * on failure (ERR_IO, message names peer) it is closed. peer may be NULL ("unknown"). */
int listener_adopt(listener_t *ls, int fd, const char *peer, err_t *err);

/* Connections still in their TLS handshake. */
size_t listener_handshaking(const listener_t *ls);

void conn_set_proto(conn_t *c, const conn_proto_t *proto, void *data);
/* Drop n bytes from the front of the unconsumed input. */
void conn_consume(conn_t *c, size_t n);
static inline str_t conn_input(const conn_t *c)
{
	return (str_t){c->in.p + c->in_off, c->in.n - c->in_off};
}
void conn_write(conn_t *c, const void *p, size_t n);
/* Like conn_write of each part in turn, but when no output is queued before them (and the connection is
 * plain TCP, past any handshake) they are first sent straight from the caller's memory with one sendmsg:
 * only what the socket does not take is copied into the output buffer. Then flushes like conn_flush. */
void conn_writev_flush(conn_t *c, const struct iovec *iov, int n);
/* Try to send queued output now; arms write interest if the socket is full. */
void conn_flush(conn_t *c);
size_t conn_pending_out(const conn_t *c);
/* Pause/resume reading (the protocol's backpressure while a request is in flight). */
void conn_pause_read(conn_t *c, bool paused);
void conn_set_deadline(conn_t *c, int64_t in_ms); /* in_ms < 0 clears */
/* Close once queued output is sent (or the write timeout passes). */
void conn_close_after_flush(conn_t *c);
/* Close now, discarding queued output. Idempotent. */
void conn_close(conn_t *c);

#endif
