/*
 * dnsname.h — Thanos's DNS service discovery prefixes for addresses (reference thanos.md §1.6):
 * "host:port" (used as is), "dns+host:port" (every A/AAAA address of host, port kept),
 * "dnssrv+_svc._tcp.name" (SRV records, each target's A/AAAA addresses with the SRV port),
 * "dnssrvnoa+_svc._tcp.name" (SRV targets used as host names, with the SRV port). Used by the
 * querier's --endpoint and the ruler's --grpc-query-endpoint. Lookups block (getaddrinfo, res_query):
 * call them from a thread that may wait.
 */
#ifndef STRATA_NET_DNSNAME_H
#define STRATA_NET_DNSNAME_H

#include <stdbool.h>

#include "base/err.h"
#include "base/flags.h"

typedef enum dnsname_kind { DNSNAME_PLAIN, DNSNAME_DNS, DNSNAME_DNSSRV, DNSNAME_DNSSRVNOA } dnsname_kind_t;

typedef struct dnsname {
	dnsname_kind_t kind;
	char *name; /* PLAIN: the address; DNS: the host; SRV kinds: the SRV name */
	char *port; /* PLAIN and DNS */
} dnsname_t;

/* ERR_INVALID naming raw for an unknown prefix ("foo+"), an empty name or a missing port (PLAIN, DNS). */
int dnsname_parse(const char *raw, dnsname_t *out, err_t *err);
void dnsname_release(dnsname_t *d);
/* Append the addresses ("ip:port", "[v6]:port", or "host:port" for PLAIN and DNSSRVNOA) not yet in out.
 * ERR_UNAVAILABLE when a lookup fails (out keeps what was appended before). */
int dnsname_resolve(const dnsname_t *d, strlist_t *out, err_t *err);
/* The lookups themselves: A/AAAA records of host with port; SRV records of name (noa: targets as is). */
int dnsname_resolve_host(const char *host, const char *port, strlist_t *out, err_t *err);
int dnsname_resolve_srv(const char *name, bool noa, strlist_t *out, err_t *err);

#endif
