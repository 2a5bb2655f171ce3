/*
 * compress_test — Accept-Encoding negotiation and gzip/deflate bodies (inflated back with zlib, and
 * checked for the RFC 1952 / RFC 1950 wrappers that Go's and curl's decoders expect).
 */
#include <zlib.h>

#include "test.h"

#include "net/api_compress.h"
#include "base/alloc.h"

TEST(negotiation)
{
	static const struct {
		const char *accept;
		api_encoding_t want;
	} cases[] = {
		{"", API_ENC_IDENTITY},
		{"identity", API_ENC_IDENTITY},
		{"gzip", API_ENC_GZIP},
		{"deflate", API_ENC_DEFLATE},
		{"gzip, deflate, br", API_ENC_GZIP}, /* Go's http.Transport sends "gzip"; browsers this */
		{"deflate, gzip", API_ENC_GZIP},     /* equal q: gzip */
		{"br, deflate", API_ENC_DEFLATE},
		{"GZIP", API_ENC_GZIP},
		{"x-gzip", API_ENC_GZIP},
		{"gzip;q=0", API_ENC_IDENTITY},
		{"gzip; q=0, deflate", API_ENC_DEFLATE},
		{"gzip;q=0.5, deflate;q=0.8", API_ENC_DEFLATE},
		{"gzip;q=1.0, deflate;q=0.8", API_ENC_GZIP},
		{"*", API_ENC_GZIP},
		{"*;q=0", API_ENC_IDENTITY},
		{"gzip;q=0, *", API_ENC_DEFLATE},
		{"deflate;q=0, *;q=0.1", API_ENC_GZIP},
		{"gzip;q=abc", API_ENC_IDENTITY}, /* malformed q: refused, not guessed */
		{"gzip;q=2", API_ENC_IDENTITY},
		{" , ,gzip ,", API_ENC_GZIP},
		{"gzipx, deflatex", API_ENC_IDENTITY},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_encoding_t got = api_encoding_negotiate(str_c(cases[i].accept));
		if (got != cases[i].want)
			TEST_FAILF("\"%s\": got %s, want %s", cases[i].accept, api_encoding_name(got),
				   api_encoding_name(cases[i].want));
	}
	CHECK_STR(api_encoding_name(API_ENC_GZIP), "gzip");
	CHECK_STR(api_encoding_name(API_ENC_DEFLATE), "deflate");
	CHECK_STR(api_encoding_name(API_ENC_IDENTITY), "identity");
}

/* Inflate with the wrapper zlib detects (windowBits 15+32: gzip or zlib), requiring the whole input to
 * be one complete stream. */
static void inflate_all(const buf_t *z, buf_t *out)
{
	z_stream zs = {0};
	CHECK(inflateInit2(&zs, 15 + 32) == Z_OK);
	zs.next_in = (Bytef *)z->p;
	zs.avail_in = (uInt)z->n;
	int rc;
	do {
		buf_reserve(out, 64 * 1024);
		zs.next_out = (Bytef *)out->p + out->n;
		zs.avail_out = (uInt)(out->cap - out->n - 1);
		uInt before = zs.avail_out;
		rc = inflate(&zs, Z_NO_FLUSH);
		out->n += before - zs.avail_out;
		out->p[out->n] = 0;
	} while (rc == Z_OK);
	uInt left = zs.avail_in;
	inflateEnd(&zs);
	if (rc != Z_STREAM_END || left != 0)
		TEST_FAILF("inflate: rc %d, %u bytes left", rc, left);
}

static void round_trip(api_encoding_t e, const char *in, size_t n)
{
	buf_t z = BUF_INIT, back = BUF_INIT;
	buf_puts(&z, "prefix"); /* appends */
	err_t err = {0};
	CHECK(api_compress(e, in, n, &z, &err) == 0);
	CHECK(memcmp(z.p, "prefix", 6) == 0);
	buf_t only = BUF_INIT;
	buf_append(&only, z.p + 6, z.n - 6);
	if (e == API_ENC_GZIP) {
		CHECK((unsigned char)only.p[0] == 0x1f && (unsigned char)only.p[1] == 0x8b); /* RFC 1952 magic */
	} else {
		CHECK(((unsigned char)only.p[0] & 0x0f) == 8); /* RFC 1950: CM = deflate */
		CHECK((((unsigned char)only.p[0] << 8) | (unsigned char)only.p[1]) % 31 == 0);
	}
	inflate_all(&only, &back);
	CHECK_EQ_U64(back.n, n);
	CHECK(n == 0 || memcmp(back.p, in, n) == 0);
	buf_release(&z);
	buf_release(&only);
	buf_release(&back);
}

TEST(gzip_and_deflate_round_trip)
{
	/* JSON-like repetitive text (what API responses are) and incompressible bytes (output larger than
	 * input: deflate must still finish), plus the empty body. */
	buf_t json = BUF_INIT, noise = BUF_INIT;
	for (int i = 0; i < 20000; i++)
		buf_printf(&json, "{\"metric\":{\"__name__\":\"up\",\"instance\":\"10.0.%d.%d:9100\"},\"value\":[%d,\"1\"]},",
			   i / 256, i % 256, 1700000000 + i);
	uint64_t s = 42;
	for (int i = 0; i < 300000; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		buf_putc(&noise, (char)(s >> 56));
	}
	for (int e = API_ENC_GZIP; e <= API_ENC_DEFLATE; e++) {
		round_trip((api_encoding_t)e, json.p, json.n);
		round_trip((api_encoding_t)e, noise.p, noise.n);
		round_trip((api_encoding_t)e, "", 0);
	}
	/* Compression actually happens on JSON. */
	buf_t z = BUF_INIT;
	err_t err = {0};
	CHECK(api_compress(API_ENC_GZIP, json.p, json.n, &z, &err) == 0);
	CHECK(z.n * 5 < json.n);
	/* identity copies. */
	buf_reset(&z);
	CHECK(api_compress(API_ENC_IDENTITY, "abc", 3, &z, &err) == 0);
	CHECK_STR(z.p, "abc");
	buf_release(&z);
	buf_release(&json);
	buf_release(&noise);
}

TEST_MAIN()
