/*
 * head.c — the head's tables (series, strings, label pairs, postings), commits, chunk cutting,
 * out-of-order lists and truncation. Reading is in headquery.c, opening and the WAL's replay and
 * checkpoints in headreplay.c.
 */
#include "tsdb/head_int.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/varint.h"

/* ---- open addressing (see head_int.h) ---- */

static inline uint32_t slot_hash(uint64_t s)
{
	return (uint32_t)(s >> 32);
}

static inline uint32_t slot_id(uint64_t s)
{
	return (uint32_t)s - 1;
}

void head_htab_init(htab_t *t, uint32_t cap)
{
	uint32_t c = 16;
	while (c < cap)
		c <<= 1;
	t->slots = xcalloc(c, sizeof(uint64_t));
	t->mask = c - 1;
	t->n = 0;
}

void head_htab_release(htab_t *t)
{
	free(t->slots);
	memset(t, 0, sizeof *t);
}

static void htab_raw_put(htab_t *t, uint64_t slot)
{
	uint32_t i = slot_hash(slot) & t->mask;
	while (t->slots[i])
		i = (i + 1) & t->mask;
	t->slots[i] = slot;
}

static void htab_put(htab_t *t, uint32_t hash, uint32_t id)
{
	/* grown past 3/4 full: 8-byte slots then cost 11-21 bytes per entry (16-32 at 1/2) */
	if ((uint64_t)(t->n + 1) * 4 > ((uint64_t)t->mask + 1) * 3) {
		htab_t nt;
		head_htab_init(&nt, (t->mask + 1) * 2);
		for (uint32_t i = 0; i <= t->mask; i++)
			if (t->slots[i])
				htab_raw_put(&nt, t->slots[i]);
		nt.n = t->n;
		free(t->slots);
		*t = nt;
	}
	htab_raw_put(t, ((uint64_t)hash << 32) | (uint64_t)(id + 1));
	t->n++;
}

/* Remove the slot holding id (home hash), shifting the entries after it back. */
static void htab_del(htab_t *t, uint32_t hash, uint32_t id)
{
	uint64_t want = ((uint64_t)hash << 32) | (uint64_t)(id + 1);
	uint32_t i = hash & t->mask;
	while (t->slots[i] != want) {
		BUG_ON(!t->slots[i]);
		i = (i + 1) & t->mask;
	}
	for (uint32_t j = (i + 1) & t->mask;; j = (j + 1) & t->mask) {
		uint64_t s = t->slots[j];
		if (!s)
			break;
		uint32_t k = slot_hash(s) & t->mask;
		/* move s into the hole at i unless its home lies cyclically in (i, j] */
		bool stay = i <= j ? (k > i && k <= j) : (k > i || k <= j);
		if (!stay) {
			t->slots[i] = s;
			i = j;
		}
	}
	t->slots[i] = 0;
	t->n--;
}

/* ---- paged vector ---- */

void pvec_init(pvec_t *v, size_t elem)
{
	memset(v, 0, sizeof *v);
	v->elem = elem;
	atomic_store(&v->dir, NULL);
}

void pvec_release(pvec_t *v)
{
	void **d = atomic_load(&v->dir);
	for (size_t i = 0; i < v->npages; i++)
		free(d[i]);
	free(d);
	for (size_t i = 0; i < v->retired.n; i++)
		free(v->retired.v[i]);
	VEC_FREE(&v->retired);
	memset(v, 0, sizeof *v);
}

size_t pvec_push(pvec_t *v)
{
	size_t i = v->n;
	if ((i >> PVEC_BITS) >= v->npages) {
		void **d = atomic_load(&v->dir);
		if (v->npages == v->dircap) {
			size_t cap = v->dircap ? v->dircap * 2 : 16;
			void **nd = xcalloc(cap, sizeof(void *));
			if (d)
				memcpy(nd, d, v->npages * sizeof(void *));
			if (d)
				VEC_PUSH(&v->retired, d);
			v->dircap = cap;
			d = nd;
		}
		d[v->npages++] = xcalloc((size_t)1 << PVEC_BITS, v->elem);
		atomic_store_explicit(&v->dir, d, memory_order_release);
	}
	v->n++;
	memset(pvec_at(v, i), 0, v->elem);
	return i;
}

/* ---- gc gate ---- */

void hgc_init(hgc_t *g)
{
	memset(g, 0, sizeof *g);
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
}

void hgc_destroy(hgc_t *g)
{
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
}

void hgc_read_lock(hgc_t *g)
{
	pthread_mutex_lock(&g->mu);
	while (g->writer || g->writers_waiting)
		pthread_cond_wait(&g->cv, &g->mu);
	g->readers++;
	pthread_mutex_unlock(&g->mu);
}

void hgc_read_unlock(hgc_t *g)
{
	pthread_mutex_lock(&g->mu);
	BUG_ON(!g->readers);
	if (--g->readers == 0)
		pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

void hgc_write_lock(hgc_t *g)
{
	pthread_mutex_lock(&g->mu);
	g->writers_waiting++;
	while (g->writer || g->readers)
		pthread_cond_wait(&g->cv, &g->mu);
	g->writers_waiting--;
	g->writer = true;
	pthread_mutex_unlock(&g->mu);
}

void hgc_write_unlock(hgc_t *g)
{
	pthread_mutex_lock(&g->mu);
	g->writer = false;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* ---- strings ---- */

static uint32_t str_hash32(str_t s)
{
	return (uint32_t)XXH3_64bits(s.p, s.n);
}

int64_t head_sym_find(const head_t *h, str_t s)
{
	uint32_t hash = str_hash32(s);
	const htab_t *t = &h->sym_tab;
	for (uint32_t i = hash & t->mask; t->slots[i]; i = (i + 1) & t->mask) {
		if (slot_hash(t->slots[i]) != hash)
			continue;
		const hsym_t *y = head_sym(h, slot_id(t->slots[i]));
		if (y->len == s.n && memcmp(y->p, s.p, s.n) == 0)
			return slot_id(t->slots[i]);
	}
	return -1;
}

static uint32_t sym_intern(head_t *h, str_t s)
{
	int64_t f = head_sym_find(h, s);
	if (f >= 0)
		return (uint32_t)f;
	uint32_t id;
	if (h->free_syms.n) {
		id = VEC_POP(&h->free_syms);
	} else {
		BUG_ON(h->syms.n >= UINT32_MAX - 1);
		id = (uint32_t)pvec_push(&h->syms);
	}
	hsym_t *y = head_sym(h, id);
	y->p = hslab_alloc(&h->slab, s.n + 1);
	memcpy(y->p, s.p, s.n);
	y->len = (uint32_t)s.n;
	y->refs = 0;
	htab_put(&h->sym_tab, str_hash32(s), id);
	return id;
}

static void sym_unref(head_t *h, uint32_t id)
{
	hsym_t *y = head_sym(h, id);
	BUG_ON(y->refs == 0);
	if (--y->refs)
		return;
	htab_del(&h->sym_tab, str_hash32(str_from(y->p, y->len)), id);
	hslab_free(&h->slab, y->p, (size_t)y->len + 1);
	y->p = NULL;
	y->len = 0;
	VEC_PUSH(&h->free_syms, id);
}

/* ---- label pairs and names ---- */

static inline uint32_t pair_hash(uint32_t name, uint32_t value)
{
	return (uint32_t)hash_u64(((uint64_t)name << 32) | value);
}

int64_t head_pair_find(const head_t *h, uint32_t name, uint32_t value)
{
	uint32_t hash = pair_hash(name, value);
	const htab_t *t = &h->pair_tab;
	for (uint32_t i = hash & t->mask; t->slots[i]; i = (i + 1) & t->mask) {
		if (slot_hash(t->slots[i]) != hash)
			continue;
		const hpair_t *p = head_pair(h, slot_id(t->slots[i]));
		if (p->name == name && p->value == value)
			return slot_id(t->slots[i]);
	}
	return -1;
}

hname_t *head_name_find(const head_t *h, uint32_t name_sym)
{
	uint64_t ix;
	if (!imap_get(&h->name_idx, name_sym, &ix))
		return NULL;
	return &h->names.v[ix];
}

static uint32_t pair_intern(head_t *h, uint32_t name, uint32_t value)
{
	int64_t f = head_pair_find(h, name, value);
	if (f >= 0)
		return (uint32_t)f;
	uint32_t id;
	if (h->free_pairs.n) {
		id = VEC_POP(&h->free_pairs);
	} else {
		BUG_ON(h->pairs.n >= UINT32_MAX - 1);
		id = (uint32_t)pvec_push(&h->pairs);
	}
	hpair_t *p = head_pair(h, id);
	memset(p, 0, sizeof *p);
	p->name = name;
	p->value = value;
	head_sym(h, name)->refs++;
	head_sym(h, value)->refs++;
	htab_put(&h->pair_tab, pair_hash(name, value), id);
	hname_t *nm = head_name_find(h, name);
	if (!nm) {
		imap_put(&h->name_idx, name, h->names.n);
		nm = VEC_ADD(&h->names);
		nm->sym = name;
		head_sym(h, name)->refs++; /* the names entry keeps its name */
	}
	VEC_PUSH(&nm->pairs, id);
	return id;
}

static void pair_add_id(hpair_t *p, uint32_t id)
{
	if (p->cap == 0 && p->n < 2) {
		p->u.one[p->n++] = id;
		return;
	}
	if (p->cap == 0) {
		uint32_t *v = xmalloc(4 * sizeof(uint32_t));
		v[0] = p->u.one[0];
		v[1] = p->u.one[1];
		p->u.ids = v;
		p->cap = 4;
	} else if (p->n == p->cap) {
		uint32_t cap = p->cap < 1024 ? p->cap * 2 : p->cap + p->cap / 4;
		p->u.ids = xreallocarray(p->u.ids, cap, sizeof(uint32_t));
		p->cap = cap;
	}
	p->u.ids[p->n++] = id;
}

/* ---- series pages ---- */

static void series_put(head_t *h, uint32_t id, hseries_t *s)
{
	size_t pg = id >> HEAD_PAGE_BITS;
	while (h->pages.n <= pg) {
		VEC_PUSH(&h->pages, NULL);
		VEC_PUSH(&h->page_counts, 0);
	}
	if (!h->pages.v[pg]) {
		BUG_ON(!s);
		h->pages.v[pg] = xcalloc(HEAD_PAGE_SIZE, sizeof(hseries_t *));
	}
	hseries_t **slot = &h->pages.v[pg][id & (HEAD_PAGE_SIZE - 1)];
	if (s && !*slot)
		h->page_counts.v[pg]++;
	else if (!s && *slot)
		h->page_counts.v[pg]--;
	*slot = s;
	if (!h->page_counts.v[pg]) {
		free(h->pages.v[pg]);
		h->pages.v[pg] = NULL;
	}
}

/* ---- metadata families ---- */

static const char *const family_suffixes[] = {"_bucket",  "_count", "_sum",    "_total",
                                              "_created", "_info",  "_gcount", "_gsum"};

/* Family index + 1 of a metric name (exact, then without a known suffix), 0 if none. */
static uint32_t family_of(const head_t *h, str_t name)
{
	void *v = hmap_get(&h->family_map, name);
	if (v)
		return (uint32_t)(uintptr_t)v;
	for (size_t i = 0; i < ARRAY_LEN(family_suffixes); i++) {
		str_t suf = str_c(family_suffixes[i]);
		if (name.n > suf.n && str_has_suffix(name, suf)) {
			v = hmap_get(&h->family_map, str_from(name.p, name.n - suf.n));
			if (v)
				return (uint32_t)(uintptr_t)v;
		}
	}
	return 0;
}

static uint32_t family_intern(head_t *h, str_t name)
{
	void *v = hmap_get(&h->family_map, name);
	if (v)
		return (uint32_t)(uintptr_t)v;
	hfamily_t *f = VEC_ADD(&h->families);
	f->name = xstrndup(name.n ? name.p : "", name.n);
	/* the map's keys point at family names, which never move (heap strings) */
	hmap_put(&h->family_map, str_from(f->name, name.n), (void *)(uintptr_t)h->families.n);
	return (uint32_t)h->families.n;
}

static bool family_set(head_t *h, uint32_t fam, uint8_t type, str_t unit, str_t help)
{
	hfamily_t *f = &h->families.v[fam - 1];
	if (f->set && f->type == type && str_eq(str_c(f->unit), unit) && str_eq(str_c(f->help), help))
		return false;
	free(f->unit);
	free(f->help);
	f->type = type;
	/* an empty unit or help may come without a pointer (str_t {NULL, 0}) */
	f->unit = xstrndup(unit.n ? unit.p : "", unit.n);
	f->help = xstrndup(help.n ? help.p : "", help.n);
	f->set = true;
	return true;
}

/* ---- series ---- */

/* The canonical form is what a remote-write body carries for the labels of a series (protobuf Label
 * fields: 0a len(label) 0a len(name) name 12 len(value) value, minimal varints), so a receiver can hash
 * the bytes it was sent (head_input_t.raw) instead of building them. */
void head_labels_key(buf_t *scratch, const labels_t *ls, uint64_t key[2])
{
	size_t n = 0;
	for (size_t i = 0; i < ls->n; i++) {
		size_t inner = 2 + uvarint_len(ls->v[i].name.n) + uvarint_len(ls->v[i].value.n) +
		               ls->v[i].name.n + ls->v[i].value.n;
		n += 1 + uvarint_len(inner) + inner;
	}
	buf_reset(scratch);
	uint8_t *p = (uint8_t *)buf_extend(scratch, n), *q = p;
	for (size_t i = 0; i < ls->n; i++) {
		str_t nm = ls->v[i].name, v = ls->v[i].value;
		size_t inner = 2 + uvarint_len(nm.n) + uvarint_len(v.n) + nm.n + v.n;
		*q++ = 0x0a;
		q += uvarint_put(q, inner);
		*q++ = 0x0a;
		q += uvarint_put(q, nm.n);
		memcpy(q, nm.p, nm.n);
		q += nm.n;
		*q++ = 0x12;
		q += uvarint_put(q, v.n);
		memcpy(q, v.p, v.n);
		q += v.n;
	}
	XXH128_hash_t x = XXH3_128bits(p, n);
	key[0] = x.low64;
	key[1] = x.high64;
}

hseries_t *head_series_lookup(const head_t *h, const uint64_t key[2])
{
	uint32_t hash = (uint32_t)key[0];
	const htab_t *t = &h->series_tab;
	for (uint32_t i = hash & t->mask; t->slots[i]; i = (i + 1) & t->mask) {
		if (slot_hash(t->slots[i]) != hash)
			continue;
		hseries_t *s = head_series_at(h, slot_id(t->slots[i]));
		if (s && s->key[0] == key[0] && s->key[1] == key[1])
			return s;
	}
	return NULL;
}

/* app_mu and idx (write) held. id 0 = the next free id. */
hseries_t *head_series_create(head_t *h, const labels_t *ls, const uint64_t key[2], uint32_t id)
{
	if (id == 0 || head_series_at(h, id)) {
		while (head_series_at(h, h->next_id))
			h->next_id++;
		id = h->next_id++;
	}
	if (id >= h->next_id)
		h->next_id = id + 1;
	BUG_ON(ls->n > UINT16_MAX);
	hseries_t *s = hslab_alloc(&h->slab, head_series_size(ls->n));
	s->key[0] = key[0];
	s->key[1] = key[1];
	s->id = id;
	s->nlabels = (uint16_t)ls->n;
	xor_app_init(&s->app);
	for (size_t i = 0; i < ls->n; i++) {
		uint32_t n = sym_intern(h, ls->v[i].name), v = sym_intern(h, ls->v[i].value);
		uint32_t p = pair_intern(h, n, v);
		pair_add_id(head_pair(h, p), id);
		s->pairs[i] = p;
	}
	if (h->all.n && VEC_LAST(&h->all) > id) {
		/* an id below the highest (replayed from a foreign WAL): keep the lists sorted */
		size_t pos = h->all.n;
		while (pos && h->all.v[pos - 1] > id)
			pos--;
		VEC_PUSH(&h->all, 0);
		memmove(&h->all.v[pos + 1], &h->all.v[pos], (h->all.n - 1 - pos) * sizeof(uint32_t));
		h->all.v[pos] = id;
		for (size_t i = 0; i < ls->n; i++) {
			hpair_t *p = head_pair(h, s->pairs[i]);
			uint32_t *ids = p->cap ? p->u.ids : p->u.one;
			for (size_t k = p->n - 1; k > 0 && ids[k - 1] > ids[k]; k--) {
				uint32_t x = ids[k];
				ids[k] = ids[k - 1];
				ids[k - 1] = x;
			}
		}
	} else {
		VEC_PUSH(&h->all, id);
	}
	series_put(h, id, s);
	htab_put(&h->series_tab, (uint32_t)key[0], id);
	bool found;
	str_t name = labels_get(ls, STR(LABEL_METRIC_NAME), &found);
	if (found)
		s->family = family_of(h, name);
	atomic_fetch_add(&h->nseries, 1);
	metric_inc(h->m_created);
	return s;
}

void head_series_free(head_t *h, hseries_t *s)
{
	xor_app_release(&s->app, &h->slab);
	hslab_free(&h->slab, s->mm, head_mm_bytes(s->nmm));
	head_ooo_drop(s, false);
	head_ooo_drop(s, true);
	hslab_free(&h->slab, s, head_series_size(s->nlabels));
}

str_t head_series_metric_name(const head_t *h, const hseries_t *s)
{
	for (uint16_t i = 0; i < s->nlabels; i++) {
		const hpair_t *p = head_pair(h, s->pairs[i]);
		const hsym_t *n = head_sym(h, p->name);
		if (n->len == 8 && !memcmp(n->p, LABEL_METRIC_NAME, 8))
			return head_sym_str(h, p->value);
	}
	return STR_NULL;
}

static int64_t range_for_ts(int64_t t, int64_t width)
{
	return (t / width) * width + width;
}

static int64_t chunk_end_time(int64_t start, int64_t cur, int64_t max)
{
	int64_t n = (max - start) / ((cur - start + 1) * 4);
	if (n <= 1)
		return max;
	return start + (max - start) / n;
}

/* ---- full-chunk lists (see hmm_t) ---- */

/* Switch s's list to hchunk_t entries. */
static void mm_widen(head_t *h, hseries_t *s)
{
	unsigned n = head_mm_count(s);
	hchunk_t *w = n ? hslab_alloc(&h->slab, n * sizeof(hchunk_t)) : NULL;
	for (unsigned i = 0; i < n; i++)
		w[i] = head_mm_at(s, i);
	hslab_free(&h->slab, s->mm, head_mm_bytes(s->nmm));
	s->mm = w;
	s->nmm = (uint16_t)(n | HEAD_MM_WIDE);
}

/* Can (mint, maxt) be an hmm_t entry against cmint? */
static inline bool mm_fits(int64_t cmint, int64_t mint, int64_t maxt)
{
	return mint <= cmint && (uint64_t)(cmint - mint) <= UINT32_MAX && maxt >= mint &&
	       (uint64_t)(maxt - mint) <= UINT32_MAX;
}

void head_mm_push(head_t *h, hseries_t *s, int64_t mint, int64_t maxt, uint64_t ref)
{
	unsigned n = head_mm_count(s);
	BUG_ON(n >= UINT16_MAX / 2);
	if (!(s->nmm & HEAD_MM_WIDE) && !mm_fits(s->cmint, mint, maxt))
		mm_widen(h, s);
	uint16_t nn = (uint16_t)((n + 1) | (s->nmm & HEAD_MM_WIDE));
	s->mm = hslab_resize(&h->slab, s->mm, head_mm_bytes(s->nmm), head_mm_bytes(nn));
	if (s->nmm & HEAD_MM_WIDE)
		((hchunk_t *)s->mm)[n] = (hchunk_t){mint, maxt, ref};
	else
		((hmm_t *)s->mm)[n] = (hmm_t){ref, (uint32_t)(s->cmint - mint), (uint32_t)(maxt - mint)};
	s->nmm = nn;
}

void head_mm_set_cmint(head_t *h, hseries_t *s, int64_t cmint)
{
	unsigned n = head_mm_count(s);
	if (n && !(s->nmm & HEAD_MM_WIDE) && cmint != s->cmint) {
		hmm_t *e = s->mm;
		int64_t first = s->cmint - (int64_t)e[0].back, last = s->cmint - (int64_t)e[n - 1].back;
		if (!mm_fits(cmint, first, first) || last > cmint) { /* the entries lie between these two */
			mm_widen(h, s);
		} else {
			int64_t d = cmint - s->cmint;
			for (unsigned i = 0; i < n; i++)
				e[i].back = (uint32_t)((int64_t)e[i].back + d);
		}
	}
	s->cmint = cmint;
}

void head_mm_drop_front(head_t *h, hseries_t *s, unsigned k)
{
	unsigned n = head_mm_count(s);
	BUG_ON(k > n);
	size_t esz = s->nmm & HEAD_MM_WIDE ? sizeof(hchunk_t) : sizeof(hmm_t);
	memmove(s->mm, (uint8_t *)s->mm + k * esz, (n - k) * esz);
	uint16_t nn = (uint16_t)((n - k) | (s->nmm & HEAD_MM_WIDE));
	if (nn == HEAD_MM_WIDE)
		nn = 0; /* empty: compact again */
	s->mm = hslab_resize(&h->slab, s->mm, head_mm_bytes(s->nmm), (n - k) * esz);
	s->nmm = nn;
}

void head_mm_set(head_t *h, hseries_t *s, const hchunk_t *v, unsigned n)
{
	BUG_ON(head_mm_count(s) || n >= UINT16_MAX / 2);
	if (!s->app.num && n)
		s->cmint = v[n - 1].mint; /* no open chunk: entries count back from the newest */
	for (unsigned i = 0; i < n; i++)
		head_mm_push(h, s, v[i].mint, v[i].maxt, v[i].ref);
}

/* Write the open chunk to chunks_head/ and remember it (stripe held). */
static int series_mmap_open_chunk(head_t *h, hseries_t *s, err_t *err)
{
	size_t len;
	const uint8_t *p = xor_app_bytes(&s->app, &len);
	if (!len)
		return 0;
	uint64_t ref;
	int rc = headchunks_write(h->hc, s->id, s->cmint, s->app.t, CHUNK_ENC_XOR, p, len, &ref, err);
	if (rc)
		return rc;
	head_mm_push(h, s, s->cmint, s->app.t, ref);
	metric_inc(h->m_chunks_created);
	return 0;
}

/* In-order append with Prometheus's chunk cutting (stripe held); t > the series' max time. */
int head_series_append(head_t *h, hseries_t *s, int64_t t, double v, err_t *err)
{
	if (s->app.num) {
		int num = s->app.num;
		if (num == XOR_SAMPLES_PER_CHUNK / 4)
			s->next_off =
			    (uint32_t)(chunk_end_time(s->cmint, s->app.t, s->cmint + s->next_off) - s->cmint);
		if (t - s->cmint >= s->next_off || num >= 2 * XOR_SAMPLES_PER_CHUNK) {
			int rc = series_mmap_open_chunk(h, s, err);
			if (rc)
				return rc;
			/* its bytes are on disk; the next chunk's buffer starts small */
			xor_app_release(&s->app, &h->slab);
		}
	}
	if (!s->app.num) {
		head_mm_set_cmint(h, s, t);
		/* a chunk also ends before its span reaches what xor_app_t holds (only a chunk range over
		 * 24 days gets there) */
		int64_t off = range_for_ts(t, h->o.chunk_range) - t;
		s->next_off =
		    off > (int64_t)XOR_APP_MAX_DELTA ? (uint32_t)XOR_APP_MAX_DELTA + 1 : (uint32_t)off;
	}
	xor_app_append(&s->app, &h->slab, t, v);
	return 0;
}

int64_t head_series_maxt(const hseries_t *s)
{
	if (s->app.num)
		return s->app.t;
	unsigned n = head_mm_count(s);
	return n ? head_mm_at(s, n - 1).maxt : INT64_MIN;
}

/* Bits of the series' newest in-order value (stripe held); false if it has none or it is unreadable. */
static bool series_last_bits(head_t *h, const hseries_t *s, uint64_t *bits)
{
	if (s->app.num) {
		*bits = s->app.v;
		return true;
	}
	unsigned n = head_mm_count(s);
	if (!n)
		return false;
	chunk_t c;
	xor_dec_t d;
	if (headchunks_get(h->hc, head_mm_at(s, n - 1).ref, &c, NULL) ||
	    xor_dec_init(&d, c.data, c.len, NULL))
		return false;
	int64_t t;
	double v;
	bool any = false;
	while (xor_dec_next(&d, &t, &v, NULL) == 1)
		any = true;
	if (any)
		memcpy(bits, &v, 8);
	return any;
}

/* ---- out-of-order lists ---- */

static size_t ooo_search(const hooo_t *o, int64_t t)
{
	size_t lo = 0, hi = o ? o->n : 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (o->t[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* 1 = timestamp held with these value bits, -1 = held with other bits, 0 = not held. */
static int ooo_has(const hooo_t *o, int64_t t, double v)
{
	size_t i = ooo_search(o, t);
	if (!o || i >= o->n || o->t[i] != t)
		return 0;
	return memcmp(&o->v[i], &v, 8) == 0 ? 1 : -1;
}

bool head_ooo_insert(hseries_t *s, bool cut, int64_t t, double v)
{
	if (!s->ooo)
		s->ooo = xcalloc(1, sizeof *s->ooo);
	hooo_t **op = cut ? &s->ooo->cut : &s->ooo->cur;
	hooo_t *o = *op;
	if (!o)
		o = *op = xcalloc(1, sizeof *o);
	size_t i = ooo_search(o, t);
	if (i < o->n && o->t[i] == t)
		return false;
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->t = xreallocarray(o->t, o->cap, sizeof(int64_t));
		o->v = xreallocarray(o->v, o->cap, sizeof(double));
	}
	memmove(&o->t[i + 1], &o->t[i], (o->n - i) * sizeof(int64_t));
	memmove(&o->v[i + 1], &o->v[i], (o->n - i) * sizeof(double));
	o->t[i] = t;
	o->v[i] = v;
	o->n++;
	return true;
}

static void ooo_free(hooo_t *o)
{
	if (!o)
		return;
	free(o->t);
	free(o->v);
	free(o);
}

void head_ooo_drop(hseries_t *s, bool cut)
{
	if (!s->ooo)
		return;
	hooo_t **op = cut ? &s->ooo->cut : &s->ooo->cur;
	ooo_free(*op);
	*op = NULL;
	if (!s->ooo->cur && !s->ooo->cut) {
		free(s->ooo);
		s->ooo = NULL;
	}
}

/* ---- commits ---- */

const char *head_verdict_str(head_verdict_t v)
{
	switch (v) {
	case HEAD_OK:
		return "ok";
	case HEAD_OUT_OF_ORDER:
		return "out of order sample";
	case HEAD_DUPLICATE:
		return "duplicate sample for timestamp";
	case HEAD_OUT_OF_BOUNDS:
		return "out of bounds";
	case HEAD_TOO_OLD:
		return "too old sample";
	case HEAD_TOO_FAR_IN_FUTURE:
		return "too far in the future";
	case HEAD_SERIES_LIMIT:
		return "head series limit reached";
	case HEAD_INVALID_LABELS:
		return "invalid labels";
	}
	return "?";
}

void head_set_series_limit(head_t *h, uint64_t limit)
{
	atomic_store(&h->series_limit, limit);
}

typedef struct judge_ctx {
	int64_t now, min_valid, hmaxt;
} judge_ctx_t;

enum { K_INORDER, K_SKIP, K_OOO }; /* what apply() does with a sample */

/* Is the in-order sample at t stored, and with which bits? Looks in the chunk covering t (the open one
 * or a mapped one): the rare path of a request sent again after a lost answer. */
static bool stored_bits(head_t *h, const hseries_t *s, int64_t t, uint64_t *bits)
{
	xor_dec_t d;
	size_t len;
	const uint8_t *p = NULL;
	if (s->app.num && t >= s->cmint) {
		p = xor_app_bytes(&s->app, &len);
	} else {
		for (unsigned i = 0; i < head_mm_count(s) && !p; i++) {
			hchunk_t m = head_mm_at(s, i);
			if (t >= m.mint && t <= m.maxt) {
				chunk_t c;
				if (headchunks_get(h->hc, m.ref, &c, NULL) != 0)
					return false;
				p = c.data;
				len = c.len;
			}
		}
	}
	if (!p || xor_dec_init(&d, p, len, NULL) != 0)
		return false;
	int64_t ct;
	double cv;
	while (xor_dec_next(&d, &ct, &cv, NULL) == 1) {
		if (ct == t) {
			memcpy(bits, &cv, 8);
			return true;
		}
		if (ct > t)
			break;
	}
	return false;
}

/* Decide every sample of x against s (NULL: a new series) without changing anything; the decision
 * per sample goes to h->app_kinds. */
static void judge(head_t *h, const judge_ctx_t *c, head_input_t *x, hseries_t *s)
{
	int64_t cur = s ? head_series_maxt(s) : INT64_MIN;
	uint64_t last = 0;
	bool have_last = false, looked = false;
	int64_t prev_t = INT64_MIN;
	uint64_t prev_bits = 0;
	VEC_RESERVE(&h->app_kinds, x->n);
	uint8_t *kind = h->app_kinds.v;
	for (size_t j = 0; j < x->n; j++) {
		int64_t t = x->t[j];
		uint64_t bits, sb;
		memcpy(&bits, &x->v[j], 8);
		int verdict = HEAD_OK;
		kind[j] = K_SKIP;
		if (h->o.too_far_in_future > 0 && t > c->now + h->o.too_far_in_future) {
			verdict = HEAD_TOO_FAR_IN_FUTURE;
		} else if (j && t == prev_t) {
			if (bits != prev_bits)
				verdict = HEAD_DUPLICATE;
		} else if (t >= c->min_valid && t > cur) {
			cur = t;
			last = bits;
			have_last = true;
			kind[j] = K_INORDER;
		} else if (t >= c->min_valid && t == cur) {
			if (!have_last && !looked && s) {
				looked = true;
				have_last = series_last_bits(h, s, &last);
			}
			if (!have_last || bits != last)
				verdict = HEAD_DUPLICATE;
		} else if (s && t >= c->min_valid && stored_bits(h, s, t, &sb)) {
			if (sb != bits)
				verdict = HEAD_DUPLICATE; /* a stored sample sent again: fine if identical */
		} else if (h->o.ooo_window > 0 && c->hmaxt != INT64_MIN && t >= c->hmaxt - h->o.ooo_window) {
			if (s && (ooo_has(head_ooo_cur(s), t, x->v[j]) < 0 ||
			          ooo_has(head_ooo_cut(s), t, x->v[j]) < 0))
				verdict = HEAD_DUPLICATE;
			kind[j] = K_OOO;
		} else if (h->o.ooo_window > 0) {
			verdict = HEAD_TOO_OLD;
		} else if (t < c->min_valid) {
			verdict = HEAD_OUT_OF_BOUNDS;
		} else {
			verdict = HEAD_OUT_OF_ORDER;
		}
		if (verdict != HEAD_OK) {
			x->verdict = (uint8_t)verdict;
			x->bad_t = t;
			return;
		}
		prev_t = t;
		prev_bits = bits;
	}
}

/* Apply a judged input (stripe held): the decisions judge() left in h->app_kinds, now with effect. */
static int apply(head_t *h, head_input_t *x, hseries_t *s, int64_t *mint, int64_t *maxt, err_t *err)
{
	const uint8_t *kind = h->app_kinds.v;
	for (size_t j = 0; j < x->n; j++) {
		int64_t t = x->t[j];
		double v = x->v[j];
		if (kind[j] == K_INORDER) {
			int rc = head_series_append(h, s, t, v, err);
			if (rc)
				return rc;
			VEC_PUSH(&h->app_samples, ((walrec_sample_t){s->id, t, v}));
			if (t < *mint)
				*mint = t;
			if (t > *maxt)
				*maxt = t;
			x->appended++;
		} else if (kind[j] == K_OOO && ooo_has(head_ooo_cut(s), t, v) == 0 &&
		           head_ooo_insert(s, false, t, v)) {
			VEC_PUSH(&h->app_ooo, ((walrec_sample_t){s->id, t, v}));
			atomic_fetch_add(&h->ooo_samples, 1);
			x->appended++;
		}
	}
	return 0;
}

static void update_range(head_t *h, int64_t mint, int64_t maxt)
{
	if (mint > maxt)
		return;
	int64_t cur = atomic_load(&h->mint);
	while (mint < cur && !atomic_compare_exchange_weak(&h->mint, &cur, mint))
		;
	cur = atomic_load(&h->maxt);
	while (maxt > cur && !atomic_compare_exchange_weak(&h->maxt, &cur, maxt))
		;
}

void head_update_range(head_t *h, int64_t mint, int64_t maxt)
{
	update_range(h, mint, maxt);
}

/* Metadata inputs: set each family, log a Metadata entry for every series of it (app_mu held). */
static void apply_meta(head_t *h, const head_meta_input_t *meta, size_t nmeta)
{
	for (size_t i = 0; i < nmeta; i++) {
		const head_meta_input_t *m = &meta[i];
		if (!m->family.n)
			continue;
		uint32_t fam = family_intern(h, m->family);
		if (!family_set(h, fam, m->type, m->unit, m->help))
			continue;
		/* every series named family or family + a known suffix */
		int64_t nsym = head_sym_find(h, STR(LABEL_METRIC_NAME));
		if (nsym < 0)
			continue;
		buf_t nb = BUF_INIT;
		for (size_t k = 0; k <= ARRAY_LEN(family_suffixes); k++) {
			buf_reset(&nb);
			buf_append_str(&nb, m->family);
			if (k)
				buf_puts(&nb, family_suffixes[k - 1]);
			int64_t vsym = head_sym_find(h, buf_str(&nb));
			int64_t pid = vsym < 0 ? -1 : head_pair_find(h, (uint32_t)nsym, (uint32_t)vsym);
			if (pid < 0)
				continue;
			const hpair_t *p = head_pair(h, (uint32_t)pid);
			const uint32_t *ids = hpair_ids(p);
			for (uint32_t j = 0; j < p->n; j++) {
				hseries_t *s = head_series_at(h, ids[j]);
				if (!s)
					continue;
				s->family = fam;
				VEC_PUSH(&h->app_meta, ((walrec_meta_t){s->id, m->type, m->unit, m->help}));
			}
		}
		buf_release(&nb);
	}
}

/* Metadata entry for a new series whose family has metadata. */
static void meta_for_new(head_t *h, const hseries_t *s)
{
	if (!s->family)
		return;
	const hfamily_t *f = &h->families.v[s->family - 1];
	if (f->set)
		VEC_PUSH(&h->app_meta, ((walrec_meta_t){s->id, f->type, str_c(f->unit), str_c(f->help)}));
}

/* Replay: set the family metadata of a series from a Metadata record (app_mu held). */
void head_series_set_meta(head_t *h, hseries_t *s, uint8_t type, str_t unit, str_t help)
{
	uint32_t fam = s->family;
	if (!fam) {
		str_t name = head_series_metric_name(h, s);
		if (!name.n)
			return;
		fam = family_intern(h, name);
		s->family = fam;
	}
	family_set(h, fam, type, unit, help);
}

enum { PF_SLOT = 16, PF_SERIES = 8, PF_CHUNK = 4 };

/* Find an input's series (app_mu held) and start fetching it; NULL if it does not exist (yet). */
static inline hseries_t *prefetch_series(const head_t *h, const head_input_t *x)
{
	if (!x->n)
		return NULL;
	hseries_t *s = head_series_lookup(h, x->key_);
	if (s) {
		__builtin_prefetch(s, 1);
		__builtin_prefetch((const char *)s + 64, 1);
		__builtin_prefetch((const char *)s + sizeof *s - 1, 1);
	}
	return s;
}

int head_append(head_t *h, head_input_t *in, size_t n, const head_meta_input_t *meta, size_t nmeta,
                err_t *err)
{
	buf_t kb = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (in[i].raw) {
			XXH128_hash_t k = XXH3_128bits(in[i].raw, in[i].nraw);
			in[i].key_[0] = k.low64;
			in[i].key_[1] = k.high64;
		} else {
			head_labels_key(&kb, &in[i].ls, in[i].key_);
		}
		in[i].verdict = HEAD_OK;
		in[i].bad_t = 0;
		in[i].appended = 0;
	}
	buf_release(&kb);
	pthread_mutex_lock(&h->app_mu);
	judge_ctx_t c = {
	    .now = clock_now_ms(), .min_valid = atomic_load(&h->min_valid), .hmaxt = atomic_load(&h->maxt)};
	if (c.hmaxt != INT64_MIN && c.hmaxt - h->o.chunk_range / 2 > c.min_valid)
		c.min_valid = c.hmaxt - h->o.chunk_range / 2;
	uint64_t limit = atomic_load(&h->series_limit);
	VEC_CLEAR(&h->app_samples);
	VEC_CLEAR(&h->app_ooo);
	VEC_CLEAR(&h->app_meta);
	buf_reset(&h->rec_series);
	walrec_series_begin(&h->rec_series);
	size_t nnew = 0;
	bool idx_w = false;
	pthread_mutex_t *held = NULL; /* the stripe of the last series applied, kept for the next */
	int64_t mint = INT64_MAX, maxt = INT64_MIN;
	int rc = 0;
	uint64_t appended = 0, n_oob = 0, n_ooo = 0, n_old = 0;
	/* The series table, the series and their open chunks are far larger than the caches, and a
	 * request touches each series once: a three-stage pipeline fetches the table slot PF_SLOT
	 * inputs ahead, the series PF_SERIES ahead (found then, remembered in app_ser) and the chunk's
	 * tail PF_CHUNK ahead, so the misses overlap instead of stalling one after the other. A NULL
	 * remembered is looked up again (an earlier input of this request may have created it). */
	VEC_RESERVE(&h->app_ser, n);
	hseries_t **ser = h->app_ser.v;
	for (size_t j = 0; j < n && j < PF_SLOT; j++)
		__builtin_prefetch(&h->series_tab.slots[(uint32_t)in[j].key_[0] & h->series_tab.mask]);
	for (size_t j = 0; j < n && j < PF_SERIES; j++)
		ser[j] = prefetch_series(h, &in[j]);
	for (size_t i = 0; !rc && i < n; i++) {
		head_input_t *x = &in[i];
		if (i + PF_SLOT < n)
			__builtin_prefetch(
			    &h->series_tab.slots[(uint32_t)in[i + PF_SLOT].key_[0] & h->series_tab.mask]);
		if (i + PF_SERIES < n)
			ser[i + PF_SERIES] = prefetch_series(h, &in[i + PF_SERIES]);
		if (i + PF_CHUNK < n && ser[i + PF_CHUNK] && ser[i + PF_CHUNK]->app.p)
			__builtin_prefetch(ser[i + PF_CHUNK]->app.p + (ser[i + PF_CHUNK]->app.nbits >> 3), 1);
		if (!x->n)
			continue;
		hseries_t *s = ser[i] ? ser[i] : head_series_lookup(h, x->key_);
		if (!s && x->unchecked && labels_check(&x->ls, NULL) != 0) {
			x->verdict = HEAD_INVALID_LABELS;
			continue;
		}
		judge(h, &c, x, s);
		if (x->verdict == HEAD_OK && !s && limit && atomic_load(&h->nseries) >= limit) {
			x->verdict = HEAD_SERIES_LIMIT;
			x->bad_t = x->t[0];
		}
		if (x->verdict != HEAD_OK) {
			if (x->verdict == HEAD_OUT_OF_BOUNDS || x->verdict == HEAD_TOO_FAR_IN_FUTURE)
				n_oob++;
			else if (x->verdict == HEAD_OUT_OF_ORDER || x->verdict == HEAD_DUPLICATE)
				n_ooo++;
			else if (x->verdict == HEAD_TOO_OLD)
				n_old++;
			continue;
		}
		if (!s) {
			if (held) { /* lock order: idx before a stripe */
				pthread_mutex_unlock(held);
				held = NULL;
			}
			if (!idx_w) {
				pthread_rwlock_wrlock(&h->idx);
				idx_w = true;
			}
			s = head_series_create(h, &x->ls, x->key_, 0);
			walrec_series_add(&h->rec_series, s->id, &x->ls);
			nnew++;
			meta_for_new(h, s);
		}
		pthread_mutex_t *mu = head_stripe(h, s->id);
		if (mu != held) {
			if (held)
				pthread_mutex_unlock(held);
			pthread_mutex_lock(mu);
			held = mu;
		}
		rc = apply(h, x, s, &mint, &maxt, err);
		appended += x->appended;
	}
	if (held)
		pthread_mutex_unlock(held);
	if (idx_w)
		pthread_rwlock_unlock(&h->idx);
	update_range(h, mint, maxt);
	if (!rc && nmeta)
		apply_meta(h, meta, nmeta);
	uint64_t seq = 0, oseq = 0;
	if (!rc) {
		str_t recs[3];
		size_t nrec = 0;
		if (nnew)
			recs[nrec++] = buf_str(&h->rec_series);
		if (h->app_samples.n) {
			buf_reset(&h->rec_samples);
			walrec_samples_encode(&h->rec_samples, h->app_samples.v, h->app_samples.n);
			recs[nrec++] = buf_str(&h->rec_samples);
		}
		if (h->app_meta.n) {
			buf_reset(&h->rec_meta);
			walrec_metadata_begin(&h->rec_meta);
			for (size_t i = 0; i < h->app_meta.n; i++)
				walrec_metadata_add(&h->rec_meta, &h->app_meta.v[i]);
			recs[nrec++] = buf_str(&h->rec_meta);
		}
		if (nrec)
			rc = wal_log(h->wal, recs, nrec, &seq, err);
		if (!rc && h->app_ooo.n && h->wbl) {
			buf_reset(&h->rec_ooo);
			walrec_samples_encode(&h->rec_ooo, h->app_ooo.v, h->app_ooo.n);
			str_t r = buf_str(&h->rec_ooo);
			rc = wal_log(h->wbl, &r, 1, &oseq, err);
		}
	}
	pthread_mutex_unlock(&h->app_mu);
	metric_add(h->m_appended, (double)appended);
	if (n_oob)
		metric_add(h->m_oob, (double)n_oob);
	if (n_ooo)
		metric_add(h->m_ooo_rejected, (double)n_ooo);
	if (n_old)
		metric_add(h->m_too_old, (double)n_old);
	if (h->o.wal_no_sync) {
		if (!rc && seq)
			rc = wal_flush(h->wal, err);
		if (!rc && oseq)
			rc = wal_flush(h->wbl, err);
		return rc;
	}
	if (!rc && seq)
		rc = wal_sync(h->wal, seq, err);
	if (!rc && oseq)
		rc = wal_sync(h->wbl, oseq, err);
	return rc;
}

/* ---- state ---- */

int64_t head_min_time(head_t *h)
{
	return atomic_load(&h->mint);
}

int64_t head_max_time(head_t *h)
{
	return atomic_load(&h->maxt);
}

uint64_t head_num_series(head_t *h)
{
	return atomic_load(&h->nseries);
}

int64_t head_min_valid_time(head_t *h)
{
	return atomic_load(&h->min_valid);
}

uint64_t head_ooo_samples(head_t *h)
{
	return atomic_load(&h->ooo_samples);
}

/* ---- truncation ---- */

static inline void bit_set(uint64_t *b, uint32_t i)
{
	b[i >> 6] |= 1ull << (i & 63);
}

static inline bool bit_get(const uint64_t *b, uint32_t i)
{
	return (b[i >> 6] >> (i & 63)) & 1;
}

/* Remove the series marked in dead (all locks held): hash table, pages, postings, pairs, strings. */
static void remove_series(head_t *h, const uint64_t *dead, size_t ndead)
{
	if (!ndead)
		return;
	uint64_t *dirty = xcalloc(h->pairs.n / 64 + 1, sizeof(uint64_t));
	size_t keep = 0;
	for (size_t i = 0; i < h->all.n; i++) {
		uint32_t id = h->all.v[i];
		if (!bit_get(dead, id)) {
			h->all.v[keep++] = id;
			continue;
		}
		hseries_t *s = head_series_at(h, id);
		for (uint16_t k = 0; k < s->nlabels; k++)
			bit_set(dirty, s->pairs[k]);
		htab_del(&h->series_tab, (uint32_t)s->key[0], id);
		series_put(h, id, NULL);
		head_series_free(h, s);
	}
	h->all.n = keep;
	uint64_t *dirty_names = xcalloc(h->syms.n / 64 + 1, sizeof(uint64_t));
	for (size_t pid = 0; pid < h->pairs.n; pid++) {
		if (!bit_get(dirty, (uint32_t)pid))
			continue;
		hpair_t *p = head_pair(h, (uint32_t)pid);
		uint32_t *ids = p->cap ? p->u.ids : p->u.one;
		uint32_t k = 0;
		for (uint32_t j = 0; j < p->n; j++)
			if (!bit_get(dead, ids[j]))
				ids[k++] = ids[j];
		p->n = k;
		if (k)
			continue;
		bit_set(dirty_names, p->name);
		htab_del(&h->pair_tab, pair_hash(p->name, p->value), (uint32_t)pid);
		sym_unref(h, p->value);
		sym_unref(h, p->name);
		if (p->cap)
			free(p->u.ids);
		memset(p, 0, sizeof *p);
		p->name = p->value = UINT32_MAX; /* free */
		VEC_PUSH(&h->free_pairs, (uint32_t)pid);
	}
	for (size_t i = 0; i < h->names.n; i++) {
		hname_t *nm = &h->names.v[i];
		if (!bit_get(dirty_names, nm->sym))
			continue;
		size_t k = 0;
		for (size_t j = 0; j < nm->pairs.n; j++)
			if (head_pair(h, nm->pairs.v[j])->name == nm->sym)
				nm->pairs.v[k++] = nm->pairs.v[j];
		nm->pairs.n = k;
	}
	free(dirty);
	free(dirty_names);
	atomic_fetch_sub(&h->nseries, ndead);
	metric_add(h->m_removed, (double)ndead);
}

int head_truncate(head_t *h, int64_t mint, err_t *err)
{
	int rc = headchunks_cut_file(h->hc, err);
	if (rc)
		return rc;
	hgc_write_lock(&h->gc);
	pthread_mutex_lock(&h->app_mu);
	pthread_rwlock_wrlock(&h->idx);
	int64_t mv = atomic_load(&h->min_valid);
	if (mint > mv)
		atomic_store(&h->min_valid, mint);
	uint64_t *dead = xcalloc(h->next_id / 64 + 1, sizeof(uint64_t));
	size_t ndead = 0;
	uint32_t min_file = headchunks_current_file(h->hc);
	int64_t new_min = INT64_MAX;
	for (size_t i = 0; i < h->all.n; i++) {
		hseries_t *s = head_series_at(h, h->all.v[i]);
		unsigned k = 0, nmm = head_mm_count(s);
		while (k < nmm && head_mm_at(s, k).maxt < mint)
			k++;
		if (k)
			head_mm_drop_front(h, s, k);
		nmm = head_mm_count(s);
		if (s->app.num && s->app.t < mint)
			xor_app_release(&s->app,
			                &h->slab); /* an idle series' last chunk: gone, and its buffer too */
		if (nmm) {
			hchunk_t m0 = head_mm_at(s, 0);
			uint32_t f = (uint32_t)(m0.ref >> 32);
			if (f < min_file)
				min_file = f;
			if (m0.mint < new_min)
				new_min = m0.mint;
		} else if (s->app.num && s->cmint < new_min) {
			new_min = s->cmint;
		}
		if (!nmm && !s->app.num && !s->ooo) {
			bit_set(dead, s->id);
			ndead++;
		}
	}
	remove_series(h, dead, ndead);
	free(dead);
	if (new_min == INT64_MAX) {
		atomic_store(&h->mint, INT64_MAX);
		atomic_store(&h->maxt, INT64_MIN);
	} else {
		atomic_store(&h->mint, new_min > mint ? new_min : mint);
	}
	pthread_rwlock_unlock(&h->idx);
	pthread_mutex_unlock(&h->app_mu);
	hgc_write_unlock(&h->gc);
	metric_inc(h->m_truncations);
	return headchunks_truncate(h->hc, min_file, err);
}

uint64_t head_ooo_swap(head_t *h, int *wbl_seg, int64_t *mint, int64_t *maxt, err_t *err)
{
	pthread_mutex_lock(&h->app_mu);
	uint64_t moved = 0;
	*mint = INT64_MAX;
	*maxt = INT64_MIN;
	if (h->wbl && atomic_load(&h->ooo_samples)) {
		pthread_rwlock_rdlock(&h->idx);
		for (size_t i = 0; i < h->all.n; i++) {
			hseries_t *s = head_series_at(h, h->all.v[i]);
			hooo_t *o = head_ooo_cur(s);
			if (!o)
				continue;
			pthread_mutex_t *mu = head_stripe(h, s->id);
			pthread_mutex_lock(mu);
			if (o->t[0] < *mint)
				*mint = o->t[0];
			if (o->t[o->n - 1] > *maxt)
				*maxt = o->t[o->n - 1];
			moved += o->n;
			if (s->ooo->cut) { /* a previous swap not released: fold it in */
				for (uint32_t j = 0; j < o->n; j++)
					head_ooo_insert(s, true, o->t[j], o->v[j]);
				head_ooo_drop(s, false);
			} else {
				s->ooo->cut = o;
				s->ooo->cur = NULL;
			}
			pthread_mutex_unlock(mu);
		}
		pthread_rwlock_unlock(&h->idx);
		if (moved && wal_next_segment(h->wbl, wbl_seg, err) != 0)
			moved = 0;
	}
	pthread_mutex_unlock(&h->app_mu);
	return moved;
}

int head_ooo_release(head_t *h, int wbl_seg, err_t *err)
{
	hgc_write_lock(&h->gc);
	pthread_mutex_lock(&h->app_mu);
	uint64_t freed = 0;
	for (size_t i = 0; i < h->all.n; i++) {
		hseries_t *s = head_series_at(h, h->all.v[i]);
		const hooo_t *o = head_ooo_cut(s);
		if (!o)
			continue;
		freed += o->n;
		head_ooo_drop(s, true);
	}
	atomic_fetch_sub(&h->ooo_samples, freed);
	pthread_mutex_unlock(&h->app_mu);
	hgc_write_unlock(&h->gc);
	return h->wbl ? wal_truncate(h->wbl, wbl_seg, err) : 0;
}
