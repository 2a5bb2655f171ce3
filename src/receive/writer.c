/*
 * writer.c — one decoded request into one tenant's head, with per-series verdicts.
 */
#include "receive/writer.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "tsdb/head.h"

void rcv_write_result_init(rcv_write_result_t *r)
{
	memset(r, 0, sizeof *r);
	r->status = 200;
	buf_init(&r->msg);
}

void rcv_write_result_release(rcv_write_result_t *r)
{
	buf_release(&r->msg);
}

/* Error classes, in the order their status wins. */
enum { C_WAL, C_OPEN, C_LIMIT, C_LABELS, C_HIST, C_CONFLICT, NCLASS };
static const int class_status[NCLASS] = {500, 503, 429, 400, 400, 409};

typedef struct cls {
	size_t n;
	buf_t first; /* first occurrence, for the message */
} cls_t;

static void note(cls_t *c, const char *what, const labels_t *ls, int64_t t, bool with_t)
{
	if (c->n++)
		return;
	buf_puts(&c->first, what);
	if (ls) {
		buf_puts(&c->first, " for series ");
		labels_format_full(&c->first, ls);
	}
	if (with_t)
		buf_printf(&c->first, " (sample timestamp %lld)", (long long)t);
}

void rcv_write(mtsdb_t *mt, str_t tenant, const wr_request_t *req, const relabel_t *relabel,
               int64_t head_series_limit, arena_t *a, rcv_write_result_t *res)
{
	cls_t cls[NCLASS];
	memset(cls, 0, sizeof cls);
	for (int i = 0; i < NCLASS; i++)
		buf_init(&cls[i].first);
	res->series = req->nseries;
	res->samples = req->nsamples;
	head_input_t *in = ARENA_NEW_ARRAY(a, head_input_t, req->nseries ? req->nseries : 1);
	size_t n = 0;
	bool relabelling = relabel && relabel_len(relabel);
	for (size_t i = 0; i < req->nseries; i++) {
		const wr_series_t *s = &req->series[i];
		if (s->nhistograms)
			note(&cls[C_HIST], "native histogram samples are not supported (dropped)", &s->ls, 0,
			     false);
		if (!s->n)
			continue;
		if (!relabelling) {
			/* labels are checked by the head, and only for series it does not know yet */
			in[n++] = (head_input_t){.ls = s->ls,
			                         .t = s->t,
			                         .v = s->v,
			                         .n = s->n,
			                         .raw = s->raw,
			                         .nraw = s->nraw,
			                         .unchecked = true};
			continue;
		}
		err_t e = {0};
		if (labels_check(&s->ls, &e)) {
			note(&cls[C_LABELS], e.msg, &s->ls, 0, false);
			continue;
		}
		labels_t ls;
		if (!relabel_apply(relabel, a, &s->ls, &ls)) {
			res->dropped_series++;
			continue;
		}
		in[n++] = (head_input_t){.ls = ls, .t = s->t, .v = s->v, .n = s->n};
	}
	mtsdb_tenant_t *t = NULL;
	err_t err = {0};
	if ((n || req->nmeta) && mtsdb_get(mt, tenant, &t, &err) != 0) {
		int c = err.code == ERR_INVALID ? C_LABELS : C_OPEN;
		note(&cls[c], err.msg, NULL, 0, false);
		cls[c].n = n ? n : 1; /* every series of the request */
	} else if (t) {
		head_t *h = mtsdb_tenant_head(t);
		head_set_series_limit(h, head_series_limit > 0 ? (uint64_t)head_series_limit : 0);
		head_meta_input_t *md = ARENA_NEW_ARRAY(a, head_meta_input_t, req->nmeta ? req->nmeta : 1);
		for (size_t i = 0; i < req->nmeta; i++)
			md[i] = (head_meta_input_t){req->meta[i].family, req->meta[i].type, req->meta[i].unit,
			                            req->meta[i].help};
		if (head_append(h, in, n, md, req->nmeta, &err) != 0) {
			note(&cls[C_WAL], err.msg, NULL, 0, false);
		} else {
			for (size_t i = 0; i < n; i++) {
				res->appended += in[i].appended;
				switch (in[i].verdict) {
				case HEAD_OK:
					break;
				case HEAD_SERIES_LIMIT:
					res->limited_series++;
					note(&cls[C_LIMIT],
					     "tenant's head series limit reached: new series refused",
					     &in[i].ls, 0, false);
					break;
				case HEAD_INVALID_LABELS: {
					err_t e = {0};
					labels_check(&in[i].ls, &e);
					note(&cls[C_LABELS], e.msg, &in[i].ls, 0, false);
					break;
				}
				default:
					note(&cls[C_CONFLICT], head_verdict_str(in[i].verdict), &in[i].ls,
					     in[i].bad_t, true);
					break;
				}
			}
		}
	}
	for (int c = 0; c < NCLASS; c++) {
		if (!cls[c].n)
			continue;
		if (res->status == 200)
			res->status = class_status[c];
		if (c != C_HIST)
			res->rejected_series += cls[c].n;
		buf_append_str(&res->msg, buf_str(&cls[c].first));
		if (cls[c].n > 1)
			buf_printf(&res->msg, " (and %zu more series like it)", cls[c].n - 1);
		buf_putc(&res->msg, '\n');
		buf_release(&cls[c].first);
	}
}
