/*
 * hashring.h — which receivers hold a series: Thanos's hashring file and its two placement
 * algorithms, bit for bit (reference thanos.md §8.3, §8.4), so a mixed fleet of Thanos and Strata
 * receivers agrees on where every series lives.
 *
 * The file (--receive.hashrings-file, or --receive.hashrings inline) is a JSON array of rings:
 *   [{"hashring": "name", "tenants": ["t1", "team-*"], "tenant_matcher_type": "exact"|"glob",
 *     "algorithm": "hashmod"|"ketama", "external_labels": {"k": "v"},
 *     "endpoints": ["host:10901", {"address": "host:10901", "az": "zone-a", "capnproto_address": ...}]}]
 * A tenant's ring: the first ring listing it exactly (exact matcher type), else the first whose glob
 * pattern matches it (glob matcher type; Go filepath.Match syntax, the same as fnmatch here since
 * tenants have no '/'), else the first ring without tenants (the default ring); none is an error.
 *
 * Series hash: xxhash64 over tenant 0xFF, then name 0xFF value 0xFF for each label in the order sent.
 *   hashmod: endpoints sorted by address; replica n of a series lives on endpoints[(hash + n) % N];
 *            AZs are refused.
 *   ketama:  1000 sections per endpoint at xxhash64("<address>:<i>"), i = 1..1000, sorted by hash;
 *            each section lists RF distinct endpoints found walking clockwise from it, skipping an
 *            endpoint whose AZ already holds more of the section's replicas than the least used AZ
 *            (when there is more than one AZ); replica n of a series is replica n of the first
 *            section whose hash is >= the series hash (wrapping to the first). Needs N >= RF.
 * Shuffle sharding (shuffle_sharding_config) is refused with an error: it needs Go's math/rand
 * generator reproduced exactly and is not implemented.
 *
 * A hashrings_t is immutable once parsed (shared by any number of threads).
 */
#ifndef STRATA_RECEIVE_HASHRING_H
#define STRATA_RECEIVE_HASHRING_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"
#include "model/labels.h"

typedef enum hashring_algo { HASHRING_HASHMOD, HASHRING_KETAMA } hashring_algo_t;

typedef struct hashring hashring_t;
typedef struct hashrings hashrings_t;

#define HASHRING_KETAMA_SECTIONS 1000

/* "hashmod" / "ketama" (also "" = hashmod, as Thanos's default); -1 for anything else. */
int hashring_algo_parse(const char *s);

/* Parse the JSON config. default_algo applies to rings without "algorithm"; rf is the replication
 * factor the ketama rings precompute. ERR_INVALID with what and where. what names the source. */
int hashrings_parse(const char *json, size_t n, const char *what, hashring_algo_t default_algo, uint64_t rf,
                    hashrings_t **out, err_t *err);
void hashrings_free(hashrings_t *h);
size_t hashrings_count(const hashrings_t *h);
const hashring_t *hashrings_at(const hashrings_t *h, size_t i);
/* The ring for tenant, or NULL (err says no ring matches). */
const hashring_t *hashrings_for_tenant(const hashrings_t *h, str_t tenant, err_t *err);
/* Whether address is an endpoint of any ring. */
bool hashrings_has_endpoint(const hashrings_t *h, const char *address);
/* Total endpoints over the rings (with repeats) and tenants listed (for metrics). */
size_t hashrings_num_endpoints(const hashrings_t *h);
size_t hashrings_num_tenants(const hashrings_t *h);

/* Build one ring directly (tests, benchmarks): addresses[i] with azs[i] (azs may be NULL). */
int hashring_new(hashring_algo_t algo, const char *const *addresses, const char *const *azs, size_t n,
                 uint64_t rf, hashring_t **out, err_t *err);
void hashring_free(hashring_t *r);

const char *hashring_name(const hashring_t *r);
hashring_algo_t hashring_algo(const hashring_t *r);
size_t hashring_len(const hashring_t *r);
size_t hashring_num_tenants(const hashring_t *r);
/* Endpoint i's address (hashmod: in address order; ketama: in file order). */
const char *hashring_address(const hashring_t *r, size_t i);
/* The ring's external_labels (sorted; empty if none). */
const labels_t *hashring_external_labels(const hashring_t *r);

uint64_t hashring_series_hash(str_t tenant, const labels_t *ls);
/* Index of the endpoint holding replica n (0-based) of the series with this hash. ERR_INVALID
 * ("insufficient nodes") when n >= the number of endpoints, or (ketama) n >= the RF it was built for. */
int hashring_get_n(const hashring_t *r, uint64_t hash, uint64_t n, size_t *endpoint, err_t *err);

#endif
