/*
 * router.c — placement, forwarding and quorum for one write; the RemoteWrite gRPC service.
 */
#include "receive/router.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/varint.h"
#include "base/workers.h"
#include "net/grpc.h"

#define XXH_INLINE_ALL /* the series hash inlined: XXH64 of a ~150-byte key is mostly call and setup */
#include <xxhash.h>

typedef struct rings_ref {
	hashrings_t *h;
	int refs;
} rings_ref_t;

struct rcv_router {
	rcv_router_config_t c;
	char *local;
	peers_t *peers;
	workers_t *grpc_workers;
	pthread_mutex_t mu; /* rings, idle */
	pthread_cond_t idle_cv;
	rings_ref_t *rings;
	int64_t inflight; /* RemoteWrite calls being written */
	atomic_bool ready;
	bool stopped; /* mu */
	metric_t *m_repl, *m_nodes, *m_tenants;
};

/* ---- encoding ---- */

static void put_bytes(buf_t *b, unsigned field, const void *p, size_t n)
{
	buf_put_uvarint(b, (uint64_t)field << 3 | 2);
	buf_put_uvarint(b, n);
	memcpy(buf_extend(b, n), p, n);
}

/* A TimeSeries from labels and samples (relabelled series have no bytes to forward). */
static void encode_series(buf_t *b, const wr_series_t *s)
{
	size_t len = 0;
	for (size_t i = 0; i < s->ls.n; i++) {
		size_t nl = s->ls.v[i].name.n, vl = s->ls.v[i].value.n;
		size_t l = 1 + uvarint_len(nl) + nl + 1 + uvarint_len(vl) + vl;
		len += 1 + uvarint_len(l) + l;
	}
	for (size_t i = 0; i < s->n; i++) {
		size_t l = 9 + 1 + uvarint_len((uint64_t)s->t[i]);
		len += 1 + uvarint_len(l) + l;
	}
	buf_put_uvarint(b, 1 << 3 | 2);
	buf_put_uvarint(b, len);
	for (size_t i = 0; i < s->ls.n; i++) {
		size_t nl = s->ls.v[i].name.n, vl = s->ls.v[i].value.n;
		buf_put_uvarint(b, 1 << 3 | 2);
		buf_put_uvarint(b, 1 + uvarint_len(nl) + nl + 1 + uvarint_len(vl) + vl);
		put_bytes(b, 1, s->ls.v[i].name.p, nl);
		put_bytes(b, 2, s->ls.v[i].value.p, vl);
	}
	for (size_t i = 0; i < s->n; i++) {
		buf_put_uvarint(b, 2 << 3 | 2);
		buf_put_uvarint(b, 9 + 1 + uvarint_len((uint64_t)s->t[i]));
		uint8_t d[9] = {1 << 3 | 1};
		memcpy(d + 1, &s->v[i], 8);
		buf_append(b, d, 9);
		buf_put_uvarint(b, 2 << 3 | 0);
		buf_put_uvarint(b, (uint64_t)s->t[i]);
	}
}

int rcv_router_decode(arena_t *a, const uint8_t *p, size_t n, wr_request_t *req, str_t *tenant,
                      uint64_t *replica, err_t *err)
{
	*tenant = STR_NULL;
	*replica = 0;
	int rc = wr_decode(a, p, n, req, err); /* takes the tenant (2) and replica (3) as it goes */
	if (rc)
		return rc;
	if ((int64_t)req->replica < 0)
		return err_set(err, ERR_INVALID, "decode WriteRequest: negative replica");
	*tenant = req->tenant;
	*replica = req->replica;
	return 0;
}

/* ---- rings ---- */

static rings_ref_t *rings_get(rcv_router_t *r)
{
	pthread_mutex_lock(&r->mu);
	rings_ref_t *ref = r->rings;
	if (ref)
		ref->refs++;
	pthread_mutex_unlock(&r->mu);
	return ref;
}

static void rings_put(rcv_router_t *r, rings_ref_t *ref)
{
	if (!ref)
		return;
	pthread_mutex_lock(&r->mu);
	bool last = --ref->refs == 0;
	pthread_mutex_unlock(&r->mu);
	if (last) {
		hashrings_free(ref->h);
		free(ref);
	}
}

void rcv_router_set_hashrings(rcv_router_t *r, hashrings_t *h)
{
	rings_ref_t *ref = NULL;
	if (h) {
		ref = xcalloc(1, sizeof *ref);
		ref->h = h;
		ref->refs = 1;
		for (size_t i = 0; i < hashrings_count(h); i++) {
			const hashring_t *ring = hashrings_at(h, i);
			metric_set(metric_with(r->m_nodes, hashring_name(ring)), (double)hashring_len(ring));
			metric_set(metric_with(r->m_tenants, hashring_name(ring)),
			           (double)hashring_num_tenants(ring));
		}
		if (r->local && !hashrings_has_endpoint(h, r->local))
			log_warn("--receive.local-endpoint is in no hashring: this receiver stores nothing",
			         "local_endpoint", r->local);
	}
	pthread_mutex_lock(&r->mu);
	rings_ref_t *old = r->rings;
	r->rings = ref;
	pthread_mutex_unlock(&r->mu);
	rings_put(r, old);
}

void rcv_router_tenant_labels(void *arg, str_t tenant, labels_builder_t *b)
{
	rcv_router_t *r = arg;
	rings_ref_t *ref = rings_get(r);
	const hashring_t *ring = ref ? hashrings_for_tenant(ref->h, tenant, NULL) : NULL;
	const labels_t *ext = ring ? hashring_external_labels(ring) : NULL;
	for (size_t i = 0; ext && i < ext->n; i++)
		labels_builder_set(
		    b,
		    str_from(arena_strndup(b->arena, ext->v[i].name.p, ext->v[i].name.n), ext->v[i].name.n),
		    str_from(arena_strndup(b->arena, ext->v[i].value.p, ext->v[i].value.n),
		             ext->v[i].value.n));
	rings_put(r, ref);
}

bool rcv_router_forwards_only(rcv_router_t *r)
{
	pthread_mutex_lock(&r->mu);
	bool rings = r->rings != NULL;
	pthread_mutex_unlock(&r->mu);
	return rings && !r->local && !(r->c.relabel && relabel_len(r->c.relabel));
}

const char *rcv_router_mode(rcv_router_t *r)
{
	pthread_mutex_lock(&r->mu);
	bool rings = r->rings != NULL;
	pthread_mutex_unlock(&r->mu);
	return !rings ? "ingestor" : r->local ? "router-ingestor" : "router";
}

void rcv_router_set_ready(rcv_router_t *r, bool ready)
{
	atomic_store(&r->ready, ready);
}

void rcv_router_wait_idle(rcv_router_t *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->inflight > 0)
		pthread_cond_wait(&r->idle_cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

/* ---- one write ---- */

/* What every forward of one write shares; freed by the last of the caller and its forwards. */
typedef struct wstate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	size_t nseries, undecided, pending;
	unsigned quorum, fail_at;
	uint8_t *succ, *fails;       /* fails: nseries * PEER_NOUTCOMES */
	uint8_t *decided;            /* 0, 1 written, 2 failed */
	uint8_t *cause;              /* of a failed series */
	buf_t first[PEER_NOUTCOMES]; /* first message per outcome */
} wstate_t;

typedef struct fwd {
	wstate_t *ws;
	uint32_t *idx;
	size_t n;
	char *what; /* "endpoint replica n" for messages */
} fwd_t;

static void ws_put(wstate_t *ws)
{
	pthread_mutex_lock(&ws->mu);
	bool last = --ws->refs == 0;
	pthread_mutex_unlock(&ws->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&ws->mu);
	pthread_cond_destroy(&ws->cv);
	free(ws->succ);
	free(ws->fails);
	free(ws->decided);
	free(ws->cause);
	for (int i = 0; i < PEER_NOUTCOMES; i++)
		buf_release(&ws->first[i]);
	free(ws);
}

/* Record a batch's outcome for its series (ws->mu held). */
static void ws_record(wstate_t *ws, const uint32_t *idx, size_t n, peer_outcome_t o, const char *what,
                      const char *msg)
{
	if (o != PEER_OK && !ws->first[o].n && msg) {
		if (what)
			buf_printf(&ws->first[o], "%s: ", what);
		buf_puts(&ws->first[o], msg);
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = idx ? idx[k] : k;
		if (ws->decided[i])
			continue;
		if (o == PEER_OK) {
			if (++ws->succ[i] >= ws->quorum) {
				ws->decided[i] = 1;
				ws->undecided--;
			}
			continue;
		}
		uint8_t *f = &ws->fails[i * PEER_NOUTCOMES];
		f[o]++;
		unsigned total = 0;
		for (int c = 1; c < PEER_NOUTCOMES; c++)
			total += f[c];
		if (total < ws->fail_at)
			continue;
		ws->decided[i] = 2;
		ws->undecided--;
		ws->cause[i] = PEER_UNAVAILABLE; /* mixed causes: retryable */
		for (int c = 1; c < PEER_NOUTCOMES; c++)
			if (f[c] >= ws->quorum)
				ws->cause[i] = (uint8_t)c;
	}
}

static void fwd_done(void *arg, peer_outcome_t o, const char *msg)
{
	fwd_t *f = arg;
	wstate_t *ws = f->ws;
	pthread_mutex_lock(&ws->mu);
	ws_record(ws, f->idx, f->n, o, f->what, msg);
	ws->pending--;
	pthread_cond_broadcast(&ws->cv);
	pthread_mutex_unlock(&ws->mu);
	free(f->idx);
	free(f->what);
	free(f);
	ws_put(ws);
}

/* Preference among failed series' causes: retryable first. */
static const peer_outcome_t cause_order[] = {PEER_UNAVAILABLE, PEER_NOT_READY, PEER_OTHER,
                                             PEER_LIMIT,       PEER_CONFLICT,  PEER_INVALID};
static const char *const cause_name[PEER_NOUTCOMES] = {"ok",      "unavailable", "not ready",  "conflict",
                                                       "invalid", "over limit",  "other error"};

static void fail_all(rcv_write_result_t *res, int status, const char *msg)
{
	res->status = status;
	buf_reset(&res->msg);
	buf_puts(&res->msg, msg);
	buf_putc(&res->msg, '\n');
}

/* Relabel (HTTP requests) into a request of copies without forwardable bytes. */
static const wr_request_t *relabelled(rcv_router_t *r, const wr_request_t *req, arena_t *a,
                                      rcv_write_result_t *res)
{
	wr_request_t *out = ARENA_NEW(a, wr_request_t);
	*out = *req;
	out->series = ARENA_NEW_ARRAY(a, wr_series_t, req->nseries ? req->nseries : 1);
	out->nseries = 0;
	for (size_t i = 0; i < req->nseries; i++) {
		const wr_series_t *s = &req->series[i];
		err_t e = {0};
		labels_t ls = s->ls;
		if (labels_check(&s->ls, &e) == 0 && !relabel_apply(r->c.relabel, a, &s->ls, &ls)) {
			res->dropped_series++;
			continue;
		}
		wr_series_t *d = &out->series[out->nseries++];
		*d = *s;
		d->ls = ls;
		d->raw = NULL;
		d->msg = NULL;
	}
	return out;
}

/* Wait for the quorum of every series (forwards end by their deadline), then the answer. Drops the
 * caller's reference to ws. */
static void ws_finish(rcv_router_t *r, wstate_t *ws, size_t nrep, rcv_write_result_t *res)
{
	size_t ns = ws->nseries;
	pthread_mutex_lock(&ws->mu);
	while (ws->undecided && ws->pending)
		pthread_cond_wait(&ws->cv, &ws->mu);
	size_t failed[PEER_NOUTCOMES] = {0}, nfailed = 0;
	for (size_t i = 0; i < ns; i++) {
		if (ws->decided[i] == 1)
			continue;
		/* undecided with nothing pending cannot happen; count it as unavailable */
		peer_outcome_t c = ws->decided[i] == 2 ? (peer_outcome_t)ws->cause[i] : PEER_UNAVAILABLE;
		failed[c]++;
		nfailed++;
	}
	res->status = 200;
	buf_reset(&res->msg);
	if (nfailed) {
		for (size_t j = 0; j < ARRAY_LEN(cause_order); j++)
			if (failed[cause_order[j]]) {
				res->status = peer_outcome_http(cause_order[j]);
				break;
			}
		buf_printf(&res->msg, "%zu of %zu series not written to a quorum of %u replicas:", nfailed,
		           ns, ws->quorum);
		for (size_t j = 0; j < ARRAY_LEN(cause_order); j++)
			if (failed[cause_order[j]])
				buf_printf(&res->msg, " %zu %s", failed[cause_order[j]],
				           cause_name[cause_order[j]]);
		buf_putc(&res->msg, '\n');
		for (int c = 1; c < PEER_NOUTCOMES; c++)
			if (ws->first[c].n) {
				buf_append(&res->msg, ws->first[c].p, ws->first[c].n);
				buf_putc(&res->msg, '\n');
			}
		res->rejected_series = nfailed;
	}
	pthread_mutex_unlock(&ws->mu);
	if (nrep > 1)
		metric_inc(metric_with(r->m_repl, nfailed ? "error" : "success"));
	ws_put(ws);
}

static wstate_t *ws_new(size_t ns, unsigned quorum, size_t nrep)
{
	wstate_t *ws = xcalloc(1, sizeof *ws);
	pthread_mutex_init(&ws->mu, NULL);
	pthread_cond_init(&ws->cv, NULL);
	ws->refs = 1;
	ws->nseries = ws->undecided = ns;
	ws->quorum = quorum;
	ws->fail_at = (unsigned)nrep - ws->quorum + 1;
	ws->succ = xcalloc(ns + 1, 1);
	ws->fails = xcalloc(ns * PEER_NOUTCOMES + 1, 1);
	ws->decided = xcalloc(ns + 1, 1);
	ws->cause = xcalloc(ns + 1, 1);
	for (int i = 0; i < PEER_NOUTCOMES; i++)
		buf_init(&ws->first[i]);
	return ws;
}

static int64_t head_limit(rcv_router_t *r, str_t tenant)
{
	if (!r->c.limits)
		return 0;
	rcv_tenant_limits_t lim;
	rcv_limiter_get(r->c.limits, tenant, &lim);
	return lim.head_series;
}

/* ---- forwarded messages ---- */

/* The message for one (endpoint, replica): a thanos.WriteRequest framed for gRPC as it will go on
 * the wire (5-byte prefix, then the protobuf, or with compression the snappy frames of it, each chunk
 * compressed as soon as it is full, while its bytes are still in cache). */
typedef struct dest {
	peer_t *peer;
	bool compress;
	buf_t out;
	buf_t stage;   /* compressing: the bytes not yet in a chunk (< GRPC_SNAPPY_CHUNK) */
	uint32_t *idx; /* the series in it (arena) */
	size_t n, cap;
	uint64_t rep;
	const char *addr;
} dest_t;

static void dest_put(dest_t *d, const void *p, size_t n)
{
	if (!d->compress) {
		memcpy(buf_extend(&d->out, n), p, n);
		return;
	}
	const uint8_t *q = p;
	while (n) {
		size_t room = GRPC_SNAPPY_CHUNK - d->stage.n, k = n < room ? n : room;
		memcpy(buf_extend(&d->stage, k), q, k);
		q += k;
		n -= k;
		if (d->stage.n == GRPC_SNAPPY_CHUNK) {
			grpc_snappy_chunk(&d->out, d->stage.p, d->stage.n);
			buf_reset(&d->stage);
		}
	}
}

static void dest_put_varint(dest_t *d, uint64_t v)
{
	uint8_t b[VARINT_MAX_LEN];
	dest_put(d, b, uvarint_put(b, v));
}

/* The tenant and replica fields, the last chunk, the prefix. */
static void dest_close(dest_t *d, str_t tenant)
{
	if (tenant.n) {
		dest_put_varint(d, 2 << 3 | 2);
		dest_put_varint(d, tenant.n);
		dest_put(d, tenant.p, tenant.n);
	}
	if (d->rep) {
		dest_put_varint(d, 3 << 3 | 0);
		dest_put_varint(d, d->rep);
	}
	if (d->compress && d->stage.n)
		grpc_snappy_chunk(&d->out, d->stage.p, d->stage.n);
	buf_release(&d->stage);
	uint8_t *h = (uint8_t *)d->out.p;
	size_t n = d->out.n - 5;
	h[0] = d->compress ? 1 : 0;
	h[1] = (uint8_t)(n >> 24), h[2] = (uint8_t)(n >> 16), h[3] = (uint8_t)(n >> 8), h[4] = (uint8_t)n;
}

typedef struct fcur {
	const uint8_t *p, *end;
} fcur_t;

static inline bool f_varint(fcur_t *c, uint64_t *v)
{
	const uint8_t *p = c->p;
	if (p < c->end && *p < 0x80) {
		*v = *p;
		c->p = p + 1;
		return true;
	}
	uint64_t x = 0;
	for (int s = 0; s < 64 && p < c->end; s += 7) {
		uint8_t b = *p++;
		x |= (uint64_t)(b & 0x7f) << s;
		if (b < 0x80) {
			*v = x;
			c->p = p;
			return true;
		}
	}
	return false;
}

/* Skip a field of wire type wt; a length-delimited one's bytes in [*s, *e). */
static inline bool f_skip(fcur_t *c, unsigned wt, const uint8_t **s, const uint8_t **e)
{
	uint64_t v;
	switch (wt) {
	case 0:
		return f_varint(c, &v);
	case 1:
	case 5:
		if ((size_t)(c->end - c->p) < (wt == 1 ? 8u : 4u))
			return false;
		c->p += wt == 1 ? 8 : 4;
		return true;
	case 2:
		if (!f_varint(c, &v) || v > (uint64_t)(c->end - c->p))
			return false;
		*s = c->p;
		*e = c->p + v;
		c->p += v;
		return true;
	default:
		return false;
	}
}

/* Copy n bytes with at most two fixed-size moves for the short strings labels are made of (the
 * compiler's inline memcpy of a variable length, rep movsq, took most of the time of hashing). */
static inline void copy_short(char *d, const uint8_t *s, size_t n)
{
	if (n >= 16) {
		if (n > 32) {
			memcpy(d, s, n);
			return;
		}
		memcpy(d, s, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		memcpy(d, s, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(d, s, 4);
		memcpy(d + n - 4, s + n - 4, 4);
	} else if (n) {
		d[0] = (char)s[0];
		d[n / 2] = (char)s[n / 2];
		d[n - 1] = (char)s[n - 1];
	}
}

/* name 0xff value 0xff of one Label message at *w (room for end - p bytes: a label's name and value
 * and two separators never take more than the message). */
static bool f_label(const uint8_t *p, const uint8_t *end, char **w)
{
	size_t n = (size_t)(end - p);
	const uint8_t *name = NULL, *value = NULL;
	size_t nl = 0, vl = 0;
	if (n >= 4 && p[0] == 0x0a && p[1] < 0x80 && n >= 4u + p[1] && p[2 + p[1]] == 0x12 &&
	    p[3 + p[1]] < 0x80 && n == 4u + p[1] + p[3 + p[1]]) { /* what every sender writes */
		nl = p[1], vl = p[3 + nl];
		name = p + 2, value = p + 4 + nl;
	} else {
		fcur_t c = {p, end};
		while (c.p < c.end) {
			uint64_t tag;
			const uint8_t *s = NULL, *e = NULL;
			if (!f_varint(&c, &tag) || !f_skip(&c, (unsigned)(tag & 7), &s, &e))
				return false;
			if (tag == (1 << 3 | 2))
				name = s, nl = (size_t)(e - s);
			else if (tag == (2 << 3 | 2))
				value = s, vl = (size_t)(e - s);
		}
	}
	char *d = *w;
	copy_short(d, name, nl);
	d[nl] = (char)0xff;
	copy_short(d + nl + 1, value, vl);
	d[nl + 1 + vl] = (char)0xff;
	*w = d + nl + vl + 2;
	return true;
}

/* Append the series' labels (name 0xff value 0xff each, in wire order) to key and count its samples:
 * NULL, or what is wrong with it. */
static const char *series_key(const uint8_t *ms, const uint8_t *me, buf_t *key, size_t *nsamples)
{
	fcur_t sc = {ms, me};
	size_t nl = 0, at = key->n;
	buf_reserve(key, (size_t)(me - ms));
	char *w = key->p + at;
	while (sc.p < sc.end) {
		const uint8_t *fs = NULL, *fe = NULL;
		uint64_t tag;
		if (!f_varint(&sc, &tag) || !f_skip(&sc, (unsigned)(tag & 7), &fs, &fe))
			return "bad field in time series";
		if (tag == (1 << 3 | 2)) {
			if (fe - fs < 6)
				return "label too short to hold a name and a value";
			if (!f_label(fs, fe, &w))
				return "bad field in label";
			nl++;
		} else if (tag == (2 << 3 | 2)) {
			(*nsamples)++;
		}
	}
	key->n = (size_t)(w - key->p);
	return nl ? NULL : "time series without labels";
}

int rcv_router_wire_hash(str_t tenant, const uint8_t *msg, size_t n, uint64_t *hash, size_t *nsamples,
                         err_t *err)
{
	buf_t key = BUF_INIT;
	buf_append(&key, tenant.p, tenant.n);
	buf_putc(&key, (char)0xff);
	*nsamples = 0;
	const char *what = series_key(msg, msg + n, &key, nsamples);
	if (!what)
		*hash = XXH64(key.p, key.n, 0);
	buf_release(&key);
	return what ? err_set(err, ERR_INVALID, "%s", what) : 0;
}

static dest_t *dest_get(rcv_router_t *r, const hashring_t *ring, dest_t **dests, size_t e, size_t k,
                        size_t nrep, size_t body_n, size_t ne, arena_t *a)
{
	dest_t *d = dests[e * nrep + k];
	if (d)
		return d;
	d = dests[e * nrep + k] = arena_zalloc(a, sizeof *d);
	d->peer = peers_get(r->peers, hashring_address(ring, e));
	d->addr = peer_address(d->peer); /* outlives the rings (a write may wait after letting them go) */
	d->compress = peer_compresses(d->peer);
	d->rep = k + 1;
	buf_init(&d->out);
	buf_init(&d->stage);
	size_t share = body_n / (ne ? ne : 1) + body_n / 8 + 256;
	buf_reserve(&d->out, d->compress ? share / 2 + 64 : share);
	buf_extend(&d->out, 5);
	if (d->compress) {
		buf_reserve(&d->stage, GRPC_SNAPPY_CHUNK);
		grpc_snappy_stream_id(&d->out);
	}
	return d;
}

static void dest_add(dest_t *d, uint32_t i, arena_t *a)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 256;
		d->idx = arena_realloc(a, d->idx, d->cap * sizeof *d->idx, cap * sizeof *d->idx);
		d->cap = cap;
	}
	d->idx[d->n++] = i;
}

/* One TimeSeries into d: its bytes as sent, or encoded (relabelled copies have none). */
static void dest_series(dest_t *d, const wr_series_t *s, buf_t *scratch)
{
	if (s->msg) {
		dest_put_varint(d, 1 << 3 | 2);
		dest_put_varint(d, s->nmsg);
		dest_put(d, s->msg, s->nmsg);
	} else {
		buf_reset(scratch);
		encode_series(scratch, s);
		dest_put(d, scratch->p, scratch->n);
	}
}

void rcv_router_encode_framed(buf_t *out, bool compress, const wr_series_t *const *series, size_t n,
                              str_t tenant, uint64_t replica)
{
	dest_t d = {.compress = compress, .rep = replica};
	buf_t scratch = BUF_INIT;
	buf_init(&d.out);
	buf_init(&d.stage);
	buf_extend(&d.out, 5);
	if (compress)
		grpc_snappy_stream_id(&d.out);
	for (size_t i = 0; i < n; i++)
		dest_series(&d, series[i], &scratch);
	dest_close(&d, tenant);
	buf_release(&scratch);
	buf_append(out, d.out.p, d.out.n);
	buf_release(&d.out);
}

void rcv_router_encode(buf_t *out, const wr_series_t *const *series, size_t n, str_t tenant, uint64_t replica)
{
	buf_t f = BUF_INIT;
	rcv_router_encode_framed(&f, false, series, n, tenant, replica);
	buf_append(out, f.p + 5, f.n - 5);
	buf_release(&f);
}

/* Close every message and send it: direct (replication factor 1: every forward must succeed anyway)
 * as calls from this thread, returned in calls for dests_wait; else through the peers' workers
 * (fwd_done records the outcomes), so that the write can return at quorum. */
static void dests_start(wstate_t *ws, dest_t **dests, size_t nd, bool direct, str_t tenant, uint64_t deadline,
                        peer_call_t **calls)
{
	for (size_t i = 0; i < nd; i++) {
		dest_t *d = dests[i];
		if (!d)
			continue;
		dest_close(d, tenant);
		if (direct) {
			calls[i] = peer_call_start(d->peer, &d->out, deadline);
			continue;
		}
		fwd_t *f = xcalloc(1, sizeof *f);
		f->ws = ws;
		f->n = d->n;
		f->idx = xmalloc((d->n ? d->n : 1) * sizeof *f->idx);
		memcpy(f->idx, d->idx, d->n * sizeof *f->idx);
		size_t wl = strlen(d->addr) + 32;
		f->what = xmalloc(wl);
		snprintf(f->what, wl, "forward to %s (replica %llu)", d->addr, (unsigned long long)d->rep);
		pthread_mutex_lock(&ws->mu);
		ws->refs++;
		ws->pending++;
		pthread_mutex_unlock(&ws->mu);
		peer_send_framed(d->peer, &d->out, deadline, fwd_done, f);
	}
}

static void dests_wait(wstate_t *ws, dest_t **dests, size_t nd, peer_call_t **calls)
{
	buf_t msg = BUF_INIT;
	peer_calls_run(calls, nd);
	for (size_t i = 0; i < nd; i++) {
		if (!calls[i])
			continue;
		buf_reset(&msg);
		peer_outcome_t o = peer_call_wait(calls[i], &msg);
		char w[300];
		snprintf(w, sizeof w, "forward to %s (replica %llu)", dests[i]->addr,
		         (unsigned long long)dests[i]->rep);
		pthread_mutex_lock(&ws->mu);
		ws_record(ws, dests[i]->idx, dests[i]->n, o, w, msg.n ? msg.p : "failed");
		pthread_mutex_unlock(&ws->mu);
	}
	buf_release(&msg);
}

static void dests_drop(dest_t **dests, size_t nd)
{
	for (size_t i = 0; i < nd; i++)
		if (dests[i]) {
			buf_release(&dests[i]->out);
			buf_release(&dests[i]->stage);
		}
}

void rcv_router_write(rcv_router_t *r, str_t tenant, const wr_request_t *req, uint64_t replica,
                      bool from_http, arena_t *a, rcv_write_result_t *res)
{
	rings_ref_t *ref = rings_get(r);
	const relabel_t *rl = from_http ? r->c.relabel : NULL;
	if (!ref) { /* ingestor only */
		rcv_write(r->c.mt, tenant, req, rl, head_limit(r, tenant), a, res);
		return;
	}
	res->series = req->nseries;
	res->samples = req->nsamples;
	if (rl && relabel_len(rl))
		req = relabelled(r, req, a, res);
	err_t err = {0};
	const hashring_t *ring = hashrings_for_tenant(ref->h, tenant, &err);
	uint64_t rf = r->c.replication_factor;
	if (!ring) {
		fail_all(res, 500, err.msg);
		rings_put(r, ref);
		return;
	}
	if (!r->local)
		replica = 0;
	if (replica > rf) {
		char m[128];
		snprintf(m, sizeof m, "bad replica %llu: the replication factor is %llu",
		         (unsigned long long)replica, (unsigned long long)rf);
		fail_all(res, 400, m);
		rings_put(r, ref);
		return;
	}
	size_t ne = hashring_len(ring), nrep = replica ? 1 : (size_t)rf, ns = req->nseries;
	size_t local = SIZE_MAX;
	for (size_t e = 0; r->local && e < ne; e++)
		if (!strcmp(hashring_address(ring, e), r->local))
			local = e;
	/* placement: endpoint of (series, replica) */
	uint32_t *place = ARENA_NEW_ARRAY(a, uint32_t, ns * nrep + 1);
	size_t nlocal = 0;
	for (size_t i = 0; i < ns; i++) {
		uint64_t h = hashring_series_hash(tenant, &req->series[i].ls);
		for (size_t k = 0; k < nrep; k++) {
			size_t e;
			if (hashring_get_n(ring, h, replica ? replica - 1 : k, &e, &err) != 0) {
				fail_all(res, 500, err.msg);
				rings_put(r, ref);
				return;
			}
			place[i * nrep + k] = (uint32_t)e;
			if (e == local)
				nlocal++;
		}
	}
	/* quorum state */
	wstate_t *ws = ws_new(ns, replica ? 1 : (rf == 2 ? 1 : (unsigned)(rf / 2 + 1)), nrep);
	/* remote messages: encoded here (the request's memory is not used once this returns) */
	uint64_t deadline = clock_mono_ms() + (uint64_t)r->c.forward_timeout_ms;
	size_t bytes = 0;
	for (size_t i = 0; i < ns; i++)
		bytes += req->series[i].msg ? req->series[i].nmsg + 6 : 256;
	dest_t **dests = arena_zalloc(a, (ne * nrep + 1) * sizeof *dests);
	peer_call_t **calls = arena_zalloc(a, (ne * nrep + 1) * sizeof *calls);
	buf_t scratch = BUF_INIT;
	for (size_t i = 0; i < ns; i++) {
		const wr_series_t *s = &req->series[i];
		for (size_t k = 0; k < nrep; k++) {
			size_t e = place[i * nrep + k];
			if (e == local)
				continue;
			dest_t *d = dest_get(r, ring, dests, e, k, nrep, bytes, ne, a);
			d->rep = replica ? replica : k + 1;
			dest_series(d, s, &scratch);
			dest_add(d, (uint32_t)i, a);
		}
	}
	buf_release(&scratch);
	bool direct = nrep == 1;
	dests_start(ws, dests, ne * nrep, direct, tenant, deadline, calls);
	rings_put(r, ref);
	/* the local share, meanwhile */
	if (nlocal) {
		wr_request_t lreq = *req;
		lreq.series = ARENA_NEW_ARRAY(a, wr_series_t, nlocal);
		uint32_t *lidx = ARENA_NEW_ARRAY(a, uint32_t, nlocal);
		lreq.nseries = 0;
		lreq.nsamples = 0;
		for (size_t i = 0; i < ns; i++)
			for (size_t k = 0; k < nrep; k++)
				if (place[i * nrep + k] == local) {
					lidx[lreq.nseries] = (uint32_t)i;
					lreq.nsamples += req->series[i].n;
					lreq.series[lreq.nseries++] = req->series[i];
				}
		rcv_write_result_t lr;
		rcv_write_result_init(&lr);
		rcv_write(r->c.mt, tenant, &lreq, NULL, head_limit(r, tenant), a, &lr);
		res->appended = lr.appended;
		res->limited_series = lr.limited_series;
		if (lr.msg.n && lr.msg.p[lr.msg.n - 1] == '\n')
			buf_truncate(&lr.msg, lr.msg.n - 1);
		pthread_mutex_lock(&ws->mu);
		ws_record(ws, lidx, lreq.nseries, peer_outcome_from_http(lr.status), "local write",
		          lr.msg.n ? lr.msg.p : "failed");
		pthread_mutex_unlock(&ws->mu);
		rcv_write_result_release(&lr);
	}
	if (direct)
		dests_wait(ws, dests, ne * nrep, calls);
	ws_finish(r, ws, nrep, res);
}

void rcv_router_forward_body(rcv_router_t *r, str_t tenant, const void *body, size_t body_n,
                             size_t max_decoded, int64_t max_series, int64_t max_samples, arena_t *a,
                             rcv_write_result_t *res)
{
	const uint8_t *p;
	size_t n;
	err_t err = {0};
	int rc = wr_uncompress_body(a, body, body_n, max_decoded, &p, &n, &err);
	if (rc) {
		fail_all(res, rc == ERR_LIMIT ? 413 : 400, err.msg);
		return;
	}
	rings_ref_t *ref = rings_get(r);
	const hashring_t *ring = ref ? hashrings_for_tenant(ref->h, tenant, &err) : NULL;
	if (!ring) {
		fail_all(res, 500, ref ? err.msg : "no hashrings");
		rings_put(r, ref);
		return;
	}
	size_t ne = hashring_len(ring), nrep = (size_t)r->c.replication_factor;
	dest_t **dests = arena_zalloc(a, (ne * nrep + 1) * sizeof *dests);
	buf_t key = BUF_INIT;
	buf_append(&key, tenant.p, tenant.n);
	buf_putc(&key, (char)0xff);
	fcur_t c = {p, p + n};
	size_t ns = 0, nsamples = 0;
	const char *what = NULL;
	while (c.p < c.end) {
		const uint8_t *ts = c.p, *ms = NULL, *me = NULL;
		uint64_t tag;
		if (!f_varint(&c, &tag)) {
			what = "bad field tag";
			break;
		}
		if (!f_skip(&c, (unsigned)(tag & 7), &ms, &me)) {
			what = "field runs past the end of the request";
			break;
		}
		if (tag != (1 << 3 | 2))
			continue; /* metadata and unknown fields are not forwarded */
		/* a TimeSeries: hash its labels, count its samples */
		buf_truncate(&key, tenant.n + 1);
		size_t nsm = 0;
		if ((what = series_key(ms, me, &key, &nsm)) != NULL)
			break;
		nsamples += nsm;
		uint64_t h = XXH64(key.p, key.n, 0);
		for (size_t k = 0; k < nrep; k++) {
			size_t e;
			if (hashring_get_n(ring, h, k, &e, &err) != 0) {
				buf_release(&key);
				dests_drop(dests, ne * nrep);
				fail_all(res, 500, err.msg);
				rings_put(r, ref);
				return;
			}
			dest_t *d = dest_get(r, ring, dests, e, k, nrep, n, ne, a);
			dest_put(d, ts, (size_t)(me - ts));
			dest_add(d, (uint32_t)ns, a);
		}
		ns++;
	}
	buf_release(&key);
	res->series = ns;
	res->samples = nsamples;
	int status = 0;
	char m[160];
	if (what) {
		snprintf(m, sizeof m, "decode remote write request: byte %zu: %s", (size_t)(c.p - p), what);
		status = 400, res->series = res->samples = 0;
	} else if (max_series > 0 && (int64_t)ns > max_series) {
		snprintf(m, sizeof m, "request has %zu series, over the tenant's limit of %lld", ns,
		         (long long)max_series);
		status = 413;
	} else if (max_samples > 0 && (int64_t)nsamples > max_samples) {
		snprintf(m, sizeof m, "request has %zu samples, over the tenant's limit of %lld", nsamples,
		         (long long)max_samples);
		status = 413;
	}
	if (status) {
		dests_drop(dests, ne * nrep);
		fail_all(res, status, m);
		rings_put(r, ref);
		return;
	}
	uint64_t rf = r->c.replication_factor;
	wstate_t *ws = ws_new(ns, rf == 2 ? 1 : (unsigned)(rf / 2 + 1), nrep);
	uint64_t deadline = clock_mono_ms() + (uint64_t)r->c.forward_timeout_ms;
	peer_call_t **calls = arena_zalloc(a, (ne * nrep + 1) * sizeof *calls);
	dests_start(ws, dests, ne * nrep, nrep == 1, tenant, deadline, calls);
	dests_wait(ws, dests, ne * nrep, calls);
	rings_put(r, ref);
	ws_finish(r, ws, nrep, res);
}

/* ---- the RemoteWrite service ---- */

typedef struct rw_job {
	rcv_router_t *r;
	grpc_call_t *call;
	str_t msg;
	int status;
	char *message;
} rw_job_t;

static void rw_deliver(grpc_call_t *call, void *arg)
{
	rw_job_t *j = arg;
	if (j->status == GRPC_OK)
		grpc_call_reply(call, "", 0); /* WriteResponse{} and OK, in one write */
	else
		grpc_call_finish(call, j->status, j->message);
	grpc_call_release(call);
	free(j->message);
	free(j);
}

static void rw_dropped(grpc_call_t *call, void *arg)
{
	rw_job_t *j = arg;
	grpc_call_release(call);
	free(j->message);
	free(j);
}

static void rw_work(void *arg)
{
	rw_job_t *j = arg;
	rcv_router_t *r = j->r;
	pthread_mutex_lock(&r->mu);
	r->inflight++;
	pthread_mutex_unlock(&r->mu);
	arena_t *a = grpc_call_arena(j->call);
	if (!atomic_load(&r->ready)) {
		j->status = GRPC_UNAVAILABLE;
		j->message = xstrdup("receiver is not ready");
	} else {
		wr_request_t req;
		str_t tenant;
		uint64_t replica;
		err_t err = {0};
		if (rcv_router_decode(a, (const uint8_t *)j->msg.p, j->msg.n, &req, &tenant, &replica,
		                      &err) != 0) {
			j->status = GRPC_INVALID_ARGUMENT;
			j->message = xstrdup(err.msg);
		} else if (!tenant.n || !mtsdb_tenant_valid(tenant)) {
			j->status = GRPC_INVALID_ARGUMENT;
			j->message = xstrdup(tenant.n ? "invalid tenant" : "WriteRequest without a tenant");
		} else {
			rcv_write_result_t res;
			rcv_write_result_init(&res);
			rcv_router_write(r, tenant, &req, replica, false, a, &res);
			j->status = peer_outcome_grpc(peer_outcome_from_http(res.status));
			if (res.status != 200) {
				if (res.msg.n && res.msg.p[res.msg.n - 1] == '\n')
					res.msg.n--;
				j->message = xstrndup(res.msg.p ? res.msg.p : "", res.msg.n);
			}
			rcv_write_result_release(&res);
		}
	}
	pthread_mutex_lock(&r->mu);
	if (--r->inflight == 0)
		pthread_cond_broadcast(&r->idle_cv);
	pthread_mutex_unlock(&r->mu);
	grpc_call_post(j->call, rw_deliver, rw_dropped, j);
}

static void rw_handle(grpc_call_t *call, str_t msg, void *arg)
{
	rcv_router_t *r = arg;
	pthread_mutex_lock(&r->mu);
	if (r->stopped) {
		pthread_mutex_unlock(&r->mu);
		grpc_call_finish(call, GRPC_UNAVAILABLE, "receiver is shutting down");
		return;
	}
	rw_job_t *j = xcalloc(1, sizeof *j);
	j->r = r;
	j->call = call;
	j->msg = msg;
	grpc_call_hold(call);
	workers_submit(r->grpc_workers, rw_work, j);
	pthread_mutex_unlock(&r->mu);
}

void rcv_router_stop(rcv_router_t *r)
{
	atomic_store(&r->ready, false);
	pthread_mutex_lock(&r->mu);
	r->stopped = true;
	workers_t *w = r->grpc_workers;
	r->grpc_workers = NULL;
	pthread_mutex_unlock(&r->mu);
	workers_free(w); /* the jobs queued run (answering Unavailable) and post to the live loop */
}

void rcv_router_register_grpc(rcv_router_t *r, grpc_server_t *srv)
{
	grpc_server_register(srv, "/thanos.WriteableStore/RemoteWrite", rw_handle, r);
}

/* ---- life cycle ---- */

rcv_router_t *rcv_router_new(const rcv_router_config_t *cfg)
{
	rcv_router_t *r = xcalloc(1, sizeof *r);
	r->c = *cfg;
	if (r->c.replication_factor == 0)
		r->c.replication_factor = 1;
	if (r->c.forward_timeout_ms <= 0)
		r->c.forward_timeout_ms = 5000;
	if (r->c.grpc_workers <= 0)
		r->c.grpc_workers = 8;
	r->local = cfg->local_endpoint && *cfg->local_endpoint ? xstrdup(cfg->local_endpoint) : NULL;
	r->c.local_endpoint = r->local;
	r->peers = peers_new(&cfg->peers);
	r->grpc_workers = workers_new(r->c.grpc_workers);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->idle_cv, NULL);
	atomic_store(&r->ready, true);
	r->m_repl =
	    metrics_counter("thanos_receive_replications_total",
	                    "The number of replication operations done by the receiver. The success of "
	                    "replication is fulfilled when a quorum is met.",
	                    "result");
	metric_set(metric_with(metrics_gauge("thanos_receive_replication_factor",
	                                     "The replication factor of the receiver.", "")),
	           (double)r->c.replication_factor);
	r->m_nodes =
	    metrics_gauge("thanos_receive_hashring_nodes", "The number of nodes per hashring.", "name");
	r->m_tenants =
	    metrics_gauge("thanos_receive_hashring_tenants", "The number of tenants per hashring.", "name");
	return r;
}

void rcv_router_free(rcv_router_t *r)
{
	if (!r)
		return;
	workers_free(r->grpc_workers);
	peers_free(r->peers);
	rings_put(r, r->rings);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->idle_cv);
	free(r->local);
	free(r);
}
