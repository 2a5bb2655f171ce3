/*
 * planner_test.c — the compaction planner's cases (thanos.md §5.2): aligned ranges, the newest block
 * left out, overlaps first, no-compact marks splitting a bucket without gaps, failed blocks,
 * tombstone rewrites, progress simulation.
 */
#include "compact/planner.h"
#include "test.h"

#define H (3600 * 1000ll)

static const int64_t *R = planner_default_ranges;

static size_t plan(const planner_block_t *b, size_t n, size_t *out)
{
	return planner_plan(b, n, R, PLANNER_MAX_LEVEL, out);
}

#define B(a, z)                                                                                              \
	{                                                                                                    \
		(a) * H, (z)*H, false, false, 10, 0                                                          \
	}

TEST(nothing_to_do)
{
	size_t out[8];
	CHECK_EQ_INT(plan(NULL, 0, out), 0);
	planner_block_t one[] = {B(0, 2)};
	CHECK_EQ_INT(plan(one, 1, out), 0);
	/* two blocks and the newest: the bucket can still grow */
	planner_block_t three[] = {B(0, 2), B(2, 4), B(4, 6)};
	CHECK_EQ_INT(plan(three, 3, out), 0);
}

TEST(full_range_compacted_newest_left_out)
{
	planner_block_t b[] = {B(0, 2), B(2, 4), B(4, 6), B(6, 8), B(8, 10)};
	size_t out[8];
	CHECK_EQ_INT(plan(b, 5, out), 4);
	CHECK_EQ_INT(out[0], 0);
	CHECK_EQ_INT(out[3], 3);
	/* unaligned (promtool) blocks, [first sample, last + 1): a bucket short of its range waits until
	 * a block after it is a candidate (the newest left out) */
	planner_block_t p[] = {{0, 2 * H - 59000},     {2 * H, 4 * H - 59000},  {4 * H, 6 * H - 59000},
	                       {6 * H, 8 * H - 59000}, {8 * H, 10 * H - 59000}, {10 * H, 12 * H - 59000}};
	CHECK_EQ_INT(plan(p, 5, out), 0);
	CHECK_EQ_INT(plan(p, 6, out), 4);
}

TEST(bucket_before_newest_block_compacted)
{
	/* [0,4h) can no longer grow: a block at 8h exists */
	planner_block_t b[] = {B(0, 2), B(2, 4), B(8, 10), B(10, 12)};
	size_t out[8];
	CHECK_EQ_INT(plan(b, 4, out), 2);
	CHECK_EQ_INT(out[0], 0);
	CHECK_EQ_INT(out[1], 1);
}

TEST(overlaps_first)
{
	planner_block_t b[] = {B(0, 2), B(1, 3), B(4, 6), B(5, 7), B(8, 10)};
	size_t out[8];
	CHECK_EQ_INT(plan(b, 5, out), 2);
	CHECK_EQ_INT(out[0], 0);
	CHECK_EQ_INT(out[1], 1);
	CHECK_EQ_INT(planner_overlaps(b, 5, out), 2);
	/* a run of three: the third overlaps the first's end through the second */
	planner_block_t c[] = {B(0, 4), B(1, 2), B(3, 5), B(6, 8)};
	CHECK_EQ_INT(plan(c, 4, out), 3);
	/* no-compact blocks take no part in overlaps */
	planner_block_t d[] = {B(0, 2), B(1, 3), B(6, 8)};
	d[1].no_compact = true;
	CHECK_EQ_INT(planner_overlaps(d, 3, out), 0);
}

TEST(no_compact_splits_bucket_without_gaps)
{
	planner_block_t b[] = {B(0, 2), B(2, 4), B(4, 6), B(6, 8), B(8, 10)};
	b[1].no_compact = true;
	size_t out[8];
	CHECK_EQ_INT(plan(b, 5, out), 2);
	CHECK_EQ_INT(out[0], 2);
	CHECK_EQ_INT(out[1], 3);
	b[2].no_compact = true; /* runs of one each: nothing */
	CHECK_EQ_INT(plan(b, 5, out), 0);
}

TEST(failed_block_skips_bucket)
{
	planner_block_t b[] = {B(0, 2), B(2, 4), B(4, 6), B(6, 8), B(8, 10), B(10, 12), B(16, 18)};
	b[2].failed = true;
	size_t out[8];
	CHECK_EQ_INT(plan(b, 7, out), 0 + 0);
	b[2].failed = false;
	CHECK_EQ_INT(plan(b, 7, out), 4);
}

TEST(higher_levels)
{
	/* six 8h blocks fill the 2d bucket */
	planner_block_t b[] = {B(0, 8), B(8, 16), B(16, 24), B(24, 32), B(32, 40), B(40, 48), B(48, 50)};
	size_t out[8];
	CHECK_EQ_INT(plan(b, 7, out), 6);
	/* max level 2: only the 8h range, nothing to do */
	CHECK_EQ_INT(planner_plan(b, 7, R, 2, out), 0);
}

TEST(tombstone_rewrite)
{
	planner_block_t b[] = {B(0, 48), B(48, 50)};
	b[0].num_series = 100;
	b[0].num_tombstones = 6;
	size_t out[8];
	CHECK_EQ_INT(plan(b, 2, out), 0); /* the newest is scanned first and is too short: stop */
	planner_block_t c[] = {B(0, 48)};
	c[0].num_series = 100;
	c[0].num_tombstones = 6;
	CHECK_EQ_INT(plan(c, 1, out), 1);
	CHECK_EQ_INT(out[0], 0);
	c[0].num_tombstones = 5; /* 5/101 < 5% */
	CHECK_EQ_INT(plan(c, 1, out), 0);
}

TEST(progress_simulation)
{
	planner_block_t b[12];
	for (int i = 0; i < 12; i++)
		b[i] = (planner_block_t)B(2 * i, 2 * i + 2);
	size_t c, n;
	planner_progress(b, 12, R, PLANNER_MAX_LEVEL, &c, &n);
	CHECK_EQ_INT(c, 2);
	CHECK_EQ_INT(n, 8);
	planner_block_t o[] = {B(0, 2), B(1, 3)};
	planner_progress(o, 2, R, PLANNER_MAX_LEVEL, &c, &n);
	CHECK_EQ_INT(c, 1);
	CHECK_EQ_INT(n, 2);
}

TEST_MAIN()
