/*
 * vec.h — typed growable arrays (heap), by macro.
 *
 *     VEC(int) v = {0};
 *     VEC_PUSH(&v, 42);
 *     for (size_t i = 0; i < v.n; i++) use(v.v[i]);
 *     VEC_FREE(&v);
 *
 * Growth is overflow-checked through xreallocarray. Zero-initialised is a valid empty vector.
 */
#ifndef STRATA_BASE_VEC_H
#define STRATA_BASE_VEC_H

#include <string.h>

#include "base/alloc.h"

#define VEC(T)                                                                                           \
	struct {                                                                                         \
		T *v;                                                                                    \
		size_t n, cap;                                                                           \
	}

#define VEC_RESERVE(vec, need)                                                                           \
	do {                                                                                             \
		size_t vec_need_ = (need);                                                               \
		if (vec_need_ > (vec)->cap) {                                                            \
			(vec)->cap = alloc_grow_cap((vec)->cap, vec_need_);                              \
			(vec)->v = xreallocarray((vec)->v, (vec)->cap, sizeof(*(vec)->v));               \
		}                                                                                        \
	} while (0)

#define VEC_PUSH(vec, x)                                                                                 \
	do {                                                                                             \
		VEC_RESERVE((vec), (vec)->n + 1);                                                        \
		(vec)->v[(vec)->n++] = (x);                                                              \
	} while (0)

/* Pointer to a new zeroed element at the end (an expression). */
#define VEC_ADD(vec)                                                                                     \
	((vec)->n + 1 > (vec)->cap                                                                       \
		 ? (void)((vec)->cap = alloc_grow_cap((vec)->cap, (vec)->n + 1),                         \
			  (vec)->v = xreallocarray((vec)->v, (vec)->cap, sizeof(*(vec)->v)))             \
		 : (void)0,                                                                              \
	 memset(&(vec)->v[(vec)->n], 0, sizeof(*(vec)->v)), &(vec)->v[(vec)->n++])

#define VEC_POP(vec) ((vec)->v[--(vec)->n])
#define VEC_LAST(vec) ((vec)->v[(vec)->n - 1])
#define VEC_CLEAR(vec) ((vec)->n = 0)
#define VEC_FREE(vec)                                                                                    \
	do {                                                                                             \
		free((vec)->v);                                                                          \
		(vec)->v = NULL;                                                                         \
		(vec)->n = (vec)->cap = 0;                                                               \
	} while (0)

#endif
