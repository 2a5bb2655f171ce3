/*
 * router.h — maps (method, path) to a route: exact paths and prefixes ("/api/v1/" + "*").
 *
 * Matching: an exact route wins over a prefix route; among prefixes the longest wins. A path that
 * matches a route registered for other methods only gives 405 (with the allowed methods, for the
 * Allow header); no matching path gives 404. HEAD is accepted wherever GET is.
 * Routes are registered at start-up, then the router is read-only (safe to share across threads).
 */
#ifndef STRATA_NET_ROUTER_H
#define STRATA_NET_ROUTER_H

#include <stddef.h>

#include "base/str.h"

enum {
	HTTP_M_GET = 1 << 0,
	HTTP_M_HEAD = 1 << 1,
	HTTP_M_POST = 1 << 2,
	HTTP_M_PUT = 1 << 3,
	HTTP_M_DELETE = 1 << 4,
	HTTP_M_OPTIONS = 1 << 5,
	HTTP_M_PATCH = 1 << 6,
	HTTP_M_OTHER = 1 << 7,
	HTTP_M_ANY = 0xff,
};

typedef struct route {
	char *pattern; /* as registered, e.g. "/api/v1/" + "*" (used as the metrics "handler" label) */
	str_t path;    /* pattern without the trailing '*' */
	int prefix;    /* pattern ended in '*' */
	unsigned methods;
	void *data;
} route_t;

typedef struct router {
	route_t *v;
	size_t n, cap;
} router_t;

void router_init(router_t *r);
void router_release(router_t *r);
/* Register; a pattern ending in '*' is a prefix route. Registering the same pattern twice is a bug. */
void router_add(router_t *r, unsigned methods, const char *pattern, void *data);
/* 200 with *out set, 404, or 405 with *allowed set to the union of methods for that path. */
int router_match(const router_t *r, unsigned method, str_t path, const route_t **out, unsigned *allowed);

/* "GET" -> HTTP_M_GET ...; unknown methods -> HTTP_M_OTHER. */
unsigned http_method_bit(str_t method);
/* "GET, POST" for the Allow header. */
void http_methods_format(buf_t *b, unsigned methods);

#endif
