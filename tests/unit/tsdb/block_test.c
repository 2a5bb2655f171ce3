#include <dirent.h>
#include <string.h>

#include "test.h"
#include "tsdb/block.h"
#include "tsdb/xor.h"
#include "tsdb_testutil.h"

#define NS 5
#define NSAMP 500

static void series_labels(arena_t *a, int i, labels_t *ls)
{
	ls->v = arena_alloc(a, 2 * sizeof(label_t));
	ls->n = 2;
	ls->v[0] = (label_t){STR("__name__"), STR("m")};
	ls->v[1] = (label_t){STR("i"), str_c(arena_printf(a, "%d", i))};
}

static int64_t ts_of(int s, int k)
{
	return 1000000 + (int64_t)k * 15000 + s;
}

/* NS series (written in reverse order), NSAMP samples each, series s value = s*1000 + k. */
static void write_block(const char *parent, char *out)
{
	block_writer_t *bw;
	err_t err = {0};
	if (block_writer_new(&bw, parent, NULL, &err))
		TEST_FAILF("%s", err.msg);
	arena_t a;
	arena_init(&a, 0);
	static int64_t t[NSAMP];
	static double v[NSAMP];
	for (int s = NS - 1; s >= 0; s--) {
		labels_t ls;
		series_labels(&a, s, &ls);
		for (int k = 0; k < NSAMP; k++)
			t[k] = ts_of(s, k), v[k] = s * 1000 + k;
		if (block_writer_add_series(bw, &ls, t, v, NSAMP, &err))
			TEST_FAILF("%s", err.msg);
	}
	labels_t empty;
	series_labels(&a, 99, &empty);
	CHECK_EQ_INT(block_writer_add_series(bw, &empty, t, v, 0, &err), 0); /* skipped */
	if (block_writer_finish(bw, NULL, out, &err))
		TEST_FAILF("%s", err.msg);
	arena_release(&a);
}

TEST(block_write_open_select)
{
	char parent[4096], dir[4096];
	tu_tmpdir(parent);
	write_block(parent, dir);
	block_t *b;
	err_t err = {0};
	CHECK_EQ_INT(block_open(&b, dir, &err), 0);
	CHECK_EQ_U64(b->meta.num_series, NS);
	CHECK_EQ_U64(b->meta.num_samples, NS * NSAMP);
	CHECK_EQ_INT(b->meta.mint, ts_of(0, 0));
	CHECK_EQ_INT(b->meta.maxt, ts_of(NS - 1, NSAMP - 1) + 1);
	CHECK_EQ_INT(b->meta.level, 1);
	CHECK_EQ_INT(b->meta.nsources, 1);
	CHECK_STR(b->meta.sources[0], b->meta.ulid);
	/* 500 samples at 15s never cross a 2h boundary at 1000000..8.5M ms? they do: chunks cut there */
	CHECK(b->meta.num_chunks >= (uint64_t)NS * 4);
	arena_t a;
	arena_init(&a, 0);
	matcher_t m;
	CHECK_EQ_INT(matcher_init(&m, MATCH_RE, STR("i"), STR("1|3"), &err), 0);
	int64_t mint = ts_of(0, 100), maxt = ts_of(0, 300);
	series_set_t *ss;
	CHECK_EQ_INT(b->q.ops->select(&b->q, &a, &m, 1, mint, maxt, NULL, &ss, &err), 0);
	int want_s[] = {1, 3}, ns = 0, rc;
	while ((rc = series_set_next(ss, &err)) == 1) {
		const labels_t *ls = series_set_labels(ss);
		bool found;
		int s = want_s[ns++];
		char sv[8];
		snprintf(sv, sizeof sv, "%d", s);
		CHECK_SLICE(labels_get(ls, STR("i"), &found), sv);
		const chunk_t *chks;
		int nc = ss->ops->chunks(ss, &chks);
		CHECK(nc >= 1);
		for (int i = 0; i < nc; i++)
			CHECK(chks[i].maxt >= mint && chks[i].mint <= maxt);
		sample_iter_t *it = series_set_samples(ss);
		int64_t t[64];
		double v[64];
		int n, k = 100 + (s > 0 ? 0 : 0), total = 0;
		/* ts_of(s, 100) = mint + s > mint: first sample is k=100; last k with ts_of(s,k) <= maxt is 299 */
		while ((n = sample_iter_next_batch(it, t, v, 64, &err)) > 0) {
			for (int i = 0; i < n; i++, k++) {
				CHECK_EQ_INT(t[i], ts_of(s, k));
				CHECK_DBL(v[i], s * 1000 + k);
			}
			total += n;
		}
		CHECK_EQ_INT(n, 0);
		CHECK_EQ_INT(total, 200);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(ns, 2);
	series_set_close(ss);
	/* outside the block's range: empty */
	CHECK_EQ_INT(b->q.ops->select(&b->q, &a, &m, 1, 0, 10, NULL, &ss, &err), 0);
	CHECK_EQ_INT(series_set_next(ss, &err), 0);
	series_set_close(ss);
	/* label names and values */
	str_t *out;
	size_t n;
	CHECK_EQ_INT(b->q.ops->label_values(&b->q, &a, STR("i"), NULL, 0, INT64_MIN, INT64_MAX, &out, &n, &err), 0);
	CHECK_EQ_INT(n, NS);
	CHECK_EQ_INT(b->q.ops->label_names(&b->q, &a, &m, 1, INT64_MIN, INT64_MAX, &out, &n, &err), 0);
	CHECK_EQ_INT(n, 2);
	matcher_release(&m);
	arena_release(&a);
	block_close(b);
	tu_rm_rf(parent);
}

TEST(block_writer_chunk_cutting)
{
	/* 1000 samples at 1s within one 2h range: chunks of 120 samples like Prometheus' head
	 * (the estimate at 30 samples gives 120-sample chunks). */
	char parent[4096], dir[4096];
	tu_tmpdir(parent);
	block_writer_t *bw;
	err_t err = {0};
	CHECK_EQ_INT(block_writer_new(&bw, parent, NULL, &err), 0);
	static int64_t t[1000];
	static double v[1000];
	for (int k = 0; k < 1000; k++)
		t[k] = 7200000 + k * 1000, v[k] = k;
	labels_t ls = {(label_t[]){{STR("a"), STR("b")}}, 1};
	CHECK_EQ_INT(block_writer_add_series(bw, &ls, t, v, 1000, &err), 0);
	/* out of order samples and duplicates are rejected */
	int64_t bad_t[] = {5, 5};
	double bad_v[] = {1, 2};
	labels_t ls2 = {(label_t[]){{STR("a"), STR("c")}}, 1};
	CHECK_EQ_INT(block_writer_add_series(bw, &ls2, bad_t, bad_v, 2, &err), ERR_INVALID);
	CHECK_EQ_INT(block_writer_finish(bw, NULL, dir, &err), 0);
	block_t *b;
	CHECK_EQ_INT(block_open(&b, dir, &err), 0);
	arena_t a;
	arena_init(&a, 0);
	series_set_t *ss;
	CHECK_EQ_INT(b->q.ops->select(&b->q, &a, NULL, 0, INT64_MIN, INT64_MAX, NULL, &ss, &err), 0);
	CHECK_EQ_INT(series_set_next(ss, &err), 1);
	const chunk_t *chks;
	int nc = ss->ops->chunks(ss, &chks);
	CHECK_EQ_U64(b->meta.num_chunks, (uint64_t)nc);
	int at = 0;
	for (int i = 0; i < nc; i++) {
		xor_dec_t d;
		CHECK_EQ_INT(xor_dec_init(&d, chks[i].data, chks[i].len, &err), 0);
		int cnt = xor_dec_count(&d);
		/* Prometheus' estimate at the 30th sample: end = start + 2h / floor(2h / (30s * 4)) -> 117 */
		if (i == 0)
			CHECK_EQ_INT(cnt, 117);
		CHECK(cnt <= 240);
		CHECK_EQ_INT(chks[i].mint, t[at]);
		at += cnt;
		CHECK_EQ_INT(chks[i].maxt, t[at - 1]);
	}
	CHECK_EQ_INT(at, 1000);
	CHECK_EQ_INT(series_set_next(ss, &err), 0);
	series_set_close(ss);
	arena_release(&a);
	block_close(b);
	/* a duplicate series fails at finish and leaves no directory behind */
	CHECK_EQ_INT(block_writer_new(&bw, parent, NULL, &err), 0);
	CHECK_EQ_INT(block_writer_add_series(bw, &ls, t, v, 10, &err), 0);
	CHECK_EQ_INT(block_writer_add_series(bw, &ls, t, v, 10, &err), 0);
	CHECK_EQ_INT(block_writer_finish(bw, NULL, dir, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "added twice") != NULL);
	tu_rm_rf(parent);
}

/* NSP series in a scrambled order (__name__ of 5, unique id, "odd" on half of them), 3 samples
 * each, with the given mem_limit (0 = default); returns the block dir in out. */
#define NSP 2000
static void write_spill_block(const char *parent, size_t mem_limit, bool dup, char *out, size_t *runs, int *rc_out,
			      err_t *err)
{
	block_writer_opts_t o = {.mem_limit = mem_limit};
	block_writer_t *bw;
	if (block_writer_new(&bw, parent, &o, err))
		TEST_FAILF("%s", err->msg);
	arena_t a;
	arena_init(&a, 0);
	for (int k = 0; k < NSP; k++) {
		int i = dup && k == NSP - 1 ? 0 : (k * 7919) % NSP; /* 7919 is prime: a permutation */
		label_t l[3];
		size_t n = 0;
		l[n++] = (label_t){STR("__name__"), str_c(arena_printf(&a, "m%d", i % 5))};
		l[n++] = (label_t){STR("id"), str_c(arena_printf(&a, "%d", i))};
		if (i % 2)
			l[n++] = (label_t){STR("odd"), STR("yes")};
		labels_t ls = {l, n};
		int64_t t[3] = {1000 + i, 2000 + i, 3000 + i};
		double v[3] = {i, i + 1, i + 2};
		if (block_writer_add_series(bw, &ls, t, v, 3, err))
			TEST_FAILF("%s", err->msg);
		arena_reset(&a);
	}
	arena_release(&a);
	*runs = block_writer_spilled_runs(bw);
	*rc_out = block_writer_finish(bw, NULL, out, err);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static void check_same_file(const char *d1, const char *d2, const char *name)
{
	char p1[4200], p2[4200];
	snprintf(p1, sizeof p1, "%s/%s", d1, name);
	snprintf(p2, sizeof p2, "%s/%s", d2, name);
	size_t l1, l2;
	uint8_t *b1 = tu_read_file(p1, &l1), *b2 = tu_read_file(p2, &l2);
	CHECK_EQ_U64(l1, l2);
	CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
	free(b1);
	free(b2);
}

TEST(block_writer_spilled_runs_give_identical_blocks)
{
	char parent[4096], ref[4096], dir[4096];
	tu_tmpdir(parent);
	err_t err = {0};
	size_t runs;
	int rc;
	write_spill_block(parent, 0, false, ref, &runs, &rc, &err);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(runs, 0);
	/* 4 KiB: tens of runs; 1 byte: a run per series, merged in three levels (2000 -> 125 -> 8) */
	size_t limits[] = {4096, 1};
	for (size_t k = 0; k < ARRAY_LEN(limits); k++) {
		write_spill_block(parent, limits[k], false, dir, &runs, &rc, &err);
		CHECK_EQ_INT(rc, 0);
		CHECK(runs > (k == 0 ? 16u : NSP - 1u));
		check_same_file(ref, dir, "index");
		check_same_file(ref, dir, "chunks/000001");
		CHECK_EQ_INT(count_entries(dir), 4); /* chunks, index, meta.json, tombstones: no temp files */
		block_t *b;
		CHECK_EQ_INT(block_open(&b, dir, &err), 0);
		CHECK_EQ_U64(b->meta.num_series, NSP);
		CHECK_EQ_U64(b->meta.num_samples, 3 * NSP);
		arena_t a;
		arena_init(&a, 0);
		matcher_t m;
		CHECK_EQ_INT(matcher_init(&m, MATCH_EQ, STR("odd"), STR("yes"), &err), 0);
		series_set_t *ss;
		CHECK_EQ_INT(b->q.ops->select(&b->q, &a, &m, 1, INT64_MIN, INT64_MAX, NULL, &ss, &err), 0);
		int n = 0;
		while ((rc = series_set_next(ss, &err)) == 1) {
			bool found;
			int id = atoi(labels_get(series_set_labels(ss), STR("id"), &found).p);
			int64_t t[4];
			double v[4];
			CHECK_EQ_INT(sample_iter_next_batch(series_set_samples(ss), t, v, 4, &err), 3);
			CHECK(id % 2 == 1 && t[0] == 1000 + id && v[2] == id + 2);
			n++;
		}
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(n, NSP / 2);
		series_set_close(ss);
		matcher_release(&m);
		arena_release(&a);
		block_close(b);
		tu_rm_rf(dir);
	}
	/* a duplicate in another run than its twin fails at finish; nothing is left behind */
	tu_rm_rf(ref);
	CHECK_EQ_INT(count_entries(parent), 0);
	write_spill_block(parent, 4096, true, dir, &runs, &rc, &err);
	CHECK_EQ_INT(rc, ERR_INVALID);
	CHECK(strstr(err.msg, "added twice") != NULL);
	CHECK(strstr(err.msg, "id=\"0\"") != NULL);
	CHECK_EQ_INT(count_entries(parent), 0);
	tu_rm_rf(parent);
}

TEST(block_tombstones_applied)
{
	char parent[4096], dir[4096];
	tu_tmpdir(parent);
	write_block(parent, dir);
	block_t *b;
	err_t err = {0};
	CHECK_EQ_INT(block_open(&b, dir, &err), 0);
	arena_t a;
	arena_init(&a, 0);
	postings_t p1, p3;
	CHECK_EQ_INT(index_reader_postings(&b->ix, &a, STR("i"), STR("1"), &p1, &err), 0);
	CHECK_EQ_INT(index_reader_postings(&b->ix, &a, STR("i"), STR("3"), &p3, &err), 0);
	CHECK(p1.n == 1 && p3.n == 1);
	block_close(b);
	/* series 1: samples 150..160 deleted (and 490.. by a second interval); series 3: everything */
	tomb_interval_t iv[] = {{p3.v[0], INT64_MIN, INT64_MAX},
				{p1.v[0], ts_of(1, 490), ts_of(1, 10000)},
				{p1.v[0], ts_of(1, 150), ts_of(1, 160)}};
	CHECK_EQ_INT(tombstones_write(dir, iv, 3, &err), 0);
	CHECK_EQ_INT(block_open(&b, dir, &err), 0);
	CHECK_EQ_INT(b->tomb.n, 3);
	matcher_t m;
	CHECK_EQ_INT(matcher_init(&m, MATCH_RE, STR("i"), STR("1|3|4"), &err), 0);
	series_set_t *ss;
	CHECK_EQ_INT(b->q.ops->select(&b->q, &a, &m, 1, INT64_MIN, INT64_MAX, NULL, &ss, &err), 0);
	CHECK_EQ_INT(series_set_next(ss, &err), 1);
	bool found;
	CHECK_SLICE(labels_get(series_set_labels(ss), STR("i"), &found), "1");
	const chunk_t *chks;
	CHECK_EQ_INT(ss->ops->chunks(ss, &chks), -1); /* raw chunks would show deleted samples */
	sample_iter_t *it = series_set_samples(ss);
	int64_t t[64];
	double v[64];
	int n, k = 0, total = 0;
	while ((n = sample_iter_next_batch(it, t, v, 64, &err)) > 0) {
		for (int i = 0; i < n; i++, k++) {
			if (k == 150)
				k = 161;
			CHECK_EQ_INT(t[i], ts_of(1, k));
		}
		total += n;
	}
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(total, 490 - 11);
	/* series 3 is gone, series 4 is untouched and keeps its chunks */
	CHECK_EQ_INT(series_set_next(ss, &err), 1);
	CHECK_SLICE(labels_get(series_set_labels(ss), STR("i"), &found), "4");
	CHECK(ss->ops->chunks(ss, &chks) > 0);
	CHECK_EQ_INT(series_set_next(ss, &err), 0);
	series_set_close(ss);
	matcher_release(&m);
	arena_release(&a);
	block_close(b);
	tu_rm_rf(parent);
}

static void corrupt_byte(const char *path, long off, uint8_t x)
{
	size_t len;
	uint8_t *p = tu_read_file(path, &len);
	size_t o = off < 0 ? len + (size_t)off : (size_t)off;
	p[o] ^= x;
	tu_write_file(path, p, len);
	free(p);
}

/* Select everything and drain it; returns the first error. */
static int drain(block_t *b, err_t *err)
{
	arena_t a;
	arena_init(&a, 0);
	series_set_t *ss;
	int rc = b->q.ops->select(&b->q, &a, NULL, 0, INT64_MIN, INT64_MAX, NULL, &ss, err);
	while (!rc && (rc = series_set_next(ss, err)) == 1) {
		sample_iter_t *it = series_set_samples(ss);
		int64_t t[64];
		double v[64];
		while ((rc = sample_iter_next_batch(it, t, v, 64, err)) > 0)
			;
	}
	if (ss && !rc)
		series_set_close(ss);
	else if (ss)
		series_set_close(ss);
	arena_release(&a);
	return rc;
}

TEST(block_corrupt_files)
{
	char parent[4096], dir[4096], path[4096];
	tu_tmpdir(parent);
	write_block(parent, dir);
	block_t *b;
	err_t err = {0};
	/* a bad CRC in a chunk shows up when the series is read, naming segment and offset */
	snprintf(path, sizeof path, "%s/chunks/000001", dir);
	corrupt_byte(path, 20, 0x01);
	CHECK_EQ_INT(block_open(&b, dir, &err), 0);
	CHECK_EQ_INT(drain(b, &err), ERR_CORRUPT);
	CHECK_ERR_WHERE(err, path);
	CHECK(strstr(err.msg, dir) != NULL);
	block_close(b);
	corrupt_byte(path, 20, 0x01);
	CHECK_EQ_INT(block_open(&b, dir, &err), 0);
	CHECK_EQ_INT(drain(b, &err), 0);
	block_close(b);
	/* index: bad magic at open; a bad series CRC on read */
	snprintf(path, sizeof path, "%s/index", dir);
	corrupt_byte(path, 0, 0x01);
	CHECK_EQ_INT(block_open(&b, dir, &err), ERR_CORRUPT);
	CHECK_ERR_WHERE(err, path);
	corrupt_byte(path, 0, 0x01);
	/* meta.json */
	snprintf(path, sizeof path, "%s/meta.json", dir);
	corrupt_byte(path, 0, 0x20);
	CHECK_EQ_INT(block_open(&b, dir, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, path) != NULL);
	corrupt_byte(path, 0, 0x20);
	/* tombstones */
	snprintf(path, sizeof path, "%s/tombstones", dir);
	corrupt_byte(path, -1, 0x01);
	CHECK_EQ_INT(block_open(&b, dir, &err), ERR_CORRUPT);
	CHECK_ERR_WHERE(err, path);
	corrupt_byte(path, -1, 0x01);
	/* missing files */
	snprintf(path, sizeof path, "%s/chunks/000001", dir);
	size_t len;
	uint8_t *seg = tu_read_file(path, &len);
	unlink(path);
	CHECK_EQ_INT(block_open(&b, dir, &err), 0);
	CHECK_EQ_INT(drain(b, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "does not exist") != NULL);
	block_close(b);
	tu_write_file(path, seg, len);
	free(seg);
	CHECK_EQ_INT(block_open(&b, dir, &err), 0);
	CHECK_EQ_INT(drain(b, &err), 0);
	block_close(b);
	CHECK_EQ_INT(block_open(&b, "/nonexistent/strata/block", &err), ERR_NOT_FOUND);
	tu_rm_rf(parent);
}

TEST_MAIN()
