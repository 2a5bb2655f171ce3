/*
 * wal.c — Prometheus WAL segments: writer with group commit, segment reader, repair.
 */
#include "tsdb/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/mapfile.h"
#include "base/varint.h"
#include "base/vec.h"

/* A decompressed record larger than this is treated as corruption (a segment is at most 256 MiB). */
#define WAL_MAX_RECORD (1u << 30)

struct wal {
	char *dir;
	wal_opts_t o;
	uint64_t pages_per_seg;
	pthread_mutex_t mu; /* everything below up to sync_mu */
	int fd, seg;
	uint8_t *page;       /* WAL_PAGE_SIZE bytes */
	size_t alloc;        /* bytes of the page in use */
	size_t flushed;      /* bytes of the page already written */
	uint64_t done_pages; /* whole pages written to the current segment */
	uint64_t logged;     /* tickets handed out */
	uint64_t bytes;
	int sticky; /* first write/sync error, 0 if none */
	err_t sticky_err;
	buf_t zbuf;
	VEC(int) closing; /* fds of finished segments, closed by the next sync */
	pthread_mutex_t sync_mu;
	uint64_t durable; /* tickets known durable */
	void (*observe)(void *, double);
	void *observe_arg;
};

void wal_segment_path(char *out, const char *dir, int seg)
{
	snprintf(out, 4096, "%s/%08d", dir, seg);
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int wal_segments(const char *dir, int *first, int *last, err_t *err)
{
	*first = *last = -1;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_errno(err, "wal: open %s", dir);
	}
	VEC(int) v = {0};
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!all_digits(de->d_name) || strlen(de->d_name) > 9)
			continue;
		VEC_PUSH(&v, atoi(de->d_name));
	}
	closedir(d);
	int rc = 0;
	if (v.n) {
		qsort(v.v, v.n, sizeof(int), cmp_int);
		for (size_t i = 1; i < v.n; i++)
			if (v.v[i] != v.v[i - 1] + 1) {
				rc = err_set(err, ERR_CORRUPT,
				             "wal: %s: segments are not sequential: %08d follows %08d", dir,
				             v.v[i], v.v[i - 1]);
				break;
			}
		*first = v.v[0];
		*last = v.v[v.n - 1];
	}
	VEC_FREE(&v);
	return rc;
}

/* Record a sticky failure (mu held). */
static int fail(wal_t *w, err_t *err, const char *what)
{
	if (!w->sticky) {
		w->sticky = err_errno(&w->sticky_err, "wal: %s segment %08d in %s", what, w->seg, w->dir);
		if (!w->sticky)
			w->sticky = ERR_IO;
	}
	if (err)
		*err = w->sticky_err;
	return w->sticky;
}

static int sticky(wal_t *w, err_t *err)
{
	if (err)
		*err = w->sticky_err;
	return w->sticky;
}

static int create_segment(wal_t *w, int seg, err_t *err)
{
	char path[4096];
	wal_segment_path(path, w->dir, seg);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_errno(err, "wal: create %s", path);
	int rc = fileio_fsync_dir(w->dir, err);
	if (rc) {
		close(fd);
		return rc;
	}
	w->fd = fd;
	w->seg = seg;
	w->alloc = w->flushed = 0;
	w->done_pages = 0;
	memset(w->page, 0, WAL_PAGE_SIZE);
	return 0;
}

/* Write the unwritten part of the page; with clear (or a full page) pad it and start a new one. */
static int flush_page(wal_t *w, bool clear, err_t *err)
{
	if (clear || WAL_PAGE_SIZE - w->alloc < WAL_REC_HEADER) {
		clear = true;
		w->alloc = WAL_PAGE_SIZE; /* the zeros up to the page end */
	}
	if (w->alloc > w->flushed) {
		if (fileio_write_all(w->fd, w->page + w->flushed, w->alloc - w->flushed) != 0)
			return fail(w, err, "write");
		w->bytes += w->alloc - w->flushed;
		w->flushed = w->alloc;
	}
	if (clear) {
		memset(w->page, 0, WAL_PAGE_SIZE);
		w->alloc = w->flushed = 0;
		w->done_pages++;
	}
	return 0;
}

/* mu held: finish the current segment (padded, fsynced; its fd closed by the next sync) and start
 * the next. */
static int next_segment_locked(wal_t *w, err_t *err)
{
	if (w->alloc > 0 && flush_page(w, true, err))
		return w->sticky;
	if (fdatasync(w->fd) != 0)
		return fail(w, err, "fsync");
	VEC_PUSH(&w->closing, w->fd);
	w->fd = -1;
	int rc = create_segment(w, w->seg + 1, err);
	if (rc) {
		w->sticky = rc;
		w->sticky_err = *err;
	}
	return rc;
}

int wal_open(wal_t **out, const char *dir, const wal_opts_t *opts, err_t *err)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return err_errno(err, "wal: mkdir %s", dir);
	int first, last;
	int rc = wal_segments(dir, &first, &last, err);
	if (rc)
		return rc;
	wal_t *w = xcalloc(1, sizeof *w);
	w->dir = xstrdup(dir);
	if (opts)
		w->o = *opts;
	if (w->o.segment_size == 0)
		w->o.segment_size = WAL_DEFAULT_SEGMENT_SIZE;
	w->pages_per_seg = w->o.segment_size / WAL_PAGE_SIZE;
	if (w->pages_per_seg < 2)
		w->pages_per_seg = 2;
	w->page = xcalloc(1, WAL_PAGE_SIZE);
	buf_init(&w->zbuf);
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->sync_mu, NULL);
	w->fd = -1;
	if ((rc = create_segment(w, last + 1, err)) != 0) {
		free(w->page);
		free(w->dir);
		buf_release(&w->zbuf);
		pthread_mutex_destroy(&w->mu);
		pthread_mutex_destroy(&w->sync_mu);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

const char *wal_dir(const wal_t *w)
{
	return w->dir;
}

void wal_set_fsync_observer(wal_t *w, void (*fn)(void *arg, double seconds), void *arg)
{
	w->observe = fn;
	w->observe_arg = arg;
}

/* mu held: frame one (possibly compressed) record into pages. */
static int log_one(wal_t *w, const uint8_t *rec, size_t n, bool compressed, err_t *err)
{
	uint64_t cap = w->pages_per_seg * (WAL_PAGE_SIZE - WAL_REC_HEADER);
	if (n > cap)
		return err_set(err, ERR_LIMIT,
		               "wal: record of %zu bytes does not fit in a segment of %llu bytes", n,
		               (unsigned long long)w->o.segment_size);
	size_t here =
	    WAL_PAGE_SIZE - w->alloc > WAL_REC_HEADER ? WAL_PAGE_SIZE - w->alloc - WAL_REC_HEADER : 0;
	uint64_t left = here + (w->pages_per_seg - w->done_pages - 1) * (WAL_PAGE_SIZE - WAL_REC_HEADER);
	if (w->done_pages >= w->pages_per_seg || n > left) {
		int rc = next_segment_locked(w, err);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i == 0 || n > 0; i++) {
		size_t room = WAL_PAGE_SIZE - w->alloc - WAL_REC_HEADER;
		size_t l = n < room ? n : room;
		uint8_t typ;
		if (i == 0 && l == n)
			typ = WAL_FRAG_FULL;
		else if (l == n)
			typ = WAL_FRAG_LAST;
		else if (i == 0)
			typ = WAL_FRAG_FIRST;
		else
			typ = WAL_FRAG_MIDDLE;
		if (compressed)
			typ |= WAL_FRAG_SNAPPY;
		uint8_t *h = w->page + w->alloc;
		h[0] = typ;
		be16_put(h + 1, (uint16_t)l);
		be32_put(h + 3, crc32c(0, rec, l));
		memcpy(h + WAL_REC_HEADER, rec, l);
		w->alloc += l + WAL_REC_HEADER;
		if (WAL_PAGE_SIZE - w->alloc < WAL_REC_HEADER && flush_page(w, true, err))
			return w->sticky;
		rec += l;
		n -= l;
	}
	return 0;
}

int wal_log(wal_t *w, const str_t *recs, size_t n, uint64_t *seq, err_t *err)
{
	pthread_mutex_lock(&w->mu);
	int rc = w->sticky ? sticky(w, err) : 0;
	for (size_t i = 0; !rc && i < n; i++) {
		const uint8_t *p = (const uint8_t *)recs[i].p;
		size_t len = recs[i].n;
		bool compressed = false;
		if (w->o.compress && len > 0) {
			size_t cl = snappy_max_compressed_length(len);
			buf_reset(&w->zbuf);
			buf_reserve(&w->zbuf, cl);
			if (snappy_compress((const char *)p, len, w->zbuf.p, &cl) == SNAPPY_OK) {
				p = (const uint8_t *)w->zbuf.p;
				len = cl;
				compressed = true;
			}
		}
		rc = log_one(w, p, len, compressed, err);
	}
	if (!rc) {
		w->logged++;
		if (seq)
			*seq = w->logged;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int wal_sync(wal_t *w, uint64_t seq, err_t *err)
{
	pthread_mutex_lock(&w->sync_mu);
	int rc = 0;
	if (w->durable < seq) {
		pthread_mutex_lock(&w->mu);
		rc = w->sticky ? sticky(w, err) : 0;
		uint64_t target = w->logged;
		int fd = w->fd;
		if (!rc && w->alloc > w->flushed)
			rc = flush_page(w, false, err);
		pthread_mutex_unlock(&w->mu);
		if (!rc) {
			uint64_t t0 = clock_mono_ns();
			if (fdatasync(fd) != 0) {
				pthread_mutex_lock(&w->mu);
				rc = fail(w, err, "fsync");
				pthread_mutex_unlock(&w->mu);
			} else {
				if (w->observe)
					w->observe(w->observe_arg, clock_since_s(t0));
				w->durable = target;
			}
		}
	}
	/* Segments finished before this sync were fsynced when they were finished. */
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->closing.n; i++)
		close(w->closing.v[i]);
	VEC_CLEAR(&w->closing);
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_unlock(&w->sync_mu);
	return rc;
}

int wal_flush(wal_t *w, err_t *err)
{
	pthread_mutex_lock(&w->sync_mu); /* closing fds are closed under it (a wal_sync may be using one) */
	pthread_mutex_lock(&w->mu);
	int rc = w->sticky ? sticky(w, err) : 0;
	if (!rc && w->alloc > w->flushed)
		rc = flush_page(w, false, err);
	for (size_t i = 0; i < w->closing.n; i++)
		close(w->closing.v[i]);
	VEC_CLEAR(&w->closing);
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_unlock(&w->sync_mu);
	return rc;
}

int wal_next_segment(wal_t *w, int *seg, err_t *err)
{
	pthread_mutex_lock(&w->mu);
	int rc = w->sticky ? sticky(w, err) : next_segment_locked(w, err);
	if (seg)
		*seg = w->seg;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int wal_current_segment(wal_t *w)
{
	pthread_mutex_lock(&w->mu);
	int s = w->seg;
	pthread_mutex_unlock(&w->mu);
	return s;
}

uint64_t wal_bytes_written(wal_t *w)
{
	pthread_mutex_lock(&w->mu);
	uint64_t b = w->bytes;
	pthread_mutex_unlock(&w->mu);
	return b;
}

int wal_truncate(wal_t *w, int before, err_t *err)
{
	int first, last, cur = wal_current_segment(w);
	int rc = wal_segments(w->dir, &first, &last, err);
	if (rc || first < 0)
		return rc;
	for (int s = first; s < before && s < cur; s++) {
		char path[4096];
		wal_segment_path(path, w->dir, s);
		if (unlink(path) != 0 && errno != ENOENT)
			return err_errno(err, "wal: delete %s", path);
	}
	return 0;
}

int wal_close(wal_t *w, err_t *err)
{
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	int rc = w->sticky ? sticky(w, err) : 0;
	if (!rc && w->alloc > 0)
		rc = flush_page(w, true, err);
	if (!rc && fdatasync(w->fd) != 0)
		rc = fail(w, err, "fsync");
	pthread_mutex_unlock(&w->mu);
	if (w->fd >= 0)
		close(w->fd);
	for (size_t i = 0; i < w->closing.n; i++)
		close(w->closing.v[i]);
	VEC_FREE(&w->closing);
	pthread_mutex_destroy(&w->mu);
	pthread_mutex_destroy(&w->sync_mu);
	buf_release(&w->zbuf);
	free(w->page);
	free(w->dir);
	free(w);
	return rc;
}

/* ---- reader ---- */

int wal_reader_open(wal_reader_t *r, const char *path, err_t *err)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->rec);
	buf_init(&r->zbuf);
	int rc = mapfile_map(path, 1, &r->p, &r->len, err);
	if (rc)
		return rc;
	r->path = xstrdup(path);
	return 0;
}

void wal_reader_close(wal_reader_t *r)
{
	if (r->p)
		mapfile_unmap(r->p, r->len);
	free(r->path);
	buf_release(&r->rec);
	buf_release(&r->zbuf);
	memset(r, 0, sizeof *r);
}

static int corrupt(wal_reader_t *r, size_t off, err_t *err, const char *what)
{
	return err_set(err, ERR_CORRUPT, "wal: %s: offset %zu: %s", r->path, off, what);
}

int wal_reader_next(wal_reader_t *r, str_t *rec, err_t *err)
{
	buf_reset(&r->rec);
	buf_reset(&r->zbuf);
	int nfrag = 0;
	bool snappy = false;
	for (;;) {
		if (r->off >= r->len) {
			if (nfrag)
				return corrupt(r, r->off, err, "last record is torn");
			return 0;
		}
		uint8_t h0 = r->p[r->off];
		int typ = h0 & 7;
		if (typ == WAL_FRAG_PAGE_TERM) {
			size_t end = (r->off / WAL_PAGE_SIZE + 1) * WAL_PAGE_SIZE;
			if (end > r->len)
				return corrupt(r, r->off, err, "page padding cut short");
			for (size_t i = r->off; i < end; i++)
				if (r->p[i])
					return corrupt(r, i, err, "unexpected non-zero byte in padded page");
			r->off = end;
			if (!nfrag)
				r->valid_end = r->off;
			continue;
		}
		if (r->off + WAL_REC_HEADER > r->len)
			return corrupt(r, r->off, err, "fragment header cut short");
		size_t flen = be16_get(r->p + r->off + 1);
		uint32_t crc = be32_get(r->p + r->off + 3);
		if (flen > WAL_PAGE_SIZE - WAL_REC_HEADER ||
		    r->off % WAL_PAGE_SIZE + WAL_REC_HEADER + flen > WAL_PAGE_SIZE)
			return corrupt(r, r->off, err, "fragment crosses a page boundary");
		if (r->off + WAL_REC_HEADER + flen > r->len)
			return corrupt(r, r->off, err, "fragment cut short");
		const uint8_t *data = r->p + r->off + WAL_REC_HEADER;
		if (crc32c(0, data, flen) != crc)
			return corrupt(r, r->off, err, "fragment checksum mismatch");
		if (typ > WAL_FRAG_LAST || (h0 & ~(7 | WAL_FRAG_SNAPPY)))
			return corrupt(r, r->off, err, "unexpected fragment type");
		bool first = typ == WAL_FRAG_FULL || typ == WAL_FRAG_FIRST;
		if (first != (nfrag == 0))
			return corrupt(r, r->off, err,
			               nfrag ? "record starts inside another" : "fragment without a first");
		snappy = (h0 & WAL_FRAG_SNAPPY) != 0;
		buf_append(snappy ? &r->zbuf : &r->rec, data, flen);
		r->off += WAL_REC_HEADER + flen;
		nfrag++;
		if (typ == WAL_FRAG_FULL || typ == WAL_FRAG_LAST)
			break;
	}
	if (snappy && r->zbuf.n) {
		size_t ul;
		if (snappy_uncompressed_length(r->zbuf.p, r->zbuf.n, &ul) != SNAPPY_OK || ul > WAL_MAX_RECORD)
			return corrupt(r, r->valid_end, err, "bad snappy record");
		buf_reserve(&r->rec, ul);
		if (snappy_uncompress(r->zbuf.p, r->zbuf.n, r->rec.p, &ul) != SNAPPY_OK)
			return corrupt(r, r->valid_end, err, "bad snappy record");
		r->rec.n = ul;
	}
	r->valid_end = r->off;
	r->records++;
	*rec = buf_str(&r->rec);
	return 1;
}

int wal_repair(const char *dir, int seg, size_t valid_end, err_t *err)
{
	char path[4096];
	wal_segment_path(path, dir, seg);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(err, "wal: repair: open %s", path);
	int rc = 0;
	if (ftruncate(fd, (off_t)valid_end) != 0) {
		rc = err_errno(err, "wal: repair: truncate %s", path);
	} else if (valid_end % WAL_PAGE_SIZE) {
		size_t pad = WAL_PAGE_SIZE - valid_end % WAL_PAGE_SIZE;
		uint8_t *z = xcalloc(1, pad);
		if (lseek(fd, (off_t)valid_end, SEEK_SET) < 0 || fileio_write_all(fd, z, pad) != 0)
			rc = err_errno(err, "wal: repair: pad %s", path);
		free(z);
	}
	if (!rc && fsync(fd) != 0)
		rc = err_errno(err, "wal: repair: fsync %s", path);
	close(fd);
	if (rc)
		return rc;
	int first, last;
	if ((rc = wal_segments(dir, &first, &last, err)) != 0)
		return rc;
	for (int s = seg + 1; s <= last; s++) {
		wal_segment_path(path, dir, s);
		if (unlink(path) != 0 && errno != ENOENT)
			return err_errno(err, "wal: repair: delete %s", path);
	}
	return fileio_fsync_dir(dir, err);
}
