/*
 * workers.h — a fixed pool of worker threads for CPU-heavy work (query evaluation, chunk decoding,
 * compaction), so event loops never block.
 *
 * Jobs run in FIFO order on any worker. workers_free waits for queued jobs to finish. Thread-safe.
 * A job must not block on another job of the same pool (no nested waits).
 */
#ifndef STRATA_BASE_WORKERS_H
#define STRATA_BASE_WORKERS_H

#include <stddef.h>

typedef struct workers workers_t;

workers_t *workers_new(int nthreads); /* nthreads <= 0: number of online CPUs */
void workers_free(workers_t *w);
void workers_submit(workers_t *w, void (*fn)(void *arg), void *arg);
int workers_count(const workers_t *w);
size_t workers_queued(workers_t *w);

/* Run fn(arg, i) for i in [0, n) across the pool and the calling thread; returns when all are done.
 * Safe to call from outside the pool only. */
void workers_parallel_for(workers_t *w, size_t n, void (*fn)(void *arg, size_t i), void *arg);

#endif
