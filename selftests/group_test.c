// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of errgroup and singleflight (lib/group.c):
 *
 *  errgroup
 *  - Wait is 0 when every call succeeds, and the first error otherwise
 *    (the order made deterministic with a limit of 1, or with calls that
 *    fail only once they saw the first failure's cancellation);
 *  - WithContext: the context is cancelled with the first error as its
 *    cause, at once (calls blocked in _ctx calls and select return), and
 *    by Wait when everything succeeded; its parent is untouched;
 *  - SetLimit: never more than n at once; TryGo refuses when full; a
 *    limit change while calls run is -EBUSY and changes nothing; a
 *    negative limit removes it; a group is reusable after Wait;
 *  - argument errors.
 *
 *  singleflight
 *  - 64 concurrent callers of one key run the function once and share its
 *    value, with shared == true; several keys at once; errors shared;
 *  - Forget during a flight: the next caller runs the function again,
 *    the first flight's waiters still get its result, and the first
 *    flight's end does not remove the second from the table;
 *  - DoChan: exactly one result per channel, in a select with a timeout
 *    too, the shared flag, mixed with Do; a channel abandoned before its
 *    result; sequential calls run the function again.
 *
 * The functions run by the groups wait only with deadlines, so a bug
 * makes a test fail rather than hang.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

/* Up to this many callers per singleflight key. */
#define MAX_CALLERS	64
/* Permits of a gate: more than any test lets through. */
#define GATE_PERMITS	16

/*
 * A gate: a semaphore of @n permits, all taken, so that each
 * gs_sem_release(gate, 1) lets one waiter through (n in all).
 */
static int gate_create(gs_sem **gate, uint64_t n)
{
	int err = gs_sem_create(gate, n);

	if (err)
		return err;
	err = gs_sem_acquire(*gate, n);
	if (err)
		gs_sem_destroy(*gate);
	return err;
}

/* ------------------------------------------------------------------ */
/* errgroup                                                             */

struct eg_state {
	atomic_int started;
	atomic_int finished;
	atomic_int running;
	atomic_int max_running;
	atomic_int cancelled;	/* calls that saw the context cancelled */
	atomic_int right_cause;	/* ... with the expected cause */
	gs_sem *gate;		/* gated calls take a permit (deadline) */
	gs_ctx *ctx;		/* the group's context */
	int cause;		/* the cause the waiters expect */
};

static int eg_count(void *arg)
{
	struct eg_state *s = arg;

	atomic_fetch_add(&s->finished, 1);
	return 0;
}

static int eg_fail_eio(void *arg)
{
	(void)arg;
	return -EIO;
}

static int eg_fail_eperm(void *arg)
{
	(void)arg;
	return -EPERM;
}

static int eg_fail_enoent(void *arg)
{
	(void)arg;
	return -ENOENT;
}

/* Runs until the gate gives it a permit (or the deadline: -ETIMEDOUT). */
static int eg_gated(void *arg)
{
	struct eg_state *s = arg;
	int err;

	atomic_fetch_add(&s->started, 1);
	err = gs_sem_acquire_until(s->gate, 1, limit(), 0);
	atomic_fetch_add(&s->finished, 1);
	return err;
}

/* Counts how many run at once. */
static int eg_busy(void *arg)
{
	struct eg_state *s = arg;
	int cur = atomic_fetch_add(&s->running, 1) + 1;
	int max = atomic_load(&s->max_running);

	while (cur > max &&
	       !atomic_compare_exchange_weak(&s->max_running, &max, cur))
		;
	usleep(2000);
	atomic_fetch_sub(&s->running, 1);
	atomic_fetch_add(&s->finished, 1);
	return 0;
}

static void eg_check_cause(struct eg_state *s)
{
	atomic_fetch_add(&s->cancelled, 1);
	if (gs_ctx_err(s->ctx) == -ECANCELED &&
	    gs_ctx_cause(s->ctx) == s->cause)
		atomic_fetch_add(&s->right_cause, 1);
}

/* Blocks in a _ctx receive that only the group's cancellation ends. */
static int eg_wait_cancel_recv(void *arg)
{
	struct eg_state *s = arg;
	gs_ctx *bounded;
	gs_chan *never;
	int ret;

	atomic_fetch_add(&s->started, 1);
	ret = gs_ctx_with_timeout(s->ctx, WAIT_LIMIT_MS * NS_PER_MS,
				  &bounded);
	if (ret)
		return ret;
	ret = gs_chan_make(&never, 0, 0);
	if (ret == 0) {
		ret = gs_chan_recv_ctx(never, NULL, bounded);
		gs_chan_destroy(never);
	}
	gs_ctx_cancel(bounded);
	gs_ctx_release(bounded);
	if (ret == -ECANCELED)
		eg_check_cause(s);
	return ret;	/* an error, after the first one */
}

/* Blocks in a select on the context's Done channel and a timer. */
static int eg_wait_cancel_select(void *arg)
{
	struct eg_state *s = arg;
	gs_chan *after;
	uint64_t fired;
	int ret;

	atomic_fetch_add(&s->started, 1);
	ret = gs_after(&after, WAIT_LIMIT_MS * NS_PER_MS);
	if (ret)
		return ret;
	gs_case cs[] = {
		gs_case_recv(gs_ctx_done(s->ctx), NULL),
		gs_case_recv(after, &fired),
	};
	ret = gs_select(cs, 2, 0, GS_FOREVER);
	gs_chan_destroy(after);
	if (ret != 0)
		return ret < 0 ? ret : -ETIMEDOUT;
	eg_check_cause(s);
	return -ECANCELED;
}

TEST(errgroup_wait_is_zero_when_all_succeed)
{
	struct eg_state s = { 0 };
	gs_errgroup *g;

	ASSERT_EQ(0, gs_errgroup_create(&g)) TH_LOG("%s", gs_init_error());
	for (int i = 0; i < 20; i++)
		ASSERT_EQ(0, gs_errgroup_go(g, eg_count, &s));
	EXPECT_EQ(0, gs_errgroup_wait(g));
	EXPECT_EQ(20, atomic_load(&s.finished));
	/* Wait with nothing running returns at once. */
	EXPECT_EQ(0, gs_errgroup_wait(g));
	gs_errgroup_destroy(g);
}

TEST(errgroup_first_error_wins)
{
	static int (*const order[][3])(void *) = {
		{ eg_fail_eio, eg_fail_eperm, eg_fail_enoent },
		{ eg_fail_enoent, eg_fail_eio, eg_fail_eperm },
		{ eg_fail_eperm, eg_fail_enoent, eg_fail_eio },
	};
	static const int first[] = { -EIO, -ENOENT, -EPERM };

	for (int o = 0; o < 3; o++) {
		struct eg_state s = { 0 };
		gs_errgroup *g;

		ASSERT_EQ(0, gs_errgroup_create(&g));
		/*
		 * One at a time: each Go waits for the slot the previous
		 * call frees after its error was recorded.
		 */
		ASSERT_EQ(0, gs_errgroup_set_limit(g, 1));
		ASSERT_EQ(0, gs_errgroup_go(g, eg_count, &s));
		for (int i = 0; i < 3; i++)
			ASSERT_EQ(0, gs_errgroup_go(g, order[o][i], NULL));
		ASSERT_EQ(0, gs_errgroup_go(g, eg_count, &s));
		EXPECT_EQ(first[o], gs_errgroup_wait(g)) TH_LOG("order %d", o);
		EXPECT_EQ(2, atomic_load(&s.finished));
		gs_errgroup_destroy(g);
	}
}

TEST(errgroup_context_cancelled_by_first_error)
{
	struct eg_state s = { .cause = -EIO };
	gs_ctx *parent, *ctx;
	gs_errgroup *g;
	int n = 0;

	ASSERT_EQ(0, gs_ctx_with_cancel(gs_ctx_background(), &parent));
	ASSERT_EQ(0, gs_errgroup_with_context(parent, &g, &ctx))
		TH_LOG("%s", gs_init_error());
	s.ctx = ctx;
	ASSERT_NE(NULL, gs_ctx_done(ctx));
	for (int i = 0; i < 4; i++, n += 2) {
		ASSERT_EQ(0, gs_errgroup_go(g, eg_wait_cancel_recv, &s));
		ASSERT_EQ(0, gs_errgroup_go(g, eg_wait_cancel_select, &s));
	}
	ASSERT_EQ(0, wait_atomic_ge(&s.started, n));
	usleep(20000);		/* let them block */
	EXPECT_EQ(0, gs_ctx_err(ctx));
	EXPECT_EQ(0, atomic_load(&s.cancelled));

	ASSERT_EQ(0, gs_errgroup_go(g, eg_fail_eio, NULL));
	/* Cancelled by the failure itself, before anyone calls Wait. */
	EXPECT_EQ(0, gs_chan_recv_until(gs_ctx_done(ctx), NULL,
					limit(), 0));
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	EXPECT_EQ(-EIO, gs_ctx_cause(ctx));
	EXPECT_EQ(0, wait_atomic_ge(&s.cancelled, n));

	/* Their -ECANCELED came after -EIO: the first error is kept. */
	EXPECT_EQ(-EIO, gs_errgroup_wait(g));
	EXPECT_EQ(n, atomic_load(&s.right_cause));
	EXPECT_EQ(-EIO, gs_ctx_cause(ctx));	/* Wait does not overwrite it */
	EXPECT_EQ(0, gs_ctx_err(parent));	/* the parent is untouched */

	gs_errgroup_destroy(g);
	gs_ctx_release(ctx);
	gs_ctx_cancel(parent);
	gs_ctx_release(parent);
}

TEST(errgroup_context_cancelled_by_wait)
{
	struct eg_state s = { 0 };
	gs_ctx *parent, *ctx;
	gs_errgroup *g;

	ASSERT_EQ(0, gs_ctx_with_cancel(gs_ctx_background(), &parent));
	ASSERT_EQ(0, gs_errgroup_with_context(parent, &g, &ctx));
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(0, gs_errgroup_go(g, eg_count, &s));
	ASSERT_EQ(0, wait_atomic_ge(&s.finished, 5));
	usleep(10000);
	/* Success cancels nothing... */
	EXPECT_EQ(0, gs_ctx_err(ctx));
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(gs_ctx_done(ctx), NULL));
	/* ... Wait does, with no cause but Canceled. */
	EXPECT_EQ(0, gs_errgroup_wait(g));
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(ctx));
	EXPECT_EQ(0, gs_chan_try_recv(gs_ctx_done(ctx), NULL));	/* closed */
	EXPECT_EQ(0, gs_ctx_err(parent));
	gs_errgroup_destroy(g);
	/* Our reference outlives the group's. */
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	gs_ctx_release(ctx);
	gs_ctx_cancel(parent);
	gs_ctx_release(parent);
}

TEST(errgroup_context_cancelled_with_parent)
{
	struct eg_state s = { .cause = -ECANCELED };
	gs_ctx *parent, *ctx;
	gs_errgroup *g;

	ASSERT_EQ(0, gs_ctx_with_cancel(gs_ctx_background(), &parent));
	ASSERT_EQ(0, gs_errgroup_with_context(parent, &g, &ctx));
	s.ctx = ctx;
	ASSERT_EQ(0, gs_errgroup_go(g, eg_wait_cancel_recv, &s));
	ASSERT_EQ(0, wait_atomic_ge(&s.started, 1));
	gs_ctx_cancel(parent);
	/* The call's own -ECANCELED is the group's first error. */
	EXPECT_EQ(-ECANCELED, gs_errgroup_wait(g));
	EXPECT_EQ(1, atomic_load(&s.cancelled));
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	gs_errgroup_destroy(g);
	gs_ctx_release(ctx);
	gs_ctx_release(parent);
}

TEST(errgroup_limit_bounds_concurrency)
{
	struct eg_state s = { 0 };
	gs_errgroup *g;
	int max;

	ASSERT_EQ(0, gs_errgroup_create(&g));
	ASSERT_EQ(0, gs_errgroup_set_limit(g, 3));
	for (int i = 0; i < 50; i++)
		ASSERT_EQ(0, gs_errgroup_go(g, eg_busy, &s));
	EXPECT_EQ(0, gs_errgroup_wait(g));
	EXPECT_EQ(50, atomic_load(&s.finished));
	max = atomic_load(&s.max_running);
	EXPECT_LE(max, 3);
	EXPECT_GE(max, 2);
	gs_errgroup_destroy(g);
}

TEST(errgroup_try_go_and_busy_set_limit)
{
	struct eg_state s = { 0 };
	uint64_t t0;
	gs_errgroup *g;
	int ret;

	ASSERT_EQ(0, gate_create(&s.gate, GATE_PERMITS));
	ASSERT_EQ(0, gs_errgroup_create(&g));
	ASSERT_EQ(0, gs_errgroup_set_limit(g, 2));
	ASSERT_EQ(0, gs_errgroup_try_go(g, eg_gated, &s));
	ASSERT_EQ(0, gs_errgroup_go(g, eg_gated, &s));
	ASSERT_EQ(0, wait_atomic_ge(&s.started, 2));
	/* Full. */
	EXPECT_EQ(-EAGAIN, gs_errgroup_try_go(g, eg_count, &s));
	/* Calls are running: the limit cannot change, and does not. */
	EXPECT_EQ(-EBUSY, gs_errgroup_set_limit(g, 5));
	EXPECT_EQ(-EBUSY, gs_errgroup_set_limit(g, -1));
	EXPECT_EQ(-EAGAIN, gs_errgroup_try_go(g, eg_count, &s));
	EXPECT_EQ(2, atomic_load(&s.started));

	/* One leaves: its slot is free again. */
	ASSERT_EQ(0, gs_sem_release(s.gate, 1));
	t0 = mono_ns();
	while ((ret = gs_errgroup_try_go(g, eg_count, &s)) == -EAGAIN &&
	       ms_since(t0) < WAIT_LIMIT_MS)
		usleep(200);
	EXPECT_EQ(0, ret);
	ASSERT_EQ(0, gs_sem_release(s.gate, 1));
	EXPECT_EQ(0, gs_errgroup_wait(g));
	EXPECT_EQ(3, atomic_load(&s.finished));

	/* After Wait nothing runs: the limit may change. */
	EXPECT_EQ(0, gs_errgroup_set_limit(g, 1));
	ASSERT_EQ(0, gs_errgroup_try_go(g, eg_gated, &s));
	EXPECT_EQ(-EAGAIN, gs_errgroup_try_go(g, eg_count, &s));
	ASSERT_EQ(0, gs_sem_release(s.gate, 1));
	EXPECT_EQ(0, gs_errgroup_wait(g));

	/* A limit of 0 admits nobody (Go would block forever). */
	EXPECT_EQ(0, gs_errgroup_set_limit(g, 0));
	EXPECT_EQ(-EAGAIN, gs_errgroup_try_go(g, eg_count, &s));
	EXPECT_EQ(4, atomic_load(&s.finished));
	gs_errgroup_destroy(g);
	gs_sem_destroy(s.gate);
}

TEST(errgroup_set_limit_busy_without_limit)
{
	struct eg_state s = { 0 };
	gs_errgroup *g;

	ASSERT_EQ(0, gate_create(&s.gate, GATE_PERMITS));
	ASSERT_EQ(0, gs_errgroup_create(&g));
	ASSERT_EQ(0, gs_errgroup_go(g, eg_gated, &s));
	ASSERT_EQ(0, wait_atomic_ge(&s.started, 1));
	EXPECT_EQ(-EBUSY, gs_errgroup_set_limit(g, 1));
	ASSERT_EQ(0, gs_sem_release(s.gate, 1));
	EXPECT_EQ(0, gs_errgroup_wait(g));
	EXPECT_EQ(0, gs_errgroup_set_limit(g, 1));
	gs_errgroup_destroy(g);
	gs_sem_destroy(s.gate);
}

TEST(errgroup_negative_limit_is_unlimited)
{
	struct eg_state s = { 0 };
	gs_errgroup *g;
	int ret;

	ASSERT_EQ(0, gate_create(&s.gate, GATE_PERMITS));
	ASSERT_EQ(0, gs_errgroup_create(&g));
	ASSERT_EQ(0, gs_errgroup_set_limit(g, 2));
	ASSERT_EQ(0, gs_errgroup_set_limit(g, -1));
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(0, gs_errgroup_try_go(g, eg_gated, &s));
	ret = wait_atomic_ge(&s.started, 10);
	EXPECT_EQ(0, ret) TH_LOG("%d running", atomic_load(&s.started));
	ASSERT_EQ(0, gs_sem_release(s.gate, 10));
	EXPECT_EQ(0, gs_errgroup_wait(g));
	EXPECT_EQ(10, atomic_load(&s.finished));
	gs_errgroup_destroy(g);
	gs_sem_destroy(s.gate);
}

TEST(errgroup_is_reusable_after_wait)
{
	struct eg_state s = { 0 };
	gs_errgroup *g;

	ASSERT_EQ(0, gs_errgroup_create(&g));
	for (int round = 1; round <= 3; round++) {
		for (int i = 0; i < 5; i++)
			ASSERT_EQ(0, gs_errgroup_go(g, eg_count, &s));
		EXPECT_EQ(0, gs_errgroup_wait(g));
		EXPECT_EQ(5 * round, atomic_load(&s.finished));
	}
	/* As Go's errOnce: the first error stays the group's. */
	ASSERT_EQ(0, gs_errgroup_go(g, eg_fail_eperm, NULL));
	EXPECT_EQ(-EPERM, gs_errgroup_wait(g));
	ASSERT_EQ(0, gs_errgroup_go(g, eg_count, &s));
	ASSERT_EQ(0, gs_errgroup_go(g, eg_fail_eio, NULL));
	EXPECT_EQ(-EPERM, gs_errgroup_wait(g));
	EXPECT_EQ(16, atomic_load(&s.finished));
	gs_errgroup_destroy(g);
}

TEST(errgroup_bad_arguments)
{
	gs_errgroup *g;
	gs_ctx *ctx;

	ASSERT_EQ(0, gs_errgroup_create(&g));
	EXPECT_EQ(-EINVAL, gs_errgroup_go(g, NULL, NULL));
	EXPECT_EQ(-EINVAL, gs_errgroup_try_go(g, NULL, NULL));
	EXPECT_EQ(0, gs_errgroup_wait(g));
	/* The refused calls left nothing behind. */
	EXPECT_EQ(0, gs_errgroup_set_limit(g, 2));
	gs_errgroup_destroy(g);
	gs_errgroup_destroy(NULL);
	EXPECT_EQ(-EINVAL, gs_errgroup_with_context(NULL, &g, &ctx));
}

/* ------------------------------------------------------------------ */
/* singleflight                                                         */

/*
 * Wait until the @n threads @tids but @except all sleep, as seen on
 * three looks 2 ms apart: 0, or -ETIMEDOUT after WAIT_LIMIT_MS.
 *
 * Callers that entered gs_singleflight_do() while a flight is running
 * have only two places to sleep in: the group's mutex, which the runner
 * does not hold while its function runs (so nobody sleeps on it for
 * long), and the wait for the flight's result. Threads that stay asleep
 * have joined the flight: this is how the tests know that every caller
 * joined before they let the function return, without a timing guess.
 */
static int wait_sleeping(const pid_t *tids, int n, pid_t except)
{
	uint64_t t0 = mono_ns();
	int looks = 0;

	while (looks < 3) {
		bool all = true;

		for (int i = 0; i < n && all; i++)
			if (tids[i] != except && task_state(tids[i]) != 'S')
				all = false;
		looks = all ? looks + 1 : 0;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(2000);
	}
	return 0;
}

/* One function for the flights of one key. */
struct flight {
	atomic_int calls;	/* how many times it ran */
	atomic_int slots;	/* callers' indices in @tids */
	atomic_int arrived;	/* callers about to call Do (@tids set) */
	pid_t tids[MAX_CALLERS];
	int expect;		/* gate: run until that many joined... */
	gs_sem *gate;		/* ... or until a permit (if not NULL) */
	void *value;
	int err;
	atomic_int gate_err;	/* a gate that timed out */
};

static int sf_fn(void *arg, void **value)
{
	struct flight *f = arg;

	atomic_fetch_add(&f->calls, 1);
	if (f->gate) {
		if (gs_sem_acquire_until(f->gate, 1, limit(), 0))
			atomic_fetch_add(&f->gate_err, 1);
	} else if (f->expect) {
		/* Everybody is at the door: wait until they joined. */
		if (wait_atomic_ge(&f->arrived, f->expect) ||
		    wait_sleeping(f->tids, f->expect, gettid()))
			atomic_fetch_add(&f->gate_err, 1);
	}
	*value = f->value;
	return f->err;
}

/* Must never run: its key has a flight to join. */
static int sf_never(void *arg, void **value)
{
	struct flight *f = arg;

	atomic_fetch_add(&f->calls, 1);
	*value = NULL;
	return -EDOM;
}

struct caller {
	gs_singleflight *g;
	const char *key;
	struct flight *f;
	int (*fn)(void *arg, void **value);
	pthread_t thr;
	void *value;
	int err;
	bool shared;
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	int i = atomic_fetch_add(&c->f->slots, 1);

	if (i < MAX_CALLERS)
		c->f->tids[i] = gettid();
	atomic_fetch_add(&c->f->arrived, 1);
	c->err = gs_singleflight_do(c->g, c->key, c->fn ? c->fn : sf_fn,
				    c->f, &c->value, &c->shared);
	return NULL;
}

/* Receive a DoChan result, waiting at most WAIT_LIMIT_MS. */
static int recv_result(gs_chan *ch, struct gs_flight_result *r)
{
	memset(r, 0x5a, sizeof(*r));
	return gs_chan_recv_until(ch, r, limit(), 0);
}

TEST(singleflight_64_callers_one_call)
{
	static int token;
	struct flight f = { .expect = 64, .value = &token };
	struct caller c[64];
	gs_singleflight *g;

	ASSERT_EQ(0, gs_singleflight_create(&g));
	for (int i = 0; i < 64; i++) {
		c[i] = (struct caller){ .g = g, .key = "key", .f = &f };
		ASSERT_EQ(0, start_thread(&c[i].thr, caller_main, &c[i]));
	}
	for (int i = 0; i < 64; i++)
		ASSERT_EQ(0, join_ms(c[i].thr, WAIT_LIMIT_MS));
	EXPECT_EQ(1, atomic_load(&f.calls));
	EXPECT_EQ(0, atomic_load(&f.gate_err));
	for (int i = 0; i < 64; i++) {
		EXPECT_EQ(0, c[i].err);
		EXPECT_EQ(&token, c[i].value);
		EXPECT_TRUE(c[i].shared) TH_LOG("caller %d", i);
	}
	gs_singleflight_destroy(g);
}

TEST(singleflight_keys_are_independent)
{
	static const char *const keys[] = {
		"a", "b", "c", "d", "alpha", "beta", "gamma", "",
	};
	static int tokens[8];
	struct flight f[8];
	struct caller c[64];
	gs_singleflight *g;

	ASSERT_EQ(0, gs_singleflight_create(&g));
	for (int k = 0; k < 8; k++)
		f[k] = (struct flight){ .expect = 8, .value = &tokens[k] };
	for (int i = 0; i < 64; i++) {
		int k = i % 8;

		c[i] = (struct caller){ .g = g, .key = keys[k], .f = &f[k] };
		ASSERT_EQ(0, start_thread(&c[i].thr, caller_main, &c[i]));
	}
	for (int i = 0; i < 64; i++)
		ASSERT_EQ(0, join_ms(c[i].thr, WAIT_LIMIT_MS));
	for (int k = 0; k < 8; k++) {
		EXPECT_EQ(1, atomic_load(&f[k].calls)) TH_LOG("key %s", keys[k]);
		EXPECT_EQ(0, atomic_load(&f[k].gate_err));
	}
	for (int i = 0; i < 64; i++) {
		EXPECT_EQ(0, c[i].err);
		EXPECT_EQ(&tokens[i % 8], c[i].value);
		EXPECT_TRUE(c[i].shared);
	}
	gs_singleflight_destroy(g);
}

TEST(singleflight_error_is_shared)
{
	static int token;
	struct flight f = { .expect = 16, .value = &token, .err = -EIO };
	struct caller c[16];
	gs_singleflight *g;

	ASSERT_EQ(0, gs_singleflight_create(&g));
	for (int i = 0; i < 16; i++) {
		c[i] = (struct caller){ .g = g, .key = "err", .f = &f };
		ASSERT_EQ(0, start_thread(&c[i].thr, caller_main, &c[i]));
	}
	for (int i = 0; i < 16; i++)
		ASSERT_EQ(0, join_ms(c[i].thr, WAIT_LIMIT_MS));
	EXPECT_EQ(1, atomic_load(&f.calls));
	for (int i = 0; i < 16; i++) {
		EXPECT_EQ(-EIO, c[i].err);
		EXPECT_EQ(&token, c[i].value);
		EXPECT_TRUE(c[i].shared);
	}
	gs_singleflight_destroy(g);
}

TEST(singleflight_sequential_calls_run_again)
{
	static int token;
	struct flight f = { .value = &token };
	struct gs_flight_result r;
	gs_singleflight *g;
	gs_chan *ch;
	void *v;
	bool shared;

	ASSERT_EQ(0, gs_singleflight_create(&g));
	for (int i = 1; i <= 3; i++) {
		v = NULL;
		shared = true;
		EXPECT_EQ(0, gs_singleflight_do(g, "seq", sf_fn, &f, &v,
						&shared));
		EXPECT_EQ(&token, v);
		EXPECT_FALSE(shared);
		EXPECT_EQ(i, atomic_load(&f.calls));
	}
	/* NULL value and shared pointers are allowed. */
	EXPECT_EQ(0, gs_singleflight_do(g, "seq", sf_fn, &f, NULL, NULL));
	EXPECT_EQ(4, atomic_load(&f.calls));
	for (int i = 5; i <= 6; i++) {
		ASSERT_EQ(0, gs_singleflight_do_chan(g, "seq", sf_fn, &f, &ch));
		EXPECT_EQ(1, recv_result(ch, &r));
		EXPECT_EQ(&token, r.value);
		EXPECT_EQ(0, r.err);
		EXPECT_FALSE(r.shared);
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &r));
		gs_chan_destroy(ch);
		EXPECT_EQ(i, atomic_load(&f.calls));
	}
	gs_singleflight_destroy(g);
}

TEST(singleflight_forget_during_flight)
{
	static int token1, token2, token3;
	struct flight f1 = { .value = &token1 }, f2 = { .value = &token2 };
	struct flight f3 = { .value = &token3 }, never = { 0 };
	struct gs_flight_result r;
	struct caller a = { 0 };
	gs_chan *ch_b, *ch_c, *ch_e;
	gs_singleflight *g;
	void *v;
	bool shared;

	ASSERT_EQ(0, gate_create(&f1.gate, GATE_PERMITS));
	ASSERT_EQ(0, gate_create(&f2.gate, GATE_PERMITS));
	ASSERT_EQ(0, gs_singleflight_create(&g));

	/* A runs the first flight (Do); B joins it (DoChan). */
	a = (struct caller){ .g = g, .key = "k", .f = &f1 };
	ASSERT_EQ(0, start_thread(&a.thr, caller_main, &a));
	ASSERT_EQ(0, wait_atomic_ge(&f1.calls, 1));
	ASSERT_EQ(0, gs_singleflight_do_chan(g, "k", sf_never, &never, &ch_b));

	/* Forgotten: C starts a second flight of the same key. */
	gs_singleflight_forget(g, "k");
	ASSERT_EQ(0, gs_singleflight_do_chan(g, "k", sf_fn, &f2, &ch_c));
	ASSERT_EQ(0, wait_atomic_ge(&f2.calls, 1));

	/* The first flight ends: its callers get its result... */
	ASSERT_EQ(0, gs_sem_release(f1.gate, 1));
	ASSERT_EQ(0, join_ms(a.thr, WAIT_LIMIT_MS));
	EXPECT_EQ(0, a.err);
	EXPECT_EQ(&token1, a.value);
	EXPECT_TRUE(a.shared);
	EXPECT_EQ(1, recv_result(ch_b, &r));
	EXPECT_EQ(&token1, r.value);
	EXPECT_EQ(0, r.err);
	EXPECT_TRUE(r.shared);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch_c, &r));

	/* ... and leaves the second one in the table: E joins it. */
	ASSERT_EQ(0, gs_singleflight_do_chan(g, "k", sf_never, &never, &ch_e));
	ASSERT_EQ(0, gs_sem_release(f2.gate, 1));
	EXPECT_EQ(1, recv_result(ch_c, &r));
	EXPECT_EQ(&token2, r.value);
	EXPECT_TRUE(r.shared);
	EXPECT_EQ(1, recv_result(ch_e, &r));
	EXPECT_EQ(&token2, r.value);
	EXPECT_TRUE(r.shared);

	EXPECT_EQ(0, atomic_load(&never.calls));
	EXPECT_EQ(1, atomic_load(&f1.calls));
	EXPECT_EQ(1, atomic_load(&f2.calls));
	EXPECT_EQ(0, atomic_load(&f1.gate_err) + atomic_load(&f2.gate_err));

	/* Nothing in flight: the next call runs its function. */
	shared = true;
	EXPECT_EQ(0, gs_singleflight_do(g, "k", sf_fn, &f3, &v, &shared));
	EXPECT_EQ(&token3, v);
	EXPECT_FALSE(shared);
	EXPECT_EQ(1, atomic_load(&f3.calls));

	/* Forget of a key not in flight does nothing. */
	gs_singleflight_forget(g, "k");
	gs_singleflight_forget(g, "absent");

	gs_chan_destroy(ch_b);
	gs_chan_destroy(ch_c);
	gs_chan_destroy(ch_e);
	gs_singleflight_destroy(g);
	gs_sem_destroy(f1.gate);
	gs_sem_destroy(f2.gate);
}

TEST(singleflight_do_chan_one_result_per_channel)
{
	static int token;
	struct flight f = { .value = &token, .err = -ERANGE };
	struct flight joiner = { 0 };
	struct gs_flight_result r;
	struct caller d;
	gs_singleflight *g;
	gs_chan *ch[64], *after;
	uint64_t fired;

	ASSERT_EQ(0, gate_create(&f.gate, GATE_PERMITS));
	ASSERT_EQ(0, gs_singleflight_create(&g));
	for (int i = 0; i < 64; i++) {
		ASSERT_EQ(0, gs_singleflight_do_chan(g, "dc", sf_fn, &f,
						     &ch[i]));
		EXPECT_EQ(1, gs_chan_cap(ch[i]));
		EXPECT_EQ(sizeof(struct gs_flight_result),
			  gs_chan_elem_size(ch[i]));
	}
	/* A Do caller joins the DoChan flight too. */
	d = (struct caller){ .g = g, .key = "dc", .f = &joiner,
			     .fn = sf_never };
	ASSERT_EQ(0, start_thread(&d.thr, caller_main, &d));
	ASSERT_EQ(0, wait_atomic_ge(&joiner.arrived, 1));
	ASSERT_EQ(0, wait_sleeping(joiner.tids, 1, 0));
	for (int i = 0; i < 64; i++)
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch[i], &r));

	ASSERT_EQ(0, gs_sem_release(f.gate, 1));
	/* The first in a select with a timeout... */
	ASSERT_EQ(0, gs_after(&after, WAIT_LIMIT_MS * NS_PER_MS));
	gs_case cs[] = { gs_case_recv(ch[0], &r), gs_case_recv(after, &fired) };
	memset(&r, 0x5a, sizeof(r));
	EXPECT_EQ(0, gs_select(cs, 2, 0, GS_FOREVER));
	EXPECT_TRUE(cs[0].ok);
	EXPECT_EQ(&token, r.value);
	EXPECT_EQ(-ERANGE, r.err);
	EXPECT_TRUE(r.shared);
	gs_chan_destroy(after);
	/* ... the others plainly; each gets exactly one. */
	for (int i = 0; i < 64; i++) {
		if (i) {
			EXPECT_EQ(1, recv_result(ch[i], &r)) TH_LOG("chan %d", i);
			EXPECT_EQ(&token, r.value);
			EXPECT_EQ(-ERANGE, r.err);
			EXPECT_TRUE(r.shared);
		}
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch[i], &r));
		gs_chan_destroy(ch[i]);
	}
	ASSERT_EQ(0, join_ms(d.thr, WAIT_LIMIT_MS));
	EXPECT_EQ(-ERANGE, d.err);
	EXPECT_EQ(&token, d.value);
	EXPECT_TRUE(d.shared);
	EXPECT_EQ(1, atomic_load(&f.calls));
	EXPECT_EQ(0, atomic_load(&joiner.calls));
	EXPECT_EQ(0, atomic_load(&f.gate_err));
	gs_singleflight_destroy(g);
	gs_sem_destroy(f.gate);
}

TEST(singleflight_do_chan_abandoned_before_result)
{
	static int token;
	struct flight f = { .value = &token };
	struct flight again = { .value = &token };
	struct gs_flight_result r;
	gs_singleflight *g;
	gs_chan *ch, *after;
	uint64_t fired;

	ASSERT_EQ(0, gate_create(&f.gate, GATE_PERMITS));
	ASSERT_EQ(0, gs_singleflight_create(&g));
	ASSERT_EQ(0, gs_singleflight_do_chan(g, "slow", sf_fn, &f, &ch));
	/* select { case r := <-ch: ...; case <-time.After(20ms): give up } */
	ASSERT_EQ(0, gs_after(&after, 20 * NS_PER_MS));
	gs_case cs[] = { gs_case_recv(ch, &r), gs_case_recv(after, &fired) };
	EXPECT_EQ(1, gs_select(cs, 2, 0, limit()));
	gs_chan_destroy(after);
	gs_chan_destroy(ch);		/* gone before the result */
	ASSERT_EQ(0, gs_sem_release(f.gate, 1));

	/* The abandoned flight ends; then a new one runs and delivers. */
	ASSERT_EQ(0, wait_atomic_ge(&f.calls, 1));
	for (uint64_t t0 = mono_ns(); ms_since(t0) < WAIT_LIMIT_MS;) {
		ASSERT_EQ(0, gs_singleflight_do_chan(g, "slow", sf_fn, &again,
						     &ch));
		ASSERT_EQ(1, recv_result(ch, &r));
		gs_chan_destroy(ch);
		if (atomic_load(&again.calls))
			break;	/* not the abandoned flight's result */
		usleep(1000);
	}
	EXPECT_EQ(1, atomic_load(&again.calls));
	EXPECT_EQ(&token, r.value);
	EXPECT_EQ(0, r.err);
	EXPECT_FALSE(r.shared);
	EXPECT_EQ(1, atomic_load(&f.calls));
	gs_singleflight_destroy(g);
	gs_sem_destroy(f.gate);
}

TEST(singleflight_bad_arguments)
{
	struct flight f = { 0 };
	gs_singleflight *g;
	gs_chan *ch;
	void *v;

	ASSERT_EQ(0, gs_singleflight_create(&g));
	EXPECT_EQ(-EINVAL, gs_singleflight_do(g, NULL, sf_fn, &f, &v, NULL));
	EXPECT_EQ(-EINVAL, gs_singleflight_do(g, "k", NULL, &f, &v, NULL));
	EXPECT_EQ(-EINVAL, gs_singleflight_do_chan(g, NULL, sf_fn, &f, &ch));
	EXPECT_EQ(-EINVAL, gs_singleflight_do_chan(g, "k", NULL, &f, &ch));
	EXPECT_EQ(-EINVAL, gs_singleflight_do_chan(g, "k", sf_fn, &f, NULL));
	EXPECT_EQ(0, atomic_load(&f.calls));
	gs_singleflight_forget(g, NULL);
	gs_singleflight_destroy(g);
	gs_singleflight_destroy(NULL);
}

TEST_HARNESS_MAIN
