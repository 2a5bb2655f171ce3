/*
 * split.c — step alignment, range/labels splitting and `@` resolution; see split.h.
 */
#include "frontend/split.h"

#include "promql/ast.h"

int64_t split_align(int64_t t, int64_t step)
{
	return step > 0 ? t - t % step : t;
}

int64_t split_next_boundary(int64_t t, int64_t step, int64_t interval)
{
	int64_t next = (t / interval + 1) * interval;
	int64_t target = next - (next - t) % step;
	if (target == next)
		target -= step;
	return target;
}

size_t split_range(arena_t *a, int64_t start, int64_t end, int64_t step, int64_t interval,
                   split_piece_t **out)
{
	if (interval <= 0 || step <= 0 || start >= end) {
		*out = ARENA_NEW(a, split_piece_t);
		**out = (split_piece_t){start, end};
		return 1;
	}
	/* Pieces: about (end - start) / interval + 2. */
	size_t cap = (size_t)((end - start) / interval) + 2, n = 0;
	split_piece_t *v = ARENA_NEW_ARRAY(a, split_piece_t, cap);
	for (int64_t s = start; s < end;) {
		int64_t e = split_next_boundary(s, step, interval);
		if (e + step >= end)
			e = end;
		if (n == cap) {
			v = arena_realloc(a, v, cap * sizeof *v, 2 * cap * sizeof *v);
			cap *= 2;
		}
		v[n++] = (split_piece_t){s, e};
		if (e == end)
			break;
		s = e + step;
	}
	*out = v;
	return n;
}

/* floor(t / d) for d > 0. */
static int64_t floor_div(int64_t t, int64_t d)
{
	int64_t q = t / d;
	return (t % d != 0 && t < 0) ? q - 1 : q;
}

size_t split_labels(arena_t *a, int64_t start, int64_t end, int64_t interval, split_piece_t **out)
{
	if (interval <= 0 || start >= end || end - start > interval * (int64_t)1000000) {
		*out = ARENA_NEW(a, split_piece_t);
		**out = (split_piece_t){start, end};
		return 1;
	}
	size_t cap = (size_t)((end - start) / interval) + 2, n = 0;
	split_piece_t *v = ARENA_NEW_ARRAY(a, split_piece_t, cap);
	for (int64_t s = start;;) {
		int64_t b = (floor_div(s, interval) + 1) * interval;
		if (b - 1 >= end) {
			v[n++] = (split_piece_t){s, end};
			break;
		}
		v[n++] = (split_piece_t){s, b - 1};
		s = b;
	}
	*out = v;
	return n;
}

typedef struct at_ctx {
	int64_t start, end, max_at;
	bool changed;
} at_ctx_t;

static void resolve_mods(at_ctx_t *c, promql_mods_t *m)
{
	if (m->at_kind == PROMQL_AT_START || m->at_kind == PROMQL_AT_END) {
		m->at = m->at_kind == PROMQL_AT_START ? c->start : c->end;
		m->at_kind = PROMQL_AT_TS;
		c->changed = true;
	}
	if (m->at_kind == PROMQL_AT_TS && m->at > c->max_at)
		c->max_at = m->at;
}

static void resolve(at_ctx_t *c, promql_expr_t *e)
{
	if (!e)
		return;
	switch (e->kind) {
	case PROMQL_NUMBER:
	case PROMQL_STRING:
		return;
	case PROMQL_VECTOR_SEL:
		resolve_mods(c, &e->u.vs.mods);
		return;
	case PROMQL_MATRIX_SEL:
		resolve(c, e->u.ms.vs);
		return;
	case PROMQL_SUBQUERY:
		resolve_mods(c, &e->u.sq.mods);
		resolve(c, e->u.sq.expr);
		return;
	case PROMQL_PAREN:
		resolve(c, e->u.paren.expr);
		return;
	case PROMQL_UNARY:
		resolve(c, e->u.unary.expr);
		return;
	case PROMQL_BINARY:
		resolve(c, e->u.bin.lhs);
		resolve(c, e->u.bin.rhs);
		return;
	case PROMQL_CALL:
		for (size_t i = 0; i < e->u.call.nargs; i++)
			resolve(c, e->u.call.args[i]);
		return;
	case PROMQL_AGGR:
		resolve(c, e->u.aggr.param);
		resolve(c, e->u.aggr.expr);
		return;
	}
}

int split_resolve_at(arena_t *a, str_t query, int64_t start, int64_t end, str_t *out, bool *changed,
                     int64_t *max_at, err_t *err)
{
	promql_expr_t *e;
	int rc = promql_parse(a, query.p, query.n, &e, err);
	if (rc)
		return rc;
	at_ctx_t c = {.start = start, .end = end, .max_at = INT64_MIN};
	resolve(&c, e);
	*changed = c.changed;
	*max_at = c.max_at;
	*out = query;
	if (c.changed) {
		buf_t b = BUF_INIT;
		promql_expr_format(&b, e);
		*out = (str_t){arena_memdup(a, b.p, b.n + 1), b.n};
		buf_release(&b);
	}
	return 0;
}
