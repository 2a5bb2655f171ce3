/*
 * cleanup.c — retention marks and block deletion (see cleanup.h).
 */
#include "compact/cleanup.h"

#include <stdio.h>

#include "base/err.h"

#include "base/duration.h"
#include "base/log.h"
#include "compact/cmetrics.h"
#include "compact/compactor.h"

static int64_t retention_of(const int64_t *retention_ms, int64_t resolution)
{
	if (resolution == 0)
		return retention_ms[COMPACTOR_RES_RAW];
	if (resolution == 5 * 60 * 1000)
		return retention_ms[COMPACTOR_RES_5M];
	if (resolution == 60 * 60 * 1000)
		return retention_ms[COMPACTOR_RES_1H];
	return 0;
}

int cleanup_retention(bucket_t *b, const fetch_list_t *l, const int64_t *retention_ms, int64_t now_ms,
                      size_t *marked, err_t *err)
{
	cmetrics_init();
	int first = 0;
	*marked = 0;
	for (size_t i = 0; i < l->n; i++) {
		const fetched_block_t *fb = &l->v[i];
		int64_t r = retention_of(retention_ms, fb->meta.resolution);
		if (r <= 0 || now_ms - fb->meta.maxt <= r || fb->mark_ms[MARKER_DELETION] >= 0)
			continue;
		buf_t d = BUF_INIT;
		buf_puts(&d, "block older than the retention ");
		duration_format(&d, r);
		err_t e = {0};
		int rc = cmetrics_mark(b, fb->ulid, MARKER_DELETION, "retention", d.p, &e);
		buf_release(&d);
		if (rc) {
			log_error("marking a block past retention failed", "block", fb->ulid, "err", e.msg);
			if (!first) {
				first = rc;
				*err = e;
			}
			continue;
		}
		(*marked)++;
	}
	return first;
}

static int delete_one(bucket_t *b, const char *ulid, const char *why, int *first, err_t *err)
{
	err_t e = {0};
	int rc = marker_delete_block(b, ulid, &e);
	if (rc) {
		metric_inc(metric_with(cmetrics.cleanup_failures));
		log_error("deleting block failed", "block", ulid, "err", e.msg);
		if (!*first) {
			*first = rc;
			*err = e;
		}
		return rc;
	}
	log_info("deleted block", "block", ulid, "why", why);
	return 0;
}

int cleanup_deleted(bucket_t *b, const fetch_list_t *l, int64_t delete_delay_ms, int64_t now_ms,
                    size_t *deleted, err_t *err)
{
	cmetrics_init();
	int first = 0;
	size_t waiting = 0;
	*deleted = 0;
	for (size_t pass = 0; pass < 2; pass++) {
		const fetched_block_t *v = pass ? l->dropped : l->v;
		size_t n = pass ? l->ndropped : l->n;
		for (size_t i = 0; i < n; i++) {
			int64_t t = v[i].mark_ms[MARKER_DELETION];
			/* Set-aside blocks only when the deletion-mark filter did it: one shard (time or
			 * label filters) never deletes another's blocks. */
			if (t < 0 || (pass && v[i].state != FETCH_MARKED))
				continue;
			if (now_ms - t < delete_delay_ms) {
				waiting++;
				continue;
			}
			if (delete_one(b, v[i].ulid, "deletion mark older than the delete delay", &first,
			               err) == 0) {
				metric_inc(metric_with(cmetrics.cleaned));
				(*deleted)++;
			}
		}
	}
	metric_set(metric_with(cmetrics.todo_deletion_blocks), (double)waiting);
	return first;
}

typedef struct newest {
	bucket_t *b;
	int64_t ms;
	err_t *err;
} newest_t;

static int newest_object(void *arg, const char *name)
{
	newest_t *n = arg;
	bucket_attrs_t a;
	int rc = bucket_attributes(n->b, name, &a, n->err);
	if (rc == ERR_NOT_FOUND) /* deleted meanwhile */
		return 0;
	if (!rc && a.last_modified_ms > n->ms)
		n->ms = a.last_modified_ms;
	return rc;
}

/* The last-modified time of the newest object of block ulid (-1 when it holds none). */
static int newest_object_ms(bucket_t *b, const char *ulid, int64_t *ms, err_t *err)
{
	char dir[64];
	snprintf(dir, sizeof dir, "%s/", ulid);
	newest_t n = {b, -1, err};
	int rc = bucket_iter(b, dir, BUCKET_ITER_RECURSIVE, newest_object, &n, err);
	*ms = n.ms;
	return rc;
}

int cleanup_partial(bucket_t *b, const fetch_list_t *l, int64_t now_ms, size_t *deleted, err_t *err)
{
	cmetrics_init();
	int first = 0;
	*deleted = 0;
	for (size_t i = 0; i < l->ndropped; i++) {
		const fetched_block_t *fb = &l->dropped[i];
		if (fb->state != FETCH_PARTIAL)
			continue;
		bool marked = fb->mark_ms[MARKER_DELETION] >= 0;
		if (!marked && now_ms - ulid_time(fb->ulid) <= COMPACTOR_PARTIAL_UPLOAD_AGE_MS)
			continue;
		if (!marked) {
			/* An old ULID is not an old upload: a sidecar catching up after days of downtime
			 * uploads blocks cut long ago, meta.json last. The age is that of the newest
			 * object, so an upload in progress is never deleted under its uploader. */
			int64_t newest;
			err_t e = {0};
			int rc = newest_object_ms(b, fb->ulid, &newest, &e);
			if (rc) {
				log_error("reading a partial upload's objects failed", "block", fb->ulid,
				          "err", e.msg);
				if (!first) {
					first = rc;
					*err = e;
				}
				continue;
			}
			if (newest < 0 || now_ms - newest <= COMPACTOR_PARTIAL_UPLOAD_AGE_MS)
				continue;
		}
		metric_inc(metric_with(cmetrics.partial_deletions));
		if (delete_one(b, fb->ulid, marked ? "deletion in progress" : "partial upload older than 48h",
		               &first, err) == 0)
			(*deleted)++;
	}
	return first;
}
