#include "test.h"

#include <stdio.h>

#include "base/hmap.h"

TEST(put_get_replace)
{
	hmap_t m;
	hmap_init(&m, 0);
	CHECK(hmap_get(&m, STR("x")) == NULL);
	CHECK(hmap_put(&m, STR("a"), (void *)1) == NULL);
	CHECK(hmap_put(&m, STR("a"), (void *)2) == (void *)1);
	CHECK(hmap_get(&m, STR("a")) == (void *)2);
	CHECK(hmap_put(&m, STR(""), (void *)3) == NULL); /* empty key is a key */
	CHECK(hmap_get(&m, STR("")) == (void *)3);
	CHECK_EQ_INT(m.n, 2);
	hmap_release(&m);
}

TEST(resize_and_delete_keep_every_key_reachable)
{
	enum { N = 20000 };
	static char keys[N][16];
	hmap_t m;
	hmap_init(&m, 4);
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		hmap_put(&m, str_c(keys[i]), (void *)(intptr_t)(i + 1));
	}
	CHECK_EQ_INT(m.n, N);
	for (int i = 0; i < N; i += 2)
		CHECK(hmap_del(&m, str_c(keys[i])) == (void *)(intptr_t)(i + 1));
	CHECK_EQ_INT(m.n, N / 2);
	for (int i = 0; i < N; i++) {
		void *v = hmap_get(&m, str_c(keys[i]));
		if (i % 2)
			CHECK(v == (void *)(intptr_t)(i + 1));
		else
			CHECK(v == NULL);
	}
	size_t it = 0, seen = 0;
	hmap_entry_t *e;
	while (hmap_next(&m, &it, &e))
		seen++;
	CHECK_EQ_INT(seen, N / 2);
	CHECK(hmap_del(&m, STR("nope")) == NULL);
	hmap_release(&m);
}

TEST(slot_insert)
{
	hmap_t m;
	hmap_init(&m, 0);
	bool found;
	void **s = hmap_slot(&m, STR("k"), &found);
	CHECK(!found && *s == NULL);
	*s = (void *)7;
	s = hmap_slot(&m, STR("k"), &found);
	CHECK(found && *s == (void *)7);
	hmap_release(&m);
}

TEST(integer_map)
{
	imap_t m;
	imap_init(&m, 0);
	for (uint64_t i = 0; i < 50000; i++)
		imap_put(&m, i * 7919, i);
	uint64_t v;
	CHECK(imap_get(&m, 7919 * 123, &v) && v == 123);
	CHECK(!imap_get(&m, 5, &v));
	for (uint64_t i = 0; i < 50000; i += 3)
		CHECK(imap_del(&m, i * 7919));
	for (uint64_t i = 0; i < 50000; i++)
		CHECK(imap_get(&m, i * 7919, &v) == (i % 3 != 0));
	CHECK(!imap_del(&m, 1));
	imap_release(&m);
}

TEST(xxhash64_known_value)
{
	/* XXH64("", seed 0) is a published constant. */
	CHECK_EQ_U64(hash_bytes("", 0), 0xEF46DB3751D8E999ULL);
}

TEST_MAIN()
