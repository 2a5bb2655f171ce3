/*
 * postings.c — set operations over sorted uint32 lists.
 */
#include "tsdb/postings.h"

#include <string.h>

/* First index i >= lo with v[i] >= x (exponential then binary search). */
static size_t gallop(const uint32_t *v, size_t n, size_t lo, uint32_t x)
{
	size_t step = 1, hi = lo;
	while (hi < n && v[hi] < x) {
		lo = hi + 1;
		hi += step;
		step <<= 1;
	}
	if (hi > n)
		hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

postings_t postings_intersect(arena_t *a, postings_t x, postings_t y)
{
	if (x.n > y.n) {
		postings_t t = x;
		x = y, y = t;
	}
	postings_t out = {NULL, 0};
	if (!x.n)
		return out;
	out.v = arena_alloc(a, x.n * sizeof(uint32_t));
	if (y.n / x.n >= 16) {
		size_t j = 0;
		for (size_t i = 0; i < x.n && j < y.n; i++) {
			j = gallop(y.v, y.n, j, x.v[i]);
			if (j < y.n && y.v[j] == x.v[i])
				out.v[out.n++] = x.v[i];
		}
		return out;
	}
	size_t i = 0, j = 0;
	while (i < x.n && j < y.n) {
		uint32_t p = x.v[i], q = y.v[j];
		if (p == q) {
			out.v[out.n++] = p;
			i++, j++;
		} else {
			i += p < q;
			j += q < p;
		}
	}
	return out;
}

static postings_t merge2(arena_t *a, postings_t x, postings_t y)
{
	postings_t out = {arena_alloc(a, (x.n + y.n + 1) * sizeof(uint32_t)), 0};
	size_t i = 0, j = 0;
	while (i < x.n && j < y.n) {
		uint32_t p = x.v[i], q = y.v[j];
		if (p <= q) {
			out.v[out.n++] = p;
			i++;
			j += p == q;
		} else {
			out.v[out.n++] = q;
			j++;
		}
	}
	memcpy(out.v + out.n, x.v + i, (x.n - i) * sizeof(uint32_t));
	out.n += x.n - i;
	memcpy(out.v + out.n, y.v + j, (y.n - j) * sizeof(uint32_t));
	out.n += y.n - j;
	return out;
}

postings_t postings_merge(arena_t *a, const postings_t *lists, size_t n)
{
	if (n == 0)
		return (postings_t){NULL, 0};
	if (n == 1)
		return lists[0];
	size_t h = n / 2;
	return merge2(a, postings_merge(a, lists, h), postings_merge(a, lists + h, n - h));
}

postings_t postings_subtract(arena_t *a, postings_t x, postings_t y)
{
	postings_t out = {arena_alloc(a, (x.n + 1) * sizeof(uint32_t)), 0};
	size_t j = 0;
	for (size_t i = 0; i < x.n; i++) {
		while (j < y.n && y.v[j] < x.v[i])
			j++;
		if (j < y.n && y.v[j] == x.v[i])
			continue;
		out.v[out.n++] = x.v[i];
	}
	return out;
}
