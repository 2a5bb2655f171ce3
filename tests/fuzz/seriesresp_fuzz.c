/* seriesresp_fuzz — the StoreAPI client's Series response decoding (store/grpc_client.h,
 * store_grpc_decode_series) behind gRPC message framing and snappy framing decode
 * (net/grpc.h, grpc_snappy_decode): the input is a gRPC-framed response body (1 flag byte, 4-byte
 * big-endian length, message; flag 1 = snappy-framed), deframed as the client does, then every series,
 * chunk, sample and warning is read. Never a crash, errors carry a message. */
#include "fuzz_util.h"
#include "net/grpc.h"
#include "store/grpc_client.h"

#define MAX_MSGS 256
#define MAX_RECV (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 262144)
		return 0;
	char *p = fuzz_copy(data, size);
	arena_t a;
	arena_init(&a, 0);
	str_t msgs[MAX_MSGS];
	size_t n = 0, off = 0;
	while (n < MAX_MSGS && size - off >= 5) {
		const uint8_t *h = (const uint8_t *)p + off;
		size_t mlen = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
		if (h[0] > 1 || mlen > size - off - 5)
			break;
		if (h[0] == 1) {
			buf_t out = BUF_INIT;
			err_t err = {0};
			int rc = grpc_snappy_decode(&out, h + 5, mlen, MAX_RECV, &err);
			fuzz_check_err(rc, &err, "grpc_snappy_decode");
			if (rc) {
				buf_release(&out);
				break;
			}
			msgs[n++] = (str_t){arena_memdup(&a, out.p ? out.p : "", out.n ? out.n : 1), out.n};
			buf_release(&out);
		} else {
			msgs[n++] = (str_t){p + off + 5, mlen};
		}
		off += 5 + mlen;
	}
	series_set_t *set = NULL;
	if (store_grpc_decode_series(&a, msgs, n, INT64_MIN, INT64_MAX, &set) != 0)
		abort();
	fuzz_drain_set(set, "Series set");
	arena_release(&a);
	free(p);
	return 0;
}
