/*
 * notifier.h — sends alerts to Alertmanager's v2 API (POST <am>/api/v2/alerts, a JSON array of
 * {labels, annotations, startsAt, endsAt, generatorURL}) as Prometheus's notifier and Thanos's
 * alert sender do (reference thanos.md §9):
 *   - alerts are queued (capacity 10,000; the oldest are dropped beyond it) and sent in batches of
 *     at most 64 by one background thread;
 *   - before queueing, external labels are added (an alert's own label of the same name wins),
 *     --alert.label-drop names are removed, then --alert.relabel-config applies (an alert it drops
 *     is not sent);
 *   - every configured Alertmanager (one HA group: --alertmanagers.url and the static and file SD
 *     targets of --alertmanagers.config) gets each batch concurrently; the batch counts as delivered
 *     if any of them accepts it (2xx), otherwise its alerts are dropped and counted.
 * Metrics: thanos_alert_sender_alerts_sent_total{alertmanager}, thanos_alert_sender_errors_total
 * {alertmanager}, thanos_alert_sender_alerts_dropped_total, thanos_alert_queue_alerts_dropped_total,
 * thanos_alert_sender_latency_seconds{alertmanager}, thanos_alert_queue_length.
 * Thread-safe.
 */
#ifndef STRATA_RULE_NOTIFIER_H
#define STRATA_RULE_NOTIFIER_H

#include <stdint.h>

#include "base/err.h"
#include "base/flags.h"
#include "model/labels.h"
#include "model/relabel.h"

typedef struct notifier notifier_t;

typedef struct notifier_alert {
	labels_t labels, annotations;
	int64_t starts_at, ends_at; /* ms; 0 = not set */
	str_t generator_url;
} notifier_alert_t;

typedef struct notifier_opts {
	const strlist_t *urls;   /* --alertmanagers.url */
	const char *config;      /* --alertmanagers.config YAML content, may be NULL */
	const char *config_what;
	int64_t send_timeout_ms; /* default per Alertmanager unless its config sets timeout; 0 = 10s */
	const labels_t *ext;     /* external labels (sorted) */
	const strlist_t *label_drop;
	const relabel_t *relabel; /* borrowed, may be NULL */
} notifier_opts_t;

/* Parses the configuration (ERR_INVALID naming what is wrong) and resolves the targets; nothing is
 * sent before notifier_start (which starts the sender thread). */
int notifier_new(notifier_t **out, const notifier_opts_t *o, err_t *err);
void notifier_start(notifier_t *n);
/* Send what is queued (for at most the send timeout), stop the thread, free. */
void notifier_free(notifier_t *n);
/* Queue alerts (copied). */
void notifier_send(notifier_t *n, const notifier_alert_t *a, size_t cnt);
/* Reread file SD targets. */
void notifier_refresh(notifier_t *n);
size_t notifier_num_alertmanagers(notifier_t *n);

#endif
