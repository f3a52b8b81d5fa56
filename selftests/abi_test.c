// SPDX-License-Identifier: GPL-2.0
/*
 * Nothing leaks to userspace, and no size wraps: the ABI seen byte by
 * byte (issue 13, items 6 and 7).
 *
 *  - Every ioctl that writes a result (VERSION, SELECT, SEM_STATUS,
 *    CHAN_STATUS, LOT_STATUS, and the values RECV and SELECT store) is
 *    called with its buffer filled with several byte patterns. Every
 *    byte the kernel must write comes back the same whatever the pattern
 *    (so none is left stale) and equal to the exact value the object's
 *    state implies; padding and reserved fields are zero; no word looks
 *    like a kernel pointer; the bytes around the buffer, the input
 *    fields and the input arrays are left as they were, and a call that
 *    fails writes nothing at all.
 *  - A received value is exactly elem_size bytes, on every path (ring,
 *    hand-off from a queued sender, to a queued receiver, closed, timer,
 *    select), for sizes around the kernel's 64-byte on-stack buffer.
 *  - The ioctls that only read their argument work with it in a
 *    read-only page: they never write it.
 *  - The shared pages start as the ABI says and hold nothing else;
 *    fdinfo prints no kernel pointer.
 *  - Boundary inputs of every size product and sum the module computes
 *    (element size times capacity, the slot size, select's case array and
 *    value budget, semaphore counts, timer periods, deadlines, mmap
 *    offsets) are refused, or served, with their exact errno.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

/* ------------------------------------------------------------------ */
/* The layout: fixed-size fields, no implicit padding, same on 32-bit   */

/*
 * Each struct is the sum of its fields, and every __u64 lies at a
 * multiple of 8 (so i386, where a __u64 is 4-aligned, lays it out the
 * same and compat_ptr_ioctl() is enough).
 */
#define AT(t, f, off)		(offsetof(t, f) == (off))

_Static_assert(sizeof(struct gosync_version) == 32 &&
	       AT(struct gosync_version, flags, 4) &&
	       AT(struct gosync_version, features, 8) &&
	       AT(struct gosync_version, reserved, 16), "gosync_version");
_Static_assert(sizeof(struct gosync_sem_create) == 16 &&
	       AT(struct gosync_sem_create, flags, 8) &&
	       AT(struct gosync_sem_create, reserved, 12), "gosync_sem_create");
_Static_assert(sizeof(struct gosync_sem_acquire) == 24 &&
	       AT(struct gosync_sem_acquire, deadline, 8) &&
	       AT(struct gosync_sem_acquire, flags, 16) &&
	       AT(struct gosync_sem_acquire, cancel_fd, 20), "gosync_sem_acquire");
_Static_assert(sizeof(struct gosync_sem_status) == 40 &&
	       AT(struct gosync_sem_status, state, 8) &&
	       AT(struct gosync_sem_status, waiters, 16) &&
	       AT(struct gosync_sem_status, reserved, 20) &&
	       AT(struct gosync_sem_status, slow_acquires, 24) &&
	       AT(struct gosync_sem_status, slow_releases, 32), "gosync_sem_status");
_Static_assert(sizeof(struct gosync_chan_shared) == 128 &&
	       AT(struct gosync_chan_shared, head, 64), "gosync_chan_shared");
_Static_assert(sizeof(struct gosync_chan_create) == 16, "gosync_chan_create");
_Static_assert(sizeof(struct gosync_chan_xfer) == 24 &&
	       AT(struct gosync_chan_xfer, deadline, 8) &&
	       AT(struct gosync_chan_xfer, flags, 16) &&
	       AT(struct gosync_chan_xfer, reserved, 20), "gosync_chan_xfer");
_Static_assert(sizeof(struct gosync_chan_status) == 56 &&
	       AT(struct gosync_chan_status, recv_waiters, 20) &&
	       AT(struct gosync_chan_status, sends, 24) &&
	       AT(struct gosync_chan_status, kicks, 48), "gosync_chan_status");
_Static_assert(sizeof(struct gosync_select_case) == 16 &&
	       AT(struct gosync_select_case, value, 8), "gosync_select_case");
_Static_assert(sizeof(struct gosync_select) == 32 &&
	       AT(struct gosync_select, ncases, 8) &&
	       AT(struct gosync_select, deadline, 16) &&
	       AT(struct gosync_select, index, 24) &&
	       AT(struct gosync_select, ok, 28), "gosync_select");
_Static_assert(sizeof(struct gosync_timer_set) == 24 &&
	       AT(struct gosync_timer_set, flags, 16), "gosync_timer_set");
_Static_assert(sizeof(struct gosync_lot_create) == 16 &&
	       AT(struct gosync_lot_create, param, 8), "gosync_lot_create");
_Static_assert(sizeof(struct gosync_lot_park) == 40 &&
	       AT(struct gosync_lot_park, mask, 8) &&
	       AT(struct gosync_lot_park, deadline, 24) &&
	       AT(struct gosync_lot_park, cancel_fd, 32) &&
	       AT(struct gosync_lot_park, reserved, 36), "gosync_lot_park");
_Static_assert(sizeof(struct gosync_lot_unpark) == 24 &&
	       AT(struct gosync_lot_unpark, add, 16), "gosync_lot_unpark");
_Static_assert(sizeof(struct gosync_lot_status) == 48 &&
	       AT(struct gosync_lot_status, parked, 4) &&
	       AT(struct gosync_lot_status, param, 8) &&
	       AT(struct gosync_lot_status, woken, 32) &&
	       AT(struct gosync_lot_status, flags, 40) &&
	       AT(struct gosync_lot_status, reserved, 44) &&
	       _IOC_SIZE(GOSYNC_IOC_LOT_STATUS_V1) == 40, "gosync_lot_status");
_Static_assert(sizeof(struct gosync_lot_cond_wait) == 24 &&
	       AT(struct gosync_lot_cond_wait, flags, 16), "gosync_lot_cond_wait");

#define PAGE		4096UL
#define GUARD		64	/* pattern bytes on either side of a buffer */
#define MAX_ARG		256	/* the largest argument struct tested */

/* Fills: a byte the kernel left alone shows up in one of them. */
static const unsigned char fills[] = { 0x00, 0xa5, 0x5a, 0xff };
#define NFILLS	(sizeof(fills) / sizeof(fills[0]))


static int dev(void)
{
	static int fd = -1;

	if (fd < 0)
		fd = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	return fd;
}

/* ------------------------------------------------------------------ */
/* Guarded calls                                                        */

/*
 * An ioctl whose @size-byte argument sits in a buffer of @fill bytes,
 * GUARD of them on either side. Before the call the argument holds @in
 * (NULL: all @fill); after it, *@out gets the argument's bytes and
 * *@guards_ok whether the bytes around it are still @fill.
 */
static int guarded_ioctl(int fd, unsigned long cmd, const void *in, void *out,
			 size_t size, unsigned char fill, bool *guards_ok)
{
	_Alignas(64) unsigned char buf[GUARD + MAX_ARG + GUARD];
	int ret;

	if (size > MAX_ARG)
		abort();
	memset(buf, fill, sizeof(buf));
	if (in)
		memcpy(buf + GUARD, in, size);
	ret = xioctl(fd, cmd, buf + GUARD);
	*guards_ok = all_bytes(buf, fill, GUARD) &&
		     all_bytes(buf + GUARD + size, fill, GUARD);
	memcpy(out, buf + GUARD, size);
	return ret;
}

/*
 * True if some 8 bytes at a 4-byte offset of @p read as an address in
 * the kernel's half: from 0xff00000000000000 with 5-level paging (the
 * direct map is at 0xff11...; QEMU's CPU has LA57), from
 * 0xffff800000000000 with 4-level paging. All ones is a fill, which the
 * comparison between fills catches.
 */
static bool has_kernel_pointer(const void *p, size_t size)
{
	for (size_t off = 0; off + 8 <= size; off += 4) {
		uint64_t w;

		memcpy(&w, (const char *)p + off, 8);
		if ((w >> 56) == 0xff && w != ~0ULL)
			return true;
	}
	return false;
}

/*
 * A status ioctl (@cmd, argument of @size bytes) with every fill: the
 * same bytes whatever the fill (every byte is the kernel's), nothing
 * written around them, no kernel pointer. The result goes to @st; a
 * description of the first problem to @why (empty when there is none).
 */
static int status_every_fill(int fd, unsigned long cmd, void *st, size_t size,
			     char *why, size_t whylen)
{
	unsigned char first[MAX_ARG], got[MAX_ARG];
	bool guards;
	int ret;

	why[0] = '\0';
	for (size_t i = 0; i < NFILLS; i++) {
		ret = guarded_ioctl(fd, cmd, NULL, got, size, fills[i], &guards);
		if (ret) {
			snprintf(why, whylen, "fill %#x: ioctl %d", fills[i], ret);
			return ret;
		}
		if (!guards)
			snprintf(why, whylen, "fill %#x: bytes around written",
				 fills[i]);
		else if (i && memcmp(first, got, size)) {
			for (size_t b = 0; b < size; b++)
				if (first[b] != got[b]) {
					snprintf(why, whylen,
						 "fill %#x: byte %zu is %#x, was %#x with fill %#x",
						 fills[i], b, got[b], first[b], fills[0]);
					break;
				}
		} else if (has_kernel_pointer(got, size)) {
			snprintf(why, whylen, "fill %#x: a kernel pointer",
				 fills[i]);
		}
		if (why[0])
			return 0;
		memcpy(first, got, size);
	}
	memcpy(st, first, size);
	return 0;
}

#define EXPECT_STATUS(fd, cmd, st) do {					\
	char why_[160];							\
	ASSERT_EQ(0, status_every_fill((fd), (cmd), (st), sizeof(*(st)),	\
				       why_, sizeof(why_)))		\
		TH_LOG("%s", why_);					\
	EXPECT_STREQ("", why_);						\
} while (0)

/* ------------------------------------------------------------------ */
/* Objects                                                              */

static int sem_new(uint64_t size)
{
	struct gosync_sem_create c = { .size = size };

	return xioctl(dev(), GOSYNC_IOC_SEM_CREATE, &c);
}

static int chan_new(uint32_t elem, uint32_t cap)
{
	struct gosync_chan_create c = { .elem_size = elem, .capacity = cap };

	return xioctl(dev(), GOSYNC_IOC_CHAN_CREATE, &c);
}

static int timer_new(uint64_t when, uint64_t period)
{
	struct gosync_timer_set t = { .when = when, .period = period };

	return xioctl(dev(), GOSYNC_IOC_TIMER_CREATE, &t);
}

static int lot_new(uint32_t kind, uint64_t param)
{
	struct gosync_lot_create c = { .kind = kind, .param = param };

	return xioctl(dev(), GOSYNC_IOC_LOT_CREATE, &c);
}

static int xfer(int fd, bool send, void *val, uint64_t deadline, uint32_t flags)
{
	struct gosync_chan_xfer x = {
		.value = (uintptr_t)val, .deadline = deadline, .flags = flags,
	};

	return xioctl(fd, send ? GOSYNC_IOC_CHAN_SEND : GOSYNC_IOC_CHAN_RECV, &x);
}

static int chan_st(int fd, struct gosync_chan_status *st)
{
	memset(st, 0xa5, sizeof(*st));
	return xioctl(fd, GOSYNC_IOC_CHAN_STATUS, st);
}

/* Wait until @fd has exactly @senders and @receivers queued. */
static int wait_queued(int fd, uint32_t senders, uint32_t receivers)
{
	struct gosync_chan_status st;
	uint64_t t0 = mono_ns();
	int ret;

	for (;;) {
		ret = chan_st(fd, &st);
		if (ret)
			return ret;
		if (st.send_waiters == senders && st.recv_waiters == receivers)
			return 0;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
}

/* Byte @j of value number @seed. */
static void pattern(unsigned char *p, size_t size, unsigned int seed)
{
	for (size_t j = 0; j < size; j++)
		p[j] = (unsigned char)(seed * 151u + j * 7u + 1u);
}

/* A blocking ioctl in a thread of its own. */
struct call {
	pthread_t thr;
	int fd;
	unsigned long cmd;
	void *arg;
	int ret;
	atomic_int done;
};

static void *call_thread(void *p)
{
	struct call *c = p;

	c->ret = xioctl(c->fd, c->cmd, c->arg);
	atomic_store(&c->done, 1);
	return NULL;
}

static int call_start(struct call *c, int fd, unsigned long cmd, void *arg)
{
	c->fd = fd;
	c->cmd = cmd;
	c->arg = arg;
	c->ret = -12345;
	atomic_store(&c->done, 0);
	return start_thread(&c->thr, call_thread, c);
}

/* Join @c (bounded): its ioctl's result, or -ETIMEDOUT. */
static int call_join(struct call *c)
{
	if (join_ms(c->thr, WAIT_LIMIT_MS))
		return -ETIMEDOUT;
	return c->ret;
}

/* ================================================================== */
/* 1. Results: every byte written, exactly, and nothing else           */

TEST(version_writes_its_outputs_and_nothing_else)
{
	struct gosync_version in, out;
	bool guards;

	ASSERT_LE(0, dev());
	for (size_t i = 0; i < NFILLS; i++) {
		memset(&in, fills[i], sizeof(in));
		in.flags = 0;
		memset(in.reserved, 0, sizeof(in.reserved));
		EXPECT_EQ(0, guarded_ioctl(dev(), GOSYNC_IOC_VERSION, &in, &out,
					   sizeof(out), fills[i], &guards));
		EXPECT_TRUE(guards) TH_LOG("fill %#x", fills[i]);
		EXPECT_EQ(GOSYNC_ABI_VERSION, out.abi_version);
		EXPECT_EQ(GS_TEST_ALL_FEATURES, out.features);
		EXPECT_EQ(0, out.flags);
		EXPECT_EQ(0, out.reserved[0]);
		EXPECT_EQ(0, out.reserved[1]);
	}
	/* A refused call writes nothing: its outputs keep the fill. */
	for (size_t i = 1; i < NFILLS; i++) {
		for (int which = 0; which < 3; which++) {
			memset(&in, fills[i], sizeof(in));
			in.flags = 0;
			memset(in.reserved, 0, sizeof(in.reserved));
			if (which == 0)
				in.flags = fills[i];
			else
				in.reserved[which - 1] = 1ULL << 40;
			EXPECT_EQ(-EINVAL, guarded_ioctl(dev(), GOSYNC_IOC_VERSION,
							 &in, &out, sizeof(out),
							 fills[i], &guards));
			EXPECT_TRUE(guards);
			EXPECT_EQ(0, memcmp(&in, &out, sizeof(in)))
				TH_LOG("fill %#x, field %d", fills[i], which);
		}
	}
}

/* The result fits exactly at the end of a page before an unmapped one. */
TEST(results_end_where_their_struct_ends)
{
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct {
		int fd;
		unsigned long cmd;
		size_t size;
	} calls[4];
	int sem, ch, lot;

	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, munmap(p + PAGE, PAGE));
	ASSERT_LE(0, sem = sem_new(3));
	ASSERT_LE(0, ch = chan_new(8, 2));
	ASSERT_LE(0, lot = lot_new(GOSYNC_LOT_MUTEX, 9));
	calls[0].fd = dev();
	calls[0].cmd = GOSYNC_IOC_VERSION;
	calls[0].size = sizeof(struct gosync_version);
	calls[1].fd = sem;
	calls[1].cmd = GOSYNC_IOC_SEM_STATUS;
	calls[1].size = sizeof(struct gosync_sem_status);
	calls[2].fd = ch;
	calls[2].cmd = GOSYNC_IOC_CHAN_STATUS;
	calls[2].size = sizeof(struct gosync_chan_status);
	calls[3].fd = lot;
	calls[3].cmd = GOSYNC_IOC_LOT_STATUS;
	calls[3].size = sizeof(struct gosync_lot_status);
	for (size_t i = 0; i < 4; i++) {
		char *arg = p + PAGE - calls[i].size;

		memset(p, 0, PAGE);
		EXPECT_EQ(0, xioctl(calls[i].fd, calls[i].cmd, arg))
			TH_LOG("call %zu", i);
		/* One byte further and the struct crosses into the hole. */
		EXPECT_EQ(-EFAULT, xioctl(calls[i].fd, calls[i].cmd, arg + 1))
			TH_LOG("call %zu", i);
		EXPECT_TRUE(all_bytes(p, 0, PAGE - calls[i].size - 8))
			TH_LOG("call %zu", i);
	}
	close(sem);
	close(ch);
	close(lot);
	munmap(p, PAGE);
}

struct sem_acq {
	struct call call;
	struct gosync_sem_acquire arg;
};

static int sem_waiters(int fd, uint32_t want)
{
	struct gosync_sem_status st;
	uint64_t t0 = mono_ns();

	for (;;) {
		if (xioctl(fd, GOSYNC_IOC_SEM_STATUS, &st))
			return -EIO;
		if (st.waiters == want)
			return 0;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
}

TEST(sem_status_every_byte_exact)
{
	struct gosync_sem_status st;
	struct sem_acq a = { .arg = { .count = 5, .deadline = limit() } };
	struct pollfd pfd;
	uint64_t n;
	int fd;

	ASSERT_LE(0, fd = sem_new(5));
	EXPECT_STATUS(fd, GOSYNC_IOC_SEM_STATUS, &st);
	EXPECT_EQ(5, st.size);
	EXPECT_EQ(5, st.state);
	EXPECT_EQ(0, st.waiters);
	EXPECT_EQ(0, st.reserved);
	EXPECT_EQ(0, st.slow_acquires);
	EXPECT_EQ(0, st.slow_releases);

	n = 2;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_SEM_TRY_ACQUIRE, &n));
	n = 1;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	EXPECT_STATUS(fd, GOSYNC_IOC_SEM_STATUS, &st);
	EXPECT_EQ(4, st.state);
	EXPECT_EQ(1, st.slow_acquires);
	EXPECT_EQ(1, st.slow_releases);

	/* A queued acquirer: WAITERS in the word, one waiter. */
	ASSERT_EQ(0, call_start(&a.call, fd, GOSYNC_IOC_SEM_ACQUIRE, &a.arg));
	ASSERT_EQ(0, sem_waiters(fd, 1));
	EXPECT_STATUS(fd, GOSYNC_IOC_SEM_STATUS, &st);
	EXPECT_EQ(5, st.size);
	EXPECT_EQ(GOSYNC_SEM_WAITERS | 4, st.state);
	EXPECT_EQ(1, st.waiters);
	EXPECT_EQ(0, st.reserved);
	EXPECT_EQ(2, st.slow_acquires);
	n = 1;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	EXPECT_EQ(0, call_join(&a.call));
	/* Empty: a poll finds nothing and leaves POLLED in the word. */
	pfd.fd = fd;
	pfd.events = POLLIN;
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	EXPECT_STATUS(fd, GOSYNC_IOC_SEM_STATUS, &st);
	EXPECT_EQ(GOSYNC_SEM_POLLED, st.state);
	EXPECT_EQ(0, st.waiters);
	EXPECT_EQ(0, st.reserved);
	EXPECT_EQ(2, st.slow_acquires);
	EXPECT_EQ(2, st.slow_releases);
	close(fd);
}

TEST(chan_status_every_byte_exact)
{
	struct gosync_chan_status st;
	unsigned char v[3] = { 1, 2, 3 };
	int fd;

	ASSERT_LE(0, fd = chan_new(3, 4));
	EXPECT_STATUS(fd, GOSYNC_IOC_CHAN_STATUS, &st);
	EXPECT_EQ(3, st.elem_size);
	EXPECT_EQ(4, st.capacity);
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(0, st.closed);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(0, st.sends);
	EXPECT_EQ(0, st.recvs);
	EXPECT_EQ(0, st.slow_ops);
	EXPECT_EQ(0, st.kicks);

	EXPECT_EQ(0, xfer(fd, true, v, 0, GOSYNC_CHAN_TRY));
	EXPECT_EQ(0, xfer(fd, true, v, 0, GOSYNC_CHAN_TRY));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_CHAN_KICK, NULL));
	EXPECT_EQ(1, xfer(fd, false, v, 0, GOSYNC_CHAN_TRY));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_CHAN_CLOSE, NULL));
	EXPECT_STATUS(fd, GOSYNC_IOC_CHAN_STATUS, &st);
	EXPECT_EQ(3, st.elem_size);
	EXPECT_EQ(4, st.capacity);
	EXPECT_EQ(1, st.len);
	EXPECT_EQ(1, st.closed);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(2, st.sends);
	EXPECT_EQ(1, st.recvs);
	EXPECT_EQ(3, st.slow_ops);
	EXPECT_EQ(1, st.kicks);
	close(fd);
}

TEST(chan_status_counts_queued_waiters_exactly)
{
	struct gosync_chan_status st;
	struct gosync_chan_xfer x[2];
	struct call c[2];
	uint64_t v = 7, got[2] = { 0, 0 };
	int fd;

	ASSERT_LE(0, fd = chan_new(8, 0));
	for (int i = 0; i < 2; i++) {
		x[i] = (struct gosync_chan_xfer){
			.value = (uintptr_t)&got[i], .deadline = limit(),
		};
		ASSERT_EQ(0, call_start(&c[i], fd, GOSYNC_IOC_CHAN_RECV, &x[i]));
	}
	ASSERT_EQ(0, wait_queued(fd, 0, 2));
	EXPECT_STATUS(fd, GOSYNC_IOC_CHAN_STATUS, &st);
	EXPECT_EQ(8, st.elem_size);
	EXPECT_EQ(0, st.capacity);
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(0, st.closed);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(2, st.recv_waiters);
	EXPECT_EQ(0, st.sends);
	EXPECT_EQ(0, st.recvs);
	EXPECT_EQ(2, st.slow_ops);
	EXPECT_EQ(0, st.kicks);
	EXPECT_EQ(0, xfer(fd, true, &v, limit(), 0));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_CHAN_CLOSE, NULL));
	EXPECT_EQ(1, call_join(&c[0]) + call_join(&c[1]));
	EXPECT_EQ(7, got[0] + got[1]);
	EXPECT_STATUS(fd, GOSYNC_IOC_CHAN_STATUS, &st);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(1, st.closed);
	EXPECT_EQ(1, st.sends);
	EXPECT_EQ(1, st.recvs);
	EXPECT_EQ(3, st.slow_ops);
	close(fd);
}

TEST(timer_status_and_value_exact)
{
	struct gosync_chan_status st;
	uint64_t t0 = mono_ns(), got;
	int fd;

	ASSERT_LE(0, fd = timer_new(t0, 0));
	/* Fired at once (its time has passed): held until received. */
	for (;;) {
		ASSERT_EQ(0, chan_st(fd, &st));
		if (st.len == 1 || ms_since(t0) > WAIT_LIMIT_MS)
			break;
		usleep(500);
	}
	EXPECT_STATUS(fd, GOSYNC_IOC_CHAN_STATUS, &st);
	EXPECT_EQ(8, st.elem_size);
	EXPECT_EQ(1, st.capacity);
	EXPECT_EQ(1, st.len);
	EXPECT_EQ(0, st.closed);
	EXPECT_EQ(0, st.send_waiters);
	EXPECT_EQ(0, st.recv_waiters);
	EXPECT_EQ(1, st.sends);
	EXPECT_EQ(0, st.recvs);
	EXPECT_EQ(0, st.slow_ops);
	EXPECT_EQ(0, st.kicks);
	got = 0xa5a5a5a5a5a5a5a5ULL;
	EXPECT_EQ(1, xfer(fd, false, &got, 0, GOSYNC_CHAN_TRY));
	EXPECT_LE(t0, got);
	EXPECT_GE(mono_ns(), got);
	EXPECT_STATUS(fd, GOSYNC_IOC_CHAN_STATUS, &st);
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(1, st.sends);
	EXPECT_EQ(1, st.recvs);
	EXPECT_EQ(1, st.slow_ops);
	close(fd);
}

static int lot_parked(int fd, uint32_t want)
{
	struct gosync_lot_status st;
	uint64_t t0 = mono_ns();

	for (;;) {
		if (xioctl(fd, GOSYNC_IOC_LOT_STATUS, &st))
			return -EIO;
		if (st.parked == want)
			return 0;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
}

/*
 * The creation flags: GOSYNC_LOT_CHECKED for a Mutex or RWMutex only,
 * reported by the status; the shorter status of modules without
 * LOCK_CHECK writes its 40 bytes only.
 */
TEST(lot_checked_flag_created_reported_and_refused_elsewhere)
{
	struct gosync_lot_create c = { .kind = GOSYNC_LOT_MUTEX,
				       .flags = GOSYNC_LOT_CHECKED };
	struct gosync_lot_status st;
	char raw[48];
	int fd;

	ASSERT_LE(0, fd = xioctl(dev(), GOSYNC_IOC_LOT_CREATE, &c));
	EXPECT_STATUS(fd, GOSYNC_IOC_LOT_STATUS, &st);
	EXPECT_EQ(GOSYNC_LOT_MUTEX, st.kind);
	EXPECT_EQ(GOSYNC_LOT_CHECKED, st.flags);
	EXPECT_EQ(0, st.reserved);
	memset(raw, 0x5a, sizeof(raw));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_STATUS_V1, raw));
	EXPECT_EQ(GOSYNC_LOT_MUTEX, *(uint32_t *)raw);
	for (size_t i = 40; i < sizeof(raw); i++)
		EXPECT_EQ(0x5a, (unsigned char)raw[i]);
	/* An old library's status read: it unlocks from any thread. */
	EXPECT_STATUS(fd, GOSYNC_IOC_LOT_STATUS, &st);
	EXPECT_EQ(0, st.flags);
	EXPECT_EQ(0, fdinfo_num(fd, "checked"));
	close(fd);

	c.kind = GOSYNC_LOT_RWMUTEX;
	ASSERT_LE(0, fd = xioctl(dev(), GOSYNC_IOC_LOT_CREATE, &c));
	EXPECT_STATUS(fd, GOSYNC_IOC_LOT_STATUS, &st);
	EXPECT_EQ(GOSYNC_LOT_CHECKED, st.flags);
	EXPECT_EQ(1, fdinfo_num(fd, "checked"));
	close(fd);
	for (uint32_t kind = 0; kind <= GOSYNC_LOT_KIND_MAX; kind++) {
		if (kind == GOSYNC_LOT_MUTEX || kind == GOSYNC_LOT_RWMUTEX)
			continue;
		c.kind = kind;
		EXPECT_EQ(-EINVAL, xioctl(dev(), GOSYNC_IOC_LOT_CREATE, &c))
			TH_LOG("kind %u", kind);
	}
	c.kind = GOSYNC_LOT_MUTEX;
	c.flags = GOSYNC_LOT_CHECKED << 1;
	EXPECT_EQ(-EINVAL, xioctl(dev(), GOSYNC_IOC_LOT_CREATE, &c));
	c.flags = 0;
	ASSERT_LE(0, fd = xioctl(dev(), GOSYNC_IOC_LOT_CREATE, &c));
	EXPECT_STATUS(fd, GOSYNC_IOC_LOT_STATUS, &st);
	EXPECT_EQ(0, st.flags);
	close(fd);
}

TEST(lot_status_every_byte_exact)
{
	struct gosync_lot_park park = { .index = 3, .mask = 1, .expected = 1 };
	struct gosync_lot_unpark unpark = { .index = 3, .count = 1 };
	struct gosync_lot_status st;
	struct call c;
	int fd;

	ASSERT_LE(0, fd = lot_new(GOSYNC_LOT_BARRIER, 0x0123456789abcdefULL));
	EXPECT_STATUS(fd, GOSYNC_IOC_LOT_STATUS, &st);
	EXPECT_EQ(GOSYNC_LOT_BARRIER, st.kind);
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(0x0123456789abcdefULL, st.param);
	EXPECT_EQ(0, st.parks);
	EXPECT_EQ(0, st.unparks);
	EXPECT_EQ(0, st.woken);

	/* The word is 0, not 1: the park returns at once. */
	EXPECT_EQ(-EAGAIN, xioctl(fd, GOSYNC_IOC_LOT_PARK, &park));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_UNPARK, &unpark));
	park.expected = 0;
	park.deadline = limit();
	ASSERT_EQ(0, call_start(&c, fd, GOSYNC_IOC_LOT_PARK, &park));
	ASSERT_EQ(0, lot_parked(fd, 1));
	EXPECT_STATUS(fd, GOSYNC_IOC_LOT_STATUS, &st);
	EXPECT_EQ(GOSYNC_LOT_BARRIER, st.kind);
	EXPECT_EQ(1, st.parked);
	EXPECT_EQ(0x0123456789abcdefULL, st.param);
	EXPECT_EQ(2, st.parks);
	EXPECT_EQ(1, st.unparks);
	EXPECT_EQ(0, st.woken);
	EXPECT_EQ(1, xioctl(fd, GOSYNC_IOC_LOT_UNPARK, &unpark));
	EXPECT_EQ(0, call_join(&c));
	EXPECT_STATUS(fd, GOSYNC_IOC_LOT_STATUS, &st);
	EXPECT_EQ(0, st.parked);
	EXPECT_EQ(2, st.parks);
	EXPECT_EQ(2, st.unparks);
	EXPECT_EQ(1, st.woken);
	close(fd);

	/* Every kind, and a param with all bits set, come back as given. */
	for (uint32_t kind = 0; kind <= GOSYNC_LOT_KIND_MAX; kind++) {
		struct gosync_lot_status raw;
		bool guards;

		ASSERT_LE(0, fd = lot_new(kind, ~0ULL - kind));
		for (size_t i = 0; i < NFILLS; i++) {
			EXPECT_EQ(0, guarded_ioctl(fd, GOSYNC_IOC_LOT_STATUS, NULL,
						   &raw, sizeof(raw), fills[i],
						   &guards));
			EXPECT_TRUE(guards);
			EXPECT_EQ(kind, raw.kind);
			EXPECT_EQ(0, raw.parked);
			EXPECT_EQ(~0ULL - kind, raw.param);
			EXPECT_EQ(0, raw.parks);
			EXPECT_EQ(0, raw.unparks);
			EXPECT_EQ(0, raw.woken);
		}
		close(fd);
	}
}

/* ------------------------------------------------------------------ */
/* Select: @index and @ok only, on success; nothing on failure          */

/*
 * One select of @n @cases with @flags, its argument in a guarded buffer
 * of @fill: its result; *@out the argument after the call, *@guards_ok
 * whether the buffer around it and the case array are unchanged.
 */
static int guarded_select(struct gosync_select_case *cases, uint32_t n,
			  uint32_t flags, uint64_t deadline, unsigned char fill,
			  struct gosync_select *in, struct gosync_select *out,
			  bool *guards_ok)
{
	struct gosync_select_case before[8];
	bool guards;
	int ret;

	memcpy(before, cases, n * sizeof(*cases));
	memset(in, fill, sizeof(*in));
	in->cases = (uintptr_t)cases;
	in->ncases = n;
	in->flags = flags;
	in->deadline = deadline;
	ret = guarded_ioctl(dev(), GOSYNC_IOC_SELECT, in, out, sizeof(*out),
			    fill, &guards);
	*guards_ok = guards && !memcmp(before, cases, n * sizeof(*cases));
	return ret;
}

TEST(select_writes_index_and_ok_only)
{
	struct gosync_select_case cs[4];
	struct gosync_select in, out;
	uint64_t v, dst;
	bool guards;
	int buf, unbuf, closed;

	ASSERT_LE(0, dev());
	ASSERT_LE(0, buf = chan_new(8, 1));
	ASSERT_LE(0, unbuf = chan_new(8, 0));
	ASSERT_LE(0, closed = chan_new(8, 0));
	ASSERT_EQ(0, xioctl(closed, GOSYNC_IOC_CHAN_CLOSE, NULL));

	for (size_t i = 0; i < NFILLS; i++) {
		unsigned char f = fills[i];

		/* A receive that commits: index 1, ok 1, the value. */
		v = 0x1122334455667788ULL + i;
		ASSERT_EQ(0, xfer(buf, true, &v, 0, GOSYNC_CHAN_TRY));
		dst = 0;
		cs[0] = (struct gosync_select_case){ GOSYNC_SELECT_NIL,
						     GOSYNC_SELECT_RECV, 0 };
		cs[1] = (struct gosync_select_case){ buf, GOSYNC_SELECT_RECV,
						     (uintptr_t)&dst };
		EXPECT_EQ(0, guarded_select(cs, 2, 0, limit(), f, &in, &out,
					    &guards));
		EXPECT_TRUE(guards);
		EXPECT_EQ(in.cases, out.cases);
		EXPECT_EQ(in.ncases, out.ncases);
		EXPECT_EQ(in.flags, out.flags);
		EXPECT_EQ(in.deadline, out.deadline);
		EXPECT_EQ(1, out.index);
		EXPECT_EQ(1, out.ok);
		EXPECT_EQ(v, dst);

		/* A send that commits: index 0, ok 0. */
		cs[0] = (struct gosync_select_case){ buf, GOSYNC_SELECT_SEND,
						     (uintptr_t)&v };
		EXPECT_EQ(0, guarded_select(cs, 1, GOSYNC_SELECT_DEFAULT, 0, f,
					    &in, &out, &guards));
		EXPECT_TRUE(guards);
		EXPECT_EQ(0, out.index);
		EXPECT_EQ(0, out.ok);
		EXPECT_EQ(0, memcmp(&in, &out, offsetof(struct gosync_select, index)));
		EXPECT_EQ(1, xfer(buf, false, NULL, 0, GOSYNC_CHAN_TRY));

		/* A closed receive: ok 0, the zero value. */
		dst = ~0ULL;
		cs[0] = (struct gosync_select_case){ unbuf, GOSYNC_SELECT_RECV,
						     (uintptr_t)&dst };
		cs[1] = (struct gosync_select_case){ closed, GOSYNC_SELECT_RECV,
						     (uintptr_t)&dst };
		EXPECT_EQ(0, guarded_select(cs, 2, GOSYNC_SELECT_DEFAULT, 0, f,
					    &in, &out, &guards));
		EXPECT_TRUE(guards);
		EXPECT_EQ(1, out.index);
		EXPECT_EQ(0, out.ok);
		EXPECT_EQ(0, dst);

		/* A send on a closed channel: -EPIPE, index set, ok 0. */
		cs[0] = (struct gosync_select_case){ GOSYNC_SELECT_NIL,
						     GOSYNC_SELECT_SEND, 0 };
		cs[1] = (struct gosync_select_case){ closed, GOSYNC_SELECT_SEND,
						     (uintptr_t)&v };
		EXPECT_EQ(-EPIPE, guarded_select(cs, 2, GOSYNC_SELECT_DEFAULT, 0,
						 f, &in, &out, &guards));
		EXPECT_TRUE(guards);
		EXPECT_EQ(1, out.index);
		EXPECT_EQ(0, out.ok);
		EXPECT_EQ(0, memcmp(&in, &out, offsetof(struct gosync_select, index)));
	}

	/* Failures write nothing: index and ok keep the fill. */
	for (size_t i = 1; i < NFILLS; i++) {
		unsigned char f = fills[i];
		static const int want[] = { -EAGAIN, -ETIMEDOUT, -EINVAL,
					    -EBADF, -EINVAL, -EPERM };
		int timer;

		ASSERT_LE(0, timer = timer_new(GOSYNC_DEADLINE_NONE, 0));
		for (int k = 0; k < 6; k++) {
			uint32_t flags = k == 0 ? GOSYNC_SELECT_DEFAULT : 0;
			uint64_t dl = k == 0 ? GOSYNC_DEADLINE_NONE : 0;

			dst = 0x5a5a;
			cs[0] = (struct gosync_select_case){ unbuf,
				GOSYNC_SELECT_RECV, (uintptr_t)&dst };
			if (k == 2)
				cs[0].op = 3;
			if (k == 3)
				cs[0].fd = 1000000;
			if (k == 4)
				cs[0].fd = dev();	/* not a channel */
			if (k == 5) {
				cs[0].fd = timer;
				cs[0].op = GOSYNC_SELECT_SEND;
			}
			EXPECT_EQ(want[k], guarded_select(cs, 1, flags, dl, f,
							  &in, &out, &guards))
				TH_LOG("case %d", k);
			EXPECT_TRUE(guards);
			EXPECT_EQ(0, memcmp(&in, &out, sizeof(in)))
				TH_LOG("case %d fill %#x: index %#x ok %#x",
				       k, f, out.index, out.ok);
			EXPECT_EQ(0x5a5a, dst);
		}
		close(timer);
	}
	close(buf);
	close(unbuf);
	close(closed);
}

/* ------------------------------------------------------------------ */
/* Received values: exactly elem_size bytes, on every path             */

FIXTURE(value) {
	int fd;
	size_t size;
	unsigned char *dst;	/* GUARD + size + GUARD */
	unsigned char *src;
};

FIXTURE_VARIANT(value) {
	uint32_t size;
};

/* Around the kernel's 64-byte on-stack buffer, and far beyond it. */
FIXTURE_VARIANT_ADD(value, b1) { .size = 1 };
FIXTURE_VARIANT_ADD(value, b3) { .size = 3 };
FIXTURE_VARIANT_ADD(value, b8) { .size = 8 };
FIXTURE_VARIANT_ADD(value, b9) { .size = 9 };
FIXTURE_VARIANT_ADD(value, b63) { .size = 63 };
FIXTURE_VARIANT_ADD(value, b64) { .size = 64 };
FIXTURE_VARIANT_ADD(value, b65) { .size = 65 };
FIXTURE_VARIANT_ADD(value, b4099) { .size = 4099 };
FIXTURE_VARIANT_ADD(value, b65536) { .size = GOSYNC_CHAN_ELEM_MAX };

FIXTURE_SETUP(value)
{
	self->size = variant->size;
	self->dst = malloc(self->size + 2 * GUARD);
	self->src = malloc(self->size);
	ASSERT_NE(NULL, self->dst);
	ASSERT_NE(NULL, self->src);
	ASSERT_LE(0, dev());
}

FIXTURE_TEARDOWN(value)
{
	free(self->dst);
	free(self->src);
}

/* Fill the guarded destination with @f; its value starts at GUARD. */
static unsigned char *dst_fill(unsigned char *dst, size_t size, unsigned char f)
{
	memset(dst, f, size + 2 * GUARD);
	return dst + GUARD;
}

/* The guards still hold @f and the value is @want (NULL: all zero). */
static bool dst_check(const unsigned char *dst, size_t size, unsigned char f,
		      const unsigned char *want)
{
	if (!all_bytes(dst, f, GUARD) || !all_bytes(dst + GUARD + size, f, GUARD))
		return false;
	return want ? !memcmp(dst + GUARD, want, size) :
		      all_bytes(dst + GUARD, 0, size);
}

/* Receive through RECV (@sel false) or a select of one case. */
static int recv_via(int fd, void *val, uint64_t deadline, bool sel, bool try)
{
	struct gosync_select_case c = { fd, GOSYNC_SELECT_RECV, (uintptr_t)val };
	struct gosync_select s = {
		.cases = (uintptr_t)&c, .ncases = 1, .deadline = deadline,
		.flags = try ? GOSYNC_SELECT_DEFAULT : 0,
	};
	int ret;

	if (!sel)
		return xfer(fd, false, val, deadline, try ? GOSYNC_CHAN_TRY : 0);
	ret = xioctl(dev(), GOSYNC_IOC_SELECT, &s);
	return ret ? ret : (int)s.ok;
}

struct recv_thread {
	struct call call;
	struct gosync_chan_xfer x;
};

TEST_F(value, from_the_ring_and_a_closed_channel)
{
	const size_t n = self->size;

	for (int sel = 0; sel < 2; sel++) {
		for (size_t i = 1; i < NFILLS; i++) {
			unsigned char f = fills[i];
			int fd;

			ASSERT_LE(0, fd = chan_new((uint32_t)n, 2));
			pattern(self->src, n, (unsigned int)i);
			ASSERT_EQ(0, xfer(fd, true, self->src, 0, GOSYNC_CHAN_TRY));
			ASSERT_EQ(0, xioctl(fd, GOSYNC_IOC_CHAN_CLOSE, NULL));
			EXPECT_EQ(1, recv_via(fd, dst_fill(self->dst, n, f), 0,
					      sel, true));
			EXPECT_TRUE(dst_check(self->dst, n, f, self->src))
				TH_LOG("ring, select %d, fill %#x", sel, f);
			/* Closed and drained: exactly n zero bytes. */
			EXPECT_EQ(0, recv_via(fd, dst_fill(self->dst, n, f), 0,
					      sel, true));
			EXPECT_TRUE(dst_check(self->dst, n, f, NULL))
				TH_LOG("closed, select %d, fill %#x", sel, f);
			close(fd);
		}
	}
}

TEST_F(value, from_a_queued_sender)
{
	const size_t n = self->size;

	for (int sel = 0; sel < 2; sel++) {
		for (size_t i = 1; i < NFILLS; i++) {
			unsigned char f = fills[i];
			struct recv_thread s;
			int fd;

			ASSERT_LE(0, fd = chan_new((uint32_t)n, 0));
			pattern(self->src, n, (unsigned int)(i + 10));
			s.x = (struct gosync_chan_xfer){
				.value = (uintptr_t)self->src, .deadline = limit(),
			};
			ASSERT_EQ(0, call_start(&s.call, fd, GOSYNC_IOC_CHAN_SEND,
						&s.x));
			ASSERT_EQ(0, wait_queued(fd, 1, 0));
			EXPECT_EQ(1, recv_via(fd, dst_fill(self->dst, n, f), 0,
					      sel, true));
			EXPECT_EQ(0, call_join(&s.call));
			EXPECT_TRUE(dst_check(self->dst, n, f, self->src))
				TH_LOG("hand-off, select %d, fill %#x", sel, f);
			close(fd);
		}
	}
}

/*
 * Queued receivers (RECV, or a select: its value buffer is the kernel's
 * own allocation) served by a sender, then by the close.
 */
struct queued_recv {
	struct call call;
	struct gosync_chan_xfer x;
	struct gosync_select_case c;
	struct gosync_select s;
};

TEST_F(value, to_a_queued_receiver)
{
	const size_t n = self->size;

	for (int sel = 0; sel < 2; sel++) {
		for (size_t i = 1; i < NFILLS; i++) {
			for (int closing = 0; closing < 2; closing++) {
				unsigned char f = fills[i];
				unsigned char *d = dst_fill(self->dst, n, f);
				struct queued_recv r;
				int fd, ret;

				ASSERT_LE(0, fd = chan_new((uint32_t)n, closing));
				pattern(self->src, n, (unsigned int)(i + 20));
				r.x = (struct gosync_chan_xfer){
					.value = (uintptr_t)d, .deadline = limit(),
				};
				r.c = (struct gosync_select_case){
					fd, GOSYNC_SELECT_RECV, (uintptr_t)d,
				};
				memset(&r.s, 0xa5, sizeof(r.s));
				r.s.cases = (uintptr_t)&r.c;
				r.s.ncases = 1;
				r.s.flags = 0;
				r.s.deadline = limit();
				ASSERT_EQ(0, sel ? call_start(&r.call, dev(),
							      GOSYNC_IOC_SELECT, &r.s) :
						   call_start(&r.call, fd,
							      GOSYNC_IOC_CHAN_RECV, &r.x));
				ASSERT_EQ(0, wait_queued(fd, 0, 1));
				if (closing) {
					EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_CHAN_CLOSE,
							    NULL));
				} else {
					EXPECT_EQ(0, xfer(fd, true, self->src,
							  limit(), 0));
				}
				ret = call_join(&r.call);
				if (sel) {
					EXPECT_EQ(0, ret);
					EXPECT_EQ(0, r.s.index);
					EXPECT_EQ((uint32_t)!closing, r.s.ok);
				} else {
					EXPECT_EQ(!closing, ret);
				}
				EXPECT_TRUE(dst_check(self->dst, n, f,
						      closing ? NULL : self->src))
					TH_LOG("select %d closing %d, fill %#x",
					       sel, closing, f);
				close(fd);
			}
		}
	}
}

/* The tick of a timer is one __u64, to RECV and to a select. */
TEST(timer_value_is_eight_bytes)
{
	unsigned char dst[8 + 2 * GUARD];
	uint64_t t0, tick;

	ASSERT_LE(0, dev());
	for (int sel = 0; sel < 2; sel++) {
		for (size_t i = 1; i < NFILLS; i++) {
			int fd;

			t0 = mono_ns();
			ASSERT_LE(0, fd = timer_new(t0, 0));
			EXPECT_EQ(1, recv_via(fd, dst_fill(dst, 8, fills[i]),
					      limit(), sel, false));
			EXPECT_TRUE(all_bytes(dst, fills[i], GUARD));
			EXPECT_TRUE(all_bytes(dst + GUARD + 8, fills[i], GUARD));
			memcpy(&tick, dst + GUARD, 8);
			EXPECT_LE(t0, tick);
			EXPECT_GE(mono_ns(), tick);
			close(fd);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Input-only arguments are never written                              */

/*
 * Each ioctl of the _IOW kind reads its argument and must not write it:
 * with the argument in a read-only page, every call still gives its
 * usual result (a write would be -EFAULT).
 */
TEST(input_arguments_work_from_read_only_memory)
{
	unsigned char *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct gosync_sem_create *sc = (void *)(ro + 0);
	struct gosync_chan_create *cc = (void *)(ro + 64);
	struct gosync_timer_set *ts = (void *)(ro + 128);
	struct gosync_lot_create *lc = (void *)(ro + 192);
	struct gosync_sem_acquire *sa = (void *)(ro + 256);
	uint64_t *one = (void *)(ro + 320);
	struct gosync_chan_xfer *sx = (void *)(ro + 384);
	struct gosync_chan_xfer *rx = (void *)(ro + 448);
	struct gosync_lot_park *lp = (void *)(ro + 512);
	struct gosync_lot_unpark *lu = (void *)(ro + 576);
	struct gosync_lot_cond_wait *cw = (void *)(ro + 640);
	uint32_t *notify = (void *)(ro + 704);
	uint64_t *value = (void *)(ro + 768);
	struct gosync_select_case *cases = (void *)(ro + 832);
	struct gosync_select sel;
	uint64_t got = 0;
	int sem, ch, timer, lot, cond;

	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_LE(0, dev());
	*sc = (struct gosync_sem_create){ .size = 4 };
	*cc = (struct gosync_chan_create){ .elem_size = 8, .capacity = 2 };
	*ts = (struct gosync_timer_set){ .when = GOSYNC_DEADLINE_NONE };
	*lc = (struct gosync_lot_create){ .kind = GOSYNC_LOT_COND, .param = 1 };
	*sa = (struct gosync_sem_acquire){ .count = 1, .deadline = 0 };
	*one = 1;
	*value = 42;
	*sx = (struct gosync_chan_xfer){ .value = (uintptr_t)value };
	*rx = (struct gosync_chan_xfer){ .value = (uintptr_t)&got,
					 .flags = GOSYNC_CHAN_TRY };
	*lp = (struct gosync_lot_park){ .index = 2, .mask = 1, .expected = 1 };
	*lu = (struct gosync_lot_unpark){ .index = 2, .count = GOSYNC_LOT_ALL };
	*cw = (struct gosync_lot_cond_wait){ .ticket = 5 };
	*notify = 1;
	ASSERT_EQ(0, mprotect(ro, PAGE, PROT_READ));

	EXPECT_LE(0, sem = xioctl(dev(), GOSYNC_IOC_SEM_CREATE, sc));
	EXPECT_LE(0, ch = xioctl(dev(), GOSYNC_IOC_CHAN_CREATE, cc));
	EXPECT_LE(0, timer = xioctl(dev(), GOSYNC_IOC_TIMER_CREATE, ts));
	EXPECT_LE(0, lot = xioctl(dev(), GOSYNC_IOC_LOT_CREATE, lc));
	EXPECT_LE(0, cond = lot);
	EXPECT_EQ(0, xioctl(sem, GOSYNC_IOC_SEM_ACQUIRE, sa));
	EXPECT_EQ(0, xioctl(sem, GOSYNC_IOC_SEM_TRY_ACQUIRE, one));
	EXPECT_EQ(0, xioctl(sem, GOSYNC_IOC_SEM_RELEASE, one));
	EXPECT_EQ(0, xioctl(ch, GOSYNC_IOC_CHAN_SEND, sx));
	EXPECT_EQ(1, xioctl(ch, GOSYNC_IOC_CHAN_RECV, rx));
	EXPECT_EQ(42, got);
	EXPECT_EQ(0, xioctl(timer, GOSYNC_IOC_TIMER_RESET, ts));
	EXPECT_EQ(-EAGAIN, xioctl(lot, GOSYNC_IOC_LOT_PARK, lp));
	EXPECT_EQ(0, xioctl(lot, GOSYNC_IOC_LOT_UNPARK, lu));
	/* Ticket 5 was never issued. */
	EXPECT_EQ(-EINVAL, xioctl(cond, GOSYNC_IOC_LOT_COND_WAIT, cw));
	EXPECT_EQ(0, xioctl(cond, GOSYNC_IOC_LOT_COND_NOTIFY, notify));
	/* The case array of a select is input only too. */
	ASSERT_EQ(0, mprotect(ro, PAGE, PROT_READ | PROT_WRITE));
	cases[0] = (struct gosync_select_case){ ch, GOSYNC_SELECT_SEND,
						(uintptr_t)value };
	ASSERT_EQ(0, mprotect(ro, PAGE, PROT_READ));
	sel = (struct gosync_select){ .cases = (uintptr_t)cases, .ncases = 1,
				      .flags = GOSYNC_SELECT_DEFAULT };
	EXPECT_EQ(0, xioctl(dev(), GOSYNC_IOC_SELECT, &sel));
	EXPECT_EQ(0, sel.index);
	/* And the receive's value is the one output: read-only, -EFAULT. */
	EXPECT_EQ(-EFAULT, xfer(ch, false, value, 0, GOSYNC_CHAN_TRY));
	EXPECT_EQ(42, *value);
	close(sem);
	close(ch);
	close(timer);
	close(lot);
	munmap(ro, PAGE);
}

/* ------------------------------------------------------------------ */
/* Shared pages and fdinfo                                             */

TEST(shared_pages_hold_only_what_the_abi_says)
{
	uint64_t *w, v;
	int sem, lot, ch;

	ASSERT_LE(0, dev());
	ASSERT_LE(0, sem = sem_new(77));
	w = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, sem, 0);
	ASSERT_NE(MAP_FAILED, w);
	EXPECT_EQ(77, w[0]);
	EXPECT_TRUE(all_bytes(w + 1, 0, PAGE - 8));
	munmap(w, PAGE);
	close(sem);

	ASSERT_LE(0, lot = lot_new(GOSYNC_LOT_COND, 5));
	w = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, lot, 0);
	ASSERT_NE(MAP_FAILED, w);
	EXPECT_TRUE(all_bytes(w, 0, PAGE));
	munmap(w, PAGE);
	close(lot);

	/*
	 * A ring of 1-byte values: a header page, then 5 slots of 16 bytes
	 * (sequence, value, 7 bytes of padding) in one page. Values the
	 * kernel pushes fill their byte and nothing else.
	 */
	ASSERT_LE(0, ch = chan_new(1, 5));
	w = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ch, 0);
	ASSERT_NE(MAP_FAILED, w);
	EXPECT_TRUE(all_bytes(w, 0, PAGE));
	for (uint64_t i = 0; i < 5; i++) {
		EXPECT_EQ(2 * i, w[PAGE / 8 + 2 * i]);
		EXPECT_EQ(0, w[PAGE / 8 + 2 * i + 1]);
	}
	EXPECT_TRUE(all_bytes((char *)w + PAGE + 5 * 16, 0, PAGE - 5 * 16));
	v = ~0ULL;
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(0, xfer(ch, true, &v, 0, GOSYNC_CHAN_TRY));
	}
	EXPECT_EQ(3, w[0]);			/* tail */
	EXPECT_EQ(0, w[8]);			/* head */
	EXPECT_TRUE(all_bytes(w + 1, 0, 7 * 8));
	EXPECT_TRUE(all_bytes(w + 9, 0, PAGE - 9 * 8));
	for (uint64_t i = 0; i < 5; i++) {
		EXPECT_EQ(i < 3 ? 2 * i + 1 : 2 * i, w[PAGE / 8 + 2 * i]);
		EXPECT_EQ(i < 3 ? 0xff : 0, w[PAGE / 8 + 2 * i + 1]);
	}
	EXPECT_TRUE(all_bytes((char *)w + PAGE + 5 * 16, 0, PAGE - 5 * 16));
	munmap(w, 2 * PAGE);
	close(ch);
}

/*
 * The value of every line of an object's fdinfo is a decimal number
 * below 2^47 (or octal flags), or a word; none is a hex number or a
 * large one that could be an address.
 */
static bool fdinfo_clean(int fd, char *why, size_t whylen)
{
	char buf[4096], *line, *save = NULL;

	if (fdinfo_read(fd, buf, sizeof(buf))) {
		snprintf(why, whylen, "fdinfo of %d unreadable", fd);
		return false;
	}
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *val = strchr(line, ':');

		if (!val) {
			snprintf(why, whylen, "line without a key: '%s'", line);
			return false;
		}
		for (val++; *val == '\t' || *val == ' '; val++)
			;
		if (!strncmp(line, "flags:", 6) && isdigit((unsigned char)*val))
			continue;	/* the file's octal f_flags */
		if (isdigit((unsigned char)*val) || *val == '-') {
			char *end;
			long long n = strtoll(val, &end, 10);

			if (*end || n >= (1LL << 47) || n < -(1LL << 40)) {
				snprintf(why, whylen, "line '%s'", line);
				return false;
			}
			continue;
		}
		for (char *c = val; *c; c++)
			if (!islower((unsigned char)*c) && *c != ' ' && *c != '-') {
				snprintf(why, whylen, "line '%s'", line);
				return false;
			}
	}
	why[0] = '\0';
	return true;
}

TEST(fdinfo_prints_no_kernel_pointer)
{
	int fds[8], n = 0;
	char why[256];
	struct pollfd pfd;
	uint64_t v = 1;

	ASSERT_LE(0, dev());
	ASSERT_LE(0, fds[n++] = sem_new(0));
	ASSERT_LE(0, fds[n++] = chan_new(8, 0));
	ASSERT_LE(0, fds[n++] = chan_new(8, 3));
	ASSERT_LE(0, fds[n++] = timer_new(mono_ns(), 1000000000ULL));
	for (uint32_t kind = GOSYNC_LOT_PLAIN; kind <= GOSYNC_LOT_COND; kind += 5) {
		ASSERT_LE(0, fds[n++] = lot_new(kind, 3));
	}
	EXPECT_EQ(0, xfer(fds[2], true, &v, 0, GOSYNC_CHAN_TRY));
	/* The flags words of the semaphore show up too. */
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	for (int i = 0; i < n; i++) {
		EXPECT_TRUE(fdinfo_clean(fds[i], why, sizeof(why)))
			TH_LOG("fd %d: %s", i, why);
	}
	EXPECT_EQ(3, fdinfo_num(fds[n - 1], "param"));
	EXPECT_EQ(1, fdinfo_num(fds[2], "len"));
	EXPECT_EQ(3, fdinfo_num(fds[2], "cap"));
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* ================================================================== */
/* 2. Boundary inputs of the module's size arithmetic                  */

static int create_result(uint32_t elem, uint32_t cap)
{
	int fd = chan_new(elem, cap);

	if (fd >= 0)
		close(fd);
	return fd < 0 ? fd : 0;
}

/*
 * The slot size, 8 + elem rounded up to 8, wraps in 32 bits for element
 * sizes near 2^32 (0xfffffff9 would be an 8-byte slot), and the buffer,
 * slot size times capacity, wraps in 32 bits at 65544 * 65536 (2^32 +
 * 524288: half a MiB after the wrap). Both are refused, not wrapped.
 */
TEST(chan_sizes_that_would_wrap_are_refused)
{
	static const uint32_t bad_elem[] = {
		GOSYNC_CHAN_ELEM_MAX + 1, 0x7fffffff, 0x80000000,
		0xfffffff8, 0xfffffff9, 0xffffffff,
	};
	long long maxcap = read_param("max_capacity");
	long long maxbuf = read_param("max_buffer_bytes");

	ASSERT_LE(0, dev());
	for (size_t i = 0; i < sizeof(bad_elem) / sizeof(bad_elem[0]); i++) {
		for (uint32_t cap = 0; cap < 3; cap++) {
			EXPECT_EQ(-EINVAL, create_result(bad_elem[i], cap))
				TH_LOG("elem %#x cap %u", bad_elem[i], cap);
		}
	}
	EXPECT_EQ(-EINVAL, create_result(8, 0xffffffff));
	EXPECT_EQ(-EINVAL, create_result(0, 0x80000000));
	ASSERT_LT(0, maxcap);
	ASSERT_LT(0, maxbuf);
	if (maxcap < 65536 || maxbuf >= (1LL << 32))
		SKIP(return, "max_capacity %lld, max_buffer_bytes %lld", maxcap,
		     maxbuf);
	EXPECT_EQ(-ENOMEM, create_result(GOSYNC_CHAN_ELEM_MAX, 65536));
	EXPECT_EQ(-ENOMEM, create_result(GOSYNC_CHAN_ELEM_MAX - 7, 65536));
	/* The largest element with one slot still works. */
	EXPECT_EQ(0, create_result(GOSYNC_CHAN_ELEM_MAX, 1));
}

/*
 * The case array is ncases * 16 bytes: ncases is bounded before that
 * product (which would wrap a 32-bit size_t at 2^28 cases), and the
 * array is read exactly (all of it, nothing after it).
 */
TEST(select_case_counts_at_the_limits)
{
	const size_t max = GOSYNC_SELECT_MAX_CASES;
	static const uint32_t bad[] = {
		GOSYNC_SELECT_MAX_CASES + 1, 0x10000000, 0x80000000, 0xffffffff,
	};
	struct gosync_select_case *cs;
	struct gosync_select s;
	char *p;

	ASSERT_LE(0, dev());
	p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, munmap(p + PAGE, PAGE));
	/* The largest array, ending where the mapping ends. */
	cs = (void *)(p + PAGE - max * sizeof(*cs));
	for (size_t i = 0; i < max; i++)
		cs[i] = (struct gosync_select_case){ GOSYNC_SELECT_NIL,
						     GOSYNC_SELECT_RECV, 0 };
	s = (struct gosync_select){ .cases = (uintptr_t)cs, .ncases = max,
				    .flags = GOSYNC_SELECT_DEFAULT };
	EXPECT_EQ(-EAGAIN, xioctl(dev(), GOSYNC_IOC_SELECT, &s));
	/* One case more reads past it: refused by the bound first. */
	s.ncases = max + 1;
	EXPECT_EQ(-EINVAL, xioctl(dev(), GOSYNC_IOC_SELECT, &s));
	/* The array shifted by one case crosses into the hole. */
	s.cases = (uintptr_t)(cs + 1);
	s.ncases = max;
	EXPECT_EQ(-EFAULT, xioctl(dev(), GOSYNC_IOC_SELECT, &s));
	s.ncases = max - 1;
	EXPECT_EQ(-EAGAIN, xioctl(dev(), GOSYNC_IOC_SELECT, &s));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = (struct gosync_select){ .cases = (uintptr_t)cs,
					    .ncases = bad[i],
					    .flags = GOSYNC_SELECT_DEFAULT };
		EXPECT_EQ(-EINVAL, xioctl(dev(), GOSYNC_IOC_SELECT, &s))
			TH_LOG("ncases %#x", bad[i]);
		s.cases = 0;
		EXPECT_EQ(-EINVAL, xioctl(dev(), GOSYNC_IOC_SELECT, &s))
			TH_LOG("ncases %#x, no array", bad[i]);
	}
	s = (struct gosync_select){ .cases = 0, .ncases = 1,
				    .flags = GOSYNC_SELECT_DEFAULT };
	EXPECT_EQ(-EFAULT, xioctl(dev(), GOSYNC_IOC_SELECT, &s));
	s.ncases = 0;
	EXPECT_EQ(-EAGAIN, xioctl(dev(), GOSYNC_IOC_SELECT, &s));
	munmap(p, PAGE);
}

/*
 * The select's value budget is a subtraction, checked before it is
 * made: 128 send cases of 64 KiB (8 MiB) against the default 1 MiB are
 * -E2BIG with nothing sent; 128 receives that discard take nothing.
 */
TEST(select_value_budget_at_the_limits)
{
	const size_t max = GOSYNC_SELECT_MAX_CASES;
	struct gosync_select_case cs[GOSYNC_SELECT_MAX_CASES];
	struct gosync_chan_status st;
	struct gosync_select s;
	long long budget = read_param("max_select_bytes");
	unsigned char *val;
	int fd;

	ASSERT_LE(0, dev());
	ASSERT_LT(0, budget);
	if (budget >= (long long)(max * GOSYNC_CHAN_ELEM_MAX))
		SKIP(return, "max_select_bytes %lld bounds nothing", budget);
	val = calloc(1, GOSYNC_CHAN_ELEM_MAX);
	ASSERT_NE(NULL, val);
	ASSERT_LE(0, fd = chan_new(GOSYNC_CHAN_ELEM_MAX, 1));
	for (size_t i = 0; i < max; i++)
		cs[i] = (struct gosync_select_case){ fd, GOSYNC_SELECT_SEND,
						     (uintptr_t)val };
	s = (struct gosync_select){ .cases = (uintptr_t)cs, .ncases = max,
				    .flags = GOSYNC_SELECT_DEFAULT };
	EXPECT_EQ(-E2BIG, xioctl(dev(), GOSYNC_IOC_SELECT, &s));
	ASSERT_EQ(0, chan_st(fd, &st));
	EXPECT_EQ(0, st.len);
	EXPECT_EQ(0, st.sends);
	for (size_t i = 0; i < max; i++)
		cs[i] = (struct gosync_select_case){ fd, GOSYNC_SELECT_RECV, 0 };
	EXPECT_EQ(-EAGAIN, xioctl(dev(), GOSYNC_IOC_SELECT, &s));
	close(fd);
	free(val);
}

static uint64_t sem_state(int fd)
{
	struct gosync_sem_status st;

	if (xioctl(fd, GOSYNC_IOC_SEM_STATUS, &st))
		return ~0ULL;
	return st.state;
}

/*
 * Counts up to GOSYNC_SEM_MAX (2^62 - 1): a release that would carry
 * into the flag bits is -EOVERFLOW; beyond the maximum, -EINVAL.
 */
TEST(sem_counts_at_the_limits)
{
	struct gosync_sem_acquire a = { .count = GOSYNC_SEM_MAX + 1 };
	uint64_t n;
	int fd;

	ASSERT_LE(0, dev());
	EXPECT_EQ(-EINVAL, sem_new(GOSYNC_SEM_MAX + 1));
	EXPECT_EQ(-EINVAL, sem_new(~0ULL));
	ASSERT_LE(0, fd = sem_new(GOSYNC_SEM_MAX));
	EXPECT_EQ(GOSYNC_SEM_MAX, sem_state(fd));
	for (int k = 0; k < 3; k++) {
		n = k == 0 ? GOSYNC_SEM_MAX + 1 : k == 1 ? 1ULL << 63 : ~0ULL;
		EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_SEM_TRY_ACQUIRE, &n));
		EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
		a.count = n;
		EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_SEM_ACQUIRE, &a));
	}
	n = 1;
	EXPECT_EQ(-EOVERFLOW, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	n = GOSYNC_SEM_MAX;
	EXPECT_EQ(-EOVERFLOW, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_SEM_TRY_ACQUIRE, &n));
	EXPECT_EQ(0, sem_state(fd));
	n = GOSYNC_SEM_MAX - 1;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	n = 2;
	EXPECT_EQ(-EOVERFLOW, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	n = 1;
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	EXPECT_EQ(GOSYNC_SEM_MAX, sem_state(fd));	/* no carry into a flag */
	close(fd);
}

/*
 * A scribbled count is only that semaphore's problem: the kernel bounds
 * every addition by the size it keeps, not by the page.
 */
TEST(sem_scribbled_count_is_bounded_by_the_kernel_size)
{
	_Atomic uint64_t *w;
	uint64_t n = 1;
	int fd, other;

	ASSERT_LE(0, dev());
	ASSERT_LE(0, fd = sem_new(2));
	ASSERT_LE(0, other = sem_new(2));
	w = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, w);
	atomic_store(w, GOSYNC_SEM_COUNT_MASK);	/* 2^62 - 1 free of 2 */
	EXPECT_EQ(-EOVERFLOW, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	EXPECT_EQ(GOSYNC_SEM_COUNT_MASK, sem_state(fd));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_SEM_TRY_ACQUIRE, &n));
	EXPECT_EQ(GOSYNC_SEM_COUNT_MASK - 1, sem_state(fd));
	/* Every bit set: a count above the size, and both flags. */
	atomic_store(w, ~0ULL);
	EXPECT_EQ(-EOVERFLOW, xioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n));
	EXPECT_EQ(~0ULL, sem_state(fd));
	/* The other semaphore is untouched. */
	EXPECT_EQ(2, sem_state(other));
	EXPECT_EQ(0, xioctl(other, GOSYNC_IOC_SEM_TRY_ACQUIRE, &n));
	EXPECT_EQ(0, xioctl(other, GOSYNC_IOC_SEM_RELEASE, &n));
	EXPECT_EQ(2, sem_state(other));
	munmap((void *)w, PAGE);
	close(fd);
	close(other);
}

/*
 * Timer arithmetic at the end of time: a period of 2^64 - 1 ns is
 * clamped to KTIME_MAX; after its first tick the next would be past
 * KTIME_MAX, so none comes (the timer still counts as running); a first
 * firing from KTIME_MAX on never comes either.
 */
TEST(timer_times_at_the_limits)
{
	struct gosync_timer_set t = { .period = GOSYNC_TIMER_MIN_PERIOD - 1 };
	uint64_t v, t0 = mono_ns();
	int fd;

	ASSERT_LE(0, dev());
	EXPECT_EQ(-EINVAL, xioctl(dev(), GOSYNC_IOC_TIMER_CREATE, &t));
	for (int k = 0; k < 2; k++) {
		ASSERT_LE(0, fd = timer_new(t0, k ? ~0ULL : (1ULL << 63) - 1));
		EXPECT_EQ(1, xfer(fd, false, &v, limit(), 0));
		EXPECT_LE(t0, v);
		EXPECT_EQ(-EAGAIN, xfer(fd, false, &v, 0, GOSYNC_CHAN_TRY));
		EXPECT_EQ(1, xioctl(fd, GOSYNC_IOC_TIMER_STOP, NULL));
		EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_TIMER_STOP, NULL));
		close(fd);
	}
	for (int k = 0; k < 3; k++) {
		static const uint64_t when[] = {
			(1ULL << 63) - 1, 1ULL << 63, GOSYNC_DEADLINE_NONE - 1,
		};

		ASSERT_LE(0, fd = timer_new(when[k], GOSYNC_TIMER_MIN_PERIOD));
		EXPECT_EQ(-EAGAIN, xfer(fd, false, &v, 0, GOSYNC_CHAN_TRY));
		EXPECT_EQ(1, xioctl(fd, GOSYNC_IOC_TIMER_STOP, NULL));
		close(fd);
	}
	ASSERT_LE(0, fd = timer_new(GOSYNC_DEADLINE_NONE, ~0ULL));
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_TIMER_STOP, NULL));
	close(fd);
}

/*
 * Deadlines are u64 on the way in and ktime_t (s64) inside: from
 * KTIME_MAX up they are "never" without wrapping to the past; 0 and 1
 * have passed.
 */
TEST(deadlines_at_the_limits)
{
	static const uint64_t never[] = {
		(1ULL << 63) - 1, 1ULL << 63, GOSYNC_DEADLINE_NONE - 1,
	};
	struct gosync_sem_acquire a = { .count = 1 };
	struct gosync_lot_park p = { .index = 0 };
	uint64_t v = 0;
	int ch, sem, lot;

	ASSERT_LE(0, dev());
	ASSERT_LE(0, ch = chan_new(8, 0));
	ASSERT_LE(0, sem = sem_new(0));
	ASSERT_LE(0, lot = lot_new(GOSYNC_LOT_PLAIN, 0));
	for (int clk = 0; clk < 2; clk++) {
		uint32_t f = clk ? GOSYNC_CLOCK_REALTIME : 0;

		for (uint64_t dl = 0; dl < 2; dl++) {
			EXPECT_EQ(-ETIMEDOUT, xfer(ch, false, &v, dl, f));
			EXPECT_EQ(-ETIMEDOUT, xfer(ch, true, &v, dl, f));
			a.deadline = dl;
			a.flags = f;
			EXPECT_EQ(-ETIMEDOUT, xioctl(sem, GOSYNC_IOC_SEM_ACQUIRE, &a));
			p.deadline = dl;
			p.flags = f;
			EXPECT_EQ(-ETIMEDOUT, xioctl(lot, GOSYNC_IOC_LOT_PARK, &p));
		}
		/* Far deadlines with TRY: would block, not "timed out". */
		for (size_t k = 0; k < sizeof(never) / sizeof(never[0]); k++) {
			EXPECT_EQ(-EAGAIN, xfer(ch, false, &v, never[k],
						f | GOSYNC_CHAN_TRY));
			EXPECT_EQ(-EAGAIN, xfer(ch, true, &v, never[k],
						f | GOSYNC_CHAN_TRY));
		}
	}
	close(ch);
	close(sem);
	close(lot);
}

/*
 * mmap offsets are page numbers the kernel compares with 0, never adds:
 * any other offset is -EINVAL, however large.
 */
TEST(mmap_offsets_at_the_limits)
{
	static const off_t offs[] = {
		(off_t)PAGE, (off_t)1 << 40, (off_t)0x7ffffffff000LL,
	};
	int fds[3];
	void *p;

	ASSERT_LE(0, dev());
	ASSERT_LE(0, fds[0] = sem_new(1));
	ASSERT_LE(0, fds[1] = lot_new(0, 0));
	ASSERT_LE(0, fds[2] = chan_new(8, 4));
	for (int i = 0; i < 3; i++) {
		size_t len = i == 2 ? 2 * PAGE : PAGE;

		for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
				 fds[i], offs[k]);
			EXPECT_EQ(MAP_FAILED, p);
			EXPECT_EQ(EINVAL, errno) TH_LOG("fd %d offset %#llx", i,
							(long long)offs[k]);
		}
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
		EXPECT_NE(MAP_FAILED, p);
		if (p != MAP_FAILED)
			munmap(p, len);
		close(fds[i]);
	}
}

TEST_HARNESS_MAIN
