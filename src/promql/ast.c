/*
 * ast.c — PromQL function table, node types and the printer (Prometheus String() layout).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "base/fmt.h"
#include "base/hmap.h"
#include "promql/ast.h"

#define S PROMQL_TYPE_SCALAR
#define V PROMQL_TYPE_VECTOR
#define M PROMQL_TYPE_MATRIX
#define STRT PROMQL_TYPE_STRING

/* The 70 functions of Prometheus 2.42, sorted by name. */
static const promql_func_t funcs[] = {
	{"abs", {V}, 1, 0, V},
	{"absent", {V}, 1, 0, V},
	{"absent_over_time", {M}, 1, 0, V},
	{"acos", {V}, 1, 0, V},
	{"acosh", {V}, 1, 0, V},
	{"asin", {V}, 1, 0, V},
	{"asinh", {V}, 1, 0, V},
	{"atan", {V}, 1, 0, V},
	{"atanh", {V}, 1, 0, V},
	{"avg_over_time", {M}, 1, 0, V},
	{"ceil", {V}, 1, 0, V},
	{"changes", {M}, 1, 0, V},
	{"clamp", {V, S, S}, 3, 0, V},
	{"clamp_max", {V, S}, 2, 0, V},
	{"clamp_min", {V, S}, 2, 0, V},
	{"cos", {V}, 1, 0, V},
	{"cosh", {V}, 1, 0, V},
	{"count_over_time", {M}, 1, 0, V},
	{"day_of_month", {V}, 1, 1, V},
	{"day_of_week", {V}, 1, 1, V},
	{"day_of_year", {V}, 1, 1, V},
	{"days_in_month", {V}, 1, 1, V},
	{"deg", {V}, 1, 0, V},
	{"delta", {M}, 1, 0, V},
	{"deriv", {M}, 1, 0, V},
	{"exp", {V}, 1, 0, V},
	{"floor", {V}, 1, 0, V},
	{"histogram_count", {V}, 1, 0, V},
	{"histogram_fraction", {S, S, V}, 3, 0, V},
	{"histogram_quantile", {S, V}, 2, 0, V},
	{"histogram_sum", {V}, 1, 0, V},
	{"holt_winters", {M, S, S}, 3, 0, V},
	{"hour", {V}, 1, 1, V},
	{"idelta", {M}, 1, 0, V},
	{"increase", {M}, 1, 0, V},
	{"irate", {M}, 1, 0, V},
	{"label_join", {V, STRT, STRT, STRT}, 4, -1, V},
	{"label_replace", {V, STRT, STRT, STRT, STRT}, 5, 0, V},
	{"last_over_time", {M}, 1, 0, V},
	{"ln", {V}, 1, 0, V},
	{"log10", {V}, 1, 0, V},
	{"log2", {V}, 1, 0, V},
	{"max_over_time", {M}, 1, 0, V},
	{"min_over_time", {M}, 1, 0, V},
	{"minute", {V}, 1, 1, V},
	{"month", {V}, 1, 1, V},
	{"pi", {0}, 0, 0, S},
	{"predict_linear", {M, S}, 2, 0, V},
	{"present_over_time", {M}, 1, 0, V},
	{"quantile_over_time", {S, M}, 2, 0, V},
	{"rad", {V}, 1, 0, V},
	{"rate", {M}, 1, 0, V},
	{"resets", {M}, 1, 0, V},
	{"round", {V, S}, 2, 1, V},
	{"scalar", {V}, 1, 0, S},
	{"sgn", {V}, 1, 0, V},
	{"sin", {V}, 1, 0, V},
	{"sinh", {V}, 1, 0, V},
	{"sort", {V}, 1, 0, V},
	{"sort_desc", {V}, 1, 0, V},
	{"sqrt", {V}, 1, 0, V},
	{"stddev_over_time", {M}, 1, 0, V},
	{"stdvar_over_time", {M}, 1, 0, V},
	{"sum_over_time", {M}, 1, 0, V},
	{"tan", {V}, 1, 0, V},
	{"tanh", {V}, 1, 0, V},
	{"time", {0}, 0, 0, S},
	{"timestamp", {V}, 1, 0, V},
	{"vector", {S}, 1, 0, V},
	{"year", {V}, 1, 1, V},
};

const promql_func_t *promql_func_lookup(str_t name)
{
	size_t lo = 0, hi = ARRAY_LEN(funcs);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = str_cmp(name, str_c(funcs[mid].name));
		if (c == 0)
			return &funcs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* round(v) has 1 required arg: nargs counts the required args + 1 for variadic functions
 * (Prometheus's ArgTypes), which the table above follows; day_of_* take 0 or 1 args. */

const char *promql_type_name(promql_type_t t)
{
	switch (t) {
	case PROMQL_TYPE_SCALAR: return "scalar";
	case PROMQL_TYPE_VECTOR: return "instant vector";
	case PROMQL_TYPE_MATRIX: return "range vector";
	case PROMQL_TYPE_STRING: return "string";
	default: return "none";
	}
}

const char *promql_op_str(promql_op_t op)
{
	static const char *const s[] = {"", "+", "-", "*", "/", "%", "^", "atan2", "==", "!=", "<=", "<", ">=", ">",
					"and", "or", "unless"};
	return s[op];
}

const char *promql_aggr_str(promql_aggr_op_t op)
{
	static const char *const s[] = {"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
					"topk", "bottomk", "quantile", "count_values"};
	return s[op];
}

bool promql_op_is_comparison(promql_op_t op)
{
	return op >= PROMQL_OP_EQLC && op <= PROMQL_OP_GTR;
}

bool promql_op_is_set(promql_op_t op)
{
	return op >= PROMQL_OP_AND && op <= PROMQL_OP_UNLESS;
}

promql_type_t promql_expr_type(const promql_expr_t *e)
{
	switch (e->kind) {
	case PROMQL_NUMBER: return PROMQL_TYPE_SCALAR;
	case PROMQL_STRING: return PROMQL_TYPE_STRING;
	case PROMQL_VECTOR_SEL: return PROMQL_TYPE_VECTOR;
	case PROMQL_MATRIX_SEL: return PROMQL_TYPE_MATRIX;
	case PROMQL_SUBQUERY: return PROMQL_TYPE_MATRIX;
	case PROMQL_PAREN: return promql_expr_type(e->u.paren.expr);
	case PROMQL_UNARY: return promql_expr_type(e->u.unary.expr);
	case PROMQL_BINARY:
		if (e->u.bin.type) /* parsed: known without walking a chain of operators */
			return e->u.bin.type;
		return promql_expr_type(e->u.bin.lhs) == PROMQL_TYPE_SCALAR && promql_expr_type(e->u.bin.rhs) == PROMQL_TYPE_SCALAR
			       ? PROMQL_TYPE_SCALAR
			       : PROMQL_TYPE_VECTOR;
	case PROMQL_CALL: return e->u.call.func->ret;
	case PROMQL_AGGR: return PROMQL_TYPE_VECTOR;
	}
	return PROMQL_TYPE_NONE;
}

/* Go strconv.Quote, as Prometheus prints strings and matcher values. */
static void put_quoted(buf_t *b, str_t s)
{
	labels_quote(b, s);
}

static void put_labels(buf_t *b, const str_t *l, size_t n)
{
	buf_putc(b, '(');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_puts(b, ", ");
		buf_append_str(b, l[i]);
	}
	buf_putc(b, ')');
}

static void put_mods(buf_t *b, const promql_mods_t *m)
{
	if (m->at_kind == PROMQL_AT_TS) {
		int64_t a = m->at;
		buf_printf(b, " @ %s%lld.%03lld", a < 0 ? "-" : "", (long long)(a < 0 ? -(a / 1000) : a / 1000),
			   (long long)(a < 0 ? -(a % 1000) : a % 1000));
	} else if (m->at_kind == PROMQL_AT_START) {
		buf_puts(b, " @ start()");
	} else if (m->at_kind == PROMQL_AT_END) {
		buf_puts(b, " @ end()");
	}
	if (m->offset > 0) {
		buf_puts(b, " offset ");
		duration_format(b, m->offset);
	} else if (m->offset < 0) {
		buf_puts(b, " offset -");
		duration_format(b, -m->offset);
	}
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_selector(buf_t *b, const promql_expr_t *e)
{
	buf_append_str(b, e->u.vs.name);
	size_t n = 0;
	char *parts[64];
	for (size_t i = 0; i < e->u.vs.nms && n < ARRAY_LEN(parts); i++) {
		const matcher_t *m = &e->u.vs.ms[i];
		if (e->u.vs.name.n && m->type == MATCH_EQ && str_eq_c(m->name, LABEL_METRIC_NAME) && str_eq(m->value, e->u.vs.name))
			continue;
		buf_t t;
		buf_init(&t);
		buf_append_str(&t, m->name);
		buf_puts(&t, match_type_str(m->type));
		put_quoted(&t, m->value);
		parts[n++] = buf_detach(&t, NULL);
	}
	if (n) {
		qsort(parts, n, sizeof parts[0], cmp_strp);
		buf_putc(b, '{');
		for (size_t i = 0; i < n; i++) {
			if (i)
				buf_putc(b, ',');
			buf_puts(b, parts[i]);
			free(parts[i]);
		}
		buf_putc(b, '}');
	}
}

/* The operator of a binary expression with its modifiers: "/ on (job) group_left ()", "> bool". */
static void put_binop(buf_t *b, const promql_expr_t *e)
{
	buf_puts(b, promql_op_str(e->u.bin.op));
	if (e->u.bin.return_bool)
		buf_puts(b, " bool");
	if (e->u.bin.has_matching && (e->u.bin.nlabels > 0 || e->u.bin.on)) {
		buf_puts(b, e->u.bin.on ? " on " : " ignoring ");
		put_labels(b, e->u.bin.labels, e->u.bin.nlabels);
		if (e->u.bin.card == PROMQL_CARD_MANY_TO_ONE || e->u.bin.card == PROMQL_CARD_ONE_TO_MANY) {
			buf_puts(b, e->u.bin.card == PROMQL_CARD_MANY_TO_ONE ? " group_left " : " group_right ");
			put_labels(b, e->u.bin.include, e->u.bin.ninclude);
		}
	}
}

/* An aggregation up to its opening parenthesis: "sum(", "sum by (job) (", "sum without () (" (an
 * empty "by ()" is not printed). */
static void put_aggr_open(buf_t *b, const promql_expr_t *e)
{
	buf_puts(b, promql_aggr_str(e->u.aggr.op));
	if (e->u.aggr.without) {
		buf_puts(b, " without ");
		put_labels(b, e->u.aggr.grouping, e->u.aggr.ngrouping);
		buf_putc(b, ' ');
	} else if (e->u.aggr.ngrouping > 0) {
		buf_puts(b, " by ");
		put_labels(b, e->u.aggr.grouping, e->u.aggr.ngrouping);
		buf_putc(b, ' ');
	}
	buf_putc(b, '(');
}

/* A subquery's suffix: "[5m:1m] offset 1h". */
static void put_subquery_suffix(buf_t *b, const promql_expr_t *e)
{
	buf_putc(b, '[');
	duration_format(b, e->u.sq.range);
	buf_putc(b, ':');
	if (e->u.sq.step)
		duration_format(b, e->u.sq.step);
	buf_putc(b, ']');
	put_mods(b, &e->u.sq.mods);
}

/* Printing context: prom = exactly as Prometheus 2.42 prints (format_query); otherwise "+Inf ^ x" prints
 * its literal as "Inf" so that the output re-parses to the same tree (Prometheus's "+Inf ^ x" is
 * +(Inf ^ x)). lens, when set, records every node's one-line length (node address -> bytes). */
typedef struct fmtc {
	bool prom;
	imap_t *lens;
} fmtc_t;

static void fmt_expr(buf_t *b, const promql_expr_t *e, const fmtc_t *c);

/* A node that is not a binary operator. */
static void fmt_node(buf_t *b, const promql_expr_t *e, const fmtc_t *c)
{
	switch (e->kind) {
	case PROMQL_NUMBER:
		buf_put_float(b, e->u.number, 'g');
		break;
	case PROMQL_STRING:
		put_quoted(b, e->u.string);
		break;
	case PROMQL_VECTOR_SEL:
		put_selector(b, e);
		put_mods(b, &e->u.vs.mods);
		break;
	case PROMQL_MATRIX_SEL:
		put_selector(b, e->u.ms.vs);
		buf_putc(b, '[');
		duration_format(b, e->u.ms.range);
		buf_putc(b, ']');
		put_mods(b, &e->u.ms.vs->u.vs.mods);
		break;
	case PROMQL_SUBQUERY:
		fmt_expr(b, e->u.sq.expr, c);
		put_subquery_suffix(b, e);
		break;
	case PROMQL_PAREN:
		buf_putc(b, '(');
		fmt_expr(b, e->u.paren.expr, c);
		buf_putc(b, ')');
		break;
	case PROMQL_UNARY:
		buf_puts(b, promql_op_str(e->u.unary.op));
		fmt_expr(b, e->u.unary.expr, c);
		break;
	case PROMQL_CALL:
		buf_puts(b, e->u.call.func->name);
		buf_putc(b, '(');
		for (size_t i = 0; i < e->u.call.nargs; i++) {
			if (i)
				buf_puts(b, ", ");
			fmt_expr(b, e->u.call.args[i], c);
		}
		buf_putc(b, ')');
		break;
	case PROMQL_AGGR:
		put_aggr_open(b, e);
		if (e->u.aggr.param) {
			fmt_expr(b, e->u.aggr.param, c);
			buf_puts(b, ", ");
		}
		fmt_expr(b, e->u.aggr.expr, c);
		buf_putc(b, ')');
		break;
	case PROMQL_BINARY:
		BUG_ON(1); /* fmt_expr prints binary nodes */
	}
}

static void note_len(const fmtc_t *c, const promql_expr_t *e, size_t n)
{
	if (c->lens)
		imap_put(c->lens, (uintptr_t)e, n);
}

/* A node walk that does not recurse along chains of binary operators (Prometheus parses 20,000-term
 * chains, a tree as deep as it is long): a binary node's left spine is collected and printed from its
 * bottom up, and its right operand, printed last, continues the loop. */
static void fmt_expr(buf_t *b, const promql_expr_t *e, const fmtc_t *c)
{
	const promql_expr_t **spine = NULL, **pend = NULL;
	size_t *pstart = NULL, nspine_cap = 0, np = 0, pcap = 0;
	for (;;) {
		size_t start = b->n;
		if (e->kind != PROMQL_BINARY) {
			fmt_node(b, e, c);
			note_len(c, e, b->n - start);
			break;
		}
		size_t n = 0;
		for (const promql_expr_t *x = e; x->kind == PROMQL_BINARY; x = x->u.bin.lhs) {
			if (n == nspine_cap) {
				nspine_cap = nspine_cap ? 2 * nspine_cap : 16;
				spine = xreallocarray(spine, nspine_cap, sizeof *spine);
			}
			spine[n++] = x;
		}
		const promql_expr_t *leaf = spine[n - 1]->u.bin.lhs;
		if (!c->prom && spine[n - 1]->u.bin.op == PROMQL_OP_POW && leaf->kind == PROMQL_NUMBER &&
		    isinf(leaf->u.number) && leaf->u.number > 0)
			buf_puts(b, "Inf");
		else
			fmt_expr(b, leaf, c);
		for (size_t k = n; k-- > 0;) {
			buf_putc(b, ' ');
			put_binop(b, spine[k]);
			buf_putc(b, ' ');
			if (k == 0)
				break;
			fmt_expr(b, spine[k]->u.bin.rhs, c);
			note_len(c, spine[k], b->n - start);
		}
		if (np == pcap) { /* e's length is known once its right operand is printed */
			pcap = pcap ? 2 * pcap : 16;
			pend = xreallocarray(pend, pcap, sizeof *pend);
			pstart = xreallocarray(pstart, pcap, sizeof *pstart);
		}
		pend[np] = e;
		pstart[np++] = start;
		e = e->u.bin.rhs;
	}
	for (size_t i = 0; i < np; i++)
		note_len(c, pend[i], b->n - pstart[i]);
	free(spine);
	free(pend);
	free(pstart);
}

void promql_expr_format(buf_t *b, const promql_expr_t *e)
{
	fmtc_t c = {false, NULL};
	fmt_expr(b, e, &c);
}

/* ------------------------------------------------------------------ pretty printing (format_query) */

#define PRETTY_MAX_LINE 100

static void put_indent(buf_t *b, int level)
{
	for (int i = 0; i < level; i++)
		buf_puts(b, "  ");
}

typedef struct pretty_ctx {
	imap_t lens;  /* one-line length of every node (one pass over the tree, not one per node) */
	size_t max;   /* stop once the output is longer (0 = no limit) */
	bool over;
} pretty_ctx_t;

/* Whether a node is split over lines: its one-line form (without indentation) is longer than 100
 * bytes. */
static bool pretty_split(const pretty_ctx_t *pc, const promql_expr_t *e)
{
	uint64_t n = 0;
	imap_get(&pc->lens, (uintptr_t)e, &n);
	return n > PRETTY_MAX_LINE;
}

static void put_one_line(buf_t *b, const promql_expr_t *e)
{
	fmtc_t c = {true, NULL};
	fmt_expr(b, e, &c);
}

static void pretty(buf_t *b, const promql_expr_t *e, int level, pretty_ctx_t *pc);

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A node's pretty form with leading and trailing white space removed (what a unary operator prefixes). */
static void pretty_trimmed(buf_t *b, const promql_expr_t *e, int level, pretty_ctx_t *pc)
{
	buf_t t = BUF_INIT;
	pretty(&t, e, level, pc);
	size_t lo = 0, hi = t.n;
	while (lo < hi && is_space(t.p[lo]))
		lo++;
	while (hi > lo && is_space(t.p[hi - 1]))
		hi--;
	buf_append(b, t.p + lo, hi - lo);
	buf_release(&t);
}

/* Like fmt_expr, a chain of split binary nodes is walked without recursing along it: the left spine of
 * split nodes from its bottom up, the last right operand by the loop. */
static void pretty(buf_t *b, const promql_expr_t *e, int level, pretty_ctx_t *pc)
{
	const promql_expr_t **spine = NULL;
	size_t cap = 0;
	for (;;) {
		if (pc->over || (pc->max && b->n > pc->max)) {
			pc->over = true;
			break;
		}
		if (e->kind == PROMQL_SUBQUERY) {
			/* Not indented when it fits on a line (Prometheus 2.42 does the same). */
			if (!pretty_split(pc, e)) {
				put_one_line(b, e);
			} else {
				pretty(b, e->u.sq.expr, level, pc);
				put_subquery_suffix(b, e);
			}
			break;
		}
		if (e->kind == PROMQL_UNARY) {
			put_indent(b, level);
			buf_puts(b, promql_op_str(e->u.unary.op));
			pretty_trimmed(b, e->u.unary.expr, level, pc);
			break;
		}
		if (e->kind == PROMQL_NUMBER || e->kind == PROMQL_STRING || e->kind == PROMQL_VECTOR_SEL ||
		    e->kind == PROMQL_MATRIX_SEL || !pretty_split(pc, e)) {
			put_indent(b, level);
			put_one_line(b, e);
			break;
		}
		switch (e->kind) {
		case PROMQL_PAREN:
			put_indent(b, level);
			buf_puts(b, "(\n");
			pretty(b, e->u.paren.expr, level + 1, pc);
			buf_putc(b, '\n');
			put_indent(b, level);
			buf_putc(b, ')');
			break;
		case PROMQL_CALL:
			put_indent(b, level);
			buf_puts(b, e->u.call.func->name);
			buf_puts(b, "(\n");
			for (size_t i = 0; i < e->u.call.nargs; i++) {
				if (i)
					buf_puts(b, ",\n");
				pretty(b, e->u.call.args[i], level + 1, pc);
			}
			buf_putc(b, '\n');
			put_indent(b, level);
			buf_putc(b, ')');
			break;
		case PROMQL_AGGR:
			put_indent(b, level);
			put_aggr_open(b, e);
			buf_putc(b, '\n');
			if (e->u.aggr.param) {
				pretty(b, e->u.aggr.param, level + 1, pc);
				buf_puts(b, ",\n");
			}
			pretty(b, e->u.aggr.expr, level + 1, pc);
			buf_putc(b, '\n');
			put_indent(b, level);
			buf_putc(b, ')');
			break;
		case PROMQL_BINARY: {
			/* lhs one level deeper, the operator line at this level, rhs one level deeper */
			size_t n = 0;
			for (const promql_expr_t *x = e; x->kind == PROMQL_BINARY && pretty_split(pc, x); x = x->u.bin.lhs) {
				if (n == cap) {
					cap = cap ? 2 * cap : 16;
					spine = xreallocarray(spine, cap, sizeof *spine);
				}
				spine[n++] = x;
			}
			pretty(b, spine[n - 1]->u.bin.lhs, level + (int)n, pc);
			for (size_t k = n; k-- > 0;) {
				buf_putc(b, '\n');
				put_indent(b, level + (int)k);
				put_binop(b, spine[k]);
				buf_putc(b, '\n');
				if (k > 0)
					pretty(b, spine[k]->u.bin.rhs, level + (int)k + 1, pc);
			}
			e = e->u.bin.rhs;
			level++;
			continue;
		}
		default:
			BUG_ON(1); /* leaves, unary and subqueries are handled above */
		}
		break;
	}
	free(spine);
}

bool promql_expr_pretty_max(buf_t *b, const promql_expr_t *e, size_t max)
{
	pretty_ctx_t pc = {.max = max};
	imap_init(&pc.lens, 64);
	buf_t one = BUF_INIT;
	fmtc_t c = {true, &pc.lens};
	fmt_expr(&one, e, &c);
	buf_release(&one);
	pretty(b, e, 0, &pc);
	imap_release(&pc.lens);
	return !pc.over;
}

void promql_expr_pretty(buf_t *b, const promql_expr_t *e)
{
	promql_expr_pretty_max(b, e, 0);
}
