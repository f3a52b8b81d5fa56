// SPDX-License-Identifier: GPL-2.0
/*
 * Bounded memory: what gosync objects and waiters cost is charged to the
 * caller, and running out of it is a clean error, never an OOM kill.
 *
 * Each test makes a cgroup v2 with a small memory.max (cgroup2 is
 * mounted on /sys/fs/cgroup and +memory enabled below it if need be) and
 * runs a child process inside it that takes memory with gosync until a
 * call fails:
 *
 *  - rings: buffered channels whose rings (one page per slot) are filled
 *    with values, until a create or a send fails: memory.max bounds them;
 *  - memlock: the same without CAP_IPC_LOCK under a small RLIMIT_MEMLOCK,
 *    which bounds the ring pages first; a second child afterwards makes
 *    exactly as many rings: the charge was given back;
 *  - waiters: threads parked in selects of 128 cases, half sending 8 KiB
 *    values and half receiving into 8 KiB destinations, each holding
 *    1 MiB of kernel buffers while it waits, until a select fails.
 *
 * The failure must be exactly -ENOMEM (or -EMFILE, should the fd limit
 * come first); the child must exit normally and memory.events must count
 * no oom_kill. While the cgroup is exhausted, this process (outside it)
 * creates and uses a channel. Once the child is gone, memory.current
 * falls back to near its baseline.
 *
 * Why the child cannot be OOM-killed for its own sake: a charge that
 * fails in any GFP_KERNEL_ACCOUNT allocation of the kernel (the file of a
 * new fd, a thread's stack, a page fault) invokes the cgroup's OOM
 * killer; only gosync's own allocations fail instead (GOSYNC_GFP). So the
 * child faults in all its user memory and makes its threads before it
 * exhausts the cgroup, and exhausts it with objects whose gosync
 * allocations dwarf what the VFS allocates beside them (a ring of 65
 * pages, 1 MiB of select buffers, against a struct file and a dentry):
 * the charge that fails is then gosync's, all but certainly. A failing
 * charge of the VFS would show here as an oom_kill, which is the failure
 * this test exists to catch when gosync's own allocations are wrong.
 *
 * No timing assumptions: every wait is for an event, under WAIT_LIMIT_MS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

#define CG_ROOT		"/sys/fs/cgroup"
#define CG_NAME		CG_ROOT "/gosync-memcg-test"

/* Rings: a slot of 4088 bytes takes a page; 64 of them and the header. */
#define RING_ELEM	4088
#define RING_CAP	64
#define RING_PAGES	(RING_CAP + 1)
#define MAX_OBJS	4096

/* Waiters: 128 cases of 8 KiB each, 1 MiB, max_select_bytes' default. */
#define SEL_CASES	GOSYNC_SELECT_MAX_CASES
#define SEL_ELEM	8192
#define MAX_THREADS	64

/* What memory.current may keep after the child is gone (bytes). */
#define SLACK		(1024 * 1024)

enum mode { MODE_RINGS, MODE_MEMLOCK, MODE_WAITERS };

/* The child's report, in shared memory. */
struct memcg_report {
	struct report rep;
	atomic_int exhausted;	/* set once the failing call returned */
	int err;		/* its errno (negative) */
	int count;		/* objects made, or threads parked */
	long values;		/* values sent into the rings */
	long long before;	/* memory.current before the first select */
};

/* ---- cgroup files ------------------------------------------------- */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* The number after "@key " in a flat-keyed cgroup file, or -1. */
static long long keyed(const char *file, const char *key)
{
	char path[256], buf[8192], *p;
	size_t klen = strlen(key);

	snprintf(path, sizeof(path), "%s/%s", CG_NAME, file);
	if (read_file(path, buf, sizeof(buf)))
		return -1;
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, klen) && p[klen] == ' ')
			return atoll(p + klen + 1);
	return -1;
}

static long long cg_current(void)
{
	char buf[64];

	if (read_file(CG_NAME "/memory.current", buf, sizeof(buf)))
		return -1;
	return atoll(buf);
}

/* cgroup2 at CG_ROOT, +memory for its children, an empty CG_NAME. */
static int cg_setup(long long max)
{
	char buf[256];
	int ret;

	if (access(CG_ROOT "/cgroup.controllers", F_OK)) {
		if (mount("cgroup2", CG_ROOT, "cgroup2", 0, NULL))
			return -errno;
	}
	if (read_file(CG_ROOT "/cgroup.controllers", buf, sizeof(buf)))
		return -ENOENT;
	if (!strstr(buf, "memory"))
		return -ENODEV;
	ret = write_file(CG_ROOT "/cgroup.subtree_control", "+memory");
	if (ret)
		return ret;
	rmdir(CG_NAME);
	if (mkdir(CG_NAME, 0755))
		return -errno;
	snprintf(buf, sizeof(buf), "%lld", max);
	ret = write_file(CG_NAME "/memory.max", buf);
	if (ret)
		return ret;
	/* No swap in the VM; where there is, it must not hide the limit. */
	write_file(CG_NAME "/memory.swap.max", "0");
	return 0;
}

/* ---- the child, inside the cgroup ---------------------------------- */

static int dev_fd;
static int gate_fd;		/* closed by the test: the child may exit */
static struct memcg_report *rep;
static char *values;		/* SEL_CASES * SEL_ELEM bytes, faulted in */
static struct gosync_select_case sel_cases[SEL_CASES];
static int sel_fds[SEL_CASES];
static atomic_int turn;		/* threads below it go */
static atomic_bool quit;	/* threads that go now return at once */
static atomic_int ready;	/* threads that faulted their stack in */
/* Each thread's select: 0 while it waits, then its result - 1. */
static atomic_int sel_err[MAX_THREADS];

/* Fault in the stack that the child uses from now on. */
static void __attribute__((noinline)) touch_stack(void)
{
	volatile char pad[128 * 1024];

	memset((char *)pad, 1, sizeof(pad));
}

/* The same for a thread, whose calls go less deep. */
static void __attribute__((noinline)) touch_thread_stack(void)
{
	volatile char pad[16 * 1024];

	memset((char *)pad, 1, sizeof(pad));
}

static void enter_cgroup(void)
{
	CHILD_CHECK_EXIT(&rep->rep,
			 !write_file(CG_NAME "/cgroup.procs", "0"),
			 "joining the cgroup: %d", errno);
}

/* Drop CAP_IPC_LOCK (effective set), so that RLIMIT_MEMLOCK applies. */
static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[CAP_IPC_LOCK / 32].effective &= ~(1U << (CAP_IPC_LOCK % 32));
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

static int chan_create(uint32_t elem, uint32_t cap)
{
	struct gosync_chan_create c = { .elem_size = elem, .capacity = cap };

	return xioctl(dev_fd, GOSYNC_IOC_CHAN_CREATE, &c);
}

static int chan_xfer(int fd, unsigned long cmd, void *val, uint32_t flags)
{
	struct gosync_chan_xfer x = {
		.value = (uintptr_t)val,
		.deadline = flags ? 0 : limit(),
		.flags = flags,
	};

	return xioctl(fd, cmd, &x);
}

/* Rings, filled with values, until a create or a send fails. */
static void exhaust_rings(void)
{
	int i, fd, ret = 0;

	for (i = 0; i < MAX_OBJS && !ret; i++) {
		fd = chan_create(RING_ELEM, RING_CAP);
		if (fd < 0) {
			ret = fd;
			break;
		}
		rep->count++;
		for (int v = 0; v < RING_CAP && !ret; v++) {
			ret = chan_xfer(fd, GOSYNC_IOC_CHAN_SEND, values,
					GOSYNC_CHAN_TRY);
			if (!ret)
				rep->values++;
		}
	}
	rep->err = ret;
}

static void *sel_thread(void *arg)
{
	int id = (int)(intptr_t)arg, cur;
	struct gosync_select s = {
		.cases = (uintptr_t)sel_cases,
		.ncases = SEL_CASES,
	};

	touch_thread_stack();
	atomic_fetch_add(&ready, 1);
	while ((cur = atomic_load(&turn)) <= id)
		syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, cur, NULL,
			NULL, 0);
	if (atomic_load(&quit))
		return NULL;
	s.deadline = limit();
	/* Parks until the test closes a channel; or fails at once. */
	atomic_store(&sel_err[id], xioctl(dev_fd, GOSYNC_IOC_SELECT, &s) - 1);
	return NULL;
}

/* Receive waiters on @fd: from the status ioctl, which allocates nothing. */
static int recv_waiters(int fd)
{
	struct gosync_chan_status st;

	if (xioctl(fd, GOSYNC_IOC_CHAN_STATUS, &st))
		return -1;
	return (int)st.recv_waiters;
}

/* Threads parked in 1-MiB selects, one more at a time, until one fails. */
static void exhaust_waiters(pthread_t *thr, int *nthr)
{
	int i, watch;

	for (i = 0; i < SEL_CASES; i++) {
		sel_fds[i] = chan_create(SEL_ELEM, 0);
		CHILD_CHECK_EXIT(&rep->rep, sel_fds[i] >= 0, "chan %d: %d", i,
				 sel_fds[i]);
		sel_cases[i].fd = sel_fds[i];
		sel_cases[i].op = i < SEL_CASES / 2 ? GOSYNC_SELECT_SEND :
						      GOSYNC_SELECT_RECV;
		sel_cases[i].value = (uintptr_t)(values + (size_t)i * SEL_ELEM);
	}
	watch = sel_fds[SEL_CASES - 1];	/* a receive case */
	/* Every thread is made before any memory runs short. */
	for (i = 0; i < MAX_THREADS; i++) {
		pthread_attr_t a;

		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 64 * 1024);
		CHILD_CHECK_EXIT(&rep->rep,
				 !pthread_create(&thr[i], &a, sel_thread,
						 (void *)(intptr_t)i),
				 "thread %d", i);
		pthread_attr_destroy(&a);
		*nthr = i + 1;
	}
	CHILD_CHECK_EXIT(&rep->rep, !wait_atomic_ge(&ready, MAX_THREADS),
			 "threads not started");
	/* What the selects may take: the limit less what the threads took. */
	rep->before = cg_current();
	for (i = 0; i < MAX_THREADS; i++) {
		uint64_t t0 = mono_ns();

		atomic_store(&turn, i + 1);
		syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL,
			NULL, 0);
		/* Thread i parks (all its entries queued) or fails. */
		while (recv_waiters(watch) < i + 1 && !atomic_load(&sel_err[i])) {
			CHILD_CHECK_EXIT(&rep->rep, ms_since(t0) < WAIT_LIMIT_MS,
					 "thread %d neither parked nor failed",
					 i);
			usleep(200);
		}
		if (atomic_load(&sel_err[i])) {
			rep->err = atomic_load(&sel_err[i]) + 1;
			return;
		}
		rep->count++;
	}
	rep->err = 0;	/* never ran short: the test fails */
}

static void child(enum mode mode)
{
	pthread_t thr[MAX_THREADS];
	int nthr = 0, ret, i;
	char dummy;

	touch_stack();
	if (mode == MODE_MEMLOCK) {
		struct rlimit rl = {
			.rlim_cur = 16 * RING_PAGES * 4096UL + 4096,
			.rlim_max = 16 * RING_PAGES * 4096UL + 4096,
		};

		CHILD_CHECK_EXIT(&rep->rep, !setrlimit(RLIMIT_MEMLOCK, &rl),
				 "setrlimit: %d", errno);
		CHILD_CHECK_EXIT(&rep->rep, !drop_ipc_lock(), "capset: %d",
				 errno);
	}
	enter_cgroup();
	if (mode == MODE_WAITERS)
		exhaust_waiters(thr, &nthr);
	else
		exhaust_rings();
	atomic_store(&rep->exhausted, 1);

	/* Hold it all until the test has checked the outside. */
	ret = chan_xfer(gate_fd, GOSYNC_IOC_CHAN_RECV, &dummy, 0);
	CHILD_CHECK_EXIT(&rep->rep, ret == 0, "gate: %d", ret);
	if (mode == MODE_WAITERS) {
		/* Wake the parked selects: their receive cases see "closed". */
		ret = xioctl(sel_fds[SEL_CASES - 1], GOSYNC_IOC_CHAN_CLOSE,
			     NULL);
		CHILD_CHECK_EXIT(&rep->rep, !ret, "close: %d", ret);
		/* And the threads never let go return. */
		atomic_store(&quit, true);
		atomic_store(&turn, MAX_THREADS);
		syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL,
			NULL, 0);
		for (i = 0; i < nthr; i++)
			CHILD_CHECK_EXIT(&rep->rep, !join_ms(thr[i],
							     WAIT_LIMIT_MS),
					 "join %d", i);
		for (i = 0; i < rep->count; i++)
			CHILD_CHECK_EXIT(&rep->rep, sel_err[i] == -1,
					 "select %d: %d", i, sel_err[i] + 1);
	}
	_exit(0);
}

/* ---- the test's side, outside the cgroup ----------------------------- */

/* A ring like the child's: made, filled, drained and closed. */
static int outside_works(void)
{
	int fd = chan_create(RING_ELEM, RING_CAP), v, ret = 0;

	if (fd < 0)
		return fd;
	for (v = 0; v < RING_CAP && !ret; v++)
		ret = chan_xfer(fd, GOSYNC_IOC_CHAN_SEND, values, 0);
	for (v = 0; v < RING_CAP && ret >= 0; v++)
		ret = chan_xfer(fd, GOSYNC_IOC_CHAN_RECV, values, 0) == 1 ?
		      0 : -EIO;
	close(fd);
	return ret;
}

struct run {
	int err, count;
	long values;
	long long base, peak, after, ooms, oom_events;
};

/* One child of @mode in the cgroup, checked from start to end. */
static void run_child(struct __test_metadata *_metadata, enum mode mode,
		      struct run *r)
{
	long long oom0 = keyed("memory.events", "oom_kill");
	long long ev0 = keyed("memory.events", "oom");
	uint64_t t0;
	pid_t pid;
	int status;

	ASSERT_LE(0, oom0);
	r->base = cg_current();
	ASSERT_LE(0, r->base);
	gate_fd = chan_create(0, 0);
	ASSERT_LE(0, gate_fd);
	memset(rep, 0, sizeof(*rep));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		child(mode);

	t0 = mono_ns();
	while (!atomic_load(&rep->exhausted) && !rep->rep.line &&
	       waitpid(pid, &status, WNOHANG) == 0) {
		ASSERT_GT(WAIT_LIMIT_MS, ms_since(t0)) TH_LOG("child hangs");
		usleep(1000);
	}
	ASSERT_EQ(1, atomic_load(&rep->exhausted))
		TH_LOG("child: line %d: %s", rep->rep.line, rep->rep.msg);
	r->err = rep->err;
	r->count = rep->count;
	r->values = rep->values;
	r->peak = cg_current();

	/* The cgroup is exhausted: outside it, everything works. */
	EXPECT_EQ(0, outside_works());

	ASSERT_EQ(0, xioctl(gate_fd, GOSYNC_IOC_CHAN_CLOSE, NULL));
	close(gate_fd);
	ASSERT_EQ(0, wait_child(pid, &status, 2 * WAIT_LIMIT_MS));
	EXPECT_TRUE(WIFEXITED(status)) TH_LOG("status %#x", status);
	if (WIFEXITED(status))
		EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(0, rep->rep.line) TH_LOG("child check at line %d: %s",
					   rep->rep.line, rep->rep.msg);
	r->ooms = keyed("memory.events", "oom_kill") - oom0;
	r->oom_events = keyed("memory.events", "oom") - ev0;
	EXPECT_EQ(0, r->ooms);
	EXPECT_TRUE(r->err == -ENOMEM || r->err == -EMFILE)
		TH_LOG("the failing call: %d", r->err);

	/* Everything is given back (files are released asynchronously). */
	t0 = mono_ns();
	while ((r->after = cg_current()) > r->base + SLACK &&
	       ms_since(t0) < WAIT_LIMIT_MS)
		usleep(10000);
	EXPECT_GE(r->base + SLACK, r->after);
}

static void log_run(struct __test_metadata *_metadata, const char *what,
		    const struct run *r)
{
	TH_LOG("%s: %d made, %ld values, then %d; memory.current %lld -> %lld -> %lld, slab %lld, kernel %lld, oom +%lld, oom_kill +%lld",
	       what, r->count, r->values, r->err, r->base, r->peak, r->after,
	       keyed("memory.stat", "slab"), keyed("memory.stat", "kernel"),
	       r->oom_events, r->ooms);
}

FIXTURE(memcg) {
	int unused;
};

FIXTURE_SETUP(memcg)
{
	if (geteuid())
		SKIP(return, "needs root (cgroups)");
	dev_fd = open("/dev/gosync", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, dev_fd);
	rep = shared_alloc(sizeof(*rep));
	ASSERT_NE(NULL, rep);
	/* Faulted in here: the child writes no new page of its own. */
	values = malloc((size_t)SEL_CASES * SEL_ELEM);
	ASSERT_NE(NULL, values);
	memset(values, 0x5a, (size_t)SEL_CASES * SEL_ELEM);
}

FIXTURE_TEARDOWN(memcg)
{
	rmdir(CG_NAME);
	free(values);
	if (rep)
		munmap(rep, sizeof(*rep));
	if (dev_fd >= 0)
		close(dev_fd);
}

/* Rings of 65 pages under a 16 MiB memory.max. */
TEST_F(memcg, rings)
{
	struct run r;

	ASSERT_EQ(0, cg_setup(16 << 20));
	run_child(_metadata, MODE_RINGS, &r);
	log_run(_metadata, "rings", &r);
	/* Most of the limit went into rings; none is charged elsewhere. */
	EXPECT_LE((16 << 20) / 4096 / RING_PAGES * 3 / 4, r.count);
	EXPECT_GE((16 << 20) / 4096 / RING_PAGES, r.count);
	/* Every ring made was filled, but for the one a send failed in. */
	EXPECT_LE((long)(r.count - 1) * RING_CAP, r.values);
	EXPECT_GE((long)r.count * RING_CAP, r.values);
}

/*
 * RLIMIT_MEMLOCK of 16 rings (and a page) without CAP_IPC_LOCK, under a
 * memory.max of four times that: exactly 16 rings, twice over.
 */
TEST_F(memcg, memlock)
{
	struct run r1, r2;

	ASSERT_EQ(0, cg_setup(4 * 16 * RING_PAGES * 4096LL));
	run_child(_metadata, MODE_MEMLOCK, &r1);
	log_run(_metadata, "memlock, first", &r1);
	EXPECT_EQ(16, r1.count);
	EXPECT_EQ(-ENOMEM, r1.err);
	EXPECT_EQ(16 * RING_CAP, r1.values);
	run_child(_metadata, MODE_MEMLOCK, &r2);
	log_run(_metadata, "memlock, again", &r2);
	EXPECT_EQ(16, r2.count);
	EXPECT_EQ(-ENOMEM, r2.err);
}

/*
 * Parked selects of 1 MiB of buffers each under a 32 MiB memory.max:
 * no more than fit beside the threads (the buffers are charged), and at
 * least a third of that: a select costs its buffers, its cases array,
 * order and copy of the cases (16 KiB) and the slab's overhead, which
 * KASAN's redzones more than double on the debug kernel (2.3 MiB a
 * select there, 1.1 MiB on the stock kernel).
 */
TEST_F(memcg, waiters)
{
	long long max = 32 << 20, room;
	struct run r;

	ASSERT_EQ(0, cg_setup(max));
	run_child(_metadata, MODE_WAITERS, &r);
	log_run(_metadata, "waiters", &r);
	room = max - rep->before;
	TH_LOG("%lld bytes were left for selects of %d bytes of buffers",
	       room, SEL_CASES * SEL_ELEM);
	ASSERT_LT(4 << 20, room) TH_LOG("the threads took it all");
	EXPECT_LE(room / (3 * SEL_CASES * SEL_ELEM), r.count);
	EXPECT_GE(room / (SEL_CASES * SEL_ELEM), r.count);
	EXPECT_GT(MAX_THREADS, r.count);
}

TEST_HARNESS_MAIN
