// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of channels (Go's chan T), through the library (gs_chan_*) and,
 * where the ABI itself is under test, through the raw ioctls:
 *
 *  - the semantics Go's own tests check (runtime/chan_test.go TestChan,
 *    test/chan/fifo.go, test/chan/zerosize.go), for capacities 0, 1, 2,
 *    10 and 100: blocking on empty and full channels, FIFO values and
 *    waiters, close (wakes everybody, drains, then "ok" false forever),
 *    len/cap, the status ioctl and /proc/self/fdinfo;
 *  - errors with exact errnos, the channel unchanged after each;
 *  - element sizes 0 to GOSYNC_CHAN_ELEM_MAX, values byte-exact;
 *  - many senders and receivers, a chain of 1000 threads;
 *  - give-up races: a value is received exactly when its send succeeded,
 *    however deadlines and signals cut the waits short;
 *  - other processes: fork, SCM_RIGHTS, SIGKILL while waiting;
 *  - signals (-EINTR, SA_RESTART), deadlines on both clocks;
 *  - poll/epoll readiness and wake-ups, an fd closed while waited on.
 *
 * Worker threads never use ASSERT/EXPECT: they record what happened and
 * the test's main thread checks it. Every wait that should end by itself
 * has a deadline (WAIT_LIMIT_MS), so that a bug fails rather than hangs;
 * every child process dies with the test (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
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

/* Go's TestChan "send 1000 integers in 4 goroutines": P senders of L values. */
#define GO_P		4
#define GO_L		250

/* test/chan/fifo.go SynchFifo: a daisy chain of this many goroutines. */
#define DAISY_N		10

/*
 * Multi-producer/multi-consumer: values in total, sized for a few seconds
 * under QEMU TCG with 2 vCPUs, where 4 + 4 threads move an unbuffered
 * value in about 30 us (every transfer is a blocking hand-off) and a
 * buffered one in about 25 us.
 */
#define MPMC_SENDERS		4
#define MPMC_RECEIVERS		4
#define MPMC_N_BUFFERED		100000
#define MPMC_N_UNBUFFERED	60000
#define MPMC_JOIN_MS		(15 * 60 * 1000)	/* watchdog: 20 x the slowest run */

/* Give-up races: threads, and values each sender tries to send. */
#define RACE_SENDERS		2
#define RACE_RECEIVERS		2
#define RACE_N			((uint32_t)gs_stress(10000, 2000))

/* Values each sending process sends in the cross-process tests. */
#define XPROC_N		((uint32_t)gs_stress(3000, 600))

/* The chain of threads linked by unbuffered channels. */
#define CHAIN_LEN	1000
#define CHAIN_ROUNDS	3
#define CHAIN_STACK	(64 * 1024)

/* SIGKILL stress: children alive at once, and kills in total. */
#define KS_CHILDREN	4
#define KS_KILLS	24
#define KS_MAX_IDS	(KS_CHILDREN + KS_KILLS)

/* How far ahead of the host's the monotonic clock of a time namespace is. */
#define TIMENS_OFFSET_S	100000ULL

/* Values sent through each element-size variant. */
#define ELEM_VALUES	6

#define P_IN		(POLLIN | POLLRDNORM)
#define P_OUT		(POLLOUT | POLLWRNORM)
#define P_CLOSED	(POLLIN | POLLRDNORM | POLLHUP | POLLOUT | POLLERR)

GS_CHAN_DECLARE(u64chan, uint64_t)
GS_CHAN_DECLARE(u32chan, uint32_t)

/* ------------------------------------------------------------------ */
/* Bounded sends and receives                                          */

static int recv_v(gs_chan *ch, void *value)
{
	return gs_chan_recv_until(ch, value, limit(), 0);
}

static int send_u64(gs_chan *ch, uint64_t v)
{
	return gs_chan_send_until(ch, &v, limit(), 0);
}

static int send_u64_until(gs_chan *ch, uint64_t v, uint64_t deadline,
			  unsigned int flags)
{
	return gs_chan_send_until(ch, &v, deadline, flags);
}

/* ------------------------------------------------------------------ */
/* Channel state                                                        */

/*
 * Wait until exactly @senders and @receivers are blocked on @ch.
 * Returns 0, -ETIMEDOUT after WAIT_LIMIT_MS, or the status error.
 */
static int wait_waiters(gs_chan *ch, uint32_t senders, uint32_t receivers)
{
	return wait_chan_waiters(ch, (int)senders, (int)receivers);
}

/* Send base, base + 1, ... without blocking; 0 or the first error. */
static int fill(gs_chan *ch, uint32_t n, uint64_t base)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t v = base + i;
		int err = gs_chan_try_send(ch, &v);

		if (err)
			return err;
	}
	return 0;
}

/*
 * Receive @n values expecting base, base + 1, ...; returns how many came
 * right before the first wrong one (n if all did).
 */
static uint32_t drain_in_order(gs_chan *ch, uint32_t n, uint64_t base)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t v = ~0ULL;

		if (recv_v(ch, &v) != 1 || v != base + i)
			return i;
	}
	return n;
}

/* True if /proc/self/fdinfo/@fd has the whole line @line. */
static bool fdinfo_has(int fd, const char *line)
{
	char buf[4096], want[160];

	if (fdinfo_read(fd, buf, sizeof(buf)) < 0)
		return false;
	snprintf(want, sizeof(want), "\n%s\n", line);
	return strstr(buf, want) != NULL;
}

#define EXPECT_FDINFO(fd, ...) do {					\
	char line_[128], all_[4096] = "";				\
	snprintf(line_, sizeof(line_), __VA_ARGS__);			\
	if (!fdinfo_has((fd), line_))					\
		fdinfo_read((fd), all_, sizeof(all_));			\
	EXPECT_TRUE(fdinfo_has((fd), line_))				\
		TH_LOG("no line '%s' in fdinfo:\n%s", line_, all_);	\
} while (0)

/* Byte @j of test value number @seed: differs between values and offsets. */
static void pattern(unsigned char *p, size_t size, unsigned int seed)
{
	for (size_t j = 0; j < size; j++)
		p[j] = (unsigned char)(seed * 151u + j * 7u + (j >> 8) * 29u +
				       (j >> 16) + 1u);
}

/* ------------------------------------------------------------------ */
/* One send or receive in a thread of its own                          */

enum op_kind { OP_SEND, OP_RECV, OP_RAW_SEND, OP_RAW_RECV };

struct op {
	enum op_kind kind;
	gs_chan *ch;		/* OP_SEND, OP_RECV */
	int fd;			/* OP_RAW_*: the ioctls on this fd */
	void *buf;		/* the value; &val unless set otherwise */
	uint64_t val;
	uint64_t deadline;
	unsigned int flags;
	int ret;		/* the call's result, once done */
	atomic_bool done;
	pthread_t tid;
};

static void *op_main(void *arg)
{
	struct op *op = arg;
	struct gosync_chan_xfer x;
	int r;

	switch (op->kind) {
	case OP_SEND:
		op->ret = gs_chan_send_until(op->ch, op->buf, op->deadline,
					     op->flags);
		break;
	case OP_RECV:
		op->ret = gs_chan_recv_until(op->ch, op->buf, op->deadline,
					     op->flags);
		break;
	case OP_RAW_SEND:
	case OP_RAW_RECV:
		memset(&x, 0, sizeof(x));
		x.value = (uintptr_t)op->buf;
		x.deadline = op->deadline;
		x.flags = op->flags;
		r = ioctl(op->fd, op->kind == OP_RAW_SEND ? GOSYNC_IOC_CHAN_SEND :
				  GOSYNC_IOC_CHAN_RECV, &x);
		op->ret = r < 0 ? -errno : r;
		break;
	}
	atomic_store(&op->done, true);
	return NULL;
}

/* A blocking send of @val (or receive, @val then preset) without deadline. */
static void op_init(struct op *op, enum op_kind kind, gs_chan *ch,
		    uint64_t val)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->ch = ch;
	op->fd = ch ? gs_chan_fd(ch) : -1;
	op->buf = &op->val;
	op->val = val;
	op->deadline = GS_FOREVER;
	op->ret = INT_MIN;
	atomic_init(&op->done, false);
}

static int op_run(struct op *op)
{
	return pthread_create(&op->tid, NULL, op_main, op);
}

static int op_start(struct op *op, enum op_kind kind, gs_chan *ch,
		    uint64_t val)
{
	op_init(op, kind, ch, val);
	return op_run(op);
}

static bool op_done(struct op *op)
{
	return atomic_load(&op->done);
}

static int op_join(struct op *op)
{
	return join_ms(op->tid, WAIT_LIMIT_MS);
}

/* poll() without waiting: the revents for everything, or -errno. */
static int poll_events(int fd)
{
	struct pollfd p = {
		.fd = fd,
		.events = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM,
	};
	int n = poll(&p, 1, 0);

	return n < 0 ? -errno : p.revents;
}

/* ------------------------------------------------------------------ */
/* Threads that send or receive sequences                              */

struct seq_args {
	gs_chan *ch;
	uint64_t first;
	uint32_t n;
	uint32_t got;		/* receiver: values that came right */
	uint64_t bad;		/* receiver: the first wrong value */
	int err;
	pthread_t tid;
};

/* Sends first, first + 1, ... (n values). */
static void *seq_sender(void *arg)
{
	struct seq_args *a = arg;

	for (uint32_t i = 0; i < a->n; i++) {
		uint64_t v = a->first + i;
		int err = gs_chan_send_until(a->ch, &v, limit(), 0);

		if (err) {
			a->err = err;
			break;
		}
	}
	return NULL;
}

/* Receives n values, expecting first, first + 1, ... */
static void *seq_receiver(void *arg)
{
	struct seq_args *a = arg;

	for (uint32_t i = 0; i < a->n; i++) {
		uint64_t v = ~0ULL;
		int r = gs_chan_recv_until(a->ch, &v, limit(), 0);

		if (r != 1) {
			a->err = r < 0 ? r : -ENODATA;
			break;
		}
		if (v != a->first + i) {
			a->bad = v;
			break;
		}
		a->got++;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Errors, and the ABI's conventions                                    */

TEST(create_rejects_bad_arguments)
{
	static const struct gosync_chan_create bad[] = {
		{ .elem_size = GOSYNC_CHAN_ELEM_MAX + 1 },
		{ .elem_size = GOSYNC_CHAN_ELEM_MAX + 1, .capacity = 1 },
		{ .elem_size = UINT32_MAX, .capacity = 1 },
		{ .elem_size = 8, .capacity = 1, .flags = 1 },
		{ .elem_size = 8, .capacity = 1, .flags = GOSYNC_CLOCK_REALTIME },
		{ .elem_size = 8, .capacity = 1, .flags = GOSYNC_CHAN_TRY },
		{ .elem_size = 8, .capacity = 1, .flags = 1U << 31 },
		{ .elem_size = 8, .capacity = 1, .reserved = 1 },
		{ .elem_size = 0, .capacity = 0, .reserved = 1U << 31 },
	};
	struct gosync_chan_create c;
	long long maxcap = read_param("max_capacity");
	int dev = gs_device_fd();
	int probe = lowest_free_fd();
	gs_chan *ch = NULL;
	int fd;

	ASSERT_LE(0, dev) TH_LOG("%s", gs_init_error());
	ASSERT_LT(0, maxcap) TH_LOG("cannot read the max_capacity parameter");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		c = bad[i];
		errno = 0;
		EXPECT_EQ(-1, ioctl(dev, GOSYNC_IOC_CHAN_CREATE, &c)) TH_LOG("case %zu", i);
		EXPECT_EQ(EINVAL, errno) TH_LOG("case %zu", i);
	}
	errno = 0;
	EXPECT_EQ(-1, ioctl(dev, GOSYNC_IOC_CHAN_CREATE, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(probe, lowest_free_fd());	/* no fd was made */

	/* The limits themselves are fine. */
	memset(&c, 0, sizeof(c));
	c.elem_size = GOSYNC_CHAN_ELEM_MAX;
	c.capacity = 2;
	fd = ioctl(dev, GOSYNC_IOC_CHAN_CREATE, &c);
	EXPECT_LE(0, fd) TH_LOG("elem %u cap 2: %s", c.elem_size, strerror(errno));
	if (fd >= 0) {
		EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		EXPECT_EQ(O_RDWR, fcntl(fd, F_GETFL) & O_ACCMODE);
		close(fd);
	}
	/* A chan struct{} takes 8 bytes a slot: the limit fits easily. */
	memset(&c, 0, sizeof(c));
	c.capacity = (uint32_t)maxcap;
	fd = ioctl(dev, GOSYNC_IOC_CHAN_CREATE, &c);
	EXPECT_LE(0, fd) TH_LOG("elem 0 cap %u: %s", c.capacity, strerror(errno));
	if (fd >= 0)
		close(fd);

	/* One slot above max_capacity, whatever the element size. */
	if (maxcap < UINT32_MAX) {
		for (uint32_t size = 0; size <= 8; size += 8) {
			memset(&c, 0, sizeof(c));
			c.elem_size = size;
			c.capacity = (uint32_t)maxcap + 1;
			errno = 0;
			EXPECT_EQ(-1, ioctl(dev, GOSYNC_IOC_CHAN_CREATE, &c));
			EXPECT_EQ(EINVAL, errno) TH_LOG("elem %u", size);
		}
		EXPECT_EQ(-EINVAL, gs_chan_make(&ch, 8, (uint32_t)maxcap + 1));
		EXPECT_EQ(-EINVAL, gs_chan_make(&ch, 0, (uint32_t)maxcap + 1));
	} else {
		TH_LOG("max_capacity is UINT32_MAX: no capacity above it");
	}
	/* The library's own check, and no silent truncation of size_t. */
	EXPECT_EQ(-EINVAL, gs_chan_make(&ch, GOSYNC_CHAN_ELEM_MAX + 1, 0));
	EXPECT_EQ(-EINVAL, gs_chan_make(&ch, ((size_t)1 << 32) | 8, 1));
	EXPECT_EQ(NULL, ch);
	EXPECT_EQ(probe, lowest_free_fd());
}

TEST(create_buffer_above_max_buffer_bytes_is_enomem)
{
	long long maxbuf = read_param("max_buffer_bytes");
	long long maxcap = read_param("max_capacity");
	struct gosync_chan_create c = { .elem_size = GOSYNC_CHAN_ELEM_MAX };
	struct gosync_chan_status st;
	int dev = gs_device_fd();
	int probe = lowest_free_fd();
	unsigned char *out, *in;
	long long fit;
	gs_chan *ch = NULL;

	ASSERT_LE(0, dev) TH_LOG("%s", gs_init_error());
	ASSERT_LT(0, maxbuf) TH_LOG("cannot read the max_buffer_bytes parameter");
	ASSERT_LT(0, maxcap);
	/* Slots of 64 KiB that fit, counted as mapped: with their sequence. */
	fit = maxbuf / GOSYNC_CHAN_SLOT_SIZE(GOSYNC_CHAN_ELEM_MAX);
	ASSERT_LT(fit + 1, maxcap) TH_LOG("parameters leave no room for the test");

	c.capacity = (uint32_t)fit + 1;
	errno = 0;
	EXPECT_EQ(-1, ioctl(dev, GOSYNC_IOC_CHAN_CREATE, &c));
	EXPECT_EQ(ENOMEM, errno);
	c.capacity = (uint32_t)maxcap;	/* 64 KiB x max_capacity */
	errno = 0;
	EXPECT_EQ(-1, ioctl(dev, GOSYNC_IOC_CHAN_CREATE, &c));
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_EQ(-ENOMEM, gs_chan_make(&ch, GOSYNC_CHAN_ELEM_MAX, (uint32_t)fit + 1));
	EXPECT_EQ(-ENOMEM, gs_chan_make(&ch, GOSYNC_CHAN_ELEM_MAX, (uint32_t)maxcap));
	/* Element size 1 with a slot too many, when max_capacity allows it. */
	if (maxbuf / GOSYNC_CHAN_SLOT_SIZE(1) < maxcap) {
		EXPECT_EQ(-ENOMEM, gs_chan_make(&ch, 1, (uint32_t)(maxbuf / GOSYNC_CHAN_SLOT_SIZE(1)) + 1));
	}
	EXPECT_EQ(probe, lowest_free_fd());

	/* As many slots as max_buffer_bytes holds are allowed, and work. */
	if (fit < 1)
		return;
	ASSERT_EQ(0, gs_chan_make(&ch, GOSYNC_CHAN_ELEM_MAX, (uint32_t)fit));
	ASSERT_EQ(0, gs_chan_status(ch, &st));
	EXPECT_EQ((uint32_t)fit, st.capacity);
	EXPECT_EQ(GOSYNC_CHAN_ELEM_MAX, st.elem_size);
	out = malloc(GOSYNC_CHAN_ELEM_MAX);
	in = malloc(GOSYNC_CHAN_ELEM_MAX);
	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	pattern(out, GOSYNC_CHAN_ELEM_MAX, 3);
	EXPECT_EQ(0, gs_chan_try_send(ch, out));
	EXPECT_EQ(0, gs_chan_try_send(ch, out));
	EXPECT_EQ(2, gs_chan_len(ch));
	memset(in, 0, GOSYNC_CHAN_ELEM_MAX);
	EXPECT_EQ(1, gs_chan_try_recv(ch, in));
	EXPECT_EQ(0, memcmp(in, out, GOSYNC_CHAN_ELEM_MAX));
	free(out);
	free(in);
	gs_chan_destroy(ch);
}

/* Write @val to the module parameter @name: 0 or a negative errno. */
static int write_param(const char *name, const char *val)
{
	char path[128];
	ssize_t n;
	int fd, err;

	snprintf(path, sizeof(path), "/sys/module/gosync/parameters/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

static int raw_create(uint32_t elem, uint32_t cap)
{
	struct gosync_chan_create c = { .elem_size = elem, .capacity = cap };
	int fd = xioctl(gs_device_fd(), GOSYNC_IOC_CHAN_CREATE, &c);

	if (fd >= 0)
		close(fd);
	return fd < 0 ? fd : 0;
}

/* Tests that change the limits; the teardown puts them back. */
FIXTURE(limits) {
	char maxbuf[32], maxcap[32];
};

FIXTURE_SETUP(limits)
{
	long long maxbuf = read_param("max_buffer_bytes");
	long long maxcap = read_param("max_capacity");

	ASSERT_LT(0, maxbuf);
	ASSERT_LT(0, maxcap);
	snprintf(self->maxbuf, sizeof(self->maxbuf), "%lld", maxbuf);
	snprintf(self->maxcap, sizeof(self->maxcap), "%lld", maxcap);
	ASSERT_LE(0, gs_device_fd()) TH_LOG("%s", gs_init_error());
}

FIXTURE_TEARDOWN(limits)
{
	EXPECT_EQ(0, write_param("max_buffer_bytes", self->maxbuf));
	EXPECT_EQ(0, write_param("max_capacity", self->maxcap));
}

/*
 * max_buffer_bytes bounds the slots as they are mapped: the element
 * rounded up to 8 bytes, plus its 8-byte sequence number. A chan
 * struct{} takes 8 bytes a slot, not nothing.
 */
TEST_F(limits, buffer_bound_counts_slots_as_mapped)
{
	static const struct { uint32_t elem, slots; } fits[] = {
		{ 0, 65536 / 8 }, { 1, 65536 / 16 }, { 8, 65536 / 16 },
		{ 9, 65536 / 24 }, { 4096, 65536 / 4104 },
	};

	if (geteuid() != 0)
		SKIP(return, "needs root, to set the module's parameters");
	ASSERT_EQ(0, write_param("max_buffer_bytes", "65536"));
	ASSERT_EQ(0, write_param("max_capacity", "65536"));
	for (size_t i = 0; i < ARRAY_SIZE(fits); i++) {
		EXPECT_EQ(0, raw_create(fits[i].elem, fits[i].slots))
			TH_LOG("elem %u", fits[i].elem);
		EXPECT_EQ(-ENOMEM, raw_create(fits[i].elem, fits[i].slots + 1))
			TH_LOG("elem %u", fits[i].elem);
	}
}

/*
 * The parameters cannot be set beyond what a ring can be (1 GiB of
 * slots, 2^27 slots of 8 bytes), so no size or page count can wrap;
 * a refused write changes nothing.
 */
TEST_F(limits, limits_cannot_be_set_beyond_what_a_ring_can_be)
{
	if (geteuid() != 0)
		SKIP(return, "needs root, to set the module's parameters");
	EXPECT_EQ(0, write_param("max_buffer_bytes", "1073741824"));
	EXPECT_EQ(1073741824LL, read_param("max_buffer_bytes"));
	EXPECT_EQ(-EINVAL, write_param("max_buffer_bytes", "1073741825"));
	EXPECT_EQ(-EINVAL, write_param("max_buffer_bytes", "18446744073709551615"));
	EXPECT_EQ(-EINVAL, write_param("max_buffer_bytes", "-1"));
	EXPECT_EQ(1073741824LL, read_param("max_buffer_bytes"));

	EXPECT_EQ(0, write_param("max_capacity", "134217728"));
	EXPECT_EQ(134217728LL, read_param("max_capacity"));
	EXPECT_EQ(-EINVAL, write_param("max_capacity", "134217729"));
	EXPECT_EQ(-EINVAL, write_param("max_capacity", "4294967295"));
	EXPECT_EQ(134217728LL, read_param("max_capacity"));

	/* At the largest limits, the largest channel is refused cleanly. */
	EXPECT_EQ(-ENOMEM, raw_create(GOSYNC_CHAN_ELEM_MAX, 134217728));
	EXPECT_EQ(-ENOMEM, raw_create(8, 134217728));
	EXPECT_EQ(-EINVAL, raw_create(0, 134217729));
}

TEST(xfer_bad_flags_or_reserved_are_einval)
{
	static const struct { uint32_t flags, reserved; } bad[] = {
		{ 1U << 2, 0 },
		{ 1U << 31, 0 },
		{ ~0U, 0 },
		{ GOSYNC_CHAN_TRY | (1U << 3), 0 },
		{ 0, 1 },
		{ GOSYNC_CHAN_TRY, 1U << 31 },
	};
	unsigned long cmds[2] = { GOSYNC_IOC_CHAN_SEND, GOSYNC_IOC_CHAN_RECV };
	struct gosync_chan_xfer x;
	uint64_t v = 7, got = 0;
	gs_chan *ch, *unbuf;
	struct op w;
	int fd;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 1));
	fd = gs_chan_fd(ch);
	for (int c = 0; c < 2; c++) {
		/* Before each receive there is a value to take. */
		if (cmds[c] == GOSYNC_IOC_CHAN_RECV) {
			ASSERT_EQ(0, gs_chan_try_send(ch, &v));
		}
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			memset(&x, 0, sizeof(x));
			x.value = (uintptr_t)(cmds[c] == GOSYNC_IOC_CHAN_SEND ? &v : &got);
			x.deadline = GS_FOREVER;
			x.flags = bad[i].flags;
			x.reserved = bad[i].reserved;
			errno = 0;
			EXPECT_EQ(-1, ioctl(fd, cmds[c], &x)) TH_LOG("cmd %d case %zu", c, i);
			EXPECT_EQ(EINVAL, errno) TH_LOG("cmd %d case %zu", c, i);
		}
		errno = 0;
		EXPECT_EQ(-1, ioctl(fd, cmds[c], NULL));
		EXPECT_EQ(EFAULT, errno);
		EXPECT_STATE(ch, c, 0, 0, 0);
	}
	EXPECT_EQ(0, got);
	EXPECT_COUNTS(ch, 1, 0);
	/* Valid flags together: a non-blocking receive on a realtime clock. */
	memset(&x, 0, sizeof(x));
	x.value = (uintptr_t)&got;
	x.deadline = GS_FOREVER;
	x.flags = GOSYNC_CHAN_TRY | GOSYNC_CLOCK_REALTIME;
	EXPECT_EQ(1, ioctl(fd, GOSYNC_IOC_CHAN_RECV, &x));
	EXPECT_EQ(7, got);
	errno = 0;
	EXPECT_EQ(-1, ioctl(fd, GOSYNC_IOC_CHAN_RECV, &x));
	EXPECT_EQ(EAGAIN, errno);
	/* The library refuses what its _until calls do not offer. */
	EXPECT_EQ(-EINVAL, gs_chan_send_until(ch, &v, GS_FOREVER, GOSYNC_CHAN_TRY));
	EXPECT_EQ(-EINVAL, gs_chan_recv_until(ch, &got, GS_FOREVER, 1U << 5));
	EXPECT_STATE(ch, 0, 0, 0, 0);
	EXPECT_COUNTS(ch, 1, 1);

	/* A bad send leaves a waiting receiver waiting, and vice versa. */
	ASSERT_EQ(0, gs_chan_make(&unbuf, sizeof(uint64_t), 0));
	ASSERT_EQ(0, op_start(&w, OP_RECV, unbuf, 0));
	ASSERT_EQ(0, wait_waiters(unbuf, 0, 1));
	memset(&x, 0, sizeof(x));
	x.value = (uintptr_t)&v;
	x.deadline = GS_FOREVER;
	x.reserved = 1;
	errno = 0;
	EXPECT_EQ(-1, ioctl(gs_chan_fd(unbuf), GOSYNC_IOC_CHAN_SEND, &x));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_STATE(unbuf, 0, 0, 1, 0);
	EXPECT_FALSE(op_done(&w));
	EXPECT_EQ(0, GS_SEND(unbuf, uint64_t, 11));
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(1, w.ret);
	EXPECT_EQ(11, w.val);

	ASSERT_EQ(0, op_start(&w, OP_SEND, unbuf, 12));
	ASSERT_EQ(0, wait_waiters(unbuf, 1, 0));
	x.value = (uintptr_t)&got;
	x.flags = 1U << 4;
	x.reserved = 0;
	errno = 0;
	EXPECT_EQ(-1, ioctl(gs_chan_fd(unbuf), GOSYNC_IOC_CHAN_RECV, &x));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_STATE(unbuf, 0, 1, 0, 0);
	EXPECT_EQ(1, recv_v(unbuf, &got));
	EXPECT_EQ(12, got);
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(0, w.ret);
	EXPECT_COUNTS(unbuf, 2, 2);
	gs_chan_destroy(unbuf);
	gs_chan_destroy(ch);
}

TEST(unknown_ioctls_on_channel_are_enotty)
{
	const unsigned long bad[] = {
		_IO(GOSYNC_IOC_MAGIC, 0x26),
		_IOW(GOSYNC_IOC_MAGIC, 0x25, __u64),	/* RING_ID with an argument */
		_IOW(GOSYNC_IOC_MAGIC, 0x24, __u64),	/* KICK with an argument */
		_IOW(GOSYNC_IOC_MAGIC, 0x2f, struct gosync_chan_xfer),
		_IOW(GOSYNC_IOC_MAGIC, 0x20, __u64),	/* SEND, wrong size */
		/* RECV and STATUS with the wrong direction */
		_IOR(GOSYNC_IOC_MAGIC, 0x21, struct gosync_chan_xfer),
		_IOW(GOSYNC_IOC_MAGIC, 0x23, struct gosync_chan_status),
		_IOW(GOSYNC_IOC_MAGIC, 0x22, __u32),	/* CLOSE with an argument */
		_IOW('x', 0x20, struct gosync_chan_xfer),	/* another magic */
		GOSYNC_IOC_VERSION,
		GOSYNC_IOC_CHAN_CREATE,
		GOSYNC_IOC_SEM_CREATE,
		GOSYNC_IOC_SEM_ACQUIRE,
		GOSYNC_IOC_SEM_TRY_ACQUIRE,
		GOSYNC_IOC_SEM_RELEASE,
		GOSYNC_IOC_SEM_STATUS,
		0,
	};
	uint64_t argbuf[16];
	uint64_t v = 0;
	gs_chan *ch;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 2));
	ASSERT_EQ(0, GS_SEND(ch, uint64_t, 3));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(argbuf, 0, sizeof(argbuf));
		argbuf[0] = (uintptr_t)&v;	/* harmless if taken for a value */
		errno = 0;
		EXPECT_EQ(-1, ioctl(gs_chan_fd(ch), bad[i], argbuf)) TH_LOG("cmd %#lx", bad[i]);
		EXPECT_EQ(ENOTTY, errno) TH_LOG("cmd %#lx", bad[i]);
	}
	/* Nothing changed: not closed, the value still there, nothing added. */
	EXPECT_STATE(ch, 1, 0, 0, 0);
	EXPECT_COUNTS(ch, 1, 0);
	EXPECT_EQ(1, gs_chan_try_recv(ch, &v));
	EXPECT_EQ(3, v);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	/* And the channel ioctls on the device itself. */
	errno = 0;
	EXPECT_EQ(-1, ioctl(gs_device_fd(), GOSYNC_IOC_CHAN_CLOSE));
	EXPECT_EQ(ENOTTY, errno);
	gs_chan_destroy(ch);
}

TEST(from_fd_rejects_what_is_not_a_channel)
{
	gs_chan *ch = NULL;
	gs_sem *sem;
	int devnull, pipefd[2], closed_fd;

	ASSERT_EQ(0, gs_sem_create(&sem, 1));
	EXPECT_EQ(-ENOTTY, gs_chan_from_fd(&ch, gs_sem_fd(sem)));
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, devnull);
	EXPECT_EQ(-ENOTTY, gs_chan_from_fd(&ch, devnull));
	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	EXPECT_EQ(-ENOTTY, gs_chan_from_fd(&ch, pipefd[0]));
	EXPECT_EQ(-ENOTTY, gs_chan_from_fd(&ch, gs_device_fd()));
	closed_fd = lowest_free_fd();
	EXPECT_EQ(-EBADF, gs_chan_from_fd(&ch, closed_fd));
	EXPECT_EQ(NULL, ch);
	/* The fds stay the caller's, open, and the semaphore still works. */
	EXPECT_LE(0, fcntl(devnull, F_GETFD));
	EXPECT_LE(0, fcntl(gs_sem_fd(sem), F_GETFD));
	EXPECT_EQ(0, gs_sem_try_acquire(sem, 1));
	EXPECT_EQ(-EAGAIN, gs_sem_try_acquire(sem, 1));
	close(devnull);
	close(pipefd[0]);
	close(pipefd[1]);
	gs_sem_destroy(sem);
}

TEST(typed_from_fd_checks_element_size)
{
	u32chan c32, c32b;
	u64chan c64 = { NULL };
	uint32_t x = 0;
	int fd;

	ASSERT_EQ(0, u32chan_make(&c32, 4));
	EXPECT_EQ(sizeof(uint32_t), gs_chan_elem_size(c32.ch));
	EXPECT_EQ(4, gs_chan_cap(c32.ch));
	fd = fcntl(gs_chan_fd(c32.ch), F_DUPFD_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, u64chan_from_fd(&c64, fd));
	EXPECT_EQ(NULL, c64.ch);
	EXPECT_STATE(c32.ch, 0, 0, 0, 0);
	/* On failure the fd is still the caller's: open, closed once here. */
	EXPECT_NE(-1, fcntl(fd, F_GETFD));
	EXPECT_EQ(0, close(fd));

	/* The right type adopts the fd and shares the channel. */
	fd = fcntl(gs_chan_fd(c32.ch), F_DUPFD_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, u32chan_from_fd(&c32b, fd));
	EXPECT_EQ(fd, gs_chan_fd(c32b.ch));
	EXPECT_EQ(4, gs_chan_cap(c32b.ch));
	EXPECT_EQ(0, u32chan_send(c32b, 0xfeedfaceU));
	EXPECT_EQ(0, u32chan_try_send(c32b, 0x12345678U));
	EXPECT_EQ(2, gs_chan_len(c32.ch));
	EXPECT_EQ(1, u32chan_recv(c32, &x));
	EXPECT_EQ(0xfeedfaceU, x);
	EXPECT_EQ(1, u32chan_try_recv(c32, &x));
	EXPECT_EQ(0x12345678U, x);
	EXPECT_EQ(-EAGAIN, u32chan_try_recv(c32, &x));
	EXPECT_EQ(0, u32chan_close(c32b));
	EXPECT_EQ(-EPIPE, u32chan_close(c32));
	x = 5;
	EXPECT_EQ(0, u32chan_recv(c32, &x));
	EXPECT_EQ(0, x);
	u32chan_destroy(c32b);
	u32chan_destroy(c32);
}

/* ------------------------------------------------------------------ */
/* Go's TestChan and fifo.go, for each capacity                        */

FIXTURE(chan) {
	gs_chan *ch;
	uint32_t cap;
};

FIXTURE_VARIANT(chan) {
	uint32_t cap;
};

FIXTURE_VARIANT_ADD(chan, cap0) { .cap = 0 };
FIXTURE_VARIANT_ADD(chan, cap1) { .cap = 1 };
FIXTURE_VARIANT_ADD(chan, cap2) { .cap = 2 };
FIXTURE_VARIANT_ADD(chan, cap10) { .cap = 10 };
FIXTURE_VARIANT_ADD(chan, cap100) { .cap = 100 };

FIXTURE_SETUP(chan)
{
	int err;

	self->cap = variant->cap;
	err = gs_chan_make(&self->ch, sizeof(uint64_t), variant->cap);
	ASSERT_EQ(0, err) TH_LOG("gs_chan_make: %s %s", gs_strerror(err),
				 gs_init_error());
}

FIXTURE_TEARDOWN(chan)
{
	gs_chan_destroy(self->ch);
}

TEST_F(chan, recv_from_empty_blocks)
{
	struct op r1, r2;
	uint64_t v = 5, t0;

	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(self->ch, &v,
						 gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_LE(SHORT_MS, ms_since(t0));
	EXPECT_STATE(self->ch, 0, 0, 0, 0);

	ASSERT_EQ(0, op_start(&r1, OP_RECV, self->ch, 0));
	ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
	ASSERT_EQ(0, op_start(&r2, OP_RECV, self->ch, 0));
	ASSERT_EQ(0, wait_waiters(self->ch, 0, 2));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(op_done(&r1));
	EXPECT_FALSE(op_done(&r2));
	/* Other receivers waiting make no value appear. */
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(self->ch, &v,
						 gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_STATE(self->ch, 0, 0, 2, 0);

	/* The sends complete at once, to the receivers in their order. */
	EXPECT_EQ(0, GS_SEND(self->ch, uint64_t, 101));
	EXPECT_EQ(0, GS_SEND(self->ch, uint64_t, 102));
	ASSERT_EQ(0, op_join(&r1));
	ASSERT_EQ(0, op_join(&r2));
	EXPECT_EQ(1, r1.ret);
	EXPECT_EQ(101, r1.val);
	EXPECT_EQ(1, r2.ret);
	EXPECT_EQ(102, r2.val);
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
	EXPECT_COUNTS(self->ch, 2, 2);
}

TEST_F(chan, send_to_full_blocks)
{
	uint32_t cap = self->cap;
	uint64_t v = 999, t0;
	struct op s1, s2;

	ASSERT_EQ(0, fill(self->ch, cap, 0));
	EXPECT_EQ((int)cap, gs_chan_len(self->ch));
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(self->ch, &v));
	t0 = mono_ns();
	EXPECT_EQ(-ETIMEDOUT, gs_chan_send_until(self->ch, &v,
						 gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_LE(SHORT_MS, ms_since(t0));
	EXPECT_STATE(self->ch, cap, 0, 0, 0);
	EXPECT_COUNTS(self->ch, cap, 0);

	ASSERT_EQ(0, op_start(&s1, OP_SEND, self->ch, 1000));
	ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
	ASSERT_EQ(0, op_start(&s2, OP_SEND, self->ch, 1001));
	ASSERT_EQ(0, wait_waiters(self->ch, 2, 0));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(op_done(&s1));
	EXPECT_FALSE(op_done(&s2));
	EXPECT_EQ(-EAGAIN, gs_chan_try_send(self->ch, &v));
	EXPECT_STATE(self->ch, cap, 2, 0, 0);
	EXPECT_COUNTS(self->ch, cap, 0);

	/*
	 * Each receive lets the first waiting sender in, at the tail: the
	 * buffered values, then the senders' in the order they waited.
	 */
	for (uint32_t i = 0; i < cap + 2; i++) {
		uint64_t want = i < cap ? i : 1000 + (i - cap);

		v = ~0ULL;
		ASSERT_EQ(1, recv_v(self->ch, &v)) TH_LOG("value %u", i);
		EXPECT_EQ(want, v);
		if (i == 0) {
			EXPECT_STATE(self->ch, cap, 1, 0, 0);
		}
	}
	ASSERT_EQ(0, op_join(&s1));
	ASSERT_EQ(0, op_join(&s2));
	EXPECT_EQ(0, s1.ret);
	EXPECT_EQ(0, s2.ret);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
	EXPECT_COUNTS(self->ch, cap + 2, cap + 2);
}

TEST_F(chan, fifo_100_values_sender_and_receiver_threads)
{
	struct seq_args snd, rcv;

	/* Twice, as Go's TestChan does (there with recv and recv2). */
	for (int round = 0; round < 2; round++) {
		memset(&snd, 0, sizeof(snd));
		memset(&rcv, 0, sizeof(rcv));
		snd.ch = rcv.ch = self->ch;
		snd.n = rcv.n = 100;
		snd.first = rcv.first = (uint64_t)round * 1000;
		ASSERT_EQ(0, pthread_create(&rcv.tid, NULL, seq_receiver, &rcv));
		ASSERT_EQ(0, pthread_create(&snd.tid, NULL, seq_sender, &snd));
		ASSERT_EQ(0, join_ms(snd.tid, WAIT_LIMIT_MS));
		ASSERT_EQ(0, join_ms(rcv.tid, WAIT_LIMIT_MS));
		EXPECT_EQ(0, snd.err);
		EXPECT_EQ(0, rcv.err);
		EXPECT_EQ(100, rcv.got) TH_LOG("value %u was %llu", rcv.got,
					       (unsigned long long)rcv.bad);
	}
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
	EXPECT_COUNTS(self->ch, 200, 200);
}

struct daisy {
	gs_chan *ch, *in, *out;
	uint64_t got;
	int err;
	pthread_t tid;
};

/* fifo.go's Chain(): wait for the token, take one value, pass the token. */
static void *daisy_link(void *arg)
{
	struct daisy *d = arg;
	uint64_t v = ~0ULL;
	int r;

	r = gs_chan_recv_until(d->in, NULL, limit(), 0);
	if (r != 1) {
		d->err = r ? r : -EPIPE;
		return NULL;
	}
	r = gs_chan_recv_until(d->ch, &v, limit(), 0);
	if (r != 1) {
		d->err = r ? r : -EPIPE;
		return NULL;
	}
	d->got = v;
	d->err = gs_chan_send_until(d->out, NULL, limit(), 0);
	return NULL;
}

TEST_F(chan, fifo_daisy_chain)
{
	gs_chan *token[DAISY_N + 1];
	struct daisy d[DAISY_N];

	/* The tokens are chan struct{}, unbuffered. */
	for (int i = 0; i <= DAISY_N; i++) {
		ASSERT_EQ(0, gs_chan_make(&token[i], 0, 0));
	}
	for (int i = 0; i < DAISY_N; i++) {
		memset(&d[i], 0, sizeof(d[i]));
		d[i].ch = self->ch;
		d[i].in = token[i];
		d[i].out = token[i + 1];
		d[i].got = ~0ULL;
		ASSERT_EQ(0, pthread_create(&d[i].tid, NULL, daisy_link, &d[i]));
	}
	ASSERT_EQ(0, gs_chan_send_until(token[0], NULL, limit(), 0));
	for (int i = 0; i < DAISY_N; i++) {
		ASSERT_EQ(0, send_u64(self->ch, (uint64_t)i));
	}
	EXPECT_EQ(1, gs_chan_recv_until(token[DAISY_N], NULL, limit(), 0));
	for (int i = 0; i < DAISY_N; i++) {
		ASSERT_EQ(0, join_ms(d[i].tid, WAIT_LIMIT_MS));
		EXPECT_EQ(0, d[i].err) TH_LOG("link %d", i);
		EXPECT_EQ((uint64_t)i, d[i].got) TH_LOG("link %d", i);
	}
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
	for (int i = 0; i <= DAISY_N; i++)
		gs_chan_destroy(token[i]);
}

TEST_F(chan, close_wakes_waiting_receivers)
{
	struct op r[3];
	uint64_t v;

	for (int i = 0; i < 3; i++) {
		op_init(&r[i], OP_RECV, self->ch, 0xdeadbeefULL);
		ASSERT_EQ(0, op_run(&r[i]));
		ASSERT_EQ(0, wait_waiters(self->ch, 0, i + 1));
	}
	sleep_ms(BLOCKED_MS);
	for (int i = 0; i < 3; i++) {
		EXPECT_FALSE(op_done(&r[i]));
	}
	ASSERT_EQ(0, gs_chan_close(self->ch));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, op_join(&r[i]));
		EXPECT_EQ(0, r[i].ret) TH_LOG("receiver %d", i);	/* !ok */
		EXPECT_EQ(0, r[i].val) TH_LOG("receiver %d", i);	/* zero value */
	}
	EXPECT_STATE(self->ch, 0, 0, 0, 1);
	EXPECT_COUNTS(self->ch, 0, 0);
	/* And so on forever, without blocking, whichever call. */
	v = 7;
	EXPECT_EQ(0, gs_chan_try_recv(self->ch, &v));
	EXPECT_EQ(0, v);
	v = 7;
	EXPECT_EQ(0, gs_chan_recv_until(self->ch, &v, 0, 0));
	EXPECT_EQ(0, v);
	v = 7;
	EXPECT_EQ(0, gs_chan_recv(self->ch, &v));
	EXPECT_EQ(0, v);
	EXPECT_STATE(self->ch, 0, 0, 0, 1);
}

TEST_F(chan, close_wakes_waiting_senders)
{
	uint32_t cap = self->cap;
	struct op s[3];
	uint64_t v;

	ASSERT_EQ(0, fill(self->ch, cap, 1));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, op_start(&s[i], OP_SEND, self->ch, 500 + i));
		ASSERT_EQ(0, wait_waiters(self->ch, i + 1, 0));
	}
	sleep_ms(BLOCKED_MS);
	for (int i = 0; i < 3; i++) {
		EXPECT_FALSE(op_done(&s[i]));
	}
	ASSERT_EQ(0, gs_chan_close(self->ch));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, op_join(&s[i]));
		EXPECT_EQ(-EPIPE, s[i].ret) TH_LOG("sender %d", i);
	}
	EXPECT_STATE(self->ch, cap, 0, 0, 1);
	EXPECT_COUNTS(self->ch, cap, 0);
	/* The buffered values are still delivered; the senders' are not. */
	EXPECT_EQ(cap, drain_in_order(self->ch, cap, 1));
	v = 9;
	EXPECT_EQ(0, gs_chan_recv(self->ch, &v));
	EXPECT_EQ(0, v);
	EXPECT_STATE(self->ch, 0, 0, 0, 1);
	EXPECT_COUNTS(self->ch, cap, cap);
}

TEST_F(chan, closed_channel_drains_then_returns_zero_forever)
{
	uint32_t cap = self->cap;
	unsigned int wrong = 0;
	uint64_t v;
	int r;

	ASSERT_EQ(0, fill(self->ch, cap, 1));
	ASSERT_EQ(0, gs_chan_close(self->ch));
	EXPECT_STATE(self->ch, cap, 0, 0, 1);
	for (uint32_t i = 0; i < cap; i++) {
		v = 0;
		if (i % 3 == 0)
			r = gs_chan_recv(self->ch, &v);
		else if (i % 3 == 1)
			r = gs_chan_try_recv(self->ch, &v);
		else
			r = gs_chan_recv_until(self->ch, &v, 0, 0);
		EXPECT_EQ(1, r) TH_LOG("value %u", i);
		EXPECT_EQ(i + 1, v);
	}
	EXPECT_EQ(0, gs_chan_len(self->ch));
	/* Drained: the zero value and !ok, at once, every time. */
	v = 3;
	ASSERT_EQ(0, gs_chan_try_recv(self->ch, &v));
	EXPECT_EQ(0, v);
	for (int i = 0; i < 1000; i++) {
		v = ~0ULL;
		r = gs_chan_recv_until(self->ch, &v, limit(), 0);
		if (r != 0 || v != 0)
			wrong++;
	}
	EXPECT_EQ(0, wrong);
	v = 4;
	EXPECT_EQ(0, gs_chan_recv(self->ch, &v));
	EXPECT_EQ(0, v);
	EXPECT_STATE(self->ch, 0, 0, 0, 1);
	EXPECT_COUNTS(self->ch, cap, cap);
}

TEST_F(chan, send_or_close_on_closed_is_epipe)
{
	uint32_t k = self->cap < 3 ? self->cap : 3;
	uint64_t v = 42;
	gs_chan *dup_ch;
	int fd;

	ASSERT_EQ(0, fill(self->ch, k, 1));
	ASSERT_EQ(0, gs_chan_close(self->ch));
	EXPECT_EQ(-EPIPE, gs_chan_send(self->ch, &v));
	EXPECT_EQ(-EPIPE, gs_chan_try_send(self->ch, &v));
	EXPECT_EQ(-EPIPE, gs_chan_send_until(self->ch, &v, limit(), 0));
	EXPECT_EQ(-EPIPE, gs_chan_send_until(self->ch, &v, 0, 0));
	EXPECT_EQ(-EPIPE, gs_chan_send_until(self->ch, &v, 0, GS_CLOCK_REALTIME));
	EXPECT_EQ(-EPIPE, gs_chan_close(self->ch));
	EXPECT_EQ(-EPIPE, gs_chan_close(self->ch));
	/* Through another fd of the same channel, too. */
	fd = fcntl(gs_chan_fd(self->ch), F_DUPFD_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, gs_chan_from_fd(&dup_ch, fd));
	EXPECT_EQ(-EPIPE, gs_chan_close(dup_ch));
	EXPECT_EQ(-EPIPE, gs_chan_try_send(dup_ch, &v));
	gs_chan_destroy(dup_ch);
	/* Nothing changed. */
	EXPECT_STATE(self->ch, k, 0, 0, 1);
	EXPECT_COUNTS(self->ch, k, 0);
	EXPECT_EQ(k, drain_in_order(self->ch, k, 1));
	v = 5;
	EXPECT_EQ(0, gs_chan_recv(self->ch, &v));
	EXPECT_EQ(0, v);
}

TEST_F(chan, len_cap_status_and_fdinfo)
{
	uint32_t cap = self->cap;
	struct gosync_chan_status st;
	int fd = gs_chan_fd(self->ch);
	struct op w;
	uint64_t v;

	EXPECT_EQ(cap, gs_chan_cap(self->ch));
	EXPECT_EQ(sizeof(uint64_t), gs_chan_elem_size(self->ch));
	EXPECT_EQ(0, gs_chan_len(self->ch));
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(O_RDWR, fcntl(fd, F_GETFL) & O_ACCMODE);

	memset(&st, 0xa5, sizeof(st));
	ASSERT_EQ(0, gs_chan_status(self->ch, &st));
	EXPECT_EQ(sizeof(uint64_t), st.elem_size);
	EXPECT_EQ(cap, st.capacity);
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(0, st.closed);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(0, st.sends);
	EXPECT_EQ(0, st.recvs);
	EXPECT_FDINFO(fd, "gosync-type:\tchan");
	EXPECT_FDINFO(fd, "elem-size:\t8");
	EXPECT_FDINFO(fd, "cap:\t%u", cap);
	EXPECT_FDINFO(fd, "len:\t0");
	EXPECT_FDINFO(fd, "closed:\t0");
	EXPECT_FDINFO(fd, "send-waiters:\t0");
	EXPECT_FDINFO(fd, "recv-waiters:\t0");
	EXPECT_FDINFO(fd, "sends:\t0");
	EXPECT_FDINFO(fd, "recvs:\t0");

	for (uint32_t i = 0; i < cap; i++) {
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, i));
		EXPECT_EQ((int)i + 1, gs_chan_len(self->ch));
	}
	EXPECT_EQ(cap, gs_chan_cap(self->ch));	/* Go: len == cap == chanCap */
	EXPECT_FDINFO(fd, "len:\t%u", cap);
	EXPECT_FDINFO(fd, "sends:\t%u", cap);

	/* A sender waiting on the full channel shows, and counts once served. */
	ASSERT_EQ(0, op_start(&w, OP_SEND, self->ch, 77));
	ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
	EXPECT_FDINFO(fd, "send-waiters:\t1");
	EXPECT_FDINFO(fd, "sends:\t%u", cap);
	ASSERT_EQ(1, recv_v(self->ch, &v));
	EXPECT_EQ(cap ? 0 : 77, v);
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(0, w.ret);
	EXPECT_EQ((int)cap, gs_chan_len(self->ch));
	EXPECT_FDINFO(fd, "send-waiters:\t0");
	EXPECT_FDINFO(fd, "sends:\t%u", cap + 1);
	EXPECT_FDINFO(fd, "recvs:\t1");
	if (cap) {
		EXPECT_EQ(cap - 1, drain_in_order(self->ch, cap - 1, 1));
		EXPECT_EQ(1, recv_v(self->ch, &v));
		EXPECT_EQ(77, v);
	}
	EXPECT_EQ(0, gs_chan_len(self->ch));

	ASSERT_EQ(0, op_start(&w, OP_RECV, self->ch, 0));
	ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
	EXPECT_FDINFO(fd, "recv-waiters:\t1");
	ASSERT_EQ(0, gs_chan_close(self->ch));
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(0, w.ret);
	EXPECT_FDINFO(fd, "closed:\t1");
	EXPECT_FDINFO(fd, "recv-waiters:\t0");
	EXPECT_FDINFO(fd, "len:\t0");
	EXPECT_FDINFO(fd, "recvs:\t%u", cap + 1);
	memset(&st, 0xa5, sizeof(st));
	ASSERT_EQ(0, gs_chan_status(self->ch, &st));
	EXPECT_EQ(1, st.closed);
	EXPECT_EQ(cap + 1, st.sends);
	EXPECT_EQ(cap + 1, st.recvs);
	EXPECT_EQ(cap, st.capacity);
	EXPECT_EQ(cap, gs_chan_cap(self->ch));
	/* A bad status pointer is -EFAULT. */
	EXPECT_EQ(-EFAULT, gs_chan_status(self->ch, NULL));
}

struct go_receiver {
	gs_chan *ch;
	uint32_t count[GO_L];
	uint32_t out_of_range;
	int err;
	pthread_t tid;
};

/* Go's receiver goroutine: L values, counted by value. */
static void *go_recv_main(void *arg)
{
	struct go_receiver *a = arg;

	for (int i = 0; i < GO_L; i++) {
		uint64_t v = ~0ULL;
		int r = gs_chan_recv_until(a->ch, &v, limit(), 0);

		if (r != 1) {
			a->err = r < 0 ? r : -ENODATA;
			break;
		}
		if (v < GO_L)
			a->count[v]++;
		else
			a->out_of_range++;
	}
	return NULL;
}

TEST_F(chan, go_four_senders_four_receivers)
{
	struct seq_args snd[GO_P];
	struct go_receiver *rcv;
	unsigned int wrong = 0;

	rcv = calloc(GO_P, sizeof(*rcv));
	ASSERT_NE(NULL, rcv);
	/* As in Go: each sender sends 0..L-1, each receiver takes L values. */
	for (int p = 0; p < GO_P; p++) {
		rcv[p].ch = self->ch;
		ASSERT_EQ(0, pthread_create(&rcv[p].tid, NULL, go_recv_main, &rcv[p]));
	}
	for (int p = 0; p < GO_P; p++) {
		memset(&snd[p], 0, sizeof(snd[p]));
		snd[p].ch = self->ch;
		snd[p].n = GO_L;
		ASSERT_EQ(0, pthread_create(&snd[p].tid, NULL, seq_sender, &snd[p]));
	}
	for (int p = 0; p < GO_P; p++) {
		ASSERT_EQ(0, join_ms(snd[p].tid, WAIT_LIMIT_MS));
		ASSERT_EQ(0, join_ms(rcv[p].tid, WAIT_LIMIT_MS));
		EXPECT_EQ(0, snd[p].err);
		EXPECT_EQ(0, rcv[p].err);
		EXPECT_EQ(0, rcv[p].out_of_range);
	}
	/* Every value came exactly P times. */
	for (int i = 0; i < GO_L; i++) {
		uint32_t n = 0;

		for (int p = 0; p < GO_P; p++)
			n += rcv[p].count[i];
		if (n != GO_P)
			wrong++;
	}
	EXPECT_EQ(0, wrong);
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
	EXPECT_COUNTS(self->ch, GO_P * GO_L, GO_P * GO_L);
	free(rcv);
}

TEST_F(chan, poll_readiness)
{
	uint32_t cap = self->cap;
	int fd = gs_chan_fd(self->ch);
	struct op s, r;
	uint64_t v;

	/* Empty: writable only if there is room. */
	EXPECT_EQ(cap ? P_OUT : 0, poll_events(fd));
	if (cap) {
		ASSERT_EQ(0, fill(self->ch, 1, 1));
		EXPECT_EQ(cap > 1 ? P_IN | P_OUT : P_IN, poll_events(fd));
		ASSERT_EQ(0, fill(self->ch, cap - 1, 2));
		/* Full: readable, not writable. */
		EXPECT_EQ(P_IN, poll_events(fd));
	}
	/* A blocked sender: readable (even unbuffered), still not writable. */
	ASSERT_EQ(0, op_start(&s, OP_SEND, self->ch, 77));
	ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
	EXPECT_EQ(P_IN, poll_events(fd));
	EXPECT_EQ(cap, drain_in_order(self->ch, cap, 1));
	ASSERT_EQ(1, recv_v(self->ch, &v));
	EXPECT_EQ(77, v);
	ASSERT_EQ(0, op_join(&s));
	EXPECT_EQ(0, s.ret);
	EXPECT_EQ(cap ? P_OUT : 0, poll_events(fd));

	/* A blocked receiver: writable, even unbuffered. */
	ASSERT_EQ(0, op_start(&r, OP_RECV, self->ch, 0));
	ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
	EXPECT_EQ(P_OUT, poll_events(fd));
	EXPECT_EQ(0, GS_SEND(self->ch, uint64_t, 88));
	ASSERT_EQ(0, op_join(&r));
	EXPECT_EQ(1, r.ret);
	EXPECT_EQ(88, r.val);
	EXPECT_EQ(cap ? P_OUT : 0, poll_events(fd));

	/* Closed: readable and hung up; writable with an error. */
	if (cap) {
		ASSERT_EQ(0, fill(self->ch, 1, 5));
	}
	ASSERT_EQ(0, gs_chan_close(self->ch));
	EXPECT_EQ(P_CLOSED, poll_events(fd));
	if (cap) {
		EXPECT_EQ(1, gs_chan_try_recv(self->ch, &v));
		EXPECT_EQ(5, v);
		EXPECT_EQ(P_CLOSED, poll_events(fd));
	}
}

struct ep_args {
	int epfd;
	int n;
	uint32_t events;
	uint64_t data;
	int err;
	atomic_bool done;
	pthread_t tid;
};

static void *epoll_waiter(void *arg)
{
	struct ep_args *a = arg;
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	a->n = epoll_wait(a->epfd, &ev, 1, WAIT_LIMIT_MS);
	if (a->n < 0)
		a->err = -errno;
	a->events = ev.events;
	a->data = ev.data.u64;
	atomic_store(&a->done, true);
	return NULL;
}

static int epoll_waiter_start(struct ep_args *a, int epfd)
{
	memset(a, 0, sizeof(*a));
	a->epfd = epfd;
	atomic_init(&a->done, false);
	return pthread_create(&a->tid, NULL, epoll_waiter, a);
}

TEST_F(chan, epoll_wakes_waiters)
{
	uint32_t cap = self->cap;
	int fd = gs_chan_fd(self->ch);
	struct epoll_event ev;
	struct ep_args ep;
	struct op w;
	uint64_t v;
	int epfd;

	epfd = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, epfd);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = 0x1234;
	ASSERT_EQ(0, epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev));
	EXPECT_EQ(0, epoll_wait(epfd, &ev, 1, 0));

	/* Readable: a value sent, or (unbuffered) a sender that waits. */
	ASSERT_EQ(0, epoll_waiter_start(&ep, epfd));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&ep.done));
	if (cap) {
		ASSERT_EQ(0, GS_SEND(self->ch, uint64_t, 5));
	} else {
		ASSERT_EQ(0, op_start(&w, OP_SEND, self->ch, 5));
	}
	ASSERT_EQ(0, join_ms(ep.tid, WAIT_LIMIT_MS));
	EXPECT_EQ(1, ep.n);
	EXPECT_EQ(EPOLLIN, ep.events);
	EXPECT_EQ(0x1234, ep.data);
	ASSERT_EQ(1, recv_v(self->ch, &v));
	EXPECT_EQ(5, v);
	if (!cap) {
		ASSERT_EQ(0, op_join(&w));
		EXPECT_EQ(0, w.ret);
	}

	/* Writable: a receive frees a slot, or (unbuffered) a receiver waits. */
	ev.events = EPOLLOUT;
	ASSERT_EQ(0, epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev));
	ASSERT_EQ(0, fill(self->ch, cap, 1));
	EXPECT_EQ(0, epoll_wait(epfd, &ev, 1, 0));
	ASSERT_EQ(0, epoll_waiter_start(&ep, epfd));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&ep.done));
	if (cap) {
		ASSERT_EQ(1, recv_v(self->ch, &v));
		EXPECT_EQ(1, v);
	} else {
		ASSERT_EQ(0, op_start(&w, OP_RECV, self->ch, 0));
	}
	ASSERT_EQ(0, join_ms(ep.tid, WAIT_LIMIT_MS));
	EXPECT_EQ(1, ep.n);
	EXPECT_EQ(EPOLLOUT, ep.events);
	if (cap) {
		EXPECT_EQ(cap - 1, drain_in_order(self->ch, cap - 1, 2));
	} else {
		EXPECT_EQ(0, GS_SEND(self->ch, uint64_t, 6));
		ASSERT_EQ(0, op_join(&w));
		EXPECT_EQ(1, w.ret);
		EXPECT_EQ(6, w.val);
	}

	/* Close: readable and hung up. */
	ev.events = EPOLLIN;
	ASSERT_EQ(0, epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev));
	EXPECT_EQ(0, epoll_wait(epfd, &ev, 1, 0));
	ASSERT_EQ(0, epoll_waiter_start(&ep, epfd));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&ep.done));
	ASSERT_EQ(0, gs_chan_close(self->ch));
	ASSERT_EQ(0, join_ms(ep.tid, WAIT_LIMIT_MS));
	EXPECT_EQ(1, ep.n);
	/* epoll always reports EPOLLERR and EPOLLHUP. */
	EXPECT_EQ(EPOLLIN | EPOLLHUP | EPOLLERR, ep.events);
	close(epfd);
}

TEST_F(chan, fd_closed_while_waited_on)
{
	uint32_t cap = self->cap;
	struct op w;
	uint64_t v;
	int x;

	/* A receiver blocked on fd X; X is closed; a send on the dup serves it. */
	x = fcntl(gs_chan_fd(self->ch), F_DUPFD_CLOEXEC, 0);
	ASSERT_LE(0, x);
	op_init(&w, OP_RAW_RECV, NULL, 0);
	w.fd = x;
	ASSERT_EQ(0, op_run(&w));
	ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
	ASSERT_EQ(0, close(x));
	EXPECT_EQ(-1, fcntl(x, F_GETFD));
	sleep_ms(3 * BLOCKED_MS);
	EXPECT_FALSE(op_done(&w));
	EXPECT_STATE(self->ch, 0, 0, 1, 0);
	EXPECT_EQ(0, GS_SEND(self->ch, uint64_t, 31337));
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(1, w.ret);
	EXPECT_EQ(31337, w.val);
	EXPECT_STATE(self->ch, 0, 0, 0, 0);

	/* The same for a sender blocked on a full channel. */
	ASSERT_EQ(0, fill(self->ch, cap, 1));
	x = fcntl(gs_chan_fd(self->ch), F_DUPFD_CLOEXEC, 0);
	ASSERT_LE(0, x);
	op_init(&w, OP_RAW_SEND, NULL, 4242);
	w.fd = x;
	ASSERT_EQ(0, op_run(&w));
	ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
	ASSERT_EQ(0, close(x));
	sleep_ms(3 * BLOCKED_MS);
	EXPECT_FALSE(op_done(&w));
	EXPECT_STATE(self->ch, cap, 1, 0, 0);
	EXPECT_EQ(cap, drain_in_order(self->ch, cap, 1));
	ASSERT_EQ(1, recv_v(self->ch, &v));
	EXPECT_EQ(4242, v);
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(0, w.ret);
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
	EXPECT_COUNTS(self->ch, cap + 2, cap + 2);
}

TEST_F(chan, signal_without_sa_restart_is_eintr)
{
	uint32_t cap = self->cap;
	struct op w;
	uint64_t v;

	ASSERT_EQ(0, install_handler(SIGUSR1, false));

	/* A blocked receiver: -EINTR, and it took nothing. */
	ASSERT_EQ(0, op_start(&w, OP_RECV, self->ch, 0));
	ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
	ASSERT_EQ(0, pthread_kill(w.tid, SIGUSR1));
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(-EINTR, w.ret);
	EXPECT_EQ(1, atomic_load(&sig_count));
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
	if (cap) {
		/* A value sent now stays for the next receiver. */
		EXPECT_EQ(0, GS_SEND(self->ch, uint64_t, 5));
		EXPECT_STATE(self->ch, 1, 0, 0, 0);
		EXPECT_EQ(1, gs_chan_try_recv(self->ch, &v));
		EXPECT_EQ(5, v);
	} else {
		/* Nobody is left to take a value. */
		v = 5;
		EXPECT_EQ(-EAGAIN, gs_chan_try_send(self->ch, &v));
	}
	EXPECT_COUNTS(self->ch, cap ? 1 : 0, cap ? 1 : 0);

	/* A sender blocked on a full channel: -EINTR, and it sent nothing. */
	ASSERT_EQ(0, fill(self->ch, cap, 1));
	ASSERT_EQ(0, op_start(&w, OP_SEND, self->ch, 99));
	ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
	ASSERT_EQ(0, pthread_kill(w.tid, SIGUSR1));
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(-EINTR, w.ret);
	EXPECT_EQ(2, atomic_load(&sig_count));
	EXPECT_STATE(self->ch, cap, 0, 0, 0);
	EXPECT_EQ(cap, drain_in_order(self->ch, cap, 1));
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
	EXPECT_COUNTS(self->ch, cap ? 1 + cap : 0, cap ? 1 + cap : 0);
}

TEST_F(chan, signal_with_sa_restart_keeps_waiting)
{
	uint32_t cap = self->cap;
	struct op w;
	uint64_t v;

	ASSERT_EQ(0, install_handler(SIGUSR2, true));

	ASSERT_EQ(0, op_start(&w, OP_RECV, self->ch, 0));
	ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
	for (int k = 1; k <= 3; k++) {
		ASSERT_EQ(0, pthread_kill(w.tid, SIGUSR2));
		ASSERT_EQ(0, wait_signals(k));
		/* The handler ran and the receive went back to waiting. */
		ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
	}
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(op_done(&w));
	EXPECT_EQ(0, GS_SEND(self->ch, uint64_t, 99));
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(1, w.ret);
	EXPECT_EQ(99, w.val);
	EXPECT_STATE(self->ch, 0, 0, 0, 0);

	/* A sender on a full channel, restarted, still sends exactly once. */
	ASSERT_EQ(0, fill(self->ch, cap, 1));
	ASSERT_EQ(0, op_start(&w, OP_SEND, self->ch, 1234));
	ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
	for (int k = 4; k <= 5; k++) {
		ASSERT_EQ(0, pthread_kill(w.tid, SIGUSR2));
		ASSERT_EQ(0, wait_signals(k));
		ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
	}
	EXPECT_FALSE(op_done(&w));
	EXPECT_EQ(cap, drain_in_order(self->ch, cap, 1));
	ASSERT_EQ(1, recv_v(self->ch, &v));
	EXPECT_EQ(1234, v);
	ASSERT_EQ(0, op_join(&w));
	EXPECT_EQ(0, w.ret);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, &v));
	EXPECT_STATE(self->ch, 0, 0, 0, 0);
	EXPECT_COUNTS(self->ch, cap + 2, cap + 2);
}

TEST_F(chan, past_deadline_succeeds_only_without_waiting)
{
	static const unsigned int clocks[2] = { 0, GS_CLOCK_REALTIME };
	uint32_t cap = self->cap;
	struct op w;
	uint64_t v, t0;

	for (int c = 0; c < 2; c++) {
		clockid_t clk = clocks[c] ? CLOCK_REALTIME : CLOCK_MONOTONIC;

		for (int which = 0; which < 2; which++) {
			/* The epoch (or boot), and a millisecond ago. */
			uint64_t past = which ? clock_ns(clk) - NS_PER_MS : 0;
			unsigned int fl = clocks[c];

			t0 = mono_ns();
			EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(self->ch, &v, past, fl));
			EXPECT_GT(AT_ONCE_MS, ms_since(t0));
			EXPECT_STATE(self->ch, 0, 0, 0, 0);
			if (cap) {
				/* Room: sent without waiting. */
				EXPECT_EQ(0, send_u64_until(self->ch, 8, past, fl));
				v = 0;
				EXPECT_EQ(1, gs_chan_recv_until(self->ch, &v, past, fl));
				EXPECT_EQ(8, v);
				ASSERT_EQ(0, fill(self->ch, cap, 1));
				t0 = mono_ns();
				EXPECT_EQ(-ETIMEDOUT, send_u64_until(self->ch, 9, past, fl));
				EXPECT_GT(AT_ONCE_MS, ms_since(t0));
				EXPECT_STATE(self->ch, cap, 0, 0, 0);
				EXPECT_EQ(cap, drain_in_order(self->ch, cap, 1));
			} else {
				t0 = mono_ns();
				EXPECT_EQ(-ETIMEDOUT, send_u64_until(self->ch, 9, past, fl));
				EXPECT_GT(AT_ONCE_MS, ms_since(t0));
				EXPECT_STATE(self->ch, 0, 0, 0, 0);
			}
			/* A waiting receiver takes a send with a past deadline. */
			ASSERT_EQ(0, op_start(&w, OP_RECV, self->ch, 0));
			ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
			EXPECT_EQ(0, send_u64_until(self->ch, 10, past, fl));
			ASSERT_EQ(0, op_join(&w));
			EXPECT_EQ(1, w.ret);
			EXPECT_EQ(10, w.val);
			/* A waiting sender serves a receive with a past deadline. */
			ASSERT_EQ(0, fill(self->ch, cap, 1));
			ASSERT_EQ(0, op_start(&w, OP_SEND, self->ch, 11));
			ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
			v = 0;
			EXPECT_EQ(1, gs_chan_recv_until(self->ch, &v, past, fl));
			EXPECT_EQ(cap ? 1 : 11, v);
			ASSERT_EQ(0, op_join(&w));
			EXPECT_EQ(0, w.ret);
			if (cap) {
				EXPECT_EQ(cap - 1, drain_in_order(self->ch, cap - 1, 2));
				EXPECT_EQ(1, gs_chan_recv_until(self->ch, &v, past, fl));
				EXPECT_EQ(11, v);
			}
			EXPECT_STATE(self->ch, 0, 0, 0, 0);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Element sizes, Go's zerosize.go included                            */

FIXTURE(elem) {
	gs_chan *ch;
};

FIXTURE_VARIANT(elem) {
	size_t size;
	uint32_t cap;
};

FIXTURE_VARIANT_ADD(elem, size0_unbuffered) { .size = 0, .cap = 0 };
FIXTURE_VARIANT_ADD(elem, size0_buffered) { .size = 0, .cap = 3 };
FIXTURE_VARIANT_ADD(elem, size1_unbuffered) { .size = 1, .cap = 0 };
FIXTURE_VARIANT_ADD(elem, size1_buffered) { .size = 1, .cap = 3 };
FIXTURE_VARIANT_ADD(elem, size8_unbuffered) { .size = 8, .cap = 0 };
FIXTURE_VARIANT_ADD(elem, size8_buffered) { .size = 8, .cap = 3 };
FIXTURE_VARIANT_ADD(elem, size4096_unbuffered) { .size = 4096, .cap = 0 };
FIXTURE_VARIANT_ADD(elem, size4096_buffered) { .size = 4096, .cap = 3 };
FIXTURE_VARIANT_ADD(elem, size65536_unbuffered) { .size = GOSYNC_CHAN_ELEM_MAX, .cap = 0 };
FIXTURE_VARIANT_ADD(elem, size65536_buffered) { .size = GOSYNC_CHAN_ELEM_MAX, .cap = 3 };

FIXTURE_SETUP(elem)
{
	ASSERT_EQ(0, gs_chan_make(&self->ch, variant->size, variant->cap));
}

FIXTURE_TEARDOWN(elem)
{
	gs_chan_destroy(self->ch);
}

struct bytes_sender {
	gs_chan *ch;
	const unsigned char *vals;	/* n values of size bytes */
	size_t size;
	int n;
	int err;
	pthread_t tid;
};

static void *bytes_sender_main(void *arg)
{
	struct bytes_sender *a = arg;

	for (int i = 0; i < a->n; i++) {
		int err = gs_chan_send_until(a->ch, a->size ? a->vals + i * a->size : NULL,
					     limit(), 0);

		if (err) {
			a->err = err;
			break;
		}
	}
	return NULL;
}

TEST_F(elem, values_round_trip_byte_exact)
{
	size_t size = variant->size;
	uint32_t cap = variant->cap;
	unsigned char *outbuf, *inbuf, *out, *in;
	struct bytes_sender snd;
	unsigned int wrong = 0;
	int sent = 0, got = 0;

	EXPECT_EQ(size, gs_chan_elem_size(self->ch));
	EXPECT_FDINFO(gs_chan_fd(self->ch), "elem-size:\t%zu", size);
	/* Odd addresses: values straddle pages in user memory. */
	outbuf = malloc(size * ELEM_VALUES + 1);
	inbuf = malloc(size + 1);
	ASSERT_NE(NULL, outbuf);
	ASSERT_NE(NULL, inbuf);
	out = outbuf + 1;
	in = inbuf + 1;
	for (int i = 0; i < ELEM_VALUES; i++)
		pattern(out + i * size, size, (unsigned int)i);

	/* Through a sender thread: waits on a full or unbuffered channel. */
	memset(&snd, 0, sizeof(snd));
	snd.ch = self->ch;
	snd.vals = out;
	snd.size = size;
	snd.n = ELEM_VALUES;
	ASSERT_EQ(0, pthread_create(&snd.tid, NULL, bytes_sender_main, &snd));
	for (int i = 0; i < ELEM_VALUES; i++) {
		memset(in, 0xa5, size);
		ASSERT_EQ(1, recv_v(self->ch, size ? in : NULL)) TH_LOG("value %d", i);
		if (memcmp(in, out + i * size, size))
			wrong++;
	}
	ASSERT_EQ(0, join_ms(snd.tid, WAIT_LIMIT_MS));
	EXPECT_EQ(0, snd.err);
	EXPECT_EQ(0, wrong);

	/* Through the kernel's ring, kept full so that it wraps around. */
	if (cap) {
		while (got < 4 * (int)cap) {
			while (sent - got < (int)cap) {
				ASSERT_EQ(0, gs_chan_try_send(self->ch,
					  size ? out + (sent % ELEM_VALUES) * size : NULL));
				sent++;
			}
			EXPECT_EQ((int)cap, gs_chan_len(self->ch));
			memset(in, 0xa5, size);
			ASSERT_EQ(1, gs_chan_try_recv(self->ch, size ? in : NULL));
			if (memcmp(in, out + (got % ELEM_VALUES) * size, size))
				wrong++;
			got++;
		}
		while (got < sent) {
			memset(in, 0xa5, size);
			ASSERT_EQ(1, gs_chan_try_recv(self->ch, size ? in : NULL));
			if (memcmp(in, out + (got % ELEM_VALUES) * size, size))
				wrong++;
			got++;
		}
		EXPECT_EQ(0, wrong);
	}
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, size ? in : NULL));
	EXPECT_COUNTS(self->ch, ELEM_VALUES + sent, ELEM_VALUES + got);

	/* Closed: the zero value, every byte of it. */
	if (cap) {
		ASSERT_EQ(0, gs_chan_try_send(self->ch, size ? out : NULL));
	}
	ASSERT_EQ(0, gs_chan_close(self->ch));
	if (cap) {
		memset(in, 0xa5, size);
		EXPECT_EQ(1, gs_chan_recv(self->ch, size ? in : NULL));
		EXPECT_EQ(0, memcmp(in, out, size));
	}
	memset(in, 0xa5, size);
	EXPECT_EQ(0, gs_chan_recv(self->ch, size ? in : NULL));
	EXPECT_TRUE(all_bytes(in, 0, size));
	memset(in, 0xa5, size);
	EXPECT_EQ(0, gs_chan_try_recv(self->ch, size ? in : NULL));
	EXPECT_TRUE(all_bytes(in, 0, size));
	free(outbuf);
	free(inbuf);
}

struct closer {
	gs_chan *ch;
	atomic_bool go;
	int err;
	pthread_t tid;
};

/* Once told to, closes the channel as soon as a receiver waits on it. */
static void *closer_main(void *arg)
{
	struct closer *c = arg;
	uint64_t t0 = mono_ns();

	while (!atomic_load(&c->go)) {
		if (ms_since(t0) > WAIT_LIMIT_MS) {
			c->err = -ETIMEDOUT;
			return NULL;
		}
		usleep(500);
	}
	c->err = wait_waiters(c->ch, 0, 1);
	if (!c->err)
		c->err = gs_chan_close(c->ch);
	return NULL;
}

TEST_F(elem, close_zeroes_every_byte_of_a_waiting_receiver)
{
	size_t size = variant->size;
	uint32_t cap = variant->cap;
	unsigned char *out, *in;
	struct closer c;
	struct op s;

	out = malloc(size + 1);
	in = malloc(size + 1);
	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	memset(&c, 0, sizeof(c));
	c.ch = self->ch;
	atomic_init(&c.go, false);
	ASSERT_EQ(0, pthread_create(&c.tid, NULL, closer_main, &c));
	/*
	 * This thread first receives other values, so that the kernel
	 * buffers its receives use (on its kernel stack, or allocated) hold
	 * other bytes than zeroes; then it waits on the empty channel until
	 * the other thread closes it.
	 */
	pattern(out, size, 77);
	for (int i = 0; i < 3; i++) {
		if (cap) {
			ASSERT_EQ(0, gs_chan_try_send(self->ch, size ? out : NULL));
		} else {
			op_init(&s, OP_SEND, self->ch, 0);
			s.buf = size ? out : NULL;
			ASSERT_EQ(0, op_run(&s));
		}
		memset(in, 0, size);
		ASSERT_EQ(1, recv_v(self->ch, size ? in : NULL));
		EXPECT_EQ(0, memcmp(in, out, size));
		if (!cap) {
			ASSERT_EQ(0, op_join(&s));
			EXPECT_EQ(0, s.ret);
		}
	}
	atomic_store(&c.go, true);
	memset(in, 0xa5, size);
	EXPECT_EQ(0, recv_v(self->ch, size ? in : NULL));
	EXPECT_TRUE(all_bytes(in, 0, size));
	ASSERT_EQ(0, join_ms(c.tid, WAIT_LIMIT_MS));
	EXPECT_EQ(0, c.err);
	EXPECT_STATE(self->ch, 0, 0, 0, 1);
	EXPECT_COUNTS(self->ch, 3, 3);
	free(out);
	free(in);
}

/* Memory that is not there, or not writable, for values of @size bytes. */
struct bad_mem {
	void *none;		/* PROT_NONE */
	void *ro;		/* PROT_READ, all zero */
	void *straddle;		/* the last byte beyond the end of a mapping */
	void *map;
	size_t len, maplen;
};

static int bad_mem_map(struct bad_mem *b, size_t size)
{
	memset(b, 0, sizeof(*b));
	b->len = (size + 4095) & ~(size_t)4095;
	b->maplen = b->len + 4096;
	b->none = mmap(NULL, b->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b->ro = mmap(NULL, b->len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b->map = mmap(NULL, b->maplen, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->none == MAP_FAILED || b->ro == MAP_FAILED || b->map == MAP_FAILED)
		return -ENOMEM;
	if (munmap((char *)b->map + b->len, 4096))
		return -errno;
	b->straddle = (char *)b->map + b->len - size + 1;
	return 0;
}

static void bad_mem_unmap(struct bad_mem *b)
{
	munmap(b->none, b->len);
	munmap(b->ro, b->len);
	munmap(b->map, b->len);
}

/* One send or receive ioctl, bypassing the library's fast path. */
static int raw_xfer(gs_chan *ch, bool send, void *value, uint32_t flags,
		    uint64_t deadline)
{
	struct gosync_chan_xfer arg = {
		.value = (uintptr_t)value, .deadline = deadline, .flags = flags,
	};
	int ret = ioctl(gs_chan_fd(ch), send ? GOSYNC_IOC_CHAN_SEND :
					       GOSYNC_IOC_CHAN_RECV, &arg);

	return ret < 0 ? -errno : ret;
}

TEST_F(elem, bad_value_pointers_are_efault)
{
	size_t size = variant->size;
	uint32_t cap = variant->cap;
	unsigned char *out, *in;
	struct bad_mem b;
	struct op w;

	if (!size) {
		/* chan struct{}: NULL is a fine value pointer everywhere. */
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, NULL));
		EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(self->ch, NULL, 0, 0));
		if (cap) {
			EXPECT_EQ(0, gs_chan_try_send(self->ch, NULL));
			EXPECT_EQ(0, gs_chan_send(self->ch, NULL));
			EXPECT_EQ(2, gs_chan_len(self->ch));
			EXPECT_EQ(1, gs_chan_try_recv(self->ch, NULL));
			EXPECT_EQ(1, gs_chan_recv(self->ch, NULL));
		} else {
			EXPECT_EQ(-EAGAIN, gs_chan_try_send(self->ch, NULL));
		}
		op_init(&w, OP_RECV, self->ch, 0);
		w.buf = NULL;
		ASSERT_EQ(0, op_run(&w));
		ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
		EXPECT_EQ(0, gs_chan_send(self->ch, NULL));
		ASSERT_EQ(0, op_join(&w));
		EXPECT_EQ(1, w.ret);
		op_init(&w, OP_SEND, self->ch, 0);
		w.buf = NULL;
		for (uint32_t i = 0; i < cap; i++) {
			ASSERT_EQ(0, gs_chan_try_send(self->ch, NULL));
		}
		ASSERT_EQ(0, op_run(&w));
		ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
		for (uint32_t i = 0; i <= cap; i++) {
			EXPECT_EQ(1, recv_v(self->ch, NULL));
		}
		ASSERT_EQ(0, op_join(&w));
		EXPECT_EQ(0, w.ret);
		EXPECT_STATE(self->ch, 0, 0, 0, 0);
		EXPECT_COUNTS(self->ch, cap ? cap + 4 : 2, cap ? cap + 4 : 2);
		EXPECT_EQ(0, gs_chan_close(self->ch));
		EXPECT_EQ(0, gs_chan_recv(self->ch, NULL));
		return;
	}

	/*
	 * Bad pointers are the ioctls' business (-EFAULT): the library's
	 * fast path copies with memcpy(), as any C function would.
	 */
	ASSERT_EQ(0, bad_mem_map(&b, size));
	out = malloc(size);
	in = malloc(size);
	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	pattern(out, size, 42);
	{
		void *src[] = { NULL, b.none, b.straddle };
		/* (NULL is no bad destination: it discards; see recv_into_null_*) */
		void *dst[] = { b.none, b.ro, b.straddle };

		/* Sends from bad memory fail before anything happens. */
		for (size_t i = 0; i < ARRAY_SIZE(src); i++) {
			EXPECT_EQ(-EFAULT, raw_xfer(self->ch, true, src[i], GOSYNC_CHAN_TRY, 0)) TH_LOG("src %zu", i);
			EXPECT_EQ(-EFAULT, raw_xfer(self->ch, true, src[i], 0, limit()));
		}
		EXPECT_STATE(self->ch, 0, 0, 0, 0);
		EXPECT_COUNTS(self->ch, 0, 0);
		/* ... and leave a waiting receiver waiting. */
		op_init(&w, OP_RECV, self->ch, 0);
		w.buf = in;
		memset(in, 0xa5, size);
		ASSERT_EQ(0, op_run(&w));
		ASSERT_EQ(0, wait_waiters(self->ch, 0, 1));
		for (size_t i = 0; i < ARRAY_SIZE(src); i++) {
			EXPECT_EQ(-EFAULT, raw_xfer(self->ch, true, src[i], 0, GS_FOREVER)) TH_LOG("src %zu", i);
		}
		EXPECT_STATE(self->ch, 0, 0, 1, 0);
		EXPECT_FALSE(op_done(&w));
		EXPECT_EQ(0, gs_chan_send(self->ch, out));
		ASSERT_EQ(0, op_join(&w));
		EXPECT_EQ(1, w.ret);
		EXPECT_EQ(0, memcmp(in, out, size));

		/* Receives into bad memory fail at once, even on an empty channel. */
		for (size_t i = 0; i < ARRAY_SIZE(dst); i++) {
			EXPECT_EQ(-EFAULT, raw_xfer(self->ch, false, dst[i], GOSYNC_CHAN_TRY, 0)) TH_LOG("dst %zu", i);
			EXPECT_EQ(-EFAULT, raw_xfer(self->ch, false, dst[i], 0, limit()));
		}
		EXPECT_STATE(self->ch, 0, 0, 0, 0);
		/* With a value there (buffered, or a sender waiting): not consumed. */
		if (cap) {
			ASSERT_EQ(0, gs_chan_try_send(self->ch, out));
		} else {
			op_init(&w, OP_SEND, self->ch, 0);
			w.buf = out;
			ASSERT_EQ(0, op_run(&w));
			ASSERT_EQ(0, wait_waiters(self->ch, 1, 0));
		}
		for (size_t i = 0; i < ARRAY_SIZE(dst); i++) {
			EXPECT_EQ(-EFAULT, raw_xfer(self->ch, false, dst[i], GOSYNC_CHAN_TRY, 0)) TH_LOG("dst %zu", i);
			EXPECT_EQ(-EFAULT, raw_xfer(self->ch, false, dst[i], 0, limit()));
		}
		EXPECT_STATE(self->ch, cap ? 1 : 0, cap ? 0 : 1, 0, 0);
		EXPECT_COUNTS(self->ch, cap ? 2 : 1, 1);
		memset(in, 0xa5, size);
		EXPECT_EQ(1, recv_v(self->ch, in));
		EXPECT_EQ(0, memcmp(in, out, size));
		if (!cap) {
			ASSERT_EQ(0, op_join(&w));
			EXPECT_EQ(0, w.ret);
		}
		EXPECT_COUNTS(self->ch, 2, 2);
		/* Closed: still -EFAULT for a bad destination, 0 for a good one. */
		ASSERT_EQ(0, gs_chan_close(self->ch));
		for (size_t i = 0; i < ARRAY_SIZE(dst); i++) {
			EXPECT_EQ(-EFAULT, raw_xfer(self->ch, false, dst[i], 0, GS_FOREVER)) TH_LOG("dst %zu", i);
		}
		EXPECT_EQ(0, gs_chan_recv(self->ch, in));
		EXPECT_TRUE(all_bytes(in, 0, size));
	}
	free(out);
	free(in);
	bad_mem_unmap(&b);
}

/* ------------------------------------------------------------------ */
/* Many senders and receivers                                           */

FIXTURE(mpmc) {
	gs_chan *ch;
};

FIXTURE_VARIANT(mpmc) {
	uint32_t cap;
	uint32_t n;	/* values in total */
};

FIXTURE_VARIANT_ADD(mpmc, unbuffered) { .cap = 0, .n = MPMC_N_UNBUFFERED };
FIXTURE_VARIANT_ADD(mpmc, cap10) { .cap = 10, .n = MPMC_N_BUFFERED };

FIXTURE_SETUP(mpmc)
{
	ASSERT_EQ(0, gs_chan_make(&self->ch, sizeof(uint64_t), variant->cap));
}

FIXTURE_TEARDOWN(mpmc)
{
	gs_chan_destroy(self->ch);
}

struct mpmc_sender {
	gs_chan *ch;
	uint32_t id, per;
	int err;
	pthread_t tid;
};

struct mpmc_receiver {
	gs_chan *ch;
	atomic_uint *counts;
	uint32_t n, per;
	uint64_t sum;
	uint32_t got, out_of_range, order_errors;
	int err;
	pthread_t tid;
};

/* Sends id * per, id * per + 1, ... (per values). */
static void *mpmc_send_main(void *arg)
{
	struct mpmc_sender *s = arg;

	for (uint32_t q = 0; q < s->per; q++) {
		uint64_t v = (uint64_t)s->id * s->per + q;
		int err = gs_chan_send_until(s->ch, &v, limit(), 0);

		if (err) {
			s->err = err;
			break;
		}
	}
	return NULL;
}

/* Receives until closed; each sender's values must come in its order. */
static void *mpmc_recv_main(void *arg)
{
	struct mpmc_receiver *r = arg;
	int64_t last[MPMC_SENDERS];

	for (int s = 0; s < MPMC_SENDERS; s++)
		last[s] = -1;
	for (;;) {
		uint64_t v = ~0ULL;
		int ret = gs_chan_recv_until(r->ch, &v, limit(), 0);

		if (ret == 0)
			break;
		if (ret < 0) {
			r->err = ret;
			break;
		}
		if (v >= r->n) {
			r->out_of_range++;
			continue;
		}
		atomic_fetch_add(&r->counts[v], 1);
		r->sum += v;
		r->got++;
		if ((int64_t)(v % r->per) <= last[v / r->per])
			r->order_errors++;
		last[v / r->per] = (int64_t)(v % r->per);
	}
	return NULL;
}

TEST_F(mpmc, four_senders_four_receivers_distinct_values)
{
	struct mpmc_sender snd[MPMC_SENDERS];
	struct mpmc_receiver rcv[MPMC_RECEIVERS];
	uint32_t per = (uint32_t)gs_stress(variant->n, variant->n / 5) /
		       MPMC_SENDERS;
	uint32_t n = per * MPMC_SENDERS;
	uint32_t missing = 0, dups = 0, got = 0;
	uint64_t sum = 0, t0 = mono_ns();
	atomic_uint *counts;

	counts = calloc(n, sizeof(*counts));
	ASSERT_NE(NULL, counts);
	for (int i = 0; i < MPMC_RECEIVERS; i++) {
		memset(&rcv[i], 0, sizeof(rcv[i]));
		rcv[i].ch = self->ch;
		rcv[i].counts = counts;
		rcv[i].n = n;
		rcv[i].per = per;
		ASSERT_EQ(0, pthread_create(&rcv[i].tid, NULL, mpmc_recv_main, &rcv[i]));
	}
	for (int i = 0; i < MPMC_SENDERS; i++) {
		memset(&snd[i], 0, sizeof(snd[i]));
		snd[i].ch = self->ch;
		snd[i].id = (uint32_t)i;
		snd[i].per = per;
		ASSERT_EQ(0, pthread_create(&snd[i].tid, NULL, mpmc_send_main, &snd[i]));
	}
	for (int i = 0; i < MPMC_SENDERS; i++) {
		ASSERT_EQ(0, join_ms(snd[i].tid, MPMC_JOIN_MS));
		EXPECT_EQ(0, snd[i].err) TH_LOG("sender %d", i);
	}
	/* Everything sent; close so that the receivers stop once it is drained. */
	ASSERT_EQ(0, gs_chan_close(self->ch));
	for (int i = 0; i < MPMC_RECEIVERS; i++) {
		ASSERT_EQ(0, join_ms(rcv[i].tid, WAIT_LIMIT_MS));
		EXPECT_EQ(0, rcv[i].err) TH_LOG("receiver %d", i);
		EXPECT_EQ(0, rcv[i].out_of_range) TH_LOG("receiver %d", i);
		EXPECT_EQ(0, rcv[i].order_errors) TH_LOG("receiver %d", i);
		got += rcv[i].got;
		sum += rcv[i].sum;
	}
	for (uint32_t v = 0; v < n; v++) {
		unsigned int c = atomic_load(&counts[v]);

		missing += c == 0;
		dups += c > 1;
	}
	EXPECT_EQ(n, got);
	EXPECT_EQ((uint64_t)n * (n - 1) / 2, sum);
	EXPECT_EQ(0, missing);
	EXPECT_EQ(0, dups);
	EXPECT_STATE(self->ch, 0, 0, 0, 1);
	EXPECT_COUNTS(self->ch, n, n);
	TH_LOG("%u values in %llu ms", n, (unsigned long long)ms_since(t0));
	free(counts);
}

/*
 * Give-up races: senders and receivers with deadlines of a few hundred
 * microseconds, interrupted by signals (no SA_RESTART) all the while. A
 * waiter served just as it gives up must keep what it was served, so a
 * value is received exactly once if its send returned 0, and never if
 * the send failed.
 */
struct race_sender {
	gs_chan *ch;
	uint32_t id;
	unsigned char *sent;		/* RACE_N flags: the send returned 0 */
	uint32_t ok, timeouts, eintr;
	int err;			/* any other result */
	atomic_int *done;
	pthread_t tid;
};

struct race_receiver {
	gs_chan *ch;
	uint32_t seed0;
	unsigned char *got;		/* RACE_SENDERS * RACE_N counts */
	uint32_t ok, timeouts, eintr, bad, order_errors;
	int err;
	pthread_t tid;
};

/* A deadline 0 to 300 us away; one in eight already past. */
static uint64_t race_deadline(unsigned int *seed)
{
	unsigned int r = (unsigned int)rand_r(seed);

	return r % 8 ? gs_deadline_in((r >> 3) % 300000) : 0;
}

static void *race_send_main(void *arg)
{
	struct race_sender *s = arg;
	unsigned int seed = 17 * s->id + 1;

	for (uint32_t q = 0; q < RACE_N; q++) {
		uint64_t v = (uint64_t)s->id << 32 | q;
		int r = gs_chan_send_until(s->ch, &v, race_deadline(&seed), 0);

		if (r == 0) {
			s->sent[q] = 1;
			s->ok++;
		} else if (r == -ETIMEDOUT) {
			s->timeouts++;
		} else if (r == -EINTR) {
			s->eintr++;
		} else {
			s->err = r;
			break;
		}
	}
	atomic_fetch_add(s->done, 1);
	return NULL;
}

static void *race_recv_main(void *arg)
{
	struct race_receiver *r = arg;
	unsigned int seed = r->seed0;
	int64_t last[RACE_SENDERS];

	for (int i = 0; i < RACE_SENDERS; i++)
		last[i] = -1;
	for (;;) {
		uint64_t v = ~0ULL;
		int ret = gs_chan_recv_until(r->ch, &v, race_deadline(&seed), 0);
		uint32_t id = (uint32_t)(v >> 32), q = (uint32_t)v;

		if (ret == 0)
			break;		/* closed and drained */
		if (ret == -ETIMEDOUT) {
			r->timeouts++;
			continue;
		}
		if (ret == -EINTR) {
			r->eintr++;
			continue;
		}
		if (ret != 1) {
			r->err = ret;
			break;
		}
		r->ok++;
		if (id >= RACE_SENDERS || q >= RACE_N) {
			r->bad++;
			continue;
		}
		r->got[id * RACE_N + q]++;
		if ((int64_t)q <= last[id])
			r->order_errors++;
		last[id] = q;
	}
	return NULL;
}

TEST_F(mpmc, no_value_lost_to_deadlines_or_signals)
{
	struct race_sender snd[RACE_SENDERS];
	struct race_receiver rcv[RACE_RECEIVERS];
	uint32_t lost = 0, phantom = 0, dups = 0, bad = 0, order = 0;
	uint64_t sent = 0, received = 0, give_ups = 0, t0;
	unsigned int seed = 99;
	atomic_int done;

	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	atomic_init(&done, 0);
	memset(rcv, 0, sizeof(rcv));
	memset(snd, 0, sizeof(snd));
	for (int i = 0; i < RACE_RECEIVERS; i++) {
		rcv[i].ch = self->ch;
		rcv[i].seed0 = 1000 + i;
		rcv[i].got = calloc(RACE_SENDERS * RACE_N, 1);
		ASSERT_NE(NULL, rcv[i].got);
		ASSERT_EQ(0, pthread_create(&rcv[i].tid, NULL, race_recv_main, &rcv[i]));
	}
	for (int i = 0; i < RACE_SENDERS; i++) {
		snd[i].ch = self->ch;
		snd[i].id = (uint32_t)i;
		snd[i].done = &done;
		snd[i].sent = calloc(RACE_N, 1);
		ASSERT_NE(NULL, snd[i].sent);
		ASSERT_EQ(0, pthread_create(&snd[i].tid, NULL, race_send_main, &snd[i]));
	}
	/* Signal a random thread every 200 us or so until the senders are done. */
	t0 = mono_ns();
	while (atomic_load(&done) < RACE_SENDERS && ms_since(t0) < MPMC_JOIN_MS) {
		int t = rand_r(&seed) % (RACE_SENDERS + RACE_RECEIVERS);

		pthread_kill(t < RACE_SENDERS ? snd[t].tid : rcv[t - RACE_SENDERS].tid,
			     SIGUSR1);
		usleep(200);
	}
	for (int i = 0; i < RACE_SENDERS; i++) {
		ASSERT_EQ(0, join_ms(snd[i].tid, WAIT_LIMIT_MS));
		EXPECT_EQ(0, snd[i].err) TH_LOG("sender %d", i);
		sent += snd[i].ok;
		give_ups += snd[i].timeouts + snd[i].eintr;
	}
	ASSERT_EQ(0, gs_chan_close(self->ch));
	for (int i = 0; i < RACE_RECEIVERS; i++) {
		ASSERT_EQ(0, join_ms(rcv[i].tid, WAIT_LIMIT_MS));
		EXPECT_EQ(0, rcv[i].err) TH_LOG("receiver %d", i);
		received += rcv[i].ok;
		bad += rcv[i].bad;
		order += rcv[i].order_errors;
		give_ups += rcv[i].timeouts + rcv[i].eintr;
	}
	for (uint32_t id = 0; id < RACE_SENDERS; id++) {
		for (uint32_t q = 0; q < RACE_N; q++) {
			unsigned int n = 0;

			for (int i = 0; i < RACE_RECEIVERS; i++)
				n += rcv[i].got[id * RACE_N + q];
			lost += snd[id].sent[q] && n == 0;
			phantom += !snd[id].sent[q] && n > 0;
			dups += n > 1;
		}
	}
	EXPECT_EQ(0, lost);
	EXPECT_EQ(0, phantom);
	EXPECT_EQ(0, dups);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, order);
	EXPECT_EQ(sent, received);
	EXPECT_LT(0, sent);
	EXPECT_LT(0, give_ups);
	EXPECT_STATE(self->ch, 0, 0, 0, 1);
	EXPECT_COUNTS(self->ch, sent, received);
	TH_LOG("%llu of %d sent, %llu gave up, %d signals in %llu ms",
	       (unsigned long long)sent, RACE_SENDERS * RACE_N,
	       (unsigned long long)give_ups, atomic_load(&sig_count),
	       (unsigned long long)ms_since(t0));
	for (int i = 0; i < RACE_SENDERS; i++)
		free(snd[i].sent);
	for (int i = 0; i < RACE_RECEIVERS; i++)
		free(rcv[i].got);
}

/* ------------------------------------------------------------------ */
/* A chain of threads                                                   */

struct chain_link {
	gs_chan *in, *out;
	uint64_t hops;
	int err;
	pthread_t tid;
};

/* Pass v + 1 along until the input is closed, then close the output. */
static void *chain_main(void *arg)
{
	struct chain_link *l = arg;

	for (;;) {
		uint64_t v = ~0ULL;
		int r = gs_chan_recv(l->in, &v);

		if (r <= 0) {
			l->err = r;
			gs_chan_close(l->out);
			return NULL;
		}
		v++;
		r = gs_chan_send(l->out, &v);
		if (r) {
			l->err = r;
			return NULL;
		}
		l->hops++;
	}
}


TEST(chain_of_1000_threads)
{
	struct chain_link *links;
	unsigned int bad = 0, wrong_hops = 0, open_ends = 0;
	rlim_t want = CHAIN_LEN + 64;
	pthread_attr_t attr;
	gs_chan **chans;
	struct rlimit rl;
	uint64_t v, t0;

	/* CHAIN_LEN + 1 channels: more fds than a soft limit of 1024 leaves. */
	ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &rl));
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want;
		if (rl.rlim_max < want)
			rl.rlim_max = want;
		ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &rl)) TH_LOG("RLIMIT_NOFILE: %s",
								   strerror(errno));
	}
	chans = calloc(CHAIN_LEN + 1, sizeof(*chans));
	links = calloc(CHAIN_LEN, sizeof(*links));
	ASSERT_NE(NULL, chans);
	ASSERT_NE(NULL, links);
	for (int i = 0; i <= CHAIN_LEN; i++) {
		ASSERT_EQ(0, gs_chan_make(&chans[i], sizeof(uint64_t), 0)) TH_LOG("channel %d", i);
	}
	ASSERT_EQ(0, pthread_attr_init(&attr));
	ASSERT_EQ(0, pthread_attr_setstacksize(&attr, CHAIN_STACK));
	t0 = mono_ns();
	for (int i = 0; i < CHAIN_LEN; i++) {
		links[i].in = chans[i];
		links[i].out = chans[i + 1];
		ASSERT_EQ(0, pthread_create(&links[i].tid, &attr, chain_main, &links[i]))
			TH_LOG("thread %d", i);
	}
	pthread_attr_destroy(&attr);
	for (uint64_t round = 0; round < CHAIN_ROUNDS; round++) {
		uint64_t base = round * 1000000;

		ASSERT_EQ(0, send_u64(chans[0], base));
		v = ~0ULL;
		/* 1000 hand-offs: a watchdog 10 times a single wait's. */
		ASSERT_EQ(1, gs_chan_recv_until(chans[CHAIN_LEN], &v,
						gs_deadline_in(10 * WAIT_LIMIT_MS * NS_PER_MS), 0));
		EXPECT_EQ(base + CHAIN_LEN, v);
	}
	/* Closing the head closes every link in turn, down to the tail. */
	ASSERT_EQ(0, gs_chan_close(chans[0]));
	v = 1;
	EXPECT_EQ(0, gs_chan_recv_until(chans[CHAIN_LEN], &v,
					gs_deadline_in(10 * WAIT_LIMIT_MS * NS_PER_MS), 0));
	EXPECT_EQ(0, v);
	for (int i = 0; i < CHAIN_LEN; i++) {
		ASSERT_EQ(0, join_ms(links[i].tid, WAIT_LIMIT_MS)) TH_LOG("thread %d", i);
		bad += links[i].err != 0;
		wrong_hops += links[i].hops != CHAIN_ROUNDS;
	}
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, wrong_hops);
	for (int i = 0; i <= CHAIN_LEN; i++) {
		struct gosync_chan_status st;

		if (gs_chan_status(chans[i], &st) || !st.closed || st.len ||
		    st.send_waiters || st.recv_waiters)
			open_ends++;
		gs_chan_destroy(chans[i]);
	}
	EXPECT_EQ(0, open_ends);
	TH_LOG("%d threads, %d rounds: %llu ms", CHAIN_LEN, CHAIN_ROUNDS,
	       (unsigned long long)ms_since(t0));
	free(chans);
	free(links);
}

/* ------------------------------------------------------------------ */
/* Other processes                                                      */

TEST(fork_child_sends_parent_receives)
{
	const uint32_t n = 2 * XPROC_N;
	uint32_t dups = 0, order = 0, bad = 0, got;
	int64_t last[2] = { -1, -1 };
	uint64_t sum = 0, v;
	unsigned char *seen;
	pid_t pid[2];
	int status, r = 1;
	gs_chan *ch;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 4));
	seen = calloc(n, 1);
	ASSERT_NE(NULL, seen);
	for (int c = 0; c < 2; c++) {
		pid[c] = fork_child();
		ASSERT_LE(0, pid[c]);
		if (pid[c] == 0) {
			for (uint64_t i = 0; i < XPROC_N; i++)
				if (send_u64(ch, (uint64_t)c * XPROC_N + i))
					_exit(1);
			_exit(0);
		}
	}
	for (got = 0; got < n; got++) {
		uint32_t c;

		v = ~0ULL;
		r = recv_v(ch, &v);
		if (r != 1)
			break;
		if (v >= n) {
			bad++;
			continue;
		}
		dups += seen[v]++ != 0;
		sum += v;
		c = (uint32_t)(v / XPROC_N);
		if ((int64_t)(v % XPROC_N) <= last[c])
			order++;
		last[c] = (int64_t)(v % XPROC_N);
	}
	EXPECT_EQ(1, r) TH_LOG("receive %u: %s", got, gs_strerror(r));
	for (int c = 0; c < 2; c++) {
		ASSERT_EQ(0, wait_child(pid[c], &status, WAIT_LIMIT_MS));
		EXPECT_TRUE(WIFEXITED(status));
		EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("child %d", c);
	}
	EXPECT_EQ(n, got);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, dups);
	EXPECT_EQ(0, order);
	EXPECT_EQ((uint64_t)n * (n - 1) / 2, sum);
	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
	EXPECT_STATE(ch, 0, 0, 0, 0);
	EXPECT_COUNTS(ch, n, n);
	free(seen);
	gs_chan_destroy(ch);
}

struct xproc_result {
	int stage;		/* 0: done, else the step that failed */
	int err;
	uint32_t elem_size, capacity;
	int cloexec;
	uint32_t got, dups, order_errors, out_of_range;
	uint64_t sum;
};

/* Makes a channel, passes it on @sock, sends 0..2N-1 and closes it. */
static void scm_creator(int sock)
{
	gs_chan *ch;

	if (gs_chan_make(&ch, sizeof(uint64_t), 0))
		_exit(10);
	if (gs_fd_send(sock, gs_chan_fd(ch)))
		_exit(11);
	for (uint64_t i = 0; i < 2 * XPROC_N; i++)
		if (send_u64(ch, i))
			_exit(12);
	if (gs_chan_close(ch))
		_exit(13);
	_exit(0);
}

/* Receives the channel from @sock, drains it and reports on @out. */
static void scm_receiver(int sock, int out)
{
	struct xproc_result res;
	unsigned char *seen = calloc(2 * XPROC_N, 1);
	int64_t last = -1;
	gs_chan *ch;
	int fd;

	memset(&res, 0, sizeof(res));
	if (!seen)
		_exit(22);
	fd = gs_fd_recv(sock);
	if (fd < 0) {
		res.stage = 1;
		res.err = fd;
		goto report;
	}
	res.cloexec = !!(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	res.err = gs_chan_from_fd(&ch, fd);
	if (res.err) {
		res.stage = 2;
		goto report;
	}
	res.elem_size = (uint32_t)gs_chan_elem_size(ch);
	res.capacity = gs_chan_cap(ch);
	for (;;) {
		uint64_t v = ~0ULL;
		int r = recv_v(ch, &v);

		if (r == 0)
			break;
		if (r < 0) {
			res.stage = 3;
			res.err = r;
			break;
		}
		if (v >= 2 * XPROC_N) {
			res.out_of_range++;
			continue;
		}
		res.dups += seen[v]++ != 0;
		res.sum += v;
		res.got++;
		if ((int64_t)v <= last)
			res.order_errors++;
		last = (int64_t)v;
	}
report:
	if (write(out, &res, sizeof(res)) != sizeof(res))
		_exit(21);
	_exit(0);
}

TEST(scm_rights_between_unrelated_processes)
{
	const uint64_t n = 2 * XPROC_N;
	struct xproc_result res;
	struct pollfd p;
	int sv[2], pfd[2], status;
	pid_t a, b;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	/* Two children that share nothing but the socket pair. */
	a = fork_child();
	ASSERT_LE(0, a);
	if (a == 0) {
		close(sv[1]);
		close(pfd[0]);
		close(pfd[1]);
		scm_creator(sv[0]);
	}
	b = fork_child();
	ASSERT_LE(0, b);
	if (b == 0) {
		close(sv[0]);
		close(pfd[0]);
		scm_receiver(sv[1], pfd[1]);
	}
	close(sv[0]);
	close(sv[1]);
	close(pfd[1]);

	p.fd = pfd[0];
	p.events = POLLIN;
	p.revents = 0;
	EXPECT_EQ(1, poll(&p, 1, 6 * WAIT_LIMIT_MS));
	memset(&res, 0xff, sizeof(res));
	EXPECT_EQ((ssize_t)sizeof(res), read(pfd[0], &res, sizeof(res)));
	close(pfd[0]);
	ASSERT_EQ(0, wait_child(a, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("creator");
	ASSERT_EQ(0, wait_child(b, &status, WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("receiver");

	EXPECT_EQ(0, res.stage) TH_LOG("receiver failed: %s", gs_strerror(res.err));
	EXPECT_EQ(0, res.err);
	EXPECT_EQ(1, res.cloexec);
	EXPECT_EQ(sizeof(uint64_t), res.elem_size);
	EXPECT_EQ(0, res.capacity);
	EXPECT_EQ(n, res.got);
	EXPECT_EQ(0, res.dups);
	EXPECT_EQ(0, res.order_errors);
	EXPECT_EQ(0, res.out_of_range);
	EXPECT_EQ(n * (n - 1) / 2, res.sum);
}

TEST(sigkill_blocked_sender_sends_nothing)
{
	for (uint32_t cap = 0; cap <= 1; cap++) {
		gs_chan *ch;
		uint64_t v;
		int status;
		pid_t pid;

		ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), cap));
		ASSERT_EQ(0, fill(ch, cap, 1));
		pid = fork_child();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			gs_chan_send(ch, &(uint64_t){ 42 });
			_exit(1);
		}
		ASSERT_EQ(0, wait_waiters(ch, 1, 0));
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
		EXPECT_TRUE(WIFSIGNALED(status)) TH_LOG("cap %u", cap);
		EXPECT_EQ(SIGKILL, WTERMSIG(status));
		EXPECT_STATE(ch, cap, 0, 0, 0);
		EXPECT_COUNTS(ch, cap, 0);
		EXPECT_EQ(cap, drain_in_order(ch, cap, 1));
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, &v));
		EXPECT_COUNTS(ch, cap, cap);
		gs_chan_destroy(ch);
	}
}

TEST(sigkill_blocked_receiver_loses_no_value)
{
	for (uint32_t cap = 0; cap <= 1; cap++) {
		struct op w;
		gs_chan *ch;
		uint64_t v;
		int status;
		pid_t pid;

		ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), cap));
		pid = fork_child();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			gs_chan_recv(ch, &v);
			_exit(1);
		}
		ASSERT_EQ(0, wait_waiters(ch, 0, 1));
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS));
		EXPECT_TRUE(WIFSIGNALED(status)) TH_LOG("cap %u", cap);
		EXPECT_EQ(SIGKILL, WTERMSIG(status));
		EXPECT_STATE(ch, 0, 0, 0, 0);
		v = 7;
		if (cap) {
			/* The value waits in the buffer, for us. */
			EXPECT_EQ(0, gs_chan_try_send(ch, &v));
			EXPECT_STATE(ch, 1, 0, 0, 0);
			v = 0;
			EXPECT_EQ(1, gs_chan_try_recv(ch, &v));
			EXPECT_EQ(7, v);
		} else {
			/* No dead receiver left to take it... */
			EXPECT_EQ(-EAGAIN, gs_chan_try_send(ch, &v));
			/* ... so a blocking send goes to us. */
			ASSERT_EQ(0, op_start(&w, OP_SEND, ch, 7));
			v = 0;
			EXPECT_EQ(1, recv_v(ch, &v));
			EXPECT_EQ(7, v);
			ASSERT_EQ(0, op_join(&w));
			EXPECT_EQ(0, w.ret);
		}
		EXPECT_STATE(ch, 0, 0, 0, 0);
		EXPECT_COUNTS(ch, 1, 1);
		gs_chan_destroy(ch);
	}
}

struct ks_receiver {
	gs_chan *ch;
	uint32_t next[KS_MAX_IDS];	/* per child: the sequence number due */
	uint64_t total, first_bad;
	uint32_t bad_ids, out_of_order;
	int err;
	pthread_t tid;
};

/*
 * Each child sends (id << 32) | 0, 1, 2, ... one at a time, so what it got
 * through is exactly a prefix of that sequence: anything else received is
 * a duplicate, a value from nowhere, or proof that one was lost.
 */
static void *ks_recv_main(void *arg)
{
	struct ks_receiver *k = arg;

	for (;;) {
		uint64_t v = ~0ULL;
		int r = gs_chan_recv_until(k->ch, &v, limit(), 0);
		uint32_t id = (uint32_t)(v >> 32), q = (uint32_t)v;

		if (r == 0)
			break;
		if (r < 0) {
			k->err = r;
			break;
		}
		k->total++;
		if (id >= KS_MAX_IDS) {
			if (!k->bad_ids++ && !k->out_of_order)
				k->first_bad = v;
		} else if (q != k->next[id]) {
			if (!k->out_of_order++ && !k->bad_ids)
				k->first_bad = v;
		} else {
			k->next[id]++;
		}
	}
	return NULL;
}

/*
 * A child sends through the ioctl, never the ring's atomic fast path: a
 * kill can land anywhere in a send the kernel does (queued, waking,
 * handing over), which is what this stress is about. A process killed
 * between claiming a ring position in userspace and publishing its value
 * still blocks later receivers of that channel: issue 14 (dead peers)
 * fixes that, with its own test that stops a pusher exactly there.
 */
static pid_t ks_spawn(gs_chan *ch, uint32_t id)
{
	pid_t pid = fork_child();

	if (pid == 0) {
		for (uint32_t q = 0;; q++) {
			uint64_t v = (uint64_t)id << 32 | q;

			if (raw_xfer(ch, true, &v, 0, GOSYNC_DEADLINE_NONE))
				_exit(2);
		}
	}
	return pid;
}

static void kill_stress(struct __test_metadata *_metadata, uint32_t cap)
{
	unsigned int seed = 0x5eed + cap;
	uint32_t next_id = 0, bad_exits = 0;
	pid_t pids[KS_CHILDREN];
	struct ks_receiver *k;
	uint64_t prefixes = 0;
	gs_chan *ch;
	int status;

	k = calloc(1, sizeof(*k));
	ASSERT_NE(NULL, k);
	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), cap));
	k->ch = ch;
	ASSERT_EQ(0, pthread_create(&k->tid, NULL, ks_recv_main, k));
	for (int i = 0; i < KS_CHILDREN; i++) {
		pids[i] = ks_spawn(ch, next_id++);
		ASSERT_LT(0, pids[i]);
	}
	/*
	 * Something got through before the first kill, however slowly the
	 * children start (so that the run is never vacuous).
	 */
	for (uint64_t t0 = mono_ns(); ms_since(t0) < WAIT_LIMIT_MS;) {
		struct gosync_chan_status st;

		ASSERT_EQ(0, gs_chan_status(ch, &st));
		if (st.recvs)
			break;
		usleep(500);
	}
	/* Kill children at random times, each replaced by a new one. */
	for (int i = 0; i < KS_KILLS + KS_CHILDREN; i++) {
		int slot = i < KS_KILLS ? rand_r(&seed) % KS_CHILDREN : i - KS_KILLS;

		sleep_ms(1 + rand_r(&seed) % 15);
		ASSERT_EQ(0, kill(pids[slot], SIGKILL));
		ASSERT_EQ(0, wait_child(pids[slot], &status, WAIT_LIMIT_MS));
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			bad_exits++;
		if (i < KS_KILLS) {
			pids[slot] = ks_spawn(ch, next_id++);
			ASSERT_LT(0, pids[slot]);
		}
	}
	/* All gone: no sender left waiting, the receiver drained everything. */
	ASSERT_EQ(0, wait_waiters(ch, 0, 1));
	EXPECT_EQ(0, gs_chan_len(ch));
	ASSERT_EQ(0, gs_chan_close(ch));
	ASSERT_EQ(0, join_ms(k->tid, WAIT_LIMIT_MS));
	EXPECT_EQ(0, k->err);
	EXPECT_EQ(0, bad_exits);
	EXPECT_EQ(0, k->bad_ids) TH_LOG("value %#llx", (unsigned long long)k->first_bad);
	EXPECT_EQ(0, k->out_of_order) TH_LOG("value %#llx", (unsigned long long)k->first_bad);
	for (uint32_t id = 0; id < next_id; id++)
		prefixes += k->next[id];
	EXPECT_EQ(k->total, prefixes);
	EXPECT_LT(0, k->total);
	EXPECT_COUNTS(ch, k->total, k->total);
	EXPECT_STATE(ch, 0, 0, 0, 1);
	TH_LOG("cap %u: %llu values from %u children", cap,
	       (unsigned long long)k->total, next_id);
	gs_chan_destroy(ch);
	free(k);
}

TEST(sigkill_stress_unbuffered)
{
	kill_stress(_metadata, 0);
}

TEST(sigkill_stress_buffered)
{
	kill_stress(_metadata, 8);
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                            */

TEST(deadlines_on_both_clocks)
{
	struct op w;
	gs_chan *ch;
	uint64_t t0, d;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 1));
	for (int c = 0; c < 2; c++) {
		unsigned int fl = c ? GS_CLOCK_REALTIME : 0;
		clockid_t clk = c ? CLOCK_REALTIME : CLOCK_MONOTONIC;

		/*
		 * A receive on an empty channel ends at its deadline, on its
		 * clock: not before (a realtime deadline read as monotonic
		 * would be decades away, the other way round long past).
		 */
		op_init(&w, OP_RECV, ch, 0);
		w.flags = fl;
		w.deadline = clock_ns(clk) + 50 * NS_PER_MS;
		t0 = mono_ns();
		ASSERT_EQ(0, op_run(&w));
		ASSERT_EQ(0, op_join(&w)) TH_LOG("clock %d: no time-out", c);
		EXPECT_EQ(-ETIMEDOUT, w.ret) TH_LOG("clock %d", c);
		EXPECT_LE(w.deadline, clock_ns(clk)) TH_LOG("clock %d: early", c);
		EXPECT_LE(50, ms_since(t0));
		EXPECT_STATE(ch, 0, 0, 0, 0);

		/* A send on a full channel, likewise. */
		ASSERT_EQ(0, fill(ch, 1, 1));
		op_init(&w, OP_SEND, ch, 2);
		w.flags = fl;
		w.deadline = clock_ns(clk) + 50 * NS_PER_MS;
		ASSERT_EQ(0, op_run(&w));
		ASSERT_EQ(0, op_join(&w)) TH_LOG("clock %d: no time-out", c);
		EXPECT_EQ(-ETIMEDOUT, w.ret) TH_LOG("clock %d", c);
		EXPECT_LE(w.deadline, clock_ns(clk)) TH_LOG("clock %d: early", c);
		EXPECT_STATE(ch, 1, 0, 0, 0);
		EXPECT_EQ(1, drain_in_order(ch, 1, 1));

		/* Served before the deadline: the value, not a time-out. */
		op_init(&w, OP_RECV, ch, 0);
		w.flags = fl;
		w.deadline = clock_ns(clk) + WAIT_LIMIT_MS * NS_PER_MS;
		ASSERT_EQ(0, op_run(&w));
		ASSERT_EQ(0, wait_waiters(ch, 0, 1));
		EXPECT_EQ(0, GS_SEND(ch, uint64_t, 3));
		ASSERT_EQ(0, op_join(&w));
		EXPECT_EQ(1, w.ret);
		EXPECT_EQ(3, w.val);

		/* Beyond what the kernel's clocks can count: like forever. */
		op_init(&w, OP_RECV, ch, 0);
		w.flags = fl;
		w.deadline = GS_FOREVER - 1;
		ASSERT_EQ(0, op_run(&w));
		ASSERT_EQ(0, wait_waiters(ch, 0, 1));
		sleep_ms(BLOCKED_MS);
		EXPECT_FALSE(op_done(&w));
		EXPECT_EQ(0, GS_SEND(ch, uint64_t, 4));
		ASSERT_EQ(0, op_join(&w));
		EXPECT_EQ(1, w.ret);
		EXPECT_EQ(4, w.val);
	}
	EXPECT_STATE(ch, 0, 0, 0, 0);
	EXPECT_COUNTS(ch, 6, 6);

	t0 = mono_ns();
	d = gs_deadline_in(NS_PER_SEC);
	EXPECT_LE(t0 + NS_PER_SEC, d);
	EXPECT_GE(mono_ns() + NS_PER_SEC, d);
	EXPECT_EQ(GS_FOREVER, gs_deadline_in(GS_FOREVER));
	EXPECT_EQ(GS_FOREVER, gs_deadline_in(GS_FOREVER - 1));
	gs_chan_destroy(ch);
}

TEST(deadline_is_kept_across_sa_restart)
{
	struct op w;
	gs_chan *ch;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 0));
	for (int c = 0; c < 2; c++) {
		unsigned int fl = c ? GS_CLOCK_REALTIME : 0;
		clockid_t clk = c ? CLOCK_REALTIME : CLOCK_MONOTONIC;
		bool finished;
		uint64_t t0;

		/*
		 * A run in which fewer than 3 signals came before the deadline
		 * (a slow machine) proves nothing: again, with a longer one.
		 */
		for (uint64_t dl_ms = 300;; dl_ms *= 4) {
			struct gosync_chan_status st;

			ASSERT_EQ(0, install_handler(SIGUSR2, true));
			op_init(&w, OP_RECV, ch, 0);
			w.flags = fl;
			w.deadline = clock_ns(clk) + dl_ms * NS_PER_MS;
			ASSERT_EQ(0, op_run(&w));
			/* Waiting (or, on a slow machine, already timed out). */
			t0 = mono_ns();
			while (!op_done(&w) && ms_since(t0) < WAIT_LIMIT_MS &&
			       (gs_chan_status(ch, &st) || st.recv_waiters != 1))
				usleep(200);
			/*
			 * Interrupt it every 10 ms until it returns: a deadline
			 * that started again with each restart would never come.
			 */
			t0 = mono_ns();
			while (!op_done(&w) && ms_since(t0) < dl_ms + WAIT_LIMIT_MS) {
				pthread_kill(w.tid, SIGUSR2);
				sleep_ms(10);
			}
			finished = op_done(&w);
			ASSERT_EQ(0, op_join(&w));
			EXPECT_TRUE(finished) TH_LOG("clock %d: still waiting %u s after its deadline",
						     c, WAIT_LIMIT_MS / 1000);
			EXPECT_EQ(-ETIMEDOUT, w.ret);
			EXPECT_LE(w.deadline, clock_ns(clk));
			EXPECT_STATE(ch, 0, 0, 0, 0);
			if (atomic_load(&sig_count) > 2 || dl_ms >= WAIT_LIMIT_MS)
				break;
			TH_LOG("clock %d: %d signals in %ju ms, again with a longer deadline",
			       c, atomic_load(&sig_count), (uintmax_t)dl_ms);
		}
		EXPECT_LT(2, atomic_load(&sig_count));
	}
	gs_chan_destroy(ch);
}

/*
 * Monotonic deadlines are read on the caller's clock: in a time namespace
 * whose clock is ahead of the host's, "now + 50 ms" must not wait for the
 * host to catch up, and "now - 1 ms" has passed.
 */
static int timens_child(gs_chan *ch)
{
	uint64_t v = 0, t0 = mono_ns();

	if (t0 < TIMENS_OFFSET_S * NS_PER_SEC)
		return 10;	/* the offset did not apply */
	if (gs_chan_recv_until(ch, &v, t0 + 50 * NS_PER_MS, 0) != -ETIMEDOUT)
		return 11;
	if (mono_ns() - t0 < 50 * NS_PER_MS)
		return 12;	/* early */
	if (mono_ns() - t0 > WAIT_LIMIT_MS * NS_PER_MS)
		return 13;	/* waited for the host's clock */
	t0 = mono_ns();
	if (gs_chan_send_until(ch, &v, t0 - NS_PER_MS, 0) != -ETIMEDOUT)
		return 14;
	if (gs_chan_recv_until(ch, &v, t0 - NS_PER_MS, 0) != -ETIMEDOUT)
		return 15;
	if (mono_ns() - t0 > AT_ONCE_MS * NS_PER_MS)
		return 16;	/* not at once */
	return 0;
}

TEST(deadline_in_a_time_namespace)
{
	char offsets[64];
	int fd, len, status;
	gs_chan *ch;
	pid_t pid;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(uint64_t), 0));
	if (unshare(CLONE_NEWTIME))
		SKIP(return, "unshare(CLONE_NEWTIME): %s", strerror(errno));
	fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd) TH_LOG("timens_offsets: %s", strerror(errno));
	len = snprintf(offsets, sizeof(offsets), "monotonic %llu 0\n", TIMENS_OFFSET_S);
	ASSERT_EQ(len, write(fd, offsets, (size_t)len)) TH_LOG("%s", strerror(errno));
	close(fd);
	/* The children of this process start in the new namespace. */
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(timens_child(ch));
	ASSERT_EQ(0, wait_child(pid, &status, 3 * WAIT_LIMIT_MS)) TH_LOG("child hung");
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_STATE(ch, 0, 0, 0, 0);
	EXPECT_COUNTS(ch, 0, 0);
	gs_chan_destroy(ch);
}

/* ------------------------------------------------------------------ */
/* Receiving into NULL: the value is consumed and dropped (Go's <-ch)  */

/*
 * A receive whose destination is NULL takes a value like any other, on
 * every path: the ring in userspace, the ring in the kernel, a hand-off
 * from a waiting sender or to a waiting receiver, try, deadline, closed.
 * Each test checks that the value is really gone (the next receive gets
 * the next value) and that the counts add up. Self-contained: the
 * helpers below are used only here.
 */

/* Value number @n of @size bytes: byte i is n * 31 + i + 1 (mod 256). */
static void nr_fill(unsigned char *p, size_t size, unsigned int n)
{
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(n * 31u + i + 1u);
}

/* Does @p hold value number @n? */
static bool nr_is(const unsigned char *p, size_t size, unsigned int n)
{
	for (size_t i = 0; i < size; i++)
		if (p[i] != (unsigned char)(n * 31u + i + 1u))
			return false;
	return true;
}

/* A send or receive in a thread of its own, bounded by WAIT_LIMIT_MS. */
struct nr_op {
	gs_chan *ch;
	bool send;
	bool raw;		/* the ioctl itself, bypassing the library */
	void *buf;		/* the value, or the destination; NULL: discard */
	int ret;
	pthread_t tid;
};

static void *nr_op_main(void *arg)
{
	struct nr_op *op = arg;
	uint64_t dl = gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);
	struct gosync_chan_xfer x = { .value = (uintptr_t)op->buf, .deadline = dl };

	if (op->raw)
		op->ret = xioctl(gs_chan_fd(op->ch), op->send ? GOSYNC_IOC_CHAN_SEND :
				 GOSYNC_IOC_CHAN_RECV, &x);
	else if (op->send)
		op->ret = gs_chan_send_until(op->ch, op->buf, dl, 0);
	else
		op->ret = gs_chan_recv_until(op->ch, op->buf, dl, 0);
	return NULL;
}

static int nr_op_start(struct nr_op *op, gs_chan *ch, bool send, bool raw,
		       void *buf)
{
	op->ch = ch;
	op->send = send;
	op->raw = raw;
	op->buf = buf;
	op->ret = INT_MIN;
	return start_thread(&op->tid, nr_op_main, op);
}

static int nr_op_join(struct nr_op *op)
{
	return join_ms(op->tid, 2 * WAIT_LIMIT_MS);
}

/* The kernel's view of @ch, all ones if the status ioctl fails. */
static struct gosync_chan_status nr_st(gs_chan *ch)
{
	struct gosync_chan_status st;

	if (gs_chan_status(ch, &st))
		memset(&st, 0xff, sizeof(st));
	return st;
}

/* Wait until @ch has @senders blocked senders and @receivers receivers. */
static bool nr_wait_waiters(gs_chan *ch, uint32_t senders, uint32_t receivers)
{
	uint64_t t0 = mono_ns();

	for (;;) {
		struct gosync_chan_status st = nr_st(ch);

		if (st.send_waiters == senders && st.recv_waiters == receivers)
			return true;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return false;
		usleep(200);
	}
}

/* One receive ioctl: the kernel's path, whatever the ring holds. */
static int nr_raw_recv(gs_chan *ch, void *value, uint32_t flags,
		       uint64_t deadline)
{
	struct gosync_chan_xfer x = {
		.value = (uintptr_t)value, .deadline = deadline, .flags = flags,
	};

	return xioctl(gs_chan_fd(ch), GOSYNC_IOC_CHAN_RECV, &x);
}

#define EXPECT_NR_COUNTS(ch, len_, sends_, recvs_) do {			\
	struct gosync_chan_status st_ = nr_st(ch);			\
	EXPECT_EQ((uint32_t)(len_), st_.len);				\
	EXPECT_EQ((uint64_t)(sends_), st_.sends);			\
	EXPECT_EQ((uint64_t)(recvs_), st_.recvs);			\
	EXPECT_EQ(0, st_.send_waiters);					\
	EXPECT_EQ(0, st_.recv_waiters);					\
} while (0)

FIXTURE(nullrecv) {
	gs_chan *ch;
	unsigned char *in, *out;	/* a destination, a value to send */
};

FIXTURE_VARIANT(nullrecv) {
	size_t size;
	uint32_t cap;
};

FIXTURE_VARIANT_ADD(nullrecv, size0_unbuffered) { .size = 0, .cap = 0 };
FIXTURE_VARIANT_ADD(nullrecv, size0_buffered) { .size = 0, .cap = 2 };
FIXTURE_VARIANT_ADD(nullrecv, size8_unbuffered) { .size = 8, .cap = 0 };
FIXTURE_VARIANT_ADD(nullrecv, size8_buffered) { .size = 8, .cap = 2 };
FIXTURE_VARIANT_ADD(nullrecv, size65536_unbuffered) { .size = GOSYNC_CHAN_ELEM_MAX, .cap = 0 };
FIXTURE_VARIANT_ADD(nullrecv, size65536_buffered) { .size = GOSYNC_CHAN_ELEM_MAX, .cap = 2 };

FIXTURE_SETUP(nullrecv)
{
	ASSERT_EQ(0, gs_chan_make(&self->ch, variant->size, variant->cap));
	self->in = malloc(variant->size + 1);
	self->out = malloc(variant->size + 1);
	ASSERT_NE(NULL, self->in);
	ASSERT_NE(NULL, self->out);
}

FIXTURE_TEARDOWN(nullrecv)
{
	gs_chan_destroy(self->ch);
	free(self->in);
	free(self->out);
}

/* Receiver first: a receiver blocked on NULL gets the send (a hand-off). */
TEST_F(nullrecv, blocked_receiver_into_null_takes_a_send)
{
	size_t size = variant->size;
	struct nr_op r;
	unsigned int n = 0;

	for (int raw = 0; raw < 2; raw++) {
		ASSERT_EQ(0, nr_op_start(&r, self->ch, false, raw, NULL));
		ASSERT_TRUE(nr_wait_waiters(self->ch, 0, 1));
		nr_fill(self->out, size, ++n);
		EXPECT_EQ(0, gs_chan_send_until(self->ch, self->out, limit(), 0));
		ASSERT_EQ(0, nr_op_join(&r));
		EXPECT_EQ(1, r.ret) TH_LOG("raw %d", raw);
		EXPECT_NR_COUNTS(self->ch, 0, n, n);
		/* The next receive, into memory, gets the next value. */
		ASSERT_EQ(0, nr_op_start(&r, self->ch, false, raw, self->in));
		ASSERT_TRUE(nr_wait_waiters(self->ch, 0, 1));
		nr_fill(self->out, size, ++n);
		EXPECT_EQ(0, gs_chan_send_until(self->ch, self->out, limit(), 0));
		ASSERT_EQ(0, nr_op_join(&r));
		EXPECT_EQ(1, r.ret);
		EXPECT_TRUE(nr_is(self->in, size, n));
		EXPECT_NR_COUNTS(self->ch, 0, n, n);
	}
}

/*
 * Sender first: a receive into NULL takes the value of a blocked sender
 * (unbuffered: a hand-off; buffered: the ring's oldest value, and the
 * sender's value moves into the freed slot), the library's way and the
 * ioctl's.
 */
TEST_F(nullrecv, receive_into_null_takes_a_blocked_senders_value)
{
	size_t size = variant->size;
	uint32_t cap = variant->cap;
	unsigned int sent = 0, next = 1;
	struct nr_op s;

	for (int raw = 0; raw < 2; raw++) {
		while (sent < next - 1 + cap) {
			nr_fill(self->out, size, ++sent);
			ASSERT_EQ(0, gs_chan_try_send(self->ch, self->out));
		}
		nr_fill(self->out, size, ++sent);
		ASSERT_EQ(0, nr_op_start(&s, self->ch, true, false, self->out));
		ASSERT_TRUE(nr_wait_waiters(self->ch, 1, 0));
		EXPECT_EQ(1, raw ? nr_raw_recv(self->ch, NULL, 0, limit()) :
				   gs_chan_recv_until(self->ch, NULL, limit(), 0));
		next++;		/* value next - 1 is gone */
		ASSERT_EQ(0, nr_op_join(&s));
		EXPECT_EQ(0, s.ret) TH_LOG("raw %d", raw);
		EXPECT_NR_COUNTS(self->ch, cap, sent, next - 1);
		/* The values left come in order, the sender's last. */
		while (next <= sent) {
			memset(self->in, 0, size);
			EXPECT_EQ(1, gs_chan_recv_until(self->ch, self->in, limit(), 0));
			EXPECT_TRUE(nr_is(self->in, size, next)) TH_LOG("value %u", next);
			next++;
		}
		EXPECT_NR_COUNTS(self->ch, 0, sent, sent);
	}
}

/* Try and deadline receives into NULL: nothing taken when nothing is there. */
TEST_F(nullrecv, try_and_deadline_receives_into_null)
{
	size_t size = variant->size;
	uint32_t cap = variant->cap;
	unsigned int sent = 0;
	struct nr_op s;

	EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, NULL));
	EXPECT_EQ(-EAGAIN, nr_raw_recv(self->ch, NULL, GOSYNC_CHAN_TRY, GS_FOREVER));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(self->ch, NULL, 0, 0));
	EXPECT_EQ(-ETIMEDOUT, gs_chan_recv_until(self->ch, NULL,
						 gs_deadline_in(SHORT_MS * NS_PER_MS), 0));
	EXPECT_EQ(-ETIMEDOUT, nr_raw_recv(self->ch, NULL, 0,
					  gs_deadline_in(SHORT_MS * NS_PER_MS)));
	EXPECT_NR_COUNTS(self->ch, 0, 0, 0);

	/* Each form once against a blocked sender (the kernel's path). */
	for (int form = 0; form < 4; form++) {
		nr_fill(self->out, size, ++sent);
		ASSERT_EQ(0, nr_op_start(&s, self->ch, true, false, self->out));
		if (cap) {
			/* Buffered: the send lands in the ring; take it there. */
			ASSERT_EQ(0, nr_op_join(&s));
			ASSERT_EQ(0, s.ret);
		} else {
			ASSERT_TRUE(nr_wait_waiters(self->ch, 1, 0));
		}
		switch (form) {
		case 0:
			EXPECT_EQ(1, gs_chan_try_recv(self->ch, NULL));
			break;
		case 1:
			EXPECT_EQ(1, nr_raw_recv(self->ch, NULL, GOSYNC_CHAN_TRY,
						 GS_FOREVER));
			break;
		case 2:
			/* A deadline already past still takes what is ready. */
			EXPECT_EQ(1, nr_raw_recv(self->ch, NULL, 0, 0));
			break;
		case 3:
			EXPECT_EQ(1, gs_chan_recv_until(self->ch, NULL, limit(), 0));
			break;
		}
		if (!cap) {
			ASSERT_EQ(0, nr_op_join(&s));
			EXPECT_EQ(0, s.ret) TH_LOG("form %d", form);
		}
		EXPECT_NR_COUNTS(self->ch, 0, sent, sent);
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(self->ch, NULL)) TH_LOG("form %d", form);
	}
	/* The next value after the discarded ones comes whole. */
	nr_fill(self->out, size, ++sent);
	ASSERT_EQ(0, nr_op_start(&s, self->ch, true, false, self->out));
	if (!cap)
		ASSERT_TRUE(nr_wait_waiters(self->ch, 1, 0));
	EXPECT_EQ(1, gs_chan_recv_until(self->ch, self->in, limit(), 0));
	EXPECT_TRUE(nr_is(self->in, size, sent));
	ASSERT_EQ(0, nr_op_join(&s));
	EXPECT_EQ(0, s.ret);
	EXPECT_NR_COUNTS(self->ch, 0, sent, sent);
}

/* Closed: values left are taken into NULL first, then "closed" (0). */
TEST_F(nullrecv, closed_channel_receives_into_null)
{
	size_t size = variant->size;
	uint32_t cap = variant->cap;
	unsigned int sent = 0;
	struct nr_op r;

	/* A receiver blocked on NULL is woken by the close with 0. */
	ASSERT_EQ(0, nr_op_start(&r, self->ch, false, false, NULL));
	ASSERT_TRUE(nr_wait_waiters(self->ch, 0, 1));
	for (uint32_t i = 0; i < cap; i++) {
		/* Hand-offs to the blocked receiver first, then the ring. */
		nr_fill(self->out, size, ++sent);
		ASSERT_EQ(0, gs_chan_try_send(self->ch, self->out));
		if (i == 0) {
			ASSERT_EQ(0, nr_op_join(&r));
			EXPECT_EQ(1, r.ret);
		}
	}
	if (cap) {
		nr_fill(self->out, size, ++sent);
		ASSERT_EQ(0, gs_chan_try_send(self->ch, self->out));
		ASSERT_EQ(0, nr_op_start(&r, self->ch, false, true, NULL));
		ASSERT_EQ(0, nr_op_join(&r));
		EXPECT_EQ(1, r.ret);	/* value 2 discarded */
		ASSERT_EQ(0, gs_chan_close(self->ch));
		/* Value 3 is left: the next receive gets it. */
		EXPECT_EQ(1, gs_chan_recv(self->ch, self->in));
		EXPECT_TRUE(nr_is(self->in, size, 3));
		EXPECT_NR_COUNTS(self->ch, 0, sent, sent);
		EXPECT_EQ(0, nr_raw_recv(self->ch, NULL, GOSYNC_CHAN_TRY, GS_FOREVER));
	} else {
		ASSERT_EQ(0, gs_chan_close(self->ch));
		ASSERT_EQ(0, nr_op_join(&r));
		EXPECT_EQ(0, r.ret);
	}
	EXPECT_EQ(0, gs_chan_recv(self->ch, NULL));
	EXPECT_EQ(0, gs_chan_try_recv(self->ch, NULL));
	EXPECT_EQ(0, gs_chan_recv_until(self->ch, NULL, 0, 0));
	EXPECT_EQ(0, nr_raw_recv(self->ch, NULL, 0, GS_FOREVER));
	EXPECT_NR_COUNTS(self->ch, 0, sent, sent);
	EXPECT_EQ(1, nr_st(self->ch).closed);
}

/*
 * The ring's paths into NULL, for each element size: the library's fast
 * pop; the kernel's pop (the ioctl); a pop of a full ring with a blocked
 * sender behind it (the library's, which kicks, and the kernel's); and a
 * receiver queued on NULL behind a push still in progress, served by the
 * pusher's kick (chan_serve_receivers). The push is made by hand on the
 * mapped ring, following the protocol in the uapi header.
 */
TEST(ring_pops_into_null_on_every_path)
{
	static const size_t sizes[] = { 0, 8, GOSYNC_CHAN_ELEM_MAX };
	const uint32_t cap = 2;

	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		size_t size = sizes[k], page = (size_t)sysconf(_SC_PAGESIZE);
		size_t slot = GOSYNC_CHAN_SLOT_SIZE(size), map_len;
		unsigned char *out = malloc(size + 1), *in = malloc(size + 1);
		struct gosync_chan_shared *sh;
		unsigned int sent = 0, next = 1;
		uint64_t tail, *seq;
		struct nr_op op;
		gs_chan *ch;
		char *map;

		ASSERT_NE(NULL, out);
		ASSERT_NE(NULL, in);
		ASSERT_EQ(0, gs_chan_make(&ch, size, cap));

		/* The library's fast pop, then the ioctl's pop. */
		for (int raw = 0; raw < 2; raw++) {
			nr_fill(out, size, ++sent);
			ASSERT_EQ(0, gs_chan_try_send(ch, out));
			nr_fill(out, size, ++sent);
			ASSERT_EQ(0, gs_chan_try_send(ch, out));
			EXPECT_EQ(1, raw ? nr_raw_recv(ch, NULL, GOSYNC_CHAN_TRY, GS_FOREVER) :
					   gs_chan_try_recv(ch, NULL)) TH_LOG("size %zu", size);
			next++;
			EXPECT_NR_COUNTS(ch, 1, sent, next - 1);
			memset(in, 0, size);
			EXPECT_EQ(1, gs_chan_try_recv(ch, in));
			EXPECT_TRUE(nr_is(in, size, next)) TH_LOG("size %zu", size);
			next++;
		}

		/* A full ring with a blocked sender behind it. */
		for (int raw = 0; raw < 2; raw++) {
			nr_fill(out, size, ++sent);
			ASSERT_EQ(0, gs_chan_try_send(ch, out));
			nr_fill(out, size, ++sent);
			ASSERT_EQ(0, gs_chan_try_send(ch, out));
			nr_fill(out, size, ++sent);
			ASSERT_EQ(0, nr_op_start(&op, ch, true, false, out));
			ASSERT_TRUE(nr_wait_waiters(ch, 1, 0));
			EXPECT_EQ(1, raw ? nr_raw_recv(ch, NULL, 0, limit()) :
					   gs_chan_recv_until(ch, NULL, limit(), 0));
			next++;
			ASSERT_EQ(0, nr_op_join(&op));
			EXPECT_EQ(0, op.ret);
			EXPECT_NR_COUNTS(ch, 2, sent, next - 1);
			for (; next <= sent; next++) {
				memset(in, 0, size);
				EXPECT_EQ(1, gs_chan_try_recv(ch, in));
				EXPECT_TRUE(nr_is(in, size, next)) TH_LOG("size %zu value %u", size, next);
			}
		}

		/* A queued NULL receiver served by the kick of a slow push. */
		map_len = page + (slot * cap + page - 1) / page * page;
		map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
			   gs_chan_fd(ch), 0);
		ASSERT_NE(MAP_FAILED, map);
		sh = (struct gosync_chan_shared *)map;
		tail = __atomic_load_n(&sh->tail, __ATOMIC_SEQ_CST);
		ASSERT_EQ(0, tail & ~GOSYNC_CHAN_POS_MASK);
		seq = (uint64_t *)(map + page + (size_t)(tail % cap) * slot);
		ASSERT_EQ(2 * tail, __atomic_load_n(seq, __ATOMIC_ACQUIRE));
		ASSERT_TRUE(__atomic_compare_exchange_n(&sh->tail, &tail, tail + 1, false,
							__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
		sent++;
		/* Position claimed, not published: the receiver must queue. */
		ASSERT_EQ(0, nr_op_start(&op, ch, false, true, NULL));
		ASSERT_TRUE(nr_wait_waiters(ch, 0, 1));
		nr_fill((unsigned char *)(seq + 1), size, sent);
		__atomic_store_n(seq, 2 * tail + 1, __ATOMIC_SEQ_CST);
		EXPECT_NE(0, __atomic_load_n(&sh->tail, __ATOMIC_SEQ_CST) &
			     GOSYNC_CHAN_RECV_WAITERS);
		EXPECT_EQ(0, xioctl(gs_chan_fd(ch), GOSYNC_IOC_CHAN_KICK, NULL));
		ASSERT_EQ(0, nr_op_join(&op));
		EXPECT_EQ(1, op.ret) TH_LOG("size %zu", size);
		next++;
		EXPECT_NR_COUNTS(ch, 0, sent, sent);
		EXPECT_EQ(-EAGAIN, gs_chan_try_recv(ch, NULL));
		/* And the ring goes on: the next value comes whole. */
		nr_fill(out, size, ++sent);
		ASSERT_EQ(0, gs_chan_try_send(ch, out));
		EXPECT_EQ(1, gs_chan_try_recv(ch, in));
		EXPECT_TRUE(nr_is(in, size, sent));
		EXPECT_NR_COUNTS(ch, 0, sent, sent);
		munmap(map, map_len);
		gs_chan_destroy(ch);
		free(out);
		free(in);
	}
}

TEST_HARNESS_MAIN
