/*
 * head_int.h — the head's internals, shared by head.c (tables, appends, truncation), headquery.c
 * (select, label calls) and headreplay.c (open, replay, checkpoint). Not for other modules.
 *
 * Locks, always taken in this order (a thread may skip any):
 *   gc      (hgc_t)   held shared by every open series set for its whole life (released from any
 *                     thread), exclusively by truncation and the out-of-order release: freed series,
 *                     strings and pairs are never in use
 *   app_mu  (mutex)   serialises commits, truncation and metadata; guards the series hash table and
 *                     every series' non-chunk fields
 *   idx     (rwlock)  the id -> series pages, strings, label pairs and their postings, names;
 *                     written (under app_mu) when series are created or removed
 *   stripe  (mutex)   head_stripe(h, id): a series' chunks (open chunk, mapped chunk list,
 *                     out-of-order lists)
 * Appenders are the only writers of the index, and they hold app_mu, so a commit reads the index
 * without idx; readers hold idx (read) while they resolve postings and series pointers.
 * Strings and pairs live in paged vectors whose elements never move, so a reader holding gc reads a
 * live pair's name/value and a live string without idx (those fields never change while alive).
 */
#ifndef STRATA_TSDB_HEAD_INT_H
#define STRATA_TSDB_HEAD_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/hmap.h"
#include "base/metrics.h"
#include "base/str.h"
#include "base/vec.h"
#include "tsdb/head.h"
#include "tsdb/headchunks.h"
#include "tsdb/hslab.h"
#include "tsdb/wal.h"
#include "tsdb/walrec.h"
#include "tsdb/xor.h"

#define HEAD_STRIPES 256
/* Runs of 2^HEAD_STRIPE_RUN consecutive ids share a stripe: a commit, whose series mostly come in id
 * order (a sender's batches keep their order), takes a stripe once per run instead of once per series. */
#define HEAD_STRIPE_RUN 4
#define HEAD_PAGE_BITS  12
#define HEAD_PAGE_SIZE  (1u << HEAD_PAGE_BITS)

/* Paged vector: elements never move; the page directory is replaced (the old one kept until
 * pvec_release) when it grows, so readers index it without a lock. Writers are serialised. */
#define PVEC_BITS 12
typedef struct pvec {
	_Atomic(void **) dir;
	size_t npages, dircap, n, elem;
	VEC(void **) retired;
} pvec_t;

static inline void *pvec_at(const pvec_t *v, size_t i)
{
	void **d = atomic_load_explicit((_Atomic(void **) *)&v->dir, memory_order_acquire);
	return (char *)d[i >> PVEC_BITS] + (i & ((1u << PVEC_BITS) - 1)) * v->elem;
}
void pvec_init(pvec_t *v, size_t elem);
void pvec_release(pvec_t *v);
/* Append a zeroed element; returns its index. */
size_t pvec_push(pvec_t *v);

/* A shared/exclusive gate whose shared side may be released by another thread than the one that took
 * it (series sets are closed wherever their consumer runs); the exclusive side waits for readers and
 * holds new ones back meanwhile. */
typedef struct hgc {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t readers;
	int writers_waiting;
	bool writer;
} hgc_t;

void hgc_init(hgc_t *g);
void hgc_destroy(hgc_t *g);
void hgc_read_lock(hgc_t *g);
void hgc_read_unlock(hgc_t *g);
void hgc_write_lock(hgc_t *g);
void hgc_write_unlock(hgc_t *g);

/* A full chunk in chunks_head/ (as head_mm_at gives it). */
typedef struct hchunk {
	int64_t mint, maxt;
	uint64_t ref;
} hchunk_t;

/* How a series keeps the list: 16-byte entries with times relative to its cmint (mint = cmint - back,
 * maxt = mint + dur; rewritten when cmint moves), or hchunk_t entries (HEAD_MM_WIDE in nmm) once an
 * offset does not fit in 32 bits (chunks of one series 49 days apart in the head: not in a head that
 * is cut every few hours, but possible). */
typedef struct hmm {
	uint64_t ref;
	uint32_t back, dur;
} hmm_t;

#define HEAD_MM_WIDE 0x8000u

/* Out-of-order samples of a series, sorted by time, unique timestamps. */
typedef struct hooo {
	uint32_t n, cap;
	int64_t *t;
	double *v;
} hooo_t;

/* Both generations of a series' out-of-order samples (allocated with the first, freed with the last). */
typedef struct hooo_pair {
	hooo_t *cur, *cut;
} hooo_pair_t;

/* A series, its open chunk's bytes, its mapped-chunk list and the label strings come from the head's
 * slab (hslab.h): a million of each, so no malloc header and no growth slack (the list holds exactly
 * nmm entries, the open chunk's buffer grows in 16-byte steps and goes back when the chunk is cut). */
typedef struct hseries {
	uint64_t key[2];   /* XXH3-128 of the labels */
	int64_t cmint;     /* open chunk's first timestamp */
	xor_app_t app;     /* open chunk */
	void *mm;          /* full chunks, ascending (hmm_t or hchunk_t, see above) */
	hooo_pair_t *ooo;  /* out-of-order samples; NULL = none */
	uint32_t id;       /* series ref in the WAL and chunks_head */
	uint32_t family;   /* metadata family index + 1, 0 = none */
	uint32_t next_off; /* cut the open chunk at cmint + next_off */
	uint16_t nmm;      /* full chunks | HEAD_MM_WIDE */
	uint16_t nlabels;
	uint32_t pairs[]; /* label pair ids, sorted by label name */
} hseries_t;

_Static_assert(sizeof(hseries_t) == 96, "a series with 8 labels takes one 128-byte slab slot");

/* The series' out-of-order lists: the current one and the one being cut (head_ooo_swap); NULL = none. */
static inline hooo_t *head_ooo_cur(const hseries_t *s)
{
	return s->ooo ? s->ooo->cur : NULL;
}

static inline hooo_t *head_ooo_cut(const hseries_t *s)
{
	return s->ooo ? s->ooo->cut : NULL;
}

static inline unsigned head_mm_count(const hseries_t *s)
{
	return s->nmm & ~HEAD_MM_WIDE;
}

/* Bytes of a list of nmm (with its HEAD_MM_WIDE flag) entries. */
static inline size_t head_mm_bytes(uint16_t nmm)
{
	return (size_t)(nmm & ~HEAD_MM_WIDE) * (nmm & HEAD_MM_WIDE ? sizeof(hchunk_t) : sizeof(hmm_t));
}

/* The i-th full chunk of s (stripe held, or app_mu by the writer). */
static inline hchunk_t head_mm_at(const hseries_t *s, unsigned i)
{
	if (s->nmm & HEAD_MM_WIDE)
		return ((const hchunk_t *)s->mm)[i];
	const hmm_t *e = (const hmm_t *)s->mm + i;
	int64_t mint = s->cmint - (int64_t)e->back;
	return (hchunk_t){mint, mint + (int64_t)e->dur, e->ref};
}

static inline size_t head_series_size(size_t nlabels)
{
	return sizeof(hseries_t) + nlabels * sizeof(uint32_t);
}

/* Open addressing over 64-bit slots: (hash32 << 32) | (id + 1); 0 = empty. The home slot is hash32 &
 * mask, so entries move on deletion without looking at what they point to. */
typedef struct htab {
	uint64_t *slots;
	uint32_t mask, n;
} htab_t;

typedef struct hsym {
	char *p; /* NUL-terminated copy (len + 1 bytes from the slab) */
	uint32_t len;
	uint32_t refs; /* label pairs using it (as name or value) */
} hsym_t;

typedef struct hpair {
	uint32_t name, value; /* sym ids */
	uint32_t n, cap;      /* postings: cap 0 = up to two ids inline */
	union {
		uint32_t *ids;
		uint32_t one[2];
	} u;
} hpair_t;

static inline const uint32_t *hpair_ids(const hpair_t *p)
{
	return p->cap ? p->u.ids : p->u.one;
}

typedef struct hname {
	uint32_t sym;
	VEC(uint32_t) pairs; /* pair ids with this name, unsorted */
} hname_t;

typedef struct hfamily {
	char *name;
	uint8_t type;
	char *unit, *help;
	bool set;
} hfamily_t;

struct head {
	queryable_t q;
	char *dir;
	head_opts_t o;
	wal_t *wal, *wbl;
	headchunks_t *hc;
	hgc_t gc;
	pthread_mutex_t app_mu;
	pthread_rwlock_t idx;
	pthread_mutex_t stripes[HEAD_STRIPES];
	hslab_t slab; /* series, open-chunk bytes, mapped-chunk lists, strings (its own lock) */
	/* app_mu */
	htab_t series_tab;
	uint32_t next_id;
	atomic_uint_fast64_t series_limit;
	buf_t rec_series, rec_samples, rec_meta, rec_ooo;
	VEC(walrec_sample_t) app_samples, app_ooo;
	VEC(walrec_meta_t) app_meta;
	VEC(uint8_t) app_kinds;   /* per sample of the input being applied */
	VEC(hseries_t *) app_ser; /* per input of a commit: its series, found ahead (head_append) */

	VEC(hfamily_t) families;
	hmap_t family_map; /* family name -> index + 1 */
	/* idx */
	VEC(hseries_t **) pages;
	VEC(uint32_t) page_counts;
	pvec_t syms; /* hsym_t */
	VEC(uint32_t) free_syms;
	htab_t sym_tab;
	pvec_t pairs; /* hpair_t */
	VEC(uint32_t) free_pairs;
	htab_t pair_tab;
	VEC(hname_t) names;
	imap_t name_idx;   /* name sym -> names index */
	VEC(uint32_t) all; /* every live series id, ascending */
	/* state */
	_Atomic int64_t mint, maxt, min_valid;
	atomic_uint_fast64_t nseries, ooo_samples;
	/* metrics */
	metric_child_t *m_series, *m_appended, *m_oob, *m_ooo_rejected, *m_dup, *m_too_old, *m_created,
	    *m_removed, *m_chunks_created, *m_chunks, *m_truncations, *m_ooo_appended, *m_fsync,
	    *m_wal_corruptions, *m_replay, *m_checkpoints, *m_min_time, *m_max_time;
};

static inline hsym_t *head_sym(const head_t *h, uint32_t id)
{
	return (hsym_t *)pvec_at(&h->syms, id);
}

static inline hpair_t *head_pair(const head_t *h, uint32_t id)
{
	return (hpair_t *)pvec_at(&h->pairs, id);
}

static inline str_t head_sym_str(const head_t *h, uint32_t id)
{
	const hsym_t *y = head_sym(h, id);
	return str_from(y->p, y->len);
}

/* id -> series (idx held, or app_mu by the writer); NULL if none. */
static inline hseries_t *head_series_at(const head_t *h, uint32_t id)
{
	size_t pg = id >> HEAD_PAGE_BITS;
	if (pg >= h->pages.n || !h->pages.v[pg])
		return NULL;
	return h->pages.v[pg][id & (HEAD_PAGE_SIZE - 1)];
}

static inline pthread_mutex_t *head_stripe(head_t *h, uint32_t id)
{
	return &h->stripes[(id >> HEAD_STRIPE_RUN) % HEAD_STRIPES];
}

/* head.c */
void head_htab_init(htab_t *t, uint32_t cap);
void head_htab_release(htab_t *t);
int64_t head_sym_find(const head_t *h, str_t s);
int64_t head_pair_find(const head_t *h, uint32_t name, uint32_t value);
hname_t *head_name_find(const head_t *h, uint32_t name_sym);
hseries_t *head_series_lookup(const head_t *h, const uint64_t key[2]);
hseries_t *head_series_create(head_t *h, const labels_t *ls, const uint64_t key[2], uint32_t id);
/* Full-chunk list changes (stripe held): add one after the others; move s->cmint (the entries follow);
 * drop the first k; set the list of a series that has none (replay). */
void head_mm_push(head_t *h, hseries_t *s, int64_t mint, int64_t maxt, uint64_t ref);
void head_mm_set_cmint(head_t *h, hseries_t *s, int64_t cmint);
void head_mm_drop_front(head_t *h, hseries_t *s, unsigned k);
void head_mm_set(head_t *h, hseries_t *s, const hchunk_t *v, unsigned n);
/* Free a series' memory (its chunks, out-of-order lists and itself; nothing else is touched). */
void head_series_free(head_t *h, hseries_t *s);
int head_series_append(head_t *h, hseries_t *s, int64_t t, double v, err_t *err);
int64_t head_series_maxt(const hseries_t *s);
str_t head_series_metric_name(const head_t *h, const hseries_t *s);
void head_series_set_meta(head_t *h, hseries_t *s, uint8_t type, str_t unit, str_t help);
/* Insert into the series' current (cut: being cut) out-of-order list (stripe held); false if the
 * timestamp is already held there. */
bool head_ooo_insert(hseries_t *s, bool cut, int64_t t, double v);
/* Free the series' current or cut out-of-order list (stripe held). */
void head_ooo_drop(hseries_t *s, bool cut);
void head_update_range(head_t *h, int64_t mint, int64_t maxt);
/* headquery.c */
extern const struct queryable_ops head_queryable_ops;

#endif
