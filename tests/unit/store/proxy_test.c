/*
 * proxy_test.c — the in-memory store (StoreAPI semantics) and the proxy store (merge, dedup; the dedup
 * iterator itself: dedup_test.c).
 */
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/clock.h"
#include "store/dedup.h"
#include "store/inmem.h"
#include "store/proxy.h"
#include "tsdb/xor.h"

/* labels from "a=1,b=2" (names sorted by caller), in arena */
static labels_t L(arena_t *a, const char *spec)
{
	labels_t ls = {ARENA_NEW_ARRAY(a, label_t, 16), 0};
	char *s = arena_strdup(a, spec), *save = NULL;
	for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		*eq = 0;
		ls.v[ls.n++] = (label_t){str_c(tok), str_c(eq + 1)};
	}
	labels_normalize(&ls);
	return ls;
}

static inmem_store_t *mk_store(arena_t *a, const char *name, const char *ext)
{
	labels_t e = L(a, ext);
	return inmem_store_new(name, &e);
}

/* Series with samples every step ms in [from, to], value = f(t) = t/1000 (a counter), skipping
 * timestamps in [gap_from, gap_to). */
static void add_series(arena_t *a, inmem_store_t *s, const char *ls, int64_t from, int64_t to, int64_t step,
		       int64_t gap_from, int64_t gap_to)
{
	size_t cap = (size_t)((to - from) / step + 1), n = 0;
	int64_t *t = ARENA_NEW_ARRAY(a, int64_t, cap);
	double *v = ARENA_NEW_ARRAY(a, double, cap);
	for (int64_t x = from; x <= to; x += step) {
		if (x >= gap_from && x < gap_to)
			continue;
		t[n] = x;
		v[n++] = (double)x / 1000.0;
	}
	labels_t l = L(a, ls);
	err_t err = {0};
	if (inmem_store_add(s, &l, t, v, n, &err))
		TEST_FAILF("add: %s", err.msg);
}

static matcher_t M(match_type_t type, const char *name, const char *value)
{
	matcher_t m;
	err_t err = {0};
	if (matcher_init(&m, type, str_c(name), str_c(value), &err))
		TEST_FAILF("matcher: %s", err.msg);
	return m;
}

/* Render a series set: one line per series "labels n=<samples> c=<chunks> first..last", trailing
 * warnings as "W:<msg>". */
static int render(series_set_t *set, buf_t *out, err_t *err)
{
	int rc;
	while ((rc = series_set_next(set, err)) == 1) {
		labels_format_full(out, series_set_labels(set));
		const chunk_t *cs;
		int nc = set->ops->chunks ? set->ops->chunks(set, &cs) : -1;
		for (int i = 0; i < nc; i++) {
			xor_dec_t d;
			if (xor_dec_init(&d, cs[i].data, cs[i].len, err) || xor_dec_count(&d) > XOR_SAMPLES_PER_CHUNK)
				return err_set(err, ERR_INTERNAL, "bad chunk");
		}
		sample_iter_t *it = series_set_samples(set);
		int64_t t[50];
		double v[50];
		int k, total = 0;
		int64_t first = -1, last = -1;
		while ((k = sample_iter_next_batch(it, t, v, 50, err)) > 0) {
			if (first < 0)
				first = t[0];
			last = t[k - 1];
			total += k;
		}
		if (k < 0)
			return k;
		buf_printf(out, " n=%d c=%d %lld..%lld\n", total, nc, (long long)first, (long long)last);
	}
	if (rc < 0)
		return rc;
	if (set->ops->warnings) {
		const char *const *w;
		size_t nw = set->ops->warnings(set, &w);
		for (size_t i = 0; i < nw; i++)
			buf_printf(out, "W:%s\n", w[i]);
	}
	return 0;
}

static const char *run(store_t *s, arena_t *a, store_series_req_t *req, err_t *err, int *rcp)
{
	series_set_t *set;
	buf_t b = BUF_INIT;
	int rc = store_series(s, a, req, &set, err);
	if (rc == 0) {
		rc = render(set, &b, err);
		series_set_close(set);
	}
	*rcp = rc;
	char *r = arena_strdup(a, b.p);
	buf_release(&b);
	return r;
}

TEST(inmem_matchers_external_labels_trimming)
{
	arena_t a;
	arena_init(&a, 0);
	inmem_store_t *s = mk_store(&a, "s1", "region=eu");
	add_series(&a, s, "__name__=up,job=b", 0, 299000, 1000, 0, 0);
	add_series(&a, s, "__name__=up,job=a", 0, 299000, 1000, 0, 0);
	add_series(&a, s, "__name__=down,job=a", 0, 9000, 1000, 0, 0);
	err_t err = {0};
	int rc;
	matcher_t ms[3] = {M(MATCH_EQ, "__name__", "up"), M(MATCH_EQ, "region", "eu"), M(MATCH_RE, "job", "a|b")};
	store_series_req_t req = {.mint = 10000, .maxt = 19999, .ms = ms, .nms = 3};
	const char *out = run(inmem_store_base(s), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, 0);
	/* sorted, external label merged, samples trimmed to [10000, 19999]; chunks of <=120 samples */
	CHECK_STR(out, "{__name__=\"up\", job=\"a\", region=\"eu\"} n=10 c=1 10000..19000\n"
		       "{__name__=\"up\", job=\"b\", region=\"eu\"} n=10 c=1 10000..19000\n");
	req.mint = 0, req.maxt = 299000;
	out = run(inmem_store_base(s), &a, &req, &err, &rc);
	CHECK_STR(out, "{__name__=\"up\", job=\"a\", region=\"eu\"} n=300 c=3 0..299000\n"
		       "{__name__=\"up\", job=\"b\", region=\"eu\"} n=300 c=3 0..299000\n");
	/* external label mismatch: nothing, not an error */
	matcher_t other = M(MATCH_EQ, "region", "us");
	req.ms = &other, req.nms = 1;
	CHECK_STR(run(inmem_store_base(s), &a, &req, &err, &rc), "");
	CHECK_EQ_INT(rc, 0);
	/* empty-value matcher: job="" matches series without job (none here) */
	matcher_t nojob = M(MATCH_EQ, "job", "");
	req.ms = &nojob;
	CHECK_STR(run(inmem_store_base(s), &a, &req, &err, &rc), "");
	/* skip_chunks: labels only; series outside the time range are not returned */
	matcher_t all = M(MATCH_RE, "__name__", ".+");
	req = (store_series_req_t){.mint = 100000, .maxt = 200000, .ms = &all, .nms = 1, .skip_chunks = true};
	CHECK_STR(run(inmem_store_base(s), &a, &req, &err, &rc),
		  "{__name__=\"up\", job=\"a\", region=\"eu\"} n=0 c=0 -1..-1\n"
		  "{__name__=\"up\", job=\"b\", region=\"eu\"} n=0 c=0 -1..-1\n");
	/* limit */
	req.limit = 1;
	CHECK_STR(run(inmem_store_base(s), &a, &req, &err, &rc),
		  "{__name__=\"up\", job=\"a\", region=\"eu\"} n=0 c=0 -1..-1\n");
	/* label names / values with matchers */
	store_label_req_t lr = {.mint = 0, .maxt = 300000, .ms = ms, .nms = 1};
	store_strings_t names;
	CHECK_EQ_INT(store_label_names(inmem_store_base(s), &a, &lr, &names, &err), 0);
	CHECK_EQ_INT(names.n, 3);
	CHECK_SLICE(names.v[0], "__name__");
	CHECK_SLICE(names.v[2], "region");
	lr.nms = 0;
	lr.name = STR("__name__");
	CHECK_EQ_INT(store_label_values(inmem_store_base(s), &a, &lr, &names, &err), 0);
	CHECK_EQ_INT(names.n, 2);
	CHECK_SLICE(names.v[0], "down");
	CHECK_SLICE(names.v[1], "up");
	for (int i = 0; i < 3; i++)
		matcher_release(&ms[i]);
	matcher_release(&other);
	matcher_release(&nojob);
	matcher_release(&all);
	inmem_store_free(s);
	arena_release(&a);
}

TEST(proxy_merges_sorted_streams_and_selects_stores)
{
	arena_t a;
	arena_init(&a, 0);
	inmem_store_t *s1 = mk_store(&a, "s1", "region=eu");
	inmem_store_t *s2 = mk_store(&a, "s2", "region=us");
	inmem_store_t *s3 = mk_store(&a, "s3", "region=ap");
	add_series(&a, s1, "__name__=up,job=b", 0, 60000, 15000, 0, 0);
	add_series(&a, s2, "__name__=up,job=a", 0, 60000, 15000, 0, 0);
	add_series(&a, s2, "__name__=up,job=c", 0, 60000, 15000, 0, 0);
	add_series(&a, s3, "__name__=up,job=a", 0, 60000, 15000, 0, 0);
	inmem_store_set_fail(s3, 0); /* would warn if it were asked */
	proxy_store_t *p = proxy_store_new("proxy");
	proxy_store_add(p, inmem_store_base(s1));
	proxy_store_add(p, inmem_store_base(s2));
	proxy_store_add(p, inmem_store_base(s3));
	matcher_t ms[2] = {M(MATCH_EQ, "__name__", "up"), M(MATCH_RE, "region", "eu|us")};
	store_series_req_t req = {.mint = 0, .maxt = 100000, .ms = ms, .nms = 2};
	err_t err = {0};
	int rc;
	/* s3's external labels cannot match: it is not asked (else its failure would show as a warning) */
	const char *out = run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_STR(out, "{__name__=\"up\", job=\"a\", region=\"us\"} n=5 c=1 0..60000\n"
		       "{__name__=\"up\", job=\"b\", region=\"eu\"} n=5 c=1 0..60000\n"
		       "{__name__=\"up\", job=\"c\", region=\"us\"} n=5 c=1 0..60000\n");
	/* a time range outside every store: nothing */
	req.mint = 70000;
	CHECK_STR(run(proxy_store_base(p), &a, &req, &err, &rc), "");
	/* the same series in two stores without external labels over adjacent ranges: one series */
	inmem_store_t *o1 = mk_store(&a, "o1", ""), *o2 = mk_store(&a, "o2", "");
	add_series(&a, o1, "__name__=x", 0, 45000, 15000, 0, 0);
	add_series(&a, o2, "__name__=x", 30000, 90000, 15000, 0, 0);
	proxy_store_t *p2 = proxy_store_new("p2");
	proxy_store_add(p2, inmem_store_base(o1));
	proxy_store_add(p2, inmem_store_base(o2));
	req = (store_series_req_t){.mint = 0, .maxt = 100000, .ms = ms, .nms = 0};
	CHECK_STR(run(proxy_store_base(p2), &a, &req, &err, &rc), "{__name__=\"x\"} n=7 c=2 0..90000\n");
	/* label names/values through the proxy */
	store_label_req_t lr = {.mint = 0, .maxt = 100000, .ms = ms, .nms = 2, .name = STR("job")};
	store_strings_t sv;
	CHECK_EQ_INT(store_label_values(proxy_store_base(p), &a, &lr, &sv, &err), 0);
	CHECK_EQ_INT(sv.n, 3);
	CHECK_SLICE(sv.v[2], "c");
	lr.name = STR("region");
	lr.nms = 1;
	CHECK_EQ_INT(store_label_values(proxy_store_base(p), &a, &lr, &sv, &err), 0);
	inmem_store_set_fail(s3, -1);
	CHECK_EQ_INT(store_label_values(proxy_store_base(p), &a, &lr, &sv, &err), 0);
	CHECK_EQ_INT(sv.n, 3); /* ap (s3), eu, us */
	proxy_store_free(p);
	proxy_store_free(p2);
	inmem_store_free(s1);
	inmem_store_free(s2);
	inmem_store_free(s3);
	inmem_store_free(o1);
	inmem_store_free(o2);
	matcher_release(&ms[0]);
	matcher_release(&ms[1]);
	arena_release(&a);
}

TEST(proxy_dedup_replicas_equals_gap_free)
{
	arena_t a;
	arena_init(&a, 0);
	inmem_store_t *ra = mk_store(&a, "ra", "replica=a"), *rb = mk_store(&a, "rb", "replica=b");
	inmem_store_t *ref = mk_store(&a, "ref", "");
	/* same scrape times, different gaps; values are a counter */
	add_series(&a, ra, "__name__=c,job=j", 0, 600000, 15000, 120000, 240000);
	add_series(&a, rb, "__name__=c,job=j", 0, 600000, 15000, 360000, 480000);
	add_series(&a, ra, "__name__=c,job=k", 0, 600000, 15000, 0, 0);
	add_series(&a, ref, "__name__=c,job=j", 0, 600000, 15000, 0, 0);
	proxy_store_t *p = proxy_store_new("p");
	proxy_store_add(p, inmem_store_base(ra));
	proxy_store_add(p, inmem_store_base(rb));
	matcher_t m = M(MATCH_EQ, "__name__", "c");
	str_t rl = STR("replica");
	store_series_req_t req = {.mint = 0, .maxt = 600000, .ms = &m, .nms = 1, .replica_labels = &rl,
				  .nreplica_labels = 1, .func = "rate"};
	err_t err = {0};
	/* The mode the querier asks for (--deduplication.func) is the one the proxy applies. */
	for (int mode = 0; mode < 3; mode++) {
		req.dedup_mode = (dedup_mode_t)mode;
		series_set_t *set, *rset;
		CHECK_EQ_INT(store_series(proxy_store_base(p), &a, &req, &set, &err), 0);
		store_series_req_t rreq = req;
		rreq.nreplica_labels = 0;
		CHECK_EQ_INT(store_series(inmem_store_base(ref), &a, &rreq, &rset, &err), 0);
		CHECK_EQ_INT(series_set_next(set, &err), 1);
		CHECK_EQ_INT(series_set_next(rset, &err), 1);
		CHECK(labels_eq(series_set_labels(set), series_set_labels(rset)));
		const chunk_t *cs;
		CHECK_EQ_INT(set->ops->chunks(set, &cs), -1); /* replicas: samples only */
		int64_t t1[100], t2[100];
		double v1[100], v2[100];
		int n1 = sample_iter_next_batch(series_set_samples(set), t1, v1, 100, &err);
		int n2 = sample_iter_next_batch(series_set_samples(rset), t2, v2, 100, &err);
		/* penalty and chain: every sample equals the gap-free series'; penalty-thanos: all but the two
		 * right after each hand-over, which fall into the other replica's penalty window */
		bool thanos = mode == DEDUP_PENALTY_THANOS;
		CHECK_EQ_INT(n2, 41);
		CHECK_EQ_INT(n1, thanos ? 37 : 41);
		int j = 0;
		for (int i = 0; i < n2; i++) {
			if (thanos && (t2[i] == 120000 || t2[i] == 135000 || t2[i] == 360000 || t2[i] == 375000))
				continue;
			CHECK_EQ_INT(t1[j], t2[i]);
			CHECK_DBL(v1[j], v2[i]);
			j++;
		}
		CHECK_EQ_INT(j, n1);
		/* the series only replica a has comes through as is (its chunks too) */
		CHECK_EQ_INT(series_set_next(set, &err), 1);
		buf_t b = BUF_INIT;
		labels_format_full(&b, series_set_labels(set));
		CHECK_STR(b.p, "{__name__=\"c\", job=\"k\"}");
		buf_release(&b);
		CHECK_EQ_INT(set->ops->chunks(set, &cs), 1);
		CHECK_EQ_INT(series_set_next(set, &err), 0);
		series_set_close(set);
		series_set_close(rset);
	}
	/* without dedup both replicas show */
	int rc;
	req.nreplica_labels = 0;
	CHECK_STR(run(proxy_store_base(p), &a, &req, &err, &rc),
		  "{__name__=\"c\", job=\"j\", replica=\"a\"} n=33 c=1 0..600000\n"
		  "{__name__=\"c\", job=\"j\", replica=\"b\"} n=33 c=1 0..600000\n"
		  "{__name__=\"c\", job=\"k\", replica=\"a\"} n=41 c=1 0..600000\n");
	matcher_release(&m);
	proxy_store_free(p);
	inmem_store_free(ra);
	inmem_store_free(rb);
	inmem_store_free(ref);
	arena_release(&a);
}

TEST(proxy_partial_response_warns_or_aborts)
{
	arena_t a;
	arena_init(&a, 0);
	inmem_store_t *s[3];
	const char *names[3] = {"s0", "s1", "s2"};
	proxy_store_t *p = proxy_store_new("p");
	for (int i = 0; i < 3; i++) {
		char ext[16];
		snprintf(ext, sizeof ext, "zone=%d", i);
		s[i] = mk_store(&a, names[i], ext);
		add_series(&a, s[i], "__name__=up,job=a", 0, 30000, 15000, 0, 0);
		add_series(&a, s[i], "__name__=up,job=b", 0, 30000, 15000, 0, 0);
		proxy_store_add(p, inmem_store_base(s[i]));
	}
	inmem_store_set_fail(s[1], 1); /* dies mid-stream after one series */
	matcher_t m = M(MATCH_EQ, "__name__", "up");
	store_series_req_t req = {.mint = 0, .maxt = 30000, .ms = &m, .nms = 1};
	err_t err = {0};
	int rc;
	const char *out = run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_STR(out, "{__name__=\"up\", job=\"a\", zone=\"0\"} n=3 c=1 0..30000\n"
		       "{__name__=\"up\", job=\"a\", zone=\"1\"} n=3 c=1 0..30000\n"
		       "{__name__=\"up\", job=\"a\", zone=\"2\"} n=3 c=1 0..30000\n"
		       "{__name__=\"up\", job=\"b\", zone=\"0\"} n=3 c=1 0..30000\n"
		       "{__name__=\"up\", job=\"b\", zone=\"2\"} n=3 c=1 0..30000\n"
		       "W:store s1: injected failure after 1 series\n");
	req.abort_on_error = true;
	run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "s1") != NULL);
	/* failing at the call */
	inmem_store_set_fail(s[1], 0);
	err_clear(&err);
	run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "store s1") != NULL);
	req.abort_on_error = false;
	out = run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK(strstr(out, "W:store s1: injected failure\n") != NULL);
	CHECK(strstr(out, "zone=\"1\"") == NULL);
	matcher_release(&m);
	proxy_store_free(p);
	for (int i = 0; i < 3; i++)
		inmem_store_free(s[i]);
	arena_release(&a);
}

/* A store over another whose answers are ready delay_ms after its Series call started (as a remote
 * store's, which works while its caller does something else), or whose Info fails. */
typedef struct slow_store {
	store_t base;
	store_t *in;
	int64_t delay_ms;
	bool fail_info;
} slow_store_t;

typedef struct slow_set {
	series_set_t base;
	series_set_t *in;
	uint64_t ready_ms;
} slow_set_t;

static int slow_next(series_set_t *s, err_t *err)
{
	slow_set_t *x = (slow_set_t *)s;
	uint64_t now = clock_mono_ms();
	if (now < x->ready_ms)
		nanosleep(&(struct timespec){0, (long)(x->ready_ms - now) * 1000000L}, NULL);
	return series_set_next(x->in, err);
}
static const labels_t *slow_labels(series_set_t *s)
{
	return series_set_labels(((slow_set_t *)s)->in);
}
static sample_iter_t *slow_samples(series_set_t *s)
{
	return series_set_samples(((slow_set_t *)s)->in);
}
static int slow_chunks(series_set_t *s, const chunk_t **out)
{
	series_set_t *in = ((slow_set_t *)s)->in;
	return in->ops->chunks ? in->ops->chunks(in, out) : -1;
}
static size_t slow_warnings(series_set_t *s, const char *const **out)
{
	series_set_t *in = ((slow_set_t *)s)->in;
	*out = NULL;
	return in->ops->warnings ? in->ops->warnings(in, out) : 0;
}
static void slow_close(series_set_t *s)
{
	series_set_close(((slow_set_t *)s)->in);
}
static const struct series_set_ops slow_set_ops = {.next = slow_next,
                                                   .labels = slow_labels,
                                                   .samples = slow_samples,
                                                   .chunks = slow_chunks,
                                                   .warnings = slow_warnings,
                                                   .close = slow_close};

static int slow_series(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	slow_store_t *x = (slow_store_t *)s;
	slow_set_t *set = ARENA_NEW(a, slow_set_t);
	set->base.ops = &slow_set_ops;
	set->ready_ms = clock_mono_ms() + (uint64_t)x->delay_ms;
	int rc = store_series(x->in, a, req, &set->in, err);
	*out = &set->base;
	return rc;
}
static int slow_label_names(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out,
                            err_t *err)
{
	return store_label_names(((slow_store_t *)s)->in, a, req, out, err);
}
static int slow_label_values(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out,
                             err_t *err)
{
	return store_label_values(((slow_store_t *)s)->in, a, req, out, err);
}
static int slow_info(store_t *s, arena_t *a, store_info_t *out, err_t *err)
{
	slow_store_t *x = (slow_store_t *)s;
	if (x->fail_info)
		return err_set(err, ERR_UNAVAILABLE, "store %s: no Info received yet", s->name);
	return store_info(x->in, a, out, err);
}
static void slow_free(store_t *s)
{
	(void)s;
}
static const struct store_ops slow_ops = {.series = slow_series,
                                          .label_names = slow_label_names,
                                          .label_values = slow_label_values,
                                          .info = slow_info,
                                          .free = slow_free};

TEST(proxy_starts_every_store_before_waiting_for_one)
{
	arena_t a;
	arena_init(&a, 0);
	enum { N = 4 };
	inmem_store_t *s[N];
	slow_store_t w[N];
	const char *names[N] = {"s0", "s1", "s2", "s3"};
	proxy_store_t *p = proxy_store_new("p");
	for (int i = 0; i < N; i++) {
		char ext[16];
		snprintf(ext, sizeof ext, "zone=%d", i);
		s[i] = mk_store(&a, names[i], ext);
		add_series(&a, s[i], "__name__=up,job=a", 0, 30000, 15000, 0, 0);
		add_series(&a, s[i], "__name__=up,job=b", 0, 30000, 15000, 0, 0);
		w[i] = (slow_store_t){{&slow_ops, names[i]}, inmem_store_base(s[i]), 200, false};
		proxy_store_add(p, &w[i].base);
	}
	matcher_t m = M(MATCH_EQ, "__name__", "up");
	store_series_req_t req = {.mint = 0, .maxt = 30000, .ms = &m, .nms = 1};
	err_t err = {0};
	int rc;
	/* four stores answering 200 ms after their call: 800 ms one after the other, ~200 ms at once */
	uint64_t t0 = clock_mono_ms();
	const char *out = run(proxy_store_base(p), &a, &req, &err, &rc);
	uint64_t took = clock_mono_ms() - t0;
	CHECK_EQ_INT(rc, 0);
	CHECK(strstr(out, "job=\"b\", zone=\"3\"} n=3") != NULL);
	if (took >= 600)
		TEST_FAILF("the stores' calls took %llu ms: not started together", (unsigned long long)took);
	/* failures come out as if the stores had started one after the other: warnings in store order
	 * (s1's Info, s2's call, s3's stream), under abort the first store's in that order */
	for (int i = 0; i < N; i++)
		w[i].delay_ms = 0;
	w[1].fail_info = true;
	inmem_store_set_fail(s[2], 0);
	inmem_store_set_fail(s[3], 1);
	out = run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_STR(out, "{__name__=\"up\", job=\"a\", zone=\"0\"} n=3 c=1 0..30000\n"
	               "{__name__=\"up\", job=\"a\", zone=\"3\"} n=3 c=1 0..30000\n"
	               "{__name__=\"up\", job=\"b\", zone=\"0\"} n=3 c=1 0..30000\n"
	               "W:store s1: no Info received yet\n"
	               "W:store s2: injected failure\n"
	               "W:store s3: injected failure after 1 series\n");
	req.abort_on_error = true;
	err_clear(&err);
	run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "store s1: no Info") != NULL);
	w[1].fail_info = false;
	err_clear(&err);
	run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "store s2") != NULL);
	matcher_release(&m);
	proxy_store_free(p);
	for (int i = 0; i < N; i++)
		inmem_store_free(s[i]);
	arena_release(&a);
}

/* Dedup where the replica label is a series label (not external): the stores' responses are
 * collected and re-sorted; mixed with a store whose replica label is external (streamed). */
TEST(proxy_dedup_buffers_only_stores_whose_replica_label_varies)
{
	arena_t a;
	arena_init(&a, 0);
	/* "local" holds both replicas itself; stripped, x=1 sorts before x=2 although replica=a's x=2
	 * comes first in its own order. */
	inmem_store_t *loc = mk_store(&a, "local", "");
	add_series(&a, loc, "__name__=c,replica=a,x=2", 0, 60000, 15000, 0, 0);
	add_series(&a, loc, "__name__=c,replica=b,x=1", 0, 60000, 15000, 30000, 60000);
	add_series(&a, loc, "__name__=c,replica=b,x=3", 0, 60000, 15000, 0, 0);
	inmem_store_t *ext = mk_store(&a, "ext", "replica=c");
	add_series(&a, ext, "__name__=c,x=1", 0, 60000, 15000, 0, 30000);
	add_series(&a, ext, "__name__=c,x=2", 0, 60000, 15000, 0, 0);
	proxy_store_t *p = proxy_store_new("p");
	proxy_store_add(p, inmem_store_base(loc));
	proxy_store_add(p, inmem_store_base(ext));
	matcher_t m = M(MATCH_EQ, "__name__", "c");
	str_t rl = STR("replica");
	store_series_req_t req = {.mint = 0, .maxt = 60000, .ms = &m, .nms = 1, .replica_labels = &rl,
				  .nreplica_labels = 1};
	err_t err = {0};
	int rc;
	/* x=1: b has 0 and 15s, c has 30..60s: after b ends, c takes over at 30s (with penalty-thanos, c's
	 * penalty of 2 x 15s would skip its 30s and 45s samples: n=3); x=2 from both, x=3 from b alone (its
	 * chunks pass through) */
	CHECK_STR(run(proxy_store_base(p), &a, &req, &err, &rc), "{__name__=\"c\", x=\"1\"} n=5 c=-1 0..60000\n"
								 "{__name__=\"c\", x=\"2\"} n=5 c=-1 0..60000\n"
								 "{__name__=\"c\", x=\"3\"} n=5 c=1 0..60000\n");
	CHECK_EQ_INT(rc, 0);
	req.dedup_mode = DEDUP_PENALTY_THANOS;
	CHECK(strstr(run(proxy_store_base(p), &a, &req, &err, &rc), "{__name__=\"c\", x=\"1\"} n=3 c=-1 0..60000\n"));
	req.dedup_mode = DEDUP_PENALTY;
	/* a store failing mid-stream while streamed: a warning, the rest still deduplicated */
	inmem_store_set_fail(ext, 1);
	const char *out = run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK(strstr(out, "{__name__=\"c\", x=\"3\"} n=5") != NULL);
	CHECK(strstr(out, "W:store ext: injected failure after 1 series\n") != NULL);
	req.abort_on_error = true;
	run(proxy_store_base(p), &a, &req, &err, &rc);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "ext") != NULL);
	matcher_release(&m);
	proxy_store_free(p);
	inmem_store_free(loc);
	inmem_store_free(ext);
	arena_release(&a);
}

/* Removing an external replica label can reorder a store's series when a stripped label set is a
 * prefix of another: {job=a, replica=r} sorts after {job=a, path=x, replica=r}. Streamed, that is
 * detected and warned about (with the series still returned). */
TEST(proxy_dedup_streamed_store_out_of_order_is_a_warning)
{
	arena_t a;
	arena_init(&a, 0);
	inmem_store_t *ra = mk_store(&a, "ra", "replica=a");
	add_series(&a, ra, "__name__=up,job=a", 0, 30000, 15000, 0, 0);
	add_series(&a, ra, "__name__=up,job=a,path=x", 0, 30000, 15000, 0, 0);
	proxy_store_t *p = proxy_store_new("p");
	proxy_store_add(p, inmem_store_base(ra));
	matcher_t m = M(MATCH_EQ, "__name__", "up");
	str_t rl = STR("replica");
	store_series_req_t req = {.mint = 0, .maxt = 30000, .ms = &m, .nms = 1, .replica_labels = &rl,
				  .nreplica_labels = 1};
	err_t err = {0};
	int rc;
	CHECK_STR(run(proxy_store_base(p), &a, &req, &err, &rc),
		  "{__name__=\"up\", job=\"a\", path=\"x\"} n=3 c=1 0..30000\n"
		  "{__name__=\"up\", job=\"a\"} n=3 c=1 0..30000\n"
		  "W:store ra: series up{job=\"a\"} sorts before the previous one once the replica labels are removed; "
		  "its replicas may not be merged\n");
	CHECK_EQ_INT(rc, 0);
	matcher_release(&m);
	proxy_store_free(p);
	inmem_store_free(ra);
	arena_release(&a);
}

/* With dedup over stores whose replica label is external, nothing is buffered: the request arena
 * stays the same size whether 1,000 or 20,000 series stream through. */
static size_t dedup_arena_bytes(int nseries)
{
	arena_t a, d;
	arena_init(&a, 0);
	arena_init(&d, 0);
	inmem_store_t *ra = mk_store(&a, "ra", "replica=a"), *rb = mk_store(&a, "rb", "replica=b");
	for (int i = 0; i < nseries; i++) {
		char ls[64];
		snprintf(ls, sizeof ls, "__name__=m,i=%06d", i);
		add_series(&d, ra, ls, 0, 150000, 15000, 0, 0);
		add_series(&d, rb, ls, 0, 150000, 15000, 60000, 90000);
		arena_reset(&d);
	}
	proxy_store_t *p = proxy_store_new("p");
	proxy_store_add(p, inmem_store_base(ra));
	proxy_store_add(p, inmem_store_base(rb));
	matcher_t m = M(MATCH_EQ, "__name__", "m");
	str_t rl = STR("replica");
	store_series_req_t req = {.mint = 0, .maxt = 150000, .ms = &m, .nms = 1, .replica_labels = &rl,
				  .nreplica_labels = 1, .func = "rate"};
	arena_t q;
	arena_init(&q, 0);
	err_t err = {0};
	series_set_t *set;
	BUG_ON(store_series(proxy_store_base(p), &q, &req, &set, &err));
	int rc, n = 0;
	int64_t t[32];
	double v[32];
	while ((rc = series_set_next(set, &err)) == 1) {
		n++;
		BUG_ON(sample_iter_next_batch(series_set_samples(set), t, v, 32, &err) != 11);
	}
	BUG_ON(rc != 0 || n != nseries);
	series_set_close(set);
	size_t bytes = q.allocated;
	arena_release(&q);
	matcher_release(&m);
	proxy_store_free(p);
	inmem_store_free(ra);
	inmem_store_free(rb);
	arena_release(&d);
	arena_release(&a);
	return bytes;
}

TEST(proxy_dedup_memory_flat_in_series)
{
	size_t small = dedup_arena_bytes(1000), big = dedup_arena_bytes(20000);
	CHECK(big <= small);
	CHECK(big < 64 * 1024);
}

/* ---- without_replica_labels: a store that supports it, as a test double over another store ----
 * Asked without_replica_labels, it reads its inner store's whole answer, drops the replica labels
 * from every series and sorts by the rest (then the removed labels, so a series' replicas follow each
 * other in replica order) — what store.h asks of a supporting store. With join, series with equal
 * labels are joined into one with all their chunks in mint order, as a peer (or the gRPC client
 * joining frames of equal labels) hands both replicas over as one series. */
typedef struct wseries {
	labels_t ls, rkey;
	chunk_t *chunks;
	int nchunks;
	size_t seq;
} wseries_t;

typedef struct wset {
	series_set_t base;
	wseries_t *v;
	size_t n, pos;
	int64_t mint, maxt;
	xor_iter_t it;
} wset_t;

static int wset_next(series_set_t *b, err_t *err)
{
	wset_t *w = (wset_t *)b;
	(void)err;
	return w->pos < w->n ? (w->pos++, 1) : 0;
}
static const labels_t *wset_labels(series_set_t *b)
{
	wset_t *w = (wset_t *)b;
	return &w->v[w->pos - 1].ls;
}
static sample_iter_t *wset_samples(series_set_t *b)
{
	wset_t *w = (wset_t *)b;
	xor_iter_init(&w->it, w->v[w->pos - 1].chunks, (size_t)w->v[w->pos - 1].nchunks, w->mint, w->maxt);
	return &w->it.base;
}
static int wset_chunks(series_set_t *b, const chunk_t **out)
{
	wset_t *w = (wset_t *)b;
	*out = w->v[w->pos - 1].chunks;
	return w->v[w->pos - 1].nchunks;
}
static void wset_close(series_set_t *b)
{
	(void)b;
}
static const struct series_set_ops wset_ops = {wset_next, wset_labels, wset_samples, wset_chunks, NULL, wset_close};

typedef struct wstore {
	store_t base;
	store_t *inner;
	int join;      /* 1: joined replicas' chunks in mint order; 2: in arrival order (one replica after
			* the other, as the gRPC client keeps them for without_replica_labels) */
	int wrl_calls; /* series calls that asked without_replica_labels */
} wstore_t;

static int wseries_cmp(const void *a, const void *b)
{
	const wseries_t *x = a, *y = b;
	int c = labels_cmp(&x->ls, &y->ls);
	if (!c)
		c = labels_cmp(&x->rkey, &y->rkey);
	return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static int chunk_by_mint(const void *a, const void *b)
{
	const chunk_t *x = a, *y = b;
	return (x->mint > y->mint) - (x->mint < y->mint);
}

static int ws_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	wstore_t *ws = (wstore_t *)base;
	if (!req->without_replica_labels)
		return store_series(ws->inner, a, req, out, err);
	ws->wrl_calls++;
	store_series_req_t r = *req;
	r.replica_labels = NULL, r.nreplica_labels = 0, r.without_replica_labels = false;
	series_set_t *in;
	int rc = store_series(ws->inner, a, &r, &in, err);
	if (rc)
		return rc;
	size_t cap = 16, n = 0;
	wseries_t *v = ARENA_NEW_ARRAY(a, wseries_t, cap);
	while ((rc = series_set_next(in, err)) == 1) {
		if (n == cap) {
			v = arena_realloc(a, v, cap * sizeof *v, 2 * cap * sizeof *v);
			cap *= 2;
		}
		const labels_t *ls = series_set_labels(in);
		wseries_t *w = &v[n];
		w->seq = n++;
		w->ls = (labels_t){ARENA_NEW_ARRAY(a, label_t, ls->n + 1), 0};
		w->rkey = (labels_t){ARENA_NEW_ARRAY(a, label_t, ls->n + 1), 0};
		for (size_t i = 0; i < ls->n; i++) {
			bool drop = false;
			for (size_t j = 0; j < req->nreplica_labels; j++)
				drop = drop || str_eq(ls->v[i].name, req->replica_labels[j]);
			labels_t *to = drop ? &w->rkey : &w->ls;
			to->v[to->n++] = ls->v[i];
		}
		w->ls = labels_copy(a, &w->ls);
		w->rkey = labels_copy(a, &w->rkey);
		const chunk_t *cs;
		w->nchunks = in->ops->chunks(in, &cs);
		BUG_ON(w->nchunks < 0);
		w->chunks = ARENA_NEW_ARRAY(a, chunk_t, (size_t)w->nchunks + 1);
		for (int i = 0; i < w->nchunks; i++) {
			w->chunks[i] = cs[i];
			w->chunks[i].data = arena_memdup(a, cs[i].data, cs[i].len);
		}
	}
	series_set_close(in);
	if (rc < 0)
		return rc;
	qsort(v, n, sizeof *v, wseries_cmp);
	if (ws->join) {
		size_t w = 0;
		for (size_t i = 0, j; i < n; i = j) {
			wseries_t o = v[i];
			size_t total = 0;
			for (j = i; j < n && labels_eq(&v[j].ls, &o.ls); j++)
				total += (size_t)v[j].nchunks;
			o.chunks = ARENA_NEW_ARRAY(a, chunk_t, total + 1);
			o.nchunks = 0;
			for (size_t k = i; k < j; k++)
				for (int c = 0; c < v[k].nchunks; c++)
					o.chunks[o.nchunks++] = v[k].chunks[c];
			/* stable in mint order, like the gRPC client sorts a joined series' chunks */
			for (int c = 1; c < o.nchunks && ws->join == 1; c++)
				for (int d = c; d > 0 && chunk_by_mint(&o.chunks[d - 1], &o.chunks[d]) > 0; d--) {
					chunk_t t = o.chunks[d];
					o.chunks[d] = o.chunks[d - 1];
					o.chunks[d - 1] = t;
				}
			v[w++] = o;
		}
		n = w;
	}
	wset_t *set = ARENA_NEW(a, wset_t);
	set->base.ops = &wset_ops;
	set->v = v, set->n = n, set->mint = req->mint, set->maxt = req->maxt;
	*out = &set->base;
	return 0;
}
static int ws_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return store_label_names(((wstore_t *)base)->inner, a, req, out, err);
}
static int ws_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return store_label_values(((wstore_t *)base)->inner, a, req, out, err);
}
static int ws_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	int rc = store_info(((wstore_t *)base)->inner, a, out, err);
	out->supports_without_replica_labels = true;
	return rc;
}
static void ws_free(store_t *base)
{
	(void)base;
}
static const struct store_ops ws_ops = {ws_series, ws_label_names, ws_label_values, ws_info, ws_free};

/* Every sample of every series: labels, chunk count (-1 = samples only), samples "t:v" summarised as
 * count, sum of t and a position-weighted sum of v (so a reordering shows), warnings. */
static const char *render_all(store_t *s, arena_t *a, const store_series_req_t *req)
{
	series_set_t *set;
	err_t err = {0};
	buf_t b = BUF_INIT;
	if (store_series(s, a, req, &set, &err))
		TEST_FAILF("series: %s", err.msg);
	int rc;
	while ((rc = series_set_next(set, &err)) == 1) {
		labels_format_full(&b, series_set_labels(set));
		const chunk_t *cs;
		int nc = set->ops->chunks ? set->ops->chunks(set, &cs) : -1;
		int64_t t[64];
		double v[64], ws = 0;
		long long n = 0, ts = 0;
		int k;
		sample_iter_t *it = series_set_samples(set);
		while ((k = sample_iter_next_batch(it, t, v, 64, &err)) > 0)
			for (int i = 0; i < k; i++, n++)
				ts += t[i], ws += v[i] * (double)(n % 7 + 1);
		if (k < 0)
			TEST_FAILF("samples: %s", err.msg);
		buf_printf(&b, " c=%d n=%lld t=%lld v=%.17g\n", nc, n, ts, ws);
	}
	if (rc < 0)
		TEST_FAILF("next: %s", err.msg);
	const char *const *w;
	size_t nw = set->ops->warnings ? set->ops->warnings(set, &w) : 0;
	for (size_t i = 0; i < nw; i++)
		buf_printf(&b, "W:%s\n", w[i]);
	series_set_close(set);
	const char *r = arena_strdup(a, b.p ? b.p : "");
	buf_release(&b);
	return r;
}

/* The series lines of a rendering (warnings dropped), in a. */
static const char *series_lines(arena_t *a, const char *r)
{
	buf_t b = BUF_INIT;
	for (const char *p = r; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
		if (strncmp(p, "W:", 2) != 0)
			buf_append(&b, p, n);
		p += n;
	}
	const char *out = arena_strdup(a, b.p ? b.p : "");
	buf_release(&b);
	return out;
}

/* Samples of one replica: every 15 s from start to end (+ jitter ms), a counter with a reset, skipping
 * [gap_from, gap_to). */
static void add_replica(arena_t *a, inmem_store_t *s, const char *ls, int64_t start, int64_t end, int64_t jitter,
			int64_t gap_from, int64_t gap_to)
{
	size_t cap = (size_t)((end - start) / 15000 + 2), n = 0;
	int64_t *t = ARENA_NEW_ARRAY(a, int64_t, cap);
	double *v = ARENA_NEW_ARRAY(a, double, cap);
	double val = (double)(start % 97);
	for (int64_t x = start; x <= end; x += 15000) {
		val += (double)((x / 15000) % 5);
		if ((x / 15000) % 173 == 100)
			val = 1; /* a counter reset */
		if (x >= gap_from && x < gap_to)
			continue;
		t[n] = x + jitter;
		v[n++] = val;
	}
	labels_t l = L(a, ls);
	err_t err = {0};
	if (n && inmem_store_add(s, &l, t, v, n, &err))
		TEST_FAILF("add: %s", err.msg);
}

/* Random HA data: "loc" holds replicas a and b of each series as a series label (so, without support,
 * the proxy buffers and re-sorts it), "ext" is replica c as an external label (streamed). mode 0: the
 * replicas have random ranges and holes; 1: the replicas of a series scrape the same range (jitter
 * apart) without holes, so their chunks overlap pairwise (the join case); 2: the same range, and half
 * of the replicas miss 130-300 scrapes, longer than a chunk, so another replica's chunk can fall
 * entirely into the hole. */
static void random_replicas(arena_t *a, unsigned seed, int mode, inmem_store_t *loc, inmem_store_t *ext)
{
	srand(seed);
	for (int i = 0; i < 40; i++) {
		const char *reps[] = {"a", "b", "c"};
		int have = 0;
		int64_t s0 = (rand() % 60) * 15000, e0 = s0 + (rand() % 900 + (mode == 2 ? 400 : 10)) * 15000;
		if (((e0 - s0) / 15000 + 1) % 120 == 1)
			e0 += 15000; /* no one-sample last chunks: they would not overlap the other replica's */
		for (int r = 0; r < 3; r++) {
			if (rand() % 5 == 0 && (r < 2 || have))
				continue;
			have++;
			char ls[96];
			/* pairs {i=N, path=x} and {i=N}: the stripped label sets sort the other way round than
			 * with the replica label (the prefix case) */
			snprintf(ls, sizeof ls, "__name__=m,i=%02d%s%s%s", i / 2, i % 2 ? "" : ",path=x",
				 r < 2 ? ",replica=" : "", r < 2 ? reps[r] : "");
			int64_t start = (rand() % 60) * 15000, end = start + (rand() % 900 + 10) * 15000;
			if (mode)
				start = s0, end = e0;
			int64_t gf = 0, gt = 0;
			if (mode == 0 && rand() % 2) {
				gf = start + (rand() % 400) * 15000;
				gt = gf + (rand() % 30 + 1) * 15000;
			}
			if (mode == 2 && rand() % 2) {
				gf = s0 + (rand() % 100) * 15000;
				gt = gf + (rand() % 170 + 130) * 15000;
			}
			add_replica(a, r < 2 ? loc : ext, ls, start, end, r * 3 + 1, gf, gt);
		}
	}
}

/* A store announcing without_replica_labels is streamed: it is asked with the flag, and the answers
 * equal those of the buffered path (the same data from a store without support), over random
 * replicas with gaps and resets, plain and counter-adjusted, samples and skip_chunks, partial
 * ranges. */
TEST(proxy_dedup_supporting_store_streamed_equals_buffered)
{
	for (unsigned seed = 1; seed <= 6; seed++) {
		arena_t a;
		arena_init(&a, 0);
		inmem_store_t *loc = mk_store(&a, "loc", ""), *ext = mk_store(&a, "ext", "replica=c");
		random_replicas(&a, seed, 0, loc, ext);
		wstore_t ws = {{&ws_ops, "wloc"}, inmem_store_base(loc), 0, 0};
		proxy_store_t *pb = proxy_store_new("buffered"), *pw = proxy_store_new("streamed");
		proxy_store_add(pb, inmem_store_base(loc));
		proxy_store_add(pb, inmem_store_base(ext));
		proxy_store_add(pw, &ws.base);
		proxy_store_add(pw, inmem_store_base(ext));
		matcher_t m = M(MATCH_RE, "__name__", "m.*");
		str_t rl = STR("replica");
		const char *funcs[] = {NULL, "rate"};
		int64_t ranges[][2] = {{0, 20000000}, {3000000, 7000000}};
		for (int f = 0; f < 2; f++)
			for (int r = 0; r < 2; r++)
				for (int skip = 0; skip < 2; skip++) {
					store_series_req_t req = {.mint = ranges[r][0], .maxt = ranges[r][1], .ms = &m,
								  .nms = 1, .replica_labels = &rl, .nreplica_labels = 1,
								  .func = funcs[f], .skip_chunks = skip,
								  .dedup_mode = (dedup_mode_t)((seed + f + r) % 3)};
					int calls = ws.wrl_calls;
					const char *want = render_all(proxy_store_base(pb), &a, &req);
					const char *got = render_all(proxy_store_base(pw), &a, &req);
					CHECK_EQ_INT(ws.wrl_calls, calls + 1);
					CHECK(strlen(want) > 100);
					if (strcmp(want, got) != 0) {
						fprintf(stderr, "buffered:\n%s\nstreamed:\n%s", want, got);
						TEST_FAILF("seed %u func %s range %d skip %d %s: streamed differs (above)", seed,
							   funcs[f] ? funcs[f] : "-", r, skip, dedup_mode_name(req.dedup_mode));
					}
				}
		/* no dedup: the flag is not sent, every replica shows */
		store_series_req_t req = {.mint = 0, .maxt = 20000000, .ms = &m, .nms = 1};
		int calls = ws.wrl_calls;
		CHECK_STR(render_all(proxy_store_base(pw), &a, &req), render_all(proxy_store_base(pb), &a, &req));
		CHECK_EQ_INT(ws.wrl_calls, calls);
		/* the proxy supports the flag itself (a querier served over gRPC to another one): asked with it,
		 * it strips, sorts and returns every replica as a series of its own, without dedup */
		store_info_t info;
		err_t err = {0};
		CHECK_EQ_INT(store_info(proxy_store_base(pw), &a, &info, &err), 0);
		CHECK(info.supports_without_replica_labels);
		store_series_req_t wreq = req;
		wreq.replica_labels = &rl, wreq.nreplica_labels = 1, wreq.without_replica_labels = true;
		const char *stripped = series_lines(&a, render_all(proxy_store_base(pw), &a, &wreq));
		CHECK(strstr(stripped, "replica") == NULL);
		size_t lines = 0, all_lines = 0;
		for (const char *q = stripped; (q = strstr(q, "} c=")) != NULL; q++)
			lines++;
		for (const char *q = render_all(proxy_store_base(pb), &a, &req); (q = strstr(q, "} c=")) != NULL; q++)
			all_lines++;
		CHECK_EQ_INT(lines, all_lines); /* every replica's series, none merged */
		/* ... so a deduplicating proxy over it (layered queriers) answers as the flat one, series for
		 * series (warnings name the extra hop) */
		proxy_store_t *top = proxy_store_new("top");
		proxy_store_add(top, proxy_store_base(pw));
		for (int f = 0; f < 2; f++) {
			store_series_req_t dreq = {.mint = 0, .maxt = 20000000, .ms = &m, .nms = 1, .replica_labels = &rl,
						   .nreplica_labels = 1, .func = funcs[f]};
			const char *want = series_lines(&a, render_all(proxy_store_base(pb), &a, &dreq));
			const char *got = series_lines(&a, render_all(proxy_store_base(top), &a, &dreq));
			if (strcmp(want, got) != 0) {
				fprintf(stderr, "flat:\n%s\nlayered:\n%s", want, got);
				TEST_FAILF("seed %u func %d: layered dedup differs (above)", seed, f);
			}
		}
		proxy_store_free(top);
		matcher_release(&m);
		proxy_store_free(pb);
		proxy_store_free(pw);
		inmem_store_free(loc);
		inmem_store_free(ext);
		arena_release(&a);
	}
}

/* Random replicas of seed (random_replicas's mode 1 or 2), joined into one series per label set by a wrapping
 * store (wstore_t's join 1: chunks in mint order, with mode 1; 2: in arrival order, with mode 2's holes),
 * deduplicate through the proxy exactly as the same replicas served separately, with and without counter
 * adjustment. */
static void check_joined_equals_separate(unsigned seed, int mode)
{
	arena_t a;
	arena_init(&a, 0);
	inmem_store_t *loc = mk_store(&a, "loc", ""), *ext = mk_store(&a, "ext", "replica=c");
	random_replicas(&a, seed, mode, loc, ext);
	wstore_t ws = {{&ws_ops, "joined"}, inmem_store_base(loc), mode, 0};
	proxy_store_t *pb = proxy_store_new("buffered"), *pw = proxy_store_new("joined");
	proxy_store_add(pb, inmem_store_base(loc));
	proxy_store_add(pb, inmem_store_base(ext));
	proxy_store_add(pw, &ws.base);
	proxy_store_add(pw, inmem_store_base(ext));
	matcher_t m = M(MATCH_RE, "__name__", "m.*");
	str_t rl = STR("replica");
	for (int f = 0; f < 2; f++) {
		store_series_req_t req = {.mint = 0, .maxt = 20000000, .ms = &m, .nms = 1, .replica_labels = &rl,
					  .nreplica_labels = 1, .func = f ? "rate" : NULL,
					  .dedup_mode = (dedup_mode_t)((seed + f) % 3)};
		const char *want = render_all(proxy_store_base(pb), &a, &req);
		const char *got = render_all(proxy_store_base(pw), &a, &req);
		if (strcmp(want, got) != 0) {
			fprintf(stderr, "separate:\n%s\njoined:\n%s", want, got);
			TEST_FAILF("seed %u func %d: joined replicas differ (both printed above)", seed, f);
		}
	}
	matcher_release(&m);
	proxy_store_free(pb);
	proxy_store_free(pw);
	inmem_store_free(loc);
	inmem_store_free(ext);
	arena_release(&a);
}

/* Overlap split: a store handing both replicas of a series over as one series (chunks of a and b
 * interleaved in time) gives the same deduplicated answer as separate replicas, because the member is
 * split into non-overlapping replica members first. (That holds while each replica's chunks overlap
 * the others': chunks that overlap nothing, e.g. one-sample chunks, may land in another replica's
 * member, as in Thanos.) */
TEST(proxy_dedup_overlap_split_of_joined_replicas)
{
	for (unsigned seed = 11; seed <= 14; seed++)
		check_joined_equals_separate(seed, 1);
	/* by hand: one series whose chunks are a0 b0 a1 b1 (b 1 ms later, b missing [600s, 900s)): the
	 * penalty dedup of the split sticks to a, so the answer is a's samples exactly */
	arena_t a;
	arena_init(&a, 0);
	inmem_store_t *loc = mk_store(&a, "loc", ""), *ref = mk_store(&a, "ref", "");
	add_replica(&a, loc, "__name__=j,replica=a", 0, 3585000, 0, 0, 0);
	add_replica(&a, loc, "__name__=j,replica=b", 0, 3585000, 1, 600000, 900000);
	add_replica(&a, ref, "__name__=j", 0, 3585000, 0, 0, 0);
	wstore_t ws = {{&ws_ops, "joined"}, inmem_store_base(loc), 1, 0};
	proxy_store_t *p = proxy_store_new("p");
	proxy_store_add(p, &ws.base);
	matcher_t m = M(MATCH_EQ, "__name__", "j");
	str_t rl = STR("replica");
	store_series_req_t req = {.mint = 0, .maxt = 3600000, .ms = &m, .nms = 1, .replica_labels = &rl,
				  .nreplica_labels = 1, .without_replica_labels = true};
	/* what the proxy gets: one series with 4 interleaved chunks */
	err_t err = {0};
	series_set_t *set;
	CHECK_EQ_INT(store_series(&ws.base, &a, &req, &set, &err), 0);
	CHECK_EQ_INT(series_set_next(set, &err), 1);
	const chunk_t *cs;
	CHECK_EQ_INT(set->ops->chunks(set, &cs), 4);
	CHECK(cs[1].mint == 1 && cs[1].mint < cs[0].maxt && cs[2].mint < cs[1].maxt);
	CHECK_EQ_INT(series_set_next(set, &err), 0);
	req.without_replica_labels = false;
	store_series_req_t rreq = {.mint = 0, .maxt = 3600000, .ms = &m, .nms = 1};
	const char *got = render_all(proxy_store_base(p), &a, &req);
	const char *want = strstr(render_all(inmem_store_base(ref), &a, &rreq), " n=240 ");
	CHECK(want != NULL);
	const char *head = "{__name__=\"j\"} c=-1 n=240 "; /* deduplicated: samples only */
	if (strncmp(got, head, strlen(head)) != 0)
		TEST_FAILF("got %s (want %s)", got, want);
	CHECK_STR(strstr(got, " n="), want);
	matcher_release(&m);
	proxy_store_free(p);
	inmem_store_free(loc);
	inmem_store_free(ref);
	arena_release(&a);
}

/* Joined replicas whose chunks keep their arrival order (replica a's, then b's: how the gRPC client
 * hands over frames of equal labels for without_replica_labels, e.g. from a Strata querier below):
 * the split takes each run as one piece, so even where a chunk of one replica falls entirely into a
 * hole of the other (which splitting chunk by chunk in mint order gets wrong), they deduplicate
 * exactly as separate replicas. (Replicas over disjoint ranges would join one piece, as in Thanos.) */
TEST(proxy_dedup_overlap_split_arrival_order_runs)
{
	for (unsigned seed = 21; seed <= 26; seed++)
		check_joined_equals_separate(seed, 2);
}

/* Downsampled reads (thanos.md §4.4, §4.5): which aggregates a function's selector asks for, the view
 * that reads them, and which functions cap the resolution at range / 2. */
TEST(store_aggregates_for_functions)
{
	unsigned avg = 1u << AGGR_COUNT | 1u << AGGR_SUM;
	CHECK(store_aggregates_for_func(NULL) == avg);
	CHECK(store_aggregates_for_func("avg_over_time") == avg);
	CHECK(store_aggregates_for_func("rate") == 1u << AGGR_COUNTER);
	CHECK(store_aggregates_for_func("increase") == 1u << AGGR_COUNTER);
	CHECK(store_aggregates_for_func("min_over_time") == 1u << AGGR_MIN);
	CHECK(store_aggregates_for_func("max") == 1u << AGGR_MAX);
	CHECK(store_aggregates_for_func("count_over_time") == 1u << AGGR_COUNT);
	CHECK(store_aggregates_for_func("sum_over_time") == 1u << AGGR_SUM);
	CHECK(store_aggregates_for_func("sum") == avg);
	CHECK(store_aggr_view(avg) == AGGR_VIEW_AVG);
	CHECK(store_aggr_view(0) == AGGR_VIEW_AVG);
	CHECK(store_aggr_view(1u << AGGR_MAX) == AGGR_VIEW_MAX);
	CHECK(store_aggr_view(1u << AGGR_COUNTER) == AGGR_VIEW_COUNTER);
	CHECK(store_func_needs_two_samples("rate") && store_func_needs_two_samples("deriv"));
	CHECK(!store_func_needs_two_samples("max_over_time") && !store_func_needs_two_samples(NULL));
}

TEST_MAIN()
