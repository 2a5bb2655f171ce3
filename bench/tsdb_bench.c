/*
 * tsdb_bench — XOR chunk encode/decode throughput on 120-sample chunks (15s scrape, counter-like
 * values). Prints samples/s per core.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tsdb/xor.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	enum { NCHUNK = 1000, N = 120, ROUNDS = 50 };
	int64_t t[N];
	double v[N];
	xor_enc_t enc[NCHUNK];
	chunk_t ch[NCHUNK];
	uint64_t seed = 1;
	double t0 = now();
	for (int r = 0; r < ROUNDS; r++) {
		for (int c = 0; c < NCHUNK; c++) {
			if (r == 0)
				xor_enc_init(&enc[c]);
			else
				xor_enc_reset(&enc[c]);
			double val = (double)c;
			for (int i = 0; i < N; i++) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				t[i] = 1700000000000ll + i * 15000 + (int64_t)(seed >> 60);
				val += (double)(seed >> 58);
				v[i] = val;
			}
			for (int i = 0; i < N; i++)
				xor_enc_append(&enc[c], t[i], v[i]);
		}
	}
	double enc_s = now() - t0;
	size_t bytes = 0;
	for (int c = 0; c < NCHUNK; c++) {
		size_t len;
		ch[c].data = xor_enc_bytes(&enc[c], &len);
		ch[c].len = len;
		ch[c].enc = CHUNK_ENC_XOR;
		bytes += len;
	}
	double sum = 0;
	t0 = now();
	for (int r = 0; r < ROUNDS * 4; r++) {
		for (int c = 0; c < NCHUNK; c++) {
			xor_dec_t d;
			xor_dec_init(&d, ch[c].data, ch[c].len, NULL);
			int64_t tt;
			double vv;
			while (xor_dec_next(&d, &tt, &vv, NULL) == 1)
				sum += vv;
		}
	}
	double dec_s = now() - t0;
	double total_enc = (double)NCHUNK * N * ROUNDS, total_dec = (double)NCHUNK * N * ROUNDS * 4;
	printf("xor encode: %.1f M samples/s\n", total_enc / enc_s / 1e6);
	printf("xor decode: %.1f M samples/s (%.2f bytes/sample, checksum %g)\n", total_dec / dec_s / 1e6,
	       (double)bytes / (NCHUNK * N), sum);
	for (int c = 0; c < NCHUNK; c++)
		xor_enc_release(&enc[c]);
	return 0;
}
