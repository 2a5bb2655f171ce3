/*
 * selector.h — a small parser for series selectors: `name`, `{a="b", c=~"d"}`, `name{a!="b",}`.
 *
 * For tools and flags (--match) in layers that must not depend on promql/. Strings may be "double",
 * 'single' (Go escapes) or `raw`. A metric name becomes a __name__="name" matcher placed first.
 */
#ifndef STRATA_MODEL_SELECTOR_H
#define STRATA_MODEL_SELECTOR_H

#include <stddef.h>

#include "base/err.h"
#include "base/str.h"
#include "model/matcher.h"

/* On success *out is a heap array of *n initialised matchers (free with selector_free).
 * ERR_INVALID with "parse error at char N: ..." on bad input; at least one matcher required. */
int selector_parse(str_t s, matcher_t **out, size_t *n, err_t *err);
void selector_free(matcher_t *ms, size_t n);
/* Decode a quoted string literal at s (starting with its quote) into b; returns bytes consumed or
 * -1 (with err) when malformed/unterminated. */
long selector_unquote(str_t s, buf_t *b, err_t *err);

#endif
