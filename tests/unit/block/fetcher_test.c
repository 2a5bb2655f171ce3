/*
 * fetcher_test.c — the meta fetcher, its filters and the marker files, over a FILESYSTEM bucket with
 * hand-written meta.json files (block/fetcher.h, block/marker.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "block/fetcher.h"
#include "block/marker.h"
#include "objstore/fs.h"
#include "test.h"

typedef struct env {
	char root[256], bkt[300], cache[300];
	bucket_t *b;
} env_t;

static void env_init(env_t *e)
{
	memset(e, 0, sizeof *e);
	snprintf(e->root, sizeof e->root, "/tmp/fetcher_test.XXXXXX");
	if (!mkdtemp(e->root))
		TEST_FAILF("mkdtemp: %s", strerror(errno));
	snprintf(e->bkt, sizeof e->bkt, "%s/bucket", e->root);
	snprintf(e->cache, sizeof e->cache, "%s/cache", e->root);
	mkdir(e->bkt, 0755);
	err_t err = {0};
	if (fs_bucket_new(e->bkt, &e->b, &err))
		TEST_FAILF("bucket: %s", err.msg);
}

static void env_free(env_t *e)
{
	bucket_free(e->b);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", e->root);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", e->root);
}

/* A block in the bucket: meta.json (+ an index object) with these labels, sources and times. */
static void put_block(env_t *e, const char *ulid, const char *labels_json, const char *const *sources,
                      size_t nsrc, int64_t mint, int64_t maxt, int64_t res, const char *source)
{
	buf_t j = BUF_INIT;
	buf_printf(&j,
	           "{\"ulid\":\"%s\",\"minTime\":%lld,\"maxTime\":%lld,\"version\":1,\"compaction\":{"
	           "\"level\":%d,\"sources\":[",
	           ulid, (long long)mint, (long long)maxt, nsrc > 1 ? 2 : 1);
	for (size_t i = 0; i < nsrc; i++)
		buf_printf(&j, "%s\"%s\"", i ? "," : "", sources[i]);
	buf_printf(&j,
	           "]},\"thanos\":{\"labels\":%s,\"downsample\":{\"resolution\":%lld},\"source\":\"%s\"}}",
	           labels_json, (long long)res, source);
	char name[128];
	err_t err = {0};
	snprintf(name, sizeof name, "%s/index", ulid);
	if (bucket_put(e->b, name, "idx", 3, &err))
		TEST_FAILF("put: %s", err.msg);
	snprintf(name, sizeof name, "%s/meta.json", ulid);
	if (bucket_put(e->b, name, j.p, j.n, &err))
		TEST_FAILF("put: %s", err.msg);
	buf_release(&j);
}

/* ULIDs with a chosen time (ms) so the consistency delay can be tested. */
static void ulid_at(char *out, int64_t ms, char last)
{
	ulid_new(out, ms);
	out[ULID_LEN - 1] = last;
}

static bool has(fetch_list_t *l, const char *ulid)
{
	return fetch_list_find(l, ulid) != NULL;
}

static fetch_state_t dropped_state(fetch_list_t *l, const char *ulid)
{
	for (size_t i = 0; i < l->ndropped; i++)
		if (!strcmp(l->dropped[i].ulid, ulid))
			return l->dropped[i].state;
	return FETCH_N;
}

TEST(marker_format_parse_write_remove)
{
	env_t e;
	env_init(&e);
	const char *u = "01HZZZZZZZZZZZZZZZZZZZZZZ1";
	err_t err = {0};
	bool created = false;
	CHECK_EQ_INT(
	    marker_write(e.b, u, MARKER_NO_COMPACT, MARKER_REASON_CORRUPT, "chunk CRC", &created, &err), 0);
	CHECK(created);
	/* A second write leaves the first one. */
	CHECK_EQ_INT(marker_write(e.b, u, MARKER_NO_COMPACT, MARKER_REASON_MANUAL, "again", &created, &err),
	             0);
	CHECK(!created);
	marker_t m;
	CHECK_EQ_INT(marker_read(e.b, u, MARKER_NO_COMPACT, &m, &err), 0);
	CHECK_STR(m.id, u);
	CHECK_STR(m.reason, MARKER_REASON_CORRUPT);
	CHECK_STR(m.details, "chunk CRC");
	CHECK(m.time_s > 1700000000 && m.time_s <= clock_now_ms() / 1000);
	marker_release(&m);
	buf_t raw = BUF_INIT;
	CHECK_EQ_INT(bucket_get(e.b, "01HZZZZZZZZZZZZZZZZZZZZZZ1/no-compact-mark.json", &raw, &err), 0);
	CHECK(strstr(raw.p,
	             "{\n\t\"id\": \"01HZZZZZZZZZZZZZZZZZZZZZZ1\",\n\t\"version\": 1,\n\t\"reason\": ") ==
	      raw.p);
	CHECK(strstr(raw.p, "\"no_compact_time\": ") != NULL);
	buf_release(&raw);
	CHECK_EQ_INT(marker_write(e.b, u, MARKER_DELETION, NULL, NULL, &created, &err), 0);
	CHECK_EQ_INT(marker_read(e.b, u, MARKER_DELETION, &m, &err), 0);
	CHECK(m.reason == NULL);
	marker_release(&m);
	CHECK_EQ_INT(marker_remove(e.b, u, MARKER_NO_COMPACT, &err), 0);
	CHECK_EQ_INT(marker_remove(e.b, u, MARKER_NO_COMPACT, &err), 0); /* absent: fine */
	CHECK_EQ_INT(marker_read(e.b, u, MARKER_NO_COMPACT, &m, &err), ERR_NOT_FOUND);
	/* Malformed markers are ERR_CORRUPT naming the object. */
	const char *bad[] = {"{", "{\"id\":\"x\",\"version\":1,\"deletion_time\":1}",
	                     "{\"id\":\"01HZZZZZZZZZZZZZZZZZZZZZZ1\",\"version\":2,\"deletion_time\":1}",
	                     "{\"id\":\"01HZZZZZZZZZZZZZZZZZZZZZZ1\",\"version\":1}",
	                     "{\"id\":\"01HZZZZZZZZZZZZZZZZZZZZZZ2\",\"version\":1,\"deletion_time\":1}"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		CHECK_EQ_INT(bucket_put(e.b, "01HZZZZZZZZZZZZZZZZZZZZZZ1/deletion-mark.json", bad[i],
		                        strlen(bad[i]), &err),
		             0);
		CHECK_EQ_INT(marker_read(e.b, u, MARKER_DELETION, &m, &err), ERR_CORRUPT);
		CHECK(strstr(err.msg, "deletion-mark.json") != NULL);
	}
	CHECK_EQ_INT(marker_kind_of("no-downsample-mark.json"), MARKER_NO_DOWNSAMPLE);
	CHECK_EQ_INT(marker_kind_of("meta.json"), -1);
	env_free(&e);
}

TEST(delete_block_meta_first_mark_last)
{
	env_t e;
	env_init(&e);
	const char *u = "01HZZZZZZZZZZZZZZZZZZZZZZ1", *src[] = {u};
	put_block(&e, u, "{\"a\":\"1\"}", src, 1, 0, 10, 0, "sidecar");
	err_t err = {0};
	CHECK_EQ_INT(bucket_put(e.b, "01HZZZZZZZZZZZZZZZZZZZZZZ1/chunks/000001", "c", 1, &err), 0);
	CHECK_EQ_INT(marker_write(e.b, u, MARKER_DELETION, NULL, NULL, NULL, &err), 0);
	CHECK_EQ_INT(marker_delete_block(e.b, u, &err), 0);
	char path[512];
	snprintf(path, sizeof path, "%s/%s", e.bkt, u);
	CHECK(access(path, F_OK) != 0);                     /* nothing left, the directory neither */
	CHECK_EQ_INT(marker_delete_block(e.b, u, &err), 0); /* already gone */
	env_free(&e);
}

TEST(fetch_states_filters_and_cache)
{
	env_t e;
	env_init(&e);
	int64_t now = clock_now_ms(), old = now - 3600 * 1000;
	char a[27], b[27], c[27], d[27], fresh[27], partial[27], corrupt[27];
	ulid_at(a, old, 'A');
	ulid_at(b, old, 'B');
	ulid_at(c, old, 'C');
	ulid_at(d, old, 'D');
	ulid_at(fresh, now, 'E');
	ulid_at(partial, old, 'F');
	ulid_at(corrupt, old, 'G');
	const char *sa[] = {a}, *sb[] = {b}, *sc[] = {c}, *sd[] = {a, b}, *sf[] = {fresh};
	put_block(&e, a, "{\"cluster\":\"x\",\"replica\":\"0\"}", sa, 1, 0, 7200000, 0, "sidecar");
	put_block(&e, b, "{\"cluster\":\"x\",\"replica\":\"1\"}", sb, 1, 7200000, 14400000, 0, "sidecar");
	put_block(&e, c, "{\"cluster\":\"y\"}", sc, 1, 100000000, 107200000, 0, "sidecar");
	put_block(&e, d, "{\"cluster\":\"x\",\"replica\":\"0\"}", sd, 2, 0, 14400000, 0, "compactor");
	put_block(&e, fresh, "{\"cluster\":\"x\"}", sf, 1, 0, 7200000, 0, "sidecar");
	err_t err = {0};
	char name[128];
	snprintf(name, sizeof name, "%s/index", partial);
	CHECK_EQ_INT(bucket_put(e.b, name, "x", 1, &err), 0);
	snprintf(name, sizeof name, "%s/meta.json", corrupt);
	CHECK_EQ_INT(bucket_put(e.b, name, "{oops", 5, &err), 0);
	CHECK_EQ_INT(marker_write(e.b, c, MARKER_NO_COMPACT, MARKER_REASON_MANUAL, NULL, NULL, &err), 0);

	block_fetcher_t *f =
	    block_fetcher_new(&(block_fetcher_config_t){.bkt = e.b, .cache_dir = e.cache, .concurrency = 4});
	fetch_list_t l;
	CHECK_EQ_INT(block_fetcher_fetch(f, &l, &err), 0);
	CHECK_EQ_INT(l.n, 5);
	CHECK_EQ_INT(l.counts[FETCH_PARTIAL], 1);
	CHECK_EQ_INT(l.counts[FETCH_CORRUPT], 1);
	CHECK_EQ_INT(dropped_state(&l, partial), FETCH_PARTIAL);
	CHECK_EQ_INT(dropped_state(&l, corrupt), FETCH_CORRUPT);
	for (size_t i = 1; i < l.n; i++)
		CHECK(strcmp(l.v[i - 1].ulid, l.v[i].ulid) < 0);
	CHECK(fetch_list_find(&l, c)->mark_ms[MARKER_NO_COMPACT] > 0);
	CHECK_STR(fetch_list_find(&l, c)->no_compact_reason, "manual");
	CHECK_EQ_INT(fetch_list_find(&l, a)->mark_ms[MARKER_DELETION], -1);
	/* meta.json is cached on disk */
	char path[512];
	snprintf(path, sizeof path, "%s/%s/meta.json", e.cache, a);
	CHECK(access(path, F_OK) == 0);

	/* time: c starts after 50000000 */
	fetch_filter_time(&l, 0, 50000000);
	CHECK(!has(&l, c) && dropped_state(&l, c) == FETCH_TIME);
	/* consistency: fresh is younger than 30m; d is the compactor's (kept whatever its age) */
	fetch_filter_consistency(&l, 30 * 60 * 1000, now);
	CHECK(!has(&l, fresh) && dropped_state(&l, fresh) == FETCH_TOO_FRESH);
	/* replica labels removed: a, b, d join one stream; d covers a and b */
	char *rl[] = {"replica"};
	fetch_drop_labels(&l, rl, 1);
	CHECK_EQ_INT(fetch_list_find(&l, a)->meta.nlabels, 1);
	char ka[64], kb[64];
	fetched_block_group_key(fetch_list_find(&l, a), ka, sizeof ka);
	fetched_block_group_key(fetch_list_find(&l, b), kb, sizeof kb);
	CHECK_STR(ka, kb);
	CHECK(strncmp(ka, "0@", 2) == 0);
	fetch_filter_duplicates(&l);
	CHECK_EQ_INT(l.n, 1);
	CHECK(has(&l, d));
	CHECK(dropped_state(&l, a) == FETCH_DUPLICATE && dropped_state(&l, b) == FETCH_DUPLICATE);
	CHECK_EQ_INT(l.counts[FETCH_LOADED], 1);
	fetch_list_publish(&l);
	fetch_list_release(&l);

	/* Deletion marks: now visible; with a delay the block stays until the delay passed. */
	CHECK_EQ_INT(marker_write(e.b, d, MARKER_DELETION, NULL, NULL, NULL, &err), 0);
	CHECK_EQ_INT(marker_remove(e.b, c, MARKER_NO_COMPACT, &err), 0);
	CHECK_EQ_INT(block_fetcher_fetch(f, &l, &err), 0);
	CHECK(fetch_list_find(&l, d)->mark_ms[MARKER_DELETION] > 0);
	CHECK_EQ_INT(fetch_list_find(&l, c)->mark_ms[MARKER_NO_COMPACT], -1);
	fetch_filter_deleted(&l, 3600 * 1000, clock_now_ms());
	CHECK(has(&l, d));
	fetch_filter_deleted(&l, 0, clock_now_ms());
	CHECK(!has(&l, d) && dropped_state(&l, d) == FETCH_MARKED);
	fetch_list_release(&l);

	/* A deleted block disappears; the partial one completes and appears. */
	CHECK_EQ_INT(marker_delete_block(e.b, d, &err), 0);
	const char *sp[] = {partial};
	put_block(&e, partial, "{\"cluster\":\"x\"}", sp, 1, 0, 10, 0, "sidecar");
	CHECK_EQ_INT(block_fetcher_fetch(f, &l, &err), 0);
	CHECK(!has(&l, d) && dropped_state(&l, d) == FETCH_N);
	CHECK(has(&l, partial));
	fetch_list_release(&l);
	block_fetcher_free(f);

	/* A new fetcher reads metas from the disk cache: a meta.json changed in the bucket is not read. */
	snprintf(name, sizeof name, "%s/meta.json", a);
	CHECK_EQ_INT(bucket_put(e.b, name, "{broken", 7, &err), 0);
	f = block_fetcher_new(&(block_fetcher_config_t){.bkt = e.b, .cache_dir = e.cache, .concurrency = 1});
	CHECK_EQ_INT(block_fetcher_fetch(f, &l, &err), 0);
	CHECK(has(&l, a));
	fetch_list_release(&l);
	block_fetcher_free(f);
	env_free(&e);
}

static bool keep_cluster_x(void *arg, const labels_t *ls)
{
	(void)arg;
	bool found;
	str_t v = labels_get(ls, STR("cluster"), &found);
	str_t id = labels_get(ls, STR("__block_id"), &found);
	return found && id.n == ULID_LEN && str_eq_c(v, "x");
}

TEST(label_filter_sees_block_id)
{
	env_t e;
	env_init(&e);
	const char *u1 = "01HZZZZZZZZZZZZZZZZZZZZZZ1", *u2 = "01HZZZZZZZZZZZZZZZZZZZZZZ2";
	const char *s1[] = {u1}, *s2[] = {u2};
	put_block(&e, u1, "{\"cluster\":\"x\"}", s1, 1, 0, 10, 0, "sidecar");
	put_block(&e, u2, "{\"cluster\":\"y\"}", s2, 1, 0, 10, 300000, "compactor");
	block_fetcher_t *f = block_fetcher_new(&(block_fetcher_config_t){.bkt = e.b});
	fetch_list_t l;
	err_t err = {0};
	CHECK_EQ_INT(block_fetcher_fetch(f, &l, &err), 0);
	fetch_filter_labels(&l, keep_cluster_x, NULL);
	CHECK(has(&l, u1) && !has(&l, u2));
	CHECK_EQ_INT(dropped_state(&l, u2), FETCH_LABEL);
	fetch_list_release(&l);
	block_fetcher_free(f);
	env_free(&e);
}

TEST_MAIN()
