/*
 * router.h — a receiver as a member of a hashring: places every series of a write on the receivers
 * that hold its replicas, writes its own share into the local TSDBs, forwards the rest to the peers
 * over gRPC, and answers by quorum (reference thanos.md §8.1, §8.2, §8.5).
 *
 * Modes (§8.1), as Thanos chooses them: with hashrings and --receive.local-endpoint, router and
 * ingestor; with hashrings and no local endpoint, router only (nothing is stored here); without
 * hashrings, ingestor only (everything is stored here). In the last two a request's replica number
 * is ignored (reset to 0).
 *
 * A write of tenant T (the request's series, relabelled first when it came over HTTP and
 * --receive.relabel-config is set): the tenant's ring (hashring.h); for a fresh request (replica 0)
 * every series goes to replicas n = 0..RF-1 on endpoint GetN(T, series, n); a request that already
 * carries replica r (1-based, from a peer or the replica header) goes only to GetN(T, series, r-1) and
 * is never replicated again (r > RF is 400). Series are batched per (endpoint, replica); the local
 * share is one write (writer.h), each remote batch one thanos.WriteableStore/RemoteWrite call
 * (WriteRequest{timeseries = 1, tenant = 2, replica = n+1 = 3}, the series' bytes forwarded as they
 * came when not relabelled), all at once, each within the forward timeout (peers.h).
 *
 * Quorum: a series is written once quorum replicas succeeded (quorum = 1 if RF is 2, else RF/2+1;
 * 1 for a request that carries a replica); it has failed once replicas - quorum + 1 of them failed,
 * with the cause that at least quorum of them agree on, else "unavailable". The call returns as soon
 * as every series is decided (the other forwards go on in the background until their timeout). The
 * answer: 200 if every series was written; otherwise the status of the first cause among the failed
 * series in the order unavailable (503), not ready (503), other (500), over limit (429), conflict
 * (409), invalid (400) — so a sender retries what can succeed and drops only what never will. The
 * body names the failures (peer, cause, first message).
 *
 * thanos.WriteableStore/RemoteWrite is served too (rcv_router_register_grpc), on worker threads of
 * its own: a Thanos router can forward to a Strata receiver and the other way round. Status codes:
 * OK, AlreadyExists (conflict), InvalidArgument, ResourceExhausted (limits), Unavailable (not
 * ready, peers down), Internal.
 *
 * Metrics: thanos_receive_replications_total{result}, thanos_receive_replication_factor,
 * thanos_receive_hashring_nodes{name}, thanos_receive_hashring_tenants{name}, plus peers.h's.
 */
#ifndef STRATA_RECEIVE_ROUTER_H
#define STRATA_RECEIVE_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "model/relabel.h"
#include "net/grpc.h"
#include "receive/hashring.h"
#include "receive/limits.h"
#include "receive/multitsdb.h"
#include "receive/peers.h"
#include "receive/writer.h"
#include "receive/writereq.h"

typedef struct rcv_router rcv_router_t;

typedef struct rcv_router_config {
	mtsdb_t *mt;
	rcv_limiter_t *limits;      /* head_series_limit per tenant; NULL = none */
	const relabel_t *relabel;   /* NULL = none */
	const char *local_endpoint; /* this receiver's address in the hashrings; NULL/"" = router only */
	uint64_t replication_factor;
	int64_t forward_timeout_ms; /* 0 = 5000 */
	peers_config_t peers;
	int grpc_workers; /* threads serving RemoteWrite; 0 = 8 */
} rcv_router_config_t;

rcv_router_t *rcv_router_new(const rcv_router_config_t *cfg);
void rcv_router_free(rcv_router_t *r);

/* Use these hashrings from now on (taken; NULL = ingestor only). Callers switch rings while no write
 * runs (rcv_router_set_ready false, rcv_router_wait_idle), but a write that still holds the old ones
 * keeps them alive until it ends. */
void rcv_router_set_hashrings(rcv_router_t *r, hashrings_t *h);
/* mtsdb_tenant_labels_fn (arg = the router): the external_labels of the tenant's hashring. */
void rcv_router_tenant_labels(void *r, str_t tenant, labels_builder_t *b);
/* Router only and nothing to relabel: requests need their labels decoded, not their samples. */
bool rcv_router_forwards_only(rcv_router_t *r);
/* "router-ingestor", "router", "ingestor". */
const char *rcv_router_mode(rcv_router_t *r);

/* Shutdown, before the gRPC server stops: RemoteWrite answers Unavailable from now on and the calls
 * being served finish. */
void rcv_router_stop(rcv_router_t *r);
/* Not ready: RemoteWrite answers Unavailable. */
void rcv_router_set_ready(rcv_router_t *r, bool ready);
/* Wait until no RemoteWrite call is being written. */
void rcv_router_wait_idle(rcv_router_t *r);

/* Write req for tenant as described above; replica 0 = fresh, r > 0 = that replica only.
 * from_http: relabel first (requests from peers were relabelled by the receiver they came to).
 * Allocates from a; res gets the status and message. */
void rcv_router_write(rcv_router_t *r, str_t tenant, const wr_request_t *req, uint64_t replica,
                      bool from_http, arena_t *a, rcv_write_result_t *res);

/* Router only (rcv_router_forwards_only): the same write as rcv_router_write straight from a remote
 * write body (snappy block), in one pass over its protobuf: each TimeSeries' labels are hashed from
 * the wire (no label arrays) and its bytes appended to the message of each (endpoint, replica) it goes
 * to, compressed chunk by chunk as it fills up when the peers compress, and framed for gRPC so the
 * client sends it without a copy. With replication factor 1 the forwards are made from the calling
 * thread (every one of them must succeed anyway). Refuses (res->status 400/413, the message saying
 * why) a body that does not decode, and one over max_series or max_samples (> 0). res->series and
 * res->samples: the request's counts (0 if it does not decode). */
void rcv_router_forward_body(rcv_router_t *r, str_t tenant, const void *body, size_t body_n,
                             size_t max_decoded, int64_t max_series, int64_t max_samples, arena_t *a,
                             rcv_write_result_t *res);

/* What rcv_router_forward_body places one TimeSeries message by: hashring_series_hash of its labels
 * read off the wire (in the order sent), and its number of samples. ERR_INVALID for what it refuses. */
int rcv_router_wire_hash(str_t tenant, const uint8_t *msg, size_t n, uint64_t *hash, size_t *nsamples,
                         err_t *err);

/* Serve /thanos.WriteableStore/RemoteWrite on srv. */
void rcv_router_register_grpc(rcv_router_t *r, grpc_server_t *srv);

/* Encode a thanos.WriteRequest of the given series (their bytes as sent when s->msg is set), tenant
 * and replica (0 = not sent) into out. */
void rcv_router_encode(buf_t *out, const wr_series_t *const *series, size_t n, str_t tenant,
                       uint64_t replica);
/* The same as a gRPC message as the router sends it: the 5-byte prefix, then the protobuf, or with
 * compress its snappy framing (compressed 64 KiB chunk by chunk as the message is built). */
void rcv_router_encode_framed(buf_t *out, bool compress, const wr_series_t *const *series, size_t n,
                              str_t tenant, uint64_t replica);
/* Decode one: the series into req (pointing into p), the tenant and the replica. */
int rcv_router_decode(arena_t *a, const uint8_t *p, size_t n, wr_request_t *req, str_t *tenant,
                      uint64_t *replica, err_t *err);

#endif
