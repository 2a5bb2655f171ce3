/*
 * series.c — the empty series set, draining a sample iterator.
 */
#include "model/series.h"

#include <stddef.h>

#include "base/alloc.h"

int64_t sample_iter_drain(sample_iter_t *it, int64_t **t, double **v, size_t *cap, err_t *err)
{
	size_t k = 0;
	for (;;) {
		if (*cap - k < 256) {
			size_t nc = *cap ? *cap * 2 : 4096;
			*t = xreallocarray(*t, nc, sizeof(int64_t));
			*v = xreallocarray(*v, nc, sizeof(double));
			*cap = nc;
		}
		int got = sample_iter_next_batch(it, *t + k, *v + k, (int)(*cap - k), err);
		if (got < 0)
			return got;
		if (got == 0)
			return (int64_t)k;
		k += (size_t)got;
	}
}

static int empty_next(series_set_t *s, err_t *err)
{
	(void)s, (void)err;
	return 0;
}

static const labels_t *empty_labels(series_set_t *s)
{
	static const labels_t none = {NULL, 0};
	(void)s;
	return &none;
}

static int empty_iter_next(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	(void)it, (void)t, (void)v, (void)cap, (void)err;
	return 0;
}

static int empty_iter_seek(sample_iter_t *it, int64_t t, err_t *err)
{
	(void)it, (void)t, (void)err;
	return 0;
}

static const struct sample_iter_ops empty_iter_ops = {empty_iter_next, empty_iter_seek};
static sample_iter_t empty_iter = {&empty_iter_ops};

static sample_iter_t *empty_samples(series_set_t *s)
{
	(void)s;
	return &empty_iter;
}

static void empty_close(series_set_t *s)
{
	(void)s;
}

static const struct series_set_ops empty_ops = {
	.next = empty_next,
	.labels = empty_labels,
	.samples = empty_samples,
	.chunks = NULL,
	.warnings = NULL,
	.close = empty_close,
};
static series_set_t empty_set = {&empty_ops};

series_set_t *series_set_empty(void)
{
	return &empty_set;
}

sample_iter_t *sample_iter_empty(void)
{
	return &empty_iter;
}

static int array_next(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	(void)err;
	sample_iter_array_t *a = (sample_iter_array_t *)it;
	int k = 0;
	while (k < cap && a->i < a->n) {
		t[k] = a->t[a->i];
		v[k] = a->v[a->i];
		k++;
		a->i++;
	}
	return k;
}

static int array_seek(sample_iter_t *it, int64_t t, err_t *err)
{
	(void)err;
	sample_iter_array_t *a = (sample_iter_array_t *)it;
	while (a->i < a->n && a->t[a->i] < t)
		a->i++;
	return 0;
}

static const struct sample_iter_ops array_ops = {array_next, array_seek};

sample_iter_t *sample_iter_array_init(sample_iter_array_t *it, const int64_t *t, const double *v, size_t n)
{
	*it = (sample_iter_array_t){{&array_ops}, t, v, n, 0};
	return &it->base;
}

size_t samples_upper_bound(const int64_t *t, size_t n, int64_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}
