/*
 * queryapi.c — see queryapi.h.
 */
#include "rule/queryapi.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "net/httpclient.h"
#include "net/url.h"
#include "rule/grpcquery.h"
#include "rule/sdconfig.h"

struct qapi {
	sdcfg_group_t *groups;
	size_t ngroups;
	char *method;
	int64_t timeout_ms;
	httpc_pool_t *pool; /* keep-alive connections to the queriers */
	pthread_mutex_t mu;
	strlist_t urls;  /* current endpoints (guarded by mu) */
	size_t *group;   /* urls.v[i] belongs to groups[group[i]] (its http_config and timeout) */
	atomic_uint next;
	gquery_t *grpc; /* --grpc-query-endpoint, NULL if none */
};

static void resolve(qapi_t *q)
{
	strlist_t urls = {0};
	size_t *group = NULL;
	for (size_t i = 0; i < q->ngroups; i++) {
		err_t err = {0};
		size_t before = urls.n;
		if (sdcfg_resolve(&q->groups[i], &urls, &err))
			log_warn("query endpoint discovery: a file SD file is unreadable; its targets are skipped", "err",
			         err.msg);
		group = xreallocarray(group, urls.n + 1, sizeof *group);
		for (size_t j = before; j < urls.n; j++)
			group[j] = i;
	}
	pthread_mutex_lock(&q->mu);
	strlist_free(&q->urls);
	free(q->group);
	q->urls = urls;
	q->group = group;
	pthread_mutex_unlock(&q->mu);
}

int qapi_new(qapi_t **out, const qapi_opts_t *o, err_t *err)
{
	qapi_t *q = xcalloc(1, sizeof *q);
	pthread_mutex_init(&q->mu, NULL);
	q->method = xstrdup(o->method && *o->method ? o->method : "POST");
	q->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 120000;
	q->pool = httpc_pool_new();
	if (o->config && *o->config &&
	    sdcfg_parse(o->config, strlen(o->config), o->config_what ? o->config_what : "--query.config", false,
	                &q->groups, &q->ngroups, err) != 0) {
		qapi_free(q);
		return ERR_INVALID;
	}
	size_t extra = (o->addrs ? o->addrs->n : 0) + (o->sd_files && o->sd_files->n ? 1 : 0);
	q->groups = xreallocarray(q->groups, q->ngroups + extra + 1, sizeof *q->groups);
	for (size_t i = 0; o->addrs && i < o->addrs->n; i++) {
		if (sdcfg_from_url(o->addrs->v[i], &q->groups[q->ngroups], err) != 0) {
			qapi_free(q);
			return ERR_INVALID;
		}
		q->ngroups++;
	}
	if (o->sd_files && o->sd_files->n) {
		sdcfg_group_t *g = &q->groups[q->ngroups++];
		memset(g, 0, sizeof *g);
		g->scheme = xstrdup("http");
		g->path_prefix = xstrdup("");
		g->api_version = xstrdup("v2");
		for (size_t i = 0; i < o->sd_files->n; i++)
			strlist_push(&g->sd_files, o->sd_files->v[i]);
	}
	if (o->grpc_addrs && o->grpc_addrs->n && gquery_new(&q->grpc, o->grpc_addrs, o->grpc_tls, err) != 0) {
		qapi_free(q);
		return ERR_INVALID;
	}
	resolve(q);
	*out = q;
	return 0;
}

void qapi_free(qapi_t *q)
{
	if (!q)
		return;
	gquery_free(q->grpc);
	sdcfg_free(q->groups, q->ngroups);
	strlist_free(&q->urls);
	free(q->group);
	httpc_pool_free(q->pool);
	free(q->method);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

void qapi_refresh(qapi_t *q)
{
	resolve(q);
	qapi_refresh_dns(q);
}

void qapi_refresh_dns(qapi_t *q)
{
	if (q->grpc)
		gquery_refresh(q->grpc);
}

size_t qapi_num_endpoints(qapi_t *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->urls.n;
	pthread_mutex_unlock(&q->mu);
	return n + (q->grpc ? gquery_num_endpoints(q->grpc) : 0);
}

static bool parse_value(json_t *pair, double *v)
{
	json_t *s = json_array_get(pair, 1);
	if (!json_is_string(s))
		return false;
	const char *str = json_string_value(s);
	char *e;
	*v = strtod(str, &e);
	return *e == 0 && *str;
}

static labels_t parse_labels(arena_t *a, json_t *metric)
{
	labels_t ls = {arena_calloc(a, json_object_size(metric) + 1, sizeof(label_t)), 0};
	const char *k;
	json_t *v;
	json_object_foreach(metric, k, v)
	{
		if (!json_is_string(v))
			continue;
		ls.v[ls.n++] = (label_t){str_c(arena_strdup(a, k)), str_c(arena_strdup(a, json_string_value(v)))};
	}
	labels_normalize(&ls);
	return ls;
}

/* 0 ok, 1 API error (final), -1 unusable answer (try another endpoint) */
static int decode(arena_t *a, const httpc_resp_t *resp, const char *url, qapi_result_t *out, err_t *err)
{
	json_error_t je;
	json_t *root = json_loadb(resp->body.p ? resp->body.p : "", resp->body.n, 0, &je);
	if (!root || !json_is_object(root)) {
		if (root)
			json_decref(root);
		err_set(err, ERR_UNAVAILABLE, "%s: HTTP %ld: %.*s", url, resp->status, (int)(resp->body.n > 200 ? 200 : resp->body.n),
		        resp->body.p ? resp->body.p : "");
		return -1;
	}
	int rc = 0;
	const char *status = json_string_value(json_object_get(root, "status"));
	if (!status || strcmp(status, "success") != 0) {
		const char *et = json_string_value(json_object_get(root, "errorType"));
		const char *em = json_string_value(json_object_get(root, "error"));
		err_set(err, resp->status >= 500 && (!et || strcmp(et, "execution") != 0) ? ERR_UNAVAILABLE : ERR_INVALID,
		        "%s%s%s", et ? et : "", et ? ": " : "", em ? em : "query failed");
		rc = err->code == ERR_UNAVAILABLE ? -1 : 1;
		goto done;
	}
	json_t *w = json_object_get(root, "warnings");
	if (json_is_array(w) && json_array_size(w)) {
		out->warnings = arena_calloc(a, json_array_size(w), sizeof(char *));
		size_t i;
		json_t *e;
		json_array_foreach(w, i, e) if (json_is_string(e)) out->warnings[out->nwarnings++] =
		    arena_strdup(a, json_string_value(e));
	}
	json_t *data = json_object_get(root, "data");
	const char *rt = json_string_value(json_object_get(data, "resultType"));
	json_t *res = json_object_get(data, "result");
	if (rt && !strcmp(rt, "vector") && json_is_array(res)) {
		out->n = 0;
		out->v = arena_calloc(a, json_array_size(res) + 1, sizeof *out->v);
		size_t i;
		json_t *e;
		json_array_foreach(res, i, e)
		{
			double v;
			if (!parse_value(json_object_get(e, "value"), &v)) {
				if (json_object_get(e, "histogram")) {
					err_set(err, ERR_INVALID, "native histogram results are not supported by the ruler");
					rc = 1;
					goto done;
				}
				continue;
			}
			out->v[out->n].ls = parse_labels(a, json_object_get(e, "metric"));
			out->v[out->n++].v = v;
		}
	} else if (rt && !strcmp(rt, "scalar")) {
		double v;
		if (!parse_value(res, &v)) {
			err_set(err, ERR_INVALID, "%s: malformed scalar result", url);
			rc = -1;
			goto done;
		}
		out->v = arena_calloc(a, 1, sizeof *out->v);
		out->v[0].v = v;
		out->n = 1;
	} else {
		err_set(err, ERR_INVALID, "rule result is not a vector or scalar");
		rc = 1;
	}
done:
	json_decref(root);
	return rc;
}

int qapi_query(qapi_t *q, arena_t *a, str_t expr, int64_t ts_ms, bool partial_response, qapi_result_t *out,
               err_t *err)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&q->mu);
	strlist_t urls = {0};
	size_t *group = xcalloc(q->urls.n + 1, sizeof *group);
	for (size_t i = 0; i < q->urls.n; i++) {
		strlist_push(&urls, q->urls.v[i]);
		group[i] = q->group[i];
	}
	pthread_mutex_unlock(&q->mu);
	if (!urls.n && !q->grpc) {
		free(group);
		return err_set(err, ERR_UNAVAILABLE, "no query API endpoint configured or discovered");
	}
	buf_t form = BUF_INIT;
	buf_puts(&form, "query=");
	url_escape(&form, expr);
	buf_printf(&form, "&time=%lld.%03lld&dedup=true&partial_response=%s", (long long)(ts_ms / 1000),
	           (long long)(ts_ms % 1000), partial_response ? "true" : "false");
	unsigned start = atomic_fetch_add(&q->next, 1);
	int rc = ERR_UNAVAILABLE;
	bool post = strcmp(q->method, "GET") != 0;
	for (size_t k = 0; k < urls.n; k++) {
		size_t e = (start + k) % urls.n;
		const char *base = urls.v[e];
		const sdcfg_group_t *g = &q->groups[group[e]];
		buf_t url = BUF_INIT;
		buf_printf(&url, "%s/api/v1/query", base);
		if (!post)
			buf_printf(&url, "?%.*s", (int)form.n, form.p);
		const char *hdr[] = {"Content-Type: application/x-www-form-urlencoded"};
		httpc_req_t req = {.method = post ? "POST" : "GET",
		                   .url = url.p,
		                   .headers = hdr,
		                   .nheaders = post ? 1 : 0,
		                   .body = post ? form.p : NULL,
		                   .body_len = post ? form.n : 0,
		                   .timeout_ms = g->timeout_ms > 0 ? g->timeout_ms : q->timeout_ms,
		                   .connect_timeout_ms = 5000,
		                   .cfg = g->http,
		                   .pool = q->pool};
		httpc_resp_t resp;
		httpc_resp_init(&resp);
		int r = httpc_do(&req, &resp, err);
		if (r == 0) {
			r = decode(a, &resp, url.p, out, err);
			if (r >= 0)
				rc = r == 0 ? 0 : ERR_INVALID;
		}
		httpc_resp_release(&resp);
		buf_release(&url);
		if (r >= 0)
			break;
	}
	buf_release(&form);
	if (rc == ERR_UNAVAILABLE && q->grpc) {
		/* every HTTP endpoint failed (or there are none): the gRPC ones */
		bool final;
		rc = gquery_query(q->grpc, a, expr, ts_ms, partial_response, q->timeout_ms, &out->v, &out->n,
		                  &out->warnings, &out->nwarnings, &final, err);
		if (rc && !final && urls.n)
			err_wrap(err, "every query endpoint failed; the last");
	}
	strlist_free(&urls);
	free(group);
	return rc;
}
