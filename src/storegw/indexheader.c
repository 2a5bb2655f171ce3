/*
 * indexheader.c — build (range reads), persist and mmap the store gateway's index-header.
 */
#include "storegw/indexheader.h"

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
#include "tsdb/indextoc.h"

#define HDR_PREFIX 14 /* magic, version, index version, BE64 postings offset table ref */
#define HDR_TOC 20

struct indexheader {
	char *path;
	const uint8_t *p;
	size_t len;
	indextoc_symbols_t syms;
	indextoc_ptab_t ptab;
	uint64_t pt_index_off; /* postings offset table position in the remote index */
	size_t mem;
};

/* ================================ build ================================ */

/* Section [len BE32 | body | CRC] at the start of p[0..n): total bytes, or 0 if malformed. */
static size_t section_len(const uint8_t *p, size_t n)
{
	const uint8_t *body;
	size_t bl;
	indextoc_fault_t f;
	return indextoc_section(p, n, 0, 4, &body, &bl, &f) ? 0 : bl + 8;
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
	uint64_t v[6];
	indextoc_fault_t f;
	switch (indextoc_toc(t, (uint64_t)index_size - 52, v, &f)) {
	case INDEXTOC_OK:
		break;
	case INDEXTOC_TOC_CRC:
		rc = err_set(err, ERR_CORRUPT, "index: %s: offset %lld: bad TOC CRC32C", index_name,
			     (long long)(index_size - 52));
		goto out_toc;
	default:
		rc = err_set(err, ERR_CORRUPT, "index: %s: offset %lld: TOC entry %u (%llu) points past the end",
			     index_name, (long long)(index_size - 52 + (f.at - t)), f.entry, (unsigned long long)f.value);
		goto out_toc;
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
	indextoc_fault_t f;
	indextoc_err_t e = off < HDR_PREFIX || off + 8 > h->len - HDR_TOC
				   ? INDEXTOC_SEC_NOLEN
				   : indextoc_section(h->p, h->len - HDR_TOC, off, 4, body, blen, &f);
	if (e == INDEXTOC_OK)
		return 0;
	if (e == INDEXTOC_SEC_NOLEN)
		snprintf(msg, sizeof msg, "%s: reference out of range", what);
	else if (e == INDEXTOC_SEC_LEN)
		snprintf(msg, sizeof msg, "%s: length %u runs past its end", what, (uint32_t)f.value);
	else
		snprintf(msg, sizeof msg, "%s: bad CRC32C", what);
	return hcorrupt(h, err, off, msg);
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
	indextoc_fault_t f;
	int rc;
	if ((rc = h_section(h, be64_get(toc), &b, &bl, "symbol table", err)))
		return rc;
	indextoc_err_t e = indextoc_symbols_init(&h->syms, b, bl, &f);
	h->mem += indextoc_symbols_mem(&h->syms);
	if (e == INDEXTOC_SYM_COUNT)
		return hcorrupt(h, err, be64_get(toc), "absurd symbol count");
	if (e)
		return hcorrupt(h, err, (uint64_t)(f.at - h->p), "symbol runs past the symbol table");
	uint64_t ptoff = be64_get(toc + 8);
	if ((rc = h_section(h, ptoff, &b, &bl, "postings offset table", err)))
		return rc;
	e = indextoc_ptab_init(&h->ptab, b, bl, h->pt_index_off, true, &f);
	h->mem += indextoc_ptab_mem(&h->ptab);
	if (e == INDEXTOC_PT_ENTRY)
		return hcorrupt(h, err, (uint64_t)(f.at - h->p), "malformed postings offset table entry");
	if (e == INDEXTOC_PT_OFFSET)
		return hcorrupt(h, err, (uint64_t)(f.at - h->p), "postings offset out of order or out of range");
	if (e)
		return hcorrupt(h, err, (uint64_t)(f.at - h->p), "postings offset table not sorted");
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
	indextoc_symbols_release(&h->syms);
	indextoc_ptab_release(&h->ptab);
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
	return h->syms.n;
}

int indexheader_symbol(const indexheader_t *h, uint32_t idx, str_t *out, err_t *err)
{
	if (idx >= h->syms.n)
		return err_set(err, ERR_CORRUPT, "index-header: %s: symbol reference %u out of range (%u symbols)",
			       h->path, idx, h->syms.n);
	*out = indextoc_symbol(&h->syms, idx);
	return 0;
}

/* End of the postings list whose entry precedes next: the next entry's offset, or the postings
 * offset table's position after the last entry. */
static int64_t range_end(const indexheader_t *h, uint32_t next)
{
	if (h->ptab.p + next >= h->ptab.end)
		return (int64_t)h->pt_index_off;
	str_t v;
	uint64_t off;
	indextoc_ptab_entry(&h->ptab, next, &v, &off);
	return (int64_t)off;
}

bool indexheader_postings_range(const indexheader_t *h, str_t name, str_t value, int64_t *start, int64_t *end)
{
	const indextoc_name_t *nm = indextoc_ptab_name(&h->ptab, name);
	uint64_t off;
	uint32_t next;
	if (!nm || !indextoc_ptab_find(&h->ptab, nm, value, &off, &next))
		return false;
	*start = (int64_t)off;
	*end = range_end(h, next);
	return true;
}

bool indexheader_each_value(const indexheader_t *h, str_t name, indexheader_value_fn fn, void *arg)
{
	const indextoc_name_t *nm = indextoc_ptab_name(&h->ptab, name);
	if (!nm)
		return false;
	uint32_t pos = nm->first;
	while (pos < nm->end) {
		str_t v;
		uint64_t off;
		uint32_t next = indextoc_ptab_entry(&h->ptab, pos, &v, &off);
		if (!fn(arg, v, (int64_t)off, range_end(h, next)))
			break;
		pos = next;
	}
	return true;
}

void indexheader_label_names(const indexheader_t *h, arena_t *a, str_t **out, size_t *n)
{
	*out = ARENA_NEW_ARRAY(a, str_t, h->ptab.nnames + 1);
	*n = 0;
	for (size_t i = 0; i < h->ptab.nnames; i++)
		if (h->ptab.names[i].name.n)
			(*out)[(*n)++] = h->ptab.names[i].name;
}
