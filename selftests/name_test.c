// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of named objects (GOSYNC_IOC_NAME_OPEN, gs_X_open(), gs_unlink()):
 *
 *  - two processes that share no fd (the second is exec'd and opens by
 *    name only) meet by name and exchange values;
 *  - O_EXCL, missing names, bad names, wrong type or shape: exact errnos;
 *  - every family opened twice by name is one object;
 *  - unlink while open: the handles keep working, the name is re-created
 *    as a new object, and the object is freed after the last close (the
 *    module's reference count returns to where it was);
 *  - permissions: a second uid is refused on 0600 and admitted on 0666,
 *    group and per-access bits, CAP_IPC_OWNER, chmod/chown for the owner
 *    only, unlink for the owner only, the umask;
 *  - another IPC namespace does not see the name and has its own;
 *  - max_names gives -ENOSPC; the debugfs listing shows the right fields;
 *  - a stress of concurrent open/unlink/close across processes.
 *
 * The permission, namespace, limit and listing tests need root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gosync.h"
#include "gs_test.h"
#include "kselftest_harness.h"

#define OTHER_UID	1000
#define OTHER_GID	1000
#define LISTING		"/sys/kernel/debug/gosync/names"

/* A name unique to this test process: "/nt-<pid>-<what>". */
static const char *nm(char *buf, const char *what)
{
	snprintf(buf, 128, "/nt-%d-%s", (int)getpid(), what);
	return buf;
}

static int become(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) || setresgid(gid, gid, gid) ||
	    setresuid(uid, uid, uid))
		return -errno;
	return 0;
}

/* Drop @cap from the effective set (the process stays uid 0). */
static int drop_cap(int cap)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[cap / 32].effective &= ~(1U << (cap % 32));
	if (syscall(SYS_capset, &hdr, data))
		return -errno;
	return 0;
}

static long long module_refs(void)
{
	return read_sysfs_number("/sys/module/gosync/refcnt");
}

/* A raw ioctl on /dev/gosync: its result, or -errno. */
static int dev_ioctl(unsigned long cmd, void *arg)
{
	static int dev = -1;
	int ret;

	if (dev < 0)
		dev = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	ret = ioctl(dev, cmd, arg);
	return ret < 0 ? -errno : ret;
}

static int raw_open(const char *name, uint32_t flags, uint32_t access,
		    uint32_t mode, uint32_t type)
{
	struct gosync_name_open arg = {
		.name = (uintptr_t)name, .flags = flags, .access = access,
		.mode = mode, .type = type,
	};

	if (type == GOSYNC_NAME_CHAN)
		arg.create.chan.elem_size = 8;
	return dev_ioctl(GOSYNC_IOC_NAME_OPEN, &arg);
}

/*
 * The listing's line for @name in namespace @ns: type, uid, gid, mode,
 * opens filled in; 1 if found, 0 if not, -errno if unreadable.
 */
struct listed {
	char type[8];
	unsigned int kind, uid, gid, mode;
	int opens;
};

static int listing_find(const char *name, unsigned long long ns,
			struct listed *l)
{
	FILE *f = fopen(LISTING, "re");
	char line[512], lname[300];
	unsigned long long lns;
	int found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		struct listed x;

		if (sscanf(line, "%llu\t%299s\t%7s\t%u\t%u\t%u\t%o\t%d", &lns,
			   lname, x.type, &x.kind, &x.uid, &x.gid, &x.mode,
			   &x.opens) != 8)
			continue;
		if (lns == ns && !strcmp(lname, name)) {
			*l = x;
			found = 1;
		}
	}
	fclose(f);
	return found;
}

static unsigned long long ns_of(int fd)
{
	struct gosync_name_stat st;

	if (gs_name_stat(fd, &st))
		return 0;
	return st.ns_id;
}

/* ------------------------------------------------------------------ */
/* The exec'd peer: opens by name only (it inherits no gosync fd).      */

#define PEER_VALUES	32

static int peer_main(const char *req, const char *rep)
{
	gs_chan *in, *out;
	int64_t v;
	int i, fd;

	/* Nothing of the parent's gosync objects survived the exec. */
	for (fd = 3; fd < 64; fd++) {
		struct gosync_name_stat st;

		if (ioctl(fd, GOSYNC_IOC_NAME_STAT, &st) == 0)
			return 10;
	}
	if (gs_chan_open(&in, req, GS_O_RDONLY, 0, sizeof(v), 0))
		return 11;
	if (gs_chan_open(&out, rep, GS_O_WRONLY, 0, sizeof(v), 0))
		return 12;
	for (i = 0; i < PEER_VALUES; i++) {
		if (gs_chan_recv(in, &v) != 1)
			return 13;
		v *= 3;
		if (gs_chan_send(out, &v))
			return 14;
	}
	if (gs_chan_recv(in, &v) != 0)	/* closed by the parent */
		return 15;
	gs_chan_destroy(in);
	gs_chan_destroy(out);
	return 0;
}

__attribute__((constructor)) static void maybe_peer(void)
{
	const char *req = getenv("GS_NAME_PEER_REQ");
	const char *rep = getenv("GS_NAME_PEER_REP");

	if (req && rep)
		_exit(peer_main(req, rep));
}

TEST(meet_by_name_exec)
{
	char req[128], rep[128];
	gs_chan *in, *out;
	int64_t v;
	pid_t pid;
	int i;

	nm(req, "req");
	nm(rep, "rep");
	ASSERT_EQ(0, gs_chan_open(&out, req, GS_O_CREAT | GS_O_EXCL, 0600,
				  sizeof(v), 4));
	ASSERT_EQ(0, gs_chan_open(&in, rep, GS_O_CREAT | GS_O_EXCL, 0600,
				  sizeof(v), 0));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		setenv("GS_NAME_PEER_REQ", req, 1);
		setenv("GS_NAME_PEER_REP", rep, 1);
		execl("/proc/self/exe", "name_test", (char *)NULL);
		_exit(98);
	}
	for (i = 0; i < PEER_VALUES; i++) {
		v = i + 1;
		ASSERT_EQ(0, gs_chan_send(out, &v));
		ASSERT_EQ(1, gs_chan_recv(in, &v));
		EXPECT_EQ(3 * (i + 1), v);
	}
	ASSERT_EQ(0, gs_chan_close(out));
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(0, gs_unlink(req));
	EXPECT_EQ(0, gs_unlink(rep));
	gs_chan_destroy(in);
	gs_chan_destroy(out);
}

TEST(excl_enoent_bad_names)
{
	char a[128], longname[300];
	gs_sem *s1, *s2;
	struct gosync_name_open arg = { 0 };

	nm(a, "excl");
	ASSERT_EQ(0, gs_sem_open(&s1, a, GS_O_CREAT | GS_O_EXCL, 0600, 3));
	EXPECT_EQ(-EEXIST, gs_sem_open(&s2, a, GS_O_CREAT | GS_O_EXCL, 0600, 3));
	/* CREAT without EXCL opens the existing one; its size stays. */
	ASSERT_EQ(0, gs_sem_open(&s2, a, GS_O_CREAT, 0600, 99));
	EXPECT_EQ(-EAGAIN, gs_sem_try_acquire(s2, 4));
	EXPECT_EQ(0, gs_sem_try_acquire(s2, 3));
	EXPECT_EQ(-EAGAIN, gs_sem_try_acquire(s1, 1));	/* one object */
	gs_sem_destroy(s2);
	EXPECT_EQ(0, gs_unlink(a));
	EXPECT_EQ(-ENOENT, gs_unlink(a));
	EXPECT_EQ(-ENOENT, gs_sem_open(&s2, a, 0, 0, 1));
	gs_sem_destroy(s1);

	EXPECT_EQ(-EINVAL, gs_sem_open(&s2, "noslash", GS_O_CREAT, 0600, 1));
	EXPECT_EQ(-EINVAL, gs_sem_open(&s2, "", GS_O_CREAT, 0600, 1));
	EXPECT_EQ(-EINVAL, gs_sem_open(&s2, "/", GS_O_CREAT, 0600, 1));
	EXPECT_EQ(-EINVAL, gs_sem_open(&s2, "/a/b", GS_O_CREAT, 0600, 1));
	EXPECT_EQ(-EINVAL, gs_sem_open(&s2, "/a/", GS_O_CREAT, 0600, 1));
	EXPECT_EQ(-EINVAL, gs_unlink("nope"));
	/* 255 bytes, the '/' included, is the longest. */
	memset(longname, 'x', sizeof(longname));
	longname[0] = '/';
	longname[GOSYNC_NAME_MAX] = '\0';
	ASSERT_EQ(0, gs_sem_open(&s2, longname, GS_O_CREAT | GS_O_EXCL,
				 0600, 1));
	EXPECT_EQ(0, gs_unlink(longname));
	gs_sem_destroy(s2);
	longname[GOSYNC_NAME_MAX] = 'x';
	longname[GOSYNC_NAME_MAX + 1] = '\0';
	EXPECT_EQ(-ENAMETOOLONG, gs_sem_open(&s2, longname, GS_O_CREAT,
					     0600, 1));
	EXPECT_EQ(-ENAMETOOLONG, gs_unlink(longname));
	longname[299] = '\0';
	EXPECT_EQ(-ENAMETOOLONG, gs_sem_open(&s2, longname, GS_O_CREAT,
					     0600, 1));

	/* The raw ioctl's conventions. */
	EXPECT_EQ(-EINVAL, raw_open(a, 1U << 5 | GOSYNC_NAME_CREAT,
				    GOSYNC_NAME_READ, 0600, GOSYNC_NAME_SEM));
	EXPECT_EQ(-EINVAL, raw_open(a, GOSYNC_NAME_CREAT, 0, 0600,
				    GOSYNC_NAME_SEM));
	EXPECT_EQ(-EINVAL, raw_open(a, GOSYNC_NAME_CREAT, 4, 0600,
				    GOSYNC_NAME_SEM));
	EXPECT_EQ(-EINVAL, raw_open(a, GOSYNC_NAME_CREAT, GOSYNC_NAME_READ,
				    01000, GOSYNC_NAME_SEM));
	EXPECT_EQ(-EINVAL, raw_open(a, GOSYNC_NAME_CREAT, GOSYNC_NAME_READ,
				    0600, 0));
	EXPECT_EQ(-EINVAL, raw_open(a, GOSYNC_NAME_CREAT, GOSYNC_NAME_READ,
				    0600, 4));
	EXPECT_EQ(-EFAULT, raw_open((const char *)8, GOSYNC_NAME_CREAT,
				    GOSYNC_NAME_READ, 0600, GOSYNC_NAME_SEM));
	EXPECT_EQ(-EFAULT, dev_ioctl(GOSYNC_IOC_NAME_OPEN, (void *)8));
	/* A bad create argument creates nothing. */
	arg.name = (uintptr_t)a;
	arg.flags = GOSYNC_NAME_CREAT;
	arg.access = GOSYNC_NAME_READ | GOSYNC_NAME_WRITE;
	arg.mode = 0600;
	arg.type = GOSYNC_NAME_SEM;
	arg.create.sem.flags = 1;
	EXPECT_EQ(-EINVAL, dev_ioctl(GOSYNC_IOC_NAME_OPEN, &arg));
	EXPECT_EQ(-ENOENT, gs_unlink(a));
	/* Stat, chmod and chown are for fds opened by name only. */
	ASSERT_EQ(0, gs_sem_create(&s1, 1));
	EXPECT_EQ(-ENOTTY, gs_name_chmod(gs_sem_fd(s1), 0600));
	gs_sem_destroy(s1);
}

TEST(wrong_type_or_shape)
{
	char c[128], m[128];
	gs_chan *ch, *ch2;
	gs_sem *s;
	gs_mutex *mx;
	gs_waitgroup *wg;
	gs_barrier *b;

	nm(c, "chan");
	nm(m, "mutex");
	ASSERT_EQ(0, gs_chan_open(&ch, c, GS_O_CREAT | GS_O_EXCL, 0600, 8, 4));
	ASSERT_EQ(0, gs_mutex_open(&mx, m, GS_O_CREAT | GS_O_EXCL, 0600));
	EXPECT_EQ(-ENOTTY, gs_sem_open(&s, c, 0, 0, 1));
	EXPECT_EQ(-ENOTTY, gs_mutex_open(&mx, c, 0, 0));
	EXPECT_EQ(-EINVAL, gs_chan_open(&ch2, c, 0, 0, 4, 4));
	EXPECT_EQ(-ENOTTY, gs_chan_open(&ch2, m, 0, 0, 8, 4));
	EXPECT_EQ(-ENOTTY, gs_waitgroup_open(&wg, m, 0, 0));
	EXPECT_EQ(-ENOTTY, gs_barrier_open(&b, m, GS_O_CREAT, 0600, 2));
	/* The capacity applies only on creation. */
	ASSERT_EQ(0, gs_chan_open(&ch2, c, GS_O_CREAT, 0600, 8, 99));
	EXPECT_EQ(4U, gs_chan_cap(ch2));
	gs_chan_destroy(ch2);
	EXPECT_EQ(0, gs_unlink(c));
	EXPECT_EQ(0, gs_unlink(m));
	gs_chan_destroy(ch);
	gs_mutex_destroy(mx);
}

TEST(poll_fdinfo_and_cancel_fd)
{
	struct gosync_sem_acquire acq = { .count = 1 };
	char n[128], path[64], buf[4096];
	gs_chan *ro, *wo;
	struct pollfd pfd;
	gs_sem *zero;
	int64_t v = 3;
	ssize_t len;
	int fd;

	ASSERT_EQ(0, gs_chan_open(&wo, nm(n, "poll"), GS_O_CREAT | GS_O_WRONLY,
				  0600, sizeof(v), 1));
	ASSERT_EQ(0, gs_chan_open(&ro, n, GS_O_RDONLY, 0, sizeof(v), 0));
	pfd = (struct pollfd){ .fd = gs_chan_fd(ro), .events = POLLIN };
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	ASSERT_EQ(0, gs_chan_send(wo, &v));
	EXPECT_EQ(1, poll(&pfd, 1, WAIT_LIMIT_MS));
	EXPECT_TRUE(pfd.revents & POLLIN);
	/* fdinfo: the name's lines, then the channel's. */
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", gs_chan_fd(ro));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ASSERT_LT(0, len);
	buf[len] = '\0';
	EXPECT_NE(NULL, strstr(buf, n));
	EXPECT_NE(NULL, strstr(buf, "name-opens:\t2\n"));
	EXPECT_NE(NULL, strstr(buf, "name-mode:\t0600\n"));
	EXPECT_NE(NULL, strstr(buf, "gosync-type:\tchan\n"));
	EXPECT_NE(NULL, strstr(buf, "len:\t1\n"));
	/* A cancel fd: needs read; the channel's close cancels. */
	ASSERT_EQ(0, gs_sem_create(&zero, 0));
	acq.deadline = GS_FOREVER;
	acq.flags = GOSYNC_WAIT_CANCEL_FD;
	acq.cancel_fd = gs_chan_fd(wo);
	EXPECT_EQ(-1, ioctl(gs_sem_fd(zero), GOSYNC_IOC_SEM_ACQUIRE, &acq));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, gs_chan_close(wo));
	acq.cancel_fd = gs_chan_fd(ro);
	EXPECT_EQ(-1, ioctl(gs_sem_fd(zero), GOSYNC_IOC_SEM_ACQUIRE, &acq));
	EXPECT_EQ(ECANCELED, errno);
	EXPECT_EQ(0, gs_unlink(n));
	gs_sem_destroy(zero);
	gs_chan_destroy(ro);
	gs_chan_destroy(wo);
}

static void *barrier_party(void *p)
{
	return (void *)(intptr_t)gs_barrier_await(p);
}

static void once_fn(void *arg)
{
	++*(int *)arg;
}

TEST(every_family_is_one_object)
{
	char n[128];
	gs_sem *s1, *s2;
	gs_mutex *m1, *m2;
	gs_rwmutex *r1, *r2;
	gs_waitgroup *w1, *w2;
	gs_once *o1, *o2;
	gs_cond *c1, *c2;
	gs_barrier *b1, *b2;
	gs_chan *ch1, *ch2;
	pthread_t t;
	void *res;
	int runs = 0, v = 5;

	ASSERT_EQ(0, gs_sem_open(&s1, nm(n, "s"), GS_O_CREAT, 0600, 2));
	ASSERT_EQ(0, gs_sem_open(&s2, n, 0, 0, 0));
	EXPECT_EQ(0, gs_sem_try_acquire(s1, 2));
	EXPECT_EQ(-EAGAIN, gs_sem_try_acquire(s2, 1));
	EXPECT_EQ(0, gs_sem_release(s2, 2));
	EXPECT_EQ(0, gs_unlink(n));

	ASSERT_EQ(0, gs_mutex_open(&m1, nm(n, "m"), GS_O_CREAT, 0600));
	ASSERT_EQ(0, gs_mutex_open(&m2, n, 0, 0));
	EXPECT_EQ(0, gs_mutex_lock(m1));
	EXPECT_EQ(-EBUSY, gs_mutex_trylock(m2));
	EXPECT_EQ(0, gs_mutex_unlock(m2));
	EXPECT_EQ(0, gs_mutex_trylock(m1));
	EXPECT_EQ(0, gs_mutex_unlock(m1));
	EXPECT_EQ(0, gs_unlink(n));

	ASSERT_EQ(0, gs_rwmutex_open(&r1, nm(n, "rw"), GS_O_CREAT, 0600));
	ASSERT_EQ(0, gs_rwmutex_open(&r2, n, 0, 0));
	EXPECT_EQ(0, gs_rwmutex_rlock(r1));
	EXPECT_EQ(-EBUSY, gs_rwmutex_trylock(r2));
	EXPECT_EQ(0, gs_rwmutex_runlock(r1));
	EXPECT_EQ(0, gs_rwmutex_trylock(r2));
	EXPECT_EQ(0, gs_rwmutex_unlock(r2));
	EXPECT_EQ(0, gs_unlink(n));

	ASSERT_EQ(0, gs_waitgroup_open(&w1, nm(n, "wg"), GS_O_CREAT, 0600));
	ASSERT_EQ(0, gs_waitgroup_open(&w2, n, 0, 0));
	EXPECT_EQ(0, gs_waitgroup_add(w1, 3));
	EXPECT_EQ(3, gs_waitgroup_count(w2));
	EXPECT_EQ(0, gs_waitgroup_add(w2, -3));
	EXPECT_EQ(0, gs_waitgroup_wait(w1));
	EXPECT_EQ(0, gs_unlink(n));

	ASSERT_EQ(0, gs_once_open(&o1, nm(n, "once"), GS_O_CREAT, 0600));
	ASSERT_EQ(0, gs_once_open(&o2, n, 0, 0));
	EXPECT_EQ(0, gs_once_do(o1, once_fn, &runs));
	EXPECT_EQ(0, gs_once_do(o2, once_fn, &runs));
	EXPECT_EQ(1, runs);
	EXPECT_EQ(0, gs_unlink(n));

	ASSERT_EQ(0, gs_cond_open(&c1, nm(n, "cond"), GS_O_CREAT, 0600));
	ASSERT_EQ(0, gs_cond_open(&c2, n, 0, 0));
	EXPECT_EQ(0, gs_unlink(n));

	/* The parties are the creator's: the opener's 7 does not apply. */
	ASSERT_EQ(0, gs_barrier_open(&b1, nm(n, "bar"), GS_O_CREAT, 0600, 2));
	ASSERT_EQ(0, gs_barrier_open(&b2, n, GS_O_CREAT, 0600, 7));
	ASSERT_EQ(0, pthread_create(&t, NULL, barrier_party, b1));
	EXPECT_EQ(0, gs_barrier_await(b2));
	ASSERT_EQ(0, pthread_join(t, &res));
	EXPECT_EQ(0, (intptr_t)res);
	EXPECT_EQ(0, gs_unlink(n));

	/* A channel: both handles map the ring (read-write). */
	ASSERT_EQ(0, gs_chan_open(&ch1, nm(n, "ch"), GS_O_CREAT, 0600,
				  sizeof(v), 2));
	ASSERT_EQ(0, gs_chan_open(&ch2, n, 0, 0, sizeof(v), 0));
	EXPECT_EQ(0, gs_chan_send(ch1, &v));
	v = 0;
	EXPECT_EQ(1, gs_chan_recv(ch2, &v));
	EXPECT_EQ(5, v);
	EXPECT_EQ(0, gs_unlink(n));

	gs_sem_destroy(s1);
	gs_sem_destroy(s2);
	gs_mutex_destroy(m1);
	gs_mutex_destroy(m2);
	gs_rwmutex_destroy(r1);
	gs_rwmutex_destroy(r2);
	gs_waitgroup_destroy(w1);
	gs_waitgroup_destroy(w2);
	gs_once_destroy(o1);
	gs_once_destroy(o2);
	gs_cond_destroy(c1);
	gs_cond_destroy(c2);
	gs_barrier_destroy(b1);
	gs_barrier_destroy(b2);
	gs_chan_destroy(ch1);
	gs_chan_destroy(ch2);
}

TEST(unlink_while_open_and_recreate)
{
	struct gosync_name_stat st;
	struct gosync_chan_status cs;
	long long refs0, refs1;
	gs_chan *old, *again;
	char n[128];
	int64_t v = 42;

	ASSERT_EQ(0, gs_init());
	refs0 = module_refs();
	ASSERT_LE(0, refs0);
	ASSERT_EQ(0, gs_chan_open(&old, nm(n, "un"), GS_O_CREAT | GS_O_EXCL,
				  0600, sizeof(v), 4));
	/* The object's own file and the handle. */
	EXPECT_EQ(refs0 + 2, module_refs());
	ASSERT_EQ(0, gs_chan_send(old, &v));
	ASSERT_EQ(0, gs_unlink(n));
	ASSERT_EQ(0, gs_name_stat(gs_chan_fd(old), &st));
	EXPECT_EQ(0U, st.linked);
	EXPECT_EQ(1U, st.opens);
	EXPECT_EQ(refs0 + 2, module_refs());
	EXPECT_EQ(-ENOENT, gs_chan_open(&again, n, 0, 0, sizeof(v), 4));
	/* A new object under the same name. */
	ASSERT_EQ(0, gs_chan_open(&again, n, GS_O_CREAT | GS_O_EXCL, 0600,
				  sizeof(v), 4));
	ASSERT_EQ(0, gs_chan_status(again, &cs));
	EXPECT_EQ(0U, cs.len);
	refs1 = module_refs();
	EXPECT_EQ(refs0 + 4, refs1);
	/* The unlinked one still works. */
	v = 0;
	EXPECT_EQ(1, gs_chan_recv(old, &v));
	EXPECT_EQ(42, v);
	v = 7;
	EXPECT_EQ(0, gs_chan_send(old, &v));
	ASSERT_EQ(0, gs_chan_status(again, &cs));
	EXPECT_EQ(0U, cs.len);
	/* Freed with its last handle. */
	gs_chan_destroy(old);
	EXPECT_EQ(refs0 + 2, module_refs());
	EXPECT_EQ(0, gs_unlink(n));
	EXPECT_EQ(refs0 + 2, module_refs());
	gs_chan_destroy(again);
	EXPECT_EQ(refs0, module_refs());
}

/* The checks of a second uid, in a child; 0 or the failing line. */
static int other_uid_checks(const char *p600, const char *p666,
			    const char *g640)
{
	gs_sem *s;
	gs_chan *ch;
	int64_t v = 1;
	int ret;

	if (become(OTHER_UID, OTHER_GID))
		return __LINE__;
	if (gs_sem_open(&s, p600, 0, 0, 1) != -EACCES)
		return __LINE__;
	if (gs_sem_open(&s, p600, GS_O_RDONLY, 0, 1) != -EACCES)
		return __LINE__;
	if (gs_sem_open(&s, p666, 0, 0, 1))
		return __LINE__;
	if (gs_sem_try_acquire(s, 1))
		return __LINE__;
	if (gs_sem_release(s, 1))
		return __LINE__;
	/* Not the owner: no chmod, chown or unlink. */
	if (gs_name_chmod(gs_sem_fd(s), 0777) != -EPERM)
		return __LINE__;
	if (gs_name_chown(gs_sem_fd(s), OTHER_UID, -1) != -EPERM)
		return __LINE__;
	if (gs_unlink(p666) != -EPERM)
		return __LINE__;
	gs_sem_destroy(s);
	/* Other bits of 0604: read only, so a receive-only handle. */
	if (gs_chan_open(&ch, g640, 0, 0, sizeof(v), 0) != -EACCES)
		return __LINE__;
	if (gs_chan_open(&ch, g640, GS_O_WRONLY, 0, sizeof(v), 0) != -EACCES)
		return __LINE__;
	ret = gs_chan_open(&ch, g640, GS_O_RDONLY, 0, sizeof(v), 0);
	if (ret)
		return __LINE__;
	if (gs_chan_try_send(ch, &v) != -EBADF)
		return __LINE__;
	if (gs_chan_recv(ch, &v) != 1 || v != 77)
		return __LINE__;
	gs_chan_destroy(ch);
	return 0;
}

TEST(permissions_second_uid)
{
	char p600[128], p666[128], g640[128];
	gs_sem *a, *b;
	gs_chan *ch;
	int64_t v = 77;
	pid_t pid;

	if (geteuid())
		SKIP(return, "needs root");
	umask(0);
	ASSERT_EQ(0, gs_sem_open(&a, nm(p600, "p600"), GS_O_CREAT, 0600, 1));
	ASSERT_EQ(0, gs_sem_open(&b, nm(p666, "p666"), GS_O_CREAT, 0666, 1));
	ASSERT_EQ(0, gs_chan_open(&ch, nm(g640, "g604"), GS_O_CREAT, 0604,
				  sizeof(v), 1));
	ASSERT_EQ(0, gs_chan_send(ch, &v));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int line = other_uid_checks(p600, p666, g640);

		if (line)
			fprintf(stderr, "other uid check failed at line %d\n",
				line);
		_exit(line ? 1 : 0);
	}
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(0, gs_unlink(p600));
	EXPECT_EQ(0, gs_unlink(p666));
	EXPECT_EQ(0, gs_unlink(g640));
	gs_sem_destroy(a);
	gs_sem_destroy(b);
	gs_chan_destroy(ch);
}

TEST(group_bits)
{
	char n[128];
	gs_sem *s;
	pid_t pid;

	if (geteuid())
		SKIP(return, "needs root");
	umask(0);
	ASSERT_EQ(0, gs_sem_open(&s, nm(n, "grp"), GS_O_CREAT, 0460, 1));
	ASSERT_EQ(0, gs_name_chown(gs_sem_fd(s), -1, OTHER_GID));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_sem *t;

		/* In the group: rw (6); the owner bits (4) do not apply. */
		if (become(OTHER_UID, OTHER_GID))
			_exit(2);
		if (gs_sem_open(&t, n, 0, 0, 1))
			_exit(3);
		if (gs_sem_try_acquire(t, 1))
			_exit(4);
		_exit(0);
	}
	EXPECT_EQ(0, reap(pid));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_sem *t;

		/* Neither owner nor in the group: other bits 0. */
		if (become(OTHER_UID + 1, OTHER_GID + 1))
			_exit(2);
		_exit(gs_sem_open(&t, n, GS_O_RDONLY, 0, 1) == -EACCES ? 0 : 3);
	}
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(0, gs_unlink(n));
	gs_sem_destroy(s);
}

TEST(access_bits_of_a_channel)
{
	char n[128];
	gs_chan *rw, *ro, *wo;
	gs_case c;
	int64_t v = 9;

	ASSERT_EQ(0, gs_chan_open(&rw, nm(n, "bits"), GS_O_CREAT, 0600,
				  sizeof(v), 4));
	ASSERT_EQ(0, gs_chan_open(&ro, n, GS_O_RDONLY, 0, sizeof(v), 0));
	ASSERT_EQ(0, gs_chan_open(&wo, n, GS_O_WRONLY, 0, sizeof(v), 0));
	EXPECT_EQ(-EBADF, gs_chan_try_send(ro, &v));
	EXPECT_EQ(-EBADF, gs_chan_close(ro));
	EXPECT_EQ(-EBADF, gs_chan_try_recv(wo, &v));
	EXPECT_EQ(0, gs_chan_send(wo, &v));
	v = 0;
	EXPECT_EQ(1, gs_chan_recv(ro, &v));
	EXPECT_EQ(9, v);
	/* A one-way handle cannot map the ring. */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 8192, PROT_READ | PROT_WRITE,
				   MAP_SHARED, gs_chan_fd(ro), 0));
	EXPECT_EQ(EACCES, errno);
	/* select: a send case needs write, a receive case read. */
	c = (gs_case){ .ch = ro, .op = GS_OP_SEND, .value = &v };
	EXPECT_EQ(-EBADF, gs_select(&c, 1, GS_SELECT_DEFAULT, GS_FOREVER));
	c = (gs_case){ .ch = wo, .op = GS_OP_RECV, .value = &v };
	EXPECT_EQ(-EBADF, gs_select(&c, 1, GS_SELECT_DEFAULT, GS_FOREVER));
	c = (gs_case){ .ch = wo, .op = GS_OP_SEND, .value = &v };
	EXPECT_EQ(0, gs_select(&c, 1, GS_SELECT_DEFAULT, GS_FOREVER));
	c = (gs_case){ .ch = ro, .op = GS_OP_RECV, .value = &v };
	EXPECT_EQ(0, gs_select(&c, 1, GS_SELECT_DEFAULT, GS_FOREVER));
	EXPECT_EQ(0, gs_chan_close(wo));
	EXPECT_EQ(0, gs_chan_recv(ro, &v));
	EXPECT_EQ(0, gs_unlink(n));
	gs_chan_destroy(rw);
	gs_chan_destroy(ro);
	gs_chan_destroy(wo);
}

TEST(chmod_chown_umask)
{
	struct gosync_name_stat st;
	char n[128], u[128];
	gs_sem *s;
	pid_t pid;

	umask(022);
	ASSERT_EQ(0, gs_sem_open(&s, nm(u, "umask"), GS_O_CREAT, 0666, 1));
	ASSERT_EQ(0, gs_name_stat(gs_sem_fd(s), &st));
	EXPECT_EQ(0644U, st.mode);
	EXPECT_EQ(0, gs_unlink(u));
	gs_sem_destroy(s);
	if (geteuid())
		SKIP(return, "needs root");
	umask(0);
	ASSERT_EQ(0, gs_sem_open(&s, nm(n, "own"), GS_O_CREAT, 0600, 1));
	ASSERT_EQ(0, gs_name_chmod(gs_sem_fd(s), 0640));
	EXPECT_EQ(-EINVAL, gs_name_chmod(gs_sem_fd(s), 01777));
	ASSERT_EQ(0, gs_name_chown(gs_sem_fd(s), OTHER_UID, OTHER_GID));
	ASSERT_EQ(0, gs_name_stat(gs_sem_fd(s), &st));
	EXPECT_EQ(0640U, st.mode);
	EXPECT_EQ((uint32_t)OTHER_UID, st.uid);
	EXPECT_EQ((uint32_t)OTHER_GID, st.gid);
	EXPECT_EQ((uint32_t)GOSYNC_NAME_SEM, st.type);
	EXPECT_EQ((uint32_t)(GOSYNC_NAME_READ | GOSYNC_NAME_WRITE), st.access);
	EXPECT_EQ(1U, st.linked);
	/* The new owner may chmod; a stranger may not. */
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_sem *t;

		if (become(OTHER_UID, OTHER_GID))
			_exit(2);
		if (gs_sem_open(&t, n, 0, 0, 1))
			_exit(3);
		if (gs_name_chmod(gs_sem_fd(t), 0660))
			_exit(4);
		_exit(0);
	}
	EXPECT_EQ(0, reap(pid));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (become(OTHER_UID + 1, OTHER_GID))
			_exit(2);
		/* It has the fd (inherited), but is not the owner. */
		if (gs_name_chmod(gs_sem_fd(s), 0666) != -EPERM)
			_exit(3);
		if (gs_name_chown(gs_sem_fd(s), OTHER_UID + 1, -1) != -EPERM)
			_exit(4);
		_exit(0);
	}
	EXPECT_EQ(0, reap(pid));
	ASSERT_EQ(0, gs_name_stat(gs_sem_fd(s), &st));
	EXPECT_EQ(0660U, st.mode);
	/* Root (CAP_FOWNER) may, and may unlink another's name. */
	EXPECT_EQ(0, gs_name_chmod(gs_sem_fd(s), 0600));
	EXPECT_EQ(0, gs_unlink(n));
	gs_sem_destroy(s);
}

TEST(cap_ipc_owner_overrides)
{
	char n[128];
	gs_sem *s;
	pid_t pid;

	if (geteuid())
		SKIP(return, "needs root");
	umask(0);
	ASSERT_EQ(0, gs_sem_open(&s, nm(n, "capo"), GS_O_CREAT, 0600, 1));
	ASSERT_EQ(0, gs_name_chown(gs_sem_fd(s), OTHER_UID, OTHER_GID));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_sem *t;

		/* Root, not owner nor in the group: CAP_IPC_OWNER admits. */
		if (gs_sem_open(&t, n, 0, 0, 1))
			_exit(2);
		gs_sem_destroy(t);
		if (drop_cap(CAP_IPC_OWNER))
			_exit(3);
		if (gs_sem_open(&t, n, 0, 0, 1) != -EACCES)
			_exit(4);
		_exit(0);
	}
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(0, gs_unlink(n));
	gs_sem_destroy(s);
}

TEST(ipc_namespace_scope)
{
	struct gosync_name_stat st;
	struct gosync_sem_status ss;
	struct listed l;
	char n[128], n2[128];
	gs_sem *s, *s2;
	pid_t pid;
	int *child_ns = shared_alloc(sizeof(int));

	if (geteuid())
		SKIP(return, "needs root");
	ASSERT_NE(NULL, child_ns);
	ASSERT_EQ(0, gs_sem_open(&s, nm(n, "ns"), GS_O_CREAT, 0600, 3));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_sem *t;

		if (unshare(CLONE_NEWIPC))
			_exit(2);
		if (gs_sem_open(&t, n, 0, 0, 1) != -ENOENT)
			_exit(3);
		if (gs_unlink(n) != -ENOENT)
			_exit(4);
		if (gs_sem_open(&t, n, GS_O_CREAT | GS_O_EXCL, 0600, 7))
			_exit(5);
		if (gs_name_stat(gs_sem_fd(t), &st))
			_exit(6);
		*child_ns = (int)st.ns_id;
		/* Exits with the name linked: it dies with the namespace. */
		_exit(0);
	}
	EXPECT_EQ(0, reap(pid));
	/* A creation that sweeps the dead namespace's record, then retries. */
	ASSERT_EQ(0, gs_sem_open(&s2, nm(n2, "ns2"), GS_O_CREAT, 0600, 1));
	EXPECT_EQ(0, gs_unlink(n2));
	gs_sem_destroy(s2);
	ASSERT_EQ(0, gs_name_stat(gs_sem_fd(s), &st));
	EXPECT_NE((unsigned int)*child_ns, (unsigned int)st.ns_id);
	ASSERT_EQ(0, gs_sem_status(s, &ss));
	EXPECT_EQ(3U, ss.size);
	/* The dead namespace's name is gone (the listing sweeps). */
	ASSERT_LE(0, listing_find(n, st.ns_id, &l));
	EXPECT_EQ(0, listing_find(n, (unsigned int)*child_ns, &l));
	EXPECT_EQ(1, listing_find(n, st.ns_id, &l));
	EXPECT_EQ(0, gs_unlink(n));
	gs_sem_destroy(s);
}

static int write_param(const char *name, long long v)
{
	char path[128], buf[32];
	int fd, len, ret = 0;

	snprintf(path, sizeof(path), "/sys/module/gosync/parameters/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%lld", v);
	if (write(fd, buf, len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

TEST(max_names_per_namespace)
{
	long long saved = read_param("max_names");
	pid_t pid;

	if (geteuid())
		SKIP(return, "needs root");
	ASSERT_LT(0, saved);
	ASSERT_EQ(0, write_param("max_names", 3));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		gs_sem *t[4];
		char n[128];
		int i;

		if (unshare(CLONE_NEWIPC))	/* a namespace of our own */
			_exit(2);
		for (i = 0; i < 3; i++) {
			snprintf(n, sizeof(n), "/lim%d", i);
			if (gs_sem_open(&t[i], n, GS_O_CREAT, 0600, 1))
				_exit(3);
		}
		if (gs_sem_open(&t[3], "/lim3", GS_O_CREAT, 0600, 1) != -ENOSPC)
			_exit(4);
		/* Opening an existing name is not limited. */
		if (gs_sem_open(&t[3], "/lim0", 0, 0, 1))
			_exit(5);
		gs_sem_destroy(t[3]);
		if (gs_unlink("/lim1"))
			_exit(6);
		if (gs_sem_open(&t[3], "/lim3", GS_O_CREAT, 0600, 1))
			_exit(7);
		_exit(0);
	}
	EXPECT_EQ(0, reap(pid));
	EXPECT_EQ(0, write_param("max_names", saved));
	EXPECT_EQ(saved, read_param("max_names"));
}

TEST(debugfs_listing)
{
	struct listed l;
	char n[128];
	gs_chan *a, *b;
	unsigned long long ns;

	if (geteuid())
		SKIP(return, "needs root");
	umask(0);
	ASSERT_EQ(0, gs_chan_open(&a, nm(n, "list"), GS_O_CREAT, 0640, 8, 1));
	ASSERT_EQ(0, gs_chan_open(&b, n, GS_O_RDONLY, 0, 8, 1));
	ns = ns_of(gs_chan_fd(a));
	ASSERT_NE(0ULL, ns);
	ASSERT_EQ(1, listing_find(n, ns, &l));
	EXPECT_STREQ("chan", l.type);
	EXPECT_EQ(0U, l.uid);
	EXPECT_EQ(0U, l.gid);
	EXPECT_EQ(0640U, l.mode);
	EXPECT_EQ(2, l.opens);
	gs_chan_destroy(b);
	ASSERT_EQ(1, listing_find(n, ns, &l));
	EXPECT_EQ(1, l.opens);
	EXPECT_EQ(0, gs_unlink(n));
	EXPECT_EQ(0, listing_find(n, ns, &l));
	gs_chan_destroy(a);
	/* Root only. */
	{
		pid_t pid = fork_child();

		ASSERT_LE(0, pid);
		if (pid == 0) {
			if (become(OTHER_UID, OTHER_GID))
				_exit(2);
			_exit(open(LISTING, O_RDONLY) < 0 ? 0 : 3);
		}
		EXPECT_EQ(0, reap(pid));
	}
}

/*
 * Processes open (creating if needed), use, close and now and then unlink
 * one name. Each creation has a unique size (its id); every opener
 * records the size it found. Checks: every size seen was made by the
 * process it names, in a creation that process saw succeed; permits are
 * conserved on every object; at the end, with the name unlinked, the
 * module holds no file of these objects.
 */
#define STRESS_PROCS	4
#define STRESS_ITERS	40

struct stress {
	_Atomic uint32_t created[STRESS_PROCS][STRESS_ITERS];
	_Atomic uint32_t seen[STRESS_PROCS * STRESS_ITERS];
	_Atomic uint32_t bad;
	_Atomic uint32_t opens;
};

static int stress_child(struct stress *sh, const char *n, int me)
{
	int i;

	for (i = 0; i < STRESS_ITERS; i++) {
		uint64_t id = 1000 + (uint64_t)me * STRESS_ITERS + i;
		struct gosync_sem_status st;
		gs_sem *s;
		int err;

		err = gs_sem_open(&s, n, GS_O_CREAT, 0600, id);
		if (err) {
			atomic_fetch_add(&sh->bad, 1);
			continue;
		}
		atomic_fetch_add(&sh->opens, 1);
		if (gs_sem_status(s, &st)) {
			atomic_fetch_add(&sh->bad, 1);
		} else {
			uint64_t who = st.size - 1000;

			if (st.size == id)
				atomic_store(&sh->created[me][i], 1);
			if (st.size < 1000 ||
			    who >= STRESS_PROCS * STRESS_ITERS)
				atomic_fetch_add(&sh->bad, 1);
			else
				atomic_store(&sh->seen[who], 1);
		}
		if (gs_sem_acquire(s, 1) || gs_sem_release(s, 1))
			atomic_fetch_add(&sh->bad, 1);
		if (i % 5 == me % 5)
			gs_unlink(n);	/* -ENOENT when another was first */
		gs_sem_destroy(s);
	}
	return 0;
}

TEST(stress_open_unlink_close)
{
	struct stress *sh = shared_alloc(sizeof(*sh));
	pid_t pids[STRESS_PROCS];
	long long refs0;
	char n[128];
	int i, j, made = 0;

	ASSERT_NE(NULL, sh);
	ASSERT_EQ(0, gs_init());
	refs0 = module_refs();
	nm(n, "stress");
	for (i = 0; i < STRESS_PROCS; i++) {
		pids[i] = fork_child();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0)
			_exit(stress_child(sh, n, i));
	}
	for (i = 0; i < STRESS_PROCS; i++)
		EXPECT_EQ(0, reap(pids[i]));
	EXPECT_EQ(0U, atomic_load(&sh->bad));
	EXPECT_EQ((uint32_t)(STRESS_PROCS * STRESS_ITERS),
		  atomic_load(&sh->opens));
	for (i = 0; i < STRESS_PROCS; i++)
		for (j = 0; j < STRESS_ITERS; j++) {
			made += atomic_load(&sh->created[i][j]);
			/* Seen by anyone: created by the process it names. */
			if (atomic_load(&sh->seen[i * STRESS_ITERS + j]))
				EXPECT_EQ(1U, atomic_load(&sh->created[i][j]));
		}
	EXPECT_LE(1, made);
	/* At most the last object is left, held by its name only. */
	gs_unlink(n);
	EXPECT_EQ(-ENOENT, gs_unlink(n));
	EXPECT_EQ(refs0, module_refs());
}

TEST_HARNESS_MAIN
