/*
 * aggr_fuzz — libFuzzer target for the aggregate chunk (0xFF) decoder and its views.
 * Input: 1 byte view (mod 7), then the chunk data. Splits it, then reads it through the view (alone
 * and twice in a row, as consecutive chunks of one series): errors must carry a message, output
 * timestamps must ascend, nothing may read past the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "tsdb/aggr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	aggr_view_t view = (aggr_view_t)(data[0] % 7);
	size_t n = size - 1;
	uint8_t *p = xmalloc(n ? n : 1); /* an exact-size copy: ASan sees any read past the end */
	memcpy(p, data + 1, n);
	chunk_t subs[AGGR_N];
	err_t err = {0};
	if (aggr_chunk_split(p, n, subs, &err) < 0 && !err.msg[0])
		abort();
	(void)aggr_chunk_num_samples(p, n);
	chunk_t c[2] = {{INT64_MIN, INT64_MAX, CHUNK_ENC_AGGR, p, n},
	                {INT64_MIN, INT64_MAX, CHUNK_ENC_AGGR, p, n}};
	for (size_t k = 1; k <= 2; k++) {
		aggr_iter_t it;
		aggr_iter_init(&it, c, k, INT64_MIN, INT64_MAX, view);
		int64_t t[64], last = INT64_MIN;
		double v[64];
		int got;
		err_clear(&err);
		while ((got = sample_iter_next_batch(&it.base, t, v, 64, &err)) > 0)
			for (int i = 0; i < got; i++) {
				if (t[i] <= last && last != INT64_MIN)
					abort();
				last = t[i];
			}
		if (got < 0 && !err.msg[0])
			abort();
	}
	free(p);
	return 0;
}
