/*
 * matcher.c — label matchers. Regexes: RE2 syntax check, then PCRE2 (JIT, match limit), fully anchored;
 * literals and alternations of literals bypass PCRE2.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/matcher.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define MATCHER_MATCH_LIMIT 1000000u
#define MATCHER_MAX_REPEAT 1000

struct matcher_re {
	pcre2_code *code;   /* NULL when the regex is a literal set */
	bool literal;       /* vals is the exact set of matched values */
	str_t *vals;
	size_t nvals;
	char *storage;      /* backing bytes of vals */
	pcre2_match_context *mctx;
};

static _Thread_local pcre2_match_data *tl_md;
/* Frees a thread's match data when the thread exits (worker pools come and go). */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_free(void *p)
{
	pcre2_match_data_free(p);
}

static void md_key_init(void)
{
	pthread_key_create(&md_key, md_free);
}

static bool is_meta(char c)
{
	return strchr("\\.+*?()|[]{}^$", c) != NULL && c != 0;
}

static bool is_punct_escapable(char c)
{
	return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e);
}

/* Try to read the regex as lit1|lit2|... with only escaped punctuation. Fills re->vals on success. */
static bool parse_literal_set(matcher_re_t *re, str_t v)
{
	for (size_t i = 0; i < v.n; i++) {
		char c = v.p[i];
		if (c == '\\') {
			if (i + 1 >= v.n || !is_punct_escapable(v.p[i + 1]))
				return false;
			i++;
		} else if (c != '|' && is_meta(c)) {
			return false;
		}
	}
	size_t n = 1;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] == '\\')
			i++;
		else if (v.p[i] == '|')
			n++;
	}
	re->storage = xmalloc(v.n + 1);
	re->vals = xcalloc(n, sizeof(str_t));
	re->nvals = 0;
	size_t w = 0, start = 0;
	for (size_t i = 0; i <= v.n; i++) {
		if (i == v.n || v.p[i] == '|') {
			str_t s = str_from(re->storage + start, w - start);
			bool dup = false;
			for (size_t k = 0; k < re->nvals; k++)
				dup |= str_eq(re->vals[k], s);
			if (!dup)
				re->vals[re->nvals++] = s;
			start = w;
			continue;
		}
		if (v.p[i] == '\\')
			i++;
		re->storage[w++] = v.p[i];
	}
	re->literal = true;
	return true;
}

static int re_err(err_t *err, const char *what, const char *p, size_t n)
{
	return err_set(err, ERR_INVALID, "error parsing regexp: %s: `%.*s`", what, (int)n, p);
}

/* Reject syntax that PCRE2 accepts but RE2 (Go regexp) does not, with Go's messages. */
static int re2_validate(str_t v, err_t *err)
{
	const char *p = v.p;
	size_t n = v.n;
	int depth = 0;
	bool in_class = false;
	bool can_repeat = false; /* previous token is repeatable */
	bool last_was_repeat = false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\\') {
			if (i + 1 >= n)
				return re_err(err, "trailing backslash at end of expression", "", 0);
			char e = p[i + 1];
			if (e == 'Q') {
				const char *end = NULL;
				for (size_t k = i + 2; k + 1 < n; k++)
					if (p[k] == '\\' && p[k + 1] == 'E') {
						end = p + k;
						break;
					}
				i = end ? (size_t)(end - p) + 1 : n;
				can_repeat = true, last_was_repeat = false;
				continue;
			}
			bool ok = is_punct_escapable(e) || strchr("aftnrvdDsSwWpPx0", e) ||
				  (!in_class && strchr("bBAz", e));
			if (e >= '1' && e <= '7' && i + 2 < n && p[i + 2] >= '0' && p[i + 2] <= '7')
				ok = true; /* octal */
			if (!ok || e == 0) {
				size_t len = 2;
				if (e >= '1' && e <= '9')
					len = 2;
				return re_err(err, "invalid escape sequence", p + i, len);
			}
			i++;
			can_repeat = !(e == 'b' || e == 'B' || e == 'A' || e == 'z');
			last_was_repeat = false;
			continue;
		}
		if (in_class) {
			if (c == '[' && i + 1 < n && p[i + 1] == ':') {
				const char *close = NULL;
				for (size_t k = i + 2; k + 1 < n; k++)
					if (p[k] == ':' && p[k + 1] == ']') {
						close = p + k;
						break;
					}
				if (close)
					i = (size_t)(close - p) + 1;
				continue;
			}
			if (c == ']')
				in_class = false, can_repeat = true;
			continue;
		}
		switch (c) {
		case '[':
			in_class = true;
			if (i + 1 < n && p[i + 1] == '^')
				i++;
			if (i + 1 < n && p[i + 1] == ']')
				i++; /* leading ] is literal */
			last_was_repeat = false;
			break;
		case '(':
			if (i + 1 < n && p[i + 1] == '?') {
				if (i + 2 >= n)
					return re_err(err, "missing argument to repetition operator", "?", 1);
				char g = p[i + 2];
				if (g == 'P' && i + 3 < n && p[i + 3] == '<') {
					size_t k = i + 4;
					while (k < n && p[k] != '>')
						k++;
					if (k >= n)
						return re_err(err, "invalid named capture", p + i, n - i);
					depth++;
					i = k;
					can_repeat = false, last_was_repeat = false;
					continue;
				} else if (g == ':' || g == 'i' || g == 'm' || g == 's' || g == 'U' || g == '-') {
					size_t k = i + 2;
					while (k < n && strchr("imsU-", p[k]) && p[k])
						k++;
					if (k >= n || (p[k] != ')' && p[k] != ':'))
						return re_err(err, "invalid or unsupported Perl syntax", p + i, k < n ? k - i + 1 : n - i);
					if (p[k] == ')') {
						i = k;
						last_was_repeat = false, can_repeat = false;
						continue;
					}
					depth++;
					i = k;
					can_repeat = false, last_was_repeat = false;
					continue;
				} else {
					size_t len = 3;
					if (g == '<' && i + 3 < n && (p[i + 3] == '=' || p[i + 3] == '!'))
						len = 4;
					return re_err(err, "invalid or unsupported Perl syntax", p + i, len);
				}
			}
			depth++;
			can_repeat = false, last_was_repeat = false;
			break;
		case ')':
			if (depth == 0)
				return re_err(err, "unexpected )", p, n);
			depth--;
			can_repeat = true, last_was_repeat = false;
			break;
		case '*':
		case '+':
		case '?':
		case '{': {
			size_t tok_end = i + 1;
			if (c == '{') {
				/* {n}, {n,}, {n,m}; anything else is a literal '{' in RE2 */
				size_t k = i + 1;
				long lo = 0, hi = -1;
				bool digits = false;
				while (k < n && p[k] >= '0' && p[k] <= '9') {
					lo = lo * 10 + (p[k] - '0');
					if (lo > 100000)
						lo = 100000;
					k++, digits = true;
				}
				if (!digits) {
					can_repeat = true, last_was_repeat = false;
					break;
				}
				hi = lo;
				if (k < n && p[k] == ',') {
					k++;
					hi = -1;
					bool d2 = false;
					long h = 0;
					while (k < n && p[k] >= '0' && p[k] <= '9') {
						h = h * 10 + (p[k] - '0');
						if (h > 100000)
							h = 100000;
						k++, d2 = true;
					}
					if (d2)
						hi = h;
				}
				if (k >= n || p[k] != '}') {
					can_repeat = true, last_was_repeat = false;
					break;
				}
				if (lo > MATCHER_MAX_REPEAT || hi > MATCHER_MAX_REPEAT || (hi >= 0 && hi < lo))
					return re_err(err, "invalid repeat count", p + i, k - i + 1);
				tok_end = k + 1;
			}
			if (last_was_repeat) {
				/* Go allows one trailing '?' (non-greedy) but no possessive/nested repetition. */
				return re_err(err, "invalid nested repetition operator", p + i - 1, tok_end - i + 1);
			}
			if (!can_repeat)
				return re_err(err, "missing argument to repetition operator", p + i, tok_end - i);
			i = tok_end - 1;
			if (i + 1 < n && p[i + 1] == '?')
				i++; /* non-greedy */
			last_was_repeat = true;
			break;
		}
		case '|':
			can_repeat = false, last_was_repeat = false;
			break;
		case '^':
		case '$':
			can_repeat = false, last_was_repeat = false;
			break;
		default:
			can_repeat = true, last_was_repeat = false;
			break;
		}
	}
	if (in_class)
		return re_err(err, "missing closing ]", p, n);
	if (depth > 0)
		return re_err(err, "missing closing )", p, n);
	return 0;
}

static int re_compile(matcher_re_t *re, str_t v, err_t *err)
{
	int rc = re2_validate(v, err);
	if (rc)
		return rc;
	if (parse_literal_set(re, v))
		return 0;
	buf_t pat = BUF_INIT;
	buf_puts(&pat, "(?:");
	buf_append_str(&pat, v);
	buf_puts(&pat, ")");
	int ecode;
	PCRE2_SIZE eoff;
	re->code = pcre2_compile((PCRE2_SPTR)pat.p, pat.n,
				 PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOLLAR_ENDONLY | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
				 &ecode, &eoff, NULL);
	buf_release(&pat);
	if (!re->code) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ecode, msg, sizeof msg);
		return err_set(err, ERR_INVALID, "error parsing regexp: %s: `" STR_FMT "`", (const char *)msg, STR_ARG(v));
	}
	(void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
	re->mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(re->mctx, MATCHER_MATCH_LIMIT);
	return 0;
}

static void re_free(matcher_re_t *re)
{
	if (!re)
		return;
	if (re->code)
		pcre2_code_free(re->code);
	if (re->mctx)
		pcre2_match_context_free(re->mctx);
	free(re->vals);
	free(re->storage);
	free(re);
}

int matcher_init(matcher_t *m, match_type_t type, str_t name, str_t value, err_t *err)
{
	memset(m, 0, sizeof *m);
	if ((unsigned)type > MATCH_NRE)
		return err_set(err, ERR_INVALID, "invalid matcher type %d", (int)type);
	m->type = type;
	if (type == MATCH_RE || type == MATCH_NRE) {
		matcher_re_t *re = xcalloc(1, sizeof *re);
		int rc = re_compile(re, value, err);
		if (rc) {
			re_free(re);
			return rc;
		}
		m->re = re;
	}
	char *nm = xmalloc(name.n + value.n + 2);
	memcpy(nm, name.p, name.n);
	nm[name.n] = 0;
	memcpy(nm + name.n + 1, value.p, value.n);
	nm[name.n + 1 + value.n] = 0;
	m->name = str_from(nm, name.n);
	m->value = str_from(nm + name.n + 1, value.n);
	return 0;
}

void matcher_release(matcher_t *m)
{
	if (!m)
		return;
	re_free(m->re);
	if (m->name.p)
		free((void *)m->name.p);
	memset(m, 0, sizeof *m);
}

static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	uint32_t r, min;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		len = 2, min = 0x80, r = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		len = 3, min = 0x800, r = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		len = 4, min = 0x10000, r = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		r = (r << 6) | (p[i] & 0x3f);
	}
	if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
		return 0;
	return len;
}

static void utf8_repair(buf_t *b, str_t v)
{
	const unsigned char *p = (const unsigned char *)v.p;
	for (size_t i = 0; i < v.n;) {
		size_t l = utf8_len(p + i, v.n - i);
		if (!l) {
			buf_append(b, "\xef\xbf\xbd", 3);
			i++;
		} else {
			buf_append(b, p + i, l);
			i += l;
		}
	}
}

static bool re_match(const matcher_re_t *re, str_t v)
{
	if (re->literal) {
		for (size_t i = 0; i < re->nvals; i++)
			if (str_eq(re->vals[i], v))
				return true;
		return false;
	}
	if (!tl_md) {
		tl_md = pcre2_match_data_create(1, NULL);
		pthread_once(&md_once, md_key_init);
		pthread_setspecific(md_key, tl_md);
	}
	int rc = pcre2_match(re->code, (PCRE2_SPTR)(v.n ? v.p : ""), v.n, 0, 0, tl_md, re->mctx);
	if (rc == PCRE2_ERROR_NOMATCH && !utf8_valid(v)) {
		/* Go's regexp reads each invalid byte as U+FFFD; do the same on a repaired copy. */
		buf_t fixed = BUF_INIT;
		utf8_repair(&fixed, v);
		rc = pcre2_match(re->code, (PCRE2_SPTR)fixed.p, fixed.n, 0, 0, tl_md, re->mctx);
		buf_release(&fixed);
	}
	return rc >= 0;
}

bool matcher_matches(const matcher_t *m, str_t value)
{
	switch (m->type) {
	case MATCH_EQ:
		return str_eq(m->value, value);
	case MATCH_NEQ:
		return !str_eq(m->value, value);
	case MATCH_RE:
		return re_match(m->re, value);
	case MATCH_NRE:
		return !re_match(m->re, value);
	}
	return false;
}

bool matcher_matches_empty(const matcher_t *m)
{
	return matcher_matches(m, STR_NULL);
}

bool matcher_matches_labels(const matcher_t *m, const labels_t *ls)
{
	return matcher_matches(m, labels_get(ls, m->name, NULL));
}

int matcher_literal_values(const matcher_t *m, const str_t **vals)
{
	if (m->type == MATCH_EQ) {
		*vals = &m->value;
		return 1;
	}
	if (m->type == MATCH_RE && m->re->literal) {
		*vals = m->re->vals;
		return (int)m->re->nvals;
	}
	return -1;
}

const char *match_type_str(match_type_t t)
{
	switch (t) {
	case MATCH_EQ: return "=";
	case MATCH_NEQ: return "!=";
	case MATCH_RE: return "=~";
	case MATCH_NRE: return "!~";
	}
	return "?";
}

void matchers_format(buf_t *b, const matcher_t *ms, size_t n)
{
	buf_putc(b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_puts(b, ", ");
		buf_append_str(b, ms[i].name);
		buf_puts(b, match_type_str(ms[i].type));
		labels_quote(b, ms[i].value);
	}
	buf_putc(b, '}');
}

/* ---- regexes with capture groups (relabelling) ---- */

struct matcher_capre {
	pcre2_code *code;
	pcre2_match_context *mctx;
	uint32_t ngroups; /* capture groups, not counting group 0 */
};

int matcher_capre_new(matcher_capre_t **out, str_t pattern, err_t *err)
{
	int rc = re2_validate(pattern, err);
	if (rc)
		return rc;
	buf_t pat = BUF_INIT;
	buf_puts(&pat, "(?:");
	buf_append_str(&pat, pattern);
	buf_puts(&pat, ")");
	int ecode;
	PCRE2_SIZE eoff;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat.p, pat.n,
					 PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOLLAR_ENDONLY | PCRE2_UTF |
						 PCRE2_MATCH_INVALID_UTF,
					 &ecode, &eoff, NULL);
	buf_release(&pat);
	if (!code) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ecode, msg, sizeof msg);
		return err_set(err, ERR_INVALID, "error parsing regexp: %s: `" STR_FMT "`", (const char *)msg,
			       STR_ARG(pattern));
	}
	(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	matcher_capre_t *re = xcalloc(1, sizeof *re);
	re->code = code;
	re->mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(re->mctx, MATCHER_MATCH_LIMIT);
	pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &re->ngroups);
	*out = re;
	return 0;
}

void matcher_capre_free(matcher_capre_t *re)
{
	if (!re)
		return;
	pcre2_code_free(re->code);
	pcre2_match_context_free(re->mctx);
	free(re);
}

int matcher_capre_match(const matcher_capre_t *re, str_t v, str_t *groups, int max)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
	buf_t fixed = BUF_INIT;
	str_t in = v;
	int rc = pcre2_match(re->code, (PCRE2_SPTR)(v.n ? v.p : ""), v.n, 0, 0, md, re->mctx);
	if (rc == PCRE2_ERROR_NOMATCH && !utf8_valid(v)) {
		utf8_repair(&fixed, v);
		in = buf_str(&fixed);
		rc = pcre2_match(re->code, (PCRE2_SPTR)fixed.p, fixed.n, 0, 0, md, re->mctx);
	}
	int n = -1;
	if (rc >= 0) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		n = (int)re->ngroups + 1;
		for (int i = 0; i < n && i < max; i++) {
			if (ov[2 * i] == PCRE2_UNSET || in.p != v.p)
				groups[i] = STR_NULL; /* a repaired copy does not outlive this call: groups are empty */
			else
				groups[i] = str_from(v.p + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
		}
	}
	buf_release(&fixed);
	pcre2_match_data_free(md);
	return n;
}

int matcher_capre_group(const matcher_capre_t *re, str_t name)
{
	char buf[256];
	if (name.n == 0 || name.n >= sizeof buf)
		return -1;
	memcpy(buf, name.p, name.n);
	buf[name.n] = 0;
	int k = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR)buf);
	return k > 0 ? k : -1;
}
