/*
 * loop.c — epoll event loop: fd table indexed by fd, timer min-heap with an id map for cancellation,
 * an eventfd for cross-thread posts and signal delivery. See loop.h.
 */
#include "net/loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/hmap.h"

typedef struct fd_entry {
	loop_fd_fn fn;
	void *arg;
	int events;
	bool used;
} fd_entry_t;

typedef struct loop_timer {
	uint64_t id;
	uint64_t when; /* mono ms */
	loop_timer_fn fn;
	void *arg;
	size_t idx; /* position in heap, SIZE_MAX when not in it (firing) */
	bool cancelled;
} loop_timer_t;

typedef struct post {
	loop_post_fn fn;
	void *arg;
	struct post *next;
} post_t;

struct loop {
	int epfd;
	int evfd;
	fd_entry_t *fds;
	size_t nfds;
	loop_timer_t **heap;
	size_t nheap, capheap;
	imap_t timers; /* id -> (loop_timer_t *) */
	uint64_t next_id;
	loop_hook_fn before_sleep;
	void *before_sleep_arg;
	pthread_mutex_t post_mu;
	post_t *post_head, *post_tail;
	atomic_bool stop;
	atomic_bool wake_pending;
	uint64_t now;
	loop_signal_fn sig_fn;
	void *sig_arg;
};

/* Signal delivery: the handler only records the signal and writes to the eventfd. */
static _Atomic(loop_t *) sig_loop; /* read by every loop (drain_wakeups) and the handler */
static volatile sig_atomic_t sig_pending_term, sig_pending_int;

static void sig_handler(int signo)
{
	int saved = errno;
	if (signo == SIGTERM)
		sig_pending_term = 1;
	else if (signo == SIGINT)
		sig_pending_int = 1;
	loop_t *l = sig_loop;
	if (l) {
		uint64_t one = 1;
		ssize_t r = write(l->evfd, &one, sizeof one);
		(void)r;
	}
	errno = saved;
}

int loop_new(loop_t **out, err_t *err)
{
	*out = NULL;
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return err_errno(err, "loop: epoll_create1");
	int evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (evfd < 0) {
		close(epfd);
		return err_errno(err, "loop: eventfd");
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = evfd};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev) < 0) {
		int rc = err_errno(err, "loop: epoll_ctl(eventfd)");
		close(epfd);
		close(evfd);
		return rc;
	}
	loop_t *l = xcalloc(1, sizeof *l);
	l->epfd = epfd;
	l->evfd = evfd;
	l->next_id = 1;
	imap_init(&l->timers, 16);
	pthread_mutex_init(&l->post_mu, NULL);
	atomic_init(&l->stop, false);
	atomic_init(&l->wake_pending, false);
	l->now = clock_mono_ms();
	*out = l;
	return 0;
}

static bool run_posts(loop_t *l);

bool loop_run_posts(loop_t *l)
{
	return run_posts(l);
}

void loop_free(loop_t *l)
{
	if (!l)
		return;
	if (sig_loop == l) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		sig_loop = NULL;
	}
	while (run_posts(l))
		;
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	free(l->heap);
	imap_release(&l->timers);
	free(l->fds);
	pthread_mutex_destroy(&l->post_mu);
	close(l->epfd);
	close(l->evfd);
	free(l);
}

static uint32_t to_epoll(int events)
{
	uint32_t e = 0;
	if (events & LOOP_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (events & LOOP_WRITE)
		e |= EPOLLOUT;
	return e;
}

int loop_add_fd(loop_t *l, int fd, int events, loop_fd_fn fn, void *arg, err_t *err)
{
	if (fd < 0)
		return err_set(err, ERR_INVALID, "loop: bad fd %d", fd);
	if ((size_t)fd >= l->nfds) {
		size_t n = alloc_grow_cap(l->nfds, (size_t)fd + 1);
		l->fds = xreallocarray(l->fds, n, sizeof *l->fds);
		memset(l->fds + l->nfds, 0, (n - l->nfds) * sizeof *l->fds);
		l->nfds = n;
	}
	fd_entry_t *fe = &l->fds[fd];
	if (fe->used)
		return err_set(err, ERR_INVALID, "loop: fd %d already registered", fd);
	struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return err_errno(err, "loop: epoll_ctl(ADD, %d)", fd);
	*fe = (fd_entry_t){.fn = fn, .arg = arg, .events = events, .used = true};
	return 0;
}

int loop_set_events(loop_t *l, int fd, int events)
{
	BUG_ON(fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].used);
	fd_entry_t *fe = &l->fds[fd];
	if (fe->events == events)
		return 0;
	struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return ERR_IO;
	fe->events = events;
	return 0;
}

int loop_get_events(const loop_t *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].used)
		return 0;
	return l->fds[fd].events;
}

void loop_del_fd(loop_t *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].used)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->fds[fd] = (fd_entry_t){0};
}

/* ---- timers: binary min-heap on (when, id) ---- */

static bool timer_less(const loop_timer_t *a, const loop_timer_t *b)
{
	return a->when < b->when || (a->when == b->when && a->id < b->id);
}

static void heap_set(loop_t *l, size_t i, loop_timer_t *t)
{
	l->heap[i] = t;
	t->idx = i;
}

static void heap_up(loop_t *l, size_t i)
{
	loop_timer_t *t = l->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!timer_less(t, l->heap[p]))
			break;
		heap_set(l, i, l->heap[p]);
		i = p;
	}
	heap_set(l, i, t);
}

static void heap_down(loop_t *l, size_t i)
{
	loop_timer_t *t = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && timer_less(l->heap[c + 1], l->heap[c]))
			c++;
		if (!timer_less(l->heap[c], t))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static void heap_push(loop_t *l, loop_timer_t *t)
{
	if (l->nheap == l->capheap) {
		l->capheap = alloc_grow_cap(l->capheap, l->nheap + 1);
		l->heap = xreallocarray(l->heap, l->capheap, sizeof *l->heap);
	}
	l->heap[l->nheap++] = t;
	heap_up(l, l->nheap - 1);
}

static void heap_remove(loop_t *l, size_t i)
{
	loop_timer_t *t = l->heap[i];
	t->idx = SIZE_MAX;
	l->nheap--;
	if (i == l->nheap)
		return;
	heap_set(l, i, l->heap[l->nheap]);
	heap_down(l, i);
	heap_up(l, i);
}

uint64_t loop_add_timer(loop_t *l, int64_t delay_ms, loop_timer_fn fn, void *arg)
{
	loop_timer_t *t = xcalloc(1, sizeof *t);
	t->id = l->next_id++;
	t->when = clock_mono_ms() + (uint64_t)(delay_ms < 0 ? 0 : delay_ms);
	t->fn = fn;
	t->arg = arg;
	imap_put(&l->timers, t->id, (uint64_t)(uintptr_t)t);
	heap_push(l, t);
	return t->id;
}

bool loop_del_timer(loop_t *l, uint64_t id)
{
	uint64_t v;
	if (!imap_get(&l->timers, id, &v))
		return false;
	loop_timer_t *t = (loop_timer_t *)(uintptr_t)v;
	if (t->idx == SIZE_MAX) { /* firing right now: the dispatcher frees it */
		if (t->cancelled)
			return false;
		t->cancelled = true;
		return true;
	}
	heap_remove(l, t->idx);
	imap_del(&l->timers, id);
	free(t);
	return true;
}

uint64_t loop_timer_due(const loop_t *l, uint64_t id)
{
	uint64_t v;
	if (!imap_get(&l->timers, id, &v))
		return 0;
	return ((const loop_timer_t *)(uintptr_t)v)->when;
}

size_t loop_timer_count(const loop_t *l)
{
	return l->nheap;
}

static int run_timers(loop_t *l)
{
	int ran = 0;
	uint64_t now = l->now;
	while (l->nheap > 0 && l->heap[0]->when <= now) {
		loop_timer_t *t = l->heap[0];
		heap_remove(l, 0);
		int64_t again = t->fn(l, t->id, t->arg);
		ran++;
		if (again >= 0 && !t->cancelled) {
			/* Re-arm relative to the fresh clock so a slow callback cannot cause a spin. */
			t->when = clock_mono_ms() + (uint64_t)again;
			heap_push(l, t);
		} else {
			imap_del(&l->timers, t->id);
			free(t);
		}
	}
	return ran;
}

/* ---- posts and wakeups ---- */

void loop_wakeup(loop_t *l)
{
	if (atomic_exchange(&l->wake_pending, true))
		return;
	uint64_t one = 1;
	ssize_t r = write(l->evfd, &one, sizeof one);
	(void)r; /* EAGAIN means the counter is already non-zero: the loop will wake anyway */
}

void loop_post(loop_t *l, loop_post_fn fn, void *arg)
{
	post_t *p = xmalloc(sizeof *p);
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&l->post_mu);
	if (l->post_tail)
		l->post_tail->next = p;
	else
		l->post_head = p;
	l->post_tail = p;
	pthread_mutex_unlock(&l->post_mu);
	loop_wakeup(l);
}

/* Runs the posts queued so far; returns whether any ran. */
static bool run_posts(loop_t *l)
{
	pthread_mutex_lock(&l->post_mu);
	post_t *p = l->post_head;
	l->post_head = l->post_tail = NULL;
	pthread_mutex_unlock(&l->post_mu);
	bool any = p != NULL;
	while (p) {
		post_t *next = p->next;
		p->fn(p->arg);
		free(p);
		p = next;
	}
	return any;
}

void loop_stop(loop_t *l)
{
	atomic_store(&l->stop, true);
	loop_wakeup(l);
}

bool loop_stopping(const loop_t *l)
{
	return atomic_load(&((loop_t *)l)->stop);
}

int loop_handle_signals(loop_t *l, loop_signal_fn fn, void *arg, err_t *err)
{
	if (sig_loop && sig_loop != l)
		return err_set(err, ERR_INVALID, "loop: another loop already handles signals");
	l->sig_fn = fn;
	l->sig_arg = arg;
	sig_loop = l;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sig_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return err_errno(err, "loop: sigaction");
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int drain_wakeups(loop_t *l)
{
	uint64_t v;
	while (read(l->evfd, &v, sizeof v) > 0)
		;
	atomic_store(&l->wake_pending, false);
	int ran = 0;
	if (sig_loop == l && l->sig_fn) {
		if (sig_pending_term) {
			sig_pending_term = 0;
			l->sig_fn(l, SIGTERM, l->sig_arg);
			ran++;
		}
		if (sig_pending_int) {
			sig_pending_int = 0;
			l->sig_fn(l, SIGINT, l->sig_arg);
			ran++;
		}
	}
	return ran;
}

uint64_t loop_now_ms(const loop_t *l)
{
	return l->now;
}

int loop_run_once(loop_t *l, int timeout_ms)
{
	if (l->before_sleep)
		l->before_sleep(l, l->before_sleep_arg);
	/* Posts that arrived while we were busy run before sleeping. */
	pthread_mutex_lock(&l->post_mu);
	bool have_posts = l->post_head != NULL;
	pthread_mutex_unlock(&l->post_mu);
	if (have_posts)
		timeout_ms = 0;
	if (l->nheap > 0) {
		uint64_t now = clock_mono_ms();
		uint64_t when = l->heap[0]->when;
		int until = when <= now ? 0 : (when - now > INT32_MAX ? INT32_MAX : (int)(when - now));
		if (timeout_ms < 0 || until < timeout_ms)
			timeout_ms = until;
	}
	struct epoll_event evs[128];
	int n = epoll_wait(l->epfd, evs, (int)ARRAY_LEN(evs), timeout_ms);
	if (n < 0) {
		if (errno != EINTR)
			return ERR_IO;
		n = 0;
	}
	l->now = clock_mono_ms();
	int ran = 0;
	/* Posts that came in while we slept run before the events: a worker that answered a client
	 * itself posts the rest of the request's work, and the client's next request (or a request to
	 * /metrics) must find it done. */
	if (have_posts || n > 0) {
		if (run_posts(l))
			ran++;
	}
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		if (fd == l->evfd) {
			ran += drain_wakeups(l);
			continue;
		}
		if ((size_t)fd >= l->nfds || !l->fds[fd].used)
			continue;
		fd_entry_t *fe = &l->fds[fd];
		uint32_t e = evs[i].events;
		int mask = 0;
		if (e & (EPOLLIN | EPOLLRDHUP))
			mask |= LOOP_READ;
		if (e & EPOLLOUT)
			mask |= LOOP_WRITE;
		if (e & (EPOLLERR | EPOLLHUP))
			mask |= LOOP_READ | fe->events;
		mask &= fe->events | LOOP_READ;
		if (!(fe->events & LOOP_READ) && !(e & (EPOLLERR | EPOLLHUP)))
			mask &= ~LOOP_READ;
		if (!mask)
			continue;
		fe->fn(l, fd, mask, fe->arg);
		ran++;
	}
	ran += run_timers(l);
	if (run_posts(l))
		ran++;
	return ran;
}

int loop_run(loop_t *l)
{
	while (!atomic_load(&l->stop)) {
		int rc = loop_run_once(l, -1);
		if (rc < 0)
			return rc;
	}
	atomic_store(&l->stop, false);
	return 0;
}

void loop_set_before_sleep(loop_t *l, loop_hook_fn fn, void *arg)
{
	l->before_sleep = fn;
	l->before_sleep_arg = arg;
}
