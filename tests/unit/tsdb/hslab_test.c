#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tsdb/hslab.h"

static uint64_t rs = 88172645463325252ull;
static uint64_t xr(void)
{
	return test_xorshift(&rs);
}

typedef struct obj {
	uint8_t *p;
	size_t n;
	uint8_t fill;
} obj_t;

static void fill(obj_t *o)
{
	memset(o->p, o->fill, o->n);
}

static int intact(const obj_t *o, size_t upto)
{
	for (size_t i = 0; i < upto; i++)
		if (o->p[i] != o->fill)
			return 0;
	return 1;
}

/* Random allocations, frees and resizes of every size class and of large objects: contents survive,
 * new memory is zeroed, and once everything is freed the slab holds no page. */
TEST(hslab_random_against_shadow)
{
	hslab_t s;
	hslab_init(&s);
	enum { N = 3000 };
	static obj_t o[N];
	memset(o, 0, sizeof o);
	for (int step = 0; step < 60000; step++) {
		obj_t *x = &o[xr() % N];
		size_t n = xr() % 8 ? 1 + xr() % HSLAB_MAX : HSLAB_MAX + 1 + xr() % 3000;
		if (!x->p) {
			x->p = hslab_alloc(&s, n);
			x->n = n;
			for (size_t i = 0; i < n; i++)
				if (x->p[i])
					TEST_FAILF("step %d: fresh %zu bytes not zeroed at %zu", step, n, i);
			x->fill = (uint8_t)(1 + xr() % 255);
			fill(x);
		} else if (xr() % 2) {
			CHECK(intact(x, x->n));
			hslab_free(&s, x->p, x->n);
			x->p = NULL;
		} else {
			size_t keep = x->n < n ? x->n : n;
			x->p = hslab_resize(&s, x->p, x->n, n);
			if (!intact(x, keep))
				TEST_FAILF("step %d: resize %zu -> %zu lost bytes", step, x->n, n);
			for (size_t i = keep; i < n; i++)
				if (x->p[i])
					TEST_FAILF("step %d: resize %zu -> %zu: byte %zu not zeroed", step,
					           x->n, n, i);
			x->n = n;
			fill(x);
		}
	}
	CHECK(hslab_bytes(&s) > 0);
	for (int i = 0; i < N; i++) {
		if (!o[i].p)
			continue;
		CHECK(intact(&o[i], o[i].n));
		hslab_free(&s, o[i].p, o[i].n);
	}
	CHECK_EQ_INT(hslab_bytes(&s), 0);
	hslab_release(&s);
}

/* Objects of one size packed into pages: 16-byte slots, no header; freeing them all gives every page
 * back, and the next allocations reuse the same memory. */
TEST(hslab_pages_follow_live_objects)
{
	hslab_t s;
	hslab_init(&s);
	enum { N = 10000 };
	static void *p[N];
	for (int i = 0; i < N; i++)
		p[i] = hslab_alloc(&s, 100); /* 112-byte slots, 36 a page */
	uint64_t full = hslab_bytes(&s);
	CHECK(full <= (N / 36 + 1) * 4096ull);
	CHECK(full >= (N / 36) * 4096ull);
	for (int i = 0; i < N; i += 2)
		hslab_free(&s, p[i], 100);
	CHECK_EQ_INT(hslab_bytes(&s), full); /* every page still has objects */
	for (int i = 1; i < N; i += 2)
		p[i] = hslab_resize(&s, p[i], 100, 20); /* move to the 32-byte class */
	CHECK(hslab_bytes(&s) <= (N / 2 / 127 + 1) * 4096ull);
	for (int i = 1; i < N; i += 2)
		hslab_free(&s, p[i], 20);
	CHECK_EQ_INT(hslab_bytes(&s), 0);
	CHECK_EQ_INT(hslab_alloc(&s, 0) == NULL, 1);
	hslab_free(&s, NULL, 10);
	hslab_release(&s);
}

TEST_MAIN()
