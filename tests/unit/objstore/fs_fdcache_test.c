/*
 * fs_fdcache_test.c — FILESYSTEM bucket reads through its cache of open fds: objects replaced by rename
 * from outside, deletes, more objects than cache slots, concurrent readers and writers.
 */
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "objstore/bucket.h"
#include "objstore/fs.h"

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void rm_rf(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* Another writer: write bytes to a temp file in the root and rename it over the object's path. */
static int replace_outside(const char *root, const char *name, const char *data)
{
	char tmp[600], path[600];
	snprintf(tmp, sizeof tmp, "%s/other-writer.tmp", root);
	snprintf(path, sizeof path, "%s/%s", root, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	size_t n = strlen(data);
	if (write(fd, data, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	close(fd);
	return rename(tmp, path);
}

static bool range_is(bucket_t *b, const char *name, int64_t off, int64_t len, const char *want)
{
	buf_t out = BUF_INIT;
	err_t err = {0};
	int rc = bucket_get_range(b, name, off, len, &out, &err);
	bool ok = rc == 0 && out.n == strlen(want) && memcmp(out.p, want, out.n) == 0;
	if (!ok)
		fprintf(stderr, "range %s [%lld,+%lld): rc %d (%s) got '%.*s' want '%s'\n", name, (long long)off,
			(long long)len, rc, err.msg, (int)out.n, out.p ? out.p : "", want);
	buf_release(&out);
	return ok;
}

TEST(fs_fdcache_replace_by_rename_from_another_writer)
{
	char dir[] = "/tmp/fs-fdcache-XXXXXX";
	CHECK(mkdtemp(dir));
	int fds0 = count_fds();
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(fs_bucket_new(dir, &b, &err), 0);
	CHECK_EQ_INT(bucket_put(b, "blk/index", "old-bytes", 9, &err), 0);
	CHECK(range_is(b, "blk/index", 0, 3, "old"));
	CHECK(range_is(b, "blk/index", 4, -1, "bytes")); /* now served from the cached fd */
	/* Same size, new inode: only the inode check can notice. */
	CHECK_EQ_INT(replace_outside(dir, "blk/index", "NEW-BYTES"), 0);
	CHECK(range_is(b, "blk/index", 0, 3, "NEW"));
	CHECK(range_is(b, "blk/index", 0, -1, "NEW-BYTES"));
	/* Longer: the size comes from the new file too. */
	CHECK_EQ_INT(replace_outside(dir, "blk/index", "third version, longer"), 0);
	CHECK(range_is(b, "blk/index", 15, 100, "longer"));
	/* Shorter: a range start beyond the new size is ERR_INVALID, not old bytes. */
	CHECK_EQ_INT(replace_outside(dir, "blk/index", "4th"), 0);
	buf_t out = BUF_INIT;
	CHECK_EQ_INT(bucket_get_range(b, "blk/index", 14, 4, &out, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "blk/index") != NULL);
	CHECK(range_is(b, "blk/index", 0, -1, "4th"));
	/* Hard-linked elsewhere (as Prometheus's copy of a block is), then replaced: the old inode keeps a
	 * link, but its count changes. */
	char other[600], path[600];
	snprintf(path, sizeof path, "%s/blk/index", dir);
	snprintf(other, sizeof other, "%s/elsewhere", dir);
	CHECK_EQ_INT(link(path, other), 0);
	CHECK(range_is(b, "blk/index", 0, -1, "4th"));
	CHECK_EQ_INT(replace_outside(dir, "blk/index", "5th"), 0);
	CHECK(range_is(b, "blk/index", 0, -1, "5th"));
	CHECK_EQ_INT(unlink(other), 0); /* a link change of the cached inode only re-checks the path */
	CHECK(range_is(b, "blk/index", 0, -1, "5th"));
	/* A put through this bucket replaces it as well. */
	CHECK_EQ_INT(bucket_put(b, "blk/index", "fifth", 5, &err), 0);
	CHECK(range_is(b, "blk/index", 0, -1, "fifth"));
	buf_release(&out);
	bucket_free(b);
	CHECK_EQ_INT(count_fds(), fds0); /* bucket_free closed the cached fds */
	rm_rf(dir);
}

TEST(fs_fdcache_delete_here_and_outside)
{
	char dir[] = "/tmp/fs-fdcache-XXXXXX";
	CHECK(mkdtemp(dir));
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(fs_bucket_new(dir, &b, &err), 0);
	CHECK_EQ_INT(bucket_put(b, "a/obj", "hello", 5, &err), 0);
	CHECK(range_is(b, "a/obj", 1, 3, "ell"));
	CHECK_EQ_INT(bucket_delete(b, "a/obj", &err), 0);
	buf_t out = BUF_INIT;
	CHECK_EQ_INT(bucket_get_range(b, "a/obj", 0, 2, &out, &err), ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "a/obj") != NULL);
	CHECK_EQ_INT((int)out.n, 0);

	/* Deleted by another process while cached. */
	CHECK_EQ_INT(bucket_put(b, "b/obj", "world", 5, &err), 0);
	CHECK(range_is(b, "b/obj", 0, -1, "world"));
	char path[600];
	snprintf(path, sizeof path, "%s/b/obj", dir);
	CHECK_EQ_INT(unlink(path), 0);
	CHECK_EQ_INT(bucket_get_range(b, "b/obj", 0, 2, &out, &err), ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "b/obj") != NULL);
	/* Re-created afterwards: the new bytes. */
	CHECK_EQ_INT(bucket_put(b, "b/obj", "again", 5, &err), 0);
	CHECK(range_is(b, "b/obj", 0, -1, "again"));

	/* Unchanged behaviours: traversal rejected, directories are not objects, temp files hidden. */
	CHECK_EQ_INT(bucket_get_range(b, "../etc/passwd", 0, 2, &out, &err), ERR_INVALID);
	CHECK_EQ_INT(bucket_get_range(b, "b", 0, 2, &out, &err), ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "directory") != NULL);
	CHECK_EQ_INT((int)out.n, 0);
	buf_release(&out);
	bucket_free(b);
	rm_rf(dir);
}

TEST(fs_fdcache_more_objects_than_slots)
{
	char dir[] = "/tmp/fs-fdcache-XXXXXX";
	CHECK(mkdtemp(dir));
	int fds0 = count_fds();
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(fs_bucket_new(dir, &b, &err), 0);
	enum { N = 300 };
	char name[64], want[64];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "d%d/o%d", i % 7, i);
		snprintf(want, sizeof want, "object-%d-contents", i);
		CHECK_EQ_INT(bucket_put(b, name, want, strlen(want), &err), 0);
	}
	int maxfds = 0;
	for (int round = 0; round < 3; round++) {
		for (int k = 0; k < N; k++) {
			/* round 0 in order, then strided so hits and evictions mix */
			int i = round == 0 ? k : (k * 37 + round) % N;
			snprintf(name, sizeof name, "d%d/o%d", i % 7, i);
			snprintf(want, sizeof want, "%d-contents", i);
			CHECK(range_is(b, name, (int64_t)strlen("object-"), -1, want));
			int n = count_fds();
			if (n > maxfds)
				maxfds = n;
		}
	}
	/* Bounded: at most 64 cached fds (+1 for the /proc/self/fd listing itself). */
	CHECK(maxfds - fds0 <= 64 + 1);
	CHECK(maxfds - fds0 >= 32); /* and the cache is in use */
	bucket_free(b);
	CHECK_EQ_INT(count_fds(), fds0);
	rm_rf(dir);
}

/* Concurrent readers over more objects than slots while a writer replaces objects (via the bucket and
 * by rename from outside). Object i at version v is OBJ_LEN bytes of (i * 7 + v) & 0xff; a reader checks
 * every range it gets is whole and of one version. */
enum { C_OBJS = 100, C_LEN = 4096, C_READERS = 6, C_READS = 1500, C_VERSIONS = 40 };

typedef struct {
	bucket_t *b;
	const char *root;
	unsigned seed;
	atomic_int *bad;
	atomic_bool *stop;
} conc_arg_t;

static void obj_bytes(int i, int v, char *p)
{
	memset(p, (i * 7 + v) & 0xff, C_LEN);
}

static void *reader(void *p)
{
	conc_arg_t *a = p;
	char name[32];
	buf_t out = BUF_INIT;
	for (int k = 0; k < C_READS; k++) {
		int i = (int)(rand_r(&a->seed) % C_OBJS);
		int64_t off = rand_r(&a->seed) % C_LEN, len = 1 + rand_r(&a->seed) % 1024;
		snprintf(name, sizeof name, "blk%d/chunks", i);
		err_t err = {0};
		buf_reset(&out);
		int rc = bucket_get_range(a->b, name, off, len, &out, &err);
		int64_t want = off + len > C_LEN ? C_LEN - off : len;
		bool ok = rc == 0 && (int64_t)out.n == want;
		for (size_t j = 1; ok && j < out.n; j++)
			ok = out.p[j] == out.p[0];
		if (ok) {
			int v = ((unsigned char)out.p[0] - i * 7) & 0xff;
			ok = v >= 0 && v < C_VERSIONS;
		}
		if (!ok) {
			fprintf(stderr, "reader: %s [%lld,+%lld): rc %d (%s) n %zu\n", name, (long long)off,
				(long long)len, rc, err.msg, out.n);
			atomic_fetch_add(a->bad, 1);
		}
	}
	buf_release(&out);
	return NULL;
}

static void *writer(void *p)
{
	conc_arg_t *a = p;
	char *data = xmalloc(C_LEN);
	char name[32], path[600], tmp[600];
	for (int v = 1; v < C_VERSIONS && !atomic_load(a->stop); v++) {
		for (int i = v % 3; i < C_OBJS; i += 9) {
			snprintf(name, sizeof name, "blk%d/chunks", i);
			obj_bytes(i, v, data);
			if (v % 2) {
				err_t err = {0};
				if (bucket_put(a->b, name, data, C_LEN, &err) != 0)
					atomic_fetch_add(a->bad, 1);
				continue;
			}
			snprintf(tmp, sizeof tmp, "%s/blk%d/.w.tmp", a->root, i);
			snprintf(path, sizeof path, "%s/%s", a->root, name);
			int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || write(fd, data, C_LEN) != C_LEN || close(fd) != 0 || rename(tmp, path) != 0)
				atomic_fetch_add(a->bad, 1);
		}
	}
	free(data);
	return NULL;
}

TEST(fs_fdcache_concurrent_readers_and_writer)
{
	char dir[] = "/tmp/fs-fdcache-XXXXXX";
	CHECK(mkdtemp(dir));
	int fds0 = count_fds();
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(fs_bucket_new(dir, &b, &err), 0);
	char *data = xmalloc(C_LEN);
	char name[32];
	for (int i = 0; i < C_OBJS; i++) {
		snprintf(name, sizeof name, "blk%d/chunks", i);
		obj_bytes(i, 0, data);
		CHECK_EQ_INT(bucket_put(b, name, data, C_LEN, &err), 0);
	}
	free(data);
	atomic_int bad = 0;
	atomic_bool stop = false;
	pthread_t th[C_READERS + 1];
	conc_arg_t args[C_READERS + 1];
	for (int t = 0; t <= C_READERS; t++) {
		args[t] = (conc_arg_t){b, dir, (unsigned)(t * 7919 + 1), &bad, &stop};
		CHECK_EQ_INT(pthread_create(&th[t], NULL, t == C_READERS ? writer : reader, &args[t]), 0);
	}
	for (int t = 0; t < C_READERS; t++)
		pthread_join(th[t], NULL);
	atomic_store(&stop, true);
	pthread_join(th[C_READERS], NULL);
	CHECK_EQ_INT(atomic_load(&bad), 0);

	/* Batched reads (the generic threaded get_ranges) over the same cache. */
	bucket_range_t r[64];
	char names[64][16], dst[64][16];
	for (int i = 0; i < 64; i++) {
		snprintf(names[i], sizeof names[i], "blk%d/chunks", (i * 13) % C_OBJS);
		r[i] = (bucket_range_t){.name = names[i], .off = i, .len = 16, .dst = dst[i]};
	}
	CHECK_EQ_INT(bucket_get_ranges(b, r, 64, 8, &err), 0);
	for (int i = 0; i < 64; i++) {
		CHECK_EQ_INT((int)r[i].got, 16);
		CHECK(memcmp(dst[i], dst[i] + 1, 15) == 0);
	}
	bucket_free(b);
	CHECK_EQ_INT(count_fds(), fds0);
	rm_rf(dir);
}

TEST_MAIN()
