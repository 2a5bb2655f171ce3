/*
 * selector.c — series selector parser for --match style flags.
 */
#include "model/selector.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/vec.h"

static void put_utf8(buf_t *b, uint32_t r)
{
	char o[4];
	if (r < 0x80) {
		buf_putc(b, (char)r);
	} else if (r < 0x800) {
		o[0] = (char)(0xc0 | (r >> 6)), o[1] = (char)(0x80 | (r & 0x3f));
		buf_append(b, o, 2);
	} else if (r < 0x10000) {
		o[0] = (char)(0xe0 | (r >> 12)), o[1] = (char)(0x80 | ((r >> 6) & 0x3f)), o[2] = (char)(0x80 | (r & 0x3f));
		buf_append(b, o, 3);
	} else {
		o[0] = (char)(0xf0 | (r >> 18)), o[1] = (char)(0x80 | ((r >> 12) & 0x3f));
		o[2] = (char)(0x80 | ((r >> 6) & 0x3f)), o[3] = (char)(0x80 | (r & 0x3f));
		buf_append(b, o, 4);
	}
}

long selector_unquote(str_t s, buf_t *b, err_t *err)
{
	if (!s.n || (s.p[0] != '"' && s.p[0] != '\'' && s.p[0] != '`'))
		return err_set(err, ERR_INVALID, "expected a quoted string"), -1;
	char q = s.p[0];
	size_t i = 1;
	while (i < s.n) {
		char c = s.p[i];
		if (c == q)
			return (long)(i + 1);
		if (q == '`' || c != '\\') {
			if (c == '\n' && q != '`')
				break;
			buf_putc(b, c);
			i++;
			continue;
		}
		if (i + 1 >= s.n)
			break;
		char e = s.p[i + 1];
		i += 2;
		switch (e) {
		case 'a': buf_putc(b, '\a'); break;
		case 'b': buf_putc(b, '\b'); break;
		case 'f': buf_putc(b, '\f'); break;
		case 'n': buf_putc(b, '\n'); break;
		case 'r': buf_putc(b, '\r'); break;
		case 't': buf_putc(b, '\t'); break;
		case 'v': buf_putc(b, '\v'); break;
		case '\\': buf_putc(b, '\\'); break;
		case '"':
		case '\'':
			buf_putc(b, e);
			break;
		case 'x':
		case 'u':
		case 'U': {
			int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
			uint32_t r = 0;
			if (i + (size_t)nd > s.n)
				return err_set(err, ERR_INVALID, "invalid escape sequence in string"), -1;
			for (int k = 0; k < nd; k++) {
				int h = str_hex_digit(s.p[i + (size_t)k]);
				if (h < 0)
					return err_set(err, ERR_INVALID, "invalid escape sequence in string"), -1;
				r = r * 16 + (uint32_t)h;
			}
			i += (size_t)nd;
			if (e == 'x')
				buf_putc(b, (char)r);
			else if (r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
				return err_set(err, ERR_INVALID, "invalid unicode escape in string"), -1;
			else
				put_utf8(b, r);
			break;
		}
		default:
			if (e >= '0' && e <= '7' && i + 1 < s.n && s.p[i] >= '0' && s.p[i] <= '7' && s.p[i + 1] >= '0' &&
			    s.p[i + 1] <= '7') {
				int r = (e - '0') * 64 + (s.p[i] - '0') * 8 + (s.p[i + 1] - '0');
				if (r > 255)
					return err_set(err, ERR_INVALID, "invalid octal escape in string"), -1;
				buf_putc(b, (char)r);
				i += 2;
				break;
			}
			return err_set(err, ERR_INVALID, "unknown escape sequence \\%c in string", e), -1;
		}
	}
	return err_set(err, ERR_INVALID, "unterminated quoted string"), -1;
}

static bool name_start(char c, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool name_char(char c, bool colon)
{
	return name_start(c, colon) || (c >= '0' && c <= '9');
}

static size_t skip_ws(str_t s, size_t i)
{
	while (i < s.n && (s.p[i] == ' ' || s.p[i] == '\t' || s.p[i] == '\n' || s.p[i] == '\r'))
		i++;
	return i;
}

typedef VEC(matcher_t) matcher_vec_t;

static int perr(err_t *err, size_t pos, const char *what)
{
	return err_set(err, ERR_INVALID, "parse error at char %zu: %s", pos + 1, what);
}

int selector_parse(str_t s, matcher_t **out, size_t *n, err_t *err)
{
	matcher_vec_t v = {0};
	buf_t val = BUF_INIT;
	int rc = 0;
	size_t i = skip_ws(s, 0);
	if (i < s.n && name_start(s.p[i], true)) {
		size_t st = i;
		while (i < s.n && name_char(s.p[i], true))
			i++;
		VEC_RESERVE(&v, v.n + 1);
		matcher_t *m = &v.v[v.n++];
		rc = matcher_init(m, MATCH_EQ, STR(LABEL_METRIC_NAME), str_from(s.p + st, i - st), err);
		if (rc) {
			v.n--;
			goto fail;
		}
		i = skip_ws(s, i);
	}
	if (i < s.n && s.p[i] == '{') {
		i = skip_ws(s, i + 1);
		while (i < s.n && s.p[i] != '}') {
			if (!name_start(s.p[i], false)) {
				rc = perr(err, i, "expected label name");
				goto fail;
			}
			size_t st = i;
			while (i < s.n && name_char(s.p[i], false))
				i++;
			str_t name = str_from(s.p + st, i - st);
			i = skip_ws(s, i);
			match_type_t t;
			if (i + 1 < s.n && s.p[i] == '=' && s.p[i + 1] == '~')
				t = MATCH_RE, i += 2;
			else if (i + 1 < s.n && s.p[i] == '!' && s.p[i + 1] == '=')
				t = MATCH_NEQ, i += 2;
			else if (i + 1 < s.n && s.p[i] == '!' && s.p[i + 1] == '~')
				t = MATCH_NRE, i += 2;
			else if (i < s.n && s.p[i] == '=')
				t = MATCH_EQ, i += 1;
			else {
				rc = perr(err, i, "expected one of =, !=, =~, !~");
				goto fail;
			}
			i = skip_ws(s, i);
			buf_reset(&val);
			long used = selector_unquote(str_from(s.p + i, s.n - i), &val, err);
			if (used < 0) {
				rc = err_wrap(err, "parse error at char %zu", i + 1);
				goto fail;
			}
			i = skip_ws(s, i + (size_t)used);
			VEC_RESERVE(&v, v.n + 1);
		matcher_t *m = &v.v[v.n++];
			rc = matcher_init(m, t, name, buf_str(&val), err);
			if (rc) {
				v.n--;
				goto fail;
			}
			if (i < s.n && s.p[i] == ',')
				i = skip_ws(s, i + 1);
			else if (i < s.n && s.p[i] != '}') {
				rc = perr(err, i, "expected , or }");
				goto fail;
			}
		}
		if (i >= s.n) {
			rc = perr(err, i, "unclosed {");
			goto fail;
		}
		i = skip_ws(s, i + 1);
	}
	if (i < s.n) {
		rc = perr(err, i, "unexpected character");
		goto fail;
	}
	if (v.n == 0) {
		rc = perr(err, 0, "selector needs at least one matcher");
		goto fail;
	}
	buf_release(&val);
	*out = v.v;
	*n = v.n;
	return 0;
fail:
	buf_release(&val);
	selector_free(v.v, v.n);
	return rc ? rc : ERR_INVALID;
}

void selector_free(matcher_t *ms, size_t n)
{
	for (size_t i = 0; i < n; i++)
		matcher_release(&ms[i]);
	free(ms);
}
