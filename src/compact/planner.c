/*
 * planner.c — the compaction planner (see planner.h).
 */
#include "compact/planner.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define H (3600 * 1000ll)

const int64_t planner_default_ranges[PLANNER_MAX_LEVEL] = {2 * H, 8 * H, 48 * H, 336 * H};

/* Overlaps among the blocks not marked no-compact: idx[0..n) into b. */
static size_t overlapping(const planner_block_t *b, const size_t *idx, size_t n, size_t *out)
{
	if (n < 2)
		return 0;
	size_t k = 0;
	int64_t gmax = b[idx[0]].maxt;
	for (size_t i = 1; i < n; i++) {
		const planner_block_t *m = &b[idx[i]];
		if (m->mint < gmax) {
			if (k == 0)
				out[k++] = idx[i - 1];
			out[k++] = idx[i];
		} else if (k > 0) {
			break;
		}
		if (m->maxt > gmax)
			gmax = m->maxt;
	}
	return k;
}

static size_t eligible(const planner_block_t *b, size_t n, size_t *idx)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!b[i].no_compact)
			idx[k++] = i;
	return k;
}

size_t planner_overlaps(const planner_block_t *b, size_t n, size_t *out)
{
	size_t *idx = xcalloc(n ? n : 1, sizeof *idx);
	size_t k = overlapping(b, idx, eligible(b, n, idx), out);
	free(idx);
	return k;
}

/* Start of the aligned range of width tr holding t (floor division for negative times too). */
static int64_t align_down(int64_t t, int64_t tr)
{
	return t >= 0 ? tr * (t / tr) : tr * ((t - tr + 1) / tr);
}

/* Step 3 over b[0..n) (the newest already left out). */
static size_t select_ranges(const planner_block_t *b, size_t n, const int64_t *ranges, size_t nranges,
                            size_t *out)
{
	if (nranges < 2 || n < 1)
		return 0;
	int64_t high = b[n - 1].mint;
	for (size_t r = 1; r < nranges; r++) {
		int64_t tr = ranges[r];
		for (size_t i = 0; i < n;) {
			int64_t t0 = align_down(b[i].mint, tr);
			if (b[i].maxt > t0 + tr) {
				i++;
				continue;
			}
			size_t from = i;
			while (i < n && b[i].maxt <= t0 + tr)
				i++;
			size_t to = i; /* bucket b[from, to) */
			bool failed = false;
			for (size_t k = from; k < to; k++)
				failed |= b[k].failed;
			if (failed || to - from < 2)
				continue;
			int64_t mint = b[from].mint, maxt = b[to - 1].maxt;
			if (maxt - mint != tr && maxt > high)
				continue;
			/* No-compact blocks split the bucket without leaving gaps: the first run of 2+. */
			size_t run = from;
			for (size_t k = from; k <= to; k++) {
				if (k < to && !b[k].no_compact)
					continue;
				if (k - run > 1) {
					for (size_t j = run; j < k; j++)
						out[j - run] = j;
					return k - run;
				}
				run = k + 1;
			}
		}
	}
	return 0;
}

size_t planner_plan(const planner_block_t *b, size_t n, const int64_t *ranges, size_t nranges, size_t *out)
{
	size_t *idx = xcalloc(n ? n : 1, sizeof *idx);
	size_t ne = eligible(b, n, idx);
	size_t k = overlapping(b, idx, ne, out);
	if (!k && n > 0)
		k = select_ranges(b, n - 1, ranges, nranges, out);
	if (!k && nranges > 0) {
		int64_t mid = ranges[nranges / 2];
		for (size_t i = ne; i-- > 0;) {
			const planner_block_t *m = &b[idx[i]];
			if (m->maxt - m->mint < mid)
				break;
			if ((double)m->num_tombstones / (double)(m->num_series + 1) > 0.05) {
				out[0] = idx[i];
				k = 1;
				break;
			}
		}
	}
	free(idx);
	return k;
}

static int by_mint(const void *a, const void *b)
{
	const planner_block_t *x = a, *y = b;
	return x->mint < y->mint ? -1 : x->mint > y->mint;
}

void planner_progress(const planner_block_t *b, size_t n, const int64_t *ranges, size_t nranges,
                      size_t *compactions, size_t *blocks)
{
	*compactions = *blocks = 0;
	planner_block_t *v = xcalloc(n ? n : 1, sizeof *v);
	memcpy(v, b, n * sizeof *v);
	size_t *out = xcalloc(n ? n : 1, sizeof *out);
	for (;;) {
		size_t k = planner_plan(v, n, ranges, nranges, out);
		if (k == 0)
			break;
		(*compactions)++;
		*blocks += k;
		if (k == 1) { /* a tombstone rewrite: the block comes out clean */
			v[out[0]].num_tombstones = 0;
			continue;
		}
		planner_block_t m = v[out[0]];
		for (size_t i = 1; i < k; i++) {
			const planner_block_t *x = &v[out[i]];
			m.mint = x->mint < m.mint ? x->mint : m.mint;
			m.maxt = x->maxt > m.maxt ? x->maxt : m.maxt;
			m.num_series += x->num_series;
		}
		m.num_tombstones = 0;
		/* Remove the inputs (out is ascending), add the result, keep v sorted by mint. */
		size_t w = 0, oi = 0;
		for (size_t i = 0; i < n; i++) {
			if (oi < k && out[oi] == i) {
				oi++;
				continue;
			}
			v[w++] = v[i];
		}
		v[w++] = m;
		n = w;
		qsort(v, n, sizeof *v, by_mint);
	}
	free(out);
	free(v);
}
