// SPDX-License-Identifier: GPL-2.0
/*
 * gosync channels: Go's chan T as a kernel object.
 *
 * Values never cross the user boundary under the channel's spinlock: a
 * sender copies its value into a kernel buffer of its own before taking
 * the lock, a receiver copies its value out of its own kernel buffer
 * after dropping it. Under the lock, values move between those private
 * buffers and the channel's ring with memcpy() only.
 *
 * A blocked sender or receiver is a struct chan_waiter on its own stack,
 * queued on the channel's sendq or recvq. Whoever completes its operation
 * (a receiver taking a waiting sender's value, a sender handing a value
 * to a waiting receiver, close) does so under the lock, removes it from
 * its queue and marks it served with smp_store_release() exactly once; the
 * task is woken after the lock is dropped (struct gosync_wakeups). A
 * waiter that gives up (deadline, signal) re-checks "served" under the
 * lock and keeps a result that was already delivered, so no value is lost
 * or duplicated.
 */
#include <linux/anon_inodes.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "gosync.h"

static unsigned int max_capacity = 1U << 20;
module_param(max_capacity, uint, 0644);
MODULE_PARM_DESC(max_capacity, "Largest channel capacity (slots)");

static unsigned long max_buffer_bytes = 64UL << 20;
module_param(max_buffer_bytes, ulong, 0644);
MODULE_PARM_DESC(max_buffer_bytes, "Largest channel buffer (bytes)");

struct gosync_chan {
	/*
	 * Protects everything below up to the counters: the ring (@buf,
	 * @head, @len), @closed, both queues and every queued waiter's
	 * @served, @result and @buf contents.
	 */
	spinlock_t lock;
	u32 head;			/* slot of the oldest value */
	u32 len;			/* values in the ring */
	bool closed;
	struct list_head sendq;		/* struct chan_waiter, FIFO */
	struct list_head recvq;
	u32 nr_senders;
	u32 nr_receivers;
	u64 sends;
	u64 recvs;

	u32 elem_size;			/* immutable after creation */
	u32 capacity;
	u8 *buf;			/* capacity * elem_size bytes */
	wait_queue_head_t pollq;
};

struct chan_waiter {
	struct list_head node;
	struct task_struct *task;
	void *buf;	/* sender: its value; receiver: room for one */
	int result;	/* when served: send 0 / -EPIPE, recv 1 / 0 */
	bool served;
};

/* The @i-th value from the oldest; only for i < capacity, capacity > 0. */
static void *chan_slot(struct gosync_chan *ch, u32 i)
{
	if (!ch->elem_size)
		return NULL;
	return ch->buf + (size_t)((ch->head + i) % ch->capacity) *
			 ch->elem_size;
}

/* Copy one element, or zero it when @src is NULL; nothing for size 0. */
static void chan_copy(struct gosync_chan *ch, void *dst, const void *src)
{
	if (!ch->elem_size)
		return;
	if (src)
		memcpy(dst, src, ch->elem_size);
	else
		memset(dst, 0, ch->elem_size);
}

static void chan_serve(struct chan_waiter *w, int result, u32 *nr,
		       struct gosync_wakeups *wk)
{
	struct task_struct *task = w->task;

	list_del(&w->node);
	(*nr)--;
	w->result = result;
	/* After this store the waiter may return: w is not touched again. */
	smp_store_release(&w->served, true);
	gosync_wake_add(wk, task);
}

static void chan_wake_pollers(struct gosync_chan *ch)
{
	if (wq_has_sleeper(&ch->pollq))
		wake_up_interruptible_poll(&ch->pollq, EPOLLIN | EPOLLOUT);
}

/*
 * Try to send the value in @val without waiting. Returns 0 when sent,
 * -EPIPE when closed, -EAGAIN when the caller would have to wait.
 */
static int chan_try_send(struct gosync_chan *ch, const void *val,
			 struct gosync_wakeups *wk)
{
	struct chan_waiter *r;

	lockdep_assert_held(&ch->lock);
	if (ch->closed)
		return -EPIPE;
	r = list_first_entry_or_null(&ch->recvq, struct chan_waiter, node);
	if (r) {
		/* A receiver waits, so the ring is empty: hand it over. */
		chan_copy(ch, r->buf, val);
		chan_serve(r, 1, &ch->nr_receivers, wk);
	} else if (ch->len < ch->capacity) {
		chan_copy(ch, chan_slot(ch, ch->len), val);
		ch->len++;
	} else {
		return -EAGAIN;
	}
	ch->sends++;
	ch->recvs += !!r;
	return 0;
}

/*
 * Try to receive into @val without waiting. Returns 1 with a value, 0 when
 * closed and drained (@val zeroed), -EAGAIN when the caller would wait.
 */
static int chan_try_recv(struct gosync_chan *ch, void *val,
			 struct gosync_wakeups *wk)
{
	struct chan_waiter *s;

	lockdep_assert_held(&ch->lock);
	s = list_first_entry_or_null(&ch->sendq, struct chan_waiter, node);
	if (ch->len) {
		chan_copy(ch, val, chan_slot(ch, 0));
		ch->head = (ch->head + 1) % ch->capacity;
		ch->len--;
		if (s) {
			/* The buffer was full: the first sender's value
			 * takes the freed slot at the tail.
			 */
			chan_copy(ch, chan_slot(ch, ch->len), s->buf);
			ch->len++;
			ch->sends++;
			chan_serve(s, 0, &ch->nr_senders, wk);
		}
	} else if (s) {
		/* Unbuffered: take the value straight from the sender. */
		chan_copy(ch, val, s->buf);
		ch->sends++;
		chan_serve(s, 0, &ch->nr_senders, wk);
	} else if (ch->closed) {
		chan_copy(ch, val, NULL);
		return 0;
	} else {
		return -EAGAIN;
	}
	ch->recvs++;
	return 1;
}

/*
 * Copy in and check a send or receive argument. The value buffer is
 * @small if it fits, else allocated; chan_xfer_end() frees it.
 */
static int chan_xfer_begin(struct gosync_chan *ch,
			   const struct gosync_chan_xfer __user *uarg,
			   struct gosync_chan_xfer *arg,
			   struct gosync_deadline *dl, void *small,
			   size_t small_size, void **val)
{
	int ret;

	if (copy_from_user(arg, uarg, sizeof(*arg)))
		return -EFAULT;
	if (arg->reserved || (arg->flags & ~(GOSYNC_CLOCK_REALTIME |
					      GOSYNC_CHAN_TRY)))
		return -EINVAL;
	ret = gosync_deadline_init(dl, arg->deadline,
				   arg->flags & GOSYNC_CLOCK_REALTIME);
	if (ret)
		return ret;
	if (ch->elem_size <= small_size) {
		*val = small;
		return 0;
	}
	*val = kmalloc(ch->elem_size, GFP_KERNEL_ACCOUNT);
	return *val ? 0 : -ENOMEM;
}

static void chan_xfer_end(void *val, void *small)
{
	if (val != small)
		kfree(val);
}

/*
 * Queue @w on @queue and wait to be served. Called with ch->lock held,
 * returns with it dropped. Returns the waiter's result, or -ETIMEDOUT /
 * -ERESTARTSYS when it gave up before being served.
 */
static int chan_wait(struct gosync_chan *ch, struct chan_waiter *w,
		     struct list_head *queue, u32 *nr,
		     const struct gosync_deadline *dl)
	__releases(&ch->lock)
{
	int ret;

	list_add_tail(&w->node, queue);
	(*nr)++;
	spin_unlock(&ch->lock);
	chan_wake_pollers(ch);	/* a new waiter can make the other side ready */

	ret = gosync_wait_until(&w->served, dl);
	if (!ret)
		return w->result;
	spin_lock(&ch->lock);
	if (w->served) {
		ret = w->result;	/* served before we gave up: keep it */
	} else {
		list_del(&w->node);
		(*nr)--;
	}
	spin_unlock(&ch->lock);
	if (ret < 0)
		chan_wake_pollers(ch);
	return ret;
}

static long chan_send(struct gosync_chan *ch,
		      const struct gosync_chan_xfer __user *uarg)
{
	struct chan_waiter w = { .task = current };
	struct gosync_wakeups wk = { 0 };
	struct gosync_chan_xfer arg;
	struct gosync_deadline dl;
	u8 small[64];
	void *val;
	int ret;

	ret = chan_xfer_begin(ch, uarg, &arg, &dl, small, sizeof(small), &val);
	if (ret)
		return ret;
	if (copy_from_user(val, u64_to_user_ptr(arg.value), ch->elem_size)) {
		ret = -EFAULT;
		goto out;
	}

	spin_lock(&ch->lock);
	ret = chan_try_send(ch, val, &wk);
	if (ret != -EAGAIN || (arg.flags & GOSYNC_CHAN_TRY)) {
		spin_unlock(&ch->lock);
		goto done;
	}
	if (gosync_deadline_passed(&dl)) {
		spin_unlock(&ch->lock);
		ret = -ETIMEDOUT;
		goto out;
	}
	w.buf = val;
	ret = chan_wait(ch, &w, &ch->sendq, &ch->nr_senders, &dl);
done:
	gosync_wake_all(&wk);
	if (!ret)
		chan_wake_pollers(ch);
out:
	chan_xfer_end(val, small);
	return ret;
}

static long chan_recv(struct gosync_chan *ch,
		      const struct gosync_chan_xfer __user *uarg)
{
	struct chan_waiter w = { .task = current };
	struct gosync_wakeups wk = { 0 };
	struct gosync_chan_xfer arg;
	struct gosync_deadline dl;
	void __user *dest;
	u8 small[64];
	void *val;
	int ret;

	ret = chan_xfer_begin(ch, uarg, &arg, &dl, small, sizeof(small), &val);
	if (ret)
		return ret;
	dest = u64_to_user_ptr(arg.value);
	/*
	 * Make sure the destination is writable before consuming a value,
	 * without writing to it, so that a bad pointer loses nothing.
	 */
	if (ch->elem_size &&
	    (!access_ok(dest, ch->elem_size) ||
	     fault_in_safe_writeable(dest, ch->elem_size))) {
		ret = -EFAULT;
		goto out;
	}

	spin_lock(&ch->lock);
	ret = chan_try_recv(ch, val, &wk);
	if (ret != -EAGAIN || (arg.flags & GOSYNC_CHAN_TRY)) {
		spin_unlock(&ch->lock);
		goto done;
	}
	if (gosync_deadline_passed(&dl)) {
		spin_unlock(&ch->lock);
		ret = -ETIMEDOUT;
		goto out;
	}
	w.buf = val;
	ret = chan_wait(ch, &w, &ch->recvq, &ch->nr_receivers, &dl);
done:
	gosync_wake_all(&wk);
	if (ret >= 0) {
		chan_wake_pollers(ch);
		/*
		 * Only fails if another thread unmapped the destination
		 * since the check above; the value is then lost with it.
		 */
		if (copy_to_user(dest, val, ch->elem_size))
			ret = -EFAULT;
	}
out:
	chan_xfer_end(val, small);
	return ret;
}

static long chan_close(struct gosync_chan *ch)
{
	struct gosync_wakeups wk = { 0 };
	struct chan_waiter *w;

	spin_lock(&ch->lock);
	if (ch->closed) {
		spin_unlock(&ch->lock);
		return -EPIPE;
	}
	ch->closed = true;
	/* Waiting receivers imply an empty ring: they all get "closed". */
	while ((w = list_first_entry_or_null(&ch->recvq, struct chan_waiter,
					     node))) {
		chan_copy(ch, w->buf, NULL);
		chan_serve(w, 0, &ch->nr_receivers, &wk);
	}
	while ((w = list_first_entry_or_null(&ch->sendq, struct chan_waiter,
					     node)))
		chan_serve(w, -EPIPE, &ch->nr_senders, &wk);
	spin_unlock(&ch->lock);
	gosync_wake_all(&wk);
	wake_up_interruptible_poll(&ch->pollq, EPOLLIN | EPOLLOUT | EPOLLHUP);
	return 0;
}

static void chan_snapshot(struct gosync_chan *ch, struct gosync_chan_status *st)
{
	memset(st, 0, sizeof(*st));
	st->elem_size = ch->elem_size;
	st->capacity = ch->capacity;
	spin_lock(&ch->lock);
	st->len = ch->len;
	st->closed = ch->closed;
	st->send_waiters = ch->nr_senders;
	st->recv_waiters = ch->nr_receivers;
	st->sends = ch->sends;
	st->recvs = ch->recvs;
	spin_unlock(&ch->lock);
}

static long chan_status(struct gosync_chan *ch,
			struct gosync_chan_status __user *uarg)
{
	struct gosync_chan_status st;

	chan_snapshot(ch, &st);
	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long chan_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct gosync_chan *ch = file->private_data;
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case GOSYNC_IOC_CHAN_SEND:
		return chan_send(ch, argp);
	case GOSYNC_IOC_CHAN_RECV:
		return chan_recv(ch, argp);
	case GOSYNC_IOC_CHAN_CLOSE:
		return chan_close(ch);
	case GOSYNC_IOC_CHAN_STATUS:
		return chan_status(ch, argp);
	default:
		return -ENOTTY;
	}
}

/*
 * Readable when a receive would not block (a value, a waiting sender, or
 * closed: EPOLLHUP too); writable when a send would not block (room, a
 * waiting receiver; once closed, sends fail at once: EPOLLERR, as for a
 * pipe without readers).
 */
static __poll_t chan_poll(struct file *file, poll_table *pt)
{
	struct gosync_chan *ch = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &ch->pollq, pt);
	spin_lock(&ch->lock);
	if (ch->len || ch->nr_senders || ch->closed)
		mask |= EPOLLIN | EPOLLRDNORM;
	if (ch->closed)
		mask |= EPOLLHUP | EPOLLOUT | EPOLLERR;
	else if (ch->len < ch->capacity || ch->nr_receivers)
		mask |= EPOLLOUT | EPOLLWRNORM;
	spin_unlock(&ch->lock);
	return mask;
}

static void chan_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gosync_chan_status st;

	chan_snapshot(file->private_data, &st);
	seq_puts(m, "gosync-type:\tchan\n");
	seq_printf(m, "elem-size:\t%u\n", st.elem_size);
	seq_printf(m, "cap:\t%u\n", st.capacity);
	seq_printf(m, "len:\t%u\n", st.len);
	seq_printf(m, "closed:\t%u\n", st.closed);
	seq_printf(m, "send-waiters:\t%u\n", st.send_waiters);
	seq_printf(m, "recv-waiters:\t%u\n", st.recv_waiters);
	seq_printf(m, "sends:\t%llu\n", st.sends);
	seq_printf(m, "recvs:\t%llu\n", st.recvs);
}

static void chan_free(struct gosync_chan *ch)
{
	kvfree(ch->buf);
	kfree(ch);
}

static int chan_file_release(struct inode *inode, struct file *file)
{
	struct gosync_chan *ch = file->private_data;

	WARN_ON_ONCE(!list_empty(&ch->sendq) || !list_empty(&ch->recvq));
	chan_free(ch);
	return 0;
}

static const struct file_operations chan_fops = {
	.owner		= THIS_MODULE,
	.release	= chan_file_release,
	.unlocked_ioctl	= chan_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.poll		= chan_poll,
	.show_fdinfo	= chan_show_fdinfo,
	.llseek		= noop_llseek,
};

long gosync_chan_create(const struct gosync_chan_create __user *uarg)
{
	struct gosync_chan_create arg;
	struct gosync_chan *ch;
	size_t bytes;
	int fd;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved || arg.elem_size > GOSYNC_CHAN_ELEM_MAX ||
	    arg.capacity > READ_ONCE(max_capacity))
		return -EINVAL;
	bytes = (size_t)arg.elem_size * arg.capacity;
	if (bytes > READ_ONCE(max_buffer_bytes))
		return -ENOMEM;

	ch = kzalloc(sizeof(*ch), GFP_KERNEL_ACCOUNT);
	if (!ch)
		return -ENOMEM;
	if (bytes) {
		ch->buf = kvzalloc(bytes, GFP_KERNEL_ACCOUNT);
		if (!ch->buf) {
			chan_free(ch);
			return -ENOMEM;
		}
	}
	ch->elem_size = arg.elem_size;
	ch->capacity = arg.capacity;
	spin_lock_init(&ch->lock);
	INIT_LIST_HEAD(&ch->sendq);
	INIT_LIST_HEAD(&ch->recvq);
	init_waitqueue_head(&ch->pollq);

	fd = anon_inode_getfd("[gosync-chan]", &chan_fops, ch,
			      O_RDWR | O_CLOEXEC);
	if (fd < 0)
		chan_free(ch);
	return fd;
}
