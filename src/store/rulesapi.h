/*
 * rulesapi.h — rule groups as the Rules API carries them: what a ruler serves (thanos.Rules/Rules,
 * reference thanos.md §2.7) and what a querier gathers from rulers and serves as Prometheus's
 * /api/v1/rules and /api/v1/alerts (prometheus.md §5.2). Shared by `strata rule` (server side) and
 * `strata query` (client side), so both print exactly the same JSON.
 *
 *   rules_json / rules_alerts_json    Prometheus 2.42's JSON (keys in its order, Go's float and time
 *                                     formatting), plus Thanos's partialResponseStrategy per group
 *   rules_group_pack / rules_response_unpack   one thanos.RulesResponse message each way
 *   rules_fetch                       call Rules on one endpoint and collect its groups
 *   rules_dedup                       groups of HA rulers merged as Thanos's querier does: replica
 *                                     labels removed from rule and alert labels, the same group
 *                                     (file, name) once, the same rule once (its most advanced state,
 *                                     then its latest evaluation), alerts deduplicated by labels
 *
 * Everything lives in caller-provided arenas. Thread-safe (no shared state).
 */
#ifndef STRATA_STORE_RULESAPI_H
#define STRATA_STORE_RULESAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/labels.h"

enum { RULES_INACTIVE = 0, RULES_PENDING = 1, RULES_FIRING = 2 };
enum { RULES_HEALTH_UNKNOWN = 0, RULES_HEALTH_OK = 1, RULES_HEALTH_ERR = 2 };
enum { RULES_ALL = 0, RULES_ALERT = 1, RULES_RECORD = 2 };
enum { RULES_ABORT = 0, RULES_WARN = 1 };

typedef struct rules_alert {
	labels_t ls, ann;
	int state;
	int64_t active_at_ms;
	double value;
} rules_alert_t;

typedef struct rules_rule {
	bool alert;
	str_t name, query, last_error;
	labels_t labels, annotations;
	double for_s, keep_firing_for_s, eval_s;
	int state, health;
	int64_t last_eval_ms; /* 0 = never */
	rules_alert_t *alerts; /* pending and firing ones, sorted by labels */
	size_t nalerts;
} rules_rule_t;

typedef struct rules_group {
	str_t name, file;
	rules_rule_t *rules;
	size_t nrules;
	double interval_s, eval_s;
	int64_t last_eval_ms, limit;
	int strategy;
} rules_group_t;

/* {"groups":[...]} keeping only rules of the type; groups left without rules are kept (as Prometheus). */
void rules_json(buf_t *out, const rules_group_t *g, size_t n, int type);
/* {"alerts":[...]}: every pending or firing alert. */
void rules_alerts_json(buf_t *out, const rules_group_t *g, size_t n);

/* A RulesResponse{group} for g, with ext added to every rule's and alert's labels (Thanos's ruler
 * does so, which lets a querier deduplicate replicas). */
void rules_group_pack(buf_t *out, const rules_group_t *g, const labels_t *ext);
/* RulesRequest: its type (RULES_*). */
int rules_request_unpack(str_t msg, int *type, err_t *err);
/* RulesResponse into either *g (returns 1) or *warning (returns 2); <0 on malformed input. */
int rules_response_unpack(arena_t *a, str_t msg, rules_group_t *g, char **warning, err_t *err);

/* Rules on address ("host:port") within timeout_ms; groups (and warnings) appended to the arrays. */
typedef struct rules_set {
	rules_group_t *v;
	size_t n, cap;
	char **warnings;
	size_t nwarnings, capw;
} rules_set_t;
int rules_fetch(const char *address, int type, int64_t timeout_ms, arena_t *a, rules_set_t *set, err_t *err);
void rules_dedup(arena_t *a, rules_set_t *set, const char *const *replica_labels, size_t nreplica);

#endif
