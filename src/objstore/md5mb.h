/*
 * md5mb.h — MD5 (RFC 1321) of up to MD5MB_LANES independent messages at once ("multi-buffer").
 *
 * One MD5 is a serial chain of 32-bit operations, so a single message cannot go faster than about
 * 0.7 GB/s on one core. Independent messages can: lane i of a SIMD register carries message i, and
 * one pass of vector instructions advances all of them by a 64-byte block. The S3 upload hashes the
 * parts of a multipart upload this way (each part needs its own Content-MD5).
 *
 * Usage: md5mb_init a lane, feed whole 64-byte blocks with md5mb_blocks (every lane with a non-NULL
 * pointer advances by the same number of blocks; lanes given NULL keep their state), then md5mb_final
 * with the lane's remaining < 64 bytes and its total length. The kernel is picked at run time by CPU
 * (AVX-512VL, AVX2, or portable C that the compiler vectorises as it can); lanes 0-7 use an 8-lane
 * kernel when no higher lane is busy, so fill low lanes first.
 */
#ifndef STRATA_OBJSTORE_MD5MB_H
#define STRATA_OBJSTORE_MD5MB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MD5MB_LANES 16
#define MD5MB_BLOCK 64

typedef struct md5mb {
	uint32_t st[4][MD5MB_LANES]; /* A, B, C, D of every lane */
} md5mb_t;

void md5mb_init(md5mb_t *m, int lane);
void md5mb_blocks(md5mb_t *m, const unsigned char *const p[MD5MB_LANES], size_t nblocks);
/* tail: the lane's last total % 64 bytes (ntail < 64); total: the lane's message length in bytes. */
void md5mb_final(md5mb_t *m, int lane, const void *tail, size_t ntail, uint64_t total, unsigned char out[16]);

/* The kernel in use: "avx512", "avx2", "vector" (portable vector C) or "scalar" (one lane at a time).
 * md5mb_use picks one (tests and benchmarks); false if this CPU cannot run it. Not thread-safe: call it
 * before hashing starts. */
const char *md5mb_impl(void);
bool md5mb_use(const char *impl);

#endif
