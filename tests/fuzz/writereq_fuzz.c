/* writereq_fuzz — the remote-write body decoder (receive/writereq.h), raw protobuf and snappy-wrapped:
 * never a crash or a read outside the input, errors carry a message, a decoded request's arrays hold
 * exactly the counts it reports, label checks never crash, and memory stays bounded by the limit. */
#include "base/arena.h"
#include "fuzz_util.h"
#include "receive/writereq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 20)
		return 0;
	char *p = fuzz_copy(data, size);
	for (int snappy = 0; snappy < 2; snappy++) {
		arena_t a;
		arena_init(&a, 0);
		wr_request_t r;
		err_t err = {0};
		int rc = snappy ? wr_decode_body(&a, p, size, 4u << 20, &r, &err)
		                : wr_decode(&a, (const uint8_t *)p, size, &r, &err);
		fuzz_check_err(rc, &err, "wr_decode");
		if (rc == 0) {
			size_t ns = 0, nl = 0;
			for (size_t i = 0; i < r.nseries; i++) {
				ns += r.series[i].n;
				nl += r.series[i].ls.n;
				for (uint32_t k = 0; k < r.series[i].n; k++)
					(void)(r.series[i].t[k] + (int64_t)r.series[i].v[k]);
				labels_check(&r.series[i].ls, &err);
			}
			if (ns != r.nsamples || nl != r.nlabels) {
				fprintf(stderr, "counts disagree: %zu/%zu samples %zu/%zu labels\n", ns,
				        r.nsamples, nl, r.nlabels);
				abort();
			}
		}
		if (a.allocated > (32u << 20) + 16 * (size_t)size) {
			fprintf(stderr, "decoding %zu bytes allocated %zu\n", size, a.allocated);
			abort();
		}
		arena_release(&a);
	}
	free(p);
	return 0;
}
