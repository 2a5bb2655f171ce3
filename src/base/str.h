/*
 * str.h — length-carrying string slices (str_t) and a growable byte buffer (buf_t).
 *
 * str_t never owns memory: it points into something else (a buffer, an mmap, an arena, a literal).
 * buf_t owns its heap memory; buf->p is always NUL-terminated (after buf_init it points to a static
 * empty string, so it is never NULL), so buf->p can be passed to C APIs directly.
 */
#ifndef STRATA_BASE_STR_H
#define STRATA_BASE_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct str {
	const char *p;
	size_t n;
} str_t;

#define STR(lit) ((str_t){(lit), sizeof(lit) - 1})
#define STR_NULL ((str_t){"", 0})
#define STR_FMT "%.*s"
#define STR_ARG(s) (int)(s).n, (s).p

static inline str_t str_from(const char *s, size_t n)
{
	return (str_t){s, n};
}
str_t str_c(const char *cstr); /* NULL -> empty */
bool str_eq(str_t a, str_t b);
bool str_eq_c(str_t a, const char *cstr);
int str_cmp(str_t a, str_t b); /* bytewise, like memcmp then length; returns <0, 0, >0 */
bool str_has_prefix(str_t s, str_t prefix);
bool str_has_suffix(str_t s, str_t suffix);
str_t str_trim(str_t s);       /* ASCII whitespace both ends */
str_t str_sub(str_t s, size_t from, size_t to); /* clamped */
/* Index of first c in s, or -1. */
long str_chr(str_t s, char c);
/* Split at the first sep: *head gets before, *tail after; false (head = s, tail empty) if absent. */
bool str_split2(str_t s, char sep, str_t *head, str_t *tail);
/* Strict integer parsing of the whole slice; false on empty, junk or overflow. */
bool str_to_i64(str_t s, int64_t *out);
bool str_to_u64(str_t s, uint64_t *out);
/* Go ParseFloat-compatible: decimal, hex float, Inf/+Inf/-Inf/NaN (case-insensitive), underscores not allowed. */
bool str_to_double(str_t s, double *out);
/* Value of a hexadecimal digit (0-9, a-f, A-F), or -1 for any other character (negative chars too). */
static inline int str_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

typedef struct buf {
	char *p;
	size_t n;   /* bytes used, excluding the terminating NUL */
	size_t cap; /* bytes allocated (0 while p points to the static empty string) */
} buf_t;

#define BUF_INIT {.p = (char *)buf_empty_, .n = 0, .cap = 0}
extern const char buf_empty_[1];

void buf_init(buf_t *b);
void buf_release(buf_t *b);
void buf_reset(buf_t *b); /* n = 0, keeps memory */
void buf_reserve(buf_t *b, size_t extra); /* ensures cap >= n + extra + 1 */
void buf_append(buf_t *b, const void *p, size_t n);
void buf_append_str(buf_t *b, str_t s);
void buf_puts(buf_t *b, const char *s);
void buf_putc(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap);
void buf_put_u64(buf_t *b, uint64_t v);   /* decimal */
void buf_put_i64(buf_t *b, int64_t v);    /* decimal */
void buf_truncate(buf_t *b, size_t n);
/* Append n uninitialised bytes and return a pointer to them (valid until the next append). */
char *buf_extend(buf_t *b, size_t n);
/* Give the bytes away: returns the heap string (NUL-terminated, caller frees) and re-inits b. */
char *buf_detach(buf_t *b, size_t *len);
static inline str_t buf_str(const buf_t *b)
{
	return (str_t){b->p, b->n};
}
/* Append s as a JSON string literal (quoted) escaped the way Go's encoding/json does it:
 * <, >, & as \u003c \u003e \u0026, control characters as \n \t ... or \u00XX, U+2028/2029
 * escaped, invalid UTF-8 replaced by \ufffd, other non-ASCII raw. */
void buf_json_str(buf_t *b, str_t s);

#endif
