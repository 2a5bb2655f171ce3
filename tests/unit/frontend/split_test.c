/*
 * split_test.c — range/labels splitting, `@` resolution, response merge/cut/encode and cache extents.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/extents.h"
#include "frontend/promresp.h"
#include "frontend/split.h"
#include "queryrange.pb-c.h"
#include "test.h"

#define H     (3600 * 1000LL)
#define DAYMS (24 * H)

TEST(range_pieces_on_grid_at_day_boundaries)
{
	arena_t a;
	arena_init(&a, 0);
	split_piece_t *p;
	int64_t step = 97000, start = 10 * DAYMS - 2 * H - 13000, end = 12 * DAYMS + H;
	size_t n = split_range(&a, start, end, step, DAYMS, &p);
	CHECK_EQ_INT(n, 4);
	CHECK(p[0].start == start && p[n - 1].end == end);
	for (size_t i = 0; i < n; i++) {
		CHECK((p[i].start - start) % step == 0); /* original grid */
		CHECK(i + 1 == n || (p[i].end - start) % step == 0);
		CHECK(p[i].start <= p[i].end);
		if (i) {
			CHECK_EQ_INT(p[i].start, p[i - 1].end + step); /* nothing skipped, nothing twice */
			CHECK(p[i].start / DAYMS == p[i - 1].end / DAYMS + 1); /* cut at midnight */
		}
		if (i + 1 < n)
			CHECK(p[i].end / DAYMS == p[i].start / DAYMS &&
			      p[i].end + step >= (p[i].end / DAYMS + 1) * DAYMS);
	}
	CHECK_EQ_INT(split_range(&a, 5, 5, 1000, DAYMS, &p), 1);
	CHECK_EQ_INT(split_range(&a, 0, 10 * DAYMS, 1000, 0, &p), 1);
	/* a boundary exactly on the grid ends the piece one step before it */
	CHECK_EQ_INT(split_next_boundary(0, 60000, DAYMS), DAYMS - 60000);
	arena_release(&a);
}

TEST(labels_pieces_absolute)
{
	arena_t a;
	arena_init(&a, 0);
	split_piece_t *p;
	size_t n = split_labels(&a, DAYMS + 5, 3 * DAYMS + 7, DAYMS, &p);
	CHECK_EQ_INT(n, 3);
	CHECK(p[0].start == DAYMS + 5 && p[0].end == 2 * DAYMS - 1);
	CHECK(p[1].start == 2 * DAYMS && p[1].end == 3 * DAYMS - 1);
	CHECK(p[2].start == 3 * DAYMS && p[2].end == 3 * DAYMS + 7);
	arena_release(&a);
}

TEST(at_start_end_resolved)
{
	arena_t a;
	arena_init(&a, 0);
	str_t out;
	bool changed;
	int64_t max_at;
	err_t err = {0};
	CHECK(split_resolve_at(&a, STR("rate(x[5m] @ start()) + max_over_time(y[1m:] @ end())"), 1000, 5500,
	                       &out, &changed, &max_at, &err) == 0);
	CHECK(changed && max_at == 5500);
	CHECK(strstr(out.p, "@ 1.000") && strstr(out.p, "@ 5.500") && !strstr(out.p, "start()"));
	CHECK(split_resolve_at(&a, STR("sum(up)"), 0, 1, &out, &changed, &max_at, &err) == 0);
	CHECK(!changed && str_eq_c(out, "sum(up)") && max_at == INT64_MIN);
	CHECK(split_resolve_at(&a, STR("sum("), 0, 1, &out, &changed, &max_at, &err) == ERR_INVALID);
	arena_release(&a);
}

static const char *M1 = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
                        "{\"metric\":{\"a\":\"1\"},\"values\":[[1,\"1\"],[2,\"2\"]]},"
                        "{\"metric\":{\"a\":\"2\"},\"values\":[[2.500,\"1e-07\"]]}]}}";
static const char *M2 =
    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
    "{\"metric\":{\"a\":\"1\",\"b\":\"x\"},\"values\":[[3,\"NaN\"]]},"
    "{\"metric\":{\"a\":\"1\"},\"values\":[[2,\"2\"],[3,\"+Inf\"]]}]},\"warnings\":[\"w\"]}";

TEST(merge_sorted_dedup_and_encode)
{
	arena_t a;
	arena_init(&a, 0);
	promresp_t r1, r2, m;
	err_t err = {0};
	CHECK(promresp_decode(&a, PROMRESP_MATRIX, M1, strlen(M1), &r1, &err) == 0);
	CHECK(promresp_decode(&a, PROMRESP_MATRIX, M2, strlen(M2), &r2, &err) == 0);
	const promresp_t *in[] = {&r2, &r1};
	promresp_merge(&a, in, 2, &m);
	buf_t b = BUF_INIT;
	promresp_encode(&b, &m, false, false);
	CHECK_STR(b.p, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
	               "{\"metric\":{\"a\":\"1\"},\"values\":[[1,\"1\"],[2,\"2\"],[3,\"+Inf\"]]},"
	               "{\"metric\":{\"a\":\"1\",\"b\":\"x\"},\"values\":[[3,\"NaN\"]]},"
	               "{\"metric\":{\"a\":\"2\"},\"values\":[[2.500,\"1e-07\"]]}]},\"warnings\":[\"w\"]}");
	promresp_t cut;
	promresp_extract(&a, &m, 2000, 2600, &cut);
	CHECK_EQ_INT(cut.nseries, 2);
	buf_release(&b);
	CHECK(promresp_decode(&a, PROMRESP_MATRIX, "{\"status\":\"error\"}", 18, &r1, &err) == ERR_CORRUPT);
	CHECK(promresp_decode(&a, PROMRESP_MATRIX, "{\"status\":", 10, &r1, &err) == ERR_CORRUPT);
	arena_release(&a);
}

TEST(extents_roundtrip_partition_merge_trim)
{
	arena_t a;
	arena_init(&a, 0);
	promresp_t r;
	err_t err = {0};
	const char *j = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
	                "{\"metric\":{\"a\":\"1\"},\"values\":[[600,\"1\"],[1200,\"2\"],[1800,\"3\"]]}]}}";
	CHECK(promresp_decode(&a, PROMRESP_MATRIX, j, strlen(j), &r, &err) == 0);
	extent_t e = {600000, 1800000, r};
	extents_t ex = {&e, 1}, back;
	for (int snappy = 0; snappy < 2; snappy++) {
		buf_t v = BUF_INIT;
		extents_encode(&v, STR("fe:k"), &ex, snappy);
		CHECK(extents_decode(&a, PROMRESP_MATRIX, buf_str(&v), STR("fe:k"), snappy, &back));
		CHECK(back.n == 1 && back.v[0].resp.series[0].n == 3 &&
		      back.v[0].resp.series[0].pts[2].v == 3);
		CHECK(!extents_decode(&a, PROMRESP_MATRIX, buf_str(&v), STR("fe:other"), snappy,
		                      &back)); /* collision */
		buf_release(&v);
	}
	char h[17];
	extents_hash_key(STR(""), h);
	CHECK_STR(h, "cbf29ce484222325"); /* FNV-1a 64 offset basis */
	/* request [0, 3000s] step 600s: [0,0] and [2400s, 3000s] are missing */
	extents_plan_t plan;
	extents_partition(&a, &ex, 0, 3000000, 600000, false, &plan);
	CHECK_EQ_INT(plan.nfetch, 2);
	CHECK(plan.fetch[0].start == 0 && plan.fetch[0].end == 0);
	CHECK(plan.fetch[1].start == 2400000 && plan.fetch[1].end == 3000000);
	CHECK_EQ_INT(plan.ncached, 1);
	/* an extent off the request's grid is never used */
	extents_partition(&a, &ex, 300000, 3300000, 600000, false, &plan);
	CHECK(plan.ncached == 0 && plan.nfetch == 1);
	/* merging adjacent extents and trimming to the freshness limit */
	extent_t add = {2400000, 3000000, r};
	extents_t merged;
	extents_merge(&a, &ex, &add, 1, 0, 600000, &merged);
	CHECK(merged.n == 1 && merged.v[0].start == 600000 && merged.v[0].end == 3000000);
	extents_trim(&a, &merged, 1500000, 600000);
	CHECK(merged.n == 1 && merged.v[0].end == 1200000 && merged.v[0].resp.series[0].n == 2);
	arena_release(&a);
}

/* The matrix encoder writes what protobuf-c would pack (protobuf-c reads it and packs it back to the
 * same bytes), except that a -0 value keeps its sign. */
TEST(extents_encode_is_protobuf)
{
	arena_t a;
	arena_init(&a, 0);
	label_t l1[] = {{STR("__name__"), STR("up")}, {STR("job"), STR("")}}, l2[] = {{STR("x"), STR("")}};
	promresp_point_t p1[] = {{-1500, 1.5}, {0, 0}, {600000, -2e300}, {1200000, 1.0 / 0.0}},
	                 p2[] = {{600000, 7}, {1u << 31, 0.1}};
	promresp_series_t series[] = {{{l1, 2}, p1, 4}, {{l2, 1}, p2, 2}};
	int64_t st[] = {0, 600000, 1200000}, sn[] = {3, 0, 300};
	str_t warn[] = {STR("w1"), STR("")};
	promresp_t r = {.kind = PROMRESP_MATRIX, .series = series, .nseries = 2, .warnings = warn, .nwarnings = 2};
	r.stats = (promresp_stats_t){.present = true, .per_step = true, .total_samples = 303,
	                             .peak_samples = 70000, .step_t = st, .step_n = sn, .nsteps = 3};
	promresp_t bare = {.kind = PROMRESP_MATRIX, .series = series, .nseries = 1};
	extent_t e[] = {{0, 1200000, r}, {1800000, 1800000, bare}, {2400000, 2400000, bare}};
	extents_t ex = {e, 3}, back;
	buf_t v = BUF_INIT;
	extents_encode(&v, STR("fe:k"), &ex, false);
	Queryrange__CachedResponse *cr = queryrange__cached_response__unpack(NULL, v.n, (uint8_t *)v.p);
	CHECK(cr != NULL && cr->n_extents == 3);
	size_t n = queryrange__cached_response__get_packed_size(cr);
	uint8_t *again = malloc(n);
	queryrange__cached_response__pack(cr, again);
	CHECK(n == v.n && memcmp(again, v.p, n) == 0);
	free(again);
	queryrange__cached_response__free_unpacked(cr, NULL);
	CHECK(extents_decode(&a, PROMRESP_MATRIX, buf_str(&v), STR("fe:k"), false, &back) && back.n == 3);
	const promresp_t *b = &back.v[0].resp;
	CHECK(b->nseries == 2 && b->series[0].n == 4 && b->series[0].ls.n == 1 && b->series[1].ls.n == 0 && b->series[0].pts[0].t == -1500 &&
	      b->series[0].pts[2].v == -2e300 && b->series[1].pts[1].t == 1u << 31);
	CHECK(b->stats.present && b->stats.nsteps == 3 && b->stats.step_n[2] == 300 &&
	      b->stats.peak_samples == 70000 && b->nwarnings == 2 && str_eq_c(b->warnings[0], "w1"));
	/* -0 stays -0 */
	p1[1].v = -0.0;
	extents_encode(&v, STR("fe:k"), &ex, true);
	CHECK(extents_decode(&a, PROMRESP_MATRIX, buf_str(&v), STR("fe:k"), true, &back));
	CHECK(back.v[0].resp.series[0].pts[1].v == 0 && signbit(back.v[0].resp.series[0].pts[1].v));
	buf_release(&v);
	arena_release(&a);
}

/* The fast matrix reader and jansson (which decodes whatever the fast one gives up on: here forced by an
 * escape that means the same character) read the same answers alike, and refuse the same bad ones. */
TEST(matrix_fast_reader_equals_jansson)
{
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	const char *docs[][2] = {
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"a\":\"1\","
	     "\"b\":\"x y\"},\"values\":[[1800.5,\"1.5\"],[1e4,\"NaN\"],[20000,\"+Inf\"]]},{\"metric\":{},"
	     "\"values\":[[-5,\"-2e-7\"]]}]},\"warnings\":[\"w1\",\"w2\"]}",
	     "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"a\":\"\\u0031\","
	     "\"b\":\"x y\"},\"values\":[[1800.5,\"1.5\"],[1e4,\"NaN\"],[20000,\"+Inf\"]]},{\"metric\":{},"
	     "\"values\":[[-5,\"-2e-7\"]]}]},\"warnings\":[\"w1\",\"w2\"]}"},
	    {" { \"data\" : { \"result\" : [ ] , \"resultType\" : \"matrix\" } ,\n\"status\":\"success\" } ",
	     "{\"data\":{\"result\":[],\"resultType\":\"matri\\u0078\"},\"status\":\"success\"}"},
	    /* labels out of order (the querier sorts them; an answer from elsewhere may not) */
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"za\":\"0\","
	     "\"b\":\"x y\",\"m\":\"1\"},\"values\":[[180,\"+Inf\"]]}]},\"warnings\":[\"w\"]}",
	     "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"za\":\"0\","
	     "\"b\":\"x y\",\"m\":\"1\"},\"values\":[[180,\"+Inf\"]]}]},\"warnings\":[\"\\u0077\"]}"},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"values\":[],\"metric\":"
	     "{\"__name__\":\"up\"}}]}}",
	     "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"values\":[],\"metric\":"
	     "{\"__name__\":\"u\\u0070\"}}]}}"},
	};
	for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
		promresp_t x, y;
		CHECK(promresp_decode(&a, PROMRESP_MATRIX, docs[i][0], strlen(docs[i][0]), &x, &err) == 0);
		CHECK(promresp_decode(&a, PROMRESP_MATRIX, docs[i][1], strlen(docs[i][1]), &y, &err) == 0);
		buf_t bx = BUF_INIT, by = BUF_INIT;
		promresp_encode(&bx, &x, false, false);
		promresp_encode(&by, &y, false, false);
		CHECK_STR(bx.p, by.p);
		CHECK(x.nseries == y.nseries && x.nwarnings == y.nwarnings);
		buf_release(&bx);
		buf_release(&by);
	}
	const char *bad[] = {
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":"
	    "[[2,\"1\"],[1,\"1\"]]}]}}", /* out of order */
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"metric\":{},"
	    "\"values\":[]}]}}", /* duplicate key */
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}} x",
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":"
	    "[[01,\"1\"]]}]}}",
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":"
	    "[[1,2]]}]}}",
	    "{\"status\":\"error\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}",
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}",
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"a\":\"1\","
	    "\"a\":\"2\"},\"values\":[]}]}}",
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":"
	    "[[1e400,\"1\"]]}]}}",
	    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":"
	    "[[1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		promresp_t x;
		CHECK(promresp_decode(&a, PROMRESP_MATRIX, bad[i], strlen(bad[i]), &x, &err) != 0);
		for (size_t cut = 0; cut < strlen(bad[i]); cut++) /* truncated: never read past the end */
			promresp_decode(&a, PROMRESP_MATRIX, bad[i], cut, &x, &err);
	}
	arena_release(&a);
}

TEST(ready_answer_only_while_every_piece_is_unchanged)
{
	const char *v1 = "extents of piece 1", *v2 = "extents of piece 2";
	extents_fp_t fp[2] = {fecache_fingerprint(v1, strlen(v1)), fecache_fingerprint(v2, strlen(v2))};
	buf_t v = BUF_INIT;
	extents_json_encode(&v, STR("fe-json:k"), fp, 2, "{\"body\":1}", 10);
	str_t body;
	CHECK(extents_json_decode(buf_str(&v), STR("fe-json:k"), fp, 2, &body));
	CHECK(str_eq_c(body, "{\"body\":1}"));
	CHECK(!extents_json_decode(buf_str(&v), STR("fe-json:x"), fp, 2, &body)); /* hash collision */
	CHECK(!extents_json_decode(buf_str(&v), STR("fe-json:k"), fp, 1, &body)); /* other pieces */
	extents_fp_t changed[2] = {fp[0], fecache_fingerprint("extents of piece 2+", 19)};
	CHECK(!extents_json_decode(buf_str(&v), STR("fe-json:k"), changed, 2, &body));
	changed[1] = (extents_fp_t){fp[1].len, fp[1].hash ^ 1}; /* same length, other bytes */
	CHECK(!extents_json_decode(buf_str(&v), STR("fe-json:k"), changed, 2, &body));
	for (size_t cut = 0; cut < 8 + 9 + 4 + 32; cut++) /* truncated values never read past the end */
		CHECK(!extents_json_decode((str_t){v.p, cut}, STR("fe-json:k"), fp, 2, &body));
	CHECK(!extents_json_decode(STR("garbage"), STR("fe-json:k"), fp, 2, &body));
	buf_release(&v);
}

/* promresp_frag_encode_iov's writes, concatenated (over: a write with more than max iovecs). */
typedef struct iov_cat {
	buf_t b;
	int max, writes;
	bool over;
} iov_cat_t;

static void iov_cat(void *arg, const struct iovec *iov, int n)
{
	iov_cat_t *c = arg;
	c->over |= n > c->max || n < 1;
	c->writes++;
	for (int i = 0; i < n; i++)
		buf_append(&c->b, iov[i].iov_base, iov[i].iov_len);
}

TEST(ready_series_assemble_into_the_merged_answer)
{
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	const char *j1 = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
	                 "{\"metric\":{\"a\":\"1\"},\"values\":[[600,\"1\"],[1200,\"2.5\"]]},"
	                 "{\"metric\":{\"a\":\"3\",\"b\":\"\\u00e9\\\"\"},\"values\":[[600,\"NaN\"]]}]}}";
	const char *j2 = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
	                 "{\"metric\":{\"a\":\"0\"},\"values\":[[1800,\"-1e-07\"]]},"
	                 "{\"metric\":{\"a\":\"3\",\"b\":\"\\u00e9\\\"\"},\"values\":[[1800.5,\"+Inf\"]]}]},"
	                 "\"warnings\":[\"w1\",\"w1\"]}";
	promresp_t r[2], merged;
	CHECK(promresp_decode(&a, PROMRESP_MATRIX, j1, strlen(j1), &r[0], &err) == 0);
	CHECK(promresp_decode(&a, PROMRESP_MATRIX, j2, strlen(j2), &r[1], &err) == 0);
	const promresp_t *in[2] = {&r[0], &r[1]};
	promresp_merge(&a, in, 2, &merged);
	buf_t want = BUF_INIT, got = BUF_INIT, bytes[2] = {BUF_INIT, BUF_INIT};
	promresp_encode(&want, &merged, false, false);
	/* each piece's series through their cache bytes and back */
	promresp_frag_t f[2], back[2];
	const promresp_frag_t *fp[2] = {&back[0], &back[1]};
	for (int i = 0; i < 2; i++) {
		promresp_frag_make(&a, &r[i], &f[i]);
		extents_frag_encode(&bytes[i], &f[i], 600 * i, 1000 + 900 * i);
		int64_t s, e;
		CHECK(extents_frag_decode(&a, buf_str(&bytes[i]), &back[i], &s, &e));
		CHECK(s == 600 * i && e == 1000 + 900 * i);
		promresp_frag_t junk;
		for (size_t cut = 0; cut < bytes[i].n; cut++) /* truncated: never read past the end */
			CHECK(!extents_frag_decode(&a, (str_t){bytes[i].p, cut}, &junk, &s, &e));
	}
	promresp_frag_encode(&got, fp, 2, r[1].warnings, r[1].nwarnings, NULL, NULL);
	CHECK_STR(got.p, want.p);
	/* the same answer as iovecs (points texts referenced, at most max_iov a write): the same bytes */
	for (int max_iov = 3; max_iov <= 9; max_iov++)
		for (size_t part = 1; part <= 4096; part *= 8) {
			iov_cat_t cat = {.b = BUF_INIT, .max = max_iov};
			promresp_iov_sink_t o = {
			    .a = &a, .part = part, .max_iov = max_iov, .write = iov_cat, .arg = &cat};
			promresp_frag_encode_iov(fp, 2, r[1].warnings, r[1].nwarnings, &o);
			buf_putc(&cat.b, 0);
			CHECK_STR(cat.b.p, want.p);
			CHECK(!cat.over);
			CHECK(part > want.n || cat.writes > 1);
			buf_release(&cat.b);
		}
	/* the two pieces' ready series joined into one value: those of the merge */
	{
		buf_t j = BUF_INIT, m = BUF_INIT;
		const promresp_frag_t *two[2] = {&f[0], &f[1]};
		promresp_frag_t fm, back1;
		extents_frag_encode_join(&j, two, 2, 600e3, 1800.5e3);
		promresp_frag_make(&a, &merged, &fm);
		extents_frag_encode(&m, &fm, 600e3, 1800.5e3);
		CHECK(j.n == m.n && memcmp(j.p, m.p, j.n) == 0);
		int64_t s, e;
		CHECK(extents_frag_decode(&a, buf_str(&j), &back1, &s, &e) && back1.n == 3);
		buf_release(&j);
		buf_release(&m);
	}
	/* ready series cut to a part of their range are that part's answer; a series left with no point
	 * is not in it */
	const int64_t cuts[][2] = {{1200e3, 1800e3},   {600e3, 1200e3}, {600e3, 1800e3}, {601e3, 1799e3},
	                           {1800e3, 1800.5e3}, {-5, 599e3},     {1900e3, 2000e3}, {0, 2000e3}};
	for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
		promresp_frag_t m;
		promresp_t part;
		promresp_frag_make(&a, &merged, &m);
		CHECK(promresp_frag_cut(&m, cuts[i][0], cuts[i][1]));
		promresp_extract(&a, &merged, cuts[i][0], cuts[i][1], &part);
		part.nwarnings = 0;
		buf_reset(&want);
		buf_reset(&got);
		promresp_encode(&want, &part, false, false);
		const promresp_frag_t *one = &m;
		promresp_frag_encode(&got, &one, 1, NULL, 0, NULL, NULL);
		CHECK_STR(got.p, want.p);
	}
	/* points text not as promresp_frag_make writes it: refused, never read past its end */
	const char *bad[] = {"[", "[12", "[12\"1\"]", "x", "[1.5,\"1\"]", "[1,\"1\"];[2,\"2\"]", "[-,\"1\"]"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		promresp_frag_series_t fs = {.pts = str_c(bad[i])};
		promresp_frag_t m = {&fs, 1};
		CHECK(!promresp_frag_cut(&m, 1500, 1500));
	}
	buf_release(&want);
	buf_release(&got);
	buf_release(&bytes[0]);
	buf_release(&bytes[1]);
	arena_release(&a);
}

TEST_MAIN()
