// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: Go's sync package (Mutex, RWMutex, WaitGroup, Once, Cond) and
 * a CyclicBarrier, each on its own parking lot (kmod/lot.c).
 *
 * Every primitive keeps its state in words of the lot's page, which every
 * process holding the fd maps, and changes them with atomics; the kernel
 * is entered only to park (sleep until a word changes) or to unpark. The
 * rule that makes every protocol below free of lost wake-ups is the
 * futex rule, enforced by the kernel's compare-under-lock (see
 * GOSYNC_IOC_LOT_PARK): a waiter parks expecting the value it last saw,
 * and whoever changes a word in a way a sleeper waits for changes it
 * first and unparks second. Either the park sees the change (-EAGAIN,
 * the waiter re-reads) or the unpark finds the waiter queued.
 *
 * All atomics are sequentially consistent unless a comment says why a
 * weaker order is enough: the protocols pair a store to one word with a
 * load of another (a waiter count and a state word), which needs it.
 *
 * Blocking calls are not interrupted by signals: the handler runs and the
 * wait resumes (as with pthread_mutex_lock); deadlines are the way out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gosync.h"
#include "internal.h"

/* ------------------------------------------------------------------ */
/* The parking lot under every primitive.                              */

struct lot {
	int fd;
	_Atomic uint64_t *words;	/* the mapped page */
	uint64_t param;			/* kept by the kernel: see uapi */
	bool checked;			/* GOSYNC_LOT_CHECKED */
};

static int lot_map(struct lot *lot, int fd, uint32_t kind)
{
	struct gosync_lot_status st = { 0 };
	void *page;

	/* A module without LOCK_CHECK answers only the shorter status. */
	if (ioctl(fd, GOSYNC_IOC_LOT_STATUS, &st) < 0 &&
	    (errno != ENOTTY || ioctl(fd, GOSYNC_IOC_LOT_STATUS_V1, &st) < 0))
		return errno == EBADF ? -EBADF : -ENOTTY;
	if (st.kind != kind)
		return -ENOTTY;
	page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE),
		    PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (page == MAP_FAILED)
		return -errno;
	lot->fd = fd;
	lot->words = page;
	lot->param = st.param;
	lot->checked = st.flags & GOSYNC_LOT_CHECKED;
	return 0;
}

static int lot_create(struct lot *lot, uint32_t kind, uint64_t param,
		      uint32_t flags)
{
	struct gosync_lot_create arg = {
		.kind = kind, .flags = flags, .param = param,
	};
	int fd, err;

	fd = gs_create_object(GOSYNC_IOC_LOT_CREATE, &arg);
	if (fd < 0)
		return fd;
	err = lot_map(lot, fd, kind);
	if (err)
		close(fd);
	return err;
}

static void lot_close(struct lot *lot)
{
	munmap((void *)lot->words, (size_t)sysconf(_SC_PAGESIZE));
	close(lot->fd);
}

/* How long a blocking call may wait: a deadline, and a context's Done. */
struct lot_wait {
	uint64_t deadline;
	unsigned int flags;	/* GS_CLOCK_REALTIME */
	int cancel_fd;		/* a channel whose close ends it, or -1 */
};

static const struct lot_wait wait_forever = {
	.deadline = GS_FOREVER, .cancel_fd = -1,
};

/*
 * The flags that say @w's clock and cancelling channel, whose fd goes to
 * *@cancel_fd (0 for none), for a park or an arrival.
 */
static uint32_t wait_flags(const struct lot_wait *w, int32_t *cancel_fd)
{
	*cancel_fd = w->cancel_fd >= 0 ? w->cancel_fd : 0;
	return w->flags | (w->cancel_fd >= 0 ? GOSYNC_WAIT_CANCEL_FD : 0);
}

/* GOSYNC_IOC_LOT_PARK as @arg says, for as long as @w says. */
static int park_ioctl(int fd, struct gosync_lot_park *arg,
		      const struct lot_wait *w)
{
	arg->flags |= wait_flags(w, &arg->cancel_fd);
	arg->deadline = w->deadline;
	int ret = ioctl(fd, GOSYNC_IOC_LOT_PARK, arg);

	return ret < 0 ? -errno : ret;
}

/*
 * Sleep while (word @index & @mask) == @expected, until unparked, @w's
 * deadline or its channel's close. Return: 0 when unparked, 1 when
 * unparked by a hand-off, -EAGAIN when the word differs, -ETIMEDOUT,
 * -ECANCELED, -EINTR (a signal handler ran), or another error of the fd.
 */
static int lot_park(struct lot *lot, uint32_t index, uint64_t mask,
		    uint64_t expected, const struct lot_wait *w,
		    unsigned int park_flags)
{
	struct gosync_lot_park arg = {
		.index = index, .flags = park_flags, .mask = mask,
		.expected = expected,
	};

	return park_ioctl(lot->fd, &arg, w);
}

/*
 * Wake up to @count threads parked on word @index (GOSYNC_LOT_ALL: all)
 * of the lot @fd; with GOSYNC_LOT_UNPARK_HANDOFF in @flags, add @add to
 * the word for each (see the uapi header). Return: how many were woken.
 *
 * Callers read the fd before the change that lets waiters return, and
 * touch nothing of the handle after it: a waiter that sees the change
 * may destroy the object at once (Go's wg.Wait() then drop). The fd may
 * then be closed, or even reused, when this runs: the ioctl fails, or
 * wakes a thread of another lot spuriously, which every protocol here
 * tolerates (waiters always re-read their word).
 */
static int lot_unpark(int fd, uint32_t index, uint32_t count,
		      unsigned int flags, uint64_t add)
{
	struct gosync_lot_unpark arg = {
		.index = index, .count = count, .flags = flags, .add = add,
	};
	int woken = ioctl(fd, GOSYNC_IOC_LOT_UNPARK, &arg);

	return woken < 0 ? -errno : woken;
}

static void lot_wake(int fd, uint32_t index, uint32_t count)
{
	lot_unpark(fd, index, count, 0, 0);
}

static bool cas(_Atomic uint64_t *word, uint64_t *old, uint64_t new)
{
	return atomic_compare_exchange_weak(word, old, new);
}

/* Whether the loaded module implements GOSYNC_FEATURE_* bit @bit. */
static bool has_feature(uint64_t bit)
{
	int64_t features = gs_features();

	return features >= 0 && ((uint64_t)features & bit);
}

/*
 * Checked locks by default in this process (gs_check_locks()): -1 until
 * GOSYNC_CHECK_LOCKS has been read.
 */
static _Atomic int check_locks = -1;

void gs_check_locks(bool on)
{
	atomic_store(&check_locks, on);
}

uint32_t gs_lot_create_flags(uint32_t kind)
{
	int on = atomic_load(&check_locks);

	if (kind != GOSYNC_LOT_MUTEX && kind != GOSYNC_LOT_RWMUTEX)
		return 0;
	if (!has_feature(GOSYNC_FEATURE_LOCK_CHECK))
		return 0;	/* an older module: plain locks, as before */
	if (on < 0) {
		const char *env = getenv("GOSYNC_CHECK_LOCKS");
		int want = env && env[0] == '1', unset = -1;

		atomic_compare_exchange_strong(&check_locks, &unset, want);
		on = atomic_load(&check_locks);
	}
	return on ? GOSYNC_LOT_CHECKED : 0;
}

static int check_clock_flags(unsigned int flags)
{
	return flags & ~GS_CLOCK_REALTIME ? -EINVAL : 0;
}

/* The wait of a blocking call with @ctx: its deadline and Done channel. */
static int ctx_wait(gs_ctx *ctx, struct lot_wait *w)
{
	struct gs_ctx_wait cw;
	int err = gs_ctx_wait_begin(ctx, &cw);

	if (!err)
		*w = (struct lot_wait){ .deadline = cw.deadline,
					.cancel_fd = cw.cancel_fd };
	return err;
}

/*
 * A new handle of @size bytes, whose first member is its struct lot: on a
 * new lot of @kind (@fd < 0) or on the received lot @fd, which must be of
 * @kind. Return: the handle, or NULL with *@err set.
 */
static void *handle_open(size_t size, int fd, uint32_t kind, uint64_t param,
			 uint32_t flags, int *err)
{
	struct lot *lot = calloc(1, size);

	*err = -ENOMEM;
	if (!lot)
		return NULL;
	*err = fd < 0 ? lot_create(lot, kind, param, flags) :
			lot_map(lot, fd, kind);
	if (*err) {
		free(lot);
		return NULL;
	}
	return lot;
}

/* Create, adopt, expose and destroy: the same for every primitive. */
#define LOT_TYPE(type, KIND)						\
static int type##_open(gs_##type **objp, int fd, uint64_t param,	\
		       uint32_t flags)					\
{									\
	gs_##type *obj;							\
	int err;							\
									\
	obj = handle_open(sizeof(*obj), fd, KIND, param, flags, &err);	\
	if (obj)							\
		*objp = obj;						\
	return err;							\
}									\
									\
int gs_##type##_from_fd(gs_##type **objp, int fd)			\
{									\
	return fd < 0 ? -EBADF : type##_open(objp, fd, 0, 0);		\
}									\
									\
int gs_##type##_fd(const gs_##type *obj)				\
{									\
	return obj->lot.fd;						\
}									\
									\
void gs_##type##_destroy(gs_##type *obj)				\
{									\
	if (obj) {							\
		lot_close(&obj->lot);					\
		free(obj);						\
	}								\
}									\


/* ------------------------------------------------------------------ */
/* Mutex: sync.Mutex.                                                  */
/*
 * Word 0 (for a gs_rwmutex, its writers' mutex is its word 0 as well):
 *   MUTEX_LOCKED     held (or being handed off)
 *   MUTEX_STARVING   starvation mode: newcomers queue behind the waiters
 *   MUTEX_HANDOFF    with LOCKED: the unlocker passes the mutex on to
 *                    the waiter it unparked, without releasing it
 *   waiters          (from bit MUTEX_WAITER_SHIFT) threads that counted
 *                    themselves in and park, or are about to
 *
 * Normal mode is Go's: an unlock releases the mutex and wakes one parked
 * waiter, which competes with newcomers (who usually win: they are
 * running, which is good for throughput). A waiter that loses after
 * waiting over GS_MUTEX_STARVATION_NS sets MUTEX_STARVING. From then on an
 * unlock with waiters hands the mutex off: it keeps LOCKED, sets HANDOFF
 * and asks the kernel to wake the queue's head with a hand-off (see
 * GOSYNC_LOT_UNPARK_HANDOFF), which clears HANDOFF and counts the waiter
 * out in the same step: the waiter owns the mutex before it even runs,
 * as a goroutine does after Go's semrelease(handoff). Newcomers queue
 * behind, and a woken waiter that still loses (normal mode) re-parks at
 * the front of the queue. Starvation mode ends when the waiter that
 * takes the mutex is the last one or waited less than the threshold, as
 * in Go.
 *
 * No lost wake-up: a waiter parks only while LOCKED is set, and an unlock
 * changes the word (clears LOCKED, or sets HANDOFF) before it unparks. A
 * hand-off that finds nobody parked (every waiter is between counting
 * itself in and parking) is withdrawn: the unlocker frees the mutex and
 * unparks again, so a waiter that parked meanwhile is woken and the
 * others see LOCKED clear. A waiter woken without a hand-off always
 * re-reads and either takes the mutex or sees it held by a thread whose
 * own unlock will unpark; a waiter that gives up (deadline) was not
 * chosen by any unpark (the kernel's served-wins rule), so it carries no
 * wake-up away. The protocol is model-checked in spin/mutex.pml.
 */
#define MUTEX_LOCKED		1ULL
#define MUTEX_STARVING		2ULL
#define MUTEX_HANDOFF		4ULL
#define MUTEX_OWNERDEAD		8ULL
#define MUTEX_NOTRECOVERABLE	16ULL
#define MUTEX_WAITER_SHIFT	8
#define MUTEX_WAITER		(1ULL << MUTEX_WAITER_SHIFT)
#define MUTEX_WAITER_MASK	0xffffffULL
#define MUTEX_OWNER_SHIFT	32
#define MUTEX_OWNER		(0xffffffffULL << MUTEX_OWNER_SHIFT)
#define MUTEX_SPINS		4
#define MUTEX_SPIN_PAUSES	30

_Static_assert(MUTEX_LOCKED == GOSYNC_LOCK_LOCKED &&
	       MUTEX_HANDOFF == GOSYNC_LOCK_HANDOFF &&
	       MUTEX_OWNERDEAD == GOSYNC_LOCK_OWNERDEAD &&
	       MUTEX_NOTRECOVERABLE == GOSYNC_LOCK_NOTRECOVERABLE &&
	       MUTEX_OWNER_SHIFT == GOSYNC_LOCK_OWNER_SHIFT,
	       "the lock word the kernel reaps (uapi robust lock words)");

/*
 * Robustness. The holder's owner handle (see "robust lock words" in the
 * uapi header) is in the word's upper half, set by the same CAS that
 * takes the mutex (the kernel sets it for a hand-off), cleared by the
 * one that releases it, whoever unlocks. Each thread registers once, on
 * its first lock (one ioctl; the handle is cached in TLS, and forgotten
 * in a fork's child), and declares its handle dead from a thread-exit
 * destructor; a process's handles die when it exits or execs. When a
 * holder dies, the kernel frees the word with MUTEX_OWNERDEAD set and
 * unparks a waiter; whoever takes a word with OWNERDEAD gets -EOWNERDEAD
 * with the mutex, and the bit stays until gs_mutex_consistent(). An
 * unlock with OWNERDEAD still set makes the mutex NOTRECOVERABLE (never
 * LOCKED again) and unparks everyone: every lock then fails with
 * -ENOTRECOVERABLE. A thread whose registration failed (old module,
 * -ENOMEM) locks anonymously (owner 0): never reaped.
 */
static __thread uint32_t tls_owner __attribute__((tls_model("initial-exec")));
static __thread bool tls_owner_tried __attribute__((tls_model("initial-exec")));
static pthread_once_t owner_once = PTHREAD_ONCE_INIT;
static pthread_key_t owner_key;
static bool owner_key_ok;

static void owner_forget(void)
{
	tls_owner = 0;
	tls_owner_tried = false;
}

/* Thread exit: a mutex this thread still holds is now its owner's dead. */
static void owner_thread_exit(void *p)
{
	int fd = gs_device_fd();

	(void)p;
	if (tls_owner && fd >= 0)
		ioctl(fd, GOSYNC_IOC_ROBUST_EXIT, 0);
	owner_forget();
}

static void owner_init(void)
{
	owner_key_ok = pthread_key_create(&owner_key, owner_thread_exit) == 0;
	pthread_atfork(NULL, NULL, owner_forget);
}

static uint32_t owner_register(void)
{
	int fd, ret;

	if (tls_owner_tried)
		return tls_owner;
	tls_owner_tried = true;
	pthread_once(&owner_once, owner_init);
	if (!owner_key_ok || !has_feature(GOSYNC_FEATURE_ROBUST_LOCK))
		return 0;
	fd = gs_device_fd();
	ret = fd < 0 ? -1 : ioctl(fd, GOSYNC_IOC_ROBUST_REGISTER, 0);
	if (ret <= 0)
		return 0;
	if (pthread_setspecific(owner_key, (void *)1)) {
		ioctl(fd, GOSYNC_IOC_ROBUST_EXIT, 0);
		return 0;
	}
	tls_owner = (uint32_t)ret;
	return tls_owner;
}

/*
 * Whether lock word @state of @lot is checked and held by another thread
 * than the caller: a checked lock is its holder's to unlock and to make
 * consistent (see the uapi header).
 */
static bool checked_not_holder(const struct lot *lot, uint64_t state)
{
	return lot->checked && (state & MUTEX_OWNER) !=
	       (uint64_t)tls_owner << MUTEX_OWNER_SHIFT;
}

/* The calling thread's owner handle, in place in the word. */
static uint64_t owner_self(void)
{
	uint32_t h = tls_owner;

	return (uint64_t)(h ? h : owner_register()) << MUTEX_OWNER_SHIFT;
}

struct gs_mutex {
	struct lot lot;
};

LOT_TYPE(mutex, GOSYNC_LOT_MUTEX)

int gs_mutex_create(gs_mutex **mp)
{
	return mutex_open(mp, -1, 0, gs_lot_create_flags(GOSYNC_LOT_MUTEX));
}

int gs_mutex_create_checked(gs_mutex **mp)
{
	if (!has_feature(GOSYNC_FEATURE_LOCK_CHECK))
		return -EOPNOTSUPP;
	return mutex_open(mp, -1, 0, GOSYNC_LOT_CHECKED);
}

bool gs_mutex_checked(const gs_mutex *m)
{
	return m->lot.checked;
}

static uint64_t mutex_waiters(uint64_t state)
{
	return (state >> MUTEX_WAITER_SHIFT) & MUTEX_WAITER_MASK;
}

/* A short busy wait, for a holder that may let go within microseconds. */
static void cpu_relax(void)
{
	for (int i = 0; i < MUTEX_SPIN_PAUSES; i++) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#else
		atomic_signal_fence(memory_order_seq_cst);
#endif
	}
}

/*
 * The state after a queued waiter takes the free mutex: it counts itself
 * out, and if it is the last waiter or did not itself starve, starvation
 * mode ends with it.
 */
static uint64_t mutex_taken(uint64_t state, bool starving)
{
	uint64_t new = (state | MUTEX_LOCKED) - MUTEX_WAITER;

	if (!starving || mutex_waiters(state) == 1)
		new &= ~MUTEX_STARVING;
	return new;
}

/* @new with owner @me: what the CAS that takes the mutex writes. */
static uint64_t mutex_owned(uint64_t new, uint64_t me)
{
	return (new & ~MUTEX_OWNER) | me;
}

/* What taking the mutex that was in @state returns. */
static int mutex_took(uint64_t state)
{
	return state & MUTEX_OWNERDEAD ? -EOWNERDEAD : 0;
}

/* Handed off to us: we own it; end starvation mode if Go would. */
static int mutex_handed_off(_Atomic uint64_t *word, bool starving)
{
	uint64_t state = atomic_load(word);

	while ((state & MUTEX_STARVING) &&
	       (!starving || !mutex_waiters(state)) &&
	       !cas(word, &state, state & ~MUTEX_STARVING))
		;
	return 0;
}

/* lot_park() on word 0, robust (giving our handle) when we have one. */
static int mutex_park(struct lot *lot, const struct lot_wait *w,
		      unsigned int park_flags, uint64_t me)
{
	struct gosync_lot_park arg = {
		.index = 0, .flags = park_flags,
		.mask = MUTEX_LOCKED, .expected = MUTEX_LOCKED,
	};

	if (me) {
		arg.flags |= GOSYNC_LOT_PARK_ROBUST;
		arg.owner = (uint32_t)(me >> MUTEX_OWNER_SHIFT);
	}
	return park_ioctl(lot->fd, &arg, w);
}

static int mutex_lock_slow(struct lot *lot, const struct lot_wait *w)
{
	_Atomic uint64_t *word = &lot->words[0];
	bool queued = false, starving = false;
	unsigned int park_flags = 0;
	uint64_t state, start = 0, me = owner_self();
	int spins = 0, ret;

	state = atomic_load(word);
	for (;;) {
		if (state & MUTEX_NOTRECOVERABLE) {
			ret = -ENOTRECOVERABLE;
			break;
		}
		if (!(state & MUTEX_LOCKED) &&
		    (queued || !(state & MUTEX_STARVING))) {
			if (cas(word, &state,
				mutex_owned(queued ?
					    mutex_taken(state, starving) :
					    state | MUTEX_LOCKED, me)))
				return mutex_took(state);
			continue;
		}
		/* Held by a thread that may let go soon: spin a little. */
		if (!queued && !(state & MUTEX_STARVING) &&
		    spins++ < MUTEX_SPINS) {
			cpu_relax();
			state = atomic_load(word);
			continue;
		}
		if (!queued) {
			if (!cas(word, &state, state + MUTEX_WAITER))
				continue;
			state += MUTEX_WAITER;
			queued = true;
			start = gs_now();
		} else if (starving && !(state & MUTEX_STARVING)) {
			if (!cas(word, &state, state | MUTEX_STARVING))
				continue;
			state |= MUTEX_STARVING;
		}
		ret = mutex_park(lot, w, park_flags, me);
		starving = starving ||
			   gs_now() - start > GS_MUTEX_STARVATION_NS;
		if (ret == 1)
			return mutex_handed_off(word, starving);
		if (ret && ret != -EAGAIN && ret != -EINTR)
			break;
		if (!ret) {
			/* If we lose this race, we keep our place. */
			park_flags = GOSYNC_LOT_PARK_FRONT;
		}
		state = atomic_load(word);
	}
	if (!queued)
		return ret;

	/*
	 * Deadline, cancel, or not recoverable: take it if free, else count
	 * ourselves out.
	 */
	state = atomic_load(word);
	for (;;) {
		if (!(state & (MUTEX_LOCKED | MUTEX_NOTRECOVERABLE))) {
			if (cas(word, &state,
				mutex_owned(mutex_taken(state, starving), me)))
				return mutex_took(state);
			continue;
		}
		if (cas(word, &state,
			mutex_waiters(state) == 1 ?
			(state - MUTEX_WAITER) & ~MUTEX_STARVING :
			state - MUTEX_WAITER))
			return state & MUTEX_NOTRECOVERABLE ?
			       -ENOTRECOVERABLE : ret;
	}
}

static int mutex_lock(struct lot *lot, const struct lot_wait *w)
{
	uint64_t state = 0;

	if (cas(&lot->words[0], &state, MUTEX_LOCKED | owner_self()))
		return 0;
	return mutex_lock_slow(lot, w);
}

static int mutex_trylock(struct lot *lot)
{
	uint64_t state = atomic_load(&lot->words[0]), me = owner_self();

	do {
		if (state & MUTEX_NOTRECOVERABLE)
			return -ENOTRECOVERABLE;
		if (state & (MUTEX_LOCKED | MUTEX_STARVING))
			return -EBUSY;
	} while (!cas(&lot->words[0], &state,
		      mutex_owned(state | MUTEX_LOCKED, me)));
	return mutex_took(state);
}

static int mutex_unlock(struct lot *lot)
{
	_Atomic uint64_t *word = &lot->words[0];
	uint64_t me = (uint64_t)tls_owner << MUTEX_OWNER_SHIFT;
	uint64_t state = MUTEX_LOCKED | me, new;
	int fd = lot->fd;	/* see lot_unpark() */
	bool handoff, lost;

	/* The common case, held by us and nobody waiting, in one swap. */
	if (atomic_compare_exchange_strong(word, &state, 0))
		return 0;

	do {
		/* Unlocked, or being handed off by another unlock. */
		if ((state & (MUTEX_LOCKED | MUTEX_HANDOFF)) != MUTEX_LOCKED)
			return -EPERM;
		if (checked_not_holder(lot, state))
			return -EPERM;
		/* Unlocked inconsistent: nobody can have it again. */
		lost = state & MUTEX_OWNERDEAD;
		handoff = !lost && (state & MUTEX_STARVING) &&
			  mutex_waiters(state);
		if (lost)
			new = (state & ~(MUTEX_LOCKED | MUTEX_OWNERDEAD |
					 MUTEX_STARVING | MUTEX_OWNER)) |
			      MUTEX_NOTRECOVERABLE;
		else if (handoff)
			/* Ours until the kernel puts the taker's handle. */
			new = mutex_owned(state | MUTEX_HANDOFF, me);
		else
			new = state & ~(MUTEX_LOCKED | MUTEX_OWNER);
	} while (!cas(word, &state, new));
	if (!mutex_waiters(state))
		return 0;
	if (lost) {
		lot_wake(fd, 0, GOSYNC_LOT_ALL);
		return 0;
	}
	if (handoff) {
		/*
		 * The head becomes the owner: HANDOFF off, counted out, our
		 * handle replaced by its (the kernel adds it).
		 */
		if (lot_unpark(fd, 0, 1,
			       GOSYNC_LOT_UNPARK_HANDOFF |
			       (me ? GOSYNC_LOT_UNPARK_OWNER : 0),
			       -(MUTEX_HANDOFF + MUTEX_WAITER) - me) > 0)
			return 0;
		/*
		 * Nobody parked to take it: release it after all. Only we
		 * (the kernel, for us) change HANDOFF, so the bit is still
		 * ours to clear. The waiters counted are on their way to
		 * park (they will find the word changed and take it) or
		 * were killed while queued (their count stays): leave
		 * starvation mode too, which only serves parked waiters, or
		 * a dead waiter's count would keep the mutex starving with
		 * nobody to hand it to, and every new locker would queue
		 * behind a lock that nobody holds.
		 */
		state = atomic_load(word);
		while (!cas(word, &state,
			    state & ~(MUTEX_HANDOFF | MUTEX_LOCKED |
				      MUTEX_OWNER | MUTEX_STARVING)))
			;
	}
	lot_wake(fd, 0, 1);
	return 0;
}

int gs_mutex_lock(gs_mutex *m)
{
	return mutex_lock(&m->lot, &wait_forever);
}

int gs_mutex_lock_until(gs_mutex *m, uint64_t deadline, unsigned int flags)
{
	struct lot_wait w = {
		.deadline = deadline, .flags = flags, .cancel_fd = -1,
	};
	int err = check_clock_flags(flags);

	return err ? err : mutex_lock(&m->lot, &w);
}

int gs_mutex_lock_ctx(gs_mutex *m, gs_ctx *ctx)
{
	struct lot_wait w;
	int err = ctx_wait(ctx, &w);

	return err ? err : gs_ctx_wait_end(ctx, mutex_lock(&m->lot, &w));
}

int gs_mutex_trylock(gs_mutex *m)
{
	return mutex_trylock(&m->lot);
}

int gs_mutex_unlock(gs_mutex *m)
{
	return mutex_unlock(&m->lot);
}

int gs_mutex_consistent(gs_mutex *m)
{
	_Atomic uint64_t *word = &m->lot.words[0];
	uint64_t state = atomic_load(word);

	do {
		if ((state & (MUTEX_LOCKED | MUTEX_OWNERDEAD)) !=
		    (MUTEX_LOCKED | MUTEX_OWNERDEAD))
			return -EINVAL;
		if (checked_not_holder(&m->lot, state))
			return -EPERM;
	} while (!cas(word, &state, state & ~MUTEX_OWNERDEAD));
	return 0;
}

/* ------------------------------------------------------------------ */
/* RWMutex: sync.RWMutex, Go's algorithm.                               */
/*
 * Words: 0 the writers' mutex (as above); RW_READERS the reader count,
 * minus RW_MAX_READERS while a writer holds or waits for the lock (so a
 * reader that finds it negative waits); RW_DEPARTING the readers the
 * pending writer still waits for; RW_WRITER_SEM and RW_READER_SEM two
 * token semaphores (see sema_*).
 */
#define RW_READERS	1
#define RW_DEPARTING	2
#define RW_WRITER_SEM	3
#define RW_READER_SEM	4
#define RW_MAX_READERS	(1LL << 40)

struct gs_rwmutex {
	struct lot lot;
};

LOT_TYPE(rwmutex, GOSYNC_LOT_RWMUTEX)

int gs_rwmutex_create(gs_rwmutex **rwp)
{
	return rwmutex_open(rwp, -1, 0,
			    gs_lot_create_flags(GOSYNC_LOT_RWMUTEX));
}

int gs_rwmutex_create_checked(gs_rwmutex **rwp)
{
	if (!has_feature(GOSYNC_FEATURE_LOCK_CHECK))
		return -EOPNOTSUPP;
	return rwmutex_open(rwp, -1, 0, GOSYNC_LOT_CHECKED);
}

bool gs_rwmutex_checked(const gs_rwmutex *rw)
{
	return rw->lot.checked;
}

/*
 * A token semaphore (Go's runtime semaphore) in one word: tokens in the
 * low 32 bits, parked-or-parking acquirers above. Acquire takes a token or
 * counts itself in and parks while there is none; release adds tokens
 * and unparks as many if anyone counted itself in. Tokens are handed out
 * only to acquirers that will take them, so none is lost or duplicated.
 */
#define SEMA_TOKENS	0xffffffffULL
#define SEMA_SLEEPER	(1ULL << 32)

static void sema_acquire(struct lot *lot, uint32_t index)
{
	_Atomic uint64_t *word = &lot->words[index];
	uint64_t state = atomic_load(word);
	bool counted = false;

	for (;;) {
		if (state & SEMA_TOKENS) {
			if (cas(word, &state,
				state - 1 - (counted ? SEMA_SLEEPER : 0)))
				return;
			continue;
		}
		if (!counted) {
			if (!cas(word, &state, state + SEMA_SLEEPER))
				continue;
			counted = true;
		}
		lot_park(lot, index, SEMA_TOKENS, 0, &wait_forever, 0);
		state = atomic_load(word);
	}
}

static void sema_release(struct lot *lot, uint32_t index, uint32_t n)
{
	int fd = lot->fd;	/* see lot_unpark() */
	uint64_t state = atomic_fetch_add(&lot->words[index], n);

	if (state >= SEMA_SLEEPER)
		lot_wake(fd, index, n);
}

static int64_t rw_add(struct lot *lot, uint32_t index, int64_t delta)
{
	return (int64_t)atomic_fetch_add(&lot->words[index],
					 (uint64_t)delta) + delta;
}

int gs_rwmutex_rlock(gs_rwmutex *rw)
{
	if (rw_add(&rw->lot, RW_READERS, 1) < 0)
		sema_acquire(&rw->lot, RW_READER_SEM);
	return 0;
}

int gs_rwmutex_tryrlock(gs_rwmutex *rw)
{
	_Atomic uint64_t *word = &rw->lot.words[RW_READERS];
	uint64_t readers = atomic_load(word);

	do {
		if ((int64_t)readers < 0)
			return -EBUSY;
	} while (!cas(word, &readers, readers + 1));
	return 0;
}

int gs_rwmutex_runlock(gs_rwmutex *rw)
{
	_Atomic uint64_t *word = &rw->lot.words[RW_READERS];
	uint64_t readers = atomic_load(word);

	do {
		/* No reader holds it: Go's "RUnlock of unlocked RWMutex". */
		if (readers == 0 || (int64_t)readers == -RW_MAX_READERS)
			return -EPERM;
	} while (!cas(word, &readers, readers - 1));
	/* A writer waits: the last departing reader lets it in. */
	if ((int64_t)readers < 0 && rw_add(&rw->lot, RW_DEPARTING, -1) == 0)
		sema_release(&rw->lot, RW_WRITER_SEM, 1);
	return 0;
}

/* Take a token of semaphore @index if it has one: 1 if taken, else 0. */
static int sema_tryacquire(struct lot *lot, uint32_t index)
{
	_Atomic uint64_t *word = &lot->words[index];
	uint64_t state = atomic_load(word);

	while (state & SEMA_TOKENS)
		if (cas(word, &state, state - 1))
			return 1;
	return 0;
}

/*
 * We took the writers' mutex with -EOWNERDEAD: finish what the dead
 * writer began. If it had announced itself (the reader count is
 * negative), we inherit its announcement and wait for the readers it
 * waited for (a token may be pending for it: taken now or, if it comes
 * late, drained at our unlock); else we announce ourselves as usual.
 */
static void rw_inherit(struct lot *lot)
{
	int64_t readers = (int64_t)atomic_load(&lot->words[RW_READERS]);

	if (readers >= 0) {
		readers = rw_add(lot, RW_READERS, -RW_MAX_READERS) +
			  RW_MAX_READERS;
		if (readers && rw_add(lot, RW_DEPARTING, readers) != 0)
			sema_acquire(lot, RW_WRITER_SEM);
		return;
	}
	if ((int64_t)atomic_load(&lot->words[RW_DEPARTING]) > 0)
		sema_acquire(lot, RW_WRITER_SEM);
	else
		sema_tryacquire(lot, RW_WRITER_SEM);
}

int gs_rwmutex_lock(gs_rwmutex *rw)
{
	int64_t readers;
	int err;

	err = mutex_lock(&rw->lot, &wait_forever);
	if (err == -EOWNERDEAD)
		rw_inherit(&rw->lot);
	if (err)
		return err;
	/* Announce the writer; wait for the readers that hold it to leave. */
	readers = rw_add(&rw->lot, RW_READERS, -RW_MAX_READERS) +
		  RW_MAX_READERS;
	if (readers && rw_add(&rw->lot, RW_DEPARTING, readers) != 0)
		sema_acquire(&rw->lot, RW_WRITER_SEM);
	return 0;
}

int gs_rwmutex_consistent(gs_rwmutex *rw)
{
	return gs_mutex_consistent((gs_mutex *)rw);
}

/*
 * rw_inherit() for a trylock, which never waits: whether we may keep the
 * writers' mutex we took with -EOWNERDEAD (no reader left to wait for).
 */
static bool rw_try_inherit(struct lot *lot)
{
	uint64_t readers = 0;

	if ((int64_t)atomic_load(&lot->words[RW_READERS]) >= 0)
		return cas(&lot->words[RW_READERS], &readers,
			   (uint64_t)-RW_MAX_READERS);
	if ((int64_t)atomic_load(&lot->words[RW_DEPARTING]) > 0)
		return false;
	sema_tryacquire(lot, RW_WRITER_SEM);
	return true;
}

/*
 * Give back the writers' mutex we took with -EOWNERDEAD, the dead
 * holder's mark kept for the next taker (whose lock waits for the
 * readers that we could not).
 */
static void mutex_give_back_dead(struct lot *lot)
{
	_Atomic uint64_t *word = &lot->words[0];
	uint64_t state = atomic_load(word);
	int fd = lot->fd;	/* see lot_unpark() */

	while (!cas(word, &state, state & ~(MUTEX_LOCKED | MUTEX_OWNER)))
		;
	if (mutex_waiters(state))
		lot_wake(fd, 0, 1);
}

int gs_rwmutex_trylock(gs_rwmutex *rw)
{
	uint64_t readers = 0;

	int err = mutex_trylock(&rw->lot);

	if (err == -EOWNERDEAD) {
		if (rw_try_inherit(&rw->lot))
			return err;
		mutex_give_back_dead(&rw->lot);
		return -EBUSY;
	}
	if (err)
		return err == -ENOTRECOVERABLE ? err : -EBUSY;
	if (!cas(&rw->lot.words[RW_READERS], &readers,
		 (uint64_t)-RW_MAX_READERS)) {
		mutex_unlock(&rw->lot);
		return -EBUSY;
	}
	return 0;
}

int gs_rwmutex_unlock(gs_rwmutex *rw)
{
	_Atomic uint64_t *word = &rw->lot.words[RW_READERS];
	uint64_t readers = atomic_load(word);

	if (checked_not_holder(&rw->lot, atomic_load(&rw->lot.words[0])))
		return -EPERM;
	do {
		/* Not write-locked: Go's "Unlock of unlocked RWMutex". */
		if ((int64_t)readers >= 0 ||
		    !(atomic_load(&rw->lot.words[0]) & MUTEX_LOCKED))
			return -EPERM;
	} while (!cas(word, &readers, readers + RW_MAX_READERS));
	/* A token a dead writer's reader sent late (see rw_inherit()). */
	sema_tryacquire(&rw->lot, RW_WRITER_SEM);
	/* Let in the readers that arrived while we held it. */
	readers += RW_MAX_READERS;
	if (readers)
		sema_release(&rw->lot, RW_READER_SEM, (uint32_t)readers);
	return mutex_unlock(&rw->lot);
}

/* ------------------------------------------------------------------ */
/* WaitGroup: sync.WaitGroup.                                           */
/*
 * Word 0 (the layout is in the uapi header, which the kernel shares):
 * the counter (bits 0..30), WG_BROKEN, WG_WAITERS (someone parks or is
 * about to), and a generation above, bumped when the counter drops to
 * zero with WG_WAITERS set and the group not broken. Waiters park on
 * (generation, WG_WAITERS, WG_BROKEN), so the counter's other moves do not
 * wake them, and a waiter returns when its generation ends even if the
 * group is reused at once. A broken group's generation does not end, so
 * its waiters see WG_BROKEN (-EOWNERDEAD) whatever the counter does.
 */
#define WG_COUNTER	GOSYNC_WG_COUNTER
#define WG_BROKEN	GOSYNC_WG_BROKEN
#define WG_WAITERS	GOSYNC_WG_WAITERS
#define WG_GEN_SHIFT	GOSYNC_WG_GEN_SHIFT
#define WG_GEN_ONE	(1ULL << WG_GEN_SHIFT)
#define WG_COUNTER_MAX	((int64_t)GOSYNC_WG_COUNTER)

struct gs_waitgroup {
	struct lot lot;
};

LOT_TYPE(waitgroup, GOSYNC_LOT_WAITGROUP)

int gs_waitgroup_create(gs_waitgroup **wgp)
{
	return waitgroup_open(wgp, -1, 0, 0);
}

int gs_waitgroup_add(gs_waitgroup *wg, int64_t delta)
{
	_Atomic uint64_t *word = &wg->lot.words[0];
	uint64_t state = atomic_load(word), new;
	int fd = wg->lot.fd;	/* see lot_unpark() */
	int64_t counter;
	bool ends;

	/* Go panics on a negative counter; we refuse the change. */
	if (delta < -WG_COUNTER_MAX || delta > WG_COUNTER_MAX)
		return -EOVERFLOW;
	do {
		counter = (int64_t)(state & WG_COUNTER) + delta;
		if (counter < 0 || counter > WG_COUNTER_MAX)
			return -EOVERFLOW;
		new = (state & ~WG_COUNTER) | (uint64_t)counter;
		ends = counter == 0 && (state & WG_WAITERS) &&
		       !(state & WG_BROKEN);
		if (ends)
			new = (state & ~(WG_COUNTER | WG_WAITERS)) + WG_GEN_ONE;
	} while (!cas(word, &state, new));
	if (ends)
		lot_wake(fd, 0, GOSYNC_LOT_ALL);
	return 0;
}

/* GOSYNC_IOC_LOT_WG_ADD: the caller's share after it, or -errno. */
static int64_t waitgroup_share_add(gs_waitgroup *wg, unsigned int flags,
				   int64_t delta)
{
	struct gosync_lot_wg_add arg = { .flags = flags, .delta = delta };
	long ret;

	if (!has_feature(GOSYNC_FEATURE_LOT_PARTIES))
		return -EOPNOTSUPP;
	do {
		ret = ioctl(wg->lot.fd, GOSYNC_IOC_LOT_WG_ADD, &arg);
		/* -EAGAIN: it lost every swap to userspace's changes. */
	} while (ret < 0 && errno == EAGAIN);
	return ret < 0 ? -errno : ret;
}

int gs_waitgroup_add_undo(gs_waitgroup *wg, int64_t delta)
{
	int64_t ret = waitgroup_share_add(wg, 0, delta);

	return ret < 0 ? (int)ret : 0;
}

int gs_waitgroup_done_undo(gs_waitgroup *wg)
{
	return gs_waitgroup_add_undo(wg, -1);
}

int gs_waitgroup_adopt(gs_waitgroup *wg, int64_t n)
{
	int64_t ret;

	if (n <= 0)
		return -EINVAL;
	ret = waitgroup_share_add(wg, GOSYNC_WG_ADOPT, n);
	return ret < 0 ? (int)ret : 0;
}

int64_t gs_waitgroup_share(gs_waitgroup *wg)
{
	return waitgroup_share_add(wg, 0, 0);
}

bool gs_waitgroup_broken(gs_waitgroup *wg)
{
	return atomic_load(&wg->lot.words[0]) & WG_BROKEN;
}

int gs_waitgroup_recover(gs_waitgroup *wg)
{
	_Atomic uint64_t *word = &wg->lot.words[0];
	uint64_t state = atomic_load(word);

	do {
		if (!(state & WG_BROKEN))
			return -EINVAL;
	} while (!cas(word, &state, state & ~WG_BROKEN));
	return 0;
}

int gs_waitgroup_done(gs_waitgroup *wg)
{
	return gs_waitgroup_add(wg, -1);
}

int64_t gs_waitgroup_count(gs_waitgroup *wg)
{
	return (int64_t)(atomic_load(&wg->lot.words[0]) & WG_COUNTER);
}

static int waitgroup_wait(gs_waitgroup *wg, const struct lot_wait *w)
{
	_Atomic uint64_t *word = &wg->lot.words[0];
	uint64_t state = atomic_load(word);
	uint64_t gen = state >> WG_GEN_SHIFT;
	int ret;

	for (;;) {
		if (state >> WG_GEN_SHIFT != gen)
			return 0;
		if (state & WG_BROKEN)
			return -EOWNERDEAD;
		if (!(state & WG_COUNTER))
			return 0;
		if (!(state & WG_WAITERS)) {
			if (!cas(word, &state, state | WG_WAITERS))
				continue;
		}
		ret = lot_park(&wg->lot, 0, ~WG_COUNTER,
			       (gen << WG_GEN_SHIFT) | WG_WAITERS, w, 0);
		if (ret == -ETIMEDOUT || ret == -ECANCELED) {
			/* Finished meanwhile? Then it is not a timeout. */
			state = atomic_load(word);
			if (state >> WG_GEN_SHIFT != gen)
				return 0;
			if (state & WG_BROKEN)
				return -EOWNERDEAD;
			return state & WG_COUNTER ? ret : 0;
		}
		if (ret && ret != -EAGAIN && ret != -EINTR)
			return ret;
		state = atomic_load(word);
	}
}

int gs_waitgroup_wait(gs_waitgroup *wg)
{
	return waitgroup_wait(wg, &wait_forever);
}

int gs_waitgroup_wait_until(gs_waitgroup *wg, uint64_t deadline,
			    unsigned int flags)
{
	struct lot_wait w = {
		.deadline = deadline, .flags = flags, .cancel_fd = -1,
	};
	int err = check_clock_flags(flags);

	return err ? err : waitgroup_wait(wg, &w);
}

int gs_waitgroup_wait_ctx(gs_waitgroup *wg, gs_ctx *ctx)
{
	struct lot_wait w;
	int err = ctx_wait(ctx, &w);

	return err ? err : gs_ctx_wait_end(ctx, waitgroup_wait(wg, &w));
}

struct go_call {
	void (*fn)(void *arg);
	void *arg;
	gs_waitgroup *wg;
};

static void *go_thread(void *p)
{
	struct go_call call = *(struct go_call *)p;

	free(p);
	call.fn(call.arg);
	if (call.wg)
		gs_waitgroup_done(call.wg);
	return NULL;
}

static int go_start(gs_waitgroup *wg, void (*fn)(void *arg), void *arg)
{
	struct go_call *call = malloc(sizeof(*call));
	pthread_attr_t attr;
	pthread_t thread;
	int err;

	if (!fn)
		return -EINVAL;
	if (!call)
		return -ENOMEM;
	*call = (struct go_call){ .fn = fn, .arg = arg, .wg = wg };
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&thread, &attr, go_thread, call);
	pthread_attr_destroy(&attr);
	if (err) {
		free(call);
		return -err;
	}
	return 0;
}

int gs_go(void (*fn)(void *arg), void *arg)
{
	return go_start(NULL, fn, arg);
}

int gs_waitgroup_go(gs_waitgroup *wg, void (*fn)(void *arg), void *arg)
{
	int err;

	if (!fn)
		return -EINVAL;
	err = gs_waitgroup_add(wg, 1);
	if (err)
		return err;
	err = go_start(wg, fn, arg);
	if (err)
		gs_waitgroup_done(wg);
	return err;
}

/* ------------------------------------------------------------------ */
/* Once: sync.Once, OnceFunc, OnceValue, OnceValues.                    */
/*
 * Word 0: ONCE_RUNNING (a caller runs the function), ONCE_DONE, and
 * ONCE_WAITERS (someone parks on ONCE_DONE). Words ONCE_VALUE and
 * ONCE_ERROR hold the result, written before ONCE_DONE is published
 * (sequentially consistent, so a caller that sees ONCE_DONE sees them).
 */
#define ONCE_RUNNING	1ULL
#define ONCE_DONE	2ULL
#define ONCE_WAITERS	4ULL
#define ONCE_VALUE	1
#define ONCE_ERROR	2

struct gs_once {
	struct lot lot;
};

LOT_TYPE(once, GOSYNC_LOT_ONCE)

int gs_once_create(gs_once **op)
{
	return once_open(op, -1, 0, 0);
}

bool gs_once_done(gs_once *o)
{
	return atomic_load(&o->lot.words[0]) & ONCE_DONE;
}

/* Run @fn once; every caller returns after it finished, with its result. */
int gs_once_value(gs_once *o, int (*fn)(void *arg, uint64_t *value),
		  void *arg, uint64_t *value)
{
	_Atomic uint64_t *word = &o->lot.words[0];
	uint64_t state = atomic_load(word), result = 0;
	int fd = o->lot.fd;	/* see lot_unpark() */
	int err;

	if (!fn)
		return -EINVAL;
	while (!(state & ONCE_DONE)) {
		if (!state) {
			if (!cas(word, &state, ONCE_RUNNING))
				continue;
			err = fn(arg, &result);
			atomic_store(&o->lot.words[ONCE_VALUE], result);
			atomic_store(&o->lot.words[ONCE_ERROR],
				     (uint64_t)(int64_t)err);
			/* Waiters may destroy @o once DONE is seen. */
			state = atomic_exchange(word, ONCE_DONE);
			if (state & ONCE_WAITERS)
				lot_wake(fd, 0, GOSYNC_LOT_ALL);
			if (value)
				*value = result;
			return err;
		}
		if (!(state & ONCE_WAITERS)) {
			if (!cas(word, &state, state | ONCE_WAITERS))
				continue;
		}
		lot_park(&o->lot, 0, ONCE_DONE, 0, &wait_forever, 0);
		state = atomic_load(word);
	}
	if (value)
		*value = atomic_load(&o->lot.words[ONCE_VALUE]);
	return (int)(int64_t)atomic_load(&o->lot.words[ONCE_ERROR]);
}

struct once_do_call {
	void (*fn)(void *arg);
	void *arg;
};

static int once_do_adapter(void *p, uint64_t *value)
{
	struct once_do_call *call = p;

	(void)value;
	call->fn(call->arg);
	return 0;
}

int gs_once_do(gs_once *o, void (*fn)(void *arg), void *arg)
{
	struct once_do_call call = { .fn = fn, .arg = arg };

	if (!fn)
		return -EINVAL;
	if (atomic_load(&o->lot.words[0]) & ONCE_DONE)
		return 0;
	gs_once_value(o, once_do_adapter, &call, NULL);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Cond: sync.Cond.                                                     */
/*
 * Go's notifyList, with the kernel keeping the list (see the Cond lots in
 * the uapi header and the protocol in kmod/lot.c): a waiter takes a
 * ticket from word COND_TICKETS while it still holds the mutex, so it is
 * waiting from that moment on, unlocks, and waits in the kernel until its
 * ticket is notified. The kernel notifies tickets in order, one per
 * Signal, all of them for a Broadcast, skipping those that left on a
 * deadline, and mirrors the count of notified tickets in COND_NOTIFIED:
 * when the two words are equal nobody waits, and Signal and Broadcast
 * stay in userspace. A waiter whose ticket is notified between its unlock
 * and its wait sees the mirror (or the kernel's count) and does not park.
 */
#define COND_TICKETS	GOSYNC_COND_TICKETS
#define COND_NOTIFIED	GOSYNC_COND_NOTIFIED

struct gs_cond {
	struct lot lot;
};

LOT_TYPE(cond, GOSYNC_LOT_COND)

int gs_cond_create(gs_cond **cp)
{
	return cond_open(cp, -1, 0, 0);
}

static bool cond_ticket_notified(gs_cond *c, uint64_t ticket)
{
	uint64_t notified = atomic_load(&c->lot.words[COND_NOTIFIED]);

	return (int64_t)(ticket - notified) < 0;
}

/* Wait for @ticket: 0 once notified, -ETIMEDOUT, -EINTR, or an error. */
static int cond_wait_ticket(gs_cond *c, uint64_t ticket, uint64_t deadline,
			    unsigned int flags)
{
	struct gosync_lot_cond_wait arg = {
		.ticket = ticket, .deadline = deadline, .flags = flags,
	};

	if (cond_ticket_notified(c, ticket))
		return 0;
	return ioctl(c->lot.fd, GOSYNC_IOC_LOT_COND_WAIT, &arg) < 0 ? -errno : 0;
}

static void cond_wake(gs_cond *c, uint32_t count)
{
	_Atomic uint64_t *words = c->lot.words;

	/*
	 * A waiter that took its ticket before this call makes the words
	 * differ until its ticket is notified or it has left.
	 */
	if (atomic_load(&words[COND_TICKETS]) ==
	    atomic_load(&words[COND_NOTIFIED]))
		return;
	ioctl(c->lot.fd, GOSYNC_IOC_LOT_COND_NOTIFY, &count);
}

int gs_cond_wait_until(gs_cond *c, gs_mutex *m, uint64_t deadline,
		       unsigned int flags)
{
	uint64_t ticket;
	int ret = check_clock_flags(flags), err;

	if (ret)
		return ret;
	/* Wait without holding the lock: refuse, change nothing. */
	if (!(atomic_load(&m->lot.words[0]) & MUTEX_LOCKED))
		return -EPERM;
	ticket = atomic_fetch_add(&c->lot.words[COND_TICKETS], 1);
	ret = mutex_unlock(&m->lot);
	if (ret) {
		/*
		 * Another thread unlocked it meanwhile (a misuse): leave at
		 * once, and pass on a Signal that reached the ticket first.
		 */
		if (cond_wait_ticket(c, ticket, 1, 0) == 0)
			cond_wake(c, 1);
		return ret;
	}
	do
		ret = cond_wait_ticket(c, ticket, deadline, flags);
	while (ret == -EINTR);
	/* Relocked after its holder died, or never again: say so. */
	err = mutex_lock(&m->lot, &wait_forever);
	return err ? err : ret;
}

int gs_cond_wait(gs_cond *c, gs_mutex *m)
{
	return gs_cond_wait_until(c, m, GS_FOREVER, 0);
}

void gs_cond_signal(gs_cond *c)
{
	cond_wake(c, 1);
}

void gs_cond_broadcast(gs_cond *c)
{
	cond_wake(c, GOSYNC_LOT_ALL);
}

/* ------------------------------------------------------------------ */
/* CyclicBarrier (github.com/marusama/cyclicbarrier).                  */
/*
 * Word 0: arrivals in the current round (low 32 bits), BARRIER_BROKEN,
 * and the round number above. Waiters park on (round, BROKEN), so other
 * arrivals do not wake them. A round ends exactly once, by one
 * compare-and-swap that moves to the next round: by its last arriver
 * (passed) or by a reset (broken). That thread then records the outcome
 * in the round's slot of a ring of BARRIER_HISTORY words, which a waiter
 * that finds its round over reads (waiting a moment if the recorder has
 * not written it yet). A waiter that slept through BARRIER_HISTORY more
 * rounds finds its slot reused and reports that its round passed.
 * A round broken by a timeout or a failed action stays current, broken,
 * until a reset.
 */
#define BARRIER_COUNT		GOSYNC_BARRIER_COUNT
#define BARRIER_BROKEN		GOSYNC_BARRIER_BROKEN
#define BARRIER_ROUND_SHIFT	GOSYNC_BARRIER_ROUND_SHIFT
#define BARRIER_ROUND_MASK	((1ULL << (64 - BARRIER_ROUND_SHIFT)) - 1)
#define BARRIER_HISTORY		256
#define BARRIER_RING		8	/* first word of the ring */
#define BARRIER_MAX_PARTIES	0x7fffffffULL

struct gs_barrier {
	struct lot lot;
	int (*action)(void *arg);
	void *arg;
};

LOT_TYPE(barrier, GOSYNC_LOT_BARRIER)

int gs_barrier_create(gs_barrier **bp, uint32_t parties,
		      int (*action)(void *arg), void *arg)
{
	int err;

	if (parties < 1 || parties > BARRIER_MAX_PARTIES)
		return -EINVAL;
	err = barrier_open(bp, -1, parties, 0);
	if (!err)
		gs_barrier_set_action(*bp, action, arg);
	return err;
}

void gs_barrier_set_action(gs_barrier *b, int (*action)(void *arg),
			   void *arg)
{
	b->action = action;
	b->arg = arg;
}

static uint64_t barrier_round(uint64_t state)
{
	return state >> BARRIER_ROUND_SHIFT;
}

static uint64_t barrier_next(uint64_t state)
{
	return ((barrier_round(state) + 1) & BARRIER_ROUND_MASK)
	       << BARRIER_ROUND_SHIFT;
}

/* The ring slot's value saying how @round ended (0 means never written). */
static uint64_t barrier_outcome(uint64_t round, bool broken)
{
	return ((round + 1) << 1) | broken;
}

static _Atomic uint64_t *barrier_slot(gs_barrier *b, uint64_t round)
{
	return &b->lot.words[BARRIER_RING + round % BARRIER_HISTORY];
}

/* How did @round, which is over, end? 0 (passed) or -EPIPE (broken). */
static int barrier_result(gs_barrier *b, uint64_t round)
{
	uint64_t slot;

	for (;;) {
		slot = atomic_load(barrier_slot(b, round));
		if ((slot >> 1) == round + 1)
			return slot & 1 ? -EPIPE : 0;
		/* A later round's record: ours was overwritten, it passed. */
		if ((slot >> 1) > round + 1)
			return 0;
		/* Its recorder has ended the round but not yet written. */
		sched_yield();
	}
}

/*
 * End @state's round by moving to the next; false if it changed. The
 * round's waiters do not leave before they read its slot, so the page is
 * still there for the slot's store.
 *
 * The outcome is also recorded before the round ends, over an older
 * round's record only (a compare-and-swap), so that a process killed
 * between the end and the store still leaves it for the waiters (whom
 * the kernel then wakes, the dead party's undo). Waiters read the slot
 * only once the round is over, so an early record is never seen early;
 * of two enders racing (the last arriver, a reset), the first to record
 * is overwritten by the winner's store after its end, unless the winner
 * dies in between: then the waiters may get the loser's outcome.
 */
static bool barrier_end_round(gs_barrier *b, uint64_t *state, bool broken)
{
	uint64_t round = barrier_round(*state);
	_Atomic uint64_t *slot = barrier_slot(b, round);
	uint64_t outcome = barrier_outcome(round, broken);
	uint64_t old = atomic_load(slot);
	int fd = b->lot.fd;	/* see lot_unpark() */

	if ((old >> 1) < round + 1)
		atomic_compare_exchange_strong(slot, &old, outcome);
	if (!cas(&b->lot.words[0], state, barrier_next(*state)))
		return false;
	atomic_store(slot, outcome);
	lot_wake(fd, 0, GOSYNC_LOT_ALL);
	return true;
}

/* Break the round of @state (a timeout, a failed action). */
static bool barrier_break(gs_barrier *b, uint64_t *state)
{
	int fd = b->lot.fd;	/* see lot_unpark() */

	if (!cas(&b->lot.words[0], state, *state | BARRIER_BROKEN))
		return false;
	lot_wake(fd, 0, GOSYNC_LOT_ALL);
	return true;
}

/*
 * Park for the end of @round. Should we be killed meanwhile, the kernel
 * breaks the round for the others (GOSYNC_LOT_PARK_BREAK sets BROKEN
 * while the word still shows this round unbroken, and unparks them).
 */
static int barrier_park(gs_barrier *b, uint64_t round,
			const struct lot_wait *w)
{
	struct gosync_lot_park arg = {
		.index = 0, .flags = GOSYNC_LOT_PARK_BREAK,
		.mask = ~BARRIER_COUNT,
		.expected = round << BARRIER_ROUND_SHIFT,
		.reserved = 32,	/* BROKEN */
	};
	int ret = park_ioctl(b->lot.fd, &arg, w);

	if (ret == -EINVAL) {
		/* A module without GOSYNC_FEATURE_LOT_UNDO. */
		return lot_park(&b->lot, 0, ~BARRIER_COUNT,
				round << BARRIER_ROUND_SHIFT, w, 0);
	}
	return ret;
}

/*
 * Arrive in the kernel (GOSYNC_FEATURE_LOT_PARTIES), which records our
 * process as inside await of the round, so that its death anywhere in
 * here breaks the round. Return: 1 (we are the last arriver), or the
 * first park's result (0, -ETIMEDOUT, -ECANCELED, -EINTR: arrived), or
 * -EPIPE, -EBUSY (a full round: wait for the next), -EAGAIN (@round is
 * over, or retry), -ENOSPC, -ENOMEM, -EBADF (not arrived).
 */
static int barrier_arrive(gs_barrier *b, uint64_t round,
			  const struct lot_wait *w)
{
	struct gosync_lot_arrive arg = {
		.deadline = w->deadline, .round = round,
	};
	int ret;

	arg.flags = wait_flags(w, &arg.cancel_fd);
	ret = ioctl(b->lot.fd, GOSYNC_IOC_LOT_ARRIVE, &arg);
	return ret < 0 ? -errno : ret;
}

static int barrier_await(gs_barrier *b, const struct lot_wait *w)
{
	_Atomic uint64_t *word = &b->lot.words[0];
	uint64_t parties = b->lot.param, state, round;
	bool in_kernel = has_feature(GOSYNC_FEATURE_LOT_PARTIES);
	int ret = 0;

	/* Arrive; while the last arriver of a full round works, wait. */
	state = atomic_load(word);
	for (;;) {
		if (state & BARRIER_BROKEN)
			return -EPIPE;
		if ((state & BARRIER_COUNT) < parties && in_kernel) {
			round = barrier_round(state);
			ret = barrier_arrive(b, round, w);
			if (ret >= 0 || ret == -ETIMEDOUT ||
			    ret == -ECANCELED || ret == -EINTR)
				break;
			if (ret != -EBUSY && ret != -EAGAIN && ret != -EPIPE)
				return ret;
			state = atomic_load(word);
			continue;
		}
		if ((state & BARRIER_COUNT) < parties) {
			if (cas(word, &state, state + 1)) {
				state++;
				round = barrier_round(state);
				ret = (state & BARRIER_COUNT) == parties;
				break;
			}
			continue;
		}
		ret = lot_park(&b->lot, 0, ~BARRIER_COUNT,
			       state & ~BARRIER_COUNT, w, 0);
		if (ret && ret != -EAGAIN && ret != -EINTR)
			return ret;
		state = atomic_load(word);
	}

	if (ret == 1) {
		ret = b->action ? b->action(b->arg) : 0;
		for (;;) {
			if (barrier_round(state) != round)
				return -EPIPE;	/* reset meanwhile */
			if (state & BARRIER_BROKEN)
				return ret ? ret : -EPIPE;
			if (ret ? barrier_break(b, &state) :
				  barrier_end_round(b, &state, false))
				return ret;
		}
	}

	for (;;) {
		ret = barrier_park(b, round, w);
		state = atomic_load(word);
		if (barrier_round(state) != round)
			return barrier_result(b, round);
		if (state & BARRIER_BROKEN)
			return -EPIPE;
		if (!ret || ret == -EAGAIN || ret == -EINTR)
			continue;
		if (ret != -ETIMEDOUT && ret != -ECANCELED)
			return ret;
		/*
		 * Our deadline (or context): break the round, unless it is
		 * complete and only waits for its last arriver's action
		 * (then wait for the outcome, which comes without us).
		 */
		if ((state & BARRIER_COUNT) < parties) {
			if (barrier_break(b, &state))
				return ret;
			continue;
		}
		w = &wait_forever;
	}
}

int gs_barrier_await(gs_barrier *b)
{
	return barrier_await(b, &wait_forever);
}

int gs_barrier_await_until(gs_barrier *b, uint64_t deadline,
			   unsigned int flags)
{
	struct lot_wait w = {
		.deadline = deadline, .flags = flags, .cancel_fd = -1,
	};
	int err = check_clock_flags(flags);

	return err ? err : barrier_await(b, &w);
}

int gs_barrier_await_ctx(gs_barrier *b, gs_ctx *ctx)
{
	struct lot_wait w;
	int err = ctx_wait(ctx, &w);

	return err ? err : gs_ctx_wait_end(ctx, barrier_await(b, &w));
}

int gs_barrier_reset(gs_barrier *b)
{
	uint64_t state = atomic_load(&b->lot.words[0]);

	while (!barrier_end_round(b, &state, true))
		;
	return 0;
}

uint32_t gs_barrier_parties(const gs_barrier *b)
{
	return (uint32_t)b->lot.param;
}

uint32_t gs_barrier_waiting(gs_barrier *b)
{
	return (uint32_t)(atomic_load(&b->lot.words[0]) & BARRIER_COUNT);
}

bool gs_barrier_broken(gs_barrier *b)
{
	return atomic_load(&b->lot.words[0]) & BARRIER_BROKEN;
}
