/*
 * bucket_relabel.c — keep/drop relabel rules over block external labels (see bucket_relabel.h).
 */
#include "block/bucket_relabel.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "model/matcher.h"

enum action { ACT_KEEP, ACT_DROP, ACT_HASHMOD };

typedef struct rule {
	enum action action;
	char *target;     /* hashmod */
	uint64_t modulus; /* hashmod */
	char **src;
	size_t nsrc;
	char *sep;
	matcher_t re;
} rule_t;

struct bucket_relabel {
	rule_t *v;
	size_t n;
};

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int at(err_t *err, const char *what, yaml_node_t *n, const char *msg, const char *detail)
{
	return err_set(err, ERR_INVALID, "%s:%zu:%zu: %s%s%s", what, n ? n->start_mark.line + 1 : 1,
		       n ? n->start_mark.column + 1 : 1, msg, detail ? ": " : "", detail ? detail : "");
}

static void rule_release(rule_t *r)
{
	for (size_t i = 0; i < r->nsrc; i++)
		free(r->src[i]);
	free(r->src);
	free(r->sep);
	free(r->target);
	matcher_release(&r->re);
}

static int parse_rule(yaml_document_t *doc, yaml_node_t *n, const char *what, rule_t *r, err_t *err)
{
	if (n->type != YAML_MAPPING_NODE)
		return at(err, what, n, "relabel rule must be a mapping", NULL);
	const char *action = "replace", *regex = "(.*)";
	yaml_node_t *action_node = n;
	r->sep = xstrdup(";");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
		const char *ks = scalar(k);
		if (!ks)
			return at(err, what, k, "bad key", NULL);
		if (strcmp(ks, "action") == 0 && scalar(v)) {
			action = scalar(v);
			action_node = v;
		} else if (strcmp(ks, "regex") == 0 && scalar(v)) {
			regex = scalar(v);
		} else if (strcmp(ks, "separator") == 0 && scalar(v)) {
			free(r->sep);
			r->sep = xstrdup(scalar(v));
		} else if (strcmp(ks, "source_labels") == 0 && v->type == YAML_SEQUENCE_NODE) {
			for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
				const char *s = scalar(yaml_document_get_node(doc, *it));
				if (!s)
					return at(err, what, v, "source_labels must be a list of label names", NULL);
				r->src = xreallocarray(r->src, r->nsrc + 1, sizeof *r->src);
				r->src[r->nsrc++] = xstrdup(s);
			}
		} else if (strcmp(ks, "target_label") == 0 && scalar(v)) {
			free(r->target);
			r->target = xstrdup(scalar(v));
		} else if (strcmp(ks, "modulus") == 0 && scalar(v)) {
			char *end;
			unsigned long long m = strtoull(scalar(v), &end, 10);
			if (*end || m == 0)
				return at(err, what, v, "modulus must be a positive integer", scalar(v));
			r->modulus = m;
		} else if (strcmp(ks, "replacement") == 0) {
			/* meaningful only for actions we reject below */
		} else {
			return at(err, what, k, "unknown or malformed key", ks);
		}
	}
	if (strcmp(action, "keep") == 0) {
		r->action = ACT_KEEP;
	} else if (strcmp(action, "drop") == 0) {
		r->action = ACT_DROP;
	} else if (strcmp(action, "hashmod") == 0) {
		r->action = ACT_HASHMOD;
		if (!r->target || !*r->target || !r->modulus)
			return at(err, what, action_node, "hashmod needs target_label and modulus", NULL);
	} else {
		return at(err, what, action_node, "unsupported relabel action for block selection (keep, drop, hashmod)",
			  action);
	}
	err_t e2 = {0};
	if (matcher_init(&r->re, MATCH_RE, STR("regex"), str_c(regex), &e2))
		return at(err, what, n, "bad regex", e2.msg);
	return 0;
}

int bucket_relabel_parse(const char *yaml, size_t len, const char *what, bucket_relabel_t **out, err_t *err)
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
	bucket_relabel_t *r = xcalloc(1, sizeof *r);
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root && root->type == YAML_SEQUENCE_NODE) {
		size_t n = (size_t)(root->data.sequence.items.top - root->data.sequence.items.start);
		r->v = xcalloc(n + 1, sizeof *r->v);
		for (size_t i = 0; i < n && !rc; i++) {
			rc = parse_rule(&doc, yaml_document_get_node(&doc, root->data.sequence.items.start[i]), what,
					&r->v[i], err);
			r->n = i + 1;
		}
	} else if (root && !(root->type == YAML_SCALAR_NODE && !*scalar(root))) {
		rc = at(err, what, root, "expected a list of relabel rules", NULL);
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	if (rc) {
		bucket_relabel_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void bucket_relabel_free(bucket_relabel_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rule_release(&r->v[i]);
	free(r->v);
	free(r);
}

/* Prometheus hashmod: the last 8 bytes of md5(value) as a big-endian integer, modulo m. */
static uint64_t hashmod(str_t v, uint64_t m)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dn = 0;
	if (!EVP_Digest(v.p ? v.p : "", v.n, d, &dn, EVP_md5(), NULL) || dn != 16)
		die("relabel: md5 failed");
	uint64_t s = 0;
	for (int i = 8; i < 16; i++)
		s = (s << 8) | d[i];
	return s % m;
}

bool bucket_relabel_keep(void *arg, const labels_t *ls)
{
	bucket_relabel_t *r = arg;
	buf_t b = BUF_INIT;
	arena_t a;
	arena_init(&a, 256);
	labels_t cur = *ls; /* hashmod rules add their target label for the rules after them */
	bool keep = true;
	for (size_t i = 0; i < r->n && keep; i++) {
		rule_t *ru = &r->v[i];
		buf_reset(&b);
		for (size_t k = 0; k < ru->nsrc; k++) {
			if (k)
				buf_puts(&b, ru->sep);
			bool found;
			buf_append_str(&b, labels_get(&cur, str_c(ru->src[k]), &found));
		}
		if (ru->action == ACT_HASHMOD) {
			labels_builder_t lb;
			labels_builder_init(&lb, &a, &cur);
			labels_builder_set(&lb, str_c(ru->target),
					   str_c(arena_printf(&a, "%llu", (unsigned long long)hashmod(buf_str(&b), ru->modulus))));
			cur = labels_builder_finish(&lb);
			continue;
		}
		bool m = matcher_matches(&ru->re, buf_str(&b));
		keep = ru->action == ACT_KEEP ? m : !m;
	}
	arena_release(&a);
	buf_release(&b);
	return keep;
}
