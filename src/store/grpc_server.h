/*
 * grpc_server.h — serves any store_t as thanos.Store (Series, LabelNames, LabelValues) and
 * thanos.info.Info on a grpc_server_t (reference thanos.md §2.3–§2.6).
 *
 * Series streams one SeriesResponse per series (sorted, external labels included) carrying its
 * chunks as AggrChunk.raw (XOR = 0 in storepb numbering). Sources without encoded chunks are encoded
 * here into XOR chunks of at most 120 samples. skip_chunks sends labels only. Messages are produced
 * only as the peer's flow-control window allows (grpc.h), from a per-call scratch arena reset per
 * series, so memory does not grow with the response. Set warnings are sent as warning frames after
 * the last series. Errors: no matchers / bad regex / undecodable request → INVALID_ARGUMENT; store
 * errors map through grpc_status_from_err with the store's message.
 * The store must outlive the server.
 *
 * Two ways to run:
 *   - store_grpc_register: handlers and producers run on the loop thread, so the store must be quick
 *     (in-memory stores, tests).
 *   - store_grpc_register_pool: every call runs on the service's own worker threads, so the store may
 *     block (bucket reads, remote read, the proxy waiting on remote stores) and must accept calls from
 *     several threads at once. Series calls take one of series_concurrency slots; above that they
 *     wait in a FIFO queue (a queued call that is cancelled or reaches its deadline leaves the queue
 *     and answers CANCELLED/DEADLINE_EXCEEDED). LabelNames/LabelValues have label_concurrency slots
 *     and Info 2, queued the same way, so slow Series calls never delay Info. The service has one
 *     thread per slot, so a started call never waits for a thread. A worker encodes up to
 *     batch_bytes (plus one message) of framed responses and posts them to the loop, which sends them
 *     and asks for the next batch only when the call's output drains below GRPC_OUT_LOW: a slow
 *     client stops production and memory per call stays around GRPC_OUT_HIGH + 2 batches. When a
 *     call ends (finished, reset, deadline, connection lost) while its worker is inside the store,
 *     the worker notices at the next series (grpc_call_cancelled), closes the set and the call is
 *     released then — the call's arena stays valid until that moment.
 */
#ifndef STRATA_STORE_GRPC_SERVER_H
#define STRATA_STORE_GRPC_SERVER_H

#include "net/grpc.h"
#include "store/store.h"

typedef struct store_service store_service_t;

/* Register the four methods for store (loop mode); component_type is Info's ComponentType ("store",
 * "sidecar", "query", "receive", "rule"), copied; NULL sends the store's own info().component_type
 * (empty if that is NULL too). Free the returned service after the server's listeners are gone. */
store_service_t *store_grpc_register(grpc_server_t *srv, store_t *store, const char *component_type);

typedef struct store_grpc_config {
	int series_concurrency; /* Series calls running at once, the rest queue (FIFO); 0 = 20 */
	int label_concurrency;  /* LabelNames/LabelValues running at once; 0 = 4 */
	size_t batch_bytes;     /* encoded bytes a worker hands to the loop at a time; 0 = GRPC_OUT_HIGH */
	/* A Series or Info call that arrives while no other call runs, or while one other runs on the
	 * loop, has its batches made on the loop thread, one per loop round, for as long as there are at
	 * most two calls (no hand-off to a worker and back per batch; a query's two selectors often make
	 * two calls at once); once a third comes, all go on workers. Only for stores whose reads do not
	 * block for long (local files): each batch holds up the loop meanwhile. */
	bool first_batch_on_loop;
} store_grpc_config_t;

/* Like store_grpc_register, serving calls on worker threads (see above). cfg may be NULL. */
store_service_t *store_grpc_register_pool(grpc_server_t *srv, store_t *store, const char *component_type,
					  const store_grpc_config_t *cfg);

/* Calls running / waiting for a slot (pool mode; zeros in loop mode). Thread-safe. */
typedef struct store_grpc_stats {
	int series_running, series_queued;
	int labels_running, labels_queued;
	int info_running, info_queued;
} store_grpc_stats_t;
void store_grpc_stats(store_service_t *svc, store_grpc_stats_t *out);

/* After the server's listeners are freed (every call has ended), with the loop no longer running
 * (or on its thread): waits for workers still inside the store, then frees. */
void store_grpc_service_free(store_service_t *svc);

#endif
