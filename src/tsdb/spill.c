/*
 * spill.c — unlinked temp files with buffered appends and sequential range readers.
 */
#include "tsdb/spill.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"

#define SPILL_OUT_BUF (256u << 10)

void spill_init(spill_t *s)
{
	memset(s, 0, sizeof *s);
	s->fd = -1;
	buf_init(&s->out);
}

int spill_open(spill_t *s, const char *prefix, err_t *err)
{
	BUG_ON(s->fd >= 0);
	size_t n = strlen(prefix) + 32;
	char *path = xmalloc(n);
	snprintf(path, n, "%s.spill-XXXXXX", prefix);
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		int rc = err_errno(err, "create temp file %s", path);
		free(path);
		return rc;
	}
	if (unlink(path) != 0) {
		int rc = err_errno(err, "unlink temp file %s", path);
		close(fd);
		unlink(path);
		free(path);
		return rc;
	}
	s->fd = fd;
	s->path = path;
	s->end = 0;
	buf_reset(&s->out);
	return 0;
}

bool spill_is_open(const spill_t *s)
{
	return s->fd >= 0;
}

int spill_flush(spill_t *s, err_t *err)
{
	const char *p = s->out.p;
	size_t n = s->out.n;
	uint64_t off = s->end - n;
	while (n) {
		ssize_t k = pwrite(s->fd, p, n, (off_t)off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return err_errno(err, "write temp file %s at offset %llu", s->path, (unsigned long long)off);
		}
		p += k, n -= (size_t)k, off += (uint64_t)k;
	}
	buf_reset(&s->out);
	return 0;
}

int spill_append(spill_t *s, const void *p, size_t n, err_t *err)
{
	BUG_ON(s->fd < 0);
	buf_append(&s->out, p, n);
	s->end += n;
	return s->out.n >= SPILL_OUT_BUF ? spill_flush(s, err) : 0;
}

void spill_close(spill_t *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->path);
	s->path = NULL;
	buf_release(&s->out);
}

void spill_reader_init(spill_reader_t *rd, spill_t *s, uint64_t off, uint64_t end, size_t bufsize)
{
	memset(rd, 0, sizeof *rd);
	rd->s = s;
	rd->pos = off;
	rd->end = end;
	rd->cap = bufsize ? bufsize : 64;
	rd->buf = xmalloc(rd->cap);
}

uint64_t spill_reader_left(const spill_reader_t *rd)
{
	return (rd->w - rd->r) + (rd->end - rd->pos);
}

int spill_reader_need(spill_reader_t *rd, size_t n, const uint8_t **p, err_t *err)
{
	if (rd->w - rd->r >= n) {
		*p = rd->buf + rd->r;
		return 0;
	}
	if (spill_reader_left(rd) < n)
		return err_set(err, ERR_CORRUPT, "temp file %s: offset %llu: %zu bytes wanted, %llu left in the run",
			       rd->s->path, (unsigned long long)(rd->pos - (rd->w - rd->r)), n,
			       (unsigned long long)spill_reader_left(rd));
	if (rd->s->out.n) {
		int rc = spill_flush(rd->s, err);
		if (rc)
			return rc;
	}
	memmove(rd->buf, rd->buf + rd->r, rd->w - rd->r);
	rd->w -= rd->r;
	rd->r = 0;
	if (n > rd->cap) {
		rd->cap = n;
		rd->buf = xrealloc(rd->buf, rd->cap);
	}
	while (rd->w < n) {
		size_t want = rd->cap - rd->w;
		if (want > rd->end - rd->pos)
			want = (size_t)(rd->end - rd->pos);
		ssize_t k = pread(rd->s->fd, rd->buf + rd->w, want, (off_t)rd->pos);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return err_errno(err, "read temp file %s at offset %llu", rd->s->path, (unsigned long long)rd->pos);
		if (k == 0)
			return err_set(err, ERR_IO, "read temp file %s at offset %llu: unexpected end of file", rd->s->path,
				       (unsigned long long)rd->pos);
		rd->w += (size_t)k;
		rd->pos += (uint64_t)k;
	}
	*p = rd->buf;
	return 0;
}

void spill_reader_skip(spill_reader_t *rd, size_t n)
{
	BUG_ON(n > rd->w - rd->r);
	rd->r += n;
}

void spill_reader_release(spill_reader_t *rd)
{
	free(rd->buf);
	rd->buf = NULL;
}
