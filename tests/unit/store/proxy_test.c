/*
 * proxy_test.c — the in-memory store (StoreAPI semantics), penalty dedup and the proxy store.
 */
#include "test.h"

#include "base/alloc.h"
#include "base/arena.h"
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

/* A fixed in-memory sample iterator for dedup tests. */
typedef struct arr_iter {
	sample_iter_t base;
	const int64_t *t;
	const double *v;
	int n, pos;
} arr_iter_t;

static int arr_next(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	arr_iter_t *a = (arr_iter_t *)it;
	int k = 0;
	while (k < cap && a->pos < a->n) {
		t[k] = a->t[a->pos];
		v[k++] = a->v[a->pos++];
	}
	return k;
}

static int arr_seek(sample_iter_t *it, int64_t t, err_t *err)
{
	arr_iter_t *a = (arr_iter_t *)it;
	while (a->pos < a->n && a->t[a->pos] < t)
		a->pos++;
	return 0;
}

static const struct sample_iter_ops arr_ops = {arr_next, arr_seek};

TEST(dedup_penalty_fills_gaps_and_sticks_to_one_replica)
{
	/* A scrapes at 0,15s,..; B at +1s offset. A has a gap [60s,120s), B has a gap [150s, 200s). */
	int64_t ta[40], tb[40];
	double va[40], vb[40];
	int na = 0, nb = 0;
	for (int64_t x = 0; x <= 300000; x += 15000) {
		if (!(x >= 60000 && x < 120000))
			ta[na] = x, va[na++] = 1;
		if (!(x + 1000 >= 150000 && x + 1000 < 200000))
			tb[nb] = x + 1000, vb[nb++] = 2;
	}
	arr_iter_t A = {{&arr_ops}, ta, va, na, 0}, B = {{&arr_ops}, tb, vb, nb, 0};
	sample_iter_t *its[2] = {&A.base, &B.base};
	dedup_cursor_t cur[2];
	dedup_iter_t d;
	dedup_iter_init(&d, cur, its, 2, DEDUP_PENALTY, false);
	int64_t t[64];
	double v[64];
	err_t err = {0};
	int n = sample_iter_next_batch(&d.base, t, v, 64, &err);
	/* A until its gap; B's 61s sample falls inside B's penalty (2 x 15s after 45s), so B takes over at
	 * 76s and stays (sticky) although A is back at 120s, until B's own gap; A's 150s and 165s samples
	 * are inside A's penalty, so A resumes at 180s. */
	int64_t want[] = {0, 15000, 30000, 45000, 76000, 91000, 106000, 121000, 136000, 180000, 195000, 210000,
			  225000, 240000, 255000, 270000, 285000, 300000};
	CHECK_EQ_INT(n, (int)(sizeof want / sizeof want[0]));
	for (int i = 0; i < n; i++)
		CHECK_EQ_INT(t[i], want[i]);
	CHECK_DBL(v[3], 1);
	CHECK_DBL(v[4], 2);
	CHECK_DBL(v[8], 2);
	CHECK_DBL(v[9], 1);
}

TEST(dedup_counter_adjustment_never_fakes_a_reset)
{
	/* Replica B's counter lags A's; switching from A to B must not go backwards. */
	int64_t ta[] = {0, 15000, 30000}, tb[] = {1000, 16000, 31000, 46000, 61000, 76000};
	double va[] = {100, 110, 120}, vb[] = {90, 100, 110, 115, 118, 125};
	arr_iter_t A = {{&arr_ops}, ta, va, 3, 0}, B = {{&arr_ops}, tb, vb, 6, 0};
	sample_iter_t *its[2] = {&A.base, &B.base};
	dedup_cursor_t cur[2];
	dedup_iter_t d;
	dedup_iter_init(&d, cur, its, 2, DEDUP_PENALTY, true);
	int64_t t[16];
	double v[16];
	err_t err = {0};
	int n = sample_iter_next_batch(&d.base, t, v, 16, &err);
	/* A's three samples, then B from 61s (46s is inside B's penalty) */
	CHECK_EQ_INT(n, 5);
	CHECK_EQ_INT(t[3], 61000);
	CHECK_DBL(v[2], 120);
	CHECK_DBL(v[3], 120); /* 118 + offset 2 */
	CHECK_DBL(v[4], 127);
	/* without counter adjustment the raw value is used */
	A.pos = B.pos = 0;
	dedup_iter_init(&d, cur, its, 2, DEDUP_PENALTY, false);
	n = sample_iter_next_batch(&d.base, t, v, 16, &err);
	CHECK_EQ_INT(n, 5);
	CHECK_DBL(v[3], 118);
	/* seek walks: next batch starts at >= 31000 */
	A.pos = B.pos = 0;
	dedup_iter_init(&d, cur, its, 2, DEDUP_CHAIN, false);
	CHECK_EQ_INT(sample_iter_seek(&d.base, 31000, &err), 0);
	n = sample_iter_next_batch(&d.base, t, v, 16, &err);
	CHECK_EQ_INT(n, 4);
	CHECK_EQ_INT(t[0], 31000);
	CHECK_EQ_INT(t[3], 76000);
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
	/* Every sample equals the gap-free series', except the two right after each gap, which fall into
	 * the other replica's penalty window (Thanos semantics). */
	CHECK_EQ_INT(n2, 41);
	CHECK_EQ_INT(n1, 37);
	int j = 0;
	for (int i = 0; i < n2; i++) {
		if (t2[i] == 120000 || t2[i] == 135000 || t2[i] == 360000 || t2[i] == 375000)
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
	/* x=1: b has 0 and 15s, c has 30..60s: after b ends, c's penalty (2 x 15s) skips its 30s and 45s
	 * samples (Thanos semantics); x=2 from both, x=3 from b alone (its chunks pass through) */
	CHECK_STR(run(proxy_store_base(p), &a, &req, &err, &rc), "{__name__=\"c\", x=\"1\"} n=3 c=-1 0..60000\n"
								 "{__name__=\"c\", x=\"2\"} n=5 c=-1 0..60000\n"
								 "{__name__=\"c\", x=\"3\"} n=5 c=1 0..60000\n");
	CHECK_EQ_INT(rc, 0);
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

TEST_MAIN()
