#include <pthread.h>
#include <snappy-c.h>
#include <sys/stat.h>

#include "base/crc32c.h"
#include "base/varint.h"
#include "test.h"
#include "tsdb/wal.h"
#include "tsdb/walrec.h"
#include "tsdb_testutil.h"

/* Record i: deterministic bytes of a size that sweeps small, page-sized and multi-page records. */
static size_t rec_len(int i)
{
	static const size_t sizes[] = {1, 7, 100, 32761, 32762, 32768, 70000, 5, 200000, 3};
	return sizes[i % 10] + (size_t)i;
}

static void rec_fill(uint8_t *p, size_t n, int i)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)(k * 131 + (size_t)i * 7 + (k >> 9));
}

static void write_records(const char *dir, int n, bool compress, uint64_t seg_size)
{
	wal_t *w;
	err_t err = {0};
	wal_opts_t o = {.segment_size = seg_size, .compress = compress};
	if (wal_open(&w, dir, &o, &err))
		TEST_FAILF("%s", err.msg);
	for (int i = 0; i < n; i++) {
		size_t len = rec_len(i);
		uint8_t *p = xmalloc(len);
		rec_fill(p, len, i);
		str_t r = {(const char *)p, len};
		uint64_t seq;
		if (wal_log(w, &r, 1, &seq, &err) || wal_sync(w, seq, &err))
			TEST_FAILF("%s", err.msg);
		free(p);
	}
	if (wal_close(w, &err))
		TEST_FAILF("%s", err.msg);
}

/* Reads every segment of dir in order; returns the record count and checks their contents. */
static int read_all(const char *dir, int *corrupt_seg, size_t *valid_end)
{
	int first, last, n = 0;
	err_t err = {0};
	if (wal_segments(dir, &first, &last, &err))
		TEST_FAILF("%s", err.msg);
	*corrupt_seg = -1;
	for (int s = first; s >= 0 && s <= last; s++) {
		char path[4096];
		wal_segment_path(path, dir, s);
		wal_reader_t r;
		if (wal_reader_open(&r, path, &err))
			TEST_FAILF("%s", err.msg);
		str_t rec;
		int rc;
		while ((rc = wal_reader_next(&r, &rec, &err)) == 1) {
			size_t len = rec_len(n);
			if (rec.n != len)
				TEST_FAILF("record %d: %zu bytes, want %zu", n, rec.n, len);
			uint8_t *p = xmalloc(len);
			rec_fill(p, len, n);
			if (memcmp(p, rec.p, len) != 0)
				TEST_FAILF("record %d differs", n);
			free(p);
			n++;
		}
		*valid_end = r.valid_end;
		wal_reader_close(&r);
		if (rc < 0) {
			CHECK_EQ_INT(rc, ERR_CORRUPT);
			CHECK_ERR_WHERE(err, path);
			*corrupt_seg = s;
			return n;
		}
	}
	return n;
}

TEST(wal_roundtrip_pages_and_compression)
{
	for (int compress = 0; compress < 2; compress++) {
		char dir[4096];
		tu_tmpdir(dir);
		write_records(dir, 30, compress, 0);
		int cs;
		size_t ve;
		CHECK_EQ_INT(read_all(dir, &cs, &ve), 30);
		CHECK_EQ_INT(cs, -1);
		char path[4096];
		wal_segment_path(path, dir, 0);
		struct stat st;
		CHECK(stat(path, &st) == 0);
		CHECK_EQ_INT(st.st_size % WAL_PAGE_SIZE, 0); /* closed segments end on a page boundary */
		tu_rm_rf(dir);
	}
}

/* wal_flush: every record logged is in the segment file while the WAL is still open (what a kill -9
 * leaves), across segment rollovers (whose fds it closes), without any wal_sync. */
TEST(wal_flush_writes_through_without_sync)
{
	char dir[4096];
	tu_tmpdir(dir);
	wal_t *w;
	err_t err = {0};
	wal_opts_t o = {.segment_size = 3 * WAL_PAGE_SIZE};
	CHECK_EQ_INT(wal_open(&w, dir, &o, &err), 0);
	for (int i = 0; i < 8; i++) {
		size_t len = rec_len(i);
		uint8_t *p = xmalloc(len);
		rec_fill(p, len, i);
		str_t r = {(const char *)p, len};
		CHECK_EQ_INT(wal_log(w, &r, 1, NULL, &err), 0);
		CHECK_EQ_INT(wal_flush(w, &err), 0);
		free(p);
		int cs;
		size_t ve;
		CHECK_EQ_INT(read_all(dir, &cs, &ve), i + 1);
		CHECK_EQ_INT(cs, -1);
	}
	CHECK_EQ_INT(wal_close(w, &err), 0);
	tu_rm_rf(dir);
}

TEST(wal_fragment_bytes_like_prometheus)
{
	char dir[4096];
	tu_tmpdir(dir);
	wal_t *w;
	err_t err = {0};
	CHECK_EQ_INT(wal_open(&w, dir, NULL, &err), 0);
	str_t r = STR("abc");
	CHECK_EQ_INT(wal_log(w, &r, 1, NULL, &err), 0);
	/* a record that fills the page up to 6 bytes: the rest is padding */
	size_t big = WAL_PAGE_SIZE - 2 * WAL_REC_HEADER - 3 - 6;
	uint8_t *p = xcalloc(1, big);
	str_t r2 = {(const char *)p, big};
	CHECK_EQ_INT(wal_log(w, &r2, 1, NULL, &err), 0);
	CHECK_EQ_INT(wal_log(w, &r, 1, NULL, &err), 0);
	CHECK_EQ_INT(wal_close(w, &err), 0);
	char path[4096];
	wal_segment_path(path, dir, 0);
	size_t len;
	uint8_t *f = tu_read_file(path, &len);
	CHECK_EQ_INT(len, 2 * WAL_PAGE_SIZE);
	CHECK_EQ_INT(f[0], WAL_FRAG_FULL);
	CHECK_EQ_INT(be16_get(f + 1), 3);
	CHECK_EQ_U64(be32_get(f + 3), crc32c(0, "abc", 3));
	CHECK(memcmp(f + 7, "abc", 3) == 0);
	/* 6 bytes left on page 0 are zero; the third record starts page 1 */
	for (size_t i = WAL_PAGE_SIZE - 6; i < WAL_PAGE_SIZE; i++)
		CHECK_EQ_INT(f[i], 0);
	CHECK_EQ_INT(f[WAL_PAGE_SIZE], WAL_FRAG_FULL);
	free(f);
	free(p);
	tu_rm_rf(dir);
}

TEST(wal_segments_rollover_and_reopen)
{
	char dir[4096];
	tu_tmpdir(dir);
	write_records(dir, 25, false, 8 * WAL_PAGE_SIZE);
	int first, last;
	err_t err = {0};
	CHECK_EQ_INT(wal_segments(dir, &first, &last, &err), 0);
	CHECK_EQ_INT(first, 0);
	CHECK(last >= 2);
	int cs;
	size_t ve;
	CHECK_EQ_INT(read_all(dir, &cs, &ve), 25);
	/* reopening starts a new segment after the last */
	wal_t *w;
	CHECK_EQ_INT(wal_open(&w, dir, NULL, &err), 0);
	CHECK_EQ_INT(wal_current_segment(w), last + 1);
	CHECK_EQ_INT(wal_truncate(w, last, &err), 0);
	CHECK_EQ_INT(wal_close(w, &err), 0);
	CHECK_EQ_INT(wal_segments(dir, &first, &last, &err), 0);
	CHECK(first > 0);
	/* a record larger than a segment is refused */
	CHECK_EQ_INT(wal_open(&w, dir, &(wal_opts_t){.segment_size = 2 * WAL_PAGE_SIZE}, &err), 0);
	uint8_t *p = xcalloc(1, 3 * WAL_PAGE_SIZE);
	str_t r = {(const char *)p, 3 * WAL_PAGE_SIZE};
	CHECK_EQ_INT(wal_log(w, &r, 1, NULL, &err), ERR_LIMIT);
	free(p);
	CHECK_EQ_INT(wal_close(w, &err), 0);
	tu_rm_rf(dir);
}

/* Cut the only segment at many byte positions: the reader stops with a corruption (or cleanly at a
 * record boundary), repair keeps exactly the complete records before the cut. */
TEST(wal_torn_tail_repair)
{
	char dir[4096];
	tu_tmpdir(dir);
	wal_t *w;
	err_t err = {0};
	CHECK_EQ_INT(wal_open(&w, dir, NULL, &err), 0);
	size_t ends[12];
	int n = 12;
	size_t pos = 0;
	for (int i = 0; i < n; i++) {
		size_t len = rec_len(i);
		uint8_t *p = xmalloc(len);
		rec_fill(p, len, i);
		str_t r = {(const char *)p, len};
		uint64_t seq;
		CHECK_EQ_INT(wal_log(w, &r, 1, &seq, &err), 0);
		CHECK_EQ_INT(wal_sync(w, seq, &err), 0);
		free(p);
		char path[4096];
		wal_segment_path(path, dir, 0);
		struct stat st;
		CHECK(stat(path, &st) == 0);
		ends[i] = (size_t)st.st_size;
		pos = ends[i];
	}
	/* kill -9 here: the segment is left as synced (not padded) */
	char path[4096];
	wal_segment_path(path, dir, 0);
	size_t flen;
	uint8_t *orig = tu_read_file(path, &flen);
	CHECK_EQ_U64(flen, pos);
	CHECK_EQ_INT(wal_close(w, &err), 0);
	for (size_t cut = 1; cut < flen; cut += 1 + cut / 3) {
		tu_write_file(path, orig, cut);
		int want = 0;
		while (want < n && ends[want] <= cut)
			want++;
		int cs;
		size_t ve;
		int got = read_all(dir, &cs, &ve);
		CHECK_EQ_INT(got, want);
		if (cs >= 0) {
			CHECK_EQ_INT(wal_repair(dir, cs, ve, &err), 0);
			CHECK_EQ_INT(read_all(dir, &cs, &ve), want);
			CHECK_EQ_INT(cs, -1);
		}
	}
	free(orig);
	tu_rm_rf(dir);
}

TEST(wal_corruption_detected_and_later_segments_dropped)
{
	char dir[4096];
	tu_tmpdir(dir);
	write_records(dir, 25, false, 8 * WAL_PAGE_SIZE);
	char path[4096];
	wal_segment_path(path, dir, 1);
	size_t len;
	uint8_t *f = tu_read_file(path, &len);
	f[100] ^= 0x40;
	tu_write_file(path, f, len);
	free(f);
	int cs;
	size_t ve;
	int before = read_all(dir, &cs, &ve);
	CHECK_EQ_INT(cs, 1);
	err_t err = {0};
	CHECK_EQ_INT(wal_repair(dir, cs, ve, &err), 0);
	int first, last;
	CHECK_EQ_INT(wal_segments(dir, &first, &last, &err), 0);
	CHECK_EQ_INT(last, 1);
	CHECK_EQ_INT(read_all(dir, &cs, &ve), before);
	CHECK_EQ_INT(cs, -1);
	tu_rm_rf(dir);
}

typedef struct thr {
	wal_t *w;
	int id, n;
} thr_t;

static void *logger(void *arg)
{
	thr_t *t = arg;
	for (int i = 0; i < t->n; i++) {
		char buf[64];
		int k = snprintf(buf, sizeof buf, "thread %d record %d", t->id, i);
		str_t r = {buf, (size_t)k};
		uint64_t seq;
		err_t err = {0};
		if (wal_log(t->w, &r, 1, &seq, &err) || wal_sync(t->w, seq, &err))
			return (void *)1;
	}
	return NULL;
}

TEST(wal_group_commit_threads)
{
	char dir[4096];
	tu_tmpdir(dir);
	wal_t *w;
	err_t err = {0};
	CHECK_EQ_INT(wal_open(&w, dir, &(wal_opts_t){.compress = true}, &err), 0);
	pthread_t th[4];
	thr_t ts[4];
	for (int i = 0; i < 4; i++) {
		ts[i] = (thr_t){w, i, 200};
		pthread_create(&th[i], NULL, logger, &ts[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		CHECK(r == NULL);
	}
	CHECK_EQ_INT(wal_close(w, &err), 0);
	char path[4096];
	wal_segment_path(path, dir, 0);
	wal_reader_t r;
	CHECK_EQ_INT(wal_reader_open(&r, path, &err), 0);
	int next[4] = {0};
	str_t rec;
	int count = 0;
	while (wal_reader_next(&r, &rec, &err) == 1) {
		int t, i;
		char buf[64];
		snprintf(buf, sizeof buf, "%.*s", (int)rec.n, rec.p);
		CHECK(sscanf(buf, "thread %d record %d", &t, &i) == 2);
		CHECK_EQ_INT(i, next[t]); /* per-thread order kept */
		next[t]++;
		count++;
	}
	wal_reader_close(&r);
	CHECK_EQ_INT(count, 800);
	tu_rm_rf(dir);
}

TEST(walrec_roundtrip_and_bytes)
{
	buf_t b = BUF_INIT;
	label_t l[2] = {{STR("__name__"), STR("up")}, {STR("job"), STR("x")}};
	labels_t ls = {l, 2};
	walrec_series_begin(&b);
	walrec_series_add(&b, 7, &ls);
	walrec_series_add(&b, 9, &ls);
	/* type, BE64 ref, uvarint 2, uvarint-strings */
	CHECK_EQ_INT((uint8_t)b.p[0], WALREC_SERIES);
	CHECK_EQ_U64(be64_get((const uint8_t *)b.p + 1), 7);
	CHECK_EQ_INT(b.p[9], 2);
	CHECK_EQ_INT(b.p[10], 8);
	CHECK(memcmp(b.p + 11, "__name__", 8) == 0);
	walrec_iter_t it;
	err_t err = {0};
	CHECK_EQ_INT(walrec_iter_init(&it, buf_str(&b), &err), 0);
	uint64_t ref;
	labels_t got;
	CHECK_EQ_INT(walrec_next_series(&it, &ref, &got, &err), 1);
	CHECK_EQ_U64(ref, 7);
	CHECK(labels_eq(&got, &ls));
	CHECK_EQ_INT(walrec_next_series(&it, &ref, &got, &err), 1);
	CHECK_EQ_U64(ref, 9);
	CHECK_EQ_INT(walrec_next_series(&it, &ref, &got, &err), 0);
	walrec_iter_release(&it);

	walrec_sample_t s[3] = {{10, 1000, 1.5}, {8, 999, -2}, {12, 5000, 0}};
	buf_reset(&b);
	walrec_samples_encode(&b, s, 3);
	/* type, BE64 10, BE64 1000, then varint 0, varint 0, BE64 bits of 1.5 */
	CHECK_EQ_INT(b.n, 1 + 16 + (1 + 1 + 8) + (1 + 1 + 8) + (1 + 2 + 8));
	CHECK_EQ_INT((uint8_t)b.p[17], 0);
	CHECK_EQ_INT((uint8_t)b.p[27], 3); /* zig-zag -2 */
	CHECK_EQ_INT(walrec_iter_init(&it, buf_str(&b), &err), 0);
	for (int i = 0; i < 3; i++) {
		walrec_sample_t x;
		CHECK_EQ_INT(walrec_next_sample(&it, &x, &err), 1);
		CHECK_EQ_U64(x.ref, s[i].ref);
		CHECK_EQ_INT(x.t, s[i].t);
		CHECK_DBL(x.v, s[i].v);
	}
	walrec_sample_t x;
	CHECK_EQ_INT(walrec_next_sample(&it, &x, &err), 0);
	walrec_iter_release(&it);

	buf_reset(&b);
	walrec_metadata_begin(&b);
	walrec_meta_t m = {5, WALREC_MT_COUNTER, STR("seconds"), STR("help text")};
	walrec_metadata_add(&b, &m);
	CHECK_EQ_INT(walrec_iter_init(&it, buf_str(&b), &err), 0);
	walrec_meta_t mm;
	CHECK_EQ_INT(walrec_next_metadata(&it, &mm, &err), 1);
	CHECK_EQ_U64(mm.ref, 5);
	CHECK_EQ_INT(mm.type, WALREC_MT_COUNTER);
	CHECK_SLICE(mm.unit, "seconds");
	CHECK_SLICE(mm.help, "help text");
	walrec_iter_release(&it);

	/* every truncation of a record is an error, never a read past its end */
	buf_reset(&b);
	walrec_samples_encode(&b, s, 3);
	for (size_t cut = 2; cut < b.n; cut++) {
		str_t r = {b.p, cut};
		if (walrec_iter_init(&it, r, &err) == 0) {
			int rc;
			while ((rc = walrec_next_sample(&it, &x, &err)) == 1)
				;
			CHECK(rc == 0 || rc == ERR_CORRUPT);
			walrec_iter_release(&it);
		}
	}
	buf_release(&b);
}

TEST_MAIN()
