/*
 * memcache.h — a memcached client over the classic text protocol, for shared caches (the store
 * gateway's index cache; later the query frontend's results cache).
 *
 *     memcache_config_t cfg;
 *     memcache_config_init(&cfg, "index-cache");
 *     memcache_config_add_address(&cfg, "127.0.0.1:11211");
 *     memcache_t *mc;
 *     if (memcache_new(&mc, &cfg, &err)) ...;           // cfg may be released afterwards
 *     memcache_get_multi(mc, keys, n, arena, vals, found);
 *     memcache_set_async(mc, key, val, len, 3600);
 *     memcache_free(mc);
 *
 * Servers: `addresses` are "host:port" (resolved once with getaddrinfo, first address) or
 * "dns+host:port" (every A/AAAA address is a server, re-resolved every dns_update_interval).
 * "dnssrv+"/"dnssrvnoa+" are rejected (ERR_INVALID). The resolved list is sorted by address and each
 * key goes to server jump_hash(xxhash64(key), nservers) (Lamping & Veach), as Thanos does.
 *
 * A cache never fails its caller: every network problem (refused, reset, timeout, garbage reply) is
 * counted in thanos_memcached_operation_failures_total{name,operation,reason} and the affected keys
 * are misses; sets are fire-and-forget. Every exchange is bounded by `timeout` (connect included).
 *
 * Gets: memcache_get_multi groups keys by server, splits each group into batches of at most
 * max_get_multi_batch_size keys (0 = one batch per server), sends one `get k1 k2 ...` per batch and
 * runs up to max_get_multi_concurrency batches at once on separate connections, multiplexed with
 * poll() in the calling thread (no extra threads).
 * Sets: memcache_set_async queues a copy; max_async_concurrency background threads send
 * `set <key> 0 <exptime> <bytes>` and read the reply. A full queue (max_async_buffer_size) or a value
 * over max_item_size drops the set and counts it in thanos_memcached_operation_skipped_total
 * {reason="async-buffer-full"|"max-item-size"}; a set never blocks.
 * Connections: at most max_idle_connections idle sockets are kept per server; a socket that saw any
 * error is closed, never reused.
 * Keys: 1..250 bytes, no space or control characters (memcached's rule); others are skipped with
 * reason "malformed-key".
 *
 * Metrics (label `name` = config name): thanos_memcached_operations_total{operation},
 * thanos_memcached_operation_failures_total{operation,reason} (reason: timeout, malformed-key,
 * server-error, network-error, other), thanos_memcached_operation_skipped_total{operation,reason},
 * thanos_memcached_operation_duration_seconds{operation} (histogram). operation: getmulti, set.
 *
 * Thread-safe: any number of threads may call get/set concurrently. Calls block for at most `timeout`;
 * do not call memcache_get_multi on an event-loop thread.
 */
#ifndef STRATA_NET_MEMCACHE_H
#define STRATA_NET_MEMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"

#define MEMCACHE_MAX_KEY 250

typedef struct memcache_config {
	char **addresses; /* owned copies */
	size_t naddresses;
	char *name;                     /* metrics label `name`; owned copy */
	int64_t timeout_ms;             /* 500ms */
	int max_idle_connections;       /* per server; 100 */
	int max_async_concurrency;      /* set threads; 10 (at most 64 are started) */
	int max_async_buffer_size;      /* queued sets; 10000 */
	int max_get_multi_concurrency;  /* batches in flight per get_multi; 100 */
	int max_get_multi_batch_size;   /* keys per `get`; 0 = unlimited */
	size_t max_item_size;           /* bytes; 1 MiB; 0 = unlimited */
	int64_t dns_update_interval_ms; /* 10s */
} memcache_config_t;

/* Thanos's defaults; name is copied. */
void memcache_config_init(memcache_config_t *c, const char *name);
void memcache_config_release(memcache_config_t *c);
void memcache_config_add_address(memcache_config_t *c, const char *addr);
/* Set one scalar option by its Thanos YAML key (timeout, max_idle_connections, max_async_concurrency,
 * max_async_buffer_size, max_get_multi_concurrency, max_get_multi_batch_size, max_item_size,
 * dns_provider_update_interval; auto_discovery must be false; set_async_circuit_breaker_config is
 * not a scalar and is handled by the caller). Returns ERR_NOT_FOUND for a key it does not know (the
 * caller reports it with its position) and ERR_INVALID for a bad value (message names key and value). */
int memcache_config_set(memcache_config_t *c, const char *key, const char *value, err_t *err);

/* Apply the keys of a MEMCACHED `config:` mapping node (Thanos YAML: addresses, the scalar options of
 * memcache_config_set, set_async_circuit_breaker_config with enabled: false only, auto_discovery: false).
 * Keys listed in skip (NULL-terminated, may be NULL) are left to the caller. At least one address is
 * required. Errors are ERR_INVALID "<what>:<line>:<column>: <why>". */
int memcache_config_parse_yaml(yaml_document_t *doc, yaml_node_t *cfg, const char *what,
                               const char *const *skip, memcache_config_t *mc, err_t *err);

typedef struct memcache memcache_t;

/* Validates the config (at least one address, no dnssrv, positive sizes) and resolves the addresses.
 * A plain address that does not resolve is ERR_INVALID; a dns+ name that does not resolve yet only
 * logs a warning (it is retried every dns_update_interval). Starts the set threads. */
int memcache_new(memcache_t **out, const memcache_config_t *cfg, err_t *err);
/* Stops the threads (queued sets not yet sent are dropped) and closes every socket. No get or set
 * may be in flight. NULL ok. */
void memcache_free(memcache_t *m);

/* Look up n keys. For each hit found[i] = true and vals[i] = a copy of the value in a; misses and
 * failures give found[i] = false. Returns the number of hits. Never fails. */
size_t memcache_get_multi(memcache_t *m, const str_t *keys, size_t n, arena_t *a, str_t *vals, bool *found);

/* Queue a set (key and value are copied). exptime: memcached exptime in seconds (0 = never expires;
 * more than 30 days is sent as an absolute Unix time). Returns false if the set was skipped. */
bool memcache_set_async(memcache_t *m, str_t key, const void *val, size_t n, int64_t exptime_s);
/* Blocking set, for tests and tools: 0, or ERR_INVALID (bad key / too big), ERR_UNAVAILABLE (network,
 * no server), ERR_TIMEOUT, ERR_CORRUPT (unexpected reply). */
int memcache_set(memcache_t *m, str_t key, const void *val, size_t n, int64_t exptime_s, err_t *err);
/* Wait until every queued set has been sent (or failed). For tests and shutdown. */
void memcache_wait_async(memcache_t *m);

/* Servers currently in the list (after DNS resolution). */
size_t memcache_servers(memcache_t *m);
/* Which server index [0, nbuckets) a key maps to: jump_hash(xxhash64(key), nbuckets). */
int memcache_jump_hash(uint64_t key, int nbuckets);

#endif
