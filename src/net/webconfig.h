/*
 * webconfig.h — Prometheus's web configuration file (exporter-toolkit; `--web.config.file` in
 * Prometheus, `--http.config` in Thanos and Strata): TLS, client certificates and basic auth for an
 * HTTP server.
 *
 *     tls_server_config: {cert_file, key_file, cert, key, client_auth_type, client_ca_file, client_ca,
 *                         client_allowed_sans, min_version, max_version, cipher_suites,
 *                         prefer_server_cipher_suites, curve_preferences}
 *     http_server_config: {http2, headers: {Content-Security-Policy, X-Frame-Options, ...}}
 *     basic_auth_users: {user: <bcrypt hash>, ...}
 *
 * Relative file names are relative to the configuration file's directory. TLS is on when
 * tls_server_config names a certificate, decided once at start as exporter-toolkit does; everything
 * else — users, headers, client CA, certificates and the TLS settings — follows the file: it is
 * re-checked at most once a second on new connections and requests, and a changed file that does not
 * parse is logged and the previous configuration kept.
 *
 * Basic auth: passwords are checked with the system's crypt (libxcrypt: bcrypt $2y$/$2b$/$2a$) on a
 * thread of this module's own, one at a time, never on the event loop and never on the query workers;
 * outcomes are cached under a SHA-256 of user, hash and password (no password is kept), and compared
 * in constant time. An unknown user costs a bcrypt against a dummy hash, so timing does not tell which
 * users exist. Passwords are never logged.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef STRATA_NET_WEBCONFIG_H
#define STRATA_NET_WEBCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "base/err.h"
#include "base/str.h"

typedef struct webcfg webcfg_t;

/* Load and check the file (TLS certificates included). ERR_INVALID with file:line:col and why. */
int webcfg_new(webcfg_t **out, const char *path, err_t *err);
void webcfg_free(webcfg_t *w);
/* Whether the server speaks TLS (fixed at start). */
bool webcfg_tls(const webcfg_t *w);
/* For listener_config_t.tls_new_ssl (arg = the webcfg_t). */
SSL *webcfg_new_ssl(void *arg);
/* Whether requests must carry basic auth credentials. */
bool webcfg_auth_required(webcfg_t *w);
/* Append the configured response headers as "Name: value\r\n" lines. */
void webcfg_append_headers(webcfg_t *w, buf_t *out);

/* A pending credential check, filled by webcfg_auth_begin. */
typedef struct webcfg_auth {
	unsigned char key[32]; /* SHA-256 of user, hash and password */
	char user[256];
	char *hash, *pass; /* owned; pass is wiped by release */
	bool known_user;
	bool ok;
} webcfg_auth_t;

enum { WEBCFG_AUTH_DENIED = 0, WEBCFG_AUTH_OK = 1, WEBCFG_AUTH_PENDING = 2 };
/* Check an Authorization header value (absent: authorization = NULL). DENIED or OK when the answer is
 * known (cached, or no credentials), PENDING when a bcrypt is needed: then call webcfg_auth_run with a
 * function that receives a->ok on the module's thread, and webcfg_auth_release afterwards. Checks of
 * the same credentials share one bcrypt; ERR_LIMIT (done is not called) when 256 distinct ones are
 * already waiting (answer 503: a flood of guesses must not queue without bound). */
int webcfg_auth_begin(webcfg_t *w, const str_t *authorization, webcfg_auth_t *a);
int webcfg_auth_run(webcfg_t *w, webcfg_auth_t *a, void (*done)(void *arg), void *arg);
void webcfg_auth_release(webcfg_auth_t *a);
/* The user name of a credential check (for logs), "" if none. */
static inline const char *webcfg_auth_user(const webcfg_auth_t *a)
{
	return a->user;
}

#endif
