/*
 * headchunks.c — chunks_head/ files: buffered writer, shared mappings, open-time check and repair.
 */
#include "tsdb/headchunks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/varint.h"
#include "base/vec.h"

#define WBUF_SIZE (1u << 20)
/* series ref, mint, maxt, encoding, uvarint len (<= 5 bytes for a chunk), CRC */
#define ENTRY_OVERHEAD (8 + 8 + 8 + 1 + 5 + 4)

typedef struct hfile {
	uint32_t num;
	int fd;             /* only for the file being written, else -1 */
	const uint8_t *map; /* read-only mapping */
	size_t maplen;      /* bytes mapped */
	uint64_t size;      /* bytes in the file (written ones; buffered bytes not included) */
	bool preexisting;   /* existed at open (iterate walks these) */
} hfile_t;

struct headchunks {
	char *dir;
	pthread_mutex_t mu;
	VEC(hfile_t) files; /* ascending num; the last is the one being written */
	uint8_t *wbuf;
	size_t wn; /* buffered bytes of the last file */
};

static void file_path(char *out, const char *dir, uint32_t num)
{
	snprintf(out, 4096, "%s/%06u", dir, num);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Walk the entries of a mapped file; returns the offset where valid entries end (== len when the
 * whole file is good). fn may be NULL. */
static size_t scan(const hfile_t *f, const uint8_t *p, size_t len, headchunks_fn fn, void *arg, int *stop)
{
	size_t off = HEADCHUNKS_HEADER;
	while (off < len) {
		if (len - off < 8 + 8 + 8 + 1 + 1)
			break;
		const uint8_t *e = p + off;
		uint64_t dl;
		int k = uvarint_get(e + 25, p + len, &dl);
		if (k <= 0 || dl > len)
			break;
		size_t body = 25 + (size_t)k + (size_t)dl;
		if (off + body + 4 > len)
			break;
		if (crc32c(0, e, body) != be32_get(e + body))
			break;
		if (fn) {
			uint64_t ref = ((uint64_t)f->num << 32) | off;
			*stop = fn(arg, be64_get(e), ref, (int64_t)be64_get(e + 8), (int64_t)be64_get(e + 16),
			           e[24]);
			if (*stop)
				return off;
		}
		off += body + 4;
	}
	return off;
}

static int new_file(headchunks_t *hc, err_t *err)
{
	uint32_t num = hc->files.n ? VEC_LAST(&hc->files).num + 1 : 1;
	char path[4096];
	file_path(path, hc->dir, num);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_errno(err, "chunks_head: create %s", path);
	uint8_t h[HEADCHUNKS_HEADER] = {0};
	be32_put(h, HEADCHUNKS_MAGIC);
	h[4] = 1;
	if (fileio_write_all(fd, h, sizeof h) != 0) {
		int rc = err_errno(err, "chunks_head: write %s", path);
		close(fd);
		return rc;
	}
	void *m = mmap(NULL, HEADCHUNKS_MAX_FILE, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int rc = err_errno(err, "chunks_head: mmap %s", path);
		close(fd);
		return rc;
	}
	hfile_t f = {
	    .num = num, .fd = fd, .map = m, .maplen = HEADCHUNKS_MAX_FILE, .size = HEADCHUNKS_HEADER};
	VEC_PUSH(&hc->files, f);
	hc->wn = 0;
	return 0;
}

/* mu held: write the buffer to the last file. */
static int flush_locked(headchunks_t *hc, err_t *err)
{
	if (!hc->wn)
		return 0;
	hfile_t *f = &VEC_LAST(&hc->files);
	if (fileio_write_all(f->fd, hc->wbuf, hc->wn) != 0) {
		char path[4096];
		file_path(path, hc->dir, f->num);
		return err_errno(err, "chunks_head: write %s", path);
	}
	f->size += hc->wn;
	hc->wn = 0;
	return 0;
}

/* mu held: finish the file being written (flush, fsync, close its fd; the mapping stays). */
static int finish_file(headchunks_t *hc, err_t *err)
{
	if (!hc->files.n)
		return 0;
	hfile_t *f = &VEC_LAST(&hc->files);
	if (f->fd < 0)
		return 0;
	int rc = flush_locked(hc, err);
	if (!rc && fdatasync(f->fd) != 0) {
		char path[4096];
		file_path(path, hc->dir, f->num);
		rc = err_errno(err, "chunks_head: fsync %s", path);
	}
	close(f->fd);
	f->fd = -1;
	return rc;
}

static void unmap(hfile_t *f)
{
	if (f->map)
		munmap((void *)f->map, f->maplen);
	if (f->fd >= 0)
		close(f->fd);
	f->map = NULL;
	f->fd = -1;
}

/* Open-time check of one existing file: map it, cut a torn/corrupt tail. Returns 0 and whether the
 * file was cut (then every later file must go). */
static int load_file(headchunks_t *hc, uint32_t num, bool *cut, err_t *err)
{
	char path[4096];
	file_path(path, hc->dir, num);
	*cut = false;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_errno(err, "chunks_head: open %s", path);
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int rc = err_errno(err, "chunks_head: stat %s", path);
		close(fd);
		return rc;
	}
	size_t len = (size_t)st.st_size;
	const uint8_t *m = NULL;
	if (len >= HEADCHUNKS_HEADER) {
		void *mm = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		if (mm == MAP_FAILED) {
			int rc = err_errno(err, "chunks_head: mmap %s", path);
			close(fd);
			return rc;
		}
		m = mm;
	}
	if (!m || be32_get(m) != HEADCHUNKS_MAGIC || m[4] != 1) {
		/* unusable header: the whole file goes */
		if (m)
			munmap((void *)m, len);
		close(fd);
		unlink(path);
		*cut = true;
		return 0;
	}
	hfile_t f = {.num = num, .fd = -1, .map = m, .maplen = len, .size = len, .preexisting = true};
	int stop = 0;
	size_t good = scan(&f, m, len, NULL, NULL, &stop);
	if (good < len) {
		*cut = true;
		if (ftruncate(fd, (off_t)good) != 0) {
			int rc = err_errno(err, "chunks_head: truncate %s", path);
			munmap((void *)m, len);
			close(fd);
			return rc;
		}
		f.size = good;
	}
	close(fd);
	VEC_PUSH(&hc->files, f);
	return 0;
}

int headchunks_open(headchunks_t **out, const char *dir, bool *repaired, err_t *err)
{
	if (repaired)
		*repaired = false;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return err_errno(err, "chunks_head: mkdir %s", dir);
	DIR *d = opendir(dir);
	if (!d)
		return err_errno(err, "chunks_head: open %s", dir);
	VEC(uint32_t) nums = {0};
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *s = de->d_name;
		size_t n = strlen(s);
		if (n == 0 || n > 9 || strspn(s, "0123456789") != n)
			continue;
		VEC_PUSH(&nums, (uint32_t)strtoul(s, NULL, 10));
	}
	closedir(d);
	if (nums.n)
		qsort(nums.v, nums.n, sizeof(uint32_t), cmp_u32);
	headchunks_t *hc = xcalloc(1, sizeof *hc);
	hc->dir = xstrdup(dir);
	pthread_mutex_init(&hc->mu, NULL);
	hc->wbuf = xmalloc(WBUF_SIZE);
	int rc = 0;
	bool cut = false;
	for (size_t i = 0; !rc && i < nums.n; i++) {
		if (cut) { /* everything after a cut is dropped */
			char path[4096];
			file_path(path, dir, nums.v[i]);
			unlink(path);
			continue;
		}
		rc = load_file(hc, nums.v[i], &cut, err);
		if (cut && repaired)
			*repaired = true;
	}
	VEC_FREE(&nums);
	if (!rc)
		rc = new_file(hc, err);
	if (rc) {
		headchunks_close(hc, NULL);
		return rc;
	}
	*out = hc;
	return 0;
}

int headchunks_close(headchunks_t *hc, err_t *err)
{
	if (!hc)
		return 0;
	pthread_mutex_lock(&hc->mu);
	int rc = finish_file(hc, err);
	for (size_t i = 0; i < hc->files.n; i++)
		unmap(&hc->files.v[i]);
	pthread_mutex_unlock(&hc->mu);
	VEC_FREE(&hc->files);
	pthread_mutex_destroy(&hc->mu);
	free(hc->wbuf);
	free(hc->dir);
	free(hc);
	return rc;
}

int headchunks_iterate(headchunks_t *hc, headchunks_fn fn, void *arg, err_t *err)
{
	(void)err;
	for (size_t i = 0; i < hc->files.n; i++) {
		hfile_t *f = &hc->files.v[i];
		if (!f->preexisting)
			break;
		int stop = 0;
		scan(f, f->map, f->size, fn, arg, &stop);
		if (stop)
			return stop;
	}
	return 0;
}

int headchunks_write(headchunks_t *hc, uint64_t series_ref, int64_t mint, int64_t maxt, uint8_t enc,
                     const uint8_t *data, size_t len, uint64_t *ref, err_t *err)
{
	size_t need = ENTRY_OVERHEAD + len;
	if (need > WBUF_SIZE)
		return err_set(err, ERR_LIMIT, "chunks_head: chunk of %zu bytes is too large", len);
	pthread_mutex_lock(&hc->mu);
	int rc = 0;
	hfile_t *f = &VEC_LAST(&hc->files);
	if (f->size + hc->wn + need > HEADCHUNKS_MAX_FILE) {
		if (!(rc = finish_file(hc, err)))
			rc = new_file(hc, err);
		f = &VEC_LAST(&hc->files);
	}
	if (!rc && hc->wn + need > WBUF_SIZE)
		rc = flush_locked(hc, err);
	if (!rc) {
		uint64_t off = f->size + hc->wn;
		uint8_t *e = hc->wbuf + hc->wn;
		be64_put(e, series_ref);
		be64_put(e + 8, (uint64_t)mint);
		be64_put(e + 16, (uint64_t)maxt);
		e[24] = enc;
		size_t k = uvarint_put(e + 25, len);
		memcpy(e + 25 + k, data, len);
		be32_put(e + 25 + k + len, crc32c(0, e, 25 + k + len));
		hc->wn += 25 + k + len + 4;
		*ref = ((uint64_t)f->num << 32) | off;
	}
	pthread_mutex_unlock(&hc->mu);
	return rc;
}

static hfile_t *find_file(headchunks_t *hc, uint32_t num)
{
	size_t lo = 0, hi = hc->files.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (hc->files.v[mid].num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < hc->files.n && hc->files.v[lo].num == num ? &hc->files.v[lo] : NULL;
}

int headchunks_get(headchunks_t *hc, uint64_t ref, chunk_t *out, err_t *err)
{
	uint32_t num = (uint32_t)(ref >> 32);
	size_t off = (size_t)(ref & 0xffffffffu);
	pthread_mutex_lock(&hc->mu);
	hfile_t *f = find_file(hc, num);
	int rc = 0;
	if (f && f == &VEC_LAST(&hc->files) && off + ENTRY_OVERHEAD > f->size)
		rc = flush_locked(hc, err); /* the chunk may still be in the write buffer */
	const uint8_t *map = f ? f->map : NULL;
	size_t size = f ? (size_t)f->size : 0;
	pthread_mutex_unlock(&hc->mu);
	if (rc)
		return rc;
	if (!map || off < HEADCHUNKS_HEADER || off + 26 > size)
		return err_set(err, ERR_CORRUPT, "chunks_head: %s: bad chunk reference %06u:%zu", hc->dir,
		               num, off);
	const uint8_t *e = map + off;
	uint64_t dl;
	int k = uvarint_get(e + 25, map + size, &dl);
	if (k <= 0 || dl > size || off + 25 + (size_t)k + dl + 4 > size)
		return err_set(err, ERR_CORRUPT, "chunks_head: %s/%06u: offset %zu: bad chunk length",
		               hc->dir, num, off);
	size_t body = 25 + (size_t)k + (size_t)dl;
	if (crc32c(0, e, body) != be32_get(e + body))
		return err_set(err, ERR_CORRUPT, "chunks_head: %s/%06u: offset %zu: checksum mismatch",
		               hc->dir, num, off);
	out->enc = e[24];
	out->data = e + 25 + k;
	out->len = (size_t)dl;
	return 0;
}

int headchunks_flush(headchunks_t *hc, err_t *err)
{
	pthread_mutex_lock(&hc->mu);
	int rc = flush_locked(hc, err);
	pthread_mutex_unlock(&hc->mu);
	return rc;
}

int headchunks_cut_file(headchunks_t *hc, err_t *err)
{
	pthread_mutex_lock(&hc->mu);
	int rc = 0;
	if (VEC_LAST(&hc->files).size + hc->wn > HEADCHUNKS_HEADER) {
		if (!(rc = finish_file(hc, err)))
			rc = new_file(hc, err);
	}
	pthread_mutex_unlock(&hc->mu);
	return rc;
}

int headchunks_truncate(headchunks_t *hc, uint32_t first_kept, err_t *err)
{
	pthread_mutex_lock(&hc->mu);
	size_t keep = 0;
	int rc = 0;
	for (size_t i = 0; i < hc->files.n; i++) {
		hfile_t *f = &hc->files.v[i];
		if (f->num < first_kept && i + 1 < hc->files.n) {
			char path[4096];
			file_path(path, hc->dir, f->num);
			unmap(f);
			if (unlink(path) != 0 && errno != ENOENT && !rc)
				rc = err_errno(err, "chunks_head: delete %s", path);
			continue;
		}
		hc->files.v[keep++] = *f;
	}
	hc->files.n = keep;
	pthread_mutex_unlock(&hc->mu);
	return rc;
}

uint32_t headchunks_current_file(headchunks_t *hc)
{
	pthread_mutex_lock(&hc->mu);
	uint32_t n = VEC_LAST(&hc->files).num;
	pthread_mutex_unlock(&hc->mu);
	return n;
}

uint64_t headchunks_size(headchunks_t *hc)
{
	pthread_mutex_lock(&hc->mu);
	uint64_t s = hc->wn;
	for (size_t i = 0; i < hc->files.n; i++)
		s += hc->files.v[i].size;
	pthread_mutex_unlock(&hc->mu);
	return s;
}
