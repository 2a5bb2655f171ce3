/* libFuzzer target for the PromQL parser and printer: no crash, no hang, and every expression that
 * parses prints to a string that parses again to the same string; its pretty (format_query) form parses. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "promql/ast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	arena_t a;
	arena_init(&a, 0);
	promql_expr_t *e;
	err_t err = {0};
	if (promql_parse(&a, (const char *)data, size, &e, &err) == 0) {
		buf_t b = BUF_INIT, b2 = BUF_INIT;
		promql_expr_format(&b, e);
		promql_expr_t *e2;
		if (promql_parse(&a, b.p, b.n, &e2, &err) != 0) {
			fprintf(stderr, "printed form does not parse: %s: %s\n", b.p, err.msg);
			abort();
		}
		promql_expr_format(&b2, e2);
		if (strcmp(b.p, b2.p) != 0) {
			fprintf(stderr, "round trip differs: %s vs %s\n", b.p, b2.p);
			abort();
		}
		/* format_query's multi-line form parses too */
		buf_reset(&b2);
		promql_expr_pretty(&b2, e);
		if (promql_parse(&a, b2.p, b2.n, &e2, &err) != 0) {
			fprintf(stderr, "pretty form does not parse: %s: %s\n", b2.p, err.msg);
			abort();
		}
		buf_release(&b);
		buf_release(&b2);
	}
	arena_release(&a);
	return 0;
}
