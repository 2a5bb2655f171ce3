/*
 * index.c — index v2 writer and mmap reader.
 */
#include "tsdb/index.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/mapfile.h"
#include "base/varint.h"
#include "base/vec.h"
#include "tsdb/indextoc.h"
#include "tsdb/spill.h"


/* ================================ writer ================================ */

/*
 * Postings are collected in runs. A run is the (label pair -> series IDs) lists of a stretch of
 * consecutive series, held in memory until they reach mem_limit bytes, then appended to an unlinked
 * temp file next to the index as
 *     u32 n, n IDs                      (all-postings of the run)
 *     { u32 name, u32 value, u32 n, n IDs }   per label pair present, pairs in (name, value) order
 * (host byte order; symbol indices are final, so their order is the output order). Series IDs grow
 * with every series, so a pair's full list is its lists in run 1, 2, ... K concatenated: the merge
 * walks all pairs in order and copies each run's group for it, one sequential cursor per run, no
 * comparisons. More than MERGE_FANIN runs are first merged MERGE_FANIN at a time into longer runs
 * (same format, appended to the temp file), so merge memory stays MERGE_FANIN cursor buffers. The
 * last run never leaves memory.
 */
#define MERGE_FANIN 16
#define MERGE_BUF (64u << 10)

typedef VEC(uint32_t) u32vec_t;

typedef struct pair {
	uint32_t name, value; /* symbol indices */
	u32vec_t ids;         /* series IDs of the current in-memory run */
} pair_t;

typedef struct run {
	uint64_t off, end; /* byte range in the temp file */
} run_t;

typedef struct pair_key {
	uint64_t key; /* name << 32 | value: sorts like pair_cmp */
	size_t idx;   /* in pairs */
} pair_key_t;

struct index_writer {
	char *path;
	int fd;
	uint64_t pos; /* file position including buffered bytes */
	buf_t out;    /* pending bytes */
	buf_t tmp;
	arena_t arena; /* symbol copies */
	hmap_t sym;    /* symbol -> index+1 */
	uint32_t nsym;
	bool have_symbols;
	imap_t pair_idx; /* (name<<32|value) -> index in pairs */
	VEC(pair_t) pairs;
	u32vec_t all;
	labels_t last;
	arena_t last_arena;
	bool have_last;
	uint64_t toc[6];
	size_t mem_limit; /* bytes of series IDs held in memory before a run is spilled */
	size_t held;      /* series IDs held (pairs' and all) */
	spill_t spill;
	VEC(run_t) runs;
	VEC(pair_key_t) order; /* scratch: the pairs of a run, sorted */
	VEC(uint64_t) keys; /* scratch: the series' (name<<32|value) symbol pairs */
	uint64_t max_series; /* largest series entry written (bytes, length and CRC included) */
};

static int w_flush(index_writer_t *w, err_t *err)
{
	const char *p = w->out.p;
	size_t n = w->out.n;
	while (n) {
		ssize_t k = write(w->fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return err_errno(err, "write %s", w->path);
		}
		p += k, n -= (size_t)k;
	}
	buf_reset(&w->out);
	return 0;
}

static int w_write(index_writer_t *w, const void *p, size_t n, err_t *err)
{
	buf_append(&w->out, p, n);
	w->pos += n;
	if (w->out.n >= (1u << 20))
		return w_flush(w, err);
	return 0;
}

static int w_pad(index_writer_t *w, unsigned align, err_t *err)
{
	static const uint8_t zeros[16];
	size_t pad = (size_t)((align - w->pos % align) % align);
	return pad ? w_write(w, zeros, pad, err) : 0;
}

/* Write len BE32 + body (tmp) + CRC32C(body). */
static int w_section(index_writer_t *w, const buf_t *body, err_t *err)
{
	uint8_t b[4];
	be32_put(b, (uint32_t)body->n);
	int rc = w_write(w, b, 4, err);
	if (!rc)
		rc = w_write(w, body->p, body->n, err);
	be32_put(b, crc32c(0, body->p, body->n));
	if (!rc)
		rc = w_write(w, b, 4, err);
	return rc;
}

int index_writer_open(index_writer_t **wp, const char *path, err_t *err)
{
	index_writer_t *w = xcalloc(1, sizeof *w);
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		int rc = err_errno(err, "create %s", path);
		free(w);
		return rc;
	}
	w->path = xstrdup(path);
	buf_init(&w->out);
	buf_init(&w->tmp);
	arena_init(&w->arena, 0);
	arena_init(&w->last_arena, 0);
	hmap_init(&w->sym, 0);
	imap_init(&w->pair_idx, 0);
	spill_init(&w->spill);
	w->mem_limit = INDEX_WRITER_MEM_DEFAULT;
	uint8_t hdr[5];
	be32_put(hdr, INDEX_MAGIC);
	hdr[4] = 2;
	*wp = w;
	return w_write(w, hdr, 5, err);
}

void index_writer_set_mem_limit(index_writer_t *w, size_t bytes)
{
	w->mem_limit = bytes ? bytes : INDEX_WRITER_MEM_DEFAULT;
}

size_t index_writer_spilled_runs(const index_writer_t *w)
{
	return w->runs.n;
}

static void w_free(index_writer_t *w)
{
	if (w->fd >= 0)
		close(w->fd);
	buf_release(&w->out);
	buf_release(&w->tmp);
	arena_release(&w->arena);
	arena_release(&w->last_arena);
	hmap_release(&w->sym);
	imap_release(&w->pair_idx);
	for (size_t i = 0; i < w->pairs.n; i++)
		VEC_FREE(&w->pairs.v[i].ids);
	VEC_FREE(&w->pairs);
	VEC_FREE(&w->all);
	spill_close(&w->spill);
	VEC_FREE(&w->runs);
	VEC_FREE(&w->order);
	VEC_FREE(&w->keys);
	free(w->path);
	free(w);
}

void index_writer_abort(index_writer_t *w)
{
	if (w)
		w_free(w);
}

int index_writer_add_symbols(index_writer_t *w, const str_t *syms, size_t n, err_t *err)
{
	if (w->have_symbols)
		return err_set(err, ERR_INVALID, "index %s: symbols already written", w->path);
	w->have_symbols = true;
	w->toc[0] = w->pos;
	buf_t *b = &w->tmp;
	buf_reset(b);
	buf_put_be32(b, 0); /* count, patched below */
	uint32_t count = 0;
	bool first_empty = n > 0 && syms[0].n == 0;
	if (!first_empty) {
		buf_put_uvarint(b, 0);
		hmap_put(&w->sym, STR_NULL, (void *)(uintptr_t)1);
		count = 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && str_cmp(syms[i - 1], syms[i]) >= 0)
			return err_set(err, ERR_INVALID, "index %s: symbols not sorted/unique at %zu (\"%.*s\")", w->path, i,
				       STR_ARG(syms[i]));
		char *c = arena_memdup(&w->arena, syms[i].n ? syms[i].p : "", syms[i].n);
		hmap_put(&w->sym, str_from(c, syms[i].n), (void *)(uintptr_t)(count + 1));
		buf_put_uvarint(b, syms[i].n);
		buf_append(b, syms[i].p, syms[i].n);
		count++;
	}
	be32_put((uint8_t *)b->p, count);
	w->nsym = count;
	int rc = w_section(w, b, err);
	w->toc[1] = w->pos;
	return rc;
}

static int sym_of(index_writer_t *w, str_t s, uint32_t *out, err_t *err)
{
	void *v = hmap_get(&w->sym, s);
	if (!v)
		return err_set(err, ERR_INVALID, "index %s: label string \"%.*s\" is not in the symbol table", w->path,
			       STR_ARG(s));
	*out = (uint32_t)((uintptr_t)v - 1);
	return 0;
}

static int pair_cmp(const void *a, const void *b)
{
	const pair_t *x = a, *y = b;
	if (x->name != y->name)
		return x->name < y->name ? -1 : 1;
	return x->value < y->value ? -1 : x->value > y->value;
}

static int key_cmp(const void *a, const void *b)
{
	const pair_key_t *x = a, *y = b;
	return x->key < y->key ? -1 : x->key > y->key;
}

static int spill_u32s(index_writer_t *w, const uint32_t *v, size_t n, err_t *err)
{
	return spill_append(&w->spill, v, n * sizeof(uint32_t), err);
}

/* Appends the in-memory run to the temp file and frees its lists. */
static int spill_run(index_writer_t *w, err_t *err)
{
	int rc = 0;
	if (!spill_is_open(&w->spill) && (rc = spill_open(&w->spill, w->path, err)))
		return rc;
	VEC_CLEAR(&w->order);
	for (size_t i = 0; i < w->pairs.n; i++)
		if (w->pairs.v[i].ids.n)
			VEC_PUSH(&w->order, ((pair_key_t){((uint64_t)w->pairs.v[i].name << 32) | w->pairs.v[i].value, i}));
	qsort(w->order.v, w->order.n, sizeof(pair_key_t), key_cmp);
	run_t run = {w->spill.end, 0};
	uint32_t nall = (uint32_t)w->all.n;
	if ((rc = spill_u32s(w, &nall, 1, err)) || (rc = spill_u32s(w, w->all.v, w->all.n, err)))
		return rc;
	for (size_t k = 0; k < w->order.n; k++) {
		pair_t *p = &w->pairs.v[w->order.v[k].idx];
		uint32_t hdr[3] = {p->name, p->value, (uint32_t)p->ids.n};
		if ((rc = spill_u32s(w, hdr, 3, err)) || (rc = spill_u32s(w, p->ids.v, p->ids.n, err)))
			return rc;
		VEC_FREE(&p->ids);
	}
	run.end = w->spill.end;
	VEC_PUSH(&w->runs, run);
	VEC_CLEAR(&w->all);
	w->held = 0;
	return 0;
}

int index_writer_add_series(index_writer_t *w, const labels_t *ls, const chunk_meta_t *chks, size_t n, err_t *err)
{
	if (!w->have_symbols)
		return err_set(err, ERR_INVALID, "index %s: series before symbols", w->path);
	if (w->have_last && labels_cmp(&w->last, ls) >= 0)
		return err_set(err, ERR_INVALID, "index %s: series added out of order or twice", w->path);
	int rc = w_pad(w, 16, err);
	if (rc)
		return rc;
	if (w->pos / 16 > UINT32_MAX)
		return err_set(err, ERR_LIMIT, "index %s: series section exceeds 64 GiB", w->path);
	uint32_t id = (uint32_t)(w->pos / 16);
	buf_t *b = &w->tmp;
	buf_reset(b);
	buf_put_uvarint(b, ls->n);
	VEC_RESERVE(&w->keys, ls->n);
	for (size_t i = 0; i < ls->n; i++) {
		uint32_t ns = 0, vs = 0;
		if ((rc = sym_of(w, ls->v[i].name, &ns, err)) || (rc = sym_of(w, ls->v[i].value, &vs, err)))
			return rc;
		buf_put_uvarint(b, ns);
		buf_put_uvarint(b, vs);
		w->keys.v[i] = ((uint64_t)ns << 32) | vs;
	}
	buf_put_uvarint(b, n);
	for (size_t i = 0; i < n; i++) {
		if (i == 0) {
			buf_put_varint(b, chks[0].mint);
			buf_put_uvarint(b, (uint64_t)(chks[0].maxt - chks[0].mint));
			buf_put_uvarint(b, chks[0].ref);
		} else {
			buf_put_uvarint(b, (uint64_t)(chks[i].mint - chks[i - 1].maxt));
			buf_put_uvarint(b, (uint64_t)(chks[i].maxt - chks[i].mint));
			buf_put_varint(b, (int64_t)(chks[i].ref - chks[i - 1].ref));
		}
	}
	uint8_t hdr[VARINT_MAX_LEN], crc[4];
	size_t hl = uvarint_put(hdr, b->n);
	be32_put(crc, crc32c(0, b->p, b->n));
	if ((rc = w_write(w, hdr, hl, err)) || (rc = w_write(w, b->p, b->n, err)) || (rc = w_write(w, crc, 4, err)))
		return rc;
	if (hl + b->n + 4 > w->max_series)
		w->max_series = hl + b->n + 4;
	/* postings: only after the series is written, so a failed series leaves none behind */
	for (size_t i = 0; i < ls->n; i++) {
		uint64_t key = w->keys.v[i], idx;
		if (!imap_get(&w->pair_idx, key, &idx)) {
			idx = w->pairs.n;
			VEC_RESERVE(&w->pairs, w->pairs.n + 1);
			w->pairs.v[w->pairs.n++] = (pair_t){(uint32_t)(key >> 32), (uint32_t)key, {0}};
			imap_put(&w->pair_idx, key, idx);
		}
		VEC_PUSH(&w->pairs.v[idx].ids, id);
	}
	VEC_PUSH(&w->all, id);
	w->held += ls->n + 1;
	arena_reset(&w->last_arena);
	w->last = labels_copy(&w->last_arena, ls);
	w->have_last = true;
	if (w->held * sizeof(uint32_t) >= w->mem_limit)
		return spill_run(w, err);
	return 0;
}

/* A sequential cursor over one spilled run. */
typedef struct cursor {
	spill_reader_t rd;
	bool done;            /* no group left */
	uint32_t name, value; /* the current group's pair */
	uint32_t left;        /* IDs left in the current group (first: in the run's all-postings) */
} cursor_t;

static int cur_u32s(cursor_t *c, uint32_t *out, size_t n, err_t *err)
{
	const uint8_t *p;
	int rc = spill_reader_need(&c->rd, n * sizeof(uint32_t), &p, err);
	if (rc)
		return rc;
	memcpy(out, p, n * sizeof(uint32_t));
	spill_reader_skip(&c->rd, n * sizeof(uint32_t));
	return 0;
}

static int cur_next_group(cursor_t *c, err_t *err)
{
	if (spill_reader_left(&c->rd) == 0) {
		c->done = true;
		return 0;
	}
	uint32_t h[3];
	int rc = cur_u32s(c, h, 3, err);
	if (!rc)
		c->name = h[0], c->value = h[1], c->left = h[2];
	return rc;
}

/* Where merged postings go: the index file (length, count, BE32 IDs, CRC32C, 4-byte aligned) or a
 * new run in the temp file. */
typedef struct sink {
	index_writer_t *w;
	bool to_index;
	uint32_t crc;
} sink_t;

static int sink_begin(sink_t *k, const pair_t *p, uint64_t count, uint64_t *off, err_t *err)
{
	index_writer_t *w = k->w;
	if (!k->to_index) {
		uint32_t hdr[3] = {p ? p->name : 0, p ? p->value : 0, (uint32_t)count};
		return p ? spill_u32s(w, hdr, 3, err) : spill_u32s(w, &hdr[2], 1, err);
	}
	if (count > (UINT32_MAX - 4) / 4)
		return err_set(err, ERR_LIMIT, "index %s: a postings list of %llu series exceeds 4 GiB", w->path,
			       (unsigned long long)count);
	int rc = w_pad(w, 4, err);
	if (rc)
		return rc;
	*off = w->pos;
	uint8_t b[8];
	be32_put(b, (uint32_t)(4 + 4 * count));
	be32_put(b + 4, (uint32_t)count);
	k->crc = crc32c(0, b + 4, 4);
	return w_write(w, b, 8, err);
}

static int sink_ids(sink_t *k, const uint32_t *ids, size_t n, err_t *err)
{
	if (!k->to_index)
		return spill_u32s(k->w, ids, n, err);
	uint8_t be[4096];
	while (n) {
		size_t m = n < sizeof be / 4 ? n : sizeof be / 4;
		for (size_t i = 0; i < m; i++)
			be32_put(be + 4 * i, ids[i]);
		k->crc = crc32c(k->crc, be, 4 * m);
		int rc = w_write(k->w, be, 4 * m, err);
		if (rc)
			return rc;
		ids += m, n -= m;
	}
	return 0;
}

static int sink_end(sink_t *k, err_t *err)
{
	if (!k->to_index)
		return 0;
	uint8_t b[4];
	be32_put(b, k->crc);
	return w_write(k->w, b, 4, err);
}

static int cur_copy(cursor_t *c, sink_t *k, err_t *err)
{
	uint32_t ids[1024];
	while (c->left) {
		size_t m = c->left < ARRAY_LEN(ids) ? c->left : ARRAY_LEN(ids);
		int rc = cur_u32s(c, ids, m, err);
		if (!rc)
			rc = sink_ids(k, ids, m, err);
		if (rc)
			return rc;
		c->left -= (uint32_t)m;
	}
	return 0;
}

/* Merges runs (chronological), then the in-memory run when mem, into k: the all-postings, then
 * every label pair in order (w->pairs sorted). Offsets of the lists go to all_off / po_off (index
 * only). */
static int merge_runs(index_writer_t *w, const run_t *runs, size_t nruns, bool mem, sink_t *k, uint64_t *all_off,
		      uint64_t *po_off, err_t *err)
{
	cursor_t *cs = xcalloc(nruns ? nruns : 1, sizeof *cs);
	for (size_t i = 0; i < nruns; i++)
		spill_reader_init(&cs[i].rd, &w->spill, runs[i].off, runs[i].end, MERGE_BUF);
	int rc = 0;
	uint64_t total = mem ? w->all.n : 0, off = 0;
	for (size_t i = 0; !rc && i < nruns; i++)
		if (!(rc = cur_u32s(&cs[i], &cs[i].left, 1, err)))
			total += cs[i].left;
	if (!rc)
		rc = sink_begin(k, NULL, total, &off, err);
	for (size_t i = 0; !rc && i < nruns; i++)
		rc = cur_copy(&cs[i], k, err);
	if (!rc && mem)
		rc = sink_ids(k, w->all.v, w->all.n, err);
	if (!rc)
		rc = sink_end(k, err);
	if (all_off)
		*all_off = off;
	for (size_t i = 0; !rc && i < nruns; i++)
		rc = cur_next_group(&cs[i], err);
	for (size_t p = 0; !rc && p < w->pairs.n; p++) {
		const pair_t *pr = &w->pairs.v[p];
		total = mem ? pr->ids.n : 0;
		for (size_t i = 0; i < nruns; i++)
			if (!cs[i].done && cs[i].name == pr->name && cs[i].value == pr->value)
				total += cs[i].left;
		if (!total)
			continue;
		rc = sink_begin(k, pr, total, &off, err);
		for (size_t i = 0; !rc && i < nruns; i++)
			if (!cs[i].done && cs[i].name == pr->name && cs[i].value == pr->value &&
			    !(rc = cur_copy(&cs[i], k, err)))
				rc = cur_next_group(&cs[i], err);
		if (!rc && mem)
			rc = sink_ids(k, pr->ids.v, pr->ids.n, err);
		if (!rc)
			rc = sink_end(k, err);
		if (po_off)
			po_off[p] = off;
	}
	for (size_t i = 0; !rc && i < nruns; i++)
		if (!cs[i].done)
			rc = err_set(err, ERR_INTERNAL, "index %s: temp file %s: run %zu holds postings of an unknown label pair",
				     w->path, w->spill.path, i);
	for (size_t i = 0; i < nruns; i++)
		spill_reader_release(&cs[i].rd);
	free(cs);
	return rc;
}

/* Merges spilled runs MERGE_FANIN at a time until at most MERGE_FANIN are left. */
static int reduce_runs(index_writer_t *w, err_t *err)
{
	while (w->runs.n > MERGE_FANIN) {
		size_t out = 0;
		for (size_t a = 0; a < w->runs.n; a += MERGE_FANIN) {
			size_t b = a + MERGE_FANIN < w->runs.n ? a + MERGE_FANIN : w->runs.n;
			run_t r = w->runs.v[a];
			if (b - a > 1) {
				sink_t k = {w, false, 0};
				r.off = w->spill.end;
				int rc = merge_runs(w, w->runs.v + a, b - a, false, &k, NULL, NULL, err);
				if (rc)
					return rc;
				r.end = w->spill.end;
			}
			w->runs.v[out++] = r; /* out <= a: runs not yet merged are not overwritten */
		}
		w->runs.n = out;
	}
	return 0;
}

int index_writer_close(index_writer_t *w, err_t *err)
{
	int rc = 0;
	if (!w->have_symbols)
		rc = index_writer_add_symbols(w, NULL, 0, err);
	/* symbols by index, for the offset tables */
	str_t *syms = xcalloc(w->nsym ? w->nsym : 1, sizeof(str_t));
	hmap_entry_t *e;
	for (size_t it = 0; hmap_next(&w->sym, &it, &e);)
		syms[(uintptr_t)e->val - 1] = e->key;
	if (w->pairs.n)
		qsort(w->pairs.v, w->pairs.n, sizeof(pair_t), pair_cmp);
	if (!rc)
		rc = reduce_runs(w, err);
	uint64_t *li_off = xcalloc(w->pairs.n + 1, sizeof(uint64_t)); /* label index offset per name start */
	uint64_t *po_off = xcalloc(w->pairs.n + 1, sizeof(uint64_t));
	buf_t *b = &w->tmp;

	/* Label indices (legacy): one per name, values sorted. */
	w->toc[2] = w->pos;
	for (size_t i = 0; !rc && i < w->pairs.n;) {
		size_t j = i;
		while (j < w->pairs.n && w->pairs.v[j].name == w->pairs.v[i].name)
			j++;
		if ((rc = w_pad(w, 4, err)))
			break;
		li_off[i] = w->pos;
		buf_reset(b);
		buf_put_be32(b, 1);
		buf_put_be32(b, (uint32_t)(j - i));
		for (size_t k = i; k < j; k++)
			buf_put_be32(b, w->pairs.v[k].value);
		rc = w_section(w, b, err);
		i = j;
	}
	/* Postings: all-postings first, then per (name, value): the spilled runs and the in-memory one. */
	w->toc[4] = w->pos;
	uint64_t all_off = 0;
	if (!rc) {
		sink_t k = {w, true, 0};
		rc = merge_runs(w, w->runs.v, w->runs.n, true, &k, &all_off, po_off, err);
	}
	/* Label offset table. */
	w->toc[3] = w->pos;
	if (!rc) {
		buf_reset(b);
		uint32_t cnt = 0;
		buf_put_be32(b, 0);
		for (size_t i = 0; i < w->pairs.n; i++) {
			if (i > 0 && w->pairs.v[i].name == w->pairs.v[i - 1].name)
				continue;
			str_t name = syms[w->pairs.v[i].name];
			buf_putc(b, 1);
			buf_put_uvarint(b, name.n);
			buf_append_str(b, name);
			buf_put_uvarint(b, li_off[i]);
			cnt++;
		}
		be32_put((uint8_t *)b->p, cnt);
		rc = w_section(w, b, err);
	}
	/* Postings offset table. */
	w->toc[5] = w->pos;
	if (!rc) {
		buf_reset(b);
		buf_put_be32(b, (uint32_t)(w->pairs.n + 1));
		buf_putc(b, 2);
		buf_put_uvarint(b, 0);
		buf_put_uvarint(b, 0);
		buf_put_uvarint(b, all_off);
		for (size_t i = 0; i < w->pairs.n; i++) {
			str_t name = syms[w->pairs.v[i].name], value = syms[w->pairs.v[i].value];
			buf_putc(b, 2);
			buf_put_uvarint(b, name.n);
			buf_append_str(b, name);
			buf_put_uvarint(b, value.n);
			buf_append_str(b, value);
			buf_put_uvarint(b, po_off[i]);
		}
		rc = w_section(w, b, err);
	}
	if (!rc) {
		uint8_t toc[52];
		for (int i = 0; i < 6; i++)
			be64_put(toc + 8 * i, w->toc[i]);
		be32_put(toc + 48, crc32c(0, toc, 48));
		rc = w_write(w, toc, 52, err);
	}
	if (!rc)
		rc = w_flush(w, err);
	if (!rc && fsync(w->fd) != 0)
		rc = err_errno(err, "fsync %s", w->path);
	free(syms);
	free(li_off);
	free(po_off);
	w_free(w);
	return rc;
}

uint64_t index_writer_max_series_size(const index_writer_t *w)
{
	return w->max_series;
}

/* ================================ reader ================================ */

static int rcorrupt(const index_reader_t *r, err_t *err, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int rcorrupt(const index_reader_t *r, err_t *err, uint64_t off, const char *fmt, ...)
{
	char msg[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return err_set(err, ERR_CORRUPT, "index: %s: offset %llu: %s", r->path, (unsigned long long)off, msg);
}

#define RCORRUPT(r, off, ...) rcorrupt((r), err, (off), __VA_ARGS__)

/* Header and TOC checks shared by both openers; r->p/len are set. */
static int check_header_toc(index_reader_t *r, err_t *err)
{
	if (r->len < 5 + 52)
		return RCORRUPT(r, 0, "file of %zu bytes is too short for header and TOC", r->len);
	if (be32_get(r->p) != INDEX_MAGIC)
		return RCORRUPT(r, 0, "bad magic 0x%08x", be32_get(r->p));
	if (r->p[4] != 2)
		return RCORRUPT(r, 4, "unsupported index version %u", r->p[4]);
	uint64_t v[6];
	indextoc_fault_t f;
	switch (indextoc_toc(r->p + r->len - INDEXTOC_TOC_LEN, r->len - INDEXTOC_TOC_LEN, v, &f)) {
	case INDEXTOC_OK:
		break;
	case INDEXTOC_TOC_CRC:
		return RCORRUPT(r, r->len - 52, "bad TOC CRC32C");
	default:
		return RCORRUPT(r, (uint64_t)(f.at - r->p), "TOC entry %u (%llu) points past the end", f.entry,
				(unsigned long long)f.value);
	}
	r->toc_symbols = v[0], r->toc_series = v[1], r->toc_label_indices = v[2];
	r->toc_label_offsets = v[3], r->toc_postings = v[4], r->toc_postings_offsets = v[5];
	return 0;
}

int index_reader_open(index_reader_t *r, const char *path, err_t *err)
{
	memset(r, 0, sizeof *r);
	r->path = xstrdup(path);
	/* A file too short for header and TOC is left unmapped; check_header_toc reports it. */
	int rc = mapfile_map(path, 5 + 52, &r->p, &r->len, err);
	if (!rc) {
		r->mapped = true;
		rc = check_header_toc(r, err);
	}
	if (rc)
		index_reader_close(r);
	return rc;
}

int index_reader_open_mem(index_reader_t *r, const char *name, const uint8_t *p, size_t len, err_t *err)
{
	memset(r, 0, sizeof *r);
	r->path = xstrdup(name);
	r->p = p;
	r->len = len;
	int rc = check_header_toc(r, err);
	if (rc)
		index_reader_close(r);
	return rc;
}

void index_reader_close(index_reader_t *r)
{
	if (r->mapped)
		mapfile_unmap(r->p, r->len);
	indextoc_symbols_release(&r->syms);
	indextoc_ptab_release(&r->ptab);
	free(r->path);
	memset(r, 0, sizeof *r);
}

/* A len BE32 + body + CRC section at off: returns body pointer/len after checks. */
static int read_section(index_reader_t *r, uint64_t off, const uint8_t **body, size_t *blen, const char *what,
			err_t *err)
{
	indextoc_fault_t f;
	switch (indextoc_section(r->p, r->len, off, 0, body, blen, &f)) {
	case INDEXTOC_OK:
		return 0;
	case INDEXTOC_SEC_NOLEN:
		return RCORRUPT(r, off, "%s: length field past end of file", what);
	case INDEXTOC_SEC_LEN:
		return RCORRUPT(r, off, "%s: length %u runs past end of file (%zu bytes)", what, (uint32_t)f.value,
				r->len);
	default:
		return RCORRUPT(r, off, "%s: bad CRC32C", what);
	}
}

int index_reader_load(index_reader_t *r, err_t *err)
{
	if (r->loaded)
		return 0;
	const uint8_t *b;
	size_t bl;
	indextoc_fault_t f;
	int rc;
	/* what a failed earlier load left */
	indextoc_symbols_release(&r->syms);
	indextoc_ptab_release(&r->ptab);
	if (r->toc_symbols) {
		if ((rc = read_section(r, r->toc_symbols, &b, &bl, "symbol table", err)))
			return rc;
		switch (indextoc_symbols_init(&r->syms, b, bl, &f)) {
		case INDEXTOC_OK:
			break;
		case INDEXTOC_SHORT:
			return RCORRUPT(r, r->toc_symbols, "symbol table too short");
		case INDEXTOC_SYM_COUNT:
			return RCORRUPT(r, r->toc_symbols, "absurd symbol count %u", r->syms.n);
		default:
			return RCORRUPT(r, (uint64_t)(f.at - r->p), "symbol %u runs past the symbol table", f.entry);
		}
	}
	if (r->toc_postings_offsets) {
		if ((rc = read_section(r, r->toc_postings_offsets, &b, &bl, "postings offset table", err)))
			return rc;
		switch (indextoc_ptab_init(&r->ptab, b, bl, r->len, false, &f)) {
		case INDEXTOC_OK:
			break;
		case INDEXTOC_SHORT:
			return RCORRUPT(r, r->toc_postings_offsets, "postings offset table too short");
		case INDEXTOC_PT_ENTRY:
			return RCORRUPT(r, (uint64_t)(f.at - r->p), "malformed postings offset table entry %u", f.entry);
		case INDEXTOC_PT_OFFSET:
			return RCORRUPT(r, (uint64_t)(f.at - r->p), "postings offset %llu past end of file",
					(unsigned long long)f.value);
		default:
			return RCORRUPT(r, (uint64_t)(f.at - r->p), "postings offset table not sorted");
		}
	}
	r->loaded = true;
	return 0;
}

int index_reader_symbol(index_reader_t *r, uint32_t idx, str_t *out, err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	if (idx >= r->syms.n)
		return err_set(err, ERR_CORRUPT, "index: %s: symbol reference %u out of range (%u symbols)", r->path, idx,
			       r->syms.n);
	*out = indextoc_symbol(&r->syms, idx);
	return 0;
}

int index_reader_symbol_index(index_reader_t *r, str_t s, uint32_t *idx, err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	return indextoc_symbol_find(&r->syms, s, idx) ? 0 : ERR_NOT_FOUND;
}

static int read_postings(index_reader_t *r, arena_t *a, uint64_t off, postings_t *out, err_t *err)
{
	const uint8_t *b;
	size_t bl;
	int rc = read_section(r, off, &b, &bl, "postings list", err);
	if (rc)
		return rc;
	if (bl < 4)
		return RCORRUPT(r, off, "postings list too short");
	uint32_t n = be32_get(b);
	if ((uint64_t)n * 4 + 4 != bl)
		return RCORRUPT(r, off, "postings list: %u entries do not fit its length %zu", n, bl);
	out->v = arena_alloc(a, (size_t)n * 4 + 4);
	out->n = n;
	const uint8_t *e = b + 4;
	for (uint32_t i = 0; i < n; i++)
		out->v[i] = be32_get(e + 4 * (size_t)i);
	for (uint32_t i = 1; i < n; i++)
		if (out->v[i] <= out->v[i - 1])
			return RCORRUPT(r, off, "postings list not strictly ascending at entry %u", i);
	return 0;
}

int index_reader_postings(index_reader_t *r, arena_t *a, str_t name, str_t value, postings_t *out, err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	out->v = NULL, out->n = 0;
	const indextoc_name_t *nm = indextoc_ptab_name(&r->ptab, name);
	uint64_t off;
	uint32_t next;
	if (!nm || !indextoc_ptab_find(&r->ptab, nm, value, &off, &next))
		return 0;
	return read_postings(r, a, off, out, err);
}

/* Union of postings of every value of name for which match(value) == want. */
static int postings_for_values(index_reader_t *r, arena_t *a, const matcher_t *m, bool want, postings_t *out,
			       err_t *err)
{
	out->v = NULL, out->n = 0;
	const indextoc_name_t *nm = indextoc_ptab_name(&r->ptab, m->name);
	if (!nm)
		return 0;
	const str_t *lits;
	int nl = want ? matcher_literal_values(m, &lits) : -1;
	VEC(postings_t) lists = {0};
	int rc = 0;
	if (nl >= 0) {
		for (int i = 0; i < nl && !rc; i++) {
			postings_t p;
			rc = index_reader_postings(r, a, m->name, lits[i], &p, err);
			if (!rc && p.n)
				VEC_PUSH(&lists, p);
		}
	} else {
		uint32_t pos = nm->first;
		while (pos < nm->end && !rc) {
			str_t v;
			uint64_t off;
			pos = indextoc_ptab_entry(&r->ptab, pos, &v, &off);
			if (matcher_matches(m, v) == want) {
				postings_t p;
				rc = read_postings(r, a, off, &p, err);
				if (!rc)
					VEC_PUSH(&lists, p);
			}
		}
	}
	if (!rc)
		*out = postings_merge(a, lists.v, lists.n);
	VEC_FREE(&lists);
	return rc;
}

int index_reader_postings_for_matchers(index_reader_t *r, arena_t *a, const matcher_t *ms, size_t n, postings_t *out,
				       err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	postings_t acc = {NULL, 0}, neg = {NULL, 0};
	bool have_pos = false, have_neg = false;
	/* Positive (non-empty-matching) matchers first so negatives subtract from a small set. */
	for (size_t i = 0; i < n; i++) {
		const matcher_t *m = &ms[i];
		if (matcher_matches_empty(m))
			continue;
		postings_t p;
		if ((rc = postings_for_values(r, a, m, true, &p, err)))
			return rc;
		acc = have_pos ? postings_intersect(a, acc, p) : p;
		have_pos = true;
		if (!acc.n) {
			*out = acc;
			return 0;
		}
	}
	if (!have_pos) {
		if ((rc = index_reader_postings(r, a, STR_NULL, STR_NULL, &acc, err)))
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		const matcher_t *m = &ms[i];
		if (!matcher_matches_empty(m))
			continue;
		/* Matches "": series lacking the label match, so remove series whose value does not match. */
		postings_t p;
		if ((rc = postings_for_values(r, a, m, false, &p, err)))
			return rc;
		if (p.n) {
			postings_t two[2] = {neg, p};
			neg = have_neg ? postings_merge(a, two, 2) : p;
			have_neg = true;
		}
	}
	*out = have_neg ? postings_subtract(a, acc, neg) : acc;
	return 0;
}

int index_reader_next_series(index_reader_t *r, uint32_t *id, err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	/* The series section ends where the next present section starts. */
	uint64_t end = r->len;
	uint64_t next_sections[] = {r->toc_label_indices, r->toc_postings, r->toc_label_offsets, r->toc_postings_offsets};
	for (size_t i = 0; i < 4; i++)
		if (next_sections[i] > r->toc_series && next_sections[i] < end)
			end = next_sections[i];
	uint64_t off;
	if (*id == 0) {
		if (!r->toc_series) {
			*id = 0;
			return 0;
		}
		off = (r->toc_series + 15) / 16 * 16; /* the TOC may point at the padding before it */
	} else {
		uint64_t cur = (uint64_t)*id * 16, blen;
		if (cur < r->toc_series || cur >= end)
			return RCORRUPT(r, cur, "series %u: not in the series section", *id);
		int k = uvarint_get(r->p + cur, r->p + end, &blen);
		if (k <= 0 || blen + 4 > end - cur - (uint64_t)k)
			return RCORRUPT(r, cur, "series %u: length runs past the series section", *id);
		off = (cur + (uint64_t)k + blen + 4 + 15) / 16 * 16;
	}
	if (off >= end) {
		*id = 0;
		return 0;
	}
	if (off / 16 > UINT32_MAX)
		return RCORRUPT(r, off, "series section beyond 64 GiB");
	*id = (uint32_t)(off / 16);
	return 0;
}

int index_reader_series(index_reader_t *r, arena_t *a, uint32_t id, labels_t *ls, chunk_meta_t **chks, size_t *nchks,
			err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	uint64_t off = (uint64_t)id * 16;
	if (off < 5 || off >= r->len)
		return RCORRUPT(r, off, "series %u: reference past end of file", id);
	const uint8_t *end = r->p + r->len;
	uint64_t blen;
	int k = uvarint_get(r->p + off, end, &blen);
	if (k <= 0 || blen + 4 > (uint64_t)(end - (r->p + off + (size_t)k)))
		return RCORRUPT(r, off, "series %u: length runs past end of file", id);
	const uint8_t *p = r->p + off + k, *be = p + blen;
	if (crc32c(0, p, (size_t)blen) != be32_get(be))
		return RCORRUPT(r, off, "series %u: bad CRC32C", id);
	uint64_t nl;
	if ((k = uvarint_get(p, be, &nl)) <= 0 || nl > blen)
		return RCORRUPT(r, off, "series %u: bad label count", id);
	p += k;
	ls->n = (size_t)nl;
	ls->v = arena_alloc(a, (size_t)nl * sizeof(label_t) + 1);
	for (uint64_t i = 0; i < nl; i++) {
		uint64_t ns, vs;
		if ((k = uvarint_get(p, be, &ns)) <= 0)
			return RCORRUPT(r, off, "series %u: bad label name ref", id);
		p += k;
		if ((k = uvarint_get(p, be, &vs)) <= 0)
			return RCORRUPT(r, off, "series %u: bad label value ref", id);
		p += k;
		if (ns > UINT32_MAX || vs > UINT32_MAX)
			return RCORRUPT(r, off, "series %u: symbol ref out of range", id);
		if ((rc = index_reader_symbol(r, (uint32_t)ns, &ls->v[i].name, err)) ||
		    (rc = index_reader_symbol(r, (uint32_t)vs, &ls->v[i].value, err)))
			return err_wrap(err, "index: %s: offset %llu: series %u", r->path, (unsigned long long)off, id);
	}
	uint64_t nc;
	if ((k = uvarint_get(p, be, &nc)) <= 0 || nc > blen)
		return RCORRUPT(r, off, "series %u: bad chunk count", id);
	p += k;
	chunk_meta_t *c = arena_alloc(a, (size_t)nc * sizeof(chunk_meta_t) + 1);
	for (uint64_t i = 0; i < nc; i++) {
		int64_t mint;
		uint64_t d, dur, ref;
		if (i == 0) {
			if ((k = varint_get(p, be, &mint)) <= 0)
				goto bad;
			p += k;
			if ((k = uvarint_get(p, be, &dur)) <= 0)
				goto bad;
			p += k;
			if ((k = uvarint_get(p, be, &ref)) <= 0)
				goto bad;
			p += k;
			c[0].mint = mint;
			c[0].maxt = (int64_t)((uint64_t)mint + dur);
			c[0].ref = ref;
		} else {
			int64_t dref;
			if ((k = uvarint_get(p, be, &d)) <= 0)
				goto bad;
			p += k;
			if ((k = uvarint_get(p, be, &dur)) <= 0)
				goto bad;
			p += k;
			if ((k = varint_get(p, be, &dref)) <= 0)
				goto bad;
			p += k;
			c[i].mint = (int64_t)((uint64_t)c[i - 1].maxt + d);
			c[i].maxt = (int64_t)((uint64_t)c[i].mint + dur);
			c[i].ref = c[i - 1].ref + (uint64_t)dref;
		}
	}
	index_chunk_metas_order(c, (size_t)nc);
	*chks = c;
	*nchks = (size_t)nc;
	return 0;
bad:
	return RCORRUPT(r, off, "series %u: malformed chunk metadata", id);
}

void index_chunk_metas_order(chunk_meta_t *c, size_t n)
{
	size_t i = 1;
	while (i < n && c[i].mint > c[i - 1].maxt)
		i++;
	for (; i < n; i++) { /* insertion sort from the first step back: rare, and n is small */
		chunk_meta_t x = c[i];
		size_t j = i;
		while (j > 0 && (c[j - 1].mint > x.mint || (c[j - 1].mint == x.mint && c[j - 1].maxt > x.maxt))) {
			c[j] = c[j - 1];
			j--;
		}
		c[j] = x;
	}
}

static int str_cmp_q(const void *a, const void *b)
{
	return str_cmp(*(const str_t *)a, *(const str_t *)b);
}

static void sort_uniq(str_t *v, size_t *n)
{
	if (*n < 2)
		return;
	qsort(v, *n, sizeof(str_t), str_cmp_q);
	size_t w = 1;
	for (size_t i = 1; i < *n; i++)
		if (!str_eq(v[i], v[w - 1]))
			v[w++] = v[i];
	*n = w;
}

/* The label names (name == NULL) or the values of label *name of the series matching ms[0..n), sorted
 * and unique; *out is allocated in a and set only on success. */
static int series_strings(index_reader_t *r, arena_t *a, const matcher_t *ms, size_t n, const str_t *name,
			  str_t **out, size_t *nout, err_t *err)
{
	postings_t p;
	int rc = index_reader_postings_for_matchers(r, a, ms, n, &p, err);
	if (rc)
		return rc;
	VEC(str_t) strs = {0};
	for (size_t i = 0; i < p.n && !rc; i++) {
		labels_t ls;
		chunk_meta_t *c;
		size_t nc;
		if ((rc = index_reader_series(r, a, p.v[i], &ls, &c, &nc, err)))
			break;
		if (!name) {
			for (size_t k = 0; k < ls.n; k++)
				VEC_PUSH(&strs, ls.v[k].name);
			continue;
		}
		bool found;
		str_t v = labels_get(&ls, *name, &found);
		if (found)
			VEC_PUSH(&strs, v);
	}
	if (!rc) {
		sort_uniq(strs.v, &strs.n);
		*out = arena_memdup(a, strs.v ? (void *)strs.v : (void *)"", strs.n * sizeof(str_t));
		*nout = strs.n;
	}
	VEC_FREE(&strs);
	return rc;
}

int index_reader_label_names(index_reader_t *r, arena_t *a, const matcher_t *ms, size_t n, str_t **out, size_t *nout,
			     err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	if (n == 0) {
		*out = arena_alloc(a, (r->ptab.nnames + 1) * sizeof(str_t));
		*nout = 0;
		for (size_t i = 0; i < r->ptab.nnames; i++)
			if (r->ptab.names[i].name.n)
				(*out)[(*nout)++] = r->ptab.names[i].name;
		return 0;
	}
	return series_strings(r, a, ms, n, NULL, out, nout, err);
}

int index_reader_label_values(index_reader_t *r, arena_t *a, str_t name, const matcher_t *ms, size_t n, str_t **out,
			      size_t *nout, err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	*nout = 0;
	*out = NULL;
	const indextoc_name_t *nm = indextoc_ptab_name(&r->ptab, name);
	if (!nm)
		return 0;
	if (n == 0) {
		*out = arena_alloc(a, ((size_t)nm->nvalues + 1) * sizeof(str_t));
		uint64_t off;
		for (uint32_t pos = nm->first; pos < nm->end; (*nout)++)
			pos = indextoc_ptab_entry(&r->ptab, pos, &(*out)[*nout], &off);
		return 0;
	}
	return series_strings(r, a, ms, n, &name, out, nout, err);
}

int index_reader_each_name(index_reader_t *r, void (*fn)(void *arg, str_t name, size_t nvalues), void *arg, err_t *err)
{
	int rc = index_reader_load(r, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < r->ptab.nnames; i++)
		if (r->ptab.names[i].name.n)
			fn(arg, r->ptab.names[i].name, r->ptab.names[i].nvalues);
	return 0;
}
