/*
 * alloc.h — checked allocation. Every allocation in Strata goes through these wrappers.
 *
 * They never return NULL for a non-zero size: out-of-memory and size overflow abort the process with
 * a message (there is no sensible recovery from either in a server). Free with plain free().
 * Thread-safe.
 */
#ifndef STRATA_BASE_ALLOC_H
#define STRATA_BASE_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h> /* free() */

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);           /* zeroed; n * size overflow-checked */
void *xrealloc(void *p, size_t size);
void *xreallocarray(void *p, size_t n, size_t size); /* n * size overflow-checked */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);        /* always NUL-terminated */
void *xmemdup(const void *p, size_t n);

/* Overflow-checked size arithmetic: abort on overflow. */
size_t st_mult(size_t a, size_t b);
size_t st_add(size_t a, size_t b);

/* Growth policy for arrays: returns a capacity >= need (at least doubling). */
size_t alloc_grow_cap(size_t cap, size_t need);

/* The allocator set up for a long-running server (glibc malloc; no-op elsewhere), once at start before
 * threads: ALLOC_SERVER_ARENAS malloc arenas instead of 8 per core (each pool thread would otherwise grow
 * its own, and what one frees the others never reuse), and a fixed 256 KiB mmap threshold, so large
 * blocks (query arena chunks, response buffers) are unmapped when freed instead of the threshold
 * drifting up to 32 MiB and the heap keeping them. Up to ALLOC_SERVER_KEEP_TOP free bytes stay at the
 * top of each heap (glibc's default trims past 128 KiB once the mmap threshold is fixed: every small
 * query gave its decode buffers back on free and faulted them in again, ~200 fresh pages a query, a
 * fifth of a small query's CPU); memory freed from many small blocks still goes back through
 * alloc_note_freed. MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the
 * environment still win. */
#define ALLOC_SERVER_ARENAS   2
#define ALLOC_SERVER_KEEP_TOP (4u << 20)
void alloc_tune_server(void);
/* n bytes of request/query memory were just freed: past ALLOC_TRIM_BYTES since the last time, give the
 * heap's free pages back to the system (malloc_trim) on this thread. Thread-safe; cheap otherwise. */
#define ALLOC_TRIM_BYTES (8u << 20)
void alloc_note_freed(size_t n);
/* Called every ~100 ms by a server's event loop (net/conn.c's sweep) with the monotonic time in ms:
 * once nothing has been freed for ALLOC_TRIM_IDLE_MS and at least ALLOC_TRIM_IDLE_BYTES were freed
 * since the last trim, trim now, so that a process that went idle after a burst gives back what the
 * ALLOC_TRIM_BYTES steps left (the trim costs nothing then: no request faults the pages in again
 * meanwhile). Thread-safe. */
#define ALLOC_TRIM_IDLE_BYTES (1u << 20)
#define ALLOC_TRIM_IDLE_MS    1000
void alloc_idle_tick(uint64_t now_ms);
/* No trimming from now on: for a process whose requests reuse the same few MiB all the time (a
 * receiver), giving them back only to fault them in again on the next request costs CPU. */
void alloc_keep_heap(void);

/* Abort with a formatted message on stderr (for broken invariants and OOM). */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define BUG_ON(cond)                                                                                     \
	do {                                                                                             \
		if (__builtin_expect(!!(cond), 0))                                                       \
			die("BUG: %s:%d: %s", __FILE__, __LINE__, #cond);                              \
	} while (0)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
