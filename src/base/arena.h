/*
 * arena.h — region allocator for request- and query-scoped memory.
 *
 * Allocations are bump-pointer from chunks that grow geometrically; everything is freed at once by
 * arena_release() (or recycled by arena_reset(), which keeps the first chunk). Cleanup hooks run in
 * reverse order of registration on reset/release, for resources (fds, mmaps, refcounts) whose lifetime
 * is the arena's. An optional byte limit makes allocation fail softly (arena_try_alloc returns NULL)
 * so queries can enforce a memory budget; arena_alloc itself aborts only on system OOM. Several arenas
 * (a query's, its scratch arenas) can share one byte budget (arena_budget_t): every allocation from an
 * attached arena counts against it, arena_try_alloc fails softly past its limit, and resetting or
 * releasing the arena gives its bytes back.
 * Not thread-safe: one arena per request/query/thread.
 */
#ifndef STRATA_BASE_ARENA_H
#define STRATA_BASE_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct arena_chunk arena_chunk_t;
typedef struct arena_cleanup arena_cleanup_t;

/* A byte budget over several budgets used from different threads at once (every query a server runs):
 * each budget attached to it counts what it counts there as well. Checked before counting, so
 * concurrent users may pass the limit by what they allocate at the same moment. */
typedef struct arena_budget_pool {
	_Atomic size_t used;
	size_t limit;
} arena_budget_pool_t;

typedef struct arena_budget {
	size_t used;  /* bytes counted by the attached arenas (and by callers' own charges) */
	size_t limit; /* arena_try_alloc fails once used would pass it */
	arena_budget_pool_t *pool; /* also counted there and held to its limit, or NULL */
} arena_budget_t;

/* Whether n bytes more fit b (and its pool); counting them / giving them back (at most what is counted). */
int arena_budget_fits(const arena_budget_t *b, size_t n);
void arena_budget_add(arena_budget_t *b, size_t n);
void arena_budget_sub(arena_budget_t *b, size_t n);

typedef struct arena {
	arena_chunk_t *head;   /* current chunk */
	size_t chunk_size;     /* size of the next chunk to allocate */
	size_t allocated;      /* bytes obtained from the system */
	size_t used;           /* bytes handed out */
	size_t limit;          /* 0 = unlimited; arena_try_alloc fails past this */
	arena_cleanup_t *cleanups;
	arena_budget_t *budget; /* shared budget this arena counts against, or NULL */
	size_t budget_bytes;    /* bytes counted against it (given back on reset/release/detach) */
} arena_t;

void arena_init(arena_t *a, size_t first_chunk);  /* first_chunk 0 = 4 KiB */
void arena_release(arena_t *a);                   /* runs cleanups, frees all chunks */
void arena_reset(arena_t *a);                     /* runs cleanups, keeps one chunk for reuse */
void arena_set_limit(arena_t *a, size_t limit_bytes);
/* Count this arena's allocations from now on against b (NULL detaches). Attaching or detaching gives
 * back the bytes counted against the previous budget; what was allocated before is never counted. */
void arena_set_budget(arena_t *a, arena_budget_t *b);

void *arena_alloc(arena_t *a, size_t size);       /* 16-byte aligned, uninitialised */
void *arena_zalloc(arena_t *a, size_t size);
void *arena_calloc(arena_t *a, size_t n, size_t size);
/* NULL if the limit would be exceeded (memory budget); never NULL without a limit. */
void *arena_try_alloc(arena_t *a, size_t size);
/* Grow the last allocation in place when possible, else copy. old may be NULL. */
void *arena_realloc(arena_t *a, void *old, size_t old_size, size_t new_size);
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);
void *arena_memdup(arena_t *a, const void *p, size_t n);
char *arena_printf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Register fn(arg) to run when the arena is reset or released. */
void arena_on_release(arena_t *a, void (*fn)(void *), void *arg);

#define ARENA_NEW(a, T) ((T *)arena_zalloc((a), sizeof(T)))
#define ARENA_NEW_ARRAY(a, T, n) ((T *)arena_calloc((a), (n), sizeof(T)))

#endif
