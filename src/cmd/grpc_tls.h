/*
 * grpc_tls.h — Thanos's gRPC TLS flags for server commands and clients, turned into net/tls.h contexts.
 *
 * Servers (every command with --grpc-address):
 *     --grpc-server-tls-cert, --grpc-server-tls-key   both empty = plaintext h2c; one without the other
 *                                                      is an error
 *     --grpc-server-tls-client-ca                      set = mutual TLS (RequireAndVerifyClientCert)
 *     --grpc-server-tls-min-version                    1.0 .. 1.3, default 1.3 (as Thanos)
 * The certificate, key and CA files are re-read when they change (net/tls.h), so rotating them needs no
 * restart. ALPN "h2".
 *
 * The receiver's remote-write listener takes the same four as --remote-write.server-tls-* (HTTPS,
 * no ALPN), its forwarding to peers (gRPC) the client ones as --remote-write.client-tls-* and
 * --remote-write.client-server-name (CMD_RW_*_TLS_FLAGS).
 *
 * Clients (querier -> endpoints, ruler -> --grpc-query-endpoint):
 *     --grpc-client-tls-secure, --grpc-client-tls-skip-verify, --grpc-client-tls-cert,
 *     --grpc-client-tls-key, --grpc-client-tls-ca, --grpc-client-server-name
 * TLS is on with --grpc-client-tls-secure; the server's certificate is checked against the CA file
 * (else the system's CAs) and the name dialled (or --grpc-client-server-name); cert + key = mutual TLS.
 *
 *     static cmd_grpc_server_tls_t gt;
 *     flag_def_t defs[] = {..., CMD_GRPC_SERVER_TLS_FLAGS(&gt), ...};
 *     tls_server_t *tls = NULL;   // NULL: plaintext
 *     if (cmd_grpc_server_tls_new("strata store", &gt, &tls)) ...  // 2, the error printed
 *     grpc_server_listen_tls(grpc, grpc_address, tls, &gl, &err); ... tls_server_free(tls);
 */
#ifndef STRATA_CMD_GRPC_TLS_H
#define STRATA_CMD_GRPC_TLS_H

#include <stdbool.h>

#include "base/flags.h"
#include "net/tls.h"

typedef struct cmd_grpc_server_tls {
	char *cert, *key, *client_ca, *min_version;
} cmd_grpc_server_tls_t;

#define CMD_GRPC_SERVER_TLS_FLAGS(t)                                                                         \
	{"grpc-server-tls-cert", FLAG_STRING, &(t)->cert, "",                                                \
	 "TLS Certificate for gRPC server, leave blank to disable TLS."},                                    \
	    {"grpc-server-tls-key", FLAG_STRING, &(t)->key, "",                                              \
	     "TLS Key for the gRPC server, leave blank to disable TLS."},                                    \
	    {"grpc-server-tls-client-ca", FLAG_STRING, &(t)->client_ca, "",                                  \
	     "TLS CA to verify clients against. If no client CA is specified, there is no client "           \
	     "verification on server side. (tls.NoClientCert)"},                                             \
	{                                                                                                    \
		"grpc-server-tls-min-version", FLAG_STRING, &(t)->min_version, "1.3",                        \
		    "TLS supported minimum version for gRPC server. If no version is specified, it'll "      \
		    "default to 1.3. Allowed values: [\"1.0\", \"1.1\", \"1.2\", \"1.3\"]"                   \
	}

typedef struct cmd_grpc_client_tls {
	bool secure, skip_verify;
	char *cert, *key, *ca, *server_name;
} cmd_grpc_client_tls_t;

#define CMD_GRPC_CLIENT_TLS_FLAGS(t)                                                                         \
	{"grpc-client-tls-secure", FLAG_BOOL, &(t)->secure, "false",                                         \
	 "Use TLS when talking to the gRPC server"},                                                         \
	    {"grpc-client-tls-skip-verify", FLAG_BOOL, &(t)->skip_verify, "false",                           \
	     "Disable TLS certificate verification i.e self signed, signed by fake CA"},                     \
	    {"grpc-client-tls-cert", FLAG_STRING, &(t)->cert, "",                                            \
	     "TLS Certificates to use to identify this client to the server"},                               \
	    {"grpc-client-tls-key", FLAG_STRING, &(t)->key, "", "TLS Key for the client's certificate"},     \
	    {"grpc-client-tls-ca", FLAG_STRING, &(t)->ca, "",                                                \
	     "TLS CA Certificates to use to verify gRPC servers"},                                           \
	{                                                                                                    \
		"grpc-client-server-name", FLAG_STRING, &(t)->server_name, "",                               \
		    "Server name to verify the hostname on the returned gRPC certificates. See "             \
		    "https://tools.ietf.org/html/rfc4366#section-3.1"                                        \
	}

#define CMD_RW_SERVER_TLS_FLAGS(t)                                                                           \
	{"remote-write.server-tls-cert", FLAG_STRING, &(t)->cert, "",                                        \
	 "TLS Certificate for HTTP server, leave blank to disable TLS."},                                    \
	    {"remote-write.server-tls-key", FLAG_STRING, &(t)->key, "",                                      \
	     "TLS Key for the HTTP server, leave blank to disable TLS."},                                    \
	    {"remote-write.server-tls-client-ca", FLAG_STRING, &(t)->client_ca, "",                          \
	     "TLS CA to verify clients against. If no client CA is specified, there is no client "           \
	     "verification on server side. (tls.NoClientCert)"},                                             \
	{                                                                                                    \
		"remote-write.server-tls-min-version", FLAG_STRING, &(t)->min_version, "1.3",                \
		    "TLS version for the remote-write server, leave blank to default to TLS 1.3, allow "     \
		    "values: [\"1.0\", \"1.1\", \"1.2\", \"1.3\"]"                                           \
	}

#define CMD_RW_CLIENT_TLS_FLAGS(t)                                                                           \
	{"remote-write.client-tls-secure", FLAG_BOOL, &(t)->secure, "false",                                 \
	 "Use TLS when talking to the other receivers."},                                                    \
	    {"remote-write.client-tls-skip-verify", FLAG_BOOL, &(t)->skip_verify, "false",                   \
	     "Disable TLS certificate verification when talking to the other receivers i.e self signed, "    \
	     "signed by fake CA."},                                                                          \
	    {"remote-write.client-tls-cert", FLAG_STRING, &(t)->cert, "",                                    \
	     "TLS Certificates to use to identify this client to the server."},                              \
	    {"remote-write.client-tls-key", FLAG_STRING, &(t)->key, "",                                      \
	     "TLS Key for the client's certificate."},                                                       \
	    {"remote-write.client-tls-ca", FLAG_STRING, &(t)->ca, "",                                        \
	     "TLS CA Certificates to use to verify servers."},                                               \
	{                                                                                                    \
		"remote-write.client-server-name", FLAG_STRING, &(t)->server_name, "",                       \
		    "Server name to verify the hostname on the returned TLS certificates. See "              \
		    "https://tools.ietf.org/html/rfc4366#section-3.1"                                        \
	}

/* *out = NULL without a certificate (plaintext). On a bad flag or file: prints "<cmdline>: <why>" and
 * returns 2. */
int cmd_grpc_server_tls_new(const char *cmdline, const cmd_grpc_server_tls_t *t, tls_server_t **out);
/* *out = NULL without --grpc-client-tls-secure. Errors as above. */
int cmd_grpc_client_tls_new(const char *cmdline, const cmd_grpc_client_tls_t *t, tls_client_t **out);
/* The same for other flag families: flag is the prefix messages name ("--remote-write.server-tls"),
 * alpn the protocol a server selects (NULL: none), what names the configuration in errors. */
int cmd_tls_server_new(const char *cmdline, const char *flag, const char *alpn, const char *what,
                       const cmd_grpc_server_tls_t *t, tls_server_t **out);
int cmd_tls_client_new(const char *cmdline, const char *what, const cmd_grpc_client_tls_t *t,
                       tls_client_t **out);

#endif
