/*
 * gosort.c — Go 1.19's sort.Sort and container/heap step for step (see gosort.h).
 *
 * Indexes are signed like Go's int: the algorithm looks one element left of a sub-range (data[a-1])
 * and counts down to index 1 in partial insertion sort, exactly as Go's does; those quirks decide
 * where equal keys land, so they are kept.
 */
#include "promql/gosort.h"

#include <math.h>
#include <stdint.h>

typedef ptrdiff_t gi; /* Go's int */

typedef struct data {
	double *v;
	size_t *idx;
	gosort_less_t l;
} data_t;

static inline bool less(const data_t *d, gi i, gi j)
{
	double a = d->v[d->l.reversed ? j : i], b = d->v[d->l.reversed ? i : j];
	if (d->l.nan_low && isnan(a))
		return true;
	return d->l.desc ? a > b : a < b;
}

static inline void swap(data_t *d, gi i, gi j)
{
	double t = d->v[i];
	d->v[i] = d->v[j];
	d->v[j] = t;
	if (d->idx) {
		size_t k = d->idx[i];
		d->idx[i] = d->idx[j];
		d->idx[j] = k;
	}
}

static int bits_len(uint64_t x) /* Go's bits.Len */
{
	return x ? 64 - __builtin_clzll(x) : 0;
}

static void insertion_sort(data_t *d, gi a, gi b)
{
	for (gi i = a + 1; i < b; i++)
		for (gi j = i; j > a && less(d, j, j - 1); j--)
			swap(d, j, j - 1);
}

static void sift_down(data_t *d, gi lo, gi hi, gi first)
{
	gi root = lo;
	for (;;) {
		gi child = 2 * root + 1;
		if (child >= hi)
			return;
		if (child + 1 < hi && less(d, first + child, first + child + 1))
			child++;
		if (!less(d, first + root, first + child))
			return;
		swap(d, first + root, first + child);
		root = child;
	}
}

static void heap_sort(data_t *d, gi a, gi b)
{
	gi first = a, lo = 0, hi = b - a;
	for (gi i = (hi - 1) / 2; i >= 0; i--)
		sift_down(d, i, hi, first);
	for (gi i = hi - 1; i >= 0; i--) {
		swap(d, first, first + i);
		sift_down(d, lo, i, first);
	}
}

/* partition: data[i] < p for i < newpivot, data[j] >= p for j > newpivot. */
static gi partition(data_t *d, gi a, gi b, gi pivot, bool *already)
{
	swap(d, a, pivot);
	gi i = a + 1, j = b - 1;
	while (i <= j && less(d, i, a))
		i++;
	while (i <= j && !less(d, j, a))
		j--;
	if (i > j) {
		swap(d, j, a);
		*already = true;
		return j;
	}
	swap(d, i, j);
	i++;
	j--;
	for (;;) {
		while (i <= j && less(d, i, a))
			i++;
		while (i <= j && !less(d, j, a))
			j--;
		if (i > j)
			break;
		swap(d, i, j);
		i++;
		j--;
	}
	swap(d, j, a);
	*already = false;
	return j;
}

/* Elements equal to data[pivot] first, then greater ones (none is smaller). */
static gi partition_equal(data_t *d, gi a, gi b, gi pivot)
{
	swap(d, a, pivot);
	gi i = a + 1, j = b - 1;
	for (;;) {
		while (i <= j && !less(d, a, i))
			i++;
		while (i <= j && less(d, a, j))
			j--;
		if (i > j)
			break;
		swap(d, i, j);
		i++;
		j--;
	}
	return i;
}

/* Sorts when at most five adjacent pairs are out of order; true if data[a:b] ends sorted. */
static bool partial_insertion_sort(data_t *d, gi a, gi b)
{
	enum { MAX_STEPS = 5, SHORTEST_SHIFTING = 50 };
	gi i = a + 1;
	for (int step = 0; step < MAX_STEPS; step++) {
		while (i < b && !less(d, i, i - 1))
			i++;
		if (i == b)
			return true;
		if (b - a < SHORTEST_SHIFTING)
			return false;
		swap(d, i, i - 1);
		if (i - a >= 2) /* the smaller one to the left (down to index 1, as Go does) */
			for (gi j = i - 1; j >= 1; j--) {
				if (!less(d, j, j - 1))
					break;
				swap(d, j, j - 1);
			}
		if (b - i >= 2) /* the greater one to the right */
			for (gi j = i + 1; j < b; j++) {
				if (!less(d, j, j - 1))
					break;
				swap(d, j, j - 1);
			}
	}
	return false;
}

static void break_patterns(data_t *d, gi a, gi b)
{
	gi length = b - a;
	if (length < 8)
		return;
	uint64_t r = (uint64_t)length; /* Go's xorshift seeded with the length */
	uint64_t modulus = (uint64_t)1 << bits_len((uint64_t)length);
	for (gi idx = a + (length / 4) * 2 - 1; idx <= a + (length / 4) * 2 + 1; idx++) {
		r ^= r << 13;
		r ^= r >> 17;
		r ^= r << 5;
		gi other = (gi)(r & (modulus - 1));
		if (other >= length)
			other -= length;
		swap(d, idx, a + other);
	}
}

enum hint { HINT_UNKNOWN, HINT_INCREASING, HINT_DECREASING };

static void order2(const data_t *d, gi *a, gi *b, int *swaps)
{
	if (less(d, *b, *a)) {
		gi t = *a;
		*a = *b;
		*b = t;
		++*swaps;
	}
}

static gi median(const data_t *d, gi a, gi b, gi c, int *swaps)
{
	order2(d, &a, &b, swaps);
	order2(d, &b, &c, swaps);
	order2(d, &a, &b, swaps);
	return b;
}

static gi choose_pivot(const data_t *d, gi a, gi b, enum hint *hint)
{
	enum { SHORTEST_NINTHER = 50, MAX_SWAPS = 4 * 3 };
	gi l = b - a;
	int swaps = 0;
	gi i = a + l / 4 * 1, j = a + l / 4 * 2, k = a + l / 4 * 3;
	if (l >= 8) {
		if (l >= SHORTEST_NINTHER) { /* Tukey's ninther */
			i = median(d, i - 1, i, i + 1, &swaps);
			j = median(d, j - 1, j, j + 1, &swaps);
			k = median(d, k - 1, k, k + 1, &swaps);
		}
		j = median(d, i, j, k, &swaps);
	}
	*hint = swaps == 0 ? HINT_INCREASING : swaps == MAX_SWAPS ? HINT_DECREASING : HINT_UNKNOWN;
	return j;
}

static void reverse_range(data_t *d, gi a, gi b)
{
	for (gi i = a, j = b - 1; i < j; i++, j--)
		swap(d, i, j);
}

static void pdqsort(data_t *d, gi a, gi b, int limit)
{
	enum { MAX_INSERTION = 12 };
	bool was_balanced = true, was_partitioned = true;
	for (;;) {
		gi length = b - a;
		if (length <= MAX_INSERTION) {
			insertion_sort(d, a, b);
			return;
		}
		if (limit == 0) {
			heap_sort(d, a, b);
			return;
		}
		if (!was_balanced) {
			break_patterns(d, a, b);
			limit--;
		}
		enum hint hint;
		gi pivot = choose_pivot(d, a, b, &hint);
		if (hint == HINT_DECREASING) {
			reverse_range(d, a, b);
			pivot = (b - 1) - (pivot - a);
			hint = HINT_INCREASING;
		}
		if (was_balanced && was_partitioned && hint == HINT_INCREASING && partial_insertion_sort(d, a, b))
			return;
		if (a > 0 && !less(d, a - 1, pivot)) { /* many duplicates: equal ones, then greater ones */
			a = partition_equal(d, a, b, pivot);
			continue;
		}
		bool already;
		gi mid = partition(d, a, b, pivot, &already);
		was_partitioned = already;
		gi left = mid - a, right = b - mid, threshold = length / 8;
		if (left < right) { /* recurse into the smaller side: depth stays logarithmic */
			was_balanced = left >= threshold;
			pdqsort(d, a, mid, limit);
			a = mid + 1;
		} else {
			was_balanced = right >= threshold;
			pdqsort(d, mid + 1, b, limit);
			b = mid;
		}
	}
}

void gosort_sort(double *v, size_t *idx, size_t n, gosort_less_t l)
{
	if (n <= 1)
		return;
	data_t d = {v, idx, l};
	pdqsort(&d, 0, (gi)n, bits_len(n));
}

void gosort_heap_push(double *v, size_t *idx, size_t *n, double x, size_t i, gosort_less_t l)
{
	data_t d = {v, idx, l};
	v[*n] = x;
	if (idx)
		idx[*n] = i;
	gi j = (gi)(*n)++;
	for (;;) { /* up */
		gi p = (j - 1) / 2;
		if (p == j || !less(&d, j, p))
			break;
		swap(&d, p, j);
		j = p;
	}
}

void gosort_heap_pop(double *v, size_t *idx, size_t *n, gosort_less_t l)
{
	data_t d = {v, idx, l};
	gi last = (gi)*n - 1;
	swap(&d, 0, last);
	gi i = 0; /* down(0, last) */
	for (;;) {
		gi j1 = 2 * i + 1;
		if (j1 >= last)
			break;
		gi j = j1;
		if (j1 + 1 < last && less(&d, j1 + 1, j1))
			j = j1 + 1;
		if (!less(&d, j, i))
			break;
		swap(&d, i, j);
		i = j;
	}
	--*n;
}
