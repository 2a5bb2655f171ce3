/*
 * proxy.c — fan-out, k-way merge, replica dedup and partial response over N stores (see proxy.h).
 */
#include "store/proxy.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "store/dedup.h"
#include "tsdb/xor.h"

struct proxy_store {
	store_t base;
	store_t **stores;
	size_t n, cap;
};

/* One source's contribution to a merged series: encoded chunks, or a live series set's samples. */
typedef struct member {
	series_set_t *src; /* lazy streams: samples come from here when nchunks < 0 */
	const chunk_t *chunks;
	int nchunks;       /* -1: no encoded chunks */
} member_t;

/* A buffered (re-sorted) series: stripped labels and one member per replica. */
typedef struct bentry {
	labels_t ls;
	member_t m;
} bentry_t;

typedef struct stream {
	store_t *store;
	series_set_t *set;
	bool done;
	bool buffered;     /* dedup, replica labels vary per series: collected and re-sorted */
	bool strip;        /* dedup, replica labels constant (external): streamed, stripped on the fly */
	bool wrl;          /* dedup, store asked without_replica_labels: streamed (with strip set), its
			    * replicas arrive as consecutive series with equal labels */
	bool misordered;   /* strip: a series came out of order once stripped (warned once) */
	bentry_t *entries; /* buffered streams */
	size_t nentries, pos;
	labels_t head;     /* current labels (stripped when deduplicating) */
	member_t m;
	/* strip streams: the stripped head (label slices into the set's memory) and a copy of the
	 * previous one for the order check; grow-only, so bounded by the largest label set. */
	label_t *sv, *pv;
	size_t svcap, pvcap;
	char *pbytes;
	size_t pbytescap;
	labels_t prev;
	bool have_prev;
} stream_t;

typedef struct proxy_set {
	series_set_t base;
	arena_t *a;
	const store_series_req_t *req;
	stream_t *streams;
	size_t nstreams;
	size_t *heap;     /* min-heap of stream indices by (head, index) */
	size_t nheap;
	size_t *consumed; /* streams whose head went into the current series: advanced on the next call */
	size_t nconsumed;
	bool dedup, counter, abort;
	bool wrl_out;     /* asked without_replica_labels: stripped, sorted, each member its own series */
	size_t emit;      /* wrl_out: the member of the current group being returned */
	int64_t returned;
	const char **warnings;
	size_t nwarnings, capwarnings;
	/* current merged series */
	labels_t cur;
	member_t *members;
	size_t nmembers, capmembers;
	chunk_t *chunks; /* concatenated chunks when several members have them */
	size_t capchunks;
	xor_iter_t *xits;
	aggr_iter_t *aits; /* members holding aggregate chunks (downsampled data) */
	sample_iter_t **its;
	dedup_cursor_t *cursors;
	size_t capits;
	dedup_iter_t dd;
	/* the current series' copies (members of wrl streams, their labels) and overlap-split chunk
	 * arrays: reset on every next(), so bounded by one series group */
	arena_t grp;
	bool have_wrl;
} proxy_set_t;

static void add_warning(proxy_set_t *ps, const char *store, const char *msg)
{
	if (ps->nwarnings == ps->capwarnings) {
		size_t cap = ps->capwarnings ? 2 * ps->capwarnings : 4;
		ps->warnings = arena_realloc(ps->a, ps->warnings, ps->capwarnings * sizeof *ps->warnings,
					     cap * sizeof *ps->warnings);
		ps->capwarnings = cap;
	}
	/* Store implementations usually name themselves already. */
	const char *w = arena_printf(ps->a, "store %s: ", store);
	if (strncmp(msg, w, strlen(w)) != 0)
		w = arena_printf(ps->a, "%s%s", w, msg);
	else
		w = arena_strdup(ps->a, msg);
	ps->warnings[ps->nwarnings++] = w;
}

/* A store failed: warning (returns 0) or, with abort, the error naming the store. */
static int store_failed(proxy_set_t *ps, stream_t *st, int rc, err_t *err)
{
	st->done = true;
	if (ps->abort) {
		if (!strstr(err->msg, st->store->name))
			err_wrap(err, "store %s", st->store->name);
		return rc;
	}
	add_warning(ps, st->store->name, err->msg);
	err_clear(err);
	return 0;
}

static void collect_set_warnings(proxy_set_t *ps, stream_t *st)
{
	if (!st->set || !st->set->ops->warnings)
		return;
	const char *const *w;
	size_t n = st->set->ops->warnings(st->set, &w);
	for (size_t i = 0; i < n; i++)
		add_warning(ps, st->store->name, w[i]);
}

static labels_t strip_replicas(arena_t *a, const labels_t *ls, const str_t *names, size_t n, bool copy)
{
	labels_t out = {copy ? ARENA_NEW_ARRAY(a, label_t, ls->n + 1) : ls->v, 0};
	if (!copy) {
		bool any = false;
		for (size_t i = 0; i < ls->n && !any; i++)
			for (size_t j = 0; j < n && !any; j++)
				any = str_eq(ls->v[i].name, names[j]);
		if (!any)
			return *ls;
		out.v = ARENA_NEW_ARRAY(a, label_t, ls->n);
	}
	for (size_t i = 0; i < ls->n; i++) {
		bool drop = false;
		for (size_t j = 0; j < n && !drop; j++)
			drop = str_eq(ls->v[i].name, names[j]);
		if (!drop)
			out.v[out.n++] = ls->v[i];
	}
	if (copy)
		out = labels_copy(a, &out);
	return out;
}

static int series_chunks(series_set_t *s, const chunk_t **out)
{
	if (!s->ops->chunks)
		return -1;
	return s->ops->chunks(s, out);
}

/* Copy the current series' chunks into the arena, encoding samples when the source has none. */
static int copy_chunks(proxy_set_t *ps, arena_t *a, series_set_t *s, member_t *m, err_t *err)
{
	const chunk_t *cs;
	int n = ps->req->skip_chunks ? 0 : series_chunks(s, &cs);
	if (n >= 0) {
		chunk_t *c = n ? ARENA_NEW_ARRAY(a, chunk_t, (size_t)n) : NULL;
		for (int i = 0; i < n; i++) {
			c[i] = cs[i];
			c[i].data = arena_memdup(a, cs[i].data, cs[i].len);
		}
		m->chunks = c;
		m->nchunks = n;
		return 0;
	}
	size_t cap = 4, nc = 0;
	chunk_t *c = ARENA_NEW_ARRAY(a, chunk_t, cap);
	sample_iter_t *it = series_set_samples(s);
	xor_enc_t e;
	xor_enc_init(&e);
	int64_t t[128], first = 0, last = 0;
	double v[128];
	int k, rc = 0;
	while ((k = sample_iter_next_batch(it, t, v, 128, err)) > 0) {
		for (int i = 0; i < k; i++) {
			if (xor_enc_count(&e) == 0)
				first = t[i];
			xor_enc_append(&e, t[i], v[i]);
			last = t[i];
			if (xor_enc_count(&e) == XOR_SAMPLES_PER_CHUNK) {
				if (nc == cap) {
					c = arena_realloc(a, c, cap * sizeof *c, 2 * cap * sizeof *c);
					cap *= 2;
				}
				size_t len;
				const uint8_t *p = xor_enc_bytes(&e, &len);
				c[nc++] = (chunk_t){first, last, CHUNK_ENC_XOR, arena_memdup(a, p, len), len};
				xor_enc_reset(&e);
			}
		}
	}
	if (k < 0)
		rc = k;
	if (rc == 0 && xor_enc_count(&e) > 0) {
		if (nc == cap) {
			c = arena_realloc(a, c, cap * sizeof *c, 2 * cap * sizeof *c);
			cap *= 2;
		}
		size_t len;
		const uint8_t *p = xor_enc_bytes(&e, &len);
		c[nc++] = (chunk_t){first, last, CHUNK_ENC_XOR, arena_memdup(a, p, len), len};
	}
	xor_enc_release(&e);
	m->chunks = c;
	m->nchunks = (int)nc;
	return rc;
}

static int bentry_cmp(const void *a, const void *b)
{
	const bentry_t *x = a, *y = b;
	int c = labels_cmp(&x->ls, &y->ls);
	if (c)
		return c;
	return x < y ? -1 : x > y; /* keep arrival order (stable) */
}

/* Read a whole store response, strip replica labels, re-sort. Returns 0 or a store failure. */
static int buffer_stream(proxy_set_t *ps, stream_t *st, err_t *err)
{
	size_t cap = 64;
	st->entries = ARENA_NEW_ARRAY(ps->a, bentry_t, cap);
	for (;;) {
		int rc = series_set_next(st->set, err);
		if (rc < 0)
			return store_failed(ps, st, rc, err);
		if (rc == 0)
			break;
		if (st->nentries == cap) {
			st->entries = arena_realloc(ps->a, st->entries, cap * sizeof *st->entries,
						    2 * cap * sizeof *st->entries);
			cap *= 2;
		}
		bentry_t *e = &st->entries[st->nentries++];
		e->ls = strip_replicas(ps->a, series_set_labels(st->set), ps->req->replica_labels,
				       ps->req->nreplica_labels, true);
		e->m.src = NULL;
		rc = copy_chunks(ps, ps->a, st->set, &e->m, err);
		if (rc < 0)
			return store_failed(ps, st, rc, err);
	}
	/* Stable by construction: ties compare by position. */
	qsort(st->entries, st->nentries, sizeof *st->entries, bentry_cmp);
	return 0;
}

/* strip stream: head = the set's labels without the replica labels, into the stream's buffer; a
 * series that sorts at or before the previous one (possible only when a stripped label set is a
 * prefix of an earlier one's: {a, r} > {a, b, r} but {a} < {a, b}) is warned about once. */
static void strip_head(proxy_set_t *ps, stream_t *st)
{
	const labels_t *ls = series_set_labels(st->set);
	if (ls->n > st->svcap) {
		st->svcap = 2 * ls->n;
		st->sv = ARENA_NEW_ARRAY(ps->a, label_t, st->svcap);
	}
	labels_t out = {st->sv, 0};
	for (size_t i = 0; i < ls->n; i++) {
		bool drop = false;
		for (size_t j = 0; j < ps->req->nreplica_labels && !drop; j++)
			drop = str_eq(ls->v[i].name, ps->req->replica_labels[j]);
		if (!drop)
			out.v[out.n++] = ls->v[i];
	}
	st->head = out;
	/* wrl: a store's replicas of one series follow each other with equal labels */
	if (st->have_prev && !st->misordered && labels_cmp(&st->prev, &out) >= (st->wrl ? 1 : 0)) {
		st->misordered = true;
		buf_t b = BUF_INIT;
		labels_format(&b, &out);
		const char *msg = arena_printf(ps->a,
					       "series %s sorts before the previous one once the replica labels are "
					       "removed; its replicas may not be merged",
					       b.p);
		buf_release(&b);
		add_warning(ps, st->store->name, msg);
	}
	/* keep a copy for the next check */
	size_t bytes = 0;
	for (size_t i = 0; i < out.n; i++)
		bytes += out.v[i].name.n + out.v[i].value.n;
	if (out.n > st->pvcap) {
		st->pvcap = 2 * out.n;
		st->pv = ARENA_NEW_ARRAY(ps->a, label_t, st->pvcap);
	}
	if (bytes > st->pbytescap) {
		st->pbytescap = 2 * bytes;
		st->pbytes = arena_alloc(ps->a, st->pbytescap);
	}
	char *p = st->pbytes;
	for (size_t i = 0; i < out.n; i++) {
		memcpy(p, out.v[i].name.p, out.v[i].name.n);
		st->pv[i].name = str_from(p, out.v[i].name.n);
		p += out.v[i].name.n;
		memcpy(p, out.v[i].value.p, out.v[i].value.n);
		st->pv[i].value = str_from(p, out.v[i].value.n);
		p += out.v[i].value.n;
	}
	st->prev = (labels_t){st->pv, out.n};
	st->have_prev = true;
}

/* Min-heap of streams by (head labels, index): equal heads pop in index order, so the first
 * store added wins ties in the chain merge and the dedup. */
static bool heap_less(const proxy_set_t *ps, size_t a, size_t b)
{
	int c = labels_cmp(&ps->streams[a].head, &ps->streams[b].head);
	return c < 0 || (c == 0 && a < b);
}

static void heap_push(proxy_set_t *ps, size_t idx)
{
	size_t i = ps->nheap++;
	ps->heap[i] = idx;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!heap_less(ps, ps->heap[i], ps->heap[up]))
			break;
		size_t t = ps->heap[i];
		ps->heap[i] = ps->heap[up];
		ps->heap[up] = t;
		i = up;
	}
}

static size_t heap_pop(proxy_set_t *ps)
{
	size_t top = ps->heap[0];
	ps->heap[0] = ps->heap[--ps->nheap];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < ps->nheap && heap_less(ps, ps->heap[l], ps->heap[m]))
			m = l;
		if (r < ps->nheap && heap_less(ps, ps->heap[r], ps->heap[m]))
			m = r;
		if (m == i)
			break;
		size_t t = ps->heap[i];
		ps->heap[i] = ps->heap[m];
		ps->heap[m] = t;
		i = m;
	}
	return top;
}

/* Move stream to its next series (head/m), or mark done. */
static int stream_advance(proxy_set_t *ps, stream_t *st, err_t *err)
{
	if (st->done)
		return 0;
	if (st->buffered) {
		if (st->pos == st->nentries) {
			st->done = true;
			return 0;
		}
		st->head = st->entries[st->pos].ls;
		st->m = st->entries[st->pos].m;
		st->pos++;
		return 1;
	}
	int rc = series_set_next(st->set, err);
	if (rc < 0)
		return store_failed(ps, st, rc, err);
	if (rc == 0) {
		st->done = true;
		collect_set_warnings(ps, st);
		return 0;
	}
	if (st->strip)
		strip_head(ps, st);
	else
		st->head = *series_set_labels(st->set);
	st->m.src = st->set;
	if (ps->req->skip_chunks) {
		st->m.chunks = NULL;
		st->m.nchunks = 0;
	} else {
		st->m.nchunks = series_chunks(st->set, &st->m.chunks);
	}
	return 1;
}

static void push_member(proxy_set_t *ps, const member_t *m)
{
	if (ps->nmembers == ps->capmembers) {
		size_t cap = ps->capmembers ? 2 * ps->capmembers : 8;
		ps->members = arena_realloc(ps->a, ps->members, ps->capmembers * sizeof *ps->members,
					    cap * sizeof *ps->members);
		ps->capmembers = cap;
	}
	ps->members[ps->nmembers++] = *m;
}

/* Chunks of one member overlap in time (sorted by mint or not)? */
static bool chunks_overlap(const chunk_t *c, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (c[i].mint <= c[i - 1].maxt || c[i].mint < c[i - 1].mint)
			return true;
	return false;
}

/* A run of a member's chunks (arrival order) placed as one piece by the overlap split. */
typedef struct unit {
	size_t from, n, seq;
	int64_t mint, maxt;
} unit_t;

static int unit_cmp(const void *a, const void *b)
{
	const unit_t *x = a, *y = b;
	if (x->mint != y->mint)
		return x->mint < y->mint ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Overlap split (thanos.md §6.3): a member whose encoded chunks overlap in time holds several replicas
 * (a peer returned them as one series, or gRPC frames with equal labels were joined). The pieces are
 * placed in mint order, each into the first replica whose last chunk ends before the piece starts,
 * else into a new one (first fit, as Thanos). A piece is one chunk when the chunks arrive in mint
 * order (a peer's interleaved replicas); when they do not, it is each run of chunks following each
 * other in time as they arrived: the gRPC client keeps joined frames in arrival order for
 * without_replica_labels requests, so a replica sent as one series stays one piece even where a
 * chunk of it falls into a gap of another replica (grpc_client.h). The first replica stays in the
 * member's place, the others are appended as members; each has its chunks in mint order. */
static void split_overlaps(proxy_set_t *ps)
{
	size_t n0 = ps->nmembers;
	for (size_t i = 0; i < n0; i++) {
		member_t m = ps->members[i];
		if (m.nchunks < 2 || !chunks_overlap(m.chunks, (size_t)m.nchunks))
			continue;
		size_t n = (size_t)m.nchunks, nu = 0, nr = 0;
		const chunk_t *c = m.chunks;
		bool sorted = true;
		for (size_t k = 1; k < n && sorted; k++)
			sorted = c[k].mint >= c[k - 1].mint;
		unit_t *u = ARENA_NEW_ARRAY(&ps->grp, unit_t, n);
		for (size_t k = 0; k < n; k++) {
			if (sorted || k == 0 || c[k].mint <= c[k - 1].maxt) {
				u[nu] = (unit_t){k, 0, nu, c[k].mint, c[k].maxt};
				nu++;
			}
			unit_t *cu = &u[nu - 1];
			cu->n++;
			if (c[k].maxt > cu->maxt)
				cu->maxt = c[k].maxt;
		}
		qsort(u, nu, sizeof *u, unit_cmp);
		size_t *asg = ARENA_NEW_ARRAY(&ps->grp, size_t, nu);
		size_t *cnt = ARENA_NEW_ARRAY(&ps->grp, size_t, nu);
		int64_t *last = ARENA_NEW_ARRAY(&ps->grp, int64_t, nu);
		for (size_t k = 0; k < nu; k++) {
			size_t r = 0;
			while (r < nr && last[r] >= u[k].mint)
				r++;
			if (r == nr)
				cnt[nr++] = 0;
			last[r] = u[k].maxt;
			cnt[r] += u[k].n;
			asg[k] = r;
		}
		chunk_t *out = ARENA_NEW_ARRAY(&ps->grp, chunk_t, n);
		size_t off = 0;
		for (size_t r = 0; r < nr; r++) {
			member_t sm = {NULL, out + off, (int)cnt[r]};
			for (size_t k = 0; k < nu; k++)
				if (asg[k] == r)
					for (size_t j = 0; j < u[k].n; j++)
						out[off++] = c[u[k].from + j];
			if (r == 0)
				ps->members[i] = sm;
			else
				push_member(ps, &sm);
		}
	}
}

/* A wrl stream's series with labels cur, and the ones after it with the same labels (its replicas),
 * become members: each is copied into ps->grp before the stream moves on; the stream is left on its
 * next different series (back in the heap) or done. */
static int take_wrl(proxy_set_t *ps, size_t idx, const labels_t *cur, err_t *err)
{
	stream_t *st = &ps->streams[idx];
	for (;;) {
		member_t m = {0};
		int rc = copy_chunks(ps, &ps->grp, st->set, &m, err);
		if (rc < 0)
			return store_failed(ps, st, rc, err);
		push_member(ps, &m);
		if ((rc = stream_advance(ps, st, err)) <= 0)
			return rc;
		if (!labels_eq(&st->head, cur)) {
			heap_push(ps, idx);
			return 0;
		}
	}
}

static int pset_next(series_set_t *base, err_t *err)
{
	proxy_set_t *ps = (proxy_set_t *)base;
	if (ps->req->limit > 0 && ps->returned >= ps->req->limit)
		return 0;
	if (ps->wrl_out && ps->emit + 1 < ps->nmembers) { /* the group's next replica, same labels */
		ps->emit++;
		ps->returned++;
		return 1;
	}
	arena_reset(&ps->grp); /* the previous series' copies and split arrays */
	/* Streams whose series were consumed last time advance now (their data stayed valid until here). */
	for (size_t k = 0; k < ps->nconsumed; k++) {
		stream_t *st = &ps->streams[ps->consumed[k]];
		int rc = stream_advance(ps, st, err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			heap_push(ps, ps->consumed[k]);
	}
	ps->nconsumed = 0;
	if (ps->nheap == 0)
		return 0;
	/* The minimum head; every stream with that head contributes (buffered ones possibly several
	 * times: one store's replicas of the series follow each other after the re-sort). */
	labels_t cur = ps->streams[ps->heap[0]].head;
	if (ps->have_wrl) /* a wrl stream's head changes below */
		cur = labels_copy(&ps->grp, &cur);
	ps->nmembers = 0;
	while (ps->nheap > 0 && labels_eq(&ps->streams[ps->heap[0]].head, &cur)) {
		size_t i = heap_pop(ps);
		stream_t *st = &ps->streams[i];
		if (st->wrl) {
			int rc = take_wrl(ps, i, &cur, err);
			if (rc < 0)
				return rc;
			continue;
		}
		push_member(ps, &st->m);
		if (st->buffered)
			while (st->pos < st->nentries && labels_eq(&st->entries[st->pos].ls, &cur))
				push_member(ps, &st->entries[st->pos++].m);
		ps->consumed[ps->nconsumed++] = i;
	}
	if (ps->dedup && !ps->req->skip_chunks)
		split_overlaps(ps);
	ps->emit = 0;
	ps->cur = cur;
	ps->returned++;
	return 1;
}

static const labels_t *pset_labels(series_set_t *base)
{
	return &((proxy_set_t *)base)->cur;
}

static void ensure_its(proxy_set_t *ps, size_t n)
{
	if (n <= ps->capits)
		return;
	size_t cap = n < 8 ? 8 : 2 * n;
	ps->xits = ARENA_NEW_ARRAY(ps->a, xor_iter_t, cap);
	ps->aits = ARENA_NEW_ARRAY(ps->a, aggr_iter_t, cap);
	ps->its = ARENA_NEW_ARRAY(ps->a, sample_iter_t *, cap);
	ps->cursors = ARENA_NEW_ARRAY(ps->a, dedup_cursor_t, cap);
	ps->capits = cap;
}

static sample_iter_t *member_samples(proxy_set_t *ps, const member_t *m, size_t i)
{
	if (m->src)
		return series_set_samples(m->src);
	size_t n = (size_t)(m->nchunks > 0 ? m->nchunks : 0);
	if (aggr_chunks_any(m->chunks, n)) {
		/* downsampled: the aggregates the request asked for (store.h) */
		aggr_iter_init(&ps->aits[i], m->chunks, n, ps->req->mint, ps->req->maxt,
			       store_aggr_view(ps->req->aggregates));
		return &ps->aits[i].base;
	}
	xor_iter_init(&ps->xits[i], m->chunks, n, ps->req->mint, ps->req->maxt);
	return &ps->xits[i].base;
}

static sample_iter_t *pset_samples(series_set_t *base)
{
	proxy_set_t *ps = (proxy_set_t *)base;
	if (ps->req->skip_chunks)
		return sample_iter_empty();
	ensure_its(ps, ps->nmembers);
	if (ps->wrl_out)
		return member_samples(ps, &ps->members[ps->emit], 0);
	if (ps->nmembers == 1)
		return member_samples(ps, &ps->members[0], 0);
	for (size_t i = 0; i < ps->nmembers; i++)
		ps->its[i] = member_samples(ps, &ps->members[i], i);
	dedup_iter_init(&ps->dd, ps->cursors, ps->its, ps->nmembers, ps->dedup ? ps->req->dedup_mode : DEDUP_CHAIN,
			ps->counter);
	return &ps->dd.base;
}

static int chunk_cmp(const void *a, const void *b)
{
	const chunk_t *x = a, *y = b;
	if (x->mint != y->mint)
		return x->mint < y->mint ? -1 : 1;
	if (x->maxt != y->maxt)
		return x->maxt < y->maxt ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->data, y->data, x->len);
}

static int pset_chunks(series_set_t *base, const chunk_t **out)
{
	proxy_set_t *ps = (proxy_set_t *)base;
	if (ps->req->skip_chunks) {
		*out = NULL;
		return 0;
	}
	/* One member's chunks go out as they are, aggregate (downsampled) ones included: the consumer reads
	 * them through the request's view (the engine's decode_aggr_chunks, a StoreAPI client). */
	if (ps->nmembers == 1 || ps->wrl_out) {
		*out = ps->members[ps->emit].chunks;
		return ps->members[ps->emit].nchunks;
	}
	/* Several members with aggregate chunks merge through the view's samples only. */
	for (size_t i = 0; i < ps->nmembers; i++)
		if (ps->members[i].nchunks > 0 &&
		    aggr_chunks_any(ps->members[i].chunks, (size_t)ps->members[i].nchunks))
			return -1;
	/* Replicas must go through the dedup iterator; so must sources without encoded chunks. */
	if (ps->dedup)
		return -1;
	size_t total = 0;
	for (size_t i = 0; i < ps->nmembers; i++) {
		if (ps->members[i].nchunks < 0)
			return -1;
		total += (size_t)ps->members[i].nchunks;
	}
	if (total > ps->capchunks) {
		ps->capchunks = 2 * total;
		ps->chunks = ARENA_NEW_ARRAY(ps->a, chunk_t, ps->capchunks);
	}
	size_t n = 0;
	for (size_t i = 0; i < ps->nmembers; i++)
		for (int j = 0; j < ps->members[i].nchunks; j++)
			ps->chunks[n++] = ps->members[i].chunks[j];
	qsort(ps->chunks, n, sizeof *ps->chunks, chunk_cmp);
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (w == 0 || chunk_cmp(&ps->chunks[w - 1], &ps->chunks[i]) != 0)
			ps->chunks[w++] = ps->chunks[i];
	*out = ps->chunks;
	return (int)w;
}

/* Downsampled data: members with aggregate chunks are read through the request's view (member_samples). */
static bool pset_aggr_samples(series_set_t *base)
{
	proxy_set_t *ps = (proxy_set_t *)base;
	if (ps->req->skip_chunks)
		return false;
	size_t lo = ps->wrl_out ? ps->emit : 0, hi = ps->wrl_out ? ps->emit + 1 : ps->nmembers;
	for (size_t i = lo; i < hi; i++) {
		const member_t *m = &ps->members[i];
		if (m->src ? series_set_aggr_samples(m->src)
		           : m->nchunks > 0 && aggr_chunks_any(m->chunks, (size_t)m->nchunks))
			return true;
	}
	return false;
}

static size_t pset_warnings(series_set_t *base, const char *const **out)
{
	proxy_set_t *ps = (proxy_set_t *)base;
	*out = ps->warnings;
	return ps->nwarnings;
}

static void pset_close(series_set_t *base)
{
	proxy_set_t *ps = (proxy_set_t *)base;
	for (size_t i = 0; i < ps->nstreams; i++) {
		series_set_close(ps->streams[i].set);
		ps->streams[i].set = NULL;
	}
	arena_release(&ps->grp);
}

static void pset_cleanup(void *arg)
{
	arena_release(&((proxy_set_t *)arg)->grp); /* idempotent; callers that release without closing */
}

static const struct series_set_ops proxy_set_ops = {
	.next = pset_next,
	.labels = pset_labels,
	.samples = pset_samples,
	.chunks = pset_chunks,
	.warnings = pset_warnings,
	.close = pset_close,
	.aggr_samples = pset_aggr_samples,
};

/* Is each replica label an external label of the store with one value in all its label sets, i.e.
 * constant over all its series? Then removing them keeps its stream sorted (up to the prefix case
 * strip_head warns about) and it can be streamed. */
static bool replicas_constant(const store_info_t *info, const str_t *names, size_t n)
{
	if (info->nlabel_sets == 0)
		return false;
	for (size_t j = 0; j < n; j++) {
		str_t v0 = {0};
		for (size_t s = 0; s < info->nlabel_sets; s++) {
			bool found = false;
			str_t v = labels_get(&info->label_sets[s], names[j], &found);
			if (!found || (s > 0 && !str_eq(v, v0)))
				return false;
			v0 = v;
		}
	}
	return true;
}

/* Should store s be asked? Fills *selected (and *constant: replicas_constant); a failing info() is a
 * store failure. */
static int select_store(proxy_set_t *ps, store_t *s, int64_t mint, int64_t maxt, const matcher_t *ms, size_t nms,
			bool *selected, bool *constant, bool *wrl, err_t *err)
{
	store_info_t info;
	*selected = false;
	if (constant)
		*constant = false;
	if (wrl)
		*wrl = false;
	int rc = store_info(s, ps->a, &info, err);
	if (rc < 0) {
		stream_t tmp = {.store = s};
		return store_failed(ps, &tmp, rc, err);
	}
	if (info.mint > maxt || info.maxt < mint)
		return 0;
	*selected = store_labelsets_compatible(info.label_sets, info.nlabel_sets, ms, nms);
	if (constant && ps->req->nreplica_labels)
		*constant = replicas_constant(&info, ps->req->replica_labels, ps->req->nreplica_labels);
	if (wrl)
		*wrl = info.supports_without_replica_labels;
	return 0;
}

static int proxy_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	proxy_store_t *p = (proxy_store_t *)base;
	proxy_set_t *ps = ARENA_NEW(a, proxy_set_t);
	ps->base.ops = &proxy_set_ops;
	ps->a = a;
	store_series_req_t *r = arena_memdup(a, req, sizeof *req);
	if (r->without_replica_labels && r->nreplica_labels == 0)
		r->without_replica_labels = false;
	req = ps->req = r;
	/* without_replica_labels (proxy_info announces it): the streams are stripped as for dedup, and
	 * every member of a group is returned as a series of its own (the asker deduplicates) */
	ps->wrl_out = req->without_replica_labels;
	ps->dedup = req->nreplica_labels > 0 && !ps->wrl_out;
	bool strip = ps->dedup || ps->wrl_out;
	ps->counter = store_func_is_counter(req->func);
	ps->abort = req->abort_on_error;
	ps->streams = ARENA_NEW_ARRAY(a, stream_t, p->n ? p->n : 1);
	ps->heap = ARENA_NEW_ARRAY(a, size_t, p->n ? p->n : 1);
	ps->consumed = ARENA_NEW_ARRAY(a, size_t, p->n ? p->n : 1);
	arena_init(&ps->grp, 16 * 1024);
	arena_on_release(a, pset_cleanup, ps);
	store_series_req_t *sub = ARENA_NEW_ARRAY(a, store_series_req_t, 2);
	sub[0] = *req;
	sub[0].limit = strip ? 0 : req->limit; /* dedup merges and re-sorts series: the limit applies after */
	sub[0].without_replica_labels = false;
	sub[1] = sub[0];
	sub[1].without_replica_labels = strip; /* for stores that support it */
	/* Every selected store's call starts first, and only then is each one's first answer waited for (or,
	 * for a store whose replica labels vary, its whole answer read), store by store: the stores work at
	 * the same time instead of each starting after the previous one's first frame. A store that fails to
	 * start is dealt with in its turn (warning, or the call's error), so what comes out (series,
	 * warnings, which store's error) is as if they had started one after the other; under abort, no
	 * store after a failed one is started. */
	typedef struct start {
		store_t *s;
		stream_t *st; /* NULL: not selected, or failed before its call (err) */
		int rc;
		err_t err;
		bool constant, wrl;
	} start_t;
	start_t *sv = ARENA_NEW_ARRAY(a, start_t, p->n ? p->n : 1);
	size_t nsv = 0;
	for (size_t i = 0; i < p->n; i++) {
		start_t *x = &sv[nsv++];
		memset(x, 0, sizeof *x);
		x->s = p->stores[i];
		bool sel;
		store_info_t info;
		x->rc = store_info(x->s, ps->a, &info, &x->err);
		if (x->rc < 0) {
			if (ps->abort)
				break;
			continue;
		}
		if (info.mint > req->maxt || info.maxt < req->mint)
			continue;
		sel = store_labelsets_compatible(info.label_sets, info.nlabel_sets, req->ms, req->nms);
		if (!sel)
			continue;
		x->constant = req->nreplica_labels &&
		              replicas_constant(&info, req->replica_labels, req->nreplica_labels);
		x->wrl = info.supports_without_replica_labels && strip;
		stream_t *st = x->st = &ps->streams[ps->nstreams++];
		st->store = x->s;
		x->rc = store_series(st->store, a, &sub[x->wrl], &st->set, &x->err);
		if (x->rc < 0) {
			st->set = NULL;
			if (ps->abort)
				break;
		}
	}
	for (size_t k = 0; k < nsv; k++) {
		start_t *x = &sv[k];
		stream_t *st = x->st;
		int rc;
		if (x->rc < 0) { /* Info or the call failed */
			*err = x->err;
			stream_t tmp = {.store = x->s};
			if ((rc = store_failed(ps, st ? st : &tmp, x->rc, err)) < 0)
				goto fail;
			continue;
		}
		if (!st)
			continue;
		if (x->wrl) {
			/* sorted without the replica labels by the store, replicas as consecutive series;
			 * strip still removes any it left (and checks the order) */
			st->strip = st->wrl = true;
			ps->have_wrl = true;
		} else if (strip && x->constant) {
			st->strip = true;
		} else if (strip) {
			st->buffered = true;
			if ((rc = buffer_stream(ps, st, err)) < 0)
				goto fail;
			collect_set_warnings(ps, st);
			series_set_close(st->set);
			st->set = NULL;
			if (st->done)
				continue;
		}
		if ((rc = stream_advance(ps, st, err)) < 0)
			goto fail;
		if (rc == 1)
			heap_push(ps, (size_t)(st - ps->streams));
	}
	*out = &ps->base;
	return 0;
fail:
	pset_close(&ps->base);
	return err->code ? err->code : ERR_INTERNAL;
}

static int proxy_labels(store_t *base, arena_t *a, const store_label_req_t *req, bool names, store_strings_t *out,
			err_t *err)
{
	proxy_store_t *p = (proxy_store_t *)base;
	proxy_set_t ps = {.a = a, .abort = req->abort_on_error};
	size_t cap = 64, n = 0;
	str_t *v = ARENA_NEW_ARRAY(a, str_t, cap);
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < p->n; i++) {
		bool sel;
		int rc = select_store(&ps, p->stores[i], req->mint, req->maxt, req->ms, req->nms, &sel, NULL, NULL, err);
		if (rc < 0)
			return rc;
		if (!sel)
			continue;
		store_strings_t r;
		stream_t st = {.store = p->stores[i]};
		rc = names ? store_label_names(st.store, a, req, &r, err) : store_label_values(st.store, a, req, &r, err);
		if (rc < 0) {
			if ((rc = store_failed(&ps, &st, rc, err)) < 0)
				return rc;
			continue;
		}
		for (size_t j = 0; j < r.nwarnings; j++)
			add_warning(&ps, st.store->name, r.warnings[j]);
		if (n + r.n > cap) {
			size_t ncap = 2 * (n + r.n);
			v = arena_realloc(a, v, cap * sizeof *v, ncap * sizeof *v);
			cap = ncap;
		}
		memcpy(v + n, r.v, r.n * sizeof *v);
		n += r.n;
	}
	n = store_strings_sort_unique(v, n);
	if (req->limit > 0 && (int64_t)n > req->limit)
		n = (size_t)req->limit;
	out->v = v;
	out->n = n;
	out->warnings = ps.warnings;
	out->nwarnings = ps.nwarnings;
	return 0;
}

static int proxy_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
			     err_t *err)
{
	return proxy_labels(base, a, req, true, out, err);
}

static int proxy_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
			      err_t *err)
{
	return proxy_labels(base, a, req, false, out, err);
}

/* Union of the stores' label sets and time ranges; failing stores are left out. */
static int proxy_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	proxy_store_t *p = (proxy_store_t *)base;
	size_t cap = 8, n = 0;
	labels_t *sets = ARENA_NEW_ARRAY(a, labels_t, cap);
	out->mint = INT64_MAX;
	out->maxt = INT64_MIN;
	for (size_t i = 0; i < p->n; i++) {
		store_info_t si;
		err_t e = {0};
		if (store_info(p->stores[i], a, &si, &e) < 0)
			continue;
		if (si.mint < out->mint)
			out->mint = si.mint;
		if (si.maxt > out->maxt)
			out->maxt = si.maxt;
		if (n + si.nlabel_sets > cap) {
			size_t ncap = 2 * (n + si.nlabel_sets);
			sets = arena_realloc(a, sets, cap * sizeof *sets, ncap * sizeof *sets);
			cap = ncap;
		}
		for (size_t j = 0; j < si.nlabel_sets; j++)
			sets[n++] = si.label_sets[j];
	}
	(void)err;
	out->label_sets = sets;
	out->nlabel_sets = n;
	out->component_type = "query"; /* a proxy over stores is what a querier serves */
	out->supports_without_replica_labels = true; /* proxy_series */
	return 0;
}

static void proxy_free_base(store_t *base)
{
	proxy_store_free((proxy_store_t *)base);
}

static const struct store_ops proxy_ops = {
	.series = proxy_series,
	.label_names = proxy_label_names,
	.label_values = proxy_label_values,
	.info = proxy_info,
	.free = proxy_free_base,
};

proxy_store_t *proxy_store_new(const char *name)
{
	proxy_store_t *p = xcalloc(1, sizeof *p);
	p->base.ops = &proxy_ops;
	p->base.name = xstrdup(name);
	return p;
}

void proxy_store_add(proxy_store_t *p, store_t *s)
{
	if (p->n == p->cap) {
		p->cap = alloc_grow_cap(p->cap, p->n + 1);
		p->stores = xreallocarray(p->stores, p->cap, sizeof *p->stores);
	}
	p->stores[p->n++] = s;
}

store_t *proxy_store_base(proxy_store_t *p)
{
	return &p->base;
}

void proxy_store_free(proxy_store_t *p)
{
	if (!p)
		return;
	free((char *)p->base.name);
	free(p->stores);
	free(p);
}
