/*
 * config.c — objstore YAML configuration (see config.h), on libyaml's document API so every node
 * carries its line and column for error messages.
 */
#include "objstore/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "objstore/fs.h"
#include "objstore/s3.h"

typedef struct cfg {
	yaml_document_t *doc;
	const char *src;
	err_t *err;
} cfg_t;

static int at(cfg_t *c, yaml_node_t *n, const char *fmt, const char *key, const char *detail)
{
	char what[256];
	snprintf(what, sizeof what, fmt, key, detail);
	return err_set(c->err, ERR_INVALID, "objstore config %s:%lu:%lu: %s", c->src,
		       (unsigned long)n->start_mark.line + 1, (unsigned long)n->start_mark.column + 1, what);
}

static const char *scalar(yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool is_null(yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = scalar(n);
	return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	       strcmp(v, "NULL") == 0;
}

static int get_str(cfg_t *c, yaml_node_t *n, const char *key, char **out)
{
	if (is_null(n)) {
		free(*out);
		*out = NULL;
		return 0;
	}
	if (n->type != YAML_SCALAR_NODE)
		return at(c, n, "%s: want a string%s", key, "");
	free(*out);
	*out = xstrdup(scalar(n));
	return 0;
}

static int get_bool(cfg_t *c, yaml_node_t *n, const char *key, bool *out)
{
	if (n->type == YAML_SCALAR_NODE) {
		const char *v = scalar(n);
		if (!strcasecmp(v, "true")) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, "false") || is_null(n)) {
			*out = false;
			return 0;
		}
	}
	return at(c, n, "%s: want true or false, got \"%s\"", key, n->type == YAML_SCALAR_NODE ? scalar(n) : "");
}

static int get_int(cfg_t *c, yaml_node_t *n, const char *key, int64_t *out)
{
	if (n->type == YAML_SCALAR_NODE && (str_to_i64(str_c(scalar(n)), out) || (is_null(n) && !(*out = 0))))
		return 0;
	return at(c, n, "%s: want an integer, got \"%s\"", key, n->type == YAML_SCALAR_NODE ? scalar(n) : "");
}

static int get_dur(cfg_t *c, yaml_node_t *n, const char *key, int64_t *ms)
{
	if (n->type != YAML_SCALAR_NODE)
		return at(c, n, "%s: want a duration like 1m30s%s", key, "");
	if (is_null(n)) {
		*ms = 0;
		return 0;
	}
	err_t e = {0};
	if (duration_parse(str_c(scalar(n)), ms, &e) == 0)
		return 0;
	return at(c, n, "%s: %s", key, e.msg);
}

/* Iterate a mapping node: calls fn(c, key, value, arg) for each pair; unknown keys are fn's business. */
typedef int (*pair_fn)(cfg_t *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg);

static int each_pair(cfg_t *c, yaml_node_t *map, const char *what, pair_fn fn, void *arg)
{
	if (is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return at(c, map, "%s: want a mapping%s", what, "");
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		if (!k || !v || k->type != YAML_SCALAR_NODE)
			return at(c, k ? k : map, "%s: keys must be strings%s", what, "");
		int rc = fn(c, scalar(k), k, v, arg);
		if (rc)
			return rc;
	}
	return 0;
}

static int unknown(cfg_t *c, yaml_node_t *k, const char *where)
{
	return at(c, k, "unknown key \"%s\" in %s", scalar(k), where);
}

/* ---- S3 ---- */

static int s3_tls(cfg_t *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	s3_config_t *s = arg;
	if (!strcmp(key, "ca_file"))
		return get_str(c, v, key, &s->ca_file);
	if (!strcmp(key, "cert_file"))
		return get_str(c, v, key, &s->cert_file);
	if (!strcmp(key, "key_file"))
		return get_str(c, v, key, &s->key_file);
	if (!strcmp(key, "server_name"))
		return get_str(c, v, key, &s->server_name);
	if (!strcmp(key, "insecure_skip_verify"))
		return get_bool(c, v, key, &s->insecure_skip_verify);
	return unknown(c, k, "config.http_config.tls_config");
}

static int s3_http(cfg_t *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	s3_config_t *s = arg;
	int64_t ignored_i = 0;
	bool ignored_b = false;
	if (!strcmp(key, "idle_conn_timeout"))
		return get_dur(c, v, key, &s->idle_conn_timeout_ms);
	if (!strcmp(key, "response_header_timeout"))
		return get_dur(c, v, key, &s->response_header_timeout_ms);
	if (!strcmp(key, "tls_handshake_timeout"))
		return get_dur(c, v, key, &s->tls_handshake_timeout_ms);
	if (!strcmp(key, "insecure_skip_verify"))
		return get_bool(c, v, key, &s->insecure_skip_verify);
	if (!strcmp(key, "tls_config"))
		return each_pair(c, v, "tls_config", s3_tls, s);
	/* Accepted for compatibility; libcurl manages these itself. */
	if (!strcmp(key, "expect_continue_timeout"))
		return get_dur(c, v, key, &ignored_i);
	if (!strcmp(key, "max_idle_conns") || !strcmp(key, "max_idle_conns_per_host") ||
	    !strcmp(key, "max_conns_per_host"))
		return get_int(c, v, key, &ignored_i);
	if (!strcmp(key, "disable_compression"))
		return get_bool(c, v, key, &ignored_b);
	return unknown(c, k, "config.http_config");
}

static int s3_sse(cfg_t *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	s3_config_t *s = arg;
	if (!strcmp(key, "type")) {
		int rc = get_str(c, v, key, &s->sse_type);
		if (rc == 0 && s->sse_type && *s->sse_type && strcmp(s->sse_type, "SSE-S3") &&
		    strcmp(s->sse_type, "SSE-KMS"))
			return at(c, v, "sse_config.%s: \"%s\" is not supported (SSE-S3 or SSE-KMS)", key, s->sse_type);
		return rc;
	}
	if (!strcmp(key, "kms_key_id"))
		return get_str(c, v, key, &s->sse_kms_key_id);
	if (!strcmp(key, "kms_encryption_context") || !strcmp(key, "encryption_key"))
		return at(c, k, "sse_config.%s is not supported%s", key, "");
	return unknown(c, k, "config.sse_config");
}

static int s3_key(cfg_t *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	s3_config_t *s = arg;
	bool b = false;
	int64_t i = 0;
	char *ignored = NULL;
	int rc;
	static const struct {
		const char *key;
		size_t off;
	} strs[] = {
		{"bucket", offsetof(s3_config_t, bucket)},
		{"endpoint", offsetof(s3_config_t, endpoint)},
		{"region", offsetof(s3_config_t, region)},
		{"access_key", offsetof(s3_config_t, access_key)},
		{"secret_key", offsetof(s3_config_t, secret_key)},
		{"session_token", offsetof(s3_config_t, session_token)},
		{"list_objects_version", offsetof(s3_config_t, list_objects_version)},
		{"bucket_lookup_type", offsetof(s3_config_t, bucket_lookup_type)},
	};
	for (size_t j = 0; j < ARRAY_LEN(strs); j++)
		if (!strcmp(key, strs[j].key))
			return get_str(c, v, key, (char **)((char *)s + strs[j].off));
	if (!strcmp(key, "insecure"))
		return get_bool(c, v, key, &s->insecure);
	if (!strcmp(key, "signature_version2")) {
		if ((rc = get_bool(c, v, key, &s->signature_version2)) != 0)
			return rc;
		if (s->signature_version2)
			return at(c, v, "%s: true is not supported: Strata signs with AWS Signature Version 4 only%s",
				  key, "");
		return 0;
	}
	if (!strcmp(key, "send_content_md5"))
		return get_bool(c, v, key, &s->send_content_md5);
	if (!strcmp(key, "disable_multipart"))
		return get_bool(c, v, key, &s->disable_multipart);
	if (!strcmp(key, "part_size"))
		return get_int(c, v, key, &s->part_size);
	if (!strcmp(key, "max_retries")) {
		if ((rc = get_int(c, v, key, &i)) != 0)
			return rc;
		if (i < 0 || i > 100)
			return at(c, v, "%s: want 0..100%s", key, "");
		s->max_retries = (int)i;
		return 0;
	}
	if (!strcmp(key, "http_config"))
		return each_pair(c, v, "http_config", s3_http, s);
	if (!strcmp(key, "sse_config"))
		return each_pair(c, v, "sse_config", s3_sse, s);
	if (!strcmp(key, "aws_sdk_auth")) {
		if ((rc = get_bool(c, v, key, &b)) != 0)
			return rc;
		if (b)
			return at(c, v, "%s: true is not supported; use access_key/secret_key or AWS_* environment%s",
				  key, "");
		return 0;
	}
	if (!strcmp(key, "disable_dualstack"))
		return get_bool(c, v, key, &b);
	if (!strcmp(key, "sts_endpoint")) {
		rc = get_str(c, v, key, &ignored);
		bool set = ignored && *ignored;
		free(ignored);
		return rc ? rc : set ? at(c, v, "%s is not supported%s", key, "") : 0;
	}
	if (!strcmp(key, "put_user_metadata") || !strcmp(key, "trace"))
		return v->type == YAML_MAPPING_NODE || is_null(v) ? 0 : at(c, v, "%s: want a mapping%s", key, "");
	return unknown(c, k, "config (S3)");
}

static int fs_key(cfg_t *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	if (!strcmp(key, "directory"))
		return get_str(c, v, key, (char **)arg);
	return unknown(c, k, "config (FILESYSTEM)");
}

typedef struct top {
	yaml_node_t *type, *config, *prefix;
} top_t;

static int top_key(cfg_t *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	top_t *t = arg;
	if (!strcmp(key, "type"))
		t->type = v;
	else if (!strcmp(key, "config"))
		t->config = v;
	else if (!strcmp(key, "prefix"))
		t->prefix = v;
	else
		return unknown(c, k, "the top level (want type, config, prefix)");
	return 0;
}

static int build(cfg_t *c, yaml_node_t *root, bucket_t **out)
{
	top_t t = {0};
	int rc = each_pair(c, root, "objstore config", top_key, &t);
	if (rc)
		return rc;
	if (!t.type || t.type->type != YAML_SCALAR_NODE || !*scalar(t.type))
		return at(c, t.type ? t.type : root, "%s%s", "missing \"type\" (FILESYSTEM or S3)", "");
	char *prefix = NULL;
	if (t.prefix && (rc = get_str(c, t.prefix, "prefix", &prefix)) != 0)
		return rc;
	const char *type = scalar(t.type);
	yaml_node_t *cfgn = t.config;
	bucket_t *b = NULL;
	if (!strcasecmp(type, "FILESYSTEM")) {
		char *dir = NULL;
		if (cfgn)
			rc = each_pair(c, cfgn, "config", fs_key, &dir);
		if (rc == 0 && (!dir || !*dir))
			rc = at(c, cfgn ? cfgn : t.type, "%s%s", "FILESYSTEM needs config.directory", "");
		if (rc == 0)
			rc = fs_bucket_new(dir, &b, c->err);
		free(dir);
	} else if (!strcasecmp(type, "S3")) {
		s3_config_t s;
		s3_config_init(&s);
		if (cfgn)
			rc = each_pair(c, cfgn, "config", s3_key, &s);
		if (rc == 0) {
			rc = s3_bucket_new(&s, &b, c->err);
			if (rc)
				err_wrap(c->err, "objstore config %s", c->src);
		}
		s3_config_release(&s);
	} else {
		rc = at(c, t.type, "type \"%s\" is not supported%s (FILESYSTEM, S3)", type, "");
	}
	if (rc == 0) {
		*out = bucket_with_prefix(b, prefix);
	}
	free(prefix);
	return rc;
}

static int from_config(const char *yaml, size_t len, const char *src, bucket_t **out, err_t *err)
{
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p))
		die("objstore: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	int rc;
	if (!yaml_parser_load(&p, &doc)) {
		rc = err_set(err, ERR_INVALID, "objstore config %s:%lu:%lu: %s%s%s", src,
			     (unsigned long)p.problem_mark.line + 1, (unsigned long)p.problem_mark.column + 1,
			     p.problem ? p.problem : "YAML syntax error", p.context ? " " : "", p.context ? p.context : "");
		yaml_parser_delete(&p);
		return rc;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	cfg_t c = {&doc, src, err};
	if (!root)
		rc = err_set(err, ERR_INVALID, "objstore config %s: empty", src);
	else
		rc = build(&c, root, out);
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return rc;
}

int objstore_from_config(const char *yaml, size_t len, bucket_t **out, err_t *err)
{
	return from_config(yaml, len, "<inline>", out, err);
}

int objstore_from_config_file(const char *path, bucket_t **out, err_t *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_errno(err, "objstore config %s", path);
	buf_t b = BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_append(&b, chunk, n);
		if (b.n > (1 << 20))
			break;
	}
	int bad = ferror(f);
	fclose(f);
	int rc;
	if (bad)
		rc = err_set(err, ERR_IO, "objstore config %s: read error", path);
	else if (b.n > (1 << 20))
		rc = err_set(err, ERR_INVALID, "objstore config %s: larger than 1 MiB", path);
	else
		rc = from_config(b.p, b.n, path, out, err);
	buf_release(&b);
	return rc;
}

int objstore_from_flags(const char *config_yaml, const char *config_file, bucket_t **out, err_t *err)
{
	if (config_yaml && *config_yaml)
		return objstore_from_config(config_yaml, strlen(config_yaml), out, err);
	if (config_file && *config_file)
		return objstore_from_config_file(config_file, out, err);
	return err_set(err, ERR_INVALID, "objstore: one of --objstore.config or --objstore.config-file is required");
}
