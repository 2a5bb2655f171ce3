/* sigv4_fuzz — SigV4 canonicalisation (objstore/sigv4.h) of arbitrary paths, query parameters and
 * headers: the input is split at NUL bytes into path, then alternating names and values (the first
 * half query parameters, the rest headers). Never a crash; the result is well formed. */
#include <strings.h>

#include "fuzz_util.h"
#include "objstore/sigv4.h"

#define MAX_FIELDS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *p = fuzz_copy(data, size);
	const char *f[MAX_FIELDS + 1];
	size_t nf = 0;
	f[nf++] = p;
	for (size_t i = 0; i < size && nf < MAX_FIELDS + 1; i++)
		if (p[i] == 0)
			f[nf++] = p + i + 1;
	const char *path = f[0][0] == '/' ? f[0] : "/";
	size_t npairs = (nf - 1) / 2, nq = npairs / 2;
	sigv4_kv_t q[MAX_FIELDS / 2], h[MAX_FIELDS / 2 + 1];
	for (size_t i = 0; i < nq; i++)
		q[i] = (sigv4_kv_t){f[1 + 2 * i], f[2 + 2 * i]};
	size_t nh = 0;
	h[nh++] = (sigv4_kv_t){"host", "bucket.s3.example.com"};
	for (size_t i = nq; i < npairs; i++)
		if (f[1 + 2 * i][0] && strcasecmp(f[1 + 2 * i], "host") != 0)
			h[nh++] = (sigv4_kv_t){f[1 + 2 * i], f[2 + 2 * i]};
	sigv4_creds_t c = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", nf > 3 ? f[nf - 1] : NULL,
			   "us-east-1", "s3"};
	sigv4_req_t r = {"GET", path, q, nq, h, nh, SIGV4_UNSIGNED};
	sigv4_result_t out;
	sigv4_result_init(&out);
	sigv4_sign(&c, &r, 1440938160, &out);
	if (strlen(out.signature) != 64 || !out.authorization.n || !out.path_query.n || out.path_query.p[0] != '/') {
		fprintf(stderr, "sigv4: malformed result\n");
		abort();
	}
	for (size_t i = 0; i < out.path_query.n; i++) {
		unsigned char ch = (unsigned char)out.path_query.p[i];
		if (ch <= ' ' || ch >= 0x7f) {
			fprintf(stderr, "sigv4: unencoded byte 0x%02x in path+query\n", ch);
			abort();
		}
	}
	sigv4_result_release(&out);
	buf_t b = BUF_INIT;
	sigv4_uri_encode(&b, p, size, size & 1);
	buf_release(&b);
	free(p);
	return 0;
}
