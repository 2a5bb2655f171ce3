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

/* [<t>,"<v>"] written straight into the buffer: a matrix is mostly this. */
static void put_point(buf_t *b, int64_t t, double v)
{
	buf_reserve(b, FMT_PROM_TS_MAX + FMT_PROM_VALUE_MAX + 8);
	char *p = b->p + b->n;
	*p++ = '[';
	p += fmt_prom_ts(p, t);
	memcpy(p, ",\"", 2);
	p += 2;
	p += fmt_prom_value(p, v);
	memcpy(p, "\"]", 2);
	p += 2;
	*p = 0;
	b->n = (size_t)(p - b->p);
}

/* A matrix's series share their step timestamps: each distinct one is formatted once per answer and
 * copied after that (direct-mapped on the second; a collision only formats again). */
#define TS_CACHE 1024

typedef struct ts_cache {
	int64_t t[TS_CACHE];
	uint8_t len[TS_CACHE]; /* 0 = empty */
	char s[TS_CACHE][FMT_PROM_TS_MAX];
} ts_cache_t;

static void put_point_cached(buf_t *b, ts_cache_t *c, int64_t t, double v)
{
	buf_reserve(b, FMT_PROM_TS_MAX + FMT_PROM_VALUE_MAX + 8);
	char *p = b->p + b->n;
	*p++ = '[';
	size_t k = (size_t)((uint64_t)t / 1000 % TS_CACHE);
	if (c->len[k] && c->t[k] == t) {
		memcpy(p, c->s[k], FMT_PROM_TS_MAX);
		p += c->len[k];
	} else {
		size_t n = fmt_prom_ts(p, t);
		memcpy(c->s[k], p, n);
		c->t[k] = t;
		c->len[k] = (uint8_t)n;
		p += n;
	}
	memcpy(p, ",\"", 2);
	p += 2;
	p += fmt_prom_value(p, v);
	memcpy(p, "\"]", 2);
	p += 2;
	*p = 0;
	b->n = (size_t)(p - b->p);
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
		ts_cache_t *tc = res->nseries > 1 ? xcalloc(1, sizeof *tc) : NULL;
		for (size_t i = 0; i < res->nseries; i++) {
			if (i)
				buf_putc(b, ',');
			put_metric(b, &res->series[i].ls);
			buf_puts(b, "\"values\":[");
			for (size_t j = 0; j < res->series[i].n; j++) {
				if (j)
					buf_putc(b, ',');
				if (tc)
					put_point_cached(b, tc, res->series[i].t[j], res->series[i].v[j]);
				else
					put_point(b, res->series[i].t[j], res->series[i].v[j]);
			}
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
