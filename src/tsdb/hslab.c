/*
 * hslab.c — size-classed slab pages for the head (see hslab.h).
 *
 * A page is 4 KiB, aligned, its first 32 bytes a header; its slots follow. A free slot holds the
 * index + 1 of the next free slot of its page (uint16); slots never handed out yet are taken in order
 * (bump) so a fresh page is touched only as far as it is used.
 */
#include "tsdb/hslab.h"

#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define PAGE       4096u
#define HEADER     32u
#define REGION     (1u << 20)
#define REGION_PGS (REGION / PAGE)
#define KEEP_WARM  8u

struct hslab_page {
	hslab_page_t *next, *prev; /* in partial[cls] while it has a free slot and a used one */
	uint16_t cls;
	uint16_t used; /* slots in use */
	uint16_t bump; /* slots handed out at least once */
	uint16_t free; /* index + 1 of the first free slot below bump, 0 = none */
	uint16_t nslots;
	bool listed;
};

_Static_assert(sizeof(hslab_page_t) <= HEADER, "page header");

static inline size_t cls_size(unsigned cls)
{
	return (size_t)(cls + 1) * 16;
}

static inline uint8_t *slot_at(hslab_page_t *pg, unsigned i)
{
	return (uint8_t *)pg + HEADER + (size_t)i * cls_size(pg->cls);
}

static inline hslab_page_t *page_of(const void *p)
{
	return (hslab_page_t *)((uintptr_t)p & ~(uintptr_t)(PAGE - 1));
}

void hslab_init(hslab_t *s)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
}

void hslab_release(hslab_t *s)
{
	for (size_t i = 0; i < s->regions.n; i++) {
		UNPOISON(s->regions.v[i], REGION);
		munmap(s->regions.v[i], REGION);
	}
	VEC_FREE(&s->regions);
	VEC_FREE(&s->warm);
	VEC_FREE(&s->cold);
	pthread_mutex_destroy(&s->mu);
	memset(s, 0, sizeof *s);
}

static void list_add(hslab_t *s, hslab_page_t *pg)
{
	pg->prev = NULL;
	pg->next = s->partial[pg->cls];
	if (pg->next)
		pg->next->prev = pg;
	s->partial[pg->cls] = pg;
	pg->listed = true;
}

static void list_del(hslab_t *s, hslab_page_t *pg)
{
	if (pg->prev)
		pg->prev->next = pg->next;
	else
		s->partial[pg->cls] = pg->next;
	if (pg->next)
		pg->next->prev = pg->prev;
	pg->next = pg->prev = NULL;
	pg->listed = false;
}

/* mu held: an empty page for class cls, listed. */
static hslab_page_t *page_new(hslab_t *s, unsigned cls)
{
	hslab_page_t *pg;
	if (s->warm.n) {
		pg = VEC_POP(&s->warm);
	} else if (s->cold.n) {
		pg = VEC_POP(&s->cold);
	} else {
		if (!s->regions.n || s->region_used == REGION_PGS) {
			void *m = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
			               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (m == MAP_FAILED)
				die("out of memory (hslab: mmap of %u bytes)", REGION);
			VEC_PUSH(&s->regions, (uint8_t *)m);
			s->region_used = 0;
			POISON(m, REGION);
		}
		pg = (hslab_page_t *)(VEC_LAST(&s->regions) + (size_t)s->region_used++ * PAGE);
	}
	UNPOISON(pg, HEADER);
	memset(pg, 0, HEADER);
	pg->cls = (uint16_t)cls;
	pg->nslots = (uint16_t)((PAGE - HEADER) / cls_size(cls));
	s->pages++;
	list_add(s, pg);
	return pg;
}

/* mu held: pg has no object left. */
static void page_empty(hslab_t *s, hslab_page_t *pg)
{
	if (pg->listed)
		list_del(s, pg);
	s->pages--;
	POISON(pg, PAGE);
	if (s->warm.n < KEEP_WARM) {
		VEC_PUSH(&s->warm, pg);
		return;
	}
	/* the contents go; the page stays mapped and comes back zeroed when touched again */
	if (sysconf(_SC_PAGESIZE) == PAGE)
		madvise(pg, PAGE, MADV_DONTNEED);
	VEC_PUSH(&s->cold, pg);
}

void *hslab_alloc(hslab_t *s, size_t n)
{
	if (!n)
		return NULL;
	if (n > HSLAB_MAX) {
		pthread_mutex_lock(&s->mu);
		s->large += n;
		pthread_mutex_unlock(&s->mu);
		return xcalloc(1, n);
	}
	unsigned cls = (unsigned)((n + 15) / 16 - 1);
	pthread_mutex_lock(&s->mu);
	hslab_page_t *pg = s->partial[cls];
	if (!pg)
		pg = page_new(s, cls);
	uint8_t *p;
	if (pg->free) {
		p = slot_at(pg, pg->free - 1u);
		UNPOISON(p, 2);
		uint16_t next;
		memcpy(&next, p, 2);
		pg->free = next;
	} else {
		p = slot_at(pg, pg->bump++);
	}
	pg->used++;
	if (pg->used == pg->nslots)
		list_del(s, pg);
	pthread_mutex_unlock(&s->mu);
	UNPOISON(p, cls_size(cls));
	memset(p, 0, cls_size(cls));
	return p;
}

void hslab_free(hslab_t *s, void *p, size_t n)
{
	if (!p || !n)
		return;
	if (n > HSLAB_MAX) {
		free(p);
		pthread_mutex_lock(&s->mu);
		s->large -= n;
		pthread_mutex_unlock(&s->mu);
		return;
	}
	hslab_page_t *pg = page_of(p);
	pthread_mutex_lock(&s->mu);
	BUG_ON(pg->cls != (n + 15) / 16 - 1 || !pg->used);
	unsigned i = (unsigned)(((uint8_t *)p - (uint8_t *)pg - HEADER) / cls_size(pg->cls));
	BUG_ON(slot_at(pg, i) != p);
	if (--pg->used == 0) {
		page_empty(s, pg);
	} else {
		memcpy(p, &pg->free, 2);
		POISON(p, cls_size(pg->cls));
		pg->free = (uint16_t)(i + 1);
		if (!pg->listed)
			list_add(s, pg);
	}
	pthread_mutex_unlock(&s->mu);
}

void *hslab_resize(hslab_t *s, void *p, size_t old, size_t n)
{
	if (!p || !old)
		return hslab_alloc(s, n);
	if (!n) {
		hslab_free(s, p, old);
		return NULL;
	}
	if (old <= HSLAB_MAX && n <= HSLAB_MAX && hslab_round(old) == hslab_round(n)) {
		if (n < old)
			memset((uint8_t *)p + n, 0, old - n);
		return p;
	}
	if (old > HSLAB_MAX && n > HSLAB_MAX) {
		uint8_t *q = xrealloc(p, n);
		if (n > old)
			memset(q + old, 0, n - old);
		pthread_mutex_lock(&s->mu);
		s->large = s->large - old + n;
		pthread_mutex_unlock(&s->mu);
		return q;
	}
	uint8_t *q = hslab_alloc(s, n);
	memcpy(q, p, old < n ? old : n);
	hslab_free(s, p, old);
	return q;
}

uint64_t hslab_bytes(hslab_t *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t b = s->pages * PAGE + s->large;
	pthread_mutex_unlock(&s->mu);
	return b;
}
