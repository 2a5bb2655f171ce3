/*
 * grpc_client.h — a store_t backed by a remote StoreAPI endpoint (thanos.Store + thanos.info.Info over
 * gRPC; reference thanos.md §2.3–§2.6), e.g. a Thanos or Strata sidecar, store gateway or querier.
 *
 *     store_grpc_client_config_t cfg = {.timeout_ms = 120000};
 *     store_t *s;
 *     if (store_grpc_client_new(&s, "10.0.0.1:10901", &cfg, &err)) ...   // does not connect yet
 *     store_series(s, arena, &req, &set, &err); ... series_set_close(set);  // from any thread
 *     store_free(s);
 *
 * series(): sends a SeriesRequest (matchers, time range, skip_chunks, limit, partial response strategy,
 * the function hint) and returns a series set that reads the response stream lazily: one series (its
 * labels and chunks) is held at a time, plus one look-ahead frame to merge a series the server split
 * over several frames; HTTP/2 flow control stops the server while the consumer is busy, so memory does
 * not grow with the response. Series come out sorted as the server sent them (an out-of-order or
 * malformed stream is an error); chunks() exposes the series' encoded chunks (storepb XOR/histogram
 * mapped to the TSDB encoding numbering, sorted by mint; aggregate-only chunks are skipped); samples()
 * decodes XOR chunks trimmed to [mint, maxt] (tsdb/xor.h). Warning frames are collected and returned
 * by the set's warnings(); hints frames are ignored.
 * With req->without_replica_labels (sent as SeriesRequest field 14, with the replica label names),
 * frames with equal labels are still joined into one series, but its chunks keep their arrival order
 * instead of being sorted by mint: consecutive frames may be different replicas, and that order is
 * what lets the proxy's overlap split (store/proxy.h) tell them apart. Such a set is meant for a
 * chunks() reader; samples() decodes the chunks in that order.
 * series() does not wait for the server: the call starts and the set's first next() waits for the
 * first frame, so a caller fanning out to several stores runs their calls in parallel; an unreachable
 * store or a refused request is therefore reported by next(). Closing the set early cancels the call.
 * label_names(), label_values(), info(): unary calls; info uses info_timeout_ms and reports the
 * endpoint's external label sets, StoreInfo time range and ComponentType (NULL if empty).
 *
 * Errors name the endpoint: "store <address>: Series: ..." — a failed call, a garbage frame (cannot
 * decode), a stream cut mid-way (truncated, connection lost, reset) or the server's status and
 * message. Never a crash. The connection is made on first use and re-made with backoff
 * (net/grpc_client.h); an unreachable endpoint fails calls with ERR_UNAVAILABLE.
 *
 * Threading: the store is thread-safe — any number of threads may call it at once; a returned series
 * set belongs to the calling thread. Series calls run on the thread that reads the set, each on a
 * connection of its own taken from a pool (net/grpc_pool.h: no hand-off to a loop thread and back per
 * message, which for a small answer was most of its latency); the set's next() reads the socket only
 * when it has no frame left, so a busy consumer stops the server by flow control (256 KiB window).
 * After a failed connect they fail fast while the pool backs off as the channel does (100 ms doubling
 * up to backoff_max_ms). With cfg.channel_series, and for the unary calls always, the
 * calls are streams on one shared connection whose I/O runs on cfg.loop if given (calls must then
 * never be made on that loop's thread: they block), else on a private loop thread owned by the store.
 * Calls block the caller.
 *
 * A request's tenant (store_series_req_t/store_label_req_t .tenant) goes out as the gRPC metadata
 * "thanos-tenant" (Thanos's key, reference thanos.md §2.7).
 */
#ifndef STRATA_STORE_GRPC_CLIENT_H
#define STRATA_STORE_GRPC_CLIENT_H

#include "net/grpc_client.h"
#include "net/loop.h"
#include "store/store.h"

#define GRPC_TENANT_METADATA "thanos-tenant"

typedef struct store_grpc_client_config {
	int64_t timeout_ms;      /* per Series/LabelNames/LabelValues call (incl. reading the stream); 0 = 120s */
	int64_t info_timeout_ms; /* per Info call; 0 = 5s */
	bool compress;           /* snappy-compress requests (responses are accepted compressed anyway) */
	size_t max_recv_msg;     /* 0 = the channel's default (256 MiB) */
	loop_t *loop;            /* NULL = a private loop thread */
	int64_t backoff_max_ms;  /* 0 = the channel's default (10s) */
	struct tls_client *tls;  /* TLS to the endpoint (net/tls.h; borrowed, outlives the store); NULL = h2c */
	bool channel_series;     /* Series on the shared channel too, not pooled connections (Threading) */
} store_grpc_client_config_t;

/* address "host:port" (copied; also the store's name). cfg may be NULL. ERR_INVALID for a malformed
 * address. */
int store_grpc_client_new(store_t **out, const char *address, const store_grpc_client_config_t *cfg, err_t *err);
/* The channel under the store (e.g. for tests: connection counts). */
grpc_channel_t *store_grpc_client_channel(store_t *s);
/* Connections made so far: the channel's and the Series pool's. */
uint64_t store_grpc_client_connects(store_t *s);

/* The Series response decoding of series() over SeriesResponse messages already received (unframed,
 * uncompressed; msgs must outlive the set), for tests and fuzzing: same merging, ordering checks,
 * warnings and errors, with "(memory)" as the endpoint. Samples are trimmed to [mint, maxt]. */
int store_grpc_decode_series(arena_t *a, const str_t *msgs, size_t n, int64_t mint, int64_t maxt, series_set_t **out);

#endif
