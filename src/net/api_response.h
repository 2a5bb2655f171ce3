/*
 * api_response.h — the Prometheus HTTP API v1 envelope:
 *   {"status":"success","data":<data>[,"warnings":[...]]}
 *   {"status":"error","errorType":"bad_data","error":"<msg>"[,"warnings":[...]]}
 * with Prometheus 2.42's HTTP status per error type (bad_data 400, execution 422, timeout 503,
 * canceled 503, internal 500, unavailable 500, not_found 404) and Content-Type application/json.
 */
#ifndef STRATA_NET_API_RESPONSE_H
#define STRATA_NET_API_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"
#include "net/http.h"

typedef enum api_error_type {
	API_ERR_BAD_DATA,
	API_ERR_EXECUTION,
	API_ERR_TIMEOUT,
	API_ERR_CANCELED,
	API_ERR_INTERNAL,
	API_ERR_UNAVAILABLE,
	API_ERR_NOT_FOUND,
} api_error_type_t;

const char *api_error_type_name(api_error_type_t t);
int api_error_status(api_error_type_t t);
/* Map an ERR_* code to the API error type a query failure gets (ERR_INVALID → bad_data, ERR_TIMEOUT →
 * timeout, ERR_CANCELED → canceled, ERR_LIMIT → execution, storage failures → internal ...). */
api_error_type_t api_error_type_for(int err_code);

/* Build the envelope into out. data_json is raw JSON (may be NULL for no data). */
void api_envelope_success(buf_t *out, str_t data_json, const char *const *warnings, size_t nwarnings);
void api_envelope_error(buf_t *out, api_error_type_t t, const char *msg, const char *const *warnings,
			size_t nwarnings);
/* The envelope's ,"warnings":[...] member (nothing when n is 0), for callers writing it piece by piece. */
void api_envelope_warnings(buf_t *out, const char *const *w, size_t n);

/* The "stats" member of a query's data (Prometheus 2.42's stats.BuiltinStats, shown when the request's
 * stats parameter is non-empty), field names and order as Prometheus encodes them:
 *   {"timings":{"evalTotalTime":s,"resultSortTime":s,"queryPreparationTime":s,"innerEvalTime":s,
 *               "execQueueTime":s,"execTotalTime":s},
 *    "samples":{["totalQueryableSamplesPerStep":[[t,n],...],]"totalQueryableSamples":n,"peakSamples":n}}
 * Times are seconds as Go's JSON encoder prints a float64 of the duration; per-step entries only when
 * per_step is non-NULL (Prometheus: stats=all with --enable-feature=promql-per-step-stats). */
typedef struct api_query_stats {
	uint64_t eval_total_ns, result_sort_ns, preparation_ns, inner_eval_ns, queue_ns, exec_total_ns;
	int64_t total_samples, peak_samples;
	const int64_t *per_step_t, *per_step; /* ms timestamps and sample counts, nsteps each; may be NULL */
	size_t nsteps;
} api_query_stats_t;

void api_query_stats_json(buf_t *out, const api_query_stats_t *s);

/* Send them (the request's response). */
void api_respond_success(http_req_t *r, str_t data_json, const char *const *warnings, size_t nwarnings);
void api_respond_error(http_req_t *r, api_error_type_t t, const char *msg);

#endif
