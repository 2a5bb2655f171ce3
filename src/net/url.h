/*
 * url.h — percent-decoding and query-string / form parsing (application/x-www-form-urlencoded),
 * following Go's net/url semantics (QueryUnescape, ParseQuery) that Prometheus and Thanos rely on:
 *   - pairs are separated by '&'; empty pairs are skipped; a pair without '=' has value "";
 *   - '+' means space in query components, "%XX" is a byte (hex, either case);
 *   - a malformed escape ("%zz", a trailing "%4") or a ';' in a pair is an error (Go >= 1.17);
 *   - repeated keys are kept in order (match[]=a&match[]=b).
 *
 * Decoded strings are allocated from the caller's arena; params arrays grow in that arena too.
 * Errors are ERR_INVALID with a message naming the offending pair. Not thread-safe (arena).
 */
#ifndef STRATA_NET_URL_H
#define STRATA_NET_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"

typedef struct url_param {
	str_t key, val;
} url_param_t;

typedef struct url_params {
	url_param_t *v;
	size_t n, cap;
} url_params_t;

/* Percent-decode s; plus_as_space selects query-component mode ('+' -> ' '), else path mode.
 * Returns 0 or ERR_INVALID (bad escape at byte offset named in err). The result is NUL-terminated. */
int url_unescape(arena_t *a, str_t s, bool plus_as_space, str_t *out, err_t *err);

/* Parse "k=v&k2=v2" and APPEND pairs to params. On error the pairs parsed before the bad one are
 * kept and ERR_INVALID is returned. */
int url_parse_query(arena_t *a, str_t query, url_params_t *params, err_t *err);

void url_params_add(arena_t *a, url_params_t *params, str_t key, str_t val);
/* First value of key; false if absent. */
bool url_params_get(const url_params_t *params, const char *key, str_t *val);
/* Number of values of key; with out != NULL, stores up to max of them in order. */
size_t url_params_all(const url_params_t *params, const char *key, str_t *out, size_t max);

/* Append s percent-encoded for a query component (Go's QueryEscape: space as '+'). */
void url_escape(buf_t *b, str_t s);

#endif
