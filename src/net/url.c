/*
 * url.c — percent-decoding and query parsing (see url.h for the exact semantics).
 */
#include "net/url.h"

#include <string.h>

int url_unescape(arena_t *a, str_t s, bool plus_as_space, str_t *out, err_t *err)
{
	char *d = arena_alloc(a, s.n + 1);
	size_t n = 0;
	for (size_t i = 0; i < s.n; i++) {
		char c = s.p[i];
		if (c == '%') {
			int hi = i + 1 < s.n ? str_hex_digit(s.p[i + 1]) : -1;
			int lo = i + 2 < s.n ? str_hex_digit(s.p[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				size_t end = i + 3 < s.n ? i + 3 : s.n;
				return err_set(err, ERR_INVALID, "invalid URL escape \"%.*s\" at offset %zu",
					       (int)(end - i), s.p + i, i);
			}
			d[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_as_space) {
			d[n++] = ' ';
		} else {
			d[n++] = c;
		}
	}
	d[n] = 0;
	*out = (str_t){d, n};
	return 0;
}

void url_params_add(arena_t *a, url_params_t *params, str_t key, str_t val)
{
	if (params->n == params->cap) {
		size_t ncap = params->cap ? params->cap * 2 : 8;
		params->v = arena_realloc(a, params->v, params->cap * sizeof *params->v, ncap * sizeof *params->v);
		params->cap = ncap;
	}
	params->v[params->n++] = (url_param_t){key, val};
}

int url_parse_query(arena_t *a, str_t query, url_params_t *params, err_t *err)
{
	str_t rest = query;
	while (rest.n > 0) {
		str_t pair, tail;
		str_split2(rest, '&', &pair, &tail);
		rest = tail;
		if (pair.n == 0)
			continue;
		if (str_chr(pair, ';') >= 0)
			return err_set(err, ERR_INVALID, "invalid semicolon separator in query \"" STR_FMT "\"",
				       STR_ARG(pair));
		str_t k, v, dk, dv;
		str_split2(pair, '=', &k, &v);
		if (url_unescape(a, k, true, &dk, err) || url_unescape(a, v, true, &dv, err))
			return err_wrap(err, "query pair \"" STR_FMT "\"", STR_ARG(pair));
		url_params_add(a, params, dk, dv);
	}
	return 0;
}

bool url_params_get(const url_params_t *params, const char *key, str_t *val)
{
	for (size_t i = 0; i < params->n; i++) {
		if (str_eq_c(params->v[i].key, key)) {
			if (val)
				*val = params->v[i].val;
			return true;
		}
	}
	return false;
}

size_t url_params_all(const url_params_t *params, const char *key, str_t *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < params->n; i++) {
		if (!str_eq_c(params->v[i].key, key))
			continue;
		if (out && n < max)
			out[n] = params->v[i].val;
		n++;
	}
	return n;
}

void url_escape(buf_t *b, str_t s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '_' || c == '.' || c == '~') {
			buf_putc(b, (char)c);
		} else if (c == ' ') {
			buf_putc(b, '+');
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			buf_append(b, e, 3);
		}
	}
}
