/* crc32c.c — CRC-32C with SSE4.2 when available, slicing-by-8 otherwise; see crc32c.h. */
#include "base/crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static bool have_hw;

/* ---- shifting a register over zero bytes (for joining interleaved streams) ---- */

#define CRC_LONG  8192
#define CRC_SHORT 256
static uint32_t shifts[2][4][256]; /* over CRC_LONG, CRC_SHORT zero bytes */

/* GF(2) matrix (32 columns) times vector. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;
	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	for (int i = 0; i < 32; i++)
		sq[i] = gf2_times(mat, mat[i]);
}

/* The operator of len (a power of two) zero bytes, as four byte-wise tables. */
static void zeros_tables(uint32_t z[4][256], size_t len)
{
	uint32_t a[32], b[32]; /* a: one zero bit, then squared: 2, 4, 8 bits ... */
	a[0] = 0x82F63B78u;
	for (int i = 1; i < 32; i++)
		a[i] = 1u << (i - 1);
	for (size_t bits = 1; bits < len * 8; bits *= 2) {
		gf2_square(b, a);
		memcpy(a, b, sizeof a);
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int k = 0; k < 4; k++)
			z[k][i] = gf2_times(a, i << (8 * k));
}

static inline uint32_t zeros_shift(uint32_t z[4][256], uint32_t crc)
{
	return z[0][crc & 0xff] ^ z[1][(crc >> 8) & 0xff] ^ z[2][(crc >> 16) & 0xff] ^ z[3][crc >> 24];
}

static void init_tables(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
	zeros_tables(shifts[0], CRC_LONG);
	zeros_tables(shifts[1], CRC_SHORT);
#if defined(__x86_64__)
	unsigned a, b, c, d;
	if (__get_cpuid(1, &a, &b, &c, &d))
		have_hw = (c & bit_SSE4_2) != 0;
#endif
}

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t n)
{
	pthread_once(&table_once, init_tables);
	const uint8_t *p = data;
	crc = ~crc;
	while (n >= 8) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		lo = __builtin_bswap32(lo);
		hi = __builtin_bswap32(hi);
#endif
		lo ^= crc;
		crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
		      table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
		      table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
/* Three streams at once (the crc32 instruction has a latency of three and a throughput of one), joined
 * by shifting a stream's register over the bytes of the streams after it: the register is linear, so
 * reg(A|B, c) = zeros_{|B|}(reg(A, c)) ^ reg(B, 0), with zeros_L applied by four table lookups. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = ~crc;
	while (n && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		n--;
	}
	static const size_t lens[2] = {CRC_LONG, CRC_SHORT};
	for (int k = 0; k < 2; k++) {
		size_t len = lens[k];
		while (n >= 3 * len) {
			uint64_t c1 = 0, c2 = 0;
			for (const uint8_t *end = p + len; p < end; p += 8) {
				uint64_t v0, v1, v2;
				memcpy(&v0, p, 8);
				memcpy(&v1, p + len, 8);
				memcpy(&v2, p + 2 * len, 8);
				c = _mm_crc32_u64(c, v0);
				c1 = _mm_crc32_u64(c1, v1);
				c2 = _mm_crc32_u64(c2, v2);
			}
			c = zeros_shift(shifts[k], (uint32_t)c) ^ (uint32_t)c1;
			c = zeros_shift(shifts[k], (uint32_t)c) ^ (uint32_t)c2;
			p += 2 * len;
			n -= 3 * len;
		}
	}
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		n -= 8;
	}
	while (n--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
	pthread_once(&table_once, init_tables);
#if defined(__x86_64__)
	if (have_hw)
		return crc32c_hw(crc, data, n);
#endif
	return crc32c_sw(crc, data, n);
}
