/*
 * result_json.c — a query result as the Prometheus HTTP API "data" object.
 */
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

static void put_point(buf_t *b, int64_t t, double v)
{
	buf_putc(b, '[');
	buf_put_prom_ts(b, t);
	buf_puts(b, ",\"");
	buf_put_prom_value(b, v);
	buf_puts(b, "\"]");
}

void promql_result_json(buf_t *b, const promql_result_t *res)
{
	switch (res->type) {
	case PROMQL_TYPE_SCALAR:
		buf_puts(b, "{\"resultType\":\"scalar\",\"result\":[");
		buf_put_json_seconds(b, res->ts);
		buf_puts(b, ",\"");
		buf_put_float(b, res->scalar, 'f');
		buf_puts(b, "\"]}");
		return;
	case PROMQL_TYPE_STRING:
		buf_puts(b, "{\"resultType\":\"string\",\"result\":[");
		buf_put_json_seconds(b, res->ts);
		buf_putc(b, ',');
		buf_json_str(b, res->string);
		buf_puts(b, "]}");
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
		}
		buf_puts(b, "]}");
		return;
	default:
		buf_puts(b, "{\"resultType\":\"matrix\",\"result\":[");
		for (size_t i = 0; i < res->nseries; i++) {
			if (i)
				buf_putc(b, ',');
			put_metric(b, &res->series[i].ls);
			buf_puts(b, "\"values\":[");
			for (size_t j = 0; j < res->series[i].n; j++) {
				if (j)
					buf_putc(b, ',');
				put_point(b, res->series[i].t[j], res->series[i].v[j]);
			}
			buf_puts(b, "]}");
		}
		buf_puts(b, "]}");
		return;
	}
}
