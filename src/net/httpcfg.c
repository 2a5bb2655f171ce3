/*
 * httpcfg.c — Thanos's HTTP client configuration applied to libcurl handles. See httpcfg.h.
 */
#include "net/httpcfg.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/str.h"

typedef struct parse {
	yaml_document_t *doc;
	const char *what;
	httpcfg_t *c;
	err_t *err;
} parse_t;

static int at(parse_t *p, yaml_node_t *n, const char *msg, const char *key)
{
	return err_set(p->err, ERR_INVALID, "%s:%lu:%lu: %s%s%s", p->what,
	               (unsigned long)n->start_mark.line + 1, (unsigned long)n->start_mark.column + 1,
	               key ? key : "", key ? ": " : "", msg);
}

static const char *scalar(yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int str_field(parse_t *p, yaml_node_t *v, const char *key, char **out)
{
	if (!scalar(v))
		return at(p, v, "want a string", key);
	free(*out);
	*out = *scalar(v) ? xstrdup(scalar(v)) : NULL;
	return 0;
}

typedef int (*pair_fn)(parse_t *p, const char *key, yaml_node_t *v);

static int each_pair(parse_t *p, yaml_node_t *map, const char *what, pair_fn fn)
{
	if (map->type == YAML_SCALAR_NODE && !*scalar(map))
		return 0; /* empty */
	if (map->type != YAML_MAPPING_NODE)
		return at(p, map, "want a mapping", what);
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(p->doc, pr->key),
		            *v = yaml_document_get_node(p->doc, pr->value);
		if (!k || !v || !scalar(k))
			return at(p, map, "keys must be strings", what);
		int rc = fn(p, scalar(k), v);
		if (rc == 1)
			return at(p, k, "unknown key", scalar(k));
		if (rc)
			return rc;
	}
	return 0;
}

static int basic_auth_pair(parse_t *p, const char *key, yaml_node_t *v)
{
	httpcfg_t *c = p->c;
	if (!strcmp(key, "username"))
		return str_field(p, v, key, &c->username);
	if (!strcmp(key, "password"))
		return str_field(p, v, key, &c->password);
	if (!strcmp(key, "password_file"))
		return str_field(p, v, key, &c->password_file);
	return 1;
}

static int tls_pair(parse_t *p, const char *key, yaml_node_t *v)
{
	httpcfg_t *c = p->c;
	if (!strcmp(key, "ca_file"))
		return str_field(p, v, key, &c->ca_file);
	if (!strcmp(key, "cert_file"))
		return str_field(p, v, key, &c->cert_file);
	if (!strcmp(key, "key_file"))
		return str_field(p, v, key, &c->key_file);
	if (!strcmp(key, "server_name"))
		return str_field(p, v, key, &c->server_name);
	if (!strcmp(key, "insecure_skip_verify")) {
		const char *s = scalar(v);
		if (!s || (strcasecmp(s, "true") && strcasecmp(s, "false")))
			return at(p, v, "want true or false", key);
		c->insecure_skip_verify = !strcasecmp(s, "true");
		return 0;
	}
	return 1;
}

static int transport_pair(parse_t *p, const char *key, yaml_node_t *v)
{
	static const char *known[] = {"max_idle_conns",          "max_idle_conns_per_host",
	                              "idle_conn_timeout",       "response_header_timeout",
	                              "expect_continue_timeout", "max_conns_per_host",
	                              "disable_compression",     "tls_handshake_timeout"};
	(void)p, (void)v;
	for (size_t i = 0; i < ARRAY_LEN(known); i++)
		if (!strcmp(key, known[i]))
			return 0;
	return 1;
}

static int top_pair(parse_t *p, const char *key, yaml_node_t *v)
{
	httpcfg_t *c = p->c;
	if (!strcmp(key, "basic_auth"))
		return each_pair(p, v, key, basic_auth_pair);
	if (!strcmp(key, "tls_config"))
		return each_pair(p, v, key, tls_pair);
	if (!strcmp(key, "transport_config"))
		return each_pair(p, v, key, transport_pair);
	if (!strcmp(key, "bearer_token"))
		return str_field(p, v, key, &c->bearer_token);
	if (!strcmp(key, "bearer_token_file"))
		return str_field(p, v, key, &c->bearer_token_file);
	if (!strcmp(key, "proxy_url"))
		return str_field(p, v, key, &c->proxy_url);
	return 1;
}

/* Parse the mapping at node of doc (an http_config, or with tls_only just a tls_config) into a new
 * configuration and check it. */
static int parse_node(yaml_document_t *doc, yaml_node_t *node, const char *what, bool tls_only, httpcfg_t **out,
                      err_t *err)
{
	httpcfg_t *c = xcalloc(1, sizeof *c);
	parse_t p = {.doc = doc, .what = what, .c = c, .err = err};
	int rc = !node     ? 0
	         : tls_only ? each_pair(&p, node, "tls_config", tls_pair)
	                    : each_pair(&p, node, NULL, top_pair);
	if (!rc && (c->username || c->password || c->password_file) &&
	    (c->bearer_token || c->bearer_token_file))
		rc = err_set(err, ERR_INVALID,
		             "%s: at most one of basic_auth and bearer_token may be configured", what);
	if (!rc && c->password && c->password_file)
		rc = err_set(err, ERR_INVALID,
		             "%s: basic_auth: password and password_file are mutually exclusive", what);
	if (!rc && c->bearer_token && c->bearer_token_file)
		rc = err_set(err, ERR_INVALID,
		             "%s: bearer_token and bearer_token_file are mutually exclusive", what);
	if (!rc && !c->cert_file != !c->key_file)
		rc = err_set(err, ERR_INVALID, "%s: tls_config: cert_file and key_file go together", what);
	const char *files[] = {c->ca_file, c->cert_file, c->key_file, c->password_file, c->bearer_token_file};
	for (size_t i = 0; !rc && i < ARRAY_LEN(files); i++) {
		FILE *f = files[i] ? fopen(files[i], "r") : NULL;
		if (files[i] && !f)
			rc = err_errno(err, "%s: %s", what, files[i]);
		if (f)
			fclose(f);
	}
	if (rc) {
		httpcfg_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int httpcfg_parse(const char *yaml, size_t len, const char *what, httpcfg_t **out, err_t *err)
{
	*out = NULL;
	yaml_parser_t yp;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&yp))
		die("httpcfg: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&yp, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&yp, &doc)) {
		int rc =
		    err_set(err, ERR_INVALID, "%s:%lu:%lu: %s", what, (unsigned long)yp.problem_mark.line + 1,
		            (unsigned long)yp.problem_mark.column + 1, yp.problem ? yp.problem : "bad YAML");
		yaml_parser_delete(&yp);
		return rc;
	}
	int rc = parse_node(&doc, yaml_document_get_root_node(&doc), what, false, out, err);
	yaml_document_delete(&doc);
	yaml_parser_delete(&yp);
	return rc;
}

int httpcfg_parse_node(void *doc, void *node, const char *what, httpcfg_t **out, err_t *err)
{
	*out = NULL;
	return parse_node(doc, node, what, false, out, err);
}

int httpcfg_parse_tls_node(void *doc, void *node, const char *what, httpcfg_t **out, err_t *err)
{
	*out = NULL;
	return parse_node(doc, node, what, true, out, err);
}

void httpcfg_free(httpcfg_t *c)
{
	if (!c)
		return;
	if (c->password)
		memset(c->password, 0, strlen(c->password));
	if (c->bearer_token)
		memset(c->bearer_token, 0, strlen(c->bearer_token));
	char *s[] = {c->username,  c->password, c->password_file, c->bearer_token, c->bearer_token_file,
	             c->proxy_url, c->ca_file,  c->cert_file,     c->key_file,     c->server_name};
	for (size_t i = 0; i < ARRAY_LEN(s); i++)
		free(s[i]);
	free(c);
}

/* A secret file's content without the trailing newline (Prometheus trims whitespace). */
static int read_secret(const char *path, buf_t *out, err_t *err)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return err_errno(err, "%s", path);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(out, chunk, n);
	fclose(f);
	while (out->n &&
	       (out->p[out->n - 1] == '\n' || out->p[out->n - 1] == '\r' || out->p[out->n - 1] == ' '))
		out->p[--out->n] = 0;
	return 0;
}

int httpcfg_apply(const httpcfg_t *c, void *handle, const char *url, void *headers, void *connect_to,
                  err_t *err)
{
	CURL *h = handle;
	struct curl_slist **hdrs = headers, **ct = connect_to;
	if (!c)
		return 0;
	buf_t secret = BUF_INIT;
	int rc = 0;
	if (c->username || c->password || c->password_file) {
		if (c->password_file)
			rc = read_secret(c->password_file, &secret, err);
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, c->username ? c->username : "");
		curl_easy_setopt(h, CURLOPT_PASSWORD,
		                 c->password_file ? secret.p
		                 : c->password    ? c->password
		                                  : "");
	} else if (c->bearer_token || c->bearer_token_file) {
		if (c->bearer_token_file)
			rc = read_secret(c->bearer_token_file, &secret, err);
		buf_t hv = BUF_INIT;
		buf_printf(&hv, "Authorization: Bearer %s",
		           c->bearer_token_file ? secret.p : c->bearer_token);
		*hdrs = curl_slist_append(*hdrs, hv.p);
		memset(hv.p, 0, hv.n);
		buf_release(&hv);
	}
	if (secret.n)
		memset(secret.p, 0, secret.n);
	buf_release(&secret);
	if (c->proxy_url)
		curl_easy_setopt(h, CURLOPT_PROXY, c->proxy_url);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
	}
	if (c->insecure_skip_verify) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->server_name && !rc) {
		/* libcurl checks the URL's host: the URL names server_name, CONNECT_TO sends it to the real
		 * host and port, and Host stays what it was. */
		CURLU *u = curl_url();
		char *host = NULL, *port = NULL, *nurl = NULL;
		if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
		    curl_url_set(u, CURLUPART_HOST, c->server_name, 0) == CURLUE_OK &&
		    curl_url_get(u, CURLUPART_URL, &nurl, 0) == CURLUE_OK) {
			char line[1024];
			snprintf(line, sizeof line, "%s:%s:%s:%s", c->server_name, port, host, port);
			*ct = curl_slist_append(*ct, line);
			curl_easy_setopt(h, CURLOPT_CONNECT_TO, *ct);
			snprintf(line, sizeof line, "Host: %s:%s", host, port);
			*hdrs = curl_slist_append(*hdrs, line);
			curl_easy_setopt(h, CURLOPT_URL, nurl);
		} else {
			rc = err_set(err, ERR_INVALID, "tls_config.server_name: cannot rewrite URL %s", url);
		}
		curl_free(host);
		curl_free(port);
		curl_free(nurl);
		curl_url_cleanup(u);
	}
	return rc;
}
