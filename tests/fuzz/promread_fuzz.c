/* promread_fuzz — remote-read response decoding of the sidecar's Prometheus store (sidecar/prom_store.h,
 * prom_store_decode): the first byte picks STREAMED_XOR_CHUNKS frames (even) or a snappy SAMPLES
 * ReadResponse (odd); every series, chunk and sample is read. Never a crash, errors carry a message. */
#include "fuzz_util.h"
#include "sidecar/prom_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 262144)
		return 0;
	bool streamed = (data[0] & 1) == 0;
	char *p = fuzz_copy(data + 1, size - 1);
	arena_t a;
	arena_init(&a, 0);
	label_t el[] = {{STR("replica"), STR("r0")}};
	labels_t ext = {el, 1};
	series_set_t *set = NULL;
	err_t err = {0};
	int rc = prom_store_decode(&a, p, size - 1, streamed, &ext, INT64_MIN, INT64_MAX, &set, &err);
	fuzz_check_err(rc, &err, "prom_store_decode");
	if (rc == 0)
		fuzz_drain_set(set, "remote read set");
	arena_release(&a);
	free(p);
	return 0;
}
