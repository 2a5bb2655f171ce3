/*
 * endpoints_test — endpoint set: spec validation, dns+ resolution (localhost), file SD (JSON and
 * YAML, globs, reload on change, bad files), Info caching and failure, snapshots with storeMatch
 * filters, the queryable adapter's warnings over a snapshot, and redialling an endpoint (a changed
 * client config) while a snapshot still uses its old store.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

#include "base/alloc.h"
#include "query/endpoints.h"
#include "store/inmem.h"
#include "query/queryable.h"

typedef struct dialer {
	int dials;
	inmem_store_t *last;
	bool fail;
} dialer_t;

/* Every address gets an in-memory store with external label addr=<address> and one series. */
static store_t *dial(const char *addr, void *arg, err_t *err)
{
	dialer_t *d = arg;
	d->dials++;
	if (d->fail || strstr(addr, "down")) {
		err_set(err, ERR_UNAVAILABLE, "connection refused");
		return NULL;
	}
	label_t el = {STR("addr"), str_c(addr)};
	labels_t ext = {&el, 1};
	inmem_store_t *s = inmem_store_new(addr, &ext);
	label_t lv[] = {{STR("__name__"), STR("up")}};
	labels_t ls = {lv, 1};
	int64_t t[] = {1000, 2000};
	double v[] = {1, 1};
	inmem_store_add(s, &ls, t, v, 2, err);
	d->last = s;
	return inmem_store_base(s);
}

static size_t status(endpoint_set_t *es, arena_t *a, endpoint_status_t **st)
{
	arena_reset(a);
	return endpoint_set_status(es, a, st);
}

TEST(spec_validation)
{
	dialer_t d = {0};
	err_t err = {0};
	endpoint_set_t *es;
	const char *bad[] = {"nohost", "dns+localhost", "foo+bar:1", "host:", "dns+:80", "dnssrv+", "h:1x"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		endpoint_set_config_t c = {.specs = &bad[i], .nspecs = 1, .dial = dial, .dial_arg = &d};
		CHECK(endpoint_set_new(&es, &c, &err) == ERR_INVALID);
		CHECK(strstr(err.msg, bad[i]) != NULL);
	}
	const char *good[] = {"127.0.0.1:10901", "[::1]:10901", "dns+localhost:10901", "dnssrv+_grpc._tcp.example",
			      "dnssrvnoa+_grpc._tcp.example"};
	endpoint_set_config_t c = {.specs = good, .nspecs = ARRAY_LEN(good), .dial = dial, .dial_arg = &d};
	CHECK(endpoint_set_new(&es, &c, &err) == 0);
	endpoint_set_free(es);
}

TEST(dns_and_info)
{
	dialer_t d = {0};
	err_t err = {0};
	endpoint_set_t *es;
	const char *specs[] = {"dns+localhost:19001", "127.0.0.1:19002", "down:1"};
	endpoint_set_config_t c = {.specs = specs, .nspecs = 3, .dial = dial, .dial_arg = &d};
	CHECK(endpoint_set_new(&es, &c, &err) == 0);
	endpoint_set_refresh(es);
	CHECK(endpoint_set_rounds(es) == 1);
	arena_t a;
	arena_init(&a, 0);
	endpoint_status_t *st;
	size_t n = status(es, &a, &st);
	bool saw_lo = false, saw_down = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(st[i].address, "127.0.0.1:19001") == 0 || strcmp(st[i].address, "[::1]:19001") == 0) {
			saw_lo = true;
			CHECK(st[i].last_error == NULL);
			CHECK(st[i].nlabel_sets == 1 && st[i].mint == 1000 && st[i].maxt == 2000);
		}
		if (strcmp(st[i].address, "down:1") == 0) {
			saw_down = true;
			CHECK(st[i].last_error && strstr(st[i].last_error, "connection refused"));
			CHECK(st[i].last_check_ms > 0);
		}
	}
	CHECK(saw_lo && saw_down);
	/* The down endpoint takes part in queries and surfaces as a warning naming it. */
	store_t *s = endpoint_set_store(es, &a, NULL, NULL, 0);
	store_queryable_t q;
	store_queryable_opts_t o = {.partial_response = true};
	store_queryable_init(&q, s, &a, &o);
	matcher_t m;
	CHECK(matcher_init(&m, MATCH_EQ, STR("__name__"), STR("up"), &err) == 0);
	series_set_t *set;
	CHECK(store_queryable_base(&q)->ops->select(store_queryable_base(&q), &a, &m, 1, 0, 5000, NULL, &set, &err) == 0);
	int k = 0;
	while (series_set_next(set, &err) > 0)
		k++;
	series_set_close(set);
	CHECK(k >= 2);
	const char *const *w;
	CHECK_EQ_INT(store_queryable_warnings(&q, &w), 1);
	CHECK(strstr(w[0], "down:1") != NULL);
	/* Abort mode: the same failure is an error naming the endpoint. */
	store_queryable_opts_t o2 = {.partial_response = false};
	store_queryable_init(&q, s, &a, &o2);
	int rc = store_queryable_base(&q)->ops->select(store_queryable_base(&q), &a, &m, 1, 0, 5000, NULL, &set, &err);
	CHECK(rc < 0 && strstr(err.msg, "down:1"));
	/* storeMatch[]: only 127.0.0.1:19002. */
	matcher_t f;
	CHECK(matcher_init(&f, MATCH_RE, STR("__address__"), STR(".*:19002"), &err) == 0);
	const matcher_t *sets[] = {&f};
	size_t nsets[] = {1};
	s = endpoint_set_store(es, &a, sets, nsets, 1);
	store_series_req_t req = {.mint = 0, .maxt = 5000, .ms = &m, .nms = 1, .abort_on_error = true};
	CHECK(store_series(s, &a, &req, &set, &err) == 0);
	CHECK(series_set_next(set, &err) == 1);
	bool found;
	CHECK(str_eq_c(labels_get(series_set_labels(set), STR("addr"), &found), "127.0.0.1:19002"));
	CHECK(series_set_next(set, &err) == 0);
	series_set_close(set);
	matcher_release(&f);
	matcher_release(&m);
	arena_release(&a);
	endpoint_set_free(es);
}

static void write_file(const char *path, const char *text)
{
	char tmp[512];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	fputs(text, f);
	fclose(f);
	rename(tmp, path);
}

TEST(file_sd_reload)
{
	char dir[] = "/tmp/strata-endpoints-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char j[256], y[256], bad[256], glob_pat[256];
	snprintf(j, sizeof j, "%s/a.json", dir);
	snprintf(y, sizeof y, "%s/b.yml", dir);
	snprintf(bad, sizeof bad, "%s/bad.json", dir);
	snprintf(glob_pat, sizeof glob_pat, "%s/*.json", dir);
	write_file(j, "[{\"targets\": [\"127.0.0.1:1\", \"127.0.0.1:2\"], \"labels\": {\"x\": \"y\"}}]");
	write_file(y, "- targets:\n  - 127.0.0.1:3\n");
	dialer_t d = {0};
	err_t err = {0};
	endpoint_set_t *es;
	const char *files[] = {glob_pat, y};
	endpoint_set_config_t c = {.sd_files = files, .nsd_files = 2, .dial = dial, .dial_arg = &d, .sd_interval_ms = 3600000};
	CHECK(endpoint_set_new(&es, &c, &err) == 0);
	endpoint_set_refresh(es);
	arena_t a;
	arena_init(&a, 0);
	endpoint_status_t *st;
	CHECK_EQ_INT(status(es, &a, &st), 3);
	CHECK_STR(st[0].address, "127.0.0.1:1");
	CHECK_STR(st[2].address, "127.0.0.1:3");
	/* A store used by a live snapshot survives its removal. */
	arena_t qa;
	arena_init(&qa, 0);
	store_t *snap = endpoint_set_store(es, &qa, NULL, NULL, 0);
	/* Change: drop :1, add :4 (mtime must move; sleep past the filesystem's resolution). */
	usleep(20000);
	write_file(j, "[{\"targets\": [\"127.0.0.1:2\", \"127.0.0.1:4\"]}]");
	endpoint_set_refresh(es);
	CHECK_EQ_INT(status(es, &a, &st), 3);
	CHECK_STR(st[0].address, "127.0.0.1:2");
	CHECK_STR(st[2].address, "127.0.0.1:4");
	matcher_t m;
	CHECK(matcher_init(&m, MATCH_EQ, STR("__name__"), STR("up"), &err) == 0);
	series_set_t *set;
	store_series_req_t req = {.mint = 0, .maxt = 5000, .ms = &m, .nms = 1};
	CHECK(store_series(snap, &qa, &req, &set, &err) == 0);
	int k = 0;
	while (series_set_next(set, &err) > 0)
		k++;
	CHECK_EQ_INT(k, 3); /* :1 :2 :3 as of the snapshot */
	series_set_close(set);
	arena_release(&qa);
	/* A broken file keeps its previous targets. */
	usleep(20000);
	write_file(j, "[{\"targets\": [\"127.0.0.1:9\"");
	endpoint_set_refresh(es);
	CHECK_EQ_INT(status(es, &a, &st), 3);
	CHECK_STR(st[2].address, "127.0.0.1:4");
	/* ... but at start-up it is an error naming the file and position. */
	write_file(bad, "[{\"targetz\": []}]");
	const char *files2[] = {bad};
	endpoint_set_t *es2;
	endpoint_set_config_t c2 = {.sd_files = files2, .nsd_files = 1, .dial = dial, .dial_arg = &d};
	CHECK(endpoint_set_new(&es2, &c2, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "bad.json:1:3: unknown field") != NULL);
	write_file(bad, "{\"targets\": [\"127.0.0.1:1\"]}");
	CHECK(endpoint_set_new(&es2, &c2, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "expected a list of target groups") != NULL);
	write_file(bad, "[{\"targets\": [\"dns+nohost\"]}]");
	CHECK(endpoint_set_new(&es2, &c2, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "missing port") != NULL);
	matcher_release(&m);
	arena_release(&a);
	endpoint_set_free(es);
	unlink(j);
	unlink(y);
	unlink(bad);
	rmdir(dir);
}

TEST(background_refresh)
{
	dialer_t d = {0};
	err_t err = {0};
	endpoint_set_t *es;
	const char *specs[] = {"127.0.0.1:5"};
	endpoint_set_config_t c = {.specs = specs, .nspecs = 1, .dial = dial, .dial_arg = &d, .info_interval_ms = 20};
	CHECK(endpoint_set_new(&es, &c, &err) == 0);
	CHECK(endpoint_set_start(es, &err) == 0);
	for (int i = 0; i < 500 && endpoint_set_rounds(es) < 3; i++)
		usleep(10000);
	CHECK(endpoint_set_rounds(es) >= 3);
	CHECK_EQ_INT(d.dials, 1); /* dialled once, Info polled every round */
	endpoint_set_free(es);
}

/* gen=<dial number> in the external labels: which dial a series came through. */
static store_t *dial_gen(const char *addr, void *arg, err_t *err)
{
	dialer_t *d = arg;
	d->dials++;
	char gen[16];
	snprintf(gen, sizeof gen, "%d", d->dials);
	label_t el[] = {{STR("addr"), str_c(addr)}, {STR("gen"), str_c(gen)}};
	labels_t ext = {el, 2};
	inmem_store_t *s = inmem_store_new(addr, &ext);
	label_t lv[] = {{STR("__name__"), STR("up")}};
	labels_t ls = {lv, 1};
	int64_t t[] = {1000, 2000};
	double v[] = {1, 1};
	inmem_store_add(s, &ls, t, v, 2, err);
	return inmem_store_base(s);
}

static bool match_port(const char *address, void *arg)
{
	return strstr(address, (const char *)arg) != NULL;
}

/* The gen label of the series from the endpoint at port, through store s ("" if none). */
static const char *gen_via(store_t *s, arena_t *a, const char *port)
{
	err_t err = {0};
	store_queryable_t q;
	store_queryable_opts_t o = {.partial_response = true};
	store_queryable_init(&q, s, a, &o);
	matcher_t m;
	if (matcher_init(&m, MATCH_EQ, STR("__name__"), STR("up"), &err))
		return "";
	series_set_t *set;
	int rc = store_queryable_base(&q)->ops->select(store_queryable_base(&q), a, &m, 1, 0, 5000, NULL,
	                                               &set, &err);
	matcher_release(&m);
	if (rc)
		return "";
	const char *gen = "";
	while (series_set_next(set, &err) > 0) {
		const labels_t *ls = series_set_labels(set);
		str_t addr = labels_get(ls, STR("addr"), NULL), g = labels_get(ls, STR("gen"), NULL);
		if (addr.n && strstr(arena_strndup(a, addr.p, addr.n), port))
			gen = arena_strndup(a, g.p, g.n);
	}
	series_set_close(set);
	return gen;
}

TEST(redial_replaces_store)
{
	dialer_t d = {0};
	err_t err = {0};
	endpoint_set_t *es;
	const char *specs[] = {"127.0.0.1:19002", "127.0.0.1:19003"};
	endpoint_set_config_t c = {.specs = specs, .nspecs = 2, .dial = dial_gen, .dial_arg = &d};
	CHECK(endpoint_set_new(&es, &c, &err) == 0);
	endpoint_set_refresh(es);
	CHECK_EQ_INT(d.dials, 2);
	arena_t old, a;
	arena_init(&old, 0);
	arena_init(&a, 0);
	store_t *before = endpoint_set_store(es, &old, NULL, NULL, 0); /* a query in flight */
	CHECK_STR(gen_via(before, &old, ":19002"), "1");

	CHECK_EQ_INT(endpoint_set_redial(es, match_port, ":19002"), 1);
	endpoint_set_refresh(es);
	CHECK_EQ_INT(d.dials, 3); /* only the marked one */
	store_t *after = endpoint_set_store(es, &a, NULL, NULL, 0);
	CHECK_STR(gen_via(after, &a, ":19002"), "3");
	CHECK_STR(gen_via(after, &a, ":19003"), "2");
	/* the query that took the old store finishes on it (ASan: not freed under it) */
	CHECK_STR(gen_via(before, &old, ":19002"), "1");
	/* the new endpoint kept its Info: status shows it with the new store's labels, healthy */
	endpoint_status_t *st;
	size_t n = status(es, &a, &st);
	CHECK_EQ_INT(n, 2);
	CHECK(st[0].last_error == NULL && st[0].nlabel_sets == 1);
	CHECK(labels_get(&st[0].label_sets[0], STR("gen"), NULL).n == 1 &&
	      labels_get(&st[0].label_sets[0], STR("gen"), NULL).p[0] == '3');
	arena_release(&old); /* releases the old endpoint: its store is freed now */
	/* marked once, replaced once */
	endpoint_set_refresh(es);
	CHECK_EQ_INT(d.dials, 3);
	CHECK_EQ_INT(endpoint_set_redial(es, match_port, ":1999"), 0);
	arena_release(&a);
	endpoint_set_free(es);
}

TEST_MAIN()
