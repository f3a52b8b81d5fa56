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
 *
 * Cond lots add tickets (see the uapi header). Why a Signal wakes exactly
 * one waiter that was waiting, the oldest, and none is lost:
 *  - Tickets are taken in userspace under the Cond's mutex, so ticket
 *    order is the order in which waiters began to wait. Only the kernel
 *    moves @cond_notified, under lot->lock, one ticket per Signal (or to
 *    the ticket count for a Broadcast): each notification goes to one
 *    ticket, the oldest not yet notified.
 *  - That ticket's thread is parked (the notify finds it in @parked and
 *    serves it: woken exactly once, as for unpark), or it has not parked
 *    yet: its COND_WAIT then finds the ticket notified under the same
 *    lock and returns 0 without sleeping. Either way exactly one thread
 *    returns for it, and no other thread's wait is disturbed.
 *  - A ticket can also leave unnotified (deadline, cancel, a dying task).
 *    Its leaving is decided under lot->lock: if a notification reached it
 *    first, it returns 0 (the notification is not lost); otherwise it is
 *    recorded in @cond_gaps and every later notification skips it, so no
 *    Signal is spent on it. A gap is dropped when the notified count
 *    passes it; a leaving ticket that is the newest is un-issued instead
 *    (the ticket word is moved back by compare-and-swap), with the gaps
 *    that this uncovers at the top, so gaps exist only below a ticket
 *    still waiting: there are fewer runs of them than waiters.
 * The protocol is model-checked in spin/cond.pml.
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/hashtable.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>

#include "gosync.h"
#include "gosync_trace.h"

/* The words the uapi header promises fit in the one page a lot maps. */
static_assert(sizeof(u64[GOSYNC_LOT_WORDS]) <= PAGE_SIZE);

struct gosync_lot {
	struct gosync_obj obj;		/* first: the page holds the words */
	/* Protects @parked, @nr_parked and every waiter's @woken flag. */
	spinlock_t lock;
	struct list_head parked;	/* struct lot_waiter, queue order */
	u32 nr_parked;
	u32 kind;			/* immutable after creation */
	/*
	 * GOSYNC_LOT_CHECKED, immutable; and LOT_LEGACY_USER, set once (never
	 * cleared) when a library that predates checked locks reads the
	 * status: its threads may unlock what others hold, so the lot is no
	 * longer one a deadlock proof can go through.
	 */
	u32 flags;
	u64 param;			/* immutable after creation */
	u64 *words;			/* = obj.shared */
	atomic64_t parks;
	atomic64_t unparks;
	atomic64_t woken;
	/* Cond lots only, under @lock: tickets below it are notified. */
	u64 cond_notified;
	/* Cond lots only, under @lock: struct cond_gap, in ticket order. */
	struct list_head cond_gaps;
	u32 nr_cond_gaps;
	/*
	 * Mutex, RWMutex, WaitGroup and barrier lots: on death_lots, under
	 * robust_mutex (what a death walks).
	 */
	struct list_head death_node;
	/* WaitGroup and barrier lots, under @lock: struct lot_party. */
	struct list_head parties;
	u32 nr_parties;
	u64 wg_shares;			/* the sum of the parties' @share */
	u64 party_deaths;		/* parties undone (fdinfo) */
};

/*
 * What one process has taken part in (GOSYNC_FEATURE_LOT_PARTIES), kept
 * by the kernel so that it can be undone when the process dies: keyed by
 * the process (thread group) and the image it runs (an exec ends the
 * part of the image before it), on @lot->parties, under @lot->lock.
 */
struct lot_party {
	struct list_head node;
	struct pid *tgid;
	u64 exec_id;
	u64 share;	/* WaitGroup: the process's part of the counter */
	u64 round;	/* barrier, if @arrived: the round it last arrived in */
	bool arrived;
};

/*
 * Tickets [@lo, @hi) that left a Cond unnotified, all at or above the
 * notified count; compared modulo 2^64 from the notified count.
 */
struct cond_gap {
	struct list_head node;
	u64 lo, hi;
};

/* file->private_data is the lot and its struct gosync_obj. */
static_assert(offsetof(struct gosync_lot, obj) == 0);

/* A parked thread; lives on its own stack for the length of the park. */
struct lot_waiter {
	struct list_head node;
	struct task_struct *task;
	u32 index;	/* LOT_COND_INDEX for a Cond ticket's wait */
	u32 owner;	/* robust park: the waiter's owner handle, or 0 */
	u64 ticket;	/* with LOT_COND_INDEX */
	int token;	/* what the park returns: 1 after a hand-off */
	bool woken;	/* set once, under lot->lock, by lot_unpark() */
};

/* lot->flags: a pre-LOCK_CHECK library uses the lot (see there). */
#define LOT_LEGACY_USER	(1U << 31)

/* Whether a deadlock proof may go through @flags' lot. */
static bool lot_flags_checked(u32 flags)
{
	return (flags & (GOSYNC_LOT_CHECKED | LOT_LEGACY_USER)) ==
	       GOSYNC_LOT_CHECKED;
}

/* The index of a Cond ticket's waiter: no word's, so unpark skips it. */
#define LOT_COND_INDEX	GOSYNC_LOT_WORDS

static const char *const lot_kind_names[] = {
	[GOSYNC_LOT_PLAIN] = "plain",
	[GOSYNC_LOT_MUTEX] = "mutex",
	[GOSYNC_LOT_RWMUTEX] = "rwmutex",
	[GOSYNC_LOT_WAITGROUP] = "waitgroup",
	[GOSYNC_LOT_ONCE] = "once",
	[GOSYNC_LOT_COND] = "cond",
	[GOSYNC_LOT_BARRIER] = "barrier",
};

const char *gosync_lot_kind_name(u32 kind)
{
	return kind < ARRAY_SIZE(lot_kind_names) ? lot_kind_names[kind] : "-";
}

static bool lot_is_robust(const struct gosync_lot *lot);
static void lot_parties_leave(struct pid *tgid);
static int robust_check_holder(struct gosync_lot *lot,
			       struct gosync_blocked *blk);
static int lot_check_deadlock(struct gosync_lot *lot,
			      struct gosync_blocked *blk);
static void deadlock_pairs_free(void);
static void lot_serve(struct gosync_lot *lot, struct lot_waiter *w,
		      struct gosync_wakeups *wk);
static void lot_serve_index(struct gosync_lot *lot, u32 index,
			    struct gosync_wakeups *wk);

/*
 * Set bit @bit of word @index if (word & @mask) == @expected still holds
 * (the round a barrier party was in is not over), with a loop bounded as
 * sem_change()'s is, and then serve every thread parked on the word so
 * that each re-reads it (a barrier's other parties see BROKEN). The word
 * is userspace's: nothing here trusts its value. Return: whether it did.
 */
static bool lot_break_locked(struct gosync_lot *lot, u32 index, u64 mask,
			     u64 expected, u32 bit, struct gosync_wakeups *wk)
{
	atomic64_t *word = (atomic64_t *)&lot->words[index];
	s64 old = atomic64_read(word);
	int tries;

	lockdep_assert_held(&lot->lock);
	for (tries = 0; tries < GOSYNC_SEM_TRIES; tries++) {
		if (((u64)old & mask) != expected)
			return false;
		if (atomic64_try_cmpxchg(word, &old, old | (1ULL << bit))) {
			lot_serve_index(lot, index, wk);
			return true;
		}
	}
	return false;
}

/*
 * GOSYNC_LOT_PARK_BREAK: the parked caller was killed before anyone
 * unparked it. Break the word as the park named it.
 */
static void lot_break_on_death(struct gosync_lot *lot,
			       const struct gosync_lot_park *arg)
{
	struct gosync_wakeups wk = { 0 };

	spin_lock(&lot->lock);
	lot_break_locked(lot, arg->index, arg->mask, arg->expected,
			 arg->reserved, &wk);
	spin_unlock(&lot->lock);
	gosync_wake_all(&wk);
}

/*
 * The park's last field is reserved (0), the owner handle of a robust park
 * or the bit a BREAK park sets: never two of these at once.
 */
static bool lot_park_reserved_bad(const struct gosync_lot_park *arg)
{
	bool robust = arg->flags & GOSYNC_LOT_PARK_ROBUST;
	bool brk = arg->flags & GOSYNC_LOT_PARK_BREAK;

	if (robust && brk)
		return true;
	if (brk)
		return arg->reserved > 63;
	return !robust && arg->reserved;
}

/* lot_park_word() but for the trace of its end. */
static long lot_park_wait(struct gosync_lot *lot,
			  const struct gosync_lot_park *arg, u32 owner,
			  struct gosync_cancel *cancel,
			  struct gosync_blocked *blk)
{
	struct lot_waiter w = {
		.task = current, .index = arg->index, .owner = owner,
	};
	struct gosync_deadline dl;
	int ret = 0;

	gosync_deadline_init(&dl, arg->deadline,
			     arg->flags & GOSYNC_CLOCK_REALTIME);
	atomic64_inc(&lot->parks);

	spin_lock(&lot->lock);
	if ((READ_ONCE(lot->words[arg->index]) & arg->mask) != arg->expected)
		ret = -EAGAIN;
	else if (gosync_deadline_passed(&dl))
		ret = -ETIMEDOUT;
	if (ret) {
		spin_unlock(&lot->lock);
		gosync_cancel_exit(cancel);
		return ret;
	}
	if (arg->flags & GOSYNC_LOT_PARK_FRONT)
		list_add(&w.node, &lot->parked);
	else
		list_add_tail(&w.node, &lot->parked);
	lot->nr_parked++;
	trace_gosync_block(lot->obj.id, GOSYNC_TRACE_PARK, arg->index, 1);
	spin_unlock(&lot->lock);

	ret = gosync_wait_until(&w.woken, &dl, cancel, blk);
	gosync_cancel_exit(cancel);
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
	if (!w.woken && (arg->flags & GOSYNC_LOT_PARK_BREAK) &&
	    fatal_signal_pending(current))
		lot_break_on_death(lot, arg);
	return ret;
}

/* What the blocked-task table shows of a park as @arg says. */
static void lot_blocked_init(struct gosync_lot *lot,
			     const struct gosync_lot_park *arg,
			     const struct gosync_cancel *cancel,
			     struct gosync_blocked *blk)
{
	struct gosync_deadline dl = {
		.forever = arg->deadline == GOSYNC_DEADLINE_NONE,
	};

	gosync_blocked_init(blk, lot->obj.id, GOSYNC_TRACE_LOT, lot->kind,
			    GOSYNC_TRACE_PARK, arg->index, &dl, cancel);
}

/*
 * Park as @arg says (checked), with @cancel set up by the caller and torn
 * down here; @owner is a robust park's checked owner handle, or 0; @blk
 * is the park's record, set up by lot_blocked_init() (and maybe entered
 * already), off the table when this returns.
 */
static long lot_park_word(struct gosync_lot *lot,
			  const struct gosync_lot_park *arg, u32 owner,
			  struct gosync_cancel *cancel,
			  struct gosync_blocked *blk)
{
	long ret = lot_park_wait(lot, arg, owner, cancel, blk);

	gosync_blocked_leave(blk);
	trace_gosync_park(lot->obj.id, arg->index, arg->expected, ret);
	return ret;
}

static long lot_park(struct gosync_lot *lot,
		     const struct gosync_lot_park __user *uarg)
{
	struct gosync_blocked blk;
	struct gosync_cancel cancel;
	struct gosync_lot_park arg;
	u32 owner = 0;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.index >= GOSYNC_LOT_WORDS || (arg.expected & ~arg.mask) ||
	    lot_park_reserved_bad(&arg) ||
	    (arg.flags & ~(GOSYNC_CLOCK_REALTIME | GOSYNC_LOT_PARK_FRONT |
			   GOSYNC_WAIT_CANCEL_FD | GOSYNC_LOT_PARK_BREAK |
			   GOSYNC_LOT_PARK_ROBUST)))
		return -EINVAL;
	if ((arg.flags & GOSYNC_LOT_PARK_ROBUST) &&
	    (!lot_is_robust(lot) || arg.index ||
	     arg.owner > GOSYNC_LOCK_OWNER_MAX))
		return -EINVAL;
	ret = gosync_cancel_init(&cancel, arg.flags, arg.cancel_fd);
	if (ret)
		return ret;
	lot_blocked_init(lot, &arg, &cancel, &blk);
	if (arg.flags & GOSYNC_LOT_PARK_ROBUST) {
		blk.lock_word = &lot->words[0];
		blk.lock_flags = &lot->flags;
		ret = robust_check_holder(lot, &blk);
		if (ret) {
			atomic64_inc(&lot->parks);
			gosync_cancel_exit(&cancel);
			return ret;
		}
		owner = arg.owner;
	}
	return lot_park_word(lot, &arg, owner, &cancel, &blk);
}

/* Choose parked waiter @w: its park returns (its token). */
static void lot_serve(struct gosync_lot *lot, struct lot_waiter *w,
		      struct gosync_wakeups *wk)
{
	struct task_struct *task = w->task;

	lockdep_assert_held(&lot->lock);
	list_del(&w->node);
	lot->nr_parked--;
	/* After this store the waiter may return: w is not touched. */
	smp_store_release(&w->woken, true);
	gosync_wake_add(wk, task);
}

/*
 * Choose up to @count (GOSYNC_LOT_ALL: every) threads parked on word
 * @index, or with @others on every word but @index, without a hand-off;
 * under lot->lock. Return: how many.
 */
static u32 lot_serve_some(struct gosync_lot *lot, u32 index, u32 count,
			  bool others, struct gosync_wakeups *wk)
{
	struct lot_waiter *w, *next;
	u32 woken = 0;

	list_for_each_entry_safe(w, next, &lot->parked, node) {
		if (woken == count)
			break;
		if (others ? w->index == index : w->index != index)
			continue;
		lot_serve(lot, w, wk);
		woken++;
	}
	if (woken)
		trace_gosync_wake(lot->obj.id, GOSYNC_TRACE_PARK, woken, false);
	return woken;
}

/* Choose every thread parked on word @index. */
static void lot_serve_index(struct gosync_lot *lot, u32 index,
			    struct gosync_wakeups *wk)
{
	lot_serve_some(lot, index, GOSYNC_LOT_ALL, false, wk);
}

/*
 * Robust lock owners (see "robust lock words" in the uapi header).
 *
 * Each registered thread has a record: its handle, a reference to its
 * struct pid and to its process's, and the mm it ran in (compared only:
 * an exec changes it). Records, the handle xarray and the list of lots
 * a death walks (Mutex, RWMutex, WaitGroup, barrier) are under
 * robust_mutex (a robust park takes it to check the holder: parks are the
 * slow path, on the way to sleep). Deaths are rare, so a death walks
 * every robust lot: for each lock word held by a dead (or unknown) handle
 * it frees the word with OWNERDEAD set, in one bounded compare-and-swap,
 * and unparks one waiter; a process that exits or execs also leaves every
 * WaitGroup and barrier it takes part in (lot_parties_leave()). Lock
 * order: robust_mutex, then a lot's lock.
 *
 * A thread that ends cleanly (its exit destructor's ROBUST_EXIT) has
 * finished every operation it began. A process that exits or execs may
 * have lost a thread between changing a word and its unpark (an unlock
 * that freed the word): lot_flush() covers that, for the lots the process
 * had open, when it closes them.
 */
struct robust_owner {
	struct hlist_node node;		/* robust_by_pid */
	struct pid *pid;		/* the thread */
	struct pid *tgid;		/* its process */
	const struct mm_struct *mm;	/* compared only */
	u32 id;
	bool dead;
};

static DEFINE_MUTEX(robust_mutex);
static DEFINE_XARRAY_ALLOC1(robust_owners);
static DEFINE_HASHTABLE(robust_by_pid, 8);
static LIST_HEAD(death_lots);
static u32 robust_next;
static unsigned int robust_count;

/* Past this many records, a registration first drops those of the gone. */
#define ROBUST_MAX_OWNERS	65536U
/* Compare-and-swap attempts on a word userspace keeps changing. */
#define ROBUST_CAS_TRIES	64

static bool lot_is_robust(const struct gosync_lot *lot)
{
	return lot->kind == GOSYNC_LOT_MUTEX || lot->kind == GOSYNC_LOT_RWMUTEX;
}

static bool lot_has_parties(const struct gosync_lot *lot)
{
	return lot->kind == GOSYNC_LOT_WAITGROUP ||
	       lot->kind == GOSYNC_LOT_BARRIER;
}

/* Whether a death walks @lot (it is on death_lots). */
static bool lot_deaths_matter(const struct gosync_lot *lot)
{
	return lot_is_robust(lot) || lot_has_parties(lot);
}

/*
 * Whether the files being closed are closed because the process exits
 * (PF_EXITING) or execs (in_execve: 6.12 closes the O_CLOEXEC ones
 * before the new mm is in place, 6.1 after).
 */
static bool current_leaves_program(void)
{
	return (current->flags & PF_EXITING) || current->in_execve;
}

/*
 * Whether the calling process leaves its program: its last thread exits,
 * or it execs.
 */
static bool current_process_leaves(void)
{
	return gosync_last_thread_exits() || current->in_execve;
}

/* Whether @rec's thread still runs the program that registered it. */
static bool robust_alive(const struct robust_owner *rec)
{
	struct task_struct *task;
	bool alive;

	rcu_read_lock();
	task = pid_task(rec->pid, PIDTYPE_PID);
	alive = task && !(READ_ONCE(task->flags) & PF_EXITING) &&
		READ_ONCE(task->mm) == rec->mm;
	rcu_read_unlock();
	return alive;
}

/*
 * Wake up to @count threads parked on word @index of @lot, or with
 * @others on every word but @index, without a hand-off.
 */
static void lot_wake_index(struct gosync_lot *lot, u32 index, u32 count,
			   bool others)
{
	struct gosync_wakeups wk = { 0 };
	u32 woken;

	spin_lock(&lot->lock);
	woken = lot_serve_some(lot, index, count, others, &wk);
	spin_unlock(&lot->lock);
	gosync_wake_all(&wk);
	atomic64_add(woken, &lot->woken);
}

/*
 * Free @lot's lock word if dead handle @id holds it: LOCKED, STARVING,
 * HANDOFF and the owner cleared, OWNERDEAD set, in one compare-and-swap,
 * whatever userspace writes there (bounded). Return: whether it did.
 */
static bool lot_reap_word(struct gosync_lot *lot, u32 id)
{
	atomic64_t *word = (atomic64_t *)&lot->words[0];
	s64 old = atomic64_read(word);
	u64 new;
	int tries;

	for (tries = 0; tries < ROBUST_CAS_TRIES; tries++) {
		if (!(old & GOSYNC_LOCK_LOCKED) ||
		    (u64)old >> GOSYNC_LOCK_OWNER_SHIFT != id)
			return false;
		new = ((u64)old & ~(GOSYNC_LOCK_LOCKED | GOSYNC_LOCK_HANDOFF |
				    GOSYNC_LOCK_STARVING |
				    (~0ULL << GOSYNC_LOCK_OWNER_SHIFT))) |
		      GOSYNC_LOCK_OWNERDEAD;
		if (atomic64_try_cmpxchg(word, &old, (s64)new))
			return true;
	}
	return false;
}

/*
 * After deaths: free every robust lot's lock word held by a dead (or
 * unknown) handle and unpark one of its waiters (an RWMutex's waiters on
 * its other words as well: its dead writer may have announced itself).
 */
static void robust_sweep(void)
{
	struct robust_owner *rec;
	struct gosync_lot *lot;

	lockdep_assert_held(&robust_mutex);
	list_for_each_entry(lot, &death_lots, death_node) {
		u64 v = READ_ONCE(lot->words[0]);
		u32 id = v >> GOSYNC_LOCK_OWNER_SHIFT;

		if (!lot_is_robust(lot) || !(v & GOSYNC_LOCK_LOCKED) || !id)
			continue;
		rec = xa_load(&robust_owners, id);
		if ((rec && !rec->dead) || !lot_reap_word(lot, id))
			continue;
		lot_wake_index(lot, 0, 1, false);
		if (lot->kind == GOSYNC_LOT_RWMUTEX)
			lot_wake_index(lot, 0, GOSYNC_LOT_ALL, true);
	}
}

static void robust_free(struct robust_owner *rec)
{
	lockdep_assert_held(&robust_mutex);
	hash_del(&rec->node);
	xa_erase(&robust_owners, rec->id);
	robust_count--;
	put_pid(rec->pid);
	put_pid(rec->tgid);
	kfree(rec);
}

/* Sweep for the records marked dead, then drop them. */
static void robust_reap_dead(void)
{
	struct robust_owner *rec;
	struct hlist_node *tmp;
	int bkt;

	robust_sweep();
	hash_for_each_safe(robust_by_pid, bkt, tmp, rec, node)
		if (rec->dead)
			robust_free(rec);
}

/* The calling thread's live record, or NULL. */
static struct robust_owner *robust_find_current(void)
{
	struct pid *pid = task_pid(current);
	struct robust_owner *rec;

	lockdep_assert_held(&robust_mutex);
	hash_for_each_possible(robust_by_pid, rec, node, (unsigned long)pid)
		if (rec->pid == pid && !rec->dead)
			return rec;
	return NULL;
}

long gosync_robust_register(void)
{
	struct robust_owner *rec;
	struct hlist_node *tmp;
	long ret;
	int bkt;
	u32 id;

	mutex_lock(&robust_mutex);
	rec = robust_find_current();
	if (rec && rec->mm == current->mm) {
		ret = rec->id;
		goto out;
	}
	if (rec) {
		/* Registered before an exec that was not seen: it is dead. */
		rec->dead = true;
		robust_reap_dead();
	}
	if (robust_count >= ROBUST_MAX_OWNERS) {
		/* Threads that ended without telling us. */
		hash_for_each_safe(robust_by_pid, bkt, tmp, rec, node)
			if (!robust_alive(rec))
				rec->dead = true;
		robust_reap_dead();
	}
	ret = -ENOSPC;
	if (robust_count >= ROBUST_MAX_OWNERS)
		goto out;
	ret = -ENOMEM;
	rec = kzalloc(sizeof(*rec), GOSYNC_GFP);
	if (!rec)
		goto out;
	rec->pid = get_pid(task_pid(current));
	rec->tgid = get_pid(task_tgid(current));
	rec->mm = current->mm;
	ret = xa_alloc_cyclic(&robust_owners, &id, rec,
			      XA_LIMIT(1, GOSYNC_LOCK_OWNER_MAX), &robust_next,
			      GOSYNC_GFP);
	if (ret < 0) {
		put_pid(rec->pid);
		put_pid(rec->tgid);
		kfree(rec);
		goto out;
	}
	rec->id = id;
	hash_add(robust_by_pid, &rec->node, (unsigned long)rec->pid);
	robust_count++;
	ret = id;
out:
	mutex_unlock(&robust_mutex);
	return ret;
}

long gosync_robust_exit(void)
{
	struct robust_owner *rec;

	mutex_lock(&robust_mutex);
	rec = robust_find_current();
	if (rec) {
		rec->dead = true;
		robust_reap_dead();
	}
	mutex_unlock(&robust_mutex);
	return rec ? 0 : -ENOENT;
}

/*
 * A descriptor of /dev/gosync is closed. At exit (PF_EXITING: the files
 * are closed after the last thread left userspace) every handle of the
 * process dies, or only the exiting thread's if it had a descriptor
 * table of its own and others still run; at exec (the O_CLOEXEC
 * descriptor, closed past the point of no return, after de_thread():
 * before the new mm is in place on 6.12, after it on 6.1, so in_execve
 * says it) so does every handle of the process, and any registered under
 * another mm; a plain close() changes nothing of the caller's. Handles of
 * threads that are gone are dropped on the way.
 */
void gosync_robust_flush(void)
{
	bool leaves = current_process_leaves();
	bool exiting = current->flags & PF_EXITING;
	struct pid *tgid = task_tgid(current);
	struct robust_owner *rec;
	bool any = false;
	int bkt;

	mutex_lock(&robust_mutex);
	hash_for_each(robust_by_pid, bkt, rec, node) {
		if (rec->tgid == tgid ?
		    leaves || rec->mm != current->mm ||
		    (exiting && rec->pid == task_pid(current)) :
		    !robust_alive(rec)) {
			rec->dead = true;
			any = true;
		}
	}
	if (any)
		robust_reap_dead();
	if (leaves)
		lot_parties_leave(tgid);
	mutex_unlock(&robust_mutex);
}

/*
 * Module exit. Every file of the module is closed (each holds a module
 * reference), so no lot is left and no ioctl or flush runs: the records
 * of threads that are still alive (their process closed the device) or
 * that ended without telling us are all that remain. Drop them.
 */
void gosync_robust_cleanup(void)
{
	struct robust_owner *rec;
	struct hlist_node *tmp;
	int bkt;

	mutex_lock(&robust_mutex);
	WARN_ON_ONCE(!list_empty(&death_lots));
	hash_for_each_safe(robust_by_pid, bkt, tmp, rec, node)
		robust_free(rec);
	WARN_ON_ONCE(robust_count || !xa_empty(&robust_owners));
	xa_destroy(&robust_owners);
	deadlock_pairs_free();
	mutex_unlock(&robust_mutex);
}

/*
 * A robust park: if the lock word's holder is dead or unknown, free the
 * word (and the holder's other words) and return -EAGAIN. On a checked
 * lot, refuse a park that would deadlock (-EDEADLK), else enter @blk on
 * the blocked-task table in the same critical section. Else 0.
 */
static int robust_check_holder(struct gosync_lot *lot,
			       struct gosync_blocked *blk)
{
	u64 v = READ_ONCE(lot->words[0]);
	u32 id = v >> GOSYNC_LOCK_OWNER_SHIFT;
	bool checked = lot_flags_checked(READ_ONCE(lot->flags));
	struct robust_owner *rec;
	int ret = 0;

	if ((!(v & GOSYNC_LOCK_LOCKED) || !id) && !checked)
		return 0;
	/* Short, and only on the way to sleep: parks are the slow path. */
	mutex_lock(&robust_mutex);
	rec = (v & GOSYNC_LOCK_LOCKED) && id ?
	      xa_load(&robust_owners, id) : NULL;
	if (rec && !robust_alive(rec)) {
		rec->dead = true;
		robust_reap_dead();
		ret = -EAGAIN;
	} else if (!rec && id && (v & GOSYNC_LOCK_LOCKED) &&
		   lot_reap_word(lot, id)) {
		lot_wake_index(lot, 0, 1, false);
		ret = -EAGAIN;
	} else if (checked) {
		ret = lot_check_deadlock(lot, blk);
	}
	mutex_unlock(&robust_mutex);
	return ret;
}

/*
 * Deadlock detection (GOSYNC_LOT_CHECKED, see the uapi header).
 *
 * Why a refusal is never wrong: the walk holds robust_mutex and the
 * blocked-task lock throughout. Every thread on that table is inside its
 * wait's system call and cannot run userspace code, so it cannot unlock
 * a word it holds; under the checked-lock contract nobody else unlocks
 * it; the kernel changes a held word only for a dead holder (the walk
 * stops at one) or to hand it to a parked waiter, which puts that
 * waiter's handle in the word (so a link through a thread that was just
 * handed its lock leads back to that same thread, never to the caller).
 * A thread on the table whose wait has no deadline and no cancelling
 * channel, on a checked lot held by another such thread, therefore
 * waits at least as long as that one: if the chain comes back to the
 * caller, who holds the last lot and is about to wait without end too,
 * none of them returns unless one is killed (the walk stops at a thread
 * with a fatal signal pending or exiting already; a kill that comes
 * later frees that thread's locks for the next taker, -EOWNERDEAD: the
 * refusal was right when it was made). Signals do not break the cycle:
 * libgosync's lock parks again after a handler. A lot that a library
 * predating checked locks has read the status of (the shorter status
 * ioctl) is not checked from then on: that library unlocks from any
 * thread. A cycle longer than DEADLOCK_MAX_CHAIN links is not seen.
 *
 * Why none is missed: a park on a checked lot enters its record in the
 * same critical section as its check (robust_mutex serialises them), so
 * of two threads closing a cycle the second sees the first.
 */

/* While set, every Mutex and RWMutex lot made is checked. */
static bool detect_deadlocks;
module_param(detect_deadlocks, bool, 0644);
MODULE_PARM_DESC(detect_deadlocks,
		 "Make every new Mutex and RWMutex a checked one (-EDEADLK)");

/* Checked lots' walks stop after this many links. */
#define DEADLOCK_MAX_CHAIN	64

/* Pairs of lots already reported in the log (once each), under robust_mutex. */
struct deadlock_pair {
	struct hlist_node node;
	u64 obj, last;
};

static DEFINE_HASHTABLE(deadlock_pairs, 6);
static unsigned int nr_deadlock_pairs;
#define DEADLOCK_MAX_PAIRS	1024U

/* The log's rate limit (the kernel's default: 10 lines each 5 s). */
static DEFINE_RATELIMIT_STATE(deadlock_log_limit, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

/*
 * Whether a deadlock between lots @obj and @last is to be logged now:
 * never logged before and within the rate limit; then it is recorded as
 * logged (a line the limit holds back is logged at the pair's next one).
 */
static bool deadlock_pair_logged(u64 obj, u64 last)
{
	struct deadlock_pair *p;
	u64 key = obj ^ (last << 32 | last >> 32);

	lockdep_assert_held(&robust_mutex);
	hash_for_each_possible(deadlock_pairs, p, node, key)
		if (p->obj == obj && p->last == last)
			return false;
	if (!__ratelimit(&deadlock_log_limit))
		return false;
	if (nr_deadlock_pairs >= DEADLOCK_MAX_PAIRS)
		return true;	/* forgetful from here on: still rate-limited */
	p = kmalloc(sizeof(*p), GFP_KERNEL);
	if (p) {
		p->obj = obj;
		p->last = last;
		hash_add(deadlock_pairs, &p->node, key);
		nr_deadlock_pairs++;
	}
	return true;
}

/*
 * The thread that holds lock word @v, with robust_mutex and RCU held:
 * NULL if it is not held, held anonymously, or by a dead or unknown
 * handle.
 */
struct task_struct *gosync_lock_holder(u64 v)
{
	u32 id = v >> GOSYNC_LOCK_OWNER_SHIFT;
	struct robust_owner *rec;

	lockdep_assert_held(&robust_mutex);
	if (!(v & GOSYNC_LOCK_LOCKED) || !id)
		return NULL;
	rec = xa_load(&robust_owners, id);
	if (!rec || rec->dead || !robust_alive(rec))
		return NULL;
	return pid_task(rec->pid, PIDTYPE_PID);
}

void gosync_robust_lock(void)
{
	mutex_lock(&robust_mutex);
}

void gosync_robust_unlock(void)
{
	mutex_unlock(&robust_mutex);
}

/*
 * For a robust park of the caller on checked @lot, with robust_mutex
 * held: -EDEADLK if it would never return (see above), reported; else
 * enter @blk and return 0.
 */
static int lot_check_deadlock(struct gosync_lot *lot,
			      struct gosync_blocked *blk)
{
	const struct gosync_blocked *link;
	struct task_struct *holder, *next;
	u64 last = lot->obj.id;
	pid_t holder_pid = 0;
	bool cycle = false;
	u32 length = 0;

	lockdep_assert_held(&robust_mutex);
	gosync_blocked_lock();
	rcu_read_lock();
	holder = gosync_lock_holder(READ_ONCE(lot->words[0]));
	while (holder && length < DEADLOCK_MAX_CHAIN) {
		if (!length)
			holder_pid = task_pid_nr(holder);
		length++;
		/* A relock is refused whatever the deadline; a cycle not. */
		if (holder == current) {
			cycle = length == 1 || blk->forever;
			break;
		}
		link = gosync_blocked_of(holder);
		/*
		 * The chain ends at a wait that can end: with a deadline or a
		 * channel, on a lot that is not checked (or no longer: an old
		 * library uses it), or of a thread that is to die (its locks
		 * are then freed for the next taker).
		 */
		if (!link || !link->lock_word || !link->forever ||
		    !lot_flags_checked(READ_ONCE(*link->lock_flags)) ||
		    fatal_signal_pending(holder) ||
		    (READ_ONCE(holder->flags) & PF_EXITING))
			break;
		last = link->obj;
		next = gosync_lock_holder(READ_ONCE(*link->lock_word));
		/* Just handed its lock: it is no link of a cycle. */
		holder = next == holder ? NULL : next;
	}
	rcu_read_unlock();
	if (!cycle) {
		gosync_blocked_enter_locked(blk);
		gosync_blocked_unlock();
		return 0;
	}
	gosync_blocked_unlock();
	trace_gosync_deadlock(lot->obj.id, last, task_pid_nr(current),
			      holder_pid, length);
	if (!deadlock_pair_logged(lot->obj.id, last))
		return -EDEADLK;
	if (length == 1)
		pr_warn("gosync: deadlock: pid %d (%s) locks %s %llu, which it holds: -EDEADLK\n",
			task_pid_nr(current), current->comm,
			lot_kind_names[lot->kind], lot->obj.id);
	else
		pr_warn("gosync: deadlock: pid %d (%s) would wait forever on %s %llu, held by pid %d: a cycle of %u locks whose last (%llu) the caller holds: -EDEADLK\n",
			task_pid_nr(current), current->comm,
			lot_kind_names[lot->kind], lot->obj.id, holder_pid,
			length, last);
	return -EDEADLK;
}

/* Module exit: forget the pairs reported. */
static void deadlock_pairs_free(void)
{
	struct deadlock_pair *p;
	struct hlist_node *tmp;
	int bkt;

	hash_for_each_safe(deadlock_pairs, bkt, tmp, p, node)
		kfree(p);
	nr_deadlock_pairs = 0;
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
	    (arg.flags & ~(GOSYNC_LOT_UNPARK_HANDOFF |
			   GOSYNC_LOT_UNPARK_OWNER)) ||
	    (!(arg.flags & GOSYNC_LOT_UNPARK_HANDOFF) &&
	     (arg.add || (arg.flags & GOSYNC_LOT_UNPARK_OWNER))))
		return -EINVAL;
	atomic64_inc(&lot->unparks);

	spin_lock(&lot->lock);
	list_for_each_entry_safe(w, next, &lot->parked, node) {
		if (woken == arg.count)
			break;
		if (w->index != arg.index)
			continue;
		if (arg.flags & GOSYNC_LOT_UNPARK_HANDOFF) {
			u64 add = arg.add;

			/* And with UNPARK_OWNER, the waiter's handle with it. */
			if (arg.flags & GOSYNC_LOT_UNPARK_OWNER)
				add += (u64)w->owner << GOSYNC_LOCK_OWNER_SHIFT;
			/* The word changes hands before the waiter runs. */
			atomic64_add((s64)add,
				     (atomic64_t *)&lot->words[arg.index]);
			w->token = 1;
		}
		lot_serve(lot, w, &wk);
		woken++;
	}
	trace_gosync_unpark(lot->obj.id, arg.index, arg.count, woken,
			    arg.flags & GOSYNC_LOT_UNPARK_HANDOFF);
	if (woken)
		trace_gosync_wake(lot->obj.id, GOSYNC_TRACE_PARK, woken,
				  arg.flags & GOSYNC_LOT_UNPARK_HANDOFF);
	spin_unlock(&lot->lock);
	gosync_wake_all(&wk);
	atomic64_add(woken, &lot->woken);
	return woken;
}

/* Ticket @a comes before ticket @b (modulo 2^64, as the counters wrap). */
static bool ticket_before(u64 a, u64 b)
{
	return (s64)(a - b) < 0;
}

/* Distance of @t from the notified count: the order of live tickets. */
static u64 ticket_rank(const struct gosync_lot *lot, u64 t)
{
	return t - lot->cond_notified;
}

static bool cond_is_notified(const struct gosync_lot *lot, u64 t)
{
	lockdep_assert_held(&lot->lock);
	return ticket_before(t, lot->cond_notified);
}

static bool cond_in_gap(const struct gosync_lot *lot, u64 t)
{
	struct cond_gap *g;

	lockdep_assert_held(&lot->lock);
	list_for_each_entry(g, &lot->cond_gaps, node)
		if (ticket_rank(lot, t) >= ticket_rank(lot, g->lo) &&
		    ticket_rank(lot, t) < ticket_rank(lot, g->hi))
			return true;
	return false;
}

/*
 * Ticket @t leaves unnotified. The newest ticket is un-issued by moving
 * the ticket word back (it fails harmlessly if a new waiter took one
 * meanwhile), and so are the gaps this uncovers; otherwise @t joins a
 * neighbouring gap or becomes one, in *@spare (which is then consumed).
 * Gaps that merge are moved to @dead, to be freed after the lock.
 */
static void cond_leave(struct gosync_lot *lot, u64 t, struct cond_gap **spare,
		       struct list_head *dead)
{
	atomic64_t *tickets = (atomic64_t *)&lot->words[GOSYNC_COND_TICKETS];
	struct cond_gap *g, *next;
	s64 top = t + 1;

	lockdep_assert_held(&lot->lock);
	if (atomic64_try_cmpxchg(tickets, &top, t)) {
		/* Un-issued; so is the gap just below, if it reaches @t. */
		while (!list_empty(&lot->cond_gaps)) {
			g = list_last_entry(&lot->cond_gaps, struct cond_gap,
					    node);
			top = g->hi;
			if (!atomic64_try_cmpxchg(tickets, &top, g->lo))
				break;
			list_move(&g->node, dead);
			lot->nr_cond_gaps--;
		}
		return;
	}
	list_for_each_entry(g, &lot->cond_gaps, node) {
		if (g->hi == t) {
			g->hi++;
			next = list_next_entry(g, node);
			if (!list_entry_is_head(next, &lot->cond_gaps, node) &&
			    next->lo == g->hi) {
				g->hi = next->hi;
				list_move(&next->node, dead);
				lot->nr_cond_gaps--;
			}
			return;
		}
		if (g->lo == t + 1) {
			g->lo = t;
			return;
		}
		if (ticket_rank(lot, g->lo) > ticket_rank(lot, t))
			break;
	}
	/* Before @g, or at the tail if the loop ran through. */
	(*spare)->lo = t;
	(*spare)->hi = t + 1;
	list_add_tail(&(*spare)->node, &g->node);
	lot->nr_cond_gaps++;
	*spare = NULL;
}

/* The parked waiter of ticket @t, or NULL (it has not parked yet). */
static struct lot_waiter *cond_find(struct gosync_lot *lot, u64 t)
{
	struct lot_waiter *w;

	lockdep_assert_held(&lot->lock);
	list_for_each_entry(w, &lot->parked, node)
		if (w->index == LOT_COND_INDEX && w->ticket == t)
			return w;
	return NULL;
}

static void cond_free_gaps(struct list_head *dead)
{
	struct cond_gap *g, *next;

	list_for_each_entry_safe(g, next, dead, node)
		kfree(g);
}

/*
 * Ticket @w->ticket leaves unnotified (deadline, cancel, dying task),
 * unless a notification reached it first: then it returns 0. @spare is
 * the gap the departure may need, allocated before the wait (see
 * lot_cond_wait()), or NULL if that failed; it is consumed or freed here.
 */
static int cond_depart(struct gosync_lot *lot, struct lot_waiter *w,
		       bool queued, int ret, struct cond_gap *spare)
{
	LIST_HEAD(dead);

	/* The memory lot_cond_wait() could not get (32 bytes, bounded). */
	if (!spare)
		spare = kmalloc(sizeof(*spare),
				GFP_KERNEL_ACCOUNT | __GFP_NOFAIL);
	spin_lock(&lot->lock);
	if (w->woken) {
		ret = 0;
	} else {
		if (queued) {
			list_del(&w->node);
			lot->nr_parked--;
		}
		if (cond_is_notified(lot, w->ticket))
			ret = 0;
		else
			cond_leave(lot, w->ticket, &spare, &dead);
	}
	spin_unlock(&lot->lock);
	kfree(spare);
	cond_free_gaps(&dead);
	return ret;
}

/*
 * Whether ticket @t may wait (1), is notified already (0), or not: never
 * issued or already gone (-EINVAL), too many gaps (-ENOSPC).
 */
static int cond_check(const struct gosync_lot *lot, u64 t)
{
	lockdep_assert_held(&lot->lock);
	if (cond_is_notified(lot, t))
		return 0;
	if (!ticket_before(t, READ_ONCE(lot->words[GOSYNC_COND_TICKETS])) ||
	    cond_in_gap(lot, t))
		return -EINVAL;
	if (lot->nr_cond_gaps >= GOSYNC_COND_MAX_GAPS)
		return -ENOSPC;
	return 1;
}

static long lot_cond_wait(struct gosync_lot *lot,
			  const struct gosync_lot_cond_wait __user *uarg)
{
	struct lot_waiter w = { .task = current, .index = LOT_COND_INDEX };
	struct cond_gap *spare;
	struct gosync_lot_cond_wait arg;
	struct gosync_blocked blk;
	struct gosync_cancel cancel;
	struct gosync_deadline dl;
	bool queued = false;
	int ret;

	if (lot->kind != GOSYNC_LOT_COND)
		return -ENOTTY;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags & ~(GOSYNC_CLOCK_REALTIME | GOSYNC_WAIT_CANCEL_FD))
		return -EINVAL;
	gosync_deadline_init(&dl, arg.deadline,
			     arg.flags & GOSYNC_CLOCK_REALTIME);
	/*
	 * A departure without a notification records at most one gap more
	 * (at most GOSYNC_COND_MAX_GAPS per lot, cond_check()), and it must
	 * not fail: the caller's ticket is taken, and a ticket that never
	 * departs would take a Signal from a real waiter. Its memory is
	 * taken here, charged and allowed to fail, for a __GFP_NOFAIL
	 * allocation would, in a memory cgroup at its limit, invoke the
	 * cgroup's OOM killer and then be charged beyond memory.max. If it
	 * fails, the wait goes on without it (no -ENOMEM here: see above)
	 * and cond_depart() falls back to __GFP_NOFAIL. Freed unused on
	 * every other path.
	 */
	spare = kmalloc(sizeof(*spare), GOSYNC_GFP);
	ret = gosync_cancel_init(&cancel, arg.flags, arg.cancel_fd);
	if (ret) {
		kfree(spare);
		return ret;
	}
	atomic64_inc(&lot->parks);
	w.ticket = arg.ticket;

	spin_lock(&lot->lock);
	ret = cond_check(lot, w.ticket);
	if (ret == 1 && !gosync_deadline_passed(&dl)) {
		list_add_tail(&w.node, &lot->parked);
		lot->nr_parked++;
		queued = true;
		trace_gosync_block(lot->obj.id, GOSYNC_TRACE_COND_WAIT,
				   (u32)w.ticket, 1);
	}
	spin_unlock(&lot->lock);
	if (!queued) {
		gosync_cancel_exit(&cancel);
		/* Notified (0), refused, or the deadline passed already. */
		if (ret == 1)
			return cond_depart(lot, &w, false, -ETIMEDOUT, spare);
		kfree(spare);
		return ret;
	}

	gosync_blocked_init(&blk, lot->obj.id, GOSYNC_TRACE_LOT, lot->kind,
			    GOSYNC_TRACE_COND_WAIT, LOT_COND_INDEX, &dl, &cancel);
	ret = gosync_wait_until(&w.woken, &dl, &cancel, &blk);
	gosync_cancel_exit(&cancel);
	if (ret && (ret != -ERESTARTSYS || fatal_signal_pending(current)))
		return cond_depart(lot, &w, true, ret, spare);
	kfree(spare);
	if (!ret)
		return 0;

	/* A signal: the call is restarted with the same ticket, which stays. */
	spin_lock(&lot->lock);
	if (w.woken) {
		ret = 0;
	} else {
		list_del(&w.node);
		lot->nr_parked--;
	}
	spin_unlock(&lot->lock);
	return ret;
}

static long lot_cond_notify(struct gosync_lot *lot, const __u32 __user *uarg)
{
	struct gosync_wakeups wk = { 0 };
	struct lot_waiter *w, *next;
	struct cond_gap *g;
	LIST_HEAD(dead);
	u32 count, woken = 0;
	u64 tickets;

	if (lot->kind != GOSYNC_LOT_COND)
		return -ENOTTY;
	if (get_user(count, uarg))
		return -EFAULT;
	if (count != 1 && count != GOSYNC_LOT_ALL)
		return -EINVAL;
	atomic64_inc(&lot->unparks);

	spin_lock(&lot->lock);
	tickets = READ_ONCE(lot->words[GOSYNC_COND_TICKETS]);
	if (count == GOSYNC_LOT_ALL) {
		if (ticket_before(lot->cond_notified, tickets))
			lot->cond_notified = tickets;
		list_splice_init(&lot->cond_gaps, &dead);
		lot->nr_cond_gaps = 0;
		list_for_each_entry_safe(w, next, &lot->parked, node) {
			if (w->index == LOT_COND_INDEX &&
			    cond_is_notified(lot, w->ticket)) {
				lot_serve(lot, w, &wk);
				woken++;
			}
		}
	}
	/* A Signal: the oldest ticket still waiting, past those that left. */
	while (count == 1 && ticket_before(lot->cond_notified, tickets)) {
		u64 t = lot->cond_notified++;

		g = list_first_entry_or_null(&lot->cond_gaps, struct cond_gap,
					     node);
		if (g && g->lo == t) {
			if (++g->lo == g->hi) {
				list_move(&g->node, &dead);
				lot->nr_cond_gaps--;
			}
			continue;
		}
		w = cond_find(lot, t);
		if (w) {
			lot_serve(lot, w, &wk);
			woken++;
		}
		break;
	}
	WRITE_ONCE(lot->words[GOSYNC_COND_NOTIFIED], lot->cond_notified);
	if (woken)
		trace_gosync_wake(lot->obj.id, GOSYNC_TRACE_COND_WAIT, woken,
				  false);
	spin_unlock(&lot->lock);
	gosync_wake_all(&wk);
	cond_free_gaps(&dead);
	atomic64_add(woken, &lot->woken);
	return woken;
}

/*
 * Parties that die (GOSYNC_FEATURE_LOT_PARTIES, see the uapi header).
 *
 * Why a death is never missed, and never undone twice: a process's part
 * (a WaitGroup share, a barrier arrival) changes only inside WG_ADD and
 * ARRIVE, in the same critical section of lot->lock as the word's change,
 * and a task cannot die in the middle of an ioctl: so at every instant
 * the record says exactly what the process has outstanding. Flushes
 * (lot_flush_parties()) undo a record under the same lock and free it,
 * so it is undone at most once. A WaitGroup's counter and the shares are
 * changed together; a barrier party needs no change at its return, as it
 * leaves await only when its round is over or broken, so a record whose
 * round the word still shows, unbroken, is a party still inside await.
 */
static struct lot_party *lot_party_find(struct gosync_lot *lot)
{
	struct pid *tgid = task_tgid(current);
	struct lot_party *p;

	lockdep_assert_held(&lot->lock);
	list_for_each_entry(p, &lot->parties, node)
		if (p->tgid == tgid)
			return p;
	return NULL;
}

/*
 * Undo @p's part: a WaitGroup share leaves the counter (clamped at 0),
 * BROKEN is set, and every waiter is served; a barrier round that @p
 * arrived in and that is not over breaks. Bounded: against a word
 * userspace keeps changing, after GOSYNC_SEM_TRIES lost swaps a WaitGroup
 * is broken with the share left in (one atomic OR) and a barrier round
 * is left alone (the uapi header says so).
 */
static void lot_party_undo(struct gosync_lot *lot, struct lot_party *p,
			   struct gosync_wakeups *wk)
{
	atomic64_t *word = (atomic64_t *)&lot->words[0];
	s64 old = atomic64_read(word);
	u64 counter, new;
	int tries;

	lockdep_assert_held(&lot->lock);
	if (p->arrived) {
		lot->party_deaths += lot_break_locked(lot, 0,
					~GOSYNC_BARRIER_COUNT,
					p->round << GOSYNC_BARRIER_ROUND_SHIFT,
					32, wk);
		/*
		 * And wake word 0's waiters even if the round is over: the
		 * dead party may have ended or broken it (its compare-and-
		 * swap) and died before its unpark. They re-read the word.
		 */
		lot_serve_index(lot, 0, wk);
		p->arrived = false;
	}
	if (!p->share)
		return;
	for (tries = 0; tries < GOSYNC_SEM_TRIES; tries++) {
		counter = (u64)old & GOSYNC_WG_COUNTER;
		counter -= min(counter, p->share);
		new = ((u64)old & ~GOSYNC_WG_COUNTER) | counter |
		      GOSYNC_WG_BROKEN;
		if (atomic64_try_cmpxchg(word, &old, (s64)new))
			break;
	}
	/* Lost every swap: the share stays counted, but the group breaks. */
	if (tries == GOSYNC_SEM_TRIES)
		atomic64_or(GOSYNC_WG_BROKEN, word);
	lot_serve_index(lot, 0, wk);
	lot->party_deaths++;
	lot->wg_shares -= p->share;
	p->share = 0;
}

/* Party records on all lots: a process that exits walks none if 0. */
static atomic_t party_records = ATOMIC_INIT(0);

static void lot_party_free(struct gosync_lot *lot, struct lot_party *p)
{
	atomic_dec(&party_records);
	list_del(&p->node);
	lot->nr_parties--;
	put_pid(p->tgid);
	kfree(p);
}

/*
 * The caller's record, or NULL; a record of the image before an exec is
 * undone first (that image is gone).
 */
static struct lot_party *lot_party_mine(struct gosync_lot *lot,
					struct gosync_wakeups *wk)
{
	u64 exec_id = READ_ONCE(current->self_exec_id);
	struct lot_party *p = lot_party_find(lot);

	if (p && p->exec_id != exec_id) {
		lot_party_undo(lot, p, wk);
		p->exec_id = exec_id;
	}
	return p;
}

/*
 * The caller's record, made from @*fresh if it has none (which is then
 * consumed). ERR_PTR(-ENOSPC) at GOSYNC_LOT_MAX_PARTIES records, -ENOMEM
 * without @*fresh.
 */
static struct lot_party *lot_party_get(struct gosync_lot *lot,
				       struct lot_party **fresh,
				       struct gosync_wakeups *wk)
{
	struct lot_party *p = lot_party_mine(lot, wk);

	if (p)
		return p;
	if (lot->nr_parties >= GOSYNC_LOT_MAX_PARTIES)
		return ERR_PTR(-ENOSPC);
	if (!*fresh)
		return ERR_PTR(-ENOMEM);
	p = *fresh;
	*fresh = NULL;
	p->tgid = get_pid(task_tgid(current));
	p->exec_id = READ_ONCE(current->self_exec_id);
	list_add_tail(&p->node, &lot->parties);
	lot->nr_parties++;
	atomic_inc(&party_records);
	return p;
}

/* Forget @p if it has nothing outstanding (a WaitGroup party's). */
static void lot_party_put(struct gosync_lot *lot, struct lot_party *p)
{
	if (!p->share && !p->arrived)
		lot_party_free(lot, p);
}

/*
 * WaitGroup Add as libgosync's, in the kernel, with the caller's share
 * changed in the same step (or, with GOSYNC_WG_ADOPT, the share alone).
 */
static long lot_wg_add(struct gosync_lot *lot,
		       const struct gosync_lot_wg_add __user *uarg)
{
	atomic64_t *word = (atomic64_t *)&lot->words[0];
	struct gosync_wakeups wk = { 0 };
	struct gosync_lot_wg_add arg;
	struct lot_party *fresh, *p;
	u64 counter, new;
	s64 old, share;
	long ret = -EAGAIN;
	bool done;
	int tries;

	if (lot->kind != GOSYNC_LOT_WAITGROUP)
		return -ENOTTY;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved || (arg.flags & ~GOSYNC_WG_ADOPT) ||
	    ((arg.flags & GOSYNC_WG_ADOPT) && arg.delta <= 0))
		return -EINVAL;
	if (arg.delta < -(s64)GOSYNC_WG_COUNTER ||
	    arg.delta > (s64)GOSYNC_WG_COUNTER)
		return -EOVERFLOW;
	fresh = arg.delta > 0 ? kzalloc(sizeof(*fresh), GOSYNC_GFP) : NULL;

	spin_lock(&lot->lock);
	p = arg.delta > 0 ? lot_party_get(lot, &fresh, &wk) :
			    lot_party_mine(lot, &wk);
	if (IS_ERR(p)) {
		ret = PTR_ERR(p);
		goto out;
	}
	share = (p ? p->share : 0) + arg.delta;
	if (share < 0) {
		ret = -EPERM;
	} else if (share > (s64)GOSYNC_WG_COUNTER) {
		ret = -EOVERFLOW;
	} else if (!arg.delta) {
		ret = share;
	} else if (arg.flags & GOSYNC_WG_ADOPT) {
		counter = READ_ONCE(lot->words[0]) & GOSYNC_WG_COUNTER;
		ret = lot->wg_shares + arg.delta > counter ? -EOVERFLOW : share;
	} else {
		old = atomic64_read(word);
		for (tries = 0; tries < GOSYNC_SEM_TRIES; tries++) {
			counter = ((u64)old & GOSYNC_WG_COUNTER) + arg.delta;
			if (counter > GOSYNC_WG_COUNTER) {	/* or below 0 */
				ret = -EOVERFLOW;
				break;
			}
			new = ((u64)old & ~GOSYNC_WG_COUNTER) | counter;
			done = !counter && (old & GOSYNC_WG_WAITERS) &&
			       !(old & GOSYNC_WG_BROKEN);
			if (done)	/* the generation ends */
				new = (new & ~GOSYNC_WG_WAITERS) +
				      (1ULL << GOSYNC_WG_GEN_SHIFT);
			if (atomic64_try_cmpxchg(word, &old, (s64)new)) {
				if (done)
					lot_serve_index(lot, 0, &wk);
				ret = share;
				break;
			}
		}
	}
	if (ret >= 0 && arg.delta) {
		lot->wg_shares += arg.delta;
		p->share = share;
	}
	if (p)
		lot_party_put(lot, p);
out:
	spin_unlock(&lot->lock);
	gosync_wake_all(&wk);
	kfree(fresh);
	return ret;
}

/* A barrier party arrives (see the uapi header). */
static long lot_arrive(struct gosync_lot *lot,
		       const struct gosync_lot_arrive __user *uarg)
{
	atomic64_t *word = (atomic64_t *)&lot->words[0];
	struct gosync_wakeups wk = { 0 };
	struct gosync_lot_arrive arg;
	struct gosync_blocked blk;
	struct gosync_cancel cancel;
	struct gosync_lot_park park;
	struct lot_party *fresh, *p;
	long ret;
	s64 old;
	int tries;

	if (lot->kind != GOSYNC_LOT_BARRIER)
		return -ENOTTY;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	/* Parties must fit the arrivals' field, so it never carries. */
	if ((arg.flags & ~(GOSYNC_CLOCK_REALTIME | GOSYNC_WAIT_CANCEL_FD)) ||
	    !lot->param || lot->param > GOSYNC_BARRIER_COUNT)
		return -EINVAL;
	/* Set up before arriving: once arrived, the call must not fail. */
	ret = gosync_cancel_init(&cancel, arg.flags, arg.cancel_fd);
	if (ret)
		return ret;
	fresh = kzalloc(sizeof(*fresh), GOSYNC_GFP);

	ret = -EAGAIN;
	spin_lock(&lot->lock);
	p = lot_party_get(lot, &fresh, &wk);
	if (IS_ERR(p)) {
		ret = PTR_ERR(p);
		goto out;
	}
	old = atomic64_read(word);
	for (tries = 0; tries < GOSYNC_SEM_TRIES; tries++) {
		if ((u64)old >> GOSYNC_BARRIER_ROUND_SHIFT != arg.round)
			break;
		if (old & GOSYNC_BARRIER_BROKEN) {
			ret = -EPIPE;
			break;
		}
		if (((u64)old & GOSYNC_BARRIER_COUNT) >= lot->param) {
			ret = -EBUSY;
			break;
		}
		if (atomic64_try_cmpxchg(word, &old, old + 1)) {
			p->round = (u64)old >> GOSYNC_BARRIER_ROUND_SHIFT;
			p->arrived = true;
			ret = ((u64)old & GOSYNC_BARRIER_COUNT) + 1 == lot->param;
			break;
		}
	}
	if (ret < 0)
		lot_party_put(lot, p);
out:
	spin_unlock(&lot->lock);
	gosync_wake_all(&wk);
	kfree(fresh);
	if (ret) {
		gosync_cancel_exit(&cancel);
		return ret;
	}

	/* Arrived, not last: park for the end of the round, as a park does. */
	park = (struct gosync_lot_park) {
		.flags = arg.flags, .mask = ~GOSYNC_BARRIER_COUNT,
		.expected = (u64)old & ~GOSYNC_BARRIER_COUNT,
		.deadline = arg.deadline,
	};
	lot_blocked_init(lot, &park, &cancel, &blk);
	ret = lot_park_word(lot, &park, 0, &cancel, &blk);
	/* The round moved on already, or a (stray) hand-off's token. */
	if (ret == -EAGAIN || ret > 0)
		return 0;
	return ret == -ERESTARTSYS ? -EINTR : ret;
}

/*
 * A flush of @file (see gosync_flush_is_last()): undo the caller's part
 * if its process can no longer keep it (it exits, execs, or closes its
 * last descriptor of the lot), and the parts of processes that are gone.
 */
static void lot_flush_parties(struct gosync_lot *lot, struct file *file)
{
	u64 exec_id = READ_ONCE(current->self_exec_id);
	struct gosync_wakeups wk = { 0 };
	struct lot_party *p, *next;
	struct pid *tgid = task_tgid(current);
	bool gone;

	if (!READ_ONCE(lot->nr_parties))
		return;
	gone = current->in_execve || gosync_flush_is_last(file);
	spin_lock(&lot->lock);
	list_for_each_entry_safe(p, next, &lot->parties, node) {
		if (p->tgid == tgid ? gone || p->exec_id != exec_id :
		    !pid_has_task(p->tgid, PIDTYPE_TGID)) {
			lot_party_undo(lot, p, &wk);
			lot_party_free(lot, p);
		}
	}
	spin_unlock(&lot->lock);
	gosync_wake_all(&wk);
}

/*
 * The process @tgid exits or execs (its /dev/gosync descriptor's flush):
 * undo its part in every WaitGroup and barrier, also where it keeps a
 * descriptor across the exec, which no flush of the lot would see.
 */
static void lot_parties_leave(struct pid *tgid)
{
	struct gosync_wakeups wk = { 0 };
	struct gosync_lot *lot;
	struct lot_party *p;

	lockdep_assert_held(&robust_mutex);
	if (!atomic_read(&party_records))
		return;
	list_for_each_entry(lot, &death_lots, death_node) {
		if (!lot_has_parties(lot) || !READ_ONCE(lot->nr_parties))
			continue;
		spin_lock(&lot->lock);
		list_for_each_entry(p, &lot->parties, node) {
			if (p->tgid == tgid) {
				lot_party_undo(lot, p, &wk);
				lot_party_free(lot, p);
				break;
			}
		}
		spin_unlock(&lot->lock);
		gosync_wake_all(&wk);
	}
}

static_assert(offsetof(struct gosync_lot_status, flags) ==
	      _IOC_SIZE(GOSYNC_IOC_LOT_STATUS_V1));

static long lot_status(struct gosync_lot *lot,
		       struct gosync_lot_status __user *uarg, size_t size)
{
	struct gosync_lot_status st = {
		.kind = lot->kind, .param = lot->param,
		.flags = lot_flags_checked(READ_ONCE(lot->flags)) ?
			 GOSYNC_LOT_CHECKED : 0,
	};

	spin_lock(&lot->lock);
	st.parked = lot->nr_parked;
	spin_unlock(&lot->lock);
	st.parks = atomic64_read(&lot->parks);
	st.unparks = atomic64_read(&lot->unparks);
	st.woken = atomic64_read(&lot->woken);
	return copy_to_user(uarg, &st, size) ? -EFAULT : 0;
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
	case GOSYNC_IOC_LOT_STATUS_V1:
		if (lot_is_robust(lot) && !(READ_ONCE(lot->flags) &
					    LOT_LEGACY_USER)) {
			mutex_lock(&robust_mutex);
			WRITE_ONCE(lot->flags, lot->flags | LOT_LEGACY_USER);
			mutex_unlock(&robust_mutex);
		}
		fallthrough;
	case GOSYNC_IOC_LOT_STATUS:
		return lot_status(lot, argp, _IOC_SIZE(cmd));
	case GOSYNC_IOC_LOT_COND_WAIT:
		return lot_cond_wait(lot, argp);
	case GOSYNC_IOC_LOT_COND_NOTIFY:
		return lot_cond_notify(lot, argp);
	case GOSYNC_IOC_LOT_WG_ADD:
		return lot_wg_add(lot, argp);
	case GOSYNC_IOC_LOT_ARRIVE:
		return lot_arrive(lot, argp);
	default:
		return -ENOTTY;
	}
}

static void lot_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gosync_lot *lot = file->private_data;
	u64 notified;
	u32 parked, gaps;

	spin_lock(&lot->lock);
	parked = lot->nr_parked;
	notified = lot->cond_notified;
	gaps = lot->nr_cond_gaps;
	spin_unlock(&lot->lock);
	seq_puts(m, "gosync-type:\tlot\n");
	seq_printf(m, "id:\t%llu\n", lot->obj.id);
	seq_printf(m, "kind:\t%s\n", lot_kind_names[lot->kind]);
	if (lot_is_robust(lot))
		seq_printf(m, "checked:\t%d\n",
			   lot_flags_checked(READ_ONCE(lot->flags)));
	seq_printf(m, "param:\t%llu\n", lot->param);
	seq_printf(m, "parked:\t%u\n", parked);
	seq_printf(m, "parks:\t%lld\n", (long long)atomic64_read(&lot->parks));
	seq_printf(m, "unparks:\t%lld\n",
		   (long long)atomic64_read(&lot->unparks));
	seq_printf(m, "woken:\t%lld\n", (long long)atomic64_read(&lot->woken));
	if (lot_has_parties(lot)) {
		spin_lock(&lot->lock);
		seq_printf(m, "parties:\t%u\n", lot->nr_parties);
		seq_printf(m, "party-deaths:\t%llu\n", lot->party_deaths);
		if (lot->kind == GOSYNC_LOT_WAITGROUP)
			seq_printf(m, "wg-shares:\t%llu\n", lot->wg_shares);
		spin_unlock(&lot->lock);
	}
	if (lot->kind == GOSYNC_LOT_COND) {
		seq_printf(m, "cond-tickets:\t%llu\n",
			   READ_ONCE(lot->words[GOSYNC_COND_TICKETS]));
		seq_printf(m, "cond-notified:\t%llu\n", notified);
		seq_printf(m, "cond-gaps:\t%u\n", gaps);
	}
}

/* What the generic release frees not: a Cond's gaps, party records. */
static void lot_destroy(struct gosync_obj *obj)
{
	struct gosync_lot *lot = container_of(obj, struct gosync_lot, obj);
	struct lot_party *p, *next;

	/* First off the list, so that no death walks the records freed. */
	if (lot_deaths_matter(lot)) {
		mutex_lock(&robust_mutex);
		list_del(&lot->death_node);
		mutex_unlock(&robust_mutex);
	}
	cond_free_gaps(&lot->cond_gaps);
	list_for_each_entry_safe(p, next, &lot->parties, node)
		lot_party_free(lot, p);
}

/*
 * A process that exits or execs closes its descriptors. One of its
 * threads may have died between freeing a Mutex or RWMutex word and
 * unparking a waiter: if the word is free and waiters are parked, unpark
 * one (all for NOTRECOVERABLE), and an RWMutex's waiters on its other
 * words. At worst a waiter wakes for nothing: libgosync's waiters always
 * re-read their word. A word a dead thread holds is the death walk's.
 */
static int lot_flush(struct file *file, fl_owner_t owner)
{
	struct gosync_lot *lot = file->private_data;
	u64 v;

	lot_flush_parties(lot, file);
	if (!lot_is_robust(lot) || !current_leaves_program())
		return 0;
	v = READ_ONCE(lot->words[0]);
	if (!(v & GOSYNC_LOCK_LOCKED))
		lot_wake_index(lot, 0, v & GOSYNC_LOCK_NOTRECOVERABLE ?
			       GOSYNC_LOT_ALL : 1, false);
	if (lot->kind == GOSYNC_LOT_RWMUTEX)
		lot_wake_index(lot, 0, GOSYNC_LOT_ALL, true);
	return 0;
}

static const struct file_operations lot_fops =
	GOSYNC_OBJ_FOPS(lot_ioctl, NULL, lot_show_fdinfo, lot_flush);

long gosync_lot_create(const struct gosync_lot_create __user *uarg)
{
	struct gosync_lot_create arg;
	struct gosync_lot *lot;
	bool robust;
	u64 id;
	int fd;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if ((arg.flags & ~GOSYNC_LOT_CHECKED) || arg.kind > GOSYNC_LOT_KIND_MAX)
		return -EINVAL;
	robust = arg.kind == GOSYNC_LOT_MUTEX || arg.kind == GOSYNC_LOT_RWMUTEX;
	if ((arg.flags & GOSYNC_LOT_CHECKED) && !robust)
		return -EINVAL;
	if (robust && READ_ONCE(detect_deadlocks))
		arg.flags |= GOSYNC_LOT_CHECKED;

	lot = gosync_obj_alloc(sizeof(*lot), GOSYNC_TRACE_LOT);
	if (!lot)
		return -ENOMEM;
	lot->words = lot->obj.shared;
	lot->kind = arg.kind;
	lot->flags = arg.flags;
	lot->param = arg.param;
	spin_lock_init(&lot->lock);
	INIT_LIST_HEAD(&lot->parked);
	INIT_LIST_HEAD(&lot->cond_gaps);
	INIT_LIST_HEAD(&lot->parties);
	lot->obj.queue = &lot->parked;
	lot->obj.destroy = lot_destroy;
	if (lot_deaths_matter(lot)) {
		mutex_lock(&robust_mutex);
		list_add_tail(&lot->death_node, &death_lots);
		mutex_unlock(&robust_mutex);
	}
	id = lot->obj.id;	/* the fd may be closed at once: lot is gone */
	fd = gosync_obj_install(&lot->obj, "[gosync-lot]", &lot_fops);
	if (fd >= 0)
		trace_gosync_obj_create(id, GOSYNC_TRACE_LOT, fd, arg.kind,
					arg.param, 0);
	return fd;
}
