/*
 * multitsdb.h — the receiver's tenants: one local TSDB (tsdb/db.h) per tenant under
 * <dir>/<tenant>/, created on the tenant's first write and reopened (WAL replayed) at start, each
 * served over the StoreAPI with external labels = the receiver's --label set + <tenant_label>=<tenant>
 * (reference thanos.md §8.7), and shipped to the bucket by its own shipper (source "receive").
 *
 * Housekeeping (one background thread): cut head blocks (tsdb/db.h rules), upload new blocks, delete
 * local blocks past retention that are in the bucket (or all past retention without a bucket); with
 * flush (shutdown) every head is cut completely first.
 * mtsdb_store() is one store_t over every tenant: each call fans out (store/proxy.h) over the tenants
 * present at that moment; Info has one label set per tenant.
 *
 * Thread-safe: lookups and writes from any thread, housekeeping from one.
 */
#ifndef STRATA_RECEIVE_MULTITSDB_H
#define STRATA_RECEIVE_MULTITSDB_H

#include <stdbool.h>

#include "base/err.h"
#include "model/labels.h"
#include "objstore/bucket.h"
#include "store/store.h"
#include "tsdb/db.h"

typedef struct mtsdb mtsdb_t;
typedef struct mtsdb_tenant mtsdb_tenant_t;

typedef struct mtsdb_opts {
	const char *dir;
	db_opts_t db;             /* per tenant (the tenant name goes in metrics_tenant) */
	const labels_t *ext;      /* --label, sorted */
	const char *tenant_label; /* e.g. tenant_id */
	bucket_t *bucket;         /* NULL: nothing is uploaded */
	int64_t retention_ms;     /* local blocks older than this are deleted (once uploaded); 0 = keep */
} mtsdb_opts_t;

/* Everything in opts is copied (the bucket is borrowed). */
mtsdb_t *mtsdb_new(const mtsdb_opts_t *opts);
/* More external labels for a tenant (its hashring's external_labels), asked once when its TSDB opens:
 * fn sets them on b (strings copied into b's arena); the tenant label is set after them. */
typedef void (*mtsdb_tenant_labels_fn)(void *arg, str_t tenant, labels_builder_t *b);
void mtsdb_set_tenant_labels(mtsdb_t *mt, mtsdb_tenant_labels_fn fn, void *arg);
/* Open every tenant directory already in dir (replaying WALs); logs each replay. */
int mtsdb_open_existing(mtsdb_t *mt, err_t *err);
/* Cut and upload everything (flush), then close every tenant; frees mt. */
int mtsdb_close(mtsdb_t *mt, bool flush, err_t *err);

/* A tenant name usable as a directory name: non-empty, no '/', not "." or "..", no NUL or control
 * characters, at most 255 bytes. */
bool mtsdb_tenant_valid(str_t name);
/* The tenant's TSDB, created (and its WAL replayed) on first use. ERR_INVALID for a bad name. */
int mtsdb_get(mtsdb_t *mt, str_t tenant, mtsdb_tenant_t **out, err_t *err);
head_t *mtsdb_tenant_head(mtsdb_tenant_t *t);
const char *mtsdb_tenant_name(const mtsdb_tenant_t *t);
size_t mtsdb_num_tenants(mtsdb_t *mt);

/* One pass of cutting, uploading and retention over every tenant (see above). Returns the first
 * error (others are logged); every tenant is visited either way. */
int mtsdb_housekeeping(mtsdb_t *mt, bool flush, err_t *err);

/* Every second or so: refresh every tenant's gauges (head series, min/max time, blocks) and write buffered
 * head chunks. */
void mtsdb_publish_metrics(mtsdb_t *mt);

/* StoreAPI over all tenants (owned by mt). */
store_t *mtsdb_store(mtsdb_t *mt);

#endif
