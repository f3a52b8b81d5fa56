/* SPDX-License-Identifier: GPL-2.0 */
/*
 * gosync tracepoints: the events/gosync/ directory of tracefs, perf's
 * gosync:* events, bpftrace's tracepoint:gosync:*.
 *
 * Every event names its object by @obj, an id the module gives each
 * object when it is made (1, 2, 3, ... since the module was loaded,
 * never reused while it stays loaded), the same in every event: a
 * gosync_obj_create event binds it to the fd the creator got. No kernel
 * pointer is ever recorded.
 *
 * An operation that sleeps in the kernel shows as a gosync_block (about
 * to sleep) and, unless it times out or is interrupted, a gosync_wake of
 * the same object by whoever completed it; gosync_kick, gosync_park,
 * gosync_unpark, gosync_select_commit, gosync_chan_close and
 * gosync_timer_fire add what is particular to an object family. The
 * fields are described at each event; README.md has examples.
 *
 * With CONFIG_TRACEPOINTS off (a kernel without tracing) every trace_*()
 * call compiles to nothing.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM gosync

#if !defined(GOSYNC_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define GOSYNC_TRACE_H

#include <linux/tracepoint.h>
#include <linux/types.h>
#include <uapi/gosync.h>

#ifndef GOSYNC_TRACE_CONSTANTS
#define GOSYNC_TRACE_CONSTANTS

/* @type of gosync_obj_create and gosync_obj_destroy. */
#define GOSYNC_TRACE_SEM	0
#define GOSYNC_TRACE_CHAN	1
#define GOSYNC_TRACE_TIMER	2
#define GOSYNC_TRACE_LOT	3

/* @kind of gosync_obj_create: GOSYNC_LOT_* for a lot, else this. */
#define GOSYNC_TRACE_NO_KIND	0xff

/* @op of gosync_block, gosync_wake and gosync_kick. */
#define GOSYNC_TRACE_SEND	0
#define GOSYNC_TRACE_RECV	1
#define GOSYNC_TRACE_SELECT	2
#define GOSYNC_TRACE_ACQUIRE	3
#define GOSYNC_TRACE_RELEASE	4
#define GOSYNC_TRACE_PARK	5
#define GOSYNC_TRACE_COND_WAIT	6
#define GOSYNC_TRACE_KICK	7

#endif /* GOSYNC_TRACE_CONSTANTS */

#define gosync_trace_type_name(type)				\
	__print_symbolic(type,					\
			 { GOSYNC_TRACE_SEM, "sem" },		\
			 { GOSYNC_TRACE_CHAN, "chan" },		\
			 { GOSYNC_TRACE_TIMER, "timer" },	\
			 { GOSYNC_TRACE_LOT, "lot" })

#define gosync_trace_op_name(op)				\
	__print_symbolic(op,					\
			 { GOSYNC_TRACE_SEND, "send" },		\
			 { GOSYNC_TRACE_RECV, "recv" },		\
			 { GOSYNC_TRACE_SELECT, "select" },	\
			 { GOSYNC_TRACE_ACQUIRE, "acquire" },	\
			 { GOSYNC_TRACE_RELEASE, "release" },	\
			 { GOSYNC_TRACE_PARK, "park" },		\
			 { GOSYNC_TRACE_COND_WAIT, "cond_wait" }, \
			 { GOSYNC_TRACE_KICK, "kick" })

#define gosync_trace_kind_name(kind)				\
	__print_symbolic(kind,					\
			 { GOSYNC_LOT_PLAIN, "plain" },		\
			 { GOSYNC_LOT_MUTEX, "mutex" },		\
			 { GOSYNC_LOT_RWMUTEX, "rwmutex" },	\
			 { GOSYNC_LOT_WAITGROUP, "waitgroup" },	\
			 { GOSYNC_LOT_ONCE, "once" },		\
			 { GOSYNC_LOT_COND, "cond" },		\
			 { GOSYNC_LOT_BARRIER, "barrier" },	\
			 { GOSYNC_TRACE_NO_KIND, "-" })

/*
 * An object was made and got descriptor @fd. @param: a semaphore's size,
 * a channel's (or timer's) element size, a lot's param; @cap: a
 * channel's capacity (1 for a timer, 0 otherwise); @kind: a lot's kind.
 */
TRACE_EVENT(gosync_obj_create,
	TP_PROTO(u64 obj, u32 type, int fd, u32 kind, u64 param, u32 cap),
	TP_ARGS(obj, type, fd, kind, param, cap),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u64, param)
		__field(u32, type)
		__field(int, fd)
		__field(u32, kind)
		__field(u32, cap)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->param = param;
		__entry->type = type;
		__entry->fd = fd;
		__entry->kind = kind;
		__entry->cap = cap;
	),
	TP_printk("obj=%llu type=%s fd=%d kind=%s param=%llu cap=%u",
		  __entry->obj, gosync_trace_type_name(__entry->type),
		  __entry->fd, gosync_trace_kind_name(__entry->kind),
		  __entry->param, __entry->cap)
);

/* The last reference to the object is gone: it is freed. */
TRACE_EVENT(gosync_obj_destroy,
	TP_PROTO(u64 obj, u32 type),
	TP_ARGS(obj, type),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u32, type)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->type = type;
	),
	TP_printk("obj=%llu type=%s", __entry->obj,
		  gosync_trace_type_name(__entry->type))
);

/*
 * The calling task is queued on @obj and about to sleep for @op. @index:
 * a select's case on this channel (a select queued on several channels
 * logs one event per channel), a park's word, a Cond wait's ticket (low
 * 32 bits); @count: a select's number of cases, the permits an acquire
 * asks for, 1 otherwise. Semaphores and lots log it under the object's
 * lock, before any wake of the waiter; channels after queueing on every
 * case, outside the channels' locks, so that a partner that completes
 * the waiter at once may log its gosync_wake first.
 */
TRACE_EVENT(gosync_block,
	TP_PROTO(u64 obj, u32 op, u32 index, u64 count),
	TP_ARGS(obj, op, index, count),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u64, count)
		__field(u32, op)
		__field(u32, index)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->count = count;
		__entry->op = op;
		__entry->index = index;
	),
	TP_printk("obj=%llu op=%s index=%u count=%llu", __entry->obj,
		  gosync_trace_op_name(__entry->op), __entry->index,
		  __entry->count)
);

/*
 * @count waiters of @obj blocked for @op were chosen and are woken.
 * @handoff: what they waited for was passed to them in the same step,
 * so that they return without looking again: a value from a waiting
 * sender to a waiting receiver or the reverse (not through a channel's
 * buffer, nor a close), a semaphore's permits (always), a lock word
 * (GOSYNC_LOT_UNPARK_HANDOFF).
 */
TRACE_EVENT(gosync_wake,
	TP_PROTO(u64 obj, u32 op, u32 count, bool handoff),
	TP_ARGS(obj, op, count, handoff),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u32, op)
		__field(u32, count)
		__field(bool, handoff)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->op = op;
		__entry->count = count;
		__entry->handoff = handoff;
	),
	TP_printk("obj=%llu op=%s count=%u handoff=%d", __entry->obj,
		  gosync_trace_op_name(__entry->op), __entry->count,
		  __entry->handoff)
);

/*
 * A select (GOSYNC_IOC_SELECT) completed case @index of @ncases, on
 * channel @obj, with @result (a send: 0 or -EPIPE; a receive: 1 for a
 * value, 0 for closed). @tries: the cases it tried, in its random
 * order, nil ones included, until one was ready (all of them when it had
 * to wait); @blocked: it slept and a partner completed it.
 */
TRACE_EVENT(gosync_select_commit,
	TP_PROTO(u64 obj, u32 index, u32 ncases, u32 tries, bool blocked,
		 int result),
	TP_ARGS(obj, index, ncases, tries, blocked, result),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u32, index)
		__field(u32, ncases)
		__field(u32, tries)
		__field(int, result)
		__field(bool, blocked)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->index = index;
		__entry->ncases = ncases;
		__entry->tries = tries;
		__entry->result = result;
		__entry->blocked = blocked;
	),
	TP_printk("obj=%llu index=%u ncases=%u tries=%u blocked=%d result=%d",
		  __entry->obj, __entry->index, __entry->ncases,
		  __entry->tries, __entry->blocked, __entry->result)
);

/*
 * Channel @obj is closed with @len values still buffered (receivers get
 * them first), @receivers and @senders blocked on it (they are woken:
 * receivers with values or "closed", senders with -EPIPE).
 */
TRACE_EVENT(gosync_chan_close,
	TP_PROTO(u64 obj, u32 len, u32 receivers, u32 senders),
	TP_ARGS(obj, len, receivers, senders),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u32, len)
		__field(u32, receivers)
		__field(u32, senders)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->len = len;
		__entry->receivers = receivers;
		__entry->senders = senders;
	),
	TP_printk("obj=%llu len=%u receivers=%u senders=%u", __entry->obj,
		  __entry->len, __entry->receivers, __entry->senders)
);

/*
 * Timer channel @obj ticks: @value, its time in ns (the arming task's
 * clock), went to a waiting receiver (@delivered) or is held until
 * received; @period: 0 for a one-shot timer.
 */
TRACE_EVENT(gosync_timer_fire,
	TP_PROTO(u64 obj, u64 value, u64 period, bool delivered),
	TP_ARGS(obj, value, period, delivered),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u64, value)
		__field(u64, period)
		__field(bool, delivered)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->value = value;
		__entry->period = period;
		__entry->delivered = delivered;
	),
	TP_printk("obj=%llu value=%llu period=%llu delivered=%d",
		  __entry->obj, __entry->value, __entry->period,
		  __entry->delivered)
);

/*
 * Userspace entered the kernel for @op on an object that has a fast path
 * on its shared page: a channel's KICK (a push or pop saw a flag), a
 * send or receive on a buffered channel, a semaphore's acquire or
 * release. @word: the shared word as the kernel found it (a channel's
 * tail word with its flags, a semaphore's state word).
 */
TRACE_EVENT(gosync_kick,
	TP_PROTO(u64 obj, u32 op, u64 word),
	TP_ARGS(obj, op, word),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u64, word)
		__field(u32, op)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->word = word;
		__entry->op = op;
	),
	TP_printk("obj=%llu op=%s word=%#llx", __entry->obj,
		  gosync_trace_op_name(__entry->op), __entry->word)
);

/*
 * A park on word @index of lot @obj, expecting @expected under its mask,
 * returns @result: 1 after a hand-off, 0 when unparked, -EAGAIN when the
 * word had changed (it did not sleep), or the wait's error.
 */
TRACE_EVENT(gosync_park,
	TP_PROTO(u64 obj, u32 index, u64 expected, int result),
	TP_ARGS(obj, index, expected, result),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u64, expected)
		__field(u32, index)
		__field(int, result)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->expected = expected;
		__entry->index = index;
		__entry->result = result;
	),
	TP_printk("obj=%llu index=%u expected=%#llx result=%d", __entry->obj,
		  __entry->index, __entry->expected, __entry->result)
);

/*
 * An unpark of up to @count (GOSYNC_LOT_ALL: every) threads parked on
 * word @index of lot @obj woke @woken of them, with @handoff
 * (GOSYNC_LOT_UNPARK_HANDOFF).
 */
TRACE_EVENT(gosync_unpark,
	TP_PROTO(u64 obj, u32 index, u32 count, u32 woken, bool handoff),
	TP_ARGS(obj, index, count, woken, handoff),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u32, index)
		__field(u32, count)
		__field(u32, woken)
		__field(bool, handoff)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->index = index;
		__entry->count = count;
		__entry->woken = woken;
		__entry->handoff = handoff;
	),
	TP_printk("obj=%llu index=%u count=%u woken=%u handoff=%d",
		  __entry->obj, __entry->index, __entry->count,
		  __entry->woken, __entry->handoff)
);

/*
 * Thread @tid's lock of Mutex lot @obj was refused with -EDEADLK: the
 * lock is held by @holder (the same thread for a relock), and the
 * wait-for chain from it comes back to @tid after @length links through
 * checked lots; @last is the lot of the last link, one that @tid holds
 * (@obj itself for a relock).
 */
TRACE_EVENT(gosync_deadlock,
	TP_PROTO(u64 obj, u64 last, pid_t tid, pid_t holder, u32 length),
	TP_ARGS(obj, last, tid, holder, length),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(u64, last)
		__field(pid_t, tid)
		__field(pid_t, holder)
		__field(u32, length)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->last = last;
		__entry->tid = tid;
		__entry->holder = holder;
		__entry->length = length;
	),
	TP_printk("obj=%llu last=%llu tid=%d holder=%d length=%u",
		  __entry->obj, __entry->last, __entry->tid, __entry->holder,
		  __entry->length)
);

/*
 * The stall watchdog: thread @tid has been blocked for @blocked_ms in
 * @op on object @obj of @type; @holder holds it (a Mutex wait whose
 * holder is known), else 0.
 */
TRACE_EVENT(gosync_stall,
	TP_PROTO(u64 obj, u32 type, u32 op, pid_t tid, s64 blocked_ms,
		 pid_t holder),
	TP_ARGS(obj, type, op, tid, blocked_ms, holder),
	TP_STRUCT__entry(
		__field(u64, obj)
		__field(s64, blocked_ms)
		__field(u32, type)
		__field(u32, op)
		__field(pid_t, tid)
		__field(pid_t, holder)
	),
	TP_fast_assign(
		__entry->obj = obj;
		__entry->blocked_ms = blocked_ms;
		__entry->type = type;
		__entry->op = op;
		__entry->tid = tid;
		__entry->holder = holder;
	),
	TP_printk("obj=%llu type=%s op=%s tid=%d blocked_ms=%lld holder=%d",
		  __entry->obj, gosync_trace_type_name(__entry->type),
		  gosync_trace_op_name(__entry->op), __entry->tid,
		  __entry->blocked_ms, __entry->holder)
);

#endif /* GOSYNC_TRACE_H */

/* An out-of-tree header: kmod/Kbuild puts this directory on the path. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE gosync_trace
#include <trace/define_trace.h>
