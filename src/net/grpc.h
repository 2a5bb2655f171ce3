/*
 * grpc.h — gRPC server over HTTP/2 cleartext (h2c, prior knowledge) on the event loop, with nghttp2
 * doing HTTP/2 and this module doing gRPC: 5-byte message framing, content-type application/grpc,
 * grpc-status / grpc-message trailers, unary and server-streaming calls, grpc-timeout deadlines,
 * cancellation (RST_STREAM from the peer), a maximum request size and flow-control back-pressure.
 *
 * Back-pressure: a streaming handler never writes a whole response. It installs a producer, which the
 * server calls only when the call's outgoing buffer has drained below GRPC_OUT_LOW and HTTP/2 flow
 * control lets data through; the producer appends messages until grpc_call_pending() reaches
 * GRPC_OUT_HIGH (or it has nothing more) and returns. A peer that stops granting window therefore
 * stops production; memory per call stays around GRPC_OUT_HIGH plus one message.
 *
 * Lifetime: a call lives from its request to the end of its stream. Whatever ends it (finish sent,
 * peer reset, deadline, connection closed) the done callback runs exactly once (if installed), after
 * which the call and its arena are freed — unless the call is held (grpc_call_hold): then it is only
 * detached (cancelled if it had not finished; sends and finish are ignored) and freed by the last
 * grpc_call_release. Everything runs on the loop thread; handlers must not block.
 *
 * Worker threads: to serve a call off the loop, the handler holds it and hands it to a worker. The
 * worker may read the request and use the call's arena (the loop no longer allocates from it once the
 * handler has run), poll grpc_call_cancelled/grpc_call_deadline/grpc_call_compresses, frame messages
 * into its own buffer with grpc_frame_append, and hand results back with grpc_call_post, whose
 * callback runs on the loop thread and may send (grpc_call_send_framed) and finish. Nothing else
 * may be called off the loop thread.
 * Compression: requests compressed with grpc-encoding "snappy" (the snappy framing format, as grpc-go's
 * and Thanos's "snappy" compressor) are decompressed (within the max request size); other encodings
 * get UNIMPLEMENTED. Responses are snappy-compressed when the request was, or when the server is
 * configured with compress and the client's grpc-accept-encoding lists snappy.
 * TLS is the listener's concern (grpc_server_listen_tls, net/conn.h): this module only sees bytes.
 */
#ifndef STRATA_NET_GRPC_H
#define STRATA_NET_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "net/conn.h"
#include "net/loop.h"
#include "net/tls.h"

/* gRPC status codes. */
enum {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_ABORTED = 10,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
};

#define GRPC_OUT_LOW (32u * 1024)
#define GRPC_OUT_HIGH (64u * 1024)
#define GRPC_DEFAULT_MAX_RECV (4u * 1024 * 1024)

typedef struct grpc_server grpc_server_t;
typedef struct grpc_call grpc_call_t;

/* The request message (unframed) has arrived. The handler answers with grpc_call_send/finish now, or
 * installs a producer. msg lives in the call's arena until the call ends. */
typedef void (*grpc_handler_fn)(grpc_call_t *call, str_t msg, void *arg);
/* The call can take more output: send messages and/or finish. */
typedef void (*grpc_produce_fn)(grpc_call_t *call, void *arg);
/* The call is over (finished, cancelled, deadline, connection lost): release what arg holds. */
typedef void (*grpc_done_fn)(grpc_call_t *call, void *arg);

typedef struct grpc_server_config {
	size_t max_recv_msg; /* 0 = GRPC_DEFAULT_MAX_RECV; larger requests get RESOURCE_EXHAUSTED */
	uint32_t max_concurrent_streams; /* 0 = 100 */
	bool compress;                   /* snappy responses to clients that accept it */
} grpc_server_config_t;

grpc_server_t *grpc_server_new(loop_t *loop, const grpc_server_config_t *cfg);
/* The loop the server runs on. */
loop_t *grpc_server_loop(const grpc_server_t *s);
/* Frees the server; its listeners must be freed first (their connections hold it). */
void grpc_server_free(grpc_server_t *s);
/* path is the full method, e.g. "/thanos.Store/Series" (copied). */
void grpc_server_register(grpc_server_t *s, const char *path, grpc_handler_fn fn, void *arg);
/* Use as listener_config_t.on_accept with arg = the server: speaks h2c on the connection. */
void grpc_server_on_accept(listener_t *ls, conn_t *c, void *arg);
/* Convenience: a listener on address serving this server. */
int grpc_server_listen(grpc_server_t *s, const char *address, listener_t **out, err_t *err);
/* The same over TLS when tls is not NULL (net/tls.h: made with alpn "h2"; borrowed, must outlive the
 * listener; its certificates are re-read when they change). */
int grpc_server_listen_tls(grpc_server_t *s, const char *address, tls_server_t *tls, listener_t **out, err_t *err);

arena_t *grpc_call_arena(grpc_call_t *call);
const char *grpc_call_path(const grpc_call_t *call);
/* Deadline from grpc-timeout as a loop monotonic ms, 0 = none. */
uint64_t grpc_call_deadline(const grpc_call_t *call);
/* Peer reset the stream, the deadline passed or the connection went away. */
bool grpc_call_cancelled(const grpc_call_t *call);
/* Bytes queued on this call and not yet handed to HTTP/2. */
size_t grpc_call_pending(const grpc_call_t *call);
/* Queue one message (framed here). Ignored after finish/cancel. */
void grpc_call_send(grpc_call_t *call, const void *msg, size_t len);
/* A unary call's answer: one message, then status OK, in one write with the response headers
 * (loop thread). */
void grpc_call_reply(grpc_call_t *call, const void *msg, size_t len);
/* Reserve a framed message of len bytes and return where to write its body (valid until the next
 * send/reserve): lets protobuf-c pack straight into the output. */
uint8_t *grpc_call_reserve(grpc_call_t *call, size_t len);
/* End the call with a status (message may be NULL; it is percent-encoded into grpc-message).
 * Called from outside the call's handler/producer (e.g. a timer or a worker's completion), this may
 * complete the stream at once and free the call: do not touch it afterwards. */
void grpc_call_finish(grpc_call_t *call, int status, const char *message);
void grpc_call_set_producer(grpc_call_t *call, grpc_produce_fn produce, grpc_done_fn done, void *arg);
/* The same without starting the response: for a producer that only asks a worker for more once output
 * has gone out (the response HEADERS then leave with the worker's first messages). */
void grpc_call_set_producer_idle(grpc_call_t *call, grpc_produce_fn produce, grpc_done_fn done, void *arg);
/* Queue framed messages (as grpc_call_send_framed) and end the call with a status, pushed out together
 * (one write for a response that is complete). Same rules as grpc_call_finish. */
void grpc_call_finish_framed(grpc_call_t *call, const void *p, size_t n, int status, const char *message);

/* Keep the call's memory (struct, arena, request) past the end of its stream; every hold needs one
 * grpc_call_release. hold: loop thread, or any thread that already owns a hold. release: any thread;
 * the last one frees the call (running its arena's cleanup hooks on that thread). */
void grpc_call_hold(grpc_call_t *call);
void grpc_call_release(grpc_call_t *call);
typedef void (*grpc_post_fn)(grpc_call_t *call, void *arg);
/* Thread-safe (the caller must own a hold): run fn(call, arg) on the call's loop thread soon, if the
 * call is then still live (stream open, not cancelled, not finished); otherwise run drop (if not
 * NULL) there instead. Exactly one of them runs, even if the loop is being freed. The call is held
 * until then. */
void grpc_call_post(grpc_call_t *call, grpc_post_fn fn, grpc_post_fn drop, void *arg);
/* Whether response messages must be snappy-compressed (fixed once the handler runs; thread-safe). */
bool grpc_call_compresses(const grpc_call_t *call);
/* Append one framed message (5-byte prefix, snappy-compressed if compress) to out. Thread-safe. */
void grpc_frame_append(buf_t *out, bool compress, const void *msg, size_t len);
/* Queue whole framed messages (from grpc_frame_append with grpc_call_compresses). Loop thread;
 * ignored after finish/cancel. */
void grpc_call_send_framed(grpc_call_t *call, const void *p, size_t n);

/* Map a negative ERR_* code to a gRPC status. */
int grpc_status_from_err(int code);
/* Map a gRPC status to a negative ERR_* code (GRPC_OK -> 0). */
int grpc_err_from_status(int status);
/* "OK", "Cancelled", "DeadlineExceeded", ... (Go's codes.Code String()); "Code(n)" for unknown ones. */
const char *grpc_status_name(int status);

/* Snappy framing format (github.com/google/snappy framing_format.txt), the "snappy" gRPC encoding:
 * a stream identifier chunk, then chunks of at most 65536 uncompressed bytes, each compressed (or
 * stored when compression does not pay) with a masked CRC-32C of its uncompressed bytes. An empty
 * input encodes to nothing. encode appends to out. decode appends to out; ERR_CORRUPT naming the
 * offset for bad chunk types, lengths or checksums, ERR_LIMIT if the output would exceed max. */
void grpc_snappy_encode(buf_t *out, const void *p, size_t n);
/* The same in pieces, for callers that compress as they produce (no copy of the whole message):
 * the stream identifier, then chunks of 1..GRPC_SNAPPY_CHUNK bytes each. */
#define GRPC_SNAPPY_CHUNK 65536
void grpc_snappy_stream_id(buf_t *out);
void grpc_snappy_chunk(buf_t *out, const void *p, size_t n);
int grpc_snappy_decode(buf_t *out, const void *p, size_t n, size_t max, err_t *err);

#endif
