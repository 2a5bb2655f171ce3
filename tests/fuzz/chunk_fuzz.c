/*
 * chunk_fuzz — libFuzzer target for the XOR chunk decoder and the chunk-list iterator's seek.
 * Input: 8 bytes seek target (BE), 2 bytes split point, then chunk bytes (split into two chunks).
 * Decodes everything with xor_dec_next, then iterates with seek + batches over both chunks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/varint.h"
#include "tsdb/xor.h"

static void check_err(int rc, const err_t *err)
{
	if (rc < 0 && !err->msg[0])
		abort();
}

static void decode_all(const uint8_t *p, size_t n)
{
	xor_dec_t d;
	err_t err = {0};
	int rc = xor_dec_init(&d, p, n, &err);
	int64_t t, prev = INT64_MIN;
	double v;
	int cnt = 0;
	while (rc == 0 && (rc = xor_dec_next(&d, &t, &v, &err)) == 1) {
		(void)prev;
		prev = t;
		cnt++;
		rc = 0;
	}
	check_err(rc, &err);
	if (cnt > 65535)
		abort(); /* the header count bounds the samples */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 10)
		return 0;
	int64_t seek = (int64_t)be64_get(data);
	size_t split = be16_get(data + 8);
	const uint8_t *body = data + 10;
	size_t n = size - 10;
	if (split > n)
		split = n;
	/* private copies so any over-read hits ASan's redzone */
	uint8_t *c1 = xmalloc(split ? split : 1), *c2 = xmalloc(n - split ? n - split : 1);
	memcpy(c1, body, split);
	memcpy(c2, body + split, n - split);
	decode_all(c1, split);
	decode_all(c2, n - split);
	chunk_t chks[2] = {{INT64_MIN, 0, CHUNK_ENC_XOR, c1, split}, {1, INT64_MAX, CHUNK_ENC_XOR, c2, n - split}};
	xor_iter_t it;
	err_t err = {0};
	int64_t t[37];
	double v[37];
	int rc;
	xor_iter_init(&it, chks, 2, INT64_MIN, INT64_MAX);
	if ((rc = sample_iter_next_batch(&it.base, t, v, 3, &err)) >= 0 &&
	    (rc = sample_iter_seek(&it.base, seek, &err)) == 0) {
		int64_t last = INT64_MIN;
		bool first = true;
		while ((rc = sample_iter_next_batch(&it.base, t, v, 37, &err)) > 0) {
			if (first && t[0] < seek && chks[1].data == c2)
				; /* chunk bounds come from the input, so time order is not guaranteed */
			first = false;
			last = t[rc - 1];
		}
		(void)last;
	}
	check_err(rc, &err);
	xor_iter_init(&it, chks, 2, seek, seek / 2 + INT64_MAX / 2);
	while ((rc = sample_iter_next_batch(&it.base, t, v, 37, &err)) > 0)
		;
	check_err(rc, &err);
	free(c1);
	free(c2);
	return 0;
}
