// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the module's tracepoints (kmod/gosync_trace.h) through tracefs:
 *  - events/gosync/ lists exactly the events below, each with its fields
 *    (the list is the contract that perf and bpftrace scripts rely on);
 *  - known sequences, each traced alone, give exactly the events they
 *    should, object by object, with their fields: an unbuffered channel's
 *    hand-off and close, a buffered channel's kicks, a semaphore acquire
 *    that blocks until a release, a select with one ready case and one
 *    that waits, a Mutex contended by two threads (park and unpark on its
 *    lot), a timer's tick.
 * Every event of an object carries the object's id; the test learns it
 * from the gosync_obj_create event of the fd it got, then follows it.
 *
 * A kernel without tracefs skips; one with event tracing but without the
 * gosync events fails.
 *
 * The events are enabled once for the whole binary (by the first test
 * that needs them; each test runs in a child of its own) and put back as
 * they were when it exits; each test clears the buffer and records with
 * tracing_on. Enabling or disabling an event patches the kernel's code
 * (static calls, through int3 and IPIs), which the stock kernel under
 * QEMU's TCG was seen to hang in now and then (a vCPU looping in
 * exc_int3 inside __schedule while the writer waits for it): toggling
 * the events for every test made that a matter of a few runs. The first
 * enable also turned on the recording of command names, a probe on the
 * scheduler's own tracepoint: the test turns that option off first, so
 * that only the module's idle tracepoints are patched.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

/* The contract: every event the module defines, with its fields. */
static const struct {
	const char *name;
	const char *fields[7];
} gosync_events[] = {
	{ "gosync_obj_create", { "obj", "type", "fd", "kind", "param", "cap" } },
	{ "gosync_obj_destroy", { "obj", "type" } },
	{ "gosync_block", { "obj", "op", "index", "count" } },
	{ "gosync_wake", { "obj", "op", "count", "handoff" } },
	{ "gosync_select_commit",
	  { "obj", "index", "ncases", "tries", "blocked", "result" } },
	{ "gosync_chan_close", { "obj", "len", "receivers", "senders" } },
	{ "gosync_timer_fire", { "obj", "value", "period", "delivered" } },
	{ "gosync_kick", { "obj", "op", "word" } },
	{ "gosync_park", { "obj", "index", "expected", "result" } },
	{ "gosync_unpark", { "obj", "index", "count", "woken", "handoff" } },
	{ "gosync_deadlock", { "obj", "last", "tid", "holder", "length" } },
	{ "gosync_stall",
	  { "obj", "blocked_ms", "type", "op", "tid", "holder" } },
};

#define NR_EVENTS	(sizeof(gosync_events) / sizeof(gosync_events[0]))

/* One line of the trace: who logged it, the event, its fields. */
struct ev {
	int pid;
	char name[32];
	char fields[224];
	char line[320];		/* as "trace" printed it */
};

#define MAX_EVENTS	4096
#define MAX_PATS	16

/*
 * The process that runs the tests (each in a child of its own), and
 * whether the gosync events were enabled before it ran: put back so at
 * its exit.
 */
static pid_t runner;
static char events_were[8], record_cmd_was[8];

__attribute__((constructor)) static void remember_events(void)
{
	const char *dir = tracefs_dir();

	runner = getpid();
	if (!dir || tracefs_read(dir, "events/gosync/enable", events_were,
				 sizeof(events_were)) < 1)
		events_were[0] = '\0';
	if (!dir || tracefs_read(dir, "options/record-cmd", record_cmd_was,
				 sizeof(record_cmd_was)) < 1)
		record_cmd_was[0] = '\0';
}

__attribute__((destructor)) static void restore_events(void)
{
	const char *dir = tracefs_dir();

	if (getpid() != runner || !dir)
		return;
	if (events_were[0] != '\0')
		tracefs_write(dir, "events/gosync/enable",
			      events_were[0] == '1' ? "1" : "0");
	if (record_cmd_was[0] != '\0')
		tracefs_write(dir, "options/record-cmd",
			      record_cmd_was[0] == '1' ? "1" : "0");
}

FIXTURE(trace) {
	const char *dir;
	struct ev *ev;
	int nr;
	char pat[MAX_PATS][256];
	int npat;
};

/* Write @text to @file of tracefs (O_TRUNC: "trace" is cleared so). */
static int tr_write(FIXTURE_DATA(trace) *self, const char *file,
		    const char *text)
{
	return tracefs_write(self->dir, file, text);
}

/* The whole of @file of tracefs, NUL-terminated (malloc'ed), or NULL. */
static char *tr_read(FIXTURE_DATA(trace) *self, const char *file)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", self->dir, file);
	return read_all(path);
}

/*
 * One line of "trace": "COMM-PID [CPU] FLAGS TIME: EVENT: FIELDS". The
 * pid is the digits before the first '[' (past the padding); COMM may
 * hold dashes but not '['. False for header lines and other events.
 */
static bool parse_line(const char *line, struct ev *e)
{
	const char *br = strchr(line, '['), *p, *name, *end;

	name = strstr(line, ": gosync_");
	if (!br || !name || br > name)
		return false;
	p = br;
	while (p > line && p[-1] == ' ')
		p--;
	while (p > line && p[-1] >= '0' && p[-1] <= '9')
		p--;
	if (p == line || p[-1] != '-')
		return false;
	e->pid = atoi(p);
	name += 2;
	end = strstr(name, ": ");
	if (!end || (size_t)(end - name) >= sizeof(e->name))
		return false;
	memcpy(e->name, name, (size_t)(end - name));
	e->name[end - name] = '\0';
	snprintf(e->fields, sizeof(e->fields), "%s", end + 2);
	while (*line == ' ')
		line++;
	snprintf(e->line, sizeof(e->line), "%s", line);
	return true;
}

/* Stop recording and read what the events logged into self->ev. */
static int tr_stop(FIXTURE_DATA(trace) *self)
{
	char *buf, *line, *save = NULL;
	int ret = tr_write(self, "tracing_on", "0");

	if (ret)
		return ret;
	buf = tr_read(self, "trace");
	if (!buf)
		return -EIO;
	self->nr = 0;
	for (line = strtok_r(buf, "\n", &save); line && self->nr < MAX_EVENTS;
	     line = strtok_r(NULL, "\n", &save)) {
		if (parse_line(line, &self->ev[self->nr]))
			self->nr++;
	}
	free(buf);
	return 0;
}

FIXTURE_SETUP(trace)
{
	char path[256], on[8];

	self->dir = tracefs_dir();
	if (!self->dir)
		SKIP(return, "no tracefs: a kernel without tracing");
	snprintf(path, sizeof(path), "%s/events/gosync", self->dir);
	ASSERT_EQ(0, access(path, F_OK))
		TH_LOG("%s: %s (the kernel traces events, but not gosync's)",
		       path, strerror(errno));
	self->ev = calloc(MAX_EVENTS, sizeof(*self->ev));
	ASSERT_NE(NULL, self->ev);
	ASSERT_EQ(0, gs_init());
	/* Enabled once for the binary (see the head of this file). */
	ASSERT_LT(0, tracefs_read(self->dir, "events/gosync/enable", on,
				  sizeof(on)));
	/*
	 * Without recording command names, enabling an event patches only
	 * the module's own tracepoints, which nothing runs now, and not the
	 * scheduler's sched_switch (the cmdline recorder's probe): that
	 * patch, with the other vCPU inside __schedule, is where TCG hung.
	 */
	if (on[0] != '1') {
		tr_write(self, "options/record-cmd", "0");
		ASSERT_EQ(0, tr_write(self, "events/gosync/enable", "1"));
	}
	/* Stopped, cleared, started: only what the test does is logged. */
	ASSERT_EQ(0, tr_write(self, "tracing_on", "0"));
	ASSERT_EQ(0, tr_write(self, "trace", ""));
	ASSERT_EQ(0, tr_write(self, "tracing_on", "1"));
}

FIXTURE_TEARDOWN(trace)
{
	tr_write(self, "trace", "");
	tr_write(self, "tracing_on", "1");
	free(self->ev);
}

/* A pattern for check_obj(), kept in the fixture until the test ends. */
static const char *pat(FIXTURE_DATA(trace) *self, const char *fmt, ...)
{
	char *p = self->pat[self->npat++ % MAX_PATS];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p, sizeof(self->pat[0]), fmt, ap);
	va_end(ap);
	return p;
}

/*
 * The pattern of the gosync_obj_create event of object @id of @type that
 * task @pid created with fd @fd; @fmt: the fields after fd's.
 */
__attribute__((format(printf, 6, 7)))
static const char *create_pat(FIXTURE_DATA(trace) *self, int pid, uint64_t id,
			      const char *type, int fd, const char *fmt, ...)
{
	char rest[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rest, sizeof(rest), fmt, ap);
	va_end(ap);
	return pat(self, "gosync_obj_create pid=%d obj=%llu type=%s fd=%d %s",
		   pid, (unsigned long long)id, type, fd, rest);
}

/* The value of field @key of @e ("key=value"), copied to @out; or false. */
static bool ev_field(const struct ev *e, const char *key, char *out,
		     size_t len)
{
	size_t klen = strlen(key);
	const char *p = e->fields;

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			size_t n = strcspn(p + klen + 1, " ");

			snprintf(out, len, "%.*s", (int)n, p + klen + 1);
			return true;
		}
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return false;
}

/* A numeric field (decimal or 0x), or LLONG_MIN when missing. */
static long long ev_num(const struct ev *e, const char *key)
{
	char v[64];

	if (!ev_field(e, key, v, sizeof(v)))
		return LLONG_MIN;
	return strtoll(v, NULL, 0);
}

/*
 * Does @e match @p: "EVENT key=value ...", every field of the event in
 * its order, value "*" for any; "pid=N" anywhere names the task that
 * logged it.
 */
static bool ev_match(const struct ev *e, const char *p)
{
	char buf[256], *tok, *save = NULL, fields[256];
	char *ftok, *fsave = NULL;

	snprintf(buf, sizeof(buf), "%s", p);
	snprintf(fields, sizeof(fields), "%s", e->fields);
	tok = strtok_r(buf, " ", &save);
	if (!tok || strcmp(tok, e->name))
		return false;
	ftok = strtok_r(fields, " ", &fsave);
	while ((tok = strtok_r(NULL, " ", &save))) {
		char *eq;

		if (!strncmp(tok, "pid=", 4)) {
			if (atoi(tok + 4) != e->pid)
				return false;
			continue;
		}
		eq = strchr(tok, '=');
		if (!ftok || !eq || strncmp(tok, ftok, (size_t)(eq - tok) + 1))
			return false;
		if (strcmp(eq + 1, "*") && strcmp(eq + 1, ftok + (eq - tok) + 1))
			return false;
		ftok = strtok_r(NULL, " ", &fsave);
	}
	return !ftok;	/* no field left unchecked */
}

static bool ev_of(const struct ev *e, uint64_t id)
{
	return ev_num(e, "obj") == (long long)id;
}

/* The @k-th event (from 0) naming object @id, or NULL. */
static const struct ev *obj_ev(FIXTURE_DATA(trace) *self, uint64_t id, int k)
{
	for (int i = 0; i < self->nr; i++)
		if (ev_of(&self->ev[i], id) && !k--)
			return &self->ev[i];
	return NULL;
}

/*
 * The id of the object of @type that task @pid created with fd @fd (its
 * only gosync_obj_create event), or 0.
 */
static uint64_t find_create(FIXTURE_DATA(trace) *self, const char *type,
			    int fd, int pid)
{
	uint64_t id = 0;
	char t[32];
	int n = 0;

	for (int i = 0; i < self->nr; i++) {
		const struct ev *e = &self->ev[i];

		if (strcmp(e->name, "gosync_obj_create") || e->pid != pid ||
		    ev_num(e, "fd") != fd || !ev_field(e, "type", t, sizeof(t)) ||
		    strcmp(t, type))
			continue;
		id = (uint64_t)ev_num(e, "obj");
		n++;
	}
	return n == 1 ? id : 0;
}

/*
 * The events naming @id are exactly @pats, in this order: 0, or 1 with
 * what differs and every event of @id in @why.
 */
static int check_obj(FIXTURE_DATA(trace) *self, uint64_t id,
		     const char *const *pats, int npats, char *why, size_t len)
{
	int k = 0, bad = -1;
	size_t off;

	for (int i = 0; i < self->nr; i++) {
		const struct ev *e = &self->ev[i];

		if (!ev_of(e, id))
			continue;
		if (bad < 0 && (k >= npats || !ev_match(e, pats[k])))
			bad = k;
		k++;
	}
	if (bad < 0 && k == npats)
		return 0;
	if (bad < 0)
		bad = k;
	off = (size_t)snprintf(why, len, "event %d: want '%s'; logged %d:",
			       bad, bad < npats ? pats[bad] : "(none)", k);
	for (int i = 0; i < self->nr && off < len; i++) {
		const struct ev *e = &self->ev[i];

		if (ev_of(e, id))
			off += (size_t)snprintf(why + off, len - off,
						"\n  pid=%d %s: %s", e->pid,
						e->name, e->fields);
	}
	return 1;
}

#define EXPECT_OBJ_EVENTS(id, ...) do {					\
	const char *const p_[] = { __VA_ARGS__ };			\
	char why_[4096];						\
	EXPECT_EQ(0, check_obj(self, (id), p_,				\
			       (int)(sizeof(p_) / sizeof(p_[0])),	\
			       why_, sizeof(why_)))			\
		TH_LOG("obj %llu: %s", (unsigned long long)(id), why_);	\
} while (0)

/*
 * Stop tracing; the id of the one object of @type that task @pid created
 * with fd @fd into @id (the test fails without it).
 */
#define ASSERT_CREATED(id, type, fd, pid) do {				\
	ASSERT_EQ(0, tr_stop(self));					\
	(id) = find_create(self, (type), (fd), (pid));			\
	ASSERT_NE(0, (id))						\
		TH_LOG("no single gosync_obj_create of fd %d", (fd));	\
} while (0)

/* ------------------------------------------------------------------ */

TEST_F(trace, lists_every_event)
{
	char path[256], *fmt, want[64];
	struct dirent *d;
	DIR *dir;

	for (size_t i = 0; i < NR_EVENTS; i++) {
		snprintf(path, sizeof(path), "events/gosync/%s/format",
			 gosync_events[i].name);
		fmt = tr_read(self, path);
		EXPECT_NE(NULL, fmt) TH_LOG("no %s", path);
		if (!fmt)
			continue;
		snprintf(want, sizeof(want), "name: %s\n", gosync_events[i].name);
		EXPECT_NE(NULL, strstr(fmt, want)) TH_LOG("%s:\n%s", path, fmt);
		for (int f = 0; gosync_events[i].fields[f]; f++) {
			snprintf(want, sizeof(want), " %s;\toffset:",
				 gosync_events[i].fields[f]);
			EXPECT_NE(NULL, strstr(fmt, want))
				TH_LOG("%s has no field %s:\n%s", path,
				       gosync_events[i].fields[f], fmt);
		}
		free(fmt);
	}

	/* And nothing else: every event directory is in the list. */
	snprintf(path, sizeof(path), "%s/events/gosync", self->dir);
	dir = opendir(path);
	ASSERT_NE(NULL, dir);
	while ((d = readdir(dir))) {
		struct stat st;
		bool known = false;
		char sub[512];

		snprintf(sub, sizeof(sub), "%s/%s", path, d->d_name);
		if (d->d_name[0] == '.' || stat(sub, &st) || !S_ISDIR(st.st_mode))
			continue;
		for (size_t i = 0; i < NR_EVENTS; i++)
			known |= !strcmp(d->d_name, gosync_events[i].name);
		EXPECT_TRUE(known) TH_LOG("event %s is not in the test's list",
					  d->d_name);
	}
	closedir(dir);
}

/* A thread that receives one int64_t from @ch. */
struct rx {
	gs_chan *ch;
	int64_t v;
	int ret;
	_Atomic pid_t tid;
};

static void *rx_main(void *arg)
{
	struct rx *r = arg;

	atomic_store(&r->tid, gs_gettid());
	r->ret = gs_chan_recv(r->ch, &r->v);
	return NULL;
}

/* Start @r on @ch and wait until it sleeps in the kernel, the only one. */
static int rx_start_blocked(pthread_t *thr, struct rx *r, gs_chan *ch)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->ch = ch;
	ret = start_thread(thr, rx_main, r);
	if (ret)
		return -ret;
	ret = wait_chan_waiters(ch, -1, 1);
	while (!ret && !atomic_load(&r->tid))
		usleep(100);
	return ret ? ret : wait_in_syscall(atomic_load(&r->tid), SYS_ioctl);
}

TEST_F(trace, unbuffered_chan_handoff_then_close)
{
	int me = gs_gettid(), fd;
	const struct ev *e;
	struct rx r1, r2;
	pthread_t t1, t2;
	int64_t v = 42;
	gs_chan *ch;
	uint64_t id;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(int64_t), 0));
	fd = gs_chan_fd(ch);
	/* A receiver blocks; a send hands the value to it. */
	ASSERT_EQ(0, rx_start_blocked(&t1, &r1, ch));
	ASSERT_EQ(0, gs_chan_send(ch, &v));
	ASSERT_EQ(0, join_ms(t1, WAIT_LIMIT_MS));
	EXPECT_EQ(1, r1.ret);
	EXPECT_EQ(42, r1.v);
	/* Another blocks; the close wakes it with "closed". */
	ASSERT_EQ(0, rx_start_blocked(&t2, &r2, ch));
	ASSERT_EQ(0, gs_chan_close(ch));
	ASSERT_EQ(0, join_ms(t2, WAIT_LIMIT_MS));
	EXPECT_EQ(0, r2.ret);
	gs_chan_destroy(ch);
	ASSERT_CREATED(id, "chan", fd, me);
	EXPECT_OBJ_EVENTS(id,
		create_pat(self, me, id, "chan", fd, "kind=- param=8 cap=0"),
		pat(self, "gosync_block pid=%d obj=%llu op=recv index=0 count=1",
		    (int)r1.tid, (unsigned long long)id),
		pat(self, "gosync_wake pid=%d obj=%llu op=recv count=1 handoff=1",
		    me, (unsigned long long)id),
		pat(self, "gosync_block pid=%d obj=%llu op=recv index=0 count=1",
		    (int)r2.tid, (unsigned long long)id),
		pat(self, "gosync_chan_close pid=%d obj=%llu len=0 receivers=1 senders=0",
		    me, (unsigned long long)id),
		pat(self, "gosync_wake pid=%d obj=%llu op=recv count=1 handoff=0",
		    me, (unsigned long long)id),
		pat(self, "gosync_obj_destroy pid=%d obj=%llu type=chan",
		    me, (unsigned long long)id));
	/* What "trace" shows, for the README. */
	for (int k = 0; (e = obj_ev(self, id, k)); k++)
		TH_LOG("%s", e->line);
}

TEST_F(trace, buffered_chan_kicks)
{
	int me = gs_gettid(), fd;
	struct pollfd pfd;
	const struct ev *e;
	int64_t v = 7;
	pthread_t t;
	gs_chan *ch;
	struct rx r;
	uint64_t id;

	ASSERT_EQ(0, gs_chan_make(&ch, sizeof(int64_t), 4));
	fd = gs_chan_fd(ch);
	/*
	 * The receiver finds the ring empty and enters the kernel, which
	 * sets RECV_WAITERS; so the send does too, and hands over.
	 */
	ASSERT_EQ(0, rx_start_blocked(&t, &r, ch));
	ASSERT_EQ(0, gs_chan_send(ch, &v));
	ASSERT_EQ(0, join_ms(t, WAIT_LIMIT_MS));
	EXPECT_EQ(1, r.ret);
	EXPECT_EQ(7, r.v);
	/*
	 * A poll of the empty ring sets POLLED_IN: the next send pushes in
	 * userspace, sees the flag and kicks; the receive pops in userspace.
	 */
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	ASSERT_EQ(0, poll(&pfd, 1, 0));
	v = 8;
	ASSERT_EQ(0, gs_chan_send(ch, &v));
	v = 0;
	ASSERT_EQ(1, gs_chan_recv(ch, &v));
	EXPECT_EQ(8, v);
	gs_chan_destroy(ch);
	ASSERT_CREATED(id, "chan", fd, me);
	EXPECT_OBJ_EVENTS(id,
		create_pat(self, me, id, "chan", fd, "kind=- param=8 cap=4"),
		pat(self, "gosync_kick pid=%d obj=%llu op=recv word=0x0",
		    (int)r.tid, (unsigned long long)id),
		pat(self, "gosync_block pid=%d obj=%llu op=recv index=0 count=1",
		    (int)r.tid, (unsigned long long)id),
		pat(self, "gosync_kick pid=%d obj=%llu op=send word=%#llx",
		    me, (unsigned long long)id,
		    (unsigned long long)GOSYNC_CHAN_RECV_WAITERS),
		pat(self, "gosync_wake pid=%d obj=%llu op=recv count=1 handoff=1",
		    me, (unsigned long long)id),
		pat(self, "gosync_kick pid=%d obj=%llu op=kick word=*",
		    me, (unsigned long long)id),
		pat(self, "gosync_obj_destroy pid=%d obj=%llu type=chan",
		    me, (unsigned long long)id));
	/* The kick's word: the poller's flag; the tail past the one push. */
	e = obj_ev(self, id, 5);
	ASSERT_NE(NULL, e);
	EXPECT_EQ(GOSYNC_CHAN_POLLED_IN | 1ULL,
		  (unsigned long long)ev_num(e, "word")) TH_LOG("%s", e->fields);
}

/* A thread that acquires @n permits of @sem. */
struct acq {
	gs_sem *sem;
	uint64_t n;
	int ret;
	_Atomic pid_t tid;
};

static void *acq_main(void *arg)
{
	struct acq *a = arg;

	atomic_store(&a->tid, gs_gettid());
	a->ret = gs_sem_acquire(a->sem, a->n);
	return NULL;
}

TEST_F(trace, sem_acquire_blocks_until_release)
{
	struct acq a = { .n = 1 };
	struct gosync_sem_status st;
	int me = gs_gettid(), fd;
	uint64_t t0, id;
	gs_sem *sem;
	pthread_t t;

	ASSERT_EQ(0, gs_sem_create(&sem, 1));
	fd = gs_sem_fd(sem);
	ASSERT_EQ(0, gs_sem_acquire(sem, 1));	/* the fast path: no event */
	a.sem = sem;
	ASSERT_EQ(0, start_thread(&t, acq_main, &a));
	t0 = mono_ns();
	do {
		ASSERT_EQ(0, gs_sem_status(sem, &st));
		ASSERT_GT(WAIT_LIMIT_MS, ms_since(t0));
		usleep(200);
	} while (st.waiters != 1 || !atomic_load(&a.tid));
	ASSERT_EQ(0, wait_in_syscall(atomic_load(&a.tid), SYS_ioctl));
	/* WAITERS is set: the release enters the kernel, which hands over. */
	ASSERT_EQ(0, gs_sem_release(sem, 1));
	ASSERT_EQ(0, join_ms(t, WAIT_LIMIT_MS));
	EXPECT_EQ(0, a.ret);
	gs_sem_destroy(sem);
	ASSERT_CREATED(id, "sem", fd, me);
	EXPECT_OBJ_EVENTS(id,
		create_pat(self, me, id, "sem", fd, "kind=- param=1 cap=0"),
		pat(self, "gosync_kick pid=%d obj=%llu op=acquire word=0x0",
		    (int)a.tid, (unsigned long long)id),
		pat(self, "gosync_block pid=%d obj=%llu op=acquire index=0 count=1",
		    (int)a.tid, (unsigned long long)id),
		pat(self, "gosync_kick pid=%d obj=%llu op=release word=%#llx",
		    me, (unsigned long long)id,
		    (unsigned long long)GOSYNC_SEM_WAITERS),
		pat(self, "gosync_wake pid=%d obj=%llu op=acquire count=1 handoff=1",
		    me, (unsigned long long)id),
		pat(self, "gosync_obj_destroy pid=%d obj=%llu type=sem",
		    me, (unsigned long long)id));
}

/* A thread that sends @v on @ch, or selects a receive from @a or @b. */
struct peer {
	gs_chan *ch, *a, *b;
	int64_t v;
	int ret;
	_Atomic pid_t tid;
};

static void *send_main(void *arg)
{
	struct peer *p = arg;

	atomic_store(&p->tid, gs_gettid());
	p->ret = gs_chan_send(p->ch, &p->v);
	return NULL;
}

static void *select_main(void *arg)
{
	struct peer *p = arg;
	gs_case cs[] = { gs_case_recv(p->a, &p->v), gs_case_recv(p->b, &p->v) };

	atomic_store(&p->tid, gs_gettid());
	p->ret = gs_select(cs, 2, 0, GS_FOREVER);
	return NULL;
}

TEST_F(trace, select_commits_the_ready_case)
{
	struct peer s = { .v = 5 }, sel = { 0 };
	int me = gs_gettid(), fda, fdb;
	uint64_t ida, idb;
	const struct ev *e;
	gs_chan *a, *b;
	int64_t got = 0;
	pthread_t t;

	ASSERT_EQ(0, gs_chan_make(&a, sizeof(int64_t), 0));
	ASSERT_EQ(0, gs_chan_make(&b, sizeof(int64_t), 0));
	fda = gs_chan_fd(a);
	fdb = gs_chan_fd(b);

	/* b is ready (a sender waits on it), a is not: the select takes b. */
	s.ch = b;
	ASSERT_EQ(0, start_thread(&t, send_main, &s));
	ASSERT_EQ(0, wait_chan_waiters(b, 1, 0));
	while (!atomic_load(&s.tid))
		usleep(100);
	ASSERT_EQ(0, wait_in_syscall(atomic_load(&s.tid), SYS_ioctl));
	{
		gs_case cs[] = { gs_case_recv(a, &got), gs_case_recv(b, &got) };

		EXPECT_EQ(1, gs_select(cs, 2, 0, GS_FOREVER));
		EXPECT_EQ(5, got);
	}
	ASSERT_EQ(0, join_ms(t, WAIT_LIMIT_MS));
	EXPECT_EQ(0, s.ret);

	/* Nothing is ready: the select waits on both; a send on a ends it. */
	sel.a = a;
	sel.b = b;
	ASSERT_EQ(0, start_thread(&t, select_main, &sel));
	ASSERT_EQ(0, wait_chan_waiters(a, 0, 1));
	ASSERT_EQ(0, wait_chan_waiters(b, 0, 1));
	while (!atomic_load(&sel.tid))
		usleep(100);
	ASSERT_EQ(0, wait_in_syscall(atomic_load(&sel.tid), SYS_ioctl));
	got = 9;
	ASSERT_EQ(0, gs_chan_send(a, &got));
	ASSERT_EQ(0, join_ms(t, WAIT_LIMIT_MS));
	EXPECT_EQ(0, sel.ret);
	EXPECT_EQ(9, sel.v);
	gs_chan_destroy(a);
	gs_chan_destroy(b);
	ASSERT_EQ(0, tr_stop(self));

	ida = find_create(self, "chan", fda, me);
	idb = find_create(self, "chan", fdb, me);
	ASSERT_NE(0, ida);
	ASSERT_NE(0, idb);
	EXPECT_NE(ida, idb);
	/* The first select tried a or not, but queued nowhere for good. */
	EXPECT_OBJ_EVENTS(ida,
		create_pat(self, me, ida, "chan", fda, "kind=- param=8 cap=0"),
		pat(self, "gosync_block pid=%d obj=%llu op=select index=0 count=2",
		    (int)sel.tid, (unsigned long long)ida),
		pat(self, "gosync_wake pid=%d obj=%llu op=recv count=1 handoff=1",
		    me, (unsigned long long)ida),
		pat(self, "gosync_select_commit pid=%d obj=%llu index=0 ncases=2 tries=2 blocked=1 result=1",
		    (int)sel.tid, (unsigned long long)ida),
		pat(self, "gosync_obj_destroy pid=%d obj=%llu type=chan",
		    me, (unsigned long long)ida));
	EXPECT_OBJ_EVENTS(idb,
		create_pat(self, me, idb, "chan", fdb, "kind=- param=8 cap=0"),
		pat(self, "gosync_block pid=%d obj=%llu op=send index=0 count=1",
		    (int)s.tid, (unsigned long long)idb),
		pat(self, "gosync_wake pid=%d obj=%llu op=send count=1 handoff=1",
		    me, (unsigned long long)idb),
		pat(self, "gosync_select_commit pid=%d obj=%llu index=1 ncases=2 tries=* blocked=0 result=1",
		    me, (unsigned long long)idb),
		pat(self, "gosync_block pid=%d obj=%llu op=select index=1 count=2",
		    (int)sel.tid, (unsigned long long)idb),
		pat(self, "gosync_obj_destroy pid=%d obj=%llu type=chan",
		    me, (unsigned long long)idb));
	/* Ready at once: b was the first case tried, or the second. */
	e = obj_ev(self, idb, 3);
	ASSERT_NE(NULL, e);
	EXPECT_LE(1, ev_num(e, "tries"));
	EXPECT_GE(2, ev_num(e, "tries"));
}

/* A thread that locks and unlocks @m. */
struct locker {
	gs_mutex *m;
	int ret;
	_Atomic pid_t tid;
};

static void *lock_main(void *arg)
{
	struct locker *l = arg;

	atomic_store(&l->tid, gs_gettid());
	l->ret = gs_mutex_lock(l->m);
	if (!l->ret)
		l->ret = gs_mutex_unlock(l->m);
	return NULL;
}

TEST_F(trace, contended_mutex_parks_and_unparks)
{
	struct locker l = { 0 };
	int me = gs_gettid(), fd;
	long long param;
	gs_mutex *m;
	pthread_t t;
	uint64_t id;

	ASSERT_EQ(0, gs_mutex_create(&m));
	fd = gs_mutex_fd(m);
	param = fdinfo_num(fd, "param");
	ASSERT_LE(0, param);
	ASSERT_EQ(0, gs_mutex_lock(m));		/* uncontended: no event */
	l.m = m;
	ASSERT_EQ(0, start_thread(&t, lock_main, &l));
	ASSERT_EQ(0, wait_parked(fd, 1));
	while (!atomic_load(&l.tid))
		usleep(100);
	ASSERT_EQ(0, wait_in_syscall(atomic_load(&l.tid), SYS_ioctl));
	/* A waiter is counted in the word: the unlock unparks it. */
	ASSERT_EQ(0, gs_mutex_unlock(m));
	ASSERT_EQ(0, join_ms(t, WAIT_LIMIT_MS));
	EXPECT_EQ(0, l.ret);
	gs_mutex_destroy(m);
	ASSERT_CREATED(id, "lot", fd, me);
	EXPECT_OBJ_EVENTS(id,
		create_pat(self, me, id, "lot", fd, "kind=mutex param=%lld cap=0", param),
		pat(self, "gosync_block pid=%d obj=%llu op=park index=0 count=1",
		    (int)l.tid, (unsigned long long)id),
		pat(self, "gosync_unpark pid=%d obj=%llu index=0 count=1 woken=1 handoff=0",
		    me, (unsigned long long)id),
		pat(self, "gosync_wake pid=%d obj=%llu op=park count=1 handoff=0",
		    me, (unsigned long long)id),
		/* Parked while LOCKED (bit 0) was set; unparked: 0. */
		pat(self, "gosync_park pid=%d obj=%llu index=0 expected=0x1 result=0",
		    (int)l.tid, (unsigned long long)id),
		pat(self, "gosync_obj_destroy pid=%d obj=%llu type=lot",
		    me, (unsigned long long)id));
}

/* A relock of a checked Mutex is refused before it sleeps, and traced. */
TEST_F(trace, checked_mutex_relock_is_a_traced_deadlock)
{
	int me = gs_gettid(), fd;
	gs_mutex *m;
	uint64_t id;

	if (gs_mutex_create_checked(&m) == -EOPNOTSUPP)
		SKIP(return, "no GOSYNC_FEATURE_LOCK_CHECK");
	fd = gs_mutex_fd(m);
	ASSERT_EQ(0, gs_mutex_lock(m));
	EXPECT_EQ(-EDEADLK, gs_mutex_lock(m));
	EXPECT_EQ(0, gs_mutex_unlock(m));
	gs_mutex_destroy(m);
	ASSERT_CREATED(id, "lot", fd, me);
	EXPECT_OBJ_EVENTS(id,
		create_pat(self, me, id, "lot", fd, "kind=mutex param=0 cap=0"),
		pat(self, "gosync_deadlock pid=%d obj=%llu last=%llu tid=%d holder=%d length=1",
		    me, (unsigned long long)id, (unsigned long long)id, me,
		    me),
		pat(self, "gosync_obj_destroy pid=%d obj=%llu type=lot",
		    me, (unsigned long long)id));
}

TEST_F(trace, timer_fires_once)
{
	int me = gs_gettid(), fd;
	const struct ev *fire;
	uint64_t v = 0, id;
	gs_chan *tm;

	ASSERT_EQ(0, gs_after(&tm, 200 * NS_PER_MS));
	fd = gs_chan_fd(tm);
	ASSERT_EQ(1, gs_chan_recv(tm, &v));
	gs_chan_destroy(tm);
	ASSERT_CREATED(id, "timer", fd, me);
	/* Whether the receive was waiting when the tick came: either way. */
	fire = obj_ev(self, id, 1);
	ASSERT_NE(NULL, fire);
	if (!strcmp(fire->name, "gosync_block")) {
		EXPECT_OBJ_EVENTS(id,
			create_pat(self, me, id, "timer", fd, "kind=- param=8 cap=1"),
			pat(self, "gosync_block pid=%d obj=%llu op=recv index=0 count=1",
			    me, (unsigned long long)id),
			pat(self, "gosync_wake obj=%llu op=recv count=1 handoff=1",
			    (unsigned long long)id),
			pat(self, "gosync_timer_fire obj=%llu value=%llu period=0 delivered=1",
			    (unsigned long long)id, (unsigned long long)v),
			pat(self, "gosync_obj_destroy pid=%d obj=%llu type=timer",
			    me, (unsigned long long)id));
	} else {
		EXPECT_OBJ_EVENTS(id,
			create_pat(self, me, id, "timer", fd, "kind=- param=8 cap=1"),
			pat(self, "gosync_timer_fire obj=%llu value=%llu period=0 delivered=0",
			    (unsigned long long)id, (unsigned long long)v),
			pat(self, "gosync_obj_destroy pid=%d obj=%llu type=timer",
			    me, (unsigned long long)id));
	}
}

TEST_HARNESS_MAIN
