/*
 * endpoints.h — the querier's set of StoreAPI endpoints (reference thanos.md §6.1).
 *
 * Sources of endpoints:
 *   - static specs (--endpoint, repeatable): "host:port" (used as is), "dns+host:port" (A/AAAA records,
 *     port kept), "dnssrv+_svc._tcp.name" (SRV records, each target's A/AAAA with the SRV port),
 *     "dnssrvnoa+_svc._tcp.name" (SRV targets used as host names);
 *   - file SD (--endpoint.sd-files, globs allowed): Prometheus file_sd documents, JSON or YAML:
 *     [{"targets": ["host:port", ...], "labels": {...}}, ...]; labels are ignored. Files are re-read when
 *     their mtime changes (checked every refresh) and at least every sd_interval; a file that fails to
 *     parse keeps its previous targets and the error is logged naming the file and position.
 * DNS names are re-resolved every dns_interval; a failed lookup keeps the previous addresses.
 *
 * Every refresh (default every 5s, on a background thread once started) calls Info on each endpoint
 * and caches its external label sets, time range and component type; the time of the check and the
 * last error are kept for /api/v1/stores, which groups endpoints by component type. Health decides nothing about membership: every configured endpoint takes
 * part in queries, selected by its last good Info (or always, if it never answered), so an endpoint
 * that is down shows up as a partial-response warning (or an error naming it) instead of silently
 * missing data.
 *
 * Stores for queries: endpoint_set_store() snapshots the current endpoints (reference-counted, so a
 * reload never frees a store a running query uses) into a proxy (store/proxy.h) living as long as
 * the caller's arena. Endpoint stores answer info() from the cache; series/labels go to the store
 * made by the dial function.
 *
 * Threading: all functions are thread-safe. The stores made by dial must accept calls from several
 * threads at once (each query runs on its own worker; Info runs on the refresh thread).
 */
#ifndef STRATA_QUERY_ENDPOINTS_H
#define STRATA_QUERY_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/labels.h"
#include "model/matcher.h"
#include "store/store.h"

#define ENDPOINT_INFO_INTERVAL_MS 5000
#define ENDPOINT_DNS_INTERVAL_MS 30000
#define ENDPOINT_SD_INTERVAL_MS (5 * 60 * 1000)

typedef struct endpoint_set endpoint_set_t;

/* Make the store for one resolved address ("host:port"); NULL with err on failure (retried at the
 * next refresh). The set owns the store (store_free when the endpoint goes away). */
typedef store_t *(*endpoint_dial_fn)(const char *address, void *arg, err_t *err);

typedef struct endpoint_set_config {
	const char *const *specs; /* static endpoint specs */
	size_t nspecs;
	const char *const *sd_files; /* file SD paths or globs */
	size_t nsd_files;
	endpoint_dial_fn dial;
	void *dial_arg;
	const char *component;     /* type shown in /api/v1/stores for an endpoint whose last good Info
				    * named no known component type (or that never answered);
				    * NULL = "unknown-store-api" as Thanos */
	int64_t info_interval_ms;  /* 0 = ENDPOINT_INFO_INTERVAL_MS */
	int64_t dns_interval_ms;   /* 0 = ENDPOINT_DNS_INTERVAL_MS */
	int64_t sd_interval_ms;    /* 0 = ENDPOINT_SD_INTERVAL_MS */
} endpoint_set_config_t;

/* Validates the specs (ERR_INVALID naming a bad one) and reads the SD files once (ERR_INVALID/ERR_IO
 * naming the file and position; a glob matching nothing is fine). No endpoint is dialled yet. */
int endpoint_set_new(endpoint_set_t **out, const endpoint_set_config_t *cfg, err_t *err);
/* Stops the refresh thread and frees everything (stores still referenced by live snapshots are freed
 * when those are released; release them first). */
void endpoint_set_free(endpoint_set_t *es);

/* Replace the static specs (validated first: ERR_INVALID naming a bad one, nothing changed); the next
 * refresh round dials the new addresses and drops the vanished ones. Thread-safe. */
int endpoint_set_set_specs(endpoint_set_t *es, const char *const *specs, size_t n, err_t *err);
/* Mark the current endpoints whose address pred accepts (called now, under the set's lock): the next
 * refresh round dials each anew (the dial function sees the configuration of then) and replaces it
 * with an endpoint over the new store, keeping its last Info; queries that already took the old one
 * finish on it, and the last of them frees it. A failed dial keeps the old one until a later round.
 * Returns how many were marked. */
size_t endpoint_set_redial(endpoint_set_t *es, bool (*pred)(const char *address, void *arg), void *arg);
/* One refresh round on the calling thread: re-read changed SD files, re-resolve DNS when due, dial
 * new addresses, drop vanished ones, Info every endpoint. */
void endpoint_set_refresh(endpoint_set_t *es);
/* Run refresh rounds every info interval on a background thread (the first one right away). */
int endpoint_set_start(endpoint_set_t *es, err_t *err);
/* Number of completed refresh rounds (readiness: > 0). */
uint64_t endpoint_set_rounds(endpoint_set_t *es);

/* A proxy store over the current endpoints, living until a is released. With filters (storeMatch[]:
 * nsets matcher sets), only endpoints whose synthetic labels {__address__="<address>"} match every
 * matcher of at least one set take part. The store is used from one thread at a time. */
store_t *endpoint_set_store(endpoint_set_t *es, arena_t *a, const matcher_t *const *sets, const size_t *nsets,
			    size_t nfilters);
/* A long-lived store_t over the set: every call snapshots the endpoints into the call's arena (for the
 * gRPC server, so queriers can be layered). Owned by the set. */
store_t *endpoint_set_proxy(endpoint_set_t *es);

typedef struct endpoint_status {
	const char *address;
	const char *component;  /* from the last good Info: "store", "sidecar", "query", ... (see cfg) */
	int64_t last_check_ms;  /* wall clock, 0 = never checked */
	const char *last_error; /* NULL when the last Info succeeded */
	const labels_t *label_sets;
	size_t nlabel_sets;
	int64_t mint, maxt;     /* from the last good Info; INT64_MIN/INT64_MAX if none */
} endpoint_status_t;

/* Current endpoints sorted by address, copied into a. */
size_t endpoint_set_status(endpoint_set_t *es, arena_t *a, endpoint_status_t **out);

#endif
