// SPDX-License-Identifier: GPL-2.0
/*
 * gosync weighted semaphores: golang.org/x/sync/semaphore as a kernel
 * object, with an optional userspace fast path on a shared page.
 *
 * The fast-path protocol (see the comment above GOSYNC_SEM_WAITERS in the
 * uapi header for the userspace half):
 *
 *  - The state word lives in a kernel-allocated page (sem->shared) that
 *    userspace may map. It holds the free count and two flags. Userspace
 *    only ever changes it by compare-and-swap of the whole word, and only
 *    while the relevant flag is clear: acquires while WAITERS is clear,
 *    releases while WAITERS and POLLED are both clear.
 *  - The kernel changes the word with atomic read-modify-write operations
 *    (compare-and-swap loops where a check must hold at the moment of the
 *    change), always under sem->lock, sem_try_take() included, so kernel
 *    updates are serialised among themselves and atomic with respect to
 *    userspace. (The try once ran without the lock; it now needs the lock
 *    to read the queue, below, and to bound its loop with the fence.)
 *  - Whether anybody waits is the kernel's queue (@nr_waiters), not the
 *    WAITERS bit: a kernel try takes nothing while the queue is non-empty,
 *    even if the bit was wiped from the page. The two agree whenever
 *    sem->lock is free: the bit is set before a waiter is queued and
 *    cleared only when the queue is empty, both under the lock.
 *  - A blocking acquirer takes sem->lock, sets WAITERS, queues itself and
 *    then runs sem_grant(), which re-reads the count. A userspace release
 *    either completed before WAITERS was set (its permits are then seen by
 *    that re-read) or its compare-and-swap fails, it re-reads, sees
 *    WAITERS and enters the kernel, where it takes sem->lock after us and
 *    serves the queue. Either way no permit is stranded while someone
 *    sleeps: there is no lost wake-up.
 *  - While WAITERS is set no userspace acquire can overtake the queue,
 *    which keeps acquisition strictly FIFO, as in Go.
 *  - poll() sets POLLED (under sem->lock) before deciding that the
 *    semaphore is not readable, with the same argument: a release either
 *    happened before (and poll sees its permits) or sees POLLED and
 *    enters the kernel, which wakes the poll queue. The model in
 *    spin/sem.pml checks both arguments (make check runs it).
 *  - Every compare-and-swap loop of the kernel is bounded, since the word
 *    is userspace's to write at any time. A loop that has lost SEM_TRIES
 *    swaps sets WAITERS with one atomic OR (the fence, which cannot
 *    fail): from then on a userspace that follows the protocol changes
 *    nothing, since each of its swaps expects a word without WAITERS, so
 *    a swap lost after the fence proves a writer outside the protocol.
 *    After SEM_TRIES more the loop gives up: the ioctl returns -EIO, "the
 *    word kept changing under the kernel", having changed nothing (but a
 *    release whose permits were added, and whose serving of the queue then
 *    gave up, returns 0: the waiters stay queued for a later grant or
 *    their deadline). Before the lock is dropped the fence is lifted
 *    again if nobody is queued, so that the fast path resumes. The loop
 *    is sem_change(); each run of it loses at most 2 * SEM_TRIES swaps,
 *    and an ioctl runs it once for its own change and, in the grants it
 *    makes, once per waiter served and once per head that does not fit,
 *    whatever the page holds. A cooperating userspace never sees -EIO:
 *    SEM_TRIES of its swaps would have to succeed each in the few
 *    instructions between two of the kernel's to need the fence at all,
 *    and after the fence none can.
 *
 * Nothing read from the page is trusted beyond its value: counts may be
 * nonsense after a scribble, but they are never used as an index or a
 * size, and every addition is bounds-checked against sem->size, which
 * lives in kernel memory.
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "gosync.h"
#include "gosync_trace.h"

/* The shared state fits in the one page a semaphore maps. */
static_assert(sizeof(struct gosync_sem_shared) <= PAGE_SIZE);

struct gosync_sem {
	struct gosync_obj obj;		/* first: the page holds the state */
	/*
	 * Protects @waiters, @nr_waiters, every waiter's @served flag and
	 * serialises the kernel's updates of the shared state word.
	 */
	spinlock_t lock;
	struct list_head waiters;	/* FIFO of struct sem_waiter */
	u32 nr_waiters;
	u64 size;			/* immutable after creation */
	atomic64_t *state;		/* = obj.shared */
	wait_queue_head_t pollq;	/* poll() and epoll waiters */
	atomic64_t slow_acquires;
	atomic64_t slow_releases;
	atomic64_t lost_swaps;		/* kernel swaps lost to userspace */
	atomic64_t gave_up;		/* calls that gave up with -EIO */
	/* Undo (GOSYNC_SEM_UNDO): records of the processes, under @lock. */
	struct list_head undos;		/* struct sem_undo */
	u32 nr_undos;
	u64 undone;			/* permits given back by undo */
	u64 undo_clamped;		/* undo permits dropped at the size */
};

/*
 * What one process holds with undo. Keyed by the process (its thread
 * group's struct pid, referenced, so the key is never reused while the
 * record lives) and the image (self_exec_id: an exec leaves a record of
 * the old image to be applied). Exists while @held or @busy is non-zero.
 */
struct sem_undo {
	struct list_head node;
	struct pid *tgid;
	u64 exec_id;
	u64 held;	/* permits this process holds with undo */
	u32 busy;	/* undo acquires of the process queued on it */
};

/* file->private_data is the semaphore and its struct gosync_obj. */
static_assert(offsetof(struct gosync_sem, obj) == 0);

/* A blocked acquirer; lives on its own stack for the length of the wait. */
struct sem_waiter {
	struct list_head node;
	struct task_struct *task;
	u64 count;
	struct sem_undo *undo;	/* credited by sem_grant(), or NULL */
	bool served;	/* set once, under sem->lock, by sem_grant() */
};

static u64 sem_count(u64 state)
{
	return state & GOSYNC_SEM_COUNT_MASK;
}

/* Lost swaps after which a change fences the fast path off, then gives up. */
#define SEM_TRIES	GOSYNC_SEM_TRIES

/*
 * Change the word's free count under sem->lock: take @count permits
 * (-EAGAIN if fewer are free) or, with @put, give them back (-EOVERFLOW
 * if the count would pass the size; POLLED is cleared, the caller wakes
 * the pollers). The one compare-and-swap loop of the kernel, bounded as
 * the head of this file says: -EIO when it gave up. Nothing changes
 * unless it returns 0.
 */
static int sem_change(struct gosync_sem *sem, u64 count, bool put)
{
	u64 state = atomic64_read(sem->state), free, new;
	unsigned int lost = 0;
	int ret;

	lockdep_assert_held(&sem->lock);
	for (;;) {
		free = sem_count(state);
		if (put && (free > sem->size || count > sem->size - free)) {
			ret = -EOVERFLOW;
			break;
		}
		if (!put && count > free) {
			ret = -EAGAIN;
			break;
		}
		if (lost == 2 * SEM_TRIES) {
			atomic64_inc(&sem->gave_up);
			ret = -EIO;
			break;
		}
		new = put ? (state + count) & ~GOSYNC_SEM_POLLED : state - count;
		if (atomic64_try_cmpxchg(sem->state, &state, new)) {
			ret = 0;
			break;
		}
		atomic64_inc(&sem->lost_swaps);
		if (++lost == SEM_TRIES)	/* the fence */
			state = atomic64_fetch_or(GOSYNC_SEM_WAITERS,
						  sem->state) |
				GOSYNC_SEM_WAITERS;
	}
	/* Lift the fence, unless somebody is queued (they need it set). */
	if (lost >= SEM_TRIES && list_empty(&sem->waiters))
		atomic64_andnot(GOSYNC_SEM_WAITERS, sem->state);
	return ret;
}

/*
 * Serve queued waiters in FIFO order while the head's count fits, and
 * clear WAITERS once the queue is empty. Returns 0, or -EIO when it gave
 * up (the waiters not served yet stay queued, WAITERS stays set).
 */
static int sem_grant(struct gosync_sem *sem, struct gosync_wakeups *wk)
{
	struct sem_waiter *w;
	u32 woken = 0;
	int ret = 0;

	lockdep_assert_held(&sem->lock);
	while ((w = list_first_entry_or_null(&sem->waiters, struct sem_waiter,
					     node))) {
		struct task_struct *task = w->task;

		ret = sem_change(sem, w->count, false);
		if (ret)	/* -EAGAIN: the head does not fit */
			break;
		list_del(&w->node);
		sem->nr_waiters--;
		/* Atomic with the take: a death after it gives them back. */
		if (w->undo)
			w->undo->held += w->count;
		/* After this store the waiter may return: w is not touched. */
		smp_store_release(&w->served, true);
		if (task != current) {
			gosync_wake_add(wk, task);
			woken++;
		}
	}
	if (woken)
		trace_gosync_wake(sem->obj.id, GOSYNC_TRACE_ACQUIRE, woken, true);
	if (ret)
		return ret == -EAGAIN ? 0 : ret;
	atomic64_andnot(GOSYNC_SEM_WAITERS, sem->state);
	return 0;
}

/*
 * Take @count permits if they are free and nobody is queued: 0, -EAGAIN
 * or -EIO (gave up; nothing taken).
 */
static int sem_try_take(struct gosync_sem *sem, u64 count)
{
	lockdep_assert_held(&sem->lock);
	if (sem->nr_waiters)
		return -EAGAIN;
	return sem_change(sem, count, false);
}

/* A call from userspace, whose fast path could not do it (gosync_kick). */
static void sem_trace_kick(struct gosync_sem *sem, u32 op)
{
	if (trace_gosync_kick_enabled())
		trace_gosync_kick(sem->obj.id, op, atomic64_read(sem->state));
}

static void sem_wake_pollers(struct gosync_sem *sem)
{
	gosync_wake_pollers(&sem->pollq, EPOLLIN | EPOLLRDNORM);
}

/*
 * Take the unserved @w off the queue; whoever is now at the head may fit
 * where @w did not. Returns true when nobody is left queued.
 */
static bool sem_leave(struct gosync_sem *sem, struct sem_waiter *w,
		      struct gosync_wakeups *wk)
{
	bool was_head;

	lockdep_assert_held(&sem->lock);
	was_head = list_first_entry(&sem->waiters, struct sem_waiter,
				    node) == w;
	list_del(&w->node);
	sem->nr_waiters--;
	/* A grant that gives up leaves the others queued: they time out. */
	if (was_head || list_empty(&sem->waiters))
		sem_grant(sem, wk);
	return list_empty(&sem->waiters);
}

/*
 * Undo (GOSYNC_SEM_UNDO, SysV's SEM_UNDO): the kernel counts, per process,
 * the permits it took with the flag and has not given back with
 * GOSYNC_IOC_SEM_RELEASE_UNDO, and releases them when the process can no
 * longer do it: when it exits, when it execs, or when it closes its last
 * descriptor of the semaphore (sem_flush()). The count must be the
 * kernel's, changed under sem->lock in the same step as the free count
 * (sem_grant() credits a served waiter): a counter kept in userspace
 * beside the word would leave a window between the two changes in which a
 * SIGKILL loses permits or frees some twice. So undo acquires and releases
 * always enter the kernel; the plain fast path is unchanged.
 *
 * Records are charged to the caller, at most SEM_UNDO_MAX per semaphore
 * (-ENOSPC beyond), keyed by process, not by file: a forked child shares
 * the file but not its parent's record (SysV: undo is not inherited).
 */
#define SEM_UNDO_MAX	1024

static struct sem_undo *sem_undo_find(struct gosync_sem *sem,
				      struct pid *tgid)
{
	struct sem_undo *u;

	lockdep_assert_held(&sem->lock);
	list_for_each_entry(u, &sem->undos, node)
		if (u->tgid == tgid)
			return u;
	return NULL;
}

/*
 * Give @u's permits back as a release does, but never past the size: if
 * the word has more free permits than size - held (a plain release of
 * undo permits, or a scribble), only what fits goes back and the rest is
 * counted in @undo_clamped. The caller serves the queue and wakes pollers.
 * Returns true when anything was given back.
 */
static bool sem_undo_apply(struct gosync_sem *sem, struct sem_undo *u)
{
	u64 held = u->held, free, n = 0;
	unsigned int tries;
	int ret = -EOVERFLOW;

	lockdep_assert_held(&sem->lock);
	u->held = 0;
	if (!held)
		return false;
	for (tries = 0; tries < SEM_TRIES && ret == -EOVERFLOW; tries++) {
		free = sem_count(atomic64_read(sem->state));
		n = free > sem->size ? 0 : min(held, sem->size - free);
		ret = sem_change(sem, n, true);
	}
	if (ret)
		n = 0;
	sem->undone += n;
	sem->undo_clamped += held - n;
	return n;
}

/* Free @u once it holds nothing and no acquire of its process uses it. */
static void sem_undo_put(struct gosync_sem *sem, struct sem_undo *u)
{
	lockdep_assert_held(&sem->lock);
	if (u->held || u->busy)
		return;
	list_del(&u->node);
	sem->nr_undos--;
	put_pid(u->tgid);
	kfree(u);
}

/*
 * The calling process's record, or NULL. A record left by the image
 * before an exec (a descriptor kept open across it) is applied first;
 * *@gave is set when that gave permits back.
 */
static struct sem_undo *sem_undo_mine(struct gosync_sem *sem, bool *gave)
{
	struct sem_undo *u = sem_undo_find(sem, task_tgid(current));
	u64 exec_id = READ_ONCE(current->self_exec_id);

	if (u && u->exec_id != exec_id) {
		*gave |= sem_undo_apply(sem, u);
		u->exec_id = exec_id;
	}
	return u;
}

/*
 * The record an undo acquire credits, pinned (@busy) until the acquire
 * ends: the caller's own, or @fresh, which is then consumed (*@fresh =
 * NULL). -ENOSPC when the semaphore has SEM_UNDO_MAX records already.
 */
static struct sem_undo *sem_undo_get(struct gosync_sem *sem,
				     struct sem_undo **fresh, bool *gave)
{
	struct sem_undo *u = sem_undo_mine(sem, gave);

	if (!u) {
		if (sem->nr_undos >= SEM_UNDO_MAX)
			return ERR_PTR(-ENOSPC);
		u = *fresh;
		*fresh = NULL;
		u->tgid = get_pid(task_tgid(current));
		u->exec_id = READ_ONCE(current->self_exec_id);
		list_add_tail(&u->node, &sem->undos);
		sem->nr_undos++;
	}
	u->busy++;
	return u;
}

static long sem_acquire(struct gosync_sem *sem,
			const struct gosync_sem_acquire __user *uarg)
{
	struct sem_waiter w = { .task = current };
	struct sem_undo *fresh = NULL, *u = NULL;
	struct gosync_wakeups wk = { 0 };
	struct gosync_sem_acquire arg;
	bool queued = false, nobody_left = false, gave = false;
	struct gosync_cancel cancel;
	struct gosync_blocked blk;
	struct gosync_deadline dl;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.count > GOSYNC_SEM_MAX ||
	    (arg.flags & ~(GOSYNC_CLOCK_REALTIME | GOSYNC_WAIT_CANCEL_FD |
			   GOSYNC_SEM_UNDO)))
		return -EINVAL;
	gosync_deadline_init(&dl, arg.deadline,
			     arg.flags & GOSYNC_CLOCK_REALTIME);
	ret = gosync_cancel_init(&cancel, arg.flags, arg.cancel_fd);
	if (ret)
		return ret;
	gosync_blocked_init(&blk, sem->obj.id, GOSYNC_TRACE_SEM,
			    GOSYNC_TRACE_NO_KIND, GOSYNC_TRACE_ACQUIRE, 0, &dl,
			    &cancel);
	if (arg.flags & GOSYNC_SEM_UNDO) {
		fresh = kzalloc(sizeof(*fresh), GOSYNC_GFP);
		if (!fresh) {
			gosync_cancel_exit(&cancel);
			return -ENOMEM;
		}
	}
	atomic64_inc(&sem->slow_acquires);
	sem_trace_kick(sem, GOSYNC_TRACE_ACQUIRE);

	spin_lock(&sem->lock);
	if (arg.flags & GOSYNC_SEM_UNDO) {
		u = sem_undo_get(sem, &fresh, &gave);
		if (IS_ERR(u)) {
			ret = PTR_ERR(u);
			u = NULL;
			goto unlock;
		}
		if (gave)
			sem_grant(sem, &wk);
	}
	ret = sem_try_take(sem, arg.count);
	if (!ret && u)
		u->held += arg.count;
	if (ret == -EAGAIN && gosync_deadline_passed(&dl))
		ret = -ETIMEDOUT;
	/* A count above the size can never be served: it waits unqueued. */
	queued = ret == -EAGAIN && arg.count <= sem->size;
	if (queued) {
		w.count = arg.count;
		w.undo = u;
		atomic64_or(GOSYNC_SEM_WAITERS, sem->state);
		list_add_tail(&w.node, &sem->waiters);
		sem->nr_waiters++;
		if (sem_grant(sem, &wk) && !w.served) {
			nobody_left = sem_leave(sem, &w, &wk);
			queued = false;
			ret = -EIO;
		}
	}
unlock:
	/* Queued or not (above the size); not if its own grant served it. */
	if (ret == -EAGAIN && !w.served)
		trace_gosync_block(sem->obj.id, GOSYNC_TRACE_ACQUIRE, 0,
				   arg.count);
	spin_unlock(&sem->lock);
	kfree(fresh);
	gosync_wake_all(&wk);
	if (!queued) {
		if (ret == -EAGAIN)
			ret = gosync_wait_until(&w.served, &dl, &cancel, &blk);
		goto out;
	}

	ret = gosync_wait_until(&w.served, &dl, &cancel, &blk);
	if (!ret)
		goto out;

	spin_lock(&sem->lock);
	if (w.served)
		/* Served before we noticed the signal or deadline: keep it. */
		ret = 0;
	else
		nobody_left = sem_leave(sem, &w, &wk);
	spin_unlock(&sem->lock);
	gosync_wake_all(&wk);
out:
	gosync_cancel_exit(&cancel);
	if (u) {
		spin_lock(&sem->lock);
		u->busy--;
		sem_undo_put(sem, u);
		spin_unlock(&sem->lock);
	}
	if (nobody_left || gave)
		sem_wake_pollers(sem);
	return ret;
}

static long sem_try_acquire(struct gosync_sem *sem, const u64 __user *uarg)
{
	u64 count;
	int ret;

	if (get_user(count, uarg))
		return -EFAULT;
	if (count > GOSYNC_SEM_MAX)
		return -EINVAL;
	atomic64_inc(&sem->slow_acquires);
	sem_trace_kick(sem, GOSYNC_TRACE_ACQUIRE);
	spin_lock(&sem->lock);
	ret = sem_try_take(sem, count);
	spin_unlock(&sem->lock);
	return ret;
}

/*
 * Give back @*uarg permits; with @undo, permits the calling process holds
 * with undo (-EOVERFLOW beyond them), which its record then no longer
 * counts.
 */
static long sem_release(struct gosync_sem *sem, const u64 __user *uarg,
			bool undo)
{
	struct gosync_wakeups wk = { 0 };
	struct sem_undo *u = NULL;
	bool gave = false;
	int ret = 0;
	u64 count;

	if (get_user(count, uarg))
		return -EFAULT;
	if (count > GOSYNC_SEM_MAX)
		return -EINVAL;
	atomic64_inc(&sem->slow_releases);
	sem_trace_kick(sem, GOSYNC_TRACE_RELEASE);

	spin_lock(&sem->lock);
	if (undo) {
		u = sem_undo_mine(sem, &gave);
		if (!u || count > u->held)
			ret = -EOVERFLOW;
	}
	if (!ret)
		ret = sem_change(sem, count, true);
	if (!ret) {
		if (u)
			u->held -= count;
		gave = true;
	}
	/* Permits are back; a grant that gives up leaves waiters queued. */
	if (gave)
		sem_grant(sem, &wk);
	if (u)
		sem_undo_put(sem, u);
	spin_unlock(&sem->lock);
	gosync_wake_all(&wk);
	if (gave)
		sem_wake_pollers(sem);
	return ret;
}

/* How many permits the calling process holds with undo. */
static long sem_undo_held(struct gosync_sem *sem, u64 __user *uarg)
{
	struct sem_undo *u;
	u64 held = 0;

	spin_lock(&sem->lock);
	u = sem_undo_find(sem, task_tgid(current));
	if (u && u->exec_id == READ_ONCE(current->self_exec_id))
		held = u->held;
	spin_unlock(&sem->lock);
	return put_user(held, uarg);
}

/*
 * Runs at every close of a descriptor of the semaphore: close(), dup2()
 * over it, an exec's close of CLOEXEC descriptors, and exit_files() for
 * each descriptor left open when a process exits. The caller's record is
 * applied when its process is gone (the last thread exits), has exec'ed
 * (a new image cannot know what the old one held), or has no descriptor
 * of the semaphore left. Records of processes that no longer exist at
 * all (one that shared its descriptor table with another process, or
 * took permits while another of its threads closed the last descriptor)
 * are applied here too, whoever closes.
 */
static int sem_flush(struct file *file, fl_owner_t id)
{
	struct gosync_sem *sem = file->private_data;
	struct gosync_wakeups wk = { 0 };
	struct sem_undo *u, *tmp;
	bool gone, gave = false;

	if (!READ_ONCE(sem->nr_undos))
		return 0;
	gone = gosync_flush_is_last(file);

	spin_lock(&sem->lock);
	u = sem_undo_find(sem, task_tgid(current));
	if (u && (gone || u->exec_id != READ_ONCE(current->self_exec_id))) {
		gave |= sem_undo_apply(sem, u);
		u->exec_id = READ_ONCE(current->self_exec_id);
	}
	list_for_each_entry_safe(u, tmp, &sem->undos, node) {
		if (u->held && !pid_has_task(u->tgid, PIDTYPE_TGID))
			gave |= sem_undo_apply(sem, u);
		sem_undo_put(sem, u);
	}
	if (gave)
		sem_grant(sem, &wk);
	spin_unlock(&sem->lock);
	gosync_wake_all(&wk);
	if (gave)
		sem_wake_pollers(sem);
	return 0;
}

/* The last reference is gone: free the records (nobody can use them). */
static void sem_destroy(struct gosync_obj *obj)
{
	struct gosync_sem *sem = container_of(obj, struct gosync_sem, obj);
	struct sem_undo *u, *tmp;

	list_for_each_entry_safe(u, tmp, &sem->undos, node) {
		list_del(&u->node);
		put_pid(u->tgid);
		kfree(u);
	}
}

static long sem_status(struct gosync_sem *sem,
		       struct gosync_sem_status __user *uarg)
{
	struct gosync_sem_status st = { .size = sem->size };

	spin_lock(&sem->lock);
	st.state = atomic64_read(sem->state);
	st.waiters = sem->nr_waiters;
	spin_unlock(&sem->lock);
	st.slow_acquires = atomic64_read(&sem->slow_acquires);
	st.slow_releases = atomic64_read(&sem->slow_releases);
	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long sem_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct gosync_sem *sem = file->private_data;
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case GOSYNC_IOC_SEM_ACQUIRE:
		return sem_acquire(sem, argp);
	case GOSYNC_IOC_SEM_TRY_ACQUIRE:
		return sem_try_acquire(sem, argp);
	case GOSYNC_IOC_SEM_RELEASE:
		return sem_release(sem, argp, false);
	case GOSYNC_IOC_SEM_STATUS:
		return sem_status(sem, argp);
	case GOSYNC_IOC_SEM_RELEASE_UNDO:
		return sem_release(sem, argp, true);
	case GOSYNC_IOC_SEM_UNDO_HELD:
		return sem_undo_held(sem, argp);
	default:
		return -ENOTTY;
	}
}

/* Readable when an acquire of one permit would succeed now. */
static __poll_t sem_poll(struct file *file, poll_table *pt)
{
	struct gosync_sem *sem = file->private_data;
	__poll_t mask = 0;
	u64 state;

	poll_wait(file, &sem->pollq, pt);
	spin_lock(&sem->lock);
	state = atomic64_read(sem->state);
	/*
	 * Not readable: make the next release enter the kernel to wake us.
	 * Also while WAITERS is set, since it may be cleared by a grant that
	 * wakes nobody here, after which releases could stay in userspace.
	 */
	if ((state & GOSYNC_SEM_WAITERS) || sem_count(state) < 1)
		state = atomic64_fetch_or(GOSYNC_SEM_POLLED, sem->state);
	if (!(state & GOSYNC_SEM_WAITERS) && sem_count(state) >= 1)
		mask = EPOLLIN | EPOLLRDNORM;
	spin_unlock(&sem->lock);
	return mask;
}

static void sem_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gosync_sem *sem = file->private_data;
	u64 state, undo_held = 0, undone, clamped;
	struct sem_undo *u;
	u32 waiters, undos;

	spin_lock(&sem->lock);
	state = atomic64_read(sem->state);
	waiters = sem->nr_waiters;
	undos = sem->nr_undos;
	list_for_each_entry(u, &sem->undos, node)
		undo_held += u->held;
	undone = sem->undone;
	clamped = sem->undo_clamped;
	spin_unlock(&sem->lock);
	seq_puts(m, "gosync-type:\tsem\n");
	seq_printf(m, "id:\t%llu\n", sem->obj.id);
	seq_printf(m, "size:\t%llu\n", sem->size);
	seq_printf(m, "free:\t%llu\n", sem_count(state));
	seq_printf(m, "waiters:\t%u\n", waiters);
	seq_printf(m, "flags:\t%s%s\n",
		   state & GOSYNC_SEM_WAITERS ? "waiters " : "",
		   state & GOSYNC_SEM_POLLED ? "polled" : "");
	seq_printf(m, "slow-acquires:\t%lld\n",
		   (long long)atomic64_read(&sem->slow_acquires));
	seq_printf(m, "slow-releases:\t%lld\n",
		   (long long)atomic64_read(&sem->slow_releases));
	seq_printf(m, "lost-swaps:\t%lld\n",
		   (long long)atomic64_read(&sem->lost_swaps));
	seq_printf(m, "gave-up:\t%lld\n",
		   (long long)atomic64_read(&sem->gave_up));
	seq_printf(m, "undo-records:\t%u\n", undos);
	seq_printf(m, "undo-held:\t%llu\n", undo_held);
	seq_printf(m, "undone:\t%llu\n", undone);
	seq_printf(m, "undo-clamped:\t%llu\n", clamped);
}

/* The flush is the undo hook. */
static const struct file_operations sem_fops =
	GOSYNC_OBJ_FOPS(sem_ioctl, sem_poll, sem_show_fdinfo, sem_flush);

long gosync_sem_create(const struct gosync_sem_create __user *uarg)
{
	struct gosync_sem_create arg;
	struct gosync_sem *sem;
	u64 id;
	int fd;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved || arg.size > GOSYNC_SEM_MAX)
		return -EINVAL;

	sem = gosync_obj_alloc(sizeof(*sem), GOSYNC_TRACE_SEM);
	if (!sem)
		return -ENOMEM;
	sem->state = sem->obj.shared;
	atomic64_set(sem->state, arg.size);
	sem->size = arg.size;
	spin_lock_init(&sem->lock);
	INIT_LIST_HEAD(&sem->waiters);
	sem->obj.queue = &sem->waiters;
	sem->obj.destroy = sem_destroy;
	INIT_LIST_HEAD(&sem->undos);
	init_waitqueue_head(&sem->pollq);
	id = sem->obj.id;	/* the fd may be closed at once: sem is gone */
	fd = gosync_obj_install(&sem->obj, "[gosync-sem]", &sem_fops);
	if (fd >= 0)
		trace_gosync_obj_create(id, GOSYNC_TRACE_SEM, fd,
					GOSYNC_TRACE_NO_KIND, arg.size, 0);
	return fd;
}
