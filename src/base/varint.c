/* varint.c — Go-compatible varints; see varint.h. */
#include "base/varint.h"

size_t varint_put(uint8_t *out, int64_t v)
{
	uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	return uvarint_put(out, u);
}

int uvarint_get(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	unsigned s = 0;
	for (int i = 0; i < VARINT_MAX_LEN; i++) {
		if (p + i >= end)
			return 0;
		uint8_t b = p[i];
		if (b < 0x80) {
			if (i == VARINT_MAX_LEN - 1 && b > 1)
				return -1;
			*v = x | (uint64_t)b << s;
			return i + 1;
		}
		x |= (uint64_t)(b & 0x7f) << s;
		s += 7;
	}
	return -1;
}

int varint_get(const uint8_t *p, const uint8_t *end, int64_t *v)
{
	uint64_t u;
	int n = uvarint_get(p, end, &u);
	if (n > 0)
		*v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
	return n;
}

void buf_put_uvarint(buf_t *b, uint64_t v)
{
	buf_reserve(b, VARINT_MAX_LEN);
	b->n += uvarint_put((uint8_t *)b->p + b->n, v);
	b->p[b->n] = 0;
}

void buf_put_varint(buf_t *b, int64_t v)
{
	uint8_t tmp[VARINT_MAX_LEN];
	buf_append(b, tmp, varint_put(tmp, v));
}

void buf_put_be32(buf_t *b, uint32_t v)
{
	uint8_t tmp[4];
	be32_put(tmp, v);
	buf_append(b, tmp, 4);
}

void buf_put_be64(buf_t *b, uint64_t v)
{
	uint8_t tmp[8];
	be64_put(tmp, v);
	buf_append(b, tmp, 8);
}
