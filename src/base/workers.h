/*
 * workers.h — a fixed pool of worker threads for CPU-heavy work (query evaluation, chunk decoding,
 * compaction), so event loops never block.
 *
 * Jobs run in FIFO order on any worker. workers_free waits for queued jobs to finish. Thread-safe.
 * A job must not block on another job of the same pool (no nested waits).
 *
 * Threads start when jobs need them: a job submitted while no thread is idle starts one, up to
 * nthreads, so a started job never waits for a thread below that and a pool of "one thread per
 * concurrent call" costs nothing while the calls do not come. A thread idle for WORKERS_IDLE_EXIT_S
 * exits (its stack and per-thread allocator state go back), so a process's thread count follows its
 * load instead of its configured concurrency.
 */
#ifndef STRATA_BASE_WORKERS_H
#define STRATA_BASE_WORKERS_H

#include <stddef.h>

typedef struct workers workers_t;

#define WORKERS_IDLE_EXIT_S 10

workers_t *workers_new(int nthreads); /* nthreads <= 0: number of online CPUs; most threads at once */
void workers_free(workers_t *w);
void workers_submit(workers_t *w, void (*fn)(void *arg), void *arg);
int workers_count(const workers_t *w); /* nthreads */
int workers_alive(workers_t *w);       /* threads running now */
void workers_set_idle_exit_ms(workers_t *w, int ms); /* instead of WORKERS_IDLE_EXIT_S (tests) */
size_t workers_queued(workers_t *w);

/* Run fn(arg, i) for i in [0, n) across the pool and the calling thread; returns when all are done.
 * Safe to call from outside the pool only. */
void workers_parallel_for(workers_t *w, size_t n, void (*fn)(void *arg, size_t i), void *arg);

#endif
