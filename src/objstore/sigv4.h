/*
 * sigv4.h — AWS Signature Version 4 (header-based) signing, our own implementation on OpenSSL.
 *
 * The caller describes a request with raw (unencoded) path and query parameters; sigv4_sign builds the
 * canonical request (URI-encoding each path segment and each query name/value with RFC 3986 unreserved
 * characters kept, sorting query parameters and headers, trimming/collapsing header values), the string
 * to sign and the signature, and returns both the Authorization header value and the encoded
 * path+query that must be used verbatim in the URL so the server sees what was signed.
 *
 * The clock is an argument (now_s), so the signer is tested against AWS's published vectors.
 * x-amz-date (and x-amz-security-token when a session token is set) are added to the signed headers by
 * the signer; the caller must send them (sigv4_result_t holds the values). Every header passed in is
 * signed. The payload hash is the hex SHA-256 of the body or "UNSIGNED-PAYLOAD". Thread-safe, no state.
 */
#ifndef STRATA_OBJSTORE_SIGV4_H
#define STRATA_OBJSTORE_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"

typedef struct sigv4_kv {
	const char *name;
	const char *value;
} sigv4_kv_t;

typedef struct sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *session_token; /* NULL or "" for none */
	const char *region;
	const char *service; /* "s3" */
} sigv4_creds_t;

typedef struct sigv4_req {
	const char *method;
	const char *path; /* raw, starts with '/', '/' kept as separator */
	const sigv4_kv_t *query;
	size_t nquery;
	const sigv4_kv_t *headers; /* must include "host" */
	size_t nheaders;
	const char *payload_hash;
} sigv4_req_t;

typedef struct sigv4_result {
	buf_t path_query;  /* encoded path, plus "?" and the canonical query when there is one */
	buf_t canonical;   /* the canonical request (for debugging and tests) */
	buf_t string_to_sign;
	buf_t authorization; /* value of the Authorization header */
	char amz_date[17];   /* "20150830T123600Z" */
	char signature[65];
} sigv4_result_t;

void sigv4_result_init(sigv4_result_t *r);
void sigv4_result_release(sigv4_result_t *r);

/* now_s: seconds since the Unix epoch. */
void sigv4_sign(const sigv4_creds_t *c, const sigv4_req_t *req, int64_t now_s, sigv4_result_t *out);

/* The x-amz-content-sha256 value a request with an n-byte body signs, or NULL when it must sign the hex
 * SHA-256 of the body (the caller computes it):
 *   - n == 0: SIGV4_EMPTY_SHA256;
 *   - over TLS (tls != 0): SIGV4_UNSIGNED, TLS protects the body;
 *   - when a Content-MD5 header is sent and signed (content_md5 != 0): SIGV4_UNSIGNED. The server still
 *     rejects a body whose MD5 differs (BadDigest), and since the MD5 is part of the signature a body
 *     swapped in transit would need an MD5 second preimage. S3 allows UNSIGNED-PAYLOAD over plain HTTP
 *     too; it saves hashing every uploaded byte with SHA-256 besides MD5 before it can be sent;
 *   - otherwise NULL. */
const char *sigv4_payload_hash_mode(size_t n, int tls, int content_md5);

/* RFC 3986 URI encoding (A-Z a-z 0-9 - . _ ~ kept, everything else %XX upper-case); '/' kept when
 * keep_slash. */
void sigv4_uri_encode(buf_t *b, const char *s, size_t n, int keep_slash);
/* Lower-case hex SHA-256 of p[0..n) into out (65 bytes incl. NUL). */
void sigv4_sha256_hex(const void *p, size_t n, char out[65]);
/* Base64 of the MD5 of p[0..n) into out (25 bytes incl. NUL), for Content-MD5. */
void sigv4_md5_base64(const void *p, size_t n, char out[25]);
/* The Content-MD5 header value (base64) of an MD5 digest computed elsewhere. */
void sigv4_md5_digest_base64(const unsigned char d[16], char out[25]);

/* The same two digests over a body fed piecewise (one pass, e.g. a file part read in small pieces).
 * Either digest may be skipped; final writes "" for a skipped one and releases the hasher. */
typedef struct sigv4_hasher {
	void *sha256, *md5; /* EVP_MD_CTX */
} sigv4_hasher_t;

void sigv4_hasher_init(sigv4_hasher_t *h, int sha256, int md5);
void sigv4_hasher_update(sigv4_hasher_t *h, const void *p, size_t n);
void sigv4_hasher_final(sigv4_hasher_t *h, char sha256_hex[65], char md5_base64[25]);

#endif
