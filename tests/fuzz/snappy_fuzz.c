/* snappy_fuzz — the snappy framing format decoder of the gRPC "snappy" encoding (net/grpc.h):
 * never a crash, errors carry a message, the output limit holds, and encode/decode round-trips. */
#include "fuzz_util.h"
#include "net/grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 262144)
		return 0;
	char *p = fuzz_copy(data, size);
	size_t max = size ? (size_t)data[0] * 512 : 0;
	buf_t out = BUF_INIT;
	err_t err = {0};
	int rc = grpc_snappy_decode(&out, p, size, max, &err);
	fuzz_check_err(rc, &err, "grpc_snappy_decode");
	if (rc == 0 && out.n > max) {
		fprintf(stderr, "decoded %zu bytes over the limit %zu\n", out.n, max);
		abort();
	}
	buf_t enc = BUF_INIT, dec = BUF_INIT;
	grpc_snappy_encode(&enc, p, size);
	if (grpc_snappy_decode(&dec, enc.p, enc.n, size, &err) != 0 || dec.n != size ||
	    (size && memcmp(dec.p, p, size) != 0)) {
		fprintf(stderr, "snappy round trip failed: %s\n", err.msg);
		abort();
	}
	buf_release(&out);
	buf_release(&enc);
	buf_release(&dec);
	free(p);
	return 0;
}
