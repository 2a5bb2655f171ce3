/*
 * sigv4.c — AWS Signature Version 4 (see sigv4.h). Follows the published algorithm:
 *   CanonicalRequest = Method \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n HashedPayload
 *   StringToSign     = "AWS4-HMAC-SHA256" \n AmzDate \n Scope \n hex(SHA256(CanonicalRequest))
 *   SigningKey       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, yyyymmdd), region), service), "aws4_request")
 */
#include "objstore/sigv4.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "base/alloc.h"

static const char HEX_UP[] = "0123456789ABCDEF";
static const char HEX_LO[] = "0123456789abcdef";

void sigv4_result_init(sigv4_result_t *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->path_query);
	buf_init(&r->canonical);
	buf_init(&r->string_to_sign);
	buf_init(&r->authorization);
}

void sigv4_result_release(sigv4_result_t *r)
{
	buf_release(&r->path_query);
	buf_release(&r->canonical);
	buf_release(&r->string_to_sign);
	buf_release(&r->authorization);
}

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

void sigv4_uri_encode(buf_t *b, const char *s, size_t n, int keep_slash)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			buf_putc(b, (char)c);
		} else {
			char e[3] = {'%', HEX_UP[c >> 4], HEX_UP[c & 15]};
			buf_append(b, e, 3);
		}
	}
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = HEX_LO[d[i] >> 4];
		out[2 * i + 1] = HEX_LO[d[i] & 15];
	}
	out[2 * n] = 0;
}

void sigv4_sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	SHA256(p, n, d);
	hex(d, sizeof d, out);
}

const char *sigv4_payload_hash_mode(size_t n, int tls, int content_md5)
{
	if (n == 0)
		return SIGV4_EMPTY_SHA256;
	if (tls || content_md5)
		return SIGV4_UNSIGNED;
	return NULL;
}

void sigv4_md5_base64(const void *p, size_t n, char out[25])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dn = 0;
	EVP_Digest(p, n, d, &dn, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)out, d, (int)dn);
}

void sigv4_md5_digest_base64(const unsigned char d[16], char out[25])
{
	EVP_EncodeBlock((unsigned char *)out, d, 16);
}

static void *md_new(const EVP_MD *md)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c || EVP_DigestInit_ex(c, md, NULL) != 1)
		die("objstore: sigv4: cannot initialise a digest");
	return c;
}

void sigv4_hasher_init(sigv4_hasher_t *h, int sha256, int md5)
{
	h->sha256 = sha256 ? md_new(EVP_sha256()) : NULL;
	h->md5 = md5 ? md_new(EVP_md5()) : NULL;
}

void sigv4_hasher_update(sigv4_hasher_t *h, const void *p, size_t n)
{
	if (h->sha256)
		EVP_DigestUpdate(h->sha256, p, n);
	if (h->md5)
		EVP_DigestUpdate(h->md5, p, n);
}

void sigv4_hasher_final(sigv4_hasher_t *h, char sha256_hex[65], char md5_base64[25])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dn = 0;
	sha256_hex[0] = md5_base64[0] = 0;
	if (h->sha256) {
		EVP_DigestFinal_ex(h->sha256, d, &dn);
		hex(d, dn, sha256_hex);
		EVP_MD_CTX_free(h->sha256);
	}
	if (h->md5) {
		EVP_DigestFinal_ex(h->md5, d, &dn);
		EVP_EncodeBlock((unsigned char *)md5_base64, d, (int)dn);
		EVP_MD_CTX_free(h->md5);
	}
	h->sha256 = h->md5 = NULL;
}

static void hmac(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
	unsigned int n = 32;
	HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &n);
}

typedef struct pair {
	buf_t name;
	buf_t value;
} pair_t;

static int cmp_pair(const void *a, const void *b)
{
	const pair_t *x = a, *y = b;
	int c = str_cmp(buf_str(&x->name), buf_str(&y->name));
	return c ? c : str_cmp(buf_str(&x->value), buf_str(&y->value));
}

/* Header value per SigV4: trim, collapse runs of spaces to one. */
static void canon_value(buf_t *b, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t start = b->n;
	int space = 0;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') {
			space = 1;
			continue;
		}
		if (space && b->n > start)
			buf_putc(b, ' ');
		space = 0;
		buf_putc(b, *v);
	}
}

static void free_pairs(pair_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		buf_release(&p[i].name);
		buf_release(&p[i].value);
	}
	free(p);
}

void sigv4_sign(const sigv4_creds_t *c, const sigv4_req_t *req, int64_t now_s, sigv4_result_t *out)
{
	time_t t = (time_t)now_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out->amz_date, sizeof out->amz_date, "%Y%m%dT%H%M%SZ", &tm);
	char day[9];
	memcpy(day, out->amz_date, 8);
	day[8] = 0;

	/* Canonical URI: each segment encoded, '/' kept (S3 style: no normalisation, no double encoding). */
	buf_t *cr = &out->canonical;
	buf_reset(cr);
	buf_reset(&out->path_query);
	buf_puts(cr, req->method);
	buf_putc(cr, '\n');
	size_t uri_start = cr->n;
	const char *path = req->path && *req->path ? req->path : "/";
	sigv4_uri_encode(cr, path, strlen(path), 1);
	buf_append(&out->path_query, cr->p + uri_start, cr->n - uri_start);
	buf_putc(cr, '\n');

	/* Canonical query: encoded names/values sorted by name then value. */
	pair_t *q = xcalloc(req->nquery ? req->nquery : 1, sizeof(*q));
	for (size_t i = 0; i < req->nquery; i++) {
		buf_init(&q[i].name);
		buf_init(&q[i].value);
		const char *nm = req->query[i].name, *v = req->query[i].value ? req->query[i].value : "";
		sigv4_uri_encode(&q[i].name, nm, strlen(nm), 0);
		sigv4_uri_encode(&q[i].value, v, strlen(v), 0);
	}
	qsort(q, req->nquery, sizeof(*q), cmp_pair);
	size_t q_start = cr->n;
	for (size_t i = 0; i < req->nquery; i++) {
		if (i)
			buf_putc(cr, '&');
		buf_append_str(cr, buf_str(&q[i].name));
		buf_putc(cr, '=');
		buf_append_str(cr, buf_str(&q[i].value));
	}
	if (req->nquery) {
		buf_putc(&out->path_query, '?');
		buf_append(&out->path_query, cr->p + q_start, cr->n - q_start);
	}
	buf_putc(cr, '\n');
	free_pairs(q, req->nquery);

	/* Canonical headers: lower-case names, sorted; duplicates joined with ','. */
	int has_token = c->session_token && *c->session_token;
	size_t nh = req->nheaders + 1 + (size_t)has_token;
	pair_t *h = xcalloc(nh, sizeof(*h));
	for (size_t i = 0; i < nh; i++) {
		buf_init(&h[i].name);
		buf_init(&h[i].value);
	}
	for (size_t i = 0; i < req->nheaders; i++) {
		for (const char *s = req->headers[i].name; *s; s++)
			buf_putc(&h[i].name, (char)tolower((unsigned char)*s));
		canon_value(&h[i].value, req->headers[i].value ? req->headers[i].value : "");
	}
	buf_puts(&h[req->nheaders].name, "x-amz-date");
	buf_puts(&h[req->nheaders].value, out->amz_date);
	if (has_token) {
		buf_puts(&h[req->nheaders + 1].name, "x-amz-security-token");
		canon_value(&h[req->nheaders + 1].value, c->session_token);
	}
	/* Stable by name: keep value order of duplicates as given (insertion sort; few headers). */
	for (size_t i = 1; i < nh; i++) {
		pair_t x = h[i];
		size_t j = i;
		while (j > 0 && str_cmp(buf_str(&h[j - 1].name), buf_str(&x.name)) > 0) {
			h[j] = h[j - 1];
			j--;
		}
		h[j] = x;
	}
	buf_t signed_hdrs = BUF_INIT;
	for (size_t i = 0; i < nh; i++) {
		if (i > 0 && str_eq(buf_str(&h[i].name), buf_str(&h[i - 1].name))) {
			buf_truncate(cr, cr->n - 1); /* drop the newline, append ",value" */
			buf_putc(cr, ',');
			buf_append_str(cr, buf_str(&h[i].value));
			buf_putc(cr, '\n');
			continue;
		}
		buf_append_str(cr, buf_str(&h[i].name));
		buf_putc(cr, ':');
		buf_append_str(cr, buf_str(&h[i].value));
		buf_putc(cr, '\n');
		if (signed_hdrs.n)
			buf_putc(&signed_hdrs, ';');
		buf_append_str(&signed_hdrs, buf_str(&h[i].name));
	}
	free_pairs(h, nh);
	buf_putc(cr, '\n');
	buf_append_str(cr, buf_str(&signed_hdrs));
	buf_putc(cr, '\n');
	buf_puts(cr, req->payload_hash ? req->payload_hash : SIGV4_EMPTY_SHA256);

	/* String to sign. */
	char cr_hash[65];
	sigv4_sha256_hex(cr->p, cr->n, cr_hash);
	buf_t scope = BUF_INIT;
	buf_printf(&scope, "%s/%s/%s/aws4_request", day, c->region, c->service);
	buf_reset(&out->string_to_sign);
	buf_printf(&out->string_to_sign, "AWS4-HMAC-SHA256\n%s\n%s\n%s", out->amz_date, scope.p, cr_hash);

	/* Signing key and signature. */
	buf_t k = BUF_INIT;
	buf_printf(&k, "AWS4%s", c->secret_key);
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	hmac(k.p, k.n, day, 8, k1);
	hmac(k1, 32, c->region, strlen(c->region), k2);
	hmac(k2, 32, c->service, strlen(c->service), k3);
	hmac(k3, 32, "aws4_request", 12, k4);
	hmac(k4, 32, out->string_to_sign.p, out->string_to_sign.n, sig);
	hex(sig, 32, out->signature);
	OPENSSL_cleanse(k.p, k.n);
	OPENSSL_cleanse(k1, sizeof k1);
	OPENSSL_cleanse(k4, sizeof k4);
	buf_release(&k);

	buf_reset(&out->authorization);
	buf_printf(&out->authorization, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		   c->access_key, scope.p, signed_hdrs.p, out->signature);
	buf_release(&scope);
	buf_release(&signed_hdrs);
}
