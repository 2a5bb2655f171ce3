/*
 * tmpl.c — see tmpl.h. A lexer/recursive-descent parser into a node tree, and a tree walker whose
 * values carry Go's kinds.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rule/tmpl.h"

#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/duration.h"
#include "base/fmt.h"
#include "base/vec.h"

/* ---- values ---- */

typedef enum { V_NIL, V_STR, V_INT, V_FLOAT, V_BOOL, V_MAP, V_SAMPLES, V_SAMPLE, V_DATA } vkind_t;

typedef struct val {
	vkind_t k;
	str_t s;
	int64_t i;
	double f;
	bool b;
	labels_t m;                /* V_MAP */
	const tmpl_sample_t *smp; /* V_SAMPLE: one; V_SAMPLES: n of them */
	size_t n;
} val_t;

/* ---- tree ---- */

typedef enum { O_DOT, O_FIELD, O_VAR, O_STR, O_NUM, O_BOOL, O_NIL, O_IDENT, O_PIPE } okind_t;

typedef struct pipe pipe_t;

typedef struct operand {
	okind_t k;
	str_t name;     /* O_VAR: "$x"; O_IDENT: function; O_STR: the unquoted string */
	str_t *fields;  /* O_FIELD/O_VAR (and O_PIPE): .a.b chain */
	size_t nfields;
	val_t num;      /* O_NUM, O_BOOL */
	pipe_t *pipe;   /* O_PIPE */
	str_t text;     /* as written, for messages */
} operand_t;

typedef struct cmd {
	operand_t *args;
	size_t nargs;
	str_t text;
	int line, col;
} cmd_t;

struct pipe {
	str_t vars[2];
	size_t nvars;
	bool decl, assign;
	cmd_t *cmds;
	size_t ncmds;
};

typedef enum { N_TEXT, N_ACTION, N_IF, N_WITH, N_RANGE } nkind_t;

typedef struct node node_t;
typedef struct list {
	node_t **v;
	size_t n, cap;
} list_t;

struct node {
	nkind_t k;
	str_t text;
	pipe_t *pipe;
	list_t list, elselist;
	int line, col;
};

struct tmpl {
	const char *name;
	str_t src;
	list_t root;
};

/* ---- lexer over the whole text ---- */

typedef struct parser {
	arena_t *a;
	const char *name;
	const char *src, *p, *end;
	err_t *err;
	int failed;
	/* declared variables (names only), for "undefined variable" at parse time */
	str_t vars[256];
	size_t nvars;
} parser_t;

static int line_of(const char *src, const char *at)
{
	int l = 1;
	for (const char *q = src; q < at; q++)
		l += *q == '\n';
	return l;
}

static int col_of(const char *src, const char *at)
{
	const char *q = at;
	while (q > src && q[-1] != '\n')
		q--;
	return (int)(at - q);
}

static int perr(parser_t *ps, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser_t *ps, const char *at, const char *fmt, ...)
{
	if (ps->failed)
		return -1;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	err_set(ps->err, ERR_INVALID, "template: %s:%d: %s", ps->name, line_of(ps->src, at), msg);
	ps->failed = 1;
	return -1;
}

static void list_push(arena_t *a, list_t *l, node_t *n)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		l->v = arena_realloc(a, l->v, l->cap * sizeof *l->v, nc * sizeof *l->v);
		l->cap = nc;
	}
	l->v[l->n++] = n;
}

static void skip_space(parser_t *ps, const char *end)
{
	while (ps->p < end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n'))
		ps->p++;
}

static bool is_ident_char(int c)
{
	return isalnum(c) || c == '_';
}

/* Action body bounds: ps->p at the first char after "{{" (and "- "); returns the position of the
 * closing "}}" (or " -}}" start) and sets *trim_right. */
static const char *find_action_end(parser_t *ps, bool *trim_right)
{
	const char *q = ps->p;
	while (q + 1 < ps->end) {
		if (*q == '"' || *q == '`' || *q == '\'') {
			char quote = *q++;
			while (q < ps->end && *q != quote) {
				if (*q == '\\' && quote != '`')
					q++;
				q++;
			}
			if (q < ps->end)
				q++;
			continue;
		}
		if (q[0] == '}' && q[1] == '}') {
			*trim_right = q - 2 >= ps->p && q[-1] == '-' && (q[-2] == ' ' || q[-2] == '\t' || q[-2] == '\n');
			return *trim_right ? q - 2 : q;
		}
		q++;
	}
	return NULL;
}

static int unquote(parser_t *ps, const char *at, str_t raw, str_t *out)
{
	if (raw.p[0] == '`') {
		*out = str_from(raw.p + 1, raw.n - 2);
		return 0;
	}
	buf_t b = BUF_INIT;
	for (size_t i = 1; i + 1 < raw.n; i++) {
		char c = raw.p[i];
		if (c != '\\') {
			buf_putc(&b, c);
			continue;
		}
		c = raw.p[++i];
		switch (c) {
		case 'n': buf_putc(&b, '\n'); break;
		case 't': buf_putc(&b, '\t'); break;
		case 'r': buf_putc(&b, '\r'); break;
		case '\\': buf_putc(&b, '\\'); break;
		case '"': buf_putc(&b, '"'); break;
		case '\'': buf_putc(&b, '\''); break;
		case 'a': buf_putc(&b, '\a'); break;
		case 'b': buf_putc(&b, '\b'); break;
		case 'f': buf_putc(&b, '\f'); break;
		case 'v': buf_putc(&b, '\v'); break;
		case 'x':
			if (i + 2 < raw.n && isxdigit((unsigned char)raw.p[i + 1]) && isxdigit((unsigned char)raw.p[i + 2])) {
				buf_putc(&b, (char)(str_hex_digit(raw.p[i + 1]) * 16 + str_hex_digit(raw.p[i + 2])));
				i += 2;
				break;
			}
			/* fallthrough */
		default:
			buf_release(&b);
			return perr(ps, at, "invalid syntax");
		}
	}
	*out = str_from(arena_memdup(ps->a, b.p ? b.p : "", b.n), b.n);
	buf_release(&b);
	return 0;
}

static pipe_t *parse_pipe(parser_t *ps, const char *end, bool in_parens);

static int parse_fields(parser_t *ps, const char *end, operand_t *o)
{
	str_t tmp[32];
	size_t n = 0;
	while (ps->p < end && *ps->p == '.' && ps->p + 1 < end && is_ident_char((unsigned char)ps->p[1])) {
		const char *s = ++ps->p;
		while (ps->p < end && is_ident_char((unsigned char)*ps->p))
			ps->p++;
		if (n == 32)
			return perr(ps, s, "field chain too long");
		tmp[n++] = str_from(s, (size_t)(ps->p - s));
	}
	o->fields = arena_memdup(ps->a, tmp, n * sizeof *tmp);
	o->nfields = n;
	return 0;
}

static bool var_known(parser_t *ps, str_t name)
{
	for (size_t i = ps->nvars; i-- > 0;)
		if (str_eq(ps->vars[i], name))
			return true;
	return false;
}

static const char *const FUNCS[] = {
    "and", "or", "not", "len", "index", "print", "printf", "println", "html", "js", "urlquery", "eq", "ne", "lt",
    "le", "gt", "ge", "query", "first", "label", "value", "strvalue", "sortByLabel", "humanize", "humanize1024",
    "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "title", "toUpper", "toLower", "match",
    "reReplaceAll", "safeHtml", "stripPort", "stripDomain", "args", "graphLink", "tableLink", "pathPrefix",
    "externalURL", "parseDuration", NULL};

static int parse_operand(parser_t *ps, const char *end, operand_t *o)
{
	memset(o, 0, sizeof *o);
	const char *s = ps->p;
	char c = *ps->p;
	if (c == '(') {
		ps->p++;
		o->k = O_PIPE;
		o->pipe = parse_pipe(ps, end, true);
		if (!o->pipe)
			return -1;
		if (ps->p >= end || *ps->p != ')')
			return perr(ps, s, "unclosed left paren");
		ps->p++;
		if (parse_fields(ps, end, o))
			return -1;
	} else if (c == '.') {
		if (ps->p + 1 < end && is_ident_char((unsigned char)ps->p[1])) {
			o->k = O_FIELD;
			if (parse_fields(ps, end, o))
				return -1;
		} else {
			o->k = O_DOT;
			ps->p++;
		}
	} else if (c == '$') {
		ps->p++;
		while (ps->p < end && is_ident_char((unsigned char)*ps->p))
			ps->p++;
		o->k = O_VAR;
		o->name = str_from(s, (size_t)(ps->p - s));
		if (!var_known(ps, o->name))
			return perr(ps, s, "undefined variable \"%.*s\"", (int)o->name.n, o->name.p);
		if (parse_fields(ps, end, o))
			return -1;
	} else if (c == '"' || c == '`') {
		const char *q = ps->p + 1;
		while (q < end && *q != c) {
			if (*q == '\\' && c == '"')
				q++;
			q++;
		}
		if (q >= end)
			return perr(ps, s, "unterminated quoted string");
		ps->p = q + 1;
		o->k = O_STR;
		if (unquote(ps, s, str_from(s, (size_t)(ps->p - s)), &o->name))
			return -1;
	} else if (isdigit((unsigned char)c) || ((c == '-' || c == '+') && ps->p + 1 < end &&
	                                          (isdigit((unsigned char)ps->p[1]) || ps->p[1] == '.')) ||
	           (c == '.' && ps->p + 1 < end && isdigit((unsigned char)ps->p[1]))) {
		const char *q = ps->p + 1;
		while (q < end && (isalnum((unsigned char)*q) || *q == '.' || *q == '_' ||
		                   ((*q == '-' || *q == '+') && (q[-1] == 'e' || q[-1] == 'E'))))
			q++;
		char tmp[64];
		size_t n = (size_t)(q - s);
		if (n >= sizeof tmp)
			return perr(ps, s, "bad number syntax: \"%.*s\"", (int)n, s);
		memcpy(tmp, s, n);
		tmp[n] = 0;
		char *e;
		o->k = O_NUM;
		if (!memchr(tmp, '.', n) && !memchr(tmp, 'e', n) && !memchr(tmp, 'E', n)) {
			long long v = strtoll(tmp, &e, 0);
			o->num = (val_t){.k = V_INT, .i = v};
		} else {
			double v = strtod(tmp, &e);
			o->num = (val_t){.k = V_FLOAT, .f = v};
		}
		if (*e)
			return perr(ps, s, "bad number syntax: \"%s\"", tmp);
		ps->p = q;
	} else if (is_ident_char((unsigned char)c)) {
		const char *q = ps->p;
		while (q < end && is_ident_char((unsigned char)*q))
			q++;
		str_t id = str_from(s, (size_t)(q - s));
		ps->p = q;
		if (str_eq_c(id, "true") || str_eq_c(id, "false")) {
			o->k = O_BOOL;
			o->num = (val_t){.k = V_BOOL, .b = str_eq_c(id, "true")};
		} else if (str_eq_c(id, "nil")) {
			o->k = O_NIL;
		} else {
			bool ok = false;
			for (size_t i = 0; FUNCS[i]; i++)
				ok |= str_eq_c(id, FUNCS[i]);
			if (!ok)
				return perr(ps, s, "function \"%.*s\" not defined", (int)id.n, id.p);
			o->k = O_IDENT;
			o->name = id;
		}
	} else {
		return perr(ps, s, "unexpected \"%c\" in command", c);
	}
	o->text = str_from(s, (size_t)(ps->p - s));
	return 0;
}

static pipe_t *parse_pipe(parser_t *ps, const char *end, bool in_parens)
{
	pipe_t *pp = arena_zalloc(ps->a, sizeof *pp);
	skip_space(ps, end);
	/* declaration: $x := / $x = / $i, $v := */
	const char *save = ps->p;
	if (ps->p < end && *ps->p == '$') {
		str_t names[2];
		size_t nn = 0;
		for (;;) {
			const char *s = ps->p;
			if (ps->p >= end || *ps->p != '$')
				break;
			ps->p++;
			while (ps->p < end && is_ident_char((unsigned char)*ps->p))
				ps->p++;
			names[nn++] = str_from(s, (size_t)(ps->p - s));
			skip_space(ps, end);
			if (nn < 2 && ps->p < end && *ps->p == ',') {
				ps->p++;
				skip_space(ps, end);
				continue;
			}
			break;
		}
		if (ps->p + 1 < end && ps->p[0] == ':' && ps->p[1] == '=') {
			ps->p += 2;
			pp->decl = true;
		} else if (ps->p < end && ps->p[0] == '=' && (ps->p + 1 >= end || ps->p[1] != '=')) {
			ps->p++;
			pp->assign = true;
		}
		if (pp->decl || pp->assign) {
			pp->nvars = nn;
			memcpy(pp->vars, names, nn * sizeof *names);
		} else {
			ps->p = save;
		}
	}
	VEC(cmd_t) cmds = {0};
	for (;;) {
		skip_space(ps, end);
		if (ps->p >= end || (in_parens && *ps->p == ')'))
			break;
		VEC(operand_t) args = {0};
		const char *cs = ps->p;
		while (ps->p < end && *ps->p != '|' && !(in_parens && *ps->p == ')')) {
			operand_t o;
			if (parse_operand(ps, end, &o)) {
				free(args.v);
				free(cmds.v);
				return NULL;
			}
			VEC_PUSH(&args, o);
			const char *before = ps->p;
			skip_space(ps, end);
			if (ps->p == before && ps->p < end && *ps->p != '|' && *ps->p != ')') {
				perr(ps, ps->p, "unexpected \"%c\" in operand", *ps->p);
				free(args.v);
				free(cmds.v);
				return NULL;
			}
		}
		if (args.n == 0) {
			perr(ps, cs, "missing value for command");
			free(cmds.v);
			return NULL;
		}
		cmd_t c = {.args = arena_memdup(ps->a, args.v, args.n * sizeof *args.v),
		           .nargs = args.n,
		           .line = line_of(ps->src, cs),
		           .col = col_of(ps->src, cs)};
		const char *ce = ps->p;
		while (ce > cs && (ce[-1] == ' ' || ce[-1] == '\t'))
			ce--;
		c.text = str_from(cs, (size_t)(ce - cs));
		free(args.v);
		VEC_PUSH(&cmds, c);
		if (ps->p < end && *ps->p == '|') {
			ps->p++;
			continue;
		}
		break;
	}
	if (cmds.n == 0) {
		perr(ps, ps->p, "missing value for %s", pp->decl || pp->assign ? "declaration" : "command");
		return NULL;
	}
	pp->cmds = arena_memdup(ps->a, cmds.v, cmds.n * sizeof *cmds.v);
	pp->ncmds = cmds.n;
	free(cmds.v);
	if (pp->decl) {
		for (size_t i = 0; i < pp->nvars && ps->nvars < 256; i++)
			ps->vars[ps->nvars++] = pp->vars[i];
	} else if (pp->assign) {
		for (size_t i = 0; i < pp->nvars; i++)
			if (!var_known(ps, pp->vars[i]))
				return perr(ps, save, "undefined variable \"%.*s\"", (int)pp->vars[i].n, pp->vars[i].p), NULL;
	}
	return pp;
}

/* Parse a list until {{end}} / {{else}} (returned in *stop: 0 eof, 1 end, 2 else, 3 else-if/with). */
static int parse_list(parser_t *ps, list_t *l, int *stop, const char **else_kw_end);

static bool keyword(str_t body, const char *kw, str_t *rest)
{
	size_t n = strlen(kw);
	if (body.n < n || memcmp(body.p, kw, n) != 0)
		return false;
	if (body.n > n && is_ident_char((unsigned char)body.p[n]))
		return false;
	*rest = str_from(body.p + n, body.n - n);
	return true;
}

static int parse_control(parser_t *ps, list_t *l, nkind_t k, const char *at, const char *pend, const char *after)
{
	node_t *n = arena_zalloc(ps->a, sizeof *n);
	n->k = k;
	n->line = line_of(ps->src, at);
	n->col = col_of(ps->src, at);
	size_t mark = ps->nvars;
	n->pipe = parse_pipe(ps, pend, false);
	if (!n->pipe)
		return -1;
	skip_space(ps, pend);
	if (ps->p < pend)
		return perr(ps, ps->p, "unexpected \"%c\" in %s", *ps->p, k == N_IF ? "if" : k == N_WITH ? "with" : "range");
	ps->p = after;
	int stop;
	const char *else_end = NULL;
	if (parse_list(ps, &n->list, &stop, &else_end))
		return -1;
	if (stop == 0)
		return perr(ps, ps->end, "unexpected EOF");
	if (stop == 3) { /* {{else if ...}} / {{else with ...}}: a nested node in the else list, sharing our end */
		ps->nvars = mark;
		const char *kwat = else_end;
		/* ps->p is after "else"; the body continues up to the action's end */
		bool tr;
		const char *pe = find_action_end(ps, &tr);
		const char *after2 = pe + (tr ? 4 : 2);
		skip_space(ps, pe);
		nkind_t k2 = ps->p[0] == 'i' ? N_IF : N_WITH;
		ps->p += k2 == N_IF ? 2 : 4;
		if (parse_control(ps, &n->elselist, k2, kwat, pe, after2))
			return -1;
		/* the nested node consumed the shared {{end}} */
		list_push(ps->a, l, n);
		ps->nvars = mark;
		return 0;
	}
	if (stop == 2) {
		ps->nvars = mark;
		if (parse_list(ps, &n->elselist, &stop, &else_end))
			return -1;
		if (stop != 1)
			return perr(ps, ps->p, stop == 0 ? "unexpected EOF" : "expected end; found {{else}}");
	}
	ps->nvars = mark;
	list_push(ps->a, l, n);
	return 0;
}

static int parse_list(parser_t *ps, list_t *l, int *stop, const char **else_kw_end)
{
	for (;;) {
		const char *open = NULL;
		for (const char *q = ps->p; q + 1 < ps->end; q++)
			if (q[0] == '{' && q[1] == '{') {
				open = q;
				break;
			}
		const char *text_end = open ? open : ps->end;
		bool trim_left = open && open + 3 < ps->end && open[2] == '-' &&
		                 (open[3] == ' ' || open[3] == '\t' || open[3] == '\n');
		if (trim_left)
			while (text_end > ps->p && isspace((unsigned char)text_end[-1]))
				text_end--;
		if (text_end > ps->p) {
			node_t *t = arena_zalloc(ps->a, sizeof *t);
			t->k = N_TEXT;
			t->text = str_from(ps->p, (size_t)(text_end - ps->p));
			list_push(ps->a, l, t);
		}
		if (!open) {
			ps->p = ps->end;
			*stop = 0;
			return 0;
		}
		ps->p = open + 2 + (trim_left ? 2 : 0);
		bool trim_right = false;
		const char *pend = find_action_end(ps, &trim_right);
		if (!pend)
			return perr(ps, open, "unclosed action");
		const char *after = pend + (trim_right ? 4 : 2);
		if (trim_right) {
			/* the text after is trimmed of leading space */
			const char *q = after;
			while (q < ps->end && isspace((unsigned char)*q))
				q++;
			after = q;
		}
		skip_space(ps, pend);
		str_t body = str_from(ps->p, (size_t)(pend - ps->p)), rest;
		if (body.n >= 2 && body.p[0] == '/' && body.p[1] == '*') {
			str_t tb = str_trim(body);
			if (tb.n < 4 || memcmp(tb.p + tb.n - 2, "*/", 2) != 0)
				return perr(ps, open, "unclosed comment");
			ps->p = after;
			continue;
		}
		if (keyword(body, "end", &rest)) {
			ps->p = after;
			*stop = 1;
			return 0;
		}
		if (keyword(body, "else", &rest)) {
			str_t r = str_trim(rest), r2;
			if (keyword(r, "if", &r2) || keyword(r, "with", &r2)) {
				*else_kw_end = open;
				ps->p = r.p;
				*stop = 3;
				return 0;
			}
			if (r.n)
				return perr(ps, open, "unexpected \"%.*s\" in else", (int)r.n, r.p);
			ps->p = after;
			*stop = 2;
			return 0;
		}
		nkind_t ck = N_ACTION;
		if (keyword(body, "if", &rest))
			ck = N_IF;
		else if (keyword(body, "with", &rest))
			ck = N_WITH;
		else if (keyword(body, "range", &rest))
			ck = N_RANGE;
		else if (keyword(body, "define", &rest) || keyword(body, "template", &rest) ||
		         keyword(body, "block", &rest) || keyword(body, "break", &rest) ||
		         keyword(body, "continue", &rest))
			return perr(ps, open, "unsupported action \"%.*s\" in an alert template",
			            (int)(rest.p - body.p), body.p);
		if (ck != N_ACTION) {
			ps->p = rest.p;
			if (parse_control(ps, l, ck, open, pend, after))
				return -1;
			continue;
		}
		node_t *n = arena_zalloc(ps->a, sizeof *n);
		n->k = N_ACTION;
		n->line = line_of(ps->src, open);
		n->col = col_of(ps->src, open);
		n->pipe = parse_pipe(ps, pend, false);
		if (!n->pipe)
			return -1;
		skip_space(ps, pend);
		if (ps->p < pend)
			return perr(ps, ps->p, "unexpected \"%c\" in command", *ps->p);
		list_push(ps->a, l, n);
		ps->p = after;
	}
}

int tmpl_parse(arena_t *a, const char *name, str_t text, tmpl_t **out, err_t *err)
{
	parser_t ps = {.a = a, .name = name, .src = text.p, .p = text.p, .end = text.p + text.n, .err = err};
	ps.vars[ps.nvars++] = STR("$");
	tmpl_t *t = arena_zalloc(a, sizeof *t);
	t->name = arena_strdup(a, name);
	t->src = text;
	int stop;
	const char *ee = NULL;
	if (parse_list(&ps, &t->root, &stop, &ee))
		return ERR_INVALID;
	if (stop == 1)
		return perr(&ps, ps.p, "unexpected {{end}}"), ERR_INVALID;
	if (stop != 0)
		return perr(&ps, ps.p, "unexpected {{else}}"), ERR_INVALID;
	*out = t;
	return 0;
}

/* ---- execution ---- */

typedef struct exec {
	const tmpl_t *t;
	arena_t *a;
	const tmpl_env_t *env;
	err_t *err;
	struct {
		str_t name;
		val_t v;
	} vars[256];
	size_t nvars;
	int depth;
} exec_t;

static int xerr(exec_t *x, const cmd_t *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int xerr(exec_t *x, const cmd_t *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (c)
		err_set(x->err, ERR_INVALID, "template: %s:%d:%d: executing \"%s\" at <%.*s>: %s", x->t->name, c->line,
		        c->col, x->t->name, (int)c->text.n, c->text.p, msg);
	else
		err_set(x->err, ERR_INVALID, "template: %s: executing \"%s\": %s", x->t->name, x->t->name, msg);
	return -1;
}

static const char *kind_name(vkind_t k)
{
	switch (k) {
	case V_STR: return "string";
	case V_INT: return "int";
	case V_FLOAT: return "float64";
	case V_BOOL: return "bool";
	case V_MAP: return "map[string]string";
	case V_SAMPLES: return "template.queryResult";
	case V_SAMPLE: return "*template.sample";
	case V_DATA: return "template.tmplData";
	default: return "<nil>";
	}
}

static bool truth(const val_t *v)
{
	switch (v->k) {
	case V_NIL: return false;
	case V_STR: return v->s.n > 0;
	case V_INT: return v->i != 0;
	case V_FLOAT: return v->f != 0;
	case V_BOOL: return v->b;
	case V_MAP: return v->m.n > 0;
	case V_SAMPLES: return v->n > 0;
	default: return true;
	}
}

/* Go's %v. */
static void print_val(buf_t *b, const val_t *v)
{
	switch (v->k) {
	case V_NIL: buf_puts(b, "<no value>"); break;
	case V_STR: buf_append_str(b, v->s); break;
	case V_INT: buf_put_i64(b, v->i); break;
	case V_FLOAT: buf_put_float(b, v->f, 'g'); break;
	case V_BOOL: buf_puts(b, v->b ? "true" : "false"); break;
	case V_MAP:
		buf_puts(b, "map[");
		for (size_t i = 0; i < v->m.n; i++) {
			if (i)
				buf_putc(b, ' ');
			buf_append_str(b, v->m.v[i].name);
			buf_putc(b, ':');
			buf_append_str(b, v->m.v[i].value);
		}
		buf_putc(b, ']');
		break;
	case V_SAMPLE:
		buf_puts(b, "&{map[");
		for (size_t i = 0; i < v->smp->ls.n; i++) {
			if (i)
				buf_putc(b, ' ');
			buf_append_str(b, v->smp->ls.v[i].name);
			buf_putc(b, ':');
			buf_append_str(b, v->smp->ls.v[i].value);
		}
		buf_puts(b, "] ");
		buf_put_float(b, v->smp->v, 'g');
		buf_putc(b, '}');
		break;
	case V_SAMPLES:
		buf_putc(b, '[');
		for (size_t i = 0; i < v->n; i++) {
			val_t e = {.k = V_SAMPLE, .smp = &v->smp[i]};
			if (i)
				buf_putc(b, ' ');
			print_val(b, &e);
		}
		buf_putc(b, ']');
		break;
	case V_DATA: buf_puts(b, "{...}"); break;
	}
}

static val_t vstr(exec_t *x, const buf_t *b)
{
	return (val_t){.k = V_STR, .s = str_from(arena_memdup(x->a, b->p ? b->p : "", b->n), b->n)};
}

static val_t map_get(const labels_t *m, str_t key)
{
	bool found;
	str_t v = labels_get(m, key, &found);
	return (val_t){.k = V_STR, .s = v};
}

static int field(exec_t *x, const cmd_t *c, val_t *v, str_t f)
{
	switch (v->k) {
	case V_MAP: *v = map_get(&v->m, f); return 0;
	case V_DATA:
		if (str_eq_c(f, "Labels"))
			*v = (val_t){.k = V_MAP, .m = x->env->labels};
		else if (str_eq_c(f, "ExternalLabels"))
			*v = (val_t){.k = V_MAP, .m = x->env->ext_labels};
		else if (str_eq_c(f, "ExternalURL"))
			*v = (val_t){.k = V_STR, .s = x->env->external_url};
		else if (str_eq_c(f, "Value"))
			*v = (val_t){.k = V_FLOAT, .f = x->env->value};
		else
			return xerr(x, c, "can't evaluate field %.*s in type template.tmplData", (int)f.n, f.p);
		return 0;
	case V_SAMPLE:
		if (str_eq_c(f, "Labels"))
			*v = (val_t){.k = V_MAP, .m = v->smp->ls};
		else if (str_eq_c(f, "Value"))
			*v = (val_t){.k = V_FLOAT, .f = v->smp->v};
		else
			return xerr(x, c, "can't evaluate field %.*s in type *template.sample", (int)f.n, f.p);
		return 0;
	case V_NIL: return xerr(x, c, "nil pointer evaluating interface {}.%.*s", (int)f.n, f.p);
	default: return xerr(x, c, "can't evaluate field %.*s in type %s", (int)f.n, f.p, kind_name(v->k));
	}
}

static int run_pipe(exec_t *x, const pipe_t *p, const val_t *dot, val_t *out);

static int eval_operand(exec_t *x, const cmd_t *c, const operand_t *o, const val_t *dot, val_t *out)
{
	switch (o->k) {
	case O_DOT: *out = *dot; return 0;
	case O_FIELD: *out = *dot; break;
	case O_VAR: {
		size_t i = x->nvars;
		while (i-- > 0)
			if (str_eq(x->vars[i].name, o->name))
				break;
		if (i == (size_t)-1)
			return xerr(x, c, "undefined variable: %.*s", (int)o->name.n, o->name.p);
		*out = x->vars[i].v;
		break;
	}
	case O_STR: *out = (val_t){.k = V_STR, .s = o->name}; return 0;
	case O_NUM:
	case O_BOOL: *out = o->num; return 0;
	case O_NIL: return xerr(x, c, "nil is not a command");
	case O_PIPE:
		if (run_pipe(x, o->pipe, dot, out))
			return -1;
		break;
	case O_IDENT: return xerr(x, c, "internal: function as operand");
	}
	for (size_t i = 0; i < o->nfields; i++)
		if (field(x, c, out, o->fields[i]))
			return -1;
	return 0;
}

/* ---- functions ---- */

static int to_float(exec_t *x, const cmd_t *c, const char *fn, const val_t *v, double *out)
{
	switch (v->k) {
	case V_FLOAT: *out = v->f; return 0;
	case V_INT: *out = (double)v->i; return 0;
	case V_STR: {
		char tmp[128];
		if (v->s.n >= sizeof tmp)
			return xerr(x, c, "error calling %s: strconv.ParseFloat: parsing %.*s: invalid syntax", fn, 20, v->s.p);
		memcpy(tmp, v->s.p, v->s.n);
		tmp[v->s.n] = 0;
		char *e;
		double d = strtod(tmp, &e);
		if (!v->s.n || *e || isspace((unsigned char)tmp[0])) {
			buf_t q = BUF_INIT;
			labels_quote(&q, v->s);
			int r = xerr(x, c, "error calling %s: strconv.ParseFloat: parsing %.*s: invalid syntax", fn,
			             (int)q.n, q.p);
			buf_release(&q);
			return r;
		}
		*out = d;
		return 0;
	}
	default: return xerr(x, c, "error calling %s: can't convert %s to float", fn, kind_name(v->k));
	}
}

/* Go's %.<prec><verb> for floats (f, e, g), Inf/NaN spelled as Go spells them. */
static void go_float(buf_t *b, double v, int prec, char verb, const char *flags, int width)
{
	if (isnan(v) || isinf(v)) {
		const char *s = isnan(v) ? "NaN" : v > 0 ? (strchr(flags, '+') ? "+Inf" : "+Inf") : "-Inf";
		buf_printf(b, "%*s", strchr(flags, '-') ? -width : width, s);
		return;
	}
	char f[32];
	if (prec >= 0)
		snprintf(f, sizeof f, "%%%s%d.%d%c", flags, width, prec, verb);
	else
		snprintf(f, sizeof f, "%%%s%d%c", flags, width, verb);
	buf_printf(b, f, v);
}

void tmpl_humanize(buf_t *b, double v)
{
	if (v == 0 || isnan(v) || isinf(v)) {
		go_float(b, v, 4, 'g', "", 0);
		return;
	}
	const char *prefix = "";
	if (fabs(v) >= 1) {
		static const char *const p[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
		for (int i = 0; i < 8 && fabs(v) >= 1000; i++) {
			prefix = p[i];
			v /= 1000;
		}
	} else {
		static const char *const p[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
		for (int i = 0; i < 8 && fabs(v) < 1; i++) {
			prefix = p[i];
			v *= 1000;
		}
	}
	go_float(b, v, 4, 'g', "", 0);
	buf_puts(b, prefix);
}

static void humanize1024(buf_t *b, double v)
{
	if (fabs(v) <= 1 || isnan(v) || isinf(v)) {
		go_float(b, v, 4, 'g', "", 0);
		return;
	}
	static const char *const p[] = {"ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"};
	const char *prefix = "";
	for (int i = 0; i < 8 && fabs(v) >= 1024; i++) {
		prefix = p[i];
		v /= 1024;
	}
	go_float(b, v, 4, 'g', "", 0);
	buf_puts(b, prefix);
}

static void humanize_duration(buf_t *b, double v)
{
	if (isnan(v) || isinf(v)) {
		go_float(b, v, 4, 'g', "", 0);
		return;
	}
	if (v == 0) {
		go_float(b, v, 4, 'g', "", 0);
		buf_putc(b, 's');
		return;
	}
	if (fabs(v) >= 1) {
		const char *sign = "";
		if (v < 0) {
			sign = "-";
			v = -v;
		}
		int64_t d = (int64_t)v, s = d % 60, m = (d / 60) % 60, h = (d / 3600) % 24, days = d / 86400;
		if (days)
			buf_printf(b, "%s%lldd %lldh %lldm %llds", sign, (long long)days, (long long)h, (long long)m,
			           (long long)s);
		else if (h)
			buf_printf(b, "%s%lldh %lldm %llds", sign, (long long)h, (long long)m, (long long)s);
		else if (m)
			buf_printf(b, "%s%lldm %llds", sign, (long long)m, (long long)s);
		else {
			buf_puts(b, sign);
			go_float(b, v, 4, 'g', "", 0);
			buf_putc(b, 's');
		}
		return;
	}
	static const char *const p[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
	const char *prefix = "";
	for (int i = 0; i < 8 && fabs(v) < 1; i++) {
		prefix = p[i];
		v *= 1000;
	}
	go_float(b, v, 4, 'g', "", 0);
	buf_puts(b, prefix);
	buf_putc(b, 's');
}

/* Go's fmt.Sprint(time.Time) in UTC: "2006-01-02 15:04:05.999999999 +0000 UTC". */
static void go_time(buf_t *b, int64_t ns)
{
	int64_t sec = ns / 1000000000, frac = ns % 1000000000;
	if (frac < 0) {
		frac += 1000000000;
		sec--;
	}
	time_t tt = (time_t)sec;
	struct tm tm;
	gmtime_r(&tt, &tm);
	buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	           tm.tm_min, tm.tm_sec);
	if (frac) {
		char d[16];
		snprintf(d, sizeof d, "%09lld", (long long)frac);
		size_t n = 9;
		while (n > 0 && d[n - 1] == '0')
			n--;
		buf_putc(b, '.');
		buf_append(b, d, n);
	}
	buf_puts(b, " +0000 UTC");
}

/* Go's fmt.Sprintf for the verbs templates use. */
static void go_sprintf(buf_t *b, str_t f, const val_t *args, size_t n)
{
	size_t ai = 0;
	for (size_t i = 0; i < f.n; i++) {
		char c = f.p[i];
		if (c != '%') {
			buf_putc(b, c);
			continue;
		}
		if (++i >= f.n) {
			buf_puts(b, "%!(NOVERB)");
			break;
		}
		char flags[8] = {0};
		size_t nf = 0;
		while (i < f.n && strchr("+-# 0", f.p[i]) && nf < 7)
			flags[nf++] = f.p[i++];
		int width = 0, prec = -1;
		while (i < f.n && isdigit((unsigned char)f.p[i]))
			width = width * 10 + (f.p[i++] - '0');
		if (i < f.n && f.p[i] == '.') {
			prec = 0;
			i++;
			while (i < f.n && isdigit((unsigned char)f.p[i]))
				prec = prec * 10 + (f.p[i++] - '0');
		}
		if (i >= f.n) {
			buf_puts(b, "%!(NOVERB)");
			break;
		}
		char verb = f.p[i];
		if (verb == '%') {
			buf_putc(b, '%');
			continue;
		}
		if (ai >= n) {
			buf_printf(b, "%%!%c(MISSING)", verb);
			continue;
		}
		const val_t *v = &args[ai++];
		buf_t tmp = BUF_INIT;
		bool bad = false;
		switch (verb) {
		case 'v':
			if (v->k == V_FLOAT && prec >= 0)
				go_float(&tmp, v->f, prec, 'g', "", 0);
			else
				print_val(&tmp, v);
			break;
		case 's':
		case 'q':
			if (v->k != V_STR) {
				bad = true;
				break;
			}
			if (verb == 'q')
				labels_quote(&tmp, v->s);
			else
				buf_append(&tmp, v->s.p, prec >= 0 && (size_t)prec < v->s.n ? (size_t)prec : v->s.n);
			break;
		case 'd':
			if (v->k != V_INT) {
				bad = true;
				break;
			}
			buf_printf(&tmp, "%lld", (long long)v->i);
			break;
		case 'x':
		case 'X':
			if (v->k == V_INT)
				buf_printf(&tmp, verb == 'x' ? "%llx" : "%llX", (long long)v->i);
			else if (v->k == V_STR)
				for (size_t k = 0; k < v->s.n; k++)
					buf_printf(&tmp, verb == 'x' ? "%02x" : "%02X", (unsigned char)v->s.p[k]);
			else
				bad = true;
			break;
		case 't':
			if (v->k != V_BOOL)
				bad = true;
			else
				buf_puts(&tmp, v->b ? "true" : "false");
			break;
		case 'f':
		case 'F':
		case 'e':
		case 'E':
		case 'g':
		case 'G':
			if (v->k != V_FLOAT) {
				bad = true;
				break;
			}
			if (prec < 0 && (verb == 'g' || verb == 'G')) {
				buf_put_float(&tmp, v->f, 'g');
				break;
			}
			go_float(&tmp, v->f, prec < 0 ? 6 : prec, verb == 'F' ? 'f' : verb, strchr(flags, '+') ? "+" : "", 0);
			break;
		default: bad = true;
		}
		if (bad) {
			buf_printf(b, "%%!%c(%s=", verb, kind_name(v->k));
			print_val(b, v);
			buf_putc(b, ')');
		} else {
			int pad = width - (int)tmp.n;
			bool left = strchr(flags, '-') != NULL, zero = strchr(flags, '0') != NULL && !left;
			if (!left)
				for (int k = 0; k < pad; k++)
					buf_putc(b, zero ? '0' : ' ');
			buf_append(b, tmp.p ? tmp.p : "", tmp.n);
			if (left)
				for (int k = 0; k < pad; k++)
					buf_putc(b, ' ');
		}
		buf_release(&tmp);
	}
	if (ai < n) {
		buf_puts(b, "%!(EXTRA ");
		for (size_t k = ai; k < n; k++) {
			if (k > ai)
				buf_puts(b, ", ");
			buf_printf(b, "%s=", kind_name(args[k].k));
			print_val(b, &args[k]);
		}
		buf_putc(b, ')');
	}
}

/* Go's basicKind comparison (text/template's eq/lt/...): returns -2 on incompatible kinds, -3 on a
 * kind that cannot be ordered; else -1/0/1. */
static int compare(const val_t *a, const val_t *b, bool ordered)
{
	if (a->k != b->k)
		return -2;
	switch (a->k) {
	case V_INT: return a->i < b->i ? -1 : a->i > b->i;
	case V_FLOAT: return a->f < b->f ? -1 : a->f > b->f ? 1 : a->f == b->f ? 0 : 2 /* NaN */;
	case V_STR: return str_cmp(a->s, b->s) < 0 ? -1 : str_cmp(a->s, b->s) > 0;
	case V_BOOL:
		if (ordered)
			return -3;
		return a->b != b->b;
	case V_NIL: return ordered ? -3 : 0;
	default: return -3;
	}
}

static bool re_match(str_t pat, str_t s, bool *ok, char *emsg, size_t emn)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat.p, pat.n, PCRE2_UTF, &ec, &eo, NULL);
	if (!re) {
		pcre2_get_error_message(ec, (PCRE2_UCHAR *)emsg, emn);
		*ok = false;
		return false;
	}
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc = pcre2_match(re, (PCRE2_SPTR)s.p, s.n, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	*ok = true;
	return rc >= 0;
}

static int re_replace(exec_t *x, const cmd_t *c, str_t pat, str_t repl, str_t s, val_t *out)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat.p, pat.n, PCRE2_UTF, &ec, &eo, NULL);
	if (!re) {
		char m[256];
		pcre2_get_error_message(ec, (PCRE2_UCHAR *)m, sizeof m);
		return xerr(x, c, "error calling reReplaceAll: error parsing regexp: %s", m);
	}
	/* Go's $1 / ${1} / $name expansion: PCRE2's extended substitution syntax agrees for these. */
	PCRE2_SIZE cap = s.n * 2 + repl.n * 4 + 64;
	for (int tries = 0; tries < 4; tries++) {
		PCRE2_UCHAR *o = arena_alloc(x->a, cap + 1);
		PCRE2_SIZE on = cap;
		int rc = pcre2_substitute(re, (PCRE2_SPTR)s.p, s.n, 0,
		                          PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH |
		                              PCRE2_SUBSTITUTE_UNSET_EMPTY | PCRE2_SUBSTITUTE_UNKNOWN_UNSET,
		                          NULL, NULL, (PCRE2_SPTR)repl.p, repl.n, o, &on);
		if (rc == PCRE2_ERROR_NOMEMORY) {
			cap = on + 1;
			continue;
		}
		pcre2_code_free(re);
		if (rc < 0)
			return xerr(x, c, "error calling reReplaceAll: bad replacement");
		*out = (val_t){.k = V_STR, .s = str_from((const char *)o, on)};
		return 0;
	}
	pcre2_code_free(re);
	return xerr(x, c, "error calling reReplaceAll: result too large");
}

static int want_args(exec_t *x, const cmd_t *c, const char *fn, size_t n, size_t want)
{
	if (n != want)
		return xerr(x, c, "wrong number of args for %s: want %zu got %zu", fn, want, n);
	return 0;
}

static int want_str(exec_t *x, const cmd_t *c, const char *fn, const val_t *v)
{
	if (v->k != V_STR)
		return xerr(x, c, "wrong type for value; expected string; got %s", kind_name(v->k));
	(void)fn;
	return 0;
}

static int samples_cmp(const void *a, const void *b, void *key)
{
	const tmpl_sample_t *x = a, *y = b;
	bool f;
	return str_cmp(labels_get(&x->ls, *(str_t *)key, &f), labels_get(&y->ls, *(str_t *)key, &f));
}

static int call(exec_t *x, const cmd_t *c, str_t name, val_t *a, size_t n, val_t *out)
{
	char fn[32];
	snprintf(fn, sizeof fn, "%.*s", (int)name.n, name.p);
	buf_t b = BUF_INIT;
	int rc = 0;
	double f;
#define ARGS(k)                                                                                                \
	do {                                                                                                   \
		if (want_args(x, c, fn, n, (k))) {                                                             \
			rc = -1;                                                                               \
			goto out;                                                                              \
		}                                                                                              \
	} while (0)
#define FLOAT0()                                                                                               \
	do {                                                                                                   \
		ARGS(1);                                                                                       \
		if (to_float(x, c, fn, &a[0], &f)) {                                                           \
			rc = -1;                                                                               \
			goto out;                                                                              \
		}                                                                                              \
	} while (0)
	if (!strcmp(fn, "printf")) {
		if (n < 1 || a[0].k != V_STR) {
			rc = xerr(x, c, "wrong type for value; expected string; got %s", n ? kind_name(a[0].k) : "nothing");
			goto out;
		}
		go_sprintf(&b, a[0].s, a + 1, n - 1);
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "print") || !strcmp(fn, "println")) {
		for (size_t i = 0; i < n; i++) {
			/* Sprint adds spaces between operands when neither is a string; Sprintln always */
			if (i && (fn[5] == 'l' || (a[i].k != V_STR && a[i - 1].k != V_STR)))
				buf_putc(&b, ' ');
			print_val(&b, &a[i]);
		}
		if (fn[5] == 'l')
			buf_putc(&b, '\n');
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "humanize")) {
		FLOAT0();
		tmpl_humanize(&b, f);
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "humanize1024")) {
		FLOAT0();
		humanize1024(&b, f);
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "humanizeDuration")) {
		FLOAT0();
		humanize_duration(&b, f);
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "humanizePercentage")) {
		FLOAT0();
		go_float(&b, f * 100, 4, 'g', "", 0);
		buf_putc(&b, '%');
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "humanizeTimestamp")) {
		FLOAT0();
		if (isnan(f) || isinf(f))
			go_float(&b, f, 4, 'g', "", 0);
		else if (f * 1e9 > 9.2e18 || f * 1e9 < -9.2e18) {
			buf_put_float(&b, f, 'g');
			rc = xerr(x, c, "error calling humanizeTimestamp: %.*s cannot be represented as a nanoseconds timestamp since it overflows int64",
			          (int)b.n, b.p);
			goto out;
		} else
			go_time(&b, (int64_t)(f * 1e9));
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "title") || !strcmp(fn, "toUpper") || !strcmp(fn, "toLower") ||
	           !strcmp(fn, "safeHtml") || !strcmp(fn, "stripPort") || !strcmp(fn, "stripDomain")) {
		ARGS(1);
		if (want_str(x, c, fn, &a[0])) {
			rc = -1;
			goto out;
		}
		str_t s = a[0].s;
		if (!strcmp(fn, "stripPort")) {
			long i = s.n;
			while (i > 0 && s.p[i - 1] != ':' && s.p[i - 1] != ']')
				i--;
			if (i > 0 && s.p[i - 1] == ':')
				s.n = (size_t)(i - 1);
			if (s.n >= 2 && s.p[0] == '[' && s.p[s.n - 1] == ']')
				s = str_from(s.p + 1, s.n - 2);
			*out = (val_t){.k = V_STR, .s = s};
			goto out;
		}
		if (!strcmp(fn, "stripDomain")) {
			long colon = -1;
			for (size_t i = 0; i < s.n; i++)
				if (s.p[i] == ':')
					colon = (long)i;
			size_t hn = colon >= 0 ? (size_t)colon : s.n;
			size_t dot = 0;
			while (dot < hn && s.p[dot] != '.')
				dot++;
			bool ip = true;
			for (size_t i = 0; i < hn; i++)
				ip &= isdigit((unsigned char)s.p[i]) || s.p[i] == '.';
			if (ip || dot == hn) {
				*out = (val_t){.k = V_STR, .s = s};
				goto out;
			}
			buf_append(&b, s.p, dot);
			if (colon >= 0)
				buf_append(&b, s.p + colon, s.n - (size_t)colon);
			*out = vstr(x, &b);
			goto out;
		}
		bool word_start = true;
		for (size_t i = 0; i < s.n; i++) {
			char ch = s.p[i];
			if (!strcmp(fn, "toUpper"))
				ch = (char)toupper((unsigned char)ch);
			else if (!strcmp(fn, "toLower"))
				ch = (char)tolower((unsigned char)ch);
			else if (!strcmp(fn, "title")) {
				if (word_start)
					ch = (char)toupper((unsigned char)ch);
				word_start = !(isalnum((unsigned char)ch) || ch == '_' || (unsigned char)ch >= 0x80);
			}
			buf_putc(&b, ch);
		}
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "query")) {
		ARGS(1);
		if (want_str(x, c, fn, &a[0])) {
			rc = -1;
			goto out;
		}
		if (!x->env->query) {
			rc = xerr(x, c, "error calling query: no query engine");
			goto out;
		}
		tmpl_sample_t *s = NULL;
		size_t ns = 0;
		err_t qe = {0};
		if (x->env->query(x->env->query_arg, x->a, a[0].s, &s, &ns, &qe)) {
			rc = xerr(x, c, "error calling query: %s", qe.msg);
			goto out;
		}
		*out = (val_t){.k = V_SAMPLES, .smp = s, .n = ns};
	} else if (!strcmp(fn, "first")) {
		ARGS(1);
		if (a[0].k != V_SAMPLES) {
			rc = xerr(x, c, "wrong type for value; expected template.queryResult; got %s", kind_name(a[0].k));
			goto out;
		}
		if (!a[0].n) {
			rc = xerr(x, c, "error calling first: first() called on vector with no elements");
			goto out;
		}
		*out = (val_t){.k = V_SAMPLE, .smp = a[0].smp};
	} else if (!strcmp(fn, "label") || !strcmp(fn, "value") || !strcmp(fn, "strvalue")) {
		size_t si = fn[0] == 'l' ? 1 : 0;
		ARGS(si + 1);
		if (si && want_str(x, c, fn, &a[0])) {
			rc = -1;
			goto out;
		}
		if (a[si].k == V_NIL) {
			*out = (val_t){.k = fn[0] == 'v' ? V_FLOAT : V_STR};
			goto out;
		}
		if (a[si].k != V_SAMPLE) {
			rc = xerr(x, c, "wrong type for value; expected *template.sample; got %s", kind_name(a[si].k));
			goto out;
		}
		if (fn[0] == 'l')
			*out = map_get(&a[si].smp->ls, a[0].s);
		else if (fn[0] == 'v')
			*out = (val_t){.k = V_FLOAT, .f = a[si].smp->v};
		else
			*out = map_get(&a[si].smp->ls, STR("__value__"));
	} else if (!strcmp(fn, "sortByLabel")) {
		ARGS(2);
		if (want_str(x, c, fn, &a[0]) || a[1].k != V_SAMPLES) {
			rc = a[1].k != V_SAMPLES ? xerr(x, c, "wrong type for value; expected template.queryResult; got %s",
			                                 kind_name(a[1].k))
			                         : -1;
			goto out;
		}
		tmpl_sample_t *s = arena_memdup(x->a, a[1].smp, a[1].n * sizeof *s);
		str_t key = a[0].s;
		/* stable insertion sort (Go uses sort.Stable) */
		for (size_t i = 1; i < a[1].n; i++)
			for (size_t j = i; j > 0 && samples_cmp(&s[j - 1], &s[j], &key) > 0; j--) {
				tmpl_sample_t t = s[j];
				s[j] = s[j - 1];
				s[j - 1] = t;
			}
		*out = (val_t){.k = V_SAMPLES, .smp = s, .n = a[1].n};
	} else if (!strcmp(fn, "match")) {
		ARGS(2);
		if (want_str(x, c, fn, &a[0]) || want_str(x, c, fn, &a[1])) {
			rc = -1;
			goto out;
		}
		bool ok;
		char m[256];
		bool r = re_match(a[0].s, a[1].s, &ok, m, sizeof m);
		if (!ok) {
			rc = xerr(x, c, "error calling match: error parsing regexp: %s", m);
			goto out;
		}
		*out = (val_t){.k = V_BOOL, .b = r};
	} else if (!strcmp(fn, "reReplaceAll")) {
		ARGS(3);
		if (want_str(x, c, fn, &a[0]) || want_str(x, c, fn, &a[1]) || want_str(x, c, fn, &a[2])) {
			rc = -1;
			goto out;
		}
		rc = re_replace(x, c, a[0].s, a[1].s, a[2].s, out);
	} else if (!strcmp(fn, "pathPrefix")) {
		ARGS(0);
		*out = (val_t){.k = V_STR};
	} else if (!strcmp(fn, "externalURL")) {
		ARGS(0);
		*out = (val_t){.k = V_STR, .s = x->env->external_url};
	} else if (!strcmp(fn, "graphLink") || !strcmp(fn, "tableLink")) {
		ARGS(1);
		if (want_str(x, c, fn, &a[0])) {
			rc = -1;
			goto out;
		}
		buf_puts(&b, "/graph?g0.expr=");
		for (size_t i = 0; i < a[0].s.n; i++) {
			unsigned char ch = (unsigned char)a[0].s.p[i];
			if (isalnum(ch) || strchr("-_.~", ch))
				buf_putc(&b, (char)ch);
			else if (ch == ' ')
				buf_putc(&b, '+');
			else
				buf_printf(&b, "%%%02X", ch);
		}
		buf_puts(&b, fn[0] == 'g' ? "&g0.tab=0" : "&g0.tab=1");
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "parseDuration")) {
		ARGS(1);
		if (want_str(x, c, fn, &a[0])) {
			rc = -1;
			goto out;
		}
		int64_t ms;
		err_t de = {0};
		if (duration_parse(a[0].s, &ms, &de)) {
			rc = xerr(x, c, "error calling parseDuration: %s", de.msg);
			goto out;
		}
		*out = (val_t){.k = V_FLOAT, .f = (double)ms / 1000.0};
	} else if (!strcmp(fn, "args")) {
		/* map of arg0..argN (strings here: enough to index and print) */
		labels_t m = {arena_calloc(x->a, n + 1, sizeof(label_t)), n};
		for (size_t i = 0; i < n; i++) {
			buf_reset(&b);
			print_val(&b, &a[i]);
			m.v[i].name = str_c(arena_printf(x->a, "arg%zu", i));
			m.v[i].value = vstr(x, &b).s;
		}
		labels_normalize(&m);
		*out = (val_t){.k = V_MAP, .m = m};
	} else if (!strcmp(fn, "not")) {
		ARGS(1);
		*out = (val_t){.k = V_BOOL, .b = !truth(&a[0])};
	} else if (!strcmp(fn, "len")) {
		ARGS(1);
		size_t l = a[0].k == V_STR ? a[0].s.n : a[0].k == V_MAP ? a[0].m.n : a[0].k == V_SAMPLES ? a[0].n : (size_t)-1;
		if (l == (size_t)-1) {
			rc = xerr(x, c, "error calling len: len of type %s", kind_name(a[0].k));
			goto out;
		}
		*out = (val_t){.k = V_INT, .i = (int64_t)l};
	} else if (!strcmp(fn, "index")) {
		if (n < 1) {
			rc = xerr(x, c, "wrong number of args for index: want at least 1 got 0");
			goto out;
		}
		val_t v = a[0];
		for (size_t i = 1; i < n; i++) {
			if (v.k == V_MAP && a[i].k == V_STR)
				v = map_get(&v.m, a[i].s);
			else if (v.k == V_SAMPLES && a[i].k == V_INT) {
				if (a[i].i < 0 || (size_t)a[i].i >= v.n) {
					rc = xerr(x, c, "error calling index: index out of range: %lld", (long long)a[i].i);
					goto out;
				}
				v = (val_t){.k = V_SAMPLE, .smp = &v.smp[a[i].i]};
			} else {
				rc = xerr(x, c, "error calling index: can't index item of type %s", kind_name(v.k));
				goto out;
			}
		}
		*out = v;
	} else if (!strcmp(fn, "html") || !strcmp(fn, "js") || !strcmp(fn, "urlquery")) {
		buf_t s = BUF_INIT;
		for (size_t i = 0; i < n; i++) {
			if (i && a[i].k != V_STR && a[i - 1].k != V_STR)
				buf_putc(&s, ' ');
			print_val(&s, &a[i]);
		}
		for (size_t i = 0; i < s.n; i++) {
			unsigned char ch = (unsigned char)s.p[i];
			if (fn[0] == 'h') {
				const char *e = ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '&' ? "&amp;" : ch == '"' ? "&#34;"
				                : ch == '\'' ? "&#39;" : NULL;
				if (e)
					buf_puts(&b, e);
				else
					buf_putc(&b, (char)ch);
			} else if (fn[0] == 'u') {
				if (isalnum(ch) || strchr("-_.~", ch))
					buf_putc(&b, (char)ch);
				else if (ch == ' ')
					buf_putc(&b, '+');
				else
					buf_printf(&b, "%%%02X", ch);
			} else {
				if (ch == '\\' || ch == '\'' || ch == '"')
					buf_printf(&b, "\\%c", ch);
				else if (ch == '<' || ch == '>' || ch == '&' || ch == '=' || ch < 0x20)
					buf_printf(&b, "\\u%04X", ch);
				else
					buf_putc(&b, (char)ch);
			}
		}
		buf_release(&s);
		*out = vstr(x, &b);
	} else if (!strcmp(fn, "eq") || !strcmp(fn, "ne") || !strcmp(fn, "lt") || !strcmp(fn, "le") ||
	           !strcmp(fn, "gt") || !strcmp(fn, "ge")) {
		bool is_eq = !strcmp(fn, "eq");
		if (is_eq ? n < 2 : n != 2) {
			rc = xerr(x, c, is_eq ? "error calling eq: missing argument for comparison"
			                      : "wrong number of args for %s: want 2 got %zu", fn, n);
			goto out;
		}
		bool res = false;
		for (size_t i = 1; i < n && !(is_eq && res); i++) {
			int r = compare(&a[0], &a[i], !is_eq && strcmp(fn, "ne"));
			if (r == -2) {
				rc = xerr(x, c, "error calling %s: incompatible types for comparison", fn);
				goto out;
			}
			if (r == -3) {
				rc = xerr(x, c, "error calling %s: invalid type for comparison", fn);
				goto out;
			}
			if (fn[0] == 'e')
				res = r == 0;
			else if (fn[0] == 'n')
				res = r != 0;
			else if (!strcmp(fn, "lt"))
				res = r == -1;
			else if (!strcmp(fn, "le"))
				res = r == -1 || r == 0;
			else if (!strcmp(fn, "gt"))
				res = r == 1;
			else
				res = r == 1 || r == 0;
		}
		*out = (val_t){.k = V_BOOL, .b = res};
	} else {
		rc = xerr(x, c, "function \"%s\" not defined", fn);
	}
out:
	buf_release(&b);
	return rc;
#undef ARGS
#undef FLOAT0
}

static int run_cmd(exec_t *x, const cmd_t *c, const val_t *dot, const val_t *piped, val_t *out)
{
	const operand_t *o0 = &c->args[0];
	if (o0->k == O_IDENT) {
		str_t fn = o0->name;
		/* and/or short-circuit (Go 1.18+) */
		if (str_eq_c(fn, "and") || str_eq_c(fn, "or")) {
			size_t n = c->nargs - 1 + (piped != NULL);
			if (n < 1)
				return xerr(x, c, "wrong number of args for %.*s: want at least 1 got 0", (int)fn.n, fn.p);
			bool is_and = fn.p[0] == 'a';
			for (size_t i = 0; i < n; i++) {
				if (i < c->nargs - 1) {
					if (eval_operand(x, c, &c->args[i + 1], dot, out))
						return -1;
				} else {
					*out = *piped;
				}
				if (truth(out) != is_and)
					return 0;
			}
			return 0;
		}
		size_t n = c->nargs - 1 + (piped != NULL);
		val_t *args = arena_calloc(x->a, n + 1, sizeof *args);
		for (size_t i = 1; i < c->nargs; i++) {
			if (c->args[i].k == O_IDENT) {
				/* a niladic function as an argument */
				if (call(x, c, c->args[i].name, NULL, 0, &args[i - 1]))
					return -1;
			} else if (c->args[i].k == O_NIL) {
				args[i - 1] = (val_t){.k = V_NIL};
			} else if (eval_operand(x, c, &c->args[i], dot, &args[i - 1])) {
				return -1;
			}
		}
		if (piped)
			args[n - 1] = *piped;
		return call(x, c, fn, args, n, out);
	}
	if (c->nargs > 1 || piped) {
		if (o0->k == O_FIELD || o0->k == O_VAR)
			return xerr(x, c, "can't give argument to non-function %.*s", (int)o0->text.n, o0->text.p);
		return xerr(x, c, "can't give argument to non-function %.*s", (int)o0->text.n, o0->text.p);
	}
	return eval_operand(x, c, o0, dot, out);
}

static int run_pipe(exec_t *x, const pipe_t *p, const val_t *dot, val_t *out)
{
	val_t v = {0}, *piped = NULL;
	for (size_t i = 0; i < p->ncmds; i++) {
		if (run_cmd(x, &p->cmds[i], dot, piped, &v))
			return -1;
		piped = &v;
	}
	*out = v;
	if (p->decl) {
		if (x->nvars >= 256)
			return xerr(x, NULL, "too many variables");
		x->vars[x->nvars].name = p->vars[p->nvars - 1];
		x->vars[x->nvars++].v = v;
	} else if (p->assign) {
		for (size_t i = x->nvars; i-- > 0;)
			if (str_eq(x->vars[i].name, p->vars[p->nvars - 1])) {
				x->vars[i].v = v;
				break;
			}
	}
	return 0;
}

static int run_list(exec_t *x, const list_t *l, const val_t *dot, buf_t *out);

static int set_range_vars(exec_t *x, const pipe_t *p, val_t k, val_t v)
{
	if (p->nvars == 0 || !p->decl)
		return 0;
	if (x->nvars + 2 > 256)
		return xerr(x, NULL, "too many variables");
	if (p->nvars == 1) {
		x->vars[x->nvars].name = p->vars[0];
		x->vars[x->nvars++].v = v;
	} else {
		x->vars[x->nvars].name = p->vars[0];
		x->vars[x->nvars++].v = k;
		x->vars[x->nvars].name = p->vars[1];
		x->vars[x->nvars++].v = v;
	}
	return 0;
}

static int run_node(exec_t *x, const node_t *n, const val_t *dot, buf_t *out)
{
	if (n->k == N_TEXT) {
		buf_append_str(out, n->text);
		return 0;
	}
	if (++x->depth > 100)
		return xerr(x, NULL, "exceeded maximum template depth (100)");
	size_t mark = x->nvars;
	val_t v;
	int rc = 0;
	if (n->k == N_RANGE) {
		/* the range pipeline's own declaration is per element */
		pipe_t p = *n->pipe;
		p.decl = p.assign = false;
		if (run_pipe(x, &p, dot, &v)) {
			rc = -1;
			goto out;
		}
	} else if (run_pipe(x, n->pipe, dot, &v)) {
		rc = -1;
		goto out;
	}
	switch (n->k) {
	case N_ACTION:
		if (!n->pipe->decl && !n->pipe->assign)
			print_val(out, &v);
		mark = x->nvars; /* a declaration lives until the end of the enclosing block */
		break;
	case N_IF: rc = run_list(x, truth(&v) ? &n->list : &n->elselist, dot, out); break;
	case N_WITH: rc = truth(&v) ? run_list(x, &n->list, &v, out) : run_list(x, &n->elselist, dot, out); break;
	case N_RANGE: {
		size_t cnt = v.k == V_MAP ? v.m.n : v.k == V_SAMPLES ? v.n : 0;
		if (v.k != V_MAP && v.k != V_SAMPLES && v.k != V_NIL) {
			rc = xerr(x, NULL, "range can't iterate over %s", kind_name(v.k));
			break;
		}
		for (size_t i = 0; i < cnt && rc == 0; i++) {
			size_t m2 = x->nvars;
			val_t key, elem;
			if (v.k == V_MAP) {
				key = (val_t){.k = V_STR, .s = v.m.v[i].name};
				elem = (val_t){.k = V_STR, .s = v.m.v[i].value};
			} else {
				key = (val_t){.k = V_INT, .i = (int64_t)i};
				elem = (val_t){.k = V_SAMPLE, .smp = &v.smp[i]};
			}
			rc = set_range_vars(x, n->pipe, key, elem);
			if (!rc)
				rc = run_list(x, &n->list, &elem, out);
			x->nvars = m2;
		}
		if (cnt == 0 && rc == 0)
			rc = run_list(x, &n->elselist, dot, out);
		break;
	}
	default: break;
	}
out:
	x->nvars = mark;
	x->depth--;
	return rc;
}

static int run_list(exec_t *x, const list_t *l, const val_t *dot, buf_t *out)
{
	size_t mark = x->nvars;
	for (size_t i = 0; i < l->n; i++)
		if (run_node(x, l->v[i], dot, out)) {
			x->nvars = mark;
			return -1;
		}
	x->nvars = mark;
	return 0;
}

int tmpl_exec(const tmpl_t *t, arena_t *a, const tmpl_env_t *env, buf_t *out, err_t *err)
{
	exec_t *x = arena_zalloc(a, sizeof *x);
	x->t = t;
	x->a = a;
	x->env = env;
	x->err = err;
	val_t dot = {.k = V_DATA};
	x->vars[0].name = STR("$");
	x->vars[0].v = dot;
	x->nvars = 1;
	buf_t tmp = BUF_INIT;
	int rc = run_list(x, &t->root, &dot, &tmp);
	if (rc == 0)
		buf_append(out, tmp.p ? tmp.p : "", tmp.n);
	buf_release(&tmp);
	return rc ? ERR_INVALID : 0;
}

/* ---- Prometheus's alert conventions ---- */

#define ALERT_DEFS                                                                                             \
	"{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := " \
	".Value}}"

static str_t alert_text(arena_t *a, str_t text)
{
	size_t dn = strlen(ALERT_DEFS);
	char *p = arena_alloc(a, dn + text.n + 1);
	memcpy(p, ALERT_DEFS, dn);
	memcpy(p + dn, text.p, text.n);
	p[dn + text.n] = 0;
	return str_from(p, dn + text.n);
}

int tmpl_alert_check(const char *alertname, str_t text, err_t *err)
{
	arena_t a;
	arena_init(&a, 0);
	tmpl_t *t;
	char *name = arena_printf(&a, "__alert_%s", alertname);
	int rc = tmpl_parse(&a, name, alert_text(&a, text), &t, err);
	arena_release(&a);
	return rc;
}

bool tmpl_alert_expand(arena_t *a, const char *alertname, str_t text, const tmpl_env_t *env, str_t *out)
{
	/* fast path: no action at all */
	if (!memmem(text.p, text.n, "{{", 2)) {
		*out = text;
		return true;
	}
	char *name = arena_printf(a, "__alert_%s", alertname);
	tmpl_t *t;
	err_t err = {0};
	buf_t b = BUF_INIT;
	bool ok = tmpl_parse(a, name, alert_text(a, text), &t, &err) == 0 && tmpl_exec(t, a, env, &b, &err) == 0;
	if (!ok) {
		buf_reset(&b);
		buf_printf(&b, "<error expanding template: error executing template %s: %s>", name, err.msg);
	}
	*out = str_from(arena_memdup(a, b.p ? b.p : "", b.n), b.n);
	buf_release(&b);
	return ok;
}
