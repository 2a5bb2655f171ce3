#include <string.h>

#include "base/crc32c.h"
#include "base/varint.h"
#include "test.h"
#include "tsdb/chunkfile.h"
#include "tsdb_testutil.h"

#define NCHK 40

typedef struct fixture {
	char dir[4096], cdir[4096], seg1[4096];
	uint8_t data[NCHK][64];
	chunk_t chks[NCHK];
	uint64_t refs[NCHK];
} fixture_t;

/* NCHK chunks of 10..49 bytes in batches of 4 (one "series" each); seg_size forces rollover. */
static void build(fixture_t *f, uint64_t seg_size)
{
	tu_tmpdir(f->dir);
	snprintf(f->cdir, sizeof f->cdir, "%s/chunks", f->dir);
	snprintf(f->seg1, sizeof f->seg1, "%s/000001", f->cdir);
	for (int i = 0; i < NCHK; i++) {
		for (int k = 0; k < 64; k++)
			f->data[i][k] = (uint8_t)(i * 31 + k * 7);
		f->chks[i] = (chunk_t){i, i + 1, CHUNK_ENC_XOR, f->data[i], (size_t)(10 + i)};
	}
	chunkfile_writer_t w;
	err_t err = {0};
	if (chunkfile_writer_open(&w, f->cdir, seg_size, &err))
		TEST_FAILF("%s", err.msg);
	for (int i = 0; i < NCHK; i += 4)
		if (chunkfile_writer_write(&w, &f->chks[i], 4, &f->refs[i], &err))
			TEST_FAILF("%s", err.msg);
	if (chunkfile_writer_close(&w, &err))
		TEST_FAILF("%s", err.msg);
}

TEST(chunkfile_roundtrip_and_rollover)
{
	fixture_t f;
	build(&f, 300);
	chunkfile_reader_t r;
	err_t err = {0};
	CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
	CHECK(r.nseg > 3);
	for (int i = 0; i < NCHK; i++) {
		chunk_t c;
		CHECK_EQ_INT(chunkfile_reader_get(&r, f.refs[i], &c, &err), 0);
		CHECK_EQ_INT(c.enc, CHUNK_ENC_XOR);
		CHECK_EQ_INT(c.len, 10 + i);
		CHECK(memcmp(c.data, f.data[i], c.len) == 0);
		if (i)
			CHECK(f.refs[i] > f.refs[i - 1]);
	}
	/* every segment but the last is within the size limit */
	for (size_t s = 0; s + 1 < r.nseg; s++)
		CHECK(r.seg[s].len <= 300);
	CHECK_EQ_U64(f.refs[0], 8); /* first record right after the header of segment 0 */
	chunkfile_reader_close(&r);
	tu_rm_rf(f.dir);

	/* one segment by default; a lone chunk bigger than the segment still gets written */
	build(&f, 0);
	CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
	CHECK_EQ_INT(r.nseg, 1);
	chunkfile_reader_close(&r);
	tu_rm_rf(f.dir);
	build(&f, 20);
	CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
	for (int i = 0; i < NCHK; i++) {
		chunk_t c;
		CHECK_EQ_INT(chunkfile_reader_get(&r, f.refs[i], &c, &err), 0);
		CHECK_EQ_INT(c.len, 10 + i);
	}
	chunkfile_reader_close(&r);
	tu_rm_rf(f.dir);
}

static void expect_open_error(const fixture_t *f, const char *want)
{
	chunkfile_reader_t r;
	err_t err = {0};
	int rc = chunkfile_reader_open(&r, f->cdir, &err);
	if (rc != ERR_CORRUPT)
		TEST_FAILF("want ERR_CORRUPT (%s), got %d: %s", want, rc, err.msg);
	CHECK_ERR_WHERE(err, f->seg1);
	if (!strstr(err.msg, want))
		TEST_FAILF("want \"%s\" in: %s", want, err.msg);
}

TEST(chunkfile_corrupt_header)
{
	fixture_t f;
	build(&f, 0);
	size_t len;
	uint8_t *orig = tu_read_file(f.seg1, &len);
	uint8_t *b = xmalloc(len);
	tu_write_file(f.seg1, orig, 5);
	expect_open_error(&f, "shorter than its header");
	memcpy(b, orig, len);
	b[1] ^= 0x10;
	tu_write_file(f.seg1, b, len);
	expect_open_error(&f, "bad magic");
	memcpy(b, orig, len);
	b[4] = 2;
	tu_write_file(f.seg1, b, len);
	expect_open_error(&f, "unsupported version");
	/* a missing dir is an error, an empty one is not */
	chunkfile_reader_t r;
	err_t err = {0};
	CHECK_EQ_INT(chunkfile_reader_open(&r, "/nonexistent/strata/chunks", &err), ERR_NOT_FOUND);
	tu_rm_rf(f.seg1);
	CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
	CHECK_EQ_INT(r.nseg, 0);
	chunk_t c;
	CHECK_EQ_INT(chunkfile_reader_get(&r, 8, &c, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "does not exist") != NULL);
	chunkfile_reader_close(&r);
	free(b);
	free(orig);
	tu_rm_rf(f.dir);
}

static void expect_get_error(const chunkfile_reader_t *r, const fixture_t *f, uint64_t ref, const char *want)
{
	chunk_t c;
	err_t err = {0};
	int rc = chunkfile_reader_get(r, ref, &c, &err);
	if (rc != ERR_CORRUPT)
		TEST_FAILF("ref 0x%llx: want ERR_CORRUPT (%s), got %d: %s", (unsigned long long)ref, want, rc, err.msg);
	CHECK_ERR_WHERE(err, f->seg1);
	if (!strstr(err.msg, want))
		TEST_FAILF("want \"%s\" in: %s", want, err.msg);
}

TEST(chunkfile_corrupt_records)
{
	fixture_t f;
	build(&f, 0);
	size_t len;
	uint8_t *orig = tu_read_file(f.seg1, &len);
	uint8_t *b = xmalloc(len);
	chunkfile_reader_t r;
	err_t err = {0};
	CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
	/* references into the header, past the end, to a missing segment */
	expect_get_error(&r, &f, 0, "past end of file");
	expect_get_error(&r, &f, 3, "past end of file");
	expect_get_error(&r, &f, len, "past end of file");
	expect_get_error(&r, &f, 0xfffffffful, "past end of file");
	chunk_t c;
	CHECK_EQ_INT(chunkfile_reader_get(&r, 1ull << 32, &c, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "segment 1 does not exist") != NULL);
	/* a reference into the middle of a record: whatever it decodes as, it must not crash */
	for (uint64_t off = 8; off < len; off++) {
		int rc = chunkfile_reader_get(&r, off, &c, &err);
		if (rc)
			CHECK_ERR_WHERE(err, f.seg1);
		else
			CHECK(c.data + c.len <= r.seg[0].p + r.seg[0].len);
	}
	chunkfile_reader_close(&r);

	/* bad CRC, absurd length, length varint overflow */
	size_t rec = (size_t)f.refs[5];
	memcpy(b, orig, len);
	b[rec + 3] ^= 0x01;
	tu_write_file(f.seg1, b, len);
	CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
	expect_get_error(&r, &f, f.refs[5], "bad CRC32C");
	CHECK_EQ_INT(chunkfile_reader_get(&r, f.refs[4], &c, &err), 0);
	chunkfile_reader_close(&r);
	memcpy(b, orig, len);
	b[rec] = 0xff, b[rec + 1] = 0xff, b[rec + 2] = 0xff, b[rec + 3] = 0x7f;
	tu_write_file(f.seg1, b, len);
	CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
	expect_get_error(&r, &f, f.refs[5], "runs past end of file");
	chunkfile_reader_close(&r);
	memcpy(b, orig, len);
	memset(b + rec, 0xff, 6);
	tu_write_file(f.seg1, b, len);
	CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
	expect_get_error(&r, &f, f.refs[5], "bad chunk length varint");
	chunkfile_reader_close(&r);

	/* every truncation: the records before the cut read fine, the others fail with an error */
	for (size_t cut = 8; cut < len; cut += 3) {
		tu_write_file(f.seg1, orig, cut);
		CHECK_EQ_INT(chunkfile_reader_open(&r, f.cdir, &err), 0);
		for (int i = 0; i < NCHK; i++) {
			int rc = chunkfile_reader_get(&r, f.refs[i], &c, &err);
			bool whole = f.refs[i] + 1 + 1 + f.chks[i].len + 4 <= cut;
			if (whole)
				CHECK_EQ_INT(rc, 0);
			else {
				CHECK_EQ_INT(rc, ERR_CORRUPT);
				CHECK_ERR_WHERE(err, f.seg1);
			}
		}
		chunkfile_reader_close(&r);
	}
	free(b);
	free(orig);
	tu_rm_rf(f.dir);
}

TEST_MAIN()
