// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the buffered channel's ring: the pages that mmap() of a
 * buffered channel fd maps, where libgosync sends and receives without a
 * system call (the protocol is the comment above GOSYNC_CHAN_POS_MASK in
 * the uapi header):
 *
 *  - proof of the fast path: a million send/receive pairs, and batches
 *    that fill and drain rings of several capacities and element sizes,
 *    leave the slow-op and kick counters alone (status and fdinfo), and
 *    a thread whose ioctls seccomp forbids still completes them;
 *  - the mapping rules (size, offset, MAP_SHARED, never exec, -ENODEV
 *    for unbuffered and timer channels), the initial header and slots,
 *    the layout (GOSYNC_CHAN_SLOT_SIZE), two mappings of one ring, and
 *    the kernel and a by-hand user following the same protocol;
 *  - kernel waiters: the WAITERS and POLLED flags in the mapped tail,
 *    the library going to the kernel while they are set, the kick after
 *    a fast pop or push, FIFO of queued senders, flags cleared when the
 *    queues empty, poll/epoll woken by fast pushes and pops, and a
 *    ping-pong where every receive races a fast push;
 *  - FIFO and exactly-once delivery under stress, threads and processes
 *    (fork, and SCM_RIGHTS so that the ring is mapped in an unrelated
 *    process), the fast calls mixed with select, deadlines and try calls,
 *    then close and drain;
 *  - close while producers push: no value lost, none after "closed";
 *    a push claimed before the close is received before "closed";
 *  - positions that wrap at 2^48, for any capacity (a ring state
 *    reached after 2^48 values, written by hand);
 *  - garbage in the header and slots (alone, and while threads and a
 *    process use the channel): every call returns a valid result in
 *    bounded time, the channel can still be closed and destroyed;
 *  - SIGKILL of processes blocked in the kernel and of processes using
 *    the fast path at random moments;
 *  - a process that dies (SIGKILL while stopped at the exact step, or
 *    _exit()) in each state of the robust protocol, by hand: a push
 *    reserved at the tail, a push claimed but unpublished, a pop
 *    reserved at the head, a pop past the head that never freed its
 *    slot; what survivors observe (the values, in order, the blocked
 *    ones served, counters balanced in status and fdinfo, laps through
 *    the repaired slot), and that nobody else's reservation is touched.
 *
 * What the tests accept after a process died in the middle of a
 * userspace push or pop following the robust protocol: the value of an
 * unfinished send is lost (the send never completed: it counts in no
 * counter) and receivers pass its position; a value popped by a process
 * that died is lost with it, never received twice. Nothing stays stuck.
 * A by-hand claim that does not follow the protocol (no reservation in
 * the slot, as in dead_claimer_leaves_channel_closable) cannot be told
 * from a slow one: what is behind it stays unreceivable, and the kernel
 * must only stay clean, every call return by its deadline, close and
 * destroy succeed.
 *
 * Worker threads and child processes never use ASSERT/EXPECT: they record
 * what happened, and the test checks it. Every wait that should end by
 * itself has a deadline, so that a bug fails rather than hangs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

/* How long a call that must block is watched to make sure it has not returned. */
#define BLOCKED_MS	30
/* A short deadline that must pass. */
#define SHORT_MS	20
/*
 * What a call that must not wait may take: only the watchdog of a hang
 * (what shows that it did not wait is its result, not its speed).
 */
#define AT_ONCE_MS	WAIT_LIMIT_MS
/* Watchdog of a thread or process running a whole stress loop. */
#define STRESS_LIMIT_MS	(15 * 60 * 1000)

#define FLAGS_MASK	(~GOSYNC_CHAN_POS_MASK)
#define ALL_FLAGS	(GOSYNC_CHAN_CLOSED | GOSYNC_CHAN_SEND_WAITERS | \
			 GOSYNC_CHAN_RECV_WAITERS | GOSYNC_CHAN_POLLED_IN | \
			 GOSYNC_CHAN_POLLED_OUT)

#define P_IN		(POLLIN | POLLRDNORM)
#define P_OUT		(POLLOUT | POLLWRNORM)

/* The million pairs of the fast-path proof. */
#define FAST_PAIRS	1000000

/* Stress: producers and consumers, values per producer. */
#define ST_PRODUCERS	4
#define ST_CONSUMERS	4
#define ST_N		((uint32_t)gs_stress(4000, 800))	/* per producer */
/* Stress across processes: producer processes, values each. */
#define XP_PRODUCERS	2
#define XP_N		((uint32_t)gs_stress(5000, 1000))

/* Values are (id + 1) << 32 | q: never 0, the zero value of "closed". */
#define VAL(id, q)	((uint64_t)((id) + 1) << 32 | (uint32_t)(q))
#define VAL_ID(v)	((uint32_t)((v) >> 32) - 1)
#define VAL_Q(v)	((uint32_t)(v))

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* The size of a ring's mapping: the header page, then the slots. */
static size_t ring_bytes(uint32_t elem, uint32_t cap)
{
	size_t pg = page_size();
	size_t slots = (size_t)GOSYNC_CHAN_SLOT_SIZE(elem) * cap;

	return pg + (slots + pg - 1) / pg * pg;
}

/* Byte j of test value number @seed: differs between values and offsets. */
static void pattern(unsigned char *p, size_t size, unsigned int seed)
{
	for (size_t j = 0; j < size; j++)
		p[j] = (unsigned char)(seed * 151u + j * 7u + (j >> 8) * 29u + 1u);
}

static bool pattern_ok(const unsigned char *p, size_t size, unsigned int seed)
{
	for (size_t j = 0; j < size; j++)
		if (p[j] != (unsigned char)(seed * 151u + j * 7u + (j >> 8) * 29u + 1u))
			return false;
	return true;
}

static int raw_status(int fd, struct gosync_chan_status *st)
{
	memset(st, 0xa5, sizeof(*st));
	return xioctl(fd, GOSYNC_IOC_CHAN_STATUS, st);
}

static int raw_xfer(int fd, bool send, void *val, uint64_t deadline,
		    uint32_t flags)
{
	struct gosync_chan_xfer x = {
		.value = (uintptr_t)val, .deadline = deadline, .flags = flags,
	};

	return xioctl(fd, send ? GOSYNC_IOC_CHAN_SEND : GOSYNC_IOC_CHAN_RECV, &x);
}

static int raw_kick(int fd)
{
	return xioctl(fd, GOSYNC_IOC_CHAN_KICK, NULL);
}

/* Slow ops and kicks, both in the status ioctl and in fdinfo. */
#define EXPECT_SLOW(ch, slow_, kicks_) do {				\
	struct gosync_chan_status sst_;					\
	ASSERT_EQ(0, chan_status_of((ch), &sst_));			\
	EXPECT_EQ((uint64_t)(slow_), sst_.slow_ops);			\
	EXPECT_EQ((uint64_t)(kicks_), sst_.kicks);			\
	EXPECT_EQ((long long)(slow_),					\
		  fdinfo_num(gs_chan_fd(ch), "slow-ops"));		\
	EXPECT_EQ((long long)(kicks_), fdinfo_num(gs_chan_fd(ch), "kicks")); \
} while (0)

/* Wait until exactly @senders and @receivers are blocked on @ch. */
static int wait_waiters(gs_chan *ch, uint32_t senders, uint32_t receivers)
{
	return wait_chan_waiters(ch, (int)senders, (int)receivers);
}

/* ------------------------------------------------------------------ */
/* A mapping of a ring, to look at it and to use it by hand            */

struct ring {
	unsigned char *base;
	size_t bytes;
	uint32_t elem, cap, slot;
	_Atomic uint64_t *tail, *head;
};

static int ring_map(struct ring *r, int fd, uint32_t elem, uint32_t cap)
{
	void *p;

	memset(r, 0, sizeof(*r));
	r->bytes = ring_bytes(elem, cap);
	p = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->base = p;
	r->elem = elem;
	r->cap = cap;
	r->slot = GOSYNC_CHAN_SLOT_SIZE(elem);
	r->tail = (_Atomic uint64_t *)(r->base +
				       offsetof(struct gosync_chan_shared, tail));
	r->head = (_Atomic uint64_t *)(r->base +
				       offsetof(struct gosync_chan_shared, head));
	return 0;
}

static int ring_map_chan(struct ring *r, gs_chan *ch)
{
	return ring_map(r, gs_chan_fd(ch), (uint32_t)gs_chan_elem_size(ch),
			gs_chan_cap(ch));
}

static void ring_unmap(struct ring *r)
{
	if (r->base)
		munmap(r->base, r->bytes);
	r->base = NULL;
}

/* Slot @i (an index below the capacity): its sequence, then its value. */
static _Atomic uint64_t *ring_seq(struct ring *r, uint64_t i)
{
	return (_Atomic uint64_t *)(r->base + page_size() +
				    (size_t)(i % r->cap) * r->slot);
}

static unsigned char *ring_val(struct ring *r, uint64_t i)
{
	return (unsigned char *)(ring_seq(r, i) + 1);
}

static uint64_t ring_flags(struct ring *r)
{
	return atomic_load(r->tail) & FLAGS_MASK;
}

static uint64_t pos_add(struct ring *r, uint64_t pos, uint64_t n)
{
	return (pos + n) % gosync_chan_pos_modulus(r->cap);
}

/* A slot free for @pos holds 2 * pos; one with @pos's value, 2 * pos + 1. */
static uint64_t seqno(uint64_t pos, bool full)
{
	return (pos << 1) | full;
}

/* Wait (bounded) until (tail & @mask) == @want. */
static int wait_flags(struct ring *r, uint64_t mask, uint64_t want)
{
	uint64_t end = mono_ns() + WAIT_LIMIT_MS * NS_PER_MS;

	while ((atomic_load(r->tail) & mask) != want) {
		if (mono_ns() > end)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

/* The sane state of a fresh ring: positions 0, slot i free for i. */
static void ring_reset(struct ring *r)
{
	for (uint32_t i = 0; i < r->cap; i++)
		atomic_store(ring_seq(r, i), seqno(i, false));
	atomic_store(r->head, 0);
	atomic_store(r->tail, 0);
}

/*
 * Claim the next position by hand, as a pusher does, whatever the flags
 * say (a pusher that read the tail before a flag was set). -EAGAIN if
 * the slot is not free for it.
 */
static int hand_claim(struct ring *r, uint64_t *pos)
{
	uint64_t tail = atomic_load(r->tail);
	uint64_t p = tail & GOSYNC_CHAN_POS_MASK;

	if (atomic_load(ring_seq(r, p)) != seqno(p, false))
		return -EAGAIN;
	if (!atomic_compare_exchange_strong(r->tail, &tail,
					    (tail & FLAGS_MASK) |
					    pos_add(r, p, 1)))
		return -EBUSY;
	*pos = p;
	return 0;
}

static void hand_publish(struct ring *r, uint64_t pos, const void *val)
{
	if (r->elem)
		memcpy(ring_val(r, pos), val, r->elem);
	atomic_store_explicit(ring_seq(r, pos), seqno(pos, true),
			      memory_order_release);
}

static int hand_push(struct ring *r, const void *val)
{
	uint64_t pos;
	int err = hand_claim(r, &pos);

	if (!err)
		hand_publish(r, pos, val);
	return err;
}

/* Pop by hand: 0, or -EAGAIN if the head's value is not published. */
static int hand_pop(struct ring *r, void *val)
{
	uint64_t head = atomic_load(r->head);
	uint64_t p = head & GOSYNC_CHAN_POS_MASK;

	if (atomic_load_explicit(ring_seq(r, p), memory_order_acquire) !=
	    seqno(p, true))
		return -EAGAIN;
	if (!atomic_compare_exchange_strong(r->head, &head, pos_add(r, p, 1)))
		return -EBUSY;
	if (r->elem)
		memcpy(val, ring_val(r, p), r->elem);
	atomic_store_explicit(ring_seq(r, p), seqno(pos_add(r, p, r->cap), false),
			      memory_order_release);
	return 0;
}

/* ------------------------------------------------------------------ */
/* One call in a thread of its own                                     */

enum op_kind { OP_SEND, OP_RECV, OP_POLL, OP_EPOLL };

struct op {
	enum op_kind kind;
	gs_chan *ch;
	int fd;			/* OP_POLL: the channel; OP_EPOLL: the epoll */
	uint64_t val;
	uint64_t deadline;
	short events;		/* OP_POLL */
	int timeout_ms;		/* OP_POLL, OP_EPOLL */
	int ret;
	uint32_t revents;
	atomic_bool done;
	pthread_t tid;
};

static void *op_main(void *arg)
{
	struct op *op = arg;
	struct pollfd p;
	struct epoll_event ev;

	switch (op->kind) {
	case OP_SEND:
		op->ret = gs_chan_send_until(op->ch, &op->val, op->deadline, 0);
		break;
	case OP_RECV:
		op->ret = gs_chan_recv_until(op->ch, &op->val, op->deadline, 0);
		break;
	case OP_POLL:
		p.fd = op->fd;
		p.events = op->events;
		p.revents = 0;
		op->ret = poll(&p, 1, op->timeout_ms);
		if (op->ret < 0)
			op->ret = -errno;
		op->revents = (uint16_t)p.revents;
		break;
	case OP_EPOLL:
		memset(&ev, 0, sizeof(ev));
		op->ret = epoll_wait(op->fd, &ev, 1, op->timeout_ms);
		if (op->ret < 0)
			op->ret = -errno;
		op->revents = ev.events;
		break;
	}
	atomic_store(&op->done, true);
	return NULL;
}

static int op_start(struct op *op, enum op_kind kind, gs_chan *ch,
		    uint64_t val)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->ch = ch;
	op->fd = ch ? gs_chan_fd(ch) : -1;
	op->val = val;
	op->deadline = limit();
	op->timeout_ms = WAIT_LIMIT_MS;
	op->ret = INT_MIN;
	atomic_init(&op->done, false);
	return pthread_create(&op->tid, NULL, op_main, op);
}

static int op_start_poll(struct op *op, enum op_kind kind, int fd,
			 short events)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->fd = fd;
	op->events = events;
	op->timeout_ms = WAIT_LIMIT_MS;
	op->ret = INT_MIN;
	atomic_init(&op->done, false);
	return pthread_create(&op->tid, NULL, op_main, op);
}

/* Wait (bounded) for the call to return, then join. */
static int op_join_ms(struct op *op, unsigned int ms)
{
	uint64_t end = mono_ns() + ms * NS_PER_MS;

	while (!atomic_load(&op->done)) {
		if (mono_ns() > end)
			return -ETIMEDOUT;
		usleep(200);
	}
	pthread_join(op->tid, NULL);
	return 0;
}

static int op_join(struct op *op)
{
	return op_join_ms(op, WAIT_LIMIT_MS);
}

/* The long-running tests (every test has GS_TEST_TIMEOUT_S, gs_test.h). */
FIXTURE(slow) {
	int unused;
};

FIXTURE_SETUP(slow)
{
	self->unused = 0;
}

FIXTURE_TEARDOWN(slow)
{
}

/* ================================================================== */
/* 1. Proof of the fast path                                          */

TEST(fast_path_million_pairs_make_no_system_call)
{
	struct gosync_chan_status st;
	long bad = 0;
	struct ring r;
	gs_chan *ch;
	uint64_t t0, v;
	int fd;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	fd = gs_chan_fd(ch);
	EXPECT_SLOW(ch, 0, 0);
	EXPECT_COUNTS(ch, 0, 0);

	t0 = mono_ns();
	for (uint64_t i = 0; i < FAST_PAIRS; i++) {
		v = ~0ULL;
		bad += gs_chan_send(ch, &i) != 0;
		bad += gs_chan_recv(ch, &v) != 1;
		bad += v != i;
	}
	TH_LOG("%d pairs in %ju ms", FAST_PAIRS,
	       (uintmax_t)((mono_ns() - t0) / NS_PER_MS));
	EXPECT_EQ(0, bad);
	/* Nothing went to the kernel, yet it counts every value. */
	EXPECT_SLOW(ch, 0, 0);
	EXPECT_COUNTS(ch, FAST_PAIRS, FAST_PAIRS);
	EXPECT_EQ(FAST_PAIRS, fdinfo_num(fd, "sends"));
	EXPECT_EQ(FAST_PAIRS, fdinfo_num(fd, "recvs"));
	EXPECT_EQ(0, fdinfo_num(fd, "len"));
	EXPECT_STATE(ch, 0, 0, 0, 0);
	/* The positions in the page moved by as much, with no flag. */
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	EXPECT_EQ(FAST_PAIRS, atomic_load(r.tail));
	EXPECT_EQ(FAST_PAIRS, atomic_load(r.head));

	/* The other calls stay in userspace too, when they can. */
	for (uint64_t i = 0; i < 10000; i++) {
		v = ~0ULL;
		bad += gs_chan_try_send(ch, &i) != 0;
		bad += gs_chan_send_until(ch, &i, gs_deadline_in(NS_PER_SEC), 0);
		bad += gs_chan_send_until(ch, &i, 0, GS_CLOCK_REALTIME);
		bad += gs_chan_try_recv(ch, &v) != 1 || v != i;
		bad += gs_chan_recv_until(ch, &v, 0, 0) != 1 || v != i;
		bad += gs_chan_recv_until(ch, &v, gs_deadline_in(NS_PER_SEC),
					  0) != 1 || v != i;
	}
	EXPECT_EQ(0, bad);
	EXPECT_SLOW(ch, 0, 0);
	EXPECT_COUNTS(ch, FAST_PAIRS + 30000, FAST_PAIRS + 30000);

	/* What must go to the kernel counts exactly once per call. */
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	EXPECT_SLOW(ch, 1, 0);
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(ch, &v, 0, 0));
	EXPECT_SLOW(ch, 2, 0);
	ASSERT_EQ(0, chan_status_of(ch, &st));
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(0, raw_kick(fd));
	EXPECT_SLOW(ch, 2, 1);
	EXPECT_EQ(0, ring_flags(&r));
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

/* A thread whose every ioctl fails still sends and receives. */
struct seccomp_run {
	gs_chan *ch;
	int installed;		/* 0, or -errno of the prctl */
	long bad;
	int slow_ret;		/* what a call that needs the kernel returned */
};

static void *seccomp_main(void *arg)
{
	struct seccomp_run *s = arg;
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EL2HLT),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = ARRAY_SIZE(filter), .filter = filter,
	};
	uint64_t v;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		s->installed = -errno;
		return NULL;
	}
	for (uint64_t i = 0; i < 100000; i++) {
		v = ~0ULL;
		s->bad += gs_chan_send(s->ch, &i) != 0;
		s->bad += gs_chan_send(s->ch, &i) != 0;
		s->bad += gs_chan_recv(s->ch, &v) != 1 || v != i;
		s->bad += gs_chan_try_recv(s->ch, &v) != 1 || v != i;
	}
	/* The filter works: what needs the kernel fails. */
	s->slow_ret = gs_chan_try_recv(s->ch, &v);
	return NULL;
}

TEST(fast_path_works_with_ioctl_forbidden)
{
	struct seccomp_run s = { 0 };
	pthread_t tid;

	ASSERT_EQ(0, gs_chan_make(&s.ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, pthread_create(&tid, NULL, seccomp_main, &s));
	ASSERT_EQ(0, join_ms(tid, 4 * WAIT_LIMIT_MS));
	if (s.installed == -EINVAL || s.installed == -ENOSYS) {
		gs_chan_destroy(s.ch);
		SKIP(return, "no seccomp filters in this kernel");
	}
	ASSERT_EQ(0, s.installed);
	EXPECT_EQ(0, s.bad);
	EXPECT_EQ(-EL2HLT, s.slow_ret);
	EXPECT_SLOW(s.ch, 0, 0);
	EXPECT_COUNTS(s.ch, 200000, 200000);
	gs_chan_destroy(s.ch);
}

/* Fill to capacity, drain, three times (so positions lap the ring). */
FIXTURE(batch) {
	gs_chan *ch;
	struct ring r;
	unsigned char *buf;
};

FIXTURE_VARIANT(batch) {
	uint32_t cap;
	uint32_t size;
};

#define BATCH(c, s) \
	FIXTURE_VARIANT_ADD(batch, cap##c##_size##s) { .cap = c, .size = s }
BATCH(1, 0);
BATCH(1, 1);
BATCH(1, 8);
BATCH(1, 24);
BATCH(1, 4096);
BATCH(2, 0);
BATCH(2, 1);
BATCH(2, 8);
BATCH(2, 24);
BATCH(2, 4096);
BATCH(7, 0);
BATCH(7, 1);
BATCH(7, 8);
BATCH(7, 24);
BATCH(7, 4096);
BATCH(1024, 0);
BATCH(1024, 1);
BATCH(1024, 8);
BATCH(1024, 24);
BATCH(1024, 4096);

FIXTURE_SETUP(batch)
{
	self->ch = NULL;
	self->buf = malloc(variant->size + 1);
	ASSERT_NE(NULL, self->buf);
	ASSERT_EQ(0, gs_chan_make(&self->ch, variant->size, variant->cap));
	ASSERT_EQ(0, ring_map_chan(&self->r, self->ch));
}

FIXTURE_TEARDOWN(batch)
{
	ring_unmap(&self->r);
	gs_chan_destroy(self->ch);
	free(self->buf);
}

TEST_F(batch, fill_and_drain_stay_in_userspace)
{
	const uint32_t cap = variant->cap, size = variant->size;
	struct ring *r = &self->r;
	unsigned char *buf = self->buf;
	uint64_t slow = 0, n = 0;
	long bad_send = 0, bad_slot = 0, bad_recv = 0;

	for (uint32_t round = 0; round < 3; round++) {
		uint64_t base = (uint64_t)round * cap;

		for (uint32_t i = 0; i < cap; i++) {
			pattern(buf, size, (unsigned int)(base + i));
			bad_send += gs_chan_send_until(self->ch, buf, limit(),
						       0) != 0;
		}
		/* The ring in the page: full, each value in its slot. */
		EXPECT_EQ(base + cap, atomic_load(r->tail));
		EXPECT_EQ(base, atomic_load(r->head));
		for (uint32_t i = 0; i < cap; i++) {
			uint64_t pos = base + i;

			bad_slot += atomic_load(ring_seq(r, pos)) !=
				    seqno(pos, true);
			bad_slot += !pattern_ok(ring_val(r, pos), size,
						(unsigned int)pos);
		}
		EXPECT_STATE(self->ch, cap, 0, 0, 0);
		/* Full: the try goes to the kernel, once, and fails. */
		EXPECT_EQ(-EAGAIN, gs_chan_try_send(self->ch, buf));
		slow++;
		EXPECT_SLOW(self->ch, slow, 0);
		for (uint32_t i = 0; i < cap; i++) {
			memset(buf, 0xee, size);
			bad_recv += gs_chan_recv_until(self->ch, buf, limit(),
						       0) != 1;
			bad_recv += !pattern_ok(buf, size,
						(unsigned int)(base + i));
		}
		/* Each slot is free for the next lap. */
		for (uint32_t i = 0; i < cap; i++)
			bad_slot += atomic_load(ring_seq(r, base + i)) !=
				    seqno(base + i + cap, false);
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, buf));
		slow++;
		EXPECT_SLOW(self->ch, slow, 0);
		n += cap;
		EXPECT_COUNTS(self->ch, n, n);
		EXPECT_EQ(0, ring_flags(r));
	}
	EXPECT_EQ(0, bad_send);
	EXPECT_EQ(0, bad_slot);
	EXPECT_EQ(0, bad_recv);
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
}

/* ================================================================== */
/* 2. The mapping                                                      */

TEST(mmap_rules)
{
	const size_t pg = page_size();
	const size_t size = ring_bytes(sizeof(uint64_t), 4);
	struct gosync_chan_status st;
	struct ring a, b;
	gs_chan *ch, *unbuf, *timer;
	uint64_t v;
	void *p;
	int fd, fd2;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	fd = gs_chan_fd(ch);
	ASSERT_EQ(2 * pg, size);

	/* Wrong sizes, offsets, sharing and protections. */
	p = mmap(NULL, size - pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, size + pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pg);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pg);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, size, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EPERM, errno);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED,
		 fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EPERM, errno);

	/* Unbuffered and timer channels have no ring to map. */
	ASSERT_EQ(0, gs_chan_make(&unbuf, sizeof(uint64_t), 0));
	for (size_t n = 1; n <= 2; n++) {
		p = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_SHARED,
			 gs_chan_fd(unbuf), 0);
		EXPECT_EQ(MAP_FAILED, p);
		EXPECT_EQ(ENODEV, errno);
	}
	ASSERT_EQ(0, gs_after(&timer, 3600 * NS_PER_SEC));
	for (size_t n = 1; n <= 2; n++) {
		p = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_SHARED,
			 gs_chan_fd(timer), 0);
		EXPECT_EQ(MAP_FAILED, p);
		EXPECT_EQ(ENODEV, errno);
		p = mmap(NULL, n * pg, PROT_READ, MAP_SHARED,
			 gs_chan_fd(timer), 0);
		EXPECT_EQ(MAP_FAILED, p);
		EXPECT_EQ(ENODEV, errno);
	}
	/* Which still work, without a ring of their own. */
	v = 1;
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(unbuf, &v));
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(timer, &v));
	gs_chan_destroy(unbuf);
	gs_chan_destroy(timer);

	/* The right mapping: a fresh ring. */
	ASSERT_EQ(0, ring_map(&a, fd, sizeof(uint64_t), 4));
	EXPECT_EQ(0, atomic_load(a.tail));
	EXPECT_EQ(0, atomic_load(a.head));
	EXPECT_TRUE(all_bytes(a.base + 8, 0, 64 - 8));	/* pad1 */
	EXPECT_TRUE(all_bytes(a.base + 72, 0, pg - 72));	/* pad2 and on */
	for (uint32_t i = 0; i < 4; i++) {
		EXPECT_EQ(seqno(i, false), atomic_load(ring_seq(&a, i)));
		EXPECT_EQ(2 * i, atomic_load(ring_seq(&a, i)));
	}
	/* Nothing but zeroes after the slots: the kernel leaks nothing. */
	EXPECT_TRUE(all_bytes(ring_val(&a, 0), 0, 8));
	EXPECT_TRUE(all_bytes(a.base + pg + 4 * 16, 0, pg - 4 * 16));

	/* A second mapping, read-only, and a third in a dup'ed fd. */
	fd2 = dup(fd);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, ring_map(&b, fd2, sizeof(uint64_t), 4));
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, memcmp(a.base, b.base, size));
	EXPECT_EQ(0, memcmp(a.base, p, size));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 0x1122334455667788ULL));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 0x99));
	EXPECT_EQ(2, atomic_load(b.tail));
	EXPECT_EQ(1, atomic_load(ring_seq(&b, 0)));
	EXPECT_EQ(3, atomic_load(ring_seq(&b, 1)));
	memcpy(&v, ring_val(&b, 0), 8);
	EXPECT_EQ(0x1122334455667788ULL, v);
	EXPECT_EQ(0, memcmp(a.base, b.base, size));
	EXPECT_EQ(0, memcmp(a.base, p, size));
	/* Written through one mapping, seen by the kernel and the others. */
	v = 0xabcdef;
	memcpy(ring_val(&a, 1), &v, 8);
	EXPECT_EQ(0, memcmp(a.base, b.base, size));
	ASSERT_EQ(0, chan_status_of(ch, &st));
	EXPECT_EQ(2, st.len);
	EXPECT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(0x1122334455667788ULL, v);
	EXPECT_EQ(1, raw_xfer(fd, false, &v, 0, GOSYNC_CHAN_TRY));
	EXPECT_EQ(0xabcdef, v);
	EXPECT_EQ(2, atomic_load((_Atomic uint64_t *)((char *)p + 64)));

	/* Never executable, never larger. */
	EXPECT_EQ(-1, mprotect(p, size, PROT_READ | PROT_EXEC));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(-1, mprotect(a.base, size, PROT_READ | PROT_WRITE | PROT_EXEC));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(MAP_FAILED, mremap(a.base, size, size + pg, MREMAP_MAYMOVE));

	/* The pages outlive every fd while mapped. */
	gs_chan_destroy(ch);
	close(fd2);
	EXPECT_EQ(2, atomic_load(a.tail));
	atomic_store(a.tail, 5);
	EXPECT_EQ(5, atomic_load(b.tail));
	munmap(p, size);
	ring_unmap(&a);
	ring_unmap(&b);
}

/*
 * The layout, for element sizes that round up differently and slots that
 * cross pages: the kernel's pushes land where GOSYNC_CHAN_SLOT_SIZE says,
 * a by-hand pop and push following the protocol interleave with the
 * kernel's and the library's.
 */
TEST(layout_and_protocol_shared_with_kernel)
{
	static const uint32_t sizes[] = { 0, 1, 8, 24, 4096, 5000 };
	static const uint32_t caps[] = { 3, 5, 1 };

	for (size_t si = 0; si < ARRAY_SIZE(sizes); si++) {
		for (size_t ci = 0; ci < ARRAY_SIZE(caps); ci++) {
			const uint32_t size = sizes[si], cap = caps[ci];
			unsigned char *buf = malloc(size + 1);
			struct ring r;
			gs_chan *ch;
			int fd;

			ASSERT_NE(NULL, buf);
			ASSERT_EQ(0, gs_chan_make(&ch, size, cap));
			fd = gs_chan_fd(ch);
			ASSERT_EQ(0, ring_map_chan(&r, ch));
			EXPECT_EQ(8 + ((size + 7) & ~7U), r.slot);
			/* The kernel fills the ring (raw ioctls). */
			for (uint32_t i = 0; i < cap; i++) {
				pattern(buf, size, 100 + i);
				ASSERT_EQ(0, raw_xfer(fd, true, buf, 0,
						      GOSYNC_CHAN_TRY));
			}
			EXPECT_EQ(-EAGAIN, raw_xfer(fd, true, buf, 0,
						    GOSYNC_CHAN_TRY));
			EXPECT_EQ(cap, atomic_load(r.tail));
			for (uint32_t i = 0; i < cap; i++) {
				unsigned char *s = r.base + page_size() +
						   (size_t)i * r.slot;

				EXPECT_EQ(2 * i + 1, *(uint64_t *)s)
					TH_LOG("size %u cap %u slot %u", size,
					       cap, i);
				EXPECT_TRUE(pattern_ok(s + 8, size, 100 + i))
					TH_LOG("size %u cap %u slot %u", size,
					       cap, i);
				/* The padding of the slot stays zero. */
				EXPECT_TRUE(all_bytes(s + 8 + size, 0,
						      r.slot - 8 - size));
			}
			/* A pop by hand takes the oldest... */
			memset(buf, 0, size);
			ASSERT_EQ(0, hand_pop(&r, buf));
			EXPECT_TRUE(pattern_ok(buf, size, 100));
			EXPECT_EQ(2 * cap, atomic_load(ring_seq(&r, 0)));
			/* ... a push by hand fills the freed slot... */
			pattern(buf, size, 200);
			ASSERT_EQ(0, hand_push(&r, buf));
			EXPECT_EQ(-EAGAIN, hand_push(&r, buf));
			/* ... and the kernel and the library agree on order. */
			for (uint32_t i = 1; i <= cap; i++) {
				unsigned int want = i < cap ? 100 + i : 200;

				memset(buf, 0xee, size);
				if (i % 2) {
					EXPECT_EQ(1, raw_xfer(fd, false, buf, 0,
							      GOSYNC_CHAN_TRY));
				} else {
					EXPECT_EQ(1, gs_chan_try_recv(ch, buf));
				}
				EXPECT_TRUE(pattern_ok(buf, size, want))
					TH_LOG("size %u cap %u value %u", size,
					       cap, i);
			}
			EXPECT_EQ(-EAGAIN, hand_pop(&r, buf));
			EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, buf));
			EXPECT_EQ(cap + 1, atomic_load(r.tail));
			EXPECT_EQ(cap + 1, atomic_load(r.head));
			EXPECT_COUNTS(ch, cap + 1, cap + 1);
			EXPECT_EQ(0, ring_flags(&r));
			ring_unmap(&r);
			gs_chan_destroy(ch);
			free(buf);
		}
	}
}

/* ================================================================== */
/* 3. Kernel waiters and the flags                                    */

TEST(blocked_receiver_sets_flag_and_library_send_serves_it)
{
	struct op r1, r2;
	struct ring r;
	gs_chan *ch;
	uint64_t v;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	ASSERT_EQ(0, ring_map_chan(&r, ch));

	ASSERT_EQ(0, op_start(&r1, OP_RECV, ch, 0));
	ASSERT_EQ(0, wait_waiters(ch, 0, 1));
	/* The sleeper said so in the page, and nothing else. */
	EXPECT_EQ(GOSYNC_CHAN_RECV_WAITERS, ring_flags(&r));
	EXPECT_EQ(0, atomic_load(r.tail) & GOSYNC_CHAN_POS_MASK);
	EXPECT_SLOW(ch, 1, 0);
	ASSERT_EQ(0, op_start(&r2, OP_RECV, ch, 0));
	ASSERT_EQ(0, wait_waiters(ch, 0, 2));
	EXPECT_EQ(GOSYNC_CHAN_RECV_WAITERS, ring_flags(&r));

	/* The library's send sees the flag and hands over in the kernel. */
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 41));
	ASSERT_EQ(0, op_join(&r1));
	EXPECT_EQ(1, r1.ret);
	EXPECT_EQ(41, r1.val);
	EXPECT_FALSE(atomic_load(&r2.done));
	EXPECT_EQ(GOSYNC_CHAN_RECV_WAITERS, ring_flags(&r));
	EXPECT_SLOW(ch, 3, 0);
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 42));
	ASSERT_EQ(0, op_join(&r2));
	EXPECT_EQ(1, r2.ret);
	EXPECT_EQ(42, r2.val);
	/* The queue is empty: so is the flag, and the fast path is back. */
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_SLOW(ch, 4, 0);
	EXPECT_STATE(ch, 0, 0, 0, 0);
	EXPECT_COUNTS(ch, 2, 2);
	EXPECT_EQ(0, GS_SEND(ch, uint64_t, 43));
	EXPECT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(43, v);
	EXPECT_SLOW(ch, 4, 0);
	EXPECT_COUNTS(ch, 3, 3);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

/*
 * A pusher that read the tail before the sleeper's flag (by hand here)
 * leaves the receiver asleep until it kicks; the kick serves it. A second
 * value pushed the same way is served by the next kernel operation, the
 * library's send, before that send's own value (FIFO).
 */
TEST(push_that_missed_the_flag_is_served_by_kick)
{
	struct op r1, r2;
	struct ring r;
	gs_chan *ch;
	uint64_t v;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	ASSERT_EQ(0, op_start(&r1, OP_RECV, ch, 0));
	ASSERT_EQ(0, wait_flags(&r, GOSYNC_CHAN_RECV_WAITERS,
				GOSYNC_CHAN_RECV_WAITERS));
	ASSERT_EQ(0, wait_waiters(ch, 0, 1));

	v = 7;
	ASSERT_EQ(0, hand_push(&r, &v));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&r1.done));
	EXPECT_STATE(ch, 1, 0, 1, 0);
	/* The pusher reads the flag after publishing, and kicks. */
	EXPECT_EQ(GOSYNC_CHAN_RECV_WAITERS, ring_flags(&r));
	EXPECT_EQ(0, raw_kick(gs_chan_fd(ch)));
	ASSERT_EQ(0, op_join_ms(&r1, AT_ONCE_MS));
	EXPECT_EQ(1, r1.ret);
	EXPECT_EQ(7, r1.val);
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_SLOW(ch, 1, 1);

	ASSERT_EQ(0, op_start(&r2, OP_RECV, ch, 0));
	ASSERT_EQ(0, wait_waiters(ch, 0, 1));
	v = 8;
	ASSERT_EQ(0, hand_push(&r, &v));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 9));
	ASSERT_EQ(0, op_join(&r2));
	EXPECT_EQ(1, r2.ret);
	EXPECT_EQ(8, r2.val);
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_EQ(1, gs_chan_try_recv(ch, &v));
	EXPECT_EQ(9, v);
	EXPECT_SLOW(ch, 3, 1);
	EXPECT_COUNTS(ch, 3, 3);
	EXPECT_STATE(ch, 0, 0, 0, 0);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

TEST(blocked_senders_are_served_by_fast_pops_in_fifo_order)
{
	struct op s3, s4;
	struct ring r;
	gs_chan *ch;
	uint64_t v;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 1));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 2));
	EXPECT_SLOW(ch, 0, 0);

	ASSERT_EQ(0, op_start(&s3, OP_SEND, ch, 3));
	ASSERT_EQ(0, wait_waiters(ch, 1, 0));
	EXPECT_EQ(GOSYNC_CHAN_SEND_WAITERS, ring_flags(&r));
	ASSERT_EQ(0, op_start(&s4, OP_SEND, ch, 4));
	ASSERT_EQ(0, wait_waiters(ch, 2, 0));
	EXPECT_EQ(GOSYNC_CHAN_SEND_WAITERS, ring_flags(&r));
	EXPECT_SLOW(ch, 2, 0);

	/* A pop in userspace, then a kick: 3 moves into the freed slot. */
	v = 0;
	EXPECT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(1, v);
	ASSERT_EQ(0, op_join_ms(&s3, AT_ONCE_MS));
	EXPECT_EQ(0, s3.ret);
	EXPECT_FALSE(atomic_load(&s4.done));
	EXPECT_SLOW(ch, 2, 1);
	EXPECT_STATE(ch, 2, 1, 0, 0);
	EXPECT_EQ(GOSYNC_CHAN_SEND_WAITERS, ring_flags(&r));
	EXPECT_EQ(3, atomic_load(r.tail) & GOSYNC_CHAN_POS_MASK);

	EXPECT_EQ(1, gs_chan_try_recv(ch, &v));
	EXPECT_EQ(2, v);
	ASSERT_EQ(0, op_join_ms(&s4, AT_ONCE_MS));
	EXPECT_EQ(0, s4.ret);
	EXPECT_SLOW(ch, 2, 2);
	/* Nobody is queued: no flag, and pops no longer kick. */
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_STATE(ch, 2, 0, 0, 0);
	EXPECT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(3, v);
	EXPECT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(4, v);
	EXPECT_SLOW(ch, 2, 2);
	EXPECT_COUNTS(ch, 4, 4);
	EXPECT_STATE(ch, 0, 0, 0, 0);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

TEST(flags_clear_when_waiters_give_up)
{
	struct op r1, s1;
	struct ring r;
	gs_chan *ch;
	uint64_t v;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, ring_map_chan(&r, ch));

	/* A receiver that times out takes its flag along. */
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(ch, &v,
			gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_SLOW(ch, 1, 0);
	/* Two wait; one gives up: the flag stays for the other. */
	ASSERT_EQ(0, op_start(&r1, OP_RECV, ch, 0));
	ASSERT_EQ(0, wait_waiters(ch, 0, 1));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(ch, &v,
			gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_EQ(GOSYNC_CHAN_RECV_WAITERS, ring_flags(&r));
	EXPECT_STATE(ch, 0, 0, 1, 0);
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 5));
	ASSERT_EQ(0, op_join(&r1));
	EXPECT_EQ(1, r1.ret);
	EXPECT_EQ(5, r1.val);
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_SLOW(ch, 4, 0);
	/* The fast path is back. */
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 6));
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(6, v);
	EXPECT_SLOW(ch, 4, 0);

	/* The same for a sender on a full ring. */
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 1));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 2));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_send_until(ch, &v,
			gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_EQ(0, ring_flags(&r));
	ASSERT_EQ(0, op_start(&s1, OP_SEND, ch, 3));
	ASSERT_EQ(0, wait_waiters(ch, 1, 0));
	v = 99;
	EXPECT_EQ(-ETIMEDOUT, gs_chan_send_until(ch, &v,
			gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_EQ(GOSYNC_CHAN_SEND_WAITERS, ring_flags(&r));
	EXPECT_SLOW(ch, 7, 0);
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(1, v);
	ASSERT_EQ(0, op_join(&s1));
	EXPECT_EQ(0, s1.ret);
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_SLOW(ch, 7, 1);
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(2, v);
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(3, v);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	EXPECT_SLOW(ch, 8, 1);
	EXPECT_STATE(ch, 0, 0, 0, 0);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

/* poll() sets POLLED_IN / POLLED_OUT only for the direction not ready. */
TEST(poll_flags_and_kicks)
{
	struct pollfd p;
	struct ring r;
	gs_chan *ch;
	uint64_t v;
	int fd;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	fd = gs_chan_fd(ch);
	p.fd = fd;
	p.events = P_IN | P_OUT;

	ASSERT_EQ(1, poll(&p, 1, 0));
	EXPECT_EQ(P_OUT, p.revents);
	EXPECT_EQ(GOSYNC_CHAN_POLLED_IN, ring_flags(&r));
	/* The push may stay in userspace, and kicks for the poller. */
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 1));
	EXPECT_SLOW(ch, 0, 1);
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_EQ(1, atomic_load(r.tail));
	ASSERT_EQ(1, poll(&p, 1, 0));
	EXPECT_EQ(P_IN | P_OUT, p.revents);
	EXPECT_EQ(0, ring_flags(&r));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 2));
	EXPECT_SLOW(ch, 0, 1);
	ASSERT_EQ(1, poll(&p, 1, 0));
	EXPECT_EQ(P_IN, p.revents);
	EXPECT_EQ(GOSYNC_CHAN_POLLED_OUT, ring_flags(&r));
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(1, v);
	EXPECT_SLOW(ch, 0, 2);
	EXPECT_EQ(0, ring_flags(&r));
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(2, v);
	EXPECT_SLOW(ch, 0, 2);
	EXPECT_COUNTS(ch, 2, 2);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

TEST(poll_woken_by_fast_push_and_fast_pop)
{
	struct op w;
	struct ring r;
	gs_chan *ch;
	uint64_t v, t0;
	int fd;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	fd = gs_chan_fd(ch);

	/* Readable after a push that makes no system call but the kick. */
	ASSERT_EQ(0, op_start_poll(&w, OP_POLL, fd, POLLIN));
	ASSERT_EQ(0, wait_flags(&r, GOSYNC_CHAN_POLLED_IN,
				GOSYNC_CHAN_POLLED_IN));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&w.done));
	t0 = mono_ns();
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 1));
	ASSERT_EQ(0, op_join(&w));
	EXPECT_GT(AT_ONCE_MS, ms_since(t0));
	EXPECT_EQ(1, w.ret);
	EXPECT_EQ(POLLIN, w.revents);
	EXPECT_SLOW(ch, 0, 1);
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 2));

	/* Writable after a pop in userspace. */
	ASSERT_EQ(0, op_start_poll(&w, OP_POLL, fd, POLLOUT));
	ASSERT_EQ(0, wait_flags(&r, GOSYNC_CHAN_POLLED_OUT,
				GOSYNC_CHAN_POLLED_OUT));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&w.done));
	t0 = mono_ns();
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(1, v);
	ASSERT_EQ(0, op_join(&w));
	EXPECT_GT(AT_ONCE_MS, ms_since(t0));
	EXPECT_EQ(1, w.ret);
	EXPECT_EQ(POLLOUT, w.revents);
	EXPECT_SLOW(ch, 0, 2);
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(2, v);
	EXPECT_SLOW(ch, 0, 2);
	EXPECT_EQ(0, ring_flags(&r));
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

TEST(epoll_woken_by_fast_push_and_fast_pop)
{
	struct epoll_event ev;
	struct op w;
	struct ring r;
	gs_chan *ch;
	uint64_t v, t0;
	int fd, epfd;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 1));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	fd = gs_chan_fd(ch);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, epfd);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ASSERT_EQ(0, epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev));
	EXPECT_EQ(GOSYNC_CHAN_POLLED_IN, ring_flags(&r));

	ASSERT_EQ(0, op_start_poll(&w, OP_EPOLL, epfd, 0));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&w.done));
	t0 = mono_ns();
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 1));
	ASSERT_EQ(0, op_join(&w));
	EXPECT_GT(AT_ONCE_MS, ms_since(t0));
	EXPECT_EQ(1, w.ret);
	EXPECT_EQ(EPOLLIN, w.revents);
	EXPECT_SLOW(ch, 0, 1);

	/* Full: wait to write; a pop in userspace makes it writable. */
	ev.events = EPOLLOUT;
	ASSERT_EQ(0, epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev));
	EXPECT_EQ(GOSYNC_CHAN_POLLED_OUT, ring_flags(&r));
	ASSERT_EQ(0, op_start_poll(&w, OP_EPOLL, epfd, 0));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&w.done));
	t0 = mono_ns();
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(1, v);
	ASSERT_EQ(0, op_join(&w));
	EXPECT_GT(AT_ONCE_MS, ms_since(t0));
	EXPECT_EQ(1, w.ret);
	EXPECT_EQ(EPOLLOUT, w.revents);
	EXPECT_SLOW(ch, 0, 2);
	close(epfd);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

/*
 * Ping-pong: one value in flight, so that every receive blocks in the
 * kernel or races the push that serves it. A missed wake-up stalls the
 * pair until a receive's deadline: any timeout fails.
 */
#define PP_MS		700		/* at least, and at least PP_ROUNDS */
#define PP_ROUNDS	50
#define PP_RECV_MS	WAIT_LIMIT_MS	/* a watchdog: its expiry is the miss */

struct pingpong {
	gs_chan *ping, *pong;
	int mode;		/* 0: receive; 1: poll, then try_recv */
	atomic_bool stop;
	uint64_t rounds;
	int err_a, err_b;
	uint64_t bad_a, bad_b;
};

static int pp_recv(struct pingpong *pp, gs_chan *ch, uint64_t *v)
{
	struct pollfd p = { .fd = gs_chan_fd(ch), .events = POLLIN };
	int r;

	if (!pp->mode)
		return gs_chan_recv_until(ch, v, gs_deadline_in(PP_RECV_MS *
								NS_PER_MS), 0);
	r = poll(&p, 1, PP_RECV_MS);
	if (r != 1)
		return r < 0 ? -errno : -ETIMEDOUT;
	return gs_chan_try_recv(ch, v);
}

static void *pp_b(void *arg)
{
	struct pingpong *pp = arg;

	for (;;) {
		uint64_t v = 0;
		int r = pp_recv(pp, pp->ping, &v);

		if (r == 0)
			break;		/* closed: done */
		if (r != 1) {
			pp->err_b = r;
			break;
		}
		r = gs_chan_send_until(pp->pong, &v, limit(), 0);
		if (r) {
			pp->err_b = r;
			break;
		}
	}
	return NULL;
}

TEST(ping_pong_never_misses_a_wakeup)
{
	for (int cap = 1; cap <= 4; cap += 3) {
		for (int mode = 0; mode < 2; mode++) {
			struct pingpong pp;
			pthread_t b;
			uint64_t t0 = mono_ns();

			memset(&pp, 0, sizeof(pp));
			pp.mode = mode;
			ASSERT_EQ(0, gs_chan_make(&pp.ping, 8, (uint32_t)cap));
			ASSERT_EQ(0, gs_chan_make(&pp.pong, 8, (uint32_t)cap));
			ASSERT_EQ(0, pthread_create(&b, NULL, pp_b, &pp));
			/* However slow the machine, enough round trips. */
			while (ms_since(t0) < PP_MS || pp.rounds <= PP_ROUNDS) {
				uint64_t v = pp.rounds, w = ~0ULL;
				int r = gs_chan_send_until(pp.ping, &v,
							   limit(), 0);

				if (r) {
					pp.err_a = r;
					break;
				}
				r = pp_recv(&pp, pp.pong, &w);
				if (r != 1) {
					pp.err_a = r;
					break;
				}
				if (w != v)
					pp.bad_a++;
				pp.rounds++;
			}
			gs_chan_close(pp.ping);
			EXPECT_EQ(0, join_ms(b, WAIT_LIMIT_MS));
			TH_LOG("cap %d, %s: %ju round trips", cap,
			       mode ? "poll" : "recv", (uintmax_t)pp.rounds);
			EXPECT_EQ(0, pp.err_a) TH_LOG("%s", strerror(-pp.err_a));
			EXPECT_EQ(0, pp.err_b) TH_LOG("%s", strerror(-pp.err_b));
			EXPECT_EQ(0, pp.bad_a);
			EXPECT_LT(PP_ROUNDS, pp.rounds);
			gs_chan_destroy(pp.ping);
			gs_chan_destroy(pp.pong);
		}
	}
}

/* ================================================================== */
/* 4. FIFO and conservation under stress                              */

/*
 * What consumers saw, in memory shared by threads and processes: one bit
 * per value that may be sent, and counters of what went wrong.
 */
struct tally {
	uint32_t producers, n;
	atomic_long received, dups, strays, order_errors, errors;
	atomic_long after_closed, closed_seen, slow_calls;
	atomic_int first_error;
	_Atomic uint64_t bits[];
};

static struct tally *tally_new(uint32_t producers, uint32_t n)
{
	size_t words = ((size_t)producers * n + 63) / 64;
	size_t size = sizeof(struct tally) + words * sizeof(uint64_t);
	struct tally *t = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (t == MAP_FAILED)
		return NULL;
	memset(t, 0, size);
	t->producers = producers;
	t->n = n;
	return t;
}

static void tally_free(struct tally *t)
{
	size_t words = ((size_t)t->producers * t->n + 63) / 64;

	munmap(t, sizeof(struct tally) + words * sizeof(uint64_t));
}

static void tally_error(struct tally *t, int err)
{
	if (atomic_fetch_add(&t->errors, 1) == 0)
		atomic_store(&t->first_error, err);
}

/* Record value @v; @last (per producer, this consumer's) checks order. */
static void tally_value(struct tally *t, uint64_t v, int64_t *last)
{
	uint32_t id = VAL_ID(v), q = VAL_Q(v);
	size_t bit;

	if (id >= t->producers || q >= t->n) {
		atomic_fetch_add(&t->strays, 1);
		return;
	}
	if ((int64_t)q <= last[id])
		atomic_fetch_add(&t->order_errors, 1);
	last[id] = q;
	bit = (size_t)id * t->n + q;
	if (atomic_fetch_or(&t->bits[bit / 64], 1ULL << (bit % 64)) &
	    (1ULL << (bit % 64)))
		atomic_fetch_add(&t->dups, 1);
	atomic_fetch_add(&t->received, 1);
}

/* Values of producer @id below @below that were received. */
static uint32_t tally_count(struct tally *t, uint32_t id, uint32_t below)
{
	size_t a = (size_t)id * t->n;
	size_t b = a + (below < t->n ? below : t->n);
	uint32_t n = 0;

	while (a < b) {
		size_t off = a % 64, len = 64 - off;
		uint64_t mask;

		if (len > b - a)
			len = b - a;
		mask = (len == 64 ? ~0ULL : (1ULL << len) - 1) << off;
		n += (uint32_t)__builtin_popcountll(atomic_load(&t->bits[a / 64]) &
						    mask);
		a += len;
	}
	return n;
}

/*
 * One send, in one of six ways: 0 sent, or an error. The retried ways
 * (try, short deadline, select with default) are bounded by @end.
 */
static int send_way(gs_chan *ch, uint64_t v, unsigned int way, uint64_t end)
{
	gs_case c[2];
	int r;

	switch (way % 6) {
	case 0:
		return gs_chan_send_until(ch, &v, end, 0);
	case 1:
		while ((r = gs_chan_try_send(ch, &v)) == -EAGAIN &&
		       mono_ns() < end)
			sched_yield();
		return r;
	case 2:
		c[0] = gs_case_recv(NULL, NULL);
		c[1] = gs_case_send(ch, &v);
		r = gs_select(c, 2, 0, end);
		return r == 1 ? 0 : r < 0 ? r : -EPROTO;
	case 3:
		while ((r = gs_chan_send_until(ch, &v, gs_deadline_in(NS_PER_MS),
					       0)) == -ETIMEDOUT &&
		       mono_ns() < end)
			;
		return r;
	case 4:
		c[0] = gs_case_send(ch, &v);
		while ((r = gs_select(c, 1, GS_SELECT_DEFAULT, 0)) == -EAGAIN &&
		       mono_ns() < end)
			sched_yield();
		return r == 0 ? 0 : r < 0 ? r : -EPROTO;
	default:
		return gs_chan_send_until(ch, &v, real_ns() + (end - mono_ns()),
					  GS_CLOCK_REALTIME);
	}
}

/* One receive in one of six ways: 1 a value, 0 closed, or an error. */
static int recv_way(gs_chan *ch, uint64_t *v, unsigned int way, uint64_t end)
{
	gs_case c[2];
	int r;

	switch (way % 6) {
	case 0:
		return gs_chan_recv_until(ch, v, end, 0);
	case 1:
		while ((r = gs_chan_try_recv(ch, v)) == -EAGAIN &&
		       mono_ns() < end)
			sched_yield();
		return r;
	case 2:
		c[0] = gs_case_recv(NULL, NULL);
		c[1] = gs_case_recv(ch, v);
		r = gs_select(c, 2, 0, end);
		return r == 1 ? c[1].ok : r < 0 ? r : -EPROTO;
	case 3:
		while ((r = gs_chan_recv_until(ch, v, gs_deadline_in(NS_PER_MS),
					       0)) == -ETIMEDOUT &&
		       mono_ns() < end)
			;
		return r;
	case 4:
		c[0] = gs_case_recv(ch, v);
		while ((r = gs_select(c, 1, GS_SELECT_DEFAULT, 0)) == -EAGAIN &&
		       mono_ns() < end)
			sched_yield();
		return r == 0 ? c[0].ok : r < 0 ? r : -EPROTO;
	default:
		return gs_chan_recv_until(ch, v, real_ns() + (end - mono_ns()),
					  GS_CLOCK_REALTIME);
	}
}

/* Produce VAL(id, 0 .. n - 1) in order, the ways mixed. */
static void produce(gs_chan *ch, struct tally *t, uint32_t id, uint32_t n,
		    unsigned int seed)
{
	for (uint32_t q = 0; q < n; q++) {
		int r = send_way(ch, VAL(id, q), seed + q * 7 + q / 5, limit());

		if (r) {
			tally_error(t, r);
			return;
		}
	}
}

/*
 * Consume until "closed", then check that closed stays closed: every way
 * returns 0 with the zero value, never a value.
 */
static void consume(gs_chan *ch, struct tally *t, unsigned int seed)
{
	int64_t last[64];
	uint64_t v;
	unsigned int k = seed;

	for (size_t i = 0; i < 64; i++)
		last[i] = -1;
	for (;; k++) {
		int r;

		v = ~0ULL;
		r = recv_way(ch, &v, k * 5 + k / 3, limit());
		if (r == 0)
			break;
		if (r != 1) {
			tally_error(t, r);
			return;
		}
		tally_value(t, v, last);
	}
	atomic_fetch_add(&t->closed_seen, 1);
	for (unsigned int way = 0; way < 6; way++) {
		v = ~0ULL;
		int r = recv_way(ch, &v, way, gs_deadline_in(AT_ONCE_MS *
							     NS_PER_MS));

		if (r != 0 || v != 0)
			atomic_fetch_add(&t->after_closed, 1);
	}
}

struct worker {
	gs_chan *ch;
	struct tally *t;
	uint32_t id, n;
	pthread_t tid;
};

static void *producer_main(void *arg)
{
	struct worker *w = arg;

	produce(w->ch, w->t, w->id, w->n, w->id * 3);
	return NULL;
}

static void *consumer_main(void *arg)
{
	struct worker *w = arg;

	consume(w->ch, w->t, w->id);
	return NULL;
}

/* The checks after a stress run: every value exactly once. */
static void check_tally(struct __test_metadata *_metadata, struct tally *t,
			uint32_t consumers)
{
	EXPECT_EQ(0, atomic_load(&t->errors))
		TH_LOG("first error %d (%s)", atomic_load(&t->first_error),
		       strerror(-atomic_load(&t->first_error)));
	EXPECT_EQ(0, atomic_load(&t->dups));
	EXPECT_EQ(0, atomic_load(&t->strays));
	EXPECT_EQ(0, atomic_load(&t->order_errors));
	EXPECT_EQ(0, atomic_load(&t->after_closed));
	EXPECT_EQ(consumers, atomic_load(&t->closed_seen));
	EXPECT_EQ((long)t->producers * t->n, atomic_load(&t->received));
	for (uint32_t id = 0; id < t->producers; id++) {
		EXPECT_EQ(t->n, tally_count(t, id, t->n)) TH_LOG("producer %u", id);
	}
}

FIXTURE(stress) {
	int unused;
};

FIXTURE_VARIANT(stress) {
	uint32_t cap;
};

FIXTURE_VARIANT_ADD(stress, cap1) { .cap = 1 };
FIXTURE_VARIANT_ADD(stress, cap2) { .cap = 2 };
FIXTURE_VARIANT_ADD(stress, cap64) { .cap = 64 };

FIXTURE_SETUP(stress)
{
	self->unused = 0;
}

FIXTURE_TEARDOWN(stress)
{
}

TEST_F(stress, threads_fifo_exactly_once_then_close)
{
	struct worker prod[ST_PRODUCERS], cons[ST_CONSUMERS];
	struct gosync_chan_status st;
	struct tally *t;
	struct ring r;
	gs_chan *ch;
	uint64_t t0 = mono_ns();

	t = tally_new(ST_PRODUCERS, ST_N);
	ASSERT_NE(NULL, t);
	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), variant->cap));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	for (uint32_t i = 0; i < ST_CONSUMERS; i++) {
		cons[i] = (struct worker){ .ch = ch, .t = t, .id = i };
		ASSERT_EQ(0, start_thread(&cons[i].tid, consumer_main, &cons[i]));
	}
	for (uint32_t i = 0; i < ST_PRODUCERS; i++) {
		prod[i] = (struct worker){ .ch = ch, .t = t, .id = i, .n = ST_N };
		ASSERT_EQ(0, start_thread(&prod[i].tid, producer_main, &prod[i]));
	}
	for (uint32_t i = 0; i < ST_PRODUCERS; i++)
		ASSERT_EQ(0, join_ms(prod[i].tid, STRESS_LIMIT_MS));
	ASSERT_EQ(0, gs_chan_close(ch));
	for (uint32_t i = 0; i < ST_CONSUMERS; i++)
		ASSERT_EQ(0, join_ms(cons[i].tid, 2 * WAIT_LIMIT_MS));
	ASSERT_EQ(0, chan_status_of(ch, &st));
	TH_LOG("cap %u: %d values in %ju ms, %ju slow ops, %ju kicks",
	       variant->cap, ST_PRODUCERS * ST_N,
	       (uintmax_t)ms_since(t0), (uintmax_t)st.slow_ops,
	       (uintmax_t)st.kicks);
	check_tally(_metadata, t, ST_CONSUMERS);
	EXPECT_EQ(ST_PRODUCERS * ST_N, st.sends);
	EXPECT_EQ(ST_PRODUCERS * ST_N, st.recvs);
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(1, st.closed);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(0, st.recv_waiters);
	/* Closed, empty, nobody waits: CLOSED is the only flag left. */
	EXPECT_EQ(GOSYNC_CHAN_CLOSED, ring_flags(&r));
	EXPECT_EQ(atomic_load(r.tail) & GOSYNC_CHAN_POS_MASK,
		  atomic_load(r.head));
	ring_unmap(&r);
	gs_chan_destroy(ch);
	tally_free(t);
}

/*
 * Producer processes inherit the channel by fork; a consumer process,
 * forked before the channel existed, gets it by SCM_RIGHTS and maps the
 * ring itself (shown first by values it sends without a system call).
 */
static int scm_child(int sock, struct tally *t)
{
	gs_chan *ch = NULL;
	char c = 0;
	int fd;

	fd = gs_fd_recv(sock);
	if (fd < 0 || gs_chan_from_fd(&ch, fd))
		return 2;
	for (uint64_t i = 0; i < 16; i++)
		if (gs_chan_send_until(ch, &(uint64_t){ 0xC0DE00 + i },
				       limit(), 0))
			return 3;
	if (write(sock, "A", 1) != 1 || read(sock, &c, 1) != 1 || c != 'G')
		return 4;
	consume(ch, t, 17);
	gs_chan_destroy(ch);
	return 0;
}

TEST_F(stress, processes_fork_and_scm_rights)
{
	pid_t prods[XP_PRODUCERS], scm;
	struct worker cons;
	struct tally *t;
	gs_chan *ch;
	int sv[2], status;
	uint64_t v;
	char c;

	t = tally_new(XP_PRODUCERS, XP_N);
	ASSERT_NE(NULL, t);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	scm = fork_child();
	ASSERT_LE(0, scm);
	if (scm == 0) {
		close(sv[0]);
		_exit(scm_child(sv[1], t));
	}
	close(sv[1]);
	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), variant->cap));
	ASSERT_EQ(0, gs_fd_send(sv[0], gs_chan_fd(ch)));

	/* The other process pushes in its own mapping of the ring. */
	if (variant->cap >= 16) {
		ASSERT_EQ(1, read(sv[0], &c, 1));
		EXPECT_SLOW(ch, 0, 0);
		EXPECT_STATE(ch, 16, 0, 0, 0);
	} else {
		/* Its sends block on the small ring: receive them. */
		for (uint64_t i = 0; i < 16; i++) {
			v = 0;
			ASSERT_EQ(1, gs_chan_recv_until(ch, &v, limit(), 0));
			EXPECT_EQ(0xC0DE00 + i, v);
		}
		ASSERT_EQ(1, read(sv[0], &c, 1));
	}
	if (variant->cap >= 16) {
		for (uint64_t i = 0; i < 16; i++) {
			v = 0;
			ASSERT_EQ(1, gs_chan_try_recv(ch, &v));
			EXPECT_EQ(0xC0DE00 + i, v);
		}
		EXPECT_SLOW(ch, 0, 0);
	}
	ASSERT_EQ(1, write(sv[0], "G", 1));

	for (int i = 0; i < XP_PRODUCERS; i++) {
		prods[i] = fork_child();
		ASSERT_LE(0, prods[i]);
		if (prods[i] == 0) {
			produce(ch, t, (uint32_t)i, XP_N, (unsigned int)i);
			_exit(0);
		}
	}
	cons = (struct worker){ .ch = ch, .t = t, .id = 5 };
	ASSERT_EQ(0, start_thread(&cons.tid, consumer_main, &cons));
	for (int i = 0; i < XP_PRODUCERS; i++) {
		ASSERT_EQ(0, wait_child(prods[i], &status, STRESS_LIMIT_MS));
		EXPECT_EQ(0, status) TH_LOG("producer %d", i);
	}
	ASSERT_EQ(0, gs_chan_close(ch));
	ASSERT_EQ(0, join_ms(cons.tid, 2 * WAIT_LIMIT_MS));
	ASSERT_EQ(0, wait_child(scm, &status, 2 * WAIT_LIMIT_MS));
	EXPECT_EQ(0, status) TH_LOG("SCM_RIGHTS consumer");
	check_tally(_metadata, t, 2);
	EXPECT_STATE(ch, 0, 0, 0, 1);
	EXPECT_COUNTS(ch, XP_PRODUCERS * XP_N + 16, XP_PRODUCERS * XP_N + 16);
	close(sv[0]);
	gs_chan_destroy(ch);
	tally_free(t);
}

/* ================================================================== */
/* 5. Close with values in flight                                     */

#define CF_PRODUCERS	3
#define CF_CONSUMERS	2
#define CF_MAX		200000

struct cf_producer {
	gs_chan *ch;
	uint32_t id;
	uint32_t sent;		/* values whose send returned 0 */
	int end_ret;		/* what the first failed send returned */
	pthread_t tid;
};

static void *cf_producer_main(void *arg)
{
	struct cf_producer *p = arg;

	for (uint32_t q = 0; q < CF_MAX; q++) {
		uint64_t v = VAL(p->id, q);
		int r = q % 3 ? gs_chan_send_until(p->ch, &v, limit(), 0) :
				gs_chan_try_send(p->ch, &v);

		if (r == -EAGAIN) {
			q--;
			sched_yield();
			continue;
		}
		if (r) {
			p->end_ret = r;
			return NULL;
		}
		p->sent = q + 1;
	}
	return NULL;
}

TEST_F(stress, close_while_producers_push_fast)
{
	unsigned int seed = 0xc105e + variant->cap;

	for (int round = 0; round < 6; round++) {
		struct cf_producer prod[CF_PRODUCERS];
		struct worker cons[CF_CONSUMERS];
		struct tally *t;
		gs_chan *ch;
		long total = 0;

		t = tally_new(CF_PRODUCERS, CF_MAX);
		ASSERT_NE(NULL, t);
		ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), variant->cap));
		for (uint32_t i = 0; i < CF_CONSUMERS; i++) {
			cons[i] = (struct worker){ .ch = ch, .t = t, .id = i };
			ASSERT_EQ(0, start_thread(&cons[i].tid, consumer_main,
						  &cons[i]));
		}
		for (uint32_t i = 0; i < CF_PRODUCERS; i++) {
			prod[i] = (struct cf_producer){ .ch = ch, .id = i };
			ASSERT_EQ(0, start_thread(&prod[i].tid,
						  cf_producer_main, &prod[i]));
		}
		sleep_ms(1 + rand_r(&seed) % 20);
		ASSERT_EQ(0, gs_chan_close(ch));
		for (uint32_t i = 0; i < CF_PRODUCERS; i++)
			ASSERT_EQ(0, join_ms(prod[i].tid, WAIT_LIMIT_MS));
		for (uint32_t i = 0; i < CF_CONSUMERS; i++)
			ASSERT_EQ(0, join_ms(cons[i].tid, 2 * WAIT_LIMIT_MS));
		EXPECT_EQ(0, atomic_load(&t->errors))
			TH_LOG("round %d: first error %d", round,
			       atomic_load(&t->first_error));
		EXPECT_EQ(0, atomic_load(&t->dups));
		EXPECT_EQ(0, atomic_load(&t->strays));
		EXPECT_EQ(0, atomic_load(&t->order_errors));
		EXPECT_EQ(0, atomic_load(&t->after_closed));
		EXPECT_EQ(CF_CONSUMERS, atomic_load(&t->closed_seen));
		for (uint32_t i = 0; i < CF_PRODUCERS; i++) {
			/* Every value sent arrived; the refused one did not. */
			EXPECT_EQ(-EPIPE, prod[i].end_ret);
			EXPECT_EQ(prod[i].sent,
				  tally_count(t, i, prod[i].sent + 1))
				TH_LOG("round %d producer %u", round, i);
			total += prod[i].sent;
		}
		EXPECT_EQ(total, atomic_load(&t->received));
		EXPECT_COUNTS(ch, total, total);
		EXPECT_STATE(ch, 0, 0, 0, 1);
		gs_chan_destroy(ch);
		tally_free(t);
	}
}

/*
 * A push claimed before the close (by hand: claimed, not yet published)
 * is received before "closed", by a receiver that queued in the kernel
 * meanwhile, once the pusher publishes and kicks.
 */
TEST(push_claimed_before_close_is_received_before_closed)
{
	struct op r1;
	struct ring r;
	gs_chan *ch;
	uint64_t pos, v;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	ASSERT_EQ(0, hand_claim(&r, &pos));
	EXPECT_EQ(0, pos);
	ASSERT_EQ(0, gs_chan_close(ch));
	EXPECT_EQ(GOSYNC_CHAN_CLOSED, ring_flags(&r));
	/* Closed, yet not drained: a receiver waits for the claimed value. */
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	ASSERT_EQ(0, op_start(&r1, OP_RECV, ch, 0));
	ASSERT_EQ(0, wait_waiters(ch, 0, 1));
	EXPECT_EQ(GOSYNC_CHAN_CLOSED | GOSYNC_CHAN_RECV_WAITERS, ring_flags(&r));
	/* New sends fail, by the flag. */
	EXPECT_EQ(-EPIPE, GS_SEND(ch, uint64_t, 5));
	EXPECT_EQ(1, atomic_load(r.tail) & GOSYNC_CHAN_POS_MASK);
	v = 77;
	hand_publish(&r, 0, &v);
	EXPECT_EQ(GOSYNC_CHAN_CLOSED | GOSYNC_CHAN_RECV_WAITERS, ring_flags(&r));
	EXPECT_EQ(0, raw_kick(gs_chan_fd(ch)));
	ASSERT_EQ(0, op_join_ms(&r1, AT_ONCE_MS));
	EXPECT_EQ(1, r1.ret);
	EXPECT_EQ(77, r1.val);
	EXPECT_EQ(GOSYNC_CHAN_CLOSED, ring_flags(&r));
	v = 1;
	EXPECT_EQ(0, gs_chan_recv_until(ch, &v, limit(), 0));
	EXPECT_EQ(0, v);
	EXPECT_EQ(0, gs_chan_try_recv(ch, &v));
	EXPECT_EQ(GOSYNC_CHAN_CLOSED, ring_flags(&r));
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

/*
 * A claim that is never published (its process died): what is behind it
 * cannot be received, receivers time out, even after close; the channel
 * still closes and is destroyed. A popped slot never freed stays full.
 */
TEST(dead_claimer_leaves_channel_closable)
{
	struct gosync_chan_status st;
	struct ring r;
	gs_chan *ch;
	uint64_t pos, v;
	int lowest;

	ASSERT_EQ(0, gs_init());	/* the library's own fd, first */
	lowest = lowest_free_fd();
	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 3));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	ASSERT_EQ(0, hand_claim(&r, &pos));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 1));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 2));
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(ch, &v));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_send_until(ch, &v,
			gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(ch, &v,
			gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_STATE(ch, 3, 0, 0, 0);
	EXPECT_EQ(0, ring_flags(&r));
	ASSERT_EQ(0, gs_chan_close(ch));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(ch, &v,
			gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	EXPECT_EQ(-EPIPE, gs_chan_try_send(ch, &v));
	ASSERT_EQ(0, chan_status_of(ch, &st));
	EXPECT_EQ(1, st.closed);
	EXPECT_EQ(3, st.len);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(GOSYNC_CHAN_CLOSED, ring_flags(&r));
	ring_unmap(&r);
	gs_chan_destroy(ch);
	EXPECT_EQ(lowest, lowest_free_fd());

	/* A pop whose process died before freeing the slot. */
	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 1));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 2));
	v = 0;
	atomic_store(r.head, 1);	/* claimed position 0, never freed */
	EXPECT_EQ(1, gs_chan_try_recv(ch, &v));
	EXPECT_EQ(2, v);
	/* Slot 0 still holds position 0's value: full for position 2. */
	EXPECT_EQ(1, atomic_load(ring_seq(&r, 0)));
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(ch, &v));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_send_until(ch, &v,
			gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	EXPECT_STATE(ch, 0, 0, 0, 0);
	EXPECT_EQ(0, ring_flags(&r));
	ASSERT_EQ(0, gs_chan_close(ch));
	EXPECT_EQ(0, gs_chan_recv_until(ch, &v, limit(), 0));
	ring_unmap(&r);
	gs_chan_destroy(ch);
	EXPECT_EQ(lowest, lowest_free_fd());
}

/* ================================================================== */
/* A process that dies inside a push or a pop (the robust protocol)   */

/* Where a by-hand child stops (and dies) in the robust protocol. */
enum dead_step {
	DS_PUSH_RESERVED,	/* slot(tail) is PUSHING | id, tail not moved */
	DS_PUSH_CLAIMED,	/* tail moved past it, value not published */
	DS_POP_RESERVED,	/* slot(head) is POPPING | id, head not moved */
	DS_POP_HEAD_MOVED,	/* head moved past it, slot not freed */
};

/*
 * The child: one step of the protocol by hand on the ring it inherited,
 * then it stops for the parent to SIGKILL it (@stop), or _exit()s. Exit
 * codes above 0 name the step that could not be made.
 */
static void dead_child(struct ring *r, int fd, enum dead_step step, bool stop)
{
	int id = ioctl(fd, GOSYNC_IOC_CHAN_RING_ID);
	uint64_t t, p, seq;

	if (id <= 0 || id == getppid())
		_exit(2);
	if (step == DS_PUSH_RESERVED || step == DS_PUSH_CLAIMED) {
		t = atomic_load(r->tail);
		p = t & GOSYNC_CHAN_POS_MASK;
		seq = seqno(p, false);
		if (!atomic_compare_exchange_strong(ring_seq(r, p), &seq,
						    GOSYNC_CHAN_SEQ_PUSHING |
						    (uint64_t)id))
			_exit(3);
		if (step == DS_PUSH_CLAIMED) {
			if (!atomic_compare_exchange_strong(r->tail, &t,
					(t & FLAGS_MASK) | pos_add(r, p, 1)))
				_exit(4);
			/* Half a value: never to be seen by anyone. */
			memset(ring_val(r, p), 0xee, r->elem / 2);
		}
	} else {
		p = atomic_load(r->head);
		seq = seqno(p, true);
		if (!atomic_compare_exchange_strong(ring_seq(r, p), &seq,
						    GOSYNC_CHAN_SEQ_POPPING |
						    (uint64_t)id))
			_exit(5);
		if (step == DS_POP_HEAD_MOVED)
			atomic_store(r->head, pos_add(r, p, 1));
	}
	if (stop)
		raise(SIGSTOP);
	_exit(0);
}

/* waitpid() for a child that stops itself, with a watchdog. */
static int wait_stopped(pid_t pid)
{
	uint64_t t0 = mono_ns();
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WUNTRACED | WNOHANG);
		if (r == pid)
			return WIFSTOPPED(status) ? 0 : -ECHILD;
		if (r < 0)
			return -errno;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/* Sends, receives and len of status and fdinfo agree, and balance. */
#define EXPECT_CONSERVED(ch, sends_, len_) do {				\
	struct gosync_chan_status cs_;					\
	int fd_ = gs_chan_fd(ch);					\
	ASSERT_EQ(0, chan_status_of((ch), &cs_));			\
	EXPECT_EQ((uint64_t)(sends_), cs_.sends);			\
	EXPECT_EQ((uint32_t)(len_), cs_.len);				\
	EXPECT_EQ(cs_.sends, cs_.recvs + cs_.len);			\
	EXPECT_EQ((long long)cs_.sends, fdinfo_num(fd_, "sends"));	\
	EXPECT_EQ((long long)cs_.recvs, fdinfo_num(fd_, "recvs"));	\
	EXPECT_EQ((long long)cs_.len, fdinfo_num(fd_, "len"));		\
} while (0)

FIXTURE(dead) {
	gs_chan *ch;
	struct ring r;
	pid_t pid;
};

FIXTURE_VARIANT(dead) {
	enum dead_step step;
	bool stop;		/* stopped, then SIGKILLed; else _exit() */
};

FIXTURE_VARIANT_ADD(dead, push_reserved_killed) { DS_PUSH_RESERVED, true };
FIXTURE_VARIANT_ADD(dead, push_reserved_exited) { DS_PUSH_RESERVED, false };
FIXTURE_VARIANT_ADD(dead, push_claimed_killed) { DS_PUSH_CLAIMED, true };
FIXTURE_VARIANT_ADD(dead, push_claimed_exited) { DS_PUSH_CLAIMED, false };
FIXTURE_VARIANT_ADD(dead, pop_reserved_killed) { DS_POP_RESERVED, true };
FIXTURE_VARIANT_ADD(dead, pop_reserved_exited) { DS_POP_RESERVED, false };
FIXTURE_VARIANT_ADD(dead, pop_head_moved_killed) { DS_POP_HEAD_MOVED, true };
FIXTURE_VARIANT_ADD(dead, pop_head_moved_exited) { DS_POP_HEAD_MOVED, false };

FIXTURE_SETUP(dead)
{
	ASSERT_EQ(0, gs_chan_make(&self->ch, sizeof(uint64_t), 4));
	ASSERT_EQ(0, ring_map_chan(&self->r, self->ch));
	self->pid = -1;
}

FIXTURE_TEARDOWN(dead)
{
	if (self->pid > 0) {
		kill(self->pid, SIGKILL);
		waitpid(self->pid, NULL, 0);
	}
	ring_unmap(&self->r);
	gs_chan_destroy(self->ch);
}

/* Start the child; with @stop, return once it is stopped at its step. */
static int dead_start(FIXTURE_DATA(dead) *self, enum dead_step step,
		      bool stop)
{
	int status, ret;

	self->pid = fork_child();
	if (self->pid < 0)
		return -errno;
	if (self->pid == 0)
		dead_child(&self->r, gs_chan_fd(self->ch), step, stop);
	if (stop)
		return wait_stopped(self->pid);
	ret = wait_child(self->pid, &status, WAIT_LIMIT_MS);
	self->pid = -1;
	if (ret)
		return ret;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

/* SIGKILL the stopped child and reap it: its repair is done by then. */
static int dead_kill(FIXTURE_DATA(dead) *self)
{
	int status, ret;

	if (kill(self->pid, SIGKILL))
		return -errno;
	ret = wait_child(self->pid, &status, WAIT_LIMIT_MS);
	self->pid = -1;
	if (ret)
		return ret;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : -ECHILD;
}

/*
 * After the death: the ring works on, lap after lap, through the slot
 * the dead process held, in order, with counters that balance.
 */
static void dead_laps(struct __test_metadata *_metadata, gs_chan *ch,
		      uint64_t sends)
{
	uint64_t v;

	for (uint64_t lap = 0; lap < 3; lap++) {
		for (uint64_t i = 0; i < 4; i++)
			ASSERT_EQ(0, gs_chan_try_send(ch, &(uint64_t){100 + i}));
		EXPECT_EQ(-EAGAIN, gs_chan_try_send(ch, &v));
		for (uint64_t i = 0; i < 4; i++) {
			ASSERT_EQ(1, gs_chan_try_recv(ch, &v));
			EXPECT_EQ(100 + i, v);
		}
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
		sends += 4;
	}
	EXPECT_CONSERVED(ch, sends, 0);
	EXPECT_EQ(0, gs_chan_close(ch));
	EXPECT_EQ(0, gs_chan_recv_until(ch, &v, limit(), 0));
}

/*
 * The child dies at its step; what survivors observe, before (a ring
 * that waits for the reservation) and after (the repair: the slot given
 * back, a hole passed, the head's value put back, the popped slot freed;
 * the waiter that queued meanwhile served at once), and then laps on.
 */
TEST_F(dead, survivors_go_on)
{
	const enum dead_step step = variant->step;
	const bool stop = variant->stop;
	struct op o;
	uint64_t v, seq, id;
	int mine = ioctl(gs_chan_fd(self->ch), GOSYNC_IOC_CHAN_RING_ID);

	ASSERT_LT(0, mine);
	switch (step) {
	case DS_PUSH_RESERVED:
		ASSERT_EQ(0, dead_start(self, step, stop));
		if (stop) {
			seq = atomic_load(ring_seq(&self->r, 0));
			EXPECT_EQ(GOSYNC_CHAN_SEQ_PUSHING, seq & GOSYNC_CHAN_SEQ_STATES);
			id = seq & GOSYNC_CHAN_SEQ_ID_MASK;
			EXPECT_NE((uint64_t)mine, id);
			EXPECT_NE(0, id);
			/* The tail's slot is taken: sends wait. */
			EXPECT_EQ(-EAGAIN, gs_chan_try_send(self->ch, &v));
			ASSERT_EQ(0, op_start(&o, OP_SEND, self->ch, 7));
			ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
			ASSERT_EQ(0, dead_kill(self));
			ASSERT_EQ(0, op_join_ms(&o, AT_ONCE_MS));
			EXPECT_EQ(0, o.ret);
		} else {
			EXPECT_EQ(seqno(0, false), atomic_load(ring_seq(&self->r, 0)));
			ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 7));
		}
		EXPECT_CONSERVED(self->ch, 1, 1);
		ASSERT_EQ(1, gs_chan_try_recv(self->ch, &v));
		EXPECT_EQ(7, v);
		dead_laps(_metadata, self->ch, 1);
		break;
	case DS_PUSH_CLAIMED:
		/* 10 before, a dead claim, 12 behind it. */
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 10));
		ASSERT_EQ(0, dead_start(self, step, stop));
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 12));
		if (stop) {
			EXPECT_CONSERVED(self->ch, 3, 3);
			ASSERT_EQ(1, gs_chan_try_recv(self->ch, &v));
			EXPECT_EQ(10, v);
			/* Nothing before the claim is published. */
			EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
			ASSERT_EQ(0, op_start(&o, OP_RECV, self->ch, 0));
			ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
			ASSERT_EQ(0, dead_kill(self));
			/* The hole is passed: the next value, never the dead one's. */
			ASSERT_EQ(0, op_join_ms(&o, AT_ONCE_MS));
			EXPECT_EQ(1, o.ret);
			EXPECT_EQ(12, o.val);
		} else {
			/* A hole between two values: len counts the values only. */
			EXPECT_EQ(GOSYNC_CHAN_SEQ_HOLE | seqno(1, true),
				  atomic_load(ring_seq(&self->r, 1)));
			EXPECT_CONSERVED(self->ch, 2, 2);
			ASSERT_EQ(1, gs_chan_try_recv(self->ch, &v));
			EXPECT_EQ(10, v);
			ASSERT_EQ(1, gs_chan_try_recv(self->ch, &v));
			EXPECT_EQ(12, v);
		}
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
		/* The dead one's send never completed: it does not count. */
		EXPECT_CONSERVED(self->ch, 2, 0);
		dead_laps(_metadata, self->ch, 2);
		break;
	case DS_POP_RESERVED:
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 20));
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 21));
		ASSERT_EQ(0, dead_start(self, step, stop));
		if (stop) {
			EXPECT_EQ(GOSYNC_CHAN_SEQ_POPPING,
				  atomic_load(ring_seq(&self->r, 0)) &
				  GOSYNC_CHAN_SEQ_STATES);
			/* The head is being popped: receivers wait. */
			EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
			ASSERT_EQ(0, op_start(&o, OP_RECV, self->ch, 0));
			ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
			ASSERT_EQ(0, dead_kill(self));
			ASSERT_EQ(0, op_join_ms(&o, AT_ONCE_MS));
			EXPECT_EQ(1, o.ret);
			/* It had not taken the value: it is still there, first. */
			EXPECT_EQ(20, o.val);
		} else {
			EXPECT_EQ(seqno(0, true), atomic_load(ring_seq(&self->r, 0)));
			ASSERT_EQ(1, gs_chan_try_recv(self->ch, &v));
			EXPECT_EQ(20, v);
		}
		ASSERT_EQ(1, gs_chan_try_recv(self->ch, &v));
		EXPECT_EQ(21, v);
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
		EXPECT_CONSERVED(self->ch, 2, 0);
		dead_laps(_metadata, self->ch, 2);
		break;
	case DS_POP_HEAD_MOVED:
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 30));
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 31));
		ASSERT_EQ(0, dead_start(self, step, stop));
		/* 30 went to the dead one. */
		ASSERT_EQ(1, gs_chan_try_recv(self->ch, &v));
		EXPECT_EQ(31, v);
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 32));
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 33));
		if (stop) {
			/* Slot 0 not freed yet: position 4 waits for it. */
			EXPECT_CONSERVED(self->ch, 4, 2);
			EXPECT_EQ(-EAGAIN, gs_chan_try_send(self->ch, &v));
			ASSERT_EQ(0, op_start(&o, OP_SEND, self->ch, 34));
			ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
			ASSERT_EQ(0, dead_kill(self));
			ASSERT_EQ(0, op_join_ms(&o, AT_ONCE_MS));
			EXPECT_EQ(0, o.ret);
		} else {
			ASSERT_EQ(0, gs_chan_try_send(self->ch, &(uint64_t){34}));
		}
		ASSERT_EQ(0, gs_chan_try_send(self->ch, &(uint64_t){35}));
		for (uint64_t i = 32; i <= 35; i++) {
			ASSERT_EQ(1, gs_chan_try_recv(self->ch, &v));
			EXPECT_EQ(i, v);
		}
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
		/* 30 counts as received: by the process that died. */
		EXPECT_CONSERVED(self->ch, 6, 0);
		dead_laps(_metadata, self->ch, 6);
		break;
	}
}

/*
 * The kernel never trusts a reservation's id: a slot reserved with the
 * id of a process that did not die stays as it is when another dies,
 * and one with an id nobody has is never repaired (it is a scribble).
 */
TEST(dead_others_reservations_are_left_alone)
{
	struct ring r;
	gs_chan *ch;
	uint64_t v;
	pid_t pid;
	int mine;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	mine = ioctl(gs_chan_fd(ch), GOSYNC_IOC_CHAN_RING_ID);
	ASSERT_LT(0, mine);
	/* Ours, and one of an id nobody has; another process dies. */
	atomic_store(ring_seq(&r, 0), GOSYNC_CHAN_SEQ_PUSHING | (uint64_t)mine);
	atomic_store(ring_seq(&r, 1),
		     GOSYNC_CHAN_SEQ_POPPING | GOSYNC_CHAN_SEQ_ID_MASK);
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(0, wait_child(pid, &(int){0}, WAIT_LIMIT_MS));
	EXPECT_EQ(GOSYNC_CHAN_SEQ_PUSHING | (uint64_t)mine,
		  atomic_load(ring_seq(&r, 0)));
	EXPECT_EQ(GOSYNC_CHAN_SEQ_POPPING | GOSYNC_CHAN_SEQ_ID_MASK,
		  atomic_load(ring_seq(&r, 1)));
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(ch, &v));
	/* Our own close while we still map the ring repairs nothing either. */
	EXPECT_EQ(0, close(dup(gs_chan_fd(ch))));
	EXPECT_EQ(GOSYNC_CHAN_SEQ_PUSHING | (uint64_t)mine,
		  atomic_load(ring_seq(&r, 0)));
	/* Give them back by hand, as a live pusher would: all is well. */
	atomic_store(ring_seq(&r, 0), seqno(0, false));
	atomic_store(ring_seq(&r, 1), seqno(1, false));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 5));
	ASSERT_EQ(1, gs_chan_try_recv(ch, &v));
	EXPECT_EQ(5, v);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

/* ================================================================== */
/* Positions wrap at 2^48                                             */

/*
 * The ring as it is after 2^48 - cap - 1 values went through (empty; each
 * slot free for the next position that maps to it), then values pushed
 * and popped across the wrap of the positions at 2^48, by the library
 * (mode 0) or the kernel (mode 1, raw try ioctls). Each fill must find
 * room for exactly cap values, each drain give them back in order.
 */
struct wrap_run {
	gs_chan *ch;
	uint32_t cap;
	int mode;
	int err;		/* 0, or what went wrong first */
	uint64_t at;		/* the step at which it did */
	atomic_bool done;
};

static int wrap_send(struct wrap_run *w, uint64_t v)
{
	if (w->mode)
		return raw_xfer(gs_chan_fd(w->ch), true, &v, 0, GOSYNC_CHAN_TRY);
	return gs_chan_try_send(w->ch, &v);
}

static int wrap_recv(struct wrap_run *w, uint64_t *v)
{
	if (w->mode)
		return raw_xfer(gs_chan_fd(w->ch), false, v, 0, GOSYNC_CHAN_TRY);
	return gs_chan_try_recv(w->ch, v);
}

static void *wrap_main(void *arg)
{
	struct wrap_run *w = arg;
	uint64_t step = 0, v;
	int r;

	for (uint64_t round = 0; round < 4 && !w->err; round++) {
		for (uint32_t i = 0; i < w->cap && !w->err; i++, step++)
			if ((r = wrap_send(w, round * 10000 + i)) != 0) {
				w->err = r;
				w->at = step;
			}
		if (!w->err && (r = wrap_send(w, 99)) != -EAGAIN) {
			w->err = r ? r : -EOVERFLOW;
			w->at = step;
		}
		for (uint32_t i = 0; i < w->cap && !w->err; i++, step++) {
			v = ~0ULL;
			r = wrap_recv(w, &v);
			if (r != 1 || v != round * 10000 + i) {
				w->err = r != 1 ? r : -EILSEQ;
				w->at = step;
			}
		}
	}
	atomic_store(&w->done, true);
	return NULL;
}

/*
 * Positions wrap at M = cap * 2^k (the largest that fits in 48 bits):
 * start just before it, and go round the ring across the wrap.
 */
#define WRAP_LIMIT_MS	(5 * WAIT_LIMIT_MS)

TEST(positions_wrap_at_a_multiple_of_the_capacity)
{
	static const uint32_t caps[] = { 1, 2, 3, 4, 5, 6, 7, 8, 1000 };

	for (size_t ci = 0; ci < ARRAY_SIZE(caps); ci++) {
		for (int mode = 0; mode < 2; mode++) {
			const uint32_t cap = caps[ci];
			const uint64_t p0 = gosync_chan_pos_modulus(cap) - cap;
			struct wrap_run w = { .cap = cap, .mode = mode };
			bool hung = false;
			struct ring r;
			uint64_t end;
			pthread_t tid;

			ASSERT_EQ(0, gs_chan_make(&w.ch, sizeof(uint64_t), cap));
			ASSERT_EQ(0, ring_map_chan(&r, w.ch));
			for (uint32_t i = 0; i < cap; i++) {
				uint64_t q = p0 + ((i + cap - p0 % cap) % cap);

				atomic_store(ring_seq(&r, i), seqno(q, false));
			}
			atomic_store(r.head, p0);
			atomic_store(r.tail, p0);
			atomic_init(&w.done, false);
			ASSERT_EQ(0, pthread_create(&tid, NULL, wrap_main, &w));
			/*
			 * 8000 calls: the watchdog is 20 times the slowest run
			 * seen (over 500 ms on the debug kernel under TCG); only
			 * once it expired (a hang) is the ring reset under the
			 * running thread.
			 */
			end = mono_ns() + WRAP_LIMIT_MS * NS_PER_MS;
			while (!atomic_load(&w.done) && mono_ns() < end)
				usleep(500);
			if (!atomic_load(&w.done)) {
				/* Spinning: a sane ring lets it out. */
				hung = true;
				while (!atomic_load(&w.done)) {
					ring_reset(&r);
					usleep(1000);
				}
			}
			pthread_join(tid, NULL);
			EXPECT_FALSE(hung) TH_LOG("cap %u, %s: a call never returned (tail %#jx)",
					     cap, mode ? "kernel" : "library",
					     (uintmax_t)atomic_load(r.tail));
			EXPECT_EQ(0, w.err) TH_LOG("cap %u, %s: %d (%s) at step %ju, tail %#jx head %#jx",
					   cap, mode ? "kernel" : "library",
					   w.err, strerror(-w.err),
					   (uintmax_t)w.at,
					   (uintmax_t)atomic_load(r.tail),
					   (uintmax_t)atomic_load(r.head));
			ring_unmap(&r);
			gs_chan_destroy(w.ch);
		}
	}
}

/* ================================================================== */
/* 6. Scribbling                                                       */

/* Call, bound its spinning, accept only the listed results (gs_test.h). */
#define EXPECT_RESULT(what, call, ...)					\
	EXPECT_CALL_RESULT(call, "in round %s", (what), __VA_ARGS__)

static int raw_select(int fd, bool send, uint64_t *v, uint32_t flags,
		      uint64_t deadline)
{
	struct gosync_select_case c = {
		.fd = fd, .op = send ? GOSYNC_SELECT_SEND : GOSYNC_SELECT_RECV,
		.value = (uintptr_t)v,
	};
	struct gosync_select s = {
		.cases = (uintptr_t)&c, .ncases = 1, .flags = flags,
		.deadline = deadline,
	};
	int dev = gs_device_fd();

	if (dev < 0)
		return dev;
	return xioctl(dev, GOSYNC_IOC_SELECT, &s);
}

/* Write garbage into the ring: tail, head and sequences from the lists. */
static void scribble(struct ring *r, uint64_t *seed, char *what, size_t len)
{
	const uint32_t cap = r->cap;
	uint64_t x = rnd64(seed);
	uint64_t pos = x % 4 == 0 ? GOSYNC_CHAN_POS_MASK - x % 3 :
		       x % 4 == 1 ? (x >> 8) % (3 * cap) : x >> 16;
	uint64_t flags = (rnd64(seed) % 3 == 0) ? 0 : rnd64(seed) & ALL_FLAGS;
	uint64_t tail = (flags | (pos & GOSYNC_CHAN_POS_MASK));
	uint64_t head, y = rnd64(seed);
	int mode = (int)(rnd64(seed) % 7);

	if (x % 9 == 0)
		tail = rnd64(seed);		/* anything at all */
	switch (y % 5) {
	case 0:
		head = tail & GOSYNC_CHAN_POS_MASK;
		break;
	case 1:
		head = (tail - 1 - (y >> 8) % (2 * cap)) & GOSYNC_CHAN_POS_MASK;
		break;
	case 2:
		head = ((tail & GOSYNC_CHAN_POS_MASK) + 1 + (y >> 8) % 5) &
		       GOSYNC_CHAN_POS_MASK;
		break;
	case 3:
		head = rnd64(seed);		/* flags in head too */
		break;
	default:
		head = 0;
	}
	for (uint32_t i = 0; i < cap; i++) {
		uint64_t p = (tail & GOSYNC_CHAN_POS_MASK) + i, s;

		switch (mode) {
		case 0:		/* free for the next positions from the tail */
			s = seqno(p, false);
			break;
		case 1:		/* full for them */
			s = seqno(p, true);
			break;
		case 2:		/* ahead: a later lap */
			s = seqno(p + cap, i % 2);
			break;
		case 3:
			s = 0;
			break;
		case 4:
			s = ~0ULL;
			break;
		case 5:		/* behind */
			s = seqno(p - cap, true);
			break;
		default:
			s = rnd64(seed);
		}
		atomic_store(ring_seq(r, p), s);
		if (rnd64(seed) % 2)
			memset(ring_val(r, p), (int)(s & 0xff), r->elem);
	}
	atomic_store(r->head, head);
	atomic_store(r->tail, tail);
	snprintf(what, len, "tail %#jx head %#jx seq mode %d",
		 (uintmax_t)tail, (uintmax_t)head, mode);
}

/* The kernel's answers, through the raw ioctls, on a scribbled ring. */
static void scribbled_kernel_calls(struct __test_metadata *_metadata, int fd,
				   const char *what)
{
	struct gosync_chan_status st;
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	uint64_t v = 0x5151;
	char buf[2048];

	EXPECT_RESULT(what, raw_status(fd, &st), 0);
	EXPECT_EQ(8, st.elem_size);
	EXPECT_EQ(4, st.capacity);
	EXPECT_GE(4, st.len);
	EXPECT_EQ(0, st.closed);
	EXPECT_RESULT(what, raw_xfer(fd, true, &v, 0, GOSYNC_CHAN_TRY),
		      0, -EAGAIN);
	EXPECT_RESULT(what, raw_xfer(fd, true, &v,
				     mono_ns() + 2 * NS_PER_MS, 0),
		      0, -ETIMEDOUT);
	EXPECT_RESULT(what, raw_xfer(fd, false, &v, 0, GOSYNC_CHAN_TRY),
		      1, -EAGAIN);
	EXPECT_RESULT(what, raw_xfer(fd, false, &v,
				     mono_ns() + 2 * NS_PER_MS, 0),
		      1, -ETIMEDOUT);
	EXPECT_RESULT(what, raw_xfer(fd, false, &v, real_ns() + 2 * NS_PER_MS,
				     GOSYNC_CLOCK_REALTIME), 1, -ETIMEDOUT);
	EXPECT_RESULT(what, raw_select(fd, true, &v, GOSYNC_SELECT_DEFAULT, 0),
		      0, -EAGAIN);
	EXPECT_RESULT(what, raw_select(fd, false, &v, 0,
				       mono_ns() + 2 * NS_PER_MS),
		      0, -ETIMEDOUT);
	EXPECT_RESULT(what, raw_kick(fd), 0);
	EXPECT_RESULT(what, poll(&p, 1, 0), 0, 1);
	EXPECT_RESULT(what, fdinfo_read(fd, buf, sizeof(buf)), 0);
	EXPECT_NE(NULL, strstr(buf, "\ncap:\t4\n"));
}

TEST_F(slow, scribbled_ring_keeps_kernel_sane)
{
	struct gosync_chan_status st;
	char what[128];
	struct ring r;
	uint64_t seed = 0x9e3779b97f4a7c15ULL, v;
	gs_chan *ch;
	int fd, lowest;

	ASSERT_EQ(0, gs_init());	/* the library's own fd, first */
	lowest = lowest_free_fd();
	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	fd = gs_chan_fd(ch);
	ASSERT_EQ(0, ring_map_chan(&r, ch));

	for (int round = 0; round < 120; round++) {
		scribble(&r, &seed, what, sizeof(what));
		scribbled_kernel_calls(_metadata, fd, what);
		/* Flags: every combination, with sane positions. */
		if (round < 32) {
			ring_reset(&r);
			atomic_store(r.tail, (uint64_t)round << 59);
			snprintf(what, sizeof(what), "flags %#x", round);
			scribbled_kernel_calls(_metadata, fd, what);
		}
	}
	/* The channel closes and drains whatever the ring says. */
	scribble(&r, &seed, what, sizeof(what));
	ASSERT_EQ(0, gs_chan_close(ch));
	EXPECT_NE(0, ring_flags(&r) & GOSYNC_CHAN_CLOSED);
	EXPECT_EQ(-EPIPE, gs_chan_close(ch));
	EXPECT_EQ(-EPIPE, gs_chan_try_send(ch, &v));
	EXPECT_EQ(-EPIPE, raw_xfer(fd, true, &v, 0, GOSYNC_CHAN_TRY));
	for (int i = 0; i < 6; i++) {
		EXPECT_RESULT(what, raw_xfer(fd, false, &v,
					     mono_ns() + 2 * NS_PER_MS, 0),
			      1, 0, -ETIMEDOUT);
	}
	ASSERT_EQ(0, raw_status(fd, &st));
	EXPECT_EQ(1, st.closed);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(0, st.send_waiters);
	/* Once the ring makes sense again, the channel does too. */
	ring_reset(&r);
	atomic_store(r.tail, GOSYNC_CHAN_CLOSED);
	EXPECT_EQ(0, gs_chan_recv_until(ch, &v, limit(), 0));
	EXPECT_EQ(0, v);
	ring_unmap(&r);
	gs_chan_destroy(ch);
	EXPECT_EQ(lowest, lowest_free_fd());
}

/*
 * The library on a scribbled ring: each call runs in a thread and must
 * return (a valid result) within a bound, whatever the page says. A call
 * that does not is reported, then set free by making the ring sane again.
 */
struct libcall {
	gs_chan *ch;
	int which;
	int ret;
	atomic_bool done;
};

static void *libcall_main(void *arg)
{
	struct libcall *c = arg;
	uint64_t v = 0x77;

	switch (c->which) {
	case 0:
		c->ret = gs_chan_try_send(c->ch, &v);
		break;
	case 1:
		c->ret = gs_chan_send_until(c->ch, &v,
					    gs_deadline_in(2 * NS_PER_MS), 0);
		break;
	case 2:
		c->ret = gs_chan_try_recv(c->ch, &v);
		break;
	default:
		c->ret = gs_chan_recv_until(c->ch, &v,
					    gs_deadline_in(2 * NS_PER_MS), 0);
		break;
	}
	atomic_store(&c->done, true);
	return NULL;
}

TEST_F(slow, scribbled_ring_never_hangs_library_calls)
{
	static const int valid[4][2] = {
		{ 0, -EAGAIN }, { 0, -ETIMEDOUT }, { 1, -EAGAIN }, { 1, -ETIMEDOUT },
	};
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	int hung = 0, invalid = 0, calls = 0;
	char what[128], first[160] = "";
	struct ring r;
	gs_chan *ch;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	/* Stop after a few hangs: each costs the watchdog's time. */
	for (int round = 0; round < 60 && hung < 3; round++) {
		for (int which = 0; which < 4; which++) {
			struct libcall c = { .ch = ch, .which = which };
			uint64_t end;
			pthread_t tid;

			scribble(&r, &seed, what, sizeof(what));
			atomic_init(&c.done, false);
			ASSERT_EQ(0, pthread_create(&tid, NULL, libcall_main,
						    &c));
			/* One call, 2 ms deadline: past the watchdog, a hang. */
			end = mono_ns() + WAIT_LIMIT_MS * NS_PER_MS;
			while (!atomic_load(&c.done) && mono_ns() < end)
				usleep(100);
			if (!atomic_load(&c.done)) {
				if (!hung++)
					snprintf(first, sizeof(first),
						 "call %d spins with %s", which,
						 what);
				/* Let it out: a sane, empty ring. */
				while (!atomic_load(&c.done)) {
					ring_reset(&r);
					usleep(1000);
				}
			} else if (c.ret != valid[which][0] &&
				   c.ret != valid[which][1]) {
				if (!invalid++ && !hung)
					snprintf(first, sizeof(first),
						 "call %d returned %d with %s",
						 which, c.ret, what);
			}
			pthread_join(tid, NULL);
			calls++;
		}
	}
	TH_LOG("%d calls: %d did not return in %d s, %d invalid results",
	       calls, hung, WAIT_LIMIT_MS / 1000, invalid);
	EXPECT_EQ(0, hung) TH_LOG("first: %s", first);
	EXPECT_EQ(0, invalid) TH_LOG("first: %s", first);
	ASSERT_EQ(0, gs_chan_close(ch));
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

/* Scribbling while threads and a process use the channel. */
struct scr_shared {
	atomic_bool stop;
	atomic_long ops, bad, slow_calls;
	atomic_int bad_op, bad_ret;
	atomic_ulong max_ns;
};

static void scr_bad(struct scr_shared *x, int op, int ret)
{
	if (atomic_fetch_add(&x->bad, 1) == 0) {
		atomic_store(&x->bad_op, op);
		atomic_store(&x->bad_ret, ret);
	}
}

static void scr_use(gs_chan *ch, struct scr_shared *x, uint64_t seed)
{
	int fd = gs_chan_fd(ch);

	while (!atomic_load(&x->stop)) {
		int op = (int)(rnd64(&seed) % 10);
		uint64_t v = rnd64(&seed), t0 = thread_cpu_ns(), dl;
		struct gosync_chan_status st;
		struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
		int ret;
		bool ok;

		dl = gs_deadline_in(2 * NS_PER_MS);
		switch (op) {
		case 0:
			ret = gs_chan_send_until(ch, &v, dl, 0);
			ok = ret == 0 || ret == -ETIMEDOUT;
			break;
		case 1:
			ret = gs_chan_try_send(ch, &v);
			ok = ret == 0 || ret == -EAGAIN;
			break;
		case 2:
			ret = gs_chan_recv_until(ch, &v, dl, 0);
			ok = ret == 1 || ret == -ETIMEDOUT;
			break;
		case 3:
			ret = gs_chan_try_recv(ch, &v);
			ok = ret == 1 || ret == -EAGAIN;
			break;
		case 4:
			ret = raw_xfer(fd, v & 1, &v, dl, 0);
			ok = ret == 0 || ret == 1 || ret == -ETIMEDOUT;
			break;
		case 5:
			ret = raw_select(fd, v & 1, &v, 0, dl);
			ok = ret == 0 || ret == -ETIMEDOUT;
			break;
		case 6:
			ret = raw_kick(fd);
			ok = ret == 0;
			break;
		case 7:
			ret = raw_status(fd, &st);
			ok = ret == 0 && st.capacity == 4 && st.len <= 4 &&
			     st.elem_size == 8;
			break;
		case 8:
			ret = poll(&p, 1, 1);
			ok = ret == 0 || ret == 1;
			break;
		default:
			ret = gs_chan_recv_until(ch, &v, real_ns() + NS_PER_MS,
						 GS_CLOCK_REALTIME);
			ok = ret == 1 || ret == -ETIMEDOUT;
			break;
		}
		if (!ok)
			scr_bad(x, op, ret);
		t0 = thread_cpu_ns() - t0;	/* spinning, not waiting */
		if (t0 > atomic_load(&x->max_ns))
			atomic_store(&x->max_ns, t0);
		atomic_fetch_add(&x->ops, 1);
	}
}

struct scr_thread {
	gs_chan *ch;
	struct scr_shared *x;
	uint64_t seed;
	pthread_t tid;
};

static void *scr_user_main(void *arg)
{
	struct scr_thread *s = arg;

	scr_use(s->ch, s->x, s->seed);
	return NULL;
}

static void *scr_scribbler_main(void *arg)
{
	struct scr_thread *s = arg;
	struct ring r;
	char what[128];
	uint64_t seed = s->seed;

	if (ring_map_chan(&r, s->ch))
		return NULL;
	while (!atomic_load(&s->x->stop)) {
		uint64_t x = rnd64(&seed);

		if (x % 4 == 0) {
			scribble(&r, &seed, what, sizeof(what));
		} else if (x % 4 == 1) {
			atomic_store(r.tail, rnd64(&seed));
		} else if (x % 4 == 2) {
			atomic_store(r.head, rnd64(&seed) %
				     (GOSYNC_CHAN_POS_MASK + 1));
		} else {
			atomic_store(ring_seq(&r, x >> 8), rnd64(&seed) % 64);
		}
		if ((x >> 16) % 8 == 0)
			usleep(20);
	}
	ring_unmap(&r);
	return NULL;
}

TEST_F(slow, concurrent_scribbling_keeps_everyone_sane)
{
	struct scr_thread users[3], scr;
	struct scr_shared *x;
	struct ring r;
	gs_chan *ch;
	pid_t pid;
	int status, lowest;
	uint64_t end;
	uint64_t v;

	ASSERT_EQ(0, gs_init());
	lowest = lowest_free_fd();
	x = mmap(NULL, sizeof(*x), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, x);
	memset(x, 0, sizeof(*x));
	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		scr_use(ch, x, 0xfeedULL);
		_exit(0);
	}
	for (int i = 0; i < 3; i++) {
		users[i] = (struct scr_thread){ .ch = ch, .x = x,
						.seed = 0x1234567ULL * (i + 1) };
		ASSERT_EQ(0, start_thread(&users[i].tid, scr_user_main,
					  &users[i]));
	}
	scr = (struct scr_thread){ .ch = ch, .x = x, .seed = 0xabcdefULL };
	ASSERT_EQ(0, start_thread(&scr.tid, scr_scribbler_main, &scr));
	/* 1.5 s at least, and enough operations however slow the machine. */
	sleep_ms(1500);
	end = mono_ns() + WAIT_LIMIT_MS * NS_PER_MS;
	while (atomic_load(&x->ops) <= 100 && mono_ns() < end)
		usleep(2000);
	atomic_store(&x->stop, true);
	ASSERT_EQ(0, join_ms(scr.tid, WAIT_LIMIT_MS));
	/*
	 * Every call ends by itself (2 ms deadlines, bounded retries),
	 * whatever the scribbler left: a user still running after the
	 * watchdog spins (a hang), and only then gets a sane ring to leave by.
	 */
	end = mono_ns() + WAIT_LIMIT_MS * NS_PER_MS;
	for (int i = 0; i < 3; i++) {
		bool hung = false;
		int jr;

		while ((jr = pthread_tryjoin_np(users[i].tid, NULL)) == EBUSY &&
		       mono_ns() < end + WAIT_LIMIT_MS * NS_PER_MS) {
			if (mono_ns() >= end) {
				hung = true;
				ring_reset(&r);
			}
			usleep(2000);
		}
		EXPECT_EQ(0, jr);
		EXPECT_FALSE(hung) TH_LOG("user %d never returned", i);
	}
	status = -1;
	while (waitpid(pid, &status, WNOHANG) == 0 && mono_ns() < end)
		usleep(2000);
	if (mono_ns() >= end) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	EXPECT_EQ(0, status) TH_LOG("the user process");
	ring_reset(&r);
	TH_LOG("%ld operations, longest %ju ms of CPU", atomic_load(&x->ops),
	       (uintmax_t)(atomic_load(&x->max_ns) / NS_PER_MS));
	EXPECT_EQ(0, atomic_load(&x->bad))
		TH_LOG("op %d returned %d (%s)", atomic_load(&x->bad_op),
		       atomic_load(&x->bad_ret),
		       strerror(-atomic_load(&x->bad_ret)));
	EXPECT_LT(100, atomic_load(&x->ops));
	EXPECT_GT(3 * NS_PER_SEC, atomic_load(&x->max_ns));
	EXPECT_STATE(ch, 0, 0, 0, 0);
	/* Close and destroy a channel whose ring was garbage. */
	ASSERT_EQ(0, gs_chan_close(ch));
	EXPECT_EQ(-EPIPE, gs_chan_try_send(ch, &v));
	EXPECT_EQ(0, gs_chan_recv_until(ch, &v, limit(), 0));
	ring_unmap(&r);
	gs_chan_destroy(ch);
	munmap(x, sizeof(*x));
	EXPECT_EQ(lowest, lowest_free_fd());
}

/* ================================================================== */
/* 7. SIGKILL                                                          */

TEST(sigkill_blocked_receiver_clears_its_flag)
{
	struct ring r;
	gs_chan *ch;
	uint64_t v;
	int status;
	pid_t pid;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_chan_recv(ch, &v);
		_exit(1);
	}
	ASSERT_EQ(0, wait_waiters(ch, 0, 1));
	EXPECT_EQ(GOSYNC_CHAN_RECV_WAITERS, ring_flags(&r));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_STATE(ch, 0, 0, 0, 0);
	EXPECT_SLOW(ch, 1, 0);
	/* The value goes to the ring, fast, for us. */
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 5));
	EXPECT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(5, v);
	EXPECT_SLOW(ch, 1, 0);
	EXPECT_COUNTS(ch, 1, 1);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

TEST(sigkill_blocked_sender_on_full_ring_sends_nothing)
{
	struct ring r;
	gs_chan *ch;
	uint64_t v;
	int status;
	pid_t pid;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, ring_map_chan(&r, ch));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 1));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 2));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_chan_send(ch, &(uint64_t){ 42 });
		_exit(1);
	}
	ASSERT_EQ(0, wait_waiters(ch, 1, 0));
	EXPECT_EQ(GOSYNC_CHAN_SEND_WAITERS, ring_flags(&r));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(0, ring_flags(&r));
	EXPECT_STATE(ch, 2, 0, 0, 0);
	EXPECT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(1, v);
	EXPECT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(2, v);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	/* No kick: nobody was left to serve. */
	EXPECT_SLOW(ch, 2, 0);
	EXPECT_COUNTS(ch, 2, 2);
	ring_unmap(&r);
	gs_chan_destroy(ch);
}

/*
 * Processes pushing and popping in userspace, killed at random. Accepted
 * (see the top of the file): values lost with a killed popper, the value
 * of a killed pusher's unfinished send. Not accepted: a value received
 * twice, a value that was never sent, a producer's values out of order, a
 * call that does not return by its deadline, a ring left stuck (anything
 * left unreceivable once all are dead), counters that do not balance.
 */
#define KF_LIVE		4
#define KF_KILLS	24
#define KF_IDS		(KF_LIVE + KF_KILLS)
#define KF_N		(1U << 19)

struct kf_shared {
	atomic_uint next_q[KF_IDS];	/* producer's next value, before sending */
	atomic_long child_errors;
};

static void kf_child(gs_chan *ch, struct tally *t, struct kf_shared *k,
		     uint32_t id, bool producer)
{
	int64_t last[KF_IDS];
	uint64_t v;

	for (size_t i = 0; i < KF_IDS; i++)
		last[i] = -1;
	if (producer) {
		/* VAL(id, q) in order, with bounded waits. */
		for (uint32_t q = 0; q < KF_N;) {
			int r;

			atomic_store(&k->next_q[id], q + 1);
			v = VAL(id, q);
			r = gs_chan_send_until(ch, &v,
					       gs_deadline_in(100 * NS_PER_MS), 0);
			if (r == 0)
				q++;
			else if (r != -ETIMEDOUT)
				atomic_fetch_add(&k->child_errors, 1);
		}
		_exit(0);
	}
	for (;;) {
		int r = id % 2 ? gs_chan_try_recv(ch, &v) :
			gs_chan_recv_until(ch, &v,
					   gs_deadline_in(100 * NS_PER_MS), 0);

		if (r == 1)
			tally_value(t, v, last);
		else if (r == 0)
			_exit(0);
		else if (r != -EAGAIN && r != -ETIMEDOUT)
			atomic_fetch_add(&k->child_errors, 1);
	}
}

TEST_F(slow, sigkill_fast_path_users_at_random)
{
	unsigned int seed = 0x5eed;
	pid_t pids[KF_LIVE];
	uint32_t next_id = 0, stuck = 0;
	struct gosync_chan_status st;
	struct kf_shared *k;
	struct tally *t;
	struct ring r;
	gs_chan *ch;
	int64_t last[KF_IDS];
	int status, ret;
	uint64_t v, end;
	long parent_got = 0;

	for (size_t i = 0; i < KF_IDS; i++)
		last[i] = -1;
	t = tally_new(KF_IDS, KF_N);
	ASSERT_NE(NULL, t);
	k = mmap(NULL, sizeof(*k), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, k);
	memset(k, 0, sizeof(*k));
	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 8));
	ASSERT_EQ(0, ring_map_chan(&r, ch));

	/* Slots 0 and 1 produce, 2 and 3 consume; each killed is replaced. */
	for (int i = 0; i < KF_LIVE; i++) {
		uint32_t id = next_id++;

		pids[i] = fork_child();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0)
			kf_child(ch, t, k, id, i < 2);
	}
	for (int i = 0; i < KF_KILLS + KF_LIVE; i++) {
		int slot = i < KF_KILLS ? rand_r(&seed) % KF_LIVE : i - KF_KILLS;

		/*
		 * The parent receives too, checking order (in the first
		 * round until it got a value, however slow the children).
		 */
		end = mono_ns() + (1 + rand_r(&seed) % 10) * NS_PER_MS;
		while (mono_ns() < end ||
		       (!parent_got && mono_ns() < end + WAIT_LIMIT_MS * NS_PER_MS)) {
			ret = gs_chan_try_recv(ch, &v);
			if (ret == 1) {
				tally_value(t, v, last);
				parent_got++;
			} else if (ret != -EAGAIN) {
				tally_error(t, ret);
				break;
			}
		}
		ASSERT_EQ(0, kill(pids[slot], SIGKILL));
		ASSERT_EQ(0, wait_child(pids[slot], &status, WAIT_LIMIT_MS));
		EXPECT_TRUE(WIFSIGNALED(status)) TH_LOG("status %#x", status);
		if (i < KF_KILLS) {
			uint32_t id = next_id++;

			pids[slot] = fork_child();
			ASSERT_LE(0, pids[slot]);
			if (pids[slot] == 0)
				kf_child(ch, t, k, id, slot < 2);
		}
	}
	/* All dead, all repaired: everything sent can be drained. */
	for (;;) {
		ret = gs_chan_recv_until(ch, &v, gs_deadline_in(50 * NS_PER_MS), 0);
		if (ret != 1)
			break;
		tally_value(t, v, last);
		parent_got++;
	}
	EXPECT_EQ(-ETIMEDOUT, ret);
	ASSERT_EQ(0, chan_status_of(ch, &st));
	stuck = st.len;
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(0, st.recv_waiters);
	/* The dead left no WAITERS flag behind (POLLED ones do not matter). */
	EXPECT_EQ(0, ring_flags(&r) & ~(GOSYNC_CHAN_POLLED_IN |
					 GOSYNC_CHAN_POLLED_OUT));
	EXPECT_EQ(0, stuck);
	EXPECT_EQ(st.sends, st.recvs);
	EXPECT_EQ((long long)st.sends, fdinfo_num(gs_chan_fd(ch), "sends"));
	EXPECT_EQ((long long)st.recvs, fdinfo_num(gs_chan_fd(ch), "recvs"));
	/* The ring works on, a lap and more, through every slot. */
	for (uint64_t i = 0; i < 2 * 8; i++) {
		EXPECT_EQ(0, gs_chan_try_send(ch, &i));
		EXPECT_EQ(1, gs_chan_try_recv(ch, &v));
		EXPECT_EQ(i, v);
	}
	ASSERT_EQ(0, gs_chan_close(ch));
	ret = gs_chan_recv_until(ch, &v, gs_deadline_in(50 * NS_PER_MS), 0);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(-EPIPE, gs_chan_try_send(ch, &v));
	TH_LOG("%u children, %ld values received (%ld by the parent), %u stuck",
	       next_id, atomic_load(&t->received), parent_got, stuck);
	EXPECT_EQ(0, atomic_load(&t->errors))
		TH_LOG("first error %d", atomic_load(&t->first_error));
	EXPECT_EQ(0, atomic_load(&k->child_errors));
	EXPECT_EQ(0, atomic_load(&t->dups));
	EXPECT_EQ(0, atomic_load(&t->strays));
	EXPECT_EQ(0, atomic_load(&t->order_errors));
	EXPECT_LT(0, parent_got);
	/* Nothing received that was not sent: below each producer's next. */
	for (uint32_t id = 0; id < KF_IDS; id++) {
		uint32_t sent = atomic_load(&k->next_q[id]);

		EXPECT_EQ(tally_count(t, id, KF_N), tally_count(t, id, sent))
			TH_LOG("id %u", id);
	}
	ring_unmap(&r);
	gs_chan_destroy(ch);
	munmap(k, sizeof(*k));
	tally_free(t);
}

/* ------------------------------------------------------------------ */
/* Ring pages charged to the creator's locked memory (RLIMIT_MEMLOCK)   */

/* What a child found: 0, or the line of the first check that failed. */
struct memlock_report {
	int line;
	long long got;
};

#define MEMLOCK_CHECK(rep, cond, val) do {				\
	if (!(cond)) {							\
		(rep)->line = __LINE__;					\
		(rep)->got = (long long)(val);				\
		_exit(1);						\
	}								\
} while (0)

/* Pages a ring takes: the header page, then its slots. */
static long ring_pages(uint32_t elem, uint32_t cap)
{
	return (long)(ring_bytes(elem, cap) / page_size());
}

/* GOSYNC_IOC_CHAN_CREATE: the new fd or a negative errno. */
static int raw_create(uint32_t elem, uint32_t cap)
{
	struct gosync_chan_create c = { .elem_size = elem, .capacity = cap };

	return xioctl(gs_device_fd(), GOSYNC_IOC_CHAN_CREATE, &c);
}

static int set_memlock_pages(long pages)
{
	struct rlimit rl;

	rl.rlim_cur = rl.rlim_max = (rlim_t)pages * page_size();
	return setrlimit(RLIMIT_MEMLOCK, &rl) ? -errno : 0;
}

/* Become @uid for good: no capability is left, CAP_IPC_LOCK included. */
static int become_user(uid_t uid)
{
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
	    setresuid(uid, uid, uid))
		return -errno;
	return 0;
}

/* Drop CAP_IPC_LOCK alone (effective and permitted), staying root. */
static int drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	d[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

/* Run @fn in a child, its report in shared memory; ok if it exits 0. */
#define RUN_MEMLOCK_CHILD(fn, arg) do {					\
	struct memlock_report *rep_ = mmap(NULL, sizeof(*rep_),		\
		PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0); \
	pid_t pid_;							\
	ASSERT_NE(MAP_FAILED, rep_);					\
	ASSERT_LE(0, gs_device_fd()) TH_LOG("%s", gs_init_error());	\
	pid_ = fork_child();						\
	ASSERT_LE(0, pid_);						\
	if (pid_ == 0) {						\
		fn(rep_, arg);						\
		_exit(0);						\
	}								\
	EXPECT_EQ(0, reap(pid_))					\
		TH_LOG("child: check at line %d failed, got %lld",	\
		       rep_->line, rep_->got);				\
	munmap(rep_, sizeof(*rep_));					\
} while (0)

#define ML_LIMIT	16	/* pages of RLIMIT_MEMLOCK */
#define ML_CHANS	8	/* channels of 2 pages: the whole limit */

static void charge_child(struct memlock_report *rep, uid_t uid)
{
	struct gosync_timer_set never = { .when = GOSYNC_DEADLINE_NONE };
	int fds[ML_CHANS], fd, big, more;
	gs_sem *s;

	MEMLOCK_CHECK(rep, ring_pages(8, 256) == 2, ring_pages(8, 256));
	MEMLOCK_CHECK(rep, set_memlock_pages(ML_LIMIT) == 0, errno);
	MEMLOCK_CHECK(rep, become_user(uid) == 0, errno);

	for (int i = 0; i < ML_CHANS; i++) {
		fds[i] = raw_create(8, 256);
		MEMLOCK_CHECK(rep, fds[i] >= 0, fds[i]);
	}
	/* Full: no ring fits, not even the smallest (2 pages). */
	fd = raw_create(8, 256);
	MEMLOCK_CHECK(rep, fd == -ENOMEM, fd);
	fd = raw_create(0, 1);
	MEMLOCK_CHECK(rep, fd == -ENOMEM, fd);
	/* Nothing else is charged: no ring (timers have none either). */
	fd = raw_create(GOSYNC_CHAN_ELEM_MAX, 0);
	MEMLOCK_CHECK(rep, fd >= 0, fd);
	close(fd);
	fd = xioctl(gs_device_fd(), GOSYNC_IOC_TIMER_CREATE, &never);
	MEMLOCK_CHECK(rep, fd >= 0, fd);
	close(fd);
	fd = gs_sem_create(&s, 1);
	MEMLOCK_CHECK(rep, fd == 0, fd);
	gs_sem_destroy(s);

	/* Destroying a channel returns its charge: one more fits, no more. */
	close(fds[3]);
	fds[3] = raw_create(8, 256);
	MEMLOCK_CHECK(rep, fds[3] >= 0, fds[3]);
	fd = raw_create(8, 256);
	MEMLOCK_CHECK(rep, fd == -ENOMEM, fd);

	/*
	 * Slots count with their sequence numbers: a chan struct{} of 4096
	 * slots takes 8 pages of them (the element size times the capacity
	 * would be nothing).
	 */
	for (int i = 0; i < ML_CHANS; i++)
		close(fds[i]);
	MEMLOCK_CHECK(rep, ring_pages(0, 4096) == 9, ring_pages(0, 4096));
	big = raw_create(0, 4096);
	MEMLOCK_CHECK(rep, big >= 0, big);
	fd = raw_create(0, 4096);
	MEMLOCK_CHECK(rep, fd == -ENOMEM, fd);
	more = raw_create(0, 3072);	/* 7 pages: exactly the rest */
	MEMLOCK_CHECK(rep, more >= 0, more);
	fd = raw_create(0, 1);
	MEMLOCK_CHECK(rep, fd == -ENOMEM, fd);

	/* Everything returned: one ring of the whole limit fits. */
	close(big);
	close(more);
	MEMLOCK_CHECK(rep, ring_pages(8, 15 * 256) == ML_LIMIT,
		      ring_pages(8, 15 * 256));
	fd = raw_create(8, 15 * 256);
	MEMLOCK_CHECK(rep, fd >= 0, fd);
	close(fd);
}

TEST(ring_pages_are_charged_to_the_creators_locked_memory)
{
	if (geteuid() != 0)
		SKIP(return, "needs root, to become another user");
	RUN_MEMLOCK_CHILD(charge_child, (uid_t)61001);
}

static void mapping_child(struct memlock_report *rep, uid_t uid)
{
	size_t bytes = ring_bytes(8, 256);
	int a, b, fd;
	void *p;

	MEMLOCK_CHECK(rep, set_memlock_pages(4) == 0, errno);
	MEMLOCK_CHECK(rep, become_user(uid) == 0, errno);
	a = raw_create(8, 256);
	MEMLOCK_CHECK(rep, a >= 0, a);
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	MEMLOCK_CHECK(rep, p != MAP_FAILED, errno);
	close(a);
	/* The mapping keeps the ring, and its charge: room for one more. */
	b = raw_create(8, 256);
	MEMLOCK_CHECK(rep, b >= 0, b);
	fd = raw_create(8, 256);
	MEMLOCK_CHECK(rep, fd == -ENOMEM, fd);
	/* Unmapped, the ring is freed and its charge returned. */
	munmap(p, bytes);
	fd = raw_create(8, 256);
	MEMLOCK_CHECK(rep, fd >= 0, fd);
	close(fd);
	close(b);
}

TEST(a_mapping_that_outlives_close_keeps_the_charge_until_munmap)
{
	if (geteuid() != 0)
		SKIP(return, "needs root, to become another user");
	RUN_MEMLOCK_CHILD(mapping_child, (uid_t)61002);
}

static void cap_child(struct memlock_report *rep, int unused)
{
	int fds[4], fd;

	(void)unused;
	/* CAP_IPC_LOCK: no limit applies, nothing is charged. */
	MEMLOCK_CHECK(rep, set_memlock_pages(0) == 0, errno);
	for (int i = 0; i < 4; i++) {
		fds[i] = raw_create(8, 256);
		MEMLOCK_CHECK(rep, fds[i] >= 0, fds[i]);
	}
	/* Root without it: a limit of nothing refuses every ring. */
	MEMLOCK_CHECK(rep, drop_cap_ipc_lock() == 0, errno);
	fd = raw_create(0, 1);
	MEMLOCK_CHECK(rep, fd == -ENOMEM, fd);
	fd = raw_create(8, 0);
	MEMLOCK_CHECK(rep, fd >= 0, fd);
	close(fd);
	/* Rings made with the capability were not charged: nothing to return. */
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	fd = raw_create(0, 1);
	MEMLOCK_CHECK(rep, fd == -ENOMEM, fd);
}

TEST(cap_ipc_lock_exempts_from_the_memlock_limit)
{
	if (geteuid() != 0)
		SKIP(return, "needs root, for CAP_IPC_LOCK");
	RUN_MEMLOCK_CHILD(cap_child, 0);
}

TEST_HARNESS_MAIN
