// SPDX-License-Identifier: GPL-2.0
/*
 * gosync channels, select and timer channels: Go's chan T, select
 * statement and time.After/time.Ticker as kernel objects.
 *
 * Values never cross the user boundary under a channel's spinlock: a
 * sender copies its value into a kernel buffer of its own before locking,
 * a receiver copies its value out of its own kernel buffer after
 * unlocking. Under the lock values move by memcpy() only, between those
 * private buffers and the channel's ring.
 *
 * Waiters. A blocked operation, or a blocked select, is one struct
 * chan_owner on its task's stack, with one struct chan_entry per case
 * queued on that case's channel (sendq or recvq). Only one channel lock
 * is ever held at a time, so a select over many channels nests no locks.
 * Instead, the owner's @state decides who completes it:
 *
 *   WAITING --grab--> BUSY --commit--> case index (>= 0)   completed
 *                          \--release--> WAITING             undone
 *   WAITING --cancel--> CANCELLED                            gave up
 *
 * Whoever completes an operation that involves a queued owner (a sender
 * handing a value to a queued receiver, a receiver taking a queued
 * sender's value, close, a timer) does so under that channel's lock: it
 * grabs the owner (WAITING -> BUSY by cmpxchg), moves the value, stores
 * the result, commits the owner to the entry's case index and sets
 * @done with release semantics; the task is woken after the lock is
 * dropped (struct gosync_wakeups). An owner is thus completed exactly
 * once, by exactly one case: nothing is lost or duplicated.
 *
 * A hand-off between two waiters needs both: a select that is already
 * queued on other channels (@self) may be grabbed through them while it
 * grabs a peer here. claim_pair() grabs the two owners in address order
 * and releases the first if the second is gone. Whoever meets a BUSY
 * owner spins until it is committed or released: the holder is inside a
 * spinlocked section and takes no lock while it holds an owner BUSY, and
 * a spinner only ever holds BUSY owners at lower addresses than the one
 * it waits for, so the waits cannot form a cycle. Because nobody skips a
 * BUSY owner, an owner released back to WAITING has missed no partner.
 *
 * A select visits its cases in a random order; on each channel it tries
 * the operation for @self and, if that would block, queues its entry, in
 * the same locked section. Any partner that arrives later finds the entry;
 * any partner queued earlier is found by the try. So no pair of matching
 * waiters is ever left asleep on one channel. A select's own entries never
 * match each other (a send and a receive on one unbuffered channel).
 * Entries of owners that are committed or cancelled are unlinked by
 * whoever meets them; the owner unlinks its remaining entries, each under
 * its channel's lock, before it returns.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hrtimer.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pagemap.h>
#include <linux/poll.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "gosync.h"

static unsigned int max_capacity = 1U << 20;
module_param(max_capacity, uint, 0644);
MODULE_PARM_DESC(max_capacity, "Largest channel capacity (slots)");

static unsigned long max_buffer_bytes = 64UL << 20;
module_param(max_buffer_bytes, ulong, 0644);
MODULE_PARM_DESC(max_buffer_bytes, "Largest channel buffer (bytes)");

struct chan_timer;

struct gosync_chan {
	/*
	 * Protects the ring (@buf contents, @head, @len), @closed, both
	 * queues, the counters, and the value buffers of queued entries.
	 */
	spinlock_t lock;
	u32 head;			/* slot of the oldest value */
	u32 len;			/* values in the ring */
	bool closed;
	struct list_head sendq;		/* struct chan_entry, FIFO */
	struct list_head recvq;
	u64 sends;
	u64 recvs;

	u32 elem_size;			/* immutable after creation */
	u32 capacity;
	u8 *buf;			/* capacity * elem_size bytes */
	struct chan_timer *timer;	/* timer channels only */
	wait_queue_head_t pollq;
};

#define OWNER_WAITING	(-1)
#define OWNER_BUSY	(-2)
#define OWNER_CANCELLED	(-3)

struct chan_owner {
	atomic_t state;		/* OWNER_* or the index of the case done */
	int result;		/* valid once @done */
	bool done;		/* set with release after @state is final */
	struct task_struct *task;
};

struct chan_entry {
	struct list_head node;	/* on a queue, or empty */
	struct chan_owner *owner;
	void *buf;		/* sender: its value; receiver: room for one */
	u32 index;		/* the case's index in its select */
};

/* One case of a select (a plain send or receive is a select of one). */
struct chan_case {
	struct gosync_chan *ch;	/* NULL: a nil case, never ready */
	struct file *file;	/* reference held by a select, or NULL */
	bool send;
	bool queued;
	void *val;		/* the private value buffer */
	void __user *uval;
	struct chan_entry entry;
};

static const struct file_operations chan_fops;

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

/*
 * WAITING -> BUSY. Spins while another holds the owner BUSY (a few
 * instructions inside its locked section). False if the owner is final.
 */
static bool owner_grab(struct chan_owner *o)
{
	for (;;) {
		int s = atomic_cmpxchg(&o->state, OWNER_WAITING, OWNER_BUSY);

		if (s == OWNER_WAITING)
			return true;
		if (s != OWNER_BUSY)
			return false;
		cpu_relax();
	}
}

/* BUSY -> WAITING: undo a grab; spinners on the owner then retry. */
static void owner_release(struct chan_owner *o)
{
	atomic_set_release(&o->state, OWNER_WAITING);
}

/*
 * BUSY -> @index, with @result: the owner's operation is complete. Its
 * task is queued on @wk to be woken, unless @wk is NULL (the caller's own
 * owner). After @done is set the owner may return: @o is not touched.
 */
static void owner_commit(struct chan_owner *o, u32 index, int result,
			 struct gosync_wakeups *wk)
{
	struct task_struct *task = o->task;

	o->result = result;
	atomic_set(&o->state, index);
	/*
	 * Pairs with the owner's smp_load_acquire() of @done (in
	 * gosync_wait_until() or chan_select()): the result, the state and
	 * the value moved into its buffer are visible once it sees @done.
	 */
	smp_store_release(&o->done, true);
	if (wk)
		gosync_wake_add(wk, task);
}

/* WAITING -> CANCELLED; false if the owner was completed meanwhile. */
static bool owner_cancel(struct chan_owner *o)
{
	for (;;) {
		int s = atomic_cmpxchg(&o->state, OWNER_WAITING,
				       OWNER_CANCELLED);

		if (s == OWNER_WAITING)
			return true;
		if (s != OWNER_BUSY)
			return false;
		cpu_relax();
	}
}

enum claim { CLAIM_OK, CLAIM_PEER_GONE, CLAIM_SELF_GONE };

/*
 * Grab @peer, and @self too unless it is NULL (an owner queued nowhere,
 * which nobody else can complete), lower address first.
 */
static enum claim claim_pair(struct chan_owner *self, struct chan_owner *peer)
{
	struct chan_owner *first = self, *second = peer;

	if (!self)
		return owner_grab(peer) ? CLAIM_OK : CLAIM_PEER_GONE;
	if (peer < self)
		swap(first, second);
	if (!owner_grab(first))
		return first == self ? CLAIM_SELF_GONE : CLAIM_PEER_GONE;
	if (!owner_grab(second)) {
		owner_release(first);
		return second == self ? CLAIM_SELF_GONE : CLAIM_PEER_GONE;
	}
	return CLAIM_OK;
}

/* Complete @self (if any) on case @index with @result, alone. */
static int commit_self(struct chan_owner *self, u32 index, int result)
{
	if (!self)
		return result;
	if (!owner_grab(self))
		return -ECANCELED;
	owner_commit(self, index, result, NULL);
	return result;
}

/*
 * Find the first entry of @queue that can complete with @self: skip
 * @self's own entries (a select never meets itself), unlink entries whose
 * owner is already final, and grab the partner together with @self.
 * Returns the partner's entry, unlinked and grabbed; NULL if there is
 * none; ERR_PTR(-ECANCELED) if @self was completed elsewhere meanwhile.
 */
static struct chan_entry *chan_claim_partner(struct list_head *queue,
					     struct chan_owner *self)
{
	struct chan_entry *e, *tmp;

	list_for_each_entry_safe(e, tmp, queue, node) {
		if (e->owner == self)
			continue;
		switch (claim_pair(self, e->owner)) {
		case CLAIM_SELF_GONE:
			return ERR_PTR(-ECANCELED);
		case CLAIM_PEER_GONE:
			list_del_init(&e->node);
			continue;
		case CLAIM_OK:
			list_del_init(&e->node);
			return e;
		}
	}
	return NULL;
}

/*
 * Try to send @val on @ch for case @index of @self, with ch->lock held.
 * Returns 0 (sent), -EPIPE (closed), -EAGAIN (would block), or
 * -ECANCELED (@self was completed through another case meanwhile).
 */
static int chan_try_send(struct gosync_chan *ch, struct chan_owner *self,
			 u32 index, const void *val, struct gosync_wakeups *wk)
{
	struct chan_entry *r;

	lockdep_assert_held(&ch->lock);
	if (ch->closed)
		return commit_self(self, index, -EPIPE);
	r = chan_claim_partner(&ch->recvq, self);
	if (IS_ERR(r))
		return PTR_ERR(r);
	if (r) {
		/* A live receiver waits, so the ring is empty: hand over. */
		chan_copy(ch, r->buf, val);
		ch->sends++;
		ch->recvs++;
		owner_commit(r->owner, r->index, 1, wk);
		if (self)
			owner_commit(self, index, 0, NULL);
		return 0;
	}
	if (ch->len < ch->capacity) {
		if (self && !owner_grab(self))
			return -ECANCELED;
		chan_copy(ch, chan_slot(ch, ch->len), val);
		ch->len++;
		ch->sends++;
		if (self)
			owner_commit(self, index, 0, NULL);
		return 0;
	}
	return -EAGAIN;
}

/*
 * Try to receive into @val from @ch for case @index of @self, with
 * ch->lock held. Returns 1 (a value), 0 (closed and drained, @val zeroed),
 * -EAGAIN or -ECANCELED as for chan_try_send().
 */
static int chan_try_recv(struct gosync_chan *ch, struct chan_owner *self,
			 u32 index, void *val, struct gosync_wakeups *wk)
{
	struct chan_entry *s;

	lockdep_assert_held(&ch->lock);
	s = chan_claim_partner(&ch->sendq, self);
	if (IS_ERR(s))
		return PTR_ERR(s);
	if (s) {
		if (ch->len) {
			/*
			 * Live senders wait only on a full ring: take the
			 * oldest value, the sender's goes to the tail.
			 */
			chan_copy(ch, val, chan_slot(ch, 0));
			ch->head = (ch->head + 1) % ch->capacity;
			chan_copy(ch, chan_slot(ch, ch->len - 1), s->buf);
		} else {
			chan_copy(ch, val, s->buf);
		}
		ch->sends++;
		ch->recvs++;
		owner_commit(s->owner, s->index, 0, wk);
		if (self)
			owner_commit(self, index, 1, NULL);
		return 1;
	}
	if (ch->len) {
		if (self && !owner_grab(self))
			return -ECANCELED;
		chan_copy(ch, val, chan_slot(ch, 0));
		ch->head = (ch->head + 1) % ch->capacity;
		ch->len--;
		ch->recvs++;
		if (self)
			owner_commit(self, index, 1, NULL);
		return 1;
	}
	if (ch->closed) {
		chan_copy(ch, val, NULL);
		return commit_self(self, index, 0);
	}
	return -EAGAIN;
}

/* True if @queue holds an entry whose owner may still be completed. */
static bool chan_queue_live(struct list_head *queue)
{
	struct chan_entry *e;

	list_for_each_entry(e, queue, node) {
		int s = atomic_read(&e->owner->state);

		if (s == OWNER_WAITING || s == OWNER_BUSY)
			return true;
	}
	return false;
}

static u32 chan_queue_count(struct list_head *queue)
{
	struct chan_entry *e;
	u32 n = 0;

	list_for_each_entry(e, queue, node) {
		int s = atomic_read(&e->owner->state);

		n += s == OWNER_WAITING || s == OWNER_BUSY;
	}
	return n;
}

static void chan_wake_pollers(struct gosync_chan *ch)
{
	gosync_wake_pollers(&ch->pollq, EPOLLIN | EPOLLOUT);
}

/* Unlink the entries @owner left queued; it is final, nobody adds more. */
static void chan_unqueue(struct chan_case *cases, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++) {
		struct chan_case *c = &cases[i];

		if (!c->queued)
			continue;
		spin_lock(&c->ch->lock);
		if (!list_empty(&c->entry.node))
			list_del_init(&c->entry.node);
		spin_unlock(&c->ch->lock);
	}
}

/*
 * The select engine: complete exactly one of @cases, visited in @order.
 * With @try_only nothing is queued (Go's default case). Returns the
 * case's result (send: 0 or -EPIPE; receive: 1 or 0) with *@index set,
 * or -EAGAIN (try_only, nothing ready), -ETIMEDOUT or -ERESTARTSYS.
 */
static int chan_select(struct chan_case *cases, u32 n, const u32 *order,
		       bool try_only, const struct gosync_deadline *dl,
		       u32 *index)
{
	struct chan_owner o = {
		.state = ATOMIC_INIT(OWNER_WAITING), .task = current,
	};
	struct chan_owner *self = NULL;
	struct gosync_wakeups wk = { 0 };
	bool expired = false;
	int ret = -EAGAIN;
	u32 k;

	if (!try_only && gosync_deadline_passed(dl)) {
		try_only = true;
		expired = true;
	}
	if (!try_only)
		self = &o;

	for (k = 0; k < n && ret == -EAGAIN; k++) {
		u32 i = order[k];
		struct chan_case *c = &cases[i];
		struct gosync_chan *ch = c->ch;

		if (!ch)
			continue;
		spin_lock(&ch->lock);
		if (c->send)
			ret = chan_try_send(ch, self, i, c->val, &wk);
		else
			ret = chan_try_recv(ch, self, i, c->val, &wk);
		if (ret == -EAGAIN && self) {
			c->entry.owner = self;
			c->entry.buf = c->val;
			c->entry.index = i;
			list_add_tail(&c->entry.node,
				      c->send ? &ch->sendq : &ch->recvq);
			c->queued = true;
		}
		spin_unlock(&ch->lock);
		gosync_wake_all(&wk);
		/* A transfer, or a new waiter, may make the other side ready. */
		chan_wake_pollers(ch);
		if (ret != -EAGAIN && ret != -ECANCELED)
			*index = i;
	}

	if (ret == -EAGAIN) {
		if (try_only)
			return expired ? -ETIMEDOUT : -EAGAIN;
		ret = gosync_wait_until(&o.done, dl, NULL);
		if (ret && owner_cancel(&o))
			goto out;
		ret = -ECANCELED;	/* completed by a partner */
	}
	if (ret == -ECANCELED) {
		/* The partner sets @done right after committing us. */
		while (!smp_load_acquire(&o.done))
			cpu_relax();
		*index = atomic_read(&o.state);
		ret = o.result;
	}
out:
	chan_unqueue(cases, n);
	return ret;
}

/* Check that @dest can take @size bytes, without writing to it. */
static int chan_check_dest(void __user *dest, size_t size)
{
	if (size && (!access_ok(dest, size) ||
		     fault_in_safe_writeable(dest, size)))
		return -EFAULT;
	return 0;
}

/*
 * Prepare case @c on @ch: allocate its value buffer (@small if the value
 * fits), copy in the value to send or check the destination.
 */
static int chan_case_init(struct chan_case *c, struct gosync_chan *ch,
			  bool send, u64 uval, void *small, size_t small_size)
{
	c->ch = ch;
	c->send = send;
	c->uval = u64_to_user_ptr(uval);
	INIT_LIST_HEAD(&c->entry.node);
	if (send && ch->timer)
		return -EPERM;	/* timer channels are receive-only */
	if (ch->elem_size <= small_size) {
		c->val = small;
	} else {
		c->val = kmalloc(ch->elem_size, GFP_KERNEL_ACCOUNT);
		if (!c->val)
			return -ENOMEM;
	}
	if (send)
		return copy_from_user(c->val, c->uval, ch->elem_size) ?
		       -EFAULT : 0;
	return chan_check_dest(c->uval, ch->elem_size);
}

static void chan_case_free(struct chan_case *c, void *small)
{
	if (c->val != small)
		kfree(c->val);
	if (c->file)
		fput(c->file);
}

static long chan_xfer(struct gosync_chan *ch, bool send,
		      const struct gosync_chan_xfer __user *uarg)
{
	struct gosync_chan_xfer arg;
	struct gosync_deadline dl;
	struct chan_case c = { 0 };
	u32 order = 0, index;
	u8 small[64];
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved || (arg.flags & ~(GOSYNC_CLOCK_REALTIME |
					     GOSYNC_CHAN_TRY)))
		return -EINVAL;
	ret = gosync_deadline_init(&dl, arg.deadline,
				   arg.flags & GOSYNC_CLOCK_REALTIME);
	if (ret)
		return ret;
	ret = chan_case_init(&c, ch, send, arg.value, small, sizeof(small));
	if (!ret)
		ret = chan_select(&c, 1, &order, arg.flags & GOSYNC_CHAN_TRY,
				  &dl, &index);
	/*
	 * copy_to_user() fails only if another thread unmapped the checked
	 * destination meanwhile; the value is then lost with the mapping.
	 */
	if (!send && ret >= 0 && copy_to_user(c.uval, c.val, ch->elem_size))
		ret = -EFAULT;
	chan_case_free(&c, small);
	return ret;
}

long gosync_select(struct gosync_select __user *uarg)
{
	struct gosync_select_case *ucases = NULL;
	struct chan_case *cases = NULL;
	struct gosync_select arg;
	struct gosync_deadline dl;
	u32 *order = NULL, i, index = 0;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.ncases > GOSYNC_SELECT_MAX_CASES ||
	    (arg.flags & ~(GOSYNC_CLOCK_REALTIME | GOSYNC_SELECT_DEFAULT)))
		return -EINVAL;
	ret = gosync_deadline_init(&dl, arg.deadline,
				   arg.flags & GOSYNC_CLOCK_REALTIME);
	if (ret)
		return ret;
	if (arg.ncases) {
		ucases = memdup_user(u64_to_user_ptr(arg.cases),
				     arg.ncases * sizeof(*ucases));
		if (IS_ERR(ucases))
			return PTR_ERR(ucases);
		cases = kcalloc(arg.ncases, sizeof(*cases), GFP_KERNEL_ACCOUNT);
		order = kcalloc(arg.ncases, sizeof(*order), GFP_KERNEL_ACCOUNT);
		if (!cases || !order) {
			ret = -ENOMEM;
			goto out;
		}
	}

	for (i = 0; i < arg.ncases; i++) {
		struct gosync_select_case *u = &ucases[i];
		struct chan_case *c = &cases[i];
		struct file *file;
		u32 j;

		/* Fisher-Yates: a uniformly random order of the cases. */
		j = (u32)(((u64)get_random_u32() * (i + 1)) >> 32);
		order[i] = order[j];
		order[j] = i;

		INIT_LIST_HEAD(&c->entry.node);
		if (u->op != GOSYNC_SELECT_SEND && u->op != GOSYNC_SELECT_RECV) {
			ret = -EINVAL;
			goto out;
		}
		if (u->fd == GOSYNC_SELECT_NIL)
			continue;
		file = fget(u->fd);
		if (!file) {
			ret = -EBADF;
			goto out;
		}
		c->file = file;
		if (file->f_op != &chan_fops) {
			ret = -EINVAL;
			goto out;
		}
		ret = chan_case_init(c, file->private_data,
				     u->op == GOSYNC_SELECT_SEND, u->value,
				     NULL, 0);
		if (ret)
			goto out;
	}

	ret = chan_select(cases, arg.ncases, order,
			  arg.flags & GOSYNC_SELECT_DEFAULT, &dl, &index);
	if (ret >= 0 || ret == -EPIPE) {
		struct chan_case *c = &cases[index];

		arg.index = index;
		arg.ok = !c->send && ret == 1;
		if (!c->send &&
		    copy_to_user(c->uval, c->val, c->ch->elem_size))
			ret = -EFAULT;
		else if (copy_to_user(uarg, &arg, sizeof(arg)))
			ret = -EFAULT;
		else if (ret > 0)
			ret = 0;
	}
out:
	for (i = 0; cases && i < arg.ncases; i++)
		chan_case_free(&cases[i], NULL);
	kfree(order);
	kfree(cases);
	kfree(ucases);
	return ret;
}

/* ---- timer channels ---------------------------------------------- */

struct chan_timer {
	struct mutex lock;	/* serialises stop and reset (they sleep) */
	struct hrtimer hrt;
	struct work_struct fire;
	struct gosync_chan *ch;
	ktime_t period;		/* 0: fires once; set only while stopped */
	ktime_t timens_offset;	/* of the arming task; set only while stopped */
};

/*
 * Hard-irq context: hand the send to process context, where the channel's
 * lock is taken as everywhere else (never from interrupts).
 */
static enum hrtimer_restart chan_timer_expired(struct hrtimer *hrt)
{
	struct chan_timer *t = container_of(hrt, struct chan_timer, hrt);

	queue_work(system_highpri_wq, &t->fire);
	if (!t->period)
		return HRTIMER_NORESTART;
	hrtimer_forward_now(hrt, t->period);
	return HRTIMER_RESTART;
}

/* Send the firing time; a tick nobody took yet makes this one drop. */
static void chan_timer_fire(struct work_struct *work)
{
	struct chan_timer *t = container_of(work, struct chan_timer, fire);
	struct gosync_chan *ch = t->ch;
	struct gosync_wakeups wk = { 0 };
	u64 now;

	if (t->hrt.base->clockid == CLOCK_REALTIME)
		now = ktime_get_real_ns();
	else	/* as seen in the time namespace of whoever armed it */
		now = ktime_get_ns() + t->timens_offset;
	spin_lock(&ch->lock);
	chan_try_send(ch, NULL, 0, &now, &wk);
	spin_unlock(&ch->lock);
	gosync_wake_all(&wk);
	chan_wake_pollers(ch);
}

/*
 * Stop the timer and drop an unreceived value; true if either was
 * pending, i.e. something was stopped from being received.
 */
static bool chan_timer_stop(struct chan_timer *t)
{
	bool pending;

	lockdep_assert_held(&t->lock);
	pending = hrtimer_cancel(&t->hrt);
	pending |= cancel_work_sync(&t->fire);
	spin_lock(&t->ch->lock);
	/* Go 1.23: discarding an unreceived value counts as stopping. */
	pending |= t->ch->len != 0;
	t->ch->len = 0;
	spin_unlock(&t->ch->lock);
	return pending;
}

/* The checks both create and reset make before touching anything. */
static bool chan_timer_set_valid(const struct gosync_timer_set *set)
{
	return !set->reserved && !(set->flags & ~GOSYNC_CLOCK_REALTIME) &&
	       (!set->period || set->period >= GOSYNC_TIMER_MIN_PERIOD);
}

/* Arm the stopped timer @t with @set, which chan_timer_set_valid() passed. */
static void chan_timer_arm(struct chan_timer *t,
			   const struct gosync_timer_set *set)
{
	struct gosync_deadline dl;

	lockdep_assert_held(&t->lock);
	if (WARN_ON_ONCE(gosync_deadline_init(&dl, set->when, set->flags)))
		return;
	hrtimer_init(&t->hrt, dl.clock, HRTIMER_MODE_ABS);
	t->hrt.function = chan_timer_expired;
	t->timens_offset = gosync_timens_offset(dl.clock);
	t->period = ns_to_ktime(min_t(u64, set->period, KTIME_MAX));
	if (!dl.forever)
		hrtimer_start(&t->hrt, dl.expires, HRTIMER_MODE_ABS);
}

static long chan_timer_ioctl(struct gosync_chan *ch, unsigned int cmd,
			     const struct gosync_timer_set __user *uarg)
{
	struct chan_timer *t = ch->timer;
	struct gosync_timer_set set;
	long ret;

	if (!t)
		return -ENOTTY;
	if (cmd == GOSYNC_IOC_TIMER_RESET) {
		if (copy_from_user(&set, uarg, sizeof(set)))
			return -EFAULT;
		/* Validated before stopping, so bad input changes nothing. */
		if (!chan_timer_set_valid(&set))
			return -EINVAL;
	}
	mutex_lock(&t->lock);
	ret = chan_timer_stop(t);
	if (cmd == GOSYNC_IOC_TIMER_RESET)
		chan_timer_arm(t, &set);
	mutex_unlock(&t->lock);
	return ret;
}

/* ---- file operations --------------------------------------------- */

static long chan_close(struct gosync_chan *ch)
{
	struct gosync_wakeups wk = { 0 };
	struct chan_entry *e;

	if (ch->timer)
		return -EPERM;
	spin_lock(&ch->lock);
	if (ch->closed) {
		spin_unlock(&ch->lock);
		return -EPIPE;
	}
	WRITE_ONCE(ch->closed, true);	/* also read unlocked: gosync_chan_closed() */
	/* Live receivers imply an empty ring: they all get "closed". */
	while ((e = list_first_entry_or_null(&ch->recvq, struct chan_entry,
					     node))) {
		list_del_init(&e->node);
		if (owner_grab(e->owner)) {
			chan_copy(ch, e->buf, NULL);
			owner_commit(e->owner, e->index, 0, &wk);
		}
	}
	while ((e = list_first_entry_or_null(&ch->sendq, struct chan_entry,
					     node))) {
		list_del_init(&e->node);
		if (owner_grab(e->owner))
			owner_commit(e->owner, e->index, -EPIPE, &wk);
	}
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
	st->send_waiters = chan_queue_count(&ch->sendq);
	st->recv_waiters = chan_queue_count(&ch->recvq);
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
		return chan_xfer(ch, true, argp);
	case GOSYNC_IOC_CHAN_RECV:
		return chan_xfer(ch, false, argp);
	case GOSYNC_IOC_CHAN_CLOSE:
		return chan_close(ch);
	case GOSYNC_IOC_CHAN_STATUS:
		return chan_status(ch, argp);
	case GOSYNC_IOC_TIMER_STOP:
	case GOSYNC_IOC_TIMER_RESET:
		return chan_timer_ioctl(ch, cmd, argp);
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
	if (ch->len || ch->closed || chan_queue_live(&ch->sendq))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (ch->closed)
		mask |= EPOLLHUP | EPOLLOUT | EPOLLERR;
	else if (!ch->timer && (ch->len < ch->capacity ||
				chan_queue_live(&ch->recvq)))
		mask |= EPOLLOUT | EPOLLWRNORM;
	spin_unlock(&ch->lock);
	return mask;
}

static void chan_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gosync_chan *ch = file->private_data;
	struct gosync_chan_status st;

	chan_snapshot(ch, &st);
	seq_printf(m, "gosync-type:\t%s\n", ch->timer ? "timer" : "chan");
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
	if (ch->timer) {
		/* No new work once the hrtimer is gone; then none running. */
		hrtimer_cancel(&ch->timer->hrt);
		cancel_work_sync(&ch->timer->fire);
		mutex_destroy(&ch->timer->lock);
		kfree(ch->timer);
	}
	kvfree(ch->buf);
	kfree(ch);
}

/* The last reference is gone: no waiter exists (each holds the file). */
static int chan_file_release(struct inode *inode, struct file *file)
{
	struct gosync_chan *ch = file->private_data;

	WARN_ON_ONCE(chan_queue_live(&ch->sendq) ||
		     chan_queue_live(&ch->recvq));
	chan_free(ch);
	return 0;
}

/*
 * For waits that a channel's close cancels (GOSYNC_WAIT_CANCEL_FD): the
 * channel behind @file if it is one, the queue its close wakes with
 * EPOLLHUP, and whether it is closed (set once, never cleared, so an
 * unlocked read is enough: a waiter re-reads it after every wake-up).
 */
struct gosync_chan *gosync_chan_from_file(struct file *file)
{
	return file->f_op == &chan_fops ? file->private_data : NULL;
}

wait_queue_head_t *gosync_chan_pollq(struct gosync_chan *ch)
{
	return &ch->pollq;
}

bool gosync_chan_closed(struct gosync_chan *ch)
{
	return READ_ONCE(ch->closed);
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

static struct gosync_chan *chan_alloc(u32 elem_size, u32 capacity)
{
	size_t bytes = (size_t)elem_size * capacity;
	struct gosync_chan *ch;

	if (bytes > READ_ONCE(max_buffer_bytes))
		return ERR_PTR(-ENOMEM);
	ch = kzalloc(sizeof(*ch), GFP_KERNEL_ACCOUNT);
	if (!ch)
		return ERR_PTR(-ENOMEM);
	if (bytes) {
		ch->buf = kvzalloc(bytes, GFP_KERNEL_ACCOUNT);
		if (!ch->buf) {
			kfree(ch);
			return ERR_PTR(-ENOMEM);
		}
	}
	ch->elem_size = elem_size;
	ch->capacity = capacity;
	spin_lock_init(&ch->lock);
	INIT_LIST_HEAD(&ch->sendq);
	INIT_LIST_HEAD(&ch->recvq);
	init_waitqueue_head(&ch->pollq);
	return ch;
}

static int chan_install(struct gosync_chan *ch, const char *name)
{
	int fd = anon_inode_getfd(name, &chan_fops, ch, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		chan_free(ch);
	return fd;
}

long gosync_chan_create(const struct gosync_chan_create __user *uarg)
{
	struct gosync_chan_create arg;
	struct gosync_chan *ch;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved || arg.elem_size > GOSYNC_CHAN_ELEM_MAX ||
	    arg.capacity > READ_ONCE(max_capacity))
		return -EINVAL;
	ch = chan_alloc(arg.elem_size, arg.capacity);
	if (IS_ERR(ch))
		return PTR_ERR(ch);
	return chan_install(ch, "[gosync-chan]");
}

long gosync_timer_create(const struct gosync_timer_set __user *uarg)
{
	struct gosync_timer_set set;
	struct gosync_chan *ch;
	struct chan_timer *t;

	if (copy_from_user(&set, uarg, sizeof(set)))
		return -EFAULT;
	if (!chan_timer_set_valid(&set))
		return -EINVAL;
	ch = chan_alloc(sizeof(u64), 1);
	if (IS_ERR(ch))
		return PTR_ERR(ch);
	t = kzalloc(sizeof(*t), GFP_KERNEL_ACCOUNT);
	if (!t) {
		chan_free(ch);
		return -ENOMEM;
	}
	mutex_init(&t->lock);
	INIT_WORK(&t->fire, chan_timer_fire);
	t->ch = ch;
	mutex_lock(&t->lock);
	chan_timer_arm(t, &set);	/* initialises the hrtimer too */
	mutex_unlock(&t->lock);
	ch->timer = t;
	return chan_install(ch, "[gosync-timer]");
}
