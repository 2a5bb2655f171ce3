/*
 * blockview.c — the block viewer's JSON API (blockview.h).
 *
 * Listing and markers are done here, minimally, until the shared meta fetcher and marker files
 * (block/fetcher.h, block/marker.h, being built with `strata compact`) land; then this file uses
 * them. meta.json texts are kept by ULID (a block's meta never changes); marker files are read again
 * at every refresh.
 */
#include "ui/blockview.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/vec.h"
#include "net/api_response.h"
#include "tsdb/meta.h"

typedef struct bv_block {
	char ulid[ULID_LEN + 1];
	char *meta;                       /* meta.json as the bucket has it (validated) */
	int64_t deletion_s, no_compact_s; /* marker times (unix s), -1 = none */
} bv_block_t;

typedef VEC(bv_block_t) bv_blocks_t;

struct blockview {
	blockview_config_t cfg;
	char *label;
	pthread_mutex_t mu; /* guards everything below and serialises refreshes */
	bv_blocks_t blocks; /* sorted by ULID */
	char *fetch_err;    /* last refresh's error, NULL if none */
	int64_t fetched_ms; /* 0 = never / invalidated */
};

static int collect_ulids(void *arg, const char *name)
{
	VEC(char *) *ids = arg;
	if (strlen(name) != ULID_LEN + 1 || name[ULID_LEN] != '/')
		return 0;
	char *id = xstrndup(name, ULID_LEN);
	if (!ulid_valid(id)) {
		free(id); /* debug/ and other non-block entries */
		return 0;
	}
	VEC_PUSH(ids, id);
	return 0;
}

/* The "<time_key>" of <ulid>/<file>, -1 when the marker is absent or unreadable. */
static int64_t marker_time(bucket_t *b, const char *ulid, const char *file, const char *time_key)
{
	char name[ULID_LEN + 40];
	snprintf(name, sizeof name, "%s/%s", ulid, file);
	buf_t d = BUF_INIT;
	err_t err = {0};
	int64_t t = -1;
	if (bucket_get(b, name, &d, &err) == 0) {
		json_t *o = json_loadb(d.p, d.n, 0, NULL);
		json_t *v = o ? json_object_get(o, time_key) : NULL;
		if (json_is_integer(v))
			t = json_integer_value(v);
		else
			log_warn("block viewer: unreadable marker", "object", name);
		json_decref(o);
	} else if (err.code != ERR_NOT_FOUND) {
		log_warn("block viewer: reading a marker failed", "object", name, "err", err.msg);
	}
	buf_release(&d);
	return t;
}

/* The block in bs (sorted by ULID, as bucket_iter lists) with this ULID, or NULL. */
static const bv_block_t *find(const bv_blocks_t *bs, const char *ulid)
{
	size_t lo = 0, hi = bs->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(bs->v[mid].ulid, ulid);
		if (c == 0)
			return &bs->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* List the bucket into a new block list: metas known before are reused. */
static int fetch(blockview_t *bv, bv_blocks_t *out, err_t *err)
{
	VEC(char *) ids = {0};
	int rc = bucket_iter(bv->cfg.bkt, "", 0, collect_ulids, &ids, err);
	for (size_t i = 0; rc == 0 && i < ids.n; i++) {
		const bv_block_t *old = find(&bv->blocks, ids.v[i]);
		char *meta = NULL;
		if (old) {
			meta = xstrdup(old->meta);
		} else {
			char name[ULID_LEN + 16];
			snprintf(name, sizeof name, "%s/meta.json", ids.v[i]);
			buf_t d = BUF_INIT;
			err_t e = {0};
			block_meta_t m = {0};
			if (bucket_get(bv->cfg.bkt, name, &d, &e) == 0 &&
			    meta_parse(&m, d.p, d.n, name, &e) == 0 && strcmp(m.ulid, ids.v[i]) == 0)
				meta = xstrndup(d.p, d.n);
			else if (e.code != ERR_NOT_FOUND) /* absent: a partial upload, not shown */
				log_warn("block viewer: block with an unreadable meta.json left out", "block",
				         ids.v[i], "err", e.msg[0] ? e.msg : "meta.json names another block");
			meta_release(&m);
			buf_release(&d);
		}
		if (!meta)
			continue;
		bv_block_t *b = VEC_ADD(out);
		memcpy(b->ulid, ids.v[i], ULID_LEN + 1);
		b->meta = meta;
		b->deletion_s = marker_time(bv->cfg.bkt, b->ulid, "deletion-mark.json", "deletion_time");
		b->no_compact_s =
		    marker_time(bv->cfg.bkt, b->ulid, "no-compact-mark.json", "no_compact_time");
	}
	for (size_t i = 0; i < ids.n; i++)
		free(ids.v[i]);
	VEC_FREE(&ids);
	return rc;
}

static void blocks_release(bv_blocks_t *bs)
{
	for (size_t i = 0; i < bs->n; i++)
		free(bs->v[i].meta);
	VEC_FREE(bs);
}

/* The cached list, refreshed when older than the refresh interval. Called with mu held. */
static void refresh(blockview_t *bv)
{
	int64_t now = clock_now_ms();
	if (bv->fetched_ms && now - bv->fetched_ms < bv->cfg.refresh_ms)
		return;
	bv_blocks_t l = {0};
	err_t err = {0};
	free(bv->fetch_err);
	bv->fetch_err = NULL;
	bv->fetched_ms = now;
	if (fetch(bv, &l, &err)) {
		log_warn("block viewer: listing the bucket failed", "err", err.msg);
		bv->fetch_err = xstrdup(err.msg); /* keep the previous list, retry after the interval */
		blocks_release(&l);
		return;
	}
	blocks_release(&bv->blocks);
	bv->blocks = l;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void blocks_work(http_req_t *r, void *arg)
{
	blockview_t *bv = arg;
	str_t view = STR("global"), force = {0};
	http_req_param(r, "view", &view);
	const char **loaded = NULL;
	size_t nloaded = 0;
	bool only_loaded = str_eq(view, STR("loaded")) && bv->cfg.loaded;
	if (only_loaded) {
		nloaded = bv->cfg.loaded(bv->cfg.loaded_arg, &r->arena, &loaded);
		qsort(loaded, nloaded, sizeof *loaded, cmp_str);
	}
	buf_t b = BUF_INIT;
	pthread_mutex_lock(&bv->mu);
	if (http_req_param(r, "refresh", &force) && str_eq(force, STR("true")))
		bv->fetched_ms = 0; /* the page's Refresh button */
	refresh(bv);
	buf_puts(&b, "{\"blocks\":[");
	bool first = true;
	for (size_t i = 0; i < bv->blocks.n; i++) {
		const char *id = bv->blocks.v[i].ulid;
		if (only_loaded && !bsearch(&id, loaded, nloaded, sizeof *loaded, cmp_str))
			continue;
		if (!first)
			buf_putc(&b, ',');
		first = false;
		buf_puts(&b, bv->blocks.v[i].meta);
	}
	buf_puts(&b, "],\"label\":");
	buf_json_str(&b, str_c(bv->label));
	buf_puts(&b, ",\"refreshedAt\":\"");
	buf_put_rfc3339_ms(&b, bv->fetched_ms);
	buf_puts(&b, "\",\"err\":");
	if (bv->fetch_err)
		buf_json_str(&b, str_c(bv->fetch_err));
	else
		buf_puts(&b, "null");
	buf_puts(&b, ",\"markers\":{");
	first = true;
	for (size_t i = 0; i < bv->blocks.n; i++) {
		const bv_block_t *k = &bv->blocks.v[i];
		if (k->deletion_s < 0 && k->no_compact_s < 0)
			continue;
		buf_printf(&b, "%s\"%s\":{", first ? "" : ",", k->ulid);
		first = false;
		if (k->deletion_s >= 0)
			buf_printf(&b, "\"deletion\":%lld%s", (long long)k->deletion_s,
			           k->no_compact_s >= 0 ? "," : "");
		if (k->no_compact_s >= 0)
			buf_printf(&b, "\"no_compact\":%lld", (long long)k->no_compact_s);
		buf_putc(&b, '}');
	}
	buf_puts(&b, "}}");
	pthread_mutex_unlock(&bv->mu);
	api_respond_success(r, buf_str(&b), NULL, 0);
	buf_release(&b);
}

static void h_blocks(http_req_t *r, void *arg)
{
	http_run_on_worker(r, blocks_work, arg);
}

/* Thanos's marker JSON (Go's MarshalIndent layout, fields in struct order). */
static void marker_json(buf_t *b, const char *ulid, bool deletion, const char *details, int64_t now_s)
{
	buf_printf(b, "{\n\t\"id\": \"%s\",\n\t\"version\": 1,\n\t\"details\": ", ulid);
	buf_json_str(b, str_c(details));
	if (deletion)
		buf_printf(b, ",\n\t\"deletion_time\": %lld\n}", (long long)now_s);
	else
		buf_printf(b, ",\n\t\"no_compact_time\": %lld,\n\t\"reason\": \"manual\"\n}",
		           (long long)now_s);
}

static void mark_work(http_req_t *r, void *arg)
{
	blockview_t *bv = arg;
	str_t id = {0}, action = {0}, detail = {0};
	http_req_param(r, "id", &id);
	http_req_param(r, "action", &action);
	http_req_param(r, "detail", &detail);
	if (bv->cfg.admin_disabled)
		return api_respond_error(r, API_ERR_BAD_DATA, "Admin operations are disabled");
	if (!id.n)
		return api_respond_error(r, API_ERR_BAD_DATA, "ID cannot be empty");
	char *ulid = arena_strndup(&r->arena, id.p, id.n);
	if (!ulid_valid(ulid))
		return api_respond_error(r, API_ERR_BAD_DATA,
		                         arena_printf(&r->arena, "ULID %s is not valid", ulid));
	bool deletion;
	if (str_eq(action, STR("DELETION")))
		deletion = true;
	else if (str_eq(action, STR("NO_COMPACTION")))
		deletion = false;
	else if (!action.n)
		return api_respond_error(r, API_ERR_BAD_DATA, "Action cannot be empty");
	else
		return api_respond_error(
		    r, API_ERR_BAD_DATA,
		    arena_printf(&r->arena, "not supported marker %.*s (want DELETION or NO_COMPACTION)",
		                 (int)action.n, action.p));
	err_t err = {0};
	bool exists = false;
	if (bucket_exists(bv->cfg.bkt, arena_printf(&r->arena, "%s/meta.json", ulid), &exists, &err))
		return api_respond_error(r, API_ERR_INTERNAL, err.msg);
	if (!exists)
		return api_respond_error(
		    r, API_ERR_BAD_DATA,
		    arena_printf(&r->arena, "block %s is not in the bucket (no meta.json)", ulid));
	const char *file = deletion ? "deletion-mark.json" : "no-compact-mark.json";
	char *name = arena_printf(&r->arena, "%s/%s", ulid, file);
	if (bucket_exists(bv->cfg.bkt, name, &exists, &err))
		return api_respond_error(r, API_ERR_INTERNAL, err.msg);
	if (exists) {
		log_info("block already marked", "block", ulid, "marker", file);
	} else {
		buf_t b = BUF_INIT;
		marker_json(&b, ulid, deletion, detail.n ? arena_strndup(&r->arena, detail.p, detail.n) : "",
		            clock_now_ms() / 1000);
		int rc = bucket_put(bv->cfg.bkt, name, b.p, b.n, &err);
		buf_release(&b);
		if (rc)
			return api_respond_error(r, API_ERR_INTERNAL, err.msg);
		log_info("block marked through the web UI", "block", ulid, "marker", file);
	}
	pthread_mutex_lock(&bv->mu);
	bv->fetched_ms = 0; /* the next list shows the mark */
	pthread_mutex_unlock(&bv->mu);
	api_respond_success(r, STR("null"), NULL, 0);
}

static void h_mark(http_req_t *r, void *arg)
{
	http_run_on_worker(r, mark_work, arg);
}

blockview_t *blockview_new(http_server_t *srv, const blockview_config_t *cfg)
{
	blockview_t *bv = xcalloc(1, sizeof *bv);
	bv->cfg = *cfg;
	if (bv->cfg.refresh_ms <= 0)
		bv->cfg.refresh_ms = 60000;
	bv->label = xstrdup(cfg->label ? cfg->label : "");
	pthread_mutex_init(&bv->mu, NULL);
	http_handle(srv, HTTP_M_GET, "/api/v1/blocks", h_blocks, bv);
	http_handle(srv, HTTP_M_POST, "/api/v1/blocks/mark", h_mark, bv);
	return bv;
}

void blockview_free(blockview_t *bv)
{
	if (!bv)
		return;
	blocks_release(&bv->blocks);
	free(bv->fetch_err);
	free(bv->label);
	pthread_mutex_destroy(&bv->mu);
	free(bv);
}
