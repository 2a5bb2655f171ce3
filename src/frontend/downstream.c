/*
 * downstream.c — requests to the querier with retries, and the plain proxy; see downstream.h.
 */
#include "frontend/downstream.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "base/log.h"
#include "base/metrics.h"
#include "net/api_response.h"
#include "net/httpcfg.h"

struct downstream {
	char *url; /* without a trailing '/' */
	char **fwd;
	size_t nfwd;
	char **tenant;
	size_t ntenant;
	int64_t timeout_ms, connect_timeout_ms;
	httpcfg_t *tls;     /* tls_config or NULL */
	httpc_pool_t *pool; /* keep-alive connections for single calls (a refresh's one new step) */
};

static metric_t *m_retries;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_metrics(void)
{
	static const double b[] = {1, 2, 3, 4, 5, 6, 8, 10};
	m_retries =
	    metrics_histogram("cortex_query_frontend_retries", "Number of times a request is retried.",
	                      "tripperware", b, ARRAY_LEN(b));
}

int downstream_new(downstream_t **out, const downstream_config_t *c, err_t *err)
{
	*out = NULL;
	if (!c->url || (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0)) {
		httpcfg_free(c->tls);
		return err_set(err, ERR_INVALID, "downstream URL %s: expected http:// or https://",
		               c->url ? c->url : "\"\"");
	}
	pthread_once(&once, init_metrics);
	downstream_t *d = xcalloc(1, sizeof *d);
	d->url = xstrdup(c->url);
	size_t n = strlen(d->url);
	while (n > 8 && d->url[n - 1] == '/')
		d->url[--n] = 0;
	d->nfwd = c->nforward_headers;
	d->fwd = xcalloc(d->nfwd + 1, sizeof *d->fwd);
	for (size_t i = 0; i < d->nfwd; i++)
		d->fwd[i] = xstrdup(c->forward_headers[i]);
	d->ntenant = c->ntenant_headers;
	d->tenant = xcalloc(d->ntenant + 1, sizeof *d->tenant);
	for (size_t i = 0; i < d->ntenant; i++)
		d->tenant[i] = xstrdup(c->tenant_headers[i]);
	d->timeout_ms = c->timeout_ms ? c->timeout_ms : 2 * 60 * 1000;
	d->connect_timeout_ms = c->connect_timeout_ms;
	d->tls = c->tls;
	d->pool = httpc_pool_new();
	*out = d;
	return 0;
}

int downstream_tripper_parse(const char *yaml, size_t len, const char *what, downstream_config_t *c,
                             err_t *err)
{
	static const char *const durations[] = {"idle_conn_timeout", "response_header_timeout",
	                                        "tls_handshake_timeout", "expect_continue_timeout"};
	static const char *const counts[] = {"max_idle_conns", "max_idle_conns_per_host",
	                                     "max_conns_per_host"};
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p))
		die("downstream: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&p, &doc)) {
		int rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: %s", what, p.problem_mark.line + 1,
		                 p.problem_mark.column + 1, p.problem ? p.problem : "YAML syntax error");
		yaml_parser_delete(&p);
		return rc;
	}
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root && root->type == YAML_SCALAR_NODE && !root->data.scalar.length)
		goto out; /* empty document */
	if (!root || root->type != YAML_MAPPING_NODE) {
		rc = err_set(err, ERR_INVALID, "%s: expected a mapping", what);
		goto out;
	}
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top && !rc;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(&doc, pr->key),
		            *v = yaml_document_get_node(&doc, pr->value);
		const char *ks = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
		const char *vs = v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : NULL;
		bool known = !strcmp(ks, "tls_config");
		if (known) {
			httpcfg_free(c->tls);
			rc = httpcfg_parse_tls_node(&doc, v, what, &c->tls, err);
		}
		for (size_t i = 0; i < ARRAY_LEN(durations) && !known && !rc; i++) {
			if (strcmp(ks, durations[i]) != 0)
				continue;
			known = true;
			int64_t ms;
			err_t e2 = {0};
			if (!vs || duration_parse(str_c(vs), &ms, &e2) || ms < 0)
				rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: %s: bad duration", what,
				             v->start_mark.line + 1, v->start_mark.column + 1, ks);
			else if (i == 1)
				c->timeout_ms = ms;
			else if (i == 2)
				c->connect_timeout_ms = ms;
		}
		for (size_t i = 0; i < ARRAY_LEN(counts) && !known && !rc; i++) {
			if (strcmp(ks, counts[i]) != 0)
				continue;
			known = true;
			int64_t n;
			if (!vs || !str_to_i64(str_c(vs), &n) || n < 0)
				rc = err_set(err, ERR_INVALID,
				             "%s:%zu:%zu: %s: expected a non-negative integer", what,
				             v->start_mark.line + 1, v->start_mark.column + 1, ks);
		}
		if (!known && !rc)
			rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: unknown key: %s", what,
			             k->start_mark.line + 1, k->start_mark.column + 1, ks);
	}
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return rc;
}

void downstream_free(downstream_t *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nfwd; i++)
		free(d->fwd[i]);
	for (size_t i = 0; i < d->ntenant; i++)
		free(d->tenant[i]);
	free(d->fwd);
	free(d->tenant);
	free(d->url);
	httpc_pool_free(d->pool);
	httpcfg_free(d->tls);
	free(d);
}

const char *downstream_url(const downstream_t *d)
{
	return d->url;
}

const struct httpcfg *downstream_httpcfg(const downstream_t *d)
{
	return d->tls;
}

str_t downstream_tenant(const downstream_t *d, const http_req_t *r)
{
	str_t v;
	for (size_t i = 0; i < d->ntenant; i++)
		if (http_req_header(r, d->tenant[i], &v) && v.n)
			return v;
	return STR("anonymous");
}

void ds_call_init(ds_call_t *c, const char *method, str_t path)
{
	memset(c, 0, sizeof *c);
	c->method = method;
	c->path = path;
	buf_init(&c->params);
	httpc_resp_init(&c->resp);
}

void ds_call_release(ds_call_t *c)
{
	buf_release(&c->params);
	httpc_resp_release(&c->resp);
}

bool ds_call_ok(const ds_call_t *c)
{
	return c->rc == 0 && c->resp.status >= 200 && c->resp.status < 300;
}

static bool retryable(const ds_call_t *c)
{
	return c->rc != 0 || c->resp.status >= 500;
}

/* ------------------------------------------------------------------ headers */

static bool hop_by_hop(str_t name)
{
	static const char *const hop[] = {"Connection",          "Keep-Alive", "Proxy-Authenticate",
	                                  "Proxy-Authorization", "TE",         "Trailer",
	                                  "Transfer-Encoding",   "Upgrade",    "Host",
	                                  "Content-Length",      "Expect"};
	for (size_t i = 0; i < ARRAY_LEN(hop); i++)
		if (name.n == strlen(hop[i]) && strncasecmp(name.p, hop[i], name.n) == 0)
			return true;
	return false;
}

/* "Name: value" strings (in r's arena) to send: every end-to-end header (proxy) or the forwarded and
 * tenant ones. */
static const char **request_headers(const downstream_t *d, http_req_t *r, bool all, size_t *n)
{
	const char **h = ARENA_NEW_ARRAY(&r->arena, const char *, r->nheaders + 1);
	*n = 0;
	for (size_t i = 0; i < r->nheaders; i++) {
		str_t name = r->headers[i].name;
		bool send = all ? !hop_by_hop(name) : false;
		for (size_t j = 0; !send && j < d->nfwd; j++)
			send = name.n == strlen(d->fwd[j]) && strncasecmp(name.p, d->fwd[j], name.n) == 0;
		for (size_t j = 0; !send && j < d->ntenant; j++)
			send =
			    name.n == strlen(d->tenant[j]) && strncasecmp(name.p, d->tenant[j], name.n) == 0;
		if (send)
			h[(*n)++] = arena_printf(&r->arena, STR_FMT ": " STR_FMT, STR_ARG(name),
			                         STR_ARG(r->headers[i].value));
	}
	return h;
}

/* ------------------------------------------------------------------ calls */

static void run_calls(downstream_t *d, http_req_t *r, ds_call_t *calls, size_t n, const char **hdrs,
                      size_t nhdrs, int parallel, int max_tries, const char *tripperware)
{
	if (max_tries < 1)
		max_tries = 1;
	httpc_req_t *reqs = xcalloc(n ? n : 1, sizeof *reqs);
	httpc_resp_t *resps = xcalloc(n ? n : 1, sizeof *resps);
	int *rcs = xcalloc(n ? n : 1, sizeof *rcs);
	err_t *errs = xcalloc(n ? n : 1, sizeof *errs);
	size_t *idx = xcalloc(n ? n : 1, sizeof *idx);
	size_t todo = n;
	for (size_t i = 0; i < n; i++) {
		ds_call_t *c = &calls[i];
		bool get = strcmp(c->method, "GET") == 0 || strcmp(c->method, "HEAD") == 0;
		const char *url =
		    (get && c->params.n)
		        ? arena_printf(&r->arena, "%s" STR_FMT "?%s", d->url, STR_ARG(c->path), c->params.p)
		        : arena_printf(&r->arena, "%s" STR_FMT, d->url, STR_ARG(c->path));
		reqs[i] = (httpc_req_t){.method = strcmp(c->method, "HEAD") == 0 ? "GET" : c->method,
		                        .url = url,
		                        .headers = hdrs,
		                        .nheaders = nhdrs,
		                        .body = get ? NULL : c->params.p,
		                        .body_len = get ? 0 : c->params.n,
		                        .timeout_ms = d->timeout_ms,
		                        .connect_timeout_ms = d->connect_timeout_ms,
		                        .cfg = d->tls,
		                        .max_body = 1u << 30};
		idx[i] = i;
		c->tries = 0;
	}
	for (int attempt = 0; todo && attempt < max_tries; attempt++) {
		httpc_req_t *rq = xcalloc(todo, sizeof *rq);
		for (size_t k = 0; k < todo; k++) {
			rq[k] = reqs[idx[k]];
			httpc_resp_init(&resps[k]);
			errs[k] = (err_t){0};
		}
		if (todo == 1) { /* over a kept-alive connection: no connect per refreshed panel */
			rq[0].pool = d->pool;
			rcs[0] = httpc_do(&rq[0], &resps[0], &errs[0]);
		} else {
			httpc_do_many(rq, resps, rcs, errs, todo, parallel);
		}
		size_t left = 0;
		for (size_t k = 0; k < todo; k++) {
			ds_call_t *c = &calls[idx[k]];
			c->tries++;
			httpc_resp_release(&c->resp);
			c->resp = resps[k];
			c->rc = rcs[k];
			c->err = errs[k];
			if (retryable(c) && attempt + 1 < max_tries) {
				char status[16];
				snprintf(status, sizeof status, "%ld", c->resp.status);
				log_warn("downstream request failed, retrying", "path",
				         arena_strndup(&r->arena, c->path.p, c->path.n), "err",
				         c->rc ? c->err.msg : status);
				idx[left++] = idx[k];
			}
		}
		free(rq);
		todo = left;
	}
	metric_child_t *mr = metric_with(m_retries, tripperware);
	for (size_t i = 0; i < n; i++)
		metric_observe(mr, calls[i].tries);
	free(reqs);
	free(resps);
	free(rcs);
	free(errs);
	free(idx);
}

static void *warm_main(void *arg)
{
	downstream_t *d = arg;
	char url[1024];
	snprintf(url, sizeof url, "%s/-/ready", d->url);
	httpc_req_t req = {.url = url,
	                   .timeout_ms = 5000,
	                   .connect_timeout_ms = d->connect_timeout_ms,
	                   .cfg = d->tls,
	                   .pool = d->pool};
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	err_t err = {0};
	httpc_do(&req, &resp, &err); /* the connection stays in the pool when it can */
	httpc_resp_release(&resp);
	return NULL;
}

void downstream_warm(downstream_t *d, int n)
{
	if (n <= 0)
		return;
	pthread_t *t = xcalloc((size_t)n, sizeof *t);
	int started = 0;
	/* all running at once: each takes a handle of its own from the pool (a sequential call would
	 * reuse the one before) */
	while (started < n && pthread_create(&t[started], NULL, warm_main, d) == 0)
		started++;
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
}

void downstream_run(downstream_t *d, const http_req_t *r, ds_call_t *calls, size_t n, int parallel,
                    int max_tries, const char *tripperware)
{
	size_t nh;
	const char **h = request_headers(d, (http_req_t *)r, false, &nh);
	run_calls(d, (http_req_t *)r, calls, n, h, nh, parallel, max_tries, tripperware);
}

void downstream_respond(http_req_t *r, const ds_call_t *c)
{
	if (c->rc) {
		buf_t b = BUF_INIT;
		char *msg = arena_printf(&r->arena, "downstream: %s", c->err.msg);
		api_envelope_error(&b, API_ERR_UNAVAILABLE, msg, NULL, 0);
		http_add_header(r, "Cache-Control", "no-store");
		http_respond_buf(r, 502, "application/json", &b);
		return;
	}
	str_t all = buf_str(&c->resp.headers);
	while (all.n) {
		const char *nl = memchr(all.p, '\n', all.n);
		str_t line = {all.p, nl ? (size_t)(nl - all.p) : all.n};
		all = nl ? (str_t){nl + 1, all.n - line.n - 1} : (str_t){all.p + all.n, 0};
		if (line.n && line.p[line.n - 1] == '\r')
			line.n--;
		str_t name, value;
		if (!str_split2(line, ':', &name, &value) || hop_by_hop(name) ||
		    (name.n == 12 && strncasecmp(name.p, "Content-Type", 12) == 0))
			continue;
		value = str_trim(value);
		http_add_header(r, arena_strndup(&r->arena, name.p, name.n),
		                arena_strndup(&r->arena, value.p, value.n));
	}
	http_respond(r, (int)c->resp.status, c->resp.content_type, c->resp.body.p, c->resp.body.n);
}

void downstream_proxy(downstream_t *d, http_req_t *r, int max_tries, const char *tripperware)
{
	ds_call_t c;
	ds_call_init(&c, arena_strndup(&r->arena, r->method.p, r->method.n), r->target);
	buf_append_str(&c.params, r->body);
	if (strcmp(c.method, "GET") == 0 || strcmp(c.method, "HEAD") == 0)
		buf_reset(&c.params); /* the raw target already carries the query */
	size_t nh;
	const char **h = request_headers(d, r, true, &nh);
	run_calls(d, r, &c, 1, h, nh, 1, max_tries, tripperware);
	downstream_respond(r, &c);
	ds_call_release(&c);
}
