/* response.c — Prometheus API envelopes; see response.h. */
#include "api/response.h"

#include "api/compress.h"

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

static void put_warnings(buf_t *out, const char *const *w, size_t n)
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
	put_warnings(out, warnings, nwarnings);
	buf_putc(out, '}');
}

void api_envelope_error(buf_t *out, api_error_type_t t, const char *msg, const char *const *warnings,
			size_t nwarnings)
{
	buf_puts(out, "{\"status\":\"error\",\"errorType\":");
	buf_json_str(out, str_c(types[t].name));
	buf_puts(out, ",\"error\":");
	buf_json_str(out, str_c(msg));
	put_warnings(out, warnings, nwarnings);
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
