/*
 * manager.c — see manager.h. One thread per group; a group's mutex guards its rules' state, which
 * the evaluation thread changes and the API handlers read. Labels kept across evaluations (active
 * alerts, series for staleness) are heap copies (hlabels); everything else of an evaluation lives in
 * an arena reset per evaluation.
 */
#include "rule/manager.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fmt.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/vec.h"
#include "model/matcher.h"
#include "promql/ast.h"
#include "rule/ruledeps.h"
#include "rule/tmpl.h"
#include "tsdb/head.h"
#include "tsdb/xor.h"

#define RESOLVED_RETENTION_MS (15 * 60 * 1000)

enum { ST_INACTIVE = 0, ST_PENDING = 1, ST_FIRING = 2 };
enum { H_UNKNOWN = 0, H_OK = 1, H_ERR = 2 };

/* ---- heap label sets ---- */

static labels_t hlabels_dup(const labels_t *ls)
{
	size_t bytes = (ls->n + 1) * sizeof(label_t);
	for (size_t i = 0; i < ls->n; i++)
		bytes += ls->v[i].name.n + ls->v[i].value.n + 2;
	char *blob = xmalloc(bytes);
	labels_t out = {(label_t *)blob, ls->n};
	char *p = blob + (ls->n + 1) * sizeof(label_t);
	for (size_t i = 0; i < ls->n; i++) {
		memcpy(p, ls->v[i].name.p, ls->v[i].name.n);
		p[ls->v[i].name.n] = 0;
		out.v[i].name = str_from(p, ls->v[i].name.n);
		p += ls->v[i].name.n + 1;
		memcpy(p, ls->v[i].value.p, ls->v[i].value.n);
		p[ls->v[i].value.n] = 0;
		out.v[i].value = str_from(p, ls->v[i].value.n);
		p += ls->v[i].value.n + 1;
	}
	return out;
}

static void hlabels_free(labels_t *ls)
{
	free(ls->v);
	*ls = (labels_t){0};
}

/* ---- state ---- */

typedef struct ralert {
	labels_t ls, ann; /* heap */
	uint64_t hash;
	int state;
	double value;
	int64_t active_at, fired_at, resolved_at, last_sent_at, valid_until, keep_firing_since; /* ms, 0 = zero */
} ralert_t;

typedef struct sref {
	uint64_t hash;
	labels_t ls; /* heap */
} sref_t;

typedef struct rrule {
	const rule_spec_t *spec;
	char *name, *query; /* query: the expression as Prometheus prints it */
	int health;
	char *last_error;
	int64_t last_eval_ms;
	double eval_s;
	VEC(ralert_t *) active;
	bool restored;
	VEC(sref_t) prev; /* series written by the last successful evaluation */
} rrule_t;

typedef struct rgroup rgroup_t;
struct rgroup {
	rulemgr_t *m;
	const group_spec_t *spec;
	char *key; /* file \xff name */
	int64_t interval_ms;
	rrule_t *rules;
	size_t n;
	ruledeps_t *deps; /* which rules may run at the same time */
	size_t workers;   /* rules evaluated at once: min(--rules.max-concurrent-evals, rules) or 1 */
	pthread_mutex_t mu;
	int64_t last_eval_ms;
	double eval_s;
	pthread_t thr;
	pthread_mutex_t run_mu;
	pthread_cond_t run_cv;
	bool stop, started, mark_stale, should_restore;
};

typedef struct ruleset_ref {
	arena_t arena;
	rule_set_t set;
} ruleset_ref_t;

struct rulemgr {
	rulemgr_opts_t o;
	labels_t ext; /* heap */
	strlist_t files;
	char *query_url;
	pthread_mutex_t reload_mu, mu;
	rgroup_t **groups;
	size_t ngroups;
	ruleset_ref_t *cur; /* the parsed files the groups point into */
	bool restored;      /* the first load happened: later groups do not restore */
	metric_t *m_evals, *m_failures, *m_warnings, *m_duration, *m_last_duration, *m_interval, *m_last_eval,
	    *m_missed, *m_rules;
	metric_child_t *m_reload_ok, *m_reload_total, *m_reload_fail;
};

static void rule_set_error(rrule_t *r, const char *msg)
{
	free(r->last_error);
	r->last_error = msg ? xstrdup(msg) : NULL;
	r->health = msg ? H_ERR : H_OK;
}

static void alert_free(ralert_t *a)
{
	hlabels_free(&a->ls);
	hlabels_free(&a->ann);
	free(a);
}

static void rule_release(rrule_t *r)
{
	free(r->name);
	free(r->query);
	free(r->last_error);
	for (size_t i = 0; i < r->active.n; i++)
		alert_free(r->active.v[i]);
	free(r->active.v);
	for (size_t i = 0; i < r->prev.n; i++)
		hlabels_free(&r->prev.v[i].ls);
	free(r->prev.v);
}

static void group_free(rgroup_t *g)
{
	for (size_t i = 0; i < g->n; i++)
		rule_release(&g->rules[i]);
	free(g->rules);
	free(g->key);
	ruledeps_free(g->deps);
	pthread_mutex_destroy(&g->mu);
	pthread_mutex_destroy(&g->run_mu);
	pthread_cond_destroy(&g->run_cv);
	free(g);
}

static char *cstr(str_t s)
{
	return xstrndup(s.p, s.n);
}

static rgroup_t *group_new(rulemgr_t *m, const group_spec_t *gs)
{
	rgroup_t *g = xcalloc(1, sizeof *g);
	g->m = m;
	g->spec = gs;
	buf_t k = BUF_INIT;
	buf_append_str(&k, gs->file);
	buf_putc(&k, '\xff');
	buf_append_str(&k, gs->name);
	g->key = buf_detach(&k, NULL);
	g->interval_ms = gs->interval_ms > 0 ? gs->interval_ms : m->o.eval_interval_ms;
	g->n = gs->nrules;
	g->rules = xcalloc(g->n + 1, sizeof *g->rules);
	for (size_t i = 0; i < g->n; i++) {
		rrule_t *r = &g->rules[i];
		r->spec = &gs->rules[i];
		r->name = cstr(r->spec->name);
		arena_t a;
		arena_init(&a, 0);
		promql_expr_t *e;
		err_t err = {0};
		if (promql_parse(&a, r->spec->expr.p, r->spec->expr.n, &e, &err) == 0) {
			buf_t b = BUF_INIT;
			promql_expr_format(&b, e);
			r->query = buf_detach(&b, NULL);
		} else {
			r->query = cstr(r->spec->expr);
		}
		arena_release(&a);
		r->restored = m->restored;
	}
	g->workers = 1;
	if (m->o.max_concurrent_evals > 1 && g->n > 1) {
		g->deps = ruledeps_new(gs->rules, g->n);
		g->workers = (size_t)m->o.max_concurrent_evals < g->n ? (size_t)m->o.max_concurrent_evals : g->n;
	}
	pthread_mutex_init(&g->mu, NULL);
	pthread_mutex_init(&g->run_mu, NULL);
	pthread_cond_init(&g->run_cv, NULL);
	g->should_restore = !m->restored;
	return g;
}

/* ---- storing ---- */

typedef struct outs {
	VEC(head_input_t) in;
	arena_t *a;
} outs_t;

static void out_add(outs_t *o, labels_t ls, int64_t t, double v)
{
	int64_t *tp = arena_alloc(o->a, sizeof *tp);
	double *vp = arena_alloc(o->a, sizeof *vp);
	*tp = t;
	*vp = v;
	VEC_PUSH(&o->in, ((head_input_t){.ls = ls, .t = tp, .v = vp, .n = 1}));
}

static void commit(rulemgr_t *m, rgroup_t *g, rrule_t *r, outs_t *o)
{
	if (!o->in.n)
		return;
	err_t err = {0};
	if (head_append(db_head(m->o.db), o->in.v, o->in.n, NULL, 0, &err) != 0) {
		log_error("rule evaluation result not stored", "group", g->spec->name.p, "rule", r->name, "err", err.msg);
		return;
	}
	size_t bad = 0;
	const char *why = NULL;
	for (size_t i = 0; i < o->in.n; i++)
		if (o->in.v[i].verdict != HEAD_OK) {
			bad++;
			why = head_verdict_str(o->in.v[i].verdict);
		}
	if (bad) {
		char nb[32];
		snprintf(nb, sizeof nb, "%zu", bad);
		log_warn("rule evaluation samples rejected by the storage", "group", g->spec->name.p, "rule", r->name,
		         "samples", nb, "reason", why);
	}
}

static int cmp_sref(const void *a, const void *b)
{
	uint64_t x = ((const sref_t *)a)->hash, y = ((const sref_t *)b)->hash;
	return x < y ? -1 : x > y;
}

/* Stale markers for r->prev series not in the current output, then prev = current. */
static void staleness(rrule_t *r, outs_t *o, size_t from, int64_t ts)
{
	size_t ncur = o->in.n - from;
	sref_t *cur = xcalloc(ncur + 1, sizeof *cur);
	for (size_t i = 0; i < ncur; i++)
		cur[i] = (sref_t){labels_hash(&o->in.v[from + i].ls), o->in.v[from + i].ls};
	qsort(cur, ncur, sizeof *cur, cmp_sref);
	for (size_t i = 0; i < r->prev.n; i++) {
		sref_t key = {r->prev.v[i].hash};
		sref_t *f = bsearch(&key, cur, ncur, sizeof *cur, cmp_sref);
		if (!f) {
			labels_t ls = labels_copy(o->a, &r->prev.v[i].ls);
			out_add(o, ls, ts, stale_nan());
		}
		hlabels_free(&r->prev.v[i].ls);
	}
	r->prev.n = 0;
	for (size_t i = 0; i < ncur; i++)
		VEC_PUSH(&r->prev, ((sref_t){cur[i].hash, hlabels_dup(&cur[i].ls)}));
	free(cur);
}

/* ---- evaluation ---- */

typedef struct qctx {
	rulemgr_t *m;
	int64_t ts;
	bool partial;
} qctx_t;

static int tmpl_query(void *arg, arena_t *a, str_t q, tmpl_sample_t **out, size_t *n, err_t *err)
{
	qctx_t *c = arg;
	qapi_result_t res;
	if (qapi_query(c->m->o.query, a, q, c->ts, c->partial, &res, err))
		return -1;
	*out = res.v;
	*n = res.n;
	return 0;
}

static int eval_recording(rgroup_t *g, rrule_t *r, qapi_result_t *res, arena_t *a, outs_t *o, int64_t ts,
                          err_t *err)
{
	size_t from = o->in.n;
	for (size_t i = 0; i < res->n; i++) {
		labels_builder_t lb;
		labels_builder_init(&lb, a, &res->v[i].ls);
		labels_builder_set(&lb, STR(LABEL_METRIC_NAME), r->spec->name);
		for (size_t j = 0; j < r->spec->labels.n; j++)
			labels_builder_set(&lb, r->spec->labels.v[j].name, r->spec->labels.v[j].value);
		out_add(o, labels_builder_finish(&lb), ts, res->v[i].v);
	}
	for (size_t i = from; i < o->in.n; i++)
		for (size_t j = from; j < i; j++)
			if (labels_eq(&o->in.v[i].ls, &o->in.v[j].ls)) {
				o->in.n = from;
				return err_set(err, ERR_INVALID,
				               "vector contains metrics with the same labelset after applying rule labels");
			}
	if (g->spec->limit > 0 && (int64_t)res->n > g->spec->limit) {
		o->in.n = from;
		return err_set(err, ERR_LIMIT, "exceeded limit of %lld with %zu series", (long long)g->spec->limit, res->n);
	}
	return 0;
}

static labels_t alert_series(arena_t *a, const ralert_t *al, const char *name, const char *state)
{
	labels_builder_t lb;
	labels_builder_init(&lb, a, &al->ls);
	labels_builder_set(&lb, STR(LABEL_METRIC_NAME), str_c(name));
	if (state)
		labels_builder_set(&lb, STR("alertstate"), str_c(state));
	return labels_builder_finish(&lb);
}

static ralert_t *find_alert(rrule_t *r, uint64_t h, size_t *idx)
{
	for (size_t i = 0; i < r->active.n; i++)
		if (r->active.v[i]->hash == h) {
			if (idx)
				*idx = i;
			return r->active.v[i];
		}
	return NULL;
}

static int eval_alerting(rulemgr_t *m, rgroup_t *g, rrule_t *r, qapi_result_t *res, arena_t *a, outs_t *o,
                         int64_t ts, err_t *err)
{
	const rule_spec_t *sp = r->spec;
	qctx_t qc = {m, ts, g->spec->strategy == RULE_PR_WARN};
	size_t nnew = res->n;
	ralert_t *fresh = arena_calloc(a, nnew + 1, sizeof *fresh);
	for (size_t i = 0; i < res->n; i++) {
		tmpl_env_t env = {.labels = res->v[i].ls,
		                  .ext_labels = m->ext,
		                  .external_url = str_c(m->query_url),
		                  .value = res->v[i].v,
		                  .query = tmpl_query,
		                  .query_arg = &qc};
		/* $labels carry __name__ as the query returned it */
		labels_builder_t lb;
		labels_builder_init(&lb, a, &res->v[i].ls);
		labels_builder_del(&lb, STR(LABEL_METRIC_NAME));
		for (size_t j = 0; j < sp->labels.n; j++) {
			str_t v;
			tmpl_alert_expand(a, r->name, sp->labels.v[j].value, &env, &v);
			labels_builder_set(&lb, sp->labels.v[j].name, v);
		}
		labels_builder_set(&lb, STR("alertname"), sp->name);
		labels_t ann = {arena_calloc(a, sp->annotations.n + 1, sizeof(label_t)), 0};
		for (size_t j = 0; j < sp->annotations.n; j++) {
			str_t v;
			tmpl_alert_expand(a, r->name, sp->annotations.v[j].value, &env, &v);
			ann.v[ann.n++] = (label_t){sp->annotations.v[j].name, v};
		}
		ralert_t *f = &fresh[i];
		f->ls = labels_builder_finish(&lb);
		f->ann = ann;
		f->hash = labels_hash(&f->ls);
		f->value = res->v[i].v;
		for (size_t j = 0; j < i; j++)
			if (fresh[j].hash == f->hash)
				return err_set(err, ERR_INVALID,
				               "vector contains metrics with the same labelset after applying alert labels");
	}
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < nnew; i++) {
		ralert_t *f = &fresh[i], *cur = find_alert(r, f->hash, NULL);
		if (cur && cur->state != ST_INACTIVE) {
			cur->value = f->value;
			hlabels_free(&cur->ann);
			cur->ann = hlabels_dup(&f->ann);
			continue;
		}
		ralert_t *na = xcalloc(1, sizeof *na);
		na->ls = hlabels_dup(&f->ls);
		na->ann = hlabels_dup(&f->ann);
		na->hash = f->hash;
		na->value = f->value;
		na->state = ST_PENDING;
		na->active_at = ts;
		if (cur) { /* replace the resolved one */
			size_t idx = 0;
			find_alert(r, f->hash, &idx);
			alert_free(cur);
			r->active.v[idx] = na;
		} else {
			VEC_PUSH(&r->active, na);
		}
	}
	size_t num_active = 0;
	for (size_t i = 0; i < r->active.n;) {
		ralert_t *al = r->active.v[i];
		bool in_result = false;
		for (size_t j = 0; j < nnew && !in_result; j++)
			in_result = fresh[j].hash == al->hash;
		if (!in_result) {
			bool keep = false;
			if (al->state == ST_FIRING && sp->keep_firing_for_ms > 0) {
				if (!al->keep_firing_since)
					al->keep_firing_since = ts;
				if (ts - al->keep_firing_since < sp->keep_firing_for_ms)
					keep = true;
			}
			bool del = al->state == ST_PENDING || (al->resolved_at && ts - al->resolved_at > RESOLVED_RETENTION_MS);
			if (al->state != ST_INACTIVE && !keep) {
				al->state = ST_INACTIVE;
				al->resolved_at = ts;
			}
			if (del) {
				alert_free(al);
				r->active.v[i] = r->active.v[--r->active.n];
				continue;
			}
			if (!keep) {
				i++;
				continue;
			}
		} else {
			al->keep_firing_since = 0;
		}
		num_active++;
		if (al->state == ST_PENDING && ts - al->active_at >= sp->for_ms) {
			al->state = ST_FIRING;
			al->fired_at = ts;
		}
		if (r->restored) {
			out_add(o, alert_series(o->a, al, "ALERTS", al->state == ST_FIRING ? "firing" : "pending"), ts, 1);
			out_add(o, alert_series(o->a, al, "ALERTS_FOR_STATE", NULL), ts, (double)(al->active_at / 1000));
		}
		i++;
	}
	int rc = 0;
	if (g->spec->limit > 0 && (int64_t)num_active > g->spec->limit) {
		for (size_t i = 0; i < r->active.n; i++)
			alert_free(r->active.v[i]);
		r->active.n = 0;
		o->in.n = 0;
		rc = err_set(err, ERR_LIMIT, "exceeded limit of %lld with %zu alerts", (long long)g->spec->limit, num_active);
	}
	pthread_mutex_unlock(&g->mu);
	return rc;
}

static void generator_url(buf_t *b, const char *base, const char *expr)
{
	buf_puts(b, base ? base : "");
	buf_puts(b, "/graph?g0.expr=");
	for (const char *p = expr; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.~", c))
			buf_putc(b, (char)c);
		else if (c == ' ')
			buf_putc(b, '+');
		else
			buf_printf(b, "%%%02X", c);
	}
	buf_puts(b, "&g0.tab=1");
}

static void send_alerts(rulemgr_t *m, rgroup_t *g, rrule_t *r, int64_t ts, arena_t *a)
{
	if (!m->o.notifier)
		return;
	int64_t delta = m->o.resend_delay_ms > g->interval_ms ? m->o.resend_delay_ms : g->interval_ms;
	VEC(notifier_alert_t) out = {0};
	buf_t url = BUF_INIT;
	generator_url(&url, m->query_url, r->query);
	str_t gurl = str_from(arena_memdup(a, url.p, url.n), url.n);
	buf_release(&url);
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < r->active.n; i++) {
		ralert_t *al = r->active.v[i];
		if (al->state == ST_PENDING)
			continue;
		/* Prometheus's needsSending */
		if (!(al->resolved_at > al->last_sent_at || al->last_sent_at + m->o.resend_delay_ms < ts))
			continue;
		al->last_sent_at = ts;
		al->valid_until = ts + 4 * delta;
		VEC_PUSH(&out, ((notifier_alert_t){.labels = labels_copy(a, &al->ls),
		                                   .annotations = labels_copy(a, &al->ann),
		                                   .starts_at = al->fired_at,
		                                   .ends_at = al->resolved_at ? al->resolved_at : al->valid_until,
		                                   .generator_url = gurl}));
	}
	pthread_mutex_unlock(&g->mu);
	if (out.n)
		notifier_send(m->o.notifier, out.v, out.n);
	free(out.v);
}

/* Prometheus's RestoreForState over the local TSDB. */
static void restore(rulemgr_t *m, rgroup_t *g, int64_t ts)
{
	arena_t a;
	arena_init(&a, 0);
	int64_t mint = ts - m->o.outage_tolerance_ms;
	for (size_t i = 0; i < g->n; i++) {
		rrule_t *r = &g->rules[i];
		if (!r->spec->alert)
			continue;
		pthread_mutex_lock(&g->mu);
		if (r->spec->for_ms < m->o.grace_period_ms) {
			r->restored = true;
			pthread_mutex_unlock(&g->mu);
			continue;
		}
		for (size_t k = 0; k < r->active.n; k++) {
			ralert_t *al = r->active.v[k];
			labels_t want = alert_series(&a, al, "ALERTS_FOR_STATE", NULL);
			matcher_t *ms = arena_calloc(&a, want.n + 1, sizeof *ms);
			err_t err = {0};
			size_t nm = 0;
			for (; nm < want.n; nm++)
				if (matcher_init(&ms[nm], MATCH_EQ, want.v[nm].name, want.v[nm].value, &err))
					break;
			/* the newest sample over the head and the blocks (a graceful restart cut the head into one) */
			bool found = false;
			int64_t lt = INT64_MIN;
			double lv = 0;
			db_view_t view;
			db_view(m->o.db, &a, &view);
			for (size_t q = 0; nm == want.n && q < view.n; q++) {
				series_set_t *ss = NULL;
				if (view.q[q]->ops->select(view.q[q], &a, ms, nm, mint, ts, NULL, &ss, &err) != 0)
					continue;
				while (series_set_next(ss, &err) > 0) {
					if (series_set_labels(ss)->n != want.n)
						continue;
					sample_iter_t *it = series_set_samples(ss);
					int64_t tb[256];
					double vb[256];
					int c;
					while ((c = sample_iter_next_batch(it, tb, vb, 256, &err)) > 0)
						if (tb[c - 1] > lt) {
							lt = tb[c - 1];
							lv = vb[c - 1];
							found = true;
						}
					break;
				}
				series_set_close(ss);
			}
			for (size_t j = 0; j < nm; j++)
				matcher_release(&ms[j]);
			if (!found || value_is_stale_nan(lv))
				continue;
			int64_t down_at = lt / 1000 * 1000, restored_active = (int64_t)lv * 1000;
			int64_t spent = down_at - restored_active, remaining = r->spec->for_ms - spent;
			if (remaining <= 0) {
				/* was firing: the next evaluation sets it firing again if it still is */
			} else if (remaining < m->o.grace_period_ms) {
				restored_active = ts + m->o.grace_period_ms - r->spec->for_ms;
			} else {
				restored_active += ts - down_at;
			}
			al->active_at = restored_active;
			log_info("'for' state restored", "alertname", r->name);
		}
		r->restored = true;
		pthread_mutex_unlock(&g->mu);
	}
	arena_release(&a);
}

/* One rule of an evaluation of g at ts, with its own arena (rules of a group may run at once). */
static void eval_rule(rulemgr_t *m, rgroup_t *g, rrule_t *r, int64_t ts, const char *gname)
{
	arena_t a;
	arena_init(&a, 0);
	const char *strategy = g->spec->strategy == RULE_PR_WARN ? "warn" : "abort";
	int64_t rwall = clock_now_ms();
	uint64_t r0 = clock_mono_ns();
	metric_inc(metric_with(m->m_evals, strategy));
	qapi_result_t res;
	err_t err = {0};
	outs_t o = {.a = &a};
	int rc = qapi_query(m->o.query, &a, str_c(r->query), ts, g->spec->strategy == RULE_PR_WARN, &res, &err);
	if (rc == 0 && res.nwarnings) {
		metric_inc(metric_with(m->m_warnings, strategy));
		log_warn("rule evaluation returned warnings", "group", gname, "rule", r->name, "warning", res.warnings[0]);
	}
	if (rc == 0)
		rc = r->spec->alert ? eval_alerting(m, g, r, &res, &a, &o, ts, &err)
		                    : eval_recording(g, r, &res, &a, &o, ts, &err);
	if (rc != 0) {
		metric_inc(metric_with(m->m_failures, strategy));
		log_warn("rule evaluation failed", "group", gname, "rule", r->name, "err", err.msg);
	} else {
		if (r->spec->alert)
			send_alerts(m, g, r, ts, &a);
		staleness(r, &o, 0, ts);
		commit(m, g, r, &o);
	}
	free(o.in.v);
	pthread_mutex_lock(&g->mu);
	rule_set_error(r, rc ? err.msg : NULL);
	r->last_eval_ms = rwall;
	r->eval_s = clock_since_s(r0);
	pthread_mutex_unlock(&g->mu);
	arena_release(&a);
}

/* An evaluation's rules, taken in order by up to --rules.max-concurrent-evals workers; a rule waits
 * until every earlier rule it conflicts with (ruledeps.h) has finished. The lowest unfinished rule
 * never waits, so the workers cannot deadlock. */
typedef struct evalrun {
	rulemgr_t *m;
	rgroup_t *g;
	int64_t ts;
	const char *gname;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next; /* the next rule to start */
	size_t low;  /* every rule before it has finished */
	bool *done;
} evalrun_t;

static bool must_wait(const evalrun_t *er, size_t i)
{
	for (size_t j = er->low; j < i; j++)
		if (!er->done[j] && ruledeps_conflict(er->g->deps, i, j))
			return true;
	return false;
}

static void *eval_worker(void *arg)
{
	evalrun_t *er = arg;
	pthread_mutex_lock(&er->mu);
	while (er->next < er->g->n) {
		size_t i = er->next++;
		while (must_wait(er, i))
			pthread_cond_wait(&er->cv, &er->mu);
		pthread_mutex_unlock(&er->mu);
		eval_rule(er->m, er->g, &er->g->rules[i], er->ts, er->gname);
		pthread_mutex_lock(&er->mu);
		er->done[i] = true;
		while (er->low < er->g->n && er->done[er->low])
			er->low++;
		pthread_cond_broadcast(&er->cv);
	}
	pthread_mutex_unlock(&er->mu);
	return NULL;
}

static void eval_group(rulemgr_t *m, rgroup_t *g, int64_t ts)
{
	arena_t a;
	arena_init(&a, 0);
	int64_t start_wall = clock_now_ms();
	uint64_t g0 = clock_mono_ns();
	const char *gname = arena_strndup(&a, g->spec->name.p, g->spec->name.n);
	const char *gfile = arena_strndup(&a, g->spec->file.p, g->spec->file.n);
	char *gkey = arena_printf(&a, "%s;%s", gfile, gname);
	size_t workers = g->workers;
	if (workers <= 1) {
		for (size_t i = 0; i < g->n; i++)
			eval_rule(m, g, &g->rules[i], ts, gname);
	} else {
		evalrun_t er = {.m = m, .g = g, .ts = ts, .gname = gname, .done = arena_calloc(&a, g->n + 1, sizeof(bool))};
		pthread_mutex_init(&er.mu, NULL);
		pthread_cond_init(&er.cv, NULL);
		pthread_t *thr = arena_calloc(&a, workers, sizeof *thr);
		size_t started = 0;
		for (size_t k = 1; k < workers; k++)
			if (pthread_create(&thr[started], NULL, eval_worker, &er) == 0)
				started++;
		eval_worker(&er); /* this thread is a worker too */
		for (size_t k = 0; k < started; k++)
			pthread_join(thr[k], NULL);
		pthread_mutex_destroy(&er.mu);
		pthread_cond_destroy(&er.cv);
	}
	double secs = clock_since_s(g0);
	pthread_mutex_lock(&g->mu);
	g->last_eval_ms = start_wall;
	g->eval_s = secs;
	pthread_mutex_unlock(&g->mu);
	metric_observe(metric_with(m->m_duration), secs);
	metric_set(metric_with(m->m_last_duration, gkey), secs);
	metric_set(metric_with(m->m_last_eval, gkey), (double)ts / 1000.0);
	metric_set(metric_with(m->m_interval, gkey), (double)g->interval_ms / 1000.0);
	metric_set(metric_with(m->m_rules, gkey), (double)g->n);
	arena_release(&a);
}

/* Stale markers for everything the group wrote last (a removed group). */
static void group_mark_stale(rulemgr_t *m, rgroup_t *g)
{
	arena_t a;
	arena_init(&a, 0);
	int64_t ts = clock_now_ms();
	for (size_t i = 0; i < g->n; i++) {
		outs_t o = {.a = &a};
		staleness(&g->rules[i], &o, 0, ts);
		commit(m, g, &g->rules[i], &o);
		free(o.in.v);
	}
	arena_release(&a);
}

/* ---- scheduling ---- */

static uint64_t group_hash(const rgroup_t *g)
{
	label_t l[2] = {{STR("file"), g->spec->file}, {STR("name"), g->spec->name}};
	labels_t ls = {l, 2};
	return labels_hash(&ls);
}

/* Wait until wall-clock ms t or stop; true if stopped. */
static bool sleep_until(rgroup_t *g, int64_t t_ms)
{
	pthread_mutex_lock(&g->run_mu);
	while (!g->stop) {
		int64_t now = clock_now_ms();
		if (now >= t_ms)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t wait = t_ms - now;
		ts.tv_sec += wait / 1000;
		ts.tv_nsec += (wait % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->run_cv, &g->run_mu, &ts);
	}
	bool stop = g->stop;
	pthread_mutex_unlock(&g->run_mu);
	return stop;
}

static void *group_main(void *arg)
{
	rgroup_t *g = arg;
	rulemgr_t *m = g->m;
	int64_t iv_ns = g->interval_ms * 1000000, offset = (int64_t)(group_hash(g) % (uint64_t)iv_ns);
	int64_t now = clock_now_ns(), adj = now - offset;
	int64_t eval_ns = adj - adj % iv_ns + offset + iv_ns;
	if (sleep_until(g, (eval_ns + 999999) / 1000000))
		return NULL;
	eval_group(m, g, eval_ns / 1000000);
	for (;;) {
		int64_t next = eval_ns + iv_ns;
		if (sleep_until(g, (next + 999999) / 1000000))
			return NULL;
		int64_t missed = (clock_now_ns() - eval_ns) / iv_ns - 1;
		if (missed > 0)
			metric_add(metric_with(m->m_missed, g->key), (double)missed);
		eval_ns += (missed + 1) * iv_ns;
		eval_group(m, g, eval_ns / 1000000);
		if (g->should_restore) {
			restore(m, g, clock_now_ms());
			g->should_restore = false;
		}
	}
}

static void group_stop(rgroup_t *g)
{
	if (!g->started)
		return;
	pthread_mutex_lock(&g->run_mu);
	g->stop = true;
	pthread_cond_signal(&g->run_cv);
	pthread_mutex_unlock(&g->run_mu);
	pthread_join(g->thr, NULL);
	g->started = false;
}

/* ---- manager ---- */

rulemgr_t *rulemgr_new(const rulemgr_opts_t *o)
{
	rulemgr_t *m = xcalloc(1, sizeof *m);
	m->o = *o;
	if (m->o.eval_interval_ms <= 0)
		m->o.eval_interval_ms = 60000;
	m->ext = hlabels_dup(o->ext);
	for (size_t i = 0; i < o->files->n; i++)
		strlist_push(&m->files, o->files->v[i]);
	m->query_url = xstrdup(o->query_url ? o->query_url : "");
	size_t ql = strlen(m->query_url);
	while (ql && m->query_url[ql - 1] == '/')
		m->query_url[--ql] = 0;
	pthread_mutex_init(&m->reload_mu, NULL);
	pthread_mutex_init(&m->mu, NULL);
	m->m_evals = metrics_counter("prometheus_rule_evaluations_total", "The total number of rule evaluations.",
	                             "strategy");
	m->m_failures = metrics_counter("prometheus_rule_evaluation_failures_total",
	                                "The total number of rule evaluation failures.", "strategy");
	m->m_warnings = metrics_counter("thanos_rule_evaluation_with_warnings_total",
	                                "The total number of rule evaluation that were successful but had warnings which can "
	                                "indicate partial error.",
	                                "strategy");
	m->m_duration = metrics_histogram("prometheus_rule_group_duration_seconds",
	                                  "The duration of rule group evaluations.", NULL, NULL, 0);
	m->m_last_duration = metrics_gauge("prometheus_rule_group_last_duration_seconds",
	                                   "The duration of the last rule group evaluation.", "rule_group");
	m->m_last_eval = metrics_gauge("prometheus_rule_group_last_evaluation_timestamp_seconds",
	                               "The timestamp of the last rule group evaluation in seconds.", "rule_group");
	m->m_interval = metrics_gauge("prometheus_rule_group_interval_seconds", "The interval of a rule group.",
	                              "rule_group");
	m->m_missed = metrics_counter("prometheus_rule_group_iterations_missed_total",
	                              "The total number of rule group evaluations missed due to slow rule group evaluation.",
	                              "rule_group");
	m->m_rules = metrics_gauge("prometheus_rule_group_rules", "The number of rules.", "rule_group");
	m->m_reload_ok = metric_with(metrics_gauge("prometheus_config_last_reload_successful",
	                                           "Whether the last configuration reload attempt was successful.", NULL));
	m->m_reload_total = metric_with(metrics_counter("thanos_rule_config_last_reload_success_timestamp_seconds_total",
	                                                "Number of successful rule configuration reloads.", NULL));
	m->m_reload_fail = metric_with(metrics_counter("thanos_rule_loaded_rules_reload_failures_total",
	                                               "Number of failed rule configuration reloads.", NULL));
	return m;
}

static ruleset_ref_t *ruleset_free(ruleset_ref_t *r)
{
	if (r) {
		rule_set_release(&r->set);
		arena_release(&r->arena);
		free(r);
	}
	return NULL;
}

int rulemgr_reload(rulemgr_t *m, err_t *err)
{
	pthread_mutex_lock(&m->reload_mu);
	ruleset_ref_t *rs = xcalloc(1, sizeof *rs);
	arena_init(&rs->arena, 0);
	strlist_t errs = {0};
	if (rulefile_load(&rs->arena, &m->files, true, &rs->set, &errs)) {
		buf_t b = BUF_INIT;
		for (size_t i = 0; i < errs.n; i++) {
			if (i)
				buf_putc(&b, '\n');
			buf_puts(&b, errs.v[i]);
		}
		err_set(err, ERR_INVALID, "%s", b.p);
		buf_release(&b);
		strlist_free(&errs);
		ruleset_free(rs);
		metric_set(m->m_reload_ok, 0);
		metric_inc(m->m_reload_fail);
		pthread_mutex_unlock(&m->reload_mu);
		return ERR_INVALID;
	}
	strlist_free(&errs);
	/* groups with the same file and name twice: the later wins (as in Prometheus's map) */
	rgroup_t **ng = xcalloc(rs->set.ngroups + 1, sizeof *ng);
	size_t nng = 0;
	for (size_t i = 0; i < rs->set.ngroups; i++) {
		rgroup_t *g = group_new(m, &rs->set.groups[i]);
		size_t j = 0;
		while (j < nng && strcmp(ng[j]->key, g->key) != 0)
			j++;
		if (j < nng) {
			group_free(ng[j]);
			ng[j] = g;
		} else {
			ng[nng++] = g;
		}
	}
	pthread_mutex_lock(&m->mu);
	rgroup_t **old = m->groups;
	size_t nold = m->ngroups;
	pthread_mutex_unlock(&m->mu);
	/* stop the old groups; copy state into their successors; removed groups go stale */
	for (size_t i = 0; i < nold; i++) {
		rgroup_t *og = old[i];
		group_stop(og);
		rgroup_t *g = NULL;
		for (size_t j = 0; j < nng && !g; j++)
			if (!strcmp(ng[j]->key, og->key))
				g = ng[j];
		if (!g) {
			group_mark_stale(m, og);
			continue;
		}
		pthread_mutex_lock(&og->mu); /* snapshots read the old group until the swap */
		g->should_restore = og->should_restore;
		g->last_eval_ms = og->last_eval_ms;
		g->eval_s = og->eval_s;
		for (size_t k = 0; k < g->n; k++) {
			rrule_t *r = &g->rules[k];
			/* the same rule: same kind, name, query and labels; matched in order of occurrence */
			for (size_t q = 0; q < og->n; q++) {
				rrule_t *orr = &og->rules[q];
				if (!orr->name || orr->spec->alert != r->spec->alert || strcmp(orr->name, r->name) ||
				    strcmp(orr->query, r->query) || !labels_eq(&orr->spec->labels, &r->spec->labels))
					continue;
				r->active = orr->active;
				memset(&orr->active, 0, sizeof orr->active);
				r->prev = orr->prev;
				memset(&orr->prev, 0, sizeof orr->prev);
				r->health = orr->health;
				r->last_error = orr->last_error;
				orr->last_error = NULL;
				r->last_eval_ms = orr->last_eval_ms;
				r->eval_s = orr->eval_s;
				r->restored = orr->restored;
				free(orr->name);
				orr->name = NULL;
				break;
			}
		}
		pthread_mutex_unlock(&og->mu);
	}
	/* series of rules that vanished from a surviving group go stale too */
	for (size_t i = 0; i < nold; i++) {
		bool survived = false;
		for (size_t j = 0; j < nng && !survived; j++)
			survived = !strcmp(ng[j]->key, old[i]->key);
		if (survived)
			group_mark_stale(m, old[i]);
	}
	pthread_mutex_lock(&m->mu);
	m->groups = ng;
	m->ngroups = nng;
	ruleset_ref_t *prev = m->cur;
	m->cur = rs;
	m->restored = true;
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < nold; i++)
		group_free(old[i]);
	free(old);
	ruleset_free(prev);
	for (size_t i = 0; i < nng; i++) {
		pthread_create(&ng[i]->thr, NULL, group_main, ng[i]);
		ng[i]->started = true;
	}
	metric_set(m->m_reload_ok, 1);
	metric_inc(m->m_reload_total);
	char ngs[32], nrs[32];
	snprintf(ngs, sizeof ngs, "%zu", nng);
	snprintf(nrs, sizeof nrs, "%zu", rs->set.nrules);
	log_info("rules loaded", "groups", ngs, "rules", nrs);
	pthread_mutex_unlock(&m->reload_mu);
	return 0;
}

void rulemgr_free(rulemgr_t *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->ngroups; i++)
		group_stop(m->groups[i]);
	for (size_t i = 0; i < m->ngroups; i++)
		group_free(m->groups[i]);
	free(m->groups);
	ruleset_free(m->cur);
	hlabels_free(&m->ext);
	strlist_free(&m->files);
	free(m->query_url);
	pthread_mutex_destroy(&m->reload_mu);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

size_t rulemgr_num_groups(rulemgr_t *m)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->ngroups;
	pthread_mutex_unlock(&m->mu);
	return n;
}

/* ---- snapshots ---- */

static labels_t arena_labels(arena_t *a, const labels_t *ls)
{
	return labels_copy(a, ls);
}

static int cmp_alert_ptr(const void *a, const void *b)
{
	return labels_cmp(&(*(ralert_t *const *)a)->ls, &(*(ralert_t *const *)b)->ls);
}

static void snap_group(arena_t *a, rgroup_t *g, rules_group_t *out)
{
	pthread_mutex_lock(&g->mu);
	memset(out, 0, sizeof *out);
	out->name = str_c(arena_strndup(a, g->spec->name.p, g->spec->name.n));
	out->file = str_c(arena_strndup(a, g->spec->file.p, g->spec->file.n));
	out->interval_s = (double)g->interval_ms / 1000.0;
	out->eval_s = g->eval_s;
	out->last_eval_ms = g->last_eval_ms;
	out->limit = g->spec->limit;
	out->strategy = g->spec->strategy == RULE_PR_WARN ? RULES_WARN : RULES_ABORT;
	out->rules = arena_calloc(a, g->n + 1, sizeof *out->rules);
	out->nrules = g->n;
	for (size_t i = 0; i < g->n; i++) {
		rrule_t *r = &g->rules[i];
		rules_rule_t *o = &out->rules[i];
		o->alert = r->spec->alert;
		o->name = str_c(arena_strndup(a, r->spec->name.p, r->spec->name.n));
		o->query = str_c(arena_strdup(a, r->query));
		o->labels = arena_labels(a, &r->spec->labels);
		o->annotations = arena_labels(a, &r->spec->annotations);
		o->for_s = (double)r->spec->for_ms / 1000.0;
		o->keep_firing_for_s = (double)r->spec->keep_firing_for_ms / 1000.0;
		o->health = r->health == H_OK ? RULES_HEALTH_OK : r->health == H_ERR ? RULES_HEALTH_ERR : RULES_HEALTH_UNKNOWN;
		o->last_error = str_c(r->last_error ? arena_strdup(a, r->last_error) : NULL);
		o->eval_s = r->eval_s;
		o->last_eval_ms = r->last_eval_ms;
		ralert_t **act = arena_calloc(a, r->active.n + 1, sizeof *act);
		size_t na = 0;
		for (size_t k = 0; k < r->active.n; k++)
			if (r->active.v[k]->state != ST_INACTIVE)
				act[na++] = r->active.v[k];
		qsort(act, na, sizeof *act, cmp_alert_ptr);
		o->alerts = arena_calloc(a, na + 1, sizeof *o->alerts);
		o->nalerts = na;
		for (size_t k = 0; k < na; k++) {
			o->alerts[k] = (rules_alert_t){.ls = arena_labels(a, &act[k]->ls),
			                               .ann = arena_labels(a, &act[k]->ann),
			                               .state = act[k]->state == ST_FIRING ? RULES_FIRING : RULES_PENDING,
			                               .active_at_ms = act[k]->active_at,
			                               .value = act[k]->value};
			if (o->alerts[k].state > o->state)
				o->state = o->alerts[k].state;
		}
	}
	pthread_mutex_unlock(&g->mu);
}

static int cmp_snap(const void *x, const void *y)
{
	const rules_group_t *a = x, *b = y;
	int c = str_cmp(a->file, b->file);
	return c ? c : str_cmp(a->name, b->name);
}

size_t rulemgr_snapshot(rulemgr_t *m, arena_t *a, rules_group_t **out)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->ngroups;
	rules_group_t *g = arena_calloc(a, n + 1, sizeof *g);
	for (size_t i = 0; i < n; i++)
		snap_group(a, m->groups[i], &g[i]);
	pthread_mutex_unlock(&m->mu);
	qsort(g, n, sizeof *g, cmp_snap);
	*out = g;
	return n;
}
