/*
 * peers.c — forwarding to other receivers over gRPC, with per-peer workers and backoff.
 */
#include "receive/peers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/clock.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/vec.h"
#include "base/workers.h"
#include "net/grpc_client.h"
#include "net/grpc_pool.h"

#define REMOTE_WRITE_PATH "/thanos.WriteableStore/RemoteWrite"
#define BACKOFF_MIN_MS    100

struct peer {
	peers_t *ps;
	char *address;
	grpc_channel_t *ch; /* NULL if the address is malformed (every send fails) */
	grpc_pool_t *pool;  /* the calls made from the caller's thread (peer_call_start) */
	char *bad_address;
	workers_t *workers;
	pthread_mutex_t mu;
	uint64_t backoff_until; /* clock_mono_ms */
	int64_t backoff_ms;
	metric_child_t *m_dur;
};

struct peers {
	peers_config_t c;
	loop_t *loop; /* every peer's connection (one thread for all: fewer wake-ups per write) */
	pthread_t loop_thread;
	pthread_mutex_t mu;
	hmap_t by_addr;
	VEC(peer_t *) all;
	metric_t *m_requests, *m_dur;
};

static const double dur_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

static void *loop_main(void *arg)
{
	loop_run(arg);
	return NULL;
}

static void loop_quit(void *arg)
{
	loop_stop(arg);
}

peers_t *peers_new(const peers_config_t *cfg)
{
	peers_t *ps = xcalloc(1, sizeof *ps);
	ps->c = *cfg;
	if (ps->c.max_backoff_ms <= 0)
		ps->c.max_backoff_ms = 5000;
	if (ps->c.workers_per_peer <= 0)
		ps->c.workers_per_peer = 5;
	pthread_mutex_init(&ps->mu, NULL);
	hmap_init(&ps->by_addr, 0);
	err_t err = {0};
	if (loop_new(&ps->loop, &err) != 0)
		die("peers: %s", err.msg);
	if (pthread_create(&ps->loop_thread, NULL, loop_main, ps->loop) != 0)
		die("peers: cannot start the forwarding loop thread");
	ps->m_requests = metrics_counter("thanos_receive_forward_requests_total",
	                                 "The number of forward requests.", "result");
	ps->m_dur = metrics_histogram("thanos_receive_forward_request_duration_seconds",
	                              "Duration of forward requests to each peer (RemoteWrite calls).",
	                              "endpoint", dur_buckets, ARRAY_LEN(dur_buckets));
	return ps;
}

void peers_free(peers_t *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->all.n; i++)
		workers_free(ps->all.v[i]->workers); /* their sends end (by their deadlines at worst) */
	loop_post(ps->loop, loop_quit, ps->loop);
	pthread_join(ps->loop_thread, NULL);
	for (size_t i = 0; i < ps->all.n; i++) {
		peer_t *p = ps->all.v[i];
		if (p->ch)
			grpc_channel_free(p->ch);
		grpc_pool_free(p->pool);
		pthread_mutex_destroy(&p->mu);
		free(p->address);
		free(p->bad_address);
		free(p);
	}
	VEC_FREE(&ps->all);
	loop_free(ps->loop);
	hmap_release(&ps->by_addr);
	pthread_mutex_destroy(&ps->mu);
	free(ps);
}

peer_t *peers_get(peers_t *ps, const char *address)
{
	pthread_mutex_lock(&ps->mu);
	peer_t *p = hmap_get(&ps->by_addr, str_c(address));
	if (!p) {
		p = xcalloc(1, sizeof *p);
		p->ps = ps;
		p->address = xstrdup(address);
		pthread_mutex_init(&p->mu, NULL);
		grpc_channel_config_t cc = {.compress = ps->c.compress,
		                            .backoff_initial_ms = BACKOFF_MIN_MS,
		                            .backoff_max_ms = ps->c.max_backoff_ms,
		                            .tls = ps->c.tls};
		err_t err = {0};
		/* idle connections: as many as writes forward at once (16 HTTP + 8 gRPC workers) */
		grpc_pool_config_t pc = {.compress = ps->c.compress, .tls = ps->c.tls, .max_idle = 32};
		if (grpc_channel_new(&p->ch, ps->loop, address, &cc, &err) != 0 ||
		    grpc_pool_new(&p->pool, address, &pc, &err) != 0) {
			if (p->ch)
				grpc_channel_free(p->ch);
			p->ch = NULL;
			p->bad_address = xstrdup(err.msg);
			log_error("hashring endpoint cannot be used", "endpoint", address, "err", err.msg);
		}
		p->workers = workers_new(ps->c.workers_per_peer);
		p->m_dur = metric_with(ps->m_dur, address);
		VEC_PUSH(&ps->all, p);
		hmap_put(&ps->by_addr, str_c(p->address), p);
	}
	pthread_mutex_unlock(&ps->mu);
	return p;
}

const char *peer_address(const peer_t *p)
{
	return p->address;
}

bool peer_compresses(const peer_t *p)
{
	return p->ps->c.compress;
}

typedef struct send_job {
	peer_t *p;
	buf_t body;
	bool framed;
	uint64_t deadline;
	peer_done_fn done;
	void *arg;
} send_job_t;

struct peer_call {
	peer_t *p;
	grpc_stream_t *st;    /* on the channel, or */
	grpc_pool_call_t *pc; /* from the caller's thread; neither: failed before the call (o, err) */
	peer_outcome_t o;
	err_t err;
	uint64_t t0;
};

/* The outcome of a failed call, from the client's error (grpc_client.h: "grpc <target><method>:
 * <StatusName>: <message>"). */
static peer_outcome_t outcome_of(const err_t *e)
{
	switch (e->code) {
	case ERR_UNAVAILABLE:
	case ERR_TIMEOUT:
	case ERR_CANCELED:
	case ERR_TRANSIENT:
	case ERR_IO:
		return PEER_UNAVAILABLE;
	case ERR_INVALID:
		return PEER_INVALID;
	case ERR_LIMIT:
		return PEER_LIMIT;
	default:
		return strstr(e->msg, REMOTE_WRITE_PATH ": AlreadyExists: ") ? PEER_CONFLICT : PEER_OTHER;
	}
}

/* body is taken. */
static peer_call_t *call_start(peer_t *p, buf_t *body, bool framed, bool direct, uint64_t deadline)
{
	peer_call_t *c = xcalloc(1, sizeof *c);
	c->p = p;
	uint64_t now = clock_mono_ms();
	pthread_mutex_lock(&p->mu);
	uint64_t until = p->backoff_until;
	pthread_mutex_unlock(&p->mu);
	if (!p->ch) {
		c->o = PEER_OTHER;
		err_set(&c->err, ERR_INVALID, "%s", p->bad_address);
	} else if (now >= deadline) {
		c->o = PEER_UNAVAILABLE;
		err_set(&c->err, ERR_TIMEOUT, "forward to %s: the forward timeout passed while queued",
		        p->address);
	} else if (now < until) {
		c->o = PEER_UNAVAILABLE;
		err_set(&c->err, ERR_UNAVAILABLE,
		        "forward to %s: peer unavailable (backing off for %llu ms more)", p->address,
		        (unsigned long long)(until - now));
	} else {
		c->t0 = clock_mono_ns();
		if (direct)
			c->pc = grpc_pool_call_start(p->pool, REMOTE_WRITE_PATH, body, deadline);
		else
			c->st = framed ? grpc_channel_call_framed(p->ch, REMOTE_WRITE_PATH, body,
			                                          (int64_t)(deadline - now))
			               : grpc_channel_call(p->ch, REMOTE_WRITE_PATH, body->p, body->n,
			                                   (int64_t)(deadline - now));
	}
	buf_release(body);
	return c;
}

/* Frees c; err gets the message of a failure. */
static peer_outcome_t call_wait(peer_call_t *c, err_t *err)
{
	peer_t *p = c->p;
	peer_outcome_t o = c->o;
	if (c->st || c->pc) {
		const uint8_t *m;
		size_t n;
		int got = 0, rc;
		if (c->pc) {
			rc = grpc_pool_call_end(c->pc, &got, &c->err);
		} else {
			while ((rc = grpc_stream_recv(c->st, &m, &n, &c->err)) == 1)
				got++;
			grpc_stream_free(c->st);
		}
		metric_observe(p->m_dur, clock_since_s(c->t0));
		if (rc < 0)
			o = outcome_of(&c->err);
		else if (got != 1) {
			o = PEER_OTHER;
			err_set(&c->err, ERR_CORRUPT, "grpc %s%s: unary call answered with %d messages",
			        p->address, REMOTE_WRITE_PATH, got);
		}
		pthread_mutex_lock(&p->mu);
		if (o == PEER_UNAVAILABLE) {
			p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
			if (p->backoff_ms > p->ps->c.max_backoff_ms)
				p->backoff_ms = p->ps->c.max_backoff_ms;
			p->backoff_until = clock_mono_ms() + (uint64_t)p->backoff_ms;
		} else {
			p->backoff_ms = 0;
			p->backoff_until = 0;
		}
		pthread_mutex_unlock(&p->mu);
	}
	metric_inc(metric_with(p->ps->m_requests, o == PEER_OK ? "success" : "error"));
	*err = c->err;
	free(c);
	return o;
}

static void send_work(void *arg)
{
	send_job_t *j = arg;
	err_t err = {0};
	/* framed (the router's): on the peer's pooled connections, driven by this worker itself */
	peer_call_t *c = call_start(j->p, &j->body, j->framed, j->framed, j->deadline);
	if (c->pc)
		grpc_pool_run(&c->pc, 1);
	peer_outcome_t o = call_wait(c, &err);
	j->done(j->arg, o, o == PEER_OK ? NULL : err.msg);
	free(j);
}

static void send(peer_t *p, buf_t *body, bool framed, uint64_t deadline_ms, peer_done_fn done, void *arg)
{
	send_job_t *j = xcalloc(1, sizeof *j);
	j->p = p;
	j->body = *body;
	j->framed = framed;
	buf_init(body);
	j->deadline = deadline_ms;
	j->done = done;
	j->arg = arg;
	workers_submit(p->workers, send_work, j);
}

void peer_send(peer_t *p, buf_t *body, uint64_t deadline_ms, peer_done_fn done, void *arg)
{
	send(p, body, false, deadline_ms, done, arg);
}

void peer_send_framed(peer_t *p, buf_t *msg, uint64_t deadline_ms, peer_done_fn done, void *arg)
{
	send(p, msg, true, deadline_ms, done, arg);
}

peer_call_t *peer_call_start(peer_t *p, buf_t *msg, uint64_t deadline_ms)
{
	return call_start(p, msg, true, true, deadline_ms);
}

void peer_calls_run(peer_call_t **calls, size_t n)
{
	grpc_pool_call_t *v[64], **pcs = n <= 64 ? v : xmalloc(n * sizeof *pcs);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (calls[i] && calls[i]->pc)
			pcs[k++] = calls[i]->pc;
	grpc_pool_run(pcs, k);
	if (pcs != v)
		free(pcs);
}

peer_outcome_t peer_call_wait(peer_call_t *c, buf_t *msg)
{
	err_t err = {0};
	peer_outcome_t o = call_wait(c, &err);
	if (o != PEER_OK && msg)
		buf_puts(msg, err.msg);
	return o;
}

peer_outcome_t peer_outcome_from_http(int status)
{
	switch (status) {
	case 200:
		return PEER_OK;
	case 409:
		return PEER_CONFLICT;
	case 400:
	case 413:
		return PEER_INVALID;
	case 429:
		return PEER_LIMIT;
	case 503:
		return PEER_NOT_READY;
	default:
		return PEER_OTHER;
	}
}

int peer_outcome_http(peer_outcome_t o)
{
	static const int http[PEER_NOUTCOMES] = {200, 503, 503, 409, 400, 429, 500};
	return http[o];
}

int peer_outcome_grpc(peer_outcome_t o)
{
	static const int g[PEER_NOUTCOMES] = {GRPC_OK,
	                                      GRPC_UNAVAILABLE,
	                                      GRPC_UNAVAILABLE,
	                                      GRPC_STATUS_ALREADY_EXISTS,
	                                      GRPC_INVALID_ARGUMENT,
	                                      GRPC_RESOURCE_EXHAUSTED,
	                                      GRPC_INTERNAL};
	return g[o];
}
