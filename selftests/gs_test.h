/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the gosync selftests share: time and watchdogs, ioctls,
 * /proc/self/fdinfo, signal handlers that count, threads and child
 * processes (and their reports through shared memory), the status of
 * lots and channels and waiting for their waiters. Include it after
 * "kselftest_harness.h" and "gosync.h", in a file that defines
 * _GNU_SOURCE before its first #include.
 *
 * Every function is static and marked unused: a test file takes what it
 * needs and -Wunused-function stays quiet about the rest.
 */
#ifndef GS_TEST_H
#define GS_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * The features this module reports (GOSYNC_FEATURES in kmod/gosync.h),
 * in one place for every test that checks the exact set.
 */
#define GS_TEST_ALL_FEATURES						\
	(GOSYNC_FEATURE_SEM | GOSYNC_FEATURE_CHAN | GOSYNC_FEATURE_SELECT |	\
	 GOSYNC_FEATURE_TIMER | GOSYNC_FEATURE_LOT |				\
	 GOSYNC_FEATURE_CHAN_RING | GOSYNC_FEATURE_COND |			\
	 GOSYNC_FEATURE_CHAN_DISCARD | GOSYNC_FEATURE_CHAN_ROBUST |		\
	 GOSYNC_FEATURE_NAMES | GOSYNC_FEATURE_SEM_UNDO |			\
	 GOSYNC_FEATURE_LOT_UNDO | GOSYNC_FEATURE_ROBUST_LOCK |		\
	 GOSYNC_FEATURE_LOT_PARTIES | GOSYNC_FEATURE_LOCK_CHECK)

#define GS_TEST_UNUSED	__attribute__((unused))

#define NS_PER_MS	1000000ULL
#define NS_PER_SEC	1000000000ULL

/*
 * Watchdogs. A test never fails because the machine is slow: a wait for
 * something that must happen (a wake-up, a thread parking, a child
 * exiting, a deadline passing) waits for that event itself and gives up
 * only after WAIT_LIMIT_MS, which is the hang: a bug fails rather than
 * hangs. It is at least 20 times the slowest such wait ever seen (the
 * debug kernel under QEMU TCG, on a 2-core host shared with other
 * builds). Only windows that check that something does *not* happen (a
 * call that must stay blocked) may be short: a slow machine cannot make
 * those fail.
 */
#define WAIT_LIMIT_MS	60000

/*
 * The harness's watchdog on each test (its own default is 30 s, less than
 * the slowest tests take on the debug kernel): every test gets at least
 * 20 times the longest any test was seen to take (under a minute), so
 * its expiry, too, is a hang. The VM runner's console watchdog is longer
 * still (scripts/vm.sh).
 */
#define GS_TEST_TIMEOUT_S	1200
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT	GS_TEST_TIMEOUT_S

/* ------------------------------------------------------------------ */
/* Time                                                                 */

GS_TEST_UNUSED static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

GS_TEST_UNUSED static uint64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

GS_TEST_UNUSED static uint64_t real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/*
 * CPU time of the calling thread (user and system): what a call spinning
 * on garbage burns, unlike a call that a slow or busy machine merely
 * keeps off the CPU. From getrusage(), not CLOCK_THREAD_CPUTIME_ID: the
 * debug kernel has no POSIX timers, hence no CPU-time clocks.
 */
GS_TEST_UNUSED static uint64_t thread_cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		       NS_PER_SEC +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000;
}

/* Whole milliseconds of CLOCK_MONOTONIC since @t0 (a mono_ns() value). */
GS_TEST_UNUSED static uint64_t ms_since(uint64_t t0)
{
	return (mono_ns() - t0) / NS_PER_MS;
}

/* Sleeps @ms in all, whatever signals interrupt the sleep. */
GS_TEST_UNUSED static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* File descriptors and ioctls                                          */

/* ioctl() returning its result (0, an fd, ...) or a negative errno. */
/*
 * How heavy the stress loops are: GOSYNC_STRESS_SCALE percent (1..100,
 * default 100) of their full size. The VM runner lowers it on the debug
 * kernel, whose checkers (KASAN, lockdep, kmemleak) need every path run,
 * not the stock run's iteration counts. gs_stress(@n, @min): @n scaled,
 * never below @min (what the test needs to mean something) nor above @n.
 */
GS_TEST_UNUSED static unsigned long gs_stress(unsigned long n,
					      unsigned long min)
{
	/* Read once; stress threads call this too (hence atomic). */
	static _Atomic int percent;
	int p = atomic_load_explicit(&percent, memory_order_relaxed);
	unsigned long v;

	if (!p) {
		const char *e = getenv("GOSYNC_STRESS_SCALE");

		p = e ? atoi(e) : 100;
		if (p < 1 || p > 100)
			p = 100;
		atomic_store_explicit(&percent, p, memory_order_relaxed);
	}
	v = n * (unsigned long)p / 100;
	return v < min ? (min < n ? min : n) : v;
}

GS_TEST_UNUSED static int xioctl(int fd, unsigned long cmd, void *arg)
{
	int ret = ioctl(fd, cmd, arg);

	return ret < 0 ? -errno : ret;
}

/* The number the next new fd would get: shows that no fd leaked. */
GS_TEST_UNUSED static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	return fd;
}

/* xorshift64: the next pseudo-random number of the sequence in *@s. */
GS_TEST_UNUSED static uint64_t rnd64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* True if @v is one of the @n values at @set. */
GS_TEST_UNUSED static bool one_of(int v, const int *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == v)
			return true;
	return false;
}

/*
 * Make @call, bound the CPU time it burns (a busy or slow machine does
 * not make it spin), and accept only the listed results; a failure says
 * what @call was, with @fmt and @arg.
 */
#define EXPECT_CALL_RESULT(call, fmt, arg, ...) do {			\
	static const int set_[] = { __VA_ARGS__ };			\
	uint64_t t_ = thread_cpu_ns();					\
	int r_ = (call);						\
	t_ = thread_cpu_ns() - t_;					\
	EXPECT_TRUE(one_of(r_, set_, sizeof(set_) / sizeof(set_[0])))	\
		TH_LOG("%s = %d (%s) " fmt, #call, r_,			\
		       strerror(r_ < 0 ? -r_ : 0), (arg));		\
	EXPECT_GT(3 * NS_PER_SEC, t_)					\
		TH_LOG("%s spun %ju ms " fmt, #call,			\
		       (uintmax_t)(t_ / NS_PER_MS), (arg));		\
} while (0)

/* True if all @len bytes at @p are @byte. */
GS_TEST_UNUSED static bool all_bytes(const void *p, int byte, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i] != (unsigned char)byte)
			return false;
	return true;
}

/*
 * The start of file @path (what one read() gives, at most @len - 1 bytes)
 * into @buf, NUL-terminated: its length, or a negative errno.
 */
GS_TEST_UNUSED static int read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	return (int)n;
}

/* The whole of @path, NUL-terminated (malloc'ed), or NULL with errno. */
GS_TEST_UNUSED static char *read_all(const char *path)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	ssize_t n;
	int fd;

	if (!buf)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *more = realloc(buf, cap * 2);

			if (!more)
				break;
			buf = more;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* ------------------------------------------------------------------ */
/* /proc/self/fdinfo                                                    */

/* /proc/self/fdinfo/@fd into @buf, NUL-terminated: 0 or a negative errno. */
GS_TEST_UNUSED static int fdinfo_read(int fd, char *buf, size_t len)
{
	char path[64];
	ssize_t n = 0;
	size_t total = 0;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	while (total < len - 1 &&
	       (n = read(f, buf + total, len - 1 - total)) > 0)
		total += (size_t)n;
	buf[total] = '\0';
	close(f);
	return n < 0 ? -EIO : 0;
}

/* The number after "\n<key>:\t", or -1 when the key is missing. */
GS_TEST_UNUSED static long long fdinfo_num(int fd, const char *key)
{
	char buf[2048], pat[64];
	const char *p;

	if (fdinfo_read(fd, buf, sizeof(buf)))
		return -1;
	snprintf(pat, sizeof(pat), "\n%s:\t", key);
	p = strstr(buf, pat);
	if (!p)
		return -1;
	return strtoll(p + strlen(pat), NULL, 10);
}

/* ------------------------------------------------------------------ */
/* Signals                                                              */

/* How many times count_signal() has run since install_handler(). */
GS_TEST_UNUSED static atomic_int sig_count;

GS_TEST_UNUSED static void count_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&sig_count, 1);
}

/*
 * count_signal() as the handler of @sig, with SA_RESTART when @restart;
 * resets sig_count. The result of sigaction().
 */
GS_TEST_UNUSED static int install_handler(int sig, bool restart)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = count_signal;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	atomic_store(&sig_count, 0);
	return sigaction(sig, &sa, NULL);
}

/* Wait until count_signal() has run @n times in all: 0 or -ETIMEDOUT. */
GS_TEST_UNUSED static int wait_signals(int n)
{
	uint64_t t0 = mono_ns();

	while (atomic_load(&sig_count) < n) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(500);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Threads                                                              */

/* Threads get small stacks: some tests start a hundred of them. */
GS_TEST_UNUSED static int start_thread(pthread_t *thr, void *(*fn)(void *),
				       void *arg)
{
	pthread_attr_t attr;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	ret = pthread_create(thr, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return ret;
}

/* pthread_join(), giving up after @ms: 0 or ETIMEDOUT. */
GS_TEST_UNUSED static int join_ms(pthread_t tid, unsigned int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(tid, NULL, &ts);
}

/* The kernel's id of the calling thread. */
GS_TEST_UNUSED static pid_t gs_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/*
 * Whether thread @tid of this process is blocked in system call @nr
 * (SYS_ioctl, SYS_poll, ...), as the kernel tells in
 * /proc/self/task/TID/syscall ("running" while it runs): 1 or 0, or the
 * errno of the read.
 */
GS_TEST_UNUSED static int thread_in_syscall(pid_t tid, long nr)
{
	char path[64], buf[128];
	int n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	n = read_text(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	return buf[0] != 'r' && strtol(buf, NULL, 10) == nr;
}

/*
 * The state letter of task @tid in /proc/TID/stat ('S', 'R', ...; a
 * thread's too), or 0.
 */
GS_TEST_UNUSED static char task_state(pid_t tid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	if (read_text(path, buf, sizeof(buf)) <= 0)
		return 0;
	/* After the command name, which may hold ')'. */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * Wait until thread @tid sleeps in system call @nr: the way to know that
 * a thread is blocked where no object counts its waiters, instead of
 * sleeping and hoping. 0, -ETIMEDOUT after WAIT_LIMIT_MS, or the errno of
 * the read.
 */
GS_TEST_UNUSED static int wait_in_syscall(pid_t tid, long nr)
{
	uint64_t t0 = mono_ns();
	int ret;

	while ((ret = thread_in_syscall(tid, nr)) == 0) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------ */
/* Child processes                                                      */

/* A forked child that dies with the test (whatever happens to the test). */
GS_TEST_UNUSED static pid_t fork_child(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
	}
	return pid;
}

/* waitpid() with a time limit; the child is killed when it runs over. */
GS_TEST_UNUSED static int wait_child(pid_t pid, int *status, unsigned int ms)
{
	uint64_t t0 = mono_ns();
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0)
			return -errno;
		if (ms_since(t0) > ms) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
}

/* Reap @pid; its exit status, or -1 if it did not exit normally. */
GS_TEST_UNUSED static int reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Shared memory (MAP_SHARED, anonymous) of @len zero bytes, or NULL. */
GS_TEST_UNUSED static void *shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, len);
	return p;
}

/*
 * A child process reports its first failed check through shared memory:
 * CHILD_CHECK() in a function returning int (it returns 1), or
 * CHILD_CHECK_EXIT() anywhere (it exits 1); EXPECT_CHILD_OK() in the
 * test. Any struct with these two fields does.
 */
struct report {
	int line;
	char msg[256];
};

GS_TEST_UNUSED static struct report *report_new(void)
{
	return shared_alloc(sizeof(struct report));
}

#define CHILD_REPORT_(rep, ...) do {					\
	if (!(rep)->line) {						\
		(rep)->line = __LINE__;					\
		snprintf((rep)->msg, sizeof((rep)->msg), __VA_ARGS__);	\
	}								\
} while (0)

#define CHILD_CHECK(rep, cond, ...) do {				\
	if (!(cond)) {							\
		CHILD_REPORT_(rep, __VA_ARGS__);			\
		return 1;						\
	}								\
} while (0)

#define CHILD_CHECK_EXIT(rep, cond, ...) do {				\
	if (!(cond)) {							\
		CHILD_REPORT_(rep, __VA_ARGS__);			\
		_exit(1);						\
	}								\
} while (0)

/* Reap @pid (bounded) and expect exit 0 and a clean report. */
#define EXPECT_CHILD_OK(pid, rep) do {					\
	int status_ = 0;						\
	ASSERT_EQ(0, wait_child((pid), &status_, 2 * WAIT_LIMIT_MS));	\
	EXPECT_TRUE(WIFEXITED(status_)) TH_LOG("status %#x", status_);	\
	EXPECT_EQ(0, (rep)->line) TH_LOG("child check at line %d: %s",	\
					 (rep)->line, (rep)->msg);	\
	if (WIFEXITED(status_)) {					\
		EXPECT_EQ(0, WEXITSTATUS(status_));			\
	}								\
} while (0)

/* ------------------------------------------------------------------ */
/* Waiting for something to happen                                      */

/* The deadline of a wait that must end by itself. */
GS_TEST_UNUSED static uint64_t limit(void)
{
	return gs_deadline_in(WAIT_LIMIT_MS * NS_PER_MS);
}

/* Wait until *@v >= @want: 0, or -ETIMEDOUT after WAIT_LIMIT_MS. */
GS_TEST_UNUSED static int wait_atomic_ge(atomic_int *v, int want)
{
	uint64_t t0 = mono_ns();

	while (atomic_load(v) < want) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

/*
 * The order in which threads were served (their ids; the first 64), for
 * threads recording themselves with order_add() and a test waiting for
 * them with order_wait().
 */
struct order {
	pthread_mutex_t lock;
	int n;
	int ids[64];
};

GS_TEST_UNUSED static void order_init(struct order *o)
{
	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->lock, NULL);
}

GS_TEST_UNUSED static void order_add(struct order *o, int id)
{
	pthread_mutex_lock(&o->lock);
	if (o->n < (int)(sizeof(o->ids) / sizeof(o->ids[0])))
		o->ids[o->n] = id;
	o->n++;
	pthread_mutex_unlock(&o->lock);
}

GS_TEST_UNUSED static int order_count(struct order *o)
{
	int n;

	pthread_mutex_lock(&o->lock);
	n = o->n;
	pthread_mutex_unlock(&o->lock);
	return n;
}

/* Wait until @want were served: 0, or -ETIMEDOUT after WAIT_LIMIT_MS. */
GS_TEST_UNUSED static int order_wait(struct order *o, int want)
{
	uint64_t t0 = mono_ns();

	while (order_count(o) < want) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Object status                                                        */

/* A lot's status ioctl, every field written (pre-filled with garbage). */
GS_TEST_UNUSED static int lot_status(int fd, struct gosync_lot_status *st)
{
	memset(st, 0xa5, sizeof(*st));
	return xioctl(fd, GOSYNC_IOC_LOT_STATUS, st);
}

/*
 * Wait until exactly @want threads are parked on the lot @fd (0) or, if
 * @v is set, *@v is no longer @from (1), whichever comes first;
 * -ETIMEDOUT after WAIT_LIMIT_MS, or the status ioctl's error.
 */
GS_TEST_UNUSED static int wait_parked_or(int fd, uint32_t want, atomic_int *v,
					 int from)
{
	struct gosync_lot_status st;
	uint64_t t0 = mono_ns();
	int ret;

	for (;;) {
		ret = lot_status(fd, &st);
		if (ret)
			return ret;
		if (st.parked == want)
			return 0;
		if (v && atomic_load(v) != from)
			return 1;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
}

/*
 * Wait until exactly @want threads are parked on the lot @fd: 0,
 * -ETIMEDOUT after WAIT_LIMIT_MS, or the status ioctl's error.
 */
GS_TEST_UNUSED static int wait_parked(int fd, uint32_t want)
{
	return wait_parked_or(fd, want, NULL, 0);
}

/* A channel's status, every field written (pre-filled with garbage). */
GS_TEST_UNUSED static int chan_status_of(gs_chan *ch,
					 struct gosync_chan_status *st)
{
	memset(st, 0xa5, sizeof(*st));
	return gs_chan_status(ch, st);
}

/*
 * Wait until exactly @senders and @receivers (-1: any number) are blocked
 * on @ch: 0, -ETIMEDOUT after WAIT_LIMIT_MS, or the status error.
 */
GS_TEST_UNUSED static int wait_chan_waiters(gs_chan *ch, int senders,
					    int receivers)
{
	struct gosync_chan_status st;
	uint64_t t0 = mono_ns();
	int err;

	for (;;) {
		err = gs_chan_status(ch, &st);
		if (err)
			return err;
		if ((senders < 0 || st.send_waiters == (uint32_t)senders) &&
		    (receivers < 0 || st.recv_waiters == (uint32_t)receivers))
			return 0;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
}

/* A channel's length, waiters and closed flag are exactly these. */
#define EXPECT_STATE(ch, len_, sw_, rw_, closed_) do {			\
	struct gosync_chan_status est_;					\
	ASSERT_EQ(0, chan_status_of((ch), &est_));			\
	EXPECT_EQ((uint32_t)(len_), est_.len);				\
	EXPECT_EQ((uint32_t)(sw_), est_.send_waiters);			\
	EXPECT_EQ((uint32_t)(rw_), est_.recv_waiters);			\
	EXPECT_EQ((uint32_t)(closed_), est_.closed);			\
} while (0)

/* A channel counted exactly these values sent and received. */
#define EXPECT_COUNTS(ch, sends_, recvs_) do {				\
	struct gosync_chan_status cst_;					\
	ASSERT_EQ(0, chan_status_of((ch), &cst_));			\
	EXPECT_EQ((uint64_t)(sends_), cst_.sends);			\
	EXPECT_EQ((uint64_t)(recvs_), cst_.recvs);			\
} while (0)

/*
 * The image a test child execs to show what an exec does: this binary
 * again, with EXEC_IMAGE_ENV naming an fd. Before the harness runs, it
 * says it is there (one byte on that fd) and waits to be killed, so what
 * the parent sees is the work of the exec, not of an exit.
 */
#define EXEC_IMAGE_ENV	"GS_TEST_EXEC_IMAGE_FD"

__attribute__((constructor)) static void exec_image(void)
{
	const char *v = getenv(EXEC_IMAGE_ENV);

	if (!v)
		return;
	if (write(atoi(v), "e", 1) != 1)
		_exit(2);
	for (;;)
		pause();
}

/* The number in sysfs file @path (a module's refcnt, a parameter), or -1. */
GS_TEST_UNUSED static long long read_sysfs_number(const char *path)
{
	char buf[64];

	if (read_text(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtoll(buf, NULL, 10);
}

/* A module parameter of gosync (/sys/module/gosync/parameters), or -1. */
GS_TEST_UNUSED static long long read_param(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/gosync/parameters/%s", name);
	return read_sysfs_number(path);
}

/* ------------------------------------------------------------------ */
/* tracefs                                                              */

/* tracefs, mounted if need be: its directory, or NULL (no tracing). */
GS_TEST_UNUSED static const char *tracefs_dir(void)
{
	static const char *const dirs[] = {
		"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
	};
	char path[128];
	size_t i;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/events", dirs[i]);
		if (!access(path, F_OK))
			return dirs[i];
	}
	/* Not mounted: where it belongs (fails without tracing: ENODEV). */
	if (!mount("nodev", dirs[0], "tracefs", 0, NULL)) {
		snprintf(path, sizeof(path), "%s/events", dirs[0]);
		if (!access(path, F_OK))
			return dirs[0];
	}
	return NULL;
}

/* tracefs file @file of @dir read into @buf: its length, or -1. */
GS_TEST_UNUSED static int tracefs_read(const char *dir, const char *file,
				       char *buf, size_t len)
{
	char path[256];
	int n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	n = read_text(path, buf, len);
	return n < 0 ? -1 : n;
}

/* @text written to tracefs file @file of @dir: 0 or a negative errno. */
GS_TEST_UNUSED static int tracefs_write(const char *dir, const char *file,
					const char *text)
{
	char path[256];
	ssize_t n;
	int fd;

	if (!dir)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

#endif /* GS_TEST_H */
