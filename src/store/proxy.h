/*
 * proxy.h — the proxy store: one store_t over N stores (reference thanos.md §6.2–§6.5).
 *
 * series(): asks every store's info() and fans out only to stores whose time range overlaps the
 * request and whose external label sets are compatible with the matchers, starting every such store's
 * call before waiting for any answer (a remote store works while the others are waited for; failures
 * still come out in store order, as below); merges the sorted streams
 * with a min-heap keyed by labels (O(log k) per series for k stores, ties in the order the stores
 * were added); series with identical labels from several stores become one series (their chunks are
 * concatenated with identical chunks dropped, their samples chain-merged). With replica labels in the
 * request, those labels are removed and the now-identical replicas are deduplicated with
 * req->dedup_mode (store/dedup.h: penalty by default; counter-adjusted when req->func is a counter
 * function).
 * Memory: a store whose Info has every replica label as an external label with one value in all its
 * label sets (so constant over its series) is streamed: its labels are stripped on the fly and one
 * series per store is held at a time, with or without dedup. Only a store without
 * without_replica_labels support (below) where a replica label can vary per series (absent from its
 * Info, or with several values) has its response collected and re-sorted after the removal (as
 * Thanos does for such stores).
 * Caveat of streaming: removing a constant label keeps the order except when a stripped label set is
 * a strict prefix of an earlier one's ({a, r} sorts after {a, b, r}, but {a} before {a, b}); such a
 * series is still returned, after its successor, with a warning naming the store and the series
 * (its replicas on other stores may then come out as a separate series).
 * Stores whose Info announces supports_without_replica_labels (the bucket store, a Thanos store
 * gateway or sidecar over gRPC) are asked without_replica_labels under dedup and streamed: they
 * return the series sorted without the replica labels, a series' replicas as consecutive series with
 * equal labels; each of those is copied (one series group at a time, into memory reset on every
 * next()) and becomes a dedup member. Before the dedup, a member whose encoded chunks overlap in time
 * is split into non-overlapping replica members (thanos.md §6.3 "overlap split": a peer returning
 * both replicas as one series, or gRPC frames of equal labels joined by the client).
 * The proxy announces that support itself (a querier served over gRPC to another querier): asked
 * without_replica_labels, it strips its streams the same way but does not deduplicate; every member
 * of a group (a store's replica, or a store's series) comes out as a series of its own, consecutive,
 * with the same labels, and the asking querier deduplicates them (in process, or over gRPC where the
 * client joins the frames and the overlap split separates the replicas again).
 * Partial response: a store that fails (at the call, or mid-stream) becomes a warning
 * "store <name>: <error>" on the returned set and the others continue; with req->abort_on_error the
 * call fails with ERR_UNAVAILABLE (or the store's code) naming the store.
 * The stores are not owned; they must outlive the proxy. Single-threaded like every store.
 */
#ifndef STRATA_STORE_PROXY_H
#define STRATA_STORE_PROXY_H

#include "store/store.h"

typedef struct proxy_store proxy_store_t;

proxy_store_t *proxy_store_new(const char *name);
void proxy_store_add(proxy_store_t *p, store_t *s);
store_t *proxy_store_base(proxy_store_t *p);
void proxy_store_free(proxy_store_t *p);

#endif
