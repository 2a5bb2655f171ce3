/*
 * extents.c — results-cache values (CachedResponse protobuf) and extent bookkeeping; see extents.h.
 */
#include "frontend/extents.h"

#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anypb.pb-c.h"
#include "base/alloc.h"
#include "base/varint.h"
#include "labelpb.pb-c.h"
#include "queryrange.pb-c.h"

#define URL_RANGE  "type.googleapis.com/queryrange.PrometheusResponse"
#define URL_LABELS "type.googleapis.com/queryfrontend.ThanosLabelsResponse"
#define URL_SERIES "type.googleapis.com/queryfrontend.ThanosSeriesResponse"

void extents_hash_key(str_t key, char out[17])
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < key.n; i++) {
		h ^= (uint8_t)key.p[i];
		h *= 1099511628211ULL;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ------------------------------------------------------------------ protobuf <-> promresp */

static void *pb_alloc(void *a, size_t n)
{
	return arena_alloc(a, n ? n : 1);
}

static void pb_free(void *a, void *p)
{
	(void)a, (void)p;
}

/* Pack a labels or series response of one extent into an Any (in a); matrices: mx_write below. */
static void pack_response(arena_t *a, const promresp_t *r, Thanos__Any *any)
{
	size_t len;
	uint8_t *out;
	if (r->kind == PROMRESP_LABELS) {
		Queryrange__ThanosLabelsResponse lr = QUERYRANGE__THANOS_LABELS_RESPONSE__INIT;
		lr.status = "success";
		lr.n_data = r->nstrings;
		lr.data = ARENA_NEW_ARRAY(a, char *, r->nstrings + 1);
		for (size_t j = 0; j < r->nstrings; j++)
			lr.data[j] = arena_strndup(a, r->strings[j].p, r->strings[j].n);
		len = queryrange__thanos_labels_response__get_packed_size(&lr);
		out = arena_alloc(a, len + 1);
		queryrange__thanos_labels_response__pack(&lr, out);
		any->type_url = URL_LABELS;
	} else {
		Queryrange__ThanosSeriesResponse sr = QUERYRANGE__THANOS_SERIES_RESPONSE__INIT;
		sr.status = "success";
		sr.n_data = r->nseries;
		sr.data = ARENA_NEW_ARRAY(a, Thanos__LabelSet *, r->nseries + 1);
		for (size_t i = 0; i < r->nseries; i++) {
			const labels_t *ls = &r->series[i].ls;
			Thanos__LabelSet *set = ARENA_NEW(a, Thanos__LabelSet);
			thanos__label_set__init(set);
			set->n_labels = ls->n;
			set->labels = ARENA_NEW_ARRAY(a, Thanos__Label *, ls->n + 1);
			Thanos__Label *l = ARENA_NEW_ARRAY(a, Thanos__Label, ls->n + 1);
			for (size_t j = 0; j < ls->n; j++) {
				thanos__label__init(&l[j]);
				l[j].name = arena_strndup(a, ls->v[j].name.p, ls->v[j].name.n);
				l[j].value = arena_strndup(a, ls->v[j].value.p, ls->v[j].value.n);
				set->labels[j] = &l[j];
			}
			sr.data[i] = set;
		}
		len = queryrange__thanos_series_response__get_packed_size(&sr);
		out = arena_alloc(a, len + 1);
		queryrange__thanos_series_response__pack(&sr, out);
		any->type_url = URL_SERIES;
	}
	any->value = (ProtobufCBinaryData){len, out};
}

/* A PrometheusResponse read straight off the wire (the warm path's hot loop: protobuf-c would allocate
 * one message per sample). Unknown fields are skipped as protobuf requires. */
typedef struct pbr {
	const uint8_t *p, *end;
} pbr_t;

static bool pb_varint(pbr_t *r, uint64_t *v)
{
	int n = uvarint_get(r->p, r->end, v);
	if (n <= 0)
		return false;
	r->p += n;
	return true;
}

/* Next field: its number and wire type; for wire type 2 *sub is the payload. */
static bool pb_field(pbr_t *r, uint32_t *field, int *wt, pbr_t *sub, uint64_t *val)
{
	uint64_t tag;
	if (!pb_varint(r, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
		return false;
	*field = (uint32_t)(tag >> 3);
	*wt = (int)(tag & 7);
	switch (*wt) {
	case 0:
		return pb_varint(r, val);
	case 1:
		if (r->end - r->p < 8)
			return false;
		memcpy(val, r->p, 8); /* little-endian hosts only (x86-64, arm64) */
		r->p += 8;
		return true;
	case 5:
		if (r->end - r->p < 4)
			return false;
		*val = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 |
		       (uint64_t)r->p[3] << 24;
		r->p += 4;
		return true;
	case 2: {
		uint64_t n;
		if (!pb_varint(r, &n) || n > (uint64_t)(r->end - r->p))
			return false;
		*sub = (pbr_t){r->p, r->p + n};
		r->p += n;
		return true;
	}
	default:
		return false;
	}
}

static str_t pb_str(pbr_t s)
{
	return (str_t){(const char *)s.p, (size_t)(s.end - s.p)};
}

/* Count the occurrences of a length-delimited field (to size arrays before filling them). */
static size_t pb_count(pbr_t r, uint32_t want)
{
	uint32_t f;
	int wt;
	pbr_t sub;
	uint64_t v;
	size_t n = 0;
	while (r.p < r.end && pb_field(&r, &f, &wt, &sub, &v))
		n += f == want && wt == 2;
	return n;
}

static bool unpack_stream(arena_t *a, pbr_t r, promresp_series_t *s)
{
	size_t nl = pb_count(r, 1), np = pb_count(r, 2);
	s->ls.v = ARENA_NEW_ARRAY(a, label_t, nl + 1);
	s->pts = ARENA_NEW_ARRAY(a, promresp_point_t, np + 1);
	uint32_t f, f2;
	int wt, wt2;
	pbr_t sub, x;
	uint64_t v, v2;
	while (r.p < r.end) {
		if (!pb_field(&r, &f, &wt, &sub, &v))
			return false;
		if (wt != 2 || (f != 1 && f != 2))
			continue;
		if (f == 1) {
			label_t *l = &s->ls.v[s->ls.n++];
			*l = (label_t){STR(""), STR("")};
			while (sub.p < sub.end) {
				if (!pb_field(&sub, &f2, &wt2, &x, &v2))
					return false;
				if (wt2 == 2 && f2 == 1)
					l->name = pb_str(x);
				else if (wt2 == 2 && f2 == 2)
					l->value = pb_str(x);
			}
		} else {
			promresp_point_t *pt = &s->pts[s->n++];
			*pt = (promresp_point_t){0, 0};
			while (sub.p < sub.end) {
				if (!pb_field(&sub, &f2, &wt2, &x, &v2))
					return false;
				if (f2 == 1 && wt2 == 1)
					memcpy(&pt->v, &v2, 8);
				else if (f2 == 2 && wt2 == 0)
					pt->t = (int64_t)v2;
			}
			if (s->n > 1 && pt->t <= pt[-1].t)
				return false;
		}
	}
	return labels_normalize(&s->ls) == 0;
}

static bool unpack_stats(arena_t *a, pbr_t r, promresp_stats_t *st)
{
	uint32_t f, f2, f3;
	int wt, wt2, wt3;
	pbr_t sub, x, y;
	uint64_t v, v2, v3;
	while (r.p < r.end) { /* PrometheusResponseStats{samples = 1} */
		if (!pb_field(&r, &f, &wt, &sub, &v))
			return false;
		if (f != 1 || wt != 2)
			continue;
		st->present = true;
		size_t n = pb_count(sub, 2);
		st->step_t = ARENA_NEW_ARRAY(a, int64_t, n + 1);
		st->step_n = ARENA_NEW_ARRAY(a, int64_t, n + 1);
		while (sub.p < sub.end) {
			if (!pb_field(&sub, &f2, &wt2, &x, &v2))
				return false;
			if (f2 == 1 && wt2 == 0)
				st->total_samples = (int64_t)v2;
			else if (f2 == 1000 && wt2 == 0)
				st->peak_samples = (int64_t)v2;
			else if (f2 == 2 && wt2 == 2) {
				int64_t *t = &st->step_t[st->nsteps], *c = &st->step_n[st->nsteps++];
				*t = *c = 0;
				while (x.p < x.end) {
					if (!pb_field(&x, &f3, &wt3, &y, &v3))
						return false;
					if (f3 == 1 && wt3 == 0)
						*c = (int64_t)v3;
					else if (f3 == 2 && wt3 == 0)
						*t = (int64_t)v3;
				}
			}
		}
		st->per_step = st->nsteps > 0;
	}
	return true;
}

static bool unpack_matrix(arena_t *a, ProtobufCBinaryData bytes, promresp_t *r)
{
	pbr_t rd = {bytes.data, bytes.data + bytes.len}, sub, x;
	uint32_t f, f2;
	int wt, wt2;
	uint64_t v, v2;
	bool success = false, data = false;
	r->warnings = ARENA_NEW_ARRAY(a, str_t, pb_count(rd, 6) + 1);
	while (rd.p < rd.end) {
		if (!pb_field(&rd, &f, &wt, &sub, &v))
			return false;
		if (wt != 2)
			continue;
		if (f == 1)
			success = str_eq_c(pb_str(sub), "success");
		else if (f == 6)
			r->warnings[r->nwarnings++] = pb_str(sub);
		else if (f == 2) {
			data = true;
			r->series = ARENA_NEW_ARRAY(a, promresp_series_t, pb_count(sub, 2) + 1);
			while (sub.p < sub.end) {
				if (!pb_field(&sub, &f2, &wt2, &x, &v2))
					return false;
				if (wt2 == 2 && f2 == 2 && !unpack_stream(a, x, &r->series[r->nseries++]))
					return false;
				if (wt2 == 2 && f2 == 3 && !unpack_stats(a, x, &r->stats))
					return false;
			}
		}
	}
	return success && data;
}

static bool unpack_response(arena_t *a, promresp_kind_t kind, str_t type_url, pbr_t value, promresp_t *r)
{
	ProtobufCAllocator al = {pb_alloc, pb_free, a};
	memset(r, 0, sizeof *r);
	r->kind = kind;
	Thanos__Any anyv = {.type_url = "", .value = {(size_t)(value.end - value.p), (uint8_t *)value.p}},
	            *any = &anyv;
	switch (kind) {
	case PROMRESP_MATRIX:
		return str_eq_c(type_url, URL_RANGE) && unpack_matrix(a, any->value, r);
	case PROMRESP_LABELS: {
		if (!str_eq_c(type_url, URL_LABELS))
			return false;
		Queryrange__ThanosLabelsResponse *lr =
		    queryrange__thanos_labels_response__unpack(&al, any->value.len, any->value.data);
		if (!lr || strcmp(lr->status, "success") != 0)
			return false;
		r->nstrings = lr->n_data;
		r->strings = ARENA_NEW_ARRAY(a, str_t, lr->n_data + 1);
		for (size_t i = 0; i < lr->n_data; i++)
			r->strings[i] = str_c(lr->data[i]);
		return true;
	}
	case PROMRESP_SERIES: {
		if (!str_eq_c(type_url, URL_SERIES))
			return false;
		Queryrange__ThanosSeriesResponse *sr =
		    queryrange__thanos_series_response__unpack(&al, any->value.len, any->value.data);
		if (!sr || strcmp(sr->status, "success") != 0)
			return false;
		r->nseries = sr->n_data;
		r->series = ARENA_NEW_ARRAY(a, promresp_series_t, sr->n_data + 1);
		for (size_t i = 0; i < sr->n_data; i++) {
			labels_t *ls = &r->series[i].ls;
			ls->n = sr->data[i]->n_labels;
			ls->v = ARENA_NEW_ARRAY(a, label_t, ls->n + 1);
			for (size_t j = 0; j < ls->n; j++)
				ls->v[j] = (label_t){str_c(sr->data[i]->labels[j]->name),
				                     str_c(sr->data[i]->labels[j]->value)};
			if (labels_normalize(ls))
				return false;
		}
		return true;
	}
	}
	return false;
}

bool extents_decode(arena_t *a, promresp_kind_t kind, str_t value, str_t key, bool snappy, extents_t *out)
{
	memset(out, 0, sizeof *out);
	if (snappy) {
		size_t n;
		/* snappy expands at most ~21x (a 3-byte copy of 64 bytes): a length past that is a lie,
		 * and would have us allocate up to the 1 GiB limit for a few bytes of input */
		if (snappy_uncompressed_length(value.p, value.n, &n) != SNAPPY_OK || n > (1u << 30) ||
		    n > value.n * 32 + 64)
			return false;
		char *raw = arena_alloc(a, n + 1);
		if (snappy_uncompress(value.p, value.n, raw, &n) != SNAPPY_OK)
			return false;
		value = (str_t){raw, n};
	}
	/* CachedResponse{key = 1, extents = 2: Extent{start = 1, end = 2, trace_id = 4, response = 5:
	 * Any{type_url = 1, value = 2}}}, read off the wire without copies. */
	pbr_t rd = {(const uint8_t *)value.p, (const uint8_t *)value.p + value.n}, sub, x, y;
	uint32_t f, f2, f3;
	int wt, wt2, wt3;
	uint64_t v, v2, v3;
	bool key_ok = false;
	out->v = ARENA_NEW_ARRAY(a, extent_t, pb_count(rd, 2) + 1);
	while (rd.p < rd.end) {
		if (!pb_field(&rd, &f, &wt, &sub, &v))
			return false;
		if (wt != 2)
			continue;
		if (f == 1) {
			key_ok = str_eq(pb_str(sub), key);
			continue;
		}
		if (f != 2)
			continue;
		extent_t *e = &out->v[out->n++];
		str_t url = STR("");
		pbr_t val = {NULL, NULL};
		bool have = false;
		e->start = e->end = 0;
		while (sub.p < sub.end) {
			if (!pb_field(&sub, &f2, &wt2, &x, &v2))
				return false;
			if (f2 == 1 && wt2 == 0)
				e->start = (int64_t)v2;
			else if (f2 == 2 && wt2 == 0)
				e->end = (int64_t)v2;
			else if (f2 == 5 && wt2 == 2) {
				have = true;
				while (x.p < x.end) {
					if (!pb_field(&x, &f3, &wt3, &y, &v3))
						return false;
					if (f3 == 1 && wt3 == 2)
						url = pb_str(y);
					else if (f3 == 2 && wt3 == 2)
						val = y;
				}
			}
		}
		if (!have || e->end < e->start || (out->n > 1 && e->start < e[-1].start))
			return false;
		if (!val.p)
			val = (pbr_t){(const uint8_t *)"", (const uint8_t *)""};
		if (!unpack_response(a, kind, url, val, &e->resp))
			return false;
	}
	return key_ok;
}

/* A matrix extent's PrometheusResponse written straight to bytes (the warm path re-encodes a piece's
 * extents on every refresh: protobuf-c would need a message struct per sample). Fields in number order
 * and proto3 defaults left out, as protobuf-c packs them; a sample's value is left out only when its bits
 * are all zero (so -0 stays -0). */
typedef struct mx_size {
	size_t *series; /* each SampleStream */
	size_t *labels; /* each series' first label's index in lp */
	size_t *lp;     /* each LabelPair */
	size_t stats;   /* PrometheusResponseSamplesStats (0: none) */
	size_t data, resp;
} mx_size_t;

static size_t fld(size_t n) /* a length-delimited field with a one-byte tag */
{
	return 1 + uvarint_len(n) + n;
}

static size_t sample_size(const promresp_point_t *pt)
{
	uint64_t bits;
	memcpy(&bits, &pt->v, 8);
	return (bits ? 9 : 0) + (pt->t ? 1 + uvarint_len((uint64_t)pt->t) : 0);
}

static size_t step_size(int64_t t, int64_t n)
{
	return (n ? 1 + uvarint_len((uint64_t)n) : 0) + (t ? 1 + uvarint_len((uint64_t)t) : 0);
}

static void mx_measure(arena_t *a, const promresp_t *r, mx_size_t *z)
{
	size_t nl = 0;
	for (size_t i = 0; i < r->nseries; i++)
		nl += r->series[i].ls.n;
	z->series = ARENA_NEW_ARRAY(a, size_t, r->nseries + 1);
	z->labels = ARENA_NEW_ARRAY(a, size_t, r->nseries + 1);
	z->lp = ARENA_NEW_ARRAY(a, size_t, nl + 1);
	z->data = fld(6); /* ResultType "matrix" */
	nl = 0;
	for (size_t i = 0; i < r->nseries; i++) {
		const promresp_series_t *s = &r->series[i];
		size_t n = 0;
		z->labels[i] = nl;
		for (size_t j = 0; j < s->ls.n; j++, nl++) {
			size_t name = s->ls.v[j].name.n, value = s->ls.v[j].value.n;
			z->lp[nl] = (name ? fld(name) : 0) + (value ? fld(value) : 0);
			n += fld(z->lp[nl]);
		}
		for (size_t j = 0; j < s->n; j++)
			n += fld(sample_size(&s->pts[j]));
		z->series[i] = n;
		z->data += fld(n);
	}
	z->stats = 0;
	if (r->stats.present) {
		const promresp_stats_t *st = &r->stats;
		size_t n = st->total_samples ? 1 + uvarint_len((uint64_t)st->total_samples) : 0;
		for (size_t j = 0; j < st->nsteps; j++)
			n += fld(step_size(st->step_t[j], st->step_n[j]));
		if (st->peak_samples) /* field 1000: a two-byte tag */
			n += 2 + uvarint_len((uint64_t)st->peak_samples);
		z->stats = n;
		z->data += fld(fld(n)); /* stats{samples{...}} */
	}
	z->resp = fld(7) + fld(z->data); /* Status "success", Data */
	for (size_t j = 0; j < r->nwarnings; j++)
		z->resp += fld(r->warnings[j].n);
}

typedef struct pbw {
	uint8_t *p;
} pbw_t;

static void w_varint(pbw_t *w, uint64_t v)
{
	w->p += uvarint_put(w->p, v);
}

static void w_len(pbw_t *w, uint32_t field, size_t n) /* tag and length of a length-delimited field */
{
	w_varint(w, (uint64_t)field << 3 | 2);
	w_varint(w, n);
}

static void w_bytes(pbw_t *w, uint32_t field, const void *p, size_t n)
{
	w_len(w, field, n);
	memcpy(w->p, p, n);
	w->p += n;
}

static void w_int(pbw_t *w, uint32_t field, int64_t v) /* proto3: 0 left out */
{
	if (!v)
		return;
	w_varint(w, (uint64_t)field << 3);
	w_varint(w, (uint64_t)v);
}

static void mx_write(pbw_t *w, const promresp_t *r, const mx_size_t *z)
{
	w_bytes(w, 1, "success", 7);
	w_len(w, 2, z->data);
	w_bytes(w, 1, "matrix", 6);
	for (size_t i = 0; i < r->nseries; i++) {
		const promresp_series_t *s = &r->series[i];
		w_len(w, 2, z->series[i]);
		for (size_t j = 0; j < s->ls.n; j++) {
			const label_t *l = &s->ls.v[j];
			w_len(w, 1, z->lp[z->labels[i] + j]);
			if (l->name.n)
				w_bytes(w, 1, l->name.p, l->name.n);
			if (l->value.n)
				w_bytes(w, 2, l->value.p, l->value.n);
		}
		for (size_t j = 0; j < s->n; j++) {
			const promresp_point_t *pt = &s->pts[j];
			uint64_t bits;
			memcpy(&bits, &pt->v, 8);
			w_len(w, 2, sample_size(pt));
			if (bits) {
				*w->p++ = 1 << 3 | 1;
				memcpy(w->p, &bits, 8); /* little-endian hosts only (x86-64, arm64) */
				w->p += 8;
			}
			w_int(w, 2, pt->t);
		}
	}
	if (r->stats.present) {
		const promresp_stats_t *st = &r->stats;
		w_len(w, 3, fld(z->stats));
		w_len(w, 1, z->stats);
		w_int(w, 1, st->total_samples);
		for (size_t j = 0; j < st->nsteps; j++) {
			w_len(w, 2, step_size(st->step_t[j], st->step_n[j]));
			w_int(w, 1, st->step_n[j]);
			w_int(w, 2, st->step_t[j]);
		}
		w_int(w, 1000, st->peak_samples);
	}
	for (size_t j = 0; j < r->nwarnings; j++)
		w_bytes(w, 6, r->warnings[j].p, r->warnings[j].n);
}

void extents_encode(buf_t *out, str_t key, const extents_t *ex, bool snappy)
{
	arena_t a;
	arena_init(&a, 64 * 1024);
	/* CachedResponse{key = 1, extents = 2: Extent{start = 1, end = 2, response = 5: Any{type_url = 1,
	 * value = 2}}}: sizes first, then everything written in one pass */
	mx_size_t *mz = ARENA_NEW_ARRAY(&a, mx_size_t, ex->n + 1);
	Thanos__Any *other = ARENA_NEW_ARRAY(&a, Thanos__Any, ex->n + 1);
	size_t *any = ARENA_NEW_ARRAY(&a, size_t, ex->n + 1), *ext = ARENA_NEW_ARRAY(&a, size_t, ex->n + 1);
	size_t len = key.n ? fld(key.n) : 0;
	for (size_t i = 0; i < ex->n; i++) {
		const extent_t *e = &ex->v[i];
		if (e->resp.kind == PROMRESP_MATRIX) {
			mx_measure(&a, &e->resp, &mz[i]);
			any[i] = fld(strlen(URL_RANGE)) + fld(mz[i].resp);
		} else {
			thanos__any__init(&other[i]);
			pack_response(&a, &e->resp, &other[i]);
			any[i] = fld(strlen(other[i].type_url)) + (other[i].value.len ? fld(other[i].value.len) : 0);
		}
		ext[i] = (e->start ? 1 + uvarint_len((uint64_t)e->start) : 0) +
		         (e->end ? 1 + uvarint_len((uint64_t)e->end) : 0) + fld(any[i]);
		len += fld(ext[i]);
	}
	uint8_t *raw = snappy ? arena_alloc(&a, len + 1) : NULL;
	buf_reset(out);
	pbw_t w = {snappy ? raw : (uint8_t *)buf_extend(out, len)};
	const uint8_t *begin = w.p;
	if (key.n)
		w_bytes(&w, 1, key.p, key.n);
	for (size_t i = 0; i < ex->n; i++) {
		const extent_t *e = &ex->v[i];
		w_len(&w, 2, ext[i]);
		w_int(&w, 1, e->start);
		w_int(&w, 2, e->end);
		w_len(&w, 5, any[i]);
		if (e->resp.kind == PROMRESP_MATRIX) {
			w_bytes(&w, 1, URL_RANGE, strlen(URL_RANGE));
			w_len(&w, 2, mz[i].resp);
			mx_write(&w, &e->resp, &mz[i]);
		} else {
			w_bytes(&w, 1, other[i].type_url, strlen(other[i].type_url));
			if (other[i].value.len)
				w_bytes(&w, 2, other[i].value.data, other[i].value.len);
		}
	}
	BUG_ON((size_t)(w.p - begin) != len);
	if (snappy) {
		size_t clen = snappy_max_compressed_length(len);
		char *dst = buf_extend(out, clen);
		if (snappy_compress((const char *)raw, len, dst, &clen) != SNAPPY_OK)
			die("snappy_compress failed");
		buf_truncate(out, clen);
	}
	arena_release(&a);
}

/* ------------------------------------------------------------------ planning */

static int64_t mod(int64_t x, int64_t m)
{
	int64_t r = x % m;
	return r < 0 ? r + m : r;
}

static bool on_grid(const extent_t *e, int64_t start, int64_t step)
{
	return mod(e->start - start, step) == 0 && mod(e->end - start, step) == 0;
}

void extents_partition(arena_t *a, const extents_t *ex, int64_t start, int64_t end, int64_t step,
                       bool need_stats, extents_plan_t *plan)
{
	memset(plan, 0, sizeof *plan);
	plan->fetch = ARENA_NEW_ARRAY(a, split_piece_t, ex->n + 2);
	plan->cached = ARENA_NEW_ARRAY(a, promresp_t, ex->n + 1);
	bool labels = ex->n && ex->v[0].resp.kind != PROMRESP_MATRIX;
	int64_t from = start; /* first point not answered yet */
	for (size_t i = 0; i < ex->n && from <= end; i++) {
		const extent_t *e = &ex->v[i];
		if (e->end < from || e->start > end || !on_grid(e, start, step))
			continue;
		if (start != end && end - start > EXTENTS_MIN_MS && e->end - e->start < EXTENTS_MIN_MS)
			continue;
		if (need_stats && !e->resp.stats.per_step)
			continue;
		/* labels and series cannot be cut: only an extent inside what is still missing answers */
		if (labels && (e->start < from || e->end > end))
			continue;
		if (from < e->start)
			plan->fetch[plan->nfetch++] = (split_piece_t){from, e->start - step};
		promresp_extract(a, &e->resp, from, end, &plan->cached[plan->ncached++]);
		from = e->end + step;
	}
	if (from <= end)
		plan->fetch[plan->nfetch++] = (split_piece_t){from, end};
}

static int extent_cmp(const void *x, const void *y)
{
	const extent_t *a = x, *b = y;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	return a->end > b->end ? -1 : a->end < b->end; /* the longer first: fewer merges */
}

void extents_merge(arena_t *a, const extents_t *ex, const extent_t *added, size_t nadded, int64_t grid_start,
                   int64_t step, extents_t *out)
{
	size_t n = 0, cap = ex->n + nadded;
	extent_t *all = ARENA_NEW_ARRAY(a, extent_t, cap + 1);
	for (size_t i = 0; i < ex->n; i++)
		if (on_grid(&ex->v[i], grid_start, step))
			all[n++] = ex->v[i];
	for (size_t i = 0; i < nadded; i++)
		all[n++] = added[i];
	qsort(all, n, sizeof *all, extent_cmp);
	out->v = ARENA_NEW_ARRAY(a, extent_t, n + 1);
	out->n = 0;
	for (size_t i = 0; i < n; i++) {
		extent_t *acc = out->n ? &out->v[out->n - 1] : NULL;
		if (!acc || acc->end + step < all[i].start) {
			out->v[out->n++] = all[i];
			continue;
		}
		if (acc->end >= all[i].end)
			continue;
		const promresp_t *two[2] = {&acc->resp, &all[i].resp};
		promresp_t merged;
		promresp_merge(a, two, 2, &merged);
		acc->resp = merged;
		acc->end = all[i].end;
	}
}

void extents_trim(arena_t *a, extents_t *ex, int64_t max_time, int64_t step)
{
	size_t k = 0;
	for (size_t i = 0; i < ex->n; i++) {
		extent_t e = ex->v[i];
		if (e.end > max_time) {
			if (e.resp.kind != PROMRESP_MATRIX || max_time < e.start)
				continue;
			int64_t cut = e.start + (max_time - e.start) / step * step;
			promresp_t part;
			promresp_extract(a, &e.resp, e.start, cut, &part);
			e.resp = part;
			e.end = cut;
		}
		ex->v[k++] = e;
	}
	ex->n = k;
}

/* ------------------------------------------------------------------ ready answers */

static void put_u32(buf_t *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	buf_append(b, x, 4);
}

static void put_u64(buf_t *b, uint64_t v)
{
	put_u32(b, (uint32_t)v);
	put_u32(b, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void extents_json_encode(buf_t *out, str_t jkey, const extents_fp_t *fp, size_t n, const void *body,
                         size_t blen)
{
	buf_reset(out);
	extents_json_head(out, jkey, fp, n);
	buf_append(out, body, blen);
}

void extents_json_head(buf_t *out, str_t jkey, const extents_fp_t *fp, size_t n)
{
	buf_append(out, "SFJ1", 4);
	put_u32(out, (uint32_t)jkey.n);
	buf_append(out, jkey.p, jkey.n);
	put_u32(out, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		put_u64(out, fp[i].len);
		put_u64(out, fp[i].hash);
	}
}

bool extents_json_decode(str_t value, str_t jkey, const extents_fp_t *fp, size_t n, str_t *body)
{
	const uint8_t *p = (const uint8_t *)value.p, *end = p + value.n;
	if (value.n < 8 || memcmp(p, "SFJ1", 4) != 0)
		return false;
	uint32_t klen = get_u32(p + 4);
	p += 8;
	if ((size_t)(end - p) < (size_t)klen + 4 || klen != jkey.n || memcmp(p, jkey.p, klen) != 0)
		return false;
	p += klen;
	if (get_u32(p) != n)
		return false;
	p += 4;
	if ((size_t)(end - p) < n * 16)
		return false;
	for (size_t i = 0; i < n; i++, p += 16)
		if (get_u64(p) != fp[i].len || get_u64(p + 8) != fp[i].hash)
			return false;
	*body = (str_t){(const char *)p, (size_t)(end - p)};
	return true;
}

void extents_frag_encode(buf_t *out, const promresp_frag_t *f, int64_t start, int64_t end)
{
	extents_frag_encode_join(out, &f, 1, start, end);
}

void extents_frag_encode_join(buf_t *out, const promresp_frag_t *const *f, size_t n, int64_t start,
                              int64_t end)
{
	size_t bytes = 32, total;
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < f[k]->n; i++) {
			bytes += f[k]->s[i].pts.n + 9;
			for (size_t j = 0; j < f[k]->s[i].ls.n; j++)
				bytes += f[k]->s[i].ls.v[j].name.n + f[k]->s[i].ls.v[j].value.n + 8;
		}
	promresp_frag_ref_t *t = promresp_frag_refs(f, n, &total);
	buf_reserve(out, out->n + bytes);
	put_u64(out, (uint64_t)start);
	put_u64(out, (uint64_t)end);
	size_t count_at = out->n, count = 0;
	put_u32(out, 0);
	for (size_t i = 0; i < total;) {
		size_t j = i + 1, npts = 0;
		while (n > 1 && j < total && labels_eq(&t[j].s->ls, &t[i].s->ls))
			j++;
		for (size_t k = i; k < j; k++)
			npts += t[k].s->pts.n;
		if (!npts) { /* no point in any fragment: not in the answer */
			i = j;
			continue;
		}
		const labels_t *ls = &t[i].s->ls;
		count++;
		put_u32(out, (uint32_t)ls->n);
		for (size_t l = 0; l < ls->n; l++) {
			put_u32(out, (uint32_t)ls->v[l].name.n);
			buf_append_str(out, ls->v[l].name);
			put_u32(out, (uint32_t)ls->v[l].value.n);
			buf_append_str(out, ls->v[l].value);
		}
		size_t len_at = out->n, len = 0;
		put_u32(out, 0);
		for (size_t k = i; k < j; k++) {
			if (!t[k].s->pts.n)
				continue;
			if (len) {
				buf_putc(out, ',');
				len++;
			}
			buf_append_str(out, t[k].s->pts);
			len += t[k].s->pts.n;
		}
		uint8_t *lp = (uint8_t *)out->p + len_at;
		lp[0] = (uint8_t)len, lp[1] = (uint8_t)(len >> 8), lp[2] = (uint8_t)(len >> 16),
		lp[3] = (uint8_t)(len >> 24);
		i = j;
	}
	uint8_t *cp = (uint8_t *)out->p + count_at;
	cp[0] = (uint8_t)count, cp[1] = (uint8_t)(count >> 8), cp[2] = (uint8_t)(count >> 16),
	cp[3] = (uint8_t)(count >> 24);
	free(t);
}

static bool frag_str(const uint8_t **p, const uint8_t *end, str_t *out)
{
	if (end - *p < 4)
		return false;
	uint32_t n = get_u32(*p);
	*p += 4;
	if ((size_t)(end - *p) < n)
		return false;
	*out = (str_t){(const char *)*p, n};
	*p += n;
	return true;
}

bool extents_frag_decode(arena_t *a, str_t bytes, promresp_frag_t *out, int64_t *start, int64_t *end_ms)
{
	const uint8_t *p = (const uint8_t *)bytes.p, *end = p + bytes.n;
	if (bytes.n < 20)
		return false;
	*start = (int64_t)get_u64(p);
	*end_ms = (int64_t)get_u64(p + 8);
	uint32_t n = get_u32(p + 16);
	p += 20;
	if (n > bytes.n / 8) /* every series takes at least 8 bytes */
		return false;
	out->s = ARENA_NEW_ARRAY(a, promresp_frag_series_t, n + 1);
	out->n = n;
	for (uint32_t i = 0; i < n; i++) {
		promresp_frag_series_t *s = &out->s[i];
		if (end - p < 4)
			return false;
		uint32_t nl = get_u32(p);
		p += 4;
		if (nl > (size_t)(end - p) / 8)
			return false;
		s->ls.n = nl;
		s->ls.v = ARENA_NEW_ARRAY(a, label_t, nl + 1);
		for (uint32_t j = 0; j < nl; j++)
			if (!frag_str(&p, end, &s->ls.v[j].name) || !frag_str(&p, end, &s->ls.v[j].value))
				return false;
		if (!frag_str(&p, end, &s->pts))
			return false;
	}
	return p == end;
}
