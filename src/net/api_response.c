/* api_response.c — Prometheus API envelopes; see api_response.h. */
#include "net/api_response.h"

#include "net/api_compress.h"
#include "base/fmt.h"

static const struct {
	const char *name;
	int status;
} types[] = {
	[API_ERR_BAD_DATA] = {"bad_data", 400},   [API_ERR_EXECUTION] = {"execution", 422},
	[API_ERR_TIMEOUT] = {"timeout", 503},     [API_ERR_CANCELED] = {"canceled", 503},
	[API_ERR_INTERNAL] = {"internal", 500},   [API_ERR_UNAVAILABLE] = {"unavailable", 500},
	[API_ERR_NOT_FOUND] = {"not_found", 404},
};

const char *api_error_type_name(api_error_type_t t)
{
	return types[t].name;
}

int api_error_status(api_error_type_t t)
{
	return types[t].status;
}

api_error_type_t api_error_type_for(int code)
{
	switch (code) {
	case ERR_INVALID: return API_ERR_BAD_DATA;
	case ERR_TIMEOUT: return API_ERR_TIMEOUT;
	case ERR_CANCELED: return API_ERR_CANCELED;
	case ERR_LIMIT: return API_ERR_EXECUTION;
	case ERR_NOT_FOUND: return API_ERR_NOT_FOUND;
	case ERR_UNAVAILABLE: return API_ERR_UNAVAILABLE;
	default: return API_ERR_INTERNAL;
	}
}

void api_envelope_warnings(buf_t *out, const char *const *w, size_t n)
{
	if (!n)
		return;
	buf_puts(out, ",\"warnings\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_putc(out, ',');
		buf_json_str(out, str_c(w[i]));
	}
	buf_putc(out, ']');
}

void api_envelope_success(buf_t *out, str_t data_json, const char *const *warnings, size_t nwarnings)
{
	buf_puts(out, "{\"status\":\"success\"");
	if (data_json.n) {
		buf_puts(out, ",\"data\":");
		buf_append_str(out, data_json);
	}
	api_envelope_warnings(out, warnings, nwarnings);
	buf_putc(out, '}');
}

void api_envelope_error(buf_t *out, api_error_type_t t, const char *msg, const char *const *warnings,
			size_t nwarnings)
{
	buf_puts(out, "{\"status\":\"error\",\"errorType\":");
	buf_json_str(out, str_c(types[t].name));
	buf_puts(out, ",\"error\":");
	buf_json_str(out, str_c(msg));
	api_envelope_warnings(out, warnings, nwarnings);
	buf_putc(out, '}');
}

void api_respond_success(http_req_t *r, str_t data_json, const char *const *warnings, size_t nwarnings)
{
	buf_t b = BUF_INIT;
	api_envelope_success(&b, data_json, warnings, nwarnings);
	api_respond_json(r, 200, &b);
	buf_release(&b);
}

void api_respond_error(http_req_t *r, api_error_type_t t, const char *msg)
{
	buf_t b = BUF_INIT;
	api_envelope_error(&b, t, msg, NULL, 0);
	api_respond_json(r, types[t].status, &b);
	buf_release(&b);
}

/* A time.Duration as Go's JSON encoder prints float64(d)/1e9 (jsoniter: 'e' below 1e-6, no exponent
 * clean-up, the same rule as sample values). */
static void put_seconds(buf_t *b, uint64_t ns)
{
	buf_put_prom_value(b, (double)ns / 1e9);
}

void api_query_stats_json(buf_t *out, const api_query_stats_t *s)
{
	static const char *const names[] = {"evalTotalTime", "resultSortTime", "queryPreparationTime",
					    "innerEvalTime", "execQueueTime", "execTotalTime"};
	const uint64_t v[] = {s->eval_total_ns, s->result_sort_ns, s->preparation_ns,
			      s->inner_eval_ns, s->queue_ns,       s->exec_total_ns};
	buf_puts(out, "{\"timings\":{");
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		buf_printf(out, "%s\"%s\":", i ? "," : "", names[i]);
		put_seconds(out, v[i]);
	}
	buf_puts(out, "},\"samples\":{");
	if (s->per_step && s->nsteps) {
		buf_puts(out, "\"totalQueryableSamplesPerStep\":[");
		for (size_t i = 0; i < s->nsteps; i++) {
			buf_puts(out, i ? ",[" : "[");
			buf_put_json_seconds(out, s->per_step_t[i]);
			buf_putc(out, ',');
			buf_put_i64(out, s->per_step[i]);
			buf_putc(out, ']');
		}
		buf_puts(out, "],");
	}
	buf_puts(out, "\"totalQueryableSamples\":");
	buf_put_i64(out, s->total_samples);
	buf_puts(out, ",\"peakSamples\":");
	buf_put_i64(out, s->peak_samples);
	buf_puts(out, "}}");
}
