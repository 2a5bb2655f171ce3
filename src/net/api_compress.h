/*
 * api_compress.h — HTTP response compression for the API (reference prometheus.md §5.1: responses are
 * gzip/deflate-compressed when the client's Accept-Encoding allows it).
 *
 *     api_respond_json(r, 200, &body);   // negotiates, compresses, sets the headers, responds
 *
 * Negotiation (RFC 9110 §12.5.3): the Accept-Encoding list is read with q-values; "gzip" (or
 * "x-gzip") and "deflate" are the codings we produce, "*" stands for any coding not listed, q=0
 * refuses a coding. The coding with the highest q wins; gzip wins ties (the more widely decoded one,
 * and what Prometheus picks first). No header, or nothing acceptable → identity. "deflate" is the
 * zlib format (RFC 1950), as HTTP defines it and Go's compress/zlib writes it for Prometheus.
 *
 * Bodies shorter than API_COMPRESS_MIN_BYTES are sent as they are: below about one packet,
 * compression saves nothing on the wire and costs CPU (gzip's own header and trailer are 18 bytes).
 * Every response sent through api_respond_json carries "Vary: Accept-Encoding", compressed or not,
 * so caches keep the variants apart.
 *
 * Thread-safety: all functions are reentrant; api_respond_json may run on a worker (the HTTP layer
 * hands the body to the loop), which keeps compression CPU off the event loop for query results.
 */
#ifndef STRATA_NET_API_COMPRESS_H
#define STRATA_NET_API_COMPRESS_H

#include <stddef.h>

#include "base/err.h"
#include "base/str.h"
#include "net/http.h"

#define API_COMPRESS_MIN_BYTES 1024

typedef enum api_encoding {
	API_ENC_IDENTITY,
	API_ENC_GZIP,
	API_ENC_DEFLATE,
} api_encoding_t;

/* The coding to use for an Accept-Encoding header value (see above). */
api_encoding_t api_encoding_negotiate(str_t accept_encoding);
/* "gzip", "deflate" or "identity". */
const char *api_encoding_name(api_encoding_t e);

/* Append the compressed form of in[0..n) to out (gzip: RFC 1952, deflate: RFC 1950 zlib stream).
 * API_ENC_IDENTITY appends in unchanged. Returns 0, or ERR_INTERNAL if zlib fails (out is then left
 * as it was). */
int api_compress(api_encoding_t e, const void *in, size_t n, buf_t *out, err_t *err);

/* Respond with body (JSON, "application/json"), compressed as the request's Accept-Encoding allows,
 * with Content-Encoding and Vary headers. Takes body's memory like http_respond_buf. If compression
 * fails the body goes out uncompressed (logged). */
void api_respond_json(http_req_t *r, int status, buf_t *body);

/* A JSON response sent as it is produced (query results of any size, with bounded memory):
 *
 *     api_json_out_t o;
 *     api_json_out_init(&o, r, 200);
 *     ... append JSON to o.b; call api_json_out_flush(&o) now and then (cheap below the threshold) ...
 *     api_json_out_end(&o);
 *
 * A response that ends below API_STREAM_MIN_BYTES goes out exactly as api_respond_json sends it
 * (Content-Length, compressed when accepted). Past it, the headers go out and from then on every
 * API_STREAM_MIN_BYTES produced are compressed (one gzip/deflate stream, when accepted) and sent as
 * one chunk of a chunked response (http_stream_*; allowed on a worker, where a client that reads slowly
 * blocks the producer). Go's net/http does the same for Prometheus: bodies beyond its buffer go out
 * chunked. api_json_out_flush returns false once the client has gone: the producer may stop then (the
 * rest is discarded anyway). Add headers before the first flush. */
#define API_STREAM_MIN_BYTES (64 * 1024)

typedef struct api_json_out {
	http_req_t *r;
	buf_t b; /* JSON produced and not sent yet */
	int status;
	bool streaming;
	api_encoding_t enc;
	void *z;  /* zlib stream while streaming compressed */
	buf_t zb; /* compressed bytes of one chunk */
} api_json_out_t;

void api_json_out_init(api_json_out_t *o, http_req_t *r, int status);
bool api_json_out_flush(api_json_out_t *o);
/* Sends the rest and ends the response; releases o. */
void api_json_out_end(api_json_out_t *o);

#endif
