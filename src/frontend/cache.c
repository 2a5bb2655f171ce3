/*
 * cache.c — IN-MEMORY (LRU by bytes and items, with validity) and MEMCACHED response caches; see cache.h.
 */
#include "frontend/cache.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/duration.h"
#include "base/flags.h"
#include "base/hmap.h"
#include "base/metrics.h"

#define ENTRY_OVERHEAD 100 /* bytes of bookkeeping counted per entry */

typedef struct entry {
	struct entry *prev, *next; /* LRU list, most recent first */
	int64_t added_ms;
	size_t klen, vlen;
	uint64_t hash; /* of the value (fecache_fingerprint) */
	size_t lent;   /* requests holding the value (c->mu) */
	bool gone;     /* out of the cache (evicted, replaced, expired): freed when no longer lent */
	char data[];   /* key then value */
} entry_t;

struct fecache {
	fecache_type_t type;
	/* IN-MEMORY */
	pthread_mutex_t mu;
	hmap_t map;
	entry_t *head, *tail;
	size_t bytes, items, max_bytes, max_items;
	size_t leases; /* gets whose lent entries are not given back yet */
	int64_t validity_ms;
	/* MEMCACHED */
	memcache_t *mc;
	int64_t exptime_s;
	/* metrics */
	metric_child_t *fetched, *hits, *dur_fetch, *dur_store, *m_entries, *m_bytes, *m_added, *m_evicted;
};

void fecache_config_init(fecache_config_t *c)
{
	memset(c, 0, sizeof *c);
	memcache_config_init(&c->memcached, "frontend-cache");
}

void fecache_config_release(fecache_config_t *c)
{
	memcache_config_release(&c->memcached);
}

/* ------------------------------------------------------------------ config */

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int at(err_t *err, const char *what, yaml_node_t *n, const char *msg, const char *key)
{
	return err_set(err, ERR_INVALID, "%s:%zu:%zu: %s%s%s", what, n ? n->start_mark.line + 1 : 1,
	               n ? n->start_mark.column + 1 : 1, msg, key ? ": " : "", key ? key : "");
}

static int parse_inmemory(yaml_document_t *doc, yaml_node_t *cfg, const char *what, fecache_config_t *c,
                          err_t *err)
{
	int rc = 0;
	for (yaml_node_pair_t *pr = cfg->data.mapping.pairs.start; pr < cfg->data.mapping.pairs.top && !rc;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key),
		            *v = yaml_document_get_node(doc, pr->value);
		const char *ks = scalar(k), *vs = scalar(v);
		int64_t n = 0;
		err_t e2 = {0};
		if (!ks)
			rc = at(err, what, k, "expected a key", NULL);
		else if (!vs)
			rc = at(err, what, v, "expected a scalar value for", ks);
		else if (strcmp(ks, "max_size") == 0) {
			if (*vs && (bytes_parse(vs, &n, &e2) || n < 0))
				rc = at(err, what, v, "max_size: bad size", vs);
			c->max_size = (size_t)n;
		} else if (strcmp(ks, "max_size_items") == 0) {
			if (!str_to_i64(str_c(vs), &n) || n < 0)
				rc = at(err, what, v, "max_size_items: expected a non-negative integer", vs);
			c->max_size_items = n;
		} else if (strcmp(ks, "validity") == 0) {
			if (duration_parse(str_c(vs), &c->validity_ms, &e2) || c->validity_ms < 0)
				rc = at(err, what, v, "validity: bad duration", vs);
		} else {
			rc = at(err, what, k, "unknown key", ks);
		}
	}
	return rc;
}

int fecache_config_parse(const char *yaml, size_t len, const char *what, fecache_config_t *c, err_t *err)
{
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p))
		die("frontend cache: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&p, &doc)) {
		int rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: %s", what, p.problem_mark.line + 1,
		                 p.problem_mark.column + 1, p.problem ? p.problem : "YAML syntax error");
		yaml_parser_delete(&p);
		return rc;
	}
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&doc), *cfg = NULL;
	const char *type = NULL;
	if (!root || root->type != YAML_MAPPING_NODE) {
		rc = at(err, what, root, "expected a mapping with type and config", NULL);
		goto out;
	}
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top && !rc;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(&doc, pr->key),
		            *v = yaml_document_get_node(&doc, pr->value);
		const char *ks = scalar(k);
		if (ks && strcmp(ks, "type") == 0 && scalar(v))
			type = scalar(v);
		else if (ks && strcmp(ks, "config") == 0)
			cfg = v;
		else
			rc = at(err, what, k, "unknown key", ks ? ks : "?");
	}
	if (rc)
		goto out;
	if (!type) {
		rc = at(err, what, root, "missing type", NULL);
		goto out;
	}
	bool empty = !cfg || (cfg->type == YAML_SCALAR_NODE && !*scalar(cfg));
	if (!empty && cfg->type != YAML_MAPPING_NODE) {
		rc = at(err, what, cfg, "config must be a mapping", NULL);
		goto out;
	}
	if (strcasecmp(type, "IN-MEMORY") == 0) {
		if (!empty)
			rc = parse_inmemory(&doc, cfg, what, c, err);
		c->type = (c->max_size || c->max_size_items) ? FECACHE_IN_MEMORY : FECACHE_NONE;
	} else if (strcasecmp(type, "MEMCACHED") == 0) {
		c->type = FECACHE_MEMCACHED;
		static const char *const skip[] = {"expiration", NULL};
		if (empty) {
			rc = at(err, what, root, "MEMCACHED: config with addresses is required", NULL);
			goto out;
		}
		rc = memcache_config_parse_yaml(&doc, cfg, what, skip, &c->memcached, err);
		for (yaml_node_pair_t *pr = cfg->data.mapping.pairs.start;
		     !rc && pr < cfg->data.mapping.pairs.top; pr++) {
			yaml_node_t *k = yaml_document_get_node(&doc, pr->key),
			            *v = yaml_document_get_node(&doc, pr->value);
			err_t e2 = {0};
			if (scalar(k) && strcmp(scalar(k), "expiration") == 0 &&
			    (!scalar(v) || duration_parse(str_c(scalar(v)), &c->expiration_ms, &e2) ||
			     c->expiration_ms < 0))
				rc =
				    at(err, what, v, "expiration: bad duration", scalar(v) ? scalar(v) : "?");
		}
	} else {
		rc = at(err, what, root, "unsupported response cache type (IN-MEMORY or MEMCACHED)", type);
	}
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return rc;
}

/* ------------------------------------------------------------------ lifecycle */

static metric_t *f_fetched, *f_hits, *f_dur, *f_entries, *f_bytes, *f_added, *f_evicted;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void init_metrics(void)
{
	f_fetched = metrics_counter("cortex_cache_fetched_keys", "Total count of keys requested from cache.",
	                            "name,tripperware");
	f_hits =
	    metrics_counter("cortex_cache_hits", "Total count of keys found in cache.", "name,tripperware");
	static const double b[] = {0.000016, 0.000064, 0.000256, 0.001024,
	                           0.004096, 0.016384, 0.065536, 0.262144};
	f_dur = metrics_histogram("cortex_cache_request_duration_seconds",
	                          "Total time spent in seconds doing cache requests.",
	                          "name,method,tripperware", b, ARRAY_LEN(b));
	f_entries =
	    metrics_gauge("querier_cache_entries", "The total number of entries", "cache,tripperware");
	f_bytes = metrics_gauge("querier_cache_memory_bytes", "The current cache size in bytes",
	                        "cache,tripperware");
	f_added = metrics_counter("querier_cache_added_total", "The total number of Put calls on the cache",
	                          "cache,tripperware");
	f_evicted = metrics_counter("querier_cache_evicted_total", "The total number of evicted entries",
	                            "cache,tripperware");
}

int fecache_new(fecache_t **out, const fecache_config_t *c, const char *tripperware, err_t *err)
{
	*out = NULL;
	if (c->type == FECACHE_NONE)
		return 0;
	pthread_once(&metrics_once, init_metrics);
	fecache_t *fc = xcalloc(1, sizeof *fc);
	fc->type = c->type;
	const char *name = c->type == FECACHE_IN_MEMORY ? "frontend.fifocache" : "frontend.memcache";
	if (c->type == FECACHE_MEMCACHED) {
		int rc = memcache_new(&fc->mc, &c->memcached, err);
		if (rc) {
			free(fc);
			return rc;
		}
		fc->exptime_s = (c->expiration_ms ? c->expiration_ms : 24 * 3600 * 1000) / 1000;
		if (!fc->exptime_s)
			fc->exptime_s = 1; /* 0 would mean "never expires" to memcached */
	} else {
		pthread_mutex_init(&fc->mu, NULL);
		hmap_init(&fc->map, 1024);
		fc->max_bytes = c->max_size;
		fc->max_items = (size_t)c->max_size_items;
		fc->validity_ms = c->validity_ms;
		fc->m_entries = metric_with(f_entries, name, tripperware);
		fc->m_bytes = metric_with(f_bytes, name, tripperware);
		fc->m_added = metric_with(f_added, name, tripperware);
		fc->m_evicted = metric_with(f_evicted, name, tripperware);
	}
	fc->fetched = metric_with(f_fetched, name, tripperware);
	fc->hits = metric_with(f_hits, name, tripperware);
	fc->dur_fetch = metric_with(f_dur, name, "fetch", tripperware);
	fc->dur_store = metric_with(f_dur, name, "store", tripperware);
	*out = fc;
	return 0;
}

void fecache_free(fecache_t *c)
{
	if (!c)
		return;
	if (c->mc) {
		memcache_wait_async(c->mc);
		memcache_free(c->mc);
	} else {
		BUG_ON(c->leases); /* an arena with lent values outlived the cache */
		for (entry_t *e = c->head, *nx; e; e = nx) {
			nx = e->next;
			free(e);
		}
		hmap_release(&c->map);
		pthread_mutex_destroy(&c->mu);
	}
	free(c);
}

/* ------------------------------------------------------------------ IN-MEMORY */

/* The entries one get lent to a request, given back when its arena goes. */
typedef struct lease {
	fecache_t *c;
	size_t n;
	entry_t *e[];
} lease_t;

static void lease_end(void *arg)
{
	lease_t *l = arg;
	fecache_t *c = l->c;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < l->n; i++) {
		entry_t *e = l->e[i];
		if (--e->lent == 0 && e->gone)
			free(e);
	}
	c->leases--;
	pthread_mutex_unlock(&c->mu);
}

static size_t entry_cost(const entry_t *e)
{
	return e->klen + e->vlen + ENTRY_OVERHEAD;
}

static void unlink_entry(fecache_t *c, entry_t *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void push_front(fecache_t *c, entry_t *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void remove_entry(fecache_t *c, entry_t *e)
{
	unlink_entry(c, e);
	hmap_del(&c->map, (str_t){e->data, e->klen});
	c->bytes -= entry_cost(e);
	c->items--;
	if (e->lent)
		e->gone = true; /* the last lease frees it */
	else
		free(e);
}

static void publish(fecache_t *c)
{
	metric_set(c->m_entries, (double)c->items);
	metric_set(c->m_bytes, (double)c->bytes);
}

/* peek (may be NULL): for i with peek[i] only fps[i]. Values are lent: vals[i] points into the entry,
 * which stays (even once out of the cache) until a is released or reset. */
static size_t mem_get_multi(fecache_t *c, const str_t *keys, size_t n, arena_t *a, str_t *vals, bool *found,
                            const bool *peek, fecache_fp_t *fps)
{
	size_t hits = 0;
	int64_t now = c->validity_ms ? clock_now_ms() : 0;
	lease_t *l = arena_alloc(a, sizeof *l + n * sizeof(entry_t *));
	l->c = c;
	l->n = 0;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < n; i++) {
		entry_t *e = hmap_get(&c->map, keys[i]);
		found[i] = false;
		if (!e)
			continue;
		if (c->validity_ms && now - e->added_ms > c->validity_ms) {
			remove_entry(c, e);
			continue;
		}
		unlink_entry(c, e);
		push_front(c, e);
		if (fps)
			fps[i] = (fecache_fp_t){e->vlen, e->hash};
		if (peek && peek[i]) {
			vals[i] = (str_t){NULL, 0};
		} else {
			vals[i] = (str_t){e->data + e->klen, e->vlen};
			e->lent++;
			l->e[l->n++] = e;
		}
		found[i] = true;
		hits++;
	}
	if (l->n)
		c->leases++;
	publish(c);
	pthread_mutex_unlock(&c->mu);
	if (l->n)
		arena_on_release(a, lease_end, l);
	return hits;
}

static void mem_put(fecache_t *c, str_t key, const void *val, size_t n)
{
	if (c->max_bytes && key.n + n + ENTRY_OVERHEAD > c->max_bytes)
		return; /* larger than the whole cache */
	entry_t *e = xmalloc(sizeof *e + key.n + n);
	e->klen = key.n;
	e->vlen = n;
	e->added_ms = clock_now_ms();
	memcpy(e->data, key.p, key.n);
	memcpy(e->data + key.n, val, n);
	e->hash = fecache_fingerprint(val, n).hash;
	e->lent = 0;
	e->gone = false;
	size_t cost = entry_cost(e);
	pthread_mutex_lock(&c->mu);
	entry_t *old = hmap_get(&c->map, key);
	if (old)
		remove_entry(c, old);
	while (c->tail && ((c->max_bytes && c->bytes + cost > c->max_bytes) ||
	                   (c->max_items && c->items + 1 > c->max_items))) {
		remove_entry(c, c->tail);
		metric_inc(c->m_evicted);
	}
	hmap_put(&c->map, (str_t){e->data, e->klen}, e);
	push_front(c, e);
	c->bytes += cost;
	c->items++;
	metric_inc(c->m_added);
	publish(c);
	pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ API */

fecache_fp_t fecache_fingerprint(const void *p, size_t n)
{
	return (fecache_fp_t){n, XXH3_64bits(p, n)};
}

static size_t get_multi(fecache_t *c, const str_t *keys, size_t n, arena_t *a, str_t *vals, bool *found,
                        const bool *peek, fecache_fp_t *fps, bool count)
{
	if (!n)
		return 0;
	uint64_t t0 = clock_mono_ns();
	size_t hits;
	if (c->mc) {
		hits = memcache_get_multi(c->mc, keys, n, a, vals, found);
		for (size_t i = 0; fps && i < n; i++)
			if (found[i])
				fps[i] = fecache_fingerprint(vals[i].p, vals[i].n);
	} else {
		hits = mem_get_multi(c, keys, n, a, vals, found, peek, fps);
	}
	if (count) {
		metric_observe(c->dur_fetch, clock_since_s(t0));
		metric_add(c->fetched, (double)n);
		metric_add(c->hits, (double)hits);
	}
	return hits;
}

size_t fecache_get_multi(fecache_t *c, const str_t *keys, size_t n, arena_t *a, str_t *vals, bool *found)
{
	return get_multi(c, keys, n, a, vals, found, NULL, NULL, true);
}

size_t fecache_get_multi_fp(fecache_t *c, const str_t *keys, size_t n, const bool *peek, arena_t *a,
                            str_t *vals, bool *found, fecache_fp_t *fps)
{
	return get_multi(c, keys, n, a, vals, found, peek, fps, true);
}

size_t fecache_get_values(fecache_t *c, const str_t *keys, size_t n, arena_t *a, str_t *vals, bool *found)
{
	return get_multi(c, keys, n, a, vals, found, NULL, NULL, false);
}

void fecache_put(fecache_t *c, str_t key, const void *val, size_t n)
{
	uint64_t t0 = clock_mono_ns();
	if (c->mc)
		memcache_set_async(c->mc, key, val, n, c->exptime_s);
	else
		mem_put(c, key, val, n);
	metric_observe(c->dur_store, clock_since_s(t0));
}

void fecache_flush(fecache_t *c)
{
	if (c && c->mc)
		memcache_wait_async(c->mc);
}

size_t fecache_bytes(fecache_t *c)
{
	if (!c || c->mc)
		return 0;
	pthread_mutex_lock(&c->mu);
	size_t n = c->bytes;
	pthread_mutex_unlock(&c->mu);
	return n;
}

size_t fecache_items(fecache_t *c)
{
	if (!c || c->mc)
		return 0;
	pthread_mutex_lock(&c->mu);
	size_t n = c->items;
	pthread_mutex_unlock(&c->mu);
	return n;
}
