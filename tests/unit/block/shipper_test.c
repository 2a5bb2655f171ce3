/*
 * shipper_test.c — the shipper against a FILESYSTEM bucket, with synthetic block directories.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "objstore/fs.h"
#include "block/shipper.h"
#include "test.h"
#include "tsdb/meta.h"

static void write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");
	if (!f)
		TEST_FAILF("create %s: %s", path, strerror(errno));
	fputs(data, f);
	fclose(f);
}

/* A block directory with meta.json (level), chunks/000001, index and tombstones. */
static void make_block(const char *dir, const char *ulid, int level, int64_t mint)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/%s", dir, ulid);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/%s/chunks", dir, ulid);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/%s/chunks/000001", dir, ulid);
	write_file(p, "chunkdata-0123456789");
	snprintf(p, sizeof p, "%s/%s/index", dir, ulid);
	write_file(p, "indexdata");
	snprintf(p, sizeof p, "%s/%s/tombstones", dir, ulid);
	write_file(p, "tomb");
	block_meta_t m;
	memset(&m, 0, sizeof m);
	snprintf(m.ulid, sizeof m.ulid, "%s", ulid);
	m.mint = mint;
	m.maxt = mint + 7200000;
	m.num_samples = 10;
	m.num_series = 1;
	m.num_chunks = 1;
	m.level = level;
	meta_add_source(&m, ulid);
	snprintf(p, sizeof p, "%s/%s", dir, ulid);
	err_t err = {0};
	if (meta_write(&m, p, &err))
		TEST_FAILF("meta_write: %s", err.msg);
	meta_release(&m);
}

typedef struct env {
	char root[256], tsdb[300], bkt[300];
	bucket_t *b;
	shipper_t *sh;
	labels_t ext;
	label_t extv[2];
} env_t;

static void env_init(env_t *e, bool compacted)
{
	memset(e, 0, sizeof *e);
	snprintf(e->root, sizeof e->root, "/tmp/shipper_test.XXXXXX");
	if (!mkdtemp(e->root))
		TEST_FAILF("mkdtemp: %s", strerror(errno));
	snprintf(e->tsdb, sizeof e->tsdb, "%s/tsdb", e->root);
	snprintf(e->bkt, sizeof e->bkt, "%s/bucket", e->root);
	mkdir(e->tsdb, 0755);
	err_t err = {0};
	if (fs_bucket_new(e->bkt, &e->b, &err))
		TEST_FAILF("bucket: %s", err.msg);
	shipper_config_t cfg = {.dir = e->tsdb, .bucket = e->b, .upload_compacted = compacted, .source = "sidecar"};
	e->sh = shipper_new(&cfg);
	e->extv[0] = (label_t){STR("cluster"), STR("c1")};
	e->extv[1] = (label_t){STR("replica"), STR("0")};
	e->ext = (labels_t){e->extv, 2};
}

static void env_free(env_t *e)
{
	shipper_free(e->sh);
	bucket_free(e->b);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", e->root);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", e->root);
}

static bool exists(const char *dir, const char *rel)
{
	char p[1024];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	return stat(p, &st) == 0;
}

#define U1 "01HZZZZZZZZZZZZZZZZZZZZZZ1"
#define U2 "01HZZZZZZZZZZZZZZZZZZZZZZ2"
#define U3 "01HZZZZZZZZZZZZZZZZZZZZZZ3"

TEST(uploads_level1_blocks_once_meta_last)
{
	env_t e;
	env_init(&e, false);
	make_block(e.tsdb, U1, 1, 1000);
	make_block(e.tsdb, U2, 2, 500); /* compacted: skipped */
	char tmpdir[400];
	snprintf(tmpdir, sizeof tmpdir, "%s/" U3 ".tmp-for-creation", e.tsdb);
	mkdir(tmpdir, 0755);
	shipper_stats_t st1, st2;
	err_t err = {0};
	int rc1 = shipper_sync(e.sh, &e.ext, &st1, &err);
	bool meta = exists(e.bkt, U1 "/meta.json"), idx = exists(e.bkt, U1 "/index"),
	     chk = exists(e.bkt, U1 "/chunks/000001"), tomb = exists(e.bkt, U1 "/tombstones"),
	     u2 = exists(e.bkt, U2 "/meta.json");
	/* The bucket's meta.json has the thanos section. */
	block_meta_t m;
	memset(&m, 0, sizeof m);
	char bdir[400];
	snprintf(bdir, sizeof bdir, "%s/" U1, e.bkt);
	int mrc = meta_read(&m, bdir, &err);
	/* A second sync uploads nothing. */
	int rc2 = shipper_sync(e.sh, &e.ext, &st2, &err);
	char **ul = NULL;
	size_t nul = 0;
	int rrc = shipper_meta_read(e.tsdb, &ul, &nul, &err);
	char first[32] = "";
	if (nul)
		snprintf(first, sizeof first, "%s", ul[0]);
	shipper_ulids_free(ul, nul);
	/* The local block is untouched (no thanos section written there). */
	block_meta_t lm;
	memset(&lm, 0, sizeof lm);
	snprintf(bdir, sizeof bdir, "%s/" U1, e.tsdb);
	meta_read(&lm, bdir, &err);
	bool local_has_thanos = lm.has_thanos && lm.nlabels > 0;
	meta_release(&lm);
	int64_t mint_local = shipper_min_time(NULL, e.tsdb);
	env_free(&e);
	CHECK_EQ_INT(rc1, 0);
	CHECK_EQ_INT(st1.uploaded, 1);
	CHECK_EQ_INT(st1.skipped, 1);
	CHECK(meta && idx && chk);
	CHECK(!tomb);
	CHECK(!u2);
	CHECK_EQ_INT(mrc, 0);
	CHECK(m.has_thanos);
	CHECK_EQ_INT(m.nlabels, 2);
	CHECK_STR(m.labels[0], "cluster");
	CHECK_STR(m.labels[1], "c1");
	CHECK_STR(m.labels[2], "replica");
	CHECK_STR(m.source, "sidecar");
	CHECK_EQ_INT(m.resolution, 0);
	CHECK_EQ_INT(m.nfiles, 3);
	CHECK_STR(m.files[0].rel_path, "chunks/000001");
	CHECK_EQ_INT(m.files[0].size_bytes, 20);
	CHECK_STR(m.files[1].rel_path, "index");
	CHECK_EQ_INT(m.files[1].size_bytes, 9);
	CHECK_STR(m.files[2].rel_path, "meta.json");
	meta_release(&m);
	CHECK_EQ_INT(rc2, 0);
	CHECK_EQ_INT(st2.uploaded, 0);
	CHECK_EQ_INT(rrc, 0);
	CHECK_STR(first, U1);
	CHECK(!local_has_thanos);
	CHECK_EQ_INT(mint_local, 500);
}

TEST(upload_compacted_and_bucket_already_has_block)
{
	env_t e;
	env_init(&e, true);
	make_block(e.tsdb, U1, 1, 1000);
	make_block(e.tsdb, U2, 3, 500);
	/* U1 is already in the bucket (e.g. thanos.shipper.json lost): not uploaded again. */
	char p[512];
	snprintf(p, sizeof p, "%s/" U1, e.bkt);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/" U1 "/meta.json", e.bkt);
	write_file(p, "{\"marker\": true}");
	shipper_stats_t st;
	err_t err = {0};
	int rc = shipper_sync(e.sh, &e.ext, &st, &err);
	buf_t b = BUF_INIT;
	bucket_get(e.b, U1 "/meta.json", &b, &err);
	bool untouched = strstr(b.p, "marker") != NULL;
	buf_release(&b);
	bool u2 = exists(e.bkt, U2 "/meta.json");
	char **ul = NULL;
	size_t nul = 0;
	shipper_meta_read(e.tsdb, &ul, &nul, &err);
	shipper_ulids_free(ul, nul);
	/* The file format is Thanos's. */
	snprintf(p, sizeof p, "%s/" SHIPPER_META_FILE, e.tsdb);
	FILE *f = fopen(p, "r");
	char txt[512] = {0};
	if (f) {
		size_t n = fread(txt, 1, sizeof txt - 1, f);
		txt[n] = 0;
		fclose(f);
	}
	int64_t mint = shipper_min_time(e.sh, e.tsdb);
	env_free(&e);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(st.uploaded, 1);
	CHECK(untouched);
	CHECK(u2);
	CHECK_EQ_INT(nul, 2);
	CHECK_STR(txt, "{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\"" U1 "\",\n\t\t\"" U2 "\"\n\t]\n}\n");
	CHECK_EQ_INT(mint, 500);
}

TEST(failed_upload_retried_next_sync_and_partial_block_reuploaded)
{
	env_t e;
	env_init(&e, false);
	make_block(e.tsdb, U1, 1, 1000);
	/* A partial upload from a crash: index but no meta.json in the bucket. */
	char p[512];
	snprintf(p, sizeof p, "%s/" U1, e.bkt);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/" U1 "/index", e.bkt);
	write_file(p, "partial");
	/* Make the index unreadable so the upload fails (the shipper must not record it). */
	char idx[512];
	snprintf(idx, sizeof idx, "%s/" U1 "/index", e.tsdb);
	char moved[600];
	snprintf(moved, sizeof moved, "%s.away", e.root);
	rename(idx, moved);
	shipper_stats_t st1, st2;
	err_t err1 = {0}, err2 = {0};
	int rc1 = shipper_sync(e.sh, &e.ext, &st1, &err1);
	bool meta1 = exists(e.bkt, U1 "/meta.json");
	char **ul = NULL;
	size_t nul1 = 0, nul2 = 0;
	shipper_meta_read(e.tsdb, &ul, &nul1, &err2);
	shipper_ulids_free(ul, nul1);
	rename(moved, idx);
	int rc2 = shipper_sync(e.sh, &e.ext, &st2, &err2);
	bool meta2 = exists(e.bkt, U1 "/meta.json");
	buf_t b = BUF_INIT;
	bucket_get(e.b, U1 "/index", &b, &err2);
	bool full = !strcmp(b.p, "indexdata");
	buf_release(&b);
	shipper_meta_read(e.tsdb, &ul, &nul2, &err2);
	shipper_ulids_free(ul, nul2);
	env_free(&e);
	CHECK(rc1 != 0);
	CHECK(strstr(err1.msg, U1) != NULL);
	CHECK_EQ_INT(st1.failed, 1);
	CHECK(!meta1);
	CHECK_EQ_INT(nul1, 0);
	CHECK_EQ_INT(rc2, 0);
	CHECK_EQ_INT(st2.uploaded, 1);
	CHECK(meta2);
	CHECK(full);
	CHECK_EQ_INT(nul2, 1);
}

TEST(refuses_empty_external_labels_and_bad_meta_file)
{
	env_t e;
	env_init(&e, false);
	make_block(e.tsdb, U1, 1, 1000);
	shipper_stats_t st;
	err_t err = {0};
	labels_t none = {0};
	int rc = shipper_sync(e.sh, &none, &st, &err);
	bool up = exists(e.bkt, U1 "/meta.json");
	char p[512];
	snprintf(p, sizeof p, "%s/" SHIPPER_META_FILE, e.tsdb);
	write_file(p, "{\"version\": 1, \"uploaded\": [\"nope\"]}");
	char **ul = NULL;
	size_t nul = 0;
	err_t err2 = {0};
	int rrc = shipper_meta_read(e.tsdb, &ul, &nul, &err2);
	/* A corrupt shipper file does not stop shipping. */
	int rc3 = shipper_sync(e.sh, &e.ext, &st, &err);
	bool up3 = exists(e.bkt, U1 "/meta.json");
	env_free(&e);
	CHECK_EQ_INT(rc, ERR_INVALID);
	CHECK(strstr(err.msg, "external labels") != NULL);
	CHECK(!up);
	CHECK_EQ_INT(rrc, ERR_CORRUPT);
	CHECK(strstr(err2.msg, SHIPPER_META_FILE) != NULL);
	CHECK_EQ_INT(rc3, 0);
	CHECK(up3);
}

/* Finished blocks (shared with tools bucket upload-blocks): ULID dirs with a regular meta.json, sorted;
 * a missing dir is empty, an unreadable path an error naming it. */
TEST(finished_blocks_listed_sorted)
{
	env_t e;
	env_init(&e, false);
	make_block(e.tsdb, "01ARZ3NDEKTSV4RRFFQ69G5FB0", 1, 7200000);
	make_block(e.tsdb, "01ARZ3NDEKTSV4RRFFQ69G5FA0", 1, 0);
	char p[1024];
	snprintf(p, sizeof p, "%s/01ARZ3NDEKTSV4RRFFQ69G5FC0", e.tsdb); /* no meta.json: in progress */
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/01ARZ3NDEKTSV4RRFFQ69G5FD0", e.tsdb); /* meta.json not a file */
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/01ARZ3NDEKTSV4RRFFQ69G5FD0/meta.json", e.tsdb);
	mkdir(p, 0755);
	make_block(e.tsdb, "not-a-ulid", 1, 0);
	snprintf(p, sizeof p, "%s/wal", e.tsdb);
	mkdir(p, 0755);
	char **v;
	size_t n;
	err_t err = {0};
	CHECK_EQ_INT(shipper_finished_blocks(e.tsdb, &v, &n, &err), 0);
	CHECK_EQ_INT(n, 2);
	CHECK_STR(v[0], "01ARZ3NDEKTSV4RRFFQ69G5FA0");
	CHECK_STR(v[1], "01ARZ3NDEKTSV4RRFFQ69G5FB0");
	shipper_ulids_free(v, n);
	snprintf(p, sizeof p, "%s/missing", e.root);
	CHECK_EQ_INT(shipper_finished_blocks(p, &v, &n, &err), 0);
	CHECK_EQ_INT(n, 0);
	shipper_ulids_free(v, n);
	snprintf(p, sizeof p, "%s/tsdb/01ARZ3NDEKTSV4RRFFQ69G5FA0/index", e.root); /* a file, not a dir */
	CHECK(shipper_finished_blocks(p, &v, &n, &err) < 0);
	CHECK(strstr(err.msg, p) != NULL);
	CHECK(v == NULL && n == 0);
	env_free(&e);
}

TEST_MAIN()
