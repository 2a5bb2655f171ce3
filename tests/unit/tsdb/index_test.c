#include <dirent.h>
#include <string.h>

#include "base/arena.h"
#include "base/crc32c.h"
#include "base/varint.h"
#include "test.h"
#include "tsdb/index.h"
#include "tsdb_testutil.h"

/* A small index: 2 names x 2 jobs x NINST instances; "env" only on job="db". */
#define NINST 6

typedef struct fixture {
	char dir[4096], path[4096];
	uint8_t *bytes;
	size_t len;
} fixture_t;

static const char *names_[] = {"http_requests_total", "up"};
static const char *jobs_[] = {"api", "db"};

static labels_t mk_series(arena_t *a, int name, int job, int inst)
{
	labels_t ls;
	ls.v = arena_alloc(a, 4 * sizeof(label_t));
	ls.n = 0;
	ls.v[ls.n++] = (label_t){STR("__name__"), str_c(names_[name])};
	if (job == 1)
		ls.v[ls.n++] = (label_t){STR("env"), STR("prod")};
	ls.v[ls.n++] = (label_t){STR("instance"), str_c(arena_printf(a, "i%d", inst))};
	ls.v[ls.n++] = (label_t){STR("job"), str_c(jobs_[job])};
	return ls;
}

static int str_cmp_q(const void *x, const void *y)
{
	return str_cmp(*(const str_t *)x, *(const str_t *)y);
}

static void build_index(fixture_t *f)
{
	tu_tmpdir(f->dir);
	snprintf(f->path, sizeof f->path, "%s/index", f->dir);
	arena_t a;
	arena_init(&a, 0);
	str_t syms[64];
	size_t ns = 0;
	const char *fixed[] = {"__name__", "api", "db", "env", "http_requests_total", "instance", "job", "prod", "up"};
	for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
		syms[ns++] = str_c(fixed[i]);
	for (int i = 0; i < NINST; i++)
		syms[ns++] = str_c(arena_printf(&a, "i%d", i));
	qsort(syms, ns, sizeof(str_t), str_cmp_q);
	index_writer_t *w;
	err_t err = {0};
	if (index_writer_open(&w, f->path, &err) || index_writer_add_symbols(w, syms, ns, &err))
		TEST_FAILF("%s", err.msg);
	/* labels_cmp order: name, then env (db has it: "env" < "instance"), ... build and sort. */
	labels_t all[2 * 2 * NINST];
	size_t n = 0;
	for (int nm = 0; nm < 2; nm++)
		for (int j = 0; j < 2; j++)
			for (int i = 0; i < NINST; i++)
				all[n++] = mk_series(&a, nm, j, i);
	for (size_t i = 1; i < n; i++) /* insertion sort by labels_cmp */
		for (size_t k = i; k > 0 && labels_cmp(&all[k - 1], &all[k]) > 0; k--) {
			labels_t t = all[k];
			all[k] = all[k - 1];
			all[k - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		chunk_meta_t c[3];
		size_t nc = i % 4; /* 0..3 chunks, incl. none */
		for (size_t k = 0; k < nc; k++)
			c[k] = (chunk_meta_t){(int64_t)(1000 * k + i), (int64_t)(1000 * k + i + 500), (uint64_t)(8 + 100 * i + 30 * k)};
		if (index_writer_add_series(w, &all[i], c, nc, &err))
			TEST_FAILF("%s", err.msg);
	}
	if (index_writer_close(w, &err))
		TEST_FAILF("%s", err.msg);
	arena_release(&a);
	f->bytes = tu_read_file(f->path, &f->len);
}

static void fixture_release(fixture_t *f)
{
	free(f->bytes);
	tu_rm_rf(f->dir);
}

static int matcher_(matcher_t *m, match_type_t t, const char *name, const char *value)
{
	return matcher_init(m, t, str_c(name), str_c(value), NULL);
}

TEST(index_roundtrip)
{
	fixture_t f;
	build_index(&f);
	index_reader_t r;
	err_t err = {0};
	CHECK_EQ_INT(index_reader_open(&r, f.path, &err), 0);
	arena_t a;
	arena_init(&a, 0);
	postings_t all;
	CHECK_EQ_INT(index_reader_postings(&r, &a, STR_NULL, STR_NULL, &all, &err), 0);
	CHECK_EQ_INT(all.n, 4 * NINST);
	labels_t prev = {0};
	for (size_t i = 0; i < all.n; i++) {
		labels_t ls;
		chunk_meta_t *c;
		size_t nc;
		CHECK_EQ_INT(index_reader_series(&r, &a, all.v[i], &ls, &c, &nc, &err), 0);
		CHECK_EQ_INT(nc, i % 4);
		for (size_t k = 0; k < nc; k++) {
			CHECK_EQ_INT(c[k].mint, (int64_t)(1000 * k + i));
			CHECK_EQ_INT(c[k].maxt, (int64_t)(1000 * k + i + 500));
			CHECK_EQ_U64(c[k].ref, 8 + 100 * i + 30 * k);
		}
		if (i)
			CHECK(labels_cmp(&prev, &ls) < 0);
		prev = ls;
	}
	/* postings for one pair, for matchers */
	postings_t p;
	CHECK_EQ_INT(index_reader_postings(&r, &a, STR("job"), STR("db"), &p, &err), 0);
	CHECK_EQ_INT(p.n, 2 * NINST);
	CHECK_EQ_INT(index_reader_postings(&r, &a, STR("job"), STR("nope"), &p, &err), 0);
	CHECK_EQ_INT(p.n, 0);
	matcher_t ms[3];
	CHECK_EQ_INT(matcher_(&ms[0], MATCH_EQ, "__name__", "up"), 0);
	CHECK_EQ_INT(matcher_(&ms[1], MATCH_RE, "instance", "i[0-2]"), 0);
	CHECK_EQ_INT(matcher_(&ms[2], MATCH_NEQ, "env", "prod"), 0);
	CHECK_EQ_INT(index_reader_postings_for_matchers(&r, &a, ms, 2, &p, &err), 0);
	CHECK_EQ_INT(p.n, 2 * 3);
	CHECK_EQ_INT(index_reader_postings_for_matchers(&r, &a, ms, 3, &p, &err), 0);
	CHECK_EQ_INT(p.n, 3); /* env!="prod" keeps series without env */
	for (size_t i = 0; i < p.n; i++) {
		labels_t ls;
		chunk_meta_t *c;
		size_t nc;
		CHECK_EQ_INT(index_reader_series(&r, &a, p.v[i], &ls, &c, &nc, &err), 0);
		bool found;
		CHECK_SLICE(labels_get(&ls, STR("job"), &found), "api");
	}
	matcher_t nre;
	CHECK_EQ_INT(matcher_(&nre, MATCH_NRE, "job", "a.*"), 0);
	CHECK_EQ_INT(index_reader_postings_for_matchers(&r, &a, &nre, 1, &p, &err), 0);
	CHECK_EQ_INT(p.n, 2 * NINST);
	/* label names / values */
	str_t *vals;
	size_t nv;
	CHECK_EQ_INT(index_reader_label_names(&r, &a, NULL, 0, &vals, &nv, &err), 0);
	CHECK_EQ_INT(nv, 4);
	CHECK_SLICE(vals[0], "__name__");
	CHECK_SLICE(vals[3], "job");
	CHECK_EQ_INT(index_reader_label_names(&r, &a, &ms[2], 1, &vals, &nv, &err), 0);
	CHECK_EQ_INT(nv, 3); /* no env */
	CHECK_EQ_INT(index_reader_label_values(&r, &a, STR("instance"), NULL, 0, &vals, &nv, &err), 0);
	CHECK_EQ_INT(nv, NINST);
	CHECK_SLICE(vals[NINST - 1], "i5");
	CHECK_EQ_INT(index_reader_label_values(&r, &a, STR("job"), &ms[2], 1, &vals, &nv, &err), 0);
	CHECK_EQ_INT(nv, 1);
	CHECK_SLICE(vals[0], "api");
	CHECK_EQ_INT(index_reader_label_values(&r, &a, STR("missing"), NULL, 0, &vals, &nv, &err), 0);
	CHECK_EQ_INT(nv, 0);
	/* symbols */
	uint32_t idx;
	str_t s;
	CHECK_EQ_INT(index_reader_symbol_index(&r, STR("up"), &idx, &err), 0);
	CHECK_EQ_INT(index_reader_symbol(&r, idx, &s, &err), 0);
	CHECK_SLICE(s, "up");
	CHECK_EQ_INT(index_reader_symbol_index(&r, STR("zzz"), &idx, &err), ERR_NOT_FOUND);
	CHECK_EQ_INT(index_reader_symbol_index(&r, STR("a"), &idx, &err), ERR_NOT_FOUND);
	CHECK_EQ_INT(index_reader_symbol(&r, 1000, &s, &err), ERR_CORRUPT);
	for (int i = 0; i < 3; i++)
		matcher_release(&ms[i]);
	matcher_release(&nre);
	arena_release(&a);
	index_reader_close(&r);
	fixture_release(&f);
}

TEST(index_writer_rejects_misuse)
{
	char dir[4096], path[4096];
	tu_tmpdir(dir);
	snprintf(path, sizeof path, "%s/index", dir);
	index_writer_t *w;
	err_t err = {0};
	CHECK_EQ_INT(index_writer_open(&w, path, &err), 0);
	labels_t ls = {(label_t[]){{STR("a"), STR("b")}}, 1};
	CHECK_EQ_INT(index_writer_add_series(w, &ls, NULL, 0, &err), ERR_INVALID);
	str_t unsorted[] = {STR("b"), STR("a")};
	CHECK_EQ_INT(index_writer_add_symbols(w, unsorted, 2, &err), ERR_INVALID);
	index_writer_abort(w);
	CHECK_EQ_INT(index_writer_open(&w, path, &err), 0);
	str_t syms[] = {STR("a")};
	CHECK_EQ_INT(index_writer_add_symbols(w, syms, 1, &err), 0);
	CHECK_EQ_INT(index_writer_add_series(w, &ls, NULL, 0, &err), ERR_INVALID); /* "b" is no symbol */
	index_writer_abort(w);
	tu_rm_rf(dir);
}

/* Writes NBIG series (unique "id", shared "job", "zone" on every third one, chunk metas) with
 * mem_limit (0 = default) into dir/index; returns the bytes and the number of spilled runs. */
#define NBIG 3000
static uint8_t *write_big(const char *dir, size_t mem_limit, size_t *len, size_t *runs)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/index", dir);
	arena_t a;
	arena_init(&a, 0);
	str_t *syms = arena_alloc(&a, (NBIG + 16) * sizeof(str_t));
	size_t ns = 0;
	const char *fixed[] = {"__name__", "id", "j0", "j1", "j2", "job", "m", "z0", "z1", "zone"};
	for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
		syms[ns++] = str_c(fixed[i]);
	for (int i = 0; i < NBIG; i++)
		syms[ns++] = str_c(arena_printf(&a, "%05d", i));
	qsort(syms, ns, sizeof(str_t), str_cmp_q);
	index_writer_t *w;
	err_t err = {0};
	if (index_writer_open(&w, path, &err))
		TEST_FAILF("%s", err.msg);
	index_writer_set_mem_limit(w, mem_limit);
	if (index_writer_add_symbols(w, syms, ns, &err))
		TEST_FAILF("%s", err.msg);
	for (int i = 0; i < NBIG; i++) {
		label_t l[4];
		size_t n = 0;
		l[n++] = (label_t){STR("__name__"), STR("m")};
		l[n++] = (label_t){STR("id"), str_c(arena_printf(&a, "%05d", i))};
		l[n++] = (label_t){STR("job"), str_c(fixed[2 + i % 3])};
		if (i % 3 == 0)
			l[n++] = (label_t){STR("zone"), str_c(fixed[7 + (i / 3) % 2])};
		labels_t ls = {l, n};
		chunk_meta_t c[2] = {{i, i + 10, 8 + 40 * (uint64_t)i}, {i + 20, i + 30, 28 + 40 * (uint64_t)i}};
		if (index_writer_add_series(w, &ls, c, (size_t)(i % 3), &err))
			TEST_FAILF("%s", err.msg);
	}
	*runs = index_writer_spilled_runs(w);
	if (index_writer_close(w, &err))
		TEST_FAILF("%s", err.msg);
	arena_release(&a);
	return tu_read_file(path, len);
}

/* Entries of dir other than "index" (temp files left behind). */
static int stray_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "index"))
			n++;
	closedir(d);
	return n;
}

TEST(index_spilled_postings_are_identical)
{
	char dir[4096];
	tu_tmpdir(dir);
	size_t len0, runs0;
	uint8_t *ref = write_big(dir, 0, &len0, &runs0);
	CHECK_EQ_INT(runs0, 0); /* 10k IDs fit the default 4 MiB */
	/* 4 KiB runs: a few runs merged at once; 64 bytes: 16 IDs a run, ~640 runs merged in 3 levels */
	size_t limits[] = {4096, 64, 1};
	for (size_t k = 0; k < ARRAY_LEN(limits); k++) {
		size_t len, runs;
		uint8_t *got = write_big(dir, limits[k], &len, &runs);
		CHECK(runs > (k == 0 ? 5u : 256u));
		CHECK_EQ_U64(len, len0);
		CHECK(len == len0 && memcmp(got, ref, len) == 0);
		CHECK_EQ_INT(stray_files(dir), 0);
		free(got);
	}
	/* and it reads back */
	char path[4096];
	snprintf(path, sizeof path, "%s/index", dir);
	index_reader_t r;
	err_t err = {0};
	CHECK_EQ_INT(index_reader_open(&r, path, &err), 0);
	arena_t a;
	arena_init(&a, 0);
	postings_t p;
	CHECK_EQ_INT(index_reader_postings(&r, &a, STR("job"), STR("j1"), &p, &err), 0);
	CHECK_EQ_INT(p.n, NBIG / 3);
	CHECK_EQ_INT(index_reader_postings(&r, &a, STR("zone"), STR("z1"), &p, &err), 0);
	CHECK_EQ_INT(p.n, NBIG / 6);
	CHECK_EQ_INT(index_reader_postings(&r, &a, STR_NULL, STR_NULL, &p, &err), 0);
	CHECK_EQ_INT(p.n, NBIG);
	for (size_t i = 1; i < p.n; i++)
		CHECK(p.v[i - 1] < p.v[i]);
	arena_release(&a);
	index_reader_close(&r);
	free(ref);
	tu_rm_rf(dir);
}

TEST(index_spill_errors_and_abort)
{
	char dir[4096], path[4096];
	tu_tmpdir(dir);
	snprintf(path, sizeof path, "%s/index", dir);
	str_t syms[] = {STR("a"), STR("b"), STR("c")};
	labels_t l1 = {(label_t[]){{STR("a"), STR("b")}}, 1}, l2 = {(label_t[]){{STR("a"), STR("c")}}, 1};
	index_writer_t *w;
	err_t err = {0};
	/* aborting after spills leaves no temp file (they are unlinked when created) */
	CHECK_EQ_INT(index_writer_open(&w, path, &err), 0);
	index_writer_set_mem_limit(w, 1);
	CHECK_EQ_INT(index_writer_add_symbols(w, syms, 3, &err), 0);
	CHECK_EQ_INT(index_writer_add_series(w, &l1, NULL, 0, &err), 0);
	CHECK_EQ_INT(index_writer_add_series(w, &l2, NULL, 0, &err), 0);
	CHECK_EQ_INT(index_writer_spilled_runs(w), 2);
	CHECK_EQ_INT(stray_files(dir), 0);
	index_writer_abort(w);
	CHECK_EQ_INT(stray_files(dir), 0);
	/* the temp file cannot be created (the directory is gone): the error names it */
	CHECK_EQ_INT(index_writer_open(&w, path, &err), 0);
	index_writer_set_mem_limit(w, 1);
	CHECK_EQ_INT(index_writer_add_symbols(w, syms, 3, &err), 0);
	CHECK_EQ_INT(unlink(path), 0);
	CHECK_EQ_INT(rmdir(dir), 0);
	CHECK_EQ_INT(index_writer_add_series(w, &l1, NULL, 0, &err), ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "index.spill-") != NULL);
	CHECK(strstr(err.msg, dir) != NULL);
	index_writer_abort(w);
}

/* Reads everything a query could touch; returns the first error. */
static int exercise(const char *path, err_t *err)
{
	index_reader_t r;
	int rc = index_reader_open(&r, path, err);
	if (rc)
		return rc;
	arena_t a;
	arena_init(&a, 0);
	postings_t all;
	str_t *names = NULL, *vals = NULL;
	size_t nn = 0, nv = 0;
	matcher_t m;
	matcher_(&m, MATCH_RE, "instance", "i1|i3|x");
	if ((rc = index_reader_load(&r, err)))
		goto out;
	if ((rc = index_reader_postings(&r, &a, STR_NULL, STR_NULL, &all, err)))
		goto out;
	for (size_t i = 0; i < all.n; i++) {
		labels_t ls;
		chunk_meta_t *c;
		size_t nc;
		if ((rc = index_reader_series(&r, &a, all.v[i], &ls, &c, &nc, err)))
			goto out;
	}
	if ((rc = index_reader_label_names(&r, &a, NULL, 0, &names, &nn, err)))
		goto out;
	for (size_t i = 0; i < nn; i++) {
		if ((rc = index_reader_label_values(&r, &a, names[i], NULL, 0, &vals, &nv, err)))
			goto out;
		for (size_t k = 0; k < nv; k++) {
			postings_t p;
			if ((rc = index_reader_postings(&r, &a, names[i], vals[k], &p, err)))
				goto out;
		}
	}
	if ((rc = index_reader_label_values(&r, &a, STR("job"), &m, 1, &vals, &nv, err)))
		goto out;
	if ((rc = index_reader_label_names(&r, &a, &m, 1, &names, &nn, err)))
		goto out;
	uint32_t idx;
	str_t s;
	rc = index_reader_symbol_index(&r, STR("job"), &idx, err);
	if (rc == 0)
		rc = index_reader_symbol(&r, idx, &s, err);
	if (rc == ERR_NOT_FOUND)
		rc = 0;
out:
	matcher_release(&m);
	arena_release(&a);
	index_reader_close(&r);
	return rc;
}

static uint64_t toc_at(const uint8_t *p, size_t len, int i)
{
	return be64_get(p + len - 52 + 8 * i);
}

/* Write bytes (with a possibly recomputed TOC CRC) and expect a corrupt error naming path+offset. */
static void expect_corrupt(fixture_t *f, uint8_t *b, size_t len, const char *want)
{
	tu_write_file(f->path, b, len);
	err_t err = {0};
	int rc = exercise(f->path, &err);
	if (rc != ERR_CORRUPT)
		TEST_FAILF("want ERR_CORRUPT (%s), got %d: %s", want, rc, err.msg);
	CHECK_ERR_WHERE(err, f->path);
	if (!strstr(err.msg, want))
		TEST_FAILF("want \"%s\" in: %s", want, err.msg);
}

static void fix_toc_crc(uint8_t *b, size_t len)
{
	be32_put(b + len - 4, crc32c(0, b + len - 52, 48));
}

static void fix_section_crc(uint8_t *b, uint64_t off)
{
	uint32_t l = be32_get(b + off);
	be32_put(b + off + 4 + l, crc32c(0, b + off + 4, l));
}

TEST(index_corrupt_header_and_toc)
{
	fixture_t f;
	build_index(&f);
	uint8_t *b = xmalloc(f.len);
	/* truncated below header + TOC */
	expect_corrupt(&f, f.bytes, 40, "too short");
	/* bad magic, bad version */
	memcpy(b, f.bytes, f.len);
	b[0] ^= 0xff;
	expect_corrupt(&f, b, f.len, "bad magic");
	memcpy(b, f.bytes, f.len);
	b[4] = 3;
	expect_corrupt(&f, b, f.len, "unsupported index version");
	/* bad TOC CRC */
	memcpy(b, f.bytes, f.len);
	b[f.len - 52 + 3] ^= 1;
	expect_corrupt(&f, b, f.len, "bad TOC CRC32C");
	/* TOC entry pointing past the end (CRC fixed up) */
	memcpy(b, f.bytes, f.len);
	be64_put(b + f.len - 52 + 8 * 5, (uint64_t)f.len + 1000);
	fix_toc_crc(b, f.len);
	expect_corrupt(&f, b, f.len, "points past the end");
	/* Truncated file: the TOC is read from the new end, so it is garbage. */
	expect_corrupt(&f, f.bytes, f.len - 7, "TOC");
	free(b);
	fixture_release(&f);
}

TEST(index_corrupt_sections)
{
	fixture_t f;
	build_index(&f);
	uint8_t *b = xmalloc(f.len);
	uint64_t sym = toc_at(f.bytes, f.len, 0), ser = (toc_at(f.bytes, f.len, 1) + 15) / 16 * 16;
	uint64_t post = toc_at(f.bytes, f.len, 4), pot = toc_at(f.bytes, f.len, 5);
	/* symbol table: bad CRC, absurd length, absurd count, symbol running past the table */
	memcpy(b, f.bytes, f.len);
	b[sym + 9] ^= 0x20;
	expect_corrupt(&f, b, f.len, "symbol table: bad CRC32C");
	memcpy(b, f.bytes, f.len);
	be32_put(b + sym, 0x7ffffff0u);
	expect_corrupt(&f, b, f.len, "symbol table: length");
	memcpy(b, f.bytes, f.len);
	be32_put(b + sym + 4, 0xfffffff0u);
	fix_section_crc(b, sym);
	expect_corrupt(&f, b, f.len, "absurd symbol count");
	memcpy(b, f.bytes, f.len);
	be32_put(b + sym + 4, be32_get(b + sym + 4) + 1); /* one more symbol than stored */
	fix_section_crc(b, sym);
	expect_corrupt(&f, b, f.len, "runs past the symbol table");
	/* series: bad CRC, absurd length, symbol ref out of range */
	memcpy(b, f.bytes, f.len);
	b[ser + 2] ^= 0x01;
	expect_corrupt(&f, b, f.len, "bad CRC32C");
	memcpy(b, f.bytes, f.len);
	b[ser] = 0xff, b[ser + 1] = 0xff, b[ser + 2] = 0x7f;
	expect_corrupt(&f, b, f.len, "length runs past end of file");
	{
		memcpy(b, f.bytes, f.len);
		uint64_t blen;
		int k = uvarint_get(b + ser, b + f.len, &blen);
		b[ser + (size_t)k + 1] = 0x7f; /* first label's name ref: symbol 127 does not exist */
		be32_put(b + ser + (size_t)k + blen, crc32c(0, b + ser + k, (size_t)blen));
		expect_corrupt(&f, b, f.len, "out of range");
	}
	/* postings: bad CRC, length not matching count, not ascending */
	memcpy(b, f.bytes, f.len);
	b[post + 9] ^= 0x01;
	expect_corrupt(&f, b, f.len, "postings list: bad CRC32C");
	memcpy(b, f.bytes, f.len);
	be32_put(b + post + 4, be32_get(b + post + 4) + 1);
	fix_section_crc(b, post);
	expect_corrupt(&f, b, f.len, "do not fit its length");
	memcpy(b, f.bytes, f.len);
	{
		uint32_t first = be32_get(b + post + 8);
		be32_put(b + post + 12, first); /* second entry == first */
		fix_section_crc(b, post);
		expect_corrupt(&f, b, f.len, "not strictly ascending");
	}
	/* postings offset table: bad CRC, an entry whose offset is past the end, malformed entry */
	memcpy(b, f.bytes, f.len);
	b[pot + 10] ^= 0x04;
	expect_corrupt(&f, b, f.len, "postings offset table: bad CRC32C");
	memcpy(b, f.bytes, f.len);
	{
		/* first entry: 0x02, "" (0), "" (0), uvarint offset */
		CHECK_EQ_INT(b[pot + 8], 2);
		uint8_t *o = b + pot + 11;
		uint64_t old;
		int k = uvarint_get(o, b + f.len, &old);
		CHECK(k >= 1);
		for (int i = 0; i < k - 1; i++)
			o[i] = 0xff;
		o[k - 1] = 0x7f; /* same length, huge value */
		fix_section_crc(b, pot);
		expect_corrupt(&f, b, f.len, "past end of file");
	}
	memcpy(b, f.bytes, f.len);
	b[pot + 8] = 3;
	fix_section_crc(b, pot);
	expect_corrupt(&f, b, f.len, "malformed postings offset table entry 0");
	free(b);
	fixture_release(&f);
}

/* A load that failed part-way through the postings offset table fails again the same way when
 * retried (every lookup retries it), without keeping the first attempt's half-built tables. */
TEST(index_failed_load_retried_same_error)
{
	fixture_t f;
	build_index(&f);
	uint8_t *b = xmalloc(f.len);
	memcpy(b, f.bytes, f.len);
	uint64_t pot = toc_at(f.bytes, f.len, 5);
	uint32_t cnt = be32_get(b + pot + 4);
	be32_put(b + pot + 4, cnt + 1); /* one entry more than the table holds */
	fix_section_crc(b, pot);
	tu_write_file(f.path, b, f.len);
	index_reader_t r;
	err_t err = {0};
	CHECK_EQ_INT(index_reader_open(&r, f.path, &err), 0);
	char want[64];
	snprintf(want, sizeof want, "malformed postings offset table entry %u", cnt);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(index_reader_load(&r, &err), ERR_CORRUPT);
		if (!strstr(err.msg, want))
			TEST_FAILF("attempt %d: want \"%s\" in: %s", i + 1, want, err.msg);
	}
	str_t s;
	CHECK_EQ_INT(index_reader_symbol(&r, 0, &s, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, want));
	index_reader_close(&r);
	free(b);
	fixture_release(&f);
}

/* CRC-protected regions of the fixture (body start, length, CRC position), from the TOC and writer
 * layout, so that mutations can keep the CRCs valid and reach the parsers behind them. */
typedef struct region {
	size_t start, len, crc;
} region_t;

static size_t regions_of(const uint8_t *p, size_t len, region_t *out, size_t max)
{
	size_t n = 0;
	uint64_t t[6];
	for (int i = 0; i < 6; i++)
		t[i] = toc_at(p, len, i);
	/* len-prefixed sections: symbols, label indices .. postings, label offsets, postings offsets */
	uint64_t off = t[0];
	out[n++] = (region_t){off + 4, be32_get(p + off), off + 4 + be32_get(p + off)};
	for (off = (t[1] + 15) / 16 * 16; off < t[2] && n < max;) { /* series, 16-aligned */
		uint64_t bl;
		int k = uvarint_get(p + off, p + len, &bl);
		out[n++] = (region_t){off + (uint64_t)k, bl, off + (uint64_t)k + bl};
		off = (off + (uint64_t)k + bl + 4 + 15) / 16 * 16;
	}
	for (off = t[2]; off < t[3] && n < max;) { /* label indices and postings, 4-aligned */
		uint32_t l = be32_get(p + off);
		out[n++] = (region_t){off + 4, l, off + 4 + l};
		off = (off + 8 + l + 3) / 4 * 4;
	}
	for (int i = 3; i <= 5 && n < max; i += 2) {
		off = t[i];
		out[n++] = (region_t){off + 4, be32_get(p + off), off + 4 + be32_get(p + off)};
	}
	out[n++] = (region_t){len - 52, 48, len - 4};
	return n;
}

TEST(index_every_byte_mutated_with_valid_crcs)
{
	fixture_t f;
	build_index(&f);
	region_t reg[256];
	size_t nreg = regions_of(f.bytes, f.len, reg, 250);
	uint8_t *b = xmalloc(f.len);
	static const uint8_t deltas[] = {0x01, 0x80, 0xff};
	int errors = 0, oks = 0;
	for (size_t i = 0; i < f.len; i++) {
		for (size_t d = 0; d < ARRAY_LEN(deltas); d++) {
			memcpy(b, f.bytes, f.len);
			b[i] ^= deltas[d];
			for (size_t k = 0; k < nreg; k++) {
				bool crc_byte = i >= reg[k].crc && i < reg[k].crc + 4;
				if (!crc_byte)
					be32_put(b + reg[k].crc, crc32c(0, b + reg[k].start, reg[k].len));
			}
			tu_write_file(f.path, b, f.len);
			err_t err = {0};
			int rc = exercise(f.path, &err);
			if (rc) {
				if (rc != ERR_CORRUPT)
					TEST_FAILF("byte %zu ^ 0x%02x: code %d: %s", i, deltas[d], rc, err.msg);
				CHECK_ERR_WHERE(err, f.path);
				errors++;
			} else {
				oks++;
			}
		}
	}
	CHECK(errors > 0 && oks > 0); /* both: values can change harmlessly, structure cannot */
	/* and every truncation */
	for (size_t cut = 0; cut < f.len; cut++) {
		tu_write_file(f.path, f.bytes, cut);
		err_t err = {0};
		int rc = exercise(f.path, &err);
		if (rc != ERR_CORRUPT)
			TEST_FAILF("cut at %zu: want ERR_CORRUPT, got %d %s", cut, rc, err.msg);
		CHECK_ERR_WHERE(err, f.path);
	}
	free(b);
	fixture_release(&f);
}

TEST(index_missing_file)
{
	index_reader_t r;
	err_t err = {0};
	CHECK_EQ_INT(index_reader_open(&r, "/nonexistent/strata/index", &err), ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "/nonexistent/strata/index") != NULL);
}

TEST(index_chunk_metas_put_in_time_order)
{
	chunk_meta_t sorted[] = {{0, 9, 1}, {10, 19, 2}, {20, 29, 3}};
	index_chunk_metas_order(sorted, 3);
	CHECK_EQ_INT(sorted[0].ref, 1);
	CHECK_EQ_INT(sorted[2].ref, 3);
	chunk_meta_t ooo[] = {{10, 19, 2}, {0, 9, 1}, {30, 39, 4}, {20, 29, 3}, {20, 25, 5}};
	index_chunk_metas_order(ooo, 5);
	const uint64_t want[] = {1, 2, 5, 3, 4};
	for (size_t i = 0; i < 5; i++)
		CHECK_EQ_INT(ooo[i].ref, want[i]);
	index_chunk_metas_order(ooo, 0);
}

TEST_MAIN()
