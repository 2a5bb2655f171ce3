/*
 * rulefile.h — Prometheus 2.42 rule files (groups of recording and alerting rules) plus Thanos's
 * group key partial_response_strategy, parsed and validated exactly as `promtool check rules` does
 * (reference thanos.md §9; Prometheus's rulefmt): unknown fields, durations, duplicate group names,
 * record/alert/expr presence, PromQL parse errors, metric and label names, annotations and for on
 * recording rules, alert template syntax. Messages are promtool's, with line:column where promtool
 * gives them ("7:11: group \"g\", rule 2, \"A\": could not parse expression: ...").
 *
 * Everything parsed lives in the caller's arena. Thread-safe (no shared state).
 */
#ifndef STRATA_RULE_RULEFILE_H
#define STRATA_RULE_RULEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/flags.h"
#include "base/str.h"
#include "model/labels.h"

enum { RULE_PR_ABORT = 0, RULE_PR_WARN = 1 };

typedef struct rule_spec {
	bool alert;    /* alerting rule (else recording) */
	str_t name;    /* record: metric name; alert: alert name */
	str_t expr;    /* as written */
	int64_t for_ms, keep_firing_for_ms;
	labels_t labels;      /* sorted */
	labels_t annotations; /* sorted */
	int line;             /* of the rule in its file */
} rule_spec_t;

typedef struct group_spec {
	str_t name, file;
	int64_t interval_ms; /* 0: the --eval-interval default */
	int64_t limit;       /* 0: none */
	int strategy;        /* RULE_PR_* */
	rule_spec_t *rules;
	size_t nrules;
} group_spec_t;

typedef struct rule_set {
	group_spec_t *groups;
	size_t ngroups;
	size_t nrules;
	strlist_t files; /* the files read (glob results), in order */
} rule_set_t;

/* Parse one file's content. thanos: accept partial_response_strategy (else it is an unknown field,
 * as promtool says). Every problem found is appended to errs as promtool prints it (without the file
 * name); returns the number appended. Groups are appended to *set only when there is none. */
size_t rulefile_parse(arena_t *a, const char *file, const char *data, size_t len, bool thanos, rule_set_t *set,
                      strlist_t *errs);

/* Expand the globs (sorted, each file once; a glob matching nothing adds nothing), read and parse
 * every file. Errors are "<file>: <message>" lines in errs; returns their count (0 = set is good). */
size_t rulefile_load(arena_t *a, const strlist_t *globs, bool thanos, rule_set_t *set, strlist_t *errs);
void rule_set_release(rule_set_t *set); /* the files list; the rest is in the arena */

/* Recording rules with the same name and labels in one file (promtool's duplicate-rule lint): their
 * count, each name appended to names. */
size_t rulefile_duplicates(const rule_set_t *set, strlist_t *names);

#endif
