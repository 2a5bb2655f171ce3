/*
 * api_params.h — Prometheus HTTP API v1 parameter parsing (times, durations, steps), with Prometheus's
 * exact error wording so clients (Grafana, promtool) see the same messages.
 *
 * Times are int64 ms. Accepted: float seconds ("1700000000.5", fractional part rounded to ms) or
 * RFC 3339 ("2023-11-14T22:23:20.123Z"), plus Prometheus's API min/max time strings.
 */
#ifndef STRATA_NET_API_PARAMS_H
#define STRATA_NET_API_PARAMS_H

#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

/* Prometheus's API min/max times (v1.MinTime / v1.MaxTime) in ms. */
#define API_MIN_TIME_MS (-9223309901257974LL)
#define API_MAX_TIME_MS (9223309901257974LL)

/* "cannot parse \"abc\" to a valid timestamp" on error (ERR_INVALID). */
int api_parse_time(str_t s, int64_t *ms, err_t *err);
/* Float seconds or a Prometheus duration; "cannot parse \"x\" to a valid duration". */
int api_parse_duration(str_t s, int64_t *ms, err_t *err);

/* Full parameter errors as the API prints them after "invalid parameter ...":
 *   api_param_time(s, "time", default, &ms, err) -> `invalid parameter "time": Invalid time value for 'time': ...`
 * When s is empty the default is used. */
int api_param_time(str_t s, const char *name, int64_t def, int64_t *ms, err_t *err);

/* query_range start/end/step validation with Prometheus's messages. */
int api_range_params(str_t start, str_t end, str_t step, int64_t *start_ms, int64_t *end_ms, int64_t *step_ms,
		     err_t *err);

#endif
