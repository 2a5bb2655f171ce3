/*
 * indexcache.c — size-bounded LRU of postings and series bytes (see indexcache.h).
 */
#include "store/indexcache.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/flags.h"
#include "base/hmap.h"
#include "base/metrics.h"

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
};

static metric_t *m_req, *m_hit, *m_added, *m_evicted, *m_items, *m_size;
static const char *const type_names[] = {"Postings", "Series"};

static void init_metrics(void)
{
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
}

indexcache_t *indexcache_new(size_t max_size, size_t max_item_size)
{
	indexcache_t *c = xcalloc(1, sizeof *c);
	pthread_mutex_init(&c->mu, NULL);
	hmap_init(&c->map, 1024);
	c->max_size = max_size;
	c->max_item = max_item_size ? max_item_size : max_size / 2;
	init_metrics();
	return c;
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
		metric_inc(metric_with(m_evicted, type_names[e->type]));
	free(e);
}

bool indexcache_get(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, arena_t *a, str_t *out)
{
	metric_inc(metric_with(m_req, type_names[type]));
	if (!c || !c->max_size)
		return false;
	buf_t kb = BUF_INIT;
	str_t k = make_key(&kb, block, type, key);
	bool hit = false;
	pthread_mutex_lock(&c->mu);
	ic_entry_t *e = hmap_get(&c->map, k);
	if (e) {
		unlink_entry(c, e);
		push_front(c, e);
		char *v = arena_alloc(a, e->vlen + 1);
		memcpy(v, e->data + e->klen, e->vlen);
		*out = str_from(v, e->vlen);
		hit = true;
	}
	pthread_mutex_unlock(&c->mu);
	buf_release(&kb);
	if (hit)
		metric_inc(metric_with(m_hit, type_names[type]));
	return hit;
}

void indexcache_put(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, const void *val, size_t n)
{
	if (!c || !c->max_size)
		return;
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
	metric_set(metric_with(m_items), (double)c->items);
	metric_set(metric_with(m_size), (double)c->bytes);
	pthread_mutex_unlock(&c->mu);
	metric_inc(metric_with(m_added, type_names[type]));
}

void indexcache_drop_block(indexcache_t *c, const char *block)
{
	if (!c)
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

int indexcache_parse_config(const char *yaml, size_t len, const char *what, size_t *max_size, size_t *max_item_size,
			    err_t *err)
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
		const char *ks = scalar(k);
		if (ks && strcmp(ks, "type") == 0 && scalar(v))
			type = scalar(v);
		else if (ks && strcmp(ks, "config") == 0)
			cfg = v;
		else if (ks && (strcmp(ks, "enabled_items") == 0 || strcmp(ks, "ttl") == 0))
			; /* accepted; every item type is cached */
		else
			rc = at(err, what, k, "unknown key", ks ? ks : "?");
	}
	if (rc)
		goto out;
	if (!type || strcasecmp(type, "IN-MEMORY") != 0) {
		rc = at(err, what, root, type ? "index cache type not supported yet (only IN-MEMORY)" : "missing type",
			type);
		goto out;
	}
	if (cfg && cfg->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *pr = cfg->data.mapping.pairs.start; pr < cfg->data.mapping.pairs.top && !rc; pr++) {
			yaml_node_t *k = yaml_document_get_node(&doc, pr->key), *v = yaml_document_get_node(&doc, pr->value);
			const char *ks = scalar(k), *vs = scalar(v);
			int64_t n;
			err_t e2 = {0};
			if (!ks || (strcmp(ks, "max_size") != 0 && strcmp(ks, "max_item_size") != 0)) {
				rc = at(err, what, k, "unknown key", ks ? ks : "?");
			} else if (!vs || bytes_parse(vs, &n, &e2) || n < 0) {
				rc = at(err, what, v, "bad size", vs ? vs : "?");
			} else if (strcmp(ks, "max_size") == 0) {
				*max_size = (size_t)n;
			} else {
				*max_item_size = (size_t)n;
			}
		}
	} else if (cfg && !(cfg->type == YAML_SCALAR_NODE && !*scalar(cfg))) {
		rc = at(err, what, cfg, "config must be a mapping", NULL);
	}
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return rc;
}
