// SPDX-License-Identifier: GPL-2.0
/*
 * gosync: who waits on what. Every task that sleeps in a gosync wait is
 * on one table while it sleeps (struct gosync_blocked, on its stack);
 * from it come the wait-for view in debugfs (gosync/waits), the stall
 * watchdog (module parameter stall_seconds) and, in kmod/lot.c, the
 * deadlock detection of checked Mutexes.
 *
 * The table costs a blocking call one short critical section on the way
 * in and one on the way out: only calls that sleep pay it, never a fast
 * path nor a call that completes at once.
 */
#include <linux/debugfs.h>
#include <linux/hashtable.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "gosync.h"
#include "gosync_trace.h"

/*
 * Protects blocked_tasks (membership) and every entered record's
 * @stall_reported. Nests inside the robust owners' mutex (the deadlock
 * walk and the readers below take that first), never around any other
 * lock.
 */
static DEFINE_SPINLOCK(blocked_lock);
static DEFINE_HASHTABLE(blocked_tasks, 8);

static const char *const type_names[] = {
	[GOSYNC_TRACE_SEM] = "sem",
	[GOSYNC_TRACE_CHAN] = "chan",
	[GOSYNC_TRACE_TIMER] = "timer",
	[GOSYNC_TRACE_LOT] = "lot",
};

static const char *const op_names[] = {
	[GOSYNC_TRACE_SEND] = "send",
	[GOSYNC_TRACE_RECV] = "recv",
	[GOSYNC_TRACE_SELECT] = "select",
	[GOSYNC_TRACE_ACQUIRE] = "acquire",
	[GOSYNC_TRACE_RELEASE] = "release",
	[GOSYNC_TRACE_PARK] = "park",
	[GOSYNC_TRACE_COND_WAIT] = "cond-wait",
	[GOSYNC_TRACE_KICK] = "kick",
};

static const char *name_of(const char *const *names, size_t nr, u32 i)
{
	return i < nr && names[i] ? names[i] : "-";
}

#define NAME_OF(names, i)	name_of(names, ARRAY_SIZE(names), i)

void gosync_blocked_init(struct gosync_blocked *b, u64 obj, u32 type,
			 u32 kind, u32 op, u32 index,
			 const struct gosync_deadline *dl,
			 const struct gosync_cancel *cancel)
{
	*b = (struct gosync_blocked) {
		.task = current, .obj = obj, .type = type, .kind = kind,
		.op = op, .index = index,
		.forever = dl->forever && !(cancel && cancel->file),
	};
}

void gosync_blocked_lock(void)
{
	spin_lock(&blocked_lock);
}

void gosync_blocked_unlock(void)
{
	spin_unlock(&blocked_lock);
}

/* Enter @b, with blocked_lock held (kmod/lot.c's deadlock check too). */
void gosync_blocked_enter_locked(struct gosync_blocked *b)
{
	lockdep_assert_held(&blocked_lock);
	b->since = ktime_get();
	b->entered = true;
	hash_add(blocked_tasks, &b->node, (unsigned long)b->task);
}

/*
 * Enter @b on the table, unless it is already (a robust park enters it
 * under the owners' mutex, with its deadlock check).
 */
void gosync_blocked_enter(struct gosync_blocked *b)
{
	if (b->entered)
		return;
	spin_lock(&blocked_lock);
	gosync_blocked_enter_locked(b);
	spin_unlock(&blocked_lock);
}

void gosync_blocked_leave(struct gosync_blocked *b)
{
	if (!b->entered)
		return;
	spin_lock(&blocked_lock);
	hash_del(&b->node);
	b->entered = false;
	spin_unlock(&blocked_lock);
}

/* @task's record, with blocked_lock held; NULL if it is not blocked. */
struct gosync_blocked *gosync_blocked_of(const struct task_struct *task)
{
	struct gosync_blocked *b;

	lockdep_assert_held(&blocked_lock);
	hash_for_each_possible(blocked_tasks, b, node, (unsigned long)task)
		if (b->task == task)
			return b;
	return NULL;
}

/*
 * The holder of a record's lock word, under the owners' mutex and RCU:
 * NULL when it is not a lock wait or the holder is not known.
 */
static struct task_struct *blocked_holder(const struct gosync_blocked *b)
{
	return b->lock_word ? gosync_lock_holder(READ_ONCE(*b->lock_word)) :
			      NULL;
}

/*
 * debugfs "gosync/waits" (root only): every task blocked in a gosync
 * wait, one a line (see the header line), pids as the initial pid
 * namespace numbers them.
 */
static int waits_show(struct seq_file *m, void *unused)
{
	struct gosync_blocked *b;
	ktime_t now = ktime_get();
	int bkt;

	seq_puts(m, "pid\ttgid\tcomm\ttype\tkind\tid\top\tword\tsince_ms\tforever\tholder\tholder_tgid\n");
	gosync_robust_lock();
	spin_lock(&blocked_lock);
	rcu_read_lock();
	hash_for_each(blocked_tasks, bkt, b, node) {
		struct task_struct *holder = blocked_holder(b);

		seq_printf(m, "%d\t%d\t", task_pid_nr(b->task),
			   task_tgid_nr(b->task));
		seq_escape(m, b->task->comm, " \t\n\\");
		seq_printf(m, "\t%s\t%s\t%llu\t%s\t",
			   b->op == GOSYNC_TRACE_SELECT ? "select" :
			   NAME_OF(type_names, b->type),
			   gosync_lot_kind_name(b->kind), b->obj,
			   NAME_OF(op_names, b->op));
		if (b->type == GOSYNC_TRACE_LOT &&
		    b->op != GOSYNC_TRACE_COND_WAIT)
			seq_printf(m, "%u", b->index);
		else
			seq_putc(m, '-');
		seq_printf(m, "\t%lld\t%d\t", ktime_ms_delta(now, b->since),
			   b->forever);
		if (holder)
			seq_printf(m, "%d\t%d\n", task_pid_nr(holder),
				   task_tgid_nr(holder));
		else
			seq_puts(m, "-\t-\n");
	}
	rcu_read_unlock();
	spin_unlock(&blocked_lock);
	gosync_robust_unlock();
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(waits);

/*
 * The stall watchdog, off by default: once a second, report each wait
 * that has lasted more than stall_seconds (once per wait).
 */
static unsigned int stall_seconds;
static void stall_scan(struct work_struct *work);
static DECLARE_DELAYED_WORK(stall_work, stall_scan);
/*
 * Protects stall_live: the watchdog starts only between module init and
 * exit (a parameter given to insmod is set before the init runs, and a
 * load that fails after that never runs the exit).
 */
static DEFINE_MUTEX(stall_mutex);
static bool stall_live;

/* Links of a wait-for chain a stall report follows. */
#define STALL_CHAIN	4
/* Stalls reported per scan; the rest wait for the next one. */
#define STALL_BATCH	8

struct stall_report {
	pid_t pid[STALL_CHAIN + 1];
	u64 obj[STALL_CHAIN];
	u32 op[STALL_CHAIN];
	u32 type[STALL_CHAIN];
	u32 links;
	s64 blocked_ms;
	char comm[TASK_COMM_LEN];
};

/*
 * Follow @b's wait-for chain into @r: the task, the object it waits on,
 * its holder, what the holder waits on, and so on.
 */
static void stall_chain(struct gosync_blocked *b, struct stall_report *r,
			ktime_t now)
{
	struct task_struct *holder;

	r->blocked_ms = ktime_ms_delta(now, b->since);
	strscpy(r->comm, b->task->comm, sizeof(r->comm));
	r->pid[0] = task_pid_nr(b->task);
	r->links = 0;
	while (b && r->links < STALL_CHAIN) {
		r->obj[r->links] = b->obj;
		r->op[r->links] = b->op;
		r->type[r->links] = b->op == GOSYNC_TRACE_SELECT ?
				    GOSYNC_TRACE_CHAN : b->type;
		holder = blocked_holder(b);
		r->links++;
		r->pid[r->links] = holder ? task_pid_nr(holder) : 0;
		if (!holder)
			break;
		b = gosync_blocked_of(holder);
	}
}

static void stall_print(const struct stall_report *r)
{
	char line[256];
	int len, i;

	len = scnprintf(line, sizeof(line), "pid %d (%s) blocked %lld s",
			r->pid[0], r->comm,
			div_s64(r->blocked_ms, MSEC_PER_SEC));
	for (i = 0; i < r->links; i++) {
		len += scnprintf(line + len, sizeof(line) - len,
				 "%s on %s %llu %s", i ? ", which waits" : "",
				 NAME_OF(type_names, r->type[i]), r->obj[i],
				 NAME_OF(op_names, r->op[i]));
		if (r->pid[i + 1])
			len += scnprintf(line + len, sizeof(line) - len,
					 " -> held by pid %d", r->pid[i + 1]);
	}
	pr_warn_ratelimited("gosync: stall: %s\n", line);
}

static void stall_scan(struct work_struct *work)
{
	unsigned int limit = READ_ONCE(stall_seconds);
	struct stall_report *r;
	struct gosync_blocked *b;
	ktime_t now = ktime_get();
	int bkt, n = 0, i;

	if (!limit)
		return;
	r = kcalloc(STALL_BATCH, sizeof(*r), GFP_KERNEL);
	if (!r)
		goto again;
	gosync_robust_lock();
	spin_lock(&blocked_lock);
	rcu_read_lock();
	hash_for_each(blocked_tasks, bkt, b, node) {
		if (b->stall_reported ||
		    ktime_ms_delta(now, b->since) <= (s64)limit * MSEC_PER_SEC)
			continue;
		if (n == STALL_BATCH)
			break;
		b->stall_reported = true;
		stall_chain(b, &r[n], now);
		trace_gosync_stall(b->obj, b->type, b->op, r[n].pid[0],
				   r[n].blocked_ms, r[n].pid[1]);
		n++;
	}
	rcu_read_unlock();
	spin_unlock(&blocked_lock);
	gosync_robust_unlock();
	for (i = 0; i < n; i++)
		stall_print(&r[i]);
	kfree(r);
again:
	schedule_delayed_work(&stall_work, HZ);
}

static int stall_seconds_set(const char *val, const struct kernel_param *kp)
{
	int ret = param_set_uint(val, kp);

	mutex_lock(&stall_mutex);
	if (!ret && READ_ONCE(stall_seconds) && stall_live)
		mod_delayed_work(system_wq, &stall_work, 0);
	mutex_unlock(&stall_mutex);
	return ret;
}

static const struct kernel_param_ops stall_seconds_ops = {
	.set = stall_seconds_set,
	.get = param_get_uint,
};
module_param_cb(stall_seconds, &stall_seconds_ops, &stall_seconds, 0644);
MODULE_PARM_DESC(stall_seconds,
		 "Report tasks blocked in a gosync wait longer than this (0: off)");

int gosync_observe_init(struct dentry *debugfs_dir)
{
	debugfs_create_file("waits", 0400, debugfs_dir, NULL, &waits_fops);
	mutex_lock(&stall_mutex);
	stall_live = true;
	if (READ_ONCE(stall_seconds))
		schedule_delayed_work(&stall_work, HZ);
	mutex_unlock(&stall_mutex);
	return 0;
}

/* Module exit: no task waits (each holds a file), the watchdog stops. */
void gosync_observe_exit(void)
{
	mutex_lock(&stall_mutex);
	stall_live = false;
	mutex_unlock(&stall_mutex);
	cancel_delayed_work_sync(&stall_work);
	WARN_ON_ONCE(!hash_empty(blocked_tasks));
}
