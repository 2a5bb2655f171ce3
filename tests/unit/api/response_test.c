#include "test.h"

#include "api/response.h"

TEST(envelopes)
{
	buf_t b = BUF_INIT;
	const char *w[] = {"store a: timeout"};
	api_envelope_success(&b, STR("{\"resultType\":\"vector\",\"result\":[]}"), NULL, 0);
	CHECK_STR(b.p, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}");
	buf_reset(&b);
	api_envelope_success(&b, STR("[]"), w, 1);
	CHECK_STR(b.p, "{\"status\":\"success\",\"data\":[],\"warnings\":[\"store a: timeout\"]}");
	buf_reset(&b);
	api_envelope_error(&b, API_ERR_BAD_DATA, "invalid parameter \"query\": 1:5: parse error: <x>", NULL, 0);
	CHECK_STR(b.p, "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter "
		       "\\\"query\\\": 1:5: parse error: \\u003cx\\u003e\"}");
	buf_release(&b);
}

TEST(status_codes)
{
	CHECK_EQ_INT(api_error_status(API_ERR_BAD_DATA), 400);
	CHECK_EQ_INT(api_error_status(API_ERR_EXECUTION), 422);
	CHECK_EQ_INT(api_error_status(API_ERR_TIMEOUT), 503);
	CHECK_EQ_INT(api_error_status(API_ERR_INTERNAL), 500);
	CHECK_EQ_INT(api_error_status(api_error_type_for(ERR_LIMIT)), 422);
	CHECK_STR(api_error_type_name(api_error_type_for(ERR_CANCELED)), "canceled");
}

TEST_MAIN()
