/*
 * hslab.h — the head's allocator for its many small, long-lived objects (series, open-chunk bytes,
 * mapped-chunk lists, label strings): size classes in 16-byte steps up to HSLAB_MAX bytes, slots
 * carved from 4 KiB pages that hold one class each, no per-object header.
 *
 * Why not malloc: a million series each own four or five such objects, and malloc adds an 8-byte header
 * and a 16-byte granule to each, and keeps freed memory in its free lists forever. Here a page whose last
 * slot is freed goes back to the kernel (madvise(MADV_DONTNEED), a few kept warm), so memory follows
 * what is live: when every series cuts its open chunk at the same moment (a lockstep load, the usual
 * one), the pages of the large classes empty and are returned while the small ones fill.
 *
 * Objects larger than HSLAB_MAX come from the heap (xmalloc): the caller gives the size on every call
 * (hslab_free, hslab_resize), which is how the two are told apart. Sizes are rounded up to a multiple of
 * 16 (hslab_round); an object may use all of its rounded size. Memory is zeroed on allocation.
 *
 * Pages come from 1 MiB mappings that are kept until hslab_release (only their touched pages cost
 * memory). Under AddressSanitizer, free slots are poisoned.
 *
 * Thread-safety: every call may come from any thread (one mutex per slab).
 */
#ifndef STRATA_TSDB_HSLAB_H
#define STRATA_TSDB_HSLAB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/vec.h"

#define HSLAB_MAX     1024u
#define HSLAB_CLASSES (HSLAB_MAX / 16)

typedef struct hslab_page hslab_page_t;

typedef struct hslab {
	pthread_mutex_t mu;
	hslab_page_t *partial[HSLAB_CLASSES]; /* pages of each class with a free slot */
	VEC(hslab_page_t *) warm;             /* empty pages not returned yet */
	VEC(hslab_page_t *) cold;             /* empty pages returned to the kernel */
	VEC(uint8_t *) regions;               /* the mappings */
	size_t region_used;                   /* pages handed out from the last mapping */
	uint64_t pages;                       /* pages holding objects */
	uint64_t large;                       /* bytes of live objects over HSLAB_MAX */
} hslab_t;

void hslab_init(hslab_t *s);
/* Unmap every page (objects still allocated become invalid; large ones must be freed first). */
void hslab_release(hslab_t *s);

/* Usable size of an allocation of n bytes. */
static inline size_t hslab_round(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* n zeroed bytes (NULL for n == 0). Aborts when out of memory, as xmalloc. */
void *hslab_alloc(hslab_t *s, size_t n);
/* Free p, allocated with size n (NULL or n == 0: nothing). */
void hslab_free(hslab_t *s, void *p, size_t n);
/* Resize p (allocated with size old) to n bytes: the first min(old, n) bytes are kept, the rest zeroed;
 * p itself is returned when both sizes round to the same slot. */
void *hslab_resize(hslab_t *s, void *p, size_t old, size_t n);
/* Bytes of memory the slab holds for live objects: its pages in use plus the large objects. */
uint64_t hslab_bytes(hslab_t *s);

#endif
