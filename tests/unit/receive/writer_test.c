#include <stdlib.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "receive/limits.h"
#include "receive/multitsdb.h"
#include "receive/writer.h"
#include "test.h"

static void tmpdir(char *out)
{
	snprintf(out, 4096, "/tmp/strata-receive-test-XXXXXX");
	if (!mkdtemp(out))
		die("mkdtemp");
}

static void rmrf(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* One series per spec "name=value,...;t;v" (labels as given: unsorted stays unsorted). */
typedef struct req {
	wr_request_t r;
	wr_series_t s[8];
	label_t l[8][8];
	int64_t t[8][4];
	double v[8][4];
} req_t;

static void add(req_t *q, const char *labels, int64_t t0, int n)
{
	wr_series_t *s = &q->s[q->r.nseries];
	size_t k = 0;
	char *dup = xstrdup(labels), *save = NULL;
	for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		*eq = 0;
		q->l[q->r.nseries][k++] = (label_t){str_c(xstrdup(tok)), str_c(xstrdup(eq + 1))};
	}
	free(dup);
	for (int i = 0; i < n; i++) {
		q->t[q->r.nseries][i] = t0 + i * 1000;
		q->v[q->r.nseries][i] = i;
	}
	*s = (wr_series_t){.ls = {q->l[q->r.nseries], k},
	                   .t = q->t[q->r.nseries],
	                   .v = q->v[q->r.nseries],
	                   .n = (uint32_t)n};
	q->r.series = q->s;
	q->r.nseries++;
	q->r.nsamples += (size_t)n;
}

static void req_free(req_t *q)
{
	for (size_t i = 0; i < q->r.nseries; i++)
		for (size_t k = 0; k < q->s[i].ls.n; k++) {
			free((char *)q->s[i].ls.v[k].name.p);
			free((char *)q->s[i].ls.v[k].value.p);
		}
}

static int write1(mtsdb_t *mt, const char *tenant, req_t *q, int64_t limit, char *msg, size_t msgn)
{
	arena_t a;
	arena_init(&a, 0);
	rcv_write_result_t res;
	rcv_write_result_init(&res);
	rcv_write(mt, str_c(tenant), &q->r, NULL, limit, &a, &res);
	snprintf(msg, msgn, "%s", res.msg.p);
	int st = res.status;
	rcv_write_result_release(&res);
	arena_release(&a);
	return st;
}

TEST(writer_status_codes)
{
	char dir[4096], msg[2048];
	tmpdir(dir);
	labels_t ext = {NULL, 0};
	mtsdb_opts_t o = {.dir = dir, .ext = &ext, .tenant_label = "tenant_id"};
	mtsdb_t *mt = mtsdb_new(&o);
	int64_t t = 1700000000000ll;
	req_t q = {0};
	add(&q, "__name__=up,job=a", t, 3);
	add(&q, "__name__=up,job=b", t, 3);
	int st = write1(mt, "t1", &q, 0, msg, sizeof msg);
	if (st != 200)
		TEST_FAILF("status %d: %s", st, msg);
	/* the same again: duplicates of stored samples are fine */
	CHECK_EQ_INT(write1(mt, "t1", &q, 0, msg, sizeof msg), 200);
	req_free(&q);
	/* out of order in one series: 409 naming it; the other series goes in */
	req_t q2 = {0};
	add(&q2, "__name__=up,job=a", t - 5000, 1);
	add(&q2, "__name__=up,job=c", t, 2);
	CHECK_EQ_INT(write1(mt, "t1", &q2, 0, msg, sizeof msg), 409);
	CHECK(strstr(msg, "out of order sample") && strstr(msg, "job=\"a\""));
	req_free(&q2);
	/* bad labels: 400 */
	req_t q3 = {0};
	add(&q3, "job=x,__name__=up", t, 1);
	add(&q3, "__name__=up,job=d", t, 1);
	CHECK_EQ_INT(write1(mt, "t1", &q3, 0, msg, sizeof msg), 400);
	CHECK(strstr(msg, "not sorted") != NULL);
	req_free(&q3);
	/* head series limit: 429 for new series, old ones still go in */
	req_t q4 = {0};
	add(&q4, "__name__=up,job=a", t + 10000, 1);
	add(&q4, "__name__=up,job=new", t + 10000, 1);
	CHECK_EQ_INT(write1(mt, "t1", &q4, 4, msg, sizeof msg), 429);
	CHECK(strstr(msg, "head series limit") != NULL);
	req_free(&q4);
	/* tenants are separate: t2 has its own head */
	req_t q5 = {0};
	add(&q5, "__name__=up,job=a", t - 5000, 1);
	CHECK_EQ_INT(write1(mt, "t2", &q5, 0, msg, sizeof msg), 200);
	req_free(&q5);
	CHECK_EQ_INT(mtsdb_num_tenants(mt), 2);
	/* StoreAPI: one label set per tenant, tenant_id on every series */
	arena_t a;
	arena_init(&a, 0);
	store_info_t info;
	err_t err = {0};
	CHECK_EQ_INT(store_info(mtsdb_store(mt), &a, &info, &err), 0);
	CHECK_EQ_INT(info.nlabel_sets, 2);
	matcher_t m;
	matcher_init(&m, MATCH_EQ, STR("tenant_id"), STR("t2"), &err);
	store_series_req_t sr = {.mint = 0, .maxt = INT64_MAX, .ms = &m, .nms = 1};
	series_set_t *set;
	CHECK_EQ_INT(store_series(mtsdb_store(mt), &a, &sr, &set, &err), 0);
	int n = 0;
	while (series_set_next(set, &err) == 1) {
		bool f;
		CHECK_SLICE(labels_get(series_set_labels(set), STR("tenant_id"), &f), "t2");
		n++;
	}
	CHECK_EQ_INT(n, 1);
	series_set_close(set);
	matcher_release(&m);
	arena_release(&a);
	/* invalid tenant names never reach the disk */
	CHECK(!mtsdb_tenant_valid(STR("../x")));
	CHECK(!mtsdb_tenant_valid(STR("a/b")));
	CHECK(!mtsdb_tenant_valid(STR("..")));
	CHECK(!mtsdb_tenant_valid(STR("")));
	CHECK(mtsdb_tenant_valid(STR("team-a.prod_1")));
	CHECK_EQ_INT(mtsdb_close(mt, true, &err), 0);
	/* reopened: both tenants come back, their data in blocks (flushed) */
	mt = mtsdb_new(&o);
	CHECK_EQ_INT(mtsdb_open_existing(mt, &err), 0);
	CHECK_EQ_INT(mtsdb_num_tenants(mt), 2);
	CHECK_EQ_INT(mtsdb_close(mt, false, &err), 0);
	rmrf(dir);
}

TEST(limits_config)
{
	const char *y =
	    "write:\n"
	    "  global:\n    max_concurrency: 7\n    meta_monitoring_url: http://x\n"
	    "  default:\n    request: {size_bytes_limit: 1KiB, series_limit: 100, samples_limit: 1000}\n"
	    "    head_series_limit: 50\n"
	    "  tenants:\n    big:\n      request: {series_limit: 0}\n      head_series_limit: 5000\n";
	rcv_limits_t *l;
	err_t err = {0};
	CHECK_EQ_INT(rcv_limits_parse(y, strlen(y), "limits.yaml", &l, &err), 0);
	CHECK_EQ_INT(rcv_limits_max_concurrency(l), 7);
	rcv_tenant_limits_t t;
	rcv_limits_for(l, STR("other"), &t);
	CHECK_EQ_INT(t.size_bytes, 1024);
	CHECK_EQ_INT(t.series, 100);
	CHECK_EQ_INT(t.samples, 1000);
	CHECK_EQ_INT(t.head_series, 50);
	rcv_limits_for(l, STR("big"), &t);
	CHECK_EQ_INT(t.size_bytes, 1024); /* inherited */
	CHECK_EQ_INT(t.series, 0);        /* unlimited */
	CHECK_EQ_INT(t.head_series, 5000);
	rcv_limits_free(l);
	const char *bad[] = {"write: {global: {max_concurency: 1}}",
	                     "write: {default: {request: {series_limit: -1}}}", "read: {}",
	                     "write: {default: {request: {size_bytes_limit: lots}}}", "write: ["};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		l = NULL;
		if (rcv_limits_parse(bad[i], strlen(bad[i]), "limits.yaml", &l, &err) != ERR_INVALID)
			TEST_FAILF("accepted: %s", bad[i]);
		CHECK(strstr(err.msg, "limits.yaml") != NULL);
	}
	/* hot reload from a file: a bad edit keeps the old config */
	char dir[4096], path[4200];
	tmpdir(dir);
	snprintf(path, sizeof path, "%s/limits.yaml", dir);
	FILE *f = fopen(path, "w");
	fputs("write: {default: {head_series_limit: 10}}\n", f);
	fclose(f);
	rcv_limiter_t *lm;
	CHECK_EQ_INT(rcv_limiter_new(&lm, NULL, path, &err), 0);
	rcv_limiter_get(lm, STR("x"), &t);
	CHECK_EQ_INT(t.head_series, 10);
	CHECK_EQ_INT(rcv_limiter_reload(lm, &err), 0);
	f = fopen(path, "w");
	fputs("write: {default: {head_series_limit: 20}}\n", f);
	fclose(f);
	CHECK_EQ_INT(rcv_limiter_reload(lm, &err), 1);
	rcv_limiter_get(lm, STR("x"), &t);
	CHECK_EQ_INT(t.head_series, 20);
	f = fopen(path, "w");
	fputs("write: {default: {head_series_limit: nope}}\n", f);
	fclose(f);
	CHECK(rcv_limiter_reload(lm, &err) < 0);
	rcv_limiter_get(lm, STR("x"), &t);
	CHECK_EQ_INT(t.head_series, 20);
	rcv_limiter_free(lm);
	rmrf(dir);
}

TEST_MAIN()
