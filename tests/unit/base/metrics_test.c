#include "test.h"

#include "base/metrics.h"

TEST(counters_gauges_histograms_exposition)
{
	metric_t *c = metrics_counter("test_requests_total", "Requests.\nSecond line \\ here.", "handler,code");
	metric_inc(metric_with(c, "query", "200"));
	metric_add(metric_with(c, "query", "200"), 2);
	metric_inc(metric_with(c, "a\"b\\c\nd", "500"));
	metric_t *g = metrics_gauge("test_temperature", "Temp.", NULL);
	metric_set(metric_with(g), 17560473);
	metric_t *h = metrics_histogram("test_duration_seconds", "Durations.", "handler", NULL, 0);
	metric_child_t *hc = metric_with(h, "x");
	metric_observe(hc, 0.003);
	metric_observe(hc, 0.3);
	metric_observe(hc, 100);
	CHECK(metric_value(metric_with(c, "query", "200")) == 3);
	CHECK(metric_value(hc) == 3);
	/* Same family registered again returns the same object. */
	CHECK(metrics_counter("test_requests_total", "Requests.", "handler,code") == c);

	buf_t b = BUF_INIT;
	metrics_write(&b);
	CHECK(strstr(b.p, "# HELP test_requests_total Requests.\\nSecond line \\\\ here.\n") != NULL);
	CHECK(strstr(b.p, "# TYPE test_requests_total counter\n") != NULL);
	CHECK(strstr(b.p, "test_requests_total{handler=\"query\",code=\"200\"} 3\n") != NULL);
	CHECK(strstr(b.p, "test_requests_total{handler=\"a\\\"b\\\\c\\nd\",code=\"500\"} 1\n") != NULL);
	CHECK(strstr(b.p, "test_temperature 1.7560473e+07\n") != NULL);
	CHECK(strstr(b.p, "test_duration_seconds_bucket{handler=\"x\",le=\"0.005\"} 1\n") != NULL);
	CHECK(strstr(b.p, "test_duration_seconds_bucket{handler=\"x\",le=\"0.5\"} 2\n") != NULL);
	CHECK(strstr(b.p, "test_duration_seconds_bucket{handler=\"x\",le=\"10\"} 2\n") != NULL);
	CHECK(strstr(b.p, "test_duration_seconds_bucket{handler=\"x\",le=\"+Inf\"} 3\n") != NULL);
	CHECK(strstr(b.p, "test_duration_seconds_sum{handler=\"x\"} 100.303\n") != NULL);
	CHECK(strstr(b.p, "test_duration_seconds_count{handler=\"x\"} 3\n") != NULL);
	/* Families sorted by name. */
	CHECK(strstr(b.p, "test_duration_seconds") < strstr(b.p, "test_requests_total"));
	buf_release(&b);
}

TEST(process_metrics)
{
	metrics_register_process("test");
	buf_t b = BUF_INIT;
	metrics_write(&b);
	CHECK(strstr(b.p, "\nprocess_resident_memory_bytes ") != NULL);
	CHECK(strstr(b.p, "\nprocess_cpu_seconds_total ") != NULL);
	CHECK(strstr(b.p, "\nprocess_open_fds ") != NULL);
	CHECK(strstr(b.p, "strata_build_info{version=\"") != NULL);
	CHECK(b.p[b.n - 1] == '\n');
	buf_release(&b);
}

TEST_MAIN()
