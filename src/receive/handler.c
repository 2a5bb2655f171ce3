/*
 * handler.c — the remote-write HTTP endpoint.
 */
#include "receive/handler.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/metrics.h"
#include "base/vec.h"
#include "receive/writer.h"
#include "receive/writereq.h"

struct rcv_handler {
	rcv_handler_config_t c;
	char *tenant_header, *default_tenant, *replica_header, *tenant_cert_field;
	atomic_bool ready;
	pthread_mutex_t gate_mu;
	pthread_cond_t gate_cv;
	int64_t inflight;
	metric_t *m_series, *m_samples, *m_limited;
	/* Scratch arenas for the decoded request and the head's inputs, reset and kept between
	 * requests: a request's 1-2 MiB would otherwise be freed after each one, given back to the
	 * kernel by the next heap trim and faulted in again (a fifth of the ingest CPU). */
	pthread_mutex_t scratch_mu;
	VEC(arena_t *) scratch;
};

#define SCRATCH_FIRST (1u << 20) /* a Prometheus request of 2,000 samples needs about 1.4 MiB */
#define SCRATCH_KEEP  (8u << 20) /* an arena grown past this by a huge request is freed, not kept */
#define SCRATCH_POOL  16         /* arenas kept: receive runs writes on 16 workers */

static arena_t *scratch_take(rcv_handler_t *h)
{
	arena_t *a = NULL;
	pthread_mutex_lock(&h->scratch_mu);
	if (h->scratch.n)
		a = h->scratch.v[--h->scratch.n];
	pthread_mutex_unlock(&h->scratch_mu);
	if (!a) {
		a = xmalloc(sizeof *a);
		arena_init(a, SCRATCH_FIRST);
	}
	return a;
}

static void scratch_give(rcv_handler_t *h, arena_t *a)
{
	size_t used = a->used;
	pthread_mutex_lock(&h->scratch_mu);
	bool keep = h->scratch.n < SCRATCH_POOL && used <= SCRATCH_KEEP;
	pthread_mutex_unlock(&h->scratch_mu);
	if (!keep) {
		arena_release(a);
		free(a);
		return;
	}
	if (a->allocated > a->chunk_size / 2) {
		/* more than one chunk (each new one doubles chunk_size): start again with one chunk
		 * that holds what this request took */
		arena_release(a);
		arena_init(a, used <= SCRATCH_FIRST ? SCRATCH_FIRST
		                                    : (used + used / 8 + 65535) & ~(size_t)65535);
	} else {
		arena_reset(a);
	}
	pthread_mutex_lock(&h->scratch_mu);
	VEC_PUSH(&h->scratch, a);
	pthread_mutex_unlock(&h->scratch_mu);
}

static const double size_buckets[] = {10, 100, 1000, 10000, 100000};

rcv_handler_t *rcv_handler_new(const rcv_handler_config_t *cfg)
{
	rcv_handler_t *h = xcalloc(1, sizeof *h);
	h->c = *cfg;
	h->tenant_header =
	    xstrdup(cfg->tenant_header && *cfg->tenant_header ? cfg->tenant_header : "THANOS-TENANT");
	h->default_tenant =
	    xstrdup(cfg->default_tenant && *cfg->default_tenant ? cfg->default_tenant : "default-tenant");
	h->replica_header =
	    xstrdup(cfg->replica_header && *cfg->replica_header ? cfg->replica_header : "THANOS-REPLICA");
	h->tenant_cert_field =
	    cfg->tenant_cert_field && *cfg->tenant_cert_field ? xstrdup(cfg->tenant_cert_field) : NULL;
	if (!h->c.max_decoded)
		h->c.max_decoded = 32u << 20;
	pthread_mutex_init(&h->gate_mu, NULL);
	pthread_mutex_init(&h->scratch_mu, NULL);
	pthread_cond_init(&h->gate_cv, NULL);
	h->m_series = metrics_histogram("thanos_receive_write_timeseries",
	                                "The number of timeseries received in the incoming write requests.",
	                                "code,tenant", size_buckets, ARRAY_LEN(size_buckets));
	h->m_samples = metrics_histogram("thanos_receive_write_samples",
	                                 "The number of sampled received in the incoming write requests.",
	                                 "code,tenant", size_buckets, ARRAY_LEN(size_buckets));
	h->m_limited = metrics_counter(
	    "thanos_receive_head_series_limited_requests_total",
	    "The total number of remote write requests that have been dropped due to active series limiting.",
	    "tenant");
	return h;
}

void rcv_handler_free(rcv_handler_t *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->gate_mu);
	pthread_mutex_destroy(&h->scratch_mu);
	for (size_t i = 0; i < h->scratch.n; i++) {
		arena_release(h->scratch.v[i]);
		free(h->scratch.v[i]);
	}
	VEC_FREE(&h->scratch);
	pthread_cond_destroy(&h->gate_cv);
	free(h->tenant_header);
	free(h->default_tenant);
	free(h->replica_header);
	free(h->tenant_cert_field);
	free(h);
}

void rcv_handler_set_ready(rcv_handler_t *h, bool ready)
{
	atomic_store(&h->ready, ready);
}

typedef struct job {
	rcv_handler_t *h;
	str_t tenant;
	uint64_t replica;
	rcv_tenant_limits_t lim;
} job_t;

static void gate_enter(rcv_handler_t *h)
{
	int64_t max = h->c.limits ? rcv_limiter_max_concurrency(h->c.limits) : 0;
	pthread_mutex_lock(&h->gate_mu);
	while (max > 0 && h->inflight >= max)
		pthread_cond_wait(&h->gate_cv, &h->gate_mu);
	h->inflight++;
	pthread_mutex_unlock(&h->gate_mu);
}

static void gate_leave(rcv_handler_t *h)
{
	pthread_mutex_lock(&h->gate_mu);
	h->inflight--;
	pthread_cond_broadcast(&h->gate_cv);
	pthread_mutex_unlock(&h->gate_mu);
}

void rcv_handler_wait_idle(rcv_handler_t *h)
{
	pthread_mutex_lock(&h->gate_mu);
	while (h->inflight > 0)
		pthread_cond_wait(&h->gate_cv, &h->gate_mu);
	pthread_mutex_unlock(&h->gate_mu);
}

static void observe(rcv_handler_t *h, int code, const char *tenant, size_t series, size_t samples)
{
	char c[8];
	snprintf(c, sizeof c, "%d", code);
	metric_observe(metric_with(h->m_series, c, tenant), (double)series);
	metric_observe(metric_with(h->m_samples, c, tenant), (double)samples);
}

static void work(http_req_t *r, void *arg)
{
	job_t *j = arg;
	rcv_handler_t *h = j->h;
	const char *tenant = arena_strndup(&r->arena, j->tenant.p, j->tenant.n);
	gate_enter(h);
	arena_t *a = scratch_take(h); /* nothing in it is used once the write is answered */
	wr_request_t req;
	err_t err = {0};
	int rc = 0;
	if (!atomic_load(&h->ready)) { /* switching hashrings or stopping since the request came in */
		http_error(r, 503, "receiver is not ready");
	} else if (h->c.router && rcv_router_forwards_only(h->c.router)) {
		/* router only: one pass from the body to the peers */
		rcv_write_result_t res;
		rcv_write_result_init(&res);
		rcv_router_forward_body(h->c.router, j->tenant, r->body.p, r->body.n, h->c.max_decoded,
		                        j->lim.series, j->lim.samples, a, &res);
		observe(h, res.status, tenant, res.series, res.samples);
		if (res.status == 200)
			http_respond(r, 200, NULL, "", 0);
		else
			http_respond(r, res.status, "text/plain; charset=utf-8", res.msg.p, res.msg.n);
		rcv_write_result_release(&res);
	} else if ((rc = wr_decode_body(a, r->body.p, r->body.n, h->c.max_decoded, &req, &err)) != 0) {
		int code = rc == ERR_LIMIT ? 413 : 400;
		observe(h, code, tenant, 0, 0);
		http_error(r, code, "%s", err.msg);
	} else if (j->lim.series > 0 && (int64_t)req.nseries > j->lim.series) {
		observe(h, 413, tenant, req.nseries, req.nsamples);
		http_error(r, 413, "request has %zu series, over the tenant's limit of %lld", req.nseries,
		           (long long)j->lim.series);
	} else if (j->lim.samples > 0 && (int64_t)req.nsamples > j->lim.samples) {
		observe(h, 413, tenant, req.nseries, req.nsamples);
		http_error(r, 413, "request has %zu samples, over the tenant's limit of %lld", req.nsamples,
		           (long long)j->lim.samples);
	} else {
		rcv_write_result_t res;
		rcv_write_result_init(&res);
		if (h->c.router)
			rcv_router_write(h->c.router, j->tenant, &req, j->replica, true, a, &res);
		else
			rcv_write(h->c.mt, j->tenant, &req, h->c.relabel, j->lim.head_series, a, &res);
		if (res.limited_series)
			metric_inc(metric_with(h->m_limited, tenant));
		observe(h, res.status, tenant, req.nseries, req.nsamples);
		if (res.status == 200)
			http_respond(r, 200, NULL, "", 0);
		else
			http_respond(r, res.status, "text/plain; charset=utf-8", res.msg.p, res.msg.n);
		rcv_write_result_release(&res);
	}
	scratch_give(h, a);
	gate_leave(h);
}

static bool header_is(const http_req_t *r, const char *name, const char *want)
{
	str_t v;
	return http_req_header(r, name, &v) && str_has_prefix(str_trim(v), str_c(want));
}

static void handle(http_req_t *r, void *arg)
{
	rcv_handler_t *h = arg;
	if (!atomic_load(&h->ready)) {
		http_error(r, 503, "receiver is not ready");
		return;
	}
	if (header_is(r, "X-Prometheus-Remote-Write-Version", "2.") ||
	    header_is(r, "Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2")) {
		http_error(
		    r, 415,
		    "remote write 2.0 is not supported: send remote write 1.0 (prometheus.WriteRequest)");
		return;
	}
	str_t tenant;
	if (h->tenant_cert_field) { /* hard tenancy: no certificate field, no write */
		buf_t b = BUF_INIT;
		err_t err = {0};
		int rc = http_req_tls_subject(r, h->tenant_cert_field, &b, &err);
		tenant = str_from(arena_strndup(&r->arena, b.p, b.n), b.n);
		buf_release(&b);
		if (rc) {
			http_error(r, 400, "%s", err.msg);
			return;
		}
	} else {
		if (!http_req_header(r, h->tenant_header, &tenant) &&
		    !http_req_header(r, "THANOS-TENANT", &tenant))
			tenant = str_c(h->default_tenant);
		tenant = str_trim(tenant);
		if (!tenant.n)
			tenant = str_c(h->default_tenant);
	}
	if (!mtsdb_tenant_valid(tenant)) {
		http_error(r, 400,
		           "invalid tenant \"%.*s\": tenant names must be usable as a directory name (no "
		           "'/', not '.' or '..')",
		           (int)(tenant.n > 100 ? 100 : tenant.n), tenant.p);
		return;
	}
	str_t rep;
	uint64_t replica = 0;
	if (http_req_header(r, h->replica_header, &rep) && str_trim(rep).n &&
	    !str_to_u64(str_trim(rep), &replica)) {
		http_error(r, 400, "bad %s header \"%.*s\": want a replica number", h->replica_header,
		           (int)(rep.n > 50 ? 50 : rep.n), rep.p);
		return;
	}
	job_t *j = ARENA_NEW(&r->arena, job_t);
	j->h = h;
	j->replica = replica;
	j->tenant = str_from(arena_strndup(&r->arena, tenant.p, tenant.n), tenant.n);
	if (h->c.limits)
		rcv_limiter_get(h->c.limits, j->tenant, &j->lim);
	if (j->lim.size_bytes > 0 && (int64_t)r->body.n > j->lim.size_bytes) {
		http_error(r, 413, "request body of %zu bytes is over the tenant's limit of %lld bytes",
		           r->body.n, (long long)j->lim.size_bytes);
		return;
	}
	http_run_on_worker(r, work, j);
}

void rcv_handler_register(rcv_handler_t *h, http_server_t *srv)
{
	http_handle(srv, HTTP_M_POST, "/api/v1/receive", handle, h);
}
