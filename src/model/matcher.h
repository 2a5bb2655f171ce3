/*
 * matcher.h — label matchers: =, !=, =~, !~.
 *
 * Regexes are RE2 syntax (validated), fully anchored, compiled with PCRE2 + JIT and a match limit.
 * Literal regexes and alternations of literals ("a|b|c") take a fast path without PCRE2.
 * A matcher on a label that is absent behaves as if the value were "" (Prometheus semantics).
 * Compiled matchers are immutable and safe to share between threads after matcher_init.
 */
#ifndef STRATA_MODEL_MATCHER_H
#define STRATA_MODEL_MATCHER_H

#include <stdbool.h>

#include "base/err.h"
#include "base/str.h"
#include "model/labels.h"

typedef enum match_type { MATCH_EQ = 0, MATCH_NEQ = 1, MATCH_RE = 2, MATCH_NRE = 3 } match_type_t;
/* Numbering matches Thanos storepb.LabelMatcher.Type and prompb.LabelMatcher.Type. */

typedef struct matcher_re matcher_re_t; /* compiled regex state (opaque) */

typedef struct matcher {
	match_type_t type;
	str_t name;
	str_t value;
	matcher_re_t *re; /* NULL for EQ/NEQ */
} matcher_t;

/* name and value are copied into the matcher (freed by matcher_release). ERR_INVALID for a bad regex,
 * message like: error parsing regexp: missing closing ): `(a` */
int matcher_init(matcher_t *m, match_type_t type, str_t name, str_t value, err_t *err);
void matcher_release(matcher_t *m);
bool matcher_matches(const matcher_t *m, str_t value);
/* Does it match the empty string (i.e. series lacking the label)? */
bool matcher_matches_empty(const matcher_t *m);
/* Matches labels: looks up m->name in ls ("" when absent). */
bool matcher_matches_labels(const matcher_t *m, const labels_t *ls);
/* For postings selection: the set of literal values an EQ or literal-alternation RE matches.
 * Returns the count and points *vals at them (owned by the matcher), or -1 if not a finite set. */
int matcher_literal_values(const matcher_t *m, const str_t **vals);
const char *match_type_str(match_type_t t); /* "=", "!=", "=~", "!~" */
/* {a="b", c=~"d"} form. */
void matchers_format(buf_t *b, const matcher_t *ms, size_t n);

/* Regexes with capture groups (relabelling): the same RE2 syntax checks and full anchoring as
 * MATCH_RE matchers, always compiled with PCRE2. Immutable after new; match is thread-safe. */
typedef struct matcher_capre matcher_capre_t;

int matcher_capre_new(matcher_capre_t **out, str_t pattern, err_t *err);
void matcher_capre_free(matcher_capre_t *re);
/* -1 if v does not match; else the number of groups (1 + capture groups), with groups[0..min(n, max))
 * slices of v (group 0 = all of v; an unset group is empty). */
int matcher_capre_match(const matcher_capre_t *re, str_t v, str_t *groups, int max);
/* Index of the named group, -1 if none. */
int matcher_capre_group(const matcher_capre_t *re, str_t name);

#endif
