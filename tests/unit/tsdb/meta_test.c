#include <string.h>

#include "base/crc32c.h"
#include "base/varint.h"
#include "test.h"
#include "tsdb/meta.h"
#include "tsdb_testutil.h"

TEST(ulid_new_valid_and_time)
{
	char a[ULID_LEN + 1], b[ULID_LEN + 1];
	ulid_new(a, 1700000000123);
	ulid_new(b, 1700000000124);
	CHECK(ulid_valid(a));
	CHECK_EQ_INT(ulid_time(a), 1700000000123);
	CHECK(strcmp(a, b) < 0); /* sorts by time */
	CHECK(!ulid_valid("01ARZ3NDEKTSV4RRFFQ69G5FA"));   /* 25 chars */
	CHECK(!ulid_valid("81ARZ3NDEKTSV4RRFFQ69G5FAV"));  /* overflows 128 bits */
	CHECK(!ulid_valid("01ARZ3NDEKTSV4RRFFQ69G5FAU"));  /* U is not Crockford */
	CHECK(ulid_valid("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
	CHECK(!ulid_valid(NULL));
}

TEST(meta_format_parse_roundtrip)
{
	block_meta_t m = {0};
	snprintf(m.ulid, sizeof m.ulid, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
	m.mint = 1000, m.maxt = 7201000;
	m.num_samples = 360, m.num_series = 3, m.num_chunks = 6;
	m.level = 2;
	meta_add_source(&m, "01ARZ3NDEKTSV4RRFFQ69G5FA1");
	meta_add_source(&m, "01ARZ3NDEKTSV4RRFFQ69G5FA2");
	m.has_thanos = true;
	meta_set_label(&m, "replica", "r1");
	meta_set_label(&m, "cluster", "eu\"1");
	m.resolution = 300000;
	m.source = xstrdup("compactor");
	buf_t b = BUF_INIT;
	meta_format(&b, &m);
	CHECK(b.n > 0 && b.p[b.n - 1] == '}'); /* MarshalIndent: no trailing newline */
	CHECK(strstr(b.p, "{\n\t\"ulid\": \"01ARZ3NDEKTSV4RRFFQ69G5FAV\",\n\t\"minTime\": 1000,\n") == b.p);
	CHECK(strstr(b.p, "\"numTombstones\"") == NULL); /* zero stats omitted */
	CHECK(strstr(b.p, "\"version\": 1") != NULL);
	block_meta_t p;
	err_t err = {0};
	CHECK_EQ_INT(meta_parse(&p, b.p, b.n, "test", &err), 0);
	CHECK_STR(p.ulid, m.ulid);
	CHECK_EQ_INT(p.mint, 1000);
	CHECK_EQ_INT(p.maxt, 7201000);
	CHECK_EQ_U64(p.num_samples, 360);
	CHECK_EQ_U64(p.num_chunks, 6);
	CHECK_EQ_INT(p.level, 2);
	CHECK_EQ_INT(p.nsources, 2);
	CHECK_STR(p.sources[1], "01ARZ3NDEKTSV4RRFFQ69G5FA2");
	CHECK(p.has_thanos);
	CHECK_EQ_INT(p.nlabels, 2);
	CHECK_STR(p.labels[0], "cluster"); /* sorted by name */
	CHECK_STR(p.labels[1], "eu\"1");
	CHECK_EQ_INT(p.resolution, 300000);
	CHECK_STR(p.source, "compactor");
	/* write + read through a directory */
	char dir[4096];
	tu_tmpdir(dir);
	CHECK_EQ_INT(meta_write(&m, dir, &err), 0);
	block_meta_t q;
	CHECK_EQ_INT(meta_read(&q, dir, &err), 0);
	CHECK_STR(q.ulid, m.ulid);
	meta_release(&q);
	tu_rm_rf(dir);
	meta_release(&p);
	meta_release(&m);
	buf_release(&b);
}

static void expect_bad(const char *json, const char *want)
{
	block_meta_t m;
	err_t err = {0};
	int rc = meta_parse(&m, json, strlen(json), "x/meta.json", &err);
	if (rc != ERR_CORRUPT)
		TEST_FAILF("%s: want ERR_CORRUPT, got %d", json, rc);
	if (!strstr(err.msg, "x/meta.json") || !strstr(err.msg, want))
		TEST_FAILF("want \"%s\" in: %s", want, err.msg);
}

TEST(meta_parse_errors)
{
	expect_bad("", "line 1");
	expect_bad("{\"ulid\": ", "line 1 column");
	expect_bad("[1]", "not a JSON object");
	expect_bad("{\"minTime\": 1}", "\"ulid\"");
	expect_bad("{\"ulid\": \"nope\"}", "\"ulid\"");
	expect_bad("{\"ulid\": \"01ARZ3NDEKTSV4RRFFQ69G5FAV\", \"minTime\": 1, \"version\": 1}", "missing \"maxTime\"");
	expect_bad("{\"ulid\": \"01ARZ3NDEKTSV4RRFFQ69G5FAV\", \"minTime\": \"1\", \"maxTime\": 2, \"version\": 1}",
		   "\"minTime\" is not an integer");
	expect_bad("{\"ulid\": \"01ARZ3NDEKTSV4RRFFQ69G5FAV\", \"minTime\": 1, \"maxTime\": 2, \"version\": 2}",
		   "unsupported meta version 2");
	/* found by meta_fuzz: a negative count was kept as a huge uint64 and written back unreadable */
	expect_bad("{\"ulid\": \"01ARZ3NDEKTSV4RRFFQ69G5FAV\", \"minTime\": 1, \"maxTime\": 2, \"version\": 1,"
		   " \"stats\": {\"numSeries\": -2}}",
		   "stats.numSeries is negative (-2)");
	/* unknown fields and wrong-typed optional sections are tolerated */
	const char *ok = "{\"ulid\": \"01ARZ3NDEKTSV4RRFFQ69G5FAV\", \"minTime\": 1, \"maxTime\": 2, \"version\": 1,"
			 " \"x\": [], \"stats\": 3, \"compaction\": {\"level\": 1, \"sources\": [1, \"bad\"]},"
			 " \"thanos\": {\"labels\": {\"a\": 1, \"b\": \"c\"}, \"files\": [{}]}}";
	block_meta_t m;
	err_t err = {0};
	CHECK_EQ_INT(meta_parse(&m, ok, strlen(ok), "ok", &err), 0);
	CHECK_EQ_INT(m.nsources, 0);
	CHECK_EQ_INT(m.nlabels, 1);
	meta_release(&m);
	CHECK_EQ_INT(meta_read(&m, "/nonexistent/strata", &err), ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "/nonexistent/strata/meta.json") != NULL);
}

/* tombstones file: magic, version, entries, CRC over the entries */
static size_t tomb(uint8_t *out, const uint64_t *refs, const int64_t *iv, size_t n)
{
	size_t o = 0;
	be32_put(out, 0x0130BA30u);
	out[4] = 1;
	o = 5;
	for (size_t i = 0; i < n; i++) {
		o += uvarint_put(out + o, refs[i]);
		o += varint_put(out + o, iv[2 * i]);
		o += varint_put(out + o, iv[2 * i + 1]);
	}
	be32_put(out + o, crc32c(0, out + 5, o - 5));
	return o + 4;
}

static void expect_tomb_error(const char *dir, const uint8_t *b, size_t n, const char *want)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/tombstones", dir);
	tu_write_file(path, b, n);
	uint64_t cnt;
	err_t err = {0};
	int rc = tombstones_read(dir, &cnt, &err);
	if (rc != ERR_CORRUPT)
		TEST_FAILF("want ERR_CORRUPT (%s), got %d: %s", want, rc, err.msg);
	CHECK_ERR_WHERE(err, path);
	if (!strstr(err.msg, want))
		TEST_FAILF("want \"%s\" in: %s", want, err.msg);
}

TEST(tombstones_read_and_errors)
{
	char dir[4096];
	tu_tmpdir(dir);
	uint64_t n = 99;
	err_t err = {0};
	CHECK_EQ_INT(tombstones_read(dir, &n, &err), 0); /* absent */
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(tombstones_write_empty(dir, &err), 0);
	char path[4096];
	snprintf(path, sizeof path, "%s/tombstones", dir);
	size_t len;
	uint8_t *p = tu_read_file(path, &len);
	CHECK_EQ_INT(len, 9);
	free(p);
	CHECK_EQ_INT(tombstones_read(dir, &n, &err), 0);
	CHECK_EQ_INT(n, 0);
	uint8_t b[256];
	uint64_t refs[] = {3, 3, 70};
	int64_t iv[] = {-100, 5, 1000, 2000, 0, 1};
	size_t bl = tomb(b, refs, iv, 3);
	tu_write_file(path, b, bl);
	CHECK_EQ_INT(tombstones_read(dir, &n, &err), 0);
	CHECK_EQ_INT(n, 3);
	expect_tomb_error(dir, b, 8, "too short");
	uint8_t c[256];
	memcpy(c, b, bl);
	c[0] = 0;
	expect_tomb_error(dir, c, bl, "bad magic");
	memcpy(c, b, bl);
	c[4] = 2;
	expect_tomb_error(dir, c, bl, "unsupported version");
	memcpy(c, b, bl);
	c[6] ^= 1;
	expect_tomb_error(dir, c, bl, "bad CRC32C");
	/* an entry cut in the middle (CRC valid over the cut entries) */
	memcpy(c, b, bl - 4 - 1);
	be32_put(c + bl - 5, crc32c(0, c + 5, bl - 10));
	expect_tomb_error(dir, c, bl - 1, "malformed entry");
	tu_rm_rf(dir);
}

TEST(meta_thanos_extensions_roundtrip_and_copy)
{
	const char *in = "{\"ulid\":\"01ARZ3NDEKTSV4RRFFQ69G5FAV\",\"minTime\":0,\"maxTime\":10,\"version\":1,"
			 "\"compaction\":{\"level\":3,\"sources\":[\"01ARZ3NDEKTSV4RRFFQ69G5FA1\"],\"deletable\":true,\"failed\":true},"
			 "\"thanos\":{\"labels\":{\"a\":\"b\"},\"downsample\":{\"resolution\":0},\"source\":\"compactor\","
			 "\"rewrites\":[{\"sources\":[\"01ARZ3NDEKTSV4RRFFQ69G5FA1\"],\"deletions_applied\":[{\"matchers\":\"{a=\\\"b\\\"}\","
			 "\"intervals\":[{\"mint\":1,\"maxt\":2}]}]}],"
			 "\"index_stats\":{\"series_max_size\":123,\"chunk_max_size\":45},\"extensions\":{\"k\":[1,true]},"
			 "\"upload_time\":\"2024-01-02T03:04:05.678Z\"}}";
	block_meta_t m, c, p;
	err_t err = {0};
	CHECK_EQ_INT(meta_parse(&m, in, strlen(in), "t", &err), 0);
	CHECK(m.deletable && m.failed);
	CHECK_EQ_INT(m.series_max_size, 123);
	CHECK_EQ_INT(m.chunk_max_size, 45);
	CHECK_EQ_INT(m.upload_time_ms, 1704164645678);
	CHECK(m.rewrites && strstr(m.rewrites, "deletions_applied"));
	meta_copy(&c, &m);
	meta_release(&m);
	buf_t b = BUF_INIT;
	meta_format(&b, &c);
	CHECK(strstr(b.p, "\t\t\"deletable\": true,\n") != NULL);
	CHECK(strstr(b.p, "\"index_stats\": {\n\t\t\t\"series_max_size\": 123,\n\t\t\t\"chunk_max_size\": 45\n\t\t}") != NULL);
	CHECK(strstr(b.p, "\"rewrites\": [\n\t\t\t{\n\t\t\t\t\"sources\": [") != NULL);
	CHECK(strstr(b.p, "\"upload_time\": \"2024-01-02T03:04:05.678Z\"") != NULL);
	CHECK_EQ_INT(meta_parse(&p, b.p, b.n, "t2", &err), 0);
	CHECK(p.deletable && p.failed && p.series_max_size == 123 && p.upload_time_ms == 1704164645678);
	CHECK(p.extensions && strstr(p.extensions, "true"));
	CHECK(meta_sources_subset(&p, &c));
	meta_release(&p);
	meta_release(&c);
	buf_release(&b);
}

TEST_MAIN()
