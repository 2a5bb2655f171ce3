/*
 * bucket_store_test.c — the store gateway over a FILESYSTEM bucket of blocks written by tsdb's block
 * writer: index-header build/reuse against the index reader, Series (matchers, external labels,
 * trimming, chunks merged across blocks, skip_chunks, limits), label calls, Info, and sync
 * (partial uploads, deletion marks, corrupt index, block removal while a call is in flight, warm
 * restart without header rebuilds), and blocks read on several threads answering exactly as one
 * thread does (chunks and series entries longer than the first read's estimate included).
 */
#include "test.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/varint.h"
#include "objstore/config.h"
#include "storegw/bucket_store.h"
#include "storegw/indexheader.h"
#include "store/proxy.h"
#include "tsdb/block.h"
#include "tsdb/index.h"

#define H2 (2 * 3600 * 1000ll)
#define STEP 15000

static char tmp[256], bdir[300], ddir[300];
static char ulids[4][ULID_LEN + 1];

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

/* Block over [from, from+2h) with up{job=J,inst=I} for the given jobs, 50 instances each; value =
 * t/1000 + inst; external label region (or the labels "a=1,b=2" when it has a '='). Returns its ULID
 * in out. */
static void write_block(int64_t from, const char *region, const char *const *jobs, size_t njobs, char *out)
{
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	block_writer_t *bw;
	BUG_ON(block_writer_new(&bw, bdir, NULL, &err));
	size_t n = (size_t)(H2 / STEP);
	int64_t *t = ARENA_NEW_ARRAY(&a, int64_t, n);
	double *v = ARENA_NEW_ARRAY(&a, double, n);
	for (size_t j = 0; j < njobs; j++)
		for (int inst = 0; inst < 50; inst++) {
			char spec[128];
			snprintf(spec, sizeof spec, "__name__=up,inst=%02d,job=%s", inst, jobs[j]);
			labels_t ls = L(&a, spec);
			for (size_t i = 0; i < n; i++) {
				t[i] = from + (int64_t)i * STEP;
				v[i] = (double)t[i] / 1000 + inst;
			}
			BUG_ON(block_writer_add_series(bw, &ls, t, v, n, &err));
		}
	block_meta_t m = {0};
	if (strchr(region, '=')) { /* external labels "a=1,b=2" */
		labels_t el = L(&a, region);
		for (size_t i = 0; i < el.n; i++)
			meta_set_label(&m, arena_strndup(&a, el.v[i].name.p, el.v[i].name.n),
				       arena_strndup(&a, el.v[i].value.p, el.v[i].value.n));
	} else {
		meta_set_label(&m, "region", region);
	}
	m.source = xstrdup("test");
	char dir[4096];
	if (block_writer_finish(bw, &m, dir, &err))
		die("%s", err.msg);
	meta_release(&m);
	strcpy(out, dir + strlen(dir) - ULID_LEN);
	arena_release(&a);
}

static bucket_t *open_bucket(void)
{
	char yaml[512];
	snprintf(yaml, sizeof yaml, "type: FILESYSTEM\nconfig: {directory: %s}", bdir);
	bucket_t *b;
	err_t err = {0};
	if (objstore_from_config(yaml, strlen(yaml), &b, &err))
		die("%s", err.msg);
	return b;
}

static void setup(void)
{
	if (tmp[0])
		return;
	snprintf(tmp, sizeof tmp, "/tmp/strata-bstore.XXXXXX");
	BUG_ON(!mkdtemp(tmp));
	snprintf(bdir, sizeof bdir, "%s/bucket", tmp);
	snprintf(ddir, sizeof ddir, "%s/data", tmp);
	mkdir(bdir, 0755);
	static const char *const ab[] = {"a", "b"}, *const c[] = {"c"};
	write_block(0, "eu", ab, 2, ulids[0]);
	write_block(H2, "eu", ab, 2, ulids[1]);
	write_block(0, "us", c, 1, ulids[2]);
}

static bucket_store_t *new_store(bucket_t *b, bucket_store_config_t *over)
{
	bucket_store_config_t cfg = {.bkt = b, .data_dir = ddir, .min_time = INT64_MIN, .max_time = INT64_MAX,
				     .index_cache_size = 1 << 20};
	if (over) {
		cfg = *over;
		cfg.bkt = b;
		cfg.data_dir = ddir;
	}
	bucket_store_t *s;
	err_t err = {0};
	BUG_ON(bucket_store_new(&s, &cfg, &err));
	if (bucket_store_sync(s, &err))
		die("%s", err.msg);
	return s;
}

typedef struct result {
	size_t series, samples, chunks, maxchunk;
	double sum;
	int64_t tmin, tmax;
	char first[256];
	bool sorted;
	int rc;
	char err[512];
} result_t;

/* "name<op>value" with op one of = != =~ !~ */
static void parse_matchers(matcher_t *ms, const char *const *mspec, size_t nm)
{
	err_t err = {0};
	for (size_t i = 0; i < nm; i++) {
		const char *s = mspec[i];
		size_t nl = strcspn(s, "=!");
		match_type_t ty = MATCH_EQ;
		const char *val = s + nl + 1;
		if (s[nl] == '!')
			ty = s[nl + 1] == '~' ? MATCH_NRE : MATCH_NEQ, val = s + nl + 2;
		else if (s[nl + 1] == '~')
			ty = MATCH_RE, val = s + nl + 2;
		BUG_ON(matcher_init(&ms[i], ty, str_from(s, nl), str_c(val), &err));
	}
}

static result_t run(store_t *st, const char *const *mspec, size_t nm, int64_t mint, int64_t maxt, bool skip)
{
	arena_t a;
	arena_init(&a, 0);
	result_t r = {.tmin = INT64_MAX, .tmax = INT64_MIN, .sorted = true};
	matcher_t ms[8];
	err_t err = {0};
	parse_matchers(ms, mspec, nm);
	store_series_req_t req = {.mint = mint, .maxt = maxt, .ms = ms, .nms = nm, .skip_chunks = skip};
	series_set_t *set;
	r.rc = store_series(st, &a, &req, &set, &err);
	if (!r.rc) {
		labels_t prev = {0};
		int k;
		while ((k = series_set_next(set, &err)) == 1) {
			const labels_t *ls = series_set_labels(set);
			if (r.series && labels_cmp(&prev, ls) >= 0)
				r.sorted = false;
			prev = labels_copy(&a, ls);
			if (!r.series) {
				buf_t b = BUF_INIT;
				labels_format_full(&b, ls);
				snprintf(r.first, sizeof r.first, "%s", b.p);
				buf_release(&b);
			}
			r.series++;
			const chunk_t *cs;
			int nc = set->ops->chunks(set, &cs);
			r.chunks += nc > 0 ? (size_t)nc : 0;
			for (int i = 0; i < nc; i++)
				r.maxchunk = cs[i].len > r.maxchunk ? cs[i].len : r.maxchunk;
			sample_iter_t *it = series_set_samples(set);
			int64_t t[256];
			double v[256];
			int n;
			while ((n = sample_iter_next_batch(it, t, v, 256, &err)) > 0)
				for (int i = 0; i < n; i++) {
					r.samples++;
					r.sum += v[i];
					r.tmin = t[i] < r.tmin ? t[i] : r.tmin;
					r.tmax = t[i] > r.tmax ? t[i] : r.tmax;
				}
			if (n < 0) {
				r.rc = n;
				break;
			}
		}
		if (k < 0)
			r.rc = k;
		series_set_close(set);
	}
	snprintf(r.err, sizeof r.err, "%s", err.msg);
	for (size_t i = 0; i < nm; i++)
		matcher_release(&ms[i]);
	arena_release(&a);
	return r;
}

TEST(indexheader_matches_index_reader)
{
	setup();
	bucket_t *b = open_bucket();
	char name[64], path[512], ipath[512];
	snprintf(name, sizeof name, "%s/index", ulids[0]);
	snprintf(path, sizeof path, "%s/ih-test", tmp);
	snprintf(ipath, sizeof ipath, "%s/%s/index", bdir, ulids[0]);
	err_t err = {0};
	CHECK_EQ_INT(indexheader_build(b, name, -1, path, &err), 0);
	indexheader_t *h;
	CHECK_EQ_INT(indexheader_open(&h, path, &err), 0);
	index_reader_t r;
	CHECK_EQ_INT(index_reader_open(&r, ipath, &err), 0);
	CHECK_EQ_INT(index_reader_load(&r, &err), 0);
	CHECK_EQ_INT(indexheader_nsymbols(h), r.syms.n);
	for (uint32_t i = 0; i < r.syms.n; i++) {
		str_t x, y;
		CHECK_EQ_INT(indexheader_symbol(h, i, &x, &err), 0);
		CHECK_EQ_INT(index_reader_symbol(&r, i, &y, &err), 0);
		CHECK(str_eq(x, y));
	}
	CHECK(indexheader_size(h) < r.len);
	/* Every postings range decodes to the reader's list. */
	arena_t a;
	arena_init(&a, 0);
	const char *const vals[] = {"00", "17", "49"};
	for (size_t i = 0; i < 3; i++) {
		int64_t s, e;
		CHECK(indexheader_postings_range(h, STR("inst"), str_c(vals[i]), &s, &e));
		CHECK(e > s + 8);
		postings_t p;
		CHECK_EQ_INT(index_reader_postings(&r, &a, STR("inst"), str_c(vals[i]), &p, &err), 0);
		CHECK_EQ_U64(be32_get(r.p + s), 4 + 4 * p.n);
		CHECK_EQ_U64(be32_get(r.p + s + 8), p.v[0]);
	}
	int64_t s, e;
	CHECK(!indexheader_postings_range(h, STR("inst"), STR("50"), &s, &e));
	CHECK(!indexheader_postings_range(h, STR("nope"), STR("x"), &s, &e));
	str_t *names;
	size_t nn;
	indexheader_label_names(h, &a, &names, &nn);
	CHECK_EQ_INT(nn, 3);
	CHECK_SLICE(names[0], "__name__");
	CHECK_SLICE(names[2], "job");
	indexheader_close(h);
	/* A corrupt header is rejected with the file and offset. */
	int fd = open(path, O_RDWR);
	CHECK(pwrite(fd, "\xff", 1, 20) == 1);
	close(fd);
	CHECK_EQ_INT(indexheader_open(&h, path, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "ih-test") && strstr(err.msg, "offset"));
	/* A truncated file is corrupt at offset 0; a missing one names the path. */
	CHECK(truncate(path, 10) == 0);
	CHECK_EQ_INT(indexheader_open(&h, path, &err), ERR_CORRUPT);
	char want[600];
	snprintf(want, sizeof want, "index-header: %s: offset 0: file too short", path);
	CHECK_STR(err.msg, want);
	CHECK(unlink(path) == 0);
	CHECK_EQ_INT(indexheader_open(&h, path, &err), ERR_NOT_FOUND);
	snprintf(want, sizeof want, "index-header: open %s: No such file or directory", path);
	CHECK_STR(err.msg, want);
	arena_release(&a);
	index_reader_close(&r);
	bucket_free(b);
}

static bool count_value(void *arg, str_t value, int64_t start, int64_t end)
{
	size_t *n = arg;
	*n += value.n + (start < end);
	return true;
}

/* Every byte of an index-header flipped three ways (section and TOC CRCs recomputed, so the parsers
 * behind them see the damage) and every truncation: open fails with ERR_CORRUPT naming the file and an
 * offset, or succeeds and every lookup stays in bounds (ASan). */
TEST(indexheader_every_byte_mutated_with_valid_crcs)
{
	setup();
	bucket_t *b = open_bucket();
	char name[64], path[512], mpath[520];
	snprintf(name, sizeof name, "%s/index", ulids[0]);
	snprintf(path, sizeof path, "%s/ih-mut", tmp);
	snprintf(mpath, sizeof mpath, "%s.m", path);
	err_t err = {0};
	CHECK_EQ_INT(indexheader_build(b, name, -1, path, &err), 0);
	FILE *f = fopen(path, "rb");
	CHECK(f);
	static uint8_t orig[1 << 16], m[1 << 16];
	size_t n = fread(orig, 1, sizeof orig, f);
	fclose(f);
	CHECK(n > 100 && n < sizeof orig);
	/* CRC'd regions: the two sections (bodies after their length) and the 16-byte TOC */
	size_t reg[3][3];
	for (int i = 0; i < 2; i++) {
		uint64_t off = be64_get(orig + n - 20 + 8 * i);
		uint32_t l = be32_get(orig + off);
		reg[i][0] = off + 4, reg[i][1] = l, reg[i][2] = off + 4 + l;
	}
	reg[2][0] = n - 20, reg[2][1] = 16, reg[2][2] = n - 4;
	static const uint8_t deltas[] = {0x01, 0x80, 0xff};
	int errors = 0, oks = 0;
	arena_t a;
	arena_init(&a, 0);
	for (size_t i = 0; i <= n * 3; i++) {
		size_t len = n;
		memcpy(m, orig, n);
		if (i < n * 3) {
			m[i / 3] ^= deltas[i % 3];
			for (int k = 0; k < 3; k++)
				if (i / 3 < reg[k][2] || i / 3 >= reg[k][2] + 4)
					be32_put(m + reg[k][2], crc32c(0, m + reg[k][0], reg[k][1]));
		}
		for (size_t cut = i < n * 3 ? n : 0; cut <= n; cut += i < n * 3 ? 1 : 7) {
			len = cut;
			f = fopen(mpath, "wb");
			CHECK(f && fwrite(m, 1, len, f) == len);
			fclose(f);
			indexheader_t *h;
			int rc = indexheader_open(&h, mpath, &err);
			if (rc) {
				if (rc != ERR_CORRUPT || !strstr(err.msg, mpath) || !strstr(err.msg, "offset"))
					TEST_FAILF("byte %zu ^ 0x%02x, %zu bytes: %d %s", i / 3, deltas[i % 3], len, rc, err.msg);
				errors++;
				continue;
			}
			oks++;
			for (uint32_t k = 0; k <= indexheader_nsymbols(h); k++) {
				str_t sym;
				int src = indexheader_symbol(h, k, &sym, &err);
				CHECK(k < indexheader_nsymbols(h) ? src == 0 : src == ERR_CORRUPT);
			}
			str_t *names;
			size_t nn, tot = 0;
			indexheader_label_names(h, &a, &names, &nn);
			for (size_t k = 0; k < nn; k++) {
				indexheader_each_value(h, names[k], count_value, &tot);
				int64_t s, e;
				if (indexheader_postings_range(h, names[k], STR("17"), &s, &e))
					CHECK(s <= e);
			}
			indexheader_close(h);
			arena_reset(&a);
		}
	}
	CHECK(errors > 100 && oks > 100); /* values can change harmlessly, structure cannot */
	arena_release(&a);
	unlink(path);
	unlink(mpath);
	bucket_free(b);
}

TEST(series_matchers_external_labels_and_merge_across_blocks)
{
	setup();
	bucket_t *b = open_bucket();
	bucket_store_t *bs = new_store(b, NULL);
	store_t *st = bucket_store_base(bs);
	bucket_store_stats_t stats;
	bucket_store_stats(bs, &stats);
	CHECK_EQ_INT(stats.blocks, 3);
	CHECK_EQ_INT(stats.headers_open, 0); /* lazy */

	const char *m1[] = {"job=a", "inst=07"};
	result_t r = run(st, m1, 2, 0, 2 * H2, false);
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_INT(r.series, 1); /* both eu blocks merged into one series */
	CHECK_STR(r.first, "{__name__=\"up\", inst=\"07\", job=\"a\", region=\"eu\"}");
	CHECK_EQ_INT(r.samples, 2 * H2 / STEP);
	CHECK_EQ_INT(r.tmin, 0);
	CHECK_EQ_INT(r.tmax, 2 * H2 - STEP);
	bucket_store_stats(bs, &stats);
	CHECK_EQ_INT(stats.headers_open, 3);
	const char *m0[] = {"region=eu"};
	run(st, m0, 1, 0, 2 * H2, true);

	/* trimming to [1h, 1h+59s] */
	r = run(st, m1, 2, 3600000, 3600000 + 59999, false);
	CHECK_EQ_INT(r.samples, 4);
	CHECK_DBL(r.sum, 4 * 7 + 3600 + 3615 + 3630 + 3645);

	const char *m2[] = {"__name__=up", "job=~a|c"};
	r = run(st, m2, 2, 0, 2 * H2, false);
	CHECK_EQ_INT(r.series, 100);
	CHECK(r.sorted);
	const char *m3[] = {"__name__=up", "region=us"};
	r = run(st, m3, 2, 0, 2 * H2, false);
	CHECK_EQ_INT(r.series, 50);
	CHECK_EQ_INT(r.samples, 50 * H2 / STEP);
	const char *m4[] = {"region=eu", "inst!~0.|1.|2.|3.", "job!=b"};
	r = run(st, m4, 3, 0, 2 * H2, false);
	CHECK_EQ_INT(r.series, 10);
	const char *m5[] = {"job=~.+", "nope=", "inst=~4[5-9]"};
	r = run(st, m5, 3, H2, H2, true);
	CHECK_EQ_INT(r.series, 10); /* only the second eu block overlaps [2h, 2h]: jobs a, b x 5 */
	const char *m6[] = {"job=zzz"};
	r = run(st, m6, 1, 0, 2 * H2, false);
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_INT(r.series, 0);
	const char *m7[] = {"region=asia"};
	r = run(st, m7, 1, 0, 2 * H2, false);
	CHECK_EQ_INT(r.series, 0);
	/* second run hits the index cache and gives the same answer */
	r = run(st, m2, 2, 0, 2 * H2, false);
	CHECK_EQ_INT(r.series, 100);
	CHECK_EQ_INT(r.samples, 100 * H2 / STEP + 50 * H2 / STEP);
	bucket_store_free(bs);
	bucket_free(b);
}

TEST(label_names_values_and_info)
{
	setup();
	bucket_t *b = open_bucket();
	bucket_store_t *bs = new_store(b, NULL);
	store_t *st = bucket_store_base(bs);
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	store_label_req_t lr = {.mint = 0, .maxt = 2 * H2};
	store_strings_t out;
	CHECK_EQ_INT(store_label_names(st, &a, &lr, &out, &err), 0);
	CHECK_EQ_INT(out.n, 4);
	CHECK_SLICE(out.v[3], "region");
	lr.name = STR("job");
	CHECK_EQ_INT(store_label_values(st, &a, &lr, &out, &err), 0);
	CHECK_EQ_INT(out.n, 3);
	lr.name = STR("region");
	CHECK_EQ_INT(store_label_values(st, &a, &lr, &out, &err), 0);
	CHECK_EQ_INT(out.n, 2);
	matcher_t m;
	CHECK_EQ_INT(matcher_init(&m, MATCH_EQ, STR("job"), STR("c"), &err), 0);
	lr.ms = &m;
	lr.nms = 1;
	CHECK_EQ_INT(store_label_values(st, &a, &lr, &out, &err), 0);
	CHECK_EQ_INT(out.n, 1);
	CHECK_SLICE(out.v[0], "us");
	lr.name = STR("inst");
	CHECK_EQ_INT(store_label_values(st, &a, &lr, &out, &err), 0);
	CHECK_EQ_INT(out.n, 50);
	matcher_release(&m);
	store_info_t info;
	CHECK_EQ_INT(store_info(st, &a, &info, &err), 0);
	CHECK_EQ_INT(info.nlabel_sets, 2);
	CHECK_EQ_INT(info.mint, 0);
	CHECK_EQ_INT(info.maxt, 2 * H2 - STEP); /* meta maxt is exclusive: last sample + 1 */
	CHECK(info.supports_without_replica_labels);
	arena_release(&a);
	bucket_store_free(bs);
	bucket_free(b);
}

TEST(limits_fail_fast)
{
	setup();
	bucket_t *b = open_bucket();
	bucket_store_config_t cfg = {.min_time = INT64_MIN, .max_time = INT64_MAX, .series_sample_limit = 1000};
	bucket_store_t *bs = new_store(b, &cfg);
	const char *m[] = {"__name__=up"};
	result_t r = run(bucket_store_base(bs), m, 1, 0, 2 * H2, false);
	CHECK_EQ_INT(r.rc, ERR_LIMIT);
	CHECK(strstr(r.err, "samples limit"));
	const char *m1[] = {"inst=01", "job=a"};
	r = run(bucket_store_base(bs), m1, 2, 0, H2 - 1, false);
	CHECK_EQ_INT(r.rc, 0);
	bucket_store_free(bs);
	cfg = (bucket_store_config_t){.min_time = INT64_MIN, .max_time = INT64_MAX, .bytes_limit = 2000};
	bs = new_store(b, &cfg);
	r = run(bucket_store_base(bs), m, 1, 0, 2 * H2, false);
	CHECK_EQ_INT(r.rc, ERR_LIMIT);
	CHECK(strstr(r.err, "bytes limit"));
	bucket_store_free(bs);
	cfg = (bucket_store_config_t){.min_time = H2, .max_time = INT64_MAX};
	bs = new_store(b, &cfg);
	bucket_store_stats_t stats;
	bucket_store_stats(bs, &stats);
	CHECK_EQ_INT(stats.blocks, 1); /* --min-time excludes the first two blocks */
	bucket_store_free(bs);
	bucket_free(b);
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	BUG_ON(!f);
	fputs(s, f);
	fclose(f);
}

TEST(sync_partial_marked_corrupt_inflight_and_warm_restart)
{
	setup();
	bucket_t *b = open_bucket();
	bucket_store_t *bs = new_store(b, NULL);
	store_t *st = bucket_store_base(bs);
	bucket_store_stats_t stats;
	bucket_store_stats(bs, &stats);
	size_t builds0 = stats.header_builds;

	/* a partial upload (no meta.json) and a block with a corrupt index */
	char path[512], id[ULID_LEN + 1];
	ulid_new(id, clock_now_ms());
	snprintf(path, sizeof path, "%s/%s", bdir, id);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/index", bdir, id);
	write_file(path, "partial");
	static const char *const d[] = {"d"};
	write_block(2 * H2, "eu", d, 1, ulids[3]);
	snprintf(path, sizeof path, "%s/%s/index", bdir, ulids[3]);
	int fd = open(path, O_RDWR);
	CHECK(pwrite(fd, "\x7f\x7f", 2, 12) == 2); /* inside the symbol table */
	close(fd);
	err_t err = {0};
	CHECK_EQ_INT(bucket_store_sync(bs, &err), 0);
	bucket_store_stats(bs, &stats);
	CHECK_EQ_INT(stats.blocks, 3);
	CHECK_EQ_INT(stats.load_failures, 1);

	/* a call in flight keeps its blocks when a deletion mark drops one */
	arena_t a;
	arena_init(&a, 0);
	matcher_t m;
	CHECK_EQ_INT(matcher_init(&m, MATCH_EQ, STR("job"), STR("a"), &err), 0);
	store_series_req_t req = {.mint = 0, .maxt = 2 * H2, .ms = &m, .nms = 1};
	series_set_t *set;
	CHECK_EQ_INT(store_series(st, &a, &req, &set, &err), 0);
	char mark[256];
	snprintf(mark, sizeof mark, "{\"id\":\"%s\",\"version\":1,\"deletion_time\":%lld}", ulids[0],
		 (long long)(clock_now_ms() / 1000 - 60));
	snprintf(path, sizeof path, "%s/%s/deletion-mark.json", bdir, ulids[0]);
	write_file(path, mark);
	CHECK_EQ_INT(bucket_store_sync(bs, &err), 0); /* delay 0: dropped now */
	bucket_store_stats(bs, &stats);
	CHECK_EQ_INT(stats.blocks, 2);
	size_t n = 0, samples = 0;
	int k;
	while ((k = series_set_next(set, &err)) == 1) {
		n++;
		const chunk_t *cs;
		int nc = set->ops->chunks(set, &cs);
		for (int i = 0; i < nc; i++)
			samples += (size_t)(cs[i].data[0] << 8 | cs[i].data[1]);
	}
	CHECK_EQ_INT(k, 0);
	CHECK_EQ_INT(n, 50);
	CHECK_EQ_INT(samples, 50 * 2 * H2 / STEP);
	series_set_close(set);
	arena_release(&a);
	matcher_release(&m);
	const char *m1[] = {"job=a"};
	result_t r = run(st, m1, 1, 0, 2 * H2, false);
	CHECK_EQ_INT(r.series, 50);
	CHECK_EQ_INT(r.samples, 50 * H2 / STEP); /* only the second block is left */
	bucket_store_free(bs);

	/* warm restart: no header is built again */
	bs = new_store(b, NULL);
	bucket_store_stats(bs, &stats);
	CHECK_EQ_INT(stats.blocks, 2);
	CHECK_EQ_INT(stats.header_builds, 0);
	(void)builds0;
	r = run(bucket_store_base(bs), m1, 1, 0, 2 * H2, false);
	CHECK_EQ_INT(r.series, 50);
	/* a damaged local header is rebuilt on first use */
	snprintf(path, sizeof path, "%s/%s/%s", ddir, ulids[1], INDEXHEADER_FILE);
	bucket_store_free(bs);
	fd = open(path, O_RDWR);
	CHECK(pwrite(fd, "\x00\x00\x00\x00", 4, 0) == 4);
	close(fd);
	bs = new_store(b, NULL);
	r = run(bucket_store_base(bs), m1, 1, 0, 2 * H2, false);
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_INT(r.series, 50);
	bucket_store_stats(bs, &stats);
	CHECK_EQ_INT(stats.header_builds, 1);
	bucket_store_free(bs);
	bucket_free(b);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
	CHECK(system(cmd) == 0);
}

/* Block at from with one series name{} of n samples, t = from + i*step and value i; or when noisy,
 * samples ever closer together (each gap 1.5% shorter, from step) with random values of random
 * sign: hardly compressible, and as the writer sizes a chunk from the rate of its first samples, a
 * chunk holds up to 240 of them (> 2 KiB). Returns its ULID in out. */
static void write_one_series_block(int64_t from, const char *name, size_t n, int64_t step, bool noisy, char *out)
{
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	block_writer_t *bw;
	block_writer_opts_t opts = {.chunk_range = noisy ? INT64_MAX / 4 : 0};
	BUG_ON(block_writer_new(&bw, bdir, &opts, &err));
	int64_t *t = ARENA_NEW_ARRAY(&a, int64_t, n);
	double *v = ARENA_NEW_ARRAY(&a, double, n);
	uint64_t x = 88172645463325252ull;
	double gap = (double)step;
	int64_t at = from;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		t[i] = noisy ? at : from + (int64_t)i * step;
		at += (int64_t)gap;
		gap *= 0.985;
		double r;
		uint64_t bits = (x & 0x800fffffffffffffull) | ((0x3f0ull + ((x >> 58) & 31)) << 52); /* finite */
		memcpy(&r, &bits, sizeof r);
		v[i] = noisy ? r : (double)i;
	}
	char spec[64];
	snprintf(spec, sizeof spec, "__name__=%s", name);
	labels_t ls = L(&a, spec);
	BUG_ON(block_writer_add_series(bw, &ls, t, v, n, &err));
	block_meta_t m = {0};
	meta_set_label(&m, "region", "eu");
	m.source = xstrdup("test");
	char dir[4096];
	if (block_writer_finish(bw, &m, dir, &err))
		die("%s", err.msg);
	meta_release(&m);
	strcpy(out, dir + strlen(dir) - ULID_LEN);
	arena_release(&a);
}

static bool same_result(const result_t *x, const result_t *y)
{
	return x->rc == y->rc && x->series == y->series && x->samples == y->samples && x->chunks == y->chunks &&
	       x->sum == y->sum && x->tmin == y->tmin && x->tmax == y->tmax && !strcmp(x->first, y->first) &&
	       x->sorted == y->sorted && !strcmp(x->err, y->err);
}

/* A directory of the test's own in own (the helpers' bdir/ddir point there). */
static void own_dir(char *own, size_t n, const char *prefix)
{
	snprintf(own, n, "/tmp/%s.XXXXXX", prefix);
	BUG_ON(!mkdtemp(own));
	snprintf(bdir, sizeof bdir, "%s/bucket", own);
	snprintf(ddir, sizeof ddir, "%s/data", own);
	mkdir(bdir, 0755);
}

static void own_dir_remove(const char *own)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", own);
	BUG_ON(system(cmd) != 0);
}

/* Flip a byte inside the postings list of name=value in block id's index in the bucket (found with
 * an index-header built at own/ih-<id>), so that reading it fails its CRC. */
static void corrupt_postings(bucket_t *b, const char *own, const char *id, str_t name, str_t value)
{
	char obj[64], hpath[512], ipath[512];
	snprintf(obj, sizeof obj, "%s/index", id);
	snprintf(hpath, sizeof hpath, "%s/ih-%s", own, id);
	snprintf(ipath, sizeof ipath, "%s/%s/index", bdir, id);
	err_t err = {0};
	indexheader_t *h;
	BUG_ON(indexheader_build(b, obj, -1, hpath, &err) || indexheader_open(&h, hpath, &err));
	int64_t s, e;
	BUG_ON(!indexheader_postings_range(h, name, value, &s, &e));
	indexheader_close(h);
	int fd = open(ipath, O_RDWR);
	BUG_ON(fd < 0 || pwrite(fd, "\x7f", 1, s + 9) != 1);
	close(fd);
}

/* Blocks read on several threads answer exactly as one thread does (series merged across 16 blocks,
 * in order); chunks longer than the first read's estimate and a series entry longer than its
 * estimate are re-read exactly; with two corrupt blocks the error names the first in block order
 * whatever thread hit it. Uses a directory of its own (the helpers' bdir/ddir point there). */
TEST(parallel_block_reads_equal_sequential_and_long_entries)
{
	char own[256];
	own_dir(own, sizeof own, "strata-bstore-par");
	static const char *const ab[] = {"a", "b"};
	char ids[16][ULID_LEN + 1], noisy[ULID_LEN + 1], lng[ULID_LEN + 1];
	for (int i = 0; i < 16; i++)
		write_block((int64_t)i * H2, "eu", ab, 2, ids[i]);
	write_one_series_block(16 * H2, "noisy", 240, 1000000000, true, noisy);
	write_one_series_block(17 * H2, "long", 200000, 30, false, lng);

	bucket_t *b = open_bucket();
	bucket_store_config_t c1 = {.min_time = INT64_MIN, .max_time = INT64_MAX, .read_concurrency = 1};
	bucket_store_config_t c4 = {
	    .min_time = INT64_MIN, .max_time = INT64_MAX, .read_concurrency = 4, .read_lanes_eager = true};
	/* local reads by default: helpers join only when the caller's first blocks were slow */
	bucket_store_config_t cl = {.min_time = INT64_MIN, .max_time = INT64_MAX, .read_concurrency = 4};
	bucket_store_t *seq = new_store(b, &c1), *par = new_store(b, &c4), *lazy = new_store(b, &cl);
	bucket_store_stats_t stats;
	bucket_store_stats(par, &stats);
	CHECK_EQ_INT(stats.blocks, 18);

	const char *up[] = {"__name__=up"}, *some[] = {"inst=~0[0-4]", "job!=b"}, *nz[] = {"__name__=noisy"},
		   *lg[] = {"__name__=long"};
	struct {
		const char *const *m;
		size_t nm;
		int64_t mint, maxt;
	} qs[] = {{up, 1, 0, 16 * H2}, {some, 2, H2 + 1000, 9 * H2 + 5}, {nz, 1, 0, INT64_MAX}, {lg, 1, 0, INT64_MAX}};
	result_t want[4];
	for (size_t i = 0; i < 4; i++) {
		want[i] = run(bucket_store_base(seq), qs[i].m, qs[i].nm, qs[i].mint, qs[i].maxt, false);
		result_t got = run(bucket_store_base(par), qs[i].m, qs[i].nm, qs[i].mint, qs[i].maxt, false);
		CHECK_EQ_INT(want[i].rc, 0);
		CHECK(same_result(&want[i], &got));
		CHECK(got.sorted);
		got = run(bucket_store_base(lazy), qs[i].m, qs[i].nm, qs[i].mint, qs[i].maxt, false);
		CHECK(same_result(&want[i], &got));
	}
	/* up: 100 series, each one series over all 16 blocks */
	CHECK_EQ_INT(want[0].series, 100);
	CHECK_EQ_INT(want[0].samples, 100 * 16 * (size_t)(H2 / STEP));
	CHECK_EQ_INT(want[1].series, 5);
	CHECK_EQ_INT(want[2].samples, 240);
	CHECK(want[2].maxchunk > 2048); /* longer than the store's first read of a chunk */
	CHECK_EQ_INT(want[3].samples, 200000);
	CHECK(want[3].sum == 200000.0 * 199999.0 / 2);
	CHECK(want[3].chunks > 800); /* its index entry is longer than the first read */

	/* Corrupt one postings list (inst=07) in blocks 3 and 9 of the bucket. */
	corrupt_postings(b, own, ids[3], STR("inst"), STR("07"));
	corrupt_postings(b, own, ids[9], STR("inst"), STR("07"));
	const char *seven[] = {"inst=07"};
	result_t e1 = run(bucket_store_base(seq), seven, 1, 0, INT64_MAX, false);
	result_t e4 = run(bucket_store_base(par), seven, 1, 0, INT64_MAX, false);
	CHECK_EQ_INT(e1.rc, ERR_CORRUPT);
	CHECK(same_result(&e1, &e4));
	CHECK(strstr(e4.err, ids[3]) && strstr(e4.err, "CRC32C"));
	result_t el = run(bucket_store_base(lazy), seven, 1, 0, INT64_MAX, false);
	CHECK(same_result(&e1, &el));
	/* blocks that are fine keep answering */
	result_t ok = run(bucket_store_base(par), seven, 1, 10 * H2, 16 * H2, false);
	CHECK_EQ_INT(ok.rc, 0);
	CHECK_EQ_INT(ok.series, 2);
	/* A flipped byte in the middle of the long series' chunk data: its chunk's CRC32C fails the call,
	 * naming the block, the segment and the chunk's offset (checked as the series is returned) */
	char cpath[512];
	snprintf(cpath, sizeof cpath, "%s/%s/chunks/000001", bdir, lng);
	int fd = open(cpath, O_RDWR);
	struct stat st;
	BUG_ON(fd < 0 || fstat(fd, &st) != 0);
	uint8_t byte;
	BUG_ON(pread(fd, &byte, 1, st.st_size / 2) != 1);
	byte ^= 0x10;
	BUG_ON(pwrite(fd, &byte, 1, st.st_size / 2) != 1);
	close(fd);
	result_t c1r = run(bucket_store_base(seq), lg, 1, 0, INT64_MAX, false);
	result_t c4r = run(bucket_store_base(par), lg, 1, 0, INT64_MAX, false);
	CHECK_EQ_INT(c1r.rc, ERR_CORRUPT);
	CHECK(same_result(&c1r, &c4r));
	if (!strstr(c4r.err, lng) || !strstr(c4r.err, "chunks/000001: offset") ||
	    !strstr(c4r.err, "chunk: bad CRC32C"))
		TEST_FAILF("%s", c4r.err);

	bucket_store_free(seq);
	bucket_store_free(par);
	bucket_store_free(lazy);
	bucket_free(b);
	own_dir_remove(own);
}

/* Block i of the label test: [i*2h, i*2h+4min), region us when i % 3 == 0 else eu, job j<i%5>;
 * up{inst=i<i>k<k>} for k < 10 and down{zone=z<k>} for k < 3, 4 samples each. */
static void write_label_block(int i, char *out)
{
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	block_writer_t *bw;
	BUG_ON(block_writer_new(&bw, bdir, NULL, &err));
	int64_t t[4];
	double v[4];
	for (int k = 0; k < 4; k++)
		t[k] = (int64_t)i * H2 + k * 60000, v[k] = k;
	for (int k = 0; k < 13; k++) {
		char spec[128];
		if (k < 10)
			snprintf(spec, sizeof spec, "__name__=up,inst=i%02dk%d,job=j%d", i, k, i % 5);
		else
			snprintf(spec, sizeof spec, "__name__=down,zone=z%d,job=j%d", k - 10, i % 5);
		labels_t ls = L(&a, spec);
		BUG_ON(block_writer_add_series(bw, &ls, t, v, 4, &err));
	}
	block_meta_t m = {0};
	meta_set_label(&m, "region", i % 3 ? "eu" : "us");
	m.source = xstrdup("test");
	char dir[4096];
	if (block_writer_finish(bw, &m, dir, &err))
		die("%s", err.msg);
	meta_release(&m);
	strcpy(out, dir + strlen(dir) - ULID_LEN);
	arena_release(&a);
}

/* A label call's answer joined with ',' (or "error <rc>: <msg>") into out. */
static void labels_answer(store_t *st, const char *name, const char *const *mspec, size_t nm, int64_t mint,
			  int64_t maxt, int64_t limit, buf_t *out)
{
	arena_t a;
	arena_init(&a, 0);
	matcher_t ms[8];
	parse_matchers(ms, mspec, nm);
	err_t err = {0};
	store_label_req_t lr = {.mint = mint, .maxt = maxt, .ms = ms, .nms = nm, .limit = limit};
	store_strings_t r;
	int rc;
	if (name) {
		lr.name = str_c(name);
		rc = store_label_values(st, &a, &lr, &r, &err);
	} else {
		rc = store_label_names(st, &a, &lr, &r, &err);
	}
	buf_reset(out);
	if (rc) {
		buf_printf(out, "error %d: %s", rc, err.msg);
	} else {
		for (size_t i = 0; i < r.n; i++) {
			if (i)
				buf_putc(out, ',');
			buf_append_str(out, r.v[i]);
			if (i && str_cmp(r.v[i - 1], r.v[i]) >= 0)
				buf_puts(out, "<-UNSORTED");
		}
	}
	for (size_t i = 0; i < nm; i++)
		matcher_release(&ms[i]);
	arena_release(&a);
}

/* Label names/values with matchers read 40 blocks on 4 lanes and answer exactly as one lane does
 * (sorted, deduplicated across blocks, external labels merged, limit applied after the merge), and
 * as the data says; the series limit applies; with two corrupt blocks the error names the first in
 * block order on both. Uses a directory of its own. */
TEST(label_calls_parallel_equal_sequential)
{
	char own[256];
	own_dir(own, sizeof own, "strata-bstore-lbl");
	enum { NB = 40 };
	char ids[NB][ULID_LEN + 1];
	for (int i = 0; i < NB; i++)
		write_label_block(i, ids[i]);
	bucket_t *b = open_bucket();
	bucket_store_config_t c1 = {.min_time = INT64_MIN, .max_time = INT64_MAX, .read_concurrency = 1};
	bucket_store_config_t c4 = {
	    .min_time = INT64_MIN, .max_time = INT64_MAX, .read_concurrency = 4, .read_lanes_eager = true};
	bucket_store_t *seq = new_store(b, &c1), *par = new_store(b, &c4);

	const char *down[] = {"__name__=down"}, *j2[] = {"job=j2"}, *up[] = {"__name__=up"}, *us[] = {"region=us"},
		   *re[] = {"inst=~i1.k[0-2]"}, *jz[] = {"job=~j[13]", "zone!="}, *none[] = {"__name__=nope"},
		   *usj[] = {"region=us", "job=j4"};
	struct {
		const char *name; /* NULL: label names */
		const char *const *m;
		size_t nm;
		int64_t mint, maxt, limit;
		const char *want; /* NULL: only compared between the stores */
	} qs[] = {
		{NULL, down, 1, INT64_MIN, INT64_MAX, 0, "__name__,job,region,zone"},
		{"inst", j2, 1, INT64_MIN, INT64_MAX, 0, NULL},
		{"region", up, 1, INT64_MIN, INT64_MAX, 0, "eu,us"},
		{"job", us, 1, INT64_MIN, INT64_MAX, 0, "j0,j1,j2,j3,j4"},
		{"inst", re, 1, INT64_MIN, INT64_MAX, 5, "i10k0,i10k1,i10k2,i11k0,i11k1"},
		{NULL, jz, 2, INT64_MIN, INT64_MAX, 0, "__name__,job,region,zone"},
		{"zone", down, 1, 10 * H2, 20 * H2 - 1, 0, "z0,z1,z2"},
		{"job", up, 1, 10 * H2, 12 * H2 - 1, 0, "j0,j1"},
		{"inst", none, 1, INT64_MIN, INT64_MAX, 0, ""},
		{"inst", usj, 2, INT64_MIN, INT64_MAX, 0, NULL},
		{"__name__", up, 1, INT64_MIN, INT64_MAX, 0, "up"},
		{NULL, NULL, 0, INT64_MIN, INT64_MAX, 0, "__name__,inst,job,region,zone"},
	};
	buf_t w = BUF_INIT, g = BUF_INIT;
	for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
		labels_answer(bucket_store_base(seq), qs[i].name, qs[i].m, qs[i].nm, qs[i].mint, qs[i].maxt, qs[i].limit,
			      &w);
		labels_answer(bucket_store_base(par), qs[i].name, qs[i].m, qs[i].nm, qs[i].mint, qs[i].maxt, qs[i].limit,
			      &g);
		if (strcmp(w.p, g.p) || (qs[i].want && strcmp(w.p, qs[i].want)))
			fprintf(stderr, "query %zu: sequential '%s', parallel '%s', want '%s'\n", i, w.p, g.p,
				qs[i].want ? qs[i].want : "(same)");
		CHECK_STR(w.p, g.p);
		if (qs[i].want)
			CHECK_STR(w.p, qs[i].want);
	}
	/* inst values of job j2 (blocks 2, 7, ..., 37): 80 in all, in order */
	labels_answer(bucket_store_base(par), "inst", j2, 1, INT64_MIN, INT64_MAX, 0, &g);
	buf_t exp = BUF_INIT;
	for (int i = 2; i < NB; i += 5)
		for (int k = 0; k < 10; k++)
			buf_printf(&exp, "%si%02dk%d", exp.n ? "," : "", i, k);
	CHECK_STR(g.p, exp.p);
	/* us blocks (i % 3 == 0) with job j4 (i % 5 == 4): 9, 24, 39 */
	labels_answer(bucket_store_base(par), "inst", usj, 2, INT64_MIN, INT64_MAX, 0, &g);
	CHECK(!strncmp(g.p, "i09k0,", 6) && strstr(g.p, ",i24k9,i39k0,") && strlen(g.p) == 30 * 6 - 1);

	/* the series limit counts the series a label call reads */
	bucket_store_config_t cl = {.min_time = INT64_MIN, .max_time = INT64_MAX, .read_concurrency = 4,
				    .series_touched_limit = 100};
	bucket_store_t *lim = new_store(b, &cl);
	labels_answer(bucket_store_base(lim), NULL, up, 1, INT64_MIN, INT64_MAX, 0, &g);
	CHECK(strstr(g.p, "error") && strstr(g.p, "series limit"));
	labels_answer(bucket_store_base(lim), "job", down, 1, 0, 10 * H2 - 1, 0, &g); /* 30 series */
	CHECK_STR(g.p, "j0,j1,j2,j3,j4");
	bucket_store_free(lim);

	/* Corrupt the postings of job=j2 in blocks 7 and 22. */
	corrupt_postings(b, own, ids[7], STR("job"), STR("j2"));
	corrupt_postings(b, own, ids[22], STR("job"), STR("j2"));
	labels_answer(bucket_store_base(seq), "inst", j2, 1, INT64_MIN, INT64_MAX, 0, &w);
	labels_answer(bucket_store_base(par), "inst", j2, 1, INT64_MIN, INT64_MAX, 0, &g);
	CHECK_STR(w.p, g.p);
	CHECK(strstr(g.p, "error") && strstr(g.p, ids[7]) && strstr(g.p, "CRC32C"));
	labels_answer(bucket_store_base(par), NULL, j2, 1, 8 * H2, INT64_MAX, 0, &g);
	CHECK(strstr(g.p, ids[22]));
	labels_answer(bucket_store_base(par), "inst", j2, 1, 23 * H2, INT64_MAX, 0, &g); /* 27, 32, 37 */
	CHECK(!strncmp(g.p, "i27k0,", 6) && strlen(g.p) == 30 * 6 - 1);

	buf_release(&w);
	buf_release(&g);
	buf_release(&exp);
	bucket_store_free(seq);
	bucket_store_free(par);
	bucket_free(b);
	own_dir_remove(own);
}

/* One line per series: labels, chunks and samples. */
static const char *replica_answer(store_t *st, arena_t *a, const char *const *mspec, size_t nm, bool wrl, bool skip)
{
	matcher_t ms[4];
	parse_matchers(ms, mspec, nm);
	str_t rl[] = {STR("replica"), STR("rule_replica")};
	store_series_req_t req = {.mint = 0, .maxt = 2 * H2, .ms = ms, .nms = nm, .skip_chunks = skip,
				  .replica_labels = rl, .nreplica_labels = 2, .without_replica_labels = wrl};
	err_t err = {0};
	series_set_t *set;
	buf_t b = BUF_INIT;
	if (store_series(st, a, &req, &set, &err))
		TEST_FAILF("series: %s", err.msg);
	int rc;
	while ((rc = series_set_next(set, &err)) == 1) {
		labels_format_full(&b, series_set_labels(set));
		const chunk_t *cs;
		int nc = set->ops->chunks(set, &cs), n, k = 0;
		int64_t t[256];
		double v[256];
		sample_iter_t *it = series_set_samples(set);
		while ((n = sample_iter_next_batch(it, t, v, 256, &err)) > 0)
			k += n;
		CHECK(n == 0);
		buf_printf(&b, " c=%d n=%d\n", nc, k);
	}
	CHECK_EQ_INT(rc, 0);
	series_set_close(set);
	for (size_t i = 0; i < nm; i++)
		matcher_release(&ms[i]);
	const char *r = arena_strdup(a, b.p ? b.p : "");
	buf_release(&b);
	return r;
}

/* The same store without the support announced: the proxy then buffers and re-sorts its answer. */
typedef struct hide {
	store_t base;
	store_t *in;
} hide_t;
static int hide_series(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	store_series_req_t r = *req;
	CHECK(!r.without_replica_labels); /* not announced: not asked */
	return store_series(((hide_t *)s)->in, a, &r, out, err);
}
static int hide_names(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return store_label_names(((hide_t *)s)->in, a, req, out, err);
}
static int hide_values(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return store_label_values(((hide_t *)s)->in, a, req, out, err);
}
static int hide_info(store_t *s, arena_t *a, store_info_t *out, err_t *err)
{
	int rc = store_info(((hide_t *)s)->in, a, out, err);
	out->supports_without_replica_labels = false;
	return rc;
}
static void hide_free(store_t *s)
{
	(void)s;
}
static const struct store_ops hide_ops = {hide_series, hide_names, hide_values, hide_info, hide_free};

/* A bucket with both HA replicas' blocks (replica A over two consecutive blocks, B over one with an
 * extra job): asked without_replica_labels, the store drops the replica label, sorts by the rest and
 * returns each series' replicas as consecutive series (A's two blocks still merged into one, never
 * merged with B's), A before B; without the flag the labels stay. Uses a directory of its own. */
TEST(series_without_replica_labels_keeps_replicas_apart)
{
	char own[256];
	snprintf(own, sizeof own, "/tmp/strata-bstore-wrl.XXXXXX");
	BUG_ON(!mkdtemp(own));
	snprintf(bdir, sizeof bdir, "%s/bucket", own);
	snprintf(ddir, sizeof ddir, "%s/data", own);
	mkdir(bdir, 0755);
	static const char *const ja[] = {"a"}, *const jab[] = {"a", "b"};
	char ids[3][ULID_LEN + 1];
	write_block(0, "region=eu,replica=B", jab, 2, ids[0]); /* written first: order is not what sorts */
	write_block(H2, "region=eu,replica=A", ja, 1, ids[1]);
	write_block(0, "region=eu,replica=A", ja, 1, ids[2]);
	bucket_t *b = open_bucket();
	bucket_store_t *bs = new_store(b, NULL);
	store_t *st = bucket_store_base(bs);
	arena_t a;
	arena_init(&a, 0);
	const char *m[] = {"job=~a|b", "inst=~0[01]"};
	/* A: two blocks of 480 samples in 4 chunks each, B one block */
	CHECK_STR(replica_answer(st, &a, m, 2, true, false),
		  "{__name__=\"up\", inst=\"00\", job=\"a\", region=\"eu\"} c=8 n=960\n"
		  "{__name__=\"up\", inst=\"00\", job=\"a\", region=\"eu\"} c=4 n=480\n"
		  "{__name__=\"up\", inst=\"00\", job=\"b\", region=\"eu\"} c=4 n=480\n"
		  "{__name__=\"up\", inst=\"01\", job=\"a\", region=\"eu\"} c=8 n=960\n"
		  "{__name__=\"up\", inst=\"01\", job=\"a\", region=\"eu\"} c=4 n=480\n"
		  "{__name__=\"up\", inst=\"01\", job=\"b\", region=\"eu\"} c=4 n=480\n");
	CHECK_STR(replica_answer(st, &a, m, 2, false, false),
		  "{__name__=\"up\", inst=\"00\", job=\"a\", region=\"eu\", replica=\"A\"} c=8 n=960\n"
		  "{__name__=\"up\", inst=\"00\", job=\"a\", region=\"eu\", replica=\"B\"} c=4 n=480\n"
		  "{__name__=\"up\", inst=\"00\", job=\"b\", region=\"eu\", replica=\"B\"} c=4 n=480\n"
		  "{__name__=\"up\", inst=\"01\", job=\"a\", region=\"eu\", replica=\"A\"} c=8 n=960\n"
		  "{__name__=\"up\", inst=\"01\", job=\"a\", region=\"eu\", replica=\"B\"} c=4 n=480\n"
		  "{__name__=\"up\", inst=\"01\", job=\"b\", region=\"eu\", replica=\"B\"} c=4 n=480\n");
	/* a matcher on the replica label still selects blocks; labels only */
	const char *mb[] = {"job=a", "inst=00", "replica=B"};
	CHECK_STR(replica_answer(st, &a, mb, 3, true, true),
		  "{__name__=\"up\", inst=\"00\", job=\"a\", region=\"eu\"} c=0 n=0\n");
	/* through the proxy with dedup: streamed (asked with the flag) = buffered (store hidden) */
	hide_t h = {{&hide_ops, "hidden"}, st};
	proxy_store_t *pw = proxy_store_new("streamed"), *pb = proxy_store_new("buffered");
	proxy_store_add(pw, st);
	proxy_store_add(pb, &h.base);
	const char *all[] = {"__name__=up"};
	const char *want = replica_answer(proxy_store_base(pb), &a, all, 1, false, false);
	CHECK_STR(replica_answer(proxy_store_base(pw), &a, all, 1, false, false), want);
	const char *head = "{__name__=\"up\", inst=\"00\", job=\"a\", region=\"eu\"} c=-1 n=960\n"
			   "{__name__=\"up\", inst=\"00\", job=\"b\", region=\"eu\"} c=4 n=480\n";
	if (strncmp(want, head, strlen(head)) != 0)
		TEST_FAILF("deduplicated: %.300s", want);
	proxy_store_free(pw);
	proxy_store_free(pb);
	arena_release(&a);
	bucket_store_free(bs);
	bucket_free(b);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", own);
	CHECK(system(cmd) == 0);
}

TEST_MAIN()
