/*
 * grpcquery.h — the ruler's gRPC query endpoints (--grpc-query-endpoint, reference thanos.md §1.10,
 * §9): instant queries as /thanos.Query/Query (proto/querypb.proto) on queriers, with the
 * --grpc-client-tls-* settings. Addresses are "host:port" or Thanos's DNS prefixes (net/dnsname.h:
 * dns+, dnssrv+, dnssrvnoa+), re-resolved by gquery_refresh (a failed lookup keeps the previous
 * addresses). One HTTP/2 channel per address (net/grpc_client.h: reconnects with backoff), made on
 * first use and closed when the address leaves the resolution (pods rescheduled): at once if no
 * query uses it, else when the last query using it ends (a reference count per channel).
 *
 * A query goes to the endpoints round robin, the next one tried when one is unreachable or answers
 * UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNIMPLEMENTED, ...; failure only when all fail.
 * INVALID_ARGUMENT and UNKNOWN (the querier's bad_data and execution errors: the rule's fault) are
 * returned at once, as the HTTP API's are (rule/queryapi.h). The request: query, time_seconds (the
 * evaluation time in whole seconds, as Thanos's remote engine sends it), timeout_seconds,
 * enableDedup=true and enablePartialResponse from the group's partial_response_strategy.
 * Thread-safe.
 */
#ifndef STRATA_RULE_GRPCQUERY_H
#define STRATA_RULE_GRPCQUERY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/flags.h"
#include "rule/tmpl.h"

struct tls_client;
typedef struct gquery gquery_t;

/* ERR_INVALID for a malformed address (message names it). tls is borrowed (NULL: plaintext h2c). */
int gquery_new(gquery_t **out, const strlist_t *addrs, struct tls_client *tls, err_t *err);
void gquery_free(gquery_t *g);
/* Re-resolve DNS names (blocks on lookups). */
void gquery_refresh(gquery_t *g);
size_t gquery_num_endpoints(gquery_t *g);
/* Channels open (addresses that took a query and are still resolved; for tests and metrics). */
size_t gquery_num_channels(gquery_t *g);

/* For tests: resolve every configured name (raw as given) with fn instead of DNS, from the next
 * gquery_refresh on. fn appends addresses to out; < 0 (err set) keeps the previous addresses. */
typedef int (*gquery_resolve_fn)(const char *raw, strlist_t *out, err_t *err, void *arg);
void gquery_set_resolver(gquery_t *g, gquery_resolve_fn fn, void *arg);

/* An instant query at ts_ms. *v, *n: the vector (a scalar: one sample without labels), warnings in a.
 * 0, or an error: *final says whether it came from the query itself (no other endpoint would do
 * better) rather than from all endpoints failing. */
int gquery_query(gquery_t *g, arena_t *a, str_t expr, int64_t ts_ms, bool partial_response,
                 int64_t timeout_ms, tmpl_sample_t **v, size_t *n, char ***warnings, size_t *nwarnings,
                 bool *final, err_t *err);

#endif
