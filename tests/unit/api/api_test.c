/*
 * api_test — the querier HTTP API over an endpoint set of in-memory stores, through a real HTTP
 * server on 127.0.0.1 (free port) and the libcurl client: result JSON, dedup, partial response,
 * storeMatch[], metadata endpoints, Prometheus's error messages/types/status codes, readiness.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <zlib.h>

#include "test.h"

#include <stdatomic.h>

#include "api/api.h"
#include "net/api_compress.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "net/httpclient.h"
#include "store/inmem.h"

#define NSTORES 5

typedef struct fixture {
	loop_t *loop;
	http_server_t *srv;
	endpoint_set_t *es;
	api_t *api;
	pthread_t th;
	inmem_store_t *st[NSTORES];
	char base[64];
} fixture_t;

static fixture_t F;

static store_t *dial(const char *addr, void *arg, err_t *err)
{
	fixture_t *f = arg;
	int i;
	if (sscanf(addr, "mem-%d:1", &i) != 1 || i < 0 || i >= NSTORES || !f->st[i]) {
		err_set(err, ERR_UNAVAILABLE, "no such store %s", addr);
		return NULL;
	}
	store_t *s = inmem_store_base(f->st[i]);
	return s;
}

static void add(inmem_store_t *s, const char *name, const char *k1, const char *v1, int64_t from, int64_t to,
		int64_t step, int64_t gap_from, int64_t gap_to, int kind)
{
	label_t lv[2] = {{STR("__name__"), str_c(name)}, {str_c(k1), str_c(v1)}};
	labels_t ls = {lv, 2};
	labels_normalize(&ls);
	int64_t t[2000];
	double v[2000];
	size_t n = 0;
	for (int64_t x = from; x <= to; x += step) {
		if (x >= gap_from && x < gap_to)
			continue;
		t[n] = x;
		v[n] = kind == 0 ? 1 : (double)x / 1000;
		n++;
	}
	err_t err = {0};
	if (inmem_store_add(s, &ls, t, v, n, &err))
		TEST_FAILF("inmem_store_add: %s", err.msg);
}

static void *run_loop(void *arg)
{
	loop_run(arg);
	return NULL;
}

static int setup_max_conc = 2;
static arena_budget_pool_t *setup_mem_pool; /* api_config_t.memory_pool */

static void setup(void)
{
	memset(&F, 0, sizeof F);
	label_t ra = {STR("replica"), STR("a")}, rb = {STR("replica"), STR("b")};
	labels_t none = {NULL, 0}, la = {&ra, 1}, lb = {&rb, 1};
	F.st[0] = inmem_store_new("mem-0", &none);
	add(F.st[0], "up", "job", "api", 0, 3600000, 15000, 0, 0, 0);
	add(F.st[0], "req_total", "job", "api", 0, 3600000, 15000, 0, 0, 1);
	/* HA pair: same series, each with its own gap; mem-3 is the gap-free reference. */
	F.st[1] = inmem_store_new("mem-1", &la);
	add(F.st[1], "ha_total", "job", "ha", 0, 3600000, 15000, 600000, 900000, 1);
	F.st[2] = inmem_store_new("mem-2", &lb);
	add(F.st[2], "ha_total", "job", "ha", 0, 3600000, 15000, 1800000, 2100000, 1);
	F.st[3] = inmem_store_new("mem-3", &none);
	add(F.st[3], "ha_total", "job", "ha", 0, 3600000, 15000, 0, 0, 1);
	F.st[4] = inmem_store_new("mem-4", &none);
	add(F.st[4], "up", "job", "db", 0, 3600000, 15000, 0, 0, 0);
	/* Info component types for /api/v1/stores; mem-4 names none. */
	inmem_store_set_component(F.st[0], "sidecar");
	inmem_store_set_component(F.st[1], "store");
	inmem_store_set_component(F.st[2], "store");
	inmem_store_set_component(F.st[3], "query");

	err_t err = {0};
	CHECK(loop_new(&F.loop, &err) == 0);
	http_server_config_t hc = {.address = "127.0.0.1:0", .worker_threads = 2};
	CHECK(http_server_new(&F.srv, F.loop, &hc, &err) == 0);
	const char *specs[] = {"mem-0:1", "mem-1:1", "mem-2:1", "mem-3:1", "mem-4:1"};
	endpoint_set_config_t ec = {.specs = specs, .nspecs = NSTORES, .dial = dial, .dial_arg = &F};
	CHECK(endpoint_set_new(&F.es, &ec, &err) == 0);
	endpoint_set_refresh(F.es);
	const char *fn[] = {"query.timeout", "endpoint"}, *fv[] = {"2m", "mem-0:1"};
	const char *replica[] = {"replica"};
	api_config_t ac = {.endpoints = F.es, .replica_labels = replica, .nreplica_labels = 1, .partial_response = true,
			   .max_concurrent = setup_max_conc, .memory_pool = setup_mem_pool, .flag_names = fn, .flag_values = fv, .nflags = 2};
	F.api = api_new(F.srv, &ac);
	snprintf(F.base, sizeof F.base, "http://127.0.0.1:%d", http_server_port(F.srv));
	pthread_create(&F.th, NULL, run_loop, F.loop);
}

static void teardown(void)
{
	loop_stop(F.loop);
	pthread_join(F.th, NULL);
	http_server_free(F.srv);
	api_free(F.api);
	endpoint_set_free(F.es); /* frees the stores it dialled */
	loop_free(F.loop);
}

/* GET (form == NULL: path carries the query) or POST form; returns the status, body in out. */
static long req(const char *path, const char *form, buf_t *out)
{
	char url[4096];
	snprintf(url, sizeof url, "%s%s", F.base, path);
	const char *hdr[] = {"Content-Type: application/x-www-form-urlencoded"};
	httpc_req_t r = {.method = form ? "POST" : "GET", .url = url, .timeout_ms = 10000, .headers = form ? hdr : NULL,
			 .nheaders = form ? 1 : 0, .body = form, .body_len = form ? strlen(form) : 0};
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0};
	if (httpc_do(&r, &resp, &err)) {
		TEST_FAILF("%s: %s", path, err.msg);
		httpc_resp_release(&resp);
		return -1;
	}
	buf_reset(out);
	buf_append(out, resp.body.p, resp.body.n);
	buf_putc(out, 0);
	out->n--;
	long st = resp.status;
	httpc_resp_release(&resp);
	return st;
}

#define CHECK_REQ(path, form, want_status, want_body)                                                    \
	do {                                                                                             \
		buf_t b_ = BUF_INIT;                                                                     \
		long st_ = req((path), (form), &b_);                                                     \
		CHECK_EQ_INT(st_, (want_status));                                                        \
		CHECK_STR(b_.p ? b_.p : "", (want_body));                                                \
		buf_release(&b_);                                                                        \
	} while (0)

TEST(not_ready_is_503)
{
	setup();
	CHECK_REQ("/api/v1/query?query=up", NULL, 503, "Service Unavailable");
	teardown();
}

TEST(instant_and_range_queries)
{
	setup();
	api_set_ready(F.api, true);
	CHECK_REQ("/api/v1/query?query=up&time=600", NULL, 200,
		  "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
		  "{\"metric\":{\"__name__\":\"up\",\"job\":\"api\"},\"value\":[600,\"1\"]},"
		  "{\"metric\":{\"__name__\":\"up\",\"job\":\"db\"},\"value\":[600,\"1\"]}]}}");
	/* POST form, as promtool sends it; a scalar; fractional times. */
	CHECK_REQ("/api/v1/query", "query=1%2B1&time=600.5", 200,
		  "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[600.5,\"2\"]}}");
	CHECK_REQ("/api/v1/query_range", "query=sum(up)&start=0&end=30&step=15", 200,
		  "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":"
		  "[[0,\"2\"],[15,\"2\"],[30,\"2\"]]}]}}");
	CHECK_REQ("/api/v1/query?query=rate(req_total%5B1m%5D)&time=600", NULL, 200,
		  "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
		  "{\"metric\":{\"job\":\"api\"},\"value\":[600,\"1\"]}]}}");
	teardown();
}

/* Compare two matrix responses point by point ("],[" separated, same timestamps required): returns
 * the number of points whose values differ, or -1 if the shapes differ or a value is off by more than
 * 25% (a fake counter reset, a doubled series or a missing replica would be far off or change
 * the shape). */
static int count_point_diffs(const char *a, const char *b)
{
	int diffs = 0;
	for (;;) {
		const char *ea = strstr(a, "],["), *eb = strstr(b, "],[");
		if (!ea != !eb)
			return -1;
		size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
		if (la != lb || memcmp(a, b, la) != 0) {
			const char *qa = strchr(a, ',') , *qb = strchr(b, ',');
			double va, vb;
			if (!qa || !qb || qa - a != qb - b || memcmp(a, b, (size_t)(qa - a)) != 0 ||
			    sscanf(qa, ",\"%lf", &va) != 1 || sscanf(qb, ",\"%lf", &vb) != 1) {
				return -1;
			}
			double m = fabs(va) > fabs(vb) ? fabs(va) : fabs(vb);
			if (fabs(va - vb) > 0.25 * m)
				return -1;
			diffs++;
		}
		if (!ea)
			return diffs;
		a = ea + 3;
		b = eb + 3;
	}
}

TEST(dedup_equals_gap_free_store)
{
	setup();
	api_set_ready(F.api, true);
	const char *exprs[] = {"ha_total", "rate(ha_total%5B2m%5D)", "increase(ha_total%5B5m%5D)",
			       "sum%20by%20(job)%20(rate(ha_total%5B2m%5D))"};
	for (size_t i = 0; i < ARRAY_LEN(exprs); i++) {
		char p1[512], p2[512];
		snprintf(p1, sizeof p1,
			 "/api/v1/query_range?query=%s&start=0&end=3600&step=30"
			 "&storeMatch[]=%%7B__address__%%3D~%%22mem-%%5B12%%5D:1%%22%%7D",
			 exprs[i]);
		snprintf(p2, sizeof p2,
			 "/api/v1/query_range?query=%s&start=0&end=3600&step=30"
			 "&storeMatch[]=%%7B__address__%%3D%%22mem-3:1%%22%%7D",
			 exprs[i]);
		buf_t a = BUF_INIT, b = BUF_INIT;
		CHECK_EQ_INT(req(p1, NULL, &a), 200);
		CHECK_EQ_INT(req(p2, NULL, &b), 200);
		CHECK(a.n > 100);
		/* The penalty algorithm (thanos.md 6.4) skips the samples of the new replica that come
		 * sooner than the penalty after a switch, leaving a 45s hole at each of the two switches:
		 * points whose lookback or rate window edge falls in a hole differ (extrapolation), at
		 * most 4 per switch; every other point is exact. */
		int diffs = count_point_diffs(a.p, b.p);
		fprintf(stderr, "dedup %s: %d of 121 points differ from the gap-free store\n", exprs[i], diffs);
		if (diffs < 0 || diffs > 8)
			TEST_FAILF("dedup of %s differs (%d points):\n%s\nvs gap-free\n%s", exprs[i], diffs, a.p, b.p);
		buf_release(&a);
		buf_release(&b);
	}
	/* Without dedup both replicas show. */
	buf_t c = BUF_INIT;
	CHECK_EQ_INT(req("/api/v1/query?query=ha_total&time=300&dedup=false"
			 "&storeMatch[]=%7B__address__%3D~%22mem-%5B12%5D:1%22%7D",
			 NULL, &c),
		     200);
	CHECK(strstr(c.p, "\"replica\":\"a\"") && strstr(c.p, "\"replica\":\"b\""));
	/* replicaLabels[] overrides the flag: deduplicating by a label nobody has keeps both. */
	CHECK_EQ_INT(req("/api/v1/query?query=ha_total&time=300&replicaLabels[]=zone"
			 "&storeMatch[]=%7B__address__%3D~%22mem-%5B12%5D:1%22%7D",
			 NULL, &c),
		     200);
	CHECK(strstr(c.p, "\"replica\":\"a\"") && strstr(c.p, "\"replica\":\"b\""));
	buf_release(&c);
	teardown();
}

TEST(partial_response)
{
	setup();
	api_set_ready(F.api, true);
	inmem_store_set_fail(F.st[4], 0);
	buf_t b = BUF_INIT;
	CHECK_EQ_INT(req("/api/v1/query?query=up&time=600", NULL, &b), 200);
	CHECK(strstr(b.p, "\"job\":\"api\"") != NULL);
	CHECK(strstr(b.p, "\"job\":\"db\"") == NULL);
	CHECK(strstr(b.p, "\"warnings\":[\"store mem-4:1: ") != NULL);
	CHECK_EQ_INT(req("/api/v1/query?query=up&time=600&partial_response=false", NULL, &b), 500);
	CHECK(strstr(b.p, "\"status\":\"error\",\"errorType\":\"internal\"") != NULL);
	CHECK(strstr(b.p, "mem-4:1") != NULL);
	CHECK_EQ_INT(req("/api/v1/labels?partial_response=0", NULL, &b), 500);
	CHECK(strstr(b.p, "mem-4:1") != NULL);
	CHECK_EQ_INT(req("/api/v1/series?match[]=up", NULL, &b), 200);
	CHECK(strstr(b.p, "\"warnings\":[\"store mem-4:1: ") != NULL);
	buf_release(&b);
	teardown();
}

TEST(metadata_endpoints)
{
	setup();
	api_set_ready(F.api, true);
	CHECK_REQ("/api/v1/series?match[]=up&start=0&end=100", NULL, 200,
		  "{\"status\":\"success\",\"data\":[{\"__name__\":\"up\",\"job\":\"api\"},"
		  "{\"__name__\":\"up\",\"job\":\"db\"}]}");
	/* Two match[] sets: union, sorted; dedup strips the replica label. */
	CHECK_REQ("/api/v1/series", "match[]=up%7Bjob%3D%22db%22%7D&match[]=ha_total", 200,
		  "{\"status\":\"success\",\"data\":[{\"__name__\":\"ha_total\",\"job\":\"ha\"},"
		  "{\"__name__\":\"up\",\"job\":\"db\"}]}");
	CHECK_REQ("/api/v1/labels", NULL, 200, "{\"status\":\"success\",\"data\":[\"__name__\",\"job\",\"replica\"]}");
	CHECK_REQ("/api/v1/labels?match[]=up", NULL, 200, "{\"status\":\"success\",\"data\":[\"__name__\",\"job\"]}");
	CHECK_REQ("/api/v1/label/job/values", NULL, 200, "{\"status\":\"success\",\"data\":[\"api\",\"db\",\"ha\"]}");
	CHECK_REQ("/api/v1/label/__name__/values?match[]=%7Bjob%3D%22api%22%7D", NULL, 200,
		  "{\"status\":\"success\",\"data\":[\"req_total\",\"up\"]}");
	CHECK_REQ("/api/v1/label/nope/values", NULL, 200, "{\"status\":\"success\",\"data\":[]}");
	CHECK_REQ("/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(job)", NULL, 200,
		  "{\"status\":\"success\",\"data\":\"sum by (job) (rate(x[5m]))\"}");
	CHECK_REQ("/api/v1/status/flags", NULL, 200,
		  "{\"status\":\"success\",\"data\":{\"endpoint\":\"mem-0:1\",\"query.timeout\":\"2m\"}}");
	CHECK_REQ("/api/v1/metadata", NULL, 200,
		  "{\"status\":\"success\",\"data\":{},\"warnings\":[\"metadata is not available: the configured "
		  "stores do not provide metric metadata yet\"]}");
	buf_t b = BUF_INIT;
	CHECK_EQ_INT(req("/api/v1/stores", NULL, &b), 200);
	CHECK(strstr(b.p, "{\"name\":\"mem-1:1\",\"lastCheck\":\"") != NULL);
	CHECK(strstr(b.p, "\"lastError\":null,\"labelSets\":[{\"replica\":\"a\"}],\"minTime\":0,\"maxTime\":3600000}") !=
	      NULL);
	CHECK_EQ_INT(req("/api/v1/status/buildinfo", NULL, &b), 200);
	CHECK(strstr(b.p, "\"version\":\"" STRATA_VERSION "\"") != NULL);
	buf_release(&b);
	teardown();
}

/* Endpoints grouped by the component type their Info named (types and names sorted); one that named none
 * is listed as "unknown-store-api", as Thanos does. */
TEST(stores_grouped_by_component_type)
{
	setup();
	api_set_ready(F.api, true);
	buf_t b = BUF_INIT;
	CHECK_EQ_INT(req("/api/v1/stores", NULL, &b), 200);
	/* Drop the lastCheck values (wall clock) and compare the rest exactly. */
	buf_t s = BUF_INIT;
	for (const char *p = b.p; *p;) {
		const char *lc = strstr(p, "\"lastCheck\":\"");
		if (!lc) {
			buf_puts(&s, p);
			break;
		}
		lc += strlen("\"lastCheck\":\"");
		buf_append(&s, p, (size_t)(lc - p));
		p = strchr(lc, '"');
		CHECK(p != NULL);
	}
#define EP(name, sets, maxt)                                                                              \
	"{\"name\":\"" name "\",\"lastCheck\":\"\",\"lastError\":null,\"labelSets\":[" sets "],\"minTime\":0,"    \
	"\"maxTime\":" maxt "}"
	CHECK_STR(s.p, "{\"status\":\"success\",\"data\":{"
		       "\"query\":[" EP("mem-3:1", "", "3600000") "],"
		       "\"sidecar\":[" EP("mem-0:1", "", "3600000") "],"
		       "\"store\":[" EP("mem-1:1", "{\"replica\":\"a\"}", "3600000") ","
					EP("mem-2:1", "{\"replica\":\"b\"}", "3600000") "],"
		       "\"unknown-store-api\":[" EP("mem-4:1", "", "3600000") "]}}");
#undef EP
	buf_release(&s);
	buf_release(&b);
	teardown();
}

TEST(errors_match_prometheus)
{
	setup();
	api_set_ready(F.api, true);
	CHECK_REQ("/api/v1/query?query=sum(up", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter \\\"query\\\": 1:7: "
		  "parse error: unclosed left parenthesis\"}");
	CHECK_REQ("/api/v1/query?query=up&time=abc", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter \\\"time\\\": Invalid "
		  "time value for 'time': cannot parse \\\"abc\\\" to a valid timestamp\"}");
	CHECK_REQ("/api/v1/query_range?query=up&start=0&end=100000&step=1", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"exceeded maximum resolution of 11,000 "
		  "points per timeseries. Try decreasing the query resolution (?step=XX)\"}");
	CHECK_REQ("/api/v1/query_range?query=up&start=0&end=100&step=0", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter \\\"step\\\": zero or "
		  "negative query resolution step widths are not accepted. Try a positive integer\"}");
	CHECK_REQ("/api/v1/query_range?query=up&start=10&end=5&step=1", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter \\\"end\\\": end "
		  "timestamp must not be before start time\"}");
	CHECK_REQ("/api/v1/query_range?query=up%5B5m%5D&start=0&end=5&step=1", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid "
		  "expression type \\\"range vector\\\" for range query, must be Scalar or instant Vector\"}");
	CHECK_REQ("/api/v1/label/1bad/values", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid label name: \\\"1bad\\\"\"}");
	CHECK_REQ("/api/v1/series", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"no match[] parameter provided\"}");
	CHECK_REQ("/api/v1/series?match[]=%7Bfoo%3D%22%22%7D", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter \\\"match[]\\\": "
		  "match[] must contain at least one non-empty matcher\"}");
	CHECK_REQ("/api/v1/query?query=up&dedup=maybe", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"'dedup' parameter: strconv.ParseBool: "
		  "parsing \\\"maybe\\\": invalid syntax\"}");
	CHECK_REQ("/api/v1/query?query=up&max_source_resolution=-5m", NULL, 400,
		  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"'max_source_resolution' parameter: "
		  "cannot parse \\\"-5m\\\" to a valid duration\"}");
	/* Runtime errors are execution (422). */
	buf_t b = BUF_INIT;
	CHECK_EQ_INT(req("/api/v1/query?query=up%20%2B%20on()%20group_left%20up&time=600", NULL, &b), 422);
	CHECK(strstr(b.p, "\"errorType\":\"execution\"") != NULL);
	/* Method not allowed for label values POST. */
	CHECK_EQ_INT(req("/api/v1/label/job/values", "x=1", &b), 405);
	buf_release(&b);
	teardown();
}

TEST(timeout_and_limits)
{
	setup();
	api_set_ready(F.api, true);
	buf_t b = BUF_INIT;
	CHECK_EQ_INT(req("/api/v1/query?query=up&timeout=x", NULL, &b), 400);
	CHECK_STR(b.p, "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter \\\"timeout\\\": "
		       "cannot parse \\\"x\\\" to a valid duration\"}");
	buf_release(&b);
	teardown();
}

TEST(memory_of_all_running_queries)
{
	/* A budget for all running queries smaller than the per-query default: a range query holding more
	 * than it fails as Prometheus's execution errors do, and gives its memory back (small queries
	 * still run afterwards). */
	arena_budget_pool_t pool = {.limit = 256 << 10};
	setup_mem_pool = &pool;
	setup();
	setup_mem_pool = NULL;
	api_set_ready(F.api, true);
	buf_t b = BUF_INIT;
	CHECK_EQ_INT(req("/api/v1/query_range?query=up&start=0&end=3600&step=0.4", NULL, &b), 422);
	CHECK_STR(b.p, "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"query processing would "
		       "exceed the memory budget of all running queries of 262144 bytes\"}");
	for (int i = 0; i < 20; i++)
		CHECK_EQ_INT(req("/api/v1/query?query=count(up)&time=600", NULL, &b), 200);
	/* The worker writes the answer itself: the request's arena goes (on the loop) just after. */
	for (int i = 0; i < 500 && atomic_load(&pool.used) != 0; i++)
		usleep(10000);
	CHECK_EQ_INT((long)atomic_load(&pool.used), 0);
	buf_release(&b);
	teardown();
}

/* A query that keeps a worker busy for a second or more: a quantile over 1.8M subquery points at each
 * of 801 steps, for 2 series. (The engine polls deadline and cancel flag only every 4096 steps of a
 * range function, so this query is not interruptible: it is only used to occupy the query slot.) */
#define SLOW_QUERY "/api/v1/query_range?query=quantile_over_time(0.5,up%5B30m:1ms%5D)&start=0&end=800&step=1"

typedef struct bg_req {
	pthread_t th;
	const char *path;
	long status;
	buf_t body;
} bg_req_t;

static void *bg_main(void *arg)
{
	bg_req_t *b = arg;
	char url[4096];
	snprintf(url, sizeof url, "%s%s", F.base, b->path);
	httpc_req_t r = {.url = url, .timeout_ms = 60000};
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0};
	b->status = httpc_do(&r, &resp, &err) ? -1 : resp.status;
	buf_init(&b->body);
	buf_append(&b->body, resp.body.p, resp.body.n);
	buf_putc(&b->body, 0);
	httpc_resp_release(&resp);
	return NULL;
}

TEST(concurrency_limit_queue_and_timeouts)
{
	setup_max_conc = 1;
	setup();
	setup_max_conc = 2;
	api_set_ready(F.api, true);
	/* The slow query takes the only slot; a query with a 300ms budget waits in the queue behind it
	 * and its budget runs out there; one with the default budget waits and succeeds. */
	bg_req_t slow = {.path = SLOW_QUERY};
	bg_req_t queued = {.path = "/api/v1/query?query=up&time=600&timeout=300ms"};
	bg_req_t patient = {.path = "/api/v1/query?query=count(up)&time=600"};
	uint64_t t0 = clock_mono_ms();
	pthread_create(&slow.th, NULL, bg_main, &slow);
	usleep(100000);
	pthread_create(&queued.th, NULL, bg_main, &queued);
	pthread_create(&patient.th, NULL, bg_main, &patient);
	usleep(100000);
	CHECK_EQ_INT(http_server_inflight(F.srv), 3);
	pthread_join(slow.th, NULL);
	pthread_join(queued.th, NULL);
	pthread_join(patient.th, NULL);
	CHECK(clock_mono_ms() - t0 > 400); /* or the slow query was not slow and nothing was queued */
	CHECK_EQ_INT(slow.status, 200);
	CHECK_EQ_INT(queued.status, 503);
	CHECK_STR(queued.body.p, "{\"status\":\"error\",\"errorType\":\"timeout\",\"error\":\"query timed out in "
				 "query queue\"}");
	CHECK_EQ_INT(patient.status, 200);
	CHECK_STR(patient.body.p, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
				  "[{\"metric\":{},\"value\":[600,\"2\"]}]}}");
	buf_release(&slow.body);
	buf_release(&queued.body);
	buf_release(&patient.body);
	teardown();
}

/* A raw HTTP/1.1 exchange (the libcurl client hides response headers and would decode the body):
 * sends GET path with the given Accept-Encoding (NULL: none), reads until the server closes. Returns
 * the status; head gets the header block, body the raw body bytes. */
static long raw_get(const char *path, const char *accept, buf_t *head, buf_t *body)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_server_port(F.srv))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	buf_t rq = BUF_INIT;
	buf_printf(&rq, "GET %s HTTP/1.1\r\nHost: test\r\n", path);
	if (accept)
		buf_printf(&rq, "Accept-Encoding: %s\r\n", accept);
	buf_puts(&rq, "Connection: close\r\n\r\n");
	CHECK(write(fd, rq.p, rq.n) == (ssize_t)rq.n);
	buf_release(&rq);
	buf_t all = BUF_INIT;
	for (;;) {
		buf_reserve(&all, 65536);
		ssize_t k = read(fd, all.p + all.n, all.cap - all.n - 1);
		if (k <= 0)
			break;
		all.n += (size_t)k;
		all.p[all.n] = 0;
	}
	close(fd);
	const char *sep = strstr(all.p, "\r\n\r\n");
	long st = -1;
	if (sep) {
		buf_append(head, all.p, (size_t)(sep - all.p) + 2);
		buf_append(body, sep + 4, all.n - (size_t)(sep + 4 - all.p));
		sscanf(all.p, "HTTP/1.1 %ld", &st);
	}
	buf_release(&all);
	return st;
}

static bool has_header(const buf_t *head, const char *line)
{
	char want[256];
	snprintf(want, sizeof want, "\r\n%s\r\n", line);
	return strcasestr(head->p, want) != NULL;
}

static void inflate_into(const buf_t *z, buf_t *out)
{
	z_stream zs = {0};
	CHECK(inflateInit2(&zs, 15 + 32) == Z_OK);
	zs.next_in = (Bytef *)z->p;
	zs.avail_in = (uInt)z->n;
	int rc;
	do {
		buf_reserve(out, 65536);
		zs.next_out = (Bytef *)out->p + out->n;
		uInt room = (uInt)(out->cap - out->n - 1);
		zs.avail_out = room;
		rc = inflate(&zs, Z_NO_FLUSH);
		out->n += room - zs.avail_out;
		out->p[out->n] = 0;
	} while (rc == Z_OK);
	inflateEnd(&zs);
	CHECK_EQ_INT(rc, Z_STREAM_END);
}

#define BIG_RANGE "/api/v1/query_range?query=up&start=0&end=3600&step=15"

TEST(responses_compressed_when_accepted)
{
	setup();
	api_set_ready(F.api, true);
	buf_t plain = BUF_INIT, h = BUF_INIT, b = BUF_INIT, d = BUF_INIT;
	CHECK_EQ_INT(req(BIG_RANGE, NULL, &plain), 200);
	CHECK(plain.n >= API_COMPRESS_MIN_BYTES);
	/* gzip, deflate (zlib stream), chosen as the header allows; the body inflates to exactly the
	 * uncompressed response. */
	static const struct {
		const char *accept, *coding;
	} cases[] = {{"gzip", "gzip"}, {"deflate", "deflate"}, {"gzip, deflate, br", "gzip"},
		     {"gzip;q=0.2, deflate", "deflate"}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_reset(&h), buf_reset(&b), buf_reset(&d);
		CHECK_EQ_INT(raw_get(BIG_RANGE, cases[i].accept, &h, &b), 200);
		char want[64];
		snprintf(want, sizeof want, "Content-Encoding: %s", cases[i].coding);
		if (!has_header(&h, want))
			TEST_FAILF("%s: no \"%s\" in\n%s", cases[i].accept, want, h.p);
		CHECK(has_header(&h, "Vary: Accept-Encoding"));
		CHECK(has_header(&h, "Content-Type: application/json"));
		CHECK(b.n < plain.n / 4);
		inflate_into(&b, &d);
		CHECK_EQ_U64(d.n, plain.n);
		CHECK(memcmp(d.p, plain.p, plain.n) == 0);
	}
	/* Not accepted, refused with q=0, or no header: identity, still with Vary. */
	const char *ident[] = {NULL, "identity", "gzip;q=0", "br"};
	for (size_t i = 0; i < sizeof ident / sizeof ident[0]; i++) {
		buf_reset(&h), buf_reset(&b);
		CHECK_EQ_INT(raw_get(BIG_RANGE, ident[i], &h, &b), 200);
		CHECK(!strcasestr(h.p, "Content-Encoding"));
		CHECK(has_header(&h, "Vary: Accept-Encoding"));
		CHECK_EQ_U64(b.n, plain.n);
		CHECK(memcmp(b.p, plain.p, plain.n) == 0);
	}
	/* Small responses (and errors) stay uncompressed. */
	buf_reset(&h), buf_reset(&b);
	CHECK_EQ_INT(raw_get("/api/v1/query?query=up&time=600", "gzip", &h, &b), 200);
	CHECK(!strcasestr(h.p, "Content-Encoding"));
	CHECK(b.n < API_COMPRESS_MIN_BYTES && b.p[0] == '{');
	buf_reset(&h), buf_reset(&b);
	CHECK_EQ_INT(raw_get("/api/v1/query?query=up(", "gzip", &h, &b), 400);
	CHECK(!strcasestr(h.p, "Content-Encoding") && b.p[0] == '{');
	buf_release(&plain), buf_release(&h), buf_release(&b), buf_release(&d);
	teardown();
}

/* stats: Prometheus 2.42's data.stats shape (query_api.py compares it with a real 2.42); the peak is the
 * engine's (pinned by its own tests), timings are non-negative seconds and the parts add up. */
TEST(query_stats)
{
	setup();
	api_set_ready(F.api, true);
	buf_t b = BUF_INIT;
	CHECK_EQ_INT(req("/api/v1/query_range?query=sum(up)&start=0&end=30&step=15&stats=1", NULL, &b), 200);
	const char *st = strstr(b.p, ",\"stats\":{\"timings\":{\"evalTotalTime\":");
	CHECK(st != NULL);
	CHECK(strncmp(b.p, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},"
			   "\"values\":[[0,\"2\"],[15,\"2\"],[30,\"2\"]]}],\"stats\":",
		      (size_t)(st - b.p) + 9) == 0);
	double ev, sort, prep, inner, queue, total;
	long long tot_samples, peak;
	int n = sscanf(st, ",\"stats\":{\"timings\":{\"evalTotalTime\":%lf,\"resultSortTime\":%lf,"
			   "\"queryPreparationTime\":%lf,\"innerEvalTime\":%lf,\"execQueueTime\":%lf,"
			   "\"execTotalTime\":%lf},\"samples\":{\"totalQueryableSamples\":%lld,\"peakSamples\":%lld}}}}",
		       &ev, &sort, &prep, &inner, &queue, &total, &tot_samples, &peak);
	if (n != 8)
		TEST_FAILF("stats shape (%d fields): %s", n, st);
	CHECK(ev > 0 && ev < 5 && sort == 0 && prep > 0 && prep <= ev && inner >= 0 && queue >= 0);
	CHECK(fabs(prep + inner - ev) < 1e-6 && fabs(queue + ev - total) < 1e-6);
	CHECK(peak > 0);
	CHECK_EQ_INT(tot_samples, 6); /* two up series, three steps */
	/* stats=all: the samples read per step too (2.42 with promql-per-step-stats); instant queries too. */
	CHECK_EQ_INT(req("/api/v1/query?query=up&time=600&stats=all", NULL, &b), 200);
	CHECK(strstr(b.p, "]}],\"stats\":{\"timings\":{\"evalTotalTime\":") != NULL);
	CHECK(strstr(b.p, ",\"samples\":{\"totalQueryableSamplesPerStep\":[[600,2]],\"totalQueryableSamples\":2,"
			  "\"peakSamples\":2}}") != NULL);
	CHECK_EQ_INT(req("/api/v1/query_range?query=up&start=0&end=30.5&step=15&stats=all", NULL, &b), 200);
	CHECK(strstr(b.p, ",\"samples\":{\"totalQueryableSamplesPerStep\":[[0,2],[15,2],[30,2]],"
			  "\"totalQueryableSamples\":6,\"peakSamples\":6}}") != NULL);
	/* Without the parameter, or empty: no stats. Errors never carry stats. */
	CHECK_EQ_INT(req("/api/v1/query?query=up&time=600&stats=", NULL, &b), 200);
	CHECK(strstr(b.p, "stats") == NULL);
	CHECK_EQ_INT(req("/api/v1/query", "query=up&time=600", &b), 200);
	CHECK(strstr(b.p, "stats") == NULL);
	CHECK_EQ_INT(req("/api/v1/query?query=up%2B&stats=1", NULL, &b), 400);
	CHECK(strstr(b.p, "stats") == NULL);
	buf_release(&b);
	teardown();
}

TEST_MAIN()
