/* s3xml_fuzz — the S3 response XML helpers (objstore/s3xml.h) over arbitrary documents, searched for
 * the tags the S3 client reads: never a crash or a read outside the slice; escape then decode is the
 * identity. */
#include "fuzz_util.h"
#include "objstore/s3xml.h"

static const char *const tags[] = {"Contents", "Key", "Size", "LastModified", "IsTruncated",
				   "NextContinuationToken", "NextMarker", "CommonPrefixes", "Prefix",
				   "Code", "Message", "UploadId", "ETag", "Error"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *p = fuzz_copy(data, size);
	str_t doc = str_from(p, size);
	for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
		size_t pos = 0, prev = 0;
		str_t inner;
		int guard = 0;
		while (s3xml_next(doc, &pos, tags[t], &inner)) {
			if (pos <= prev || pos > size || inner.p < p || inner.p + inner.n > p + size) {
				fprintf(stderr, "s3xml_next: bad position %zu (prev %zu) or inner slice\n", pos, prev);
				abort();
			}
			prev = pos;
			buf_t b = BUF_INIT;
			(void)s3xml_decode(inner, &b);
			(void)s3xml_get(inner, "Key", &b);
			buf_release(&b);
			if (++guard > 100000)
				abort();
		}
		buf_t g = BUF_INIT;
		(void)s3xml_get(doc, tags[t], &g);
		buf_release(&g);
	}
	buf_t esc = BUF_INIT, dec = BUF_INIT;
	s3xml_escape(&esc, p); /* up to the first NUL */
	if (!s3xml_decode(buf_str(&esc), &dec) || dec.n != strlen(p) || memcmp(dec.p, p, dec.n) != 0) {
		fprintf(stderr, "s3xml escape/decode round trip failed\n");
		abort();
	}
	buf_release(&esc);
	buf_release(&dec);
	free(p);
	return 0;
}
