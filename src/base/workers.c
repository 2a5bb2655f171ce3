/* workers.c — a thread pool of up to n threads, started as jobs need them, with a FIFO job queue; see
 * workers.h. */
#include "base/workers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"

typedef struct job {
	struct job *next;
	void (*fn)(void *);
	void *arg;
} job_t;

enum { SLOT_FREE, SLOT_RUNNING, SLOT_EXITED };

struct workers {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	job_t *head, *tail;
	size_t queued;
	bool stopping;
	int n;       /* most threads at once */
	int alive;   /* threads started and not exited */
	int idle;    /* of those, waiting for a job */
	int idle_exit_ms;
	pthread_t *threads;
	unsigned char *slot; /* SLOT_* per threads[i] */
};

typedef struct start {
	workers_t *w;
	int i;
} start_t;

static void *worker_main(void *arg)
{
	start_t st = *(start_t *)arg;
	free(arg);
	workers_t *w = st.w;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		bool timed_out = false;
		while (!w->head && !w->stopping && !timed_out) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			long ns = ts.tv_nsec + (long)(w->idle_exit_ms % 1000) * 1000000L;
			ts.tv_sec += w->idle_exit_ms / 1000 + ns / 1000000000L;
			ts.tv_nsec = ns % 1000000000L;
			w->idle++;
			timed_out = pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0;
			w->idle--;
		}
		if (!w->head)
			break; /* stopping, or idle for a while: a new one starts when needed */
		job_t *j = w->head;
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		w->queued--;
		pthread_mutex_unlock(&w->mu);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&w->mu);
	}
	w->alive--;
	w->slot[st.i] = SLOT_EXITED;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Under w->mu: start one more thread (joining an exited one's slot first). */
static void spawn(workers_t *w)
{
	int i = 0;
	while (w->slot[i] == SLOT_RUNNING)
		i++;
	if (w->slot[i] == SLOT_EXITED)
		pthread_join(w->threads[i], NULL); /* it has returned already: no wait */
	start_t *st = xmalloc(sizeof *st);
	*st = (start_t){w, i};
	if (pthread_create(&w->threads[i], NULL, worker_main, st))
		die("workers: cannot create thread");
	w->slot[i] = SLOT_RUNNING;
	w->alive++;
}

workers_t *workers_new(int nthreads)
{
	if (nthreads <= 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = c > 0 ? (int)c : 1;
	}
	workers_t *w = xcalloc(1, sizeof *w);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->n = nthreads;
	w->idle_exit_ms = WORKERS_IDLE_EXIT_S * 1000;
	w->threads = xcalloc((size_t)nthreads, sizeof *w->threads);
	w->slot = xcalloc((size_t)nthreads, 1);
	return w;
}

void workers_free(workers_t *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	while (w->alive > 0)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < w->n; i++)
		if (w->slot[i] == SLOT_EXITED)
			pthread_join(w->threads[i], NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->threads);
	free(w->slot);
	free(w);
}

void workers_submit(workers_t *w, void (*fn)(void *), void *arg)
{
	job_t *j = xmalloc(sizeof *j);
	j->next = NULL;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&w->mu);
	if (w->tail)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	w->queued++;
	/* More jobs waiting than idle threads to take them: another thread, up to n. */
	if (w->queued > (size_t)w->idle && w->alive < w->n)
		spawn(w);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void workers_set_idle_exit_ms(workers_t *w, int ms)
{
	pthread_mutex_lock(&w->mu);
	w->idle_exit_ms = ms > 0 ? ms : 1;
	pthread_mutex_unlock(&w->mu);
}

int workers_alive(workers_t *w)
{
	pthread_mutex_lock(&w->mu);
	int n = w->alive;
	pthread_mutex_unlock(&w->mu);
	return n;
}

int workers_count(const workers_t *w)
{
	return w->n;
}

size_t workers_queued(workers_t *w)
{
	pthread_mutex_lock(&w->mu);
	size_t q = w->queued;
	pthread_mutex_unlock(&w->mu);
	return q;
}

/* A parallel for. Heap-allocated and reference-counted (the caller + one per helper job) so that the
 * caller returns as soon as every item is done: a helper that has not been scheduled by then (the
 * caller ran all items itself, common on a busy machine) finds nothing to claim later and only drops
 * its reference, instead of the caller sleeping until it gets a core. */
typedef struct pfor {
	void (*fn)(void *, size_t);
	void *arg; /* the caller's: touched only for claimed items, all done before the caller returns */
	size_t n;
	atomic_size_t next;
	atomic_size_t done;
	atomic_int refs;
	pthread_mutex_t mu;
	pthread_cond_t cv;
} pfor_t;

static void pfor_unref(pfor_t *p)
{
	if (atomic_fetch_sub(&p->refs, 1) == 1) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		free(p);
	}
}

static void pfor_run(pfor_t *p)
{
	for (;;) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->n)
			break;
		p->fn(p->arg, i);
		if (atomic_fetch_add(&p->done, 1) + 1 == p->n) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
}

static void pfor_helper(void *arg)
{
	pfor_t *p = arg;
	pfor_run(p);
	pfor_unref(p);
}

void workers_parallel_for(workers_t *w, size_t n, void (*fn)(void *, size_t), void *arg)
{
	if (n == 0)
		return;
	if (!w || n == 1) {
		for (size_t i = 0; i < n; i++)
			fn(arg, i);
		return;
	}
	pfor_t *p = xmalloc(sizeof *p);
	p->fn = fn, p->arg = arg, p->n = n;
	atomic_init(&p->next, 0);
	atomic_init(&p->done, 0);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	int helpers = w->n < (int)(n - 1) ? w->n : (int)(n - 1);
	atomic_init(&p->refs, 1 + helpers);
	for (int i = 0; i < helpers; i++)
		workers_submit(w, pfor_helper, p);
	pfor_run(p);
	/* Wait for the items the helpers claimed (not for the helpers themselves). */
	if (atomic_load(&p->done) < n) {
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->done) < n)
			pthread_cond_wait(&p->cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
	pfor_unref(p);
}
