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
#include "base/hmap.h"
#include "base/vec.h"
#include "tsdb/xor.h"

/* ================================ writer ================================ */

typedef struct series_rec {
	labels_t ls;
	size_t meta_off, nmeta;
} series_rec_t;

typedef struct pending_chunk {
	int64_t mint, maxt;
	size_t off, len;
} pending_chunk_t;

struct block_writer {
	char *parent, *tmpdir;
	char ulid[ULID_LEN + 1];
	block_writer_opts_t opts;
	chunkfile_writer_t cw;
	arena_t arena;
	VEC(series_rec_t) series;
	VEC(chunk_meta_t) metas;
	xor_enc_t enc;
	buf_t data;                   /* encoded chunks of the current series */
	VEC(pending_chunk_t) pending; /* their bounds */
	VEC(chunk_t) chunks;
	VEC(uint64_t) refs;
	int64_t mint, maxt;
	uint64_t nsamples, nchunks;
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
	ulid_new(bw->ulid, clock_now_ms());
	bw->parent = xstrdup(parent_dir);
	size_t n = strlen(parent_dir) + ULID_LEN + 32;
	bw->tmpdir = xmalloc(n);
	snprintf(bw->tmpdir, n, "%s/%s.tmp-for-creation", parent_dir, bw->ulid);
	arena_init(&bw->arena, 0);
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

static void free_writer(block_writer_t *bw)
{
	arena_release(&bw->arena);
	xor_enc_release(&bw->enc);
	buf_release(&bw->data);
	VEC_FREE(&bw->series);
	VEC_FREE(&bw->metas);
	VEC_FREE(&bw->pending);
	VEC_FREE(&bw->chunks);
	VEC_FREE(&bw->refs);
	free(bw->parent);
	free(bw->tmpdir);
	free(bw);
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char p[4096];
			path_join(p, sizeof p, path, de->d_name);
			rm_rf(p);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

void block_writer_abort(block_writer_t *bw)
{
	if (!bw)
		return;
	chunkfile_writer_abort(&bw->cw);
	rm_rf(bw->tmpdir);
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
	VEC_RESERVE(&bw->refs, bw->pending.n);
	for (size_t i = 0; i < bw->pending.n; i++) {
		pending_chunk_t *pc = &bw->pending.v[i];
		bw->chunks.v[i] = (chunk_t){pc->mint, pc->maxt, CHUNK_ENC_XOR, (const uint8_t *)bw->data.p + pc->off, pc->len};
	}
	int rc = chunkfile_writer_write(&bw->cw, bw->chunks.v, bw->pending.n, bw->refs.v, err);
	if (rc)
		return rc;
	VEC_RESERVE(&bw->series, bw->series.n + 1);
	series_rec_t *s = &bw->series.v[bw->series.n++];
	s->ls = labels_copy(&bw->arena, ls);
	s->meta_off = bw->metas.n;
	s->nmeta = bw->pending.n;
	VEC_RESERVE(&bw->metas, bw->metas.n + bw->pending.n);
	for (size_t i = 0; i < bw->pending.n; i++)
		bw->metas.v[bw->metas.n++] = (chunk_meta_t){bw->pending.v[i].mint, bw->pending.v[i].maxt, bw->refs.v[i]};
	if (t[0] < bw->mint)
		bw->mint = t[0];
	if (t[n - 1] > bw->maxt)
		bw->maxt = t[n - 1];
	bw->nsamples += n;
	bw->nchunks += bw->pending.n;
	return 0;
}

static int series_cmp(const void *a, const void *b)
{
	return labels_cmp(&((const series_rec_t *)a)->ls, &((const series_rec_t *)b)->ls);
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

int block_writer_finish(block_writer_t *bw, const block_meta_t *meta_in, char *out_dir, err_t *err)
{
	int rc = chunkfile_writer_close(&bw->cw, err);
	if (rc)
		goto fail;
	if (bw->series.n > 1)
		qsort(bw->series.v, bw->series.n, sizeof(series_rec_t), series_cmp);
	for (size_t i = 1; i < bw->series.n; i++)
		if (labels_cmp(&bw->series.v[i - 1].ls, &bw->series.v[i].ls) == 0) {
			buf_t lb = BUF_INIT;
			labels_format_full(&lb, &bw->series.v[i].ls);
			rc = err_set(err, ERR_INVALID, "block writer: series %s added twice", lb.p);
			buf_release(&lb);
			goto fail;
		}
	/* Symbols: every name and value, sorted and unique. */
	hmap_t set;
	hmap_init(&set, 0);
	VEC(str_t) syms = {0};
	for (size_t i = 0; i < bw->series.n; i++) {
		const labels_t *ls = &bw->series.v[i].ls;
		for (size_t k = 0; k < ls->n; k++) {
			str_t s2[2] = {ls->v[k].name, ls->v[k].value};
			for (int j = 0; j < 2; j++) {
				bool found;
				hmap_slot(&set, s2[j], &found);
				if (!found)
					VEC_PUSH(&syms, s2[j]);
			}
		}
	}
	hmap_release(&set);
	if (syms.n > 1)
		qsort(syms.v, syms.n, sizeof(str_t), str_cmp_q);
	char path[4096];
	path_join(path, sizeof path, bw->tmpdir, "index");
	index_writer_t *iw;
	rc = index_writer_open(&iw, path, err);
	if (!rc) {
		rc = index_writer_add_symbols(iw, syms.v, syms.n, err);
		for (size_t i = 0; !rc && i < bw->series.n; i++) {
			series_rec_t *s = &bw->series.v[i];
			rc = index_writer_add_series(iw, &s->ls, bw->metas.v + s->meta_off, s->nmeta, err);
		}
		if (rc)
			index_writer_abort(iw);
		else
			rc = index_writer_close(iw, err);
	}
	VEC_FREE(&syms);
	if (rc)
		goto fail;
	block_meta_t m = {0};
	if (meta_in) {
		m = *meta_in; /* shallow: only read below */
	}
	snprintf(m.ulid, sizeof m.ulid, "%s", bw->ulid);
	m.mint = bw->series.n ? bw->mint : 0;
	m.maxt = bw->series.n ? bw->maxt + 1 : 0;
	m.num_samples = bw->nsamples;
	m.num_series = bw->series.n;
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
	rm_rf(bw->tmpdir);
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

static const struct series_set_ops block_set_ops = {bs_next, bs_labels, bs_samples, bs_chunks, NULL, bs_close};

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
