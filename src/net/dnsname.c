/*
 * dnsname.c — DNS service discovery prefixes (see dnsname.h).
 */
#include "net/dnsname.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

static void push_unique(strlist_t *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return;
	strlist_push(l, s);
}

/* A/AAAA records of host, formatted with port. */
int dnsname_resolve_host(const char *host, const char *port, strlist_t *out, err_t *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc)
		return err_set(err, ERR_UNAVAILABLE, "lookup %s: %s", host, gai_strerror(rc));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 16];
		if (ai->ai_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof ip);
			snprintf(addr, sizeof addr, "%s:%s", ip, port);
		} else if (ai->ai_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip, sizeof ip);
			snprintf(addr, sizeof addr, "[%s]:%s", ip, port);
		} else {
			continue;
		}
		push_unique(out, addr);
	}
	freeaddrinfo(res);
	return 0;
}

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* SRV records of name: targets resolved (or, noa, used as is) with the SRV port. */
int dnsname_resolve_srv(const char *name, bool noa, strlist_t *out, err_t *err)
{
	unsigned char ans[8192];
	int len = res_query(name, 1 /* C_IN */, 33 /* T_SRV */, ans, sizeof ans);
	if (len < 0)
		return err_set(err, ERR_UNAVAILABLE, "lookup SRV %s: %s", name, hstrerror(h_errno));
	if (len < 12)
		return err_set(err, ERR_UNAVAILABLE, "lookup SRV %s: short DNS answer (%d bytes)", name, len);
	const unsigned char *end = ans + len, *p = ans + 12;
	int qd = get16(ans + 4), an = get16(ans + 6);
	char dname[NS_MAXDNAME];
	for (int i = 0; i < qd; i++) {
		int n = dn_expand(ans, end, p, dname, sizeof dname);
		if (n < 0 || p + n + 4 > end)
			return err_set(err, ERR_UNAVAILABLE, "lookup SRV %s: malformed DNS answer", name);
		p += n + 4;
	}
	for (int i = 0; i < an; i++) {
		int n = dn_expand(ans, end, p, dname, sizeof dname);
		if (n < 0 || p + n + 10 > end)
			return err_set(err, ERR_UNAVAILABLE, "lookup SRV %s: malformed DNS answer", name);
		p += n;
		int type = get16(p), rdlen = get16(p + 8);
		p += 10;
		if (p + rdlen > end)
			return err_set(err, ERR_UNAVAILABLE, "lookup SRV %s: malformed DNS answer", name);
		if (type == 33 && rdlen > 6) {
			char target[NS_MAXDNAME], port[8];
			snprintf(port, sizeof port, "%u", get16(p + 4));
			if (dn_expand(ans, end, p + 6, target, sizeof target) < 0)
				return err_set(err, ERR_UNAVAILABLE, "lookup SRV %s: malformed SRV record",
				               name);
			if (noa) {
				char addr[NS_MAXDNAME + 8];
				snprintf(addr, sizeof addr, "%s:%s", target, port);
				push_unique(out, addr);
			} else {
				int rc = dnsname_resolve_host(target, port, out, err);
				if (rc)
					return rc;
			}
		}
		p += rdlen;
	}
	return 0;
}

int dnsname_parse(const char *raw, dnsname_t *d, err_t *err)
{
	memset(d, 0, sizeof *d);
	static const struct {
		const char *prefix;
		dnsname_kind_t kind;
	} prefixes[] = {
	    {"dns+", DNSNAME_DNS}, {"dnssrv+", DNSNAME_DNSSRV}, {"dnssrvnoa+", DNSNAME_DNSSRVNOA}};
	const char *rest = raw;
	d->kind = DNSNAME_PLAIN;
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
		if (strncmp(raw, prefixes[i].prefix, strlen(prefixes[i].prefix)) == 0) {
			d->kind = prefixes[i].kind;
			rest = raw + strlen(prefixes[i].prefix);
		}
	if (d->kind == DNSNAME_PLAIN && strchr(raw, '+'))
		return err_set(err, ERR_INVALID,
		               "%s: unknown lookup prefix (want dns+, dnssrv+ or dnssrvnoa+)", raw);
	if (!*rest)
		return err_set(err, ERR_INVALID, "%s: empty address", raw);
	if (d->kind == DNSNAME_DNSSRV || d->kind == DNSNAME_DNSSRVNOA) {
		d->name = xstrdup(rest);
		return 0;
	}
	const char *colon = strrchr(rest, ':');
	if (!colon || colon == rest || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return err_set(err, ERR_INVALID, "%s: missing port (want host:port)", raw);
	if (d->kind == DNSNAME_PLAIN) {
		d->name = xstrdup(rest);
		return 0;
	}
	const char *h = rest;
	size_t hl = (size_t)(colon - rest);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	d->name = xstrndup(h, hl);
	d->port = xstrdup(colon + 1);
	return 0;
}

void dnsname_release(dnsname_t *d)
{
	free(d->name);
	free(d->port);
	memset(d, 0, sizeof *d);
}

int dnsname_resolve(const dnsname_t *d, strlist_t *out, err_t *err)
{
	switch (d->kind) {
	case DNSNAME_PLAIN:
		push_unique(out, d->name);
		return 0;
	case DNSNAME_DNS:
		return dnsname_resolve_host(d->name, d->port, out, err);
	case DNSNAME_DNSSRV:
		return dnsname_resolve_srv(d->name, false, out, err);
	case DNSNAME_DNSSRVNOA:
		return dnsname_resolve_srv(d->name, true, out, err);
	}
	return err_set(err, ERR_INVALID, "unknown address kind");
}
