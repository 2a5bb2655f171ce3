/*
 * endpoint_config.h — the querier's --endpoint.sd-config[-file] YAML (Thanos's endpoint configuration,
 * reference thanos.md §6.1), with per-endpoint TLS:
 *
 *     default_client_config:
 *       tls_config: {enabled, insecure_skip_verify, cert_file, key_file, ca_file, min_version}
 *       server_name: <name the servers' certificates must carry>
 *       compression: none | snappy
 *     endpoints:
 *       - address: "host:port" | "dns+host:port" | "dnssrv+_grpc._tcp.name" | ...
 *         strict: <bool>          accepted: every configured endpoint is always queried here
 *         group: false            true (one round-robin endpoint over a DNS name) is refused
 *         service_config: <json>  accepted, not used
 *         client_config: {...}    replaces default_client_config for this endpoint
 *
 * TLS is on for a client config whose tls_config says enabled: true or names any file (as Thanos
 * infers it); a client certificate needs both cert_file and key_file. Without default_client_config
 * the --grpc-client-tls-* flags are the default. The querier re-reads the file when it changes
 * (cmd/query.c: sd_reloader); an address whose client configuration changed is dialled anew.
 *
 * A per-endpoint client_config applies to the addresses its spec resolves to: for "host:port" that is
 * the address itself; DNS specs (dns+, dnssrv+, ...) with a client_config of their own are refused,
 * since their resolved addresses cannot be told apart from other endpoints' (give DNS-discovered
 * endpoints their TLS through default_client_config).
 */
#ifndef STRATA_CMD_ENDPOINT_CONFIG_H
#define STRATA_CMD_ENDPOINT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "net/tls.h"

typedef struct cmd_endpoint_client {
	tls_client_t *tls; /* NULL: plaintext */
	bool compress;     /* snappy */
	char *key;         /* the settings as text: equal keys dial alike (a reload compares them) */
} cmd_endpoint_client_t;

typedef struct cmd_endpoint {
	char *address;
	bool has_client;              /* client_config of its own */
	cmd_endpoint_client_t client; /* when has_client */
} cmd_endpoint_t;

typedef struct cmd_endpoint_config {
	cmd_endpoint_t *v;
	size_t n;
	bool has_default; /* default_client_config given */
	cmd_endpoint_client_t def;
} cmd_endpoint_config_t;

/* ERR_INVALID naming what:line and the key (unknown keys, bad values, unreadable certificate files). */
int cmd_endpoint_config_parse(const char *yaml, size_t len, const char *what, cmd_endpoint_config_t *out,
                              err_t *err);
void cmd_endpoint_config_release(cmd_endpoint_config_t *c);
/* Whether address would be dialled differently under b than under a (either may be NULL: no file). */
bool cmd_endpoint_client_changed(const cmd_endpoint_config_t *a, const cmd_endpoint_config_t *b,
                                 const char *address);
/* The client configuration for a resolved address: its endpoint's own, else the default (NULL when
 * neither: the caller's flags apply). */
const cmd_endpoint_client_t *cmd_endpoint_client_for(const cmd_endpoint_config_t *c, const char *address);

#endif
