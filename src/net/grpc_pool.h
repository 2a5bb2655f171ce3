/*
 * grpc_pool.h — unary gRPC calls made by the calling thread itself, on HTTP/2 connections (h2c or TLS)
 * kept in a pool per target: no loop thread and no hand-off, for a worker that sends a few requests
 * and waits for all of them anyway (the receive router's forwards with replication factor 1).
 *
 * Against grpc_client.h (one shared connection driven by a loop thread, the caller blocked on a
 * condition variable): a call here costs no wake-up of another thread, no lock shared with it and no
 * event-loop registration; the price is one connection per concurrent caller (a connection carries
 * one call at a time and goes back to the pool when it is over; at most max_idle are kept).
 *
 *     grpc_pool_call_t *c[2] = {grpc_pool_call_start(p1, path, &m1, deadline),
 *                               grpc_pool_call_start(p2, path, &m2, deadline)};
 *     grpc_pool_run(c, 2);                     // both go out, then wait for both (poll)
 *     rc = grpc_pool_call_end(c[0], &n, &err); // 0 OK, < 0 as grpc_client.h's errors
 *
 * Behaviour (as grpc_client.h where not said): requests are given framed (the 5-byte prefix, flag 1 =
 * snappy-framed, only with cfg.compress) and taken without a copy; grpc-timeout is sent and the
 * deadline enforced by the caller's wait (a call past it fails with ERR_TIMEOUT and its connection is
 * closed); connecting (and the TLS handshake) is bounded by connect_timeout_ms and the deadline;
 * errors read "grpc <target><method>: <StatusName>: <message>", a lost or refused connection being
 * Unavailable. A call whose pooled connection turns out dead (closed or GOAWAY while idle) before
 * anything of its answer came is made once more on a new connection. Response messages are counted
 * and dropped (unary calls whose answer carries nothing, like RemoteWrite's).
 * Thread-safe: any number of threads may start calls on one pool; one call is run by one thread.
 */
#ifndef STRATA_NET_GRPC_POOL_H
#define STRATA_NET_GRPC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

typedef struct grpc_pool grpc_pool_t;
typedef struct grpc_pool_call grpc_pool_call_t;

typedef struct grpc_pool_config {
	bool compress;              /* requests are snappy-framed (grpc-encoding: snappy) */
	int64_t connect_timeout_ms; /* 0 = 5000 */
	size_t max_idle;            /* connections kept between calls; 0 = 16 */
	size_t max_recv_msg;        /* 0 = 4 MiB */
	struct tls_client *tls;     /* borrowed, outlives the pool; NULL = h2c */
	size_t stream_window;       /* HTTP/2 receive window (stream and connection); 0 = 65535 */
	int64_t backoff_max_ms;     /* > 0: after a failed connect, calls fail at once (Unavailable) for
	                               100 ms, doubling per failure up to this; 0 = every call connects */
} grpc_pool_config_t;

/* target "host:port" or "[v6]:port"; ERR_INVALID if malformed. Nothing connects yet. */
int grpc_pool_new(grpc_pool_t **out, const char *target, const grpc_pool_config_t *cfg, err_t *err);
/* Every call must have ended. Closes the idle connections. */
void grpc_pool_free(grpc_pool_t *p);

/* Connections made so far (for tests and metrics). */
uint64_t grpc_pool_connects(grpc_pool_t *p);

/* Start a call (msg taken, left empty): takes an idle connection or connects (blocking, bounded as
 * above). Never fails here: failures come out of grpc_pool_call_end. deadline_ms: clock_mono_ms(). */
grpc_pool_call_t *grpc_pool_call_start(grpc_pool_t *p, const char *path, buf_t *msg, uint64_t deadline_ms);
/* Send the calls' requests and wait until every one of them has ended or passed its deadline. */
void grpc_pool_run(grpc_pool_call_t **calls, size_t n);
/* The outcome (0 = OK, < 0 with err filled); *nmsgs: response messages received. Frees the call and
 * gives its connection back to the pool when it can carry another. */
int grpc_pool_call_end(grpc_pool_call_t *c, int *nmsgs, err_t *err);

/* Server streaming, run by the calling thread without a poll loop of its own: the call starts as
 * above and its request goes out at once (so calls to several targets proceed in parallel); recv then
 * reads the socket only while no checked response message is buffered, and returns the window for
 * what it read at once: the server goes on producing while the consumer works, and a consumer that
 * stops reading stops the server by flow control (buffered: at most twice the receive window, one
 * half in the socket, + one message). Response
 * messages are kept (snappy ones decompressed, max_recv_msg each). grpc_pool_call_end before the end
 * cancels the call (its connection is closed). */
/* md_key/md_val: one metadata pair sent with the request (e.g. thanos-tenant), or NULL. */
grpc_pool_call_t *grpc_pool_stream_start(grpc_pool_t *p, const char *path, buf_t *msg, uint64_t deadline_ms,
                                         const char *md_key, const char *md_val);
/* Next response message: 1 = *msg and *len set (valid until the next recv or end), 0 = ended OK, < 0 =
 * error (err filled); after 0 or an error the same again. */
int grpc_pool_stream_recv(grpc_pool_call_t *c, const uint8_t **msg, size_t *len, err_t *err);

#endif
