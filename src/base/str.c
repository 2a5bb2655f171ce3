/* str.c — string slices and growable buffers; see str.h. */
#include "base/str.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"

const char buf_empty_[1] = "";

str_t str_c(const char *cstr)
{
	return cstr ? (str_t){cstr, strlen(cstr)} : STR_NULL;
}

bool str_eq(str_t a, str_t b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

bool str_eq_c(str_t a, const char *cstr)
{
	return str_eq(a, str_c(cstr));
}

int str_cmp(str_t a, str_t b)
{
	size_t n = a.n < b.n ? a.n : b.n;
	int c = n ? memcmp(a.p, b.p, n) : 0;
	if (c)
		return c;
	return a.n < b.n ? -1 : a.n > b.n;
}

bool str_has_prefix(str_t s, str_t prefix)
{
	return s.n >= prefix.n && memcmp(s.p, prefix.p, prefix.n) == 0;
}

bool str_has_suffix(str_t s, str_t suffix)
{
	return s.n >= suffix.n && memcmp(s.p + s.n - suffix.n, suffix.p, suffix.n) == 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

str_t str_trim(str_t s)
{
	while (s.n && is_space(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n && is_space(s.p[s.n - 1]))
		s.n--;
	return s;
}

str_t str_sub(str_t s, size_t from, size_t to)
{
	if (to > s.n)
		to = s.n;
	if (from > to)
		from = to;
	return (str_t){s.p + from, to - from};
}

long str_chr(str_t s, char c)
{
	const char *p = s.n ? memchr(s.p, c, s.n) : NULL;
	return p ? (long)(p - s.p) : -1;
}

bool str_split2(str_t s, char sep, str_t *head, str_t *tail)
{
	long i = str_chr(s, sep);
	if (i < 0) {
		*head = s;
		*tail = (str_t){s.p + s.n, 0};
		return false;
	}
	*head = (str_t){s.p, (size_t)i};
	*tail = (str_t){s.p + i + 1, s.n - (size_t)i - 1};
	return true;
}

bool str_to_u64(str_t s, uint64_t *out)
{
	if (s.n == 0)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < s.n; i++) {
		unsigned d = (unsigned char)s.p[i] - '0';
		if (d > 9)
			return false;
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

bool str_to_i64(str_t s, int64_t *out)
{
	bool neg = false;
	if (s.n && (s.p[0] == '-' || s.p[0] == '+')) {
		neg = s.p[0] == '-';
		s.p++;
		s.n--;
	}
	uint64_t u;
	if (!str_to_u64(s, &u))
		return false;
	if (neg) {
		if (u > (uint64_t)INT64_MAX + 1)
			return false;
		*out = (int64_t)(0 - u);
	} else {
		if (u > INT64_MAX)
			return false;
		*out = (int64_t)u;
	}
	return true;
}

bool str_to_double(str_t s, double *out)
{
	char tmp[128];
	if (s.n == 0 || s.n >= sizeof tmp)
		return false;
	memcpy(tmp, s.p, s.n);
	tmp[s.n] = 0;
	const char *p = tmp;
	bool neg = false;
	if (*p == '+' || *p == '-') {
		neg = *p == '-';
		p++;
	}
	if (!strcasecmp(p, "inf") || !strcasecmp(p, "infinity")) {
		*out = neg ? -INFINITY : INFINITY;
		return true;
	}
	if (!strcasecmp(p, "nan")) {
		if (p != tmp)
			return false; /* Go rejects "+NaN" / "-NaN" */
		*out = NAN;
		return true;
	}
	/* strtod accepts things Go does not: leading space, "infinity" prefixes, "0x" without digits, hex
	 * floats without an exponent are fine in both. Reject leading whitespace and NaN(payload). */
	if (!(*p == '.' || (*p >= '0' && *p <= '9')))
		return false;
	for (const char *q = p; *q; q++)
		if (*q == '_' || *q == '(' || is_space(*q))
			return false;
	bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
	if (hex && !strpbrk(p, "pP") && strchr(p, '.'))
		return false; /* Go requires a p exponent for hex floats with a fraction */
	char *end;
	errno = 0;
	double v = strtod(tmp, &end);
	if (*end != 0 || end == tmp)
		return false;
	if (errno == ERANGE && isinf(v))
		return false; /* Go: value out of range */
	*out = v;
	return true;
}

void buf_init(buf_t *b)
{
	b->p = (char *)buf_empty_;
	b->n = 0;
	b->cap = 0;
}

void buf_release(buf_t *b)
{
	if (b->cap)
		free(b->p);
	buf_init(b);
}

void buf_reset(buf_t *b)
{
	b->n = 0;
	if (b->cap)
		b->p[0] = 0;
}

void buf_reserve(buf_t *b, size_t extra)
{
	size_t need = st_add(st_add(b->n, extra), 1);
	if (need <= b->cap)
		return;
	size_t cap = alloc_grow_cap(b->cap, need);
	if (b->cap) {
		b->p = xrealloc(b->p, cap);
	} else {
		char *p = xmalloc(cap);
		memcpy(p, b->p, b->n + 1);
		b->p = p;
	}
	b->cap = cap;
}

void buf_append(buf_t *b, const void *p, size_t n)
{
	if (!n)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = 0;
}

void buf_append_str(buf_t *b, str_t s)
{
	buf_append(b, s.p, s.n);
}

void buf_puts(buf_t *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_putc(buf_t *b, char c)
{
	buf_reserve(b, 1);
	b->p[b->n++] = c;
	b->p[b->n] = 0;
}

void buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	size_t room = b->cap ? b->cap - b->n : 0;
	int n = room ? vsnprintf(b->p + b->n, room, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return;
	}
	if ((size_t)n >= room) {
		buf_reserve(b, (size_t)n);
		vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap2);
	}
	va_end(ap2);
	b->n += (size_t)n;
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_put_u64(buf_t *b, uint64_t v)
{
	char tmp[24];
	int i = sizeof tmp;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

void buf_put_i64(buf_t *b, int64_t v)
{
	if (v < 0) {
		buf_putc(b, '-');
		buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		buf_put_u64(b, (uint64_t)v);
	}
}

void buf_truncate(buf_t *b, size_t n)
{
	if (n < b->n) {
		b->n = n;
		b->p[n] = 0;
	}
}

char *buf_extend(buf_t *b, size_t n)
{
	buf_reserve(b, n);
	char *p = b->p + b->n;
	b->n += n;
	b->p[b->n] = 0;
	return p;
}

char *buf_detach(buf_t *b, size_t *len)
{
	char *p = b->cap ? b->p : xstrdup("");
	if (len)
		*len = b->n;
	buf_init(b);
	return p;
}

/* Length of a valid UTF-8 sequence at p (max n bytes), or 0 if invalid. */
static size_t utf8_valid_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned min;
	unsigned cp;
	if ((c & 0xE0) == 0xC0) {
		len = 2;
		cp = c & 0x1F;
		min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3;
		cp = c & 0x0F;
		min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

void buf_json_str(buf_t *b, str_t s)
{
	static const char hex[] = "0123456789abcdef";
	buf_reserve(b, s.n + 2);
	buf_putc(b, '"');
	const unsigned char *p = (const unsigned char *)s.p;
	size_t start = 0, i = 0;
	while (i < s.n) {
		unsigned char c = p[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t l = utf8_valid_len(p + i, s.n - i);
			if (l == 3 && p[i] == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
				buf_append(b, p + start, i - start);
				buf_puts(b, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
				i += 3;
				start = i;
				continue;
			}
			if (l) {
				i += l;
				continue;
			}
			buf_append(b, p + start, i - start);
			buf_puts(b, "\\ufffd");
			i++;
			start = i;
			continue;
		}
		buf_append(b, p + start, i - start);
		switch (c) {
		case '"': buf_puts(b, "\\\""); break;
		case '\\': buf_puts(b, "\\\\"); break;
		case '\n': buf_puts(b, "\\n"); break;
		case '\r': buf_puts(b, "\\r"); break;
		case '\t': buf_puts(b, "\\t"); break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_append(b, u, 6);
		}
		}
		i++;
		start = i;
	}
	buf_append(b, p + start, s.n - start);
	buf_putc(b, '"');
}
