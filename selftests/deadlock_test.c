// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of checked locks, deadlock detection and stall reports (issue 15,
 * Observe; GOSYNC_FEATURE_LOCK_CHECK):
 *
 *  - a checked Mutex (gs_mutex_create_checked) or RWMutex writer lock
 *    that its holder locks again fails with -EDEADLK, with any deadline,
 *    and the holder still holds it; an unchecked one blocks (Go), and
 *    another thread may unlock it for the blocked relock;
 *  - a checked lock unlocked by a thread that does not hold it: -EPERM,
 *    the holder and the waiters unchanged;
 *  - cycles: two processes or threads locking in opposite orders, rings
 *    of three, through an RWMutex writer lock, through a Cond's relock:
 *    the one whose lock closes the cycle gets -EDEADLK (and holds what it
 *    held), the others complete once it unlocks;
 *  - the report of a cycle: one "gosync: deadlock:" kernel log line per
 *    pair of objects, the tracepoint gosync:gosync_deadlock per refusal;
 *  - the module parameter detect_deadlocks, gs_check_locks() and the
 *    environment variable GOSYNC_CHECK_LOCKS make new locks checked;
 *  - near misses, none of which may give -EDEADLK nor log a deadlock: a
 *    cycle with a deadline or a cancellable context in it, a holder that
 *    is not blocked, a chain through a channel, a cycle through an
 *    unchecked mutex, a channel whose other descriptor is in flight;
 *  - the stall watchdog (stall_seconds) and the debugfs view of who waits
 *    on what (gosync/waits).
 *
 * Nothing here sleeps to let something happen: every wait polls for the
 * event (a lot's parked count, a task's state, the waits view, the
 * kernel log) under the WAIT_LIMIT_MS watchdog; only the windows that
 * check that a call stays blocked are short (BLOCK_WINDOW_MS). Children
 * and threads report their first failed check through shared memory;
 * the fixtures' teardown kills and reaps the children a failed test
 * leaves behind and puts the module parameters and tracefs back.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

#ifndef GOSYNC_FEATURE_LOCK_CHECK
#define GOSYNC_FEATURE_LOCK_CHECK	(1ULL << 14)
#endif
#ifndef GOSYNC_LOT_CHECKED
#define GOSYNC_LOT_CHECKED		(1U << 0)
#endif

/* lib/sync.c's layout of a Mutex word (observed, never relied on). */
#define M_LOCKED	1ULL
#define M_STARVING	2ULL
#define M_WAITER_SHIFT	8
#define M_WAITERS(w)	(((w) >> M_WAITER_SHIFT) & 0xffffff)
#define M_STATE(w)	((uint64_t)(w) & 0xffffffffULL)
#define M_OWNER(w)	((uint64_t)(w) >> 32)

#define PAGE_BYTES	4096

/* How long a call that must stay blocked is watched. */
#define BLOCK_WINDOW_MS	50

/* A deadline so far ahead that it never passes during a test. */
#define FAR_NS		(3600 * NS_PER_SEC)

#define PARAMS		"/sys/module/gosync/parameters/"
#define WAITS_FILE	"/sys/kernel/debug/gosync/waits"
#define WAITS_HEADER	"pid\ttgid\tcomm\ttype\tkind\tid\top\tword\tsince_ms\tforever\tholder\tholder_tgid"
#define DEADLOCK_LINE	"gosync: deadlock:"

static bool has_lock_check(void)
{
	int64_t f = gs_features();

	return f >= 0 && ((uint64_t)f & GOSYNC_FEATURE_LOCK_CHECK);
}

#define REQUIRE_LOCK_CHECK() do {					\
	if (!has_lock_check())						\
		SKIP(return, "module without GOSYNC_FEATURE_LOCK_CHECK"); \
} while (0)

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

/* Wait (bounded) until *@v != @from: 0 or -ETIMEDOUT. */
static int wait_atomic_ne(atomic_int *v, int from)
{
	uint64_t t0 = mono_ns();

	while (atomic_load(v) == from) {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

/* True if *@v stays @val for @ms (what a blocked call's result does). */
static bool stays(atomic_int *v, int val, unsigned int ms)
{
	uint64_t t0 = mono_ns();

	while (ms_since(t0) < ms) {
		if (atomic_load(v) != val)
			return false;
		usleep(1000);
	}
	return atomic_load(v) == val;
}

/*
 * Wait until exactly @n threads are parked on the lot @fd and task @tid
 * sleeps: 0, -ETIMEDOUT, or the status ioctl's error.
 */
static int wait_blocked(int fd, uint32_t n, pid_t tid)
{
	uint64_t t0 = mono_ns();
	int ret;
	char st;

	if (tid <= 0)
		return -EINVAL;
	ret = wait_parked(fd, n);
	if (ret)
		return ret;
	while ((st = task_state(tid)) != 'S' && st != 'D') {
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(200);
	}
	return 0;
}

/* The lot @fd was created checked (its status flags). */
static bool lot_checked(int fd)
{
	struct gosync_lot_status st;

	return lot_status(fd, &st) == 0 && (st.flags & GOSYNC_LOT_CHECKED);
}

/* A second mapping of a lot's page, to look at its words. */
static volatile uint64_t *map_words(int fd)
{
	void *p = mmap(NULL, PAGE_BYTES, PROT_READ, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* @s has @prefix immediately followed by the number @num (not a longer one). */
static bool has_num(const char *s, const char *prefix, long long num)
{
	char pat[96];
	const char *p = s;
	size_t len;

	snprintf(pat, sizeof(pat), "%s%lld", prefix, num);
	len = strlen(pat);
	while ((p = strstr(p, pat))) {
		if (!isdigit((unsigned char)p[len]))
			return true;
		p += len;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Module parameters                                                    */

static int param_read_str(const char *name, char *buf, size_t len)
{
	char path[128];
	int n;

	snprintf(path, sizeof(path), PARAMS "%s", name);
	n = read_text(path, buf, len);
	if (n < 0)
		return n;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static int param_write(const char *name, const char *val)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), PARAMS "%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : n < 0 ? -errno : -EIO;
}

/* ------------------------------------------------------------------ */
/* The kernel log (/dev/kmsg, read from where a test started)           */

/* /dev/kmsg positioned at its end (what comes after), or -errno. */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

/*
 * The next record's text into @msg: 1, 0 when there is none yet, or
 * -errno. Records overwritten before they were read are skipped.
 */
static int kmsg_next(int fd, char *msg, size_t len)
{
	char rec[8192], *p, *nl;
	ssize_t n;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		rec[n] = '\0';
		p = strchr(rec, ';');
		p = p ? p + 1 : rec;
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		n = (ssize_t)strlen(p);
		if ((size_t)n >= len)
			n = (ssize_t)len - 1;
		memcpy(msg, p, (size_t)n);
		msg[n] = '\0';
		return 1;
	}
}

typedef bool (*line_match)(const char *line, const void *arg);

static bool match_deadlock(const char *line, const void *arg)
{
	(void)arg;
	return strstr(line, DEADLOCK_LINE) != NULL;
}

/*
 * Wait (bounded) for a record that @match takes: 0 with its text in
 * @out, -ETIMEDOUT, or the read's error. What it reads is consumed.
 */
static int kmsg_wait(int fd, line_match match, const void *arg, char *out,
		     size_t len)
{
	uint64_t t0 = mono_ns();
	char msg[1024];
	int ret;

	for (;;) {
		while ((ret = kmsg_next(fd, msg, sizeof(msg))) == 1) {
			if (match(msg, arg)) {
				snprintf(out, len, "%s", msg);
				return 0;
			}
		}
		if (ret < 0)
			return ret;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/*
 * Write a marker into the log, read up to it, and count the records on
 * the way that @match takes (the first into @first): the count, or
 * -errno. Whatever was logged before the marker was written is counted.
 */
static int kmsg_count_to_mark(int fd, line_match match, const void *arg,
			      char *first, size_t len)
{
	static int seq;
	char mark[96], msg[1024];
	uint64_t t0 = mono_ns();
	int count = 0, ret, w;
	ssize_t n;

	snprintf(mark, sizeof(mark), "deadlock_test: mark %d.%d.%ju",
		 (int)getpid(), ++seq, (uintmax_t)mono_ns());
	w = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (w < 0)
		return -errno;
	/* With its newline: a record without one stays open, unread. */
	snprintf(msg, sizeof(msg), "%s\n", mark);
	n = write(w, msg, strlen(msg));
	close(w);
	if (n != (ssize_t)strlen(msg))
		return -EIO;
	if (first && len)
		first[0] = '\0';
	for (;;) {
		while ((ret = kmsg_next(fd, msg, sizeof(msg))) == 1) {
			if (!strcmp(msg, mark))
				return count;
			if (match(msg, arg)) {
				if (!count && first)
					snprintf(first, len, "%s", msg);
				count++;
			}
		}
		if (ret < 0)
			return ret;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/* ------------------------------------------------------------------ */
/* The debugfs waits view                                               */

#define WAIT_FIELDS	12
enum { W_PID, W_TGID, W_COMM, W_TYPE, W_KIND, W_ID, W_OP, W_WORD, W_SINCE,
       W_FOREVER, W_HOLDER, W_HOLDER_TGID };

struct wait_line {
	char f[WAIT_FIELDS][64];
	char text[512];
};

/* The waits view can be read here (root, debugfs mounted, the module's). */
static bool waits_available(void)
{
	return access(WAITS_FILE, R_OK) == 0;
}

/*
 * The line of task @tid in the waits view into @out: 1, 0 when it has
 * none, -errno when the view cannot be read, -EPROTO when its header or
 * a line is not as specified. @header, if set, gets the header line.
 */
static int waits_find(pid_t tid, struct wait_line *out, char *header,
		      size_t hlen)
{
	char *buf = read_all(WAITS_FILE), *line, *save = NULL;
	int ret = 0;
	bool first = true;

	if (!buf)
		return -errno;
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct wait_line w;
		char *f, *s2 = NULL, copy[512];
		int nf = 0;

		if (first) {
			first = false;
			if (header)
				snprintf(header, hlen, "%s", line);
			if (strcmp(line, WAITS_HEADER)) {
				ret = -EPROTO;
				break;
			}
			continue;
		}
		snprintf(copy, sizeof(copy), "%s", line);
		memset(&w, 0, sizeof(w));
		snprintf(w.text, sizeof(w.text), "%s", line);
		for (f = strtok_r(copy, "\t", &s2); f && nf < WAIT_FIELDS;
		     f = strtok_r(NULL, "\t", &s2))
			snprintf(w.f[nf++], sizeof(w.f[0]), "%s", f);
		if (nf != WAIT_FIELDS || f) {
			if (out)
				*out = w;
			ret = -EPROTO;
			break;
		}
		if (atoi(w.f[W_PID]) == tid) {
			if (out)
				*out = w;
			ret = 1;
			break;
		}
	}
	free(buf);
	return ret;
}

/*
 * If the waits view is there, task @tid is listed as parked forever on a
 * lot of @kind held by @holder (of process @holder_tgid).
 */
#define EXPECT_WAITING_ON_LOCK(tid, kind, holder, holder_tgid) do {	\
	struct wait_line wl_;						\
	int wr_;							\
	if (!waits_available())						\
		break;							\
	wr_ = waits_find((tid), &wl_, NULL, 0);				\
	EXPECT_EQ(1, wr_) TH_LOG("task %d in " WAITS_FILE ": %d %s",	\
				 (int)(tid), wr_, wl_.text);		\
	if (wr_ != 1)							\
		break;							\
	EXPECT_STREQ("lot", wl_.f[W_TYPE]);				\
	EXPECT_STREQ((kind), wl_.f[W_KIND]);				\
	EXPECT_STREQ("park", wl_.f[W_OP]);				\
	EXPECT_STREQ("1", wl_.f[W_FOREVER]);				\
	EXPECT_EQ((int)(holder), atoi(wl_.f[W_HOLDER]))			\
		TH_LOG("%s", wl_.text);					\
	EXPECT_EQ((int)(holder_tgid), atoi(wl_.f[W_HOLDER_TGID]))	\
		TH_LOG("%s", wl_.text);					\
} while (0)

/* ------------------------------------------------------------------ */
/* A lock: a Mutex or an RWMutex's writer lock                          */

struct lk {
	gs_mutex *m;
	gs_rwmutex *rw;
};

static int lk_lock(struct lk *l)
{
	return l->m ? gs_mutex_lock(l->m) : gs_rwmutex_lock(l->rw);
}

static int lk_unlock(struct lk *l)
{
	return l->m ? gs_mutex_unlock(l->m) : gs_rwmutex_unlock(l->rw);
}

static int lk_trylock(struct lk *l)
{
	return l->m ? gs_mutex_trylock(l->m) : gs_rwmutex_trylock(l->rw);
}

static int lk_fd(const struct lk *l)
{
	return l->m ? gs_mutex_fd(l->m) : gs_rwmutex_fd(l->rw);
}

static const char *lk_kind(const struct lk *l)
{
	return l->m ? "mutex" : "rwmutex";
}

/* A new checked RWMutex (@rw) or Mutex in @l: 0 or a negative errno. */
static int lk_create_checked(struct lk *l, bool rw)
{
	return rw ? gs_rwmutex_create_checked(&l->rw) :
		    gs_mutex_create_checked(&l->m);
}

/* The library's handle of @l says it is checked. */
static bool lk_checked(const struct lk *l)
{
	return l->m ? gs_mutex_checked(l->m) : gs_rwmutex_checked(l->rw);
}

static void lk_destroy(struct lk *l)
{
	gs_mutex_destroy(l->m);
	gs_rwmutex_destroy(l->rw);
	l->m = NULL;
	l->rw = NULL;
}

/*
 * A party (thread or child) that takes two locks in turn: it sets *@tid
 * (if set), locks @first, stores 1 in *@held, waits for *@go (if set),
 * locks @second (its result into *@ret), unlocks @second, then @first,
 * whose unlock must give @first_unlock (0; -EPERM when another thread
 * unlocked it meanwhile). Its first failed check goes to @rep.
 */
struct two_locks {
	const char *who;
	struct lk *first, *second;
	atomic_int *held, *go, *ret;
	pid_t *tid;
	struct report *rep;
	int first_unlock;
};

static int lock_two(const struct two_locks *t)
{
	struct report *rep = t->rep;
	int ret;

	if (t->tid)
		*t->tid = gs_gettid();
	CHILD_CHECK(rep, (ret = lk_lock(t->first)) == 0, "%s: lock first = %d",
		    t->who, ret);
	atomic_store(t->held, 1);
	CHILD_CHECK(rep, !t->go || wait_atomic_ge(t->go, 1) == 0, "%s: no go",
		    t->who);
	ret = lk_lock(t->second);
	atomic_store(t->ret, ret);
	CHILD_CHECK(rep, ret == 0, "%s: lock second = %d (%s)", t->who, ret,
		    strerror(-ret));
	CHILD_CHECK(rep, (ret = lk_unlock(t->second)) == 0,
		    "%s: unlock second = %d", t->who, ret);
	CHILD_CHECK(rep, (ret = lk_unlock(t->first)) == t->first_unlock,
		    "%s: unlock first = %d", t->who, ret);
	return 0;
}

/* ------------------------------------------------------------------ */
/* What every fixture keeps: children to reap, settings to put back     */

#define MAX_KIDS	8

struct dl_state {
	pid_t kids[MAX_KIDS];
	bool detect_saved;
	char detect_was[8];
	bool stall_saved;
	char stall_was[32];
	const char *trace_dir;
	bool trace_enabled;
	char record_cmd_was[8];
	char tracing_on_was[8];
};

static void state_init(struct dl_state *s)
{
	memset(s, 0, sizeof(*s));
}

static void state_cleanup(struct dl_state *s)
{
	for (int i = 0; i < MAX_KIDS; i++) {
		if (s->kids[i] > 0) {
			kill(s->kids[i], SIGKILL);
			waitpid(s->kids[i], NULL, 0);
			s->kids[i] = 0;
		}
	}
	if (s->detect_saved)
		param_write("detect_deadlocks", s->detect_was);
	if (s->stall_saved)
		param_write("stall_seconds", s->stall_was);
	if (s->trace_enabled) {
		tracefs_write(s->trace_dir, "events/gosync/gosync_deadlock/enable",
			      "0");
		tracefs_write(s->trace_dir, "trace", "");
		if (s->tracing_on_was[0])
			tracefs_write(s->trace_dir, "tracing_on",
				      s->tracing_on_was[0] == '1' ? "1" : "0");
		if (s->record_cmd_was[0])
			tracefs_write(s->trace_dir, "options/record-cmd",
				      s->record_cmd_was[0] == '1' ? "1" : "0");
	}
}

/* Child @pid (if > 0) is killed and reaped by the teardown, if not before. */
static void track_kid(struct dl_state *s, pid_t pid)
{
	for (int i = 0; pid > 0 && i < MAX_KIDS; i++) {
		if (!s->kids[i]) {
			s->kids[i] = pid;
			break;
		}
	}
}

/* A child running @fn(@arg), its exit status 0 iff @fn returned 0. */
static pid_t spawn(struct dl_state *s, int (*fn)(void *), void *arg)
{
	pid_t pid = fork_child();

	if (pid == 0)
		_exit(fn(arg) ? 1 : 0);
	track_kid(s, pid);
	return pid;
}

static void forget_kid(struct dl_state *s, pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (s->kids[i] == pid)
			s->kids[i] = 0;
}

/* Reap child @pid (bounded) and expect exit 0 and a clean @rep. */
/* (It is reaped even when it runs over: wait_child() kills it.) */
#define REAP_OK(s, pid, rep) do {					\
	forget_kid((s), (pid));						\
	EXPECT_CHILD_OK((pid), (rep));					\
} while (0)

/* A thread running @fn(@arg) that the test joins with JOIN_OK. */
struct job {
	pthread_t thr;
	int (*fn)(void *);
	void *arg;
	int rc;
	bool started;
};

static void *job_main(void *p)
{
	struct job *j = p;

	j->rc = j->fn(j->arg);
	return NULL;
}

static int job_start(struct job *j, int (*fn)(void *), void *arg)
{
	j->fn = fn;
	j->arg = arg;
	j->rc = -1;
	j->started = start_thread(&j->thr, job_main, j) == 0;
	return j->started ? 0 : -1;
}

/* Join @j (bounded: a hang fails) and expect its @rep clean. */
#define JOIN_OK(j, rep) do {						\
	ASSERT_TRUE((j)->started);					\
	ASSERT_EQ(0, join_ms((j)->thr, 2 * WAIT_LIMIT_MS))		\
		TH_LOG("a thread did not end: a hang");			\
	(j)->started = false;						\
	EXPECT_EQ(0, (rep)->line) TH_LOG("thread check at line %d: %s",	\
					 (rep)->line, (rep)->msg);	\
	EXPECT_EQ(0, (j)->rc);						\
} while (0)

/* The set-up and teardown of every fixture here (a dl_state in self->s). */
#define DL_FIXTURE(name)						\
FIXTURE_SETUP(name)							\
{									\
	state_init(&self->s);						\
	ASSERT_EQ(0, gs_init()) TH_LOG("%s", gs_init_error());		\
	REQUIRE_LOCK_CHECK();						\
}									\
FIXTURE_TEARDOWN(name)							\
{									\
	state_cleanup(&self->s);					\
}

FIXTURE(dl) {
	struct dl_state s;
};

DL_FIXTURE(dl)

/* ================================================================== */
/* Two processes, opposite order (used by several tests)                */

struct pair {
	struct lk a, b;
	atomic_int child_has_b;
	atomic_int parent_has_a;
	atomic_int child_ret;		/* its lock of A; 1 until it returns */
	pid_t child_tid;
	struct report rep;
};

/* The child: B, then A (which blocks until the parent gives A up). */
static int pair_child(void *p)
{
	struct pair *x = p;

	return lock_two(&(struct two_locks){
		"child", &x->b, &x->a, &x->child_has_b, &x->parent_has_a,
		&x->child_ret, &x->child_tid, &x->rep, 0 });
}

/*
 * The parent locks A, the child B; the child locks A (and blocks), then
 * the parent locks B: the parent, whose lock closes the cycle, gets
 * -EDEADLK and still holds A (not B); it unlocks A, the child gets A and
 * finishes. A and B are left free.
 */
static void two_process_deadlock(struct __test_metadata *_metadata,
				 struct dl_state *s, struct lk *a, struct lk *b,
				 pid_t *childp)
{
	struct pair *x = shared_alloc(sizeof(*x));
	pid_t pid;
	int ret;

	ASSERT_NE(NULL, x);
	x->a = *a;
	x->b = *b;
	atomic_store(&x->child_ret, 1);
	ASSERT_EQ(0, lk_lock(a));
	pid = spawn(s, pair_child, x);
	ASSERT_LT(0, pid);
	if (childp)
		*childp = pid;
	atomic_store(&x->parent_has_a, 1);
	ASSERT_EQ(0, wait_atomic_ge(&x->child_has_b, 1));
	/* The child is parked on A: its lock has begun to wait. */
	ASSERT_EQ(0, wait_blocked(lk_fd(a), 1, pid));
	EXPECT_EQ(1, atomic_load(&x->child_ret));
	EXPECT_WAITING_ON_LOCK(pid, lk_kind(a), gs_gettid(), getpid());

	ret = lk_lock(b);
	EXPECT_EQ(-EDEADLK, ret) TH_LOG("the lock closing the cycle: %d (%s)",
					ret, strerror(-ret));
	if (ret == 0)
		lk_unlock(b);
	/* Nothing changed: the child still waits, B is still the child's. */
	EXPECT_EQ(1, atomic_load(&x->child_ret));
	EXPECT_EQ(0, wait_parked(lk_fd(a), 1));
	EXPECT_EQ(0, wait_parked(lk_fd(b), 0));
	EXPECT_EQ(-EBUSY, lk_trylock(b));
	EXPECT_EQ(-EPERM, lk_unlock(b));
	/* A is still ours: unlocking it lets the child through. */
	EXPECT_EQ(0, lk_unlock(a));
	REAP_OK(s, pid, &x->rep);
	EXPECT_EQ(0, atomic_load(&x->child_ret));
	EXPECT_EQ(0, lk_trylock(a));
	EXPECT_EQ(0, lk_unlock(a));
	EXPECT_EQ(0, lk_trylock(b));
	EXPECT_EQ(0, lk_unlock(b));
	munmap(x, sizeof(*x));
}

/* ================================================================== */
/* 7. The report of a cycle (first: the log is rate-limited)            */

/*
 * The line of the parent's refused lock of @b (held by @child), whose
 * cycle's last lock is @a: "gosync: deadlock: pid P (comm) ... mutex B
 * held by pid C; 2 lock(s) in the cycle, the last (A) ...".
 */
#define EXPECT_DEADLOCK_LINE(line, a, b, child) do {			\
	char p_[64];							\
	EXPECT_EQ(0, strncmp((line), DEADLOCK_LINE,			\
			     strlen(DEADLOCK_LINE))) TH_LOG("%s", (line)); \
	snprintf(p_, sizeof(p_), "pid %d (", (int)gs_gettid());		\
	EXPECT_NE(NULL, strstr((line), p_)) TH_LOG("%s: no '%s'", (line), p_); \
	EXPECT_TRUE(has_num((line), "held by pid ", (child)))		\
		TH_LOG("%s: holder %d", (line), (int)(child));		\
	EXPECT_TRUE(has_num((line), " ", fdinfo_num(lk_fd(b), "id")))	\
		TH_LOG("%s: no id %lld", (line), fdinfo_num(lk_fd(b), "id")); \
	EXPECT_TRUE(has_num((line), "(", fdinfo_num(lk_fd(a), "id")))	\
		TH_LOG("%s: no id %lld", (line), fdinfo_num(lk_fd(a), "id")); \
	EXPECT_NE(NULL, strstr((line), "2 lock")) TH_LOG("%s", (line));	\
} while (0)

TEST_F(dl, cycle_is_logged_once_per_pair_of_objects)
{
	struct lk a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	char line[1024];
	pid_t child;
	int k, n;

	k = kmsg_open();
	if (k < 0)
		SKIP(return, "/dev/kmsg: %s", strerror(-k));
	ASSERT_EQ(0, gs_mutex_create_checked(&a.m));
	ASSERT_EQ(0, gs_mutex_create_checked(&b.m));

	two_process_deadlock(_metadata, &self->s, &a, &b, &child);
	ASSERT_EQ(0, kmsg_wait(k, match_deadlock, NULL, line, sizeof(line)))
		TH_LOG("no \"" DEADLOCK_LINE "\" line in the kernel log");
	TH_LOG("logged: %s", line);
	EXPECT_DEADLOCK_LINE(line, &a, &b, child);
	/* Exactly one line for it. */
	n = kmsg_count_to_mark(k, match_deadlock, NULL, line, sizeof(line));
	EXPECT_EQ(0, n) TH_LOG("another line: %s", line);

	/* The same cycle on the same two objects: refused, not logged. */
	two_process_deadlock(_metadata, &self->s, &a, &b, NULL);
	n = kmsg_count_to_mark(k, match_deadlock, NULL, line, sizeof(line));
	EXPECT_EQ(0, n) TH_LOG("logged again: %s", line);

	/* Another pair is logged again. */
	ASSERT_EQ(0, gs_mutex_create_checked(&c.m));
	ASSERT_EQ(0, gs_mutex_create_checked(&d.m));
	two_process_deadlock(_metadata, &self->s, &c, &d, &child);
	ASSERT_EQ(0, kmsg_wait(k, match_deadlock, NULL, line, sizeof(line)))
		TH_LOG("the cycle on another pair was not logged");
	EXPECT_DEADLOCK_LINE(line, &c, &d, child);
	n = kmsg_count_to_mark(k, match_deadlock, NULL, line, sizeof(line));
	EXPECT_EQ(0, n) TH_LOG("another line: %s", line);
	close(k);
	lk_destroy(&a);
	lk_destroy(&b);
	lk_destroy(&c);
	lk_destroy(&d);
}

/* ================================================================== */
/* 1. A holder that locks again                                         */

struct relock {
	struct lk l;
	struct report rep;
};

/*
 * @l, which the caller holds (its relock refused): a trylock of it fails,
 * the caller's unlock frees it, a second unlock is refused.
 */
static int still_ours(struct lk *l, struct report *rep)
{
	int ret;

	CHILD_CHECK(rep, (ret = lk_trylock(l)) == -EBUSY, "trylock = %d", ret);
	CHILD_CHECK(rep, (ret = lk_unlock(l)) == 0, "unlock = %d", ret);
	CHILD_CHECK(rep, (ret = lk_unlock(l)) == -EPERM,
		    "second unlock = %d", ret);
	return 0;
}

/* @l, free, can be locked and unlocked again. */
static int usable(struct lk *l, struct report *rep)
{
	int ret;

	CHILD_CHECK(rep, (ret = lk_lock(l)) == 0, "lock again = %d", ret);
	CHILD_CHECK(rep, (ret = lk_unlock(l)) == 0, "unlock = %d", ret);
	return 0;
}

static int relock_mutex(void *p)
{
	struct relock *r = p;
	struct report *rep = &r->rep;
	volatile uint64_t *w = map_words(gs_mutex_fd(r->l.m));
	uint64_t before;
	int ret;

	CHILD_CHECK(rep, w, "map");
	CHILD_CHECK(rep, (ret = gs_mutex_lock(r->l.m)) == 0, "lock = %d", ret);
	before = w[0];
	CHILD_CHECK(rep, (ret = gs_mutex_lock(r->l.m)) == -EDEADLK,
		    "relock = %d (%s)", ret, strerror(-ret));
	/* Nothing changed: locked by us, nobody counted as waiting. */
	CHILD_CHECK(rep, w[0] == before, "word %#jx, was %#jx",
		    (uintmax_t)w[0], (uintmax_t)before);
	CHILD_CHECK(rep, M_STATE(w[0]) == M_LOCKED, "state %#jx",
		    (uintmax_t)M_STATE(w[0]));
	ret = gs_mutex_lock_until(r->l.m, gs_deadline_in(FAR_NS), 0);
	CHILD_CHECK(rep, ret == -EDEADLK, "relock_until (far) = %d (%s)",
		    ret, strerror(-ret));
	ret = gs_mutex_lock_until(r->l.m, real_ns() + FAR_NS, GS_CLOCK_REALTIME);
	CHILD_CHECK(rep, ret == -EDEADLK, "relock_until (realtime) = %d", ret);
	ret = gs_mutex_lock_until(r->l.m, GS_FOREVER, 0);
	CHILD_CHECK(rep, ret == -EDEADLK, "relock_until (forever) = %d", ret);
	ret = gs_mutex_lock_ctx(r->l.m, gs_ctx_background());
	CHILD_CHECK(rep, ret == -EDEADLK, "relock_ctx (background) = %d", ret);
	{
		gs_ctx *ctx = NULL;

		CHILD_CHECK(rep, gs_ctx_with_cancel(gs_ctx_background(),
						    &ctx) == 0, "ctx");
		ret = gs_mutex_lock_ctx(r->l.m, ctx);
		gs_ctx_cancel(ctx);
		gs_ctx_release(ctx);
		CHILD_CHECK(rep, ret == -EDEADLK,
			    "relock_ctx (cancellable) = %d", ret);
	}
	CHILD_CHECK(rep, w[0] == before, "word %#jx after, was %#jx",
		    (uintmax_t)w[0], (uintmax_t)before);
	/* TryLock is a try: it fails without waiting. Still ours. */
	if (still_ours(&r->l, rep))
		return 1;
	CHILD_CHECK(rep, M_STATE(w[0]) == 0, "state %#jx after unlock",
		    (uintmax_t)M_STATE(w[0]));
	/* And usable as before. */
	if (usable(&r->l, rep))
		return 1;
	munmap((void *)w, PAGE_BYTES);
	return 0;
}

static int relock_rwmutex(void *p)
{
	struct relock *r = p;
	struct report *rep = &r->rep;
	int ret;

	CHILD_CHECK(rep, (ret = gs_rwmutex_lock(r->l.rw)) == 0, "lock = %d",
		    ret);
	CHILD_CHECK(rep, (ret = gs_rwmutex_lock(r->l.rw)) == -EDEADLK,
		    "relock = %d (%s)", ret, strerror(-ret));
	CHILD_CHECK(rep, (ret = gs_rwmutex_tryrlock(r->l.rw)) == -EBUSY,
		    "tryrlock while write-locked = %d", ret);
	if (still_ours(&r->l, rep))
		return 1;
	CHILD_CHECK(rep, (ret = gs_rwmutex_tryrlock(r->l.rw)) == 0,
		    "tryrlock = %d", ret);
	CHILD_CHECK(rep, (ret = gs_rwmutex_runlock(r->l.rw)) == 0,
		    "runlock = %d", ret);
	return usable(&r->l, rep);
}

/*
 * The relocks of a checked RWMutex (@rw) or Mutex, @runs times, each time
 * in a new thread: one that hangs fails after the limit.
 */
static void relock_in_threads(struct __test_metadata *_metadata, bool rw,
			      int runs)
{
	struct relock *r = shared_alloc(sizeof(*r));
	struct job j;

	ASSERT_NE(NULL, r);
	ASSERT_EQ(0, lk_create_checked(&r->l, rw));
	EXPECT_TRUE(lk_checked(&r->l));
	EXPECT_TRUE(lot_checked(lk_fd(&r->l)));
	for (int i = 0; i < runs; i++) {
		ASSERT_EQ(0, job_start(&j, rw ? relock_rwmutex : relock_mutex,
				       r));
		JOIN_OK(&j, &r->rep);
	}
	lk_destroy(&r->l);
	munmap(r, sizeof(*r));
}

/* Another thread, after the first: the same. */
TEST_F(dl, checked_mutex_relock_is_edeadlk)
{
	relock_in_threads(_metadata, false, 2);
}

TEST_F(dl, checked_rwmutex_writer_relock_is_edeadlk)
{
	relock_in_threads(_metadata, true, 1);
}

/* The flag, as the lot's status and fdinfo report it; bad creations. */
TEST_F(dl, checked_flag_status_fdinfo_and_einval)
{
	struct gosync_lot_create lc;
	gs_mutex *m = NULL, *u = NULL, *m2 = NULL;
	gs_rwmutex *rw = NULL, *urw = NULL;
	char buf[2048];
	int dev = gs_device_fd(), fd;
	static const uint32_t bad_kinds[] = {
		GOSYNC_LOT_PLAIN, GOSYNC_LOT_WAITGROUP, GOSYNC_LOT_ONCE,
		GOSYNC_LOT_COND, GOSYNC_LOT_BARRIER,
	};
	static const uint32_t good_kinds[] = {
		GOSYNC_LOT_MUTEX, GOSYNC_LOT_RWMUTEX,
	};

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, gs_mutex_create_checked(&m));
	ASSERT_EQ(0, gs_mutex_create(&u));
	ASSERT_EQ(0, gs_rwmutex_create_checked(&rw));
	ASSERT_EQ(0, gs_rwmutex_create(&urw));
	EXPECT_TRUE(gs_mutex_checked(m));
	EXPECT_FALSE(gs_mutex_checked(u));
	EXPECT_TRUE(lot_checked(gs_mutex_fd(m)));
	EXPECT_FALSE(lot_checked(gs_mutex_fd(u)));
	EXPECT_TRUE(lot_checked(gs_rwmutex_fd(rw)));
	EXPECT_FALSE(lot_checked(gs_rwmutex_fd(urw)));
	EXPECT_TRUE(gs_rwmutex_checked(rw));
	EXPECT_FALSE(gs_rwmutex_checked(urw));
	EXPECT_EQ(1, fdinfo_num(gs_mutex_fd(m), "checked"));
	EXPECT_EQ(0, fdinfo_num(gs_mutex_fd(u), "checked"));
	EXPECT_EQ(1, fdinfo_num(gs_rwmutex_fd(rw), "checked"));
	EXPECT_EQ(0, fdinfo_num(gs_rwmutex_fd(urw), "checked"));
	ASSERT_EQ(0, fdinfo_read(gs_mutex_fd(m), buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, "\nid:\t")) TH_LOG("%s", buf);
	EXPECT_LT(0, fdinfo_num(gs_mutex_fd(m), "id"));
	EXPECT_NE(fdinfo_num(gs_mutex_fd(m), "id"),
		  fdinfo_num(gs_mutex_fd(u), "id"));

	/* A handle on a received fd knows the mutex is checked. */
	fd = dup(gs_mutex_fd(m));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, gs_mutex_from_fd(&m2, fd));
	EXPECT_TRUE(gs_mutex_checked(m2));
	EXPECT_EQ(fdinfo_num(gs_mutex_fd(m), "id"),
		  fdinfo_num(gs_mutex_fd(m2), "id"));
	/* Locked through one handle, relocked through the other. */
	ASSERT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(-EDEADLK, gs_mutex_lock(m2));
	EXPECT_EQ(0, gs_mutex_unlock(m2));
	EXPECT_EQ(-EPERM, gs_mutex_unlock(m));
	gs_mutex_destroy(m2);

	/* GOSYNC_LOT_CHECKED is for Mutex and RWMutex lots only. */
	for (size_t i = 0; i < ARRAY_SIZE(bad_kinds); i++) {
		lc = (struct gosync_lot_create){ .kind = bad_kinds[i],
						 .flags = GOSYNC_LOT_CHECKED };
		EXPECT_EQ(-EINVAL, xioctl(dev, GOSYNC_IOC_LOT_CREATE, &lc))
			TH_LOG("kind %u", bad_kinds[i]);
	}
	lc = (struct gosync_lot_create){ .kind = GOSYNC_LOT_MUTEX,
					 .flags = GOSYNC_LOT_CHECKED << 1 };
	EXPECT_EQ(-EINVAL, xioctl(dev, GOSYNC_IOC_LOT_CREATE, &lc));
	for (size_t i = 0; i < ARRAY_SIZE(good_kinds); i++) {
		lc = (struct gosync_lot_create){ .kind = good_kinds[i],
						 .flags = GOSYNC_LOT_CHECKED };
		fd = xioctl(dev, GOSYNC_IOC_LOT_CREATE, &lc);
		EXPECT_LE(0, fd) TH_LOG("kind %u", good_kinds[i]);
		if (fd >= 0) {
			EXPECT_TRUE(lot_checked(fd));
			close(fd);
		}
	}
	gs_mutex_destroy(m);
	gs_mutex_destroy(u);
	gs_rwmutex_destroy(rw);
	gs_rwmutex_destroy(urw);
}

/*
 * A library older than checked locks (it reads the status under the old
 * number) may unlock from any thread: reading it so makes the lot
 * unchecked for good; the kernel no longer refuses a relock of it.
 */
TEST_F(dl, legacy_status_read_unchecks_the_lot)
{
	unsigned char old[64];
	gs_mutex *m = NULL;
	int fd, ret;

#ifndef GOSYNC_IOC_LOT_STATUS_V1
	SKIP(return, "no GOSYNC_IOC_LOT_STATUS_V1 in this uapi header");
#else
	ASSERT_EQ(0, gs_mutex_create_checked(&m));
	fd = gs_mutex_fd(m);
	ASSERT_TRUE(lot_checked(fd));
	ASSERT_EQ(1, fdinfo_num(fd, "checked"));
	ASSERT_GE(sizeof(old), (size_t)_IOC_SIZE(GOSYNC_IOC_LOT_STATUS_V1));
	memset(old, 0xa5, sizeof(old));
	ASSERT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_STATUS_V1, old));
	EXPECT_EQ(GOSYNC_LOT_MUTEX, *(uint32_t *)old);
	/* Nothing written past the old size. */
	EXPECT_TRUE(all_bytes(old + _IOC_SIZE(GOSYNC_IOC_LOT_STATUS_V1), 0xa5,
			      sizeof(old) -
			      _IOC_SIZE(GOSYNC_IOC_LOT_STATUS_V1)));
	EXPECT_FALSE(lot_checked(fd));
	EXPECT_EQ(0, fdinfo_num(fd, "checked"));
	/* The relock (with a deadline: it waits now) is not refused. */
	ASSERT_EQ(0, gs_mutex_lock(m));
	ret = gs_mutex_lock_until(m, gs_deadline_in(BLOCK_WINDOW_MS *
						    NS_PER_MS), 0);
	EXPECT_EQ(-ETIMEDOUT, ret) TH_LOG("%d (%s)", ret, strerror(-ret));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
#endif
}

/* ================================================================== */
/* 2. An unchecked mutex relocked: it blocks, as in Go                  */

/* A thread that holds a lock (and, for some tests, waits for it again). */
struct holder {
	struct lk l;
	atomic_int held;	/* 1: holds it */
	atomic_int release;
	atomic_int ret;		/* a waiter's lock or a relock (1: not yet) */
	pid_t tid;
	struct report rep;
};

/* Sets @h->tid, locks @h->l and says so (@h->held): 0 or the error. */
static int hold(struct holder *h)
{
	int ret;

	h->tid = gs_gettid();
	ret = lk_lock(&h->l);
	if (!ret)
		atomic_store(&h->held, 1);
	return ret;
}

static int unchecked_relock(void *p)
{
	struct holder *b = p;
	int ret;

	CHILD_CHECK(&b->rep, (ret = hold(b)) == 0, "lock = %d", ret);
	ret = lk_lock(&b->l);
	atomic_store(&b->ret, ret);
	CHILD_CHECK(&b->rep, ret == 0, "relock = %d", ret);
	/* Ours now (the other unlock released the first lock). */
	CHILD_CHECK(&b->rep, (ret = lk_unlock(&b->l)) == 0,
		    "unlock = %d", ret);
	CHILD_CHECK(&b->rep, (ret = lk_unlock(&b->l)) == -EPERM,
		    "second unlock = %d", ret);
	return 0;
}

TEST_F(dl, unchecked_relock_blocks_until_another_thread_unlocks)
{
	struct holder *b = shared_alloc(sizeof(*b));
	struct job j;

	ASSERT_NE(NULL, b);
	atomic_store(&b->ret, 1);
	ASSERT_EQ(0, gs_mutex_create(&b->l.m));
	EXPECT_FALSE(gs_mutex_checked(b->l.m));
	EXPECT_FALSE(lot_checked(gs_mutex_fd(b->l.m)));
	ASSERT_EQ(0, job_start(&j, unchecked_relock, b));
	ASSERT_EQ(0, wait_atomic_ge(&b->held, 1));
	ASSERT_EQ(0, wait_blocked(gs_mutex_fd(b->l.m), 1, b->tid));
	EXPECT_TRUE(stays(&b->ret, 1, BLOCK_WINDOW_MS))
		TH_LOG("the relock returned %d", atomic_load(&b->ret));
	EXPECT_WAITING_ON_LOCK(b->tid, "mutex", b->tid, getpid());
	/* Any thread may unlock an unchecked mutex. */
	EXPECT_EQ(0, gs_mutex_unlock(b->l.m));
	JOIN_OK(&j, &b->rep);
	EXPECT_EQ(0, atomic_load(&b->ret));
	EXPECT_EQ(0, gs_mutex_trylock(b->l.m));
	EXPECT_EQ(0, gs_mutex_unlock(b->l.m));
	lk_destroy(&b->l);
	munmap(b, sizeof(*b));
}

/* ================================================================== */
/* 3. A checked lock unlocked by a thread that does not hold it         */

/* Lock, say so, unlock when told. */
static int hold_until_told(void *p)
{
	struct holder *h = p;
	int ret;

	CHILD_CHECK(&h->rep, (ret = hold(h)) == 0, "lock = %d", ret);
	CHILD_CHECK(&h->rep, wait_atomic_ge(&h->release, 1) == 0,
		    "never told to unlock");
	CHILD_CHECK(&h->rep, (ret = lk_unlock(&h->l)) == 0, "unlock = %d",
		    ret);
	return 0;
}

/* Unlock what another thread holds: -EPERM. */
static int unlock_not_held(void *p)
{
	struct holder *h = p;
	int ret = lk_unlock(&h->l);

	CHILD_CHECK(&h->rep, ret == -EPERM, "unlock by non-holder = %d", ret);
	CHILD_CHECK(&h->rep, (ret = lk_trylock(&h->l)) == -EBUSY,
		    "trylock = %d", ret);
	return 0;
}

/* Wait for the lock; record the result; unlock it. */
static int lock_then_unlock(void *p)
{
	struct holder *h = p;
	int ret;

	h->tid = gs_gettid();
	ret = lk_lock(&h->l);
	atomic_store(&h->ret, ret);
	CHILD_CHECK(&h->rep, ret == 0, "lock = %d", ret);
	CHILD_CHECK(&h->rep, (ret = lk_unlock(&h->l)) == 0, "unlock = %d",
		    ret);
	return 0;
}

/* The unlocks of a checked RWMutex (@rw) or Mutex by non-holders. */
static void unlock_by_non_holder(struct __test_metadata *_metadata,
				 struct dl_state *s, bool rw)
{
	struct holder *h = shared_alloc(sizeof(*h));
	struct holder *w = shared_alloc(sizeof(*w));
	struct lk other = { 0 }, lock = { 0 }, *l = &lock;
	struct job jh, jf, jw;
	pid_t pid;

	ASSERT_NE(NULL, h);
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, lk_create_checked(l, rw));
	h->l = *l;
	w->l = *l;
	atomic_store(&w->ret, 1);
	ASSERT_EQ(0, job_start(&jh, hold_until_told, h));
	ASSERT_EQ(0, wait_atomic_ge(&h->held, 1));

	/* A thread that has locked something else (it has an owner handle). */
	ASSERT_EQ(0, gs_mutex_create_checked(&other.m));
	ASSERT_EQ(0, gs_mutex_lock(other.m));
	EXPECT_EQ(0, gs_mutex_unlock(other.m));
	EXPECT_EQ(-EPERM, lk_unlock(l));
	EXPECT_EQ(-EBUSY, lk_trylock(l));
	/* A thread that never locked anything. */
	ASSERT_EQ(0, job_start(&jf, unlock_not_held, h));
	JOIN_OK(&jf, &h->rep);
	/* Another process. */
	pid = spawn(s, unlock_not_held, h);
	ASSERT_LT(0, pid);
	REAP_OK(s, pid, &h->rep);

	/* With a waiter parked: it stays parked. */
	ASSERT_EQ(0, job_start(&jw, lock_then_unlock, w));
	ASSERT_EQ(0, wait_parked(lk_fd(l), 1));
	EXPECT_EQ(-EPERM, lk_unlock(l));
	EXPECT_TRUE(stays(&w->ret, 1, BLOCK_WINDOW_MS))
		TH_LOG("the waiter's lock returned %d", atomic_load(&w->ret));
	EXPECT_EQ(0, wait_parked(lk_fd(l), 1));
	EXPECT_WAITING_ON_LOCK(w->tid, lk_kind(l), h->tid, getpid());
	/* The holder's unlock serves it. */
	atomic_store(&h->release, 1);
	JOIN_OK(&jh, &h->rep);
	JOIN_OK(&jw, &w->rep);
	EXPECT_EQ(0, atomic_load(&w->ret));
	/* Free: an unlock of it is refused too. */
	EXPECT_EQ(-EPERM, lk_unlock(l));
	EXPECT_EQ(0, lk_trylock(l));
	EXPECT_EQ(0, lk_unlock(l));
	lk_destroy(&other);
	lk_destroy(l);
	munmap(h, sizeof(*h));
	munmap(w, sizeof(*w));
}

TEST_F(dl, checked_mutex_unlock_by_non_holder_is_eperm)
{
	unlock_by_non_holder(_metadata, &self->s, false);
}

TEST_F(dl, checked_rwmutex_unlock_by_non_holder_is_eperm)
{
	unlock_by_non_holder(_metadata, &self->s, true);
}

/* ================================================================== */
/* 4. Two processes locking in opposite orders                          */

/*
 * two_process_deadlock() on A (an RWMutex if @a_rw) and B (one if
 * @b_rw), then again on A and B, a new one if @then_b_rw says another
 * kind: the same objects again are refused again (only the log is once).
 */
static void opposite_orders_twice(struct __test_metadata *_metadata,
				  struct dl_state *s, bool a_rw, bool b_rw,
				  bool then_b_rw)
{
	struct lk a = { 0 }, b = { 0 };

	ASSERT_EQ(0, lk_create_checked(&a, a_rw));
	ASSERT_EQ(0, lk_create_checked(&b, b_rw));
	two_process_deadlock(_metadata, s, &a, &b, NULL);
	if (then_b_rw != b_rw) {
		lk_destroy(&b);
		ASSERT_EQ(0, lk_create_checked(&b, then_b_rw));
	}
	two_process_deadlock(_metadata, s, &a, &b, NULL);
	lk_destroy(&a);
	lk_destroy(&b);
}

TEST_F(dl, two_processes_opposite_order)
{
	opposite_orders_twice(_metadata, &self->s, false, false, false);
}

TEST_F(dl, two_processes_opposite_order_rwmutex_writers)
{
	opposite_orders_twice(_metadata, &self->s, true, false, true);
}

/* ================================================================== */
/* 5, 6. Cycles of parties (threads or processes), watched from outside */

#define MAX_PARTIES	3

struct cycle {
	struct lk lk[MAX_PARTIES];
	int n;
	atomic_int held[MAX_PARTIES];	/* party i holds lk[i] */
	atomic_int go[MAX_PARTIES];	/* party i: lock lk[i + 1] now */
	atomic_int ret[MAX_PARTIES];	/* that lock's result; 1: not yet */
	atomic_int release[MAX_PARTIES];	/* the refused: unlock now */
	atomic_int finished[MAX_PARTIES];
	pid_t tid[MAX_PARTIES];
	pid_t tgid[MAX_PARTIES];
	struct report rep[MAX_PARTIES];
	struct cycle_arg {
		struct cycle *c;
		int i;
	} arg[MAX_PARTIES];
};

/*
 * Party i holds lk[i] and then locks lk[i + 1] (mod n). Refused with
 * -EDEADLK, it checks that it holds lk[i] still and not lk[i + 1], and
 * unlocks lk[i] when told; served, it unlocks both.
 */
static int party_main(void *p)
{
	struct cycle_arg *a = p;
	struct cycle *c = a->c;
	int i = a->i, ret;
	struct lk *mine = &c->lk[i], *next = &c->lk[(i + 1) % c->n];
	struct report *rep = &c->rep[i];

	c->tid[i] = gs_gettid();
	c->tgid[i] = getpid();
	CHILD_CHECK(rep, (ret = lk_lock(mine)) == 0, "%d: lock = %d", i, ret);
	atomic_store(&c->held[i], 1);
	CHILD_CHECK(rep, wait_atomic_ge(&c->go[i], 1) == 0, "%d: no go", i);
	ret = lk_lock(next);
	atomic_store(&c->ret[i], ret);
	if (ret == 0) {
		CHILD_CHECK(rep, (ret = lk_unlock(next)) == 0,
			    "%d: unlock next = %d", i, ret);
		CHILD_CHECK(rep, (ret = lk_unlock(mine)) == 0,
			    "%d: unlock mine = %d", i, ret);
	} else if (ret == -EDEADLK) {
		/* Not ours: its holder is parked on the next lock. */
		CHILD_CHECK(rep, (ret = lk_unlock(next)) == -EPERM,
			    "%d: unlock of the lock refused = %d", i, ret);
		CHILD_CHECK(rep, wait_atomic_ge(&c->release[i], 1) == 0,
			    "%d: never released", i);
		CHILD_CHECK(rep, (ret = lk_unlock(mine)) == 0,
			    "%d: unlock mine after -EDEADLK = %d", i, ret);
	}
	atomic_store(&c->finished[i], 1);
	return 0;
}

/*
 * The cycle of @n parties on @lks (checked): each party but the last
 * blocks in turn, the last one's lock closes the cycle and is refused;
 * when it lets go of its own lock, the others complete in turn.
 */
static void run_cycle(struct __test_metadata *_metadata, struct dl_state *s,
		      struct lk *lks, int n, bool procs)
{
	struct cycle *c = shared_alloc(sizeof(*c));
	struct job jobs[MAX_PARTIES];
	pid_t pids[MAX_PARTIES] = { 0 };
	int i, last = n - 1;

	ASSERT_NE(NULL, c);
	ASSERT_GE(MAX_PARTIES, n);
	c->n = n;
	for (i = 0; i < n; i++) {
		c->lk[i] = lks[i];
		atomic_store(&c->ret[i], 1);
		c->arg[i] = (struct cycle_arg){ c, i };
		if (procs) {
			pids[i] = spawn(s, party_main, &c->arg[i]);
			ASSERT_LT(0, pids[i]);
		} else {
			ASSERT_EQ(0, job_start(&jobs[i], party_main,
					       &c->arg[i]));
		}
	}
	for (i = 0; i < n; i++)
		ASSERT_EQ(0, wait_atomic_ge(&c->held[i], 1));
	/* Each but the last blocks on the next one's lock, in turn. */
	for (i = 0; i < last; i++) {
		atomic_store(&c->go[i], 1);
		ASSERT_EQ(0, wait_blocked(lk_fd(&c->lk[i + 1]), 1, c->tid[i]))
			TH_LOG("party %d never parked", i);
		EXPECT_TRUE(stays(&c->ret[i], 1, BLOCK_WINDOW_MS))
			TH_LOG("party %d's lock returned %d", i,
			       atomic_load(&c->ret[i]));
		EXPECT_WAITING_ON_LOCK(c->tid[i], lk_kind(&c->lk[i + 1]),
				       c->tid[i + 1], c->tgid[i + 1]);
	}
	/* The last one closes the cycle. */
	atomic_store(&c->go[last], 1);
	ASSERT_EQ(0, wait_atomic_ne(&c->ret[last], 1))
		TH_LOG("the lock closing the cycle hangs");
	EXPECT_EQ(-EDEADLK, atomic_load(&c->ret[last]))
		TH_LOG("the lock closing the cycle: %d",
		       atomic_load(&c->ret[last]));
	/* Nothing else moved: the others wait, the refused holds its own. */
	for (i = 0; i < last; i++) {
		EXPECT_EQ(1, atomic_load(&c->ret[i])) TH_LOG("party %d", i);
		EXPECT_EQ(0, wait_parked(lk_fd(&c->lk[i + 1]), 1));
	}
	EXPECT_EQ(0, wait_parked(lk_fd(&c->lk[0]), 0));
	EXPECT_EQ(-EBUSY, lk_trylock(&c->lk[last]));
	/* It lets go: the others complete. */
	atomic_store(&c->release[last], 1);
	for (i = 0; i < n; i++) {
		if (procs) {
			REAP_OK(s, pids[i], &c->rep[i]);
		} else {
			JOIN_OK(&jobs[i], &c->rep[i]);
		}
		EXPECT_EQ(1, atomic_load(&c->finished[i])) TH_LOG("party %d", i);
	}
	for (i = 0; i < last; i++)
		EXPECT_EQ(0, atomic_load(&c->ret[i])) TH_LOG("party %d", i);
	for (i = 0; i < n; i++) {
		EXPECT_EQ(0, lk_trylock(&c->lk[i])) TH_LOG("lock %d", i);
		EXPECT_EQ(0, lk_unlock(&c->lk[i]));
	}
	munmap(c, sizeof(*c));
}

FIXTURE(cycle) {
	struct dl_state s;
};

FIXTURE_VARIANT(cycle) {
	int n;
	bool procs;
	bool rw;	/* lk[0] is an RWMutex (writer lock) */
};

FIXTURE_VARIANT_ADD(cycle, two_threads) { .n = 2, .procs = false };
FIXTURE_VARIANT_ADD(cycle, two_processes) { .n = 2, .procs = true };
FIXTURE_VARIANT_ADD(cycle, three_threads) { .n = 3, .procs = false };
FIXTURE_VARIANT_ADD(cycle, three_processes) { .n = 3, .procs = true };
FIXTURE_VARIANT_ADD(cycle, two_threads_rwmutex) {
	.n = 2, .procs = false, .rw = true,
};
FIXTURE_VARIANT_ADD(cycle, three_processes_rwmutex) {
	.n = 3, .procs = true, .rw = true,
};

DL_FIXTURE(cycle)

TEST_F(cycle, last_to_block_gets_edeadlk)
{
	struct lk lks[MAX_PARTIES] = { 0 };
	int i;

	for (i = 0; i < variant->n; i++) {
		ASSERT_EQ(0, lk_create_checked(&lks[i], i == 0 && variant->rw));
	}
	run_cycle(_metadata, &self->s, lks, variant->n, variant->procs);
	/* Again on the same objects: refused again, and nothing stuck. */
	run_cycle(_metadata, &self->s, lks, variant->n, variant->procs);
	for (i = 0; i < variant->n; i++)
		lk_destroy(&lks[i]);
}

/* ================================================================== */
/* The optional tracepoint: gosync:gosync_deadlock per refusal          */

TEST_F(dl, cycle_is_traced)
{
	struct dl_state *s = &self->s;
	struct lk lks[2] = { 0 };
	char path[256], on[8], *buf, *line, *save = NULL;
	int events = 0;

	s->trace_dir = tracefs_dir();
	if (!s->trace_dir)
		SKIP(return, "no tracefs");
	snprintf(path, sizeof(path), "%s/events/gosync", s->trace_dir);
	if (access(path, F_OK))
		SKIP(return, "%s: tracing without the gosync events", path);
	snprintf(path, sizeof(path), "%s/events/gosync/gosync_deadlock",
		 s->trace_dir);
	ASSERT_EQ(0, access(path, F_OK)) TH_LOG("%s: %s", path,
						strerror(errno));
	ASSERT_LT(0, tracefs_read(s->trace_dir,
				  "events/gosync/gosync_deadlock/enable", on,
				  sizeof(on)));
	if (on[0] == '1')
		SKIP(return, "gosync_deadlock is enabled already (by whom?)");
	/* As trace_test: no command-name recording (see there why). */
	if (tracefs_read(s->trace_dir, "options/record-cmd", s->record_cmd_was,
			 sizeof(s->record_cmd_was)) < 1)
		s->record_cmd_was[0] = '\0';
	if (tracefs_read(s->trace_dir, "tracing_on", s->tracing_on_was,
			 sizeof(s->tracing_on_was)) < 1)
		s->tracing_on_was[0] = '\0';
	tracefs_write(s->trace_dir, "options/record-cmd", "0");
	s->trace_enabled = true;
	ASSERT_EQ(0, tracefs_write(s->trace_dir,
				   "events/gosync/gosync_deadlock/enable", "1"));
	ASSERT_EQ(0, tracefs_write(s->trace_dir, "tracing_on", "0"));
	ASSERT_EQ(0, tracefs_write(s->trace_dir, "trace", ""));
	ASSERT_EQ(0, tracefs_write(s->trace_dir, "tracing_on", "1"));

	ASSERT_EQ(0, gs_mutex_create_checked(&lks[0].m));
	ASSERT_EQ(0, gs_mutex_create_checked(&lks[1].m));
	run_cycle(_metadata, s, lks, 2, false);
	run_cycle(_metadata, s, lks, 2, false);

	ASSERT_EQ(0, tracefs_write(s->trace_dir, "tracing_on", "0"));
	snprintf(path, sizeof(path), "%s/trace", s->trace_dir);
	buf = read_all(path);
	ASSERT_NE(NULL, buf);
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || !strstr(line, ": gosync_deadlock:"))
			continue;
		TH_LOG("traced: %s", line);
		events++;
	}
	free(buf);
	/* Each refusal is traced (only the log line is once per pair). */
	EXPECT_EQ(2, events);
	lk_destroy(&lks[0]);
	lk_destroy(&lks[1]);
}

/* ================================================================== */
/* A Cond's relock that closes a cycle                                  */

struct condcyc {
	struct lk m, n;
	gs_cond *c;
	atomic_int t1_waiting;	/* T1 holds N and is in the Cond wait */
	atomic_int t1_ret;	/* gs_cond_wait's result; 1: not yet */
	atomic_int t2_ret;	/* T2's lock of N; 1: not yet */
	atomic_int t2_has_m;
	pid_t t1, t2;
	struct report rep1, rep2;
};

/* T1: holds N, waits on the Cond with M; its relock of M closes a cycle. */
static int cond_t1(void *p)
{
	struct condcyc *x = p;
	int ret;

	x->t1 = gs_gettid();
	CHILD_CHECK(&x->rep1, gs_mutex_lock(x->n.m) == 0, "lock N");
	CHILD_CHECK(&x->rep1, gs_mutex_lock(x->m.m) == 0, "lock M");
	atomic_store(&x->t1_waiting, 1);
	ret = gs_cond_wait(x->c, x->m.m);
	atomic_store(&x->t1_ret, ret);
	CHILD_CHECK(&x->rep1, ret == -EDEADLK, "cond wait = %d (%s)", ret,
		    strerror(-ret));
	/* M is not ours (T2 has it); N still is. */
	CHILD_CHECK(&x->rep1, (ret = gs_mutex_unlock(x->m.m)) == -EPERM,
		    "unlock M = %d", ret);
	CHILD_CHECK(&x->rep1, (ret = gs_mutex_unlock(x->n.m)) == 0,
		    "unlock N = %d", ret);
	return 0;
}

/* T2: takes M (free while T1 waits), then N (held by T1). */
static int cond_t2(void *p)
{
	struct condcyc *x = p;

	return lock_two(&(struct two_locks){
		"t2", &x->m, &x->n, &x->t2_has_m, NULL, &x->t2_ret, &x->t2,
		&x->rep2, 0 });
}

TEST_F(dl, cond_relock_closing_a_cycle_is_edeadlk)
{
	struct condcyc *x = shared_alloc(sizeof(*x));
	struct job j1, j2;

	ASSERT_NE(NULL, x);
	atomic_store(&x->t1_ret, 1);
	atomic_store(&x->t2_ret, 1);
	ASSERT_EQ(0, gs_mutex_create_checked(&x->m.m));
	ASSERT_EQ(0, gs_mutex_create_checked(&x->n.m));
	ASSERT_EQ(0, gs_cond_create(&x->c));
	ASSERT_EQ(0, job_start(&j1, cond_t1, x));
	ASSERT_EQ(0, wait_atomic_ge(&x->t1_waiting, 1));
	ASSERT_EQ(0, job_start(&j2, cond_t2, x));
	/* T2 got M (T1's wait let it go) and waits for N. */
	ASSERT_EQ(0, wait_atomic_ge(&x->t2_has_m, 1));
	ASSERT_EQ(0, wait_blocked(gs_mutex_fd(x->n.m), 1, x->t2));
	EXPECT_TRUE(stays(&x->t2_ret, 1, BLOCK_WINDOW_MS));
	EXPECT_EQ(1, atomic_load(&x->t1_ret));
	/* Wake T1: its relock of M (held by T2, who waits on T1's N). */
	gs_cond_signal(x->c);
	ASSERT_EQ(0, wait_atomic_ne(&x->t1_ret, 1));
	JOIN_OK(&j1, &x->rep1);
	JOIN_OK(&j2, &x->rep2);
	EXPECT_EQ(-EDEADLK, atomic_load(&x->t1_ret));
	EXPECT_EQ(0, atomic_load(&x->t2_ret));
	EXPECT_EQ(0, gs_mutex_trylock(x->m.m));
	EXPECT_EQ(0, gs_mutex_unlock(x->m.m));
	EXPECT_EQ(0, gs_mutex_trylock(x->n.m));
	EXPECT_EQ(0, gs_mutex_unlock(x->n.m));
	gs_cond_destroy(x->c);
	gs_mutex_destroy(x->m.m);
	gs_mutex_destroy(x->n.m);
	munmap(x, sizeof(*x));
}

/* ================================================================== */
/* 8, 9. What makes new locks checked                                   */

/* @m is checked: its relock is refused (and it stays usable). */
static int relock_refused(gs_mutex *m)
{
	int ret = gs_mutex_lock(m);

	if (ret)
		return ret;
	ret = gs_mutex_lock(m);
	gs_mutex_unlock(m);
	return ret;
}

/*
 * @m is not checked: a relock waits until its deadline, BLOCK_WINDOW_MS
 * ahead (-ETIMEDOUT).
 */
static int relock_times_out(gs_mutex *m)
{
	int ret = gs_mutex_lock(m);

	if (ret)
		return ret;
	ret = gs_mutex_lock_until(m, gs_deadline_in(BLOCK_WINDOW_MS *
						    NS_PER_MS), 0);
	gs_mutex_unlock(m);
	return ret;
}

/*
 * A new Mutex (into *@m) and, if @rw is set, a new RWMutex (into *@rw)
 * are checked if @want, unchecked if not: their handles and their lots
 * say so, and the Mutex's relock is refused (checked) or waits until its
 * deadline (unchecked).
 */
static void expect_new_locks(struct __test_metadata *_metadata, gs_mutex **m,
			     gs_rwmutex **rw, bool want)
{
	ASSERT_EQ(0, gs_mutex_create(m));
	EXPECT_EQ(want, gs_mutex_checked(*m));
	EXPECT_EQ(want, lot_checked(gs_mutex_fd(*m)));
	if (rw) {
		ASSERT_EQ(0, gs_rwmutex_create(rw));
		EXPECT_EQ(want, lot_checked(gs_rwmutex_fd(*rw)));
		EXPECT_EQ(want, gs_rwmutex_checked(*rw));
	}
	if (want) {
		EXPECT_EQ(-EDEADLK, relock_refused(*m));
	} else {
		EXPECT_EQ(-ETIMEDOUT, relock_times_out(*m));
	}
}

TEST_F(dl, module_param_detect_deadlocks)
{
	struct dl_state *s = &self->s;
	gs_mutex *m = NULL, *u = NULL;
	gs_rwmutex *rw = NULL;
	char was[8];

	if (geteuid())
		SKIP(return, "needs root, to set the module's parameters");
	if (param_read_str("detect_deadlocks", was, sizeof(was)))
		SKIP(return, "no parameter detect_deadlocks");
	snprintf(s->detect_was, sizeof(s->detect_was), "%s", was);
	s->detect_saved = true;

	ASSERT_EQ(0, param_write("detect_deadlocks", "Y"));
	ASSERT_EQ(0, param_read_str("detect_deadlocks", was, sizeof(was)));
	EXPECT_STREQ("Y", was);
	expect_new_locks(_metadata, &m, &rw, true);
	EXPECT_EQ(1, fdinfo_num(gs_mutex_fd(m), "checked"));
	ASSERT_EQ(0, gs_rwmutex_lock(rw));
	EXPECT_EQ(-EDEADLK, gs_rwmutex_lock(rw));
	EXPECT_EQ(0, gs_rwmutex_unlock(rw));

	ASSERT_EQ(0, param_write("detect_deadlocks", "N"));
	expect_new_locks(_metadata, &u, NULL, false);
	/* What was made checked stays so. */
	EXPECT_TRUE(gs_mutex_checked(m));
	EXPECT_EQ(-EDEADLK, relock_refused(m));
	gs_mutex_destroy(m);
	gs_mutex_destroy(u);
	gs_rwmutex_destroy(rw);
	/* Put back by the teardown. */
}

TEST_F(dl, gs_check_locks_per_process)
{
	gs_mutex *m = NULL, *u = NULL, *nm = NULL;
	gs_rwmutex *rw = NULL, *urw = NULL;
	char name[64];
	int ret;

	/* Off by default (unless the environment says otherwise). */
	if (!getenv("GOSYNC_CHECK_LOCKS")) {
		ASSERT_EQ(0, gs_mutex_create(&u));
		EXPECT_FALSE(gs_mutex_checked(u));
		gs_mutex_destroy(u);
		u = NULL;
	}
	gs_check_locks(true);
	expect_new_locks(_metadata, &m, &rw, true);
	snprintf(name, sizeof(name), "/deadlock_test.%d", (int)getpid());
	ret = gs_mutex_open(&nm, name, GS_O_CREAT | GS_O_EXCL, 0600);
	if (ret == 0) {
		EXPECT_TRUE(gs_mutex_checked(nm));
		EXPECT_TRUE(lot_checked(gs_mutex_fd(nm)));
		EXPECT_EQ(-EDEADLK, relock_refused(nm));
		EXPECT_EQ(0, gs_unlink(name));
		gs_mutex_destroy(nm);
	} else {
		TH_LOG("gs_mutex_open: %d (named objects not checked)", ret);
	}

	gs_check_locks(false);
	expect_new_locks(_metadata, &u, &urw, false);
	/* Checked ones stay checked. */
	EXPECT_TRUE(gs_mutex_checked(m));
	gs_mutex_destroy(m);
	gs_mutex_destroy(u);
	gs_rwmutex_destroy(rw);
	gs_rwmutex_destroy(urw);
}

/*
 * The environment variable, read at start: this binary, exec'ed with
 * DEADLOCK_TEST_PROBE_FD set, reports on that fd (before the harness
 * runs) whether a Mutex and an RWMutex it creates are checked.
 */
#define PROBE_ENV	"DEADLOCK_TEST_PROBE_FD"

__attribute__((constructor)) static void check_locks_probe(void)
{
	const char *v = getenv(PROBE_ENV);
	gs_mutex *m = NULL;
	gs_rwmutex *rw = NULL;
	char out[2] = { '?', '?' };

	if (!v)
		return;
	if (gs_mutex_create(&m) == 0)
		out[0] = gs_mutex_checked(m) ? '1' : '0';
	if (gs_rwmutex_create(&rw) == 0)
		out[1] = gs_rwmutex_checked(rw) &&
			 lot_checked(gs_rwmutex_fd(rw)) ? '1' : '0';
	if (write(atoi(v), out, 2) != 2)
		_exit(2);
	_exit(0);
}

/* Exec this binary with GOSYNC_CHECK_LOCKS @env (NULL: unset). */
static int probe_checked(const char *env, char out[3])
{
	int p[2], status;
	char fdstr[16];
	struct pollfd pfd;
	ssize_t n = 0;
	pid_t pid;

	if (pipe(p))
		return -errno;
	pid = fork_child();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(p[0]);
		snprintf(fdstr, sizeof(fdstr), "%d", p[1]);
		setenv(PROBE_ENV, fdstr, 1);
		if (env)
			setenv("GOSYNC_CHECK_LOCKS", env, 1);
		else
			unsetenv("GOSYNC_CHECK_LOCKS");
		execl("/proc/self/exe", "deadlock_test", (char *)NULL);
		_exit(3);
	}
	close(p[1]);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	if (poll(&pfd, 1, WAIT_LIMIT_MS) == 1)
		n = read(p[0], out, 2);
	close(p[0]);
	out[n > 0 ? n : 0] = '\0';
	if (wait_child(pid, &status, WAIT_LIMIT_MS))
		return -ETIMEDOUT;
	return WIFEXITED(status) && !WEXITSTATUS(status) && n == 2 ? 0 : -EIO;
}

TEST_F(dl, env_gosync_check_locks)
{
	char out[3];

	ASSERT_EQ(0, probe_checked("1", out)) TH_LOG("out '%s'", out);
	EXPECT_STREQ("11", out);
	ASSERT_EQ(0, probe_checked(NULL, out)) TH_LOG("out '%s'", out);
	EXPECT_STREQ("00", out);
}

/* ================================================================== */
/* 10. Near misses: no -EDEADLK, everything completes, nothing logged   */

struct near {
	struct lk a, b, c;
	gs_chan *ch;
	uint64_t deadline_ns;
	atomic_int step_child;	/* the child: 1 holds B; 2 lock returned */
	atomic_int step_t;	/* the parent's thread: 1 holds A */
	atomic_int go_t;	/* the thread: lock B now */
	atomic_int cancel;	/* the child's canceller: cancel now */
	atomic_int child_ret;	/* 1: not yet */
	atomic_int t_ret;	/* 1: not yet */
	atomic_int t_started;	/* x->t is set */
	pid_t child, t;
	struct report rep, trep;
	struct report rep3;	/* the chain's third party's */
	int sv[2];		/* (f) the socket the channel's fd is in */
	atomic_int go_p3;	/* (f) P3: receive the fd and send */
};

/*
 * A party that waits for one lock: it sets *@tid, says so (*@started =
 * 1), locks @l (its result into *@ret, then *@started = 2) and unlocks it.
 */
static int lock_one(struct lk *l, pid_t *tid, atomic_int *started,
		    atomic_int *ret, struct report *rep)
{
	int r;

	*tid = gs_gettid();
	atomic_store(started, 1);
	r = lk_lock(l);
	atomic_store(ret, r);
	atomic_store(started, 2);
	CHILD_CHECK(rep, r == 0, "lock = %d", r);
	CHILD_CHECK(rep, lk_unlock(l) == 0, "unlock");
	return 0;
}

/*
 * A party of a near miss, lock_two() on the fields of struct near named:
 * it locks @first, then @second.
 */
#define NEAR_PARTY(name, who, first, second, held, go, ret, tid, rep, unl) \
static int name(void *p)						\
{									\
	struct near *x = p;						\
									\
	return lock_two(&(struct two_locks){				\
		(who), &x->first, &x->second, &x->held, &x->go, &x->ret, \
		&x->tid, &x->rep, (unl) });				\
}

/* The parent's thread: A, then (told) B, which must block, then both. */
NEAR_PARTY(near_thread, "thread", a, b, step_t, go_t, t_ret, t, trep, 0)

/* The child: B, then A until a deadline; then gives B up. */
static int near_child_deadline(void *p)
{
	struct near *x = p;
	int ret;

	x->child = gs_gettid();
	CHILD_CHECK(&x->rep, lk_lock(&x->b) == 0, "child: lock B");
	atomic_store(&x->step_child, 1);
	CHILD_CHECK(&x->rep, wait_atomic_ge(&x->step_t, 1) == 0, "no A");
	ret = gs_mutex_lock_until(x->a.m, gs_deadline_in(x->deadline_ns), 0);
	atomic_store(&x->child_ret, ret);
	atomic_store(&x->step_child, 2);
	CHILD_CHECK(&x->rep, ret == -ETIMEDOUT, "child: lock_until A = %d",
		    ret);
	CHILD_CHECK(&x->rep, lk_unlock(&x->b) == 0, "child: unlock B");
	return 0;
}

struct cancel_arg {
	struct near *x;
	gs_ctx *ctx;
};

static int canceller(void *p)
{
	struct cancel_arg *c = p;

	if (wait_atomic_ge(&c->x->cancel, 1))
		return 1;
	gs_ctx_cancel(c->ctx);
	return 0;
}

/* The child: B, then A with a cancellable context; cancelled, gives up B. */
static int near_child_ctx(void *p)
{
	struct near *x = p;
	struct cancel_arg ca = { x, NULL };
	struct job j;
	int ret;

	x->child = gs_gettid();
	CHILD_CHECK(&x->rep, gs_ctx_with_cancel(gs_ctx_background(),
						&ca.ctx) == 0, "ctx");
	CHILD_CHECK(&x->rep, job_start(&j, canceller, &ca) == 0, "thread");
	CHILD_CHECK(&x->rep, lk_lock(&x->b) == 0, "child: lock B");
	atomic_store(&x->step_child, 1);
	CHILD_CHECK(&x->rep, wait_atomic_ge(&x->step_t, 1) == 0, "no A");
	ret = gs_mutex_lock_ctx(x->a.m, ca.ctx);
	atomic_store(&x->child_ret, ret);
	atomic_store(&x->step_child, 2);
	CHILD_CHECK(&x->rep, ret == -ECANCELED, "child: lock_ctx A = %d (%s)",
		    ret, strerror(-ret));
	CHILD_CHECK(&x->rep, lk_unlock(&x->b) == 0, "child: unlock B");
	CHILD_CHECK(&x->rep, join_ms(j.thr, WAIT_LIMIT_MS) == 0, "join");
	gs_ctx_release(ca.ctx);
	return 0;
}

/* No "gosync: deadlock:" line since @k was opened (if it was). */
#define EXPECT_NO_DEADLOCK_LOGGED(k) do {				\
	char l_[1024];							\
	int n_;								\
	if ((k) < 0) {							\
		TH_LOG("/dev/kmsg not readable: the log is not checked"); \
		break;							\
	}								\
	n_ = kmsg_count_to_mark((k), match_deadlock, NULL, l_, sizeof(l_)); \
	EXPECT_EQ(0, n_) TH_LOG("logged: %s", l_);			\
} while (0)

/*
 * A near miss's shared state: the results "not yet" (1), A and B checked
 * Mutexes; *@k: the kernel log from here on (or a negative errno).
 */
static struct near *near_new(struct __test_metadata *_metadata, int *k)
{
	struct near *x = shared_alloc(sizeof(*x));

	*k = kmsg_open();
	ASSERT_NE(NULL, x);
	atomic_store(&x->child_ret, 1);
	atomic_store(&x->t_ret, 1);
	ASSERT_EQ(0, gs_mutex_create_checked(&x->a.m));
	ASSERT_EQ(0, gs_mutex_create_checked(&x->b.m));
	return x;
}

/* What near_new() made, and whatever the test added, let go of. */
static void near_free(struct near *x, int k)
{
	if (k >= 0)
		close(k);
	gs_chan_destroy(x->ch);
	lk_destroy(&x->a);
	lk_destroy(&x->b);
	lk_destroy(&x->c);
	munmap(x, sizeof(*x));
}

/* The end of a near miss: nothing logged, everything let go of. */
#define NEAR_DONE(x, k) do {						\
	EXPECT_NO_DEADLOCK_LOGGED(k);					\
	near_free((x), (k));						\
} while (0)

/*
 * (a) A cycle of which one wait has a deadline: the lock closing it
 * blocks and gets the mutex once that wait has timed out. Whether the
 * closing lock parked before the deadline passed is the machine's speed:
 * a run counts when the thread was seen parked on B while the child's
 * timed wait for A had not returned yet (so the child was parked on A
 * when the thread's park looked for a cycle); one that did not is done
 * again with a deadline twice as far.
 */
TEST_F(dl, near_miss_cycle_with_a_deadline)
{
	struct dl_state *s = &self->s;
	uint64_t deadline = 300 * NS_PER_MS;
	bool done = false;
	int k, attempt, r;
	struct near *x = near_new(_metadata, &k);

	for (attempt = 0; attempt < 6 && !done; attempt++, deadline *= 2) {
		bool counts = false;
		struct job jt;
		pid_t pid;

		atomic_store(&x->step_child, 0);
		atomic_store(&x->step_t, 0);
		atomic_store(&x->go_t, 0);
		atomic_store(&x->child_ret, 1);
		atomic_store(&x->t_ret, 1);
		x->deadline_ns = deadline;
		ASSERT_EQ(0, job_start(&jt, near_thread, x));
		ASSERT_EQ(0, wait_atomic_ge(&x->step_t, 1));
		pid = spawn(s, near_child_deadline, x);
		ASSERT_LT(0, pid);
		ASSERT_EQ(0, wait_atomic_ge(&x->step_child, 1));
		/* The child waits for A, with its deadline... */
		r = wait_parked_or(lk_fd(&x->a), 1, &x->child_ret, 1);
		ASSERT_LE(0, r);
		/* ...when the thread's lock of B closes the cycle. */
		atomic_store(&x->go_t, 1);
		if (r == 0) {
			r = wait_parked_or(lk_fd(&x->b), 1, &x->child_ret, 1);
			ASSERT_LE(0, r);
			counts = r == 0 && atomic_load(&x->child_ret) == 1;
			if (counts) {
				EXPECT_EQ(1, atomic_load(&x->t_ret))
					TH_LOG("the closing lock returned %d",
					       atomic_load(&x->t_ret));
			}
		}
		REAP_OK(s, pid, &x->rep);
		JOIN_OK(&jt, &x->trep);
		EXPECT_EQ(-ETIMEDOUT, atomic_load(&x->child_ret));
		EXPECT_EQ(0, atomic_load(&x->t_ret));
		done = counts;
		if (!done)
			TH_LOG("attempt %d: the thread did not wait for B "
			       "within the child's %ju ms", attempt,
			       (uintmax_t)(deadline / NS_PER_MS));
	}
	EXPECT_TRUE(done) TH_LOG("never got the thread waiting in time");
	NEAR_DONE(x, k);
}

/* (a') The same with a cancellable context: deterministic. */
TEST_F(dl, near_miss_cycle_with_a_cancellable_wait)
{
	struct dl_state *s = &self->s;
	struct job jt;
	pid_t pid;
	int k;
	struct near *x = near_new(_metadata, &k);

	ASSERT_EQ(0, job_start(&jt, near_thread, x));
	ASSERT_EQ(0, wait_atomic_ge(&x->step_t, 1));
	pid = spawn(s, near_child_ctx, x);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_atomic_ge(&x->step_child, 1));
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->a), 1, pid));
	/* The thread's lock of B closes the cycle: it blocks. */
	atomic_store(&x->go_t, 1);
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->b), 1, x->t));
	EXPECT_TRUE(stays(&x->t_ret, 1, BLOCK_WINDOW_MS))
		TH_LOG("the lock closing the cycle returned %d",
		       atomic_load(&x->t_ret));
	EXPECT_EQ(1, atomic_load(&x->child_ret));
	if (waits_available()) {
		struct wait_line wl;

		ASSERT_EQ(1, waits_find(pid, &wl, NULL, 0));
		EXPECT_STREQ("0", wl.f[W_FOREVER]) TH_LOG("%s", wl.text);
		EXPECT_WAITING_ON_LOCK(x->t, "mutex", pid, pid);
	}
	/* Cancelled, the child gives B up: the thread gets it. */
	atomic_store(&x->cancel, 1);
	REAP_OK(s, pid, &x->rep);
	JOIN_OK(&jt, &x->trep);
	EXPECT_EQ(-ECANCELED, atomic_load(&x->child_ret));
	EXPECT_EQ(0, atomic_load(&x->t_ret));
	NEAR_DONE(x, k);
}

/* A child that waits for @x->a (held by the parent) and then unlocks it. */
static int wait_for_a(void *p)
{
	struct near *x = p;

	return lock_one(&x->a, &x->child, &x->step_child, &x->child_ret,
			&x->rep);
}

/* (b) The holder is not blocked: it unlocks later. */
TEST_F(dl, near_miss_holder_not_blocked)
{
	struct dl_state *s = &self->s;
	pid_t pid;
	int k;
	struct near *x = near_new(_metadata, &k);

	/* We hold A and B; the child waits for A. */
	ASSERT_EQ(0, lk_lock(&x->a));
	ASSERT_EQ(0, lk_lock(&x->b));
	pid = spawn(s, wait_for_a, x);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->a), 1, pid));
	EXPECT_TRUE(stays(&x->child_ret, 1, BLOCK_WINDOW_MS));
	EXPECT_WAITING_ON_LOCK(pid, "mutex", gs_gettid(), getpid());
	/* Busy elsewhere (not in a gosync wait), then let go. */
	sleep_ms(BLOCK_WINDOW_MS);
	EXPECT_EQ(1, atomic_load(&x->child_ret));
	EXPECT_EQ(0, lk_unlock(&x->b));
	EXPECT_EQ(0, lk_unlock(&x->a));
	REAP_OK(s, pid, &x->rep);
	EXPECT_EQ(0, atomic_load(&x->child_ret));
	NEAR_DONE(x, k);
}

/* (c) P2: holds B, blocks receiving from a channel; then gives B up. */
static int chain_p2(void *p)
{
	struct near *x = p;
	uint64_t v = 0;
	int ret;

	CHILD_CHECK(&x->rep, lk_lock(&x->b) == 0, "p2: lock B");
	atomic_store(&x->step_child, 1);
	ret = gs_chan_recv(x->ch, &v);
	CHILD_CHECK(&x->rep, ret == 1 && v == 42, "p2: recv = %d, %ju", ret,
		    (uintmax_t)v);
	CHILD_CHECK(&x->rep, lk_unlock(&x->b) == 0, "p2: unlock B");
	return 0;
}

/* (c) P1: holds A, waits for B (held by P2, which waits on a channel). */
NEAR_PARTY(chain_p1, "p1", a, b, step_t, go_t, child_ret, child, trep, 0)

/* (c) Our thread: waits for A (held by P1). */
static int chain_p3_lock(void *p)
{
	struct near *x = p;

	return lock_one(&x->a, &x->t, &x->t_started, &x->t_ret, &x->rep3);
}

/*
 * (c) A chain through a channel: our thread waits for A, held by P1,
 * which waits for B, held by P2, which waits to receive from a channel
 * that we (P3) send to later. No cycle of locks: nothing is refused.
 */
TEST_F(dl, near_miss_chain_through_a_channel)
{
	struct dl_state *s = &self->s;
	uint64_t v = 42;
	pid_t p1, p2;
	struct job jt;
	int k;
	struct near *x = near_new(_metadata, &k);

	ASSERT_EQ(0, gs_chan_make(&x->ch, sizeof(uint64_t), 0));
	p2 = spawn(s, chain_p2, x);
	ASSERT_LT(0, p2);
	ASSERT_EQ(0, wait_atomic_ge(&x->step_child, 1));
	ASSERT_EQ(0, wait_chan_waiters(x->ch, 0, 1));
	p1 = spawn(s, chain_p1, x);
	ASSERT_LT(0, p1);
	ASSERT_EQ(0, wait_atomic_ge(&x->step_t, 1));
	atomic_store(&x->go_t, 1);
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->b), 1, p1));
	EXPECT_TRUE(stays(&x->child_ret, 1, BLOCK_WINDOW_MS))
		TH_LOG("p1's lock returned %d", atomic_load(&x->child_ret));
	EXPECT_WAITING_ON_LOCK(p1, "mutex", p2, p2);
	ASSERT_EQ(0, job_start(&jt, chain_p3_lock, x));
	ASSERT_EQ(0, wait_atomic_ge(&x->t_started, 1));
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->a), 1, x->t));
	EXPECT_TRUE(stays(&x->t_ret, 1, BLOCK_WINDOW_MS))
		TH_LOG("our lock returned %d", atomic_load(&x->t_ret));
	EXPECT_WAITING_ON_LOCK(x->t, "mutex", p1, p1);
	if (waits_available()) {
		struct wait_line wl;

		ASSERT_EQ(1, waits_find(p2, &wl, NULL, 0));
		EXPECT_STREQ("chan", wl.f[W_TYPE]) TH_LOG("%s", wl.text);
		EXPECT_STREQ("recv", wl.f[W_OP]) TH_LOG("%s", wl.text);
		EXPECT_STREQ("-", wl.f[W_HOLDER]) TH_LOG("%s", wl.text);
	}
	/* The send lets everything through. */
	ASSERT_EQ(0, gs_chan_send(x->ch, &v));
	REAP_OK(s, p2, &x->rep);
	REAP_OK(s, p1, &x->trep);
	ASSERT_EQ(0, join_ms(jt.thr, WAIT_LIMIT_MS));
	EXPECT_EQ(0, jt.rc);
	EXPECT_EQ(0, atomic_load(&x->child_ret));
	EXPECT_EQ(0, atomic_load(&x->t_ret));
	NEAR_DONE(x, k);
}

/*
 * (f) P3: the channel's only sender to be; it gets the channel's fd from
 * the socket (sent before it had it), then sends.
 */
static int in_flight_p3(void *p)
{
	struct near *x = p;
	uint64_t v = 42;
	gs_chan *ch;
	int fd;

	CHILD_CHECK(&x->rep3, wait_atomic_ge(&x->go_p3, 1) == 0, "no go");
	fd = gs_fd_recv(x->sv[1]);
	CHILD_CHECK(&x->rep3, fd >= 0, "p3: fd_recv = %d", fd);
	CHILD_CHECK(&x->rep3, gs_chan_from_fd(&ch, fd) == 0, "p3: from_fd");
	CHILD_CHECK(&x->rep3, gs_chan_send(ch, &v) == 0, "p3: send");
	gs_chan_destroy(ch);
	return 0;
}

/* (f) Our thread: waits for B (held by P2). */
static int in_flight_lock_b(void *p)
{
	struct near *x = p;

	return lock_one(&x->b, &x->t, &x->t_started, &x->t_ret, &x->trep);
}

/*
 * (f) An fd in flight: P2 holds B and waits to receive from a channel;
 * our thread waits for B. Every task that holds the channel is asleep in
 * a gosync wait, and the only other descriptor of it is in a SCM_RIGHTS
 * message not yet received (we sent it and closed ours), by P3, which
 * had no descriptor of it before. Nothing may be refused nor reported:
 * P3 receives it and sends, and everything completes.
 */
TEST_F(dl, near_miss_fd_in_flight)
{
	struct dl_state *s = &self->s;
	pid_t p2, p3;
	struct job jt;
	int k;
	struct near *x = near_new(_metadata, &k);

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				x->sv));
	p3 = spawn(s, in_flight_p3, x);		/* before the channel */
	ASSERT_LT(0, p3);
	ASSERT_EQ(0, gs_chan_make(&x->ch, sizeof(uint64_t), 0));
	p2 = spawn(s, chain_p2, x);
	ASSERT_LT(0, p2);
	ASSERT_EQ(0, wait_atomic_ge(&x->step_child, 1));
	ASSERT_EQ(0, wait_chan_waiters(x->ch, 0, 1));
	ASSERT_EQ(0, gs_fd_send(x->sv[0], gs_chan_fd(x->ch)));
	gs_chan_destroy(x->ch);
	x->ch = NULL;
	ASSERT_EQ(0, job_start(&jt, in_flight_lock_b, x));
	ASSERT_EQ(0, wait_atomic_ge(&x->t_started, 1));
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->b), 1, x->t));
	EXPECT_TRUE(stays(&x->t_ret, 1, BLOCK_WINDOW_MS))
		TH_LOG("our lock returned %d", atomic_load(&x->t_ret));
	EXPECT_WAITING_ON_LOCK(x->t, "mutex", p2, p2);
	atomic_store(&x->go_p3, 1);
	REAP_OK(s, p3, &x->rep3);
	REAP_OK(s, p2, &x->rep);
	ASSERT_EQ(0, join_ms(jt.thr, WAIT_LIMIT_MS));
	EXPECT_EQ(0, jt.rc);
	EXPECT_EQ(0, atomic_load(&x->t_ret));
	close(x->sv[0]);
	close(x->sv[1]);
	NEAR_DONE(x, k);
}

/* (d) T1: holds A (checked), waits for U (unchecked, held by T2). */
NEAR_PARTY(unchecked_t1, "t1", a, c, step_child, go_t, child_ret, child, rep, 0)

/*
 * (d) T2: holds U, then waits for A: the cycle closes through U. U was
 * unlocked for it by a third thread: its unlock of U is refused.
 */
NEAR_PARTY(unchecked_t2, "t2", c, a, step_t, cancel, t_ret, t, trep, -EPERM)

/*
 * (d) A cycle through an unchecked mutex U: T1 holds A and waits for U,
 * T2 holds U and waits for A. U is not checked, so the chain from T2's
 * lock stops at it: T2 blocks. A third thread breaks it by unlocking U
 * (allowed: unchecked).
 */
TEST_F(dl, near_miss_cycle_through_an_unchecked_mutex)
{
	struct job j1, j2;
	int k;
	struct near *x = near_new(_metadata, &k);

	ASSERT_EQ(0, gs_mutex_create(&x->c.m));
	ASSERT_FALSE(gs_mutex_checked(x->c.m));
	ASSERT_EQ(0, job_start(&j1, unchecked_t1, x));
	ASSERT_EQ(0, job_start(&j2, unchecked_t2, x));
	ASSERT_EQ(0, wait_atomic_ge(&x->step_child, 1));
	ASSERT_EQ(0, wait_atomic_ge(&x->step_t, 1));
	/* T1 waits for U... */
	atomic_store(&x->go_t, 1);
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->c), 1, x->child));
	EXPECT_TRUE(stays(&x->child_ret, 1, BLOCK_WINDOW_MS));
	/* ...then T2 for A: it blocks, not refused. */
	atomic_store(&x->cancel, 1);
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->a), 1, x->t));
	EXPECT_TRUE(stays(&x->t_ret, 1, BLOCK_WINDOW_MS))
		TH_LOG("T2's lock of A returned %d", atomic_load(&x->t_ret));
	EXPECT_EQ(1, atomic_load(&x->child_ret));
	EXPECT_WAITING_ON_LOCK(x->t, "mutex", x->child, getpid());
	/* We break it. */
	EXPECT_EQ(0, lk_unlock(&x->c));
	JOIN_OK(&j1, &x->rep);
	JOIN_OK(&j2, &x->trep);
	EXPECT_EQ(0, atomic_load(&x->child_ret));
	EXPECT_EQ(0, atomic_load(&x->t_ret));
	EXPECT_EQ(0, lk_trylock(&x->a));
	EXPECT_EQ(0, lk_unlock(&x->a));
	EXPECT_EQ(0, lk_trylock(&x->c));
	EXPECT_EQ(0, lk_unlock(&x->c));
	NEAR_DONE(x, k);
}

/*
 * (f) The lock that would close the cycle has a deadline itself: it is
 * not refused (it ends), it times out; the cycle's other waiter then
 * gets through.
 */
TEST_F(dl, near_miss_closing_lock_has_a_deadline)
{
	struct job jt;
	int k, ret;
	struct near *x = near_new(_metadata, &k);

	/* We hold B; the thread holds A and waits for B (forever). */
	ASSERT_EQ(0, lk_lock(&x->b));
	ASSERT_EQ(0, job_start(&jt, near_thread, x));
	ASSERT_EQ(0, wait_atomic_ge(&x->step_t, 1));
	atomic_store(&x->go_t, 1);
	ASSERT_EQ(0, wait_blocked(lk_fd(&x->b), 1, x->t));
	EXPECT_WAITING_ON_LOCK(x->t, "mutex", gs_gettid(), getpid());
	/* Our lock of A, with a deadline: a cycle, but one that ends. */
	ret = gs_mutex_lock_until(x->a.m, gs_deadline_in(BLOCK_WINDOW_MS *
							 NS_PER_MS), 0);
	EXPECT_EQ(-ETIMEDOUT, ret) TH_LOG("%d (%s)", ret, strerror(-ret));
	EXPECT_EQ(1, atomic_load(&x->t_ret));
	EXPECT_EQ(-EBUSY, lk_trylock(&x->a));
	EXPECT_NO_DEADLOCK_LOGGED(k);
	/* The same without a deadline is refused. */
	EXPECT_EQ(-EDEADLK, lk_lock(&x->a));
	EXPECT_EQ(1, atomic_load(&x->t_ret));
	EXPECT_EQ(0, lk_unlock(&x->b));
	JOIN_OK(&jt, &x->trep);
	EXPECT_EQ(0, atomic_load(&x->t_ret));
	/*
	 * The refusal's line, once; or none, when the kernel's rate limit
	 * (10 lines in 5 s, all gosync deadlock lines together) drops it.
	 */
	if (k >= 0) {
		char line[1024];
		int n = kmsg_count_to_mark(k, match_deadlock, NULL, line,
					   sizeof(line));

		EXPECT_LE(0, n);
		EXPECT_GE(1, n) TH_LOG("first: %s", line);
	}
	near_free(x, k);
}

/* ================================================================== */
/* 11. The stall watchdog                                               */

struct stall_match {
	pid_t pid;
	pid_t holder;
};

static bool match_stall(const char *line, const void *arg)
{
	const struct stall_match *m = arg;
	char pat[64];

	snprintf(pat, sizeof(pat), "gosync: stall: pid %d (", (int)m->pid);
	return strstr(line, pat) != NULL;
}

struct waiter {
	gs_mutex *m;
	atomic_int got;
	atomic_int release;
	atomic_int ret;
	uint64_t waited_ns;
	pid_t tid;
	struct report rep;
};

/* Wait for the mutex, say so, keep it until told. */
static int wait_hold(void *p)
{
	struct waiter *w = p;
	uint64_t t0;
	int ret;

	w->tid = gs_gettid();
	prctl(PR_SET_NAME, "dl-waiter");
	t0 = mono_ns();
	ret = gs_mutex_lock(w->m);
	w->waited_ns = mono_ns() - t0;
	atomic_store(&w->ret, ret);
	atomic_store(&w->got, 1);
	CHILD_CHECK(&w->rep, ret == 0, "lock = %d", ret);
	CHILD_CHECK(&w->rep, wait_atomic_ge(&w->release, 1) == 0,
		    "never released");
	CHILD_CHECK(&w->rep, gs_mutex_unlock(w->m) == 0, "unlock");
	return 0;
}

TEST_F(dl, stall_watchdog_reports_a_long_wait_once)
{
	struct dl_state *s = &self->s;
	struct waiter *w = shared_alloc(sizeof(*w));
	struct waiter *w2 = shared_alloc(sizeof(*w2));
	struct stall_match sm;
	char was[32], line[1024], pat[64];
	long long id;
	pid_t pid;
	int k, n;

	ASSERT_NE(NULL, w);
	ASSERT_NE(NULL, w2);
	if (geteuid())
		SKIP(return, "needs root, to set the module's parameters");
	if (param_read_str("stall_seconds", was, sizeof(was)))
		SKIP(return, "no parameter stall_seconds");
	k = kmsg_open();
	if (k < 0)
		SKIP(return, "/dev/kmsg: %s", strerror(-k));
	snprintf(s->stall_was, sizeof(s->stall_was), "%s", was);
	s->stall_saved = true;

	ASSERT_EQ(0, gs_mutex_create(&w->m));
	id = fdinfo_num(gs_mutex_fd(w->m), "id");
	ASSERT_EQ(0, gs_mutex_lock(w->m));
	ASSERT_EQ(0, param_write("stall_seconds", "1"));
	atomic_store(&w->ret, 1);
	pid = spawn(s, wait_hold, w);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked(gs_mutex_fd(w->m), 1, pid));
	sm = (struct stall_match){ .pid = pid, .holder = gs_gettid() };
	ASSERT_EQ(0, kmsg_wait(k, match_stall, &sm, line, sizeof(line)))
		TH_LOG("no stall report for pid %d", (int)pid);
	TH_LOG("logged: %s", line);
	EXPECT_NE(NULL, strstr(line, "(dl-waiter)")) TH_LOG("%s", line);
	EXPECT_TRUE(has_num(line, "held by pid ", gs_gettid()))
		TH_LOG("%s (holder %d)", line, (int)gs_gettid());
	snprintf(pat, sizeof(pat), " on lot %lld park", id);
	EXPECT_NE(NULL, strstr(line, pat)) TH_LOG("%s (want '%s')", line, pat);
	EXPECT_EQ(1, atomic_load(&w->ret));
	/* Once per wait: nothing more about it by now. */
	n = kmsg_count_to_mark(k, match_stall, &sm, line, sizeof(line));
	EXPECT_EQ(0, n) TH_LOG("reported again: %s", line);
	ASSERT_EQ(0, param_write("stall_seconds", "0"));
	ASSERT_EQ(0, param_read_str("stall_seconds", was, sizeof(was)));
	EXPECT_STREQ("0", was);
	EXPECT_EQ(0, gs_mutex_unlock(w->m));
	ASSERT_EQ(0, wait_atomic_ge(&w->got, 1));
	EXPECT_EQ(0, atomic_load(&w->ret));
	atomic_store(&w->release, 1);
	REAP_OK(s, pid, &w->rep);

	/* A wait that ends before the threshold is not reported. */
	w2->m = w->m;
	atomic_store(&w2->ret, 1);
	ASSERT_EQ(0, param_write("stall_seconds", "1"));
	ASSERT_EQ(0, gs_mutex_lock(w2->m));
	pid = spawn(s, wait_hold, w2);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked(gs_mutex_fd(w2->m), 1, pid));
	EXPECT_EQ(0, gs_mutex_unlock(w2->m));
	ASSERT_EQ(0, wait_atomic_ge(&w2->got, 1));
	EXPECT_EQ(0, atomic_load(&w2->ret));
	sm.pid = pid;
	n = kmsg_count_to_mark(k, match_stall, &sm, line, sizeof(line));
	if (w2->waited_ns < 900 * NS_PER_MS) {
		EXPECT_EQ(0, n) TH_LOG("a %ju ms wait reported: %s",
				       (uintmax_t)(w2->waited_ns / NS_PER_MS),
				       line);
	} else {
		TH_LOG("the short wait took %ju ms: not judged",
		       (uintmax_t)(w2->waited_ns / NS_PER_MS));
	}
	ASSERT_EQ(0, param_write("stall_seconds", "0"));
	atomic_store(&w2->release, 1);
	REAP_OK(s, pid, &w2->rep);
	close(k);
	gs_mutex_destroy(w->m);
	munmap(w, sizeof(*w));
	munmap(w2, sizeof(*w2));
}

/* ================================================================== */
/* 12. The debugfs view of who waits on what                            */

struct chan_waiter {
	gs_chan *ch;
	atomic_int started;	/* tid is set */
	atomic_int got;
	pid_t tid;
};

static int recv_one(void *p)
{
	struct chan_waiter *c = p;
	uint64_t v;
	int ret;

	c->tid = gs_gettid();
	atomic_store(&c->started, 1);
	ret = gs_chan_recv(c->ch, &v);
	atomic_store(&c->got, 1);
	return ret == 1 && v == 7 ? 0 : 1;
}

TEST_F(dl, debugfs_waits_view)
{
	struct dl_state *s = &self->s;
	struct waiter *w1 = shared_alloc(sizeof(*w1));
	struct waiter *w2 = shared_alloc(sizeof(*w2));
	struct chan_waiter cw = { 0 };
	struct wait_line wl;
	char header[256], idstr[32];
	gs_mutex *m = NULL;
	struct job jc;
	pid_t p1, p2;
	uint64_t v = 7;

	ASSERT_NE(NULL, w1);
	ASSERT_NE(NULL, w2);
	if (access("/sys/kernel/debug", F_OK) ||
	    access("/sys/kernel/debug/gosync", F_OK))
		SKIP(return, "debugfs is not mounted (or has no gosync/)");
	if (!waits_available())
		SKIP(return, WAITS_FILE ": %s (needs root)", strerror(errno));
	/* The header, whoever waits. */
	EXPECT_LE(0, waits_find(-1, NULL, header, sizeof(header)))
		TH_LOG("header: %s", header);
	EXPECT_STREQ(WAITS_HEADER, header);

	ASSERT_EQ(0, gs_mutex_create(&m));
	snprintf(idstr, sizeof(idstr), "%lld",
		 fdinfo_num(gs_mutex_fd(m), "id"));
	w1->m = m;
	w2->m = m;
	atomic_store(&w1->ret, 1);
	atomic_store(&w2->ret, 1);
	ASSERT_EQ(0, gs_mutex_lock(m));
	p1 = spawn(s, wait_hold, w1);
	ASSERT_LT(0, p1);
	ASSERT_EQ(0, wait_blocked(gs_mutex_fd(m), 1, p1));
	ASSERT_EQ(1, waits_find(p1, &wl, NULL, 0));
	TH_LOG("%s", wl.text);
	EXPECT_EQ(p1, atoi(wl.f[W_TGID]));
	EXPECT_STREQ("dl-waiter", wl.f[W_COMM]);
	EXPECT_STREQ("lot", wl.f[W_TYPE]);
	EXPECT_STREQ("mutex", wl.f[W_KIND]);
	EXPECT_STREQ(idstr, wl.f[W_ID]);
	EXPECT_STREQ("park", wl.f[W_OP]);
	EXPECT_STREQ("0", wl.f[W_WORD]);
	EXPECT_LE(0, atoi(wl.f[W_SINCE]));
	EXPECT_STREQ("1", wl.f[W_FOREVER]);
	EXPECT_EQ(gs_gettid(), atoi(wl.f[W_HOLDER]));
	EXPECT_EQ(getpid(), atoi(wl.f[W_HOLDER_TGID]));

	/* A second waiter, with a deadline: not forever. */
	p2 = fork_child();
	ASSERT_LE(0, p2);
	if (p2 == 0) {
		int ret;

		prctl(PR_SET_NAME, "dl-until");
		ret = gs_mutex_lock_until(m, gs_deadline_in(FAR_NS), 0);
		atomic_store(&w2->ret, ret);
		atomic_store(&w2->got, 1);
		if (ret)
			_exit(1);
		wait_atomic_ge(&w2->release, 1);
		_exit(gs_mutex_unlock(m) ? 1 : 0);
	}
	track_kid(s, p2);
	ASSERT_EQ(0, wait_blocked(gs_mutex_fd(m), 2, p2));
	ASSERT_EQ(1, waits_find(p2, &wl, NULL, 0));
	TH_LOG("%s", wl.text);
	EXPECT_STREQ("dl-until", wl.f[W_COMM]);
	EXPECT_STREQ("0", wl.f[W_FOREVER]);
	EXPECT_EQ(gs_gettid(), atoi(wl.f[W_HOLDER]));

	/* A channel receiver: no kind, no word, no holder. */
	ASSERT_EQ(0, gs_chan_make(&cw.ch, sizeof(uint64_t), 0));
	ASSERT_EQ(0, job_start(&jc, recv_one, &cw));
	ASSERT_EQ(0, wait_atomic_ge(&cw.started, 1));
	ASSERT_EQ(0, wait_chan_waiters(cw.ch, 0, 1));
	ASSERT_EQ(1, waits_find(cw.tid, &wl, NULL, 0));
	TH_LOG("%s", wl.text);
	EXPECT_EQ(getpid(), atoi(wl.f[W_TGID]));
	EXPECT_STREQ("chan", wl.f[W_TYPE]);
	EXPECT_STREQ("-", wl.f[W_KIND]);
	EXPECT_EQ(fdinfo_num(gs_chan_fd(cw.ch), "id"), atoll(wl.f[W_ID]));
	EXPECT_STREQ("recv", wl.f[W_OP]);
	EXPECT_STREQ("-", wl.f[W_WORD]);
	EXPECT_STREQ("1", wl.f[W_FOREVER]);
	EXPECT_STREQ("-", wl.f[W_HOLDER]);
	EXPECT_STREQ("-", wl.f[W_HOLDER_TGID]);
	ASSERT_EQ(0, gs_chan_send(cw.ch, &v));
	ASSERT_EQ(0, join_ms(jc.thr, WAIT_LIMIT_MS));
	EXPECT_EQ(0, jc.rc);
	EXPECT_EQ(0, waits_find(cw.tid, &wl, NULL, 0)) TH_LOG("%s", wl.text);

	/*
	 * We unlock: one of them gets it and leaves the view; the other's
	 * line names the new holder.
	 */
	EXPECT_EQ(0, gs_mutex_unlock(m));
	{
		uint64_t t0 = mono_ns();

		while (!atomic_load(&w1->got) && !atomic_load(&w2->got)) {
			ASSERT_GT(WAIT_LIMIT_MS, ms_since(t0));
			usleep(200);
		}
	}
	{
		struct waiter *got = atomic_load(&w1->got) ? w1 : w2;
		struct waiter *other = got == w1 ? w2 : w1;
		pid_t gp = got == w1 ? p1 : p2, op = got == w1 ? p2 : p1;

		EXPECT_EQ(0, atomic_load(&got->ret));
		EXPECT_EQ(0, waits_find(gp, &wl, NULL, 0)) TH_LOG("%s", wl.text);
		ASSERT_EQ(1, waits_find(op, &wl, NULL, 0));
		EXPECT_EQ(gp, atoi(wl.f[W_HOLDER])) TH_LOG("%s", wl.text);
		EXPECT_EQ(gp, atoi(wl.f[W_HOLDER_TGID])) TH_LOG("%s", wl.text);
		atomic_store(&got->release, 1);
		ASSERT_EQ(0, wait_atomic_ge(&other->got, 1));
		EXPECT_EQ(0, atomic_load(&other->ret));
		EXPECT_EQ(0, waits_find(op, &wl, NULL, 0)) TH_LOG("%s", wl.text);
		atomic_store(&other->release, 1);
	}
	REAP_OK(s, p1, &w1->rep);
	/* (Its child body checks through its exit status only.) */
	REAP_OK(s, p2, &w2->rep);
	gs_chan_destroy(cw.ch);
	gs_mutex_destroy(m);
	munmap(w1, sizeof(*w1));
	munmap(w2, sizeof(*w2));
}

TEST_HARNESS_MAIN
