/* loop_test.c — timers (order, repeat, cancel, heap stress), fd events, posts from threads, stop. */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "base/clock.h"
#include "net/loop.h"

typedef struct rec {
	int order[64];
	int n;
} rec_t;

static rec_t R;

static int64_t record(loop_t *l, uint64_t id, void *arg)
{
	R.order[R.n++] = (int)(intptr_t)arg;
	return LOOP_TIMER_DONE;
}

static void run_until(loop_t *l, int *flag, int want, int max_ms)
{
	uint64_t t0 = clock_mono_ms();
	while (*flag < want && clock_mono_ms() - t0 < (uint64_t)max_ms)
		loop_run_once(l, 10);
}

TEST(timers_fire_in_order)
{
	loop_t *l;
	CHECK_EQ_INT(loop_new(&l, NULL), 0);
	memset(&R, 0, sizeof R);
	uint64_t t0 = clock_mono_ms(); /* before adding: deadlines are relative to the add time */
	loop_add_timer(l, 30, record, (void *)3);
	loop_add_timer(l, 10, record, (void *)1);
	loop_add_timer(l, 20, record, (void *)2);
	loop_add_timer(l, 0, record, (void *)0);
	run_until(l, &R.n, 4, 2000);
	CHECK_EQ_INT(R.n, 4);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(R.order[i], i);
	CHECK(clock_mono_ms() - t0 >= 30);
	CHECK_EQ_INT(loop_timer_count(l), 0);
	loop_free(l);
}

static int repeats;
static int64_t repeat3(loop_t *l, uint64_t id, void *arg)
{
	return ++repeats < 3 ? 5 : LOOP_TIMER_DONE;
}

static int64_t self_cancel(loop_t *l, uint64_t id, void *arg)
{
	repeats += 100;
	CHECK(loop_del_timer(l, id));
	CHECK(!loop_del_timer(l, id));
	return 1; /* ignored: cancelled */
}

TEST(timer_repeat_and_cancel)
{
	loop_t *l;
	CHECK_EQ_INT(loop_new(&l, NULL), 0);
	repeats = 0;
	memset(&R, 0, sizeof R);
	loop_add_timer(l, 1, repeat3, NULL);
	uint64_t gone = loop_add_timer(l, 5, record, (void *)9);
	CHECK(loop_del_timer(l, gone));
	CHECK(!loop_del_timer(l, gone));
	run_until(l, &repeats, 3, 2000);
	CHECK_EQ_INT(repeats, 3);
	loop_add_timer(l, 1, self_cancel, NULL);
	run_until(l, &repeats, 103, 2000);
	CHECK_EQ_INT(repeats, 103);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 5);
	CHECK_EQ_INT(repeats, 103);
	CHECK_EQ_INT(R.n, 0);
	CHECK_EQ_INT(loop_timer_count(l), 0);
	loop_free(l);
}

static uint64_t last_when;
static int fired, misordered;
static int64_t heap_check(loop_t *l, uint64_t id, void *arg)
{
	uint64_t when = loop_timer_due(l, id); /* exact due time, as the loop sees it */
	if (when < last_when || when > clock_mono_ms())
		misordered++;
	last_when = when;
	fired++;
	return LOOP_TIMER_DONE;
}

TEST(timer_heap_stress)
{
	loop_t *l;
	CHECK_EQ_INT(loop_new(&l, NULL), 0);
	uint64_t ids[500];
	unsigned seed = 12345;
	fired = misordered = 0;
	last_when = 0;
	for (int i = 0; i < 500; i++) {
		seed = seed * 1103515245u + 12345u;
		uint64_t d = (seed >> 16) % 50;
		ids[i] = loop_add_timer(l, (int64_t)d, heap_check, NULL);
	}
	for (int i = 0; i < 500; i += 2)
		CHECK(loop_del_timer(l, ids[i]));
	CHECK_EQ_INT(loop_timer_count(l), 250);
	run_until(l, &fired, 250, 3000);
	CHECK_EQ_INT(fired, 250);
	CHECK_EQ_INT(misordered, 0);
	loop_free(l);
}

static int hook_calls, reads;
static void hook(loop_t *l, void *arg)
{
	hook_calls++;
}

static void on_pipe(loop_t *l, int fd, int events, void *arg)
{
	char b[16];
	if (events & LOOP_READ) {
		ssize_t n = read(fd, b, sizeof b);
		if (n > 0)
			reads += (int)n;
	}
}

TEST(fd_events_and_before_sleep)
{
	loop_t *l;
	CHECK_EQ_INT(loop_new(&l, NULL), 0);
	int p[2];
	CHECK_EQ_INT(pipe(p), 0);
	hook_calls = reads = 0;
	loop_set_before_sleep(l, hook, NULL);
	err_t err = {0};
	CHECK_EQ_INT(loop_add_fd(l, p[0], LOOP_READ, on_pipe, NULL, &err), 0);
	CHECK_EQ_INT(loop_add_fd(l, p[0], LOOP_READ, on_pipe, NULL, &err), ERR_INVALID);
	CHECK_EQ_INT(write(p[1], "abc", 3), 3);
	run_until(l, &reads, 3, 1000);
	CHECK_EQ_INT(reads, 3);
	CHECK(hook_calls >= 1);
	/* Masked out: no callback although data is waiting. */
	CHECK_EQ_INT(loop_set_events(l, p[0], 0), 0);
	CHECK_EQ_INT(write(p[1], "de", 2), 2);
	loop_run_once(l, 20);
	CHECK_EQ_INT(reads, 3);
	CHECK_EQ_INT(loop_set_events(l, p[0], LOOP_READ), 0);
	run_until(l, &reads, 5, 1000);
	CHECK_EQ_INT(reads, 5);
	loop_del_fd(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}

static atomic_int posted;
static void on_post(void *arg)
{
	atomic_fetch_add(&posted, (int)(intptr_t)arg);
}

static void *poster(void *arg)
{
	loop_t *l = arg;
	for (int i = 0; i < 1000; i++)
		loop_post(l, on_post, (void *)1);
	return NULL;
}

static void *stopper(void *arg)
{
	usleep(20000);
	loop_stop(arg);
	return NULL;
}

TEST(posts_from_threads_and_stop)
{
	loop_t *l;
	CHECK_EQ_INT(loop_new(&l, NULL), 0);
	atomic_store(&posted, 0);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, poster, l);
	uint64_t t0 = clock_mono_ms();
	while (atomic_load(&posted) < 4000 && clock_mono_ms() - t0 < 5000)
		loop_run_once(l, 100);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ_INT(atomic_load(&posted), 4000);
	/* loop_stop from another thread wakes a loop sleeping with no timers. */
	pthread_t s;
	pthread_create(&s, NULL, stopper, l);
	t0 = clock_mono_ms();
	CHECK_EQ_INT(loop_run(l), 0);
	pthread_join(s, NULL);
	CHECK(clock_mono_ms() - t0 < 2000);
	/* Posts left at free time still run (their owners release memory). */
	loop_post(l, on_post, (void *)10);
	loop_free(l);
	CHECK_EQ_INT(atomic_load(&posted), 4010);
}

TEST_MAIN()
