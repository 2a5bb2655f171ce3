/*
 * store.c — helpers shared by store implementations: external-label matching, store selection,
 * label merging, string set normalisation.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

bool store_func_is_counter(const char *func)
{
	static const char *const counters[] = {"rate", "increase", "irate", "resets", "xrate", "xincrease"};
	if (!func)
		return false;
	for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
		if (strcmp(func, counters[i]) == 0)
			return true;
	return false;
}

unsigned store_aggregates_for_func(const char *func)
{
	unsigned avg = 1u << AGGR_COUNT | 1u << AGGR_SUM;
	if (!func)
		return avg;
	if (store_func_is_counter(func))
		return 1u << AGGR_COUNTER;
	if (!strcmp(func, "min") || !strncmp(func, "min_", 4))
		return 1u << AGGR_MIN;
	if (!strcmp(func, "max") || !strncmp(func, "max_", 4))
		return 1u << AGGR_MAX;
	if (!strcmp(func, "count") || !strncmp(func, "count_", 6))
		return 1u << AGGR_COUNT;
	if (!strcmp(func, "sum_over_time"))
		return 1u << AGGR_SUM;
	return avg;
}

aggr_view_t store_aggr_view(unsigned aggregates)
{
	static const aggr_type_t one[] = {AGGR_COUNT, AGGR_SUM, AGGR_MIN, AGGR_MAX, AGGR_COUNTER};
	for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
		if (aggregates == 1u << one[i])
			return (aggr_view_t)one[i];
	return AGGR_VIEW_AVG;
}

bool store_func_needs_two_samples(const char *func)
{
	static const char *const two[] = {"rate",           "irate",        "increase",
	                                  "delta",          "idelta",       "deriv",
	                                  "predict_linear", "holt_winters", "double_exponential_smoothing"};
	if (!func)
		return false;
	for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
		if (!strcmp(func, two[i]))
			return true;
	return false;
}

bool store_match_external(arena_t *a, const labels_t *ext, const matcher_t *ms, size_t nms, const matcher_t **rest,
			  size_t *nrest)
{
	matcher_t *out = nms ? ARENA_NEW_ARRAY(a, matcher_t, nms) : NULL;
	size_t n = 0;
	for (size_t i = 0; i < nms; i++) {
		bool found = false;
		str_t v = labels_get(ext, ms[i].name, &found);
		if (found) {
			if (!matcher_matches(&ms[i], v))
				return false;
			continue;
		}
		out[n++] = ms[i];
	}
	*rest = out;
	*nrest = n;
	return true;
}

bool store_labelsets_compatible(const labels_t *sets, size_t nsets, const matcher_t *ms, size_t nms)
{
	if (nsets == 0)
		return true;
	for (size_t s = 0; s < nsets; s++) {
		bool ok = true;
		for (size_t i = 0; i < nms && ok; i++) {
			bool found = false;
			str_t v = labels_get(&sets[s], ms[i].name, &found);
			if (found && !matcher_matches(&ms[i], v))
				ok = false;
		}
		if (ok)
			return true;
	}
	return false;
}

labels_t store_merge_external(arena_t *a, const labels_t *ls, const labels_t *ext)
{
	labels_t out = {ARENA_NEW_ARRAY(a, label_t, ls->n + ext->n + 1), 0};
	size_t i = 0, j = 0;
	/* Both inputs are sorted by name: a linear merge, external winning on equal names. */
	while (i < ls->n || j < ext->n) {
		int c;
		if (i == ls->n)
			c = 1;
		else if (j == ext->n)
			c = -1;
		else
			c = str_cmp(ls->v[i].name, ext->v[j].name);
		if (c < 0) {
			out.v[out.n++] = ls->v[i++];
		} else if (c > 0) {
			out.v[out.n++] = ext->v[j++];
		} else {
			out.v[out.n++] = ext->v[j++];
			i++;
		}
	}
	return out;
}

static int str_qcmp(const void *a, const void *b)
{
	return str_cmp(*(const str_t *)a, *(const str_t *)b);
}

size_t store_strings_sort_unique(str_t *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, str_qcmp);
	size_t w = 1;
	for (size_t i = 1; i < n; i++)
		if (!str_eq(v[i], v[w - 1]))
			v[w++] = v[i];
	return w;
}
