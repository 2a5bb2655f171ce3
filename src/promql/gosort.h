/*
 * gosort.h — the orderings Prometheus 2.42 puts samples in, reproduced exactly, ties included.
 *
 * Where Prometheus's result depends on the order of equal values (which series topk keeps, the order
 * sort() returns ties in, which NaN a quantile interpolates with), it is the order that Go 1.19's
 * sort.Sort (pattern-defeating quicksort: insertion sort up to 12 elements, heapsort after too many
 * bad pivots, the deterministic xorshift pattern breaker) and container/heap leave the data in. These
 * functions do the same comparisons and the same swaps in the same sequence, so equal keys end up where
 * Go puts them. Keys are doubles; an optional parallel array of indexes moves with them.
 *
 * Less(i, j) is one of the few rules Prometheus uses (gosort_less_t): NaN may count as less than
 * anything (which is not a strict weak order: Go still terminates and so do we, with the same result).
 * Thread-safe (no state).
 */
#ifndef STRATA_PROMQL_GOSORT_H
#define STRATA_PROMQL_GOSORT_H

#include <stdbool.h>
#include <stddef.h>

/* Less(i, j) on keys a = v[i], b = v[j], with the operands swapped first when reversed (sort.Reverse):
 *   nan_low: isNaN(a) || (desc ? a > b : a < b);   otherwise: desc ? a > b : a < b. */
typedef struct gosort_less {
	bool nan_low, desc, reversed;
} gosort_less_t;

/* 2.42's vectorByValueHeap (topk's heap, quantile's sort): NaN first, then ascending. */
#define GOSORT_VALUE_HEAP ((gosort_less_t){.nan_low = true})
/* 2.42's vectorByReverseValueHeap (bottomk's heap): NaN first, then descending. */
#define GOSORT_REVERSE_VALUE_HEAP ((gosort_less_t){.nan_low = true, .desc = true})
/* Plain a < b (histogram bucket upper bounds). */
#define GOSORT_ASC ((gosort_less_t){0})

static inline gosort_less_t gosort_reverse(gosort_less_t l)
{
	l.reversed = !l.reversed;
	return l;
}

/* Go's sort.Sort over v[0..n) (and idx in lockstep when not NULL). */
void gosort_sort(double *v, size_t *idx, size_t n, gosort_less_t less);

/* container/heap over v/idx[0..*n): Push appends (v, i) and sifts it up; Pop swaps the top with the last
 * element, sifts down and drops the last (*n shrinks by one). The arrays must have room for the push. */
void gosort_heap_push(double *v, size_t *idx, size_t *n, double x, size_t i, gosort_less_t less);
void gosort_heap_pop(double *v, size_t *idx, size_t *n, gosort_less_t less);

#endif
