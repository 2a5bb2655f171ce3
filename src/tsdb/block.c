/*
 * block.c — block writer and block reader.
 */
#include "tsdb/block.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/hmap.h"
#include "base/mapfile.h"
#include "base/varint.h"
#include "base/vec.h"
#include "tsdb/spill.h"
#include "tsdb/xor.h"

/* ================================ writer ================================ */

/*
 * Series are kept in a run: label arrays (pointing at interned strings) and chunk metas, until the
 * run holds mem_limit bytes; then it is sorted by labels and appended to an unlinked temp file in
 * the block's temp dir as records
 *     u32 len, then: uvarint nlabels, nlabels x (uvarint name id, uvarint value id),
 *                    uvarint nchunks, nchunks x (varint mint, uvarint maxt - mint, uvarint ref)
 * (ids index the interned strings). finish merges the runs and the last, in-memory one by labels
 * straight into the index writer (MERGE_FANIN runs at a time; more are first merged into longer
 * runs). Sorted input needs no sorting at all: each run is already in order.
 */
#define MERGE_FANIN 16
#define MERGE_BUF (64u << 10)

typedef struct series_rec {
	labels_t ls;
	uint32_t *ids; /* name, value interned ids per label */
	size_t meta_off, nmeta;
} series_rec_t;

typedef struct pending_chunk {
	int64_t mint, maxt;
	size_t off, len;
} pending_chunk_t;

typedef struct run {
	uint64_t off, end; /* byte range in the temp file */
} run_t;

struct block_writer {
	char *parent, *tmpdir;
	char ulid[ULID_LEN + 1];
	block_writer_opts_t opts;
	chunkfile_writer_t cw;
	/* every distinct label name and value: bounded by the symbol table */
	arena_t sym_arena;
	hmap_t sym; /* string -> id + 1 */
	VEC(str_t) syms;
	/* the in-memory run */
	arena_t arena; /* label arrays and ids */
	VEC(series_rec_t) series;
	VEC(chunk_meta_t) metas;
	bool run_sorted;
	/* spilled runs */
	spill_t spill;
	VEC(run_t) runs;
	buf_t rec; /* scratch: one encoded record */
	/* the current series */
	xor_enc_t enc;
	buf_t data;                   /* encoded chunks of the current series */
	VEC(pending_chunk_t) pending; /* their bounds */
	VEC(chunk_t) chunks;
	VEC(uint64_t) refs;
	int64_t mint, maxt;
	uint64_t nseries, nsamples, nchunks;
	uint64_t max_chunk, max_series; /* index_stats */
};

static void path_join(char *out, size_t n, const char *a, const char *b)
{
	snprintf(out, n, "%s/%s", a, b);
}

int block_writer_new(block_writer_t **out, const char *parent_dir, const block_writer_opts_t *opts, err_t *err)
{
	block_writer_t *bw = xcalloc(1, sizeof *bw);
	if (opts)
		bw->opts = *opts;
	if (bw->opts.chunk_range <= 0)
		bw->opts.chunk_range = BLOCK_DEFAULT_DURATION;
	if (bw->opts.mem_limit == 0)
		bw->opts.mem_limit = BLOCK_WRITER_MEM_DEFAULT;
	ulid_new(bw->ulid, clock_now_ms());
	bw->parent = xstrdup(parent_dir);
	size_t n = strlen(parent_dir) + ULID_LEN + 32;
	bw->tmpdir = xmalloc(n);
	snprintf(bw->tmpdir, n, "%s/%s.tmp-for-creation", parent_dir, bw->ulid);
	arena_init(&bw->sym_arena, 0);
	hmap_init(&bw->sym, 0);
	arena_init(&bw->arena, 0);
	bw->run_sorted = true;
	spill_init(&bw->spill);
	buf_init(&bw->rec);
	xor_enc_init(&bw->enc);
	buf_init(&bw->data);
	bw->mint = INT64_MAX;
	bw->maxt = INT64_MIN;
	int rc = 0;
	if (mkdir(parent_dir, 0755) != 0 && errno != EEXIST)
		rc = err_errno(err, "mkdir %s", parent_dir);
	else if (mkdir(bw->tmpdir, 0755) != 0)
		rc = err_errno(err, "mkdir %s", bw->tmpdir);
	if (!rc) {
		char cdir[4096];
		path_join(cdir, sizeof cdir, bw->tmpdir, "chunks");
		rc = chunkfile_writer_open(&bw->cw, cdir, bw->opts.segment_size, err);
	}
	if (rc) {
		block_writer_abort(bw);
		return rc;
	}
	*out = bw;
	return 0;
}

size_t block_writer_spilled_runs(const block_writer_t *bw)
{
	return bw->runs.n;
}

static void free_writer(block_writer_t *bw)
{
	arena_release(&bw->sym_arena);
	hmap_release(&bw->sym);
	VEC_FREE(&bw->syms);
	arena_release(&bw->arena);
	VEC_FREE(&bw->series);
	VEC_FREE(&bw->metas);
	spill_close(&bw->spill);
	VEC_FREE(&bw->runs);
	buf_release(&bw->rec);
	xor_enc_release(&bw->enc);
	buf_release(&bw->data);
	VEC_FREE(&bw->pending);
	VEC_FREE(&bw->chunks);
	VEC_FREE(&bw->refs);
	free(bw->parent);
	free(bw->tmpdir);
	free(bw);
}

void block_writer_abort(block_writer_t *bw)
{
	if (!bw)
		return;
	chunkfile_writer_abort(&bw->cw);
	fsutil_rm_rf(bw->tmpdir, NULL);
	free_writer(bw);
}

static void finish_chunk(block_writer_t *bw, int64_t mint, int64_t maxt)
{
	size_t len;
	const uint8_t *p = xor_enc_bytes(&bw->enc, &len);
	VEC_RESERVE(&bw->pending, bw->pending.n + 1);
	bw->pending.v[bw->pending.n++] = (pending_chunk_t){mint, maxt, bw->data.n, len};
	buf_append(&bw->data, p, len);
	xor_enc_reset(&bw->enc);
}

static int64_t range_for_ts(int64_t t, int64_t width)
{
	return (t / width) * width + width;
}

static int64_t chunk_end_time(int64_t start, int64_t cur, int64_t max)
{
	int64_t n = (max - start) / ((cur - start + 1) * 4);
	if (n <= 1)
		return max;
	return start + (max - start) / n;
}

/* The interned copy of s and its id. */
static str_t intern(block_writer_t *bw, str_t s, uint32_t *id)
{
	void *v = hmap_get(&bw->sym, s);
	if (v) {
		*id = (uint32_t)((uintptr_t)v - 1);
		return bw->syms.v[*id];
	}
	BUG_ON(bw->syms.n >= UINT32_MAX);
	str_t c = str_from(arena_memdup(&bw->sym_arena, s.n ? s.p : "", s.n), s.n);
	*id = (uint32_t)bw->syms.n;
	VEC_PUSH(&bw->syms, c);
	hmap_put(&bw->sym, c, (void *)(uintptr_t)(*id + 1));
	return c;
}

static size_t run_bytes(const block_writer_t *bw)
{
	return bw->arena.used + bw->series.n * sizeof(series_rec_t) + bw->metas.n * sizeof(chunk_meta_t);
}

static int series_cmp(const void *a, const void *b)
{
	return labels_cmp(&((const series_rec_t *)a)->ls, &((const series_rec_t *)b)->ls);
}

/* A series as the merge sees it. */
typedef struct srec {
	labels_t ls;
	const uint32_t *ids;
	const chunk_meta_t *metas;
	size_t nmeta;
} srec_t;

static int spill_record(block_writer_t *bw, const srec_t *r, err_t *err)
{
	buf_t *b = &bw->rec;
	buf_reset(b);
	buf_put_be32(b, 0); /* length, patched below */
	buf_put_uvarint(b, r->ls.n);
	for (size_t i = 0; i < 2 * r->ls.n; i++)
		buf_put_uvarint(b, r->ids[i]);
	buf_put_uvarint(b, r->nmeta);
	for (size_t i = 0; i < r->nmeta; i++) {
		buf_put_varint(b, r->metas[i].mint);
		buf_put_uvarint(b, (uint64_t)(r->metas[i].maxt - r->metas[i].mint));
		buf_put_uvarint(b, r->metas[i].ref);
	}
	if (b->n - 4 > UINT32_MAX)
		return err_set(err, ERR_LIMIT, "block writer %s: a series of %zu chunks is too large", bw->tmpdir,
			       r->nmeta);
	be32_put((uint8_t *)b->p, (uint32_t)(b->n - 4));
	return spill_append(&bw->spill, b->p, b->n, err);
}

/* Sorts the in-memory run, appends it to the temp file and empties it. */
static int spill_run(block_writer_t *bw, err_t *err)
{
	int rc = 0;
	if (!spill_is_open(&bw->spill)) {
		char prefix[4096];
		path_join(prefix, sizeof prefix, bw->tmpdir, "series");
		if ((rc = spill_open(&bw->spill, prefix, err)))
			return rc;
	}
	if (!bw->run_sorted)
		qsort(bw->series.v, bw->series.n, sizeof(series_rec_t), series_cmp);
	run_t run = {bw->spill.end, 0};
	for (size_t i = 0; !rc && i < bw->series.n; i++) {
		const series_rec_t *s = &bw->series.v[i];
		srec_t r = {s->ls, s->ids, bw->metas.v + s->meta_off, s->nmeta};
		rc = spill_record(bw, &r, err);
	}
	if (rc)
		return rc;
	run.end = bw->spill.end;
	VEC_PUSH(&bw->runs, run);
	arena_reset(&bw->arena);
	VEC_CLEAR(&bw->series);
	VEC_CLEAR(&bw->metas);
	bw->run_sorted = true;
	return 0;
}

static int add_record(block_writer_t *bw, const labels_t *ls, const chunk_t *chks, size_t n, uint64_t nsamples,
		      err_t *err);

int block_writer_add_series(block_writer_t *bw, const labels_t *ls, const int64_t *t, const double *v, size_t n,
			    err_t *err)
{
	if (n == 0)
		return 0;
	for (size_t i = 1; i < n; i++)
		if (t[i] <= t[i - 1])
			return err_set(err, ERR_INVALID, "block writer: series sample %zu: timestamp %lld not after %lld", i,
				       (long long)t[i], (long long)t[i - 1]);
	buf_reset(&bw->data);
	VEC_CLEAR(&bw->pending);
	xor_enc_reset(&bw->enc);
	int64_t cmint = 0, cmaxt = 0, next_at = 0;
	bool open = false;
	for (size_t i = 0; i < n; i++) {
		if (open) {
			int num = xor_enc_count(&bw->enc);
			if (num == XOR_SAMPLES_PER_CHUNK / 4)
				next_at = chunk_end_time(cmint, cmaxt, next_at);
			if (t[i] >= next_at || num >= XOR_SAMPLES_PER_CHUNK * 2) {
				finish_chunk(bw, cmint, cmaxt);
				open = false;
			}
		}
		if (!open) {
			open = true;
			cmint = t[i];
			next_at = range_for_ts(t[i], bw->opts.chunk_range);
		}
		xor_enc_append(&bw->enc, t[i], v[i]);
		cmaxt = t[i];
	}
	finish_chunk(bw, cmint, cmaxt);
	VEC_RESERVE(&bw->chunks, bw->pending.n);
	for (size_t i = 0; i < bw->pending.n; i++) {
		pending_chunk_t *pc = &bw->pending.v[i];
		bw->chunks.v[i] = (chunk_t){pc->mint, pc->maxt, CHUNK_ENC_XOR, (const uint8_t *)bw->data.p + pc->off, pc->len};
	}
	return add_record(bw, ls, bw->chunks.v, bw->pending.n, n, err);
}

int block_writer_add_chunks(block_writer_t *bw, const labels_t *ls, const chunk_t *chks, size_t n, uint64_t nsamples,
			    err_t *err)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (chks[i].mint > chks[i].maxt || (i && chks[i].mint <= chks[i - 1].maxt))
			return err_set(err, ERR_INVALID, "block writer: chunk %zu [%lld, %lld] out of order", i,
				       (long long)chks[i].mint, (long long)chks[i].maxt);
	return add_record(bw, ls, chks, n, nsamples, err);
}

/* Writes a series' chunks (n > 0) and records the series. */
static int add_record(block_writer_t *bw, const labels_t *ls, const chunk_t *chks, size_t n, uint64_t nsamples,
		      err_t *err)
{
	VEC_RESERVE(&bw->refs, n);
	int rc = chunkfile_writer_write(&bw->cw, chks, n, bw->refs.v, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		uint64_t rec = (uint64_t)uvarint_len(chks[i].len) + 1 + chks[i].len + 4;
		if (rec > bw->max_chunk)
			bw->max_chunk = rec;
	}
	VEC_RESERVE(&bw->series, bw->series.n + 1);
	series_rec_t *s = &bw->series.v[bw->series.n++];
	s->ls.n = ls->n;
	s->ls.v = arena_alloc(&bw->arena, (ls->n ? ls->n : 1) * sizeof(label_t));
	s->ids = arena_alloc(&bw->arena, (ls->n ? 2 * ls->n : 1) * sizeof(uint32_t));
	for (size_t i = 0; i < ls->n; i++) {
		s->ls.v[i].name = intern(bw, ls->v[i].name, &s->ids[2 * i]);
		s->ls.v[i].value = intern(bw, ls->v[i].value, &s->ids[2 * i + 1]);
	}
	if (bw->series.n > 1 && bw->run_sorted && labels_cmp(&s[-1].ls, &s->ls) > 0)
		bw->run_sorted = false;
	s->meta_off = bw->metas.n;
	s->nmeta = n;
	VEC_RESERVE(&bw->metas, bw->metas.n + n);
	for (size_t i = 0; i < n; i++)
		bw->metas.v[bw->metas.n++] = (chunk_meta_t){chks[i].mint, chks[i].maxt, bw->refs.v[i]};
	if (chks[0].mint < bw->mint)
		bw->mint = chks[0].mint;
	if (chks[n - 1].maxt > bw->maxt)
		bw->maxt = chks[n - 1].maxt;
	bw->nseries++;
	bw->nsamples += nsamples;
	bw->nchunks += n;
	if (run_bytes(bw) >= bw->opts.mem_limit)
		return spill_run(bw, err);
	return 0;
}

/* ---- merging runs ---- */

/* A cursor over a spilled run (rd) or over the sorted in-memory run (mem). */
typedef struct cursor {
	bool mem, done;
	size_t i; /* mem: next series */
	spill_reader_t rd;
	srec_t cur;
	VEC(label_t) ls;
	VEC(uint32_t) ids;
	VEC(chunk_meta_t) metas;
} cursor_t;

static int cur_corrupt(block_writer_t *bw, cursor_t *c, err_t *err, const char *what)
{
	return err_set(err, ERR_CORRUPT, "block writer: temp file %s: offset %llu: %s", bw->spill.path,
		       (unsigned long long)(c->rd.end - spill_reader_left(&c->rd)), what);
}

static int cur_next(block_writer_t *bw, cursor_t *c, err_t *err)
{
	if (c->mem) {
		if (c->i >= bw->series.n) {
			c->done = true;
			return 0;
		}
		const series_rec_t *s = &bw->series.v[c->i++];
		c->cur = (srec_t){s->ls, s->ids, bw->metas.v + s->meta_off, s->nmeta};
		return 0;
	}
	if (spill_reader_left(&c->rd) == 0) {
		c->done = true;
		return 0;
	}
	const uint8_t *p;
	int rc = spill_reader_need(&c->rd, 4, &p, err);
	if (rc)
		return rc;
	size_t len = be32_get(p);
	if ((rc = spill_reader_need(&c->rd, 4 + len, &p, err)))
		return rc;
	const uint8_t *q = p + 4, *end = p + 4 + len;
	uint64_t nl, nm, x;
	int k;
	if ((k = uvarint_get(q, end, &nl)) <= 0 || nl > len)
		return cur_corrupt(bw, c, err, "bad label count");
	q += k;
	VEC_RESERVE(&c->ls, nl ? nl : 1);
	VEC_RESERVE(&c->ids, 2 * nl + 1);
	for (size_t i = 0; i < 2 * nl; i++) {
		if ((k = uvarint_get(q, end, &x)) <= 0 || x >= bw->syms.n)
			return cur_corrupt(bw, c, err, "bad symbol id");
		q += k;
		c->ids.v[i] = (uint32_t)x;
		if (i % 2)
			c->ls.v[i / 2].value = bw->syms.v[x];
		else
			c->ls.v[i / 2].name = bw->syms.v[x];
	}
	if ((k = uvarint_get(q, end, &nm)) <= 0 || nm > len)
		return cur_corrupt(bw, c, err, "bad chunk count");
	q += k;
	VEC_RESERVE(&c->metas, nm ? nm : 1);
	for (size_t i = 0; i < nm; i++) {
		int64_t mint;
		uint64_t d, ref;
		int k1 = varint_get(q, end, &mint), k2 = k1 > 0 ? uvarint_get(q + k1, end, &d) : 0,
		    k3 = k2 > 0 ? uvarint_get(q + k1 + k2, end, &ref) : 0;
		if (k3 <= 0)
			return cur_corrupt(bw, c, err, "bad chunk meta");
		q += k1 + k2 + k3;
		c->metas.v[i] = (chunk_meta_t){mint, (int64_t)((uint64_t)mint + d), ref};
	}
	if (q != end)
		return cur_corrupt(bw, c, err, "record length mismatch");
	spill_reader_skip(&c->rd, 4 + len);
	c->cur = (srec_t){{c->ls.v, nl}, c->ids.v, c->metas.v, nm};
	return 0;
}

static void cur_release(cursor_t *c)
{
	if (!c->mem)
		spill_reader_release(&c->rd);
	VEC_FREE(&c->ls);
	VEC_FREE(&c->ids);
	VEC_FREE(&c->metas);
}

/* Merges runs (and the in-memory run when mem) by labels: into iw when set (rejecting duplicates),
 * else as a new run appended to the temp file. */
static int merge_runs(block_writer_t *bw, const run_t *runs, size_t nruns, bool mem, index_writer_t *iw, err_t *err)
{
	size_t nc = nruns + (mem ? 1 : 0);
	cursor_t *cs = xcalloc(nc ? nc : 1, sizeof *cs);
	for (size_t i = 0; i < nruns; i++)
		spill_reader_init(&cs[i].rd, &bw->spill, runs[i].off, runs[i].end, MERGE_BUF);
	if (mem)
		cs[nruns].mem = true;
	int rc = 0;
	for (size_t i = 0; !rc && i < nc; i++)
		rc = cur_next(bw, &cs[i], err);
	VEC(label_t) prev = {0};
	bool have_prev = false;
	while (!rc) {
		cursor_t *min = NULL;
		for (size_t i = 0; i < nc; i++)
			if (!cs[i].done && (!min || labels_cmp(&cs[i].cur.ls, &min->cur.ls) < 0))
				min = &cs[i];
		if (!min)
			break;
		const srec_t *r = &min->cur;
		if (iw) {
			labels_t pl = {prev.v, prev.n};
			if (have_prev && labels_cmp(&pl, &r->ls) == 0) {
				buf_t lb = BUF_INIT;
				labels_format_full(&lb, &r->ls);
				rc = err_set(err, ERR_INVALID, "block writer: series %s added twice", lb.p);
				buf_release(&lb);
				break;
			}
			VEC_RESERVE(&prev, r->ls.n);
			memcpy(prev.v, r->ls.v, r->ls.n * sizeof(label_t)); /* interned strings: stable */
			prev.n = r->ls.n;
			have_prev = true;
			rc = index_writer_add_series(iw, &r->ls, r->metas, r->nmeta, err);
		} else {
			rc = spill_record(bw, r, err);
		}
		if (!rc)
			rc = cur_next(bw, min, err);
	}
	VEC_FREE(&prev);
	for (size_t i = 0; i < nc; i++)
		cur_release(&cs[i]);
	free(cs);
	return rc;
}

/* Merges spilled runs MERGE_FANIN at a time until at most MERGE_FANIN are left. */
static int reduce_runs(block_writer_t *bw, err_t *err)
{
	while (bw->runs.n > MERGE_FANIN) {
		size_t out = 0;
		for (size_t a = 0; a < bw->runs.n; a += MERGE_FANIN) {
			size_t b = a + MERGE_FANIN < bw->runs.n ? a + MERGE_FANIN : bw->runs.n;
			run_t r = bw->runs.v[a];
			if (b - a > 1) {
				r.off = bw->spill.end;
				int rc = merge_runs(bw, bw->runs.v + a, b - a, false, NULL, err);
				if (rc)
					return rc;
				r.end = bw->spill.end;
			}
			bw->runs.v[out++] = r; /* out <= a: runs not yet merged are not overwritten */
		}
		bw->runs.n = out;
	}
	return 0;
}

static int str_cmp_q(const void *a, const void *b)
{
	return str_cmp(*(const str_t *)a, *(const str_t *)b);
}

static int fsync_dir(const char *dir, err_t *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(err, "open %s", dir);
	int rc = fsync(fd) != 0 ? err_errno(err, "fsync %s", dir) : 0;
	close(fd);
	return rc;
}

/* Writes the index: every interned string as a symbol, then the series merged in label order. */
static int write_index(block_writer_t *bw, err_t *err)
{
	if (!bw->run_sorted && bw->series.n > 1)
		qsort(bw->series.v, bw->series.n, sizeof(series_rec_t), series_cmp);
	int rc = reduce_runs(bw, err);
	if (rc)
		return rc;
	str_t *syms = xcalloc(bw->syms.n ? bw->syms.n : 1, sizeof(str_t));
	memcpy(syms, bw->syms.v, bw->syms.n * sizeof(str_t));
	if (bw->syms.n > 1)
		qsort(syms, bw->syms.n, sizeof(str_t), str_cmp_q);
	char path[4096];
	path_join(path, sizeof path, bw->tmpdir, "index");
	index_writer_t *iw;
	rc = index_writer_open(&iw, path, err);
	if (!rc) {
		index_writer_set_mem_limit(iw, bw->opts.mem_limit);
		rc = index_writer_add_symbols(iw, syms, bw->syms.n, err);
		if (!rc)
			rc = merge_runs(bw, bw->runs.v, bw->runs.n, true, iw, err);
		bw->max_series = index_writer_max_series_size(iw);
		if (rc)
			index_writer_abort(iw);
		else
			rc = index_writer_close(iw, err);
	}
	free(syms);
	return rc;
}

int block_writer_finish(block_writer_t *bw, const block_meta_t *meta_in, char *out_dir, err_t *err)
{
	int rc = chunkfile_writer_close(&bw->cw, err);
	if (rc || (rc = write_index(bw, err)))
		goto fail;
	spill_close(&bw->spill);
	block_meta_t m = {0};
	if (meta_in) {
		m = *meta_in; /* shallow: only read below */
	}
	snprintf(m.ulid, sizeof m.ulid, "%s", bw->ulid);
	m.mint = bw->nseries ? bw->mint : 0;
	m.maxt = bw->nseries ? bw->maxt + 1 : 0;
	if (bw->opts.meta_maxt > bw->opts.meta_mint) {
		m.mint = bw->opts.meta_mint;
		m.maxt = bw->opts.meta_maxt;
	}
	m.series_max_size = (int64_t)bw->max_series;
	m.chunk_max_size = (int64_t)bw->max_chunk;
	m.num_samples = bw->nsamples;
	m.num_series = bw->nseries;
	m.num_chunks = bw->nchunks;
	m.num_tombstones = 0;
	char self_src[1][ULID_LEN + 1];
	if (!meta_in || meta_in->level == 0) {
		m.level = 1;
		snprintf(self_src[0], sizeof self_src[0], "%s", bw->ulid);
		m.sources = self_src;
		m.nsources = 1;
	}
	if ((rc = meta_write(&m, bw->tmpdir, err)) || (rc = tombstones_write_empty(bw->tmpdir, err)))
		goto fail;
	char cdir[4096];
	path_join(cdir, sizeof cdir, bw->tmpdir, "chunks");
	if ((rc = fsync_dir(cdir, err)) || (rc = fsync_dir(bw->tmpdir, err)))
		goto fail;
	char final[4096];
	path_join(final, sizeof final, bw->parent, bw->ulid);
	if (rename(bw->tmpdir, final) != 0) {
		rc = err_errno(err, "rename %s", bw->tmpdir);
		goto fail;
	}
	rc = fsync_dir(bw->parent, err);
	if (out_dir)
		snprintf(out_dir, 4096, "%s", final);
	free_writer(bw);
	return rc;
fail:
	fsutil_rm_rf(bw->tmpdir, NULL);
	free_writer(bw);
	return rc;
}

/* ================================ reader ================================ */

/* Sample iterator that skips samples inside deleted intervals (sorted by mint). */
typedef struct tomb_iter {
	sample_iter_t base;
	sample_iter_t *in;
	const tomb_interval_t *iv;
	size_t n;
} tomb_iter_t;

static bool deleted(const tomb_iter_t *ti, int64_t t)
{
	for (size_t i = 0; i < ti->n && ti->iv[i].mint <= t; i++)
		if (t <= ti->iv[i].maxt)
			return true;
	return false;
}

static int tomb_next_batch(sample_iter_t *base, int64_t *t, double *v, int cap, err_t *err)
{
	tomb_iter_t *ti = (tomb_iter_t *)base;
	for (;;) {
		int k = sample_iter_next_batch(ti->in, t, v, cap, err);
		if (k <= 0)
			return k;
		int w = 0;
		for (int i = 0; i < k; i++)
			if (!deleted(ti, t[i]))
				t[w] = t[i], v[w] = v[i], w++;
		if (w > 0)
			return w;
	}
}

static int tomb_seek(sample_iter_t *base, int64_t t, err_t *err)
{
	return sample_iter_seek(((tomb_iter_t *)base)->in, t, err);
}

static const struct sample_iter_ops tomb_iter_ops = {tomb_next_batch, tomb_seek};

typedef struct block_set {
	series_set_t base;
	block_t *b;
	postings_t p;
	size_t i;
	int64_t mint, maxt;
	arena_t tmp; /* per-series */
	labels_t ls;
	chunk_t *chks;
	size_t nchks;
	xor_iter_t it;
	const tomb_interval_t *del; /* deleted intervals overlapping the series' chunks */
	size_t ndel;
	tomb_iter_t ti;
} block_set_t;

/* Is [mint, maxt] inside one deleted interval? (Prometheus keeps intervals merged.) */
static bool covered(const tomb_interval_t *iv, size_t n, int64_t mint, int64_t maxt)
{
	for (size_t i = 0; i < n; i++)
		if (iv[i].mint <= mint && maxt <= iv[i].maxt)
			return true;
	return false;
}

static int bs_next(series_set_t *s, err_t *err)
{
	block_set_t *bs = (block_set_t *)s;
	while (bs->i < bs->p.n) {
		uint32_t id = bs->p.v[bs->i++];
		arena_reset(&bs->tmp);
		chunk_meta_t *cm;
		size_t nc;
		int rc = index_reader_series(&bs->b->ix, &bs->tmp, id, &bs->ls, &cm, &nc, err);
		if (rc)
			return rc;
		bs->chks = arena_alloc(&bs->tmp, (nc + 1) * sizeof(chunk_t));
		bs->nchks = 0;
		size_t ndel = 0;
		const tomb_interval_t *del = tombstones_of(&bs->b->tomb, id, &ndel);
		for (size_t k = 0; k < nc; k++) {
			if (cm[k].maxt < bs->mint || cm[k].mint > bs->maxt)
				continue;
			if (ndel && covered(del, ndel, cm[k].mint, cm[k].maxt))
				continue;
			chunk_t *c = &bs->chks[bs->nchks];
			c->mint = cm[k].mint;
			c->maxt = cm[k].maxt;
			if ((rc = chunkfile_reader_get(&bs->b->cf, cm[k].ref, c, err)))
				return err_wrap(err, "block %s: series %u chunk %zu", bs->b->dir, id, k);
			bs->nchks++;
		}
		if (bs->nchks == 0)
			continue;
		bs->del = NULL, bs->ndel = 0;
		for (size_t k = 0; k < ndel; k++)
			if (del[k].maxt >= bs->chks[0].mint && del[k].mint <= bs->chks[bs->nchks - 1].maxt) {
				bs->del = del, bs->ndel = ndel;
				break;
			}
		xor_iter_init(&bs->it, bs->chks, bs->nchks, bs->mint, bs->maxt);
		return 1;
	}
	return 0;
}

static const labels_t *bs_labels(series_set_t *s)
{
	return &((block_set_t *)s)->ls;
}

static sample_iter_t *bs_samples(series_set_t *s)
{
	block_set_t *bs = (block_set_t *)s;
	xor_iter_init(&bs->it, bs->chks, bs->nchks, bs->mint, bs->maxt);
	if (!bs->ndel)
		return &bs->it.base;
	bs->ti = (tomb_iter_t){{&tomb_iter_ops}, &bs->it.base, bs->del, bs->ndel};
	return &bs->ti.base;
}

static int bs_chunks(series_set_t *s, const chunk_t **out)
{
	block_set_t *bs = (block_set_t *)s;
	if (bs->ndel) {
		*out = NULL;
		return -1; /* raw chunks would resurrect deleted samples */
	}
	*out = bs->chks;
	return (int)bs->nchks;
}

static void bs_close(series_set_t *s)
{
	block_set_t *bs = (block_set_t *)s;
	arena_release(&bs->tmp);
}

/* Chunk bytes point into the block's mapped chunk files, which outlive the set. */
static bool bs_chunk_data_stable(series_set_t *s)
{
	(void)s;
	return true;
}

static const struct series_set_ops block_set_ops = {bs_next,  bs_labels, bs_samples, bs_chunks,
						    NULL,     bs_close,  bs_chunk_data_stable};

static int block_select(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			const select_hints_t *hints, series_set_t **out, err_t *err)
{
	block_t *b = (block_t *)q;
	(void)hints;
	if (mint >= b->meta.maxt || maxt < b->meta.mint) {
		*out = series_set_empty();
		return 0;
	}
	block_set_t *bs = ARENA_NEW(a, block_set_t);
	int rc = index_reader_postings_for_matchers(&b->ix, a, ms, nms, &bs->p, err);
	if (rc)
		return err_wrap(err, "block %s", b->dir);
	bs->base.ops = &block_set_ops;
	bs->b = b;
	bs->mint = mint;
	bs->maxt = maxt;
	arena_init(&bs->tmp, 0);
	*out = &bs->base;
	return 0;
}

static int block_label_names(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			     str_t **out, size_t *n, err_t *err)
{
	block_t *b = (block_t *)q;
	if (mint >= b->meta.maxt || maxt < b->meta.mint) {
		*out = NULL, *n = 0;
		return 0;
	}
	return index_reader_label_names(&b->ix, a, ms, nms, out, n, err);
}

static int block_label_values(queryable_t *q, arena_t *a, str_t name, const matcher_t *ms, size_t nms, int64_t mint,
			      int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	block_t *b = (block_t *)q;
	if (mint >= b->meta.maxt || maxt < b->meta.mint) {
		*out = NULL, *n = 0;
		return 0;
	}
	return index_reader_label_values(&b->ix, a, name, ms, nms, out, n, err);
}

static const struct queryable_ops block_ops = {block_select, block_label_names, block_label_values};

int block_open(block_t **out, const char *dir, err_t *err)
{
	block_t *b = xcalloc(1, sizeof *b);
	b->q.ops = &block_ops;
	b->dir = xstrdup(dir);
	char path[4096];
	int rc = meta_read(&b->meta, dir, err);
	if (!rc) {
		path_join(path, sizeof path, dir, "index");
		rc = index_reader_open(&b->ix, path, err);
		if (rc) {
			meta_release(&b->meta);
		} else {
			path_join(path, sizeof path, dir, "chunks");
			rc = chunkfile_reader_open(&b->cf, path, err);
			if (!rc && (rc = tombstones_load(dir, &b->tomb, err)))
				chunkfile_reader_close(&b->cf);
			if (rc) {
				index_reader_close(&b->ix);
				meta_release(&b->meta);
			}
		}
	}
	if (rc) {
		free(b->dir);
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

void block_close(block_t *b)
{
	if (!b)
		return;
	chunkfile_reader_close(&b->cf);
	index_reader_close(&b->ix);
	tombstones_release(&b->tomb);
	meta_release(&b->meta);
	free(b->dir);
	free(b);
}

/* ================================ walk ================================ */

#define RELEASE_STEP (1u << 20) /* drop resident input pages once this far behind */

void block_walk_init(block_walk_t *w, block_t *b)
{
	memset(w, 0, sizeof *w);
	w->b = b;
	arena_init(&w->a, 0);
}

void block_walk_release(block_walk_t *w)
{
	arena_release(&w->a);
}

static void release_behind(block_walk_t *w)
{
	const block_t *b = w->b;
	uint64_t off = (uint64_t)w->id * 16;
	if (!w->rel_index)
		w->rel_index = b->ix.toc_series;
	if (off >= w->rel_index + RELEASE_STEP && off <= b->ix.len) {
		mapfile_release(b->ix.p, w->rel_index, off);
		w->rel_index = off;
	}
	if (!w->ncm)
		return;
	uint64_t seg = w->cm[0].ref >> 32, pos = w->cm[0].ref & 0xffffffffu;
	if (seg >= b->cf.nseg)
		return;
	for (; w->rel_seg < seg; w->rel_seg++, w->rel_off = 0) /* segments behind: all of them */
		mapfile_release(b->cf.seg[w->rel_seg].p, w->rel_off, b->cf.seg[w->rel_seg].len);
	if (pos >= w->rel_off + RELEASE_STEP && pos <= b->cf.seg[seg].len) {
		mapfile_release(b->cf.seg[seg].p, w->rel_off, pos);
		w->rel_off = pos;
	}
}

int block_walk_next(block_walk_t *w, err_t *err)
{
	int rc = index_reader_next_series(&w->b->ix, &w->id, err);
	if (rc)
		return err_wrap(err, "block %s", w->b->dir);
	if (!w->id)
		return 0;
	arena_reset(&w->a);
	if ((rc = index_reader_series(&w->b->ix, &w->a, w->id, &w->ls, &w->cm, &w->ncm, err)))
		return err_wrap(err, "block %s", w->b->dir);
	release_behind(w);
	return 1;
}
