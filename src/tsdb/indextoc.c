/*
 * indextoc.c — the index v2 TOC, section framing, symbol table and postings offset table, decoded
 * once for tsdb/index.c and storegw/indexheader.c.
 */
#include "tsdb/indextoc.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/crc32c.h"

#define EVERY INDEXTOC_SAMPLE_EVERY

indextoc_err_t indextoc_toc(const uint8_t *toc, uint64_t limit, uint64_t v[6], indextoc_fault_t *f)
{
	if (crc32c(0, toc, 48) != be32_get(toc + 48))
		return INDEXTOC_TOC_CRC;
	for (uint32_t i = 0; i < 6; i++) {
		v[i] = be64_get(toc + 8 * i);
		if (v[i] > limit) {
			*f = (indextoc_fault_t){toc + 8 * i, i, v[i]};
			return INDEXTOC_TOC_RANGE;
		}
	}
	return INDEXTOC_OK;
}

indextoc_err_t indextoc_section(const uint8_t *p, size_t n, uint64_t off, uint32_t min_len,
                                const uint8_t **body, size_t *blen, indextoc_fault_t *f)
{
	if (off + 4 > n)
		return INDEXTOC_SEC_NOLEN;
	uint32_t l = be32_get(p + off);
	f->value = l;
	if ((uint64_t)l + 8 + off > n || l < min_len)
		return INDEXTOC_SEC_LEN;
	const uint8_t *b = p + off + 4;
	if (crc32c(0, b, l) != be32_get(b + l))
		return INDEXTOC_SEC_CRC;
	*body = b;
	*blen = l;
	return INDEXTOC_OK;
}

/* ================================ symbols ================================ */

indextoc_err_t indextoc_symbols_init(indextoc_symbols_t *s, const uint8_t *body, size_t blen,
                                     indextoc_fault_t *f)
{
	memset(s, 0, sizeof *s);
	if (blen < 4)
		return INDEXTOC_SHORT;
	s->n = be32_get(body);
	s->p = body + 4;
	s->end = body + blen;
	if (s->n > blen) {
		f->value = s->n;
		return INDEXTOC_SYM_COUNT;
	}
	s->sample = xcalloc(s->n / EVERY + 1, sizeof(uint32_t));
	const uint8_t *p = s->p;
	for (uint32_t i = 0; i < s->n; i++) {
		if (i % EVERY == 0)
			s->sample[i / EVERY] = (uint32_t)(p - s->p);
		str_t v;
		if (indextoc_str(&p, s->end, &v)) {
			*f = (indextoc_fault_t){p, i, 0};
			return INDEXTOC_SYM_ENTRY;
		}
	}
	return INDEXTOC_OK;
}

void indextoc_symbols_release(indextoc_symbols_t *s)
{
	free(s->sample);
	memset(s, 0, sizeof *s);
}

size_t indextoc_symbols_mem(const indextoc_symbols_t *s)
{
	return s->sample ? (s->n / EVERY + 1) * sizeof(uint32_t) : 0;
}

str_t indextoc_symbol(const indextoc_symbols_t *s, uint32_t idx)
{
	const uint8_t *p = s->p + s->sample[idx / EVERY];
	str_t v;
	for (uint32_t k = idx % EVERY; k > 0; k--)
		indextoc_str(&p, s->end, &v); /* validated at init */
	indextoc_str(&p, s->end, &v);
	return v;
}

bool indextoc_symbol_find(const indextoc_symbols_t *s, str_t v, uint32_t *idx)
{
	size_t ns = s->n ? (s->n - 1) / EVERY + 1 : 0;
	size_t lo = 0, hi = ns;
	while (lo < hi) { /* last sample <= v */
		size_t mid = lo + (hi - lo) / 2;
		const uint8_t *p = s->p + s->sample[mid];
		str_t x;
		indextoc_str(&p, s->end, &x);
		if (str_cmp(x, v) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	size_t blk = lo - 1;
	const uint8_t *p = s->p + s->sample[blk];
	for (uint32_t i = (uint32_t)blk * EVERY; i < s->n && i < (blk + 1) * EVERY; i++) {
		str_t x;
		indextoc_str(&p, s->end, &x);
		int c = str_cmp(x, v);
		if (c == 0) {
			*idx = i;
			return true;
		}
		if (c > 0)
			break;
	}
	return false;
}

/* ================================ postings offset table ================================ */

indextoc_err_t indextoc_ptab_init(indextoc_ptab_t *t, const uint8_t *body, size_t blen, uint64_t max_off,
                                  bool ascending, indextoc_fault_t *f)
{
	memset(t, 0, sizeof *t);
	if (blen < 4)
		return INDEXTOC_SHORT;
	uint32_t cnt = be32_get(body);
	t->p = body + 4;
	t->end = body + blen;
	const uint8_t *p = t->p;
	uint64_t prev_off = 0;
	for (uint32_t i = 0; i < cnt; i++) {
		const uint8_t *ent = p;
		str_t name, value;
		uint64_t off;
		int k;
		*f = (indextoc_fault_t){ent, i, 0};
		if (p >= t->end || *p != 2 || (p++, indextoc_str(&p, t->end, &name)) ||
		    indextoc_str(&p, t->end, &value) || (k = uvarint_get(p, t->end, &off)) <= 0)
			return INDEXTOC_PT_ENTRY;
		p += k;
		f->value = off;
		if (off >= max_off || (ascending && off < prev_off))
			return INDEXTOC_PT_OFFSET;
		prev_off = off;
		indextoc_name_t *nm = t->nnames ? &t->names[t->nnames - 1] : NULL;
		if (!nm || !str_eq(nm->name, name)) {
			if (nm && str_cmp(nm->name, name) > 0)
				return INDEXTOC_PT_UNSORTED;
			if (t->nnames == t->cap) {
				t->cap = alloc_grow_cap(t->cap, t->nnames + 1);
				t->names = xreallocarray(t->names, t->cap, sizeof *t->names);
			}
			nm = &t->names[t->nnames++];
			memset(nm, 0, sizeof *nm);
			nm->name = name;
			nm->first = (uint32_t)(ent - t->p);
		}
		if (nm->nvalues % EVERY == 0) {
			nm->samples = xreallocarray(nm->samples, nm->nsamples + 1, sizeof *nm->samples);
			nm->samples[nm->nsamples++] = (indextoc_sample_t){value, (uint32_t)(ent - t->p)};
		}
		nm->nvalues++;
		nm->end = (uint32_t)(p - t->p);
	}
	return INDEXTOC_OK;
}

void indextoc_ptab_release(indextoc_ptab_t *t)
{
	for (size_t i = 0; i < t->nnames; i++)
		free(t->names[i].samples);
	free(t->names);
	memset(t, 0, sizeof *t);
}

size_t indextoc_ptab_mem(const indextoc_ptab_t *t)
{
	size_t n = t->cap * sizeof *t->names;
	for (size_t i = 0; i < t->nnames; i++)
		n += t->names[i].nsamples * sizeof(indextoc_sample_t);
	return n;
}

const indextoc_name_t *indextoc_ptab_name(const indextoc_ptab_t *t, str_t name)
{
	size_t lo = 0, hi = t->nnames;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = str_cmp(t->names[mid].name, name);
		if (c == 0)
			return &t->names[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

uint32_t indextoc_ptab_entry(const indextoc_ptab_t *t, uint32_t pos, str_t *value, uint64_t *off)
{
	const uint8_t *p = t->p + pos + 1; /* validated at init */
	str_t name;
	indextoc_str(&p, t->end, &name);
	indextoc_str(&p, t->end, value);
	p += uvarint_get(p, t->end, off);
	return (uint32_t)(p - t->p);
}

bool indextoc_ptab_find(const indextoc_ptab_t *t, const indextoc_name_t *nm, str_t value, uint64_t *off,
                        uint32_t *next)
{
	size_t lo = 0, hi = nm->nsamples;
	while (lo < hi) { /* last sample <= value */
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
		uint32_t nx = indextoc_ptab_entry(t, pos, &v, off);
		int c = str_cmp(v, value);
		if (c == 0) {
			*next = nx;
			return true;
		}
		if (c > 0)
			break;
		pos = nx;
	}
	return false;
}
