/* meta_fuzz — block meta.json parsing (tsdb/meta.h): never a crash, errors carry a message, and a meta
 * that parses formats to JSON that parses again and formats identically. */
#include "fuzz_util.h"
#include "tsdb/meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *p = fuzz_copy(data, size);
	block_meta_t m;
	memset(&m, 0, sizeof m);
	err_t err = {0};
	int rc = meta_parse(&m, p, size, "fuzz/meta.json", &err);
	fuzz_check_err(rc, &err, "meta_parse");
	if (rc == 0) {
		buf_t b = BUF_INIT, b2 = BUF_INIT;
		meta_format(&b, &m);
		block_meta_t m2;
		memset(&m2, 0, sizeof m2);
		if (meta_parse(&m2, b.p, b.n, "formatted", &err) != 0) {
			fprintf(stderr, "formatted meta does not parse: %s\n%.*s\n", err.msg, (int)b.n, b.p);
			abort();
		}
		meta_format(&b2, &m2);
		if (b.n != b2.n || memcmp(b.p, b2.p, b.n) != 0) {
			fprintf(stderr, "meta round trip differs:\n%s\n---\n%s\n", b.p, b2.p);
			abort();
		}
		meta_release(&m2);
		buf_release(&b);
		buf_release(&b2);
	}
	meta_release(&m);
	free(p);
	return 0;
}
