/*
 * promql_test_runner — runs Prometheus's PromQL test scripts (2.42 language) against Strata's engine.
 *
 * Usage: promql_test_runner [DIR or FILE.test ...]   (default: the directory $PROMQL_TESTDATA, e.g. a
 * Prometheus v2.42.0 source tree's promql/testdata; a DIR contributes its *.test files). Prints
 * "PASS promqltest:<file>:<line>" or "FAIL promqltest:<file>:<line>: why" for every eval statement and a
 * per-file summary; exits 1 if anything failed or no test script was found.
 *
 * Like Prometheus's harness, every instant eval is also run as a range query over [t-1m, t+1m] with a
 * 1m step and the point at t compared (except eval_ordered), and, unless the expression calls a function
 * whose result depends on the evaluation time, again with "@ t" pinned on its selectors and subqueries
 * at evaluation times -10t, 0, t/5, t and 10t (0, 10, 100, 1000, 10000 ms when t is 0).
 */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "model/memstore.h"
#include "model/selector.h"
#include "promql/engine.h"

typedef struct expect {
	labels_t ls;
	double v;
	bool matched;
} expect_t;

static char **read_lines(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 256;
	char **lines = xcalloc(cap, sizeof(char *));
	*n = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		/* TrimSpace, comment lines become empty */
		char *s = line;
		while (*s && isspace((unsigned char)*s))
			s++;
		char *e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = 0;
		if (*s == '#')
			*s = 0;
		if (*n == cap) {
			cap *= 2;
			lines = xreallocarray(lines, cap, sizeof(char *));
		}
		lines[(*n)++] = xstrdup(s);
	}
	free(line);
	fclose(f);
	return lines;
}

/* Split "metric{a="b c"} 1 2 3" into the series description and the rest. */
static char *split_desc(char *line)
{
	bool inq = false;
	char q = 0;
	int depth = 0;
	for (char *p = line; *p; p++) {
		if (inq) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == q)
				inq = false;
			continue;
		}
		if (*p == '"' || *p == '\'' || *p == '`') {
			inq = true;
			q = *p;
		} else if (*p == '{') {
			depth++;
		} else if (*p == '}') {
			depth--;
		} else if (isspace((unsigned char)*p) && depth == 0) {
			*p = 0;
			p++;
			while (*p && isspace((unsigned char)*p))
				p++;
			return p;
		}
	}
	return line + strlen(line);
}

static int parse_labels(arena_t *a, const char *desc, labels_t *out, char *why, size_t whyn)
{
	matcher_t *ms;
	size_t n;
	err_t err = {0};
	if (!strcmp(desc, "{}")) {
		*out = (labels_t){NULL, 0};
		return 0;
	}
	if (selector_parse(str_c(desc), &ms, &n, &err)) {
		snprintf(why, whyn, "bad series description %s: %s", desc, err.msg);
		return -1;
	}
	labels_t ls = {ARENA_NEW_ARRAY(a, label_t, n ? n : 1), 0};
	for (size_t i = 0; i < n; i++) {
		ls.v[ls.n].name = (str_t){arena_strndup(a, ms[i].name.p, ms[i].name.n), ms[i].name.n};
		ls.v[ls.n].value = (str_t){arena_strndup(a, ms[i].value.p, ms[i].value.n), ms[i].value.n};
		ls.n++;
	}
	selector_free(ms, n);
	labels_normalize(&ls);
	*out = ls;
	return 0;
}

static bool parse_num(const char *s, size_t n, double *v)
{
	return n > 0 && str_to_double((str_t){s, n}, v);
}

static double stale_nan(void)
{
	uint64_t b = 0x7ff0000000000002ull;
	double d;
	memcpy(&d, &b, 8);
	return d;
}

/* Expand the value notation into samples; returns -1 on syntax error. */
static int load_values(memstore_t *m, const labels_t *ls, const char *vals, int64_t step, char *why, size_t whyn)
{
	const char *p = vals;
	int64_t idx = 0;
	while (*p) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *s = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		size_t n = (size_t)(p - s);
		char tok[128];
		if (n >= sizeof tok) {
			snprintf(why, whyn, "value token too long");
			return -1;
		}
		memcpy(tok, s, n);
		tok[n] = 0;
		if (tok[0] == '_') {
			if (n == 1) {
				idx++;
				continue;
			}
			int64_t times;
			if (tok[1] != 'x' || !str_to_i64(str_c(tok + 2), &times)) {
				snprintf(why, whyn, "bad value %s", tok);
				return -1;
			}
			idx += times;
			continue;
		}
		/* base value: optional sign, then number / Inf / NaN / stale */
		size_t i = 0;
		if (tok[i] == '+' || tok[i] == '-')
			i++;
		size_t bstart = 0;
		if (!strncasecmp(tok + i, "inf", 3) || !strncasecmp(tok + i, "nan", 3)) {
			i += 3;
		} else if (!strncmp(tok + i, "stale", 5)) {
			i += 5;
		} else {
			while (isdigit((unsigned char)tok[i]) || tok[i] == '.')
				i++;
			if (tok[i] == 'e' || tok[i] == 'E') {
				size_t k = i + 1;
				if (tok[k] == '+' || tok[k] == '-')
					k++;
				if (isdigit((unsigned char)tok[k])) {
					while (isdigit((unsigned char)tok[k]))
						k++;
					i = k;
				}
			}
		}
		double base;
		bool stale = !strncmp(tok + bstart + ((tok[0] == '+' || tok[0] == '-') ? 1 : 0), "stale", 5);
		if (stale)
			base = stale_nan();
		else if (!parse_num(tok, i, &base)) {
			snprintf(why, whyn, "bad value %s", tok);
			return -1;
		}
		double inc = 0;
		int64_t times = 0;
		if (tok[i] == '+' || tok[i] == '-') {
			size_t k = i + 1;
			while (tok[k] && tok[k] != 'x')
				k++;
			if (!parse_num(tok + i, k - i, &inc) || tok[k] != 'x' || !str_to_i64(str_c(tok + k + 1), &times)) {
				snprintf(why, whyn, "bad value %s", tok);
				return -1;
			}
		} else if (tok[i] == 'x') {
			if (!str_to_i64(str_c(tok + i + 1), &times)) {
				snprintf(why, whyn, "bad value %s", tok);
				return -1;
			}
		} else if (tok[i]) {
			snprintf(why, whyn, "bad value %s", tok);
			return -1;
		}
		double v = base;
		for (int64_t k = 0; k <= times; k++) {
			memstore_add(m, ls, idx * step, v);
			idx++;
			if (!stale)
				v += inc;
		}
	}
	return 0;
}

static bool almost_equal(double a, double b)
{
	const double eps = 0.000001, min_normal = 2.2250738585072014e-308;
	if (isnan(a) && isnan(b))
		return true;
	if (a == b)
		return true;
	double diff = fabs(a - b);
	if (a == 0 || b == 0 || diff < min_normal)
		return diff < eps * min_normal;
	return diff / (fabs(a) + fabs(b)) < eps;
}

static void fmt_ls(buf_t *b, const labels_t *ls)
{
	labels_format(b, ls);
}

/* Compare a vector result (series with one point each) with expectations. */
static int compare(const promql_result_t *r, bool is_scalar_result, double scalar, expect_t *ex, size_t nex,
		   bool has_scalar_expect, double sexp, bool ordered, char *why, size_t whyn)
{
	if (has_scalar_expect) {
		if (!is_scalar_result) {
			snprintf(why, whyn, "expected scalar result, got vector/matrix");
			return -1;
		}
		if (!almost_equal(scalar, sexp)) {
			snprintf(why, whyn, "expected scalar %.17g but got %.17g", sexp, scalar);
			return -1;
		}
		return 0;
	}
	if (is_scalar_result) {
		snprintf(why, whyn, "received scalar result %.17g, expected vector", scalar);
		return -1;
	}
	for (size_t j = 0; j < nex; j++)
		ex[j].matched = false;
	for (size_t i = 0; i < r->nseries; i++) {
		const promql_series_t *s = &r->series[i];
		size_t j;
		for (j = 0; j < nex; j++)
			if (labels_eq(&ex[j].ls, &s->ls))
				break;
		if (j == nex) {
			buf_t b;
			buf_init(&b);
			fmt_ls(&b, &s->ls);
			snprintf(why, whyn, "unexpected metric %s in result (value %.17g)", b.p, s->v[0]);
			buf_release(&b);
			return -1;
		}
		if (ordered && j != i) {
			buf_t b;
			buf_init(&b);
			fmt_ls(&b, &s->ls);
			snprintf(why, whyn, "expected metric %s with %g at position %zu but was at %zu", b.p, ex[j].v, j + 1, i + 1);
			buf_release(&b);
			return -1;
		}
		if (!almost_equal(ex[j].v, s->v[0])) {
			buf_t b;
			buf_init(&b);
			fmt_ls(&b, &s->ls);
			snprintf(why, whyn, "expected %.17g for %s but got %.17g", ex[j].v, b.p, s->v[0]);
			buf_release(&b);
			return -1;
		}
		ex[j].matched = true;
	}
	for (size_t j = 0; j < nex; j++)
		if (!ex[j].matched) {
			buf_t b;
			buf_init(&b);
			fmt_ls(&b, &ex[j].ls);
			snprintf(why, whyn, "expected metric %s with %.17g not found", b.p, ex[j].v);
			buf_release(&b);
			return -1;
		}
	return 0;
}

/* The expression's selectors and subqueries (outside subqueries) pinned with "@ ts", as 2.42's
 * atModifierTestCases does; start()/end() are replaced too. */
static void pin_at(promql_expr_t *e, int64_t ts)
{
	switch (e->kind) {
	case PROMQL_VECTOR_SEL:
		if (e->u.vs.mods.at_kind != PROMQL_AT_TS)
			e->u.vs.mods = (promql_mods_t){e->u.vs.mods.offset, PROMQL_AT_TS, ts};
		break;
	case PROMQL_MATRIX_SEL:
		pin_at(e->u.ms.vs, ts);
		break;
	case PROMQL_SUBQUERY: /* its inner selectors stay as they are */
		if (e->u.sq.mods.at_kind != PROMQL_AT_TS)
			e->u.sq.mods = (promql_mods_t){e->u.sq.mods.offset, PROMQL_AT_TS, ts};
		break;
	case PROMQL_PAREN:
		pin_at(e->u.paren.expr, ts);
		break;
	case PROMQL_UNARY:
		pin_at(e->u.unary.expr, ts);
		break;
	case PROMQL_BINARY:
		pin_at(e->u.bin.lhs, ts);
		pin_at(e->u.bin.rhs, ts);
		break;
	case PROMQL_CALL:
		for (size_t i = 0; i < e->u.call.nargs; i++)
			pin_at(e->u.call.args[i], ts);
		break;
	case PROMQL_AGGR:
		if (e->u.aggr.param)
			pin_at(e->u.aggr.param, ts);
		pin_at(e->u.aggr.expr, ts);
		break;
	default:
		break;
	}
}

/* 2.42's AtModifierUnsafeFunctions: results depend on the evaluation time even with every selector
 * pinned, so the harness generates no @ variants for expressions calling them. */
static bool has_unsafe(const promql_expr_t *e)
{
	static const char *const unsafe[] = {"days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour",
					     "minute", "month", "year", "predict_linear", "time", "timestamp"};
	switch (e->kind) {
	case PROMQL_MATRIX_SEL:
		return false;
	case PROMQL_SUBQUERY:
		return has_unsafe(e->u.sq.expr);
	case PROMQL_PAREN:
		return has_unsafe(e->u.paren.expr);
	case PROMQL_UNARY:
		return has_unsafe(e->u.unary.expr);
	case PROMQL_BINARY:
		return has_unsafe(e->u.bin.lhs) || has_unsafe(e->u.bin.rhs);
	case PROMQL_CALL:
		for (size_t i = 0; i < ARRAY_LEN(unsafe); i++)
			if (!strcmp(e->u.call.func->name, unsafe[i]))
				return true;
		for (size_t i = 0; i < e->u.call.nargs; i++)
			if (has_unsafe(e->u.call.args[i]))
				return true;
		return false;
	case PROMQL_AGGR:
		return (e->u.aggr.param && has_unsafe(e->u.aggr.param)) || has_unsafe(e->u.aggr.expr);
	default:
		return false;
	}
}

static bool pinnable(const char *expr)
{
	arena_t a;
	arena_init(&a, 0);
	promql_expr_t *e;
	err_t err = {0};
	/* a parse error has no variants (2.42 returns the parse error before generating any) */
	bool ok = promql_parse(&a, expr, strlen(expr), &e, &err) == 0 && !has_unsafe(e);
	arena_release(&a);
	return ok;
}

/* One instant evaluation at `at` (with pin, of the expression pinned to "@ pin_ts") and its range-mode
 * cross-check over [at-1m, at+1m]. Returns 0 when the result matches the expectations. */
static int run_variant(memstore_t *m, const promql_opts_t *opts_in, const char *expr, bool pin, int64_t pin_ts,
		       int64_t at, bool fail,
		       bool ordered, expect_t *ex, size_t nex, bool has_scalar, double sexp, char *why, size_t whyn)
{
	promql_opts_t opts = *opts_in;
	promql_expr_t *pe = NULL;
	arena_t qa;
	arena_init(&qa, 0);
	promql_result_t res;
	err_t qerr = {0};
	int rc;
	if (pin) {
		rc = promql_parse(&qa, expr, strlen(expr), &pe, &qerr);
		if (rc == 0) {
			pin_at(pe, pin_ts);
			rc = promql_eval(&opts, memstore_queryable(m), &qa, pe, at, at, 0, &res, &qerr);
		}
	} else {
		rc = promql_query(&opts, memstore_queryable(m), &qa, str_c(expr), at, at, 0, &res, &qerr);
	}
	int ok = 0;
	if (fail) {
		if (rc == 0) {
			snprintf(why, whyn, "expected error evaluating query %s but got none", expr);
			ok = -1;
		}
	} else if (rc) {
		snprintf(why, whyn, "error evaluating query %s: %s", expr, qerr.msg);
		ok = -1;
	} else if (res.type == PROMQL_TYPE_MATRIX || res.type == PROMQL_TYPE_STRING) {
		snprintf(why, whyn, "received range result on instant evaluation");
		ok = -1;
	} else {
		ok = compare(&res, res.type == PROMQL_TYPE_SCALAR, res.scalar, ex, nex, has_scalar, sexp, ordered, why, whyn);
		if (ok == 0 && !ordered) {
			/* range mode: [t-1m, t+1m] step 1m, compare the point at t */
			arena_t ra;
			arena_init(&ra, 0);
			promql_result_t rr;
			err_t rerr = {0};
			int rc2 = pin ? promql_eval(&opts, memstore_queryable(m), &ra, pe, at - 60000, at + 60000, 60000, &rr, &rerr)
				      : promql_query(&opts, memstore_queryable(m), &ra, str_c(expr), at - 60000, at + 60000,
						     60000, &rr, &rerr);
			if (rc2) {
				snprintf(why, whyn, "error evaluating query %s in range mode: %s", expr, rerr.msg);
				ok = -1;
			} else {
				promql_result_t vec = {.type = PROMQL_TYPE_VECTOR};
				vec.series = ARENA_NEW_ARRAY(&ra, promql_series_t, rr.nseries + 1);
				for (size_t s = 0; s < rr.nseries; s++)
					for (size_t k = 0; k < rr.series[s].n; k++)
						if (rr.series[s].t[k] == at) {
							promql_series_t *o = &vec.series[vec.nseries++];
							*o = rr.series[s];
							o->t = rr.series[s].t + k;
							o->v = rr.series[s].v + k;
							o->n = 1;
							break;
						}
				if (res.type == PROMQL_TYPE_SCALAR)
					ok = compare(&vec, true, vec.nseries ? vec.series[0].v[0] : NAN, ex, nex, has_scalar, sexp, false, why, whyn);
				else
					ok = compare(&vec, false, 0, ex, nex, has_scalar, sexp, false, why, whyn);
				if (ok)
					strncat(why, " (range mode)", whyn - strlen(why) - 1);
			}
			arena_release(&ra);
		}
	}
	arena_release(&qa);
	return ok;
}

static int run_file(const char *path, const char *name, int *npass, int *nfail)
{
	size_t n;
	char **lines = read_lines(path, &n);
	if (!lines) {
		printf("FAIL promqltest:%s: cannot read\n", name);
		(*nfail)++;
		return -1;
	}
	memstore_t *m = memstore_new();
	arena_t la;
	arena_init(&la, 0);
	promql_opts_t opts = {0};
	for (size_t i = 0; i < n; i++) {
		char *l = lines[i];
		if (!*l)
			continue;
		char why[1024] = "";
		if (!strncmp(l, "load ", 5)) {
			int64_t step;
			err_t err = {0};
			if (duration_parse(str_trim(str_c(l + 5)), &step, &err)) {
				printf("FAIL promqltest:%s:%zu: bad load step: %s\n", name, i + 1, err.msg);
				(*nfail)++;
				continue;
			}
			while (i + 1 < n && lines[i + 1][0]) {
				i++;
				char *ln = xstrdup(lines[i]);
				char *vals = split_desc(ln);
				labels_t ls;
				if (parse_labels(&la, ln, &ls, why, sizeof why) ||
				    load_values(m, &ls, vals, step, why, sizeof why)) {
					printf("FAIL promqltest:%s:%zu: %s\n", name, i + 1, why);
					(*nfail)++;
				}
				free(ln);
			}
			continue;
		}
		if (!strcmp(l, "clear")) {
			memstore_clear(m);
			continue;
		}
		bool fail = false, ordered = false;
		const char *rest;
		if (!strncmp(l, "eval_fail instant at ", 21)) {
			fail = true;
			rest = l + 21;
		} else if (!strncmp(l, "eval_ordered instant at ", 24)) {
			ordered = true;
			rest = l + 24;
		} else if (!strncmp(l, "eval instant at ", 16)) {
			rest = l + 16;
		} else {
			printf("FAIL promqltest:%s:%zu: unknown command: %s\n", name, i + 1, l);
			(*nfail)++;
			continue;
		}
		size_t line_no = i + 1;
		const char *sp = strchr(rest, ' ');
		int64_t at;
		err_t err = {0};
		if (!sp || duration_parse((str_t){rest, (size_t)(sp - rest)}, &at, &err)) {
			printf("FAIL promqltest:%s:%zu: bad eval time\n", name, line_no);
			(*nfail)++;
			continue;
		}
		const char *expr = sp + 1;
		/* expectations */
		expect_t ex[256];
		size_t nex = 0;
		bool has_scalar = false;
		double sexp = 0;
		bool bad = false;
		while (i + 1 < n && lines[i + 1][0]) {
			i++;
			double v;
			if (str_to_double(str_c(lines[i]), &v)) {
				has_scalar = true;
				sexp = v;
				break;
			}
			char *ln = xstrdup(lines[i]);
			char *vals = split_desc(ln);
			if (nex == 256 || parse_labels(&la, ln, &ex[nex].ls, why, sizeof why) ||
			    !str_to_double(str_trim(str_c(vals)), &ex[nex].v)) {
				if (!why[0])
					snprintf(why, sizeof why, "bad expectation line: %s", lines[i]);
				bad = true;
			}
			nex++;
			free(ln);
		}
		if (bad) {
			printf("FAIL promqltest:%s:%zu: %s\n", name, line_no, why);
			(*nfail)++;
			continue;
		}
		int ok = run_variant(m, &opts, expr, false, 0, at, fail, ordered, ex, nex, has_scalar, sexp, why, sizeof why);
		/* Then, like 2.42's harness, the @-pinned variants: every selector and subquery not inside a
		 * subquery gets "@ <t>" and the same result is expected at eval times -10t, 0, t/5, t, 10t. */
		if (ok == 0 && pinnable(expr)) {
			int64_t ets[5] = {-10 * at, 0, at / 5, at, 10 * at};
			if (at == 0) {
				int64_t z[5] = {0, 10, 100, 1000, 10000};
				memcpy(ets, z, sizeof ets);
			}
			for (int k = 0; k < 5 && ok == 0; k++) {
				ok = run_variant(m, &opts, expr, true, at, ets[k], fail, ordered, ex, nex, has_scalar, sexp, why,
						 sizeof why);
				if (ok) {
					char tmp[sizeof why];
					snprintf(tmp, sizeof tmp, "%s (@ %lld pinned, evaluated at %lld)", why, (long long)at,
						 (long long)ets[k]);
					memcpy(why, tmp, sizeof why);
				}
			}
		}
		if (ok == 0) {
			printf("PASS promqltest:%s:%zu\n", name, line_no);
			(*npass)++;
		} else {
			printf("FAIL promqltest:%s:%zu: %s\n", name, line_no, why);
			(*nfail)++;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	arena_release(&la);
	memstore_free(m);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends dir/<*.test> (sorted) to paths; 0, or -1 when dir cannot be read. */
static int add_dir(const char *dir, char **paths, size_t *np, size_t cap)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	size_t first = *np;
	struct dirent *de;
	while ((de = readdir(d)) && *np < cap) {
		size_t l = strlen(de->d_name);
		if (l > 5 && !strcmp(de->d_name + l - 5, ".test")) {
			char p[4096];
			snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
			paths[(*np)++] = xstrdup(p);
		}
	}
	closedir(d);
	qsort(paths + first, *np - first, sizeof paths[0], cmp_names);
	return 0;
}

int main(int argc, char **argv)
{
	const char *def = getenv("PROMQL_TESTDATA");
	char *args_def[] = {argv[0], (char *)def, NULL};
	if (argc < 2) {
		if (!def || !*def) {
			printf("FAIL promqltest: no test scripts (give DIR or FILE.test, or set PROMQL_TESTDATA)\n");
			return 1;
		}
		argc = 2;
		argv = args_def;
	}
	char *paths[256];
	size_t np = 0;
	for (int i = 1; i < argc && np < 256; i++) {
		size_t l = strlen(argv[i]);
		if (l > 5 && !strcmp(argv[i] + l - 5, ".test"))
			paths[np++] = xstrdup(argv[i]);
		else if (add_dir(argv[i], paths, &np, 256)) {
			printf("FAIL promqltest: cannot open %s\n", argv[i]);
			return 1;
		}
	}
	if (np == 0) {
		printf("FAIL promqltest: no *.test files in %s\n", argv[1]);
		return 1;
	}
	int tp = 0, tf = 0;
	for (size_t i = 0; i < np; i++) {
		const char *name = strrchr(paths[i], '/');
		name = name ? name + 1 : paths[i];
		int p = 0, f = 0;
		run_file(paths[i], name, &p, &f);
		printf("%-24s %4d/%d passed\n", name, p, p + f);
		tp += p;
		tf += f;
		free(paths[i]);
	}
	printf("total: %d/%d eval statements passed\n", tp, tp + tf);
	return tf ? 1 : 0;
}
