/*
 * sdconfig.c — see sdconfig.h.
 */
#include "rule/sdconfig.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "base/str.h"
#include "net/httpcfg.h"

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int bad(err_t *err, const char *what, yaml_node_t *n, const char *msg, const char *detail)
{
	return err_set(err, ERR_INVALID, "%s: line %zu: %s%s", what, n ? n->start_mark.line + 1 : 1, msg,
	               detail ? detail : "");
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	buf_t b = BUF_INIT;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	if (!b.p)
		buf_puts(&b, "");
	return buf_detach(&b, len);
}

static int strings_of(yaml_document_t *d, yaml_node_t *v, strlist_t *out, const char *what, err_t *err)
{
	if (v->type != YAML_SEQUENCE_NODE)
		return bad(err, what, v, "expected a list of strings", NULL);
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		const char *s = scalar(yaml_document_get_node(d, *it));
		if (!s)
			return bad(err, what, v, "expected a list of strings", NULL);
		strlist_push(out, s);
	}
	return 0;
}

static int parse_group(yaml_document_t *d, yaml_node_t *n, sdcfg_group_t *g, const char *what, err_t *err)
{
	memset(g, 0, sizeof *g);
	g->scheme = xstrdup("http");
	g->path_prefix = xstrdup("");
	g->api_version = xstrdup("v2");
	if (n->type != YAML_MAPPING_NODE)
		return bad(err, what, n, "each entry must be a mapping", NULL);
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key), *v = yaml_document_get_node(d, p->value);
		const char *ks = scalar(k), *vs = scalar(v);
		if (!ks)
			return bad(err, what, k, "bad key", NULL);
		if (!strcmp(ks, "static_configs")) {
			if (strings_of(d, v, &g->statics, what, err))
				return ERR_INVALID;
		} else if (!strcmp(ks, "file_sd_configs")) {
			if (v->type != YAML_SEQUENCE_NODE)
				return bad(err, what, v, "file_sd_configs must be a list", NULL);
			for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
				yaml_node_t *fc = yaml_document_get_node(d, *it);
				if (fc->type != YAML_MAPPING_NODE)
					return bad(err, what, fc, "file_sd_configs entries must be mappings", NULL);
				for (yaml_node_pair_t *q = fc->data.mapping.pairs.start; q < fc->data.mapping.pairs.top; q++) {
					const char *fk = scalar(yaml_document_get_node(d, q->key));
					yaml_node_t *fv = yaml_document_get_node(d, q->value);
					if (fk && !strcmp(fk, "files")) {
						if (strings_of(d, fv, &g->sd_files, what, err))
							return ERR_INVALID;
					} else if (!fk || strcmp(fk, "refresh_interval") != 0) {
						return bad(err, what, fc, "file_sd_configs: unknown field ", fk ? fk : "?");
					}
				}
			}
		} else if (!strcmp(ks, "http_config")) {
			httpcfg_free(g->http);
			if (httpcfg_parse_node(d, v, what, &g->http, err))
				return ERR_INVALID;
		} else if (!vs) {
			return bad(err, what, v, "expected a string for ", ks);
		} else if (!strcmp(ks, "scheme")) {
			if (strcmp(vs, "http") && strcmp(vs, "https"))
				return bad(err, what, v, "scheme must be http or https, not ", vs);
			free(g->scheme);
			g->scheme = xstrdup(vs);
		} else if (!strcmp(ks, "path_prefix")) {
			free(g->path_prefix);
			g->path_prefix = xstrdup(vs);
		} else if (!strcmp(ks, "timeout")) {
			if (duration_parse(str_c(vs), &g->timeout_ms, err))
				return bad(err, what, v, "bad timeout ", vs);
		} else if (!strcmp(ks, "api_version")) {
			if (strcmp(vs, "v1") && strcmp(vs, "v2"))
				return bad(err, what, v, "api_version must be v1 or v2, not ", vs);
			if (!strcmp(vs, "v1"))
				return bad(err, what, v, "api_version v1 was removed from Alertmanager 0.27; use v2", NULL);
			free(g->api_version);
			g->api_version = xstrdup(vs);
		} else {
			return bad(err, what, k, "unknown field ", ks);
		}
	}
	return 0;
}

int sdcfg_parse(const char *yaml, size_t len, const char *what, bool alertmanagers, sdcfg_group_t **out, size_t *n,
                err_t *err)
{
	*out = NULL;
	*n = 0;
	yaml_parser_t p;
	yaml_document_t d;
	if (!yaml_parser_initialize(&p))
		abort();
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&p, &d)) {
		int rc = err_set(err, ERR_INVALID, "%s: line %zu: %s", what, p.problem_mark.line + 1,
		                 p.problem ? p.problem : "YAML syntax error");
		yaml_parser_delete(&p);
		return rc;
	}
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&d), *list = root;
	if (root && alertmanagers) {
		list = NULL;
		if (root->type != YAML_MAPPING_NODE) {
			rc = bad(err, what, root, "expected a mapping with alertmanagers", NULL);
			goto out;
		}
		for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
			const char *ks = scalar(yaml_document_get_node(&d, pr->key));
			if (!ks || strcmp(ks, "alertmanagers") != 0) {
				rc = bad(err, what, yaml_document_get_node(&d, pr->key), "unknown field ", ks ? ks : "?");
				goto out;
			}
			list = yaml_document_get_node(&d, pr->value);
		}
	}
	if (!list || (list->type == YAML_SCALAR_NODE && !*scalar(list)))
		goto out;
	if (list->type != YAML_SEQUENCE_NODE) {
		rc = bad(err, what, list, "expected a list of endpoint configurations", NULL);
		goto out;
	}
	size_t cnt = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	*out = xcalloc(cnt + 1, sizeof **out);
	for (size_t i = 0; i < cnt; i++) {
		rc = parse_group(&d, yaml_document_get_node(&d, list->data.sequence.items.start[i]), &(*out)[i], what, err);
		(*n)++;
		if (rc)
			break;
	}
	if (rc) {
		sdcfg_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
out:
	yaml_document_delete(&d);
	yaml_parser_delete(&p);
	return rc;
}

void sdcfg_free(sdcfg_group_t *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(g[i].scheme);
		free(g[i].path_prefix);
		free(g[i].api_version);
		httpcfg_free(g[i].http);
		strlist_free(&g[i].statics);
		strlist_free(&g[i].sd_files);
	}
	free(g);
}

int sdcfg_from_url(const char *addr, sdcfg_group_t *g, err_t *err)
{
	memset(g, 0, sizeof *g);
	const char *s = addr;
	const char *scheme = "http";
	if (!strncmp(s, "http://", 7))
		s += 7;
	else if (!strncmp(s, "https://", 8)) {
		s += 8;
		scheme = "https";
	} else if (strstr(s, "://") || !strncmp(s, "dns", 3))
		return err_set(err, ERR_INVALID, "%s: only http:// and https:// addresses are supported (no DNS SD)", addr);
	const char *slash = strchr(s, '/');
	size_t hn = slash ? (size_t)(slash - s) : strlen(s);
	if (!hn)
		return err_set(err, ERR_INVALID, "%s: no host", addr);
	g->scheme = xstrdup(scheme);
	g->api_version = xstrdup("v2");
	g->path_prefix = xstrdup(slash ? slash : "");
	char *host = xstrndup(s, hn);
	strlist_push(&g->statics, host);
	free(host);
	return 0;
}

static void push_url(const sdcfg_group_t *g, const char *target, strlist_t *urls)
{
	buf_t b = BUF_INIT;
	const char *pp = g->path_prefix ? g->path_prefix : "";
	size_t pn = strlen(pp);
	while (pn && pp[pn - 1] == '/')
		pn--;
	buf_printf(&b, "%s://%s", g->scheme, target);
	if (pn && pp[0] != '/')
		buf_putc(&b, '/');
	buf_append(&b, pp, pn);
	strlist_push(urls, b.p);
	buf_release(&b);
}

static int sd_file_targets(const char *path, const sdcfg_group_t *g, strlist_t *urls, err_t *err)
{
	size_t len;
	char *s = read_file(path, &len);
	if (!s)
		return err_errno(err, "read %s", path);
	yaml_parser_t p;
	yaml_document_t d;
	if (!yaml_parser_initialize(&p))
		abort();
	yaml_parser_set_input_string(&p, (const unsigned char *)s, len);
	int rc = 0;
	if (!yaml_parser_load(&p, &d)) {
		rc = err_set(err, ERR_INVALID, "%s: line %zu: %s", path, p.problem_mark.line + 1, p.problem ? p.problem : "");
		yaml_parser_delete(&p);
		free(s);
		return rc;
	}
	yaml_node_t *root = yaml_document_get_root_node(&d);
	if (root && root->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = root->data.sequence.items.start; it < root->data.sequence.items.top; it++) {
			yaml_node_t *tg = yaml_document_get_node(&d, *it);
			if (tg->type != YAML_MAPPING_NODE) {
				rc = err_set(err, ERR_INVALID, "%s: target groups must be mappings", path);
				break;
			}
			for (yaml_node_pair_t *q = tg->data.mapping.pairs.start; q < tg->data.mapping.pairs.top; q++) {
				const char *k = scalar(yaml_document_get_node(&d, q->key));
				yaml_node_t *v = yaml_document_get_node(&d, q->value);
				if (k && !strcmp(k, "targets") && v->type == YAML_SEQUENCE_NODE)
					for (yaml_node_item_t *t = v->data.sequence.items.start; t < v->data.sequence.items.top; t++) {
						const char *ts = scalar(yaml_document_get_node(&d, *t));
						if (ts)
							push_url(g, ts, urls);
					}
			}
		}
	} else if (root && !(root->type == YAML_SCALAR_NODE && !*scalar(root))) {
		rc = err_set(err, ERR_INVALID, "%s: expected a list of target groups", path);
	}
	yaml_document_delete(&d);
	yaml_parser_delete(&p);
	free(s);
	return rc;
}

int sdcfg_resolve(const sdcfg_group_t *g, strlist_t *urls, err_t *err)
{
	int rc = 0;
	for (size_t i = 0; i < g->statics.n; i++)
		push_url(g, g->statics.v[i], urls);
	for (size_t i = 0; i < g->sd_files.n; i++) {
		glob_t gl;
		if (glob(g->sd_files.v[i], 0, NULL, &gl) == 0)
			for (size_t j = 0; j < gl.gl_pathc; j++)
				if (sd_file_targets(gl.gl_pathv[j], g, urls, err))
					rc = -1;
		globfree(&gl);
	}
	return rc;
}
