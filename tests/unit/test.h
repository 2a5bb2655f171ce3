/*
 * test.h — Strata's unit test harness. One file per module: tests/unit/<layer>/<module>_test.c.
 *
 *     #include "test.h"
 *     TEST(arena_grows) { ... CHECK(x == 1); CHECK_EQ_INT(a, b); CHECK_STR(s, "abc"); }
 *     TEST_MAIN()
 *
 * Each TEST prints "PASS <file>:<name>" or "FAIL <file>:<name>: <what>"; tests/run counts those lines.
 * A failing CHECK ends that test (the others still run). Run one binary with a substring filter:
 * build-asan/tests/arena_test arena_grows
 */
#ifndef STRATA_TEST_H
#define STRATA_TEST_H

#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64: the tests' reproducible pseudo-random numbers (*s seeded non-zero). */
static inline uint64_t test_xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

typedef struct test_case {
	const char *name;
	void (*fn)(void);
} test_case_t;

#define TEST_MAX 1024
static test_case_t test_cases_[TEST_MAX];
static int test_ncases_;
static jmp_buf test_jmp_;
static char test_msg_[2048];

#define TEST(name)                                                                                       \
	static void test_##name(void);                                                                   \
	__attribute__((constructor)) static void test_reg_##name(void)                                   \
	{                                                                                                \
		if (test_ncases_ < TEST_MAX)                                                             \
			test_cases_[test_ncases_++] = (test_case_t){#name, test_##name};                \
	}                                                                                                \
	static void test_##name(void)

#define TEST_FAILF(...)                                                                                  \
	do {                                                                                             \
		int test_off_ = snprintf(test_msg_, sizeof test_msg_, "%s:%d: ", __FILE__, __LINE__);     \
		snprintf(test_msg_ + test_off_, sizeof test_msg_ - (size_t)test_off_, __VA_ARGS__);      \
		longjmp(test_jmp_, 1);                                                                   \
	} while (0)

#define CHECK(cond)                                                                                      \
	do {                                                                                             \
		if (!(cond))                                                                             \
			TEST_FAILF("CHECK(%s) failed", #cond);                                           \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                               \
	do {                                                                                             \
		long long ta_ = (long long)(a), tb_ = (long long)(b);                                    \
		if (ta_ != tb_)                                                                          \
			TEST_FAILF("%s == %s: %lld != %lld", #a, #b, ta_, tb_);                          \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                                               \
	do {                                                                                             \
		unsigned long long ta_ = (unsigned long long)(a), tb_ = (unsigned long long)(b);         \
		if (ta_ != tb_)                                                                          \
			TEST_FAILF("%s == %s: %llu (0x%llx) != %llu (0x%llx)", #a, #b, ta_, ta_, tb_, tb_);  \
	} while (0)

#define CHECK_STR(a, b)                                                                                  \
	do {                                                                                             \
		const char *ta_ = (a), *tb_ = (b);                                                       \
		if (!ta_ || !tb_ || strcmp(ta_, tb_) != 0)                                               \
			TEST_FAILF("%s == %s: \"%s\" != \"%s\"", #a, #b, ta_ ? ta_ : "(null)",            \
				   tb_ ? tb_ : "(null)");                                                \
	} while (0)

/* Compare a str_t/buf_t-like {p, n} with a C string. */
#define CHECK_SLICE(s, lit)                                                                              \
	do {                                                                                             \
		const char *tl_ = (lit);                                                                 \
		if ((s).n != strlen(tl_) || memcmp((s).p, tl_, (s).n) != 0)                              \
			TEST_FAILF("%s == \"%s\": got \"%.*s\"", #s, tl_, (int)(s).n, (s).p);             \
	} while (0)

#define CHECK_DBL(a, b)                                                                                  \
	do {                                                                                             \
		double ta_ = (a), tb_ = (b);                                                             \
		if (!(ta_ == tb_ || (isnan(ta_) && isnan(tb_))))                                         \
			TEST_FAILF("%s == %s: %.17g != %.17g", #a, #b, ta_, tb_);                        \
	} while (0)

static inline int test_main_(int argc, char **argv, const char *file)
{
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	volatile int failed = 0, passed = 0;
	for (volatile int i = 0; i < test_ncases_; i++) {
		if (argc > 1 && !strstr(test_cases_[i].name, argv[1]))
			continue;
		test_msg_[0] = 0;
		if (setjmp(test_jmp_) == 0) {
			test_cases_[i].fn();
			printf("PASS %s:%s\n", base, test_cases_[i].name);
			passed++;
		} else {
			printf("FAIL %s:%s: %s\n", base, test_cases_[i].name, test_msg_);
			failed++;
		}
		fflush(stdout);
	}
	return failed ? 1 : 0;
}

#define TEST_MAIN()                                                                                      \
	int main(int argc, char **argv)                                                                  \
	{                                                                                                \
		return test_main_(argc, argv, __FILE__);                                                 \
	}

#endif
