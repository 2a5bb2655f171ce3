/*
 * promresp.c — Prometheus API responses for the query frontend: decode (jansson), merge, cut, encode.
 */
#include "frontend/promresp.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fmt.h"

static const char *const timing_names[PROMRESP_TIMINGS] = {"evalTotalTime",        "resultSortTime",
                                                           "queryPreparationTime", "innerEvalTime",
                                                           "execQueueTime",        "execTotalTime"};

/* ------------------------------------------------------------------ decode */

/* jansson's tree of a downstream answer lives only inside promresp_decode: there its nodes come from an
 * arena of their own, dropped whole afterwards (a cold dashboard's answers are millions of nodes: malloc,
 * free and the tree walk to free them took a third of the frontend's CPU). Elsewhere, and on other
 * threads, jansson allocates with malloc as before. */
static _Thread_local arena_t *json_arena;

static void *json_arena_alloc(size_t n)
{
	return json_arena ? arena_alloc(json_arena, n) : xmalloc(n);
}

static void json_arena_free(void *p)
{
	if (!json_arena)
		free(p);
}

static void json_arena_setup(void)
{
	json_set_alloc_funcs(json_arena_alloc, json_arena_free);
}

static str_t jstr(arena_t *a, json_t *j)
{
	return (str_t){arena_memdup(a, json_string_value(j), json_string_length(j) + 1),
	               json_string_length(j)};
}

/* A JSON number of seconds (integer or float) as ms. */
static bool jtime(json_t *j, int64_t *ms)
{
	if (json_is_integer(j)) {
		json_int_t v = json_integer_value(j);
		if (v > 9200000000000000LL || v < -9200000000000000LL)
			return false;
		*ms = (int64_t)v * 1000;
		return true;
	}
	if (!json_is_real(j))
		return false;
	double s = json_real_value(j);
	if (!isfinite(s) || fabs(s) > 9.2e15)
		return false;
	*ms = llround(s * 1000.0);
	return true;
}

static int decode_labels(arena_t *a, json_t *obj, labels_t *out, err_t *err)
{
	if (!json_is_object(obj))
		return err_set(err, ERR_CORRUPT, "label set is not an object");
	size_t n = json_object_size(obj), i = 0;
	label_t *v = ARENA_NEW_ARRAY(a, label_t, n ? n : 1);
	const char *k;
	json_t *val;
	json_object_foreach(obj, k, val)
	{
		if (!json_is_string(val))
			return err_set(err, ERR_CORRUPT, "label %s: value is not a string", k);
		v[i].name = (str_t){arena_strdup(a, k), strlen(k)};
		v[i].value = jstr(a, val);
		i++;
	}
	*out = (labels_t){v, i};
	if (labels_normalize(out))
		return err_set(err, ERR_CORRUPT, "invalid label set");
	return 0;
}

static int decode_stats(arena_t *a, json_t *st, promresp_stats_t *s, err_t *err)
{
	memset(s, 0, sizeof *s);
	if (!json_is_object(st))
		return err_set(err, ERR_CORRUPT, "data.stats is not an object");
	s->present = true;
	json_t *tm = json_object_get(st, "timings"), *sm = json_object_get(st, "samples");
	for (int i = 0; i < PROMRESP_TIMINGS && json_is_object(tm); i++)
		s->timings[i] = json_number_value(json_object_get(tm, timing_names[i]));
	if (!json_is_object(sm))
		return 0;
	s->total_samples = json_integer_value(json_object_get(sm, "totalQueryableSamples"));
	s->peak_samples = json_integer_value(json_object_get(sm, "peakSamples"));
	json_t *ps = json_object_get(sm, "totalQueryableSamplesPerStep");
	if (!json_is_array(ps))
		return 0;
	s->per_step = true;
	s->nsteps = json_array_size(ps);
	s->step_t = ARENA_NEW_ARRAY(a, int64_t, s->nsteps + 1);
	s->step_n = ARENA_NEW_ARRAY(a, int64_t, s->nsteps + 1);
	for (size_t i = 0; i < s->nsteps; i++) {
		json_t *e = json_array_get(ps, i);
		if (!json_is_array(e) || json_array_size(e) != 2 ||
		    !jtime(json_array_get(e, 0), &s->step_t[i]) || !json_is_integer(json_array_get(e, 1)))
			return err_set(err, ERR_CORRUPT,
			               "data.stats: bad totalQueryableSamplesPerStep entry %zu", i);
		s->step_n[i] = json_integer_value(json_array_get(e, 1));
	}
	return 0;
}

static int decode_matrix(arena_t *a, json_t *data, promresp_t *out, err_t *err)
{
	json_t *rt = json_object_get(data, "resultType"), *res = json_object_get(data, "result");
	if (!json_is_string(rt) || strcmp(json_string_value(rt), "matrix") != 0)
		return err_set(err, ERR_CORRUPT, "resultType is %s, not matrix",
		               json_is_string(rt) ? json_string_value(rt) : "missing");
	if (!json_is_array(res))
		return err_set(err, ERR_CORRUPT, "data.result is not an array");
	out->nseries = json_array_size(res);
	out->series = ARENA_NEW_ARRAY(a, promresp_series_t, out->nseries + 1);
	for (size_t i = 0; i < out->nseries; i++) {
		json_t *s = json_array_get(res, i), *vals = json_object_get(s, "values");
		promresp_series_t *ps = &out->series[i];
		int rc = decode_labels(a, json_object_get(s, "metric"), &ps->ls, err);
		if (rc)
			return rc;
		if (json_object_get(s, "histograms"))
			return err_set(err, ERR_CORRUPT,
			               "native histograms are not supported by the query frontend");
		if (!json_is_array(vals))
			return err_set(err, ERR_CORRUPT, "series %zu: values is not an array", i);
		ps->n = json_array_size(vals);
		ps->pts = ARENA_NEW_ARRAY(a, promresp_point_t, ps->n + 1);
		for (size_t j = 0; j < ps->n; j++) {
			json_t *p = json_array_get(vals, j), *v = json_array_get(p, 1);
			if (!json_is_array(p) || json_array_size(p) != 2 ||
			    !jtime(json_array_get(p, 0), &ps->pts[j].t) || !json_is_string(v) ||
			    !str_to_double((str_t){json_string_value(v), json_string_length(v)},
			                   &ps->pts[j].v))
				return err_set(err, ERR_CORRUPT, "series %zu: bad sample %zu", i, j);
			if (j && ps->pts[j].t <= ps->pts[j - 1].t)
				return err_set(err, ERR_CORRUPT, "series %zu: samples out of order", i);
		}
	}
	json_t *st = json_object_get(data, "stats");
	if (st)
		return decode_stats(a, st, &out->stats, err);
	return 0;
}

/* ---- the matrix answer as the querier prints it, read straight off the bytes: a cold dashboard's
 * answers are a hundred thousand points each, and jansson's tree of them took half the frontend's CPU.
 * Anything this reader does not expect (escapes or non-ASCII in a string, stats, histograms, infos,
 * other keys, a duplicate key, numbers outside JSON's grammar, samples out of order) makes it give up,
 * and jansson decodes the answer (and words its errors) as before: both read the same bytes into the
 * same promresp_t. */
typedef struct jr {
	const char *p, *end;
} jr_t;

static void jr_ws(jr_t *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

static bool jr_lit(jr_t *r, char c)
{
	jr_ws(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return true;
	}
	return false;
}

/* A string of printable ASCII without escapes. */
static bool jr_str(jr_t *r, str_t *out)
{
	if (!jr_lit(r, '"'))
		return false;
	const char *s = r->p;
	for (; r->p < r->end; r->p++) {
		unsigned char c = (unsigned char)*r->p;
		if (c == '"') {
			*out = (str_t){s, (size_t)(r->p - s)};
			r->p++;
			return true;
		}
		if (c == '\\' || c < 0x20 || c >= 0x80)
			return false;
	}
	return false;
}

static bool jr_digits(jr_t *r)
{
	const char *s = r->p;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
		r->p++;
	return r->p > s;
}

/* A JSON number of seconds as jtime reads it. */
static bool jr_time(jr_t *r, int64_t *ms)
{
	jr_ws(r);
	const char *s = r->p;
	bool neg = r->p < r->end && *r->p == '-';
	r->p += neg;
	const char *d = r->p;
	if (!jr_digits(r) || (*d == '0' && r->p - d > 1))
		return false;
	bool integer = true;
	if (r->p < r->end && *r->p == '.') {
		r->p++;
		if (!jr_digits(r))
			return false;
		integer = false;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (!jr_digits(r))
			return false;
		integer = false;
	}
	if (integer) {
		if (r->p - d > 16)
			return false;
		int64_t v = 0;
		for (const char *q = d; q < r->p; q++)
			v = v * 10 + (*q - '0');
		if (v > 9200000000000000LL)
			return false;
		*ms = (neg ? -v : v) * 1000;
		return true;
	}
	char tmp[64];
	if (r->p - s >= (ptrdiff_t)sizeof tmp)
		return false;
	memcpy(tmp, s, (size_t)(r->p - s));
	tmp[r->p - s] = 0;
	double v = strtod(tmp, NULL);
	if (!isfinite(v) || fabs(v) > 9.2e15)
		return false;
	*ms = llround(v * 1000.0);
	return true;
}

/* Grow a scratch array (heap) to hold n + 1 items. */
static void *jr_grow(void *v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return v;
	*cap = alloc_grow_cap(*cap, n + 1);
	return xrealloc(v, st_mult(*cap, size));
}

typedef struct jr_scratch {
	promresp_series_t *series;
	size_t nseries, cap_series;
	promresp_point_t *pts;
	size_t cap_pts;
	label_t *ls;
	size_t cap_ls;
	str_t *warn;
	size_t nwarn, cap_warn;
} jr_scratch_t;

static bool jr_series(arena_t *a, jr_t *r, jr_scratch_t *x, promresp_series_t *out)
{
	bool have_metric = false, have_values = false;
	if (!jr_lit(r, '{'))
		return false;
	do {
		str_t k;
		if (!jr_str(r, &k) || !jr_lit(r, ':'))
			return false;
		if (str_eq_c(k, "metric") && !have_metric) {
			have_metric = true;
			size_t n = 0;
			if (!jr_lit(r, '{'))
				return false;
			if (!jr_lit(r, '}')) {
				do {
					str_t name, value;
					if (!jr_str(r, &name) || !jr_lit(r, ':') || !jr_str(r, &value))
						return false;
					for (size_t i = 0; i < n; i++)
						if (str_eq(x->ls[i].name, name))
							return false; /* a duplicate key */
					x->ls = jr_grow(x->ls, &x->cap_ls, n, sizeof *x->ls);
					x->ls[n++] = (label_t){name, value};
				} while (jr_lit(r, ','));
				if (!jr_lit(r, '}'))
					return false;
			}
			out->ls.n = n;
			out->ls.v = ARENA_NEW_ARRAY(a, label_t, n ? n : 1);
			for (size_t i = 0; i < n; i++)
				out->ls.v[i] = (label_t){
				    {arena_strndup(a, x->ls[i].name.p, x->ls[i].name.n), x->ls[i].name.n},
				    {arena_strndup(a, x->ls[i].value.p, x->ls[i].value.n), x->ls[i].value.n}};
			if (labels_normalize(&out->ls)) /* sorted, empty values dropped, as decode_labels */
				return false;
		} else if (str_eq_c(k, "values") && !have_values) {
			have_values = true;
			size_t n = 0;
			if (!jr_lit(r, '['))
				return false;
			if (!jr_lit(r, ']')) {
				do {
					str_t v;
					x->pts = jr_grow(x->pts, &x->cap_pts, n, sizeof *x->pts);
					promresp_point_t *pt = &x->pts[n];
					if (!jr_lit(r, '[') || !jr_time(r, &pt->t) || !jr_lit(r, ',') ||
					    !jr_str(r, &v) || !jr_lit(r, ']') || !str_to_double(v, &pt->v) ||
					    (n && pt->t <= pt[-1].t))
						return false;
					n++;
				} while (jr_lit(r, ','));
				if (!jr_lit(r, ']'))
					return false;
			}
			out->n = n;
			out->pts = ARENA_NEW_ARRAY(a, promresp_point_t, n + 1);
			if (n)
				memcpy(out->pts, x->pts, n * sizeof *out->pts);
		} else {
			return false;
		}
	} while (jr_lit(r, ','));
	return jr_lit(r, '}') && have_metric && have_values;
}

static bool jr_matrix(arena_t *a, jr_t *r, jr_scratch_t *x, promresp_t *out)
{
	bool have_type = false, have_result = false;
	if (!jr_lit(r, '{'))
		return false;
	do {
		str_t k;
		if (!jr_str(r, &k) || !jr_lit(r, ':'))
			return false;
		if (str_eq_c(k, "resultType") && !have_type) {
			str_t v;
			if (!jr_str(r, &v) || !str_eq_c(v, "matrix"))
				return false;
			have_type = true;
		} else if (str_eq_c(k, "result") && !have_result) {
			have_result = true;
			if (!jr_lit(r, '['))
				return false;
			if (!jr_lit(r, ']')) {
				do {
					x->series =
					    jr_grow(x->series, &x->cap_series, x->nseries, sizeof *x->series);
					promresp_series_t *ps = &x->series[x->nseries];
					memset(ps, 0, sizeof *ps);
					if (!jr_series(a, r, x, ps))
						return false;
					x->nseries++;
				} while (jr_lit(r, ','));
				if (!jr_lit(r, ']'))
					return false;
			}
		} else {
			return false;
		}
	} while (jr_lit(r, ','));
	if (!jr_lit(r, '}') || !have_type || !have_result)
		return false;
	out->nseries = x->nseries;
	out->series = ARENA_NEW_ARRAY(a, promresp_series_t, x->nseries + 1);
	if (x->nseries)
		memcpy(out->series, x->series, x->nseries * sizeof *out->series);
	return true;
}

static bool decode_matrix_fast(arena_t *a, const char *body, size_t n, promresp_t *out)
{
	jr_t r = {body, body + n};
	jr_scratch_t x = {0};
	bool have_status = false, have_data = false, have_warn = false, ok = jr_lit(&r, '{');
	while (ok) {
		str_t k;
		if (!jr_str(&r, &k) || !jr_lit(&r, ':')) {
			ok = false;
		} else if (str_eq_c(k, "status") && !have_status) {
			str_t v;
			ok = jr_str(&r, &v) && str_eq_c(v, "success");
			have_status = true;
		} else if (str_eq_c(k, "data") && !have_data) {
			ok = jr_matrix(a, &r, &x, out);
			have_data = true;
		} else if (str_eq_c(k, "warnings") && !have_warn) {
			have_warn = true;
			ok = jr_lit(&r, '[');
			if (ok && !jr_lit(&r, ']')) {
				do {
					x.warn = jr_grow(x.warn, &x.cap_warn, x.nwarn, sizeof *x.warn);
					ok = jr_str(&r, &x.warn[x.nwarn++]);
				} while (ok && jr_lit(&r, ','));
				ok = ok && jr_lit(&r, ']');
			}
		} else {
			ok = false;
		}
		if (ok && !jr_lit(&r, ','))
			break;
	}
	ok = ok && jr_lit(&r, '}') && have_status && have_data;
	jr_ws(&r);
	ok = ok && r.p == r.end;
	if (ok && x.nwarn) {
		out->nwarnings = x.nwarn;
		out->warnings = ARENA_NEW_ARRAY(a, str_t, x.nwarn + 1);
		for (size_t i = 0; i < x.nwarn; i++)
			out->warnings[i] = (str_t){arena_strndup(a, x.warn[i].p, x.warn[i].n), x.warn[i].n};
	}
	free(x.series);
	free(x.pts);
	free(x.ls);
	free(x.warn);
	return ok;
}

static int str_t_cmp(const void *x, const void *y)
{
	return str_cmp(*(const str_t *)x, *(const str_t *)y);
}

int promresp_decode(arena_t *a, promresp_kind_t kind, const char *body, size_t n, promresp_t *out, err_t *err)
{
	memset(out, 0, sizeof *out);
	out->kind = kind;
	if (kind == PROMRESP_MATRIX && decode_matrix_fast(a, body, n, out))
		return 0;
	memset(out, 0, sizeof *out); /* what the fast reader got before giving up is dropped */
	out->kind = kind;
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, json_arena_setup);
	arena_t ja;
	arena_init(&ja, 16 * 1024);
	json_arena = &ja;
	json_error_t je;
	json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
	int rc = 0;
	if (!root) {
		rc = err_set(err, ERR_CORRUPT, "bad JSON at line %d column %d: %s", je.line, je.column,
		             je.text);
		goto done;
	}
	json_t *status = json_object_get(root, "status"), *data = json_object_get(root, "data");
	if (!json_is_string(status) || strcmp(json_string_value(status), "success") != 0) {
		rc = err_set(err, ERR_CORRUPT, "status is not success");
		goto out;
	}
	json_t *w = json_object_get(root, "warnings");
	if (json_is_array(w)) {
		out->nwarnings = json_array_size(w);
		out->warnings = ARENA_NEW_ARRAY(a, str_t, out->nwarnings + 1);
		for (size_t i = 0; i < out->nwarnings; i++)
			out->warnings[i] =
			    json_is_string(json_array_get(w, i)) ? jstr(a, json_array_get(w, i)) : STR("");
	}
	switch (kind) {
	case PROMRESP_MATRIX:
		if (!json_is_object(data))
			rc = err_set(err, ERR_CORRUPT, "data is not an object");
		else
			rc = decode_matrix(a, data, out, err);
		break;
	case PROMRESP_LABELS:
		if (!json_is_array(data) && !json_is_null(data)) {
			rc = err_set(err, ERR_CORRUPT, "data is not a list");
			break;
		}
		out->nstrings = json_array_size(data);
		out->strings = ARENA_NEW_ARRAY(a, str_t, out->nstrings + 1);
		for (size_t i = 0; i < out->nstrings && !rc; i++) {
			if (!json_is_string(json_array_get(data, i)))
				rc = err_set(err, ERR_CORRUPT, "data[%zu] is not a string", i);
			else
				out->strings[i] = jstr(a, json_array_get(data, i));
		}
		break;
	case PROMRESP_SERIES:
		if (!json_is_array(data) && !json_is_null(data)) {
			rc = err_set(err, ERR_CORRUPT, "data is not a list");
			break;
		}
		out->nseries = json_array_size(data);
		out->series = ARENA_NEW_ARRAY(a, promresp_series_t, out->nseries + 1);
		for (size_t i = 0; i < out->nseries && !rc; i++)
			rc = decode_labels(a, json_array_get(data, i), &out->series[i].ls, err);
		break;
	}
out:
	/* no json_decref: the whole tree goes with its arena */
done:
	json_arena = NULL;
	arena_release(&ja);
	return rc;
}

/* ------------------------------------------------------------------ encode */

static void put_labels(buf_t *b, const labels_t *ls)
{
	buf_putc(b, '{');
	for (size_t i = 0; i < ls->n; i++) {
		if (i)
			buf_putc(b, ',');
		buf_json_str(b, ls->v[i].name);
		buf_putc(b, ':');
		buf_json_str(b, ls->v[i].value);
	}
	buf_putc(b, '}');
}

static void put_stats(buf_t *b, const promresp_stats_t *s, bool per_step)
{
	buf_puts(b, ",\"stats\":{\"timings\":{");
	for (int i = 0; i < PROMRESP_TIMINGS; i++) {
		buf_printf(b, "%s\"%s\":", i ? "," : "", timing_names[i]);
		buf_put_prom_value(b, s->timings[i]);
	}
	buf_puts(b, "},\"samples\":{");
	if (per_step && s->per_step && s->nsteps) {
		buf_puts(b, "\"totalQueryableSamplesPerStep\":[");
		for (size_t i = 0; i < s->nsteps; i++) {
			buf_puts(b, i ? ",[" : "[");
			buf_put_json_seconds(b, s->step_t[i]);
			buf_putc(b, ',');
			buf_put_i64(b, s->step_n[i]);
			buf_putc(b, ']');
		}
		buf_puts(b, "],");
	}
	buf_puts(b, "\"totalQueryableSamples\":");
	buf_put_i64(b, s->total_samples);
	buf_puts(b, ",\"peakSamples\":");
	buf_put_i64(b, s->peak_samples);
	buf_puts(b, "}}");
}

static void put_points(buf_t *b, const promresp_series_t *s)
{
	for (size_t j = 0; j < s->n; j++) {
		buf_puts(b, j ? ",[" : "[");
		buf_put_prom_ts(b, s->pts[j].t);
		buf_puts(b, ",\"");
		buf_put_prom_value(b, s->pts[j].v);
		buf_puts(b, "\"]");
	}
}

void promresp_encode(buf_t *b, const promresp_t *r, bool with_stats, bool per_step)
{
	buf_puts(b, "{\"status\":\"success\",\"data\":");
	switch (r->kind) {
	case PROMRESP_MATRIX:
		buf_puts(b, "{\"resultType\":\"matrix\",\"result\":[");
		for (size_t i = 0; i < r->nseries; i++) {
			const promresp_series_t *s = &r->series[i];
			buf_puts(b, i ? ",{\"metric\":" : "{\"metric\":");
			put_labels(b, &s->ls);
			buf_puts(b, ",\"values\":[");
			put_points(b, s);
			buf_puts(b, "]}");
		}
		buf_putc(b, ']');
		if (with_stats && r->stats.present)
			put_stats(b, &r->stats, per_step);
		buf_putc(b, '}');
		break;
	case PROMRESP_LABELS:
		buf_putc(b, '[');
		for (size_t i = 0; i < r->nstrings; i++) {
			if (i)
				buf_putc(b, ',');
			buf_json_str(b, r->strings[i]);
		}
		buf_putc(b, ']');
		break;
	case PROMRESP_SERIES:
		buf_putc(b, '[');
		for (size_t i = 0; i < r->nseries; i++) {
			if (i)
				buf_putc(b, ',');
			put_labels(b, &r->series[i].ls);
		}
		buf_putc(b, ']');
		break;
	}
	if (r->nwarnings) {
		buf_puts(b, ",\"warnings\":[");
		for (size_t i = 0; i < r->nwarnings; i++) {
			if (i)
				buf_putc(b, ',');
			buf_json_str(b, r->warnings[i]);
		}
		buf_putc(b, ']');
	}
	buf_putc(b, '}');
}

void promresp_frag_make(arena_t *a, const promresp_t *r, promresp_frag_t *out)
{
	buf_t b = BUF_INIT;
	size_t *off = ARENA_NEW_ARRAY(a, size_t, r->nseries + 1);
	for (size_t i = 0; i < r->nseries; i++) {
		off[i] = b.n;
		put_points(&b, &r->series[i]);
	}
	off[r->nseries] = b.n;
	char *text = arena_memdup(a, b.p ? b.p : "", b.n + 1);
	buf_release(&b);
	out->n = r->nseries;
	out->s = ARENA_NEW_ARRAY(a, promresp_frag_series_t, r->nseries + 1);
	for (size_t i = 0; i < r->nseries; i++)
		out->s[i] = (promresp_frag_series_t){r->series[i].ls, {text + off[i], off[i + 1] - off[i]}};
}

/* The timestamp of the point text at p ("[<seconds>[.mmm],..."), in ms; NULL if malformed. */
static const char *point_ts(const char *p, const char *end, int64_t *ms)
{
	if (p >= end || *p++ != '[')
		return NULL;
	bool neg = p < end && *p == '-';
	p += neg;
	uint64_t v = 0;
	int nd = 0;
	for (; p < end && *p >= '0' && *p <= '9' && nd < 16; p++, nd++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (!nd)
		return NULL;
	v *= 1000;
	if (p < end && *p == '.') {
		if (end - p < 4 || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' || p[3] < '0' ||
		    p[3] > '9')
			return NULL;
		v += (uint64_t)(p[1] - '0') * 100 + (uint64_t)(p[2] - '0') * 10 + (uint64_t)(p[3] - '0');
		p += 4;
	}
	if (p >= end || *p != ',')
		return NULL;
	*ms = neg ? -(int64_t)v : (int64_t)v;
	return p;
}

bool promresp_frag_cut(promresp_frag_t *f, int64_t start, int64_t end)
{
	for (size_t i = 0; i < f->n; i++) {
		const char *p = f->s[i].pts.p, *e = p + f->s[i].pts.n;
		int64_t t;
		/* from the front: whole points "[t,\"v\"]" and the comma after each (values hold no ']') */
		while (p < e) {
			if (!point_ts(p, e, &t))
				return false;
			if (t >= start)
				break;
			const char *q = memchr(p, ']', (size_t)(e - p));
			if (!q)
				return false;
			p = q + 1;
			if (p < e && *p++ != ',')
				return false;
		}
		/* from the back: the last point starts at the last '[' */
		while (p < e) {
			const char *q = memrchr(p, '[', (size_t)(e - p));
			if (!q || !point_ts(q, e, &t))
				return false;
			if (t <= end)
				break;
			e = q > p ? q - 1 : q; /* and the comma before it */
			if (q > p && *e != ',')
				return false;
		}
		f->s[i].pts = (str_t){p, (size_t)(e - p)};
	}
	return true;
}

static int frag_ref_cmp(const void *x, const void *y)
{
	const promresp_frag_ref_t *a = x, *b = y;
	int c = labels_cmp(&a->s->ls, &b->s->ls);
	if (c)
		return c;
	return a->frag < b->frag ? -1 : a->frag > b->frag;
}

promresp_frag_ref_t *promresp_frag_refs(const promresp_frag_t *const *f, size_t n, size_t *total)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		m += f[i]->n;
	promresp_frag_ref_t *t = xcalloc(m ? m : 1, sizeof *t);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < f[i]->n; j++)
			t[k++] = (promresp_frag_ref_t){&f[i]->s[j], i};
	if (n > 1) /* one fragment is sorted already */
		qsort(t, m, sizeof *t, frag_ref_cmp);
	*total = m;
	return t;
}

/* Where promresp_frag_encode's text goes: all of it into b (o NULL), or (promresp_frag_encode_iov) the
 * points texts referenced in place and the text between them in b, written out as iovecs. */
typedef struct fenc_seg {
	const char *p; /* NULL: off is an offset into b */
	size_t off, n;
} fenc_seg_t;

typedef struct fenc {
	buf_t *b;
	void (*flush)(void *arg);
	void *arg;
	const promresp_iov_sink_t *o;
	fenc_seg_t *seg;
	size_t nseg, cap, mark, refbytes;
	struct iovec *iov;
} fenc_t;

static void fenc_push(fenc_t *e, const char *p, size_t off, size_t n)
{
	if (e->nseg == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 64;
		e->seg = xrealloc(e->seg, st_mult(e->cap, sizeof *e->seg));
	}
	e->seg[e->nseg++] = (fenc_seg_t){p, off, n};
}

static void fenc_close_text(fenc_t *e)
{
	if (e->b->n > e->mark)
		fenc_push(e, NULL, e->mark, e->b->n - e->mark);
	e->mark = e->b->n;
}

/* iov mode: what is gathered goes out (the text copied into the arena first, b emptied). */
static void fenc_write(fenc_t *e)
{
	fenc_close_text(e);
	if (!e->nseg)
		return;
	char *text = NULL;
	if (e->b->n) {
		text = arena_alloc(e->o->a, e->b->n);
		memcpy(text, e->b->p, e->b->n);
	}
	for (size_t i = 0; i < e->nseg; i++)
		e->iov[i] =
		    (struct iovec){(void *)(e->seg[i].p ? e->seg[i].p : text + e->seg[i].off), e->seg[i].n};
	e->o->write(e->o->arg, e->iov, (int)e->nseg);
	buf_reset(e->b);
	e->nseg = e->mark = e->refbytes = 0;
}

static void fenc_ref(fenc_t *e, str_t s)
{
	if (!e->o) {
		buf_append_str(e->b, s);
		return;
	}
	if (e->nseg + 3 > (size_t)e->o->max_iov) /* the text before, s, and the text after (at a write) */
		fenc_write(e);
	fenc_close_text(e);
	fenc_push(e, s.p, 0, s.n);
	e->refbytes += s.n;
}

/* After a series: send what has gathered once it is a part's worth. */
static void fenc_series_end(fenc_t *e)
{
	if (e->o) {
		if (e->b->n + e->refbytes >= e->o->part)
			fenc_write(e);
	} else if (e->flush && e->b->n >= PROMRESP_FLUSH_BYTES) {
		e->flush(e->arg);
	}
}

static void frag_encode(fenc_t *e, const promresp_frag_t *const *f, size_t n, const str_t *warnings,
                        size_t nwarnings)
{
	buf_t *b = e->b;
	size_t total, bytes = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < f[i]->n; j++)
			bytes += f[i]->s[j].pts.n + 1;
	promresp_frag_ref_t *t = promresp_frag_refs(f, n, &total);
	if (!e->flush && !e->o)
		buf_reserve(b, bytes + total * 64 + 128);
	buf_puts(b, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[");
	size_t nout = 0;
	for (size_t i = 0; i < total;) {
		size_t j = i, npts = 0;
		for (; j < total && labels_eq(&t[j].s->ls, &t[i].s->ls); j++)
			npts += t[j].s->pts.n;
		if (!npts) { /* cut away in every fragment: not in the answer */
			i = j;
			continue;
		}
		buf_puts(b, nout++ ? ",{\"metric\":" : "{\"metric\":");
		put_labels(b, &t[i].s->ls);
		buf_puts(b, ",\"values\":[");
		bool any = false;
		for (size_t m = i; m < j; m++) {
			if (!t[m].s->pts.n)
				continue;
			if (any)
				buf_putc(b, ',');
			fenc_ref(e, t[m].s->pts);
			any = true;
		}
		buf_puts(b, "]}");
		i = j;
		fenc_series_end(e);
	}
	buf_puts(b, "]}");
	size_t nw = 0;
	for (size_t i = 0; i < nwarnings; i++) {
		bool dup = false;
		for (size_t m = 0; m < i && !dup; m++)
			dup = str_eq(warnings[m], warnings[i]);
		if (dup)
			continue;
		buf_puts(b, nw++ ? "," : ",\"warnings\":[");
		buf_json_str(b, warnings[i]);
	}
	if (nw)
		buf_putc(b, ']');
	buf_putc(b, '}');
	free(t);
}

void promresp_frag_encode(buf_t *b, const promresp_frag_t *const *f, size_t n, const str_t *warnings,
                          size_t nwarnings, void (*flush)(void *arg), void *arg)
{
	fenc_t e = {.b = b, .flush = flush, .arg = arg};
	frag_encode(&e, f, n, warnings, nwarnings);
}

void promresp_frag_encode_iov(const promresp_frag_t *const *f, size_t n, const str_t *warnings,
                              size_t nwarnings, const promresp_iov_sink_t *o)
{
	BUG_ON(o->max_iov < 3);
	buf_t b = BUF_INIT;
	fenc_t e = {.b = &b, .o = o};
	e.iov = xmalloc(st_mult((size_t)o->max_iov, sizeof *e.iov));
	frag_encode(&e, f, n, warnings, nwarnings);
	fenc_write(&e);
	free(e.iov);
	free(e.seg);
	buf_release(&b);
}

/* ------------------------------------------------------------------ merge */

typedef struct tagged {
	const promresp_series_t *s;
	size_t order; /* input's rank by first timestamp */
} tagged_t;

static int tagged_cmp(const void *x, const void *y)
{
	const tagged_t *a = x, *b = y;
	int c = labels_cmp(&a->s->ls, &b->s->ls);
	if (c)
		return c;
	return a->order < b->order ? -1 : a->order > b->order;
}

typedef struct ranked {
	const promresp_t *r;
	int64_t first;
	size_t idx;
} ranked_t;

static int ranked_cmp(const void *x, const void *y)
{
	const ranked_t *a = x, *b = y;
	if (a->first != b->first)
		return a->first < b->first ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void merge_series(arena_t *a, const promresp_t *const *in, size_t n, promresp_t *out)
{
	ranked_t *rk = xcalloc(n ? n : 1, sizeof *rk);
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t m = promresp_min_time(in[i]);
		rk[i] = (ranked_t){in[i], m < 0 ? INT64_MAX : m, i};
		total += in[i]->nseries;
	}
	qsort(rk, n, sizeof *rk, ranked_cmp);
	tagged_t *t = xcalloc(total ? total : 1, sizeof *t);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < rk[i].r->nseries; j++)
			t[k++] = (tagged_t){&rk[i].r->series[j], i};
	qsort(t, total, sizeof *t, tagged_cmp);
	out->series = ARENA_NEW_ARRAY(a, promresp_series_t, total + 1);
	out->nseries = 0;
	for (size_t i = 0; i < total;) {
		size_t j = i, npts = 0;
		while (j < total && labels_eq(&t[j].s->ls, &t[i].s->ls))
			npts += t[j++].s->n;
		promresp_series_t *o = &out->series[out->nseries++];
		o->ls = t[i].s->ls;
		if (out->kind == PROMRESP_MATRIX) {
			o->pts = ARENA_NEW_ARRAY(a, promresp_point_t, npts + 1);
			for (size_t m = i; m < j; m++) {
				const promresp_series_t *s = t[m].s;
				size_t from = 0;
				if (o->n) /* drop what an earlier input already has */
					while (from < s->n && s->pts[from].t <= o->pts[o->n - 1].t)
						from++;
				memcpy(o->pts + o->n, s->pts + from, (s->n - from) * sizeof *s->pts);
				o->n += s->n - from;
			}
		}
		i = j;
	}
	free(t);
	free(rk);
}

static void merge_stats(arena_t *a, const promresp_t *const *in, size_t n, promresp_stats_t *o)
{
	memset(o, 0, sizeof *o);
	o->present = n > 0;
	o->per_step = n > 0;
	size_t steps = 0;
	for (size_t i = 0; i < n; i++) {
		const promresp_stats_t *s = &in[i]->stats;
		o->present &= s->present;
		o->per_step &= s->per_step;
		for (int j = 0; j < PROMRESP_TIMINGS; j++)
			o->timings[j] += s->timings[j];
		o->total_samples += s->total_samples;
		if (s->peak_samples > o->peak_samples)
			o->peak_samples = s->peak_samples;
		steps += s->nsteps;
	}
	if (!o->present) {
		memset(o, 0, sizeof *o);
		return;
	}
	if (!o->per_step)
		return;
	/* Concatenate the per-step lists in time order, a timestamp seen before counted once. */
	o->step_t = ARENA_NEW_ARRAY(a, int64_t, steps + 1);
	o->step_n = ARENA_NEW_ARRAY(a, int64_t, steps + 1);
	ranked_t *rk = xcalloc(n, sizeof *rk);
	for (size_t i = 0; i < n; i++)
		rk[i] = (ranked_t){in[i], in[i]->stats.nsteps ? in[i]->stats.step_t[0] : INT64_MAX, i};
	qsort(rk, n, sizeof *rk, ranked_cmp);
	o->total_samples = 0;
	for (size_t i = 0; i < n; i++) {
		const promresp_stats_t *s = &rk[i].r->stats;
		for (size_t j = 0; j < s->nsteps; j++) {
			if (o->nsteps && s->step_t[j] <= o->step_t[o->nsteps - 1])
				continue;
			o->step_t[o->nsteps] = s->step_t[j];
			o->step_n[o->nsteps++] = s->step_n[j];
			o->total_samples += s->step_n[j];
		}
	}
	free(rk);
}

static void merge_strings(arena_t *a, const promresp_t *const *in, size_t n, promresp_t *out)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += in[i]->nstrings;
	out->strings = ARENA_NEW_ARRAY(a, str_t, total + 1);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < in[i]->nstrings; j++)
			out->strings[out->nstrings++] = in[i]->strings[j];
	qsort(out->strings, out->nstrings, sizeof *out->strings, str_t_cmp);
	size_t k = 0;
	for (size_t i = 0; i < out->nstrings; i++)
		if (!k || !str_eq(out->strings[k - 1], out->strings[i]))
			out->strings[k++] = out->strings[i];
	out->nstrings = k;
}

void promresp_merge(arena_t *a, const promresp_t *const *in, size_t n, promresp_t *out)
{
	memset(out, 0, sizeof *out);
	out->kind = n ? in[0]->kind : PROMRESP_MATRIX;
	size_t nw = 0;
	for (size_t i = 0; i < n; i++)
		nw += in[i]->nwarnings;
	out->warnings = ARENA_NEW_ARRAY(a, str_t, nw + 1);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < in[i]->nwarnings; j++) {
			bool dup = false;
			for (size_t k = 0; k < out->nwarnings && !dup; k++)
				dup = str_eq(out->warnings[k], in[i]->warnings[j]);
			if (!dup)
				out->warnings[out->nwarnings++] = in[i]->warnings[j];
		}
	if (out->kind == PROMRESP_LABELS) {
		merge_strings(a, in, n, out);
		return;
	}
	merge_series(a, in, n, out);
	if (out->kind == PROMRESP_MATRIX)
		merge_stats(a, in, n, &out->stats);
}

/* ------------------------------------------------------------------ extract */

/* First index with t >= x. */
static size_t lower_bound(const promresp_point_t *p, size_t n, int64_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p[mid].t < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void promresp_extract(arena_t *a, const promresp_t *r, int64_t start, int64_t end, promresp_t *out)
{
	*out = *r;
	if (r->kind != PROMRESP_MATRIX)
		return;
	out->series = ARENA_NEW_ARRAY(a, promresp_series_t, r->nseries + 1);
	out->nseries = 0;
	bool whole = true;
	for (size_t i = 0; i < r->nseries; i++) {
		const promresp_series_t *s = &r->series[i];
		size_t lo = lower_bound(s->pts, s->n, start),
		       hi = lower_bound(s->pts, s->n, end == INT64_MAX ? end : end + 1);
		if (lo != 0 || hi != s->n)
			whole = false;
		if (lo >= hi)
			continue;
		out->series[out->nseries++] = (promresp_series_t){s->ls, s->pts + lo, hi - lo};
	}
	const promresp_stats_t *st = &r->stats;
	if (!st->present)
		return;
	if (!st->per_step) {
		if (!whole)
			memset(&out->stats, 0, sizeof out->stats);
		return;
	}
	size_t k = 0;
	promresp_stats_t *o = &out->stats;
	o->step_t = ARENA_NEW_ARRAY(a, int64_t, st->nsteps + 1);
	o->step_n = ARENA_NEW_ARRAY(a, int64_t, st->nsteps + 1);
	o->total_samples = 0;
	for (size_t i = 0; i < st->nsteps; i++) {
		if (st->step_t[i] < start || st->step_t[i] > end)
			continue;
		o->step_t[k] = st->step_t[i];
		o->step_n[k++] = st->step_n[i];
		o->total_samples += st->step_n[i];
	}
	o->nsteps = k;
}

int64_t promresp_min_time(const promresp_t *r)
{
	int64_t m = -1;
	for (size_t i = 0; i < r->nseries; i++)
		if (r->series[i].n && (m < 0 || r->series[i].pts[0].t < m))
			m = r->series[i].pts[0].t;
	return m;
}
