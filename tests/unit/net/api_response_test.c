#include "test.h"

#include "net/api_response.h"

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

/* Field names, order and number formatting as Prometheus 2.42 printed them (stats=1 and stats=all). */
TEST(query_stats_json)
{
	buf_t b = BUF_INIT;
	api_query_stats_t s = {.eval_total_ns = 94881, .result_sort_ns = 901, .preparation_ns = 12088,
			       .inner_eval_ns = 77305, .queue_ns = 55362, .exec_total_ns = 1500000000,
			       .total_samples = 0, .peak_samples = 3};
	api_query_stats_json(&b, &s);
	CHECK_STR(b.p, "{\"timings\":{\"evalTotalTime\":0.000094881,\"resultSortTime\":9.01e-07,"
		       "\"queryPreparationTime\":0.000012088,\"innerEvalTime\":0.000077305,\"execQueueTime\":"
		       "0.000055362,\"execTotalTime\":1.5},\"samples\":{\"totalQueryableSamples\":0,\"peakSamples\":3}}");
	buf_reset(&b);
	const int64_t t[] = {0, 15000, 30500}, n[] = {2, 2, 7};
	api_query_stats_t z = {.total_samples = 11, .peak_samples = 4, .per_step_t = t, .per_step = n, .nsteps = 3};
	api_query_stats_json(&b, &z);
	CHECK_STR(b.p, "{\"timings\":{\"evalTotalTime\":0,\"resultSortTime\":0,\"queryPreparationTime\":0,"
		       "\"innerEvalTime\":0,\"execQueueTime\":0,\"execTotalTime\":0},\"samples\":{"
		       "\"totalQueryableSamplesPerStep\":[[0,2],[15,2],[30.5,7]],\"totalQueryableSamples\":11,"
		       "\"peakSamples\":4}}");
	buf_release(&b);
}

TEST_MAIN()
