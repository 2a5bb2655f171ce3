#include "test.h"

#include "base/alloc.h"
#include "base/arena.h"

#include <stdatomic.h>

TEST(alloc_alignment_and_growth)
{
	arena_t a;
	arena_init(&a, 64);
	char *prev = NULL;
	for (int i = 1; i < 2000; i++) {
		char *p = arena_alloc(&a, (size_t)(i % 97) + 1);
		CHECK(((uintptr_t)p & 15) == 0);
		memset(p, 0xab, (size_t)(i % 97) + 1);
		CHECK(p != prev);
		prev = p;
	}
	CHECK(a.allocated >= a.used);
	void *big = arena_alloc(&a, 1 << 20); /* larger than any chunk so far */
	memset(big, 1, 1 << 20);
	arena_release(&a);
	CHECK(a.head == NULL);
}

TEST(zalloc_and_strings)
{
	arena_t a;
	arena_init(&a, 0);
	int *z = ARENA_NEW_ARRAY(&a, int, 100);
	for (int i = 0; i < 100; i++)
		CHECK_EQ_INT(z[i], 0);
	CHECK_STR(arena_strdup(&a, "hello"), "hello");
	CHECK_STR(arena_strndup(&a, "hello", 3), "hel");
	CHECK_STR(arena_printf(&a, "%d-%s", 42, "x"), "42-x");
	arena_release(&a);
}

TEST(realloc_in_place_and_copy)
{
	arena_t a;
	arena_init(&a, 4096);
	char *p = arena_alloc(&a, 16);
	memcpy(p, "0123456789abcdef", 16);
	char *q = arena_realloc(&a, p, 16, 64);
	CHECK(q == p); /* last allocation grows in place */
	(void)arena_alloc(&a, 8);
	char *r = arena_realloc(&a, q, 64, 8192);
	CHECK(r != q);
	CHECK(memcmp(r, "0123456789abcdef", 16) == 0);
	arena_release(&a);
}

static int cleanup_order[4];
static int cleanup_n;
static void record(void *arg)
{
	cleanup_order[cleanup_n++] = (int)(intptr_t)arg;
}

TEST(cleanups_run_in_reverse_on_reset_and_release)
{
	arena_t a;
	arena_init(&a, 0);
	cleanup_n = 0;
	arena_on_release(&a, record, (void *)1);
	arena_on_release(&a, record, (void *)2);
	arena_reset(&a);
	CHECK_EQ_INT(cleanup_n, 2);
	CHECK_EQ_INT(cleanup_order[0], 2);
	CHECK_EQ_INT(cleanup_order[1], 1);
	CHECK_EQ_INT(a.used, 0);
	(void)arena_alloc(&a, 100); /* the kept chunk is reused */
	arena_on_release(&a, record, (void *)3);
	arena_release(&a);
	CHECK_EQ_INT(cleanup_n, 3);
	CHECK_EQ_INT(cleanup_order[2], 3);
}

TEST(limit_makes_try_alloc_fail_softly)
{
	arena_t a;
	arena_init(&a, 0);
	arena_set_limit(&a, 1000);
	CHECK(arena_try_alloc(&a, 600) != NULL);
	CHECK(arena_try_alloc(&a, 600) == NULL);
	CHECK(arena_try_alloc(&a, 300) != NULL);
	CHECK(arena_try_alloc(&a, SIZE_MAX) == NULL);
	arena_release(&a);
}

TEST(budgets_share_a_pool)
{
	/* two queries' budgets (100 and 100 bytes) over a pool of 150: each fits alone, not both at once,
	 * and what one gives back is room for the other */
	arena_budget_pool_t pool = {.limit = 150};
	arena_budget_t b1 = {.limit = 100, .pool = &pool}, b2 = {.limit = 100, .pool = &pool};
	arena_t a1, a2;
	arena_init(&a1, 0);
	arena_init(&a2, 0);
	arena_set_budget(&a1, &b1);
	arena_set_budget(&a2, &b2);
	CHECK(arena_try_alloc(&a1, 90) != NULL);
	CHECK(arena_try_alloc(&a1, 20) == NULL); /* its own limit */
	CHECK(arena_try_alloc(&a2, 70) == NULL); /* the pool's: 90 + 70 > 150 */
	CHECK(arena_try_alloc(&a2, 60) != NULL);
	CHECK_EQ_INT((long)atomic_load(&pool.used), 150);
	CHECK(!arena_budget_fits(&b2, 1));
	arena_release(&a1);
	CHECK_EQ_INT((long)b1.used, 0);
	CHECK_EQ_INT((long)atomic_load(&pool.used), 60);
	CHECK(arena_try_alloc(&a2, 40) != NULL);
	arena_budget_add(&b1, 30); /* a caller's own charge (heap scratch) */
	CHECK_EQ_INT((long)atomic_load(&pool.used), 130);
	arena_budget_sub(&b1, 50); /* never more than was counted */
	CHECK_EQ_INT((long)b1.used, 0);
	arena_release(&a2);
	CHECK_EQ_INT((long)atomic_load(&pool.used), 0);
}

TEST(checked_size_arithmetic)
{
	CHECK_EQ_U64(st_mult(1u << 20, 1u << 10), 1u << 30);
	CHECK_EQ_U64(st_add(1, 2), 3);
	CHECK(alloc_grow_cap(0, 1) >= 8);
	CHECK(alloc_grow_cap(8, 100) >= 100);
	char *d = xstrndup("abcdef", 3);
	CHECK_STR(d, "abc");
	free(d);
	int *z = xcalloc(10, sizeof(int));
	CHECK_EQ_INT(z[9], 0);
	z = xreallocarray(z, 1000, sizeof(int));
	free(z);
}

TEST_MAIN()
