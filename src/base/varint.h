/*
 * varint.h — Go-compatible LEB128 varints and big-endian fixed-width integers.
 *
 * uvarint: unsigned LEB128 (binary.PutUvarint). varint: zig-zag signed (binary.PutVarint).
 * Decoders are bounds-checked: they return the number of bytes consumed, 0 if the input ends
 * before the varint does, and -1 if it overflows 64 bits (more than 10 bytes, or a 10th byte > 1).
 */
#ifndef STRATA_BASE_VARINT_H
#define STRATA_BASE_VARINT_H

#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

#define VARINT_MAX_LEN 10

/* out has >= uvarint_len(v) (at most 10) bytes; returns that length. */
static inline size_t uvarint_put(uint8_t *out, uint64_t v)
{
	size_t i = 0;
	while (v >= 0x80) {
		out[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[i++] = (uint8_t)v;
	return i;
}
size_t varint_put(uint8_t *out, int64_t v);
/* 7 bits a byte, at least one; without a loop (the SeriesResponse encoder sizes every field). */
static inline size_t uvarint_len(uint64_t v)
{
	return ((size_t)(63 - __builtin_clzll(v | 1)) * 9 + 73) / 64;
}
int uvarint_get(const uint8_t *p, const uint8_t *end, uint64_t *v);
int varint_get(const uint8_t *p, const uint8_t *end, int64_t *v);
void buf_put_uvarint(buf_t *b, uint64_t v);
void buf_put_varint(buf_t *b, int64_t v);

static inline uint16_t be16_get(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t be32_get(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t be64_get(const uint8_t *p)
{
	return ((uint64_t)be32_get(p) << 32) | be32_get(p + 4);
}
static inline void be16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void be64_put(uint8_t *p, uint64_t v)
{
	be32_put(p, (uint32_t)(v >> 32));
	be32_put(p + 4, (uint32_t)v);
}
void buf_put_be32(buf_t *b, uint32_t v);
void buf_put_be64(buf_t *b, uint64_t v);

#endif
