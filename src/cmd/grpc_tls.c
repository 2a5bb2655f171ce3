/*
 * grpc_tls.c — Thanos's gRPC TLS flags to net/tls.h contexts. See grpc_tls.h.
 */
#include "cmd/grpc_tls.h"

#include <stdio.h>

static const char *or_null(const char *s)
{
	return s && *s ? s : NULL;
}

int cmd_grpc_server_tls_new(const char *cmdline, const cmd_grpc_server_tls_t *t, tls_server_t **out)
{
	return cmd_tls_server_new(cmdline, "--grpc-server-tls", "h2", "gRPC server TLS", t, out);
}

int cmd_tls_server_new(const char *cmdline, const char *flag, const char *alpn, const char *what,
                       const cmd_grpc_server_tls_t *t, tls_server_t **out)
{
	*out = NULL;
	const char *cert = or_null(t->cert), *key = or_null(t->key), *ca = or_null(t->client_ca);
	err_t err = {0};
	int min = 0;
	if (!cert && !key) {
		if (ca) {
			fprintf(stderr, "%s: %s-client-ca needs %s-cert and %s-key\n", cmdline, flag, flag,
			        flag);
			return 2;
		}
		return 0;
	}
	if (!cert || !key) {
		fprintf(stderr, "%s: %s-cert and %s-key go together\n", cmdline, flag, flag);
		return 2;
	}
	if (or_null(t->min_version) && tls_version_parse(t->min_version, &min, &err)) {
		fprintf(stderr, "%s: %s-min-version: %s\n", cmdline, flag, err.msg);
		return 2;
	}
	tls_server_opts_t o = {
	    .cert_file = cert,
	    .key_file = key,
	    .client_ca_file = ca,
	    .client_auth = ca ? TLS_CLIENT_AUTH_REQUIRE_AND_VERIFY : TLS_CLIENT_AUTH_NONE,
	    .min_version = min,
	    .alpn = alpn,
	    .what = what,
	};
	if (tls_server_new(out, &o, &err)) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return 2;
	}
	return 0;
}

int cmd_grpc_client_tls_new(const char *cmdline, const cmd_grpc_client_tls_t *t, tls_client_t **out)
{
	return cmd_tls_client_new(cmdline, "gRPC client TLS", t, out);
}

int cmd_tls_client_new(const char *cmdline, const char *what, const cmd_grpc_client_tls_t *t,
                       tls_client_t **out)
{
	*out = NULL;
	if (!t->secure)
		return 0;
	tls_client_opts_t o = {
	    .ca_file = or_null(t->ca),
	    .cert_file = or_null(t->cert),
	    .key_file = or_null(t->key),
	    .server_name = or_null(t->server_name),
	    .insecure_skip_verify = t->skip_verify,
	    .alpn = "h2",
	    .what = what,
	};
	err_t err = {0};
	if (tls_client_new(out, &o, &err)) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return 2;
	}
	return 0;
}
