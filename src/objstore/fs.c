/*
 * fs.c — FILESYSTEM bucket (see fs.h).
 */
#include "objstore/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/hmap.h"
#include "base/vec.h"

#define TMP_MARK ".strata-tmp-"

/* Read fds kept open per bucket. Each read still stat()s the path (one syscall instead of
 * open+fstat+close) and only uses a cached fd whose inode matches, so an object replaced by rename —
 * by this process or another — is never served from the old file. */
#define FD_CACHE_SIZE 64

/* An open read-only fd of one object. Shared by the cache slot (one reference while cached) and by the
 * readers using it; the fd is closed when the last reference goes. */
typedef struct fd_ent {
	char *name;
	uint64_t hash;
	int fd;
	dev_t dev;
	ino_t ino;
	nlink_t nlink;         /* link count and ctime when last checked against the path; under mu */
	struct timespec ctime;
	int refs;      /* under fs_bucket.mu */
	uint64_t used; /* LRU tick, under fs_bucket.mu */
} fd_ent_t;

typedef struct fs_bucket {
	bucket_t base;
	char *root; /* no trailing '/' */
	pthread_mutex_t mu;
	uint64_t tick;
	fd_ent_t *slots[FD_CACHE_SIZE]; /* NULL = free */
} fs_bucket_t;

#define FB(b) ((fs_bucket_t *)(b))

static atomic_uint_fast64_t tmp_seq;

static char *fs_path(bucket_t *b, const char *name)
{
	size_t rn = strlen(FB(b)->root), nn = strlen(name);
	char *p = xmalloc(st_add(rn, nn + 2));
	memcpy(p, FB(b)->root, rn);
	p[rn] = '/';
	memcpy(p + rn + 1, name, nn + 1);
	return p;
}

static bool is_tmp_name(const char *base)
{
	return base[0] == '.' && strstr(base, TMP_MARK) != NULL;
}

/* mkdir -p of every directory component of path below (and excluding) the root. */
static int mkdirs_for(const char *root, char *path, const char *name, err_t *err)
{
	size_t rn = strlen(root);
	for (char *s = path + rn + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = 0;
		int r = mkdir(path, 0755);
		int e = errno;
		*s = '/';
		if (r != 0 && e != EEXIST) {
			errno = e;
			return err_errno(err, "objstore: %s: mkdir for object", name);
		}
	}
	return 0;
}

static void fd_ent_unref_locked(fd_ent_t *e)
{
	BUG_ON(e->refs <= 0);
	if (--e->refs == 0) {
		close(e->fd);
		free(e->name);
		free(e);
	}
}

static void fd_ent_release(fs_bucket_t *fb, fd_ent_t *e)
{
	pthread_mutex_lock(&fb->mu);
	fd_ent_unref_locked(e);
	pthread_mutex_unlock(&fb->mu);
}

/* Slot index of name's cached entry or -1. Caller holds mu. */
static int fd_cache_find_locked(fs_bucket_t *fb, const char *name, uint64_t h)
{
	for (int i = 0; i < FD_CACHE_SIZE; i++) {
		fd_ent_t *e = fb->slots[i];
		if (e && e->hash == h && strcmp(e->name, name) == 0)
			return i;
	}
	return -1;
}

/* Drop name's entry from the cache (after a put or delete in this process, or a stale inode). */
static void fd_cache_invalidate(fs_bucket_t *fb, const char *name)
{
	uint64_t h = hash_bytes(name, strlen(name));
	pthread_mutex_lock(&fb->mu);
	int i = fd_cache_find_locked(fb, name, h);
	if (i >= 0) {
		fd_ent_unref_locked(fb->slots[i]);
		fb->slots[i] = NULL;
	}
	pthread_mutex_unlock(&fb->mu);
}

/* A referenced entry for name, or NULL. */
static fd_ent_t *fd_cache_ref(fs_bucket_t *fb, const char *name, uint64_t h)
{
	fd_ent_t *e = NULL;
	pthread_mutex_lock(&fb->mu);
	int i = fd_cache_find_locked(fb, name, h);
	if (i >= 0) {
		e = fb->slots[i];
		e->refs++;
		e->used = ++fb->tick;
	}
	pthread_mutex_unlock(&fb->mu);
	return e;
}

/* Whether the inode behind e's fd had no link change since e was (re)validated: renaming a file over
 * the object's path, or deleting it, drops a link of the old inode, which changes its link count and
 * ctime. (In-place writes change ctime too: they only cost a re-check.) */
static bool fd_ent_unchanged(fs_bucket_t *fb, fd_ent_t *e, const struct stat *st)
{
	pthread_mutex_lock(&fb->mu);
	bool same = st->st_nlink == e->nlink && st->st_ctim.tv_sec == e->ctime.tv_sec &&
		    st->st_ctim.tv_nsec == e->ctime.tv_nsec;
	pthread_mutex_unlock(&fb->mu);
	return same;
}

static void fd_ent_note(fs_bucket_t *fb, fd_ent_t *e, const struct stat *st)
{
	pthread_mutex_lock(&fb->mu);
	e->nlink = st->st_nlink;
	e->ctime = st->st_ctim;
	pthread_mutex_unlock(&fb->mu);
}

/* Remove e from the cache if it is still cached (the caller keeps its own reference). */
static void fd_cache_drop(fs_bucket_t *fb, fd_ent_t *e)
{
	pthread_mutex_lock(&fb->mu);
	int i = fd_cache_find_locked(fb, e->name, e->hash);
	if (i >= 0 && fb->slots[i] == e) {
		fd_ent_unref_locked(e);
		fb->slots[i] = NULL;
	}
	pthread_mutex_unlock(&fb->mu);
}

/* Cache e (the caller keeps its own reference): replaces name's entry if another reader cached one
 * meanwhile, else takes a free slot or evicts the least recently used one. */
static void fd_cache_put(fs_bucket_t *fb, fd_ent_t *e)
{
	pthread_mutex_lock(&fb->mu);
	int i = fd_cache_find_locked(fb, e->name, e->hash);
	if (i < 0) {
		uint64_t oldest = UINT64_MAX;
		for (int j = 0; j < FD_CACHE_SIZE; j++) {
			if (!fb->slots[j]) {
				i = j;
				break;
			}
			if (fb->slots[j]->used < oldest) {
				oldest = fb->slots[j]->used;
				i = j;
			}
		}
	}
	if (fb->slots[i])
		fd_ent_unref_locked(fb->slots[i]);
	e->refs++;
	e->used = ++fb->tick;
	fb->slots[i] = e;
	pthread_mutex_unlock(&fb->mu);
}

/* A referenced read fd of name (cached or newly opened) and its stat; release with fd_ent_release. */
static int fs_open_ref(bucket_t *b, const char *name, struct stat *stp, fd_ent_t **out, err_t *err)
{
	fs_bucket_t *fb = FB(b);
	char *path = fs_path(b, name);
	struct stat st;
	uint64_t h = hash_bytes(name, strlen(name));
	fd_ent_t *ent = fd_cache_ref(fb, name, h);
	if (ent && (fstat(ent->fd, &st) != 0 || !fd_ent_unchanged(fb, ent, &st))) {
		/* Links changed: keep the fd only if the path still names its inode. */
		struct stat pst;
		if (stat(path, &pst) == 0 && pst.st_dev == ent->dev && pst.st_ino == ent->ino) {
			fd_ent_note(fb, ent, &pst);
			st = pst;
		} else {
			fd_cache_drop(fb, ent);
			fd_ent_release(fb, ent);
			ent = NULL;
		}
	}
	if (!ent) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			free(path);
			if (e == ENOENT || e == ENOTDIR)
				return err_set(err, ERR_NOT_FOUND, "objstore: %s: object not found", name);
			errno = e;
			return err_errno(err, "objstore: %s: open", name);
		}
		if (fstat(fd, &st) != 0) {
			int rc = err_errno(err, "objstore: %s: fstat", name);
			close(fd);
			free(path);
			return rc;
		}
		if (S_ISDIR(st.st_mode)) {
			close(fd);
			free(path);
			return err_set(err, ERR_NOT_FOUND, "objstore: %s: object not found (a directory)", name);
		}
		ent = xcalloc(1, sizeof(*ent));
		ent->name = xstrdup(name);
		ent->hash = h;
		ent->fd = fd;
		ent->dev = st.st_dev;
		ent->ino = st.st_ino;
		ent->nlink = st.st_nlink;
		ent->ctime = st.st_ctim;
		ent->refs = 1;
		if (S_ISREG(st.st_mode)) /* FIFOs and devices are read once, never cached */
			fd_cache_put(fb, ent);
	}
	free(path);
	*stp = st;
	*out = ent;
	return 0;
}

static int fs_get(bucket_t *b, const char *name, int64_t off, int64_t len, bucket_sink_fn sink, void *arg,
                  err_t *err)
{
	fs_bucket_t *fb = FB(b);
	struct stat st;
	fd_ent_t *ent;
	int rc = fs_open_ref(b, name, &st, &ent, err);
	if (rc)
		return rc;
	if (off >= st.st_size && !(off == 0 && len < 0)) {
		rc = err_set(err, ERR_INVALID, "objstore: %s: range start %lld is beyond the object's size %lld", name,
			     (long long)off, (long long)st.st_size);
		goto out;
	}
	int64_t end = len < 0 || off + len > st.st_size ? st.st_size : off + len;
	char chunk[64 * 1024];
	while (off < end) {
		size_t want = (size_t)(end - off) < sizeof chunk ? (size_t)(end - off) : sizeof chunk;
		ssize_t r = pread(ent->fd, chunk, want, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = err_errno(err, "objstore: %s: read at offset %lld", name, (long long)off);
			goto out;
		}
		if (r == 0)
			break; /* truncated concurrently: return what exists */
		rc = sink(arg, chunk, (size_t)r);
		if (rc)
			goto out;
		off += r;
	}
out:
	fd_ent_release(fb, ent);
	return rc;
}

/* Up to this many bytes a batch of ranges is read on the calling thread, each range pread straight
 * into its destination: from the page cache that is memcpy speed, and starting threads for it cost
 * more than the reads (a small Series call made three batches, three pthread_creates, each with a
 * fresh stack to fault in). Larger batches go to the generic threaded reader (a cold disk serves
 * parallel reads better). */
#define FS_INLINE_RANGES_BYTES (4 << 20)

static int fs_read_range(bucket_t *b, bucket_range_t *r)
{
	struct stat st;
	fd_ent_t *ent;
	int rc = fs_open_ref(b, r->name, &st, &ent, &r->err);
	if (rc)
		return rc;
	if (r->off >= st.st_size) {
		rc = err_set(&r->err, ERR_INVALID,
		             "objstore: %s: range start %lld is beyond the object's size %lld", r->name,
		             (long long)r->off, (long long)st.st_size);
		goto out;
	}
	int64_t end = r->off + r->len > st.st_size ? st.st_size : r->off + r->len;
	while (r->off + r->got < end) {
		ssize_t n = pread(ent->fd, r->dst + r->got, (size_t)(end - r->off - r->got), r->off + r->got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = err_errno(&r->err, "objstore: %s: read at offset %lld", r->name,
			               (long long)(r->off + r->got));
			goto out;
		}
		if (n == 0)
			break; /* truncated concurrently: return what exists */
		r->got += n;
	}
out:
	fd_ent_release(FB(b), ent);
	return rc;
}

static int fs_get_ranges(bucket_t *b, bucket_range_t *r, size_t n, int concurrency)
{
	int64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += r[i].len;
	if (total > FS_INLINE_RANGES_BYTES && concurrency > 1 && n > 1)
		return bucket_get_ranges_threads(b, r, n, concurrency);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		r[i].got = 0;
		err_clear(&r[i].err);
		r[i].rc = fs_read_range(b, &r[i]);
		if (r[i].rc && !rc)
			rc = r[i].rc;
	}
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int copy_src(int fd, const bucket_src_t *src, const char *name, err_t *err)
{
	if (src->fd < 0) {
		if (write_all(fd, src->p, src->n) != 0)
			return err_errno(err, "objstore: %s: write", name);
		return 0;
	}
	char chunk[256 * 1024];
	int64_t off = 0;
	while (off < src->size) {
		size_t want = (size_t)(src->size - off) < sizeof chunk ? (size_t)(src->size - off) : sizeof chunk;
		ssize_t r = pread(src->fd, chunk, want, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_errno(err, "objstore: %s: read source at offset %lld", name, (long long)off);
		}
		if (r == 0)
			return err_set(err, ERR_IO, "objstore: %s: source file shrank to %lld bytes (expected %lld)",
				       name, (long long)off, (long long)src->size);
		if (write_all(fd, chunk, (size_t)r) != 0)
			return err_errno(err, "objstore: %s: write", name);
		off += r;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = xstrndup(path, (size_t)(slash - path));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

static int fs_put(bucket_t *b, const char *name, const bucket_src_t *src, err_t *err)
{
	char *path = fs_path(b, name);
	int rc = mkdirs_for(FB(b)->root, path, name, err);
	if (rc) {
		free(path);
		return rc;
	}
	const char *slash = strrchr(path, '/');
	buf_t tmp = BUF_INIT;
	buf_printf(&tmp, "%.*s/.%s" TMP_MARK "%ld-%llu", (int)(slash - path), path, slash + 1, (long)getpid(),
		   (unsigned long long)atomic_fetch_add(&tmp_seq, 1));
	int fd = open(tmp.p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = err_errno(err, "objstore: %s: create temp file", name);
		goto out;
	}
	rc = copy_src(fd, src, name, err);
	if (rc == 0 && fsync(fd) != 0)
		rc = err_errno(err, "objstore: %s: fsync", name);
	if (close(fd) != 0 && rc == 0)
		rc = err_errno(err, "objstore: %s: close", name);
	if (rc == 0 && rename(tmp.p, path) != 0)
		rc = err_errno(err, "objstore: %s: rename into place", name);
	if (rc) {
		unlink(tmp.p);
		goto out;
	}
	fd_cache_invalidate(FB(b), name);
	if (fsync_dir_of(path) != 0)
		rc = err_errno(err, "objstore: %s: fsync directory", name);
out:
	buf_release(&tmp);
	free(path);
	return rc;
}

static int fs_attrs(bucket_t *b, const char *name, bucket_attrs_t *out, err_t *err)
{
	char *path = fs_path(b, name);
	struct stat st;
	int r = stat(path, &st);
	free(path);
	if (r != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return err_set(err, ERR_NOT_FOUND, "objstore: %s: object not found", name);
		return err_errno(err, "objstore: %s: stat", name);
	}
	if (!S_ISREG(st.st_mode))
		return err_set(err, ERR_NOT_FOUND, "objstore: %s: object not found (not a regular file)", name);
	out->size = st.st_size;
	out->last_modified_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	return 0;
}

static int fs_del(bucket_t *b, const char *name, err_t *err)
{
	char *path = fs_path(b, name);
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		free(path);
		return err_set(err, ERR_NOT_FOUND, "objstore: %s: object not found (a directory)", name);
	}
	fd_cache_invalidate(FB(b), name);
	if (unlink(path) != 0) {
		int e = errno;
		free(path);
		if (e == ENOENT || e == ENOTDIR)
			return err_set(err, ERR_NOT_FOUND, "objstore: %s: object not found", name);
		errno = e;
		return err_errno(err, "objstore: %s: unlink", name);
	}
	/* Remove parents that became empty (object stores have no directories); stop at the root or at the
	 * first non-empty one. Races with a concurrent put are benign: its mkdir/open retries are not
	 * needed because rmdir fails on a non-empty directory. */
	size_t rn = strlen(FB(b)->root);
	for (char *s = strrchr(path, '/'); s && (size_t)(s - path) > rn; s = strrchr(path, '/')) {
		*s = 0;
		if (rmdir(path) != 0)
			break;
	}
	free(path);
	return 0;
}

typedef VEC(char *) names_t;

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append entries of <root>/<dir> (dir is "" or ends in '/') to out. */
static int walk(bucket_t *b, const char *dir, bool recursive, names_t *out, err_t *err)
{
	char *path = dir[0] ? fs_path(b, dir) : xstrdup(FB(b)->root);
	DIR *d = opendir(path);
	free(path);
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return err_errno(err, "objstore: iter %s", dir[0] ? dir : "(root)");
	}
	int rc = 0;
	struct dirent *de;
	buf_t name = BUF_INIT;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || is_tmp_name(de->d_name))
			continue;
		buf_reset(&name);
		buf_puts(&name, dir);
		buf_puts(&name, de->d_name);
		bool isdir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
			char *full = fs_path(b, name.p);
			struct stat st;
			isdir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
			free(full);
		}
		if (isdir) {
			buf_putc(&name, '/');
			if (recursive) {
				rc = walk(b, name.p, true, out, err);
				if (rc)
					break;
			} else {
				VEC_PUSH(out, xstrdup(name.p));
			}
		} else {
			VEC_PUSH(out, xstrdup(name.p));
		}
	}
	closedir(d);
	buf_release(&name);
	return rc;
}

static int fs_iter(bucket_t *b, const char *dir, int flags, bucket_iter_fn fn, void *arg, err_t *err)
{
	names_t names = {0};
	int rc = walk(b, dir, flags & BUCKET_ITER_RECURSIVE, &names, err);
	if (rc == 0 && names.n)
		qsort(names.v, names.n, sizeof(char *), cmp_names);
	for (size_t i = 0; rc == 0 && i < names.n; i++)
		rc = fn(arg, names.v[i]);
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	VEC_FREE(&names);
	return rc;
}

static void fs_free(bucket_t *b)
{
	fs_bucket_t *fb = FB(b);
	for (int i = 0; i < FD_CACHE_SIZE; i++)
		if (fb->slots[i])
			fd_ent_unref_locked(fb->slots[i]); /* no readers left: bucket_free is not concurrent */
	pthread_mutex_destroy(&fb->mu);
	free(fb->root);
	free(b->name);
	free(b);
}

static const bucket_ops_t fs_ops = {
    .type = "FILESYSTEM",
    .get = fs_get,
    .put = fs_put,
    .attrs = fs_attrs,
    .del = fs_del,
    .iter = fs_iter,
    .get_ranges = fs_get_ranges, /* small batches inline, large ones threaded */
    .free = fs_free,
};

int fs_bucket_new(const char *dir, bucket_t **out, err_t *err)
{
	if (!dir || !*dir)
		return err_set(err, ERR_INVALID, "objstore: FILESYSTEM: config.directory is empty");
	/* mkdir -p */
	char *p = xstrdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			int rc = err_errno(err, "objstore: FILESYSTEM: create directory %s", p);
			free(p);
			return rc;
		}
		*s = '/';
	}
	if (mkdir(p, 0755) != 0 && errno != EEXIST) {
		int rc = err_errno(err, "objstore: FILESYSTEM: create directory %s", p);
		free(p);
		return rc;
	}
	free(p);
	char *root = realpath(dir, NULL);
	if (!root)
		return err_errno(err, "objstore: FILESYSTEM: resolve directory %s", dir);
	struct stat st;
	if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		free(root);
		return err_set(err, ERR_INVALID, "objstore: FILESYSTEM: %s is not a directory", dir);
	}
	fs_bucket_t *b = xcalloc(1, sizeof(*b));
	b->base.ops = &fs_ops;
	b->root = root;
	pthread_mutex_init(&b->mu, NULL);
	b->base.name = xstrdup(root);
	*out = &b->base;
	return 0;
}
