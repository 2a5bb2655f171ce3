/*
 * tmpl.h — Prometheus's alert templates: the part of Go's text/template that rule files use, with
 * Prometheus's template functions (reference prometheus.md; behaviour of Prometheus 2.42's
 * template package).
 *
 * Language: text and {{actions}} with {{- -}} trimming and comments; pipelines with '|';
 * variables ($x := ..., $x = ..., $ the root); fields (.Labels.job, $labels.job, .Value); string
 * (interpreted and raw), number, bool and nil literals; parenthesised pipelines; if / else if / else,
 * with / else, range (over maps in key order and query results, with $i, $v :=) ... end.
 * Values are Go's kinds as Prometheus gives them: labels are map[string]string (a missing key is
 * ""), $value is float64, literals are int or float64 as Go decides (80 is int, 80.0 float64), so
 * `gt $value 80` fails as in Prometheus ("incompatible types for comparison").
 * Functions: Go's and, or, not, len, index, print, printf, println, html, js, urlquery, eq, ne, lt,
 * le, gt, ge; Prometheus's query, first, label, value, strvalue, sortByLabel, humanize,
 * humanize1024, humanizeDuration, humanizePercentage, humanizeTimestamp, title, toUpper, toLower,
 * match, reReplaceAll, safeHtml, stripPort, stripDomain, args, graphLink, tableLink, pathPrefix,
 * externalURL, parseDuration.
 *
 * Errors read like Go's ("template: NAME:LINE: function \"x\" not defined" when parsing,
 * "template: NAME:LINE:COL: executing \"NAME\" at <...>: error calling humanize: ..." when running).
 * A parsed template is immutable (arena-owned); expansion is thread-safe.
 */
#ifndef STRATA_RULE_TMPL_H
#define STRATA_RULE_TMPL_H

#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "model/labels.h"

typedef struct tmpl tmpl_t;

/* One element of a `query` result: labels (with __name__) and value. */
typedef struct tmpl_sample {
	labels_t ls;
	double v;
} tmpl_sample_t;

/* Runs a PromQL instant query at the alert's evaluation time; results in a. */
typedef int (*tmpl_query_fn)(void *arg, arena_t *a, str_t query, tmpl_sample_t **out, size_t *n, err_t *err);

/* The data an alert template sees (Prometheus's AlertTemplateData): .Labels, .ExternalLabels,
 * .ExternalURL, .Value. */
typedef struct tmpl_env {
	labels_t labels, ext_labels;
	str_t external_url;
	double value;
	tmpl_query_fn query; /* NULL: `query` fails */
	void *query_arg;
} tmpl_env_t;

/* Parse text as the template `name`; *out lives in a. */
int tmpl_parse(arena_t *a, const char *name, str_t text, tmpl_t **out, err_t *err);
/* Run t over env, appending the output to out (nothing appended on error). Scratch memory in a. */
int tmpl_exec(const tmpl_t *t, arena_t *a, const tmpl_env_t *env, buf_t *out, err_t *err);

/* Prometheus's alert-template conventions: the text is prefixed with the definitions of $labels,
 * $externalLabels, $externalURL and $value and named "__alert_<alertname>". tmpl_alert_check parses
 * only (rule validation); tmpl_alert_expand expands and, on error, yields
 * "<error expanding template: ...>" as Prometheus does (returns false then). */
int tmpl_alert_check(const char *alertname, str_t text, err_t *err);
bool tmpl_alert_expand(arena_t *a, const char *alertname, str_t text, const tmpl_env_t *env, str_t *out);

/* Go's fmt %.4g (NaN, +Inf, -Inf spelled as Go spells them) and Prometheus's humanize family, exposed
 * for tests. */
void tmpl_humanize(buf_t *b, double v);

#endif
