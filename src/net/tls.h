/*
 * tls.h — TLS contexts from OpenSSL for Strata's listeners and clients, with the knobs Prometheus's
 * web configuration and Thanos's --grpc-*-tls-* flags expose, and certificate reload without a restart.
 *
 * Server side: a tls_server_t holds the current SSL_CTX built from files (or inline PEM). Every
 * connection gets its SSL from tls_server_new_ssl, which first re-checks the files (at most once a
 * second: device, inode, size and mtime of the certificate, key and client CA files); when one changed
 * the context is rebuilt and new connections use it, existing ones keep theirs. A rebuild that fails
 * (a half-written key, a certificate that does not match its key) keeps the previous context and logs
 * why, once per change. The listener side (handshake on the event loop, deadlines) is net/conn.h's.
 *
 *     tls_server_opts_t o = {.cert_file = "server.crt", .key_file = "server.key",
 *                            .client_ca_file = "ca.crt", .client_auth = TLS_CLIENT_AUTH_REQUIRE_AND_VERIFY,
 *                            .alpn = "h2"};
 *     tls_server_t *t; if (tls_server_new(&t, &o, &err)) ...   // err names the file and OpenSSL's reason
 *
 * Client side: a tls_client_t is an SSL_CTX for outgoing connections (CA, client certificate, server
 * name, skip-verify, minimum version, ALPN); tls_client_new_ssl makes the SSL for one connection and
 * sets SNI and the name (or IP address) the server's certificate must carry.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef STRATA_NET_TLS_H
#define STRATA_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h> /* ssize_t */

#include <openssl/ssl.h>

#include "base/err.h"
#include "base/str.h"

/* Go's tls.ClientAuthType, as named in the web configuration file. */
typedef enum tls_client_auth {
	TLS_CLIENT_AUTH_NONE = 0,           /* NoClientCert */
	TLS_CLIENT_AUTH_REQUEST,            /* RequestClientCert: asked for, not verified */
	TLS_CLIENT_AUTH_REQUIRE_ANY,        /* RequireAnyClientCert: required, not verified */
	TLS_CLIENT_AUTH_VERIFY_IF_GIVEN,    /* VerifyClientCertIfGiven */
	TLS_CLIENT_AUTH_REQUIRE_AND_VERIFY, /* RequireAndVerifyClientCert */
} tls_client_auth_t;

typedef struct tls_server_opts {
	const char *cert_file, *key_file, *client_ca_file;
	const char *cert_pem, *key_pem, *client_ca_pem; /* inline PEM instead of the files */
	tls_client_auth_t client_auth;
	const char *const
	    *allowed_sans; /* client certificate must carry one of these SANs (DNS, IP, e-mail, URI) */
	size_t nallowed_sans;
	int min_version, max_version; /* TLS1_2_VERSION, ...; 0 = TLS 1.2 / TLS 1.3 */
	const char *ciphers; /* OpenSSL cipher list for TLS <= 1.2 (tls_ciphers_from_go); NULL = default */
	const char *groups;  /* OpenSSL groups, "X25519:P-256" (tls_groups_from_go); NULL = default */
	const char *alpn;    /* protocol to select when the client offers it ("h2"); NULL = none */
	const char *what;    /* names the configuration in messages ("--http.config web.yml") */
} tls_server_opts_t;

typedef struct tls_server tls_server_t;

/* Build the first context; ERR_INVALID naming the file and the reason (missing, unreadable, not PEM,
 * key does not match certificate, unknown cipher). Options are copied. */
int tls_server_new(tls_server_t **out, const tls_server_opts_t *o, err_t *err);
void tls_server_free(tls_server_t *t);
/* An SSL for one accepted connection on the current context (reloaded first if its files changed).
 * Never NULL (aborts on out-of-memory). */
SSL *tls_server_new_ssl(tls_server_t *t);
/* Contexts built so far (1 + successful reloads; for tests and logs). */
unsigned tls_server_generation(tls_server_t *t);

typedef struct tls_client_opts {
	const char *ca_file;              /* NULL = the system's CAs */
	const char *cert_file, *key_file; /* client certificate (mutual TLS) */
	const char *server_name;          /* name to verify and send as SNI; NULL = the host dialled */
	bool insecure_skip_verify;
	int min_version;  /* 0 = TLS 1.2 */
	const char *alpn; /* "h2" for gRPC; NULL = none */
	const char *what; /* names the configuration in messages ("gRPC client TLS"); NULL = "tls" */
} tls_client_opts_t;

typedef struct tls_client tls_client_t;

/* ERR_INVALID naming the file and the reason. Options are copied. */
int tls_client_new(tls_client_t **out, const tls_client_opts_t *o, err_t *err);
void tls_client_free(tls_client_t *t);
/* An SSL in client mode for a connection to host (a name or an IP literal, without port or brackets). */
SSL *tls_client_new_ssl(tls_client_t *t, const char *host);
/* Whether ALPN must have selected opts.alpn (it was set). */
const char *tls_client_alpn(const tls_client_t *t);

/* "TLS10".."TLS13" (web configuration) or "1.0".."1.3" (Thanos flags) -> TLS1_x_VERSION. ERR_INVALID. */
int tls_version_parse(const char *s, int *out, err_t *err);
/* "NoClientCert", ..., "RequireAndVerifyClientCert"; "" = NoClientCert. ERR_INVALID. */
int tls_client_auth_parse(const char *s, tls_client_auth_t *out, err_t *err);
/* Go's cipher suite names ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") -> an OpenSSL cipher list appended
 * to out (colon-separated); TLS 1.3 suites are accepted and left to OpenSSL (as Go does). ERR_INVALID
 * naming an unknown one. */
int tls_cipher_from_go(const char *go_name, buf_t *out, err_t *err);
/* Go's curve names ("CurveP256", "X25519") -> OpenSSL group names appended to out. ERR_INVALID. */
int tls_group_from_go(const char *go_name, buf_t *out, err_t *err);

/* The verified client certificate's subject field of a server-side session (Thanos's
 * --receive.tenant-certificate-field / --query.tenant-certificate-field): field is "organization",
 * "organizationalUnit" or "commonName"; the first such entry (UTF-8) goes to out. ERR_NOT_FOUND when
 * the peer sent no certificate or it has no such field (the message says which), ERR_INVALID for an
 * unknown field name. */
int tls_peer_subject_field(SSL *ssl, const char *field, buf_t *out, err_t *err);
/* Whether field names a subject field tls_peer_subject_field knows ("" counts: none). */
bool tls_subject_field_valid(const char *field);

/* The last OpenSSL error(s) of this thread as text (cleared), for messages. */
void tls_errors(char *out, size_t n);

/* A client connection's transport, plain (ssl NULL) or TLS, for nonblocking sockets.
 * tls_io_send: like send(2) without SIGPIPE: > 0 written, -1 with errno (EAGAIN: try when writable).
 * tls_io_recv: like recv(2): > 0 bytes, 0 at EOF, -1 with errno (EAGAIN; EPROTO with OpenSSL's reason
 * in why); *want_write is set when TLS must write before it can read on (a renegotiation/key update). */
ssize_t tls_io_send(int fd, SSL *ssl, const void *p, size_t n);
ssize_t tls_io_recv(int fd, SSL *ssl, void *p, size_t n, bool *want_write, char *why, size_t whyn);

#endif
