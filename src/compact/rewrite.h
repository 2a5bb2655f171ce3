/*
 * rewrite.h — series deletion by rewriting a block (`strata tools bucket rewrite`, reference thanos.md
 * §1.11, §3.2 thanos.rewrites).
 *
 * The deletion config is Thanos's --rewrite.to-delete-config YAML, a list of requests:
 *     - matchers: '{__name__="secret_metric", job="x"}'
 *       intervals: [{mint: 1700000000000, maxt: 1700003600000}]   # optional: all time without it
 *       request_id: ticket-123                                     # optional
 * A series matching a request's matchers (its own labels, as in the block's index) loses its samples
 * in that request's intervals (inclusive ms; several requests add up).
 *
 * rewrite_block downloads the block into tmp_dir, streams it through the compaction merge with those
 * deletions (tsdb/blockmerge.h: untouched chunks copied as they are), and writes a new block with a new
 * ULID, the same range, level, sources and thanos section, and thanos.rewrites extended by
 * {sources: [old ULID], deletions_applied: [the requests]}. It prints to `out` every series a request
 * matched and a summary. In dry-run mode that is all; otherwise the new block is verified and uploaded
 * (meta.json last), and then, with mark_old, the old block is marked for deletion. A rewrite that
 * deletes nothing uploads nothing.
 */
#ifndef STRATA_COMPACT_REWRITE_H
#define STRATA_COMPACT_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "model/matcher.h"
#include "objstore/bucket.h"
#include "tsdb/meta.h"

typedef struct rewrite_request {
	char *matchers_text;
	matcher_t *ms;
	size_t nms;
	tomb_interval_t *iv; /* inclusive; none: all time */
	size_t niv;
	char *request_id;
} rewrite_request_t;

typedef struct rewrite_config {
	rewrite_request_t *v;
	size_t n;
} rewrite_config_t;

/* ERR_INVALID naming <what>:<line>:<column> (bad YAML, unknown keys, bad selector, mint > maxt). */
int rewrite_config_parse(const char *yaml, size_t len, const char *what, rewrite_config_t *out, err_t *err);
void rewrite_config_release(rewrite_config_t *c);

typedef struct rewrite_opts {
	const char *tmp_dir;
	bool dry_run;
	bool mark_old;
	FILE *out; /* report; NULL = none */
} rewrite_opts_t;

typedef struct rewrite_result {
	char new_ulid[ULID_LEN + 1]; /* empty in dry-run mode or when nothing changed */
	uint64_t series_matched, series_before, series_after, samples_before, samples_after;
} rewrite_result_t;

int rewrite_block(bucket_t *b, const char *ulid, const rewrite_config_t *cfg, const rewrite_opts_t *o,
                  rewrite_result_t *res, err_t *err);

#endif
