/*
 * grpc_client.h — gRPC client over HTTP/2 cleartext (h2c, prior knowledge) with nghttp2, for unary and
 * server-streaming calls (the StoreAPI client, store/grpc_client.h, is built on it).
 *
 * A channel is one target ("host:port") and at most one HTTP/2 connection to it, shared by every call
 * (many concurrent streams). The connection runs on an event loop (net/loop.h): either one the caller
 * passes (so the client shares the process's loop with the HTTP and gRPC servers) or, with loop =
 * NULL, a private loop on a thread the channel owns.
 *
 * Threading model: the channel's loop thread does all the I/O and HTTP/2 work. The call API below is
 * a blocking facade meant for worker threads: grpc_channel_call() hands the call to the loop and
 * returns at once; grpc_stream_recv() blocks the calling thread until the next message, the end of the
 * stream or an error. These functions are thread-safe (any number of threads may run calls on one
 * channel at once; one stream is used by one thread at a time), but must NEVER be called on the
 * channel's loop thread (recv would wait for the loop it blocks). grpc_channel_new/free: with a
 * private loop from any thread; with a shared loop on that loop's thread (or while it is not running).
 *
 *     grpc_stream_t *st = grpc_channel_call(ch, "/thanos.Store/Series", req, req_len, 30000);
 *     const uint8_t *msg; size_t len; int rc;
 *     while ((rc = grpc_stream_recv(st, &msg, &len, &err)) == 1)
 *             ... unpack msg (valid until the next recv/free) ...
 *     grpc_stream_free(st); // rc == 0: OK status; rc < 0: err says target, method, status and message
 *
 * Behaviour:
 *   - Connection: established on the first call (lazily). If connecting fails or the connection drops,
 *     its calls fail with ERR_UNAVAILABLE and the channel backs off (initial, x2 per consecutive failure,
 *     up to max; reset by a successful connect); calls made during the backoff fail at once
 *     (fail-fast, like gRPC without wait-for-ready); the first call after it reconnects.
 *   - GOAWAY from the server: running calls finish, new ones wait for a fresh connection.
 *   - Deadlines: timeout_ms > 0 is sent as grpc-timeout and enforced locally (the stream is reset and
 *     recv fails with ERR_TIMEOUT); it covers connecting too.
 *   - Cancellation: grpc_stream_cancel (any thread) or freeing an unfinished stream resets it
 *     (RST_STREAM CANCEL); recv then fails with ERR_CANCELED.
 *   - Flow control: automatic window updates are off. Received bytes are returned to the server's
 *     window only while the stream holds fewer than stream_buffer bytes of messages the consumer has
 *     not taken, so a slow consumer stops the server instead of making the client buffer without
 *     bound (memory per stream ~ stream_buffer + the 1 MiB stream window + one message).
 *   - Max message size: a response message larger than max_recv_msg fails the call with ERR_LIMIT.
 *   - Keepalive: while calls are active a PING goes out every keepalive_ms; no ACK within
 *     keepalive_timeout_ms closes the connection (its calls fail with ERR_UNAVAILABLE).
 *   - Compression: grpc-accept-encoding advertises snappy; snappy responses are decompressed (on the
 *     receiving thread, not the loop). With compress, requests are sent snappy-compressed.
 *   - Errors: status != OK → grpc_err_from_status(status) with the message
 *     "grpc <target><method>: <StatusName>: <grpc-message>". A malformed response (bad framing, bad
 *     snappy, HTTP status != 200, missing grpc-status, stream reset) is an error, never a crash.
 *   - TLS: with cfg.tls the connection is TLS (ALPN h2, the server's certificate checked against the
 *     tls_client_t's CA and name, a client certificate for mutual TLS); the handshake runs on the
 *     loop within connect_timeout_ms, and its failure ("TLS handshake with <target>: certificate
 *     verify failed: ...") fails the calls and backs off like a failed connect.
 * Name resolution uses getaddrinfo on the loop thread (numeric addresses do not block).
 */
#ifndef STRATA_NET_GRPC_CLIENT_H
#define STRATA_NET_GRPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "net/grpc.h"
#include "net/loop.h"

typedef struct grpc_channel grpc_channel_t;
typedef struct grpc_stream grpc_stream_t;

typedef struct grpc_channel_config {
	size_t max_recv_msg;          /* 0 = 256 MiB */
	int64_t connect_timeout_ms;   /* 0 = 5000 */
	int64_t backoff_initial_ms;   /* 0 = 100 */
	int64_t backoff_max_ms;       /* 0 = 10000 */
	int64_t keepalive_ms;         /* 0 = 10000 (Thanos's client default); < 0 disables */
	int64_t keepalive_timeout_ms; /* 0 = 5000 */
	size_t stream_buffer;         /* 0 = 256 KiB (see flow control above) */
	bool compress;                /* send requests with grpc-encoding: snappy */
	struct tls_client *tls;       /* TLS (net/tls.h; borrowed, outlives the channel); NULL = h2c */
} grpc_channel_config_t;

/* target is "host:port" or "[v6]:port" (copied). loop NULL = a private loop thread. ERR_INVALID for a
 * malformed target. Connecting happens later (first call). */
int grpc_channel_new(grpc_channel_t **out, loop_t *loop, const char *target, const grpc_channel_config_t *cfg,
		     err_t *err);
/* Every stream of the channel must have been freed. Closes the connection; joins the private thread. */
void grpc_channel_free(grpc_channel_t *ch);
const char *grpc_channel_target(const grpc_channel_t *ch);
/* Connections established so far (thread-safe; for tests and metrics). */
uint64_t grpc_channel_connects(grpc_channel_t *ch);

/* Start a call: req is the unframed request message (copied). timeout_ms <= 0: no deadline.
 * Never fails here; failures surface through grpc_stream_recv. */
grpc_stream_t *grpc_channel_call(grpc_channel_t *ch, const char *path, const void *req, size_t len,
				 int64_t timeout_ms);
/* The same with one request metadata pair, sent as a header: md_key in lower case (e.g. "thanos-tenant"),
 * md_value printable ASCII; both copied. md_key NULL = none. */
grpc_stream_t *grpc_channel_call_md(grpc_channel_t *ch, const char *path, const void *req, size_t len,
				    int64_t timeout_ms, const char *md_key, const char *md_value);
/* The same with the request as it goes on the wire: the 5-byte gRPC prefix (flag 1 = snappy-framed,
 * only on a channel that compresses; big-endian length) and the message, taken without a copy (msg
 * is left empty). */
grpc_stream_t *grpc_channel_call_framed(grpc_channel_t *ch, const char *path, buf_t *msg, int64_t timeout_ms);
/* cfg.compress: requests go out with grpc-encoding snappy. */
bool grpc_channel_compresses(const grpc_channel_t *ch);
/* Next response message: 1 = *msg and *len set (valid until the next recv or free), 0 = the call ended
 * with OK, < 0 = error (err filled). After 0 or an error, further calls return the same result. */
int grpc_stream_recv(grpc_stream_t *st, const uint8_t **msg, size_t *len, err_t *err);
/* Like recv but gives up after wait_ms: ERR_TIMEOUT without ending the call ("no message yet"). */
int grpc_stream_recv_timed(grpc_stream_t *st, const uint8_t **msg, size_t *len, int64_t wait_ms, err_t *err);
/* Reset the call (thread-safe, idempotent; no effect once it has ended). */
void grpc_stream_cancel(grpc_stream_t *st);
/* Release the stream; cancels it if it has not ended. */
void grpc_stream_free(grpc_stream_t *st);
/* Bytes of received messages not yet taken by recv (for tests of flow control). */
size_t grpc_stream_buffered(grpc_stream_t *st);

/* Unary call: the single response message is copied into a (NUL-terminated past *resp_len).
 * ERR_CORRUPT if the server sent no message or more than one. */
int grpc_channel_unary(grpc_channel_t *ch, const char *path, const void *req, size_t len, int64_t timeout_ms,
		       arena_t *a, uint8_t **resp, size_t *resp_len, err_t *err);
/* The same with one metadata pair (as grpc_channel_call_md). */
int grpc_channel_unary_md(grpc_channel_t *ch, const char *path, const void *req, size_t len, int64_t timeout_ms,
			  const char *md_key, const char *md_value, arena_t *a, uint8_t **resp, size_t *resp_len,
			  err_t *err);

#endif
