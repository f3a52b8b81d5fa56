// SPDX-License-Identifier: GPL-2.0
/*
 * gosync parking lots: a page of words shared with userspace and a queue
 * of threads parked on them, the kernel half of libgosync's Mutex,
 * RWMutex, WaitGroup, Once, Cond and CyclicBarrier (see the comment above
 * GOSYNC_LOT_WORDS in the uapi header for the contract).
 *
 * Why no wake-up is lost: park compares the word and queues the waiter in
 * one critical section of lot->lock, and unpark dequeues under the same
 * lock. Userspace changes the word first and unparks second, so for a
 * given change either the park's compare comes after it (and sees it:
 * -EAGAIN) or the waiter was queued before the unpark took the lock (and
 * the unpark finds it). A waiter is chosen exactly once: unpark removes it
 * from the queue and sets @woken under the lock; a waiter leaving on a
 * signal or deadline re-checks @woken under the lock and, if it was
 * chosen, reports success, so the wake-up it consumed is not lost.
 *
 * Memory safety: the page is read one aligned 64-bit word at a
 * bounds-checked index, the value only compared; a hand-off adds to such
 * a word atomically, under the lock, before it marks the waiter woken.
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>

#include "gosync.h"

/* The words the uapi header promises fit in the one page a lot maps. */
static_assert(sizeof(u64[GOSYNC_LOT_WORDS]) <= PAGE_SIZE);

struct gosync_lot {
	struct gosync_obj obj;		/* first: the page holds the words */
	/* Protects @parked, @nr_parked and every waiter's @woken flag. */
	spinlock_t lock;
	struct list_head parked;	/* struct lot_waiter, queue order */
	u32 nr_parked;
	u32 kind;			/* immutable after creation */
	u64 param;			/* immutable after creation */
	u64 *words;			/* = obj.shared */
	atomic64_t parks;
	atomic64_t unparks;
	atomic64_t woken;
};

/* file->private_data is the lot and its struct gosync_obj. */
static_assert(offsetof(struct gosync_lot, obj) == 0);

/* A parked thread; lives on its own stack for the length of the park. */
struct lot_waiter {
	struct list_head node;
	struct task_struct *task;
	u32 index;
	int token;	/* what the park returns: 1 after a hand-off */
	bool woken;	/* set once, under lot->lock, by lot_unpark() */
};

static const char *const lot_kind_names[] = {
	[GOSYNC_LOT_PLAIN] = "plain",
	[GOSYNC_LOT_MUTEX] = "mutex",
	[GOSYNC_LOT_RWMUTEX] = "rwmutex",
	[GOSYNC_LOT_WAITGROUP] = "waitgroup",
	[GOSYNC_LOT_ONCE] = "once",
	[GOSYNC_LOT_COND] = "cond",
	[GOSYNC_LOT_BARRIER] = "barrier",
};

static long lot_park(struct gosync_lot *lot,
		     const struct gosync_lot_park __user *uarg)
{
	struct lot_waiter w = { .task = current };
	struct gosync_lot_park arg;
	struct gosync_cancel cancel;
	struct gosync_deadline dl;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.index >= GOSYNC_LOT_WORDS || (arg.expected & ~arg.mask) ||
	    arg.reserved ||
	    (arg.flags & ~(GOSYNC_CLOCK_REALTIME | GOSYNC_LOT_PARK_FRONT |
			   GOSYNC_WAIT_CANCEL_FD)))
		return -EINVAL;
	ret = gosync_deadline_init(&dl, arg.deadline,
				   arg.flags & GOSYNC_CLOCK_REALTIME);
	if (ret)
		return ret;
	ret = gosync_cancel_init(&cancel, arg.flags, arg.cancel_fd);
	if (ret)
		return ret;
	atomic64_inc(&lot->parks);
	w.index = arg.index;

	spin_lock(&lot->lock);
	if ((READ_ONCE(lot->words[arg.index]) & arg.mask) != arg.expected)
		ret = -EAGAIN;
	else if (gosync_deadline_passed(&dl))
		ret = -ETIMEDOUT;
	if (ret) {
		spin_unlock(&lot->lock);
		gosync_cancel_exit(&cancel);
		return ret;
	}
	if (arg.flags & GOSYNC_LOT_PARK_FRONT)
		list_add(&w.node, &lot->parked);
	else
		list_add_tail(&w.node, &lot->parked);
	lot->nr_parked++;
	spin_unlock(&lot->lock);

	ret = gosync_wait_until(&w.woken, &dl, &cancel);
	gosync_cancel_exit(&cancel);
	if (!ret)
		return w.token;

	spin_lock(&lot->lock);
	if (w.woken) {
		/* Chosen before we noticed the signal or deadline. */
		ret = w.token;
	} else {
		list_del(&w.node);
		lot->nr_parked--;
	}
	spin_unlock(&lot->lock);
	return ret;
}

static long lot_unpark(struct gosync_lot *lot,
		       const struct gosync_lot_unpark __user *uarg)
{
	struct gosync_wakeups wk = { 0 };
	struct gosync_lot_unpark arg;
	struct lot_waiter *w, *next;
	u32 woken = 0;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.index >= GOSYNC_LOT_WORDS || arg.reserved ||
	    (arg.flags & ~GOSYNC_LOT_UNPARK_HANDOFF) ||
	    (!(arg.flags & GOSYNC_LOT_UNPARK_HANDOFF) && arg.add))
		return -EINVAL;
	atomic64_inc(&lot->unparks);

	spin_lock(&lot->lock);
	list_for_each_entry_safe(w, next, &lot->parked, node) {
		struct task_struct *task = w->task;

		if (woken == arg.count)
			break;
		if (w->index != arg.index)
			continue;
		list_del(&w->node);
		lot->nr_parked--;
		if (arg.flags & GOSYNC_LOT_UNPARK_HANDOFF) {
			/* The word changes hands before the waiter runs. */
			atomic64_add((s64)arg.add,
				     (atomic64_t *)&lot->words[arg.index]);
			w->token = 1;
		}
		/* After this store the waiter may return: w is not touched. */
		smp_store_release(&w->woken, true);
		gosync_wake_add(&wk, task);
		woken++;
	}
	spin_unlock(&lot->lock);
	gosync_wake_all(&wk);
	atomic64_add(woken, &lot->woken);
	return woken;
}

static long lot_status(struct gosync_lot *lot,
		       struct gosync_lot_status __user *uarg)
{
	struct gosync_lot_status st = { .kind = lot->kind,
					.param = lot->param };

	spin_lock(&lot->lock);
	st.parked = lot->nr_parked;
	spin_unlock(&lot->lock);
	st.parks = atomic64_read(&lot->parks);
	st.unparks = atomic64_read(&lot->unparks);
	st.woken = atomic64_read(&lot->woken);
	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long lot_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct gosync_lot *lot = file->private_data;
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case GOSYNC_IOC_LOT_PARK:
		return lot_park(lot, argp);
	case GOSYNC_IOC_LOT_UNPARK:
		return lot_unpark(lot, argp);
	case GOSYNC_IOC_LOT_STATUS:
		return lot_status(lot, argp);
	default:
		return -ENOTTY;
	}
}

static void lot_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gosync_lot *lot = file->private_data;
	u32 parked;

	spin_lock(&lot->lock);
	parked = lot->nr_parked;
	spin_unlock(&lot->lock);
	seq_puts(m, "gosync-type:\tlot\n");
	seq_printf(m, "kind:\t%s\n", lot_kind_names[lot->kind]);
	seq_printf(m, "param:\t%llu\n", lot->param);
	seq_printf(m, "parked:\t%u\n", parked);
	seq_printf(m, "parks:\t%lld\n", (long long)atomic64_read(&lot->parks));
	seq_printf(m, "unparks:\t%lld\n",
		   (long long)atomic64_read(&lot->unparks));
	seq_printf(m, "woken:\t%lld\n", (long long)atomic64_read(&lot->woken));
}

static const struct file_operations lot_fops =
	GOSYNC_OBJ_FOPS(lot_ioctl, NULL, lot_show_fdinfo);

long gosync_lot_create(const struct gosync_lot_create __user *uarg)
{
	struct gosync_lot_create arg;
	struct gosync_lot *lot;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.kind > GOSYNC_LOT_KIND_MAX)
		return -EINVAL;

	lot = gosync_obj_alloc(sizeof(*lot));
	if (!lot)
		return -ENOMEM;
	lot->words = lot->obj.shared;
	lot->kind = arg.kind;
	lot->param = arg.param;
	spin_lock_init(&lot->lock);
	INIT_LIST_HEAD(&lot->parked);
	lot->obj.queue = &lot->parked;
	return gosync_obj_install(&lot->obj, "[gosync-lot]", &lot_fops);
}
