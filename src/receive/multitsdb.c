/*
 * multitsdb.c — per-tenant TSDBs: creation, reopening, housekeeping, the StoreAPI over all of them.
 */
#include "receive/multitsdb.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/vec.h"
#include "block/shipper.h"
#include "store/proxy.h"
#include "store/tsdbstore.h"

struct mtsdb_tenant {
	char *name;
	db_t *db;
	tsdb_store_t *store;
	shipper_t *shipper;
	arena_t arena; /* ext */
	labels_t ext;
};

struct mtsdb {
	store_t base;
	char *dir;
	db_opts_t dbo;
	arena_t arena; /* ext, tenant label */
	labels_t ext;
	str_t tenant_label;
	bucket_t *bucket;
	int64_t retention;
	mtsdb_tenant_labels_fn tenant_labels;
	void *tenant_labels_arg;
	pthread_rwlock_t mu; /* tenants */
	pthread_mutex_t create_mu;
	VEC(mtsdb_tenant_t *) tenants;
	hmap_t by_name;
};

bool mtsdb_tenant_valid(str_t name)
{
	if (!name.n || name.n > 255 || str_eq(name, STR(".")) || str_eq(name, STR("..")))
		return false;
	for (size_t i = 0; i < name.n; i++) {
		unsigned char c = (unsigned char)name.p[i];
		if (c == '/' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static mtsdb_tenant_t *find(mtsdb_t *mt, str_t name)
{
	pthread_rwlock_rdlock(&mt->mu);
	mtsdb_tenant_t *t = hmap_get(&mt->by_name, name);
	pthread_rwlock_unlock(&mt->mu);
	return t;
}

static int open_tenant(mtsdb_t *mt, str_t name, mtsdb_tenant_t **out, err_t *err)
{
	int rc = fileio_mkdirs(mt->dir, err);
	if (rc)
		return rc;
	mtsdb_tenant_t *t = xcalloc(1, sizeof *t);
	t->name = xstrndup(name.p, name.n);
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/%s", mt->dir, t->name);
	db_opts_t o = mt->dbo;
	o.head.metrics_tenant = t->name;
	head_replay_stats_t st;
	rc = db_open(&t->db, dir, &o, &st, err);
	if (rc) {
		free(t->name);
		free(t);
		return err_wrap(err, "tenant %.*s", (int)name.n, name.p);
	}
	char secs[32], series[32], samples[32];
	snprintf(secs, sizeof secs, "%.3f", st.seconds);
	snprintf(series, sizeof series, "%llu", (unsigned long long)st.series);
	snprintf(samples, sizeof samples, "%llu", (unsigned long long)st.samples);
	log_info("tenant TSDB opened", "tenant", t->name, "dir", dir, "wal_replay_seconds", secs, "series",
	         series, "samples", samples, "wal_repaired", st.wal_repaired ? "true" : "false");
	arena_init(&t->arena, 0);
	labels_builder_t b;
	labels_builder_init(&b, &t->arena, &mt->ext);
	if (mt->tenant_labels)
		mt->tenant_labels(mt->tenant_labels_arg, name, &b);
	labels_builder_set(&b, mt->tenant_label, str_from(arena_strdup(&t->arena, t->name), strlen(t->name)));
	t->ext = labels_builder_finish(&b);
	t->store = tsdb_store_new(t->name, t->db, &t->ext, "receive");
	if (mt->bucket) {
		shipper_config_t sc = {.dir = dir, .bucket = mt->bucket, .source = "receive"};
		t->shipper = shipper_new(&sc);
	}
	pthread_rwlock_wrlock(&mt->mu);
	VEC_PUSH(&mt->tenants, t);
	hmap_put(&mt->by_name, str_c(t->name), t);
	pthread_rwlock_unlock(&mt->mu);
	*out = t;
	return 0;
}

int mtsdb_get(mtsdb_t *mt, str_t tenant, mtsdb_tenant_t **out, err_t *err)
{
	mtsdb_tenant_t *t = find(mt, tenant);
	if (t) {
		*out = t;
		return 0;
	}
	if (!mtsdb_tenant_valid(tenant))
		return err_set(err, ERR_INVALID,
		               "invalid tenant name \"%.*s\": it must be usable as a directory name",
		               (int)(tenant.n > 100 ? 100 : tenant.n), tenant.p);
	pthread_mutex_lock(&mt->create_mu);
	int rc = 0;
	if (!(t = find(mt, tenant)))
		rc = open_tenant(mt, tenant, &t, err);
	pthread_mutex_unlock(&mt->create_mu);
	if (!rc)
		*out = t;
	return rc;
}

head_t *mtsdb_tenant_head(mtsdb_tenant_t *t)
{
	return db_head(t->db);
}

const char *mtsdb_tenant_name(const mtsdb_tenant_t *t)
{
	return t->name;
}

size_t mtsdb_num_tenants(mtsdb_t *mt)
{
	pthread_rwlock_rdlock(&mt->mu);
	size_t n = mt->tenants.n;
	pthread_rwlock_unlock(&mt->mu);
	return n;
}

int mtsdb_open_existing(mtsdb_t *mt, err_t *err)
{
	DIR *d = opendir(mt->dir);
	if (!d)
		return errno == ENOENT ? 0 : err_errno(err, "open %s", mt->dir);
	struct dirent *de;
	int rc = 0;
	while (!rc && (de = readdir(d)) != NULL) {
		str_t name = str_c(de->d_name);
		if (de->d_name[0] == '.' || !mtsdb_tenant_valid(name))
			continue;
		char p[4096];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", mt->dir, de->d_name);
		if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		mtsdb_tenant_t *t;
		rc = mtsdb_get(mt, name, &t, err);
	}
	closedir(d);
	return rc;
}

/* ---- housekeeping ---- */

typedef struct shipped {
	char **ulids;
	size_t n;
} shipped_t;

static bool is_shipped(void *arg, const char *ulid)
{
	shipped_t *s = arg;
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->ulids[i], ulid))
			return true;
	return false;
}

static int tenant_housekeeping(mtsdb_t *mt, mtsdb_tenant_t *t, bool flush, err_t *err)
{
	int nb;
	int rc = db_compact(t->db, flush, &nb, err);
	if (rc)
		return err_wrap(err, "tenant %s: cutting blocks", t->name);
	if (t->shipper) {
		shipper_stats_t st;
		if ((rc = shipper_sync(t->shipper, &t->ext, &st, err)) != 0)
			return err_wrap(err, "tenant %s: upload", t->name);
	}
	if (mt->retention > 0) {
		int64_t before = clock_now_ms() - mt->retention;
		int nd;
		if (t->shipper) {
			shipped_t s = {0};
			if ((rc = shipper_meta_read(db_dir(t->db), &s.ulids, &s.n, err)) != 0)
				return rc;
			rc = db_delete_blocks(t->db, before, is_shipped, &s, &nd, err);
			shipper_ulids_free(s.ulids, s.n);
		} else {
			rc = db_delete_blocks(t->db, before, NULL, NULL, &nd, err);
		}
	}
	return rc;
}

int mtsdb_housekeeping(mtsdb_t *mt, bool flush, err_t *err)
{
	pthread_rwlock_rdlock(&mt->mu);
	size_t n = mt->tenants.n;
	mtsdb_tenant_t **ts =
	    n ? xmemdup(mt->tenants.v, n * sizeof *ts) : NULL; /* no tenants yet: v is NULL */
	pthread_rwlock_unlock(&mt->mu);
	int first = 0;
	for (size_t i = 0; i < n; i++) {
		err_t e = {0};
		int rc = tenant_housekeeping(mt, ts[i], flush, &e);
		if (rc) {
			log_error("tenant housekeeping failed", "tenant", ts[i]->name, "err", e.msg);
			if (!first) {
				first = rc;
				if (err)
					*err = e;
			}
		}
	}
	free(ts);
	return first;
}

void mtsdb_publish_metrics(mtsdb_t *mt)
{
	pthread_rwlock_rdlock(&mt->mu);
	for (size_t i = 0; i < mt->tenants.n; i++)
		db_publish_metrics(mt->tenants.v[i]->db);
	pthread_rwlock_unlock(&mt->mu);
}

/* ---- the store over every tenant ---- */

static store_t *snapshot(mtsdb_t *mt, arena_t *a)
{
	proxy_store_t *p = proxy_store_new("receive");
	pthread_rwlock_rdlock(&mt->mu);
	for (size_t i = 0; i < mt->tenants.n; i++)
		proxy_store_add(p, tsdb_store_base(mt->tenants.v[i]->store));
	pthread_rwlock_unlock(&mt->mu);
	arena_on_release(a, (void (*)(void *))proxy_store_free, p);
	return proxy_store_base(p);
}

static int mt_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	return store_series(snapshot((mtsdb_t *)base, a), a, req, out, err);
}

static int mt_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
                          err_t *err)
{
	return store_label_names(snapshot((mtsdb_t *)base, a), a, req, out, err);
}

static int mt_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
                           err_t *err)
{
	return store_label_values(snapshot((mtsdb_t *)base, a), a, req, out, err);
}

static int mt_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	(void)err;
	mtsdb_t *mt = (mtsdb_t *)base;
	out->mint = INT64_MAX;
	out->maxt = INT64_MIN;
	pthread_rwlock_rdlock(&mt->mu);
	labels_t *sets = ARENA_NEW_ARRAY(a, labels_t, mt->tenants.n ? mt->tenants.n : 1);
	size_t n = 0;
	for (size_t i = 0; i < mt->tenants.n; i++) {
		mtsdb_tenant_t *t = mt->tenants.v[i];
		int64_t mn = db_min_time(t->db), mx = db_max_time(t->db);
		if (mn > mx)
			continue; /* nothing stored yet */
		sets[n++] = labels_copy(a, &t->ext);
		if (mn < out->mint)
			out->mint = mn;
		if (mx > out->maxt)
			out->maxt = mx;
	}
	pthread_rwlock_unlock(&mt->mu);
	out->label_sets = sets;
	out->nlabel_sets = n;
	out->component_type = "receive";
	return 0;
}

static void mt_free(store_t *base)
{
	(void)base; /* owned by the mtsdb */
}

static const struct store_ops mt_ops = {
    .series = mt_series,
    .label_names = mt_label_names,
    .label_values = mt_label_values,
    .info = mt_info,
    .free = mt_free,
};

store_t *mtsdb_store(mtsdb_t *mt)
{
	return &mt->base;
}

/* ---- life cycle ---- */

mtsdb_t *mtsdb_new(const mtsdb_opts_t *o)
{
	mtsdb_t *mt = xcalloc(1, sizeof *mt);
	mt->base.ops = &mt_ops;
	mt->base.name = "receive";
	mt->dir = xstrdup(o->dir);
	mt->dbo = o->db;
	arena_init(&mt->arena, 0);
	mt->ext = o->ext ? labels_copy(&mt->arena, o->ext) : (labels_t){NULL, 0};
	const char *tl = o->tenant_label && *o->tenant_label ? o->tenant_label : "tenant_id";
	mt->tenant_label = str_from(arena_strdup(&mt->arena, tl), strlen(tl));
	mt->bucket = o->bucket;
	mt->retention = o->retention_ms;
	pthread_rwlock_init(&mt->mu, NULL);
	pthread_mutex_init(&mt->create_mu, NULL);
	hmap_init(&mt->by_name, 0);
	return mt;
}

void mtsdb_set_tenant_labels(mtsdb_t *mt, mtsdb_tenant_labels_fn fn, void *arg)
{
	mt->tenant_labels = fn;
	mt->tenant_labels_arg = arg;
}

int mtsdb_close(mtsdb_t *mt, bool flush, err_t *err)
{
	if (!mt)
		return 0;
	int rc = flush ? mtsdb_housekeeping(mt, true, err) : 0;
	for (size_t i = 0; i < mt->tenants.n; i++) {
		mtsdb_tenant_t *t = mt->tenants.v[i];
		err_t e = {0};
		int r = db_close(t->db, &e);
		if (r) {
			log_error("closing tenant TSDB failed", "tenant", t->name, "err", e.msg);
			if (!rc) {
				rc = r;
				if (err)
					*err = e;
			}
		}
		tsdb_store_free(t->store);
		shipper_free(t->shipper);
		arena_release(&t->arena);
		free(t->name);
		free(t);
	}
	VEC_FREE(&mt->tenants);
	hmap_release(&mt->by_name);
	pthread_rwlock_destroy(&mt->mu);
	pthread_mutex_destroy(&mt->create_mu);
	arena_release(&mt->arena);
	free(mt->dir);
	free(mt);
	return rc;
}
