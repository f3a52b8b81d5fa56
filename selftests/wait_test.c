// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the waiting half of the sync package in libgosync, each object
 * a parking lot (kmod/lot.c) driven by the protocols of lib/sync.c:
 *
 *  - WaitGroup: the counter and its limits (-EOVERFLOW, nothing changed),
 *    Wait on zero without a system call, deadlines on both clocks, many
 *    waiters released at once, reuse right after a generation ends,
 *    WaitGroup.Go and gs_go, fork and SCM_RIGHTS, signals, a stress test;
 *  - Once: one run among threads and processes, callers that wait for the
 *    first one, OnceValues' shared value and error, no system call after
 *    it is done;
 *  - Cond: the mutex must be held (-EPERM), Signal wakes exactly one
 *    parked waiter and Broadcast all, timeouts re-lock the mutex, no
 *    system call without waiters, signals, and a bounded buffer (threads
 *    and processes) that must not lose a wake-up;
 *  - CyclicBarrier: rounds that never mix with their action run once
 *    before anyone leaves, a failing action, timeouts, reset, processes;
 *  - the H2O exercise: a weighted semaphore per element and a barrier of
 *    three make water molecules of exactly two H and one O.
 *
 * The lot's slow-path counters (GOSYNC_IOC_LOT_STATUS: parks, unparks,
 * woken, parked) show when a call entered the kernel and when waiters are
 * asleep there. Every wait that a test expects to end is bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

#define WG_MAX		0x7fffffffLL
/* A far deadline for waits that must end by themselves. */
#define LIMIT_NS	((uint64_t)WAIT_LIMIT_MS * NS_PER_MS)
/*
 * How late a 50-100 ms timeout may end: only the watchdog of a hang (that
 * it did not end early is what the lower bounds check).
 */
#define LATE_MS		WAIT_LIMIT_MS
/* Watchdog of a thread or process running a whole stress loop. */
#define RUN_LIMIT_MS	(15 * 60 * 1000)

/* ------------------------------------------------------------------ */
/* Lots                                                                 */

static uint32_t parked_now(int fd)
{
	struct gosync_lot_status st;

	return lot_status(fd, &st) ? UINT32_MAX : st.parked;
}

/* ------------------------------------------------------------------ */
/* Threads that make one blocking call                                  */

enum op {
	OP_WG_WAIT,
	OP_WG_WAIT_UNTIL,
	OP_COND_WAIT,
	OP_COND_WAIT_UNTIL,
	OP_BARRIER_AWAIT,
	OP_BARRIER_AWAIT_UNTIL,
};

struct waiter {
	enum op op;
	void *obj;
	gs_mutex *m;		/* the Cond's mutex */
	uint64_t deadline;
	unsigned int flags;
	atomic_int *returned;	/* optional: counts returns */
	pthread_t thread;
	atomic_bool done;
	int ret;
	bool held;		/* Cond: the mutex was held on return */
	uint64_t start, end;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->start = mono_ns();
	switch (w->op) {
	case OP_WG_WAIT:
		w->ret = gs_waitgroup_wait(w->obj);
		break;
	case OP_WG_WAIT_UNTIL:
		w->ret = gs_waitgroup_wait_until(w->obj, w->deadline, w->flags);
		break;
	case OP_COND_WAIT:
	case OP_COND_WAIT_UNTIL:
		gs_mutex_lock(w->m);
		if (w->op == OP_COND_WAIT)
			w->ret = gs_cond_wait(w->obj, w->m);
		else
			w->ret = gs_cond_wait_until(w->obj, w->m, w->deadline,
						    w->flags);
		w->held = gs_mutex_trylock(w->m) == -EBUSY;
		if (w->returned)
			atomic_fetch_add(w->returned, 1);
		gs_mutex_unlock(w->m);
		break;
	case OP_BARRIER_AWAIT:
		w->ret = gs_barrier_await(w->obj);
		break;
	case OP_BARRIER_AWAIT_UNTIL:
		w->ret = gs_barrier_await_until(w->obj, w->deadline, w->flags);
		break;
	}
	w->end = mono_ns();
	if (w->returned && w->op != OP_COND_WAIT &&
	    w->op != OP_COND_WAIT_UNTIL)
		atomic_fetch_add(w->returned, 1);
	atomic_store(&w->done, true);
	return NULL;
}

/* Start a waiter whose _until call has @deadline (on @flags' clock). */
static int waiter_start_dl(struct waiter *w, enum op op, void *obj,
			   gs_mutex *m, atomic_int *returned,
			   uint64_t deadline, unsigned int flags)
{
	memset(w, 0, sizeof(*w));
	w->op = op;
	w->obj = obj;
	w->m = m;
	w->deadline = deadline;
	w->flags = flags;
	w->returned = returned;
	w->ret = 1;
	atomic_init(&w->done, false);
	return start_thread(&w->thread, waiter_main, w);
}

static int waiter_start(struct waiter *w, enum op op, void *obj,
			gs_mutex *m, atomic_int *returned)
{
	return waiter_start_dl(w, op, obj, m, returned,
			       gs_deadline_in(LIMIT_NS), 0);
}

/* Wait (bounded) for the waiter's call to return, then join it. */
static bool waiter_join(struct waiter *w, unsigned int ms)
{
	uint64_t end = mono_ns() + (uint64_t)ms * NS_PER_MS;

	while (!atomic_load(&w->done)) {
		if (mono_ns() > end)
			return false;
		usleep(200);
	}
	pthread_join(w->thread, NULL);
	return true;
}

/* ================================================================== */
/* 1. WaitGroup                                                         */

TEST(waitgroup_add_done_count_and_limits)
{
	struct gosync_lot_status st;
	gs_waitgroup *wg = NULL;

	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	ASSERT_EQ(0, lot_status(gs_waitgroup_fd(wg), &st));
	EXPECT_EQ(GOSYNC_LOT_WAITGROUP, st.kind);
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(0, gs_waitgroup_count(wg));

	EXPECT_EQ(0, gs_waitgroup_add(wg, 3));
	EXPECT_EQ(3, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_done(wg));
	EXPECT_EQ(2, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_add(wg, 0));
	EXPECT_EQ(2, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_add(wg, -2));
	EXPECT_EQ(0, gs_waitgroup_count(wg));

	/* Below zero: Go panics, we refuse and change nothing. */
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_done(wg));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_add(wg, 5));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, -6));
	EXPECT_EQ(5, gs_waitgroup_count(wg));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, INT64_MIN));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, -(1LL << 32) + 1));
	EXPECT_EQ(5, gs_waitgroup_count(wg));

	/* Up to 2^31-1 and not one more. */
	EXPECT_EQ(0, gs_waitgroup_add(wg, WG_MAX - 5));
	EXPECT_EQ(WG_MAX, gs_waitgroup_count(wg));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, 1));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, INT64_MAX));
	EXPECT_EQ(WG_MAX, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_add(wg, -WG_MAX));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	/* A jump that would wrap the 32-bit counter field. */
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, WG_MAX + 1));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, 1LL << 32));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, (1LL << 32) + 1));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_add(wg, WG_MAX));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, -WG_MAX - 1));
	EXPECT_EQ(WG_MAX, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_add(wg, -WG_MAX));

	/* Nobody waited: all of that stayed in userspace. */
	ASSERT_EQ(0, lot_status(gs_waitgroup_fd(wg), &st));
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);
	EXPECT_EQ(0, st.woken);
	gs_waitgroup_destroy(wg);
	gs_waitgroup_destroy(NULL);
}

TEST(waitgroup_wait_on_zero_makes_no_syscall)
{
	struct gosync_lot_status st;
	gs_waitgroup *wg = NULL;
	int fails = 0;

	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	for (int i = 0; i < 20000; i++) {
		if (gs_waitgroup_wait(wg))
			fails++;
		if (gs_waitgroup_wait_until(wg, 0, 0))	/* long past */
			fails++;
		if (gs_waitgroup_wait_until(wg, GS_FOREVER, GS_CLOCK_REALTIME))
			fails++;
	}
	EXPECT_EQ(0, fails);
	/* Bad flags are refused even when there is nothing to wait for. */
	EXPECT_EQ(-EINVAL, gs_waitgroup_wait_until(wg, GS_FOREVER, 2));
	EXPECT_EQ(-EINVAL, gs_waitgroup_wait_until(wg, 0, 1U << 31));
	/* Up and down again without waiters: no syscall either. */
	for (int i = 0; i < 1000; i++) {
		gs_waitgroup_add(wg, 2);
		gs_waitgroup_done(wg);
		gs_waitgroup_done(wg);
	}
	EXPECT_EQ(0, gs_waitgroup_wait(wg));
	ASSERT_EQ(0, lot_status(gs_waitgroup_fd(wg), &st));
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);
	gs_waitgroup_destroy(wg);
}

TEST(waitgroup_wait_until_times_out_on_both_clocks)
{
	struct gosync_lot_status st;
	gs_waitgroup *wg = NULL;
	uint64_t t0, ms;

	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));

	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT,
		  gs_waitgroup_wait_until(wg, gs_deadline_in(80 * NS_PER_MS), 0));
	ms = ms_since(t0);
	EXPECT_LE(80, ms);
	EXPECT_GT(LATE_MS, ms);

	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT,
		  gs_waitgroup_wait_until(wg, real_ns() + 80 * NS_PER_MS,
					  GS_CLOCK_REALTIME));
	ms = ms_since(t0);
	EXPECT_LE(79, ms);
	EXPECT_GT(LATE_MS, ms);

	/* Deadlines already past, on either clock. */
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_waitgroup_wait_until(wg, 1, 0));
	EXPECT_EQ(-ETIMEDOUT, gs_waitgroup_wait_until(wg, mono_ns(), 0));
	EXPECT_EQ(-ETIMEDOUT,
		  gs_waitgroup_wait_until(wg, real_ns() - NS_PER_SEC,
					  GS_CLOCK_REALTIME));
	EXPECT_GT(LATE_MS, ms_since(t0));

	/* Bad flags: -EINVAL at once. */
	t0 = mono_ns();
	EXPECT_EQ(-EINVAL, gs_waitgroup_wait_until(wg, GS_FOREVER, 2));
	EXPECT_EQ(-EINVAL,
		  gs_waitgroup_wait_until(wg, gs_deadline_in(NS_PER_SEC), 4));
	EXPECT_GT(LATE_MS, ms_since(t0));

	/* Timeouts changed nothing and left nobody parked. */
	EXPECT_EQ(1, gs_waitgroup_count(wg));
	ASSERT_EQ(0, lot_status(gs_waitgroup_fd(wg), &st));
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(0, gs_waitgroup_done(wg));
	EXPECT_EQ(0, gs_waitgroup_wait_until(wg, 1, 0));
	gs_waitgroup_destroy(wg);
}

#define WG_WAITERS_N	8

TEST(waitgroup_many_waiters_released_at_zero)
{
	struct waiter w[WG_WAITERS_N];
	struct gosync_lot_status st;
	gs_waitgroup *wg = NULL;
	atomic_int returned = 0;
	int fd;

	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	fd = gs_waitgroup_fd(wg);
	ASSERT_EQ(0, gs_waitgroup_add(wg, 3));
	for (int i = 0; i < WG_WAITERS_N; i++)
		ASSERT_EQ(0, waiter_start(&w[i], i % 2 ? OP_WG_WAIT :
					  OP_WG_WAIT_UNTIL, wg, NULL,
					  &returned));
	ASSERT_EQ(0, wait_parked(fd, WG_WAITERS_N));

	/* Other moves of the counter wake nobody. */
	ASSERT_EQ(0, gs_waitgroup_done(wg));
	ASSERT_EQ(0, gs_waitgroup_add(wg, 4));
	ASSERT_EQ(0, gs_waitgroup_add(wg, -5));
	EXPECT_EQ(1, gs_waitgroup_count(wg));
	sleep_ms(30);
	EXPECT_EQ(0, atomic_load(&returned));
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(WG_WAITERS_N, st.parked);
	EXPECT_EQ(0, st.unparks);

	ASSERT_EQ(0, gs_waitgroup_done(wg));
	for (int i = 0; i < WG_WAITERS_N; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS))
			TH_LOG("waiter %d still waits", i);
		EXPECT_EQ(0, w[i].ret);
	}
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(1, st.unparks);	/* one unpark for all of them */
	EXPECT_EQ(WG_WAITERS_N, st.woken);
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	gs_waitgroup_destroy(wg);
}

/* A waiter whose generation ended returns even if the group is reused. */
TEST(waitgroup_reuse_right_after_zero)
{
	struct waiter w[3];
	gs_waitgroup *wg = NULL;
	int fd;

	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	fd = gs_waitgroup_fd(wg);
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	for (int round = 0; round < 30; round++) {
		for (int i = 0; i < 3; i++)
			ASSERT_EQ(0, waiter_start(&w[i], i ? OP_WG_WAIT :
						  OP_WG_WAIT_UNTIL, wg, NULL,
						  NULL));
		ASSERT_EQ(0, wait_parked(fd, 3)) TH_LOG("round %d", round);
		/* End the generation and start the next at once. */
		ASSERT_EQ(0, gs_waitgroup_done(wg));
		ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
		for (int i = 0; i < 3; i++) {
			ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS))
				TH_LOG("round %d: waiter %d missed its generation",
				       round, i);
			EXPECT_EQ(0, w[i].ret);
		}
		EXPECT_EQ(1, gs_waitgroup_count(wg));
	}
	/* A waiter of the new generation does wait for it. */
	ASSERT_EQ(0, waiter_start(&w[0], OP_WG_WAIT, wg, NULL, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_FALSE(atomic_load(&w[0].done));
	ASSERT_EQ(0, gs_waitgroup_done(wg));
	ASSERT_TRUE(waiter_join(&w[0], WAIT_LIMIT_MS));
	EXPECT_EQ(0, w[0].ret);
	gs_waitgroup_destroy(wg);
}

#define GO_CALLS	64

struct go_state {
	atomic_int runs[GO_CALLS];
	atomic_int same_thread;
	atomic_int release;
	pid_t main_tid;
};

struct go_arg {
	struct go_state *gs;
	int i;
};

static void go_fn(void *p)
{
	struct go_arg *a = p;

	if (syscall(SYS_gettid) == a->gs->main_tid)
		atomic_fetch_add(&a->gs->same_thread, 1);
	if (a->i == 0)
		wait_atomic_ge(&a->gs->release, 1);
	else if (a->i % 8 == 0)
		sleep_ms(20);	/* some finish late */
	atomic_fetch_add(&a->gs->runs[a->i], 1);
}

static void never_fn(void *p)
{
	atomic_fetch_add((atomic_int *)p, 1);
}

TEST(waitgroup_go_runs_each_function_once)
{
	static struct go_state gs;
	struct go_arg args[GO_CALLS];
	gs_waitgroup *wg = NULL;
	atomic_int never = 0;

	memset(&gs, 0, sizeof(gs));
	gs.main_tid = (pid_t)syscall(SYS_gettid);
	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	for (int i = 0; i < GO_CALLS; i++) {
		args[i].gs = &gs;
		args[i].i = i;
		ASSERT_EQ(0, gs_waitgroup_go(wg, go_fn, &args[i]));
	}
	/* Call 0 holds the group up until released. */
	sleep_ms(20);
	EXPECT_LE(1, gs_waitgroup_count(wg));
	EXPECT_GE(GO_CALLS, gs_waitgroup_count(wg));
	EXPECT_EQ(-ETIMEDOUT,
		  gs_waitgroup_wait_until(wg, gs_deadline_in(30 * NS_PER_MS), 0));
	EXPECT_EQ(0, atomic_load(&gs.runs[0]));
	atomic_store(&gs.release, 1);
	ASSERT_EQ(0, gs_waitgroup_wait_until(wg, gs_deadline_in(LIMIT_NS), 0));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	for (int i = 0; i < GO_CALLS; i++) {
		EXPECT_EQ(1, atomic_load(&gs.runs[i])) TH_LOG("call %d", i);
	}
	EXPECT_EQ(0, atomic_load(&gs.same_thread));

	/* No function, or a full counter: refused, nothing runs. */
	EXPECT_EQ(-EINVAL, gs_waitgroup_go(wg, NULL, &never));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	ASSERT_EQ(0, gs_waitgroup_add(wg, WG_MAX));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_go(wg, never_fn, &never));
	EXPECT_EQ(WG_MAX, gs_waitgroup_count(wg));
	ASSERT_EQ(0, gs_waitgroup_add(wg, -WG_MAX));
	sleep_ms(20);
	EXPECT_EQ(0, atomic_load(&never));
	gs_waitgroup_destroy(wg);
}

/* Waiting, then destroying at once, is the normal use of Go. */
TEST(waitgroup_go_then_destroy_at_once)
{
	atomic_int ran = 0;
	int fails = 0;

	for (int i = 0; i < 200; i++) {
		gs_waitgroup *wg = NULL;

		ASSERT_EQ(0, gs_waitgroup_create(&wg));
		ASSERT_EQ(0, gs_waitgroup_go(wg, never_fn, &ran));
		ASSERT_EQ(0, gs_waitgroup_go(wg, never_fn, &ran));
		if (gs_waitgroup_wait_until(wg, gs_deadline_in(LIMIT_NS), 0))
			fails++;
		gs_waitgroup_destroy(wg);
	}
	EXPECT_EQ(0, fails);
	EXPECT_EQ(400, atomic_load(&ran));
}

static void go_flag(void *p)
{
	struct { atomic_int ran; pid_t tid; atomic_int other; } *g = p;

	if (syscall(SYS_gettid) != g->tid)
		atomic_store(&g->other, 1);
	atomic_fetch_add(&g->ran, 1);
}

TEST(go_runs_on_a_new_thread)
{
	struct { atomic_int ran; pid_t tid; atomic_int other; } g;

	memset(&g, 0, sizeof(g));
	g.tid = (pid_t)syscall(SYS_gettid);
	EXPECT_EQ(-EINVAL, gs_go(NULL, &g));
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(0, gs_go(go_flag, &g));
	ASSERT_EQ(0, wait_atomic_ge(&g.ran, 10));
	sleep_ms(10);
	EXPECT_EQ(10, atomic_load(&g.ran));
	EXPECT_EQ(1, atomic_load(&g.other));
}

static int wg_child_done(gs_waitgroup *wg, struct report *rep, int ms,
			 atomic_int *finished)
{
	int ret;

	sleep_ms((unsigned int)ms);
	atomic_store(finished, 1);
	ret = gs_waitgroup_done(wg);
	CHILD_CHECK(rep, ret == 0, "done: %d", ret);
	return 0;
}

static int wg_child_wait(gs_waitgroup *wg, struct report *rep)
{
	int ret = gs_waitgroup_wait_until(wg, gs_deadline_in(LIMIT_NS), 0);

	CHILD_CHECK(rep, ret == 0, "wait: %d", ret);
	CHILD_CHECK(rep, gs_waitgroup_count(wg) == 0, "count %jd",
		    (intmax_t)gs_waitgroup_count(wg));
	return 0;
}

TEST(waitgroup_fork_children_done_parent_waits)
{
	struct report *rep[4];
	gs_waitgroup *wg = NULL;
	atomic_int *finished;
	pid_t pid[4];

	finished = shared_alloc(4 * sizeof(*finished));
	ASSERT_NE(NULL, finished);
	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	ASSERT_EQ(0, gs_waitgroup_add(wg, 4));
	for (int i = 0; i < 4; i++) {
		rep[i] = shared_alloc(sizeof(struct report));
		ASSERT_NE(NULL, rep[i]);
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0)
			_exit(wg_child_done(wg, rep[i], 20 + 20 * i,
					    &finished[i]));
	}
	EXPECT_EQ(0, gs_waitgroup_wait_until(wg, gs_deadline_in(LIMIT_NS), 0));
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(1, atomic_load(&finished[i])) TH_LOG("child %d", i);
	}
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	for (int i = 0; i < 4; i++)
		EXPECT_CHILD_OK(pid[i], rep[i]);

	/* And the other way: children wait, the parent is done. */
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	for (int i = 0; i < 3; i++) {
		memset(rep[i], 0, sizeof(struct report));
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0)
			_exit(wg_child_wait(wg, rep[i]));
	}
	ASSERT_EQ(0, wait_parked(gs_waitgroup_fd(wg), 3));
	ASSERT_EQ(0, gs_waitgroup_done(wg));
	for (int i = 0; i < 3; i++)
		EXPECT_CHILD_OK(pid[i], rep[i]);
	gs_waitgroup_destroy(wg);
}

static int wg_scm_child(int sock, struct report *rep)
{
	gs_waitgroup *wg = NULL;
	int fd, ret;

	fd = gs_fd_recv(sock);
	CHILD_CHECK(rep, fd >= 0, "gs_fd_recv: %d", fd);
	ret = gs_waitgroup_from_fd(&wg, fd);
	CHILD_CHECK(rep, ret == 0, "from_fd: %d", ret);
	CHILD_CHECK(rep, gs_waitgroup_count(wg) == 3, "count %jd",
		    (intmax_t)gs_waitgroup_count(wg));
	for (int i = 0; i < 3; i++) {
		sleep_ms(10);
		ret = gs_waitgroup_done(wg);
		CHILD_CHECK(rep, ret == 0, "done: %d", ret);
	}
	ret = gs_waitgroup_done(wg);
	CHILD_CHECK(rep, ret == -EOVERFLOW, "done below zero: %d", ret);
	gs_waitgroup_destroy(wg);
	return 0;
}

TEST(waitgroup_scm_rights)
{
	struct report *rep;
	gs_waitgroup *wg = NULL;
	int sv[2];
	pid_t pid;

	rep = shared_alloc(sizeof(*rep));
	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(sv[0]);
		_exit(wg_scm_child(sv[1], rep));
	}
	close(sv[1]);
	/* Created after the fork: the child gets it only by message. */
	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	ASSERT_EQ(0, gs_waitgroup_add(wg, 3));
	ASSERT_EQ(0, gs_fd_send(sv[0], gs_waitgroup_fd(wg)));
	EXPECT_EQ(0, gs_waitgroup_wait_until(wg, gs_deadline_in(LIMIT_NS), 0));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	EXPECT_CHILD_OK(pid, rep);
	close(sv[0]);
	gs_waitgroup_destroy(wg);
}

/* Every gs_X_from_fd() takes only its own kind. */
TEST(from_fd_rejects_other_kinds)
{
	gs_waitgroup *wg = NULL, *wg2 = NULL;
	gs_once *o = NULL, *o2 = NULL;
	gs_cond *c = NULL, *c2 = NULL;
	gs_barrier *b = NULL, *b2 = NULL;
	gs_mutex *m = NULL;
	gs_sem *s = NULL;
	int null_fd, fd;

	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	ASSERT_EQ(0, gs_once_create(&o));
	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_barrier_create(&b, 5, NULL, NULL));
	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, gs_sem_create(&s, 1));
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, null_fd);

	EXPECT_EQ(-ENOTTY, gs_waitgroup_from_fd(&wg2, gs_once_fd(o)));
	EXPECT_EQ(-ENOTTY, gs_waitgroup_from_fd(&wg2, gs_mutex_fd(m)));
	EXPECT_EQ(-ENOTTY, gs_waitgroup_from_fd(&wg2, gs_sem_fd(s)));
	EXPECT_EQ(-ENOTTY, gs_waitgroup_from_fd(&wg2, gs_barrier_fd(b)));
	EXPECT_EQ(-ENOTTY, gs_waitgroup_from_fd(&wg2, null_fd));
	EXPECT_EQ(-ENOTTY, gs_once_from_fd(&o2, gs_waitgroup_fd(wg)));
	EXPECT_EQ(-ENOTTY, gs_once_from_fd(&o2, gs_cond_fd(c)));
	EXPECT_EQ(-ENOTTY, gs_cond_from_fd(&c2, gs_mutex_fd(m)));
	EXPECT_EQ(-ENOTTY, gs_cond_from_fd(&c2, gs_once_fd(o)));
	EXPECT_EQ(-ENOTTY, gs_barrier_from_fd(&b2, gs_waitgroup_fd(wg)));
	EXPECT_EQ(-ENOTTY, gs_barrier_from_fd(&b2, gs_sem_fd(s)));
	EXPECT_EQ(-ENOTTY, gs_barrier_from_fd(&b2, null_fd));
	/* A refused fd stays open and the caller's. */
	EXPECT_LE(0, fcntl(null_fd, F_GETFD));
	EXPECT_LE(0, fcntl(gs_once_fd(o), F_GETFD));
	close(null_fd);
	EXPECT_EQ(-EBADF, gs_waitgroup_from_fd(&wg2, null_fd));
	EXPECT_EQ(-EBADF, gs_barrier_from_fd(&b2, -1));

	/* The right kind works, and keeps the barrier's parties. */
	fd = dup(gs_barrier_fd(b));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, gs_barrier_from_fd(&b2, fd));
	EXPECT_EQ(5, gs_barrier_parties(b2));
	gs_barrier_destroy(b2);
	fd = dup(gs_waitgroup_fd(wg));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, gs_waitgroup_from_fd(&wg2, fd));
	ASSERT_EQ(0, gs_waitgroup_add(wg2, 2));
	EXPECT_EQ(2, gs_waitgroup_count(wg));
	ASSERT_EQ(0, gs_waitgroup_add(wg, -2));
	gs_waitgroup_destroy(wg2);

	gs_waitgroup_destroy(wg);
	gs_once_destroy(o);
	gs_cond_destroy(c);
	gs_barrier_destroy(b);
	gs_mutex_destroy(m);
	gs_sem_destroy(s);
	gs_once_destroy(NULL);
	gs_cond_destroy(NULL);
	gs_barrier_destroy(NULL);
}

TEST(waitgroup_signals_do_not_end_wait)
{
	struct waiter w;
	gs_waitgroup *wg = NULL;
	uint64_t t0;
	int fd;

	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	fd = gs_waitgroup_fd(wg);
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	ASSERT_EQ(0, waiter_start(&w, OP_WG_WAIT, wg, NULL, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	for (int i = 1; i <= 3; i++) {
		ASSERT_EQ(0, pthread_kill(w.thread, SIGUSR1));
		ASSERT_EQ(0, wait_signals(i));
		ASSERT_EQ(0, wait_parked(fd, 1));	/* parked again */
	}
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.done));
	ASSERT_EQ(0, gs_waitgroup_done(wg));
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(0, w.ret);
	EXPECT_EQ(3, atomic_load(&sig_count));

	/*
	 * A deadline still applies across signals (long enough for the
	 * waiter to park and be signalled first, on a slow machine).
	 */
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	t0 = mono_ns();
	ASSERT_EQ(0, waiter_start_dl(&w, OP_WG_WAIT_UNTIL, wg, NULL, NULL,
				     gs_deadline_in(1000 * NS_PER_MS), 0));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, pthread_kill(w.thread, SIGUSR1));
	ASSERT_EQ(0, wait_signals(4));
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(-ETIMEDOUT, w.ret);
	EXPECT_LE(1000, (w.end - t0) / NS_PER_MS);
	EXPECT_EQ(1, gs_waitgroup_count(wg));
	ASSERT_EQ(0, gs_waitgroup_done(wg));
	gs_waitgroup_destroy(wg);
}

/* Stress: a barrier starts each round, children are Done, all Wait. */
#define WGS_CHILDREN	3
#define WGS_ROUNDS	150
#define WGS_PER_CHILD	10

struct wgs_shared {
	atomic_int counter;
	struct report rep[WGS_CHILDREN + 1];
};

static int wgs_party(gs_waitgroup *wg, gs_barrier *b, struct wgs_shared *sh,
		     int who)
{
	struct report *rep = &sh->rep[who];
	int ret;

	for (int r = 0; r < WGS_ROUNDS; r++) {
		if (who == WGS_CHILDREN) {	/* the parent */
			ret = gs_waitgroup_add(wg,
					       WGS_CHILDREN * WGS_PER_CHILD);
			CHILD_CHECK(rep, ret == 0, "round %d add: %d", r, ret);
		}
		ret = gs_barrier_await_until(b, gs_deadline_in(LIMIT_NS), 0);
		CHILD_CHECK(rep, ret == 0, "round %d await: %d", r, ret);
		if (who < WGS_CHILDREN) {
			for (int k = 0; k < WGS_PER_CHILD; k++) {
				atomic_fetch_add(&sh->counter, 1);
				if (k % 3 == 0)
					sched_yield();
				ret = gs_waitgroup_done(wg);
				CHILD_CHECK(rep, ret == 0,
					    "round %d done: %d", r, ret);
			}
		}
		ret = gs_waitgroup_wait_until(wg, gs_deadline_in(LIMIT_NS), 0);
		CHILD_CHECK(rep, ret == 0, "round %d wait: %d", r, ret);
		ret = atomic_load(&sh->counter);
		CHILD_CHECK(rep, ret == (r + 1) * WGS_CHILDREN * WGS_PER_CHILD,
			    "round %d: wait returned at counter %d", r, ret);
		/*
		 * Everyone has called Wait before the next Add: a Wait that
		 * starts after that Add rightly waits for the next round.
		 */
		ret = gs_barrier_await_until(b, gs_deadline_in(LIMIT_NS), 0);
		CHILD_CHECK(rep, ret == 0, "round %d end: %d", r, ret);
	}
	return 0;
}

TEST(waitgroup_stress_processes)
{
	struct wgs_shared *sh;
	pid_t pid[WGS_CHILDREN];
	gs_waitgroup *wg = NULL;
	gs_barrier *b = NULL;
	uint64_t t0 = mono_ns();

	sh = shared_alloc(sizeof(*sh));
	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	ASSERT_EQ(0, gs_barrier_create(&b, WGS_CHILDREN + 1, NULL, NULL));
	for (int i = 0; i < WGS_CHILDREN; i++) {
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0)
			_exit(wgs_party(wg, b, sh, i));
	}
	EXPECT_EQ(0, wgs_party(wg, b, sh, WGS_CHILDREN))
		TH_LOG("parent: line %d: %s", sh->rep[WGS_CHILDREN].line,
		       sh->rep[WGS_CHILDREN].msg);
	if (sh->rep[WGS_CHILDREN].line)
		gs_barrier_reset(b);	/* let the children fail, not hang */
	for (int i = 0; i < WGS_CHILDREN; i++)
		EXPECT_CHILD_OK(pid[i], &sh->rep[i]);
	EXPECT_EQ(WGS_ROUNDS * WGS_CHILDREN * WGS_PER_CHILD,
		  atomic_load(&sh->counter));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	TH_LOG("%d rounds in %ju ms", WGS_ROUNDS,
	       (uintmax_t)ms_since(t0));
	gs_barrier_destroy(b);
	gs_waitgroup_destroy(wg);
}

/* ================================================================== */
/* 2. Once                                                              */

/* What the Once function did, in memory shared with children. */
struct once_sh {
	atomic_int runs;
	atomic_int started;
	atomic_int finished;
	atomic_int release;	/* once_block() waits for it */
	atomic_int early;	/* callers that returned before the end */
	atomic_int returned;
	atomic_int go;		/* start gate for children */
	unsigned int sleep_ms;
	struct report rep[16];
};

static void once_fn(void *p)
{
	struct once_sh *sh = p;

	atomic_fetch_add(&sh->runs, 1);
	atomic_store(&sh->started, 1);
	if (sh->sleep_ms)
		sleep_ms(sh->sleep_ms);
	atomic_store(&sh->finished, 1);
}

/* A function that runs until the test releases it. */
static void once_block(void *p)
{
	struct once_sh *sh = p;

	atomic_fetch_add(&sh->runs, 1);
	atomic_store(&sh->started, 1);
	wait_atomic_ge(&sh->release, 1);
	atomic_store(&sh->finished, 1);
}

struct once_caller {
	gs_once *o;
	struct once_sh *sh;
	void (*fn)(void *arg);
	pthread_barrier_t *start;
	pthread_t thread;
	int ret;
};

static void *once_caller_main(void *p)
{
	struct once_caller *c = p;

	if (c->start)
		pthread_barrier_wait(c->start);
	c->ret = gs_once_do(c->o, c->fn, c->sh);
	if (!atomic_load(&c->sh->finished))
		atomic_fetch_add(&c->sh->early, 1);
	atomic_fetch_add(&c->sh->returned, 1);
	return NULL;
}

#define ONCE_THREADS	16

TEST(once_do_runs_once_among_threads)
{
	struct once_caller c[ONCE_THREADS];
	pthread_barrier_t start;
	struct gosync_lot_status st;
	struct once_sh *sh;
	gs_once *o = NULL;

	sh = shared_alloc(sizeof(*sh));
	ASSERT_NE(NULL, sh);
	sh->sleep_ms = 50;
	ASSERT_EQ(0, gs_once_create(&o));
	ASSERT_EQ(0, lot_status(gs_once_fd(o), &st));
	EXPECT_EQ(GOSYNC_LOT_ONCE, st.kind);
	EXPECT_FALSE(gs_once_done(o));
	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, ONCE_THREADS));
	for (int i = 0; i < ONCE_THREADS; i++) {
		c[i] = (struct once_caller){ .o = o, .sh = sh, .fn = once_fn,
					     .start = &start, .ret = 1 };
		ASSERT_EQ(0, start_thread(&c[i].thread, once_caller_main,
					  &c[i]));
	}
	for (int i = 0; i < ONCE_THREADS; i++) {
		ASSERT_EQ(0, join_ms(c[i].thread, WAIT_LIMIT_MS));
		EXPECT_EQ(0, c[i].ret);
	}
	EXPECT_EQ(1, atomic_load(&sh->runs));
	EXPECT_EQ(0, atomic_load(&sh->early));
	EXPECT_EQ(ONCE_THREADS, atomic_load(&sh->returned));
	EXPECT_TRUE(gs_once_done(o));
	/* Later calls return at once without running it. */
	EXPECT_EQ(0, gs_once_do(o, once_fn, sh));
	EXPECT_EQ(1, atomic_load(&sh->runs));
	pthread_barrier_destroy(&start);
	gs_once_destroy(o);
}

TEST(once_callers_wait_for_the_first_to_finish)
{
	struct once_caller c[8];
	struct gosync_lot_status st;
	struct once_sh *sh;
	gs_once *o = NULL;
	int fd;

	sh = shared_alloc(sizeof(*sh));
	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_once_create(&o));
	fd = gs_once_fd(o);
	c[0] = (struct once_caller){ .o = o, .sh = sh, .fn = once_block,
				     .ret = 1 };
	ASSERT_EQ(0, start_thread(&c[0].thread, once_caller_main, &c[0]));
	ASSERT_EQ(0, wait_atomic_ge(&sh->started, 1));
	EXPECT_FALSE(gs_once_done(o));
	/* The others find it running and park. */
	for (int i = 1; i < 8; i++) {
		c[i] = (struct once_caller){ .o = o, .sh = sh, .fn = once_fn,
					     .ret = 1 };
		ASSERT_EQ(0, start_thread(&c[i].thread, once_caller_main,
					  &c[i]));
	}
	ASSERT_EQ(0, wait_parked(fd, 7));
	sleep_ms(20);
	EXPECT_EQ(0, atomic_load(&sh->returned));
	EXPECT_FALSE(gs_once_done(o));
	atomic_store(&sh->release, 1);
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(0, join_ms(c[i].thread, WAIT_LIMIT_MS));
		EXPECT_EQ(0, c[i].ret);
	}
	EXPECT_EQ(1, atomic_load(&sh->runs));
	EXPECT_EQ(0, atomic_load(&sh->early));
	EXPECT_TRUE(gs_once_done(o));
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(1, st.unparks);
	EXPECT_EQ(7, st.woken);
	gs_once_destroy(o);
}

static int once_child(gs_once *o, struct once_sh *sh, int i)
{
	struct report *rep = &sh->rep[i];
	int ret;

	while (!atomic_load(&sh->go))
		sched_yield();
	ret = gs_once_do(o, once_fn, sh);
	CHILD_CHECK(rep, ret == 0, "do: %d", ret);
	CHILD_CHECK(rep, atomic_load(&sh->finished), "returned before the end");
	CHILD_CHECK(rep, gs_once_done(o), "not done");
	return 0;
}

#define ONCE_CHILDREN	6

TEST(once_do_runs_once_among_processes)
{
	pid_t pid[ONCE_CHILDREN];
	struct once_sh *sh;
	gs_once *o = NULL;

	sh = shared_alloc(sizeof(*sh));
	ASSERT_NE(NULL, sh);
	sh->sleep_ms = 100;
	ASSERT_EQ(0, gs_once_create(&o));
	for (int i = 0; i < ONCE_CHILDREN; i++) {
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0)
			_exit(once_child(o, sh, i));
	}
	atomic_store(&sh->go, 1);
	EXPECT_EQ(0, gs_once_do(o, once_fn, sh));
	EXPECT_EQ(1, atomic_load(&sh->finished));
	for (int i = 0; i < ONCE_CHILDREN; i++)
		EXPECT_CHILD_OK(pid[i], &sh->rep[i]);
	EXPECT_EQ(1, atomic_load(&sh->runs));
	EXPECT_TRUE(gs_once_done(o));

	/* A child forked afterwards sees it done. */
	memset(&sh->rep[0], 0, sizeof(sh->rep[0]));
	pid[0] = fork_child();
	ASSERT_LE(0, pid[0]);
	if (pid[0] == 0)
		_exit(once_child(o, sh, 0));
	EXPECT_CHILD_OK(pid[0], &sh->rep[0]);
	EXPECT_EQ(1, atomic_load(&sh->runs));
	gs_once_destroy(o);
}

#define ONCE_VALUE	0xfedcba9876543210ULL

struct value_sh {
	atomic_int runs;
	atomic_int go;
	int err;		/* what the function returns */
	uint64_t value;		/* and yields */
	struct report rep[8];
};

static int value_fn(void *p, uint64_t *value)
{
	struct value_sh *sh = p;

	atomic_fetch_add(&sh->runs, 1);
	sleep_ms(30);
	*value = sh->value;
	return sh->err;
}

/* Must never run: the value comes from another caller. */
static int value_fn_other(void *p, uint64_t *value)
{
	struct value_sh *sh = p;

	atomic_fetch_add(&sh->runs, 100);
	*value = 1;
	return 0;
}

struct value_caller {
	gs_once *o;
	struct value_sh *sh;
	pthread_t thread;
	uint64_t value;
	int ret;
};

static void *value_caller_main(void *p)
{
	struct value_caller *c = p;

	while (!atomic_load(&c->sh->go))
		sched_yield();
	c->ret = gs_once_value(c->o, value_fn, c->sh, &c->value);
	return NULL;
}

static int value_child(gs_once *o, struct value_sh *sh, int i)
{
	struct report *rep = &sh->rep[i];
	uint64_t value = 0;
	int ret;

	while (!atomic_load(&sh->go))
		sched_yield();
	ret = gs_once_value(o, value_fn, sh, &value);
	CHILD_CHECK(rep, ret == sh->err, "error %d, not %d", ret, sh->err);
	CHILD_CHECK(rep, value == sh->value, "value %#jx", (uintmax_t)value);
	ret = gs_once_value(o, value_fn_other, sh, NULL);
	CHILD_CHECK(rep, ret == sh->err, "again: error %d", ret);
	return 0;
}

static int value_scm_child(int sock, struct value_sh *sh)
{
	struct report *rep = &sh->rep[7];
	uint64_t value = 0;
	gs_once *o = NULL;
	int fd, ret;

	fd = gs_fd_recv(sock);
	CHILD_CHECK(rep, fd >= 0, "gs_fd_recv: %d", fd);
	ret = gs_once_from_fd(&o, fd);
	CHILD_CHECK(rep, ret == 0, "from_fd: %d", ret);
	CHILD_CHECK(rep, gs_once_done(o), "not done");
	ret = gs_once_value(o, value_fn_other, sh, &value);
	CHILD_CHECK(rep, ret == sh->err, "error %d", ret);
	CHILD_CHECK(rep, value == sh->value, "value %#jx", (uintmax_t)value);
	gs_once_destroy(o);
	return 0;
}

#define VALUE_THREADS	8
#define VALUE_CHILDREN	4

/* OnceValues: every caller, thread or process, gets the same pair. */
static void check_once_value(struct __test_metadata *_metadata,
			     uint64_t want_value, int want_err)
{
	struct value_caller c[VALUE_THREADS];
	pid_t pid[VALUE_CHILDREN], scm;
	struct value_sh *sh;
	gs_once *o = NULL;
	uint64_t value = 0;
	int sv[2];

	sh = shared_alloc(sizeof(*sh));
	ASSERT_NE(NULL, sh);
	sh->err = want_err;
	sh->value = want_value;
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	scm = fork_child();	/* before the Once exists */
	ASSERT_LE(0, scm);
	if (scm == 0) {
		close(sv[0]);
		_exit(value_scm_child(sv[1], sh));
	}
	close(sv[1]);

	ASSERT_EQ(0, gs_once_create(&o));
	EXPECT_EQ(-EINVAL, gs_once_value(o, NULL, sh, &value));
	for (int i = 0; i < VALUE_CHILDREN; i++) {
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0)
			_exit(value_child(o, sh, i));
	}
	for (int i = 0; i < VALUE_THREADS; i++) {
		c[i] = (struct value_caller){ .o = o, .sh = sh, .ret = 1 };
		ASSERT_EQ(0, start_thread(&c[i].thread, value_caller_main,
					  &c[i]));
	}
	atomic_store(&sh->go, 1);
	for (int i = 0; i < VALUE_THREADS; i++) {
		ASSERT_EQ(0, join_ms(c[i].thread, WAIT_LIMIT_MS));
		EXPECT_EQ(want_err, c[i].ret);
		EXPECT_EQ(want_value, c[i].value);
	}
	for (int i = 0; i < VALUE_CHILDREN; i++)
		EXPECT_CHILD_OK(pid[i], &sh->rep[i]);
	EXPECT_TRUE(gs_once_done(o));
	EXPECT_EQ(want_err, gs_once_value(o, value_fn_other, sh, &value));
	EXPECT_EQ(want_value, value);
	EXPECT_EQ(want_err, gs_once_value(o, value_fn_other, sh, NULL));

	/* A process that receives it later gets the result too. */
	ASSERT_EQ(0, gs_fd_send(sv[0], gs_once_fd(o)));
	EXPECT_CHILD_OK(scm, &sh->rep[7]);
	close(sv[0]);
	EXPECT_EQ(1, atomic_load(&sh->runs));
	gs_once_destroy(o);
	munmap(sh, sizeof(*sh));
}

TEST(once_value_same_value_and_negative_error_everywhere)
{
	check_once_value(_metadata, ONCE_VALUE, -ENOSPC);
}

TEST(once_value_same_value_without_error)
{
	check_once_value(_metadata, UINT64_MAX, 0);
}

TEST(once_value_large_negative_error)
{
	check_once_value(_metadata, 0, -4095);
}

TEST(once_null_function_is_einval)
{
	struct once_sh *sh;
	gs_once *o = NULL;
	uint64_t value = 7;

	sh = shared_alloc(sizeof(*sh));
	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_once_create(&o));
	EXPECT_EQ(-EINVAL, gs_once_do(o, NULL, sh));
	EXPECT_EQ(-EINVAL, gs_once_value(o, NULL, sh, &value));
	EXPECT_EQ(7, value);
	EXPECT_FALSE(gs_once_done(o));
	/* Nothing was consumed: the first real call runs. */
	EXPECT_EQ(0, gs_once_do(o, once_fn, sh));
	EXPECT_EQ(1, atomic_load(&sh->runs));
	EXPECT_TRUE(gs_once_done(o));
	/* Done: a NULL function is still refused. */
	EXPECT_EQ(-EINVAL, gs_once_do(o, NULL, sh));
	EXPECT_EQ(-EINVAL, gs_once_value(o, NULL, sh, &value));
	gs_once_destroy(o);
}

TEST(once_without_contention_makes_no_syscall)
{
	struct gosync_lot_status st;
	struct value_sh *vsh;
	struct once_sh *sh;
	gs_once *o = NULL, *ov = NULL;
	uint64_t value = 0;
	int fails = 0;

	sh = shared_alloc(sizeof(*sh));
	vsh = shared_alloc(sizeof(*vsh));
	ASSERT_NE(NULL, sh);
	ASSERT_NE(NULL, vsh);
	vsh->value = 42;
	vsh->err = -EDOM;
	ASSERT_EQ(0, gs_once_create(&o));
	ASSERT_EQ(0, gs_once_create(&ov));
	EXPECT_EQ(0, gs_once_do(o, once_fn, sh));
	EXPECT_EQ(-EDOM, gs_once_value(ov, value_fn, vsh, &value));
	EXPECT_EQ(42, value);
	for (int i = 0; i < 100000; i++) {
		if (gs_once_do(o, once_fn, sh))
			fails++;
		if (gs_once_value(ov, value_fn, vsh, &value) != -EDOM ||
		    value != 42)
			fails++;
	}
	EXPECT_EQ(0, fails);
	EXPECT_EQ(1, atomic_load(&sh->runs));
	EXPECT_EQ(1, atomic_load(&vsh->runs));
	ASSERT_EQ(0, lot_status(gs_once_fd(o), &st));
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);
	ASSERT_EQ(0, lot_status(gs_once_fd(ov), &st));
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);
	gs_once_destroy(o);
	gs_once_destroy(ov);
}

/* ================================================================== */
/* 3. Cond                                                              */

TEST(cond_wait_requires_the_mutex)
{
	struct gosync_lot_status st;
	gs_mutex *m = NULL;
	gs_cond *c = NULL;

	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, lot_status(gs_cond_fd(c), &st));
	EXPECT_EQ(GOSYNC_LOT_COND, st.kind);

	EXPECT_EQ(-EPERM, gs_cond_wait(c, m));
	EXPECT_EQ(-EPERM, gs_cond_wait_until(c, m, gs_deadline_in(NS_PER_SEC),
					     0));
	EXPECT_EQ(-EPERM, gs_cond_wait_until(c, m, GS_FOREVER,
					     GS_CLOCK_REALTIME));
	/* Nothing changed: the mutex is still free, nobody counts as waiting. */
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_cond_signal(c);
	gs_cond_broadcast(c);
	ASSERT_EQ(0, lot_status(gs_cond_fd(c), &st));
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);

	/* Bad flags: -EINVAL with the mutex still held. */
	ASSERT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(-EINVAL, gs_cond_wait_until(c, m, GS_FOREVER, 2));
	EXPECT_EQ(-EINVAL, gs_cond_wait_until(c, m, 0, 1U << 20));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	gs_cond_signal(c);
	ASSERT_EQ(0, lot_status(gs_cond_fd(c), &st));
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);
	gs_cond_destroy(c);
	gs_mutex_destroy(m);
}

#define COND_WAITERS_N	5

TEST(cond_signal_wakes_exactly_one_parked_waiter)
{
	struct waiter w[COND_WAITERS_N];
	struct gosync_lot_status st0, st;
	atomic_int returned = 0;
	gs_mutex *m = NULL;
	gs_cond *c = NULL;
	int fd;

	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_cond_fd(c);
	for (int i = 0; i < COND_WAITERS_N; i++)
		ASSERT_EQ(0, waiter_start(&w[i], i % 2 ? OP_COND_WAIT :
					  OP_COND_WAIT_UNTIL, c, m,
					  &returned));
	ASSERT_EQ(0, wait_parked(fd, COND_WAITERS_N));
	/* Each released the mutex on its way in. */
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	ASSERT_EQ(0, lot_status(fd, &st0));

	for (int k = 1; k <= 3; k++) {
		gs_cond_signal(c);
		ASSERT_EQ(0, wait_atomic_ge(&returned, k));
		sleep_ms(50);
		EXPECT_EQ(k, atomic_load(&returned));
		EXPECT_EQ(COND_WAITERS_N - k, parked_now(fd));
	}
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(st0.unparks + 3, st.unparks);
	EXPECT_EQ(st0.woken + 3, st.woken);

	gs_cond_broadcast(c);
	for (int i = 0; i < COND_WAITERS_N; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS))
			TH_LOG("waiter %d still waits", i);
		EXPECT_EQ(0, w[i].ret);
		EXPECT_TRUE(w[i].held);
	}
	EXPECT_EQ(COND_WAITERS_N, atomic_load(&returned));
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(st0.woken + COND_WAITERS_N, st.woken);
	gs_cond_destroy(c);
	gs_mutex_destroy(m);
}

TEST(cond_broadcast_wakes_all_and_only_current_waiters)
{
	struct waiter w[COND_WAITERS_N + 1];
	struct gosync_lot_status st0, st;
	atomic_int returned = 0;
	gs_mutex *m = NULL;
	gs_cond *c = NULL;
	int fd;

	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_cond_fd(c);
	for (int i = 0; i < COND_WAITERS_N; i++)
		ASSERT_EQ(0, waiter_start(&w[i], OP_COND_WAIT, c, m,
					  &returned));
	ASSERT_EQ(0, wait_parked(fd, COND_WAITERS_N));
	ASSERT_EQ(0, lot_status(fd, &st0));
	gs_cond_broadcast(c);
	for (int i = 0; i < COND_WAITERS_N; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS))
			TH_LOG("waiter %d still waits", i);
		EXPECT_EQ(0, w[i].ret);
		EXPECT_TRUE(w[i].held);
	}
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(st0.unparks + 1, st.unparks);
	EXPECT_EQ(st0.woken + COND_WAITERS_N, st.woken);

	/* A waiter that comes after the broadcast is not woken by it. */
	ASSERT_EQ(0, waiter_start(&w[COND_WAITERS_N], OP_COND_WAIT_UNTIL, c,
				  m, &returned));
	ASSERT_EQ(0, wait_parked(fd, 1));
	sleep_ms(30);
	EXPECT_FALSE(atomic_load(&w[COND_WAITERS_N].done));
	gs_cond_signal(c);
	ASSERT_TRUE(waiter_join(&w[COND_WAITERS_N], WAIT_LIMIT_MS));
	EXPECT_EQ(0, w[COND_WAITERS_N].ret);
	gs_cond_destroy(c);
	gs_mutex_destroy(m);
}

struct holder {
	gs_mutex *m;
	int cond_fd;
	atomic_int released;
	uint64_t until;		/* holds the mutex until then (CLOCK_MONOTONIC) */
};

static void *holder_main(void *p)
{
	struct holder *h = p;

	wait_parked(h->cond_fd, 1);	/* the waiter let go of the mutex */
	gs_mutex_lock(h->m);
	while (mono_ns() < h->until)
		sleep_ms(10);
	atomic_store(&h->released, 1);
	gs_mutex_unlock(h->m);
	return NULL;
}

TEST(cond_wait_until_times_out_with_the_mutex_locked)
{
	struct gosync_lot_status st;
	struct holder h;
	pthread_t thr;
	gs_mutex *m = NULL;
	gs_cond *c = NULL;
	uint64_t t0, ms;

	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, gs_mutex_lock(m));

	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT,
		  gs_cond_wait_until(c, m, gs_deadline_in(80 * NS_PER_MS), 0));
	ms = ms_since(t0);
	EXPECT_LE(80, ms);
	EXPECT_GT(LATE_MS, ms);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));

	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT,
		  gs_cond_wait_until(c, m, real_ns() + 80 * NS_PER_MS,
				     GS_CLOCK_REALTIME));
	ms = ms_since(t0);
	EXPECT_LE(79, ms);
	EXPECT_GT(LATE_MS, ms);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));

	EXPECT_EQ(-ETIMEDOUT, gs_cond_wait_until(c, m, 1, 0));
	EXPECT_EQ(-ETIMEDOUT, gs_cond_wait_until(c, m, 1, GS_CLOCK_REALTIME));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));

	/*
	 * The mutex is taken at the deadline (1 s: long enough for the
	 * holder to take it first on a slow machine), held until 300 ms
	 * after it: the timeout waits for it.
	 */
	t0 = mono_ns();
	h = (struct holder){ .m = m, .cond_fd = gs_cond_fd(c),
			     .until = t0 + 1300 * NS_PER_MS };
	ASSERT_EQ(0, start_thread(&thr, holder_main, &h));
	EXPECT_EQ(-ETIMEDOUT,
		  gs_cond_wait_until(c, m, t0 + 1000 * NS_PER_MS, 0));
	EXPECT_EQ(1, atomic_load(&h.released));
	EXPECT_LE(1300, ms_since(t0));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	ASSERT_EQ(0, join_ms(thr, WAIT_LIMIT_MS));

	EXPECT_EQ(0, gs_mutex_unlock(m));
	/* The timed-out waiters left: a signal stays in userspace. */
	ASSERT_EQ(0, lot_status(gs_cond_fd(c), &st));
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(0, st.unparks);
	gs_cond_signal(c);
	gs_cond_broadcast(c);
	ASSERT_EQ(0, lot_status(gs_cond_fd(c), &st));
	EXPECT_EQ(0, st.unparks);
	gs_cond_destroy(c);
	gs_mutex_destroy(m);
}

TEST(cond_signal_without_waiters_makes_no_syscall)
{
	struct gosync_lot_status st;
	struct waiter w;
	gs_mutex *m = NULL;
	gs_cond *c = NULL;

	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_mutex_create(&m));
	for (int i = 0; i < 100000; i++) {
		gs_cond_signal(c);
		gs_cond_broadcast(c);
	}
	ASSERT_EQ(0, lot_status(gs_cond_fd(c), &st));
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);

	/* After a waiter came and went, again none. */
	ASSERT_EQ(0, waiter_start(&w, OP_COND_WAIT, c, m, NULL));
	ASSERT_EQ(0, wait_parked(gs_cond_fd(c), 1));
	gs_cond_signal(c);
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(0, w.ret);
	ASSERT_EQ(0, lot_status(gs_cond_fd(c), &st));
	EXPECT_EQ(1, st.unparks);
	for (int i = 0; i < 10000; i++) {
		gs_cond_signal(c);
		gs_cond_broadcast(c);
	}
	ASSERT_EQ(0, lot_status(gs_cond_fd(c), &st));
	EXPECT_EQ(1, st.unparks);
	gs_cond_destroy(c);
	gs_mutex_destroy(m);
}

TEST(cond_signals_do_not_end_wait)
{
	struct waiter w;
	gs_mutex *m = NULL;
	gs_cond *c = NULL;
	int fd;

	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_cond_fd(c);
	ASSERT_EQ(0, waiter_start(&w, OP_COND_WAIT, c, m, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	for (int i = 1; i <= 3; i++) {
		ASSERT_EQ(0, pthread_kill(w.thread, SIGUSR1));
		ASSERT_EQ(0, wait_signals(i));
		ASSERT_EQ(0, wait_parked(fd, 1));
	}
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.done));
	gs_cond_signal(c);
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(0, w.ret);
	EXPECT_TRUE(w.held);
	EXPECT_EQ(3, atomic_load(&sig_count));
	gs_cond_destroy(c);
	gs_mutex_destroy(m);
}

/*
 * Ping-pong on one Cond: two parties take turns, each waiting while it is
 * not its turn. The signal comes right after the waiter unlocked the
 * mutex, often before it parked: a wake-up lost there is never repeated,
 * and shows as a timeout.
 */
#define PP_ROUNDS	1500
#define PP_WAIT_NS	LIMIT_NS	/* the watchdog: its expiry is the loss */

struct pingpong {
	gs_mutex *m;
	gs_cond *c;
	int turn;
	atomic_int moves;
	atomic_int timeouts;
	atomic_int errors;
};

static int pp_party(struct pingpong *pp, int me)
{
	int ret;

	if (gs_mutex_lock(pp->m))
		return 1;
	for (int i = 0; i < PP_ROUNDS; i++) {
		while (pp->turn != me) {
			ret = gs_cond_wait_until(pp->c, pp->m,
						 gs_deadline_in(PP_WAIT_NS), 0);
			if (ret == -ETIMEDOUT) {
				atomic_fetch_add(&pp->timeouts, 1);
				pp->turn = me;	/* free the other one */
				gs_cond_signal(pp->c);
				gs_mutex_unlock(pp->m);
				return 1;
			}
			if (ret) {
				atomic_fetch_add(&pp->errors, 1);
				gs_mutex_unlock(pp->m);
				return 1;
			}
		}
		pp->turn = !me;
		atomic_fetch_add(&pp->moves, 1);
		gs_cond_signal(pp->c);
	}
	gs_mutex_unlock(pp->m);
	return 0;
}

static void *pp_thread(void *p)
{
	pp_party(p, 1);
	return NULL;
}

static void check_pingpong(struct __test_metadata *_metadata, bool procs)
{
	struct pingpong *pp;
	pthread_t thr;
	pid_t pid = 0;
	uint64_t t0 = mono_ns();

	pp = shared_alloc(sizeof(*pp));
	ASSERT_NE(NULL, pp);
	ASSERT_EQ(0, gs_mutex_create(&pp->m));
	ASSERT_EQ(0, gs_cond_create(&pp->c));
	if (procs) {
		pid = fork_child();
		ASSERT_LE(0, pid);
		if (pid == 0)
			_exit(pp_party(pp, 1));
	} else {
		ASSERT_EQ(0, start_thread(&thr, pp_thread, pp));
	}
	EXPECT_EQ(0, pp_party(pp, 0));
	if (procs) {
		int status = -1;

		EXPECT_EQ(0, wait_child(pid, &status, RUN_LIMIT_MS));
		EXPECT_EQ(0, status);
	} else {
		EXPECT_EQ(0, join_ms(thr, RUN_LIMIT_MS));
	}
	TH_LOG("%d moves in %ju ms", atomic_load(&pp->moves),
	       (uintmax_t)ms_since(t0));
	EXPECT_EQ(0, atomic_load(&pp->timeouts)) TH_LOG("lost wake-up");
	EXPECT_EQ(0, atomic_load(&pp->errors));
	EXPECT_EQ(2 * PP_ROUNDS, atomic_load(&pp->moves));
	gs_cond_destroy(pp->c);
	gs_mutex_destroy(pp->m);
	munmap(pp, sizeof(*pp));
}

TEST(cond_ping_pong_threads_loses_no_wakeup)
{
	check_pingpong(_metadata, false);
}

TEST(cond_ping_pong_processes_loses_no_wakeup)
{
	check_pingpong(_metadata, true);
}

/*
 * The classic bounded buffer: one mutex, a Cond for "not full" and one
 * for "not empty", Signal (not Broadcast) after each change. A lost
 * wake-up shows as a wait that times out; conservation shows as every
 * item consumed exactly once.
 */
#define BB_SIZE		4
#define BB_WAIT_NS	LIMIT_NS	/* the watchdog: its expiry is the loss */
#define BB_MAX_ITEMS	8000

struct bb {
	gs_mutex *m;
	gs_cond *not_full, *not_empty;
	int buf[BB_SIZE];
	int head, tail, count;
	atomic_int seen[BB_MAX_ITEMS];
	atomic_int consumed;
	atomic_int bad;		/* count out of range, bad item */
	atomic_int timeouts;
	atomic_int errors;
	atomic_int abort;
	atomic_int waits;	/* cond waits that happened (not an error) */
};

struct bb_role {
	struct bb *bb;
	bool producer;
	int first, n;		/* items first..first+n-1, or n to take */
	pthread_t thread;
};

/* Wait on @c while @blocked(); false if the test is aborting. */
static bool bb_wait(struct bb *bb, gs_cond *c, bool want_room)
{
	while (want_room ? bb->count == BB_SIZE : bb->count == 0) {
		int ret;

		if (atomic_load(&bb->abort))
			return false;
		atomic_fetch_add(&bb->waits, 1);
		ret = gs_cond_wait_until(c, bb->m, gs_deadline_in(BB_WAIT_NS),
					 0);
		if (ret == -ETIMEDOUT) {
			atomic_fetch_add(&bb->timeouts, 1);
			atomic_store(&bb->abort, 1);
			gs_cond_broadcast(bb->not_full);
			gs_cond_broadcast(bb->not_empty);
			return false;
		}
		if (ret) {
			atomic_fetch_add(&bb->errors, 1);
			return false;
		}
	}
	return true;
}

static void *bb_main(void *p)
{
	struct bb_role *r = p;
	struct bb *bb = r->bb;

	for (int i = 0; i < r->n; i++) {
		int item = -1;

		if (gs_mutex_lock(bb->m)) {
			atomic_fetch_add(&bb->errors, 1);
			return NULL;
		}
		if (!bb_wait(bb, r->producer ? bb->not_full : bb->not_empty,
			     r->producer)) {
			gs_mutex_unlock(bb->m);
			return NULL;
		}
		if (r->producer) {
			bb->buf[bb->tail] = r->first + i;
			bb->tail = (bb->tail + 1) % BB_SIZE;
			bb->count++;
			gs_cond_signal(bb->not_empty);
		} else {
			item = bb->buf[bb->head];
			bb->head = (bb->head + 1) % BB_SIZE;
			bb->count--;
			gs_cond_signal(bb->not_full);
		}
		if (bb->count < 0 || bb->count > BB_SIZE)
			atomic_fetch_add(&bb->bad, 1);
		if (gs_mutex_unlock(bb->m))
			atomic_fetch_add(&bb->errors, 1);
		if (!r->producer) {
			if (item < 0 || item >= BB_MAX_ITEMS)
				atomic_fetch_add(&bb->bad, 1);
			else
				atomic_fetch_add(&bb->seen[item], 1);
			atomic_fetch_add(&bb->consumed, 1);
		}
	}
	return NULL;
}

/* @procs processes, each with @pairs producer and @pairs consumer threads. */
static int bb_run(struct bb *bb, int procs, int pairs, int per_thread,
		  int proc)
{
	struct bb_role roles[2 * 8];
	int n = 0;

	for (int t = 0; t < pairs; t++) {
		int idx = proc * pairs + t;

		roles[n] = (struct bb_role){ .bb = bb, .producer = true,
			.first = idx * per_thread, .n = per_thread };
		roles[n + 1] = (struct bb_role){ .bb = bb, .producer = false,
			.n = per_thread };
		n += 2;
	}
	(void)procs;
	for (int i = 0; i < n; i++)
		if (start_thread(&roles[i].thread, bb_main, &roles[i]))
			return 2;
	for (int i = 0; i < n; i++)
		pthread_join(roles[i].thread, NULL);
	return 0;
}

static void check_bounded_buffer(struct __test_metadata *_metadata,
				 int procs, int pairs, int per_thread)
{
	int total = procs * pairs * per_thread;
	pid_t pid[8];
	uint64_t t0;
	struct bb *bb;
	int missing = 0, twice = 0;

	ASSERT_GE(BB_MAX_ITEMS, total);
	bb = shared_alloc(sizeof(*bb));
	ASSERT_NE(NULL, bb);
	ASSERT_EQ(0, gs_mutex_create(&bb->m));
	ASSERT_EQ(0, gs_cond_create(&bb->not_full));
	ASSERT_EQ(0, gs_cond_create(&bb->not_empty));
	t0 = mono_ns();
	if (procs == 1) {
		EXPECT_EQ(0, bb_run(bb, 1, pairs, per_thread, 0));
	} else {
		for (int p = 0; p < procs; p++) {
			pid[p] = fork_child();
			ASSERT_LE(0, pid[p]);
			if (pid[p] == 0)
				_exit(bb_run(bb, procs, pairs, per_thread, p));
		}
		for (int p = 0; p < procs; p++) {
			int status = -1;

			EXPECT_EQ(0, wait_child(pid[p], &status,
						RUN_LIMIT_MS));
			EXPECT_EQ(0, status) TH_LOG("process %d", p);
		}
	}
	for (int i = 0; i < total; i++) {
		int s = atomic_load(&bb->seen[i]);

		missing += s == 0;
		twice += s > 1;
	}
	TH_LOG("%d items through %d slots in %ju ms, %d waits", total,
	       BB_SIZE, (uintmax_t)ms_since(t0), atomic_load(&bb->waits));
	EXPECT_EQ(0, atomic_load(&bb->timeouts)) TH_LOG("lost wake-up");
	EXPECT_EQ(0, atomic_load(&bb->errors));
	EXPECT_EQ(0, atomic_load(&bb->bad));
	EXPECT_EQ(total, atomic_load(&bb->consumed));
	EXPECT_EQ(0, missing);
	EXPECT_EQ(0, twice);
	EXPECT_EQ(0, bb->count);
	EXPECT_EQ(0, parked_now(gs_cond_fd(bb->not_full)));
	EXPECT_EQ(0, parked_now(gs_cond_fd(bb->not_empty)));
	gs_cond_destroy(bb->not_full);
	gs_cond_destroy(bb->not_empty);
	gs_mutex_destroy(bb->m);
	munmap(bb, sizeof(*bb));
}

TEST(cond_bounded_buffer_threads)
{
	check_bounded_buffer(_metadata, 1, 4, 1500);
}

TEST(cond_bounded_buffer_processes)
{
	check_bounded_buffer(_metadata, 4, 2, 800);
}

/* ------------------------------------------------------------------ */
/* Cond: Go's guarantees (sync.Cond's own tests), threads and processes */
/*
 * Every Signal and Broadcast below is made after bumping @gen under the
 * mutex, and every waiter notes @gen when it begins to wait (under the
 * mutex too): a Wait that returns with @gen unchanged was woken by no
 * notification that came after it began, which Go never allows.
 */
struct cond_sh {
	gs_mutex *m;
	gs_cond *c;
	int gen;		/* under m */
	int tokens;		/* under m: Signals not yet taken by a waiter */
	bool stop;		/* under m */
	int order[64];		/* under m: who woke, in order */
	int nr_order;		/* under m */
	int seen[64];		/* under m: wake-ups per waiter */
	atomic_int running;	/* waits begun */
	atomic_int awake;	/* waits ended */
	atomic_int early;	/* a Wait ended with no notification after it began */
	atomic_int stolen;	/* a Wait ended on a Signal that went to another */
	atomic_int errors;
	struct report rep;
};

#define COND_RACE_ROUNDS	300
#define COND_RACE_PROC_ROUNDS	120

static struct cond_sh *cond_sh_new(void)
{
	struct cond_sh *sh = shared_alloc(sizeof(*sh));

	if (!sh)
		return NULL;
	if (gs_mutex_create(&sh->m) || gs_cond_create(&sh->c)) {
		munmap(sh, sizeof(*sh));
		return NULL;
	}
	return sh;
}

static void cond_sh_free(struct cond_sh *sh)
{
	gs_cond_destroy(sh->c);
	gs_mutex_destroy(sh->m);
	munmap(sh, sizeof(*sh));
}

/* Under the mutex: one more notification, then Signal or Broadcast. */
static void cond_notify(struct cond_sh *sh, bool all, bool token)
{
	gs_mutex_lock(sh->m);
	sh->gen++;
	if (token)
		sh->tokens++;
	if (all)
		gs_cond_broadcast(sh->c);
	else
		gs_cond_signal(sh->c);
	gs_mutex_unlock(sh->m);
}

/* One Wait, with the mutex held: checks that a notification came after. */
static int cond_wait_once(struct cond_sh *sh, int who)
{
	int gen = sh->gen, ret;

	atomic_fetch_add(&sh->running, 1);
	ret = gs_cond_wait(sh->c, sh->m);
	if (ret)
		atomic_fetch_add(&sh->errors, 1);
	if (sh->gen == gen)
		atomic_fetch_add(&sh->early, 1);
	if (who >= 0 && who < 64) {
		sh->seen[who]++;
		if (sh->nr_order < 64)
			sh->order[sh->nr_order++] = who;
	}
	atomic_fetch_add(&sh->awake, 1);
	return ret;
}

struct cond_party {
	struct cond_sh *sh;
	int who;
	int (*fn)(struct cond_sh *sh, int who);
	pthread_t thread;
	pid_t pid;
};

static void *cond_party_main(void *p)
{
	struct cond_party *cp = p;

	cp->fn(cp->sh, cp->who);
	return NULL;
}

/* Run @fn(@sh, who) in a new thread, or in a child process with @procs. */
static int cond_party_start(struct cond_party *cp, struct cond_sh *sh,
			    int who, int (*fn)(struct cond_sh *, int),
			    bool procs)
{
	*cp = (struct cond_party){ .sh = sh, .who = who, .fn = fn };
	if (!procs)
		return start_thread(&cp->thread, cond_party_main, cp);
	cp->pid = fork_child();
	if (cp->pid < 0)
		return -errno;
	if (cp->pid == 0)
		_exit(fn(sh, who));
	return 0;
}

static int cond_party_join(struct cond_party *cp)
{
	int status = -1;

	if (!cp->pid)
		return join_ms(cp->thread, 2 * WAIT_LIMIT_MS) ? -ETIMEDOUT : 0;
	if (wait_child(cp->pid, &status, 2 * WAIT_LIMIT_MS))
		return -ETIMEDOUT;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

static int cond_one_wait(struct cond_sh *sh, int who)
{
	int ret;

	gs_mutex_lock(sh->m);
	ret = cond_wait_once(sh, who);
	gs_mutex_unlock(sh->m);
	return ret ? 1 : 0;
}

/*
 * Go's TestCondSignal: @n waiters are all inside Wait (the main thread
 * got the mutex after each took it and waited); one Signal releases
 * exactly one of them, each time. The window after each wake-up asserts
 * that nobody else wakes (a slow machine can only hide a failure there).
 */
static void check_signal_one(struct __test_metadata *_metadata, bool procs,
			     int rounds)
{
	enum { N = 3 };
	struct cond_party cp[N];
	struct cond_sh *sh = cond_sh_new();

	ASSERT_NE(NULL, sh);
	for (int r = 0; r < rounds; r++) {
		atomic_store(&sh->running, 0);
		atomic_store(&sh->awake, 0);
		for (int i = 0; i < N; i++)
			ASSERT_EQ(0, cond_party_start(&cp[i], sh, i,
						      cond_one_wait, procs));
		ASSERT_EQ(0, wait_atomic_ge(&sh->running, N));
		/* Each took the mutex, counted itself and waited. */
		ASSERT_EQ(0, gs_mutex_lock(sh->m));
		ASSERT_EQ(0, gs_mutex_unlock(sh->m));
		for (int k = 1; k <= N; k++) {
			EXPECT_EQ(k - 1, atomic_load(&sh->awake))
				TH_LOG("round %d: a waiter is not asleep", r);
			cond_notify(sh, false, false);
			ASSERT_EQ(0, wait_atomic_ge(&sh->awake, k))
				TH_LOG("round %d: Signal %d woke nobody", r, k);
			sleep_ms(3);
			ASSERT_EQ(k, atomic_load(&sh->awake))
				TH_LOG("round %d: too many awake after Signal %d",
				       r, k);
		}
		for (int i = 0; i < N; i++)
			ASSERT_EQ(0, cond_party_join(&cp[i]));
	}
	EXPECT_EQ(0, atomic_load(&sh->early));
	EXPECT_EQ(0, atomic_load(&sh->errors));
	/* Nobody waits: Signal and Broadcast stay in userspace. */
	EXPECT_EQ(fdinfo_num(gs_cond_fd(sh->c), "cond-tickets"),
		  fdinfo_num(gs_cond_fd(sh->c), "cond-notified"));
	cond_sh_free(sh);
}

TEST(cond_signal_releases_exactly_one_of_those_inside_wait_threads)
{
	check_signal_one(_metadata, false, 60);
}

TEST(cond_signal_releases_exactly_one_of_those_inside_wait_processes)
{
	check_signal_one(_metadata, true, 25);
}

/*
 * Two waiters wait again and again; each Signal carries a token, and a
 * waiter that wakes takes one. The Signal comes right after the mutex is
 * free, with a random short pause, so it often lands between a waiter's
 * unlock and its park: one Signal, one waiter, each time.
 */
static int cond_token_waiter(struct cond_sh *sh, int who)
{
	gs_mutex_lock(sh->m);
	while (!sh->stop) {
		cond_wait_once(sh, who);
		if (sh->stop)
			break;
		if (sh->tokens > 0)
			sh->tokens--;
		else
			atomic_fetch_add(&sh->stolen, 1);
	}
	gs_mutex_unlock(sh->m);
	return 0;
}

static void spin_us(unsigned int us)
{
	uint64_t end = mono_ns() + us * 1000ULL;

	while (mono_ns() < end)
		;
}

static void check_signal_race(struct __test_metadata *_metadata, bool procs,
			      int rounds)
{
	struct cond_party cp[2];
	struct cond_sh *sh = cond_sh_new();

	ASSERT_NE(NULL, sh);
	srand(12345);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, cond_party_start(&cp[i], sh, i, cond_token_waiter,
					      procs));
	for (int r = 0; r < rounds; r++) {
		/* Both have begun to wait: two at first, one more per round. */
		ASSERT_EQ(0, wait_atomic_ge(&sh->running, 2 + r));
		spin_us((unsigned int)rand() % 60);
		cond_notify(sh, false, true);
		ASSERT_EQ(0, wait_atomic_ge(&sh->awake, r + 1))
			TH_LOG("round %d: the Signal woke nobody", r);
		if (r % 10 == 0) {
			sleep_ms(2);
			ASSERT_EQ(r + 1, atomic_load(&sh->awake))
				TH_LOG("round %d: one Signal woke two", r);
		}
	}
	ASSERT_EQ(0, wait_atomic_ge(&sh->running, 2 + rounds));
	ASSERT_EQ(0, gs_mutex_lock(sh->m));
	EXPECT_EQ(0, sh->tokens);
	sh->stop = true;
	sh->gen++;
	gs_cond_broadcast(sh->c);
	ASSERT_EQ(0, gs_mutex_unlock(sh->m));
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, cond_party_join(&cp[i]));
	EXPECT_EQ(rounds + 2, atomic_load(&sh->awake));
	EXPECT_EQ(0, atomic_load(&sh->stolen)) TH_LOG("a Signal woke two");
	EXPECT_EQ(0, atomic_load(&sh->early));
	EXPECT_EQ(0, atomic_load(&sh->errors));
	cond_sh_free(sh);
}

TEST(cond_signal_racing_unlock_and_park_wakes_one_threads)
{
	check_signal_race(_metadata, false, COND_RACE_ROUNDS);
}

TEST(cond_signal_racing_unlock_and_park_wakes_one_processes)
{
	check_signal_race(_metadata, true, COND_RACE_PROC_ROUNDS);
}

/*
 * Go's TestCondSignalGenerations: waiter i begins to wait while waiter
 * i-1 still waits; each Signal must release the older one first.
 */
static void check_generations(struct __test_metadata *_metadata, bool procs,
			      int n)
{
	struct cond_party cp[64];
	struct cond_sh *sh = cond_sh_new();

	ASSERT_NE(NULL, sh);
	ASSERT_GE(64, n);
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(0, cond_party_start(&cp[i], sh, i, cond_one_wait,
					      procs));
		if (i > 0) {
			ASSERT_EQ(0, wait_atomic_ge(&sh->awake, i));
			ASSERT_EQ(0, gs_mutex_lock(sh->m));
			EXPECT_EQ(i - 1, sh->order[i - 1])
				TH_LOG("wrong waiter woke up");
			ASSERT_EQ(0, gs_mutex_unlock(sh->m));
		}
		ASSERT_EQ(0, wait_atomic_ge(&sh->running, i + 1));
		cond_notify(sh, false, false);
	}
	ASSERT_EQ(0, wait_atomic_ge(&sh->awake, n));
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(0, cond_party_join(&cp[i]));
		EXPECT_EQ(i, sh->order[i]);
	}
	EXPECT_EQ(0, atomic_load(&sh->early));
	EXPECT_EQ(0, atomic_load(&sh->errors));
	cond_sh_free(sh);
}

TEST(cond_signal_generations_oldest_first_threads)
{
	check_generations(_metadata, false, 40);
}

TEST(cond_signal_generations_oldest_first_processes)
{
	check_generations(_metadata, true, 16);
}

/*
 * Go's TestCondBroadcast: @n waiters wait again and again; each
 * Broadcast wakes every one of them once, and none twice.
 */
static int cond_broadcast_waiter(struct cond_sh *sh, int who)
{
	gs_mutex_lock(sh->m);
	while (!sh->stop)
		cond_wait_once(sh, who);
	gs_mutex_unlock(sh->m);
	return 0;
}

static void check_broadcast(struct __test_metadata *_metadata, bool procs,
			    int n, int rounds)
{
	struct cond_party cp[16];
	struct cond_sh *sh = cond_sh_new();

	ASSERT_NE(NULL, sh);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(0, cond_party_start(&cp[i], sh, i,
					      cond_broadcast_waiter, procs));
	for (int r = 1; r <= rounds; r++) {
		ASSERT_EQ(0, wait_atomic_ge(&sh->running, n * r));
		EXPECT_EQ(n * (r - 1), atomic_load(&sh->awake))
			TH_LOG("a waiter is not asleep");
		ASSERT_EQ(0, gs_mutex_lock(sh->m));
		if (r == rounds)
			sh->stop = true;
		sh->gen++;
		gs_cond_broadcast(sh->c);
		ASSERT_EQ(0, gs_mutex_unlock(sh->m));
		ASSERT_EQ(0, wait_atomic_ge(&sh->awake, n * r));
		ASSERT_EQ(0, gs_mutex_lock(sh->m));
		for (int i = 0; i < n; i++) {
			EXPECT_EQ(r, sh->seen[i])
				TH_LOG("round %d: waiter %d woke %d times", r,
				       i, sh->seen[i]);
		}
		ASSERT_EQ(0, gs_mutex_unlock(sh->m));
	}
	for (int i = 0; i < n; i++)
		ASSERT_EQ(0, cond_party_join(&cp[i]));
	EXPECT_EQ(0, atomic_load(&sh->early));
	EXPECT_EQ(0, atomic_load(&sh->errors));
	cond_sh_free(sh);
}

TEST(cond_broadcast_wakes_each_waiter_once_threads)
{
	check_broadcast(_metadata, false, 8, 20);
}

TEST(cond_broadcast_wakes_each_waiter_once_processes)
{
	check_broadcast(_metadata, true, 4, 12);
}

/*
 * Broadcasts and Signals race waiters that begin to wait at any moment:
 * no Wait ever ends on a notification made before it began.
 */
#define COND_CHURN_WAITS	150

static int cond_churn_waiter(struct cond_sh *sh, int who)
{
	for (int i = 0; i < COND_CHURN_WAITS; i++) {
		gs_mutex_lock(sh->m);
		if (!sh->stop)
			cond_wait_once(sh, -1);
		gs_mutex_unlock(sh->m);
		spin_us((unsigned int)(i * 7 + who * 13) % 40);
	}
	gs_mutex_lock(sh->m);
	sh->seen[who] = 1;	/* done */
	gs_mutex_unlock(sh->m);
	return 0;
}

static void check_churn(struct __test_metadata *_metadata, bool procs, int n)
{
	struct cond_party cp[8];
	struct cond_sh *sh = cond_sh_new();
	uint64_t end = mono_ns() + 6 * WAIT_LIMIT_MS * NS_PER_MS;
	bool all_done = false;

	ASSERT_NE(NULL, sh);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(0, cond_party_start(&cp[i], sh, i, cond_churn_waiter,
					      procs));
	for (unsigned int k = 0; !all_done; k++) {
		ASSERT_GT(end, mono_ns()) TH_LOG("the waiters never finished");
		cond_notify(sh, k % 3 == 0, false);
		spin_us(k % 25);
		ASSERT_EQ(0, gs_mutex_lock(sh->m));
		all_done = true;
		for (int i = 0; i < n; i++)
			all_done &= sh->seen[i] == 1;
		ASSERT_EQ(0, gs_mutex_unlock(sh->m));
	}
	for (int i = 0; i < n; i++)
		ASSERT_EQ(0, cond_party_join(&cp[i]));
	EXPECT_EQ(n * COND_CHURN_WAITS, atomic_load(&sh->awake));
	EXPECT_EQ(0, atomic_load(&sh->early))
		TH_LOG("a Wait ended on a notification made before it began");
	EXPECT_EQ(0, atomic_load(&sh->errors));
	cond_sh_free(sh);
}

TEST(cond_notifications_never_reach_later_waiters_threads)
{
	check_churn(_metadata, false, 4);
}

TEST(cond_notifications_never_reach_later_waiters_processes)
{
	check_churn(_metadata, true, 3);
}

/*
 * A waiter that leaves on its deadline takes no Signal with it: the next
 * Signal goes to the next waiter. It leaves a gap below a newer waiter,
 * and none when it was the newest (its ticket is given back).
 */
TEST(cond_timed_out_waiter_takes_no_signal_away)
{
	struct waiter a, b;
	atomic_int returned = 0;
	gs_mutex *m = NULL;
	gs_cond *c = NULL;
	int fd;

	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_cond_fd(c);

	/*
	 * Older A times out under newer B: a gap, skipped by the Signal. (A's
	 * deadline must outlast B's parking on a slow machine: 1 s.)
	 */
	ASSERT_EQ(0, waiter_start_dl(&a, OP_COND_WAIT_UNTIL, c, m, &returned,
				     gs_deadline_in(1000 * NS_PER_MS), 0));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, waiter_start(&b, OP_COND_WAIT, c, m, &returned));
	ASSERT_EQ(0, wait_parked(fd, 2));
	ASSERT_TRUE(waiter_join(&a, WAIT_LIMIT_MS));
	EXPECT_EQ(-ETIMEDOUT, a.ret);
	EXPECT_TRUE(a.held);
	EXPECT_EQ(1, fdinfo_num(fd, "cond-gaps"));
	EXPECT_EQ(2, fdinfo_num(fd, "cond-tickets"));
	EXPECT_EQ(0, fdinfo_num(fd, "cond-notified"));
	gs_cond_signal(c);
	ASSERT_TRUE(waiter_join(&b, WAIT_LIMIT_MS)) TH_LOG("B was not woken");
	EXPECT_EQ(0, b.ret);
	EXPECT_EQ(0, fdinfo_num(fd, "cond-gaps"));
	EXPECT_EQ(2, fdinfo_num(fd, "cond-notified"));

	/* Newer A times out above older B: its ticket is given back. */
	ASSERT_EQ(0, waiter_start(&b, OP_COND_WAIT, c, m, &returned));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, waiter_start_dl(&a, OP_COND_WAIT_UNTIL, c, m, &returned,
				     gs_deadline_in(1000 * NS_PER_MS), 0));
	ASSERT_EQ(0, wait_parked(fd, 2));
	ASSERT_TRUE(waiter_join(&a, WAIT_LIMIT_MS));
	EXPECT_EQ(-ETIMEDOUT, a.ret);
	EXPECT_EQ(0, fdinfo_num(fd, "cond-gaps"));
	EXPECT_EQ(3, fdinfo_num(fd, "cond-tickets"));
	gs_cond_signal(c);
	ASSERT_TRUE(waiter_join(&b, WAIT_LIMIT_MS)) TH_LOG("B was not woken");
	EXPECT_EQ(0, b.ret);
	EXPECT_EQ(3, fdinfo_num(fd, "cond-notified"));
	gs_cond_destroy(c);
	gs_mutex_destroy(m);
}

/* The Cond ioctls themselves: tickets taken by hand in the mapped page. */
TEST(cond_ioctls_check_tickets_kinds_and_arguments)
{
	struct gosync_lot_cond_wait cw = { .deadline = UINT64_MAX };
	_Atomic uint64_t *words;
	uint32_t one = 1, all = GOSYNC_LOT_ALL, two = 2, zero = 0;
	gs_mutex *m = NULL;
	gs_cond *c = NULL;
	int fd;

	ASSERT_EQ(0, gs_cond_create(&c));
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_cond_fd(c);
	words = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, words);

	/* Not a Cond: -ENOTTY. Bad count, flags or pointer: -EINVAL, -EFAULT. */
	EXPECT_EQ(-ENOTTY, xioctl(gs_mutex_fd(m), GOSYNC_IOC_LOT_COND_WAIT, &cw));
	EXPECT_EQ(-ENOTTY, xioctl(gs_mutex_fd(m), GOSYNC_IOC_LOT_COND_NOTIFY,
				  &one));
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &two));
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &zero));
	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, NULL));
	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, NULL));
	cw.flags = 1U << 7;
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	/* A cancel fd that is closed, or not a channel; or one not asked for. */
	cw.flags = GOSYNC_WAIT_CANCEL_FD;
	cw.cancel_fd = -1;
	EXPECT_EQ(-EBADF, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	cw.cancel_fd = fd;
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	cw.flags = 0;
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	cw.cancel_fd = 0;
	EXPECT_EQ(0, atomic_load(&words[GOSYNC_COND_TICKETS]));
	/* A ticket never issued. */
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &one));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &all));
	EXPECT_EQ(0, atomic_load(&words[GOSYNC_COND_NOTIFIED]));

	/* The newest ticket leaves: given back. */
	EXPECT_EQ(0, atomic_fetch_add(&words[GOSYNC_COND_TICKETS], 1));
	cw.ticket = 0;
	cw.deadline = 1;
	EXPECT_EQ(-ETIMEDOUT, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	EXPECT_EQ(0, atomic_load(&words[GOSYNC_COND_TICKETS]));
	EXPECT_EQ(0, fdinfo_num(fd, "cond-gaps"));

	/* Tickets 0, 1, 2; 0 and 1 leave: one gap, then skipped. */
	atomic_store(&words[GOSYNC_COND_TICKETS], 3);
	EXPECT_EQ(-ETIMEDOUT, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	cw.ticket = 1;
	EXPECT_EQ(-ETIMEDOUT, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	EXPECT_EQ(1, fdinfo_num(fd, "cond-gaps"));
	/* Gone: -EINVAL, again and again, nothing changes. */
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	cw.ticket = 0;
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	EXPECT_EQ(1, fdinfo_num(fd, "cond-gaps"));
	/* The Signal skips 0 and 1 and notifies 2 (not parked: wakes 0). */
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &one));
	EXPECT_EQ(3, atomic_load(&words[GOSYNC_COND_NOTIFIED]));
	EXPECT_EQ(0, fdinfo_num(fd, "cond-gaps"));
	/* Ticket 2 was notified before it waited: 0 at once, any deadline. */
	cw.ticket = 2;
	cw.deadline = UINT64_MAX;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	cw.deadline = 1;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));

	/* A Broadcast notifies every ticket issued, and drops the gaps. */
	atomic_store(&words[GOSYNC_COND_TICKETS], 6);
	cw.ticket = 3;
	EXPECT_EQ(-ETIMEDOUT, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	EXPECT_EQ(1, fdinfo_num(fd, "cond-gaps"));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &all));
	EXPECT_EQ(6, atomic_load(&words[GOSYNC_COND_NOTIFIED]));
	EXPECT_EQ(6, fdinfo_num(fd, "cond-notified"));
	EXPECT_EQ(0, fdinfo_num(fd, "cond-gaps"));
	/* Writing the mirror changes nothing the kernel decides on. */
	atomic_store(&words[GOSYNC_COND_NOTIFIED], 0);
	cw.ticket = 5;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	EXPECT_EQ(6, fdinfo_num(fd, "cond-notified"));

	/* The library's Cond is usable again once the words agree. */
	atomic_store(&words[GOSYNC_COND_NOTIFIED], 6);
	munmap((void *)words, 4096);
	gs_cond_destroy(c);
	gs_mutex_destroy(m);
}

/*
 * Departing tickets grow, merge and give back gaps. Of tickets 0..4, 1 and
 * 3 leave: two gaps. 2 leaves between them: they merge into [1, 4). 0
 * leaves just below: the gap grows down to [0, 4). The newest, 4, leaves:
 * its ticket is given back, and so is the whole gap it uncovers, down to
 * no ticket issued at all; the next waiter is ticket 0 again.
 */
TEST(cond_departures_merge_gaps_and_give_them_back)
{
	struct gosync_lot_cond_wait cw = { .deadline = 1 };
	static const struct { uint64_t ticket, tickets, gaps; } steps[] = {
		{ 1, 5, 1 }, { 3, 5, 2 }, { 2, 5, 1 }, { 0, 5, 1 }, { 4, 0, 0 },
	};
	_Atomic uint64_t *words;
	uint32_t one = 1;
	gs_cond *c = NULL;
	size_t i;
	int fd;

	ASSERT_EQ(0, gs_cond_create(&c));
	fd = gs_cond_fd(c);
	words = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, words);
	atomic_store(&words[GOSYNC_COND_TICKETS], 5);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		cw.ticket = steps[i].ticket;
		EXPECT_EQ(-ETIMEDOUT, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw))
			TH_LOG("ticket %llu", (unsigned long long)cw.ticket);
		EXPECT_EQ(steps[i].tickets,
			  atomic_load(&words[GOSYNC_COND_TICKETS]))
			TH_LOG("after ticket %llu left",
			       (unsigned long long)cw.ticket);
		EXPECT_EQ(steps[i].gaps, fdinfo_num(fd, "cond-gaps"))
			TH_LOG("after ticket %llu left",
			       (unsigned long long)cw.ticket);
	}
	EXPECT_EQ(0, fdinfo_num(fd, "cond-notified"));
	/* Ticket 0 again, and the next Signal is its, not a departed one's. */
	EXPECT_EQ(0, atomic_fetch_add(&words[GOSYNC_COND_TICKETS], 1));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &one));
	EXPECT_EQ(1, fdinfo_num(fd, "cond-notified"));
	cw.ticket = 0;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw));
	munmap((void *)words, 4096);
	gs_cond_destroy(c);
}

/* Bogus tickets and hostile words never hang or break the kernel. */
TEST(cond_hostile_words_stay_bounded)
{
	struct gosync_lot_cond_wait cw = { .deadline = 1 };
	_Atomic uint64_t *words;
	uint32_t one = 1, all = GOSYNC_LOT_ALL;
	gs_cond *c = NULL;
	int fd, gaps_refused = 0;

	ASSERT_EQ(0, gs_cond_create(&c));
	fd = gs_cond_fd(c);
	words = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, words);
	/* Every other ticket leaves: as many gaps as the kernel allows. */
	atomic_store(&words[GOSYNC_COND_TICKETS], UINT64_MAX / 4);
	for (uint64_t t = 0; t < 2 * (GOSYNC_COND_MAX_GAPS + 8); t += 2) {
		cw.ticket = t;
		int ret = xioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &cw);

		if (ret == -ENOSPC)
			gaps_refused++;
		else
			ASSERT_EQ(-ETIMEDOUT, ret) TH_LOG("ticket %ju",
							  (uintmax_t)t);
	}
	EXPECT_EQ(8, gaps_refused);
	EXPECT_EQ(GOSYNC_COND_MAX_GAPS, fdinfo_num(fd, "cond-gaps"));
	/* A Signal skips one gap per step, then notifies: bounded work. */
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &one));
	EXPECT_EQ(2, atomic_load(&words[GOSYNC_COND_NOTIFIED]));
	EXPECT_EQ(GOSYNC_COND_MAX_GAPS - 1, fdinfo_num(fd, "cond-gaps"));
	/* Tickets moved back below the notified count: nothing breaks. */
	atomic_store(&words[GOSYNC_COND_TICKETS], 1);
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &one));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &all));
	atomic_store(&words[GOSYNC_COND_TICKETS], UINT64_MAX);
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &all));
	EXPECT_EQ(0, fdinfo_num(fd, "cond-gaps"));
	munmap((void *)words, 4096);
	gs_cond_destroy(c);	/* frees whatever gaps remain */
}

/* ================================================================== */
/* 4. CyclicBarrier                                                     */

struct act {
	atomic_int runs;
	atomic_int fail;	/* the action returns -ENOSPC */
	atomic_int block;	/* the action waits for release */
	atomic_int started;
	atomic_int release;
};

static int act_fn(void *p)
{
	struct act *a = p;

	atomic_fetch_add(&a->started, 1);
	if (atomic_load(&a->block))
		wait_atomic_ge(&a->release, 1);
	atomic_fetch_add(&a->runs, 1);
	return atomic_load(&a->fail) ? -ENOSPC : 0;
}

TEST(barrier_create_parties_waiting_broken)
{
	struct gosync_lot_status st;
	struct waiter w[2];
	gs_barrier *b = NULL;
	struct act a;

	memset(&a, 0, sizeof(a));
	EXPECT_EQ(-EINVAL, gs_barrier_create(&b, 0, NULL, NULL));
	EXPECT_EQ(-EINVAL, gs_barrier_create(&b, 0x80000000U, act_fn, &a));
	EXPECT_EQ(-EINVAL, gs_barrier_create(&b, UINT32_MAX, NULL, NULL));
	EXPECT_EQ(NULL, b);
	ASSERT_EQ(0, gs_barrier_create(&b, 0x7fffffffU, NULL, NULL));
	EXPECT_EQ(0x7fffffffU, gs_barrier_parties(b));
	gs_barrier_destroy(b);

	/* One party: every Await completes a round and runs the action. */
	ASSERT_EQ(0, gs_barrier_create(&b, 1, act_fn, &a));
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(0, gs_barrier_await(b));
	EXPECT_EQ(0, gs_barrier_await_until(b, 1, 0));
	EXPECT_EQ(6, atomic_load(&a.runs));
	EXPECT_EQ(0, gs_barrier_waiting(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	gs_barrier_destroy(b);

	atomic_store(&a.runs, 0);
	ASSERT_EQ(0, gs_barrier_create(&b, 3, act_fn, &a));
	ASSERT_EQ(0, lot_status(gs_barrier_fd(b), &st));
	EXPECT_EQ(GOSYNC_LOT_BARRIER, st.kind);
	EXPECT_EQ(3, st.param);
	EXPECT_EQ(3, gs_barrier_parties(b));
	EXPECT_EQ(0, gs_barrier_waiting(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, waiter_start(&w[i], OP_BARRIER_AWAIT_UNTIL, b,
					  NULL, NULL));
		ASSERT_EQ(0, wait_parked(gs_barrier_fd(b), (uint32_t)i + 1));
		EXPECT_EQ((uint32_t)i + 1, gs_barrier_waiting(b));
	}
	/* Bad flags: refused before arriving. */
	EXPECT_EQ(-EINVAL, gs_barrier_await_until(b, GS_FOREVER, 2));
	EXPECT_EQ(2, gs_barrier_waiting(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(0, atomic_load(&a.runs));
	EXPECT_EQ(0, gs_barrier_await(b));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(0, w[i].ret);
	}
	EXPECT_EQ(1, atomic_load(&a.runs));
	EXPECT_EQ(0, gs_barrier_waiting(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	gs_barrier_destroy(b);
}

/*
 * Rounds never mix: each party counts its arrival in round r before it
 * awaits and its departure after; the action checks that all parties of
 * its round arrived, none left, and none arrived for the next round, and
 * each party checks on leaving that exactly r + 1 actions have run.
 */
#define BR_MAX_ROUNDS	400

struct rounds {
	int parties, rounds;
	atomic_int actions;
	atomic_int arrived[BR_MAX_ROUNDS];
	atomic_int left[BR_MAX_ROUNDS];
	atomic_int bad_action;
	atomic_int bad_action_round;
	struct report rep[8];
};

static int rounds_action(void *p)
{
	struct rounds *rs = p;
	int r = atomic_load(&rs->actions);

	if (r >= rs->rounds ||
	    atomic_load(&rs->arrived[r]) != rs->parties ||
	    atomic_load(&rs->left[r]) != 0 ||
	    (r + 1 < rs->rounds && atomic_load(&rs->arrived[r + 1])) ||
	    (r > 0 && atomic_load(&rs->left[r - 1]) != rs->parties)) {
		if (!atomic_fetch_add(&rs->bad_action, 1))
			atomic_store(&rs->bad_action_round, r);
	}
	atomic_fetch_add(&rs->actions, 1);
	return 0;
}

static int rounds_party(gs_barrier *b, struct rounds *rs, int who)
{
	struct report *rep = &rs->rep[who];

	for (int r = 0; r < rs->rounds; r++) {
		int ret, n;

		atomic_fetch_add(&rs->arrived[r], 1);
		if ((who + r) % 2)
			ret = gs_barrier_await(b);
		else
			ret = gs_barrier_await_until(b,
				gs_deadline_in(LIMIT_NS), 0);
		CHILD_CHECK(rep, ret == 0, "party %d round %d: %d", who, r,
			    ret);
		n = atomic_load(&rs->actions);
		CHILD_CHECK(rep, n == r + 1,
			    "party %d left round %d after %d actions", who, r,
			    n);
		atomic_fetch_add(&rs->left[r], 1);
	}
	return 0;
}

struct party_thread {
	gs_barrier *b;
	struct rounds *rs;
	int who, ret;
	pthread_t thread;
};

static void *party_main(void *p)
{
	struct party_thread *pt = p;

	pt->ret = rounds_party(pt->b, pt->rs, pt->who);
	if (pt->ret)
		gs_barrier_reset(pt->b);	/* free the others */
	return NULL;
}

static void check_rounds(struct __test_metadata *_metadata,
			 struct rounds *rs)
{
	EXPECT_EQ(0, atomic_load(&rs->bad_action))
		TH_LOG("first bad action in round %d",
		       atomic_load(&rs->bad_action_round));
	EXPECT_EQ(rs->rounds, atomic_load(&rs->actions));
	for (int r = 0; r < rs->rounds; r++) {
		EXPECT_EQ(rs->parties, atomic_load(&rs->arrived[r]));
		EXPECT_EQ(rs->parties, atomic_load(&rs->left[r]));
	}
}

TEST(barrier_rounds_never_mix_threads)
{
	struct party_thread pt[4];
	struct rounds *rs;
	gs_barrier *b = NULL;
	uint64_t t0 = mono_ns();

	rs = shared_alloc(sizeof(*rs));
	ASSERT_NE(NULL, rs);
	rs->parties = 4;
	rs->rounds = BR_MAX_ROUNDS;
	ASSERT_EQ(0, gs_barrier_create(&b, 4, rounds_action, rs));
	for (int i = 0; i < 4; i++) {
		pt[i] = (struct party_thread){ .b = b, .rs = rs, .who = i };
		ASSERT_EQ(0, start_thread(&pt[i].thread, party_main, &pt[i]));
	}
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(0, join_ms(pt[i].thread, RUN_LIMIT_MS));
		EXPECT_EQ(0, pt[i].ret) TH_LOG("line %d: %s", rs->rep[i].line,
					       rs->rep[i].msg);
	}
	TH_LOG("%d rounds of 4 threads in %ju ms", rs->rounds,
	       (uintmax_t)ms_since(t0));
	check_rounds(_metadata, rs);
	EXPECT_EQ(0, gs_barrier_waiting(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	gs_barrier_destroy(b);
	munmap(rs, sizeof(*rs));
}

TEST(barrier_rounds_never_mix_processes)
{
	pid_t pid[3];
	struct rounds *rs;
	gs_barrier *b = NULL;
	uint64_t t0 = mono_ns();
	int ret;

	rs = shared_alloc(sizeof(*rs));
	ASSERT_NE(NULL, rs);
	rs->parties = 4;
	rs->rounds = 150;
	/* Each process's copy of the handle has the action. */
	ASSERT_EQ(0, gs_barrier_create(&b, 4, rounds_action, rs));
	for (int i = 0; i < 3; i++) {
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0) {
			ret = rounds_party(b, rs, i);
			if (ret)
				gs_barrier_reset(b);
			_exit(ret);
		}
	}
	ret = rounds_party(b, rs, 3);
	if (ret)
		gs_barrier_reset(b);
	EXPECT_EQ(0, ret) TH_LOG("parent: line %d: %s", rs->rep[3].line,
				 rs->rep[3].msg);
	for (int i = 0; i < 3; i++)
		EXPECT_CHILD_OK(pid[i], &rs->rep[i]);
	TH_LOG("%d rounds of 4 processes in %ju ms", rs->rounds,
	       (uintmax_t)ms_since(t0));
	check_rounds(_metadata, rs);
	EXPECT_FALSE(gs_barrier_broken(b));
	gs_barrier_destroy(b);
	munmap(rs, sizeof(*rs));
}

/* Start @n waiters on @b and wait until all are parked. */
static int start_awaiters(struct waiter *w, int n, gs_barrier *b)
{
	for (int i = 0; i < n; i++) {
		int err = waiter_start(&w[i], i % 2 ? OP_BARRIER_AWAIT :
				       OP_BARRIER_AWAIT_UNTIL, b, NULL, NULL);

		if (err)
			return -err;
	}
	return wait_parked(gs_barrier_fd(b), (uint32_t)n);
}

TEST(barrier_failed_action_breaks_until_reset)
{
	struct waiter w[2];
	gs_barrier *b = NULL;
	struct act a;

	memset(&a, 0, sizeof(a));
	ASSERT_EQ(0, gs_barrier_create(&b, 3, act_fn, &a));
	ASSERT_EQ(0, start_awaiters(w, 2, b));
	EXPECT_EQ(0, gs_barrier_await(b));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(0, w[i].ret);
	}
	EXPECT_EQ(1, atomic_load(&a.runs));

	/* We arrive last and run the failing action. */
	atomic_store(&a.fail, 1);
	ASSERT_EQ(0, start_awaiters(w, 2, b));
	EXPECT_EQ(-ENOSPC, gs_barrier_await(b));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(-EPIPE, w[i].ret);
	}
	EXPECT_EQ(2, atomic_load(&a.runs));
	EXPECT_TRUE(gs_barrier_broken(b));

	/* Broken: every Await fails at once, the action does not run. */
	atomic_store(&a.fail, 0);
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(-EPIPE, gs_barrier_await(b));
		EXPECT_EQ(-EPIPE, gs_barrier_await_until(b,
			gs_deadline_in(LIMIT_NS), 0));
	}
	EXPECT_EQ(2, atomic_load(&a.runs));
	EXPECT_TRUE(gs_barrier_broken(b));

	EXPECT_EQ(0, gs_barrier_reset(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(0, gs_barrier_waiting(b));
	ASSERT_EQ(0, start_awaiters(w, 2, b));
	EXPECT_EQ(0, gs_barrier_await(b));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(0, w[i].ret);
	}
	EXPECT_EQ(3, atomic_load(&a.runs));
	gs_barrier_destroy(b);
}

TEST(barrier_timeout_breaks_the_round)
{
	struct waiter w[2];
	gs_barrier *b = NULL;
	uint64_t t0, ms;
	struct act a;

	memset(&a, 0, sizeof(a));
	ASSERT_EQ(0, gs_barrier_create(&b, 3, act_fn, &a));

	ASSERT_EQ(0, start_awaiters(w, 1, b));
	EXPECT_EQ(1, gs_barrier_waiting(b));
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT,
		  gs_barrier_await_until(b, gs_deadline_in(80 * NS_PER_MS), 0));
	ms = ms_since(t0);
	EXPECT_LE(80, ms);
	EXPECT_GT(LATE_MS, ms);
	ASSERT_TRUE(waiter_join(&w[0], WAIT_LIMIT_MS));
	EXPECT_EQ(-EPIPE, w[0].ret);
	EXPECT_TRUE(gs_barrier_broken(b));
	EXPECT_EQ(-EPIPE, gs_barrier_await(b));
	EXPECT_EQ(0, atomic_load(&a.runs));
	EXPECT_EQ(0, gs_barrier_reset(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(0, gs_barrier_waiting(b));

	/* A past deadline does not stop the last arriver. */
	ASSERT_EQ(0, start_awaiters(w, 2, b));
	EXPECT_EQ(2, gs_barrier_waiting(b));
	EXPECT_EQ(0, gs_barrier_await_until(b, 1, 0));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(0, w[i].ret);
	}
	EXPECT_EQ(1, atomic_load(&a.runs));

	/* The same on CLOCK_REALTIME. */
	ASSERT_EQ(0, start_awaiters(w, 1, b));
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT,
		  gs_barrier_await_until(b, real_ns() + 80 * NS_PER_MS,
					 GS_CLOCK_REALTIME));
	ms = ms_since(t0);
	EXPECT_LE(79, ms);
	EXPECT_GT(LATE_MS, ms);
	ASSERT_TRUE(waiter_join(&w[0], WAIT_LIMIT_MS));
	EXPECT_EQ(-EPIPE, w[0].ret);
	EXPECT_TRUE(gs_barrier_broken(b));
	EXPECT_EQ(0, gs_barrier_reset(b));

	/* A waiter whose own deadline passes gets -ETIMEDOUT. */
	ASSERT_EQ(0, waiter_start_dl(&w[0], OP_BARRIER_AWAIT_UNTIL, b, NULL,
				     NULL, gs_deadline_in(60 * NS_PER_MS), 0));
	ASSERT_EQ(0, waiter_start(&w[1], OP_BARRIER_AWAIT, b, NULL, NULL));
	ASSERT_TRUE(waiter_join(&w[0], WAIT_LIMIT_MS));
	EXPECT_EQ(-ETIMEDOUT, w[0].ret);
	ASSERT_TRUE(waiter_join(&w[1], WAIT_LIMIT_MS));
	EXPECT_EQ(-EPIPE, w[1].ret);
	EXPECT_TRUE(gs_barrier_broken(b));
	EXPECT_EQ(1, atomic_load(&a.runs));

	/* After a reset, a full round passes. */
	EXPECT_EQ(0, gs_barrier_reset(b));
	ASSERT_EQ(0, start_awaiters(w, 2, b));
	EXPECT_EQ(0, gs_barrier_await_until(b, gs_deadline_in(LIMIT_NS), 0));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(0, w[i].ret);
	}
	EXPECT_EQ(2, atomic_load(&a.runs));
	gs_barrier_destroy(b);
}

TEST(barrier_reset_while_parties_wait)
{
	struct waiter w[2];
	gs_barrier *b = NULL;
	struct act a;

	memset(&a, 0, sizeof(a));
	ASSERT_EQ(0, gs_barrier_create(&b, 3, act_fn, &a));
	/* Reset with nobody waiting breaks nothing. */
	EXPECT_EQ(0, gs_barrier_reset(b));
	EXPECT_FALSE(gs_barrier_broken(b));

	ASSERT_EQ(0, start_awaiters(w, 2, b));
	EXPECT_EQ(2, gs_barrier_waiting(b));
	EXPECT_EQ(0, gs_barrier_reset(b));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(-EPIPE, w[i].ret);
	}
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(0, gs_barrier_waiting(b));
	EXPECT_EQ(0, atomic_load(&a.runs));

	/* Usable again at once: a full round of three. */
	ASSERT_EQ(0, start_awaiters(w, 2, b));
	EXPECT_EQ(0, gs_barrier_await(b));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(0, w[i].ret);
	}
	EXPECT_EQ(1, atomic_load(&a.runs));
	EXPECT_EQ(0, parked_now(gs_barrier_fd(b)));
	gs_barrier_destroy(b);
}

TEST(barrier_arrival_during_action_waits_for_next_round)
{
	struct waiter w[3];
	gs_barrier *b = NULL;
	struct act a;
	int fd;

	memset(&a, 0, sizeof(a));
	atomic_store(&a.block, 1);
	ASSERT_EQ(0, gs_barrier_create(&b, 2, act_fn, &a));
	fd = gs_barrier_fd(b);
	ASSERT_EQ(0, waiter_start(&w[0], OP_BARRIER_AWAIT, b, NULL, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, waiter_start(&w[1], OP_BARRIER_AWAIT, b, NULL, NULL));
	ASSERT_EQ(0, wait_atomic_ge(&a.started, 1));	/* w[1] runs it */
	ASSERT_EQ(0, waiter_start(&w[2], OP_BARRIER_AWAIT_UNTIL, b, NULL,
				  NULL));
	ASSERT_EQ(0, wait_parked(fd, 2));
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w[0].done));
	EXPECT_FALSE(atomic_load(&w[2].done));
	atomic_store(&a.release, 1);
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(0, w[i].ret);
	}
	/* The late one is the first arrival of the next round. */
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_EQ(1, gs_barrier_waiting(b));
	EXPECT_FALSE(atomic_load(&w[2].done));
	EXPECT_EQ(0, gs_barrier_await(b));
	ASSERT_TRUE(waiter_join(&w[2], WAIT_LIMIT_MS));
	EXPECT_EQ(0, w[2].ret);
	EXPECT_EQ(2, atomic_load(&a.runs));
	gs_barrier_destroy(b);
}

TEST(barrier_signals_do_not_end_await)
{
	struct waiter w;
	gs_barrier *b = NULL;
	int fd;

	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	ASSERT_EQ(0, gs_barrier_create(&b, 2, NULL, NULL));
	fd = gs_barrier_fd(b);
	ASSERT_EQ(0, waiter_start(&w, OP_BARRIER_AWAIT, b, NULL, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	for (int i = 1; i <= 3; i++) {
		ASSERT_EQ(0, pthread_kill(w.thread, SIGUSR1));
		ASSERT_EQ(0, wait_signals(i));
		ASSERT_EQ(0, wait_parked(fd, 1));
	}
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.done));
	EXPECT_EQ(1, gs_barrier_waiting(b));
	EXPECT_EQ(0, gs_barrier_await(b));
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(0, w.ret);
	EXPECT_FALSE(gs_barrier_broken(b));
	gs_barrier_destroy(b);
}

/* ================================================================== */
/* 5. H2O: two H and one O per molecule                                 */
/*
 * An atom takes a permit of its element's semaphore (2 for H, 1 for O),
 * puts itself into the molecule being built and awaits the barrier of 3;
 * the barrier's action, run before anyone leaves, checks and records the
 * molecule; then the atom gives its permit back. A new atom can enter
 * only after one of the molecule left, that is after the action.
 */
#define H2O_MAX_ATOMS	96

struct h2o {
	gs_sem *h_sem, *o_sem;
	gs_barrier *b;
	int nh;			/* ids 0..nh-1 are H, the rest O */
	atomic_int h_in, o_in;	/* atoms in the molecule being built */
	atomic_int h_ids[2], o_id;
	atomic_int molecules;
	atomic_int mol_of[H2O_MAX_ATOMS];	/* molecule + 1 */
	atomic_int uses[H2O_MAX_ATOMS];
	atomic_int bad;
	atomic_int errors;
	atomic_int first_error;
};

static int h2o_action(void *p)
{
	struct h2o *w = p;
	int m = atomic_load(&w->molecules);
	int h0 = atomic_load(&w->h_ids[0]), h1 = atomic_load(&w->h_ids[1]);
	int o = atomic_load(&w->o_id);

	if (atomic_load(&w->h_in) != 2 || atomic_load(&w->o_in) != 1 ||
	    h0 < 0 || h0 >= w->nh || h1 < 0 || h1 >= w->nh || h0 == h1 ||
	    o < w->nh || o >= H2O_MAX_ATOMS) {
		atomic_fetch_add(&w->bad, 1);
	} else {
		atomic_fetch_add(&w->uses[h0], 1);
		atomic_fetch_add(&w->uses[h1], 1);
		atomic_fetch_add(&w->uses[o], 1);
		atomic_store(&w->mol_of[h0], m + 1);
		atomic_store(&w->mol_of[h1], m + 1);
		atomic_store(&w->mol_of[o], m + 1);
	}
	atomic_store(&w->h_ids[0], -1);
	atomic_store(&w->h_ids[1], -1);
	atomic_store(&w->o_id, -1);
	atomic_store(&w->h_in, 0);
	atomic_store(&w->o_in, 0);
	atomic_fetch_add(&w->molecules, 1);
	return 0;
}

struct atom {
	struct h2o *w;
	int id;
	pthread_t thread;
};

static void h2o_error(struct h2o *w, int err)
{
	int zero = 0;

	atomic_fetch_add(&w->errors, 1);
	atomic_compare_exchange_strong(&w->first_error, &zero, err);
}

static void *atom_main(void *p)
{
	struct atom *a = p;
	struct h2o *w = a->w;
	bool hydrogen = a->id < w->nh;
	gs_sem *s = hydrogen ? w->h_sem : w->o_sem;
	int ret, i;

	ret = gs_sem_acquire_until(s, 1, gs_deadline_in(LIMIT_NS), 0);
	if (ret) {
		h2o_error(w, ret);
		return NULL;
	}
	if (hydrogen) {
		i = atomic_fetch_add(&w->h_in, 1);
		if (i < 2)
			atomic_store(&w->h_ids[i], a->id);
		else
			atomic_fetch_add(&w->bad, 1);
	} else {
		i = atomic_fetch_add(&w->o_in, 1);
		if (i < 1)
			atomic_store(&w->o_id, a->id);
		else
			atomic_fetch_add(&w->bad, 1);
	}
	ret = gs_barrier_await_until(w->b, gs_deadline_in(LIMIT_NS), 0);
	if (ret)
		h2o_error(w, ret);
	ret = gs_sem_release(s, 1);
	if (ret)
		h2o_error(w, ret);
	return NULL;
}

/* Run the @n atoms @ids as threads of this process. */
static int h2o_atoms(struct h2o *w, const int *ids, int n)
{
	struct atom atoms[H2O_MAX_ATOMS];
	int started = 0, ret = 0;

	for (int i = 0; i < n; i++) {
		atoms[i] = (struct atom){ .w = w, .id = ids[i] };
		if (start_thread(&atoms[i].thread, atom_main, &atoms[i])) {
			ret = 2;
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(atoms[i].thread, NULL);
	return ret;
}

static struct h2o *h2o_new(int nh)
{
	struct h2o *w = shared_alloc(sizeof(*w));

	if (!w)
		return NULL;
	w->nh = nh;
	for (int i = 0; i < 2; i++)
		atomic_store(&w->h_ids[i], -1);
	atomic_store(&w->o_id, -1);
	if (gs_sem_create(&w->h_sem, 2) || gs_sem_create(&w->o_sem, 1) ||
	    gs_barrier_create(&w->b, 3, h2o_action, w))
		return NULL;
	return w;
}

static void h2o_check(struct __test_metadata *_metadata, struct h2o *w,
		      int nh, int no)
{
	int unused = 0, reused = 0, bad_mol = 0;

	EXPECT_EQ(0, atomic_load(&w->errors))
		TH_LOG("first error %d", atomic_load(&w->first_error));
	EXPECT_EQ(0, atomic_load(&w->bad));
	EXPECT_EQ(no, atomic_load(&w->molecules));
	for (int i = 0; i < nh + no; i++) {
		unused += atomic_load(&w->uses[i]) == 0;
		reused += atomic_load(&w->uses[i]) > 1;
	}
	EXPECT_EQ(0, unused);
	EXPECT_EQ(0, reused);
	for (int m = 1; m <= no; m++) {
		int h = 0, o = 0;

		for (int i = 0; i < nh + no; i++) {
			if (atomic_load(&w->mol_of[i]) != m)
				continue;
			if (i < nh)
				h++;
			else
				o++;
		}
		bad_mol += h != 2 || o != 1;
	}
	EXPECT_EQ(0, bad_mol);
	EXPECT_FALSE(gs_barrier_broken(w->b));
	EXPECT_EQ(0, gs_barrier_waiting(w->b));
	EXPECT_EQ(0, gs_sem_try_acquire(w->h_sem, 2));	/* all permits back */
	EXPECT_EQ(0, gs_sem_try_acquire(w->o_sem, 1));
	gs_sem_destroy(w->h_sem);
	gs_sem_destroy(w->o_sem);
	gs_barrier_destroy(w->b);
	munmap(w, sizeof(*w));
}

TEST(h2o_threads_make_water)
{
	int ids[H2O_MAX_ATOMS], n = 0;
	struct h2o *w;

	w = h2o_new(60);
	ASSERT_NE(NULL, w);
	/* Interleave the elements' start order: O first now and then. */
	for (int i = 0; i < 30; i++) {
		if (i % 3 == 0)
			ids[n++] = 60 + i;
		ids[n++] = 2 * i;
		ids[n++] = 2 * i + 1;
		if (i % 3 != 0)
			ids[n++] = 60 + i;
	}
	ASSERT_EQ(90, n);
	EXPECT_EQ(0, h2o_atoms(w, ids, n));
	h2o_check(_metadata, w, 60, 30);
}

TEST(h2o_processes_make_water)
{
	pid_t pid[3];
	struct h2o *w;

	/* Three processes of 8 H and 4 O threads each: 12 molecules. */
	w = h2o_new(24);
	ASSERT_NE(NULL, w);
	for (int p = 0; p < 3; p++) {
		pid[p] = fork_child();
		ASSERT_LE(0, pid[p]);
		if (pid[p] == 0) {
			int ids[12], n = 0;

			for (int i = 0; i < 8; i++)
				ids[n++] = p * 8 + i;
			for (int i = 0; i < 4; i++)
				ids[n++] = 24 + p * 4 + i;
			_exit(h2o_atoms(w, ids, n));
		}
	}
	for (int p = 0; p < 3; p++) {
		int status = -1;

		EXPECT_EQ(0, wait_child(pid[p], &status, 2 * WAIT_LIMIT_MS));
		EXPECT_EQ(0, status) TH_LOG("process %d", p);
	}
	h2o_check(_metadata, w, 24, 12);
}

/*
 * A party killed while parked inside await breaks the round for the
 * others (GOSYNC_LOT_PARK_BREAK): they get -EPIPE at once, not at their
 * deadline; a reset makes the barrier usable again.
 */
TEST(barrier_party_killed_in_await_breaks_the_round)
{
	struct report *rep = report_new();
	pid_t victim, other;
	gs_barrier *b;
	int status = 0, fd;

	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_barrier_create(&b, 3, NULL, NULL));
	fd = gs_barrier_fd(b);
	victim = fork_child();
	ASSERT_LE(0, victim);
	if (victim == 0) {
		gs_barrier_await(b);
		_exit(3);	/* must not get here */
	}
	other = fork_child();
	ASSERT_LE(0, other);
	if (other == 0) {
		uint64_t t0 = mono_ns();
		/* A far deadline: the break, not the deadline, must end it. */
		int ret = gs_barrier_await_until(b,
				gs_deadline_in(10ULL * WAIT_LIMIT_MS * NS_PER_MS), 0);

		CHILD_CHECK_EXIT(rep, ret == -EPIPE, "await: %d", ret);
		CHILD_CHECK_EXIT(rep, ms_since(t0) < WAIT_LIMIT_MS,
				 "took %llu ms", (unsigned long long)ms_since(t0));
		_exit(0);
	}
	ASSERT_EQ(0, wait_parked(fd, 2));
	EXPECT_FALSE(gs_barrier_broken(b));
	ASSERT_EQ(0, kill(victim, SIGKILL));
	ASSERT_EQ(victim, waitpid(victim, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_CHILD_OK(other, rep);
	EXPECT_TRUE(gs_barrier_broken(b));
	EXPECT_EQ(-EPIPE, gs_barrier_await(b));
	ASSERT_EQ(0, gs_barrier_reset(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(0, gs_barrier_waiting(b));
	/* A round whose waiter was killed after it passed breaks nothing. */
	gs_barrier_destroy(b);
	ASSERT_EQ(0, gs_barrier_create(&b, 1, NULL, NULL));
	EXPECT_EQ(0, gs_barrier_await(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	gs_barrier_destroy(b);
}

TEST(lot_park_break_flag_errnos)
{
	struct gosync_lot_create c = { .kind = GOSYNC_LOT_PLAIN };
	struct gosync_lot_park p = {
		.index = 0, .flags = GOSYNC_LOT_PARK_BREAK, .mask = 1,
		.expected = 1, .deadline = 0, .reserved = 64,
	};
	int dev = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC), fd;

	ASSERT_LE(0, dev);
	fd = xioctl(dev, GOSYNC_IOC_LOT_CREATE, &c);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_PARK, &p));
	p.reserved = 63;
	EXPECT_EQ(-EAGAIN, xioctl(fd, GOSYNC_IOC_LOT_PARK, &p));
	p.expected = 0;
	EXPECT_EQ(-ETIMEDOUT, xioctl(fd, GOSYNC_IOC_LOT_PARK, &p));
	p.flags = 0;
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_PARK, &p));
	close(fd);
	close(dev);
}

/* ================================================================== */
/* 6. Parties that die (GOSYNC_FEATURE_LOT_PARTIES)                     */
/*
 * A WaitGroup party's share is undone, and the group broken, when its
 * process dies (SIGKILL, exit, exec) or closes its last fd of the group
 * with the share outstanding; a barrier party that dies inside await
 * breaks the round. Processes that die with nothing outstanding break
 * nothing.
 */

static bool parties_supported(void)
{
	int64_t f = gs_features();

	return f >= 0 && (f & GOSYNC_FEATURE_LOT_PARTIES);
}

#define SKIP_WITHOUT_PARTIES() do {					\
	if (!parties_supported())					\
		SKIP(return, "no GOSYNC_FEATURE_LOT_PARTIES");		\
} while (0)

/* A raw lot of @kind (its fd), or a negative errno. */
static int raw_lot(uint32_t kind, uint64_t param)
{
	struct gosync_lot_create c = { .kind = kind, .param = param };
	int dev = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC), fd;

	if (dev < 0)
		return -errno;
	fd = xioctl(dev, GOSYNC_IOC_LOT_CREATE, &c);
	close(dev);
	return fd;
}

/* Word 0 of the lot @fd, mapped (MAP_SHARED), or NULL. */
static _Atomic uint64_t *lot_words(int fd)
{
	void *p = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE),
		       PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void lot_words_unmap(_Atomic uint64_t *w)
{
	munmap((void *)w, (size_t)sysconf(_SC_PAGESIZE));
}

/* Wait until *@w == @want: 0, or -ETIMEDOUT after WAIT_LIMIT_MS. */
static int word_becomes(_Atomic uint64_t *w, uint64_t want)
{
	uint64_t t0 = mono_ns();

	while (atomic_load(w) != want) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

static int raw_wg_add(int fd, uint32_t flags, uint32_t reserved,
		      int64_t delta)
{
	struct gosync_lot_wg_add a = {
		.flags = flags, .reserved = reserved, .delta = delta,
	};

	return xioctl(fd, GOSYNC_IOC_LOT_WG_ADD, &a);
}

static int raw_arrive(int fd, uint32_t flags, uint64_t deadline,
		      uint64_t round)
{
	struct gosync_lot_arrive a = {
		.flags = flags, .deadline = deadline, .round = round,
	};

	return xioctl(fd, GOSYNC_IOC_LOT_ARRIVE, &a);
}

/* SIGKILL @pid and reap it (bounded); expect it died of the signal. */
static void kill_reap(struct __test_metadata *_metadata, pid_t pid)
{
	int status = 0;

	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("status %#x", status);
}

/*
 * Wait until @wg's counter is @count and gs_waitgroup_broken() says
 * @broken (a death's undo may land just after the reap; its ioctl or
 * close has returned, but the test does not rely on that): 0, or
 * -ETIMEDOUT after WAIT_LIMIT_MS.
 */
static int wg_settles(gs_waitgroup *wg, int64_t count, bool broken)
{
	uint64_t t0 = mono_ns();

	while (gs_waitgroup_count(wg) != count ||
	       gs_waitgroup_broken(wg) != broken) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

/* Then a Wait cannot block for good (the test stops here otherwise). */
#define ASSERT_WG(wg, count_, broken_)					\
	ASSERT_EQ(0, wg_settles((wg), (count_), (broken_)))		\
		TH_LOG("count %jd broken %d, want %jd %d",		\
		       (intmax_t)gs_waitgroup_count(wg),		\
		       gs_waitgroup_broken(wg), (intmax_t)(count_),	\
		       (int)(broken_))

/*
 * What a forked WaitGroup party does: add_undo(@add_undo), adopt(@adopt),
 * add(@add) (each if nonzero), @done_undo times done_undo(), then checks
 * its share and ends as @end says; with @open, it first trades the
 * parent's handle for one it opens by that name. It tells it is at its
 * end with one byte on a pipe (see wg_party_ready()).
 */
enum wg_party_end {
	PARTY_EXIT,		/* _exit(0) */
	PARTY_PAUSE,		/* waits to be killed */
	PARTY_EXEC,		/* execs this binary (the fd is O_CLOEXEC) */
	PARTY_EXEC_KEEP_FD,	/* the same, keeping the group's fd open */
	PARTY_CLOSE,		/* closes its only fd of the group, waits */
	PARTY_CLOSE_DUP,	/* closes one of two fds of the group, waits */
	PARTY_CLOSE_REOPENED,	/* with @open: closes one of two opens */
};

struct wg_party {
	int64_t add_undo, adopt, add;
	int done_undo;
	enum wg_party_end end;
	const char *open;	/* a name: use only a handle opened by it */
};

static void wg_party_main(gs_waitgroup *wg, const struct wg_party *p,
		       struct report *rep, int ready)
{
	int64_t share, want = p->add_undo + p->adopt - p->done_undo;
	int fd, ret, fd2;
	char v[16];

	if (p->open) {
		gs_waitgroup *own = NULL;

		ret = gs_waitgroup_open(&own, p->open, 0, 0);
		CHILD_CHECK_EXIT(rep, ret == 0, "open %s: %d", p->open, ret);
		gs_waitgroup_destroy(wg);	/* the parent's */
		wg = own;
	}
	fd = gs_waitgroup_fd(wg);
	share = gs_waitgroup_share(wg);
	CHILD_CHECK_EXIT(rep, share == 0, "share after fork: %jd",
			 (intmax_t)share);
	if (p->add_undo) {
		ret = gs_waitgroup_add_undo(wg, p->add_undo);
		CHILD_CHECK_EXIT(rep, ret == 0, "add_undo: %d", ret);
	}
	if (p->adopt) {
		ret = gs_waitgroup_adopt(wg, p->adopt);
		CHILD_CHECK_EXIT(rep, ret == 0, "adopt: %d", ret);
	}
	if (p->add) {
		ret = gs_waitgroup_add(wg, p->add);
		CHILD_CHECK_EXIT(rep, ret == 0, "add: %d", ret);
	}
	for (int i = 0; i < p->done_undo; i++) {
		ret = gs_waitgroup_done_undo(wg);
		CHILD_CHECK_EXIT(rep, ret == 0, "done_undo: %d", ret);
	}
	share = gs_waitgroup_share(wg);
	CHILD_CHECK_EXIT(rep, share == want, "share %jd, want %jd",
			 (intmax_t)share, (intmax_t)want);
	switch (p->end) {
	case PARTY_EXIT:
		if (write(ready, "r", 1) != 1)
			_exit(14);
		_exit(0);
	case PARTY_PAUSE:
		break;
	case PARTY_EXEC:
	case PARTY_EXEC_KEEP_FD:
		if (p->end == PARTY_EXEC_KEEP_FD)
			CHILD_CHECK_EXIT(rep, fcntl(fd, F_SETFD, 0) == 0,
					 "F_SETFD: %s", strerror(errno));
		CHILD_CHECK_EXIT(rep, fcntl(ready, F_SETFD, 0) == 0,
				 "F_SETFD: %s", strerror(errno));
		snprintf(v, sizeof(v), "%d", ready);
		setenv(EXEC_IMAGE_ENV, v, 1);
		execl("/proc/self/exe", "party-exec", (char *)NULL);
		_exit(13);
	case PARTY_CLOSE:
		gs_waitgroup_destroy(wg);
		break;
	case PARTY_CLOSE_DUP:
	case PARTY_CLOSE_REOPENED:
		if (p->end == PARTY_CLOSE_DUP) {
			fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			CHILD_CHECK_EXIT(rep, fd2 >= 0, "dup: %s",
					 strerror(errno));
			gs_waitgroup_destroy(wg);
			ret = gs_waitgroup_from_fd(&wg, fd2);
			CHILD_CHECK_EXIT(rep, ret == 0, "from_fd: %d", ret);
		} else {
			gs_waitgroup *again = NULL;

			ret = gs_waitgroup_open(&again, p->open, 0, 0);
			CHILD_CHECK_EXIT(rep, ret == 0, "open again: %d", ret);
			gs_waitgroup_destroy(wg);
			wg = again;
		}
		share = gs_waitgroup_share(wg);
		CHILD_CHECK_EXIT(rep, share == want,
				 "share after closing one fd: %jd",
				 (intmax_t)share);
		break;
	}
	if (write(ready, "r", 1) != 1)
		_exit(14);
	for (;;)
		pause();
}

/* Fork a party (struct wg_party); *@ready: its pipe, for wg_party_ready(). */
static pid_t wg_party_start(gs_waitgroup *wg, const struct wg_party *p,
			 struct report *rep, int *ready)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	pid = fork_child();
	if (pid == 0) {
		close(pfd[0]);
		wg_party_main(wg, p, rep, pfd[1]);
	}
	close(pfd[1]);
	if (pid < 0)
		close(pfd[0]);
	*ready = pfd[0];
	return pid;
}

/*
 * Wait (bounded) for the party's byte, then close the pipe: the byte
 * ('r', or 'e' from the exec'd image), -EPIPE if it died first, or
 * -ETIMEDOUT.
 */
static int wg_party_ready(int fd)
{
	uint64_t t0 = mono_ns();
	char c;
	ssize_t n;
	int ret;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		n = read(fd, &c, 1);
		if (n == 1) {
			ret = c;
			break;
		}
		if (n == 0) {
			ret = -EPIPE;
			break;
		}
		if (ms_since(t0) > WAIT_LIMIT_MS) {
			ret = -ETIMEDOUT;
			break;
		}
		usleep(200);
	}
	close(fd);
	return ret;
}

static void *done_undo_thread(void *wg)
{
	return (void *)(intptr_t)gs_waitgroup_done_undo(wg);
}

TEST(waitgroup_undo_share_accounting)
{
	struct report *rep = report_new();
	gs_waitgroup *wg = NULL;
	void *thr_ret;
	pthread_t thr;
	pid_t pid;

	SKIP_WITHOUT_PARTIES();
	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	EXPECT_EQ(0, gs_waitgroup_share(wg));

	/* add_undo and done_undo move the counter and the share together. */
	ASSERT_EQ(0, gs_waitgroup_add_undo(wg, 3));
	EXPECT_EQ(3, gs_waitgroup_share(wg));
	EXPECT_EQ(3, gs_waitgroup_count(wg));
	EXPECT_EQ(-EPERM, gs_waitgroup_add_undo(wg, -4));
	EXPECT_EQ(3, gs_waitgroup_share(wg));
	EXPECT_EQ(3, gs_waitgroup_count(wg));
	for (int i = 2; i >= 0; i--) {
		EXPECT_EQ(0, gs_waitgroup_done_undo(wg));
		EXPECT_EQ(i, gs_waitgroup_share(wg));
		EXPECT_EQ(i, gs_waitgroup_count(wg));
	}
	/* The share is the process's: another thread gives it back. */
	ASSERT_EQ(0, gs_waitgroup_add_undo(wg, 1));
	ASSERT_EQ(0, start_thread(&thr, done_undo_thread, wg));
	ASSERT_EQ(0, pthread_join(thr, &thr_ret));
	EXPECT_EQ(0, (int)(intptr_t)thr_ret);
	EXPECT_EQ(0, gs_waitgroup_share(wg));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	/* A Done beyond the share is refused, even with a counter left. */
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	EXPECT_EQ(-EPERM, gs_waitgroup_done_undo(wg));
	EXPECT_EQ(1, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_share(wg));
	ASSERT_EQ(0, gs_waitgroup_done(wg));

	/* Adopt takes over what a plain Add added, never more. */
	ASSERT_EQ(0, gs_waitgroup_add(wg, 2));
	EXPECT_EQ(0, gs_waitgroup_adopt(wg, 2));
	EXPECT_EQ(2, gs_waitgroup_share(wg));
	EXPECT_EQ(2, gs_waitgroup_count(wg));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_adopt(wg, 1));
	EXPECT_EQ(-EINVAL, gs_waitgroup_adopt(wg, 0));
	EXPECT_EQ(-EINVAL, gs_waitgroup_adopt(wg, -1));
	EXPECT_EQ(2, gs_waitgroup_share(wg));
	EXPECT_EQ(2, gs_waitgroup_count(wg));

	/* A child starts with no share, nor room to adopt one. */
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int64_t share = gs_waitgroup_share(wg);
		int ret;

		CHILD_CHECK_EXIT(rep, share == 0, "child's share %jd",
				 (intmax_t)share);
		ret = gs_waitgroup_adopt(wg, 1);
		CHILD_CHECK_EXIT(rep, ret == -EOVERFLOW, "adopt: %d", ret);
		ret = gs_waitgroup_done_undo(wg);
		CHILD_CHECK_EXIT(rep, ret == -EPERM, "done_undo: %d", ret);
		CHILD_CHECK_EXIT(rep, gs_waitgroup_count(wg) == 2, "count %jd",
				 (intmax_t)gs_waitgroup_count(wg));
		_exit(0);
	}
	EXPECT_CHILD_OK(pid, rep);
	EXPECT_EQ(2, gs_waitgroup_share(wg));
	ASSERT_WG(wg, 2, false);
	EXPECT_EQ(0, gs_waitgroup_done_undo(wg));
	EXPECT_EQ(0, gs_waitgroup_done_undo(wg));
	EXPECT_EQ(0, gs_waitgroup_share(wg));
	EXPECT_EQ(0, gs_waitgroup_count(wg));

	/* The counter's limit holds for add_undo: nothing changes. */
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add_undo(wg, WG_MAX + 1));
	EXPECT_EQ(0, gs_waitgroup_share(wg));
	EXPECT_EQ(0, gs_waitgroup_count(wg));
	ASSERT_EQ(0, gs_waitgroup_add_undo(wg, WG_MAX));
	EXPECT_EQ(WG_MAX, gs_waitgroup_share(wg));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add_undo(wg, 1));
	EXPECT_EQ(-EOVERFLOW, gs_waitgroup_add(wg, 1));
	EXPECT_EQ(WG_MAX, gs_waitgroup_share(wg));
	EXPECT_EQ(WG_MAX, gs_waitgroup_count(wg));
	EXPECT_FALSE(gs_waitgroup_broken(wg));
	EXPECT_EQ(0, gs_waitgroup_add_undo(wg, -WG_MAX));
	EXPECT_EQ(0, gs_waitgroup_share(wg));
	ASSERT_EQ(0, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_wait(wg));
	EXPECT_EQ(-EINVAL, gs_waitgroup_recover(wg));
	gs_waitgroup_destroy(wg);
}

/* A waiter of a group whose party will be killed. */
static int wg_dead_waiter(gs_waitgroup *wg, struct report *rep, bool until)
{
	uint64_t t0 = mono_ns();
	int ret;

	/* A far deadline: the death, not the deadline, must end it. */
	ret = until ? gs_waitgroup_wait_until(wg,
			gs_deadline_in(10 * LIMIT_NS), 0) :
		      gs_waitgroup_wait(wg);
	CHILD_CHECK(rep, ret == -EOWNERDEAD, "wait: %d", ret);
	CHILD_CHECK(rep, ms_since(t0) < WAIT_LIMIT_MS, "took %ju ms",
		    (uintmax_t)ms_since(t0));
	CHILD_CHECK(rep, gs_waitgroup_broken(wg), "not broken");
	ret = gs_waitgroup_wait(wg);
	CHILD_CHECK(rep, ret == -EOWNERDEAD, "wait again: %d", ret);
	return 0;
}

TEST(waitgroup_sigkill_with_share_breaks_waiters)
{
	struct report *rep[3];
	gs_waitgroup *wg = NULL;
	pid_t waiter[2], worker;
	int fd, ready, status;

	SKIP_WITHOUT_PARTIES();
	for (int i = 0; i < 3; i++) {
		rep[i] = report_new();
		ASSERT_NE(NULL, rep[i]);
	}
	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	fd = gs_waitgroup_fd(wg);
	/* The parent adds for its worker, which adopts it. */
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	worker = wg_party_start(wg, &(struct wg_party){ .adopt = 1,
							.end = PARTY_PAUSE },
				rep[2], &ready);
	ASSERT_LE(0, worker);
	ASSERT_EQ('r', wg_party_ready(ready));
	EXPECT_EQ(0, rep[2]->line) TH_LOG("worker: %s", rep[2]->msg);
	EXPECT_EQ(0, gs_waitgroup_share(wg));
	for (int i = 0; i < 2; i++) {
		waiter[i] = fork_child();
		ASSERT_LE(0, waiter[i]);
		if (waiter[i] == 0)
			_exit(wg_dead_waiter(wg, rep[i], i));
	}
	ASSERT_EQ(0, wait_parked(fd, 2));
	sleep_ms(20);
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(0, waitpid(waiter[i], &status, WNOHANG));
	}
	EXPECT_FALSE(gs_waitgroup_broken(wg));
	EXPECT_EQ(1, gs_waitgroup_count(wg));

	kill_reap(_metadata, worker);
	for (int i = 0; i < 2; i++) {
		EXPECT_CHILD_OK(waiter[i], rep[i]);
	}
	ASSERT_WG(wg, 0, true);
	EXPECT_EQ(0, parked_now(fd));
	EXPECT_EQ(-EOWNERDEAD, gs_waitgroup_wait(wg));
	EXPECT_EQ(-EOWNERDEAD,
		  gs_waitgroup_wait_until(wg, gs_deadline_in(LIMIT_NS), 0));
	EXPECT_EQ(-EOWNERDEAD, gs_waitgroup_wait_until(wg, 0, 0));

	/* Recovered, it waits for its counter again. */
	EXPECT_EQ(0, gs_waitgroup_recover(wg));
	EXPECT_FALSE(gs_waitgroup_broken(wg));
	EXPECT_EQ(0, gs_waitgroup_wait(wg));
	EXPECT_EQ(-EINVAL, gs_waitgroup_recover(wg));
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	EXPECT_EQ(-ETIMEDOUT,
		  gs_waitgroup_wait_until(wg, gs_deadline_in(20 * NS_PER_MS),
					  0));
	ASSERT_EQ(0, gs_waitgroup_done(wg));
	EXPECT_EQ(0, gs_waitgroup_wait(wg));
	gs_waitgroup_destroy(wg);
}

TEST(waitgroup_clean_exit_after_done_breaks_nothing)
{
	const struct wg_party given_back = {
		.add_undo = 1, .done_undo = 1, .end = PARTY_EXIT,
	}, adopted_back = {
		.adopt = 1, .done_undo = 1, .end = PARTY_PAUSE,
	}, plain = { .add = 1, .end = PARTY_PAUSE };
	struct report *rep = report_new();
	gs_waitgroup *wg = NULL;
	int ready, fd;
	pid_t pid;

	SKIP_WITHOUT_PARTIES();
	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_waitgroup_create(&wg));
	fd = gs_waitgroup_fd(wg);

	/* Its share given back, a party may exit. */
	pid = wg_party_start(wg, &given_back, rep, &ready);
	ASSERT_LE(0, pid);
	EXPECT_EQ('r', wg_party_ready(ready));
	EXPECT_CHILD_OK(pid, rep);
	sleep_ms(20);
	EXPECT_FALSE(gs_waitgroup_broken(wg));
	ASSERT_EQ(0, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_wait(wg));

	/* The same with a share taken over from the parent's Add. */
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	pid = wg_party_start(wg, &adopted_back, rep, &ready);
	ASSERT_LE(0, pid);
	EXPECT_EQ('r', wg_party_ready(ready));
	EXPECT_EQ(0, rep->line) TH_LOG("child: %s", rep->msg);
	kill_reap(_metadata, pid);
	sleep_ms(20);
	EXPECT_FALSE(gs_waitgroup_broken(wg));
	EXPECT_EQ(0, gs_waitgroup_count(wg));

	/* A plain Add is no share: its process dies, nothing is undone. */
	pid = wg_party_start(wg, &plain, rep, &ready);
	ASSERT_LE(0, pid);
	EXPECT_EQ('r', wg_party_ready(ready));
	EXPECT_EQ(0, rep->line) TH_LOG("child: %s", rep->msg);
	EXPECT_EQ(1, gs_waitgroup_count(wg));
	EXPECT_EQ(0, gs_waitgroup_share(wg));
	kill_reap(_metadata, pid);
	sleep_ms(20);
	EXPECT_FALSE(gs_waitgroup_broken(wg));
	EXPECT_EQ(1, gs_waitgroup_count(wg));
	EXPECT_EQ(-ETIMEDOUT,
		  gs_waitgroup_wait_until(wg, gs_deadline_in(20 * NS_PER_MS),
					  0));
	EXPECT_EQ(0, parked_now(fd));
	ASSERT_EQ(0, gs_waitgroup_done(wg));
	EXPECT_EQ(0, gs_waitgroup_wait(wg));
	EXPECT_FALSE(gs_waitgroup_broken(wg));
	gs_waitgroup_destroy(wg);
}

/*
 * A party with a share of 1 in a counter of 2 ends as @end says: the
 * group breaks and loses exactly the share, at its end or (PARTY_PAUSE,
 * PARTY_CLOSE_DUP) when it is killed, and only once. With @name, the
 * group is named, and the party opens it by name (its only handle).
 */
static void check_party_end(struct __test_metadata *_metadata,
			    enum wg_party_end end, const char *name)
{
	static const char *const what[] = {
		[PARTY_EXIT] = "exit", [PARTY_PAUSE] = "SIGKILL",
		[PARTY_EXEC] = "exec",
		[PARTY_EXEC_KEEP_FD] = "exec keeping the fd",
		[PARTY_CLOSE] = "close of the last fd",
		[PARTY_CLOSE_DUP] = "close of one of two fds",
		[PARTY_CLOSE_REOPENED] = "close of one of two opens",
	};
	bool exec = end == PARTY_EXEC || end == PARTY_EXEC_KEEP_FD;
	bool at_end = end != PARTY_PAUSE && end != PARTY_CLOSE_DUP &&
		      end != PARTY_CLOSE_REOPENED;
	struct wg_party p = { .add_undo = 2, .done_undo = 1, .end = end,
			      .open = name };
	struct report *rep = report_new();
	gs_waitgroup *wg = NULL;
	int ready;
	pid_t pid;

	ASSERT_NE(NULL, rep);
	TH_LOG("%s%s", what[end], name ? ", named" : "");
	if (name) {
		ASSERT_EQ(0, gs_waitgroup_open(&wg, name,
					       GS_O_CREAT | GS_O_EXCL, 0600));
	} else {
		ASSERT_EQ(0, gs_waitgroup_create(&wg));
	}
	ASSERT_EQ(0, gs_waitgroup_add(wg, 1));
	pid = wg_party_start(wg, &p, rep, &ready);
	ASSERT_LE(0, pid);
	EXPECT_EQ(exec ? 'e' : 'r', wg_party_ready(ready));
	EXPECT_EQ(0, rep->line) TH_LOG("child check at line %d: %s",
				       rep->line, rep->msg);
	/* The party has opened it: the handles outlive the name. */
	if (name) {
		EXPECT_EQ(0, gs_unlink(name));
	}
	if (end == PARTY_EXIT) {
		EXPECT_CHILD_OK(pid, rep);
		pid = 0;
	}
	if (at_end) {
		ASSERT_WG(wg, 1, true);
	} else {
		sleep_ms(20);
		EXPECT_FALSE(gs_waitgroup_broken(wg));
		EXPECT_EQ(2, gs_waitgroup_count(wg));
	}
	if (pid > 0) {
		/* Its share, if any is left, goes now, not twice. */
		kill_reap(_metadata, pid);
		ASSERT_WG(wg, 1, true);
	}
	EXPECT_EQ(-EOWNERDEAD, gs_waitgroup_wait(wg));
	EXPECT_EQ(0, gs_waitgroup_recover(wg));
	EXPECT_EQ(0, gs_waitgroup_done(wg));
	EXPECT_EQ(0, gs_waitgroup_wait(wg));
	gs_waitgroup_destroy(wg);
	munmap(rep, sizeof(*rep));
}

TEST(waitgroup_share_of_exec_and_close)
{
	static const enum wg_party_end ends[] = {
		PARTY_EXIT, PARTY_EXEC, PARTY_CLOSE, PARTY_CLOSE_DUP,
	};

	SKIP_WITHOUT_PARTIES();
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		check_party_end(_metadata, ends[i], NULL);
}

/* The exec itself ends the part, not the close of its O_CLOEXEC fds. */
TEST(waitgroup_exec_keeping_the_fd_breaks_the_group)
{
	SKIP_WITHOUT_PARTIES();
	check_party_end(_metadata, PARTY_EXEC_KEEP_FD, NULL);
}

/*
 * A name's handles are other files than the group's (one per open): the
 * same holds, and closing one of two opens is not closing the last.
 */
TEST(waitgroup_named_party_that_dies_breaks_the_group)
{
	static const enum wg_party_end ends[] = {
		PARTY_PAUSE, PARTY_EXIT, PARTY_CLOSE_DUP,
		PARTY_CLOSE_REOPENED, PARTY_CLOSE,
	};
	char name[64];

	SKIP_WITHOUT_PARTIES();
	snprintf(name, sizeof(name), "/wt-%d-wg", (int)getpid());
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		check_party_end(_metadata, ends[i], name);
}

/*
 * Stress: WGU_PROCS processes add_undo(1) and done_undo() in a loop
 * while a thread of the parent waits again and again; some stop and are
 * killed. Each records where it is (struct wgu_sh's state), so that the
 * parent knows after its death whether it surely held a share, surely
 * held none, or was inside a call.
 */
#define WGU_PROCS	8

enum { WGU_IDLE, WGU_ADDING, WGU_HOLDING, WGU_DOING };

struct wgu_sh {
	struct report rep[WGU_PROCS];
	atomic_int state[WGU_PROCS];
	atomic_int iter[WGU_PROCS];
	atomic_int paused[WGU_PROCS];	/* stopped at stop_at, waits */
	int stop_at[WGU_PROCS];		/* -1: never */
	int stop_holding[WGU_PROCS];	/* stop with a share */
	int iters;
	/* The parent's waiter thread. */
	gs_waitgroup *wg;
	atomic_int stop;
	atomic_int waits, ok, dead, ok_after_dead, other, other_ret;
};

static int wgu_party(struct wgu_sh *sh, int me)
{
	struct report *rep = &sh->rep[me];
	int64_t share;
	int ret;

	for (int i = 0; i < sh->iters; i++) {
		atomic_store(&sh->iter[me], i);
		atomic_store(&sh->state[me], WGU_ADDING);
		ret = gs_waitgroup_add_undo(sh->wg, 1);
		CHILD_CHECK(rep, ret == 0, "iteration %d add_undo: %d", i, ret);
		atomic_store(&sh->state[me], WGU_HOLDING);
		if (i == sh->stop_at[me] && sh->stop_holding[me]) {
			atomic_store(&sh->paused[me], 1);
			for (;;)
				pause();
		}
		if (i % 64 == 0) {
			share = gs_waitgroup_share(sh->wg);
			CHILD_CHECK(rep, share == 1, "iteration %d share %jd",
				    i, (intmax_t)share);
		}
		if (i % 3 == 0)
			sched_yield();
		atomic_store(&sh->state[me], WGU_DOING);
		ret = gs_waitgroup_done_undo(sh->wg);
		CHILD_CHECK(rep, ret == 0, "iteration %d done_undo: %d", i,
			    ret);
		atomic_store(&sh->state[me], WGU_IDLE);
		if (i == sh->stop_at[me]) {
			atomic_store(&sh->paused[me], 1);
			for (;;)
				pause();
		}
	}
	return 0;
}

static void *wgu_waiter(void *p)
{
	struct wgu_sh *sh = p;
	int ret;

	while (!atomic_load(&sh->stop)) {
		ret = gs_waitgroup_wait_until(sh->wg, limit(), 0);
		atomic_fetch_add(&sh->waits, 1);
		if (ret == 0) {
			atomic_fetch_add(&sh->ok, 1);
			if (atomic_load(&sh->dead))
				atomic_fetch_add(&sh->ok_after_dead, 1);
		} else if (ret == -EOWNERDEAD) {
			atomic_fetch_add(&sh->dead, 1);
		} else {
			atomic_fetch_add(&sh->other, 1);
			atomic_store(&sh->other_ret, ret);
		}
		usleep(100);
	}
	return NULL;
}

/*
 * One run: with @holding_deaths, process 0 stops holding its share and
 * processes 1..3 are killed wherever they are when they reach a random
 * iteration; without, processes 0..3 stop with no share, then are
 * killed. The others run to the end.
 */
static void check_wgu(struct __test_metadata *_metadata, bool holding_deaths)
{
	struct wgu_sh *sh = shared_alloc(sizeof(*sh));
	int kill_at[WGU_PROCS], death_state[WGU_PROCS];
	pid_t pid[WGU_PROCS];
	bool gone[WGU_PROCS] = { false }, held = false;
	uint64_t seed = mono_ns() | 1, t0;
	pthread_t waiter;
	int left = WGU_PROCS, status;

	ASSERT_NE(NULL, sh);
	TH_LOG("seed %ju, holding deaths %d", (uintmax_t)seed, holding_deaths);
	sh->iters = (int)gs_stress(2000, 200);
	ASSERT_EQ(0, gs_waitgroup_create(&sh->wg));
	for (int i = 0; i < WGU_PROCS; i++) {
		int at = (int)(rnd64(&seed) % (uint64_t)sh->iters);

		sh->stop_at[i] = -1;
		kill_at[i] = -1;
		death_state[i] = -1;
		if (i >= 4)
			continue;
		if (!holding_deaths || i == 0) {
			sh->stop_at[i] = at;
			sh->stop_holding[i] = holding_deaths;
		} else {
			kill_at[i] = at;
		}
	}
	ASSERT_EQ(0, start_thread(&waiter, wgu_waiter, sh));
	for (int i = 0; i < WGU_PROCS; i++) {
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0)
			_exit(wgu_party(sh, i));
	}
	t0 = mono_ns();
	while (left) {
		ASSERT_GT(RUN_LIMIT_MS, ms_since(t0)) TH_LOG("%d left", left);
		for (int i = 0; i < WGU_PROCS; i++) {
			if (gone[i])
				continue;
			if (atomic_load(&sh->paused[i]) ||
			    (kill_at[i] >= 0 &&
			     atomic_load(&sh->iter[i]) >= kill_at[i])) {
				kill(pid[i], SIGKILL);
				ASSERT_EQ(0, wait_child(pid[i], &status,
							WAIT_LIMIT_MS));
				death_state[i] = atomic_load(&sh->state[i]);
			} else if (waitpid(pid[i], &status, WNOHANG) !=
				   pid[i]) {
				continue;
			}
			gone[i] = true;
			left--;
			if (WIFEXITED(status)) {
				/* Ran to its end (a kill that came late). */
				EXPECT_EQ(0, WEXITSTATUS(status))
					TH_LOG("process %d: line %d: %s", i,
					       sh->rep[i].line, sh->rep[i].msg);
				death_state[i] = -1;
			} else {
				EXPECT_TRUE(WIFSIGNALED(status) &&
					    WTERMSIG(status) == SIGKILL)
					TH_LOG("process %d: status %#x", i,
					       status);
			}
		}
		usleep(200);
	}
	/*
	 * Process 0 surely died holding a share with @holding_deaths (and
	 * the random kills may have hit others inside one); without, every
	 * death came with no share.
	 */
	for (int i = 0; i < WGU_PROCS; i++) {
		EXPECT_EQ(0, sh->rep[i].line)
			TH_LOG("process %d: line %d: %s", i, sh->rep[i].line,
			       sh->rep[i].msg);
		if (death_state[i] == WGU_HOLDING)
			held = true;
		if (!holding_deaths) {
			EXPECT_TRUE(death_state[i] == -1 ||
				    death_state[i] == WGU_IDLE)
				TH_LOG("process %d died in state %d", i,
				       death_state[i]);
		}
	}
	EXPECT_EQ(holding_deaths, held);
	/* Every share is gone, given back or undone: nothing is stuck. */
	ASSERT_WG(sh->wg, 0, held);
	if (held) {	/* the waiter sees the break before it stops */
		EXPECT_EQ(0, wait_atomic_ge(&sh->dead, 1));
	}
	atomic_store(&sh->stop, 1);
	ASSERT_EQ(0, join_ms(waiter, WAIT_LIMIT_MS));
	TH_LOG("%d waits: %d returned 0, %d -EOWNERDEAD",
	       atomic_load(&sh->waits), atomic_load(&sh->ok),
	       atomic_load(&sh->dead));
	EXPECT_EQ(0, atomic_load(&sh->other))
		TH_LOG("a wait returned %d", atomic_load(&sh->other_ret));
	EXPECT_EQ(0, atomic_load(&sh->ok_after_dead));
	if (held) {
		EXPECT_EQ(-EOWNERDEAD, gs_waitgroup_wait(sh->wg));
		EXPECT_EQ(0, gs_waitgroup_recover(sh->wg));
	} else {
		EXPECT_EQ(0, atomic_load(&sh->dead));
	}
	EXPECT_EQ(0, gs_waitgroup_wait(sh->wg));
	EXPECT_EQ(0, gs_waitgroup_count(sh->wg));
	gs_waitgroup_destroy(sh->wg);
	munmap(sh, sizeof(*sh));
}

TEST(waitgroup_undo_stress_processes)
{
	SKIP_WITHOUT_PARTIES();
	check_wgu(_metadata, false);
	check_wgu(_metadata, true);
}

/* Barrier parties that die. */
struct bdie_sh {
	struct report rep;
	atomic_int ready;
	atomic_int in_action;
};

static int pause_action(void *p)
{
	struct bdie_sh *sh = p;

	atomic_store(&sh->in_action, 1);
	for (;;)
		pause();
	return 0;
}

/* After a round broke: broken, -EPIPE, and usable again after a reset. */
static void check_reset_after_break(struct __test_metadata *_metadata,
				    gs_barrier *b)
{
	struct waiter w[2];
	uint32_t parties = gs_barrier_parties(b);

	ASSERT_TRUE(gs_barrier_broken(b));
	EXPECT_EQ(-EPIPE, gs_barrier_await(b));
	ASSERT_EQ(0, gs_barrier_reset(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(0, gs_barrier_waiting(b));
	ASSERT_GE(3, parties);
	ASSERT_EQ(0, start_awaiters(w, (int)parties - 1, b));
	EXPECT_EQ(0, gs_barrier_await_until(b, limit(), 0));
	for (uint32_t i = 0; i + 1 < parties; i++) {
		ASSERT_TRUE(waiter_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(0, w[i].ret);
	}
	EXPECT_FALSE(gs_barrier_broken(b));
}

TEST(barrier_party_killed_before_park_breaks_the_round)
{
	struct bdie_sh *sh = shared_alloc(sizeof(*sh));
	gs_barrier *b = NULL;
	struct waiter w;
	int fd;
	pid_t pid;

	SKIP_WITHOUT_PARTIES();
	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_barrier_create(&b, 3, NULL, NULL));
	fd = gs_barrier_fd(b);
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Arrives, and stops on its way to the park. */
		uint64_t t0 = mono_ns();
		int ret = raw_arrive(fd, 0, 0, 0);

		CHILD_CHECK_EXIT(&sh->rep, ret == -ETIMEDOUT, "arrive: %d",
				 ret);
		CHILD_CHECK_EXIT(&sh->rep, ms_since(t0) < WAIT_LIMIT_MS,
				 "took %ju ms", (uintmax_t)ms_since(t0));
		atomic_store(&sh->ready, 1);
		for (;;)
			pause();
	}
	ASSERT_EQ(0, wait_atomic_ge(&sh->ready, 1));
	EXPECT_EQ(0, sh->rep.line) TH_LOG("child: %s", sh->rep.msg);
	EXPECT_EQ(1, gs_barrier_waiting(b));
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(0, parked_now(fd));
	/* A far deadline: the death, not the deadline, must end it. */
	ASSERT_EQ(0, waiter_start_dl(&w, OP_BARRIER_AWAIT_UNTIL, b, NULL,
				     NULL, gs_deadline_in(10 * LIMIT_NS), 0));
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_EQ(2, gs_barrier_waiting(b));
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.done));
	kill_reap(_metadata, pid);
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(-EPIPE, w.ret);
	check_reset_after_break(_metadata, b);
	gs_barrier_destroy(b);
	munmap(sh, sizeof(*sh));
}

/*
 * A last arriver that ends the round and dies before its wake-up (its
 * steps done by hand, as libgosync's barrier_end_round() does them: the
 * outcome recorded in the round's slot of the ring at word 8, then the
 * compare-and-swap to the next round, then _exit): the party parked in
 * the round must be woken by the dead party's undo and pass (0), not
 * sleep for ever on a round that is over.
 */
TEST(barrier_last_arriver_dies_between_ending_the_round_and_its_wake)
{
	const uint64_t shift = GOSYNC_BARRIER_ROUND_SHIFT;
	struct bdie_sh *sh = shared_alloc(sizeof(*sh));
	gs_barrier *b = NULL;
	_Atomic uint64_t *word;
	struct waiter w;
	int fd;
	pid_t pid;

	SKIP_WITHOUT_PARTIES();
	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_barrier_create(&b, 2, NULL, NULL));
	fd = gs_barrier_fd(b);
	ASSERT_NE(NULL, word = lot_words(fd));
	ASSERT_EQ(0, waiter_start_dl(&w, OP_BARRIER_AWAIT_UNTIL, b, NULL,
				     NULL, gs_deadline_in(10 * LIMIT_NS), 0));
	ASSERT_EQ(0, wait_parked(fd, 1));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t state = atomic_load(word);
		uint64_t round = state >> shift;
		int ret = raw_arrive(fd, 0, GOSYNC_DEADLINE_NONE, round);

		CHILD_CHECK_EXIT(&sh->rep, ret == 1, "arrive: %d", ret);
		atomic_store(&word[8 + round % 256], (round + 1) << 1);
		state = atomic_load(word);
		CHILD_CHECK_EXIT(&sh->rep,
				 atomic_compare_exchange_strong(word, &state,
						(round + 1) << shift),
				 "end the round: %#jx", (uintmax_t)state);
		_exit(0);
	}
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(0, sh->rep.line) TH_LOG("child: %s", sh->rep.msg);
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(0, w.ret);
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(0, gs_barrier_waiting(b));
	lot_words_unmap(word);
	gs_barrier_destroy(b);
	munmap(sh, sizeof(*sh));
}

TEST(barrier_party_killed_in_action_breaks_the_round)
{
	struct bdie_sh *sh = shared_alloc(sizeof(*sh));
	gs_barrier *b = NULL;
	struct waiter w;
	int fd;
	pid_t pid;

	SKIP_WITHOUT_PARTIES();
	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_barrier_create(&b, 2, NULL, NULL));
	fd = gs_barrier_fd(b);
	ASSERT_EQ(0, waiter_start_dl(&w, OP_BARRIER_AWAIT_UNTIL, b, NULL,
				     NULL, gs_deadline_in(10 * LIMIT_NS), 0));
	ASSERT_EQ(0, wait_parked(fd, 1));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* The last arriver: its action never returns. */
		int ret;

		gs_barrier_set_action(b, pause_action, sh);
		ret = gs_barrier_await(b);
		CHILD_CHECK_EXIT(&sh->rep, 0, "await returned %d", ret);
	}
	ASSERT_EQ(0, wait_atomic_ge(&sh->in_action, 1));
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.done));
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(2, gs_barrier_waiting(b));
	kill_reap(_metadata, pid);
	EXPECT_EQ(0, sh->rep.line) TH_LOG("child: %s", sh->rep.msg);
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(-EPIPE, w.ret);
	check_reset_after_break(_metadata, b);
	gs_barrier_destroy(b);
	munmap(sh, sizeof(*sh));
}

/* A barrier opened by name: its party's death breaks the round too. */
TEST(barrier_named_party_killed_in_await_breaks_the_round)
{
	struct bdie_sh *sh = shared_alloc(sizeof(*sh));
	gs_barrier *b = NULL;
	struct waiter w;
	char name[64];
	pid_t pid;
	int fd;

	SKIP_WITHOUT_PARTIES();
	ASSERT_NE(NULL, sh);
	snprintf(name, sizeof(name), "/wt-%d-bar", (int)getpid());
	ASSERT_EQ(0, gs_barrier_open(&b, name, GS_O_CREAT | GS_O_EXCL, 0600,
				     3));
	fd = gs_barrier_fd(b);
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_barrier *own = NULL;
		int ret = gs_barrier_open(&own, name, 0, 0, 3);

		CHILD_CHECK_EXIT(&sh->rep, ret == 0, "open: %d", ret);
		gs_barrier_destroy(b);	/* the parent's */
		ret = gs_barrier_await(own);
		CHILD_CHECK_EXIT(&sh->rep, 0, "await returned %d", ret);
	}
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_EQ(0, gs_unlink(name));	/* the child has opened it */
	ASSERT_EQ(0, waiter_start_dl(&w, OP_BARRIER_AWAIT_UNTIL, b, NULL,
				     NULL, gs_deadline_in(10 * LIMIT_NS), 0));
	ASSERT_EQ(0, wait_parked(fd, 2));
	EXPECT_FALSE(gs_barrier_broken(b));
	kill_reap(_metadata, pid);
	EXPECT_EQ(0, sh->rep.line) TH_LOG("child: %s", sh->rep.msg);
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(-EPIPE, w.ret);
	check_reset_after_break(_metadata, b);
	gs_barrier_destroy(b);
	munmap(sh, sizeof(*sh));
}

TEST(barrier_arrive_errnos)
{
	const uint64_t r5 = 5, round = r5 << GOSYNC_BARRIER_ROUND_SHIFT;
	struct report *rep = report_new();
	_Atomic uint64_t *word;
	int plain, wg, bar, one;
	pid_t pid;

	SKIP_WITHOUT_PARTIES();
	ASSERT_NE(NULL, rep);
	ASSERT_LE(0, plain = raw_lot(GOSYNC_LOT_PLAIN, 3));
	ASSERT_LE(0, wg = raw_lot(GOSYNC_LOT_WAITGROUP, 0));
	ASSERT_LE(0, bar = raw_lot(GOSYNC_LOT_BARRIER, 3));
	ASSERT_LE(0, one = raw_lot(GOSYNC_LOT_BARRIER, 1));

	/* Parties outside 1..2^32-1 (a raw lot's param): no arrival. */
	for (int i = 0; i < 2; i++) {
		int bad = raw_lot(GOSYNC_LOT_BARRIER,
				  i ? GOSYNC_BARRIER_COUNT + 1 : 0);

		ASSERT_LE(0, bad);
		EXPECT_EQ(-EINVAL, raw_arrive(bad, 0, 0, 0));
		close(bad);
	}

	/* Each ioctl only on its own kind. */
	EXPECT_EQ(-ENOTTY, raw_arrive(plain, 0, 0, 0));
	EXPECT_EQ(-ENOTTY, raw_arrive(wg, 0, 0, 0));
	EXPECT_EQ(-ENOTTY, raw_wg_add(plain, 0, 0, 1));
	EXPECT_EQ(-ENOTTY, raw_wg_add(bar, 0, 0, 1));

	/* ARRIVE: flags; a broken or full round changes nothing. */
	ASSERT_NE(NULL, word = lot_words(bar));
	EXPECT_EQ(-EINVAL, raw_arrive(bar, 1U << 30, 0, 0));
	EXPECT_EQ(-EINVAL, raw_arrive(bar, GOSYNC_LOT_PARK_BREAK, 0, 0));
	EXPECT_EQ(0, atomic_load(word));
	/* Another round than the word's changes nothing. */
	atomic_store(word, round | 1);
	EXPECT_EQ(-EAGAIN, raw_arrive(bar, 0, 0, 0));
	EXPECT_EQ(-EAGAIN, raw_arrive(bar, 0, 0, r5 + 1));
	EXPECT_EQ(round | 1, atomic_load(word));
	atomic_store(word, round | GOSYNC_BARRIER_BROKEN | 1);
	EXPECT_EQ(-EPIPE, raw_arrive(bar, 0, 0, r5));
	EXPECT_EQ(round | GOSYNC_BARRIER_BROKEN | 1, atomic_load(word));
	atomic_store(word, round | 3);
	EXPECT_EQ(-EBUSY, raw_arrive(bar, 0, 0, r5));
	EXPECT_EQ(round | 3, atomic_load(word));
	/* Nor does a hostile count carry into BROKEN. */
	atomic_store(word, round | GOSYNC_BARRIER_COUNT);
	EXPECT_EQ(-EBUSY, raw_arrive(bar, 0, 0, r5));
	EXPECT_EQ(round | GOSYNC_BARRIER_COUNT, atomic_load(word));

	/* Arrivals that time out have arrived; the last is told so. */
	atomic_store(word, round);
	EXPECT_EQ(-ETIMEDOUT, raw_arrive(bar, 0, 0, r5));
	EXPECT_EQ(round | 1, atomic_load(word));
	EXPECT_EQ(-ETIMEDOUT, raw_arrive(bar, GOSYNC_CLOCK_REALTIME, 0, r5));
	EXPECT_EQ(round | 2, atomic_load(word));
	EXPECT_EQ(1, raw_arrive(bar, 0, GOSYNC_DEADLINE_NONE, r5));
	EXPECT_EQ(round | 3, atomic_load(word));
	EXPECT_EQ(-EBUSY, raw_arrive(bar, 0, 0, r5));

	/* A refused arrival leaves no record: its death breaks nothing. */
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int ret = raw_arrive(bar, 0, GOSYNC_DEADLINE_NONE, r5);

		CHILD_CHECK_EXIT(rep, ret == -EBUSY, "arrive: %d", ret);
		_exit(0);
	}
	EXPECT_CHILD_OK(pid, rep);
	EXPECT_EQ(round | 3, atomic_load(word));
	/*
	 * The round ends (by hand): our records name a passed round, and
	 * closing our last fd breaks nothing (the mapping outlives it).
	 */
	atomic_store(word, round + (1ULL << GOSYNC_BARRIER_ROUND_SHIFT));
	close(bar);
	sleep_ms(20);
	EXPECT_EQ(round + (1ULL << GOSYNC_BARRIER_ROUND_SHIFT),
		  atomic_load(word));
	lot_words_unmap(word);

	/* One party: every arrival is the last. */
	ASSERT_NE(NULL, word = lot_words(one));
	EXPECT_EQ(1, raw_arrive(one, 0, GOSYNC_DEADLINE_NONE, 0));
	EXPECT_EQ(1, atomic_load(word));
	EXPECT_EQ(-EBUSY, raw_arrive(one, 0, 0, 0));
	atomic_store(word, 1ULL << GOSYNC_BARRIER_ROUND_SHIFT);
	EXPECT_EQ(-EAGAIN, raw_arrive(one, 0, 0, 0));
	EXPECT_EQ(1ULL << GOSYNC_BARRIER_ROUND_SHIFT, atomic_load(word));
	EXPECT_EQ(1, raw_arrive(one, 0, 0, 1));
	EXPECT_EQ((1ULL << GOSYNC_BARRIER_ROUND_SHIFT) | 1, atomic_load(word));
	/*
	 * The last arriver of a round still current (it "runs the
	 * action") closes its last fd: the round breaks.
	 */
	close(one);
	EXPECT_EQ(0, word_becomes(word, (1ULL << GOSYNC_BARRIER_ROUND_SHIFT) |
				  GOSYNC_BARRIER_BROKEN | 1))
		TH_LOG("word %#jx", (uintmax_t)atomic_load(word));
	lot_words_unmap(word);

	/* WG_ADD: flags, reserved; the share; the counter's limits. */
	ASSERT_NE(NULL, word = lot_words(wg));
	EXPECT_EQ(-EINVAL, raw_wg_add(wg, 1U << 1, 0, 1));
	EXPECT_EQ(-EINVAL, raw_wg_add(wg, 1U << 31, 0, 1));
	EXPECT_EQ(-EINVAL, raw_wg_add(wg, 0, 1, 1));
	EXPECT_EQ(0, atomic_load(word));
	EXPECT_EQ(0, raw_wg_add(wg, 0, 0, 0));
	EXPECT_EQ(3, raw_wg_add(wg, 0, 0, 3));
	EXPECT_EQ(3, raw_wg_add(wg, 0, 0, 0));
	EXPECT_EQ(3, atomic_load(word));
	EXPECT_EQ(-EPERM, raw_wg_add(wg, 0, 0, -4));
	EXPECT_EQ(-EOVERFLOW, raw_wg_add(wg, GOSYNC_WG_ADOPT, 0, 1));
	EXPECT_EQ(-EINVAL, raw_wg_add(wg, GOSYNC_WG_ADOPT, 0, 0));
	EXPECT_EQ(-EINVAL, raw_wg_add(wg, GOSYNC_WG_ADOPT, 0, -1));
	EXPECT_EQ(-EOVERFLOW, raw_wg_add(wg, 0, 0, WG_MAX));
	EXPECT_EQ(3, atomic_load(word));
	EXPECT_EQ(3, raw_wg_add(wg, 0, 0, 0));
	EXPECT_EQ(0, raw_wg_add(wg, 0, 0, -3));
	EXPECT_EQ(0, atomic_load(word));
	/* A counter moved by others (plain Add): adopt up to it. */
	atomic_store(word, 2);
	EXPECT_EQ(2, raw_wg_add(wg, GOSYNC_WG_ADOPT, 0, 2));
	EXPECT_EQ(2, atomic_load(word));
	EXPECT_EQ(0, raw_wg_add(wg, 0, 0, -2));
	/* Zero with waiters and not broken moves the generation. */
	atomic_store(word, GOSYNC_WG_WAITERS | (5ULL << GOSYNC_WG_GEN_SHIFT));
	EXPECT_EQ(1, raw_wg_add(wg, 0, 0, 1));
	EXPECT_EQ(GOSYNC_WG_WAITERS | (5ULL << GOSYNC_WG_GEN_SHIFT) | 1,
		  atomic_load(word));
	EXPECT_EQ(0, raw_wg_add(wg, 0, 0, -1));
	EXPECT_EQ(6ULL << GOSYNC_WG_GEN_SHIFT, atomic_load(word));
	/* Broken, it stays as it is but for the counter. */
	atomic_store(word, GOSYNC_WG_WAITERS | GOSYNC_WG_BROKEN |
			   (5ULL << GOSYNC_WG_GEN_SHIFT));
	EXPECT_EQ(1, raw_wg_add(wg, 0, 0, 1));
	EXPECT_EQ(0, raw_wg_add(wg, 0, 0, -1));
	EXPECT_EQ(GOSYNC_WG_WAITERS | GOSYNC_WG_BROKEN |
		  (5ULL << GOSYNC_WG_GEN_SHIFT), atomic_load(word));
	/* The counter at its top: nothing changes. */
	atomic_store(word, GOSYNC_WG_COUNTER);
	EXPECT_EQ(-EOVERFLOW, raw_wg_add(wg, 0, 0, 1));
	EXPECT_EQ(GOSYNC_WG_COUNTER, atomic_load(word));
	EXPECT_EQ(0, raw_wg_add(wg, 0, 0, 0));
	atomic_store(word, 0);
	lot_words_unmap(word);
	close(wg);
	close(plain);
}

TEST(barrier_killed_process_of_a_passed_round_breaks_nothing)
{
	struct bdie_sh *sh[2];
	gs_barrier *b = NULL;
	struct waiter w;
	pid_t pid[2];
	int fd;

	SKIP_WITHOUT_PARTIES();
	ASSERT_EQ(0, gs_barrier_create(&b, 2, NULL, NULL));
	fd = gs_barrier_fd(b);
	for (int i = 0; i < 2; i++) {
		ASSERT_NE(NULL, sh[i] = shared_alloc(sizeof(*sh[i])));
		/* Child 0 parks in its round; child 1 is its last arriver. */
		if (i == 1) {
			ASSERT_EQ(0, waiter_start(&w, OP_BARRIER_AWAIT, b,
						  NULL, NULL));
			ASSERT_EQ(0, wait_parked(fd, 1));
		}
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0) {
			int ret = gs_barrier_await_until(b, limit(), 0);

			CHILD_CHECK_EXIT(&sh[i]->rep, ret == 0, "await: %d",
					 ret);
			atomic_store(&sh[i]->ready, 1);
			for (;;)
				pause();
		}
		if (i == 0) {
			ASSERT_EQ(0, wait_parked(fd, 1));
			EXPECT_EQ(0, gs_barrier_await_until(b, limit(), 0));
		} else {
			ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
			EXPECT_EQ(0, w.ret);
		}
		ASSERT_EQ(0, wait_atomic_ge(&sh[i]->ready, 1));
		EXPECT_EQ(0, sh[i]->rep.line) TH_LOG("child %d: %s", i,
						     sh[i]->rep.msg);
	}
	/* A new round has a party parked when both die. */
	ASSERT_EQ(0, waiter_start(&w, OP_BARRIER_AWAIT_UNTIL, b, NULL, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	for (int i = 0; i < 2; i++)
		kill_reap(_metadata, pid[i]);
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.done));
	EXPECT_FALSE(gs_barrier_broken(b));
	EXPECT_EQ(1, gs_barrier_waiting(b));
	EXPECT_EQ(0, gs_barrier_await_until(b, limit(), 0));
	ASSERT_TRUE(waiter_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(0, w.ret);
	EXPECT_FALSE(gs_barrier_broken(b));
	gs_barrier_destroy(b);
	for (int i = 0; i < 2; i++)
		munmap(sh[i], sizeof(*sh[i]));
}

TEST_HARNESS_MAIN
