/*
 * grpcquery.c — see grpcquery.h.
 */
#include "rule/grpcquery.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/vec.h"
#include "net/dnsname.h"
#include "net/grpc_client.h"
#include "net/tls.h"
#include "querypb.pb-c.h"

typedef struct gname {
	char *raw;
	dnsname_t d;
	strlist_t addrs; /* last good resolution */
} gname_t;

/* One channel. refs (guarded by gquery.mu): one for the table while listed, one per query using it;
 * whoever drops the last frees it (outside the lock). */
typedef struct gchan {
	char *target;
	grpc_channel_t *ch;
	unsigned refs;
} gchan_t;

struct gquery {
	struct tls_client *tls;
	gname_t *names;
	size_t nnames;
	gquery_resolve_fn resolve_fn; /* NULL = dnsname_resolve */
	void *resolve_arg;
	pthread_mutex_t mu;
	strlist_t addrs; /* current endpoints (guarded by mu) */
	gchan_t **ch;    /* channels of current endpoints (guarded by mu) */
	size_t nch;
	atomic_uint next;
};

static void gchan_free(gchan_t *c)
{
	grpc_channel_free(c->ch);
	free(c->target);
	free(c);
}

static bool in_list(const strlist_t *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

static void resolve(gquery_t *g)
{
	strlist_t all = {0};
	for (size_t i = 0; i < g->nnames; i++) {
		gname_t *n = &g->names[i];
		strlist_t l = {0};
		err_t err = {0};
		int rc = g->resolve_fn ? g->resolve_fn(n->raw, &l, &err, g->resolve_arg)
		                       : dnsname_resolve(&n->d, &l, &err);
		if (rc == 0) {
			strlist_free(&n->addrs);
			n->addrs = l;
		} else {
			log_warn("gRPC query endpoint lookup failed; keeping previous addresses", "endpoint",
			         n->raw, "err", err.msg);
			strlist_free(&l);
		}
		for (size_t k = 0; k < n->addrs.n; k++)
			if (!in_list(&all, n->addrs.v[k]))
				strlist_push(&all, n->addrs.v[k]);
	}
	/* Channels of addresses that left the resolution leave the table; closed now unless a query
	 * still uses them (then by its release). */
	gchan_t **gone = NULL;
	size_t ngone = 0;
	pthread_mutex_lock(&g->mu);
	strlist_free(&g->addrs);
	g->addrs = all;
	size_t keep = 0;
	for (size_t i = 0; i < g->nch; i++) {
		gchan_t *c = g->ch[i];
		if (in_list(&g->addrs, c->target)) {
			g->ch[keep++] = c;
			continue;
		}
		if (--c->refs == 0) {
			gone = xreallocarray(gone, ngone + 1, sizeof *gone);
			gone[ngone++] = c;
		}
	}
	g->nch = keep;
	pthread_mutex_unlock(&g->mu);
	for (size_t i = 0; i < ngone; i++) {
		log_debug("gRPC query endpoint left the resolution; connection closed", "endpoint",
		          gone[i]->target);
		gchan_free(gone[i]);
	}
	free(gone);
}

int gquery_new(gquery_t **out, const strlist_t *addrs, struct tls_client *tls, err_t *err)
{
	gquery_t *g = xcalloc(1, sizeof *g);
	pthread_mutex_init(&g->mu, NULL);
	g->tls = tls;
	g->names = xcalloc(addrs->n + 1, sizeof *g->names);
	for (size_t i = 0; i < addrs->n; i++) {
		if (dnsname_parse(addrs->v[i], &g->names[i].d, err)) {
			err_wrap(err, "--grpc-query-endpoint");
			gquery_free(g);
			return ERR_INVALID;
		}
		g->names[i].raw = xstrdup(addrs->v[i]);
		g->nnames++;
	}
	resolve(g);
	*out = g;
	return 0;
}

void gquery_free(gquery_t *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nch; i++)
		gchan_free(g->ch[i]); /* no query runs any more: the table held the last reference */
	free(g->ch);
	for (size_t i = 0; i < g->nnames; i++) {
		free(g->names[i].raw);
		dnsname_release(&g->names[i].d);
		strlist_free(&g->names[i].addrs);
	}
	free(g->names);
	strlist_free(&g->addrs);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

void gquery_refresh(gquery_t *g)
{
	resolve(g);
}

size_t gquery_num_endpoints(gquery_t *g)
{
	pthread_mutex_lock(&g->mu);
	size_t n = g->addrs.n;
	pthread_mutex_unlock(&g->mu);
	return n;
}

void gquery_set_resolver(gquery_t *g, gquery_resolve_fn fn, void *arg)
{
	g->resolve_fn = fn;
	g->resolve_arg = arg;
}

size_t gquery_num_channels(gquery_t *g)
{
	pthread_mutex_lock(&g->mu);
	size_t n = g->nch;
	pthread_mutex_unlock(&g->mu);
	return n;
}

/* The channel for target with a reference for the caller (gchan_release), or NULL (err set). A target
 * that left the resolution since the caller's snapshot gets a channel outside the table, closed by the
 * release. */
static gchan_t *channel_acquire(gquery_t *g, const char *target, err_t *err)
{
	gchan_t *c = NULL;
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < g->nch && !c; i++)
		if (!strcmp(g->ch[i]->target, target))
			c = g->ch[i];
	if (!c) {
		grpc_channel_config_t cfg = {.tls = g->tls};
		grpc_channel_t *ch;
		if (grpc_channel_new(&ch, NULL, target, &cfg, err) == 0) {
			c = xcalloc(1, sizeof *c);
			c->target = xstrdup(target);
			c->ch = ch;
			if (in_list(&g->addrs, target)) {
				c->refs = 1;
				g->ch = xreallocarray(g->ch, g->nch + 1, sizeof *g->ch);
				g->ch[g->nch++] = c;
			}
		}
	}
	if (c)
		c->refs++;
	pthread_mutex_unlock(&g->mu);
	return c;
}

static void channel_release(gquery_t *g, gchan_t *c)
{
	pthread_mutex_lock(&g->mu);
	bool last = --c->refs == 0;
	pthread_mutex_unlock(&g->mu);
	if (last)
		gchan_free(c);
}

typedef VEC(tmpl_sample_t) samplevec_t;
typedef VEC(char *) strvec_t;

/* One TimeSeries of an instant result: its last sample. */
static int add_series(arena_t *a, const Prometheus__TimeSeries *ts, samplevec_t *out, err_t *err)
{
	if (ts->n_histograms)
		return err_set(err, ERR_INVALID, "native histogram results are not supported by the ruler");
	if (!ts->n_samples)
		return 0;
	labels_t ls = {arena_calloc(a, ts->n_labels + 1, sizeof(label_t)), 0};
	for (size_t i = 0; i < ts->n_labels; i++)
		ls.v[ls.n++] = (label_t){str_c(arena_strdup(a, ts->labels[i]->name)),
		                         str_c(arena_strdup(a, ts->labels[i]->value))};
	labels_normalize(&ls);
	VEC_PUSH(out, ((tmpl_sample_t){.ls = ls, .v = ts->samples[ts->n_samples - 1]->value}));
	return 0;
}

/* One endpoint: 0, or an error. */
static int query_one(grpc_channel_t *ch, arena_t *a, const uint8_t *req, size_t len, int64_t timeout_ms,
                     samplevec_t *v, strvec_t *w, err_t *err)
{
	grpc_stream_t *st = grpc_channel_call(ch, "/thanos.Query/Query", req, len, timeout_ms);
	const uint8_t *msg;
	size_t n;
	int rc;
	while ((rc = grpc_stream_recv(st, &msg, &n, err)) == 1) {
		Thanos__QueryResponse *r = thanos__query_response__unpack(NULL, n, msg);
		if (!r) {
			rc = err_set(err, ERR_CORRUPT, "grpc %s/thanos.Query/Query: malformed QueryResponse",
			             grpc_channel_target(ch));
			break;
		}
		switch (r->result_case) {
		case THANOS__QUERY_RESPONSE__RESULT_WARNINGS:
			VEC_PUSH(w, arena_strdup(a, r->warnings));
			break;
		case THANOS__QUERY_RESPONSE__RESULT_TIMESERIES:
			rc = add_series(a, r->timeseries, v, err);
			break;
		case THANOS__QUERY_RESPONSE__RESULT_TIMESERIES_BATCH:
			for (size_t i = 0; i < r->timeseries_batch->n_series && rc >= 0; i++)
				rc = add_series(a, r->timeseries_batch->series[i], v, err);
			break;
		default:
			break; /* stats */
		}
		thanos__query_response__free_unpacked(r, NULL);
		if (rc < 0)
			break;
	}
	grpc_stream_free(st);
	return rc < 0 ? rc : 0;
}

int gquery_query(gquery_t *g, arena_t *a, str_t expr, int64_t ts_ms, bool partial_response,
                 int64_t timeout_ms, tmpl_sample_t **v, size_t *n, char ***warnings, size_t *nwarnings,
                 bool *final, err_t *err)
{
	*v = NULL;
	*n = *nwarnings = 0;
	*warnings = NULL;
	*final = false;
	pthread_mutex_lock(&g->mu);
	strlist_t addrs = {0};
	for (size_t i = 0; i < g->addrs.n; i++)
		strlist_push(&addrs, g->addrs.v[i]);
	pthread_mutex_unlock(&g->mu);
	if (!addrs.n)
		return err_set(err, ERR_UNAVAILABLE, "no gRPC query endpoint resolved");
	Thanos__QueryRequest req = THANOS__QUERY_REQUEST__INIT;
	req.query = arena_strndup(a, expr.p, expr.n);
	/* whole seconds, floored (Go's time.Unix()) */
	req.time_seconds = ts_ms >= 0 ? ts_ms / 1000 : -((-ts_ms + 999) / 1000);
	req.timeout_seconds = timeout_ms > 0 ? (timeout_ms + 999) / 1000 : 0;
	req.enablededup = true;
	req.enablepartialresponse = partial_response;
	size_t len = thanos__query_request__get_packed_size(&req);
	uint8_t *buf = arena_alloc(a, len ? len : 1);
	thanos__query_request__pack(&req, buf);
	unsigned start = atomic_fetch_add(&g->next, 1);
	int rc = ERR_UNAVAILABLE;
	for (size_t k = 0; k < addrs.n; k++) {
		const char *target = addrs.v[(start + k) % addrs.n];
		gchan_t *c = channel_acquire(g, target, err);
		if (!c) {
			rc = err->code;
			continue;
		}
		samplevec_t sv = {0};
		strvec_t wv = {0};
		rc = query_one(c->ch, a, buf, len, timeout_ms, &sv, &wv, err);
		channel_release(g, c);
		if (rc == 0) {
			*v = sv.n ? arena_memdup(a, sv.v, sv.n * sizeof *sv.v) : NULL;
			*n = sv.n;
			*warnings = wv.n ? arena_memdup(a, wv.v, wv.n * sizeof *wv.v) : NULL;
			*nwarnings = wv.n;
		}
		VEC_FREE(&sv);
		VEC_FREE(&wv);
		if (rc == 0 || rc == ERR_INVALID) {
			*final = rc == ERR_INVALID;
			break;
		}
		log_debug("gRPC query endpoint failed; trying the next", "endpoint", target, "err", err->msg);
	}
	strlist_free(&addrs);
	return rc;
}
