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

/* Drop samples before t; seeks the source once the buffer is used up. */
static int cursor_advance(dedup_cursor_t *c, int64_t t, err_t *err)
{
	while (c->pos < c->n && c->t[c->pos] < t)
		c->pos++;
	if (c->pos == c->n && !c->done) {
		int rc = sample_iter_seek(c->it, t, err);
		if (rc < 0)
			return rc;
	}
	return cursor_peek(c, err);
}

static int next_penalty(dedup_iter_t *d, int64_t *t, double *v, err_t *err)
{
	size_t best = d->n;
	for (size_t i = 0; i < d->n; i++) {
		dedup_cursor_t *c = &d->c[i];
		int rc = d->have_last ? cursor_advance(c, d->last_t + 1 + c->penalty, err) : cursor_peek(c, err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		if (best == d->n || c->t[c->pos] < d->c[best].t[d->c[best].pos])
			best = i;
	}
	if (best == d->n)
		return 0;
	dedup_cursor_t *b = &d->c[best];
	int64_t bt = b->t[b->pos];
	for (size_t i = 0; i < d->n; i++) {
		dedup_cursor_t *c = &d->c[i];
		if (i == best || c->pos >= c->n)
			continue;
		c->penalty = d->have_last ? 2 * (bt - d->last_t) : DEDUP_INITIAL_PENALTY_MS;
	}
	b->penalty = 0;
	double bv = b->v[b->pos] + b->offset;
	if (d->counter && d->have_last && best != d->cur && bv < d->last_v) {
		b->offset += d->last_v - bv;
		bv = d->last_v;
	}
	b->pos++;
	d->cur = best;
	d->have_last = true;
	d->last_t = bt;
	if (!isnan(bv))
		d->last_v = bv;
	*t = bt;
	*v = bv;
	return 1;
}

static int next_chain(dedup_iter_t *d, int64_t *t, double *v, err_t *err)
{
	size_t best = d->n;
	for (size_t i = 0; i < d->n; i++) {
		dedup_cursor_t *c = &d->c[i];
		int rc = d->have_last ? cursor_advance(c, d->last_t + 1, err) : cursor_peek(c, err);
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
	return d->mode == DEDUP_PENALTY ? next_penalty(d, t, v, err) : next_chain(d, t, v, err);
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
	d->counter = counter;
	for (size_t i = 0; i < n; i++) {
		dedup_cursor_t *c = &cursors[i];
		c->it = its[i];
		c->pos = c->n = 0;
		c->done = false;
		c->penalty = 0;
		c->offset = 0;
	}
}
