/*
 * dedup.c — penalty deduplication and chained merge of sample streams (see dedup.h).
 */
#include "store/dedup.h"

#include <math.h>
#include <string.h>

/* Make sure cursor c has a sample at pos: 1 yes, 0 exhausted, <0 error. */
static int cursor_peek(dedup_cursor_t *c, err_t *err)
{
	if (c->pos < c->n)
		return 1;
	if (c->done)
		return 0;
	int n = sample_iter_next_batch(c->it, c->t, c->v, DEDUP_BATCH, err);
	if (n < 0)
		return n;
	c->pos = 0;
	c->n = n;
	if (n == 0) {
		c->done = true;
		return 0;
	}
	return 1;
}

/* DEDUP_PENALTY: the source goes past its sample at pos (emitted or skipped); its scrape interval is
 * the smaller of its last two intervals, so one gap is not taken for the interval. */
static void cursor_note(dedup_cursor_t *c)
{
	int64_t t = c->t[c->pos];
	if (c->have_prev) {
		int64_t d = t - c->prev_t;
		c->step = c->delta > 0 && c->delta < d ? c->delta : d;
		c->delta = d;
	}
	c->have_prev = true;
	c->prev_t = t;
	if (!isnan(c->v[c->pos])) {
		c->have_pv = true;
		c->prev_v = c->v[c->pos];
	}
}

/* Drop samples before t; seeks the source once the buffer is used up. */
static int cursor_advance(dedup_iter_t *d, dedup_cursor_t *c, int64_t t, err_t *err)
{
	for (;;) {
		while (c->pos < c->n && c->t[c->pos] < t) {
			if (d->mode == DEDUP_PENALTY)
				cursor_note(c);
			c->pos++;
		}
		if (c->pos < c->n || c->done)
			break;
		int rc = sample_iter_seek(c->it, t, err);
		if (rc < 0)
			return rc;
		if ((rc = cursor_peek(c, err)) <= 0)
			return rc;
	}
	return cursor_peek(c, err);
}

/* The value of c's sample at pos with its counter adjustment: bit for bit when there is none. */
static double cursor_value(const dedup_cursor_t *c)
{
	double v = c->v[c->pos];
	return c->offset != 0 ? v + c->offset : v;
}

/* DEDUP_PENALTY: does c's sample at pos follow its previous one without a gap (so that one says
 * whether its counter went down)? */
static bool cursor_unbroken(const dedup_cursor_t *c)
{
	return c->have_pv && c->step > 0 && c->t[c->pos] - c->prev_t < c->step + c->step / 2;
}

/* Take the sample of replica best at its pos: returns its (adjusted) value. */
static double take(dedup_iter_t *d, size_t best)
{
	dedup_cursor_t *b = &d->c[best];
	double raw = b->v[b->pos];
	bool switched = d->have_last && best != d->cur;
	if (d->counter && d->mode == DEDUP_PENALTY && b->have_pv && raw < b->prev_v)
		b->offset = 0; /* the replica's own counter went down: a real reset, kept as such */
	else if (d->counter && d->mode == DEDUP_PENALTY && switched && cursor_unbroken(b) && isfinite(raw) &&
	         isfinite(d->last_v) && cursor_value(b) < d->last_v)
		b->offset = d->last_v - raw; /* it did not reset: it lags the replica left */
	double v = cursor_value(b);
	if (d->counter && d->mode == DEDUP_PENALTY_THANOS && switched && v < d->last_v) {
		b->offset += d->last_v - v;
		v = d->last_v;
	}
	if (d->mode == DEDUP_PENALTY)
		cursor_note(b);
	d->last_t = b->t[b->pos];
	b->pos++;
	d->cur = best;
	d->have_last = true;
	if (!isnan(v))
		d->last_v = v;
	return v;
}

/* A source's interval: its step, else the interval between its next two buffered samples; 0 unknown. */
static int64_t cursor_interval(const dedup_cursor_t *c)
{
	if (c->step > 0)
		return c->step;
	return c->pos + 1 < c->n ? c->t[c->pos + 1] - c->t[c->pos] : 0;
}

/* DEDUP_PENALTY: the interval the current replica is held to; while it has given one sample only, the
 * interval after its next one, else another replica's. */
static int64_t penalty_step(const dedup_iter_t *d)
{
	int64_t step = cursor_interval(&d->c[d->cur]);
	for (size_t i = 0; i < d->n && step <= 0; i++)
		step = cursor_interval(&d->c[i]);
	return step > 0 ? step : 0;
}

/* DEDUP_PENALTY (dedup.h): stay with the current replica while its next sample is on time, else take
 * the earliest sample of another one more than a tenth of an interval after the last, if it comes
 * first. */
static int next_penalty(dedup_iter_t *d, int64_t *t, double *v, err_t *err)
{
	size_t best = d->n;
	if (!d->have_last) {
		for (size_t i = 0; i < d->n; i++) {
			int rc = cursor_peek(&d->c[i], err);
			if (rc < 0)
				return rc;
			if (rc && (best == d->n || d->c[i].t[d->c[i].pos] < d->c[best].t[d->c[best].pos]))
				best = i;
		}
	} else {
		dedup_cursor_t *c = &d->c[d->cur];
		int rc = cursor_advance(d, c, d->last_t + 1, err);
		if (rc < 0)
			return rc;
		int64_t step = penalty_step(d), lim = rc ? c->t[c->pos] : INT64_MAX;
		if (rc)
			best = d->cur;
		if (!rc || (step > 0 && lim - d->last_t >= step + step / 2)) {
			int64_t from = d->last_t + 1 + step / DEDUP_HANDOVER_DIV;
			for (size_t i = 0; i < d->n; i++) {
				if (i == d->cur)
					continue;
				dedup_cursor_t *o = &d->c[i];
				if ((rc = cursor_advance(d, o, from, err)) < 0)
					return rc;
				if (rc && o->t[o->pos] < lim) {
					best = i;
					lim = o->t[o->pos];
				}
			}
		}
	}
	if (best == d->n)
		return 0;
	*t = d->c[best].t[d->c[best].pos];
	*v = take(d, best);
	return 1;
}

/* DEDUP_PENALTY_THANOS: thanos.md §6.4, N replicas at once. */
static int next_penalty_thanos(dedup_iter_t *d, int64_t *t, double *v, err_t *err)
{
	size_t best = d->n;
	for (size_t i = 0; i < d->n; i++) {
		dedup_cursor_t *c = &d->c[i];
		int rc = d->have_last ? cursor_advance(d, c, d->last_t + 1 + c->penalty, err)
		                      : cursor_peek(c, err);
		if (rc < 0)
			return rc;
		if (rc && (best == d->n || c->t[c->pos] < d->c[best].t[d->c[best].pos]))
			best = i;
	}
	if (best == d->n)
		return 0;
	int64_t bt = d->c[best].t[d->c[best].pos];
	for (size_t i = 0; i < d->n; i++) {
		dedup_cursor_t *c = &d->c[i];
		if (i != best && c->pos < c->n)
			c->penalty = d->have_last ? 2 * (bt - d->last_t) : DEDUP_INITIAL_PENALTY_MS;
	}
	d->c[best].penalty = 0;
	*t = bt;
	*v = take(d, best);
	return 1;
}

static int next_chain(dedup_iter_t *d, int64_t *t, double *v, err_t *err)
{
	size_t best = d->n;
	for (size_t i = 0; i < d->n; i++) {
		dedup_cursor_t *c = &d->c[i];
		int rc = d->have_last ? cursor_advance(d, c, d->last_t + 1, err) : cursor_peek(c, err);
		if (rc < 0)
			return rc;
		if (rc && (best == d->n || c->t[c->pos] < d->c[best].t[d->c[best].pos]))
			best = i;
	}
	if (best == d->n)
		return 0;
	dedup_cursor_t *b = &d->c[best];
	*t = b->t[b->pos];
	*v = b->v[b->pos];
	b->pos++;
	d->have_last = true;
	d->last_t = *t;
	return 1;
}

static int next1(dedup_iter_t *d, int64_t *t, double *v, err_t *err)
{
	if (d->have_pending) {
		d->have_pending = false;
		*t = d->pt;
		*v = d->pv;
		return 1;
	}
	switch (d->mode) {
	case DEDUP_PENALTY:
		return next_penalty(d, t, v, err);
	case DEDUP_PENALTY_THANOS:
		return next_penalty_thanos(d, t, v, err);
	default:
		return next_chain(d, t, v, err);
	}
}

static int dedup_next_batch(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	dedup_iter_t *d = (dedup_iter_t *)it;
	int n = 0;
	while (n < cap) {
		int rc = next1(d, &t[n], &v[n], err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		n++;
	}
	return n;
}

static int dedup_seek(sample_iter_t *it, int64_t target, err_t *err)
{
	dedup_iter_t *d = (dedup_iter_t *)it;
	for (;;) {
		int64_t t;
		double v;
		int rc = next1(d, &t, &v, err);
		if (rc <= 0)
			return rc;
		if (t >= target) {
			d->have_pending = true;
			d->pt = t;
			d->pv = v;
			return 0;
		}
	}
}

static const struct sample_iter_ops dedup_ops = {dedup_next_batch, dedup_seek};

void dedup_iter_init(dedup_iter_t *d, dedup_cursor_t *cursors, sample_iter_t *const *its, size_t n,
                     dedup_mode_t mode, bool counter)
{
	memset(d, 0, sizeof *d);
	d->base.ops = &dedup_ops;
	d->c = cursors;
	d->n = n;
	d->mode = mode;
	d->counter = counter && mode != DEDUP_CHAIN;
	for (size_t i = 0; i < n; i++) {
		dedup_cursor_t *c = &cursors[i]; /* not the sample buffers */
		c->it = its[i];
		c->pos = c->n = 0;
		c->done = c->have_prev = c->have_pv = false;
		c->penalty = c->prev_t = c->delta = c->step = 0;
		c->offset = c->prev_v = 0;
	}
}

static const char *const mode_names[] = {
    [DEDUP_PENALTY] = "penalty", [DEDUP_PENALTY_THANOS] = "penalty-thanos", [DEDUP_CHAIN] = "chain"};

int dedup_mode_parse(str_t name, dedup_mode_t *out)
{
	for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
		if (str_eq_c(name, mode_names[i])) {
			*out = (dedup_mode_t)i;
			return 0;
		}
	return -1;
}

const char *dedup_mode_name(dedup_mode_t mode)
{
	return (size_t)mode < sizeof mode_names / sizeof mode_names[0] ? mode_names[mode] : "?";
}

/* ---- dedup_set: a k-way merge of whole series sets by labels (linear scan: n is a handful) */

typedef struct dedup_set {
	series_set_t base;
	arena_t *a;
	series_set_t **sets;
	size_t n;
	bool *live;      /* sets[i] is on a series not yet returned */
	size_t *members; /* sets on the current series, ascending */
	size_t nmembers;
	bool started;
	dedup_mode_t mode;
	bool counter;
	sample_iter_t **its;
	dedup_cursor_t *cursors;
	dedup_iter_t dd;
} dedup_set_t;

static int dset_next(series_set_t *base, err_t *err)
{
	dedup_set_t *s = (dedup_set_t *)base;
	/* The sets on the returned series move on now (their series stayed valid until here). */
	for (size_t k = 0; k < (s->started ? s->nmembers : s->n); k++) {
		size_t i = s->started ? s->members[k] : k;
		int rc = series_set_next(s->sets[i], err);
		if (rc < 0)
			return rc;
		s->live[i] = rc == 1;
	}
	s->started = true;
	s->nmembers = 0;
	const labels_t *min = NULL;
	for (size_t i = 0; i < s->n; i++) {
		if (!s->live[i])
			continue;
		const labels_t *ls = series_set_labels(s->sets[i]);
		int c = min ? labels_cmp(ls, min) : -1;
		if (c < 0) {
			min = ls;
			s->nmembers = 0;
		}
		if (c <= 0)
			s->members[s->nmembers++] = i;
	}
	return s->nmembers > 0;
}

static const labels_t *dset_labels(series_set_t *base)
{
	dedup_set_t *s = (dedup_set_t *)base;
	return series_set_labels(s->sets[s->members[0]]);
}

static sample_iter_t *dset_samples(series_set_t *base)
{
	dedup_set_t *s = (dedup_set_t *)base;
	if (s->nmembers == 1)
		return series_set_samples(s->sets[s->members[0]]);
	for (size_t k = 0; k < s->nmembers; k++)
		s->its[k] = series_set_samples(s->sets[s->members[k]]);
	dedup_iter_init(&s->dd, s->cursors, s->its, s->nmembers, s->mode, s->counter);
	return &s->dd.base;
}

static int dset_chunks(series_set_t *base, const chunk_t **out)
{
	dedup_set_t *s = (dedup_set_t *)base;
	series_set_t *m = s->sets[s->members[0]];
	if (s->nmembers > 1 || !m->ops->chunks)
		return -1;
	return m->ops->chunks(m, out);
}

static size_t dset_warnings(series_set_t *base, const char *const **out)
{
	dedup_set_t *s = (dedup_set_t *)base;
	size_t total = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->sets[i]->ops->warnings) {
			const char *const *w;
			total += s->sets[i]->ops->warnings(s->sets[i], &w);
		}
	const char **all = ARENA_NEW_ARRAY(s->a, const char *, total ? total : 1);
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->sets[i]->ops->warnings) {
			const char *const *w;
			size_t nw = s->sets[i]->ops->warnings(s->sets[i], &w);
			for (size_t j = 0; j < nw; j++)
				all[k++] = w[j];
		}
	*out = all;
	return k;
}

static bool dset_chunk_data_stable(series_set_t *base)
{
	dedup_set_t *s = (dedup_set_t *)base;
	for (size_t i = 0; i < s->n; i++)
		if (!s->sets[i]->ops->chunk_data_stable || !s->sets[i]->ops->chunk_data_stable(s->sets[i]))
			return false;
	return true;
}

static void dset_close(series_set_t *base)
{
	dedup_set_t *s = (dedup_set_t *)base;
	for (size_t i = 0; i < s->n; i++)
		series_set_close(s->sets[i]);
	s->n = 0;
}

static const struct series_set_ops dset_ops = {
    .next = dset_next,
    .labels = dset_labels,
    .samples = dset_samples,
    .chunks = dset_chunks,
    .warnings = dset_warnings,
    .close = dset_close,
    .chunk_data_stable = dset_chunk_data_stable,
};

series_set_t *dedup_set_new(arena_t *a, series_set_t *const *sets, size_t n, dedup_mode_t mode, bool counter)
{
	dedup_set_t *s = ARENA_NEW(a, dedup_set_t);
	size_t cap = n ? n : 1;
	s->base.ops = &dset_ops;
	s->a = a;
	s->sets = ARENA_NEW_ARRAY(a, series_set_t *, cap);
	memcpy(s->sets, sets, n * sizeof *sets);
	s->n = n;
	s->live = ARENA_NEW_ARRAY(a, bool, cap);
	s->members = ARENA_NEW_ARRAY(a, size_t, cap);
	s->its = ARENA_NEW_ARRAY(a, sample_iter_t *, cap);
	s->cursors = ARENA_NEW_ARRAY(a, dedup_cursor_t, cap);
	s->mode = mode;
	s->counter = counter;
	return &s->base;
}
