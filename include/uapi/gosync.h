/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * gosync: Go's concurrency primitives as kernel objects.
 *
 * This header is the ABI between gosync.ko and its users (libgosync or
 * anyone issuing the ioctls directly). It is shared verbatim by the kernel
 * module and the library.
 *
 * Conventions every ioctl follows:
 *  - Arguments are structs of fixed-size fields (__u32, __u64, ...) laid
 *    out without implicit padding; explicit padding and "reserved" fields
 *    must be zero, or the ioctl fails with -EINVAL and changes nothing.
 *  - "flags" fields accept only the documented bits; any other bit gives
 *    -EINVAL.
 *  - A bad user pointer gives -EFAULT; an unknown ioctl gives -ENOTTY.
 *  - Timeouts are absolute deadlines in nanoseconds, on CLOCK_MONOTONIC
 *    unless the ioctl's flags say GOSYNC_CLOCK_REALTIME, and as seen from
 *    the caller's time namespace. GOSYNC_DEADLINE_NONE waits forever.
 *    An interrupted wait (-EINTR, or a transparent restart) can be retried
 *    with the same argument: the deadline does not move.
 *  - Objects are created by ioctls on an open /dev/gosync and returned as
 *    new file descriptors (O_CLOEXEC); the file descriptor is the only
 *    handle and the only access control.
 */
#ifndef _UAPI_GOSYNC_H
#define _UAPI_GOSYNC_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define GOSYNC_DEVICE_PATH	"/dev/gosync"

/*
 * The ABI version. It changes whenever an existing struct or ioctl changes
 * meaning; additions are announced through feature bits instead.
 */
#define GOSYNC_ABI_VERSION	1

/* Feature bits reported by GOSYNC_IOC_VERSION. */
#define GOSYNC_FEATURE_SEM	(1ULL << 0)	/* weighted semaphores */
#define GOSYNC_FEATURE_CHAN	(1ULL << 1)	/* channels */
#define GOSYNC_FEATURE_SELECT	(1ULL << 2)	/* select over channels */
#define GOSYNC_FEATURE_TIMER	(1ULL << 3)	/* timer channels */
#define GOSYNC_FEATURE_LOT	(1ULL << 4)	/* parking lots (sync package) */
#define GOSYNC_FEATURE_CHAN_RING (1ULL << 5)	/* mmap'able channel rings */
#define GOSYNC_FEATURE_COND	(1ULL << 6)	/* ticketed Cond on lots */
#define GOSYNC_FEATURE_CHAN_DISCARD (1ULL << 7)	/* receive into 0 discards */
#define GOSYNC_FEATURE_CHAN_ROBUST (1ULL << 8)	/* rings survive dead peers */
#define GOSYNC_FEATURE_NAMES	(1ULL << 9)	/* named objects */
#define GOSYNC_FEATURE_ROBUST_LOCK (1ULL << 10)	/* robust lock words, owners */
#define GOSYNC_FEATURE_SEM_UNDO	(1ULL << 11)	/* GOSYNC_SEM_UNDO */
#define GOSYNC_FEATURE_LOT_UNDO	(1ULL << 12)	/* GOSYNC_LOT_PARK_BREAK */
#define GOSYNC_FEATURE_LOT_PARTIES (1ULL << 13)	/* WG_ADD, ARRIVE: party deaths */
#define GOSYNC_FEATURE_LOCK_CHECK (1ULL << 14)	/* GOSYNC_LOT_CHECKED: -EDEADLK */

/* Deadline value meaning "no deadline, wait forever". */
#define GOSYNC_DEADLINE_NONE	(~(__u64)0)

/* Deadline clock selection, for the flags of every waiting ioctl. */
#define GOSYNC_CLOCK_REALTIME	(1U << 0)

/*
 * Flag of the semaphore acquire and lot park ioctls: their @cancel_fd is
 * a channel whose close cancels the wait (-ECANCELED), as a context's
 * Done channel does in libgosync. Without the flag, @cancel_fd must be 0.
 * A wait that was served before it noticed the close returns success.
 */
#define GOSYNC_WAIT_CANCEL_FD	(1U << 4)

/**
 * struct gosync_version - argument of GOSYNC_IOC_VERSION
 * @abi_version: out: GOSYNC_ABI_VERSION of the loaded module
 * @flags:       in: must be 0
 * @features:    out: GOSYNC_FEATURE_* bits the module implements
 * @reserved:    in: must be 0
 */
struct gosync_version {
	__u32 abi_version;
	__u32 flags;
	__u64 features;
	__u64 reserved[2];
};

/*
 * Weighted semaphores (golang.org/x/sync/semaphore).
 *
 * The semaphore's state is one 64-bit word in a page the kernel allocates.
 * mmap() of the semaphore fd (one page, offset 0, MAP_SHARED) maps that
 * page as struct gosync_sem_shared, so that userspace can acquire and
 * release without a system call while nobody waits. The protocol, which
 * libgosync implements and anyone mapping the page must follow:
 *
 *  - count (the low 62 bits) is the number of free permits; the object
 *    starts full (count == size).
 *  - GOSYNC_SEM_WAITERS is set by the kernel, under the semaphore's lock,
 *    while its FIFO of blocked acquirers is non-empty, and cleared when
 *    it empties. While it is set, only the kernel changes the word:
 *    userspace acquire and release both go through the ioctls, so waiters
 *    are served in order and no release is missed by a sleeper.
 *  - GOSYNC_SEM_POLLED is set by the kernel when poll() found no permit;
 *    while it is set, userspace releases go through the ioctl so that
 *    pollers are woken (acquires may stay in userspace: they never make
 *    the semaphore readable). A kernel release clears it.
 *  - Userspace changes the word only with compare-and-swap of the whole
 *    word, so a flag set by the kernel in between makes the swap fail and
 *    the caller re-reads the flags.
 *  - Whether anybody waits is the kernel's queue: the ioctls' try takes
 *    nothing while an acquirer is queued, whatever the page says.
 *  - The kernel's own compare-and-swaps are bounded: a call that has
 *    lost GOSYNC_SEM_TRIES of them sets WAITERS (which stops every
 *    userspace that follows this protocol from changing the word), and
 *    after as many more it gives up with -EIO, having changed nothing:
 *    only a writer that ignores the protocol can make that happen. A
 *    release whose permits were added but whose serving of the queue gave
 *    up returns 0; the waiters stay queued. The kernel never leaves
 *    WAITERS set for an empty queue.
 *
 * Whatever userspace writes into the page, the kernel stays memory-safe
 * and every ioctl returns in bounded time; the semaphore's own semantics
 * are then the writer's problem.
 */
#define GOSYNC_SEM_WAITERS	(1ULL << 63)
#define GOSYNC_SEM_POLLED	(1ULL << 62)
#define GOSYNC_SEM_COUNT_MASK	(GOSYNC_SEM_POLLED - 1)
/* The largest size, and the largest count one call may acquire or release. */
#define GOSYNC_SEM_MAX		GOSYNC_SEM_COUNT_MASK
/* Lost compare-and-swaps after which the kernel fences, then gives up. */
#define GOSYNC_SEM_TRIES	16

struct gosync_sem_shared {
	__u64 state;
};

/**
 * struct gosync_sem_create - argument of GOSYNC_IOC_SEM_CREATE
 * @size:     the number of permits, 0 to GOSYNC_SEM_MAX; all start free
 * @flags:    must be 0
 * @reserved: must be 0
 *
 * The ioctl returns the new semaphore's file descriptor (O_CLOEXEC).
 */
struct gosync_sem_create {
	__u64 size;
	__u32 flags;
	__u32 reserved;
};

/**
 * struct gosync_sem_acquire - argument of GOSYNC_IOC_SEM_ACQUIRE
 * @count:    permits to acquire, 0 to GOSYNC_SEM_MAX (-EINVAL beyond)
 * @deadline: absolute deadline in ns (see the conventions above); one
 *            already past still takes the permits if they are free now
 * @flags:    GOSYNC_CLOCK_REALTIME, GOSYNC_WAIT_CANCEL_FD, GOSYNC_SEM_UNDO
 * @cancel_fd: with GOSYNC_WAIT_CANCEL_FD, a channel whose close cancels
 *            the wait (-ECANCELED); else 0
 *
 * Blocks, first in first out, until @count permits are free. A @count
 * larger than the size can never be served: it waits for its deadline
 * without holding up the waiters behind it, as Go does. Returns 0,
 * -ETIMEDOUT, or -EINTR on a signal (restarted transparently under
 * SA_RESTART). A waiter that was served before the signal or deadline
 * was noticed returns 0 and owns the permits. -EIO: the state word kept
 * changing under the kernel (see above); nothing was taken.
 */
/*
 * Flag of GOSYNC_IOC_SEM_ACQUIRE (GOSYNC_FEATURE_SEM_UNDO; SysV's
 * SEM_UNDO): the kernel counts the permits taken, per process, until the
 * process gives them back with GOSYNC_IOC_SEM_RELEASE_UNDO; what it still
 * holds so when it exits (however: SIGKILL too), execs, or closes its
 * last descriptor of the semaphore, the kernel releases, as a release
 * does (FIFO waiters served, pollers woken), but never past the size
 * (the excess is dropped: permits taken with undo and released without
 * it are the caller's bug). A forked child does not inherit the count.
 * -ENOSPC: the semaphore has undo records of 1024 processes already;
 * -ENOMEM. Undo acquires and releases always enter the kernel.
 */
#define GOSYNC_SEM_UNDO		(1U << 8)

struct gosync_sem_acquire {
	__u64 count;
	__u64 deadline;
	__u32 flags;
	__s32 cancel_fd;
};

/**
 * struct gosync_sem_status - result of GOSYNC_IOC_SEM_STATUS
 * @size:          the semaphore's size
 * @state:         the shared state word (free permits and flags)
 * @waiters:       blocked acquirers in the FIFO
 * @reserved:      0
 * @slow_acquires: acquire and try-acquire ioctls so far
 * @slow_releases: release ioctls so far
 */
struct gosync_sem_status {
	__u64 size;
	__u64 state;
	__u32 waiters;
	__u32 reserved;
	__u64 slow_acquires;
	__u64 slow_releases;
};

/*
 * Channels (Go's chan T).
 *
 * A channel carries elements of a fixed size (0 to GOSYNC_CHAN_ELEM_MAX
 * bytes; 0 is Go's chan struct{}) and has a capacity (0 = unbuffered, up
 * to the module parameter max_capacity; the buffer, its slots as mapped,
 * GOSYNC_CHAN_SLOT_SIZE(elem_size) * capacity bytes, is also bounded by
 * the module parameter max_buffer_bytes). A buffered channel's ring (that
 * many bytes in pages, plus a header page) cannot be swapped out: its
 * pages are charged to the creator's memory cgroup and, unless the
 * creator has CAP_IPC_LOCK, to its user's locked memory, bounded by
 * RLIMIT_MEMLOCK as mlock(2) is, until the last fd and the last mapping
 * of the channel are gone. Unbuffered and timer channels have no ring.
 *
 * Send blocks until the value is in the buffer or, on an unbuffered
 * channel, a receiver has taken it; a waiting receiver gets the value
 * directly. Receive takes the oldest value. Waiting senders and receivers
 * are each served first in, first out; when a receive frees a slot of a
 * full buffer, the first waiting sender's value moves to the tail, so the
 * order of values is the order in which their sends began waiting.
 *
 * Close wakes everybody: waiting senders fail with -EPIPE, receivers first
 * drain the buffer, then receive the zero value with "ok" false, forever,
 * without blocking. Send on a closed channel and close of a closed
 * channel fail with -EPIPE and change nothing (Go panics).
 */
#define GOSYNC_CHAN_ELEM_MAX	65536

/*
 * The buffer of a buffered channel is a ring in pages the kernel
 * allocates, which mmap() of the channel fd (offset 0, the whole size:
 * one header page, then the slots, page-aligned; MAP_SHARED) maps, so
 * that a send that finds room and a receive that finds a value complete
 * with atomics alone. The protocol, which libgosync implements, the
 * kernel follows on the same ring, and anyone mapping it must follow:
 *
 *  - The header page starts with struct gosync_chan_shared: @tail, the
 *    next position to fill, in its low 48 bits (GOSYNC_CHAN_POS_MASK),
 *    with flags above; and @head, the next position to empty. Positions
 *    only grow, modulo M: the largest capacity * 2^k that fits in 48
 *    bits, so that the slot, position % capacity, steps on smoothly where
 *    positions wrap. Slot i is GOSYNC_CHAN_SLOT_SIZE(elem_size) bytes: a
 *    __u64 sequence number, then the value. A slot free for position p
 *    holds sequence 2p; one holding p's value, 2p + 1 (sequences modulo
 *    2M, compared as signed differences). Slot i holds 2i at creation.
 *  - A slot's sequence may also hold a reservation, with a state bit
 *    above the sequence numbers (which are below 2^49): PUSHING | id and
 *    POPPING | id name the process whose push or pop holds the slot
 *    (id: GOSYNC_IOC_CHAN_RING_ID, the same for every channel and thread
 *    of a process; the kernel's own operations use 0); HOLE | (2p + 1)
 *    is position p abandoned by a pusher that died (see below);
 *    POPPING | HOLE | id, a pop consuming such a hole.
 *  - Push (Vyukov's bounded queue, with the claim made first in the slot;
 *    p + 1 is modulo M): read @tail = p; if it has no flag and its slot's
 *    sequence is 2p, reserve the slot by swapping its sequence to
 *    PUSHING | id, then claim p by swapping @tail to p + 1 (flags
 *    included, so a flag set meanwhile makes the swap fail: swap again
 *    if only POLLED flags came, else store 2p back, read @tail and kick
 *    as after a push, and take the slow path), write the value, then
 *    store sequence 2p + 1 (release). A sequence below 2p, a POPPING or
 *    a HOLE means the ring is full; PUSHING, that another push is
 *    between its two swaps: read @tail again.
 *  - Pop: read @head = p; if the slot's sequence is 2p + 1 (or
 *    HOLE | (2p + 1)), reserve it by swapping it to POPPING | id (keeping
 *    HOLE), store @head = p + 1 (only the holder of slot(@head)'s
 *    reservation moves @head), read the value (not for a hole), then
 *    store 2(p + capacity) (release). A hole carries no value: the pop
 *    goes on to the next position. Below 2p + 1, or PUSHING, means empty
 *    (or a push in progress); POPPING, another pop between its swap and
 *    its store to @head: read @head again.
 *  - Repair: when a process that holds a channel fd exits or execs (its
 *    close of the fd, with the ring no longer mapped in its memory), the
 *    kernel, under the channel's lock, undoes what that process's id left
 *    in the ring: PUSHING at slot(@tail) that was never claimed goes back
 *    to 2 * @tail; PUSHING at a claimed position p becomes HOLE | (2p + 1)
 *    (the value of a sender killed inside its send is lost: the send
 *    never completed, as for a goroutine killed before its send);
 *    POPPING at slot(@head) whose @head was never moved goes back to
 *    2 * @head + 1 (with HOLE, if it had it); POPPING at a position q
 *    already passed becomes 2(q + capacity), freed (its value was
 *    received by the process that died). Then the kernel serves its
 *    queues from the ring and wakes pollers. Kernel pushes and pops skip
 *    holes at @head as they meet them, so a hole takes a place in the
 *    buffer only until a receiver, or the kernel, passes it.
 *  - The kernel sets the flags in @tail, under the channel's lock:
 *    GOSYNC_CHAN_CLOSED once closed; GOSYNC_CHAN_SEND_WAITERS and
 *    _RECV_WAITERS while senders or receivers are queued in the kernel
 *    (set before it last tries the ring and sleeps); _POLLED_IN and
 *    _POLLED_OUT while poll() waits to read or to write. While CLOSED or
 *    a WAITERS flag is set, sends go through the ioctl (so queued senders
 *    stay first and queued receivers get values directly, in order);
 *    receives do too while RECV_WAITERS is set.
 *  - After a push or a pop (or a reservation given back), a full
 *    barrier, then a read of @tail: any WAITERS or POLLED flag set means
 *    GOSYNC_IOC_CHAN_KICK (of either direction: a sleeper or a poller may
 *    have looked while the reservation hid a slot). With the kernel setting a flag before it
 *    re-checks the ring, one of the two sees the other: a push or pop
 *    that the kernel missed is followed by a kick, so nobody sleeps on a
 *    ring that could serve them. The kick makes the kernel serve its
 *    queues from the ring (values to queued receivers, queued senders'
 *    values to free slots, in order) and wake pollers.
 *  - A receiver that finds the channel closed and @head == @tail has
 *    drained it; a push claimed before the close completes, and is
 *    received, before receivers see "closed".
 *
 * The kernel reads positions and sequences from the page but uses them
 * only modulo the capacity it keeps; whatever is written there, it stays
 * memory-safe (a scribbled ring only hurts that channel's users), and it
 * gives up a swap it lost too many times rather than spin.
 */
#define GOSYNC_CHAN_POS_MASK		((1ULL << 48) - 1)
#define GOSYNC_CHAN_CLOSED		(1ULL << 63)
#define GOSYNC_CHAN_SEND_WAITERS	(1ULL << 62)
#define GOSYNC_CHAN_RECV_WAITERS	(1ULL << 61)
#define GOSYNC_CHAN_POLLED_IN		(1ULL << 60)
#define GOSYNC_CHAN_POLLED_OUT		(1ULL << 59)
#define GOSYNC_CHAN_SLOT_SIZE(elem)	(8 + (((elem) + 7) & ~7U))
/* Reservation states of a slot's sequence (GOSYNC_FEATURE_CHAN_ROBUST). */
#define GOSYNC_CHAN_SEQ_PUSHING		(1ULL << 63)
#define GOSYNC_CHAN_SEQ_POPPING		(1ULL << 62)
#define GOSYNC_CHAN_SEQ_HOLE		(1ULL << 61)
#define GOSYNC_CHAN_SEQ_STATES		(7ULL << 61)
#define GOSYNC_CHAN_SEQ_ID_MASK		0xffffffffULL

/*
 * M: where ring positions wrap, the largest @capacity * 2^k in 48 bits;
 * 0 for capacity 0, an unbuffered channel, which has no ring (doubling 0
 * would never get there): callers must not divide by it.
 */
static inline __u64 gosync_chan_pos_modulus(__u32 capacity)
{
	__u64 mod = capacity;

	if (!mod)
		return 0;
	while (mod <= (GOSYNC_CHAN_POS_MASK + 1) / 2)
		mod <<= 1;
	return mod;
}

struct gosync_chan_shared {
	__u64 tail;
	__u64 pad1[7];		/* @head on its own cache line */
	__u64 head;
	__u64 pad2[7];
};

/**
 * struct gosync_chan_create - argument of GOSYNC_IOC_CHAN_CREATE
 * @elem_size: bytes per element, 0 to GOSYNC_CHAN_ELEM_MAX
 * @capacity:  buffer slots, 0 (unbuffered) to the module's max_capacity
 * @flags:     must be 0
 * @reserved:  must be 0
 *
 * Returns the new channel's fd (O_CLOEXEC); -EINVAL for sizes out of
 * range; -ENOMEM when the buffer exceeds max_buffer_bytes, when the ring
 * would take the user's locked memory beyond RLIMIT_MEMLOCK (as mlock(2)
 * and io_uring's registered buffers say), or when memory is short.
 */
struct gosync_chan_create {
	__u32 elem_size;
	__u32 capacity;
	__u32 flags;
	__u32 reserved;
};

/* Flag of send and receive: fail with -EAGAIN instead of blocking. */
#define GOSYNC_CHAN_TRY		(1U << 1)

/**
 * struct gosync_chan_xfer - argument of GOSYNC_IOC_CHAN_SEND and _RECV
 * @value:    user address of elem_size bytes: the value to send (may be 0
 *            when elem_size is 0), or where to store the received value;
 *            for RECV, 0 discards the value (Go's <-ch), whatever
 *            elem_size (GOSYNC_FEATURE_CHAN_DISCARD)
 * @deadline: absolute deadline, as for every waiting ioctl
 * @flags:    GOSYNC_CLOCK_REALTIME, GOSYNC_CHAN_TRY
 * @reserved: must be 0
 *
 * SEND returns 0; -EPIPE if the channel is or becomes closed (the value
 * was not sent); -EAGAIN (TRY) or -ETIMEDOUT if it would block longer.
 * RECV returns 1 with the value stored, or 0 when the channel is closed
 * and drained (the zero value is stored: Go's "ok" is the return value).
 * A bad @value gives -EFAULT and consumes nothing. A RECV into @value 0
 * is a receive like any other, on every path (from the ring, from a
 * waiting sender, blocking, TRY, with a deadline, closed): it consumes
 * the value, counts in @recvs and returns 1 or 0 as above; only the
 * value itself is dropped. Address 0 is never a destination.
 */
struct gosync_chan_xfer {
	__u64 value;
	__u64 deadline;
	__u32 flags;
	__u32 reserved;
};

/**
 * struct gosync_chan_status - result of GOSYNC_IOC_CHAN_STATUS
 * @elem_size:    bytes per element
 * @capacity:     buffer slots
 * @len:          values in the buffer
 * @closed:       1 once closed
 * @send_waiters: blocked senders
 * @recv_waiters: blocked receivers
 * @sends:        values sent so far (completed sends)
 * @recvs:        values received so far (not counting closed receives)
 * @slow_ops:     send, receive and select ioctls that involved it
 * @kicks:        GOSYNC_IOC_CHAN_KICK ioctls
 */
struct gosync_chan_status {
	__u32 elem_size;
	__u32 capacity;
	__u32 len;
	__u32 closed;
	__u32 send_waiters;
	__u32 recv_waiters;
	__u64 sends;
	__u64 recvs;
	__u64 slow_ops;
	__u64 kicks;
};

/*
 * Select (Go's select statement), an ioctl on /dev/gosync.
 *
 * Exactly one case commits. If several are ready, each is chosen with
 * equal probability. If none is and GOSYNC_SELECT_DEFAULT is not set, the
 * caller waits on all of them until one commits, the deadline passes or a
 * signal arrives; nothing is consumed from the cases that do not commit,
 * and their destinations are never written. A case whose fd is
 * GOSYNC_SELECT_NIL is a nil channel: never ready (a select of nil cases
 * only, without default, waits for its deadline or a signal). A receive
 * from a closed channel is ready (zero value, ok = 0); a send case that
 * commits on a closed channel makes the select fail with -EPIPE (Go
 * panics), with @index naming it. The same channel may appear in several
 * cases; a select's send and receive on one unbuffered channel never
 * match each other.
 */
#define GOSYNC_SELECT_MAX_CASES	128
#define GOSYNC_SELECT_NIL	(-1)
#define GOSYNC_SELECT_SEND	1
#define GOSYNC_SELECT_RECV	2
/* Flag of GOSYNC_IOC_SELECT: return -EAGAIN at once if nothing is ready. */
#define GOSYNC_SELECT_DEFAULT	(1U << 1)

/**
 * struct gosync_select_case - one case of a select
 * @fd:    a channel fd, or GOSYNC_SELECT_NIL
 * @op:    GOSYNC_SELECT_SEND or GOSYNC_SELECT_RECV
 * @value: user address of the value to send (may be 0 when elem_size is
 *         0), or of room for the received one (elem_size bytes; 0 discards
 *         the value, as for GOSYNC_IOC_CHAN_RECV)
 */
struct gosync_select_case {
	__s32 fd;
	__u32 op;
	__u64 value;
};

/**
 * struct gosync_select - argument of GOSYNC_IOC_SELECT
 * @cases:    user address of @ncases struct gosync_select_case
 * @ncases:   0 to GOSYNC_SELECT_MAX_CASES
 * @flags:    GOSYNC_CLOCK_REALTIME, GOSYNC_SELECT_DEFAULT
 * @deadline: absolute deadline, as for every waiting ioctl
 * @index:    out: the case that committed
 * @ok:       out: for a receive case, 1 for a value, 0 for closed
 *
 * Returns 0 with @index and @ok set; -EPIPE (a send case on a closed
 * channel, @index set); -EAGAIN (GOSYNC_SELECT_DEFAULT, nothing ready);
 * -ETIMEDOUT; -EINTR; -EBADF (a closed fd); -EINVAL (an fd that is not a
 * channel, a bad op or flag); -EPERM (a send case on a timer channel);
 * -E2BIG when the cases' values, which the kernel holds while the select
 * waits, exceed the module parameter max_select_bytes (default 1 MiB,
 * never less than GOSYNC_CHAN_ELEM_MAX): the sum of elem_size over the
 * send cases and the receive cases with a destination (a receive case
 * whose @value is 0 takes no room). -E2BIG, like every error before the
 * wait, consumes and sends nothing.
 */
struct gosync_select {
	__u64 cases;
	__u32 ncases;
	__u32 flags;
	__u64 deadline;
	__u32 index;
	__u32 ok;
};

/*
 * Timer channels (time.After, time.NewTimer, time.NewTicker): receive-only
 * channels of one __u64 (the firing time in ns on the timer's clock, as
 * seen in the time namespace of the task that armed it) with capacity 1,
 * fed by an hrtimer; they have no ring and cannot be mapped. A one-shot
 * timer (@period 0) sends once at @when; a ticker sends at @when and every
 * @period after, and drops a tick while the previous one is still
 * unreceived, as Go does: after a receive, the next tick is the first of
 * @when + k * @period after it. A ticker whose tick nobody receives costs
 * nothing (its hrtimer is armed again only when the tick is received).
 * They work in select, poll and epoll like any channel; send and close on
 * them fail with -EPERM.
 *
 * GOSYNC_IOC_TIMER_STOP stops the timer and discards an unreceived value
 * (Go 1.23 semantics: nothing stale is received after it returns); it
 * returns 1 if that stopped a value from being received (the timer had
 * not fired, or its value was still unreceived), else 0, as Go's Stop.
 * GOSYNC_IOC_TIMER_RESET does the same, then arms the timer anew with its
 * argument; it returns what STOP would have. Bad arguments give -EINVAL
 * and leave the timer as it was.
 */
#define GOSYNC_TIMER_MIN_PERIOD	10000	/* ns: about what delivering a tick takes */

/**
 * struct gosync_timer_set - argument of GOSYNC_IOC_TIMER_CREATE and _RESET
 * @when:     absolute time of the first firing (GOSYNC_DEADLINE_NONE:
 *            created or reset stopped)
 * @period:   0, or the ticker's period in ns (>= GOSYNC_TIMER_MIN_PERIOD)
 * @flags:    0 or GOSYNC_CLOCK_REALTIME
 * @reserved: must be 0
 */
struct gosync_timer_set {
	__u64 when;
	__u64 period;
	__u32 flags;
	__u32 reserved;
};

/*
 * Parking lots: the kernel half of the sync package (Mutex, RWMutex,
 * WaitGroup, Once, Cond, CyclicBarrier).
 *
 * A lot is a page of GOSYNC_LOT_WORDS 64-bit words, zero at creation, that
 * every holder of the fd maps (one page, offset 0, MAP_SHARED) and changes
 * with atomic operations only; plus a kernel queue of threads parked on
 * those words. It is a futex confined to one object:
 *
 *  - GOSYNC_IOC_LOT_PARK puts the caller to sleep on word @index if, under
 *    the lot's lock, (word & @mask) == @expected; otherwise it returns
 *    -EAGAIN at once. It returns 0 once an unpark chose the caller, or
 *    -ETIMEDOUT, or -EINTR on a signal (restarted transparently under
 *    SA_RESTART; the value is compared again). A parked thread that was
 *    chosen by an unpark returns 0 even if its deadline or a signal came
 *    at the same moment, so an unpark is never lost with a waiter that
 *    gives up.
 *  - GOSYNC_IOC_LOT_UNPARK wakes up to @count threads parked on word
 *    @index (all with GOSYNC_LOT_ALL), in queue order, and returns how
 *    many it woke. Parking queues at the back, or at the front with
 *    GOSYNC_LOT_PARK_FRONT (for a waiter that was woken and lost a race:
 *    it keeps its place, as Go's mutex does).
 *  - A hand-off: with GOSYNC_LOT_UNPARK_HANDOFF, the unpark adds @add to
 *    the word for each thread it wakes, atomically and before that thread
 *    runs, and that thread's park returns 1 instead of 0. Whatever the
 *    word then says (a lock's new owner) is true even if the woken thread
 *    dies before it returns to userspace.
 *  - The userspace protocol is the futex one: a thread publishes in the
 *    word that it is about to park, then parks expecting the value it
 *    published; whoever changes the word in a way the sleeper waits for
 *    unparks afterwards. The compare and the queueing happen under the
 *    lock that the unpark takes, so a change made before the unpark is
 *    either seen by the compare (-EAGAIN) or finds the thread queued.
 *
 * The kernel reads a word only to compare it with @expected, and writes
 * one only by the atomic addition of a hand-off; whatever userspace
 * writes there, the kernel stays memory-safe, and only the lot's own
 * users are affected.
 *
 * @kind and @param are labels the creator gives the lot and the kernel
 * keeps (not in the page): which sync primitive the lot implements and
 * its configuration (a barrier's parties), so that a process receiving
 * the fd can check and configure it.
 */
#define GOSYNC_LOT_WORDS	512
#define GOSYNC_LOT_ALL		(~(__u32)0)

/* Flag of GOSYNC_IOC_LOT_PARK, beside GOSYNC_CLOCK_REALTIME. */
#define GOSYNC_LOT_PARK_FRONT	(1U << 1)
/*
 * Flag of GOSYNC_IOC_LOT_PARK (GOSYNC_FEATURE_LOT_UNDO): if the parked
 * thread is killed (a fatal signal) before it is unparked, the kernel
 * sets bit @reserved (0..63, -EINVAL beyond) of the word, but only while
 * (word & @mask) == @expected still holds (one bounded compare-and-swap
 * loop), and unparks every thread parked on the word: libgosync's
 * CyclicBarrier breaks the round of a party that dies inside await.
 */
#define GOSYNC_LOT_PARK_BREAK	(1U << 12)
/* Flag of GOSYNC_IOC_LOT_UNPARK. */
#define GOSYNC_LOT_UNPARK_HANDOFF (1U << 0)

/* Kinds of lot (libgosync's sync primitives). */
#define GOSYNC_LOT_PLAIN	0
#define GOSYNC_LOT_MUTEX	1
#define GOSYNC_LOT_RWMUTEX	2
#define GOSYNC_LOT_WAITGROUP	3
#define GOSYNC_LOT_ONCE		4
#define GOSYNC_LOT_COND		5
#define GOSYNC_LOT_BARRIER	6
#define GOSYNC_LOT_KIND_MAX	GOSYNC_LOT_BARRIER

/*
 * Robust lock words (GOSYNC_FEATURE_ROBUST_LOCK). Word 0 of every lot of
 * kind GOSYNC_LOT_MUTEX or GOSYNC_LOT_RWMUTEX is a lock word the kernel
 * reads when a lock holder dies:
 *   bit 0           GOSYNC_LOCK_LOCKED: held
 *   bits 1, 2       libgosync's STARVING, GOSYNC_LOCK_HANDOFF
 *   bit 3           GOSYNC_LOCK_OWNERDEAD: the last holder died holding it
 *   bit 4           GOSYNC_LOCK_NOTRECOVERABLE: unlocked while OWNERDEAD
 *   bits 8..31      waiters (libgosync's)
 *   bits 32..63     the holder's owner handle, 0 for an anonymous holder
 * An owner handle is a number (1..2^31-1, allocated cyclically) that
 * GOSYNC_IOC_ROBUST_REGISTER on /dev/gosync gives the calling thread; the
 * kernel keeps it with a reference to the thread and its process. The
 * handle dies when the thread says so (GOSYNC_IOC_ROBUST_EXIT, from a
 * thread-exit destructor), when its process exits or execs (seen when the
 * process's descriptor of /dev/gosync is flushed then), or when a robust
 * park finds the thread gone. When a handle dies, every lock word that it
 * holds (LOCKED set, owner field equal to it) is changed in one
 * compare-and-swap to: LOCKED, STARVING, HANDOFF and owner cleared,
 * OWNERDEAD set (a dead holder's starvation mode ends with it);
 * and one thread parked on that word is unparked. The kernel also unparks
 * one waiter of every lock word found unlocked, and every thread parked on
 * word 1 of an RWMutex lot, in case the dead thread changed a word and
 * died before it unparked. What the other bits mean is libgosync's.
 * GOSYNC_LOT_PARK_ROBUST on a park of word 0 gives the kernel the caller's
 * handle (@owner), checks the holder's handle first (a dead or unknown
 * one is handled as above, and the park returns -EAGAIN), and with
 * GOSYNC_LOT_UNPARK_OWNER a hand-off also adds (waiter's @owner << 32).
 */
#define GOSYNC_LOCK_LOCKED	(1ULL << 0)
#define GOSYNC_LOCK_STARVING	(1ULL << 1)
#define GOSYNC_LOCK_HANDOFF	(1ULL << 2)
#define GOSYNC_LOCK_OWNERDEAD	(1ULL << 3)
#define GOSYNC_LOCK_NOTRECOVERABLE (1ULL << 4)
#define GOSYNC_LOCK_OWNER_SHIFT	32
#define GOSYNC_LOCK_OWNER_MAX	0x7fffffffU
/* Flag of GOSYNC_IOC_LOT_PARK (word 0 of a Mutex or RWMutex lot only). */
#define GOSYNC_LOT_PARK_ROBUST	(1U << 5)
/* Flag of GOSYNC_IOC_LOT_UNPARK, with GOSYNC_LOT_UNPARK_HANDOFF. */
#define GOSYNC_LOT_UNPARK_OWNER	(1U << 1)

/*
 * Cond lots (kind GOSYNC_LOT_COND) also queue waiters by ticket, the way
 * Go's runtime notifyList does, so that a Signal wakes exactly one waiter
 * (the oldest) and a Broadcast all those that were waiting, none after:
 *
 *  - Word GOSYNC_COND_TICKETS counts the tickets issued. A waiter takes
 *    ticket t = the word's old value with an atomic fetch-and-add while
 *    it still holds its mutex, then unlocks the mutex, then waits with
 *    GOSYNC_IOC_LOT_COND_WAIT { t }. From the fetch-and-add on it is
 *    waiting, whether or not it has reached the kernel yet.
 *  - The kernel keeps the count of notified tickets (every ticket below
 *    it is notified) and mirrors it into word GOSYNC_COND_NOTIFIED, which
 *    userspace only reads. GOSYNC_IOC_LOT_COND_NOTIFY with count 1 (a
 *    Signal) notifies the oldest ticket still waiting and wakes its
 *    thread if it is parked (one that has not parked yet returns at once
 *    when it does); with GOSYNC_LOT_ALL (a Broadcast) it notifies every
 *    ticket issued. It returns the number of threads it woke. When the
 *    two words are equal nobody waits, and Signal need not enter the
 *    kernel at all.
 *  - COND_WAIT returns 0 once its ticket is notified (also when it was
 *    notified before the call), -ETIMEDOUT or -ECANCELED when it leaves
 *    unnotified, -EINTR on a signal (wait again with the same ticket).
 *    A ticket that leaves unnotified is skipped by later notifications,
 *    so no Signal is spent on a waiter that has gone; a notification
 *    that reached the ticket first wins (the wait returns 0). A ticket
 *    that was never issued, or has left, is -EINVAL.
 *  - COND_WAIT and COND_NOTIFY on a lot of another kind are -ENOTTY.
 *    More than GOSYNC_COND_MAX_GAPS runs of departed tickets still
 *    waiting to be skipped (reachable only by writing the ticket word
 *    by hand) make COND_WAIT fail with -ENOSPC.
 */
#define GOSYNC_COND_TICKETS	0
#define GOSYNC_COND_NOTIFIED	1
#define GOSYNC_COND_MAX_GAPS	4096

/*
 * Parties that die (GOSYNC_FEATURE_LOT_PARTIES). The kernel keeps, per
 * WaitGroup or barrier lot, a record of each process that took part
 * through the two ioctls below, and acts on it when that process can no
 * longer keep its part: when it exits (its last thread), execs, or closes
 * its last descriptor of the lot (an exec that keeps the lot's descriptor
 * is seen through the process's close-on-exec descriptor of /dev/gosync,
 * as libgosync opens it; without one, at the new image's first use of
 * the lot or its exit). Records are per process (thread group),
 * not inherited by fork, charged to the caller, at most
 * GOSYNC_LOT_MAX_PARTIES per lot (-ENOSPC beyond). The word layouts below
 * are libgosync's, which the kernel now shares; whatever userspace writes
 * into the word, the kernel changes it only with bounded compare-and-swap
 * loops (-EAGAIN from an ioctl that lost GOSYNC_SEM_TRIES of them: nothing
 * changed, try again; after as many, a death breaks a WaitGroup with its
 * share left in the counter, and leaves a barrier's round alone).
 *
 * WaitGroup lots (kind GOSYNC_LOT_WAITGROUP), word 0:
 *   bits 0..30   the counter
 *   bit 31       GOSYNC_WG_BROKEN: a party died with its share outstanding
 *   bit 32       GOSYNC_WG_WAITERS: someone waits (or is about to)
 *   bits 33..63  the generation, moved when the counter reaches 0 with
 *                WAITERS set and BROKEN clear (WAITERS is then cleared)
 * Waiters park on (generation, WAITERS, BROKEN). GOSYNC_IOC_LOT_WG_ADD
 * adds @delta to the counter, as Add does, and to the calling process's
 * share: its part of the counter that the kernel undoes if it dies. With
 * GOSYNC_WG_ADOPT (@delta > 0) only the share grows: the process takes
 * over part of a counter that another added (a parent's Add(n) before it
 * forks n workers). It returns the share after the change (@delta 0
 * reads it). Errors: -EOVERFLOW if the counter would leave 0..2^31-1, or
 * an adopt would make the processes' shares exceed the counter; -EPERM
 * if a negative @delta exceeds the caller's share; -ENOTTY on a lot of
 * another kind. When a process with a share dies, the kernel removes the
 * share from the counter, sets BROKEN and unparks every waiter; libgosync's
 * waits then fail with -EOWNERDEAD until the group is recovered (BROKEN
 * cleared by userspace).
 *
 * Barrier lots (kind GOSYNC_LOT_BARRIER, @param = parties), word 0:
 *   bits 0..31   arrivals in the current round
 *   bit 32       GOSYNC_BARRIER_BROKEN
 *   bits 33..63  the round
 * GOSYNC_IOC_LOT_ARRIVE arrives in round @round for the caller (adds one
 * arrival) and records the round in the calling process's record. It
 * returns -EAGAIN if word 0 shows another round (or the swap was lost),
 * -EPIPE if the round is broken and -EBUSY if it is full (its
 * last arriver runs the action: wait for the round to change and arrive
 * again), in both cases changing nothing; 1 if the caller is the last
 * arriver (it runs the action and ends the round); otherwise it parks the
 * caller on word 0 until the round ends or breaks (mask ~0xffffffff, as a
 * park) and returns 0, -ETIMEDOUT, -ECANCELED or -EINTR (never restarted):
 * in all four the caller has arrived. When a process dies whose record
 * names the round word 0 still shows, unbroken, the kernel sets BROKEN and
 * unparks every thread parked on word 0: a party that dies anywhere inside
 * await, parked, before its park or running the action, breaks the round.
 */
#define GOSYNC_LOT_MAX_PARTIES	1024
#define GOSYNC_WG_COUNTER	0x7fffffffULL
#define GOSYNC_WG_BROKEN	(1ULL << 31)
#define GOSYNC_WG_WAITERS	(1ULL << 32)
#define GOSYNC_WG_GEN_SHIFT	33
/* Flag of GOSYNC_IOC_LOT_WG_ADD. */
#define GOSYNC_WG_ADOPT		(1U << 0)
#define GOSYNC_BARRIER_COUNT	0xffffffffULL
#define GOSYNC_BARRIER_BROKEN	(1ULL << 32)
#define GOSYNC_BARRIER_ROUND_SHIFT 33

/**
 * struct gosync_lot_wg_add - argument of GOSYNC_IOC_LOT_WG_ADD
 * @flags:    0 or GOSYNC_WG_ADOPT
 * @reserved: must be 0
 * @delta:    added to the counter and to the caller's share
 */
struct gosync_lot_wg_add {
	__u32 flags;
	__u32 reserved;
	__s64 delta;
};

/**
 * struct gosync_lot_arrive - argument of GOSYNC_IOC_LOT_ARRIVE
 * @flags:    GOSYNC_CLOCK_REALTIME, GOSYNC_WAIT_CANCEL_FD
 * @cancel_fd: with GOSYNC_WAIT_CANCEL_FD, a channel whose close cancels
 *            the park (-ECANCELED); else 0
 * @deadline: absolute deadline of the park in ns
 * @round:    the round to arrive in: if word 0 shows another, -EAGAIN
 */
struct gosync_lot_arrive {
	__u32 flags;
	__s32 cancel_fd;
	__u64 deadline;
	__u64 round;
};

/*
 * Checked locks (GOSYNC_FEATURE_LOCK_CHECK), a flag of a Mutex or RWMutex
 * lot's creation, reported by GOSYNC_IOC_LOT_STATUS. While the module
 * parameter detect_deadlocks is set, every Mutex and RWMutex lot made is
 * checked. A robust park (GOSYNC_LOT_PARK_ROBUST) on a checked lot fails
 * with -EDEADLK, before it sleeps, when the thread that holds word 0 is
 * the caller, or when the park has no deadline and no cancelling channel
 * and the wait-for chain from the holder comes back to the caller: the
 * holder is parked with neither on a checked lot, whose holder is parked
 * so on another, and so on. The contract that makes this sound is the
 * caller's (libgosync keeps it): a checked lock that is held is released
 * only by the thread whose handle it holds, which cannot while parked.
 * The refusal is traced (gosync:gosync_deadlock) and logged, once per
 * pair of lots.
 */
#define GOSYNC_LOT_CHECKED	(1U << 0)

/**
 * struct gosync_lot_create - argument of GOSYNC_IOC_LOT_CREATE
 * @kind:  GOSYNC_LOT_PLAIN .. GOSYNC_LOT_KIND_MAX
 * @flags: 0, or GOSYNC_LOT_CHECKED for a Mutex or RWMutex lot
 * @param: any value, kept for GOSYNC_IOC_LOT_STATUS
 *
 * The ioctl returns the new lot's file descriptor (O_CLOEXEC).
 */
struct gosync_lot_create {
	__u32 kind;
	__u32 flags;
	__u64 param;
};

/**
 * struct gosync_lot_park - argument of GOSYNC_IOC_LOT_PARK
 * @index:    the word, below GOSYNC_LOT_WORDS
 * @flags:    GOSYNC_CLOCK_REALTIME, GOSYNC_LOT_PARK_FRONT,
 *            GOSYNC_WAIT_CANCEL_FD, GOSYNC_LOT_PARK_ROBUST, GOSYNC_LOT_PARK_BREAK
 * @mask:     the bits of the word to compare
 * @expected: park while (word & @mask) == @expected; must lie in @mask
 * @deadline: absolute deadline in ns (see the conventions above)
 * @cancel_fd: with GOSYNC_WAIT_CANCEL_FD, a channel whose close cancels
 *            the park (-ECANCELED); else 0
 * @reserved: must be 0, unless GOSYNC_LOT_PARK_ROBUST is given: then it is
 *            @owner, the caller's owner handle (see robust lock words);
 *            or, with GOSYNC_LOT_PARK_BREAK, the bit to set (0..63)
 */
struct gosync_lot_park {
	__u32 index;
	__u32 flags;
	__u64 mask;
	__u64 expected;
	__u64 deadline;
	__s32 cancel_fd;
	union {
		__u32 reserved;
		__u32 owner;
	};
};

/**
 * struct gosync_lot_unpark - argument of GOSYNC_IOC_LOT_UNPARK
 * @index:    the word, below GOSYNC_LOT_WORDS
 * @count:    how many parked threads to wake at most (GOSYNC_LOT_ALL: all)
 * @flags:    0 or GOSYNC_LOT_UNPARK_HANDOFF
 * @reserved: must be 0
 * @add:      with GOSYNC_LOT_UNPARK_HANDOFF, added to the word (modulo
 *            2^64) for each thread woken; else must be 0
 */
struct gosync_lot_unpark {
	__u32 index;
	__u32 count;
	__u32 flags;
	__u32 reserved;
	__u64 add;
};

/**
 * struct gosync_lot_status - result of GOSYNC_IOC_LOT_STATUS
 * @kind:    as created
 * @parked:  threads parked now (on any word)
 * @param:   as created
 * @parks:   park ioctls so far (including those that found the value
 *           changed): the slow path's count
 * @unparks: unpark ioctls so far
 * @woken:   threads woken by unparks so far
 * @flags:   GOSYNC_LOT_CHECKED if the lot is checked: created so, and no
 *           library older than checked locks has read this status under
 *           GOSYNC_IOC_LOT_STATUS_V1 (which makes it unchecked for good)
 * @reserved: 0
 *
 * A module without GOSYNC_FEATURE_LOCK_CHECK knows the status without
 * @flags and @reserved only, under its own ioctl number; a module with
 * it answers both numbers.
 */
struct gosync_lot_status {
	__u32 kind;
	__u32 parked;
	__u64 param;
	__u64 parks;
	__u64 unparks;
	__u64 woken;
	__u32 flags;
	__u32 reserved;
};

/**
 * struct gosync_lot_cond_wait - argument of GOSYNC_IOC_LOT_COND_WAIT
 * @ticket:   the caller's ticket (see the Cond lots above)
 * @deadline: absolute deadline in ns (see the conventions above)
 * @flags:    GOSYNC_CLOCK_REALTIME, GOSYNC_WAIT_CANCEL_FD
 * @cancel_fd: with GOSYNC_WAIT_CANCEL_FD, a channel whose close cancels
 *            the wait (-ECANCELED); else 0
 */
struct gosync_lot_cond_wait {
	__u64 ticket;
	__u64 deadline;
	__u32 flags;
	__s32 cancel_fd;
};

/*
 * Named objects (GOSYNC_FEATURE_NAMES), POSIX-IPC style.
 *
 * GOSYNC_IOC_NAME_OPEN on /dev/gosync creates (GOSYNC_NAME_CREAT) or opens
 * the semaphore, channel or lot called @name in the caller's IPC
 * namespace, and returns a new fd (O_CLOEXEC) on it with the access asked
 * for in @access. A name is "/" followed by 1 to GOSYNC_NAME_MAX - 1 bytes,
 * none of them "/" (-EINVAL otherwise; -ENAMETOOLONG beyond
 * GOSYNC_NAME_MAX bytes). The object lives while its name or any fd on it
 * exists; GOSYNC_IOC_NAME_UNLINK removes the name only, and a later
 * create makes a new object. A name pins the module (rmmod: -EBUSY).
 *
 *  - On creation: the object is made from the family's create argument in
 *    @create (its flags and reserved fields must be 0, as for the create
 *    ioctls), owned by the caller's fsuid and fsgid, with permission bits
 *    @mode & ~umask (as mq_open(3)); @mode above 0777 is -EINVAL.
 *    -EEXIST with GOSYNC_NAME_EXCL if the name exists; -ENOSPC beyond the
 *    module parameter max_names names in the namespace.
 *  - On open: -ENOENT without GOSYNC_NAME_CREAT if the name does not
 *    exist; -EACCES unless the owner/group/other bits that apply to the
 *    caller (fsuid, fsgid and supplementary groups) grant every access in
 *    @access (read 4, write 2), or the caller has CAP_IPC_OWNER in the
 *    user namespace owning the IPC namespace; then -ENOTTY if the object
 *    is of another @type (or a lot of another kind), -EINVAL if it is a
 *    channel of another elem_size. Other create parameters (a semaphore's
 *    size, a channel's capacity, a lot's param) apply only on creation.
 *
 * The fd is a handle on the object: every ioctl, poll and mmap of the
 * object works on it, and it is accepted wherever the object's fd is
 * (select cases, cancel fds), subject to the access it was opened with;
 * an operation the access does not allow fails with -EBADF (as write(2)
 * on an O_RDONLY fd), mmap with -EACCES:
 *  - channel: GOSYNC_NAME_READ receives (RECV, a select receive case, a
 *    cancel fd); GOSYNC_NAME_WRITE sends and closes; STATUS and KICK need
 *    neither; mmap of the ring needs both (the ring protocol writes both
 *    indices), so a one-way handle works through the ioctls.
 *  - semaphore and lot: STATUS needs READ; every other ioctl and mmap
 *    needs READ and WRITE (each changes, or waits on, the shared state).
 *  - poll and fdinfo need neither.
 *
 * On the fd, GOSYNC_IOC_NAME_STAT reports the object's name attributes;
 * GOSYNC_IOC_NAME_CHMOD (a __u32 mode, at most 0777) and
 * GOSYNC_IOC_NAME_CHOWN (-1 leaves a field as it is) change them, for the
 * owner (the caller's fsuid is the owner uid) or a caller with CAP_FOWNER
 * in the user namespace owning the object's IPC namespace, else -EPERM;
 * an id that the caller's user namespace does not map is -EINVAL. These
 * three are -ENOTTY on an object's own (unnamed) fd. Unlink is allowed to
 * the owner or CAP_FOWNER (mqueue's sticky directory), else -EPERM.
 */
#define GOSYNC_NAME_MAX		255	/* bytes, the leading '/' included */

/* Flags of GOSYNC_IOC_NAME_OPEN. */
#define GOSYNC_NAME_CREAT	(1U << 0)
#define GOSYNC_NAME_EXCL	(1U << 1)

/* Access of GOSYNC_IOC_NAME_OPEN: at least one. */
#define GOSYNC_NAME_READ	(1U << 0)
#define GOSYNC_NAME_WRITE	(1U << 1)

/* Types of named object. */
#define GOSYNC_NAME_SEM		1
#define GOSYNC_NAME_CHAN	2
#define GOSYNC_NAME_LOT		3

/**
 * struct gosync_name_open - argument of GOSYNC_IOC_NAME_OPEN
 * @name:     user address of the NUL-terminated name
 * @flags:    GOSYNC_NAME_CREAT, GOSYNC_NAME_EXCL
 * @access:   GOSYNC_NAME_READ and/or GOSYNC_NAME_WRITE
 * @mode:     permission bits for a creation (0 to 0777)
 * @type:     GOSYNC_NAME_SEM, _CHAN or _LOT
 * @create:   the family's create argument (for @type); its elem_size (a
 *            channel) or kind (a lot) is checked on open too
 */
struct gosync_name_open {
	__u64 name;
	__u32 flags;
	__u32 access;
	__u32 mode;
	__u32 type;
	union {
		struct gosync_sem_create sem;
		struct gosync_chan_create chan;
		struct gosync_lot_create lot;
	} create;
};

/**
 * struct gosync_name_unlink - argument of GOSYNC_IOC_NAME_UNLINK
 * @name:     user address of the NUL-terminated name
 * @flags:    must be 0
 * @reserved: must be 0
 */
struct gosync_name_unlink {
	__u64 name;
	__u32 flags;
	__u32 reserved;
};

/**
 * struct gosync_name_stat - result of GOSYNC_IOC_NAME_STAT
 * @type:   GOSYNC_NAME_SEM, _CHAN or _LOT
 * @kind:   a lot's kind, else 0
 * @uid:    the owner, as the caller's user namespace sees it
 * @gid:    the group, likewise
 * @mode:   the permission bits
 * @access: this fd's GOSYNC_NAME_READ / _WRITE
 * @opens:  open fds (file descriptions) on the object by name
 * @linked: 1 while the name exists, 0 once unlinked
 * @ns_id:  the inode number of the object's IPC namespace
 */
struct gosync_name_stat {
	__u32 type;
	__u32 kind;
	__u32 uid;
	__u32 gid;
	__u32 mode;
	__u32 access;
	__u32 opens;
	__u32 linked;
	__u64 ns_id;
};

/** struct gosync_name_chown - argument of GOSYNC_IOC_NAME_CHOWN */
struct gosync_name_chown {
	__u32 uid;	/* (__u32)-1: unchanged */
	__u32 gid;	/* (__u32)-1: unchanged */
};

#define GOSYNC_IOC_MAGIC	0xC6

/* Ioctls on /dev/gosync itself. */
#define GOSYNC_IOC_VERSION	_IOWR(GOSYNC_IOC_MAGIC, 0x00, struct gosync_version)
#define GOSYNC_IOC_SEM_CREATE	_IOW(GOSYNC_IOC_MAGIC, 0x01, struct gosync_sem_create)
#define GOSYNC_IOC_CHAN_CREATE	_IOW(GOSYNC_IOC_MAGIC, 0x02, struct gosync_chan_create)
#define GOSYNC_IOC_SELECT	_IOWR(GOSYNC_IOC_MAGIC, 0x03, struct gosync_select)
#define GOSYNC_IOC_TIMER_CREATE	_IOW(GOSYNC_IOC_MAGIC, 0x04, struct gosync_timer_set)
#define GOSYNC_IOC_LOT_CREATE	_IOW(GOSYNC_IOC_MAGIC, 0x05, struct gosync_lot_create)
#define GOSYNC_IOC_NAME_OPEN	_IOW(GOSYNC_IOC_MAGIC, 0x06, struct gosync_name_open)
#define GOSYNC_IOC_NAME_UNLINK	_IOW(GOSYNC_IOC_MAGIC, 0x07, struct gosync_name_unlink)
/*
 * Robust lock owners (see robust lock words): REGISTER returns the calling
 * thread's owner handle (the same one while it lives), EXIT declares the
 * calling thread's handle dead (0, or -ENOENT if it has none).
 */
#define GOSYNC_IOC_ROBUST_REGISTER _IO(GOSYNC_IOC_MAGIC, 0x0A)
#define GOSYNC_IOC_ROBUST_EXIT	_IO(GOSYNC_IOC_MAGIC, 0x0B)

/*
 * Ioctls on a semaphore fd. TRY_ACQUIRE takes a __u64 count and fails with
 * -EAGAIN unless the permits are free and nobody waits (Go's TryAcquire).
 * RELEASE takes a __u64 count; releasing more than is held (the count
 * would exceed the size) fails with -EOVERFLOW and changes nothing. Both
 * fail with -EIO, changing nothing, when the state word kept
 * changing under the kernel (a writer outside the protocol above).
 */
#define GOSYNC_IOC_SEM_ACQUIRE	_IOW(GOSYNC_IOC_MAGIC, 0x10, struct gosync_sem_acquire)
#define GOSYNC_IOC_SEM_TRY_ACQUIRE _IOW(GOSYNC_IOC_MAGIC, 0x11, __u64)
#define GOSYNC_IOC_SEM_RELEASE	_IOW(GOSYNC_IOC_MAGIC, 0x12, __u64)
#define GOSYNC_IOC_SEM_STATUS	_IOR(GOSYNC_IOC_MAGIC, 0x13, struct gosync_sem_status)
/*
 * GOSYNC_FEATURE_SEM_UNDO. RELEASE_UNDO takes a __u64 count and gives back
 * permits the calling process took with GOSYNC_SEM_UNDO: -EOVERFLOW if it
 * holds fewer so (nothing changes), else as RELEASE. UNDO_HELD stores the
 * number of permits the calling process holds with undo.
 */
#define GOSYNC_IOC_SEM_RELEASE_UNDO _IOW(GOSYNC_IOC_MAGIC, 0x14, __u64)
#define GOSYNC_IOC_SEM_UNDO_HELD _IOR(GOSYNC_IOC_MAGIC, 0x15, __u64)

/* Ioctls on a channel fd. */
#define GOSYNC_IOC_CHAN_SEND	_IOW(GOSYNC_IOC_MAGIC, 0x20, struct gosync_chan_xfer)
#define GOSYNC_IOC_CHAN_RECV	_IOW(GOSYNC_IOC_MAGIC, 0x21, struct gosync_chan_xfer)
#define GOSYNC_IOC_CHAN_CLOSE	_IO(GOSYNC_IOC_MAGIC, 0x22)
#define GOSYNC_IOC_CHAN_STATUS	_IOR(GOSYNC_IOC_MAGIC, 0x23, struct gosync_chan_status)
#define GOSYNC_IOC_CHAN_KICK	_IO(GOSYNC_IOC_MAGIC, 0x24)
/*
 * The caller's ring id (GOSYNC_FEATURE_CHAN_ROBUST), returned as a
 * positive value: what its reservations in a ring carry. One id per
 * process (thread group), the same on every channel; -ENODEV for a
 * channel without a ring.
 */
#define GOSYNC_IOC_CHAN_RING_ID	_IO(GOSYNC_IOC_MAGIC, 0x25)

/* Ioctls on a timer channel fd. */
#define GOSYNC_IOC_TIMER_STOP	_IO(GOSYNC_IOC_MAGIC, 0x30)
#define GOSYNC_IOC_TIMER_RESET	_IOW(GOSYNC_IOC_MAGIC, 0x31, struct gosync_timer_set)

/* Ioctls on a parking lot fd (UNPARK returns the number woken). */
#define GOSYNC_IOC_LOT_PARK	_IOW(GOSYNC_IOC_MAGIC, 0x40, struct gosync_lot_park)
#define GOSYNC_IOC_LOT_UNPARK	_IOW(GOSYNC_IOC_MAGIC, 0x41, struct gosync_lot_unpark)
#define GOSYNC_IOC_LOT_STATUS	_IOR(GOSYNC_IOC_MAGIC, 0x42, struct gosync_lot_status)
/* The status up to @woken: what a module without LOCK_CHECK answers. */
#define GOSYNC_IOC_LOT_STATUS_V1 _IOC(_IOC_READ, GOSYNC_IOC_MAGIC, 0x42, 40)
/* Ioctls on a Cond lot; NOTIFY takes a __u32 count: 1 or GOSYNC_LOT_ALL. */
#define GOSYNC_IOC_LOT_COND_WAIT _IOW(GOSYNC_IOC_MAGIC, 0x43, struct gosync_lot_cond_wait)
#define GOSYNC_IOC_LOT_COND_NOTIFY _IOW(GOSYNC_IOC_MAGIC, 0x44, __u32)
/* Party records (GOSYNC_FEATURE_LOT_PARTIES): WG_ADD returns the share. */
#define GOSYNC_IOC_LOT_WG_ADD	_IOW(GOSYNC_IOC_MAGIC, 0x48, struct gosync_lot_wg_add)
#define GOSYNC_IOC_LOT_ARRIVE	_IOW(GOSYNC_IOC_MAGIC, 0x49, struct gosync_lot_arrive)

/* Ioctls on an fd opened by name (any type). */
#define GOSYNC_IOC_NAME_STAT	_IOR(GOSYNC_IOC_MAGIC, 0x50, struct gosync_name_stat)
#define GOSYNC_IOC_NAME_CHMOD	_IOW(GOSYNC_IOC_MAGIC, 0x51, __u32)
#define GOSYNC_IOC_NAME_CHOWN	_IOW(GOSYNC_IOC_MAGIC, 0x52, struct gosync_name_chown)

#endif /* _UAPI_GOSYNC_H */
