/*
 * rulesapi.c — see rulesapi.h.
 */
#include "store/rulesapi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fmt.h"
#include "promql/engine.h"
#include "net/grpc_client.h"
#include "rules.pb-c.h"

/* ---- JSON ---- */

/* Go encoding/json float64. */
static void json_float(buf_t *b, double v)
{
	double av = fabs(v);
	if (av != 0 && (av < 1e-6 || av >= 1e21)) {
		buf_t t = BUF_INIT;
		buf_put_float(&t, v, 'e');
		char *e = strstr(t.p, "e-0");
		if (e && e[3]) { /* Go writes e-07 as e-7 */
			memmove(e + 2, e + 3, strlen(e + 3) + 1);
			t.n--;
		}
		buf_append(b, t.p, t.n);
		buf_release(&t);
	} else {
		buf_put_float(b, v, 'f');
	}
}

/* Go's time.Time in JSON; the zero time for 0. */
static void json_time(buf_t *b, int64_t ms)
{
	buf_putc(b, '"');
	if (!ms)
		buf_puts(b, "0001-01-01T00:00:00Z");
	else
		buf_put_rfc3339_ms(b, ms);
	buf_putc(b, '"');
}

static const char *state_str(int s)
{
	return s == RULES_FIRING ? "firing" : s == RULES_PENDING ? "pending" : "inactive";
}

static void json_alert(buf_t *b, const rules_alert_t *al)
{
	buf_puts(b, "{\"labels\":");
	promql_labels_json(b, &al->ls);
	buf_puts(b, ",\"annotations\":");
	promql_labels_json(b, &al->ann);
	buf_printf(b, ",\"state\":\"%s\",\"activeAt\":", state_str(al->state));
	json_time(b, al->active_at_ms);
	buf_puts(b, ",\"value\":\"");
	buf_put_float(b, al->value, 'e');
	buf_puts(b, "\"}");
}

static void json_rule(buf_t *b, const rules_rule_t *r)
{
	if (r->alert) {
		buf_printf(b, "{\"state\":\"%s\",\"name\":", state_str(r->state));
		buf_json_str(b, r->name);
		buf_puts(b, ",\"query\":");
		buf_json_str(b, r->query);
		buf_puts(b, ",\"duration\":");
		json_float(b, r->for_s);
		buf_puts(b, ",\"keepFiringFor\":");
		json_float(b, r->keep_firing_for_s);
		buf_puts(b, ",\"labels\":");
		promql_labels_json(b, &r->labels);
		buf_puts(b, ",\"annotations\":");
		promql_labels_json(b, &r->annotations);
		buf_puts(b, ",\"alerts\":[");
		for (size_t k = 0; k < r->nalerts; k++) {
			if (k)
				buf_putc(b, ',');
			json_alert(b, &r->alerts[k]);
		}
		buf_putc(b, ']');
	} else {
		buf_puts(b, "{\"name\":");
		buf_json_str(b, r->name);
		buf_puts(b, ",\"query\":");
		buf_json_str(b, r->query);
		if (r->labels.n) {
			buf_puts(b, ",\"labels\":");
			promql_labels_json(b, &r->labels);
		}
	}
	buf_printf(b, ",\"health\":\"%s\"",
	           r->health == RULES_HEALTH_OK ? "ok" : r->health == RULES_HEALTH_ERR ? "err" : "unknown");
	if (r->last_error.n) {
		buf_puts(b, ",\"lastError\":");
		buf_json_str(b, r->last_error);
	}
	buf_puts(b, ",\"evaluationTime\":");
	json_float(b, r->eval_s);
	buf_puts(b, ",\"lastEvaluation\":");
	json_time(b, r->last_eval_ms);
	buf_printf(b, ",\"type\":\"%s\"}", r->alert ? "alerting" : "recording");
}

void rules_json(buf_t *out, const rules_group_t *gs, size_t n, int type)
{
	buf_puts(out, "{\"groups\":[");
	for (size_t i = 0; i < n; i++) {
		const rules_group_t *g = &gs[i];
		if (i)
			buf_putc(out, ',');
		buf_puts(out, "{\"name\":");
		buf_json_str(out, g->name);
		buf_puts(out, ",\"file\":");
		buf_json_str(out, g->file);
		buf_puts(out, ",\"rules\":[");
		bool first = true;
		for (size_t k = 0; k < g->nrules; k++) {
			const rules_rule_t *r = &g->rules[k];
			if ((type == RULES_ALERT && !r->alert) || (type == RULES_RECORD && r->alert))
				continue;
			if (!first)
				buf_putc(out, ',');
			first = false;
			json_rule(out, r);
		}
		buf_puts(out, "],\"interval\":");
		json_float(out, g->interval_s);
		buf_printf(out, ",\"limit\":%lld,\"evaluationTime\":", (long long)g->limit);
		json_float(out, g->eval_s);
		buf_puts(out, ",\"lastEvaluation\":");
		json_time(out, g->last_eval_ms);
		buf_printf(out, ",\"partialResponseStrategy\":\"%s\"}", g->strategy == RULES_WARN ? "WARN" : "ABORT");
	}
	buf_puts(out, "]}");
}

void rules_alerts_json(buf_t *out, const rules_group_t *gs, size_t n)
{
	buf_puts(out, "{\"alerts\":[");
	bool first = true;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < gs[i].nrules; k++)
			for (size_t j = 0; j < gs[i].rules[k].nalerts; j++) {
				if (!first)
					buf_putc(out, ',');
				first = false;
				json_alert(out, &gs[i].rules[k].alerts[j]);
			}
	buf_puts(out, "]}");
}

/* ---- protobuf ---- */

static Thanos__ZLabelSet *pack_labels(arena_t *a, const labels_t *ls, const labels_t *ext)
{
	Thanos__ZLabelSet *z = ARENA_NEW(a, Thanos__ZLabelSet);
	thanos__zlabel_set__init(z);
	labels_t m = *ls;
	if (ext && ext->n) {
		labels_builder_t lb;
		labels_builder_init(&lb, a, ls);
		for (size_t i = 0; i < ext->n; i++)
			labels_builder_set(&lb, ext->v[i].name, ext->v[i].value);
		m = labels_builder_finish(&lb);
	}
	z->n_labels = m.n;
	z->labels = ARENA_NEW_ARRAY(a, Thanos__Label *, m.n ? m.n : 1);
	for (size_t i = 0; i < m.n; i++) {
		Thanos__Label *l = ARENA_NEW(a, Thanos__Label);
		thanos__label__init(l);
		l->name = arena_strndup(a, m.v[i].name.p, m.v[i].name.n);
		l->value = arena_strndup(a, m.v[i].value.p, m.v[i].value.n);
		z->labels[i] = l;
	}
	return z;
}

static Thanos__RulesTimestamp *pack_time(arena_t *a, int64_t ms)
{
	if (!ms)
		return NULL;
	Thanos__RulesTimestamp *t = ARENA_NEW(a, Thanos__RulesTimestamp);
	thanos__rules_timestamp__init(t);
	int64_t s = ms / 1000, r = ms % 1000;
	if (r < 0) {
		r += 1000;
		s--;
	}
	t->seconds = s;
	t->nanos = (int32_t)(r * 1000000);
	return t;
}

static Thanos__AlertState pack_state(int s)
{
	return s == RULES_FIRING ? THANOS__ALERT_STATE__FIRING
	       : s == RULES_PENDING ? THANOS__ALERT_STATE__PENDING
	                            : THANOS__ALERT_STATE__INACTIVE;
}

static char *cs(arena_t *a, str_t s)
{
	return arena_strndup(a, s.p ? s.p : "", s.n);
}

static const char *health_str(int h)
{
	return h == RULES_HEALTH_OK ? "ok" : h == RULES_HEALTH_ERR ? "err" : "unknown";
}

void rules_group_pack(buf_t *out, const rules_group_t *g, const labels_t *ext)
{
	arena_t a;
	arena_init(&a, 0);
	Thanos__PartialResponseStrategy prs =
	    g->strategy == RULES_WARN ? THANOS__PARTIAL_RESPONSE_STRATEGY__WARN : THANOS__PARTIAL_RESPONSE_STRATEGY__ABORT;
	Thanos__RuleGroup *rg = ARENA_NEW(&a, Thanos__RuleGroup);
	thanos__rule_group__init(rg);
	rg->name = cs(&a, g->name);
	rg->file = cs(&a, g->file);
	rg->interval = g->interval_s;
	rg->evaluation_duration_seconds = g->eval_s;
	rg->last_evaluation = pack_time(&a, g->last_eval_ms);
	rg->partialresponsestrategy = prs;
	rg->limit = g->limit;
	rg->n_rules = g->nrules;
	rg->rules = ARENA_NEW_ARRAY(&a, Thanos__Rule *, g->nrules ? g->nrules : 1);
	for (size_t i = 0; i < g->nrules; i++) {
		const rules_rule_t *r = &g->rules[i];
		Thanos__Rule *pr = ARENA_NEW(&a, Thanos__Rule);
		thanos__rule__init(pr);
		if (r->alert) {
			Thanos__Alert *al = ARENA_NEW(&a, Thanos__Alert);
			thanos__alert__init(al);
			al->state = pack_state(r->state);
			al->name = cs(&a, r->name);
			al->query = cs(&a, r->query);
			al->duration_seconds = r->for_s;
			al->keep_firing_for_seconds = r->keep_firing_for_s;
			al->labels = pack_labels(&a, &r->labels, ext);
			al->annotations = pack_labels(&a, &r->annotations, NULL);
			al->health = (char *)health_str(r->health);
			al->last_error = cs(&a, r->last_error);
			al->evaluation_duration_seconds = r->eval_s;
			al->last_evaluation = pack_time(&a, r->last_eval_ms);
			al->n_alerts = r->nalerts;
			al->alerts = ARENA_NEW_ARRAY(&a, Thanos__AlertInstance *, r->nalerts ? r->nalerts : 1);
			for (size_t k = 0; k < r->nalerts; k++) {
				Thanos__AlertInstance *ai = ARENA_NEW(&a, Thanos__AlertInstance);
				thanos__alert_instance__init(ai);
				ai->labels = pack_labels(&a, &r->alerts[k].ls, ext);
				ai->annotations = pack_labels(&a, &r->alerts[k].ann, NULL);
				ai->state = pack_state(r->alerts[k].state);
				ai->active_at = pack_time(&a, r->alerts[k].active_at_ms);
				buf_t v = BUF_INIT;
				buf_put_float(&v, r->alerts[k].value, 'e');
				ai->value = arena_strndup(&a, v.p, v.n);
				buf_release(&v);
				ai->partialresponsestrategy = prs;
				al->alerts[k] = ai;
			}
			pr->result_case = THANOS__RULE__RESULT_ALERT;
			pr->alert = al;
		} else {
			Thanos__RecordingRule *rr = ARENA_NEW(&a, Thanos__RecordingRule);
			thanos__recording_rule__init(rr);
			rr->name = cs(&a, r->name);
			rr->query = cs(&a, r->query);
			rr->labels = pack_labels(&a, &r->labels, ext);
			rr->health = (char *)health_str(r->health);
			rr->last_error = cs(&a, r->last_error);
			rr->evaluation_duration_seconds = r->eval_s;
			rr->last_evaluation = pack_time(&a, r->last_eval_ms);
			pr->result_case = THANOS__RULE__RESULT_RECORDING;
			pr->recording = rr;
		}
		rg->rules[i] = pr;
	}
	Thanos__RulesResponse resp = THANOS__RULES_RESPONSE__INIT;
	resp.result_case = THANOS__RULES_RESPONSE__RESULT_GROUP;
	resp.group = rg;
	size_t len = thanos__rules_response__get_packed_size(&resp);
	buf_reserve(out, len);
	thanos__rules_response__pack(&resp, (uint8_t *)out->p + out->n);
	out->n += len;
	arena_release(&a);
}

int rules_request_unpack(str_t msg, int *type, err_t *err)
{
	Thanos__RulesRequest *req = thanos__rules_request__unpack(NULL, msg.n, (const uint8_t *)msg.p);
	if (!req)
		return err_set(err, ERR_INVALID, "malformed RulesRequest");
	*type = req->type == THANOS__RULES_REQUEST__TYPE__ALERT    ? RULES_ALERT
	        : req->type == THANOS__RULES_REQUEST__TYPE__RECORD ? RULES_RECORD
	                                                           : RULES_ALL;
	thanos__rules_request__free_unpacked(req, NULL);
	return 0;
}

static labels_t unpack_labels(arena_t *a, const Thanos__ZLabelSet *z)
{
	labels_t ls = {0};
	if (!z)
		return ls;
	ls.v = arena_calloc(a, z->n_labels + 1, sizeof(label_t));
	for (size_t i = 0; i < z->n_labels; i++)
		ls.v[ls.n++] = (label_t){str_c(arena_strdup(a, z->labels[i]->name ? z->labels[i]->name : "")),
		                         str_c(arena_strdup(a, z->labels[i]->value ? z->labels[i]->value : ""))};
	labels_normalize(&ls);
	return ls;
}

static int64_t unpack_time(const Thanos__RulesTimestamp *t)
{
	return t ? t->seconds * 1000 + t->nanos / 1000000 : 0;
}

static int unpack_state(Thanos__AlertState s)
{
	return s == THANOS__ALERT_STATE__FIRING ? RULES_FIRING : s == THANOS__ALERT_STATE__PENDING ? RULES_PENDING : RULES_INACTIVE;
}

static int unpack_health(const char *h)
{
	return h && !strcmp(h, "ok") ? RULES_HEALTH_OK : h && !strcmp(h, "err") ? RULES_HEALTH_ERR : RULES_HEALTH_UNKNOWN;
}

static str_t dup(arena_t *a, const char *s)
{
	return str_c(arena_strdup(a, s ? s : ""));
}

int rules_response_unpack(arena_t *a, str_t msg, rules_group_t *g, char **warning, err_t *err)
{
	Thanos__RulesResponse *resp = thanos__rules_response__unpack(NULL, msg.n, (const uint8_t *)msg.p);
	if (!resp)
		return err_set(err, ERR_CORRUPT, "malformed RulesResponse");
	int rc = 0;
	if (resp->result_case == THANOS__RULES_RESPONSE__RESULT_WARNING) {
		*warning = arena_strdup(a, resp->warning ? resp->warning : "");
		rc = 2;
	} else if (resp->result_case == THANOS__RULES_RESPONSE__RESULT_GROUP && resp->group) {
		const Thanos__RuleGroup *rg = resp->group;
		memset(g, 0, sizeof *g);
		g->name = dup(a, rg->name);
		g->file = dup(a, rg->file);
		g->interval_s = rg->interval;
		g->eval_s = rg->evaluation_duration_seconds;
		g->last_eval_ms = unpack_time(rg->last_evaluation);
		g->limit = rg->limit;
		g->strategy = rg->partialresponsestrategy == THANOS__PARTIAL_RESPONSE_STRATEGY__WARN ? RULES_WARN : RULES_ABORT;
		g->rules = arena_calloc(a, rg->n_rules + 1, sizeof *g->rules);
		for (size_t i = 0; i < rg->n_rules; i++) {
			const Thanos__Rule *pr = rg->rules[i];
			rules_rule_t *r = &g->rules[g->nrules];
			if (pr->result_case == THANOS__RULE__RESULT_ALERT && pr->alert) {
				const Thanos__Alert *al = pr->alert;
				r->alert = true;
				r->state = unpack_state(al->state);
				r->name = dup(a, al->name);
				r->query = dup(a, al->query);
				r->for_s = al->duration_seconds;
				r->keep_firing_for_s = al->keep_firing_for_seconds;
				r->labels = unpack_labels(a, al->labels);
				r->annotations = unpack_labels(a, al->annotations);
				r->health = unpack_health(al->health);
				r->last_error = dup(a, al->last_error);
				r->eval_s = al->evaluation_duration_seconds;
				r->last_eval_ms = unpack_time(al->last_evaluation);
				r->alerts = arena_calloc(a, al->n_alerts + 1, sizeof *r->alerts);
				for (size_t k = 0; k < al->n_alerts; k++) {
					const Thanos__AlertInstance *ai = al->alerts[k];
					rules_alert_t *x = &r->alerts[r->nalerts++];
					x->ls = unpack_labels(a, ai->labels);
					x->ann = unpack_labels(a, ai->annotations);
					x->state = unpack_state(ai->state);
					x->active_at_ms = unpack_time(ai->active_at);
					x->value = ai->value ? strtod(ai->value, NULL) : 0;
				}
			} else if (pr->result_case == THANOS__RULE__RESULT_RECORDING && pr->recording) {
				const Thanos__RecordingRule *rr = pr->recording;
				r->name = dup(a, rr->name);
				r->query = dup(a, rr->query);
				r->labels = unpack_labels(a, rr->labels);
				r->health = unpack_health(rr->health);
				r->last_error = dup(a, rr->last_error);
				r->eval_s = rr->evaluation_duration_seconds;
				r->last_eval_ms = unpack_time(rr->last_evaluation);
			} else {
				continue;
			}
			g->nrules++;
		}
		rc = 1;
	} else {
		rc = err_set(err, ERR_CORRUPT, "RulesResponse with neither group nor warning");
	}
	thanos__rules_response__free_unpacked(resp, NULL);
	return rc;
}

int rules_fetch(const char *address, int type, int64_t timeout_ms, arena_t *a, rules_set_t *set, err_t *err)
{
	grpc_channel_t *ch;
	if (grpc_channel_new(&ch, NULL, address, NULL, err))
		return -1;
	Thanos__RulesRequest req = THANOS__RULES_REQUEST__INIT;
	req.type = type == RULES_ALERT    ? THANOS__RULES_REQUEST__TYPE__ALERT
	           : type == RULES_RECORD ? THANOS__RULES_REQUEST__TYPE__RECORD
	                                  : THANOS__RULES_REQUEST__TYPE__ALL;
	uint8_t buf[64];
	size_t len = thanos__rules_request__pack(&req, buf);
	grpc_stream_t *st = grpc_channel_call(ch, "/thanos.Rules/Rules", buf, len, timeout_ms);
	const uint8_t *msg;
	size_t mlen;
	int rc;
	while ((rc = grpc_stream_recv(st, &msg, &mlen, err)) == 1) {
		rules_group_t g;
		char *w = NULL;
		int r = rules_response_unpack(a, str_from((const char *)msg, mlen), &g, &w, err);
		if (r < 0) {
			rc = r;
			break;
		}
		if (r == 1) {
			if (set->n == set->cap) {
				size_t nc = set->cap ? set->cap * 2 : 16;
				set->v = arena_realloc(a, set->v, set->cap * sizeof *set->v, nc * sizeof *set->v);
				set->cap = nc;
			}
			set->v[set->n++] = g;
		} else {
			if (set->nwarnings == set->capw) {
				size_t nc = set->capw ? set->capw * 2 : 8;
				set->warnings = arena_realloc(a, set->warnings, set->capw * sizeof(char *), nc * sizeof(char *));
				set->capw = nc;
			}
			set->warnings[set->nwarnings++] = w;
		}
	}
	grpc_stream_free(st);
	grpc_channel_free(ch);
	return rc < 0 ? rc : 0;
}

/* ---- dedup ---- */

static labels_t without(arena_t *a, const labels_t *ls, const char *const *rl, size_t nrl)
{
	labels_builder_t lb;
	labels_builder_init(&lb, a, ls);
	for (size_t i = 0; i < nrl; i++)
		labels_builder_del(&lb, str_c(rl[i]));
	return labels_builder_finish(&lb);
}

static int cmp_group(const void *x, const void *y)
{
	const rules_group_t *a = x, *b = y;
	int c = str_cmp(a->file, b->file);
	return c ? c : str_cmp(a->name, b->name);
}

static int cmp_alert(const void *x, const void *y)
{
	return labels_cmp(&((const rules_alert_t *)x)->ls, &((const rules_alert_t *)y)->ls);
}

static bool same_rule(const rules_rule_t *a, const rules_rule_t *b)
{
	return a->alert == b->alert && str_eq(a->name, b->name) && str_eq(a->query, b->query) &&
	       labels_eq(&a->labels, &b->labels);
}

void rules_dedup(arena_t *a, rules_set_t *set, const char *const *rl, size_t nrl)
{
	for (size_t i = 0; i < set->n; i++)
		for (size_t k = 0; k < set->v[i].nrules; k++) {
			rules_rule_t *r = &set->v[i].rules[k];
			r->labels = without(a, &r->labels, rl, nrl);
			for (size_t j = 0; j < r->nalerts; j++)
				r->alerts[j].ls = without(a, &r->alerts[j].ls, rl, nrl);
		}
	qsort(set->v, set->n, sizeof *set->v, cmp_group);
	size_t out = 0;
	for (size_t i = 0; i < set->n; i++) {
		rules_group_t *g = &set->v[i];
		if (out && !cmp_group(&set->v[out - 1], g)) {
			rules_group_t *keep = &set->v[out - 1];
			/* merge: each rule of g either improves its twin in keep or is added */
			rules_rule_t *m = arena_calloc(a, keep->nrules + g->nrules + 1, sizeof *m);
			if (keep->nrules)
				memcpy(m, keep->rules, keep->nrules * sizeof *m);
			size_t nm = keep->nrules;
			for (size_t k = 0; k < g->nrules; k++) {
				rules_rule_t *r = &g->rules[k];
				size_t j = 0;
				while (j < nm && !same_rule(&m[j], r))
					j++;
				if (j == nm) {
					m[nm++] = *r;
					continue;
				}
				rules_rule_t *t = &m[j];
				/* alerts: the union by labels, the more advanced state of a pair */
				rules_alert_t *al = arena_calloc(a, t->nalerts + r->nalerts + 1, sizeof *al);
				if (t->nalerts)
					memcpy(al, t->alerts, t->nalerts * sizeof *al);
				size_t na = t->nalerts;
				for (size_t q = 0; q < r->nalerts; q++) {
					size_t z = 0;
					while (z < na && !labels_eq(&al[z].ls, &r->alerts[q].ls))
						z++;
					if (z == na)
						al[na++] = r->alerts[q];
					else if (r->alerts[q].state > al[z].state)
						al[z] = r->alerts[q];
				}
				qsort(al, na, sizeof *al, cmp_alert);
				if (r->state > t->state || (r->state == t->state && r->last_eval_ms > t->last_eval_ms)) {
					rules_alert_t *keep_al = al;
					*t = *r;
					t->alerts = keep_al;
				} else {
					t->alerts = al;
				}
				t->nalerts = na;
				if (t->state < r->state)
					t->state = r->state;
			}
			keep->rules = m;
			keep->nrules = nm;
			if (g->last_eval_ms > keep->last_eval_ms) {
				keep->last_eval_ms = g->last_eval_ms;
				keep->eval_s = g->eval_s;
			}
			continue;
		}
		set->v[out++] = *g;
	}
	set->n = out;
}
