/*
 * chunkfile.c — chunk segment writer and mmap reader.
 */
#include "tsdb/chunkfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/mapfile.h"
#include "base/varint.h"

#define MAX_LEN_FIELD 5
#define FLUSH_AT (1u << 20)

static int write_all(int fd, const void *p, size_t n, const char *path, err_t *err)
{
	const char *c = p;
	while (n) {
		ssize_t k = write(fd, c, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return err_errno(err, "write %s", path);
		}
		c += k, n -= (size_t)k;
	}
	return 0;
}

static char *seg_path(const chunkfile_writer_t *w, uint32_t seq)
{
	size_t n = strlen(w->dir) + 16;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%06u", w->dir, seq);
	return p;
}

static int flush(chunkfile_writer_t *w, err_t *err)
{
	if (!w->buf.n)
		return 0;
	char *path = seg_path(w, w->nseg);
	int rc = write_all(w->fd, w->buf.p, w->buf.n, path, err);
	free(path);
	buf_reset(&w->buf);
	return rc;
}

static int finish_segment(chunkfile_writer_t *w, err_t *err)
{
	if (w->fd < 0)
		return 0;
	int rc = flush(w, err);
	if (!rc && fsync(w->fd) != 0)
		rc = err_errno(err, "fsync %s/%06u", w->dir, w->nseg);
	close(w->fd);
	w->fd = -1;
	return rc;
}

static int cut(chunkfile_writer_t *w, err_t *err)
{
	int rc = finish_segment(w, err);
	if (rc)
		return rc;
	w->nseg++;
	char *path = seg_path(w, w->nseg);
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		rc = err_errno(err, "create %s", path);
		free(path);
		return rc;
	}
	free(path);
	uint8_t hdr[CHUNKFILE_HEADER_SIZE] = {0};
	be32_put(hdr, CHUNKFILE_MAGIC);
	hdr[4] = 1;
	buf_append(&w->buf, hdr, sizeof hdr);
	w->n = CHUNKFILE_HEADER_SIZE;
	w->total_bytes += CHUNKFILE_HEADER_SIZE;
	return 0;
}

int chunkfile_writer_open(chunkfile_writer_t *w, const char *dir, uint64_t seg_size, err_t *err)
{
	memset(w, 0, sizeof *w);
	w->fd = -1;
	buf_init(&w->buf);
	w->seg_size = seg_size ? seg_size : CHUNKFILE_DEFAULT_SEGMENT_SIZE;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return err_errno(err, "mkdir %s", dir);
	w->dir = xstrdup(dir);
	return 0;
}

int chunkfile_writer_write(chunkfile_writer_t *w, const chunk_t *chks, size_t n, uint64_t *refs, err_t *err)
{
	/* Batching as Prometheus' Writer.WriteChunks: a new batch (and segment) starts when adding a chunk
	 * would overflow the segment; a lone oversized chunk still goes into one segment. */
	size_t i = 0;
	int rc;
	if (w->fd < 0 && (rc = cut(w, err)))
		return rc;
	while (i < n) {
		uint64_t batch = 0;
		size_t j = i;
		bool first_batch = (i == 0);
		for (; j < n; j++) {
			uint64_t sz = MAX_LEN_FIELD + 1 + chks[j].len + 4;
			bool cut_here;
			if (first_batch && w->n > CHUNKFILE_HEADER_SIZE)
				cut_here = batch + sz + w->n > w->seg_size;
			else
				cut_here = j != i && batch + sz + CHUNKFILE_HEADER_SIZE > w->seg_size;
			if (cut_here && j == i) {
				/* the current segment cannot take even the first chunk: cut before it */
				if ((rc = cut(w, err)))
					return rc;
				first_batch = false;
				batch = sz;
				continue;
			}
			if (cut_here)
				break;
			batch += sz;
		}
		for (size_t k = i; k < j; k++) {
			const chunk_t *c = &chks[k];
			refs[k] = ((uint64_t)(w->nseg - 1) << 32) | w->n;
			uint8_t hdr[VARINT_MAX_LEN + 1];
			size_t hl = uvarint_put(hdr, c->len);
			hdr[hl] = c->enc;
			uint32_t crc = crc32c(0, &c->enc, 1);
			crc = crc32c(crc, c->data, c->len);
			buf_append(&w->buf, hdr, hl + 1);
			buf_append(&w->buf, c->data, c->len);
			buf_put_be32(&w->buf, crc);
			uint64_t rec = hl + 1 + c->len + 4;
			w->n += rec;
			w->total_bytes += rec;
			if (w->buf.n >= FLUSH_AT && (rc = flush(w, err)))
				return rc;
		}
		i = j;
		if (i < n && (rc = cut(w, err)))
			return rc;
	}
	return 0;
}

int chunkfile_writer_close(chunkfile_writer_t *w, err_t *err)
{
	int rc = finish_segment(w, err);
	buf_release(&w->buf);
	free(w->dir);
	w->dir = NULL;
	return rc;
}

void chunkfile_writer_abort(chunkfile_writer_t *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	buf_release(&w->buf);
	free(w->dir);
	w->dir = NULL;
}

/* ---- reader ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int chunkfile_reader_open(chunkfile_reader_t *r, const char *dir, err_t *err)
{
	memset(r, 0, sizeof *r);
	DIR *d = opendir(dir);
	if (!d)
		return err_errno(err, "open chunks dir %s", dir);
	uint64_t *nums = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t v;
		if (!de->d_name[0] || !str_to_u64(str_c(de->d_name), &v))
			continue;
		bool digits = true;
		for (const char *c = de->d_name; *c; c++)
			digits &= (*c >= '0' && *c <= '9');
		if (!digits)
			continue;
		if (n == cap) {
			cap = alloc_grow_cap(cap, n + 1);
			nums = xreallocarray(nums, cap, sizeof *nums);
		}
		nums[n++] = v;
	}
	closedir(d);
	if (n)
		qsort(nums, n, sizeof *nums, cmp_u64);
	r->seg = xcalloc(n ? n : 1, sizeof *r->seg);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		chunkfile_seg_t *s = &r->seg[i];
		size_t pl = strlen(dir) + 32;
		s->path = xmalloc(pl);
		snprintf(s->path, pl, "%s/%06llu", dir, (unsigned long long)nums[i]);
		r->nseg = i + 1;
		if ((rc = mapfile_map(s->path, CHUNKFILE_HEADER_SIZE, &s->p, &s->len, err)))
			break;
		if (!s->p) {
			rc = err_set(err, ERR_CORRUPT, "chunks: %s: offset 0: file of %zu bytes is shorter than its header",
				     s->path, s->len);
			break;
		}
		r->total_bytes += s->len;
		if (be32_get(s->p) != CHUNKFILE_MAGIC) {
			rc = err_set(err, ERR_CORRUPT, "chunks: %s: offset 0: bad magic 0x%08x", s->path, be32_get(s->p));
			break;
		}
		if (s->p[4] != 1) {
			rc = err_set(err, ERR_CORRUPT, "chunks: %s: offset 4: unsupported version %u", s->path, s->p[4]);
			break;
		}
	}
	free(nums);
	if (rc)
		chunkfile_reader_close(r);
	return rc;
}

void chunkfile_reader_close(chunkfile_reader_t *r)
{
	for (size_t i = 0; i < r->nseg; i++) {
		mapfile_unmap(r->seg[i].p, r->seg[i].len);
		free(r->seg[i].path);
	}
	free(r->seg);
	memset(r, 0, sizeof *r);
}

int chunkfile_reader_get(const chunkfile_reader_t *r, uint64_t ref, chunk_t *out, err_t *err)
{
	uint64_t si = ref >> 32, off = ref & 0xffffffffu;
	if (si >= r->nseg)
		return err_set(err, ERR_CORRUPT, "chunks: ref 0x%llx: segment %llu does not exist (%zu segments)",
			       (unsigned long long)ref, (unsigned long long)si, r->nseg);
	const chunkfile_seg_t *s = &r->seg[si];
	if (off < CHUNKFILE_HEADER_SIZE || off + MAX_LEN_FIELD > s->len)
		return err_set(err, ERR_CORRUPT, "chunks: %s: offset %llu: chunk reference past end of file (%zu bytes)",
			       s->path, (unsigned long long)off, s->len);
	uint64_t len;
	int k = uvarint_get(s->p + off, s->p + s->len, &len);
	if (k <= 0 || k > MAX_LEN_FIELD)
		return err_set(err, ERR_CORRUPT, "chunks: %s: offset %llu: bad chunk length varint", s->path,
			       (unsigned long long)off);
	uint64_t start = off + (uint64_t)k;
	if (len > s->len || start + 1 + len + 4 > s->len)
		return err_set(err, ERR_CORRUPT, "chunks: %s: offset %llu: chunk of %llu bytes runs past end of file (%zu bytes)",
			       s->path, (unsigned long long)off, (unsigned long long)len, s->len);
	const uint8_t *enc = s->p + start;
	uint32_t want = be32_get(enc + 1 + len);
	uint32_t got = crc32c(0, enc, 1 + (size_t)len);
	if (want != got)
		return err_set(err, ERR_CORRUPT, "chunks: %s: offset %llu: bad CRC32C (stored 0x%08x, computed 0x%08x)",
			       s->path, (unsigned long long)off, want, got);
	out->enc = enc[0];
	out->data = enc + 1;
	out->len = (size_t)len;
	return 0;
}
