/*
 * bucket.h — the one object-storage interface every Strata component uses.
 *
 * A bucket is a flat namespace of objects named by '/'-separated keys ("01H.../chunks/000001").
 * Backends: FILESYSTEM (objstore/fs.h) and S3 (objstore/s3.h); objstore_from_config (objstore/config.h)
 * builds one from Thanos's YAML. Callers use only the bucket_* functions below, which also record the
 * objstore_bucket_* metrics (operations, failures, duration, transferred bytes) labelled by operation
 * and bucket name.
 *
 *     bucket_t *b;
 *     if (objstore_from_config(yaml, len, &b, &err)) ...;
 *     buf_t data = BUF_INIT;
 *     rc = bucket_get_range(b, "01H.../index", 4096, 512, &data, &err);
 *     bucket_free(b);
 *
 * Errors (negative ERR_* with the object name in err->msg):
 *   ERR_NOT_FOUND  the object does not exist (not counted as an operation failure in metrics);
 *   ERR_ACCESS     credentials rejected / permission denied (never retried);
 *   ERR_TRANSIENT  the backend failed in a retryable way and retries (if any) were exhausted;
 *   ERR_INVALID    bad object name (empty, "..", absolute) or bad configuration;
 *   ERR_IO / ERR_CORRUPT / ERR_INTERNAL for the rest.
 *
 * Thread-safety: every function may be called concurrently from many threads on the same bucket,
 * except bucket_free. Calls block; run them on worker threads, never on an event loop.
 */
#ifndef STRATA_OBJSTORE_BUCKET_H
#define STRATA_OBJSTORE_BUCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

typedef struct bucket bucket_t;

typedef struct bucket_attrs {
	int64_t size;             /* bytes */
	int64_t last_modified_ms; /* ms since epoch */
} bucket_attrs_t;

/* Data sink for streaming reads: return 0 to continue, a negative ERR_* to abort (returned as is). */
typedef int (*bucket_sink_fn)(void *arg, const void *p, size_t n);

/* Source of an upload: a memory buffer (fd < 0) or the first `size` bytes of a regular file read with
 * pread (fd >= 0; size < 0 means "the file's current size"). The fd stays the caller's. */
typedef struct bucket_src {
	const void *p;
	size_t n;
	int fd;
	int64_t size;
} bucket_src_t;

static inline bucket_src_t bucket_src_mem(const void *p, size_t n)
{
	return (bucket_src_t){p, n, -1, (int64_t)n};
}
static inline bucket_src_t bucket_src_fd(int fd, int64_t size)
{
	return (bucket_src_t){NULL, 0, fd, size};
}

/* One piece of a batched range read. Caller fills name/off/len/dst (dst has room for len bytes);
 * bucket_get_ranges fills got (bytes actually read; less than len only at the object's end), rc, and
 * err (message for this piece when rc != 0). */
typedef struct bucket_range {
	const char *name;
	int64_t off;
	int64_t len;
	char *dst;
	int64_t got;
	int rc;
	err_t err;
} bucket_range_t;

/* Flags for bucket_iter. */
enum {
	BUCKET_ITER_RECURSIVE = 1, /* every object under dir, no directory entries */
};

/* Iteration callback: name is relative to the bucket root (prefix stripped); directories end with '/'.
 * Return 0 to continue; anything else stops iteration and is returned by bucket_iter. */
typedef int (*bucket_iter_fn)(void *arg, const char *name);

/* ---- backend vtable (implemented by fs.c, s3.c, and the prefix wrapper) ---- */
typedef struct bucket_ops {
	const char *type; /* "FILESYSTEM", "S3" */
	/* len < 0: to the end of the object. */
	int (*get)(bucket_t *b, const char *name, int64_t off, int64_t len, bucket_sink_fn sink, void *arg,
		   err_t *err);
	int (*put)(bucket_t *b, const char *name, const bucket_src_t *src, err_t *err);
	int (*attrs)(bucket_t *b, const char *name, bucket_attrs_t *out, err_t *err);
	int (*del)(bucket_t *b, const char *name, err_t *err);
	/* dir is "" (root) or ends with '/'. Names passed to fn are full object names. Must be sorted. */
	int (*iter)(bucket_t *b, const char *dir, int flags, bucket_iter_fn fn, void *arg, err_t *err);
	/* Optional: concurrent range reads (NULL = generic implementation with threads). Must set every
	 * range's rc/got/err; returns 0 or the first failing range's rc. */
	int (*get_ranges)(bucket_t *b, bucket_range_t *r, size_t n, int concurrency);
	void (*free)(bucket_t *b);
} bucket_ops_t;

struct bucket {
	const bucket_ops_t *ops;
	char *name; /* metrics label and messages: the directory or the S3 bucket name */
};

/* ---- the interface ---- */

/* Whole object, appended to out. */
int bucket_get(bucket_t *b, const char *name, buf_t *out, err_t *err);
/* Bytes [off, off+len) appended to out (len < 0: to the end). Reading past the end returns what exists;
 * off beyond the end returns ERR_INVALID. */
int bucket_get_range(bucket_t *b, const char *name, int64_t off, int64_t len, buf_t *out, err_t *err);
/* Streaming variant: data is handed to sink as it arrives (no whole-object buffering). */
int bucket_get_stream(bucket_t *b, const char *name, int64_t off, int64_t len, bucket_sink_fn sink, void *arg,
		      err_t *err);
/* Download an object into a local file (created/truncated, fsynced). */
int bucket_download(bucket_t *b, const char *name, const char *path, err_t *err);

/* Create or replace an object. Readers see either the old or the complete new object, never a part. */
int bucket_put(bucket_t *b, const char *name, const void *p, size_t n, err_t *err);
int bucket_put_src(bucket_t *b, const char *name, const bucket_src_t *src, err_t *err);
/* Upload a local file (streamed; S3 uses multipart above part_size). */
int bucket_upload(bucket_t *b, const char *name, const char *path, err_t *err);

/* *exists = false with return 0 when the object is missing. */
int bucket_exists(bucket_t *b, const char *name, bool *exists, err_t *err);
int bucket_attributes(bucket_t *b, const char *name, bucket_attrs_t *out, err_t *err);
/* ERR_NOT_FOUND if missing. */
int bucket_delete(bucket_t *b, const char *name, err_t *err);

/* List entries under dir ("" = root; a missing trailing '/' is added) in byte order. Without
 * BUCKET_ITER_RECURSIVE: objects directly in dir plus "sub/" entries for sub-directories. */
int bucket_iter(bucket_t *b, const char *dir, int flags, bucket_iter_fn fn, void *arg, err_t *err);

/* Fetch many ranges (of one or several objects) concurrently, at most `concurrency` in flight
 * (<= 0: 16). Returns 0 when every range succeeded, else the rc of the first failed range (err gets
 * its message); each range carries its own rc/err either way. */
int bucket_get_ranges(bucket_t *b, bucket_range_t *r, size_t n, int concurrency, err_t *err);

const char *bucket_name(const bucket_t *b);
const char *bucket_type(const bucket_t *b);
void bucket_free(bucket_t *b); /* NULL ok */

/* Wrap b so every name gets `prefix/` prepended (Thanos's `prefix:` config). Takes ownership of b.
 * An empty prefix returns b itself. */
bucket_t *bucket_with_prefix(bucket_t *b, const char *prefix);

/* The backend under any prefix wrappers. */
bucket_t *bucket_unwrap(bucket_t *b);

/* Validate an object name: non-empty, relative, no "." or ".." segments, no empty segments except a
 * trailing '/', no NUL. ERR_INVALID naming it otherwise. */
int bucket_check_name(const char *name, err_t *err);

/* Shared helper for backends: generic thread-based get_ranges over ops->get. */
int bucket_get_ranges_threads(bucket_t *b, bucket_range_t *r, size_t n, int concurrency);

#endif
