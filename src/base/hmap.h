/*
 * hmap.h — open-addressing hash maps (linear probing, backward-shift deletion, load <= 7/8).
 *
 * hmap_t maps byte-string keys to void* values. Keys are NOT copied: the caller keeps key memory
 * alive while it is in the map (an arena, the value itself, an mmap). Hash is xxhash64 (seed 0).
 * imap_t maps uint64 keys to uint64 values (no reserved key values).
 * Iteration order is unspecified. Not thread-safe.
 */
#ifndef STRATA_BASE_HMAP_H
#define STRATA_BASE_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

typedef struct hmap_entry {
	uint64_t hash; /* 0 = empty slot (real hashes of 0 are stored as 1) */
	str_t key;
	void *val;
} hmap_entry_t;

typedef struct hmap {
	hmap_entry_t *slots;
	size_t cap; /* power of two or 0 */
	size_t n;
} hmap_t;

void hmap_init(hmap_t *m, size_t expected);
void hmap_release(hmap_t *m);
void hmap_clear(hmap_t *m);
/* Returns the stored value or NULL. */
void *hmap_get(const hmap_t *m, str_t key);
bool hmap_has(const hmap_t *m, str_t key);
/* Insert or replace. Returns the previous value (NULL if new). */
void *hmap_put(hmap_t *m, str_t key, void *val);
/* Pointer to the value slot for key, inserting (with *val = NULL) if absent; *found says which.
 * The pointer is valid until the next insertion. */
void **hmap_slot(hmap_t *m, str_t key, bool *found);
/* Remove; returns the removed value or NULL. */
void *hmap_del(hmap_t *m, str_t key);
/* Iterate: for (size_t it = 0; hmap_next(m, &it, &e);) { e->key, e->val } */
bool hmap_next(const hmap_t *m, size_t *it, hmap_entry_t **e);

typedef struct imap_entry {
	uint64_t key;
	uint64_t val;
} imap_entry_t;

typedef struct imap {
	imap_entry_t *slots;
	uint8_t *used;
	size_t cap;
	size_t n;
} imap_t;

void imap_init(imap_t *m, size_t expected);
void imap_release(imap_t *m);
bool imap_get(const imap_t *m, uint64_t key, uint64_t *val);
void imap_put(imap_t *m, uint64_t key, uint64_t val);
bool imap_del(imap_t *m, uint64_t key);
bool imap_next(const imap_t *m, size_t *it, imap_entry_t **e);

uint64_t hash_bytes(const void *p, size_t n); /* xxhash64, seed 0 */
uint64_t hash_u64(uint64_t x);                /* fast integer mixer */

#endif
