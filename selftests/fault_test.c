// SPDX-License-Identifier: GPL-2.0
/*
 * Systematic fault injection, the way syzkaller does it: for each
 * operation, /proc/thread-self/fail-nth makes the 1st, then the 2nd, ...
 * fault point the calling thread passes fail, until the operation runs
 * to its end without reaching the armed point (fail-nth reads back
 * non-zero: the fault was not consumed). The fault points are those of
 * failslab, fail_page_alloc (every order, sleeping allocations included)
 * and fail_usercopy, and fail-nth counts them all in the order they are
 * met, whichever module makes them (the VFS, mm, kmemleak, gosync).
 *
 * Each operation runs this twice: once with only the user copies armable
 * (failslab and fail_page_alloc skip sleeping allocations, and gosync
 * only makes those), where every injected fault must end the call with
 * exactly -EFAULT, and once with everything armable, where each injected
 * fault must end it with -ENOMEM, -EFAULT, or success when the kernel
 * absorbs the failure (kvmalloc() falling back to vmalloc(), kmemleak
 * using its reserve) and the calls that failed with -EFAULT must be
 * exactly as many as in the first run. After every injected failure the
 * object is checked: no fd leaked, a failed send delivered nothing and
 * left the length as it was, a failed receive lost nothing, the object
 * still works. A user copy that fails after a channel operation took
 * effect (the copy of a received value out, or of the select result)
 * reports -EFAULT with the operation done; the test allows that only at
 * the operation's very last fault point, and counts it. Leaks show in
 * kmemleak's scan and rmmod after the run (scripts/vm.sh).
 *
 * Every test prints how many fault points its operation passes; the
 * last one prints the total over all of them. Without fail-nth (a kernel
 * without CONFIG_FAULT_INJECTION, the stock one) every test skips.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

/* More fault points than any operation passes: beyond it, a runaway. */
#define FI_MAX_POINTS	4000

#define FI_TOTALS	"/tmp/gosync-fault-points"

#define MAX_CASES	GOSYNC_SELECT_MAX_CASES

/* What an operation works on: every field belongs to some operation. */
struct fi_ctx {
	int dev;		/* /dev/gosync */
	int fd;			/* the object operated on */
	int fd2;		/* a second channel (select) */
	int kind;		/* FI_SEM, FI_LOT, FI_CHAN: for the follow-up */
	unsigned long cmd;	/* the ioctl of a plain operation */
	void *arg;		/* its argument */
	int free_fd;		/* the lowest free fd before the call */
	size_t len;		/* the length to map */
	void *map;
	size_t elem;		/* the channels' element size */
	uint8_t seq;		/* the pattern of the value sent */
	unsigned char *val, *out;	/* value sent, value received */
	struct gosync_chan_xfer xfer;
	struct gosync_select sel;
	struct gosync_select_case cases[MAX_CASES];
	struct gosync_chan_status st;	/* before the call */
	bool committed;		/* -EFAULT with the operation done */
	char why[256];		/* what a failed check found */
};

enum { FI_NONE, FI_SEM, FI_LOT, FI_CHAN };

/*
 * An operation: @prep readies the object (unarmed), @call makes the one
 * system call under test (armed: nothing else may pass a fault point),
 * @check judges the result (@injected: a fault was consumed) and
 * releases what it made, returning 0 or -1 with ctx->why set. @ok_err is
 * an error that is the operation's success (a deadline already passed).
 */
struct fi_op {
	const char *name;
	int (*prep)(struct fi_ctx *c);
	long (*call)(struct fi_ctx *c);
	int (*check)(struct fi_ctx *c, long ret, bool injected);
	long ok_err;
};

struct fi_count {
	int points, efault, enomem, absorbed, committed, last_commit;
};

#define WHY(c, ...) (snprintf((c)->why, sizeof((c)->why), __VA_ARGS__), -1)

/* ------------------------------------------------------------------ */
/* fail-nth and the fault attributes                                    */

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -EIO;
}

#define FAILSLAB	"/sys/kernel/debug/failslab/"
#define FAIL_PAGE	"/sys/kernel/debug/fail_page_alloc/"
#define FAIL_COPY	"/sys/kernel/debug/fail_usercopy/"

/*
 * Only fail-nth injects (probability 0 everywhere), silently (verbose 0:
 * a forced failure would dump a stack, which the VM runner counts as a
 * splat). @allocs: whether sleeping allocations are armable too (the
 * defaults skip them, and order-0 pages).
 */
static int fi_attrs(bool allocs)
{
	const char *ign = allocs ? "N" : "Y";
	int ret = 0;

	ret |= write_str(FAILSLAB "verbose", "0");
	ret |= write_str(FAILSLAB "probability", "0");
	ret |= write_str(FAILSLAB "ignore-gfp-wait", ign);
	ret |= write_str(FAIL_PAGE "verbose", "0");
	ret |= write_str(FAIL_PAGE "probability", "0");
	ret |= write_str(FAIL_PAGE "ignore-gfp-wait", ign);
	ret |= write_str(FAIL_PAGE "ignore-gfp-highmem", "N");
	ret |= write_str(FAIL_PAGE "min-order", "0");
	ret |= write_str(FAIL_COPY "verbose", "0");
	ret |= write_str(FAIL_COPY "probability", "0");
	return ret;
}

/* Touch @kib of stack now, so that no armed call faults one in. */
static __attribute__((noinline)) void touch_stack(int kib)
{
	volatile char buf[1024];

	memset((char *)buf, 0, sizeof(buf));
	if (kib > 1)
		touch_stack(kib - 1);
	buf[0] = buf[1];
}

/*
 * Make @call with the @n-th fault point armed: its result, and in *@left
 * what fail-nth still counted afterwards (0: the fault was injected).
 * Reading fail-nth back copies to the user, itself a fault point: a read
 * that fails with -EFAULT means 1 was left. Each write that disarms it
 * may be failed the same way, and consumes one count; it ends at 0.
 */
static long fi_armed(int nth, int n, long (*call)(struct fi_ctx *),
		     struct fi_ctx *c, unsigned long *left)
{
	char arm[16], buf[32];
	int len = snprintf(arm, sizeof(arm), "%d", n);
	ssize_t r;
	long ret;
	int i;

	memset(buf, 0, sizeof(buf));
	if (pwrite(nth, arm, (size_t)len, 0) != len)
		return -1000 - errno;
	ret = call(c);
	r = pread(nth, buf, sizeof(buf) - 1, 0);
	if (r < 0)
		*left = errno == EFAULT ? 1 : ~0UL;
	else
		*left = strtoul(buf, NULL, 10);
	for (i = 0; i < 64; i++)
		if (pwrite(nth, "0", 1, 0) == 1)
			break;
	return ret;
}

/*
 * Every fault point of @op, in turn; the counts in *@cnt. With
 * @allocs false only the user copies are armable. 0 or -1 with the
 * failure described in @msg.
 */
static int fi_pass(int nth, const struct fi_op *op, struct fi_ctx *c,
		   bool allocs, struct fi_count *cnt, char *msg, size_t msz)
{
	unsigned long left;
	long ret;
	int n;

	memset(cnt, 0, sizeof(*cnt));
	if (fi_attrs(allocs)) {
		snprintf(msg, msz, "cannot set the fault attributes");
		return -1;
	}
	for (n = 1; n <= FI_MAX_POINTS; n++) {
		bool ok;	/* the operation's own success */

		c->committed = false;
		c->why[0] = '\0';
		if (op->prep && op->prep(c)) {
			snprintf(msg, msz, "%s: point %d: prep: %s", op->name,
				 n, c->why);
			return -1;
		}
		ret = fi_armed(nth, n, op->call, c, &left);
		if (ret <= -1000) {
			snprintf(msg, msz, "arming fail-nth: %s",
				 strerror((int)(-1000 - ret)));
			return -1;
		}
		ok = ret >= 0 || (op->ok_err && ret == op->ok_err);
		if (left) {
			/* Nothing injected: the operation as it should be. */
			if (!ok || op->check(c, ret, false)) {
				snprintf(msg, msz, "%s: uninjected run: %ld (%s) %s",
					 op->name, ret,
					 strerror(ret < 0 ? (int)-ret : 0),
					 c->why);
				return -1;
			}
			cnt->points = n - 1;
			break;
		}
		if (ok)
			cnt->absorbed++;
		else if (ret == -EFAULT)
			cnt->efault++;
		else if (ret == -ENOMEM && allocs)
			cnt->enomem++;
		else
			snprintf(c->why, sizeof(c->why), "wrong errno");
		if (c->why[0] || op->check(c, ret, true)) {
			snprintf(msg, msz, "%s: fault point %d%s: %ld (%s) %s",
				 op->name, n, allocs ? "" : " (user copies)",
				 ret, strerror(ret < 0 ? (int)-ret : 0), c->why);
			return -1;
		}
		if (c->committed) {
			cnt->committed++;
			cnt->last_commit = n;
		}
	}
	if (n > FI_MAX_POINTS) {
		snprintf(msg, msz, "%s: still failing after %d points",
			 op->name, FI_MAX_POINTS);
		return -1;
	}
	/*
	 * An operation that took effect failed only at its last point: with
	 * the user copies only, whose sequence is the same in every run (with
	 * allocations armable too, slab refills make the points drift).
	 */
	if (!allocs && cnt->committed > 1) {
		snprintf(msg, msz, "%s: done with -EFAULT %d times", op->name,
			 cnt->committed);
		return -1;
	}
	if (!allocs &&
	    (cnt->committed && cnt->last_commit != cnt->points)) {
		snprintf(msg, msz, "%s: done with -EFAULT at point %d of %d",
			 op->name, cnt->last_commit, cnt->points);
		return -1;
	}
	return 0;
}

FIXTURE(fi) {
	int nth;
	struct fi_ctx c;
};

FIXTURE_SETUP(fi)
{
	memset(&self->c, 0, sizeof(self->c));
	self->c.fd = self->c.fd2 = self->nth = -1;
	self->c.dev = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->c.dev) TH_LOG("open %s: %s", GOSYNC_DEVICE_PATH,
					 strerror(errno));
	self->nth = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	if (self->nth < 0)
		SKIP(return, "no /proc/thread-self/fail-nth (%s): a kernel without CONFIG_FAULT_INJECTION",
		     strerror(errno));
	if (access(FAILSLAB "ignore-gfp-wait", W_OK) ||
	    access(FAIL_PAGE "min-order", W_OK) ||
	    access(FAIL_COPY "verbose", W_OK))
		SKIP(return, "failslab, fail_page_alloc or fail_usercopy missing in debugfs");
	self->c.val = malloc(GOSYNC_CHAN_ELEM_MAX);
	self->c.out = malloc(GOSYNC_CHAN_ELEM_MAX);
	ASSERT_NE(NULL, self->c.val);
	ASSERT_NE(NULL, self->c.out);
	memset(self->c.val, 0, GOSYNC_CHAN_ELEM_MAX);
	memset(self->c.out, 0, GOSYNC_CHAN_ELEM_MAX);
	/* No page fault of ours may meet an armed fault point. */
	touch_stack(256);
	ASSERT_EQ(0, mlockall(MCL_CURRENT | MCL_FUTURE))
		TH_LOG("mlockall: %s", strerror(errno));
}

FIXTURE_TEARDOWN(fi)
{
	if (self->nth >= 0) {
		fi_attrs(false);	/* the defaults: sleeping allocations skipped */
		close(self->nth);
	}
	if (self->c.fd >= 0)
		close(self->c.fd);
	if (self->c.fd2 >= 0)
		close(self->c.fd2);
	free(self->c.val);
	free(self->c.out);
	close(self->c.dev);
}

/*
 * Run both passes of @op and report: the user-copy faults of the first
 * must be exactly the -EFAULTs of the second (the allocation faults gave
 * -ENOMEM or were absorbed).
 */
static void fi_run(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		   const struct fi_op *op)
{
	struct fi_count a, b;
	char msg[512];
	FILE *f;

	ASSERT_EQ(0, fi_pass(self->nth, op, &self->c, false, &a, msg,
			     sizeof(msg))) TH_LOG("%s", msg);
	ASSERT_EQ(0, fi_pass(self->nth, op, &self->c, true, &b, msg,
			     sizeof(msg))) TH_LOG("%s", msg);
	EXPECT_EQ(0, a.enomem);
	EXPECT_EQ(a.points, a.efault + a.absorbed);
	/*
	 * The two runs cannot be compared point by point: a slab refill,
	 * hence a page allocation, comes and goes from run to run. But an
	 * operation that copies nothing never fails with -EFAULT.
	 */
	if (!a.efault)
		EXPECT_EQ(0, b.efault) TH_LOG("%s: -EFAULT without a user copy",
					      op->name);
	EXPECT_LE(a.points, b.points);
	ksft_print_msg("fault points: %s: %d (user copies only: %d, %d -EFAULT of which %d after the operation took effect, %d absorbed; all: %d -ENOMEM, %d -EFAULT, %d absorbed)\n",
		       op->name, b.points, a.points, a.efault, a.committed,
		       a.absorbed, b.enomem, b.efault, b.absorbed);
	f = fopen(FI_TOTALS, "a");
	if (f) {
		fprintf(f, "%d %d %s\n", b.points, a.points, op->name);
		fclose(f);
	}
}

/* ------------------------------------------------------------------ */
/* The follow-up: the object still works                                */

static long sys_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

static int chan_st(struct fi_ctx *c, int fd, struct gosync_chan_status *st)
{
	memset(st, 0xa5, sizeof(*st));
	if (sys_ioctl(fd, GOSYNC_IOC_CHAN_STATUS, st))
		return WHY(c, "status: %s", strerror(errno));
	return 0;
}

/* Receive (TRY, unarmed) from @fd and expect the value sent last. */
static int chan_drain(struct fi_ctx *c, int fd)
{
	struct gosync_chan_xfer x = { .value = (uintptr_t)c->out,
				      .flags = GOSYNC_CHAN_TRY };
	long ret;

	memset(c->out, 0, c->elem);
	ret = sys_ioctl(fd, GOSYNC_IOC_CHAN_RECV, &x);
	if (ret)
		return WHY(c, "drain: %s", strerror((int)-ret));
	if (c->elem && (c->out[0] != c->seq ||
			memcmp(c->out, c->val, c->elem)))
		return WHY(c, "received a value other than the one sent");
	return 0;
}

/* One unarmed round trip through the object @c->fd of kind @c->kind. */
static int followup(struct fi_ctx *c)
{
	uint64_t one = 1;
	struct gosync_chan_xfer x = { .value = (uintptr_t)c->val,
				      .flags = GOSYNC_CHAN_TRY };
	struct gosync_lot_status ls;

	switch (c->kind) {
	case FI_SEM:
		if (sys_ioctl(c->fd, GOSYNC_IOC_SEM_TRY_ACQUIRE, &one) ||
		    sys_ioctl(c->fd, GOSYNC_IOC_SEM_RELEASE, &one))
			return WHY(c, "sem: %s", strerror(errno));
		return 0;
	case FI_LOT:
		if (sys_ioctl(c->fd, GOSYNC_IOC_LOT_STATUS, &ls) || ls.parked)
			return WHY(c, "lot: %s, %u parked", strerror(errno),
				   ls.parked);
		return 0;
	case FI_CHAN:
		c->seq++;
		memset(c->val, c->seq, c->elem);
		if (sys_ioctl(c->fd, GOSYNC_IOC_CHAN_SEND, &x))
			return WHY(c, "chan send: %s", strerror(errno));
		return chan_drain(c, c->fd);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Object creation (fd installation included)                           */

static int create_prep(struct fi_ctx *c)
{
	c->free_fd = lowest_free_fd();
	return 0;
}

static long create_call(struct fi_ctx *c)
{
	int fd = ioctl(c->dev, c->cmd, c->arg);

	return fd < 0 ? -errno : fd;
}

static int create_check(struct fi_ctx *c, long ret, bool injected)
{
	int keep = c->fd;

	(void)injected;
	if (ret < 0) {
		if (lowest_free_fd() != c->free_fd)
			return WHY(c, "an fd leaked: the lowest free is %d, was %d",
				   lowest_free_fd(), c->free_fd);
		return 0;
	}
	if (ret != c->free_fd)
		return WHY(c, "fd %ld, not the lowest free %d", ret, c->free_fd);
	/* The new object works. */
	c->fd = (int)ret;
	if (followup(c))
		return -1;
	c->fd = keep;
	close((int)ret);
	return 0;
}

static const struct fi_op create_op = {
	"create", create_prep, create_call, create_check, 0,
};

static void run_create(struct __test_metadata *_metadata,
		       FIXTURE_DATA(fi) *self, const char *name,
		       unsigned long cmd, void *arg, int kind, size_t elem)
{
	struct fi_op op = create_op;

	op.name = name;
	self->c.cmd = cmd;
	self->c.arg = arg;
	self->c.kind = kind;
	self->c.elem = elem;
	fi_run(_metadata, self, &op);
}

TEST_F(fi, create_sem)
{
	struct gosync_sem_create a = { .size = 3 };

	run_create(_metadata, self, "create sem", GOSYNC_IOC_SEM_CREATE, &a,
		   FI_SEM, 0);
}

TEST_F(fi, create_lot)
{
	struct gosync_lot_create a = { .kind = GOSYNC_LOT_COND };

	run_create(_metadata, self, "create lot", GOSYNC_IOC_LOT_CREATE, &a,
		   FI_LOT, 0);
}

TEST_F(fi, create_chan_unbuffered)
{
	struct gosync_chan_create a = { .elem_size = 8 };

	run_create(_metadata, self, "create chan unbuffered",
		   GOSYNC_IOC_CHAN_CREATE, &a, FI_NONE, 8);
}

TEST_F(fi, create_chan_ring_one_page)
{
	struct gosync_chan_create a = { .elem_size = 8, .capacity = 16 };

	run_create(_metadata, self, "create chan ring of 1 page",
		   GOSYNC_IOC_CHAN_CREATE, &a, FI_CHAN, 8);
}

TEST_F(fi, create_chan_ring_many_pages)
{
	/* 4096 slots of 72 bytes: 72 pages, their array and the vmap. */
	struct gosync_chan_create a = { .elem_size = 64, .capacity = 4096 };

	run_create(_metadata, self, "create chan ring of 72 pages",
		   GOSYNC_IOC_CHAN_CREATE, &a, FI_CHAN, 64);
}

TEST_F(fi, create_chan_large_elements)
{
	struct gosync_chan_create a = { .elem_size = GOSYNC_CHAN_ELEM_MAX,
					.capacity = 2 };

	run_create(_metadata, self, "create chan of 64 KiB elements",
		   GOSYNC_IOC_CHAN_CREATE, &a, FI_CHAN, GOSYNC_CHAN_ELEM_MAX);
}

TEST_F(fi, create_timer)
{
	struct gosync_timer_set a = { .when = mono_ns() + 3600 * NS_PER_SEC };

	run_create(_metadata, self, "create timer", GOSYNC_IOC_TIMER_CREATE,
		   &a, FI_NONE, 0);
}

TEST_F(fi, create_ticker)
{
	struct gosync_timer_set a = { .when = mono_ns() + 3600 * NS_PER_SEC,
				      .period = NS_PER_SEC };

	run_create(_metadata, self, "create ticker", GOSYNC_IOC_TIMER_CREATE,
		   &a, FI_NONE, 0);
}

/* The new fd is the 65th: installing it grows the fd table. */
TEST_F(fi, create_growing_fd_table)
{
	struct gosync_sem_create a = { .size = 3 };
	int fds[64], n = 0, fd;

	while ((fd = lowest_free_fd()) >= 0 && fd < 64 && n < 64)
		ASSERT_LE(0, fds[n++] = dup(self->c.dev));
	ASSERT_EQ(64, lowest_free_fd());
	run_create(_metadata, self, "create sem as fd 64",
		   GOSYNC_IOC_SEM_CREATE, &a, FI_SEM, 0);
	while (n)
		close(fds[--n]);
}

/* ------------------------------------------------------------------ */
/* mmap (page tables, the vma)                                          */

static long mmap_call(struct fi_ctx *c)
{
	void *p = mmap(NULL, c->len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       c->fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	c->map = p;
	return 0;
}

static int mmap_check(struct fi_ctx *c, long ret, bool injected)
{
	(void)injected;
	if (!ret) {
		/* The mapping shows the object: a sem's count, a ring's head. */
		uint64_t w = *(volatile uint64_t *)c->map;

		if (c->kind == FI_SEM && (w & GOSYNC_SEM_COUNT_MASK) != 3)
			return munmap(c->map, c->len),
			       WHY(c, "mapped sem count %ju", (uintmax_t)w);
		if (c->kind == FI_CHAN &&
		    w != ((volatile uint64_t *)c->map)[8])
			return WHY(c, "mapped ring: tail %ju, head %ju, not empty",
				   (uintmax_t)w,
				   (uintmax_t)((volatile uint64_t *)c->map)[8]);
		munmap(c->map, c->len);
	}
	return followup(c);
}

static const struct fi_op mmap_op = {
	"mmap", NULL, mmap_call, mmap_check, 0,
};

static void run_mmap(struct __test_metadata *_metadata,
		     FIXTURE_DATA(fi) *self, const char *name,
		     unsigned long cmd, void *arg, int kind, size_t len,
		     size_t elem)
{
	struct fi_op op = mmap_op;

	op.name = name;
	self->c.fd = ioctl(self->c.dev, cmd, arg);
	ASSERT_LE(0, self->c.fd) TH_LOG("create: %s", strerror(errno));
	self->c.kind = kind;
	self->c.len = len;
	self->c.elem = elem;
	fi_run(_metadata, self, &op);
}

TEST_F(fi, mmap_sem)
{
	struct gosync_sem_create a = { .size = 3 };

	run_mmap(_metadata, self, "mmap sem", GOSYNC_IOC_SEM_CREATE, &a,
		 FI_SEM, (size_t)getpagesize(), 0);
}

TEST_F(fi, mmap_lot)
{
	struct gosync_lot_create a = { .kind = GOSYNC_LOT_PLAIN };

	run_mmap(_metadata, self, "mmap lot", GOSYNC_IOC_LOT_CREATE, &a,
		 FI_LOT, (size_t)getpagesize(), 0);
}

TEST_F(fi, mmap_ring_one_page)
{
	struct gosync_chan_create a = { .elem_size = 8, .capacity = 16 };

	run_mmap(_metadata, self, "mmap ring of 1+1 pages",
		 GOSYNC_IOC_CHAN_CREATE, &a, FI_CHAN, 2 * (size_t)getpagesize(),
		 8);
}

TEST_F(fi, mmap_ring_many_pages)
{
	struct gosync_chan_create a = { .elem_size = 64, .capacity = 4096 };

	run_mmap(_metadata, self, "mmap ring of 1+72 pages",
		 GOSYNC_IOC_CHAN_CREATE, &a, FI_CHAN,
		 (1 + 72 * 4096 / (size_t)getpagesize()) * (size_t)getpagesize(),
		 64);
}

/* ------------------------------------------------------------------ */
/* Send and receive                                                     */

static int send_prep(struct fi_ctx *c)
{
	c->seq++;
	memset(c->val, c->seq, c->elem);
	c->xfer = (struct gosync_chan_xfer){ .value = (uintptr_t)c->val,
					     .flags = GOSYNC_CHAN_TRY };
	return chan_st(c, c->fd, &c->st);
}

static long send_call(struct fi_ctx *c)
{
	return sys_ioctl(c->fd, GOSYNC_IOC_CHAN_SEND, &c->xfer);
}

static int send_check(struct fi_ctx *c, long ret, bool injected)
{
	struct gosync_chan_status st;

	(void)injected;
	if (chan_st(c, c->fd, &st))
		return -1;
	if (ret) {
		/* Nothing delivered, nothing counted. */
		if (st.len != c->st.len || st.sends != c->st.sends)
			return WHY(c, "failed send: len %u -> %u, sends %ju -> %ju",
				   c->st.len, st.len, (uintmax_t)c->st.sends,
				   (uintmax_t)st.sends);
		return followup(c);
	}
	if (st.len != c->st.len + 1 || st.sends != c->st.sends + 1)
		return WHY(c, "send: len %u -> %u", c->st.len, st.len);
	return chan_drain(c, c->fd);
}

static int recv_prep(struct fi_ctx *c)
{
	struct gosync_chan_xfer x = { .value = (uintptr_t)c->val,
				      .flags = GOSYNC_CHAN_TRY };

	c->seq++;
	memset(c->val, c->seq, c->elem);
	memset(c->out, 0, c->elem);
	if (sys_ioctl(c->fd, GOSYNC_IOC_CHAN_SEND, &x))
		return WHY(c, "send: %s", strerror(errno));
	c->xfer = (struct gosync_chan_xfer){ .value = (uintptr_t)c->out,
					     .flags = GOSYNC_CHAN_TRY };
	return chan_st(c, c->fd, &c->st);
}

static long recv_call(struct fi_ctx *c)
{
	return sys_ioctl(c->fd, GOSYNC_IOC_CHAN_RECV, &c->xfer);
}

static int recv_check(struct fi_ctx *c, long ret, bool injected)
{
	struct gosync_chan_status st;

	(void)injected;
	if (chan_st(c, c->fd, &st))
		return -1;
	if (!ret) {
		if (st.len != c->st.len - 1 || memcmp(c->out, c->val, c->elem))
			return WHY(c, "receive: len %u -> %u, value %s",
				   c->st.len, st.len,
				   memcmp(c->out, c->val, c->elem) ? "wrong" : "right");
		return 0;
	}
	if (ret == -EFAULT && st.len == c->st.len - 1 &&
	    st.recvs == c->st.recvs + 1) {
		/* Received, then the copy out failed: the value is gone. */
		c->committed = true;
		return followup(c);
	}
	/* The value is still there, and the only one. */
	if (st.len != c->st.len || st.recvs != c->st.recvs)
		return WHY(c, "failed receive: len %u -> %u, recvs %ju -> %ju",
			   c->st.len, st.len, (uintmax_t)c->st.recvs,
			   (uintmax_t)st.recvs);
	return chan_drain(c, c->fd);
}

static void run_xfer(struct __test_metadata *_metadata,
		     FIXTURE_DATA(fi) *self, const char *name, bool send,
		     uint32_t elem)
{
	struct gosync_chan_create a = { .elem_size = elem, .capacity = 2 };
	struct fi_op op = {
		name, send ? send_prep : recv_prep,
		send ? send_call : recv_call,
		send ? send_check : recv_check, 0,
	};

	self->c.fd = ioctl(self->c.dev, GOSYNC_IOC_CHAN_CREATE, &a);
	ASSERT_LE(0, self->c.fd) TH_LOG("create: %s", strerror(errno));
	self->c.kind = FI_CHAN;
	self->c.elem = elem;
	fi_run(_metadata, self, &op);
}

TEST_F(fi, send_small)
{
	run_xfer(_metadata, self, "send 8 bytes", true, 8);
}

TEST_F(fi, send_large)
{
	run_xfer(_metadata, self, "send 64 KiB", true, GOSYNC_CHAN_ELEM_MAX);
}

TEST_F(fi, recv_small)
{
	run_xfer(_metadata, self, "receive 8 bytes", false, 8);
}

TEST_F(fi, recv_large)
{
	run_xfer(_metadata, self, "receive 64 KiB", false,
		 GOSYNC_CHAN_ELEM_MAX);
}

/* ------------------------------------------------------------------ */
/* Select                                                               */

/*
 * @ncases cases: all but the last receive from the empty channel fd2,
 * the last sends to fd (room for it). The send is the one ready case.
 */
static int select_prep(struct fi_ctx *c)
{
	uint32_t n = c->sel.ncases, i;

	c->seq++;
	memset(c->val, c->seq, c->elem);
	for (i = 0; i + 1 < n; i++)
		c->cases[i] = (struct gosync_select_case){
			.fd = c->fd2, .op = GOSYNC_SELECT_RECV,
			.value = (uintptr_t)c->out };
	c->cases[n - 1] = (struct gosync_select_case){
		.fd = c->fd, .op = GOSYNC_SELECT_SEND,
		.value = (uintptr_t)c->val };
	c->sel = (struct gosync_select){
		.cases = (uintptr_t)c->cases, .ncases = n,
		.flags = GOSYNC_SELECT_DEFAULT,
		.deadline = GOSYNC_DEADLINE_NONE, .index = ~0U, .ok = ~0U };
	return chan_st(c, c->fd, &c->st);
}

static long select_call(struct fi_ctx *c)
{
	return sys_ioctl(c->dev, GOSYNC_IOC_SELECT, &c->sel);
}

static int select_check(struct fi_ctx *c, long ret, bool injected)
{
	struct gosync_chan_status st, st2;

	(void)injected;
	if (chan_st(c, c->fd, &st) || chan_st(c, c->fd2, &st2))
		return -1;
	if (st2.len || st2.recv_waiters || st.send_waiters)
		return WHY(c, "the receive channel holds %u, %u receivers and %u senders wait",
			   st2.len, st2.recv_waiters, st.send_waiters);
	if (!ret) {
		if (c->sel.index != c->sel.ncases - 1 || c->sel.ok)
			return WHY(c, "select chose %u (ok %u)", c->sel.index,
				   c->sel.ok);
		if (st.len != c->st.len + 1)
			return WHY(c, "select sent, but len %u -> %u",
				   c->st.len, st.len);
		return chan_drain(c, c->fd);
	}
	if (ret == -EFAULT && st.len == c->st.len + 1) {
		/* Sent, then the copy of the result out failed. */
		c->committed = true;
		return chan_drain(c, c->fd);
	}
	if (st.len != c->st.len || st.sends != c->st.sends)
		return WHY(c, "failed select: len %u -> %u", c->st.len, st.len);
	return followup(c);
}

static void run_select(struct __test_metadata *_metadata,
		       FIXTURE_DATA(fi) *self, const char *name,
		       uint32_t ncases, uint32_t elem)
{
	struct gosync_chan_create a = { .elem_size = elem, .capacity = 2 };
	struct fi_op op = { name, select_prep, select_call, select_check, 0 };

	self->c.fd = ioctl(self->c.dev, GOSYNC_IOC_CHAN_CREATE, &a);
	ASSERT_LE(0, self->c.fd) TH_LOG("create: %s", strerror(errno));
	self->c.fd2 = ioctl(self->c.dev, GOSYNC_IOC_CHAN_CREATE, &a);
	ASSERT_LE(0, self->c.fd2) TH_LOG("create: %s", strerror(errno));
	self->c.kind = FI_CHAN;
	self->c.elem = elem;
	self->c.sel.ncases = ncases;
	fi_run(_metadata, self, &op);
}

TEST_F(fi, select_two_cases)
{
	run_select(_metadata, self, "select 2 cases of 8 bytes", 2, 8);
}

TEST_F(fi, select_many_cases)
{
	run_select(_metadata, self, "select 128 cases of 8 bytes", MAX_CASES,
		   8);
}

TEST_F(fi, select_large_values)
{
	/* 4 x 64 KiB of kernel buffers (the budget is 1 MiB). */
	run_select(_metadata, self, "select 4 cases of 64 KiB", 4,
		   GOSYNC_CHAN_ELEM_MAX);
}

/* ------------------------------------------------------------------ */
/* The other ioctls that copy: status, park, unpark, Cond wait, timers  */

static long plain_call(struct fi_ctx *c)
{
	return sys_ioctl(c->fd, c->cmd, c->arg);
}

static int plain_check(struct fi_ctx *c, long ret, bool injected)
{
	(void)ret;
	(void)injected;
	return followup(c);
}

static void run_plain(struct __test_metadata *_metadata,
		      FIXTURE_DATA(fi) *self, const char *name,
		      unsigned long create, void *carg, int kind,
		      unsigned long cmd, void *arg, long ok_err)
{
	struct fi_op op = { name, NULL, plain_call, plain_check, ok_err };

	self->c.fd = create ? ioctl(self->c.dev, create, carg) :
			      dup(self->c.dev);
	ASSERT_LE(0, self->c.fd) TH_LOG("create: %s", strerror(errno));
	self->c.kind = kind;
	self->c.cmd = cmd;
	self->c.arg = arg;
	self->c.elem = 8;
	fi_run(_metadata, self, &op);
}

TEST_F(fi, version)
{
	struct gosync_version v;

	memset(&v, 0, sizeof(v));
	run_plain(_metadata, self, "version", 0, NULL, FI_NONE,
		  GOSYNC_IOC_VERSION, &v, 0);
}

/* Take a ticket (the shared word), as gs_cond_wait() does. */
static int cond_prep(struct fi_ctx *c)
{
	struct gosync_lot_cond_wait *w = c->arg;
	uint64_t *words = c->map;

	w->ticket = __atomic_fetch_add(&words[GOSYNC_COND_TICKETS], 1,
				       __ATOMIC_SEQ_CST);
	return 0;
}

TEST_F(fi, cond_wait)
{
	struct gosync_lot_create a = { .kind = GOSYNC_LOT_COND };
	/* Never notified, the deadline passed: -ETIMEDOUT. */
	struct gosync_lot_cond_wait w = { .deadline = 0 };
	struct fi_op op = { "Cond wait", cond_prep, plain_call, plain_check,
			    -ETIMEDOUT };
	size_t pg = (size_t)getpagesize();

	self->c.fd = ioctl(self->c.dev, GOSYNC_IOC_LOT_CREATE, &a);
	ASSERT_LE(0, self->c.fd) TH_LOG("create: %s", strerror(errno));
	self->c.map = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED,
			   self->c.fd, 0);
	ASSERT_NE(MAP_FAILED, self->c.map);
	self->c.kind = FI_LOT;
	self->c.cmd = GOSYNC_IOC_LOT_COND_WAIT;
	self->c.arg = &w;
	fi_run(_metadata, self, &op);
	munmap(self->c.map, pg);
}

TEST_F(fi, lot_park)
{
	struct gosync_lot_create a = { .kind = GOSYNC_LOT_PLAIN };
	/* The word is 0, not 1: -EAGAIN at once. */
	struct gosync_lot_park p = { .mask = ~0ULL, .expected = 1,
				     .deadline = GOSYNC_DEADLINE_NONE };

	run_plain(_metadata, self, "lot park", GOSYNC_IOC_LOT_CREATE, &a,
		  FI_LOT, GOSYNC_IOC_LOT_PARK, &p, -EAGAIN);
}

TEST_F(fi, lot_unpark)
{
	struct gosync_lot_create a = { .kind = GOSYNC_LOT_PLAIN };
	struct gosync_lot_unpark u = { .count = 1 };

	run_plain(_metadata, self, "lot unpark", GOSYNC_IOC_LOT_CREATE, &a,
		  FI_LOT, GOSYNC_IOC_LOT_UNPARK, &u, 0);
}

TEST_F(fi, lot_status)
{
	struct gosync_lot_create a = { .kind = GOSYNC_LOT_PLAIN };
	struct gosync_lot_status st;

	run_plain(_metadata, self, "lot status", GOSYNC_IOC_LOT_CREATE, &a,
		  FI_LOT, GOSYNC_IOC_LOT_STATUS, &st, 0);
}

TEST_F(fi, sem_status)
{
	struct gosync_sem_create a = { .size = 3 };
	struct gosync_sem_status st;

	run_plain(_metadata, self, "sem status", GOSYNC_IOC_SEM_CREATE, &a,
		  FI_SEM, GOSYNC_IOC_SEM_STATUS, &st, 0);
}

TEST_F(fi, sem_acquire)
{
	struct gosync_sem_create a = { .size = 3 };
	/* More than the size: never blocks, the deadline passed. */
	struct gosync_sem_acquire q = { .count = 4, .deadline = 0 };

	run_plain(_metadata, self, "sem acquire", GOSYNC_IOC_SEM_CREATE, &a,
		  FI_SEM, GOSYNC_IOC_SEM_ACQUIRE, &q, -ETIMEDOUT);
}

TEST_F(fi, chan_status)
{
	struct gosync_chan_create a = { .elem_size = 8, .capacity = 2 };
	struct gosync_chan_status st;

	run_plain(_metadata, self, "chan status", GOSYNC_IOC_CHAN_CREATE, &a,
		  FI_CHAN, GOSYNC_IOC_CHAN_STATUS, &st, 0);
}

TEST_F(fi, timer_reset)
{
	struct gosync_timer_set a = { .when = mono_ns() + 3600 * NS_PER_SEC };
	struct gosync_timer_set r = { .when = mono_ns() + 7200 * NS_PER_SEC };

	run_plain(_metadata, self, "timer reset", GOSYNC_IOC_TIMER_CREATE, &a,
		  FI_NONE, GOSYNC_IOC_TIMER_RESET, &r, 0);
}

/* Last: the total over the tests above (each appended its figure). */
TEST_F(fi, total)
{
	char name[128];
	int all, copies, total = 0, total_copies = 0, ops = 0;
	FILE *f = fopen(FI_TOTALS, "r");

	if (!f)
		SKIP(return, "no operation ran its fault points");
	while (fscanf(f, "%d %d %127[^\n]", &all, &copies, name) == 3) {
		total += all;
		total_copies += copies;
		ops++;
	}
	fclose(f);
	unlink(FI_TOTALS);
	ksft_print_msg("fault points: total: %d over %d operations (%d user copies, %d allocations)\n",
		       total, ops, total_copies, total - total_copies);
	EXPECT_LT(0, total);
}

TEST_HARNESS_MAIN
