/*
 * tenancy.h — the querier's tenancy on the read path (reference thanos.md §1.6 querier flags, §6.7):
 * a store_t over another (the proxy over the endpoint set) for one request of one tenant.
 *
 * With enforce (--query.enforce-tenancy), every request through it — Series for every PromQL selector,
 * /api/v1/series, labels, label values — carries one more matcher, <label>="<tenant>" (label:
 * --query.tenant-label-name, default tenant_id), as prom-label-proxy injects it. The request's own
 * matchers stay and all must match, so a matcher of the query on that label never widens what the
 * tenant sees: {tenant_id="other"} selects nothing, {tenant_id=~".+"} only the tenant's series. The
 * stores evaluate it against their external labels or their series' labels (store.h). Without enforce
 * the requests pass unchanged. Either way the tenant goes along as the request's tenant (the gRPC
 * client sends it as metadata "thanos-tenant").
 *
 * tenancy_tenant_valid: Thanos's check of a tenant name (no path separators, not "." or "..").
 */
#ifndef STRATA_QUERY_TENANCY_H
#define STRATA_QUERY_TENANCY_H

#include <stdbool.h>

#include "base/arena.h"
#include "base/str.h"
#include "store/store.h"

/* A store living in a (label and tenant are copied there); inner is borrowed. */
store_t *tenancy_store(arena_t *a, store_t *inner, str_t label, str_t tenant, bool enforce);
bool tenancy_tenant_valid(str_t tenant);

#endif
