/* arena.c — bump allocator with geometric chunks and cleanup hooks; see arena.h. */
#include "base/arena.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

#define ARENA_ALIGN 16
#define ARENA_MAX_CHUNK (64u << 20)

struct arena_chunk {
	arena_chunk_t *next;
	size_t size; /* usable bytes in data */
	size_t off;
	_Alignas(16) unsigned char data[];
};

struct arena_cleanup {
	arena_cleanup_t *next;
	void (*fn)(void *);
	void *arg;
};

void arena_init(arena_t *a, size_t first_chunk)
{
	memset(a, 0, sizeof *a);
	a->chunk_size = first_chunk ? first_chunk : 4096;
}

static void run_cleanups(arena_t *a)
{
	/* Cleanups live in the arena; they are pushed on a list so run newest first. */
	while (a->cleanups) {
		arena_cleanup_t *c = a->cleanups;
		a->cleanups = c->next;
		c->fn(c->arg);
	}
}

int arena_budget_fits(const arena_budget_t *b, size_t n)
{
	if (n > b->limit || b->used > b->limit - n)
		return 0;
	if (b->pool) {
		size_t used = atomic_load_explicit(&b->pool->used, memory_order_relaxed);
		if (n > b->pool->limit || used > b->pool->limit - n)
			return 0;
	}
	return 1;
}

void arena_budget_add(arena_budget_t *b, size_t n)
{
	b->used += n;
	if (b->pool)
		atomic_fetch_add_explicit(&b->pool->used, n, memory_order_relaxed);
}

void arena_budget_sub(arena_budget_t *b, size_t n)
{
	if (n > b->used)
		n = b->used;
	b->used -= n;
	if (b->pool)
		atomic_fetch_sub_explicit(&b->pool->used, n, memory_order_relaxed);
}

static void budget_give_back(arena_t *a)
{
	if (a->budget)
		arena_budget_sub(a->budget, a->budget_bytes);
	a->budget_bytes = 0;
}

static void budget_count(arena_t *a, size_t n)
{
	if (a->budget) {
		arena_budget_add(a->budget, n);
		a->budget_bytes += n;
	}
}

void arena_set_budget(arena_t *a, arena_budget_t *b)
{
	budget_give_back(a);
	a->budget = b;
}

void arena_release(arena_t *a)
{
	run_cleanups(a);
	budget_give_back(a);
	if (a->allocated >= 64 * 1024)
		alloc_note_freed(a->allocated);
	arena_chunk_t *c = a->head;
	while (c) {
		arena_chunk_t *next = c->next;
		free(c);
		c = next;
	}
	size_t limit = a->limit;
	size_t first = a->chunk_size;
	memset(a, 0, sizeof *a);
	a->limit = limit;
	a->chunk_size = first < 4096 ? 4096 : first;
}

void arena_reset(arena_t *a)
{
	run_cleanups(a);
	budget_give_back(a);
	arena_chunk_t *c = a->head;
	if (!c)
		return;
	/* Keep the largest chunk (the newest) for reuse, free the rest. */
	arena_chunk_t *rest = c->next;
	while (rest) {
		arena_chunk_t *next = rest->next;
		free(rest);
		rest = next;
	}
	c->next = NULL;
	c->off = 0;
	if (a->allocated - c->size >= 64 * 1024)
		alloc_note_freed(a->allocated - c->size);
	a->allocated = c->size;
	a->used = 0;
}

void arena_set_limit(arena_t *a, size_t limit_bytes)
{
	a->limit = limit_bytes;
}

static void *chunk_take(arena_chunk_t *c, size_t size)
{
	size_t off = (c->off + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (off > c->size || c->size - off < size)
		return NULL;
	c->off = off + size;
	return c->data + off;
}

static void *arena_alloc_slow(arena_t *a, size_t size)
{
	size_t want = st_add(size, ARENA_ALIGN);
	size_t csz = a->chunk_size;
	while (csz < want)
		csz = st_mult(csz, 2);
	arena_chunk_t *c = xmalloc(st_add(sizeof *c, csz));
	c->size = csz;
	c->off = 0;
	if (a->head && size > a->chunk_size / 2 && a->head->size - a->head->off > 256) {
		/* A big one-off allocation: put it behind the current chunk so the current chunk's free space
		 * keeps being used. */
		c->next = a->head->next;
		a->head->next = c;
	} else {
		c->next = a->head;
		a->head = c;
	}
	a->allocated += csz;
	if (a->chunk_size < ARENA_MAX_CHUNK)
		a->chunk_size *= 2;
	return chunk_take(c, size);
}

void *arena_alloc(arena_t *a, size_t size)
{
	if (size == 0)
		size = 1;
	a->used += size;
	budget_count(a, size);
	void *p = a->head ? chunk_take(a->head, size) : NULL;
	return p ? p : arena_alloc_slow(a, size);
}

void *arena_try_alloc(arena_t *a, size_t size)
{
	if (a->limit && (a->used + size > a->limit || a->used + size < a->used))
		return NULL;
	if (a->budget && !arena_budget_fits(a->budget, size))
		return NULL;
	return arena_alloc(a, size);
}

void *arena_zalloc(arena_t *a, size_t size)
{
	void *p = arena_alloc(a, size);
	memset(p, 0, size ? size : 1);
	return p;
}

void *arena_calloc(arena_t *a, size_t n, size_t size)
{
	return arena_zalloc(a, st_mult(n, size));
}

void *arena_realloc(arena_t *a, void *old, size_t old_size, size_t new_size)
{
	if (old && new_size <= old_size)
		return old;
	arena_chunk_t *c = a->head;
	if (old && c && (unsigned char *)old + old_size == c->data + c->off &&
	    c->size - c->off >= new_size - old_size) {
		c->off += new_size - old_size;
		a->used += new_size - old_size;
		budget_count(a, new_size - old_size);
		return old;
	}
	void *p = arena_alloc(a, new_size);
	if (old && old_size)
		memcpy(p, old, old_size);
	return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, st_add(n, 1));
	if (n)
		memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *arena_strdup(arena_t *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

void *arena_memdup(arena_t *a, const void *p, size_t n)
{
	void *q = arena_alloc(a, n);
	if (n)
		memcpy(q, p, n);
	return q;
}

char *arena_printf(arena_t *a, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	char *p = arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

void arena_on_release(arena_t *a, void (*fn)(void *), void *arg)
{
	arena_cleanup_t *c = arena_alloc(a, sizeof *c);
	c->fn = fn;
	c->arg = arg;
	c->next = a->cleanups;
	a->cleanups = c;
}
