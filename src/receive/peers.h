/*
 * peers.h — the other receivers of a hashring, as targets of thanos.WriteableStore/RemoteWrite
 * (reference thanos.md §2.1, §8.2).
 *
 * One peer per endpoint address, created on first use and kept for the life of the process: a gRPC
 * channel (one HTTP/2 connection, snappy-compressed requests with --receive.grpc-compression=snappy;
 * the connections of all peers run on one loop thread of the peers_t) and a few worker threads of its
 * own (--receive.forward.async-workers), so a peer that hangs only ever holds up its own queue. A send runs on one of them: it fails at once with Unavailable while
 * the peer is in backoff, with DeadlineExceeded if its deadline passed while it waited in the queue,
 * and otherwise makes the call with what is left of the deadline (the forward timeout): a framed send (the
 * router's) on the peer's pooled connections driven by that worker itself (net/grpc_pool.h), others on the
 * channel. A failure
 * that says the peer is down or slow (Unavailable, DeadlineExceeded, connection errors) puts the peer
 * in backoff: 100 ms doubling per consecutive failure up to max_backoff, reset by a success.
 *
 * Outcomes are reduced to what quorum accounting needs (PEER_*), with the peer's message.
 * Metrics: thanos_receive_forward_requests_total{result="success|error"} and
 * thanos_receive_forward_request_duration_seconds{endpoint} (a histogram per peer).
 */
#ifndef STRATA_RECEIVE_PEERS_H
#define STRATA_RECEIVE_PEERS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"

/* Write outcomes, also used for local writes (receive/router.h). */
typedef enum peer_outcome {
	PEER_OK,
	PEER_UNAVAILABLE, /* down, in backoff, timed out, transport error: retryable (503) */
	PEER_NOT_READY,   /* the receiver is starting or switching hashrings (503) */
	PEER_CONFLICT,    /* out of order, duplicate, out of bounds (409) */
	PEER_INVALID,     /* invalid labels, bad replica, bad body (400) */
	PEER_LIMIT,       /* over a head-series limit (429) */
	PEER_OTHER,       /* anything else (500) */
	PEER_NOUTCOMES
} peer_outcome_t;

#define GRPC_STATUS_ALREADY_EXISTS 6 /* gRPC's code for conflicts (not in net/grpc.h's list) */

typedef struct peers peers_t;
typedef struct peer peer_t;

typedef struct peers_config {
	bool compress;          /* snappy */
	int64_t max_backoff_ms; /* 0 = 5000 */
	int workers_per_peer;   /* 0 = 5 */
	struct tls_client *tls; /* --remote-write.client-tls-* (borrowed, outlives ps); NULL = h2c */
} peers_config_t;

peers_t *peers_new(const peers_config_t *cfg);
/* Waits for queued sends to finish (they end by their deadlines). */
void peers_free(peers_t *ps);
/* The peer for address (created on first use; lives as long as ps). */
peer_t *peers_get(peers_t *ps, const char *address);
const char *peer_address(const peer_t *p);

/* Called on a peer worker thread when a send is over. msg: the peer's error (NULL on success). */
typedef void (*peer_done_fn)(void *arg, peer_outcome_t outcome, const char *msg);
/* Send a framed-free thanos.WriteRequest (body is taken and freed) before deadline_ms
 * (clock_mono_ms()); done runs exactly once. */
void peer_send(peer_t *p, buf_t *body, uint64_t deadline_ms, peer_done_fn done, void *arg);

/* Requests framed by the caller (the 5-byte gRPC prefix, flag 1 and a snappy-framed body exactly when
 * peer_compresses), taken without a copy. */
bool peer_compresses(const peer_t *p);
void peer_send_framed(peer_t *p, buf_t *msg, uint64_t deadline_ms, peer_done_fn done, void *arg);
/* A send made from the calling thread, without the hand-off to the peer's workers: for a write that
 * waits for every one of its forwards anyway (replication factor 1). Start them all, then wait for
 * each: wait returns the outcome (backoff, metrics and messages as above; msg, if not NULL, gets the
 * error message) and frees c. */
typedef struct peer_call peer_call_t;
peer_call_t *peer_call_start(peer_t *p, buf_t *msg, uint64_t deadline_ms);
/* Send the started calls and wait until each has its answer or passed its deadline (they run on this
 * thread, on connections of the peers' own, net/grpc_pool.h: no hand-off to the forwarding loop). */
void peer_calls_run(peer_call_t **calls, size_t n);
peer_outcome_t peer_call_wait(peer_call_t *c, buf_t *msg);

/* The outcome a write's HTTP status stands for (200 -> PEER_OK, 409 -> PEER_CONFLICT, ...). */
peer_outcome_t peer_outcome_from_http(int status);
/* And back: the HTTP status and the gRPC status of an outcome (reference §8.5). */
int peer_outcome_http(peer_outcome_t o);
int peer_outcome_grpc(peer_outcome_t o);

#endif
