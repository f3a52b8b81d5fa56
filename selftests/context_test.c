// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of package context (gs_ctx_*) and of the kernel's cancellable
 * waits (GOSYNC_WAIT_CANCEL_FD):
 *
 *  - the roots (Background, TODO): never done, release is a no-op;
 *  - WithCancel, cancel and causes; Done made before and after the
 *    cancel, seen by a receive, poll and epoll;
 *  - propagation down a deep chain and a wide tree (exactly the subtree
 *    of a cancelled node), children born cancelled, WithoutCancel, and
 *    derivation racing a cancel;
 *  - deadlines: on time (never early), inherited, cancelled first, many
 *    at once, already past;
 *  - values; AfterFunc and its stop;
 *  - every _ctx blocking call: cancelled while blocked, deadline while
 *    blocked, already done, served, and served racing a cancel; the
 *    object is left consistent;
 *  - the raw ioctls with GOSYNC_WAIT_CANCEL_FD (semaphore acquire and
 *    lot park): cancel, argument checks, a served wait beats the close,
 *    the cancel fd closed during the wait, another process's close;
 *  - Done in another process (fork, SCM_RIGHTS);
 *  - thousands of contexts without a leaked fd or allocation.
 *
 * Tests of the "op" fixture run once per blocking call, those of the
 * "raw" fixture once for the semaphore and once for the parking lot.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

/*
 * How late a deadline may be seen, or a blocking call return after it:
 * only the watchdog of a hang (that neither came early is what the lower
 * bounds check).
 */
#define LATE_MS		WAIT_LIMIT_MS
#define CALL_LATE_MS	WAIT_LIMIT_MS
/* Deadlines this far apart are seen in their order (not a window). */
#define ORDER_MS	300
/* A deadline that must outlast a few calls on a slow machine. */
#define SOON_MS		1000
/* A deadline far enough never to pass during a test. */
#define FAR_NS		(600 * NS_PER_SEC)

/* The leak checker of the asan run, when the binary is built with it. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static gs_ctx *bg(void)
{
	return gs_ctx_background();
}

static pid_t tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/*
 * The state of @ctx's Done channel: 1 closed (a receive returns 0 at once,
 * poll says readable and hung up), 0 open (nothing to receive, poll says
 * nothing), -ENOENT no channel, -EPROTO the two views disagree. Only for
 * a context that nobody cancels meanwhile.
 */
static int done_state(gs_ctx *ctx)
{
	gs_chan *d = gs_ctx_done(ctx);
	struct pollfd pfd;
	int p, r;

	if (!d)
		return -ENOENT;
	pfd = (struct pollfd){ .fd = gs_chan_fd(d), .events = POLLIN | POLLOUT };
	p = poll(&pfd, 1, 0);
	r = gs_chan_try_recv(d, NULL);
	if (r == 0)
		return p == 1 && (pfd.revents & (POLLIN | POLLHUP)) ==
				 (POLLIN | POLLHUP) ? 1 : -EPROTO;
	if (r == -EAGAIN)
		return p == 0 ? 0 : -EPROTO;
	return r;
}

/* Entries of /proc/self/fd (the directory's own fd included). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Wait (bounded) until the process has @want fds; the last count. */
static int wait_fds(int want)
{
	uint64_t t0 = mono_ns();
	int n;

	while ((n = count_fds()) != want && ms_since(t0) < WAIT_LIMIT_MS)
		usleep(1000);
	return n;
}

/* Cancel a context from another thread after a delay. */
struct later {
	gs_ctx *ctx;
	int cause;
	unsigned int ms;
	uint64_t at;		/* gs_now() just before the cancel */
	pthread_t thread;
};

static void *later_main(void *p)
{
	struct later *l = p;

	sleep_ms(l->ms);
	l->at = gs_now();
	gs_ctx_cancel_cause(l->ctx, l->cause);
	return NULL;
}

static int later_start(struct later *l, gs_ctx *ctx, int cause,
		       unsigned int ms)
{
	*l = (struct later){ .ctx = ctx, .cause = cause, .ms = ms };
	return start_thread(&l->thread, later_main, l);
}

/* An AfterFunc that counts its runs and says where and when it ran. */
struct af {
	atomic_int runs;
	_Atomic uint64_t at;
	_Atomic pid_t tid;
};

static void af_fn(void *p)
{
	struct af *a = p;

	atomic_store(&a->tid, tid());
	atomic_store(&a->at, gs_now());
	atomic_fetch_add(&a->runs, 1);
}

/* Wait (bounded) until @a has run at least @n times; its runs. */
static int af_wait(struct af *a, int n)
{
	uint64_t t0 = mono_ns();

	while (atomic_load(&a->runs) < n && ms_since(t0) < WAIT_LIMIT_MS)
		usleep(200);
	return atomic_load(&a->runs);
}

/* ================================================================== */
/* 1. The roots                                                         */

TEST(background_and_todo_are_never_done)
{
	gs_ctx *roots[2] = { gs_ctx_background(), gs_ctx_todo() };
	uint64_t dl = 12345;
	static int key;

	EXPECT_NE(roots[0], roots[1]);
	EXPECT_EQ(roots[0], gs_ctx_background());
	EXPECT_EQ(roots[1], gs_ctx_todo());
	for (int i = 0; i < 2; i++) {
		gs_ctx *r = roots[i], *child;
		gs_ctx_after *stop;
		struct af a = { 0 };

		EXPECT_EQ(0, gs_ctx_err(r));
		EXPECT_EQ(0, gs_ctx_cause(r));
		EXPECT_EQ(NULL, gs_ctx_done(r));
		EXPECT_FALSE(gs_ctx_deadline(r, &dl));
		EXPECT_EQ(12345, dl);
		EXPECT_EQ(NULL, gs_ctx_value(r, &key));

		/* Release, ref, cancel: no-ops, however often. */
		EXPECT_EQ(r, gs_ctx_ref(r));
		for (int k = 0; k < 5; k++)
			gs_ctx_release(r);
		gs_ctx_cancel(r);
		gs_ctx_cancel_cause(r, -EPIPE);
		EXPECT_EQ(0, gs_ctx_err(r));
		EXPECT_EQ(0, gs_ctx_cause(r));
		EXPECT_EQ(NULL, gs_ctx_done(r));

		/* Still a usable parent. */
		ASSERT_EQ(0, gs_ctx_with_cancel(r, &child));
		EXPECT_EQ(0, gs_ctx_err(child));
		EXPECT_FALSE(gs_ctx_deadline(child, NULL));
		gs_ctx_cancel(child);
		EXPECT_EQ(-ECANCELED, gs_ctx_err(child));
		EXPECT_EQ(0, gs_ctx_err(r));
		gs_ctx_release(child);

		/* An AfterFunc on a root never runs; stop says it stopped it. */
		ASSERT_EQ(0, gs_ctx_after_func(r, af_fn, &a, &stop));
		sleep_ms(20);
		EXPECT_TRUE(gs_ctx_after_func_stop(stop));
		EXPECT_EQ(0, atomic_load(&a.runs));
	}
}

TEST(bad_arguments_are_einval)
{
	gs_ctx *c = (gs_ctx *)0x1, *p;
	gs_ctx_after *stop;
	static int key;

	EXPECT_EQ(-EINVAL, gs_ctx_with_cancel(NULL, &c));
	EXPECT_EQ(-EINVAL, gs_ctx_with_cancel(bg(), NULL));
	EXPECT_EQ(-EINVAL, gs_ctx_with_timeout(NULL, NS_PER_SEC, &c));
	EXPECT_EQ(-EINVAL, gs_ctx_with_deadline(NULL, GS_FOREVER, &c));
	EXPECT_EQ(-EINVAL, gs_ctx_with_value(NULL, &key, NULL, &c));
	EXPECT_EQ(-EINVAL, gs_ctx_with_value(bg(), NULL, &key, &c));
	EXPECT_EQ(-EINVAL, gs_ctx_without_cancel(NULL, &c));
	EXPECT_EQ((gs_ctx *)0x1, c);

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &p));
	EXPECT_EQ(-EINVAL, gs_ctx_with_value(p, NULL, &key, &c));
	EXPECT_EQ(-EINVAL, gs_ctx_after_func(p, NULL, NULL, &stop));
	EXPECT_EQ(-EINVAL, gs_ctx_after_func(p, af_fn, NULL, NULL));
	/* The _ctx calls want a context. */
	EXPECT_EQ(-EINVAL, gs_select_ctx(NULL, 0, NULL));
	gs_ctx_cancel(p);
	gs_ctx_release(p);
}

/* ================================================================== */
/* 2. WithCancel, cancel, causes, Done                                  */

TEST(with_cancel_then_cancel)
{
	gs_ctx *ctx;
	gs_chan *d;
	uint64_t t0;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	EXPECT_EQ(0, gs_ctx_err(ctx));
	EXPECT_EQ(0, gs_ctx_cause(ctx));
	EXPECT_FALSE(gs_ctx_deadline(ctx, NULL));
	d = gs_ctx_done(ctx);
	ASSERT_NE(NULL, d);
	EXPECT_EQ(d, gs_ctx_done(ctx));		/* the same channel each time */
	EXPECT_EQ(0, gs_chan_elem_size(d));
	EXPECT_EQ(0, gs_chan_cap(d));
	EXPECT_EQ(0, done_state(ctx));
	EXPECT_EQ(-ETIMEDOUT,
		  gs_chan_recv_until(d, NULL, gs_deadline_in(20 * NS_PER_MS), 0));

	gs_ctx_cancel(ctx);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(ctx));
	EXPECT_EQ(d, gs_ctx_done(ctx));
	EXPECT_EQ(1, done_state(ctx));
	t0 = mono_ns();
	EXPECT_EQ(0, gs_chan_recv_until(d, NULL,
					gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
	EXPECT_EQ(0, gs_chan_recv(d, NULL));	/* again and again */
	EXPECT_GT(LATE_MS, ms_since(t0));

	/* A second cancel changes nothing. */
	gs_ctx_cancel_cause(ctx, -EPIPE);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(ctx));
	EXPECT_EQ(1, done_state(ctx));
	gs_ctx_release(ctx);
}

TEST(cancel_cause_first_one_wins)
{
	gs_ctx *a, *b, *c;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &a));
	gs_ctx_cancel_cause(a, -EPIPE);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(a));
	EXPECT_EQ(-EPIPE, gs_ctx_cause(a));
	gs_ctx_cancel_cause(a, -EIO);
	gs_ctx_cancel(a);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(a));
	EXPECT_EQ(-EPIPE, gs_ctx_cause(a));

	/* A cause of 0 means Canceled. */
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &b));
	gs_ctx_cancel_cause(b, 0);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(b));
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(b));
	gs_ctx_cancel_cause(b, -EIO);
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(b));

	/* Any non-zero int is a cause, positive too. */
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &c));
	gs_ctx_cancel_cause(c, 77);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(c));
	EXPECT_EQ(77, gs_ctx_cause(c));

	gs_ctx_release(a);
	gs_ctx_release(b);
	gs_ctx_release(c);
}

TEST(done_made_before_and_after_cancel_is_closed)
{
	gs_ctx *before, *after, *kid_before, *kid_after;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &before));
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &after));
	ASSERT_EQ(0, gs_ctx_with_cancel(before, &kid_before));
	ASSERT_EQ(0, gs_ctx_with_cancel(after, &kid_after));
	EXPECT_EQ(0, done_state(before));
	EXPECT_EQ(0, done_state(kid_before));

	gs_ctx_cancel_cause(before, -EIO);
	gs_ctx_cancel_cause(after, -EIO);
	/* Made before: closed by the cancel; made after: born closed. */
	EXPECT_EQ(1, done_state(before));
	EXPECT_EQ(1, done_state(kid_before));
	EXPECT_EQ(1, done_state(after));
	EXPECT_EQ(1, done_state(kid_after));
	EXPECT_EQ(-EIO, gs_ctx_cause(kid_before));
	EXPECT_EQ(-EIO, gs_ctx_cause(kid_after));
	EXPECT_NE(gs_ctx_done(before), gs_ctx_done(kid_before));

	gs_ctx_release(kid_before);
	gs_ctx_release(kid_after);
	gs_ctx_release(before);
	gs_ctx_release(after);
}

TEST(done_wakes_poll_epoll_and_receivers)
{
	struct epoll_event ev = { .events = EPOLLIN }, out[2];
	struct pollfd pfd;
	struct later l;
	gs_ctx *ctx;
	int ep, fd;
	uint64_t t;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	fd = gs_chan_fd(gs_ctx_done(ctx));
	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	EXPECT_EQ(0, epoll_wait(ep, out, 2, 0));

	/* epoll_wait, blocked, woken by a cancel in another thread. */
	ASSERT_EQ(0, later_start(&l, ctx, 0, 50));
	EXPECT_EQ(1, epoll_wait(ep, out, 2, WAIT_LIMIT_MS));
	t = gs_now();
	EXPECT_EQ(0, join_ms(l.thread, WAIT_LIMIT_MS));
	EXPECT_LE(l.at, t);
	EXPECT_EQ(EPOLLIN | EPOLLHUP, out[0].events & (EPOLLIN | EPOLLHUP));
	/* Level-triggered: it stays ready. */
	EXPECT_EQ(1, epoll_wait(ep, out, 2, 0));
	close(ep);

	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_EQ(POLLIN | POLLHUP, pfd.revents & (POLLIN | POLLHUP));
	gs_ctx_release(ctx);

	/* poll, blocked, woken by a cancel. */
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	pfd = (struct pollfd){ .fd = gs_chan_fd(gs_ctx_done(ctx)), .events = POLLIN };
	ASSERT_EQ(0, later_start(&l, ctx, -EPIPE, 50));
	EXPECT_EQ(1, poll(&pfd, 1, WAIT_LIMIT_MS));
	t = gs_now();
	EXPECT_EQ(0, join_ms(l.thread, WAIT_LIMIT_MS));
	EXPECT_LE(l.at, t);
	EXPECT_EQ(-EPIPE, gs_ctx_cause(ctx));
	gs_ctx_release(ctx);

	/* A blocked receive on Done, and a select with Done as a case. */
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	ASSERT_EQ(0, later_start(&l, ctx, 0, 50));
	EXPECT_EQ(0, gs_chan_recv_until(gs_ctx_done(ctx), NULL,
					gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
	t = gs_now();
	EXPECT_EQ(0, join_ms(l.thread, WAIT_LIMIT_MS));
	EXPECT_LE(l.at, t);
	{
		gs_case cs[2] = { gs_case_recv(NULL, NULL),
				  gs_case_recv(gs_ctx_done(ctx), NULL) };

		EXPECT_EQ(1, gs_select(cs, 2, 0, gs_deadline_in(LATE_MS * NS_PER_MS)));
		EXPECT_FALSE(cs[1].ok);
	}
	gs_ctx_release(ctx);
}

TEST(ref_and_release)
{
	gs_ctx *ctx, *kid;
	static int key, val;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	EXPECT_EQ(ctx, gs_ctx_ref(ctx));
	EXPECT_EQ(ctx, gs_ctx_ref(ctx));
	gs_ctx_release(ctx);
	gs_ctx_release(ctx);
	/* Still alive: one reference left. */
	ASSERT_EQ(0, gs_ctx_with_value(ctx, &key, &val, &kid));
	/* The parent's creator lets go; the child keeps it alive. */
	gs_ctx_release(ctx);
	EXPECT_EQ(0, gs_ctx_err(kid));
	EXPECT_EQ(&val, gs_ctx_value(kid, &key));
	EXPECT_EQ(0, done_state(kid));
	gs_ctx_release(kid);
	gs_ctx_release(NULL);

	/* A child released before its parent is cancelled is forgotten. */
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(0, gs_ctx_with_cancel(ctx, &kid));
		if (i % 2)
			gs_ctx_cancel(kid);
		gs_ctx_release(kid);
	}
	gs_ctx_cancel(ctx);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	gs_ctx_release(ctx);
}

/* ================================================================== */
/* 3. Propagation                                                       */

#define CHAIN	1000

/* Node i of the chain: 0 the root (WithCancel), then value, cancel, timeout. */
enum { K_VALUE, K_CANCEL, K_TIMEOUT };

static int chain_kind(int i)
{
	return i == 0 ? K_CANCEL : i % 3 == 0 ? K_VALUE :
	       i % 3 == 1 ? K_CANCEL : K_TIMEOUT;
}

TEST(deep_chain_cancel_propagates)
{
	static gs_ctx *n[CHAIN];
	static int ka, kb, vals[CHAIN];
	const int m = 499;	/* a WithCancel node in the middle */
	uint64_t dl, prev = GS_FOREVER, base = gs_now() + FAR_NS;
	int bad = 0, first = -1;

	ASSERT_EQ(K_CANCEL, chain_kind(m));
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &n[0]));
	for (int i = 1; i < CHAIN; i++) {
		int r;

		switch (chain_kind(i)) {
		case K_VALUE:
			r = gs_ctx_with_value(n[i - 1], (i / 3) % 2 ? &ka : &kb,
					      &vals[i], &n[i]);
			break;
		case K_CANCEL:
			r = gs_ctx_with_cancel(n[i - 1], &n[i]);
			break;
		default:
			/*
			 * Each one 300 ms before its parent's (whatever
			 * the time the creation takes): its own timer.
			 */
			r = gs_ctx_with_timeout(n[i - 1],
						base - (uint64_t)i * 100 * NS_PER_MS -
						gs_now(), &n[i]);
			break;
		}
		ASSERT_EQ(0, r) TH_LOG("node %d", i);
	}

	/* Deadlines: none above the first timeout, then never later. */
	for (int i = 0; i < CHAIN; i++) {
		bool has = gs_ctx_deadline(n[i], &dl);

		if (has != (i >= 2) || (has && prev != GS_FOREVER && dl > prev) ||
		    (chain_kind(i) == K_TIMEOUT && dl == prev)) {
			bad++;
			if (first < 0)
				first = i;
		}
		if (has)
			prev = dl;
	}
	EXPECT_EQ(0, bad) TH_LOG("first bad deadline at node %d", first);

	/* Values: the nearest node with the key. */
	EXPECT_EQ(&vals[999], gs_ctx_value(n[999], &ka));	/* 999/3 odd */
	EXPECT_EQ(&vals[996], gs_ctx_value(n[999], &kb));
	EXPECT_EQ(&vals[993], gs_ctx_value(n[995], &ka));
	EXPECT_EQ(NULL, gs_ctx_value(n[2], &ka));
	EXPECT_EQ(NULL, gs_ctx_value(n[999], &bad));

	/* Done made before the cancel on a sample. */
	for (int i = 0; i < CHAIN; i += 50) {
		EXPECT_EQ(0, done_state(n[i])) TH_LOG("node %d", i);
	}
	EXPECT_EQ(0, done_state(n[CHAIN - 1]));

	/* Cancel the middle: exactly its subtree. */
	gs_ctx_cancel_cause(n[m], -EPIPE);
	bad = 0;
	first = -1;
	for (int i = 0; i < CHAIN; i++) {
		if (gs_ctx_err(n[i]) != (i >= m ? -ECANCELED : 0) ||
		    gs_ctx_cause(n[i]) != (i >= m ? -EPIPE : 0)) {
			bad++;
			if (first < 0)
				first = i;
		}
	}
	EXPECT_EQ(0, bad) TH_LOG("first bad node %d: err %d cause %d", first,
				 first < 0 ? 0 : gs_ctx_err(n[first]),
				 first < 0 ? 0 : gs_ctx_cause(n[first]));
	for (int i = 0; i < CHAIN; i += 25) {
		EXPECT_EQ(i >= m, done_state(n[i])) TH_LOG("node %d", i);
	}
	EXPECT_EQ(1, done_state(n[CHAIN - 1]));

	/* Cancel the root: the rest, with its cause; the subtree keeps its own. */
	gs_ctx_cancel_cause(n[0], -EIO);
	bad = 0;
	first = -1;
	for (int i = 0; i < CHAIN; i++) {
		if (gs_ctx_err(n[i]) != -ECANCELED ||
		    gs_ctx_cause(n[i]) != (i >= m ? -EPIPE : -EIO)) {
			bad++;
			if (first < 0)
				first = i;
		}
	}
	EXPECT_EQ(0, bad) TH_LOG("first bad node %d", first);
	for (int i = 0; i < CHAIN; i += 10) {
		EXPECT_EQ(1, done_state(n[i])) TH_LOG("node %d", i);
	}

	/* Parents first: each child keeps its parent alive. */
	for (int i = 0; i < CHAIN; i++)
		gs_ctx_release(n[i]);
}

#define WIDE	1000

TEST(wide_tree_cancel_propagates)
{
	static gs_ctx *kid[WIDE], *grand[WIDE / 10][3];
	static int key;
	gs_ctx *root;
	int bad = 0, first = -1;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &root));
	for (int i = 0; i < WIDE; i++) {
		int r;

		switch (i % 4) {
		case 0:
		case 3:
			r = gs_ctx_with_cancel(root, &kid[i]);
			break;
		case 1:
			r = gs_ctx_with_timeout(root, FAR_NS - (uint64_t)i * 1000,
						&kid[i]);
			break;
		default:
			r = gs_ctx_with_value(root, &key, &kid[i], &kid[i]);
			break;
		}
		ASSERT_EQ(0, r) TH_LOG("kid %d", i);
		if (i % 10 == 0) {
			ASSERT_EQ(0, gs_ctx_with_cancel(kid[i], &grand[i / 10][0]));
			ASSERT_EQ(0, gs_ctx_with_timeout(kid[i], FAR_NS / 2,
							 &grand[i / 10][1]));
			ASSERT_EQ(0, gs_ctx_with_value(grand[i / 10][0], &key,
						       NULL, &grand[i / 10][2]));
		}
		if (i % 37 == 0) {
			EXPECT_EQ(0, done_state(kid[i]));
		}
	}

	/* A middle child (with grandchildren): exactly its subtree. */
	gs_ctx_cancel_cause(kid[500], -EPIPE);
	/* A grandchild elsewhere: only itself. */
	gs_ctx_cancel(grand[60][0]);
	/* Cancel of a value node does nothing (it has no CancelFunc). */
	gs_ctx_cancel(kid[502]);
	EXPECT_EQ(0, gs_ctx_err(root));
	EXPECT_EQ(0, gs_ctx_err(kid[502]));
	for (int i = 0; i < WIDE; i++) {
		int want = i == 500 ? -ECANCELED : 0;

		if (gs_ctx_err(kid[i]) != want ||
		    gs_ctx_cause(kid[i]) != (want ? -EPIPE : 0)) {
			bad++;
			if (first < 0)
				first = i;
		}
		if (i % 10)
			continue;
		for (int g = 0; g < 3; g++) {
			want = i == 500 || (i == 600 && g != 1) ? -ECANCELED : 0;
			if (gs_ctx_err(grand[i / 10][g]) != want) {
				bad++;
				if (first < 0)
					first = 10000 + i * 10 + g;
			}
		}
	}
	EXPECT_EQ(0, bad) TH_LOG("first bad: %d", first);
	EXPECT_EQ(-EPIPE, gs_ctx_cause(grand[50][2]));
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(grand[60][2]));
	EXPECT_EQ(1, done_state(kid[500]));
	EXPECT_EQ(1, done_state(grand[50][1]));
	EXPECT_EQ(0, done_state(kid[501]));
	EXPECT_EQ(0, done_state(grand[60][1]));

	/* The root: everyone, with the root's cause unless cancelled before. */
	gs_ctx_cancel_cause(root, -EIO);
	bad = 0;
	first = -1;
	for (int i = 0; i < WIDE; i++) {
		int cause = i == 500 ? -EPIPE : -EIO;

		if (gs_ctx_err(kid[i]) != -ECANCELED ||
		    gs_ctx_cause(kid[i]) != cause) {
			bad++;
			if (first < 0)
				first = i;
		}
		if (i % 10)
			continue;
		for (int g = 0; g < 3; g++) {
			int gc = i == 600 && g != 1 ? -ECANCELED : cause;

			if (gs_ctx_err(grand[i / 10][g]) != -ECANCELED ||
			    gs_ctx_cause(grand[i / 10][g]) != gc) {
				bad++;
				if (first < 0)
					first = 10000 + i * 10 + g;
			}
		}
	}
	EXPECT_EQ(0, bad) TH_LOG("first bad: %d", first);
	for (int i = 0; i < WIDE; i += 37) {
		EXPECT_EQ(1, done_state(kid[i])) TH_LOG("kid %d", i);
	}
	for (int i = 0; i < WIDE / 10; i += 7) {
		EXPECT_EQ(1, done_state(grand[i][2])) TH_LOG("grand %d", i);
	}

	/* Any order: the root first this time. */
	gs_ctx_release(root);
	for (int i = 0; i < WIDE; i++) {
		if (i % 10 == 0)
			for (int g = 2; g >= 0; g--)
				gs_ctx_release(grand[i / 10][g]);
		gs_ctx_release(kid[i]);
	}
}

TEST(child_of_done_parent_is_born_done)
{
	gs_ctx *p, *t, *c[6];
	static int key;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &p));
	gs_ctx_cancel_cause(p, -EPIPE);
	ASSERT_EQ(0, gs_ctx_with_cancel(p, &c[0]));
	ASSERT_EQ(0, gs_ctx_with_timeout(p, FAR_NS, &c[1]));
	ASSERT_EQ(0, gs_ctx_with_deadline_cause(p, gs_now() - 1, -EIO, &c[2]));
	ASSERT_EQ(0, gs_ctx_with_value(p, &key, NULL, &c[3]));
	ASSERT_EQ(0, gs_ctx_with_cancel(c[3], &c[4]));
	ASSERT_EQ(0, gs_ctx_with_timeout_cause(c[3], FAR_NS, -EIO, &c[5]));
	for (int i = 0; i < 6; i++) {
		/* The parent's error and cause, even past a deadline. */
		EXPECT_EQ(-ECANCELED, gs_ctx_err(c[i])) TH_LOG("child %d", i);
		EXPECT_EQ(-EPIPE, gs_ctx_cause(c[i])) TH_LOG("child %d", i);
		EXPECT_EQ(1, done_state(c[i])) TH_LOG("child %d", i);
	}
	EXPECT_TRUE(gs_ctx_deadline(c[1], NULL));
	for (int i = 5; i >= 0; i--)
		gs_ctx_release(c[i]);
	gs_ctx_release(p);

	/* A parent that timed out: its error and cause. */
	ASSERT_EQ(0, gs_ctx_with_deadline_cause(bg(), gs_now() - 1, -EIO, &t));
	ASSERT_EQ(0, gs_ctx_with_cancel(t, &c[0]));
	ASSERT_EQ(0, gs_ctx_with_value(t, &key, NULL, &c[1]));
	ASSERT_EQ(0, gs_ctx_with_timeout(c[1], FAR_NS, &c[2]));
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(c[i])) TH_LOG("child %d", i);
		EXPECT_EQ(-EIO, gs_ctx_cause(c[i])) TH_LOG("child %d", i);
		EXPECT_EQ(1, done_state(c[i])) TH_LOG("child %d", i);
	}
	for (int i = 2; i >= 0; i--)
		gs_ctx_release(c[i]);
	gs_ctx_release(t);
}

TEST(cancelling_a_child_leaves_its_parent_alone)
{
	gs_ctx *p, *c, *s;

	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), FAR_NS, &p));
	ASSERT_EQ(0, gs_ctx_with_cancel(p, &c));
	ASSERT_EQ(0, gs_ctx_with_cancel(p, &s));
	gs_ctx_cancel(c);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(c));
	EXPECT_EQ(0, gs_ctx_err(p));
	EXPECT_EQ(0, gs_ctx_err(s));
	EXPECT_EQ(0, done_state(p));
	EXPECT_EQ(0, done_state(s));
	gs_ctx_cancel(p);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(s));
	gs_ctx_release(c);
	gs_ctx_release(s);
	gs_ctx_release(p);
}

TEST(without_cancel_keeps_values_and_is_never_done)
{
	gs_ctx *p, *v, *w, *k, *t, *kv;
	static int key, key2, val, val2;
	gs_ctx_after *stop;
	struct af a = { 0 };
	uint64_t dl;

	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), FAR_NS, &p));
	ASSERT_EQ(0, gs_ctx_with_value(p, &key, &val, &v));
	ASSERT_EQ(0, gs_ctx_without_cancel(v, &w));
	ASSERT_EQ(0, gs_ctx_with_cancel(w, &k));
	ASSERT_EQ(0, gs_ctx_with_timeout(w, 10 * NS_PER_SEC, &t));
	ASSERT_EQ(0, gs_ctx_with_value(w, &key2, &val2, &kv));

	EXPECT_EQ(&val, gs_ctx_value(w, &key));
	EXPECT_EQ(&val, gs_ctx_value(kv, &key));
	EXPECT_EQ(&val2, gs_ctx_value(kv, &key2));
	EXPECT_EQ(&val, gs_ctx_value(t, &key));
	EXPECT_EQ(NULL, gs_ctx_done(w));
	EXPECT_EQ(NULL, gs_ctx_done(kv));
	/* No deadline, though the parent has one. */
	EXPECT_TRUE(gs_ctx_deadline(v, NULL));
	EXPECT_FALSE(gs_ctx_deadline(w, NULL));
	EXPECT_FALSE(gs_ctx_deadline(k, NULL));
	ASSERT_TRUE(gs_ctx_deadline(t, &dl));
	EXPECT_GE(gs_now() + 10 * NS_PER_SEC, dl);
	ASSERT_EQ(0, gs_ctx_after_func(w, af_fn, &a, &stop));

	gs_ctx_cancel_cause(p, -EPIPE);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(v));
	EXPECT_EQ(0, gs_ctx_err(w));
	EXPECT_EQ(0, gs_ctx_cause(w));
	EXPECT_EQ(NULL, gs_ctx_done(w));
	EXPECT_EQ(0, gs_ctx_err(k));
	EXPECT_EQ(0, gs_ctx_err(t));
	EXPECT_EQ(0, gs_ctx_err(kv));
	EXPECT_EQ(0, done_state(k));
	EXPECT_EQ(0, done_state(t));
	/* WithoutCancel has no CancelFunc. */
	gs_ctx_cancel(w);
	EXPECT_EQ(0, gs_ctx_err(w));
	EXPECT_EQ(&val, gs_ctx_value(w, &key));
	sleep_ms(20);
	EXPECT_EQ(0, atomic_load(&a.runs));
	EXPECT_TRUE(gs_ctx_after_func_stop(stop));

	/* Its children are cancelled on their own. */
	gs_ctx_cancel(k);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(k));
	EXPECT_EQ(0, gs_ctx_err(t));
	gs_ctx_cancel(t);
	gs_ctx_release(kv);
	gs_ctx_release(t);
	gs_ctx_release(k);
	gs_ctx_release(w);
	gs_ctx_release(v);
	gs_ctx_release(p);
}

/* Derive children of @root as fast as possible while it gets cancelled. */
#define DERIVED	200

struct deriver {
	gs_ctx *root;
	atomic_int *total;
	gs_ctx *kids[DERIVED];
	int n;
	pthread_t thread;
};

static void *deriver_main(void *p)
{
	struct deriver *d = p;
	int after = 0;

	for (int i = 0; d->n < DERIVED; i++) {
		gs_ctx *c;
		int r = i % 4 == 3 ? gs_ctx_with_timeout(d->root, FAR_NS, &c) :
				     gs_ctx_with_cancel(d->root, &c);

		if (r)
			break;
		atomic_fetch_add(d->total, 1);
		if (i % 4 == 1) {
			/* Dropped at once, racing the cancel's list walk. */
			gs_ctx_release(c);
			continue;
		}
		if (i % 8 == 0)
			gs_ctx_done(c);
		d->kids[d->n++] = c;
		if (gs_ctx_err(d->root) && ++after >= 20)
			break;
	}
	return NULL;
}

TEST(derive_racing_cancel)
{
	struct deriver d[4];
	atomic_int total = 0;
	gs_ctx *root;
	uint64_t t0;
	int bad = 0;

	for (int round = 0; round < 3; round++) {
		ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &root));
		atomic_store(&total, 0);
		for (int i = 0; i < 4; i++) {
			memset(&d[i], 0, sizeof(d[i]));
			d[i].root = root;
			d[i].total = &total;
			ASSERT_EQ(0, start_thread(&d[i].thread, deriver_main, &d[i]));
		}
		t0 = mono_ns();
		while (atomic_load(&total) < 150 * (round + 1) / 2 &&
		       ms_since(t0) < WAIT_LIMIT_MS)
			sched_yield();
		gs_ctx_cancel_cause(root, -EPIPE);
		for (int i = 0; i < 4; i++) {
			ASSERT_EQ(0, join_ms(d[i].thread, WAIT_LIMIT_MS));
		}
		for (int i = 0; i < 4; i++) {
			for (int k = 0; k < d[i].n; k++) {
				gs_ctx *c = d[i].kids[k];

				if (gs_ctx_err(c) != -ECANCELED ||
				    gs_ctx_cause(c) != -EPIPE ||
				    (k % 16 == 0 && done_state(c) != 1))
					bad++;
				gs_ctx_release(c);
			}
		}
		EXPECT_EQ(0, bad) TH_LOG("round %d", round);
		gs_ctx_release(root);
	}
}

/* ================================================================== */
/* 4. Deadlines                                                         */

/* Wait (bounded) until @ctx's Done is closed: then gs_now(), else 0. */
static uint64_t wait_done(gs_ctx *ctx)
{
	gs_chan *d = gs_ctx_done(ctx);

	if (!d || gs_chan_recv_until(d, NULL,
				     gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS),
				     0) != 0)
		return 0;
	return gs_now();
}

/* Wait (bounded) until gs_ctx_err(@ctx) is not 0: then gs_now(), else 0. */
static uint64_t wait_err(gs_ctx *ctx)
{
	uint64_t t0 = mono_ns();

	while (!gs_ctx_err(ctx)) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return 0;
		usleep(200);
	}
	return gs_now();
}

TEST(timeout_fires_on_time_not_before)
{
	uint64_t t0 = gs_now(), dl, t, before;
	gs_ctx *ctx;
	int err;

	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), 200 * NS_PER_MS, &ctx));
	ASSERT_TRUE(gs_ctx_deadline(ctx, &dl));
	EXPECT_LE(t0 + 200 * NS_PER_MS, dl);
	EXPECT_GE(gs_now() + 200 * NS_PER_MS, dl);
	EXPECT_EQ(0, done_state(ctx));

	/* Whenever the error is read before the deadline, it is 0. */
	sleep_ms(150);
	err = gs_ctx_err(ctx);
	before = gs_now();
	if (before < dl) {
		EXPECT_EQ(0, err);
	}
	t = wait_done(ctx);
	ASSERT_NE(0, t);
	EXPECT_LE(dl, t);
	EXPECT_GE(dl + LATE_MS * NS_PER_MS, t) TH_LOG("%llu ms late",
		(unsigned long long)((t - dl) / NS_PER_MS));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(ctx));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_cause(ctx));
	EXPECT_EQ(1, done_state(ctx));
	/* A cancel afterwards changes nothing. */
	gs_ctx_cancel_cause(ctx, -EPIPE);
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(ctx));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_cause(ctx));
	gs_ctx_release(ctx);

	/* Nobody asked for Done: the error still comes on time. */
	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), 100 * NS_PER_MS, &ctx));
	ASSERT_TRUE(gs_ctx_deadline(ctx, &dl));
	t = wait_err(ctx);
	ASSERT_NE(0, t);
	EXPECT_LE(dl, t);
	EXPECT_GE(dl + LATE_MS * NS_PER_MS, t);
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(ctx));
	EXPECT_EQ(1, done_state(ctx));
	gs_ctx_release(ctx);
}

TEST(deadline_causes)
{
	gs_ctx *a, *b, *c, *p, *k;
	uint64_t when = gs_now() + 100 * NS_PER_MS, dl;

	ASSERT_EQ(0, gs_ctx_with_timeout_cause(bg(), 100 * NS_PER_MS, -EIO, &a));
	ASSERT_EQ(0, gs_ctx_with_deadline_cause(bg(), when, -EPIPE, &b));
	ASSERT_TRUE(gs_ctx_deadline(b, &dl));
	EXPECT_EQ(when, dl);
	ASSERT_EQ(0, gs_ctx_with_deadline(bg(), when, &c));
	ASSERT_TRUE(gs_ctx_deadline(c, &dl));
	EXPECT_EQ(when, dl);
	/* A child with a later deadline and cause: the parent's count. */
	ASSERT_EQ(0, gs_ctx_with_timeout_cause(bg(), 100 * NS_PER_MS, -ENOSPC, &p));
	ASSERT_EQ(0, gs_ctx_with_timeout_cause(p, 10 * NS_PER_SEC, -EPIPE, &k));

	EXPECT_NE(0, wait_done(a));
	EXPECT_NE(0, wait_done(b));
	EXPECT_NE(0, wait_done(c));
	EXPECT_NE(0, wait_done(k));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(a));
	EXPECT_EQ(-EIO, gs_ctx_cause(a));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(b));
	EXPECT_EQ(-EPIPE, gs_ctx_cause(b));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(c));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_cause(c));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(k));
	EXPECT_EQ(-ENOSPC, gs_ctx_cause(k));
	gs_ctx_release(k);
	gs_ctx_release(p);
	gs_ctx_release(a);
	gs_ctx_release(b);
	gs_ctx_release(c);

	/* Cancelled first: the cancel's cause, not the deadline's. */
	ASSERT_EQ(0, gs_ctx_with_timeout_cause(bg(), 10 * NS_PER_SEC, -EIO, &a));
	gs_ctx_cancel(a);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(a));
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(a));
	gs_ctx_release(a);
}

TEST(child_deadline_never_later_than_parent)
{
	gs_ctx *p, *c[7];
	uint64_t dp, dl, d4;
	static int key;

	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), NS_PER_SEC, &p));
	ASSERT_TRUE(gs_ctx_deadline(p, &dp));
	ASSERT_EQ(0, gs_ctx_with_timeout(p, 10 * NS_PER_SEC, &c[0]));
	ASSERT_EQ(0, gs_ctx_with_deadline(p, dp + 1, &c[1]));
	ASSERT_EQ(0, gs_ctx_with_deadline(p, dp, &c[2]));
	ASSERT_EQ(0, gs_ctx_with_cancel(p, &c[3]));
	ASSERT_EQ(0, gs_ctx_with_timeout(p, 100 * NS_PER_MS, &c[4]));
	ASSERT_EQ(0, gs_ctx_with_value(c[4], &key, NULL, &c[5]));
	ASSERT_EQ(0, gs_ctx_with_deadline(bg(), GS_FOREVER, &c[6]));
	for (int i = 0; i < 4; i++) {
		ASSERT_TRUE(gs_ctx_deadline(c[i], &dl)) TH_LOG("child %d", i);
		EXPECT_EQ(dp, dl) TH_LOG("child %d", i);
	}
	ASSERT_TRUE(gs_ctx_deadline(c[4], &d4));
	EXPECT_GT(dp, d4);
	ASSERT_TRUE(gs_ctx_deadline(c[5], &dl));
	EXPECT_EQ(d4, dl);
	EXPECT_FALSE(gs_ctx_deadline(c[6], NULL));

	/* The earlier child fires on its own; the parent lives on. */
	dl = wait_done(c[5]);
	ASSERT_NE(0, dl);
	EXPECT_LE(d4, dl);
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(c[4]));
	{
		/* (Unless a slow machine is past the parent's deadline too.) */
		int ep = gs_ctx_err(p), e0 = gs_ctx_err(c[0]);

		if (gs_now() < dp) {
			EXPECT_EQ(0, ep);
			EXPECT_EQ(0, e0);
		}
	}
	/*
	 * Then the parent's deadline takes the later children along (one
	 * after the other: wait for each).
	 */
	for (int i = 0; i < 4; i++) {
		dl = wait_done(c[i]);
		ASSERT_NE(0, dl) TH_LOG("child %d", i);
		EXPECT_LE(dp, dl);
		EXPECT_GE(dp + LATE_MS * NS_PER_MS, dl);
		EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(c[i])) TH_LOG("child %d", i);
		EXPECT_EQ(-ETIMEDOUT, gs_ctx_cause(c[i])) TH_LOG("child %d", i);
		EXPECT_EQ(1, done_state(c[i])) TH_LOG("child %d", i);
	}
	EXPECT_EQ(0, gs_ctx_err(c[6]));
	gs_ctx_cancel(c[6]);
	for (int i = 6; i >= 0; i--)
		gs_ctx_release(c[i]);
	gs_ctx_release(p);
}

TEST(cancel_before_deadline_wins_for_good)
{
	gs_ctx *ctx, *kid;
	gs_ctx_after *stop;
	struct af a = { 0 };
	uint64_t dl;

	ASSERT_EQ(0, gs_ctx_with_timeout_cause(bg(), SOON_MS * NS_PER_MS, -EIO, &ctx));
	ASSERT_EQ(0, gs_ctx_with_cancel(ctx, &kid));
	ASSERT_TRUE(gs_ctx_deadline(ctx, &dl));
	ASSERT_EQ(0, gs_ctx_after_func(ctx, af_fn, &a, &stop));
	ASSERT_GT(dl, gs_now());	/* else the machine is far too slow */
	gs_ctx_cancel(ctx);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	EXPECT_EQ(-ECANCELED, gs_ctx_err(kid));
	EXPECT_EQ(1, af_wait(&a, 1));

	/* Past the deadline, and then some: nothing changes. */
	while (gs_now() < dl + 150 * NS_PER_MS)
		sleep_ms(20);
	EXPECT_EQ(-ECANCELED, gs_ctx_err(ctx));
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(ctx));
	EXPECT_EQ(-ECANCELED, gs_ctx_err(kid));
	EXPECT_EQ(-ECANCELED, gs_ctx_cause(kid));
	EXPECT_EQ(1, atomic_load(&a.runs));
	EXPECT_FALSE(gs_ctx_after_func_stop(stop));
	gs_ctx_release(kid);
	gs_ctx_release(ctx);
}

#define MANY	200

TEST(many_deadlines_fire_in_order_each_once)
{
	static struct af a[MANY];
	static gs_ctx *c[MANY];
	static gs_ctx_after *stop[MANY];
	static uint64_t dl[MANY], seen[MANY];
	int bad = 0, first = -1, inversions = 0, left = MANY, ep;
	uint64_t created;

	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, ep);
	for (int i = 0; i < MANY; i++) {
		/* 300 to 698 ms, in a scrambled order of creation. */
		uint64_t ms = 300 + (uint64_t)((i * 73) % MANY) * 2;
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };

		ASSERT_EQ(0, gs_ctx_with_timeout(bg(), ms * NS_PER_MS, &c[i]));
		ASSERT_TRUE(gs_ctx_deadline(c[i], &dl[i]));
		ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD,
				       gs_chan_fd(gs_ctx_done(c[i])), &ev));
		/*
		 * A few AfterFuncs (each costs the reaper a thread creation,
		 * which takes milliseconds under TCG).
		 */
		if (i % 40 == 0) {
			ASSERT_EQ(0, gs_ctx_after_func(c[i], af_fn, &a[i], &stop[i]));
		}
	}
	created = gs_now();
	/* Each Done closes once: seen, then forgotten. */
	while (left > 0) {
		struct epoll_event evs[32];
		int n = epoll_wait(ep, evs, 32, WAIT_LIMIT_MS);
		uint64_t now = gs_now();

		if (n <= 0)
			break;
		for (int k = 0; k < n; k++) {
			uint32_t i = evs[k].data.u32;

			if (seen[i])
				bad++;	/* reported after it was removed */
			seen[i] = now;
			epoll_ctl(ep, EPOLL_CTL_DEL, gs_chan_fd(gs_ctx_done(c[i])),
				  NULL);
			left--;
		}
	}
	EXPECT_EQ(0, left);
	EXPECT_EQ(0, bad);
	close(ep);
	sleep_ms(50);
	for (int i = 0; i < MANY; i++) {
		uint64_t from = dl[i] > created ? dl[i] : created;

		if (seen[i] < dl[i] || seen[i] > from + LATE_MS * NS_PER_MS ||
		    gs_ctx_err(c[i]) != -ETIMEDOUT ||
		    gs_ctx_cause(c[i]) != -ETIMEDOUT ||
		    (i % 40 == 0 && (af_wait(&a[i], 1) != 1 ||
				     atomic_load(&a[i].at) < dl[i]))) {
			bad++;
			if (first < 0)
				first = i;
		}
		for (int j = 0; j < MANY; j++)
			if (dl[i] + ORDER_MS * NS_PER_MS < dl[j] && seen[i] > seen[j])
				inversions++;
	}
	EXPECT_EQ(0, bad) TH_LOG("first bad %d: seen %lld ms after its deadline",
				 first, first < 0 ? 0LL : ((long long)seen[first] -
						    (long long)dl[first]) / 1000000);
	EXPECT_EQ(0, inversions);
	for (int i = 0; i < MANY; i++) {
		if (i % 40 == 0) {
			EXPECT_EQ(1, atomic_load(&a[i].runs));
			EXPECT_FALSE(gs_ctx_after_func_stop(stop[i]));
		}
		gs_ctx_release(c[i]);
	}
}

TEST(past_deadline_is_born_done)
{
	gs_ctx *c[4];
	uint64_t when[4], dl;
	gs_ctx_after *stop;
	struct af a = { 0 };
	int fds;

	ASSERT_EQ(0, gs_init());	/* the library's device fd stays */
	fds = count_fds();
	when[0] = gs_now() - 1;
	ASSERT_EQ(0, gs_ctx_with_deadline(bg(), when[0], &c[0]));
	when[1] = 0;
	ASSERT_EQ(0, gs_ctx_with_deadline(bg(), when[1], &c[1]));
	when[2] = 1;
	ASSERT_EQ(0, gs_ctx_with_deadline_cause(bg(), when[2], -EIO, &c[2]));
	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), 0, &c[3]));
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(c[i])) TH_LOG("ctx %d", i);
		EXPECT_EQ(i == 2 ? -EIO : -ETIMEDOUT, gs_ctx_cause(c[i]));
		EXPECT_EQ(1, done_state(c[i])) TH_LOG("ctx %d", i);
		EXPECT_TRUE(gs_ctx_deadline(c[i], &dl));
		if (i < 3) {
			EXPECT_EQ(when[i], dl);
		}
	}
	/* An AfterFunc runs at once. */
	ASSERT_EQ(0, gs_ctx_after_func(c[0], af_fn, &a, &stop));
	EXPECT_EQ(1, af_wait(&a, 1));
	EXPECT_FALSE(gs_ctx_after_func_stop(stop));
	for (int i = 0; i < 4; i++)
		gs_ctx_release(c[i]);
	EXPECT_EQ(fds, wait_fds(fds));
}

/* ================================================================== */
/* 5. Values                                                            */

TEST(values_nearest_key_wins_keys_are_pointers)
{
	/* Equal contents, distinct addresses: distinct keys. */
	static const char k1[] = "key", k2[] = "key";
	static int ka, va, vb, vc, vd;
	gs_ctx *v1, *c, *v2, *v3, *t, *vn;

	ASSERT_NE((const void *)k1, (const void *)k2);
	ASSERT_EQ(0, gs_ctx_with_value(bg(), k1, &va, &v1));
	ASSERT_EQ(0, gs_ctx_with_cancel(v1, &c));
	ASSERT_EQ(0, gs_ctx_with_value(c, k1, &vb, &v2));
	ASSERT_EQ(0, gs_ctx_with_value(v2, k2, &vc, &v3));
	ASSERT_EQ(0, gs_ctx_with_timeout(v3, FAR_NS, &t));
	ASSERT_EQ(0, gs_ctx_with_value(t, &ka, NULL, &vn));

	EXPECT_EQ(&va, gs_ctx_value(v1, k1));
	EXPECT_EQ(&va, gs_ctx_value(c, k1));
	EXPECT_EQ(&vb, gs_ctx_value(v2, k1));
	EXPECT_EQ(&vb, gs_ctx_value(v3, k1));
	EXPECT_EQ(&vc, gs_ctx_value(v3, k2));
	EXPECT_EQ(NULL, gs_ctx_value(v2, k2));
	EXPECT_EQ(NULL, gs_ctx_value(c, k2));
	/* Through cancel and deadline nodes. */
	EXPECT_EQ(&vb, gs_ctx_value(vn, k1));
	EXPECT_EQ(&vc, gs_ctx_value(vn, k2));
	EXPECT_EQ(NULL, gs_ctx_value(vn, &ka));		/* a NULL value */
	EXPECT_EQ(NULL, gs_ctx_value(vn, &vd));		/* never set */
	EXPECT_EQ(NULL, gs_ctx_value(bg(), k1));
	/* A string with the same contents at another address: not the key. */
	{
		char copy[4];

		memcpy(copy, k1, sizeof(copy));
		EXPECT_EQ(NULL, gs_ctx_value(vn, copy));
	}
	/* Values survive a cancel. */
	gs_ctx_cancel(c);
	EXPECT_EQ(&vb, gs_ctx_value(vn, k1));
	EXPECT_EQ(-ECANCELED, gs_ctx_err(vn));
	/* A NULL key is refused, wherever. */
	EXPECT_EQ(-EINVAL, gs_ctx_with_value(vn, NULL, &vd, &v1));
	EXPECT_EQ(&va, gs_ctx_value(v1, k1));	/* v1 untouched */

	gs_ctx_release(vn);
	gs_ctx_release(t);
	gs_ctx_release(v3);
	gs_ctx_release(v2);
	gs_ctx_release(c);
	gs_ctx_release(v1);
}

/* ================================================================== */
/* 6. AfterFunc                                                         */

TEST(after_func_runs_once_on_its_own_thread_after_cancel)
{
	static struct af a, b, v;
	gs_ctx_after *sa, *sb, *sv;
	gs_ctx *ctx, *val;
	uint64_t tc;
	static int key;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	ASSERT_EQ(0, gs_ctx_with_value(ctx, &key, NULL, &val));
	ASSERT_EQ(0, gs_ctx_after_func(ctx, af_fn, &a, &sa));
	ASSERT_EQ(0, gs_ctx_after_func(ctx, af_fn, &b, &sb));
	ASSERT_EQ(0, gs_ctx_after_func(val, af_fn, &v, &sv));
	sleep_ms(50);
	EXPECT_EQ(0, atomic_load(&a.runs));
	EXPECT_EQ(0, atomic_load(&b.runs));
	EXPECT_EQ(0, atomic_load(&v.runs));

	tc = gs_now();
	gs_ctx_cancel(ctx);
	EXPECT_EQ(1, af_wait(&a, 1));
	EXPECT_EQ(1, af_wait(&b, 1));
	EXPECT_EQ(1, af_wait(&v, 1));
	EXPECT_LE(tc, atomic_load(&a.at));
	EXPECT_NE(tid(), atomic_load(&a.tid));
	EXPECT_NE(tid(), atomic_load(&b.tid));
	EXPECT_NE(atomic_load(&a.tid), atomic_load(&b.tid));
	/* Once: not again on a second cancel. */
	gs_ctx_cancel(ctx);
	sleep_ms(50);
	EXPECT_EQ(1, atomic_load(&a.runs));
	EXPECT_EQ(1, atomic_load(&b.runs));
	EXPECT_EQ(1, atomic_load(&v.runs));
	/* Started: stop says so. */
	EXPECT_FALSE(gs_ctx_after_func_stop(sa));
	EXPECT_FALSE(gs_ctx_after_func_stop(sb));
	EXPECT_FALSE(gs_ctx_after_func_stop(sv));
	gs_ctx_release(val);
	gs_ctx_release(ctx);
}

TEST(after_func_on_done_ctx_runs_at_once)
{
	static struct af a, b;
	gs_ctx_after *sa, *sb;
	gs_ctx *ctx, *t;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	gs_ctx_cancel(ctx);
	ASSERT_EQ(0, gs_ctx_after_func(ctx, af_fn, &a, &sa));
	EXPECT_EQ(1, af_wait(&a, 1));
	EXPECT_NE(tid(), atomic_load(&a.tid));
	EXPECT_FALSE(gs_ctx_after_func_stop(sa));

	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), 30 * NS_PER_MS, &t));
	EXPECT_NE(0, wait_done(t));
	ASSERT_EQ(0, gs_ctx_after_func(t, af_fn, &b, &sb));
	EXPECT_EQ(1, af_wait(&b, 1));
	sleep_ms(20);
	EXPECT_EQ(1, atomic_load(&a.runs));
	EXPECT_EQ(1, atomic_load(&b.runs));
	EXPECT_FALSE(gs_ctx_after_func_stop(sb));
	gs_ctx_release(t);
	gs_ctx_release(ctx);
}

TEST(after_func_stopped_before_cancel_never_runs)
{
	static struct af a, b;
	gs_ctx_after *sa, *sb;
	gs_ctx *ctx, *t;
	uint64_t dl;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	ASSERT_EQ(0, gs_ctx_after_func(ctx, af_fn, &a, &sa));
	EXPECT_TRUE(gs_ctx_after_func_stop(sa));
	gs_ctx_cancel(ctx);
	/* A deadline too (stopped before it, however slow the machine). */
	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), SOON_MS * NS_PER_MS, &t));
	ASSERT_TRUE(gs_ctx_deadline(t, &dl));
	ASSERT_EQ(0, gs_ctx_after_func(t, af_fn, &b, &sb));
	ASSERT_GT(dl, gs_now());
	EXPECT_TRUE(gs_ctx_after_func_stop(sb));
	EXPECT_NE(0, wait_done(t));
	sleep_ms(50);
	EXPECT_EQ(0, atomic_load(&a.runs));
	EXPECT_EQ(0, atomic_load(&b.runs));
	gs_ctx_release(t);
	gs_ctx_release(ctx);
}

/*
 * stop() racing the cancel: either it stopped fn, or fn runs once.
 * (Thread creation takes milliseconds under QEMU TCG: few rounds.)
 */
#define RACES	100

struct stopper {
	gs_ctx_after *stop;
	atomic_bool *go;
	bool stopped;
	pthread_t thread;
};

static void *stopper_main(void *p)
{
	struct stopper *s = p;

	while (!atomic_load(s->go))
		;
	s->stopped = gs_ctx_after_func_stop(s->stop);
	return NULL;
}

TEST(after_func_stop_racing_cancel_is_exactly_once)
{
	static struct af a[RACES];
	int stopped = 0, runs = 0;
	uint64_t t0;

	for (int i = 0; i < RACES; i++) {
		atomic_bool go = false;
		struct stopper s = { .go = &go };
		gs_ctx *ctx;

		ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
		ASSERT_EQ(0, gs_ctx_after_func(ctx, af_fn, &a[i], &s.stop));
		ASSERT_EQ(0, start_thread(&s.thread, stopper_main, &s));
		atomic_store(&go, true);
		if (i % 2)
			sched_yield();
		gs_ctx_cancel(ctx);
		ASSERT_EQ(0, join_ms(s.thread, WAIT_LIMIT_MS));
		stopped += s.stopped;
		gs_ctx_release(ctx);
	}
	/* Every fn that was not stopped runs, once. */
	t0 = mono_ns();
	do {
		runs = 0;
		for (int i = 0; i < RACES; i++)
			runs += atomic_load(&a[i].runs);
		if (runs + stopped >= RACES)
			break;
		usleep(1000);
	} while (ms_since(t0) < WAIT_LIMIT_MS);
	sleep_ms(50);
	runs = 0;
	for (int i = 0; i < RACES; i++) {
		EXPECT_GE(1, atomic_load(&a[i].runs)) TH_LOG("fn %d", i);
		runs += atomic_load(&a[i].runs);
	}
	EXPECT_EQ(RACES, runs + stopped) TH_LOG("%d stopped, %d ran", stopped, runs);
}

/* ================================================================== */
/* 7. The _ctx forms of the blocking calls                              */

enum op { OP_RECV, OP_SEND, OP_SELECT, OP_SEM, OP_MUTEX, OP_WAITGROUP,
	  OP_BARRIER };

/*
 * The objects of one call, in a state where the call blocks: an empty
 * channel to receive from (capacity 1), an unbuffered one to send to with
 * nobody receiving, two empty ones to select on, a semaphore of 3 with
 * every permit taken (the call wants 2), a locked mutex, a WaitGroup at
 * 1, a barrier of 2 parties.
 */
struct objs {
	gs_chan *ch, *ch2;
	gs_sem *sem;
	gs_mutex *mu;
	gs_waitgroup *wg;
	gs_barrier *bar;
};

static int lot_parked(int fd)
{
	struct gosync_lot_status st;
	int r = lot_status(fd, &st);

	return r < 0 ? r : (int)st.parked;
}

static int chan_waiters(gs_chan *ch, bool send)
{
	struct gosync_chan_status st;
	int r = gs_chan_status(ch, &st);

	return r < 0 ? r : (int)(send ? st.send_waiters : st.recv_waiters);
}

/* The call, as the thread that blocks makes it. */
static int op_call(struct objs *o, enum op op, gs_ctx *ctx, int *value,
		   bool *ok)
{
	static const int seven = 7;
	int r, v0 = -1;

	switch (op) {
	case OP_RECV:
		return gs_chan_recv_ctx(o->ch, value, ctx);
	case OP_SEND:
		return gs_chan_send_ctx(o->ch, &seven, ctx);
	case OP_SELECT: {
		gs_case cs[2] = { gs_case_recv(o->ch, &v0),
				  gs_case_recv(o->ch2, value) };

		r = gs_select_ctx(cs, 2, ctx);
		if (r >= 0)
			*ok = cs[r].ok;
		if (r == 0)
			*value = v0;
		else if (v0 != -1)
			return -EPROTO;	/* an uncommitted case was written */
		return r;
	}
	case OP_SEM:
		return gs_sem_acquire_ctx(o->sem, 2, ctx);
	case OP_MUTEX:
		return gs_mutex_lock_ctx(o->mu, ctx);
	case OP_WAITGROUP:
		return gs_waitgroup_wait_ctx(o->wg, ctx);
	case OP_BARRIER:
		return gs_barrier_await_ctx(o->bar, ctx);
	}
	return -ENOSYS;
}

/* What a served call returns. */
static int op_success(enum op op)
{
	return op == OP_RECV || op == OP_SELECT ? 1 : 0;
}

/* Kernel waiters of the objects, and how many show one blocked call. */
static int op_waiters(struct objs *o, enum op op)
{
	struct gosync_sem_status st;

	switch (op) {
	case OP_RECV:
		return chan_waiters(o->ch, false);
	case OP_SEND:
		return chan_waiters(o->ch, true);
	case OP_SELECT:
		return chan_waiters(o->ch, false) + chan_waiters(o->ch2, false);
	case OP_SEM:
		return gs_sem_status(o->sem, &st) ? -1 : (int)st.waiters;
	case OP_MUTEX:
		return lot_parked(gs_mutex_fd(o->mu));
	case OP_WAITGROUP:
		return lot_parked(gs_waitgroup_fd(o->wg));
	case OP_BARRIER:
		return lot_parked(gs_barrier_fd(o->bar));
	}
	return -1;
}

static int op_blocked_count(enum op op)
{
	return op == OP_SELECT ? 2 : 1;
}

/* Wait (bounded) until the objects show @want waiters. */
static int op_wait_waiters(struct objs *o, enum op op, int want)
{
	uint64_t t0 = mono_ns();

	while (op_waiters(o, op) != want) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

/* Serve the blocked call: 0, or what went wrong. */
static int op_serve(struct objs *o, enum op op)
{
	int v = 0, r;

	switch (op) {
	case OP_RECV:
		return gs_chan_try_send(o->ch, &(int){ 42 });
	case OP_SEND:
		r = gs_chan_recv_until(o->ch, &v,
				       gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0);
		return r == 1 && v == 7 ? 0 : r < 0 ? r : -EPROTO;
	case OP_SELECT:
		return gs_chan_try_send(o->ch2, &(int){ 43 });
	case OP_SEM:
		return gs_sem_release(o->sem, 2);
	case OP_MUTEX:
		return gs_mutex_unlock(o->mu);
	case OP_WAITGROUP:
		return gs_waitgroup_done(o->wg);
	case OP_BARRIER:
		return gs_barrier_await_until(o->bar,
			gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0);
	}
	return -ENOSYS;
}

/*
 * After a served call: back to the blocking state. A served mutex was
 * the call's thread's, which has ended holding it: robust, it is ours
 * now with -EOWNERDEAD (see gs_mutex_consistent()).
 */
static int op_rearm(struct objs *o, enum op op)
{
	int r;

	if (op == OP_MUTEX) {
		r = gs_mutex_trylock(o->mu);
		return r == -EOWNERDEAD ? gs_mutex_consistent(o->mu) :
		       r ? r : -EPROTO;
	}
	return op == OP_WAITGROUP ? gs_waitgroup_add(o->wg, 1) : 0;
}

/* A call made on its own thread. */
struct call {
	struct objs *o;
	enum op op;
	gs_ctx *ctx;
	pthread_t thread;
	atomic_bool returned;
	int ret, value;
	bool ok;
	uint64_t start, end;
};

static void *call_main(void *p)
{
	struct call *c = p;

	c->start = gs_now();
	c->ret = op_call(c->o, c->op, c->ctx, &c->value, &c->ok);
	c->end = gs_now();
	atomic_store(&c->returned, true);
	return NULL;
}

static int call_start(struct call *c, struct objs *o, enum op op, gs_ctx *ctx)
{
	memset(c, 0, sizeof(*c));
	c->o = o;
	c->op = op;
	c->ctx = ctx;
	c->ret = -1000;
	c->value = -1;
	atomic_init(&c->returned, false);
	return start_thread(&c->thread, call_main, c);
}

/* Wait (bounded) for the call to return and join it: true if it did. */
static bool call_join(struct call *c, unsigned int ms)
{
	uint64_t t0 = mono_ns();

	while (!atomic_load(&c->returned)) {
		if (ms_since(t0) > ms)
			return false;
		usleep(200);
	}
	pthread_join(c->thread, NULL);
	return true;
}

/*
 * After a call that failed: nothing waits, nothing was taken, and the
 * objects work (a receive consumed nothing, a send delivered nothing, the
 * permits are all there, the mutex locks and unlocks without a phantom
 * waiter, the WaitGroup still counts 1, the barrier is broken).
 * The objects are left in their blocking state.
 */
static void check_untouched(struct __test_metadata *_metadata,
			    struct objs *o, enum op op)
{
	struct gosync_chan_status cs;
	struct gosync_sem_status ss;
	struct gosync_lot_status ls0, ls1;
	int v = 0;

	EXPECT_EQ(0, op_wait_waiters(o, op, 0));
	switch (op) {
	case OP_RECV:
		ASSERT_EQ(0, gs_chan_status(o->ch, &cs));
		EXPECT_EQ(0, cs.len);
		/* A value sent now stays for the next receiver. */
		EXPECT_EQ(0, gs_chan_try_send(o->ch, &(int){ 5 }));
		EXPECT_EQ(1, gs_chan_len(o->ch));
		EXPECT_EQ(1, gs_chan_try_recv(o->ch, &v));
		EXPECT_EQ(5, v);
		break;
	case OP_SEND:
		ASSERT_EQ(0, gs_chan_status(o->ch, &cs));
		EXPECT_EQ(0, cs.sends);
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(o->ch, &v));
		break;
	case OP_SELECT:
		EXPECT_EQ(0, gs_chan_len(o->ch));
		EXPECT_EQ(0, gs_chan_len(o->ch2));
		EXPECT_EQ(0, gs_chan_try_send(o->ch, &(int){ 5 }));
		EXPECT_EQ(0, gs_chan_try_send(o->ch2, &(int){ 6 }));
		EXPECT_EQ(1, gs_chan_len(o->ch));
		EXPECT_EQ(1, gs_chan_len(o->ch2));
		EXPECT_EQ(1, gs_chan_try_recv(o->ch, &v));
		EXPECT_EQ(1, gs_chan_try_recv(o->ch2, &v));
		break;
	case OP_SEM:
		ASSERT_EQ(0, gs_sem_status(o->sem, &ss));
		EXPECT_EQ(0, ss.state & GOSYNC_SEM_COUNT_MASK);
		EXPECT_EQ(0, ss.waiters);
		EXPECT_EQ(0, gs_sem_release(o->sem, 3));
		EXPECT_EQ(-EOVERFLOW, gs_sem_release(o->sem, 1));
		EXPECT_EQ(0, gs_sem_try_acquire(o->sem, 3));
		break;
	case OP_MUTEX:
		ASSERT_EQ(0, lot_status(gs_mutex_fd(o->mu), &ls0));
		EXPECT_EQ(-EBUSY, gs_mutex_trylock(o->mu));
		EXPECT_EQ(0, gs_mutex_unlock(o->mu));
		EXPECT_EQ(-EPERM, gs_mutex_unlock(o->mu));
		EXPECT_EQ(0, gs_mutex_lock_ctx(o->mu, bg()));
		EXPECT_EQ(0, gs_mutex_unlock(o->mu));
		EXPECT_EQ(0, gs_mutex_trylock(o->mu));
		/* Nobody left counted as waiting: no unpark was needed. */
		ASSERT_EQ(0, lot_status(gs_mutex_fd(o->mu), &ls1));
		EXPECT_EQ(ls0.unparks, ls1.unparks);
		break;
	case OP_WAITGROUP:
		EXPECT_EQ(1, gs_waitgroup_count(o->wg));
		EXPECT_EQ(0, gs_waitgroup_done(o->wg));
		EXPECT_EQ(0, gs_waitgroup_wait_until(o->wg, gs_deadline_in(LATE_MS * NS_PER_MS), 0));
		EXPECT_EQ(0, gs_waitgroup_add(o->wg, 1));
		break;
	case OP_BARRIER:
		/* Broken, as by a timeout: the others get -EPIPE. */
		EXPECT_TRUE(gs_barrier_broken(o->bar));
		EXPECT_EQ(-EPIPE, gs_barrier_await_until(o->bar,
					gs_deadline_in(LATE_MS * NS_PER_MS), 0));
		EXPECT_EQ(0, gs_barrier_reset(o->bar));
		EXPECT_FALSE(gs_barrier_broken(o->bar));
		EXPECT_EQ(0, gs_barrier_waiting(o->bar));
		break;
	}
}

FIXTURE(op) {
	struct objs o;
	bool stuck;	/* a call never returned: leave everything alone */
};

FIXTURE_VARIANT(op) {
	enum op op;
};

FIXTURE_VARIANT_ADD(op, chan_recv) { .op = OP_RECV };
FIXTURE_VARIANT_ADD(op, chan_send) { .op = OP_SEND };
FIXTURE_VARIANT_ADD(op, select) { .op = OP_SELECT };
FIXTURE_VARIANT_ADD(op, sem_acquire) { .op = OP_SEM };
FIXTURE_VARIANT_ADD(op, mutex_lock) { .op = OP_MUTEX };
FIXTURE_VARIANT_ADD(op, waitgroup_wait) { .op = OP_WAITGROUP };
FIXTURE_VARIANT_ADD(op, barrier_await) { .op = OP_BARRIER };

FIXTURE_SETUP(op)
{
	struct objs *o = &self->o;

	memset(self, 0, sizeof(*self));
	switch (variant->op) {
	case OP_RECV:
		ASSERT_EQ(0, gs_chan_make(&o->ch, sizeof(int), 1));
		break;
	case OP_SEND:
		ASSERT_EQ(0, gs_chan_make(&o->ch, sizeof(int), 0));
		break;
	case OP_SELECT:
		ASSERT_EQ(0, gs_chan_make(&o->ch, sizeof(int), 1));
		ASSERT_EQ(0, gs_chan_make(&o->ch2, sizeof(int), 1));
		break;
	case OP_SEM:
		ASSERT_EQ(0, gs_sem_create(&o->sem, 3));
		ASSERT_EQ(0, gs_sem_acquire(o->sem, 3));
		break;
	case OP_MUTEX:
		ASSERT_EQ(0, gs_mutex_create(&o->mu));
		ASSERT_EQ(0, gs_mutex_lock(o->mu));
		break;
	case OP_WAITGROUP:
		ASSERT_EQ(0, gs_waitgroup_create(&o->wg));
		ASSERT_EQ(0, gs_waitgroup_add(o->wg, 1));
		break;
	case OP_BARRIER:
		ASSERT_EQ(0, gs_barrier_create(&o->bar, 2, NULL, NULL));
		break;
	}
}

FIXTURE_TEARDOWN(op)
{
	if (self->stuck)
		return;
	gs_chan_destroy(self->o.ch);
	gs_chan_destroy(self->o.ch2);
	gs_sem_destroy(self->o.sem);
	gs_mutex_destroy(self->o.mu);
	gs_waitgroup_destroy(self->o.wg);
	gs_barrier_destroy(self->o.bar);
}

TEST_F(op, cancelled_while_blocked)
{
	static int key;

	for (int round = 0; round < 2; round++) {
		gs_ctx *root, *ctx;
		struct call c;
		uint64_t tc;

		/* A WithCancel, or a far deadline that a cancel beats. */
		if (round == 0) {
			ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &root));
		} else {
			ASSERT_EQ(0, gs_ctx_with_timeout(bg(), FAR_NS, &root));
		}
		/* Called with a descendant: the root's cancel reaches it. */
		ASSERT_EQ(0, gs_ctx_with_value(root, &key, NULL, &ctx));
		ASSERT_EQ(0, call_start(&c, &self->o, variant->op, ctx));
		ASSERT_EQ(0, op_wait_waiters(&self->o, variant->op,
					     op_blocked_count(variant->op)));
		sleep_ms(20);
		EXPECT_FALSE(atomic_load(&c.returned));
		tc = gs_now();
		gs_ctx_cancel_cause(root, -EPIPE);
		self->stuck = !call_join(&c, WAIT_LIMIT_MS);
		ASSERT_FALSE(self->stuck);
		EXPECT_EQ(-ECANCELED, c.ret);
		EXPECT_LE(tc, c.end);
		EXPECT_EQ(-EPIPE, gs_ctx_cause(ctx));
		check_untouched(_metadata, &self->o, variant->op);
		gs_ctx_release(ctx);
		gs_ctx_release(root);
	}
}

TEST_F(op, deadline_while_blocked)
{
	gs_ctx *t, *ctx;
	struct call c;
	uint64_t dl;

	ASSERT_EQ(0, gs_ctx_with_timeout_cause(bg(), 200 * NS_PER_MS, -EIO, &t));
	/* Called with a child: the deadline is inherited. */
	ASSERT_EQ(0, gs_ctx_with_cancel(t, &ctx));
	ASSERT_TRUE(gs_ctx_deadline(ctx, &dl));
	ASSERT_EQ(0, call_start(&c, &self->o, variant->op, ctx));
	self->stuck = !call_join(&c, WAIT_LIMIT_MS);
	ASSERT_FALSE(self->stuck);
	EXPECT_EQ(-ETIMEDOUT, c.ret);
	EXPECT_LE(dl, c.end);
	EXPECT_GE(dl + CALL_LATE_MS * NS_PER_MS, c.end);
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(ctx));
	EXPECT_EQ(-EIO, gs_ctx_cause(ctx));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(t));
	check_untouched(_metadata, &self->o, variant->op);
	gs_ctx_release(ctx);
	gs_ctx_release(t);
}

TEST_F(op, already_done_returns_at_once)
{
	gs_ctx *ctx[4];
	static int key;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx[0]));
	gs_ctx_cancel_cause(ctx[0], -EPIPE);
	ASSERT_EQ(0, gs_ctx_with_value(ctx[0], &key, NULL, &ctx[1]));
	ASSERT_EQ(0, gs_ctx_with_deadline(bg(), gs_now() - 1, &ctx[2]));
	/* Timed out by the reaper. */
	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), NS_PER_MS, &ctx[3]));
	ASSERT_NE(0, wait_err(ctx[3]));
	for (int i = 0; i < 4; i++) {
		struct call c;

		ASSERT_EQ(0, call_start(&c, &self->o, variant->op, ctx[i]));
		self->stuck = !call_join(&c, WAIT_LIMIT_MS);
		ASSERT_FALSE(self->stuck) TH_LOG("ctx %d", i);
		EXPECT_EQ(i < 2 ? -ECANCELED : -ETIMEDOUT, c.ret) TH_LOG("ctx %d", i);
		EXPECT_GT(c.start + LATE_MS * NS_PER_MS, c.end) TH_LOG("ctx %d", i);
		EXPECT_EQ(-1, c.value);
	}
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(ctx[3]));
	/* The barrier was not even entered: not broken. */
	if (variant->op == OP_BARRIER) {
		EXPECT_FALSE(gs_barrier_broken(self->o.bar));
		EXPECT_EQ(0, gs_barrier_waiting(self->o.bar));
		EXPECT_EQ(0, gs_barrier_reset(self->o.bar));
	}
	EXPECT_EQ(0, op_waiters(&self->o, variant->op));
	if (variant->op != OP_BARRIER) {
		check_untouched(_metadata, &self->o, variant->op);
	}
	for (int i = 3; i >= 0; i--)
		gs_ctx_release(ctx[i]);
}

TEST_F(op, completes_when_served)
{
	gs_ctx *ctx[3], *p;

	/* A live deadline, the background (no Done), a WithoutCancel of a
	 * cancelled context (never done).
	 */
	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), FAR_NS, &ctx[0]));
	ctx[1] = bg();
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &p));
	gs_ctx_cancel(p);
	ASSERT_EQ(0, gs_ctx_without_cancel(p, &ctx[2]));
	for (int i = 0; i < 3; i++) {
		struct call c;

		ASSERT_EQ(0, call_start(&c, &self->o, variant->op, ctx[i]));
		ASSERT_EQ(0, op_wait_waiters(&self->o, variant->op,
					     op_blocked_count(variant->op)));
		sleep_ms(10);
		EXPECT_FALSE(atomic_load(&c.returned));
		EXPECT_EQ(0, op_serve(&self->o, variant->op)) TH_LOG("ctx %d", i);
		self->stuck = !call_join(&c, WAIT_LIMIT_MS);
		ASSERT_FALSE(self->stuck) TH_LOG("ctx %d", i);
		EXPECT_EQ(op_success(variant->op), c.ret) TH_LOG("ctx %d", i);
		if (variant->op == OP_RECV) {
			EXPECT_EQ(42, c.value);
		}
		if (variant->op == OP_SELECT) {
			EXPECT_EQ(43, c.value);
			EXPECT_TRUE(c.ok);
		}
		EXPECT_EQ(0, gs_ctx_err(ctx[i]));
		EXPECT_EQ(0, op_rearm(&self->o, variant->op));
	}
	/* The served mutex and permits are the caller's: all accounted. */
	if (variant->op == OP_SEM) {
		struct gosync_sem_status st;

		ASSERT_EQ(0, gs_sem_status(self->o.sem, &st));
		EXPECT_EQ(0, st.state & GOSYNC_SEM_COUNT_MASK);
	}
	if (variant->op == OP_MUTEX) {
		EXPECT_EQ(-EBUSY, gs_mutex_trylock(self->o.mu));
	}
	gs_ctx_release(ctx[2]);
	gs_ctx_release(p);
	gs_ctx_cancel(ctx[0]);
	gs_ctx_release(ctx[0]);
}

/* Cancel a context as soon as *@go says so. */
struct racer {
	gs_ctx *ctx;
	atomic_bool *go;
	pthread_t thread;
};

static void *racer_main(void *p)
{
	struct racer *r = p;

	while (!atomic_load(r->go))
		;
	gs_ctx_cancel(r->ctx);
	return NULL;
}

/*
 * Serve and cancel at the same moment, many times: each call either
 * succeeded (and took what it was served) or failed with -ECANCELED (and
 * took nothing).
 */
TEST_F(op, served_racing_cancel_is_all_or_nothing)
{
	enum op op = variant->op;
	struct objs *o = &self->o;
	int wins = 0, losses = 0;

	for (int i = 0; i < 30; i++) {
		atomic_bool go = false;
		struct racer r = { .go = &go };
		struct gosync_sem_status st;
		struct call c;
		int served, s = 0, v;

		ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &r.ctx));
		ASSERT_EQ(0, call_start(&c, o, op, r.ctx));
		ASSERT_EQ(0, op_wait_waiters(o, op, op_blocked_count(op)));
		ASSERT_EQ(0, start_thread(&r.thread, racer_main, &r));
		atomic_store(&go, true);
		if (op == OP_SEND) {
			/* Take the value if the send is still there. */
			v = 0;
			served = gs_chan_try_recv(o->ch, &v);
			EXPECT_TRUE(served == -EAGAIN || (served == 1 && v == 7));
			served = served == 1;
		} else {
			/* A barrier may be broken by the cancel first. */
			s = op_serve(o, op);
			EXPECT_TRUE(s == 0 || (op == OP_BARRIER && s == -EPIPE))
				TH_LOG("serve: %d", s);
			served = s == 0;
		}
		ASSERT_EQ(0, join_ms(r.thread, WAIT_LIMIT_MS));
		self->stuck = !call_join(&c, WAIT_LIMIT_MS);
		ASSERT_FALSE(self->stuck);
		EXPECT_EQ(-ECANCELED, gs_ctx_err(r.ctx));
		if (c.ret == op_success(op)) {
			wins++;
		} else {
			EXPECT_EQ(-ECANCELED, c.ret) TH_LOG("round %d", i);
			losses++;
		}
		EXPECT_EQ(0, op_wait_waiters(o, op, 0));
		switch (op) {
		case OP_RECV:
			/* Received: gone; cancelled: still buffered. */
			EXPECT_EQ(c.ret == 1 ? 0 : 1, gs_chan_len(o->ch));
			if (c.ret == 1) {
				EXPECT_EQ(42, c.value);
			} else {
				EXPECT_EQ(1, gs_chan_try_recv(o->ch, &v));
			}
			break;
		case OP_SEND:
			EXPECT_EQ(served, c.ret == 0) TH_LOG("round %d", i);
			break;
		case OP_SELECT:
			EXPECT_EQ(c.ret == 1 ? 0 : 1, gs_chan_len(o->ch2));
			EXPECT_EQ(0, gs_chan_len(o->ch));
			if (c.ret != 1) {
				EXPECT_EQ(1, gs_chan_try_recv(o->ch2, &v));
			}
			break;
		case OP_SEM:
			ASSERT_EQ(0, gs_sem_status(o->sem, &st));
			EXPECT_EQ(c.ret == 0 ? 0 : 2,
				  st.state & GOSYNC_SEM_COUNT_MASK);
			if (c.ret) {
				EXPECT_EQ(0, gs_sem_try_acquire(o->sem, 2));
			}
			break;
		case OP_MUTEX:
			/*
			 * Locked by the call, whose thread ended holding it
			 * (robust: ours now with -EOWNERDEAD), or free.
			 */
			if (c.ret == 0) {
				EXPECT_EQ(-EOWNERDEAD, gs_mutex_trylock(o->mu));
				EXPECT_EQ(0, gs_mutex_consistent(o->mu));
			} else {
				EXPECT_EQ(0, gs_mutex_trylock(o->mu));
			}
			break;
		case OP_WAITGROUP:
			EXPECT_EQ(0, gs_waitgroup_count(o->wg));
			EXPECT_EQ(0, gs_waitgroup_add(o->wg, 1));
			break;
		case OP_BARRIER:
			/* The round passed for both, or broke for both. */
			EXPECT_EQ(served, c.ret == 0) TH_LOG("round %d", i);
			EXPECT_EQ(!served, gs_barrier_broken(o->bar));
			if (!served) {
				EXPECT_EQ(0, gs_barrier_reset(o->bar));
			}
			break;
		}
		gs_ctx_release(r.ctx);
	}
	TH_LOG("%d served, %d cancelled", wins, losses);
}

TEST(select_ctx_takes_at_most_127_cases)
{
	static gs_case cs[GS_SELECT_MAX];
	gs_chan *ch;
	gs_ctx *ctx;
	int v = 0;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(int), 1));
	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), SOON_MS * NS_PER_MS, &ctx));
	for (int i = 0; i < GS_SELECT_MAX; i++)
		cs[i] = gs_case_recv(NULL, NULL);
	EXPECT_EQ(-EINVAL, gs_select_ctx(cs, GS_SELECT_MAX, ctx));
	EXPECT_EQ(-EINVAL, gs_select_ctx(cs, GS_SELECT_MAX + 1, ctx));
	/* 127 cases and Done: the last case can commit. */
	cs[GS_SELECT_MAX - 2] = gs_case_recv(ch, &v);
	EXPECT_EQ(0, gs_chan_try_send(ch, &(int){ 9 }));
	EXPECT_EQ(GS_SELECT_MAX - 2, gs_select_ctx(cs, GS_SELECT_MAX - 1, ctx));
	EXPECT_TRUE(cs[GS_SELECT_MAX - 2].ok);
	EXPECT_EQ(9, v);
	/* Nothing ready: the deadline. */
	EXPECT_EQ(-ETIMEDOUT, gs_select_ctx(cs, GS_SELECT_MAX - 1, ctx));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(ctx));
	/* No cases at all: still the context's error. */
	EXPECT_EQ(-ETIMEDOUT, gs_select_ctx(cs, 0, ctx));
	gs_ctx_release(ctx);
	/* A closed channel's receive is ready, ok false, with a live context. */
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	EXPECT_EQ(0, gs_chan_close(ch));
	EXPECT_EQ(0, gs_chan_recv_ctx(ch, &v, ctx));
	EXPECT_EQ(-EPIPE, gs_chan_send_ctx(ch, &v, ctx));
	gs_ctx_cancel(ctx);
	gs_ctx_release(ctx);
	gs_chan_destroy(ch);
}

/* ================================================================== */
/* 8. The raw ioctls with GOSYNC_WAIT_CANCEL_FD                         */

/*
 * The waited-on object is a semaphore of one permit, taken (acquire 1
 * waits), or a plain parking lot (park on word 0 while it is 0 waits).
 */
static int raw_wait(int fd, bool lot, uint64_t deadline, uint32_t flags,
		    int32_t cancel_fd)
{
	if (lot) {
		struct gosync_lot_park arg = {
			.index = 0, .flags = flags, .mask = ~0ULL,
			.expected = 0, .deadline = deadline,
			.cancel_fd = cancel_fd,
		};

		return xioctl(fd, GOSYNC_IOC_LOT_PARK, &arg);
	} else {
		struct gosync_sem_acquire arg = {
			.count = 1, .deadline = deadline, .flags = flags,
			.cancel_fd = cancel_fd,
		};

		return xioctl(fd, GOSYNC_IOC_SEM_ACQUIRE, &arg);
	}
}

/* Release the permit, or unpark one: 0 (sem) or how many were woken. */
static int raw_serve(int fd, bool lot)
{
	if (lot) {
		struct gosync_lot_unpark arg = { .index = 0, .count = 1 };

		return xioctl(fd, GOSYNC_IOC_LOT_UNPARK, &arg);
	} else {
		__u64 n = 1;

		return xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n);
	}
}

static int raw_waiters(int fd, bool lot)
{
	struct gosync_sem_status st;

	if (lot)
		return lot_parked(fd);
	return xioctl(fd, GOSYNC_IOC_SEM_STATUS, &st) < 0 ? -1 : (int)st.waiters;
}

static int raw_wait_waiters(int fd, bool lot, int want)
{
	uint64_t t0 = mono_ns();

	while (raw_waiters(fd, lot) != want) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

/* The semaphore's free permits. */
static long long raw_free(int fd)
{
	struct gosync_sem_status st;

	if (xioctl(fd, GOSYNC_IOC_SEM_STATUS, &st) < 0)
		return -1;
	return (long long)(st.state & GOSYNC_SEM_COUNT_MASK);
}

/* A new channel (chan struct{}, unbuffered, or of @cap ints). */
static int raw_chan(int dev, uint32_t cap)
{
	struct gosync_chan_create arg = {
		.elem_size = cap ? sizeof(int) : 0, .capacity = cap,
	};

	return xioctl(dev, GOSYNC_IOC_CHAN_CREATE, &arg);
}

static int raw_chan_close(int fd)
{
	return xioctl(fd, GOSYNC_IOC_CHAN_CLOSE, NULL);
}

/* A raw wait on its own thread. */
struct rwait {
	int fd;
	bool lot;
	uint64_t deadline;
	uint32_t flags;
	int32_t cancel_fd;
	pthread_t thread;
	atomic_bool returned;
	int ret;
	uint64_t end;
};

static void *rwait_main(void *p)
{
	struct rwait *w = p;

	w->ret = raw_wait(w->fd, w->lot, w->deadline, w->flags, w->cancel_fd);
	w->end = gs_now();
	atomic_store(&w->returned, true);
	return NULL;
}

static int rwait_start(struct rwait *w, int fd, bool lot, int cancel_fd)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->lot = lot;
	w->deadline = gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);
	w->flags = GOSYNC_WAIT_CANCEL_FD;
	w->cancel_fd = cancel_fd;
	w->ret = -1000;
	atomic_init(&w->returned, false);
	return start_thread(&w->thread, rwait_main, w);
}

static bool rwait_join(struct rwait *w, unsigned int ms)
{
	uint64_t t0 = mono_ns();

	while (!atomic_load(&w->returned)) {
		if (ms_since(t0) > ms)
			return false;
		usleep(200);
	}
	pthread_join(w->thread, NULL);
	return true;
}

FIXTURE(raw) {
	int dev, fd, other;	/* the device, the object, one of the other kind */
};

FIXTURE_VARIANT(raw) {
	bool lot;
};

FIXTURE_VARIANT_ADD(raw, sem) { .lot = false };
FIXTURE_VARIANT_ADD(raw, lot) { .lot = true };

static int raw_sem_create(int dev, uint64_t size)
{
	struct gosync_sem_create arg = { .size = size };

	return xioctl(dev, GOSYNC_IOC_SEM_CREATE, &arg);
}

static int raw_lot_create(int dev)
{
	struct gosync_lot_create arg = { .kind = GOSYNC_LOT_PLAIN };

	return xioctl(dev, GOSYNC_IOC_LOT_CREATE, &arg);
}

FIXTURE_SETUP(raw)
{
	__u64 one = 1;
	int sem, lot;

	self->dev = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->dev) TH_LOG("open: %s", strerror(errno));
	sem = raw_sem_create(self->dev, 1);
	ASSERT_LE(0, sem);
	ASSERT_EQ(0, xioctl(sem, GOSYNC_IOC_SEM_TRY_ACQUIRE, &one));
	lot = raw_lot_create(self->dev);
	ASSERT_LE(0, lot);
	self->fd = variant->lot ? lot : sem;
	self->other = variant->lot ? sem : lot;
}

FIXTURE_TEARDOWN(raw)
{
	close(self->fd);
	close(self->other);
	close(self->dev);
}

TEST_F(raw, channel_closed_by_another_thread_cancels)
{
	struct rwait w;
	uint64_t tc;
	int ch;

	ch = raw_chan(self->dev, 0);
	ASSERT_LE(0, ch);
	ASSERT_EQ(0, rwait_start(&w, self->fd, variant->lot, ch));
	ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 1));
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.returned));
	tc = gs_now();
	ASSERT_EQ(0, raw_chan_close(ch));
	ASSERT_TRUE(rwait_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(-ECANCELED, w.ret);
	EXPECT_LE(tc, w.end);
	EXPECT_GT(tc + LATE_MS * NS_PER_MS, w.end);
	/* Dequeued, nothing taken. */
	EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
	if (variant->lot) {
		EXPECT_EQ(0, raw_serve(self->fd, true));	/* nobody to wake */
	} else {
		EXPECT_EQ(0, raw_free(self->fd));
		EXPECT_EQ(0, raw_serve(self->fd, false));
		EXPECT_EQ(1, raw_free(self->fd));
	}
	close(ch);
}

TEST_F(raw, one_close_cancels_every_waiter)
{
	struct rwait w[6];
	int ch;

	ch = raw_chan(self->dev, 0);
	ASSERT_LE(0, ch);
	for (int i = 0; i < 6; i++) {
		ASSERT_EQ(0, rwait_start(&w[i], self->fd, variant->lot, ch));
	}
	ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 6));
	ASSERT_EQ(0, raw_chan_close(ch));
	for (int i = 0; i < 6; i++) {
		ASSERT_TRUE(rwait_join(&w[i], WAIT_LIMIT_MS));
		EXPECT_EQ(-ECANCELED, w[i].ret) TH_LOG("waiter %d", i);
	}
	EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
	close(ch);
}

TEST_F(raw, channel_traffic_is_not_a_cancel)
{
	struct rwait w;
	int ch, v = 3;
	struct gosync_chan_xfer x = {
		.value = (uintptr_t)&v, .deadline = GS_FOREVER,
		.flags = GOSYNC_CHAN_TRY,
	};

	/* A buffered channel: a send and a receive wake its pollers. */
	ch = raw_chan(self->dev, 2);
	ASSERT_LE(0, ch);
	ASSERT_EQ(0, rwait_start(&w, self->fd, variant->lot, ch));
	ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 1));
	ASSERT_EQ(0, xioctl(ch, GOSYNC_IOC_CHAN_SEND, &x));
	ASSERT_EQ(0, xioctl(ch, GOSYNC_IOC_CHAN_SEND, &x));
	ASSERT_EQ(1, xioctl(ch, GOSYNC_IOC_CHAN_RECV, &x));
	sleep_ms(50);
	EXPECT_FALSE(atomic_load(&w.returned));
	EXPECT_EQ(1, raw_waiters(self->fd, variant->lot));
	/* The close cancels, though a value is still buffered. */
	ASSERT_EQ(0, raw_chan_close(ch));
	ASSERT_TRUE(rwait_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(-ECANCELED, w.ret);
	close(ch);
}

TEST_F(raw, already_closed_channel_cancels_at_once)
{
	uint64_t t0;
	int ch;

	ch = raw_chan(self->dev, 0);
	ASSERT_LE(0, ch);
	ASSERT_EQ(0, raw_chan_close(ch));
	t0 = gs_now();
	EXPECT_EQ(-ECANCELED, raw_wait(self->fd, variant->lot,
				       gs_deadline_in(2 * LATE_MS * NS_PER_MS),
				       GOSYNC_WAIT_CANCEL_FD, ch));
	EXPECT_GT(t0 + LATE_MS * NS_PER_MS, gs_now());
	EXPECT_EQ(-ECANCELED, raw_wait(self->fd, variant->lot, GS_FOREVER,
				       GOSYNC_WAIT_CANCEL_FD, ch));
	EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
	if (!variant->lot) {
		/* A permit that is free is taken: that wait is served. */
		EXPECT_EQ(0, raw_serve(self->fd, false));
		EXPECT_EQ(0, raw_wait(self->fd, false, GS_FOREVER,
				      GOSYNC_WAIT_CANCEL_FD, ch));
		EXPECT_EQ(0, raw_free(self->fd));
	}
	close(ch);
}

TEST_F(raw, cancel_fd_not_a_channel_is_einval)
{
	int p[2], null, ch;

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, null);
	ch = raw_chan(self->dev, 0);
	ASSERT_LE(0, ch);
	ASSERT_EQ(0, raw_chan_close(ch));
	{
		int bad[] = { p[0], p[1], null, self->dev, self->fd, self->other };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			/* Refused before anything, even a closed channel. */
			EXPECT_EQ(-EINVAL, raw_wait(self->fd, variant->lot, 0,
						    GOSYNC_WAIT_CANCEL_FD, bad[i]))
				TH_LOG("fd %zu", i);
			EXPECT_EQ(-EINVAL, raw_wait(self->fd, variant->lot,
						    GS_FOREVER,
						    GOSYNC_WAIT_CANCEL_FD, bad[i]))
				TH_LOG("fd %zu", i);
		}
	}
	EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
	/* A timer channel is a channel (it is never closed). */
	{
		gs_chan *t;

		ASSERT_EQ(0, gs_after(&t, FAR_NS));
		EXPECT_EQ(-ETIMEDOUT, raw_wait(self->fd, variant->lot,
					       gs_deadline_in(20 * NS_PER_MS),
					       GOSYNC_WAIT_CANCEL_FD,
					       gs_chan_fd(t)));
		gs_chan_destroy(t);
	}
	close(ch);
	close(null);
	close(p[0]);
	close(p[1]);
}

TEST_F(raw, bad_cancel_fd_is_ebadf)
{
	int closed = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ASSERT_LE(0, closed);
	close(closed);
	EXPECT_EQ(-EBADF, raw_wait(self->fd, variant->lot, GS_FOREVER,
				   GOSYNC_WAIT_CANCEL_FD, closed));
	EXPECT_EQ(-EBADF, raw_wait(self->fd, variant->lot, GS_FOREVER,
				   GOSYNC_WAIT_CANCEL_FD, -1));
	EXPECT_EQ(-EBADF, raw_wait(self->fd, variant->lot, GS_FOREVER,
				   GOSYNC_WAIT_CANCEL_FD, 1 << 20));
	EXPECT_EQ(-EBADF, raw_wait(self->fd, variant->lot, GS_FOREVER,
				   GOSYNC_WAIT_CANCEL_FD, INT32_MIN));
	EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
}

TEST_F(raw, cancel_fd_without_the_flag_is_einval)
{
	int ch = raw_chan(self->dev, 0);

	ASSERT_LE(0, ch);
	EXPECT_EQ(-EINVAL, raw_wait(self->fd, variant->lot, 0, 0, ch));
	EXPECT_EQ(-EINVAL, raw_wait(self->fd, variant->lot, GS_FOREVER, 0, ch));
	EXPECT_EQ(-EINVAL, raw_wait(self->fd, variant->lot, 0, 0, -1));
	EXPECT_EQ(-EINVAL, raw_wait(self->fd, variant->lot, 0,
				    GOSYNC_CLOCK_REALTIME, 1));
	/* Unknown flags, beside it. */
	EXPECT_EQ(-EINVAL, raw_wait(self->fd, variant->lot, 0,
				    GOSYNC_WAIT_CANCEL_FD | (1U << 5), ch));
	EXPECT_EQ(-EINVAL, raw_wait(self->fd, variant->lot, 0, 1U << 31, 0));
	/* Without the flag and with 0: an ordinary wait. */
	EXPECT_EQ(-ETIMEDOUT, raw_wait(self->fd, variant->lot, 0, 0, 0));
	EXPECT_EQ(-ETIMEDOUT, raw_wait(self->fd, variant->lot,
				       gs_deadline_in(10 * NS_PER_MS), 0, 0));
	/* With the flag and a live channel: as ordinary until the close. */
	EXPECT_EQ(-ETIMEDOUT, raw_wait(self->fd, variant->lot,
				       gs_deadline_in(10 * NS_PER_MS),
				       GOSYNC_WAIT_CANCEL_FD, ch));
	EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
	close(ch);
}

TEST_F(raw, served_wait_beats_a_later_close)
{
	struct rwait w;
	int ch;

	for (int i = 0; i < 5; i++) {
		ch = raw_chan(self->dev, 0);
		ASSERT_LE(0, ch);
		ASSERT_EQ(0, rwait_start(&w, self->fd, variant->lot, ch));
		ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 1));
		/* Served first, closed right after: success. */
		EXPECT_EQ(variant->lot ? 1 : 0, raw_serve(self->fd, variant->lot));
		ASSERT_EQ(0, raw_chan_close(ch));
		ASSERT_TRUE(rwait_join(&w, WAIT_LIMIT_MS));
		EXPECT_EQ(0, w.ret);
		EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
		if (!variant->lot) {
			EXPECT_EQ(0, raw_free(self->fd));	/* the waiter's */
		}
		close(ch);
	}
}

/* Close a channel as soon as *@go says so. */
struct closer {
	int ch;
	atomic_bool *go;
	pthread_t thread;
};

static void *closer_main(void *p)
{
	struct closer *c = p;

	while (!atomic_load(c->go))
		;
	raw_chan_close(c->ch);
	return NULL;
}

TEST_F(raw, serve_racing_close_conserves)
{
	int served = 0, cancelled = 0;

	for (int i = 0; i < 100; i++) {
		atomic_bool go = false;
		struct closer cl = { .go = &go };
		struct rwait w;
		int s;

		cl.ch = raw_chan(self->dev, 0);
		ASSERT_LE(0, cl.ch);
		ASSERT_EQ(0, rwait_start(&w, self->fd, variant->lot, cl.ch));
		ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 1));
		ASSERT_EQ(0, start_thread(&cl.thread, closer_main, &cl));
		atomic_store(&go, true);
		if (i % 3 == 1)
			sched_yield();
		s = raw_serve(self->fd, variant->lot);
		ASSERT_EQ(0, join_ms(cl.thread, WAIT_LIMIT_MS));
		ASSERT_TRUE(rwait_join(&w, WAIT_LIMIT_MS));
		EXPECT_TRUE(w.ret == 0 || w.ret == -ECANCELED) TH_LOG("%d", w.ret);
		EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
		if (variant->lot) {
			/* Woken by the unpark iff it returns success. */
			EXPECT_EQ(s, w.ret == 0) TH_LOG("round %d", i);
		} else {
			/* The permit: the waiter's, or still free. */
			EXPECT_EQ(0, s);
			EXPECT_EQ(w.ret == 0 ? 0 : 1, raw_free(self->fd))
				TH_LOG("round %d", i);
			if (w.ret) {
				__u64 one = 1;

				EXPECT_EQ(0, xioctl(self->fd,
						    GOSYNC_IOC_SEM_TRY_ACQUIRE, &one));
			}
		}
		served += w.ret == 0;
		cancelled += w.ret == -ECANCELED;
		close(cl.ch);
	}
	TH_LOG("%d served, %d cancelled", served, cancelled);
	if (!variant->lot) {
		EXPECT_EQ(0, raw_free(self->fd));
	}
}

TEST_F(raw, waiter_closes_its_cancel_fd_during_the_wait)
{
	struct rwait w;
	int ch, dup_fd, only;

	/* The fd it passed is closed; the channel lives on in another fd. */
	ch = raw_chan(self->dev, 0);
	ASSERT_LE(0, ch);
	dup_fd = fcntl(ch, F_DUPFD_CLOEXEC, 0);
	ASSERT_LE(0, dup_fd);
	ASSERT_EQ(0, rwait_start(&w, self->fd, variant->lot, dup_fd));
	ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 1));
	ASSERT_EQ(0, close(dup_fd));
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.returned));
	ASSERT_EQ(0, raw_chan_close(ch));
	ASSERT_TRUE(rwait_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(-ECANCELED, w.ret);
	close(ch);

	/* The only fd of the channel is closed: the kernel's reference keeps
	 * it for the wait, which is then served (or times out) as usual.
	 */
	only = raw_chan(self->dev, 0);
	ASSERT_LE(0, only);
	ASSERT_EQ(0, rwait_start(&w, self->fd, variant->lot, only));
	ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 1));
	ASSERT_EQ(0, close(only));
	sleep_ms(20);
	EXPECT_FALSE(atomic_load(&w.returned));
	EXPECT_EQ(variant->lot ? 1 : 0, raw_serve(self->fd, variant->lot));
	ASSERT_TRUE(rwait_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(0, w.ret);
	if (!variant->lot) {
		EXPECT_EQ(0, raw_free(self->fd));
	}

	only = raw_chan(self->dev, 0);
	ASSERT_LE(0, only);
	ASSERT_EQ(0, rwait_start(&w, self->fd, variant->lot, only));
	ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 1));
	ASSERT_EQ(0, close(only));
	EXPECT_EQ(-EBADF, raw_wait(self->fd, variant->lot, 0,
				   GOSYNC_WAIT_CANCEL_FD, only));
	EXPECT_EQ(variant->lot ? 1 : 0, raw_serve(self->fd, variant->lot));
	ASSERT_TRUE(rwait_join(&w, WAIT_LIMIT_MS));
	EXPECT_EQ(0, w.ret);
}

TEST_F(raw, channel_closed_by_another_process_cancels)
{
	struct report { int ret; uint64_t end; } *rep;
	uint64_t tc;
	pid_t pid;
	int ch, status;

	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, rep);
	rep->ret = -1000;
	ch = raw_chan(self->dev, 0);
	ASSERT_LE(0, ch);
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		rep->ret = raw_wait(self->fd, variant->lot,
				    gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS),
				    GOSYNC_WAIT_CANCEL_FD, ch);
		rep->end = gs_now();
		_exit(0);
	}
	ASSERT_EQ(0, raw_wait_waiters(self->fd, variant->lot, 1));
	tc = gs_now();
	ASSERT_EQ(0, raw_chan_close(ch));
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(-ECANCELED, rep->ret);
	EXPECT_LE(tc, rep->end);
	EXPECT_EQ(0, raw_waiters(self->fd, variant->lot));
	close(ch);
	munmap(rep, sizeof(*rep));
}

/* ================================================================== */
/* 9. Done in another process                                           */

/*
 * In a child: adopt the Done channel's fd @fd, check that nothing is
 * there yet, then receive; the exit status says what happened:
 * 0 the receive returned 0 (closed), 2-5 something else.
 */
static int child_wait_done(int fd, uint64_t not_before)
{
	gs_chan *d;
	int r;

	if (gs_chan_from_fd(&d, fd))
		return 2;
	if (gs_chan_try_recv(d, NULL) != -EAGAIN)
		return 3;
	r = gs_chan_recv_until(d, NULL,
			       gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0);
	if (r != 0)
		return 4;
	if (gs_now() < not_before)
		return 5;
	gs_chan_destroy(d);
	return 0;
}

TEST(done_fd_in_forked_child)
{
	gs_ctx *ctx;
	gs_chan *d;
	pid_t pid;
	int status;

	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	d = gs_ctx_done(ctx);
	ASSERT_NE(NULL, d);
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(child_wait_done(dup(gs_chan_fd(d)), 0));
	/* The child's receive waits in the kernel. */
	{
		uint64_t t0 = mono_ns();

		while (chan_waiters(d, false) != 1 && ms_since(t0) < WAIT_LIMIT_MS)
			usleep(500);
	}
	EXPECT_EQ(1, chan_waiters(d, false));
	gs_ctx_cancel(ctx);
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	gs_ctx_release(ctx);
}

TEST(done_fd_over_scm_rights_with_deadline)
{
	int sv[2], status;
	uint64_t dl;
	gs_ctx *ctx;
	pid_t pid;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	/* The child exists before the context does. */
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t not_before;
		int fd;

		close(sv[0]);
		if (read(sv[1], &not_before, sizeof(not_before)) !=
		    sizeof(not_before))
			_exit(6);
		fd = gs_fd_recv(sv[1]);
		if (fd < 0)
			_exit(7);
		_exit(child_wait_done(fd, not_before));
	}
	close(sv[1]);
	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), 300 * NS_PER_MS, &ctx));
	ASSERT_TRUE(gs_ctx_deadline(ctx, &dl));
	ASSERT_EQ(sizeof(dl), write(sv[0], &dl, sizeof(dl)));
	ASSERT_EQ(0, gs_fd_send(sv[0], gs_chan_fd(gs_ctx_done(ctx))));
	/* The reaper, in this process, closes it at the deadline. */
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(-ETIMEDOUT, gs_ctx_err(ctx));
	gs_ctx_release(ctx);
	close(sv[0]);
}

TEST(done_fd_cancels_a_kernel_wait_in_another_process)
{
	gs_ctx *ctx;
	gs_sem *sem;
	pid_t pid;
	int status;

	ASSERT_EQ(0, gs_sem_create(&sem, 1));
	ASSERT_EQ(0, gs_sem_acquire(sem, 1));
	ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &ctx));
	ASSERT_NE(NULL, gs_ctx_done(ctx));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int r = raw_wait(gs_sem_fd(sem), false,
				 gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS),
				 GOSYNC_WAIT_CANCEL_FD,
				 gs_chan_fd(gs_ctx_done(ctx)));

		_exit(r == -ECANCELED ? 0 : 1);
	}
	ASSERT_EQ(0, raw_wait_waiters(gs_sem_fd(sem), false, 1));
	gs_ctx_cancel(ctx);
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	gs_ctx_release(ctx);
	gs_sem_destroy(sem);
}

/* ================================================================== */
/* 10. Leaks                                                            */

static void noop_fn(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

TEST(thousands_of_contexts_leak_nothing)
{
	static int key;
	atomic_int ran = 0;
	int fds, want_runs = 0;
	gs_ctx *warm;
	uint64_t t0;

	/*
	 * Start the reaper first: its fds are for good. The warm-up's
	 * timer fd is freed by the reaper: waited for (not slept for).
	 */
	ASSERT_EQ(0, gs_ctx_with_timeout(bg(), NS_PER_SEC, &warm));
	fds = count_fds();
	gs_ctx_cancel(warm);
	gs_ctx_release(warm);
	for (t0 = mono_ns(); count_fds() >= fds && ms_since(t0) < WAIT_LIMIT_MS;)
		usleep(1000);
	fds = count_fds();

	for (int i = 0; i < 3000; i++) {
		gs_ctx *root, *t, *v, *c, *w;
		gs_ctx_after *stop = NULL;

		ASSERT_EQ(0, gs_ctx_with_cancel(bg(), &root));
		ASSERT_EQ(0, gs_ctx_with_timeout(root, FAR_NS - (uint64_t)i, &t));
		ASSERT_EQ(0, gs_ctx_with_value(t, &key, &ran, &v));
		ASSERT_EQ(0, gs_ctx_with_cancel(v, &c));
		ASSERT_EQ(0, gs_ctx_without_cancel(c, &w));
		if (i % 3 == 0) {
			ASSERT_NE(NULL, gs_ctx_done(c));
		}
		if (i % 5 == 0) {
			ASSERT_NE(NULL, gs_ctx_done(t));
		}
		if (i % 10 == 0) {
			ASSERT_EQ(0, gs_ctx_after_func(v, noop_fn, &ran, &stop));
		}
		switch (i % 4) {
		case 0:		/* cancel the root, release top-down */
			gs_ctx_cancel(root);
			if (stop) {
				EXPECT_FALSE(gs_ctx_after_func_stop(stop));
			}
			want_runs += !!stop;
			gs_ctx_release(root);
			gs_ctx_release(t);
			gs_ctx_release(v);
			gs_ctx_release(c);
			gs_ctx_release(w);
			break;
		case 1:		/* cancel bottom-up, release bottom-up */
			if (stop) {
				EXPECT_TRUE(gs_ctx_after_func_stop(stop));
			}
			gs_ctx_cancel(c);
			gs_ctx_cancel(t);
			gs_ctx_cancel(root);
			gs_ctx_release(w);
			gs_ctx_release(c);
			gs_ctx_release(v);
			gs_ctx_release(t);
			gs_ctx_release(root);
			break;
		case 2:		/* release the leaves uncancelled, then cancel */
			gs_ctx_release(w);
			gs_ctx_release(c);
			gs_ctx_release(v);
			gs_ctx_cancel(t);
			if (stop) {
				EXPECT_FALSE(gs_ctx_after_func_stop(stop));
			}
			want_runs += !!stop;
			gs_ctx_release(t);
			gs_ctx_release(root);
			break;
		default:	/* the deadline passes */
			gs_ctx_release(w);
			gs_ctx_release(c);
			gs_ctx_release(v);
			gs_ctx_release(t);
			if (i % 400 == 3) {
				ASSERT_EQ(0, gs_ctx_with_timeout(root, 1, &t));
				EXPECT_NE(0, wait_err(t));
				gs_ctx_release(t);
			}
			gs_ctx_cancel(root);
			gs_ctx_release(root);
			break;
		}
	}
	/* The reaper frees retired timers soon after. */
	EXPECT_EQ(fds, wait_fds(fds));
	t0 = mono_ns();
	while (atomic_load(&ran) < want_runs && ms_since(t0) < WAIT_LIMIT_MS)
		usleep(1000);
	EXPECT_EQ(want_runs, atomic_load(&ran));
	sleep_ms(50);	/* let the AfterFunc threads exit */
	/* The asan run: nothing unreachable is left. */
	if (__lsan_do_recoverable_leak_check) {
		EXPECT_EQ(0, __lsan_do_recoverable_leak_check());
	}
}

TEST_HARNESS_MAIN
