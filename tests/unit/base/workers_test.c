#include "test.h"

#include <stdatomic.h>
#include <unistd.h>

#include "base/workers.h"

static atomic_int counter;

static void bump(void *arg)
{
	atomic_fetch_add(&counter, (int)(intptr_t)arg);
}

static void square(void *arg, size_t i)
{
	((uint64_t *)arg)[i] = (uint64_t)i * i;
}

TEST(submit_runs_every_job_before_free_returns)
{
	atomic_store(&counter, 0);
	workers_t *w = workers_new(3);
	CHECK_EQ_INT(workers_count(w), 3);
	for (int i = 0; i < 1000; i++)
		workers_submit(w, bump, (void *)(intptr_t)1);
	workers_free(w);
	CHECK_EQ_INT(atomic_load(&counter), 1000);
}

TEST(parallel_for_covers_every_index_once)
{
	workers_t *w = workers_new(0);
	uint64_t out[5000] = {0};
	workers_parallel_for(w, 5000, square, out);
	for (size_t i = 0; i < 5000; i++)
		CHECK_EQ_U64(out[i], (uint64_t)i * i);
	workers_parallel_for(w, 0, square, out);
	workers_parallel_for(w, 1, square, out);
	workers_free(w);
}

static atomic_int gate, entered;

static void wait_gate(void *arg)
{
	atomic_fetch_add(&entered, 1);
	while (!atomic_load(&gate))
		usleep(1000);
}

TEST(threads_start_on_demand_and_exit_when_idle)
{
	workers_t *w = workers_new(4);
	workers_set_idle_exit_ms(w, 50);
	CHECK_EQ_INT(workers_alive(w), 0); /* nothing submitted: no thread */
	atomic_store(&gate, 0);
	atomic_store(&entered, 0);
	/* six blocking jobs: four threads (the most), each job started without waiting for another */
	for (int i = 0; i < 6; i++)
		workers_submit(w, wait_gate, NULL);
	for (int i = 0; i < 2000 && atomic_load(&entered) < 4; i++)
		usleep(1000);
	CHECK_EQ_INT(atomic_load(&entered), 4);
	CHECK_EQ_INT(workers_alive(w), 4);
	atomic_store(&gate, 1);
	for (int i = 0; i < 2000 && workers_alive(w) > 0; i++)
		usleep(1000);
	CHECK_EQ_INT(atomic_load(&entered), 6);
	CHECK_EQ_INT(workers_alive(w), 0); /* idle past 50 ms: gone */
	/* and new ones start again */
	atomic_store(&counter, 0);
	for (int i = 0; i < 100; i++)
		workers_submit(w, bump, (void *)(intptr_t)1);
	workers_free(w);
	CHECK_EQ_INT(atomic_load(&counter), 100);
}

TEST_MAIN()
