/*
 * limits.c — the limits config: strict YAML parsing, per-tenant inheritance, hot reload.
 */
#include "receive/limits.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/flags.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/vec.h"

/* -1 = not set (inherit) */
typedef struct lim {
	int64_t size_bytes, series, samples, head_series;
} lim_t;

typedef struct tenant_lim {
	char *name;
	lim_t l;
} tenant_lim_t;

struct rcv_limits {
	int64_t max_concurrency;
	lim_t def;
	VEC(tenant_lim_t) tenants;
};

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

typedef struct pctx {
	yaml_document_t *doc;
	const char *what;
	err_t *err;
} pctx_t;

static int at(pctx_t *c, yaml_node_t *n, const char *msg, const char *detail)
{
	return err_set(c->err, ERR_INVALID, "%s:%zu:%zu: %s%s%s", c->what, n ? n->start_mark.line + 1 : 1,
	               n ? n->start_mark.column + 1 : 1, msg, detail ? ": " : "", detail ? detail : "");
}

static int int_of(pctx_t *c, yaml_node_t *v, bool bytes, int64_t *out)
{
	const char *s = scalar(v);
	if (!s)
		return at(c, v, "expected a number", NULL);
	if (bytes) {
		err_t e2 = {0};
		if (bytes_parse(s, out, &e2))
			return at(c, v, "bad size", s);
		return 0;
	}
	char *end;
	long long x = strtoll(s, &end, 10);
	if (!*s || *end || x < 0)
		return at(c, v, "expected a non-negative integer", s);
	*out = x;
	return 0;
}

/* {request: {size_bytes_limit, series_limit, samples_limit}, head_series_limit} */
static int parse_lim(pctx_t *c, yaml_node_t *n, lim_t *l)
{
	*l = (lim_t){-1, -1, -1, -1};
	if (n->type == YAML_SCALAR_NODE && !*scalar(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return at(c, n, "expected a mapping", NULL);
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key),
		            *v = yaml_document_get_node(c->doc, p->value);
		const char *ks = scalar(k);
		int rc = 0;
		if (ks && !strcmp(ks, "head_series_limit")) {
			rc = int_of(c, v, false, &l->head_series);
		} else if (ks && !strcmp(ks, "request")) {
			if (v->type == YAML_SCALAR_NODE && !*scalar(v))
				continue;
			if (v->type != YAML_MAPPING_NODE)
				return at(c, v, "request: expected a mapping", NULL);
			for (yaml_node_pair_t *q = v->data.mapping.pairs.start;
			     !rc && q < v->data.mapping.pairs.top; q++) {
				yaml_node_t *k2 = yaml_document_get_node(c->doc, q->key),
				            *v2 = yaml_document_get_node(c->doc, q->value);
				const char *k2s = scalar(k2);
				if (k2s && !strcmp(k2s, "size_bytes_limit"))
					rc = int_of(c, v2, true, &l->size_bytes);
				else if (k2s && !strcmp(k2s, "series_limit"))
					rc = int_of(c, v2, false, &l->series);
				else if (k2s && !strcmp(k2s, "samples_limit"))
					rc = int_of(c, v2, false, &l->samples);
				else
					rc = at(c, k2, "unknown field in request limits", k2s);
			}
		} else {
			rc = at(c, k, "unknown field", ks);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_write(pctx_t *c, yaml_node_t *n, rcv_limits_t *l)
{
	if (n->type != YAML_MAPPING_NODE)
		return at(c, n, "write: expected a mapping", NULL);
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key),
		            *v = yaml_document_get_node(c->doc, p->value);
		const char *ks = scalar(k);
		int rc = 0;
		if (ks && !strcmp(ks, "global")) {
			if (v->type == YAML_SCALAR_NODE && !*scalar(v))
				continue;
			if (v->type != YAML_MAPPING_NODE)
				return at(c, v, "global: expected a mapping", NULL);
			for (yaml_node_pair_t *q = v->data.mapping.pairs.start;
			     !rc && q < v->data.mapping.pairs.top; q++) {
				yaml_node_t *k2 = yaml_document_get_node(c->doc, q->key),
				            *v2 = yaml_document_get_node(c->doc, q->value);
				const char *k2s = scalar(k2);
				if (k2s && !strcmp(k2s, "max_concurrency"))
					rc = int_of(c, v2, false, &l->max_concurrency);
				else if (k2s && (!strcmp(k2s, "meta_monitoring_url") ||
				                 !strcmp(k2s, "meta_monitoring_limit_query") ||
				                 !strcmp(k2s, "meta_monitoring_http_client")))
					continue; /* head series are counted locally: no meta-monitoring
					             needed */
				else
					rc = at(c, k2, "unknown field in global", k2s);
			}
		} else if (ks && !strcmp(ks, "default")) {
			rc = parse_lim(c, v, &l->def);
		} else if (ks && !strcmp(ks, "tenants")) {
			if (v->type == YAML_SCALAR_NODE && !*scalar(v))
				continue;
			if (v->type != YAML_MAPPING_NODE)
				return at(c, v, "tenants: expected a mapping of tenant names", NULL);
			for (yaml_node_pair_t *q = v->data.mapping.pairs.start;
			     !rc && q < v->data.mapping.pairs.top; q++) {
				yaml_node_t *k2 = yaml_document_get_node(c->doc, q->key);
				if (!scalar(k2))
					return at(c, k2, "bad tenant name", NULL);
				tenant_lim_t *t = VEC_ADD(&l->tenants);
				t->name = xstrdup(scalar(k2));
				rc = parse_lim(c, yaml_document_get_node(c->doc, q->value), &t->l);
			}
		} else {
			rc = at(c, k, "unknown field in write", ks);
		}
		if (rc)
			return rc;
	}
	return 0;
}

int rcv_limits_parse(const char *yaml, size_t len, const char *what, rcv_limits_t **out, err_t *err)
{
	*out = NULL;
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p))
		die("limits: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&p, &doc)) {
		int rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: %s", what, p.problem_mark.line + 1,
		                 p.problem_mark.column + 1, p.problem ? p.problem : "YAML syntax error");
		yaml_parser_delete(&p);
		return rc;
	}
	rcv_limits_t *l = xcalloc(1, sizeof *l);
	l->def = (lim_t){0, 0, 0, 0};
	pctx_t c = {&doc, what, err};
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root && root->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *q = root->data.mapping.pairs.start;
		     !rc && q < root->data.mapping.pairs.top; q++) {
			yaml_node_t *k = yaml_document_get_node(&doc, q->key);
			const char *ks = scalar(k);
			if (ks && !strcmp(ks, "write"))
				rc = parse_write(&c, yaml_document_get_node(&doc, q->value), l);
			else
				rc = at(&c, k, "unknown field", ks);
		}
	} else if (root && !(root->type == YAML_SCALAR_NODE && !*scalar(root))) {
		rc = at(&c, root, "expected a mapping with a write section", NULL);
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	/* the default's unset fields mean unlimited */
	if (l->def.size_bytes < 0)
		l->def.size_bytes = 0;
	if (l->def.series < 0)
		l->def.series = 0;
	if (l->def.samples < 0)
		l->def.samples = 0;
	if (l->def.head_series < 0)
		l->def.head_series = 0;
	if (rc) {
		rcv_limits_free(l);
		return rc;
	}
	*out = l;
	return 0;
}

void rcv_limits_free(rcv_limits_t *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->tenants.n; i++)
		free(l->tenants.v[i].name);
	VEC_FREE(&l->tenants);
	free(l);
}

int64_t rcv_limits_max_concurrency(const rcv_limits_t *l)
{
	return l ? l->max_concurrency : 0;
}

void rcv_limits_for(const rcv_limits_t *l, str_t tenant, rcv_tenant_limits_t *out)
{
	memset(out, 0, sizeof *out);
	if (!l)
		return;
	lim_t x = l->def;
	for (size_t i = 0; i < l->tenants.n; i++) {
		if (!str_eq(str_c(l->tenants.v[i].name), tenant))
			continue;
		const lim_t *t = &l->tenants.v[i].l;
		if (t->size_bytes >= 0)
			x.size_bytes = t->size_bytes;
		if (t->series >= 0)
			x.series = t->series;
		if (t->samples >= 0)
			x.samples = t->samples;
		if (t->head_series >= 0)
			x.head_series = t->head_series;
		break;
	}
	*out = (rcv_tenant_limits_t){x.size_bytes, x.series, x.samples, x.head_series};
}

/* ---- limiter ---- */

struct rcv_limiter {
	pthread_mutex_t mu;
	rcv_limits_t *cur;
	char *file;
	uint64_t hash;
	metric_child_t *m_reloads, *m_errors, *m_hash;
};

static int read_file(const char *path, buf_t *out, err_t *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_errno(err, "read limits config %s", path);
	char tmp[8192];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_append(out, tmp, n);
	int rc = ferror(f) ? err_errno(err, "read limits config %s", path) : 0;
	fclose(f);
	return rc;
}

int rcv_limiter_new(rcv_limiter_t **out, const char *yaml, const char *file, err_t *err)
{
	rcv_limiter_t *lm = xcalloc(1, sizeof *lm);
	pthread_mutex_init(&lm->mu, NULL);
	lm->m_reloads =
	    metric_with(metrics_counter("thanos_receive_limits_config_reload_total",
	                                "How many times the limit configuration was reloaded", NULL));
	lm->m_errors =
	    metric_with(metrics_counter("thanos_receive_limits_config_reload_err_total",
	                                "How many times the limit configuration failed reloading.", NULL));
	lm->m_hash = metric_with(metrics_gauge("thanos_receive_limits_config_hash",
	                                       "Hash of the currently loaded limits configuration.", NULL));
	int rc = 0;
	if (file && *file) {
		lm->file = xstrdup(file);
		rc = rcv_limiter_reload(lm, err);
		rc = rc < 0 ? rc : 0;
	} else if (yaml && *yaml) {
		rc = rcv_limits_parse(yaml, strlen(yaml), "--receive.limits-config", &lm->cur, err);
		lm->hash = hash_bytes(yaml, strlen(yaml));
		metric_set(lm->m_hash, (double)(lm->hash >> 12));
	}
	if (rc) {
		rcv_limiter_free(lm);
		return rc;
	}
	*out = lm;
	return 0;
}

void rcv_limiter_free(rcv_limiter_t *lm)
{
	if (!lm)
		return;
	rcv_limits_free(lm->cur);
	free(lm->file);
	pthread_mutex_destroy(&lm->mu);
	free(lm);
}

int rcv_limiter_reload(rcv_limiter_t *lm, err_t *err)
{
	if (!lm->file)
		return 0;
	buf_t b = BUF_INIT;
	int rc = read_file(lm->file, &b, err);
	uint64_t h = hash_bytes(b.p, b.n);
	if (!rc && h == lm->hash && lm->cur) {
		buf_release(&b);
		return 0;
	}
	rcv_limits_t *nl = NULL;
	if (!rc)
		rc = rcv_limits_parse(b.p, b.n, lm->file, &nl, err);
	buf_release(&b);
	if (rc) {
		metric_inc(lm->m_errors);
		return rc;
	}
	pthread_mutex_lock(&lm->mu);
	rcv_limits_t *old = lm->cur;
	lm->cur = nl;
	lm->hash = h;
	pthread_mutex_unlock(&lm->mu);
	rcv_limits_free(old);
	metric_inc(lm->m_reloads);
	metric_set(lm->m_hash, (double)(h >> 12));
	return 1;
}

void rcv_limiter_get(rcv_limiter_t *lm, str_t tenant, rcv_tenant_limits_t *out)
{
	pthread_mutex_lock(&lm->mu);
	rcv_limits_for(lm->cur, tenant, out);
	pthread_mutex_unlock(&lm->mu);
}

int64_t rcv_limiter_max_concurrency(rcv_limiter_t *lm)
{
	pthread_mutex_lock(&lm->mu);
	int64_t n = rcv_limits_max_concurrency(lm->cur);
	pthread_mutex_unlock(&lm->mu);
	return n;
}
