/*
 * router.c — linear-scan router. Servers register a handful of routes, so a scan over a small array
 * beats a trie in both code and speed; revisit if a component registers hundreds.
 */
#include "net/router.h"

#include <string.h>

#include "base/alloc.h"

void router_init(router_t *r)
{
	memset(r, 0, sizeof *r);
}

void router_release(router_t *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].pattern);
	free(r->v);
	memset(r, 0, sizeof *r);
}

void router_add(router_t *r, unsigned methods, const char *pattern, void *data)
{
	for (size_t i = 0; i < r->n; i++)
		BUG_ON(strcmp(r->v[i].pattern, pattern) == 0);
	if (r->n == r->cap) {
		r->cap = alloc_grow_cap(r->cap, r->n + 1);
		r->v = xreallocarray(r->v, r->cap, sizeof *r->v);
	}
	route_t *rt = &r->v[r->n++];
	rt->pattern = xstrdup(pattern);
	size_t n = strlen(pattern);
	rt->prefix = n > 0 && pattern[n - 1] == '*';
	rt->path = (str_t){rt->pattern, rt->prefix ? n - 1 : n};
	rt->methods = methods;
	if (methods & HTTP_M_GET)
		rt->methods |= HTTP_M_HEAD;
	rt->data = data;
}

int router_match(const router_t *r, unsigned method, str_t path, const route_t **out, unsigned *allowed)
{
	const route_t *best = NULL;
	unsigned allow = 0;
	/* Pass 1: exact routes. */
	for (size_t i = 0; i < r->n; i++) {
		const route_t *rt = &r->v[i];
		if (rt->prefix || !str_eq(rt->path, path))
			continue;
		allow |= rt->methods;
		if (rt->methods & method) {
			*out = rt;
			return 200;
		}
	}
	/* Pass 2: longest matching prefix that accepts the method. */
	for (size_t i = 0; i < r->n; i++) {
		const route_t *rt = &r->v[i];
		if (!rt->prefix || !str_has_prefix(path, rt->path))
			continue;
		allow |= rt->methods;
		if ((rt->methods & method) && (!best || rt->path.n > best->path.n))
			best = rt;
	}
	if (best) {
		*out = best;
		return 200;
	}
	if (allowed)
		*allowed = allow;
	return allow ? 405 : 404;
}

unsigned http_method_bit(str_t m)
{
	static const struct {
		const char *name;
		unsigned bit;
	} tab[] = {{"GET", HTTP_M_GET},	      {"HEAD", HTTP_M_HEAD},	   {"POST", HTTP_M_POST},
		   {"PUT", HTTP_M_PUT},	      {"DELETE", HTTP_M_DELETE}, {"OPTIONS", HTTP_M_OPTIONS},
		   {"PATCH", HTTP_M_PATCH}};
	for (size_t i = 0; i < ARRAY_LEN(tab); i++)
		if (str_eq_c(m, tab[i].name))
			return tab[i].bit;
	return HTTP_M_OTHER;
}

void http_methods_format(buf_t *b, unsigned methods)
{
	static const char *names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
	bool first = true;
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (!(methods & (1u << i)))
			continue;
		if (!first)
			buf_puts(b, ", ");
		buf_puts(b, names[i]);
		first = false;
	}
}
