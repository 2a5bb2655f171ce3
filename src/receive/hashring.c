/*
 * hashring.c — Thanos's hashring file, hashmod and ketama placement.
 */
#include "receive/hashring.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/arena.h"

typedef struct section {
	uint64_t hash;
	uint32_t endpoint;
	uint32_t az;
} section_t;

struct hashring {
	char *name;
	hashring_algo_t algo;
	size_t n;
	char **addr;
	char **az; /* ketama only; "" = none */
	uint64_t rf;
	/* ketama: sections sorted by hash, and RF replicas (endpoint indexes) per section */
	section_t *sec;
	size_t nsec;
	uint32_t *replicas; /* nsec * rf */
	/* tenants */
	char **tenants;
	size_t ntenants;
	bool glob;
	arena_t arena;
	labels_t ext;
};

struct hashrings {
	hashring_t **v;
	size_t n;
};

int hashring_algo_parse(const char *s)
{
	if (!s || !*s || !strcmp(s, "hashmod"))
		return HASHRING_HASHMOD;
	if (!strcmp(s, "ketama"))
		return HASHRING_KETAMA;
	return -1;
}

uint64_t hashring_series_hash(str_t tenant, const labels_t *ls)
{
	static const char sep = (char)0xff;
	char stack[1024];
	size_t need = tenant.n + 1;
	for (size_t i = 0; i < ls->n; i++)
		need += ls->v[i].name.n + ls->v[i].value.n + 2;
	char *buf = need <= sizeof stack ? stack : xmalloc(need), *p = buf;
	memcpy(p, tenant.p, tenant.n);
	p += tenant.n;
	*p++ = sep;
	for (size_t i = 0; i < ls->n; i++) {
		memcpy(p, ls->v[i].name.p, ls->v[i].name.n);
		p += ls->v[i].name.n;
		*p++ = sep;
		memcpy(p, ls->v[i].value.p, ls->v[i].value.n);
		p += ls->v[i].value.n;
		*p++ = sep;
	}
	uint64_t h = XXH64(buf, need, 0);
	if (buf != stack)
		free(buf);
	return h;
}

/* ---- building rings ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_section(const void *a, const void *b)
{
	const section_t *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->endpoint < y->endpoint ? -1 : x->endpoint > y->endpoint;
}

static hashring_t *ring_alloc(void)
{
	hashring_t *r = xcalloc(1, sizeof *r);
	arena_init(&r->arena, 0);
	return r;
}

/* Ketama: sections, then each section's replicas walking clockwise with the AZ-spread rule. */
static int ketama_build(hashring_t *r, err_t *err)
{
	if (r->n < r->rf)
		return err_set(err, ERR_INVALID,
		               "ketama: %zu endpoints cannot hold %llu replicas (replication factor)", r->n,
		               (unsigned long long)r->rf);
	/* AZ ids */
	uint32_t *azid = xcalloc(r->n ? r->n : 1, sizeof *azid);
	size_t naz = 0;
	for (size_t i = 0; i < r->n; i++) {
		size_t j;
		for (j = 0; j < i; j++)
			if (!strcmp(r->az[j], r->az[i]))
				break;
		azid[i] = j < i ? azid[j] : (uint32_t)naz++;
	}
	r->nsec = r->n * HASHRING_KETAMA_SECTIONS;
	r->sec = xmalloc((r->nsec ? r->nsec : 1) * sizeof *r->sec);
	char key[600];
	for (size_t e = 0, k = 0; e < r->n; e++)
		for (int i = 1; i <= HASHRING_KETAMA_SECTIONS; i++, k++) {
			int kl = snprintf(key, sizeof key, "%s:%d", r->addr[e], i);
			size_t len = kl < 0 ? 0 : (size_t)kl;
			if (len >= sizeof key) { /* very long address: hash it without truncation */
				char *big = xmalloc(len + 1);
				snprintf(big, len + 1, "%s:%d", r->addr[e], i);
				r->sec[k].hash = XXH64(big, len, 0);
				free(big);
			} else {
				r->sec[k].hash = XXH64(key, len, 0);
			}
			r->sec[k].endpoint = (uint32_t)e;
			r->sec[k].az = azid[e];
		}
	qsort(r->sec, r->nsec, sizeof *r->sec, cmp_section);
	size_t rf = (size_t)r->rf;
	r->replicas = xcalloc(r->nsec * rf + 1, sizeof *r->replicas);
	int64_t *spread = xcalloc(naz ? naz : 1, sizeof *spread);
	uint8_t *chosen = xcalloc(r->n ? r->n : 1, 1);
	for (size_t s = 0; s < r->nsec; s++) {
		uint32_t *rep = &r->replicas[s * rf];
		size_t got = 0;
		memset(spread, 0, naz * sizeof *spread);
		memset(chosen, 0, r->n);
		for (size_t j = s; got < rf; j = (j + 1) % r->nsec) {
			const section_t *c = &r->sec[j];
			if (chosen[c->endpoint])
				continue;
			if (naz > 1 && spread[c->az] > 0) {
				int64_t least = spread[0];
				for (size_t z = 1; z < naz; z++)
					if (spread[z] < least)
						least = spread[z];
				if (spread[c->az] > least)
					continue;
			}
			chosen[c->endpoint] = 1;
			spread[c->az]++;
			rep[got++] = c->endpoint;
		}
	}
	free(spread);
	free(chosen);
	free(azid);
	return 0;
}

static int ring_finish(hashring_t *r, err_t *err)
{
	if (!r->n)
		return err_set(err, ERR_INVALID, "hashring %s has no endpoints", r->name);
	for (size_t i = 0; i < r->n; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(r->addr[i], r->addr[j]))
				return err_set(err, ERR_INVALID, "hashring %s lists endpoint %s twice",
				               r->name, r->addr[i]);
	if (r->algo == HASHRING_HASHMOD) {
		for (size_t i = 0; i < r->n; i++)
			if (r->az[i][0])
				return err_set(
				    err, ERR_INVALID,
				    "hashring %s: the hashmod algorithm does not support AZ aware "
				    "hashrings (endpoint %s has az %s): use ketama or remove the az",
				    r->name, r->addr[i], r->az[i]);
		/* sort by address (the az strings are all empty, so they need not follow) */
		qsort(r->addr, r->n, sizeof *r->addr, cmp_str);
		return 0;
	}
	return ketama_build(r, err);
}

int hashring_new(hashring_algo_t algo, const char *const *addresses, const char *const *azs, size_t n,
                 uint64_t rf, hashring_t **out, err_t *err)
{
	hashring_t *r = ring_alloc();
	r->name = xstrdup("default");
	r->algo = algo;
	r->rf = rf ? rf : 1;
	r->n = n;
	r->addr = xcalloc(n ? n : 1, sizeof *r->addr);
	r->az = xcalloc(n ? n : 1, sizeof *r->az);
	for (size_t i = 0; i < n; i++) {
		r->addr[i] = xstrdup(addresses[i]);
		r->az[i] = xstrdup(azs && azs[i] ? azs[i] : "");
	}
	int rc = ring_finish(r, err);
	if (rc) {
		hashring_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void hashring_free(hashring_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->addr[i]);
		free(r->az[i]);
	}
	free(r->addr);
	free(r->az);
	free(r->sec);
	free(r->replicas);
	for (size_t i = 0; i < r->ntenants; i++)
		free(r->tenants[i]);
	free(r->tenants);
	free(r->name);
	arena_release(&r->arena);
	free(r);
}

/* ---- the JSON file ---- */

static const char *json_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static int parse_ring(json_t *o, size_t idx, const char *what, hashring_algo_t default_algo, uint64_t rf,
                      hashring_t **out, err_t *err)
{
#define BAD(...)                                                                                             \
	do {                                                                                                 \
		char m_[512];                                                                                \
		snprintf(m_, sizeof m_, __VA_ARGS__);                                                        \
		err_set(err, ERR_INVALID, "%s: hashring %zu: %s", what, idx, m_);                            \
		goto fail;                                                                                   \
	} while (0)
	hashring_t *r = ring_alloc();
	r->rf = rf ? rf : 1;
	r->algo = default_algo;
	if (!json_is_object(o))
		BAD("want an object, got %s", json_type_name(o));
	json_t *v;
	if ((v = json_object_get(o, "hashring")) && !json_is_null(v)) {
		if (!json_is_string(v))
			BAD("\"hashring\" must be a string");
		r->name = xstrdup(json_string_value(v));
	} else {
		char nm[32];
		snprintf(nm, sizeof nm, "hashring-%zu", idx);
		r->name = xstrdup(nm);
	}
	if ((v = json_object_get(o, "algorithm")) && !json_is_null(v)) {
		int a = json_is_string(v) ? hashring_algo_parse(json_string_value(v)) : -1;
		if (a < 0)
			BAD("\"algorithm\" must be \"hashmod\" or \"ketama\"");
		r->algo = (hashring_algo_t)a;
	}
	if ((v = json_object_get(o, "tenant_matcher_type")) && !json_is_null(v)) {
		const char *t = json_is_string(v) ? json_string_value(v) : "?";
		if (!strcmp(t, "glob"))
			r->glob = true;
		else if (strcmp(t, "exact") && *t)
			BAD("\"tenant_matcher_type\" must be \"exact\" or \"glob\"");
	}
	if ((v = json_object_get(o, "tenants")) && !json_is_null(v)) {
		if (!json_is_array(v))
			BAD("\"tenants\" must be an array of strings");
		r->tenants = xcalloc(json_array_size(v) + 1, sizeof *r->tenants);
		for (size_t i = 0; i < json_array_size(v); i++) {
			json_t *t = json_array_get(v, i);
			if (!json_is_string(t))
				BAD("\"tenants\"[%zu] must be a string", i);
			r->tenants[r->ntenants++] = xstrdup(json_string_value(t));
		}
	}
	if ((v = json_object_get(o, "shuffle_sharding_config")) && !json_is_null(v)) {
		json_t *sz = json_is_object(v) ? json_object_get(v, "shard_size") : NULL;
		if (sz && json_integer_value(sz) > 0)
			BAD("shuffle sharding (\"shuffle_sharding_config\") is not supported");
	}
	labels_builder_t lb;
	labels_builder_init(&lb, &r->arena, NULL);
	if ((v = json_object_get(o, "external_labels")) && !json_is_null(v)) {
		if (!json_is_object(v))
			BAD("\"external_labels\" must be an object of strings");
		const char *k;
		json_t *lv;
		json_object_foreach(v, k, lv)
		{
			if (!json_is_string(lv))
				BAD("\"external_labels\".%s must be a string", k);
			if (!label_name_valid(str_c(k)))
				BAD("\"external_labels\": invalid label name \"%s\"", k);
			labels_builder_set(
			    &lb, str_from(arena_strdup(&r->arena, k), strlen(k)),
			    str_from(arena_strdup(&r->arena, json_string_value(lv)), json_string_length(lv)));
		}
	}
	r->ext = labels_builder_finish(&lb);
	v = json_object_get(o, "endpoints");
	if (!v || !json_is_array(v))
		BAD("\"endpoints\" must be an array");
	size_t n = json_array_size(v);
	r->addr = xcalloc(n ? n : 1, sizeof *r->addr);
	r->az = xcalloc(n ? n : 1, sizeof *r->az);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i), *a, *z;
		const char *addr = NULL, *az = "";
		if (json_is_string(e)) {
			addr = json_string_value(e);
		} else if (json_is_object(e)) {
			if ((a = json_object_get(e, "address")) && json_is_string(a))
				addr = json_string_value(a);
			if ((z = json_object_get(e, "az")) && !json_is_null(z)) {
				if (!json_is_string(z))
					BAD("endpoint %zu: \"az\" must be a string", i);
				az = json_string_value(z);
			}
		} else {
			BAD("endpoint %zu must be a string or an object, got %s", i, json_type_name(e));
		}
		if (!addr || !*addr)
			BAD("endpoint %zu has no address", i);
		r->addr[r->n] = xstrdup(addr);
		r->az[r->n++] = xstrdup(az);
	}
	if (ring_finish(r, err) != 0) {
		err_wrap(err, "%s: hashring %zu", what, idx);
		goto fail;
	}
	*out = r;
	return 0;
fail:
	hashring_free(r);
	return ERR_INVALID;
#undef BAD
}

int hashrings_parse(const char *text, size_t n, const char *what, hashring_algo_t default_algo, uint64_t rf,
                    hashrings_t **out, err_t *err)
{
	json_error_t je;
	json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return err_set(err, ERR_INVALID, "%s: line %d column %d: %s", what, je.line, je.column,
		               je.text);
	if (!json_is_array(root)) {
		err_set(err, ERR_INVALID, "%s: want a JSON array of hashrings, got %s", what,
		        json_type_name(root));
		json_decref(root);
		return ERR_INVALID;
	}
	hashrings_t *h = xcalloc(1, sizeof *h);
	h->v = xcalloc(json_array_size(root) + 1, sizeof *h->v);
	int rc = 0;
	for (size_t i = 0; i < json_array_size(root) && !rc; i++) {
		rc = parse_ring(json_array_get(root, i), i, what, default_algo, rf, &h->v[h->n], err);
		if (!rc)
			h->n++;
	}
	json_decref(root);
	if (!rc && !h->n)
		rc = err_set(err, ERR_INVALID, "%s: no hashrings", what);
	if (rc) {
		hashrings_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void hashrings_free(hashrings_t *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		hashring_free(h->v[i]);
	free(h->v);
	free(h);
}

size_t hashrings_count(const hashrings_t *h)
{
	return h->n;
}

const hashring_t *hashrings_at(const hashrings_t *h, size_t i)
{
	return i < h->n ? h->v[i] : NULL;
}

const hashring_t *hashrings_for_tenant(const hashrings_t *h, str_t tenant, err_t *err)
{
	char tn[256];
	bool have_c = tenant.n < sizeof tn;
	if (have_c) {
		memcpy(tn, tenant.p, tenant.n);
		tn[tenant.n] = 0;
	}
	for (size_t i = 0; i < h->n; i++) /* exact */
		if (!h->v[i]->glob)
			for (size_t j = 0; j < h->v[i]->ntenants; j++)
				if (str_eq_c(tenant, h->v[i]->tenants[j]))
					return h->v[i];
	for (size_t i = 0; have_c && i < h->n; i++) /* glob */
		if (h->v[i]->glob)
			for (size_t j = 0; j < h->v[i]->ntenants; j++)
				if (fnmatch(h->v[i]->tenants[j], tn, 0) == 0)
					return h->v[i];
	for (size_t i = 0; i < h->n; i++) /* default */
		if (!h->v[i]->ntenants)
			return h->v[i];
	err_set(err, ERR_INVALID, "no matching hashring to handle tenant %.*s",
	        (int)(tenant.n > 100 ? 100 : tenant.n), tenant.p);
	return NULL;
}

bool hashrings_has_endpoint(const hashrings_t *h, const char *address)
{
	for (size_t i = 0; i < h->n; i++)
		for (size_t j = 0; j < h->v[i]->n; j++)
			if (!strcmp(h->v[i]->addr[j], address))
				return true;
	return false;
}

size_t hashrings_num_endpoints(const hashrings_t *h)
{
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++)
		n += h->v[i]->n;
	return n;
}

size_t hashrings_num_tenants(const hashrings_t *h)
{
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++)
		n += h->v[i]->ntenants;
	return n;
}

const char *hashring_name(const hashring_t *r)
{
	return r->name;
}

hashring_algo_t hashring_algo(const hashring_t *r)
{
	return r->algo;
}

size_t hashring_len(const hashring_t *r)
{
	return r->n;
}

size_t hashring_num_tenants(const hashring_t *r)
{
	return r->ntenants;
}

const char *hashring_address(const hashring_t *r, size_t i)
{
	return i < r->n ? r->addr[i] : NULL;
}

const labels_t *hashring_external_labels(const hashring_t *r)
{
	return &r->ext;
}

int hashring_get_n(const hashring_t *r, uint64_t hash, uint64_t n, size_t *endpoint, err_t *err)
{
	if (n >= r->n || (r->algo == HASHRING_KETAMA && n >= r->rf))
		return err_set(err, ERR_INVALID, "insufficient nodes; have %zu, want %llu", r->n,
		               (unsigned long long)n + 1);
	if (r->algo == HASHRING_HASHMOD) {
		*endpoint = (size_t)((hash + n) % r->n);
		return 0;
	}
	size_t lo = 0, hi = r->nsec; /* first section with hash >= the series hash */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->sec[mid].hash >= hash)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo == r->nsec)
		lo = 0;
	*endpoint = r->replicas[lo * (size_t)r->rf + n];
	return 0;
}
