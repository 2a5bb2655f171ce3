/*
 * blockmerge.c — streaming compaction of blocks into one, and the output check (see blockmerge.h).
 */
#include "tsdb/blockmerge.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/mapfile.h"
#include "base/varint.h"
#include "base/vec.h"
#include "tsdb/aggr.h"
#include "tsdb/xor.h"

#define REENCODE_SAMPLES XOR_SAMPLES_PER_CHUNK
#define BATCH            256

/* ---- sample iterators used by the merge ---- */

static bool is_deleted(const tomb_interval_t *iv, size_t n, int64_t t)
{
	for (size_t i = 0; i < n && iv[i].mint <= t; i++)
		if (t <= iv[i].maxt)
			return true;
	return false;
}

/* The one-to-one merge: all samples in time order, one per timestamp (the first input's). */
typedef struct chain_cursor {
	sample_iter_t *it;
	int64_t t[64];
	double v[64];
	int pos, n;
	bool done;
} chain_cursor_t;

typedef struct chain {
	blockmerge_merger_t base;
	sample_iter_t it;
	chain_cursor_t *c;
	size_t n, cap;
	bool have_last;
	int64_t last;
} chain_t;

static int chain_peek(chain_cursor_t *c, err_t *err)
{
	if (c->pos < c->n)
		return 1;
	if (c->done)
		return 0;
	int k = sample_iter_next_batch(c->it, c->t, c->v, 64, err);
	if (k < 0)
		return k;
	c->pos = 0;
	c->n = k;
	c->done = k == 0;
	return k > 0;
}

static int chain_next_batch(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	chain_t *ch = (chain_t *)((char *)it - offsetof(chain_t, it));
	int out = 0;
	while (out < cap) {
		chain_cursor_t *best = NULL;
		for (size_t i = 0; i < ch->n; i++) {
			chain_cursor_t *c = &ch->c[i];
			int rc;
			while ((rc = chain_peek(c, err)) == 1 && ch->have_last && c->t[c->pos] <= ch->last)
				c->pos++;
			if (rc < 0)
				return rc;
			if (rc && (!best || c->t[c->pos] < best->t[best->pos]))
				best = c;
		}
		if (!best)
			break;
		t[out] = best->t[best->pos];
		v[out] = best->v[best->pos];
		best->pos++;
		ch->have_last = true;
		ch->last = t[out++];
	}
	return out;
}

static int chain_seek(sample_iter_t *it, int64_t t, err_t *err)
{
	(void)it, (void)t, (void)err;
	return 0; /* the merge never seeks */
}

static const struct sample_iter_ops chain_ops = {chain_next_batch, chain_seek};

static sample_iter_t *chain_merge(blockmerge_merger_t *m, sample_iter_t *const *its, size_t n)
{
	chain_t *ch = (chain_t *)m;
	if (n > ch->cap) {
		ch->cap = n;
		ch->c = xreallocarray(ch->c, n, sizeof *ch->c);
	}
	memset(ch->c, 0, n * sizeof *ch->c);
	for (size_t i = 0; i < n; i++)
		ch->c[i].it = its[i];
	ch->n = n;
	ch->have_last = false;
	ch->it.ops = &chain_ops;
	return &ch->it;
}

/* ---- the merge ---- */

typedef block_walk_t src_t; /* id 0: exhausted */

/* One input chunk of the current series. */
typedef struct item {
	size_t src; /* index into the merge's inputs */
	chunk_t c;
	uint32_t lane;
} item_t;

/* An output chunk: data in ctx->enc (off) when re-encoded, else the input's bytes. */
typedef struct out_chunk {
	chunk_t c;
	bool encoded;
	size_t off;
} out_chunk_t;

typedef struct ctx {
	block_t *const *in;
	size_t n;
	const blockmerge_opts_t *opts;
	blockmerge_merger_t *merger;
	blockmerge_result_t *res;
	src_t *srcs;
	block_writer_t *bw;
	VEC(size_t) group; /* inputs holding the current series */
	VEC(item_t) items;
	VEC(out_chunk_t) out;
	VEC(chunk_t) final;
	VEC(tomb_interval_t) del; /* per input of the group: deletions, concatenated */
	VEC(size_t) del_off;      /* start of each group member's deletions in del, and the end */
	buf_t enc;                /* re-encoded chunk bytes of the current series */
	xor_enc_t xe;
	struct lane_iter *lits;
	sample_iter_t **its;
	chunk_t *lane_chunks;
	size_t *lane_members; /* group member of each lane chunk (whose deletions apply) */
	size_t cap_lanes, cap_lane_chunks;
	uint64_t nsamples; /* of the current series */
	int64_t out_maxt;  /* the output block's maxTime (exclusive) */
	bool whole;        /* the current series is merged as a whole (whole_series) */
} ctx_t;

static int bad(ctx_t *x, size_t src, err_t *err)
{
	x->res->bad_input = (int)src;
	return err_wrap(err, "compaction input %s", x->in[src]->dir);
}

static int src_advance(ctx_t *x, size_t i, err_t *err)
{
	return block_walk_next(&x->srcs[i], err) < 0 ? bad(x, i, err) : 0;
}

static uint64_t chunk_samples(const chunk_t *c)
{
	if ((c->enc == CHUNK_ENC_XOR || c->enc == CHUNK_ENC_HISTOGRAM ||
	     c->enc == CHUNK_ENC_FLOAT_HISTOGRAM) &&
	    c->len >= 2)
		return ((uint64_t)c->data[0] << 8) | c->data[1];
	if (c->enc == CHUNK_ENC_AGGR)
		return aggr_chunk_num_samples(c->data, c->len);
	return 0;
}

static int item_cmp(const void *a, const void *b)
{
	const item_t *x = a, *y = b;
	if (x->c.mint != y->c.mint)
		return x->c.mint < y->c.mint ? -1 : 1;
	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	return x->c.maxt < y->c.maxt ? -1 : x->c.maxt > y->c.maxt;
}

static bool overlaps_deletion(const tomb_interval_t *iv, size_t n, int64_t mint, int64_t maxt)
{
	for (size_t i = 0; i < n; i++)
		if (iv[i].mint <= maxt && mint <= iv[i].maxt)
			return true;
	return false;
}

static bool inside_deletion(const tomb_interval_t *iv, size_t n, int64_t mint, int64_t maxt)
{
	for (size_t i = 0; i < n; i++)
		if (iv[i].mint <= mint && maxt <= iv[i].maxt)
			return true;
	return false;
}

static int tomb_cmp(const void *a, const void *b)
{
	const tomb_interval_t *x = a, *y = b;
	return x->mint < y->mint ? -1 : x->mint > y->mint;
}

/* Deletions of group member g (input src): the caller's, the input's tombstones, and everything
 * outside the input's [minTime, maxTime) (chunks spilling out of their block are trimmed). */
static void collect_deletions(ctx_t *x, size_t src, const tomb_interval_t *user, size_t nuser)
{
	block_t *b = x->in[src];
	size_t start = x->del.n;
	for (size_t i = 0; i < nuser; i++)
		VEC_PUSH(&x->del, user[i]);
	size_t nt = 0;
	const tomb_interval_t *t = tombstones_of(&b->tomb, x->srcs[src].id, &nt);
	for (size_t i = 0; i < nt; i++)
		VEC_PUSH(&x->del, t[i]);
	if (b->meta.mint > INT64_MIN)
		VEC_PUSH(&x->del, ((tomb_interval_t){0, INT64_MIN, b->meta.mint - 1}));
	if (b->meta.maxt > b->meta.mint)
		VEC_PUSH(&x->del, ((tomb_interval_t){0, b->meta.maxt, INT64_MAX}));
	if (x->del.n - start > 1)
		qsort(x->del.v + start, x->del.n - start, sizeof *x->del.v, tomb_cmp);
}

static const tomb_interval_t *deletions_of(ctx_t *x, size_t g, size_t *n)
{
	*n = x->del_off.v[g + 1] - x->del_off.v[g];
	return x->del.v + x->del_off.v[g];
}

/* Index of the group member for input src. */
static size_t member_of(ctx_t *x, size_t src)
{
	for (size_t g = 0; g < x->group.n; g++)
		if (x->group.v[g] == src)
			return g;
	BUG_ON(1);
	return 0;
}

/* One lane of a run: chunks that follow each other in time (one input's, or one stream's across
 * its inputs), read chunk by chunk with each chunk's own input's deletions skipped. */
typedef struct lane_iter {
	sample_iter_t base;
	ctx_t *x;
	const chunk_t *c;
	const size_t *member;
	size_t n, i;
	bool open;
	xor_iter_t xit;
	const tomb_interval_t *iv;
	size_t niv;
	size_t failed; /* 1 + the group member whose chunk failed to decode, 0 */
	/* The lane's data runs to the output's end: after its last sample the merger sees one more at
	 * tail_t (the output's maxTime, where no real sample can be), so a dedup takes the block's end
	 * for what it is, not for the end of this replica's data (it would hand over to the other
	 * replica's last samples of the block, which the next block's merge then hands back). The
	 * output never gets it. INT64_MIN: none. */
	int64_t tail_t;
	double last_v;
	bool any;
} lane_iter_t;

static void lane_open(lane_iter_t *l)
{
	xor_iter_init(&l->xit, &l->c[l->i], 1, INT64_MIN, INT64_MAX);
	l->iv = deletions_of(l->x, l->member[l->i], &l->niv);
	l->open = true;
}

static int lane_next_batch(sample_iter_t *base, int64_t *t, double *v, int cap, err_t *err)
{
	lane_iter_t *l = (lane_iter_t *)base;
	for (;;) {
		if (!l->open) {
			if (l->i >= l->n) {
				if (l->tail_t == INT64_MIN || !l->any || cap < 1)
					return 0;
				t[0] = l->tail_t, v[0] = l->last_v;
				l->tail_t = INT64_MIN;
				return 1;
			}
			lane_open(l);
		}
		int k = sample_iter_next_batch(&l->xit.base, t, v, cap, err);
		if (k < 0) {
			l->failed = l->member[l->i] + 1;
			return k;
		}
		if (k == 0) {
			l->open = false;
			l->i++;
			continue;
		}
		int w = 0;
		for (int i = 0; i < k; i++)
			if (!is_deleted(l->iv, l->niv, t[i]))
				t[w] = t[i], v[w] = v[i], w++;
		if (w > 0) {
			l->any = true;
			l->last_v = v[w - 1];
			return w;
		}
	}
}

static int lane_seek(sample_iter_t *base, int64_t t, err_t *err)
{
	lane_iter_t *l = (lane_iter_t *)base;
	while (l->i < l->n && l->c[l->i].maxt < t) {
		l->i++;
		l->open = false;
	}
	if (l->i >= l->n) {
		if (l->tail_t < t)
			l->tail_t = INT64_MIN;
		return 0;
	}
	if (!l->open)
		lane_open(l);
	return sample_iter_seek(&l->xit.base, t, err);
}

static const struct sample_iter_ops lane_ops = {lane_next_batch, lane_seek};

/* The stream input src belongs to (opts.streams), or src itself. */
static size_t stream_of(ctx_t *x, size_t src)
{
	return x->opts->streams ? x->opts->streams[src] : src;
}

static void finish_encoded(ctx_t *x, int64_t mint, int64_t maxt)
{
	size_t len;
	const uint8_t *p = xor_enc_bytes(&x->xe, &len);
	out_chunk_t *o = VEC_ADD(&x->out);
	o->c = (chunk_t){mint, maxt, CHUNK_ENC_XOR, NULL, len};
	o->encoded = true;
	o->off = x->enc.n;
	buf_append(&x->enc, p, len);
	x->nsamples += xor_enc_count(&x->xe);
	xor_enc_reset(&x->xe);
	x->res->chunks_reencoded++;
}

/* Decode items[from, to) (one run), merge, re-encode. */
static int reencode_run(ctx_t *x, size_t from, size_t to, err_t *err)
{
	/* Lanes: per input (per stream with opts.streams), its chunks of the run in time order, a new
	 * lane where one overlaps the last. */
	size_t nlanes = 0, nitems = to - from;
	int64_t *lane_end = xcalloc(nitems, sizeof *lane_end);
	size_t *lane_src = xcalloc(nitems, sizeof *lane_src);
	for (size_t i = from; i < to; i++) {
		item_t *it = &x->items.v[i];
		if (it->c.enc != CHUNK_ENC_XOR) {
			free(lane_end);
			free(lane_src);
			err_set(err, ERR_INVALID,
			        "series chunk [%lld, %lld] with encoding %u overlaps other data or has "
			        "deleted samples: only XOR chunks can be merged",
			        (long long)it->c.mint, (long long)it->c.maxt, it->c.enc);
			return bad(x, it->src, err);
		}
		size_t l = 0;
		while (l < nlanes &&
		       !(stream_of(x, lane_src[l]) == stream_of(x, it->src) && lane_end[l] < it->c.mint))
			l++;
		if (l == nlanes) {
			lane_src[nlanes] = it->src;
			nlanes++;
		}
		lane_end[l] = it->c.maxt;
		it->lane = (uint32_t)l;
	}
	if (nlanes > x->cap_lanes) {
		x->cap_lanes = nlanes;
		x->lits = xreallocarray(x->lits, nlanes, sizeof *x->lits);
		x->its = xreallocarray(x->its, nlanes, sizeof *x->its);
	}
	if (nitems > x->cap_lane_chunks) {
		x->cap_lane_chunks = nitems;
		x->lane_chunks = xreallocarray(x->lane_chunks, nitems, sizeof *x->lane_chunks);
		x->lane_members = xreallocarray(x->lane_members, nitems, sizeof *x->lane_members);
	}
	/* Chunks grouped by lane (stable: in time order within a lane). */
	size_t k = 0;
	for (size_t l = 0; l < nlanes; l++) {
		size_t first = k;
		for (size_t i = from; i < to; i++)
			if (x->items.v[i].lane == l) {
				x->lane_members[k] = member_of(x, x->items.v[i].src);
				x->lane_chunks[k++] = x->items.v[i].c;
			}
		/* With a caller's merger (dedup), a lane reaching the output's end continues there; merged
		 * as a whole series, every stream's data ends with the merge's inputs (a stream missing the
		 * last blocks shows a gap up to the tail, which the merger fills from another one). */
		bool to_end =
		    x->opts->merger && k > first &&
		    (x->whole || x->in[x->group.v[x->lane_members[k - 1]]]->meta.maxt == x->out_maxt);
		x->lits[l] = (lane_iter_t){.base = {&lane_ops},
		                           .x = x,
		                           .c = x->lane_chunks + first,
		                           .member = x->lane_members + first,
		                           .n = k - first,
		                           .tail_t = to_end ? x->out_maxt : INT64_MIN};
		x->its[l] = &x->lits[l].base;
	}
	free(lane_end);
	sample_iter_t *m = nlanes == 1 ? x->its[0] : x->merger->merge(x->merger, x->its, nlanes);
	int64_t t[BATCH];
	double v[BATCH];
	int64_t cmint = 0, cmaxt = 0, last = INT64_MIN;
	bool open = false;
	int rc;
	while ((rc = sample_iter_next_batch(m, t, v, BATCH, err)) > 0) {
		for (int i = 0; i < rc; i++) {
			if (t[i] <= last && open)
				continue; /* a merger must not go back in time; keep the output strictly
				             ascending */
			if (t[i] >= x->out_maxt && x->opts->merger)
				continue; /* a lane's tail (lane_iter_t) */
			if (open && xor_enc_count(&x->xe) >= REENCODE_SAMPLES) {
				finish_encoded(x, cmint, cmaxt);
				open = false;
			}
			if (!open) {
				open = true;
				cmint = t[i];
			}
			xor_enc_append(&x->xe, t[i], v[i]);
			cmaxt = last = t[i];
		}
	}
	if (rc < 0) {
		/* A decode error: the chunk's input is at fault (the first lane's when it is unclear). */
		size_t src = lane_src[0];
		for (size_t l = 0; l < nlanes; l++)
			if (x->lits[l].failed)
				src = x->group.v[x->lits[l].failed - 1];
		free(lane_src);
		xor_enc_reset(&x->xe);
		return bad(x, src, err);
	}
	free(lane_src);
	if (open)
		finish_encoded(x, cmint, cmaxt);
	return 0;
}

/* With opts.streams: a series of several streams (replicas), all XOR, is merged as a whole, so the
 * merger follows one stream across block boundaries instead of starting over at every gap between
 * runs (where a dedup would hand over to the other replica's last samples of the block). */
static bool whole_series(ctx_t *x)
{
	bool several = false;
	for (size_t i = 0; i < x->items.n; i++) {
		if (x->items.v[i].c.enc != CHUNK_ENC_XOR)
			return false;
		if (stream_of(x, x->items.v[i].src) != stream_of(x, x->items.v[0].src))
			several = true;
	}
	return several;
}

/* Merge and write the series the group holds. */
static int merge_series(ctx_t *x, const labels_t *ls, err_t *err)
{
	VEC_CLEAR(&x->items);
	VEC_CLEAR(&x->out);
	VEC_CLEAR(&x->del);
	VEC_CLEAR(&x->del_off);
	buf_reset(&x->enc);
	x->nsamples = 0;
	const tomb_interval_t *user = NULL;
	size_t nuser = x->opts->deletions ? x->opts->deletions(x->opts->deletions_arg, ls, &user) : 0;
	for (size_t g = 0; g < x->group.n; g++) {
		VEC_PUSH(&x->del_off, x->del.n);
		collect_deletions(x, x->group.v[g], user, nuser);
	}
	VEC_PUSH(&x->del_off, x->del.n);
	for (size_t g = 0; g < x->group.n; g++) {
		size_t si = x->group.v[g];
		src_t *s = &x->srcs[si];
		for (size_t k = 0; k < s->ncm; k++) {
			const chunk_meta_t *cm = &s->cm[k];
			if (cm->mint > cm->maxt) {
				err_set(err, ERR_CORRUPT, "series chunk %zu: minTime %lld after maxTime %lld",
				        k, (long long)cm->mint, (long long)cm->maxt);
				return bad(x, si, err);
			}
			size_t nd;
			const tomb_interval_t *d = deletions_of(x, g, &nd);
			if (inside_deletion(d, nd, cm->mint, cm->maxt))
				continue;
			item_t *it = VEC_ADD(&x->items);
			it->src = si;
			it->c.mint = cm->mint;
			it->c.maxt = cm->maxt;
			int rc = chunkfile_reader_get(&s->b->cf, cm->ref, &it->c, err);
			if (rc)
				return bad(x, si, err);
		}
	}
	if (x->items.n > 1)
		qsort(x->items.v, x->items.n, sizeof *x->items.v, item_cmp);
	bool whole = x->whole = x->opts->streams && whole_series(x);
	if (whole) {
		int rc = reencode_run(x, 0, x->items.n, err);
		if (rc)
			return rc;
	}
	for (size_t i = 0; !whole && i < x->items.n;) {
		size_t j = i + 1;
		int64_t end = x->items.v[i].c.maxt;
		while (j < x->items.n && x->items.v[j].c.mint <= end) {
			if (x->items.v[j].c.maxt > end)
				end = x->items.v[j].c.maxt;
			j++;
		}
		item_t *it = &x->items.v[i];
		size_t nd;
		const tomb_interval_t *d = deletions_of(x, member_of(x, it->src), &nd);
		if (j == i + 1 && !overlaps_deletion(d, nd, it->c.mint, it->c.maxt)) {
			out_chunk_t *o = VEC_ADD(&x->out);
			o->c = it->c;
			x->nsamples += chunk_samples(&it->c);
			x->res->chunks_copied++;
		} else {
			int rc = reencode_run(x, i, j, err);
			if (rc)
				return rc;
		}
		i = j;
	}
	if (!x->out.n)
		return 0;
	VEC_RESERVE(&x->final, x->out.n);
	for (size_t i = 0; i < x->out.n; i++) {
		x->final.v[i] = x->out.v[i].c;
		if (x->out.v[i].encoded)
			x->final.v[i].data = (const uint8_t *)x->enc.p + x->out.v[i].off;
	}
	int rc = block_writer_add_chunks(x->bw, ls, x->final.v, x->out.n, x->nsamples, err);
	if (rc)
		return rc;
	x->res->series++;
	x->res->samples += x->nsamples;
	x->res->chunks += x->out.n;
	if (x->opts->progress && x->opts->progress_every && x->res->series % x->opts->progress_every == 0 &&
	    !x->opts->progress(x->opts->progress_arg, x->res->series))
		return err_set(err, ERR_CANCELED, "compaction stopped after %llu series",
		               (unsigned long long)x->res->series);
	return 0;
}

static void ctx_release(ctx_t *x)
{
	for (size_t i = 0; i < x->n; i++)
		block_walk_release(&x->srcs[i]);
	free(x->srcs);
	VEC_FREE(&x->group);
	VEC_FREE(&x->items);
	VEC_FREE(&x->out);
	VEC_FREE(&x->final);
	VEC_FREE(&x->del);
	VEC_FREE(&x->del_off);
	buf_release(&x->enc);
	xor_enc_release(&x->xe);
	free(x->lits);
	free(x->lane_members);
	free(x->its);
	free(x->lane_chunks);
}

int blockmerge_run(block_t *const *in, size_t n, const char *parent_dir, const block_meta_t *meta_in,
                   const blockmerge_opts_t *opts, blockmerge_result_t *res, err_t *err)
{
	static const blockmerge_opts_t none;
	if (!opts)
		opts = &none;
	memset(res, 0, sizeof *res);
	res->bad_input = -1;
	chain_t chain = {.base = {chain_merge}};
	ctx_t x = {
	    .in = in, .n = n, .opts = opts, .merger = opts->merger ? opts->merger : &chain.base, .res = res};
	x.srcs = xcalloc(n ? n : 1, sizeof *x.srcs);
	buf_init(&x.enc);
	xor_enc_init(&x.xe);
	block_writer_opts_t wo = opts->writer;
	if (!(wo.meta_mint < wo.meta_maxt) && n) {
		wo.meta_mint = INT64_MAX, wo.meta_maxt = INT64_MIN;
		for (size_t i = 0; i < n; i++) {
			if (in[i]->meta.mint < wo.meta_mint)
				wo.meta_mint = in[i]->meta.mint;
			if (in[i]->meta.maxt > wo.meta_maxt)
				wo.meta_maxt = in[i]->meta.maxt;
		}
	}
	x.out_maxt = wo.meta_maxt;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		block_walk_init(&x.srcs[i], in[i]);
	}
	for (size_t i = 0; !rc && i < n; i++)
		rc = src_advance(&x, i, err);
	if (!rc)
		rc = block_writer_new(&x.bw, parent_dir, &wo, err);
	arena_t la;
	arena_init(&la, 0);
	while (!rc) {
		const labels_t *min = NULL;
		for (size_t i = 0; i < n; i++)
			if (x.srcs[i].id && (!min || labels_cmp(&x.srcs[i].ls, min) < 0))
				min = &x.srcs[i].ls;
		if (!min)
			break;
		arena_reset(&la);
		labels_t cur = labels_copy(&la, min);
		VEC_CLEAR(&x.group);
		for (size_t i = 0; i < n; i++)
			if (x.srcs[i].id && labels_eq(&x.srcs[i].ls, &cur))
				VEC_PUSH(&x.group, i);
		rc = merge_series(&x, &cur, err);
		for (size_t g = 0; !rc && g < x.group.n; g++) {
			size_t i = x.group.v[g];
			rc = src_advance(&x, i, err);
			/* Series must come in strictly ascending label order within an input. */
			if (!rc && x.srcs[i].id && labels_cmp(&x.srcs[i].ls, &cur) <= 0) {
				buf_t lb = BUF_INIT;
				labels_format_full(&lb, &x.srcs[i].ls);
				err_set(err, ERR_CORRUPT, "index: series %s out of order", lb.p);
				buf_release(&lb);
				rc = bad(&x, i, err);
			}
		}
	}
	arena_release(&la);
	if (!rc && x.bw && res->series == 0) {
		res->empty = true;
		block_writer_abort(x.bw);
	} else if (!rc && x.bw) {
		rc = block_writer_finish(x.bw, meta_in, res->dir, err);
	} else if (x.bw) {
		block_writer_abort(x.bw);
	}
	free(chain.c);
	ctx_release(&x);
	return rc;
}

/* ---- verification ---- */

static int vfail(err_t *err, const char *dir, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int vfail(err_t *err, const char *dir, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return err_set(err, ERR_CORRUPT, "verify block %s: %s", dir, msg);
}

int blockmerge_verify(const char *dir, err_t *err)
{
	block_t *b;
	int rc = block_open(&b, dir, err);
	if (rc)
		return err_wrap(err, "verify block %s", dir);
	arena_t pa; /* the previous series' labels */
	arena_init(&pa, 0);
	labels_t prev = {0};
	uint64_t nseries = 0, nchunks = 0, nsamples = 0;
	buf_t lb = BUF_INIT;
	block_walk_t w;
	block_walk_init(&w, b);
	for (;;) {
		int more = block_walk_next(&w, err);
		if (more <= 0) {
			rc = more;
			break;
		}
		labels_t ls = w.ls;
		const chunk_meta_t *cm = w.cm;
		size_t nc = w.ncm;
		buf_reset(&lb);
		labels_format_full(&lb, &ls);
		for (size_t i = 1; i < ls.n && !rc; i++)
			if (str_cmp(ls.v[i - 1].name, ls.v[i].name) >= 0)
				rc = vfail(err, dir, "series %s: label names not sorted and unique", lb.p);
		if (!rc && nseries && labels_cmp(&prev, &ls) >= 0)
			rc = vfail(err, dir, "series %s: not after the series before it", lb.p);
		for (size_t k = 0; k < nc && !rc; k++) {
			if (cm[k].mint > cm[k].maxt || cm[k].mint < b->meta.mint ||
			    cm[k].maxt >= b->meta.maxt)
				rc = vfail(err, dir,
				           "series %s: chunk [%lld, %lld] outside the block [%lld, %lld)",
				           lb.p, (long long)cm[k].mint, (long long)cm[k].maxt,
				           (long long)b->meta.mint, (long long)b->meta.maxt);
			else if (k && cm[k].mint <= cm[k - 1].maxt)
				rc = vfail(err, dir,
				           "series %s: chunk [%lld, %lld] overlaps the one before it", lb.p,
				           (long long)cm[k].mint, (long long)cm[k].maxt);
			chunk_t c;
			if (!rc && (rc = chunkfile_reader_get(&b->cf, cm[k].ref, &c, err)) == 0)
				nsamples += chunk_samples(&c);
		}
		if (rc)
			break;
		arena_reset(&pa);
		prev = labels_copy(&pa, &ls);
		nseries++;
		nchunks += nc;
	}
	if (!rc && (nseries != b->meta.num_series || nchunks != b->meta.num_chunks))
		rc =
		    vfail(err, dir, "meta.json says %llu series and %llu chunks, the index has %llu and %llu",
		          (unsigned long long)b->meta.num_series, (unsigned long long)b->meta.num_chunks,
		          (unsigned long long)nseries, (unsigned long long)nchunks);
	if (!rc && nsamples && nsamples != b->meta.num_samples)
		rc = vfail(err, dir, "meta.json says %llu samples, the chunks hold %llu",
		           (unsigned long long)b->meta.num_samples, (unsigned long long)nsamples);
	buf_release(&lb);
	arena_release(&pa);
	block_walk_release(&w);
	block_close(b);
	return rc;
}
