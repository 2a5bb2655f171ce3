/*
 * md5mb_bench — throughput of the multi-buffer MD5 (src/objstore/md5mb.h) that hashes S3 upload parts,
 * per kernel this CPU can run and per number of busy lanes, against OpenSSL's MD5 of one message (what
 * one part costs without it). 16 messages of 16 MiB each, hashed from memory in 64 KiB steps as the
 * uploader does; best of 3 runs. Prints RESULT lines (aggregate MB/s over all busy lanes).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "objstore/md5mb.h"

#define MSG (16u << 20)
#define STEP (64u << 10)

static double run_lanes(const unsigned char *data, int lanes)
{
	double best = 0;
	for (int round = 0; round < 3; round++) {
		md5mb_t m;
		for (int l = 0; l < lanes; l++)
			md5mb_init(&m, l);
		uint64_t t0 = clock_mono_ns();
		for (size_t off = 0; off < MSG; off += STEP) {
			const unsigned char *q[MD5MB_LANES] = {0};
			for (int l = 0; l < lanes; l++)
				q[l] = data + (size_t)l * MSG + off;
			md5mb_blocks(&m, q, STEP / MD5MB_BLOCK);
		}
		double s = clock_since_s(t0);
		double mbps = (double)lanes * MSG / s / 1e6;
		if (mbps > best)
			best = mbps;
	}
	return best;
}

int main(void)
{
	unsigned char *data = xmalloc((size_t)MD5MB_LANES * MSG);
	for (size_t i = 0; i < (size_t)MD5MB_LANES * MSG; i++)
		data[i] = (unsigned char)(i * 131 + (i >> 13));

	double ossl = 0;
	for (int round = 0; round < 3; round++) {
		unsigned char d[EVP_MAX_MD_SIZE];
		unsigned int dn = 0;
		uint64_t t0 = clock_mono_ns();
		EVP_Digest(data, MSG, d, &dn, EVP_md5(), NULL);
		double mbps = MSG / clock_since_s(t0) / 1e6;
		if (mbps > ossl)
			ossl = mbps;
	}
	printf("RESULT md5_openssl_one_message %.0f MB/s\n", ossl);

	static const char *const kernels[] = {"avx512", "avx2", "vector", "scalar"};
	static const int lanes[] = {1, 4, 8, 16};
	for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
		if (!md5mb_use(kernels[k])) {
			printf("md5mb_bench: kernel %s: not supported by this CPU\n", kernels[k]);
			continue;
		}
		for (size_t i = 0; i < sizeof lanes / sizeof lanes[0]; i++) {
			double mbps = run_lanes(data, lanes[i]);
			printf("RESULT md5mb_%s_%d_lanes %.0f MB/s (%.2fx OpenSSL one message)\n", kernels[k], lanes[i],
			       mbps, mbps / ossl);
		}
	}
	free(data);
	return 0;
}
