/*
 * batch.c — selectors evaluated in batches of series: the evaluating thread walks the series set and
 * collects each series' encoded chunks (or, without opts->decode_chunks, its decoded samples); the
 * batch's series are then decoded and run through a per-series kernel on the worker pool
 * (opts->workers, when the batch is big enough to be worth waking it) or inline; finally the sink
 * gets every series in storage order on the evaluating thread. Range functions (functions.c) and
 * instant selectors (the lookback kernel here) both go through it, so decoding is parallel and no
 * per-sample work happens on the evaluating thread.
 */
#include <string.h>

#include "base/alloc.h"
#include "promql/engine_int.h"

/* One series of a batch: labels (batch arena), then either encoded chunks (decoded by a worker through
 * opts->decode_chunks) or samples already decoded on the evaluating thread. */
typedef struct rb_item {
	labels_t ls;
	const chunk_t *chks;
	size_t nchks;
	bool aggr; /* downsampled: chks include aggregate chunks (decoded by opts->decode_aggr_chunks), or
	            * t/v are merged aggregate samples with the points before the range (rb_aggr_t.lead) */
	const int64_t *t;
	const double *v;
	size_t n;
	rk_out_t ro;
} rb_item_t;

typedef struct rb_scratch {
	int64_t *t;
	double *v;
	size_t cap;
	err_t err;
	int rc;
	size_t bad;   /* item that failed */
	bool stopped; /* cancelled or past the deadline (ev_stop_requested): the batch is incomplete */
	int64_t wtotal;  /* stats: window samples of this task's series */
	int64_t *wsteps; /* stats: the same per step (when counted per step) */
} rb_scratch_t;

typedef struct rb {
	ev_t *ev;
	const promql_opts_t *o;
	range_kernel_fn kfn;
	const void *kctx;
	rb_aggr_t aggr;   /* how series with aggregate chunks are read (zero: like raw ones) */
	const char *func; /* the select hint: which aggregate view decodes aggregate chunks */
	int64_t mint, maxt;
	rb_item_t *items;
	size_t n, cap;
	double *out;   /* cap x nsteps */
	uint8_t *ok;   /* cap x nsteps */
	size_t ntasks;
	rb_scratch_t *scr; /* ntasks */
	arena_t ba;        /* per-batch labels, chunk lists and pre-decoded samples */
	size_t bbytes;
	size_t work;       /* estimated samples to decode in the batch */
	arena_budget_t *budget; /* the query's: the heap arrays below are charged to it */
	size_t charged;         /* bytes charged for them */
	size_t decode_max;      /* largest decoded series (bytes) reserved for each task's buffers */
	bool drop_stale;   /* range selectors drop stale markers; instant selectors need them */
	const int64_t *wref; /* stats for a range function: window ends per step (NULL: instant selector) */
	int64_t wrange;
	bool count;          /* ev->qs is set: count samples read */
} rb_t;

/* Series per batch: enough for every task of the pool to have several, few enough that a batch's
 * output arrays (this many series x steps) stay small next to the rest of a query's memory. */
#define RB_MAX_SERIES 64

static void rb_cleanup(void *arg)
{
	rb_t *b = arg;
	ev_uncharge(b->budget, b->charged);
	b->charged = 0;
	for (size_t i = 0; b->scr && i < b->ntasks; i++) { /* scr is NULL when the charge failed */
		free(b->scr[i].t);
		free(b->scr[i].v);
		free(b->scr[i].wsteps);
	}
	free(b->scr);
	free(b->items);
	free(b->out);
	free(b->ok);
	arena_release(&b->ba);
	b->scr = NULL;
	b->items = NULL;
	b->out = NULL;
	b->ok = NULL;
	b->ntasks = 0;
}

static void *rb_dup(arena_t *a, const void *p, size_t n)
{
	void *d = arena_alloc(a, n + 1);
	if (n)
		memcpy(d, p, n);
	return d;
}

static inline uint64_t rb_bits(double v)
{
	uint64_t b;
	memcpy(&b, &v, 8);
	return b;
}

/* Keep in-range (and, with drop_stale, non-stale) samples in place. */
static size_t rb_trim(int64_t *t, double *v, size_t n, int64_t mint, int64_t maxt, bool drop_stale)
{
	size_t k = 0, j = 0;
	/* the common case, nothing to drop and nothing to move, checked 8 samples per branch: t in
	 * [mint, maxt] as one unsigned comparison of t - mint, stale markers by their bits */
	if (mint <= maxt) {
		uint64_t span = (uint64_t)maxt - (uint64_t)mint, um = (uint64_t)mint;
		uint64_t ds = drop_stale;
#define RB_BAD(e) (((uint64_t)t[j + (e)] - um > span) | ((rb_bits(v[j + (e)]) == STALE_NAN_BITS) & ds))
		for (; j + 8 <= n; j += 8)
			if ((RB_BAD(0) | RB_BAD(1) | RB_BAD(2) | RB_BAD(3)) | (RB_BAD(4) | RB_BAD(5) | RB_BAD(6) | RB_BAD(7)))
				break;
#undef RB_BAD
	}
	while (j < n && t[j] >= mint && t[j] <= maxt && !(drop_stale && value_is_stale(v[j])))
		j++;
	k = j;
	for (; j < n; j++) {
		if (t[j] < mint || t[j] > maxt || (drop_stale && value_is_stale(v[j])))
			continue;
		t[k] = t[j];
		v[k] = v[j];
		k++;
	}
	return k;
}

/* Stats: the samples in each window [ref - range, ref] of one series (2.42 counts every window's
 * samples, whether or not the function returns a value there). */
static void rb_count_windows(const rb_t *b, rb_scratch_t *sc, const int64_t *t, size_t n)
{
	size_t lo = 0, hi = 0, ns = b->ev->nsteps;
	for (size_t i = 0; i < ns; i++) {
		range_window(t, n, b->wref, i, b->wrange, &lo, &hi);
		sc->wtotal += (int64_t)(hi - lo);
		if (sc->wsteps)
			sc->wsteps[i] += (int64_t)(hi - lo);
	}
}

static void rb_task(void *arg, size_t ti)
{
	rb_t *b = arg;
	rb_scratch_t *sc = &b->scr[ti];
	size_t ns = b->ev->nsteps;
	size_t lo = b->n * ti / b->ntasks, hi = b->n * (ti + 1) / b->ntasks;
	size_t work = 0;
	for (size_t i = lo; i < hi && !sc->rc; i++) {
		if (work >= EV_POLL_WORK) {
			work = 0;
			if (ev_stop_requested(b->ev)) {
				sc->stopped = true;
				return;
			}
		}
		rb_item_t *it = &b->items[i];
		const int64_t *t = it->t;
		const double *v = it->v;
		size_t n = it->n;
		range_kernel_fn kfn = it->aggr && b->aggr.kfn ? b->aggr.kfn : b->kfn;
		if (it->chks) {
			bool lead = it->aggr && b->aggr.lead;
			int64_t got = it->aggr ? b->o->decode_aggr_chunks(it->chks, it->nchks,
			                                                  lead ? INT64_MIN : b->mint, b->maxt,
			                                                  b->func, b->aggr.count_weights,
			                                                  &sc->t, &sc->v, &sc->cap, &sc->err)
			                       : b->o->decode_chunks(it->chks, it->nchks, b->mint, b->maxt,
			                                             &sc->t, &sc->v, &sc->cap, &sc->err);
			if (got < 0) {
				sc->rc = (int)got;
				sc->bad = i;
				return;
			}
			int64_t mint = b->mint;
			if (lead) /* the last two points before the range stay (samples are in order) */
				for (int64_t j = got - 1, k = 0; j >= 0 && k < 2; j--)
					if (sc->t[j] < b->mint)
						mint = sc->t[j], k++;
			n = rb_trim(sc->t, sc->v, (size_t)got, mint, b->maxt, b->drop_stale);
			t = sc->t;
			v = sc->v;
		}
		kfn(b->kctx, t, v, n, b->out + i * ns, b->ok + i * ns, &it->ro);
		if (b->count && b->wref)
			rb_count_windows(b, sc, t, n);
		if (it->ro.stopped) {
			sc->stopped = true;
			return;
		}
		work += n + ns;
	}
}

/* Stats of a finished batch into ev->qs: the tasks' window counts (range functions) or the points
 * found (instant selectors: one per series and step with a value). */
static void rb_count_flush(rb_t *b)
{
	ev_t *ev = b->ev;
	size_t ns = ev->nsteps;
	if (b->wref) {
		for (size_t k = 0; k < b->ntasks; k++) {
			rb_scratch_t *sc = &b->scr[k];
			ev->qs->total += sc->wtotal;
			sc->wtotal = 0;
			if (sc->wsteps && ev->qs->per_step)
				for (size_t i = 0; i < ns; i++) {
					ev->qs->per_step[i] += sc->wsteps[i];
					sc->wsteps[i] = 0;
				}
		}
		return;
	}
	for (size_t j = 0; j < b->n; j++) {
		ev->qs->total += (int64_t)b->items[j].ro.npts;
		if (ev->qs->per_step && b->items[j].ro.npts) {
			const uint8_t *ok = b->ok + j * ns;
			for (size_t i = 0; i < ns; i++)
				ev->qs->per_step[i] += ok[i];
		}
	}
}

static void rb_flush(rb_t *b, range_sink_fn sink, void *sctx)
{
	ev_t *ev = b->ev;
	if (!b->n)
		return;
	ev_check_clock(ev, true); /* a batch is a lot of work: always read the clock */
	for (size_t i = 0; i < b->ntasks; i++) {
		b->scr[i].rc = 0;
		b->scr[i].stopped = false;
	}
	/* hand small batches to the pool only when the work outweighs waking it */
	if (b->o->workers && b->ntasks > 1 && b->work >= 65536)
		workers_parallel_for(b->o->workers, b->ntasks, rb_task, b);
	else
		for (size_t i = 0; i < b->ntasks; i++)
			rb_task(b, i);
	for (size_t i = 0; i < b->ntasks; i++)
		if (b->scr[i].stopped) {
			ev_check_clock(ev, true); /* the timeout or cancel error */
			ev->scr->error_type = "internal";
			ev_fail(ev, ERR_INTERNAL, "batch stopped without a cancel or deadline");
		}
	for (size_t i = 0; i < b->ntasks; i++)
		if (b->scr[i].rc) {
			*ev->err = b->scr[i].err;
			buf_t lb = BUF_INIT;
			labels_format(&lb, &b->items[b->scr[i].bad].ls);
			err_wrap(ev->err, "decoding series %s", lb.p);
			buf_release(&lb);
			ev->scr->error_type = "internal";
			ev_fail_err(ev, b->scr[i].rc);
		}
	size_t ns = ev->nsteps;
	if (b->count)
		rb_count_flush(b);
	for (size_t i = 0; i < b->n; i++) {
		rb_item_t *it = &b->items[i];
		acct_series(ev, &it->ro);
		if (it->ro.npts)
			sink(ev, sctx, &it->ls, b->out + i * ns, b->ok + i * ns, it->ro.npts);
	}
	b->n = 0;
	b->bbytes = 0;
	b->work = 0;
	arena_reset(&b->ba);
}

/* Bytes a task's decode buffers grow to for these chunks: XOR chunks say how many samples they hold
 * (2-byte header), other encodings are bounded by their size; 16 bytes a sample, twice for the
 * buffers' doubling growth. */
static size_t decode_bytes(const chunk_t *c, size_t n)
{
	size_t samples = 0;
	for (size_t i = 0; i < n; i++)
		samples += c[i].enc == CHUNK_ENC_XOR && c[i].len >= 2 ? ((size_t)c[i].data[0] << 8 | c[i].data[1])
								      : c[i].len * 8 + 2;
	return samples > SIZE_MAX / 64 ? SIZE_MAX : samples * 2 * (sizeof(int64_t) + sizeof(double));
}

/* Charge the budget for the tasks' decode buffers growing to hold this series. */
static void rb_reserve_decode(rb_t *b, const chunk_t *c, size_t n)
{
	size_t need = decode_bytes(c, n);
	if (need <= b->decode_max)
		return;
	if (need == SIZE_MAX || (need - b->decode_max) > SIZE_MAX / b->ntasks)
		ev_fail_memory(b->ev);
	size_t more = (need - b->decode_max) * b->ntasks;
	ev_charge(b->ev, more);
	b->charged += more;
	b->decode_max = need;
}

/* Does a chunk list hold downsampled aggregate chunks? */
static bool rb_any_aggr(const chunk_t *c, int n)
{
	for (int i = 0; i < n; i++)
		if (c[i].enc == CHUNK_ENC_AGGR)
			return true;
	return false;
}

/* Select vs over [mint, maxt] and run kfn over every series in batches, feeding sink in order. wref: a
 * range function's window ends per step (its windows are counted for stats), NULL for an instant
 * selector. aggr (optional): how series with aggregate chunks are read (rb_aggr_t). */
static void rb_run(ev_t *ev, const promql_expr_t *vs, int64_t mint, int64_t maxt, int64_t range,
                   const int64_t *wref, const char *func, bool drop_stale, range_kernel_fn kfn,
                   const rb_aggr_t *aggr, const void *kctx, range_sink_fn sink, void *sctx)
{
	size_t ns = ev->nsteps;
	rb_t *b = ev_zalloc(ev, sizeof *b);
	b->ev = ev;
	b->o = ev->o;
	b->kfn = kfn;
	if (aggr)
		b->aggr = *aggr;
	b->func = func;
	b->kctx = kctx;
	b->mint = mint;
	b->maxt = maxt;
	b->drop_stale = drop_stale;
	b->wref = wref;
	b->wrange = range;
	b->count = ev->qs != NULL;
	/* a batch holds at most ~2M output cells and RB_MAX_SERIES series */
	b->cap = (size_t)(2u << 20) / ns;
	if (b->cap > RB_MAX_SERIES)
		b->cap = RB_MAX_SERIES;
	if (b->cap < 1)
		b->cap = 1;
	int nw = ev->o->workers ? workers_count(ev->o->workers) + 1 : 1;
	b->ntasks = (size_t)nw * 4;
	if (b->ntasks > b->cap)
		b->ntasks = b->cap;
	arena_init(&b->ba, 1 << 16);
	b->budget = &ev->scr->budget;
	arena_set_budget(&b->ba, b->budget);
	arena_on_release(ev->a, rb_cleanup, b);
	/* the output arrays (cap series of ns steps), charged before they exist: a subquery of a billion
	 * steps fails here, not in the allocator */
	size_t row = sizeof(double) + 1 + (b->count && wref && ev->qs->per_step ? sizeof(int64_t) : 0);
	if (ns > SIZE_MAX / row / (b->cap + b->ntasks))
		ev_fail_memory(ev);
	size_t bytes = b->cap * sizeof *b->items + b->ntasks * sizeof *b->scr + (b->cap + b->ntasks) * ns * row;
	ev_charge(ev, bytes);
	b->charged = bytes;
	b->items = xcalloc(b->cap, sizeof *b->items);
	b->out = xreallocarray(NULL, b->cap * ns, sizeof(double));
	b->ok = xreallocarray(NULL, b->cap, ns);
	b->scr = xcalloc(b->ntasks, sizeof *b->scr);
	if (b->count && wref && ev->qs->per_step)
		for (size_t i = 0; i < b->ntasks; i++)
			b->scr[i].wsteps = xcalloc(ns, sizeof(int64_t));
	series_set_t *set = ev_select(ev, vs, b->mint, b->maxt, range, func);
	bool chunked = ev->o->decode_chunks && set->ops->chunks;
	/* chunk bytes that stay valid until the set is closed (mapped block files) are not copied */
	bool stable = chunked && set->ops->chunk_data_stable && set->ops->chunk_data_stable(set);
	int r;
	while ((r = series_set_next(set, ev->err)) > 0) {
		rb_item_t *it = &b->items[b->n];
		memset(it, 0, sizeof *it);
		const chunk_t *chks;
		int nc = chunked ? set->ops->chunks(set, &chks) : -1;
		/* downsampled data: decoded on the workers too when the caller can read aggregate chunks,
		 * otherwise through the set's sample iterator (which applies the aggregate view) */
		it->aggr = nc > 0 && rb_any_aggr(chks, nc);
		if (it->aggr && !ev->o->decode_aggr_chunks)
			nc = -1, it->aggr = false;
		if (nc >= 0) {
			/* the series set's pointers are only valid until its next next(): the batch keeps
			 * its own copy of the chunks overlapping the range (and of their bytes, unless the
			 * set keeps those until it is closed, which is after the last flush) */
			chunk_t *cc = arena_alloc(&b->ba, ((size_t)nc + 1) * sizeof(chunk_t));
			size_t k = 0;
			/* with aggr.lead also the chunk(s) ending last before the range (its last point) */
			int64_t from = b->mint;
			if (it->aggr && b->aggr.lead)
				for (int j = 0; j < nc; j++)
					if (chks[j].maxt < b->mint &&
					    (from == b->mint || chks[j].maxt > from))
						from = chks[j].maxt;
			for (int j = 0; j < nc; j++) {
				if (chks[j].maxt < from || chks[j].mint > b->maxt)
					continue;
				cc[k] = chks[j];
				if (!stable) {
					cc[k].data = rb_dup(&b->ba, chks[j].data, chks[j].len);
					b->bbytes += chks[j].len;
				}
				b->bbytes += sizeof(chunk_t);
				k++;
			}
			it->chks = cc;
			it->nchks = k;
			rb_reserve_decode(b, cc, k);
			b->work += 120 * k;
		} else {
			/* several sources' aggregate chunks merged into samples (deduplicated replicas): with
			 * aggr.lead read as downsampled data all the same, the last two points before the
			 * range kept as rb_task keeps them from aggregate chunks (the request reaches back
			 * for them) */
			bool lead = b->aggr.lead && series_set_aggr_samples(set);
			size_t n = ev_load_samples(ev, set, lead ? INT64_MIN : b->mint, b->maxt, drop_stale);
			size_t from = 0;
			if (lead) {
				while (from < n && ev->scr->t[from] < b->mint)
					from++;
				from = from >= 2 ? from - 2 : 0;
				it->aggr = true;
			}
			n -= from;
			it->t = rb_dup(&b->ba, ev->scr->t + from, n * sizeof(int64_t));
			it->v = rb_dup(&b->ba, ev->scr->v + from, n * sizeof(double));
			it->n = n;
			b->bbytes += 16 * n;
			b->work += n;
		}
		it->ls = labels_copy(&b->ba, series_set_labels(set));
		if (++b->n == b->cap || b->bbytes > (16u << 20))
			rb_flush(b, sink, sctx);
	}
	if (r < 0)
		ev_fail_err(ev, ev->err->code);
	rb_flush(b, sink, sctx);
	ev_close_set(ev, set);
}

void eval_range_batched(ev_t *ev, const promql_expr_t *m, const char *func, range_kernel_fn kfn,
                        const rb_aggr_t *aggr, const void *kctx, range_sink_fn sink, void *sctx,
                        int64_t *range, int64_t *ref)
{
	m = expr_unparen(m);
	if (m->kind != PROMQL_MATRIX_SEL)
		ev_fail(ev, ERR_INTERNAL, "batched range evaluation needs a matrix selector");
	int64_t mint, maxt;
	if (!ev_matrix_window(ev, m, range, ref, &mint, &maxt))
		return;
	rb_run(ev, m->u.ms.vs, mint, maxt, *range, ref, func, true, kfn, aggr, kctx, sink, sctx);
}

/* Instant selector kernel: per step the newest sample within the lookback window, absent if stale. */
typedef struct vs_kctx {
	const ev_t *ev; /* polled for cancel/deadline every EV_POLL_WORK steps (subqueries have millions) */
	const int64_t *ref;
	size_t nsteps;
	int64_t lookback;
	bool ts_mode; /* values = sample timestamps in seconds (timestamp()) */
	bool ordered; /* ref never decreases */
} vs_kctx_t;

/* One step of the instant selector at step i: j = the samples at or before ref[i] (advanced from its value
 * at an earlier step), the point out[i]/ok[i]. */
static inline size_t vs_step(const vs_kctx_t *c, const int64_t *t, const double *v, size_t n, size_t j,
                             size_t i, double *out, uint8_t *ok, size_t *cnt)
{
	int64_t rt = c->ref[i];
	while (j < n && t[j] <= rt)
		j++;
	ok[i] = 0;
	if (j > 0 && t[j - 1] >= rt - c->lookback && !value_is_stale(v[j - 1])) {
		ok[i] = 1;
		out[i] = c->ts_mode ? (double)t[j - 1] / 1000.0 : v[j - 1];
		++*cnt;
	}
	return j;
}

static void vs_kernel(const void *kctx, const int64_t *t, const double *v, size_t n, double *out, uint8_t *ok,
		      rk_out_t *ro)
{
	const vs_kctx_t *c = kctx;
	size_t j = 0, cnt = 0, ns = c->nsteps;
	/* step times in order (no @): four stretches of steps scanned side by side, each from a binary
	 * search, so four scans' dependency chains (a load and a compare per sample) overlap */
	if (c->ordered && ns >= 64 && ns < EV_POLL_WORK) {
		size_t q = ns / 4, i1 = q, i2 = 2 * q, i3 = 3 * q;
		size_t j1 = samples_upper_bound(t, n, c->ref[i1 - 1]), j2 = samples_upper_bound(t, n, c->ref[i2 - 1]),
		       j3 = samples_upper_bound(t, n, c->ref[i3 - 1]);
		for (size_t i0 = 0; i0 < q; i0++, i1++, i2++, i3++) {
			j = vs_step(c, t, v, n, j, i0, out, ok, &cnt);
			j1 = vs_step(c, t, v, n, j1, i1, out, ok, &cnt);
			j2 = vs_step(c, t, v, n, j2, i2, out, ok, &cnt);
			j3 = vs_step(c, t, v, n, j3, i3, out, ok, &cnt);
		}
		for (; i3 < ns; i3++)
			j3 = vs_step(c, t, v, n, j3, i3, out, ok, &cnt);
		*ro = (rk_out_t){cnt, 0, 0};
		return;
	}
	for (size_t i = 0; i < ns; i++) {
		if ((i & (EV_POLL_WORK - 1)) == EV_POLL_WORK - 1 && ev_stop_requested(c->ev)) {
			*ro = (rk_out_t){cnt, 0, 0, true};
			return;
		}
		if (i > 0 && c->ref[i] < c->ref[i - 1])
			j = 0;
		j = vs_step(c, t, v, n, j, i, out, ok, &cnt);
	}
	*ro = (rk_out_t){cnt, 0, 0};
}

/* Evaluate instant selector e into sink (series with at least one point, in storage order); func is
 * the enclosing aggregation for the select hints (NULL if none). */
void eval_vs_into(ev_t *ev, const promql_expr_t *e, bool ts_mode, const char *func, range_sink_fn sink, void *sctx)
{
	size_t ns = ev->nsteps;
	if (ns == 0)
		return;
	int64_t *ref = ev_alloc(ev, ns * sizeof(int64_t));
	ev_ref_times(ev, &e->u.vs.mods, ref);
	int64_t mn = ref[0], mx = ref[0];
	for (size_t i = 1; i < ns; i++) {
		if (ref[i] < mn)
			mn = ref[i];
		if (ref[i] > mx)
			mx = ref[i];
	}
	vs_kctx_t *c = ev_zalloc(ev, sizeof *c);
	*c = (vs_kctx_t){ev, ref, ns, ev->lookback, ts_mode, true};
	for (size_t i = 1; i < ns; i++)
		c->ordered &= ref[i] >= ref[i - 1];
	rb_run(ev, e, mn - ev->lookback, mx, 0, NULL, func, false, vs_kernel, NULL, c, sink, sctx);
}

void vs_collect_sink(ev_t *ev, void *sctx, const labels_t *ls, const double *v, const uint8_t *ok, size_t npts)
{
	vs_collect_t *c = sctx;
	size_t ns = ev->nsteps;
	if (c->n == c->cap)
		c->arr = ev_grow(ev, c->arr, c->n, &c->cap, sizeof *c->arr);
	double *ov = ev_alloc(ev, ns * sizeof(double));
	uint8_t *ook = ev_alloc(ev, ns);
	memcpy(ov, v, ns * sizeof(double));
	memcpy(ook, ok, ns);
	c->arr[c->n++] = (vseries_t){ev_labels_copy(ev, ls), ov, ook};
}
