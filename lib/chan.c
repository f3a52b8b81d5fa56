// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: channels. The kernel holds the wait queues; a buffered
 * channel's ring is mapped here, and a send that finds room, or a receive
 * that finds a value, is done on it with atomics alone (the protocol is
 * written down above GOSYNC_CHAN_POS_MASK in the uapi header, and checked
 * by spin/chan.pml). Anything else is one ioctl.
 *
 * A receive into NULL discards the value, here (fast_pop() copies
 * nothing) and in the kernel (value address 0 on every path), so that
 * Go's <-ch behaves the same whichever path serves it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gosync.h"
#include "internal.h"

struct gs_chan {
	int fd;
	uint32_t elem_size;
	uint32_t capacity;
	/* The mapped ring, or NULL (unbuffered, a timer, or no mapping). */
	void *ring;
	char *slots;			/* in the ring, after its header page */
	size_t ring_bytes;
	uint32_t slot_size;
	uint64_t pos_mod;		/* positions wrap here */
	uint64_t cap_mask;		/* capacity - 1 for a power of two */
	_Atomic uint64_t *tail, *head;
};

#define FLAGS		(~GOSYNC_CHAN_POS_MASK)
/* How many lost races a fast push or pop takes before it asks the kernel. */
#define RING_TRIES	64
/* Flags that send the operation to the kernel instead. */
#define PUSH_SLOW	(GOSYNC_CHAN_CLOSED | GOSYNC_CHAN_SEND_WAITERS | \
			 GOSYNC_CHAN_RECV_WAITERS)
#define POP_SLOW	GOSYNC_CHAN_RECV_WAITERS
/*
 * Flags that ask for a kick once the operation is done: any waiter or
 * poller, of either direction, since one may have looked at the ring
 * while our reservation hid a slot from it (spin/chan.pml found the
 * poller that slept on a value behind a pop's reservation).
 */
#define ANY_KICK	(GOSYNC_CHAN_RECV_WAITERS | GOSYNC_CHAN_POLLED_IN | \
			 GOSYNC_CHAN_SEND_WAITERS | GOSYNC_CHAN_POLLED_OUT)
#define PUSH_KICK	ANY_KICK
#define POP_KICK	ANY_KICK
#define PUSHING		GOSYNC_CHAN_SEQ_PUSHING
#define POPPING		GOSYNC_CHAN_SEQ_POPPING
#define HOLE		GOSYNC_CHAN_SEQ_HOLE
#define STATES		GOSYNC_CHAN_SEQ_STATES

/*
 * This process's ring id (GOSYNC_IOC_CHAN_RING_ID: what its reservations
 * carry, so that the kernel can undo them if it dies), asked once; 0
 * until then, and again in a child after fork().
 */
static _Atomic uint32_t ring_id_cache;
static pthread_once_t ring_id_once = PTHREAD_ONCE_INIT;

static void ring_id_forget(void)
{
	atomic_store_explicit(&ring_id_cache, 0, memory_order_relaxed);
}

static void ring_id_init(void)
{
	(void)pthread_atfork(NULL, NULL, ring_id_forget);
}

static uint64_t ring_id_fetch(int fd)
{
	int id;

	pthread_once(&ring_id_once, ring_id_init);
	id = ioctl(fd, GOSYNC_IOC_CHAN_RING_ID);
	if (id <= 0)
		return 0;
	atomic_store_explicit(&ring_id_cache, (uint32_t)id,
			      memory_order_relaxed);
	return (uint32_t)id;
}

static inline uint64_t ring_id(gs_chan *ch)
{
	uint32_t id = atomic_load_explicit(&ring_id_cache,
					   memory_order_relaxed);

	return __builtin_expect(id != 0, 1) ? id : ring_id_fetch(ch->fd);
}

static void ring_map(gs_chan *ch)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t slots = (size_t)ch->slot_size * ch->capacity;
	void *ring;

	ch->ring_bytes = page + (slots + page - 1) / page * page;
	ring = mmap(NULL, ch->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		    ch->fd, 0);
	if (ring == MAP_FAILED)
		return;
	/* A module without reservations: the ring is not for us. */
	if (!ring_id_fetch(ch->fd)) {
		munmap(ring, ch->ring_bytes);
		return;
	}
	ch->ring = ring;
	ch->slots = (char *)ring + page;
	ch->tail = (_Atomic uint64_t *)((char *)ring +
		   offsetof(struct gosync_chan_shared, tail));
	ch->head = (_Atomic uint64_t *)((char *)ring +
		   offsetof(struct gosync_chan_shared, head));
}

static uint64_t pos_of(uint64_t word)
{
	return word & GOSYNC_CHAN_POS_MASK;
}

/* @pos + @n modulo M, for @n <= M (no division: this is the hot path). */
static uint64_t pos_next(gs_chan *ch, uint64_t pos, uint64_t n)
{
	pos += n;
	return pos >= ch->pos_mod ? pos - ch->pos_mod : pos;
}

/* The sequence of a slot free for @pos, or full with its value. */
static uint64_t seqno(uint64_t pos, bool full)
{
	return (pos << 1) | full;
}

/*
 * @a - @b on sequence numbers (modulo 2M), signed. Both are below 2M
 * unless the ring was scribbled on, and then any answer is as good (the
 * caller gives up after RING_TRIES).
 */
static int64_t seqdiff(gs_chan *ch, uint64_t a, uint64_t b)
{
	int64_t mod = (int64_t)(2 * ch->pos_mod), d = (int64_t)(a - b);

	if (d >= mod / 2)
		d -= mod;
	else if (d < -mod / 2)
		d += mod;
	return d;
}

static _Atomic uint64_t *slot_seq(gs_chan *ch, uint64_t pos)
{
	uint64_t slot = ch->cap_mask ? pos & ch->cap_mask : pos % ch->capacity;

	return (_Atomic uint64_t *)(ch->slots + (size_t)slot * ch->slot_size);
}

/*
 * Touch every page of @p (@size bytes) now, reading (or rewriting in
 * place, for a destination) one byte per page, so that a bad pointer
 * faults here, before a slot is claimed, and not while the ring waits on
 * a claimed slot.
 */
static void touch(const void *p, size_t size, bool write)
{
	size_t page = 4096;

	for (size_t off = 0; off < size; off += page) {
		volatile char *c = (volatile char *)p + off;

		if (write)
			*c = *c;
		else
			(void)*c;
	}
	if (size) {
		volatile char *c = (volatile char *)p + size - 1;

		if (write)
			*c = *c;
		else
			(void)*c;
	}
}

/* Copy a value; the common word-sized ones without a library call. */
static void copy_value(void *dst, const void *src, uint32_t size)
{
	if (size == 8)
		memcpy(dst, src, 8);
	else if (size == 4)
		memcpy(dst, src, 4);
	else if (size)
		memcpy(dst, src, size);
}

static void kick(gs_chan *ch)
{
	/* Fails only for a bad fd, which the next slow call reports. */
	(void)ioctl(ch->fd, GOSYNC_IOC_CHAN_KICK);
}

/*
 * Push @value if the ring has room and no flag objects: reserve the slot
 * at the tail with our id, claim the position, write, publish. After the
 * value is published, a full barrier, then the flags: a kernel sleeper
 * sets its flag before its last look at the ring, so either it saw this
 * value or this reads its flag and kicks.
 */
static bool fast_push(gs_chan *ch, const void *value)
{
	uint64_t tail, pos, seq, want, id;
	_Atomic uint64_t *sp;

	if (!ch->ring)
		return false;
	id = ring_id(ch);
	if (!id)
		return false;
	touch(value, ch->elem_size, false);
	tail = atomic_load_explicit(ch->tail, memory_order_relaxed);
	for (int tries = 0;; tries++) {
		/* Losing this often (or a scribbled ring): ask the kernel. */
		if ((tail & PUSH_SLOW) || tries >= RING_TRIES)
			return false;
		pos = pos_of(tail);
		sp = slot_seq(ch, pos);
		want = seqno(pos, false);
		seq = atomic_load_explicit(sp, memory_order_acquire);
		if (seq != want) {
			/* Full: a pop or a hole of the last lap, or behind. */
			if ((seq & (POPPING | HOLE)) ||
			    (!(seq & STATES) && seqdiff(ch, seq, want) < 0))
				return false;
			/* Another push between its two swaps, or a stale tail. */
			tail = atomic_load_explicit(ch->tail,
						    memory_order_relaxed);
			continue;
		}
		if (!atomic_compare_exchange_weak(sp, &seq, PUSHING | id)) {
			tail = atomic_load_explicit(ch->tail,
						    memory_order_relaxed);
			continue;
		}
		/*
		 * Ours until published. Claim it, keeping the flags: only
		 * POLLED ones let the swap go on; any other means the
		 * slow path, and the slot goes back.
		 */
		for (; tries < RING_TRIES; tries++) {
			if (atomic_compare_exchange_weak(ch->tail, &tail,
							 (tail & FLAGS) |
							 pos_next(ch, pos, 1)))
				goto claimed;
			if ((tail & PUSH_SLOW) || pos_of(tail) != pos)
				break;
		}
		/* A sleeper may have seen the reservation: kick it. */
		atomic_store(sp, want);
		if (atomic_load(ch->tail) & ANY_KICK)
			kick(ch);
		return false;
	}
claimed:
	copy_value((void *)(sp + 1), value, ch->elem_size);
	/*
	 * Publish, then read the flags: both sequentially consistent, so the
	 * read cannot pass the store (the kernel's flag setter has its full
	 * barrier between flag and slot reads).
	 */
	atomic_store(sp, seqno(pos, true));
	if (atomic_load(ch->tail) & PUSH_KICK)
		kick(ch);
	return true;
}

/*
 * Pop into @value if a value is ready and no receiver is queued: reserve
 * the slot at the head with our id, move the head, copy, free. A hole
 * (a position whose pusher died) is passed the same way, without a copy.
 */
static bool fast_pop(gs_chan *ch, void *value)
{
	uint64_t head, seq, want, id;
	_Atomic uint64_t *sp;
	bool touched = false;

	if (!ch->ring ||
	    (atomic_load_explicit(ch->tail, memory_order_relaxed) & POP_SLOW))
		return false;
	id = ring_id(ch);
	if (!id)
		return false;
	head = atomic_load_explicit(ch->head, memory_order_relaxed);
	for (int tries = 0;; tries++) {
		if (tries == RING_TRIES)
			return false;
		head = pos_of(head);
		sp = slot_seq(ch, head);
		want = seqno(head, true);
		seq = atomic_load_explicit(sp, memory_order_acquire);
		if (seq != want && seq != (HOLE | want)) {
			uint64_t again;

			/* Another pop before its store of head, or a stale head. */
			if ((seq & POPPING) ||
			    (!(seq & STATES) && seqdiff(ch, seq, want) > 0)) {
				head = atomic_load_explicit(ch->head,
							    memory_order_relaxed);
				continue;
			}
			/* Empty, or a push in progress, unless head moved. */
			again = atomic_load_explicit(ch->head,
						     memory_order_relaxed);
			if (pos_of(again) == head)
				return false;
			head = again;
			continue;
		}
		if (value && !touched && !(seq & HOLE)) {
			touch(value, ch->elem_size, true);
			touched = true;
		}
		if (!atomic_compare_exchange_weak(sp, &seq,
						  POPPING | (seq & HOLE) | id)) {
			head = atomic_load_explicit(ch->head,
						    memory_order_relaxed);
			continue;
		}
		/* Only the holder of slot(head) moves head. */
		atomic_store_explicit(ch->head, pos_next(ch, head, 1),
				      memory_order_release);
		if (value && !(seq & HOLE))
			copy_value(value, (const void *)(sp + 1),
				   ch->elem_size);
		/* Free the slot, then read the flags, as after a push. */
		atomic_store(sp, seqno(pos_next(ch, head, ch->capacity),
				       false));
		if (seq & HOLE) {
			/* No value there: on to the next position. */
			head = pos_next(ch, head, 1);
			continue;
		}
		if (atomic_load(ch->tail) & POP_KICK)
			kick(ch);
		return true;
	}
}

/* Create a channel (or timer) with @cmd and wrap its fd. */
static int chan_create(gs_chan **chp, unsigned long cmd, void *arg)
{
	int fd = gs_create_object(cmd, arg);
	int err;

	if (fd < 0)
		return fd;
	err = gs_chan_from_fd(chp, fd);
	if (err)
		close(fd);
	return err;
}

int gs_chan_make(gs_chan **chp, size_t elem_size, uint32_t capacity)
{
	struct gosync_chan_create arg = {
		.elem_size = (uint32_t)elem_size, .capacity = capacity,
	};

	if (elem_size > GOSYNC_CHAN_ELEM_MAX)
		return -EINVAL;
	return chan_create(chp, GOSYNC_IOC_CHAN_CREATE, &arg);
}

int gs_chan_from_fd_sized(gs_chan **chp, int fd, size_t elem_size)
{
	struct gosync_chan_status st;
	gs_chan *ch;

	if (ioctl(fd, GOSYNC_IOC_CHAN_STATUS, &st) < 0)
		return errno == EINVAL ? -ENOTTY : -errno;
	if (elem_size != SIZE_MAX && st.elem_size != elem_size)
		return -EINVAL;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->fd = fd;
	ch->elem_size = st.elem_size;
	ch->capacity = st.capacity;
	ch->slot_size = GOSYNC_CHAN_SLOT_SIZE(st.elem_size);
	if (st.capacity)
		ch->pos_mod = gosync_chan_pos_modulus(st.capacity);
	if (st.capacity > 1 && !(st.capacity & (st.capacity - 1)))
		ch->cap_mask = st.capacity - 1;
	if (st.capacity)
		ring_map(ch);	/* else, or if it fails: ioctls only */
	*chp = ch;
	return 0;
}

int gs_chan_from_fd(gs_chan **chp, int fd)
{
	return gs_chan_from_fd_sized(chp, fd, SIZE_MAX);
}

static int xfer(gs_chan *ch, unsigned long cmd, const void *value,
		uint64_t deadline, unsigned int flags)
{
	struct gosync_chan_xfer arg = {
		.value = (uintptr_t)value, .deadline = deadline, .flags = flags,
	};
	int ret = ioctl(ch->fd, cmd, &arg);

	return ret < 0 ? -errno : ret;
}

int gs_chan_send_until(gs_chan *ch, const void *value, uint64_t deadline,
		       unsigned int flags)
{
	if (flags & ~GS_CLOCK_REALTIME)
		return -EINVAL;
	if (fast_push(ch, value))
		return 0;
	return xfer(ch, GOSYNC_IOC_CHAN_SEND, value, deadline, flags);
}

int gs_chan_send(gs_chan *ch, const void *value)
{
	if (fast_push(ch, value))
		return 0;
	return xfer(ch, GOSYNC_IOC_CHAN_SEND, value, GS_FOREVER, 0);
}

int gs_chan_try_send(gs_chan *ch, const void *value)
{
	if (fast_push(ch, value))
		return 0;
	return xfer(ch, GOSYNC_IOC_CHAN_SEND, value, GS_FOREVER,
		    GOSYNC_CHAN_TRY);
}

int gs_chan_recv_until(gs_chan *ch, void *value, uint64_t deadline,
		       unsigned int flags)
{
	if (flags & ~GS_CLOCK_REALTIME)
		return -EINVAL;
	if (fast_pop(ch, value))
		return 1;
	return xfer(ch, GOSYNC_IOC_CHAN_RECV, value, deadline, flags);
}

int gs_chan_recv(gs_chan *ch, void *value)
{
	if (fast_pop(ch, value))
		return 1;
	return xfer(ch, GOSYNC_IOC_CHAN_RECV, value, GS_FOREVER, 0);
}

int gs_chan_try_recv(gs_chan *ch, void *value)
{
	if (fast_pop(ch, value))
		return 1;
	return xfer(ch, GOSYNC_IOC_CHAN_RECV, value, GS_FOREVER,
		    GOSYNC_CHAN_TRY);
}

int gs_chan_close(gs_chan *ch)
{
	return ioctl(ch->fd, GOSYNC_IOC_CHAN_CLOSE) < 0 ? -errno : 0;
}

int gs_chan_status(gs_chan *ch, struct gosync_chan_status *st)
{
	return ioctl(ch->fd, GOSYNC_IOC_CHAN_STATUS, st) < 0 ? -errno : 0;
}

int gs_chan_len(gs_chan *ch)
{
	struct gosync_chan_status st;
	int err = gs_chan_status(ch, &st);

	return err ? err : (int)st.len;
}

uint32_t gs_chan_cap(const gs_chan *ch)
{
	return ch->capacity;
}

size_t gs_chan_elem_size(const gs_chan *ch)
{
	return ch->elem_size;
}

int gs_chan_fd(const gs_chan *ch)
{
	return ch->fd;
}

void gs_chan_destroy(gs_chan *ch)
{
	if (!ch)
		return;
	if (ch->ring)
		munmap(ch->ring, ch->ring_bytes);
	close(ch->fd);
	free(ch);
}

int gs_select(gs_case *cases, size_t n, unsigned int flags, uint64_t deadline)
{
	struct gosync_select_case kcases[GOSYNC_SELECT_MAX_CASES];
	struct gosync_select arg = {
		.cases = (uintptr_t)kcases, .ncases = (uint32_t)n,
		.flags = flags, .deadline = deadline,
	};
	int dev = gs_device_fd();

	if (dev < 0)
		return dev;
	if (n > GOSYNC_SELECT_MAX_CASES ||
	    (flags & ~(GS_SELECT_DEFAULT | GS_CLOCK_REALTIME)))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		kcases[i].fd = cases[i].ch ? cases[i].ch->fd : GOSYNC_SELECT_NIL;
		kcases[i].op = (uint32_t)cases[i].op;
		kcases[i].value = (uintptr_t)cases[i].value;
	}
	if (ioctl(dev, GOSYNC_IOC_SELECT, &arg) < 0)
		return -errno;
	if (cases[arg.index].op == GS_OP_RECV)
		cases[arg.index].ok = arg.ok;
	return (int)arg.index;
}

int gs_select_ctx(gs_case *cases, size_t n, gs_ctx *ctx)
{
	gs_case all[GOSYNC_SELECT_MAX_CASES];
	struct gs_ctx_wait w;
	int ret;

	if (n >= GOSYNC_SELECT_MAX_CASES)
		return -EINVAL;
	ret = gs_ctx_wait_begin(ctx, &w);
	if (ret)
		return ret;
	/* The cases, and one more: receive from Done (nil if none). */
	for (size_t i = 0; i < n; i++)
		all[i] = cases[i];
	all[n] = gs_case_recv(gs_ctx_done(ctx), NULL);
	ret = gs_select(all, n + 1, 0, w.deadline);
	if (ret == (int)n) {
		/* Done is closed, maybe by another process's copy. */
		ret = gs_ctx_err(ctx);
		return ret ? ret : -ECANCELED;
	}
	if (ret < 0)
		return gs_ctx_wait_end(ctx, ret);
	cases[ret].ok = all[ret].ok;
	return ret;
}

int gs_chan_send_ctx(gs_chan *ch, const void *value, gs_ctx *ctx)
{
	gs_case c = gs_case_send(ch, value);
	int ret = gs_select_ctx(&c, 1, ctx);

	return ret > 0 ? 0 : ret;
}

int gs_chan_recv_ctx(gs_chan *ch, void *value, gs_ctx *ctx)
{
	gs_case c = gs_case_recv(ch, value);
	int ret = gs_select_ctx(&c, 1, ctx);

	return ret < 0 ? ret : c.ok;
}

static int chan_timer_new(gs_chan **timerp, uint64_t when, uint64_t period,
			unsigned int flags)
{
	struct gosync_timer_set set = {
		.when = when, .period = period, .flags = flags,
	};

	return chan_create(timerp, GOSYNC_IOC_TIMER_CREATE, &set);
}

int gs_after(gs_chan **timerp, uint64_t ns)
{
	return chan_timer_new(timerp, gs_deadline_in(ns), 0, 0);
}

int gs_timer_at(gs_chan **timerp, uint64_t when, unsigned int flags)
{
	return chan_timer_new(timerp, when, 0, flags);
}

int gs_tick(gs_chan **tickerp, uint64_t period_ns)
{
	if (period_ns < GOSYNC_TIMER_MIN_PERIOD)
		return -EINVAL;
	return chan_timer_new(tickerp, gs_deadline_in(period_ns), period_ns, 0);
}

int gs_timer_stop(gs_chan *timer)
{
	int ret = ioctl(timer->fd, GOSYNC_IOC_TIMER_STOP);

	return ret < 0 ? -errno : ret;
}

static int timer_reset(gs_chan *timer, uint64_t ns, uint64_t period)
{
	struct gosync_timer_set set = {
		.when = gs_deadline_in(ns), .period = period,
	};
	int ret = ioctl(timer->fd, GOSYNC_IOC_TIMER_RESET, &set);

	return ret < 0 ? -errno : ret;
}

int gs_timer_reset(gs_chan *timer, uint64_t ns)
{
	return timer_reset(timer, ns, 0);
}

int gs_ticker_reset(gs_chan *ticker, uint64_t period_ns)
{
	if (period_ns < GOSYNC_TIMER_MIN_PERIOD)
		return -EINVAL;
	return timer_reset(ticker, period_ns, period_ns);
}
