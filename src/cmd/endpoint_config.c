/*
 * endpoint_config.c — --endpoint.sd-config parsing. See endpoint_config.h.
 */
#include "cmd/endpoint_config.h"

#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "base/alloc.h"
#include "base/str.h"

typedef struct parse {
	yaml_document_t *doc;
	const char *what;
	err_t *err;
} parse_t;

static int bad(parse_t *p, yaml_node_t *n, const char *msg, const char *key)
{
	return err_set(p->err, ERR_INVALID, "%s:%lu: %s%s%s", p->what, (unsigned long)n->start_mark.line + 1,
	               key ? key : "", key ? ": " : "", msg);
}

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int boolean(parse_t *p, yaml_node_t *v, const char *key, bool *out)
{
	const char *s = scalar(v);
	if (!s || (strcasecmp(s, "true") && strcasecmp(s, "false")))
		return bad(p, v, "want true or false", key);
	*out = !strcasecmp(s, "true");
	return 0;
}

/* A mapping pair: key node, its string ("?" if not a scalar) and the value node. */
static void pair_at(parse_t *p, yaml_node_pair_t *pr, yaml_node_t **k, const char **ks, yaml_node_t **v)
{
	*k = yaml_document_get_node(p->doc, pr->key);
	*v = yaml_document_get_node(p->doc, pr->value);
	*ks = scalar(*k) ? scalar(*k) : "?";
}

#define FOR_PAIRS(map, pr)                                                                                   \
	for (yaml_node_pair_t *pr = (map)->data.mapping.pairs.start; pr < (map)->data.mapping.pairs.top; pr++)

static bool is_mapping(yaml_node_t *n)
{
	return n && n->type == YAML_MAPPING_NODE;
}

static int parse_client(parse_t *p, yaml_node_t *m, cmd_endpoint_client_t *out)
{
	if (!is_mapping(m))
		return bad(p, m, "want a mapping", "client_config");
	bool enabled = false, any = false, skip = false;
	const char *cert = NULL, *key = NULL, *ca = NULL, *server_name = NULL, *min = NULL;
	int rc = 0;
	FOR_PAIRS(m, pr)
	{
		yaml_node_t *k, *v;
		const char *ks;
		pair_at(p, pr, &k, &ks, &v);
		if (rc)
			break;
		if (!strcmp(ks, "tls_config")) {
			if (!is_mapping(v)) {
				rc = bad(p, v, "want a mapping", ks);
				break;
			}
			FOR_PAIRS(v, tpr)
			{
				yaml_node_t *tk, *tv;
				const char *tks;
				pair_at(p, tpr, &tk, &tks, &tv);
				const char *s = scalar(tv);
				if (rc)
					break;
				if (!strcmp(tks, "enabled"))
					rc = boolean(p, tv, tks, &enabled);
				else if (!strcmp(tks, "insecure_skip_verify"))
					rc = boolean(p, tv, tks, &skip), any = any || skip;
				else if (!s)
					rc = bad(p, tv, "want a string", tks);
				else if (!strcmp(tks, "cert_file"))
					cert = *s ? s : NULL;
				else if (!strcmp(tks, "key_file"))
					key = *s ? s : NULL;
				else if (!strcmp(tks, "ca_file"))
					ca = *s ? s : NULL;
				else if (!strcmp(tks, "min_version"))
					min = *s ? s : NULL;
				else
					rc = bad(p, tk, "unknown key", tks);
			}
		} else if (!strcmp(ks, "server_name")) {
			if (!scalar(v))
				rc = bad(p, v, "want a string", ks);
			server_name = scalar(v) && *scalar(v) ? scalar(v) : NULL;
		} else if (!strcmp(ks, "compression")) {
			const char *s = scalar(v);
			if (!s || (strcmp(s, "none") && strcmp(s, "snappy") && *s))
				rc = bad(p, v, "want none or snappy", ks);
			out->compress = s && !strcmp(s, "snappy");
		} else {
			rc = bad(p, k, "unknown key", ks);
		}
	}
	if (rc)
		return rc;
	any = any || cert || key || ca || min || server_name;
	/* what the connection is made with, to tell a changed client_config on a reload */
	buf_t kb = BUF_INIT;
	if (enabled || any)
		buf_printf(&kb, "tls ca=%s cert=%s key=%s server_name=%s skip_verify=%d min_version=%s",
		           ca ? ca : "", cert ? cert : "", key ? key : "", server_name ? server_name : "",
		           skip, min ? min : "");
	else
		buf_puts(&kb, "plaintext");
	buf_puts(&kb, out->compress ? " snappy" : "");
	size_t kn;
	free(out->key);
	out->key = buf_detach(&kb, &kn);
	if (!enabled && !any)
		return 0;
	if (!cert != !key)
		return bad(p, m, "cert_file and key_file go together", "tls_config");
	int minv = 0;
	if (min && tls_version_parse(min, &minv, p->err))
		return bad(p, m, p->err->msg, "tls_config: min_version");
	char what[256];
	snprintf(what, sizeof what, "%s: tls_config", p->what);
	tls_client_opts_t o = {.ca_file = ca,
	                       .cert_file = cert,
	                       .key_file = key,
	                       .server_name = server_name,
	                       .insecure_skip_verify = skip,
	                       .min_version = minv,
	                       .alpn = "h2",
	                       .what = what};
	return tls_client_new(&out->tls, &o, p->err);
}

static bool is_dns_spec(const char *a)
{
	return !strncmp(a, "dns+", 4) || !strncmp(a, "dnssrv+", 7) || !strncmp(a, "dnssrvnoa+", 10) ||
	       !strncmp(a, "dnsdualstack+", 13);
}

static int parse_endpoint(parse_t *p, yaml_node_t *m, cmd_endpoint_t *e)
{
	if (!is_mapping(m))
		return bad(p, m, "want a mapping", "endpoints");
	int rc = 0;
	yaml_node_t *client = NULL;
	FOR_PAIRS(m, pr)
	{
		yaml_node_t *k, *v;
		const char *ks;
		pair_at(p, pr, &k, &ks, &v);
		bool b;
		if (rc)
			break;
		if (!strcmp(ks, "address")) {
			if (!scalar(v) || !*scalar(v))
				rc = bad(p, v, "want host:port or a dns+ / dnssrv+ name", ks);
			else
				e->address = xstrdup(scalar(v));
		} else if (!strcmp(ks, "strict")) {
			rc = boolean(p, v, ks, &b);
		} else if (!strcmp(ks, "group")) {
			if (!(rc = boolean(p, v, ks, &b)) && b)
				rc = bad(p, v,
				         "endpoint groups (one round-robin endpoint over a DNS name) are not "
				         "supported; "
				         "list the endpoint without group: every resolved address is queried",
				         ks);
		} else if (!strcmp(ks, "service_config")) {
			if (!scalar(v))
				rc = bad(p, v, "want a string", ks);
		} else if (!strcmp(ks, "client_config")) {
			client = v;
		} else {
			rc = bad(p, k, "unknown key", ks);
		}
	}
	if (!rc && !e->address)
		rc = bad(p, m, "missing", "address");
	if (!rc && client && is_dns_spec(e->address))
		rc = bad(p, client,
		         "a DNS-discovered endpoint takes its TLS from default_client_config (its addresses "
		         "cannot be told apart from other endpoints')",
		         "client_config");
	if (!rc && client) {
		e->has_client = true;
		rc = parse_client(p, client, &e->client);
	}
	return rc;
}

int cmd_endpoint_config_parse(const char *yaml, size_t len, const char *what, cmd_endpoint_config_t *out,
                              err_t *err)
{
	memset(out, 0, sizeof *out);
	yaml_parser_t yp;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&yp))
		die("endpoint config: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&yp, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&yp, &doc)) {
		int rc =
		    err_set(err, ERR_INVALID, "%s:%lu: %s", what, (unsigned long)yp.problem_mark.line + 1,
		            yp.problem ? yp.problem : "bad YAML");
		yaml_parser_delete(&yp);
		return rc;
	}
	parse_t p = {.doc = &doc, .what = what, .err = err};
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	int rc = 0;
	if (root && !is_mapping(root) && !(scalar(root) && !*scalar(root)))
		rc = bad(&p, root, "want a mapping with endpoints", NULL);
	if (!rc && is_mapping(root)) {
		FOR_PAIRS(root, pr)
		{
			yaml_node_t *k, *v;
			const char *ks;
			pair_at(&p, pr, &k, &ks, &v);
			if (rc)
				break;
			if (!strcmp(ks, "default_client_config")) {
				out->has_default = true;
				rc = parse_client(&p, v, &out->def);
			} else if (!strcmp(ks, "endpoints")) {
				if (v->type != YAML_SEQUENCE_NODE) {
					rc = bad(&p, v, "want a list", ks);
					break;
				}
				size_t n =
				    (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
				out->v = xcalloc(n + 1, sizeof *out->v);
				for (yaml_node_item_t *it = v->data.sequence.items.start;
				     !rc && it < v->data.sequence.items.top; it++)
					rc = parse_endpoint(&p, yaml_document_get_node(&doc, *it),
					                    &out->v[out->n++]);
			} else {
				rc = bad(&p, k, "unknown key", ks);
			}
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&yp);
	if (rc)
		cmd_endpoint_config_release(out);
	return rc;
}

void cmd_endpoint_config_release(cmd_endpoint_config_t *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].address);
		tls_client_free(c->v[i].client.tls);
		free(c->v[i].client.key);
	}
	free(c->v);
	tls_client_free(c->def.tls);
	free(c->def.key);
	memset(c, 0, sizeof *c);
}

const cmd_endpoint_client_t *cmd_endpoint_client_for(const cmd_endpoint_config_t *c, const char *address)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].has_client && !strcmp(c->v[i].address, address))
			return &c->v[i].client;
	return c->has_default ? &c->def : NULL;
}

bool cmd_endpoint_client_changed(const cmd_endpoint_config_t *a, const cmd_endpoint_config_t *b,
                                 const char *address)
{
	const cmd_endpoint_client_t *ca = a ? cmd_endpoint_client_for(a, address) : NULL;
	const cmd_endpoint_client_t *cb = b ? cmd_endpoint_client_for(b, address) : NULL;
	if (!ca || !cb)
		return ca != cb; /* the --grpc-client-tls-* flags on one side only */
	return strcmp(ca->key ? ca->key : "", cb->key ? cb->key : "") != 0;
}
