/*
 * relabel.h — Prometheus relabel_config (2.42 semantics): a list of rules applied in order to a label
 * set, which may change it or drop it. Used for --receive.relabel-config (incoming series) and by
 * any component with relabelling (alert relabelling, block selection).
 *
 * Rule fields and defaults: source_labels [], separator ";", target_label, regex "(.*)" (RE2 syntax,
 * fully anchored), modulus, replacement "$1", action replace. Actions: replace, keep, drop, hashmod
 * (md5 of the joined value, last 8 bytes big-endian, mod modulus), labelmap, labeldrop, labelkeep,
 * lowercase, uppercase, keepequal, dropequal. Templates in replacement and (replace) target_label
 * expand like Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$ (a name is the longest run of letters,
 * digits and underscores, so "$1x" is the group named "1x", which is empty). The config is checked as
 * Prometheus checks it (required fields per action, valid target names); errors name the rule.
 *
 * A parsed relabel_t is immutable and may be applied from several threads at once.
 */
#ifndef STRATA_MODEL_RELABEL_H
#define STRATA_MODEL_RELABEL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/labels.h"

typedef struct relabel relabel_t;

/* Parse a YAML list of relabel_config mappings. ERR_INVALID naming <what>, the rule (1-based) and
 * the problem; an empty document is an empty list (applying it changes nothing). */
int relabel_parse(const char *yaml, size_t len, const char *what, relabel_t **out, err_t *err);
void relabel_free(relabel_t *r);
size_t relabel_len(const relabel_t *r);

/* Apply the rules to in (sorted). Returns false when the series is dropped (by keep/drop/keepequal/
 * dropequal, or because no label is left); else *out holds the result, sorted, with labels of empty
 * value removed, allocated in a (or in itself when nothing changed). */
bool relabel_apply(const relabel_t *r, arena_t *a, const labels_t *in, labels_t *out);

#endif
