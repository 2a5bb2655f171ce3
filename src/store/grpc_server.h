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
 * Requests run on the loop thread (the store must be quick or stream lazily); the store must
 * outlive the server.
 */
#ifndef STRATA_STORE_GRPC_SERVER_H
#define STRATA_STORE_GRPC_SERVER_H

#include "net/grpc.h"
#include "store/store.h"

typedef struct store_service store_service_t;

/* Register the four methods for store; component_type is Info's ComponentType ("store", "sidecar",
 * "query", "receive", "rule"). Free the returned service after the server's listeners are gone. */
store_service_t *store_grpc_register(grpc_server_t *srv, store_t *store, const char *component_type);
void store_grpc_service_free(store_service_t *svc);

#endif
