// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of tools/gsstat, run as a user runs it (popen), on this process:
 *  - --json lists a semaphore, a buffered channel and a Mutex with their
 *    exact fields (size/free, cap/len, kind), each with the id its fdinfo
 *    shows; the table says the same; -g folds two fds of one object; a
 *    checked Mutex is marked;
 *  - a process without gosync objects lists nothing;
 *  - the exit codes: 2 for bad usage, 1 for a process that is not there,
 *    0 for -h and for a watch of two frames (-w 0.1 -n 2);
 *  - the parser, on a fake /proc and debugfs (--proc, --debugfs): lines
 *    it does not know are ignored, fds that are not anonymous inodes and
 *    fds without fdinfo are skipped, names are unescaped and escaped again
 *    as JSON, a wait-for cycle is marked in --waits and drawn by --dot;
 *    --waits without the waits file fails naming it; --names reads the
 *    names listing (lot kinds named);
 *  - a named channel's fd shows its name; closed, with the name linked,
 *    the channel is listed by --names (no open fds) until it is unlinked;
 *  - the wait-for view of the module (debugfs gosync/waits; skipped when
 *    it is not there): a thread blocked in gs_mutex_lock shows up with
 *    op park, kind mutex and the main thread as holder, and two threads
 *    that lock two Mutexes in opposite orders show a cycle.
 *
 * gsstat is found as $GSSTAT, else ../tools/gsstat from this binary's
 * directory (the build tree and the VM's payload both lay it out so),
 * else on PATH.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

#define WAITS_PATH	"/sys/kernel/debug/gosync/waits"
#define NAMES_PATH	"/sys/kernel/debug/gosync/names"

/* ------------------------------------------------------------------ */
/* Running gsstat                                                       */

static const char *gsstat_bin(void)
{
	static char path[PATH_MAX + 32];
	char self[PATH_MAX], *slash;
	const char *env = getenv("GSSTAT");
	ssize_t n;

	if (env && *env)
		return env;
	if (path[0])
		return path;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/../tools/gsstat", self);
			if (access(path, X_OK) == 0)
				return path;
		}
	}
	snprintf(path, sizeof(path), "gsstat");
	return path;
}

/*
 * Run gsstat with the arguments @fmt (a shell command line's tail: stdout
 * is captured in *@out, malloc'ed; stderr is the caller's to redirect).
 * The exit status, or -1 if it did not exit.
 */
__attribute__((format(printf, 2, 3)))
static int gsstat(char **out, const char *fmt, ...)
{
	char args[2048], *cmd;
	size_t len = 0, cap = 8192;
	char *buf = malloc(cap);
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if (asprintf(&cmd, "'%s' %s", gsstat_bin(), args) < 0)
		cmd = NULL;
	p = cmd ? popen(cmd, "re") : NULL;
	free(cmd);
	if (!p || !buf) {
		free(buf);
		*out = NULL;
		return -1;
	}
	for (;;) {
		size_t n;

		if (len + 1 == cap) {
			char *b = realloc(buf, cap * 2);

			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - 1 - len, p);
		if (!n)
			break;
		len += n;
	}
	buf[len] = '\0';
	*out = buf;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ------------------------------------------------------------------ */
/* Just enough JSON: a validator and a field finder                     */

static const char *json_value(const char *s);

static const char *json_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static const char *json_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	while (*s != '"') {
		if ((unsigned char)*s < 0x20)
			return NULL;	/* raw control characters are not JSON */
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
						return NULL;
				s += 4;
			} else if (!*s || !strchr("\"\\/bfnrt", *s)) {
				return NULL;
			}
		}
		s++;
	}
	return s + 1;
}

static const char *json_value(const char *s)
{
	s = json_ws(s);
	if (*s == '"')
		return json_string(s);
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';

		s = json_ws(s + 1);
		if (*s == close)
			return s + 1;
		for (;;) {
			if (close == '}') {
				s = json_string(json_ws(s));
				if (!s)
					return NULL;
				s = json_ws(s);
				if (*s++ != ':')
					return NULL;
			}
			s = json_value(s);
			if (!s)
				return NULL;
			s = json_ws(s);
			if (*s == close)
				return s + 1;
			if (*s++ != ',')
				return NULL;
		}
	}
	if (!strncmp(s, "true", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	if (!strncmp(s, "null", 4))
		return s + 4;
	if (*s == '-')
		s++;
	if (*s < '0' || *s > '9')
		return NULL;
	if (*s == '0' && s[1] >= '0' && s[1] <= '9')
		return NULL;
	while (*s >= '0' && *s <= '9')
		s++;
	return s;
}

/* @doc is one JSON value and nothing but white space around it. */
static bool json_valid(const char *doc)
{
	const char *end = doc ? json_value(doc) : NULL;

	return end && !*json_ws(end);
}

/*
 * The flat JSON object (no nested objects) in @doc, after @after, that has
 * the member @member (e.g. "\"fd\":5"), copied to @obj; false if none.
 */
static bool json_find(const char *doc, const char *after, const char *member,
		      char *obj, size_t len)
{
	const char *p = doc, *b, *e;
	char pat[128];

	if (!doc)
		return false;
	if (after) {
		p = strstr(doc, after);
		if (!p)
			return false;
	}
	for (;;) {
		snprintf(pat, sizeof(pat), "%s,", member);
		b = strstr(p, pat);
		if (!b) {
			snprintf(pat, sizeof(pat), "%s}", member);
			b = strstr(p, pat);
		}
		if (!b)
			return false;
		/* A member, not the tail of a string or of a longer key. */
		if (b > doc && (b[-1] == '{' || b[-1] == ','))
			break;
		p = b + 1;
	}
	while (b > doc && *b != '{')
		b--;
	for (e = b; *e && *e != '}'; e++)
		if (*e == '"')
			e = json_string(e) - 1;
	if (*e != '}' || (size_t)(e - b + 2) > len)
		return false;
	memcpy(obj, b, (size_t)(e - b + 1));
	obj[e - b + 1] = '\0';
	return true;
}

/* The raw text of member @key of the flat object @obj ("" if none). */
static const char *field(const char *obj, const char *key)
{
	static char v[4][512];
	static int slot;
	char pat[128], *out = v[slot++ % 4];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(obj, pat);
	out[0] = '\0';
	if (!p)
		return out;
	p += strlen(pat);
	e = *p == '"' ? json_string(p) : p + strcspn(p, ",}");
	if (e && (size_t)(e - p) < sizeof(v[0])) {
		memcpy(out, p, (size_t)(e - p));
		out[e - p] = '\0';
	}
	return out;
}

/* gsstat's output in the log, as TAP comments (for a reader, not a check). */
static void show(const char *what, const char *out)
{
	const char *p = out;

	printf("# %s:\n", what);
	while (p && *p) {
		size_t n = strcspn(p, "\n");

		printf("#   %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
	fflush(stdout);
}

static char *numstr(long long v)
{
	static char s[4][32];
	static int slot;
	char *out = s[slot++ % 4];

	snprintf(out, sizeof(s[0]), "%lld", v);
	return out;
}

/* gsstat @... (printf-like) exits 0 and writes valid JSON into *@out. */
#define ASSERT_GSSTAT_JSON(out, ...) do {				\
	ASSERT_EQ(0, gsstat((out), __VA_ARGS__));			\
	ASSERT_TRUE(json_valid(*(out))) TH_LOG("not JSON: %s", *(out));	\
} while (0)

/*
 * The flat object @o has the members listed: pairs of a key and its raw
 * text ("\"sem\"", "5", "null", ...). At most 4 values from numstr().
 */
#define EXPECT_FIELDS(o, ...) do {					\
	const char *const kv_[] = { __VA_ARGS__ };			\
	for (size_t i_ = 0; i_ + 1 < sizeof(kv_) / sizeof(kv_[0]);	\
	     i_ += 2) {							\
		EXPECT_STREQ(kv_[i_ + 1], field((o), kv_[i_]))		\
			TH_LOG("\"%s\" of %s", kv_[i_], (o));		\
	}								\
} while (0)

/*
 * The object in @doc (after @after, if set) that has member @member is
 * there (its text into the array @o) and has the members listed, as
 * EXPECT_FIELDS().
 */
#define EXPECT_OBJECT(doc, after, member, o, ...) do {			\
	ASSERT_TRUE(json_find((doc), (after), (member), (o), sizeof(o)))	\
		TH_LOG("no %s in %s", (member), (doc));			\
	EXPECT_FIELDS((o), __VA_ARGS__);				\
} while (0)

/* ------------------------------------------------------------------ */
/* Objects of this process                                              */

FIXTURE(objs)
{
	gs_sem *sem;
	gs_chan *ch;
	gs_mutex *m;
};

FIXTURE_SETUP(objs)
{
	int v = 7;

	ASSERT_EQ(0, gs_sem_create(&self->sem, 5));
	ASSERT_EQ(0, gs_sem_acquire(self->sem, 2));
	ASSERT_EQ(0, gs_chan_make(&self->ch, sizeof(int), 4));
	ASSERT_EQ(0, gs_chan_send(self->ch, &v));
	ASSERT_EQ(0, gs_chan_send(self->ch, &v));
	ASSERT_EQ(0, gs_mutex_create(&self->m));
}

FIXTURE_TEARDOWN(objs)
{
	gs_mutex_destroy(self->m);
	gs_chan_destroy(self->ch);
	gs_sem_destroy(self->sem);
}

/* Each object's row: its exact fields, its id as its fdinfo says. */
TEST_F(objs, json)
{
	int sfd = gs_sem_fd(self->sem), cfd = gs_chan_fd(self->ch);
	int mfd = gs_mutex_fd(self->m);
	char *out, o[2048], pat[64];

	ASSERT_GSSTAT_JSON(&out, "-p %d --json", getpid());
	show("gsstat -p PID --json", out);

	snprintf(pat, sizeof(pat), "\"fd\":%d", sfd);
	EXPECT_OBJECT(out, NULL, pat, o, "pid", numstr(getpid()),
		      "type", "\"sem\"", "size", "5", "free", "3",
		      "waiters", "0", "name", "null", "access", "\"rw\"");
	if (fdinfo_num(sfd, "id") >= 0)
		EXPECT_STREQ(numstr(fdinfo_num(sfd, "id")), field(o, "id"));

	snprintf(pat, sizeof(pat), "\"fd\":%d", cfd);
	EXPECT_OBJECT(out, NULL, pat, o, "type", "\"chan\"", "cap", "4",
		      "len", "2", "elem_size", "4", "closed", "false",
		      "send_waiters", "0", "recv_waiters", "0");
	if (fdinfo_num(cfd, "id") >= 0)
		EXPECT_STREQ(numstr(fdinfo_num(cfd, "id")), field(o, "id"));

	snprintf(pat, sizeof(pat), "\"fd\":%d", mfd);
	EXPECT_OBJECT(out, NULL, pat, o, "type", "\"lot\"",
		      "kind", "\"mutex\"", "parked", "0");
	if (fdinfo_num(mfd, "id") >= 0) {
		EXPECT_STREQ(numstr(fdinfo_num(mfd, "id")), field(o, "id"));
		/* Three objects, three ids. */
		EXPECT_NE(fdinfo_num(mfd, "id"), fdinfo_num(sfd, "id"));
		EXPECT_NE(fdinfo_num(cfd, "id"), fdinfo_num(sfd, "id"));
	}
	free(out);
}

/* The table says the same; -g folds a dup'ed fd into its object's row. */
TEST_F(objs, table_and_groups)
{
	int sfd = gs_sem_fd(self->sem), dfd;
	char *out, o[4096], want[128], pat[64], *line;
	long long id = fdinfo_num(sfd, "id");
	bool found = false;

	ASSERT_EQ(0, gsstat(&out, "-p %d", getpid()));
	ASSERT_EQ(0, strncmp(out, "PID ", 4)) TH_LOG("%s", out);
	show("gsstat -p PID", out);
	snprintf(want, sizeof(want), "%d ", getpid());
	for (line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char fdcol[32];

		snprintf(fdcol, sizeof(fdcol), " %d ", sfd);
		if (!strncmp(line, want, strlen(want)) && strstr(line, fdcol) &&
		    strstr(line, " sem ")) {
			found = true;
			EXPECT_NE(NULL, strstr(line, "free 3/5")) TH_LOG("%s", line);
			EXPECT_NE(NULL, strstr(line, "acquire 0")) TH_LOG("%s", line);
		}
	}
	EXPECT_TRUE(found);
	free(out);

	if (id < 0)
		SKIP(return, "the module's fdinfo has no id: nothing to group by");
	dfd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
	ASSERT_LE(0, dfd);
	ASSERT_GSSTAT_JSON(&out, "-p %d -g --json", getpid());
	snprintf(pat, sizeof(pat), "\"id\":%lld", id);
	/* The object, with its fds array: not a flat object, so by hand. */
	{
		const char *p = strstr(out, pat), *fds;

		ASSERT_NE(NULL, p) TH_LOG("%s", out);
		fds = strstr(p, "\"fds\":[");
		ASSERT_NE(NULL, fds);
		snprintf(o, sizeof(o), "%.*s", (int)strcspn(fds, "]"), fds);
		snprintf(want, sizeof(want), "\"fd\":%d,", sfd);
		EXPECT_NE(NULL, strstr(o, want)) TH_LOG("%s", o);
		snprintf(want, sizeof(want), "\"fd\":%d,", dfd);
		EXPECT_NE(NULL, strstr(o, want)) TH_LOG("%s", o);
		/* And only once. */
		EXPECT_EQ(NULL, strstr(p + 1, pat));
	}
	free(out);
	close(dfd);
}

/* A checked Mutex says so (fdinfo "checked:"), in JSON and in the table. */
TEST(checked_mutex)
{
	char *out, o[2048], pat[64];
	gs_mutex *m;
	int ret = gs_mutex_create_checked(&m);

	if (ret == -EOPNOTSUPP)
		SKIP(return, "the module does not check locks");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(1, fdinfo_num(gs_mutex_fd(m), "checked"));
	ASSERT_EQ(0, gsstat(&out, "-p %d --json", getpid()));
	snprintf(pat, sizeof(pat), "\"fd\":%d", gs_mutex_fd(m));
	EXPECT_OBJECT(out, NULL, pat, o, "kind", "\"mutex\"",
		      "checked", "true");
	free(out);
	ASSERT_EQ(0, gsstat(&out, "-p %d", getpid()));
	EXPECT_NE(NULL, strstr(out, " mutex+chk ")) TH_LOG("%s", out);
	free(out);
	gs_mutex_destroy(m);
}

/* A process without gosync objects: nothing listed, in either form. */
TEST(other_process_lists_nothing)
{
	int pipefd[2];
	char *out, c;
	pid_t pid;

	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(pipefd[1]);
		_exit(read(pipefd[0], &c, 1) == 0 ? 0 : 1);
	}
	close(pipefd[0]);
	EXPECT_EQ(0, gsstat(&out, "-p %d --json", pid));
	EXPECT_STREQ("{\"objects\":[]}\n", out);
	free(out);
	EXPECT_EQ(0, gsstat(&out, "-p %d", pid));
	EXPECT_EQ(NULL, strchr(out, '\n') ? strchr(strchr(out, '\n') + 1, '\n') : out)
		TH_LOG("more than the header: %s", out);
	free(out);
	close(pipefd[1]);
	EXPECT_EQ(0, reap(pid));
}

TEST(exit_codes)
{
	char *out;
	pid_t pid;
	int frames = 0;

	EXPECT_EQ(2, gsstat(&out, "--no-such-option 2>/dev/null"));
	free(out);
	EXPECT_EQ(2, gsstat(&out, "-p notapid 2>/dev/null"));
	free(out);
	EXPECT_EQ(2, gsstat(&out, "-p 2>/dev/null"));
	free(out);
	EXPECT_EQ(2, gsstat(&out, "-n 0 2>/dev/null"));
	free(out);
	EXPECT_EQ(2, gsstat(&out, "--json --dot 2>/dev/null"));
	free(out);
	EXPECT_EQ(0, gsstat(&out, "-h"));
	EXPECT_EQ(0, strncmp(out, "usage:", 6)) TH_LOG("%s", out);
	free(out);

	/* A process that was there and is not any more. */
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(0, reap(pid));
	EXPECT_EQ(1, gsstat(&out, "-p %d 2>/dev/null", pid));
	free(out);

	/* Two frames, then it stops by itself. */
	EXPECT_EQ(0, gsstat(&out, "-p %d -w 0.1 -n 2", getpid()));
	for (const char *p = out; (p = strstr(p, "gsstat - ")); p++)
		frames++;
	EXPECT_EQ(2, frames) TH_LOG("%s", out);
	free(out);
}

/* ------------------------------------------------------------------ */
/* The parser, on a fake /proc and debugfs                              */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

FIXTURE(fake)
{
	char root[64];
};

static void put(const char *root, const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "we");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void dir(const char *root, const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	mkdir(path, 0700);
}

static void link_to(const char *root, const char *rel, const char *target)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (symlink(target, path))
		perror(path);
}

#define GENERIC	"pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n"

FIXTURE_SETUP(fake)
{
	const char *r = self->root;

	snprintf(self->root, sizeof(self->root), "/tmp/gsstat_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->root));
	dir(r, "proc");
	dir(r, "proc/100");
	dir(r, "proc/100/fd");
	dir(r, "proc/100/fdinfo");
	dir(r, "proc/100/task");
	dir(r, "proc/100/task/100");
	dir(r, "proc/100/task/101");
	put(r, "proc/100/comm", "worker\n");
	put(r, "proc/100/task/100/comm", "worker\n");
	put(r, "proc/100/task/101/comm", "helper\n");
	/* A semaphore, with a line from a future kernel in the middle. */
	put(r, "proc/100/fdinfo/3", GENERIC "gosync-type:\tsem\nid:\t7\nsize:\t5\n"
	    "future-line:\t1\nfree:\t3\nwaiters:\t1\nflags:\twaiters \n"
	    "slow-acquires:\t4\nslow-releases:\t2\n");
	link_to(r, "proc/100/fd/3", "anon_inode:[gosync-sem]");
	/* A named Mutex: "/a b\"c\\d", escaped as seq_escape() does. */
	put(r, "proc/100/fdinfo/4", "pos:\t0\nflags:\t02000000\ngosync-name:\t/a\\040b\"c\\134d\n"
	    "name-linked:\t1\nname-mode:\t0600\nname-opens:\t1\ngosync-type:\tlot\n"
	    "id:\t9\nkind:\tmutex\nchecked:\t0\nparam:\t0\nparked:\t1\nparks:\t1\n"
	    "unparks:\t0\nwoken:\t0\n");
	link_to(r, "proc/100/fd/4", "anon_inode:[gosync-name]");
	/* Not an anonymous inode, whatever its fdinfo says. */
	put(r, "proc/100/fdinfo/5", GENERIC "gosync-type:\tsem\n");
	link_to(r, "proc/100/fd/5", "/dev/null");
	/* Another anonymous inode. */
	put(r, "proc/100/fdinfo/6", GENERIC "eventfd-count:\t0\n");
	link_to(r, "proc/100/fd/6", "anon_inode:[eventfd]");
	/* Closed between the listing and the read: no fdinfo. */
	dir(r, "proc/100/fdinfo/7");
	link_to(r, "proc/100/fd/7", "anon_inode:[gosync-chan]");

	dir(r, "debug");
	dir(r, "debug/gosync");
	/* 100 waits for 9 held by 101, 101 for 10 held by 100; an extra column. */
	put(r, "debug/gosync/waits",
	    "pid\ttgid\tcomm\ttype\tkind\tid\top\tword\tsince_ms\tforever\tholder\tholder_tgid\tnew\n"
	    "101\t100\thelper\tlot\tmutex\t10\tpark\t0\t20\t1\t100\t100\tx\n"
	    "100\t100\twork\\011er\tlot\tmutex\t9\tpark\t0\t1500\t1\t101\t100\tx\n"
	    "102\t100\tother\tchan\t-\t8\trecv\t-\t5\t0\t-\t-\tx\n");
	put(r, "debug/gosync/names", "ns\tname\ttype\tkind\tuid\tgid\tmode\topens\n"
	    "4026531839\t/a\\040b\tlot\t1\t0\t0\t0600\t1\n"
	    "4026531839\t/q\tchan\t0\t1000\t100\t0640\t0\n");
}

FIXTURE_TEARDOWN(fake)
{
	nftw(self->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TEST_F(fake, fdinfo)
{
	char *out, o[2048];

	ASSERT_GSSTAT_JSON(&out, "--proc %s/proc --json", self->root);
	EXPECT_OBJECT(out, NULL, "\"fd\":3", o, "pid", "100",
		      "comm", "\"worker\"", "type", "\"sem\"", "id", "7",
		      "size", "5", "free", "3", "waiters", "1",
		      "slow_acquires", "4", "flags", "\"waiters \"");
	EXPECT_EQ(NULL, strstr(out, "future")) TH_LOG("%s", out);

	EXPECT_OBJECT(out, NULL, "\"fd\":4", o, "access", "\"r\"",
		      "type", "\"lot\"", "kind", "\"mutex\"",
		      "name", "\"/a b\\\"c\\\\d\"", "name_mode", "\"0600\"",
		      "checked", "false");

	EXPECT_FALSE(json_find(out, NULL, "\"fd\":5", o, sizeof(o))) TH_LOG("%s", out);
	EXPECT_FALSE(json_find(out, NULL, "\"fd\":6", o, sizeof(o))) TH_LOG("%s", out);
	EXPECT_FALSE(json_find(out, NULL, "\"fd\":7", o, sizeof(o))) TH_LOG("%s", out);
	free(out);

	/* A process that exists but has nothing readable. */
	dir(self->root, "proc/200");
	EXPECT_EQ(0, gsstat(&out, "--proc %s/proc -p 200 --json", self->root));
	EXPECT_STREQ("{\"objects\":[]}\n", out);
	free(out);
}

TEST_F(fake, waits)
{
	char *out, o[2048];

	ASSERT_GSSTAT_JSON(&out, "--proc %s/proc --debugfs %s/debug --waits --json",
			   self->root, self->root);
	EXPECT_OBJECT(out, "\"waits\":[", "\"pid\":100", o,
		      "comm", "\"work\\ter\"", "id", "9", "op", "\"park\"",
		      "since_ms", "1500", "forever", "true", "holder", "101",
		      "holder_comm", "\"helper\"",
		      "name", "\"/a b\\\"c\\\\d\"", "cycle", "true");
	EXPECT_OBJECT(out, "\"waits\":[", "\"pid\":102", o, "holder", "null",
		      "kind", "null", "cycle", "false");
	free(out);

	ASSERT_EQ(0, gsstat(&out, "--proc %s/proc --debugfs %s/debug --waits",
			    self->root, self->root));
	EXPECT_NE(NULL, strstr(out, "DEADLOCK")) TH_LOG("%s", out);
	free(out);

	ASSERT_EQ(0, gsstat(&out, "--proc %s/proc --debugfs %s/debug --dot",
			    self->root, self->root));
	EXPECT_EQ(0, strncmp(out, "digraph ", 8)) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"task 100\" -> \"lot mutex 9\" [label=\"waits park\""))
		TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"lot mutex 9\" -> \"task 101\" [label=\"held by\""))
		TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"lot mutex 10\" -> \"task 100\" [label=\"held by\""))
		TH_LOG("%s", out);
	free(out);

	/* -p keeps the waits of that process only. */
	ASSERT_EQ(0, gsstat(&out, "--proc %s/proc --debugfs %s/debug --waits --json -p 100",
			    self->root, self->root));
	EXPECT_NE(NULL, strstr(out, "\"pid\":102,")) TH_LOG("%s", out);
	free(out);

	/* No waits file: an error that names it, for --waits only. */
	EXPECT_EQ(1, gsstat(&out, "--proc %s/proc --debugfs %s/proc --waits 2>&1",
			    self->root, self->root));
	EXPECT_NE(NULL, strstr(out, "/proc/gosync/waits")) TH_LOG("%s", out);
	free(out);
	EXPECT_EQ(0, gsstat(&out, "--proc %s/proc --debugfs %s/proc >/dev/null",
			    self->root, self->root));
	free(out);
}

TEST_F(fake, names)
{
	char *out, o[1024];

	ASSERT_GSSTAT_JSON(&out, "--proc %s/proc --debugfs %s/debug --names --json",
			   self->root, self->root);
	EXPECT_OBJECT(out, "\"names\":[", "\"name\":\"/a b\"", o,
		      "type", "\"lot\"", "kind", "\"mutex\"",
		      "ns", "4026531839", "opens", "1");
	EXPECT_OBJECT(out, "\"names\":[", "\"name\":\"/q\"", o,
		      "kind", "null", "uid", "1000", "mode", "\"0640\"",
		      "opens", "0");
	free(out);
	EXPECT_EQ(1, gsstat(&out, "--proc %s/proc --debugfs %s/proc --names 2>&1",
			    self->root, self->root));
	EXPECT_NE(NULL, strstr(out, "/proc/gosync/names")) TH_LOG("%s", out);
	free(out);
}

/*
 * A named channel: its fd shows the name; closed with the name linked, it
 * is in no fdinfo but in --names (opens 0), until it is unlinked.
 */
TEST(named_object)
{
	char *out, o[2048], name[64], pat[128], quoted[128];
	gs_chan *ch;
	int v = 1;

	snprintf(name, sizeof(name), "/gsstat_test.%d", getpid());
	ASSERT_EQ(0, gs_chan_open(&ch, name, GS_O_CREAT | GS_O_EXCL, 0640, sizeof(int), 2));
	ASSERT_EQ(0, gs_chan_send(ch, &v));
	ASSERT_GSSTAT_JSON(&out, "-p %d --json", getpid());
	snprintf(pat, sizeof(pat), "\"fd\":%d", gs_chan_fd(ch));
	snprintf(quoted, sizeof(quoted), "\"%s\"", name);
	EXPECT_OBJECT(out, NULL, pat, o, "name", quoted, "type", "\"chan\"",
		      "name_linked", "true", "name_mode", "\"0640\"",
		      "len", "1", "cap", "2");
	free(out);
	gs_chan_destroy(ch);

	if (access(NAMES_PATH, R_OK)) {
		EXPECT_EQ(0, gs_unlink(name));
		SKIP(return, "%s: %s (no debugfs, or not root)", NAMES_PATH, strerror(errno));
	}
	ASSERT_GSSTAT_JSON(&out, "--names --json");
	snprintf(pat, sizeof(pat), "\"name\":\"%s\"", name);
	EXPECT_OBJECT(out, "\"names\":[", pat, o, "type", "\"chan\"",
		      "opens", "0", "mode", "\"0640\"", "uid", numstr(geteuid()));
	free(out);
	ASSERT_EQ(0, gs_unlink(name));
	ASSERT_EQ(0, gsstat(&out, "--names --json"));
	EXPECT_EQ(NULL, strstr(out, pat)) TH_LOG("%s", out);
	free(out);
}

/* ------------------------------------------------------------------ */
/* The module's wait-for view                                           */

/* A thread that locks @first (if any), waits for *@go, then locks @m. */
struct locker {
	gs_mutex *m, *first;
	gs_ctx *ctx;		/* NULL: gs_mutex_lock() */
	atomic_int *go;		/* NULL: no waiting */
	atomic_int tid, holding;
	int ret;
};

static void *locker_fn(void *arg)
{
	struct locker *l = arg;

	atomic_store(&l->tid, gs_gettid());
	if (l->first && gs_mutex_lock(l->first)) {
		l->ret = -1000;
		return NULL;
	}
	atomic_store(&l->holding, 1);
	if (l->go && wait_atomic_ge(l->go, 1)) {
		l->ret = -ETIMEDOUT;
		gs_mutex_unlock(l->first);
		return NULL;
	}
	l->ret = l->ctx ? gs_mutex_lock_ctx(l->m, l->ctx) : gs_mutex_lock(l->m);
	if (l->ret == 0)
		gs_mutex_unlock(l->m);
	if (l->first)
		gs_mutex_unlock(l->first);
	return NULL;
}

/*
 * Poll gsstat --waits --json until task @tid waits there (the record is
 * made before it sleeps: no sleeping and hoping), into @o; the document
 * in *@doc. 0 or -ETIMEDOUT.
 */
static int wait_listed(pid_t tid, char **doc, char *o, size_t len)
{
	uint64_t t0 = mono_ns();
	char pat[64];

	snprintf(pat, sizeof(pat), "\"pid\":%d", tid);
	for (;;) {
		if (gsstat(doc, "-p %d --waits --json", getpid()) == 0 &&
		    json_find(*doc, "\"waits\":[", pat, o, len))
			return 0;
		free(*doc);
		*doc = NULL;
		if (ms_since(t0) > WAIT_LIMIT_MS)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

TEST(waits_mutex_holder)
{
	struct locker l = { 0 };
	char *out = NULL, o[2048];
	pthread_t thr;
	long long id;

	if (access(WAITS_PATH, R_OK))
		SKIP(return, "%s: %s (no debugfs, not root, or a module without it)",
		     WAITS_PATH, strerror(errno));
	ASSERT_EQ(0, gs_mutex_create(&l.m));
	id = fdinfo_num(gs_mutex_fd(l.m), "id");
	ASSERT_EQ(0, gs_mutex_lock(l.m));
	ASSERT_EQ(0, start_thread(&thr, locker_fn, &l));
	ASSERT_EQ(0, wait_atomic_ge(&l.holding, 1));
	ASSERT_EQ(0, wait_parked(gs_mutex_fd(l.m), 1));
	ASSERT_EQ(0, wait_listed(atomic_load(&l.tid), &out, o, sizeof(o)));
	ASSERT_TRUE(json_valid(out)) TH_LOG("not JSON: %s", out);
	EXPECT_FIELDS(o, "tgid", numstr(getpid()), "type", "\"lot\"",
		      "kind", "\"mutex\"", "op", "\"park\"", "word", "0",
		      "forever", "true", "id", numstr(id),
		      "holder", numstr(gs_gettid()),
		      "holder_tgid", numstr(getpid()), "cycle", "false");
	free(out);

	/* The graph: the thread waits on the lot, which the main thread holds. */
	ASSERT_EQ(0, gsstat(&out, "-p %d --waits", getpid()));
	show("gsstat --waits -p PID", out);
	free(out);
	ASSERT_EQ(0, gsstat(&out, "-p %d --dot", getpid()));
	{
		char edge[128];

		snprintf(edge, sizeof(edge), "\"task %d\" -> \"lot mutex %lld\" [label=\"waits park\"",
			 atomic_load(&l.tid), id);
		EXPECT_NE(NULL, strstr(out, edge)) TH_LOG("%s", out);
		snprintf(edge, sizeof(edge), "\"lot mutex %lld\" -> \"task %d\" [label=\"held by\"",
			 id, gs_gettid());
		EXPECT_NE(NULL, strstr(out, edge)) TH_LOG("%s", out);
	}
	free(out);

	ASSERT_EQ(0, gs_mutex_unlock(l.m));
	ASSERT_EQ(0, join_ms(thr, WAIT_LIMIT_MS));
	EXPECT_EQ(0, l.ret);
	gs_mutex_destroy(l.m);
}

/*
 * Two threads, each holding one Mutex and waiting for the other's (with a
 * context, which ends the deadlock): both waits are on the cycle.
 */
TEST(waits_cycle)
{
	struct locker a = { 0 }, b = { 0 };
	char *out = NULL, o[2048];
	gs_mutex *m1, *m2;
	pthread_t ta, tb;
	atomic_int go = 0;
	gs_ctx *ctx;

	if (access(WAITS_PATH, R_OK))
		SKIP(return, "%s: %s (no debugfs, not root, or a module without it)",
		     WAITS_PATH, strerror(errno));
	ASSERT_EQ(0, gs_mutex_create(&m1));
	ASSERT_EQ(0, gs_mutex_create(&m2));
	ASSERT_EQ(0, gs_ctx_with_cancel(gs_ctx_background(), &ctx));
	a = (struct locker){ .first = m1, .m = m2, .ctx = ctx, .go = &go };
	b = (struct locker){ .first = m2, .m = m1, .ctx = ctx, .go = &go };
	/* a takes m1 and b takes m2 before either waits for the other's. */
	ASSERT_EQ(0, start_thread(&ta, locker_fn, &a));
	ASSERT_EQ(0, start_thread(&tb, locker_fn, &b));
	ASSERT_EQ(0, wait_atomic_ge(&a.holding, 1));
	ASSERT_EQ(0, wait_atomic_ge(&b.holding, 1));
	atomic_store(&go, 1);
	ASSERT_EQ(0, wait_listed(atomic_load(&b.tid), &out, o, sizeof(o)));
	free(out);
	ASSERT_EQ(0, wait_listed(atomic_load(&a.tid), &out, o, sizeof(o)));
	EXPECT_FIELDS(o, "holder", numstr(atomic_load(&b.tid)),
		      "forever", "false", "cycle", "true");
	{
		char pat[64];

		snprintf(pat, sizeof(pat), "\"pid\":%d", atomic_load(&b.tid));
		EXPECT_OBJECT(out, "\"waits\":[", pat, o,
			      "holder", numstr(atomic_load(&a.tid)),
			      "cycle", "true");
	}
	free(out);
	ASSERT_EQ(0, gsstat(&out, "-p %d --waits", getpid()));
	EXPECT_NE(NULL, strstr(out, "DEADLOCK")) TH_LOG("%s", out);
	show("gsstat --waits -p PID", out);
	free(out);
	ASSERT_EQ(0, gsstat(&out, "-p %d --dot", getpid()));
	show("gsstat --dot -p PID", out);
	free(out);
	ASSERT_EQ(0, gsstat(&out, "-p %d -g", getpid()));
	show("gsstat -g -p PID", out);
	free(out);

	gs_ctx_cancel(ctx);
	ASSERT_EQ(0, join_ms(ta, WAIT_LIMIT_MS));
	ASSERT_EQ(0, join_ms(tb, WAIT_LIMIT_MS));
	/*
	 * The cancel wakes both; the first to leave unlocks what it held,
	 * which the other may get before it sees the cancel.
	 */
	EXPECT_TRUE(a.ret == -ECANCELED || b.ret == -ECANCELED)
		TH_LOG("a %d, b %d", a.ret, b.ret);
	EXPECT_TRUE(a.ret == 0 || a.ret == -ECANCELED) TH_LOG("a %d", a.ret);
	EXPECT_TRUE(b.ret == 0 || b.ret == -ECANCELED) TH_LOG("b %d", b.ret);
	gs_ctx_release(ctx);
	gs_mutex_destroy(m1);
	gs_mutex_destroy(m2);
}

TEST_HARNESS_MAIN
