/*
 * httpclient.c — blocking HTTP client on libcurl (see httpclient.h).
 */
#include "net/httpclient.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "net/httpcfg.h"

#define HTTPC_DEFAULT_MAX_BODY (64u * 1024 * 1024)

static pthread_once_t httpc_once = PTHREAD_ONCE_INIT;

static void httpc_global_init(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
}

/* ---- connection pools: idle curl handles, each keeping its connections open (a handle is used by
 * one thread at a time; libcurl's shared connection cache is not thread-safe, known bug 11.11) ---- */

#define POOL_MAX_IDLE 64

struct httpc_pool {
	pthread_mutex_t mu;
	CURL *idle[POOL_MAX_IDLE];
	size_t n;
};

httpc_pool_t *httpc_pool_new(void)
{
	httpc_pool_t *p = xcalloc(1, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

void httpc_pool_free(httpc_pool_t *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		curl_easy_cleanup(p->idle[i]);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* An idle handle (reset: no options, its connections and DNS cache kept) or a new one. */
static CURL *pool_take(httpc_pool_t *p)
{
	CURL *h = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->n)
		h = p->idle[--p->n];
	pthread_mutex_unlock(&p->mu);
	if (!h)
		return curl_easy_init();
	curl_easy_reset(h);
	return h;
}

static void pool_give(httpc_pool_t *p, CURL *h)
{
	pthread_mutex_lock(&p->mu);
	if (p->n < POOL_MAX_IDLE) {
		p->idle[p->n++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (h)
		curl_easy_cleanup(h);
}

void httpc_resp_init(httpc_resp_t *r)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->body);
	buf_init(&r->headers);
}

void httpc_resp_release(httpc_resp_t *r)
{
	free(r->content_type);
	r->content_type = NULL;
	buf_release(&r->body);
	buf_release(&r->headers);
}

bool httpc_resp_header(const httpc_resp_t *resp, const char *name, str_t *value)
{
	str_t all = buf_str(&resp->headers), nm = str_c(name);
	while (all.n) {
		const char *nl = memchr(all.p, '\n', all.n);
		str_t line = {all.p, nl ? (size_t)(nl - all.p) : all.n};
		all = nl ? (str_t){nl + 1, all.n - line.n - 1} : (str_t){all.p + all.n, 0};
		if (line.n && line.p[line.n - 1] == '\r')
			line.n--;
		if (line.n <= nm.n || line.p[nm.n] != ':' || strncasecmp(line.p, nm.p, nm.n) != 0)
			continue;
		str_t v = {line.p + nm.n + 1, line.n - nm.n - 1};
		while (v.n && (v.p[0] == ' ' || v.p[0] == '\t'))
			v.p++, v.n--;
		*value = v;
		return true;
	}
	return false;
}

static const char *method_of(const httpc_req_t *req)
{
	return req->method ? req->method : "GET";
}

/* Map a curl failure to an ERR_* code with a message naming the request. */
static int curl_fail(err_t *err, const httpc_req_t *req, CURLcode cc, const char *errbuf)
{
	int code;
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		code = ERR_TIMEOUT;
		break;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		code = ERR_INVALID;
		break;
	case CURLE_WRITE_ERROR:
		code = ERR_LIMIT;
		break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		code = ERR_UNAVAILABLE;
		break;
	default:
		code = ERR_IO;
		break;
	}
	const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(cc);
	if (code == ERR_LIMIT)
		why = "response body too large";
	return err_set(err, code, "%s %s: %s", method_of(req), req->url, why);
}

typedef struct easy_ctx {
	CURL *h;
	httpc_pool_t *pool; /* h came from it and goes back (httpc_do only) */
	struct curl_slist *hdrs;
	struct curl_slist *connect_to; /* tls_config.server_name (net/httpcfg.h) */
	char errbuf[CURL_ERROR_SIZE];
	buf_t *body;
	buf_t *headers;  /* NULL = not kept */
	size_t max_body; /* 0 = unlimited */
	bool headers_done;
	bool done;
	CURLcode result;
} easy_ctx_t;

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	easy_ctx_t *c = arg;
	size_t n = size * nmemb;
	if (c->max_body && c->body->n + n > c->max_body)
		return 0; /* CURLE_WRITE_ERROR -> ERR_LIMIT */
	buf_append(c->body, p, n);
	c->headers_done = true;
	return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	easy_ctx_t *c = arg;
	size_t n = size * nmemb;
	if (n <= 2 && (n == 0 || p[0] == '\r' || p[0] == '\n')) {
		long code = 0;
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200) /* not a 1xx interim response */
			c->headers_done = true;
	} else if (c->headers) {
		if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
			buf_reset(c->headers); /* a new response (after a 1xx): keep only its lines */
		else
			buf_append(c->headers, p, n);
	}
	return n;
}

static void easy_cleanup(easy_ctx_t *c);

static int easy_setup(easy_ctx_t *c, const httpc_req_t *req, httpc_pool_t *pool, buf_t *body, size_t max_body,
                      err_t *err)
{
	pthread_once(&httpc_once, httpc_global_init);
	memset(c, 0, sizeof *c);
	c->pool = pool;
	c->h = pool ? pool_take(pool) : curl_easy_init();
	if (!c->h)
		return err_set(err, ERR_INTERNAL, "%s %s: curl_easy_init failed", method_of(req), req->url);
	c->body = body;
	c->max_body = max_body;
	CURL *h = c->h;
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "strata/" STRATA_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000));
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	const char *m = method_of(req);
	if (!strcmp(m, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	} else if (strcmp(m, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
		if (req->body) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)req->body);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		}
	}
	c->hdrs = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
	for (size_t i = 0; i < req->nheaders; i++)
		c->hdrs = curl_slist_append(c->hdrs, req->headers[i]);
	if (httpcfg_apply(req->cfg, h, req->url, &c->hdrs, &c->connect_to, err)) {
		easy_cleanup(c);
		return err_wrap(err, "%s %s", method_of(req), req->url);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
	return 0;
}

static void easy_cleanup(easy_ctx_t *c)
{
	if (c->h && c->pool)
		pool_give(c->pool, c->h);
	else if (c->h)
		curl_easy_cleanup(c->h);
	curl_slist_free_all(c->hdrs);
	curl_slist_free_all(c->connect_to);
	c->h = NULL;
	c->hdrs = NULL;
	c->connect_to = NULL;
}

static char *content_type_of(CURL *h)
{
	char *ct = NULL;
	if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
		return xstrdup(ct);
	return NULL;
}

/* Prepare a whole-body exchange into resp (httpc_do, httpc_do_many). */
static int do_setup(easy_ctx_t *c, const httpc_req_t *req, httpc_pool_t *pool, httpc_resp_t *resp, err_t *err)
{
	buf_reset(&resp->body);
	buf_reset(&resp->headers);
	int rc = easy_setup(c, req, pool, &resp->body, req->max_body ? req->max_body : HTTPC_DEFAULT_MAX_BODY, err);
	if (rc)
		return rc;
	c->headers = &resp->headers;
	if (req->timeout_ms > 0)
		curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	return 0;
}

static int do_finish(easy_ctx_t *c, const httpc_req_t *req, httpc_resp_t *resp, CURLcode cc, err_t *err)
{
	int rc = 0;
	if (cc != CURLE_OK) {
		rc = curl_fail(err, req, cc, c->errbuf);
	} else {
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &resp->status);
		long connects = 0;
		curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &connects);
		resp->reused = connects == 0;
		free(resp->content_type);
		resp->content_type = content_type_of(c->h);
	}
	easy_cleanup(c);
	return rc;
}

int httpc_do(const httpc_req_t *req, httpc_resp_t *resp, err_t *err)
{
	easy_ctx_t c;
	int rc = do_setup(&c, req, req->pool, resp, err);
	if (rc)
		return rc;
	return do_finish(&c, req, resp, curl_easy_perform(c.h), err);
}

void httpc_do_many(const httpc_req_t *reqs, httpc_resp_t *resps, int *rcs, err_t *errs, size_t n, int parallel)
{
	if (n == 0)
		return;
	if (n == 1) {
		rcs[0] = httpc_do(&reqs[0], &resps[0], &errs[0]);
		return;
	}
	size_t limit = parallel > 0 && (size_t)parallel < n ? (size_t)parallel : n;
	easy_ctx_t *cs = xcalloc(n, sizeof *cs);
	CURLM *multi = curl_multi_init();
	size_t next = 0, running = 0, done = 0;
	while (done < n) {
		while (running < limit && next < n) {
			size_t i = next++;
			rcs[i] = do_setup(&cs[i], &reqs[i], NULL, &resps[i], &errs[i]);
			if (rcs[i]) {
				done++;
				continue;
			}
			curl_easy_setopt(cs[i].h, CURLOPT_PRIVATE, (void *)(uintptr_t)i);
			curl_multi_add_handle(multi, cs[i].h);
			running++;
		}
		if (!running)
			continue;
		int still = 0;
		curl_multi_perform(multi, &still);
		int left;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			void *priv = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			size_t i = (size_t)(uintptr_t)priv;
			CURLcode cc = msg->data.result;
			curl_multi_remove_handle(multi, cs[i].h);
			rcs[i] = do_finish(&cs[i], &reqs[i], &resps[i], cc, &errs[i]);
			running--;
			done++;
		}
		if (running && still)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	curl_multi_cleanup(multi);
	free(cs);
}

/* ---- streaming ---- */

struct httpc_stream {
	easy_ctx_t c;
	CURLM *multi;
	const httpc_req_t *req;
	buf_t data;
	size_t off; /* unread bytes start here */
	long status;
	char *content_type;
};

/* Drive the transfer once: perform, then wait up to wait_ms for socket activity. */
static int stream_pump(httpc_stream_t *s, int wait_ms, err_t *err)
{
	int running = 0;
	CURLMcode mc = curl_multi_perform(s->multi, &running);
	if (mc != CURLM_OK)
		return err_set(err, ERR_IO, "%s %s: %s", method_of(s->req), s->req->url, curl_multi_strerror(mc));
	int left;
	CURLMsg *msg;
	while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE) {
			s->c.done = true;
			s->c.result = msg->data.result;
		}
	}
	if (s->c.done) {
		if (s->c.result != CURLE_OK)
			return curl_fail(err, s->req, s->c.result, s->c.errbuf);
		s->c.headers_done = true;
		return 0;
	}
	if (wait_ms > 0) {
		int nfds;
		curl_multi_poll(s->multi, NULL, 0, wait_ms, &nfds);
	}
	return 0;
}

int httpc_stream_open(httpc_stream_t **out, const httpc_req_t *req, err_t *err)
{
	httpc_stream_t *s = xcalloc(1, sizeof *s);
	buf_init(&s->data);
	s->req = req;
	*out = NULL;
	int rc = easy_setup(&s->c, req, NULL, &s->data, 0, err);
	if (rc) {
		free(s);
		return rc;
	}
	s->multi = curl_multi_init();
	curl_multi_add_handle(s->multi, s->c.h);
	uint64_t start = clock_mono_ms(), limit = req->timeout_ms > 0 ? (uint64_t)req->timeout_ms : 0;
	while (!s->c.headers_done) {
		if ((rc = stream_pump(s, 100, err)) != 0)
			break;
		if (limit && clock_mono_ms() - start > limit) {
			rc = err_set(err, ERR_TIMEOUT, "%s %s: no response within %lldms", method_of(req), req->url,
				     (long long)limit);
			break;
		}
	}
	if (rc) {
		httpc_stream_free(s);
		return rc;
	}
	curl_easy_getinfo(s->c.h, CURLINFO_RESPONSE_CODE, &s->status);
	s->content_type = content_type_of(s->c.h);
	*out = s;
	return 0;
}

long httpc_stream_status(const httpc_stream_t *s)
{
	return s->status;
}

const char *httpc_stream_content_type(const httpc_stream_t *s)
{
	return s->content_type;
}

int httpc_stream_fill(httpc_stream_t *s, size_t want, err_t *err)
{
	uint64_t last = clock_mono_ms(), limit = s->req->timeout_ms > 0 ? (uint64_t)s->req->timeout_ms : 0;
	while (s->data.n - s->off < want && !s->c.done) {
		size_t before = s->data.n;
		int rc = stream_pump(s, 100, err);
		if (rc)
			return rc;
		if (s->data.n != before)
			last = clock_mono_ms();
		else if (limit && clock_mono_ms() - last > limit)
			return err_set(err, ERR_TIMEOUT, "%s %s: no data for %lldms", method_of(s->req), s->req->url,
				       (long long)limit);
	}
	return 0;
}

str_t httpc_stream_buf(const httpc_stream_t *s)
{
	return (str_t){s->data.p + s->off, s->data.n - s->off};
}

void httpc_stream_consume(httpc_stream_t *s, size_t n)
{
	BUG_ON(n > s->data.n - s->off);
	s->off += n;
	if (s->off == s->data.n) {
		buf_reset(&s->data);
		s->off = 0;
	} else if (s->off > 64 * 1024 && s->off > s->data.n / 2) {
		memmove(s->data.p, s->data.p + s->off, s->data.n - s->off);
		buf_truncate(&s->data, s->data.n - s->off);
		s->off = 0;
	}
}

bool httpc_stream_eof(const httpc_stream_t *s)
{
	return s->c.done && s->off == s->data.n;
}

void httpc_stream_free(httpc_stream_t *s)
{
	if (!s)
		return;
	if (s->multi) {
		curl_multi_remove_handle(s->multi, s->c.h);
		curl_multi_cleanup(s->multi);
	}
	easy_cleanup(&s->c);
	buf_release(&s->data);
	free(s->content_type);
	free(s);
}
