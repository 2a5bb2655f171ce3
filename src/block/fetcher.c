/*
 * fetcher.c — the meta fetcher and its filters (see fetcher.h).
 */
#include "block/fetcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/vec.h"
#include "base/workers.h"

static const char *const state_names[FETCH_N] = {
    "loaded",         "no-meta-json", "corrupted-meta-json", "failed",    "time-excluded",
    "label-excluded", "too-fresh",    "marked-for-deletion", "duplicate", "resolution-excluded",
};

const char *fetch_state_name(fetch_state_t s)
{
	return state_names[s];
}

static struct {
	metric_t *syncs, *failures, *duration, *synced;
} fm;

static void metrics_once(void)
{
	if (fm.syncs)
		return;
	fm.syncs = metrics_counter("thanos_blocks_meta_syncs_total",
	                           "Total blocks metadata synchronization attempts.", NULL);
	fm.failures = metrics_counter("thanos_blocks_meta_sync_failures_total",
	                              "Total blocks metadata synchronization failures.", NULL);
	static const double b[] = {0.01, 1, 10, 100, 300, 600, 1000};
	fm.duration = metrics_histogram("thanos_blocks_meta_sync_duration_seconds",
	                                "Duration of the blocks metadata synchronization in seconds.", NULL,
	                                b, ARRAY_LEN(b));
	fm.synced = metrics_gauge("thanos_blocks_meta_synced", "Number of block metadata synced.", "state");
}

/* ---- lists ---- */

static void block_release(fetched_block_t *b)
{
	meta_release(&b->meta);
	free(b->no_compact_reason);
	free(b->error);
}

void fetch_list_release(fetch_list_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		block_release(&l->v[i]);
	for (size_t i = 0; i < l->ndropped; i++)
		block_release(&l->dropped[i]);
	free(l->v);
	free(l->dropped);
	memset(l, 0, sizeof *l);
}

fetched_block_t *fetch_list_find(fetch_list_t *l, const char *ulid)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->v[mid].ulid, ulid);
		if (c == 0)
			return &l->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void push_dropped(fetch_list_t *l, fetched_block_t *b, fetch_state_t s)
{
	if (l->ndropped == l->capdropped) {
		l->capdropped = alloc_grow_cap(l->capdropped, l->ndropped + 1);
		l->dropped = xreallocarray(l->dropped, l->capdropped, sizeof *l->dropped);
	}
	b->state = s;
	l->dropped[l->ndropped++] = *b;
	l->counts[s]++;
}

void fetch_list_drop(fetch_list_t *l, size_t i, fetch_state_t s)
{
	fetched_block_t b = l->v[i];
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
	l->n--;
	l->counts[FETCH_LOADED]--;
	push_dropped(l, &b, s);
}

static void push_selected(fetch_list_t *l, fetched_block_t *b)
{
	if (l->n == l->cap) {
		l->cap = alloc_grow_cap(l->cap, l->n + 1);
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	b->state = FETCH_LOADED;
	l->v[l->n++] = *b;
	l->counts[FETCH_LOADED]++;
}

void fetch_list_publish(const fetch_list_t *l)
{
	metrics_once();
	for (int s = 0; s < FETCH_N; s++)
		metric_set(metric_with(fm.synced, state_names[s]), (double)l->counts[s]);
}

labels_t fetched_block_labels(const fetched_block_t *b, arena_t *a)
{
	const block_meta_t *m = &b->meta;
	labels_t ls = {ARENA_NEW_ARRAY(a, label_t, m->nlabels + 1), 0};
	for (size_t k = 0; k < m->nlabels; k++)
		ls.v[ls.n++] = (label_t){str_c(m->labels[2 * k]), str_c(m->labels[2 * k + 1])};
	labels_normalize(&ls);
	return ls;
}

void fetched_block_group_key(const fetched_block_t *b, char *out, size_t n)
{
	arena_t a;
	arena_init(&a, 512);
	labels_t ls = fetched_block_labels(b, &a);
	snprintf(out, n, "%lld@%llu", (long long)b->meta.resolution, (unsigned long long)labels_hash(&ls));
	arena_release(&a);
}

/* ---- the fetcher ---- */

/* What is known about a block across fetches (metas and marker contents never change in place). */
typedef struct known {
	char ulid[ULID_LEN + 1];
	bool have_meta;
	block_meta_t meta;
	bool have_mark[MARKER_N];
	int64_t mark_ms[MARKER_N];
	char *no_compact_reason;
	bool seen; /* listed by the current fetch */
} known_t;

struct block_fetcher {
	block_fetcher_config_t cfg;
	char *cache_dir;
	hmap_t known; /* ulid -> known_t* */
	workers_t *pool;
};

block_fetcher_t *block_fetcher_new(const block_fetcher_config_t *cfg)
{
	metrics_once();
	block_fetcher_t *f = xcalloc(1, sizeof *f);
	f->cfg = *cfg;
	if (f->cfg.concurrency <= 0)
		f->cfg.concurrency = 32;
	f->cache_dir = cfg->cache_dir && *cfg->cache_dir ? xstrdup(cfg->cache_dir) : NULL;
	f->cfg.cache_dir = f->cache_dir;
	hmap_init(&f->known, 0);
	/* The calling thread works too (workers_parallel_for). */
	if (f->cfg.concurrency > 1)
		f->pool = workers_new(f->cfg.concurrency - 1);
	return f;
}

static void known_free(known_t *k)
{
	if (k->have_meta)
		meta_release(&k->meta);
	free(k->no_compact_reason);
	free(k);
}

void block_fetcher_free(block_fetcher_t *f)
{
	if (!f)
		return;
	hmap_entry_t *e;
	for (size_t it = 0; hmap_next(&f->known, &it, &e);)
		known_free(e->val);
	hmap_release(&f->known);
	workers_free(f->pool);
	free(f->cache_dir);
	free(f);
}

static int collect_ulids(void *arg, const char *name)
{
	VEC(char *) *ids = arg;
	size_t n = strlen(name);
	if (n != ULID_LEN + 1 || name[ULID_LEN] != '/')
		return 0;
	char id[ULID_LEN + 1];
	memcpy(id, name, ULID_LEN);
	id[ULID_LEN] = 0;
	if (ulid_valid(id))
		VEC_PUSH(ids, xstrdup(id));
	return 0;
}

/* One block's work in a fetch. */
typedef struct job {
	block_fetcher_t *f;
	known_t *k;
	bool has_meta_obj, has_mark[MARKER_N];
	fetch_state_t state; /* FETCH_LOADED, PARTIAL, CORRUPT or FAILED */
	err_t err;
} job_t;

static int list_block(void *arg, const char *name)
{
	job_t *j = arg;
	const char *base = name + ULID_LEN + 1;
	if (strcmp(base, "meta.json") == 0)
		j->has_meta_obj = true;
	int kind = marker_kind_of(base);
	if (kind >= 0)
		j->has_mark[kind] = true;
	return 0;
}

/* meta.json from cache_dir, else from the bucket (then written to cache_dir). */
static int read_meta(block_fetcher_t *f, const char *id, block_meta_t *m, err_t *err)
{
	char dir[4096];
	if (f->cache_dir) {
		snprintf(dir, sizeof dir, "%s/%s", f->cache_dir, id);
		err_t e2 = {0};
		if (meta_read(m, dir, &e2) == 0) {
			if (strcmp(m->ulid, id) == 0)
				return 0;
			meta_release(m);
		}
	}
	memset(m, 0, sizeof *m);
	char name[64];
	snprintf(name, sizeof name, "%s/meta.json", id);
	buf_t d = BUF_INIT;
	int rc = bucket_get(f->cfg.bkt, name, &d, err);
	if (!rc && (rc = meta_parse(m, d.p, d.n, name, err)) == 0 && strcmp(m->ulid, id) != 0) {
		rc = err_set(err, ERR_CORRUPT, "%s: ulid %s does not match its directory", name, m->ulid);
		meta_release(m);
	}
	if (!rc && f->cache_dir) {
		/* Best effort: a failed cache write costs a GET next time. */
		char path[4200], tmp[4200];
		snprintf(path, sizeof path, "%s/meta.json", dir);
		snprintf(tmp, sizeof tmp, "%s/meta.json.tmp", dir);
		if ((mkdir(f->cache_dir, 0755) == 0 || errno == EEXIST) &&
		    (mkdir(dir, 0755) == 0 || errno == EEXIST)) {
			FILE *fp = fopen(tmp, "w");
			if (fp) {
				bool ok = fwrite(d.p, 1, d.n, fp) == d.n;
				ok = fclose(fp) == 0 && ok;
				if (!ok || rename(tmp, path) != 0)
					unlink(tmp);
			}
		}
	}
	buf_release(&d);
	return rc;
}

static void read_markers(block_fetcher_t *f, job_t *j)
{
	known_t *k = j->k;
	for (int m = 0; m < MARKER_N; m++) {
		if (!j->has_mark[m]) {
			k->have_mark[m] = false;
			if (m == MARKER_NO_COMPACT) {
				free(k->no_compact_reason);
				k->no_compact_reason = NULL;
			}
			continue;
		}
		if (k->have_mark[m])
			continue;
		marker_t mk;
		err_t e2 = {0};
		int mr = marker_read(f->cfg.bkt, k->ulid, (marker_kind_t)m, &mk, &e2);
		if (mr == ERR_NOT_FOUND)
			continue;
		if (mr) {
			log_warn("unreadable marker ignored", "block", k->ulid, "marker", marker_file((marker_kind_t)m), "err",
				 e2.msg);
			continue;
		}
		k->have_mark[m] = true;
		k->mark_ms[m] = mk.time_s * 1000;
		if (m == MARKER_NO_COMPACT) {
			free(k->no_compact_reason);
			k->no_compact_reason = mk.reason ? xstrdup(mk.reason) : NULL;
		}
		marker_release(&mk);
	}
}

static void run_job(void *arg, size_t i)
{
	job_t *j = &((job_t *)arg)[i];
	known_t *k = j->k;
	block_fetcher_t *f = j->f;
	char dir[64];
	snprintf(dir, sizeof dir, "%s/", k->ulid);
	j->state = FETCH_LOADED;
	int rc = bucket_iter(f->cfg.bkt, dir, 0, list_block, j, &j->err);
	if (rc) {
		j->state = FETCH_FAILED;
		return;
	}
	/* Markers of partial blocks too: a deletion mark there is a deletion that stopped half-way. */
	read_markers(f, j);
	if (!j->has_meta_obj) {
		j->state = FETCH_PARTIAL;
		return;
	}
	if (!k->have_meta) {
		rc = read_meta(f, k->ulid, &k->meta, &j->err);
		if (rc == ERR_NOT_FOUND) { /* deleted since the listing */
			j->state = FETCH_PARTIAL;
			return;
		}
		if (rc) {
			j->state = rc == ERR_CORRUPT ? FETCH_CORRUPT : FETCH_FAILED;
			return;
		}
		k->have_meta = true;
	}
}

int block_fetcher_fetch(block_fetcher_t *f, fetch_list_t *out, err_t *err)
{
	memset(out, 0, sizeof *out);
	metric_inc(metric_with(fm.syncs));
	uint64_t t0 = clock_mono_ns();
	VEC(char *) ids = {0};
	int rc = bucket_iter(f->cfg.bkt, "", 0, collect_ulids, &ids, err);
	if (rc) {
		metric_inc(metric_with(fm.failures));
		for (size_t i = 0; i < ids.n; i++)
			free(ids.v[i]);
		VEC_FREE(&ids);
		return err_wrap(err, "fetch block metas");
	}
	hmap_entry_t *e;
	for (size_t it = 0; hmap_next(&f->known, &it, &e);)
		((known_t *)e->val)->seen = false;
	job_t *jobs = xcalloc(ids.n ? ids.n : 1, sizeof *jobs);
	for (size_t i = 0; i < ids.n; i++) {
		known_t *k = hmap_get(&f->known, str_c(ids.v[i]));
		if (!k) {
			k = xcalloc(1, sizeof *k);
			snprintf(k->ulid, sizeof k->ulid, "%s", ids.v[i]);
			hmap_put(&f->known, str_c(k->ulid), k);
		}
		k->seen = true;
		jobs[i].f = f;
		jobs[i].k = k;
	}
	if (f->pool)
		workers_parallel_for(f->pool, ids.n, run_job, jobs);
	else
		for (size_t i = 0; i < ids.n; i++)
			run_job(jobs, i);
	for (size_t i = 0; i < ids.n; i++) {
		job_t *j = &jobs[i];
		known_t *k = j->k;
		fetched_block_t b = {0};
		snprintf(b.ulid, sizeof b.ulid, "%s", k->ulid);
		for (int m = 0; m < MARKER_N; m++)
			b.mark_ms[m] = k->have_mark[m] ? k->mark_ms[m] : -1;
		if (j->state != FETCH_LOADED) {
			if (j->state == FETCH_PARTIAL)
				log_debug("block without meta.json ignored (partial upload)", "block",
				          k->ulid);
			else
				log_warn("block meta.json unreadable, block ignored", "block", k->ulid, "err",
				         j->err.msg);
			if (j->state != FETCH_PARTIAL)
				b.error = xstrdup(j->err.msg);
			push_dropped(out, &b, j->state);
			continue;
		}
		meta_copy(&b.meta, &k->meta);
		if (k->no_compact_reason)
			b.no_compact_reason = xstrdup(k->no_compact_reason);
		push_selected(out, &b); /* ids are sorted, so v is */
	}
	free(jobs);
	/* Forget blocks that left the bucket. */
	VEC(known_t *) gone = {0};
	for (size_t it = 0; hmap_next(&f->known, &it, &e);)
		if (!((known_t *)e->val)->seen)
			VEC_PUSH(&gone, e->val);
	for (size_t i = 0; i < gone.n; i++) {
		hmap_del(&f->known, str_c(gone.v[i]->ulid));
		known_free(gone.v[i]);
	}
	VEC_FREE(&gone);
	for (size_t i = 0; i < ids.n; i++)
		free(ids.v[i]);
	VEC_FREE(&ids);
	metric_observe(metric_with(fm.duration), clock_since_s(t0));
	return 0;
}

/* ---- filters ---- */

void fetch_filter_time(fetch_list_t *l, int64_t min_ms, int64_t max_ms)
{
	for (size_t i = 0; i < l->n;) {
		const block_meta_t *m = &l->v[i].meta;
		if (m->maxt < min_ms || m->mint > max_ms)
			fetch_list_drop(l, i, FETCH_TIME);
		else
			i++;
	}
}

void fetch_drop_labels(fetch_list_t *l, char *const *names, size_t n)
{
	for (size_t i = 0; i < l->n; i++) {
		block_meta_t *m = &l->v[i].meta;
		for (size_t k = 0; k < m->nlabels;) {
			bool drop = false;
			for (size_t r = 0; r < n && !drop; r++)
				drop = strcmp(m->labels[2 * k], names[r]) == 0;
			if (!drop) {
				k++;
				continue;
			}
			free(m->labels[2 * k]);
			free(m->labels[2 * k + 1]);
			memmove(&m->labels[2 * k], &m->labels[2 * k + 2],
			        (m->nlabels - k - 1) * 2 * sizeof(char *));
			m->nlabels--;
		}
	}
}

void fetch_filter_labels(fetch_list_t *l, bool (*keep)(void *arg, const labels_t *ls), void *arg)
{
	arena_t a;
	arena_init(&a, 1024);
	for (size_t i = 0; i < l->n;) {
		arena_reset(&a);
		labels_t ext = fetched_block_labels(&l->v[i], &a);
		labels_builder_t lb;
		labels_builder_init(&lb, &a, &ext);
		labels_builder_set(&lb, STR("__block_id"), str_c(l->v[i].ulid));
		labels_t with_id = labels_builder_finish(&lb);
		if (!keep(arg, &with_id))
			fetch_list_drop(l, i, FETCH_LABEL);
		else
			i++;
	}
	arena_release(&a);
}

static bool written_by_compactor(const char *source)
{
	return source && (!strcmp(source, "compactor") || !strcmp(source, "compactor.repair") ||
	                  !strcmp(source, "bucket.repair"));
}

void fetch_filter_consistency(fetch_list_t *l, int64_t delay_ms, int64_t now_ms)
{
	if (delay_ms <= 0)
		return;
	for (size_t i = 0; i < l->n;) {
		const block_meta_t *m = &l->v[i].meta;
		int64_t born = m->upload_time_ms ? m->upload_time_ms : ulid_time(l->v[i].ulid);
		if (now_ms - born < delay_ms && !written_by_compactor(m->source))
			fetch_list_drop(l, i, FETCH_TOO_FRESH);
		else
			i++;
	}
}

void fetch_filter_deleted(fetch_list_t *l, int64_t delay_ms, int64_t now_ms)
{
	for (size_t i = 0; i < l->n;) {
		int64_t t = l->v[i].mark_ms[MARKER_DELETION];
		if (t >= 0 && now_ms - t >= delay_ms)
			fetch_list_drop(l, i, FETCH_MARKED);
		else
			i++;
	}
}

typedef struct dup_item {
	size_t idx;
	char key[64];
} dup_item_t;

static int dup_cmp(const void *a, const void *b, void *arg)
{
	const fetch_list_t *l = arg;
	const dup_item_t *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c)
		return c;
	const fetched_block_t *bx = &l->v[x->idx], *by = &l->v[y->idx];
	if (bx->meta.nsources != by->meta.nsources)
		return bx->meta.nsources > by->meta.nsources ? -1 : 1;
	return strcmp(bx->ulid, by->ulid);
}

/* Blocks of one stream holding a source (a chain through `next`). */
typedef struct holder {
	size_t idx;
	struct holder *next;
} holder_t;

void fetch_filter_duplicates(fetch_list_t *l)
{
	if (l->n < 2)
		return;
	dup_item_t *it = xcalloc(l->n, sizeof *it);
	for (size_t i = 0; i < l->n; i++) {
		it[i].idx = i;
		fetched_block_group_key(&l->v[i], it[i].key, sizeof it[i].key);
	}
	qsort_r(it, l->n, sizeof *it, dup_cmp, l);
	bool *dup = xcalloc(l->n, sizeof *dup);
	arena_t a;
	arena_init(&a, 0);
	hmap_t holders; /* source ULID -> holder_t chain of kept blocks with it */
	hmap_init(&holders, 0);
	/* Within a stream blocks come with the most sources first: a block whose sources all belong to
	 * one kept block before it is a duplicate; candidates are the kept blocks holding its first
	 * source. */
	for (size_t g = 0; g < l->n;) {
		size_t e = g;
		while (e < l->n && strcmp(it[e].key, it[g].key) == 0)
			e++;
		hmap_clear(&holders);
		for (size_t i = g; i < e; i++) {
			const block_meta_t *m = &l->v[it[i].idx].meta;
			if (!m->nsources)
				continue;
			for (holder_t *h = hmap_get(&holders, str_c(m->sources[0])); h && !dup[it[i].idx];
			     h = h->next)
				dup[it[i].idx] = meta_sources_subset(m, &l->v[h->idx].meta);
			if (dup[it[i].idx])
				continue;
			for (size_t s = 0; s < m->nsources; s++) {
				holder_t *h = ARENA_NEW(&a, holder_t);
				bool found;
				void **slot = hmap_slot(&holders, str_c(m->sources[s]), &found);
				h->idx = it[i].idx;
				h->next = found ? *slot : NULL;
				*slot = h;
			}
		}
		g = e;
	}
	hmap_release(&holders);
	arena_release(&a);
	for (size_t i = l->n; i-- > 0;)
		if (dup[i])
			fetch_list_drop(l, i, FETCH_DUPLICATE);
	free(dup);
	free(it);
}
