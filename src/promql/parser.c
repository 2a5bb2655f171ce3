/*
 * parser.c — PromQL lexer and recursive-descent parser (Prometheus 2.42 grammar and checks).
 *
 * The lexer tokenises the whole query up front; the parser uses precedence climbing for binary
 * operators (^ right-associative, unary +/- with the precedence of *). Errors carry Prometheus's
 * "<line>:<col>: parse error: <msg>" prefix.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "promql/ast.h"

enum tok_type {
	T_EOF, T_IDENT, T_NUMBER, T_STRING, T_DURATION,
	T_LPAREN, T_RPAREN, T_LBRACE, T_RBRACE, T_LBRACKET, T_RBRACKET, T_COMMA, T_COLON, T_AT,
	T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW, T_EQLC, T_NEQ, T_LTE, T_LSS, T_GTE, T_GTR,
	T_EQL, T_EQL_REGEX, T_NEQ_REGEX,
};

typedef struct tok {
	enum tok_type type;
	int pos, len;
	double num;   /* T_NUMBER */
	int64_t dur;  /* T_DURATION */
	bool bad_dur; /* T_DURATION lexically fine but not a valid duration ("1m1h", ".5m") */
	str_t str;    /* T_STRING: unquoted value */
} tok_t;

typedef struct parser {
	arena_t *a;
	const char *q;
	size_t qlen;
	tok_t *toks;
	size_t ntoks, cap, i;
	err_t *err;
	int rc;
	int depth; /* recursion depth, bounded so hostile input cannot overflow the stack */
	int in_aggr; /* parsing inside an aggregation's parentheses (2.42 names that context in errors) */
} parser_t;

#define PARSER_MAX_DEPTH 200

static int perr(parser_t *p, int pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int perr(parser_t *p, int pos, const char *fmt, ...)
{
	if (p->rc)
		return p->rc;
	int line = 1, last_nl = -1;
	if (pos < 0)
		pos = 0;
	if ((size_t)pos > p->qlen)
		pos = (int)p->qlen;
	for (int i = 0; i < pos; i++)
		if (p->q[i] == '\n') {
			line++;
			last_nl = i;
		}
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	p->rc = err_set(p->err, ERR_INVALID, "%d:%d: parse error: %s", line, pos - last_nl, msg);
	return p->rc;
}

/* ---------------------------------------------------------------------------------- lexer */

static bool is_ident_start(int c)
{
	return isalpha(c) || c == '_' || c == ':';
}
static bool is_ident_char(int c)
{
	return isalnum(c) || c == '_' || c == ':';
}

static bool in_set(const char *set, char c)
{
	return c && strchr(set, c);
}

static bool is_alnum_(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Prometheus's lexer scans a number from q[i] as: "0x" and hex digits or digits, a fraction, an
 * exponent with optional sign (digits optional: "1e" is scanned and fails to parse). Returns the end. */
static size_t scan_number(const char *q, size_t n, size_t i)
{
	size_t j = i;
	bool hex = false;
	if (j < n && q[j] == '0') {
		j++;
		if (j < n && (q[j] == 'x' || q[j] == 'X')) {
			j++;
			hex = true;
		}
	}
	while (j < n && (hex ? isxdigit((unsigned char)q[j]) : isdigit((unsigned char)q[j])))
		j++;
	if (j < n && q[j] == '.') {
		j++;
		while (j < n && (hex ? isxdigit((unsigned char)q[j]) : isdigit((unsigned char)q[j])))
			j++;
	}
	if (j < n && (q[j] == 'e' || q[j] == 'E')) {
		j++;
		if (j < n && (q[j] == '+' || q[j] == '-'))
			j++;
		while (j < n && isdigit((unsigned char)q[j]))
			j++;
	}
	return j;
}

/* The rest of a duration after a scanned number at q[j] (units in any order, as the lexer accepts
 * them; the parser validates). True with *end after the duration when what follows is not
 * alphanumeric; false with *end after what was consumed (up to and including one offending
 * character, a whole UTF-8 sequence, after the units): the text 2.42 quotes in its error. */
static bool scan_duration_rest(const char *q, size_t n, size_t j, size_t *end)
{
	*end = j;
	if (j >= n || !in_set("smhdwy", q[j]))
		return false;
	j++;
	if (j < n && q[j] == 's')
		j++;
	while (j < n && isdigit((unsigned char)q[j])) {
		while (j < n && isdigit((unsigned char)q[j]))
			j++;
		if (j >= n || !in_set("smhdw", q[j])) {
			*end = j;
			return false;
		}
		j++;
		if (j < n && q[j] == 's')
			j++;
	}
	*end = j;
	if (j >= n || !is_alnum_(q[j]))
		return true;
	unsigned char c = (unsigned char)q[j++];
	if (c >= 0xc0)
		while (j < n && ((unsigned char)q[j] & 0xc0) == 0x80)
			j++;
	*end = j;
	return false;
}

static tok_t *push_tok(parser_t *p, enum tok_type t, int pos, int len)
{
	if (p->ntoks == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 32;
		p->toks = arena_realloc(p->a, p->toks, p->cap * sizeof(tok_t), ncap * sizeof(tok_t));
		p->cap = ncap;
	}
	tok_t *k = &p->toks[p->ntoks++];
	memset(k, 0, sizeof *k);
	k->type = t;
	k->pos = pos;
	k->len = len;
	return k;
}

static void utf8_put(buf_t *b, uint32_t c)
{
	if (c < 0x80) {
		buf_putc(b, (char)c);
	} else if (c < 0x800) {
		buf_putc(b, (char)(0xC0 | (c >> 6)));
		buf_putc(b, (char)(0x80 | (c & 0x3F)));
	} else if (c < 0x10000) {
		buf_putc(b, (char)(0xE0 | (c >> 12)));
		buf_putc(b, (char)(0x80 | ((c >> 6) & 0x3F)));
		buf_putc(b, (char)(0x80 | (c & 0x3F)));
	} else {
		buf_putc(b, (char)(0xF0 | (c >> 18)));
		buf_putc(b, (char)(0x80 | ((c >> 12) & 0x3F)));
		buf_putc(b, (char)(0x80 | ((c >> 6) & 0x3F)));
		buf_putc(b, (char)(0x80 | (c & 0x3F)));
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The character at q[i] as 2.42 names it in escape errors: U+0067 'g' (Go's %U %q of the rune). */
static const char *rune_desc(const char *q, size_t n, size_t i, char *buf, size_t bn)
{
	if (i >= n)
		return snprintf(buf, bn, "U+FFFD '\xef\xbf\xbd'"), buf;
	unsigned char c = (unsigned char)q[i];
	uint32_t r = c;
	size_t len = 1;
	if (c >= 0xc0) { /* the rune's bytes as they are (a valid sequence is printed raw by Go) */
		int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
		r = c & (0x3f >> extra);
		while (extra-- && len < n - i && ((unsigned char)q[i + len] & 0xc0) == 0x80)
			r = (r << 6) | ((unsigned char)q[i + len++] & 0x3f);
	}
	const char *esc = NULL;
	char tmp[8];
	switch (c) {
	case '\a': esc = "\\a"; break;
	case '\b': esc = "\\b"; break;
	case '\f': esc = "\\f"; break;
	case '\n': esc = "\\n"; break;
	case '\r': esc = "\\r"; break;
	case '\t': esc = "\\t"; break;
	case '\v': esc = "\\v"; break;
	case '\\': esc = "\\\\"; break;
	case '\'': esc = "\\'"; break;
	default:
		if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof tmp, "\\x%02x", c);
			esc = tmp;
		}
	}
	if (esc)
		snprintf(buf, bn, "U+%04X '%s'", (unsigned)r, esc);
	else
		snprintf(buf, bn, "U+%04X '%.*s'", (unsigned)r, (int)len, q + i);
	return buf;
}

/* Lex a quoted string starting at q[i] (the quote). Returns the index after the closing quote or -1. */
static int lex_string(parser_t *p, size_t i, str_t *out)
{
	const char *q = p->q;
	char quote = q[i];
	size_t start = i++;
	char rd[32];
	buf_t b;
	buf_init(&b);
	if (quote == '`') {
		while (i < p->qlen && q[i] != '`')
			i++;
		if (i >= p->qlen) {
			buf_release(&b);
			return perr(p, (int)start, "unterminated raw string"), -1;
		}
		*out = (str_t){arena_strndup(p->a, q + start + 1, i - start - 1), i - start - 1};
		buf_release(&b);
		return (int)i + 1;
	}
	for (;;) {
		if (i >= p->qlen || q[i] == '\n') {
			buf_release(&b);
			return perr(p, (int)start, "unterminated quoted string"), -1;
		}
		char c = q[i];
		if (c == quote) {
			i++;
			break;
		}
		if (c != '\\') {
			buf_putc(&b, c);
			i++;
			continue;
		}
		i++;
		if (i >= p->qlen) {
			buf_release(&b);
			return perr(p, (int)start, "unterminated quoted string"), -1;
		}
		c = q[i++];
		switch (c) {
		case 'a': buf_putc(&b, '\a'); break;
		case 'b': buf_putc(&b, '\b'); break;
		case 'f': buf_putc(&b, '\f'); break;
		case 'n': buf_putc(&b, '\n'); break;
		case 'r': buf_putc(&b, '\r'); break;
		case 't': buf_putc(&b, '\t'); break;
		case 'v': buf_putc(&b, '\v'); break;
		case '\\': buf_putc(&b, '\\'); break;
		case '"': case '\'':
			if (c != quote) {
				buf_release(&b);
				return perr(p, (int)start, "unknown escape sequence %s", rune_desc(q, p->qlen, i - 1, rd, sizeof rd)),
				       -1;
			}
			buf_putc(&b, c);
			break;
		case 'x': case 'u': case 'U': {
			int nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			uint32_t v = 0;
			for (int k = 0; k < nd; k++) {
				int h = i < p->qlen ? hexval((unsigned char)q[i]) : -1;
				if (h < 0) {
					buf_release(&b);
					return perr(p, (int)start, "illegal character %s in escape sequence",
						    rune_desc(q, p->qlen, i, rd, sizeof rd)),
					       -1;
				}
				v = v * 16 + (uint32_t)h;
				i++;
			}
			if (c == 'x')
				buf_putc(&b, (char)v);
			else {
				if (v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) {
					buf_release(&b);
					return perr(p, (int)start, "escape sequence is an invalid Unicode code point"), -1;
				}
				utf8_put(&b, v);
			}
			break;
		}
		default:
			if (c >= '0' && c <= '7') {
				uint32_t v = (uint32_t)(c - '0');
				for (int k = 0; k < 2; k++) {
					if (i >= p->qlen || q[i] < '0' || q[i] > '7') {
						buf_release(&b);
						return perr(p, (int)start, "illegal character %s in escape sequence",
							    rune_desc(q, p->qlen, i, rd, sizeof rd)),
						       -1;
					}
					v = v * 8 + (uint32_t)(q[i++] - '0');
				}
				if (v > 255) { /* 2.42's wording */
					buf_release(&b);
					return perr(p, (int)start, "escape sequence is an invalid Unicode code point"), -1;
				}
				buf_putc(&b, (char)v);
				break;
			}
			buf_release(&b);
			return perr(p, (int)start, "unknown escape sequence %s", rune_desc(q, p->qlen, i - 1, rd, sizeof rd)), -1;
		}
	}
	*out = (str_t){arena_strndup(p->a, b.p, b.n), b.n};
	buf_release(&b);
	return (int)i;
}

static double parse_number_text(const char *s, size_t n, bool *ok)
{
	char tmp[128];
	*ok = false;
	if (n == 0 || n >= sizeof tmp)
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	char *end;
	/* Go strconv.ParseInt(s, 0, 64) first: hex, octal with leading 0, decimal. */
	bool allint = true;
	for (size_t k = 0; k < n; k++)
		if (!isxdigit((unsigned char)tmp[k]) && !(k == 1 && (tmp[k] == 'x' || tmp[k] == 'X')))
			allint = false;
	if (allint) {
		bool hex = n > 2 && tmp[0] == '0' && (tmp[1] == 'x' || tmp[1] == 'X');
		bool oct = !hex && n > 1 && tmp[0] == '0';
		bool valid = true;
		for (size_t k = hex ? 2 : 0; k < n; k++) {
			int c = tmp[k];
			if (hex ? !isxdigit(c) : oct ? (c < '0' || c > '7') : !isdigit(c))
				valid = false;
		}
		if (valid) {
			errno = 0;
			long long v = strtoll(tmp, &end, hex ? 16 : oct ? 8 : 10);
			if (errno == 0 && *end == 0) {
				*ok = true;
				return (double)v;
			}
		}
		if (hex) {
			errno = 0;
			unsigned long long v = strtoull(tmp, &end, 16);
			if (*end == 0 && errno == 0) {
				/* Out of int64 range: Go falls back to ParseFloat, which rejects hex without p. */
				(void)v;
			}
			return 0;
		}
	}
	str_t sv = {tmp, n};
	double d;
	if (!str_to_double(sv, &d))
		return 0;
	*ok = true;
	return d;
}

static int lex(parser_t *p)
{
	const char *q = p->q;
	size_t n = p->qlen, i = 0;
	int depth_paren = 0, depth_brace = 0, depth_bracket = 0;
	while (i < n) {
		unsigned char c = (unsigned char)q[i];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			i++;
			continue;
		}
		if (c == '#') {
			while (i < n && q[i] != '\n')
				i++;
			continue;
		}
		int pos = (int)i;
		if (isdigit(c) || (c == '.' && i + 1 < n && isdigit((unsigned char)q[i + 1]))) {
			/* As 2.42 lexes: a number not followed by a letter, digit or "_" is a number (or,
			 * first thing in brackets, a duration missing its unit); otherwise a duration whose
			 * units the parser validates when it uses it. */
			bool range_start = p->ntoks > 0 && p->toks[p->ntoks - 1].type == T_LBRACKET;
			size_t j = scan_number(q, n, i);
			if (j >= n || !is_alnum_(q[j])) {
				if (range_start)
					return perr(p, pos, "missing unit character in duration");
				bool ok;
				double v = parse_number_text(q + i, j - i, &ok);
				if (!ok)
					return perr(p, pos, "error parsing number: strconv.ParseFloat: parsing \"%.*s\": invalid syntax",
						    (int)(j - i), q + i);
				tok_t *k = push_tok(p, T_NUMBER, pos, (int)(j - i));
				k->num = v;
				i = j;
				continue;
			}
			size_t end;
			if (!scan_duration_rest(q, n, j, &end))
				return perr(p, pos, range_start ? "bad duration syntax: \"%.*s\"" : "bad number or duration syntax: \"%.*s\"",
					    (int)(end - i), q + i);
			tok_t *k = push_tok(p, T_DURATION, pos, (int)(end - i));
			err_t derr = {0};
			int64_t total = 0;
			if (duration_parse((str_t){q + i, end - i}, &total, &derr))
				k->bad_dur = true;
			k->dur = total;
			i = end;
			continue;
		}
		if (is_ident_start(c) && !(c == ':' && depth_bracket > 0)) {
			size_t j = i;
			while (j < n && is_ident_char((unsigned char)q[j]))
				j++;
			size_t len = j - i;
			if ((len == 3 && strncasecmp(q + i, "inf", 3) == 0) || (len == 3 && strncasecmp(q + i, "nan", 3) == 0)) {
				tok_t *k = push_tok(p, T_NUMBER, pos, (int)len);
				k->num = (q[i] == 'i' || q[i] == 'I') ? INFINITY : NAN;
			} else {
				push_tok(p, T_IDENT, pos, (int)len);
			}
			i = j;
			continue;
		}
		if (c == '"' || c == '\'' || c == '`') {
			str_t s;
			int next = lex_string(p, i, &s);
			if (next < 0)
				return p->rc;
			tok_t *k = push_tok(p, T_STRING, pos, next - pos);
			k->str = s;
			i = (size_t)next;
			continue;
		}
		enum tok_type t;
		int len = 1;
		char c2 = i + 1 < n ? q[i + 1] : 0;
		switch (c) {
		case '(': t = T_LPAREN; depth_paren++; break;
		case ')':
			t = T_RPAREN;
			if (--depth_paren < 0)
				return perr(p, pos, "unexpected right parenthesis ')'");
			break;
		case '{':
			t = T_LBRACE;
			if (depth_brace++)
				return perr(p, pos, "unexpected left brace '{'");
			break;
		case '}':
			t = T_RBRACE;
			if (--depth_brace < 0)
				return perr(p, pos, "unexpected right brace '}'");
			break;
		case '[':
			t = T_LBRACKET;
			if (depth_bracket++)
				return perr(p, pos, "unexpected left bracket '['");
			break;
		case ']':
			t = T_RBRACKET;
			if (--depth_bracket < 0)
				return perr(p, pos, "unexpected right bracket ']'");
			break;
		case ',': t = T_COMMA; break;
		case ':': t = T_COLON; break;
		case '@': t = T_AT; break;
		case '+': t = T_ADD; break;
		case '-': t = T_SUB; break;
		case '*': t = T_MUL; break;
		case '/': t = T_DIV; break;
		case '%': t = T_MOD; break;
		case '^': t = T_POW; break;
		case '=':
			if (c2 == '=') { t = T_EQLC; len = 2; }
			else if (c2 == '~') { t = T_EQL_REGEX; len = 2; }
			else t = T_EQL;
			break;
		case '!':
			if (c2 == '=') { t = T_NEQ; len = 2; }
			else if (c2 == '~') { t = T_NEQ_REGEX; len = 2; }
			else return perr(p, pos, "unexpected character after '!': %s", c2 ? (char[]){c2, 0} : "EOF");
			break;
		case '<':
			if (c2 == '=') { t = T_LTE; len = 2; } else t = T_LSS;
			break;
		case '>':
			if (c2 == '=') { t = T_GTE; len = 2; } else t = T_GTR;
			break;
		default:
		{
			/* the whole UTF-8 sequence, as 2.42 prints the rune */
			size_t rl = 1;
			while (c >= 0xc0 && i + rl < n && ((unsigned char)q[i + rl] & 0xc0) == 0x80 && rl < 4)
				rl++;
			return perr(p, pos, "unexpected character: '%.*s'", (int)rl, q + i);
		}
		}
		push_tok(p, t, pos, len);
		i += (size_t)len;
	}
	if (depth_paren > 0)
		return perr(p, (int)n, "unclosed left parenthesis");
	if (depth_brace > 0)
		return perr(p, (int)n, "unexpected end of input inside braces");
	if (depth_bracket > 0)
		return perr(p, (int)n, "unclosed left bracket");
	push_tok(p, T_EOF, (int)n, 0);
	return 0;
}

/* ---------------------------------------------------------------------------------- helpers */

static tok_t *peek(parser_t *p)
{
	return &p->toks[p->i];
}
static tok_t *peek2(parser_t *p)
{
	return p->i + 1 < p->ntoks ? &p->toks[p->i + 1] : &p->toks[p->ntoks - 1];
}
static tok_t *next(parser_t *p)
{
	tok_t *t = &p->toks[p->i];
	if (t->type != T_EOF)
		p->i++;
	return t;
}
static str_t tok_text(parser_t *p, const tok_t *t)
{
	return (str_t){p->q + t->pos, (size_t)t->len};
}
static bool tok_is_kw(parser_t *p, const tok_t *t, const char *kw)
{
	return t->type == T_IDENT && (size_t)t->len == strlen(kw) && strncasecmp(p->q + t->pos, kw, (size_t)t->len) == 0;
}

static const char *const aggr_names[12];

/* "kind" followed by the token text Go-quoted, cut to its first 10 characters (UTF-8 runes) and
 * "..." after a longer one: how 2.42 names a string, number or duration it did not expect. */
static const char *desc_quoted(parser_t *p, const tok_t *t, const char *kind, char *buf, size_t n)
{
	str_t text = tok_text(p, t);
	size_t len = 0, runes = 0;
	while (len < text.n && runes < 10) {
		len++;
		while (len < text.n && ((unsigned char)text.p[len] & 0xc0) == 0x80)
			len++;
		runes++;
	}
	buf_t b = BUF_INIT;
	buf_printf(&b, "%s ", kind);
	labels_quote(&b, (str_t){text.p, len});
	if (len < text.n)
		buf_puts(&b, "...");
	snprintf(buf, n, "%s", b.p);
	buf_release(&b);
	return buf;
}

static const char *tok_desc(parser_t *p, const tok_t *t, char *buf, size_t n)
{
	static const char *const kws[] = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"};
	static const char *const ops[] = {"and", "or", "unless", "atan2"};
	switch (t->type) {
	case T_EOF: return "end of input";
	case T_IDENT:
		/* 2.42's keywords: <aggr:sum>, <op:and>, <by>; start/end only quoted */
		for (size_t k = 0; k < ARRAY_LEN(aggr_names); k++)
			if (tok_is_kw(p, t, aggr_names[k]))
				return snprintf(buf, n, "<aggr:%.*s>", t->len, p->q + t->pos), buf;
		for (size_t k = 0; k < ARRAY_LEN(ops); k++)
			if (tok_is_kw(p, t, ops[k]))
				return snprintf(buf, n, "<op:%.*s>", t->len, p->q + t->pos), buf;
		for (size_t k = 0; k < ARRAY_LEN(kws); k++)
			if (tok_is_kw(p, t, kws[k]))
				return snprintf(buf, n, "<%.*s>", t->len, p->q + t->pos), buf;
		if (tok_is_kw(p, t, "start") || tok_is_kw(p, t, "end"))
			return snprintf(buf, n, "\"%.*s\"", t->len, p->q + t->pos), buf;
		snprintf(buf, n, "%s \"%.*s\"", memchr(p->q + t->pos, ':', (size_t)t->len) ? "metric identifier" : "identifier",
			 t->len, p->q + t->pos);
		return buf;
	case T_NUMBER: return desc_quoted(p, t, "number", buf, n);
	case T_STRING: return desc_quoted(p, t, "string", buf, n);
	case T_DURATION: return desc_quoted(p, t, "duration", buf, n);
	case T_LPAREN: return "\"(\"";
	case T_RPAREN: return "\")\"";
	case T_LBRACE: return "\"{\"";
	case T_RBRACE: return "\"}\"";
	case T_LBRACKET: return "\"[\"";
	case T_RBRACKET: return "\"]\"";
	case T_COMMA: return "\",\"";
	case T_COLON: return "\":\"";
	case T_AT: return "\"@\"";
	default: snprintf(buf, n, "\"%.*s\"", t->len, p->q + t->pos); return buf;
	}
}

static int unexpected(parser_t *p, const char *ctx, const char *expected)
{
	char b[128];
	tok_t *t = peek(p);
	if (!ctx)
		return perr(p, t->pos, "unexpected %s", tok_desc(p, t, b, sizeof b));
	if (expected)
		return perr(p, t->pos, "unexpected %s in %s, expected %s", tok_desc(p, t, b, sizeof b), ctx, expected);
	return perr(p, t->pos, "unexpected %s in %s", tok_desc(p, t, b, sizeof b), ctx);
}

static int expect(parser_t *p, enum tok_type t, const char *ctx, const char *expected)
{
	if (peek(p)->type != t)
		return unexpected(p, ctx, expected);
	next(p);
	return 0;
}

static promql_expr_t *new_node(parser_t *p, promql_node_kind_t k, int pos)
{
	promql_expr_t *e = ARENA_NEW(p->a, promql_expr_t);
	e->kind = k;
	e->pos = pos;
	return e;
}

static const char *const aggr_names[12] = {"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
					 "topk", "bottomk", "quantile", "count_values"};

static int aggr_lookup(parser_t *p, const tok_t *t)
{
	if (t->type != T_IDENT)
		return -1;
	for (size_t k = 0; k < ARRAY_LEN(aggr_names); k++)
		if (tok_is_kw(p, t, aggr_names[k]))
			return (int)k;
	return -1;
}

/* Binary operator at the current token (0 if none), with its precedence. */
static promql_op_t peek_binop(parser_t *p, int *prec)
{
	tok_t *t = peek(p);
	switch (t->type) {
	case T_ADD: *prec = 3; return PROMQL_OP_ADD;
	case T_SUB: *prec = 3; return PROMQL_OP_SUB;
	case T_MUL: *prec = 4; return PROMQL_OP_MUL;
	case T_DIV: *prec = 4; return PROMQL_OP_DIV;
	case T_MOD: *prec = 4; return PROMQL_OP_MOD;
	case T_POW: *prec = 5; return PROMQL_OP_POW;
	case T_EQLC: *prec = 2; return PROMQL_OP_EQLC;
	case T_NEQ: *prec = 2; return PROMQL_OP_NEQ;
	case T_LTE: *prec = 2; return PROMQL_OP_LTE;
	case T_LSS: *prec = 2; return PROMQL_OP_LSS;
	case T_GTE: *prec = 2; return PROMQL_OP_GTE;
	case T_GTR: *prec = 2; return PROMQL_OP_GTR;
	case T_IDENT:
		if (tok_is_kw(p, t, "and")) { *prec = 1; return PROMQL_OP_AND; }
		if (tok_is_kw(p, t, "unless")) { *prec = 1; return PROMQL_OP_UNLESS; }
		if (tok_is_kw(p, t, "or")) { *prec = 0; return PROMQL_OP_OR; }
		if (tok_is_kw(p, t, "atan2")) { *prec = 4; return PROMQL_OP_ATAN2; }
		return PROMQL_OP_NONE;
	default: return PROMQL_OP_NONE;
	}
}

static bool label_name_ok(str_t s)
{
	if (s.n == 0 || !(isalpha((unsigned char)s.p[0]) || s.p[0] == '_'))
		return false;
	for (size_t i = 1; i < s.n; i++)
		if (!(isalnum((unsigned char)s.p[i]) || s.p[i] == '_'))
			return false;
	return true;
}

/* "(a, b, c)" label list; trailing comma allowed. */
static int parse_label_list(parser_t *p, const char *ctx, str_t **out, size_t *nout)
{
	if (expect(p, T_LPAREN, ctx, "\"(\""))
		return p->rc;
	size_t cap = 4, n = 0;
	str_t *v = arena_alloc(p->a, cap * sizeof(str_t));
	while (peek(p)->type != T_RPAREN) {
		tok_t *t = peek(p);
		if (t->type != T_IDENT || !label_name_ok(tok_text(p, t)))
			return unexpected(p, ctx, "label");
		next(p);
		if (n == cap) {
			v = arena_realloc(p->a, v, cap * sizeof(str_t), 2 * cap * sizeof(str_t));
			cap *= 2;
		}
		v[n++] = tok_text(p, t);
		if (peek(p)->type == T_COMMA)
			next(p);
		else if (peek(p)->type != T_RPAREN)
			return unexpected(p, ctx, "\",\" or \")\"");
	}
	next(p);
	*out = v;
	*nout = n;
	return 0;
}

static void matchers_cleanup(void *arg)
{
	promql_expr_t *e = arg;
	for (size_t i = 0; i < e->u.vs.nms; i++)
		matcher_release(&e->u.vs.ms[i]);
}

static int parse_expr(parser_t *p, int min_prec, promql_expr_t **out);

/* name{matchers} or {matchers}; the current token is the name (or '{' when name is empty). */
static int parse_vector_selector(parser_t *p, promql_expr_t **out)
{
	int pos = peek(p)->pos;
	str_t name = STR_NULL;
	if (peek(p)->type == T_IDENT)
		name = tok_text(p, next(p));
	typedef struct {
		match_type_t type;
		str_t name, value;
		int pos;
	} raw_m;
	raw_m *raw = NULL; /* any number of matchers, as Prometheus (arena: the query's size bounds it) */
	size_t nraw = 0, rawcap = 0;
	if (peek(p)->type == T_LBRACE) {
		next(p);
		while (peek(p)->type != T_RBRACE) {
			tok_t *lt = peek(p);
			if (lt->type != T_IDENT || !label_name_ok(tok_text(p, lt)))
				return unexpected(p, "label matching", "label matching operator") , p->rc;
			next(p);
			match_type_t mt;
			switch (peek(p)->type) {
			case T_EQL: mt = MATCH_EQ; break;
			case T_NEQ: mt = MATCH_NEQ; break;
			case T_EQL_REGEX: mt = MATCH_RE; break;
			case T_NEQ_REGEX: mt = MATCH_NRE; break;
			default: return unexpected(p, "label matching", "label matching operator");
			}
			next(p);
			if (peek(p)->type != T_STRING)
				return unexpected(p, "label matching", "string");
			tok_t *vt = next(p);
			if (nraw == rawcap) {
				size_t ncap = rawcap ? 2 * rawcap : 8;
				raw = arena_realloc(p->a, raw, rawcap * sizeof *raw, ncap * sizeof *raw);
				rawcap = ncap;
			}
			raw[nraw++] = (raw_m){mt, tok_text(p, lt), vt->str, lt->pos};
			if (peek(p)->type == T_COMMA)
				next(p);
			else if (peek(p)->type != T_RBRACE)
				return unexpected(p, "label matching", "\",\" or \"}\"");
		}
		next(p);
	}
	promql_expr_t *e = new_node(p, PROMQL_VECTOR_SEL, pos);
	size_t total = nraw + (name.n ? 1 : 0);
	e->u.vs.ms = arena_calloc(p->a, total ? total : 1, sizeof(matcher_t));
	e->u.vs.name = name;
	arena_on_release(p->a, matchers_cleanup, e);
	for (size_t k = 0; k < nraw; k++) {
		if (name.n && str_eq_c(raw[k].name, LABEL_METRIC_NAME))
			return perr(p, pos, "metric name must not be set twice: \"%.*s\" or \"%.*s\"", STR_ARG(name),
				    STR_ARG(raw[k].value));
		err_t merr = {0};
		if (matcher_init(&e->u.vs.ms[e->u.vs.nms], raw[k].type, raw[k].name, raw[k].value, &merr))
			return perr(p, raw[k].pos, "%s", merr.msg);
		e->u.vs.nms++;
	}
	if (name.n) {
		err_t merr = {0};
		if (matcher_init(&e->u.vs.ms[e->u.vs.nms], MATCH_EQ, STR(LABEL_METRIC_NAME), name, &merr))
			return perr(p, pos, "%s", merr.msg);
		e->u.vs.nms++;
	}
	bool nonempty = false;
	for (size_t k = 0; k < e->u.vs.nms; k++)
		if (!matcher_matches_empty(&e->u.vs.ms[k]))
			nonempty = true;
	if (!nonempty)
		return perr(p, pos, "vector selector must contain at least one non-empty matcher");
	*out = e;
	return 0;
}

static bool arg_matches(promql_type_t want, promql_type_t got)
{
	return want == got;
}

static int check_type(parser_t *p, const promql_expr_t *e, promql_type_t want, const char *ctx)
{
	promql_type_t got = promql_expr_type(e);
	if (!arg_matches(want, got))
		return perr(p, e->pos, "expected type %s in %s, got %s", promql_type_name(want), ctx, promql_type_name(got));
	return 0;
}

static int parse_call(parser_t *p, const promql_func_t *f, int pos, promql_expr_t **out)
{
	next(p); /* '(' */
	promql_expr_t **args = NULL; /* any number (label_join), as Prometheus */
	size_t nargs = 0, cap = 0;
	while (peek(p)->type != T_RPAREN) {
		if (nargs == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			args = arena_realloc(p->a, args, cap * sizeof *args, ncap * sizeof *args);
			cap = ncap;
		}
		if (parse_expr(p, 0, &args[nargs]))
			return p->rc;
		nargs++;
		if (peek(p)->type == T_COMMA) {
			next(p);
			if (peek(p)->type == T_RPAREN)
				return unexpected(p, "function call", NULL);
		} else if (peek(p)->type != T_RPAREN) {
			return unexpected(p, "function call", "\",\" or \")\"");
		}
	}
	next(p);
	promql_expr_t *e = new_node(p, PROMQL_CALL, pos);
	e->u.call.func = f;
	e->u.call.nargs = nargs;
	e->u.call.args = nargs ? args : arena_calloc(p->a, 1, sizeof *args);
	int na = f->nargs;
	if (f->variadic == 0) {
		if ((size_t)na != nargs)
			return perr(p, pos, "expected %d argument(s) in call to \"%s\", got %zu", na, f->name, nargs);
	} else {
		size_t min = (size_t)(na - 1);
		if (nargs < min)
			return perr(p, pos, "expected at least %zu argument(s) in call to \"%s\", got %zu", min, f->name, nargs);
		if (f->variadic > 0 && nargs > min + (size_t)f->variadic)
			return perr(p, pos, "expected at most %zu argument(s) in call to \"%s\", got %zu",
				    min + (size_t)f->variadic, f->name, nargs);
	}
	char ctx[96];
	snprintf(ctx, sizeof ctx, "call to function \"%s\"", f->name);
	for (size_t k = 0; k < nargs; k++) {
		int ti = (int)k;
		if (ti >= na) {
			if (f->variadic == 0)
				break;
			ti = na - 1;
		}
		if (check_type(p, args[k], f->args[ti], ctx))
			return p->rc;
	}
	*out = e;
	return 0;
}

static int parse_aggr(parser_t *p, int op, promql_expr_t **out)
{
	int pos = next(p)->pos;
	promql_expr_t *e = new_node(p, PROMQL_AGGR, pos);
	e->u.aggr.op = (promql_aggr_op_t)op;
	bool pre = false;
	if (tok_is_kw(p, peek(p), "by") || tok_is_kw(p, peek(p), "without")) {
		e->u.aggr.without = tok_is_kw(p, next(p), "without");
		e->u.aggr.has_grouping = true;
		pre = true;
		if (parse_label_list(p, "grouping opts", &e->u.aggr.grouping, &e->u.aggr.ngrouping))
			return p->rc;
	}
	if (peek(p)->type != T_LPAREN)
		return unexpected(p, "aggregation", "\"(\"");
	next(p);
	promql_expr_t *args[2];
	size_t nargs = 0;
	while (peek(p)->type != T_RPAREN) {
		promql_expr_t *a = NULL;
		p->in_aggr++;
		int rc = parse_expr(p, 0, &a);
		p->in_aggr--;
		if (rc)
			return p->rc;
		if (nargs < 2)
			args[nargs] = a;
		nargs++;
		if (peek(p)->type == T_COMMA)
			next(p);
		else if (peek(p)->type != T_RPAREN)
			return unexpected(p, "aggregation", "\",\" or \")\"");
	}
	next(p);
	if (tok_is_kw(p, peek(p), "by") || tok_is_kw(p, peek(p), "without")) {
		if (pre)
			return unexpected(p, "aggregation", NULL);
		e->u.aggr.without = tok_is_kw(p, next(p), "without");
		e->u.aggr.has_grouping = true;
		if (parse_label_list(p, "grouping opts", &e->u.aggr.grouping, &e->u.aggr.ngrouping))
			return p->rc;
	}
	bool param = op == PROMQL_AGG_TOPK || op == PROMQL_AGG_BOTTOMK || op == PROMQL_AGG_QUANTILE ||
		     op == PROMQL_AGG_COUNT_VALUES;
	size_t want = param ? 2 : 1;
	if (nargs != want)
		return perr(p, pos, "wrong number of arguments for aggregate expression provided, expected %zu, got %zu", want, nargs);
	if (param) {
		e->u.aggr.param = args[0];
		e->u.aggr.expr = args[1];
		promql_type_t pt = op == PROMQL_AGG_COUNT_VALUES ? PROMQL_TYPE_STRING : PROMQL_TYPE_SCALAR;
		if (check_type(p, args[0], pt, "aggregation parameter"))
			return p->rc;
	} else {
		e->u.aggr.expr = args[0];
	}
	if (check_type(p, e->u.aggr.expr, PROMQL_TYPE_VECTOR, "aggregation expression"))
		return p->rc;
	*out = e;
	return 0;
}

static promql_mods_t *mods_of(promql_expr_t *e)
{
	if (e->kind == PROMQL_VECTOR_SEL)
		return &e->u.vs.mods;
	if (e->kind == PROMQL_MATRIX_SEL)
		return &e->u.ms.vs->u.vs.mods;
	if (e->kind == PROMQL_SUBQUERY)
		return &e->u.sq.mods;
	return NULL;
}

/* The duration token at the current position (the caller checked its type); like 2.42, zero is an error. */
static int take_duration(parser_t *p, int64_t *out)
{
	tok_t *t = next(p);
	if (t->bad_dur)
		return perr(p, t->pos, "not a valid duration string: \"%.*s\"", t->len, p->q + t->pos);
	if (t->dur == 0)
		return perr(p, t->pos, "duration must be greater than 0");
	*out = t->dur;
	return 0;
}

static int parse_postfix(parser_t *p, promql_expr_t **io)
{
	promql_expr_t *e = *io;
	for (;;) {
		tok_t *t = peek(p);
		if (t->type == T_LBRACKET) {
			next(p);
			if (peek(p)->type != T_DURATION)
				return unexpected(p, "range", "duration") , p->rc;
			int64_t range = 0;
			if (take_duration(p, &range))
				return p->rc;
			if (peek(p)->type == T_RBRACKET) {
				next(p);
				if (e->kind != PROMQL_VECTOR_SEL)
					return perr(p, e->pos, "ranges only allowed for vector selectors");
				if (e->u.vs.mods.offset != 0)
					return perr(p, e->pos, "no offset modifiers allowed before range");
				if (e->u.vs.mods.at_kind)
					return perr(p, e->pos, "no @ modifiers allowed before range");
				promql_expr_t *m = new_node(p, PROMQL_MATRIX_SEL, e->pos);
				m->u.ms.vs = e;
				m->u.ms.range = range;
				e = m;
				continue;
			}
			if (peek(p)->type != T_COLON)
				return unexpected(p, "subquery or range", "\":\" or \"]\"");
			next(p);
			int64_t step = 0;
			if (peek(p)->type == T_DURATION && take_duration(p, &step))
				return p->rc;
			if (expect(p, T_RBRACKET, "subquery selector", "\"]\""))
				return p->rc;
			promql_type_t ty = promql_expr_type(e);
			if (ty != PROMQL_TYPE_VECTOR)
				return perr(p, e->pos, "subquery is only allowed on instant vector, got %s instead",
					    ty == PROMQL_TYPE_MATRIX ? "matrix" : promql_type_name(ty));
			promql_expr_t *s = new_node(p, PROMQL_SUBQUERY, e->pos);
			s->u.sq.expr = e;
			s->u.sq.range = range;
			s->u.sq.step = step;
			e = s;
			continue;
		}
		if (tok_is_kw(p, t, "offset")) {
			next(p);
			int sign = 1;
			if (peek(p)->type == T_SUB) {
				next(p);
				sign = -1;
			}
			if (peek(p)->type != T_DURATION)
				return unexpected(p, "offset", "duration");
			int64_t off = 0;
			if (take_duration(p, &off))
				return p->rc;
			off *= sign;
			promql_mods_t *m = mods_of(e);
			if (!m)
				return perr(p, t->pos, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery");
			if (m->offset != 0)
				return perr(p, t->pos, "offset may not be set multiple times");
			m->offset = off;
			continue;
		}
		if (t->type == T_AT) {
			next(p);
			promql_mods_t *m = mods_of(e);
			if (!m)
				return perr(p, t->pos, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery");
			if (m->at_kind)
				return perr(p, t->pos, "@ <timestamp> may not be set multiple times");
			tok_t *a = peek(p);
			if ((tok_is_kw(p, a, "start") || tok_is_kw(p, a, "end")) && peek2(p)->type == T_LPAREN) {
				m->at_kind = tok_is_kw(p, a, "start") ? PROMQL_AT_START : PROMQL_AT_END;
				next(p);
				next(p);
				if (expect(p, T_RPAREN, "@ modifier", "\")\""))
					return p->rc;
				continue;
			}
			double sign = 1;
			if (a->type == T_SUB || a->type == T_ADD) {
				sign = a->type == T_SUB ? -1 : 1;
				next(p);
				a = peek(p);
			}
			if (a->type != T_NUMBER)
				return unexpected(p, "@", "timestamp");
			next(p);
			double ts = a->num * sign;
			if (isinf(ts) || isnan(ts) || ts >= 9.2233720368547758e15 || ts <= -9.2233720368547758e15)
				return perr(p, a->pos, "timestamp out of bounds for @ modifier: %f", ts);
			m->at_kind = PROMQL_AT_TS;
			m->at = (int64_t)round(ts * 1000);
			continue;
		}
		break;
	}
	*io = e;
	return 0;
}

static int parse_primary(parser_t *p, promql_expr_t **out)
{
	tok_t *t = peek(p);
	promql_expr_t *e = NULL;
	switch (t->type) {
	case T_NUMBER:
		next(p);
		e = new_node(p, PROMQL_NUMBER, t->pos);
		e->u.number = t->num;
		break;
	case T_STRING:
		next(p);
		e = new_node(p, PROMQL_STRING, t->pos);
		e->u.string = t->str;
		break;
	case T_LPAREN: {
		next(p);
		promql_expr_t *inner = NULL;
		if (parse_expr(p, 0, &inner))
			return p->rc;
		if (expect(p, T_RPAREN, "paren expression", "\")\""))
			return p->rc;
		e = new_node(p, PROMQL_PAREN, t->pos);
		e->u.paren.expr = inner;
		break;
	}
	case T_LBRACE:
		if (parse_vector_selector(p, &e))
			return p->rc;
		break;
	case T_IDENT: {
		int ag = aggr_lookup(p, t);
		if (ag >= 0 && (peek2(p)->type == T_LPAREN || tok_is_kw(p, peek2(p), "by") || tok_is_kw(p, peek2(p), "without"))) {
			if (parse_aggr(p, ag, &e))
				return p->rc;
			break;
		}
		if (peek2(p)->type == T_LPAREN) {
			const promql_func_t *f = promql_func_lookup(tok_text(p, t));
			if (!f)
				return perr(p, t->pos, "unknown function with name \"%.*s\"", t->len, p->q + t->pos);
			next(p);
			if (parse_call(p, f, t->pos, &e))
				return p->rc;
			break;
		}
		/* Keywords Prometheus's grammar does not accept as metric names (by, without, offset, and,
		 * or, unless are accepted). */
		static const char *const kws[] = {"bool", "on", "ignoring", "group_left", "group_right", "atan2"};
		for (size_t k = 0; k < ARRAY_LEN(kws); k++)
			if (tok_is_kw(p, t, kws[k]))
				return unexpected(p, p->in_aggr ? "aggregation" : NULL, NULL);
		if (ag >= 0)
			return perr(p, peek2(p)->pos, "unexpected %s in aggregation, expected \"(\"",
				    peek2(p)->type == T_EOF ? "end of input" : "token");
		if (parse_vector_selector(p, &e))
			return p->rc;
		break;
	}
	case T_EOF:
		return perr(p, t->pos, "unexpected end of input");
	default: /* 2.42 names no context, except inside an aggregation */
		return unexpected(p, p->in_aggr ? "aggregation" : NULL, NULL);
	}
	if (parse_postfix(p, &e))
		return p->rc;
	*out = e;
	return 0;
}

static int parse_unary(parser_t *p, promql_expr_t **out)
{
	tok_t *t = peek(p);
	if (t->type == T_ADD || t->type == T_SUB) {
		next(p);
		promql_expr_t *inner = NULL;
		if (parse_expr(p, 5, &inner))
			return p->rc;
		if (inner->kind == PROMQL_NUMBER) {
			if (t->type == T_SUB)
				inner->u.number = -inner->u.number;
			inner->pos = t->pos;
			*out = inner;
			return 0;
		}
		promql_type_t ty = promql_expr_type(inner);
		if (ty != PROMQL_TYPE_SCALAR && ty != PROMQL_TYPE_VECTOR)
			return perr(p, t->pos, "unary expression only allowed on expressions of type scalar or instant vector, got \"%s\"",
				    promql_type_name(ty));
		promql_expr_t *e = new_node(p, PROMQL_UNARY, t->pos);
		e->u.unary.op = t->type == T_SUB ? PROMQL_OP_SUB : PROMQL_OP_ADD;
		e->u.unary.expr = inner;
		*out = e;
		return 0;
	}
	return parse_primary(p, out);
}

static int parse_expr_inner(parser_t *p, int min_prec, promql_expr_t **out);

static int parse_expr(parser_t *p, int min_prec, promql_expr_t **out)
{
	if (++p->depth > PARSER_MAX_DEPTH)
		return perr(p, peek(p)->pos, "expression nesting too deep (more than %d levels)", PARSER_MAX_DEPTH);
	int rc = parse_expr_inner(p, min_prec, out);
	p->depth--;
	return rc;
}

/* The operator at the cursor (op) with its bool / on / ignoring / group_left / group_right modifiers: a
 * new binary node without operands. */
static int parse_binop(parser_t *p, promql_op_t op, promql_expr_t *lhs, promql_expr_t **out, tok_t **optok,
		       bool *have_matching)
{
	*optok = next(p);
	promql_expr_t *e = new_node(p, PROMQL_BINARY, lhs->pos);
	e->u.bin.op = op;
	e->u.bin.card = promql_op_is_set(op) ? PROMQL_CARD_MANY_TO_MANY : PROMQL_CARD_ONE_TO_ONE;
	*have_matching = false;
	if (tok_is_kw(p, peek(p), "bool")) {
		next(p);
		e->u.bin.return_bool = true;
	}
	if (tok_is_kw(p, peek(p), "on") || tok_is_kw(p, peek(p), "ignoring")) {
		e->u.bin.on = tok_is_kw(p, next(p), "on");
		*have_matching = true;
		if (parse_label_list(p, "grouping opts", &e->u.bin.labels, &e->u.bin.nlabels))
			return p->rc;
		if (tok_is_kw(p, peek(p), "group_left") || tok_is_kw(p, peek(p), "group_right")) {
			e->u.bin.card = tok_is_kw(p, next(p), "group_left") ? PROMQL_CARD_MANY_TO_ONE : PROMQL_CARD_ONE_TO_MANY;
			if (peek(p)->type == T_LPAREN) {
				if (parse_label_list(p, "grouping opts", &e->u.bin.include, &e->u.bin.ninclude))
					return p->rc;
			}
		}
	}
	*out = e;
	return 0;
}

/* Binary node e gets its operands: Prometheus's checks of operand types and modifiers, and its type. */
static int finish_binary(parser_t *p, promql_expr_t *e, const tok_t *optok, bool have_matching, promql_expr_t *lhs,
			 promql_expr_t *rhs)
{
	promql_op_t op = e->u.bin.op;
	e->u.bin.lhs = lhs;
	e->u.bin.rhs = rhs;
	promql_type_t lt = promql_expr_type(lhs), rt = promql_expr_type(rhs);
	if (e->u.bin.return_bool && !promql_op_is_comparison(op))
		return perr(p, optok->pos, "bool modifier can only be used on comparison operators");
	if (promql_op_is_comparison(op) && !e->u.bin.return_bool && lt == PROMQL_TYPE_SCALAR && rt == PROMQL_TYPE_SCALAR)
		return perr(p, optok->pos, "comparisons between scalars must use BOOL modifier");
	if (e->u.bin.on)
		for (size_t a = 0; a < e->u.bin.nlabels; a++)
			for (size_t b = 0; b < e->u.bin.ninclude; b++)
				if (str_eq(e->u.bin.labels[a], e->u.bin.include[b]))
					return perr(p, optok->pos, "label \"%.*s\" must not occur in ON and GROUP clause at once",
						    STR_ARG(e->u.bin.labels[a]));
	if (lt != PROMQL_TYPE_SCALAR && lt != PROMQL_TYPE_VECTOR)
		return perr(p, lhs->pos, "binary expression must contain only scalar and instant vector types");
	if (rt != PROMQL_TYPE_SCALAR && rt != PROMQL_TYPE_VECTOR)
		return perr(p, rhs->pos, "binary expression must contain only scalar and instant vector types");
	if (lt != PROMQL_TYPE_VECTOR || rt != PROMQL_TYPE_VECTOR) {
		if (have_matching && e->u.bin.nlabels > 0)
			return perr(p, e->pos, "vector matching only allowed between instant vectors");
		e->u.bin.has_matching = false;
		e->u.bin.on = false;
		e->u.bin.nlabels = 0;
		e->u.bin.ninclude = 0;
		e->u.bin.card = PROMQL_CARD_ONE_TO_ONE;
	} else {
		e->u.bin.has_matching = true;
		if (promql_op_is_set(op)) {
			if (e->u.bin.card == PROMQL_CARD_ONE_TO_MANY || e->u.bin.card == PROMQL_CARD_MANY_TO_ONE)
				return perr(p, e->pos, "no grouping allowed for \"%s\" operation", promql_op_str(op));
		}
	}
	if ((lt == PROMQL_TYPE_SCALAR || rt == PROMQL_TYPE_SCALAR) && promql_op_is_set(op))
		return perr(p, e->pos, "set operator \"%s\" not allowed in binary scalar expression", promql_op_str(op));
	e->u.bin.type = lt == PROMQL_TYPE_SCALAR && rt == PROMQL_TYPE_SCALAR ? PROMQL_TYPE_SCALAR : PROMQL_TYPE_VECTOR;
	return 0;
}

/* a ^ b ^ ... ^ z (right-associative: a ^ (b ^ (...))), lhs = a already parsed: the chain is read in one
 * loop and folded from the right (checks innermost first, as nested parsing does), so its length never
 * nests the parser. ^ binds tightest: each operand is a unary expression. */
static int parse_pow_chain(parser_t *p, promql_expr_t *lhs, promql_expr_t **out)
{
	typedef struct {
		promql_expr_t *e, *operand;
		tok_t *optok;
		bool have_matching;
	} link_t;
	link_t *l = NULL;
	size_t n = 0, cap = 0;
	int prec;
	while (peek_binop(p, &prec) == PROMQL_OP_POW) {
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			l = arena_realloc(p->a, l, cap * sizeof *l, ncap * sizeof *l);
			cap = ncap;
		}
		link_t *k = &l[n++];
		if (parse_binop(p, PROMQL_OP_POW, n == 1 ? lhs : l[n - 2].operand, &k->e, &k->optok, &k->have_matching) ||
		    parse_unary(p, &k->operand))
			return p->rc;
	}
	promql_expr_t *rhs = l[n - 1].operand;
	for (size_t k = n; k-- > 0;) {
		if (finish_binary(p, l[k].e, l[k].optok, l[k].have_matching, k ? l[k - 1].operand : lhs, rhs))
			return p->rc;
		rhs = l[k].e;
	}
	*out = rhs;
	return 0;
}

static int parse_expr_inner(parser_t *p, int min_prec, promql_expr_t **out)
{
	promql_expr_t *lhs = NULL;
	if (parse_unary(p, &lhs))
		return p->rc;
	for (;;) {
		int prec;
		promql_op_t op = peek_binop(p, &prec);
		if (op == PROMQL_OP_NONE || prec < min_prec)
			break;
		if (op == PROMQL_OP_POW) {
			if (parse_pow_chain(p, lhs, &lhs))
				return p->rc;
			continue;
		}
		/* left-associative: the loop builds (a + b) + c without nesting */
		promql_expr_t *e, *rhs = NULL;
		tok_t *optok;
		bool have_matching;
		if (parse_binop(p, op, lhs, &e, &optok, &have_matching) || parse_expr(p, prec + 1, &rhs) ||
		    finish_binary(p, e, optok, have_matching, lhs, rhs))
			return p->rc;
		lhs = e;
	}
	*out = lhs;
	return 0;
}

int promql_parse(arena_t *a, const char *query, size_t len, promql_expr_t **out, err_t *err)
{
	parser_t p = {.a = a, .q = query, .qlen = len, .err = err};
	if (lex(&p))
		return p.rc;
	if (peek(&p)->type == T_EOF)
		return perr(&p, 0, "no expression found in input");
	promql_expr_t *e = NULL;
	if (parse_expr(&p, 0, &e))
		return p.rc;
	if (peek(&p)->type != T_EOF) {
		char b[128];
		return perr(&p, peek(&p)->pos, "unexpected %s", tok_desc(&p, peek(&p), b, sizeof b));
	}
	*out = e;
	return 0;
}
