/*
 * frontend.c — the query frontend's routes and middleware chains; see frontend.h.
 */
#include "frontend/frontend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/duration.h"
#include "base/fmt.h"
#include "base/log.h"
#include "base/metrics.h"
#include "frontend/extents.h"
#include "frontend/promresp.h"
#include "frontend/split.h"
#include "net/api_compress.h"
#include "net/api_params.h"
#include "net/api_response.h"

struct frontend {
	frontend_config_t c;
	http_server_t *srv;
	pthread_t probe;
	bool probing;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	/* cache keys (hashed) whose update is running after its answer went out: a request that reads
	 * one of them waits for the update first, so a client that has its answer and asks again sees
	 * the cache as that answer left it (the request ends after the update, as before) */
	pthread_mutex_t upd_mu;
	pthread_cond_t upd_cv;
	char (*upd)[16];
	size_t nupd, capupd;
};

typedef struct chain chain_t;

static metric_t *m_queries, *m_split, *m_mw_dur;
static metric_child_t *m_downsampled;

static void init_metrics(void)
{
	m_queries = metrics_counter("thanos_query_frontend_queries_total",
	                            "Total queries passing through query frontend", "op");
	static const char *const ops[] = {"query", "query_range", "label_names", "label_values", "series"};
	for (size_t i = 0; i < ARRAY_LEN(ops); i++)
		metric_with(m_queries, ops[i]);
	m_split = metrics_counter(
	    "thanos_frontend_split_queries_total",
	    "Total number of underlying query requests after the split by interval is applied",
	    "tripperware");
	m_mw_dur = metrics_histogram("cortex_frontend_query_range_duration_seconds",
	                             "Total time spent in seconds doing query range requests.",
	                             "method,status_code,tripperware", NULL, 0);
	m_downsampled =
	    metric_with(metrics_counter("thanos_frontend_downsampled_extra_queries_total",
	                                "Total number of additional queries for downsampled data", NULL));
}

/* ------------------------------------------------------------------ helpers */

static const char *bool_str(bool b)
{
	return b ? "true" : "false";
}

/* Go strconv.ParseBool. */
static bool parse_bool(str_t s, bool *out)
{
	static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"}, *const f[] = {
	                                                                            "0",     "f",
	                                                                            "F",     "FALSE",
	                                                                            "false", "False"};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		if (str_eq_c(s, t[i]))
			return *out = true, true;
		if (str_eq_c(s, f[i]))
			return *out = false, true;
	}
	return false;
}

static void put_seconds(buf_t *b, int64_t ms)
{
	buf_put_json_seconds(b, ms);
}

static void add_param(buf_t *b, const char *k, str_t v)
{
	if (b->n)
		buf_putc(b, '&');
	url_escape(b, str_c(k));
	buf_putc(b, '=');
	url_escape(b, v);
}

static void add_param_ms(buf_t *b, const char *k, int64_t ms)
{
	buf_t v = BUF_INIT;
	put_seconds(&v, ms);
	add_param(b, k, buf_str(&v));
	buf_release(&v);
}

static bool skipped(str_t key, const char *const *skip)
{
	for (size_t i = 0; skip[i]; i++)
		if (str_eq_c(key, skip[i]))
			return true;
	return false;
}

/* Every parameter of r except those in skip, form-encoded into b. */
static void pass_params(buf_t *b, const http_req_t *r, const char *const *skip)
{
	for (size_t i = 0; i < r->form.n; i++)
		if (!skipped(r->form.v[i].key, skip)) {
			if (b->n)
				buf_putc(b, '&');
			url_escape(b, r->form.v[i].key);
			buf_putc(b, '=');
			url_escape(b, r->form.v[i].val);
		}
}

/* dedup=false, storeMatch[] or Cache-Control: no-store keep a request away from the cache. */
static bool request_cacheable(const http_req_t *r)
{
	str_t v;
	bool b;
	if (http_req_param(r, "dedup", &v) && parse_bool(v, &b) && !b)
		return false;
	if (url_params_all(&r->form, "storeMatch[]", NULL, 0))
		return false;
	if (http_req_header(r, "Cache-Control", &v) && memmem(v.p, v.n, "no-store", 8))
		return false;
	return true;
}

/* A downstream answer the cache may keep: no warnings, no Cache-Control: no-store. */
static bool response_cacheable(const ds_call_t *c, const promresp_t *p)
{
	str_t v;
	if (p->nwarnings)
		return false;
	return !(httpc_resp_header(&c->resp, "Cache-Control", &v) && memmem(v.p, v.n, "no-store", 8));
}

static void common_headers(http_req_t *r)
{
	http_add_header(r, "Access-Control-Allow-Origin", "*");
	http_add_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
	http_add_header(r, "Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, Origin");
	http_add_header(r, "Access-Control-Expose-Headers", "Date");
}

static void keep_ready(const chain_t *ch, const buf_t *body);
static void update_pieces(chain_t *ch);

/* Answer with an encoded body (taken over); ch (may be NULL) keeps it as the ready answer. */
static void respond_body(frontend_t *fe, http_req_t *r, buf_t *b, size_t nwarnings, const chain_t *ch)
{
	if (ch && !nwarnings)
		keep_ready(ch, b);
	common_headers(r);
	if (nwarnings)
		http_add_header(r, "Cache-Control", "no-store");
	if (fe->c.compress_responses)
		api_respond_json(r, 200, b);
	else
		http_respond_buf(r, 200, "application/json", b);
}

/* ch (may be NULL): keep the body as the ready answer when run_pieces found it may be. */
static void respond_merged(frontend_t *fe, http_req_t *r, const promresp_t *p, bool stats, bool per_step,
                           const chain_t *ch)
{
	buf_t b = BUF_INIT;
	promresp_encode(&b, p, stats, per_step);
	respond_body(fe, r, &b, p->nwarnings, ch);
	buf_release(&b);
}

static void respond_ready(frontend_t *fe, http_req_t *r, str_t body)
{
	common_headers(r);
	if (fe->c.compress_responses) {
		buf_t b = BUF_INIT;
		buf_append_str(&b, body);
		api_respond_json(r, 200, &b);
	} else {
		http_respond(r, 200, "application/json", body.p, body.n);
	}
}

static void respond_error(http_req_t *r, api_error_type_t t, const char *msg)
{
	buf_t b = BUF_INIT;
	api_envelope_error(&b, t, msg, NULL, 0);
	common_headers(r);
	http_add_header(r, "Cache-Control", "no-store");
	http_respond_buf(r, api_error_status(t), "application/json", &b);
	buf_release(&b);
}

static void observe(const char *mw, int status, const char *tripperware, uint64_t t0)
{
	char code[8];
	snprintf(code, sizeof code, "%d", status);
	metric_observe(metric_with(m_mw_dur, mw, code, tripperware), clock_since_s(t0));
}

static void slow_log(frontend_t *fe, http_req_t *r, uint64_t t0)
{
	int64_t lim = fe->c.log_queries_longer_than_ms;
	double took = clock_since_s(t0);
	if (lim == 0 || (lim > 0 && took * 1000 < (double)lim))
		return;
	str_t q = STR(""), s = STR(""), e = STR(""), st = STR("");
	http_req_param(r, "query", &q);
	http_req_param(r, "start", &s);
	http_req_param(r, "end", &e);
	http_req_param(r, "step", &st);
	char *tt = arena_printf(&r->arena, "%.3fs", took);
	log_info("slow query detected", "method", arena_strndup(&r->arena, r->method.p, r->method.n), "path",
	         arena_strndup(&r->arena, r->path.p, r->path.n), "time_taken", tt, "param_query",
	         arena_strndup(&r->arena, q.p, q.n), "param_start", arena_strndup(&r->arena, s.p, s.n),
	         "param_end", arena_strndup(&r->arena, e.p, e.n), "param_step",
	         arena_strndup(&r->arena, st.p, st.n));
}

/* ------------------------------------------------------------------ pieces (shared by range and labels) */

typedef struct piece {
	int64_t start, end;
	char *key;     /* full cache key; NULL = not cached */
	char hkey[17]; /* hashed */
	extents_t ex;
	extents_plan_t plan;
	size_t call0; /* first of its downstream calls */
	promresp_t result;
	char *fkey;     /* its ready series' key (chain's frag) */
	char fhkey[17]; /* hashed */
	bool frag_hit;  /* ready series found for a range holding its own: nothing decoded */
	bool whole;     /* all of it is in the cache after this request */
	promresp_frag_t frag;
	/* ready series found for [start, frag_end] only (a refresh's last piece, its extents unchanged
	 * since): only the points after frag_end are rendered (tail) */
	bool frag_head;
	int64_t frag_end;
	promresp_frag_t tail;
	/* frag_head with its extents not decoded yet (ex_val, lent by the cache): the points after
	 * frag_end are fetched, the answer sent, and only then are the extents decoded and merged */
	bool ex_late;
	str_t ex_val;
} piece_t;

/* How one chain (range or labels) runs its pieces. */
struct chain {
	frontend_t *fe;
	http_req_t *r;
	promresp_kind_t kind;
	const char *tripperware;
	fecache_t *cache;
	int64_t step;       /* grid (1 ms for labels) */
	int64_t grid_start; /* a point of the grid */
	int64_t max_cache_time;
	int64_t max_at; /* range: latest `@` time */
	bool need_stats;
	int parallel, tries;
	/* downstream call for a sub-range */
	void (*fill)(struct chain *ch, ds_call_t *c, int64_t start, int64_t end);
	void *arg;
	const ds_call_t *failed; /* set when a call failed: the answer to relay */
	size_t npieces;
	bool want_json; /* keep/use ready answers (range queries not split by resolution) */
	bool frag;      /* ... and each piece's ready series (no stats asked) */
	/* run_pieces returned 2: the answer is these pieces' ready series, with these warnings */
	const promresp_frag_t **frags;
	size_t nfrags;
	str_t *warn;
	size_t nwarn;
	ds_call_t *calls;
	size_t ncalls;
	size_t bytes; /* downstream bodies decoded */
	/* ready answers (extents.h; range queries): jkey NULL = none kept for this request */
	char *jkey;
	char jhkey[17];
	extents_fp_t *fp; /* each piece's cached value as the answer leaves it */
	bool json_ok;     /* every point of the answer came from the cache or went into it */
	str_t json;       /* the ready answer found (run_pieces returned 1) */
	/* run_pieces' pieces and decoded downstream answers, for update_pieces */
	piece_t *pc;
	const promresp_t *fetched;
	uint64_t t_cache;
};

typedef struct frag_out {
	http_req_t *r;
	bool z; /* compressed as accepted: api_json_out (o.b is the buffer) */
	api_json_out_t o;
	buf_t b;        /* otherwise */
	bool streaming; /* ... chunked once it passed API_STREAM_MIN_BYTES, as the querier does */
} frag_out_t;

/* The part's buffer itself goes to the server (no copy) and x->b starts a new one of about the same size
 * (parts are a little over PROMRESP_FLUSH_BYTES: below malloc's mmap threshold, reused heap memory rather
 * than fresh pages faulted in and unmapped again, and no reallocations as it grows). */
static void frag_write(frag_out_t *x, bool last)
{
	size_t cap = x->b.cap < 2 * PROMRESP_FLUSH_BYTES ? x->b.cap : 2 * PROMRESP_FLUSH_BYTES;
	http_stream_write_buf(x->r, &x->b);
	if (!last && cap && !x->b.cap)
		buf_reserve(&x->b, cap - 1);
}

static void frag_flush(void *arg)
{
	frag_out_t *x = arg;
	if (x->z) {
		api_json_out_flush(&x->o);
		return;
	}
	if (!x->streaming) {
		if (x->b.n < API_STREAM_MIN_BYTES)
			return; /* a small answer goes out whole, with its length */
		http_stream_begin(x->r, 200, "application/json");
		x->streaming = true;
	}
	frag_write(x, false);
}

static void frag_writev(void *arg, const struct iovec *iov, int n)
{
	http_stream_writev(arg, iov, n);
}

/* Bytes of an answer made of ready series per chunk when sent by reference. */
#ifndef FRONTEND_REF_PART
#define FRONTEND_REF_PART (256 * 1024)
#endif

/* An answer assembled from ready series, sent as it is produced (a large one goes out chunked, as the
 * querier sends it): no buffer of its size. A large uncompressed one is sent from where the series'
 * points texts are (lent cache entries, the request's arena: both stay until the request ends), only
 * the labels and punctuation between them written out. Returns true when a stream is left open for
 * the caller to end (end false; a compressed one always ends here). */
static bool respond_frags(frontend_t *fe, http_req_t *r, const chain_t *ch, bool end)
{
	common_headers(r);
	if (ch->nwarn)
		http_add_header(r, "Cache-Control", "no-store");
	size_t pts = 0;
	for (size_t i = 0; i < ch->nfrags; i++)
		for (size_t j = 0; j < ch->frags[i]->n; j++)
			pts += ch->frags[i]->s[j].pts.n;
	if (!fe->c.compress_responses && pts >= API_STREAM_MIN_BYTES) {
		/* as large as that, the answer would have gone out chunked anyway */
		http_stream_begin(r, 200, "application/json");
		promresp_iov_sink_t o = {.a = &r->arena,
		                         .part = FRONTEND_REF_PART,
		                         .max_iov = HTTP_STREAM_IOV_MAX,
		                         .write = frag_writev,
		                         .arg = r};
		promresp_frag_encode_iov(ch->frags, ch->nfrags, ch->warn, ch->nwarn, &o);
		if (end)
			http_stream_end(r);
		return !end;
	}
	frag_out_t x = {.r = r, .z = fe->c.compress_responses, .b = BUF_INIT};
	if (x.z) {
		api_json_out_init(&x.o, r, 200);
		promresp_frag_encode(&x.o.b, ch->frags, ch->nfrags, ch->warn, ch->nwarn, frag_flush, &x);
		api_json_out_end(&x.o);
		return false;
	}
	promresp_frag_encode(&x.b, ch->frags, ch->nfrags, ch->warn, ch->nwarn, frag_flush, &x);
	bool open = false;
	if (x.streaming) {
		frag_write(&x, true);
		if (end)
			http_stream_end(r);
		open = !end;
	} else {
		http_respond_buf(r, 200, "application/json", &x.b);
	}
	buf_release(&x.b);
	return open;
}

/* Keep an answer's body as the ready answer when run_pieces found every point of it cached. */
static void keep_ready(const chain_t *ch, const buf_t *body)
{
	if (!ch->jkey || !ch->json_ok || ch->frag)
		return;
	buf_t v = BUF_INIT;
	extents_json_encode(&v, str_c(ch->jkey), ch->fp, ch->npieces, body->p, body->n);
	fecache_put(ch->cache, (str_t){ch->jhkey, 16}, v.p, v.n);
	buf_release(&v);
}

/* Whether one extent of ex holds the whole of [start, end]. */
static bool extents_cover(const extents_t *ex, int64_t start, int64_t end)
{
	for (size_t i = 0; i < ex->n; i++)
		if (ex->v[i].start <= start && ex->v[i].end >= end)
			return true;
	return false;
}

/* Whether every extent of ex ends by t (none holds a point after it). */
static bool extents_end_by(const extents_t *ex, int64_t t)
{
	for (size_t i = 0; i < ex->n; i++)
		if (ex->v[i].end > t)
			return false;
	return true;
}

/* ------------------------------------------------------------------ updates after the answer */

static bool upd_pending(const frontend_t *fe, const str_t *keys, size_t n)
{
	for (size_t i = 0; i < fe->nupd; i++)
		for (size_t k = 0; k < n; k++)
			if (keys[k].n == 16 && memcmp(fe->upd[i], keys[k].p, 16) == 0)
				return true;
	return false;
}

/* Before reading keys: wait while an update of any of them runs. */
static void upd_wait(frontend_t *fe, const str_t *keys, size_t n)
{
	pthread_mutex_lock(&fe->upd_mu);
	while (fe->nupd && upd_pending(fe, keys, n))
		pthread_cond_wait(&fe->upd_cv, &fe->upd_mu);
	pthread_mutex_unlock(&fe->upd_mu);
}

/* The keys update_pieces may put (each piece not answered wholly by its ready series: its extents
 * and its ready series), registered before the answer ends; upd_done removes them. */
static void upd_begin(frontend_t *fe, const chain_t *ch, const piece_t *pc, size_t n)
{
	pthread_mutex_lock(&fe->upd_mu);
	for (size_t i = 0; i < n; i++) {
		if (pc[i].frag_hit || !pc[i].key)
			continue;
		if (fe->nupd + 2 > fe->capupd) {
			fe->capupd = fe->capupd ? 2 * fe->capupd : 16;
			fe->upd = xrealloc(fe->upd, st_mult(fe->capupd, sizeof *fe->upd));
		}
		memcpy(fe->upd[fe->nupd++], pc[i].hkey, 16);
		if (ch->frag)
			memcpy(fe->upd[fe->nupd++], pc[i].fhkey, 16);
	}
	pthread_mutex_unlock(&fe->upd_mu);
}

static void upd_done(frontend_t *fe, const chain_t *ch, const piece_t *pc, size_t n)
{
	pthread_mutex_lock(&fe->upd_mu);
	for (size_t i = 0; i < n; i++) {
		if (pc[i].frag_hit || !pc[i].key)
			continue;
		for (int k = 0; k < 1 + ch->frag; k++) {
			const char *key = k ? pc[i].fhkey : pc[i].hkey;
			for (size_t j = 0; j < fe->nupd; j++)
				if (memcmp(fe->upd[j], key, 16) == 0) { /* one registration of it */
					memmove(fe->upd[j], fe->upd[j + 1],
					        (fe->nupd - j - 1) * sizeof *fe->upd);
					fe->nupd--;
					break;
				}
		}
	}
	pthread_cond_broadcast(&fe->upd_cv);
	pthread_mutex_unlock(&fe->upd_mu);
}

/* Run the pieces: cache lookups (one batch), downstream calls (one parallel batch), merges and cache
 * updates. Returns 0 with *out, 1 with ch->json (a ready answer whose pieces' extents are unchanged;
 * nothing decoded), 2 with ch->body (ch->frag: the answer assembled from each piece's ready series,
 * pieces without them made from their extents), or -1 with ch->failed / an error already answered
 * (returns -2). */
static int run_pieces(chain_t *ch, piece_t *pc, size_t n, promresp_t *out)
{
	http_req_t *r = ch->r;
	arena_t *a = &r->arena;
	frontend_t *fe = ch->fe;
	uint64_t t_cache = clock_mono_ns();
	ch->npieces = n;
	/* 1. cache lookups */
	size_t nk = 0;
	str_t *keys = ARENA_NEW_ARRAY(a, str_t, 2 * n + 2), *vals = ARENA_NEW_ARRAY(a, str_t, 2 * n + 2);
	bool *found = ARENA_NEW_ARRAY(a, bool, 2 * n + 2);
	size_t *kidx = ARENA_NEW_ARRAY(a, size_t, n + 2);
	for (size_t i = 0; i < n; i++)
		if (pc[i].key) {
			extents_hash_key(str_c(pc[i].key), pc[i].hkey);
			keys[nk] = (str_t){pc[i].hkey, 16};
			kidx[nk++] = i;
		}
	/* a ready answer only when every piece is cached under a key (kidx[i] == i then) */
	bool json = ch->jkey && nk == n && n > 0, frag = json && ch->frag;
	ch->json_ok = json;
	/* with ready series the whole answer is not kept too: assembling it costs no more than copying */
	bool whole = json && !frag;
	size_t nget = nk;
	if (json)
		ch->fp = ARENA_NEW_ARRAY(a, extents_fp_t, n);
	if (whole) {
		extents_hash_key(str_c(ch->jkey), ch->jhkey);
		keys[nget++] = (str_t){ch->jhkey, 16};
	}
	for (size_t i = 0; frag && i < n; i++) {
		extents_hash_key(str_c(pc[i].fkey), pc[i].fhkey);
		keys[nget++] = (str_t){pc[i].fhkey, 16};
	}
	/* the pieces' extents: first only their fingerprints (IN-MEMORY copies nothing), their values
	 * below for the pieces that are not answered by ready data */
	upd_wait(fe, keys, nget);
	bool *peek = ARENA_NEW_ARRAY(a, bool, nget + 1);
	extents_fp_t *fps = ARENA_NEW_ARRAY(a, extents_fp_t, nget + 1);
	for (size_t k = 0; k < nk; k++)
		peek[k] = json;
	if (nget)
		fecache_get_multi_fp(ch->cache, keys, nget, json ? peek : NULL, a, vals, found,
		                     json ? fps : NULL);
	if (json) {
		bool all = true;
		for (size_t k = 0; k < nk; k++)
			if (found[k])
				ch->fp[k] = fps[k];
			else
				all = false;
		if (whole && all && found[nk] &&
		    extents_json_decode(vals[nk], str_c(ch->jkey), ch->fp, n, &ch->json)) {
			observe("results_cache", 200, ch->tripperware, t_cache);
			return 1;
		}
		for (size_t i = 0; frag && i < n; i++) {
			str_t body;
			size_t k = nk + i;
			int64_t fs, fe_ms;
			piece_t *p = &pc[i];
			/* made from the piece's extents as they are for a range on its grid holding its
			 * start: cut to the piece; when it ends before the piece, the rest comes later */
			if (!found[i] || !found[k] ||
			    !extents_json_decode(vals[k], str_c(p->fkey), &ch->fp[i], 1, &body) ||
			    !extents_frag_decode(a, body, &p->frag, &fs, &fe_ms) || fs > p->start ||
			    fe_ms < p->start || (p->start - fs) % ch->step != 0)
				continue;
			int64_t to = fe_ms < p->end ? fe_ms : p->end;
			if ((fs != p->start || fe_ms != to) && !promresp_frag_cut(&p->frag, p->start, to))
				continue;
			p->frag_hit = to == p->end;
			p->frag_head = !p->frag_hit;
			p->frag_end = to;
		}
		size_t nv = 0;
		str_t *vk = ARENA_NEW_ARRAY(a, str_t, nk + 1), *vv = ARENA_NEW_ARRAY(a, str_t, nk + 1);
		bool *vf = ARENA_NEW_ARRAY(a, bool, nk + 1);
		for (size_t k = 0; k < nk; k++)
			if (found[k] && !vals[k].p && !pc[k].frag_hit)
				vk[nv++] = keys[k];
		if (nv)
			fecache_get_values(ch->cache, vk, nv, a, vv, vf);
		for (size_t k = 0, m = 0; k < nk; k++) {
			if (!found[k] || vals[k].p || pc[k].frag_hit)
				continue;
			/* evicted or replaced since the peek: what is decoded is what gets fingerprinted */
			found[k] = vf[m];
			vals[k] = vv[m++];
			extents_fp_t was = ch->fp[k];
			if (found[k])
				ch->fp[k] = fecache_fingerprint(vals[k].p, vals[k].n);
			if (!found[k] || ch->fp[k].len != was.len || ch->fp[k].hash != was.hash)
				pc[k].frag_head = false; /* its ready head was made from what was there before */
		}
	}
	for (size_t k = 0; k < nk; k++) {
		piece_t *p = &pc[kidx[k]];
		/* a ready head matched these extents byte for byte: they hold [start, frag_end] */
		p->ex_late = found[k] && p->frag_head && (p->frag_end - p->start) % ch->step == 0 &&
		             p->frag_end + ch->step <= p->end;
		if (p->ex_late)
			p->ex_val = vals[k];
		else if (found[k] && !p->frag_hit &&
		         !extents_decode(a, ch->kind, vals[k], str_c(p->key), fe->c.snappy, &p->ex))
			memset(&p->ex, 0, sizeof p->ex);
	}
	/* 2. plan */
	size_t ncalls = 0;
	for (size_t i = 0; i < n; i++) {
		piece_t *p = &pc[i];
		if (p->frag_hit) {
			memset(&p->plan, 0, sizeof p->plan);
		} else if (p->ex_late) {
			memset(&p->plan, 0, sizeof p->plan);
			p->plan.fetch = ARENA_NEW(a, split_piece_t);
			p->plan.fetch[0] = (split_piece_t){p->frag_end + ch->step, p->end};
			p->plan.nfetch = 1;
		} else if (p->key) {
			extents_partition(a, &p->ex, p->start, p->end, ch->step, ch->need_stats, &p->plan);
		} else {
			p->plan.fetch = ARENA_NEW(a, split_piece_t);
			p->plan.fetch[0] = (split_piece_t){p->start, p->end};
			p->plan.nfetch = 1;
		}
		p->call0 = ncalls;
		ncalls += p->plan.nfetch;
	}
	/* 3. downstream */
	uint64_t t_retry = clock_mono_ns();
	ds_call_t *calls = ARENA_NEW_ARRAY(a, ds_call_t, ncalls + 1);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < pc[i].plan.nfetch; j++)
			ch->fill(ch, &calls[pc[i].call0 + j], pc[i].plan.fetch[j].start,
			         pc[i].plan.fetch[j].end);
	ch->calls = calls;
	ch->ncalls = ncalls;
	downstream_run(fe->c.downstream, r, calls, ncalls, ch->parallel, ch->tries, ch->tripperware);
	int status = 200;
	for (size_t i = 0; i < ncalls; i++)
		if (!ds_call_ok(&calls[i])) {
			ch->failed = &calls[i];
			status = calls[i].rc ? 502 : (int)calls[i].resp.status;
			break;
		}
	observe("retry", status, ch->tripperware, t_retry);
	if (ch->failed)
		return -1;
	promresp_t *fetched = ARENA_NEW_ARRAY(a, promresp_t, ncalls + 1);
	for (size_t i = 0; i < ncalls; i++) {
		err_t err = {0};
		ch->bytes += calls[i].resp.body.n;
		if (promresp_decode(a, ch->kind, calls[i].resp.body.p, calls[i].resp.body.n, &fetched[i],
		                    &err)) {
			respond_error(r, API_ERR_INTERNAL,
			              arena_printf(a, "query frontend: downstream answer: %s", err.msg));
			return -2;
		}
	}
	/* 4. merge each piece */
	for (size_t i = 0; i < n; i++) {
		piece_t *p = &pc[i];
		if (p->frag_hit)
			continue;
		size_t nin = p->plan.ncached + p->plan.nfetch;
		const promresp_t **in = ARENA_NEW_ARRAY(a, const promresp_t *, nin + 1);
		for (size_t j = 0; j < p->plan.ncached; j++)
			in[j] = &p->plan.cached[j];
		for (size_t j = 0; j < p->plan.nfetch; j++)
			in[p->plan.ncached + j] = &fetched[p->call0 + j];
		if (p->ex_late ||
		    (frag && p->frag_head && p->plan.nfetch == 1 && extents_end_by(&p->ex, p->frag_end))) {
			/* only its points after frag_end are rendered and they all come from the one fetch:
			 * no merge with the cached day (the cache update merges the extents themselves) */
			p->result = fetched[p->call0];
			continue;
		}
		if (nin == 1)
			p->result = *in[0];
		else
			promresp_merge(a, in, nin, &p->result);
	}
	ch->pc = pc;
	ch->fetched = fetched;
	if (frag) { /* the answer from each piece's ready series; the cache is updated once it is sent */
		const promresp_frag_t **f = ARENA_NEW_ARRAY(a, const promresp_frag_t *, 2 * n);
		size_t nw = 0, nf = 0;
		for (size_t i = 0; i < n; i++)
			nw += pc[i].frag_hit ? 0 : pc[i].result.nwarnings;
		str_t *w = ARENA_NEW_ARRAY(a, str_t, nw + 1);
		nw = 0;
		for (size_t i = 0; i < n; i++) {
			piece_t *p = &pc[i];
			f[nf++] = &p->frag;
			if (p->frag_hit)
				continue;
			for (size_t j = 0; j < p->result.nwarnings; j++)
				w[nw++] = p->result.warnings[j];
			if (p->frag_head) { /* the ready head, then the points after it */
				promresp_t tail;
				promresp_extract(a, &p->result, p->frag_end + 1, p->end, &tail);
				promresp_frag_make(a, &tail, &p->tail);
				f[nf++] = &p->tail;
			} else {
				promresp_frag_make(a, &p->result, &p->frag);
			}
		}
		ch->frags = f;
		ch->nfrags = nf;
		ch->warn = w;
		ch->nwarn = nw;
		ch->t_cache = t_cache;
		return 2;
	}
	update_pieces(ch);
	if (n == 1) {
		*out = pc[0].result;
	} else {
		const promresp_t **in = ARENA_NEW_ARRAY(a, const promresp_t *, n);
		for (size_t i = 0; i < n; i++)
			in[i] = &pc[i].result;
		promresp_merge(a, in, n, out);
	}
	if (ch->cache)
		observe("results_cache", 200, ch->tripperware, t_cache);
	return 0;
}

/* After run_pieces: the cache updated with what was fetched (extents merged and put), and with ready series
 * each piece now wholly cached (ch->frag). An answer made of ready series is sent first (its bytes go out
 * while this runs; it ends when the request's work returns, so the next request sees the cache updated). */
static void update_pieces(chain_t *ch)
{
	arena_t *a = &ch->r->arena;
	piece_t *pc = ch->pc;
	size_t n = ch->npieces;
	const promresp_t *fetched = ch->fetched;
	bool json = ch->fp != NULL;
	buf_t val = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		piece_t *p = &pc[i];
		if (p->frag_hit) {
			p->whole = true;
			continue;
		}
		p->whole = p->key && !p->plan.nfetch;
		if (!p->key || !p->plan.nfetch)
			continue;
		bool put = false;
		extent_t *added = ARENA_NEW_ARRAY(a, extent_t, p->plan.nfetch);
		size_t nadded = 0;
		for (size_t j = 0; j < p->plan.nfetch; j++) {
			split_piece_t f = p->plan.fetch[j];
			const ds_call_t *c = &ch->calls[p->call0 + j];
			if (!response_cacheable(c, &fetched[p->call0 + j]))
				continue;
			if (ch->max_at > ch->max_cache_time)
				continue; /* `@` after the freshness limit: that data may still change */
			added[nadded++] = (extent_t){f.start, f.end, fetched[p->call0 + j]};
		}
		if (nadded && p->ex_late &&
		    !extents_decode(a, ch->kind, p->ex_val, str_c(p->key), ch->fe->c.snappy, &p->ex))
			memset(&p->ex, 0, sizeof p->ex);
		if (nadded) {
			extents_t merged;
			extents_merge(a, &p->ex, added, nadded, ch->grid_start, ch->step, &merged);
			extents_trim(a, &merged, ch->max_cache_time, ch->step);
			if (merged.n) {
				extents_encode(&val, str_c(p->key), &merged, ch->fe->c.snappy);
				fecache_put(ch->cache, (str_t){p->hkey, 16}, val.p, val.n);
				/* the answer is ready for next time only if all of this piece is now cached
				 */
				put = nadded == p->plan.nfetch && extents_cover(&merged, p->start, p->end);
				if (put && json) /* what the piece's ready series will be checked against */
					ch->fp[i] = fecache_fingerprint(val.p, val.n);
			}
		}
		if (!put)
			ch->json_ok = false;
		p->whole = put;
	}
	for (size_t i = 0; ch->frag && ch->frags && i < n; i++) { /* ready series of pieces wholly cached */
		piece_t *p = &pc[i];
		if (p->frag_hit || !p->whole || p->result.nwarnings)
			continue;
		const promresp_frag_t *parts[2] = {&p->frag, &p->tail};
		buf_reset(&val);
		extents_json_head(&val, str_c(p->fkey), &ch->fp[i], 1);
		extents_frag_encode_join(&val, parts, 1 + p->frag_head, p->start, p->end);
		fecache_put(ch->cache, (str_t){p->fhkey, 16}, val.p, val.n);
	}
	buf_release(&val);
	if (ch->frags)
		observe("results_cache", 200, ch->tripperware, ch->t_cache);
}

/* The downstream bodies are freed here, and what jansson decoded them into (many small malloc blocks,
 * not the request arena) has been: both count towards the process's heap trim (alloc_note_freed), as
 * arenas do, so the frontend's size follows its cache, not its peaks. */
static void release_calls(chain_t *ch)
{
	for (size_t i = 0; i < ch->ncalls; i++)
		ds_call_release(&ch->calls[i]);
	ch->ncalls = 0;
	alloc_note_freed(ch->bytes);
	ch->bytes = 0;
}

/* ------------------------------------------------------------------ range queries */

typedef struct range_req {
	str_t query;
	int64_t step;
	str_t stats; /* the client's stats parameter */
	bool partial;
	const char *max_res; /* max_source_resolution to send ("auto", seconds) or NULL */
	int64_t max_res_ms;
	str_t user;
} range_req_t;

static const char *const range_skip[] = {
    "query", "start", "end", "step", "stats", "partial_response", "max_source_resolution", NULL};

static void range_fill(chain_t *ch, ds_call_t *c, int64_t start, int64_t end)
{
	range_req_t *q = ch->arg;
	ds_call_init(c, "POST", STR("/api/v1/query_range"));
	buf_t *b = &c->params;
	add_param(b, "query", q->query);
	add_param_ms(b, "start", start);
	add_param_ms(b, "end", end);
	add_param_ms(b, "step", q->step);
	pass_params(b, ch->r, range_skip);
	add_param(b, "partial_response", str_c(bool_str(q->partial)));
	if (q->stats.n)
		add_param(b, "stats", STR("all")); /* per-step counts let cached parts be cut exactly */
	if (q->max_res)
		add_param(b, "max_source_resolution", str_c(q->max_res));
}

static int str_t_cmp(const void *a, const void *b)
{
	return str_cmp(*(const str_t *)a, *(const str_t *)b);
}

/* The §7.3 key of the piece starting at start. */
static char *range_key(frontend_t *fe, http_req_t *r, const range_req_t *q, int64_t start)
{
	static const int64_t res[] = {3600000, 300000, 0};
	int ri = 0;
	while (ri < 3 && res[ri] > q->max_res_ms)
		ri++;
	str_t v;
	int64_t lookback = 0;
	if (http_req_param(r, "lookback_delta", &v) && v.n) {
		err_t e = {0};
		api_parse_duration(v, &lookback, &e);
	}
	str_t engine = STR("");
	http_req_param(r, "engine", &engine);
	bool analyze = false;
	if (http_req_param(r, "analyze", &v))
		parse_bool(v, &analyze);
	size_t nrl = url_params_all(&r->form, "replicaLabels[]", NULL, 0);
	str_t *rl = ARENA_NEW_ARRAY(&r->arena, str_t, nrl + 1);
	url_params_all(&r->form, "replicaLabels[]", rl, nrl);
	qsort(rl, nrl, sizeof *rl, str_t_cmp);
	buf_t rls = BUF_INIT;
	for (size_t i = 0; i < nrl; i++) {
		if (i)
			buf_putc(&rls, ',');
		buf_append_str(&rls, rl[i]);
	}
	int64_t iv = fe->c.split_interval_ms;
	char *key = arena_printf(
	    &r->arena, "fe:" STR_FMT ":" STR_FMT ":%lld:%lld:%lld:%d:-:%lld:" STR_FMT ":%s:%s:%s",
	    STR_ARG(q->user), STR_ARG(q->query), (long long)q->step, (long long)iv, (long long)(start / iv),
	    ri, (long long)lookback, STR_ARG(engine), bool_str(q->partial), rls.p, bool_str(analyze));
	buf_release(&rls);
	return key;
}

static int run_range(frontend_t *fe, chain_t *ch, range_req_t *q, int64_t start, int64_t end, bool cacheable,
                     promresp_t *out)
{
	http_req_t *r = ch->r;
	split_piece_t *sp;
	size_t n = split_range(&r->arena, start, end, q->step, fe->c.split_interval_ms, &sp);
	metric_add(metric_with(m_split, "query_range"), (double)n);
	piece_t *pc = ARENA_NEW_ARRAY(&r->arena, piece_t, n);
	for (size_t i = 0; i < n; i++) {
		pc[i].start = sp[i].start;
		pc[i].end = sp[i].end;
		if (cacheable && sp[i].start <= ch->max_cache_time)
			pc[i].key = range_key(fe, r, q, sp[i].start);
	}
	if (ch->want_json) { /* the ready answer's key names everything the body depends on */
		buf_t k = BUF_INIT;
		buf_printf(&k, "fe-json:%lld:%lld:%lld:" STR_FMT, (long long)start, (long long)end,
		           (long long)q->step, STR_ARG(q->stats));
		for (size_t i = 0; i < n && pc[i].key; i++) {
			buf_putc(&k, '\n');
			buf_puts(&k, pc[i].key);
		}
		ch->jkey = arena_strndup(&r->arena, k.p, k.n);
		buf_release(&k);
		ch->frag = !q->stats.n;
		for (size_t i = 0; ch->frag && i < n && pc[i].key; i++)
			pc[i].fkey = arena_printf(&r->arena, "fe-frag2:%s", pc[i].key);
	}
	return run_pieces(ch, pc, n, out);
}

static void range_work(http_req_t *r, void *arg)
{
	frontend_t *fe = arg;
	uint64_t t0 = clock_mono_ns();
	str_t qs = STR(""), s = STR(""), e = STR(""), st = STR(""), v;
	http_req_param(r, "query", &qs);
	http_req_param(r, "start", &s);
	http_req_param(r, "end", &e);
	http_req_param(r, "step", &st);
	err_t err = {0};
	int64_t start, end, step;
	range_req_t q = {.step = 0};
	if (!qs.n || api_range_params(s, e, st, &start, &end, &step, &err))
		goto proxy; /* the querier answers with its own error */
	if (fe->c.max_query_length_ms && end - start > fe->c.max_query_length_ms) {
		buf_t a = BUF_INIT, b = BUF_INIT;
		duration_format(&a, end - start);
		duration_format(&b, fe->c.max_query_length_ms);
		respond_error(
		    r, API_ERR_BAD_DATA,
		    arena_printf(&r->arena,
		                 "the query time range exceeds the limit (query length: %s, limit: %s)", a.p,
		                 b.p));
		buf_release(&a);
		buf_release(&b);
		observe("limits", 400, "query_range", t0);
		goto done;
	}
	if (fe->c.align_range_with_step) {
		start = split_align(start, step);
		end = split_align(end, step);
	}
	bool changed;
	int64_t max_at;
	if (split_resolve_at(&r->arena, qs, start, end, &q.query, &changed, &max_at, &err))
		goto proxy;
	q.step = step;
	http_req_param(r, "stats", &q.stats);
	q.partial = fe->c.partial_response;
	if (http_req_param(r, "partial_response", &v) && v.n && !parse_bool(v, &q.partial))
		goto proxy;
	q.user = downstream_tenant(fe->c.downstream, r);
	bool auto_res = false;
	if (http_req_param(r, "max_source_resolution", &v) && v.n) {
		if (str_eq_c(v, "auto")) {
			auto_res = true;
			q.max_res_ms = step / 5;
			q.max_res = "auto";
		} else if (api_parse_duration(v, &q.max_res_ms, &err) || q.max_res_ms < 0) {
			goto proxy;
		} else {
			q.max_res = arena_strndup(&r->arena, v.p, v.n);
		}
	}
	chain_t ch = {.fe = fe,
	              .r = r,
	              .kind = PROMRESP_MATRIX,
	              .tripperware = "query_range",
	              .cache = fe->c.range_cache,
	              .step = step,
	              .grid_start = start,
	              .max_cache_time = clock_now_ms() - fe->c.max_freshness_ms,
	              .max_at = max_at,
	              .need_stats = q.stats.n > 0,
	              .parallel = fe->c.max_parallelism,
	              .tries = fe->c.max_retries,
	              .fill = range_fill,
	              .arg = &q};
	bool cacheable = ch.cache && fe->c.split_interval_ms > 0 && request_cacheable(r);
	promresp_t res;
	int rc;
	if (!auto_res || !fe->c.request_downsampled) {
		ch.want_json = cacheable;
		rc = run_range(fe, &ch, &q, start, end, cacheable, &res);
	} else {
		/* downsampled: where the answer starts late or is empty, ask coarser resolutions for the rest
		 */
		static const int64_t resolutions[] = {300000, 3600000};
		promresp_t *parts = ARENA_NEW_ARRAY(&r->arena, promresp_t, 3);
		size_t nparts = 0, i = 0;
		int64_t cur = q.max_res_ms, e2 = end;
		rc = 0;
		while (i < ARRAY_LEN(resolutions)) {
			if (nparts)
				metric_inc(m_downsampled);
			rc = run_range(fe, &ch, &q, start, e2, cacheable, &parts[nparts]);
			if (rc)
				break;
			int64_t m = promresp_min_time(&parts[nparts++]);
			for (; i < ARRAY_LEN(resolutions); i++)
				if (cur < resolutions[i]) {
					cur = resolutions[i];
					q.max_res_ms = cur;
					q.max_res = arena_printf(&r->arena, "%lld", (long long)(cur / 1000));
					break;
				}
			if (m == start)
				break;
			if (m >= 0)
				e2 = m - step;
			if (start > e2)
				break;
			release_calls(&ch);
		}
		if (!rc) {
			const promresp_t **in = ARENA_NEW_ARRAY(&r->arena, const promresp_t *, nparts);
			for (size_t k = 0; k < nparts; k++)
				in[k] = &parts[k];
			promresp_merge(&r->arena, in, nparts, &res);
		}
	}
	if (rc == -1)
		downstream_respond(r, ch.failed);
	else if (rc == 0)
		respond_merged(fe, r, &res, q.stats.n > 0, str_eq_c(q.stats, "all"), &ch);
	else if (rc == 1)
		respond_ready(fe, r, ch.json);
	else if (rc == 2) {
		/* A refresh's answer (at most two pieces fetched something: its new steps) ends before the
		 * cache update, registered first (upd_begin: the next request reading those keys waits for
		 * it). A larger update (a first load: every piece's extents and ready series) ends the answer
		 * after it, as before: ending first let the client's next request run beside it, both
		 * requests' decoded answers in memory at once (RSS with the 256 MiB cache filled by
		 * sequential first loads: 271 -> 338 MiB). */
		size_t nupd = 0;
		for (size_t i = 0; i < ch.npieces; i++)
			nupd += !ch.pc[i].frag_hit && ch.pc[i].key && ch.pc[i].plan.nfetch;
		upd_begin(fe, &ch, ch.pc, ch.npieces);
		bool open = respond_frags(fe, r, &ch, nupd <= 2);
		update_pieces(&ch);
		upd_done(fe, &ch, ch.pc, ch.npieces);
		if (open)
			http_stream_end(r);
	}
	observe("step_align",
	        rc >= 0    ? 200
	        : rc == -1 ? (int)(ch.failed->rc ? 502 : ch.failed->resp.status)
	                   : 500,
	        "query_range", t0);
	release_calls(&ch);
	goto done;
proxy:
	downstream_proxy(fe->c.downstream, r, fe->c.max_retries, "query_range");
done:
	slow_log(fe, r, t0);
}

/* ------------------------------------------------------------------ labels and series */

typedef struct labels_req {
	str_t path;
	bool partial;
	bool get;
} labels_req_t;

static const char *const labels_skip[] = {"start", "end", "partial_response", NULL};

static void labels_fill(chain_t *ch, ds_call_t *c, int64_t start, int64_t end)
{
	labels_req_t *q = ch->arg;
	ds_call_init(c, q->get ? "GET" : "POST", q->path);
	add_param_ms(&c->params, "start", start);
	add_param_ms(&c->params, "end", end);
	pass_params(&c->params, ch->r, labels_skip);
	add_param(&c->params, "partial_response", str_c(bool_str(q->partial)));
}

static void labels_work(http_req_t *r, void *arg)
{
	frontend_t *fe = arg;
	uint64_t t0 = clock_mono_ns();
	str_t s = STR(""), e = STR(""), v;
	http_req_param(r, "start", &s);
	http_req_param(r, "end", &e);
	err_t err = {0};
	int64_t now = clock_now_ms(), start, end;
	labels_req_t q = {.path = r->path, .partial = fe->c.labels_partial_response};
	bool series = str_eq_c(r->path, "/api/v1/series");
	str_t name = STR("");
	if (str_has_prefix(r->path, STR("/api/v1/label/"))) {
		name = str_sub(r->path, 14, r->path.n - 7); /* between "label/" and "/values" */
		q.get = true;
	}
	if (api_param_time(e, "end", now, &end, &err) ||
	    api_param_time(s, "start", end - fe->c.labels_default_range_ms, &start, &err) || end < start ||
	    (series && !url_params_all(&r->form, "match[]", NULL, 0)) ||
	    (http_req_param(r, "partial_response", &v) && v.n && !parse_bool(v, &q.partial))) {
		downstream_proxy(fe->c.downstream, r, fe->c.labels_max_retries, "labels");
		slow_log(fe, r, t0);
		return;
	}
	chain_t ch = {.fe = fe,
	              .r = r,
	              .kind = series ? PROMRESP_SERIES : PROMRESP_LABELS,
	              .tripperware = "labels",
	              .cache = fe->c.labels_cache,
	              .step = 1,
	              .grid_start = 0,
	              .max_cache_time = now - fe->c.labels_max_freshness_ms,
	              .max_at = INT64_MIN,
	              .parallel = fe->c.labels_max_parallelism,
	              .tries = fe->c.labels_max_retries,
	              .fill = labels_fill,
	              .arg = &q};
	int64_t iv = fe->c.labels_split_interval_ms;
	split_piece_t *sp;
	size_t n = split_labels(&r->arena, start, end, iv, &sp);
	metric_add(metric_with(m_split, "labels"), (double)n);
	bool cacheable = ch.cache && iv > 0 && request_cacheable(r);
	buf_t m = BUF_INIT;
	size_t nm = url_params_all(&r->form, "match[]", NULL, 0);
	str_t *ms = ARENA_NEW_ARRAY(&r->arena, str_t, nm + 1);
	url_params_all(&r->form, "match[]", ms, nm);
	buf_putc(&m, '[');
	for (size_t i = 0; i < nm; i++) {
		if (i)
			buf_putc(&m, ' ');
		buf_append_str(&m, ms[i]);
	}
	buf_putc(&m, ']');
	str_t user = downstream_tenant(fe->c.downstream, r);
	piece_t *pc = ARENA_NEW_ARRAY(&r->arena, piece_t, n);
	for (size_t i = 0; i < n; i++) {
		pc[i].start = sp[i].start;
		pc[i].end = sp[i].end;
		if (!cacheable || sp[i].start > ch.max_cache_time)
			continue;
		int64_t idx = sp[i].start / iv;
		pc[i].key =
		    series ? arena_printf(&r->arena, "fe:" STR_FMT ":%s:%lld:%lld", STR_ARG(user), m.p,
		                          (long long)iv, (long long)idx)
		           : arena_printf(&r->arena, "fe:" STR_FMT ":" STR_FMT ":%s:%lld:%lld", STR_ARG(user),
		                          STR_ARG(name), m.p, (long long)iv, (long long)idx);
	}
	buf_release(&m);
	promresp_t res;
	int rc = run_pieces(&ch, pc, n, &res);
	if (rc == -1)
		downstream_respond(r, ch.failed);
	else if (rc == 0)
		respond_merged(fe, r, &res, false, false, NULL);
	observe("split_interval", rc == 0 ? 200 : 500, "labels", t0);
	release_calls(&ch);
	slow_log(fe, r, t0);
}

/* ------------------------------------------------------------------ routing */

static void instant_work(http_req_t *r, void *arg)
{
	frontend_t *fe = arg;
	uint64_t t0 = clock_mono_ns();
	downstream_proxy(fe->c.downstream, r, fe->c.instant_max_retries, "query");
	slow_log(fe, r, t0);
}

static void proxy_work(http_req_t *r, void *arg)
{
	frontend_t *fe = arg;
	downstream_proxy(fe->c.downstream, r, 1, "other");
}

static void h_range(http_req_t *r, void *arg)
{
	metric_inc(metric_with(m_queries, "query_range"));
	http_run_on_worker(r, range_work, arg);
}

static void h_instant(http_req_t *r, void *arg)
{
	metric_inc(metric_with(m_queries, "query"));
	http_run_on_worker(r, instant_work, arg);
}

static void h_labels(http_req_t *r, void *arg)
{
	const char *op = str_eq_c(r->path, "/api/v1/series")   ? "series"
	                 : str_eq_c(r->path, "/api/v1/labels") ? "label_names"
	                                                       : "label_values";
	if (!str_eq_c(r->path, "/api/v1/series") && !str_eq_c(r->path, "/api/v1/labels") &&
	    !str_has_suffix(r->path, STR("/values"))) {
		http_run_on_worker(r, proxy_work, arg);
		return;
	}
	metric_inc(metric_with(m_queries, op));
	http_run_on_worker(r, labels_work, arg);
}

static void h_proxy(http_req_t *r, void *arg)
{
	http_run_on_worker(r, proxy_work, arg);
}

frontend_t *frontend_new(http_server_t *srv, const frontend_config_t *cfg)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init_metrics);
	frontend_t *fe = xcalloc(1, sizeof *fe);
	fe->c = *cfg;
	fe->srv = srv;
	pthread_mutex_init(&fe->mu, NULL);
	pthread_cond_init(&fe->cv, NULL);
	pthread_mutex_init(&fe->upd_mu, NULL);
	pthread_cond_init(&fe->upd_cv, NULL);
	unsigned qm = HTTP_M_GET | HTTP_M_POST;
	http_handle(srv, qm, "/api/v1/query_range", h_range, fe);
	http_handle(srv, qm, "/api/v1/query", h_instant, fe);
	http_handle(srv, qm, "/api/v1/labels", h_labels, fe);
	http_handle(srv, qm, "/api/v1/series", h_labels, fe);
	http_handle(srv, HTTP_M_GET, "/api/v1/label/*", h_labels, fe);
	http_handle(srv, HTTP_M_ANY, "/*", h_proxy, fe);
	return fe;
}

/* ------------------------------------------------------------------ readiness */

static void *probe_main(void *arg)
{
	frontend_t *fe = arg;
	char url[1024];
	snprintf(url, sizeof url, "%s/-/ready", downstream_url(fe->c.downstream));
	bool ready = false;
	pthread_mutex_lock(&fe->mu);
	while (!fe->stop) {
		pthread_mutex_unlock(&fe->mu);
		httpc_req_t req = {.url = url,
		                   .timeout_ms = 5000,
		                   .connect_timeout_ms = 2000,
		                   .cfg = downstream_httpcfg(fe->c.downstream)};
		httpc_resp_t resp;
		httpc_resp_init(&resp);
		err_t err = {0};
		/* A querier behind basic auth answers the probe 401: it is up, and the clients' requests
		 * carry their credentials (--query-frontend.forward-header=Authorization). */
		bool ok = httpc_do(&req, &resp, &err) == 0 &&
		          (resp.status == 200 || resp.status == 401 || resp.status == 403);
		httpc_resp_release(&resp);
		if (ok != ready) {
			ready = ok;
			/* the refreshes' single calls then reuse connections from the start, as they do
			 * once a refresh has run (one per piece a query runs at once) */
			if (ok)
				downstream_warm(fe->c.downstream,
				                fe->c.max_parallelism > 0 && fe->c.max_parallelism < 32
				                    ? fe->c.max_parallelism
				                    : 32);
			http_server_set_ready(fe->srv, ok);
			if (ok)
				log_info("downstream is ready", "url", downstream_url(fe->c.downstream));
			else
				log_warn("downstream is not ready", "url", downstream_url(fe->c.downstream),
				         "err", err.code ? err.msg : "status not 200");
		}
		pthread_mutex_lock(&fe->mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ready ? 5 : 1;
		if (!fe->stop)
			pthread_cond_timedwait(&fe->cv, &fe->mu, &ts);
	}
	pthread_mutex_unlock(&fe->mu);
	return NULL;
}

void frontend_start_probe(frontend_t *fe)
{
	if (pthread_create(&fe->probe, NULL, probe_main, fe) != 0)
		die("query frontend: cannot start the readiness probe thread");
	fe->probing = true;
}

void frontend_stop_probe(frontend_t *fe)
{
	if (!fe || !fe->probing)
		return;
	pthread_mutex_lock(&fe->mu);
	fe->stop = true;
	pthread_cond_broadcast(&fe->cv);
	pthread_mutex_unlock(&fe->mu);
	pthread_join(fe->probe, NULL);
	fe->probing = false;
}

void frontend_free(frontend_t *fe)
{
	if (!fe)
		return;
	frontend_stop_probe(fe);
	pthread_mutex_destroy(&fe->mu);
	pthread_cond_destroy(&fe->cv);
	pthread_mutex_destroy(&fe->upd_mu);
	pthread_cond_destroy(&fe->upd_cv);
	free(fe->upd);
	free(fe);
}
