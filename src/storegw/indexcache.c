/*
 * indexcache.c — the index cache: a size-bounded LRU of postings and series bytes, or memcached
 * (see indexcache.h).
 */
#include "storegw/indexcache.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/duration.h"
#include "base/flags.h"
#include "base/hmap.h"
#include "base/metrics.h"
#include "base/varint.h"

typedef struct ic_entry ic_entry_t;
struct ic_entry {
	ic_entry_t *prev, *next; /* LRU list, most recent at head */
	indexcache_item_t type;
	size_t klen, vlen;
	char data[]; /* key bytes (type, block, 0, key) then value */
};

struct indexcache {
	pthread_mutex_t mu;
	hmap_t map; /* key -> entry */
	ic_entry_t *head, *tail;
	size_t bytes, items, max_size, max_item;
	unsigned enabled; /* bit per item type */
	memcache_t *mc;   /* MEMCACHED backend when set (the LRU above is then unused) */
	int64_t ttl_s;
};

static const char *const type_names[] = {"Postings", "Series"};
/* Resolved once: metric_with builds a key and takes the family's lock, too slow for every lookup. */
static metric_child_t *c_req[2], *c_hit[2], *c_added[2], *c_evicted[2], *c_items, *c_size;

static void init_metrics(void)
{
	metric_t *m_req, *m_hit, *m_added, *m_evicted, *m_items, *m_size;
	m_req = metrics_counter("thanos_store_index_cache_requests_total", "Total number of items requests to the cache.",
				"item_type");
	m_hit = metrics_counter("thanos_store_index_cache_hits_total", "Total number of items requests to the cache that were a hit.",
				"item_type");
	m_added = metrics_counter("thanos_store_index_cache_items_added_total",
				  "Total number of items that were added to the index cache.", "item_type");
	m_items = metrics_gauge("thanos_store_index_cache_items", "Current number of items in the index cache.", NULL);
	m_size = metrics_gauge("thanos_store_index_cache_total_size_bytes", "Current byte size of items in the index cache.",
			       NULL);
	m_evicted = metrics_counter("thanos_store_index_cache_items_evicted_total",
				    "Total number of items that were evicted from the index cache.", "item_type");
	for (int t = 0; t < 2; t++) {
		c_req[t] = metric_with(m_req, type_names[t]);
		c_hit[t] = metric_with(m_hit, type_names[t]);
		c_added[t] = metric_with(m_added, type_names[t]);
		c_evicted[t] = metric_with(m_evicted, type_names[t]);
	}
	c_items = metric_with(m_items);
	c_size = metric_with(m_size);
}

indexcache_t *indexcache_new(size_t max_size, size_t max_item_size)
{
	indexcache_t *c = xcalloc(1, sizeof *c);
	pthread_mutex_init(&c->mu, NULL);
	hmap_init(&c->map, 1024);
	c->max_size = max_size;
	c->max_item = max_item_size ? max_item_size : max_size / 2;
	c->enabled = ~0u;
	init_metrics();
	return c;
}

bool indexcache_remote(const indexcache_t *c)
{
	return c && c->mc;
}

static bool enabled(const indexcache_t *c, indexcache_item_t type)
{
	return c && (c->enabled & (1u << type)) && (c->mc || c->max_size);
}

void indexcache_free(indexcache_t *c)
{
	if (!c)
		return;
	for (ic_entry_t *e = c->head, *n; e; e = n) {
		n = e->next;
		free(e);
	}
	hmap_release(&c->map);
	pthread_mutex_destroy(&c->mu);
	memcache_free(c->mc);
	free(c);
}

/* Composite key in buf: type byte, block, NUL, key. */
static str_t make_key(buf_t *kb, const char *block, indexcache_item_t type, str_t key)
{
	buf_reset(kb);
	buf_putc(kb, (char)('0' + type));
	buf_puts(kb, block);
	buf_putc(kb, '\0');
	buf_append_str(kb, key);
	return buf_str(kb);
}

static void unlink_entry(indexcache_t *c, ic_entry_t *e)
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

static void push_front(indexcache_t *c, ic_entry_t *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static size_t entry_cost(const ic_entry_t *e)
{
	return sizeof *e + e->klen + e->vlen + 32; /* + hash slot */
}

static void remove_entry(indexcache_t *c, ic_entry_t *e, bool evicted)
{
	hmap_del(&c->map, str_from(e->data, e->klen));
	unlink_entry(c, e);
	c->bytes -= entry_cost(e);
	c->items--;
	if (evicted)
		metric_inc(c_evicted[e->type]);
	free(e);
}

static size_t mc_get_multi(indexcache_t *c, const char *block, indexcache_item_t type, const str_t *keys, size_t n,
			   arena_t *a, str_t *vals, bool *hit);
static void mc_put(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, const void *val, size_t n);

/* In-memory lookups of n keys of one block under one acquisition of the lock. */
static size_t lru_get_multi(indexcache_t *c, const char *block, indexcache_item_t type, const str_t *keys, size_t n,
			    arena_t *a, str_t *vals, bool *hit)
{
	buf_t kb = BUF_INIT;
	size_t hits = 0;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < n; i++) {
		ic_entry_t *e = hmap_get(&c->map, make_key(&kb, block, type, keys[i]));
		hit[i] = e != NULL;
		if (!e)
			continue;
		unlink_entry(c, e);
		push_front(c, e);
		char *v = arena_alloc(a, e->vlen + 1);
		memcpy(v, e->data + e->klen, e->vlen);
		vals[i] = str_from(v, e->vlen);
		hits++;
	}
	pthread_mutex_unlock(&c->mu);
	buf_release(&kb);
	return hits;
}

bool indexcache_get(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, arena_t *a, str_t *out)
{
	bool hit;
	return indexcache_get_multi(c, block, type, &key, 1, a, out, &hit) == 1;
}

size_t indexcache_get_multi(indexcache_t *c, const char *block, indexcache_item_t type, const str_t *keys, size_t n,
			    arena_t *a, str_t *vals, bool *hit)
{
	for (size_t i = 0; i < n; i++)
		hit[i] = false;
	if (!c)
		return 0;
	metric_add(c_req[type], (double)n);
	if (!enabled(c, type))
		return 0;
	size_t hits = c->mc ? mc_get_multi(c, block, type, keys, n, a, vals, hit)
			    : lru_get_multi(c, block, type, keys, n, a, vals, hit);
	metric_add(c_hit[type], (double)hits);
	return hits;
}

void indexcache_put(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, const void *val, size_t n)
{
	if (!enabled(c, type))
		return;
	if (c->mc)
		return mc_put(c, block, type, key, val, n);
	buf_t kb = BUF_INIT;
	str_t k = make_key(&kb, block, type, key);
	ic_entry_t *e = xmalloc(st_add(sizeof *e, st_add(k.n, n)));
	e->type = type;
	e->klen = k.n;
	e->vlen = n;
	memcpy(e->data, k.p, k.n);
	memcpy(e->data + k.n, val, n);
	buf_release(&kb);
	size_t cost = entry_cost(e);
	if (cost > c->max_item || cost > c->max_size) {
		free(e);
		return;
	}
	pthread_mutex_lock(&c->mu);
	ic_entry_t *old = hmap_get(&c->map, str_from(e->data, e->klen));
	if (old)
		remove_entry(c, old, false);
	while (c->bytes + cost > c->max_size && c->tail)
		remove_entry(c, c->tail, true);
	hmap_put(&c->map, str_from(e->data, e->klen), e);
	push_front(c, e);
	c->bytes += cost;
	c->items++;
	metric_set(c_items, (double)c->items);
	metric_set(c_size, (double)c->bytes);
	pthread_mutex_unlock(&c->mu);
	metric_inc(c_added[type]);
}

void indexcache_drop_block(indexcache_t *c, const char *block)
{
	if (!c || c->mc) /* memcached entries are shared with other stores and expire by ttl */
		return;
	size_t bl = strlen(block);
	pthread_mutex_lock(&c->mu);
	for (ic_entry_t *e = c->head, *n; e; e = n) {
		n = e->next;
		if (e->klen > bl + 1 && memcmp(e->data + 1, block, bl) == 0 && e->data[1 + bl] == '\0')
			remove_entry(c, e, false);
	}
	pthread_mutex_unlock(&c->mu);
}

size_t indexcache_bytes(indexcache_t *c)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->bytes;
	pthread_mutex_unlock(&c->mu);
	return n;
}

size_t indexcache_items(indexcache_t *c)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->items;
	pthread_mutex_unlock(&c->mu);
	return n;
}

void indexcache_flush(indexcache_t *c)
{
	if (c && c->mc)
		memcache_wait_async(c->mc);
}

/* ---- memcached backend ---- */

#define MC_VALUE_VERSION 1

/* "strata:P:<ulid>:<16 hex>" / "strata:S:<ulid>:<id>" into kb. */
static str_t mc_key(buf_t *kb, const char *block, indexcache_item_t type, str_t key)
{
	buf_reset(kb);
	if (type == INDEXCACHE_SERIES && key.n == 4) {
		uint32_t id;
		memcpy(&id, key.p, 4);
		buf_printf(kb, "strata:S:%s:%u", block, id);
	} else {
		buf_printf(kb, "strata:%c:%s:%016llx", type == INDEXCACHE_SERIES ? 'S' : 'P', block,
			   (unsigned long long)hash_bytes(key.p, key.n));
	}
	return buf_str(kb);
}

static uint32_t mc_crc(str_t key, const void *val, size_t n)
{
	return crc32c(crc32c(0, key.p, key.n), val, n);
}

static void mc_put(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, const void *val, size_t n)
{
	buf_t kb = BUF_INIT, vb = BUF_INIT;
	str_t k = mc_key(&kb, block, type, key);
	buf_putc(&vb, MC_VALUE_VERSION);
	buf_put_uvarint(&vb, key.n);
	buf_append_str(&vb, key);
	be32_put((uint8_t *)buf_extend(&vb, 4), mc_crc(key, val, n));
	buf_append(&vb, val, n);
	if (memcache_set_async(c->mc, k, vb.p, vb.n, c->ttl_s))
		metric_inc(c_added[type]);
	buf_release(&vb);
	buf_release(&kb);
}

/* Check a memcached value against the key it should hold; the payload on success. */
static bool mc_unwrap(str_t v, str_t key, str_t *payload)
{
	const uint8_t *p = (const uint8_t *)v.p, *end = p + v.n;
	if (v.n < 1 || p[0] != MC_VALUE_VERSION)
		return false;
	p++;
	uint64_t kl;
	int used = uvarint_get(p, end, &kl);
	if (used <= 0 || kl != key.n || (size_t)(end - p - used) < kl + 4)
		return false;
	p += used;
	if (memcmp(p, key.p, key.n) != 0)
		return false;
	p += kl;
	uint32_t crc = be32_get(p);
	p += 4;
	*payload = str_from((const char *)p, (size_t)(end - p));
	return mc_crc(key, payload->p, payload->n) == crc;
}

static size_t mc_get_multi(indexcache_t *c, const char *block, indexcache_item_t type, const str_t *keys, size_t n,
			   arena_t *a, str_t *vals, bool *hit)
{
	str_t *mk = xcalloc(n + 1, sizeof *mk);
	buf_t kb = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		str_t k = mc_key(&kb, block, type, keys[i]);
		mk[i] = str_from(arena_memdup(a, k.p, k.n), k.n);
	}
	buf_release(&kb);
	memcache_get_multi(c->mc, mk, n, a, vals, hit);
	size_t hits = 0;
	for (size_t i = 0; i < n; i++) {
		if (hit[i] && !mc_unwrap(vals[i], keys[i], &vals[i]))
			hit[i] = false;
		hits += hit[i];
	}
	free(mk);
	return hits;
}

/* ---- config ---- */

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int at(err_t *err, const char *what, yaml_node_t *n, const char *msg, const char *key)
{
	return err_set(err, ERR_INVALID, "%s:%zu:%zu: %s%s%s", what, n ? n->start_mark.line + 1 : 1,
		       n ? n->start_mark.column + 1 : 1, msg, key ? ": " : "", key ? key : "");
}

void indexcache_config_init(indexcache_config_t *c, size_t max_size, size_t max_item_size)
{
	*c = (indexcache_config_t){.backend = INDEXCACHE_IN_MEMORY, .max_size = max_size, .max_item_size = max_item_size};
	memcache_config_init(&c->memcached, "index-cache");
}

void indexcache_config_release(indexcache_config_t *c)
{
	memcache_config_release(&c->memcached);
}

static int parse_inmemory(yaml_document_t *doc, yaml_node_t *cfg, const char *what, indexcache_config_t *c, err_t *err)
{
	int rc = 0;
	for (yaml_node_pair_t *pr = cfg->data.mapping.pairs.start; pr < cfg->data.mapping.pairs.top && !rc; pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key), *v = yaml_document_get_node(doc, pr->value);
		const char *ks = scalar(k), *vs = scalar(v);
		int64_t n;
		err_t e2 = {0};
		if (!ks || (strcmp(ks, "max_size") != 0 && strcmp(ks, "max_item_size") != 0))
			rc = at(err, what, k, "unknown key", ks ? ks : "?");
		else if (!vs || bytes_parse(vs, &n, &e2) || n < 0)
			rc = at(err, what, v, "bad size", vs ? vs : "?");
		else if (strcmp(ks, "max_size") == 0)
			c->max_size = (size_t)n;
		else
			c->max_item_size = (size_t)n;
	}
	return rc;
}

int indexcache_config_parse(const char *yaml, size_t len, const char *what, indexcache_config_t *c, err_t *err)
{
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p))
		die("indexcache: yaml_parser_initialize failed");
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&p, &doc)) {
		int rc = err_set(err, ERR_INVALID, "%s:%zu:%zu: %s", what, p.problem_mark.line + 1,
				 p.problem_mark.column + 1, p.problem ? p.problem : "YAML syntax error");
		yaml_parser_delete(&p);
		return rc;
	}
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	const char *type = NULL;
	yaml_node_t *cfg = NULL;
	if (!root || root->type != YAML_MAPPING_NODE) {
		rc = at(err, what, root, "expected a mapping with type and config", NULL);
		goto out;
	}
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top && !rc; pr++) {
		yaml_node_t *k = yaml_document_get_node(&doc, pr->key), *v = yaml_document_get_node(&doc, pr->value);
		const char *ks = scalar(k), *vs = scalar(v);
		if (ks && strcmp(ks, "type") == 0 && vs) {
			type = vs;
		} else if (ks && strcmp(ks, "config") == 0) {
			cfg = v;
		} else if (ks && strcmp(ks, "ttl") == 0) {
			err_t e2 = {0};
			if (!vs || duration_parse(str_c(vs), &c->ttl_ms, &e2) || c->ttl_ms < 0)
				rc = at(err, what, v, "ttl: bad duration", vs ? vs : "?");
		} else if (ks && strcmp(ks, "enabled_items") == 0) {
			if (v->type == YAML_SCALAR_NODE && !*vs)
				continue; /* enabled_items: (empty) = all */
			if (v->type != YAML_SEQUENCE_NODE) {
				rc = at(err, what, v, "enabled_items must be a list", NULL);
				break;
			}
			c->enabled_items = 0;
			bool any = false;
			for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top && !rc; it++) {
				yaml_node_t *e = yaml_document_get_node(&doc, *it);
				const char *es = scalar(e);
				any = true;
				if (es && strcmp(es, "Postings") == 0)
					c->enabled_items |= 1u << INDEXCACHE_POSTINGS;
				else if (es && strcmp(es, "Series") == 0)
					c->enabled_items |= 1u << INDEXCACHE_SERIES;
				else if (es && strcmp(es, "ExpandedPostings") == 0)
					c->enabled_items |= 1u << 8; /* Thanos's expanded-postings item; Strata has none */
				else
					rc = at(err, what, e, "enabled_items: unknown item type (Postings, Series, ExpandedPostings)",
						es ? es : "?");
			}
			if (!any)
				c->enabled_items = 0;
		} else {
			rc = at(err, what, k, "unknown key", ks ? ks : "?");
		}
	}
	if (rc)
		goto out;
	if (!type) {
		rc = at(err, what, root, "missing type", NULL);
		goto out;
	}
	bool empty_cfg = !cfg || (cfg->type == YAML_SCALAR_NODE && !*scalar(cfg));
	if (!empty_cfg && cfg->type != YAML_MAPPING_NODE) {
		rc = at(err, what, cfg, "config must be a mapping", NULL);
		goto out;
	}
	if (strcasecmp(type, "IN-MEMORY") == 0) {
		c->backend = INDEXCACHE_IN_MEMORY;
		if (!empty_cfg)
			rc = parse_inmemory(&doc, cfg, what, c, err);
	} else if (strcasecmp(type, "MEMCACHED") == 0) {
		c->backend = INDEXCACHE_MEMCACHED;
		if (empty_cfg)
			rc = at(err, what, root, "MEMCACHED: config with addresses is required", NULL);
		else
			rc = memcache_config_parse_yaml(&doc, cfg, what, NULL, &c->memcached, err);
	} else {
		rc = at(err, what, root, "unsupported index cache type (IN-MEMORY or MEMCACHED)", type);
	}
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return rc;
}

int indexcache_parse_config(const char *yaml, size_t len, const char *what, size_t *max_size, size_t *max_item_size,
			    err_t *err)
{
	indexcache_config_t c;
	indexcache_config_init(&c, *max_size, *max_item_size);
	int rc = indexcache_config_parse(yaml, len, what, &c, err);
	if (!rc && c.backend != INDEXCACHE_IN_MEMORY)
		rc = err_set(err, ERR_INVALID, "%s: only an IN-MEMORY index cache is accepted here", what);
	if (!rc) {
		*max_size = c.max_size;
		*max_item_size = c.max_item_size;
	}
	indexcache_config_release(&c);
	return rc;
}

int indexcache_new_from_config(indexcache_t **out, const indexcache_config_t *c, err_t *err)
{
	*out = NULL;
	indexcache_t *ic;
	if (c->backend == INDEXCACHE_MEMCACHED) {
		memcache_t *mc;
		int rc = memcache_new(&mc, &c->memcached, err);
		if (rc)
			return rc;
		ic = indexcache_new(0, 0);
		ic->mc = mc;
		ic->ttl_s = (c->ttl_ms ? c->ttl_ms : 24 * 3600 * 1000) / 1000;
		if (!ic->ttl_s)
			ic->ttl_s = 1; /* a sub-second ttl would mean "never expires" to memcached */
	} else {
		ic = indexcache_new(c->max_size, c->max_item_size);
	}
	if (c->enabled_items)
		ic->enabled = c->enabled_items;
	*out = ic;
	return 0;
}
