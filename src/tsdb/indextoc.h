/*
 * indextoc.h — decoding of the Prometheus index v2 tables that two readers share (reference
 * prometheus.md §1.7): tsdb/index.c reads them in a whole index file, storegw/indexheader.c in the
 * store gateway's index-header, which holds byte copies of the same tables. Here:
 *   - the TOC (six BE64 section references and a CRC32C, the index's last 52 bytes);
 *   - section framing (len BE32 | body | CRC32C of the body);
 *   - the symbol table (count BE32, then uvarint-length strings), sampled every 32nd symbol;
 *   - the postings offset table (count BE32, then entries {0x02, name, value, uvarint offset} sorted
 *     by name then value), grouped by name with every 32nd value of a name sampled.
 *
 * The decoders validate everything they later walk, so lookups after a successful init do no bounds
 * checks of their own and may run from many threads at once. They do not format errors: a failure is
 * an indextoc_err_t code plus an indextoc_fault_t saying where, and each reader words it in its own
 * terms (file, offset). Tables point into the caller's bytes, which must outlive them.
 */
#ifndef STRATA_TSDB_INDEXTOC_H
#define STRATA_TSDB_INDEXTOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "base/varint.h"

#define INDEXTOC_SAMPLE_EVERY 32
#define INDEXTOC_TOC_LEN      52

typedef enum indextoc_err {
	INDEXTOC_OK = 0,
	INDEXTOC_TOC_CRC,     /* TOC: bad CRC32C */
	INDEXTOC_TOC_RANGE,   /* TOC: entry fault.entry (fault.value) points past the limit */
	INDEXTOC_SEC_NOLEN,   /* section: its length field lies past the end */
	INDEXTOC_SEC_LEN,     /* section: body + CRC past the end, or body too short (fault.value = length) */
	INDEXTOC_SEC_CRC,     /* section: bad CRC32C */
	INDEXTOC_SHORT,       /* table body shorter than its count */
	INDEXTOC_SYM_COUNT,   /* symbol table: count (fault.value) larger than the body */
	INDEXTOC_SYM_ENTRY,   /* symbol fault.entry at fault.at runs past the table */
	INDEXTOC_PT_ENTRY,    /* postings offset table: entry fault.entry at fault.at malformed */
	INDEXTOC_PT_OFFSET,   /* ... its postings offset (fault.value) out of range (or order, if asked) */
	INDEXTOC_PT_UNSORTED, /* ... its name sorts before the previous entry's */
} indextoc_err_t;

typedef struct indextoc_fault {
	const uint8_t *at; /* the offending entry */
	uint32_t entry;    /* its ordinal */
	uint64_t value;    /* the offending number, where there is one */
} indextoc_fault_t;

/* uvarint-length string at *pp: 0 with *pp past it, or -1 if it does not fit before end. */
static inline int indextoc_str(const uint8_t **pp, const uint8_t *end, str_t *out)
{
	const uint8_t *p = *pp;
	uint64_t l;
	int k;
	if (p < end && *p < 0x80) /* the common one-byte length */
		l = *p, k = 1;
	else if ((k = uvarint_get(p, end, &l)) <= 0)
		return -1;
	if (l > (uint64_t)(end - p - k))
		return -1;
	*out = str_from((const char *)p + k, (size_t)l);
	*pp = p + k + (size_t)l;
	return 0;
}

/* The TOC at toc[0..52): checks the CRC and that every reference is <= limit; v gets the six
 * references (symbols, series, label indices, label offsets, postings, postings offsets). */
indextoc_err_t indextoc_toc(const uint8_t *toc, uint64_t limit, uint64_t v[6], indextoc_fault_t *f);

/* The section at p[off..n): body and its length after bounds, minimum body length and CRC checks. */
indextoc_err_t indextoc_section(const uint8_t *p, size_t n, uint64_t off, uint32_t min_len,
                                const uint8_t **body, size_t *blen, indextoc_fault_t *f);

typedef struct indextoc_symbols {
	const uint8_t *p, *end; /* entries (after the count) */
	uint32_t n;
	uint32_t *sample; /* byte offset from p of symbols 0, 32, 64, ... */
} indextoc_symbols_t;

/* Decode a symbol table body; on failure s holds what was allocated (release it either way). */
indextoc_err_t indextoc_symbols_init(indextoc_symbols_t *s, const uint8_t *body, size_t blen,
                                     indextoc_fault_t *f);
void indextoc_symbols_release(indextoc_symbols_t *s);
size_t indextoc_symbols_mem(const indextoc_symbols_t *s); /* bytes of the samples */
/* Symbol idx (callers check idx < s->n). */
str_t indextoc_symbol(const indextoc_symbols_t *s, uint32_t idx);
/* Ordinal of v; false if v is not a symbol. */
bool indextoc_symbol_find(const indextoc_symbols_t *s, str_t v, uint32_t *idx);

typedef struct indextoc_sample {
	str_t value;
	uint32_t pos; /* entry position relative to the table's p */
} indextoc_sample_t;

typedef struct indextoc_name {
	str_t name;
	uint32_t first, end; /* byte range of this name's entries, relative to the table's p */
	uint32_t nvalues;
	indextoc_sample_t *samples;
	size_t nsamples;
} indextoc_name_t;

typedef struct indextoc_ptab {
	const uint8_t *p, *end; /* entries (after the count) */
	indextoc_name_t *names; /* sorted by name */
	size_t nnames, cap;
} indextoc_ptab_t;

/* Decode a postings offset table body: every postings offset must be < max_off, and ascending too
 * when asked. On failure t holds what was allocated (release it either way). */
indextoc_err_t indextoc_ptab_init(indextoc_ptab_t *t, const uint8_t *body, size_t blen, uint64_t max_off,
                                  bool ascending, indextoc_fault_t *f);
void indextoc_ptab_release(indextoc_ptab_t *t);
size_t indextoc_ptab_mem(const indextoc_ptab_t *t); /* bytes of names and samples */
/* The name's group, NULL if absent. */
const indextoc_name_t *indextoc_ptab_name(const indextoc_ptab_t *t, str_t name);
/* Entry at pos: its value and postings offset; returns the next entry's position. */
uint32_t indextoc_ptab_entry(const indextoc_ptab_t *t, uint32_t pos, str_t *value, uint64_t *off);
/* The entry of value in nm's group: its postings offset and the next entry's position (t->end - t->p
 * after the table's last entry); false if absent. */
bool indextoc_ptab_find(const indextoc_ptab_t *t, const indextoc_name_t *nm, str_t value, uint64_t *off,
                        uint32_t *next);

#endif
