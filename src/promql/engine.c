/*
 * engine.c — PromQL evaluator core: query entry, selectors, subqueries, binary operators,
 * aggregations, output building and limits. Functions live in functions.c.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fmt.h"
#include "promql/engine_int.h"
#include "promql/gosort.h"

/* ------------------------------------------------------------------------------ basics */

void ev_fail(ev_t *ev, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_setv(ev->err, code, fmt, ap);
	va_end(ap);
	ev->scr->rc = code;
	longjmp(*ev->jmp, 1);
}

void ev_fail_err(ev_t *ev, int code)
{
	ev->scr->rc = code ? code : ERR_INTERNAL;
	longjmp(*ev->jmp, 1);
}

void ev_check(ev_t *ev)
{
	ev_check_clock(ev, (++ev->checks & 63) == 0);
}

void ev_check_clock(ev_t *ev, bool read_clock)
{
	if (ev->o->cancel && *ev->o->cancel) {
		ev->scr->error_type = "canceled";
		ev_fail(ev, ERR_CANCELED, "query was canceled in query execution"); /* 2.42: ErrQueryCanceled */
	}
	if (ev->deadline_ms && read_clock && clock_mono_ms() > (uint64_t)ev->deadline_ms) {
		ev->scr->error_type = "timeout";
		ev_fail(ev, ERR_TIMEOUT, "query timed out in query execution");
	}
}

bool ev_stop_requested(const ev_t *ev)
{
	return (ev->o->cancel && *ev->o->cancel) ||
	       (ev->deadline_ms && clock_mono_ms() > (uint64_t)ev->deadline_ms);
}

void ev_fail_memory(ev_t *ev)
{
	ev->scr->error_type = "execution";
	/* the one with less room left is the one the allocation did not fit */
	const arena_budget_t *b = &ev->scr->budget;
	size_t pool_used = b->pool ? atomic_load_explicit(&b->pool->used, memory_order_relaxed) : 0;
	if (b->pool && (pool_used >= b->pool->limit ? 0 : b->pool->limit - pool_used) <
	                   (b->used >= b->limit ? 0 : b->limit - b->used))
		ev_fail(ev, ERR_LIMIT,
		        "query processing would exceed the memory budget of all running queries of %zu bytes",
		        b->pool->limit);
	ev_fail(ev, ERR_LIMIT, "query processing would exceed the per-query memory budget of %zu bytes",
	        b->limit);
}

void *ev_alloc(ev_t *ev, size_t n)
{
	void *p = arena_try_alloc(ev->a, n ? n : 1);
	if (!p)
		ev_fail_memory(ev);
	return p;
}

size_t ev_array_bytes(ev_t *ev, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		ev_fail_memory(ev);
	return n * size;
}

void *ev_alloc_array(ev_t *ev, size_t n, size_t size)
{
	return ev_alloc(ev, ev_array_bytes(ev, n, size));
}

void ev_check_steps(ev_t *ev, size_t nsteps)
{
	if (nsteps > ev->scr->budget.limit / (sizeof(double) + 1))
		ev_fail_memory(ev);
}

/* Fails the query unless bytes more fit the budget. */
static void budget_check(ev_t *ev, size_t bytes)
{
	if (!arena_budget_fits(&ev->scr->budget, bytes))
		ev_fail_memory(ev);
}

void ev_charge(ev_t *ev, size_t bytes)
{
	budget_check(ev, bytes);
	arena_budget_add(&ev->scr->budget, bytes);
}

void ev_uncharge(arena_budget_t *b, size_t bytes)
{
	arena_budget_sub(b, bytes);
}

void *ev_zalloc(ev_t *ev, size_t n)
{
	void *p = ev_alloc(ev, n);
	memset(p, 0, n ? n : 1);
	return p;
}

static void hmap_cleanup(void *arg)
{
	hmap_release(arg);
}

static void imap_cleanup(void *arg)
{
	imap_release(arg);
}

hmap_t *ev_hmap(ev_t *ev, size_t expected)
{
	hmap_t *m = ev_zalloc(ev, sizeof *m);
	hmap_init(m, expected);
	arena_on_release(ev->a, hmap_cleanup, m);
	return m;
}

imap_t *ev_imap(ev_t *ev, size_t expected)
{
	imap_t *m = ev_zalloc(ev, sizeof *m);
	imap_init(m, expected);
	arena_on_release(ev->a, imap_cleanup, m);
	return m;
}

void *ev_grow(ev_t *ev, const void *v, size_t n, size_t *cap, size_t sz)
{
	size_t ncap = *cap ? *cap * 2 : 16;
	void *nv = ev_alloc(ev, ncap * sz);
	if (n)
		memcpy(nv, v, n * sz);
	*cap = ncap;
	return nv;
}

void ev_add_samples(ev_t *ev, int64_t n)
{
	ev->cur_samples += n;
	if (ev->cur_samples > ev->peak_samples)
		ev->peak_samples = ev->cur_samples;
	if (ev->cur_samples > ev->max_samples) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_LIMIT, "query processing would load too many samples into memory in query execution");
	}
}

void acct_set(ev_t *ev, int64_t cur)
{
	ev->cur_samples = cur;
	if (cur > ev->peak_samples)
		ev->peak_samples = cur;
	if (cur > ev->max_samples) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_LIMIT, "query processing would load too many samples into memory in query execution");
	}
}

void acct_series(ev_t *ev, const rk_out_t *ro)
{
	int64_t c = ev->cur_samples;
	if (ro->maxwin)
		acct_set(ev, c + (int64_t)ro->maxwin); /* the window, while the series is evaluated */
	if (ro->npts)
		acct_set(ev, c + (int64_t)ro->lastwin + (int64_t)ro->npts); /* output appended, last window held */
	ev->cur_samples = c + (int64_t)ro->npts;
}

/* Per-step point counts of a value (a scalar has one point per step; strings none). */
static int64_t *val_step_counts(ev_t *ev, const val_t *v)
{
	size_t ns = ev->nsteps;
	int64_t *c = ev_zalloc(ev, (ns ? ns : 1) * sizeof(int64_t));
	if (v->type == PROMQL_TYPE_SCALAR) {
		for (size_t i = 0; i < ns; i++)
			c[i] = 1;
	} else if (v->type == PROMQL_TYPE_VECTOR) {
		for (size_t s = 0; s < v->n; s++)
			for (size_t i = 0; i < ns; i++)
				c[i] += v->s[s].ok[i];
	}
	return c;
}

void argrec_add(ev_t *ev, argrec_t *r, const int64_t *cnt)
{
	if (r->n == ARRAY_LEN(r->cnt))
		ev_fail(ev, ERR_INTERNAL, "too many arguments to account");
	r->cnt[r->n++] = cnt;
}

/* 2.42's rangeEval arithmetic over a finished node (see engine_int.h). */
static void acct_range_eval(ev_t *ev, int64_t orig, const argrec_t *r, const val_t *out)
{
	int64_t *oc = val_step_counts(ev, out);
	int64_t temp = ev->cur_samples, total = 0;
	for (size_t i = 0; i < ev->nsteps; i++) {
		int64_t in = 0;
		for (size_t k = 0; k < r->n; k++)
			in += r->cnt[k][i];
		acct_set(ev, temp + in);
		acct_set(ev, temp + in + oc[i]);
		temp += oc[i];
		total += oc[i];
	}
	acct_set(ev, orig + total);
}


double go_max(double x, double y)
{
	if (isinf(x) && x > 0)
		return x;
	if (isinf(y) && y > 0)
		return y;
	if (isnan(x) || isnan(y))
		return NAN;
	if (x == 0 && x == y)
		return signbit(x) ? y : x;
	return x > y ? x : y;
}

double go_min(double x, double y)
{
	if (isinf(x) && x < 0)
		return x;
	if (isinf(y) && y < 0)
		return y;
	if (isnan(x) || isnan(y))
		return NAN;
	if (x == 0 && x == y)
		return signbit(x) ? x : y;
	return x < y ? x : y;
}


double quantile_sorted(double q, double *vals, size_t n)
{
	if (n == 0)
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	if (isnan(q))
		return NAN;
	gosort_sort(vals, NULL, n, GOSORT_VALUE_HEAP); /* 2.42 sorts a vectorByValueHeap */
	double fn = (double)n;
	double rank = q * (fn - 1);
	double lo = go_max(0, floor(rank));
	double hi = go_min(fn - 1, lo + 1);
	double w = rank - floor(rank);
	return vals[(size_t)lo] * (1 - w) + vals[(size_t)hi] * w;
}

/* ------------------------------------------------------------------------------ labels */

labels_t ev_labels_copy(ev_t *ev, const labels_t *ls)
{
	size_t bytes = ls->n * sizeof(label_t);
	for (size_t i = 0; i < ls->n; i++)
		bytes += ls->v[i].name.n + ls->v[i].value.n;
	budget_check(ev, bytes);
	return labels_copy(ev->a, ls);
}

labels_t lb_drop_name(ev_t *ev, labels_t ls)
{
	for (size_t i = 0; i < ls.n; i++) {
		if (str_eq_c(ls.v[i].name, LABEL_METRIC_NAME)) {
			labels_t r = {ev_alloc(ev, ls.n * sizeof(label_t)), ls.n - 1};
			memcpy(r.v, ls.v, i * sizeof(label_t));
			memcpy(r.v + i, ls.v + i + 1, (ls.n - i - 1) * sizeof(label_t));
			return r;
		}
	}
	return ls;
}

labels_t lb_set(ev_t *ev, labels_t ls, str_t name, str_t value)
{
	labels_t r = {ev_alloc(ev, (ls.n + 1) * sizeof(label_t)), 0};
	bool done = false;
	char *vcopy = NULL;
	if (value.n) {
		vcopy = ev_alloc(ev, value.n);
		memcpy(vcopy, value.p, value.n);
	}
	char *ncopy = ev_alloc(ev, name.n);
	memcpy(ncopy, name.p, name.n);
	for (size_t i = 0; i < ls.n; i++) {
		int c = str_cmp(ls.v[i].name, name);
		if (!done && c >= 0) {
			if (value.n)
				r.v[r.n++] = (label_t){{ncopy, name.n}, {vcopy, value.n}};
			done = true;
			if (c == 0)
				continue;
		}
		r.v[r.n++] = ls.v[i];
	}
	if (!done && value.n)
		r.v[r.n++] = (label_t){{ncopy, name.n}, {vcopy, value.n}};
	return r;
}

str_t lb_key(ev_t *ev, labels_t ls)
{
	size_t n = 0;
	for (size_t i = 0; i < ls.n; i++)
		n += ls.v[i].name.n + ls.v[i].value.n + 2;
	char *p = ev_alloc(ev, n);
	size_t k = 0;
	for (size_t i = 0; i < ls.n; i++) {
		memcpy(p + k, ls.v[i].name.p, ls.v[i].name.n);
		k += ls.v[i].name.n;
		p[k++] = '\xff';
		memcpy(p + k, ls.v[i].value.p, ls.v[i].value.n);
		k += ls.v[i].value.n;
		p[k++] = '\xfe';
	}
	return (str_t){p, n};
}

static bool name_in(str_t name, const str_t *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (str_eq(name, names[i]))
			return true;
	return false;
}

/* keep=true: only labels in names; keep=false: all but names (and __name__ when drop_name). */
static labels_t lb_filter(ev_t *ev, labels_t ls, const str_t *names, size_t nn, bool keep, bool drop_name)
{
	labels_t r = {ev_alloc(ev, (ls.n ? ls.n : 1) * sizeof(label_t)), 0};
	for (size_t i = 0; i < ls.n; i++) {
		bool in = name_in(ls.v[i].name, names, nn);
		if (keep ? in : (!in && !(drop_name && str_eq_c(ls.v[i].name, LABEL_METRIC_NAME))))
			r.v[r.n++] = ls.v[i];
	}
	return r;
}

/* ------------------------------------------------------------------------------ output builder */

static void ob_cleanup(void *arg)
{
	obuild_t *ob = arg;
	hmap_release(&ob->map);
	memset(&ob->map, 0, sizeof ob->map);
}

static size_t ob_add(ev_t *ev, obuild_t *ob, labels_t ls, void **slot, bool bare);

obuild_t *ob_new(ev_t *ev)
{
	obuild_t *ob = ev_zalloc(ev, sizeof *ob);
	hmap_init(&ob->map, 16);
	arena_on_release(ev->a, ob_cleanup, ob);
	return ob;
}

size_t ob_get(ev_t *ev, obuild_t *ob, labels_t ls)
{
	str_t key = lb_key(ev, ls);
	bool found;
	void **slot = hmap_slot(&ob->map, key, &found);
	if (found)
		return (size_t)(uintptr_t)*slot - 1;
	return ob_add(ev, ob, ls, slot, false);
}

size_t ob_get_unique(ev_t *ev, obuild_t *ob, labels_t ls)
{
	str_t key = lb_key(ev, ls);
	bool found;
	void **slot = hmap_slot(&ob->map, key, &found);
	if (found) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_INVALID, "vector cannot contain metrics with the same labelset");
	}
	return ob_add(ev, ob, ls, slot, false);
}

/* bare: no value arrays (the caller sets s->v and s->ok before ob_finish) */
static size_t ob_add(ev_t *ev, obuild_t *ob, labels_t ls, void **slot, bool bare)
{
	if (ob->n == ob->cap)
		ob->s = ev_grow(ev, ob->s, ob->n, &ob->cap, sizeof *ob->s);
	*slot = (void *)(uintptr_t)(ob->n + 1);
	vseries_t *s = &ob->s[ob->n];
	s->ls = ls;
	s->v = bare ? NULL : ev_alloc(ev, ev->nsteps * sizeof(double));
	s->ok = bare ? NULL : ev_zalloc(ev, ev->nsteps);
	return ob->n++;
}

size_t ob_get_bare(ev_t *ev, obuild_t *ob, labels_t ls)
{
	str_t key = lb_key(ev, ls);
	bool found;
	void **slot = hmap_slot(&ob->map, key, &found);
	if (found)
		return (size_t)(uintptr_t)*slot - 1;
	return ob_add(ev, ob, ls, slot, true);
}

void ob_set(ev_t *ev, obuild_t *ob, size_t idx, size_t step, double v)
{
	vseries_t *s = &ob->s[idx];
	if (s->ok[step]) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_INVALID, "vector cannot contain metrics with the same labelset");
	}
	s->ok[step] = 1;
	s->v[step] = v;
}

void ob_finish(ev_t *ev, obuild_t *ob, val_t *out)
{
	out->type = PROMQL_TYPE_VECTOR;
	out->s = ob->s;
	out->n = ob->n;
	ob_cleanup(ob);
}

/* ------------------------------------------------------------------------------ selectors */

static void scratch_free(void *arg)
{
	ev_scratch_t *s = arg;
	ev_uncharge(&s->budget, s->cap * (sizeof(int64_t) + sizeof(double)));
	free(s->t);
	free(s->v);
	s->t = NULL;
	s->v = NULL;
	s->cap = 0;
}

/* Decode the current series' samples within [mint, maxt] into the scratch arrays. */
size_t ev_load_samples(ev_t *ev, series_set_t *set, int64_t mint, int64_t maxt, bool drop_stale)
{
	sample_iter_t *it = series_set_samples(set);
	if (sample_iter_seek(it, mint, ev->err))
		ev_fail_err(ev, ev->err->code);
	size_t n = 0;
	for (;;) {
		ev_scratch_t *sc = ev->scr;
		if (sc->cap - n < 256) {
			size_t ncap = sc->cap ? sc->cap * 2 : 1024;
			if (ncap > SIZE_MAX / 32)
				ev_fail_memory(ev);
			ev_charge(ev, (ncap - sc->cap) * (sizeof(int64_t) + sizeof(double)));
			if (!sc->t)
				arena_on_release(ev->a, scratch_free, sc);
			sc->t = xreallocarray(sc->t, ncap, sizeof(int64_t));
			sc->v = xreallocarray(sc->v, ncap, sizeof(double));
			sc->cap = ncap;
		}
		int cap = (int)(ev->scr->cap - n > 1 << 20 ? 1 << 20 : ev->scr->cap - n);
		int got = sample_iter_next_batch(it, ev->scr->t + n, ev->scr->v + n, cap, ev->err);
		if (got < 0)
			ev_fail_err(ev, ev->err->code);
		if (got == 0)
			break;
		size_t k = n, end = n + (size_t)got;
		bool past = false;
		for (size_t j = n; j < end; j++) {
			int64_t t = ev->scr->t[j];
			if (t < mint)
				continue;
			if (t > maxt) {
				past = true;
				break;
			}
			if (drop_stale && value_is_stale(ev->scr->v[j]))
				continue;
			ev->scr->t[k] = t;
			ev->scr->v[k] = ev->scr->v[j];
			k++;
		}
		n = k;
		if (past)
			break;
	}
	return n;
}

/* The @ time of m (false without @). */
bool ev_at_time(const ev_t *ev, const promql_mods_t *m, int64_t *at)
{
	switch (m->at_kind) {
	case PROMQL_AT_TS: *at = m->at; return true;
	case PROMQL_AT_START: *at = ev->qstart; return true;
	case PROMQL_AT_END: *at = ev->qend; return true;
	default: return false;
	}
}

/* Window end (selector reference time) per step. With ev->at_shift (the range argument of a function
 * that is not step-invariant, i.e. predict_linear) 2.42 turns "@ T" into an offset of (start - T), so
 * the window moves with the steps from T on. */
void ev_ref_times(ev_t *ev, const promql_mods_t *m, int64_t *ref)
{
	int64_t at;
	bool has_at = ev_at_time(ev, m, &at);
	for (size_t i = 0; i < ev->nsteps; i++) {
		int64_t base = ev_ts(ev, i);
		if (has_at)
			base = ev->at_shift ? at + (base - ev->start) : at;
		ref[i] = base - m->offset;
	}
}

bool ev_matrix_window(ev_t *ev, const promql_expr_t *m, int64_t *range, int64_t *ref, int64_t *mint, int64_t *maxt)
{
	const promql_expr_t *vs = m->u.ms.vs;
	size_t ns = ev->nsteps;
	*range = m->u.ms.range;
	ev_ref_times(ev, &vs->u.vs.mods, ref);
	if (ns == 0)
		return false;
	int64_t mn = ref[0], mx = ref[0];
	for (size_t i = 1; i < ns; i++) {
		if (ref[i] < mn)
			mn = ref[i];
		if (ref[i] > mx)
			mx = ref[i];
	}
	*mint = mn - *range, *maxt = mx;
	int64_t at;
	if (ev->at_shift && ev_at_time(ev, &vs->u.vs.mods, &at)) { /* 2.42 selects only around T */
		*mint = at - vs->u.vs.mods.offset - *range;
		*maxt = at - vs->u.vs.mods.offset;
	}
	return true;
}

/* A selector's series set lives in an arena of its own, released when the set is closed: what the store
 * allocated for it (decoded labels, chunk buffers) does not stay with the query once the selector's
 * series are read (their labels are copied out). */
static arena_t *select_arena(ev_t *ev)
{
	arena_t *sa = xmalloc(sizeof *sa);
	arena_init(sa, 0);
	arena_set_budget(sa, &ev->scr->budget);
	ev->scr->open_arena = sa;
	return sa;
}

static void select_arena_free(ev_scratch_t *scr)
{
	if (scr->open_arena) {
		arena_release(scr->open_arena);
		free(scr->open_arena);
		scr->open_arena = NULL;
	}
	ev_uncharge(&scr->budget, scr->open_charge);
	scr->open_charge = 0;
}

static bool agg_accumulating(promql_aggr_op_t op);

/* ---- selects started ahead (promql_opts_t.select_ahead) ----
 * A planned select: its selector, the arguments the evaluation is predicted to select it with, and, once
 * started, the result of the select() a pool job made. The job and the evaluator each hold a reference;
 * state goes QUEUED -> RUNNING -> DONE (the job) or QUEUED -> DROPPED (the evaluator took it back before
 * it ran). The set and its arena belong to the evaluator once DONE. */
enum { PF_PLANNED, PF_QUEUED, PF_RUNNING, PF_DONE, PF_DROPPED };

typedef struct prefetch {
	const promql_expr_t *vs;
	queryable_t *q;
	int64_t mint, maxt;
	select_hints_t h;
	arena_t *sa;
	arena_budget_t budget; /* counts against the query's memory pool while the job runs */
	series_set_t *set;
	err_t err;
	int rc;
	_Atomic int state;
	_Atomic int refs;
	pthread_mutex_t mu;
	pthread_cond_t cv;
} prefetch_t;

static void pf_unref(prefetch_t *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	if (p->sa) { /* never taken: the set was closed by the evaluator, only the memory is left */
		arena_release(p->sa);
		free(p->sa);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

static void pf_job(void *arg)
{
	prefetch_t *p = arg;
	int st = PF_QUEUED;
	if (atomic_compare_exchange_strong(&p->state, &st, PF_RUNNING)) {
		p->rc = p->q->ops->select(p->q, p->sa, p->vs->u.vs.ms, p->vs->u.vs.nms, p->mint, p->maxt,
		                          &p->h, &p->set, &p->err);
		pthread_mutex_lock(&p->mu);
		atomic_store(&p->state, PF_DONE);
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	pf_unref(p);
}

/* The selects started ahead run on a pool of their own, shared by all queries: they wait on stores and
 * must not hold the threads of opts.workers, which decode and evaluate. Its threads start when selects
 * come and exit when idle (base/workers.h); a select still queued when its query needs it is run by the
 * query itself, so a busy pool delays nothing. */
#define PF_THREADS 16
static workers_t *pf_pool;
static pthread_once_t pf_pool_once = PTHREAD_ONCE_INIT;

static void pf_pool_init(void)
{
	pf_pool = workers_new(PF_THREADS);
}

/* Start planned selects until opts.select_ahead of them are running. */
static void pf_start(ev_scratch_t *scr, const promql_opts_t *o)
{
	pthread_once(&pf_pool_once, pf_pool_init);
	while (scr->pf_next < scr->npf && scr->pf_running < (size_t)o->select_ahead) {
		prefetch_t *p = scr->pf[scr->pf_next++];
		if (!p) /* taken back before it started */
			continue;
		atomic_store(&p->state, PF_QUEUED);
		atomic_fetch_add(&p->refs, 1);
		scr->pf_running++;
		workers_submit(pf_pool, pf_job, p);
	}
}

/* Take p back from the pool: the select is dropped if it has not started, else waited for. Returns
 * whether p holds a select() result. */
static bool pf_settle(prefetch_t *p)
{
	int st = PF_QUEUED;
	if (atomic_compare_exchange_strong(&p->state, &st, PF_DROPPED))
		return false;
	if (st == PF_PLANNED)
		return false;
	pthread_mutex_lock(&p->mu);
	while (atomic_load(&p->state) != PF_DONE)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return true;
}

/* Every select started ahead and not taken: waited for, closed and freed (query end, or its failure). */
static void pf_release(ev_scratch_t *scr)
{
	for (size_t i = 0; i < scr->npf; i++) {
		prefetch_t *p = scr->pf[i];
		if (!p)
			continue;
		scr->pf[i] = NULL;
		if (pf_settle(p) && p->rc == 0)
			series_set_close(p->set);
		pf_unref(p);
	}
	free(scr->pf);
	scr->pf = NULL;
	scr->npf = scr->pf_next = scr->pf_running = 0;
}

/* The select started ahead for vs with exactly these arguments, taken over (0), or none (-1: select
 * now). A select() that failed ahead fails here with its error. */
static int pf_take(ev_t *ev, const promql_expr_t *vs, int64_t mint, int64_t maxt, const select_hints_t *h,
                   series_set_t **out)
{
	ev_scratch_t *scr = ev->scr;
	size_t i = 0;
	while (i < scr->npf && (!scr->pf[i] || scr->pf[i]->vs != vs))
		i++;
	if (i == scr->npf)
		return -1;
	prefetch_t *p = scr->pf[i];
	scr->pf[i] = NULL;
	bool started = i < scr->pf_next;
	bool have = pf_settle(p);
	if (started)
		scr->pf_running--;
	bool same = have && p->mint == mint && p->maxt == maxt && p->h.step == h->step &&
	            p->h.range == h->range &&
	            (p->h.func == h->func || (p->h.func && h->func && !strcmp(p->h.func, h->func)));
	if (have && !same && p->rc == 0)
		series_set_close(p->set);
	if (!same) {
		pf_unref(p);
		pf_start(scr, ev->o);
		return -1;
	}
	/* the arena becomes the query's open select arena; what it allocated so far is charged now */
	arena_t *sa = p->sa;
	p->sa = NULL;
	size_t used = p->budget.used;
	arena_set_budget(sa, &scr->budget);
	scr->open_arena = sa;
	int rc = p->rc;
	*out = p->set;
	if (rc < 0)
		*ev->err = p->err;
	pf_unref(p);
	pf_start(scr, ev->o);
	if (rc < 0) {
		select_arena_free(scr);
		ev->scr->error_type = "internal";
		ev_fail_err(ev, ev->err->code);
	}
	scr->open_set = *out;
	ev_charge(ev, used);
	scr->open_charge = used;
	return 0;
}

/* Plan the selects of e (before it is evaluated): every vector selector outside subqueries and without
 * @, after the first, with the arguments its evaluation by ev is predicted to select it with (see
 * eval_vs_into, eval_aggr and the range functions: an instant selector's hint names the accumulating
 * aggregation right around it, a matrix selector's the function it is an argument of). */
#define PF_MAX 64
static void pf_plan(ev_t *ev, const promql_expr_t *e)
{
	const promql_opts_t *o = ev->o;
	if (o->select_ahead <= 0 || ev->nsteps == 0)
		return;
	typedef struct {
		const promql_expr_t *e;
		const char *vfunc, *mfunc; /* the hint an instant / a matrix selector right here gets */
	} pframe_t;
	pframe_t *st = NULL;
	size_t n = 0, cap = 0, seen = 0;
	prefetch_t **pf = NULL;
	size_t npf = 0;
	int64_t *ref = NULL;
#define PF_PUSH(x, vf, mf)                                                                                   \
	do {                                                                                                 \
		if (n == cap) {                                                                              \
			cap = cap ? 2 * cap : 16;                                                            \
			st = xreallocarray(st, cap, sizeof *st);                                             \
		}                                                                                            \
		st[n++] = (pframe_t){(x), (vf), (mf)};                                                       \
	} while (0)
	PF_PUSH(e, NULL, NULL);
	while (n > 0 && npf < PF_MAX) {
		pframe_t f = st[--n];
		const promql_expr_t *x = f.e;
		switch (x->kind) {
		case PROMQL_PAREN:
			PF_PUSH(x->u.paren.expr, f.vfunc, f.mfunc);
			continue;
		case PROMQL_UNARY:
			PF_PUSH(x->u.unary.expr, NULL, NULL);
			continue;
		case PROMQL_BINARY: /* lhs first */
			PF_PUSH(x->u.bin.rhs, NULL, NULL);
			PF_PUSH(x->u.bin.lhs, NULL, NULL);
			continue;
		case PROMQL_CALL:
			for (size_t i = x->u.call.nargs; i-- > 0;)
				PF_PUSH(x->u.call.args[i], NULL, x->u.call.func->name);
			continue;
		case PROMQL_AGGR:
			PF_PUSH(x->u.aggr.expr,
			        agg_accumulating(x->u.aggr.op) ? promql_aggr_str(x->u.aggr.op) : NULL, NULL);
			if (x->u.aggr.param)
				PF_PUSH(x->u.aggr.param, NULL, NULL);
			continue;
		case PROMQL_VECTOR_SEL:
		case PROMQL_MATRIX_SEL:
			break;
		default: /* numbers, strings; subqueries are evaluated with steps of their own */
			continue;
		}
		bool matrix = x->kind == PROMQL_MATRIX_SEL;
		const promql_expr_t *vs = matrix ? x->u.ms.vs : x;
		if (vs->u.vs.mods.at_kind != PROMQL_AT_NONE || seen++ == 0)
			continue; /* the first is selected at once by the evaluation itself */
		if (!ref)
			ref = xreallocarray(NULL, ev->nsteps, sizeof *ref);
		prefetch_t *p = xcalloc(1, sizeof *p);
		p->vs = vs;
		p->q = ev->q;
		if (matrix) {
			int64_t range;
			ev_matrix_window(ev, x, &range, ref, &p->mint, &p->maxt);
			p->h.range = range;
			p->h.func = f.mfunc; /* NULL: a top-level matrix */
		} else {
			ev_ref_times(ev, &vs->u.vs.mods, ref);
			int64_t mn = ref[0], mx = ref[0];
			for (size_t i = 1; i < ev->nsteps; i++) {
				mn = ref[i] < mn ? ref[i] : mn;
				mx = ref[i] > mx ? ref[i] : mx;
			}
			p->mint = mn - ev->lookback;
			p->maxt = mx;
			p->h.func =
			    f.vfunc; /* only an accumulating aggregation right around it names itself */
		}
		p->h.start = p->mint;
		p->h.end = p->maxt;
		p->h.step = ev->step;
		p->sa = xmalloc(sizeof *p->sa);
		arena_init(p->sa, 0);
		p->budget.limit = ev->scr->budget.limit;
		p->budget.pool = o->memory_pool;
		arena_set_budget(p->sa, &p->budget);
		atomic_init(&p->state, PF_PLANNED);
		atomic_init(&p->refs, 1);
		pthread_mutex_init(&p->mu, NULL);
		pthread_cond_init(&p->cv, NULL);
		pf = xreallocarray(pf, npf + 1, sizeof *pf);
		pf[npf++] = p;
	}
#undef PF_PUSH
	free(st);
	free(ref);
	if (!npf)
		return;
	ev_scratch_t *scr = ev->scr;
	scr->pf = pf;
	scr->npf = npf;
	pf_start(scr, o);
}

series_set_t *ev_select(ev_t *ev, const promql_expr_t *vs, int64_t mint, int64_t maxt, int64_t range,
			       const char *func)
{
	select_hints_t h = {.start = mint, .end = maxt, .step = ev->step, .range = range, .func = func};
	series_set_t *set = NULL;
	if (ev->scr->npf && pf_take(ev, vs, mint, maxt, &h, &set) == 0)
		return set;
	arena_t *sa = select_arena(ev);
	if (ev->q->ops->select(ev->q, sa, vs->u.vs.ms, vs->u.vs.nms, mint, maxt, &h, &set, ev->err)) {
		select_arena_free(ev->scr);
		ev->scr->error_type = "internal";
		ev_fail_err(ev, ev->err->code);
	}
	ev->scr->open_set = set;
	return set;
}

void ev_close_set(ev_t *ev, series_set_t *set)
{
	ev->scr->open_set = NULL;
	series_set_close(set);
	select_arena_free(ev->scr);
}

static void eval_vs(ev_t *ev, const promql_expr_t *e, val_t *out, bool ts_mode)
{
	vs_collect_t c = {0};
	eval_vs_into(ev, e, ts_mode, NULL, vs_collect_sink, &c);
	out->type = PROMQL_TYPE_VECTOR;
	out->s = c.arr;
	out->n = c.n;
}

void eval_vector_selector_ts(ev_t *ev, const promql_expr_t *vs, val_t *out)
{
	/* 2.42 reads the selector step by step inside timestamp()'s rangeEval: its points count only as
	 * that step's input, never all at once */
	int64_t cur = ev->cur_samples, peak = ev->peak_samples;
	eval_vs(ev, vs, out, true);
	ev->cur_samples = cur;
	ev->peak_samples = peak;
	if (ev->argrec && ev->argrec->depth == ev->depth)
		argrec_add(ev, ev->argrec, val_step_counts(ev, out));
}

const promql_expr_t *expr_unparen(const promql_expr_t *e)
{
	while (e->kind == PROMQL_PAREN)
		e = e->u.paren.expr;
	return e;
}

static void mat_collect(ev_t *ev, void *arg, const labels_t *ls, const int64_t *t, const double *v, size_t n);

void eval_range_arg(ev_t *ev, const promql_expr_t *m, const char *func, range_series_fn fn, void *ctx,
		    int64_t *range, int64_t *ref)
{
	m = expr_unparen(m);
	size_t ns = ev->nsteps;
	if (m->kind == PROMQL_MATRIX_SEL) {
		const promql_expr_t *vs = m->u.ms.vs;
		int64_t mint, maxt;
		if (!ev_matrix_window(ev, m, range, ref, &mint, &maxt))
			return;
		series_set_t *set = ev_select(ev, vs, mint, maxt, *range, func);
		int r;
		while ((r = series_set_next(set, ev->err)) > 0) {
			ev_check(ev);
			size_t n = ev_load_samples(ev, set, mint, maxt, true);
			fn(ev, ctx, series_set_labels(set), ev->scr->t, ev->scr->v, n);
		}
		if (r < 0)
			ev_fail_err(ev, ev->err->code);
		ev_close_set(ev, set);
		return;
	}
	if (m->kind != PROMQL_SUBQUERY)
		ev_fail(ev, ERR_INTERNAL, "expected range vector expression");
	*range = m->u.sq.range;
	ev_ref_times(ev, &m->u.sq.mods, ref);
	if (ns == 0)
		return;
	int64_t mn = ref[0], mx = ref[0];
	for (size_t i = 1; i < ns; i++) {
		if (ref[i] < mn)
			mn = ref[i];
		if (ref[i] > mx)
			mx = ref[i];
	}
	/* 2.42 runs the inner evaluation up to the evaluator's end (the query's end parameter, not its last
	 * step): the extra inner steps are never in a window but are counted as samples */
	int64_t sq_at;
	if (m->u.sq.mods.at_kind == PROMQL_AT_NONE && ev->end - m->u.sq.mods.offset > mx)
		mx = ev->end - m->u.sq.mods.offset;
	else if (ev->at_shift && ev_at_time(ev, &m->u.sq.mods, &sq_at))
		mx = sq_at + (ev->end - ev->start) - m->u.sq.mods.offset;
	int64_t step = m->u.sq.step ? m->u.sq.step : ev->o->subquery_step_ms ? ev->o->subquery_step_ms : PROMQL_DEFAULT_SUBQUERY_STEP_MS;
	int64_t lo = mn - *range;
	int64_t start = step * (lo / step);
	if (start < lo)
		start += step;
	ev_t sub = *ev;
	sub.start = start;
	sub.end = mx;
	sub.step = step;
	sub.nsteps = start <= mx ? (size_t)(((uint64_t)mx - (uint64_t)start) / (uint64_t)step) + 1 : 0;
	ev_check_steps(ev, sub.nsteps); /* e.g. up[10000d:1ms]: 8.6e11 steps, refused before any allocation */
	sub.argrec = NULL;
	sub.at_shift = false;
	/* stats: 2.42 counts a top-level subquery's reads at the (one) step; a function's subquery
	 * argument counts as the points in its windows (the function does that), its reads not at all */
	qstats_t sub_qs = {0};
	bool top = fn == mat_collect;
	sub.qs = ev->qs && top ? &sub_qs : NULL;
	val_t inner = {0};
	int64_t before = ev->cur_samples;
	eval_expr(&sub, m->u.sq.expr, &inner);
	if (ev->qs && top)
		for (size_t i = 0; i < ns; i++)
			qs_add(ev, i, sub_qs.total);
	ev->cur_samples = sub.cur_samples;
	ev->peak_samples = sub.peak_samples;
	ev->checks = sub.checks;
	ev->work = sub.work;
	int64_t sub_samples = ev->cur_samples - before; /* held until the function is done */
	int64_t *t = ev_alloc_array(ev, sub.nsteps ? sub.nsteps : 1, sizeof(int64_t));
	double *v = ev_alloc_array(ev, sub.nsteps ? sub.nsteps : 1, sizeof(double));
	for (size_t s = 0; s < inner.n; s++) {
		ev_check_work(ev, sub.nsteps);
		size_t n = 0;
		for (size_t i = 0; i < sub.nsteps; i++)
			if (inner.s[s].ok[i]) {
				t[n] = start + (int64_t)i * step;
				v[n] = inner.s[s].v[i];
				n++;
			}
		fn(ev, ctx, &inner.s[s].ls, t, v, n);
	}
	ev->cur_samples -= sub_samples;
}

/* Top-level instant evaluation of a range vector: the samples in the window at the one step. */
typedef struct mat_ctx {
	int64_t *ref, *range;
	const promql_expr_t *e;
	rseries_t *rs;
	size_t n, cap;
	int64_t total; /* samples collected */
} mat_ctx_t;

static void mat_collect(ev_t *ev, void *arg, const labels_t *ls, const int64_t *t, const double *v, size_t n)
{
	mat_ctx_t *c = arg;
	int64_t hi = c->ref[0], lo = hi - *c->range;
	size_t a = 0;
	while (a < n && t[a] < lo)
		a++;
	size_t b = a;
	while (b < n && t[b] <= hi)
		b++;
	if (b == a)
		return;
	if (c->n == c->cap)
		c->rs = ev_grow(ev, c->rs, c->n, &c->cap, sizeof *c->rs);
	rseries_t *r = &c->rs[c->n++];
	r->ls = labels_copy(ev->a, ls);
	r->n = b - a;
	r->t = ev_alloc(ev, r->n * sizeof(int64_t));
	r->v = ev_alloc(ev, r->n * sizeof(double));
	memcpy(r->t, t + a, r->n * sizeof(int64_t));
	memcpy(r->v, v + a, r->n * sizeof(double));
	c->total += (int64_t)r->n;
	if (expr_unparen(c->e)->kind == PROMQL_MATRIX_SEL) { /* 2.42 counts a selector's points as it loads them */
		ev_add_samples(ev, (int64_t)r->n);
		if (ev->qs)
			qs_add(ev, 0, (int64_t)r->n);
	}
}

static void eval_matrix_top(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	if (ev->nsteps != 1)
		ev_fail(ev, ERR_INVALID, "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector");
	int64_t range = 0;
	int64_t ref[1];
	mat_ctx_t c = {.ref = ref, .range = &range, .e = e};
	eval_range_arg(ev, e, NULL, mat_collect, &c, &range, ref);
	if (expr_unparen(e)->kind == PROMQL_SUBQUERY) /* the subquery's result is the query's result */
		ev_add_samples(ev, c.total);
	out->type = PROMQL_TYPE_MATRIX;
	out->rs = c.rs;
	out->nrs = c.n;
}

/* ------------------------------------------------------------------------------ binary ops */

static double binop(promql_op_t op, double l, double r, bool *keep)
{
	*keep = true;
	switch (op) {
	case PROMQL_OP_ADD: return l + r;
	case PROMQL_OP_SUB: return l - r;
	case PROMQL_OP_MUL: return l * r;
	case PROMQL_OP_DIV: return l / r;
	case PROMQL_OP_POW: return pow(l, r);
	case PROMQL_OP_MOD: return fmod(l, r);
	case PROMQL_OP_ATAN2: return atan2(l, r);
	case PROMQL_OP_EQLC: *keep = l == r; return l;
	case PROMQL_OP_NEQ: *keep = l != r; return l;
	case PROMQL_OP_GTR: *keep = l > r; return l;
	case PROMQL_OP_LSS: *keep = l < r; return l;
	case PROMQL_OP_GTE: *keep = l >= r; return l;
	case PROMQL_OP_LTE: *keep = l <= r; return l;
	default: return NAN;
	}
}

static bool op_drops_name(promql_op_t op)
{
	return op == PROMQL_OP_ADD || op == PROMQL_OP_SUB || op == PROMQL_OP_MUL || op == PROMQL_OP_DIV ||
	       op == PROMQL_OP_POW || op == PROMQL_OP_MOD;
}

static void eval_vector_scalar(ev_t *ev, const promql_expr_t *e, const val_t *vec, const double *sc, bool swap, val_t *out)
{
	promql_op_t op = e->u.bin.op;
	bool rb = e->u.bin.return_bool, cmp = promql_op_is_comparison(op);
	obuild_t *ob = ob_new(ev);
	for (size_t s = 0; s < vec->n; s++) {
		const vseries_t *in = &vec->s[s];
		size_t idx = (size_t)-1;
		for (size_t i = 0; i < ev->nsteps; i++) {
			if (!in->ok[i])
				continue;
			double lv = in->v[i], rv = sc[i];
			if (swap) {
				double tmp = lv;
				lv = rv;
				rv = tmp;
			}
			bool keep;
			double val = binop(op, lv, rv, &keep);
			if (cmp && swap)
				val = rv;
			if (rb) {
				val = keep ? 1 : 0;
				keep = true;
			}
			if (!keep)
				continue;
			if (idx == (size_t)-1)
				idx = ob_get(ev, ob, (op_drops_name(op) || rb) ? lb_drop_name(ev, in->ls) : in->ls);
			ob_set(ev, ob, idx, i, val);
		}
	}
	ob_finish(ev, ob, out);
}

/* Signature keys of every series of both sides, mapped to small integer ids. */
static void match_sigs(ev_t *ev, const promql_expr_t *e, const val_t *l, const val_t *r, uint32_t *lsig, uint32_t *rsig, size_t *nsig)
{
	hmap_t *m = ev_hmap(ev, l->n + r->n);
	size_t n = 0;
	for (int side = 0; side < 2; side++) {
		const val_t *v = side ? r : l;
		uint32_t *out = side ? rsig : lsig;
		for (size_t s = 0; s < v->n; s++) {
			labels_t k = lb_filter(ev, v->s[s].ls, e->u.bin.labels, e->u.bin.nlabels, e->u.bin.on, true);
			str_t key = lb_key(ev, k);
			bool found;
			void **slot = hmap_slot(m, key, &found);
			if (!found)
				*slot = (void *)(uintptr_t)(++n);
			out[s] = (uint32_t)((uintptr_t)*slot - 1);
		}
	}
	hmap_release(m);
	*nsig = n;
}

static labels_t result_metric(ev_t *ev, const promql_expr_t *e, labels_t l, labels_t r)
{
	labels_t out = l;
	if (op_drops_name(e->u.bin.op))
		out = lb_drop_name(ev, out);
	if (e->u.bin.card == PROMQL_CARD_ONE_TO_ONE) {
		if (e->u.bin.on)
			out = lb_filter(ev, out, e->u.bin.labels, e->u.bin.nlabels, true, false);
		else
			out = lb_filter(ev, out, e->u.bin.labels, e->u.bin.nlabels, false, false);
	}
	for (size_t i = 0; i < e->u.bin.ninclude; i++) {
		bool found;
		str_t v = labels_get(&r, e->u.bin.include[i], &found);
		out = lb_set(ev, out, e->u.bin.include[i], found ? v : STR_NULL);
	}
	if (e->u.bin.return_bool)
		out = lb_drop_name(ev, out);
	return out;
}

static void eval_vector_vector(ev_t *ev, const promql_expr_t *e, const val_t *lv, const val_t *rv, val_t *out)
{
	promql_op_t op = e->u.bin.op;
	size_t ns = ev->nsteps;
	uint32_t *lsig = ev_alloc(ev, (lv->n + 1) * sizeof(uint32_t));
	uint32_t *rsig = ev_alloc(ev, (rv->n + 1) * sizeof(uint32_t));
	size_t nsig;
	match_sigs(ev, e, lv, rv, lsig, rsig, &nsig);
	uint32_t *stamp = ev_zalloc(ev, (nsig + 1) * sizeof(uint32_t));  /* "one"-side present at step+1 */
	uint32_t *stamp2 = ev_zalloc(ev, (nsig + 1) * sizeof(uint32_t)); /* matched at step+1 */
	uint32_t *who = ev_alloc(ev, (nsig + 1) * sizeof(uint32_t));
	obuild_t *ob = ob_new(ev);
	if (promql_op_is_set(op)) {
		for (size_t i = 0; i < ns; i++) {
			uint32_t st = (uint32_t)i + 1;
			ev_check(ev);
			if (op == PROMQL_OP_OR) {
				for (size_t s = 0; s < lv->n; s++)
					if (lv->s[s].ok[i]) {
						stamp[lsig[s]] = st;
						ob_set(ev, ob, ob_get(ev, ob, lv->s[s].ls), i, lv->s[s].v[i]);
					}
				for (size_t s = 0; s < rv->n; s++)
					if (rv->s[s].ok[i] && stamp[rsig[s]] != st)
						ob_set(ev, ob, ob_get(ev, ob, rv->s[s].ls), i, rv->s[s].v[i]);
				continue;
			}
			for (size_t s = 0; s < rv->n; s++)
				if (rv->s[s].ok[i])
					stamp[rsig[s]] = st;
			for (size_t s = 0; s < lv->n; s++) {
				if (!lv->s[s].ok[i])
					continue;
				bool in = stamp[lsig[s]] == st;
				if ((op == PROMQL_OP_AND) == in)
					ob_set(ev, ob, ob_get(ev, ob, lv->s[s].ls), i, lv->s[s].v[i]);
			}
		}
		ob_finish(ev, ob, out);
		return;
	}
	/* one-to-one / many-to-one; one-to-many swaps sides. */
	bool swap = e->u.bin.card == PROMQL_CARD_ONE_TO_MANY;
	const val_t *L = swap ? rv : lv, *R = swap ? lv : rv;
	uint32_t *Ls = swap ? rsig : lsig, *Rs = swap ? lsig : rsig;
	imap_t *cache = ev_imap(ev, 16); /* released with the arena, also when the query fails here */
	for (size_t i = 0; i < ns; i++) {
		uint32_t st = (uint32_t)i + 1;
		ev_check(ev);
		for (size_t s = 0; s < R->n; s++) {
			if (!R->s[s].ok[i])
				continue;
			uint32_t sig = Rs[s];
			if (stamp[sig] == st) {
				buf_t b;
				buf_init(&b);
				labels_t ml = lb_filter(ev, R->s[s].ls, e->u.bin.labels, e->u.bin.nlabels, e->u.bin.on, true);
				/* label sets as 2.42's Labels.String(): {__name__="up", job="x"}, values quoted */
				labels_format_full(&b, &ml);
				buf_puts(&b, " on the ");
				buf_puts(&b, swap ? "left" : "right");
				buf_puts(&b, " hand-side of the operation: [");
				labels_format_full(&b, &R->s[s].ls);
				buf_puts(&b, ", ");
				labels_format_full(&b, &R->s[who[sig]].ls);
				buf_puts(&b, "];many-to-many matching not allowed: matching labels must be unique on one side");
				char msg[ERR_MSG_MAX];
				snprintf(msg, sizeof msg, "%s", b.p);
				buf_release(&b);
				ev->scr->error_type = "execution";
				ev_fail(ev, ERR_INVALID, "found duplicate series for the match group %s", msg);
			}
			stamp[sig] = st;
			who[sig] = (uint32_t)s;
		}
		for (size_t s = 0; s < L->n; s++) {
			if (!L->s[s].ok[i])
				continue;
			uint32_t sig = Ls[s];
			if (stamp[sig] != st)
				continue;
			size_t r = who[sig];
			double a = L->s[s].v[i], b = R->s[r].v[i];
			if (swap) {
				double tmp = a;
				a = b;
				b = tmp;
			}
			bool keep;
			double val = binop(op, a, b, &keep);
			if (e->u.bin.return_bool) {
				val = keep ? 1 : 0;
			} else if (!keep) {
				continue;
			}
			if (e->u.bin.card == PROMQL_CARD_ONE_TO_ONE) {
				if (stamp2[sig] == st) {
						ev->scr->error_type = "execution";
					ev_fail(ev, ERR_INVALID, "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)");
				}
				stamp2[sig] = st;
			}
			uint64_t ck = (uint64_t)s * (R->n + 1) + r, oi;
			if (!imap_get(cache, ck, &oi)) {
				oi = ob_get(ev, ob, result_metric(ev, e, L->s[s].ls, R->s[r].ls));
				imap_put(cache, ck, oi);
			}
			if (ob->s[oi].ok[i] && e->u.bin.card != PROMQL_CARD_ONE_TO_ONE) {
				ev->scr->error_type = "execution";
				ev_fail(ev, ERR_INVALID, "multiple matches for labels: grouping labels must ensure unique matches");
			}
			ob_set(ev, ob, oi, i, val);
		}
	}
	imap_release(cache);
	ob_finish(ev, ob, out);
}

/* The operator of binary node e applied to its evaluated operands l and r. */
static void eval_binary_op(ev_t *ev, const promql_expr_t *e, const val_t *l, const val_t *r, val_t *out)
{
	if (l->type == PROMQL_TYPE_SCALAR && r->type == PROMQL_TYPE_SCALAR) {
		out->type = PROMQL_TYPE_SCALAR;
		out->sc = ev_alloc_array(ev, ev->nsteps ? ev->nsteps : 1, sizeof(double));
		for (size_t i = 0; i < ev->nsteps; i++) {
			bool keep;
			double v = binop(e->u.bin.op, l->sc[i], r->sc[i], &keep);
			if (e->u.bin.return_bool)
				v = keep ? 1 : 0;
			out->sc[i] = v;
		}
		return;
	}
	if (l->type == PROMQL_TYPE_VECTOR && r->type == PROMQL_TYPE_SCALAR)
		eval_vector_scalar(ev, e, l, r->sc, false, out);
	else if (l->type == PROMQL_TYPE_SCALAR && r->type == PROMQL_TYPE_VECTOR)
		eval_vector_scalar(ev, e, r, l->sc, true, out);
	else
		eval_vector_vector(ev, e, l, r, out);
}

/* Deep copy of a scalar or vector value into ev->a (labels included). */
static void val_copy(ev_t *ev, val_t *dst, const val_t *src)
{
	size_t ns = ev->nsteps ? ev->nsteps : 1;
	*dst = *src;
	if (src->type == PROMQL_TYPE_SCALAR) {
		dst->sc = ev_alloc_array(ev, ns, sizeof(double));
		memcpy(dst->sc, src->sc, ns * sizeof(double));
	} else if (src->type == PROMQL_TYPE_VECTOR) {
		dst->s = ev_alloc_array(ev, src->n ? src->n : 1, sizeof(vseries_t));
		for (size_t k = 0; k < src->n; k++) {
			vseries_t *o = &dst->s[k];
			const vseries_t *in = &src->s[k];
			o->ls = ev_labels_copy(ev, &in->ls);
			o->v = ev_alloc_array(ev, ns, sizeof(double));
			o->ok = ev_alloc(ev, ns);
			memcpy(o->v, in->v, ns * sizeof(double));
			memcpy(o->ok, in->ok, ns);
		}
	}
}

/* Binary operators are evaluated without recursion: a chain like "up + up + ... + up" (Prometheus
 * parses 20,000 terms) or "a ^ b ^ ... ^ z" is a tree as deep as it is long. Each binary node being
 * evaluated is a frame on an explicit stack (heap, one per node on the current path; ev->scr->frames,
 * so an error releases them); operands that are not binary nodes (or are step-invariant ones) are
 * evaluated by eval_expr as before. The order of evaluation and 2.42's sample accounting are exactly
 * those of the recursive evaluation: a frame does what eval_expr + eval_node do for a binary node.
 *
 * In long chains (RECYCLE_SPINE binary nodes or more down one side) every frame evaluates its operands
 * and result in an arena of its own and copies only the result into its parent's, releasing the rest:
 * a query that holds one small vector at a time stays that small however many operators it has. */
#define RECYCLE_SPINE 4

typedef struct bframe {
	struct bframe *up; /* the frame below on the stack */
	const promql_expr_t *e;
	int state;         /* 0: evaluate lhs next, 1: rhs next, 2: both done */
	val_t l, r;
	val_t *out;
	argrec_t rec;      /* the operands' point counts (2.42's rangeEval accounting) */
	argrec_t *saved;   /* ev->argrec of the caller */
	int64_t orig;      /* samples held when the node started */
	arena_t *home;     /* ev->a of the caller: where *out must live */
	bool recycle, root, tmp_live;
	arena_t work;      /* with recycle: the node's operands, temporaries and result before the copy */
	arena_t tmp;       /* with recycle: an operand that is not a binary node, while it is evaluated */
} bframe_t;

static void frame_push(ev_t *ev, const promql_expr_t *e, val_t *out, bool recycle, bool root)
{
	bframe_t *f = xcalloc(1, sizeof *f);
	f->up = ev->scr->frames;
	ev->scr->frames = f;
	f->e = e;
	f->out = out;
	f->root = root;
	f->recycle = recycle;
	f->home = ev->a;
	f->saved = ev->argrec;
	f->orig = ev->cur_samples;
	f->rec.depth = ev->depth;
	ev->argrec = &f->rec;
	if (recycle) {
		arena_init(&f->work, 1024); /* right-assoc chains keep one per operator alive */
		arena_set_budget(&f->work, &ev->scr->budget);
		ev->a = &f->work;
	}
}

/* Pop the innermost frame (its arena released); on the error path too (promql_eval). */
static void frame_pop(ev_scratch_t *scr)
{
	bframe_t *f = scr->frames;
	scr->frames = f->up;
	if (f->tmp_live)
		arena_release(&f->tmp);
	if (f->recycle)
		arena_release(&f->work);
	free(f);
}

/* With recycle, an operand that is not a binary node is evaluated in f->tmp and only its value (and
 * the point counts eval_expr recorded for the accounting) copied into f->work: what the operand needed
 * on the way (batches, selector state) is released at once. A right-associative chain holds every
 * left operand until its innermost node is done, so each should be small. */
static void eval_operand(ev_t *ev, bframe_t *f, const promql_expr_t *c, val_t *slot)
{
	if (!f->recycle) {
		eval_expr(ev, c, slot);
		return;
	}
	arena_init(&f->tmp, 1024);
	arena_set_budget(&f->tmp, &ev->scr->budget);
	f->tmp_live = true;
	size_t nrec = f->rec.n;
	ev->a = &f->tmp;
	val_t v;
	eval_expr(ev, c, &v);
	ev->a = &f->work;
	val_copy(ev, slot, &v);
	if (f->rec.n > nrec) {
		size_t bytes = (ev->nsteps ? ev->nsteps : 1) * sizeof(int64_t);
		int64_t *cnt = ev_alloc(ev, bytes);
		memcpy(cnt, f->rec.cnt[f->rec.n - 1], bytes);
		f->rec.cnt[f->rec.n - 1] = cnt;
	}
	arena_release(&f->tmp);
	f->tmp_live = false;
}

/* Spine length: binary nodes straight down lhs (or rhs) from e. */
static size_t spine(const promql_expr_t *e, bool left)
{
	size_t n = 0;
	for (; e->kind == PROMQL_BINARY && n < RECYCLE_SPINE; e = left ? e->u.bin.lhs : e->u.bin.rhs)
		n++;
	return n;
}

static bool invariant_here(const ev_t *ev, const promql_expr_t *e);

static void eval_binary_tree(ev_t *ev, const promql_expr_t *root, val_t *out)
{
	bool recycle = spine(root, true) >= RECYCLE_SPINE || spine(root, false) >= RECYCLE_SPINE;
	frame_push(ev, root, out, recycle, true);
	for (;;) {
		bframe_t *f = ev->scr->frames;
		if (f->state < 2) {
			const promql_expr_t *c = f->state == 0 ? f->e->u.bin.lhs : f->e->u.bin.rhs;
			val_t *slot = f->state == 0 ? &f->l : &f->r;
			f->state++;
			if (c->kind == PROMQL_BINARY && !invariant_here(ev, c)) {
				/* eval_expr's prologue; the frame does eval_node's part */
				ev_check(ev);
				memset(slot, 0, sizeof *slot);
				ev->depth++;
				frame_push(ev, c, slot, recycle, false);
			} else {
				eval_operand(ev, f, c, slot);
			}
			continue;
		}
		val_t res = {0};
		eval_binary_op(ev, f->e, &f->l, &f->r, &res);
		ev->argrec = f->saved;
		acct_range_eval(ev, f->orig, &f->rec, &res);
		ev->a = f->home;
		if (f->recycle)
			val_copy(ev, f->out, &res);
		else
			*f->out = res;
		val_t *done = f->out;
		bool was_root = f->root;
		frame_pop(ev->scr);
		if (was_root)
			return;
		/* eval_expr's epilogue for the finished operand */
		ev->depth--;
		if (ev->argrec && ev->argrec->depth == ev->depth &&
		    (done->type == PROMQL_TYPE_SCALAR || done->type == PROMQL_TYPE_VECTOR))
			argrec_add(ev, ev->argrec, val_step_counts(ev, done));
	}
}

/* ------------------------------------------------------------------------------ aggregations */

/* Accumulating aggregations (sum, min, max, avg, count, group, stddev, stdvar): one accumulator row
 * per group, fed series by series in input order — from a materialised vector or straight from a
 * batched range function, so e.g. sum(rate(x[5m])) never holds rate's output. */
typedef struct agrp {
	labels_t ls;
	double *A, *A2, *C;
	size_t oidx;
} agrp_t;

typedef struct aggst {
	const promql_expr_t *e;
	hmap_t gm; /* group key -> index + 1 */
	agrp_t *g;
	size_t ng, gcap;
	obuild_t *ob;
	int64_t *in_cnt; /* streamed input: points per step (accounting) */
	buf_t kb;       /* group key scratch */
	bool sink_drop_name; /* agg_sink: the fed labels still carry a __name__ the input drops */
} aggst_t;

static void agg_cleanup(void *arg)
{
	aggst_t *st = arg;
	hmap_release(&st->gm);
	memset(&st->gm, 0, sizeof st->gm);
	buf_release(&st->kb);
}

static bool agg_accumulating(promql_aggr_op_t op)
{
	return op == PROMQL_AGG_SUM || op == PROMQL_AGG_MIN || op == PROMQL_AGG_MAX || op == PROMQL_AGG_AVG ||
	       op == PROMQL_AGG_COUNT || op == PROMQL_AGG_GROUP || op == PROMQL_AGG_STDDEV || op == PROMQL_AGG_STDVAR;
}

static aggst_t *agg_new(ev_t *ev, const promql_expr_t *e)
{
	aggst_t *st = ev_zalloc(ev, sizeof *st);
	st->e = e;
	hmap_init(&st->gm, 16);
	buf_init(&st->kb);
	arena_on_release(ev->a, agg_cleanup, st);
	st->ob = ob_new(ev);
	return st;
}

/* Grouping labels of ls (by: only the listed names; without: all others, never __name__). */
static labels_t agg_group_labels(ev_t *ev, const promql_expr_t *e, labels_t ls)
{
	return e->u.aggr.without ? lb_filter(ev, ls, e->u.aggr.grouping, e->u.aggr.ngrouping, false, true)
				 : lb_filter(ev, ls, e->u.aggr.grouping, e->u.aggr.ngrouping, true, false);
}

/* Does label name n belong to the group key (by: listed; without: not listed and not __name__)? */
static bool agg_keeps(const promql_expr_t *e, str_t n)
{
	bool in = name_in(n, e->u.aggr.grouping, e->u.aggr.ngrouping);
	return e->u.aggr.without ? !in && !str_eq_c(n, LABEL_METRIC_NAME) : in;
}

/* Feed one input series (drop_name: its labels still carry the __name__ the input drops). */
static void agg_add(ev_t *ev, aggst_t *st, labels_t ls, bool drop_name, const double *vals, const uint8_t *ok)
{
	promql_aggr_op_t op = st->e->u.aggr.op;
	size_t ns = ev->nsteps;
	buf_t *kb = &st->kb;
	buf_reset(kb);
	for (size_t i = 0; i < ls.n; i++) {
		if ((drop_name && str_eq_c(ls.v[i].name, LABEL_METRIC_NAME)) || !agg_keeps(st->e, ls.v[i].name))
			continue;
		buf_append_str(kb, ls.v[i].name);
		buf_putc(kb, '\xff');
		buf_append_str(kb, ls.v[i].value);
		buf_putc(kb, '\xfe');
	}
	bool found;
	void **slot = hmap_slot(&st->gm, (str_t){kb->p, kb->n}, &found);
	if (!found) {
		if (drop_name)
			ls = lb_filter(ev, ls, NULL, 0, false, true);
		labels_t gl = agg_group_labels(ev, st->e, ls);
		/* the map keeps the key's memory: move it to the arena */
		hmap_del(&st->gm, (str_t){kb->p, kb->n});
		char *key = ev_alloc(ev, kb->n + 1);
		memcpy(key, kb->p, kb->n);
		slot = hmap_slot(&st->gm, (str_t){key, kb->n}, &found);
		if (st->ng == st->gcap)
			st->g = ev_grow(ev, st->g, st->ng, &st->gcap, sizeof *st->g);
		agrp_t *g = &st->g[st->ng];
		g->ls = labels_copy(ev->a, &gl);
		g->A = ev_zalloc(ev, (ns ? ns : 1) * sizeof(double));
		g->A2 = op == PROMQL_AGG_STDDEV || op == PROMQL_AGG_STDVAR ? ev_zalloc(ev, (ns ? ns : 1) * sizeof(double))
									   : NULL;
		g->C = ev_zalloc(ev, (ns ? ns : 1) * sizeof(double));
		g->oidx = (size_t)-1;
		*slot = (void *)(uintptr_t)(++st->ng);
	}
	agrp_t *g = &st->g[(size_t)(uintptr_t)*slot - 1];
	double *A = g->A, *A2 = g->A2, *C = g->C;
	bool any = false;
	for (size_t i = 0; i < ns; i++) {
		if (!ok[i])
			continue;
		any = true;
		if (st->in_cnt)
			st->in_cnt[i]++;
		double v = vals[i];
		if (C[i] == 0) {
			C[i] = 1;
			switch (op) {
			case PROMQL_AGG_SUM: case PROMQL_AGG_MIN: case PROMQL_AGG_MAX: case PROMQL_AGG_AVG:
				A[i] = v;
				break;
			case PROMQL_AGG_STDDEV: case PROMQL_AGG_STDVAR:
				A[i] = v; /* mean */
				A2[i] = 0;
				break;
			default:
				break;
			}
			continue;
		}
		C[i] += 1;
		switch (op) {
		case PROMQL_AGG_SUM: A[i] += v; break;
		case PROMQL_AGG_MAX: if (A[i] < v || isnan(A[i])) A[i] = v; break;
		case PROMQL_AGG_MIN: if (A[i] > v || isnan(A[i])) A[i] = v; break;
		case PROMQL_AGG_AVG: {
			double mean = A[i];
			if (isinf(mean)) {
				if (isinf(v) && (mean > 0) == (v > 0))
					break;
				if (!isinf(v) && !isnan(v))
					break;
			}
			A[i] = mean + (v / C[i] - mean / C[i]);
			break;
		}
		case PROMQL_AGG_STDDEV: case PROMQL_AGG_STDVAR: {
			double delta = v - A[i];
			A[i] += delta / C[i];
			A2[i] += delta * (v - A[i]);
			break;
		}
		default:
			break;
		}
	}
	if (any && g->oidx == (size_t)-1)
		g->oidx = ob_get_bare(ev, st->ob, g->ls); /* its values become A's at agg_finish */
}

static void agg_finish(ev_t *ev, aggst_t *st, val_t *out)
{
	promql_aggr_op_t op = st->e->u.aggr.op;
	for (size_t k = 0; k < st->ng; k++) {
		agrp_t *g = &st->g[k];
		if (g->oidx == (size_t)-1)
			continue;
		vseries_t *os = &st->ob->s[g->oidx];
		os->v = g->A; /* the output is computed in place: one array less per group */
		os->ok = ev_zalloc(ev, ev->nsteps ? ev->nsteps : 1);
		for (size_t i = 0; i < ev->nsteps; i++) {
			if (g->C[i] == 0)
				continue;
			double v;
			switch (op) {
			case PROMQL_AGG_COUNT: v = g->C[i]; break;
			case PROMQL_AGG_GROUP: v = 1; break;
			case PROMQL_AGG_STDVAR: v = g->A2[i] / g->C[i]; break;
			case PROMQL_AGG_STDDEV: v = sqrt(g->A2[i] / g->C[i]); break;
			default: v = g->A[i]; break;
			}
			os->ok[i] = 1;
			os->v[i] = v;
		}
	}
	agg_cleanup(st);
	ob_finish(ev, st->ob, out);
}

static void agg_sink(ev_t *ev, void *sctx, const labels_t *ls, const double *v, const uint8_t *ok, size_t npts)
{
	aggst_t *st = sctx;
	agg_add(ev, st, *ls, st->sink_drop_name, v, ok);
	ev_check(ev);
}

/* Largest float64 2.42 converts to int64 (convertibleToInt64), and the smallest. */
#define K_MAX_INT64 9223372036854774784.0
#define K_MIN_INT64 (-9223372036854775808.0)

/* topk, bottomk and quantile at every step as 2.42's aggregation() computes them: the input series in
 * order; each group's values in a k-sized heap that a later value enters only when the heap is not full,
 * its top is NaN or the value is strictly better than the top (topk/bottomk), or in a list (quantile);
 * then the groups in the order first met at that step, each heap ordered by Go's sort.Sort of its
 * reversed heap order, each list's quantile taken after Go's sort. Ties therefore keep the series
 * Prometheus keeps, in the order it returns them. */
static void eval_aggr_ranked(ev_t *ev, const promql_expr_t *e, const double *param, const val_t *in, val_t *out)
{
	promql_aggr_op_t op = e->u.aggr.op;
	size_t n = in->n, ng = 0;
	hmap_t *gm = ev_hmap(ev, 16);
	size_t *grp = ev_alloc(ev, (n + 1) * sizeof(size_t));
	labels_t *glabels = ev_alloc(ev, (n + 1) * sizeof(labels_t));
	size_t *gstart = ev_zalloc(ev, (n + 2) * sizeof(size_t)); /* members per group, then offsets */
	for (size_t s = 0; s < n; s++) {
		labels_t g = agg_group_labels(ev, e, in->s[s].ls);
		bool found;
		void **slot = hmap_slot(gm, lb_key(ev, g), &found);
		if (!found) {
			*slot = (void *)(uintptr_t)(ng + 1);
			glabels[ng++] = g;
		}
		grp[s] = (size_t)(uintptr_t)*slot - 1;
		gstart[grp[s] + 1]++;
	}
	hmap_release(gm);
	for (size_t g = 0; g < ng; g++)
		gstart[g + 1] += gstart[g];
	/* each group's heap or list lives in its own slice of hv/hi, as long as its member count */
	double *hv = ev_alloc(ev, (n + 1) * sizeof(double));
	size_t *hi = ev_alloc(ev, (n + 1) * sizeof(size_t));
	size_t *hn = ev_alloc(ev, (ng + 1) * sizeof(size_t));
	size_t *seen = ev_zalloc(ev, (ng + 1) * sizeof(size_t)); /* step + 1 the group was last met at */
	size_t *order = ev_alloc(ev, (ng + 1) * sizeof(size_t));
	bool ranked = op != PROMQL_AGG_QUANTILE, top = op == PROMQL_AGG_TOPK;
	size_t nout = ranked ? n : ng; /* output index per input series (topk/bottomk) or per group */
	size_t *oidx = ev_alloc(ev, (nout + 1) * sizeof(size_t));
	memset(oidx, 0xff, (nout + 1) * sizeof(size_t));
	gosort_less_t less = top ? GOSORT_VALUE_HEAP : GOSORT_REVERSE_VALUE_HEAP;
	obuild_t *ob = ob_new(ev);
	for (size_t i = 0; i < ev->nsteps; i++) {
		ev_check_work(ev, n + 1);
		int64_t k = 0;
		if (ranked) {
			double kf = param[i];
			if (!(kf <= K_MAX_INT64 && kf >= K_MIN_INT64)) {
				buf_t b = BUF_INIT;
				buf_put_float(&b, kf, 'g'); /* Go's %v */
				char num[64];
				snprintf(num, sizeof num, "%s", b.p);
				buf_release(&b);
				ev->scr->error_type = "execution";
				ev_fail(ev, ERR_INVALID, "Scalar value %s overflows int64", num);
			}
			k = (int64_t)kf;
			if (k < 1)
				continue;
		}
		size_t nord = 0;
		for (size_t s = 0; s < n; s++) {
			if (!in->s[s].ok[i])
				continue;
			size_t g = grp[s], m = hn[g];
			double v = in->s[s].v[i], *gv = hv + gstart[g];
			size_t *gi = hi + gstart[g];
			if (seen[g] != i + 1) {
				seen[g] = i + 1;
				order[nord++] = g;
				gv[0] = v;
				gi[0] = s;
				hn[g] = 1;
			} else if (!ranked) {
				gv[m] = v;
				gi[m] = s;
				hn[g]++;
			} else if ((int64_t)m < k || (top ? gv[0] < v : gv[0] > v) || isnan(gv[0])) {
				if ((int64_t)m == k) {
					if (k == 1) { /* replaced in place */
						gv[0] = v;
						gi[0] = s;
						continue;
					}
					gosort_heap_pop(gv, gi, &hn[g], less);
				}
				gosort_heap_push(gv, gi, &hn[g], v, s, less);
			}
		}
		for (size_t r = 0; r < nord; r++) {
			size_t g = order[r];
			double *gv = hv + gstart[g];
			size_t *gi = hi + gstart[g];
			if (!ranked) {
				if (oidx[g] == (size_t)-1)
					oidx[g] = ob_get(ev, ob, glabels[g]);
				ob_set(ev, ob, oidx[g], i, quantile_sorted(param[i], gv, hn[g]));
				continue;
			}
			gosort_sort(gv, gi, hn[g], gosort_reverse(less));
			for (size_t j = 0; j < hn[g]; j++) {
				size_t s = gi[j];
				if (oidx[s] == (size_t)-1)
					oidx[s] = ob_get(ev, ob, in->s[s].ls);
				ob_set(ev, ob, oidx[s], i, gv[j]);
			}
		}
	}
	ob_finish(ev, ob, out);
}

typedef struct cv_state {
	hmap_t keys; /* output label key -> output index + 1 */
	buf_t kb, vb;
} cv_state_t;

static void cv_cleanup(void *arg)
{
	cv_state_t *c = arg;
	hmap_release(&c->keys);
	buf_release(&c->kb);
	buf_release(&c->vb);
}

/* count_values as 2.42 groups it: each value, formatted as FormatFloat(v, 'f', -1), is set as label vl
 * on its series' labels, which are then grouped by the by-labels plus vl (or without the without-labels
 * and __name__, so a vl listed there is dropped again); outputs appear in the order first met. */
static void eval_count_values(ev_t *ev, const promql_expr_t *e, str_t vl, const val_t *in, val_t *out)
{
	if (!label_name_valid(vl)) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_INVALID, "invalid label name \"%.*s\"", STR_ARG(vl));
	}
	cv_state_t *c = ev_zalloc(ev, sizeof *c);
	hmap_init(&c->keys, 16);
	buf_init(&c->kb);
	buf_init(&c->vb);
	arena_on_release(ev->a, cv_cleanup, c);
	size_t maxn = 0;
	for (size_t s = 0; s < in->n; s++)
		if (in->s[s].ls.n > maxn)
			maxn = in->s[s].ls.n;
	label_t *lab = ev_alloc(ev, (maxn + 1) * sizeof(label_t));
	obuild_t *ob = ob_new(ev);
	for (size_t i = 0; i < ev->nsteps; i++) {
		ev_check_work(ev, in->n + 1);
		for (size_t s = 0; s < in->n; s++) {
			if (!in->s[s].ok[i])
				continue;
			buf_reset(&c->vb);
			buf_put_float(&c->vb, in->s[s].v[i], 'f');
			label_t val = {vl, {c->vb.p, c->vb.n}};
			labels_t ls = in->s[s].ls, ol = {lab, 0};
			size_t nl = 0;
			bool placed = false;
			for (size_t j = 0; j < ls.n; j++) { /* vl = value set on the series' labels */
				int cmp = str_cmp(ls.v[j].name, vl);
				if (!placed && cmp >= 0) {
					lab[nl++] = val;
					placed = true;
					if (cmp == 0)
						continue;
				}
				lab[nl++] = ls.v[j];
			}
			if (!placed)
				lab[nl++] = val;
			buf_reset(&c->kb);
			for (size_t j = 0; j < nl; j++) { /* grouped */
				if (!agg_keeps(e, lab[j].name) && (e->u.aggr.without || !str_eq(lab[j].name, vl)))
					continue;
				lab[ol.n++] = lab[j];
				buf_append_str(&c->kb, lab[j].name);
				buf_putc(&c->kb, '\xff');
				buf_append_str(&c->kb, lab[j].value);
				buf_putc(&c->kb, '\xfe');
			}
			str_t key = {c->kb.p, c->kb.n};
			uintptr_t hit = (uintptr_t)hmap_get(&c->keys, key);
			size_t oi;
			if (hit) {
				oi = hit - 1;
			} else {
				ol = labels_copy(ev->a, &ol); /* also copies the value out of c->vb */
				oi = ob_get(ev, ob, ol);
				hmap_put(&c->keys, (str_t){arena_memdup(ev->a, key.p, key.n), key.n}, (void *)(uintptr_t)(oi + 1));
			}
			if (ob->s[oi].ok[i])
				ob->s[oi].v[i] += 1;
			else
				ob_set(ev, ob, oi, i, 1);
		}
	}
	ob_finish(ev, ob, out);
}

static void eval_aggr(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	promql_aggr_op_t op = e->u.aggr.op;
	val_t param = {0}, in = {0};
	if (agg_accumulating(op)) {
		aggst_t *st = agg_new(ev, e);
		const promql_expr_t *inner = expr_unparen(e->u.aggr.expr);
		st->sink_drop_name = inner->kind != PROMQL_VECTOR_SEL;
		if (inner->kind == PROMQL_VECTOR_SEL || range_call_streamable(inner, true)) {
			/* the input never materialises; its per-step counts stand in for it in the accounting */
			st->in_cnt = ev_zalloc(ev, (ev->nsteps ? ev->nsteps : 1) * sizeof(int64_t));
			if (inner->kind == PROMQL_VECTOR_SEL)
				eval_vs_into(ev, inner, false, promql_aggr_str(op), agg_sink, st); /* hints: Prometheus's Func */
			else
				eval_range_call_streamed(ev, inner, true, agg_sink, st);
			if (ev->argrec && ev->argrec->depth == ev->depth)
				argrec_add(ev, ev->argrec, st->in_cnt);
			agg_finish(ev, st, out);
			return;
		}
		eval_expr(ev, e->u.aggr.expr, &in);
		for (size_t s = 0; s < in.n; s++) {
			agg_add(ev, st, in.s[s].ls, false, in.s[s].v, in.s[s].ok);
			if ((s & 1023) == 0)
				ev_check(ev);
		}
		agg_finish(ev, st, out);
		return;
	}
	if (e->u.aggr.param)
		eval_expr(ev, e->u.aggr.param, &param);
	eval_expr(ev, e->u.aggr.expr, &in);
	if (op == PROMQL_AGG_COUNT_VALUES)
		eval_count_values(ev, e, param.str, &in, out);
	else
		eval_aggr_ranked(ev, e, param.sc, &in, out);
}

/* ------------------------------------------------------------------------------ dispatch */

static void eval_node(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	size_t ns = ev->nsteps;
	switch (e->kind) {
	case PROMQL_NUMBER:
		out->type = PROMQL_TYPE_SCALAR;
		out->sc = ev_alloc(ev, (ns ? ns : 1) * sizeof(double));
		for (size_t i = 0; i < ns; i++)
			out->sc[i] = e->u.number;
		ev_add_samples(ev, (int64_t)ns); /* 2.42 evaluates a literal into one point per step */
		return;
	case PROMQL_STRING:
		out->type = PROMQL_TYPE_STRING;
		out->str = e->u.string;
		return;
	case PROMQL_PAREN:
		eval_expr(ev, e->u.paren.expr, out);
		return;
	case PROMQL_VECTOR_SEL:
		eval_vs(ev, e, out, false);
		return;
	case PROMQL_MATRIX_SEL:
	case PROMQL_SUBQUERY:
		eval_matrix_top(ev, e, out);
		return;
	case PROMQL_UNARY: {
		eval_expr(ev, e->u.unary.expr, out);
		if (e->u.unary.op != PROMQL_OP_SUB)
			return;
		if (out->type == PROMQL_TYPE_SCALAR) {
			for (size_t i = 0; i < ns; i++)
				out->sc[i] = -out->sc[i];
			return;
		}
		/* like 2.42, equal label sets after dropping the name are an error even at distinct steps */
		obuild_t *ob = ob_new(ev);
		for (size_t s = 0; s < out->n; s++) {
			size_t idx = ob_get_unique(ev, ob, lb_drop_name(ev, out->s[s].ls));
			for (size_t i = 0; i < ns; i++)
				if (out->s[s].ok[i])
					ob_set(ev, ob, idx, i, -out->s[s].v[i]);
		}
		ob_finish(ev, ob, out);
		return;
	}
	case PROMQL_BINARY:
		eval_binary_tree(ev, e, out);
		return;
	case PROMQL_CALL:
	case PROMQL_AGGR: {
		/* 2.42's rangeEval nodes (all but the range-vector functions): record the arguments' points */
		bool range_eval = !(e->kind == PROMQL_CALL && is_range_function(e));
		argrec_t rec = {.depth = ev->depth};
		argrec_t *saved = ev->argrec;
		int64_t orig = ev->cur_samples;
		ev->argrec = range_eval ? &rec : NULL;
		if (e->kind == PROMQL_CALL)
			eval_call(ev, e, out);
		else
			eval_aggr(ev, e, out);
		ev->argrec = saved;
		if (range_eval)
			acct_range_eval(ev, orig, &rec, out);
		return;
	}
	}
}

/* A step-invariant subexpression (2.42's StepInvariantExpr): evaluated once at the first step, then
 * every series copied to all steps (each copy counted as a sample). */
static void eval_invariant(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	ev_t sub = *ev;
	sub.end = sub.start;
	sub.nsteps = 1;
	sub.argrec = NULL;
	qstats_t sub_qs = {0}; /* its reads count at every step */
	sub.qs = ev->qs ? &sub_qs : NULL;
	val_t one = {0};
	eval_node(&sub, e, &one);
	if (ev->qs)
		for (size_t i = 0; i < ev->nsteps; i++)
			qs_add(ev, i, sub_qs.total);
	ev->cur_samples = sub.cur_samples;
	ev->peak_samples = sub.peak_samples;
	ev->checks = sub.checks;
	ev->work = sub.work;
	size_t ns = ev->nsteps;
	*out = one;
	if (one.type == PROMQL_TYPE_SCALAR) {
		out->sc = ev_alloc(ev, ns * sizeof(double));
		for (size_t i = 0; i < ns; i++)
			out->sc[i] = one.sc[0];
		ev_add_samples(ev, (int64_t)ns - 1);
		return;
	}
	if (one.type != PROMQL_TYPE_VECTOR)
		return;
	out->s = ev_alloc(ev, (one.n ? one.n : 1) * sizeof(vseries_t));
	out->n = 0;
	for (size_t k = 0; k < one.n; k++) {
		if (!one.s[k].ok[0])
			continue;
		vseries_t *o = &out->s[out->n++];
		o->ls = one.s[k].ls;
		o->v = ev_alloc(ev, ns * sizeof(double));
		o->ok = ev_alloc(ev, ns);
		for (size_t i = 0; i < ns; i++)
			o->v[i] = one.s[k].v[0];
		memset(o->ok, 1, ns);
		ev_add_samples(ev, (int64_t)ns - 1);
	}
}

/* Whether eval_expr evaluates e as a step-invariant part (2.42's StepInvariantExpr wrapper). */
static bool invariant_here(const ev_t *ev, const promql_expr_t *e)
{
	uint64_t mark;
	return ev->nsteps > 1 && ev->invariant && e->kind != PROMQL_NUMBER && e->kind != PROMQL_STRING &&
	       e->kind != PROMQL_MATRIX_SEL && e->kind != PROMQL_SUBQUERY && imap_get(ev->invariant, (uintptr_t)e, &mark);
}

void eval_expr(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	ev_check(ev);
	memset(out, 0, sizeof *out);
	ev->depth++;
	if (invariant_here(ev, e))
		eval_invariant(ev, e, out);
	else
		eval_node(ev, e, out);
	ev->depth--;
	if (ev->argrec && ev->argrec->depth == ev->depth &&
	    (out->type == PROMQL_TYPE_SCALAR || out->type == PROMQL_TYPE_VECTOR))
		argrec_add(ev, ev->argrec, val_step_counts(ev, out));
}

/* 2.42's PreprocessExpr: which subexpressions are step-invariant (every selector pinned with @, no
 * time-dependent function) and where it wraps them. Returns whether e is invariant. */
static bool mark_invariant(imap_t *m, const promql_expr_t *e);
static bool mark_invariant_binary(imap_t *m, const promql_expr_t *root);

static void wrap(imap_t *m, const promql_expr_t *e)
{
	imap_put(m, (uintptr_t)expr_unparen(e), 1);
}

/* A binary node: invariant when both operands are, else each invariant operand is wrapped. Walked with an
 * explicit stack (a chain of operators is a tree as deep as it is long); other operands recurse. */
static bool mark_invariant_binary(imap_t *m, const promql_expr_t *root)
{
	typedef struct {
		const promql_expr_t *e;
		int state; /* operands done */
		bool inv[2];
	} mframe_t;
	mframe_t *st = NULL;
	size_t n = 0, cap = 0;
	bool res = false;
	for (const promql_expr_t *push = root;;) {
		if (push) {
			if (n == cap) {
				cap = cap ? 2 * cap : 16;
				st = xreallocarray(st, cap, sizeof *st);
			}
			st[n++] = (mframe_t){push, 0, {false, false}};
			push = NULL;
		}
		mframe_t *f = &st[n - 1];
		if (f->state < 2) {
			const promql_expr_t *c = f->state ? f->e->u.bin.rhs : f->e->u.bin.lhs;
			if (c->kind == PROMQL_BINARY)
				push = c;
			else
				f->inv[f->state++] = mark_invariant(m, c);
			continue;
		}
		bool l = f->inv[0], r = f->inv[1];
		res = l && r;
		if (!res && l)
			wrap(m, f->e->u.bin.lhs);
		if (!res && r)
			wrap(m, f->e->u.bin.rhs);
		if (--n == 0)
			break;
		st[n - 1].inv[st[n - 1].state++] = res;
	}
	free(st);
	return res;
}

static bool mark_invariant(imap_t *m, const promql_expr_t *e)
{
	static const char *const unsafe[] = {"days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour",
					     "minute", "month", "year", "predict_linear", "time", "timestamp"};
	switch (e->kind) {
	case PROMQL_NUMBER:
	case PROMQL_STRING:
		return true;
	case PROMQL_VECTOR_SEL:
		return e->u.vs.mods.at_kind != PROMQL_AT_NONE;
	case PROMQL_MATRIX_SEL:
		return e->u.ms.vs->u.vs.mods.at_kind != PROMQL_AT_NONE;
	case PROMQL_SUBQUERY:
		if (mark_invariant(m, e->u.sq.expr))
			wrap(m, e->u.sq.expr);
		return e->u.sq.mods.at_kind != PROMQL_AT_NONE;
	case PROMQL_PAREN:
		return mark_invariant(m, e->u.paren.expr);
	case PROMQL_UNARY:
		return mark_invariant(m, e->u.unary.expr);
	case PROMQL_AGGR:
		return mark_invariant(m, e->u.aggr.expr); /* 2.42 does not look at the parameter */
	case PROMQL_BINARY:
		return mark_invariant_binary(m, e);
	case PROMQL_CALL: {
		bool inv = true, arg[16] = {false};
		for (size_t i = 0; i < ARRAY_LEN(unsafe); i++)
			if (!strcmp(e->u.call.func->name, unsafe[i]))
				inv = false;
		for (size_t i = 0; i < e->u.call.nargs; i++) {
			bool a = mark_invariant(m, e->u.call.args[i]);
			if (i < ARRAY_LEN(arg))
				arg[i] = a;
			inv = inv && a;
		}
		if (inv)
			return true;
		for (size_t i = 0; i < e->u.call.nargs && i < ARRAY_LEN(arg); i++)
			if (arg[i])
				wrap(m, e->u.call.args[i]);
		return false;
	}
	}
	return false;
}

static void invariant_free(void *arg)
{
	imap_release(arg);
}



/* ------------------------------------------------------------------------------ entry */

static int cmp_rseries(const void *a, const void *b)
{
	return labels_cmp(&((const promql_series_t *)a)->ls, &((const promql_series_t *)b)->ls);
}

static void result_from(ev_t *ev, const val_t *vp, bool instant, promql_result_t *res);

size_t promql_default_max_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	size_t phys = pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz : (size_t)4 << 30;
	size_t d = phys / 4;
	return d < ((size_t)256 << 20) ? (size_t)256 << 20 : d;
}

size_t promql_default_max_memory_total(size_t max_memory)
{
	size_t d = promql_default_max_memory();
	return 2 * (max_memory > d ? max_memory : d);
}

static int cmp_ptr(const void *x, const void *y)
{
	uintptr_t a = (uintptr_t) * (const double *const *)x, b = (uintptr_t) * (const double *const *)y;
	return a < b ? -1 : a > b;
}

/* How many of the sorted pointers vs[0..n) equal p. */
static size_t ptr_count(const double **vs, size_t n, const double *p)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((uintptr_t)vs[mid] < (uintptr_t)p)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t k = 0;
	while (lo + k < n && vs[lo + k] == p)
		k++;
	return k;
}

int promql_eval(const promql_opts_t *o, queryable_t *q, arena_t *a, const promql_expr_t *e, int64_t start,
		int64_t end, int64_t step, promql_result_t *res, err_t *err)
{
	memset(res, 0, sizeof *res);
	static _Thread_local err_t local;
	if (!err)
		return promql_eval(o, q, a, e, start, end, step, res, &local);
	bool instant = step == 0;
	if (instant && start != end)
		return res->error_type = "bad_data", err_set(err, ERR_INVALID, "instant query needs start == end");
	if (!instant && end < start)
		return res->error_type = "bad_data", err_set(err, ERR_INVALID, "end timestamp must not be before start time");
	promql_type_t ty = promql_expr_type(e);
	if (!instant && ty != PROMQL_TYPE_SCALAR && ty != PROMQL_TYPE_VECTOR)
		return res->error_type = "bad_data",
		       err_set(err, ERR_INVALID, "invalid expression type \"%s\" for range query, must be Scalar or instant Vector",
			       ty == PROMQL_TYPE_MATRIX ? "range vector" : promql_type_name(ty));
	jmp_buf jb;
	ev_t *ev = ARENA_NEW(a, ev_t);
	ev->a = a;
	ev->q = q;
	ev->o = o;
	ev->start = start;
	ev->end = end;
	ev->step = instant ? 1 : step;
	ev->nsteps = instant ? 1 : (size_t)(((uint64_t)end - (uint64_t)start) / (uint64_t)step) + 1;
	ev->qstart = start;
	ev->qend = end;
	ev->lookback = o->lookback_ms > 0 ? o->lookback_ms : PROMQL_DEFAULT_LOOKBACK_MS;
	ev->max_samples = o->max_samples > 0 ? o->max_samples : PROMQL_DEFAULT_MAX_SAMPLES;
	ev->deadline_ms = o->timeout_ms > 0 ? (int64_t)clock_mono_ms() + o->timeout_ms : 0;
	ev->err = err;
	ev->jmp = &jb;
	ev_scratch_t *scr = ev->scr = ARENA_NEW(a, ev_scratch_t);
	/* everything the query allocates from here on counts against its memory budget */
	scr->budget.limit = o->max_memory ? o->max_memory : promql_default_max_memory();
	scr->budget.pool = o->memory_pool;
	arena_set_budget(a, &scr->budget);
	val_t v = {0};
	if (setjmp(jb)) {
		if (scr->open_set)
			series_set_close(scr->open_set);
		select_arena_free(scr);
		pf_release(scr);
		while (scr->frames)
			frame_pop(scr);
		arena_set_budget(a, NULL);
		res->error_type = ev->scr->error_type ? ev->scr->error_type : "execution";
		if (ev->scr->rc == ERR_TIMEOUT)
			res->error_type = "timeout";
		else if (ev->scr->rc == ERR_CANCELED)
			res->error_type = "canceled";
		if (!ev->err->code)
			ev->err->code = ev->scr->rc;
		return ev->scr->rc;
	}
	ev_check_steps(ev, ev->nsteps);
	if (o->stats) {
		ev->qs = ev_zalloc(ev, sizeof *ev->qs);
		if (o->stats == PROMQL_STATS_PER_STEP)
			ev->qs->per_step = ev_zalloc(ev, ev->nsteps * sizeof(int64_t));
	}
	if (!instant) {
		imap_t *inv = ev_zalloc(ev, sizeof *inv);
		imap_init(inv, 16);
		arena_on_release(a, invariant_free, inv);
		if (mark_invariant(inv, e))
			wrap(inv, e);
		ev->invariant = inv;
	}
	pf_plan(ev, e);
	eval_expr(ev, e, &v);
	pf_release(scr); /* selects planned but never made (a selector not evaluated) */
	result_from(ev, &v, instant, res);
	arena_set_budget(a, NULL);
	return 0;
}

/* The promql_result_t of the top-level value v (allocations within the budget). */
static void result_from(ev_t *ev, const val_t *vp, bool instant, promql_result_t *res)
{
	val_t v = *vp;
	int64_t start = ev->start;
	res->samples_peak = ev->peak_samples;
	if (ev->qs) {
		res->samples_total = ev->qs->total;
		res->samples_per_step = ev->qs->per_step;
		res->nsteps = ev->qs->per_step ? ev->nsteps : 0;
	}
	res->ts = start;
	switch (v.type) {
	case PROMQL_TYPE_SCALAR:
		if (instant) {
			res->type = PROMQL_TYPE_SCALAR;
			res->scalar = v.sc[0];
			return;
		}
		res->type = PROMQL_TYPE_MATRIX;
		res->nseries = 1;
		res->series = ev_zalloc(ev, sizeof(promql_series_t));
		res->series[0].n = ev->nsteps;
		res->series[0].t = ev_alloc_array(ev, ev->nsteps, sizeof(int64_t));
		res->series[0].v = v.sc;
		for (size_t i = 0; i < ev->nsteps; i++)
			res->series[0].t[i] = ev_ts(ev, i);
		return;
	case PROMQL_TYPE_STRING:
		res->type = PROMQL_TYPE_STRING;
		res->string = v.str;
		return;
	case PROMQL_TYPE_MATRIX:
		res->type = PROMQL_TYPE_MATRIX;
		res->nseries = v.nrs;
		res->series = ev_zalloc(ev, ev_array_bytes(ev, v.nrs ? v.nrs : 1, sizeof(promql_series_t)));
		for (size_t i = 0; i < v.nrs; i++)
			res->series[i] = (promql_series_t){v.rs[i].ls, v.rs[i].t, v.rs[i].v, v.rs[i].n};
		qsort(res->series, res->nseries, sizeof *res->series, cmp_rseries);
		return;
	case PROMQL_TYPE_VECTOR:
	default:
		break;
	}
	res->series = ev_zalloc(ev, ev_array_bytes(ev, v.n ? v.n : 1, sizeof(promql_series_t)));
	if (instant) {
		res->type = PROMQL_TYPE_VECTOR;
		for (size_t s = 0; s < v.n; s++) {
			if (!v.s[s].ok[0])
				continue;
			promql_series_t *o2 = &res->series[res->nseries++];
			o2->ls = v.s[s].ls;
			o2->n = 1;
			o2->t = ev_alloc(ev, sizeof(int64_t));
			o2->t[0] = start;
			o2->v = v.s[s].v;
		}
		return;
	}
	res->type = PROMQL_TYPE_MATRIX;
	/* No copy of the values: each series' points are compacted in place in its step array (series with a
	 * point at every step, most on dashboards, share one array of the step timestamps). A step array two
	 * series share (should an operator ever pass one on twice) is copied instead. */
	const double **vs = ev_alloc_array(ev, v.n ? v.n : 1, sizeof *vs);
	for (size_t s = 0; s < v.n; s++)
		vs[s] = v.s[s].v;
	qsort(vs, v.n, sizeof *vs, cmp_ptr);
	int64_t *all_ts = NULL;
	for (size_t s = 0; s < v.n; s++) {
		size_t n = 0;
		for (size_t i = 0; i < ev->nsteps; i++)
			n += v.s[s].ok[i];
		if (!n)
			continue;
		promql_series_t *o2 = &res->series[res->nseries++];
		o2->ls = v.s[s].ls;
		o2->n = n;
		bool shared = ptr_count(vs, v.n, v.s[s].v) > 1;
		if (n == ev->nsteps) {
			o2->v = v.s[s].v;
			if (!all_ts) {
				all_ts = ev_alloc_array(ev, ev->nsteps, sizeof(int64_t));
				for (size_t i = 0; i < ev->nsteps; i++)
					all_ts[i] = ev_ts(ev, i);
			}
			o2->t = all_ts;
			continue;
		}
		o2->t = ev_alloc_array(ev, n, sizeof(int64_t));
		o2->v = shared ? ev_alloc_array(ev, n, sizeof(double)) : v.s[s].v;
		for (size_t i = 0, j = 0; i < ev->nsteps; i++)
			if (v.s[s].ok[i]) {
				o2->t[j] = ev_ts(ev, i);
				o2->v[j++] = v.s[s].v[i]; /* j <= i: in place, nothing is read after it is overwritten */
			}
	}
	qsort(res->series, res->nseries, sizeof *res->series, cmp_rseries);
}

int promql_query(const promql_opts_t *o, queryable_t *q, arena_t *a, str_t query, int64_t start, int64_t end,
		 int64_t step, promql_result_t *res, err_t *err)
{
	promql_expr_t *e;
	memset(res, 0, sizeof *res);
	int rc = promql_parse(a, query.p, query.n, &e, err);
	if (rc) {
		res->error_type = "bad_data";
		return rc;
	}
	return promql_eval(o, q, a, e, start, end, step, res, err);
}
