/* gosort: Go's sort.Sort and container/heap. That ties land exactly where Go puts them is proven against
 * a real Prometheus 2.42 by tests/integration/promql_ties.py; here: sortedness, permutation, heap order. */
#include "promql/gosort.h"

#include "test.h"

static unsigned rnd_next(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

TEST(sorts_with_many_ties_every_size)
{
	unsigned seed = 7;
	double v[400], orig[400];
	size_t idx[400];
	for (size_t n = 0; n <= 400; n += n < 70 ? 1 : 37) {
		for (int pattern = 0; pattern < 4; pattern++) {
			for (size_t i = 0; i < n; i++) {
				/* few distinct keys, ascending, descending, all equal: every pdqsort path */
				double x = pattern == 0   ? (double)(rnd_next(&seed) % 4)
				           : pattern == 1 ? (double)(i / 3)
				           : pattern == 2 ? (double)(n - i / 2)
				                          : 5;
				v[i] = orig[i] = x;
				idx[i] = i;
			}
			gosort_less_t l = pattern & 1 ? gosort_reverse(GOSORT_ASC) : GOSORT_ASC;
			gosort_sort(v, idx, n, l);
			unsigned char seen[400] = {0};
			for (size_t i = 0; i < n; i++) {
				CHECK(idx[i] < n && !seen[idx[i]]);
				seen[idx[i]] = 1;
				CHECK(v[i] == orig[idx[i]]);
				if (i)
					CHECK(l.reversed ? v[i - 1] >= v[i] : v[i - 1] <= v[i]);
			}
		}
	}
}

TEST(nan_low_orders_put_nan_first_or_last)
{
	double v[] = {2, NAN, 1, 3, NAN, 1};
	gosort_sort(v, NULL, 6, GOSORT_VALUE_HEAP); /* quantile's order: NaN first, then ascending */
	CHECK(isnan(v[0]) && isnan(v[1]) && v[2] == 1 && v[3] == 1 && v[4] == 2 && v[5] == 3);
	double w[] = {2, NAN, 1, 3, NAN, 1};
	gosort_sort(w, NULL, 6, gosort_reverse(GOSORT_REVERSE_VALUE_HEAP)); /* sort(): NaN last */
	CHECK(w[0] == 1 && w[1] == 1 && w[2] == 2 && w[3] == 3 && isnan(w[4]) && isnan(w[5]));
}

TEST(heap_keeps_smallest_on_top)
{
	unsigned seed = 3;
	double v[64];
	size_t idx[64], n = 0;
	for (int i = 0; i < 64; i++)
		gosort_heap_push(v, idx, &n, (double)(rnd_next(&seed) % 10), (size_t)i, GOSORT_VALUE_HEAP);
	CHECK_EQ_INT(n, 64);
	double last = -1;
	while (n) {
		for (size_t i = 1; i < n; i++)
			CHECK(v[0] <= v[i]);
		CHECK(v[0] >= last);
		last = v[0];
		gosort_heap_pop(v, idx, &n, GOSORT_VALUE_HEAP);
	}
}

TEST_MAIN()
