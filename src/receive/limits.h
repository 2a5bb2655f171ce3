/*
 * limits.h — the receiver's limits config (--receive.limits-config[-file], Thanos's format, reference
 * thanos.md §8.6), hot-reloaded:
 *
 *   write:
 *     global:
 *       max_concurrency: 30           # requests ingested at once; the rest wait (0 = no gate)
 *       meta_monitoring_url: ...      # accepted for compatibility: head series are counted locally
 *       meta_monitoring_limit_query: ...
 *       meta_monitoring_http_client: ...
 *     default:
 *       request: {size_bytes_limit: 1MiB, series_limit: 1000, samples_limit: 10000}
 *       head_series_limit: 100000
 *     tenants:
 *       <tenant>:
 *         request: {...}              # a field left out inherits the default; 0 = unlimited
 *         head_series_limit: 2000
 *
 * Unknown keys are errors (Thanos parses strictly). size_bytes_limit takes a number of bytes or a size
 * with a unit (512KiB, 1MB). A parsed config is immutable; the limiter swaps configs atomically and
 * hands out copies of the numbers, so it is safe from any thread.
 */
#ifndef STRATA_RECEIVE_LIMITS_H
#define STRATA_RECEIVE_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

typedef struct rcv_tenant_limits {
	int64_t size_bytes, series, samples; /* per request; 0 = unlimited */
	int64_t head_series;                 /* 0 = unlimited */
} rcv_tenant_limits_t;

typedef struct rcv_limits rcv_limits_t;

int rcv_limits_parse(const char *yaml, size_t len, const char *what, rcv_limits_t **out, err_t *err);
void rcv_limits_free(rcv_limits_t *l);
int64_t rcv_limits_max_concurrency(const rcv_limits_t *l);
void rcv_limits_for(const rcv_limits_t *l, str_t tenant, rcv_tenant_limits_t *out);

/* ---- hot reload ---- */

typedef struct rcv_limiter rcv_limiter_t;

/* From inline YAML (never reloaded) or a file (re-read by rcv_limiter_reload when its contents
 * change); both NULL = no limits. A bad initial config is an error. */
int rcv_limiter_new(rcv_limiter_t **out, const char *yaml, const char *file, err_t *err);
void rcv_limiter_free(rcv_limiter_t *lm);
/* Re-read the file if its contents changed: 1 = new config in force, 0 = unchanged, <0 = the new
 * contents are invalid (the old config stays; err says why). Counts thanos_receive_limits_config_*. */
int rcv_limiter_reload(rcv_limiter_t *lm, err_t *err);
void rcv_limiter_get(rcv_limiter_t *lm, str_t tenant, rcv_tenant_limits_t *out);
int64_t rcv_limiter_max_concurrency(rcv_limiter_t *lm);

#endif
