/*
 * loop.h — a small epoll event loop (in the spirit of Redis `ae`).
 *
 * One loop per thread that runs it. It multiplexes:
 *   - fd events (LOOP_READ / LOOP_WRITE, level-triggered), one callback per fd;
 *   - one-shot or repeating timers on the monotonic clock (ms resolution), kept in a binary heap;
 *   - a before-sleep hook run once per iteration, just before epoll_wait (flush batched writes here);
 *   - cross-thread posts: loop_post(fn, arg) from ANY thread queues fn to run on the loop thread and
 *     wakes the loop through an eventfd (how worker threads hand results back);
 *   - SIGTERM/SIGINT delivered as a loop callback (loop_handle_signals), never in signal context.
 *
 * Threading: everything except loop_post, loop_stop and loop_wakeup must be called on the loop's
 * thread. Callbacks run on the loop thread and must not block.
 * Errors: loop_new / loop_add_fd return negative ERR_* codes with a message in err.
 */
#ifndef STRATA_NET_LOOP_H
#define STRATA_NET_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct loop loop_t;

enum { LOOP_READ = 1, LOOP_WRITE = 2 };

/* events: LOOP_READ|LOOP_WRITE that are ready (errors/hangups are reported as LOOP_READ so the
 * callback's read() sees them). */
typedef void (*loop_fd_fn)(loop_t *l, int fd, int events, void *arg);
/* Return LOOP_TIMER_DONE to drop the timer, or a delay in ms (>= 0) to fire again. */
typedef int64_t (*loop_timer_fn)(loop_t *l, uint64_t id, void *arg);
#define LOOP_TIMER_DONE (-1)
typedef void (*loop_hook_fn)(loop_t *l, void *arg);
typedef void (*loop_post_fn)(void *arg);
typedef void (*loop_signal_fn)(loop_t *l, int signo, void *arg);

int loop_new(loop_t **out, err_t *err);
/* Frees the loop. Timers are dropped; posted-but-unrun callbacks are run first (so their owners can
 * release memory); registered fds are NOT closed (their owners close them). */
void loop_free(loop_t *l);

/* Register fd with an event mask (may be 0) and a callback. ERR_INVALID if fd is already registered. */
int loop_add_fd(loop_t *l, int fd, int events, loop_fd_fn fn, void *arg, err_t *err);
/* Change the event mask of a registered fd. */
int loop_set_events(loop_t *l, int fd, int events);
int loop_get_events(const loop_t *l, int fd);
/* Unregister (does not close). Safe to call from within that fd's callback. */
void loop_del_fd(loop_t *l, int fd);

/* Timer firing after delay_ms (>= 0). Returns an id (never 0). */
uint64_t loop_add_timer(loop_t *l, int64_t delay_ms, loop_timer_fn fn, void *arg);
/* Cancel; false if no such timer (already fired and done). Safe inside the timer's own callback. */
bool loop_del_timer(loop_t *l, uint64_t id);
size_t loop_timer_count(const loop_t *l);
/* Monotonic ms at which the timer is due, 0 if there is no such timer. */
uint64_t loop_timer_due(const loop_t *l, uint64_t id);

void loop_set_before_sleep(loop_t *l, loop_hook_fn fn, void *arg);

/* Thread-safe: run fn(arg) on the loop thread soon. Never fails (allocation aborts on OOM). */
void loop_post(loop_t *l, loop_post_fn fn, void *arg);
/* Thread-safe: make loop_run return after the current iteration. */
void loop_stop(loop_t *l);
/* Thread-safe: interrupt a sleeping epoll_wait. */
void loop_wakeup(loop_t *l);

/* Route SIGTERM and SIGINT to fn on this loop's thread (at most one loop per process may do this).
 * SIGPIPE is ignored process-wide. A second signal of either kind while the first is being handled
 * is delivered again (the callback decides, e.g. force exit). */
int loop_handle_signals(loop_t *l, loop_signal_fn fn, void *arg, err_t *err);

/* Run the posts queued so far (and none queued while they run); returns whether any ran. For
 * shutdown paths that must collect completions after worker threads have finished. */
bool loop_run_posts(loop_t *l);

/* Run until loop_stop. Returns 0, or ERR_IO if epoll_wait fails unexpectedly. */
int loop_run(loop_t *l);
/* One iteration: wait up to timeout_ms (-1 = until something happens, 0 = poll), dispatch events,
 * expired timers and posts. Returns the number of callbacks run, or a negative ERR_*. */
int loop_run_once(loop_t *l, int timeout_ms);

/* Cached monotonic time in ms, refreshed every iteration (cheap for per-request timestamps). */
uint64_t loop_now_ms(const loop_t *l);
bool loop_stopping(const loop_t *l);

#endif
