/* hmap.c — open-addressing hash maps; see hmap.h. */
#include "base/hmap.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"

uint64_t hash_bytes(const void *p, size_t n)
{
	return XXH64(p, n, 0);
}

uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static size_t cap_for(size_t expected)
{
	size_t cap = 16;
	while (cap - cap / 8 <= expected)
		cap = st_mult(cap, 2);
	return cap;
}

static uint64_t key_hash(str_t key)
{
	uint64_t h = hash_bytes(key.p, key.n);
	return h ? h : 1;
}

void hmap_init(hmap_t *m, size_t expected)
{
	memset(m, 0, sizeof *m);
	if (expected) {
		m->cap = cap_for(expected);
		m->slots = xcalloc(m->cap, sizeof *m->slots);
	}
}

void hmap_release(hmap_t *m)
{
	free(m->slots);
	memset(m, 0, sizeof *m);
}

void hmap_clear(hmap_t *m)
{
	if (m->slots)
		memset(m->slots, 0, m->cap * sizeof *m->slots);
	m->n = 0;
}

static hmap_entry_t *find(const hmap_t *m, str_t key, uint64_t h)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		hmap_entry_t *e = &m->slots[i];
		if (!e->hash)
			return NULL;
		if (e->hash == h && str_eq(e->key, key))
			return e;
	}
}

static void grow(hmap_t *m)
{
	size_t ncap = m->cap ? st_mult(m->cap, 2) : 16;
	hmap_entry_t *old = m->slots;
	size_t ocap = m->cap;
	m->slots = xcalloc(ncap, sizeof *m->slots);
	m->cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i].hash)
			continue;
		size_t j = old[i].hash & (ncap - 1);
		while (m->slots[j].hash)
			j = (j + 1) & (ncap - 1);
		m->slots[j] = old[i];
	}
	free(old);
}

void *hmap_get(const hmap_t *m, str_t key)
{
	hmap_entry_t *e = find(m, key, key_hash(key));
	return e ? e->val : NULL;
}

bool hmap_has(const hmap_t *m, str_t key)
{
	return find(m, key, key_hash(key)) != NULL;
}

void **hmap_slot(hmap_t *m, str_t key, bool *found)
{
	uint64_t h = key_hash(key);
	hmap_entry_t *e = find(m, key, h);
	if (e) {
		if (found)
			*found = true;
		return &e->val;
	}
	if (found)
		*found = false;
	if (m->n + 1 > m->cap - m->cap / 8 || !m->cap)
		grow(m);
	size_t mask = m->cap - 1;
	size_t i = h & mask;
	while (m->slots[i].hash)
		i = (i + 1) & mask;
	m->slots[i] = (hmap_entry_t){h, key, NULL};
	m->n++;
	return &m->slots[i].val;
}

void *hmap_put(hmap_t *m, str_t key, void *val)
{
	bool found;
	void **slot = hmap_slot(m, key, &found);
	void *old = found ? *slot : NULL;
	*slot = val;
	return old;
}

void *hmap_del(hmap_t *m, str_t key)
{
	hmap_entry_t *e = find(m, key, key_hash(key));
	if (!e)
		return NULL;
	void *val = e->val;
	size_t mask = m->cap - 1;
	size_t i = (size_t)(e - m->slots);
	/* Backward-shift deletion keeps probe sequences intact without tombstones. */
	for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
		if (!m->slots[j].hash)
			break;
		size_t home = m->slots[j].hash & mask;
		/* Move j into the hole at i if its home is not in (i, j] cyclically. */
		bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!between) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	memset(&m->slots[i], 0, sizeof m->slots[i]);
	m->n--;
	return val;
}

bool hmap_next(const hmap_t *m, size_t *it, hmap_entry_t **e)
{
	while (*it < m->cap) {
		hmap_entry_t *s = &m->slots[(*it)++];
		if (s->hash) {
			*e = s;
			return true;
		}
	}
	return false;
}

void imap_init(imap_t *m, size_t expected)
{
	memset(m, 0, sizeof *m);
	if (expected) {
		m->cap = cap_for(expected);
		m->slots = xcalloc(m->cap, sizeof *m->slots);
		m->used = xcalloc(m->cap, 1);
	}
}

void imap_release(imap_t *m)
{
	free(m->slots);
	free(m->used);
	memset(m, 0, sizeof *m);
}

static long imap_find(const imap_t *m, uint64_t key)
{
	if (!m->cap)
		return -1;
	size_t mask = m->cap - 1;
	for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
		if (!m->used[i])
			return -1;
		if (m->slots[i].key == key)
			return (long)i;
	}
}

bool imap_get(const imap_t *m, uint64_t key, uint64_t *val)
{
	long i = imap_find(m, key);
	if (i < 0)
		return false;
	if (val)
		*val = m->slots[i].val;
	return true;
}

static void imap_insert_raw(imap_t *m, uint64_t key, uint64_t val)
{
	size_t mask = m->cap - 1;
	size_t i = hash_u64(key) & mask;
	while (m->used[i])
		i = (i + 1) & mask;
	m->used[i] = 1;
	m->slots[i] = (imap_entry_t){key, val};
	m->n++;
}

void imap_put(imap_t *m, uint64_t key, uint64_t val)
{
	long i = imap_find(m, key);
	if (i >= 0) {
		m->slots[i].val = val;
		return;
	}
	if (!m->cap || m->n + 1 > m->cap - m->cap / 8) {
		imap_t nm;
		imap_init(&nm, m->n ? m->n * 2 : 8);
		for (size_t j = 0; j < m->cap; j++)
			if (m->used[j])
				imap_insert_raw(&nm, m->slots[j].key, m->slots[j].val);
		imap_release(m);
		*m = nm;
	}
	imap_insert_raw(m, key, val);
}

bool imap_del(imap_t *m, uint64_t key)
{
	long f = imap_find(m, key);
	if (f < 0)
		return false;
	size_t mask = m->cap - 1;
	size_t i = (size_t)f;
	for (size_t j = (i + 1) & mask; m->used[j]; j = (j + 1) & mask) {
		size_t home = hash_u64(m->slots[j].key) & mask;
		bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!between) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->used[i] = 0;
	m->n--;
	return true;
}

bool imap_next(const imap_t *m, size_t *it, imap_entry_t **e)
{
	while (*it < m->cap) {
		size_t i = (*it)++;
		if (m->used[i]) {
			*e = &m->slots[i];
			return true;
		}
	}
	return false;
}
