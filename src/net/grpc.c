/*
 * grpc.c — gRPC server on nghttp2 over conn_t (see grpc.h).
 *
 * Output path: handlers/producers append framed messages to call->out; nghttp2 pulls them through
 * the data provider (call_read) as the stream's flow-control window allows, and h2_pump moves
 * nghttp2's frames into the connection while the socket keeps up (at most H2_CONN_HIGH queued).
 * When call->out runs dry the data provider defers; call_resume() wakes it when there is more.
 */
#include "net/grpc.h"

#include <nghttp2/nghttp2.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/log.h"

#define H2_CONN_HIGH (256u * 1024)

typedef struct grpc_method {
	char *path;
	grpc_handler_fn fn;
	void *arg;
} grpc_method_t;

struct grpc_server {
	loop_t *loop;
	grpc_method_t *methods;
	size_t nmethods;
	size_t max_recv;
	uint32_t max_streams;
	bool compress;
};

typedef struct h2_conn h2_conn_t;

struct grpc_call {
	h2_conn_t *hc;      /* NULL once the stream has ended (the call is detached, kept by holds) */
	loop_t *loop;
	atomic_int refs;    /* 1 for the stream while attached + one per grpc_call_hold/grpc_call_post */
	int32_t stream_id;
	arena_t arena;
	char path[256];
	bool grpc_ct;       /* content-type application/grpc[+...] */
	int64_t timeout_ms; /* -1 = none */
	uint64_t deadline;
	uint64_t timer;
	buf_t req;
	bool too_large;
	buf_t out;
	size_t out_off;
	bool req_snappy;    /* grpc-encoding: snappy */
	bool req_other_enc; /* another grpc-encoding (not identity) */
	bool accepts_snappy;
	bool compress;      /* responses are snappy-compressed */
	bool staged;        /* a reserved message sits in stage, not yet compressed into out */
	buf_t stage;
	bool dispatched;    /* the request went to its handler (or was refused) */
	bool responded;     /* response HEADERS submitted (with the first message or the status) */
	bool finished;      /* status decided; trailers go out when out is drained */
	bool deferred;      /* data provider returned DEFERRED */
	atomic_bool cancelled; /* read by worker threads (grpc_call_cancelled) */
	bool done_called;
	int status;
	char *status_msg;
	grpc_produce_fn produce;
	grpc_done_fn done;
	void *parg;
	grpc_call_t *prev, *next;
};

struct h2_conn {
	grpc_server_t *srv;
	conn_t *c;
	nghttp2_session *session;
	grpc_call_t *calls;
	bool in_nghttp2; /* inside an nghttp2 callback: do not re-enter the session */
	bool dead;
};

static void h2_pump(h2_conn_t *hc);

int grpc_status_from_err(int code)
{
	switch (code) {
	case ERR_INVALID:
		return GRPC_INVALID_ARGUMENT;
	case ERR_NOT_FOUND:
		return GRPC_NOT_FOUND;
	case ERR_LIMIT:
		return GRPC_RESOURCE_EXHAUSTED;
	case ERR_TIMEOUT:
		return GRPC_DEADLINE_EXCEEDED;
	case ERR_CANCELED:
		return GRPC_CANCELLED;
	case ERR_UNAVAILABLE:
	case ERR_TRANSIENT:
		return GRPC_UNAVAILABLE;
	case ERR_CORRUPT:
	case ERR_INTERNAL:
		return GRPC_INTERNAL;
	default:
		return GRPC_UNKNOWN;
	}
}

/* ---- calls ---- */

static grpc_call_t *call_new(h2_conn_t *hc, int32_t id)
{
	grpc_call_t *call = xcalloc(1, sizeof *call);
	call->hc = hc;
	call->loop = hc->srv->loop;
	atomic_init(&call->refs, 1);
	atomic_init(&call->cancelled, false);
	call->stream_id = id;
	call->timeout_ms = -1;
	arena_init(&call->arena, 0);
	buf_init(&call->req);
	buf_init(&call->out);
	buf_init(&call->stage);
	call->next = hc->calls;
	if (hc->calls)
		hc->calls->prev = call;
	hc->calls = call;
	return call;
}

static void call_run_done(grpc_call_t *call)
{
	if (call->done_called)
		return;
	call->done_called = true;
	if (call->done)
		call->done(call, call->parg);
}

/* Memory only: by now nothing on the loop refers to the call. Any thread. */
static void call_unref(grpc_call_t *call)
{
	if (atomic_fetch_sub_explicit(&call->refs, 1, memory_order_acq_rel) != 1)
		return;
	buf_release(&call->req);
	buf_release(&call->out);
	buf_release(&call->stage);
	free(call->status_msg);
	arena_release(&call->arena);
	free(call);
}

/* The stream is over: run done, unlink from the connection, drop the stream's reference (holders
 * keep the memory). Loop thread. */
static void call_free(grpc_call_t *call)
{
	h2_conn_t *hc = call->hc;
	call_run_done(call);
	if (call->timer)
		loop_del_timer(call->loop, call->timer);
	call->timer = 0;
	if (call->prev)
		call->prev->next = call->next;
	else
		hc->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
	call->hc = NULL;
	call->produce = NULL;
	call->done = NULL;
	call_unref(call);
}

void grpc_call_hold(grpc_call_t *call)
{
	atomic_fetch_add_explicit(&call->refs, 1, memory_order_relaxed);
}

void grpc_call_release(grpc_call_t *call)
{
	call_unref(call);
}

typedef struct call_post {
	grpc_call_t *call;
	grpc_post_fn fn, drop;
	void *arg;
} call_post_t;

static void call_post_run(void *p)
{
	call_post_t cp = *(call_post_t *)p;
	free(p);
	if (cp.call->hc && !atomic_load(&cp.call->cancelled) && !cp.call->finished)
		cp.fn(cp.call, cp.arg);
	else if (cp.drop)
		cp.drop(cp.call, cp.arg);
	call_unref(cp.call);
}

void grpc_call_post(grpc_call_t *call, grpc_post_fn fn, grpc_post_fn drop, void *arg)
{
	call_post_t *cp = xmalloc(sizeof *cp);
	*cp = (call_post_t){call, fn, drop, arg};
	grpc_call_hold(call);
	loop_post(call->loop, call_post_run, cp);
}

bool grpc_call_compresses(const grpc_call_t *call)
{
	return call->compress;
}

arena_t *grpc_call_arena(grpc_call_t *call)
{
	return &call->arena;
}

const char *grpc_call_path(const grpc_call_t *call)
{
	return call->path;
}

uint64_t grpc_call_deadline(const grpc_call_t *call)
{
	return call->deadline;
}

bool grpc_call_cancelled(const grpc_call_t *call)
{
	return atomic_load(&call->cancelled);
}

size_t grpc_call_pending(const grpc_call_t *call)
{
	return call->out.n - call->out_off + (call->staged ? call->stage.n : 0);
}

static void put_frame_header(uint8_t *p, uint8_t flag, size_t len)
{
	p[0] = flag;
	p[1] = (uint8_t)(len >> 24);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 8);
	p[4] = (uint8_t)len;
}

/* Compress the staged message into out as one framed message. */
static void call_commit(grpc_call_t *call)
{
	if (!call->staged)
		return;
	call->staged = false;
	if (call->out_off > 0 && call->out_off == call->out.n) {
		buf_reset(&call->out);
		call->out_off = 0;
	}
	size_t at = call->out.n;
	buf_extend(&call->out, 5);
	grpc_snappy_encode(&call->out, call->stage.p, call->stage.n);
	put_frame_header((uint8_t *)call->out.p + at, 1, call->out.n - at - 5);
	buf_reset(&call->stage);
}

static void call_respond_headers(grpc_call_t *call, const char *http_status);

/* Let nghttp2 pull again (from outside its callbacks) and push frames out. The response HEADERS are
 * submitted here, with the first message or the status, not when the request is dispatched: a unary
 * answer then leaves in one write (HEADERS, DATA, trailers) and the client wakes up once for it, not
 * once for early headers and again for the answer. */
static void call_resume(grpc_call_t *call)
{
	h2_conn_t *hc = call->hc;
	if (!hc || !call->dispatched)
		return;
	if (!call->responded) {
		call_respond_headers(call, "200");
	} else {
		if (!call->deferred)
			return;
		call->deferred = false;
		nghttp2_session_resume_data(hc->session, call->stream_id);
	}
	if (!hc->in_nghttp2)
		h2_pump(hc);
}

uint8_t *grpc_call_reserve(grpc_call_t *call, size_t len)
{
	if (call->compress) {
		call_commit(call);
		call->staged = true;
		uint8_t *p = (uint8_t *)buf_extend(&call->stage, len);
		call_resume(call);
		return p;
	}
	if (call->out_off > 0 && call->out_off == call->out.n) {
		buf_reset(&call->out);
		call->out_off = 0;
	}
	uint8_t *p = (uint8_t *)buf_extend(&call->out, 5 + len);
	put_frame_header(p, 0, len);
	call_resume(call);
	return p + 5;
}

void grpc_call_send(grpc_call_t *call, const void *msg, size_t len)
{
	if (call->finished || grpc_call_cancelled(call))
		return;
	uint8_t *p = grpc_call_reserve(call, len);
	if (len)
		memcpy(p, msg, len);
}

void grpc_call_reply(grpc_call_t *call, const void *msg, size_t len)
{
	h2_conn_t *hc = call->hc;
	if (!hc || call->finished)
		return;
	bool was = hc->in_nghttp2;
	hc->in_nghttp2 = true; /* no write between the message and the status */
	grpc_call_send(call, msg, len);
	grpc_call_finish(call, GRPC_OK, NULL);
	hc->in_nghttp2 = was;
	if (!was)
		h2_pump(hc); /* may free the connection: not touched after */
}

void grpc_call_send_framed(grpc_call_t *call, const void *p, size_t n)
{
	if (call->finished || grpc_call_cancelled(call) || !call->hc || n == 0)
		return;
	call_commit(call);
	if (call->out_off > 0 && call->out_off == call->out.n) {
		buf_reset(&call->out);
		call->out_off = 0;
	}
	buf_append(&call->out, p, n);
	call_resume(call);
}

void grpc_frame_append(buf_t *out, bool compress, const void *msg, size_t len)
{
	size_t at = out->n;
	buf_extend(out, 5);
	if (compress)
		grpc_snappy_encode(out, msg, len);
	else if (len)
		buf_append(out, msg, len);
	put_frame_header((uint8_t *)out->p + at, compress ? 1 : 0, out->n - at - 5);
}

void grpc_call_finish(grpc_call_t *call, int status, const char *message)
{
	if (call->finished || !call->hc)
		return;
	call_commit(call);
	call->finished = true;
	call->status = status;
	/* Not the arena: after dispatch a worker may be allocating from it. */
	call->status_msg = message ? xstrdup(message) : NULL;
	call_resume(call);
}

void grpc_call_finish_framed(grpc_call_t *call, const void *p, size_t n, int status, const char *message)
{
	if (call->finished || !call->hc)
		return;
	if (n && !grpc_call_cancelled(call)) {
		call_commit(call);
		if (call->out_off > 0 && call->out_off == call->out.n) {
			buf_reset(&call->out);
			call->out_off = 0;
		}
		buf_append(&call->out, p, n);
	}
	grpc_call_finish(call, status, message); /* one resume: HEADERS (if not yet), DATA and trailers */
}

void grpc_call_set_producer(grpc_call_t *call, grpc_produce_fn produce, grpc_done_fn done, void *arg)
{
	call->produce = produce;
	call->done = done;
	call->parg = arg;
	call_resume(call);
}

void grpc_call_set_producer_idle(grpc_call_t *call, grpc_produce_fn produce, grpc_done_fn done, void *arg)
{
	call->produce = produce;
	call->done = done;
	call->parg = arg;
}

/* grpc-message is percent-encoded: bytes outside 0x20..0x7e and '%'. */
static char *percent_encode(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(3 * n + 1), *w = out;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch > 0x7e || ch == '%')
			w += sprintf(w, "%%%02X", ch);
		else
			*w++ = (char)ch;
	}
	*w = 0;
	return out;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME}

static void submit_trailers(grpc_call_t *call)
{
	/* nghttp2 copies values (only names are NO_COPY): temporaries are fine, and the call's arena is
	 * off limits here (a worker may be using it). */
	char code[16];
	snprintf(code, sizeof code, "%d", call->status);
	char *msg = percent_encode(call->status_msg ? call->status_msg : "");
	nghttp2_nv nva[2] = {NV("grpc-status", code), NV("grpc-message", msg)};
	nghttp2_submit_trailer(call->hc->session, call->stream_id, nva, msg[0] ? 2 : 1);
	free(msg);
}

static ssize_t call_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
			 uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	grpc_call_t *call = source->ptr;
	(void)session, (void)stream_id, (void)user_data;
	if (!call->finished && call->produce && !grpc_call_cancelled(call) && grpc_call_pending(call) < GRPC_OUT_LOW)
		call->produce(call, call->parg);
	call_commit(call);
	size_t avail = grpc_call_pending(call);
	if (avail == 0) {
		if (call->finished) {
			*data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
			submit_trailers(call);
			return 0;
		}
		call->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	size_t n = avail < length ? avail : length;
	memcpy(buf, call->out.p + call->out_off, n);
	call->out_off += n;
	return (ssize_t)n;
}

static void call_respond_headers(grpc_call_t *call, const char *http_status)
{
	nghttp2_nv nva[3] = {NV(":status", http_status), NV("content-type", "application/grpc"),
			     NV("grpc-encoding", "snappy")};
	nghttp2_data_provider prd = {.source.ptr = call, .read_callback = call_read};
	call->responded = true;
	nghttp2_submit_response(call->hc->session, call->stream_id, nva, call->compress ? 3 : 2, &prd);
}

static int64_t call_deadline_fired(loop_t *l, uint64_t id, void *arg)
{
	grpc_call_t *call = arg;
	(void)l, (void)id;
	call->timer = 0;
	if (!call->finished) {
		atomic_store(&call->cancelled, true);
		/* Drop what is queued: the status must go out now. done runs first: finishing may end the
		 * stream and free the call. */
		buf_reset(&call->out);
		call->out_off = 0;
		call->staged = false;
		buf_reset(&call->stage);
		call_run_done(call);
		grpc_call_finish(call, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
	}
	return LOOP_TIMER_DONE;
}

/* grpc-timeout: 1-8 digits and a unit H M S m u n. */
static int64_t parse_timeout(const uint8_t *v, size_t n)
{
	if (n < 2 || n > 9)
		return -1;
	int64_t x = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	switch (v[n - 1]) {
	case 'H':
		return x * 3600000;
	case 'M':
		return x * 60000;
	case 'S':
		return x * 1000;
	case 'm':
		return x;
	case 'u':
		return (x + 999) / 1000;
	case 'n':
		return (x + 999999) / 1000000;
	default:
		return -1;
	}
}

static size_t snappy_framed_len(const void *p, size_t n);

/* The request is complete: validate, dispatch. */
static void call_dispatch(grpc_call_t *call)
{
	grpc_server_t *srv = call->hc->srv;
	if (!call->grpc_ct) {
		nghttp2_nv nva[1] = {NV(":status", "415")};
		call->dispatched = true;
		call->responded = true;
		call->finished = true;
		nghttp2_submit_response(call->hc->session, call->stream_id, nva, 1, NULL);
		return;
	}
	call->compress = call->req_snappy || (srv->compress && call->accepts_snappy);
	call->dispatched = true; /* HEADERS with the first message or the status (call_resume) */
	if (call->timeout_ms >= 0) {
		call->deadline = loop_now_ms(srv->loop) + (uint64_t)call->timeout_ms;
		call->timer = loop_add_timer(srv->loop, call->timeout_ms, call_deadline_fired, call);
	}
	if (call->too_large) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED,
				 arena_printf(&call->arena, "request message larger than max (%zu)", srv->max_recv));
		return;
	}
	const grpc_method_t *m = NULL;
	for (size_t i = 0; i < srv->nmethods && !m; i++)
		if (strcmp(srv->methods[i].path, call->path) == 0)
			m = &srv->methods[i];
	if (!m) {
		grpc_call_finish(call, GRPC_UNIMPLEMENTED, arena_printf(&call->arena, "unknown method %s", call->path));
		return;
	}
	const uint8_t *p = (const uint8_t *)call->req.p;
	size_t n = call->req.n;
	if (n < 5) {
		grpc_call_finish(call, GRPC_INTERNAL, "request: truncated gRPC message frame");
		return;
	}
	if (p[0] > 1) {
		grpc_call_finish(call, GRPC_INTERNAL, "request: bad message flag byte");
		return;
	}
	if (p[0] == 1 && !call->req_snappy) {
		grpc_call_finish(call, GRPC_UNIMPLEMENTED,
				 call->req_other_enc ? "request: unsupported grpc-encoding (only snappy)"
						     : "request: compressed message without grpc-encoding");
		return;
	}
	size_t len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
	if (len != n - 5) {
		grpc_call_finish(call, GRPC_INTERNAL,
				 arena_printf(&call->arena, "request: message frame says %zu bytes, got %zu", len, n - 5));
		return;
	}
	str_t msg = {(const char *)p + 5, len};
	if (p[0] == 1) {
		buf_t plain = BUF_INIT;
		err_t err = {0};
		size_t total = snappy_framed_len(msg.p, msg.n);
		if (total && total <= srv->max_recv)
			buf_reserve(&plain, total); /* decoded in place: no regrowth, no copy into the arena */
		int rc = grpc_snappy_decode(&plain, msg.p, msg.n, srv->max_recv, &err);
		if (rc) {
			buf_release(&plain);
			grpc_call_finish(call, rc == ERR_LIMIT ? GRPC_RESOURCE_EXHAUSTED : GRPC_INTERNAL,
					 arena_printf(&call->arena, "request: snappy: %s", err.msg));
			return;
		}
		if (!plain.cap) /* an empty message: still a block of its own to free */
			buf_reserve(&plain, 1);
		msg = (str_t){plain.p, plain.n};
		arena_on_release(&call->arena, free, plain.p); /* lives as long as the call's arena */
	}
	m->fn(call, msg, m->arg);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	h2_conn_t *hc = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	grpc_call_t *call = call_new(hc, frame->hd.stream_id);
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
	return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
	(void)flags, (void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	grpc_call_t *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!call)
		return 0;
	if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
		size_t n = valuelen < sizeof call->path - 1 ? valuelen : sizeof call->path - 1;
		memcpy(call->path, value, n);
		call->path[n] = 0;
	} else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
		call->grpc_ct = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
				(valuelen == 16 || value[16] == '+' || value[16] == ';');
	} else if (namelen == 12 && memcmp(name, "grpc-timeout", 12) == 0) {
		call->timeout_ms = parse_timeout(value, valuelen);
	} else if (namelen == 13 && memcmp(name, "grpc-encoding", 13) == 0) {
		call->req_snappy = valuelen == 6 && memcmp(value, "snappy", 6) == 0;
		call->req_other_enc = !call->req_snappy && !(valuelen == 8 && memcmp(value, "identity", 8) == 0);
	} else if (namelen == 20 && memcmp(name, "grpc-accept-encoding", 20) == 0) {
		for (size_t i = 0; i + 6 <= valuelen; i++)
			if (memcmp(value + i, "snappy", 6) == 0 && (i == 0 || value[i - 1] == ',' || value[i - 1] == ' ') &&
			    (i + 6 == valuelen || value[i + 6] == ',' || value[i + 6] == ' '))
				call->accepts_snappy = true;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
			 void *user_data)
{
	h2_conn_t *hc = user_data;
	(void)flags;
	grpc_call_t *call = nghttp2_session_get_stream_user_data(session, stream_id);
	if (!call)
		return 0;
	if (call->too_large || call->req.n + len > hc->srv->max_recv + 5) {
		call->too_large = true;
		return 0;
	}
	if (call->req.n < 5 && call->req.n + len >= 5) { /* the message's length: room for all of it */
		uint8_t h[5];
		size_t have = call->req.n;
		memcpy(h, call->req.p, have);
		memcpy(h + have, data, 5 - have);
		size_t mlen = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
		if (mlen <= hc->srv->max_recv && mlen <= (16u << 20)) /* bigger ones grow as they come */
			buf_reserve(&call->req, 5 + mlen - have);
	}
	buf_append(&call->req, data, len);
	return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	(void)user_data;
	if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	grpc_call_t *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (call && !call->dispatched)
		call_dispatch(call);
	return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
	(void)error_code, (void)user_data;
	grpc_call_t *call = nghttp2_session_get_stream_user_data(session, stream_id);
	if (!call)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	if (!call->finished || grpc_call_pending(call) > 0)
		atomic_store(&call->cancelled, true);
	call_free(call);
	return 0;
}

/* ---- connection protocol ---- */

static void h2_destroy(h2_conn_t *hc)
{
	while (hc->calls) {
		atomic_store(&hc->calls->cancelled, true);
		call_free(hc->calls);
	}
	nghttp2_session_del(hc->session);
	free(hc);
}

static void h2_pump(h2_conn_t *hc)
{
	if (hc->dead)
		return;
	/* Fill up to H2_CONN_HIGH, flush; if the socket took it all and nghttp2 has more, go again (no
	 * write-readiness event would come to resume us, and the peer may be silent). */
	bool more = true;
	while (more) {
		more = false;
		hc->in_nghttp2 = true;
		while (conn_pending_out(hc->c) < H2_CONN_HIGH) {
			const uint8_t *data;
			ssize_t n = nghttp2_session_mem_send(hc->session, &data);
			if (n < 0) {
				log_warn("grpc: http2 send failed", "peer", hc->c->peer, "err", nghttp2_strerror((int)n));
				hc->in_nghttp2 = false;
				hc->dead = true;
				conn_close(hc->c);
				return;
			}
			if (n == 0)
				break;
			conn_write(hc->c, data, (size_t)n);
			more = conn_pending_out(hc->c) >= H2_CONN_HIGH;
		}
		hc->in_nghttp2 = false;
		if (!nghttp2_session_want_read(hc->session) && !nghttp2_session_want_write(hc->session)) {
			hc->dead = true;
			conn_close_after_flush(hc->c);
			return;
		}
		conn_t *c = hc->c; /* conn_flush may close it, freeing hc (c itself is freed later) */
		conn_flush(c);
		if (c->closed || conn_pending_out(c) > 0)
			return;
	}
}

static void h2_on_data(conn_t *c)
{
	h2_conn_t *hc = c->proto_data;
	if (hc->dead)
		return;
	str_t in = conn_input(c);
	if (in.n) {
		hc->in_nghttp2 = true;
		ssize_t n = nghttp2_session_mem_recv(hc->session, (const uint8_t *)in.p, in.n);
		hc->in_nghttp2 = false;
		if (n < 0) {
			log_warn("grpc: bad http2 input", "peer", c->peer, "err", nghttp2_strerror((int)n));
			hc->dead = true;
			conn_close(c);
			return;
		}
		conn_consume(c, (size_t)n);
	}
	if (c->peer_eof) {
		hc->dead = true;
		conn_close_after_flush(c);
		return;
	}
	h2_pump(hc);
}

static void h2_on_drained(conn_t *c)
{
	h2_pump(c->proto_data);
}

static void h2_on_close(conn_t *c)
{
	h2_conn_t *hc = c->proto_data;
	c->proto_data = NULL;
	if (hc)
		h2_destroy(hc);
}

static const conn_proto_t h2_proto = {
	.name = "h2c-grpc",
	.on_data = h2_on_data,
	.on_drained = h2_on_drained,
	.on_timeout = NULL,
	.on_close = h2_on_close,
};

void grpc_server_on_accept(listener_t *ls, conn_t *c, void *arg)
{
	grpc_server_t *srv = arg;
	(void)ls;
	h2_conn_t *hc = xcalloc(1, sizeof *hc);
	hc->srv = srv;
	hc->c = c;
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		die("nghttp2_session_callbacks_new: out of memory");
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	if (nghttp2_session_server_new(&hc->session, cb, hc) != 0)
		die("nghttp2_session_server_new: out of memory");
	nghttp2_session_callbacks_del(cb);
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->max_streams},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
	};
	nghttp2_submit_settings(hc->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
	/* The connection's window (streams have their 1 MiB each): data is taken as it comes, so this only
	 * spares the client a WINDOW_UPDATE (and a wake-up) every 32 KiB of requests. */
	nghttp2_session_set_local_window_size(hc->session, NGHTTP2_FLAG_NONE, 0, 16u << 20);
	conn_set_proto(c, &h2_proto, hc);
	h2_pump(hc);
}

grpc_server_t *grpc_server_new(loop_t *loop, const grpc_server_config_t *cfg)
{
	grpc_server_t *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->max_recv = cfg && cfg->max_recv_msg ? cfg->max_recv_msg : GRPC_DEFAULT_MAX_RECV;
	s->max_streams = cfg && cfg->max_concurrent_streams ? cfg->max_concurrent_streams : 100;
	s->compress = cfg && cfg->compress;
	return s;
}

loop_t *grpc_server_loop(const grpc_server_t *s)
{
	return s->loop;
}

void grpc_server_free(grpc_server_t *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nmethods; i++)
		free(s->methods[i].path);
	free(s->methods);
	free(s);
}

void grpc_server_register(grpc_server_t *s, const char *path, grpc_handler_fn fn, void *arg)
{
	s->methods = xreallocarray(s->methods, s->nmethods + 1, sizeof *s->methods);
	s->methods[s->nmethods++] = (grpc_method_t){xstrdup(path), fn, arg};
}

int grpc_server_listen(grpc_server_t *s, const char *address, listener_t **out, err_t *err)
{
	return grpc_server_listen_tls(s, address, NULL, out, err);
}

static SSL *new_ssl(void *arg)
{
	return tls_server_new_ssl(arg);
}

int grpc_server_listen_tls(grpc_server_t *s, const char *address, tls_server_t *tls, listener_t **out, err_t *err)
{
	listener_config_t cfg = {.address = address,
	                         .on_accept = grpc_server_on_accept,
	                         .arg = s,
	                         .tls_new_ssl = tls ? new_ssl : NULL,
	                         .tls_arg = tls};
	return listener_new(out, s->loop, &cfg, err);
}

/* ---- status names and mapping ---- */

int grpc_err_from_status(int status)
{
	switch (status) {
	case GRPC_OK:
		return 0;
	case GRPC_CANCELLED:
		return ERR_CANCELED;
	case GRPC_INVALID_ARGUMENT:
		return ERR_INVALID;
	case GRPC_DEADLINE_EXCEEDED:
		return ERR_TIMEOUT;
	case GRPC_NOT_FOUND:
		return ERR_NOT_FOUND;
	case GRPC_RESOURCE_EXHAUSTED:
		return ERR_LIMIT;
	case GRPC_UNAVAILABLE:
		return ERR_UNAVAILABLE;
	case 7:  /* PERMISSION_DENIED */
	case 16: /* UNAUTHENTICATED */
		return ERR_ACCESS;
	default:
		return ERR_INTERNAL;
	}
}

const char *grpc_status_name(int status)
{
	static const char *names[] = {"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
				      "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
				      "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
				      "Unauthenticated"};
	if (status >= 0 && (size_t)status < sizeof names / sizeof names[0])
		return names[status];
	return "Code(?)";
}

/* ---- snappy framing format ---- */

static const uint8_t snappy_stream_id[10] = {0xff, 6, 0, 0, 's', 'N', 'a', 'P', 'p', 'Y'};

static uint32_t snappy_mask(uint32_t crc)
{
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_le24(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

void grpc_snappy_stream_id(buf_t *out)
{
	buf_append(out, snappy_stream_id, sizeof snappy_stream_id);
}

void grpc_snappy_chunk(buf_t *out, const void *p, size_t bn)
{
	size_t maxc = snappy_max_compressed_length(bn);
	size_t at = out->n;
	uint8_t *h = (uint8_t *)buf_extend(out, 8 + maxc);
	size_t clen = maxc;
	uint32_t crc = snappy_mask(crc32c(0, p, bn));
	if (snappy_compress(p, bn, (char *)h + 8, &clen) == SNAPPY_OK && clen < bn - bn / 8) {
		h[0] = 0x00;
		put_le24(h + 1, 4 + clen);
		put_le32(h + 4, crc);
		buf_truncate(out, at + 8 + clen);
	} else {
		h[0] = 0x01;
		put_le24(h + 1, 4 + bn);
		put_le32(h + 4, crc);
		memcpy(h + 8, p, bn);
		buf_truncate(out, at + 8 + bn);
	}
}

void grpc_snappy_encode(buf_t *out, const void *p, size_t n)
{
	const char *in = p;
	if (n == 0)
		return;
	grpc_snappy_stream_id(out);
	for (size_t off = 0; off < n; off += GRPC_SNAPPY_CHUNK)
		grpc_snappy_chunk(out, in + off, n - off < GRPC_SNAPPY_CHUNK ? n - off : GRPC_SNAPPY_CHUNK);
}

/* The uncompressed length of a snappy-framed stream from its chunk headers; 0 if it does not parse
 * (grpc_snappy_decode says why). */
static size_t snappy_framed_len(const void *p, size_t n)
{
	const uint8_t *in = p;
	size_t off = 0, total = 0;
	while (off + 4 <= n) {
		uint8_t type = in[off];
		size_t len = (size_t)in[off + 1] | (size_t)in[off + 2] << 8 | (size_t)in[off + 3] << 16, ulen;
		if (len > n - off - 4)
			return 0;
		if (type == 0x00) {
			if (len < 4 || snappy_uncompressed_length((const char *)in + off + 8, len - 4, &ulen) != SNAPPY_OK ||
			    ulen > GRPC_SNAPPY_CHUNK || ulen > (len - 4) * 24 + 64)
				return 0; /* a lie: no room reserved for it */
			total += ulen;
		} else if (type == 0x01) {
			if (len < 4)
				return 0;
			total += len - 4;
		}
		off += 4 + len;
	}
	return total;
}

int grpc_snappy_decode(buf_t *out, const void *p, size_t n, size_t max, err_t *err)
{
	const uint8_t *in = p;
	size_t off = 0, start = out->n;
	bool seen_id = false;
	while (off < n) {
		if (n - off < 4)
			return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: truncated chunk header", off);
		uint8_t type = in[off];
		size_t len = (size_t)in[off + 1] | (size_t)in[off + 2] << 8 | (size_t)in[off + 3] << 16;
		if (len > n - off - 4)
			return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: chunk of %zu bytes, %zu left", off, len,
				       n - off - 4);
		const uint8_t *body = in + off + 4;
		if (type == 0xff) {
			if (len != 6 || memcmp(body, "sNaPpY", 6) != 0)
				return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: bad stream identifier", off);
			seen_id = true;
		} else if (!seen_id) {
			return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: missing stream identifier", off);
		} else if (type == 0x00 || type == 0x01) {
			if (len < 4)
				return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: chunk too short", off);
			uint32_t want = (uint32_t)body[0] | (uint32_t)body[1] << 8 | (uint32_t)body[2] << 16 |
					(uint32_t)body[3] << 24;
			size_t ulen = len - 4;
			if (type == 0x00 && snappy_uncompressed_length((const char *)body + 4, len - 4, &ulen) != SNAPPY_OK)
				return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: bad compressed chunk", off);
			if (ulen > GRPC_SNAPPY_CHUNK)
				return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: chunk of %zu uncompressed bytes",
					       off, ulen);
			if (out->n - start + ulen > max)
				return err_set(err, ERR_LIMIT, "snappy frame: message larger than max (%zu)", max);
			char *dst = buf_extend(out, ulen);
			if (type == 0x00) {
				size_t got = ulen;
				if (snappy_uncompress((const char *)body + 4, len - 4, dst, &got) != SNAPPY_OK || got != ulen)
					return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: bad compressed chunk", off);
			} else {
				memcpy(dst, body + 4, ulen);
			}
			if (snappy_mask(crc32c(0, dst, ulen)) != want)
				return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: checksum mismatch", off);
		} else if (type <= 0x7f) {
			return err_set(err, ERR_CORRUPT, "snappy frame: offset %zu: reserved unskippable chunk type 0x%02x",
				       off, type);
		} /* 0x80..0xfe: padding / skippable */
		off += 4 + len;
	}
	return 0;
}
