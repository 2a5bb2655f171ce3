/* flags.c — Thanos-style long flag parsing; see flags.h. */
#include "base/flags.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/duration.h"
#include "base/str.h"

void strlist_push(strlist_t *l, const char *s)
{
	if (l->n == l->cap) {
		l->cap = alloc_grow_cap(l->cap, l->n + 1);
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	l->v[l->n++] = xstrdup(s);
}

void strlist_free(strlist_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

int bytes_parse(const char *s, int64_t *out, err_t *err)
{
	static const struct {
		const char *suffix;
		int64_t mult;
	} units[] = {
		{"KiB", 1LL << 10}, {"MiB", 1LL << 20}, {"GiB", 1LL << 30}, {"TiB", 1LL << 40}, {"KB", 1000},
		{"MB", 1000000},    {"GB", 1000000000}, {"TB", 1000000000000LL}, {"B", 1},       {"", 1},
	};
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		return err_set(err, ERR_INVALID, "invalid byte size \"%s\"", s);
	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (!strcmp(end, units[i].suffix)) {
			double r = v * (double)units[i].mult;
			if (r > 9.2e18)
				return err_set(err, ERR_INVALID, "byte size out of range \"%s\"", s);
			*out = (int64_t)r;
			return 0;
		}
	}
	return err_set(err, ERR_INVALID, "invalid byte size \"%s\" (units: B, KB, MB, GB, KiB, MiB, GiB)", s);
}

/* Which flags the last parse saw on the command line, by definition address. */
static const flag_def_t *given[256];
static size_t ngiven;

static int set_value(const flag_def_t *d, const char *val, err_t *err)
{
	switch (d->type) {
	case FLAG_STRING:
		free(*(char **)d->dst);
		*(char **)d->dst = xstrdup(val);
		return 0;
	case FLAG_ENUM: {
		size_t vl = strlen(val);
		for (const char *c = d->choices; c && *c;) {
			const char *bar = strchr(c, '|');
			size_t cl = bar ? (size_t)(bar - c) : strlen(c);
			if (cl == vl && !memcmp(c, val, vl)) {
				free(*(char **)d->dst);
				*(char **)d->dst = xstrdup(val);
				return 0;
			}
			c = bar ? bar + 1 : c + cl;
		}
		return err_set(err, ERR_INVALID, "invalid value \"%s\" for flag --%s (want one of %s)", val, d->name,
			       d->choices);
	}
	case FLAG_BOOL:
		if (!strcmp(val, "true") || !strcmp(val, "1"))
			*(bool *)d->dst = true;
		else if (!strcmp(val, "false") || !strcmp(val, "0"))
			*(bool *)d->dst = false;
		else
			return err_set(err, ERR_INVALID, "invalid boolean value \"%s\" for flag --%s", val, d->name);
		return 0;
	case FLAG_INT: {
		int64_t v;
		if (!str_to_i64(str_c(val), &v))
			return err_set(err, ERR_INVALID, "invalid integer \"%s\" for flag --%s", val, d->name);
		*(int64_t *)d->dst = v;
		return 0;
	}
	case FLAG_FLOAT: {
		double v;
		if (!str_to_double(str_c(val), &v))
			return err_set(err, ERR_INVALID, "invalid number \"%s\" for flag --%s", val, d->name);
		*(double *)d->dst = v;
		return 0;
	}
	case FLAG_DURATION: {
		int64_t v;
		err_t e;
		if (duration_parse(str_c(val), &v, &e))
			return err_set(err, ERR_INVALID, "invalid duration \"%s\" for flag --%s: %s", val, d->name,
				       e.msg);
		*(int64_t *)d->dst = v;
		return 0;
	}
	case FLAG_BYTES: {
		err_t e;
		if (bytes_parse(val, (int64_t *)d->dst, &e))
			return err_set(err, ERR_INVALID, "flag --%s: %s", d->name, e.msg);
		return 0;
	}
	case FLAG_STRINGS:
		strlist_push((strlist_t *)d->dst, val);
		return 0;
	}
	return err_set(err, ERR_INTERNAL, "flag --%s: unknown type", d->name);
}

static const flag_def_t *lookup(const flag_def_t *defs, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(defs[i].name) == len && !memcmp(defs[i].name, name, len))
			return &defs[i];
	return NULL;
}

int flags_parse(const flag_def_t *defs, size_t n, int argc, char **argv, flags_result_t *res, err_t *err)
{
	memset(res, 0, sizeof *res);
	ngiven = 0;
	for (size_t i = 0; i < n; i++) {
		if (defs[i].type == FLAG_STRINGS) {
			strlist_free((strlist_t *)defs[i].dst);
			continue;
		}
		if (defs[i].def && set_value(&defs[i], defs[i].def, err))
			return err_wrap(err, "default value");
		if (!defs[i].def && (defs[i].type == FLAG_STRING || defs[i].type == FLAG_ENUM)) {
			free(*(char **)defs[i].dst);
			*(char **)defs[i].dst = NULL;
		}
		if (!defs[i].def && defs[i].type == FLAG_BOOL)
			*(bool *)defs[i].dst = false;
	}
	/* Repeatable flags' defaults ("a,b" is not split: a default is one value). */
	for (size_t i = 0; i < n; i++)
		if (defs[i].type == FLAG_STRINGS && defs[i].def)
			strlist_push((strlist_t *)defs[i].dst, defs[i].def);

	res->pos = xcalloc((size_t)argc + 1, sizeof *res->pos);
	bool cleared[256] = {0};
	bool only_pos = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
			res->pos[res->npos++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = true;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			res->help = true;
			continue;
		}
		if (a[1] != '-')
			return err_set(err, ERR_INVALID, "unknown short flag '%s' (flags are --long-names)", a);
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const flag_def_t *d = lookup(defs, n, name, nlen);
		bool negated = false;
		if (!d && nlen > 3 && !strncmp(name, "no-", 3)) {
			d = lookup(defs, n, name + 3, nlen - 3);
			if (d && d->type != FLAG_BOOL)
				d = NULL;
			negated = d != NULL;
		}
		if (!d)
			return err_set(err, ERR_INVALID, "unknown long flag '--%.*s'", (int)nlen, name);
		const char *val;
		if (d->type == FLAG_BOOL && !eq) {
			val = negated ? "false" : "true";
		} else if (negated) {
			return err_set(err, ERR_INVALID, "flag --no-%s takes no value", d->name);
		} else if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			return err_set(err, ERR_INVALID, "expected argument for flag '--%s'", d->name);
		}
		size_t idx = (size_t)(d - defs);
		if (d->type == FLAG_STRINGS && idx < 256 && !cleared[idx]) {
			/* The first explicit value replaces the default. */
			strlist_free((strlist_t *)d->dst);
			cleared[idx] = true;
		}
		if (set_value(d, val, err))
			return err->code ? err->code : ERR_INVALID;
		if (ngiven < ARRAY_LEN(given))
			given[ngiven++] = d;
	}
	return 0;
}

bool flags_given(const flag_def_t *defs, size_t n, const char *name)
{
	for (size_t i = 0; i < ngiven; i++)
		if (given[i] >= defs && given[i] < defs + n && !strcmp(given[i]->name, name))
			return true;
	return false;
}

static const char *type_placeholder(const flag_def_t *d)
{
	switch (d->type) {
	case FLAG_BOOL: return NULL;
	case FLAG_INT: return "<int>";
	case FLAG_FLOAT: return "<float>";
	case FLAG_DURATION: return "<duration>";
	case FLAG_BYTES: return "<bytes>";
	case FLAG_STRINGS: return "<value> ...";
	default: return "<string>";
	}
}

void flags_usage(FILE *out, const char *usage_line, const char *summary, const flag_def_t *defs, size_t n)
{
	fprintf(out, "usage: %s\n\n%s\n\nFlags:\n", usage_line, summary);
	fprintf(out, "  -h, --help\n      Show help.\n");
	for (size_t i = 0; i < n; i++) {
		const flag_def_t *d = &defs[i];
		if (d->hidden)
			continue;
		const char *ph = type_placeholder(d);
		if (d->type == FLAG_BOOL)
			fprintf(out, "  --[no-]%s\n", d->name);
		else
			fprintf(out, "  --%s=%s\n", d->name, d->type == FLAG_ENUM && d->choices ? d->choices : ph);
		fprintf(out, "      %s", d->help ? d->help : "");
		if (d->def && *d->def)
			fprintf(out, " (default: %s)", d->def);
		fputc('\n', out);
	}
}
