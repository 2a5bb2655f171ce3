/*
 * api_compress.c — Accept-Encoding negotiation and gzip/deflate response bodies (see api_compress.h).
 */
#include "net/api_compress.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "base/alloc.h"
#include "base/log.h"

/* zlib allocates through our checked allocator (aborts on out-of-memory like everything else). */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
	(void)opaque;
	return xmalloc(st_mult(items, size));
}

static void z_free(voidpf opaque, voidpf p)
{
	(void)opaque;
	free(p);
}

static bool coding_is(str_t s, const char *name)
{
	size_t n = strlen(name);
	return s.n == n && strncasecmp(s.p, name, n) == 0;
}

/* q of one list element's parameters (";q=0.5"); 1 when absent, 0 when malformed (refuse rather than guess). */
static double element_q(str_t params)
{
	str_t p, rest = params;
	double q = 1;
	while (rest.n) {
		str_split2(rest, ';', &p, &rest);
		p = str_trim(p);
		if (p.n >= 2 && (p.p[0] == 'q' || p.p[0] == 'Q') && p.p[1] == '=') {
			if (!str_to_double(str_trim(str_sub(p, 2, p.n)), &q) || !(q >= 0 && q <= 1))
				return 0;
		}
	}
	return q;
}

api_encoding_t api_encoding_negotiate(str_t accept)
{
	double qg = -1, qd = -1, qstar = -1;
	str_t el, rest = accept;
	while (rest.n) {
		str_split2(rest, ',', &el, &rest);
		str_t name = el, params = STR("");
		str_split2(el, ';', &name, &params);
		name = str_trim(name);
		double q = element_q(params);
		if (coding_is(name, "gzip") || coding_is(name, "x-gzip"))
			qg = q;
		else if (coding_is(name, "deflate"))
			qd = q;
		else if (coding_is(name, "*"))
			qstar = q;
	}
	if (qg < 0)
		qg = qstar;
	if (qd < 0)
		qd = qstar;
	if (qg <= 0 && qd <= 0)
		return API_ENC_IDENTITY;
	return qg >= qd ? API_ENC_GZIP : API_ENC_DEFLATE;
}

const char *api_encoding_name(api_encoding_t e)
{
	switch (e) {
	case API_ENC_GZIP: return "gzip";
	case API_ENC_DEFLATE: return "deflate";
	case API_ENC_IDENTITY: break;
	}
	return "identity";
}

int api_compress(api_encoding_t e, const void *in, size_t n, buf_t *out, err_t *err)
{
	if (e == API_ENC_IDENTITY) {
		buf_append(out, in, n);
		return 0;
	}
	z_stream zs = {.zalloc = z_alloc, .zfree = z_free};
	/* windowBits 15 (32 KiB, zlib's and Go's default); +16 selects the gzip wrapper. Level 6 is
	 * Z_DEFAULT_COMPRESSION, the level Go's gzip.NewWriter uses. */
	int rc = deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, e == API_ENC_GZIP ? 15 + 16 : 15, 8,
			      Z_DEFAULT_STRATEGY);
	if (rc != Z_OK)
		return err_set(err, ERR_INTERNAL, "%s: deflateInit2: %s (%d)", api_encoding_name(e),
			       zs.msg ? zs.msg : "error", rc);
	size_t start = out->n;
	const unsigned char *p = in;
	size_t left = n;
	/* One pass when the input fits zlib's 32-bit counters (always, in practice): deflateBound's room
	 * means deflate finishes in one call; the loop handles the rest. */
	size_t bound = deflateBound(&zs, n > UINT_MAX ? UINT_MAX : (uLong)n);
	buf_reserve(out, bound);
	do {
		if (zs.avail_in == 0 && left) {
			uInt k = left > UINT_MAX ? UINT_MAX : (uInt)left;
			zs.next_in = (Bytef *)(uintptr_t)p;
			zs.avail_in = k;
			p += k;
			left -= k;
		}
		if (out->cap - out->n - 1 < 4096)
			buf_reserve(out, 64 * 1024);
		size_t room = out->cap - out->n - 1;
		uInt r = room > UINT_MAX ? UINT_MAX : (uInt)room;
		zs.next_out = (Bytef *)out->p + out->n;
		zs.avail_out = r;
		rc = deflate(&zs, left == 0 ? Z_FINISH : Z_NO_FLUSH);
		out->n += r - zs.avail_out;
	} while (rc == Z_OK || (rc == Z_BUF_ERROR && (zs.avail_in || left)));
	out->p[out->n] = 0;
	if (rc != Z_STREAM_END) {
		err_set(err, ERR_INTERNAL, "%s: deflate: %s (%d)", api_encoding_name(e), zs.msg ? zs.msg : "error", rc);
		deflateEnd(&zs);
		buf_truncate(out, start);
		return err->code;
	}
	deflateEnd(&zs);
	return 0;
}

void api_respond_json(http_req_t *r, int status, buf_t *body)
{
	http_add_header(r, "Vary", "Accept-Encoding");
	str_t ae;
	api_encoding_t e = API_ENC_IDENTITY;
	if (body->n >= API_COMPRESS_MIN_BYTES && http_req_header(r, "Accept-Encoding", &ae))
		e = api_encoding_negotiate(ae);
	if (e != API_ENC_IDENTITY) {
		buf_t z = BUF_INIT;
		err_t err = {0};
		if (api_compress(e, body->p, body->n, &z, &err) == 0) {
			http_add_header(r, "Content-Encoding", api_encoding_name(e));
			buf_release(body);
			http_respond_buf(r, status, "application/json", &z);
			buf_release(&z);
			return;
		}
		log_error("response compression failed, sending it uncompressed", "handler", r->handler, "err", err.msg);
		buf_release(&z);
	}
	http_respond_buf(r, status, "application/json", body);
}

/* ---- streamed JSON responses ---- */

void api_json_out_init(api_json_out_t *o, http_req_t *r, int status)
{
	memset(o, 0, sizeof *o);
	o->r = r;
	o->status = status;
	buf_init(&o->b);
	buf_init(&o->zb);
}

/* Compress (when streaming compressed) and send what o->b holds; finish ends the zlib stream. */
static void send_part(api_json_out_t *o, bool finish)
{
	if (!o->z) {
		http_stream_write(o->r, o->b.p, o->b.n);
		buf_reset(&o->b);
		return;
	}
	z_stream *zs = o->z;
	zs->next_in = (Bytef *)o->b.p;
	zs->avail_in = (uInt)o->b.n;
	int rc;
	do {
		buf_reserve(&o->zb, 64 * 1024);
		zs->next_out = (Bytef *)o->zb.p + o->zb.n;
		zs->avail_out = (uInt)(o->zb.cap - o->zb.n - 1);
		uInt room = zs->avail_out;
		rc = deflate(zs, finish ? Z_FINISH : Z_NO_FLUSH);
		o->zb.n += room - zs->avail_out;
	} while (finish ? rc == Z_OK : (zs->avail_out == 0 && rc == Z_OK));
	if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
		log_error("response compression failed mid-stream", "handler", o->r->handler, "err",
		          zs->msg ? zs->msg : "deflate");
	buf_reset(&o->b);
	if (o->zb.n)
		http_stream_write(o->r, o->zb.p, o->zb.n);
	buf_reset(&o->zb);
}

bool api_json_out_flush(api_json_out_t *o)
{
	if (o->b.n < API_STREAM_MIN_BYTES)
		return !o->streaming || !http_stream_gone(o->r);
	if (!o->streaming) {
		o->streaming = true;
		http_add_header(o->r, "Vary", "Accept-Encoding");
		str_t ae;
		if (http_req_header(o->r, "Accept-Encoding", &ae))
			o->enc = api_encoding_negotiate(ae);
		if (o->enc != API_ENC_IDENTITY) {
			z_stream *zs = xcalloc(1, sizeof *zs);
			zs->zalloc = z_alloc;
			zs->zfree = z_free;
			if (deflateInit2(zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
			                 o->enc == API_ENC_GZIP ? 15 + 16 : 15, 8,
			                 Z_DEFAULT_STRATEGY) == Z_OK) {
				o->z = zs;
				http_add_header(o->r, "Content-Encoding", api_encoding_name(o->enc));
			} else {
				log_error("response compression failed, sending it uncompressed", "handler",
				          o->r->handler);
				free(zs);
			}
		}
		http_stream_begin(o->r, o->status, "application/json");
	}
	send_part(o, false);
	return !http_stream_gone(o->r);
}

void api_json_out_end(api_json_out_t *o)
{
	if (!o->streaming) {
		api_respond_json(o->r, o->status, &o->b);
	} else {
		send_part(o, true);
		if (o->z) {
			deflateEnd(o->z);
			free(o->z);
		}
		http_stream_end(o->r);
	}
	buf_release(&o->b);
	buf_release(&o->zb);
}
