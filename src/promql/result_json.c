/*
 * result_json.c — a query result as the Prometheus HTTP API "data" object.
 */
#include <string.h>

#include "base/alloc.h"
#include "base/fmt.h"
#include "promql/engine.h"

void promql_labels_json(buf_t *b, const labels_t *ls)
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

static void put_metric(buf_t *b, const labels_t *ls)
{
	buf_puts(b, "{\"metric\":");
	promql_labels_json(b, ls);
	buf_putc(b, ',');
}

/* A matrix's series share their step timestamps: each one is formatted once per answer and copied for
 * the other series. The grid (first timestamp, step) is taken from the first series with two points;
 * a timestamp off the grid (or past TS_CACHE steps) is formatted as it comes. */
#define TS_CACHE 4096

typedef struct ts_cache {
	int64_t t0, d;         /* d = 0: no grid yet */
	uint8_t len[TS_CACHE]; /* 0 = not formatted yet */
	char s[TS_CACHE][FMT_PROM_TS_MAX];
} ts_cache_t;

/* The slot of t (k: its index on the grid), or SIZE_MAX. prev/pk: the series' previous point and slot. */
static size_t ts_slot(const ts_cache_t *c, int64_t t, int64_t prev, size_t pk)
{
	if (!c->d)
		return SIZE_MAX;
	if (pk != SIZE_MAX && t - prev == c->d)
		return pk + 1 < TS_CACHE ? pk + 1 : SIZE_MAX;
	if (t < c->t0 || (t - c->t0) % c->d)
		return SIZE_MAX;
	int64_t k = (t - c->t0) / c->d;
	return k < TS_CACHE ? (size_t)k : SIZE_MAX;
}

/* The timestamp t at p, from c's slot k (formatted into it the first time), or formatted here when k is
 * SIZE_MAX (c may then be NULL); returns the end. */
static char *put_ts(ts_cache_t *c, size_t k, int64_t t, char *p)
{
	if (k != SIZE_MAX && c->len[k]) {
		memcpy(p, c->s[k], FMT_PROM_TS_MAX);
		return p + c->len[k];
	}
	size_t n = fmt_prom_ts(p, t);
	if (k != SIZE_MAX) {
		memcpy(c->s[k], p, n);
		c->len[k] = (uint8_t)n;
	}
	return p + n;
}

#define POINT_MAX (FMT_PROM_TS_MAX + FMT_PROM_VALUE_MAX + 8) /* ,[<t>,"<v>"] */

/* [<t>,"<v>"] written straight into the buffer (a vector's sample). */
static void put_point(buf_t *b, int64_t t, double v)
{
	buf_reserve(b, POINT_MAX);
	char *p = b->p + b->n;
	*p++ = '[';
	p = put_ts(NULL, SIZE_MAX, t, p);
	memcpy(p, ",\"", 2);
	p += 2;
	p += fmt_prom_value(p, v);
	memcpy(p, "\"]", 2);
	p += 2;
	*p = 0;
	b->n = (size_t)(p - b->p);
}

/* A matrix series' points, [<t>,"<v>"] separated by commas, written straight into the buffer (a matrix
 * is mostly this): the buffer grown only when short, the step timestamps from c (may be NULL), and a
 * value with the same bits as the point before (a flat gauge, a constant, a counter that did not move)
 * copied from that point's text instead of formatted again. */
static void put_points(buf_t *b, ts_cache_t *c, const int64_t *ts, const double *vs, size_t n)
{
	size_t k = SIZE_MAX, prev_off = SIZE_MAX, prev_len = 0;
	uint64_t prev_bits = 0;
	for (size_t j = 0; j < n; j++) {
		if (b->n + POINT_MAX + 1 > b->cap)
			buf_reserve(b, POINT_MAX);
		char *p = b->p + b->n;
		if (j)
			*p++ = ',';
		*p++ = '[';
		if (c)
			k = ts_slot(c, ts[j], j ? ts[j - 1] : 0, j ? k : SIZE_MAX);
		p = put_ts(c, k, ts[j], p);
		memcpy(p, ",\"", 2);
		p += 2;
		uint64_t bits;
		memcpy(&bits, &vs[j], sizeof bits);
		if (bits == prev_bits && prev_off != SIZE_MAX) {
			char text[FMT_PROM_VALUE_MAX]; /* the previous point's, possibly closer than its size
			                                */
			memcpy(text, b->p + prev_off, sizeof text);
			memcpy(p, text, sizeof text);
		} else {
			prev_len = fmt_prom_value(p, vs[j]);
			prev_bits = bits;
		}
		prev_off = (size_t)(p - b->p);
		p += prev_len;
		memcpy(p, "\"]", 2);
		b->n = (size_t)(p + 2 - b->p);
	}
	if (n)
		b->p[b->n] = 0;
}

void promql_result_json_open(buf_t *b, const promql_result_t *res, bool (*flush)(void *arg), void *arg)
{
	switch (res->type) {
	case PROMQL_TYPE_SCALAR:
		buf_puts(b, "{\"resultType\":\"scalar\",\"result\":[");
		buf_put_json_seconds(b, res->ts);
		buf_puts(b, ",\"");
		buf_put_float(b, res->scalar, 'f');
		buf_puts(b, "\"]");
		return;
	case PROMQL_TYPE_STRING:
		buf_puts(b, "{\"resultType\":\"string\",\"result\":[");
		buf_put_json_seconds(b, res->ts);
		buf_putc(b, ',');
		buf_json_str(b, res->string);
		buf_putc(b, ']');
		return;
	case PROMQL_TYPE_VECTOR:
		buf_puts(b, "{\"resultType\":\"vector\",\"result\":[");
		for (size_t i = 0; i < res->nseries; i++) {
			if (i)
				buf_putc(b, ',');
			put_metric(b, &res->series[i].ls);
			buf_puts(b, "\"value\":");
			put_point(b, res->series[i].t[0], res->series[i].v[0]);
			buf_putc(b, '}');
			if (flush && !flush(arg))
				return;
		}
		buf_putc(b, ']');
		return;
	default:
		buf_puts(b, "{\"resultType\":\"matrix\",\"result\":[");
		ts_cache_t *tc = NULL;
		if (res->nseries > 1) { /* the strings need no clearing: len says which are set */
			tc = xmalloc(sizeof *tc);
			tc->t0 = tc->d = 0;
			memset(tc->len, 0, sizeof tc->len);
		}
		for (size_t i = 0; i < res->nseries; i++) {
			if (i)
				buf_putc(b, ',');
			put_metric(b, &res->series[i].ls);
			buf_puts(b, "\"values\":[");
			const int64_t *ts = res->series[i].t;
			size_t n = res->series[i].n;
			if (tc && !tc->d && n >= 2 && ts[1] > ts[0])
				tc->t0 = ts[0], tc->d = ts[1] - ts[0];
			put_points(b, tc, ts, res->series[i].v, n);
			buf_puts(b, "]}");
			if (flush && !flush(arg)) {
				free(tc);
				return;
			}
		}
		free(tc);
		buf_putc(b, ']');
		return;
	}
}

void promql_result_json(buf_t *b, const promql_result_t *res)
{
	promql_result_json_open(b, res, NULL, NULL);
	buf_putc(b, '}');
}
