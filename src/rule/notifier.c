/*
 * notifier.c — see notifier.h. Each queued alert is one heap blob (its JSON object, built when
 * queued), so the sender only joins them into batches.
 */
#include "rule/notifier.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "promql/engine.h"
#include "net/httpcfg.h"
#include "net/httpclient.h"
#include "rule/sdconfig.h"

#define QUEUE_CAP 10000
#define MAX_BATCH 64

typedef struct am {
	char *url; /* .../api/v2/alerts */
	const httpcfg_t *http; /* its group's http_config (borrowed from groups), may be NULL */
	int64_t timeout_ms;
} am_t;

struct notifier {
	sdcfg_group_t *groups;
	size_t ngroups;
	int64_t timeout_ms;
	labels_t ext;
	strlist_t drop;
	const relabel_t *relabel;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char **q; /* ring of JSON objects */
	size_t qhead, qlen;
	am_t *ams;
	size_t nams;
	bool stopping, started;
	pthread_t thr;
	metric_t *sent, *errors, *latency;
	metric_child_t *dropped, *qdropped, *qlength;
};

static void resolve(notifier_t *n)
{
	strlist_t urls = {0};
	am_t *ams = NULL;
	size_t nams = 0;
	for (size_t i = 0; i < n->ngroups; i++) {
		err_t err = {0};
		size_t before = urls.n;
		if (sdcfg_resolve(&n->groups[i], &urls, &err))
			log_warn("alertmanager discovery: a file SD file is unreadable; its targets are skipped", "err",
			         err.msg);
		ams = xreallocarray(ams, urls.n + 1, sizeof *ams);
		for (size_t j = before; j < urls.n; j++) {
			size_t ln = strlen(urls.v[j]) + 32;
			ams[nams].url = xmalloc(ln);
			snprintf(ams[nams].url, ln, "%s/api/v2/alerts", urls.v[j]);
			ams[nams].http = n->groups[i].http;
			ams[nams].timeout_ms = n->groups[i].timeout_ms > 0 ? n->groups[i].timeout_ms : n->timeout_ms;
			nams++;
		}
	}
	strlist_free(&urls);
	pthread_mutex_lock(&n->mu);
	am_t *old = n->ams;
	size_t nold = n->nams;
	n->ams = ams;
	n->nams = nams;
	pthread_mutex_unlock(&n->mu);
	for (size_t i = 0; i < nold; i++)
		free(old[i].url);
	free(old);
}

static void send_batch(notifier_t *n, char **items, size_t cnt)
{
	buf_t body = BUF_INIT;
	buf_putc(&body, '[');
	for (size_t i = 0; i < cnt; i++) {
		if (i)
			buf_putc(&body, ',');
		buf_puts(&body, items[i]);
	}
	buf_putc(&body, ']');
	pthread_mutex_lock(&n->mu);
	size_t nams = n->nams;
	am_t *ams = xcalloc(nams + 1, sizeof *ams);
	for (size_t i = 0; i < nams; i++) {
		ams[i].url = xstrdup(n->ams[i].url);
		ams[i].http = n->ams[i].http;
		ams[i].timeout_ms = n->ams[i].timeout_ms;
	}
	pthread_mutex_unlock(&n->mu);
	httpc_req_t *reqs = xcalloc(nams + 1, sizeof *reqs);
	httpc_resp_t *resps = xcalloc(nams + 1, sizeof *resps);
	int *rcs = xcalloc(nams + 1, sizeof *rcs);
	err_t *errs = xcalloc(nams + 1, sizeof *errs);
	const char *hdr[] = {"Content-Type: application/json"};
	for (size_t i = 0; i < nams; i++) {
		reqs[i] = (httpc_req_t){.method = "POST",
		                        .url = ams[i].url,
		                        .headers = hdr,
		                        .nheaders = 1,
		                        .cfg = ams[i].http,
		                        .body = body.p,
		                        .body_len = body.n,
		                        .timeout_ms = ams[i].timeout_ms,
		                        .connect_timeout_ms = ams[i].timeout_ms};
		httpc_resp_init(&resps[i]);
	}
	uint64_t t0 = clock_mono_ns();
	if (nams)
		httpc_do_many(reqs, resps, rcs, errs, nams, 0);
	double secs = clock_since_s(t0);
	bool ok = false;
	for (size_t i = 0; i < nams; i++) {
		metric_observe(metric_with(n->latency, ams[i].url), secs);
		if (rcs[i] == 0 && resps[i].status / 100 == 2) {
			ok = true;
			metric_add(metric_with(n->sent, ams[i].url), (double)cnt);
		} else {
			metric_inc(metric_with(n->errors, ams[i].url));
			char st[32];
			snprintf(st, sizeof st, "%ld", resps[i].status);
			log_warn("sending alerts to Alertmanager failed", "alertmanager", ams[i].url, "status",
			         rcs[i] ? NULL : st, "err",
			         rcs[i] ? errs[i].msg : resps[i].body.p ? resps[i].body.p : "");
		}
		httpc_resp_release(&resps[i]);
		free(ams[i].url);
	}
	if (!ok) {
		metric_add(n->dropped, (double)cnt);
		char c[32];
		snprintf(c, sizeof c, "%zu", cnt);
		log_warn("no Alertmanager accepted the alerts; dropped", "alerts", c);
	}
	free(ams);
	free(reqs);
	free(resps);
	free(rcs);
	free(errs);
	buf_release(&body);
}

static void *sender_main(void *arg)
{
	notifier_t *n = arg;
	char *batch[MAX_BATCH];
	for (;;) {
		pthread_mutex_lock(&n->mu);
		while (!n->qlen && !n->stopping)
			pthread_cond_wait(&n->cv, &n->mu);
		if (!n->qlen && n->stopping) {
			pthread_mutex_unlock(&n->mu);
			return NULL;
		}
		size_t cnt = 0;
		while (n->qlen && cnt < MAX_BATCH) {
			batch[cnt++] = n->q[n->qhead];
			n->qhead = (n->qhead + 1) % QUEUE_CAP;
			n->qlen--;
		}
		metric_set(n->qlength, (double)n->qlen);
		pthread_mutex_unlock(&n->mu);
		send_batch(n, batch, cnt);
		for (size_t i = 0; i < cnt; i++)
			free(batch[i]);
	}
}

int notifier_new(notifier_t **out, const notifier_opts_t *o, err_t *err)
{
	notifier_t *n = xcalloc(1, sizeof *n);
	n->timeout_ms = o->send_timeout_ms > 0 ? o->send_timeout_ms : 10000;
	if (o->config && *o->config &&
	    sdcfg_parse(o->config, strlen(o->config), o->config_what ? o->config_what : "--alertmanagers.config", true,
	                &n->groups, &n->ngroups, err) != 0) {
		free(n);
		return ERR_INVALID;
	}
	size_t extra = o->urls ? o->urls->n : 0;
	n->groups = xreallocarray(n->groups, n->ngroups + extra + 1, sizeof *n->groups);
	for (size_t i = 0; i < extra; i++) {
		if (sdcfg_from_url(o->urls->v[i], &n->groups[n->ngroups], err) != 0) {
			sdcfg_free(n->groups, n->ngroups);
			free(n);
			return ERR_INVALID;
		}
		n->ngroups++;
	}
	size_t ne = o->ext ? o->ext->n : 0;
	n->ext.v = xcalloc(ne + 1, sizeof(label_t));
	for (size_t i = 0; i < ne; i++)
		n->ext.v[n->ext.n++] = (label_t){str_c(xstrndup(o->ext->v[i].name.p, o->ext->v[i].name.n)),
		                                 str_c(xstrndup(o->ext->v[i].value.p, o->ext->v[i].value.n))};
	for (size_t i = 0; o->label_drop && i < o->label_drop->n; i++)
		strlist_push(&n->drop, o->label_drop->v[i]);
	n->relabel = o->relabel;
	n->q = xcalloc(QUEUE_CAP, sizeof *n->q);
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->cv, NULL);
	n->sent = metrics_counter("thanos_alert_sender_alerts_sent_total", "Total number of alerts sent by alertmanager.",
	                          "alertmanager");
	n->errors = metrics_counter("thanos_alert_sender_errors_total",
	                            "Total number of errors while sending alerts to alertmanager.", "alertmanager");
	n->latency = metrics_histogram("thanos_alert_sender_latency_seconds",
	                               "Latency for sending alert notifications (not including dropped notifications).",
	                               "alertmanager", NULL, 0);
	n->dropped = metric_with(metrics_counter("thanos_alert_sender_alerts_dropped_total",
	                                         "Total number of alerts dropped in case of all sends to alertmanagers failed.",
	                                         NULL));
	n->qdropped = metric_with(metrics_counter("thanos_alert_queue_alerts_dropped_total",
	                                          "The number of alerts that were dropped due to the queue being full.", NULL));
	n->qlength = metric_with(metrics_gauge("thanos_alert_queue_length", "The number of alerts in the queue.", NULL));
	resolve(n);
	*out = n;
	return 0;
}

void notifier_start(notifier_t *n)
{
	pthread_create(&n->thr, NULL, sender_main, n);
	n->started = true;
}

void notifier_free(notifier_t *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->mu);
	n->stopping = true;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->mu);
	if (n->started)
		pthread_join(n->thr, NULL);
	for (size_t i = 0; i < n->qlen; i++)
		free(n->q[(n->qhead + i) % QUEUE_CAP]);
	free(n->q);
	for (size_t i = 0; i < n->nams; i++)
		free(n->ams[i].url);
	free(n->ams);
	for (size_t i = 0; i < n->ext.n; i++) {
		free((char *)n->ext.v[i].name.p);
		free((char *)n->ext.v[i].value.p);
	}
	free(n->ext.v);
	strlist_free(&n->drop);
	sdcfg_free(n->groups, n->ngroups);
	pthread_mutex_destroy(&n->mu);
	pthread_cond_destroy(&n->cv);
	free(n);
}

void notifier_refresh(notifier_t *n)
{
	resolve(n);
}

size_t notifier_num_alertmanagers(notifier_t *n)
{
	pthread_mutex_lock(&n->mu);
	size_t c = n->nams;
	pthread_mutex_unlock(&n->mu);
	return c;
}

void notifier_send(notifier_t *n, const notifier_alert_t *alerts, size_t cnt)
{
	arena_t a;
	arena_init(&a, 0);
	for (size_t i = 0; i < cnt; i++) {
		const notifier_alert_t *al = &alerts[i];
		labels_builder_t lb;
		labels_builder_init(&lb, &a, &al->labels);
		for (size_t j = 0; j < n->ext.n; j++) {
			bool found;
			labels_get(&al->labels, n->ext.v[j].name, &found);
			if (!found)
				labels_builder_set(&lb, n->ext.v[j].name, n->ext.v[j].value);
		}
		for (size_t j = 0; j < n->drop.n; j++)
			labels_builder_del(&lb, str_c(n->drop.v[j]));
		labels_t ls = labels_builder_finish(&lb);
		if (n->relabel) {
			labels_t r;
			if (!relabel_apply(n->relabel, &a, &ls, &r))
				continue;
			ls = r;
		}
		if (!ls.n)
			continue;
		buf_t b = BUF_INIT;
		buf_puts(&b, "{\"labels\":");
		promql_labels_json(&b, &ls);
		buf_puts(&b, ",\"annotations\":");
		promql_labels_json(&b, &al->annotations);
		if (al->starts_at) {
			buf_puts(&b, ",\"startsAt\":\"");
			buf_put_rfc3339_ms(&b, al->starts_at);
			buf_putc(&b, '"');
		}
		if (al->ends_at) {
			buf_puts(&b, ",\"endsAt\":\"");
			buf_put_rfc3339_ms(&b, al->ends_at);
			buf_putc(&b, '"');
		}
		buf_puts(&b, ",\"generatorURL\":");
		buf_json_str(&b, al->generator_url);
		buf_putc(&b, '}');
		pthread_mutex_lock(&n->mu);
		if (n->qlen == QUEUE_CAP) { /* drop the oldest, as Prometheus does */
			free(n->q[n->qhead]);
			n->qhead = (n->qhead + 1) % QUEUE_CAP;
			n->qlen--;
			metric_inc(n->qdropped);
		}
		n->q[(n->qhead + n->qlen) % QUEUE_CAP] = buf_detach(&b, NULL);
		n->qlen++;
		metric_set(n->qlength, (double)n->qlen);
		pthread_cond_signal(&n->cv);
		pthread_mutex_unlock(&n->mu);
	}
	arena_release(&a);
}
