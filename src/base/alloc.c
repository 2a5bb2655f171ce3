/* alloc.c — checked allocation; see alloc.h. */
#include "base/alloc.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

_Noreturn void die(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof msg - 2)
		n = (int)sizeof msg - 2;
	msg[n++] = '\n';
	ssize_t w = write(2, "fatal: ", 7);
	w = write(2, msg, (size_t)n);
	(void)w;
	abort();
}

static atomic_bool trim_on;
static atomic_size_t freed_since_trim;
static pthread_mutex_t tick_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t tick_seen_freed;    /* under tick_mu: freed_since_trim at the last tick */
static uint64_t tick_quiet_since; /* under tick_mu: mono ms since freed_since_trim last changed */

void alloc_tune_server(void)
{
#ifdef __GLIBC__
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, ALLOC_SERVER_ARENAS);
	if (!getenv("MALLOC_MMAP_THRESHOLD_"))
		mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	if (!getenv("MALLOC_TRIM_THRESHOLD_"))
		mallopt(M_TRIM_THRESHOLD, ALLOC_SERVER_KEEP_TOP);
	atomic_store(&trim_on, true);
#endif
}

void alloc_keep_heap(void)
{
	atomic_store(&trim_on, false);
}

void alloc_note_freed(size_t n)
{
#ifdef __GLIBC__
	if (!atomic_load_explicit(&trim_on, memory_order_relaxed))
		return;
	size_t was = atomic_fetch_add(&freed_since_trim, n);
	if (was + n >= ALLOC_TRIM_BYTES && was < ALLOC_TRIM_BYTES) {
		atomic_store(&freed_since_trim, 0);
		malloc_trim(0);
	}
#else
	(void)n;
#endif
}

void alloc_idle_tick(uint64_t now)
{
#ifdef __GLIBC__
	if (!atomic_load_explicit(&trim_on, memory_order_relaxed))
		return;
	if (pthread_mutex_trylock(&tick_mu))
		return; /* another loop's tick is at it */
	size_t freed = atomic_load(&freed_since_trim);
	if (freed != tick_seen_freed) { /* something was freed (or trimmed) since the last tick */
		tick_seen_freed = freed;
		tick_quiet_since = now;
	} else if (now - tick_quiet_since >= ALLOC_TRIM_IDLE_MS && freed >= ALLOC_TRIM_IDLE_BYTES) {
		atomic_store(&freed_since_trim, 0);
		tick_seen_freed = 0;
		malloc_trim(0);
	}
	pthread_mutex_unlock(&tick_mu);
#else
	(void)now;
#endif
}

size_t st_mult(size_t a, size_t b)
{
	size_t r;
	if (__builtin_mul_overflow(a, b, &r))
		die("size overflow: %zu * %zu", a, b);
	return r;
}

size_t st_add(size_t a, size_t b)
{
	size_t r;
	if (__builtin_add_overflow(a, b, &r))
		die("size overflow: %zu + %zu", a, b);
	return r;
}

size_t alloc_grow_cap(size_t cap, size_t need)
{
	size_t c = cap < 8 ? 8 : cap;
	while (c < need)
		c = st_mult(c, 2);
	return c;
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (!p)
		die("out of memory allocating %zu bytes", size);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die("out of memory allocating %zu bytes", st_mult(n, size));
	(void)st_mult(n, size);
	return p;
}

void *xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);
	if (!q)
		die("out of memory reallocating %zu bytes", size);
	return q;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
	return xrealloc(p, st_mult(n, size));
}

char *xstrdup(const char *s)
{
	return xmemdup(s, strlen(s) + 1);
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(st_add(len, 1));
	memcpy(p, s, len);
	p[len] = 0;
	return p;
}

void *xmemdup(const void *p, size_t n)
{
	void *q = xmalloc(n);
	if (n)
		memcpy(q, p, n);
	return q;
}
