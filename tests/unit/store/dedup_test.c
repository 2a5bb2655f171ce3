/*
 * dedup_test.c — the dedup iterator on hand-written sample sequences (every mode), and dedup_set.
 */
#include "test.h"

#include <string.h>

#include "base/arena.h"
#include "store/dedup.h"
#include "store/inmem.h"

/* A replica's samples: a fixed in-memory sample iterator. */
typedef struct seq {
	sample_iter_t base;
	int64_t t[512];
	double v[512];
	int n, pos;
} seq_t;

static int seq_next(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	seq_t *s = (seq_t *)it;
	int k = 0;
	(void)err;
	while (k < cap && s->pos < s->n) {
		t[k] = s->t[s->pos];
		v[k++] = s->v[s->pos++];
	}
	return k;
}

static int seq_seek(sample_iter_t *it, int64_t t, err_t *err)
{
	seq_t *s = (seq_t *)it;
	(void)err;
	while (s->pos < s->n && s->t[s->pos] < t)
		s->pos++;
	return 0;
}

static const struct sample_iter_ops seq_ops = {seq_next, seq_seek};

static void seq_init(seq_t *s)
{
	memset(s, 0, sizeof *s);
	s->base.ops = &seq_ops;
}

static void seq_add(seq_t *s, int64_t t, double v)
{
	if (s->n == 512)
		TEST_FAILF("seq full");
	s->t[s->n] = t;
	s->v[s->n++] = v;
}

/* Samples every step ms in [from, to], value v0 + dv per step, leaving out [gap_from, gap_to). */
static void seq_fill(seq_t *s, int64_t from, int64_t to, int64_t step, double v0, double dv, int64_t gap_from,
                     int64_t gap_to)
{
	double v = v0;
	for (int64_t x = from; x <= to; x += step, v += dv)
		if (!(x >= gap_from && x < gap_to))
			seq_add(s, x, v);
}

typedef struct out {
	int64_t t[1024];
	double v[1024];
	int n;
} out_t;

/* Deduplicate srcs[0..n) from their start, in batches of 7 (so batch edges fall anywhere). */
static void run(out_t *o, dedup_mode_t mode, bool counter, seq_t **srcs, size_t n)
{
	sample_iter_t *its[8];
	dedup_cursor_t cur[8];
	dedup_iter_t d;
	for (size_t i = 0; i < n; i++) {
		srcs[i]->pos = 0;
		its[i] = &srcs[i]->base;
	}
	dedup_iter_init(&d, cur, its, n, mode, counter);
	err_t err = {0};
	o->n = 0;
	int k;
	while ((k = sample_iter_next_batch(&d.base, o->t + o->n, o->v + o->n, 7, &err)) > 0)
		o->n += k;
	CHECK_EQ_INT(k, 0);
	CHECK_EQ_INT(sample_iter_next_batch(&d.base, o->t, o->v, 7, &err), 0); /* stays exhausted */
}

static void check_times(const out_t *o, const int64_t *want, int n)
{
	for (int i = 0; i < n && i < o->n; i++)
		if (o->t[i] != want[i])
			TEST_FAILF("sample %d: t=%lld, want %lld", i, (long long)o->t[i], (long long)want[i]);
	CHECK_EQ_INT(o->n, n);
}

static bool same_bits(double a, double b)
{
	return memcmp(&a, &b, sizeof a) == 0;
}

TEST(mode_names_round_trip)
{
	dedup_mode_t m;
	const char *names[] = {"penalty", "penalty-thanos", "chain"};
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(dedup_mode_parse(str_c(names[i]), &m), 0);
		CHECK_STR(dedup_mode_name(m), names[i]);
	}
	CHECK_EQ_INT(dedup_mode_parse(str_c("penalty"), &m), 0);
	CHECK_EQ_INT(m, DEDUP_PENALTY);
	CHECK_EQ_INT(dedup_mode_parse(str_c("Penalty"), &m), -1);
	CHECK_EQ_INT(dedup_mode_parse(str_c(""), &m), -1);
}

/* Identical timestamps (receiver replication): a gap in either replica is filled from the other with
 * nothing lost, exactly the gap-free series; the output sticks to the replica in use (values 1 = a,
 * 2 = b). */
TEST(penalty_identical_timestamps_hand_over_exactly)
{
	static seq_t a, b;
	seq_init(&a);
	seq_init(&b);
	seq_fill(&a, 0, 600000, 15000, 1, 0, 60000, 120000);  /* a misses 60s..105s */
	seq_fill(&b, 0, 600000, 15000, 2, 0, 150000, 300000); /* b misses 150s..285s */
	seq_t *srcs[] = {&a, &b};
	static out_t o;
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.n, 41);
	for (int i = 0; i < o.n; i++) {
		CHECK_EQ_INT(o.t[i], i * 15000);
		/* a until its gap, b from 60s (and through a's return at 120s) until b's gap at 150s, then a
		 */
		double want = o.t[i] < 60000 ? 1 : o.t[i] < 150000 ? 2 : 1;
		if (o.v[i] != want)
			TEST_FAILF("t=%lld: value %g, want %g", (long long)o.t[i], o.v[i], want);
	}
	/* the same with the replicas the other way round */
	seq_t *rev[] = {&b, &a};
	run(&o, DEDUP_PENALTY, false, rev, 2);
	CHECK_EQ_INT(o.n, 41);
	for (int i = 0; i < o.n; i++)
		CHECK_EQ_INT(o.t[i], i * 15000);
	/* chain gives the same timestamps; Thanos's penalty loses two intervals after the first hand-over
	 * (60s, 75s) and, the penalty then being twice the 45s jump, three at the second (150s..180s) */
	run(&o, DEDUP_CHAIN, false, srcs, 2);
	CHECK_EQ_INT(o.n, 41);
	run(&o, DEDUP_PENALTY_THANOS, false, srcs, 2);
	CHECK_EQ_INT(o.n, 36);
}

/* Offset timestamps (two Prometheus scraping the same target, b 7s after a), each with its own gap:
 * the output hands over at the other replica's first sample more than a tenth of an interval after the
 * last one, and only there, so it gains one sample per hand-over and never doubles the rate. */
TEST(penalty_offset_timestamps_never_double_the_rate)
{
	static seq_t a, b;
	seq_init(&a);
	seq_init(&b);
	seq_fill(&a, 0, 600000, 15000, 1, 0, 60000, 120000);
	seq_fill(&b, 7000, 592000, 15000, 2, 0, 202000, 300000);
	seq_t *srcs[] = {&a, &b};
	static out_t o;
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	/* a to 45s; its next (120s) is late: b from 52s; b until its gap (187s, then 307s): a from 195s */
	int64_t want[64];
	int n = 0;
	for (int64_t x = 0; x <= 45000; x += 15000)
		want[n++] = x;
	for (int64_t x = 52000; x <= 187000; x += 15000)
		want[n++] = x;
	for (int64_t x = 195000; x <= 600000; x += 15000)
		want[n++] = x;
	check_times(&o, want, n);
	CHECK_EQ_INT(o.n, 41 + 1); /* a gap-free replica has 41 */
	for (int i = 1; i < o.n; i++)
		CHECK(o.t[i] - o.t[i - 1] >= 7000 && o.t[i] - o.t[i - 1] <= 15000);
	/* b only 1s after a: its copy of the scrape a gave last (within a tenth of an interval) is not
	 * taken, its next one is */
	seq_init(&b);
	seq_fill(&b, 1000, 601000, 15000, 2, 0, 0, 0);
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.t[3], 45000);
	CHECK_EQ_INT(o.t[4], 61000);
	CHECK_DBL(o.v[4], 2);
	/* offset by more than half an interval (b 9s after a), no gaps: it stays on a all along */
	seq_init(&b);
	seq_fill(&b, 9000, 594000, 15000, 2, 0, 0, 0);
	seq_init(&a);
	seq_fill(&a, 0, 600000, 15000, 1, 0, 0, 0);
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.n, 41);
	for (int i = 0; i < o.n; i++)
		CHECK_DBL(o.v[i], 1);
	/* ... chain doubles the rate there */
	run(&o, DEDUP_CHAIN, false, srcs, 2);
	CHECK_EQ_INT(o.n, 81);
}

/* A single missed scrape is a gap too; a gap in both replicas at once is bridged by the one in use. */
TEST(penalty_short_and_common_gaps)
{
	static seq_t a, b;
	seq_init(&a);
	seq_init(&b);
	seq_fill(&a, 0, 300000, 15000, 1, 0, 90000, 105000); /* a misses 90s */
	seq_fill(&b, 5000, 305000, 15000, 2, 0, 0, 0);       /* b at +5s */
	seq_t *srcs[] = {&a, &b};
	static out_t o;
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	/* a to 75s, b from 80s, and b to the end */
	CHECK_EQ_INT(o.t[5], 75000);
	CHECK_EQ_INT(o.t[6], 80000);
	CHECK_DBL(o.v[6], 2);
	CHECK_EQ_INT(o.t[o.n - 1], 305000);
	CHECK_EQ_INT(o.n, 6 + 16);
	/* both miss about [100s, 200s): a (in use) resumes at 210s, as b has nothing before (215s) */
	seq_init(&a);
	seq_init(&b);
	seq_fill(&a, 0, 300000, 15000, 1, 0, 100000, 200000);
	seq_fill(&b, 5000, 290000, 15000, 2, 0, 95000, 215000);
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	for (int i = 0; i < o.n; i++)
		CHECK_DBL(o.v[i], 1);
	CHECK_EQ_INT(o.n, a.n);
}

/* Both replicas end (at different times), three replicas, and replicas of a single sample. */
TEST(penalty_replicas_ending_and_single_samples)
{
	static seq_t a, b, c;
	seq_init(&a);
	seq_init(&b);
	seq_init(&c);
	seq_fill(&a, 0, 100000, 10000, 1, 0, 0, 0);
	seq_fill(&b, 0, 150000, 10000, 2, 0, 0, 0);
	seq_fill(&c, 3000, 303000, 10000, 3, 0, 0, 150000);
	seq_t *srcs[] = {&a, &b, &c};
	static out_t o;
	run(&o, DEDUP_PENALTY, false, srcs, 3);
	/* a to 100s; b (the earliest after it) to its end at 150s; c from 153s to its end */
	CHECK_EQ_INT(o.t[10], 100000);
	CHECK_DBL(o.v[10], 1);
	CHECK_EQ_INT(o.t[11], 110000);
	CHECK_DBL(o.v[11], 2);
	CHECK_EQ_INT(o.t[15], 150000);
	CHECK_EQ_INT(o.t[16], 153000);
	CHECK_DBL(o.v[16], 3);
	CHECK_EQ_INT(o.t[o.n - 1], 303000);
	CHECK_EQ_INT(o.n, 16 + 16);
	/* a replica of one sample before the other starts: taken, then the other from its start */
	seq_init(&a);
	seq_init(&b);
	seq_add(&a, 0, 1);
	seq_fill(&b, 15000, 150000, 15000, 2, 0, 0, 0);
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.n, 11);
	CHECK_DBL(o.v[0], 1);
	CHECK_EQ_INT(o.t[1], 15000);
	/* ... inside the other's range: never needed, never taken */
	seq_init(&a);
	seq_add(&a, 61000, 1);
	seq_t *rev[] = {&b, &a};
	run(&o, DEDUP_PENALTY, false, rev, 2);
	CHECK_EQ_INT(o.n, 10);
	for (int i = 0; i < o.n; i++)
		CHECK_DBL(o.v[i], 2);
	/* a stray first sample an hour before the rest of its replica: the other one, which has samples
	 * in between, is not skipped for it (the stray replica's interval is the one after the gap) */
	seq_init(&a);
	seq_init(&b);
	seq_add(&a, 0, 1);
	seq_fill(&a, 3600000, 3660000, 15000, 1, 0, 0, 0);
	seq_fill(&b, 1000, 3661000, 15000, 2, 0, 0, 0);
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.t[0], 0);
	CHECK_EQ_INT(o.t[1], 16000); /* b's 1s is within a tenth of an interval */
	CHECK_EQ_INT(o.n, 1 + 244);
	for (int i = 1; i < o.n; i++)
		CHECK_DBL(o.v[i], 2);
	/* ... and with a replica of one sample in that hour: the stray sample, that one, then the rest */
	seq_init(&b);
	seq_add(&b, 30000, 2);
	run(&o, DEDUP_PENALTY, false, rev, 2);
	CHECK_EQ_INT(o.n, 2 + 5);
	CHECK_EQ_INT(o.t[0], 0);
	CHECK_EQ_INT(o.t[1], 30000);
	CHECK_EQ_INT(o.t[2], 3600000);
	/* both replicas a single sample, same time: one sample, the first replica's */
	seq_init(&a);
	seq_init(&b);
	seq_add(&a, 5000, 1);
	seq_add(&b, 5000, 2);
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.n, 1);
	CHECK_DBL(o.v[0], 1);
	/* an empty replica */
	seq_init(&a);
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.n, 1);
	CHECK_DBL(o.v[0], 2);
	seq_init(&b);
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.n, 0);
}

/* Counters at a hand-over: a replica whose counter lags does not fake a reset (its difference is added
 * from then on); a reset the replica shows in its own samples is a real one and stays. */
TEST(penalty_counter_resets_at_the_hand_over)
{
	static seq_t a, b;
	seq_init(&a);
	seq_init(&b);
	/* a: 100, 110, 120 at 0..30s, then a gap; b 1s later lags by 10 */
	seq_fill(&a, 0, 30000, 15000, 100, 10, 0, 0);
	seq_fill(&b, 1000, 91000, 15000, 90, 10, 0, 0);
	seq_t *srcs[] = {&a, &b};
	static out_t o;
	run(&o, DEDUP_PENALTY, true, srcs, 2);
	/* b from 46s (31s is 1s after 30s): raw 120 is not below 120, no adjustment */
	CHECK_EQ_INT(o.n, 3 + 4);
	CHECK_EQ_INT(o.t[3], 46000);
	CHECK_DBL(o.v[3], 120);
	CHECK_DBL(o.v[6], 150);
	/* b lagging by 15 instead: 115 at 46s would look like a reset: adjusted to 120, then +5 */
	seq_init(&b);
	seq_fill(&b, 1000, 91000, 15000, 85, 10, 0, 0);
	run(&o, DEDUP_PENALTY, true, srcs, 2);
	CHECK_DBL(o.v[3], 120);
	CHECK_DBL(o.v[4], 130);
	/* without counter adjustment (not under rate & co.) the raw values */
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_DBL(o.v[3], 115);
	/* the target restarted in a's gap: b shows the drop in its own samples (135 at 31s, 3 at 46s),
	 * so it is kept, and rate() sees the reset both replicas saw */
	seq_init(&b);
	seq_fill(&b, 1000, 31000, 15000, 115, 10, 0, 0);
	seq_fill(&b, 46000, 91000, 15000, 3, 10, 0, 0);
	run(&o, DEDUP_PENALTY, true, srcs, 2);
	CHECK_EQ_INT(o.t[3], 46000);
	CHECK_DBL(o.v[3], 3);
	CHECK_DBL(o.v[4], 13);
	/* Thanos's penalty adjusts it away (3 + 117: no reset) */
	run(&o, DEDUP_PENALTY_THANOS, true, srcs, 2);
	CHECK_EQ_INT(o.t[3], 61000); /* and skips 46s, inside b's penalty */
	CHECK_DBL(o.v[3], 120);
	/* b has no sample before the hand-over (its data starts there): nothing says it lags, so its value
	 * is taken as it is (what a single replica shows); Thanos's penalty adjusts */
	seq_init(&b);
	seq_fill(&b, 46000, 91000, 15000, 3, 10, 0, 0);
	run(&o, DEDUP_PENALTY, true, srcs, 2);
	CHECK_EQ_INT(o.t[3], 46000);
	CHECK_DBL(o.v[3], 3);
	run(&o, DEDUP_PENALTY_THANOS, true, srcs, 2);
	CHECK_EQ_INT(o.t[3], 61000); /* 46s is inside b's penalty */
	CHECK_DBL(o.v[3], 120);
	/* ... and so is a replica back from a gap: b's sample before its gap (at 1s) says nothing about what
	 * happened during it */
	seq_add(&b, 1000, 150);
	memmove(b.t + 1, b.t, (size_t)(b.n - 1) * sizeof b.t[0]);
	memmove(b.v + 1, b.v, (size_t)(b.n - 1) * sizeof b.v[0]);
	b.t[0] = 1000, b.v[0] = 1;
	run(&o, DEDUP_PENALTY, true, srcs, 2);
	CHECK_EQ_INT(o.t[3], 46000);
	CHECK_DBL(o.v[3], 3);
	/* identical timestamps and values with the reset exactly at the hand-over: the gap-free series */
	seq_init(&a);
	seq_init(&b);
	seq_fill(&a, 0, 45000, 15000, 100, 10, 0, 0);
	seq_fill(&b, 0, 45000, 15000, 100, 10, 0, 0);
	seq_fill(&b, 60000, 120000, 15000, 2, 10, 0, 0);
	run(&o, DEDUP_PENALTY, true, srcs, 2);
	CHECK_EQ_INT(o.n, 9);
	CHECK_DBL(o.v[3], 130);
	CHECK_DBL(o.v[4], 2);
	/* a replica carrying an adjustment that resets itself later: the adjustment goes, the reset stays */
	seq_init(&a);
	seq_init(&b);
	seq_fill(&a, 0, 30000, 15000, 100, 10, 0, 0);
	seq_fill(&b, 1000, 61000, 15000, 85, 10, 0, 0); /* adjusted +5 from 46s */
	seq_fill(&b, 76000, 106000, 15000, 1, 10, 0, 0);
	run(&o, DEDUP_PENALTY, true, srcs, 2);
	CHECK_EQ_INT(o.t[4], 61000);
	CHECK_DBL(o.v[4], 130);
	CHECK_EQ_INT(o.t[5], 76000);
	CHECK_DBL(o.v[5], 1);
	CHECK_DBL(o.v[6], 11);
}

/* NaN (any payload), ±Inf and -0 come out bit for bit, in every mode, with and without counter
 * adjustment; an infinite last value never turns into an adjustment. */
TEST(special_values_pass_bit_for_bit)
{
	static seq_t a, b;
	union {
		uint64_t u;
		double d;
	} stale = {0x7ff0000000000002ull}, nanp = {0x7ff8000000000123ull};
	double vals[] = {-0.0, 0.0, INFINITY, -INFINITY, stale.d, nanp.d, -0.0, 5, -0.0, 1e308};
	int nv = (int)(sizeof vals / sizeof vals[0]);
	for (int mode = 0; mode < 3; mode++)
		for (int counter = 0; counter < 2; counter++) {
			seq_init(&a);
			seq_init(&b);
			for (int i = 0; i < nv; i++) {
				seq_add(&a, i * 15000, vals[i]);
				seq_add(&b, i * 15000, vals[(i + 3) % nv]);
			}
			seq_t *srcs[] = {&a, &b};
			static out_t o;
			run(&o, (dedup_mode_t)mode, counter, srcs, 2);
			CHECK_EQ_INT(o.n, nv);
			for (int i = 0; i < nv; i++)
				if (!same_bits(o.v[i], vals[i]))
					TEST_FAILF("mode %d counter %d sample %d: %a, want %a", mode, counter,
					           i, o.v[i], vals[i]);
		}
	/* hand-overs between special values: a = -0, then +Inf then a gap; b continues with -0 and 1 */
	for (int mode = 0; mode < 2; mode++) {
		seq_init(&a);
		seq_init(&b);
		seq_add(&a, 0, -0.0);
		seq_add(&a, 15000, INFINITY);
		seq_add(&a, 30000, -0.0);
		seq_fill(&b, 0, 30000, 15000, -0.0, 0, 0, 0);
		seq_add(&b, 45000, -0.0);
		seq_add(&b, 60000, 1);
		seq_t *srcs[] = {&a, &b};
		static out_t o;
		run(&o, mode ? DEDUP_PENALTY_THANOS : DEDUP_PENALTY, true, srcs, 2);
		CHECK(o.n >= 2);
		CHECK(same_bits(o.v[0], -0.0));
		CHECK(same_bits(o.v[1], INFINITY));
		if (mode == 0) { /* improved: -0 at 30s is a's own drop (a reset), b's -0 then 1 unadjusted */
			CHECK_EQ_INT(o.n, 5);
			CHECK(same_bits(o.v[2], -0.0));
			CHECK(same_bits(o.v[3], -0.0));
			CHECK_DBL(o.v[4], 1);
		}
	}
}

/* seek() walks: reading after seek(t) gives exactly the samples at or after t of a full read, in every
 * mode, wherever t falls (in gaps, at hand-overs, past the end). */
TEST(seek_equals_reading_from_the_start)
{
	static seq_t a, b;
	seq_init(&a);
	seq_init(&b);
	seq_fill(&a, 0, 900000, 15000, 0, 1, 120000, 300000);
	seq_fill(&b, 7000, 907000, 15000, 0, 1, 450000, 600000);
	seq_t *srcs[] = {&a, &b};
	for (int mode = 0; mode < 3; mode++) {
		static out_t full;
		run(&full, (dedup_mode_t)mode, true, srcs, 2);
		for (int64_t target = -1000; target <= 920000; target += 6500) {
			sample_iter_t *its[2] = {&a.base, &b.base};
			dedup_cursor_t cur[2];
			dedup_iter_t d;
			a.pos = b.pos = 0;
			dedup_iter_init(&d, cur, its, 2, (dedup_mode_t)mode, true);
			err_t err = {0};
			CHECK_EQ_INT(sample_iter_seek(&d.base, target, &err), 0);
			int64_t t[200];
			double v[200];
			int n = sample_iter_next_batch(&d.base, t, v, 200, &err);
			int first = 0;
			while (first < full.n && full.t[first] < target)
				first++;
			CHECK_EQ_INT(n, full.n - first);
			for (int i = 0; i < n; i++) {
				CHECK_EQ_INT(t[i], full.t[first + i]);
				CHECK_DBL(v[i], full.v[first + i]);
			}
		}
	}
}

/* chain: the union by timestamp, identical timestamps collapsed to the first replica's sample. */
TEST(chain_merges_by_timestamp)
{
	static seq_t a, b;
	seq_init(&a);
	seq_init(&b);
	seq_fill(&a, 0, 60000, 15000, 1, 0, 15000, 30000);
	seq_fill(&b, 0, 60000, 10000, 2, 0, 0, 0);
	seq_t *srcs[] = {&a, &b};
	static out_t o;
	run(&o, DEDUP_CHAIN, true, srcs, 2);
	int64_t want[] = {0, 10000, 20000, 30000, 40000, 45000, 50000, 60000};
	check_times(&o, want, 8);
	double wv[] = {1, 2, 2, 1, 2, 1, 2, 1};
	for (int i = 0; i < 8; i++)
		CHECK_DBL(o.v[i], wv[i]);
}

/* Thanos's penalty algorithm (thanos.md §6.4) exactly. */
TEST(penalty_thanos_skips_two_intervals_and_sticks)
{
	/* A scrapes at 0,15s,..; B at +1s offset. A has a gap [60s,120s), B has a gap [150s, 200s). */
	static seq_t a, b;
	seq_init(&a);
	seq_init(&b);
	for (int64_t x = 0; x <= 300000; x += 15000) {
		if (!(x >= 60000 && x < 120000))
			seq_add(&a, x, 1);
		if (!(x + 1000 >= 150000 && x + 1000 < 200000))
			seq_add(&b, x + 1000, 2);
	}
	seq_t *srcs[] = {&a, &b};
	static out_t o;
	run(&o, DEDUP_PENALTY_THANOS, false, srcs, 2);
	/* A until its gap; B's 61s sample falls inside B's penalty (2 x 15s after 45s), so B takes over at
	 * 76s and stays (sticky) although A is back at 120s, until B's own gap; A's 150s and 165s samples
	 * are inside A's penalty, so A resumes at 180s. */
	int64_t want[] = {0,      15000,  30000,  45000,  76000,  91000,  106000, 121000, 136000,
	                  180000, 195000, 210000, 225000, 240000, 255000, 270000, 285000, 300000};
	check_times(&o, want, (int)(sizeof want / sizeof want[0]));
	CHECK_DBL(o.v[3], 1);
	CHECK_DBL(o.v[4], 2);
	CHECK_DBL(o.v[8], 2);
	CHECK_DBL(o.v[9], 1);
	/* the improved penalty hands over at B's first sample half an interval after the last */
	run(&o, DEDUP_PENALTY, false, srcs, 2);
	CHECK_EQ_INT(o.t[4], 61000);
	CHECK_EQ_INT(o.t[9], 136000);
	CHECK_EQ_INT(o.t[10], 150000);
	CHECK_EQ_INT(o.n, 21);
}

TEST(penalty_thanos_counter_adjustment_never_fakes_a_reset)
{
	/* Replica B's counter lags A's; switching from A to B must not go backwards. */
	static seq_t a, b;
	seq_init(&a);
	seq_init(&b);
	int64_t ta[] = {0, 15000, 30000}, tb[] = {1000, 16000, 31000, 46000, 61000, 76000};
	double va[] = {100, 110, 120}, vb[] = {90, 100, 110, 115, 118, 125};
	for (int i = 0; i < 3; i++)
		seq_add(&a, ta[i], va[i]);
	for (int i = 0; i < 6; i++)
		seq_add(&b, tb[i], vb[i]);
	seq_t *srcs[] = {&a, &b};
	static out_t o;
	run(&o, DEDUP_PENALTY_THANOS, true, srcs, 2);
	/* A's three samples, then B from 61s (46s is inside B's penalty) */
	CHECK_EQ_INT(o.n, 5);
	CHECK_EQ_INT(o.t[3], 61000);
	CHECK_DBL(o.v[2], 120);
	CHECK_DBL(o.v[3], 120); /* 118 + offset 2 */
	CHECK_DBL(o.v[4], 127);
	/* without counter adjustment the raw value is used */
	run(&o, DEDUP_PENALTY_THANOS, false, srcs, 2);
	CHECK_EQ_INT(o.n, 5);
	CHECK_DBL(o.v[3], 118);
}

/* dedup_set: series sets merged by labels; a series in one set passes through with its chunks, one in
 * several is deduplicated (samples only). */
static labels_t L1(arena_t *a, const char *name, const char *value)
{
	label_t *l = ARENA_NEW_ARRAY(a, label_t, 2);
	l[0] = (label_t){str_c("__name__"), str_c("m")};
	l[1] = (label_t){str_c(name), str_c(value)};
	return (labels_t){l, 2};
}

TEST(dedup_set_merges_sets_by_labels)
{
	arena_t a;
	arena_init(&a, 0);
	labels_t none = {0};
	inmem_store_t *s[3];
	const char *series[3][3] = {{"1", "2", "4"}, {"2", "3", NULL}, {"2", "4", "5"}};
	for (int i = 0; i < 3; i++) {
		s[i] = inmem_store_new(i ? "b" : "a", &none);
		for (int j = 0; j < 3 && series[i][j]; j++) {
			int64_t t[40];
			double v[40];
			int n = 0;
			for (int64_t x = 0; x < 600000; x += 15000) {
				/* replica i misses its third of [0, 600s) on series 2 */
				if (!strcmp(series[i][j], "2") && x >= i * 200000 && x < (i + 1) * 200000)
					continue;
				t[n] = x;
				v[n++] = (double)x / 1000;
			}
			labels_t ls = L1(&a, "i", series[i][j]);
			err_t err = {0};
			CHECK_EQ_INT(inmem_store_add(s[i], &ls, t, v, (size_t)n, &err), 0);
		}
	}
	matcher_t m;
	err_t err = {0};
	CHECK_EQ_INT(matcher_init(&m, MATCH_EQ, str_c("__name__"), str_c("m"), &err), 0);
	for (int mode = 0; mode < 3; mode++) {
		series_set_t *sets[3];
		store_series_req_t req = {.mint = 0, .maxt = 600000, .ms = &m, .nms = 1};
		for (int i = 0; i < 3; i++)
			CHECK_EQ_INT(store_series(inmem_store_base(s[i]), &a, &req, &sets[i], &err), 0);
		series_set_t *d = dedup_set_new(&a, sets, 3, (dedup_mode_t)mode, false);
		const char *want = "12345";
		int k = 0, rc;
		while ((rc = series_set_next(d, &err)) == 1) {
			const labels_t *ls = series_set_labels(d);
			CHECK(k < 5);
			CHECK_EQ_INT(ls->n, 2);
			CHECK_EQ_INT(ls->v[1].value.p[0], want[k]);
			const chunk_t *cs;
			int nc = d->ops->chunks(d, &cs);
			CHECK_EQ_INT(nc, want[k] == '1' || want[k] == '3' || want[k] == '5' ? 1 : -1);
			int64_t t[64];
			double v[64];
			int n = sample_iter_next_batch(series_set_samples(d), t, v, 64, &err);
			/* every series is gap-free once merged (series 2: each third is in two replicas),
			 * except that Thanos's penalty loses 200s and 215s at series 2's hand-over */
			CHECK_EQ_INT(n, mode == DEDUP_PENALTY_THANOS && want[k] == '2' ? 38 : 40);
			for (int i = 0; i < n; i++) {
				CHECK(i == 0 || t[i] > t[i - 1]);
				CHECK_DBL(v[i], (double)t[i] / 1000);
			}
			k++;
		}
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(k, 5);
		const char *const *w;
		CHECK_EQ_INT(d->ops->warnings(d, &w), 0);
		series_set_close(d);
	}
	matcher_release(&m);
	for (int i = 0; i < 3; i++)
		inmem_store_free(s[i]);
	arena_release(&a);
}

TEST_MAIN()
