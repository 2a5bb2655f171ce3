/* md5mb_test.c — multi-buffer MD5 against RFC 1321's test suite and OpenSSL's MD5, with every kernel
 * this CPU can run, lanes of different lengths, idle lanes and lanes restarted mid-way. */
#include "objstore/md5mb.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "test.h"

static const char *const kernels[] = {"avx512", "avx2", "vector", "scalar"};

static void hex(const unsigned char d[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The message in lanes 3 and 12 at once (so the vector kernel runs), fed block by block; both lanes
 * must agree. */
static void md5_one(const void *p, size_t n, char out[33])
{
	md5mb_t m;
	md5mb_init(&m, 3);
	md5mb_init(&m, 12);
	const unsigned char *q[MD5MB_LANES] = {0};
	q[3] = q[12] = p;
	md5mb_blocks(&m, q, n / MD5MB_BLOCK);
	unsigned char d[16], d2[16];
	const unsigned char *tail = (const unsigned char *)p + n / MD5MB_BLOCK * MD5MB_BLOCK;
	md5mb_final(&m, 3, tail, n % MD5MB_BLOCK, n, d);
	md5mb_final(&m, 12, tail, n % MD5MB_BLOCK, n, d2);
	CHECK(memcmp(d, d2, 16) == 0);
	hex(d, out);
}

static void md5_ref(const void *p, size_t n, char out[33])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dn = 0;
	EVP_Digest(p, n, d, &dn, EVP_md5(), NULL);
	hex(d, out);
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void)
{
	return test_xorshift(&rng);
}

TEST(rfc1321_suite_every_kernel)
{
	static const char *const in[] = {"", "a", "abc", "message digest", "abcdefghijklmnopqrstuvwxyz",
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
					 "1234567890123456789012345678901234567890123456789012345678901234567890123456"
					 "7890"};
	static const char *const want[] = {"d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661",
					   "900150983cd24fb0d6963f7d28e17f72", "f96b697d7cb7938d525a2f31aaf161d0",
					   "c3fcd3d76192e4007dfb496cca67e13b", "d174ab98d277d9f5a5611c2c9f419d9f",
					   "57edf4a22be3c955ac49da2e2107b67a"};
	for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
		if (!md5mb_use(kernels[k]))
			continue;
		for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
			char got[33];
			md5_one(in[i], strlen(in[i]), got);
			CHECK_STR(got, want[i]);
		}
	}
	CHECK(md5mb_use("scalar"));
	CHECK(!md5mb_use("no-such-kernel"));
}

/* All 16 lanes busy with messages of different lengths; lanes finish at different times, are
 * restarted with a new message, and some stay idle for a while; every digest equals OpenSSL's. */
static void lanes_against_openssl(int nlanes_max)
{
	enum { MSGS = 64, MAXLEN = 40000 };
	unsigned char *data = xmalloc(MAXLEN + MD5MB_BLOCK);
	for (size_t i = 0; i < MAXLEN + MD5MB_BLOCK; i++)
		data[i] = (unsigned char)next_rand();
	size_t off[MSGS], len[MSGS];
	for (int i = 0; i < MSGS; i++) {
		len[i] = i < 8 ? (size_t)i * 63 : next_rand() % (MAXLEN / 2);
		off[i] = next_rand() % (MAXLEN - len[i]);
	}
	md5mb_t m;
	int msg_of[MD5MB_LANES];
	size_t done[MD5MB_LANES];
	int next_msg = 0, finished = 0;
	for (int l = 0; l < MD5MB_LANES; l++)
		msg_of[l] = -1;
	while (finished < MSGS) {
		for (int l = 0; l < nlanes_max && next_msg < MSGS; l++)
			if (msg_of[l] < 0 && next_rand() % 4 != 0) { /* sometimes leave a free lane idle */
				msg_of[l] = next_msg++;
				done[l] = 0;
				md5mb_init(&m, l);
			}
		const unsigned char *q[MD5MB_LANES] = {0};
		size_t nb = SIZE_MAX;
		for (int l = 0; l < MD5MB_LANES; l++) {
			if (msg_of[l] < 0)
				continue;
			size_t left = (len[msg_of[l]] - done[l]) / MD5MB_BLOCK;
			if (left && left < nb)
				nb = left;
		}
		if (nb == SIZE_MAX)
			nb = 0;
		if (nb > 7)
			nb = 1 + next_rand() % nb; /* uneven steps */
		for (int l = 0; l < MD5MB_LANES; l++)
			if (msg_of[l] >= 0 && (len[msg_of[l]] - done[l]) / MD5MB_BLOCK >= nb && nb)
				q[l] = data + off[msg_of[l]] + done[l];
		md5mb_blocks(&m, q, nb);
		for (int l = 0; l < MD5MB_LANES; l++) {
			if (!q[l])
				continue;
			done[l] += nb * MD5MB_BLOCK;
		}
		for (int l = 0; l < MD5MB_LANES; l++) {
			int i = msg_of[l];
			if (i < 0 || len[i] - done[l] >= MD5MB_BLOCK)
				continue;
			unsigned char d[16];
			md5mb_final(&m, l, data + off[i] + done[l], len[i] - done[l], len[i], d);
			char got[33], want[33];
			hex(d, got);
			md5_ref(data + off[i], len[i], want);
			if (strcmp(got, want))
				TEST_FAILF("%s, %d lanes: message %d (%zu bytes): %s, want %s", md5mb_impl(), nlanes_max, i,
					   len[i], got, want);
			msg_of[l] = -1;
			finished++;
		}
	}
	free(data);
}

TEST(lanes_match_openssl_every_kernel)
{
	for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
		if (!md5mb_use(kernels[k]))
			continue;
		lanes_against_openssl(8);  /* the 8-lane kernel */
		lanes_against_openssl(16); /* the 16-lane kernel */
		lanes_against_openssl(2);
	}
}

TEST(large_message_crosses_many_blocks)
{
	size_t n = (1u << 20) + 37;
	unsigned char *p = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + (i >> 9));
	char got[33], want[33];
	md5_ref(p, n, want);
	for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
		if (!md5mb_use(kernels[k]))
			continue;
		md5_one(p, n, got);
		CHECK_STR(got, want);
	}
	free(p);
}

TEST_MAIN()
