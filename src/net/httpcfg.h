/*
 * httpcfg.h — Thanos's HTTP client configuration (pkg/httpconfig ClientConfig, the YAML of
 * `--prometheus.http-client[-file]`) for outgoing requests made with net/httpclient.h:
 *
 *     basic_auth: {username, password, password_file}
 *     bearer_token: <string>          bearer_token_file: <path>
 *     proxy_url: <url>
 *     tls_config: {ca_file, cert_file, key_file, server_name, insecure_skip_verify}
 *     transport_config: {...}         accepted (Go transport tuning), not used
 *
 * password_file and bearer_token_file are read when each request is made (so rotated secrets are
 * picked up), a failure to read one fails that request naming the file. server_name: the server's
 * certificate must name it and it is sent as SNI, while the request still goes to the URL's host and
 * port (its Host header unchanged).
 *
 *     httpcfg_t *hc; if (httpcfg_parse(yaml, len, "--prometheus.http-client", &hc, &err)) ...
 *     httpc_req_t req = {.url = ..., .cfg = hc};  ...  httpcfg_free(hc);
 *
 * Thread-safety: a parsed configuration is read-only; any number of requests may use it at once.
 */
#ifndef STRATA_NET_HTTPCFG_H
#define STRATA_NET_HTTPCFG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

typedef struct httpcfg {
	char *username, *password, *password_file;
	char *bearer_token, *bearer_token_file;
	char *proxy_url;
	char *ca_file, *cert_file, *key_file, *server_name;
	bool insecure_skip_verify;
} httpcfg_t;

/* ERR_INVALID naming what:line:col and the key. An empty document gives an empty configuration. */
int httpcfg_parse(const char *yaml, size_t len, const char *what, httpcfg_t **out, err_t *err);
/* The same from a node of a document already parsed (yaml_document_t *, yaml_node_t *): an http_config
 * block inside a larger YAML file (--query.config, --alertmanagers.config). */
int httpcfg_parse_node(void *doc, void *node, const char *what, httpcfg_t **out, err_t *err);
/* Just a tls_config mapping (ca_file, cert_file, key_file, server_name, insecure_skip_verify), as in
 * --query-frontend.downstream-tripper-config. */
int httpcfg_parse_tls_node(void *doc, void *node, const char *what, httpcfg_t **out, err_t *err);
void httpcfg_free(httpcfg_t *c);

/* Applied by net/httpclient to each request: options on the curl handle h, headers appended to
 * *hdrs, the server_name mapping to *connect_to (both struct curl_slist **, freed by the caller
 * after the handle). ERR_INVALID naming a secret file that cannot be read. */
int httpcfg_apply(const httpcfg_t *c, void *h, const char *url, void *hdrs, void *connect_to, err_t *err);

#endif
