/*
 * labels.h — label sets: sorted (by name, bytewise), unique names, no empty values.
 *
 * labels_t is a view: an array of (name, value) slices pointing into memory owned by someone else
 * (an arena, an mmapped symbol table, a decoded protobuf). labels_copy() deep-copies into an arena.
 * labels_hash() is Prometheus's Labels.Hash(): xxhash64 over name 0xFF value 0xFF ... (seed 0), so
 * hashes agree with Prometheus and Thanos.
 */
#ifndef STRATA_MODEL_LABELS_H
#define STRATA_MODEL_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"

#define LABEL_METRIC_NAME "__name__"

typedef struct label {
	str_t name;
	str_t value;
} label_t;

typedef struct labels {
	label_t *v;
	size_t n;
} labels_t;

uint64_t labels_hash(const labels_t *ls);
/* Prometheus ordering: compare name then value pairwise, then by length. */
int labels_cmp(const labels_t *a, const labels_t *b);
bool labels_eq(const labels_t *a, const labels_t *b);
/* Value of name, or an empty slice (found=false) when absent. */
str_t labels_get(const labels_t *ls, str_t name, bool *found);
labels_t labels_copy(arena_t *a, const labels_t *ls);
/* {__name__="x", a="b"} printed as Prometheus does: name{a="b", c="d"} (values Go-quoted). */
void labels_format(buf_t *b, const labels_t *ls);
/* Prometheus labels.Labels.String(): {__name__="x", a="b"} — every label inside the braces (what
 * `promtool tsdb dump` prints). */
void labels_format_full(buf_t *b, const labels_t *ls);
/* Go strconv.Quote of s (printable UTF-8 kept, control/invalid bytes escaped). */
void labels_quote(buf_t *b, str_t s);
/* Sort by name and check validity: names non-empty, unique. Empty values are dropped. */
int labels_normalize(labels_t *ls);

/* Incremental construction in an arena, with set/del by name; labels_builder_finish sorts and
 * drops empty values. */
typedef struct labels_builder {
	arena_t *arena;
	label_t *v;
	size_t n, cap;
} labels_builder_t;

void labels_builder_init(labels_builder_t *b, arena_t *a, const labels_t *base);
void labels_builder_set(labels_builder_t *b, str_t name, str_t value); /* empty value deletes */
void labels_builder_del(labels_builder_t *b, str_t name);
labels_t labels_builder_finish(labels_builder_t *b); /* result lives in the arena */

/* Whether s is valid UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). */
bool utf8_valid(str_t s);
/* A label set as a TSDB stores it: at least one label, names non-empty, strictly ascending (so
 * unique), values non-empty, all valid UTF-8. 0 or ERR_INVALID saying what is wrong and where. */
int labels_check(const labels_t *ls, err_t *err);

/* Label name validity: ^[a-zA-Z_][a-zA-Z0-9_]*$ ; metric name also allows ':'. */
bool label_name_valid(str_t s);
bool metric_name_valid(str_t s);

#endif
