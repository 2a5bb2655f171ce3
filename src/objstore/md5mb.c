/* md5mb.c — multi-buffer MD5 (RFC 1321); see md5mb.h. */
#include "objstore/md5mb.h"

#include <string.h>

#include "base/alloc.h"

/* The 64 steps of RFC 1321 §3.4 for a, b, c, d of any type with 32-bit lanes (uint32_t or a GCC vector
 * of them: scalars broadcast), message words X(0..15). Shifts are literals so rotates stay immediate. */
#define MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))
#define MD5_STEP(f, a, b, c, d, x, k, s)                                                                          \
	do {                                                                                                      \
		(a) += f((b), (c), (d)) + (x) + (uint32_t)(k);                                                    \
		(a) = (((a) << (s)) | ((a) >> (32 - (s)))) + (b);                                                \
	} while (0)

#define MD5_ROUNDS(a, b, c, d, X)                                                                                 \
	do {                                                                                                      \
		MD5_STEP(MD5_F, a, b, c, d, X(0), 0xd76aa478, 7);                                                 \
		MD5_STEP(MD5_F, d, a, b, c, X(1), 0xe8c7b756, 12);                                                \
		MD5_STEP(MD5_F, c, d, a, b, X(2), 0x242070db, 17);                                                \
		MD5_STEP(MD5_F, b, c, d, a, X(3), 0xc1bdceee, 22);                                                \
		MD5_STEP(MD5_F, a, b, c, d, X(4), 0xf57c0faf, 7);                                                 \
		MD5_STEP(MD5_F, d, a, b, c, X(5), 0x4787c62a, 12);                                                \
		MD5_STEP(MD5_F, c, d, a, b, X(6), 0xa8304613, 17);                                                \
		MD5_STEP(MD5_F, b, c, d, a, X(7), 0xfd469501, 22);                                                \
		MD5_STEP(MD5_F, a, b, c, d, X(8), 0x698098d8, 7);                                                 \
		MD5_STEP(MD5_F, d, a, b, c, X(9), 0x8b44f7af, 12);                                                \
		MD5_STEP(MD5_F, c, d, a, b, X(10), 0xffff5bb1, 17);                                               \
		MD5_STEP(MD5_F, b, c, d, a, X(11), 0x895cd7be, 22);                                               \
		MD5_STEP(MD5_F, a, b, c, d, X(12), 0x6b901122, 7);                                                \
		MD5_STEP(MD5_F, d, a, b, c, X(13), 0xfd987193, 12);                                               \
		MD5_STEP(MD5_F, c, d, a, b, X(14), 0xa679438e, 17);                                               \
		MD5_STEP(MD5_F, b, c, d, a, X(15), 0x49b40821, 22);                                               \
		MD5_STEP(MD5_G, a, b, c, d, X(1), 0xf61e2562, 5);                                                 \
		MD5_STEP(MD5_G, d, a, b, c, X(6), 0xc040b340, 9);                                                 \
		MD5_STEP(MD5_G, c, d, a, b, X(11), 0x265e5a51, 14);                                               \
		MD5_STEP(MD5_G, b, c, d, a, X(0), 0xe9b6c7aa, 20);                                                \
		MD5_STEP(MD5_G, a, b, c, d, X(5), 0xd62f105d, 5);                                                 \
		MD5_STEP(MD5_G, d, a, b, c, X(10), 0x02441453, 9);                                                \
		MD5_STEP(MD5_G, c, d, a, b, X(15), 0xd8a1e681, 14);                                               \
		MD5_STEP(MD5_G, b, c, d, a, X(4), 0xe7d3fbc8, 20);                                                \
		MD5_STEP(MD5_G, a, b, c, d, X(9), 0x21e1cde6, 5);                                                 \
		MD5_STEP(MD5_G, d, a, b, c, X(14), 0xc33707d6, 9);                                                \
		MD5_STEP(MD5_G, c, d, a, b, X(3), 0xf4d50d87, 14);                                                \
		MD5_STEP(MD5_G, b, c, d, a, X(8), 0x455a14ed, 20);                                                \
		MD5_STEP(MD5_G, a, b, c, d, X(13), 0xa9e3e905, 5);                                                \
		MD5_STEP(MD5_G, d, a, b, c, X(2), 0xfcefa3f8, 9);                                                 \
		MD5_STEP(MD5_G, c, d, a, b, X(7), 0x676f02d9, 14);                                                \
		MD5_STEP(MD5_G, b, c, d, a, X(12), 0x8d2a4c8a, 20);                                               \
		MD5_STEP(MD5_H, a, b, c, d, X(5), 0xfffa3942, 4);                                                 \
		MD5_STEP(MD5_H, d, a, b, c, X(8), 0x8771f681, 11);                                                \
		MD5_STEP(MD5_H, c, d, a, b, X(11), 0x6d9d6122, 16);                                               \
		MD5_STEP(MD5_H, b, c, d, a, X(14), 0xfde5380c, 23);                                               \
		MD5_STEP(MD5_H, a, b, c, d, X(1), 0xa4beea44, 4);                                                 \
		MD5_STEP(MD5_H, d, a, b, c, X(4), 0x4bdecfa9, 11);                                                \
		MD5_STEP(MD5_H, c, d, a, b, X(7), 0xf6bb4b60, 16);                                                \
		MD5_STEP(MD5_H, b, c, d, a, X(10), 0xbebfbc70, 23);                                               \
		MD5_STEP(MD5_H, a, b, c, d, X(13), 0x289b7ec6, 4);                                                \
		MD5_STEP(MD5_H, d, a, b, c, X(0), 0xeaa127fa, 11);                                                \
		MD5_STEP(MD5_H, c, d, a, b, X(3), 0xd4ef3085, 16);                                                \
		MD5_STEP(MD5_H, b, c, d, a, X(6), 0x04881d05, 23);                                                \
		MD5_STEP(MD5_H, a, b, c, d, X(9), 0xd9d4d039, 4);                                                 \
		MD5_STEP(MD5_H, d, a, b, c, X(12), 0xe6db99e5, 11);                                               \
		MD5_STEP(MD5_H, c, d, a, b, X(15), 0x1fa27cf8, 16);                                               \
		MD5_STEP(MD5_H, b, c, d, a, X(2), 0xc4ac5665, 23);                                                \
		MD5_STEP(MD5_I, a, b, c, d, X(0), 0xf4292244, 6);                                                 \
		MD5_STEP(MD5_I, d, a, b, c, X(7), 0x432aff97, 10);                                                \
		MD5_STEP(MD5_I, c, d, a, b, X(14), 0xab9423a7, 15);                                               \
		MD5_STEP(MD5_I, b, c, d, a, X(5), 0xfc93a039, 21);                                                \
		MD5_STEP(MD5_I, a, b, c, d, X(12), 0x655b59c3, 6);                                                \
		MD5_STEP(MD5_I, d, a, b, c, X(3), 0x8f0ccc92, 10);                                                \
		MD5_STEP(MD5_I, c, d, a, b, X(10), 0xffeff47d, 15);                                               \
		MD5_STEP(MD5_I, b, c, d, a, X(1), 0x85845dd1, 21);                                                \
		MD5_STEP(MD5_I, a, b, c, d, X(8), 0x6fa87e4f, 6);                                                 \
		MD5_STEP(MD5_I, d, a, b, c, X(15), 0xfe2ce6e0, 10);                                               \
		MD5_STEP(MD5_I, c, d, a, b, X(6), 0xa3014314, 15);                                                \
		MD5_STEP(MD5_I, b, c, d, a, X(13), 0x4e0811a1, 21);                                               \
		MD5_STEP(MD5_I, a, b, c, d, X(4), 0xf7537e82, 6);                                                 \
		MD5_STEP(MD5_I, d, a, b, c, X(11), 0xbd3af235, 10);                                               \
		MD5_STEP(MD5_I, c, d, a, b, X(2), 0x2ad7d2bb, 15);                                                \
		MD5_STEP(MD5_I, b, c, d, a, X(9), 0xeb86d391, 21);                                                \
	} while (0)

static inline uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One lane, nblocks blocks from p. */
static void compress_lane(md5mb_t *m, int lane, const unsigned char *p, size_t nblocks)
{
	uint32_t a = m->st[0][lane], b = m->st[1][lane], c = m->st[2][lane], d = m->st[3][lane];
	for (; nblocks--; p += MD5MB_BLOCK) {
		uint32_t x[16];
		for (int i = 0; i < 16; i++)
			x[i] = le32(p + 4 * i);
		uint32_t a0 = a, b0 = b, c0 = c, d0 = d;
#define XS(i) x[i]
		MD5_ROUNDS(a, b, c, d, XS);
#undef XS
		a += a0;
		b += b0;
		c += c0;
		d += d0;
	}
	m->st[0][lane] = a;
	m->st[1][lane] = b;
	m->st[2][lane] = c;
	m->st[3][lane] = d;
}

/*
 * The vector kernels: lanes [0, N) advance by nblocks blocks; q[l] is lane l's data and step[l] its
 * advance per block (0 for an idle lane reading a zero block, whose result the caller discards). Each
 * block's message words are transposed so that x[i] holds word i of every lane: 8 lanes at a time,
 * with an 8x8 shuffle transpose where the compiler has __builtin_shufflevector, through a small array
 * otherwise. One body, instantiated per width (8 or 16 lanes) and instruction set by MD5MB_KERNEL.
 */
typedef uint32_t v8u32 __attribute__((vector_size(32), aligned(32)));
typedef uint32_t v16u32 __attribute__((vector_size(64), aligned(64)));

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define HAVE_SHUFFLEVECTOR 1
#endif
#endif

/* x[0..15] = word 0..15 of the blocks at q[0..7] + off[0..7]. */
static inline __attribute__((always_inline)) void transpose8(const unsigned char *const q[8], const size_t off[8],
							      v8u32 x[16])
{
#ifdef HAVE_SHUFFLEVECTOR
	for (int h = 0; h < 16; h += 8) {
		v8u32 r[8], t[8], u[8];
		for (int l = 0; l < 8; l++) {
			memcpy(&r[l], q[l] + off[l] + 4 * h, sizeof r[l]);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			for (int i = 0; i < 8; i++)
				r[l][i] = __builtin_bswap32(r[l][i]);
#endif
		}
		for (int k = 0; k < 8; k += 2) {
			t[k] = __builtin_shufflevector(r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
			t[k + 1] = __builtin_shufflevector(r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
		}
		for (int k = 0; k < 8; k += 4)
			for (int j = 0; j < 2; j++) {
				u[k + 2 * j] = __builtin_shufflevector(t[k + j], t[k + j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
				u[k + 2 * j + 1] = __builtin_shufflevector(t[k + j], t[k + j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
			}
		for (int i = 0; i < 4; i++) {
			x[h + i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
			x[h + i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
		}
	}
#else
	uint32_t w[16][8] __attribute__((aligned(32)));
	for (int l = 0; l < 8; l++)
		for (int i = 0; i < 16; i++)
			w[i][l] = le32(q[l] + off[l] + 4 * i);
	memcpy(x, w, sizeof w);
#endif
}

#define MD5MB_KERNEL(name, attrs, vt, N)                                                                          \
	attrs static void name(uint32_t st[4][MD5MB_LANES], const unsigned char *const q[MD5MB_LANES],            \
			       const size_t step[MD5MB_LANES], size_t nblocks)                                    \
	{                                                                                                         \
		vt a, b, c, d;                                                                                    \
		memcpy(&a, st[0], sizeof a);                                                                      \
		memcpy(&b, st[1], sizeof b);                                                                      \
		memcpy(&c, st[2], sizeof c);                                                                      \
		memcpy(&d, st[3], sizeof d);                                                                      \
		size_t off[MD5MB_LANES] = {0};                                                                    \
		for (size_t blk = 0; blk < nblocks; blk++) {                                                      \
			vt x[16];                                                                                 \
			for (int g = 0; g < (N) / 8; g++) {                                                       \
				v8u32 xg[16];                                                                     \
				transpose8(q + 8 * g, off + 8 * g, xg);                                           \
				for (int i = 0; i < 16; i++)                                                      \
					memcpy((char *)&x[i] + 32 * g, &xg[i], 32);                              \
			}                                                                                         \
			for (int l = 0; l < (N); l++)                                                             \
				off[l] += step[l];                                                                \
			vt a0 = a, b0 = b, c0 = c, d0 = d;                                                        \
			MD5_ROUNDS(a, b, c, d, XV);                                                               \
			a += a0;                                                                                  \
			b += b0;                                                                                  \
			c += c0;                                                                                  \
			d += d0;                                                                                  \
		}                                                                                                 \
		memcpy(st[0], &a, sizeof a);                                                                      \
		memcpy(st[1], &b, sizeof b);                                                                      \
		memcpy(st[2], &c, sizeof c);                                                                      \
		memcpy(st[3], &d, sizeof d);                                                                      \
	}
#define XV(i) x[i]

typedef void kernel_fn(uint32_t st[4][MD5MB_LANES], const unsigned char *const q[MD5MB_LANES],
		       const size_t step[MD5MB_LANES], size_t nblocks);

MD5MB_KERNEL(k8_vector, , v8u32, 8)
MD5MB_KERNEL(k16_vector, , v16u32, 16)
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_KERNELS 1
MD5MB_KERNEL(k8_avx2, __attribute__((target("avx2"))), v8u32, 8)
MD5MB_KERNEL(k16_avx2, __attribute__((target("avx2"))), v16u32, 16)
MD5MB_KERNEL(k8_avx512, __attribute__((target("avx2,avx512f,avx512vl"))), v8u32, 8)
MD5MB_KERNEL(k16_avx512, __attribute__((target("avx2,avx512f,avx512vl"))), v16u32, 16)
#endif

typedef struct impl {
	const char *name;
	kernel_fn *k8, *k16; /* NULL: one lane at a time */
} impl_t;

static const impl_t impls[] = {
#ifdef HAVE_X86_KERNELS
	{"avx512", k8_avx512, k16_avx512},
	{"avx2", k8_avx2, k16_avx2},
#endif
	{"vector", k8_vector, k16_vector},
	{"scalar", NULL, NULL},
};

static const impl_t *cur;

static bool cpu_can(const impl_t *im)
{
#ifdef HAVE_X86_KERNELS
	__builtin_cpu_init();
	if (!strcmp(im->name, "avx512"))
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
	if (!strcmp(im->name, "avx2"))
		return __builtin_cpu_supports("avx2");
#endif
	(void)im;
	return true;
}

static const impl_t *impl(void)
{
	if (!cur) /* benign race: every thread picks the same entry */
		for (size_t i = 0; i < sizeof impls / sizeof impls[0] && !cur; i++)
			if (cpu_can(&impls[i]))
				cur = &impls[i];
	return cur;
}

const char *md5mb_impl(void)
{
	return impl()->name;
}

bool md5mb_use(const char *name)
{
	for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
		if (!strcmp(impls[i].name, name) && cpu_can(&impls[i])) {
			cur = &impls[i];
			return true;
		}
	return false;
}

void md5mb_init(md5mb_t *m, int lane)
{
	BUG_ON(lane < 0 || lane >= MD5MB_LANES);
	m->st[0][lane] = 0x67452301;
	m->st[1][lane] = 0xefcdab89;
	m->st[2][lane] = 0x98badcfe;
	m->st[3][lane] = 0x10325476;
}

void md5mb_blocks(md5mb_t *m, const unsigned char *const p[MD5MB_LANES], size_t nblocks)
{
	static const unsigned char zero[MD5MB_BLOCK];
	const impl_t *im = impl();
	int busy = 0, high = -1;
	for (int l = 0; l < MD5MB_LANES; l++)
		if (p[l]) {
			busy++;
			high = l;
		}
	if (busy == 0 || nblocks == 0)
		return;
	if (!im->k8 || busy == 1) {
		for (int l = 0; l < MD5MB_LANES; l++)
			if (p[l])
				compress_lane(m, l, p[l], nblocks);
		return;
	}
	const unsigned char *q[MD5MB_LANES];
	size_t step[MD5MB_LANES];
	for (int l = 0; l < MD5MB_LANES; l++) {
		q[l] = p[l] ? p[l] : zero;
		step[l] = p[l] ? MD5MB_BLOCK : 0;
	}
	md5mb_t keep = *m; /* idle lanes get their state back */
	(high < 8 ? im->k8 : im->k16)(m->st, q, step, nblocks);
	for (int l = 0; l < MD5MB_LANES; l++)
		if (!p[l])
			for (int r = 0; r < 4; r++)
				m->st[r][l] = keep.st[r][l];
}

void md5mb_final(md5mb_t *m, int lane, const void *tail, size_t ntail, uint64_t total, unsigned char out[16])
{
	BUG_ON(lane < 0 || lane >= MD5MB_LANES || ntail >= MD5MB_BLOCK || total % MD5MB_BLOCK != ntail);
	unsigned char pad[2 * MD5MB_BLOCK] = {0};
	memcpy(pad, tail, ntail);
	pad[ntail] = 0x80;
	size_t n = ntail + 1 + 8 <= MD5MB_BLOCK ? MD5MB_BLOCK : 2 * MD5MB_BLOCK;
	uint64_t bits = total * 8;
	for (int i = 0; i < 8; i++)
		pad[n - 8 + i] = (unsigned char)(bits >> (8 * i));
	compress_lane(m, lane, pad, n / MD5MB_BLOCK);
	for (int r = 0; r < 4; r++)
		for (int i = 0; i < 4; i++)
			out[4 * r + i] = (unsigned char)(m->st[r][lane] >> (8 * i));
}
