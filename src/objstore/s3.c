/*
 * s3.c — S3 bucket (see s3.h).
 *
 * Every request goes through one path: s3_call_t describes it, call_setup() signs it and configures a
 * curl easy handle, call_finish() classifies the outcome (success, not found, access denied, invalid,
 * retryable). s3_do() runs a call with retries on a pooled easy handle; s3_get_ranges() runs many
 * calls on a pooled multi handle. A GET that fails half-way resumes from the byte it reached, so a
 * retried read never hands the sink the same bytes twice.
 */
#include "objstore/s3.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/vec.h"
#include "objstore/md5mb.h"
#include "objstore/s3xml.h"
#include "objstore/sigv4.h"

#define MIN_PART_SIZE (5 * 1024 * 1024)
#define MAX_PART_SIZE (5LL * 1024 * 1024 * 1024) /* S3's limits */
#define ERR_BODY_MAX (64 * 1024)
#define LIST_BODY_MAX (64 * 1024 * 1024)

typedef struct s3_bucket {
	bucket_t base;
	char *base_url;    /* "http://127.0.0.1:9000" (no trailing '/') */
	char *host;        /* Host header value, signed */
	struct curl_slist *connect_to; /* tls_config.server_name: the URL names it, this maps it to host */
	char *path_prefix; /* "/<bucket>" (path style) or "" (virtual-hosted) */
	char *access_key, *secret_key, *session_token, *region;
	char *ca_file, *cert_file, *key_file;
	bool skip_verify, send_md5, list_v1, https;
	int64_t idle_ms, stall_ms, connect_ms, part_size, retry_base_ms;
	int max_retries;
	char *sse_type, *sse_kms_key_id;
	int64_t (*now_s)(void);
	pthread_mutex_t mu;
	VEC(CURL *) easy_pool;
	VEC(CURLM *) multi_pool;
	atomic_uint_fast64_t nreq;
} s3_bucket_t;

#define SB(b) ((s3_bucket_t *)(b))

/* ---- config ---- */

void s3_config_init(s3_config_t *c)
{
	memset(c, 0, sizeof(*c));
	c->idle_conn_timeout_ms = 90 * 1000;
	c->response_header_timeout_ms = 120 * 1000;
	c->tls_handshake_timeout_ms = 10 * 1000;
	c->part_size = 64 * 1024 * 1024;
	c->send_content_md5 = true;
	c->retry_base_ms = 100;
}

void s3_config_release(s3_config_t *c)
{
	char **strs[] = {&c->bucket, &c->endpoint, &c->region, &c->access_key, &c->secret_key,
			 &c->session_token, &c->ca_file, &c->cert_file, &c->key_file, &c->server_name,
			 &c->list_objects_version, &c->bucket_lookup_type, &c->sse_type, &c->sse_kms_key_id};
	for (size_t i = 0; i < ARRAY_LEN(strs); i++) {
		if (*strs[i] && (strs[i] == &c->secret_key || strs[i] == &c->session_token))
			memset(*strs[i], 0, strlen(*strs[i]));
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

/* ---- handle pools ---- */

static CURL *easy_get(s3_bucket_t *s)
{
	CURL *h = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->easy_pool.n)
		h = VEC_POP(&s->easy_pool);
	pthread_mutex_unlock(&s->mu);
	if (!h) {
		h = curl_easy_init();
		if (!h)
			die("objstore: s3: curl_easy_init failed");
	}
	return h;
}

static void easy_put(s3_bucket_t *s, CURL *h)
{
	pthread_mutex_lock(&s->mu);
	VEC_PUSH(&s->easy_pool, h);
	pthread_mutex_unlock(&s->mu);
}

static CURLM *multi_get(s3_bucket_t *s)
{
	CURLM *m = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->multi_pool.n)
		m = VEC_POP(&s->multi_pool);
	pthread_mutex_unlock(&s->mu);
	if (!m) {
		m = curl_multi_init();
		if (!m)
			die("objstore: s3: curl_multi_init failed");
		curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 256L);
	}
	return m;
}

static void multi_put(s3_bucket_t *s, CURLM *m)
{
	pthread_mutex_lock(&s->mu);
	VEC_PUSH(&s->multi_pool, m);
	pthread_mutex_unlock(&s->mu);
}

/* ---- one request ---- */

typedef struct s3_call {
	/* request */
	const char *method;
	const char *key; /* NULL: the bucket itself */
	sigv4_kv_t q[6];
	size_t nq;
	const char *body; /* PUT/POST body (may be NULL with body_n 0) */
	size_t body_n;
	int body_fd;       /* >= 0: PUT body is body_n bytes of this file from body_off (pread as sent) */
	int64_t body_off;
	const char *content_type;
	bool sse;          /* add server-side-encryption headers */
	bool ranged;       /* GET with off/len */
	int64_t off, len;  /* len < 0: to the end */
	bucket_sink_fn sink; /* 2xx GET body; NULL collects into resp */
	void *sink_arg;
	const char *payload_sha; /* precomputed hex SHA-256 of body (NULL: computed by call_setup) */
	const char *content_md5; /* precomputed base64 MD5 of body (NULL: computed by call_setup) */
	/* state */
	CURL *h;
	struct curl_slist *hdrs;
	long status;
	buf_t resp;        /* 2xx body without sink, or the error body */
	size_t body_pos;
	int64_t delivered; /* bytes given to sink over all attempts */
	int64_t skip;      /* bytes to drop (server ignored Range) */
	int sink_rc;
	int attempts;
	char etag[256];
	int64_t content_length;
	int64_t last_modified_ms;
	int read_rc;       /* body_fd read failure (the transfer was aborted) */
	err_t read_err;
	char errbuf[CURL_ERROR_SIZE];
} s3_call_t;

static void call_init(s3_call_t *c, const char *method, const char *key)
{
	memset(c, 0, sizeof(*c));
	c->method = method;
	c->key = key;
	c->len = -1;
	c->content_length = -1;
	c->body_fd = -1;
	buf_init(&c->resp);
}

static void call_release(s3_call_t *c)
{
	curl_slist_free_all(c->hdrs);
	c->hdrs = NULL;
	buf_release(&c->resp);
}

static size_t write_cb(char *p, size_t sz, size_t nm, void *arg)
{
	s3_call_t *c = arg;
	size_t n = sz * nm;
	if (c->status == 0)
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
	if (c->status / 100 == 2 && c->sink) {
		size_t total = n;
		if (c->status == 200 && c->ranged && c->skip < 0) /* Range ignored: skip to the asked offset */
			c->skip = c->off + c->delivered;
		if (c->skip > 0) {
			size_t d = (int64_t)n < c->skip ? n : (size_t)c->skip;
			c->skip -= (int64_t)d;
			p += d;
			n -= d;
		}
		if (c->len >= 0 && c->delivered + (int64_t)n > c->len)
			n = (size_t)(c->len - c->delivered);
		if (n > 0) {
			int rc = c->sink(c->sink_arg, p, n);
			if (rc) {
				c->sink_rc = rc;
				return 0;
			}
			c->delivered += (int64_t)n;
		}
		return total;
	}
	size_t max = c->status / 100 == 2 ? LIST_BODY_MAX : ERR_BODY_MAX;
	if (c->resp.n + n > max) {
		if (c->status / 100 == 2) {
			c->sink_rc = ERR_LIMIT;
			return 0;
		}
		return n; /* error bodies: keep the head */
	}
	buf_append(&c->resp, p, n);
	return n;
}

static size_t read_cb(char *p, size_t sz, size_t nm, void *arg)
{
	s3_call_t *c = arg;
	size_t n = sz * nm, left = c->body_n - c->body_pos;
	if (n > left)
		n = left;
	if (c->body_fd >= 0 && n > 0) {
		int64_t at = c->body_off + (int64_t)c->body_pos;
		ssize_t r;
		do
			r = pread(c->body_fd, p, n, at);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			c->read_rc = r < 0 ? err_errno(&c->read_err, "read source at offset %lld", (long long)at)
					   : err_set(&c->read_err, ERR_IO, "source ended at offset %lld", (long long)at);
			return CURL_READFUNC_ABORT;
		}
		n = (size_t)r;
	} else {
		memcpy(p, c->body + c->body_pos, n);
	}
	c->body_pos += n;
	return n;
}

static bool hdr_is(const char *line, size_t n, const char *name, const char **val, size_t *vn)
{
	size_t k = strlen(name);
	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return false;
	const char *v = line + k + 1, *e = line + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	*val = v;
	*vn = (size_t)(e - v);
	return true;
}

static size_t header_cb(char *p, size_t sz, size_t nm, void *arg)
{
	s3_call_t *c = arg;
	size_t n = sz * nm;
	const char *v;
	size_t vn;
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after 100-continue or redirect) */
		c->etag[0] = 0;
		c->content_length = -1;
		c->last_modified_ms = 0;
	} else if (hdr_is(p, n, "etag", &v, &vn)) {
		if (vn >= sizeof c->etag)
			vn = sizeof c->etag - 1;
		memcpy(c->etag, v, vn);
		c->etag[vn] = 0;
	} else if (hdr_is(p, n, "content-length", &v, &vn)) {
		int64_t x;
		if (str_to_i64((str_t){v, vn}, &x))
			c->content_length = x;
	} else if (hdr_is(p, n, "last-modified", &v, &vn)) {
		char tmp[128];
		if (vn < sizeof tmp) {
			memcpy(tmp, v, vn);
			tmp[vn] = 0;
			time_t t = curl_getdate(tmp, NULL);
			if (t > 0)
				c->last_modified_ms = (int64_t)t * 1000;
		}
	}
	return n;
}

static void add_hdr(s3_call_t *c, const char *name, const char *value)
{
	buf_t b = BUF_INIT;
	buf_printf(&b, "%s: %s", name, value);
	struct curl_slist *l = curl_slist_append(c->hdrs, b.p);
	if (!l)
		die("objstore: s3: out of memory");
	c->hdrs = l;
	buf_release(&b);
}

static void object_path(s3_bucket_t *s, const char *key, buf_t *out)
{
	buf_puts(out, s->path_prefix);
	if (key) {
		buf_putc(out, '/');
		buf_puts(out, key);
	} else if (!*s->path_prefix) {
		buf_putc(out, '/');
	}
}

/* Sign and configure c->h for one attempt. */
static void call_setup(s3_bucket_t *s, s3_call_t *c)
{
	CURL *h = c->h;
	curl_easy_reset(h); /* keeps the connection cache */
	curl_slist_free_all(c->hdrs);
	c->hdrs = NULL;
	c->status = 0;
	c->body_pos = 0;
	c->read_rc = 0;
	c->skip = -1;
	c->sink_rc = 0;
	c->etag[0] = 0;
	c->content_length = -1;
	c->last_modified_ms = 0;
	c->errbuf[0] = 0;
	buf_reset(&c->resp);

	char payload[65];
	/* Over TLS, or with a signed Content-MD5, the body is not hashed into the signature (see sigv4.h). */
	const char *mode = sigv4_payload_hash_mode(c->body_n, s->https, s->send_md5);
	BUG_ON(c->body_fd >= 0 && ((!mode && !c->payload_sha) || (s->send_md5 && !c->content_md5)));
	if (mode)
		snprintf(payload, sizeof payload, "%s", mode);
	else if (c->payload_sha)
		snprintf(payload, sizeof payload, "%s", c->payload_sha);
	else
		sigv4_sha256_hex(c->body, c->body_n, payload);

	sigv4_kv_t hs[8];
	size_t nh = 0;
	hs[nh++] = (sigv4_kv_t){"host", s->host};
	hs[nh++] = (sigv4_kv_t){"x-amz-content-sha256", payload};
	char range[64], md5[25];
	if (c->ranged && (c->off + c->delivered > 0 || c->len >= 0)) {
		int64_t start = c->off + c->delivered;
		if (c->len >= 0)
			snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)start,
				 (long long)(c->off + c->len - 1));
		else
			snprintf(range, sizeof range, "bytes=%lld-", (long long)start);
		hs[nh++] = (sigv4_kv_t){"range", range};
	}
	if (c->body_n && s->send_md5) {
		if (c->content_md5)
			snprintf(md5, sizeof md5, "%s", c->content_md5);
		else
			sigv4_md5_base64(c->body, c->body_n, md5);
		hs[nh++] = (sigv4_kv_t){"content-md5", md5};
	}
	if (c->content_type)
		hs[nh++] = (sigv4_kv_t){"content-type", c->content_type};
	if (c->sse && s->sse_type) {
		bool kms = strcmp(s->sse_type, "SSE-KMS") == 0;
		hs[nh++] = (sigv4_kv_t){"x-amz-server-side-encryption", kms ? "aws:kms" : "AES256"};
		if (kms && s->sse_kms_key_id && *s->sse_kms_key_id)
			hs[nh++] = (sigv4_kv_t){"x-amz-server-side-encryption-aws-kms-key-id", s->sse_kms_key_id};
	}

	buf_t path = BUF_INIT;
	object_path(s, c->key, &path);
	sigv4_creds_t cr = {s->access_key, s->secret_key, s->session_token, s->region, "s3"};
	sigv4_req_t req = {c->method, path.p, c->q, c->nq, hs, nh, payload};
	sigv4_result_t sig;
	sigv4_result_init(&sig);
	sigv4_sign(&cr, &req, s->now_s ? s->now_s() : clock_now_ms() / 1000, &sig);
	buf_release(&path);

	for (size_t i = 0; i < nh; i++)
		add_hdr(c, hs[i].name, hs[i].value);
	add_hdr(c, "x-amz-date", sig.amz_date);
	if (s->session_token && *s->session_token)
		add_hdr(c, "x-amz-security-token", s->session_token);
	add_hdr(c, "authorization", sig.authorization.p);
	c->hdrs = curl_slist_append(c->hdrs, "Expect:");
	if (!c->content_type)
		c->hdrs = curl_slist_append(c->hdrs, "Content-Type:");
	c->hdrs = curl_slist_append(c->hdrs, "Accept:");
	if (s->connect_to) { /* the URL names server_name (checked in the certificate, sent as SNI) */
		char hh[600];
		snprintf(hh, sizeof hh, "Host: %s", s->host);
		c->hdrs = curl_slist_append(c->hdrs, hh);
	}

	buf_t url = BUF_INIT;
	buf_puts(&url, s->base_url);
	buf_append_str(&url, buf_str(&sig.path_query));
	curl_easy_setopt(h, CURLOPT_URL, url.p); /* curl copies it */
	buf_release(&url);
	sigv4_result_release(&sig);

	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)((s->stall_ms + 999) / 1000));
	curl_easy_setopt(h, CURLOPT_MAXAGE_CONN, (long)((s->idle_ms + 999) / 1000));
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	if (s->https) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s->skip_verify ? 0L : 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->skip_verify ? 0L : 2L);
		if (s->ca_file)
			curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
		if (s->cert_file)
			curl_easy_setopt(h, CURLOPT_SSLCERT, s->cert_file);
		if (s->key_file)
			curl_easy_setopt(h, CURLOPT_SSLKEY, s->key_file);
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, s->connect_to);
	}
	if (strcmp(c->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(c->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, c);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->body_n);
	} else if (strcmp(c->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_n);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? c->body : "");
	} else if (strcmp(c->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
	}
	c->attempts++;
	atomic_fetch_add(&s->nreq, 1);
}

enum { OUTCOME_OK, OUTCOME_RETRY, OUTCOME_FAIL };

static void what(s3_bucket_t *s, s3_call_t *c, buf_t *b)
{
	buf_printf(b, "s3: %s %s", c->method, s->base.name);
	if (c->key)
		buf_printf(b, "/%s", c->key);
}

/* Classify the finished attempt; sets *rc and err for failures. */
static int call_finish(s3_bucket_t *s, s3_call_t *c, CURLcode cc, int *rc, err_t *err)
{
	buf_t w = BUF_INIT;
	what(s, c, &w);
	int out = OUTCOME_OK;
	*rc = 0;
	if (c->status == 0)
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
	if (cc == CURLE_ABORTED_BY_CALLBACK && c->read_rc) {
		*rc = err_set(err, c->read_rc, "%s: %s", w.p, c->read_err.msg);
		out = OUTCOME_FAIL;
	} else if (cc == CURLE_WRITE_ERROR && c->sink_rc) {
		*rc = c->sink_rc == ERR_LIMIT
			      ? err_set(err, ERR_LIMIT, "%s: response larger than %d bytes", w.p, LIST_BODY_MAX)
			      : c->sink_rc;
		out = OUTCOME_FAIL;
	} else if (cc != CURLE_OK) {
		bool tls = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
			   cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL;
		*rc = err_set(err, tls ? ERR_INVALID : ERR_TRANSIENT, "%s: %s (%s)", w.p,
			      c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc), curl_easy_strerror(cc));
		out = tls ? OUTCOME_FAIL : OUTCOME_RETRY;
	} else if (c->status / 100 == 2) {
		out = OUTCOME_OK;
	} else {
		buf_t code = BUF_INIT, msg = BUF_INIT;
		str_t body = buf_str(&c->resp);
		s3xml_get(body, "Code", &code);
		s3xml_get(body, "Message", &msg);
		int ec = ERR_INTERNAL;
		out = OUTCOME_FAIL;
		if (c->status == 404) {
			ec = ERR_NOT_FOUND;
		} else if (c->status == 401 || c->status == 403 || str_eq_c(buf_str(&code), "InvalidAccessKeyId") ||
			   str_eq_c(buf_str(&code), "SignatureDoesNotMatch") ||
			   str_eq_c(buf_str(&code), "AuthorizationHeaderMalformed") ||
			   str_eq_c(buf_str(&code), "ExpiredToken") || str_eq_c(buf_str(&code), "InvalidToken")) {
			ec = ERR_ACCESS;
		} else if (c->status == 416) {
			ec = ERR_INVALID;
		} else if (c->status == 429 || c->status >= 500 || str_eq_c(buf_str(&code), "RequestTimeout") ||
			   str_eq_c(buf_str(&code), "SlowDown")) {
			ec = ERR_TRANSIENT;
			out = OUTCOME_RETRY;
		} else if (c->status / 100 == 4) {
			ec = ERR_INVALID;
		}
		const char *desc = c->status == 404 ? "object not found"
				   : c->status == 416 ? "range start beyond the object's size"
				   : ec == ERR_ACCESS ? "access denied"
						      : "request failed";
		*rc = err_set(err, ec, "%s: %s: HTTP %ld%s%s%s%s", w.p, desc, c->status, code.n ? " " : "", code.p,
			      msg.n ? ": " : "", msg.p);
		buf_release(&code);
		buf_release(&msg);
	}
	buf_release(&w);
	return out;
}

/* Delay before retry number `attempt` (1-based): exponential from retry_base_ms, capped at 5 s, with
 * jitter in [d/2, d]. */
static int64_t backoff_ms(s3_bucket_t *s, int attempt)
{
	int64_t d = s->retry_base_ms;
	for (int i = 1; i < attempt && d < 5000; i++)
		d *= 2;
	if (d > 5000)
		d = 5000;
	static _Thread_local uint64_t seed;
	if (!seed)
		seed = clock_mono_ns() ^ (uint64_t)(uintptr_t)&seed;
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return d / 2 + (int64_t)(seed % (uint64_t)(d / 2 + 1));
}

static void backoff_sleep(s3_bucket_t *s, int attempt)
{
	int64_t ms = backoff_ms(s, attempt);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Run c with retries; returns 0 or a negative ERR_*. */
static int s3_do(s3_bucket_t *s, s3_call_t *c, err_t *err)
{
	c->h = easy_get(s);
	int rc = 0;
	for (;;) {
		call_setup(s, c);
		CURLcode cc = curl_easy_perform(c->h);
		int out = call_finish(s, c, cc, &rc, err);
		if (out == OUTCOME_OK) {
			rc = 0;
			break;
		}
		if (out == OUTCOME_FAIL || c->attempts > s->max_retries) {
			if (out == OUTCOME_RETRY && err)
				err_wrap(err, "after %d attempts", c->attempts);
			break;
		}
		backoff_sleep(s, c->attempts);
	}
	easy_put(s, c->h);
	c->h = NULL;
	return rc;
}

/* ---- operations ---- */

static int s3_get(bucket_t *b, const char *name, int64_t off, int64_t len, bucket_sink_fn sink, void *arg,
		  err_t *err)
{
	s3_call_t c;
	call_init(&c, "GET", name);
	c.ranged = off > 0 || len >= 0;
	c.off = off;
	c.len = len;
	c.sink = sink;
	c.sink_arg = arg;
	int rc = s3_do(SB(b), &c, err);
	call_release(&c);
	return rc;
}

static int s3_attrs(bucket_t *b, const char *name, bucket_attrs_t *out, err_t *err)
{
	s3_call_t c;
	call_init(&c, "HEAD", name);
	int rc = s3_do(SB(b), &c, err);
	if (rc == 0) {
		out->size = c.content_length < 0 ? 0 : c.content_length;
		out->last_modified_ms = c.last_modified_ms;
	}
	call_release(&c);
	return rc;
}

static int s3_del(bucket_t *b, const char *name, err_t *err)
{
	/* S3 answers 204 for missing keys; the interface promises ERR_NOT_FOUND, so look first. */
	bucket_attrs_t a;
	int rc = s3_attrs(b, name, &a, err);
	if (rc)
		return rc;
	s3_call_t c;
	call_init(&c, "DELETE", name);
	rc = s3_do(SB(b), &c, err);
	call_release(&c);
	return rc;
}

#define UPLOAD_READ_PIECE (1u << 20)

/* Reads exactly n bytes of the source file at off into buf. */
static int read_src(const bucket_src_t *src, void *buf, size_t n, int64_t off, const char *name, err_t *err)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = pread(src->fd, (char *)buf + done, n - done, off + (int64_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_errno(err, "s3: upload %s: read source at offset %lld", name,
					 (long long)(off + (int64_t)done));
		if (r == 0)
			return err_set(err, ERR_IO, "s3: upload %s: source ended at %lld, expected %lld bytes", name,
				       (long long)(off + (int64_t)done), (long long)src->size);
		done += (size_t)r;
	}
	return 0;
}

/* The digests a PUT of src's bytes [off, off+n) needs: MD5 for Content-MD5 (send_content_md5), SHA-256
 * only when the signature must cover the body (plain HTTP without Content-MD5, see call_setup); file
 * sources read in UPLOAD_READ_PIECE pieces through buf; "" for a digest not needed. */
static int hash_range(s3_bucket_t *s, const bucket_src_t *src, int64_t off, size_t n, char *buf, const char *name,
		      char sha[65], char md5[25], err_t *err)
{
	bool want_sha = sigv4_payload_hash_mode(n, s->https, s->send_md5) == NULL;
	sha[0] = md5[0] = 0;
	if (!want_sha && !s->send_md5)
		return 0;
	sigv4_hasher_t h;
	sigv4_hasher_init(&h, want_sha, s->send_md5);
	int rc = 0;
	if (src->fd < 0) {
		sigv4_hasher_update(&h, (const char *)src->p + off, n);
	} else {
		for (size_t done = 0; done < n && rc == 0;) {
			size_t want = n - done < UPLOAD_READ_PIECE ? n - done : UPLOAD_READ_PIECE;
			rc = read_src(src, buf, want, off + (int64_t)done, name, err);
			if (rc == 0)
				sigv4_hasher_update(&h, buf, want);
			done += want;
		}
	}
	sigv4_hasher_final(&h, sha, md5);
	return rc;
}

/* One PUT of a whole file, hashed in a first pass and read again as curl sends it (never held in
 * memory). */
static int put_single_fd(s3_bucket_t *s, const char *name, const bucket_src_t *src, int64_t size, err_t *err)
{
	char sha[65], md5[25];
	char *buf = xmalloc(UPLOAD_READ_PIECE);
	int rc = hash_range(s, src, 0, (size_t)size, buf, name, sha, md5, err);
	free(buf);
	if (rc)
		return rc;
	s3_call_t c;
	call_init(&c, "PUT", name);
	c.body_fd = src->fd;
	c.body_off = 0;
	c.body_n = (size_t)size;
	c.payload_sha = sha[0] ? sha : NULL;
	c.content_md5 = md5[0] ? md5 : NULL;
	c.sse = true;
	rc = s3_do(s, &c, err);
	call_release(&c);
	return rc;
}

static int put_single(s3_bucket_t *s, const char *name, const char *p, size_t n, err_t *err)
{
	s3_call_t c;
	call_init(&c, "PUT", name);
	c.body = p;
	c.body_n = n;
	c.sse = true;
	int rc = s3_do(s, &c, err);
	call_release(&c);
	return rc;
}

static void abort_multipart(s3_bucket_t *s, const char *name, const char *upload_id)
{
	s3_call_t c;
	call_init(&c, "DELETE", name);
	c.q[c.nq++] = (sigv4_kv_t){"uploadId", upload_id};
	err_t e = {0};
	s3_do(s, &c, &e);
	call_release(&c);
}

/*
 * Multipart upload, pipelined: parts are hashed ahead of sending into UPLOAD_SLOTS slots while this
 * thread sends hashed parts, UPLOAD_SENDS at a time and lowest part first, on a curl multi handle (file
 * parts are read again with pread as curl sends them, so no part is ever held in memory).
 *
 * Hashing: with Content-MD5 (send_content_md5, the default) parts are signed UNSIGNED-PAYLOAD and need
 * only their MD5; one thread computes up to UPLOAD_LANES of them at once with the multi-buffer MD5
 * (md5mb.h: about 6x the CPU efficiency of one MD5 at a time on AVX-512, 4x on AVX2), reading every part
 * in UPLOAD_LANE_PIECE pieces. Otherwise UPLOAD_HASHERS threads compute each part's SHA-256 for the
 * signature (plain HTTP), or nothing (TLS). The first parts are smaller (upload_layout), so the first
 * bytes go out after hashing a fraction of a part.
 *
 * A part that fails in a retryable way is re-sent (same bytes, same digests) after a backoff; any final
 * failure stops the hashing, drops the transfers in flight and aborts the upload.
 */
#define UPLOAD_SENDS 4
#define UPLOAD_LANES 8
#define UPLOAD_SLOTS (UPLOAD_SENDS + UPLOAD_LANES + UPLOAD_LANES / 2)
#define UPLOAD_HASHERS 2
#define UPLOAD_LANE_PIECE (64u << 10)

/* Part boundaries of a multipart upload of size bytes: *out gets the offset of every part plus size at the
 * end; returns the number of parts. Parts are part_size bytes, except that the first ones ramp up from
 * part_size/8 (at least S3's 5 MiB minimum for all but the last part), doubling: a part's Content-MD5
 * must be known before its first byte is sent, so a full-size first part would keep the connection idle
 * for the whole hash of part_size bytes, while a small one starts the transfer after a fraction of it and
 * the larger ones are hashed as it goes out. A remainder under a quarter of the part before it is
 * folded into that part (256 MiB at 64 MiB: 8, 16, 32, 64, 64, 72 MiB). At most 3 parts more than
 * fixed-size parts. */
static int64_t upload_layout(int64_t size, int64_t part_size, int64_t **out)
{
	int64_t len = part_size / 8 < MIN_PART_SIZE ? MIN_PART_SIZE : part_size / 8;
	if (len > part_size)
		len = part_size;
	size_t cap = 8, n = 0;
	int64_t *off = xmalloc(cap * sizeof(*off));
	for (int64_t at = 0; at < size;) {
		if (n + 2 > cap) {
			cap *= 2;
			off = xrealloc(off, cap * sizeof(*off));
		}
		off[n++] = at;
		if (size - at - len < len / 4 && size - at <= MAX_PART_SIZE) /* a short last part: fold it in */
			len = size - at;
		at += len < size - at ? len : size - at;
		len = len > part_size / 2 ? part_size : len * 2;
	}
	off[n] = size;
	*out = off;
	return (int64_t)n;
}

static void copy_err(err_t *dst, const err_t *src)
{
	if (dst)
		*dst = *src;
}

enum { SLOT_FREE, SLOT_PREPARING, SLOT_READY, SLOT_SENDING };

typedef struct up_slot {
	int state;
	int64_t idx;    /* 0-based part index */
	int64_t off;    /* in the source */
	const char *p;  /* memory sources */
	size_t n;
	char sha[65], md5[25];
	char num[24];
	int attempts;
	uint64_t ready_at; /* monotonic ns; retries wait until then */
	s3_call_t c;
} up_slot_t;

typedef struct upload {
	s3_bucket_t *s;
	const char *name;
	const bucket_src_t *src;
	int64_t size, nparts;
	int64_t *part_off; /* nparts + 1 boundaries (upload_layout) */
	CURLM *m;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	up_slot_t slot[UPLOAD_SLOTS];
	int64_t next; /* next part to hash */
	bool stop;
	int prep_rc;
	err_t prep_err;
} upload_t;

/* Under u->mu: a free slot set up for the next part and marked PREPARING; NULL when every part is
 * taken or the upload stops, or (wait 0) when no slot is free. wait > 0 first waits until that many
 * slots are free (fewer if fewer parts are left). */
static up_slot_t *take_part(upload_t *u, int wait)
{
	for (;;) {
		if (u->stop || u->next >= u->nparts)
			return NULL;
		int nfree = 0;
		for (int k = 0; k < UPLOAD_SLOTS; k++)
			nfree += u->slot[k].state == SLOT_FREE;
		if (wait > u->nparts - u->next)
			wait = (int)(u->nparts - u->next);
		if (nfree < (wait > 1 ? wait : 1)) {
			if (!wait)
				return NULL;
			pthread_cond_wait(&u->cv, &u->mu);
			continue;
		}
		for (int k = 0; k < UPLOAD_SLOTS; k++) {
			up_slot_t *sl = &u->slot[k];
			if (sl->state != SLOT_FREE)
				continue;
			sl->state = SLOT_PREPARING;
			sl->idx = u->next++;
			sl->off = u->part_off[sl->idx];
			sl->n = (size_t)(u->part_off[sl->idx + 1] - sl->off);
			sl->p = u->src->fd < 0 ? (const char *)u->src->p + sl->off : NULL;
			snprintf(sl->num, sizeof sl->num, "%lld", (long long)(sl->idx + 1));
			sl->attempts = 0;
			sl->ready_at = 0;
			return sl;
		}
	}
}

/* A part's digests are done (rc 0: the slot goes to the sender) or failed (rc, e: the upload stops). */
static void part_prepared(upload_t *u, up_slot_t *sl, int rc, const err_t *e)
{
	pthread_mutex_lock(&u->mu);
	sl->state = rc ? SLOT_FREE : SLOT_READY;
	if (rc) {
		if (!u->prep_rc) {
			u->prep_rc = rc;
			copy_err(&u->prep_err, e);
		}
		u->stop = true;
		pthread_cond_broadcast(&u->cv);
	}
	pthread_mutex_unlock(&u->mu);
	curl_multi_wakeup(u->m);
}

/* SHA-256 (or no digest): one part at a time per thread. */
static void *upload_preparer(void *arg)
{
	upload_t *u = arg;
	char *readbuf = u->src->fd >= 0 ? xmalloc(UPLOAD_READ_PIECE) : NULL;
	for (;;) {
		pthread_mutex_lock(&u->mu);
		up_slot_t *sl = take_part(u, 1);
		pthread_mutex_unlock(&u->mu);
		if (!sl)
			break;
		err_t e = {0};
		int rc = hash_range(u->s, u->src, sl->off, sl->n, readbuf, u->name, sl->sha, sl->md5, &e);
		part_prepared(u, sl, rc, &e);
		err_clear(&e);
		if (rc)
			break;
	}
	free(readbuf);
	return NULL;
}

/* MD5 only: up to UPLOAD_LANES parts at once in the lanes of one md5mb_t. A lane holds bytes read but
 * not yet hashed (at p, avail); pieces are whole blocks except a part's last < 64 bytes. */
typedef struct md5_lane {
	up_slot_t *sl; /* NULL: idle */
	size_t hashed;
	const unsigned char *p;
	size_t avail;
} md5_lane_t;

static void *upload_md5_lanes(void *arg)
{
	upload_t *u = arg;
	bool file = u->src->fd >= 0;
	unsigned char *bufs = file ? xmalloc((size_t)UPLOAD_LANES * UPLOAD_LANE_PIECE) : NULL;
	md5mb_t m;
	md5_lane_t lane[UPLOAD_LANES] = {0};
	int busy = 0, rc = 0;
	err_t e = {0};
	up_slot_t *failed = NULL;
	for (;;) {
		pthread_mutex_lock(&u->mu);
		for (int l = 0; l < UPLOAD_LANES; l++) {
			if (lane[l].sl)
				continue;
			/* With nothing to hash, sleep until a whole batch of parts can start together: lanes
			 * cost the same busy or idle. */
			up_slot_t *sl = take_part(u, busy == 0 ? UPLOAD_LANES : 0);
			if (!sl)
				break;
			lane[l] = (md5_lane_t){.sl = sl};
			md5mb_init(&m, l);
			busy++;
		}
		bool stop = u->stop;
		pthread_mutex_unlock(&u->mu);
		if (busy == 0 || stop)
			break;

		size_t nb = UPLOAD_LANE_PIECE / MD5MB_BLOCK; /* a step's blocks: the fewest any lane has */
		for (int l = 0; l < UPLOAD_LANES && rc == 0; l++) {
			md5_lane_t *ln = &lane[l];
			if (!ln->sl)
				continue;
			size_t left = ln->sl->n - ln->hashed;
			if (ln->avail == 0 && file) {
				ln->avail = left < UPLOAD_LANE_PIECE ? left : UPLOAD_LANE_PIECE;
				ln->p = bufs + (size_t)l * UPLOAD_LANE_PIECE;
				rc = read_src(u->src, bufs + (size_t)l * UPLOAD_LANE_PIECE, ln->avail,
					      ln->sl->off + (int64_t)ln->hashed, u->name, &e);
				if (rc)
					failed = ln->sl;
			} else if (ln->avail == 0) {
				ln->p = (const unsigned char *)ln->sl->p + ln->hashed;
				ln->avail = left;
			}
			if (ln->avail >= MD5MB_BLOCK && ln->avail / MD5MB_BLOCK < nb)
				nb = ln->avail / MD5MB_BLOCK;
		}
		if (rc)
			break;
		const unsigned char *q[MD5MB_LANES] = {0};
		for (int l = 0; l < UPLOAD_LANES; l++)
			if (lane[l].sl && lane[l].avail >= MD5MB_BLOCK)
				q[l] = lane[l].p;
		md5mb_blocks(&m, q, nb);
		for (int l = 0; l < UPLOAD_LANES; l++) {
			md5_lane_t *ln = &lane[l];
			if (q[l]) {
				ln->p += nb * MD5MB_BLOCK;
				ln->avail -= nb * MD5MB_BLOCK;
				ln->hashed += nb * MD5MB_BLOCK;
			}
			if (!ln->sl || ln->avail >= MD5MB_BLOCK || ln->hashed + ln->avail < ln->sl->n)
				continue;
			unsigned char d[16];
			md5mb_final(&m, l, ln->p, ln->avail, ln->sl->n, d);
			sigv4_md5_digest_base64(d, ln->sl->md5);
			ln->sl->sha[0] = 0;
			part_prepared(u, ln->sl, 0, NULL);
			ln->sl = NULL;
			busy--;
		}
	}
	/* Stopped: parts still in lanes are dropped (the upload is ending). */
	pthread_mutex_lock(&u->mu);
	for (int l = 0; l < UPLOAD_LANES; l++)
		if (lane[l].sl && lane[l].sl != failed)
			lane[l].sl->state = SLOT_FREE;
	pthread_mutex_unlock(&u->mu);
	if (failed)
		part_prepared(u, failed, rc, &e);
	err_clear(&e);
	free(bufs);
	return NULL;
}

/* Sends every part; fills etags[i] (malloc'd). Returns 0 or the first failure. */
static int upload_parts(upload_t *u, const char *upload_id, char **etags, err_t *err)
{
	s3_bucket_t *s = u->s;
	int64_t done = 0;
	int active = 0, rc = 0;
	while (done < u->nparts && rc == 0) {
		uint64_t now = clock_mono_ns(), wait_ns = 0;
		up_slot_t *start[UPLOAD_SLOTS];
		int nstart = 0;
		pthread_mutex_lock(&u->mu);
		if (u->prep_rc) {
			rc = u->prep_rc;
			copy_err(err, &u->prep_err);
		}
		while (rc == 0 && active + nstart < UPLOAD_SENDS) { /* lowest ready part first */
			up_slot_t *first = NULL;
			for (int k = 0; k < UPLOAD_SLOTS; k++) {
				up_slot_t *sl = &u->slot[k];
				if (sl->state != SLOT_READY)
					continue;
				if (sl->ready_at > now) {
					if (!wait_ns || sl->ready_at - now < wait_ns)
						wait_ns = sl->ready_at - now;
					continue;
				}
				if (!first || sl->idx < first->idx)
					first = sl;
			}
			if (!first)
				break;
			first->state = SLOT_SENDING;
			start[nstart++] = first;
		}
		pthread_mutex_unlock(&u->mu);
		if (rc)
			break;
		for (int k = 0; k < nstart; k++) {
			up_slot_t *sl = start[k];
			s3_call_t *c = &sl->c;
			call_init(c, "PUT", u->name);
			c->q[c->nq++] = (sigv4_kv_t){"partNumber", sl->num};
			c->q[c->nq++] = (sigv4_kv_t){"uploadId", upload_id};
			c->body = sl->p;
			c->body_n = sl->n;
			if (u->src->fd >= 0) {
				c->body_fd = u->src->fd;
				c->body_off = sl->off;
			}
			c->payload_sha = sl->sha[0] ? sl->sha : NULL;
			c->content_md5 = sl->md5[0] ? sl->md5 : NULL;
			c->attempts = sl->attempts;
			c->h = easy_get(s);
			call_setup(s, c);
			curl_easy_setopt(c->h, CURLOPT_PRIVATE, sl);
			curl_multi_add_handle(u->m, c->h);
			active++;
		}
		int running = 0;
		curl_multi_perform(u->m, &running);
		CURLMsg *msg;
		int left;
		bool finished = false; /* a slot was freed or a part ended: start the next one without waiting */
		while ((msg = curl_multi_info_read(u->m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			finished = true;
			up_slot_t *sl = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
			CURLcode cc = msg->data.result;
			s3_call_t *c = &sl->c;
			curl_multi_remove_handle(u->m, c->h);
			active--;
			int prc = 0;
			err_t e = {0};
			int out = call_finish(s, c, cc, &prc, &e);
			sl->attempts = c->attempts;
			int next_state = SLOT_FREE;
			if (out == OUTCOME_OK && !c->etag[0]) {
				prc = err_set(&e, ERR_CORRUPT, "s3: upload %s: part %s: no ETag in the response", u->name,
					      sl->num);
				out = OUTCOME_FAIL;
			}
			if (out == OUTCOME_OK) {
				etags[sl->idx] = xstrdup(c->etag);
				done++;
			} else if (out == OUTCOME_RETRY && sl->attempts <= s->max_retries) {
				sl->ready_at = clock_mono_ns() + (uint64_t)backoff_ms(s, sl->attempts) * 1000000u;
				next_state = SLOT_READY;
			} else if (rc == 0) {
				if (out == OUTCOME_RETRY)
					err_wrap(&e, "after %d attempts", sl->attempts);
				rc = prc;
				copy_err(err, &e);
			}
			err_clear(&e);
			easy_put(s, c->h);
			c->h = NULL;
			call_release(c);
			pthread_mutex_lock(&u->mu);
			sl->state = next_state;
			pthread_cond_broadcast(&u->cv);
			pthread_mutex_unlock(&u->mu);
		}
		if (rc || done >= u->nparts)
			break;
		if (finished)
			continue;
		int timeout_ms = 1000;
		if (wait_ns && (int64_t)(wait_ns / 1000000u) + 1 < timeout_ms)
			timeout_ms = (int)(wait_ns / 1000000u) + 1;
		curl_multi_poll(u->m, NULL, 0, timeout_ms, NULL); /* the preparer wakes us when a part is ready */
	}
	/* Drop transfers still on the wire after a failure. */
	for (int k = 0; k < UPLOAD_SLOTS; k++) {
		up_slot_t *sl = &u->slot[k];
		if (sl->state == SLOT_SENDING && sl->c.h) {
			curl_multi_remove_handle(u->m, sl->c.h);
			easy_put(s, sl->c.h);
			sl->c.h = NULL;
			call_release(&sl->c);
		}
	}
	return rc;
}

static int put_multipart(s3_bucket_t *s, const char *name, const bucket_src_t *src, int64_t size, err_t *err)
{
	s3_call_t c;
	call_init(&c, "POST", name);
	c.q[c.nq++] = (sigv4_kv_t){"uploads", ""};
	c.sse = true;
	int rc = s3_do(s, &c, err);
	buf_t upload_id = BUF_INIT;
	if (rc == 0 && !s3xml_get(buf_str(&c.resp), "UploadId", &upload_id))
		rc = err_set(err, ERR_CORRUPT, "s3: POST %s/%s?uploads: no UploadId in the response", s->base.name,
			     name);
	call_release(&c);
	if (rc) {
		buf_release(&upload_id);
		return rc;
	}

	upload_t *u = xcalloc(1, sizeof(*u));
	u->s = s;
	u->name = name;
	u->src = src;
	u->size = size;
	u->nparts = upload_layout(size, s->part_size, &u->part_off);
	u->m = multi_get(s);
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	char **etags = xcalloc((size_t)u->nparts, sizeof(char *));
	pthread_t th[UPLOAD_HASHERS];
	int nth = s->send_md5 ? 1 : u->nparts < UPLOAD_HASHERS ? (int)u->nparts : UPLOAD_HASHERS;
	for (int k = 0; k < nth; k++)
		if (pthread_create(&th[k], NULL, s->send_md5 ? upload_md5_lanes : upload_preparer, u) != 0)
			die("objstore: s3: cannot start an upload hashing thread");
	rc = upload_parts(u, upload_id.p, etags, err);
	pthread_mutex_lock(&u->mu);
	u->stop = true;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	for (int k = 0; k < nth; k++)
		pthread_join(th[k], NULL);
	multi_put(s, u->m);

	buf_t xml = BUF_INIT;
	buf_puts(&xml, "<CompleteMultipartUpload>");
	for (int64_t i = 0; rc == 0 && i < u->nparts; i++) {
		buf_printf(&xml, "<Part><PartNumber>%lld</PartNumber><ETag>", (long long)(i + 1));
		s3xml_escape(&xml, etags[i]);
		buf_puts(&xml, "</ETag></Part>");
	}
	buf_puts(&xml, "</CompleteMultipartUpload>");
	for (int64_t i = 0; i < u->nparts; i++)
		free(etags[i]);
	free(etags);
	free(u->part_off);
	err_clear(&u->prep_err);
	pthread_cond_destroy(&u->cv);
	pthread_mutex_destroy(&u->mu);
	free(u);

	if (rc == 0) {
		call_init(&c, "POST", name);
		c.q[c.nq++] = (sigv4_kv_t){"uploadId", upload_id.p};
		c.body = xml.p;
		c.body_n = xml.n;
		c.content_type = "application/xml";
		rc = s3_do(s, &c, err);
		if (rc == 0 && memmem(c.resp.p, c.resp.n, "<Error>", 7)) { /* S3 may fail inside a 200 */
			buf_t code = BUF_INIT, msg = BUF_INIT;
			s3xml_get(buf_str(&c.resp), "Code", &code);
			s3xml_get(buf_str(&c.resp), "Message", &msg);
			rc = err_set(err, ERR_TRANSIENT, "s3: complete multipart upload of %s: %s: %s", name, code.p,
				     msg.p);
			buf_release(&code);
			buf_release(&msg);
		}
		call_release(&c);
	}
	if (rc)
		abort_multipart(s, name, upload_id.p);
	buf_release(&xml);
	buf_release(&upload_id);
	return rc;
}

static int s3_put(bucket_t *b, const char *name, const bucket_src_t *src, err_t *err)
{
	s3_bucket_t *s = SB(b);
	int64_t size = src->fd >= 0 ? src->size : (int64_t)src->n;
	if (size > s->part_size)
		return put_multipart(s, name, src, size, err);
	if (src->fd < 0)
		return put_single(s, name, src->p, src->n, err);
	if (size == 0)
		return put_single(s, name, "", 0, err);
	return put_single_fd(s, name, src, size, err);
}

typedef VEC(char *) names_t;

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s3_iter(bucket_t *b, const char *dir, int flags, bucket_iter_fn fn, void *arg, err_t *err)
{
	s3_bucket_t *s = SB(b);
	names_t names = {0};
	buf_t token = BUF_INIT, last = BUF_INIT, item = BUF_INIT;
	int rc = 0;
	for (int page = 0;; page++) {
		s3_call_t c;
		call_init(&c, "GET", NULL);
		if (!s->list_v1)
			c.q[c.nq++] = (sigv4_kv_t){"list-type", "2"};
		c.q[c.nq++] = (sigv4_kv_t){"prefix", dir};
		c.q[c.nq++] = (sigv4_kv_t){"max-keys", "1000"};
		if (!(flags & BUCKET_ITER_RECURSIVE))
			c.q[c.nq++] = (sigv4_kv_t){"delimiter", "/"};
		if (page > 0)
			c.q[c.nq++] = (sigv4_kv_t){s->list_v1 ? "marker" : "continuation-token", token.p};
		rc = s3_do(s, &c, err);
		if (rc) {
			call_release(&c);
			break;
		}
		str_t doc = buf_str(&c.resp), blk, in;
		size_t pos = 0, before = names.n;
		while (s3xml_next(doc, &pos, "Contents", &blk)) {
			size_t p2 = 0;
			if (!s3xml_next(blk, &p2, "Key", &in))
				continue;
			buf_reset(&item);
			s3xml_decode(in, &item);
			if (strcmp(item.p, dir) != 0) /* a "directory marker" object equal to the prefix */
				VEC_PUSH(&names, xstrdup(item.p));
			buf_reset(&last);
			buf_append_str(&last, buf_str(&item));
		}
		pos = 0;
		while (s3xml_next(doc, &pos, "CommonPrefixes", &blk)) {
			size_t p2 = 0;
			if (!s3xml_next(blk, &p2, "Prefix", &in))
				continue;
			buf_reset(&item);
			s3xml_decode(in, &item);
			VEC_PUSH(&names, xstrdup(item.p));
			if (str_cmp(buf_str(&item), buf_str(&last)) > 0) {
				buf_reset(&last);
				buf_append_str(&last, buf_str(&item));
			}
		}
		buf_t trunc = BUF_INIT;
		bool more = s3xml_get(doc, "IsTruncated", &trunc) && str_eq_c(buf_str(&trunc), "true");
		buf_release(&trunc);
		buf_reset(&token);
		if (more) {
			bool have = s3xml_get(doc, s->list_v1 ? "NextMarker" : "NextContinuationToken", &token);
			if (!have && s->list_v1) {
				buf_append_str(&token, buf_str(&last));
				have = token.n > 0;
			}
			if (!have || names.n == before) {
				rc = err_set(err, ERR_CORRUPT,
					     "s3: list %s prefix \"%s\": truncated page without a continuation", b->name, dir);
				more = false;
			}
		}
		call_release(&c);
		if (!more)
			break;
	}
	if (rc == 0 && names.n)
		qsort(names.v, names.n, sizeof(char *), cmp_names);
	for (size_t i = 0; rc == 0 && i < names.n; i++)
		if (i == 0 || strcmp(names.v[i], names.v[i - 1]) != 0)
			rc = fn(arg, names.v[i]);
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	VEC_FREE(&names);
	buf_release(&token);
	buf_release(&last);
	buf_release(&item);
	return rc;
}

/* ---- batched range reads on a multi handle ---- */

static int range_sink(void *arg, const void *p, size_t n)
{
	bucket_range_t *r = arg;
	if ((int64_t)n > r->len - r->got)
		n = (size_t)(r->len - r->got);
	memcpy(r->dst + r->got, p, n);
	r->got += (int64_t)n;
	return 0;
}

typedef struct range_slot {
	s3_call_t c;
	size_t idx;
	bool busy;
} range_slot_t;

static int s3_get_ranges(bucket_t *b, bucket_range_t *r, size_t n, int concurrency)
{
	s3_bucket_t *s = SB(b);
	if (concurrency <= 0)
		concurrency = 16;
	if ((size_t)concurrency > n)
		concurrency = (int)n;
	CURLM *m = multi_get(s);
	range_slot_t *slots = xcalloc((size_t)concurrency, sizeof(*slots));
	/* Work queue: indices ready now, plus retries that become ready at a monotonic time. */
	size_t *queue = xcalloc(n, sizeof(*queue));
	uint64_t *ready_at = xcalloc(n, sizeof(*ready_at));
	int *attempts = xcalloc(n, sizeof(*attempts));
	size_t qhead = 0, qtail = 0, done = 0;
	for (size_t i = 0; i < n; i++) {
		queue[qtail++] = i;
		r[i].got = 0;
	}
	int active = 0;
	while (done < n) {
		uint64_t now = clock_mono_ns(), wait_ns = 0;
		/* Start work in free slots: take ready entries in queue order. */
		for (int k = 0; k < concurrency && qhead < qtail; k++) {
			if (slots[k].busy)
				continue;
			size_t i = queue[qhead % n];
			if (ready_at[i] > now) {
				wait_ns = ready_at[i] - now;
				break;
			}
			qhead++;
			range_slot_t *sl = &slots[k];
			call_init(&sl->c, "GET", r[i].name);
			sl->c.ranged = true;
			sl->c.off = r[i].off;
			sl->c.len = r[i].len;
			sl->c.delivered = r[i].got;
			sl->c.sink = range_sink;
			sl->c.sink_arg = &r[i];
			sl->c.attempts = attempts[i];
			sl->c.h = easy_get(s);
			sl->idx = i;
			sl->busy = true;
			call_setup(s, &sl->c);
			curl_easy_setopt(sl->c.h, CURLOPT_PRIVATE, sl);
			curl_multi_add_handle(m, sl->c.h);
			active++;
		}
		int running = 0;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			range_slot_t *sl = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
			CURLcode cc = msg->data.result;
			curl_multi_remove_handle(m, sl->c.h);
			active--;
			size_t i = sl->idx;
			int rc = 0;
			err_clear(&r[i].err);
			int out = call_finish(s, &sl->c, cc, &rc, &r[i].err);
			attempts[i] = sl->c.attempts;
			if (out == OUTCOME_RETRY && attempts[i] <= s->max_retries) {
				int64_t d = s->retry_base_ms << (attempts[i] - 1 < 6 ? attempts[i] - 1 : 6);
				if (d > 5000)
					d = 5000;
				ready_at[i] = clock_mono_ns() + (uint64_t)(d / 2 + rand() % (d / 2 + 1)) * 1000000u;
				queue[qtail++ % n] = i;
			} else {
				r[i].rc = out == OUTCOME_OK ? 0 : rc;
				if (out == OUTCOME_RETRY)
					err_wrap(&r[i].err, "after %d attempts", attempts[i]);
				done++;
			}
			easy_put(s, sl->c.h);
			sl->c.h = NULL;
			call_release(&sl->c);
			sl->busy = false;
		}
		if (done >= n)
			break;
		int timeout_ms = 100;
		if (active == 0 && wait_ns)
			timeout_ms = (int)(wait_ns / 1000000u) + 1;
		if (active > 0 || wait_ns)
			curl_multi_poll(m, NULL, 0, timeout_ms, NULL);
	}
	multi_put(s, m);
	free(slots);
	free(queue);
	free(ready_at);
	free(attempts);
	for (size_t i = 0; i < n; i++)
		if (r[i].rc)
			return r[i].rc;
	return 0;
}

static void s3_free(bucket_t *b)
{
	s3_bucket_t *s = SB(b);
	for (size_t i = 0; i < s->multi_pool.n; i++)
		curl_multi_cleanup(s->multi_pool.v[i]);
	for (size_t i = 0; i < s->easy_pool.n; i++)
		curl_easy_cleanup(s->easy_pool.v[i]);
	VEC_FREE(&s->multi_pool);
	VEC_FREE(&s->easy_pool);
	pthread_mutex_destroy(&s->mu);
	curl_slist_free_all(s->connect_to);
	if (s->secret_key)
		memset(s->secret_key, 0, strlen(s->secret_key));
	char *strs[] = {s->base_url, s->host, s->path_prefix, s->access_key, s->secret_key, s->session_token,
			s->region, s->ca_file, s->cert_file, s->key_file, s->sse_type, s->sse_kms_key_id, b->name};
	for (size_t i = 0; i < ARRAY_LEN(strs); i++)
		free(strs[i]);
	free(s);
}

static const bucket_ops_t s3_ops = {
	.type = "S3",
	.get = s3_get,
	.put = s3_put,
	.attrs = s3_attrs,
	.del = s3_del,
	.iter = s3_iter,
	.get_ranges = s3_get_ranges,
	.free = s3_free,
};

uint64_t s3_bucket_requests(const bucket_t *b)
{
	b = bucket_unwrap((bucket_t *)b);
	return b->ops == &s3_ops ? atomic_load(&((const s3_bucket_t *)b)->nreq) : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_or_env(const char *v, const char *env)
{
	if (v && *v)
		return xstrdup(v);
	const char *e = env ? getenv(env) : NULL;
	return e && *e ? xstrdup(e) : NULL;
}

static bool dns_bucket_name(const char *b)
{
	for (const char *p = b; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	return true;
}

int s3_bucket_new(const s3_config_t *c, bucket_t **out, err_t *err)
{
	if (!c->bucket || !*c->bucket)
		return err_set(err, ERR_INVALID, "objstore: S3: config.bucket is required");
	if (!c->endpoint || !*c->endpoint)
		return err_set(err, ERR_INVALID, "objstore: S3: config.endpoint is required");
	if (c->signature_version2)
		return err_set(err, ERR_INVALID,
			       "objstore: S3: signature_version2: true is not supported (only AWS Signature Version 4); "
			       "remove it or set it to false");
	const char *lv = c->list_objects_version ? c->list_objects_version : "";
	if (*lv && strcmp(lv, "v1") != 0 && strcmp(lv, "v2") != 0)
		return err_set(err, ERR_INVALID, "objstore: S3: list_objects_version \"%s\": must be v1 or v2", lv);
	const char *lt = c->bucket_lookup_type && *c->bucket_lookup_type ? c->bucket_lookup_type : "auto";
	if (strcmp(lt, "auto") != 0 && strcmp(lt, "virtual-hosted") != 0 && strcmp(lt, "path") != 0)
		return err_set(err, ERR_INVALID,
			       "objstore: S3: bucket_lookup_type \"%s\": must be auto, virtual-hosted or path", lt);
	const char *sse = c->sse_type ? c->sse_type : "";
	if (*sse && strcmp(sse, "SSE-S3") != 0 && strcmp(sse, "SSE-KMS") != 0)
		return err_set(err, ERR_INVALID, "objstore: S3: sse_config.type \"%s\" is not supported (use SSE-S3 or "
						 "SSE-KMS)", sse);
	if (c->part_size != 0 && c->part_size < MIN_PART_SIZE)
		return err_set(err, ERR_INVALID, "objstore: S3: part_size %lld is below S3's minimum of 5 MiB",
			       (long long)c->part_size);
	if (c->part_size > MAX_PART_SIZE)
		return err_set(err, ERR_INVALID, "objstore: S3: part_size %lld is above S3's maximum of 5 GiB",
			       (long long)c->part_size);
	if (c->max_retries < 0)
		return err_set(err, ERR_INVALID, "objstore: S3: max_retries must not be negative");

	/* Endpoint: optional scheme, host[:port], no path. */
	const char *ep = c->endpoint;
	bool https = !c->insecure;
	if (strncmp(ep, "http://", 7) == 0) {
		https = false;
		ep += 7;
	} else if (strncmp(ep, "https://", 8) == 0) {
		https = true;
		ep += 8;
	}
	size_t epn = strcspn(ep, "/");
	if (epn == 0 || ep[epn + (ep[epn] == '/')] != 0)
		return err_set(err, ERR_INVALID, "objstore: S3: endpoint \"%s\": want host[:port] without a path",
			       c->endpoint);

	char *ak = dup_or_env(c->access_key, (c->access_key && *c->access_key) ? NULL : "AWS_ACCESS_KEY_ID");
	char *sk = dup_or_env(c->secret_key, (c->access_key && *c->access_key) ? NULL : "AWS_SECRET_ACCESS_KEY");
	if (!ak || !sk) {
		free(ak);
		free(sk);
		return err_set(err, ERR_INVALID, "objstore: S3: no credentials: set access_key and secret_key, or "
						 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	}
	pthread_once(&curl_once, curl_init_once);

	s3_bucket_t *s = xcalloc(1, sizeof(*s));
	s->base.ops = &s3_ops;
	s->base.name = xstrdup(c->bucket);
	s->https = https;
	bool virt = strcmp(lt, "virtual-hosted") == 0 ||
		    (strcmp(lt, "auto") == 0 && strstr(ep, "amazonaws.com") && dns_bucket_name(c->bucket));
	buf_t hb = BUF_INIT;
	if (virt)
		buf_printf(&hb, "%s.", c->bucket);
	buf_append(&hb, ep, epn);
	s->host = buf_detach(&hb, NULL);
	if (https && c->server_name && *c->server_name) {
		/* Go's tls_config.server_name: the certificate must name it and SNI carries it, while the
		 * connection goes to the endpoint and Host stays the endpoint (it is signed). libcurl checks
		 * the URL's host, so the URL names server_name and CONNECT_TO sends it to the endpoint. */
		const char *colon = strrchr(s->host, ':');
		bool has_port = colon && !strchr(colon, ']');
		const char *port = has_port ? colon + 1 : "443";
		int hn = has_port ? (int)(colon - s->host) : (int)strlen(s->host);
		buf_printf(&hb, "%s:%s:%.*s:%s", c->server_name, port, hn, s->host, port);
		s->connect_to = curl_slist_append(NULL, hb.p);
		buf_reset(&hb);
		buf_printf(&hb, "https://%s:%s", c->server_name, port);
	} else {
		buf_printf(&hb, "%s://%s", https ? "https" : "http", s->host);
	}
	s->base_url = buf_detach(&hb, NULL);
	if (virt) {
		s->path_prefix = xstrdup("");
	} else {
		buf_printf(&hb, "/%s", c->bucket);
		s->path_prefix = buf_detach(&hb, NULL);
	}
	s->access_key = ak;
	s->secret_key = sk;
	s->session_token = (c->access_key && *c->access_key) ? dup_or_env(c->session_token, NULL)
							     : dup_or_env(c->session_token, "AWS_SESSION_TOKEN");
	s->region = dup_or_env(c->region, "AWS_REGION");
	if (!s->region)
		s->region = xstrdup("us-east-1");
	s->ca_file = dup_or_env(c->ca_file, NULL);
	s->cert_file = dup_or_env(c->cert_file, NULL);
	s->key_file = dup_or_env(c->key_file, NULL);
	s->skip_verify = c->insecure_skip_verify;
	s->send_md5 = c->send_content_md5;
	s->list_v1 = strcmp(lv, "v1") == 0;
	s->idle_ms = c->idle_conn_timeout_ms > 0 ? c->idle_conn_timeout_ms : 90000;
	s->stall_ms = c->response_header_timeout_ms > 0 ? c->response_header_timeout_ms : 120000;
	s->connect_ms = c->tls_handshake_timeout_ms > 0 ? c->tls_handshake_timeout_ms : 10000;
	s->part_size = c->part_size == 0 ? 128 * 1024 * 1024 : c->part_size;
	if (c->disable_multipart)
		s->part_size = INT64_MAX;
	s->retry_base_ms = c->retry_base_ms > 0 ? c->retry_base_ms : 100;
	s->max_retries = c->max_retries > 0 ? c->max_retries : 3;
	s->sse_type = *sse ? xstrdup(sse) : NULL;
	s->sse_kms_key_id = dup_or_env(c->sse_kms_key_id, NULL);
	s->now_s = c->now_s;
	pthread_mutex_init(&s->mu, NULL);
	*out = &s->base;
	return 0;
}
