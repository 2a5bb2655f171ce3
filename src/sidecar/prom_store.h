/*
 * prom_store.h — a store_t over a live Prometheus: Series through remote read, label names/values
 * through Prometheus's HTTP API (what `strata sidecar` serves; reference prometheus.md §4.2,
 * thanos.md §1.4).
 *
 * Series: one remote-read request (POST <url>/api/v1/read, snappy-compressed ReadRequest) asking for
 * STREAMED_XOR_CHUNKS. The streamed answer (frames of uvarint length + big-endian CRC32C + a
 * ChunkedReadResponse) is pulled frame by frame as the consumer asks for series, every frame's
 * CRC32C verified, a series split over several frames joined again; memory stays around one frame
 * plus one series. If Prometheus answers SAMPLES instead (snappy ReadResponse) the samples are
 * re-encoded into XOR chunks of at most 120 samples and served sorted. Malformed frames, CRC
 * mismatches, undecodable protobuf/snappy and unexpected content types are ERR_CORRUPT naming the URL
 * and the byte offset; Prometheus being down is ERR_UNAVAILABLE (the querier turns it into a
 * partial-response warning).
 *
 * External labels are attached to every series (external value wins) and matchers on external label
 * names are evaluated against them first (store_match_external); a request whose matchers are all
 * on external labels is ERR_INVALID, as in Thanos. Requests are clamped to min_time (--min-time).
 * Info reports the external labels and [max(min_time, the data's lower bound), +inf), the bound being
 * what the sidecar last set (prom_store_set_data_min_time: Prometheus's lowest timestamp).
 *
 * Threading: series/label calls block on HTTP (run them where blocking is acceptable) and may run
 * concurrently with prom_store_set_* from other threads (the mutable state is behind a mutex).
 * A series set is single-threaded and must be closed before its arena is released.
 */
#ifndef STRATA_SIDECAR_PROM_STORE_H
#define STRATA_SIDECAR_PROM_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/labels.h"
#include "store/store.h"

typedef struct prom_store prom_store_t;

typedef struct prom_store_config {
	const char *url;    /* Prometheus base URL, e.g. "http://127.0.0.1:9090" (copied) */
	int64_t timeout_ms; /* label API calls: whole call; remote read: max silence; 0 = 2m */
	int64_t min_time;   /* serve only data at or after this (ms); INT64_MIN = everything */
	const struct httpcfg *http; /* --prometheus.http-client: auth, TLS (borrowed); NULL = none */
} prom_store_config_t;

prom_store_t *prom_store_new(const prom_store_config_t *cfg);
store_t *prom_store_base(prom_store_t *s);
void prom_store_free(prom_store_t *s);
/* Replace the external labels (copied; need not be sorted). Thread-safe. */
void prom_store_set_external_labels(prom_store_t *s, const labels_t *ext);
/* Copy of the current external labels into a. Thread-safe. */
labels_t prom_store_external_labels(prom_store_t *s, arena_t *a);
/* Lower bound of the data Prometheus holds (its lowest timestamp); INT64_MIN = unknown. Thread-safe. */
void prom_store_set_data_min_time(prom_store_t *s, int64_t mint);

/* Decode a remote-read response body held in memory (tests, fuzzing): streamed = STREAMED_XOR_CHUNKS
 * frames (read lazily by the set, as from Prometheus), else a snappy SAMPLES ReadResponse (decoded
 * now). ext (may be NULL) is attached as external labels; samples are trimmed to [mint, maxt]. body
 * must outlive the set. Errors as series() (ERR_CORRUPT naming the offset), "(memory)" as the URL. */
int prom_store_decode(arena_t *a, const void *body, size_t n, bool streamed, const labels_t *ext, int64_t mint,
		      int64_t maxt, series_set_t **out, err_t *err);

/* ---- Prometheus HTTP API helpers (blocking; thread-safe) ---- */

/* GET <url>/-/ready: 0 if 200, ERR_UNAVAILABLE (down or not ready, with the reason) otherwise. */
int prom_api_ready(const char *url, const struct httpcfg *hc, int64_t timeout_ms, err_t *err);
/* External labels from GET <url>/api/v1/status/config (global.external_labels of its YAML), sorted,
 * allocated in a. Errors name the URL and what was wrong with the answer. */
int prom_api_external_labels(const char *url, const struct httpcfg *hc, int64_t timeout_ms, arena_t *a,
                             labels_t *out, err_t *err);
/* Parse the external labels out of a Prometheus configuration YAML (what the above uses). */
int prom_config_external_labels(const char *yaml, size_t len, arena_t *a, labels_t *out, err_t *err);
/* The oldest sample in Prometheus's head block, from GET <url>/api/v1/status/tsdb (headStats.minTime):
 * INT64_MAX while the head holds no sample. Errors name the URL. */
int prom_api_head_min_time(const char *url, const struct httpcfg *hc, int64_t timeout_ms, int64_t *mint, err_t *err);
/* Value of one flag from GET <url>/api/v1/status/flags (arena string); ERR_NOT_FOUND if absent. */
int prom_api_flag(const char *url, const struct httpcfg *hc, int64_t timeout_ms, const char *name, arena_t *a,
                  const char **out, err_t *err);

#endif
