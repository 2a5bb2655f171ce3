/*
 * flags.h — Thanos-style long flags: --name=value or --name value, --bool / --no-bool, repeatable
 * string lists. Unknown flags and bad values are errors naming the flag (the caller exits 2).
 *
 *     static char *addr; static int64_t grace;
 *     flag_def_t defs[] = {
 *         {"http-address", FLAG_STRING, &addr, "0.0.0.0:10902", "Listen host:port for HTTP endpoints."},
 *         {"http-grace-period", FLAG_DURATION, &grace, "2m", "Time to wait after an interrupt."},
 *     };
 *
 * Defaults are applied (parsed like command-line values) before arguments. Values stored are owned by
 * the process (never freed). "--help"/"-h" sets *help. Positional arguments are returned in order.
 */
#ifndef STRATA_BASE_FLAGS_H
#define STRATA_BASE_FLAGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

enum flag_type {
	FLAG_STRING,   /* char ** */
	FLAG_BOOL,     /* bool * ; default "true"/"false" */
	FLAG_INT,      /* int64_t * */
	FLAG_FLOAT,    /* double * */
	FLAG_DURATION, /* int64_t * milliseconds, Prometheus duration syntax */
	FLAG_BYTES,    /* int64_t * bytes: "512MiB", "1GB", "100KB", plain number */
	FLAG_STRINGS,  /* strlist_t * ; repeatable */
	FLAG_ENUM,     /* char ** ; value must be one of `choices` ("a|b|c") */
};

typedef struct strlist {
	char **v;
	size_t n, cap;
} strlist_t;

void strlist_push(strlist_t *l, const char *s); /* copies s */
void strlist_free(strlist_t *l);

typedef struct flag_def {
	const char *name; /* without the leading "--" */
	enum flag_type type;
	void *dst;
	const char *def; /* default in command-line syntax, NULL for none */
	const char *help;
	const char *choices; /* FLAG_ENUM only */
	bool hidden;
} flag_def_t;

typedef struct flags_result {
	bool help;
	int npos;
	char **pos; /* positional args (pointers into argv) */
} flags_result_t;

int flags_parse(const flag_def_t *defs, size_t n, int argc, char **argv, flags_result_t *res, err_t *err);
/* Whether the flag was given on the command line by the last flags_parse (not a default). */
bool flags_given(const flag_def_t *defs, size_t n, const char *name);
void flags_usage(FILE *out, const char *usage_line, const char *summary, const flag_def_t *defs, size_t n);
int bytes_parse(const char *s, int64_t *out, err_t *err);

#endif
