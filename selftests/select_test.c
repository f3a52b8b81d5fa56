// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of select over channels and of timer channels, through the
 * library (gs_select, gs_after, gs_tick, ...) and the raw ioctls. They
 * check, in C of their own, the semantics that Go's test/chan select
 * tests check for the Go runtime:
 *
 *  - the select3 matrix: nil cases, closed channels (receive: zero value,
 *    ok false; send: -EPIPE), buffered room, default only when nothing
 *    is ready, all-nil selects (deadline or signal), a send and a receive
 *    on one unbuffered channel never matching each other, destinations
 *    of cases that did not commit left untouched, one channel in several
 *    cases (up to 128), two selects racing to match each other, a
 *    signal racing a hand-off;
 *  - doubleselect: senders selecting over 4 channels, muxes forwarding
 *    into one channel, no value lost or delivered twice;
 *  - fairness between always-ready cases;
 *  - nonblock: default-select tries against parked partners;
 *  - select7: every pairing of plain op, 1-case and 2-case select;
 *  - the concurrent prime sieve and a cancellable 3-stage pipeline;
 *  - selects across processes (fork, SCM_RIGHTS, a killed waiter);
 *  - timer channels: one-shot, stop, reset, tickers, tick drop, poll,
 *    epoll, select, and their ioctl errors;
 *  - select's waiters seen by poll;
 *  - deadlines on both clocks, past deadlines, realtime clock jumps, a
 *    time namespace;
 *  - signals: -EINTR consumes nothing, SA_RESTART continues and keeps
 *    the deadline;
 *  - the raw ioctl's errors;
 *  - a 64-case stress test with a conservation check.
 *
 * Timings are sized for QEMU without KVM, where a blocking hand-off
 * between two threads costs about 60 us: upper bounds on waits are
 * generous, lower bounds are exact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

/*
 * How late a timed event may be: only the watchdog of a hang (that it
 * came at its time, not before, is what the lower bounds check).
 */
#define LATE_NS		((uint64_t)WAIT_LIMIT_MS * NS_PER_MS)
/* A timer that must stay pending while a test runs: never fires in time. */
#define PENDING_NS	LATE_NS
/* A pattern that no test ever sends: destinations that must stay intact. */
#define POISON		0xa5a5a5a5a5a5a5a5ULL
#define POISON_BYTE	0xa5

/* ------------------------------------------------------------------ */
/* Channel state, and jobs run by other threads                         */

/* A snapshot of @ch, all ones if the status ioctl fails. */
static struct gosync_chan_status chan_st(gs_chan *ch)
{
	struct gosync_chan_status st;

	if (gs_chan_status(ch, &st))
		memset(&st, 0xff, sizeof(st));
	return st;
}

/*
 * Wait until @ch has @senders blocked senders and @receivers blocked
 * receivers (-1: any number). False if that did not happen in time.
 */
static bool wait_waiters(gs_chan *ch, int senders, int receivers)
{
	return wait_chan_waiters(ch, senders, receivers) == 0;
}

/* Wait until @ch holds @len buffered values. */
static bool wait_len(gs_chan *ch, uint32_t len)
{
	uint64_t end = mono_ns() + WAIT_LIMIT_MS * NS_PER_MS;

	do {
		struct gosync_chan_status st;

		if (!gs_chan_status(ch, &st) && st.len == len)
			return true;
		usleep(200);
	} while (mono_ns() < end);
	return false;
}

/* A select run by another thread, on @cs or on @ext when it is set. */
struct sel_job {
	gs_case cs[8];
	gs_case *ext;
	size_t n;
	unsigned int flags;
	uint64_t deadline;
	int ret;
	pthread_t thr;
};

static void *sel_job_main(void *arg)
{
	struct sel_job *j = arg;

	j->ret = gs_select(j->ext ? j->ext : j->cs, j->n, j->flags, j->deadline);
	return NULL;
}

static int sel_job_start(struct sel_job *j)
{
	j->ret = INT_MIN;
	if (!j->deadline)
		j->deadline = gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);
	return start_thread(&j->thr, sel_job_main, j);
}

/* A plain send or receive of one uint64_t run by another thread. */
struct op_job {
	gs_chan *ch;
	bool send;
	uint64_t val;
	int ret;
	pthread_t thr;
};

static void *op_job_main(void *arg)
{
	struct op_job *j = arg;
	uint64_t dl = gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);

	j->ret = j->send ? gs_chan_send_until(j->ch, &j->val, dl, 0) :
			   gs_chan_recv_until(j->ch, &j->val, dl, 0);
	return NULL;
}

static int op_job_start(struct op_job *j, gs_chan *ch, bool send, uint64_t val)
{
	j->ch = ch;
	j->send = send;
	j->val = val;
	j->ret = INT_MIN;
	return start_thread(&j->thr, op_job_main, j);
}

/* A raw select ioctl run by another thread. */
struct raw_job {
	struct gosync_select_case kc[4];
	struct gosync_select arg;
	int ret;
	pthread_t thr;
};

static void *raw_job_main(void *arg)
{
	struct raw_job *j = arg;
	int ret = ioctl(gs_device_fd(), GOSYNC_IOC_SELECT, &j->arg);

	j->ret = ret < 0 ? -errno : ret;
	return NULL;
}

static int raw_job_start(struct raw_job *j, uint32_t n)
{
	memset(&j->arg, 0, sizeof(j->arg));
	j->arg.cases = (uintptr_t)j->kc;
	j->arg.ncases = n;
	j->arg.deadline = gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);
	j->arg.index = 0xdead;
	j->arg.ok = 0xbeef;
	j->ret = INT_MIN;
	return start_thread(&j->thr, raw_job_main, j);
}

/* ------------------------------------------------------------------ */
/* Signals                                                              */

struct watch {
	gs_chan *ch;
	int senders, receivers;	/* as for wait_waiters() */
};

/*
 * Sends @count SIGUSR1 to @target, @interval_ms apart, once every watch
 * is met (and thread @tid, if set, sleeps in an ioctl) and @delay_ms have
 * passed; stops early when @stop is set.
 */
struct signaler {
	pthread_t target;
	pid_t tid;		/* when set: first wait until it sleeps in ioctl */
	struct watch w[4];
	int nw;
	unsigned int delay_ms;
	int count;
	unsigned int interval_ms;
	atomic_bool stop;
	bool reached;
	int sent;
	pthread_t thr;
};

static void *signaler_main(void *arg)
{
	struct signaler *s = arg;

	s->reached = true;
	for (int i = 0; i < s->nw; i++)
		if (!wait_waiters(s->w[i].ch, s->w[i].senders, s->w[i].receivers))
			s->reached = false;
	if (s->tid && wait_in_syscall(s->tid, SYS_ioctl))
		s->reached = false;
	if (s->delay_ms)
		sleep_ms(s->delay_ms);
	for (int i = 0; i < s->count && !atomic_load(&s->stop); i++) {
		if (i)
			sleep_ms(s->interval_ms);
		pthread_kill(s->target, SIGUSR1);
		s->sent++;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                             */

/* The long-running tests (every test has GS_TEST_TIMEOUT_S, gs_test.h). */
FIXTURE(slow) {
	int unused;
};

FIXTURE_SETUP(slow)
{
	ASSERT_EQ(0, gs_init()) TH_LOG("%s", gs_init_error());
}

FIXTURE_TEARDOWN(slow)
{
}

/* ================================================================== */
/* 1. The select3 matrix                                                */

TEST(nil_cases_never_proceed)
{
	uint64_t dst = POISON, v = 7, got;
	gs_chan *c;
	uint64_t t0;
	int ret;

	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));

	gs_case nil[3] = {
		gs_case_recv(NULL, &dst), gs_case_send(NULL, &v),
		gs_case_recv(NULL, &dst),
	};
	EXPECT_EQ(-EAGAIN, gs_select(nil, 3, GS_SELECT_DEFAULT, GS_FOREVER));
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_select(nil, 3, 0, gs_deadline_in(50 * NS_PER_MS)));
	EXPECT_LE(t0 + 50 * NS_PER_MS, mono_ns());
	EXPECT_EQ(POISON, dst);

	/* A ready case among nil ones always wins, and only it moves. */
	for (int i = 0; i < 50; i++) {
		v = 100 + i;
		ASSERT_EQ(0, gs_chan_send(c, &v));
		got = POISON;
		dst = POISON;
		gs_case cs[3] = {
			gs_case_recv(NULL, &dst), gs_case_recv(c, &got),
			gs_case_send(NULL, &v),
		};
		ret = gs_select(cs, 3, i & 1 ? GS_SELECT_DEFAULT : 0, GS_FOREVER);
		ASSERT_EQ(1, ret);
		EXPECT_TRUE(cs[1].ok);
		EXPECT_EQ(100 + i, got);
		EXPECT_EQ(POISON, dst);
	}
	EXPECT_EQ(0, gs_chan_len(c));
	gs_chan_destroy(c);
}

struct triple {
	uint64_t a, b, c;
};

TEST(recv_from_closed_channel_proceeds_with_zero_value)
{
	struct triple dst, v;
	gs_chan *unbuf, *buf;
	int ret;

	ASSERT_EQ(0, gs_chan_make(&unbuf, sizeof(struct triple), 0));
	ASSERT_EQ(0, gs_chan_make(&buf, sizeof(struct triple), 2));
	v = (struct triple){ 11, 12, 13 };
	ASSERT_EQ(0, gs_chan_send(buf, &v));
	v = (struct triple){ 21, 22, 23 };
	ASSERT_EQ(0, gs_chan_send(buf, &v));
	ASSERT_EQ(0, gs_chan_close(buf));
	ASSERT_EQ(0, gs_chan_close(unbuf));

	/* The buffer drains first, in order, with ok true. */
	for (int i = 0; i < 2; i++) {
		memset(&dst, POISON_BYTE, sizeof(dst));
		gs_case cs[1] = { gs_case_recv(buf, &dst) };
		ASSERT_EQ(0, gs_select(cs, 1, 0, GS_FOREVER));
		EXPECT_TRUE(cs[0].ok);
		EXPECT_EQ(11 + 10 * i, dst.a);
		EXPECT_EQ(13 + 10 * i, dst.c);
	}
	/* Then the zero value with ok false, forever, blocking or not. */
	for (int i = 0; i < 6; i++) {
		gs_chan *ch = i & 1 ? buf : unbuf;

		memset(&dst, POISON_BYTE, sizeof(dst));
		gs_case cs[1] = { gs_case_recv(ch, &dst) };
		cs[0].ok = true;
		ret = gs_select(cs, 1, i & 2 ? GS_SELECT_DEFAULT : 0, GS_FOREVER);
		ASSERT_EQ(0, ret);
		EXPECT_FALSE(cs[0].ok);
		EXPECT_TRUE(all_bytes(&dst, 0, sizeof(dst)));
	}

	/* A select already waiting is woken by close: ok false there too. */
	gs_chan *a, *b;
	uint64_t da = POISON, db = POISON;
	struct sel_job j = { .n = 2 };

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&b, sizeof(uint64_t), 0));
	j.cs[0] = gs_case_recv(a, &da);
	j.cs[1] = gs_case_recv(b, &db);
	j.cs[1].ok = true;
	ASSERT_EQ(0, sel_job_start(&j));
	EXPECT_TRUE(wait_waiters(a, 0, 1));
	EXPECT_TRUE(wait_waiters(b, 0, 1));
	ASSERT_EQ(0, gs_chan_close(b));
	pthread_join(j.thr, NULL);
	EXPECT_EQ(1, j.ret);
	EXPECT_FALSE(j.cs[1].ok);
	EXPECT_EQ(0, db);
	EXPECT_EQ(POISON, da);
	EXPECT_EQ(0, chan_st(a).recv_waiters);
	gs_chan_destroy(a);
	gs_chan_destroy(b);
	gs_chan_destroy(unbuf);
	gs_chan_destroy(buf);
}

TEST(send_on_closed_channel_is_epipe)
{
	gs_chan *unbuf, *buf, *open_ch;
	uint64_t v = 5, d = POISON;
	struct gosync_chan_status st;

	ASSERT_EQ(0, gs_chan_make(&unbuf, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&buf, sizeof(uint64_t), 4));
	ASSERT_EQ(0, gs_chan_close(unbuf));
	ASSERT_EQ(0, gs_chan_close(buf));
	for (int i = 0; i < 4; i++) {
		gs_case cs[1] = { gs_case_send(i & 1 ? buf : unbuf, &v) };

		EXPECT_EQ(-EPIPE, gs_select(cs, 1, i & 2 ? GS_SELECT_DEFAULT : 0,
					    GS_FOREVER));
	}
	st = chan_st(buf);
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(0, st.sends);

	/* The raw ioctl names the case that failed. */
	struct gosync_select_case kc[2] = {
		{ .fd = GOSYNC_SELECT_NIL, .op = GOSYNC_SELECT_RECV,
		  .value = (uintptr_t)&d },
		{ .fd = gs_chan_fd(buf), .op = GOSYNC_SELECT_SEND,
		  .value = (uintptr_t)&v },
	};
	struct gosync_select arg = {
		.cases = (uintptr_t)kc, .ncases = 2, .deadline = GS_FOREVER,
		.index = 77, .ok = 77,
	};
	EXPECT_EQ(-EPIPE, xioctl(gs_device_fd(), GOSYNC_IOC_SELECT, &arg));
	EXPECT_EQ(1, arg.index);
	EXPECT_EQ(0, arg.ok);
	EXPECT_EQ(POISON, d);

	/* A select waiting to send fails when the channel is closed. */
	struct sel_job j = { .n = 2 };

	ASSERT_EQ(0, gs_chan_make(&open_ch, sizeof(uint64_t), 0));
	gs_chan *other;

	ASSERT_EQ(0, gs_chan_make(&other, sizeof(uint64_t), 0));
	j.cs[0] = gs_case_recv(other, &d);
	j.cs[1] = gs_case_send(open_ch, &v);
	ASSERT_EQ(0, sel_job_start(&j));
	EXPECT_TRUE(wait_waiters(open_ch, 1, 0));
	EXPECT_TRUE(wait_waiters(other, 0, 1));
	ASSERT_EQ(0, gs_chan_close(open_ch));
	pthread_join(j.thr, NULL);
	EXPECT_EQ(-EPIPE, j.ret);
	EXPECT_EQ(POISON, d);
	st = chan_st(other);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(0, st.send_waiters);

	/* The same through the raw ioctl: the index names the send case. */
	gs_chan *c3;
	struct raw_job rj;

	ASSERT_EQ(0, gs_chan_make(&c3, sizeof(uint64_t), 0));
	rj.kc[0] = (struct gosync_select_case){
		.fd = gs_chan_fd(other), .op = GOSYNC_SELECT_RECV, .value = (uintptr_t)&d,
	};
	rj.kc[1] = (struct gosync_select_case){
		.fd = GOSYNC_SELECT_NIL, .op = GOSYNC_SELECT_SEND, .value = (uintptr_t)&v,
	};
	rj.kc[2] = (struct gosync_select_case){
		.fd = gs_chan_fd(c3), .op = GOSYNC_SELECT_SEND, .value = (uintptr_t)&v,
	};
	ASSERT_EQ(0, raw_job_start(&rj, 3));
	EXPECT_TRUE(wait_waiters(c3, 1, 0));
	EXPECT_TRUE(wait_waiters(other, 0, 1));
	ASSERT_EQ(0, gs_chan_close(c3));
	pthread_join(rj.thr, NULL);
	EXPECT_EQ(-EPIPE, rj.ret);
	EXPECT_EQ(2, rj.arg.index);
	EXPECT_EQ(0, rj.arg.ok);
	EXPECT_EQ(POISON, d);
	EXPECT_EQ(0, chan_st(other).recv_waiters);
	gs_chan_destroy(c3);
	gs_chan_destroy(other);
	gs_chan_destroy(open_ch);
	gs_chan_destroy(unbuf);
	gs_chan_destroy(buf);
}

/*
 * A select that sends and receives on one channel meets the partners
 * already queued there, and close completes its receive (ok false)
 * rather than failing its send: receivers are served first, as in Go.
 */
TEST(send_and_recv_on_one_channel_with_other_parties)
{
	uint64_t v = 5, d;
	struct op_job j;
	gs_chan *u;

	ASSERT_EQ(0, gs_chan_make(&u, sizeof(uint64_t), 0));
	for (int round = 0; round < 20; round++) {
		/* A parked sender: only the receive case can commit. */
		ASSERT_EQ(0, op_job_start(&j, u, true, 300 + round));
		ASSERT_TRUE(wait_waiters(u, 1, 0));
		d = POISON;
		gs_case cs[2] = { gs_case_send(u, &v), gs_case_recv(u, &d) };
		EXPECT_EQ(1, gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS)));
		EXPECT_EQ(300 + round, d);
		pthread_join(j.thr, NULL);
		EXPECT_EQ(0, j.ret);

		/* A parked receiver: only the send case can commit. */
		ASSERT_EQ(0, op_job_start(&j, u, false, POISON));
		ASSERT_TRUE(wait_waiters(u, 0, 1));
		d = POISON;
		v = 400 + round;
		EXPECT_EQ(0, gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS)));
		EXPECT_EQ(POISON, d);
		pthread_join(j.thr, NULL);
		EXPECT_EQ(1, j.ret);
		EXPECT_EQ(400 + round, j.val);
		EXPECT_EQ(0, chan_st(u).send_waiters);
		EXPECT_EQ(0, chan_st(u).recv_waiters);
	}

	/* Close while the select waits with both cases. */
	struct sel_job sj = { .n = 2 };

	d = 77;
	sj.cs[0] = gs_case_send(u, &v);
	sj.cs[1] = gs_case_recv(u, &d);
	sj.cs[1].ok = true;
	ASSERT_EQ(0, sel_job_start(&sj));
	ASSERT_TRUE(wait_waiters(u, 1, 1));
	ASSERT_EQ(0, gs_chan_close(u));
	pthread_join(sj.thr, NULL);
	EXPECT_EQ(1, sj.ret);
	EXPECT_FALSE(sj.cs[1].ok);
	EXPECT_EQ(0, d);
	EXPECT_EQ(40, chan_st(u).sends);
	gs_chan_destroy(u);
}

TEST(buffered_room_and_values_proceed)
{
	gs_chan *c;
	uint64_t v, d;

	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 3));
	for (int i = 0; i < 3; i++) {
		v = 40 + i;
		gs_case cs[1] = { gs_case_send(c, &v) };
		EXPECT_EQ(0, gs_select(cs, 1, i == 1 ? GS_SELECT_DEFAULT : 0,
				       GS_FOREVER));
	}
	v = 99;
	gs_case full[1] = { gs_case_send(c, &v) };
	EXPECT_EQ(-EAGAIN, gs_select(full, 1, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(-ETIMEDOUT, gs_select(full, 1, 0, gs_deadline_in(20 * NS_PER_MS)));
	EXPECT_EQ(3, gs_chan_len(c));
	EXPECT_EQ(0, chan_st(c).send_waiters);
	for (int i = 0; i < 3; i++) {
		d = POISON;
		gs_case cs[1] = { gs_case_recv(c, &d) };
		EXPECT_EQ(0, gs_select(cs, 1, i == 2 ? GS_SELECT_DEFAULT : 0,
				       GS_FOREVER));
		EXPECT_TRUE(cs[0].ok);
		EXPECT_EQ(40 + i, d);
	}
	d = POISON;
	gs_case empty[1] = { gs_case_recv(c, &d) };
	EXPECT_EQ(-EAGAIN, gs_select(empty, 1, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(POISON, d);
	gs_chan_destroy(c);
}

TEST(default_only_when_nothing_ready)
{
	gs_chan *a, *b, *c;
	uint64_t v = 3, w = 4, da = POISON, dc = POISON;
	struct gosync_chan_status st;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));	/* nobody there */
	ASSERT_EQ(0, gs_chan_make(&b, sizeof(uint64_t), 1));	/* full */
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));	/* empty */
	ASSERT_EQ(0, gs_chan_send(b, &w));

	gs_case cs[4] = {
		gs_case_recv(a, &da), gs_case_send(a, &v),
		gs_case_send(b, &v), gs_case_recv(c, &dc),
	};
	for (int i = 0; i < 20; i++) {
		EXPECT_EQ(-EAGAIN, gs_select(cs, 4, GS_SELECT_DEFAULT, GS_FOREVER));
	}
	/* Default queues nothing and moves nothing. */
	st = chan_st(a);
	EXPECT_EQ(0, st.send_waiters + st.recv_waiters);
	st = chan_st(b);
	EXPECT_EQ(1, st.len);
	EXPECT_EQ(0, st.send_waiters);
	st = chan_st(c);
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(POISON, da);
	EXPECT_EQ(POISON, dc);

	/* With no case at all: default at once, or the deadline. */
	EXPECT_EQ(-EAGAIN, gs_select(NULL, 0, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(-ETIMEDOUT, gs_select(NULL, 0, 0, gs_deadline_in(20 * NS_PER_MS)));

	/* Once one case is ready, it proceeds instead of default. */
	w = 55;
	ASSERT_EQ(0, gs_chan_send(c, &w));
	EXPECT_EQ(3, gs_select(cs, 4, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(55, dc);
	EXPECT_EQ(POISON, da);

	/* A receiver parked on the unbuffered channel makes its send ready. */
	struct op_job r;

	ASSERT_EQ(0, op_job_start(&r, a, false, POISON));
	ASSERT_TRUE(wait_waiters(a, 0, 1));
	v = 66;
	EXPECT_EQ(1, gs_select(cs, 4, GS_SELECT_DEFAULT, GS_FOREVER));
	pthread_join(r.thr, NULL);
	EXPECT_EQ(1, r.ret);
	EXPECT_EQ(66, r.val);
	gs_chan_destroy(a);
	gs_chan_destroy(b);
	gs_chan_destroy(c);
}

TEST(all_nil_select_waits_for_its_deadline)
{
	gs_case nil[4] = {
		gs_case_recv(NULL, NULL), gs_case_send(NULL, NULL),
		gs_case_recv(NULL, NULL), gs_case_send(NULL, NULL),
	};
	uint64_t t0;

	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_select(nil, 4, 0, gs_deadline_in(100 * NS_PER_MS)));
	EXPECT_LE(t0 + 100 * NS_PER_MS, mono_ns());
	EXPECT_GT(t0 + 100 * NS_PER_MS + LATE_NS, mono_ns());
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_select(nil, 0, 0, gs_deadline_in(100 * NS_PER_MS)));
	EXPECT_LE(t0 + 100 * NS_PER_MS, mono_ns());
}

TEST(all_nil_select_is_interrupted_by_a_signal)
{
	gs_case nil[2] = { gs_case_recv(NULL, NULL), gs_case_send(NULL, NULL) };
	struct signaler s = { .delay_ms = 100, .count = 1 };
	uint64_t t0;

	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	s.target = pthread_self();
	s.tid = gs_gettid();	/* the signal comes once the select sleeps */
	t0 = mono_ns();
	ASSERT_EQ(0, start_thread(&s.thr, signaler_main, &s));
	EXPECT_EQ(-EINTR, gs_select(nil, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS)));
	EXPECT_LE(t0 + 100 * NS_PER_MS, mono_ns());
	pthread_join(s.thr, NULL);
	EXPECT_TRUE(s.reached);
	EXPECT_EQ(1, atomic_load(&sig_count));
}

TEST(send_and_recv_on_one_unbuffered_channel_never_match)
{
	uint64_t v = 31, d = POISON;
	struct gosync_chan_status st;
	gs_chan *u;

	ASSERT_EQ(0, gs_chan_make(&u, sizeof(uint64_t), 0));
	gs_case cs[2] = { gs_case_send(u, &v), gs_case_recv(u, &d) };
	EXPECT_EQ(-EAGAIN, gs_select(cs, 2, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(-ETIMEDOUT, gs_select(cs, 2, 0, gs_deadline_in(100 * NS_PER_MS)));
	EXPECT_EQ(POISON, d);
	st = chan_st(u);
	EXPECT_EQ(0, st.sends);
	EXPECT_EQ(0, st.recvs);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(0, st.recv_waiters);

	/* A second thread completes the receive case: it gets the send's value. */
	for (int round = 0; round < 2; round++) {
		struct sel_job j = { .n = 2 };
		uint64_t x;

		j.cs[0] = gs_case_send(u, &v);
		j.cs[1] = gs_case_recv(u, &d);
		d = POISON;
		ASSERT_EQ(0, sel_job_start(&j));
		ASSERT_TRUE(wait_waiters(u, 1, 1));
		if (round == 0) {
			x = POISON;
			EXPECT_EQ(1, gs_chan_recv(u, &x));
			pthread_join(j.thr, NULL);
			EXPECT_EQ(0, j.ret);
			EXPECT_EQ(31, x);
			EXPECT_EQ(POISON, d);
		} else {
			x = 1234;
			EXPECT_EQ(0, gs_chan_send(u, &x));
			pthread_join(j.thr, NULL);
			EXPECT_EQ(1, j.ret);
			EXPECT_TRUE(j.cs[1].ok);
			EXPECT_EQ(1234, d);
		}
		st = chan_st(u);
		EXPECT_EQ(0, st.send_waiters);
		EXPECT_EQ(0, st.recv_waiters);
	}
	EXPECT_EQ(2, chan_st(u).sends);

	/*
	 * Two such selects do match each other: one's send with the other's
	 * receive, whichever way round, and nothing else moves.
	 */
	bool way[2] = { false, false };

	for (int round = 0; round < 40; round++) {
		struct sel_job j = { .n = 2 };
		uint64_t jv = 1000 + round, jd = POISON, mv = 2000 + round, md = POISON;
		int ret;

		j.cs[0] = gs_case_send(u, &jv);
		j.cs[1] = gs_case_recv(u, &jd);
		ASSERT_EQ(0, sel_job_start(&j));
		ASSERT_TRUE(wait_waiters(u, 1, 1));
		gs_case mine[2] = { gs_case_recv(u, &md), gs_case_send(u, &mv) };
		ret = gs_select(mine, 2, round & 1 ? GS_SELECT_DEFAULT : 0, GS_FOREVER);
		pthread_join(j.thr, NULL);
		ASSERT_TRUE(ret == 0 || ret == 1) TH_LOG("ret %d", ret);
		way[ret == 1] = true;
		if (ret == 0) {		/* it sent, I received */
			EXPECT_EQ(0, j.ret);
			EXPECT_EQ(1000 + round, md);
			EXPECT_EQ(POISON, jd);
		} else {		/* I sent, it received */
			EXPECT_EQ(1, j.ret);
			EXPECT_TRUE(j.cs[1].ok);
			EXPECT_EQ(2000 + round, jd);
			EXPECT_EQ(POISON, md);
		}
		st = chan_st(u);
		EXPECT_EQ(0, st.send_waiters);
		EXPECT_EQ(0, st.recv_waiters);
	}
	/* I receive when my receive case is visited first: about half the time. */
	EXPECT_TRUE(way[0] && way[1]);
	EXPECT_EQ(42, chan_st(u).sends);
	gs_chan_destroy(u);
}

struct big {
	unsigned char b[200];	/* larger than any small on-stack buffer */
};

TEST(uncommitted_destinations_are_never_written)
{
	gs_chan *ch[3], *closed;
	struct big d[3], v;
	bool seen[2] = { false, false };

	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, gs_chan_make(&ch[i], sizeof(struct big), 1));
	}

	/* Only the middle channel is ready. */
	memset(&v, 0x11, sizeof(v));
	ASSERT_EQ(0, gs_chan_send(ch[1], &v));
	memset(d, POISON_BYTE, sizeof(d));
	gs_case cs[3] = {
		gs_case_recv(ch[0], &d[0]), gs_case_recv(ch[1], &d[1]),
		gs_case_recv(ch[2], &d[2]),
	};
	EXPECT_EQ(1, gs_select(cs, 3, 0, GS_FOREVER));
	EXPECT_TRUE(all_bytes(&d[0], POISON_BYTE, sizeof(d[0])));
	EXPECT_TRUE(all_bytes(&d[1], 0x11, sizeof(d[1])));
	EXPECT_TRUE(all_bytes(&d[2], POISON_BYTE, sizeof(d[2])));

	/* A waiting select completed through its last case. */
	struct sel_job j = { .n = 3 };

	memset(d, POISON_BYTE, sizeof(d));
	for (int i = 0; i < 3; i++)
		j.cs[i] = gs_case_recv(ch[i], &d[i]);
	ASSERT_EQ(0, sel_job_start(&j));
	for (int i = 0; i < 3; i++) {
		EXPECT_TRUE(wait_waiters(ch[i], 0, 1));
	}
	memset(&v, 0x22, sizeof(v));
	ASSERT_EQ(0, gs_chan_send(ch[2], &v));
	pthread_join(j.thr, NULL);
	EXPECT_EQ(2, j.ret);
	EXPECT_TRUE(all_bytes(&d[0], POISON_BYTE, sizeof(d[0])));
	EXPECT_TRUE(all_bytes(&d[1], POISON_BYTE, sizeof(d[1])));
	EXPECT_TRUE(all_bytes(&d[2], 0x22, sizeof(d[2])));
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(0, chan_st(ch[i]).recv_waiters);
		EXPECT_EQ(0, chan_st(ch[i]).len);
	}

	/*
	 * A closed channel and a ready one: whichever commits, the other's
	 * destination keeps its pattern (the closed case's zeroing included).
	 */
	ASSERT_EQ(0, gs_chan_make(&closed, sizeof(struct big), 0));
	ASSERT_EQ(0, gs_chan_close(closed));
	memset(&v, 0x33, sizeof(v));
	ASSERT_EQ(0, gs_chan_send(ch[0], &v));
	for (int i = 0; i < 60; i++) {
		int ret;

		memset(d, POISON_BYTE, sizeof(d));
		gs_case two[2] = {
			gs_case_recv(closed, &d[0]), gs_case_recv(ch[0], &d[1]),
		};
		ret = gs_select(two, 2, i & 1 ? GS_SELECT_DEFAULT : 0, GS_FOREVER);
		ASSERT_TRUE(ret == 0 || ret == 1) TH_LOG("ret %d", ret);
		seen[ret == 1] = true;
		if (ret == 0) {
			EXPECT_FALSE(two[0].ok);
			EXPECT_TRUE(all_bytes(&d[0], 0, sizeof(d[0])));
			EXPECT_TRUE(all_bytes(&d[1], POISON_BYTE, sizeof(d[1])));
			EXPECT_EQ(1, gs_chan_len(ch[0]));
		} else {
			EXPECT_TRUE(two[1].ok);
			EXPECT_TRUE(all_bytes(&d[0], POISON_BYTE, sizeof(d[0])));
			EXPECT_TRUE(all_bytes(&d[1], 0x33, sizeof(d[1])));
			ASSERT_EQ(0, gs_chan_send(ch[0], &v));
		}
	}
	EXPECT_TRUE(seen[0]);
	EXPECT_TRUE(seen[1]);
	gs_chan_destroy(closed);
	for (int i = 0; i < 3; i++)
		gs_chan_destroy(ch[i]);
}

TEST(same_channel_in_several_cases)
{
	gs_chan *c1, *c2, *u;
	uint64_t d[3], vals[2] = { 1001, 2002 }, v = 5, x;
	bool seen[3] = { false, false, false };
	int ret;

	/* Two receive cases on one channel holding one value. */
	ASSERT_EQ(0, gs_chan_make(&c1, sizeof(uint64_t), 1));
	for (int i = 0; i < 80; i++) {
		ASSERT_EQ(0, gs_chan_send(c1, &v));
		d[0] = d[1] = POISON;
		gs_case cs[2] = { gs_case_recv(c1, &d[0]), gs_case_recv(c1, &d[1]) };
		ret = gs_select(cs, 2, 0, GS_FOREVER);
		ASSERT_TRUE(ret == 0 || ret == 1) TH_LOG("ret %d", ret);
		seen[ret == 1] = true;
		EXPECT_EQ(5, d[ret]);
		EXPECT_EQ(POISON, d[!ret]);
		EXPECT_EQ(0, gs_chan_len(c1));
	}
	EXPECT_TRUE(seen[0] && seen[1]);

	/* Two send cases on one channel with room for one value. */
	seen[0] = seen[1] = false;
	for (int i = 0; i < 80; i++) {
		gs_case cs[2] = { gs_case_send(c1, &vals[0]), gs_case_send(c1, &vals[1]) };
		ret = gs_select(cs, 2, 0, GS_FOREVER);
		ASSERT_TRUE(ret == 0 || ret == 1) TH_LOG("ret %d", ret);
		seen[ret == 1] = true;
		EXPECT_EQ(1, gs_chan_len(c1));
		x = POISON;
		EXPECT_EQ(1, gs_chan_try_recv(c1, &x));
		EXPECT_EQ(vals[ret], x);
	}
	EXPECT_TRUE(seen[0] && seen[1]);

	/* Two sends on one unbuffered channel, one parked receiver. */
	ASSERT_EQ(0, gs_chan_make(&u, sizeof(uint64_t), 0));
	seen[0] = seen[1] = false;
	for (int i = 0; i < 40; i++) {
		struct op_job r;

		ASSERT_EQ(0, op_job_start(&r, u, false, POISON));
		ASSERT_TRUE(wait_waiters(u, 0, 1));
		gs_case cs[2] = { gs_case_send(u, &vals[0]), gs_case_send(u, &vals[1]) };
		ret = gs_select(cs, 2, GS_SELECT_DEFAULT, GS_FOREVER);
		pthread_join(r.thr, NULL);
		ASSERT_TRUE(ret == 0 || ret == 1) TH_LOG("ret %d", ret);
		seen[ret == 1] = true;
		EXPECT_EQ(1, r.ret);
		EXPECT_EQ(vals[ret], r.val);
		EXPECT_EQ(-EAGAIN, gs_chan_try_send(u, &v));	/* nobody left */
	}
	EXPECT_TRUE(seen[0] && seen[1]);
	EXPECT_EQ(40, chan_st(u).sends);
	gs_chan_destroy(u);

	/* A send and a receive on one buffered channel, both ready. */
	ASSERT_EQ(0, gs_chan_make(&c2, sizeof(uint64_t), 2));
	ASSERT_EQ(0, gs_chan_send(c2, &v));
	seen[0] = seen[1] = false;
	for (int i = 0; i < 80; i++) {
		d[0] = POISON;
		gs_case cs[2] = { gs_case_send(c2, &vals[0]), gs_case_recv(c2, &d[0]) };
		ret = gs_select(cs, 2, 0, GS_FOREVER);
		ASSERT_TRUE(ret == 0 || ret == 1) TH_LOG("ret %d", ret);
		seen[ret == 1] = true;
		if (ret == 0) {
			EXPECT_EQ(2, gs_chan_len(c2));
			EXPECT_EQ(POISON, d[0]);
			EXPECT_EQ(1, gs_chan_try_recv(c2, &x));	/* back to one */
		} else {
			EXPECT_EQ(0, gs_chan_len(c2));
			EXPECT_TRUE(d[0] == 5 || d[0] == vals[0]) TH_LOG("%#llx",
				(unsigned long long)d[0]);
			EXPECT_EQ(0, gs_chan_try_send(c2, &v));
		}
	}
	EXPECT_TRUE(seen[0] && seen[1]);

	/* Three receive cases on one unbuffered channel: one value, one case. */
	ASSERT_EQ(0, gs_chan_make(&u, sizeof(uint64_t), 0));
	struct sel_job j = { .n = 3 };

	d[0] = d[1] = d[2] = POISON;
	for (int i = 0; i < 3; i++)
		j.cs[i] = gs_case_recv(u, &d[i]);
	ASSERT_EQ(0, sel_job_start(&j));
	ASSERT_TRUE(wait_waiters(u, 0, 3));
	x = 909;
	EXPECT_EQ(0, gs_chan_send(u, &x));
	pthread_join(j.thr, NULL);
	ASSERT_TRUE(j.ret >= 0 && j.ret < 3) TH_LOG("ret %d", j.ret);
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(i == j.ret ? 909 : POISON, d[i]);
	}
	EXPECT_EQ(0, chan_st(u).recv_waiters);
	EXPECT_EQ(1, chan_st(u).sends);
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(u, &x));

	/* The largest select, every case a receive on that one channel. */
	gs_case many[GS_SELECT_MAX];
	uint64_t md[GS_SELECT_MAX];
	struct sel_job mj = { .ext = many, .n = GS_SELECT_MAX };
	int wrong = 0;

	for (int i = 0; i < GS_SELECT_MAX; i++) {
		md[i] = POISON;
		many[i] = gs_case_recv(u, &md[i]);
	}
	ASSERT_EQ(0, sel_job_start(&mj));
	ASSERT_TRUE(wait_waiters(u, 0, GS_SELECT_MAX));
	x = 4321;
	EXPECT_EQ(0, gs_chan_send(u, &x));
	pthread_join(mj.thr, NULL);
	ASSERT_TRUE(mj.ret >= 0 && mj.ret < GS_SELECT_MAX) TH_LOG("ret %d", mj.ret);
	for (int i = 0; i < GS_SELECT_MAX; i++)
		wrong += md[i] != (i == mj.ret ? 4321 : POISON);
	EXPECT_EQ(0, wrong);
	EXPECT_TRUE(many[mj.ret].ok);
	EXPECT_EQ(0, chan_st(u).recv_waiters);
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(u, &x));
	gs_chan_destroy(u);
	gs_chan_destroy(c1);
	gs_chan_destroy(c2);
}

/*
 * Two selects that can match each other two ways, racing: A selects
 * {x <- a, b = <-y}, B selects {y <- b, a = <-x}, both unbuffered. Each
 * select of one completes with exactly one select of the other, so the
 * k-th of A pairs with the k-th of B, through exactly one channel.
 */
#define CROSS_N		3000	/* the most; gs_stress() runs fewer */

struct cross {
	gs_chan *out, *in;
	uint64_t base;
	int n;			/* pairs: gs_stress(CROSS_N) */
	uint8_t idx[CROSS_N];
	uint64_t got[CROSS_N];
	int err;
	pthread_t thr;
};

static void *cross_main(void *arg)
{
	struct cross *c = arg;

	for (int k = 0; k < c->n; k++) {
		uint64_t v = c->base + k, d = POISON;
		gs_case cs[2] = { gs_case_send(c->out, &v), gs_case_recv(c->in, &d) };
		int ret = gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS));

		if (ret != 0 && ret != 1) {
			c->err = ret < 0 ? ret : -1000;
			return NULL;
		}
		c->idx[k] = ret;
		c->got[k] = d;
	}
	return NULL;
}

TEST_F(slow, crossed_selects_pair_up_one_way_each_time)
{
	static struct cross a, b;
	gs_chan *x, *y;
	int bad = 0, via_x = 0, n = (int)gs_stress(CROSS_N, 500);

	ASSERT_EQ(0, gs_chan_make(&x, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&y, sizeof(uint64_t), 0));
	a = (struct cross){ .out = x, .in = y, .base = 1ULL << 40, .n = n };
	b = (struct cross){ .out = y, .in = x, .base = 2ULL << 40, .n = n };
	ASSERT_EQ(0, start_thread(&a.thr, cross_main, &a));
	ASSERT_EQ(0, start_thread(&b.thr, cross_main, &b));
	pthread_join(a.thr, NULL);
	pthread_join(b.thr, NULL);
	ASSERT_EQ(0, a.err);
	ASSERT_EQ(0, b.err);
	for (int k = 0; k < n; k++) {
		bool ok;

		if (a.idx[k] == 0)	/* through x: A sent, B received */
			ok = b.idx[k] == 1 && b.got[k] == a.base + k && a.got[k] == POISON;
		else			/* through y: B sent, A received */
			ok = b.idx[k] == 0 && a.got[k] == b.base + k && b.got[k] == POISON;
		if (!ok && bad++ < 5)
			TH_LOG("pair %d: A case %d got %#llx, B case %d got %#llx", k,
			       a.idx[k], (unsigned long long)a.got[k], b.idx[k],
			       (unsigned long long)b.got[k]);
		via_x += a.idx[k] == 0;
	}
	TH_LOG("%d of %d pairs through x", via_x, n);
	EXPECT_EQ(0, bad);
	EXPECT_EQ((uint64_t)n, chan_st(x).sends + chan_st(y).sends);
	EXPECT_EQ((uint64_t)via_x, chan_st(x).sends);
	EXPECT_LT(0, via_x);
	EXPECT_GT(n, via_x);
	gs_chan_destroy(x);
}

/*
 * A signal and a partner race for a parked select: either the value was
 * handed over (the partner's try succeeded, the select committed) or
 * neither (the try failed, the select returned -EINTR). Never one alone.
 * The select receives in one half of the rounds and sends in the other.
 */
#define SIGRACE_N	600

struct sigrace {
	gs_chan *a;
	int ret[SIGRACE_N];
	uint64_t got[SIGRACE_N];
	atomic_int go;		/* rounds the thread may start */
	atomic_int done;	/* rounds it finished */
	pthread_t thr;
};

/* Spin until *@v > @k, or for WAIT_LIMIT_MS. */
static bool spin_past(atomic_int *v, int k)
{
	uint64_t end = mono_ns() + WAIT_LIMIT_MS * NS_PER_MS;

	while (atomic_load(v) <= k)
		if (mono_ns() > end)
			return false;
	return true;
}

static bool sigrace_sends(int k)
{
	return k >= SIGRACE_N / 2;
}

static void *sigrace_main(void *arg)
{
	struct sigrace *r = arg;

	for (int k = 0; k < SIGRACE_N; k++) {
		uint64_t d = POISON, v = 5000 + k;
		gs_case cs[2] = {
			sigrace_sends(k) ? gs_case_send(r->a, &v) : gs_case_recv(r->a, &d),
			gs_case_recv(NULL, NULL),
		};

		/* Start only once the previous round is over on both sides. */
		spin_past(&r->go, k);
		r->ret[k] = gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS));
		r->got[k] = d;
		/* Let this round's signal land before the next select starts. */
		spin_past(&sig_count, k);
		atomic_store(&r->done, k + 1);
	}
	return NULL;
}

TEST_F(slow, signal_racing_a_handoff_loses_nothing)
{
	static struct sigrace r;
	int handed[2] = { 0, 0 }, interrupted[2] = { 0, 0 }, bad = 0;
	unsigned int seed = 12345;

	memset(&r, 0, sizeof(r));
	ASSERT_EQ(0, gs_chan_make(&r.a, sizeof(uint64_t), 0));
	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	ASSERT_EQ(0, start_thread(&r.thr, sigrace_main, &r));
	for (int k = 0; k < SIGRACE_N; k++) {
		bool sends = sigrace_sends(k);
		uint64_t v = sends ? POISON : 100 + (uint64_t)k;
		unsigned int spin = rand_r(&seed);
		int moved;

		/* No pause, a short one or up to a few hundred microseconds. */
		spin = spin % 4 == 0 ? 0 : spin % 4 == 1 ? spin % 2000 : spin % 300000;
		atomic_store(&r.go, k + 1);
		ASSERT_TRUE(wait_waiters(r.a, sends, !sends)) TH_LOG("round %d", k);
		pthread_kill(r.thr, SIGUSR1);
		for (; spin; spin--)
			__asm__ __volatile__("" ::: "memory");
		moved = sends ? gs_chan_try_recv(r.a, &v) : gs_chan_try_send(r.a, &v);
		ASSERT_TRUE(spin_past(&r.done, k)) TH_LOG("round %d", k);
		if (moved == (sends ? 1 : 0) && r.ret[k] == 0 &&
		    (sends ? v == 5000ULL + k : r.got[k] == v)) {
			handed[sends]++;
		} else if (moved == -EAGAIN && r.ret[k] == -EINTR && r.got[k] == POISON &&
			   (!sends || v == POISON)) {
			interrupted[sends]++;
		} else if (bad++ < 5) {
			TH_LOG("round %d (%s): partner %d, select %d, got %#llx/%#llx", k,
			       sends ? "select sends" : "select receives", moved,
			       r.ret[k], (unsigned long long)r.got[k],
			       (unsigned long long)v);
		}
	}
	pthread_join(r.thr, NULL);
	TH_LOG("select receives: %d handed over, %d interrupted; select sends: %d, %d",
	       handed[0], interrupted[0], handed[1], interrupted[1]);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(SIGRACE_N, handed[0] + interrupted[0] + handed[1] + interrupted[1]);
	EXPECT_EQ((uint64_t)(handed[0] + handed[1]), chan_st(r.a).sends);
	EXPECT_EQ(0, chan_st(r.a).recv_waiters);
	EXPECT_EQ(0, chan_st(r.a).send_waiters);
	gs_chan_destroy(r.a);
}

/* ================================================================== */
/* 2. doubleselect                                                      */

/* Scaled at run time (gs_stress): the debug kernel runs fewer. */
#define DS_VALUES	((uint64_t)gs_stress(20000, 2000))
#define DS_SENDERS	3
#define DS_MUXES	4

struct ds_ctx {
	gs_chan *in[DS_MUXES], *out;
	uint8_t *seen;
};

struct ds_thread {
	struct ds_ctx *ctx;
	int id;
	uint64_t count[DS_MUXES];	/* sender: sends per case; mux: forwarded */
	uint64_t total;
	uint64_t bad;			/* receiver: values out of range */
	int err;
	pthread_t thr;
};

static void *ds_sender(void *arg)
{
	struct ds_thread *t = arg;

	for (uint64_t v = t->id; v < DS_VALUES; v += DS_SENDERS) {
		gs_case cs[DS_MUXES];
		int ret;

		for (int i = 0; i < DS_MUXES; i++)
			cs[i] = gs_case_send(t->ctx->in[i], &v);
		ret = gs_select(cs, DS_MUXES, 0, GS_FOREVER);
		if (ret < 0 || ret >= DS_MUXES) {
			t->err = ret < 0 ? ret : -1000 - ret;
			return NULL;
		}
		t->count[ret]++;
		t->total++;
	}
	return NULL;
}

static void *ds_mux(void *arg)
{
	struct ds_thread *t = arg;
	uint64_t v;
	int ret;

	for (;;) {
		ret = gs_chan_recv(t->ctx->in[t->id], &v);
		if (ret == 0)
			return NULL;	/* closed */
		if (ret != 1) {
			t->err = ret;
			return NULL;
		}
		ret = gs_chan_send(t->ctx->out, &v);
		if (ret) {
			t->err = ret;
			return NULL;
		}
		t->total++;
	}
}

static void *ds_receiver(void *arg)
{
	struct ds_thread *t = arg;
	uint64_t v;
	int ret;

	for (;;) {
		ret = gs_chan_recv(t->ctx->out, &v);
		if (ret == 0)
			return NULL;
		if (ret != 1) {
			t->err = ret;
			return NULL;
		}
		if (v < DS_VALUES)
			t->ctx->seen[v]++;
		else
			t->bad++;
		t->total++;
	}
}

TEST_F(slow, doubleselect_delivers_each_value_once)
{
	struct ds_thread snd[DS_SENDERS], mux[DS_MUXES], rcv;
	struct ds_ctx ctx;
	uint64_t per_case[DS_MUXES] = { 0 }, sent = 0, forwarded = 0;
	uint64_t dup = 0, lost = 0;

	memset(snd, 0, sizeof(snd));
	memset(mux, 0, sizeof(mux));
	memset(&rcv, 0, sizeof(rcv));
	ctx.seen = calloc(DS_VALUES, 1);
	ASSERT_NE(NULL, ctx.seen);
	for (int i = 0; i < DS_MUXES; i++) {
		ASSERT_EQ(0, gs_chan_make(&ctx.in[i], sizeof(uint64_t), 0));
	}
	ASSERT_EQ(0, gs_chan_make(&ctx.out, sizeof(uint64_t), 0));

	rcv.ctx = &ctx;
	ASSERT_EQ(0, start_thread(&rcv.thr, ds_receiver, &rcv));
	for (int i = 0; i < DS_MUXES; i++) {
		mux[i].ctx = &ctx;
		mux[i].id = i;
		ASSERT_EQ(0, start_thread(&mux[i].thr, ds_mux, &mux[i]));
	}
	for (int i = 0; i < DS_SENDERS; i++) {
		snd[i].ctx = &ctx;
		snd[i].id = i;
		ASSERT_EQ(0, start_thread(&snd[i].thr, ds_sender, &snd[i]));
	}
	for (int i = 0; i < DS_SENDERS; i++) {
		pthread_join(snd[i].thr, NULL);
		EXPECT_EQ(0, snd[i].err) TH_LOG("sender %d", i);
		sent += snd[i].total;
		for (int c = 0; c < DS_MUXES; c++)
			per_case[c] += snd[i].count[c];
	}
	for (int i = 0; i < DS_MUXES; i++) {
		ASSERT_EQ(0, gs_chan_close(ctx.in[i]));
	}
	for (int i = 0; i < DS_MUXES; i++) {
		pthread_join(mux[i].thr, NULL);
		EXPECT_EQ(0, mux[i].err) TH_LOG("mux %d", i);
		forwarded += mux[i].total;
		/* Each mux forwarded exactly what the senders' selects gave it. */
		EXPECT_EQ(per_case[i], mux[i].total) TH_LOG("mux %d", i);
	}
	ASSERT_EQ(0, gs_chan_close(ctx.out));
	pthread_join(rcv.thr, NULL);
	EXPECT_EQ(0, rcv.err);

	for (uint64_t v = 0; v < DS_VALUES; v++) {
		if (ctx.seen[v] > 1)
			dup++;
		else if (ctx.seen[v] == 0)
			lost++;
	}
	EXPECT_EQ(DS_VALUES, sent);
	EXPECT_EQ(DS_VALUES, forwarded);
	EXPECT_EQ(DS_VALUES, rcv.total);
	EXPECT_EQ(0, rcv.bad);
	EXPECT_EQ(0, dup);
	EXPECT_EQ(0, lost);
	for (int i = 0; i < DS_MUXES; i++) {
		struct gosync_chan_status st = chan_st(ctx.in[i]);

		EXPECT_EQ(per_case[i], st.sends);
		EXPECT_EQ(per_case[i], st.recvs);
		gs_chan_destroy(ctx.in[i]);
	}
	gs_chan_destroy(ctx.out);
	free(ctx.seen);
}

/* ================================================================== */
/* 3. Fairness                                                          */

#define FAIR_N		((int)gs_stress(10000, 2000))

/* Integer square root, rounded down. */
static uint64_t isqrt(uint64_t n)
{
	uint64_t r = 0;

	while ((r + 1) * (r + 1) <= n)
		r++;
	return r;
}

FIXTURE(fair) {
	gs_chan *a, *b;
};

FIXTURE_VARIANT(fair) {
	bool send;	/* two send cases, else two receive cases */
	bool same;	/* both cases on one channel */
};

FIXTURE_VARIANT_ADD(fair, recv_two_channels) { .send = false, .same = false };
FIXTURE_VARIANT_ADD(fair, recv_one_channel_twice) { .send = false, .same = true };
FIXTURE_VARIANT_ADD(fair, send_two_channels) { .send = true, .same = false };
FIXTURE_VARIANT_ADD(fair, send_one_channel_twice) { .send = true, .same = true };

FIXTURE_SETUP(fair)
{
	ASSERT_EQ(0, gs_chan_make(&self->a, sizeof(uint32_t), 1));
	ASSERT_EQ(0, gs_chan_make(&self->b, sizeof(uint32_t), 1));
}

FIXTURE_TEARDOWN(fair)
{
	gs_chan_destroy(self->a);
	gs_chan_destroy(self->b);
}

TEST_F(fair, two_ready_cases_win_evenly)
{
	gs_chan *ch[2] = { self->a, variant->same ? self->a : self->b };
	uint32_t vals[2] = { 0x1111, 0x2222 }, d[2], x;
	uint32_t inside[2];	/* receive: the value waiting in ch[i] */
	uint64_t count[2] = { 0, 0 }, bad = 0;
	int slot[2] = { 0, variant->same ? 0 : 1 };	/* case -> inside[] */
	uint64_t bound = 5 * isqrt(FAIR_N);	/* 10 sd, sd = sqrt(n) / 2 */

	if (!variant->send) {
		/* Keep both cases ready: one value waits in each channel. */
		for (int i = 0; i < (variant->same ? 1 : 2); i++) {
			ASSERT_EQ(0, gs_chan_send(ch[i], &vals[i]));
			inside[i] = vals[i];
		}
	}
	for (int n = 0; n < FAIR_N; n++) {
		gs_case cs[2];
		int ret;

		for (int i = 0; i < 2; i++) {
			d[i] = 0;
			cs[i] = variant->send ? gs_case_send(ch[i], &vals[i]) :
						gs_case_recv(ch[i], &d[i]);
		}
		ret = gs_select(cs, 2, 0, GS_FOREVER);
		if (ret != 0 && ret != 1) {
			ASSERT_EQ(0, ret);
		}
		count[ret]++;
		if (variant->send) {
			/* The value that arrived is the committed case's own. */
			x = 0;
			if (gs_chan_try_recv(ch[ret], &x) != 1 || x != vals[ret])
				bad++;
		} else {
			if (d[ret] != inside[slot[ret]] || d[!ret] != 0)
				bad++;
			/* Refill, with the value of the case that won. */
			if (gs_chan_try_send(ch[ret], &vals[ret]))
				bad++;
			inside[slot[ret]] = vals[ret];
		}
	}
	EXPECT_EQ(0, bad);
	EXPECT_EQ(FAIR_N, count[0] + count[1]);
	TH_LOG("case 0 won %llu times, case 1 %llu times",
	       (unsigned long long)count[0], (unsigned long long)count[1]);
	for (int i = 0; i < 2; i++) {
		EXPECT_GE(FAIR_N / 2 + bound, count[i]);
		EXPECT_LE(FAIR_N / 2 - bound, count[i]);
		if (variant->send) {
			EXPECT_LT(FAIR_N / 10, count[i]);
		}
	}
}

/* ================================================================== */
/* 4. nonblock                                                          */

#define NB_VALUES	20
/* Tries, 1 ms apart, until the partner blocks: WAIT_LIMIT_MS at most. */

FIXTURE(nonblock) {
	gs_chan *ch;
};

FIXTURE_VARIANT(nonblock) {
	uint32_t cap;
};

FIXTURE_VARIANT_ADD(nonblock, unbuffered) { .cap = 0 };
FIXTURE_VARIANT_ADD(nonblock, buffered_1) { .cap = 1 };
FIXTURE_VARIANT_ADD(nonblock, buffered_8) { .cap = 8 };

FIXTURE_SETUP(nonblock)
{
	ASSERT_EQ(0, gs_chan_make(&self->ch, sizeof(uint64_t), variant->cap));
}

FIXTURE_TEARDOWN(nonblock)
{
	gs_chan_destroy(self->ch);
}

struct nb_partner {
	gs_chan *ch;
	bool send;
	uint64_t vals[NB_VALUES];
	int err;
	pthread_t thr;
};

/* Blocking sends of 1..NB_VALUES, or blocking receives of as many. */
static void *nb_partner_main(void *arg)
{
	struct nb_partner *p = arg;

	for (int i = 0; i < NB_VALUES; i++) {
		uint64_t dl = gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);
		uint64_t v = 1 + i;
		int ret;

		if (p->send) {
			ret = gs_chan_send_until(p->ch, &v, dl, 0);
			if (ret) {
				p->err = ret;
				return NULL;
			}
		} else {
			ret = gs_chan_recv_until(p->ch, &p->vals[i], dl, 0);
			if (ret != 1) {
				p->err = ret < 0 ? ret : -1000;
				return NULL;
			}
		}
	}
	return NULL;
}

TEST_F(nonblock, try_send_reaches_a_blocked_receiver)
{
	struct nb_partner p = { .ch = self->ch, .send = false };
	int max_tries = 0;

	ASSERT_EQ(0, start_thread(&p.thr, nb_partner_main, &p));
	for (int i = 0; i < NB_VALUES; i++) {
		uint64_t v = 1 + i;
		gs_case cs[1] = { gs_case_send(self->ch, &v) };
		uint64_t t0 = mono_ns();
		int tries = 0, ret;

		while ((ret = gs_select(cs, 1, GS_SELECT_DEFAULT, GS_FOREVER)) == -EAGAIN &&
		       ++tries && ms_since(t0) < WAIT_LIMIT_MS)
			sleep_ms(1);
		ASSERT_EQ(0, ret) TH_LOG("value %d after %d tries", i + 1, tries);
		if (tries > max_tries)
			max_tries = tries;
	}
	pthread_join(p.thr, NULL);
	EXPECT_EQ(0, p.err);
	for (int i = 0; i < NB_VALUES; i++) {
		EXPECT_EQ(1 + i, p.vals[i]);
	}
	TH_LOG("at most %d retries", max_tries);
}

TEST_F(nonblock, try_recv_reaches_a_blocked_sender)
{
	struct nb_partner p = { .ch = self->ch, .send = true };

	ASSERT_EQ(0, start_thread(&p.thr, nb_partner_main, &p));
	for (int i = 0; i < NB_VALUES; i++) {
		uint64_t v = POISON;
		gs_case cs[1] = { gs_case_recv(self->ch, &v) };
		uint64_t t0 = mono_ns();
		int tries = 0, ret;

		while ((ret = gs_select(cs, 1, GS_SELECT_DEFAULT, GS_FOREVER)) == -EAGAIN &&
		       ++tries && ms_since(t0) < WAIT_LIMIT_MS)
			sleep_ms(1);
		ASSERT_EQ(0, ret) TH_LOG("value %d after %d tries", i + 1, tries);
		EXPECT_TRUE(cs[0].ok);
		EXPECT_EQ(1 + i, v);
	}
	pthread_join(p.thr, NULL);
	EXPECT_EQ(0, p.err);
	EXPECT_EQ(0, gs_chan_len(self->ch));
}

/*
 * Once the partner is known to be parked, the very first try succeeds.
 * A parked sender on a buffered channel means a full buffer: the try
 * takes the oldest value and the sender's value moves to the tail.
 */
TEST_F(nonblock, first_try_succeeds_once_the_partner_is_parked)
{
	uint32_t cap = variant->cap;
	struct op_job j;
	uint64_t v, d;

	for (int round = 0; round < 5; round++) {
		/* Receiver parked: the buffer is empty, a send goes straight to it. */
		ASSERT_EQ(0, op_job_start(&j, self->ch, false, POISON));
		ASSERT_TRUE(wait_waiters(self->ch, 0, 1));
		v = 500 + round;
		gs_case s[1] = { gs_case_send(self->ch, &v) };
		EXPECT_EQ(0, gs_select(s, 1, GS_SELECT_DEFAULT, GS_FOREVER));
		pthread_join(j.thr, NULL);
		EXPECT_EQ(1, j.ret);
		EXPECT_EQ(500 + round, j.val);
		EXPECT_EQ(0, gs_chan_len(self->ch));

		/* Sender parked behind a full buffer. */
		for (uint32_t i = 0; i < cap; i++) {
			v = 10 + i;
			ASSERT_EQ(0, gs_chan_try_send(self->ch, &v));
		}
		ASSERT_EQ(0, op_job_start(&j, self->ch, true, 900 + round));
		ASSERT_TRUE(wait_waiters(self->ch, 1, 0));
		for (uint32_t i = 0; i <= cap; i++) {
			d = POISON;
			gs_case r[1] = { gs_case_recv(self->ch, &d) };
			EXPECT_EQ(0, gs_select(r, 1, GS_SELECT_DEFAULT, GS_FOREVER));
			EXPECT_EQ(i < cap ? 10 + i : 900 + (uint64_t)round, d);
			if (i == 0) {
				pthread_join(j.thr, NULL);
				EXPECT_EQ(0, j.ret);
				EXPECT_EQ(cap, (uint32_t)gs_chan_len(self->ch));
			}
		}
		EXPECT_EQ(0, gs_chan_len(self->ch));
	}
}

/* ================================================================== */
/* 5. select7: every form of send paired with every form of receive     */

enum form { FORM_PLAIN, FORM_SELECT1, FORM_SELECT2_NIL, FORM_SELECT2_IDLE, NFORMS };

static const char *const form_name[NFORMS] = {
	"plain", "select1", "select2+nil", "select2+idle",
};

/*
 * One side of a pairing, on @ch; @idle is a channel nobody else uses.
 * Returns 0 when the value moved through @ch, else a negative code.
 */
static int form_run(enum form f, bool send, gs_chan *ch, gs_chan *idle,
		    uint64_t *val)
{
	uint64_t dl = gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);
	uint64_t spare = POISON, other = 0xbad;
	gs_case cs[2], real;
	size_t n = 1, at = 0;
	int ret;

	if (f == FORM_PLAIN) {
		ret = send ? gs_chan_send_until(ch, val, dl, 0) :
			     gs_chan_recv_until(ch, val, dl, 0);
		if (ret < 0)
			return ret;
		return ret == (send ? 0 : 1) ? 0 : -1000;
	}
	real = send ? gs_case_send(ch, val) : gs_case_recv(ch, val);
	switch (f) {
	case FORM_SELECT2_NIL:
		cs[0] = send ? gs_case_send(NULL, &other) : gs_case_recv(NULL, &spare);
		cs[1] = real;
		n = 2;
		at = 1;
		break;
	case FORM_SELECT2_IDLE:
		cs[0] = real;
		cs[1] = send ? gs_case_send(idle, &other) : gs_case_recv(idle, &spare);
		n = 2;
		break;
	default:
		cs[0] = real;
		break;
	}
	ret = gs_select(cs, n, 0, dl);
	if (ret < 0)
		return ret;
	if ((size_t)ret != at)
		return -2000 - ret;
	if (!send && !cs[at].ok)
		return -3000;
	if (spare != POISON)
		return -4000;
	return 0;
}

struct form_job {
	enum form f;
	bool send;
	gs_chan *ch, *idle;
	uint64_t val;
	int ret;
	pthread_t thr;
};

static void *form_job_main(void *arg)
{
	struct form_job *j = arg;

	j->ret = form_run(j->f, j->send, j->ch, j->idle, &j->val);
	return NULL;
}

TEST(select7_every_send_form_meets_every_receive_form)
{
	gs_chan *ch, *idle_s, *idle_r;
	int combos = 0;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&idle_s, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&idle_r, sizeof(uint64_t), 0));
	for (int sf = 0; sf < NFORMS; sf++) {
		for (int rf = 0; rf < NFORMS; rf++) {
			for (int sender_first = 0; sender_first < 2; sender_first++) {
				uint64_t want = 1000 + combos++;
				struct form_job j = { 0 };
				uint64_t val;
				int ret;

				/* The side that parks first runs in the thread. */
				j.send = sender_first;
				j.f = sender_first ? sf : rf;
				j.ch = ch;
				j.idle = sender_first ? idle_s : idle_r;
				j.val = sender_first ? want : POISON;
				ASSERT_EQ(0, start_thread(&j.thr, form_job_main, &j));
				ASSERT_TRUE(wait_waiters(ch, sender_first, !sender_first));
				val = sender_first ? POISON : want;
				ret = form_run(sender_first ? rf : sf, !sender_first,
					       ch, sender_first ? idle_r : idle_s, &val);
				pthread_join(j.thr, NULL);
				EXPECT_EQ(0, ret) TH_LOG("%s -> %s, %s parked first",
					form_name[sf], form_name[rf],
					sender_first ? "sender" : "receiver");
				EXPECT_EQ(0, j.ret) TH_LOG("%s -> %s, %s parked first",
					form_name[sf], form_name[rf],
					sender_first ? "sender" : "receiver");
				EXPECT_EQ(want, sender_first ? val : j.val);
			}
		}
	}
	EXPECT_EQ(2 * NFORMS * NFORMS, combos);
	EXPECT_EQ((uint64_t)combos, chan_st(ch).sends);
	for (int i = 0; i < 3; i++) {
		struct gosync_chan_status st = chan_st(i == 0 ? ch : i == 1 ? idle_s : idle_r);

		EXPECT_EQ(0, st.send_waiters);
		EXPECT_EQ(0, st.recv_waiters);
	}
	EXPECT_EQ(0, chan_st(idle_s).sends);
	EXPECT_EQ(0, chan_st(idle_r).sends);
	gs_chan_destroy(ch);
	gs_chan_destroy(idle_s);
	gs_chan_destroy(idle_r);
}

/* ================================================================== */
/* 6. The concurrent prime sieve, and a cancellable pipeline            */

#define SIEVE_PRIMES	100

struct stage {
	gs_chan *in, *out, *done;
	uint64_t param;		/* sieve: the filter's prime; pipeline: count */
	int exit_case;		/* -1: ran to its end; else the case that ended it */
	int err;
	pthread_t thr;
};

/* Send @v on @out unless @done closes first: 0 sent, 1 done, <0 error. */
static int send_or_done(gs_chan *out, gs_chan *done, uint64_t *v)
{
	gs_case cs[2] = { gs_case_send(out, v), gs_case_recv(done, NULL) };
	int ret = gs_select(cs, 2, 0, GS_FOREVER);

	if (ret == 1 && cs[1].ok)
		return -1000;	/* nobody sends on done: it only closes */
	return ret;
}

/* Receive into @v from @in unless @done closes: 0 value, 1 done, 2 in closed. */
static int recv_or_done(gs_chan *in, gs_chan *done, uint64_t *v)
{
	gs_case cs[2] = { gs_case_recv(in, v), gs_case_recv(done, NULL) };
	int ret = gs_select(cs, 2, 0, GS_FOREVER);

	if (ret == 0 && !cs[0].ok)
		return 2;
	if (ret == 1 && cs[1].ok)
		return -1000;
	return ret;
}

static void *sieve_generate(void *arg)
{
	struct stage *s = arg;

	for (uint64_t n = 2;; n++) {
		int ret = send_or_done(s->out, s->done, &n);

		if (ret) {
			s->exit_case = ret;
			if (ret != 1)
				s->err = ret;
			return NULL;
		}
	}
}

static void *sieve_filter(void *arg)
{
	struct stage *s = arg;
	uint64_t v;
	int ret;

	for (;;) {
		ret = recv_or_done(s->in, s->done, &v);
		if (ret)
			break;
		if (v % s->param == 0)
			continue;
		ret = send_or_done(s->out, s->done, &v);
		if (ret)
			break;
	}
	s->exit_case = ret;
	if (ret != 1)
		s->err = ret;
	return NULL;
}

TEST_F(slow, prime_sieve_first_100_primes)
{
	struct stage st[SIEVE_PRIMES + 1];
	gs_chan *ch[SIEVE_PRIMES + 1], *done;
	uint64_t got[SIEVE_PRIMES], want[SIEVE_PRIMES];
	int nwant = 0;

	/* The reference list, by trial division. */
	for (uint64_t n = 2; nwant < SIEVE_PRIMES; n++) {
		bool prime = true;

		for (uint64_t d = 2; d * d <= n; d++)
			if (n % d == 0) {
				prime = false;
				break;
			}
		if (prime)
			want[nwant++] = n;
	}
	ASSERT_EQ(541, want[SIEVE_PRIMES - 1]);

	memset(st, 0, sizeof(st));
	ASSERT_EQ(0, gs_chan_make(&done, 0, 0));
	ASSERT_EQ(0, gs_chan_make(&ch[0], sizeof(uint64_t), 0));
	st[0] = (struct stage){ .out = ch[0], .done = done, .exit_case = -1 };
	ASSERT_EQ(0, start_thread(&st[0].thr, sieve_generate, &st[0]));
	for (int i = 0; i < SIEVE_PRIMES; i++) {
		uint64_t p = 0;

		ASSERT_EQ(1, gs_chan_recv_until(ch[i], &p,
			gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0)) TH_LOG("prime %d", i);
		got[i] = p;
		ASSERT_EQ(0, gs_chan_make(&ch[i + 1], sizeof(uint64_t), 0));
		st[i + 1] = (struct stage){
			.in = ch[i], .out = ch[i + 1], .done = done,
			.param = p, .exit_case = -1,
		};
		ASSERT_EQ(0, start_thread(&st[i + 1].thr, sieve_filter, &st[i + 1]));
	}
	ASSERT_EQ(0, gs_chan_close(done));
	for (int i = 0; i <= SIEVE_PRIMES; i++) {
		pthread_join(st[i].thr, NULL);
		EXPECT_EQ(0, st[i].err) TH_LOG("stage %d", i);
		EXPECT_EQ(1, st[i].exit_case) TH_LOG("stage %d", i);
	}
	for (int i = 0; i < SIEVE_PRIMES; i++) {
		EXPECT_EQ(want[i], got[i]) TH_LOG("prime %d", i);
	}
	for (int i = 0; i <= SIEVE_PRIMES; i++) {
		struct gosync_chan_status s = chan_st(ch[i]);

		EXPECT_EQ(0, s.send_waiters + s.recv_waiters) TH_LOG("chan %d", i);
		gs_chan_destroy(ch[i]);
	}
	gs_chan_destroy(done);
}

/*
 * Power series on chains of channels, after Go's test/chan/powser: a
 * series is a stream of rational coefficients on a channel. exp(x) is
 * defined by feedback, E = 1 + integral(E): the integrator reads the
 * series it produces through a splitter that copies each coefficient to
 * two outputs with a select (whichever reader is ready first). Then
 * E * E, a Cauchy product of two copies, must be exp(2x).
 */
/* Up to 11!: sums of products of such denominators stay in int64. */
#define SERIES_TERMS	12

struct rat {
	int64_t num, den;
};

static int64_t gcd64(int64_t a, int64_t b)
{
	while (b) {
		int64_t t = a % b;

		a = b;
		b = t;
	}
	return a < 0 ? -a : a;
}

static struct rat rat_make(int64_t num, int64_t den)
{
	int64_t g = gcd64(num, den);

	if (!g)
		g = 1;
	return (struct rat){ num / g, den / g };
}

static struct rat rat_add(struct rat a, struct rat b)
{
	return rat_make(a.num * b.den + b.num * a.den, a.den * b.den);
}

static struct rat rat_mul(struct rat a, struct rat b)
{
	return rat_make(a.num * b.num, a.den * b.den);
}

struct series_stage {
	pthread_t thr;
	gs_chan *in, *in2, *out, *out2;
	int terms;
	int err;
};

/* out = 1 + integral(in): 1, in[0]/1, in[1]/2, ... */
static void *series_integrate(void *arg)
{
	struct series_stage *s = arg;
	struct rat c = { 1, 1 }, a;

	if (gs_chan_send(s->out, &c))
		s->err = -1;
	for (int n = 1; n < s->terms && !s->err; n++) {
		if (gs_chan_recv(s->in, &a) != 1) {
			s->err = -2;
			break;
		}
		c = rat_mul(a, rat_make(1, n));
		if (gs_chan_send(s->out, &c))
			s->err = -3;
	}
	return NULL;
}

/* Copy each coefficient of in to out and out2, serving whoever is ready. */
static void *series_split(void *arg)
{
	struct series_stage *s = arg;
	struct rat a;

	for (int n = 0; n < s->terms && !s->err; n++) {
		if (gs_chan_recv(s->in, &a) != 1) {
			s->err = -4;
			break;
		}
		gs_case cs[2] = { gs_case_send(s->out, &a),
				  gs_case_send(s->out2, &a) };
		int first = gs_select(cs, 2, 0, GS_FOREVER);

		if (first < 0 || gs_chan_send(first ? s->out : s->out2, &a))
			s->err = -5;
	}
	return NULL;
}

/* out = in * in2 (Cauchy product). */
static void *series_multiply(void *arg)
{
	struct series_stage *s = arg;
	struct rat a[SERIES_TERMS], b[SERIES_TERMS];

	for (int n = 0; n < s->terms && !s->err; n++) {
		struct rat c = { 0, 1 };

		if (gs_chan_recv(s->in, &a[n]) != 1 ||
		    gs_chan_recv(s->in2, &b[n]) != 1) {
			s->err = -6;
			break;
		}
		for (int k = 0; k <= n; k++)
			c = rat_add(c, rat_mul(a[k], b[n - k]));
		if (gs_chan_send(s->out, &c))
			s->err = -7;
	}
	return NULL;
}

TEST_F(slow, power_series_exp_by_feedback)
{
	/* e: integrator out; f: feedback into it; x: the series, for use. */
	gs_chan *e, *f, *x, *x1, *x2, *prod;
	struct series_stage integ = { .terms = SERIES_TERMS };
	struct series_stage split = { .terms = SERIES_TERMS };
	struct series_stage split2 = { .terms = SERIES_TERMS };
	struct series_stage mul = { .terms = SERIES_TERMS };
	int64_t fact = 1, pow2 = 1;
	struct rat c;

	ASSERT_EQ(0, gs_chan_make(&e, sizeof(struct rat), 0));
	ASSERT_EQ(0, gs_chan_make(&f, sizeof(struct rat), 1));
	ASSERT_EQ(0, gs_chan_make(&x, sizeof(struct rat), 0));
	ASSERT_EQ(0, gs_chan_make(&x1, sizeof(struct rat), 0));
	ASSERT_EQ(0, gs_chan_make(&x2, sizeof(struct rat), SERIES_TERMS));
	ASSERT_EQ(0, gs_chan_make(&prod, sizeof(struct rat), 0));
	/* E = 1 + integral(E): e -> split -> (f back into integ, x out). */
	integ.in = f;
	integ.out = e;
	split.in = e;
	split.out = f;
	split.out2 = x;
	/* x -> split2 -> (x1, x2), and prod = x1 * x2. */
	split2.in = x;
	split2.out = x1;
	split2.out2 = x2;
	mul.in = x1;
	mul.in2 = x2;
	mul.out = prod;
	ASSERT_EQ(0, start_thread(&integ.thr, series_integrate, &integ));
	ASSERT_EQ(0, start_thread(&split.thr, series_split, &split));
	ASSERT_EQ(0, start_thread(&split2.thr, series_split, &split2));
	ASSERT_EQ(0, start_thread(&mul.thr, series_multiply, &mul));

	/* exp(x)^2 = exp(2x): coefficient n is 2^n / n!. */
	for (int n = 0; n < SERIES_TERMS; n++) {
		if (n) {
			fact *= n;
			pow2 *= 2;
		}
		ASSERT_EQ(1, gs_chan_recv_until(prod, &c,
			gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0)) TH_LOG("term %d", n);
		struct rat want = rat_make(pow2, fact);

		EXPECT_EQ(want.num, c.num) TH_LOG("term %d: %jd/%jd", n,
						  (intmax_t)c.num, (intmax_t)c.den);
		EXPECT_EQ(want.den, c.den) TH_LOG("term %d", n);
	}
	/* The splitter's last copy into f stays there, unread. */
	pthread_join(integ.thr, NULL);
	pthread_join(split.thr, NULL);
	pthread_join(split2.thr, NULL);
	pthread_join(mul.thr, NULL);
	EXPECT_EQ(0, integ.err);
	EXPECT_EQ(0, split.err);
	EXPECT_EQ(0, split2.err);
	EXPECT_EQ(0, mul.err);
	gs_chan_destroy(e);
	gs_chan_destroy(f);
	gs_chan_destroy(x);
	gs_chan_destroy(x1);
	gs_chan_destroy(x2);
	gs_chan_destroy(prod);
}

#define PIPE_N		((int)gs_stress(2000, 400))
#define PIPE_CANCEL_AT	25

static void *pipe_generate(void *arg)
{
	struct stage *s = arg;
	int ret = 0;

	for (uint64_t i = 1; i <= s->param; i++) {
		ret = send_or_done(s->out, s->done, &i);
		if (ret)
			break;
	}
	s->exit_case = ret ? ret : -1;
	if (ret && ret != 1)
		s->err = ret;
	if (gs_chan_close(s->out))
		s->err = -2000;
	return NULL;
}

static void *pipe_square(void *arg)
{
	struct stage *s = arg;
	uint64_t v, sq;
	int ret;

	for (;;) {
		ret = recv_or_done(s->in, s->done, &v);
		if (ret)
			break;
		sq = v * v;
		ret = send_or_done(s->out, s->done, &sq);
		if (ret)
			break;
	}
	s->exit_case = ret == 2 ? -1 : ret;
	if (ret != 1 && ret != 2)
		s->err = ret;
	if (gs_chan_close(s->out))
		s->err = -2000;
	return NULL;
}

static uint64_t sum_squares(uint64_t n)
{
	return n * (n + 1) * (2 * n + 1) / 6;
}

TEST_F(slow, pipeline_generate_square_sum)
{
	for (int cancel = 0; cancel < 2; cancel++) {
		struct stage gen = { .exit_case = -1 }, sq = { .exit_case = -1 };
		gs_chan *nums, *squares, *done;
		uint64_t v, sum = 0, n = 0, want_n;
		int ret;

		ASSERT_EQ(0, gs_chan_make(&done, 0, 0));
		ASSERT_EQ(0, gs_chan_make(&nums, sizeof(uint64_t), 0));
		ASSERT_EQ(0, gs_chan_make(&squares, sizeof(uint64_t), 8));
		gen.out = nums;
		gen.done = done;
		gen.param = PIPE_N;
		sq.in = nums;
		sq.out = squares;
		sq.done = done;
		ASSERT_EQ(0, start_thread(&gen.thr, pipe_generate, &gen));
		ASSERT_EQ(0, start_thread(&sq.thr, pipe_square, &sq));

		want_n = cancel ? PIPE_CANCEL_AT : PIPE_N;
		while (n < want_n) {
			ret = gs_chan_recv_until(squares, &v,
				gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0);
			if (ret != 1)
				break;
			n++;
			if (v != n * n)
				break;
			sum += v;
		}
		EXPECT_EQ(want_n, n);
		EXPECT_EQ(sum_squares(want_n), sum);
		if (cancel) {
			ASSERT_EQ(0, gs_chan_close(done));
		}
		/* Both stages end by themselves, the consumer reading no more. */
		pthread_join(gen.thr, NULL);
		pthread_join(sq.thr, NULL);
		/*
		 * The rest: nothing after a full run; after a cancel, at most
		 * a buffer's worth, still in order; then closed.
		 */
		for (;;) {
			ret = gs_chan_recv_until(squares, &v,
				gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0);
			if (ret != 1)
				break;
			n++;
			EXPECT_EQ(n * n, v);
		}
		EXPECT_EQ(0, ret);	/* closed by the square stage */
		if (!cancel) {
			EXPECT_EQ(PIPE_N, n);
		} else {
			EXPECT_GE(PIPE_CANCEL_AT + 8, n);
		}
		EXPECT_EQ(0, gen.err);
		EXPECT_EQ(0, sq.err);
		/* Who stopped how: by their input's end, or by done. */
		EXPECT_EQ(cancel ? 1 : -1, gen.exit_case);
		/*
		 * Once cancelled, the generator stops and closes its output, so
		 * the square stage may find done and its closed input ready at
		 * once; Go picks either, uniformly.
		 */
		if (cancel) {
			EXPECT_TRUE(sq.exit_case == 1 || sq.exit_case == -1);
		} else {
			EXPECT_EQ(-1, sq.exit_case);
		}
		if (!cancel) {
			ASSERT_EQ(0, gs_chan_close(done));
		}
		gs_chan_destroy(nums);
		gs_chan_destroy(squares);
		gs_chan_destroy(done);
	}
}

/* ================================================================== */
/* 7. Selects across processes                                          */

struct sel_report {
	int ret;
	int ok;
	uint64_t value;
	uint64_t value2;
};

static struct sel_report *sel_report_new(void)
{
	struct sel_report *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (r == MAP_FAILED)
		return NULL;
	r->ret = INT_MIN;
	r->ok = -1;
	r->value = r->value2 = POISON;
	return r;
}

TEST(select_in_child_receives_from_parent)
{
	struct sel_report *rep = sel_report_new();
	gs_chan *a, *b;
	uint64_t v = 0x5151;
	pid_t pid;

	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&b, sizeof(uint64_t), 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t da = POISON, db = POISON;
		gs_case cs[2] = { gs_case_recv(a, &da), gs_case_recv(b, &db) };

		rep->ret = gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS));
		rep->ok = rep->ret == 1 ? cs[1].ok : -1;
		rep->value = db;
		rep->value2 = da;
		_exit(0);
	}
	EXPECT_TRUE(wait_waiters(a, 0, 1));
	EXPECT_TRUE(wait_waiters(b, 0, 1));
	EXPECT_EQ(0, gs_chan_send_until(b, &v, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(1, rep->ret);
	EXPECT_EQ(1, rep->ok);
	EXPECT_EQ(0x5151, rep->value);
	EXPECT_EQ(POISON, rep->value2);
	EXPECT_EQ(0, chan_st(a).recv_waiters);
	EXPECT_EQ(0, chan_st(b).recv_waiters);
	EXPECT_EQ(0, chan_st(a).recvs);
	gs_chan_destroy(a);
	gs_chan_destroy(b);
	munmap(rep, sizeof(*rep));
}

TEST(select_in_child_sends_to_parent)
{
	struct sel_report *rep = sel_report_new();
	gs_chan *a, *b;
	uint64_t v = POISON;
	pid_t pid;

	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&b, sizeof(uint64_t), 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t va = 10, vb = 20;
		gs_case cs[2] = { gs_case_send(a, &va), gs_case_send(b, &vb) };

		rep->ret = gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS));
		_exit(0);
	}
	EXPECT_TRUE(wait_waiters(a, 1, 0));
	EXPECT_TRUE(wait_waiters(b, 1, 0));
	EXPECT_EQ(1, gs_chan_recv_until(a, &v, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
	EXPECT_EQ(10, v);
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(0, rep->ret);
	/* The other case left nothing behind. */
	EXPECT_EQ(0, chan_st(b).send_waiters);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(b, &v));
	EXPECT_EQ(0, chan_st(b).sends);
	gs_chan_destroy(a);
	gs_chan_destroy(b);
	munmap(rep, sizeof(*rep));
}

TEST(select_on_channel_passed_over_unix_socket)
{
	struct sel_report *rep = sel_report_new();
	int sv[2];
	gs_chan *c, *back;
	uint64_t v = 777, got = POISON;
	pid_t pid;

	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_chan *cc, *bb;
		uint64_t d = POISON, r;
		int fd1, fd2;

		close(sv[0]);
		fd1 = gs_fd_recv(sv[1]);
		fd2 = gs_fd_recv(sv[1]);
		if (fd1 < 0 || fd2 < 0 || gs_chan_from_fd(&cc, fd1) ||
		    gs_chan_from_fd(&bb, fd2))
			_exit(2);
		/* Receive through a select with a nil case, answer through one. */
		gs_case cs[2] = { gs_case_recv(NULL, &r), gs_case_recv(cc, &d) };
		rep->ret = gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS));
		rep->ok = cs[1].ok;
		rep->value = d;
		r = d + 1;
		gs_case ans[2] = { gs_case_send(bb, &r), gs_case_send(NULL, &r) };
		if (gs_select(ans, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS)) != 0)
			_exit(3);
		_exit(0);
	}
	close(sv[1]);
	/* Made after the fork: only the socket brings them to the child. */
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&back, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_fd_send(sv[0], gs_chan_fd(c)));
	ASSERT_EQ(0, gs_fd_send(sv[0], gs_chan_fd(back)));
	EXPECT_TRUE(wait_waiters(c, 0, 1));
	EXPECT_EQ(0, gs_chan_send_until(c, &v, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
	EXPECT_EQ(1, gs_chan_recv_until(back, &got, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(1, rep->ret);
	EXPECT_EQ(1, rep->ok);
	EXPECT_EQ(777, rep->value);
	EXPECT_EQ(778, got);
	close(sv[0]);
	gs_chan_destroy(c);
	gs_chan_destroy(back);
	munmap(rep, sizeof(*rep));
}

TEST(killed_child_in_select_leaves_no_waiter)
{
	gs_chan *a, *b;
	uint64_t v = 42, d = POISON;
	pid_t pid;
	int status;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&b, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_chan_send(b, &v));	/* full: a send case blocks */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t x = 1, y;
		gs_case cs[2] = { gs_case_recv(a, &y), gs_case_send(b, &x) };

		gs_select(cs, 2, 0, GS_FOREVER);
		_exit(9);
	}
	ASSERT_TRUE(wait_waiters(a, 0, 1));
	ASSERT_TRUE(wait_waiters(b, 1, 0));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	EXPECT_EQ(0, chan_st(a).recv_waiters);
	EXPECT_EQ(0, chan_st(b).send_waiters);
	/* Both channels still work, and nothing reached them. */
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(a, &v));
	EXPECT_EQ(1, gs_chan_try_recv(b, &d));
	EXPECT_EQ(42, d);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(b, &d));
	EXPECT_EQ(1, chan_st(b).sends);
	gs_chan_destroy(a);
	gs_chan_destroy(b);
}

/* ================================================================== */
/* 8. Timer channels                                                    */

TEST(after_fires_once_in_its_window)
{
	gs_chan *t;
	uint64_t t0, t1, fired = 0, x;

	t0 = mono_ns();
	ASSERT_EQ(0, gs_after(&t, 50 * NS_PER_MS));
	EXPECT_EQ(sizeof(uint64_t), gs_chan_elem_size(t));
	EXPECT_EQ(1, gs_chan_cap(t));
	ASSERT_EQ(1, gs_chan_recv_until(t, &fired, t0 + 50 * NS_PER_MS + LATE_NS, 0));
	t1 = mono_ns();
	EXPECT_LE(t0 + 50 * NS_PER_MS, t1);
	/* The value is the firing time on CLOCK_MONOTONIC. */
	EXPECT_LE(t0 + 50 * NS_PER_MS, fired);
	EXPECT_GE(t1, fired);
	/* Once only. */
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(t, &x, gs_deadline_in(100 * NS_PER_MS), 0));
	EXPECT_EQ(1, chan_st(t).sends);
	gs_chan_destroy(t);
}

TEST(timer_stop_before_firing)
{
	gs_chan *t;
	uint64_t x = POISON;

	ASSERT_EQ(0, gs_after(&t, 200 * NS_PER_MS));
	EXPECT_EQ(1, gs_timer_stop(t));
	EXPECT_EQ(0, gs_timer_stop(t));	/* already stopped */
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(t, &x, gs_deadline_in(400 * NS_PER_MS), 0));
	EXPECT_EQ(POISON, x);
	EXPECT_EQ(0, chan_st(t).sends);
	gs_chan_destroy(t);
}

TEST(timer_stop_after_firing)
{
	gs_chan *t;
	uint64_t x = POISON;

	/* Fired and received: nothing left to stop. */
	ASSERT_EQ(0, gs_after(&t, 10 * NS_PER_MS));
	ASSERT_EQ(1, gs_chan_recv_until(t, &x, gs_deadline_in(LATE_NS), 0));
	EXPECT_EQ(0, gs_timer_stop(t));
	gs_chan_destroy(t);

	/*
	 * Fired, not received: stop discards the stale value and, as Go
	 * 1.23's Timer.Stop, reports that it stopped something (1).
	 */
	ASSERT_EQ(0, gs_after(&t, 10 * NS_PER_MS));
	ASSERT_TRUE(wait_len(t, 1));
	EXPECT_EQ(1, gs_timer_stop(t));
	EXPECT_EQ(0, gs_chan_len(t));
	x = POISON;
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(t, &x));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(t, &x, gs_deadline_in(100 * NS_PER_MS), 0));
	EXPECT_EQ(POISON, x);
	gs_chan_destroy(t);
}

TEST(timer_reset_rearms)
{
	gs_chan *t;
	uint64_t t0, fired = 0;

	/* Reset after firing: 0, and it fires again at the new time. */
	ASSERT_EQ(0, gs_after(&t, 10 * NS_PER_MS));
	ASSERT_EQ(1, gs_chan_recv_until(t, &fired, gs_deadline_in(LATE_NS), 0));
	t0 = mono_ns();
	EXPECT_EQ(0, gs_timer_reset(t, 50 * NS_PER_MS));
	ASSERT_EQ(1, gs_chan_recv_until(t, &fired, t0 + 50 * NS_PER_MS + LATE_NS, 0));
	EXPECT_LE(t0 + 50 * NS_PER_MS, fired);
	EXPECT_LE(t0 + 50 * NS_PER_MS, mono_ns());

	/* Reset while pending: 1, and the old time no longer counts. */
	EXPECT_EQ(0, gs_timer_reset(t, PENDING_NS));
	t0 = mono_ns();
	EXPECT_EQ(1, gs_timer_reset(t, 60 * NS_PER_MS));
	ASSERT_EQ(1, gs_chan_recv_until(t, &fired, t0 + 60 * NS_PER_MS + LATE_NS, 0));
	EXPECT_LE(t0 + 60 * NS_PER_MS, fired);

	/* Reset a stopped timer: 0, and it fires. */
	EXPECT_EQ(0, gs_timer_reset(t, PENDING_NS));
	EXPECT_EQ(1, gs_timer_stop(t));
	t0 = mono_ns();
	EXPECT_EQ(0, gs_timer_reset(t, 20 * NS_PER_MS));
	ASSERT_EQ(1, gs_chan_recv_until(t, &fired, t0 + 20 * NS_PER_MS + LATE_NS, 0));
	EXPECT_LE(t0 + 20 * NS_PER_MS, fired);
	EXPECT_EQ(4, chan_st(t).sends);
	gs_chan_destroy(t);
}

TEST(timer_created_stopped_and_in_the_past)
{
	struct gosync_timer_set set = { .when = GOSYNC_DEADLINE_NONE };
	gs_chan *t;
	uint64_t x = POISON, t0;
	int fd;

	fd = xioctl(gs_device_fd(), GOSYNC_IOC_TIMER_CREATE, &set);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, gs_chan_from_fd(&t, fd));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(t, &x, gs_deadline_in(100 * NS_PER_MS), 0));
	EXPECT_EQ(0, gs_timer_stop(t));
	t0 = mono_ns();
	EXPECT_EQ(0, gs_timer_reset(t, 20 * NS_PER_MS));
	ASSERT_EQ(1, gs_chan_recv_until(t, &x, gs_deadline_in(LATE_NS), 0));
	EXPECT_LE(t0 + 20 * NS_PER_MS, x);
	gs_chan_destroy(t);

	/* A time already past fires at once. */
	t0 = mono_ns();
	ASSERT_EQ(0, gs_timer_at(&t, t0 - NS_PER_SEC, 0));
	ASSERT_EQ(1, gs_chan_recv_until(t, &x, gs_deadline_in(LATE_NS), 0));
	EXPECT_LE(t0, x);
	EXPECT_GE(mono_ns(), x);
	gs_chan_destroy(t);
}

TEST(timer_on_the_realtime_clock)
{
	gs_chan *t;
	uint64_t r0, fired = 0;

	r0 = real_ns();
	ASSERT_EQ(0, gs_timer_at(&t, r0 + 50 * NS_PER_MS, GS_CLOCK_REALTIME));
	ASSERT_EQ(1, gs_chan_recv_until(t, &fired, r0 + 50 * NS_PER_MS + LATE_NS,
					GS_CLOCK_REALTIME));
	EXPECT_LE(r0 + 50 * NS_PER_MS, fired);
	EXPECT_GE(real_ns(), fired);

	/* Re-armed on the realtime clock through the raw reset. */
	struct gosync_timer_set set = {
		.when = real_ns() + 30 * NS_PER_MS, .flags = GOSYNC_CLOCK_REALTIME,
	};

	r0 = set.when - 30 * NS_PER_MS;
	EXPECT_EQ(0, xioctl(gs_chan_fd(t), GOSYNC_IOC_TIMER_RESET, &set));
	ASSERT_EQ(1, gs_chan_recv_until(t, &fired, gs_deadline_in(LATE_NS), 0));
	EXPECT_LE(r0 + 30 * NS_PER_MS, fired);
	EXPECT_GE(real_ns(), fired);
	gs_chan_destroy(t);
}

TEST(timer_stopped_and_reset_under_a_waiting_select)
{
	struct sel_job j = { .n = 2 };
	uint64_t fired = POISON, t0;
	gs_chan *t;

	ASSERT_EQ(0, gs_after(&t, PENDING_NS));
	j.cs[0] = gs_case_recv(NULL, NULL);
	j.cs[1] = gs_case_recv(t, &fired);
	ASSERT_EQ(0, sel_job_start(&j));
	ASSERT_TRUE(wait_waiters(t, 0, 1));
	EXPECT_EQ(1, gs_timer_stop(t));
	sleep_ms(50);
	EXPECT_EQ(INT_MIN, j.ret);	/* still waiting */
	EXPECT_EQ(1, chan_st(t).recv_waiters);
	t0 = mono_ns();
	EXPECT_EQ(0, gs_timer_reset(t, 30 * NS_PER_MS));
	pthread_join(j.thr, NULL);
	EXPECT_EQ(1, j.ret);
	EXPECT_TRUE(j.cs[1].ok);
	EXPECT_LE(t0 + 30 * NS_PER_MS, fired);
	EXPECT_GE(mono_ns(), fired);
	EXPECT_EQ(0, chan_st(t).recv_waiters);
	EXPECT_EQ(0, gs_chan_len(t));
	gs_chan_destroy(t);
}

TEST(ticker_delivers_ticks)
{
	gs_chan *t;
	uint64_t t0, ticks[5], x;

	t0 = mono_ns();
	ASSERT_EQ(0, gs_tick(&t, 20 * NS_PER_MS));
	for (int i = 0; i < 5; i++) {
		ASSERT_EQ(1, gs_chan_recv_until(t, &ticks[i], gs_deadline_in(LATE_NS), 0))
			TH_LOG("tick %d", i);
		/* The i-th tick is due at the earliest i + 1 periods in. */
		EXPECT_LE(t0 + (uint64_t)(i + 1) * 20 * NS_PER_MS, ticks[i]);
		if (i) {
			EXPECT_LT(ticks[i - 1], ticks[i]);
		}
	}
	EXPECT_LE(t0 + 100 * NS_PER_MS, mono_ns());
	EXPECT_GE(t0 + 100 * NS_PER_MS + 5 * LATE_NS, mono_ns());
	/* Stopped: a ticker is always pending, and then it is silent. */
	EXPECT_EQ(1, gs_timer_stop(t));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(t, &x, gs_deadline_in(100 * NS_PER_MS), 0));
	gs_chan_destroy(t);
}

TEST(ticker_drops_ticks_nobody_takes)
{
	struct gosync_chan_status st;
	gs_chan *t;
	uint64_t t0, seen, first = 0, x = POISON;

	t0 = mono_ns();
	ASSERT_EQ(0, gs_tick(&t, 200 * NS_PER_MS));
	/*
	 * The first tick (due at 200 ms), seen waiting at @seen; then more
	 * ticks are due (at 400 ms, and 200 ms after @seen at the latest).
	 */
	ASSERT_TRUE(wait_len(t, 1));
	seen = mono_ns();
	while (mono_ns() < t0 + 500 * NS_PER_MS || mono_ns() < seen + 250 * NS_PER_MS)
		sleep_ms(10);
	st = chan_st(t);
	EXPECT_EQ(1, st.len);
	EXPECT_EQ(1, st.sends);	/* the later ticks were dropped, not queued */
	EXPECT_EQ(1, gs_chan_try_recv(t, &first));
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(t, &x));
	/*
	 * What waited was the first tick, not a later one: it was there at
	 * @seen already (a tick's value is when it fired).
	 */
	EXPECT_LE(t0 + 200 * NS_PER_MS, first);
	EXPECT_GE(seen, first);
	/* Ticking goes on. */
	ASSERT_EQ(1, gs_chan_recv_until(t, &x, gs_deadline_in(LATE_NS), 0));
	EXPECT_LE(t0 + 600 * NS_PER_MS, x);
	gs_chan_destroy(t);
}

TEST(ticker_reset_changes_the_period)
{
	gs_chan *t;
	uint64_t t0, x = 0, prev = 0;

	ASSERT_EQ(0, gs_tick(&t, PENDING_NS));
	t0 = mono_ns();
	EXPECT_EQ(1, gs_ticker_reset(t, 30 * NS_PER_MS));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(1, gs_chan_recv_until(t, &x, gs_deadline_in(LATE_NS), 0));
		EXPECT_LE(t0 + (uint64_t)(i + 1) * 30 * NS_PER_MS, x);
		EXPECT_LT(prev, x);
		prev = x;
	}
	/* Three ticks before the old period's first one would have come. */
	EXPECT_GT(t0 + PENDING_NS, mono_ns());

	/* And back to a long period: nothing within 200 ms, no stale tick. */
	EXPECT_EQ(1, gs_ticker_reset(t, 10 * NS_PER_SEC));
	EXPECT_EQ(0, gs_chan_len(t));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(t, &x, gs_deadline_in(200 * NS_PER_MS), 0));
	gs_chan_destroy(t);
}

/* The hrtimer expiries of timer @t so far (fdinfo), -1 if unknown. */
static long long timer_fires(gs_chan *t)
{
	return fdinfo_num(gs_chan_fd(t), "timer-fires");
}

/* Context switches of the whole machine so far (/proc/stat), or 0. */
static unsigned long long machine_ctxt(void)
{
	unsigned long long n = 0;
	char line[256];
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ctxt %llu", &n) == 1)
			break;
	fclose(f);
	return n;
}

#define IDLE_TICKERS	8

/*
 * A ticker nobody receives from costs nothing: its first tick is held
 * in the channel and, until it is received, the hrtimer is not armed
 * (every later tick would be dropped anyway). The window only asserts
 * that nothing happens, so a slow machine cannot fail it.
 */
TEST(idle_ticker_fires_once_until_received)
{
	gs_chan *t[IDLE_TICKERS];
	unsigned long long c0, c1;
	uint64_t t0, x = POISON;

	t0 = mono_ns();
	for (int i = 0; i < IDLE_TICKERS; i++) {
		ASSERT_EQ(0, gs_tick(&t[i], GOSYNC_TIMER_MIN_PERIOD));
	}
	for (int i = 0; i < IDLE_TICKERS; i++) {
		ASSERT_TRUE(wait_len(t[i], 1)) TH_LOG("ticker %d never ticked", i);
	}
	c0 = machine_ctxt();
	sleep_ms(1000);
	c1 = machine_ctxt();
	TH_LOG("%d idle tickers of %u ns: %llu context switches in 1 s",
	       IDLE_TICKERS, GOSYNC_TIMER_MIN_PERIOD, c1 - c0);
	for (int i = 0; i < IDLE_TICKERS; i++) {
		struct gosync_chan_status st = chan_st(t[i]);

		EXPECT_EQ(1, timer_fires(t[i])) TH_LOG("ticker %d", i);
		EXPECT_EQ(1, st.len);
		EXPECT_EQ(1, st.sends);
		EXPECT_EQ(0, st.recvs);
	}
	/* The held tick is the first one; receiving it lets the next come. */
	EXPECT_EQ(1, gs_chan_try_recv(t[0], &x));
	EXPECT_LE(t0 + GOSYNC_TIMER_MIN_PERIOD, x);
	ASSERT_TRUE(wait_len(t[0], 1));
	sleep_ms(100);
	EXPECT_EQ(2, timer_fires(t[0]));
	EXPECT_EQ(2, chan_st(t[0]).sends);
	for (int i = 0; i < IDLE_TICKERS; i++) {
		EXPECT_EQ(1, gs_timer_stop(t[i]));
		gs_chan_destroy(t[i]);
	}
}

#define GRID_PERIOD	(20 * NS_PER_MS)
#define GRID_TICKS	10

/* The index of the period of ticker time @v, for a first tick at @when. */
static uint64_t grid_slot(uint64_t v, uint64_t when)
{
	return v < when ? UINT64_MAX : (v - when) / GRID_PERIOD;
}

/*
 * A receiver that keeps up gets every tick, on the grid of the period
 * from the first tick (never two in one period, never early), and each
 * costs one hrtimer expiry. One that falls behind gets the tick held in
 * the channel, then the first tick of the grid after its receive: those
 * in between are dropped, as Go's ticker drops them, and never fired.
 */
TEST(ticker_keeps_its_grid_and_drops_what_a_slow_receiver_misses)
{
	struct gosync_timer_set set = { .period = GRID_PERIOD };
	uint64_t v[GRID_TICKS], held, next, before;
	struct pollfd pfd;
	long long fires;
	gs_chan *t;
	int fd;

	set.when = mono_ns() + GRID_PERIOD;
	fd = xioctl(gs_device_fd(), GOSYNC_IOC_TIMER_CREATE, &set);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, gs_chan_from_fd(&t, fd));
	for (int i = 0; i < GRID_TICKS; i++) {
		ASSERT_EQ(1, gs_chan_recv_until(t, &v[i], gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0))
			TH_LOG("tick %d", i);
		EXPECT_LE(set.when + (uint64_t)i * GRID_PERIOD, v[i]);
		if (i) {
			EXPECT_LT(grid_slot(v[i - 1], set.when),
				  grid_slot(v[i], set.when)) TH_LOG("tick %d", i);
		}
	}
	fires = timer_fires(t);
	EXPECT_LE(GRID_TICKS, fires);
	EXPECT_GE(GRID_TICKS + 1, fires);

	/*
	 * Fall behind by 3.5 periods: one tick is held (however late the
	 * machine delivers it), the rest dropped without firing.
	 */
	sleep_ms(GRID_PERIOD * 7 / 2 / NS_PER_MS);
	ASSERT_TRUE(wait_len(t, 1));
	EXPECT_EQ(GRID_TICKS + 1, timer_fires(t));
	before = mono_ns();
	ASSERT_EQ(1, gs_chan_try_recv(t, &held));
	EXPECT_GT(before, held);
	EXPECT_LT(grid_slot(v[GRID_TICKS - 1], set.when), grid_slot(held, set.when));

	/* Poll is woken by the next tick: the receive re-armed the timer. */
	pfd = (struct pollfd){ .fd = gs_chan_fd(t), .events = POLLIN };
	ASSERT_EQ(1, poll(&pfd, 1, WAIT_LIMIT_MS));
	EXPECT_EQ(POLLIN, pfd.revents);
	/* Held, not received: nothing fires until it is. */
	EXPECT_EQ(GRID_TICKS + 2, timer_fires(t));
	ASSERT_EQ(1, gs_chan_try_recv(t, &next));
	/* The first tick of the grid after the receive, not one before. */
	EXPECT_LE(set.when + (grid_slot(before, set.when) + 1) * GRID_PERIOD, next);
	EXPECT_EQ(1, gs_timer_stop(t));
	gs_chan_destroy(t);
}

TEST(ticker_period_below_minimum_is_einval)
{
	struct gosync_timer_set set = { 0 };
	gs_chan *t = NULL, *ok;
	int fd;

	EXPECT_EQ(-EINVAL, gs_tick(&t, GOSYNC_TIMER_MIN_PERIOD - 1));
	EXPECT_EQ(-EINVAL, gs_tick(&t, 1));
	EXPECT_EQ(NULL, t);

	set.when = mono_ns() + NS_PER_SEC;
	set.period = GOSYNC_TIMER_MIN_PERIOD - 1;
	EXPECT_EQ(-EINVAL, xioctl(gs_device_fd(), GOSYNC_IOC_TIMER_CREATE, &set));
	set.period = GOSYNC_TIMER_MIN_PERIOD;
	fd = xioctl(gs_device_fd(), GOSYNC_IOC_TIMER_CREATE, &set);
	EXPECT_LE(0, fd);
	if (fd >= 0)
		close(fd);

	/* Reset with a bad period fails and leaves the ticker as it was. */
	ASSERT_EQ(0, gs_tick(&ok, PENDING_NS));
	EXPECT_EQ(-EINVAL, gs_ticker_reset(ok, GOSYNC_TIMER_MIN_PERIOD - 1));
	set.when = mono_ns() + 20 * NS_PER_MS;
	set.period = 1;
	EXPECT_EQ(-EINVAL, xioctl(gs_chan_fd(ok), GOSYNC_IOC_TIMER_RESET, &set));
	uint64_t x;

	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(ok, &x, gs_deadline_in(100 * NS_PER_MS), 0));
	EXPECT_EQ(1, gs_timer_stop(ok));	/* still pending */
	gs_chan_destroy(ok);
}

TEST(send_or_close_on_a_timer_is_eperm)
{
	gs_chan *t;
	uint64_t v = 1;

	ASSERT_EQ(0, gs_after(&t, PENDING_NS));
	EXPECT_EQ(-EPERM, gs_chan_send(t, &v));
	EXPECT_EQ(-EPERM, gs_chan_try_send(t, &v));
	EXPECT_EQ(-EPERM, gs_chan_send_until(t, &v, gs_deadline_in(NS_PER_MS), 0));
	EXPECT_EQ(-EPERM, gs_chan_close(t));
	gs_case cs[1] = { gs_case_send(t, &v) };
	EXPECT_EQ(-EPERM, gs_select(cs, 1, 0, GS_FOREVER));
	EXPECT_EQ(-EPERM, gs_select(cs, 1, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(0, chan_st(t).closed);
	EXPECT_EQ(0, gs_chan_len(t));
	EXPECT_EQ(1, gs_timer_stop(t));	/* untouched: still pending */
	gs_chan_destroy(t);
}

TEST(timer_in_select_timeout_idiom)
{
	gs_chan *in, *after;
	uint64_t v = POISON, fired = POISON, t0;
	struct op_job j;

	ASSERT_EQ(0, gs_chan_make(&in, sizeof(uint64_t), 0));

	/* Nothing arrives: the timer's case commits. */
	t0 = mono_ns();
	ASSERT_EQ(0, gs_after(&after, 50 * NS_PER_MS));
	gs_case cs[2] = { gs_case_recv(in, &v), gs_case_recv(after, &fired) };
	EXPECT_EQ(1, gs_select(cs, 2, 0, gs_deadline_in(LATE_NS)));
	EXPECT_TRUE(cs[1].ok);
	EXPECT_LE(t0 + 50 * NS_PER_MS, fired);
	EXPECT_LE(t0 + 50 * NS_PER_MS, mono_ns());
	EXPECT_EQ(POISON, v);
	EXPECT_EQ(0, chan_st(in).recv_waiters);
	gs_chan_destroy(after);

	/* A value arrives first: its case commits, the timer is stopped. */
	ASSERT_EQ(0, gs_after(&after, PENDING_NS));
	fired = POISON;
	gs_case cs2[2] = { gs_case_recv(in, &v), gs_case_recv(after, &fired) };
	ASSERT_EQ(0, op_job_start(&j, in, true, 4242));
	EXPECT_EQ(0, gs_select(cs2, 2, 0, gs_deadline_in(LATE_NS)));
	pthread_join(j.thr, NULL);
	EXPECT_EQ(0, j.ret);
	EXPECT_EQ(4242, v);
	EXPECT_EQ(POISON, fired);
	EXPECT_EQ(1, gs_timer_stop(after));
	EXPECT_EQ(0, chan_st(after).recv_waiters);
	gs_chan_destroy(after);
	gs_chan_destroy(in);
}

TEST(timer_in_poll_and_epoll)
{
	struct epoll_event ev = { .events = EPOLLIN }, out;
	struct pollfd pfd;
	gs_chan *t;
	uint64_t t0, x;
	int ep;

	t0 = mono_ns();
	ASSERT_EQ(0, gs_after(&t, 100 * NS_PER_MS));
	pfd = (struct pollfd){ .fd = gs_chan_fd(t), .events = POLLIN | POLLOUT };
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	EXPECT_EQ(1, poll(&pfd, 1, WAIT_LIMIT_MS));
	EXPECT_EQ(POLLIN, pfd.revents);	/* never writable */
	EXPECT_LE(t0 + 100 * NS_PER_MS, mono_ns());
	EXPECT_EQ(1, gs_chan_try_recv(t, &x));
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	gs_chan_destroy(t);

	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, ep);
	t0 = mono_ns();
	ASSERT_EQ(0, gs_after(&t, 50 * NS_PER_MS));
	ev.data.u64 = 0x77;
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, gs_chan_fd(t), &ev));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 0));
	EXPECT_EQ(1, epoll_wait(ep, &out, 1, WAIT_LIMIT_MS));
	EXPECT_EQ(0x77, out.data.u64);
	EXPECT_TRUE(out.events & EPOLLIN);
	EXPECT_FALSE(out.events & EPOLLOUT);
	EXPECT_LE(t0 + 50 * NS_PER_MS, mono_ns());
	/* Stop discards the unreceived value (and says so): not readable. */
	EXPECT_EQ(1, gs_timer_stop(t));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 0));
	close(ep);
	gs_chan_destroy(t);
}

TEST(timer_ioctls_on_other_fds_are_enotty)
{
	struct gosync_timer_set set = { .when = GOSYNC_DEADLINE_NONE };
	gs_chan *c;
	gs_sem *s;

	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_sem_create(&s, 1));
	EXPECT_EQ(-ENOTTY, xioctl(gs_chan_fd(c), GOSYNC_IOC_TIMER_STOP, NULL));
	EXPECT_EQ(-ENOTTY, xioctl(gs_chan_fd(c), GOSYNC_IOC_TIMER_RESET, &set));
	EXPECT_EQ(-ENOTTY, gs_timer_stop(c));
	EXPECT_EQ(-ENOTTY, gs_timer_reset(c, NS_PER_MS));
	EXPECT_EQ(-ENOTTY, xioctl(gs_sem_fd(s), GOSYNC_IOC_TIMER_STOP, NULL));
	EXPECT_EQ(-ENOTTY, xioctl(gs_device_fd(), GOSYNC_IOC_TIMER_STOP, NULL));
	EXPECT_EQ(0, gs_chan_len(c));
	gs_sem_destroy(s);
	gs_chan_destroy(c);
}

TEST(raw_timer_create_and_reset_reject_bad_arguments)
{
	int dev = gs_device_fd();
	struct gosync_timer_set set;
	gs_chan *t;
	uint64_t x;

	ASSERT_LE(0, dev);
	for (int i = 0; i < 5; i++) {
		memset(&set, 0, sizeof(set));
		set.when = mono_ns() + 10 * NS_PER_MS;
		switch (i) {
		case 0: set.reserved = 1; break;
		case 1: set.reserved = 1U << 31; break;
		case 2: set.flags = 1U << 1; break;
		case 3: set.flags = 1U << 31; break;
		case 4: set.flags = ~0U; break;
		}
		EXPECT_EQ(-EINVAL, xioctl(dev, GOSYNC_IOC_TIMER_CREATE, &set)) TH_LOG("case %d", i);
	}
	EXPECT_EQ(-EFAULT, xioctl(dev, GOSYNC_IOC_TIMER_CREATE, NULL));

	ASSERT_EQ(0, gs_after(&t, PENDING_NS));
	for (int i = 0; i < 3; i++) {
		memset(&set, 0, sizeof(set));
		set.when = mono_ns() + 10 * NS_PER_MS;
		if (i == 0)
			set.reserved = 1;
		else if (i == 1)
			set.flags = 1U << 1;
		else
			set.period = 1;
		EXPECT_EQ(-EINVAL, xioctl(gs_chan_fd(t), GOSYNC_IOC_TIMER_RESET, &set))
			TH_LOG("case %d", i);
	}
	EXPECT_EQ(-EFAULT, xioctl(gs_chan_fd(t), GOSYNC_IOC_TIMER_RESET, NULL));
	/* None of them re-armed it for 10 ms from now. */
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(t, &x, gs_deadline_in(100 * NS_PER_MS), 0));
	EXPECT_EQ(1, gs_timer_stop(t));
	gs_chan_destroy(t);
}

struct poller {
	struct pollfd pfd;
	int ret;
	pthread_t thr;
};

static void *poller_main(void *arg)
{
	struct poller *p = arg;

	p->ret = poll(&p->pfd, 1, WAIT_LIMIT_MS);
	return NULL;
}

/* A select's queued cases are partners: they make the channel pollable. */
TEST(select_waiters_wake_pollers)
{
	struct pollfd pfd;
	gs_chan *u;
	uint64_t x;

	ASSERT_EQ(0, gs_chan_make(&u, sizeof(uint64_t), 0));
	for (int send = 0; send < 2; send++) {
		struct poller p = { .ret = INT_MIN };
		struct sel_job j = { .n = 2 };
		uint64_t v = 50 + send, d = POISON;

		p.pfd = (struct pollfd){ .fd = gs_chan_fd(u),
					 .events = send ? POLLIN : POLLOUT };
		ASSERT_EQ(0, start_thread(&p.thr, poller_main, &p));
		sleep_ms(50);
		EXPECT_EQ(INT_MIN, p.ret);	/* not ready yet */
		j.cs[0] = gs_case_recv(NULL, NULL);
		j.cs[1] = send ? gs_case_send(u, &v) : gs_case_recv(u, &d);
		ASSERT_EQ(0, sel_job_start(&j));
		pthread_join(p.thr, NULL);
		EXPECT_EQ(1, p.ret);
		EXPECT_EQ(send ? POLLIN : POLLOUT, p.pfd.revents);
		/* Complete the select; then nothing is ready any more. */
		x = 7;
		if (send) {
			EXPECT_EQ(1, gs_chan_recv(u, &x));
			EXPECT_EQ(51, x);
		} else {
			EXPECT_EQ(0, gs_chan_send(u, &x));
		}
		pthread_join(j.thr, NULL);
		EXPECT_EQ(1, j.ret);
		if (!send) {
			EXPECT_EQ(7, d);
		}
		pfd = (struct pollfd){ .fd = gs_chan_fd(u), .events = POLLIN | POLLOUT };
		EXPECT_EQ(0, poll(&pfd, 1, 0));
	}
	/* A select that timed out left nothing that polls ready. */
	gs_case cs[2] = { gs_case_recv(u, &x), gs_case_send(u, &x) };
	EXPECT_EQ(-ETIMEDOUT, gs_select(cs, 2, 0, gs_deadline_in(20 * NS_PER_MS)));
	pfd = (struct pollfd){ .fd = gs_chan_fd(u), .events = POLLIN | POLLOUT };
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	gs_chan_destroy(u);
}

/* ================================================================== */
/* 9. Deadlines                                                         */

TEST(select_deadline_on_both_clocks)
{
	gs_chan *a;
	uint64_t d = POISON, t0, r0;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	gs_case cs[1] = { gs_case_recv(a, &d) };

	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_select(cs, 1, 0, t0 + 100 * NS_PER_MS));
	EXPECT_LE(t0 + 100 * NS_PER_MS, mono_ns());
	EXPECT_GT(t0 + 100 * NS_PER_MS + LATE_NS, mono_ns());

	r0 = real_ns();
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_select(cs, 1, GS_CLOCK_REALTIME, r0 + 100 * NS_PER_MS));
	EXPECT_LE(r0 + 100 * NS_PER_MS, real_ns());
	EXPECT_LE(t0 + 90 * NS_PER_MS, mono_ns());
	EXPECT_GT(t0 + 100 * NS_PER_MS + LATE_NS, mono_ns());

	/*
	 * A realtime deadline read as monotonic would be decades away (the
	 * test would hang); a monotonic one read as realtime long past.
	 */
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_select(cs, 1, 0, mono_ns() + 50 * NS_PER_MS));
	EXPECT_LE(t0 + 50 * NS_PER_MS, mono_ns());

	EXPECT_EQ(POISON, d);
	EXPECT_EQ(0, chan_st(a).recv_waiters);
	gs_chan_destroy(a);
}

TEST(select_past_deadline_proceeds_only_if_ready)
{
	gs_chan *a, *b;
	uint64_t d = POISON, v, t0;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&b, sizeof(uint64_t), 1));
	gs_case cs[2] = { gs_case_recv(a, &d), gs_case_recv(b, &d) };

	for (int i = 0; i < 4; i++) {
		unsigned int flags = i < 2 ? 0 : GS_CLOCK_REALTIME;
		/* 0, a second ago, 1 ns after the epoch, a second ago. */
		uint64_t dl = i == 0 ? 0 : i == 2 ? 1 :
			      (flags ? real_ns() : mono_ns()) - NS_PER_SEC;

		/* Nothing ready: at once. */
		t0 = mono_ns();
		EXPECT_EQ(-ETIMEDOUT, gs_select(cs, 2, flags, dl)) TH_LOG("case %d", i);
		EXPECT_GT(t0 + LATE_NS, mono_ns());
		EXPECT_EQ(0, chan_st(a).recv_waiters);
		EXPECT_EQ(0, chan_st(b).recv_waiters);

		/* Default wins over a past deadline. */
		EXPECT_EQ(-EAGAIN, gs_select(cs, 2, flags | GS_SELECT_DEFAULT, dl));

		/* A buffered value is ready. */
		v = 60 + i;
		ASSERT_EQ(0, gs_chan_send(b, &v));
		d = POISON;
		EXPECT_EQ(1, gs_select(cs, 2, flags, dl)) TH_LOG("case %d", i);
		EXPECT_EQ(60 + i, d);

		/* A parked sender on the unbuffered channel is ready too. */
		struct op_job j;

		ASSERT_EQ(0, op_job_start(&j, a, true, 70 + i));
		ASSERT_TRUE(wait_waiters(a, 1, 0));
		d = POISON;
		EXPECT_EQ(0, gs_select(cs, 2, flags, dl)) TH_LOG("case %d", i);
		pthread_join(j.thr, NULL);
		EXPECT_EQ(0, j.ret);
		EXPECT_EQ(70 + i, d);
	}
	gs_chan_destroy(a);
	gs_chan_destroy(b);
}

/* Move CLOCK_REALTIME by @delta_ns; 0 or -errno. */
static int shift_realtime(int64_t delta_ns)
{
	struct timespec ts;
	int64_t ns = (int64_t)real_ns() + delta_ns;

	ts.tv_sec = ns / (int64_t)NS_PER_SEC;
	ts.tv_nsec = ns % (int64_t)NS_PER_SEC;
	return clock_settime(CLOCK_REALTIME, &ts) ? -errno : 0;
}

struct clock_jumper {
	gs_chan *watch;		/* jump once it has a queued receiver */
	int64_t delta_ns;
	int ret;
	bool before, after;	/* the receiver was queued before/after */
	pthread_t thr;
};

static void *clock_jumper_main(void *arg)
{
	struct clock_jumper *j = arg;

	j->before = wait_waiters(j->watch, 0, 1);
	j->ret = shift_realtime(j->delta_ns);
	j->after = chan_st(j->watch).recv_waiters == 1;
	return NULL;
}

/*
 * Realtime deadlines are absolute: setting the clock forward past one
 * ends the wait now, setting it back makes the wait longer. Each jump is
 * undone right after (the clock ends within microseconds of where it was).
 */
TEST(realtime_deadlines_follow_clock_changes)
{
	/* Jumps far beyond deadlines that a slow machine cannot reach. */
	struct clock_jumper j = { .delta_ns = 2 * (int64_t)LATE_NS };
	uint64_t d = POISON, t0, r0, dl_ms;
	struct sel_job tj = { .n = 1 };
	gs_chan *a, *t;
	int ret;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	gs_case cs[1] = { gs_case_recv(a, &d) };

	/* Forward by 2 minutes: a deadline a minute away has passed. */
	j.watch = a;
	t0 = mono_ns();
	r0 = real_ns();
	ASSERT_EQ(0, start_thread(&j.thr, clock_jumper_main, &j));
	ret = gs_select(cs, 1, GS_CLOCK_REALTIME, r0 + LATE_NS);
	pthread_join(j.thr, NULL);
	if (j.ret == -EPERM)
		SKIP(gs_chan_destroy(a); return, "cannot set CLOCK_REALTIME");
	ASSERT_EQ(0, j.ret);
	EXPECT_EQ(-ETIMEDOUT, ret);
	EXPECT_TRUE(j.before);
	EXPECT_GT(t0 + LATE_NS / 2, mono_ns());
	EXPECT_EQ(POISON, d);
	ASSERT_EQ(0, shift_realtime(-j.delta_ns));

	/* A realtime timer moves the same way. */
	r0 = real_ns();
	ASSERT_EQ(0, gs_timer_at(&t, r0 + LATE_NS, GS_CLOCK_REALTIME));
	tj.cs[0] = gs_case_recv(t, &d);
	t0 = mono_ns();
	ASSERT_EQ(0, sel_job_start(&tj));
	j.watch = t;
	ASSERT_EQ(0, start_thread(&j.thr, clock_jumper_main, &j));
	pthread_join(j.thr, NULL);
	pthread_join(tj.thr, NULL);
	EXPECT_EQ(0, j.ret);
	ASSERT_EQ(0, shift_realtime(-j.delta_ns));
	EXPECT_EQ(0, tj.ret);
	EXPECT_GT(t0 + LATE_NS / 2, mono_ns());
	EXPECT_LE(r0 + LATE_NS, d);	/* fired on the moved clock */
	gs_chan_destroy(t);

	/*
	 * Back by a second: a deadline 500 ms away is 1.5 s away. A jump
	 * that came after the deadline (a slow machine) proves nothing:
	 * again, with a longer deadline.
	 */
	for (dl_ms = 500;; dl_ms *= 4) {
		j = (struct clock_jumper){ .watch = a, .delta_ns = -(int64_t)NS_PER_SEC };
		t0 = mono_ns();
		r0 = real_ns();
		ASSERT_EQ(0, start_thread(&j.thr, clock_jumper_main, &j));
		ret = gs_select(cs, 1, GS_CLOCK_REALTIME, r0 + dl_ms * NS_PER_MS);
		pthread_join(j.thr, NULL);
		ASSERT_EQ(0, j.ret);
		ASSERT_EQ(0, shift_realtime(NS_PER_SEC));
		EXPECT_EQ(-ETIMEDOUT, ret);
		if ((j.before && j.after) || dl_ms >= WAIT_LIMIT_MS)
			break;
		TH_LOG("the jump came after a %ju ms deadline: again, longer",
		       (uintmax_t)dl_ms);
	}
	EXPECT_TRUE(j.before);
	EXPECT_TRUE(j.after);	/* the jump came while it waited */
	EXPECT_LE(t0 + (dl_ms + 900) * NS_PER_MS, mono_ns());
	gs_chan_destroy(a);
}

#define TIMENS_OFFSET_S	100000ULL

struct child_report {
	int line;		/* the first failed CHILD_CHECK() (gs_test.h) */
	char msg[256];
	uint64_t fired, ns_before, ns_after;
};

/* In a time namespace whose CLOCK_MONOTONIC is TIMENS_OFFSET_S ahead. */
static int timens_child(struct child_report *rep, gs_chan *a, uint64_t host_before)
{
	uint64_t d = POISON, t0, t1, fired;
	gs_case cs[1] = { gs_case_recv(a, &d) };
	gs_chan *t;
	int ret;

	t0 = mono_ns();
	CHILD_CHECK(rep, t0 >= host_before + TIMENS_OFFSET_S * NS_PER_SEC,
		    "not in the namespace: %ju vs host %ju", (uintmax_t)t0,
		    (uintmax_t)host_before);

	/* A select deadline on the namespace's clock (alarms: watchdogs). */
	alarm(2 * WAIT_LIMIT_MS / 1000);
	t0 = mono_ns();
	ret = gs_select(cs, 1, 0, t0 + 50 * NS_PER_MS);
	t1 = mono_ns();
	alarm(0);
	CHILD_CHECK(rep, ret == -ETIMEDOUT, "select: %d", ret);
	CHILD_CHECK(rep, t1 - t0 >= 50 * NS_PER_MS && t1 - t0 < LATE_NS,
		    "select: timed out after %ju ns", (uintmax_t)(t1 - t0));

	/* The host's "now + 4 minutes" is long past in the namespace. */
	alarm(2 * WAIT_LIMIT_MS / 1000);
	t0 = mono_ns();
	ret = gs_select(cs, 1, 0, host_before + 4 * LATE_NS);
	t1 = mono_ns();
	alarm(0);
	CHILD_CHECK(rep, ret == -ETIMEDOUT, "host deadline: %d", ret);
	CHILD_CHECK(rep, t1 - t0 < LATE_NS, "host deadline waited %ju ns",
		    (uintmax_t)(t1 - t0));

	/* A timer's time is on the namespace's clock too. */
	for (int i = 0; i < 2; i++) {
		alarm(2 * WAIT_LIMIT_MS / 1000);
		t0 = mono_ns();
		ret = i ? gs_timer_at(&t, t0 + 50 * NS_PER_MS, 0) :
			  gs_after(&t, 50 * NS_PER_MS);
		CHILD_CHECK(rep, ret == 0, "timer %d: %d", i, ret);
		ret = gs_chan_recv_until(t, &fired, t0 + LATE_NS, 0);
		t1 = mono_ns();
		alarm(0);
		gs_chan_destroy(t);
		CHILD_CHECK(rep, ret == 1, "timer %d: recv %d", i, ret);
		CHILD_CHECK(rep, t1 - t0 >= 50 * NS_PER_MS,
			    "timer %d fired after %ju ns", i, (uintmax_t)(t1 - t0));
		rep->fired = fired;
		rep->ns_before = t0;
		rep->ns_after = t1;
	}
	return 0;
}

TEST(select_and_timers_in_a_time_namespace)
{
	struct child_report *rep;
	uint64_t host_before;
	char offsets[64];
	gs_chan *a;
	int fd, len, status;
	pid_t pid;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, rep);
	if (unshare(CLONE_NEWTIME))
		SKIP(return, "unshare(CLONE_NEWTIME): %s", strerror(errno));
	fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	len = snprintf(offsets, sizeof(offsets), "monotonic %llu 0\n", TIMENS_OFFSET_S);
	ASSERT_EQ(len, write(fd, offsets, (size_t)len));
	close(fd);
	host_before = mono_ns();
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(timens_child(rep, a, host_before));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("line %d: %s", rep->line, rep->msg);
	/* The firing time reads on the namespace's clock, not the host's. */
	EXPECT_LE(rep->ns_before, rep->fired)
		TH_LOG("timer value %ju, namespace clock %ju..%ju",
		       (uintmax_t)rep->fired, (uintmax_t)rep->ns_before,
		       (uintmax_t)rep->ns_after);
	EXPECT_GE(rep->ns_after, rep->fired);
	EXPECT_EQ(0, chan_st(a).recv_waiters);
	munmap(rep, sizeof(*rep));
	gs_chan_destroy(a);
}

/* ================================================================== */
/* 10. Signals                                                          */

TEST(signal_interrupts_select_and_consumes_nothing)
{
	struct signaler s = { .count = 1, .nw = 3 };
	struct gosync_chan_status st;
	gs_chan *a, *b, *c;
	uint64_t da = POISON, db = POISON, vc = 44, x;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));	/* empty, unbuffered */
	ASSERT_EQ(0, gs_chan_make(&b, sizeof(uint64_t), 2));	/* empty, buffered */
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));	/* full */
	x = 33;
	ASSERT_EQ(0, gs_chan_send(c, &x));
	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	s.target = pthread_self();
	s.w[0] = (struct watch){ a, 0, 1 };
	s.w[1] = (struct watch){ b, 0, 1 };
	s.w[2] = (struct watch){ c, 1, 0 };
	ASSERT_EQ(0, start_thread(&s.thr, signaler_main, &s));
	gs_case cs[3] = {
		gs_case_recv(a, &da), gs_case_recv(b, &db), gs_case_send(c, &vc),
	};
	EXPECT_EQ(-EINTR, gs_select(cs, 3, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS)));
	pthread_join(s.thr, NULL);
	EXPECT_TRUE(s.reached);
	EXPECT_EQ(1, atomic_load(&sig_count));

	EXPECT_EQ(POISON, da);
	EXPECT_EQ(POISON, db);
	st = chan_st(a);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(0, st.sends);
	EXPECT_EQ(0, st.recvs);
	st = chan_st(b);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(0, st.sends);
	st = chan_st(c);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(1, st.len);
	EXPECT_EQ(1, st.sends);
	EXPECT_EQ(0, st.recvs);
	x = 0;
	EXPECT_EQ(1, gs_chan_try_recv(c, &x));
	EXPECT_EQ(33, x);
	gs_chan_destroy(a);
	gs_chan_destroy(b);
	gs_chan_destroy(c);
}

struct restart_helper {
	gs_chan *a, *b;
	pthread_t target;
	bool parked, requeued;
	int send_ret;
	pthread_t thr;
};

/* Signal the parked select, wait until it is queued again, then send on b. */
static void *restart_helper_main(void *arg)
{
	struct restart_helper *h = arg;
	uint64_t end, v = 8080;

	h->parked = wait_waiters(h->a, 0, 1) && wait_waiters(h->b, 0, 1);
	pthread_kill(h->target, SIGUSR1);
	end = mono_ns() + WAIT_LIMIT_MS * NS_PER_MS;
	while (atomic_load(&sig_count) == 0 && mono_ns() < end)
		usleep(200);
	h->requeued = wait_waiters(h->a, 0, 1) && wait_waiters(h->b, 0, 1);
	h->send_ret = gs_chan_send_until(h->b, &v, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0);
	return NULL;
}

TEST(sa_restart_select_continues_and_completes)
{
	struct restart_helper h = { 0 };
	uint64_t da = POISON, db = POISON;

	ASSERT_EQ(0, gs_chan_make(&h.a, sizeof(uint64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&h.b, sizeof(uint64_t), 0));
	ASSERT_EQ(0, install_handler(SIGUSR1, true));
	h.target = pthread_self();
	h.send_ret = INT_MIN;
	ASSERT_EQ(0, start_thread(&h.thr, restart_helper_main, &h));
	gs_case cs[2] = { gs_case_recv(h.a, &da), gs_case_recv(h.b, &db) };
	EXPECT_EQ(1, gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS)));
	pthread_join(h.thr, NULL);
	EXPECT_TRUE(h.parked);
	EXPECT_TRUE(h.requeued);
	EXPECT_EQ(0, h.send_ret);
	EXPECT_EQ(1, atomic_load(&sig_count));
	EXPECT_TRUE(cs[1].ok);
	EXPECT_EQ(8080, db);
	EXPECT_EQ(POISON, da);
	EXPECT_EQ(0, chan_st(h.a).recv_waiters);
	gs_chan_destroy(h.a);
	gs_chan_destroy(h.b);
}

TEST(sa_restart_select_keeps_its_deadline)
{
	gs_chan *a;
	uint64_t d = POISON, t0;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(uint64_t), 0));
	/*
	 * A run in which fewer than 2 signals came before the deadline (a
	 * slow machine) proves nothing: again, with a longer one.
	 */
	for (uint64_t dl_ms = 300;; dl_ms *= 4) {
		struct sel_job j = { .n = 1 };
		bool finished = false;

		ASSERT_EQ(0, install_handler(SIGUSR1, true));
		j.cs[0] = gs_case_recv(a, &d);
		t0 = mono_ns();
		j.deadline = t0 + dl_ms * NS_PER_MS;
		ASSERT_EQ(0, sel_job_start(&j));
		/* Queued (or, on a slow machine, already timed out). */
		while (chan_st(a).recv_waiters != 1 && ms_since(t0) < WAIT_LIMIT_MS &&
		       !(finished = !pthread_tryjoin_np(j.thr, NULL)))
			usleep(200);
		/* Signals every 25 ms until it returns: a moving deadline never comes. */
		while (!finished && ms_since(t0) < dl_ms + WAIT_LIMIT_MS) {
			pthread_kill(j.thr, SIGUSR1);
			sleep_ms(25);
			finished = !pthread_tryjoin_np(j.thr, NULL);
		}
		EXPECT_TRUE(finished) TH_LOG("still waiting %d s after its deadline",
					     WAIT_LIMIT_MS / 1000);
		if (!finished)
			pthread_join(j.thr, NULL);
		EXPECT_EQ(-ETIMEDOUT, j.ret);
		EXPECT_LE(t0 + dl_ms * NS_PER_MS, mono_ns());
		if (atomic_load(&sig_count) >= 2 || dl_ms >= WAIT_LIMIT_MS)
			break;
		TH_LOG("%d signals in %ju ms: again with a longer deadline",
		       atomic_load(&sig_count), (uintmax_t)dl_ms);
	}
	EXPECT_LE(2, atomic_load(&sig_count));
	EXPECT_EQ(POISON, d);
	EXPECT_EQ(0, chan_st(a).recv_waiters);
	gs_chan_destroy(a);
}

/* ================================================================== */
/* 11. The raw ioctl's errors                                           */

/* Raw select on @dev; -errno, or 0 with @arg filled in. */
static int raw_select(int dev, const struct gosync_select_case *cases,
		      uint32_t n, uint32_t flags, uint64_t deadline,
		      struct gosync_select *arg)
{
	memset(arg, 0, sizeof(*arg));
	arg->cases = (uintptr_t)cases;
	arg->ncases = n;
	arg->flags = flags;
	arg->deadline = deadline;
	arg->index = 0xdead;
	arg->ok = 0xbeef;
	return xioctl(dev, GOSYNC_IOC_SELECT, arg);
}

TEST(raw_select_too_many_cases_is_einval)
{
	struct gosync_select_case kc[GOSYNC_SELECT_MAX_CASES + 1];
	struct gosync_select arg;
	int dev = gs_device_fd();
	gs_case lc[GOSYNC_SELECT_MAX_CASES + 1];

	ASSERT_LE(0, dev);
	for (int i = 0; i <= GOSYNC_SELECT_MAX_CASES; i++) {
		kc[i] = (struct gosync_select_case){
			.fd = GOSYNC_SELECT_NIL, .op = GOSYNC_SELECT_RECV,
		};
		lc[i] = gs_case_recv(NULL, NULL);
	}
	EXPECT_EQ(-EINVAL, raw_select(dev, kc, GOSYNC_SELECT_MAX_CASES + 1,
				      GOSYNC_SELECT_DEFAULT, GS_FOREVER, &arg));
	EXPECT_EQ(-EINVAL, raw_select(dev, kc, UINT32_MAX, GOSYNC_SELECT_DEFAULT,
				      GS_FOREVER, &arg));
	EXPECT_EQ(0xdead, arg.index);
	/* The maximum itself is accepted. */
	EXPECT_EQ(-EAGAIN, raw_select(dev, kc, GOSYNC_SELECT_MAX_CASES,
				      GOSYNC_SELECT_DEFAULT, GS_FOREVER, &arg));
	EXPECT_EQ(-EINVAL, gs_select(lc, GS_SELECT_MAX + 1, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(-EAGAIN, gs_select(lc, GS_SELECT_MAX, GS_SELECT_DEFAULT, GS_FOREVER));
}

TEST(raw_select_bad_op_is_einval)
{
	const uint32_t bad_ops[] = { 0, 3, 4, 0x80000001, UINT32_MAX };
	struct gosync_select_case kc[2];
	struct gosync_select arg;
	int dev = gs_device_fd();
	uint64_t v = 12, d = POISON;
	gs_chan *c;

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_chan_send(c, &v));
	for (size_t i = 0; i < ARRAY_SIZE(bad_ops); i++) {
		/* A ready receive first: the bad case fails the whole select. */
		kc[0] = (struct gosync_select_case){
			.fd = gs_chan_fd(c), .op = GOSYNC_SELECT_RECV,
			.value = (uintptr_t)&d,
		};
		kc[1] = (struct gosync_select_case){
			.fd = gs_chan_fd(c), .op = bad_ops[i], .value = (uintptr_t)&v,
		};
		EXPECT_EQ(-EINVAL, raw_select(dev, kc, 2, 0, GS_FOREVER, &arg))
			TH_LOG("op %#x", bad_ops[i]);
		EXPECT_EQ(0xdead, arg.index);
		kc[1].fd = GOSYNC_SELECT_NIL;	/* even on a nil case */
		EXPECT_EQ(-EINVAL, raw_select(dev, kc, 2, 0, GS_FOREVER, &arg))
			TH_LOG("op %#x", bad_ops[i]);
	}
	EXPECT_EQ(POISON, d);
	EXPECT_EQ(1, gs_chan_len(c));
	gs_case lc[1] = { { .ch = c, .op = 7, .value = &d } };
	EXPECT_EQ(-EINVAL, gs_select(lc, 1, 0, GS_FOREVER));
	EXPECT_EQ(1, gs_chan_len(c));
	gs_chan_destroy(c);
}

TEST(raw_select_on_non_channel_fd_is_einval)
{
	struct gosync_select_case kc[2];
	struct gosync_select arg;
	int dev = gs_device_fd(), fds[4], pipefd[2];
	uint64_t v = 3, d = POISON;
	gs_sem *s;
	gs_chan *c;

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, gs_sem_create(&s, 1));
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_chan_send(c, &v));
	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	fds[0] = gs_sem_fd(s);
	fds[1] = open("/dev/null", O_RDWR | O_CLOEXEC);
	fds[2] = dev;
	fds[3] = pipefd[0];
	ASSERT_LE(0, fds[1]);
	for (int i = 0; i < 4; i++) {
		for (int op = GOSYNC_SELECT_SEND; op <= GOSYNC_SELECT_RECV; op++) {
			kc[0] = (struct gosync_select_case){
				.fd = gs_chan_fd(c), .op = GOSYNC_SELECT_RECV,
				.value = (uintptr_t)&d,
			};
			kc[1] = (struct gosync_select_case){
				.fd = fds[i], .op = op, .value = (uintptr_t)&v,
			};
			EXPECT_EQ(-EINVAL, raw_select(dev, kc, 2, 0, GS_FOREVER, &arg))
				TH_LOG("fd %d op %d", i, op);
			EXPECT_EQ(-EINVAL, raw_select(dev, kc + 1, 1, GOSYNC_SELECT_DEFAULT,
						      GS_FOREVER, &arg))
				TH_LOG("fd %d op %d", i, op);
		}
	}
	/* Nothing was consumed from the valid case. */
	EXPECT_EQ(POISON, d);
	EXPECT_EQ(1, gs_chan_len(c));
	EXPECT_EQ(0, gs_sem_try_acquire(s, 1));
	close(fds[1]);
	close(pipefd[0]);
	close(pipefd[1]);
	gs_chan_destroy(c);
	gs_sem_destroy(s);
}

TEST(raw_select_on_closed_fd_is_ebadf)
{
	struct gosync_select_case kc[2];
	struct gosync_select arg;
	int dev = gs_device_fd(), closed_fd;
	const int bad[] = { -2, INT_MIN, INT_MAX, 0 };
	uint64_t v = 1, d = POISON;
	gs_chan *c;

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_chan_send(c, &v));
	closed_fd = dup(gs_chan_fd(c));
	ASSERT_LE(0, closed_fd);
	ASSERT_EQ(0, close(closed_fd));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		kc[0] = (struct gosync_select_case){
			.fd = gs_chan_fd(c), .op = GOSYNC_SELECT_RECV,
			.value = (uintptr_t)&d,
		};
		kc[1] = (struct gosync_select_case){
			.fd = bad[i] ? bad[i] : closed_fd, .op = GOSYNC_SELECT_RECV,
			.value = (uintptr_t)&v,
		};
		EXPECT_EQ(-EBADF, raw_select(dev, kc, 2, 0, GS_FOREVER, &arg))
			TH_LOG("fd %d", kc[1].fd);
		EXPECT_EQ(0xdead, arg.index);
		EXPECT_EQ(0xbeef, arg.ok);
	}
	EXPECT_EQ(POISON, d);
	EXPECT_EQ(1, gs_chan_len(c));
	gs_chan_destroy(c);
}

TEST(raw_select_bad_pointers_are_efault)
{
	struct gosync_select_case kc[2], *edge_cases;
	struct gosync_select arg;
	int dev = gs_device_fd();
	uint64_t v = 21, d = POISON;
	gs_chan *c, *e;
	char *map, *ro;

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_chan_make(&e, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_chan_send(c, &v));
	/* A writable page followed by an inaccessible one. */
	map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, mprotect(map + 4096, 4096, PROT_NONE));
	ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);

	kc[0] = (struct gosync_select_case){
		.fd = gs_chan_fd(c), .op = GOSYNC_SELECT_RECV, .value = (uintptr_t)&d,
	};
	/* The case array: NULL, inaccessible, running into the guard page. */
	EXPECT_EQ(-EFAULT, raw_select(dev, NULL, 1, 0, GS_FOREVER, &arg));
	EXPECT_EQ(-EFAULT, raw_select(dev, (void *)(map + 4096), 1, 0, GS_FOREVER, &arg));
	edge_cases = (void *)(map + 4096 - sizeof(kc[0]));
	edge_cases[0] = kc[0];
	EXPECT_EQ(-EFAULT, raw_select(dev, edge_cases, 2, 0, GS_FOREVER, &arg));
	EXPECT_EQ(0xdead, arg.index);
	/* The argument itself. */
	EXPECT_EQ(-EFAULT, xioctl(dev, GOSYNC_IOC_SELECT, NULL));
	EXPECT_EQ(-EFAULT, xioctl(dev, GOSYNC_IOC_SELECT, map + 4096));

	/* A receive destination that is inaccessible or read-only: nothing taken. */
	for (int i = 0; i < 2; i++) {
		kc[0].value = i ? (uintptr_t)ro : (uintptr_t)(map + 4096);
		EXPECT_EQ(-EFAULT, raw_select(dev, kc, 1, 0, GS_FOREVER, &arg));
		EXPECT_EQ(-EFAULT, raw_select(dev, kc, 1, GOSYNC_SELECT_DEFAULT,
					      GS_FOREVER, &arg));
		EXPECT_EQ(1, gs_chan_len(c));
		EXPECT_EQ(0, chan_st(c).recvs);
	}
	/* A destination straddling into the inaccessible page. */
	kc[0].value = (uintptr_t)(map + 4096 - 4);
	EXPECT_EQ(-EFAULT, raw_select(dev, kc, 1, 0, GS_FOREVER, &arg));
	EXPECT_EQ(1, gs_chan_len(c));

	/*
	 * NULL is a bad address to send from when the element has a size
	 * (a receive into NULL discards: see recv_case_into_null_*).
	 */
	gs_case nul[1] = { gs_case_send(e, NULL) };
	EXPECT_EQ(-EFAULT, gs_select(nul, 1, 0, GS_FOREVER));
	EXPECT_EQ(0, gs_chan_len(e));

	/* A send value that cannot be read: nothing sent. */
	kc[0] = (struct gosync_select_case){
		.fd = gs_chan_fd(e), .op = GOSYNC_SELECT_SEND,
		.value = (uintptr_t)(map + 4096),
	};
	EXPECT_EQ(-EFAULT, raw_select(dev, kc, 1, 0, GS_FOREVER, &arg));
	EXPECT_EQ(0, gs_chan_len(e));
	EXPECT_EQ(0, chan_st(e).sends);

	/*
	 * The argument in a read-only page: its result could not be written
	 * back, so the call fails before a case is done (nothing sent).
	 */
	{
		struct gosync_select *roarg;
		uint64_t one = 1;

		kc[0].value = (uintptr_t)&one;
		roarg = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, roarg);
		*roarg = (struct gosync_select){
			.cases = (uintptr_t)kc, .ncases = 1,
			.deadline = GS_FOREVER,
		};
		ASSERT_EQ(0, mprotect(roarg, 4096, PROT_READ));
		EXPECT_EQ(-EFAULT, xioctl(dev, GOSYNC_IOC_SELECT, roarg));
		EXPECT_EQ(0, gs_chan_len(e));
		EXPECT_EQ(0, chan_st(e).sends);
		munmap(roarg, 4096);
	}

	/* The good value is still there, and reachable. */
	kc[0] = (struct gosync_select_case){
		.fd = gs_chan_fd(c), .op = GOSYNC_SELECT_RECV, .value = (uintptr_t)&d,
	};
	EXPECT_EQ(0, raw_select(dev, kc, 1, 0, GS_FOREVER, &arg));
	EXPECT_EQ(0, arg.index);
	EXPECT_EQ(1, arg.ok);
	EXPECT_EQ(21, d);
	munmap(map, 8192);
	munmap(ro, 4096);
	gs_chan_destroy(c);
	gs_chan_destroy(e);
}

TEST(raw_select_unknown_flags_are_einval)
{
	const uint32_t bad[] = { 1U << 2, 1U << 3, 1U << 31, ~0U,
				 GOSYNC_SELECT_DEFAULT | (1U << 4) };
	struct gosync_select_case kc[1];
	struct gosync_select arg;
	int dev = gs_device_fd();
	uint64_t v = 2, d = POISON;
	gs_chan *c;

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_chan_send(c, &v));
	kc[0] = (struct gosync_select_case){
		.fd = gs_chan_fd(c), .op = GOSYNC_SELECT_RECV, .value = (uintptr_t)&d,
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, raw_select(dev, kc, 1, bad[i], GS_FOREVER, &arg))
			TH_LOG("flags %#x", bad[i]);
		EXPECT_EQ(0xdead, arg.index);
	}
	gs_case lc[1] = { gs_case_recv(c, &d) };
	EXPECT_EQ(-EINVAL, gs_select(lc, 1, 1U << 2, GS_FOREVER));
	EXPECT_EQ(POISON, d);
	EXPECT_EQ(1, gs_chan_len(c));
	/* Both documented flags together are fine. */
	EXPECT_EQ(0, raw_select(dev, kc, 1, GOSYNC_SELECT_DEFAULT | GOSYNC_CLOCK_REALTIME,
				GS_FOREVER, &arg));
	EXPECT_EQ(2, d);
	gs_chan_destroy(c);
}

TEST(raw_select_send_case_on_timer_is_eperm)
{
	struct gosync_select_case kc[2];
	struct gosync_select arg;
	int dev = gs_device_fd();
	uint64_t v = 2, d = POISON;
	gs_chan *t, *c;

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, gs_after(&t, PENDING_NS));
	ASSERT_EQ(0, gs_chan_make(&c, sizeof(uint64_t), 1));
	ASSERT_EQ(0, gs_chan_send(c, &v));
	kc[0] = (struct gosync_select_case){
		.fd = gs_chan_fd(c), .op = GOSYNC_SELECT_RECV, .value = (uintptr_t)&d,
	};
	kc[1] = (struct gosync_select_case){
		.fd = gs_chan_fd(t), .op = GOSYNC_SELECT_SEND, .value = (uintptr_t)&v,
	};
	EXPECT_EQ(-EPERM, raw_select(dev, kc, 2, 0, GS_FOREVER, &arg));
	EXPECT_EQ(-EPERM, raw_select(dev, kc, 2, GOSYNC_SELECT_DEFAULT, GS_FOREVER, &arg));
	EXPECT_EQ(0xdead, arg.index);
	EXPECT_EQ(POISON, d);
	EXPECT_EQ(1, gs_chan_len(c));
	/* A receive case on the timer is fine. */
	kc[1].op = GOSYNC_SELECT_RECV;
	kc[1].value = (uintptr_t)&v;
	EXPECT_EQ(-EAGAIN, raw_select(dev, kc + 1, 1, GOSYNC_SELECT_DEFAULT,
				      GS_FOREVER, &arg));
	EXPECT_EQ(1, gs_timer_stop(t));
	gs_chan_destroy(t);
	gs_chan_destroy(c);
}

/* ================================================================== */
/* 12. 64-case stress with a conservation check                         */

#define ST_CHANS	64
#define ST_SELECTORS	3
#define ST_SENDERS	2
#define ST_RECEIVERS	2
#define ST_THREADS	(ST_SELECTORS + ST_SENDERS + ST_RECEIVERS)
#define ST_RUN_MS	((unsigned int)gs_stress(8000, 2000))	/* mixed phase */
#define ST_MAX_OPS	20000	/* per thread, a bound whatever the speed */
#define ST_WAIT_NS	(10 * NS_PER_MS)

enum { ST_SELECT, ST_SEND, ST_RECV };

struct st_ctx;

struct st_thread {
	struct st_ctx *ctx;
	int id, kind;
	unsigned int seed;
	uint64_t nsent;		/* this thread's values 0..nsent-1 were sent */
	uint64_t *got;		/* values received */
	uint64_t ngot;
	uint64_t ops, timeouts, sel_blocking;
	int err;
	uint64_t err_op;
	pthread_t thr;
};

struct st_ctx {
	gs_chan *ch[ST_CHANS];
	atomic_bool stop;
	atomic_ulong selects;	/* started, for the main thread to watch */
	struct st_thread t[ST_THREADS];
};

static uint64_t st_value(int id, uint64_t seq)
{
	return ((uint64_t)(id + 1) << 32) | seq;
}

static void st_fail(struct st_thread *t, int err)
{
	if (!t->err) {
		t->err = err;
		t->err_op = t->ops;
	}
}

static void *st_main(void *arg)
{
	struct st_thread *t = arg;
	struct st_ctx *ctx = t->ctx;

	for (t->ops = 0; t->ops < ST_MAX_OPS && !atomic_load(&ctx->stop) && !t->err;
	     t->ops++) {
		uint64_t v = st_value(t->id, t->nsent);
		uint64_t dl = gs_deadline_in(ST_WAIT_NS);
		int ret;

		if (t->kind == ST_SELECT)
			atomic_fetch_add(&ctx->selects, 1);
		if (t->kind == ST_SELECT) {
			gs_case cs[ST_CHANS];
			uint64_t rbuf[ST_CHANS];
			/* Every third select only has the unbuffered channels. */
			bool unbuffered_only = t->ops % 3 == 0;

			for (int i = 0; i < ST_CHANS; i++) {
				gs_chan *c = ctx->ch[i];

				if (unbuffered_only && gs_chan_cap(c))
					c = NULL;
				rbuf[i] = POISON;
				cs[i] = rand_r(&t->seed) & 1 ? gs_case_send(c, &v) :
							       gs_case_recv(c, &rbuf[i]);
			}
			t->sel_blocking += unbuffered_only;
			ret = gs_select(cs, ST_CHANS, 0, dl);
			if (ret == -ETIMEDOUT) {
				t->timeouts++;
			} else if (ret < 0 || ret >= ST_CHANS) {
				st_fail(t, ret < 0 ? ret : -1000);
			} else if (cs[ret].op == GS_OP_SEND) {
				t->nsent++;
			} else if (!cs[ret].ok) {
				st_fail(t, -2000);
			} else {
				t->got[t->ngot++] = rbuf[ret];
			}
			/* Destinations of the cases that did not commit are intact. */
			for (int i = 0; i < ST_CHANS; i++)
				if (i != ret && rbuf[i] != POISON)
					st_fail(t, -3000 - i);
		} else {
			gs_chan *c = ctx->ch[rand_r(&t->seed) % ST_CHANS];

			if (t->kind == ST_SEND) {
				ret = gs_chan_send_until(c, &v, dl, 0);
				if (ret == 0)
					t->nsent++;
				else if (ret == -ETIMEDOUT)
					t->timeouts++;
				else
					st_fail(t, ret);
			} else {
				uint64_t d = POISON;

				ret = gs_chan_recv_until(c, &d, dl, 0);
				if (ret == 1)
					t->got[t->ngot++] = d;
				else if (ret == -ETIMEDOUT)
					t->timeouts++;
				else
					st_fail(t, ret < 0 ? ret : -4000);
			}
		}
	}
	return NULL;
}

TEST_F(slow, select_64_cases_stress_conserves_values)
{
	static struct st_ctx ctx;
	uint64_t drained[2 * ST_CHANS], ndrained = 0;
	uint64_t total_sent = 0, total_got = 0, kernel_sends = 0, kernel_recvs = 0;
	uint64_t dup = 0, lost = 0, phantom = 0, sel_ops = 0;
	uint8_t *count[ST_THREADS];

	memset(&ctx, 0, sizeof(ctx));
	for (int i = 0; i < ST_CHANS; i++) {
		ASSERT_EQ(0, gs_chan_make(&ctx.ch[i], sizeof(uint64_t), i & 1));
	}
	for (int i = 0; i < ST_THREADS; i++) {
		struct st_thread *t = &ctx.t[i];

		t->ctx = &ctx;
		t->id = i;
		t->kind = i < ST_SELECTORS ? ST_SELECT :
			  i < ST_SELECTORS + ST_SENDERS ? ST_SEND : ST_RECV;
		t->seed = 0x5eed + 7919 * i;
		t->got = calloc(ST_MAX_OPS, sizeof(uint64_t));
		ASSERT_NE(NULL, t->got);
	}
	for (int i = 0; i < ST_THREADS; i++) {
		ASSERT_EQ(0, start_thread(&ctx.t[i].thr, st_main, &ctx.t[i]));
	}
	/*
	 * ST_RUN_MS at least, and until the run is not vacuous (see the
	 * end), however slow the machine (a watchdog of 5 minutes).
	 */
	sleep_ms(ST_RUN_MS);
	for (uint64_t t_run = mono_ns(); ms_since(t_run) < 5 * WAIT_LIMIT_MS;) {
		uint64_t sends = 0;

		for (int i = 0; i < ST_CHANS; i++)
			sends += chan_st(ctx.ch[i]).sends;
		if (sends > 1000 && atomic_load(&ctx.selects) > 300 + ST_SELECTORS)
			break;
		sleep_ms(100);
	}
	atomic_store(&ctx.stop, true);
	for (int i = 0; i < ST_THREADS; i++) {
		struct st_thread *t = &ctx.t[i];

		pthread_join(t->thr, NULL);
		EXPECT_EQ(0, t->err) TH_LOG("thread %d (kind %d) at op %llu", i,
					    t->kind, (unsigned long long)t->err_op);
		total_sent += t->nsent;
		total_got += t->ngot;
		if (t->kind == ST_SELECT)
			sel_ops += t->ops;
		TH_LOG("thread %d kind %d: %llu ops, %llu sent, %llu received, %llu timeouts",
		       i, t->kind, (unsigned long long)t->ops,
		       (unsigned long long)t->nsent, (unsigned long long)t->ngot,
		       (unsigned long long)t->timeouts);
	}

	/* Collect what is still buffered; nobody waits any more. */
	for (int i = 0; i < ST_CHANS; i++) {
		struct gosync_chan_status st;
		uint64_t d;

		while (ndrained < ARRAY_SIZE(drained) &&
		       gs_chan_try_recv(ctx.ch[i], &d) == 1)
			drained[ndrained++] = d;
		st = chan_st(ctx.ch[i]);
		EXPECT_EQ(0, st.len) TH_LOG("chan %d", i);
		EXPECT_EQ(0, st.send_waiters) TH_LOG("chan %d", i);
		EXPECT_EQ(0, st.recv_waiters) TH_LOG("chan %d", i);
		kernel_sends += st.sends;
		kernel_recvs += st.recvs;
	}
	EXPECT_GE(ST_CHANS / 2, ndrained);	/* only the 32 buffered channels */

	/* Every value sent was received exactly once; nothing else was. */
	for (int i = 0; i < ST_THREADS; i++) {
		count[i] = calloc(ctx.t[i].nsent + 1, 1);
		ASSERT_NE(NULL, count[i]);
	}
	for (int i = 0; i <= ST_THREADS; i++) {
		uint64_t n = i < ST_THREADS ? ctx.t[i].ngot : ndrained;
		uint64_t *vals = i < ST_THREADS ? ctx.t[i].got : drained;

		for (uint64_t k = 0; k < n; k++) {
			uint64_t id = (vals[k] >> 32) - 1, seq = vals[k] & 0xffffffffULL;

			if (id >= ST_THREADS || seq >= ctx.t[id].nsent)
				phantom++;
			else if (count[id][seq]++)
				dup++;
		}
	}
	for (int i = 0; i < ST_THREADS; i++) {
		for (uint64_t s = 0; s < ctx.t[i].nsent; s++)
			lost += !count[i][s];
		free(count[i]);
		free(ctx.t[i].got);
	}
	TH_LOG("%llu values sent, %llu received, %llu drained, %llu selects",
	       (unsigned long long)total_sent, (unsigned long long)total_got,
	       (unsigned long long)ndrained, (unsigned long long)sel_ops);
	EXPECT_EQ(0, phantom);
	EXPECT_EQ(0, dup);
	EXPECT_EQ(0, lost);
	EXPECT_EQ(total_sent, total_got + ndrained);
	/* The kernel's counters agree. */
	EXPECT_EQ(total_sent, kernel_sends);
	EXPECT_EQ(total_got + ndrained, kernel_recvs);
	/* Not a vacuous run. */
	EXPECT_LT(1000, total_sent);
	EXPECT_LT(300, sel_ops);
	for (int i = 0; i < ST_CHANS; i++)
		gs_chan_destroy(ctx.ch[i]);
}

/* ------------------------------------------------------------------ */
/* Receive cases into NULL, and the cap on a select's value buffers    */

/*
 * A receive case whose value is NULL discards what it receives, on every
 * path (a value in the ring, a blocked sender, a sender that comes while
 * the select waits, a close), for any element size, and costs the kernel
 * no buffer. The cases' other values are bounded in total by the module
 * parameter max_select_bytes: -E2BIG beyond, with nothing consumed or
 * sent. Self-contained: the helpers below are used only here.
 */

/* Value number @n of @size bytes: byte i is n * 31 + i + 1 (mod 256). */
static void sn_fill(unsigned char *p, size_t size, unsigned int n)
{
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(n * 31u + i + 1u);
}

static bool sn_is(const unsigned char *p, size_t size, unsigned int n)
{
	for (size_t i = 0; i < size; i++)
		if (p[i] != (unsigned char)(n * 31u + i + 1u))
			return false;
	return true;
}

/* A send of @buf, or a select over @cs, in a thread of its own. */
struct sn_job {
	gs_chan *ch;		/* a send on it, if set; else the select */
	const void *buf;
	gs_case *cs;
	size_t n;
	int ret;
	pthread_t thr;
};

static void *sn_job_main(void *arg)
{
	struct sn_job *j = arg;
	uint64_t dl = gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);

	j->ret = j->ch ? gs_chan_send_until(j->ch, j->buf, dl, 0) :
			 gs_select(j->cs, j->n, 0, dl);
	return NULL;
}

static int sn_send_start(struct sn_job *j, gs_chan *ch, const void *buf)
{
	memset(j, 0, sizeof(*j));
	j->ch = ch;
	j->buf = buf;
	j->ret = INT_MIN;
	return start_thread(&j->thr, sn_job_main, j);
}

static int sn_select_start(struct sn_job *j, gs_case *cs, size_t n)
{
	memset(j, 0, sizeof(*j));
	j->cs = cs;
	j->n = n;
	j->ret = INT_MIN;
	return start_thread(&j->thr, sn_job_main, j);
}

static int sn_join(struct sn_job *j)
{
	return join_ms(j->thr, 2 * WAIT_LIMIT_MS);
}

/* Wait until @ch has @senders blocked senders and @receivers receivers. */
static bool sn_wait_waiters(gs_chan *ch, uint32_t senders, uint32_t receivers)
{
	uint64_t t0 = mono_ns();

	for (;;) {
		struct gosync_chan_status st;

		if (!gs_chan_status(ch, &st) && st.send_waiters == senders &&
		    st.recv_waiters == receivers)
			return true;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return false;
		usleep(200);
	}
}

#define EXPECT_SN_COUNTS(ch, len_, sends_, recvs_) do {			\
	struct gosync_chan_status st_;					\
	memset(&st_, 0xff, sizeof(st_));				\
	ASSERT_EQ(0, gs_chan_status((ch), &st_));			\
	EXPECT_EQ((uint32_t)(len_), st_.len);				\
	EXPECT_EQ((uint64_t)(sends_), st_.sends);			\
	EXPECT_EQ((uint64_t)(recvs_), st_.recvs);			\
	EXPECT_EQ(0, st_.send_waiters);					\
	EXPECT_EQ(0, st_.recv_waiters);					\
} while (0)

TEST(recv_case_into_null_on_every_path)
{
	static const size_t sizes[] = { 0, 8, GOSYNC_CHAN_ELEM_MAX };
	static const uint32_t caps[] = { 0, 2 };

	for (size_t k = 0; k < ARRAY_SIZE(sizes) * ARRAY_SIZE(caps); k++) {
		size_t size = sizes[k / ARRAY_SIZE(caps)];
		uint32_t cap = caps[k % ARRAY_SIZE(caps)];
		unsigned char *out = malloc(size + 1), *in = malloc(size + 1);
		unsigned char *other_dst = malloc(size + 1);
		unsigned int sent = 0, next = 1;
		gs_chan *ch, *other;
		struct sn_job s, j;
		gs_case cs[2];

		ASSERT_NE(NULL, out);
		ASSERT_NE(NULL, in);
		ASSERT_NE(NULL, other_dst);
		ASSERT_EQ(0, gs_chan_make(&ch, size, cap));
		ASSERT_EQ(0, gs_chan_make(&other, size, 0));	/* never ready */
		memset(other_dst, POISON_BYTE, size);

		/* Values in the ring: the case takes the oldest. */
		for (int round = 0; cap && round < 2; round++) {
			for (int i = 0; i < 2; i++) {
				sn_fill(out, size, ++sent);
				ASSERT_EQ(0, gs_chan_try_send(ch, out));
			}
			cs[0] = gs_case_recv(other, other_dst);
			cs[1] = gs_case_recv(ch, NULL);
			EXPECT_EQ(1, gs_select(cs, 2, round ? 0 : GS_SELECT_DEFAULT,
					       GS_FOREVER))
				TH_LOG("size %zu cap %u", size, cap);
			EXPECT_TRUE(cs[1].ok);
			next++;
			EXPECT_SN_COUNTS(ch, 1, sent, next - 1);
			EXPECT_EQ(1, gs_chan_try_recv(ch, in));
			EXPECT_TRUE(sn_is(in, size, next));
			next++;
		}

		/* A blocked sender (behind a full ring, if buffered). */
		for (uint32_t i = 0; i < cap; i++) {
			sn_fill(out, size, ++sent);
			ASSERT_EQ(0, gs_chan_try_send(ch, out));
		}
		sn_fill(out, size, ++sent);
		ASSERT_EQ(0, sn_send_start(&s, ch, out));
		ASSERT_TRUE(sn_wait_waiters(ch, 1, 0));
		cs[0] = gs_case_recv(ch, NULL);
		cs[1] = gs_case_recv(other, other_dst);
		EXPECT_EQ(0, gs_select(cs, 2, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS)))
			TH_LOG("size %zu cap %u", size, cap);
		EXPECT_TRUE(cs[0].ok);
		next++;
		ASSERT_EQ(0, sn_join(&s));
		EXPECT_EQ(0, s.ret);
		EXPECT_SN_COUNTS(ch, cap, sent, next - 1);
		for (; next <= sent; next++) {
			memset(in, 0, size);
			EXPECT_EQ(1, gs_chan_try_recv(ch, in));
			EXPECT_TRUE(sn_is(in, size, next)) TH_LOG("value %u", next);
		}

		/* A select waiting on NULL, then a sender. */
		cs[0] = gs_case_recv(other, other_dst);
		cs[1] = gs_case_recv(ch, NULL);
		ASSERT_EQ(0, sn_select_start(&j, cs, 2));
		ASSERT_TRUE(sn_wait_waiters(ch, 0, 1));
		sn_fill(out, size, ++sent);
		EXPECT_EQ(0, gs_chan_send_until(ch, out, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
		ASSERT_EQ(0, sn_join(&j));
		EXPECT_EQ(1, j.ret) TH_LOG("size %zu cap %u", size, cap);
		EXPECT_TRUE(cs[1].ok);
		next++;
		EXPECT_SN_COUNTS(ch, 0, sent, sent);
		EXPECT_SN_COUNTS(other, 0, 0, 0);
		/* ... and the next value, into memory, is the next one sent. */
		sn_fill(out, size, ++sent);
		ASSERT_EQ(0, sn_send_start(&s, ch, out));
		cs[0] = gs_case_recv(ch, in);
		memset(in, 0, size);
		EXPECT_EQ(0, gs_select(cs, 1, 0, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS)));
		EXPECT_TRUE(sn_is(in, size, sent));
		next++;
		ASSERT_EQ(0, sn_join(&s));
		EXPECT_EQ(0, s.ret);

		/* A select waiting on NULL is woken by the close: ok false. */
		cs[0] = gs_case_recv(ch, NULL);
		cs[1] = gs_case_recv(other, other_dst);
		ASSERT_EQ(0, sn_select_start(&j, cs, 2));
		ASSERT_TRUE(sn_wait_waiters(ch, 0, 1));
		ASSERT_EQ(0, gs_chan_close(ch));
		ASSERT_EQ(0, sn_join(&j));
		EXPECT_EQ(0, j.ret);
		EXPECT_FALSE(cs[0].ok);
		/* Closed, ready at once: ok false, again and again. */
		for (int i = 0; i < 3; i++) {
			cs[0] = gs_case_recv(ch, NULL);
			cs[0].ok = true;
			EXPECT_EQ(0, gs_select(cs, 1, i ? GS_SELECT_DEFAULT : 0, GS_FOREVER));
			EXPECT_FALSE(cs[0].ok);
		}
		EXPECT_SN_COUNTS(ch, 0, sent, sent);
		EXPECT_SN_COUNTS(other, 0, 0, 0);
		EXPECT_TRUE(all_bytes(other_dst, POISON_BYTE, size));
		gs_chan_destroy(ch);
		gs_chan_destroy(other);
		free(out);
		free(in);
		free(other_dst);
	}
}

/* Write @val into max_select_bytes: 0 or a negative errno. */
static int sn_set_max_select_bytes(long long val)
{
	char buf[64];
	int len = snprintf(buf, sizeof(buf), "%lld\n", val);
	int fd = open("/sys/module/gosync/parameters/max_select_bytes",
		      O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, (size_t)len);
	close(fd);
	return n == len ? 0 : -EIO;
}

/*
 * Cases whose value bytes add up to @total: a receive case on @r (64 KiB,
 * holding a value), a send case on @s (64 KiB, room), then receive cases
 * on new unbuffered channels (never ready) of 64 KiB or less, into @dst.
 * Returns the number of cases, or 0 if they would be too many.
 */
static size_t sn_cases(gs_case *cs, gs_chan **made, size_t *nmade,
		       gs_chan *r, gs_chan *s, void *dst, const void *val,
		       uint64_t total)
{
	uint64_t left = total - 2 * GOSYNC_CHAN_ELEM_MAX;
	size_t n = 0;

	*nmade = 0;
	cs[n++] = gs_case_recv(r, dst);
	cs[n++] = gs_case_send(s, val);
	while (left) {
		uint64_t size = left < GOSYNC_CHAN_ELEM_MAX ? left : GOSYNC_CHAN_ELEM_MAX;

		if (n == GS_SELECT_MAX || gs_chan_make(&made[*nmade], size, 0))
			return 0;
		cs[n++] = gs_case_recv(made[(*nmade)++], dst);
		left -= size;
	}
	return n;
}

static void sn_unmake(gs_chan **made, size_t nmade)
{
	for (size_t i = 0; i < nmade; i++)
		gs_chan_destroy(made[i]);
}

TEST(select_value_bytes_beyond_max_select_bytes_is_e2big)
{
	long long max = read_param("max_select_bytes");
	gs_case cs[GS_SELECT_MAX];
	gs_chan *made[GS_SELECT_MAX], *r, *s;
	unsigned char *dst, *val, *got;
	size_t n, nmade;
	int ret;

	ASSERT_LT(0, max) TH_LOG("max_select_bytes not readable");
	if (max < 2 * GOSYNC_CHAN_ELEM_MAX ||
	    max > (long long)(GS_SELECT_MAX - 1) * GOSYNC_CHAN_ELEM_MAX)
		SKIP(return, "max_select_bytes %lld: no test shape for it", max);
	dst = malloc(GOSYNC_CHAN_ELEM_MAX);
	val = malloc(GOSYNC_CHAN_ELEM_MAX);
	got = malloc(GOSYNC_CHAN_ELEM_MAX);
	ASSERT_NE(NULL, dst);
	ASSERT_NE(NULL, val);
	ASSERT_NE(NULL, got);
	ASSERT_EQ(0, gs_chan_make(&r, GOSYNC_CHAN_ELEM_MAX, 1));
	ASSERT_EQ(0, gs_chan_make(&s, GOSYNC_CHAN_ELEM_MAX, 1));
	sn_fill(val, GOSYNC_CHAN_ELEM_MAX, 7);
	ASSERT_EQ(0, gs_chan_try_send(r, val));
	sn_fill(val, GOSYNC_CHAN_ELEM_MAX, 8);

	/* One byte over: -E2BIG at once, waiting or not; nothing moves. */
	n = sn_cases(cs, made, &nmade, r, s, dst, val, (uint64_t)max + 1);
	ASSERT_LT(0, n);
	memset(dst, POISON_BYTE, GOSYNC_CHAN_ELEM_MAX);
	EXPECT_EQ(-E2BIG, gs_select(cs, n, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(-E2BIG, gs_select(cs, n, 0, GS_FOREVER));
	EXPECT_TRUE(all_bytes(dst, POISON_BYTE, GOSYNC_CHAN_ELEM_MAX));
	EXPECT_SN_COUNTS(r, 1, 1, 0);
	EXPECT_SN_COUNTS(s, 0, 0, 0);
	/* The same cases with every receive into NULL take no room. */
	for (size_t i = 2; i < n; i++)
		cs[i].value = NULL;
	cs[0].value = NULL;
	for (size_t i = n; i < n + 8 && i < GS_SELECT_MAX; i++)
		cs[i] = gs_case_recv(made[0], NULL);
	ret = gs_select(cs, n + 8 <= GS_SELECT_MAX ? n + 8 : GS_SELECT_MAX,
			GS_SELECT_DEFAULT, GS_FOREVER);
	EXPECT_TRUE(ret == 0 || ret == 1) TH_LOG("ret %d", ret);
	if (ret == 0) {
		EXPECT_SN_COUNTS(r, 0, 1, 1);	/* discarded */
		sn_fill(got, GOSYNC_CHAN_ELEM_MAX, 7);
		ASSERT_EQ(0, gs_chan_try_send(r, got));
	} else if (ret == 1) {
		EXPECT_EQ(1, gs_chan_try_recv(s, got));
		EXPECT_TRUE(sn_is(got, GOSYNC_CHAN_ELEM_MAX, 8));
	}
	sn_unmake(made, nmade);

	/* At the cap and one byte under: the select proceeds. */
	for (int under = 0; under < 2; under++) {
		struct gosync_chan_status rs, ss;

		n = sn_cases(cs, made, &nmade, r, s, dst, val, (uint64_t)max - under);
		ASSERT_LT(0, n);
		ASSERT_EQ(0, gs_chan_status(r, &rs));
		ASSERT_EQ(0, gs_chan_status(s, &ss));
		memset(dst, POISON_BYTE, GOSYNC_CHAN_ELEM_MAX);
		ret = gs_select(cs, n, GS_SELECT_DEFAULT, GS_FOREVER);
		EXPECT_TRUE(ret == 0 || ret == 1) TH_LOG("under %d: ret %d", under, ret);
		if (ret == 0) {
			EXPECT_TRUE(cs[0].ok);
			EXPECT_TRUE(sn_is(dst, GOSYNC_CHAN_ELEM_MAX, 7));
			EXPECT_SN_COUNTS(r, 0, rs.sends, rs.recvs + 1);
			sn_fill(got, GOSYNC_CHAN_ELEM_MAX, 7);
			ASSERT_EQ(0, gs_chan_try_send(r, got));
		} else if (ret == 1) {
			EXPECT_TRUE(all_bytes(dst, POISON_BYTE, GOSYNC_CHAN_ELEM_MAX));
			EXPECT_SN_COUNTS(s, 1, ss.sends + 1, ss.recvs);
			EXPECT_EQ(1, gs_chan_try_recv(s, got));
			EXPECT_TRUE(sn_is(got, GOSYNC_CHAN_ELEM_MAX, 8));
		}
		sn_unmake(made, nmade);
	}

	/*
	 * The parameter never goes below one largest element: set to 0, a
	 * select of one 64 KiB case still works, one of two does not.
	 */
	if (sn_set_max_select_bytes(0) == 0) {
		int one, two;

		cs[0] = gs_case_recv(r, got);
		cs[1] = gs_case_send(s, val);
		two = gs_select(cs, 2, GS_SELECT_DEFAULT, GS_FOREVER);
		one = gs_select(cs, 1, GS_SELECT_DEFAULT, GS_FOREVER);
		ASSERT_EQ(0, sn_set_max_select_bytes(max));
		EXPECT_EQ(-E2BIG, two);
		EXPECT_EQ(0, one);
		EXPECT_TRUE(sn_is(got, GOSYNC_CHAN_ELEM_MAX, 7));
	}
	EXPECT_EQ(max, read_param("max_select_bytes"));
	gs_chan_destroy(r);
	gs_chan_destroy(s);
	free(dst);
	free(val);
	free(got);
}

TEST_HARNESS_MAIN
