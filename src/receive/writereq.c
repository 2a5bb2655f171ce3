/*
 * writereq.c — remote write 1.0 decoding: snappy, then a two-pass protobuf walk.
 */
#include "receive/writereq.h"

#include <snappy-c.h>
#include <string.h>

#include "base/alloc.h"

typedef struct cur {
	const uint8_t *p, *end, *base;
} cur_t;

static inline bool rd_varint(cur_t *c, uint64_t *v)
{
	const uint8_t *p = c->p;
	if (p < c->end && *p < 0x80) {
		*v = *p;
		c->p = p + 1;
		return true;
	}
	uint64_t x = 0;
	for (int s = 0; s < 64; s += 7) {
		if (p >= c->end)
			return false;
		uint8_t b = *p++;
		if (s == 63 && b > 1)
			return false;
		x |= (uint64_t)(b & 0x7f) << s;
		if (b < 0x80) {
			*v = x;
			c->p = p;
			return true;
		}
	}
	return false;
}

/* A length-delimited field's bytes. */
static inline bool rd_bytes(cur_t *c, cur_t *sub)
{
	uint64_t n;
	if (!rd_varint(c, &n) || n > (uint64_t)(c->end - c->p))
		return false;
	sub->p = c->p;
	sub->end = c->p + n;
	sub->base = c->base;
	c->p += n;
	return true;
}

static bool skip(cur_t *c, unsigned wt)
{
	uint64_t v;
	cur_t sub;
	switch (wt) {
	case 0:
		return rd_varint(c, &v);
	case 1:
		if (c->end - c->p < 8)
			return false;
		c->p += 8;
		return true;
	case 2:
		return rd_bytes(c, &sub);
	case 5:
		if (c->end - c->p < 4)
			return false;
		c->p += 4;
		return true;
	default:
		return false; /* groups (3, 4) and reserved types */
	}
}

typedef struct walk {
	bool fill;
	bool labels_only; /* fill: samples counted, not decoded */
	wr_request_t *r;
	label_t *labels; /* fill: next free label slot */
	int64_t *t;
	double *v;
	const char *what; /* error: what failed */
	const uint8_t *at;
} walk_t;

static bool fail(walk_t *w, const cur_t *c, const char *what)
{
	w->what = what;
	w->at = c->p;
	return false;
}

/* *canonical: the label is exactly 0a <len> name 12 <len> value with one-byte lengths (what every
 * sender writes, and head_labels_key's canonical form). */
static bool label(walk_t *w, cur_t *c, label_t *out, bool *canonical)
{
	str_t name = STR_NULL, value = STR_NULL;
	const uint8_t *p = c->p;
	if (c->end - p >= 4 && p[0] == 0x0a && p[1] < 0x80 && (size_t)(c->end - p) >= 4u + p[1] &&
	    p[2 + p[1]] == 0x12 && p[3 + p[1]] < 0x80 && (size_t)(c->end - p) == 4u + p[1] + p[3 + p[1]]) {
		out->name = str_from((const char *)p + 2, p[1]);
		out->value = str_from((const char *)p + 4 + p[1], p[3 + p[1]]);
		c->p = c->end;
		return true;
	}
	*canonical = false;
	while (c->p < c->end) {
		uint64_t tag;
		if (!rd_varint(c, &tag))
			return fail(w, c, "bad label field tag");
		unsigned f = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		if ((f == 1 || f == 2) && wt == 2) {
			cur_t s;
			if (!rd_bytes(c, &s))
				return fail(w, c, "label string runs past its message");
			str_t x = str_from((const char *)s.p, (size_t)(s.end - s.p));
			if (f == 1)
				name = x;
			else
				value = x;
		} else if (!skip(c, wt)) {
			return fail(w, c, "bad field in label");
		}
	}
	*out = (label_t){name, value};
	return true;
}

static bool sample(walk_t *w, cur_t *c, int64_t *t, double *v)
{
	uint64_t bits = 0, ts = 0;
	/* the usual encoding: 09 <8 bytes> 10 <varint> */
	if (c->end - c->p >= 11 && c->p[0] == 0x09 && c->p[9] == 0x10) {
		memcpy(&bits, c->p + 1, 8);
		c->p += 10;
		if (!rd_varint(c, &ts))
			return fail(w, c, "bad sample timestamp");
	}
	while (c->p < c->end) {
		uint64_t tag;
		if (!rd_varint(c, &tag))
			return fail(w, c, "bad sample field tag");
		unsigned f = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		if (f == 1 && wt == 1) {
			if (c->end - c->p < 8)
				return fail(w, c, "sample value cut short");
			memcpy(&bits, c->p, 8);
			c->p += 8;
		} else if (f == 2 && wt == 0) {
			if (!rd_varint(c, &ts))
				return fail(w, c, "bad sample timestamp");
		} else if (!skip(c, wt)) {
			return fail(w, c, "bad field in sample");
		}
	}
	*t = (int64_t)ts;
	memcpy(v, &bits, 8); /* bits are little-endian on the wire, as on this host */
	return true;
}

static bool timeseries(walk_t *w, cur_t *c, wr_series_t *s)
{
	uint32_t nl = 0, ns = 0;
	const uint8_t *lstart = NULL, *lend = NULL; /* the label fields, when adjacent and canonical */
	bool canonical = true;
	while (c->p < c->end) {
		uint64_t tag;
		const uint8_t *fs = c->p;
		if (!rd_varint(c, &tag))
			return fail(w, c, "bad time series field tag");
		unsigned f = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		cur_t sub;
		if (wt == 2 && f >= 1 && f <= 4) {
			if (!rd_bytes(c, &sub))
				return fail(w, c, "time series field runs past its message");
			if (f == 1) {
				/* a label needs a name and a value of at least a byte each (6 bytes): checked
				 * before anything is allocated, so arrays stay within 6x the body */
				if (sub.end - sub.p < 6)
					return fail(w, c, "label too short to hold a name and a value");
				if (sub.p - fs != 2 || (lstart && fs != lend))
					canonical = false; /* a long label, or labels not side by side */
				if (w->fill && !label(w, &sub, &w->labels[nl], &canonical))
					return false;
				if (!lstart)
					lstart = fs;
				lend = sub.end;
				nl++;
			} else if (f == 2) {
				if (w->fill && !w->labels_only && !sample(w, &sub, &w->t[ns], &w->v[ns]))
					return false;
				ns++;
			} else if (f == 3) {
				s->nexemplars++;
			} else {
				s->nhistograms++;
			}
		} else if (!skip(c, wt)) {
			return fail(w, c, "bad field in time series");
		}
	}
	if (!nl) /* nothing to store it under; refusing it here also bounds the series array */
		return fail(w, c, "time series without labels");
	if (w->fill) {
		s->ls = (labels_t){w->labels, nl};
		if (canonical) {
			s->raw = lstart;
			s->nraw = (uint32_t)(lend - lstart);
		}
		if (!w->labels_only) {
			s->t = w->t;
			s->v = w->v;
			w->t += ns;
			w->v += ns;
		}
		w->labels += nl;
	}
	s->n = ns;
	w->r->nlabels += nl;
	w->r->nsamples += ns;
	w->r->nexemplars += s->nexemplars;
	w->r->nhistograms += s->nhistograms;
	return true;
}

static bool metadata(walk_t *w, cur_t *c, wr_meta_t *m)
{
	wr_meta_t x = {0};
	while (c->p < c->end) {
		uint64_t tag, v;
		if (!rd_varint(c, &tag))
			return fail(w, c, "bad metadata field tag");
		unsigned f = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		cur_t s;
		if (f == 1 && wt == 0) {
			if (!rd_varint(c, &v))
				return fail(w, c, "bad metadata type");
			x.type = v <= 7 ? (uint8_t)v : 0;
		} else if ((f == 2 || f == 4 || f == 5) && wt == 2) {
			if (!rd_bytes(c, &s))
				return fail(w, c, "metadata string runs past its message");
			str_t str = str_from((const char *)s.p, (size_t)(s.end - s.p));
			if (f == 2)
				x.family = str;
			else if (f == 4)
				x.help = str;
			else
				x.unit = str;
		} else if (!skip(c, wt)) {
			return fail(w, c, "bad field in metadata");
		}
	}
	if (m)
		*m = x;
	return true;
}

static bool request(walk_t *w, cur_t *c)
{
	size_t ns = 0, nm = 0;
	while (c->p < c->end) {
		uint64_t tag;
		if (!rd_varint(c, &tag))
			return fail(w, c, "bad field tag");
		unsigned f = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		cur_t sub;
		if ((f == 1 || f == 3) && wt == 2) {
			if (!rd_bytes(c, &sub))
				return fail(w, c, "field runs past the end of the request");
			if (f == 1) {
				wr_series_t tmp = {0}, *s = w->fill ? &w->r->series[ns] : &tmp;
				s->msg = sub.p;
				s->nmsg = (uint32_t)(sub.end - sub.p);
				if (!timeseries(w, &sub, s))
					return false;
				ns++;
			} else {
				if (!metadata(w, &sub, w->fill ? &w->r->meta[nm] : NULL))
					return false;
				nm++;
			}
		} else if (f == 2 && wt == 2) { /* thanos.WriteRequest.tenant */
			if (!rd_bytes(c, &sub))
				return fail(w, c, "field runs past the end of the request");
			w->r->tenant = str_from((const char *)sub.p, (size_t)(sub.end - sub.p));
		} else if (f == 3 && wt == 0) { /* thanos.WriteRequest.replica */
			if (!rd_varint(c, &w->r->replica))
				return fail(w, c, "bad replica");
		} else if (!skip(c, wt)) {
			return fail(w, c, "bad field in the request");
		}
	}
	w->r->nseries = ns;
	w->r->nmeta = nm;
	return true;
}

static int decode(arena_t *a, const uint8_t *p, size_t n, bool labels_only, wr_request_t *out, err_t *err)
{
	memset(out, 0, sizeof *out);
	wr_request_t counts = {0};
	walk_t w = {.fill = false, .r = &counts};
	cur_t c = {p, p + n, p};
	if (!request(&w, &c))
		return err_set(err, ERR_INVALID, "decode remote write request: byte %zu: %s",
		               (size_t)(w.at - p), w.what);
	out->series = ARENA_NEW_ARRAY(a, wr_series_t, counts.nseries ? counts.nseries : 1);
	out->meta = ARENA_NEW_ARRAY(a, wr_meta_t, counts.nmeta ? counts.nmeta : 1);
	w = (walk_t){.fill = true, .labels_only = labels_only, .r = out};
	w.labels = arena_alloc(a, (counts.nlabels ? counts.nlabels : 1) * sizeof(label_t));
	if (!labels_only) {
		w.t = arena_alloc(a, (counts.nsamples ? counts.nsamples : 1) * sizeof(int64_t));
		w.v = arena_alloc(a, (counts.nsamples ? counts.nsamples : 1) * sizeof(double));
	}
	c = (cur_t){p, p + n, p};
	if (!request(&w, &c)) /* the first pass checked the framing only: labels and samples now */
		return err_set(err, ERR_INVALID, "decode remote write request: byte %zu: %s",
		               (size_t)(w.at - p), w.what);
	return 0;
}

int wr_decode(arena_t *a, const uint8_t *p, size_t n, wr_request_t *out, err_t *err)
{
	return decode(a, p, n, false, out, err);
}

int wr_uncompress_body(arena_t *a, const void *body, size_t n, size_t max_decoded, const uint8_t **out,
                       size_t *out_n, err_t *err)
{
	size_t ul;
	if (snappy_uncompressed_length(body, n, &ul) != SNAPPY_OK)
		return err_set(
		    err, ERR_INVALID,
		    "snappy decode: not a snappy block (remote write bodies use the block format)");
	if (ul > max_decoded)
		return err_set(err, ERR_LIMIT,
		               "snappy decode: decompressed size %zu exceeds the limit of %zu bytes", ul,
		               max_decoded);
	if (ul > n * WR_SNAPPY_MAX_RATIO + 64)
		return err_set(err, ERR_INVALID,
		               "snappy decode: header claims %zu bytes from %zu: corrupt input", ul, n);
	char *dst = arena_alloc(a, ul ? ul : 1);
	size_t got = ul;
	if (snappy_uncompress(body, n, dst, &got) != SNAPPY_OK || got != ul)
		return err_set(err, ERR_INVALID, "snappy decode: corrupt input");
	*out = (const uint8_t *)dst;
	*out_n = ul;
	return 0;
}

int wr_decode_body_ex(arena_t *a, const void *body, size_t n, size_t max_decoded, bool labels_only,
                      wr_request_t *out, err_t *err)
{
	const uint8_t *p;
	size_t ul;
	int rc = wr_uncompress_body(a, body, n, max_decoded, &p, &ul, err);
	if (rc)
		return rc;
	return decode(a, p, ul, labels_only, out, err);
}

int wr_decode_body(arena_t *a, const void *body, size_t n, size_t max_decoded, wr_request_t *out, err_t *err)
{
	return wr_decode_body_ex(a, body, n, max_decoded, false, out, err);
}
