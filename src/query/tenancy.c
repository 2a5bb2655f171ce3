/*
 * tenancy.c — see tenancy.h.
 */
#include "query/tenancy.h"

#include <string.h>

typedef struct tenant_store {
	store_t base;
	store_t *inner;
	const char *tenant;
	bool enforce;
	matcher_t m; /* <label>="<tenant>" (EQ: no compiled state to release) */
} tenant_store_t;

/* The request's matchers plus the tenant's, in a. */
static const matcher_t *with_tenant(tenant_store_t *t, arena_t *a, const matcher_t *ms, size_t nms, size_t *n)
{
	matcher_t *v = ARENA_NEW_ARRAY(a, matcher_t, nms + 1);
	if (nms)
		memcpy(v, ms, nms * sizeof *v);
	v[nms] = t->m;
	*n = nms + 1;
	return v;
}

static int ts_series(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	tenant_store_t *t = (tenant_store_t *)s;
	store_series_req_t r = *req;
	r.tenant = t->tenant;
	if (t->enforce)
		r.ms = with_tenant(t, a, req->ms, req->nms, &r.nms);
	return store_series(t->inner, a, &r, out, err);
}

/* req for the tenant: its name, and its matcher when enforced. */
static store_label_req_t label_req(tenant_store_t *t, arena_t *a, const store_label_req_t *req)
{
	store_label_req_t r = *req;
	r.tenant = t->tenant;
	if (t->enforce)
		r.ms = with_tenant(t, a, req->ms, req->nms, &r.nms);
	return r;
}

static int ts_label_names(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out,
                          err_t *err)
{
	tenant_store_t *t = (tenant_store_t *)s;
	store_label_req_t r = label_req(t, a, req);
	return store_label_names(t->inner, a, &r, out, err);
}

static int ts_label_values(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out,
                           err_t *err)
{
	tenant_store_t *t = (tenant_store_t *)s;
	store_label_req_t r = label_req(t, a, req);
	return store_label_values(t->inner, a, &r, out, err);
}

static int ts_info(store_t *s, arena_t *a, store_info_t *out, err_t *err)
{
	return store_info(((tenant_store_t *)s)->inner, a, out, err);
}

static void ts_free(store_t *s)
{
	(void)s; /* lives in the request's arena */
}

static const struct store_ops tenant_ops = {
    .series = ts_series,
    .label_names = ts_label_names,
    .label_values = ts_label_values,
    .info = ts_info,
    .free = ts_free,
};

store_t *tenancy_store(arena_t *a, store_t *inner, str_t label, str_t tenant, bool enforce)
{
	tenant_store_t *t = ARENA_NEW(a, tenant_store_t);
	t->base.ops = &tenant_ops;
	t->base.name = inner->name;
	t->inner = inner;
	t->tenant = arena_strndup(a, tenant.p, tenant.n);
	t->enforce = enforce;
	t->m = (matcher_t){.type = MATCH_EQ,
	                   .name = str_from(arena_strndup(a, label.p, label.n), label.n),
	                   .value = str_from(t->tenant, tenant.n)};
	return &t->base;
}

bool tenancy_tenant_valid(str_t tenant)
{
	if (!tenant.n || str_eq_c(tenant, ".") || str_eq_c(tenant, ".."))
		return false;
	for (size_t i = 0; i < tenant.n; i++)
		if (tenant.p[i] == '/' || tenant.p[i] == '\\' || tenant.p[i] == 0)
			return false;
	return true;
}
