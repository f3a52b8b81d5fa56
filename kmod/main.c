// SPDX-License-Identifier: GPL-2.0
/*
 * gosync: Go's concurrency primitives (channels, weighted semaphores, and
 * the parking lots under the sync package) as kernel objects behind the
 * misc device /dev/gosync.
 *
 * /dev/gosync itself holds no state: each open file is only a factory for
 * object file descriptors and answers the version query. See
 * include/uapi/gosync.h for the ABI conventions.
 */
#include <linux/anon_inodes.h>
#include <linux/debugfs.h>
#include <linux/file.h>
#include <linux/fdtable.h>
#include <linux/fs.h>
#include <linux/hrtimer.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/nsproxy.h>
#include <linux/overflow.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/time_namespace.h>
#include <linux/uaccess.h>

#include "gosync.h"

/* The one place that defines the tracepoints. */
#define CREATE_TRACE_POINTS
#include "gosync_trace.h"

/*
 * How far the caller's time namespace shifts @clock from the host's: a
 * time t read in the namespace is t - offset on the host. Only the
 * monotonic clock is namespaced among those gosync uses.
 */
ktime_t gosync_timens_offset(clockid_t clock)
{
#ifdef CONFIG_TIME_NS
	if (clock == CLOCK_MONOTONIC && current->nsproxy)
		return timespec64_to_ktime(current->nsproxy->time_ns->offsets.monotonic);
#endif
	return 0;
}

/*
 * Convert an ABI deadline (absolute ns on the caller's CLOCK_MONOTONIC, or
 * CLOCK_REALTIME when @realtime) into a host-clock deadline. The callers
 * have checked the ABI flags already: nothing here can fail.
 * A monotonic deadline given inside a time namespace is shifted by the
 * namespace's offset, as clock_nanosleep(TIMER_ABSTIME) does.
 *
 * The shift saturates rather than wraps. A namespace behind the host (a
 * negative offset) moves a deadline later, past KTIME_MAX for one near
 * the end of time: that deadline is never reached, so it becomes
 * KTIME_MAX, which every wait treats as never (not a wrapped, negative,
 * long-past time). A namespace ahead of the host moves a deadline
 * earlier, below zero for one before the host's boot: that one has
 * passed, so it becomes 0. Deadlines from KTIME_MAX up are KTIME_MAX
 * before any shift; only GOSYNC_DEADLINE_NONE is @forever (a timer armed
 * at KTIME_MAX is still armed).
 */
void gosync_deadline_init(struct gosync_deadline *dl, u64 deadline_ns,
			  bool realtime)
{
	ktime_t offset, expires;

	dl->clock = realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC;
	dl->forever = deadline_ns == GOSYNC_DEADLINE_NONE;
	dl->expires = deadline_ns >= KTIME_MAX ? KTIME_MAX :
						 (ktime_t)deadline_ns;
	offset = gosync_timens_offset(dl->clock);
	if (!offset || dl->expires == KTIME_MAX)
		return;
	/* 0 <= expires < KTIME_MAX: only a negative offset can overflow. */
	if (check_sub_overflow(dl->expires, offset, &expires))
		expires = offset < 0 ? KTIME_MAX : 0;
	dl->expires = max_t(ktime_t, expires, 0);
}

bool gosync_deadline_passed(const struct gosync_deadline *dl)
{
	ktime_t now;

	if (dl->forever)
		return false;
	now = dl->clock == CLOCK_REALTIME ? ktime_get_real() : ktime_get();
	return now >= dl->expires;
}

/* Wake the cancellable waiter on the channel's close only (EPOLLHUP). */
static int gosync_cancel_wake(struct wait_queue_entry *entry,
			      unsigned int mode, int sync, void *key)
{
	if (key && !(key_to_poll(key) & EPOLLHUP))
		return 0;
	return default_wake_function(entry, mode, sync, key);
}

/*
 * Arm @c for a wait of the current task: with GOSYNC_WAIT_CANCEL_FD in
 * @flags, @fd must be a channel, whose close will cancel the wait. The
 * task is on the channel's poll queue from here on, so a close that
 * happens after this is seen by a wake-up, and one before it by the check
 * in gosync_wait_until(). Returns 0, -EBADF or -EINVAL (not a channel).
 */
int gosync_cancel_init(struct gosync_cancel *c, u32 flags, s32 fd)
{
	c->file = NULL;
	if (!(flags & GOSYNC_WAIT_CANCEL_FD))
		return fd ? -EINVAL : 0;
	c->file = fget(fd);
	if (!c->file)
		return -EBADF;
	c->chan = gosync_chan_from_file(c->file);
	if (!c->chan) {
		fput(c->file);
		c->file = NULL;
		return -EINVAL;
	}
	init_waitqueue_func_entry(&c->entry, gosync_cancel_wake);
	c->entry.private = current;
	add_wait_queue(gosync_chan_pollq(c->chan), &c->entry);
	return 0;
}

void gosync_cancel_exit(struct gosync_cancel *c)
{
	if (!c->file)
		return;
	remove_wait_queue(gosync_chan_pollq(c->chan), &c->entry);
	fput(c->file);
}

/*
 * Sleep until *@done becomes true (set with smp_store_release() by whoever
 * serves the waiter, who then wakes the task), the deadline passes, a
 * signal is pending or @cancel's channel is closed, on the blocked-task
 * table as @b says meanwhile. Returns 0 when done,
 * else -ETIMEDOUT, -ERESTARTSYS or -ECANCELED; the caller re-checks *@done
 * under its lock, since it may have been served meanwhile.
 */
int gosync_wait_until(const bool *done, const struct gosync_deadline *dl,
		      struct gosync_cancel *cancel, struct gosync_blocked *b)
{
	ktime_t expires = dl->expires;
	bool timed_out = false;
	int ret;

	gosync_blocked_enter(b);
	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		/*
		 * Pairs with the server's smp_store_release(): what it wrote
		 * before serving us (a value, a permit count) is visible.
		 * set_current_state() orders this load after our state change,
		 * so a wake-up after the store cannot be lost.
		 */
		if (smp_load_acquire(done)) {
			ret = 0;
			break;
		}
		if (signal_pending(current)) {
			ret = -ERESTARTSYS;
			break;
		}
		if (cancel && cancel->file && gosync_chan_closed(cancel->chan)) {
			ret = -ECANCELED;
			break;
		}
		if (timed_out) {
			ret = -ETIMEDOUT;
			break;
		}
		if (dl->forever)
			schedule();
		else if (!schedule_hrtimeout_range_clock(&expires,
							 current->timer_slack_ns,
							 HRTIMER_MODE_ABS,
							 dl->clock))
			timed_out = true;
	}
	__set_current_state(TASK_RUNNING);
	gosync_blocked_leave(b);
	return ret;
}

void gosync_wake_add(struct gosync_wakeups *wk, struct task_struct *task)
{
	if (wk->nr < GOSYNC_WAKE_BATCH) {
		get_task_struct(task);
		wk->task[wk->nr++] = task;
	} else {
		wake_up_process(task);
	}
}

void gosync_wake_all(struct gosync_wakeups *wk)
{
	while (wk->nr) {
		struct task_struct *task = wk->task[--wk->nr];

		wake_up_process(task);
		put_task_struct(task);
	}
}

/* Whether @f is @file, or a view of it (opened by name). */
static int match_file(const void *file, struct file *f, unsigned int fd)
{
	return gosync_name_target(f, 0) == file;
}

/*
 * Whether the calling thread is its process's last, on its way out (a
 * thread with a descriptor table of its own may also exit alone, closing
 * its files while the others run on).
 */
bool gosync_last_thread_exits(void)
{
	return (current->flags & PF_EXITING) &&
	       !atomic_read(&current->signal->live);
}

/*
 * In the flush of a descriptor of @file (an object's own file; a view's
 * flush passes its object's): whether the calling process can no longer
 * use @file, so that what it began with it must be undone: its last
 * thread exits (exit_files() flushes every descriptor left), or it has
 * no other descriptor of @file or of a view of it. An exec that keeps a
 * descriptor is the callers' to see (self_exec_id).
 */
bool gosync_flush_is_last(struct file *file)
{
	if (current->flags & PF_EXITING)
		return gosync_last_thread_exits();
	return !current->files ||
	       !iterate_fd(current->files, 0, match_file, file);
}

/*
 * Wake poll()/epoll waiters of an object whose state just changed. The
 * full barrier in wq_has_sleeper() pairs with the one in poll_wait()'s
 * queueing, so a poller that queued before our state change is seen, and
 * one that queues after it reads the new state in its ->poll().
 */
void gosync_wake_pollers(struct wait_queue_head *wq, __poll_t events)
{
	if (wq_has_sleeper(wq))
		wake_up_interruptible_poll(wq, events);
}

/*
 * Map an object's shared @pages: all @nr of them, from offset 0, shared
 * (a private copy would never see the other side's changes), never
 * executable.
 */
int gosync_mmap_pages(struct vm_area_struct *vma, struct page **pages,
		      unsigned long nr)
{
	unsigned long addr = vma->vm_start, i;
	int ret;

	if (vma->vm_pgoff || vma_pages(vma) != nr)
		return -EINVAL;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	vm_flags_clear(vma, VM_MAYEXEC);
	vm_flags_set(vma, VM_DONTEXPAND);
	/* Page by page within the vma (nr pages long): no product to wrap. */
	for (i = 0; i < nr; i++, addr += PAGE_SIZE) {
		ret = vm_insert_page(vma, addr, pages[i]);
		if (ret)
			return ret;
	}
	return 0;
}

int gosync_mmap_page(struct vm_area_struct *vma, struct page *page)
{
	return gosync_mmap_pages(vma, &page, 1);
}

u64 gosync_new_id(void)
{
	static atomic64_t last_id = ATOMIC64_INIT(0);

	return atomic64_inc_return(&last_id);
}

/*
 * A zeroed object of @size bytes that begins with struct gosync_obj, with
 * its zeroed shared page, both charged to the caller's memory cgroup, of
 * @type (GOSYNC_TRACE_*) and with a new id; the caller points obj->queue
 * at its queue. NULL without memory.
 */
void *gosync_obj_alloc(size_t size, u32 type)
{
	struct gosync_obj *obj = kzalloc(size, GOSYNC_GFP);

	if (!obj)
		return NULL;
	obj->id = gosync_new_id();
	obj->type = type;
	obj->page = alloc_page(GOSYNC_GFP | __GFP_ZERO);
	if (!obj->page) {
		kfree(obj);
		return NULL;
	}
	obj->shared = page_address(obj->page);
	return obj;
}

/* Free what gosync_obj_alloc() made (the whole object: @obj is its start). */
void gosync_obj_free(struct gosync_obj *obj)
{
	if (obj->destroy)
		obj->destroy(obj);
	put_page(obj->page);
	kfree(obj);
}

/*
 * Give @obj a new file descriptor (O_CLOEXEC), the only handle to it:
 * the fd, or a negative errno with @obj freed.
 */
int gosync_obj_install(struct gosync_obj *obj, const char *name,
		       const struct file_operations *fops)
{
	int fd = anon_inode_getfd(name, fops, obj, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		gosync_obj_free(obj);
	return fd;
}

int gosync_obj_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct gosync_obj *obj = file->private_data;

	return gosync_mmap_page(vma, obj->page);
}

/* The last reference is gone: no waiter can exist (each holds the file). */
int gosync_obj_release(struct inode *inode, struct file *file)
{
	struct gosync_obj *obj = file->private_data;

	WARN_ON_ONCE(!list_empty(obj->queue));
	trace_gosync_obj_destroy(obj->id, obj->type);
	gosync_obj_free(obj);
	return 0;
}

static long gosync_ioc_version(void __user *argp)
{
	struct gosync_version v;

	if (copy_from_user(&v, argp, sizeof(v)))
		return -EFAULT;
	if (v.flags || !gosync_all_zero(v.reserved, sizeof(v.reserved)))
		return -EINVAL;
	v.abi_version = GOSYNC_ABI_VERSION;
	v.features = GOSYNC_FEATURES;
	if (copy_to_user(argp, &v, sizeof(v)))
		return -EFAULT;
	return 0;
}

static long gosync_dev_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case GOSYNC_IOC_VERSION:
		return gosync_ioc_version(argp);
	case GOSYNC_IOC_SEM_CREATE:
		return gosync_sem_create(argp);
	case GOSYNC_IOC_CHAN_CREATE:
		return gosync_chan_create(argp);
	case GOSYNC_IOC_SELECT:
		return gosync_select(argp);
	case GOSYNC_IOC_TIMER_CREATE:
		return gosync_timer_create(argp);
	case GOSYNC_IOC_LOT_CREATE:
		return gosync_lot_create(argp);
	case GOSYNC_IOC_ROBUST_REGISTER:
		return arg ? -EINVAL : gosync_robust_register();
	case GOSYNC_IOC_ROBUST_EXIT:
		return arg ? -EINVAL : gosync_robust_exit();
	case GOSYNC_IOC_NAME_OPEN:
		return gosync_name_open(argp);
	case GOSYNC_IOC_NAME_UNLINK:
		return gosync_name_unlink(argp);
	default:
		return -ENOTTY;
	}
}

/* Robust lock owners die with their process's descriptor (kmod/lot.c). */
static int gosync_dev_flush(struct file *file, fl_owner_t id)
{
	gosync_robust_flush();
	return 0;
}

static const struct file_operations gosync_dev_fops = {
	.owner		= THIS_MODULE,
	.open		= nonseekable_open,
	.flush		= gosync_dev_flush,
	.unlocked_ioctl	= gosync_dev_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/*
 * Anyone may open the device: it grants nothing but the right to create
 * new objects, whose memory is charged to the creator's memory cgroup.
 */
static struct miscdevice gosync_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "gosync",
	.fops	= &gosync_dev_fops,
	.mode	= 0666,
};

/* debugfs "gosync": the names (kmod/name.c) and the waits (observe.c). */
static struct dentry *gosync_debugfs;

static int __init gosync_init(void)
{
	int ret;

	gosync_debugfs = debugfs_create_dir("gosync", NULL);
	gosync_observe_init(gosync_debugfs);
	ret = gosync_names_init(gosync_debugfs);
	if (!ret) {
		ret = misc_register(&gosync_misc);
		if (ret)
			gosync_names_exit();
	}
	if (ret) {
		gosync_observe_exit();
		debugfs_remove_recursive(gosync_debugfs);
	}
	return ret;
}
module_init(gosync_init);

static void __exit gosync_exit(void)
{
	misc_deregister(&gosync_misc);
	gosync_names_exit();
	gosync_observe_exit();
	debugfs_remove_recursive(gosync_debugfs);
	/* Robust lock owners outlive the files (kmod/lot.c): none is open. */
	gosync_robust_cleanup();
}
module_exit(gosync_exit);

MODULE_AUTHOR("The gosync developers");
MODULE_DESCRIPTION("Go channels, semaphores and sync primitives as kernel objects");
MODULE_LICENSE("GPL");
