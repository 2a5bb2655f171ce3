/*
 * queryapi.h — the ruler's view of the querier: Prometheus HTTP API instant queries
 * (POST /api/v1/query by default, dedup=true, partial_response per group) against one HA group of
 * query endpoints (reference thanos.md §9): round robin, the next endpoint tried when one is down or
 * answers 5xx, failure only when every endpoint failed. A query error the API reports (bad_data,
 * execution: the rule's fault) is returned as it is without trying others.
 *
 * Endpoints come from --query (host:port or URL, repeatable), --query.config[-file] (YAML list of
 * {static_configs, file_sd_configs, scheme, path_prefix}) and --query.sd-files (Prometheus file SD:
 * YAML or JSON lists of {targets: [...]}), the files reread by qapi_refresh; and from
 * --grpc-query-endpoint (rule/grpcquery.h: thanos.Query/Query over gRPC, DNS names re-resolved by
 * qapi_refresh). All of them are one HA group, HTTP preferred over gRPC: the HTTP endpoints are
 * tried first (round robin), then the gRPC ones (round robin); failure only when every one failed.
 * Thread-safe: any number of concurrent queries; refresh from one thread.
 */
#ifndef STRATA_RULE_QUERYAPI_H
#define STRATA_RULE_QUERYAPI_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/flags.h"
#include "rule/tmpl.h"

struct tls_client;
typedef struct qapi qapi_t;

typedef struct qapi_opts {
	const strlist_t *addrs;    /* --query */
	const char *config;        /* --query.config YAML (content), may be NULL */
	const char *config_what;   /* its name in messages */
	const strlist_t *sd_files; /* --query.sd-files globs */
	const char *method;        /* "POST" (default) or "GET" */
	int64_t timeout_ms;        /* per query; 0 = 2m */
	const strlist_t *grpc_addrs;   /* --grpc-query-endpoint, may be NULL */
	struct tls_client *grpc_tls;   /* --grpc-client-tls-* (borrowed), NULL = plaintext */
} qapi_opts_t;

/* ERR_INVALID for a bad config or address (message names it). */
int qapi_new(qapi_t **out, const qapi_opts_t *o, err_t *err);
void qapi_free(qapi_t *q);
/* Reread the SD files (a bad file keeps its previous targets and is logged). */
void qapi_refresh(qapi_t *q);
/* Re-resolve the gRPC endpoints' DNS names (blocks on lookups). */
void qapi_refresh_dns(qapi_t *q);
size_t qapi_num_endpoints(qapi_t *q);

typedef struct qapi_result {
	tmpl_sample_t *v; /* a vector (a scalar is one sample with no labels) */
	size_t n;
	char **warnings; /* in the arena */
	size_t nwarnings;
} qapi_result_t;

/* Instant query at ts_ms; results in a. Non-vector, non-scalar results are ERR_INVALID ("rule
 * result is not a vector or scalar"). */
int qapi_query(qapi_t *q, arena_t *a, str_t expr, int64_t ts_ms, bool partial_response, qapi_result_t *out,
               err_t *err);

#endif
