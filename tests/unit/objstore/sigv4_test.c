/*
 * sigv4_test.c — the SigV4 signer against AWS's published vectors:
 *   - aws-sig-v4-test-suite (AKIDEXAMPLE, 2015-08-30T12:36:00Z, region us-east-1, service "service"):
 *     get-vanilla, get-vanilla-query-order-key-case, get-vanilla-empty-query-key, get-vanilla-utf8-query,
 *     get-unreserved, get-utf8, get-space, post-x-www-form-urlencoded, get-header-value-trim;
 *   - the S3 developer guide examples (AKIAIOSFODNN7EXAMPLE, 2013-05-24T00:00:00Z, service "s3"):
 *     GET object with Range and empty-payload hash, PUT object with a body, ListObjects query.
 *   - UNSIGNED-PAYLOAD: the S3 GET example signed with x-amz-content-sha256: UNSIGNED-PAYLOAD, and a
 *     multipart part PUT (partNumber/uploadId query, signed Content-MD5, UNSIGNED-PAYLOAD) as s3.c sends
 *     it when send_content_md5 is on; the expected values were computed with an independent
 *     implementation (Python hmac/hashlib) that reproduces every published S3 value above.
 *   - sigv4_payload_hash_mode: which payload hash a request with a body signs.
 */
#include "test.h"

#include "objstore/sigv4.h"

#define SUITE_TIME 1440938160 /* 20150830T123600Z */
#define S3DOC_TIME 1369353600 /* 20130524T000000Z */

static const sigv4_creds_t suite = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL, "us-east-1",
				    "service"};
static const sigv4_creds_t s3doc = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL,
				    "us-east-1", "s3"};

static const sigv4_kv_t host_suite[] = {{"Host", "example.amazonaws.com"}};

/* Sign and compare the signature; returns the result for further checks (caller releases). */
static void check_sig(const sigv4_creds_t *c, const char *method, const char *path, const sigv4_kv_t *q, size_t nq,
		      const sigv4_kv_t *h, size_t nh, const char *payload_hash, int64_t now, const char *want_sig,
		      const char *want_pq)
{
	sigv4_req_t req = {method, path, q, nq, h, nh, payload_hash};
	sigv4_result_t r;
	sigv4_result_init(&r);
	sigv4_sign(c, &req, now, &r);
	char sig[65], pq[512];
	snprintf(sig, sizeof sig, "%s", r.signature);
	snprintf(pq, sizeof pq, "%s", r.path_query.p);
	sigv4_result_release(&r);
	CHECK_STR(sig, want_sig);
	if (want_pq)
		CHECK_STR(pq, want_pq);
}

TEST(get_vanilla)
{
	check_sig(&suite, "GET", "/", NULL, 0, host_suite, 1, SIGV4_EMPTY_SHA256, SUITE_TIME,
		  "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", "/");
}

TEST(get_vanilla_canonical_and_authorization)
{
	sigv4_req_t req = {"GET", "/", NULL, 0, host_suite, 1, SIGV4_EMPTY_SHA256};
	sigv4_result_t r;
	sigv4_result_init(&r);
	sigv4_sign(&suite, &req, SUITE_TIME, &r);
	int ok_c = strcmp(r.canonical.p, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
					 "host;x-amz-date\n" SIGV4_EMPTY_SHA256) == 0;
	int ok_s = strcmp(r.string_to_sign.p, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/"
					      "aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63") == 0;
	int ok_a = strcmp(r.authorization.p,
			  "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
			  "SignedHeaders=host;x-amz-date, "
			  "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") == 0;
	int ok_d = strcmp(r.amz_date, "20150830T123600Z") == 0;
	sigv4_result_release(&r);
	CHECK(ok_c);
	CHECK(ok_s);
	CHECK(ok_a);
	CHECK(ok_d);
}

TEST(query_order_key_case)
{
	static const sigv4_kv_t q[] = {{"Param2", "value2"}, {"Param1", "value1"}};
	check_sig(&suite, "GET", "/", q, 2, host_suite, 1, SIGV4_EMPTY_SHA256, SUITE_TIME,
		  "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500", "/?Param1=value1&Param2=value2");
}

TEST(query_empty_key_value)
{
	static const sigv4_kv_t q[] = {{"Param1", "value1"}};
	check_sig(&suite, "GET", "/", q, 1, host_suite, 1, SIGV4_EMPTY_SHA256, SUITE_TIME,
		  "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb", NULL);
}

TEST(query_utf8)
{
	static const sigv4_kv_t q[] = {{"\xe1\x88\xb4", "bar"}};
	check_sig(&suite, "GET", "/", q, 1, host_suite, 1, SIGV4_EMPTY_SHA256, SUITE_TIME,
		  "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04", "/?%E1%88%B4=bar");
}

TEST(unreserved_path)
{
	check_sig(&suite, "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", NULL, 0,
		  host_suite, 1, SIGV4_EMPTY_SHA256, SUITE_TIME,
		  "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f", NULL);
}

TEST(unicode_path)
{
	check_sig(&suite, "GET", "/\xe1\x88\xb4", NULL, 0, host_suite, 1, SIGV4_EMPTY_SHA256, SUITE_TIME,
		  "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85", "/%E1%88%B4");
}

TEST(spaces_in_path)
{
	check_sig(&suite, "GET", "/example space/", NULL, 0, host_suite, 1, SIGV4_EMPTY_SHA256, SUITE_TIME,
		  "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741", "/example%20space/");
}

TEST(header_value_trim)
{
	static const sigv4_kv_t h[] = {
		{"Host", "example.amazonaws.com"}, {"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}};
	check_sig(&suite, "GET", "/", NULL, 0, h, 3, SIGV4_EMPTY_SHA256, SUITE_TIME,
		  "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736", NULL);
}

TEST(post_form_body)
{
	static const sigv4_kv_t h[] = {{"Content-Type", "application/x-www-form-urlencoded"},
				       {"Host", "example.amazonaws.com"}};
	char ph[65];
	sigv4_sha256_hex("Param1=value1", 13, ph);
	check_sig(&suite, "POST", "/", NULL, 0, h, 2, ph, SUITE_TIME,
		  "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a", NULL);
}

TEST(s3_get_object_empty_payload)
{
	static const sigv4_kv_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
				       {"Range", "bytes=0-9"},
				       {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
	check_sig(&s3doc, "GET", "/test.txt", NULL, 0, h, 3, SIGV4_EMPTY_SHA256, S3DOC_TIME,
		  "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", "/test.txt");
}

TEST(s3_get_object_unsigned_payload)
{
	static const sigv4_kv_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
				       {"Range", "bytes=0-9"},
				       {"x-amz-content-sha256", SIGV4_UNSIGNED}};
	check_sig(&s3doc, "GET", "/test.txt", NULL, 0, h, 3, SIGV4_UNSIGNED, S3DOC_TIME,
		  "edacce68e5445863e1f916719fac26d3be9c1581fccd7878ade0879597fc0dc1", NULL);
}

TEST(payload_hash_mode)
{
	/* No body: the empty hash, whatever the transport. */
	CHECK_STR(sigv4_payload_hash_mode(0, 0, 0), SIGV4_EMPTY_SHA256);
	CHECK_STR(sigv4_payload_hash_mode(0, 1, 1), SIGV4_EMPTY_SHA256);
	/* Plain HTTP without Content-MD5: the signature must cover the body (NULL: caller hashes it). */
	CHECK(sigv4_payload_hash_mode(5, 0, 0) == NULL);
	/* A signed Content-MD5 or TLS protects the body. */
	CHECK_STR(sigv4_payload_hash_mode(5, 0, 1), SIGV4_UNSIGNED);
	CHECK_STR(sigv4_payload_hash_mode(5, 1, 0), SIGV4_UNSIGNED);
	CHECK_STR(sigv4_payload_hash_mode((size_t)64 << 20, 1, 1), SIGV4_UNSIGNED);
}

TEST(s3_upload_part_unsigned_payload_with_content_md5)
{
	char md5[25];
	sigv4_md5_base64("hello", 5, md5);
	CHECK_STR(md5, "XUFAKrxLKna5cZ2REBfFkg==");
	const char *ph = sigv4_payload_hash_mode(5, 0, 1);
	static const sigv4_kv_t q[] = {{"uploadId", "VXBsb2FkIElE+="}, {"partNumber", "2"}};
	const sigv4_kv_t h[] = {{"host", "examplebucket.s3.amazonaws.com"},
				{"x-amz-content-sha256", ph},
				{"content-md5", md5}};
	sigv4_req_t req = {"PUT", "/my object", q, 2, h, 3, ph};
	sigv4_result_t r;
	sigv4_result_init(&r);
	sigv4_sign(&s3doc, &req, S3DOC_TIME, &r);
	int ok_c = strcmp(r.canonical.p, "PUT\n/my%20object\npartNumber=2&uploadId=VXBsb2FkIElE%2B%3D\n"
					 "content-md5:XUFAKrxLKna5cZ2REBfFkg==\nhost:examplebucket.s3.amazonaws.com\n"
					 "x-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20130524T000000Z\n\n"
					 "content-md5;host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD") == 0;
	int ok_pq = strcmp(r.path_query.p, "/my%20object?partNumber=2&uploadId=VXBsb2FkIElE%2B%3D") == 0;
	char sig[65];
	snprintf(sig, sizeof sig, "%s", r.signature);
	sigv4_result_release(&r);
	CHECK(ok_c);
	CHECK(ok_pq);
	CHECK_STR(sig, "a0b74edfea788b5ac93aab5445c426bbb5f812d17d5e375605f5d3a69a37ae99");
}

TEST(s3_put_object_with_body)
{
	char ph[65];
	sigv4_sha256_hex("Welcome to Amazon S3.", 21, ph);
	const sigv4_kv_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
				{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
				{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
				{"x-amz-content-sha256", ph}};
	check_sig(&s3doc, "PUT", "/test$file.text", NULL, 0, h, 4, ph, S3DOC_TIME,
		  "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd", "/test%24file.text");
}

TEST(s3_list_objects_query)
{
	static const sigv4_kv_t q[] = {{"prefix", "J"}, {"max-keys", "2"}};
	static const sigv4_kv_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
				       {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
	check_sig(&s3doc, "GET", "/", q, 2, h, 2, SIGV4_EMPTY_SHA256, S3DOC_TIME,
		  "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7", "/?max-keys=2&prefix=J");
}

TEST(session_token_is_signed)
{
	sigv4_creds_t c = suite;
	c.session_token = "TOKEN";
	sigv4_req_t req = {"GET", "/", NULL, 0, host_suite, 1, SIGV4_EMPTY_SHA256};
	sigv4_result_t r;
	sigv4_result_init(&r);
	sigv4_sign(&c, &req, SUITE_TIME, &r);
	int ok = strstr(r.authorization.p, "SignedHeaders=host;x-amz-date;x-amz-security-token,") != NULL &&
		 strcmp(r.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") != 0;
	sigv4_result_release(&r);
	CHECK(ok);
}

TEST(uri_encode)
{
	buf_t b = BUF_INIT;
	sigv4_uri_encode(&b, "a b+c/d=e%~", 11, 1);
	int ok1 = strcmp(b.p, "a%20b%2Bc/d%3De%25~") == 0;
	buf_reset(&b);
	sigv4_uri_encode(&b, "a/b", 3, 0);
	int ok2 = strcmp(b.p, "a%2Fb") == 0;
	buf_release(&b);
	CHECK(ok1);
	CHECK(ok2);
	char md5[25];
	sigv4_md5_base64("", 0, md5);
	CHECK_STR(md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
}

TEST_MAIN()
