/*
 * dedup.h — merging the sample streams of one series coming from several sources (replicas).
 *
 * Three modes, chosen per request by the querier (`--deduplication.func`) and per run by the
 * compactor's offline dedup. All take N sources at once (every source ascending in time) and never
 * emit two samples with the same timestamp.
 *
 * DEDUP_PENALTY (`penalty`, the default): the output sticks to one replica and hands over exactly
 * where that replica has a gap. Each source keeps its own scrape interval, step = the smaller of its
 * last two intervals between samples (so one gap does not count as an interval). With last_t the
 * last emitted timestamp and c its replica:
 *   - c's next sample is taken while it is on time: t - last_t < 1.5 x c's step (while c has given
 *     one sample only: the interval between its next two, else another replica's; none known: on
 *     time);
 *   - otherwise c has a gap (or has ended): the earliest sample of another replica more than a
 *     tenth of c's step after last_t (DEDUP_HANDOVER_DIV) that comes before c's next sample is
 *     taken, and that replica becomes c; when there is none, c's next sample is.
 * So with identical timestamps (receiver replication, the same blocks uploaded twice) a hand-over
 * loses nothing: the other replica's first sample after the gap is taken and the output equals the
 * gap-free series. With offset timestamps (two Prometheus scraping the same targets) the output only
 * switches where the replica in use has a gap, so it never doubles the sample rate: it gains at most
 * one sample per hand-over, the other replica's first one after the last emitted, which may follow
 * it closely. Why not skip that one (as penalty-thanos does, and taking only samples half an interval
 * later would): skipping it leaves a hole of 1 to 1.5 intervals, and Prometheus's rate/increase
 * extrapolate to a window's edge only within 1.1 average intervals, so every window with an edge in
 * that hole comes out several % low (4% for a 15s series under rate[5m]); a short interval changes
 * nothing there once a window holds ~20 samples. The tenth keeps out another replica's copy of the
 * scrape just emitted (milliseconds apart). A source's first sample, when several start, is the
 * earliest one (ties to the lower index).
 * DEDUP_PENALTY_THANOS (`penalty-thanos`): Thanos's penalty algorithm exactly (reference thanos.md
 * §6.4), generalised from its pairwise fold to N replicas at once (identical for N = 2): every
 * replica is advanced to its first sample at or after last_t + 1 + its penalty; the earliest wins
 * (ties to the lower index); every other replica still holding samples gets penalty
 * 2 x (t_chosen - last_t), or 5000 ms before the first sample; the chosen one's penalty is reset.
 * A hand-over thus skips about two intervals of the other replica (rate/increase run low there, a
 * slowly scraped gauge has no point for a while); kept for answers identical to a Thanos querier.
 * DEDUP_CHAIN (`chain`): the union of the samples, identical timestamps collapsed (the lower index
 * wins), as Prometheus's chained merge: exact for replicas with identical timestamps (receiver
 * replication), the sample rate doubled for replicas with offset timestamps. Also what the proxy uses
 * to merge one series served by several stores without dedup.
 *
 * Counter adjustment (counter = true: the enclosing function is rate/increase/...,
 * store_func_is_counter; both penalty modes, never chain): when the output switches to a replica
 * whose value is below the last emitted one, the difference is added to that replica from then on, so
 * a switch between replicas whose counters differ (thanos#2401: cumulative counters of downsampled
 * blocks after a reset) never looks like a counter reset. DEDUP_PENALTY does so only with evidence of
 * such a lag: the replica's own previous sample, one interval before (no gap in between, within the
 * request's range), is not above its current one. A drop the replica shows in its own samples is a
 * real reset and is kept (its adjustment is cleared); a replica coming back from a gap is taken as it
 * is: replicas of one target see the same counter, so a drop at such a hand-over is what a single
 * replica shows too (a reset, or a gauge under rate()). Only finite values are adjusted.
 * DEDUP_PENALTY_THANOS adjusts every drop at a switch, as Thanos does.
 * Values pass through bit for bit (NaN payloads, -0) unless an adjustment applies.
 *
 * seek() walks forward sample by sample, so the choice of replica is the same as reading from the
 * start. No allocation: the caller provides the cursors (one per source).
 */
#ifndef STRATA_STORE_DEDUP_H
#define STRATA_STORE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/str.h"
#include "model/series.h"

#define DEDUP_BATCH              64
#define DEDUP_INITIAL_PENALTY_MS 5000 /* DEDUP_PENALTY_THANOS */
#define DEDUP_HANDOVER_DIV       10 /* DEDUP_PENALTY: another replica's sample > step / this after the last */

/* DEDUP_PENALTY is 0: a zeroed request deduplicates with the default. */
typedef enum dedup_mode { DEDUP_PENALTY = 0, DEDUP_PENALTY_THANOS, DEDUP_CHAIN } dedup_mode_t;

typedef struct dedup_cursor {
	sample_iter_t *it;
	int64_t t[DEDUP_BATCH];
	double v[DEDUP_BATCH];
	int pos, n;
	bool done;
	int64_t penalty; /* DEDUP_PENALTY_THANOS */
	double offset;   /* counter adjustment */
	/* DEDUP_PENALTY: the samples this source went past (emitted or skipped) */
	bool have_prev, have_pv;
	int64_t prev_t, delta, step; /* last sample, last interval, scrape interval (0: unknown) */
	double prev_v;               /* last non-NaN value */
} dedup_cursor_t;

typedef struct dedup_iter {
	sample_iter_t base;
	dedup_cursor_t *c;
	size_t n;
	dedup_mode_t mode;
	bool counter;
	bool have_last;
	int64_t last_t;
	double last_v;
	size_t cur; /* replica of the last emitted sample */
	bool have_pending;
	int64_t pt;
	double pv;
} dedup_iter_t;

/* its[0..n) are the sources (ascending time each); cursors[0..n) storage owned by the caller; counter
 * turns on counter adjustment (penalty modes). */
void dedup_iter_init(dedup_iter_t *d, dedup_cursor_t *cursors, sample_iter_t *const *its, size_t n,
                     dedup_mode_t mode, bool counter);

/* "penalty", "penalty-thanos" or "chain" (the flag values); -1 for anything else. */
int dedup_mode_parse(str_t name, dedup_mode_t *out);
const char *dedup_mode_name(dedup_mode_t mode);

/* A series set over sets[0..n), each sorted by labels with unique labels (e.g. one block each whose
 * replica labels are gone): the labels of all, in order; a series in several sets is one series whose
 * samples are deduplicated with mode/counter (chunks() -1: samples only), a series in one set passes
 * through with its chunks. Takes ownership of the sets (closed with it); allocates from a, which must
 * outlive it. For vertical compaction's offline dedup and anything else merging whole sets. */
series_set_t *dedup_set_new(arena_t *a, series_set_t *const *sets, size_t n, dedup_mode_t mode, bool counter);

#endif
