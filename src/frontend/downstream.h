/*
 * downstream.h — the query frontend's requests to the querier (--query-frontend.downstream-url): the
 * retry middleware (reference thanos.md §7.2) and the plain proxy for every other path.
 *
 * downstream_run sends a batch of calls at once (at most `parallel` in flight, one curl multi handle in
 * the calling thread; a batch of one goes over a connection kept open from an earlier one) and retries each
 * call that failed on the network or answered 5xx, up to max_tries attempts in all (Thanos's
 * --query-range.max-retries-per-request); a 4xx is an answer, never retried.
 * cortex_query_frontend_retries{tripperware} observes the attempts each call took.
 *
 * Headers: sub-requests carry the incoming request's --query-frontend.forward-header headers and the
 * tenant header; downstream_proxy forwards every end-to-end header both ways (hop-by-hop headers such
 * as Connection, Transfer-Encoding, Keep-Alive, TE, Upgrade and Host are dropped).
 *
 * Thread-safe: a downstream_t is read-only after downstream_new; calls block (run them on workers).
 */
#ifndef STRATA_FRONTEND_DOWNSTREAM_H
#define STRATA_FRONTEND_DOWNSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "net/http.h"
#include "net/httpclient.h"

typedef struct downstream_config {
	const char *url; /* "http://host:port[/prefix]" */
	const char *const *forward_headers;
	size_t nforward_headers;
	const char *const *tenant_headers; /* first present one is the tenant */
	size_t ntenant_headers;
	int64_t timeout_ms;         /* whole exchange; 0 = 2m */
	int64_t connect_timeout_ms; /* 0 = 10s */
	struct httpcfg *tls;        /* the tripper config's tls_config (net/httpcfg.h) or NULL; downstream_new
	                               takes it over (also on failure), downstream_free frees it */
} downstream_config_t;

/* Thanos's --query-frontend.downstream-tripper-config YAML into c: response_header_timeout bounds each
 * exchange (default 2m), tls_handshake_timeout the connection set-up (10s); idle_conn_timeout,
 * expect_continue_timeout, max_idle_conns, max_idle_conns_per_host and max_conns_per_host are checked
 * and accepted (every downstream request has a connection of its own); tls_config {ca_file,
 * cert_file, key_file, server_name, insecure_skip_verify} is used for an https:// downstream URL
 * (c->tls). Unknown keys are errors. */
int downstream_tripper_parse(const char *yaml, size_t len, const char *what, downstream_config_t *c,
                             err_t *err);

typedef struct downstream downstream_t;

/* Validates the URL (http/https scheme). */
int downstream_new(downstream_t **out, const downstream_config_t *c, err_t *err);
void downstream_free(downstream_t *d);
const char *downstream_url(const downstream_t *d);
/* The tls_config requests to the downstream use (NULL: none). */
const struct httpcfg *downstream_httpcfg(const downstream_t *d);

/* Open up to n keep-alive connections to the downstream for the single calls (n concurrent pooled GETs
 * of /-/ready, one thread each, joined before returning; failures are ignored). Without it, the first
 * dashboard refresh after a start connects once per panel (the first load's batches use their own
 * connections, closed when the batch ends), where later refreshes reuse the pool's: measured ~1.7 ms of
 * a ~8 ms bench refresh (bench/README.md, query frontend). */
void downstream_warm(downstream_t *d, int n);

/* The tenant named by the incoming request's tenant header, or "anonymous". */
str_t downstream_tenant(const downstream_t *d, const http_req_t *r);

typedef struct ds_call {
	const char *method; /* "GET" or "POST" */
	str_t path;         /* "/api/v1/query_range" (appended to the downstream URL) */
	buf_t params;       /* form-encoded: the URL query for GET, the body for POST */
	/* results */
	httpc_resp_t resp;
	int rc; /* 0: resp holds an answer (any status); < 0: network failure in err */
	err_t err;
	int tries;
} ds_call_t;

void ds_call_init(ds_call_t *c, const char *method, str_t path);
void ds_call_release(ds_call_t *c);
/* Whether the call ended with a 2xx answer. */
bool ds_call_ok(const ds_call_t *c);

/* Run n calls for incoming request r with retries (see above). tripperware: metrics label. */
void downstream_run(downstream_t *d, const http_req_t *r, ds_call_t *calls, size_t n, int parallel,
                    int max_tries, const char *tripperware);

/* Answer r with what a finished call got: its status, body and content headers; a network failure
 * becomes 502 with a Prometheus error envelope naming the downstream. */
void downstream_respond(http_req_t *r, const ds_call_t *c);

/* Forward r unchanged (method, path, query, body, end-to-end headers) and answer with the downstream's
 * response; max_tries > 1 retries network failures and 5xx (idempotent GET/HEAD/POST queries only). */
void downstream_proxy(downstream_t *d, http_req_t *r, int max_tries, const char *tripperware);

#endif
