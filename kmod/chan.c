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
 * is ever held at a time, so a select over many channels nests no
 * channel locks. Instead, the owner's @state decides who completes it:
 *
 *   WAITING --commit--> case index (>= 0)   completed
 *   WAITING --cancel--> CANCELLED           gave up
 *
 * Every read that decides and every change of @state, @result and @done
 * is made under the owner's own lock, o->lock. Whoever completes an
 * operation that involves a queued owner (a sender handing a value to a
 * queued receiver, a receiver taking a queued sender's value, close, a
 * timer) does so under that channel's lock: it grabs the owner (takes
 * o->lock and finds it WAITING), moves the value, stores the result,
 * commits the owner to the entry's case index, sets @done with release
 * semantics and unlocks it; or, if the move cannot be made after all,
 * releases it (unlocks it, still WAITING). The task is woken after the
 * channel lock is dropped (struct gosync_wakeups). An owner is thus
 * completed exactly once, by exactly one case: nothing is lost or
 * duplicated.
 *
 * A hand-off between two waiters needs both: a select that is already
 * queued on other channels (@self) may be grabbed through them while it
 * grabs a peer here. claim_pair() locks the two owners in address order
 * (the second with SINGLE_DEPTH_NESTING for lockdep) and releases the
 * first if the second is final. Lock order: a channel lock, then at most
 * two owner locks, lower address first; nobody takes a channel lock, or
 * a third owner lock, while holding an owner lock, so there is no cycle.
 *
 * Why this holds on PREEMPT_RT too. Nobody ever busy-waits for a state
 * that another task sets: a grabber that meets an owner being decided
 * elsewhere blocks on o->lock, an ordinary spinlock_t. Without RT, the
 * holder runs with preemption disabled inside its locked section, a few
 * copies long, so the wait is short. With RT, spinlock_t is an rt_mutex:
 * the holder may be preempted, but its waiter sleeps and lends it its
 * priority, so the holder runs and the wait ends whatever the priorities
 * and CPUs (a spinning waiter of higher priority on the holder's CPU
 * would have spun for ever). Lockdep sees every such wait, the lock
 * order above included. The owner itself, once woken (or timed out,
 * or interrupted), learns the outcome by taking o->lock (owner_finish()):
 * a commit under way completes first, so the owner neither spins for
 * @done nor returns, freeing its stack, while another task still holds
 * or is about to unlock its lock. Its entries may still be met through
 * the queues until it unlinks them, each under its channel's lock
 * (chan_unqueue()); a grab that meets it there finds it final and skips
 * it. Because nobody skips an owner that is WAITING (a grab waits for
 * the lock rather than passing by), an owner released back to WAITING
 * has missed no partner.
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
 *
 * A receive whose destination is NULL (user address 0) discards the
 * value: its case has no value buffer (c->val and entry.buf are NULL),
 * the ring pops without a copy, chan_copy() skips it, nothing is copied
 * out; the value is consumed all the same.
 */
#include <linux/anon_inodes.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hrtimer.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/overflow.h>
#include <linux/pagemap.h>
#include <linux/poll.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/user.h>
#include <linux/seq_file.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "gosync.h"
#include "gosync_trace.h"

/*
 * What the parameters may be set to: a ring of CHAN_BUFFER_LIMIT bytes
 * is 2^18 + 1 pages, so neither the page count (u32) nor any size
 * product can wrap, on 32-bit kernels too; no capacity above
 * CHAN_CAPACITY_LIMIT fits it (a slot is at least 8 bytes). Writes
 * beyond them fail with -EINVAL and change nothing.
 */
#define CHAN_BUFFER_LIMIT	SZ_1G
#define CHAN_CAPACITY_LIMIT	(CHAN_BUFFER_LIMIT / GOSYNC_CHAN_SLOT_SIZE(0))

static int max_capacity_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 0, CHAN_CAPACITY_LIMIT);
}

static const struct kernel_param_ops max_capacity_ops = {
	.set = max_capacity_set,
	.get = param_get_uint,
};

static int max_buffer_bytes_set(const char *val, const struct kernel_param *kp)
{
	unsigned long bytes;
	int ret = kstrtoul(val, 0, &bytes);

	if (ret)
		return ret;
	if (bytes > CHAN_BUFFER_LIMIT)
		return -EINVAL;
	WRITE_ONCE(*(unsigned long *)kp->arg, bytes);
	return 0;
}

static const struct kernel_param_ops max_buffer_bytes_ops = {
	.set = max_buffer_bytes_set,
	.get = param_get_ulong,
};

/*
 * Defaults: a ring may take as much as the kernel's default
 * RLIMIT_MEMLOCK (8 MiB), to which an unprivileged creator's rings are
 * charged in all; more than 65536 slots is rarely what a program wants.
 */
static unsigned int max_capacity = 1U << 16;
module_param_cb(max_capacity, &max_capacity_ops, &max_capacity, 0644);
MODULE_PARM_DESC(max_capacity, "Largest channel capacity (slots)");

static unsigned long max_buffer_bytes = 8UL << 20;
module_param_cb(max_buffer_bytes, &max_buffer_bytes_ops, &max_buffer_bytes,
		0644);
MODULE_PARM_DESC(max_buffer_bytes, "Largest channel buffer (bytes)");

/*
 * A select holds a kernel buffer for the value of each case that sends,
 * or receives into a destination, while it waits: their total is bounded
 * here (-E2BIG beyond). Never below one element of the largest size, so
 * that any select of one case (every _ctx call of libgosync is a select
 * with the context's Done) works whatever the parameter says. Any value
 * is safe: beyond GOSYNC_SELECT_MAX_CASES * GOSYNC_CHAN_ELEM_MAX (8 MiB)
 * it bounds nothing.
 */
static unsigned long max_select_bytes = 1UL << 20;

/*
 * No limit on the number of objects, per process or per user: the bounds
 * are on what they cost, where the kernel already counts it.
 *  - Memory: everything an object or a waiter allocates is charged to
 *    the caller's memory cgroup (GOSYNC_GFP; the struct file and dentry
 *    of its fd, and a waiter's thread and kernel stack, are charged by
 *    the kernel), and fails with -ENOMEM at memory.max without invoking
 *    the OOM killer. selftests/memcg_test.c checks it.
 *  - Pinned pages: the rings, the only large and unswappable part, are
 *    charged to the creating user's RLIMIT_MEMLOCK (chan_ring_charge()).
 *  - Count: an object lives as long as an fd or a mapping of it, so
 *    RLIMIT_NOFILE and vm.max_map_count bound what a process holds, and
 *    fds in flight over UNIX sockets are bounded by the kernel.
 * mqueue's RLIMIT_MSGQUEUE is a per-user byte count because a queue
 * outlives every process, in a filesystem, and predates memory cgroup
 * accounting; gosync objects die with their last reference, as pipes,
 * eventfds and memfds do. A per-user count would also need a uid table
 * of the module's own (a module cannot add a ucount), for a bound that
 * memcg already gives in bytes, the resource that matters.
 */
module_param(max_select_bytes, ulong, 0644);
MODULE_PARM_DESC(max_select_bytes,
		 "Largest total of the value buffers of one select (bytes)");

struct chan_timer;

struct gosync_chan {
	/*
	 * Protects @closed, both queues, the counters, the value buffers of
	 * queued entries, and the kernel's side of the ring: every kernel
	 * push, pop and flag change happens under it (userspace ones run
	 * concurrently, with the atomics of the ring protocol).
	 */
	spinlock_t lock;
	bool closed;
	struct list_head sendq;		/* struct chan_entry, FIFO */
	struct list_head recvq;
	u64 handoffs;			/* values passed without the ring */
	u64 holes;			/* positions abandoned by dead pushers */
	atomic64_t slow_ops;
	atomic64_t kicks;

	u64 id;				/* gosync_new_id(): the tracepoints' */
	u32 elem_size;			/* immutable after creation */
	u32 capacity;
	u32 slot_size;
	u64 pos_mod;			/* positions wrap here */
	struct page **pages;		/* the ring: header page, then slots */
	u32 nr_pages;
	void *ring;			/* vmap() of @pages, or NULL */
	struct user_struct *user;	/* charged @charged pages, or NULL */
	u32 charged;
	atomic64_t *tail;		/* in the header page */
	atomic64_t *head;
	struct chan_timer *timer;	/* timer channels only */
	wait_queue_head_t pollq;
};

#define OWNER_WAITING	(-1)
#define OWNER_CANCELLED	(-2)

struct chan_owner {
	/*
	 * Protects @state, @result and @done: every decision about the
	 * owner is taken under it (see the protocol at the head). Nests
	 * inside a channel's lock; two owners' locks nest in address order.
	 */
	spinlock_t lock;
	/*
	 * OWNER_* or the index of the case done; read unlocked (READ_ONCE)
	 * only where a stale answer is harmless: counts and flags.
	 */
	int state;
	int result;		/* valid once @done */
	bool done;		/* set with release when @state is final */
	struct task_struct *task;
};

struct chan_entry {
	struct list_head node;	/* on a queue, or empty */
	struct chan_owner *owner;
	/* Sender: its value; receiver: room for one, or NULL to discard. */
	void *buf;
	u32 index;		/* the case's index in its select */
};

/* One case of a select (a plain send or receive is a select of one). */
struct chan_case {
	struct gosync_chan *ch;	/* NULL: a nil case, never ready */
	struct file *file;	/* reference held by a select, or NULL */
	bool send;
	bool queued;
	void *val;		/* the private value buffer, or NULL (none) */
	void __user *uval;
	struct chan_entry entry;
};

static const struct file_operations chan_fops;
static bool chan_timer_take(struct gosync_chan *ch, void *val);

/* ---- the ring (see the protocol above GOSYNC_CHAN_POS_MASK) ------- */

/* How many times a ring operation retries a swap it lost. */
#define RING_TRIES	16

#define RING_FLAGS	(~GOSYNC_CHAN_POS_MASK)

static u64 ring_pos(u64 word)
{
	return word & GOSYNC_CHAN_POS_MASK;
}

/*
 * Positions count modulo ch->pos_mod, the largest multiple capacity * 2^k
 * that fits in 48 bits, so that position % capacity, the slot, runs on
 * smoothly across the wrap whatever the capacity (see the uapi header).
 */
static u64 ring_next(struct gosync_chan *ch, u64 pos, u64 n)
{
	return (pos + n) % ch->pos_mod;
}

/* @a - @b modulo @mod, as a signed number in [-mod/2, mod/2). */
static s64 ring_mod_diff(u64 a, u64 b, u64 mod)
{
	u64 d = (a % mod + mod - b % mod) % mod;

	return d >= mod / 2 ? (s64)(d - mod) : (s64)d;
}

/*
 * The sequence number a slot holds when it is free for position @pos
 * (@full false) or holds the value of @pos (@full true): twice the
 * position, plus one when full, so that even a ring of one slot tells
 * "full" from "free for the next lap". Compared modulo 2 * pos_mod.
 */
static u64 ring_seqno(u64 pos, bool full)
{
	return (pos << 1) | full;
}

static s64 ring_seqdiff(struct gosync_chan *ch, u64 a, u64 b)
{
	return ring_mod_diff(a, b, 2 * ch->pos_mod);
}

/* The slot of position @pos: its sequence number, then its value. */
static u64 *ring_seq(struct gosync_chan *ch, u64 pos)
{
	return ch->ring + PAGE_SIZE +
	       (size_t)(pos % ch->capacity) * ch->slot_size;
}

static void *ring_value(struct gosync_chan *ch, u64 pos)
{
	return ring_seq(ch, pos) + 1;
}

#define SEQ_PUSHING	GOSYNC_CHAN_SEQ_PUSHING
#define SEQ_POPPING	GOSYNC_CHAN_SEQ_POPPING
#define SEQ_HOLE	GOSYNC_CHAN_SEQ_HOLE
#define SEQ_STATES	GOSYNC_CHAN_SEQ_STATES

static atomic64_t *ring_seq_atomic(struct gosync_chan *ch, u64 pos)
{
	return (atomic64_t *)ring_seq(ch, pos);
}

/* Swap the sequence of @pos's slot from @old to @new; false if it was not @old. */
static bool ring_seq_swap(struct gosync_chan *ch, u64 pos, u64 old, u64 new)
{
	return atomic64_try_cmpxchg(ring_seq_atomic(ch, pos), &old, new);
}

/*
 * Pass the holes at the head (positions whose pusher died: see the
 * uapi header), as a pop does, but without a value. Stops at the first
 * slot that is not a hole, or that someone else is popping.
 */
static void ring_skip_holes(struct gosync_chan *ch)
{
	u64 head, hole;
	u32 n;

	lockdep_assert_held(&ch->lock);
	if (!ch->ring || !ch->holes)
		return;
	for (n = 0; n < ch->capacity; n++) {
		head = ring_pos(atomic64_read(ch->head)) % ch->pos_mod;
		hole = SEQ_HOLE | ring_seqno(head, true);
		if (!ring_seq_swap(ch, head, hole, SEQ_POPPING | SEQ_HOLE))
			return;
		/* As in ring_pop(): @head moves before the slot is freed. */
		atomic64_set_release(ch->head, ring_next(ch, head, 1));
		/* Free the slot: pairs with a pusher's acquire of it. */
		smp_store_release(ring_seq(ch, head),
				  ring_seqno(ring_next(ch, head, ch->capacity),
					     false));
	}
}

/*
 * Push @val (a kernel buffer) at the tail, keeping the flags, with the
 * kernel's id 0 in the reservation. False if the ring is full, or a push
 * is in progress in its slot, or a swap was lost RING_TRIES times (only a
 * misbehaving user keeps winning it).
 */
static bool ring_push(struct gosync_chan *ch, const void *val)
{
	u64 tail, pos, seq, want;
	int tries;

	lockdep_assert_held(&ch->lock);
	if (!ch->ring)
		return false;
	ring_skip_holes(ch);
	tail = atomic64_read(ch->tail);
	for (tries = 0; tries < RING_TRIES; tries++) {
		pos = ring_pos(tail) % ch->pos_mod;
		want = ring_seqno(pos, false);
		/* Pairs with the popper's release: its read of the slot is done. */
		seq = smp_load_acquire(ring_seq(ch, pos));
		if (seq != want) {
			/* Full: a pop or a hole of the last lap, or behind. */
			if ((seq & (SEQ_POPPING | SEQ_HOLE)) ||
			    (!(seq & SEQ_STATES) &&
			     ring_seqdiff(ch, seq, want) < 0))
				return false;
			tail = atomic64_read(ch->tail);
			continue;
		}
		if (!ring_seq_swap(ch, pos, want, SEQ_PUSHING)) {
			tail = atomic64_read(ch->tail);
			continue;
		}
		/* Reserved: claim the position, whatever flags came meanwhile. */
		for (; tries < RING_TRIES; tries++) {
			if (atomic64_try_cmpxchg(ch->tail, &tail,
						 (tail & RING_FLAGS) |
						 ring_next(ch, pos, 1)))
				break;
			if (ring_pos(tail) != pos)
				break;	/* scribbled: give the slot back */
		}
		if (tries == RING_TRIES || ring_pos(tail) != pos) {
			ring_seq_swap(ch, pos, SEQ_PUSHING, want);
			return false;
		}
		if (ch->elem_size)
			memcpy(ring_value(ch, pos), val, ch->elem_size);
		/* Publish: the value is written before the slot says so. */
		smp_store_release(ring_seq(ch, pos), ring_seqno(pos, true));
		return true;
	}
	return false;
}

/* Pop the oldest value into @val (may be NULL); false if none is ready. */
static bool ring_pop(struct gosync_chan *ch, void *val)
{
	u64 head, seq, want;
	int tries;

	lockdep_assert_held(&ch->lock);
	if (!ch->ring)
		return false;
	ring_skip_holes(ch);
	head = atomic64_read(ch->head);
	for (tries = 0; tries < RING_TRIES; tries++) {
		head = ring_pos(head) % ch->pos_mod;
		want = ring_seqno(head, true);
		/* Pairs with the pusher's release: its value is visible. */
		seq = smp_load_acquire(ring_seq(ch, head));
		if (seq != want) {
			if (seq == (SEQ_HOLE | want)) {
				ring_skip_holes(ch);
			} else if ((seq & SEQ_STATES) ||
				   ring_seqdiff(ch, seq, want) < 0) {
				/* Empty, or a push or pop in progress. */
				if (ring_pos(atomic64_read(ch->head)) == head)
					return false;
			}
			head = atomic64_read(ch->head);
			continue;
		}
		if (!ring_seq_swap(ch, head, want, SEQ_POPPING)) {
			head = atomic64_read(ch->head);
			continue;
		}
		/* Ours to move; seen before the slot is freed (release). */
		atomic64_set_release(ch->head, ring_next(ch, head, 1));
		if (ch->elem_size && val)
			memcpy(val, ring_value(ch, head), ch->elem_size);
		/* Free the slot only after the value was read out. */
		smp_store_release(ring_seq(ch, head),
				  ring_seqno(ring_next(ch, head, ch->capacity),
					     false));
		return true;
	}
	return false;
}

/*
 * Is a value ready at the head / a slot free at the tail? A slot whose
 * sequence is ahead of the position read means that a pop (push) went by
 * in between: read the position again, as ring_pop() does, rather than
 * answer "no" to a ring that has one. Holes at the head are passed first.
 */
static bool ring_readable(struct gosync_chan *ch)
{
	int tries;
	u64 head, seq, want;

	lockdep_assert_held(&ch->lock);
	for (tries = 0; ch->ring && tries < RING_TRIES; tries++) {
		ring_skip_holes(ch);
		head = ring_pos(atomic64_read(ch->head)) % ch->pos_mod;
		want = ring_seqno(head, true);
		/* As in ring_pop(): a published value. */
		seq = smp_load_acquire(ring_seq(ch, head));
		if (seq == want)
			return true;
		if (((seq & SEQ_STATES) && seq != (SEQ_HOLE | want)) ||
		    (!(seq & SEQ_STATES) && ring_seqdiff(ch, seq, want) < 0)) {
			if (ring_pos(atomic64_read(ch->head)) == head)
				return false;
		}
	}
	return false;
}

static bool ring_writable(struct gosync_chan *ch)
{
	int tries;
	u64 tail, seq, want;

	lockdep_assert_held(&ch->lock);
	for (tries = 0; ch->ring && tries < RING_TRIES; tries++) {
		ring_skip_holes(ch);
		tail = ring_pos(atomic64_read(ch->tail)) % ch->pos_mod;
		want = ring_seqno(tail, false);
		/* As in ring_push(): a freed slot. */
		seq = smp_load_acquire(ring_seq(ch, tail));
		if (seq == want)
			return true;
		if ((seq & SEQ_STATES) || ring_seqdiff(ch, seq, want) < 0) {
			if (ring_pos(atomic64_read(ch->tail)) == tail)
				return false;
		}
	}
	return false;
}

/* Positions claimed and not yet freed: values, in the ring or on the way. */
static u32 ring_claimed(struct gosync_chan *ch)
{
	s64 len;

	lockdep_assert_held(&ch->lock);
	if (!ch->ring)
		return 0;
	len = ring_mod_diff(ring_pos(atomic64_read(ch->tail)),
			    ring_pos(atomic64_read(ch->head)), ch->pos_mod);
	return clamp_t(s64, len, 0, ch->capacity);
}

/* Holes among the claimed positions (a scan, only once a repair made any). */
static u32 ring_holes(struct gosync_chan *ch)
{
	u32 i, n = 0, len = ring_claimed(ch);
	u64 head;

	if (!ch->holes)
		return 0;
	head = ring_pos(atomic64_read(ch->head)) % ch->pos_mod;
	for (i = 0; i < len; i++)
		if (READ_ONCE(*ring_seq(ch, head + i)) & SEQ_HOLE)
			n++;
	return n;
}

/* Values in the ring or on the way: claimed positions that are not holes. */
static u32 ring_len(struct gosync_chan *ch)
{
	return ring_claimed(ch) - ring_holes(ch);
}

/*
 * Undo what the ring reservations of process @id left (it exited or
 * exec'ed: none of its pushes or pops can go on), as the uapi header
 * says. Returns whether anything changed. Nothing read from the page is
 * trusted beyond the slot it names: every position is reduced modulo
 * the capacity, every change is a swap from the value just read.
 */
static bool ring_repair(struct gosync_chan *ch, u32 id)
{
	u64 head, tail, p, seq, to;
	bool changed = false;
	u32 i, len, off;

	lockdep_assert_held(&ch->lock);
	head = ring_pos(atomic64_read(ch->head)) % ch->pos_mod;
	tail = ring_pos(atomic64_read(ch->tail)) % ch->pos_mod;
	len = ring_claimed(ch);
	for (i = 0; i < ch->capacity; i++) {
		u64 *sp = ch->ring + PAGE_SIZE + (size_t)i * ch->slot_size;

		seq = READ_ONCE(*sp);
		if (!(seq & (SEQ_PUSHING | SEQ_POPPING)) ||
		    (seq & GOSYNC_CHAN_SEQ_ID_MASK) != id)
			continue;
		/* The position of slot i in [head, head + capacity). */
		off = (i + ch->capacity - (u32)(head % ch->capacity)) %
		      ch->capacity;
		p = ring_next(ch, head, off);
		if (seq & SEQ_PUSHING) {
			if (p == tail && len < ch->capacity) {
				to = ring_seqno(p, false);	/* unclaimed */
			} else if (off < len) {
				to = SEQ_HOLE | ring_seqno(p, true);
				ch->holes++;
			} else {
				continue;	/* not a state a push leaves */
			}
		} else if (off == 0 && len) {
			/* Reserved, @head not moved yet: put it back. */
			to = (seq & SEQ_HOLE) | ring_seqno(p, true);
		} else {
			/* Position p - capacity was taken: free the slot for p. */
			to = ring_seqno(p, false);
		}
		if (atomic64_try_cmpxchg((atomic64_t *)sp, &seq, to))
			changed = true;
	}
	return changed;
}

/*
 * Set flags in @tail before a last look at the ring: the barrier orders
 * the flag before the slot reads that follow, as userspace orders its
 * slot write before its flag read (see the uapi header).
 */
static void ring_set_flags(struct gosync_chan *ch, u64 flags)
{
	lockdep_assert_held(&ch->lock);
	if (!ch->ring)
		return;
	atomic64_or(flags, ch->tail);
	/* Flag before slots: pairs with userspace's fence after a push/pop. */
	smp_mb__after_atomic();
}

static void ring_clear_flags(struct gosync_chan *ch, u64 flags)
{
	lockdep_assert_held(&ch->lock);
	if (ch->ring)
		atomic64_andnot(flags, ch->tail);
}

/*
 * Copy one element, or zero it when @src is NULL; nothing for size 0 or
 * for a receiver that discards (@dst NULL).
 */
static void chan_copy(struct gosync_chan *ch, void *dst, const void *src)
{
	lockdep_assert_held(&ch->lock);
	if (!ch->elem_size || !dst)
		return;
	if (src)
		memcpy(dst, src, ch->elem_size);
	else
		memset(dst, 0, ch->elem_size);
}

/*
 * Grab @o: take its lock (lockdep subclass @subclass) and keep it if the
 * owner is still WAITING; then the caller commits or releases it. False,
 * with the lock dropped, if the owner is final.
 */
static bool owner_grab(struct chan_owner *o, unsigned int subclass)
{
	spin_lock_nested(&o->lock, subclass);
	if (o->state == OWNER_WAITING)
		return true;
	spin_unlock(&o->lock);
	return false;
}

/* Undo a grab: the owner stays WAITING; blocked grabbers then decide. */
static void owner_release(struct chan_owner *o)
{
	lockdep_assert_held(&o->lock);
	spin_unlock(&o->lock);
}

/*
 * Grabbed -> @index, with @result: the owner's operation is complete. Its
 * task is queued on @wk to be woken, unless @wk is NULL (the caller's own
 * owner). After the unlock the owner may return: @o is not touched.
 */
static void owner_commit(struct chan_owner *o, u32 index, int result,
			 struct gosync_wakeups *wk)
{
	lockdep_assert_held(&o->lock);
	o->result = result;
	WRITE_ONCE(o->state, index);
	/*
	 * Pairs with the smp_load_acquire() of @done in gosync_wait_until():
	 * the value moved into the owner's buffer is visible once it sees
	 * @done (the owner then takes @lock for the state and result).
	 */
	smp_store_release(&o->done, true);
	if (wk)
		gosync_wake_add(wk, o->task);
	spin_unlock(&o->lock);
}

/*
 * The owner's own last word, with no other lock held: cancel it if it is
 * still WAITING (*@index and *@result unchanged), else report how it was
 * completed in *@index and *@result. Taking @lock waits out a commit in
 * progress, so that nobody else touches @o once this returns, except
 * through entries still queued (which chan_unqueue() unlinks under their
 * channels' locks, after which nobody can reach @o).
 */
static void owner_finish(struct chan_owner *o, u32 *index, int *result)
{
	spin_lock(&o->lock);
	if (o->state == OWNER_WAITING) {
		WRITE_ONCE(o->state, OWNER_CANCELLED);
	} else {
		*index = o->state;
		*result = o->result;
	}
	spin_unlock(&o->lock);
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
		return owner_grab(peer, 0) ? CLAIM_OK : CLAIM_PEER_GONE;
	if (peer < self)
		swap(first, second);
	if (!owner_grab(first, 0))
		return first == self ? CLAIM_SELF_GONE : CLAIM_PEER_GONE;
	if (!owner_grab(second, SINGLE_DEPTH_NESTING)) {
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
	if (!owner_grab(self, 0))
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
static struct chan_entry *chan_claim_partner(struct gosync_chan *ch,
					     struct list_head *queue,
					     struct chan_owner *self)
{
	struct chan_entry *e, *tmp;

	lockdep_assert_held(&ch->lock);
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

/* True if @queue holds an entry whose owner may still be completed. */
static bool chan_queue_live(struct gosync_chan *ch, struct list_head *queue)
{
	struct chan_entry *e;

	lockdep_assert_held(&ch->lock);
	list_for_each_entry(e, queue, node) {
		/* A grabbed owner is WAITING too: live until committed. */
		if (READ_ONCE(e->owner->state) == OWNER_WAITING)
			return true;
	}
	return false;
}

static u32 chan_queue_count(struct gosync_chan *ch, struct list_head *queue)
{
	struct chan_entry *e;
	u32 n = 0;

	lockdep_assert_held(&ch->lock);
	list_for_each_entry(e, queue, node) {
		n += READ_ONCE(e->owner->state) == OWNER_WAITING;
	}
	return n;
}

/*
 * Make the WAITERS flags say which queues hold live entries, once the
 * queues are final for this locked section (a sleeper sets its flag
 * itself before its last look at the ring: see chan_select()).
 */
static void chan_sync_flags(struct gosync_chan *ch)
{
	u64 clear = 0;

	lockdep_assert_held(&ch->lock);
	if (!chan_queue_live(ch, &ch->recvq))
		clear |= GOSYNC_CHAN_RECV_WAITERS;
	if (!chan_queue_live(ch, &ch->sendq))
		clear |= GOSYNC_CHAN_SEND_WAITERS;
	ring_clear_flags(ch, clear);
}

/*
 * Values in the ring go to queued receivers, oldest first; once the
 * channel is closed and drained (no push in progress either), the
 * remaining receivers get "closed".
 */
static bool chan_serve_receivers(struct gosync_chan *ch,
				 struct gosync_wakeups *wk)
{
	struct chan_entry *e;
	u32 served = 0, closed = 0;

	lockdep_assert_held(&ch->lock);
	while (ring_readable(ch) &&
	       (e = chan_claim_partner(ch, &ch->recvq, NULL))) {
		if (!ring_pop(ch, e->buf)) {
			owner_release(e->owner);
			list_add(&e->node, &ch->recvq);
			break;
		}
		owner_commit(e->owner, e->index, 1, wk);
		served++;
	}
	while (ch->closed && !ring_len(ch) &&
	       (e = chan_claim_partner(ch, &ch->recvq, NULL))) {
		chan_copy(ch, e->buf, NULL);
		owner_commit(e->owner, e->index, 0, wk);
		closed++;
	}
	if (served + closed)
		trace_gosync_wake(ch->id, GOSYNC_TRACE_RECV, served + closed,
				  false);
	return served;
}

/*
 * Serve the queues from the ring, with ch->lock held: values in the ring
 * go to queued receivers, queued senders' values go to free slots, in
 * order. Userspace pushes and pops serve nobody; they leave that to the
 * next kernel operation, or kick.
 */
static void chan_serve(struct gosync_chan *ch, struct gosync_wakeups *wk)
{
	struct chan_entry *e;
	bool moved;
	u32 senders;

	lockdep_assert_held(&ch->lock);
	if (!ch->ring)
		return;
	/*
	 * Until nothing moves: a value given to a receiver frees a slot for
	 * a queued sender, whose value may be for the next receiver.
	 */
	do {
		moved = chan_serve_receivers(ch, wk);
		senders = 0;
		while (ring_writable(ch) &&
		       (e = chan_claim_partner(ch, &ch->sendq, NULL))) {
			if (!ring_push(ch, e->buf)) {
				owner_release(e->owner);
				list_add(&e->node, &ch->sendq);
				break;
			}
			owner_commit(e->owner, e->index, 0, wk);
			senders++;
			moved = true;
		}
		if (senders)
			trace_gosync_wake(ch->id, GOSYNC_TRACE_SEND, senders,
					  false);
	} while (moved);
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
	/* Values pushed in userspace go to queued receivers first. */
	chan_serve(ch, wk);
	/*
	 * Hand over directly only if no position of the ring is claimed: a
	 * value behind a push still in progress must not be overtaken (its
	 * pusher kicks once it is published, and we queue behind it).
	 */
	r = ring_len(ch) ? NULL : chan_claim_partner(ch, &ch->recvq, self);
	if (IS_ERR(r))
		return PTR_ERR(r);
	if (r) {
		/* A live receiver waits and the ring is empty: hand over. */
		chan_copy(ch, r->buf, val);
		ch->handoffs++;
		owner_commit(r->owner, r->index, 1, wk);
		trace_gosync_wake(ch->id, GOSYNC_TRACE_RECV, 1, true);
		if (self)
			owner_commit(self, index, 0, NULL);
		return 0;
	}
	if (self && !owner_grab(self, 0))
		return -ECANCELED;
	if (ring_push(ch, val)) {
		if (self)
			owner_commit(self, index, 0, NULL);
		return 0;
	}
	if (self)
		owner_release(self);
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
	/* Queued senders' values move into slots freed in userspace. */
	chan_serve(ch, wk);
	if (self && !owner_grab(self, 0))
		return -ECANCELED;
	if (ring_pop(ch, val) || chan_timer_take(ch, val)) {
		if (self)
			owner_commit(self, index, 1, NULL);
		/* A queued sender's value takes the freed slot, in order. */
		chan_serve(ch, wk);
		return 1;
	}
	if (self)
		owner_release(self);
	if (!ring_len(ch)) {
		/* The ring is empty: a queued sender hands over directly. */
		s = chan_claim_partner(ch, &ch->sendq, self);
		if (IS_ERR(s))
			return PTR_ERR(s);
		if (s) {
			chan_copy(ch, val, s->buf);
			ch->handoffs++;
			owner_commit(s->owner, s->index, 0, wk);
			trace_gosync_wake(ch->id, GOSYNC_TRACE_SEND, 1, true);
			if (self)
				owner_commit(self, index, 1, NULL);
			return 1;
		}
		if (ch->closed) {
			chan_copy(ch, val, NULL);
			return commit_self(self, index, 0);
		}
	}
	return -EAGAIN;
}

static void chan_wake_pollers(struct gosync_chan *ch)
{
	gosync_wake_pollers(&ch->pollq, EPOLLIN | EPOLLOUT);
}

/* Try case @c (index @i) of @self on its channel, with its lock held. */
static int chan_try(struct gosync_chan *ch, struct chan_case *c,
		    struct chan_owner *self, u32 i, struct gosync_wakeups *wk)
{
	lockdep_assert_held(&ch->lock);
	if (c->send)
		return chan_try_send(ch, self, i, c->val, wk);
	return chan_try_recv(ch, self, i, c->val, wk);
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
		chan_sync_flags(c->ch);
		spin_unlock(&c->ch->lock);
	}
}

/* The queued cases are about to sleep (gosync_block, one per channel). */
static void chan_trace_block(struct chan_case *cases, u32 n, bool select)
{
	u32 i;

	for (i = 0; i < n; i++) {
		struct chan_case *c = &cases[i];

		if (!c->queued)
			continue;
		trace_gosync_block(c->ch->id,
				   select ? GOSYNC_TRACE_SELECT :
				   c->send ? GOSYNC_TRACE_SEND :
				   GOSYNC_TRACE_RECV, i, select ? n : 1);
	}
}

/*
 * What the wait-for view shows of the queued cases: the first one's
 * channel (none for a select over nil channels only), and for a select
 * the number of cases.
 */
static void chan_blocked_init(struct gosync_blocked *b,
			      const struct chan_case *cases, u32 n,
			      bool select, const struct gosync_deadline *dl)
{
	const struct chan_case *first = NULL;
	u32 i;

	for (i = 0; i < n && !first; i++)
		if (cases[i].queued)
			first = &cases[i];
	gosync_blocked_init(b, first ? first->ch->id : 0,
			    first && first->ch->timer ? GOSYNC_TRACE_TIMER :
			    GOSYNC_TRACE_CHAN,
			    GOSYNC_TRACE_NO_KIND,
			    select ? GOSYNC_TRACE_SELECT :
			    first && first->send ? GOSYNC_TRACE_SEND :
			    GOSYNC_TRACE_RECV, n, dl, NULL);
}

/*
 * The select engine: complete exactly one of @cases, visited in @order.
 * With @try_only nothing is queued (Go's default case); @select: for
 * GOSYNC_IOC_SELECT (the trace says so), not a plain send or receive.
 * Returns the
 * case's result (send: 0 or -EPIPE; receive: 1 or 0) with *@index set,
 * or -EAGAIN (try_only, nothing ready), -ETIMEDOUT or -ERESTARTSYS.
 */
static int chan_select(struct chan_case *cases, u32 n, const u32 *order,
		       bool try_only, bool select,
		       const struct gosync_deadline *dl, u32 *index)
{
	struct chan_owner o = { .state = OWNER_WAITING, .task = current };
	struct chan_owner *self = NULL;
	struct gosync_wakeups wk = { 0 };
	struct gosync_blocked blk;
	bool expired = false, blocked = false;
	int ret = -EAGAIN;
	u32 k;

	if (!try_only && gosync_deadline_passed(dl)) {
		try_only = true;
		expired = true;
	}
	if (!try_only) {
		spin_lock_init(&o.lock);
		self = &o;
	}

	for (k = 0; k < n && ret == -EAGAIN; k++) {
		u32 i = order[k];
		struct chan_case *c = &cases[i];
		struct gosync_chan *ch = c->ch;

		if (!ch)
			continue;
		spin_lock(&ch->lock);
		atomic64_inc(&ch->slow_ops);
		ret = chan_try(ch, c, self, i, &wk);
		if (ret == -EAGAIN && self && ch->ring) {
			/*
			 * About to sleep: say so in the ring's word, then look
			 * again. A userspace push or pop that this second look
			 * misses reads the flag afterwards and kicks.
			 */
			ring_set_flags(ch, c->send ? GOSYNC_CHAN_SEND_WAITERS :
						     GOSYNC_CHAN_RECV_WAITERS);
			ret = chan_try(ch, c, self, i, &wk);
		}
		if (ret == -EAGAIN && self) {
			c->entry.owner = self;
			c->entry.buf = c->val;
			c->entry.index = i;
			list_add_tail(&c->entry.node,
				      c->send ? &ch->sendq : &ch->recvq);
			c->queued = true;
		}
		chan_sync_flags(ch);
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
		if (trace_gosync_block_enabled())
			chan_trace_block(cases, n, select);
		chan_blocked_init(&blk, cases, n, select, dl);
		blocked = true;
		ret = gosync_wait_until(&o.done, dl, NULL, &blk);
		/*
		 * Cancelled: the wait's error stands. Or completed by a
		 * partner, even if the deadline or a signal came as well.
		 */
		owner_finish(&o, index, &ret);
	} else if (ret == -ECANCELED) {
		/* A partner completed us meanwhile, through another case. */
		owner_finish(&o, index, &ret);
	}
	chan_unqueue(cases, n);
	/* Committed: a case's result (a wait's error is none of these). */
	if (select && (ret >= 0 || ret == -EPIPE))
		trace_gosync_select_commit(cases[*index].ch->id, *index, n, k,
					   blocked, ret);
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
 * fits), copy in the value to send or check the destination. A receive
 * into user address 0 discards its value and needs no buffer. The others
 * take their buffer's size from *@budget (when not NULL): -E2BIG, before
 * anything is allocated, if it is not left.
 */
static int chan_case_init(struct chan_case *c, struct gosync_chan *ch,
			  bool send, u64 uval, void *small, size_t small_size,
			  size_t *budget)
{
	c->ch = ch;
	c->send = send;
	c->uval = u64_to_user_ptr(uval);
	c->val = NULL;
	INIT_LIST_HEAD(&c->entry.node);
	if (send && ch->timer)
		return -EPERM;	/* timer channels are receive-only */
	if (!send && !c->uval)
		return 0;
	if (budget) {
		if (ch->elem_size > *budget)
			return -E2BIG;
		*budget -= ch->elem_size;
	}
	if (ch->elem_size <= small_size) {
		c->val = small;
	} else {
		/* Up to 64 KiB, held while the caller sleeps: no high order. */
		c->val = kvmalloc(ch->elem_size, GOSYNC_GFP);
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
		kvfree(c->val);
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
	gosync_deadline_init(&dl, arg.deadline,
			     arg.flags & GOSYNC_CLOCK_REALTIME);
	/* A buffered channel has a fast path: this is its slow one. */
	if (ch->ring && trace_gosync_kick_enabled())
		trace_gosync_kick(ch->id, send ? GOSYNC_TRACE_SEND :
				  GOSYNC_TRACE_RECV, atomic64_read(ch->tail));
	ret = chan_case_init(&c, ch, send, arg.value, small, sizeof(small),
			     NULL);
	if (!ret)
		ret = chan_select(&c, 1, &order, arg.flags & GOSYNC_CHAN_TRY,
				  false, &dl, &index);
	/*
	 * copy_to_user() fails only if another thread unmapped the checked
	 * destination meanwhile; the value is then lost with the mapping.
	 */
	if (!send && ret >= 0 && c.uval &&
	    copy_to_user(c.uval, c.val, ch->elem_size))
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
	size_t budget = max_t(unsigned long, READ_ONCE(max_select_bytes),
			      GOSYNC_CHAN_ELEM_MAX);
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.ncases > GOSYNC_SELECT_MAX_CASES ||
	    (arg.flags & ~(GOSYNC_CLOCK_REALTIME | GOSYNC_SELECT_DEFAULT)))
		return -EINVAL;
	/*
	 * The result is written back after a case is done: a result that
	 * cannot be written (a read-only page) fails now, before a value is
	 * sent or taken, not after.
	 */
	ret = chan_check_dest(uarg, sizeof(*uarg));
	if (ret)
		return ret;
	gosync_deadline_init(&dl, arg.deadline,
			     arg.flags & GOSYNC_CLOCK_REALTIME);
	if (arg.ncases) {
		/*
		 * Not memdup_user(): its GFP_USER is not charged to the
		 * caller's memory cgroup, and the copy is held while the
		 * select waits (at most 2 KiB per parked thread).
		 */
		ucases = kmalloc_array(arg.ncases, sizeof(*ucases), GOSYNC_GFP);
		if (!ucases)
			return -ENOMEM;
		/* At most 128 * 16 bytes (bounded above). */
		if (copy_from_user(ucases, u64_to_user_ptr(arg.cases),
				   array_size(arg.ncases, sizeof(*ucases)))) {
			kfree(ucases);
			return -EFAULT;
		}
		cases = kvcalloc(arg.ncases, sizeof(*cases),
				 GOSYNC_GFP);
		order = kcalloc(arg.ncases, sizeof(*order), GOSYNC_GFP);
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
		/* An fd opened by name: its channel, if the access allows. */
		file = gosync_name_target(file, u->op == GOSYNC_SELECT_SEND ?
					  FMODE_WRITE : FMODE_READ);
		if (IS_ERR(file)) {
			ret = PTR_ERR(file);
			goto out;
		}
		if (file->f_op != &chan_fops) {
			ret = -EINVAL;
			goto out;
		}
		ret = chan_case_init(c, file->private_data,
				     u->op == GOSYNC_SELECT_SEND, u->value,
				     NULL, 0, &budget);
		if (ret)
			goto out;
	}

	ret = chan_select(cases, arg.ncases, order,
			  arg.flags & GOSYNC_SELECT_DEFAULT, true, &dl, &index);
	if (ret >= 0 || ret == -EPIPE) {
		struct chan_case *c = &cases[index];

		arg.index = index;
		arg.ok = !c->send && ret == 1;
		if (!c->send && c->uval &&
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
	kvfree(cases);
	kfree(ucases);
	return ret;
}

/* ---- timer channels ---------------------------------------------- */

/*
 * A timer channel has no ring: its one slot is @value, held while @full.
 * The hrtimer runs only while a tick can be delivered, that is while the
 * timer is @running (a one-shot that has not fired, a ticker not stopped)
 * and holds no tick: a ticker whose tick nobody receives would only drop
 * every later tick, so it is not re-armed until that tick is received
 * (as timerfd re-arms on read). The receive re-arms it for the first tick
 * of the ticker's grid (@next plus whole periods) after the receive, so
 * that ticks come exactly when Go's ticker would send them: at the
 * period's multiples from the first tick, those that found the channel
 * full dropped. So an idle ticker costs one expiry in all, and a
 * receiving one an expiry and a work item per tick received.
 *
 * Periods below GOSYNC_TIMER_MIN_PERIOD (10 us) stay refused. They no
 * longer cost anything while idle, but each received tick still costs an
 * hrtimer interrupt and a work item on system_highpri_wq that nobody is
 * charged for; 10 us is about the latency of that delivery on hardware
 * (interrupt, kworker wake-up, hand-off, receiver wake-up), so a shorter
 * period would not deliver ticks any faster, only ask for ticks that are
 * due before the last one is out, and the floor bounds the uncharged work
 * of one receiving ticker to 100000 items a second.
 */
struct chan_timer {
	struct mutex lock;	/* serialises stop and reset (they sleep) */
	struct hrtimer hrt;
	struct work_struct fire;
	struct gosync_chan *ch;
	/*
	 * Under ch->lock. The hrtimer is started only under it, with
	 * @running set; stop clears @running under it before it cancels the
	 * hrtimer and the work, so nothing re-arms a stopped timer.
	 */
	bool running;		/* a tick is still to come */
	bool full;		/* @value waits to be received */
	u64 value;		/* the held tick: its firing time */
	ktime_t next;		/* when the next tick is due, >= 0 (host clock) */
	ktime_t period;		/* 0: fires once */
	clockid_t clock;
	ktime_t timens_offset;	/* of the arming task */
	u64 sends;		/* ticks held, and held ticks received (hand- */
	u64 recvs;		/* offs are counted as the channel's) */
	atomic64_t fires;	/* hrtimer expiries: fdinfo's timer-fires */
};

/*
 * Hard-irq context: hand the send to process context, where the channel's
 * lock is taken as everywhere else (never from interrupts). Never restarts
 * itself: the next tick is armed once this one is received.
 */
static enum hrtimer_restart chan_timer_expired(struct hrtimer *hrt)
{
	struct chan_timer *t = container_of(hrt, struct chan_timer, hrt);

	atomic64_inc(&t->fires);
	queue_work(system_highpri_wq, &t->fire);
	return HRTIMER_NORESTART;
}

static ktime_t chan_timer_now(struct chan_timer *t)
{
	return t->clock == CLOCK_REALTIME ? ktime_get_real() : ktime_get();
}

/*
 * The last tick was received (or handed over): start the hrtimer for the
 * first tick of the grid after now. Nothing for a one-shot or a stopped
 * timer.
 */
static void chan_timer_rearm(struct chan_timer *t)
{
	ktime_t now;
	u64 adv;

	lockdep_assert_held(&t->ch->lock);
	if (!t->running || !t->period)
		return;
	now = chan_timer_now(t);
	if (t->next <= now) {
		/* 0 <= next <= now and 0 < period: at most 2 * KTIME_MAX. */
		adv = (div64_u64(now - t->next, t->period) + 1) * t->period;
		if (adv > (u64)(KTIME_MAX - t->next)) {
			t->next = KTIME_MAX;	/* past the end of time */
			return;
		}
		t->next += adv;
	}
	hrtimer_start(&t->hrt, t->next, HRTIMER_MODE_ABS);
}

/*
 * Deliver a tick: its firing time, to a waiting receiver or held in the
 * channel. A timer stopped meanwhile delivers nothing.
 */
static void chan_timer_fire(struct work_struct *work)
{
	struct chan_timer *t = container_of(work, struct chan_timer, fire);
	struct gosync_chan *ch = t->ch;
	struct gosync_wakeups wk = { 0 };
	bool delivered;
	u64 now;

	spin_lock(&ch->lock);
	/* Never armed while full; if it were, the tick would be dropped. */
	if (t->running && !t->full) {
		/* As seen in the time namespace of whoever armed it. */
		now = ktime_to_ns(chan_timer_now(t)) + t->timens_offset;
		if (!t->period)
			t->running = false;
		delivered = !chan_try_send(ch, NULL, 0, &now, &wk);
		trace_gosync_timer_fire(ch->id, now, ktime_to_ns(t->period),
					delivered);
		if (delivered) {
			chan_timer_rearm(t);	/* received at once */
		} else {
			t->value = now;
			t->full = true;
			t->sends++;
		}
	}
	spin_unlock(&ch->lock);
	gosync_wake_all(&wk);
	chan_wake_pollers(ch);
}

/*
 * A receive from @ch, with its lock held: take the held tick into @val
 * (NULL: discard it) and let the timer run on. False if @ch is not a
 * timer or holds no tick.
 */
static bool chan_timer_take(struct gosync_chan *ch, void *val)
{
	struct chan_timer *t = ch->timer;

	lockdep_assert_held(&ch->lock);
	if (!t || !t->full)
		return false;
	t->full = false;
	t->recvs++;
	chan_copy(ch, val, &t->value);
	chan_timer_rearm(t);
	return true;
}

static bool chan_timer_ready(struct gosync_chan *ch)
{
	lockdep_assert_held(&ch->lock);
	return ch->timer && ch->timer->full;
}

/* A timer's share of a status snapshot, with ch->lock held. */
static void chan_timer_snapshot(struct gosync_chan *ch,
				struct gosync_chan_status *st)
{
	lockdep_assert_held(&ch->lock);
	if (!ch->timer)
		return;
	st->len = ch->timer->full;
	st->sends += ch->timer->sends;
	st->recvs += ch->timer->recvs;
}

/*
 * Stop @t and drop an unreceived tick: no tick is delivered or received
 * after this returns. True if that stopped one (a tick still to come, or
 * one held: Go 1.23 counts discarding an unreceived value as stopping).
 */
static bool chan_timer_halt(struct chan_timer *t)
{
	struct gosync_chan *ch = t->ch;
	bool pending;

	spin_lock(&ch->lock);
	pending = t->running || t->full;
	t->running = false;
	t->full = false;
	spin_unlock(&ch->lock);
	/* An expiry or a delivery in flight finds the timer stopped. */
	hrtimer_cancel(&t->hrt);
	cancel_work_sync(&t->fire);
	return pending;
}

static bool chan_timer_stop(struct chan_timer *t)
{
	lockdep_assert_held(&t->lock);
	return chan_timer_halt(t);
}

/* The checks both create and reset make before touching anything. */
static bool chan_timer_set_valid(const struct gosync_timer_set *set)
{
	return !set->reserved && !(set->flags & ~GOSYNC_CLOCK_REALTIME) &&
	       (!set->period || set->period >= GOSYNC_TIMER_MIN_PERIOD);
}

/*
 * Arm the stopped (or new) timer @t with @set, which
 * chan_timer_set_valid() passed. Stopped, the hrtimer is neither queued
 * nor running, so it may be set up again, on the clock @set names.
 */
static void chan_timer_arm(struct chan_timer *t,
			   const struct gosync_timer_set *set)
{
	struct gosync_chan *ch = t->ch;
	struct gosync_deadline dl;

	lockdep_assert_held(&t->lock);
	gosync_deadline_init(&dl, set->when,
			     set->flags & GOSYNC_CLOCK_REALTIME);
	hrtimer_setup(&t->hrt, chan_timer_expired, dl.clock, HRTIMER_MODE_ABS);
	spin_lock(&ch->lock);
	t->clock = dl.clock;
	t->timens_offset = gosync_timens_offset(dl.clock);
	t->period = ns_to_ktime(min_t(u64, set->period, KTIME_MAX));
	t->next = max_t(ktime_t, dl.expires, 0);
	t->running = !dl.forever;
	if (t->running)
		hrtimer_start(&t->hrt, t->next, HRTIMER_MODE_ABS);
	spin_unlock(&ch->lock);
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
	u32 senders = 0;

	if (ch->timer)
		return -EPERM;
	spin_lock(&ch->lock);
	if (ch->closed) {
		spin_unlock(&ch->lock);
		return -EPIPE;
	}
	WRITE_ONCE(ch->closed, true);	/* also read unlocked: gosync_chan_closed() */
	/* From here on, userspace pushes fail their swap and come here. */
	ring_set_flags(ch, GOSYNC_CHAN_CLOSED);
	if (trace_gosync_chan_close_enabled())
		trace_gosync_chan_close(ch->id, ring_len(ch),
					chan_queue_count(ch, &ch->recvq),
					chan_queue_count(ch, &ch->sendq));
	/*
	 * Receivers first, as Go's closechan (a select queued both ways
	 * gets its receive): values still in the ring go to them, then, if
	 * no push is in progress (its pusher would kick), "closed".
	 */
	chan_serve_receivers(ch, &wk);
	while ((e = list_first_entry_or_null(&ch->sendq, struct chan_entry,
					     node))) {
		list_del_init(&e->node);
		if (owner_grab(e->owner, 0)) {
			owner_commit(e->owner, e->index, -EPIPE, &wk);
			senders++;
		}
	}
	if (senders)
		trace_gosync_wake(ch->id, GOSYNC_TRACE_SEND, senders, false);
	chan_sync_flags(ch);
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
	st->len = ring_len(ch);
	st->closed = ch->closed;
	st->send_waiters = chan_queue_count(ch, &ch->sendq);
	st->recv_waiters = chan_queue_count(ch, &ch->recvq);
	/*
	 * Every value passes through the ring's positions or a hand-off;
	 * holes are positions whose send never completed: they count in
	 * neither, once passed nor while still in the ring.
	 */
	st->sends = ch->handoffs;
	st->recvs = ch->handoffs;
	if (ch->ring) {
		st->sends += ring_pos(atomic64_read(ch->tail)) - ch->holes;
		st->recvs += ring_pos(atomic64_read(ch->head)) - ch->holes +
			     ring_holes(ch);
	}
	chan_timer_snapshot(ch, st);
	spin_unlock(&ch->lock);
	st->slow_ops = atomic64_read(&ch->slow_ops);
	st->kicks = atomic64_read(&ch->kicks);
}

static long chan_status(struct gosync_chan *ch,
			struct gosync_chan_status __user *uarg)
{
	struct gosync_chan_status st;

	chan_snapshot(ch, &st);
	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

/*
 * A userspace push or pop saw a WAITERS or POLLED flag after it was done:
 * serve the queues from the ring and wake pollers.
 */
static long chan_kick(struct gosync_chan *ch)
{
	struct gosync_wakeups wk = { 0 };

	atomic64_inc(&ch->kicks);
	if (trace_gosync_kick_enabled())
		trace_gosync_kick(ch->id, GOSYNC_TRACE_KICK,
				  ch->tail ? atomic64_read(ch->tail) : 0);
	spin_lock(&ch->lock);
	chan_serve(ch, &wk);
	chan_sync_flags(ch);
	ring_clear_flags(ch, GOSYNC_CHAN_POLLED_IN | GOSYNC_CHAN_POLLED_OUT);
	spin_unlock(&ch->lock);
	gosync_wake_all(&wk);
	chan_wake_pollers(ch);
	return 0;
}

/* The id a process's ring reservations carry: its thread group. */
static u32 chan_ring_id(void)
{
	return (u32)task_tgid_nr(current) & GOSYNC_CHAN_SEQ_ID_MASK;
}

static long chan_ring_id_ioctl(struct gosync_chan *ch)
{
	if (!ch->ring || ch->timer)
		return -ENODEV;
	return chan_ring_id();
}

/* Does the ring of @ch hold a reservation of @id? A lockless look. */
static bool chan_ring_has_id(struct gosync_chan *ch, u32 id)
{
	u32 i;

	for (i = 0; i < ch->capacity; i++) {
		u64 seq = READ_ONCE(*(u64 *)(ch->ring + PAGE_SIZE +
					      (size_t)i * ch->slot_size));

		if ((seq & (SEQ_PUSHING | SEQ_POPPING)) &&
		    (seq & GOSYNC_CHAN_SEQ_ID_MASK) == id)
			return true;
	}
	return false;
}

/* Is the ring of @ch mapped in the caller's memory? */
static bool chan_mapped_here(struct gosync_chan *ch)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	bool found = false;

	if (!mm)
		return false;	/* exiting: its memory is gone */
	mmap_read_lock(mm);
	{
		VMA_ITERATOR(vmi, mm, 0);

		for_each_vma(vmi, vma) {
			if (vma->vm_file && vma->vm_file->f_op == &chan_fops &&
			    vma->vm_file->private_data == ch) {
				found = true;
				break;
			}
		}
	}
	mmap_read_unlock(mm);
	return found;
}

/*
 * Every close of a channel fd, exits and execs included (O_CLOEXEC). A
 * process that no longer maps the ring cannot be inside a push or a pop
 * on it: what its reservations left is repaired (see the uapi header).
 * A process that still maps it may have other threads at work: nothing.
 */
static int chan_flush(struct file *file, fl_owner_t owner)
{
	struct gosync_chan *ch = file->private_data;
	struct gosync_wakeups wk = { 0 };
	u32 id = chan_ring_id();
	bool changed;

	if (!ch->ring || ch->timer || !chan_ring_has_id(ch, id) ||
	    chan_mapped_here(ch))
		return 0;
	spin_lock(&ch->lock);
	changed = ring_repair(ch, id);
	if (changed) {
		ring_skip_holes(ch);
		chan_serve(ch, &wk);
		chan_sync_flags(ch);
	}
	spin_unlock(&ch->lock);
	if (changed) {
		gosync_wake_all(&wk);
		chan_wake_pollers(ch);
	}
	return 0;
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
	case GOSYNC_IOC_CHAN_KICK:
		return chan_kick(ch);
	case GOSYNC_IOC_CHAN_RING_ID:
		return chan_ring_id_ioctl(ch);
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
	/*
	 * Ask userspace pushes and pops to kick us (flags first, then the
	 * look at the ring, as a sleeper does), and clear the flags when
	 * the direction is ready anyway.
	 */
	ring_set_flags(ch, GOSYNC_CHAN_POLLED_IN | GOSYNC_CHAN_POLLED_OUT);
	if (ring_readable(ch) || chan_timer_ready(ch) || ch->closed ||
	    chan_queue_live(ch, &ch->sendq))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (ch->closed)
		mask |= EPOLLHUP | EPOLLOUT | EPOLLERR;
	else if (!ch->timer && (ring_writable(ch) ||
				chan_queue_live(ch, &ch->recvq)))
		mask |= EPOLLOUT | EPOLLWRNORM;
	ring_clear_flags(ch, (mask & EPOLLIN ? GOSYNC_CHAN_POLLED_IN : 0) |
			     (mask & EPOLLOUT ? GOSYNC_CHAN_POLLED_OUT : 0));
	spin_unlock(&ch->lock);
	return mask;
}

static void chan_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gosync_chan *ch = file->private_data;
	struct gosync_chan_status st;

	chan_snapshot(ch, &st);
	seq_printf(m, "gosync-type:\t%s\n", ch->timer ? "timer" : "chan");
	seq_printf(m, "id:\t%llu\n", ch->id);
	seq_printf(m, "elem-size:\t%u\n", st.elem_size);
	seq_printf(m, "cap:\t%u\n", st.capacity);
	seq_printf(m, "len:\t%u\n", st.len);
	seq_printf(m, "closed:\t%u\n", st.closed);
	seq_printf(m, "send-waiters:\t%u\n", st.send_waiters);
	seq_printf(m, "recv-waiters:\t%u\n", st.recv_waiters);
	seq_printf(m, "sends:\t%llu\n", st.sends);
	seq_printf(m, "recvs:\t%llu\n", st.recvs);
	seq_printf(m, "slow-ops:\t%llu\n", st.slow_ops);
	seq_printf(m, "kicks:\t%llu\n", st.kicks);
	if (ch->timer)
		seq_printf(m, "timer-fires:\t%llu\n",
			   atomic64_read(&ch->timer->fires));
}

/* The ring of a buffered channel (not a timer's: it is receive-only). */
static int chan_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct gosync_chan *ch = file->private_data;

	if (!ch->ring || ch->timer)
		return -ENODEV;
	return gosync_mmap_pages(vma, ch->pages, ch->nr_pages);
}

/*
 * Charge @nr ring pages to the creating user's locked memory, as AF_XDP
 * and io_uring charge the pages they pin: the ring cannot be swapped out,
 * and it lives as long as any fd or mapping of the channel, so only
 * RLIMIT_MEMLOCK bounds what a user keeps (RLIMIT_NOFILE does not).
 * CAP_IPC_LOCK exempts the creator, and nothing is charged. -ENOMEM
 * beyond the limit, as for mlock(2) and io_uring's registered buffers.
 */
static int chan_ring_charge(struct gosync_chan *ch, unsigned long nr)
{
	unsigned long limit, cur;
	struct user_struct *user;

	if (capable(CAP_IPC_LOCK))
		return 0;
	limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	user = get_uid(current_user());
	/* A compare-and-swap: other rings of the user are charged at once. */
	cur = atomic_long_read(&user->locked_vm);
	do {
		if (nr > limit || cur > limit - nr) {
			free_uid(user);
			return -ENOMEM;
		}
	} while (!atomic_long_try_cmpxchg(&user->locked_vm, &cur, cur + nr));
	ch->user = user;
	ch->charged = nr;
	return 0;
}

/* Return the charge, when the last fd and the last mapping are gone. */
static void chan_ring_uncharge(struct gosync_chan *ch)
{
	if (!ch->user)
		return;
	atomic_long_sub(ch->charged, &ch->user->locked_vm);
	free_uid(ch->user);
	ch->user = NULL;
}

static void chan_free(struct gosync_chan *ch)
{
	if (ch->timer) {
		chan_timer_halt(ch->timer);
		mutex_destroy(&ch->timer->lock);
		kfree(ch->timer);
	}
	if (ch->ring)
		vunmap(ch->ring);
	while (ch->pages && ch->nr_pages)
		put_page(ch->pages[--ch->nr_pages]);
	kvfree(ch->pages);
	chan_ring_uncharge(ch);
	kfree(ch);
}

/* The last reference is gone: no waiter exists (each holds the file). */
static int chan_file_release(struct inode *inode, struct file *file)
{
	struct gosync_chan *ch = file->private_data;

	spin_lock(&ch->lock);	/* for the helper's sake: nobody else is here */
	WARN_ON_ONCE(chan_queue_live(ch, &ch->sendq) ||
		     chan_queue_live(ch, &ch->recvq));
	spin_unlock(&ch->lock);
	trace_gosync_obj_destroy(ch->id, ch->timer ? GOSYNC_TRACE_TIMER :
				 GOSYNC_TRACE_CHAN);
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
	file = gosync_name_target(file, FMODE_READ);	/* opened by name */
	if (IS_ERR(file))
		return NULL;
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
	.flush		= chan_flush,
	.unlocked_ioctl	= chan_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.poll		= chan_poll,
	.mmap		= chan_mmap,
	.show_fdinfo	= chan_show_fdinfo,
	.llseek		= noop_llseek,
};

/*
 * The ring of a buffered channel: a header page, then @bytes of slots, in
 * pages of their own (charged to the caller's memory cgroup and locked
 * memory) so that they can be mapped.
 */
static int chan_ring_alloc(struct gosync_chan *ch, size_t bytes)
{
	unsigned long nr = 1 + DIV_ROUND_UP(bytes, PAGE_SIZE);
	u64 i;
	int ret;

	ret = chan_ring_charge(ch, nr);
	if (ret)
		return ret;
	ch->nr_pages = 0;
	ch->pages = kvcalloc(nr, sizeof(*ch->pages), GOSYNC_GFP);
	if (!ch->pages)
		return -ENOMEM;
	while (ch->nr_pages < nr) {
		struct page *page = alloc_page(GOSYNC_GFP | __GFP_ZERO);

		if (!page)
			return -ENOMEM;
		ch->pages[ch->nr_pages++] = page;
	}
	ch->ring = vmap(ch->pages, ch->nr_pages, VM_MAP, PAGE_KERNEL);
	if (!ch->ring)
		return -ENOMEM;
	ch->tail = ch->ring + offsetof(struct gosync_chan_shared, tail);
	ch->head = ch->ring + offsetof(struct gosync_chan_shared, head);
	ch->pos_mod = gosync_chan_pos_modulus(ch->capacity);
	for (i = 0; i < ch->capacity; i++)
		*ring_seq(ch, i) = ring_seqno(i, false);
	return 0;
}

/*
 * A channel of @capacity slots of @elem_size bytes. The buffer bounded by
 * max_buffer_bytes is the ring's slots as they are mapped, sequence
 * numbers and padding included: a chan struct{} takes 8 bytes a slot.
 */
static struct gosync_chan *chan_alloc(u32 elem_size, u32 capacity)
{
	u32 slot_size = GOSYNC_CHAN_SLOT_SIZE(elem_size);
	struct gosync_chan *ch;
	size_t bytes;
	int ret;

	if (check_mul_overflow((size_t)slot_size, (size_t)capacity, &bytes) ||
	    bytes > min_t(unsigned long, READ_ONCE(max_buffer_bytes),
			  CHAN_BUFFER_LIMIT))
		return ERR_PTR(-ENOMEM);
	ch = kzalloc(sizeof(*ch), GOSYNC_GFP);
	if (!ch)
		return ERR_PTR(-ENOMEM);
	ch->id = gosync_new_id();
	ch->elem_size = elem_size;
	ch->capacity = capacity;
	ch->slot_size = slot_size;
	if (capacity) {
		ret = chan_ring_alloc(ch, bytes);
		if (ret) {
			chan_free(ch);
			return ERR_PTR(ret);
		}
	}
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
	u64 id;
	int fd;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved || arg.elem_size > GOSYNC_CHAN_ELEM_MAX ||
	    arg.capacity > READ_ONCE(max_capacity))
		return -EINVAL;
	ch = chan_alloc(arg.elem_size, arg.capacity);
	if (IS_ERR(ch))
		return PTR_ERR(ch);
	id = ch->id;	/* the fd may be closed at once: ch is gone */
	fd = chan_install(ch, "[gosync-chan]");
	if (fd >= 0)
		trace_gosync_obj_create(id, GOSYNC_TRACE_CHAN, fd,
					GOSYNC_TRACE_NO_KIND, arg.elem_size,
					arg.capacity);
	return fd;
}

long gosync_timer_create(const struct gosync_timer_set __user *uarg)
{
	struct gosync_timer_set set;
	struct gosync_chan *ch;
	struct chan_timer *t;
	u64 id;
	int fd;

	if (copy_from_user(&set, uarg, sizeof(set)))
		return -EFAULT;
	if (!chan_timer_set_valid(&set))
		return -EINVAL;
	ch = chan_alloc(sizeof(u64), 0);	/* no ring: see struct chan_timer */
	if (IS_ERR(ch))
		return PTR_ERR(ch);
	ch->capacity = 1;
	t = kzalloc(sizeof(*t), GOSYNC_GFP);
	if (!t) {
		chan_free(ch);
		return -ENOMEM;
	}
	mutex_init(&t->lock);
	INIT_WORK(&t->fire, chan_timer_fire);
	t->ch = ch;
	mutex_lock(&t->lock);
	chan_timer_arm(t, &set);	/* sets the hrtimer up too */
	mutex_unlock(&t->lock);
	ch->timer = t;
	id = ch->id;
	fd = chan_install(ch, "[gosync-timer]");
	if (fd >= 0)
		trace_gosync_obj_create(id, GOSYNC_TRACE_TIMER, fd,
					GOSYNC_TRACE_NO_KIND, sizeof(u64), 1);
	return fd;
}
