/*
 * relabel.c — Prometheus relabel_config: YAML parsing, checks, application.
 */
#include "model/relabel.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "model/matcher.h"

typedef enum action {
	A_REPLACE,
	A_KEEP,
	A_DROP,
	A_HASHMOD,
	A_LABELMAP,
	A_LABELDROP,
	A_LABELKEEP,
	A_LOWERCASE,
	A_UPPERCASE,
	A_KEEPEQUAL,
	A_DROPEQUAL,
} action_t;

static const char *const action_names[] = {"replace",   "keep",      "drop",      "hashmod",
                                           "labelmap",  "labeldrop", "labelkeep", "lowercase",
                                           "uppercase", "keepequal", "dropequal"};

typedef struct rule {
	action_t action;
	char **src;
	size_t nsrc;
	char *sep, *target, *replacement;
	bool regex_set, sep_set, target_set, repl_set, mod_set;
	uint64_t modulus;
	matcher_capre_t *re;
} rule_t;

struct relabel {
	rule_t *v;
	size_t n;
};

/* ---- parsing ---- */

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int bad(err_t *err, const char *what, size_t i, yaml_node_t *n, const char *fmt, const char *detail)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, detail ? detail : "");
	return err_set(err, ERR_INVALID, "%s: relabel rule %zu (line %zu): %s", what, i + 1,
	               n ? n->start_mark.line + 1 : 1, msg);
}

static void rule_release(rule_t *r)
{
	for (size_t i = 0; i < r->nsrc; i++)
		free(r->src[i]);
	free(r->src);
	free(r->sep);
	free(r->target);
	free(r->replacement);
	matcher_capre_free(r->re);
}

static bool has_template(const char *s)
{
	return strchr(s, '$') != NULL;
}

static int parse_rule(yaml_document_t *doc, yaml_node_t *n, const char *what, size_t idx, rule_t *r,
                      err_t *err)
{
	if (n->type != YAML_MAPPING_NODE)
		return bad(err, what, idx, n, "a relabel rule must be a mapping%s", NULL);
	const char *regex = "(.*)";
	r->sep = xstrdup(";");
	r->replacement = xstrdup("$1");
	r->target = xstrdup("");
	r->action = A_REPLACE;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key),
		            *v = yaml_document_get_node(doc, p->value);
		const char *ks = scalar(k), *vs = scalar(v);
		if (!ks)
			return bad(err, what, idx, k, "bad key%s", NULL);
		if (!strcmp(ks, "source_labels")) {
			if (v->type != YAML_SEQUENCE_NODE)
				return bad(err, what, idx, v, "source_labels must be a list of label names%s",
				           NULL);
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				const char *s = scalar(yaml_document_get_node(doc, *it));
				if (!s || !label_name_valid(str_c(s)))
					return bad(err, what, idx, v, "%s is not a valid label name",
					           s ? s : "?");
				r->src = xreallocarray(r->src, r->nsrc + 1, sizeof *r->src);
				r->src[r->nsrc++] = xstrdup(s);
			}
			continue;
		}
		if (!vs)
			return bad(err, what, idx, v, "%s must be a scalar", ks);
		if (!strcmp(ks, "separator")) {
			free(r->sep);
			r->sep = xstrdup(vs);
			r->sep_set = true;
		} else if (!strcmp(ks, "target_label")) {
			free(r->target);
			r->target = xstrdup(vs);
			r->target_set = true;
		} else if (!strcmp(ks, "regex")) {
			regex = vs;
			r->regex_set = true;
		} else if (!strcmp(ks, "replacement")) {
			free(r->replacement);
			r->replacement = xstrdup(vs);
			r->repl_set = true;
		} else if (!strcmp(ks, "modulus")) {
			char *end;
			unsigned long long m = strtoull(vs, &end, 10);
			if (!*vs || *end)
				return bad(err, what, idx, v, "modulus %s is not a number", vs);
			r->modulus = m;
			r->mod_set = true;
		} else if (!strcmp(ks, "action")) {
			size_t a;
			for (a = 0; a < ARRAY_LEN(action_names); a++)
				if (!strcasecmp(vs, action_names[a]))
					break;
			if (a == ARRAY_LEN(action_names))
				return bad(err, what, idx, v, "unknown relabel action \"%s\"", vs);
			r->action = (action_t)a;
		} else {
			return bad(err, what, idx, k, "unknown field %s", ks);
		}
	}
	err_t e2 = {0};
	if (matcher_capre_new(&r->re, str_c(regex), &e2))
		return bad(err, what, idx, n, "%s", e2.msg);
	/* Prometheus's checks (relabel.Config.Validate) */
	const char *an = action_names[r->action];
	bool needs_target = r->action == A_REPLACE || r->action == A_HASHMOD || r->action == A_LOWERCASE ||
	                    r->action == A_UPPERCASE || r->action == A_KEEPEQUAL || r->action == A_DROPEQUAL;
	if (needs_target && !*r->target)
		return bad(err, what, idx, n,
		           "relabel configuration for %s action requires 'target_label' value", an);
	if (r->action == A_REPLACE && !has_template(r->target) && !label_name_valid(str_c(r->target)))
		return bad(err, what, idx, n, "\"%s\" is invalid 'target_label' for replace action",
		           r->target);
	if ((r->action == A_LOWERCASE || r->action == A_UPPERCASE || r->action == A_HASHMOD ||
	     r->action == A_KEEPEQUAL || r->action == A_DROPEQUAL) &&
	    !label_name_valid(str_c(r->target)))
		return bad(err, what, idx, n, "\"%s\" is invalid 'target_label'", r->target);
	if (r->action == A_HASHMOD && r->modulus == 0)
		return bad(err, what, idx, n, "relabel configuration for hashmod requires non-zero modulus%s",
		           NULL);
	if ((r->action == A_LABELDROP || r->action == A_LABELKEEP) &&
	    (r->nsrc || r->target_set || r->mod_set || r->sep_set || r->repl_set))
		return bad(err, what, idx, n, "%s action requires only 'regex', and no other fields", an);
	if ((r->action == A_KEEPEQUAL || r->action == A_DROPEQUAL) &&
	    (r->regex_set || r->mod_set || r->sep_set || r->repl_set))
		return bad(err, what, idx, n,
		           "%s action requires only 'source_labels' and `target_label`, and no other fields",
		           an);
	if (r->action == A_LABELMAP && !has_template(r->replacement) &&
	    !label_name_valid(str_c(r->replacement)))
		return bad(err, what, idx, n, "\"%s\" is invalid 'replacement' for labelmap action",
		           r->replacement);
	return 0;
}

int relabel_parse(const char *yaml, size_t len, const char *what, relabel_t **out, err_t *err)
{
	*out = NULL;
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p))
		die("relabel: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&p, &doc)) {
		int rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: %s", what, p.problem_mark.line + 1,
		                 p.problem_mark.column + 1, p.problem ? p.problem : "YAML syntax error");
		yaml_parser_delete(&p);
		return rc;
	}
	relabel_t *r = xcalloc(1, sizeof *r);
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root && root->type == YAML_SEQUENCE_NODE) {
		size_t n = (size_t)(root->data.sequence.items.top - root->data.sequence.items.start);
		r->v = xcalloc(n + 1, sizeof *r->v);
		for (size_t i = 0; i < n && !rc; i++) {
			r->n = i + 1;
			rc =
			    parse_rule(&doc, yaml_document_get_node(&doc, root->data.sequence.items.start[i]),
			               what, i, &r->v[i], err);
		}
	} else if (root && !(root->type == YAML_SCALAR_NODE && !*scalar(root))) {
		rc = err_set(err, ERR_INVALID, "%s: expected a list of relabel_config rules", what);
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	if (rc) {
		relabel_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void relabel_free(relabel_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rule_release(&r->v[i]);
	free(r->v);
	free(r);
}

size_t relabel_len(const relabel_t *r)
{
	return r ? r->n : 0;
}

/* ---- applying ---- */

#define MAX_GROUPS 32

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Go's Regexp.Expand of tmpl with the groups of a match. */
static void expand(buf_t *out, const char *tmpl, const matcher_capre_t *re, const str_t *g, int ng)
{
	for (const char *p = tmpl; *p;) {
		if (*p != '$') {
			buf_putc(out, *p++);
			continue;
		}
		p++;
		if (*p == '$') {
			buf_putc(out, '$');
			p++;
			continue;
		}
		const char *ns, *ne;
		if (*p == '{') {
			ns = p + 1;
			ne = ns;
			while (name_char(*ne))
				ne++;
			if (*ne != '}' || ne == ns) { /* not a valid ${name}: Go writes the '$' literally */
				buf_putc(out, '$');
				continue;
			}
			p = ne + 1;
		} else {
			ns = p;
			ne = ns;
			while (name_char(*ne))
				ne++;
			if (ne == ns) {
				buf_putc(out, '$');
				continue;
			}
			p = ne;
		}
		str_t name = str_from(ns, (size_t)(ne - ns));
		int idx = -1;
		bool digits = true;
		for (size_t i = 0; i < name.n; i++)
			digits &= name.p[i] >= '0' && name.p[i] <= '9';
		if (digits && name.n < 9)
			idx = atoi(name.p);
		else
			idx = matcher_capre_group(re, name);
		if (idx >= 0 && idx < ng && idx < MAX_GROUPS)
			buf_append_str(out, g[idx]);
	}
}

static str_t keep_str(arena_t *a, buf_t *b)
{
	return str_from(arena_memdup(a, b->n ? b->p : "", b->n), b->n);
}

/* Value of name in the builder ("" when absent). */
static str_t bget(const labels_builder_t *b, str_t name)
{
	for (size_t i = 0; i < b->n; i++)
		if (str_eq(b->v[i].name, name))
			return b->v[i].value;
	return STR_NULL;
}

static uint64_t md5_sum64(str_t v)
{
	unsigned char d[16];
	unsigned int dl = 16;
	EVP_Digest(v.n ? v.p : "", v.n, d, &dl, EVP_md5(), NULL);
	uint64_t s = 0;
	for (int i = 8; i < 16; i++) /* Go's sum64 over the 16 bytes keeps the last 8 */
		s = (s << 8) | d[i];
	return s;
}

bool relabel_apply(const relabel_t *r, arena_t *a, const labels_t *in, labels_t *out)
{
	if (!r || !r->n) {
		*out = *in;
		return true;
	}
	labels_builder_t b;
	labels_builder_init(&b, a, in);
	buf_t val = BUF_INIT, tmp = BUF_INIT;
	bool keep = true;
	for (size_t k = 0; k < r->n && keep; k++) {
		const rule_t *ru = &r->v[k];
		buf_reset(&val);
		for (size_t i = 0; i < ru->nsrc; i++) {
			if (i)
				buf_puts(&val, ru->sep);
			buf_append_str(&val, bget(&b, str_c(ru->src[i])));
		}
		str_t v = buf_str(&val);
		str_t g[MAX_GROUPS];
		int ng;
		switch (ru->action) {
		case A_DROP:
			if (matcher_capre_match(ru->re, v, g, MAX_GROUPS) >= 0)
				keep = false;
			break;
		case A_KEEP:
			if (matcher_capre_match(ru->re, v, g, MAX_GROUPS) < 0)
				keep = false;
			break;
		case A_DROPEQUAL:
			if (str_eq(bget(&b, str_c(ru->target)), v))
				keep = false;
			break;
		case A_KEEPEQUAL:
			if (!str_eq(bget(&b, str_c(ru->target)), v))
				keep = false;
			break;
		case A_REPLACE: {
			ng = matcher_capre_match(ru->re, v, g, MAX_GROUPS);
			if (ng < 0)
				break;
			buf_reset(&tmp);
			expand(&tmp, ru->target, ru->re, g, ng);
			str_t target = keep_str(a, &tmp);
			if (!label_name_valid(target)) {
				labels_builder_del(&b, str_c(ru->target));
				break;
			}
			buf_reset(&tmp);
			expand(&tmp, ru->replacement, ru->re, g, ng);
			if (!tmp.n) {
				labels_builder_del(&b, target);
				break;
			}
			labels_builder_set(&b, target, keep_str(a, &tmp));
			break;
		}
		case A_LOWERCASE:
		case A_UPPERCASE: {
			buf_reset(&tmp);
			for (size_t i = 0; i < v.n; i++)
				buf_putc(&tmp,
				         (char)(ru->action == A_LOWERCASE ? tolower((unsigned char)v.p[i])
				                                          : toupper((unsigned char)v.p[i])));
			labels_builder_set(&b, str_c(ru->target), keep_str(a, &tmp));
			break;
		}
		case A_HASHMOD: {
			char num[32];
			snprintf(num, sizeof num, "%llu", (unsigned long long)(md5_sum64(v) % ru->modulus));
			labels_builder_set(&b, str_c(ru->target),
			                   str_from(arena_strdup(a, num), strlen(num)));
			break;
		}
		case A_LABELMAP: {
			size_t n = b.n;
			label_t *cur = arena_memdup(a, b.v, (n ? n : 1) * sizeof(label_t));
			for (size_t i = 0; i < n; i++) {
				ng = matcher_capre_match(ru->re, cur[i].name, g, MAX_GROUPS);
				if (ng < 0)
					continue;
				buf_reset(&tmp);
				expand(&tmp, ru->replacement, ru->re, g, ng);
				labels_builder_set(&b, keep_str(a, &tmp), cur[i].value);
			}
			break;
		}
		case A_LABELDROP:
		case A_LABELKEEP: {
			size_t n = b.n;
			label_t *cur = arena_memdup(a, b.v, (n ? n : 1) * sizeof(label_t));
			for (size_t i = 0; i < n; i++) {
				bool m = matcher_capre_match(ru->re, cur[i].name, g, 1) >= 0;
				if (m == (ru->action == A_LABELDROP))
					labels_builder_del(&b, cur[i].name);
			}
			break;
		}
		}
	}
	buf_release(&val);
	buf_release(&tmp);
	if (!keep)
		return false;
	*out = labels_builder_finish(&b);
	return out->n > 0;
}
