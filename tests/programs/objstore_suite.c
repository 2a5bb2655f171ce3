/*
 * objstore_suite — the behavioural test suite every bucket backend must pass (driven by
 * tests/integration/objstore_*.sh against FILESYSTEM and a real S3 server).
 *
 * Environment:
 *   OBJSTORE_CONFIG       bucket config YAML (required)
 *   OBJSTORE_BAD_CONFIG   the same bucket with wrong credentials (optional: the access-denied test)
 *   OBJSTORE_STOP_CMD     shell command that stops the server (optional: run last, the outage test)
 *   OBJSTORE_NOBJECTS     objects for the iteration test (default 2500)
 *   OBJSTORE_BIG_MB       size of the multipart object in MiB (default 12; the S3 config uses part_size 5 MiB)
 * Prints "PASS objstore_suite:<backend>:<test>" / "FAIL ...: why"; exits 1 if anything failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/str.h"
#include "objstore/bucket.h"
#include "objstore/config.h"
#include "objstore/s3.h"

static const char *backend = "?";
static bucket_t *B;
static int failures;
static char fail_msg[1024];

#define EXPECT(cond, ...)                                                                                \
	do {                                                                                             \
		if (!(cond)) {                                                                           \
			snprintf(fail_msg, sizeof fail_msg, __VA_ARGS__);                                \
			return -1;                                                                       \
		}                                                                                        \
	} while (0)

static void run(const char *name, int (*fn)(void))
{
	fail_msg[0] = 0;
	uint64_t t0 = clock_mono_ns();
	int rc = fn();
	double s = clock_since_s(t0);
	if (rc == 0) {
		printf("PASS objstore_suite:%s:%s (%.2fs)\n", backend, name, s);
	} else {
		printf("FAIL objstore_suite:%s:%s: %s\n", backend, name, fail_msg);
		failures++;
	}
	fflush(stdout);
}

static void fill(char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (char)(x >> 24);
	}
}

/* ---- tests ---- */

static int t_put_get_range_exists_delete(void)
{
	err_t err = {0};
	const char *name = "basic/dir/obj";
	char data[1000];
	fill(data, sizeof data, 1);
	EXPECT(bucket_put(B, name, data, sizeof data, &err) == 0, "put: %s", err.msg);
	buf_t got = BUF_INIT;
	int rc = bucket_get(B, name, &got, &err);
	bool same = rc == 0 && got.n == sizeof data && memcmp(got.p, data, sizeof data) == 0;
	buf_reset(&got);
	EXPECT(same, "get: rc=%d %s (n=%zu)", rc, err.msg, got.n);
	rc = bucket_get_range(B, name, 100, 50, &got, &err);
	same = rc == 0 && got.n == 50 && memcmp(got.p, data + 100, 50) == 0;
	buf_reset(&got);
	EXPECT(same, "get_range(100,50): rc=%d %s", rc, err.msg);
	rc = bucket_get_range(B, name, 990, 100, &got, &err); /* past the end: what exists */
	same = rc == 0 && got.n == 10 && memcmp(got.p, data + 990, 10) == 0;
	buf_reset(&got);
	EXPECT(same, "get_range past end: rc=%d n=%zu %s", rc, got.n, err.msg);
	rc = bucket_get_range(B, name, 900, -1, &got, &err); /* to the end */
	same = rc == 0 && got.n == 100 && memcmp(got.p, data + 900, 100) == 0;
	buf_reset(&got);
	EXPECT(same, "get_range(900,-1): rc=%d n=%zu %s", rc, got.n, err.msg);
	rc = bucket_get_range(B, name, 5000, 10, &got, &err);
	buf_release(&got);
	EXPECT(rc == ERR_INVALID, "range beyond the end: want ERR_INVALID, got %d %s", rc, err.msg);

	bucket_attrs_t a = {0};
	EXPECT(bucket_attributes(B, name, &a, &err) == 0, "attributes: %s", err.msg);
	int64_t now = clock_now_ms();
	EXPECT(a.size == 1000, "attributes size %lld", (long long)a.size);
	EXPECT(a.last_modified_ms > now - 3600 * 1000 && a.last_modified_ms < now + 3600 * 1000,
	       "last modified %lld not near now %lld", (long long)a.last_modified_ms, (long long)now);
	bool ex = false;
	EXPECT(bucket_exists(B, name, &ex, &err) == 0 && ex, "exists: %d %s", ex, err.msg);
	EXPECT(bucket_exists(B, "basic/dir", &ex, &err) == 0 && !ex, "a directory is not an object");

	/* Overwrite is atomic from a reader's view: old or new, and new afterwards. */
	EXPECT(bucket_put(B, name, "short", 5, &err) == 0, "overwrite: %s", err.msg);
	buf_t g2 = BUF_INIT;
	rc = bucket_get(B, name, &g2, &err);
	same = rc == 0 && g2.n == 5 && memcmp(g2.p, "short", 5) == 0;
	buf_release(&g2);
	EXPECT(same, "get after overwrite: rc=%d", rc);
	/* Empty object. */
	EXPECT(bucket_put(B, "basic/empty", "", 0, &err) == 0, "put empty: %s", err.msg);
	buf_t g3 = BUF_INIT;
	rc = bucket_get(B, "basic/empty", &g3, &err);
	size_t n3 = g3.n;
	buf_release(&g3);
	EXPECT(rc == 0 && n3 == 0, "get empty: rc=%d n=%zu %s", rc, n3, err.msg);

	EXPECT(bucket_delete(B, name, &err) == 0, "delete: %s", err.msg);
	EXPECT(bucket_delete(B, "basic/empty", &err) == 0, "delete empty: %s", err.msg);
	EXPECT(bucket_exists(B, name, &ex, &err) == 0 && !ex, "exists after delete");
	rc = bucket_delete(B, name, &err);
	EXPECT(rc == ERR_NOT_FOUND, "delete missing: want ERR_NOT_FOUND, got %d %s", rc, err.msg);
	return 0;
}

static int t_missing_objects(void)
{
	err_t err = {0};
	buf_t got = BUF_INIT;
	int rc = bucket_get(B, "missing/nothing-here", &got, &err);
	buf_release(&got);
	EXPECT(rc == ERR_NOT_FOUND, "get missing: want ERR_NOT_FOUND, got %d %s", rc, err.msg);
	EXPECT(strstr(err.msg, "missing/nothing-here") != NULL, "message lacks the name: %s", err.msg);
	buf_t g2 = BUF_INIT;
	rc = bucket_get_range(B, "missing/nothing-here", 10, 10, &g2, &err);
	buf_release(&g2);
	EXPECT(rc == ERR_NOT_FOUND, "get_range missing: got %d %s", rc, err.msg);
	bucket_attrs_t a;
	rc = bucket_attributes(B, "missing/nothing-here", &a, &err);
	EXPECT(rc == ERR_NOT_FOUND, "attributes missing: got %d %s", rc, err.msg);
	bool ex = true;
	EXPECT(bucket_exists(B, "missing/nothing-here", &ex, &err) == 0 && !ex, "exists missing");
	return 0;
}

static int t_bad_names(void)
{
	static const char *bad[] = {"", "/abs", "../escape", "a/../../b", "a//b", "./x", "a/./b"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_t err = {0};
		int rc = bucket_put(B, bad[i], "x", 1, &err);
		EXPECT(rc == ERR_INVALID, "put \"%s\": want ERR_INVALID, got %d", bad[i], rc);
		buf_t g = BUF_INIT;
		rc = bucket_get(B, bad[i], &g, &err);
		buf_release(&g);
		EXPECT(rc == ERR_INVALID, "get \"%s\": want ERR_INVALID, got %d", bad[i], rc);
	}
	return 0;
}

static int collect_cb(void *arg, const char *name)
{
	buf_t *b = arg;
	buf_puts(b, name);
	buf_putc(b, '\n');
	return 0;
}

static int t_special_names(void)
{
	static const char *names[] = {"names/with space", "names/plus+sign", "names/eq=amp&q?",
				      "names/\xc3\xa9t\xc3\xa9", "names/tilde~pct%25", "names/x<y>&\"'"};
	err_t err = {0};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		EXPECT(bucket_put(B, names[i], names[i], strlen(names[i]), &err) == 0, "put \"%s\": %s", names[i],
		       err.msg);
		buf_t g = BUF_INIT;
		int rc = bucket_get(B, names[i], &g, &err);
		bool same = rc == 0 && g.n == strlen(names[i]) && memcmp(g.p, names[i], g.n) == 0;
		buf_release(&g);
		EXPECT(same, "get \"%s\": rc=%d %s", names[i], rc, err.msg);
	}
	buf_t list = BUF_INIT;
	int rc = bucket_iter(B, "names", 0, collect_cb, &list, &err);
	char want[1024] = "";
	const char *sorted[ARRAY_LEN(names)];
	memcpy(sorted, names, sizeof names);
	for (size_t i = 0; i < ARRAY_LEN(sorted); i++)
		for (size_t j = i + 1; j < ARRAY_LEN(sorted); j++)
			if (strcmp(sorted[j], sorted[i]) < 0) {
				const char *t = sorted[i];
				sorted[i] = sorted[j];
				sorted[j] = t;
			}
	for (size_t i = 0; i < ARRAY_LEN(sorted); i++) {
		strcat(want, sorted[i]);
		strcat(want, "\n");
	}
	bool same = rc == 0 && strcmp(list.p, want) == 0;
	if (!same)
		snprintf(fail_msg, sizeof fail_msg, "iter names: rc=%d %s got:\n%s\nwant:\n%s", rc, err.msg, list.p,
			 want);
	buf_release(&list);
	if (!same)
		return -1;
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		EXPECT(bucket_delete(B, names[i], &err) == 0, "delete \"%s\": %s", names[i], err.msg);
	return 0;
}

/* Iteration over thousands of objects (several S3 list pages). */
static int nobjects = 2500;
#define NDIRS 25

typedef struct put_job {
	int from, to;
	int rc;
	err_t err;
} put_job_t;

static void iter_name(char *out, size_t n, int i)
{
	snprintf(out, n, "many/d%02d/o%05d", i % NDIRS, i);
}

static void *put_worker(void *arg)
{
	put_job_t *j = arg;
	for (int i = j->from; i < j->to && j->rc == 0; i++) {
		char name[64];
		iter_name(name, sizeof name, i);
		j->rc = bucket_put(B, name, name, strlen(name), &j->err);
	}
	return NULL;
}

static void *del_worker(void *arg)
{
	put_job_t *j = arg;
	for (int i = j->from; i < j->to && j->rc == 0; i++) {
		char name[64];
		iter_name(name, sizeof name, i);
		j->rc = bucket_delete(B, name, &j->err);
	}
	return NULL;
}

static int parallel(void *(*fn)(void *), const char *what)
{
	enum { T = 8 };
	pthread_t th[T];
	put_job_t jobs[T];
	for (int t = 0; t < T; t++) {
		jobs[t] = (put_job_t){nobjects * t / T, nobjects * (t + 1) / T, 0, {0}};
		pthread_create(&th[t], NULL, fn, &jobs[t]);
	}
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < T; t++)
		EXPECT(jobs[t].rc == 0, "%s: %s", what, jobs[t].err.msg);
	return 0;
}

typedef struct iter_check {
	int n;
	char prev[128];
	bool sorted;
	bool dirs_only;
} iter_check_t;

static int check_cb(void *arg, const char *name)
{
	iter_check_t *c = arg;
	if (c->n > 0 && strcmp(c->prev, name) >= 0)
		c->sorted = false;
	if (c->dirs_only && name[strlen(name) - 1] != '/')
		c->sorted = false;
	snprintf(c->prev, sizeof c->prev, "%s", name);
	c->n++;
	return 0;
}

static int stop_after_3(void *arg, const char *name)
{
	int *n = arg;
	return ++*n == 3 ? 42 : 0;
}

static int t_iter_thousands(void)
{
	if (parallel(put_worker, "put"))
		return -1;
	err_t err = {0};
	iter_check_t c = {.sorted = true};
	int rc = bucket_iter(B, "many/", BUCKET_ITER_RECURSIVE, check_cb, &c, &err);
	EXPECT(rc == 0, "recursive iter: %s", err.msg);
	EXPECT(c.n == nobjects && c.sorted, "recursive iter: %d objects (want %d), sorted=%d", c.n, nobjects,
	       c.sorted);
	iter_check_t d = {.sorted = true, .dirs_only = true};
	rc = bucket_iter(B, "many", 0, check_cb, &d, &err);
	EXPECT(rc == 0 && d.n == NDIRS && d.sorted, "dir iter: rc=%d %d entries (want %d) sorted=%d %s", rc, d.n,
	       NDIRS, d.sorted, err.msg);
	iter_check_t e = {.sorted = true};
	rc = bucket_iter(B, "many/d07/", 0, check_cb, &e, &err);
	EXPECT(rc == 0 && e.n == nobjects / NDIRS && e.sorted, "iter one dir: %d entries", e.n);
	int stopped = 0;
	rc = bucket_iter(B, "many/d07/", 0, stop_after_3, &stopped, &err);
	EXPECT(rc == 42 && stopped == 3, "callback stop: rc=%d after %d", rc, stopped);
	iter_check_t z = {.sorted = true};
	rc = bucket_iter(B, "no-such-dir/", 0, check_cb, &z, &err);
	EXPECT(rc == 0 && z.n == 0, "iter of a missing dir: rc=%d n=%d", rc, z.n);
	if (parallel(del_worker, "delete"))
		return -1;
	iter_check_t after = {.sorted = true};
	rc = bucket_iter(B, "many/", BUCKET_ITER_RECURSIVE, check_cb, &after, &err);
	EXPECT(rc == 0 && after.n == 0, "after deleting all: %d left", after.n);
	return 0;
}

static int t_multipart_upload(void)
{
	const char *mb = getenv("OBJSTORE_BIG_MB");
	size_t n = (size_t)(mb ? atoi(mb) : 12) * 1024 * 1024 + 12345;
	char *data = xmalloc(n);
	fill(data, n, 7);
	char path[] = "/tmp/objstore-suite-XXXXXX";
	int fd = mkstemp(path);
	EXPECT(fd >= 0, "mkstemp: %s", strerror(errno));
	bool wrote = write(fd, data, n) == (ssize_t)n;
	close(fd);
	err_t err = {0};
	int rc = wrote ? bucket_upload(B, "big/object", path, &err) : -1;
	unlink(path);
	if (rc) {
		free(data);
		EXPECT(0, "upload of %zu bytes: %s", n, err.msg);
	}
	bucket_attrs_t a = {0};
	rc = bucket_attributes(B, "big/object", &a, &err);
	buf_t got = BUF_INIT;
	int rc2 = bucket_get(B, "big/object", &got, &err);
	bool same = rc2 == 0 && got.n == n && memcmp(got.p, data, n) == 0;
	buf_release(&got);
	/* A range across a part boundary (5 MiB parts on S3). */
	buf_t r = BUF_INIT;
	int rc3 = bucket_get_range(B, "big/object", 5 * 1024 * 1024 - 100, 200, &r, &err);
	bool rsame = rc3 == 0 && r.n == 200 && memcmp(r.p, data + 5 * 1024 * 1024 - 100, 200) == 0;
	buf_release(&r);
	/* Download to a file. */
	char dpath[] = "/tmp/objstore-suite-dl-XXXXXX";
	int dfd = mkstemp(dpath);
	close(dfd);
	int rc4 = bucket_download(B, "big/object", dpath, &err);
	bool dsame = false;
	if (rc4 == 0) {
		FILE *f = fopen(dpath, "rb");
		char *back = xmalloc(n + 1);
		size_t got_n = f ? fread(back, 1, n + 1, f) : 0;
		if (f)
			fclose(f);
		dsame = got_n == n && memcmp(back, data, n) == 0;
		free(back);
	}
	unlink(dpath);
	free(data);
	EXPECT(rc == 0 && a.size == (int64_t)n, "attributes after upload: rc=%d size=%lld", rc, (long long)a.size);
	EXPECT(same, "get of the uploaded object differs: rc=%d %s", rc2, err.msg);
	EXPECT(rsame, "range across part boundary: rc=%d", rc3);
	EXPECT(dsame, "download: rc=%d %s", rc4, err.msg);
	EXPECT(bucket_delete(B, "big/object", &err) == 0, "delete: %s", err.msg);

	/* From memory, more parts (7 of 5 MiB on S3) than the uploader keeps in flight (4), so slots are
	 * reused while other parts are on the wire; every byte must land at its place. */
	size_t m = 31 * 1024 * 1024 + 777;
	char *mem = xmalloc(m);
	fill(mem, m, 11);
	rc = bucket_put(B, "big/from-memory", mem, m, &err);
	if (rc) {
		free(mem);
		EXPECT(0, "put of %zu bytes from memory: %s", m, err.msg);
	}
	buf_t back = BUF_INIT;
	rc = bucket_get(B, "big/from-memory", &back, &err);
	bool msame = rc == 0 && back.n == m && memcmp(back.p, mem, m) == 0;
	buf_release(&back);
	free(mem);
	EXPECT(msame, "get of the multipart object uploaded from memory differs: rc=%d %s", rc, err.msg);
	EXPECT(bucket_delete(B, "big/from-memory", &err) == 0, "delete: %s", err.msg);
	return 0;
}

typedef struct reader_job {
	const char *data;
	size_t n;
	int rc;
	char msg[256];
	int seed;
} reader_job_t;

static void *reader(void *arg)
{
	reader_job_t *j = arg;
	buf_t b = BUF_INIT;
	for (int i = 0; i < 40 && j->rc == 0; i++) {
		size_t off = (size_t)((j->seed * 7919 + i * 104729) % (int)(j->n - 16384));
		err_t err = {0};
		buf_reset(&b);
		int rc = bucket_get_range(B, "ranges/object", (int64_t)off, 16384, &b, &err);
		if (rc || b.n != 16384 || memcmp(b.p, j->data + off, 16384) != 0) {
			j->rc = rc ? rc : -1;
			snprintf(j->msg, sizeof j->msg, "off %zu: rc=%d n=%zu %s", off, rc, b.n, err.msg);
		}
	}
	buf_release(&b);
	return NULL;
}

static int t_concurrent_range_reads(void)
{
	size_t n = 4 * 1024 * 1024;
	char *data = xmalloc(n);
	fill(data, n, 3);
	err_t err = {0};
	int rc = bucket_put(B, "ranges/object", data, n, &err);
	if (rc) {
		free(data);
		EXPECT(0, "put: %s", err.msg);
	}
	rc = bucket_put(B, "ranges/second", data, 100000, &err);
	/* Batched: 256 ranges of 16 KiB over two objects, plus one reaching past the end. */
	enum { NR = 257 };
	bucket_range_t *r = xcalloc(NR, sizeof(*r));
	char *dst = xmalloc((size_t)NR * 16384);
	for (int i = 0; i < NR; i++) {
		bool second = i % 5 == 0;
		r[i].name = second ? "ranges/second" : "ranges/object";
		r[i].off = second ? (i * 331) % (100000 - 16384) : ((int64_t)i * 15731) % (int64_t)(n - 16384);
		r[i].len = 16384;
		r[i].dst = dst + (size_t)i * 16384;
	}
	r[NR - 1].name = "ranges/second";
	r[NR - 1].off = 100000 - 1000;
	int brc = bucket_get_ranges(B, r, NR, 16, &err);
	bool ok = brc == 0;
	for (int i = 0; ok && i < NR; i++) {
		int64_t want = i == NR - 1 ? 1000 : 16384;
		ok = r[i].rc == 0 && r[i].got == want && memcmp(r[i].dst, data + r[i].off, (size_t)want) == 0;
		if (!ok)
			snprintf(fail_msg, sizeof fail_msg, "range %d (%s @%lld): rc=%d got=%lld %s", i, r[i].name,
				 (long long)r[i].off, r[i].rc, (long long)r[i].got, r[i].err.msg);
	}
	/* A missing object inside a batch fails only that range. */
	r[3].name = "ranges/missing";
	int mrc = bucket_get_ranges(B, r, 8, 4, &err);
	int r3rc = r[3].rc;
	bool mok = mrc == ERR_NOT_FOUND && r3rc == ERR_NOT_FOUND && r[2].rc == 0 && r[4].rc == 0 &&
		   strstr(err.msg, "ranges/missing");
	free(r);
	free(dst);
	if (!ok) {
		free(data);
		return -1;
	}
	/* Many threads doing blocking range reads at once. */
	enum { T = 8 };
	pthread_t th[T];
	reader_job_t jobs[T];
	for (int t = 0; t < T; t++) {
		jobs[t] = (reader_job_t){data, n, 0, "", t + 1};
		pthread_create(&th[t], NULL, reader, &jobs[t]);
	}
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	free(data);
	for (int t = 0; t < T; t++)
		EXPECT(jobs[t].rc == 0, "reader %d: %s", t, jobs[t].msg);
	EXPECT(brc == 0 && rc == 0, "batched read rc=%d", brc);
	EXPECT(mok, "batch with a missing object: rc=%d r[3].rc=%d msg=%s", mrc, r3rc, err.msg);
	EXPECT(bucket_delete(B, "ranges/object", &err) == 0 && bucket_delete(B, "ranges/second", &err) == 0,
	       "delete: %s", err.msg);
	return 0;
}

static int t_metrics(void)
{
	buf_t out = BUF_INIT;
	metrics_write(&out);
	char want[512];
	snprintf(want, sizeof want, "objstore_bucket_operations_total{bucket=\"%s\",operation=\"get_range\"}",
		 bucket_name(B));
	bool has_ops = strstr(out.p, want) != NULL;
	bool has_dur = strstr(out.p, "objstore_bucket_operation_duration_seconds_bucket{") != NULL;
	bool has_fail = strstr(out.p, "objstore_bucket_operation_failures_total") != NULL;
	bool has_bytes = strstr(out.p, "objstore_bucket_operation_transferred_bytes_bucket{") != NULL;
	buf_release(&out);
	EXPECT(has_ops && has_dur && has_fail && has_bytes, "metrics missing (ops=%d dur=%d fail=%d bytes=%d): %s",
	       has_ops, has_dur, has_fail, has_bytes, want);
	return 0;
}

static const char *bad_config;

static int t_wrong_credentials(void)
{
	bucket_t *bad = NULL;
	err_t err = {0};
	EXPECT(objstore_from_config(bad_config, strlen(bad_config), &bad, &err) == 0, "config: %s", err.msg);
	uint64_t t0 = clock_mono_ns();
	buf_t g = BUF_INIT;
	int rc = bucket_get(bad, "basic/anything", &g, &err);
	buf_release(&g);
	double secs = clock_since_s(t0);
	uint64_t reqs = s3_bucket_requests(bad);
	bucket_free(bad);
	EXPECT(rc == ERR_ACCESS, "want ERR_ACCESS, got %d: %s", rc, err.msg);
	EXPECT(strstr(err.msg, "basic/anything") && strstr(err.msg, "access denied"), "unclear message: %s",
	       err.msg);
	EXPECT(reqs == 1, "access denied must not be retried: %llu requests", (unsigned long long)reqs);
	EXPECT(secs < 5, "took %.1fs", secs);
	printf("# wrong credentials -> %s\n", err.msg);
	return 0;
}

static const char *stop_cmd;

static int t_server_stopped(void)
{
	err_t err = {0};
	EXPECT(bucket_put(B, "outage/obj", "x", 1, &err) == 0, "put before outage: %s", err.msg);
	EXPECT(system(stop_cmd) == 0, "stop command failed: %s", stop_cmd);
	uint64_t before = s3_bucket_requests(B);
	uint64_t t0 = clock_mono_ns();
	buf_t g = BUF_INIT;
	int rc = bucket_get(B, "outage/obj", &g, &err);
	buf_release(&g);
	double secs = clock_since_s(t0);
	uint64_t reqs = s3_bucket_requests(B) - before;
	EXPECT(rc == ERR_TRANSIENT, "want ERR_TRANSIENT, got %d: %s", rc, err.msg);
	EXPECT(strstr(err.msg, "outage/obj") && strstr(err.msg, "attempts"), "unclear message: %s", err.msg);
	EXPECT(reqs == 3, "want 3 attempts (max_retries 2), got %llu", (unsigned long long)reqs);
	EXPECT(secs < 10, "retries took %.1fs", secs);
	/* Batched reads fail the same bounded way. */
	char dst[16];
	bucket_range_t r = {.name = "outage/obj", .off = 0, .len = 1, .dst = dst};
	before = s3_bucket_requests(B);
	rc = bucket_get_ranges(B, &r, 1, 4, &err);
	reqs = s3_bucket_requests(B) - before;
	EXPECT(rc == ERR_TRANSIENT && reqs == 3, "batched read during outage: rc=%d after %llu requests: %s", rc,
	       (unsigned long long)reqs, err.msg);
	/* A multipart upload fails the same bounded way, naming the object. */
	size_t n = 11 * 1024 * 1024;
	char *big = xcalloc(1, n);
	t0 = clock_mono_ns();
	rc = bucket_put(B, "outage/big", big, n, &err);
	free(big);
	double usecs = clock_since_s(t0);
	EXPECT(rc == ERR_TRANSIENT && strstr(err.msg, "outage/big"), "multipart upload during outage: rc=%d: %s", rc,
	       err.msg);
	EXPECT(usecs < 10, "multipart upload during outage took %.1fs", usecs);
	printf("# server stopped -> %s (%.2fs)\n", err.msg, secs);
	return 0;
}

int main(void)
{
	const char *cfg = getenv("OBJSTORE_CONFIG");
	if (!cfg) {
		fprintf(stderr, "objstore_suite: set OBJSTORE_CONFIG\n");
		return 2;
	}
	bad_config = getenv("OBJSTORE_BAD_CONFIG");
	stop_cmd = getenv("OBJSTORE_STOP_CMD");
	if (getenv("OBJSTORE_NOBJECTS"))
		nobjects = atoi(getenv("OBJSTORE_NOBJECTS"));
	err_t err = {0};
	if (objstore_from_config(cfg, strlen(cfg), &B, &err)) {
		printf("FAIL objstore_suite:config: %s\n", err.msg);
		return 1;
	}
	backend = bucket_type(B);
	run("put_get_range_exists_delete", t_put_get_range_exists_delete);
	run("missing_objects", t_missing_objects);
	run("bad_names", t_bad_names);
	run("special_names", t_special_names);
	run("iter_thousands", t_iter_thousands);
	run("multipart_upload", t_multipart_upload);
	run("concurrent_range_reads", t_concurrent_range_reads);
	run("metrics", t_metrics);
	if (bad_config)
		run("wrong_credentials", t_wrong_credentials);
	if (stop_cmd)
		run("server_stopped", t_server_stopped);
	bucket_free(B);
	return failures ? 1 : 0;
}
