/*
 * bucket.c — the bucket interface: argument checks, metrics around every backend call, the prefix
 * wrapper, file download/upload helpers and the generic threaded batched range read.
 */
#include "objstore/bucket.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/metrics.h"

/* ---- metrics (Thanos objstore names) ---- */

static metric_t *m_ops, *m_fail, *m_dur, *m_bytes, *m_fetched;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_init(void)
{
	static const double dur_buckets[] = {0.001, 0.01, 0.1, 0.3, 0.6, 1, 3, 6, 9, 20, 30, 60, 90, 120};
	static const double byte_buckets[] = {1 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20,
					      16 << 20, 64 << 20, 256 << 20, 1 << 30};
	m_ops = metrics_counter("objstore_bucket_operations_total",
				"Total number of all attempted operations against a bucket.", "bucket,operation");
	m_fail = metrics_counter("objstore_bucket_operation_failures_total",
				 "Total number of operations against a bucket that failed, but were not expected to "
				 "fail in certain way from caller perspective.",
				 "bucket,operation");
	m_dur = metrics_histogram("objstore_bucket_operation_duration_seconds",
				  "Duration of successful operations against the remote storage.", "bucket,operation",
				  dur_buckets, ARRAY_LEN(dur_buckets));
	m_bytes = metrics_histogram("objstore_bucket_operation_transferred_bytes",
				    "Number of bytes transferred from/to bucket per operation.", "bucket,operation",
				    byte_buckets, ARRAY_LEN(byte_buckets));
	m_fetched = metrics_counter("objstore_bucket_operation_fetched_bytes_total",
				    "Total number of bytes fetched from bucket, per operation.", "bucket,operation");
}

typedef struct op_timer {
	bucket_t *b;
	const char *op;
	uint64_t t0;
} op_timer_t;

static op_timer_t op_begin(bucket_t *b, const char *op)
{
	pthread_once(&metrics_once, metrics_init);
	metric_inc(metric_with(m_ops, b->name, op));
	return (op_timer_t){b, op, clock_mono_ns()};
}

/* Records the outcome; returns rc. Not-found is an expected outcome, not a failure (as in Thanos). */
static int op_end(op_timer_t *t, int rc, int64_t bytes, bool fetched)
{
	if (rc != 0 && rc != ERR_NOT_FOUND) {
		metric_inc(metric_with(m_fail, t->b->name, t->op));
		return rc;
	}
	if (rc == 0) {
		metric_observe(metric_with(m_dur, t->b->name, t->op), clock_since_s(t->t0));
		if (bytes >= 0)
			metric_observe(metric_with(m_bytes, t->b->name, t->op), (double)bytes);
		if (fetched && bytes > 0)
			metric_add(metric_with(m_fetched, t->b->name, t->op), (double)bytes);
	}
	return rc;
}

/* ---- names ---- */

int bucket_check_name(const char *name, err_t *err)
{
	if (!name || !*name)
		return err_set(err, ERR_INVALID, "objstore: empty object name");
	if (name[0] == '/')
		return err_set(err, ERR_INVALID, "objstore: object name \"%s\": must be relative", name);
	const char *s = name;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0)
			return err_set(err, ERR_INVALID, "objstore: object name \"%s\": empty path segment", name);
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return err_set(err, ERR_INVALID, "objstore: object name \"%s\": '.' and '..' not allowed",
				       name);
		if (!e)
			break;
		s = e + 1; /* a trailing '/' ends the loop with *s == 0 */
	}
	return 0;
}

/* ---- reads ---- */

typedef struct buf_sink {
	buf_t *out;
	int64_t n;
} buf_sink_t;

static int sink_buf(void *arg, const void *p, size_t n)
{
	buf_sink_t *s = arg;
	buf_append(s->out, p, n);
	s->n += (int64_t)n;
	return 0;
}

typedef struct count_sink {
	bucket_sink_fn fn;
	void *arg;
	int64_t n;
} count_sink_t;

static int sink_count(void *arg, const void *p, size_t n)
{
	count_sink_t *s = arg;
	s->n += (int64_t)n;
	return s->fn(s->arg, p, n);
}

static int get_common(bucket_t *b, const char *op, const char *name, int64_t off, int64_t len, bucket_sink_fn fn,
		      void *arg, err_t *err)
{
	int rc = bucket_check_name(name, err);
	if (rc)
		return rc;
	if (off < 0)
		return err_set(err, ERR_INVALID, "objstore: %s: negative offset %lld", name, (long long)off);
	op_timer_t t = op_begin(b, op);
	count_sink_t cs = {fn, arg, 0};
	if (len == 0)
		rc = b->ops->attrs(b, name, &(bucket_attrs_t){0}, err);
	else
		rc = b->ops->get(b, name, off, len, sink_count, &cs, err);
	return op_end(&t, rc, cs.n, true);
}

int bucket_get(bucket_t *b, const char *name, buf_t *out, err_t *err)
{
	buf_sink_t s = {out, 0};
	return get_common(b, "get", name, 0, -1, sink_buf, &s, err);
}

int bucket_get_range(bucket_t *b, const char *name, int64_t off, int64_t len, buf_t *out, err_t *err)
{
	buf_sink_t s = {out, 0};
	return get_common(b, "get_range", name, off, len, sink_buf, &s, err);
}

int bucket_get_stream(bucket_t *b, const char *name, int64_t off, int64_t len, bucket_sink_fn sink, void *arg,
		      err_t *err)
{
	return get_common(b, off == 0 && len < 0 ? "get" : "get_range", name, off, len, sink, arg, err);
}

typedef struct fd_sink {
	int fd;
	const char *path;
	err_t *err;
} fd_sink_t;

static int sink_fd(void *arg, const void *p, size_t n)
{
	fd_sink_t *s = arg;
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(s->fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return err_errno(s->err, "objstore: write %s", s->path);
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int bucket_download(bucket_t *b, const char *name, const char *path, err_t *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_errno(err, "objstore: download %s: create %s", name, path);
	fd_sink_t s = {fd, path, err};
	int rc = bucket_get_stream(b, name, 0, -1, sink_fd, &s, err);
	if (rc == 0 && fsync(fd) != 0)
		rc = err_errno(err, "objstore: download %s: fsync %s", name, path);
	if (close(fd) != 0 && rc == 0)
		rc = err_errno(err, "objstore: download %s: close %s", name, path);
	if (rc)
		unlink(path);
	return rc;
}

/* ---- writes ---- */

int bucket_put_src(bucket_t *b, const char *name, const bucket_src_t *src, err_t *err)
{
	int rc = bucket_check_name(name, err);
	if (rc)
		return rc;
	if (name[strlen(name) - 1] == '/')
		return err_set(err, ERR_INVALID, "objstore: object name \"%s\": must not end with '/'", name);
	bucket_src_t s = *src;
	if (s.fd >= 0 && s.size < 0) {
		struct stat st;
		if (fstat(s.fd, &st) != 0)
			return err_errno(err, "objstore: upload %s: fstat", name);
		s.size = st.st_size;
	}
	op_timer_t t = op_begin(b, "upload");
	rc = b->ops->put(b, name, &s, err);
	return op_end(&t, rc, s.fd >= 0 ? s.size : (int64_t)s.n, false);
}

int bucket_put(bucket_t *b, const char *name, const void *p, size_t n, err_t *err)
{
	bucket_src_t s = bucket_src_mem(p, n);
	return bucket_put_src(b, name, &s, err);
}

int bucket_upload(bucket_t *b, const char *name, const char *path, err_t *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(err, "objstore: upload %s: open %s", name, path);
	bucket_src_t s = bucket_src_fd(fd, -1);
	int rc = bucket_put_src(b, name, &s, err);
	close(fd);
	return rc;
}

/* ---- metadata ---- */

int bucket_attributes(bucket_t *b, const char *name, bucket_attrs_t *out, err_t *err)
{
	int rc = bucket_check_name(name, err);
	if (rc)
		return rc;
	op_timer_t t = op_begin(b, "attributes");
	rc = b->ops->attrs(b, name, out, err);
	return op_end(&t, rc, -1, false);
}

int bucket_exists(bucket_t *b, const char *name, bool *exists, err_t *err)
{
	*exists = false;
	int rc = bucket_check_name(name, err);
	if (rc)
		return rc;
	op_timer_t t = op_begin(b, "exists");
	bucket_attrs_t a;
	err_t e2 = {0};
	rc = b->ops->attrs(b, name, &a, &e2);
	if (rc == ERR_NOT_FOUND)
		rc = 0;
	else if (rc == 0)
		*exists = true;
	else if (err)
		*err = e2;
	return op_end(&t, rc, -1, false);
}

int bucket_delete(bucket_t *b, const char *name, err_t *err)
{
	int rc = bucket_check_name(name, err);
	if (rc)
		return rc;
	op_timer_t t = op_begin(b, "delete");
	rc = b->ops->del(b, name, err);
	return op_end(&t, rc, -1, false);
}

int bucket_iter(bucket_t *b, const char *dir, int flags, bucket_iter_fn fn, void *arg, err_t *err)
{
	buf_t d = BUF_INIT;
	if (dir && *dir) {
		buf_puts(&d, dir);
		if (d.p[d.n - 1] != '/')
			buf_putc(&d, '/');
		int rc = bucket_check_name(d.p, err);
		if (rc) {
			buf_release(&d);
			return rc;
		}
	}
	op_timer_t t = op_begin(b, "iter");
	int rc = b->ops->iter(b, d.p, flags, fn, arg, err);
	buf_release(&d);
	/* A callback's own stop value is not a bucket failure. */
	if (rc > 0)
		return rc;
	return op_end(&t, rc, -1, false);
}

/* ---- batched range reads ---- */

typedef struct range_job {
	bucket_t *b;
	bucket_range_t *r;
	size_t n;
	atomic_size_t next;
} range_job_t;

typedef struct range_sink {
	bucket_range_t *r;
} range_sink_t;

static int sink_range(void *arg, const void *p, size_t n)
{
	bucket_range_t *r = arg;
	if ((int64_t)n > r->len - r->got)
		return err_set(&r->err, ERR_CORRUPT, "objstore: %s: backend returned more than the %lld bytes asked",
			       r->name, (long long)r->len);
	memcpy(r->dst + r->got, p, n);
	r->got += (int64_t)n;
	return 0;
}

static void *range_worker(void *arg)
{
	range_job_t *j = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		if (i >= j->n)
			break;
		bucket_range_t *r = &j->r[i];
		r->got = 0;
		err_clear(&r->err);
		r->rc = j->b->ops->get(j->b, r->name, r->off, r->len, sink_range, r, &r->err);
	}
	return NULL;
}

int bucket_get_ranges_threads(bucket_t *b, bucket_range_t *r, size_t n, int concurrency)
{
	if (concurrency <= 0)
		concurrency = 16;
	if ((size_t)concurrency > n)
		concurrency = (int)n;
	range_job_t j = {b, r, n, 0};
	pthread_t *th = xcalloc((size_t)concurrency, sizeof(*th));
	int started = 0;
	for (int i = 1; i < concurrency; i++) {
		if (pthread_create(&th[i], NULL, range_worker, &j) != 0)
			break;
		started++;
	}
	range_worker(&j);
	for (int i = 1; i <= started; i++)
		pthread_join(th[i], NULL);
	free(th);
	for (size_t i = 0; i < n; i++)
		if (r[i].rc)
			return r[i].rc;
	return 0;
}

int bucket_get_ranges(bucket_t *b, bucket_range_t *r, size_t n, int concurrency, err_t *err)
{
	int64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		r[i].rc = 0;
		r[i].got = 0;
		err_clear(&r[i].err);
		int rc = bucket_check_name(r[i].name, err);
		if (rc)
			return rc;
		if (r[i].off < 0 || r[i].len <= 0 || !r[i].dst)
			return err_set(err, ERR_INVALID, "objstore: %s: bad range off=%lld len=%lld", r[i].name,
				       (long long)r[i].off, (long long)r[i].len);
	}
	if (n == 0)
		return 0;
	op_timer_t t = op_begin(b, "get_range");
	int rc = b->ops->get_ranges ? b->ops->get_ranges(b, r, n, concurrency)
				    : bucket_get_ranges_threads(b, r, n, concurrency);
	for (size_t i = 0; i < n; i++)
		total += r[i].got;
	if (rc) {
		for (size_t i = 0; i < n; i++) {
			if (r[i].rc) {
				if (err)
					*err = r[i].err;
				rc = r[i].rc;
				break;
			}
		}
	}
	return op_end(&t, rc, total, true);
}

const char *bucket_name(const bucket_t *b)
{
	return b->name;
}

void bucket_free(bucket_t *b)
{
	if (b)
		b->ops->free(b);
}

/* ---- prefix wrapper ---- */

typedef struct prefix_bucket {
	bucket_t base;
	bucket_t *inner;
	char *prefix; /* ends with '/' */
	size_t plen;
} prefix_bucket_t;

#define PB(b) ((prefix_bucket_t *)(b))

static char *pfx_name(bucket_t *b, const char *name)
{
	size_t n = strlen(name);
	char *s = xmalloc(st_add(PB(b)->plen, n + 1));
	memcpy(s, PB(b)->prefix, PB(b)->plen);
	memcpy(s + PB(b)->plen, name, n + 1);
	return s;
}

static int pfx_get(bucket_t *b, const char *name, int64_t off, int64_t len, bucket_sink_fn sink, void *arg,
		   err_t *err)
{
	char *full = pfx_name(b, name);
	int rc = PB(b)->inner->ops->get(PB(b)->inner, full, off, len, sink, arg, err);
	free(full);
	return rc;
}

static int pfx_put(bucket_t *b, const char *name, const bucket_src_t *src, err_t *err)
{
	char *full = pfx_name(b, name);
	int rc = PB(b)->inner->ops->put(PB(b)->inner, full, src, err);
	free(full);
	return rc;
}

static int pfx_attrs(bucket_t *b, const char *name, bucket_attrs_t *out, err_t *err)
{
	char *full = pfx_name(b, name);
	int rc = PB(b)->inner->ops->attrs(PB(b)->inner, full, out, err);
	free(full);
	return rc;
}

static int pfx_del(bucket_t *b, const char *name, err_t *err)
{
	char *full = pfx_name(b, name);
	int rc = PB(b)->inner->ops->del(PB(b)->inner, full, err);
	free(full);
	return rc;
}

typedef struct pfx_iter_ctx {
	size_t plen;
	bucket_iter_fn fn;
	void *arg;
} pfx_iter_ctx_t;

static int pfx_iter_cb(void *arg, const char *name)
{
	pfx_iter_ctx_t *c = arg;
	return c->fn(c->arg, name + c->plen);
}

static int pfx_iter(bucket_t *b, const char *dir, int flags, bucket_iter_fn fn, void *arg, err_t *err)
{
	char *full = pfx_name(b, dir);
	pfx_iter_ctx_t c = {PB(b)->plen, fn, arg};
	int rc = PB(b)->inner->ops->iter(PB(b)->inner, full, flags, pfx_iter_cb, &c, err);
	free(full);
	return rc;
}

static int pfx_get_ranges(bucket_t *b, bucket_range_t *r, size_t n, int concurrency)
{
	const char **orig = xcalloc(n, sizeof(*orig));
	for (size_t i = 0; i < n; i++) {
		orig[i] = r[i].name;
		r[i].name = pfx_name(b, orig[i]);
	}
	bucket_t *in = PB(b)->inner;
	int rc = in->ops->get_ranges ? in->ops->get_ranges(in, r, n, concurrency)
				     : bucket_get_ranges_threads(in, r, n, concurrency);
	for (size_t i = 0; i < n; i++) {
		free((char *)r[i].name);
		r[i].name = orig[i];
	}
	free(orig);
	return rc;
}

static void pfx_free(bucket_t *b)
{
	bucket_free(PB(b)->inner);
	free(PB(b)->prefix);
	free(b->name);
	free(b);
}

static const bucket_ops_t prefix_ops = {
	.type = NULL,
	.get = pfx_get,
	.put = pfx_put,
	.attrs = pfx_attrs,
	.del = pfx_del,
	.iter = pfx_iter,
	.get_ranges = pfx_get_ranges,
	.free = pfx_free,
};

bucket_t *bucket_with_prefix(bucket_t *b, const char *prefix)
{
	while (prefix && *prefix == '/')
		prefix++;
	size_t n = prefix ? strlen(prefix) : 0;
	while (n > 0 && prefix[n - 1] == '/')
		n--;
	if (n == 0)
		return b;
	prefix_bucket_t *p = xcalloc(1, sizeof(*p));
	p->base.ops = &prefix_ops;
	p->base.name = xstrdup(b->name);
	p->inner = b;
	p->prefix = xmalloc(n + 2);
	memcpy(p->prefix, prefix, n);
	p->prefix[n] = '/';
	p->prefix[n + 1] = 0;
	p->plen = n + 1;
	return &p->base;
}

bucket_t *bucket_unwrap(bucket_t *b)
{
	while (b->ops == &prefix_ops)
		b = ((prefix_bucket_t *)b)->inner;
	return b;
}

const char *bucket_type(const bucket_t *b)
{
	/* A prefix is not a backend: report the wrapped one. */
	return bucket_unwrap((bucket_t *)b)->ops->type;
}
