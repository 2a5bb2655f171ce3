/*
 * manager.h — the ruler's rule groups: loading and reloading rule files, evaluating every group on
 * its own thread as Prometheus 2.42 does, storing results in a local TSDB, sending alerts.
 *
 * Evaluation (Prometheus's rules manager):
 *   - a group runs every interval (its own or --eval-interval) at a fixed offset inside the
 *     interval, hash(file, name) modulo the interval, so every ruler (and Prometheus) given the same
 *     file path and group name evaluates at the same instants; a missed tick is skipped, not caught up;
 *   - rules run in order, each an instant query at the group's timestamp through the querier
 *     (queryapi.h; partial_response per the group's strategy: abort = false, warn = true with
 *     warnings counted); a recording rule's samples are appended before the next rule runs;
 *     rules that neither read what another rule of the group writes nor write what it reads
 *     (ruledeps.h) run at the same time, up to max_concurrent_evals of them, which gives the
 *     results of the sequential order;
 *   - recording rules: __name__ replaced, rule labels set; a result with two equal label sets or
 *     more series than the group's limit is an error;
 *   - alerting rules: the pending -> firing -> inactive state machine with for and keep_firing_for,
 *     labels and annotations expanded with tmpl.h, ALERTS{alertstate} and ALERTS_FOR_STATE samples
 *     (once restored), resolved alerts kept for 15m and sent with endsAt; alerts are sent when they
 *     fire, when resolved, and every --resend-delay, valid until 4 x max(resend delay, interval);
 *   - series a rule produced in the previous evaluation but not in this one get a stale marker;
 *   - after a start, a group's alerting rules get their `for` state back from ALERTS_FOR_STATE in
 *     the local TSDB (within --for-outage-tolerance, at least --for-grace-period left) after the
 *     group's second evaluation, as Prometheus restores it;
 *   - errors (querier down, bad results) mark the rule's health "err" with lastError and count in
 *     prometheus_rule_evaluation_failures_total; they never stop the group.
 * Reload: the files are parsed and validated (rulefile.h) first; on any error the running groups
 * stay as they are. Otherwise groups with the same file and name keep their state (active alerts,
 * series for staleness) and groups that disappeared write stale markers for their series.
 *
 * Thread-safe: reload, the JSON views and free from any thread (one reload at a time).
 */
#ifndef STRATA_RULE_MANAGER_H
#define STRATA_RULE_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/flags.h"
#include "model/labels.h"
#include "rule/notifier.h"
#include "rule/queryapi.h"
#include "rule/rulefile.h"
#include "store/rulesapi.h"
#include "tsdb/db.h"

typedef struct rulemgr rulemgr_t;

typedef struct rulemgr_opts {
	db_t *db;              /* results (borrowed) */
	qapi_t *query;         /* borrowed */
	notifier_t *notifier;  /* borrowed; NULL: alerts are not sent */
	const labels_t *ext;   /* --label (copied) */
	const strlist_t *files; /* --rule-file globs (copied) */
	int64_t eval_interval_ms, resend_delay_ms, outage_tolerance_ms, grace_period_ms;
	const char *query_url; /* --alert.query-url: generatorURL base and $externalURL */
	int max_concurrent_evals; /* rules of a group evaluated at once when independent; <= 1: in order */
} rulemgr_opts_t;

rulemgr_t *rulemgr_new(const rulemgr_opts_t *o);
/* Stop every group (an evaluation in progress finishes) and free. */
void rulemgr_free(rulemgr_t *m);
/* (Re)load the rule files; on error (every problem in err, one per line) the old rules keep running. */
int rulemgr_reload(rulemgr_t *m, err_t *err);

/* A copy of every group's state (rules, health, active alerts sorted by labels), groups sorted by
 * file and name, in a. Never waits for a reload or an evaluation in progress. */
size_t rulemgr_snapshot(rulemgr_t *m, arena_t *a, rules_group_t **out);

size_t rulemgr_num_groups(rulemgr_t *m);

#endif
