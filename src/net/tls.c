/*
 * tls.c — OpenSSL contexts for servers (reloaded when their files change) and clients. See tls.h.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <sys/socket.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"

#define RELOAD_CHECK_MS 1000

void tls_errors(char *out, size_t n)
{
	size_t off = 0;
	out[0] = 0;
	unsigned long e;
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof one);
		/* "error:0A000086:SSL routines::certificate verify failed" -> the reason after the last ':'
		 */
		const char *r = strrchr(one, ':');
		r = r ? r + 1 : one;
		/* the library's category ("system lib") says nothing; a repeated reason once is enough */
		if (!strcmp(r, "system lib") || (off && strstr(out, r)))
			continue;
		if (off < n)
			off += (size_t)snprintf(out + off, n - off, "%s%s", off ? "; " : "", r);
	}
	if (!out[0])
		snprintf(out, n, "unknown TLS error");
}

ssize_t tls_io_send(int fd, SSL *ssl, const void *p, size_t n)
{
	if (!ssl)
		return send(fd, p, n, MSG_NOSIGNAL);
	ERR_clear_error();
	int w = SSL_write(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (w > 0)
		return w;
	int e = SSL_get_error(ssl, w);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		errno = EAGAIN;
		return -1;
	}
	if (e != SSL_ERROR_SYSCALL || !errno)
		errno = EPIPE;
	ERR_clear_error();
	return -1;
}

ssize_t tls_io_recv(int fd, SSL *ssl, void *p, size_t n, bool *want_write, char *why, size_t whyn)
{
	if (!ssl)
		return recv(fd, p, n, 0);
	ERR_clear_error();
	int r = SSL_read(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_WRITE:
		*want_write = true;
		/* fall through */
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_error())
			return errno ? -1 : 0;
		/* fall through */
	default:
		tls_errors(why, whyn);
		errno = EPROTO;
		return -1;
	}
}

static int ssl_err(err_t *err, const char *what, const char *fmt, const char *arg)
{
	char reason[512], msg[1024];
	tls_errors(reason, sizeof reason);
	snprintf(msg, sizeof msg, fmt, arg ? arg : "");
	return err_set(err, ERR_INVALID, "%s%s%s: %s", what ? what : "", what ? ": " : "", msg, reason);
}

static void init_openssl(void)
{
	OPENSSL_init_ssl(0, NULL);
	/* OpenSSL writes to sockets with write(2): a peer gone away must not kill the process. */
	signal(SIGPIPE, SIG_IGN);
}

static void tls_init_once(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init_openssl);
}

int tls_version_parse(const char *s, int *out, err_t *err)
{
	static const struct {
		const char *a, *b;
		int v;
	} vs[] = {{"TLS10", "1.0", TLS1_VERSION},
	          {"TLS11", "1.1", TLS1_1_VERSION},
	          {"TLS12", "1.2", TLS1_2_VERSION},
	          {"TLS13", "1.3", TLS1_3_VERSION}};
	for (size_t i = 0; i < ARRAY_LEN(vs); i++)
		if (!strcmp(s, vs[i].a) || !strcmp(s, vs[i].b)) {
			*out = vs[i].v;
			return 0;
		}
	return err_set(err, ERR_INVALID,
	               "unknown TLS version \"%s\" (want TLS10, TLS11, TLS12, TLS13 or 1.0 .. 1.3)", s);
}

int tls_client_auth_parse(const char *s, tls_client_auth_t *out, err_t *err)
{
	static const char *names[] = {"NoClientCert", "RequestClientCert", "RequireAnyClientCert",
	                              "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"};
	if (!*s) {
		*out = TLS_CLIENT_AUTH_NONE;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (!strcmp(s, names[i])) {
			*out = (tls_client_auth_t)i;
			return 0;
		}
	return err_set(
	    err, ERR_INVALID,
	    "invalid client_auth_type \"%s\" (want NoClientCert, RequestClientCert, RequireAnyClientCert, "
	    "VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
	    s);
}

int tls_cipher_from_go(const char *go, buf_t *out, err_t *err)
{
	static const struct {
		const char *go, *ossl;
	} cs[] = {
	    {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
	    {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
	    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
	    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
	    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
	    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
	    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
	    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
	    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
	    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
	    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
	    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
	    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
	    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
	    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"},
	    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"},
	    /* TLS 1.3 suites are not configurable in Go either: accepted, nothing added */
	    {"TLS_AES_128_GCM_SHA256", NULL},
	    {"TLS_AES_256_GCM_SHA384", NULL},
	    {"TLS_CHACHA20_POLY1305_SHA256", NULL},
	};
	for (size_t i = 0; i < ARRAY_LEN(cs); i++)
		if (!strcmp(go, cs[i].go)) {
			if (cs[i].ossl) {
				if (out->n)
					buf_putc(out, ':');
				buf_puts(out, cs[i].ossl);
			}
			return 0;
		}
	return err_set(err, ERR_INVALID, "unknown or unsupported cipher suite \"%s\"", go);
}

int tls_group_from_go(const char *go, buf_t *out, err_t *err)
{
	static const struct {
		const char *go, *ossl;
	} gs[] = {{"CurveP256", "P-256"}, {"CurveP384", "P-384"}, {"CurveP521", "P-521"},
	          {"X25519", "X25519"},   {"P256", "P-256"},      {"P384", "P-384"},
	          {"P521", "P-521"}};
	for (size_t i = 0; i < ARRAY_LEN(gs); i++)
		if (!strcmp(go, gs[i].go)) {
			if (out->n)
				buf_putc(out, ':');
			buf_puts(out, gs[i].ossl);
			return 0;
		}
	return err_set(err, ERR_INVALID,
	               "unknown curve \"%s\" (want CurveP256, CurveP384, CurveP521 or X25519)", go);
}

/* ---- loading PEM ---- */

static int load_cert_key(SSL_CTX *ctx, const char *what, const char *cert_file, const char *key_file,
                         const char *cert_pem, const char *key_pem, err_t *err)
{
	if (cert_pem) {
		BIO *b = BIO_new_mem_buf(cert_pem, -1);
		X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		int ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
		X509 *chain;
		while (ok && (chain = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
			if (SSL_CTX_add_extra_chain_cert(ctx, chain) != 1) {
				X509_free(chain);
				ok = 0;
			}
		ERR_clear_error(); /* the end of the chain reads as an error */
		X509_free(x);
		BIO_free(b);
		if (!ok)
			return ssl_err(err, what, "inline cert%s", NULL);
	} else if (cert_file && SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		return ssl_err(err, what, "cert_file %s", cert_file);
	}
	if (key_pem) {
		BIO *b = BIO_new_mem_buf(key_pem, -1);
		EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
		int ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
		EVP_PKEY_free(k);
		BIO_free(b);
		if (!ok)
			return ssl_err(err, what, "inline key%s", NULL);
	} else if (key_file && SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		return ssl_err(err, what, "key_file %s", key_file);
	}
	if ((cert_file || cert_pem) && SSL_CTX_check_private_key(ctx) != 1)
		return ssl_err(err, what, "the key does not match the certificate%s", NULL);
	return 0;
}

static int load_ca(SSL_CTX *ctx, const char *what, const char *file, const char *pem, err_t *err)
{
	if (file) {
		if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1)
			return ssl_err(err, what, "CA file %s", file);
		return 0;
	}
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	X509 *x;
	int n = 0;
	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_cert(st, x);
		X509_free(x);
		n++;
	}
	ERR_clear_error();
	BIO_free(b);
	if (!n)
		return err_set(err, ERR_INVALID, "%s: inline client_ca: no PEM certificate",
		               what ? what : "tls");
	return 0;
}

static int set_versions(SSL_CTX *ctx, const char *what, int min, int max, err_t *err)
{
	if (SSL_CTX_set_min_proto_version(ctx, min ? min : TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max ? max : TLS1_3_VERSION) != 1)
		return ssl_err(err, what, "TLS versions%s", NULL);
	if (min && max && min > max)
		return err_set(err, ERR_INVALID, "%s: min_version is above max_version", what ? what : "tls");
	return 0;
}

/* ---- server ---- */

typedef struct file_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool missing;
} file_stamp_t;

struct tls_server {
	pthread_mutex_t mu;
	/* owned copies of the options */
	char *cert_file, *key_file, *ca_file, *cert_pem, *key_pem, *ca_pem, *ciphers, *groups, *alpn, *what;
	char **sans;
	size_t nsans;
	tls_client_auth_t client_auth;
	int min_version, max_version;
	unsigned char alpn_wire[64];
	size_t alpn_wire_n;
	SSL_CTX *ctx;
	file_stamp_t stamps[3];
	uint64_t next_check;
	unsigned generation;
	bool warned; /* a failed reload was logged for the current files */
};

static void stamp(const char *path, file_stamp_t *s)
{
	struct stat st;
	memset(s, 0, sizeof *s);
	if (!path)
		return;
	if (stat(path, &st) != 0) {
		s->missing = true;
		return;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
}

static bool stamps_differ(const file_stamp_t *a, const file_stamp_t *b)
{
	return a->dev != b->dev || a->ino != b->ino || a->size != b->size ||
	       a->mtime.tv_sec != b->mtime.tv_sec || a->mtime.tv_nsec != b->mtime.tv_nsec ||
	       a->missing != b->missing;
}

static int accept_any_cert(int ok, X509_STORE_CTX *x)
{
	(void)ok, (void)x;
	return 1;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
	tls_server_t *t = arg;
	(void)ssl;
	if (SSL_select_next_proto((unsigned char **)out, outlen, t->alpn_wire, (unsigned)t->alpn_wire_n, in,
	                          inlen) == OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK; /* no overlap: carry on without ALPN (HTTP/1.1 clients, curl) */
}

/* Client certificate SANs against client_allowed_sans (exporter-toolkit: an exact match of a DNS, IP,
 * e-mail or URI SAN). Runs at the end of the chain's verification (depth 0). */
static int check_sans(int ok, X509_STORE_CTX *xs)
{
	if (!ok || X509_STORE_CTX_get_error_depth(xs) != 0)
		return ok;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	tls_server_t *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	if (!t || !t->nsans)
		return ok;
	X509 *cert = X509_STORE_CTX_get_current_cert(xs);
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	bool found = false;
	for (int i = 0; names && !found && i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		char val[256] = "";
		if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
			ASN1_IA5STRING *s = g->d.ia5;
			snprintf(val, sizeof val, "%.*s", s->length, (const char *)s->data);
		} else if (g->type == GEN_IPADD) {
			int len = g->d.ip->length;
			if (len == 4)
				inet_ntop(AF_INET, g->d.ip->data, val, sizeof val);
			else if (len == 16)
				inet_ntop(AF_INET6, g->d.ip->data, val, sizeof val);
		}
		for (size_t j = 0; val[0] && j < t->nsans; j++)
			if (!strcmp(val, t->sans[j]))
				found = true;
	}
	GENERAL_NAMES_free(names);
	if (!found)
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	return found;
}

static int build_server_ctx(tls_server_t *t, SSL_CTX **out, err_t *err)
{
	*out = NULL;
	if (!t->cert_file && !t->cert_pem)
		return err_set(err, ERR_INVALID, "%s: missing cert_file", t->what);
	if (!t->key_file && !t->key_pem)
		return err_set(err, ERR_INVALID, "%s: missing key_file", t->what);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		die("tls: out of memory");
	SSL_CTX_set_app_data(ctx, t);
	int rc = set_versions(ctx, t->what, t->min_version, t->max_version, err);
	if (!rc)
		rc = load_cert_key(ctx, t->what, t->cert_file, t->key_file, t->cert_pem, t->key_pem, err);
	if (!rc && (t->ca_file || t->ca_pem))
		rc = load_ca(ctx, t->what, t->ca_file, t->ca_pem, err);
	if (!rc && t->ciphers && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1)
		rc = ssl_err(err, t->what, "cipher_suites %s", t->ciphers);
	if (!rc && t->groups && SSL_CTX_set1_groups_list(ctx, t->groups) != 1)
		rc = ssl_err(err, t->what, "curve_preferences %s", t->groups);
	if (rc) {
		SSL_CTX_free(ctx);
		return rc;
	}
	int mode = SSL_VERIFY_NONE;
	SSL_verify_cb cb = t->nsans ? check_sans : NULL;
	switch (t->client_auth) {
	case TLS_CLIENT_AUTH_NONE:
		break;
	case TLS_CLIENT_AUTH_REQUEST:
		mode = SSL_VERIFY_PEER, cb = accept_any_cert;
		break;
	case TLS_CLIENT_AUTH_REQUIRE_ANY:
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, cb = accept_any_cert;
		break;
	case TLS_CLIENT_AUTH_VERIFY_IF_GIVEN:
		mode = SSL_VERIFY_PEER;
		break;
	case TLS_CLIENT_AUTH_REQUIRE_AND_VERIFY:
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		break;
	}
	SSL_CTX_set_verify(ctx, mode, cb);
	if (t->ca_file) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca_file);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		ERR_clear_error();
	}
	/* Idle connections give their read/write buffers back; our output buffer may move between
	 * retries of a partial write. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	static const unsigned char sid[] = "strata";
	SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
	if (t->alpn_wire_n)
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, t);
	*out = ctx;
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s && *s ? xstrdup(s) : NULL;
}

int tls_server_new(tls_server_t **out, const tls_server_opts_t *o, err_t *err)
{
	tls_init_once();
	*out = NULL;
	if ((o->client_ca_file || o->client_ca_pem) && o->client_auth == TLS_CLIENT_AUTH_NONE)
		return err_set(err, ERR_INVALID,
		               "%s: client CA's have been configured without a client auth policy",
		               o->what ? o->what : "tls");
	if (o->client_auth >= TLS_CLIENT_AUTH_VERIFY_IF_GIVEN && !o->client_ca_file && !o->client_ca_pem)
		return err_set(
		    err, ERR_INVALID,
		    "%s: client_auth_type verifies client certificates but no client_ca_file is set",
		    o->what ? o->what : "tls");
	tls_server_t *t = xcalloc(1, sizeof *t);
	pthread_mutex_init(&t->mu, NULL);
	t->cert_file = dup_or_null(o->cert_file);
	t->key_file = dup_or_null(o->key_file);
	t->ca_file = dup_or_null(o->client_ca_file);
	t->cert_pem = dup_or_null(o->cert_pem);
	t->key_pem = dup_or_null(o->key_pem);
	t->ca_pem = dup_or_null(o->client_ca_pem);
	t->ciphers = dup_or_null(o->ciphers);
	t->groups = dup_or_null(o->groups);
	t->alpn = dup_or_null(o->alpn);
	t->what = xstrdup(o->what ? o->what : "tls");
	t->client_auth = o->client_auth;
	t->min_version = o->min_version;
	t->max_version = o->max_version;
	if (o->nallowed_sans) {
		t->sans = xcalloc(o->nallowed_sans, sizeof *t->sans);
		for (size_t i = 0; i < o->nallowed_sans; i++)
			t->sans[i] = xstrdup(o->allowed_sans[i]);
		t->nsans = o->nallowed_sans;
	}
	if (t->alpn) {
		size_t n = strlen(t->alpn);
		if (n == 0 || n >= sizeof t->alpn_wire - 1) {
			tls_server_free(t);
			return err_set(err, ERR_INVALID, "tls: bad ALPN protocol");
		}
		t->alpn_wire[0] = (unsigned char)n;
		memcpy(t->alpn_wire + 1, t->alpn, n);
		t->alpn_wire_n = n + 1;
	}
	stamp(t->cert_file, &t->stamps[0]);
	stamp(t->key_file, &t->stamps[1]);
	stamp(t->ca_file, &t->stamps[2]);
	int rc = build_server_ctx(t, &t->ctx, err);
	if (rc) {
		tls_server_free(t);
		return rc;
	}
	t->generation = 1;
	t->next_check = clock_mono_ms() + RELOAD_CHECK_MS;
	*out = t;
	return 0;
}

void tls_server_free(tls_server_t *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	char *owned[] = {t->cert_file, t->key_file, t->ca_file, t->cert_pem, t->key_pem,
	                 t->ca_pem,    t->ciphers,  t->groups,  t->alpn,     t->what};
	for (size_t i = 0; i < ARRAY_LEN(owned); i++) {
		if (owned[i] == t->key_pem && t->key_pem)
			OPENSSL_cleanse(t->key_pem, strlen(t->key_pem));
		free(owned[i]);
	}
	for (size_t i = 0; i < t->nsans; i++)
		free(t->sans[i]);
	free(t->sans);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* Under t->mu: rebuild the context if a file changed since the last look. */
static void maybe_reload(tls_server_t *t)
{
	uint64_t now = clock_mono_ms();
	if (now < t->next_check)
		return;
	t->next_check = now + RELOAD_CHECK_MS;
	file_stamp_t s[3];
	stamp(t->cert_file, &s[0]);
	stamp(t->key_file, &s[1]);
	stamp(t->ca_file, &s[2]);
	bool changed = false;
	for (int i = 0; i < 3; i++)
		changed |= stamps_differ(&s[i], &t->stamps[i]);
	if (!changed)
		return;
	SSL_CTX *ctx;
	err_t err = {0};
	if (build_server_ctx(t, &ctx, &err)) {
		/* A certificate and key replaced one after the other mismatch for a moment: keep serving the
		 * old pair and try again on the next check; say so once per change. */
		if (!t->warned)
			log_warn("TLS certificate reload failed; still serving the previous one", "err",
			         err.msg);
		t->warned = true;
		memcpy(t->stamps, s, sizeof s);
		t->next_check = now + RELOAD_CHECK_MS;
		/* retried when the files change again */
		return;
	}
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	memcpy(t->stamps, s, sizeof s);
	t->generation++;
	t->warned = false;
	log_info("TLS certificates reloaded", "config", t->what);
}

SSL *tls_server_new_ssl(tls_server_t *t)
{
	pthread_mutex_lock(&t->mu);
	maybe_reload(t);
	SSL *ssl = SSL_new(t->ctx);
	pthread_mutex_unlock(&t->mu);
	if (!ssl)
		die("tls: SSL_new failed (out of memory)");
	return ssl;
}

unsigned tls_server_generation(tls_server_t *t)
{
	pthread_mutex_lock(&t->mu);
	unsigned g = t->generation;
	pthread_mutex_unlock(&t->mu);
	return g;
}

/* ---- client ---- */

struct tls_client {
	SSL_CTX *ctx;
	char *server_name;
	char *alpn;
	bool skip_verify;
};

int tls_client_new(tls_client_t **out, const tls_client_opts_t *o, err_t *err)
{
	tls_init_once();
	*out = NULL;
	const char *what = o->what ? o->what : "tls";
	if (!o->cert_file != !o->key_file)
		return err_set(err, ERR_INVALID, "%s: a client certificate needs both cert_file and key_file",
		               what);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		die("tls: out of memory");
	int rc = set_versions(ctx, what, o->min_version, 0, err);
	if (!rc && o->ca_file)
		rc = load_ca(ctx, what, o->ca_file, NULL, err);
	else if (!rc && SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error(); /* no system CAs: verification will say so */
	if (!rc && o->cert_file)
		rc = load_cert_key(ctx, what, o->cert_file, o->key_file, NULL, NULL, err);
	if (!rc && o->alpn) {
		unsigned char wire[64];
		size_t n = strlen(o->alpn);
		if (n == 0 || n >= sizeof wire - 1)
			rc = err_set(err, ERR_INVALID, "%s: bad ALPN protocol", what);
		else {
			wire[0] = (unsigned char)n;
			memcpy(wire + 1, o->alpn, n);
			if (SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)n + 1) != 0)
				rc = ssl_err(err, what, "ALPN%s", NULL);
		}
	}
	if (rc) {
		SSL_CTX_free(ctx);
		return rc;
	}
	SSL_CTX_set_verify(ctx, o->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	tls_client_t *t = xcalloc(1, sizeof *t);
	t->ctx = ctx;
	t->server_name = dup_or_null(o->server_name);
	t->alpn = dup_or_null(o->alpn);
	t->skip_verify = o->insecure_skip_verify;
	*out = t;
	return 0;
}

void tls_client_free(tls_client_t *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t->server_name);
	free(t->alpn);
	free(t);
}

const char *tls_client_alpn(const tls_client_t *t)
{
	return t->alpn;
}

SSL *tls_client_new_ssl(tls_client_t *t, const char *host)
{
	SSL *ssl = SSL_new(t->ctx);
	if (!ssl)
		die("tls: SSL_new failed (out of memory)");
	const char *name = t->server_name ? t->server_name : host;
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, name);
	if (!t->skip_verify) {
		X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
		if (is_ip)
			X509_VERIFY_PARAM_set1_ip_asc(p, name);
		else
			X509_VERIFY_PARAM_set1_host(p, name, 0);
	}
	return ssl;
}

static int subject_nid(const char *field)
{
	if (!strcmp(field, "organization"))
		return NID_organizationName;
	if (!strcmp(field, "organizationalUnit"))
		return NID_organizationalUnitName;
	if (!strcmp(field, "commonName"))
		return NID_commonName;
	return NID_undef;
}

bool tls_subject_field_valid(const char *field)
{
	return !field || !*field || subject_nid(field) != NID_undef;
}

int tls_peer_subject_field(SSL *ssl, const char *field, buf_t *out, err_t *err)
{
	int nid = subject_nid(field);
	if (nid == NID_undef)
		return err_set(err, ERR_INVALID, "tls client cert field %s is not supported", field);
	/* Only a certificate the handshake verified names a tenant (RequestClientCert takes any). */
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	if (!cert || SSL_get_verify_result(ssl) != X509_V_OK)
		return err_set(err, ERR_NOT_FOUND, "could not get required certificate");
	X509_NAME *name = X509_get_subject_name(cert);
	int i = name ? X509_NAME_get_index_by_NID(name, nid, -1) : -1;
	unsigned char *utf8 = NULL;
	int n =
	    i >= 0 ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i))) : -1;
	if (n <= 0) {
		OPENSSL_free(utf8);
		return err_set(err, ERR_NOT_FOUND, "could not get %s field from client cert", field);
	}
	buf_append(out, utf8, (size_t)n);
	OPENSSL_free(utf8);
	return 0;
}
