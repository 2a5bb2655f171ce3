#include <pthread.h>
#include <sys/stat.h>

#include "base/arena.h"
#include "test.h"
#include "tsdb/block.h"
#include "tsdb/head.h"
#include "tsdb/headchunks.h"
#include "tsdb/wal.h"
#include "tsdb/walrec.h"
#include "tsdb/xor.h"
#include "tsdb_testutil.h"

#define H2 (2 * 3600 * 1000ll)

static head_t *open_head(const char *dir, const head_opts_t *o)
{
	head_t *h;
	err_t err = {0};
	if (head_open(&h, dir, o, INT64_MIN, NULL, &err))
		TEST_FAILF("head_open: %s", err.msg);
	return h;
}

static void close_head(head_t *h)
{
	err_t err = {0};
	if (head_close(h, &err))
		TEST_FAILF("head_close: %s", err.msg);
}

/* {__name__="m", i="<i>", job="j"} */
typedef struct lbl {
	char ibuf[32];
	label_t l[3];
	labels_t ls;
} lbl_t;

static void mk_labels(lbl_t *x, const char *name, int i)
{
	snprintf(x->ibuf, sizeof x->ibuf, "%d", i);
	x->l[0] = (label_t){STR("__name__"), str_c(name)};
	x->l[1] = (label_t){STR("i"), str_c(x->ibuf)};
	x->l[2] = (label_t){STR("job"), STR("j")};
	x->ls = (labels_t){x->l, 3};
}

/* Append one sample to series i; returns the verdict. */
static int put1(head_t *h, const char *name, int i, int64_t t, double v)
{
	lbl_t x;
	mk_labels(&x, name, i);
	head_input_t in = {.ls = x.ls, .t = &t, .v = &v, .n = 1};
	err_t err = {0};
	if (head_append(h, &in, 1, NULL, 0, &err))
		TEST_FAILF("head_append: %s", err.msg);
	return in.verdict;
}

/* Samples of every series matching name=value, concatenated in series order; returns count. */
static size_t read_all(head_t *h, const char *name, const char *value, int64_t mint, int64_t maxt,
                       int64_t *ts, double *vs, size_t cap, size_t *nseries)
{
	arena_t a;
	arena_init(&a, 0);
	matcher_t m;
	err_t err = {0};
	matcher_init(&m, MATCH_EQ, str_c(name), str_c(value), &err);
	series_set_t *set;
	queryable_t *q = head_queryable(h);
	if (q->ops->select(q, &a, &m, 1, mint, maxt, NULL, &set, &err))
		TEST_FAILF("select: %s", err.msg);
	size_t n = 0, ns = 0;
	int rc;
	while ((rc = series_set_next(set, &err)) == 1) {
		ns++;
		sample_iter_t *it = series_set_samples(set);
		int k;
		while ((k = sample_iter_next_batch(it, ts + n, vs + n, (int)(cap - n), &err)) > 0)
			n += (size_t)k;
		if (k < 0)
			TEST_FAILF("samples: %s", err.msg);
	}
	if (rc < 0)
		TEST_FAILF("next: %s", err.msg);
	series_set_close(set);
	matcher_release(&m);
	arena_release(&a);
	if (nseries)
		*nseries = ns;
	return n;
}

TEST(head_append_select_sorted)
{
	char dir[4096];
	tu_tmpdir(dir);
	head_t *h = open_head(dir, NULL);
	/* samples older than the head's max time - 1h are out of bounds: interleave by time */
	for (int k = 0; k < 300; k++)
		for (int i = 9; i >= 0; i--)
			CHECK_EQ_INT(put1(h, "m", i, 1000000 + k * 15000ll, i * 1000 + k), HEAD_OK);
	CHECK_EQ_U64(head_num_series(h), 10);
	CHECK_EQ_INT(head_min_time(h), 1000000);
	CHECK_EQ_INT(head_max_time(h), 1000000 + 299 * 15000ll);
	/* series come back sorted by labels: i="0", i="1", ..., i="9" */
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	matcher_t m;
	matcher_init(&m, MATCH_RE, STR("i"), STR("[0-9]"), &err);
	series_set_t *set;
	queryable_t *q = head_queryable(h);
	CHECK_EQ_INT(q->ops->select(q, &a, &m, 1, 0, INT64_MAX, NULL, &set, &err), 0);
	for (int i = 0; i < 10; i++) {
		CHECK_EQ_INT(series_set_next(set, &err), 1);
		bool f;
		str_t v = labels_get(series_set_labels(set), STR("i"), &f);
		char want[8];
		snprintf(want, sizeof want, "%d", i);
		CHECK_SLICE(v, want);
		const chunk_t *chks;
		int nc = set->ops->chunks(set, &chks);
		CHECK(nc >= 3); /* 300 samples at 15s: chunks of about 120 */
		int64_t total = 0;
		for (int c = 0; c < nc; c++) {
			xor_dec_t d;
			CHECK_EQ_INT(xor_dec_init(&d, chks[c].data, chks[c].len, &err), 0);
			CHECK(xor_dec_count(&d) <= 240);
			total += xor_dec_count(&d);
			CHECK(chks[c].maxt / H2 == chks[c].mint / H2); /* never across a 2h boundary */
		}
		CHECK_EQ_INT(total, 300);
	}
	CHECK_EQ_INT(series_set_next(set, &err), 0);
	series_set_close(set);
	matcher_release(&m);
	arena_release(&a);
	int64_t ts[4000];
	double vs[4000];
	size_t ns;
	/* trimmed to the range, inclusive */
	size_t n = read_all(h, "i", "3", 1000000 + 10 * 15000ll, 1000000 + 20 * 15000ll, ts, vs, 4000, &ns);
	CHECK_EQ_INT(ns, 1);
	CHECK_EQ_INT(n, 11);
	CHECK_EQ_INT(ts[0], 1000000 + 10 * 15000ll);
	CHECK_DBL(vs[0], 3010);
	close_head(h);
	tu_rm_rf(dir);
}

TEST(head_verdicts_all_or_nothing)
{
	char dir[4096];
	tu_tmpdir(dir);
	head_t *h = open_head(dir, &(head_opts_t){.too_far_in_future = 60000});
	int64_t now = 1700000000000ll;
	CHECK_EQ_INT(put1(h, "m", 1, now, 1), HEAD_OK);
	CHECK_EQ_INT(put1(h, "m", 1, now, 1), HEAD_OK);        /* same sample again: fine */
	CHECK_EQ_INT(put1(h, "m", 1, now, 2), HEAD_DUPLICATE); /* same timestamp, other value */
	CHECK_EQ_INT(put1(h, "m", 1, now - 1, 2), HEAD_OUT_OF_ORDER);
	CHECK_EQ_INT(put1(h, "m", 2, now - H2, 2), HEAD_OUT_OF_BOUNDS); /* older than max - 1h */
	CHECK_EQ_INT(put1(h, "m", 2, 4102444800000ll, 2), HEAD_TOO_FAR_IN_FUTURE);
	CHECK_EQ_U64(head_num_series(h), 1); /* rejected new series are not created */
	/* one bad sample rejects its whole series; other series of the commit go in */
	lbl_t a, b;
	mk_labels(&a, "m", 1);
	mk_labels(&b, "m", 3);
	int64_t ta[3] = {now + 1000, now + 2000, now + 1500};
	double va[3] = {5, 6, 7};
	int64_t tb[2] = {now + 1000, now + 2000};
	double vb[2] = {8, 9};
	head_input_t in[2] = {{.ls = a.ls, .t = ta, .v = va, .n = 3}, {.ls = b.ls, .t = tb, .v = vb, .n = 2}};
	err_t err = {0};
	CHECK_EQ_INT(head_append(h, in, 2, NULL, 0, &err), 0);
	CHECK_EQ_INT(in[0].verdict, HEAD_OUT_OF_ORDER);
	CHECK_EQ_INT(in[0].bad_t, now + 1500);
	CHECK_EQ_INT(in[0].appended, 0);
	CHECK_EQ_INT(in[1].verdict, HEAD_OK);
	CHECK_EQ_INT(in[1].appended, 2);
	int64_t ts[10];
	double vs[10];
	CHECK_EQ_INT(read_all(h, "i", "1", 0, INT64_MAX, ts, vs, 10, NULL), 1);
	CHECK_EQ_INT(read_all(h, "i", "3", 0, INT64_MAX, ts, vs, 10, NULL), 2);
	/* series limit: new series refused, existing ones still take samples */
	head_set_series_limit(h, 2);
	CHECK_EQ_INT(put1(h, "m", 4, now + 3000, 1), HEAD_SERIES_LIMIT);
	CHECK_EQ_INT(put1(h, "m", 3, now + 3000, 1), HEAD_OK);
	close_head(h);
	tu_rm_rf(dir);
}

/* Everything acknowledged survives a restart, with and without a clean close (the WAL is synced per
 * commit, so a copy of the directory taken while the head is open is what kill -9 leaves). */
TEST(head_replay_after_close_and_crash)
{
	char dir[4096], copy[4096];
	tu_tmpdir(dir);
	tu_tmpdir(copy);
	head_t *h = open_head(dir, &(head_opts_t){.wal_compression = true});
	for (int k = 0; k < 400; k++)
		for (int i = 0; i < 50; i++)
			CHECK_EQ_INT(put1(h, i % 2 ? "a" : "b", i, 1000 + k * 15000ll, i + k * 0.5), HEAD_OK);
	char cmd[10000];
	snprintf(cmd, sizeof cmd, "cp -a %s/. %s/", dir, copy);
	CHECK_EQ_INT(system(cmd), 0);
	close_head(h);
	for (int round = 0; round < 2; round++) {
		head_replay_stats_t st;
		err_t err = {0};
		CHECK_EQ_INT(head_open(&h, round ? copy : dir, NULL, INT64_MIN, &st, &err), 0);
		CHECK_EQ_U64(head_num_series(h), 50);
		CHECK(st.mmapped_chunks > 0 || round == 1);
		int64_t *ts = xmalloc(30000 * sizeof(int64_t));
		double *vs = xmalloc(30000 * sizeof(double));
		size_t ns;
		CHECK_EQ_INT(read_all(h, "job", "j", 0, INT64_MAX, ts, vs, 30000, &ns), 50 * 400);
		CHECK_EQ_INT(ns, 50);
		CHECK_EQ_INT(read_all(h, "i", "7", 0, INT64_MAX, ts, vs, 30000, NULL), 400);
		for (int k = 0; k < 400; k++) {
			CHECK_EQ_INT(ts[k], 1000 + k * 15000ll);
			CHECK_DBL(vs[k], 7 + k * 0.5);
		}
		free(ts);
		free(vs);
		/* appends continue where they stopped */
		CHECK_EQ_INT(put1(h, "a", 7, 1000 + 399 * 15000ll, 0), HEAD_DUPLICATE);
		CHECK_EQ_INT(put1(h, "a", 7, 1000 + 400 * 15000ll, 0), HEAD_OK);
		close_head(h);
	}
	tu_rm_rf(dir);
	tu_rm_rf(copy);
}

/* A torn WAL tail (the last segment cut anywhere) loses only the records after the cut. */
TEST(head_replay_torn_wal)
{
	char dir[4096];
	tu_tmpdir(dir);
	head_t *h = open_head(dir, NULL);
	for (int k = 0; k < 100; k++)
		CHECK_EQ_INT(put1(h, "m", 1, 1000 + k * 1000ll, k), HEAD_OK);
	close_head(h);
	char wdir[4096], seg[4096];
	snprintf(wdir, sizeof wdir, "%s/wal", dir);
	int first, last;
	err_t err = {0};
	CHECK_EQ_INT(wal_segments(wdir, &first, &last, &err), 0);
	wal_segment_path(seg, wdir, last - 1 >= first ? last - 1 : last);
	size_t len;
	uint8_t *f = tu_read_file(seg, &len);
	/* drop chunks_head so every sample has to come from the WAL */
	char ch[4096];
	snprintf(ch, sizeof ch, "%s/chunks_head", dir);
	tu_rm_rf(ch);
	/* the commits end somewhere before the page padding; cut in the middle of the data */
	size_t data_end = len;
	while (data_end > 0 && f[data_end - 1] == 0)
		data_end--;
	tu_write_file(seg, f, data_end / 2);
	free(f);
	head_replay_stats_t st;
	CHECK_EQ_INT(head_open(&h, dir, NULL, INT64_MIN, &st, &err), 0);
	CHECK(st.wal_repaired);
	int64_t ts[200];
	double vs[200];
	size_t n = read_all(h, "i", "1", 0, INT64_MAX, ts, vs, 200, NULL);
	CHECK(n > 10 && n < 100);
	for (size_t k = 0; k < n; k++)
		CHECK_EQ_INT(ts[k], 1000 + (int64_t)k * 1000); /* a prefix, nothing else */
	close_head(h);
	/* and it stays consistent on the next start */
	CHECK_EQ_INT(head_open(&h, dir, NULL, INT64_MIN, &st, &err), 0);
	CHECK(!st.wal_repaired);
	CHECK_EQ_INT(read_all(h, "i", "1", 0, INT64_MAX, ts, vs, 200, NULL), n);
	close_head(h);
	tu_rm_rf(dir);
}

TEST(head_truncate_gc_and_checkpoint)
{
	char dir[4096];
	tu_tmpdir(dir);
	head_t *h = open_head(dir, &(head_opts_t){.wal_segment_size = 2 * WAL_PAGE_SIZE});
	/* "old" series only before 2h, "both" series across, 4h of 15s samples */
	for (int64_t t = 0; t < 2 * H2; t += 15000) {
		if (t < H2)
			for (int i = 0; i < 20; i++)
				CHECK_EQ_INT(put1(h, "old", i, t, 1), HEAD_OK);
		for (int i = 0; i < 5; i++)
			CHECK_EQ_INT(put1(h, "both", i, t, (double)t), HEAD_OK);
	}
	CHECK_EQ_U64(head_num_series(h), 25);
	err_t err = {0};
	CHECK_EQ_INT(head_truncate(h, H2, &err), 0);
	CHECK_EQ_U64(head_num_series(h), 5);
	CHECK_EQ_INT(head_min_time(h), H2);
	CHECK_EQ_INT(head_min_valid_time(h), H2);
	CHECK_EQ_INT(put1(h, "both", 0, H2 - 1, 1), HEAD_OUT_OF_BOUNDS);
	int64_t *ts = xmalloc(10000 * sizeof(int64_t));
	double *vs = xmalloc(10000 * sizeof(double));
	CHECK_EQ_INT(read_all(h, "__name__", "old", 0, INT64_MAX, ts, vs, 10000, NULL), 0);
	CHECK_EQ_INT(read_all(h, "i", "2", 0, INT64_MAX, ts, vs, 10000, NULL), (size_t)(H2 / 15000));
	CHECK_EQ_INT(ts[0], H2);
	/* the label values of removed series are gone, new series reuse the tables */
	arena_t a;
	arena_init(&a, 0);
	str_t *vals;
	size_t nv;
	queryable_t *q = head_queryable(h);
	CHECK_EQ_INT(q->ops->label_values(q, &a, STR("__name__"), NULL, 0, 0, INT64_MAX, &vals, &nv, &err),
	             0);
	CHECK_EQ_INT(nv, 1);
	CHECK_SLICE(vals[0], "both");
	CHECK_EQ_INT(q->ops->label_values(q, &a, STR("i"), NULL, 0, 0, INT64_MAX, &vals, &nv, &err), 0);
	CHECK_EQ_INT(nv, 5);
	arena_release(&a);
	for (int i = 0; i < 30; i++)
		CHECK_EQ_INT(put1(h, "new", i, 2 * H2, 1), HEAD_OK);
	CHECK_EQ_U64(head_num_series(h), 35);
	CHECK_EQ_INT(head_checkpoint(h, &err), 0);
	close_head(h);
	char cp[4096];
	snprintf(cp, sizeof cp, "%s/wal", dir);
	head_replay_stats_t st;
	CHECK_EQ_INT(head_open(&h, dir, NULL, H2, &st, &err), 0);
	CHECK_EQ_U64(head_num_series(h), 35);
	CHECK_EQ_INT(read_all(h, "i", "2", 0, INT64_MAX, ts, vs, 10000, NULL), (size_t)(H2 / 15000) + 1);
	CHECK_EQ_INT(read_all(h, "__name__", "old", 0, INT64_MAX, ts, vs, 10000, NULL), 0);
	close_head(h);
	free(ts);
	free(vs);
	tu_rm_rf(dir);
}

/* Full-chunk lists: compact entries count back from the open chunk's start and are rewritten when it
 * moves; a series whose chunks lie more than 49 days apart switches to wide entries. Chunks also end
 * before their span reaches 2^31 ms when the chunk range is longer than that. Every sample comes back,
 * before and after a restart and a truncation. */
TEST(head_chunk_lists_compact_and_wide)
{
	char dir[4096];
	tu_tmpdir(dir);
	const int64_t day = 24 * 3600 * 1000ll;
	head_opts_t o = {.chunk_range = 60 * day};
	head_t *h = open_head(dir, &o);
	enum { N = 1200 };
	static int64_t want[2][N];
	/* series 0: 15 s apart (compact: ~10 chunks); series 1: runs of 200 samples 51 days apart (wide) */
	for (int k = 0; k < N; k++) {
		want[0][k] = 1000000 + k * 15000ll;
		want[1][k] = 1000000 + (k / 200) * 51 * day + (k % 200) * 15000ll;
	}
	/* series 2: one sample every 30 days under a 60-day chunk range: each chunk holds one. All in
	 * time order (the head refuses samples older than its max time - chunk range / 2). */
	int k0 = 0, k1 = 0, k2 = 0;
	while (k0 < N || k1 < N || k2 < 4) {
		int64_t t0 = k0 < N ? want[0][k0] : INT64_MAX, t1 = k1 < N ? want[1][k1] : INT64_MAX,
		        t2 = k2 < 4 ? 1000000 + k2 * 30 * day + 1 : INT64_MAX;
		if (t0 <= t1 && t0 <= t2) {
			CHECK_EQ_INT(put1(h, "m", 0, t0, k0), HEAD_OK);
			k0++;
		} else if (t1 <= t2) {
			CHECK_EQ_INT(put1(h, "m", 1, t1, k1), HEAD_OK);
			k1++;
		} else {
			CHECK_EQ_INT(put1(h, "m", 2, t2, k2), HEAD_OK);
			k2++;
		}
	}
	int64_t *ts = xmalloc(N * sizeof(int64_t));
	double *vs = xmalloc(N * sizeof(double));
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 2; i++) {
			char iv[8];
			snprintf(iv, sizeof iv, "%d", i);
			CHECK_EQ_INT(read_all(h, "i", iv, 0, INT64_MAX, ts, vs, N, NULL), N);
			for (int k = 0; k < N; k++)
				if (ts[k] != want[i][k] || vs[k] != k)
					TEST_FAILF("round %d series %d sample %d: %lld %g", round, i, k, (long long)ts[k],
					           vs[k]);
			/* a window inside the series' third run of chunks */
			CHECK_EQ_INT(read_all(h, "i", iv, want[i][500], want[i][520], ts, vs, N, NULL), 21);
			CHECK_EQ_INT(ts[0], want[i][500]);
		}
		CHECK_EQ_INT(read_all(h, "i", "2", 0, INT64_MAX, ts, vs, N, NULL), 4);
		CHECK_EQ_INT(ts[3], 1000000 + 90 * day + 1);
		/* a stored sample sent again is found in its chunk */
		CHECK_EQ_INT(put1(h, "m", 1, want[1][N - 150], N - 150), HEAD_OK);
		CHECK_EQ_INT(put1(h, "m", 1, want[1][N - 150], 1), HEAD_DUPLICATE);
		close_head(h);
		h = open_head(dir, &o);
	}
	err_t err = {0};
	CHECK_EQ_INT(head_truncate(h, want[1][800], &err), 0);
	CHECK_EQ_INT(read_all(h, "i", "1", 0, INT64_MAX, ts, vs, N, NULL), N - 800);
	CHECK_EQ_INT(ts[0], want[1][800]);
	CHECK_EQ_INT(put1(h, "m", 1, want[1][N - 1] + 15000, 7), HEAD_OK);
	CHECK_EQ_INT(read_all(h, "i", "1", 0, INT64_MAX, ts, vs, N, NULL), N - 799);
	close_head(h);
	free(ts);
	free(vs);
	tu_rm_rf(dir);
}

TEST(head_out_of_order_window)
{
	char dir[4096];
	tu_tmpdir(dir);
	head_opts_t o = {.ooo_window = 600000};
	head_t *h = open_head(dir, &o);
	int64_t base = 10 * H2;
	for (int k = 0; k < 100; k++)
		CHECK_EQ_INT(put1(h, "m", 1, base + k * 15000ll, k), HEAD_OK);
	int64_t hmax = base + 99 * 15000ll;
	CHECK_EQ_INT(put1(h, "m", 1, hmax - 1000, -1), HEAD_OK);        /* inside the window */
	CHECK_EQ_INT(put1(h, "m", 1, hmax - 1000, -1), HEAD_OK);        /* same again */
	CHECK_EQ_INT(put1(h, "m", 1, hmax - 1000, -2), HEAD_DUPLICATE); /* other value */
	CHECK_EQ_INT(put1(h, "m", 1, hmax - 700000, 0), HEAD_TOO_OLD);
	CHECK_EQ_INT(put1(h, "m", 2, hmax - 5000, 7), HEAD_OK);  /* a new series: in order */
	CHECK_EQ_INT(put1(h, "m", 2, hmax - 10000, 6), HEAD_OK); /* then out of order */
	CHECK_EQ_U64(head_ooo_samples(h), 2);
	int64_t ts[300];
	double vs[300];
	CHECK_EQ_INT(read_all(h, "i", "1", 0, INT64_MAX, ts, vs, 300, NULL), 101);
	for (int k = 1; k < 101; k++)
		CHECK(ts[k] > ts[k - 1]);
	CHECK_EQ_INT(ts[99], hmax - 1000);
	CHECK_DBL(vs[99], -1);
	close_head(h);
	/* replayed from wbl/ */
	h = open_head(dir, &o);
	CHECK_EQ_U64(head_ooo_samples(h), 2);
	CHECK_EQ_INT(read_all(h, "i", "2", 0, INT64_MAX, ts, vs, 300, NULL), 2);
	CHECK_EQ_INT(ts[0], hmax - 10000);
	/* swap: still visible; release: gone from the head */
	int seg;
	err_t err = {0};
	int64_t omin, omax;
	CHECK_EQ_U64(head_ooo_swap(h, &seg, &omin, &omax, &err), 2);
	CHECK_EQ_INT(omin, hmax - 10000);
	CHECK_EQ_INT(omax, hmax - 1000);
	CHECK_EQ_INT(read_all(h, "i", "1", 0, INT64_MAX, ts, vs, 300, NULL), 101);
	arena_t a;
	arena_init(&a, 0);
	series_set_t *set;
	CHECK_EQ_INT(head_select(h, &a, NULL, 0, 0, INT64_MAX, HEAD_SEL_OOO_CUT, &set, &err), 0);
	int nser = 0;
	while (series_set_next(set, &err) == 1)
		nser++;
	CHECK_EQ_INT(nser, 2);
	series_set_close(set);
	arena_release(&a);
	CHECK_EQ_INT(head_ooo_release(h, seg, &err), 0);
	CHECK_EQ_U64(head_ooo_samples(h), 0);
	CHECK_EQ_INT(read_all(h, "i", "1", 0, INT64_MAX, ts, vs, 300, NULL), 100);
	close_head(h);
	h = open_head(dir, &o);
	CHECK_EQ_U64(head_ooo_samples(h), 0);
	close_head(h);
	tu_rm_rf(dir);
}

TEST(head_matchers_and_labels)
{
	char dir[4096];
	tu_tmpdir(dir);
	head_t *h = open_head(dir, NULL);
	for (int i = 0; i < 20; i++)
		CHECK_EQ_INT(put1(h, i < 10 ? "a" : "b", i, 1000, i), HEAD_OK);
	/* a series without the job label */
	label_t l[2] = {{STR("__name__"), STR("a")}, {STR("x"), STR("1")}};
	int64_t t = 1000;
	double v = 1;
	head_input_t in = {.ls = {l, 2}, .t = &t, .v = &v, .n = 1};
	err_t err = {0};
	CHECK_EQ_INT(head_append(h, &in, 1, NULL, 0, &err), 0);
	struct {
		match_type_t t;
		const char *n, *v;
		int want;
	} cases[] = {
	    {MATCH_EQ, "__name__", "a", 11}, {MATCH_NEQ, "job", "j", 1},      {MATCH_EQ, "job", "", 1},
	    {MATCH_NEQ, "job", "", 20},      {MATCH_RE, "i", "1.*", 11},      {MATCH_NRE, "i", "1.*", 10},
	    {MATCH_RE, "i", "3|4|nope", 2},  {MATCH_RE, "nolabel", ".*", 21}, {MATCH_EQ, "nolabel", "x", 0},
	};
	queryable_t *q = head_queryable(h);
	for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
		arena_t a;
		arena_init(&a, 0);
		matcher_t m;
		CHECK_EQ_INT(matcher_init(&m, cases[c].t, str_c(cases[c].n), str_c(cases[c].v), &err), 0);
		series_set_t *set;
		CHECK_EQ_INT(q->ops->select(q, &a, &m, 1, 0, INT64_MAX, NULL, &set, &err), 0);
		int n = 0;
		while (series_set_next(set, &err) == 1)
			n++;
		if (n != cases[c].want)
			TEST_FAILF("case %zu (%s %s %s): %d series, want %d", c, cases[c].n,
			           match_type_str(cases[c].t), cases[c].v, n, cases[c].want);
		series_set_close(set);
		matcher_release(&m);
		arena_release(&a);
	}
	arena_t a;
	arena_init(&a, 0);
	str_t *names;
	size_t nn;
	CHECK_EQ_INT(q->ops->label_names(q, &a, NULL, 0, 0, INT64_MAX, &names, &nn, &err), 0);
	CHECK_EQ_INT(nn, 4);
	CHECK_SLICE(names[0], "__name__");
	CHECK_SLICE(names[3], "x");
	matcher_t m;
	matcher_init(&m, MATCH_EQ, STR("__name__"), STR("b"), &err);
	CHECK_EQ_INT(q->ops->label_names(q, &a, &m, 1, 0, INT64_MAX, &names, &nn, &err), 0);
	CHECK_EQ_INT(nn, 3);
	str_t *vals;
	CHECK_EQ_INT(q->ops->label_values(q, &a, STR("i"), &m, 1, 0, INT64_MAX, &vals, &nn, &err), 0);
	CHECK_EQ_INT(nn, 10);
	CHECK_SLICE(vals[0], "10");
	/* a range outside the head has nothing */
	CHECK_EQ_INT(q->ops->label_names(q, &a, NULL, 0, 5000, 6000, &names, &nn, &err), 0);
	CHECK_EQ_INT(nn, 0);
	matcher_release(&m);
	arena_release(&a);
	close_head(h);
	tu_rm_rf(dir);
}

TEST(head_metadata_logged_and_replayed)
{
	char dir[4096];
	tu_tmpdir(dir);
	head_t *h = open_head(dir, NULL);
	CHECK_EQ_INT(put1(h, "req_total", 1, 1000, 1), HEAD_OK);
	head_meta_input_t md = {STR("req"), WALREC_MT_COUNTER, STR(""), STR("Requests.")};
	err_t err = {0};
	CHECK_EQ_INT(head_append(h, NULL, 0, &md, 1, &err), 0);
	CHECK_EQ_INT(put1(h, "req_total", 2, 1000, 1), HEAD_OK); /* a new series of the family */
	close_head(h);
	/* the WAL holds Metadata records for both series */
	char seg[4096], wdir[4096];
	snprintf(wdir, sizeof wdir, "%s/wal", dir);
	wal_segment_path(seg, wdir, 0);
	wal_reader_t r;
	CHECK_EQ_INT(wal_reader_open(&r, seg, &err), 0);
	str_t rec;
	int nmeta = 0;
	while (wal_reader_next(&r, &rec, &err) == 1) {
		if (walrec_type(rec) != WALREC_METADATA)
			continue;
		walrec_iter_t it;
		walrec_meta_t m;
		CHECK_EQ_INT(walrec_iter_init(&it, rec, &err), 0);
		while (walrec_next_metadata(&it, &m, &err) == 1) {
			CHECK_EQ_INT(m.type, WALREC_MT_COUNTER);
			CHECK_SLICE(m.help, "Requests.");
			nmeta++;
		}
		walrec_iter_release(&it);
	}
	wal_reader_close(&r);
	CHECK_EQ_INT(nmeta, 2);
	h = open_head(dir, NULL);
	CHECK_EQ_U64(head_num_series(h), 2);
	close_head(h);
	tu_rm_rf(dir);
}

typedef struct conc {
	head_t *h;
	int id;
	volatile int stop;
	int fail;
} conc_t;

static void *writer(void *arg)
{
	conc_t *c = arg;
	for (int k = 0; k < 300; k++) {
		lbl_t x[20];
		head_input_t in[20];
		int64_t t = 1000 + k * 1000ll;
		double v = k;
		for (int i = 0; i < 20; i++) {
			mk_labels(&x[i], "w", c->id * 1000 + (i + k) % 60);
			in[i] = (head_input_t){.ls = x[i].ls, .t = &t, .v = &v, .n = 1};
		}
		err_t err = {0};
		if (head_append(c->h, in, 20, NULL, 0, &err))
			c->fail = 1;
		for (int i = 0; i < 20; i++)
			if (in[i].verdict != HEAD_OK)
				c->fail = 2;
	}
	return NULL;
}

static void *reader(void *arg)
{
	conc_t *c = arg;
	while (!c->stop) {
		arena_t a;
		arena_init(&a, 0);
		matcher_t m;
		err_t err = {0};
		matcher_init(&m, MATCH_EQ, STR("job"), STR("j"), &err);
		series_set_t *set;
		queryable_t *q = head_queryable(c->h);
		if (q->ops->select(q, &a, &m, 1, 0, INT64_MAX, NULL, &set, &err))
			c->fail = 3;
		while (series_set_next(set, &err) == 1) {
			sample_iter_t *it = series_set_samples(set);
			int64_t ts[256];
			double vs[256];
			int64_t last = INT64_MIN;
			int k;
			while ((k = sample_iter_next_batch(it, ts, vs, 256, &err)) > 0)
				for (int i = 0; i < k; i++) {
					if (ts[i] <= last)
						c->fail = 4;
					last = ts[i];
				}
			if (k < 0)
				c->fail = 5;
		}
		series_set_close(set);
		matcher_release(&m);
		arena_release(&a);
	}
	return NULL;
}

TEST(head_concurrent_appends_and_queries)
{
	char dir[4096];
	tu_tmpdir(dir);
	head_t *h = open_head(dir, NULL);
	conc_t w[3], rd = {h, 99, 0, 0};
	pthread_t tw[3], tr;
	pthread_create(&tr, NULL, reader, &rd);
	for (int i = 0; i < 3; i++) {
		w[i] = (conc_t){h, i, 0, 0};
		pthread_create(&tw[i], NULL, writer, &w[i]);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(tw[i], NULL);
		CHECK_EQ_INT(w[i].fail, 0);
	}
	rd.stop = 1;
	pthread_join(tr, NULL);
	CHECK_EQ_INT(rd.fail, 0);
	CHECK_EQ_U64(head_num_series(h), 180);
	close_head(h);
	tu_rm_rf(dir);
}

static int count_chunk(void *arg, uint64_t sref, uint64_t cref, int64_t mint, int64_t maxt, uint8_t enc)
{
	(void)cref, (void)maxt, (void)enc;
	int *n = arg;
	if (mint != (int64_t)(sref - 1) * 10)
		return -1;
	(*n)++;
	return 0;
}

TEST(headchunks_roundtrip_repair_truncate)
{
	char dir[4096];
	tu_tmpdir(dir);
	headchunks_t *hc;
	err_t err = {0};
	bool rep;
	CHECK_EQ_INT(headchunks_open(&hc, dir, &rep, &err), 0);
	uint64_t refs[50];
	uint8_t data[100];
	for (int i = 0; i < 100; i++)
		data[i] = (uint8_t)(i * 3);
	for (int i = 0; i < 50; i++)
		CHECK_EQ_INT(headchunks_write(hc, (uint64_t)i + 1, i * 10, i * 10 + 9, 1, data,
		                              20 + (size_t)i, &refs[i], &err),
		             0);
	CHECK_EQ_U64(refs[0], (1ull << 32) | 8);
	for (int i = 0; i < 50; i++) {
		chunk_t c;
		CHECK_EQ_INT(headchunks_get(hc, refs[i], &c, &err),
		             0); /* read back through the buffer flush */
		CHECK_EQ_INT(c.len, 20 + i);
		CHECK(memcmp(c.data, data, c.len) == 0);
	}
	CHECK_EQ_INT(headchunks_close(hc, &err), 0);
	/* tear the tail: the entries before the cut stay */
	char f1[4096];
	snprintf(f1, sizeof f1, "%s/000001", dir);
	size_t len;
	uint8_t *f = tu_read_file(f1, &len);
	tu_write_file(f1, f, len - 10);
	free(f);
	CHECK_EQ_INT(headchunks_open(&hc, dir, &rep, &err), 0);
	CHECK(rep);
	int count = 0;
	CHECK_EQ_INT(headchunks_iterate(hc, count_chunk, &count, &err), 0);
	CHECK_EQ_INT(count, 49);
	CHECK_EQ_INT(headchunks_current_file(hc), 2);
	chunk_t c;
	CHECK_EQ_INT(headchunks_get(hc, refs[48], &c, &err), 0);
	CHECK(headchunks_get(hc, refs[49], &c, &err) != 0);
	CHECK_EQ_INT(headchunks_truncate(hc, 2, &err), 0);
	CHECK(headchunks_get(hc, refs[0], &c, &err) != 0);
	CHECK_EQ_INT(headchunks_close(hc, &err), 0);
	struct stat sst;
	CHECK(stat(f1, &sst) != 0);
	tu_rm_rf(dir);
}

TEST_MAIN()
