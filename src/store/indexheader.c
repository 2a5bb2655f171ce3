/*
 * indexheader.c — build (range reads), persist and mmap the store gateway's index-header.
 */
#include "store/indexheader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/mapfile.h"
#include "base/varint.h"

#define SAMPLE_EVERY 32
#define HDR_PREFIX 14 /* magic, version, index version, BE64 postings offset table ref */
#define HDR_TOC 20

typedef struct ih_sample {
	str_t value;
	uint32_t pos; /* entry position relative to pt_p */
} ih_sample_t;

typedef struct ih_name {
	str_t name;
	uint32_t first, end; /* entry byte range relative to pt_p */
	uint32_t nvalues;
	ih_sample_t *samples;
	size_t nsamples;
} ih_name_t;

struct indexheader {
	char *path;
	const uint8_t *p;
	size_t len;
	const uint8_t *sym_p, *sym_end;
	uint32_t nsym;
	uint32_t *sym_sample;
	const uint8_t *pt_p, *pt_end; /* entries (after the count) */
	uint64_t pt_index_off;        /* postings offset table position in the remote index */
	ih_name_t *names;
	size_t nnames;
	size_t mem;
};

static int read_str(const uint8_t **pp, const uint8_t *end, str_t *out)
{
	uint64_t l;
	int k = uvarint_get(*pp, end, &l);
	if (k <= 0 || l > (uint64_t)(end - *pp - k))
		return -1;
	*out = str_from((const char *)*pp + k, (size_t)l);
	*pp += k + (size_t)l;
	return 0;
}

/* ================================ build ================================ */

/* Section [len BE32 | body | CRC] at the start of p[0..n): total bytes, or 0 if malformed. */
static size_t section_len(const uint8_t *p, size_t n)
{
	if (n < 8)
		return 0;
	uint32_t l = be32_get(p);
	if ((uint64_t)l + 8 > n || l < 4)
		return 0;
	if (crc32c(0, p + 4, l) != be32_get(p + 4 + l))
		return 0;
	return (size_t)l + 8;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int indexheader_build(bucket_t *b, const char *index_name, int64_t index_size, const char *path, err_t *err)
{
	int rc;
	if (index_size < 0) {
		bucket_attrs_t at;
		if ((rc = bucket_attributes(b, index_name, &at, err)))
			return rc;
		index_size = at.size;
	}
	if (index_size < 5 + 52)
		return err_set(err, ERR_CORRUPT, "index: %s: object of %lld bytes is too short for header and TOC",
			       index_name, (long long)index_size);
	buf_t toc = BUF_INIT;
	if ((rc = bucket_get_range(b, index_name, index_size - 52, 52, &toc, err)))
		goto out_toc;
	if (toc.n != 52) {
		rc = err_set(err, ERR_CORRUPT, "index: %s: TOC read returned %zu bytes (object shorter than %lld?)",
			     index_name, toc.n, (long long)index_size);
		goto out_toc;
	}
	const uint8_t *t = (const uint8_t *)toc.p;
	if (crc32c(0, t, 48) != be32_get(t + 48)) {
		rc = err_set(err, ERR_CORRUPT, "index: %s: offset %lld: bad TOC CRC32C", index_name,
			     (long long)(index_size - 52));
		goto out_toc;
	}
	uint64_t v[6];
	for (int i = 0; i < 6; i++) {
		v[i] = be64_get(t + 8 * i);
		if (v[i] > (uint64_t)index_size - 52) {
			rc = err_set(err, ERR_CORRUPT, "index: %s: offset %lld: TOC entry %d (%llu) points past the end",
				     index_name, (long long)(index_size - 52 + 8 * i), i, (unsigned long long)v[i]);
			goto out_toc;
		}
	}
	uint64_t sym = v[0], ptab = v[5];
	if (!sym || !ptab) {
		rc = err_set(err, ERR_CORRUPT, "index: %s: TOC lacks the %s", index_name,
			     !sym ? "symbol table" : "postings offset table");
		goto out_toc;
	}
	/* The symbol table ends where the next section starts. */
	uint64_t sym_end = (uint64_t)index_size - 52;
	for (int i = 1; i < 6; i++)
		if (v[i] > sym && v[i] < sym_end)
			sym_end = v[i];
	uint64_t pt_end = (uint64_t)index_size - 52;
	if (ptab >= pt_end || sym >= sym_end) {
		rc = err_set(err, ERR_CORRUPT, "index: %s: empty symbol or postings offset table section", index_name);
		goto out_toc;
	}
	char hdr5[5];
	char *sbuf = xmalloc((size_t)(sym_end - sym));
	char *pbuf = xmalloc((size_t)(pt_end - ptab));
	bucket_range_t r[3] = {
		{.name = index_name, .off = 0, .len = 5, .dst = hdr5},
		{.name = index_name, .off = (int64_t)sym, .len = (int64_t)(sym_end - sym), .dst = sbuf},
		{.name = index_name, .off = (int64_t)ptab, .len = (int64_t)(pt_end - ptab), .dst = pbuf},
	};
	if ((rc = bucket_get_ranges(b, r, 3, 3, err)))
		goto out;
	if (r[0].got != 5 || be32_get((uint8_t *)hdr5) != 0xBAAAD700u || hdr5[4] != 2) {
		rc = err_set(err, ERR_CORRUPT, "index: %s: offset 0: bad magic or unsupported index version", index_name);
		goto out;
	}
	size_t sl = section_len((uint8_t *)sbuf, (size_t)r[1].got);
	if (!sl) {
		rc = err_set(err, ERR_CORRUPT, "index: %s: offset %llu: symbol table: bad length or CRC32C", index_name,
			     (unsigned long long)sym);
		goto out;
	}
	size_t pl = section_len((uint8_t *)pbuf, (size_t)r[2].got);
	if (!pl) {
		rc = err_set(err, ERR_CORRUPT, "index: %s: offset %llu: postings offset table: bad length or CRC32C",
			     index_name, (unsigned long long)ptab);
		goto out;
	}
	/* Write <path>.tmp, fsync, rename. */
	uint8_t pre[HDR_PREFIX], tail[HDR_TOC];
	be32_put(pre, INDEXHEADER_MAGIC);
	pre[4] = 1;
	pre[5] = 2;
	be64_put(pre + 6, ptab);
	be64_put(tail, HDR_PREFIX);
	be64_put(tail + 8, HDR_PREFIX + sl);
	be32_put(tail + 16, crc32c(0, tail, 16));
	size_t plen = strlen(path);
	char *tmp = xmalloc(plen + 5);
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = err_errno(err, "index-header: create %s", tmp);
		free(tmp);
		goto out;
	}
	if (write_all(fd, pre, sizeof pre) || write_all(fd, sbuf, sl) || write_all(fd, pbuf, pl) ||
	    write_all(fd, tail, sizeof tail) || fsync(fd) != 0) {
		rc = err_errno(err, "index-header: write %s", tmp);
		close(fd);
		unlink(tmp);
		free(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		rc = err_errno(err, "index-header: rename %s", tmp);
		unlink(tmp);
	}
	free(tmp);
out:
	free(sbuf);
	free(pbuf);
out_toc:
	buf_release(&toc);
	return rc;
}

/* ================================ read ================================ */

static int hcorrupt(const indexheader_t *h, err_t *err, uint64_t off, const char *what)
{
	return err_set(err, ERR_CORRUPT, "index-header: %s: offset %llu: %s", h->path, (unsigned long long)off, what);
}

/* Section at off inside the file: body pointer and length after bounds and CRC checks. */
static int h_section(indexheader_t *h, uint64_t off, const uint8_t **body, size_t *blen, const char *what, err_t *err)
{
	char msg[128];
	if (off < HDR_PREFIX || off + 8 > h->len - HDR_TOC) {
		snprintf(msg, sizeof msg, "%s: reference out of range", what);
		return hcorrupt(h, err, off, msg);
	}
	uint32_t l = be32_get(h->p + off);
	if ((uint64_t)l + 8 + off > h->len - HDR_TOC || l < 4) {
		snprintf(msg, sizeof msg, "%s: length %u runs past its end", what, l);
		return hcorrupt(h, err, off, msg);
	}
	if (crc32c(0, h->p + off + 4, l) != be32_get(h->p + off + 4 + l)) {
		snprintf(msg, sizeof msg, "%s: bad CRC32C", what);
		return hcorrupt(h, err, off, msg);
	}
	*body = h->p + off + 4;
	*blen = l;
	return 0;
}

static int h_load(indexheader_t *h, err_t *err)
{
	if (h->len < HDR_PREFIX + HDR_TOC + 16)
		return hcorrupt(h, err, 0, "file too short");
	if (be32_get(h->p) != INDEXHEADER_MAGIC)
		return hcorrupt(h, err, 0, "bad magic");
	if (h->p[4] != 1 || h->p[5] != 2)
		return hcorrupt(h, err, 4, "unsupported header or index version");
	h->pt_index_off = be64_get(h->p + 6);
	const uint8_t *toc = h->p + h->len - HDR_TOC;
	if (crc32c(0, toc, 16) != be32_get(toc + 16))
		return hcorrupt(h, err, h->len - HDR_TOC, "bad TOC CRC32C");
	const uint8_t *b;
	size_t bl;
	int rc;
	if ((rc = h_section(h, be64_get(toc), &b, &bl, "symbol table", err)))
		return rc;
	h->nsym = be32_get(b);
	h->sym_p = b + 4;
	h->sym_end = b + bl;
	if (h->nsym > bl)
		return hcorrupt(h, err, be64_get(toc), "absurd symbol count");
	h->sym_sample = xcalloc(h->nsym / SAMPLE_EVERY + 1, sizeof(uint32_t));
	h->mem += (h->nsym / SAMPLE_EVERY + 1) * sizeof(uint32_t);
	const uint8_t *p = h->sym_p;
	for (uint32_t i = 0; i < h->nsym; i++) {
		if (i % SAMPLE_EVERY == 0)
			h->sym_sample[i / SAMPLE_EVERY] = (uint32_t)(p - h->sym_p);
		str_t s;
		if (read_str(&p, h->sym_end, &s))
			return hcorrupt(h, err, (uint64_t)(p - h->p), "symbol runs past the symbol table");
	}
	uint64_t ptoff = be64_get(toc + 8);
	if ((rc = h_section(h, ptoff, &b, &bl, "postings offset table", err)))
		return rc;
	uint32_t cnt = be32_get(b);
	h->pt_p = b + 4;
	h->pt_end = b + bl;
	p = h->pt_p;
	size_t cap = 0;
	uint64_t prev_off = 0;
	for (uint32_t i = 0; i < cnt; i++) {
		const uint8_t *ent = p;
		str_t name, value;
		uint64_t off;
		int k;
		if (p >= h->pt_end || *p != 2 || (p++, read_str(&p, h->pt_end, &name)) || read_str(&p, h->pt_end, &value) ||
		    (k = uvarint_get(p, h->pt_end, &off)) <= 0)
			return hcorrupt(h, err, (uint64_t)(ent - h->p), "malformed postings offset table entry");
		p += k;
		if (off >= h->pt_index_off || off < prev_off)
			return hcorrupt(h, err, (uint64_t)(ent - h->p), "postings offset out of order or out of range");
		prev_off = off;
		ih_name_t *nm = h->nnames ? &h->names[h->nnames - 1] : NULL;
		if (!nm || !str_eq(nm->name, name)) {
			if (nm && str_cmp(nm->name, name) > 0)
				return hcorrupt(h, err, (uint64_t)(ent - h->p), "postings offset table not sorted");
			if (h->nnames == cap) {
				cap = alloc_grow_cap(cap, h->nnames + 1);
				h->names = xreallocarray(h->names, cap, sizeof *h->names);
			}
			nm = &h->names[h->nnames++];
			memset(nm, 0, sizeof *nm);
			nm->name = name;
			nm->first = (uint32_t)(ent - h->pt_p);
		}
		if (nm->nvalues % SAMPLE_EVERY == 0) {
			nm->samples = xreallocarray(nm->samples, nm->nsamples + 1, sizeof *nm->samples);
			nm->samples[nm->nsamples++] = (ih_sample_t){value, (uint32_t)(ent - h->pt_p)};
			h->mem += sizeof(ih_sample_t);
		}
		nm->nvalues++;
		nm->end = (uint32_t)(p - h->pt_p);
	}
	h->mem += cap * sizeof(ih_name_t);
	return 0;
}

int indexheader_open(indexheader_t **out, const char *path, err_t *err)
{
	*out = NULL;
	indexheader_t *h = xcalloc(1, sizeof *h);
	h->path = xstrdup(path);
	h->mem = sizeof *h;
	int rc = mapfile_map(path, HDR_PREFIX + HDR_TOC + 16, &h->p, &h->len, err);
	if (rc) {
		if (err)
			err_wrap(err, "index-header");
		indexheader_close(h);
		return rc;
	}
	if (!h->p) {
		rc = hcorrupt(h, err, 0, "file too short");
		indexheader_close(h);
		return rc;
	}
	rc = h_load(h, err);
	if (rc) {
		indexheader_close(h);
		return rc;
	}
	*out = h;
	return 0;
}

void indexheader_close(indexheader_t *h)
{
	if (!h)
		return;
	mapfile_unmap(h->p, h->len);
	for (size_t i = 0; i < h->nnames; i++)
		free(h->names[i].samples);
	free(h->names);
	free(h->sym_sample);
	free(h->path);
	free(h);
}

size_t indexheader_size(const indexheader_t *h)
{
	return h->len;
}

size_t indexheader_mem(const indexheader_t *h)
{
	return h->mem;
}

uint32_t indexheader_nsymbols(const indexheader_t *h)
{
	return h->nsym;
}

int indexheader_symbol(const indexheader_t *h, uint32_t idx, str_t *out, err_t *err)
{
	if (idx >= h->nsym)
		return err_set(err, ERR_CORRUPT, "index-header: %s: symbol reference %u out of range (%u symbols)",
			       h->path, idx, h->nsym);
	const uint8_t *p = h->sym_p + h->sym_sample[idx / SAMPLE_EVERY];
	for (uint32_t k = idx % SAMPLE_EVERY; k > 0; k--)
		read_str(&p, h->sym_end, out); /* validated at open */
	read_str(&p, h->sym_end, out);
	return 0;
}

static const ih_name_t *find_name(const indexheader_t *h, str_t name)
{
	size_t lo = 0, hi = h->nnames;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = str_cmp(h->names[mid].name, name);
		if (c == 0)
			return &h->names[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Entry at pos (validated at open): value and offset; returns the next entry's position. */
static uint32_t entry_at(const indexheader_t *h, uint32_t pos, str_t *value, uint64_t *off)
{
	const uint8_t *p = h->pt_p + pos + 1;
	str_t name;
	read_str(&p, h->pt_end, &name);
	read_str(&p, h->pt_end, value);
	p += uvarint_get(p, h->pt_end, off);
	return (uint32_t)(p - h->pt_p);
}

/* End of the postings list starting at the entry before next_pos: the next entry's offset. */
static int64_t range_end(const indexheader_t *h, uint32_t next_pos)
{
	if (h->pt_p + next_pos >= h->pt_end)
		return (int64_t)h->pt_index_off;
	str_t v;
	uint64_t off;
	entry_at(h, next_pos, &v, &off);
	return (int64_t)off;
}

bool indexheader_postings_range(const indexheader_t *h, str_t name, str_t value, int64_t *start, int64_t *end)
{
	const ih_name_t *nm = find_name(h, name);
	if (!nm)
		return false;
	size_t lo = 0, hi = nm->nsamples;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (str_cmp(nm->samples[mid].value, value) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	uint32_t pos = nm->samples[lo - 1].pos;
	while (pos < nm->end) {
		str_t v;
		uint64_t off;
		uint32_t next = entry_at(h, pos, &v, &off);
		int c = str_cmp(v, value);
		if (c == 0) {
			*start = (int64_t)off;
			*end = range_end(h, next);
			return true;
		}
		if (c > 0)
			break;
		pos = next;
	}
	return false;
}

bool indexheader_each_value(const indexheader_t *h, str_t name, indexheader_value_fn fn, void *arg)
{
	const ih_name_t *nm = find_name(h, name);
	if (!nm)
		return false;
	uint32_t pos = nm->first;
	while (pos < nm->end) {
		str_t v;
		uint64_t off;
		uint32_t next = entry_at(h, pos, &v, &off);
		if (!fn(arg, v, (int64_t)off, range_end(h, next)))
			break;
		pos = next;
	}
	return true;
}

void indexheader_label_names(const indexheader_t *h, arena_t *a, str_t **out, size_t *n)
{
	*out = ARENA_NEW_ARRAY(a, str_t, h->nnames + 1);
	*n = 0;
	for (size_t i = 0; i < h->nnames; i++)
		if (h->names[i].name.n)
			(*out)[(*n)++] = h->names[i].name;
}
