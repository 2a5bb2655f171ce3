/*
 * labels.c — label sets: hashing (Prometheus Labels.Hash), ordering, formatting, building.
 */
#include "model/labels.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/hmap.h"

uint64_t labels_hash(const labels_t *ls)
{
	/* Prometheus hashes name 0xff value 0xff ... with xxhash64 seed 0 over one contiguous buffer. */
	uint8_t stack[1024];
	size_t need = 0;
	if (ls->n == 0)
		return hash_bytes("", 0);
	for (size_t i = 0; i < ls->n; i++)
		need += ls->v[i].name.n + ls->v[i].value.n + 2;
	uint8_t *b = need <= sizeof stack ? stack : xmalloc(need);
	size_t off = 0;
	for (size_t i = 0; i < ls->n; i++) {
		memcpy(b + off, ls->v[i].name.p, ls->v[i].name.n);
		off += ls->v[i].name.n;
		b[off++] = 0xff;
		memcpy(b + off, ls->v[i].value.p, ls->v[i].value.n);
		off += ls->v[i].value.n;
		b[off++] = 0xff;
	}
	uint64_t h = hash_bytes(b, off);
	if (b != stack)
		free(b);
	return h;
}

int labels_cmp(const labels_t *a, const labels_t *b)
{
	size_t n = a->n < b->n ? a->n : b->n;
	for (size_t i = 0; i < n; i++) {
		int c = str_cmp(a->v[i].name, b->v[i].name);
		if (c)
			return c;
		c = str_cmp(a->v[i].value, b->v[i].value);
		if (c)
			return c;
	}
	return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

bool labels_eq(const labels_t *a, const labels_t *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!str_eq(a->v[i].name, b->v[i].name) || !str_eq(a->v[i].value, b->v[i].value))
			return false;
	return true;
}

str_t labels_get(const labels_t *ls, str_t name, bool *found)
{
	for (size_t i = 0; i < ls->n; i++) {
		if (str_eq(ls->v[i].name, name)) {
			if (found)
				*found = true;
			return ls->v[i].value;
		}
	}
	if (found)
		*found = false;
	return STR_NULL;
}

labels_t labels_copy(arena_t *a, const labels_t *ls)
{
	labels_t out = {NULL, ls->n};
	if (!ls->n)
		return out;
	size_t bytes = 0;
	for (size_t i = 0; i < ls->n; i++)
		bytes = st_add(bytes, st_add(ls->v[i].name.n, ls->v[i].value.n));
	out.v = arena_alloc(a, st_mult(ls->n, sizeof(label_t)));
	char *p = arena_alloc(a, bytes ? bytes : 1);
	for (size_t i = 0; i < ls->n; i++) {
		memcpy(p, ls->v[i].name.p, ls->v[i].name.n);
		out.v[i].name = str_from(p, ls->v[i].name.n);
		p += ls->v[i].name.n;
		memcpy(p, ls->v[i].value.p, ls->v[i].value.n);
		out.v[i].value = str_from(p, ls->v[i].value.n);
		p += ls->v[i].value.n;
	}
	return out;
}

/* Decode one UTF-8 rune; returns its length, or 0 when invalid (then *r is undefined). */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *r)
{
	unsigned c = p[0];
	if (c < 0x80) {
		*r = c;
		return 1;
	}
	size_t len;
	uint32_t min;
	if ((c & 0xe0) == 0xc0) {
		len = 2, min = 0x80, *r = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, min = 0x800, *r = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4, min = 0x10000, *r = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*r = (*r << 6) | (p[i] & 0x3f);
	}
	if (*r < min || *r > 0x10ffff || (*r >= 0xd800 && *r <= 0xdfff))
		return 0;
	return len;
}

bool utf8_valid(str_t s)
{
	const unsigned char *p = (const unsigned char *)s.p;
	size_t i = 0;
	while (i < s.n) {
		if (s.n - i >= 8) { /* ASCII, 8 bytes at a time */
			uint64_t x;
			memcpy(&x, p + i, 8);
			if (!(x & 0x8080808080808080ull)) {
				i += 8;
				continue;
			}
		}
		uint32_t r;
		size_t len = utf8_decode(p + i, s.n - i, &r);
		if (!len)
			return false;
		i += len;
	}
	return true;
}

/* Bytewise order of two names; label names are short and usually differ at once (no memcmp call). */
static inline int name_cmp(str_t a, str_t b)
{
	size_t n = a.n < b.n ? a.n : b.n;
	for (size_t i = 0; i < n; i++)
		if (a.p[i] != b.p[i])
			return (unsigned char)a.p[i] < (unsigned char)b.p[i] ? -1 : 1;
	return (a.n > b.n) - (a.n < b.n);
}

int labels_check(const labels_t *ls, err_t *err)
{
	if (!ls->n)
		return err_set(err, ERR_INVALID, "series without labels");
	for (size_t i = 0; i < ls->n; i++) {
		const label_t *l = &ls->v[i];
		if (!l->name.n)
			return err_set(err, ERR_INVALID, "empty label name");
		if (!l->value.n)
			return err_set(err, ERR_INVALID, "label %.*s has an empty value", (int)l->name.n, l->name.p);
		if (!utf8_valid(l->name) || !utf8_valid(l->value))
			return err_set(err, ERR_INVALID, "label %.*s: invalid UTF-8", (int)(l->name.n > 100 ? 100 : l->name.n),
				       l->name.p);
		if (i) {
			int c = name_cmp(ls->v[i - 1].name, l->name);
			if (c == 0)
				return err_set(err, ERR_INVALID, "duplicate label name %.*s", (int)l->name.n, l->name.p);
			if (c > 0)
				return err_set(err, ERR_INVALID, "labels are not sorted: %.*s after %.*s", (int)l->name.n,
					       l->name.p, (int)ls->v[i - 1].name.n, ls->v[i - 1].name.p);
		}
	}
	return 0;
}

/* Approximation of Go's unicode.IsPrint for non-ASCII runes: everything except C1 controls, spaces
 * other than U+0020 (Zs, Zl, Zp), format characters (Cf, Unicode 13 as in Go 1.19), private use and
 * noncharacters. Unassigned code points (also not printable in Go) are not known here. */
static bool rune_printable(uint32_t r)
{
	static const uint32_t np[][2] = {
		{0x80, 0xa0}, {0xad, 0xad}, {0x600, 0x605}, {0x61c, 0x61c}, {0x6dd, 0x6dd}, {0x70f, 0x70f},
		{0x8e2, 0x8e2}, {0x1680, 0x1680}, {0x180e, 0x180e}, {0x2000, 0x200f}, {0x2028, 0x202f},
		{0x205f, 0x2064}, {0x2066, 0x206f}, {0x3000, 0x3000}, {0xe000, 0xf8ff}, {0xfdd0, 0xfdef},
		{0xfeff, 0xfeff}, {0xfff9, 0xfffb}, {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x13438},
		{0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f},
	};
	if (r < 0x80 || (r & 0xfffe) == 0xfffe || r >= 0xf0000)
		return r >= 0x20 && r < 0x7f;
	for (size_t i = 0; i < sizeof np / sizeof np[0]; i++)
		if (r >= np[i][0] && r <= np[i][1])
			return false;
	return true;
}

void labels_quote(buf_t *b, str_t s)
{
	static const char hex[] = "0123456789abcdef";
	buf_putc(b, '"');
	const unsigned char *p = (const unsigned char *)s.p;
	size_t i = 0;
	while (i < s.n) {
		unsigned c = p[i];
		if (c >= 0x20 && c < 0x7f) {
			if (c == '"' || c == '\\')
				buf_putc(b, '\\');
			buf_putc(b, (char)c);
			i++;
			continue;
		}
		if (c < 0x80) {
			const char *esc = NULL;
			switch (c) {
			case '\a': esc = "\\a"; break;
			case '\b': esc = "\\b"; break;
			case '\f': esc = "\\f"; break;
			case '\n': esc = "\\n"; break;
			case '\r': esc = "\\r"; break;
			case '\t': esc = "\\t"; break;
			case '\v': esc = "\\v"; break;
			}
			if (esc) {
				buf_puts(b, esc);
			} else {
				char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
				buf_append(b, e, 4);
			}
			i++;
			continue;
		}
		uint32_t r;
		size_t len = utf8_decode(p + i, s.n - i, &r);
		if (!len) {
			char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
			buf_append(b, e, 4);
			i++;
			continue;
		}
		if (rune_printable(r)) {
			buf_append(b, p + i, len);
		} else if (r < 0x10000) {
			buf_printf(b, "\\u%04x", (unsigned)r);
		} else {
			buf_printf(b, "\\U%08x", (unsigned)r);
		}
		i += len;
	}
	buf_putc(b, '"');
}

void labels_format(buf_t *b, const labels_t *ls)
{
	bool found;
	str_t name = labels_get(ls, STR(LABEL_METRIC_NAME), &found);
	size_t others = ls->n - (found ? 1 : 0);
	if (found)
		buf_append_str(b, name);
	if (found && others == 0)
		return;
	buf_putc(b, '{');
	bool first = true;
	for (size_t i = 0; i < ls->n; i++) {
		if (str_eq_c(ls->v[i].name, LABEL_METRIC_NAME))
			continue;
		if (!first)
			buf_puts(b, ", ");
		first = false;
		buf_append_str(b, ls->v[i].name);
		buf_putc(b, '=');
		labels_quote(b, ls->v[i].value);
	}
	buf_putc(b, '}');
}

void labels_format_full(buf_t *b, const labels_t *ls)
{
	buf_putc(b, '{');
	for (size_t i = 0; i < ls->n; i++) {
		if (i)
			buf_puts(b, ", ");
		buf_append_str(b, ls->v[i].name);
		buf_putc(b, '=');
		labels_quote(b, ls->v[i].value);
	}
	buf_putc(b, '}');
}

static int label_cmp_name(const void *a, const void *b)
{
	const label_t *x = a, *y = b;
	return str_cmp(x->name, y->name);
}

int labels_normalize(labels_t *ls)
{
	size_t w = 0;
	for (size_t i = 0; i < ls->n; i++) {
		if (ls->v[i].name.n == 0)
			return ERR_INVALID;
		if (ls->v[i].value.n)
			ls->v[w++] = ls->v[i];
	}
	ls->n = w;
	if (w > 1)
		qsort(ls->v, w, sizeof(label_t), label_cmp_name);
	for (size_t i = 1; i < w; i++)
		if (str_eq(ls->v[i - 1].name, ls->v[i].name))
			return ERR_INVALID;
	return 0;
}

void labels_builder_init(labels_builder_t *b, arena_t *a, const labels_t *base)
{
	b->arena = a;
	b->n = 0;
	b->cap = (base ? base->n : 0) + 4;
	b->v = arena_alloc(a, st_mult(b->cap, sizeof(label_t)));
	if (base && base->n) {
		memcpy(b->v, base->v, base->n * sizeof(label_t));
		b->n = base->n;
	}
}

void labels_builder_del(labels_builder_t *b, str_t name)
{
	for (size_t i = 0; i < b->n; i++) {
		if (str_eq(b->v[i].name, name)) {
			memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof(label_t));
			b->n--;
			return;
		}
	}
}

void labels_builder_set(labels_builder_t *b, str_t name, str_t value)
{
	if (value.n == 0) {
		labels_builder_del(b, name);
		return;
	}
	for (size_t i = 0; i < b->n; i++) {
		if (str_eq(b->v[i].name, name)) {
			b->v[i].value = value;
			return;
		}
	}
	if (b->n == b->cap) {
		size_t ncap = b->cap * 2;
		b->v = arena_realloc(b->arena, b->v, b->cap * sizeof(label_t), st_mult(ncap, sizeof(label_t)));
		b->cap = ncap;
	}
	b->v[b->n++] = (label_t){name, value};
}

labels_t labels_builder_finish(labels_builder_t *b)
{
	labels_t ls = {b->v, b->n};
	size_t w = 0;
	for (size_t i = 0; i < ls.n; i++)
		if (ls.v[i].value.n)
			ls.v[w++] = ls.v[i];
	ls.n = w;
	if (w > 1)
		qsort(ls.v, w, sizeof(label_t), label_cmp_name);
	b->n = w;
	return ls;
}

static bool name_valid(str_t s, bool colon)
{
	if (s.n == 0)
		return false;
	for (size_t i = 0; i < s.n; i++) {
		char c = s.p[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
			  (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

bool label_name_valid(str_t s)
{
	return name_valid(s, false);
}

bool metric_name_valid(str_t s)
{
	return name_valid(s, true);
}
