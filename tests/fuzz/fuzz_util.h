/*
 * fuzz_util.h — shared bits of the libFuzzer targets: a private copy of the input (so ASan catches a
 * read past its end), the "every error carries a message" check, and draining a series set.
 */
#ifndef STRATA_FUZZ_UTIL_H
#define STRATA_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "model/series.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A heap copy of the input, NUL-terminated one byte past size (not counted). */
static inline char *fuzz_copy(const uint8_t *data, size_t size)
{
	char *p = xmalloc(size + 1);
	if (size)
		memcpy(p, data, size);
	p[size] = 0;
	return p;
}

static inline void fuzz_check_err(int rc, const err_t *err, const char *what)
{
	if (rc < 0 && !err->msg[0]) {
		fprintf(stderr, "%s: error %d without a message\n", what, rc);
		abort();
	}
}

/* Read every series, its chunks and samples; errors must carry a message. */
static inline void fuzz_drain_set(series_set_t *set, const char *what)
{
	err_t err = {0};
	int rc;
	int64_t t[64];
	double v[64];
	for (int nser = 0; nser < 10000 && (rc = series_set_next(set, &err)) > 0; nser++) {
		const labels_t *ls = series_set_labels(set);
		if (!ls)
			abort();
		const chunk_t *cs;
		int nc = set->ops->chunks ? set->ops->chunks(set, &cs) : 0;
		for (int i = 0; i < nc; i++)
			if (cs[i].len && !cs[i].data)
				abort();
		sample_iter_t *it = series_set_samples(set);
		err_t ierr = {0};
		int n;
		while ((n = sample_iter_next_batch(it, t, v, 64, &ierr)) > 0)
			;
		fuzz_check_err(n, &ierr, what);
	}
	fuzz_check_err(rc, &err, what);
	if (set->ops->warnings) {
		const char *const *w;
		size_t nw = set->ops->warnings(set, &w);
		for (size_t i = 0; i < nw; i++)
			if (!w[i])
				abort();
	}
	series_set_close(set);
}

#endif
