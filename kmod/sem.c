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
 *    (cmpxchg loops where a check must hold at the moment of the change),
 *    always under sem->lock, so kernel updates are serialised among
 *    themselves and atomic with respect to userspace.
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
 *
 * Nothing read from the page is trusted beyond its value: counts may be
 * nonsense after a scribble, but they are never used as an index or a
 * size, and every addition is bounds-checked against sem->size, which
 * lives in kernel memory.
 */
#include <linux/anon_inodes.h>
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "gosync.h"

struct gosync_sem {
	/*
	 * Protects @waiters, @nr_waiters, every waiter's @served flag and
	 * serialises the kernel's updates of the shared state word.
	 */
	spinlock_t lock;
	struct list_head waiters;	/* FIFO of struct sem_waiter */
	u32 nr_waiters;
	u64 size;			/* immutable after creation */
	struct page *page;		/* holds the shared state */
	atomic64_t *state;		/* = page_address(page) */
	wait_queue_head_t pollq;	/* poll() and epoll waiters */
	atomic64_t slow_acquires;
	atomic64_t slow_releases;
};

/* A blocked acquirer; lives on its own stack for the length of the wait. */
struct sem_waiter {
	struct list_head node;
	struct task_struct *task;
	u64 count;
	bool served;	/* set once, under sem->lock, by sem_grant() */
};

static u64 sem_count(u64 state)
{
	return state & GOSYNC_SEM_COUNT_MASK;
}

/*
 * Serve queued waiters in FIFO order while the head's count fits, and
 * clear WAITERS once the queue is empty.
 */
static void sem_grant(struct gosync_sem *sem, struct gosync_wakeups *wk)
{
	struct sem_waiter *w;
	u64 state;

	lockdep_assert_held(&sem->lock);
	while ((w = list_first_entry_or_null(&sem->waiters, struct sem_waiter,
					     node))) {
		struct task_struct *task = w->task;

		state = atomic64_read(sem->state);
		do {
			if (w->count > sem_count(state))
				return;
		} while (!atomic64_try_cmpxchg(sem->state, &state,
					       state - w->count));
		list_del(&w->node);
		sem->nr_waiters--;
		/* After this store the waiter may return: w is not touched. */
		smp_store_release(&w->served, true);
		if (task != current)
			gosync_wake_add(wk, task);
	}
	atomic64_andnot(GOSYNC_SEM_WAITERS, sem->state);
}

/* Take @count permits if they are free and nobody waits. */
static bool sem_try_take(struct gosync_sem *sem, u64 count)
{
	u64 state = atomic64_read(sem->state);

	do {
		if ((state & GOSYNC_SEM_WAITERS) || count > sem_count(state))
			return false;
	} while (!atomic64_try_cmpxchg(sem->state, &state, state - count));
	return true;
}

static void sem_wake_pollers(struct gosync_sem *sem)
{
	gosync_wake_pollers(&sem->pollq, EPOLLIN | EPOLLRDNORM);
}

static long sem_acquire(struct gosync_sem *sem,
			const struct gosync_sem_acquire __user *uarg)
{
	struct sem_waiter w = { .task = current };
	struct gosync_wakeups wk = { 0 };
	struct gosync_sem_acquire arg;
	struct gosync_cancel cancel;
	struct gosync_deadline dl;
	bool was_head, nobody_left;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.count > GOSYNC_SEM_MAX ||
	    (arg.flags & ~(GOSYNC_CLOCK_REALTIME | GOSYNC_WAIT_CANCEL_FD)))
		return -EINVAL;
	ret = gosync_deadline_init(&dl, arg.deadline,
				   arg.flags & GOSYNC_CLOCK_REALTIME);
	if (ret)
		return ret;
	ret = gosync_cancel_init(&cancel, arg.flags, arg.cancel_fd);
	if (ret)
		return ret;
	atomic64_inc(&sem->slow_acquires);

	if (sem_try_take(sem, arg.count)) {
		gosync_cancel_exit(&cancel);
		return 0;
	}
	if (gosync_deadline_passed(&dl)) {
		gosync_cancel_exit(&cancel);
		return -ETIMEDOUT;
	}
	if (arg.count > sem->size) {
		/* Can never be served: wait out the deadline, unqueued. */
		ret = gosync_wait_until(&w.served, &dl, &cancel);
		gosync_cancel_exit(&cancel);
		return ret;
	}

	w.count = arg.count;
	spin_lock(&sem->lock);
	atomic64_or(GOSYNC_SEM_WAITERS, sem->state);
	list_add_tail(&w.node, &sem->waiters);
	sem->nr_waiters++;
	sem_grant(sem, &wk);
	spin_unlock(&sem->lock);
	gosync_wake_all(&wk);

	ret = gosync_wait_until(&w.served, &dl, &cancel);
	gosync_cancel_exit(&cancel);
	if (!ret)
		return 0;

	spin_lock(&sem->lock);
	if (w.served) {
		/* Served before we noticed the signal or deadline: keep it. */
		ret = 0;
	} else {
		was_head = list_first_entry(&sem->waiters, struct sem_waiter,
					    node) == &w;
		list_del(&w.node);
		sem->nr_waiters--;
		/* Whoever is now at the head may fit where we did not. */
		if (was_head || list_empty(&sem->waiters))
			sem_grant(sem, &wk);
	}
	nobody_left = list_empty(&sem->waiters);
	spin_unlock(&sem->lock);
	gosync_wake_all(&wk);
	if (ret && nobody_left)
		sem_wake_pollers(sem);
	return ret;
}

static long sem_try_acquire(struct gosync_sem *sem, const u64 __user *uarg)
{
	u64 count;

	if (get_user(count, uarg))
		return -EFAULT;
	if (count > GOSYNC_SEM_MAX)
		return -EINVAL;
	atomic64_inc(&sem->slow_acquires);
	return sem_try_take(sem, count) ? 0 : -EAGAIN;
}

static long sem_release(struct gosync_sem *sem, const u64 __user *uarg)
{
	struct gosync_wakeups wk = { 0 };
	u64 count, state, free;

	if (get_user(count, uarg))
		return -EFAULT;
	if (count > GOSYNC_SEM_MAX)
		return -EINVAL;
	atomic64_inc(&sem->slow_releases);

	spin_lock(&sem->lock);
	state = atomic64_read(sem->state);
	do {
		free = sem_count(state);
		if (free > sem->size || count > sem->size - free) {
			spin_unlock(&sem->lock);
			return -EOVERFLOW;
		}
	} while (!atomic64_try_cmpxchg(sem->state, &state,
				       (state + count) & ~GOSYNC_SEM_POLLED));
	sem_grant(sem, &wk);
	spin_unlock(&sem->lock);
	gosync_wake_all(&wk);
	sem_wake_pollers(sem);
	return 0;
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
		return sem_release(sem, argp);
	case GOSYNC_IOC_SEM_STATUS:
		return sem_status(sem, argp);
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

static int sem_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct gosync_sem *sem = file->private_data;

	return gosync_mmap_page(vma, sem->page);
}

static void sem_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gosync_sem *sem = file->private_data;
	u64 state;
	u32 waiters;

	spin_lock(&sem->lock);
	state = atomic64_read(sem->state);
	waiters = sem->nr_waiters;
	spin_unlock(&sem->lock);
	seq_puts(m, "gosync-type:\tsem\n");
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
}

static void sem_free(struct gosync_sem *sem)
{
	if (sem->page)
		put_page(sem->page);
	kfree(sem);
}

/* The last reference is gone: no waiter can exist (each holds the file). */
static int sem_file_release(struct inode *inode, struct file *file)
{
	struct gosync_sem *sem = file->private_data;

	WARN_ON_ONCE(!list_empty(&sem->waiters));
	sem_free(sem);
	return 0;
}

static const struct file_operations sem_fops = {
	.owner		= THIS_MODULE,
	.release	= sem_file_release,
	.unlocked_ioctl	= sem_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.poll		= sem_poll,
	.mmap		= sem_mmap,
	.show_fdinfo	= sem_show_fdinfo,
	.llseek		= noop_llseek,
};

long gosync_sem_create(const struct gosync_sem_create __user *uarg)
{
	struct gosync_sem_create arg;
	struct gosync_sem *sem;
	int fd;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved || arg.size > GOSYNC_SEM_MAX)
		return -EINVAL;

	sem = kzalloc(sizeof(*sem), GFP_KERNEL_ACCOUNT);
	if (!sem)
		return -ENOMEM;
	sem->page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	if (!sem->page) {
		sem_free(sem);
		return -ENOMEM;
	}
	sem->state = page_address(sem->page);
	atomic64_set(sem->state, arg.size);
	sem->size = arg.size;
	spin_lock_init(&sem->lock);
	INIT_LIST_HEAD(&sem->waiters);
	init_waitqueue_head(&sem->pollq);

	fd = anon_inode_getfd("[gosync-sem]", &sem_fops, sem,
			      O_RDWR | O_CLOEXEC);
	if (fd < 0)
		sem_free(sem);
	return fd;
}
