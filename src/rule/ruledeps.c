/*
 * ruledeps.c — see ruledeps.h. Metric names are compared by a 64-bit hash: a collision only makes
 * two rules wait for each other (never the reverse).
 */
#include "rule/ruledeps.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/vec.h"
#include "model/labels.h"
#include "promql/ast.h"

typedef struct rdep {
	bool alert;
	bool reads_any;  /* reads every metric */
	uint64_t name;   /* hash of the record / alert name */
	uint64_t *reads; /* hashes of the metric names read */
	size_t nreads;
} rdep_t;

struct ruledeps {
	rdep_t *r;
	size_t n;
	uint64_t alerts, for_state; /* hashes of ALERTS and ALERTS_FOR_STATE */
};

static uint64_t name_hash(str_t s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < s.n; i++) {
		h ^= (unsigned char)s.p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* The metric a selector asks for by name, or false when it may select any. */
static bool selector_name(const promql_expr_t *e, str_t *name)
{
	if (e->u.vs.name.n) {
		*name = e->u.vs.name;
		return true;
	}
	for (size_t i = 0; i < e->u.vs.nms; i++)
		if (e->u.vs.ms[i].type == MATCH_EQ && str_eq_c(e->u.vs.ms[i].name, LABEL_METRIC_NAME)) {
			*name = e->u.vs.ms[i].value;
			return true;
		}
	return false;
}

/* The metric names e reads (without recursion: operator chains can be long). */
static void collect(const promql_expr_t *root, rdep_t *d)
{
	VEC(const promql_expr_t *) st = {0};
	VEC(uint64_t) reads = {0};
	VEC_PUSH(&st, root);
	while (st.n && !d->reads_any) {
		const promql_expr_t *e = VEC_POP(&st);
		if (!e)
			continue;
		str_t name;
		switch (e->kind) {
		case PROMQL_VECTOR_SEL:
			if (selector_name(e, &name))
				VEC_PUSH(&reads, name_hash(name));
			else
				d->reads_any = true;
			break;
		case PROMQL_MATRIX_SEL:
			VEC_PUSH(&st, e->u.ms.vs);
			break;
		case PROMQL_SUBQUERY:
			VEC_PUSH(&st, e->u.sq.expr);
			break;
		case PROMQL_PAREN:
			VEC_PUSH(&st, e->u.paren.expr);
			break;
		case PROMQL_UNARY:
			VEC_PUSH(&st, e->u.unary.expr);
			break;
		case PROMQL_BINARY:
			VEC_PUSH(&st, e->u.bin.lhs);
			VEC_PUSH(&st, e->u.bin.rhs);
			break;
		case PROMQL_CALL:
			for (size_t i = 0; i < e->u.call.nargs; i++)
				VEC_PUSH(&st, e->u.call.args[i]);
			break;
		case PROMQL_AGGR:
			VEC_PUSH(&st, e->u.aggr.expr);
			VEC_PUSH(&st, e->u.aggr.param);
			break;
		default:
			break;
		}
	}
	free(st.v);
	d->reads = reads.v;
	d->nreads = reads.n;
}

static bool may_query(const labels_t *templates)
{
	for (size_t i = 0; i < templates->n; i++)
		if (memmem(templates->v[i].value.p, templates->v[i].value.n, "query", 5))
			return true;
	return false;
}

ruledeps_t *ruledeps_new(const rule_spec_t *rules, size_t n)
{
	ruledeps_t *d = xcalloc(1, sizeof *d);
	d->r = xcalloc(n + 1, sizeof *d->r);
	d->n = n;
	d->alerts = name_hash(STR("ALERTS"));
	d->for_state = name_hash(STR("ALERTS_FOR_STATE"));
	for (size_t i = 0; i < n; i++) {
		const rule_spec_t *sp = &rules[i];
		rdep_t *r = &d->r[i];
		r->alert = sp->alert;
		r->name = name_hash(sp->name);
		if (sp->alert && (may_query(&sp->labels) || may_query(&sp->annotations)))
			r->reads_any = true;
		arena_t a;
		arena_init(&a, 0);
		promql_expr_t *e;
		err_t err = {0};
		if (promql_parse(&a, sp->expr.p, sp->expr.n, &e, &err) != 0)
			r->reads_any = true;
		else if (!r->reads_any)
			collect(e, r);
		arena_release(&a);
	}
	return d;
}

void ruledeps_free(ruledeps_t *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->r[i].reads);
	free(d->r);
	free(d);
}

/* Does r read a series w writes? */
static bool reads_writes(const ruledeps_t *d, const rdep_t *r, const rdep_t *w)
{
	if (r->reads_any)
		return true;
	for (size_t i = 0; i < r->nreads; i++) {
		uint64_t h = r->reads[i];
		if (w->alert ? h == d->alerts || h == d->for_state : h == w->name)
			return true;
	}
	return false;
}

bool ruledeps_conflict(const ruledeps_t *d, size_t i, size_t j)
{
	const rdep_t *a = &d->r[i], *b = &d->r[j];
	if (a->alert == b->alert && a->name == b->name)
		return true;
	return reads_writes(d, a, b) || reads_writes(d, b, a);
}
