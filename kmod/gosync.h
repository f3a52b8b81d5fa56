/* SPDX-License-Identifier: GPL-2.0 */
/*
 * gosync: internal declarations shared by the module's source files.
 */
#ifndef GOSYNC_INTERNAL_H
#define GOSYNC_INTERNAL_H

#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <uapi/gosync.h>

#include "compat.h"

/* Feature bits this build of the module implements. */
#define GOSYNC_FEATURES		(GOSYNC_FEATURE_SEM | GOSYNC_FEATURE_CHAN | \
				 GOSYNC_FEATURE_SELECT | GOSYNC_FEATURE_TIMER | \
				 GOSYNC_FEATURE_LOT | GOSYNC_FEATURE_CHAN_RING | \
				 GOSYNC_FEATURE_COND | GOSYNC_FEATURE_CHAN_DISCARD | \
				 GOSYNC_FEATURE_CHAN_ROBUST | GOSYNC_FEATURES_NAMES | \
				 GOSYNC_FEATURE_SEM_UNDO | GOSYNC_FEATURE_LOT_UNDO | \
				 GOSYNC_FEATURE_ROBUST_LOCK | \
				 GOSYNC_FEATURE_LOT_PARTIES | \
				 GOSYNC_FEATURE_LOCK_CHECK)

/* Named objects need the IPC namespace's mqueue mount (kmod/name.c). */
#define GOSYNC_FEATURES_NAMES	\
	(IS_ENABLED(CONFIG_POSIX_MQUEUE) ? GOSYNC_FEATURE_NAMES : 0)

/*
 * The flags of every allocation a user's call makes. Charged to the
 * caller's memory cgroup (__GFP_ACCOUNT); a failure is that caller's
 * -ENOMEM, never an OOM kill of some process of the cgroup
 * (__GFP_RETRY_MAYFAIL: reclaim is tried, the OOM killer is not) and
 * never a warning in the kernel log that userspace could print at will
 * (__GFP_NOWARN).
 */
#define GOSYNC_GFP	(GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)

/* True when the @size bytes at @p are all zero (reserved fields, padding). */
static inline bool gosync_all_zero(const void *p, size_t size)
{
	return !memchr_inv(p, 0, size);
}

/* A wait's deadline, converted from the ABI's form to the host's clocks. */
struct gosync_deadline {
	ktime_t expires;	/* absolute, on @clock */
	clockid_t clock;
	bool forever;
};

/*
 * A wait that a channel's close cancels: the waiter sits on the channel's
 * poll queue (so a close wakes it) and gosync_wait_until() returns
 * -ECANCELED once the channel is closed. @file is NULL for none.
 */
struct gosync_chan;

struct gosync_cancel {
	struct file *file;		/* holds the channel */
	struct gosync_chan *chan;
	struct wait_queue_entry entry;
};

struct gosync_chan *gosync_chan_from_file(struct file *file);
wait_queue_head_t *gosync_chan_pollq(struct gosync_chan *ch);
bool gosync_chan_closed(struct gosync_chan *ch);
int gosync_cancel_init(struct gosync_cancel *c, u32 flags, s32 fd);
void gosync_cancel_exit(struct gosync_cancel *c);

ktime_t gosync_timens_offset(clockid_t clock);
void gosync_deadline_init(struct gosync_deadline *dl, u64 deadline_ns,
			  bool realtime);
bool gosync_deadline_passed(const struct gosync_deadline *dl);
/*
 * A task blocked in a gosync wait, as the wait-for view (debugfs
 * gosync/waits), the stall watchdog and deadlock detection see it
 * (kmod/observe.c). It lives on the waiter's stack and is on the
 * blocked-task table, under gosync_blocked_lock(), from
 * gosync_blocked_enter() to gosync_blocked_leave(): while it is there,
 * its task is inside the wait's system call (it cannot run userspace
 * code), and so holds the file of the object it waits on: @lock_word
 * stays valid. Filled in by gosync_blocked_init(), immutable once
 * entered but for @stall_reported (under the table's lock). The lot
 * that @lock_word and @lock_flags point into lives as long as the task
 * is in its wait, as the page does.
 */
struct gosync_blocked {
	struct hlist_node node;		/* the table, by task */
	struct task_struct *task;
	const u64 *lock_word;	/* a robust park's word 0, else NULL */
	const u32 *lock_flags;	/* and its lot's flags (kmod/lot.c) */
	u64 obj;		/* the object's id */
	ktime_t since;		/* when it entered (CLOCK_MONOTONIC) */
	u32 type;		/* GOSYNC_TRACE_SEM .. _LOT */
	u32 kind;		/* a lot's kind, else GOSYNC_TRACE_NO_KIND */
	u32 op;			/* GOSYNC_TRACE_SEND .. */
	u32 index;		/* a lot's word; a select's number of cases */
	bool forever;		/* no deadline, no cancelling channel */
	bool entered;
	bool stall_reported;
};

void gosync_blocked_init(struct gosync_blocked *b, u64 obj, u32 type,
			 u32 kind, u32 op, u32 index,
			 const struct gosync_deadline *dl,
			 const struct gosync_cancel *cancel);
void gosync_blocked_enter(struct gosync_blocked *b);
void gosync_blocked_enter_locked(struct gosync_blocked *b);
void gosync_blocked_leave(struct gosync_blocked *b);
void gosync_blocked_lock(void);
void gosync_blocked_unlock(void);
struct gosync_blocked *gosync_blocked_of(const struct task_struct *task);
int gosync_observe_init(struct dentry *debugfs_dir);
void gosync_observe_exit(void);

int gosync_wait_until(const bool *done, const struct gosync_deadline *dl,
		      struct gosync_cancel *cancel, struct gosync_blocked *b);

/*
 * Tasks to wake once the caller has dropped its spinlock. A waiter's own
 * record lives on its stack and may vanish as soon as it is marked served,
 * so only a counted reference to its task is kept. Beyond the batch size,
 * tasks are woken at once, under the lock, which is correct but slower.
 */
#define GOSYNC_WAKE_BATCH	16

struct gosync_wakeups {
	unsigned int nr;
	struct task_struct *task[GOSYNC_WAKE_BATCH];
};

int gosync_mmap_pages(struct vm_area_struct *vma, struct page **pages,
		      unsigned long nr);
int gosync_mmap_page(struct vm_area_struct *vma, struct page *page);

/*
 * What the one-page objects (semaphores, parking lots) share: a zeroed
 * page that userspace maps, and the queue of waiters that must be empty
 * once the last reference to the file is gone (each waiter holds one).
 * It is the first member of the object, so that file->private_data
 * points at both. Set at creation and immutable after (no lock). The
 * helpers below allocate, install, map and release any such object; the
 * object keeps only what is its own.
 */
struct gosync_obj {
	struct page *page;
	void *shared;			/* = page_address(page) */
	struct list_head *queue;	/* the object's waiters */
	u64 id;				/* gosync_new_id(): the tracepoints' */
	u32 type;			/* GOSYNC_TRACE_SEM or _LOT */
	/* Optional: frees what the object holds beyond itself and its page. */
	void (*destroy)(struct gosync_obj *obj);
};

/*
 * A new object's id, unique while the module stays loaded: how the
 * tracepoints (kmod/gosync_trace.h) name it, never by its address.
 */
u64 gosync_new_id(void);

void *gosync_obj_alloc(size_t size, u32 type);
void gosync_obj_free(struct gosync_obj *obj);
int gosync_obj_install(struct gosync_obj *obj, const char *name,
		       const struct file_operations *fops);
int gosync_obj_mmap(struct file *file, struct vm_area_struct *vma);
int gosync_obj_release(struct inode *inode, struct file *file);

/* The file operations of a one-page object; @poll_fn may be NULL. */
#define GOSYNC_OBJ_FOPS(ioctl, poll_fn, fdinfo, flush_fn) {	\
	.owner		= THIS_MODULE,			\
	.release	= gosync_obj_release,		\
	.flush		= (flush_fn),			\
	.unlocked_ioctl	= (ioctl),			\
	.compat_ioctl	= compat_ptr_ioctl,		\
	.poll		= (poll_fn),			\
	.mmap		= gosync_obj_mmap,		\
	.show_fdinfo	= (fdinfo),			\
	.llseek		= noop_llseek,			\
}

void gosync_wake_pollers(struct wait_queue_head *wq, __poll_t events);
bool gosync_last_thread_exits(void);
bool gosync_flush_is_last(struct file *file);
void gosync_wake_add(struct gosync_wakeups *wk, struct task_struct *task);
void gosync_wake_all(struct gosync_wakeups *wk);

/* Object constructors, called from /dev/gosync's ioctl. */
long gosync_sem_create(const struct gosync_sem_create __user *uarg);
long gosync_chan_create(const struct gosync_chan_create __user *uarg);
long gosync_select(struct gosync_select __user *uarg);
long gosync_timer_create(const struct gosync_timer_set __user *uarg);
long gosync_lot_create(const struct gosync_lot_create __user *uarg);
const char *gosync_lot_kind_name(u32 kind);
/* Robust lock owners (kmod/lot.c). */
long gosync_robust_register(void);
long gosync_robust_exit(void);
void gosync_robust_flush(void);
void gosync_robust_cleanup(void);
/*
 * For the wait-for view and stall reports: between these, the thread
 * that holds a robust lock word (its owner handle in the word's upper
 * half) can be looked up.
 */
void gosync_robust_lock(void);
void gosync_robust_unlock(void);
struct task_struct *gosync_lock_holder(u64 word);

/* Named objects (kmod/name.c). */
long gosync_name_open(struct gosync_name_open __user *uarg);
long gosync_name_unlink(struct gosync_name_unlink __user *uarg);
struct file *gosync_name_target(struct file *file, fmode_t need);
int gosync_names_init(struct dentry *debugfs_dir);
void gosync_names_exit(void);

#endif /* GOSYNC_INTERNAL_H */
