/*
 * ruledeps.h — which rules of a group can be evaluated at the same time without changing any result.
 *
 * Prometheus 2.42 evaluates a group's rules one after the other at the same timestamp, each seeing
 * what the earlier ones stored. Evaluating two rules at once gives the same results unless they
 * conflict:
 *   - one may read a series the other writes: a recording rule writes its record name, an alerting
 *     rule ALERTS and ALERTS_FOR_STATE; a rule reads the metric names its selectors ask for by name
 *     (`foo`, `{__name__="foo"}`), and anything at all when a selector names no metric (`{job="x"}`,
 *     `{__name__=~"f.*"}`), when its expression does not parse, or (alerting rules) when a label or
 *     annotation template may call `query`;
 *   - both write the same series: two recording rules of one name, two alerting rules of one name.
 * The conflict is symmetric: a later rule writing what an earlier rule reads must not write first
 * either. The evaluator starts rules in order and holds each back until every earlier rule it
 * conflicts with has finished; rules that conflict with nothing run side by side.
 *
 *     ruledeps_t *d = ruledeps_new(rules, n);
 *     if (ruledeps_conflict(d, i, j)) ...;   // i, j < n
 *     ruledeps_free(d);
 *
 * Thread-safety: read-only after ruledeps_new.
 */
#ifndef STRATA_RULE_RULEDEPS_H
#define STRATA_RULE_RULEDEPS_H

#include <stdbool.h>
#include <stddef.h>

#include "rule/rulefile.h"

typedef struct ruledeps ruledeps_t;

ruledeps_t *ruledeps_new(const rule_spec_t *rules, size_t n);
void ruledeps_free(ruledeps_t *d); /* NULL ok */
bool ruledeps_conflict(const ruledeps_t *d, size_t i, size_t j);

#endif
