// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of gs_mutex (Go's sync.Mutex) and gs_rwmutex (sync.RWMutex), the
 * library's primitives on a kernel parking lot (kmod/lot.c):
 *
 *  - lock, trylock, unlock and their states; -EPERM for an unlock of what
 *    is not locked, -EBUSY, -ETIMEDOUT on both clocks, -EINVAL, -ENOTTY
 *    and -EBADF, each leaving the object usable and unchanged;
 *  - the uncontended fast path makes no system call (the lot's counters);
 *  - mutual exclusion under stress: threads, forked processes and a
 *    process that got the fd by SCM_RIGHTS, mixing lock, trylock and
 *    lock_until, with a non-atomic counter that must come out exact;
 *  - starvation mode: a waiter gets the mutex in bounded time while other
 *    threads hammer it; a deterministic hand-off (a real-time spinner
 *    decides who wins each race), and the hand-off's waiter killed;
 *  - signals run their handler without breaking a lock or its deadline;
 *  - a waiter or holder SIGKILLed, handles destroyed while others use
 *    the object;
 *  - RWMutex: reader overlap, readers and writers never together, a
 *    waiting writer blocks new readers and is not starved, queued readers
 *    get in after the writer, before the next writer;
 *  - garbage scribbled into the shared page while threads use it.
 *
 * Some checks read the shared page directly: the word layout below is
 * lib/sync.c's (word 0: LOCKED, STARVING, HANDOFF, waiters from bit 8;
 * an RWMutex's reader count in word 1).
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

/* lib/sync.c's layout of the shared page (observed, never relied on). */
#define M_LOCKED	1ULL
#define M_STARVING	2ULL
#define M_HANDOFF	4ULL
#define M_WAITER_SHIFT	8
#define M_WAITERS(w)	(((w) >> M_WAITER_SHIFT) & 0xffffff)
#define M_OWNERDEAD	8ULL
#define M_NOTRECOVERABLE 16ULL
/* Word 0 without the holder's owner handle (its upper half). */
#define M_STATE(w)	((uint64_t)(w) & 0xffffffffULL)
#define M_OWNER(w)	((uint64_t)(w) >> 32)
#define RW_READERS_WORD	1
#define RW_MAX_READERS	(1LL << 40)

#define PAGE_BYTES	4096

/* What a scribbled word may make a lock say (its robustness bits). */
static bool robust_ret(int ret)
{
	return ret == -EOWNERDEAD || ret == -ENOTRECOVERABLE;
}

/* A check has failed in this test already (to stop a loop early). */
#define HAS_FAILED()	(_metadata->exit_code == KSFT_FAIL)

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

/* Wait (bounded) until *@flag is true. */
static bool wait_flag(atomic_bool *flag, unsigned int ms)
{
	uint64_t t0 = mono_ns();

	while (!atomic_load(flag)) {
		if (ms_since(t0) > ms)
			return false;
		usleep(200);
	}
	return true;
}

/* Wait (bounded) until *@v >= @want. */
static bool wait_count(atomic_int *v, int want, unsigned int ms)
{
	uint64_t t0 = mono_ns();

	while (atomic_load(v) < want) {
		if (ms_since(t0) > ms)
			return false;
		usleep(200);
	}
	return true;
}

/* A second mapping of the object's page, to look at (or scribble on). */
static volatile uint64_t *map_words(int fd)
{
	void *p = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void spin_ns(uint64_t ns)
{
	uint64_t end = mono_ns() + ns;

	while (mono_ns() < end)
		;
}

/* ------------------------------------------------------------------ */
/* A thread that takes a lock, reports, holds it until told, releases.  */

enum lock_op {
	OP_LOCK,		/* gs_mutex_lock */
	OP_LOCK_UNTIL,		/* gs_mutex_lock_until(deadline, flags) */
	OP_RLOCK,		/* gs_rwmutex_rlock */
	OP_WLOCK,		/* gs_rwmutex_lock */
};

struct locker {
	gs_mutex *m;
	gs_rwmutex *rw;
	enum lock_op op;
	uint64_t deadline;
	unsigned int flags;
	atomic_int *order;	/* if set: takes a ticket when in */
	pthread_t thread;
	atomic_bool done;	/* the lock call returned */
	atomic_bool release;	/* told to unlock (if it got it) and leave */
	int ret;		/* the lock call's result */
	int uret;		/* the unlock's result */
	int ticket;
	uint64_t t_start, t_end;	/* on the deadline's clock */
};

static uint64_t locker_clock(const struct locker *l)
{
	return l->flags & GS_CLOCK_REALTIME ? real_ns() : mono_ns();
}

static void *locker_main(void *arg)
{
	struct locker *l = arg;

	l->t_start = locker_clock(l);
	switch (l->op) {
	case OP_LOCK:
		l->ret = gs_mutex_lock(l->m);
		break;
	case OP_LOCK_UNTIL:
		l->ret = gs_mutex_lock_until(l->m, l->deadline, l->flags);
		break;
	case OP_RLOCK:
		l->ret = gs_rwmutex_rlock(l->rw);
		break;
	case OP_WLOCK:
		l->ret = gs_rwmutex_lock(l->rw);
		break;
	}
	l->t_end = locker_clock(l);
	if (l->order && l->ret == 0)
		l->ticket = atomic_fetch_add(l->order, 1);
	atomic_store(&l->done, true);
	if (l->ret)
		return NULL;
	wait_flag(&l->release, 3 * WAIT_LIMIT_MS);
	switch (l->op) {
	case OP_LOCK:
	case OP_LOCK_UNTIL:
		l->uret = gs_mutex_unlock(l->m);
		break;
	case OP_RLOCK:
		l->uret = gs_rwmutex_runlock(l->rw);
		break;
	case OP_WLOCK:
		l->uret = gs_rwmutex_unlock(l->rw);
		break;
	}
	return NULL;
}

static int locker_start(struct locker *l, gs_mutex *m, gs_rwmutex *rw,
			enum lock_op op, uint64_t deadline, unsigned int flags)
{
	memset(l, 0, sizeof(*l));
	l->m = m;
	l->rw = rw;
	l->op = op;
	l->deadline = deadline;
	l->flags = flags;
	l->ret = 1;
	l->uret = 1;
	l->ticket = -1;
	atomic_init(&l->done, false);
	atomic_init(&l->release, false);
	return start_thread(&l->thread, locker_main, l);
}

/* Let it unlock and leave; true if it did within the limit. */
static bool locker_finish(struct locker *l)
{
	atomic_store(&l->release, true);
	return join_ms(l->thread, WAIT_LIMIT_MS) == 0;
}

/* A word of the shared page is exactly @want. */
#define EXPECT_WORD(w, want) EXPECT_EQ((uint64_t)(want), (uint64_t)(w))

/* ================================================================== */
/* 1. Mutex: states and errors                                          */

TEST(mutex_create_and_kind)
{
	struct gosync_lot_status st;
	gs_mutex *m = NULL;
	char buf[512];
	int fd;

	ASSERT_EQ(0, gs_mutex_create(&m)) TH_LOG("%s", gs_init_error());
	fd = gs_mutex_fd(m);
	ASSERT_LE(0, fd);
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(GOSYNC_LOT_MUTEX, st.kind);
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);
	EXPECT_EQ(0, st.woken);
	ASSERT_EQ(0, fdinfo_read(fd, buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, "kind:\tmutex\n")) TH_LOG("%s", buf);
	EXPECT_EQ(0, fdinfo_num(fd, "parked"));
	gs_mutex_destroy(m);
	gs_mutex_destroy(NULL);

	gs_rwmutex *rw = NULL;

	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	ASSERT_EQ(0, lot_status(gs_rwmutex_fd(rw), &st));
	EXPECT_EQ(GOSYNC_LOT_RWMUTEX, st.kind);
	ASSERT_EQ(0, fdinfo_read(gs_rwmutex_fd(rw), buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, "kind:\trwmutex\n")) TH_LOG("%s", buf);
	gs_rwmutex_destroy(rw);
	gs_rwmutex_destroy(NULL);
}

TEST(mutex_lock_trylock_unlock_states)
{
	volatile uint64_t *w;
	gs_mutex *m = NULL;

	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	EXPECT_WORD(M_STATE(w[0]), 0);

	ASSERT_EQ(0, gs_mutex_lock(m));
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);

	ASSERT_EQ(0, gs_mutex_trylock(m));
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);

	ASSERT_EQ(0, gs_mutex_lock_until(m, GS_FOREVER, 0));
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	EXPECT_EQ(0, gs_mutex_unlock(m));
	/* A free mutex is taken even with a deadline already past. */
	ASSERT_EQ(0, gs_mutex_lock_until(m, 0, 0));
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	EXPECT_EQ(0, gs_mutex_unlock(m));
	ASSERT_EQ(0, gs_mutex_lock_until(m, 0, GS_CLOCK_REALTIME));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

TEST(mutex_unlock_of_unlocked_is_eperm)
{
	struct gosync_lot_status st0, st;
	volatile uint64_t *w;
	gs_mutex *m = NULL;

	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, lot_status(gs_mutex_fd(m), &st0));

	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);

	/* Still a working mutex. */
	ASSERT_EQ(0, gs_mutex_lock(m));
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	/* A double unlock is refused the same way. */
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);
	ASSERT_EQ(0, gs_mutex_trylock(m));
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);

	/* None of it entered the kernel. */
	ASSERT_EQ(0, lot_status(gs_mutex_fd(m), &st));
	EXPECT_EQ(st0.parks, st.parks);
	EXPECT_EQ(st0.unparks, st.unparks);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

/* Any thread may unlock, as in Go: the mutex belongs to no thread. */
TEST(mutex_unlock_by_another_thread)
{
	struct locker l;
	gs_mutex *m = NULL;

	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, locker_start(&l, m, NULL, OP_LOCK, 0, 0));
	ASSERT_TRUE(wait_flag(&l.done, WAIT_LIMIT_MS));
	ASSERT_EQ(0, l.ret);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));	/* not ours, but allowed */
	EXPECT_EQ(0, gs_mutex_trylock(m));
	ASSERT_TRUE(locker_finish(&l));
	EXPECT_EQ(0, l.uret);			/* unlocks our lock */
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
}

TEST(mutex_lock_until_bad_flags_is_einval)
{
	static const unsigned int bad[] = {
		2, 4, 1U << 31, ~0U, GS_CLOCK_REALTIME | GOSYNC_LOT_PARK_FRONT,
	};
	volatile uint64_t *w;
	gs_mutex *m = NULL;

	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		/* Free: not taken. */
		EXPECT_EQ(-EINVAL, gs_mutex_lock_until(m, GS_FOREVER, bad[i]))
			TH_LOG("flags %#x", bad[i]);
		EXPECT_WORD(M_STATE(w[0]), 0);
		/* Held: no waiting, nothing queued. */
		ASSERT_EQ(0, gs_mutex_lock(m));
		EXPECT_EQ(-EINVAL, gs_mutex_lock_until(m, gs_deadline_in(NS_PER_SEC),
						       bad[i]));
		EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
		EXPECT_EQ(0, gs_mutex_unlock(m));
	}
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

TEST(mutex_lock_until_past_deadline_on_held_times_out)
{
	struct gosync_lot_status st;
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	uint64_t t0;

	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_mutex_lock(m));

	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_mutex_lock_until(m, 0, 0));
	EXPECT_EQ(-ETIMEDOUT, gs_mutex_lock_until(m, mono_ns() - NS_PER_SEC, 0));
	EXPECT_EQ(-ETIMEDOUT, gs_mutex_lock_until(m, 0, GS_CLOCK_REALTIME));
	EXPECT_EQ(-ETIMEDOUT, gs_mutex_lock_until(m, real_ns() - NS_PER_SEC,
						  GS_CLOCK_REALTIME));
	/* "Past" on the monotonic clock is far in the future on realtime. */
	EXPECT_EQ(-ETIMEDOUT, gs_mutex_lock_until(m, mono_ns() / 2, 0));
	EXPECT_GT(WAIT_LIMIT_MS, ms_since(t0));	/* a hang */

	/* Nobody is left counted in: the word is exactly "held". */
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	ASSERT_EQ(0, lot_status(gs_mutex_fd(m), &st));
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

/*
 * A waiter with a short deadline on a held mutex times out on time, and
 * leaves no trace: the next uncontended lock and unlock make no call.
 */
static void timeout_case(struct __test_metadata *_metadata, bool realtime)
{
	const unsigned int flags = realtime ? GS_CLOCK_REALTIME : 0;
	struct gosync_lot_status st0, st;
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	struct locker l;
	uint64_t deadline, t0;
	int fd;

	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_mutex_lock(m));

	/* In this thread. */
	t0 = realtime ? real_ns() : mono_ns();
	deadline = t0 + 50 * NS_PER_MS;
	EXPECT_EQ(-ETIMEDOUT, gs_mutex_lock_until(m, deadline, flags));
	t0 = realtime ? real_ns() : mono_ns();
	EXPECT_LE(deadline, t0);
	EXPECT_GT(deadline + WAIT_LIMIT_MS * NS_PER_MS, t0);	/* a hang */
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);

	/*
	 * In another thread, seen parked while it waits (the deadline long
	 * enough for that on a slow machine).
	 */
	deadline = (realtime ? real_ns() : mono_ns()) + 1000 * NS_PER_MS;
	ASSERT_EQ(0, locker_start(&l, m, NULL, OP_LOCK_UNTIL, deadline, flags));
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_EQ(1, M_WAITERS(w[0]));
	EXPECT_TRUE(wait_flag(&l.done, WAIT_LIMIT_MS));
	EXPECT_EQ(-ETIMEDOUT, l.ret);
	EXPECT_LE(deadline, l.t_end);
	EXPECT_GT(deadline + WAIT_LIMIT_MS * NS_PER_MS, l.t_end);	/* a hang */
	ASSERT_TRUE(locker_finish(&l));
	EXPECT_WORD(M_STATE(w[0]), M_LOCKED);
	ASSERT_EQ(0, lot_status(fd, &st0));
	EXPECT_EQ(0, st0.parked);

	/* Fully usable, and no leaked waiter: no call at all. */
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_WORD(M_STATE(w[0]), 0);
	for (int i = 0; i < 1000; i++) {
		EXPECT_EQ(0, gs_mutex_lock(m));
		EXPECT_EQ(0, gs_mutex_unlock(m));
		EXPECT_EQ(0, gs_mutex_trylock(m));
		EXPECT_EQ(0, gs_mutex_unlock(m));
		if (HAS_FAILED())
			break;
	}
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(st0.parks, st.parks);
	EXPECT_EQ(st0.unparks, st.unparks);
	EXPECT_WORD(M_STATE(w[0]), 0);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

TEST(mutex_lock_until_monotonic_times_out)
{
	timeout_case(_metadata, false);
}

TEST(mutex_lock_until_realtime_times_out)
{
	timeout_case(_metadata, true);
}

/* Several waiters time out together; a forever waiter among them is woken. */
TEST(mutex_timed_out_waiters_leave_no_count)
{
	struct gosync_lot_status st0, st;
	struct locker l[4], forever;
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	uint64_t deadline;
	int fd;

	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_mutex_lock(m));
	ASSERT_EQ(0, locker_start(&forever, m, NULL, OP_LOCK, 0, 0));
	ASSERT_EQ(0, wait_parked(fd, 1));
	/* Long enough for four threads to park on a slow machine. */
	deadline = mono_ns() + 2000 * NS_PER_MS;
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, locker_start(&l[i], m, NULL, OP_LOCK_UNTIL,
					  deadline, 0));
	ASSERT_EQ(0, wait_parked(fd, 5));
	EXPECT_EQ(5, M_WAITERS(w[0]));
	for (int i = 0; i < 4; i++) {
		EXPECT_TRUE(wait_flag(&l[i].done, WAIT_LIMIT_MS));
		EXPECT_EQ(-ETIMEDOUT, l[i].ret);
		EXPECT_LE(deadline, l[i].t_end);
		ASSERT_TRUE(locker_finish(&l[i]));
	}
	EXPECT_EQ(1, M_WAITERS(w[0]));
	EXPECT_TRUE(w[0] & M_LOCKED);
	EXPECT_FALSE(atomic_load(&forever.done));

	/* The remaining waiter gets the mutex at the unlock. */
	EXPECT_EQ(0, gs_mutex_unlock(m));
	ASSERT_TRUE(wait_flag(&forever.done, WAIT_LIMIT_MS));
	EXPECT_EQ(0, forever.ret);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	ASSERT_TRUE(locker_finish(&forever));
	EXPECT_EQ(0, forever.uret);
	EXPECT_WORD(M_STATE(w[0]), 0);

	ASSERT_EQ(0, lot_status(fd, &st0));
	EXPECT_EQ(0, st0.parked);
	for (int i = 0; i < 1000; i++) {
		if (gs_mutex_lock(m) || gs_mutex_unlock(m))
			break;
	}
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(st0.parks, st.parks);
	EXPECT_EQ(st0.unparks, st.unparks);
	EXPECT_WORD(M_STATE(w[0]), 0);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

/* A waiter with a deadline that is unlocked in time gets the mutex. */
TEST(mutex_lock_until_woken_before_deadline)
{
	for (int rt = 0; rt < 2; rt++) {
		const unsigned int flags = rt ? GS_CLOCK_REALTIME : 0;
		gs_mutex *m = NULL;
		struct locker l;
		uint64_t deadline;

		ASSERT_EQ(0, gs_mutex_create(&m));
		ASSERT_EQ(0, gs_mutex_lock(m));
		deadline = (rt ? real_ns() : mono_ns()) + 8 * NS_PER_SEC;
		ASSERT_EQ(0, locker_start(&l, m, NULL, OP_LOCK_UNTIL, deadline,
					  flags));
		ASSERT_EQ(0, wait_parked(gs_mutex_fd(m), 1));
		sleep_ms(30);
		EXPECT_FALSE(atomic_load(&l.done));
		EXPECT_EQ(0, gs_mutex_unlock(m));
		ASSERT_TRUE(wait_flag(&l.done, WAIT_LIMIT_MS));
		EXPECT_EQ(0, l.ret);
		EXPECT_GT(deadline, l.t_end);
		EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
		ASSERT_TRUE(locker_finish(&l));
		EXPECT_EQ(0, l.uret);
		EXPECT_EQ(0, gs_mutex_trylock(m));
		EXPECT_EQ(0, gs_mutex_unlock(m));
		gs_mutex_destroy(m);
	}
}

TEST(mutex_from_fd_accepts_mutexes_only)
{
	gs_rwmutex *rw = NULL, *rw2 = NULL;
	gs_mutex *m = NULL, *m2 = NULL;
	gs_waitgroup *wg = NULL;
	gs_sem *s = NULL;
	int fd, pipefd[2];

	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	ASSERT_EQ(0, gs_sem_create(&s, 1));
	ASSERT_EQ(0, gs_waitgroup_create(&wg));

	/* A semaphore, an RWMutex, another lot, a pipe, /dev/null, the device. */
	EXPECT_EQ(-ENOTTY, gs_mutex_from_fd(&m2, gs_sem_fd(s)));
	EXPECT_EQ(-ENOTTY, gs_mutex_from_fd(&m2, gs_rwmutex_fd(rw)));
	EXPECT_EQ(-ENOTTY, gs_mutex_from_fd(&m2, gs_waitgroup_fd(wg)));
	EXPECT_EQ(-ENOTTY, gs_rwmutex_from_fd(&rw2, gs_mutex_fd(m)));
	EXPECT_EQ(-ENOTTY, gs_rwmutex_from_fd(&rw2, gs_sem_fd(s)));
	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	EXPECT_EQ(-ENOTTY, gs_mutex_from_fd(&m2, pipefd[0]));
	EXPECT_EQ(-ENOTTY, gs_rwmutex_from_fd(&rw2, pipefd[1]));
	close(pipefd[0]);
	close(pipefd[1]);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-ENOTTY, gs_mutex_from_fd(&m2, fd));
	close(fd);
	EXPECT_EQ(-ENOTTY, gs_mutex_from_fd(&m2, gs_device_fd()));

	/* Closed fds. */
	fd = lowest_free_fd();
	EXPECT_EQ(-EBADF, gs_mutex_from_fd(&m2, fd));
	EXPECT_EQ(-EBADF, gs_rwmutex_from_fd(&rw2, fd));
	EXPECT_EQ(-EBADF, gs_mutex_from_fd(&m2, -1));
	EXPECT_EQ(NULL, m2);
	EXPECT_EQ(NULL, rw2);
	/* The refused fds are still open and the objects still work. */
	EXPECT_EQ(0, gs_sem_try_acquire(s, 1));
	EXPECT_EQ(0, gs_rwmutex_trylock(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));

	/* A dup of a mutex fd is the same mutex. */
	fd = dup(gs_mutex_fd(m));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, gs_mutex_from_fd(&m2, fd));
	EXPECT_EQ(fd, gs_mutex_fd(m2));
	ASSERT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m2));
	EXPECT_EQ(0, gs_mutex_unlock(m2));
	EXPECT_EQ(0, gs_mutex_trylock(m2));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m2));
	gs_mutex_destroy(m2);
	EXPECT_EQ(-1, fcntl(fd, F_GETFD));	/* destroy closed it */

	gs_waitgroup_destroy(wg);
	gs_sem_destroy(s);
	gs_rwmutex_destroy(rw);
	gs_mutex_destroy(m);
}

/* ================================================================== */
/* 2. The fast path makes no system call                                */

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

#define FAST_PAIRS	1000000

/* The lot's counters, both from the ioctl and from fdinfo. */
struct counters {
	uint64_t parks, unparks, woken;
	long long fi_parks, fi_unparks;
};

static int counters_get(int fd, struct counters *c)
{
	struct gosync_lot_status st;
	int err = lot_status(fd, &st);

	if (err)
		return err;
	c->parks = st.parks;
	c->unparks = st.unparks;
	c->woken = st.woken;
	c->fi_parks = fdinfo_num(fd, "parks");
	c->fi_unparks = fdinfo_num(fd, "unparks");
	return 0;
}

#define EXPECT_SAME_COUNTERS(a, b) do {					\
	EXPECT_EQ((a).parks, (b).parks);				\
	EXPECT_EQ((a).unparks, (b).unparks);				\
	EXPECT_EQ((a).woken, (b).woken);				\
	EXPECT_EQ((a).fi_parks, (b).fi_parks);				\
	EXPECT_EQ((a).fi_unparks, (b).fi_unparks);			\
	EXPECT_LE(0, (b).fi_parks);					\
} while (0)

TEST_F(slow, mutex_fast_path_makes_no_syscalls)
{
	struct counters c0, c1;
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	long failures = 0;
	uint64_t t0;
	int fd;

	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, counters_get(fd, &c0));

	t0 = mono_ns();
	for (long i = 0; i < FAST_PAIRS; i++) {
		failures += gs_mutex_lock(m) != 0;
		failures += gs_mutex_unlock(m) != 0;
	}
	TH_LOG("%d lock/unlock pairs in %ju ms", FAST_PAIRS,
	       (uintmax_t)ms_since(t0));
	t0 = mono_ns();
	for (long i = 0; i < FAST_PAIRS; i++) {
		failures += gs_mutex_trylock(m) != 0;
		failures += gs_mutex_unlock(m) != 0;
	}
	TH_LOG("%d trylock/unlock pairs in %ju ms", FAST_PAIRS,
	       (uintmax_t)ms_since(t0));
	for (long i = 0; i < FAST_PAIRS / 10; i++) {
		failures += gs_mutex_lock_until(m, gs_deadline_in(NS_PER_SEC),
						0) != 0;
		failures += gs_mutex_trylock(m) != -EBUSY;
		failures += gs_mutex_unlock(m) != 0;
		failures += gs_mutex_unlock(m) != -EPERM;
	}
	EXPECT_EQ(0, failures);
	EXPECT_WORD(M_STATE(w[0]), 0);
	ASSERT_EQ(0, counters_get(fd, &c1));
	EXPECT_SAME_COUNTERS(c0, c1);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

TEST_F(slow, rwmutex_fast_path_makes_no_syscalls)
{
	struct counters c0, c1;
	volatile uint64_t *w;
	gs_rwmutex *rw = NULL;
	long failures = 0;
	uint64_t t0;
	int fd;

	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	fd = gs_rwmutex_fd(rw);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, counters_get(fd, &c0));

	t0 = mono_ns();
	for (long i = 0; i < FAST_PAIRS; i++) {
		failures += gs_rwmutex_rlock(rw) != 0;
		failures += gs_rwmutex_runlock(rw) != 0;
	}
	TH_LOG("%d rlock/runlock pairs in %ju ms", FAST_PAIRS,
	       (uintmax_t)ms_since(t0));
	t0 = mono_ns();
	for (long i = 0; i < FAST_PAIRS; i++) {
		failures += gs_rwmutex_lock(rw) != 0;
		failures += gs_rwmutex_unlock(rw) != 0;
	}
	TH_LOG("%d lock/unlock pairs in %ju ms", FAST_PAIRS,
	       (uintmax_t)ms_since(t0));
	for (long i = 0; i < FAST_PAIRS / 10; i++) {
		failures += gs_rwmutex_tryrlock(rw) != 0;
		failures += gs_rwmutex_rlock(rw) != 0;
		failures += gs_rwmutex_trylock(rw) != -EBUSY;
		failures += gs_rwmutex_runlock(rw) != 0;
		failures += gs_rwmutex_runlock(rw) != 0;
		failures += gs_rwmutex_trylock(rw) != 0;
		failures += gs_rwmutex_tryrlock(rw) != -EBUSY;
		failures += gs_rwmutex_unlock(rw) != 0;
	}
	EXPECT_EQ(0, failures);
	EXPECT_WORD(M_STATE(w[0]), 0);
	EXPECT_WORD(w[RW_READERS_WORD], 0);
	ASSERT_EQ(0, counters_get(fd, &c1));
	EXPECT_SAME_COUNTERS(c0, c1);
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
}

/* ================================================================== */
/* 3. Mutual exclusion under stress                                     */

/* In shared memory: seen by every thread and process of a stress run. */
struct excl {
	volatile uint64_t counter;	/* incremented without atomics */
	atomic_int inside;
	atomic_int violations;
	atomic_long acquired;
	atomic_long busy;
	atomic_long timeouts;
	atomic_int recovered;		/* -EOWNERDEAD, then consistent */
	atomic_int errors;
	atomic_int first_error;
	atomic_int first_error_op;
	atomic_int started;
	atomic_bool go;
};

static void excl_error(struct excl *x, int op, int ret)
{
	if (atomic_fetch_add(&x->errors, 1) == 0) {
		atomic_store(&x->first_error, ret);
		atomic_store(&x->first_error_op, op);
	}
}

/* The critical section: must never be shared; increments the counter. */
static void excl_critical(struct excl *x, unsigned int work)
{
	uint64_t v;

	if (atomic_fetch_add(&x->inside, 1) != 0)
		atomic_fetch_add(&x->violations, 1);
	v = x->counter;
	for (volatile unsigned int k = 0; k < work; k++)
		;
	/* Now and then, be preempted inside: others must park. */
	if (work % 16 == 0)
		sched_yield();
	x->counter = v + 1;
	atomic_fetch_add(&x->acquired, 1);
	atomic_fetch_sub(&x->inside, 1);
}

struct excl_worker {
	gs_mutex *m;
	struct excl *x;
	int ops;
	uint64_t seed;
	pthread_t thread;
};

static void *excl_worker_main(void *arg)
{
	struct excl_worker *wk = arg;
	struct excl *x = wk->x;
	uint64_t seed = wk->seed | 1;

	atomic_fetch_add(&x->started, 1);
	while (!atomic_load(&x->go))
		sched_yield();
	for (int i = 0; i < wk->ops; i++) {
		uint64_t r = rnd64(&seed);
		int op = (int)(r % 8), ret;

		switch (op) {
		case 0: case 1: case 2: case 3:
			ret = gs_mutex_lock(wk->m);
			break;
		case 4: case 5:
			ret = gs_mutex_trylock(wk->m);
			if (ret == -EBUSY) {
				atomic_fetch_add(&x->busy, 1);
				continue;
			}
			break;
		case 6:
			ret = gs_mutex_lock_until(wk->m, gs_deadline_in((r >> 8) % 300000),
						  0);
			if (ret == -ETIMEDOUT) {
				atomic_fetch_add(&x->timeouts, 1);
				continue;
			}
			break;
		default:
			ret = gs_mutex_lock_until(wk->m, real_ns() + (r >> 8) % 2000000,
						  GS_CLOCK_REALTIME);
			if (ret == -ETIMEDOUT) {
				atomic_fetch_add(&x->timeouts, 1);
				continue;
			}
			break;
		}
		if (ret == -EOWNERDEAD) {
			/*
			 * A holder died, maybe inside the critical section:
			 * we hold the mutex alone, so nobody else is inside.
			 */
			atomic_fetch_add(&x->recovered, 1);
			atomic_store(&x->inside, 0);
			ret = gs_mutex_consistent(wk->m);
			if (ret) {
				excl_error(x, 101, ret);
				gs_mutex_unlock(wk->m);
				continue;
			}
		} else if (ret) {
			excl_error(x, op, ret);
			continue;
		}
		excl_critical(x, (unsigned int)(r >> 40) % 200);
		ret = gs_mutex_unlock(wk->m);
		if (ret)
			excl_error(x, 100, ret);
		if ((r >> 20) % 16 == 0)
			sched_yield();
	}
	return NULL;
}

/* @n threads on @m; returns how many did not finish within @ms. */
static int excl_run_threads(gs_mutex *m, struct excl *x, int n, int ops,
			    uint64_t seed, bool set_go, unsigned int ms)
{
	struct excl_worker wk[16];
	int stuck = 0;

	for (int i = 0; i < n; i++) {
		wk[i].m = m;
		wk[i].x = x;
		wk[i].ops = ops;
		wk[i].seed = seed * 1000003 + (uint64_t)i * 0x9e3779b97f4a7c15ULL;
		if (start_thread(&wk[i].thread, excl_worker_main, &wk[i]))
			return n - i;
	}
	if (set_go)
		atomic_store(&x->go, true);
	for (int i = 0; i < n; i++)
		stuck += join_ms(wk[i].thread, ms) != 0;
	return stuck;
}

#define EXPECT_EXCL(x, total) do {					\
	EXPECT_EQ(0, atomic_load(&(x)->violations));			\
	EXPECT_EQ(0, atomic_load(&(x)->errors))				\
		TH_LOG("first error %d (%s) in op %d",			\
		       atomic_load(&(x)->first_error),			\
		       strerror(-atomic_load(&(x)->first_error)),	\
		       atomic_load(&(x)->first_error_op));		\
	EXPECT_EQ((uint64_t)atomic_load(&(x)->acquired), (x)->counter);	\
	EXPECT_EQ((long)(total), atomic_load(&(x)->acquired) +		\
		  atomic_load(&(x)->busy) + atomic_load(&(x)->timeouts)); \
	EXPECT_LT(0, atomic_load(&(x)->acquired));			\
} while (0)

#define EXCL_THREADS	6
#define EXCL_OPS	4000

TEST_F(slow, mutex_excludes_threads)
{
	struct gosync_lot_status st;
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	struct excl *x;
	uint64_t t0;

	x = shared_alloc(sizeof(*x));
	ASSERT_NE(NULL, x);
	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	t0 = mono_ns();
	EXPECT_EQ(0, excl_run_threads(m, x, EXCL_THREADS, EXCL_OPS, 1, true,
				      3 * WAIT_LIMIT_MS))
		TH_LOG("stuck: word %#jx", (uintmax_t)w[0]);
	TH_LOG("%d threads x %d ops in %ju ms: %ld locked, %ld busy, %ld timed out",
	       EXCL_THREADS, EXCL_OPS, (uintmax_t)ms_since(t0),
	       atomic_load(&x->acquired), atomic_load(&x->busy),
	       atomic_load(&x->timeouts));
	EXPECT_EXCL(x, EXCL_THREADS * EXCL_OPS);
	EXPECT_WORD(M_STATE(w[0]), 0);
	ASSERT_EQ(0, lot_status(gs_mutex_fd(m), &st));
	EXPECT_EQ(0, st.parked);
	TH_LOG("parks %ju unparks %ju woken %ju", (uintmax_t)st.parks,
	       (uintmax_t)st.unparks, (uintmax_t)st.woken);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
	munmap(x, sizeof(*x));
}

#define EXCL_PROCS		3
#define EXCL_PROC_THREADS	2
#define EXCL_PROC_OPS		2500

TEST_F(slow, mutex_excludes_forked_processes)
{
	pid_t pids[EXCL_PROCS];
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	struct excl *x;
	uint64_t t0;

	x = shared_alloc(sizeof(*x));
	ASSERT_NE(NULL, x);
	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	for (int p = 0; p < EXCL_PROCS; p++) {
		pids[p] = fork_child();
		ASSERT_LE(0, pids[p]);
		if (pids[p] == 0)
			_exit(excl_run_threads(m, x, EXCL_PROC_THREADS,
					       EXCL_PROC_OPS, (uint64_t)p + 10,
					       false, 3 * WAIT_LIMIT_MS));
	}
	ASSERT_TRUE(wait_count(&x->started, EXCL_PROCS * EXCL_PROC_THREADS,
			       WAIT_LIMIT_MS));
	t0 = mono_ns();
	atomic_store(&x->go, true);
	for (int p = 0; p < EXCL_PROCS; p++) {
		int status = -1;

		EXPECT_EQ(0, wait_child(pids[p], &status, 4 * WAIT_LIMIT_MS))
			TH_LOG("process %d stuck: word %#jx", p, (uintmax_t)w[0]);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("process %d: status %#x", p, status);
	}
	TH_LOG("%d processes x %d threads x %d ops in %ju ms: %ld locked, %ld busy, %ld timed out",
	       EXCL_PROCS, EXCL_PROC_THREADS, EXCL_PROC_OPS,
	       (uintmax_t)ms_since(t0), atomic_load(&x->acquired),
	       atomic_load(&x->busy), atomic_load(&x->timeouts));
	EXPECT_EXCL(x, EXCL_PROCS * EXCL_PROC_THREADS * EXCL_PROC_OPS);
	EXPECT_WORD(M_STATE(w[0]), 0);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
	munmap(x, sizeof(*x));
}

/*
 * Processes forked before the mutex exists get it only by SCM_RIGHTS,
 * and contend with the creator's threads.
 */
static int scm_excl_child(int sock, struct excl *x, int idx)
{
	gs_mutex *m = NULL;
	int fd, stuck;

	fd = gs_fd_recv(sock);
	if (fd < 0)
		return 10;
	if (gs_mutex_from_fd(&m, fd))
		return 11;
	stuck = excl_run_threads(m, x, EXCL_PROC_THREADS, EXCL_PROC_OPS,
				 (uint64_t)idx + 100, false, 3 * WAIT_LIMIT_MS);
	if (stuck)
		return 12;
	gs_mutex_destroy(m);
	return 0;
}

TEST_F(slow, mutex_excludes_process_given_fd_by_scm_rights)
{
	int sv[2][2];
	pid_t pids[2];
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	struct excl *x;
	uint64_t t0;

	x = shared_alloc(sizeof(*x));
	ASSERT_NE(NULL, x);
	for (int p = 0; p < 2; p++) {
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv[p]));
		pids[p] = fork_child();
		ASSERT_LE(0, pids[p]);
		if (pids[p] == 0) {
			close(sv[p][0]);
			_exit(scm_excl_child(sv[p][1], x, p));
		}
		close(sv[p][1]);
	}
	/* Created after the forks: the children can only get it by message. */
	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	for (int p = 0; p < 2; p++)
		ASSERT_EQ(0, gs_fd_send(sv[p][0], gs_mutex_fd(m)));
	ASSERT_TRUE(wait_count(&x->started, 2 * EXCL_PROC_THREADS,
			       WAIT_LIMIT_MS));
	t0 = mono_ns();
	EXPECT_EQ(0, excl_run_threads(m, x, 2, EXCL_PROC_OPS, 7, true,
				      3 * WAIT_LIMIT_MS))
		TH_LOG("stuck: word %#jx", (uintmax_t)w[0]);
	for (int p = 0; p < 2; p++) {
		int status = -1;

		EXPECT_EQ(0, wait_child(pids[p], &status, 4 * WAIT_LIMIT_MS))
			TH_LOG("process %d stuck: word %#jx", p, (uintmax_t)w[0]);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("process %d: status %#x", p, status);
		close(sv[p][0]);
	}
	TH_LOG("2 processes and the creator, 2 threads each, in %ju ms: %ld locked, %ld busy, %ld timed out",
	       (uintmax_t)ms_since(t0), atomic_load(&x->acquired),
	       atomic_load(&x->busy), atomic_load(&x->timeouts));
	EXPECT_EXCL(x, 3 * 2 * EXCL_PROC_OPS);
	EXPECT_WORD(M_STATE(w[0]), 0);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
	munmap(x, sizeof(*x));
}

/*
 * A process locks, another unlocks: a mutex belongs to nobody (while the
 * thread that locked it lives: see the robust tests).
 */
TEST(mutex_locked_in_one_process_unlocked_in_another)
{
	struct report *rep = report_new();
	gs_mutex *m = NULL;
	int p[2], q[2];
	char c = 0;
	pid_t pid;

	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, pipe(q));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int ret = gs_mutex_lock(m);

		CHILD_CHECK_EXIT(rep, ret == 0, "lock: %d", ret);
		CHILD_CHECK_EXIT(rep, write(p[1], "L", 1) == 1, "write");
		/* Until the parent has unlocked it. */
		CHILD_CHECK_EXIT(rep, read(q[0], &c, 1) == 1, "read");
		_exit(0);
	}
	ASSERT_EQ(1, read(p[0], &c, 1));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	ASSERT_EQ(1, write(q[1], "U", 1));
	EXPECT_CHILD_OK(pid, rep);
	/* The locker's death changes nothing: it held nothing then. */
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	for (int i = 0; i < 2; i++) {
		close(p[i]);
		close(q[i]);
	}
	gs_mutex_destroy(m);
}

/* ================================================================== */
/* 4. Starvation mode                                                   */

struct hammer_ctx {
	gs_mutex *m;
	volatile uint64_t *w;
	uint64_t hold_ns;
	bool barge;		/* spin on trylock rather than lock */
	atomic_bool stop;
	atomic_int inside;
	atomic_int violations;
	atomic_int errors;
	atomic_long rounds;
	atomic_bool saw_starving;
};

static void *hammer_main(void *arg)
{
	struct hammer_ctx *h = arg;

	while (!atomic_load(&h->stop)) {
		if (h->barge) {
			/* Never queues: takes the mutex whenever it is free. */
			if (gs_mutex_trylock(h->m))
				continue;
		} else if (gs_mutex_lock(h->m)) {
			atomic_fetch_add(&h->errors, 1);
			continue;
		}
		if (atomic_fetch_add(&h->inside, 1) != 0)
			atomic_fetch_add(&h->violations, 1);
		if (h->w && (h->w[0] & M_STARVING))
			atomic_store(&h->saw_starving, true);
		spin_ns(h->hold_ns);
		atomic_fetch_sub(&h->inside, 1);
		atomic_fetch_add(&h->rounds, 1);
		if (gs_mutex_unlock(h->m))
			atomic_fetch_add(&h->errors, 1);
	}
	return NULL;
}

#define HAMMERS		3
#define VICTIM_ROUNDS	5
/*
 * How long the victim may wait: Go's guarantee is about 1 ms, the slowest
 * seen under TCG 32 ms (stock kernel, busy host). A watchdog 20 times
 * anything seen (a slow machine cannot reach it): starved in normal mode,
 * the victim would wait until the hammers stop, which they do only then.
 */
#define VICTIM_BOUND_MS	10000

/*
 * A victim thread asks for the mutex while HAMMERS threads lock and
 * unlock it back to back (variant "lock"), or grab it with trylock the
 * moment it is free (variant "barge"): in normal mode the running
 * hammers would take it nearly every time; starvation mode must hand it
 * to the victim soon after it waited GS_MUTEX_STARVATION_NS (and make
 * trylock fail meanwhile).
 */
FIXTURE(hammer) {
	int unused;
};

FIXTURE_VARIANT(hammer) {
	bool barge;
	int hammers;
};

FIXTURE_VARIANT_ADD(hammer, lock) {
	.barge = false,
	.hammers = HAMMERS,
};

FIXTURE_VARIANT_ADD(hammer, barge) {
	.barge = true,
	.hammers = 2,
};

FIXTURE_SETUP(hammer)
{
	ASSERT_EQ(0, gs_init()) TH_LOG("%s", gs_init_error());
}

FIXTURE_TEARDOWN(hammer)
{
}

TEST_F(hammer, starving_waiter_gets_it_in_bounded_time)
{
	pthread_t hammers[HAMMERS];
	struct hammer_ctx h;
	volatile uint64_t *w;
	uint64_t worst = 0;
	long rounds0;

	memset(&h, 0, sizeof(h));
	ASSERT_EQ(0, gs_mutex_create(&h.m));
	w = map_words(gs_mutex_fd(h.m));
	ASSERT_NE(NULL, w);
	h.hold_ns = 50000;
	h.barge = variant->barge;
	for (int i = 0; i < variant->hammers; i++)
		ASSERT_EQ(0, start_thread(&hammers[i], hammer_main, &h));
	sleep_ms(50);
	rounds0 = atomic_load(&h.rounds);

	for (int r = 0; r < VICTIM_ROUNDS; r++) {
		struct locker v;
		uint64_t waited;

		ASSERT_EQ(0, locker_start(&v, h.m, NULL, OP_LOCK, 0, 0));
		if (!wait_flag(&v.done, VICTIM_BOUND_MS)) {
			/* Starved: stop the hammers so that the test ends. */
			atomic_store(&h.stop, true);
			EXPECT_TRUE(wait_flag(&v.done, WAIT_LIMIT_MS));
		}
		EXPECT_EQ(0, v.ret);
		waited = (v.t_end - v.t_start) / 1000;
		if (waited > worst)
			worst = waited;
		EXPECT_EQ(0, atomic_fetch_add(&h.inside, 1));
		spin_ns(h.hold_ns);
		atomic_fetch_sub(&h.inside, 1);
		EXPECT_TRUE(locker_finish(&v));
		EXPECT_EQ(0, v.uret);
		TH_LOG("victim %d waited %ju us", r, (uintmax_t)waited);
		if (HAS_FAILED())
			break;
		sleep_ms(20);
	}
	atomic_store(&h.stop, true);
	for (int i = 0; i < variant->hammers; i++)
		EXPECT_EQ(0, join_ms(hammers[i], WAIT_LIMIT_MS));
	TH_LOG("worst wait %ju us; hammers locked %ld times", (uintmax_t)worst,
	       atomic_load(&h.rounds));
	EXPECT_GT(VICTIM_BOUND_MS * 1000, worst);
	EXPECT_LT(rounds0, atomic_load(&h.rounds));
	EXPECT_EQ(0, atomic_load(&h.violations));
	EXPECT_EQ(0, atomic_load(&h.errors));
	/* Starvation mode ended with the queue. */
	EXPECT_WORD(M_STATE(w[0]), 0);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(h.m);
}

/*
 * The mode bits: under a hammering with waiters that wait over the
 * threshold, STARVING is set at some point (seen inside the critical
 * section); once everyone leaves, the word is back to 0.
 */
TEST_F(slow, mutex_enters_and_leaves_starvation_mode)
{
	pthread_t hammers[4];
	struct hammer_ctx h;
	volatile uint64_t *w;
	uint64_t t0;

	memset(&h, 0, sizeof(h));
	ASSERT_EQ(0, gs_mutex_create(&h.m));
	w = map_words(gs_mutex_fd(h.m));
	ASSERT_NE(NULL, w);
	h.w = w;
	/* Holding for 2 thresholds makes every queued waiter starve. */
	h.hold_ns = 2 * GS_MUTEX_STARVATION_NS;
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, start_thread(&hammers[i], hammer_main, &h));
	t0 = mono_ns();
	while (!atomic_load(&h.saw_starving) && ms_since(t0) < WAIT_LIMIT_MS)
		usleep(1000);
	atomic_store(&h.stop, true);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(0, join_ms(hammers[i], WAIT_LIMIT_MS));
	EXPECT_TRUE(atomic_load(&h.saw_starving))
		TH_LOG("%ld rounds without starvation mode",
		       atomic_load(&h.rounds));
	EXPECT_EQ(0, atomic_load(&h.violations));
	EXPECT_EQ(0, atomic_load(&h.errors));
	EXPECT_WORD(M_STATE(w[0]), 0);
	/* And normal mode works as before. */
	EXPECT_EQ(0, gs_mutex_trylock(h.m));
	EXPECT_EQ(0, gs_mutex_unlock(h.m));
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(h.m);
}

/*
 * Waiters queued one after the other on a held mutex are served in that
 * order when each unlock lets exactly one in (nobody barges).
 */
TEST(mutex_waiters_served_in_queue_order)
{
	struct locker l[4];
	atomic_int order = 0;
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	int fd;

	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_mutex_lock(m));
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(0, locker_start(&l[i], m, NULL, OP_LOCK, 0, 0));
		l[i].order = &order;
		ASSERT_EQ(0, wait_parked(fd, (uint32_t)i + 1));
	}
	EXPECT_EQ(0, gs_mutex_unlock(m));
	for (int i = 0; i < 4; i++) {
		struct gosync_lot_status st = { 0 };
		bool done = wait_flag(&l[i].done, WAIT_LIMIT_MS);

		if (!done)
			lot_status(fd, &st);
		ASSERT_TRUE(done) TH_LOG("waiter %d: %u parked, word %#jx", i,
					 st.parked, (uintmax_t)w[0]);
		EXPECT_EQ(0, l[i].ret);
		EXPECT_EQ(i, l[i].ticket);
		sleep_ms(5);
		for (int j = i + 1; j < 4; j++)
			EXPECT_FALSE(atomic_load(&l[j].done));
		EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
		ASSERT_TRUE(locker_finish(&l[i]));	/* unlocks: the next one */
		EXPECT_EQ(0, l[i].uret);
	}
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
}

/*
 * Deterministic starvation mode. A real-time thread spinning on CPU 1
 * keeps a waiter pinned there from running after the kernel woke it, so
 * the test decides who wins each race:
 *
 *  1. the waiter parks; we unlock (it is woken but cannot run) and take
 *     the mutex again at once (barging, as normal mode allows);
 *  2. the spinner stops: the waiter finds the mutex held after waiting
 *     over the threshold and must switch the mutex to starvation mode;
 *  3. the spinner runs again and we unlock: starvation mode hands the
 *     mutex to the waiter, so nobody else (we) can take it meanwhile.
 */
struct rt_spinner {
	pthread_t thread;
	int cpu;
	atomic_bool stop;
	atomic_bool running;
	atomic_int err;
	char rt_runtime[32];	/* sched_rt_runtime_us to restore, or "" */
};

/*
 * However long the test takes between starting and stopping the spinner
 * (a slow machine), it must keep the CPU: the kernel's RT throttling
 * (950 ms in every second by default) would let the waiter run. It is
 * lifted while a spinner runs, and the spinner itself stops after
 * SPIN_LIMIT_MS whatever happens (a watchdog: it spins for milliseconds;
 * and below the kernel's own lockup watchdogs, 20 s and more).
 */
#define RT_RUNTIME	"/proc/sys/kernel/sched_rt_runtime_us"
#define SPIN_LIMIT_MS	10000

static void rt_runtime_set(const char *val, char *old, size_t oldlen)
{
	ssize_t n;
	int fd = open(RT_RUNTIME, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	if (old) {
		n = read(fd, old, oldlen - 1);
		old[n > 0 ? n : 0] = '\0';
	}
	if (pwrite(fd, val, strlen(val), 0) < 0 && old)
		old[0] = '\0';
	close(fd);
}

static int pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

static void *rt_spinner_main(void *arg)
{
	struct rt_spinner *sp = arg;
	struct sched_param prm = { .sched_priority = 1 };
	uint64_t t0;
	int err;

	err = pin_to_cpu(sp->cpu);
	if (!err)
		err = -pthread_setschedparam(pthread_self(), SCHED_FIFO, &prm);
	atomic_store(&sp->err, err);
	atomic_store(&sp->running, true);
	if (err)
		return NULL;
	/* Bounded, whatever happens to the test. */
	for (t0 = mono_ns(); !atomic_load(&sp->stop) && ms_since(t0) < SPIN_LIMIT_MS;)
		;
	return NULL;
}

static void rt_spinner_stop(struct rt_spinner *sp)
{
	atomic_store(&sp->stop, true);
	join_ms(sp->thread, WAIT_LIMIT_MS);
	if (sp->rt_runtime[0])
		rt_runtime_set(sp->rt_runtime, NULL, 0);
}

/* 0 with the spinner running, or -errno with nothing left behind. */
static int rt_spinner_start(struct rt_spinner *sp, int cpu)
{
	int err;

	memset(sp, 0, sizeof(*sp));
	sp->cpu = cpu;
	rt_runtime_set("-1", sp->rt_runtime, sizeof(sp->rt_runtime));
	if (start_thread(&sp->thread, rt_spinner_main, sp)) {
		if (sp->rt_runtime[0])
			rt_runtime_set(sp->rt_runtime, NULL, 0);
		return -EAGAIN;
	}
	err = wait_flag(&sp->running, WAIT_LIMIT_MS) ? atomic_load(&sp->err) :
						       -ETIMEDOUT;
	if (err)
		rt_spinner_stop(sp);
	return err;
}

struct handoff_shared {
	atomic_bool got;
	int lock_ret;
	int unlock_ret;
};

static int handoff_child(gs_mutex *m, struct handoff_shared *sh)
{
	if (pin_to_cpu(1))
		return 10;
	sh->lock_ret = gs_mutex_lock(m);
	atomic_store(&sh->got, true);
	sh->unlock_ret = gs_mutex_unlock(m);
	return 0;
}

/*
 * Steps 1 and 2 above: returns with the child parked in starvation mode
 * and the mutex held by us; 0, or why not (skip when positive).
 */
static int enter_starvation(struct __test_metadata *_metadata, gs_mutex *m,
			    volatile uint64_t *w, struct handoff_shared *sh,
			    pid_t *pidp)
{
	struct rt_spinner sp;
	int fd = gs_mutex_fd(m), err;
	uint64_t t0;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return 1;
	if (pin_to_cpu(0))
		return 2;
	if (gs_mutex_lock(m))
		return -1;
	*pidp = fork_child();
	if (*pidp < 0)
		return -2;
	if (*pidp == 0)
		_exit(handoff_child(m, sh));
	if (wait_parked(fd, 1))
		return -3;
	sleep_ms(3);		/* it waits past the threshold */
	err = rt_spinner_start(&sp, 1);
	if (err) {
		gs_mutex_unlock(m);
		return err == -EPERM ? 3 : -4;
	}
	/* Woken, it cannot run; we barge in. */
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(0, gs_mutex_trylock(m));
	rt_spinner_stop(&sp);
	/* It runs, loses, starves: starvation mode, parked again. */
	for (t0 = mono_ns(); ms_since(t0) < WAIT_LIMIT_MS; usleep(200)) {
		if ((w[0] & M_STARVING) && wait_parked(fd, 1) == 0)
			break;
	}
	EXPECT_TRUE(w[0] & M_STARVING) TH_LOG("word %#jx", (uintmax_t)w[0]);
	EXPECT_TRUE(w[0] & M_LOCKED);
	EXPECT_EQ(1, M_WAITERS(w[0]));
	EXPECT_FALSE(atomic_load(&sh->got));
	return 0;
}

TEST(mutex_starvation_mode_hands_off_to_the_waiter)
{
	struct handoff_shared *sh = shared_alloc(sizeof(*sh));
	volatile uint64_t *w;
	struct rt_spinner sp;
	gs_mutex *m = NULL;
	int status = -1, ret;
	pid_t pid = -1;

	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	ret = enter_starvation(_metadata, m, w, sh, &pid);
	if (ret > 0)
		SKIP(return, "needs 2 CPUs and SCHED_FIFO (%d)", ret);
	ASSERT_EQ(0, ret);
	/* In starvation mode newcomers do not barge: trylock refuses. */
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));

	ASSERT_EQ(0, rt_spinner_start(&sp, 1));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	/*
	 * Handed off, not released: the kernel made the waiter the owner
	 * (counted out, no hand-off pending) before it even runs.
	 */
	EXPECT_TRUE(w[0] & M_LOCKED) TH_LOG("word %#jx", (uintmax_t)w[0]);
	EXPECT_EQ(0, M_WAITERS(w[0]));
	EXPECT_EQ(0, w[0] & 4) TH_LOG("word %#jx", (uintmax_t)w[0]);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	EXPECT_EQ(-ETIMEDOUT,
		  gs_mutex_lock_until(m, gs_deadline_in(5 * NS_PER_MS), 0));
	EXPECT_FALSE(atomic_load(&sh->got));
	rt_spinner_stop(&sp);

	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("status %#x", status);
	EXPECT_TRUE(atomic_load(&sh->got));
	EXPECT_EQ(0, sh->lock_ret);
	EXPECT_EQ(0, sh->unlock_ret);
	/* The last waiter took it: starvation mode is over. */
	EXPECT_WORD(M_STATE(w[0]), 0);
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
	munmap(sh, sizeof(*sh));
}

/*
 * The waiter chosen for a hand-off is SIGKILLed before it runs again. The
 * kernel made it the owner when it woke it (as Go's semrelease(handoff)
 * does), with its owner handle, so it dies holding the mutex: like any
 * dead holder's, the mutex is freed with OWNERDEAD, no hand-off pending,
 * and the next locker gets -EOWNERDEAD.
 */
TEST(mutex_waiter_killed_after_handoff_owns_it)
{
	struct handoff_shared *sh = shared_alloc(sizeof(*sh));
	volatile uint64_t *w;
	struct rt_spinner sp;
	gs_mutex *m = NULL;
	int status = -1, ret;
	pid_t pid = -1;

	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	ret = enter_starvation(_metadata, m, w, sh, &pid);
	if (ret > 0)
		SKIP(return, "needs 2 CPUs and SCHED_FIFO (%d)", ret);
	ASSERT_EQ(0, ret);

	ASSERT_EQ(0, rt_spinner_start(&sp, 1));
	EXPECT_EQ(0, gs_mutex_unlock(m));	/* hands it to the child */
	ASSERT_EQ(0, kill(pid, SIGKILL));	/* which never runs again */
	rt_spinner_stop(&sp);
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_FALSE(atomic_load(&sh->got));

	/* Held by the dead child, freed by the kernel: nobody counted. */
	EXPECT_EQ(M_OWNERDEAD, w[0] & ~(uint64_t)M_STARVING)
		TH_LOG("word %#jx", (uintmax_t)w[0]);
	EXPECT_EQ(-EOWNERDEAD, gs_mutex_lock_until(m, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
	EXPECT_EQ(0, gs_mutex_consistent(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(0, gs_mutex_lock_until(m, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(0, gs_mutex_trylock(m));
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
	munmap(sh, sizeof(*sh));
}

/* ================================================================== */
/* 5. Signals do not break a lock                                       */

static void signal_case(struct __test_metadata *_metadata, bool restart,
			bool timed)
{
	struct locker l;
	gs_mutex *m = NULL;
	int fd;

	ASSERT_EQ(0, install_handler(SIGUSR1, restart));
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	ASSERT_EQ(0, gs_mutex_lock(m));
	ASSERT_EQ(0, locker_start(&l, m, NULL, timed ? OP_LOCK_UNTIL : OP_LOCK,
				  timed ? mono_ns() + 20 * NS_PER_SEC : GS_FOREVER,
				  0));
	ASSERT_EQ(0, wait_parked(fd, 1));
	for (int i = 1; i <= 5; i++) {
		ASSERT_EQ(0, pthread_kill(l.thread, SIGUSR1));
		ASSERT_EQ(0, wait_signals(i));
		/* The handler ran and the wait went on. */
		ASSERT_EQ(0, wait_parked(fd, 1));
		EXPECT_FALSE(atomic_load(&l.done));
	}
	EXPECT_EQ(5, atomic_load(&sig_count));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	ASSERT_TRUE(wait_flag(&l.done, WAIT_LIMIT_MS));
	EXPECT_EQ(0, l.ret);
	/* It holds the mutex now. */
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	ASSERT_TRUE(locker_finish(&l));
	EXPECT_EQ(0, l.uret);
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
}

TEST(mutex_lock_survives_signals)
{
	signal_case(_metadata, false, false);
}

TEST(mutex_lock_survives_signals_sa_restart)
{
	signal_case(_metadata, true, false);
}

TEST(mutex_lock_until_survives_signals)
{
	signal_case(_metadata, false, true);
}

TEST(mutex_lock_until_survives_signals_sa_restart)
{
	signal_case(_metadata, true, true);
}

/* Signals keep coming: the deadline neither moves nor shortens. */
TEST(mutex_lock_until_keeps_deadline_under_signals)
{
	for (int c = 0; c < 4; c++) {
		const bool restart = c & 1, realtime = c & 2;
		const unsigned int flags = realtime ? GS_CLOCK_REALTIME : 0;
		struct locker l;
		gs_mutex *m = NULL;
		uint64_t deadline;
		int sent = 0;

		/*
		 * Signals every 10 ms until the wait ends (a deadline that
		 * started again with each restart would never come: the
		 * watchdog). A run in which fewer than 3 signals came before
		 * the deadline (a slow machine) proves nothing: again, with a
		 * longer one.
		 */
		for (uint64_t dl_ms = 500;; dl_ms *= 4) {
			ASSERT_EQ(0, install_handler(SIGUSR1, restart));
			ASSERT_EQ(0, gs_mutex_create(&m));
			ASSERT_EQ(0, gs_mutex_lock(m));
			deadline = (realtime ? real_ns() : mono_ns()) + dl_ms * NS_PER_MS;
			ASSERT_EQ(0, locker_start(&l, m, NULL, OP_LOCK_UNTIL, deadline,
						  flags));
			/* Parked, or (on a very slow machine) already timed out. */
			for (uint64_t t0 = mono_ns(); !atomic_load(&l.done) &&
			     ms_since(t0) < WAIT_LIMIT_MS; usleep(200)) {
				struct gosync_lot_status st;

				ASSERT_EQ(0, lot_status(gs_mutex_fd(m), &st));
				if (st.parked == 1)
					break;
			}
			for (uint64_t t0 = mono_ns(); !atomic_load(&l.done) &&
			     ms_since(t0) < dl_ms + WAIT_LIMIT_MS; usleep(10000)) {
				pthread_kill(l.thread, SIGUSR1);
				sent++;
			}
			ASSERT_TRUE(wait_flag(&l.done, WAIT_LIMIT_MS));
			EXPECT_EQ(-ETIMEDOUT, l.ret) TH_LOG("restart %d realtime %d",
							     restart, realtime);
			EXPECT_LE(deadline, l.t_end);
			EXPECT_GT(deadline + WAIT_LIMIT_MS * NS_PER_MS, l.t_end);
			ASSERT_TRUE(locker_finish(&l));
			EXPECT_EQ(0, gs_mutex_unlock(m));
			EXPECT_EQ(0, gs_mutex_trylock(m));
			EXPECT_EQ(0, gs_mutex_unlock(m));
			gs_mutex_destroy(m);
			if (atomic_load(&sig_count) >= 3 || dl_ms >= WAIT_LIMIT_MS)
				break;
			TH_LOG("%d signals in %ju ms: again with a longer deadline",
			       atomic_load(&sig_count), (uintmax_t)dl_ms);
		}
		EXPECT_LE(3, atomic_load(&sig_count)) TH_LOG("%d sent", sent);
	}
}

/* ================================================================== */
/* 6. Killed processes, destroyed handles                               */

/*
 * A waiter SIGKILLed while parked leaves its count in the word (nothing
 * tracks it), but the mutex goes on working: the unlock works, a live
 * waiter behind it is woken, others can lock.
 */
TEST(mutex_waiter_killed_leaves_it_usable)
{
	struct report *rep = report_new();
	struct gosync_lot_status st;
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	struct locker live;
	int status = 0, fd;
	pid_t pid;

	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_mutex_lock(m));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_mutex_lock(m);
		_exit(3);	/* must not get here */
	}
	ASSERT_EQ(0, wait_parked(fd, 1));
	/* A live waiter queued behind the one to be killed. */
	ASSERT_EQ(0, locker_start(&live, m, NULL, OP_LOCK, 0, 0));
	ASSERT_EQ(0, wait_parked(fd, 2));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(0, wait_parked(fd, 1));
	/* The dead waiter's count is what it is (nothing tracks it). */
	TH_LOG("word after the kill: %#jx", (uintmax_t)w[0]);

	EXPECT_EQ(0, gs_mutex_unlock(m));
	ASSERT_TRUE(wait_flag(&live.done, WAIT_LIMIT_MS));
	EXPECT_EQ(0, live.ret);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));
	ASSERT_TRUE(locker_finish(&live));
	EXPECT_EQ(0, live.uret);

	/* Lock, trylock, lock_until, by us and by another process. */
	EXPECT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(-ETIMEDOUT, gs_mutex_lock_until(m, gs_deadline_in(10 * NS_PER_MS), 0));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		for (int i = 0; i < 100; i++) {
			int ret = gs_mutex_lock_until(m, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0);

			CHILD_CHECK_EXIT(rep, ret == 0, "lock %d: %d", i, ret);
			ret = gs_mutex_unlock(m);
			CHILD_CHECK_EXIT(rep, ret == 0, "unlock %d: %d", i, ret);
		}
		_exit(0);
	}
	EXPECT_CHILD_OK(pid, rep);
	EXPECT_FALSE(w[0] & M_LOCKED);
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(0, st.parked);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

/* Waiters killed in bulk while others contend: nothing breaks. */
TEST_F(slow, mutex_waiters_killed_during_contention)
{
	struct gosync_lot_status st;
	volatile uint64_t *w;
	pid_t pids[6];
	gs_mutex *m = NULL;
	struct excl *x;
	int fd, ret;

	x = shared_alloc(sizeof(*x));
	ASSERT_NE(NULL, x);
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_mutex_lock(m));
	for (int p = 0; p < 6; p++) {
		pids[p] = fork_child();
		ASSERT_LE(0, pids[p]);
		if (pids[p] == 0)
			_exit(excl_run_threads(m, x, 1, 1000000, (uint64_t)p + 50,
					       false, 3 * WAIT_LIMIT_MS));
	}
	ASSERT_TRUE(wait_count(&x->started, 6, WAIT_LIMIT_MS));
	atomic_store(&x->go, true);
	ASSERT_EQ(0, wait_parked(fd, 6));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	sleep_ms(200);
	/* One got it at least, however slow the machine. */
	for (uint64_t t0 = mono_ns(); !atomic_load(&x->acquired) &&
	     ms_since(t0) < WAIT_LIMIT_MS;)
		usleep(1000);
	/* Kill them one by one while the others go on. */
	for (int p = 0; p < 6; p++) {
		int status = 0;

		ASSERT_EQ(0, kill(pids[p], SIGKILL));
		ASSERT_EQ(pids[p], waitpid(pids[p], &status, 0));
		EXPECT_TRUE(WIFSIGNALED(status));
		sleep_ms(20);
	}
	/*
	 * A process killed holding it hands the next taker -EOWNERDEAD: the
	 * workers make it consistent and go on, so nothing is lost.
	 */
	EXPECT_EQ(0, atomic_load(&x->violations));
	EXPECT_EQ(0, atomic_load(&x->errors))
		TH_LOG("first error %d in op %d", atomic_load(&x->first_error),
		       atomic_load(&x->first_error_op));
	EXPECT_GE(6, atomic_load(&x->recovered));
	EXPECT_LT(0, atomic_load(&x->acquired));
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(0, st.parked);
	/* The last one killed may have held it. */
	ret = gs_mutex_lock_until(m, limit(), 0);
	if (ret == -EOWNERDEAD) {
		TH_LOG("the last one killed held it: recovered");
		EXPECT_EQ(0, gs_mutex_consistent(m));
	} else {
		EXPECT_EQ(0, ret) TH_LOG("word %#jx", (uintmax_t)w[0]);
	}
	TH_LOG("%d recoveries, %ld acquisitions", atomic_load(&x->recovered),
	       atomic_load(&x->acquired));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(0, gs_mutex_lock_until(m, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0));
		ASSERT_EQ(0, gs_mutex_unlock(m));
	}
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
	munmap(x, sizeof(*x));
}

/*
 * Handles are independent: destroying one (unmap and close) while a
 * thread waits through another, or while another process holds and
 * waits, leaves the object working for them.
 */
TEST(mutex_destroy_one_handle_while_others_use_it)
{
	struct report *rep = report_new();
	gs_mutex *a = NULL, *b = NULL;
	struct locker l;
	int fdb;
	pid_t pid;

	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_mutex_create(&a));
	fdb = dup(gs_mutex_fd(a));
	ASSERT_LE(0, fdb);
	ASSERT_EQ(0, gs_mutex_from_fd(&b, fdb));

	/* A thread waits through b; a is unlocked and destroyed. */
	ASSERT_EQ(0, gs_mutex_lock(a));
	ASSERT_EQ(0, locker_start(&l, b, NULL, OP_LOCK, 0, 0));
	ASSERT_EQ(0, wait_parked(fdb, 1));
	EXPECT_EQ(0, gs_mutex_unlock(a));
	gs_mutex_destroy(a);
	ASSERT_TRUE(wait_flag(&l.done, WAIT_LIMIT_MS));
	EXPECT_EQ(0, l.ret);
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(b));
	ASSERT_TRUE(locker_finish(&l));
	EXPECT_EQ(0, l.uret);

	/* A child (by fork) waits; the parent's last handle goes away. */
	ASSERT_EQ(0, gs_mutex_lock(b));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int ret = gs_mutex_lock_until(b, gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS), 0);

		CHILD_CHECK_EXIT(rep, ret == 0, "lock: %d", ret);
		CHILD_CHECK_EXIT(rep, gs_mutex_trylock(b) == -EBUSY, "trylock");
		ret = gs_mutex_unlock(b);
		CHILD_CHECK_EXIT(rep, ret == 0, "unlock: %d", ret);
		ret = gs_mutex_unlock(b);
		CHILD_CHECK_EXIT(rep, ret == -EPERM, "second unlock: %d", ret);
		ret = gs_mutex_trylock(b);
		CHILD_CHECK_EXIT(rep, ret == 0, "trylock: %d", ret);
		CHILD_CHECK_EXIT(rep, gs_mutex_unlock(b) == 0, "unlock");
		_exit(0);
	}
	ASSERT_EQ(0, wait_parked(fdb, 1));
	EXPECT_EQ(0, gs_mutex_unlock(b));
	gs_mutex_destroy(b);
	EXPECT_CHILD_OK(pid, rep);
}

/* ================================================================== */
/* 7. RWMutex                                                           */

#define EXPECT_RW(w, word0, readers) do {				\
	EXPECT_WORD(M_STATE((w)[0]), (word0));					\
	EXPECT_EQ((int64_t)(readers), (int64_t)(w)[RW_READERS_WORD]);	\
} while (0)

TEST(rwmutex_states_and_errors)
{
	struct gosync_lot_status st0, st;
	gs_rwmutex *rw = NULL;
	volatile uint64_t *w;
	int fd;

	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	fd = gs_rwmutex_fd(rw);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, lot_status(fd, &st0));
	EXPECT_RW(w, 0, 0);

	/* Unlocked: runlock and unlock are refused. */
	EXPECT_EQ(-EPERM, gs_rwmutex_runlock(rw));
	EXPECT_EQ(-EPERM, gs_rwmutex_unlock(rw));
	EXPECT_RW(w, 0, 0);

	/* Read-locked, twice. */
	EXPECT_EQ(0, gs_rwmutex_rlock(rw));
	EXPECT_RW(w, 0, 1);
	EXPECT_EQ(0, gs_rwmutex_tryrlock(rw));
	EXPECT_RW(w, 0, 2);
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));
	EXPECT_RW(w, 0, 2);
	EXPECT_EQ(-EPERM, gs_rwmutex_unlock(rw));
	EXPECT_RW(w, 0, 2);
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	EXPECT_RW(w, 0, 1);
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));
	EXPECT_EQ(-EPERM, gs_rwmutex_unlock(rw));
	EXPECT_RW(w, 0, 1);
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	EXPECT_RW(w, 0, 0);
	EXPECT_EQ(-EPERM, gs_rwmutex_runlock(rw));
	EXPECT_RW(w, 0, 0);

	/* Write-locked. */
	EXPECT_EQ(0, gs_rwmutex_lock(rw));
	EXPECT_RW(w, M_LOCKED, -RW_MAX_READERS);
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));
	EXPECT_EQ(-EPERM, gs_rwmutex_runlock(rw));
	EXPECT_RW(w, M_LOCKED, -RW_MAX_READERS);
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	EXPECT_RW(w, 0, 0);
	EXPECT_EQ(-EPERM, gs_rwmutex_unlock(rw));
	EXPECT_RW(w, 0, 0);

	/* trylock takes it like lock does. */
	EXPECT_EQ(0, gs_rwmutex_trylock(rw));
	EXPECT_RW(w, M_LOCKED, -RW_MAX_READERS);
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	EXPECT_RW(w, 0, 0);
	EXPECT_EQ(-EPERM, gs_rwmutex_unlock(rw));
	EXPECT_EQ(-EPERM, gs_rwmutex_runlock(rw));

	/* Still working; none of it entered the kernel. */
	EXPECT_EQ(0, gs_rwmutex_rlock(rw));
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	EXPECT_EQ(0, gs_rwmutex_lock(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	EXPECT_RW(w, 0, 0);
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(st0.parks, st.parks);
	EXPECT_EQ(st0.unparks, st.unparks);
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
}

/* Readers really are inside together, threads and processes. */
struct overlap {
	atomic_int inside;
	atomic_int max_inside;
	atomic_int entered;
	atomic_int errors;
	atomic_int writers_inside;
};

static void overlap_reader(gs_rwmutex *rw, struct overlap *o, int want)
{
	int now, max;

	if (gs_rwmutex_rlock(rw)) {
		atomic_fetch_add(&o->errors, 1);
		return;
	}
	now = atomic_fetch_add(&o->inside, 1) + 1;
	atomic_fetch_add(&o->entered, 1);
	max = atomic_load(&o->max_inside);
	while (now > max && !atomic_compare_exchange_weak(&o->max_inside, &max, now))
		;
	/* Stay until everybody is in (bounded). */
	wait_count(&o->entered, want, WAIT_LIMIT_MS);
	atomic_fetch_sub(&o->inside, 1);
	if (gs_rwmutex_runlock(rw))
		atomic_fetch_add(&o->errors, 1);
}

struct overlap_arg {
	gs_rwmutex *rw;
	struct overlap *o;
	int want;
	pthread_t thread;
};

static void *overlap_thread(void *arg)
{
	struct overlap_arg *a = arg;

	overlap_reader(a->rw, a->o, a->want);
	return NULL;
}

TEST(rwmutex_readers_overlap)
{
	struct overlap_arg args[6];
	gs_rwmutex *rw = NULL;
	struct overlap *o;
	volatile uint64_t *w;
	pid_t pids[3];

	o = shared_alloc(sizeof(*o));
	ASSERT_NE(NULL, o);
	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	w = map_words(gs_rwmutex_fd(rw));
	ASSERT_NE(NULL, w);
	for (int p = 0; p < 3; p++) {
		pids[p] = fork_child();
		ASSERT_LE(0, pids[p]);
		if (pids[p] == 0) {
			overlap_reader(rw, o, 9);
			_exit(0);
		}
	}
	for (int i = 0; i < 6; i++) {
		args[i].rw = rw;
		args[i].o = o;
		args[i].want = 9;
		ASSERT_EQ(0, start_thread(&args[i].thread, overlap_thread,
					  &args[i]));
	}
	for (int i = 0; i < 6; i++)
		EXPECT_EQ(0, join_ms(args[i].thread, 2 * WAIT_LIMIT_MS));
	for (int p = 0; p < 3; p++) {
		int status = -1;

		EXPECT_EQ(0, wait_child(pids[p], &status, 2 * WAIT_LIMIT_MS));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	EXPECT_EQ(9, atomic_load(&o->max_inside));
	EXPECT_EQ(9, atomic_load(&o->entered));
	EXPECT_EQ(0, atomic_load(&o->errors));
	EXPECT_RW(w, 0, 0);
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
	munmap(o, sizeof(*o));
}

/* Readers and writers never inside together; writes counted exactly. */
struct rwx {
	volatile uint64_t counter;	/* written by writers only */
	atomic_int readers;
	atomic_int writers;
	atomic_int violations;
	atomic_int errors;
	atomic_long reads;
	atomic_long writes;
	atomic_long busy;
	atomic_int max_readers;
	atomic_int started;
	atomic_bool go;
};

struct rwx_worker {
	gs_rwmutex *rw;
	struct rwx *x;
	int ops;
	uint64_t seed;
	pthread_t thread;
};

static void *rwx_worker_main(void *arg)
{
	struct rwx_worker *wk = arg;
	struct rwx *x = wk->x;
	uint64_t seed = wk->seed | 1;

	atomic_fetch_add(&x->started, 1);
	while (!atomic_load(&x->go))
		sched_yield();
	for (int i = 0; i < wk->ops; i++) {
		uint64_t r = rnd64(&seed);
		int op = (int)(r % 8), ret;

		if (op < 5) {	/* read */
			int n, max;
			uint64_t v;

			ret = op == 4 ? gs_rwmutex_tryrlock(wk->rw) :
					gs_rwmutex_rlock(wk->rw);
			if (ret == -EBUSY && op == 4) {
				atomic_fetch_add(&x->busy, 1);
				continue;
			}
			if (ret) {
				atomic_fetch_add(&x->errors, 1);
				continue;
			}
			n = atomic_fetch_add(&x->readers, 1) + 1;
			if (atomic_load(&x->writers))
				atomic_fetch_add(&x->violations, 1);
			max = atomic_load(&x->max_readers);
			while (n > max &&
			       !atomic_compare_exchange_weak(&x->max_readers, &max, n))
				;
			v = x->counter;
			for (volatile unsigned int k = 0; k < (r >> 40) % 300; k++)
				;
			if (v != x->counter)	/* no writer in between */
				atomic_fetch_add(&x->violations, 1);
			atomic_fetch_sub(&x->readers, 1);
			atomic_fetch_add(&x->reads, 1);
			if (gs_rwmutex_runlock(wk->rw))
				atomic_fetch_add(&x->errors, 1);
		} else {	/* write */
			uint64_t v;

			ret = op == 7 ? gs_rwmutex_trylock(wk->rw) :
					gs_rwmutex_lock(wk->rw);
			if (ret == -EBUSY && op == 7) {
				atomic_fetch_add(&x->busy, 1);
				continue;
			}
			if (ret) {
				atomic_fetch_add(&x->errors, 1);
				continue;
			}
			if (atomic_fetch_add(&x->writers, 1) != 0 ||
			    atomic_load(&x->readers))
				atomic_fetch_add(&x->violations, 1);
			v = x->counter;
			for (volatile unsigned int k = 0; k < (r >> 40) % 200; k++)
				;
			x->counter = v + 1;
			if (atomic_load(&x->readers))
				atomic_fetch_add(&x->violations, 1);
			atomic_fetch_sub(&x->writers, 1);
			atomic_fetch_add(&x->writes, 1);
			if (gs_rwmutex_unlock(wk->rw))
				atomic_fetch_add(&x->errors, 1);
		}
		if ((r >> 20) % 16 == 0)
			sched_yield();
	}
	return NULL;
}

static int rwx_run_threads(gs_rwmutex *rw, struct rwx *x, int n, int ops,
			   uint64_t seed, bool set_go)
{
	struct rwx_worker wk[16];
	int stuck = 0;

	for (int i = 0; i < n; i++) {
		wk[i].rw = rw;
		wk[i].x = x;
		wk[i].ops = ops;
		wk[i].seed = seed * 7919 + (uint64_t)i * 0x2545f4914f6cdd1dULL;
		if (start_thread(&wk[i].thread, rwx_worker_main, &wk[i]))
			return n - i;
	}
	if (set_go)
		atomic_store(&x->go, true);
	for (int i = 0; i < n; i++)
		stuck += join_ms(wk[i].thread, 3 * WAIT_LIMIT_MS) != 0;
	return stuck;
}

#define RWX_THREADS	4
#define RWX_PROCS	2
#define RWX_OPS		3000

TEST_F(slow, rwmutex_readers_and_writers_exclude)
{
	pid_t pids[RWX_PROCS];
	gs_rwmutex *rw = NULL;
	volatile uint64_t *w;
	struct rwx *x;
	uint64_t t0;
	long total = (long)(RWX_PROCS + 1) * RWX_THREADS * RWX_OPS;

	x = shared_alloc(sizeof(*x));
	ASSERT_NE(NULL, x);
	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	w = map_words(gs_rwmutex_fd(rw));
	ASSERT_NE(NULL, w);
	for (int p = 0; p < RWX_PROCS; p++) {
		pids[p] = fork_child();
		ASSERT_LE(0, pids[p]);
		if (pids[p] == 0)
			_exit(rwx_run_threads(rw, x, RWX_THREADS, RWX_OPS,
					      (uint64_t)p + 1, false));
	}
	ASSERT_TRUE(wait_count(&x->started, RWX_PROCS * RWX_THREADS,
			       WAIT_LIMIT_MS));
	t0 = mono_ns();
	EXPECT_EQ(0, rwx_run_threads(rw, x, RWX_THREADS, RWX_OPS, 99, true))
		TH_LOG("stuck: words %#jx %#jx", (uintmax_t)w[0],
		       (uintmax_t)w[RW_READERS_WORD]);
	for (int p = 0; p < RWX_PROCS; p++) {
		int status = -1;

		EXPECT_EQ(0, wait_child(pids[p], &status, 4 * WAIT_LIMIT_MS));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("process %d: status %#x", p, status);
	}
	TH_LOG("%ld ops in %ju ms: %ld reads (at most %d together), %ld writes, %ld busy",
	       total, (uintmax_t)ms_since(t0), atomic_load(&x->reads),
	       atomic_load(&x->max_readers), atomic_load(&x->writes),
	       atomic_load(&x->busy));
	EXPECT_EQ(0, atomic_load(&x->violations));
	EXPECT_EQ(0, atomic_load(&x->errors));
	EXPECT_EQ((uint64_t)atomic_load(&x->writes), x->counter);
	EXPECT_EQ(total, atomic_load(&x->reads) + atomic_load(&x->writes) +
			 atomic_load(&x->busy));
	EXPECT_LT(0, atomic_load(&x->writes));
	EXPECT_LT(0, atomic_load(&x->reads));
	EXPECT_RW(w, 0, 0);
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
	munmap(x, sizeof(*x));
}

/*
 * A waiting writer blocks new readers: with a reader inside, a writer
 * queues; a reader arriving after it waits too (and tryrlock fails);
 * when the old reader leaves, the writer gets in first, then the reader.
 */
TEST(rwmutex_waiting_writer_blocks_new_readers)
{
	struct locker writer, reader;
	atomic_int order = 0;
	gs_rwmutex *rw = NULL;
	volatile uint64_t *w;
	int fd;

	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	fd = gs_rwmutex_fd(rw);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_rwmutex_rlock(rw));
	ASSERT_EQ(0, locker_start(&writer, NULL, rw, OP_WLOCK, 0, 0));
	writer.order = &order;
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_FALSE(atomic_load(&writer.done));
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));

	ASSERT_EQ(0, locker_start(&reader, NULL, rw, OP_RLOCK, 0, 0));
	reader.order = &order;
	ASSERT_EQ(0, wait_parked(fd, 2));
	sleep_ms(50);
	EXPECT_FALSE(atomic_load(&reader.done));
	EXPECT_FALSE(atomic_load(&writer.done));

	/* The old reader leaves: the writer gets in, the reader still waits. */
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	ASSERT_TRUE(wait_flag(&writer.done, WAIT_LIMIT_MS));
	EXPECT_EQ(0, writer.ret);
	EXPECT_EQ(0, writer.ticket);
	sleep_ms(50);
	EXPECT_FALSE(atomic_load(&reader.done));
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));

	/* The writer leaves: the reader gets in. */
	ASSERT_TRUE(locker_finish(&writer));
	EXPECT_EQ(0, writer.uret);
	ASSERT_TRUE(wait_flag(&reader.done, WAIT_LIMIT_MS));
	EXPECT_EQ(0, reader.ret);
	EXPECT_EQ(1, reader.ticket);
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));
	EXPECT_EQ(0, gs_rwmutex_tryrlock(rw));	/* readers share */
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	ASSERT_TRUE(locker_finish(&reader));
	EXPECT_EQ(0, reader.uret);
	EXPECT_RW(w, 0, 0);
	EXPECT_EQ(0, wait_parked(fd, 0));
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
}

/*
 * A writer is not starved by readers that keep overlapping: it gets in
 * within a bounded time, and while it waits no reader that arrived after
 * it gets in. A reader knows a writer waits or holds when the reader
 * count in the page is negative; the writer bumps @wstate when its lock
 * returns and when its unlock has returned (odd: in between). A reader that saw no writer inside
 * (@wstate even) but one announced must not get in before that writer
 * entered, so @wstate must have moved by the time its rlock returns.
 */
struct stream {
	gs_rwmutex *rw;
	volatile uint64_t *w;
	atomic_bool stop;
	atomic_ulong wstate;
	atomic_long reads;
	atomic_long late_checked;	/* readers that arrived after a writer */
	atomic_int late_readers;	/* ... and got in before it */
	atomic_int inside;
	atomic_int errors;
};

static void *stream_reader(void *arg)
{
	struct stream *s = arg;

	while (!atomic_load(&s->stop)) {
		unsigned long ws = atomic_load(&s->wstate);
		bool announced = (int64_t)s->w[RW_READERS_WORD] < 0;

		if (gs_rwmutex_rlock(s->rw)) {
			atomic_fetch_add(&s->errors, 1);
			continue;
		}
		if (!(ws & 1) && announced) {
			atomic_fetch_add(&s->late_checked, 1);
			if (atomic_load(&s->wstate) == ws)
				atomic_fetch_add(&s->late_readers, 1);
		}
		atomic_fetch_add(&s->inside, 1);
		spin_ns(300000);
		atomic_fetch_sub(&s->inside, 1);
		atomic_fetch_add(&s->reads, 1);
		if (gs_rwmutex_runlock(s->rw))
			atomic_fetch_add(&s->errors, 1);
	}
	return NULL;
}

struct stream_writer {
	struct stream *s;
	pthread_t thread;
	atomic_bool done;
	int ret, uret, inside_seen;
	uint64_t waited;
};

static void *stream_writer_main(void *arg)
{
	struct stream_writer *wr = arg;
	struct stream *s = wr->s;
	uint64_t t0 = mono_ns();

	wr->ret = gs_rwmutex_lock(s->rw);
	wr->waited = mono_ns() - t0;
	if (wr->ret == 0) {
		atomic_fetch_add(&s->wstate, 1);
		wr->inside_seen = atomic_load(&s->inside);
		spin_ns(1000000);
		wr->inside_seen += atomic_load(&s->inside);
		wr->uret = gs_rwmutex_unlock(s->rw);
		/* Even again only once the count is positive again. */
		atomic_fetch_add(&s->wstate, 1);
	}
	atomic_store(&wr->done, true);
	return NULL;
}

#define STREAM_READERS	4

TEST_F(slow, rwmutex_writer_not_starved_by_readers)
{
	pthread_t readers[STREAM_READERS];
	struct stream s;
	uint64_t worst = 0;

	memset(&s, 0, sizeof(s));
	ASSERT_EQ(0, gs_rwmutex_create(&s.rw));
	s.w = map_words(gs_rwmutex_fd(s.rw));
	ASSERT_NE(NULL, s.w);
	for (int i = 0; i < STREAM_READERS; i++)
		ASSERT_EQ(0, start_thread(&readers[i], stream_reader, &s));
	sleep_ms(50);
	for (int r = 0; r < 8; r++) {
		struct stream_writer wr;

		memset(&wr, 0, sizeof(wr));
		wr.s = &s;
		ASSERT_EQ(0, start_thread(&wr.thread, stream_writer_main, &wr));
		if (!wait_flag(&wr.done, WAIT_LIMIT_MS)) {
			/* Starved: stop the readers so that the test ends. */
			atomic_store(&s.stop, true);
			EXPECT_TRUE(wait_flag(&wr.done, WAIT_LIMIT_MS));
		}
		EXPECT_EQ(0, join_ms(wr.thread, WAIT_LIMIT_MS));
		EXPECT_EQ(0, wr.ret);
		EXPECT_EQ(0, wr.uret);
		EXPECT_EQ(0, wr.inside_seen);
		if (wr.waited > worst)
			worst = wr.waited;
		sleep_ms(20);
		if (HAS_FAILED())
			break;
	}
	/* Enough reads, however slow the machine. */
	for (uint64_t t0 = mono_ns(); atomic_load(&s.reads) <= 10 &&
	     ms_since(t0) < WAIT_LIMIT_MS;)
		usleep(1000);
	atomic_store(&s.stop, true);
	for (int i = 0; i < STREAM_READERS; i++)
		EXPECT_EQ(0, join_ms(readers[i], WAIT_LIMIT_MS));
	TH_LOG("worst writer wait %ju us, %ld reads, %ld arrived behind a writer",
	       (uintmax_t)(worst / 1000), atomic_load(&s.reads),
	       atomic_load(&s.late_checked));
	EXPECT_GT(WAIT_LIMIT_MS * NS_PER_MS, worst);	/* a hang */
	EXPECT_EQ(0, atomic_load(&s.late_readers));
	EXPECT_EQ(0, atomic_load(&s.errors));
	EXPECT_LT(10, atomic_load(&s.reads));
	EXPECT_RW(s.w, 0, 0);
	munmap((void *)s.w, PAGE_BYTES);
	gs_rwmutex_destroy(s.rw);
}

/*
 * Readers queued behind a writer all get in when it unlocks, together,
 * before the next writer (which queued after them).
 */
TEST(rwmutex_queued_readers_get_in_before_next_writer)
{
	struct locker readers[5], writer2;
	atomic_int order = 0;
	gs_rwmutex *rw = NULL;
	volatile uint64_t *w;
	int fd;

	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	fd = gs_rwmutex_fd(rw);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_rwmutex_lock(rw));
	for (int i = 0; i < 5; i++) {
		ASSERT_EQ(0, locker_start(&readers[i], NULL, rw, OP_RLOCK, 0, 0));
		readers[i].order = &order;
	}
	ASSERT_EQ(0, wait_parked(fd, 5));
	EXPECT_EQ(5 - RW_MAX_READERS, (int64_t)w[RW_READERS_WORD]);
	ASSERT_EQ(0, locker_start(&writer2, NULL, rw, OP_WLOCK, 0, 0));
	writer2.order = &order;
	ASSERT_EQ(0, wait_parked(fd, 6));
	sleep_ms(20);
	for (int i = 0; i < 5; i++)
		EXPECT_FALSE(atomic_load(&readers[i].done));

	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	/* All five are in at once, and the second writer is not. */
	for (int i = 0; i < 5; i++) {
		ASSERT_TRUE(wait_flag(&readers[i].done, WAIT_LIMIT_MS));
		EXPECT_EQ(0, readers[i].ret);
		EXPECT_GT(5, readers[i].ticket);
	}
	sleep_ms(50);
	EXPECT_FALSE(atomic_load(&writer2.done));
	/* It waits for the five to leave. */
	for (int i = 0; i < 4; i++)
		ASSERT_TRUE(locker_finish(&readers[i]));
	sleep_ms(30);
	EXPECT_FALSE(atomic_load(&writer2.done));
	ASSERT_TRUE(locker_finish(&readers[4]));
	ASSERT_TRUE(wait_flag(&writer2.done, WAIT_LIMIT_MS));
	EXPECT_EQ(0, writer2.ret);
	EXPECT_EQ(5, writer2.ticket);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(0, readers[i].uret);
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));
	ASSERT_TRUE(locker_finish(&writer2));
	EXPECT_EQ(0, writer2.uret);
	EXPECT_RW(w, 0, 0);
	EXPECT_EQ(0, wait_parked(fd, 0));
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
}

/* An RWMutex shared by fork: a writer in the child waits for our reader. */
TEST(rwmutex_shared_with_child_process)
{
	struct report *rep = report_new();
	gs_rwmutex *rw = NULL;
	volatile uint64_t *w;
	pid_t pid;

	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	w = map_words(gs_rwmutex_fd(rw));
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_rwmutex_rlock(rw));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int ret = gs_rwmutex_lock(rw);

		CHILD_CHECK_EXIT(rep, ret == 0, "lock: %d", ret);
		CHILD_CHECK_EXIT(rep, w[2] == 0, "departing %ju", (uintmax_t)w[2]);
		sleep_ms(20);
		ret = gs_rwmutex_unlock(rw);
		CHILD_CHECK_EXIT(rep, ret == 0, "unlock: %d", ret);
		_exit(0);
	}
	ASSERT_EQ(0, wait_parked(gs_rwmutex_fd(rw), 1));
	EXPECT_EQ(1 - RW_MAX_READERS, (int64_t)w[RW_READERS_WORD]);
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	EXPECT_CHILD_OK(pid, rep);
	EXPECT_RW(w, 0, 0);
	EXPECT_EQ(0, gs_rwmutex_trylock(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
}

/* ================================================================== */
/* 8. Garbage in the shared page                                        */

struct scribble {
	gs_mutex *m;
	volatile uint64_t *w;
	atomic_bool stop;
	atomic_int bad;
	atomic_int bad_op;
	atomic_int bad_ret;
	atomic_long ops;
};

static void scribble_bad(struct scribble *s, int op, int ret)
{
	if (atomic_fetch_add(&s->bad, 1) == 0) {
		atomic_store(&s->bad_op, op);
		atomic_store(&s->bad_ret, ret);
	}
}

static void *scribbler_main(void *arg)
{
	struct scribble *s = arg;
	uint64_t seed = 0x1234567887654321ULL;

	while (!atomic_load(&s->stop)) {
		uint64_t v = rnd64(&seed);

		switch (v % 4) {
		case 0:		/* any bits */
			break;
		case 1:		/* plausible flags, a small waiter count */
			v = (v & 7) | (((v >> 3) % 5) << M_WAITER_SHIFT);
			break;
		case 2:		/* flags only */
			v &= 7;
			break;
		default:	/* a waiter count near overflow */
			v = (v & 7) | ~0ULL << M_WAITER_SHIFT;
			break;
		}
		s->w[0] = v;
		if ((v >> 8) % 4 == 0)
			usleep(50);
	}
	return NULL;
}

static void *scribble_user(void *arg)
{
	struct scribble *s = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed | 1;

	while (!atomic_load(&s->stop)) {
		int op = (int)(rnd64(&seed) % 4), ret;

		switch (op) {
		case 0:
			ret = gs_mutex_lock_until(s->m, gs_deadline_in(2 * NS_PER_MS), 0);
			if (ret != 0 && ret != -ETIMEDOUT && !robust_ret(ret))
				scribble_bad(s, op, ret);
			break;
		case 1:
			ret = gs_mutex_lock_until(s->m, real_ns() + NS_PER_MS,
						  GS_CLOCK_REALTIME);
			if (ret != 0 && ret != -ETIMEDOUT && !robust_ret(ret))
				scribble_bad(s, op, ret);
			break;
		case 2:
			ret = gs_mutex_trylock(s->m);
			if (ret != 0 && ret != -EBUSY && !robust_ret(ret))
				scribble_bad(s, op, ret);
			break;
		default:
			ret = gs_mutex_unlock(s->m);
			if (ret != 0 && ret != -EPERM)
				scribble_bad(s, op, ret);
			break;
		}
		atomic_fetch_add(&s->ops, 1);
	}
	return NULL;
}

TEST_F(slow, mutex_scribbled_page_keeps_kernel_sane)
{
	pthread_t scribbler, users[4];
	struct gosync_lot_status st;
	struct scribble s;
	int joined = 0;

	memset(&s, 0, sizeof(s));
	ASSERT_EQ(0, gs_mutex_create(&s.m));
	s.w = map_words(gs_mutex_fd(s.m));
	ASSERT_NE(NULL, s.w);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, start_thread(&users[i], scribble_user, &s));
	ASSERT_EQ(0, start_thread(&scribbler, scribbler_main, &s));
	/* 1.5 s at least, and enough operations however slow the machine. */
	sleep_ms(1500);
	for (uint64_t t0 = mono_ns(); atomic_load(&s.ops) <= 100 &&
	     ms_since(t0) < WAIT_LIMIT_MS;)
		usleep(2000);
	atomic_store(&s.stop, true);
	EXPECT_EQ(0, join_ms(scribbler, WAIT_LIMIT_MS));
	for (int i = 0; i < 4; i++)
		joined += join_ms(users[i], WAIT_LIMIT_MS) == 0;
	/* Every call ends: their deadlines bound them whatever the word. */
	EXPECT_EQ(4, joined);
	TH_LOG("%ld operations", atomic_load(&s.ops));
	EXPECT_EQ(0, atomic_load(&s.bad))
		TH_LOG("op %d returned %d (%s)", atomic_load(&s.bad_op),
		       atomic_load(&s.bad_ret),
		       strerror(-atomic_load(&s.bad_ret)));
	EXPECT_LT(100, atomic_load(&s.ops));
	ASSERT_EQ(0, lot_status(gs_mutex_fd(s.m), &st));
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(GOSYNC_LOT_MUTEX, st.kind);

	/* Back to sense: once the word is, the mutex works again. */
	s.w[0] = 0;
	EXPECT_EQ(0, gs_mutex_lock(s.m));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(s.m));
	EXPECT_EQ(-ETIMEDOUT, gs_mutex_lock_until(s.m, gs_deadline_in(5 * NS_PER_MS), 0));
	EXPECT_EQ(0, gs_mutex_unlock(s.m));
	EXPECT_EQ(-EPERM, gs_mutex_unlock(s.m));
	EXPECT_WORD(s.w[0], 0);
	munmap((void *)s.w, PAGE_BYTES);
	gs_mutex_destroy(s.m);
}

/* An RWMutex's words scribbled under its non-blocking calls. */
TEST(rwmutex_scribbled_page_keeps_kernel_sane)
{
	gs_rwmutex *rw = NULL;
	volatile uint64_t *w;
	uint64_t seed = 42;
	long bad = 0;

	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	w = map_words(gs_rwmutex_fd(rw));
	ASSERT_NE(NULL, w);
	for (int i = 0; i < 20000; i++) {
		uint64_t v = rnd64(&seed);
		int ret;

		w[v % 5] = (v >> 3) % 3 ? rnd64(&seed) : (v >> 8) % 4;
		switch ((v >> 5) % 4) {
		case 0:
			ret = gs_rwmutex_tryrlock(rw);
			bad += ret != 0 && ret != -EBUSY;
			break;
		case 1:
			/* Never waits, whatever the words say. */
			ret = gs_rwmutex_trylock(rw);
			bad += ret != 0 && ret != -EBUSY && !robust_ret(ret);
			break;
		case 2:
			ret = gs_rwmutex_runlock(rw);
			bad += ret != 0 && ret != -EPERM;
			break;
		default:
			ret = gs_rwmutex_unlock(rw);
			bad += ret != 0 && ret != -EPERM;
			break;
		}
	}
	EXPECT_EQ(0, bad);
	for (int i = 0; i < 5; i++)
		w[i] = 0;
	EXPECT_EQ(0, gs_rwmutex_rlock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	EXPECT_EQ(0, gs_rwmutex_lock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	EXPECT_RW(w, 0, 0);
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
}

/* ================================================================== */
/* 9. Robustness: a holder that dies                                    */

/*
 * A child process that locks @m, writes one byte to @fd (it holds the
 * mutex now) and waits to be killed. Return: its pid, once it holds it.
 */
static pid_t holder_child(struct __test_metadata *_metadata, gs_mutex *m)
{
	int p[2];
	char c = 0;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork_child();
	if (pid == 0) {
		close(p[0]);
		c = gs_mutex_lock(m) == 0 ? 'L' : 'E';
		if (write(p[1], &c, 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(p[1]);
	EXPECT_EQ(1, read(p[0], &c, 1));
	EXPECT_EQ('L', c);
	close(p[0]);
	return pid;
}

static void kill_and_reap(struct __test_metadata *_metadata, pid_t pid)
{
	int status = 0;

	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static bool robust_supported(void)
{
	return gs_features() >= 0 &&
	       (gs_features() & GOSYNC_FEATURE_ROBUST_LOCK);
}

struct try_arg {
	gs_mutex *m;
	int trylock, lock_until;
};

static void *second_survivor(void *p)
{
	struct try_arg *a = p;

	a->trylock = gs_mutex_trylock(a->m);
	a->lock_until = gs_mutex_lock_until(a->m,
					    gs_deadline_in(20 * NS_PER_MS), 0);
	return NULL;
}

TEST(robust_holder_killed_next_locker_gets_eownerdead)
{
	struct try_arg a = { 0 };
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	pthread_t t;
	pid_t pid;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	pid = holder_child(_metadata, m);
	ASSERT_LT(0, pid);
	EXPECT_TRUE(w[0] & M_LOCKED);
	EXPECT_NE(0, M_OWNER(w[0]));
	kill_and_reap(_metadata, pid);
	/* The kernel freed it with OWNERDEAD when the child's files closed. */
	EXPECT_WORD(w[0], M_OWNERDEAD);

	EXPECT_EQ(-EOWNERDEAD, gs_mutex_lock(m));
	EXPECT_TRUE(w[0] & M_LOCKED);
	EXPECT_TRUE(w[0] & M_OWNERDEAD);
	/* We hold it: a second survivor is kept out. */
	a.m = m;
	ASSERT_EQ(0, pthread_create(&t, NULL, second_survivor, &a));
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(-EBUSY, a.trylock);
	EXPECT_EQ(-ETIMEDOUT, a.lock_until);

	EXPECT_EQ(0, gs_mutex_consistent(m));
	EXPECT_EQ(-EINVAL, gs_mutex_consistent(m));	/* consistent already */
	EXPECT_EQ(M_LOCKED, M_STATE(w[0]));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_WORD(w[0], 0);
	EXPECT_EQ(-EINVAL, gs_mutex_consistent(m));	/* not locked */
	EXPECT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

TEST(robust_unlock_without_consistent_is_not_recoverable)
{
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	pid_t pid;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	pid = holder_child(_metadata, m);
	ASSERT_LT(0, pid);
	kill_and_reap(_metadata, pid);

	EXPECT_EQ(-EOWNERDEAD, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	EXPECT_WORD(w[0], M_NOTRECOVERABLE);
	EXPECT_EQ(-ENOTRECOVERABLE, gs_mutex_lock(m));
	EXPECT_EQ(-ENOTRECOVERABLE, gs_mutex_trylock(m));
	EXPECT_EQ(-ENOTRECOVERABLE,
		  gs_mutex_lock_until(m, gs_deadline_in(NS_PER_MS), 0));
	EXPECT_EQ(-EINVAL, gs_mutex_consistent(m));
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	/* For another process as well. */
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(gs_mutex_lock(m) == -ENOTRECOVERABLE &&
		      gs_mutex_trylock(m) == -ENOTRECOVERABLE ? 0 : 1);
	EXPECT_EQ(0, reap(pid));
	EXPECT_WORD(w[0], M_NOTRECOVERABLE);
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

struct waiter_arg {
	gs_mutex *m;
	atomic_int *dead, *ok, *bad;
	bool timed;
};

/* Lock; if the holder died, repair (nothing to) and mark consistent. */
static void *robust_waiter(void *p)
{
	struct waiter_arg *a = p;
	int ret = a->timed ? gs_mutex_lock_until(a->m, limit(), 0) :
			     gs_mutex_lock(a->m);

	if (ret == -EOWNERDEAD && gs_mutex_consistent(a->m) == 0)
		atomic_fetch_add(a->dead, 1);
	else if (ret == 0)
		atomic_fetch_add(a->ok, 1);
	else
		atomic_fetch_add(a->bad, 1);
	if (ret == 0 || ret == -EOWNERDEAD)
		gs_mutex_unlock(a->m);
	return NULL;
}

/* Waiters parked when the holder dies are woken; one gets EOWNERDEAD. */
TEST(robust_parked_waiters_woken_when_holder_dies)
{
	atomic_int dead = 0, ok = 0, bad = 0;
	struct waiter_arg a[3];
	pthread_t t[3];
	gs_mutex *m = NULL;
	pid_t pid;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	pid = holder_child(_metadata, m);
	ASSERT_LT(0, pid);
	for (int i = 0; i < 3; i++) {
		a[i] = (struct waiter_arg){ m, &dead, &ok, &bad, i == 1 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, robust_waiter, &a[i]));
	}
	ASSERT_EQ(0, wait_parked(gs_mutex_fd(m), 3));
	kill_and_reap(_metadata, pid);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_join(t[i], NULL));
	EXPECT_EQ(1, atomic_load(&dead));
	EXPECT_EQ(2, atomic_load(&ok));
	EXPECT_EQ(0, atomic_load(&bad));
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
}

/*
 * A process whose unlock freed the word and that died before its unpark
 * (the unlock's CAS done by hand, then _exit): its exit unparks the
 * waiter, which takes the mutex cleanly. Without that, the waiter would
 * sleep on a free mutex forever.
 */
TEST(robust_process_dies_between_unlock_and_unpark)
{
	struct gosync_lot_status st;
	int locked[2], go[2], fd;
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	struct locker l;
	pid_t pid;
	char c;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	w = map_words(fd);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, pipe(locked));
	ASSERT_EQ(0, pipe(go));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		_Atomic uint64_t *word = (_Atomic uint64_t *)w;
		uint64_t old;

		c = gs_mutex_lock(m) == 0 ? 'L' : 'E';
		if (write(locked[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		old = atomic_load(word);
		while (!atomic_compare_exchange_weak(word, &old,
						     old & ~(M_LOCKED | (~0ULL << 32))))
			;
		_exit(0);
	}
	ASSERT_EQ(1, read(locked[0], &c, 1));
	ASSERT_EQ('L', c);
	ASSERT_EQ(0, locker_start(&l, m, NULL, OP_LOCK, 0, 0));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(1, write(go[1], "g", 1));
	EXPECT_EQ(0, reap(pid));
	ASSERT_TRUE(wait_flag(&l.done, WAIT_LIMIT_MS))
		TH_LOG("word %#jx", (uintmax_t)w[0]);
	EXPECT_EQ(0, l.ret);
	ASSERT_TRUE(locker_finish(&l));
	EXPECT_EQ(0, l.uret);
	EXPECT_WORD(w[0], 0);
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(0, st.parked);
	for (int i = 0; i < 2; i++) {
		close(locked[i]);
		close(go[i]);
	}
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

struct raw_parker {
	int fd, ret;
	atomic_bool done;
};

/* Parks on word 0 while LOCKED is set, without the library. */
static void *raw_park_locked(void *p)
{
	struct raw_parker *rp = p;
	struct gosync_lot_park arg = {
		.mask = M_LOCKED, .expected = M_LOCKED,
		.deadline = GOSYNC_DEADLINE_NONE,
	};

	rp->ret = ioctl(rp->fd, GOSYNC_IOC_LOT_PARK, &arg) < 0 ? -errno : 0;
	atomic_store(&rp->done, true);
	return NULL;
}

static void *trylock_once(void *p)
{
	return gs_mutex_trylock(p) == 0 && gs_mutex_unlock(p) == 0 ? NULL : p;
}

/*
 * A thread that ends cleanly (registered, holding nothing) wakes nobody,
 * not even a waiter parked on a word that says free: that is the moment
 * between an unlock and its unpark, and a spurious wake-up then would
 * let a second waiter race the one the unpark chooses.
 */
TEST(robust_clean_thread_exit_wakes_nobody)
{
	struct raw_parker rp = { 0 };
	struct gosync_lot_status st;
	struct gosync_lot_unpark up = { .count = 1 };
	gs_mutex *m = NULL, *other = NULL;
	_Atomic uint64_t *word;
	pthread_t t, tp;
	void *res = &rp;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, gs_mutex_create(&other));
	rp.fd = gs_mutex_fd(m);
	word = (_Atomic uint64_t *)map_words(rp.fd);
	ASSERT_NE(NULL, word);
	atomic_store(word, M_LOCKED | (1ULL << M_WAITER_SHIFT));
	ASSERT_EQ(0, pthread_create(&tp, NULL, raw_park_locked, &rp));
	ASSERT_EQ(0, wait_parked(rp.fd, 1));
	atomic_store(word, 1ULL << M_WAITER_SHIFT);	/* an unlock's CAS, before its unpark */
	/* It registers on a mutex of its own, and ends. */
	ASSERT_EQ(0, pthread_create(&t, NULL, trylock_once, other));
	ASSERT_EQ(0, pthread_join(t, &res));
	EXPECT_EQ(NULL, res);
	ASSERT_EQ(0, lot_status(rp.fd, &st));
	EXPECT_EQ(1, st.parked);
	EXPECT_EQ(0, st.woken);
	EXPECT_FALSE(atomic_load(&rp.done));
	/* The unpark that was coming. */
	EXPECT_EQ(1, ioctl(rp.fd, GOSYNC_IOC_LOT_UNPARK, &up));
	ASSERT_EQ(0, pthread_join(tp, NULL));
	EXPECT_EQ(0, rp.ret);
	munmap((void *)word, PAGE_BYTES);
	gs_mutex_destroy(other);
	gs_mutex_destroy(m);
}

static void *lock_and_return(void *p)
{
	return gs_mutex_lock(p) == 0 ? NULL : p;
}

/*
 * A thread (not a process) that ends holding it, twice (a new thread
 * each time). It returns: pthread_exit() runs the same TLS destructors
 * but needs libgcc_s to unwind, which the test VMs lack.
 */
TEST(robust_thread_exits_holding_it)
{
	volatile uint64_t *w;
	gs_mutex *m = NULL;
	void *res;
	pthread_t t;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	w = map_words(gs_mutex_fd(m));
	ASSERT_NE(NULL, w);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, pthread_create(&t, NULL, lock_and_return, m));
		ASSERT_EQ(0, pthread_join(t, &res));
		EXPECT_EQ(NULL, res);
		EXPECT_WORD(w[0], M_OWNERDEAD);
		EXPECT_EQ(-EOWNERDEAD, gs_mutex_lock(m));
		EXPECT_EQ(0, gs_mutex_consistent(m));
		EXPECT_EQ(0, gs_mutex_unlock(m));
	}
	/* A thread that unlocks before it ends leaves nothing behind. */
	EXPECT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	munmap((void *)w, PAGE_BYTES);
	gs_mutex_destroy(m);
}

/* A waiter parked when the holding thread exits is woken with it. */
struct parked_exit_arg {
	gs_mutex *m;
	atomic_int holds;
	int ret;
};

static void *hold_until_parked_then_exit(void *p)
{
	struct parked_exit_arg *a = p;

	if (gs_mutex_lock(a->m))
		return p;
	atomic_store(&a->holds, 1);
	a->ret = wait_parked(gs_mutex_fd(a->m), 1);
	return NULL;	/* holding it */
}

TEST(robust_thread_exits_holding_it_with_a_waiter)
{
	struct parked_exit_arg a = { 0 };
	pthread_t t;
	gs_mutex *m = NULL;
	void *res = NULL;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	a.m = m;
	ASSERT_EQ(0, pthread_create(&t, NULL, hold_until_parked_then_exit, &a));
	ASSERT_TRUE(wait_count(&a.holds, 1, WAIT_LIMIT_MS));
	/* We park; the holder sees it and exits. */
	EXPECT_EQ(-EOWNERDEAD, gs_mutex_lock_until(m, limit(), 0));
	ASSERT_EQ(0, pthread_join(t, &res));
	EXPECT_EQ(NULL, res);
	EXPECT_EQ(0, a.ret);
	EXPECT_EQ(0, gs_mutex_consistent(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
}

/*
 * A thread that ends with a raw exit system call (no TLS destructor) is
 * seen dead by the next locker that parks.
 */
static void *lock_and_raw_exit(void *p)
{
	if (gs_mutex_lock(p) == 0)
		syscall(SYS_exit, 0);
	return p;
}

static bool task_gone(pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d", tid);
	return access(path, F_OK) != 0;
}

struct raw_arg {
	gs_mutex *m;
	atomic_int tid;
};

static void *raw_exit_holder(void *p)
{
	struct raw_arg *a = p;

	atomic_store(&a->tid, gettid());
	return lock_and_raw_exit(a->m);
}

TEST(robust_raw_exit_holder_seen_by_parker)
{
	struct raw_arg a = { 0 };
	gs_mutex *m = NULL;
	pthread_t t;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	a.m = m;
	ASSERT_EQ(0, pthread_create(&t, NULL, raw_exit_holder, &a));
	ASSERT_EQ(0, pthread_detach(t));
	ASSERT_EQ(0, wait_count(&a.tid, 1, WAIT_LIMIT_MS) ? 0 : -1);
	for (uint64_t t0 = mono_ns(); !task_gone(atomic_load(&a.tid)) &&
	     ms_since(t0) < WAIT_LIMIT_MS;)
		usleep(500);
	ASSERT_TRUE(task_gone(atomic_load(&a.tid)));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m));		/* no park: not seen */
	EXPECT_EQ(-EOWNERDEAD, gs_mutex_lock_until(m, limit(), 0));
	EXPECT_EQ(0, gs_mutex_consistent(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
}

/* A holder that execs has lost it: its old program is dead. */
TEST(robust_holder_execs)
{
	gs_mutex *m = NULL;
	int p[2];
	char c = 0;
	pid_t pid;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, pipe(p));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(p[0]);
		if (gs_mutex_lock(m))
			_exit(2);
		/* The pipe closes when the exec succeeds (O_CLOEXEC). */
		fcntl(p[1], F_SETFD, FD_CLOEXEC);
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(3);
	}
	close(p[1]);
	EXPECT_EQ(0, read(p[0], &c, 1));	/* exec'd */
	close(p[0]);
	EXPECT_EQ(-EOWNERDEAD, gs_mutex_lock_until(m, limit(), 0));
	EXPECT_EQ(0, gs_mutex_consistent(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	kill_and_reap(_metadata, pid);
	EXPECT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
}

/*
 * A waiter parked before the holder's exec is woken by the exec itself
 * (the death walk of the exec's close of the device): on 6.12 the
 * O_CLOEXEC close comes before the new mm is in place, so the old mm
 * cannot tell it; nothing else parks here to notice the holder gone.
 */
TEST(robust_holder_execs_with_a_waiter)
{
	gs_mutex *m = NULL;
	struct locker l;
	int p[2], go[2];
	char c = 0;
	pid_t pid;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_mutex_create(&m));
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, pipe(go));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(p[0]);
		close(go[1]);
		c = gs_mutex_lock(m) == 0 ? 'L' : 'E';
		if (write(p[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		/* The pipe closes when the exec succeeds (O_CLOEXEC). */
		fcntl(p[1], F_SETFD, FD_CLOEXEC);
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(3);
	}
	close(p[1]);
	close(go[0]);
	ASSERT_EQ(1, read(p[0], &c, 1));
	ASSERT_EQ('L', c);
	ASSERT_EQ(0, locker_start(&l, m, NULL, OP_LOCK, 0, 0));
	ASSERT_EQ(0, wait_parked(gs_mutex_fd(m), 1));
	ASSERT_EQ(1, write(go[1], "x", 1));
	EXPECT_EQ(0, read(p[0], &c, 1));	/* exec'd */
	close(p[0]);
	close(go[1]);
	ASSERT_TRUE(wait_flag(&l.done, WAIT_LIMIT_MS));
	EXPECT_EQ(-EOWNERDEAD, l.ret);
	/* It ended holding it, inconsistent still: ours now, the same. */
	ASSERT_EQ(0, join_ms(l.thread, WAIT_LIMIT_MS));
	EXPECT_EQ(-EOWNERDEAD, gs_mutex_lock_until(m, limit(), 0));
	EXPECT_EQ(0, gs_mutex_consistent(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	kill_and_reap(_metadata, pid);
	EXPECT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
}

/* An RWMutex writer child: write-locks, reports, waits to be killed. */
static pid_t rw_writer_child(gs_rwmutex *rw, int report_fd)
{
	pid_t pid = fork_child();

	if (pid == 0) {
		char c = gs_rwmutex_lock(rw) == 0 ? 'W' : 'E';

		if (report_fd >= 0 && write(report_fd, &c, 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	return pid;
}

static void *rlock_runlock(void *p)
{
	int ret = gs_rwmutex_rlock(p);

	if (ret == 0)
		ret = gs_rwmutex_runlock(p);
	return ret ? p : NULL;
}

/*
 * A writer killed holding the lock: the next writer gets -EOWNERDEAD and
 * the lock; a reader that queued behind the dead writer gets in after.
 */
TEST(robust_rwmutex_writer_killed_holding)
{
	gs_rwmutex *rw = NULL;
	void *res = (void *)1;
	int p[2];
	char c = 0;
	pthread_t t;
	pid_t pid;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	ASSERT_EQ(0, pipe(p));
	pid = rw_writer_child(rw, p[1]);
	ASSERT_LT(0, pid);
	ASSERT_EQ(1, read(p[0], &c, 1));
	ASSERT_EQ('W', c);
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));
	ASSERT_EQ(0, pthread_create(&t, NULL, rlock_runlock, rw));
	ASSERT_EQ(0, wait_parked(gs_rwmutex_fd(rw), 1));	/* the reader */
	kill_and_reap(_metadata, pid);

	EXPECT_EQ(-EOWNERDEAD, gs_rwmutex_lock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));	/* we write */
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));
	EXPECT_EQ(0, gs_rwmutex_consistent(rw));
	EXPECT_EQ(-EINVAL, gs_rwmutex_consistent(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	ASSERT_EQ(0, pthread_join(t, &res));		/* the reader got in */
	EXPECT_EQ(NULL, res);
	EXPECT_EQ(0, gs_rwmutex_rlock(rw));
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	EXPECT_EQ(0, gs_rwmutex_lock(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	close(p[0]);
	close(p[1]);
	gs_rwmutex_destroy(rw);
}

struct rw_try {
	gs_rwmutex *rw;
	int ret;
};

static void *trylock_thread(void *p)
{
	struct rw_try *a = p;

	a->ret = gs_rwmutex_trylock(a->rw);
	return NULL;
}

/*
 * A writer killed while it waits for a reader to leave: the next writer
 * inherits its announcement, waits for that reader, and gets the lock.
 * A trylock meanwhile never waits for that reader: -EBUSY, the mutex
 * left with the dead writer's mark for the next taker (it once blocked
 * there: in a thread, so that this fails rather than hangs).
 */
TEST(robust_rwmutex_writer_killed_waiting_for_readers)
{
	gs_rwmutex *rw = NULL;
	volatile uint64_t *w;
	struct rw_try a;
	pthread_t t;
	pid_t pid;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, gs_rwmutex_create(&rw));
	w = map_words(gs_rwmutex_fd(rw));
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, gs_rwmutex_rlock(rw));
	pid = rw_writer_child(rw, -1);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_parked(gs_rwmutex_fd(rw), 1));	/* the writer */
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));	/* announced */
	kill_and_reap(_metadata, pid);
	EXPECT_WORD(M_STATE(w[0]), M_OWNERDEAD);
	for (int i = 0; i < 2; i++) {
		a.rw = rw;
		a.ret = 1;
		ASSERT_EQ(0, pthread_create(&t, NULL, trylock_thread, &a));
		ASSERT_EQ(0, join_ms(t, WAIT_LIMIT_MS));
		EXPECT_EQ(-EBUSY, a.ret);
		EXPECT_WORD(M_STATE(w[0]), M_OWNERDEAD);
		EXPECT_EQ(0, M_OWNER(w[0]));
	}
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));

	EXPECT_EQ(-EOWNERDEAD, gs_rwmutex_trylock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));
	EXPECT_EQ(0, gs_rwmutex_consistent(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	/* Normal again, and a writer waits for a reader as it should. */
	EXPECT_EQ(0, gs_rwmutex_rlock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(rw));
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	EXPECT_EQ(0, gs_rwmutex_lock(rw));
	EXPECT_EQ(-EBUSY, gs_rwmutex_tryrlock(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));
	EXPECT_EQ(0, gs_rwmutex_tryrlock(rw));
	EXPECT_EQ(0, gs_rwmutex_runlock(rw));
	munmap((void *)w, PAGE_BYTES);
	gs_rwmutex_destroy(rw);
}

/* The raw ABI: robust parks and hand-offs, owner registration. */
TEST(robust_abi_errors)
{
	struct gosync_lot_create cr = { .kind = GOSYNC_LOT_WAITGROUP };
	struct gosync_lot_park pk = {
		.flags = GOSYNC_LOT_PARK_ROBUST, .mask = 1, .expected = 1,
		.deadline = 0,
	};
	struct gosync_lot_unpark up = {
		.count = 1, .flags = GOSYNC_LOT_UNPARK_OWNER,
	};
	gs_mutex *m = NULL;
	int dev = gs_device_fd(), lot, h1, h2, mfd;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_LE(0, dev);
	h1 = ioctl(dev, GOSYNC_IOC_ROBUST_REGISTER, 0);
	h2 = ioctl(dev, GOSYNC_IOC_ROBUST_REGISTER, 0);
	EXPECT_LT(0, h1);
	EXPECT_EQ(h1, h2);			/* one per thread */
	EXPECT_EQ(-1, ioctl(dev, GOSYNC_IOC_ROBUST_REGISTER, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(dev, GOSYNC_IOC_ROBUST_EXIT, 1));
	EXPECT_EQ(EINVAL, errno);

	lot = ioctl(dev, GOSYNC_IOC_LOT_CREATE, &cr);
	ASSERT_LE(0, lot);
	/* Robust parks only on word 0 of a Mutex or RWMutex lot. */
	EXPECT_EQ(-1, ioctl(lot, GOSYNC_IOC_LOT_PARK, &pk));
	EXPECT_EQ(EINVAL, errno);
	close(lot);
	ASSERT_EQ(0, gs_mutex_create(&m));
	mfd = gs_mutex_fd(m);
	pk.index = 1;
	EXPECT_EQ(-1, ioctl(mfd, GOSYNC_IOC_LOT_PARK, &pk));
	EXPECT_EQ(EINVAL, errno);
	pk.index = 0;
	pk.owner = 0x80000000U;
	EXPECT_EQ(-1, ioctl(mfd, GOSYNC_IOC_LOT_PARK, &pk));
	EXPECT_EQ(EINVAL, errno);
	/* @reserved stays reserved without the flag. */
	pk.flags = 0;
	pk.owner = 1;
	EXPECT_EQ(-1, ioctl(mfd, GOSYNC_IOC_LOT_PARK, &pk));
	EXPECT_EQ(EINVAL, errno);
	/* UNPARK_OWNER only with a hand-off. */
	EXPECT_EQ(-1, ioctl(mfd, GOSYNC_IOC_LOT_UNPARK, &up));
	EXPECT_EQ(EINVAL, errno);
	up.flags |= GOSYNC_LOT_UNPARK_HANDOFF;
	EXPECT_EQ(0, ioctl(mfd, GOSYNC_IOC_LOT_UNPARK, &up));	/* nobody */
	gs_mutex_destroy(m);
}

/* A thread without a handle has nothing to declare dead. */
static void *exit_unregistered(void *p)
{
	int dev = gs_device_fd();

	(void)p;
	if (ioctl(dev, GOSYNC_IOC_ROBUST_EXIT, 0) == 0)
		return (void *)1;
	return errno == ENOENT ? NULL : (void *)2;
}

TEST(robust_exit_without_handle_is_enoent)
{
	pthread_t t;
	void *res = (void *)3;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_EQ(0, pthread_create(&t, NULL, exit_unregistered, NULL));
	ASSERT_EQ(0, pthread_join(t, &res));
	EXPECT_EQ(NULL, res);
}

/*
 * Stress: processes lock and unlock in a loop, counting inside; some are
 * SIGKILLed at random moments. Exclusion holds (an "inside" count is
 * never seen above one), whoever takes a dead holder's mutex repairs the
 * count (the protected data: @counter is the sum of @done), and the
 * survivors finish.
 */
#define STRESS_PROCS	6
#define STRESS_VICTIMS	3
#define STRESS_ITERS	300

struct stress_shared {
	atomic_int inside;
	atomic_int violations;
	atomic_int recovered;
	atomic_int started;
	atomic_bool kills_done;
	long counter;
	long done[STRESS_PROCS];
	struct report rep;
};

/*
 * Survivors do STRESS_ITERS rounds at least, until every victim is dead;
 * victims loop until killed.
 */
static void stress_child(gs_mutex *m, struct stress_shared *sh, int me)
{
	bool victim = me < STRESS_VICTIMS;

	atomic_fetch_add(&sh->started, 1);
	for (int i = 0; victim || i < STRESS_ITERS ||
	     !atomic_load(&sh->kills_done); i++) {
		int ret = gs_mutex_lock(m);

		if (ret == -EOWNERDEAD) {
			long sum = 0;

			for (int j = 0; j < STRESS_PROCS; j++)
				sum += sh->done[j];
			sh->counter = sum;
			atomic_store(&sh->inside, 0);
			atomic_fetch_add(&sh->recovered, 1);
			CHILD_CHECK_EXIT(&sh->rep, gs_mutex_consistent(m) == 0,
					 "consistent");
		} else {
			CHILD_CHECK_EXIT(&sh->rep, ret == 0, "lock %d", ret);
		}
		if (atomic_fetch_add(&sh->inside, 1) != 0)
			atomic_fetch_add(&sh->violations, 1);
		CHILD_CHECK_EXIT(&sh->rep, sh->counter ==
				 ({ long s = 0;
				    for (int j = 0; j < STRESS_PROCS; j++)
					s += sh->done[j];
				    s; }), "counter %ld", sh->counter);
		sh->counter++;
		if (victim)
			sched_yield();	/* likelier to die holding it */
		sh->done[me]++;
		atomic_fetch_sub(&sh->inside, 1);
		CHILD_CHECK_EXIT(&sh->rep, gs_mutex_unlock(m) == 0, "unlock");
	}
	_exit(0);
}

TEST_F(slow, robust_stress_random_kills)
{
	struct stress_shared *sh = shared_alloc(sizeof(*sh));
	pid_t pid[STRESS_PROCS];
	unsigned int seed = (unsigned int)mono_ns();
	gs_mutex *m = NULL;
	long sum = 0;

	if (!robust_supported())
		SKIP(return, "module without GOSYNC_FEATURE_ROBUST_LOCK");
	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_mutex_create(&m));
	for (int i = 0; i < STRESS_PROCS; i++) {
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0)
			stress_child(m, sh, i);
	}
	ASSERT_TRUE(wait_count(&sh->started, STRESS_PROCS, WAIT_LIMIT_MS));
	/* Kill the victims at random moments of their loops. */
	for (int i = 0; i < STRESS_VICTIMS; i++) {
		usleep(1000 + rand_r(&seed) % 20000);
		kill_and_reap(_metadata, pid[i]);
	}
	atomic_store(&sh->kills_done, true);
	for (int i = STRESS_VICTIMS; i < STRESS_PROCS; i++)
		EXPECT_CHILD_OK(pid[i], &sh->rep);
	EXPECT_EQ(0, atomic_load(&sh->violations));
	for (int i = STRESS_VICTIMS; i < STRESS_PROCS; i++)
		EXPECT_LE(STRESS_ITERS, sh->done[i]);
	for (int i = 0; i < STRESS_PROCS; i++)
		sum += sh->done[i];
	/* Survivors unlocked last: every increment is counted. */
	EXPECT_EQ(0, gs_mutex_trylock(m));
	EXPECT_EQ(sum, sh->counter);
	gs_mutex_unlock(m);
	TH_LOG("%d recoveries", atomic_load(&sh->recovered));
	gs_mutex_destroy(m);
	munmap(sh, sizeof(*sh));
}

TEST_HARNESS_MAIN
