/*
 * frontend_fuzz — libFuzzer target for what the query frontend decodes from outside: a downstream's
 * Prometheus JSON answer (matrix, labels and series shapes) and a cached CachedResponse value (plain
 * and snappy). Input: 1 byte selector, then the bytes. A successful decode is merged, cut and
 * re-encoded; a matrix re-encoded must decode again to the same encoding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/extents.h"
#include "frontend/promresp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	arena_t a;
	arena_init(&a, 0);
	unsigned sel = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	promresp_kind_t kind = (promresp_kind_t)(sel % 3);
	if (sel & 4) {
		extents_t ex;
		if (extents_decode(&a, kind, (str_t){p, n}, STR("fe:key"), sel & 8, &ex)) {
			extents_plan_t plan;
			extents_partition(&a, &ex, 0, 1000000, kind == PROMRESP_MATRIX ? 1000 : 1, false,
			                  &plan);
			buf_t b = BUF_INIT;
			extents_encode(&b, STR("fe:key"), &ex, false);
			buf_release(&b);
		}
	} else {
		promresp_t r, m, c;
		err_t err = {0};
		if (promresp_decode(&a, kind, p, n, &r, &err) == 0) {
			const promresp_t *in[2] = {&r, &r};
			promresp_merge(&a, in, 2, &m);
			promresp_extract(&a, &m, 0, 1000000, &c);
			buf_t b1 = BUF_INIT, b2 = BUF_INIT;
			promresp_encode(&b1, &m, true, true);
			promresp_t again;
			if (promresp_decode(&a, kind, b1.p, b1.n, &again, &err))
				abort(); /* what we print must read back */
			promresp_encode(&b2, &again, true, true);
			if (kind == PROMRESP_MATRIX && (b1.n != b2.n || memcmp(b1.p, b2.p, b1.n) != 0))
				abort();
			buf_release(&b1);
			buf_release(&b2);
		} else if (!err.msg[0]) {
			abort();
		}
	}
	arena_release(&a);
	return 0;
}
