/*
 * rulefile.c — see rulefile.h. libyaml's document API gives every node its line and column, which
 * is what promtool's messages carry.
 */
#include "rule/rulefile.h"

#include <errno.h>
#include <glob.h>
#include <strings.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "promql/ast.h"
#include "rule/tmpl.h"

typedef struct pctx {
	arena_t *a;
	yaml_document_t *doc;
	strlist_t *errs;
	size_t nerr;
	strlist_t unmarshal; /* "line N: ..." collected into one "yaml: unmarshal errors:" message */
} pctx_t;

static void add_err(pctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_err(pctx_t *c, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	strlist_push(c->errs, msg);
	c->nerr++;
}

static void unmarshal_err(pctx_t *c, yaml_node_t *n, const char *fmt, const char *a1, const char *a2)
{
	char msg[1024], line[1100];
	snprintf(msg, sizeof msg, fmt, a1, a2);
	snprintf(line, sizeof line, "line %zu: %s", n->start_mark.line + 1, msg);
	strlist_push(&c->unmarshal, line);
}

static const char *tag_name(yaml_node_t *n)
{
	if (n->type == YAML_SEQUENCE_NODE)
		return "!!seq";
	if (n->type == YAML_MAPPING_NODE)
		return "!!map";
	return "!!str";
}

static yaml_node_t *node(pctx_t *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

static bool is_null(yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)n->data.scalar.value;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* A string field (yaml.Node in rulefmt): any scalar. */
static bool get_str(pctx_t *c, yaml_node_t *v, str_t *out)
{
	if (v->type != YAML_SCALAR_NODE) {
		unmarshal_err(c, v, "cannot unmarshal %s into string%s", tag_name(v), "");
		return false;
	}
	*out = is_null(v) ? str_from("", 0)
	                  : str_from(arena_strndup(c->a, (const char *)v->data.scalar.value, v->data.scalar.length),
	                             v->data.scalar.length);
	return true;
}

/* model.Duration: errors are not unmarshal errors but end the file (as in Prometheus). */
static bool get_duration(pctx_t *c, yaml_node_t *v, int64_t *ms, bool *fatal)
{
	str_t s;
	if (!get_str(c, v, &s))
		return false;
	if (!s.n) {
		*ms = 0;
		return true;
	}
	err_t err = {0};
	if (duration_parse(s, ms, &err) != 0) {
		add_err(c, "not a valid duration string: \"%.*s\"", (int)s.n, s.p);
		*fatal = true;
		return false;
	}
	return true;
}

static bool get_map(pctx_t *c, yaml_node_t *v, labels_t *out)
{
	*out = (labels_t){0};
	if (is_null(v))
		return true;
	if (v->type != YAML_MAPPING_NODE) {
		unmarshal_err(c, v, "cannot unmarshal %s into map[string]string%s", tag_name(v), "");
		return false;
	}
	size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	out->v = arena_calloc(c->a, n + 1, sizeof(label_t));
	for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
		label_t l;
		if (!get_str(c, node(c, p->key), &l.name) || !get_str(c, node(c, p->value), &l.value))
			return false;
		out->v[out->n++] = l;
	}
	/* sorted by name (stable for duplicate keys; YAML duplicate keys are the last one's) */
	for (size_t i = 1; i < out->n; i++)
		for (size_t j = i; j > 0 && str_cmp(out->v[j - 1].name, out->v[j].name) > 0; j--) {
			label_t t = out->v[j];
			out->v[j] = out->v[j - 1];
			out->v[j - 1] = t;
		}
	return true;
}

static bool valid_label_value(str_t v)
{
	return utf8_valid(v);
}

typedef struct pos {
	size_t line, col;
	bool set;
} pos_t;

static pos_t pos_of(yaml_node_t *n)
{
	return (pos_t){n->start_mark.line + 1, n->start_mark.column + 1, true};
}

static void rule_err(pctx_t *c, str_t group, size_t idx, str_t rname, pos_t p, pos_t alt, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void rule_err(pctx_t *c, str_t group, size_t idx, str_t rname, pos_t p, pos_t alt, const char *fmt, ...)
{
	char msg[2048], where[64] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (p.set && alt.set)
		snprintf(where, sizeof where, "%zu:%zu: %zu:%zu: ", p.line, p.col, alt.line, alt.col);
	else if (p.set)
		snprintf(where, sizeof where, "%zu:%zu: ", p.line, p.col);
	buf_t q = BUF_INIT, g = BUF_INIT;
	labels_quote(&q, rname);
	labels_quote(&g, group);
	add_err(c, "%sgroup %.*s, rule %zu, %.*s: %s", where, (int)g.n, g.p, idx, (int)q.n, q.p, msg);
	buf_release(&q);
	buf_release(&g);
}

static bool parse_rule(pctx_t *c, yaml_node_t *n, str_t group, size_t idx, rule_spec_t *r, bool *fatal)
{
	memset(r, 0, sizeof *r);
	r->line = (int)n->start_mark.line + 1;
	if (n->type != YAML_MAPPING_NODE) {
		unmarshal_err(c, n, "cannot unmarshal %s into rulefmt.RuleNode%s", tag_name(n), "");
		return false;
	}
	yaml_node_t *rec = NULL, *alert = NULL, *expr = NULL;
	bool has_for = false, has_kff = false, ok = true;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
		const char *ks = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
		if (!strcmp(ks, "record")) {
			rec = v;
			ok &= get_str(c, v, &r->name);
		} else if (!strcmp(ks, "alert")) {
			alert = v;
			str_t an;
			ok &= get_str(c, v, &an);
			if (an.n || !rec)
				r->name = an;
		} else if (!strcmp(ks, "expr")) {
			expr = v;
			ok &= get_str(c, v, &r->expr);
		} else if (!strcmp(ks, "for")) {
			if (!get_duration(c, v, &r->for_ms, fatal))
				return false;
			has_for = r->for_ms != 0;
		} else if (!strcmp(ks, "keep_firing_for")) {
			if (!get_duration(c, v, &r->keep_firing_for_ms, fatal))
				return false;
			has_kff = r->keep_firing_for_ms != 0;
		} else if (!strcmp(ks, "labels")) {
			ok &= get_map(c, v, &r->labels);
		} else if (!strcmp(ks, "annotations")) {
			ok &= get_map(c, v, &r->annotations);
		} else {
			unmarshal_err(c, k, "field %s not found in type rulefmt.RuleNode%s", ks, "");
			ok = false;
		}
	}
	if (!ok)
		return false;
	str_t recv = {0}, alertv = {0};
	if (rec)
		get_str(c, rec, &recv);
	if (alert)
		get_str(c, alert, &alertv);
	r->alert = alertv.n > 0 && recv.n == 0;
	str_t rname = alertv.n ? alertv : recv;
	r->name = rname;
	pos_t none = {0};
	pos_t prec = rec ? pos_of(rec) : (pos_t){0, 0, true};
	if (recv.n && alertv.n)
		rule_err(c, group, idx, rname, prec, pos_of(alert), "only one of 'record' and 'alert' must be set");
	if (!recv.n && !alertv.n)
		rule_err(c, group, idx, rname, prec, none, "one of 'record' or 'alert' must be set");
	if (!r->expr.n) {
		rule_err(c, group, idx, rname, expr ? pos_of(expr) : (pos_t){0, 0, true}, none,
		         "field 'expr' must be set in rule");
	} else {
		arena_t pa;
		arena_init(&pa, 0);
		promql_expr_t *e;
		err_t err = {0};
		if (promql_parse(&pa, r->expr.p, r->expr.n, &e, &err) != 0)
			rule_err(c, group, idx, rname, pos_of(expr), none, "could not parse expression: %s", err.msg);
		arena_release(&pa);
	}
	if (recv.n) {
		if (r->annotations.n)
			rule_err(c, group, idx, rname, prec, none, "invalid field 'annotations' in recording rule");
		if (has_for)
			rule_err(c, group, idx, rname, prec, none, "invalid field 'for' in recording rule");
		if (has_kff)
			rule_err(c, group, idx, rname, prec, none, "invalid field 'keep_firing_for' in recording rule");
		if (!metric_name_valid(recv))
			rule_err(c, group, idx, rname, prec, none, "invalid recording rule name: %.*s", (int)recv.n, recv.p);
	}
	for (size_t i = 0; i < r->labels.n; i++) {
		label_t *l = &r->labels.v[i];
		if (!label_name_valid(l->name) || str_eq_c(l->name, LABEL_METRIC_NAME))
			rule_err(c, group, idx, rname, none, none, "invalid label name: %.*s", (int)l->name.n, l->name.p);
		if (!valid_label_value(l->value))
			rule_err(c, group, idx, rname, none, none, "invalid label value: %.*s", (int)l->value.n, l->value.p);
	}
	for (size_t i = 0; i < r->annotations.n; i++)
		if (!label_name_valid(r->annotations.v[i].name))
			rule_err(c, group, idx, rname, none, none, "invalid annotation name: %.*s",
			         (int)r->annotations.v[i].name.n, r->annotations.v[i].name.p);
	if (alertv.n) {
		char *an = arena_strndup(c->a, alertv.p, alertv.n);
		for (int pass = 0; pass < 2; pass++) {
			labels_t *m = pass ? &r->annotations : &r->labels;
			for (size_t i = 0; i < m->n; i++) {
				err_t err = {0};
				if (tmpl_alert_check(an, m->v[i].value, &err) != 0) {
					buf_t q = BUF_INIT;
					labels_quote(&q, m->v[i].name);
					rule_err(c, group, idx, rname, none, none, "%s %.*s: %s", pass ? "annotation" : "label",
					         (int)q.n, q.p, err.msg);
					buf_release(&q);
				}
			}
		}
	}
	return true;
}

static void parse_group(pctx_t *c, yaml_node_t *n, bool thanos, group_spec_t *g, bool *fatal)
{
	memset(g, 0, sizeof *g);
	if (n->type != YAML_MAPPING_NODE) {
		unmarshal_err(c, n, "cannot unmarshal %s into rulefmt.RuleGroup%s", tag_name(n), "");
		return;
	}
	yaml_node_t *rules = NULL;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
		const char *ks = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
		if (!strcmp(ks, "name")) {
			get_str(c, v, &g->name);
		} else if (!strcmp(ks, "interval")) {
			if (!get_duration(c, v, &g->interval_ms, fatal))
				return;
		} else if (!strcmp(ks, "limit")) {
			str_t s;
			int64_t lim;
			if (get_str(c, v, &s) && s.n && !str_to_i64(s, &lim))
				unmarshal_err(c, v, "cannot unmarshal !!str `%s` into int%s", arena_strndup(c->a, s.p, s.n), "");
			else if (s.n)
				g->limit = lim;
		} else if (!strcmp(ks, "rules")) {
			rules = v;
		} else if (thanos && !strcmp(ks, "partial_response_strategy")) {
			str_t s;
			if (get_str(c, v, &s)) {
				if (!s.n || (s.n == 5 && !strncasecmp(s.p, "abort", 5)))
					g->strategy = RULE_PR_ABORT;
				else if (s.n == 4 && !strncasecmp(s.p, "warn", 4))
					g->strategy = RULE_PR_WARN;
				else {
					buf_t q = BUF_INIT;
					labels_quote(&q, s);
					add_err(c, "%zu:%zu: group %s: invalid partial_response_strategy %.*s (want warn or abort)",
					        v->start_mark.line + 1, v->start_mark.column + 1,
					        arena_strndup(c->a, g->name.p, g->name.n), (int)q.n, q.p);
					buf_release(&q);
				}
			}
		} else {
			unmarshal_err(c, k, "field %s not found in type rulefmt.RuleGroup%s", ks, "");
		}
	}
	if (!rules || is_null(rules))
		return;
	if (rules->type != YAML_SEQUENCE_NODE) {
		unmarshal_err(c, rules, "cannot unmarshal %s into []rulefmt.RuleNode%s", tag_name(rules), "");
		return;
	}
	size_t nr = (size_t)(rules->data.sequence.items.top - rules->data.sequence.items.start);
	g->rules = arena_calloc(c->a, nr + 1, sizeof *g->rules);
	for (size_t i = 0; i < nr && !*fatal; i++)
		if (parse_rule(c, node(c, rules->data.sequence.items.start[i]), g->name, i + 1, &g->rules[g->nrules], fatal))
			g->nrules++;
}

size_t rulefile_parse(arena_t *a, const char *file, const char *data, size_t len, bool thanos, rule_set_t *set,
                      strlist_t *errs)
{
	pctx_t c = {.a = a, .errs = errs};
	size_t base = errs->n;
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p))
		abort();
	yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
	if (!yaml_parser_load(&p, &doc)) {
		/* go-yaml's numbering: the context's line if any, else the problem's; scanner errors + 1 */
		size_t line = p.context_mark.line ? p.context_mark.line : p.problem_mark.line;
		if (line)
			line += p.error == YAML_SCANNER_ERROR;
		if (line)
			add_err(&c, "yaml: line %zu: %s", line, p.problem ? p.problem : "syntax error");
		else
			add_err(&c, "yaml: %s", p.problem ? p.problem : "syntax error");
		yaml_parser_delete(&p);
		return c.nerr;
	}
	c.doc = &doc;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	group_spec_t *groups = NULL;
	size_t ng = 0;
	bool fatal = false;
	if (root && !is_null(root)) {
		if (root->type != YAML_MAPPING_NODE) {
			unmarshal_err(&c, root, "cannot unmarshal %s into rulefmt.RuleGroups%s", tag_name(root), "");
		} else {
			for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
				yaml_node_t *k = node(&c, pr->key), *v = node(&c, pr->value);
				const char *ks = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
				if (strcmp(ks, "groups") != 0) {
					unmarshal_err(&c, k, "field %s not found in type rulefmt.RuleGroups%s", ks, "");
					continue;
				}
				if (is_null(v))
					continue;
				if (v->type != YAML_SEQUENCE_NODE) {
					unmarshal_err(&c, v, "cannot unmarshal %s into []rulefmt.RuleGroup%s", tag_name(v), "");
					continue;
				}
				size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
				groups = arena_calloc(a, n + 1, sizeof *groups);
				for (size_t i = 0; i < n && !fatal; i++) {
					yaml_node_t *gn = node(&c, v->data.sequence.items.start[i]);
					group_spec_t *g = &groups[ng];
					parse_group(&c, gn, thanos, g, &fatal);
					g->file = str_c(arena_strdup(a, file));
					ng++;
				}
			}
		}
	}
	if (c.unmarshal.n && !fatal) {
		/* decoding failed: promtool reports only that (validation never ran) */
		for (size_t i = base; i < errs->n; i++)
			free(errs->v[i]);
		errs->n = base;
		buf_t b = BUF_INIT;
		buf_puts(&b, "yaml: unmarshal errors:");
		for (size_t i = 0; i < c.unmarshal.n; i++)
			buf_printf(&b, "\n  %s", c.unmarshal.v[i]);
		strlist_push(errs, b.p);
		c.nerr = 1;
		buf_release(&b);
	} else if (!fatal) {
		/* group-level validation after the rules, as rulefmt does it per group in order */
		yaml_node_t *seq = NULL;
		for (yaml_node_pair_t *pr = root ? root->data.mapping.pairs.start : NULL; root && pr < root->data.mapping.pairs.top; pr++)
			if (node(&c, pr->key)->type == YAML_SCALAR_NODE &&
			    !strcmp((const char *)node(&c, pr->key)->data.scalar.value, "groups"))
				seq = node(&c, pr->value);
		for (size_t i = 0; i < ng; i++) {
			yaml_node_t *gn = node(&c, seq->data.sequence.items.start[i]);
			if (!groups[i].name.n)
				add_err(&c, "%zu:%zu: Groupname must not be empty", gn->start_mark.line + 1, gn->start_mark.column + 1);
			for (size_t j = 0; j < i; j++)
				if (groups[i].name.n && str_eq(groups[i].name, groups[j].name)) {
					add_err(&c, "%zu:%zu: groupname: \"%.*s\" is repeated in the same file", gn->start_mark.line + 1,
					        gn->start_mark.column + 1, (int)groups[i].name.n, groups[i].name.p);
					break;
				}
		}
	}
	strlist_free(&c.unmarshal);
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	if (c.nerr == 0 && ng) {
		set->groups = arena_realloc(a, set->groups, set->ngroups * sizeof *set->groups,
		                            (set->ngroups + ng) * sizeof *set->groups);
		memcpy(set->groups + set->ngroups, groups, ng * sizeof *groups);
		set->ngroups += ng;
		for (size_t i = 0; i < ng; i++)
			set->nrules += groups[i].nrules;
	}
	return c.nerr;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t rulefile_load(arena_t *a, const strlist_t *globs, bool thanos, rule_set_t *set, strlist_t *errs)
{
	strlist_t files = {0};
	size_t nerr = 0;
	for (size_t i = 0; i < globs->n; i++) {
		glob_t g;
		int rc = glob(globs->v[i], 0, NULL, &g);
		if (rc == 0) {
			for (size_t j = 0; j < g.gl_pathc; j++)
				strlist_push(&files, g.gl_pathv[j]);
		} else if (rc != GLOB_NOMATCH) {
			char m[1024];
			snprintf(m, sizeof m, "%s: error retrieving rule files", globs->v[i]);
			strlist_push(errs, m);
			nerr++;
		}
		globfree(&g);
	}
	qsort(files.v, files.n, sizeof *files.v, cmp_str);
	for (size_t i = 0; i < files.n; i++) {
		if (i && !strcmp(files.v[i], files.v[i - 1]))
			continue;
		strlist_push(&set->files, files.v[i]);
		FILE *f = fopen(files.v[i], "rb");
		if (!f) {
			char m[1200];
			snprintf(m, sizeof m, "%s: open %s: %s", files.v[i], files.v[i], strerror(errno));
			strlist_push(errs, m);
			nerr++;
			continue;
		}
		buf_t b = BUF_INIT;
		char tmp[8192];
		size_t n;
		while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
			buf_append(&b, tmp, n);
		fclose(f);
		strlist_t fe = {0};
		size_t k = rulefile_parse(a, files.v[i], b.p ? b.p : "", b.n, thanos, set, &fe);
		for (size_t j = 0; j < fe.n; j++) {
			buf_t m = BUF_INIT;
			buf_printf(&m, "%s: %s", files.v[i], fe.v[j]);
			strlist_push(errs, m.p);
			buf_release(&m);
		}
		nerr += k;
		strlist_free(&fe);
		buf_release(&b);
	}
	strlist_free(&files);
	return nerr;
}

void rule_set_release(rule_set_t *set)
{
	strlist_free(&set->files);
}

size_t rulefile_duplicates(const rule_set_t *set, strlist_t *names)
{
	size_t n = 0;
	for (size_t g = 0; g < set->ngroups; g++) {
		const group_spec_t *gs = &set->groups[g];
		for (size_t i = 0; i < gs->nrules; i++) {
			const rule_spec_t *r = &gs->rules[i];
			if (r->alert)
				continue;
			for (size_t j = 0; j < i; j++) {
				const rule_spec_t *o = &gs->rules[j];
				if (!o->alert && str_eq(o->name, r->name) && labels_eq(&o->labels, &r->labels)) {
					char tmp[512];
					snprintf(tmp, sizeof tmp, "%.*s", (int)r->name.n, r->name.p);
					strlist_push(names, tmp);
					n++;
					break;
				}
			}
		}
	}
	return n;
}
