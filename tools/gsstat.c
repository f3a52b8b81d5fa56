// SPDX-License-Identifier: GPL-2.0
/*
 * gsstat: the gosync objects of a process or of the whole system, and who
 * waits for whom.
 *
 *   gsstat [-p PID]... [-g] [--json] [-w [SECONDS]] [-n COUNT]
 *   gsstat --waits [--json | --dot] [-p PID]... [-w [SECONDS]] [-n COUNT]
 *   gsstat --names [--json]
 *
 * The objects come from /proc/PID/fdinfo/FD: every gosync object fd says
 * "gosync-type:\t<sem|chan|timer|lot>" there, a named object's view says
 * "gosync-name:" first, and the lines that follow are the object's own
 * (kmod/sem.c, chan.c, lot.c and name.c, *_show_fdinfo). One row per fd;
 * fds of one object (shared by fork, SCM_RIGHTS or a name) have the same
 * id, and -g folds them into one row. The wait-for view comes from the
 * module's debugfs file gosync/waits (root only): one line per task
 * blocked in a gosync wait, with the holder of the lock it waits for.
 * The names come from debugfs gosync/names: a linked name keeps its
 * object alive with no fd open anywhere, which no fdinfo shows.
 *
 * Only what the kernel prints is read, so a process that exits or closes
 * an fd mid-read, an fdinfo this user may not read and a line this
 * version does not know are all skipped without a word: the tool keeps
 * working on kernels that print more.
 *
 * Exit status: 0, 1 on an error (no /proc, no waits file for --waits or
 * names file for --names, a -p process that does not exist, a failed
 * write), 2 on bad usage.
 *
 * Hidden options for tests: --proc DIR reads DIR instead of /proc, and
 * --debugfs DIR reads DIR/gosync/waits and names instead of the real
 * debugfs's.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAITS_FILE	"gosync/waits"
#define NAMES_FILE	"gosync/names"
#define MAX_FILE	(64u << 20)	/* never read more of one file */

static const char *prog = "gsstat";

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static void die_oom(void)
{
	fputs("gsstat: out of memory\n", stderr);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die_oom();
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		die_oom();
	return d;
}

/* A growing string. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->s = xrealloc(b->s, cap);
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		sb_addn(b, tmp, (size_t)n);
		return;
	}
	{
		char *big = xrealloc(NULL, (size_t)n + 1);

		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		sb_addn(b, big, (size_t)n);
		free(big);
	}
}

static char *sb_take(struct sbuf *b)
{
	char *s = b->s ? b->s : xstrdup("");

	b->s = NULL;
	b->len = b->cap = 0;
	return s;
}

/*
 * The whole file at @path (NUL-terminated, *@lenp bytes), or NULL with
 * errno set. fdinfo and debugfs files are read in one pass of reads: a
 * seq_file gives a consistent record per read call.
 */
static char *read_file(const char *path, size_t *lenp)
{
	size_t len = 0, cap = 4096;
	char *buf;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	buf = xrealloc(NULL, cap);
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			if (cap >= MAX_FILE)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			close(fd);
			free(buf);
			errno = err;
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

/* True if @s is a non-empty string of decimal digits. */
static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* A JSON number as the kernel printed it: [-]digits, no leading zeros. */
static bool json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (!all_digits(s))
		return false;
	return s[0] != '0' || s[1] == '\0';
}

/* Parse a pid: 1..INT_MAX, the whole string. */
static bool parse_pid(const char *s, int *pid)
{
	char *end;
	long v;

	if (!all_digits(s))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > INT_MAX)
		return false;
	*pid = (int)v;
	return true;
}

/*
 * Undo seq_escape(): the kernel writes the bytes it escapes (space, tab,
 * newline, backslash in names) as \ooo. In place.
 */
static void unescape_octal(char *s)
{
	char *w = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*w++ = *s++;
		}
	}
	*w = '\0';
}

/*
 * The length of the valid UTF-8 sequence at @s (1..4), or 0 when the byte
 * there does not begin one (overlong forms, surrogates and code points
 * past U+10FFFF are invalid).
 */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* @s as a JSON string: escaped, invalid UTF-8 bytes as U+FFFD. */
static void json_str(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putc('"', out);
	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0) {
			fputs("\\ufffd", out);
			p++;
		} else if (n > 1) {
			fwrite(p, 1, n, out);
			p += n;
		} else if (*p == '"' || *p == '\\') {
			putc('\\', out);
			putc(*p++, out);
		} else if (*p == '\n') {
			fputs("\\n", out);
			p++;
		} else if (*p == '\t') {
			fputs("\\t", out);
			p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(out, "\\u%04x", *p++);
		} else {
			putc(*p++, out);
		}
	}
	putc('"', out);
}

/*
 * @s made safe for a terminal: control bytes, backslash, space (only
 * when @space) and invalid UTF-8 as \ooo, as the kernel escapes names.
 */
static char *term_safe(const char *s, bool space)
{
	const unsigned char *p = (const unsigned char *)s;
	struct sbuf b = { 0 };

	while (*p) {
		size_t n = utf8_len(p);

		if (n > 1) {
			sb_addn(&b, (const char *)p, n);
			p += n;
		} else if (n == 0 || *p < 0x20 || *p == 0x7f || *p == '\\' ||
			   (space && *p == ' ')) {
			sb_printf(&b, "\\%03o", *p++);
		} else {
			sb_addn(&b, (const char *)p++, 1);
		}
	}
	return sb_take(&b);
}

/* ------------------------------------------------------------------ */
/* Objects (fdinfo)                                                     */

enum vtype { V_NUM, V_STR, V_BOOL };

/*
 * The fdinfo lines gsstat knows, after the gosync marker, and their JSON
 * names. Any other line is ignored.
 */
enum {
	K_TYPE, K_ID, K_NAME, K_NAME_LINKED, K_NAME_MODE, K_NAME_OPENS,
	/* sem */
	K_SIZE, K_FREE, K_WAITERS, K_SEMFLAGS, K_SLOW_ACQ, K_SLOW_REL,
	K_LOST_SWAPS, K_GAVE_UP, K_UNDO_REC, K_UNDO_HELD, K_UNDONE,
	K_UNDO_CLAMPED,
	/* chan, timer */
	K_ELEM, K_CAP, K_LEN, K_CLOSED, K_SEND_W, K_RECV_W, K_SENDS, K_RECVS,
	K_SLOW_OPS, K_KICKS, K_FIRES,
	/* lot */
	K_KIND, K_PARAM, K_CHECKED, K_PARKED, K_PARKS, K_UNPARKS, K_WOKEN,
	K_PARTIES, K_PARTY_DEATHS, K_WG_SHARES, K_COND_TICKETS,
	K_COND_NOTIFIED, K_COND_GAPS,
	NKEYS
};

static const struct key {
	const char *fdinfo, *json;
	enum vtype t;
} keys[NKEYS] = {
	[K_TYPE]	= { "gosync-type", "type", V_STR },
	[K_ID]		= { "id", "id", V_NUM },
	[K_NAME]	= { "gosync-name", "name", V_STR },
	[K_NAME_LINKED]	= { "name-linked", "name_linked", V_BOOL },
	[K_NAME_MODE]	= { "name-mode", "name_mode", V_STR },
	[K_NAME_OPENS]	= { "name-opens", "name_opens", V_NUM },
	[K_SIZE]	= { "size", "size", V_NUM },
	[K_FREE]	= { "free", "free", V_NUM },
	[K_WAITERS]	= { "waiters", "waiters", V_NUM },
	[K_SEMFLAGS]	= { "flags", "flags", V_STR },
	[K_SLOW_ACQ]	= { "slow-acquires", "slow_acquires", V_NUM },
	[K_SLOW_REL]	= { "slow-releases", "slow_releases", V_NUM },
	[K_LOST_SWAPS]	= { "lost-swaps", "lost_swaps", V_NUM },
	[K_GAVE_UP]	= { "gave-up", "gave_up", V_NUM },
	[K_UNDO_REC]	= { "undo-records", "undo_records", V_NUM },
	[K_UNDO_HELD]	= { "undo-held", "undo_held", V_NUM },
	[K_UNDONE]	= { "undone", "undone", V_NUM },
	[K_UNDO_CLAMPED] = { "undo-clamped", "undo_clamped", V_NUM },
	[K_ELEM]	= { "elem-size", "elem_size", V_NUM },
	[K_CAP]		= { "cap", "cap", V_NUM },
	[K_LEN]		= { "len", "len", V_NUM },
	[K_CLOSED]	= { "closed", "closed", V_BOOL },
	[K_SEND_W]	= { "send-waiters", "send_waiters", V_NUM },
	[K_RECV_W]	= { "recv-waiters", "recv_waiters", V_NUM },
	[K_SENDS]	= { "sends", "sends", V_NUM },
	[K_RECVS]	= { "recvs", "recvs", V_NUM },
	[K_SLOW_OPS]	= { "slow-ops", "slow_ops", V_NUM },
	[K_KICKS]	= { "kicks", "kicks", V_NUM },
	[K_FIRES]	= { "timer-fires", "timer_fires", V_NUM },
	[K_KIND]	= { "kind", "kind", V_STR },
	[K_PARAM]	= { "param", "param", V_NUM },
	[K_CHECKED]	= { "checked", "checked", V_BOOL },
	[K_PARKED]	= { "parked", "parked", V_NUM },
	[K_PARKS]	= { "parks", "parks", V_NUM },
	[K_UNPARKS]	= { "unparks", "unparks", V_NUM },
	[K_WOKEN]	= { "woken", "woken", V_NUM },
	[K_PARTIES]	= { "parties", "parties", V_NUM },
	[K_PARTY_DEATHS] = { "party-deaths", "party_deaths", V_NUM },
	[K_WG_SHARES]	= { "wg-shares", "wg_shares", V_NUM },
	[K_COND_TICKETS] = { "cond-tickets", "cond_tickets", V_NUM },
	[K_COND_NOTIFIED] = { "cond-notified", "cond_notified", V_NUM },
	[K_COND_GAPS]	= { "cond-gaps", "cond_gaps", V_NUM },
};

struct obj {
	int pid, fd;
	char *comm;
	const char *access;	/* "rw", "r" or "w": the fd's open mode */
	char *val[NKEYS];	/* NULL: the line was not there */
};

struct objs {
	struct obj *v;
	size_t n, cap;
	/*
	 * By id (index_objects()): @byid lists the objects with an id,
	 * sorted by it (then by position); @grp[i] is the first object
	 * with the id of object i (i itself if none), @next[i] the next
	 * one with that id, or -1.
	 */
	size_t *byid, nbyid, *grp;
	long *next;
};

static void obj_free(struct obj *o)
{
	free(o->comm);
	for (int k = 0; k < NKEYS; k++)
		free(o->val[k]);
}

static void objs_clear(struct objs *os)
{
	for (size_t i = 0; i < os->n; i++)
		obj_free(&os->v[i]);
	free(os->v);
	free(os->byid);
	free(os->grp);
	free(os->next);
	memset(os, 0, sizeof(*os));
}

static const char *val(const struct obj *o, int k)
{
	return o->val[k] ? o->val[k] : "-";
}

/* An id as a number (ids are u64; anything else sorts as 0). */
static uint64_t id_of(const char *s)
{
	return s && all_digits(s) ? strtoull(s, NULL, 10) : 0;
}

static const struct objs *sort_objs;

static int cmp_byid(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	uint64_t ix = id_of(sort_objs->v[x].val[K_ID]);
	uint64_t iy = id_of(sort_objs->v[y].val[K_ID]);

	if (ix != iy)
		return ix < iy ? -1 : 1;
	return (x > y) - (x < y);
}

/* Build @byid, @grp and @next (see struct objs). */
static void index_objects(struct objs *os)
{
	size_t n = os->n ? os->n : 1;

	os->byid = xrealloc(NULL, n * sizeof(*os->byid));
	os->grp = xrealloc(NULL, n * sizeof(*os->grp));
	os->next = xrealloc(NULL, n * sizeof(*os->next));
	os->nbyid = 0;
	for (size_t i = 0; i < os->n; i++) {
		os->grp[i] = i;
		os->next[i] = -1;
		if (os->v[i].val[K_ID] && all_digits(os->v[i].val[K_ID]))
			os->byid[os->nbyid++] = i;
	}
	sort_objs = os;
	if (os->nbyid > 1)
		qsort(os->byid, os->nbyid, sizeof(*os->byid), cmp_byid);
	for (size_t k = 1; k < os->nbyid; k++) {
		size_t prev = os->byid[k - 1], cur = os->byid[k];

		if (id_of(os->v[prev].val[K_ID]) == id_of(os->v[cur].val[K_ID])) {
			os->grp[cur] = os->grp[prev];
			os->next[prev] = (long)cur;
		}
	}
}

/*
 * Parse one fdinfo. The generic lines (pos, flags, mnt_id, ino) come
 * first; the gosync lines start at gosync-name or gosync-type (a file
 * "flags:" and a semaphore's "flags:" are told apart by that). Returns
 * false if this is not a gosync object.
 */
static bool parse_fdinfo(char *text, struct obj *o)
{
	bool ours = false;
	char *line, *save = NULL;

	o->access = "rw";
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':'), *v;

		if (!colon)
			continue;
		*colon = '\0';
		v = colon + 1;
		while (*v == '\t' || *v == ' ')
			v++;
		if (!ours) {
			if (!strcmp(line, "flags")) {
				unsigned long fl = strtoul(v, NULL, 8);

				o->access = (fl & 3) == O_RDONLY ? "r" :
					    (fl & 3) == O_WRONLY ? "w" : "rw";
				continue;
			}
			if (strcmp(line, "gosync-type") && strcmp(line, "gosync-name"))
				continue;
			ours = true;
		}
		for (int k = 0; k < NKEYS; k++) {
			if (strcmp(line, keys[k].fdinfo))
				continue;
			if (!o->val[k]) {	/* the first one counts */
				o->val[k] = xstrdup(v);
				if (k == K_NAME)
					unescape_octal(o->val[k]);
			}
			break;
		}
	}
	return ours && o->val[K_TYPE];
}

/* Options and roots. */
static const char *proc_root = "/proc";
static const char *debugfs_root = "/sys/kernel/debug";
static int *pids;
static size_t npids;

/* /proc/@pid/comm, or /proc/@pid/task/@tid/comm when @tid > 0. */
static char *read_comm(int pid, int tid)
{
	char path[PATH_MAX];
	char *s;

	if (tid > 0)
		snprintf(path, sizeof(path), "%s/%d/task/%d/comm", proc_root, pid, tid);
	else
		snprintf(path, sizeof(path), "%s/%d/comm", proc_root, pid);
	s = read_file(path, NULL);
	if (!s)
		return NULL;
	s[strcspn(s, "\n")] = '\0';
	return s;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* The gosync objects of process @pid, appended to @os. */
static void scan_pid(int pid, struct objs *os)
{
	char path[PATH_MAX], link[256];
	struct dirent *de;
	char *comm = NULL;
	int *fds = NULL;
	size_t nfds = 0, cap = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%d/fdinfo", proc_root, pid);
	d = opendir(path);
	if (!d)
		return;		/* gone, or not ours to read */
	while ((de = readdir(d))) {
		int fd;

		if (!strcmp(de->d_name, "0"))
			fd = 0;
		else if (!parse_pid(de->d_name, &fd))
			continue;
		if (nfds == cap) {
			cap = cap ? cap * 2 : 16;
			fds = xrealloc(fds, cap * sizeof(*fds));
		}
		fds[nfds++] = fd;
	}
	closedir(d);
	if (nfds > 1)
		qsort(fds, nfds, sizeof(*fds), cmp_int);

	for (size_t i = 0; i < nfds; i++) {
		struct obj o = { .pid = pid, .fd = fds[i] };
		ssize_t n;
		char *text;

		/*
		 * Only anonymous inodes can be gosync objects: skip files,
		 * sockets and pipes without reading their fdinfo. (A fake
		 * /proc for tests may have no fd/ links: then read it.)
		 */
		snprintf(path, sizeof(path), "%s/%d/fd/%d", proc_root, pid, fds[i]);
		n = readlink(path, link, sizeof(link) - 1);
		if (n >= 0) {
			link[n] = '\0';
			if (strncmp(link, "anon_inode:", 11))
				continue;
		}
		snprintf(path, sizeof(path), "%s/%d/fdinfo/%d", proc_root, pid, fds[i]);
		text = read_file(path, NULL);
		if (!text)
			continue;
		if (!parse_fdinfo(text, &o)) {
			free(text);
			obj_free(&o);
			continue;
		}
		free(text);
		if (!comm)
			comm = read_comm(pid, 0);
		o.comm = xstrdup(comm ? comm : "?");
		if (os->n == os->cap) {
			os->cap = os->cap ? os->cap * 2 : 32;
			os->v = xrealloc(os->v, os->cap * sizeof(*os->v));
		}
		os->v[os->n++] = o;
	}
	free(comm);
	free(fds);
}

/* Every object of the selected processes (or all): 0, or -1 on an error. */
static int scan(struct objs *os)
{
	struct dirent *de;
	int *all = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (npids) {
		for (size_t i = 0; i < npids; i++)
			scan_pid(pids[i], os);
		index_objects(os);
		return 0;
	}
	d = opendir(proc_root);
	if (!d) {
		fprintf(stderr, "%s: cannot read %s: %s\n", prog, proc_root, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		int pid;

		if (!parse_pid(de->d_name, &pid))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			all = xrealloc(all, cap * sizeof(*all));
		}
		all[n++] = pid;
	}
	closedir(d);
	if (n > 1)
		qsort(all, n, sizeof(*all), cmp_int);
	for (size_t i = 0; i < n; i++)
		scan_pid(all[i], os);
	free(all);
	index_objects(os);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The wait-for view (debugfs gosync/waits)                             */

enum {
	W_PID, W_TGID, W_COMM, W_TYPE, W_KIND, W_ID, W_OP, W_WORD, W_SINCE,
	W_FOREVER, W_HOLDER, W_HOLDER_TGID, NWCOLS
};

static const char *const wcols[NWCOLS] = {
	"pid", "tgid", "comm", "type", "kind", "id", "op", "word", "since_ms",
	"forever", "holder", "holder_tgid",
};

struct wait {
	char *f[NWCOLS];	/* "-" when absent */
	char *holder_comm;	/* NULL: no holder, or gone */
	int next;		/* the row of the holder's own wait, or -1 */
	bool cycle;		/* on a wait-for cycle */
};

struct waits {
	struct wait *v;
	size_t n;
};

static void waits_clear(struct waits *ws)
{
	for (size_t i = 0; i < ws->n; i++) {
		for (int c = 0; c < NWCOLS; c++)
			free(ws->v[i].f[c]);
		free(ws->v[i].holder_comm);
	}
	free(ws->v);
	memset(ws, 0, sizeof(*ws));
}

static const char *wf(const struct wait *w, int c)
{
	return w->f[c];
}

static long long wnum(const struct wait *w, int c)
{
	return all_digits(w->f[c]) ? strtoll(w->f[c], NULL, 10) : -1;
}

static int cmp_wait(const void *a, const void *b)
{
	const struct wait *x = a, *y = b;
	long long d = wnum(x, W_TGID) - wnum(y, W_TGID);

	if (!d)
		d = wnum(x, W_PID) - wnum(y, W_PID);
	return (d > 0) - (d < 0);
}

/* Splits @line at tabs in place: up to @max fields, their count. */
static size_t split_tabs(char *line, char **f, size_t max)
{
	size_t n = 0;

	while (n < max) {
		char *t = strchr(line, '\t');

		f[n++] = line;
		if (!t)
			break;
		*t = '\0';
		line = t + 1;
	}
	return n;
}

static bool selected(int pid)
{
	if (!npids)
		return true;
	for (size_t i = 0; i < npids; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/*
 * Mark the waits on a wait-for cycle: each task waits in one place, so
 * following "waits for a lock held by" from row to row is a walk in a
 * functional graph; a walk that comes back onto its own path found a
 * cycle.
 */
static void find_links(struct waits *ws)
{
	/* The rows are sorted by tgid, then pid: find the holder's by pid. */
	for (size_t i = 0; i < ws->n; i++) {
		long long h = wnum(&ws->v[i], W_HOLDER), ht = wnum(&ws->v[i], W_HOLDER_TGID);
		size_t lo = 0, hi = ws->n;

		ws->v[i].next = -1;
		if (h < 0)
			continue;
		if (ht < 0) {	/* no tgid printed: by pid alone */
			for (size_t j = 0; j < ws->n; j++)
				if (wnum(&ws->v[j], W_PID) == h)
					ws->v[i].next = (int)j;
			continue;
		}
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			long long mt = wnum(&ws->v[mid], W_TGID), mp = wnum(&ws->v[mid], W_PID);

			if (mt < ht || (mt == ht && mp < h))
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < ws->n && wnum(&ws->v[lo], W_PID) == h &&
		    wnum(&ws->v[lo], W_TGID) == ht)
			ws->v[i].next = (int)lo;
	}
}

static void find_cycles(struct waits *ws)
{
	unsigned char *state = calloc(ws->n ? ws->n : 1, 1);	/* 0 new, 1 on path, 2 done */

	if (!state)
		die_oom();
	find_links(ws);
	for (size_t i = 0; i < ws->n; i++) {
		int j = (int)i;

		while (j >= 0 && state[j] == 0) {
			state[j] = 1;
			j = ws->v[j].next;
		}
		if (j >= 0 && state[j] == 1) {
			int k = j;

			do {
				ws->v[k].cycle = true;
				k = ws->v[k].next;
			} while (k != j);
		}
		for (j = (int)i; j >= 0 && state[j] == 1; j = ws->v[j].next)
			state[j] = 2;
	}
	free(state);
}

/*
 * Read the wait-for view. The header names the columns: a column gsstat
 * does not know is ignored, one it knows but the kernel does not print
 * reads "-". A comm with tabs in it makes extra fields: they are its.
 * 0, or -1 with the error printed.
 */
static int read_waits(struct waits *ws)
{
	char path[PATH_MAX], *text, *line, *save = NULL;
	int idx[NWCOLS], ncols = 0, comm_at = -1;
	size_t cap = 0;

	snprintf(path, sizeof(path), "%s/%s", debugfs_root, WAITS_FILE);
	text = read_file(path, NULL);
	if (!text) {
		int err = errno;

		fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(err));
		if (err == ENOENT)
			fprintf(stderr, "%s: the wait-for view needs debugfs mounted on %s "
				"(mount -t debugfs none %s) and a gosync module that has it\n",
				prog, debugfs_root, debugfs_root);
		else if (err == EACCES || err == EPERM)
			fprintf(stderr, "%s: the wait-for view is root's only\n", prog);
		return -1;
	}
	for (int c = 0; c < NWCOLS; c++)
		idx[c] = -1;
	line = strtok_r(text, "\n", &save);
	if (line) {
		char *h[64];
		size_t n = split_tabs(line, h, 64);

		ncols = (int)n;
		for (size_t i = 0; i < n; i++)
			for (int c = 0; c < NWCOLS; c++)
				if (!strcmp(h[i], wcols[c]))
					idx[c] = (int)i;
		comm_at = idx[W_COMM];
	}
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *f[128];
		size_t n = split_tabs(line, f, 128);
		int extra = (int)n - ncols;
		struct wait w = { .next = -1 };

		if (n < 2 || extra < 0)
			continue;	/* not a row */
		if (extra && comm_at < 0)
			continue;
		for (int c = 0; c < NWCOLS; c++) {
			int i = idx[c];

			if (i < 0) {
				w.f[c] = xstrdup("-");
				continue;
			}
			if (i > comm_at && comm_at >= 0)
				i += extra;
			if (c == W_COMM && extra) {
				struct sbuf b = { 0 };

				for (int j = 0; j <= extra; j++) {
					if (j)
						sb_add(&b, "\t");
					sb_add(&b, f[i + j]);
				}
				w.f[c] = sb_take(&b);
			} else {
				w.f[c] = xstrdup(f[i]);
			}
			if (c == W_COMM)
				unescape_octal(w.f[c]);
		}
		if (wnum(&w, W_HOLDER) > 0) {
			long long ht = wnum(&w, W_HOLDER_TGID);

			w.holder_comm = read_comm(ht > 0 ? (int)ht : (int)wnum(&w, W_HOLDER),
						  (int)wnum(&w, W_HOLDER));
		}
		if (ws->n == cap) {
			cap = cap ? cap * 2 : 16;
			ws->v = xrealloc(ws->v, cap * sizeof(*ws->v));
		}
		ws->v[ws->n++] = w;
	}
	free(text);
	/* The kernel lists them in hash order: by process, then thread. */
	if (ws->n > 1)
		qsort(ws->v, ws->n, sizeof(*ws->v), cmp_wait);
	/* Cycles through every process; then only the selected ones' rows. */
	find_cycles(ws);
	if (npids) {
		size_t k = 0;

		for (size_t i = 0; i < ws->n; i++) {
			struct wait *w = &ws->v[i];

			if (selected((int)wnum(w, W_TGID)) || selected((int)wnum(w, W_PID))) {
				ws->v[k++] = *w;
				continue;
			}
			for (int c = 0; c < NWCOLS; c++)
				free(w->f[c]);
			free(w->holder_comm);
		}
		ws->n = k;
		find_links(ws);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Names (debugfs gosync/names)                                         */

/*
 * A linked name keeps its object alive with no fd open anywhere (as a
 * POSIX message queue does): only this listing shows those.
 */
enum { N_NS, N_NAME, N_TYPE, N_KIND, N_UID, N_GID, N_MODE, N_OPENS, NNCOLS };

static const char *const ncols[NNCOLS] = {
	"ns", "name", "type", "kind", "uid", "gid", "mode", "opens",
};

/* include/uapi/gosync.h, GOSYNC_LOT_*. */
static const char *const lot_kinds[] = {
	"plain", "mutex", "rwmutex", "waitgroup", "once", "cond", "barrier",
};

struct names {
	char *(*v)[NNCOLS];
	size_t n;
};

static void names_clear(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		for (int c = 0; c < NNCOLS; c++)
			free(ns->v[i][c]);
	free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

/* The kind as a word: a lot's kind number named, "-" for the others. */
static const char *name_kind(char *const *row)
{
	if (strcmp(row[N_TYPE], "lot"))
		return "-";
	if (all_digits(row[N_KIND]) && strlen(row[N_KIND]) < 3) {
		unsigned long k = strtoul(row[N_KIND], NULL, 10);

		if (k < sizeof(lot_kinds) / sizeof(lot_kinds[0]))
			return lot_kinds[k];
	}
	return row[N_KIND];
}

static int read_names(struct names *ns)
{
	char path[PATH_MAX], *text, *line, *save = NULL;
	int idx[NNCOLS], ncol = 0;
	size_t cap = 0;

	snprintf(path, sizeof(path), "%s/%s", debugfs_root, NAMES_FILE);
	text = read_file(path, NULL);
	if (!text) {
		int err = errno;

		fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(err));
		if (err == ENOENT)
			fprintf(stderr, "%s: the names listing needs debugfs mounted on %s "
				"(mount -t debugfs none %s)\n", prog, debugfs_root, debugfs_root);
		else if (err == EACCES || err == EPERM)
			fprintf(stderr, "%s: the names listing is root's only\n", prog);
		return -1;
	}
	for (int c = 0; c < NNCOLS; c++)
		idx[c] = -1;
	line = strtok_r(text, "\n", &save);
	if (line) {
		char *h[64];
		size_t n = split_tabs(line, h, 64);

		ncol = (int)n;
		for (size_t i = 0; i < n; i++)
			for (int c = 0; c < NNCOLS; c++)
				if (!strcmp(h[i], ncols[c]))
					idx[c] = (int)i;
	}
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *f[64];
		size_t n = split_tabs(line, f, 64);

		if ((int)n != ncol)
			continue;	/* not a row of this header */
		if (ns->n == cap) {
			cap = cap ? cap * 2 : 16;
			ns->v = xrealloc(ns->v, cap * sizeof(*ns->v));
		}
		for (int c = 0; c < NNCOLS; c++) {
			ns->v[ns->n][c] = xstrdup(idx[c] >= 0 ? f[idx[c]] : "-");
			if (c == N_NAME)
				unescape_octal(ns->v[ns->n][c]);
		}
		ns->n++;
	}
	free(text);
	return 0;
}

/* The first object with id @id (a string as printed), or NULL. */
static const struct obj *obj_by_id(const struct objs *os, const char *id)
{
	size_t lo = 0, hi = os->nbyid;
	uint64_t want;

	if (!all_digits(id))
		return NULL;
	want = id_of(id);
	while (lo < hi) {	/* the first entry >= @want */
		size_t mid = lo + (hi - lo) / 2;

		if (id_of(os->v[os->byid[mid]].val[K_ID]) < want)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < os->nbyid && id_of(os->v[os->byid[lo]].val[K_ID]) == want)
		return &os->v[os->byid[lo]];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Tables                                                               */

struct table {
	size_t ncols, nrows, cap;
	char **cells;		/* nrows * ncols, owned */
};

static void tab_row(struct table *t, char **row)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(char *));
	}
	memcpy(t->cells + t->nrows * t->ncols, row, t->ncols * sizeof(char *));
	t->nrows++;
}

/* Prints and frees the table: columns left-aligned, the last one free. */
static void tab_print(struct table *t, FILE *out)
{
	size_t *w = calloc(t->ncols, sizeof(*w));

	if (!w)
		die_oom();
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);

			if (l > w[c])
				w[c] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		size_t last = t->ncols;

		/* No trailing blanks: the last non-empty cell ends the line. */
		while (last > 1 && !*t->cells[r * t->ncols + last - 1])
			last--;
		for (size_t c = 0; c < last; c++) {
			const char *s = t->cells[r * t->ncols + c];

			if (c + 1 < last)
				fprintf(out, "%-*s  ", (int)w[c], s);
			else
				fputs(s, out);
		}
		putc('\n', out);
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(w);
	memset(t, 0, sizeof(*t));
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		die_oom();
	va_end(ap);
	return s;
}

static const char *type_of(const struct obj *o)
{
	return val(o, K_TYPE);
}

static bool is_chan(const struct obj *o)
{
	return !strcmp(type_of(o), "chan") || !strcmp(type_of(o), "timer");
}

static char *cell_kind(const struct obj *o)
{
	if (!strcmp(type_of(o), "lot"))
		return fmt("%s%s", val(o, K_KIND),
			   o->val[K_CHECKED] && !strcmp(o->val[K_CHECKED], "1") ? "+chk" : "");
	if (!strcmp(type_of(o), "chan"))
		return xstrdup(!strcmp(val(o, K_CAP), "0") ? "unbuffered" : "buffered");
	return xstrdup("-");
}

static char *cell_state(const struct obj *o)
{
	if (!strcmp(type_of(o), "sem"))
		return fmt("free %s/%s", val(o, K_FREE), val(o, K_SIZE));
	if (is_chan(o)) {
		struct sbuf b = { 0 };

		sb_printf(&b, "len %s/%s", val(o, K_LEN), val(o, K_CAP));
		if (o->val[K_CLOSED] && strcmp(o->val[K_CLOSED], "0"))
			sb_add(&b, " closed");
		if (o->val[K_FIRES])
			sb_printf(&b, " fires %s", o->val[K_FIRES]);
		return sb_take(&b);
	}
	if (!strcmp(type_of(o), "lot")) {
		if (o->val[K_KIND] && !strcmp(o->val[K_KIND], "barrier"))
			return fmt("parties %s", val(o, K_PARAM));
		if (o->val[K_KIND] && !strcmp(o->val[K_KIND], "cond"))
			return fmt("tickets %s notified %s", val(o, K_COND_TICKETS),
				   val(o, K_COND_NOTIFIED));
		if (o->val[K_WG_SHARES])
			return fmt("shares %s", o->val[K_WG_SHARES]);
		return fmt("param %s", val(o, K_PARAM));
	}
	return xstrdup("-");
}

static char *cell_waiters(const struct obj *o)
{
	if (!strcmp(type_of(o), "sem"))
		return fmt("acquire %s", val(o, K_WAITERS));
	if (is_chan(o))
		return fmt("send %s recv %s", val(o, K_SEND_W), val(o, K_RECV_W));
	if (!strcmp(type_of(o), "lot"))
		return fmt("parked %s", val(o, K_PARKED));
	return xstrdup("-");
}

static char *cell_counters(const struct obj *o)
{
	if (!strcmp(type_of(o), "sem"))
		return fmt("slow-acq %s slow-rel %s", val(o, K_SLOW_ACQ), val(o, K_SLOW_REL));
	if (is_chan(o))
		return fmt("sends %s recvs %s slow %s kicks %s", val(o, K_SENDS),
			   val(o, K_RECVS), val(o, K_SLOW_OPS), val(o, K_KICKS));
	if (!strcmp(type_of(o), "lot"))
		return fmt("parks %s woken %s", val(o, K_PARKS), val(o, K_WOKEN));
	return xstrdup("-");
}

static char *cell_name(const struct obj *o)
{
	char *safe, *s;

	if (!o->val[K_NAME])
		return xstrdup("");
	safe = term_safe(o->val[K_NAME], false);
	s = fmt("%s%s", safe,
		o->val[K_NAME_LINKED] && !strcmp(o->val[K_NAME_LINKED], "0") ? " (unlinked)" : "");
	free(safe);
	return s;
}

static size_t group_of(const struct objs *os, size_t i)
{
	return os->grp[i];
}

static void print_objects(const struct objs *os, bool group, FILE *out)
{
	struct table t = { .ncols = group ? 9 : 11 };

	if (group) {
		char *h[] = { xstrdup("ID"), xstrdup("TYPE"), xstrdup("KIND"),
			      xstrdup("STATE"), xstrdup("WAITERS"), xstrdup("COUNTERS"),
			      xstrdup("FDS"), xstrdup("PIDS"), xstrdup("NAME") };

		tab_row(&t, h);
	} else {
		char *h[] = { xstrdup("PID"), xstrdup("COMM"), xstrdup("FD"), xstrdup("ID"),
			      xstrdup("TYPE"), xstrdup("KIND"), xstrdup("ACC"),
			      xstrdup("STATE"), xstrdup("WAITERS"), xstrdup("COUNTERS"),
			      xstrdup("NAME") };

		tab_row(&t, h);
	}
	for (size_t i = 0; i < os->n; i++) {
		const struct obj *o = &os->v[i];

		if (group) {
			struct sbuf fds = { 0 }, ps = { 0 };
			size_t nfd = 0;
			int lastpid = 0;

			if (group_of(os, i) != i)
				continue;
			for (long j = (long)i; j >= 0; j = os->next[j]) {
				nfd++;
				if (os->v[j].pid != lastpid) {
					char *c = term_safe(os->v[j].comm, true);

					sb_printf(&ps, "%s%d(%s)", ps.len ? "," : "",
						  os->v[j].pid, c);
					free(c);
					lastpid = os->v[j].pid;
				}
			}
			sb_printf(&fds, "%zu", nfd);
			{
				char *row[] = { xstrdup(val(o, K_ID)), xstrdup(type_of(o)),
						cell_kind(o), cell_state(o), cell_waiters(o),
						cell_counters(o), sb_take(&fds), sb_take(&ps),
						cell_name(o) };

				tab_row(&t, row);
			}
		} else {
			char *row[] = { fmt("%d", o->pid), term_safe(o->comm, true),
					fmt("%d", o->fd), xstrdup(val(o, K_ID)),
					xstrdup(type_of(o)), cell_kind(o), xstrdup(o->access),
					cell_state(o), cell_waiters(o), cell_counters(o),
					cell_name(o) };

			tab_row(&t, row);
		}
	}
	tab_print(&t, out);
}

/* What the waits table and the graph call an object. */
static char *wait_object(const struct wait *w, const struct objs *os, bool with_name)
{
	const struct obj *o = obj_by_id(os, wf(w, W_ID));
	struct sbuf b = { 0 };

	sb_add(&b, wf(w, W_TYPE));
	if (strcmp(wf(w, W_KIND), "-"))
		sb_printf(&b, " %s", wf(w, W_KIND));
	sb_printf(&b, " %s", wf(w, W_ID));
	if (strcmp(wf(w, W_WORD), "-") && strcmp(wf(w, W_WORD), "0"))
		sb_printf(&b, " word %s", wf(w, W_WORD));
	if (with_name && o && o->val[K_NAME]) {
		char *n = term_safe(o->val[K_NAME], false);

		sb_printf(&b, " %s", n);
		free(n);
	}
	return sb_take(&b);
}

static char *fmt_ms(const char *ms)
{
	long long v;

	if (!all_digits(ms))
		return xstrdup(ms);
	v = strtoll(ms, NULL, 10);
	return fmt("%lld.%03llds", v / 1000, v % 1000);
}

static void print_waits(const struct waits *ws, const struct objs *os, FILE *out)
{
	struct table t = { .ncols = 8 };
	char *h[] = { xstrdup("PID"), xstrdup("TGID"), xstrdup("COMM"), xstrdup("OBJECT"),
		      xstrdup("OP"), xstrdup("BLOCKED"), xstrdup("HOLDER"), xstrdup("") };

	tab_row(&t, h);
	for (size_t i = 0; i < ws->n; i++) {
		const struct wait *w = &ws->v[i];
		char *holder, *blocked = fmt_ms(wf(w, W_SINCE)), *b2;

		if (strcmp(wf(w, W_HOLDER), "-")) {
			char *c = w->holder_comm ? term_safe(w->holder_comm, true) : xstrdup("?");

			holder = fmt("%s(%s)", wf(w, W_HOLDER), c);
			free(c);
		} else {
			holder = xstrdup("-");
		}
		b2 = fmt("%s%s", blocked, !strcmp(wf(w, W_FOREVER), "1") ? " forever" : "");
		free(blocked);
		{
			char *row[] = { xstrdup(wf(w, W_PID)), xstrdup(wf(w, W_TGID)),
					term_safe(wf(w, W_COMM), true), wait_object(w, os, true),
					xstrdup(wf(w, W_OP)), b2, holder,
					xstrdup(w->cycle ? "DEADLOCK" : "") };

			tab_row(&t, row);
		}
	}
	tab_print(&t, out);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                 */

static void json_val(FILE *out, const char *v, enum vtype t)
{
	if (t == V_NUM && json_number(v))
		fputs(v, out);
	else if (t == V_BOOL && (!strcmp(v, "0") || !strcmp(v, "1")))
		fputs(*v == '1' ? "true" : "false", out);
	else
		json_str(out, v);
}

static void json_obj_fields(FILE *out, const struct obj *o)
{
	fputs("\"type\":", out);
	json_str(out, type_of(o));
	fputs(",\"id\":", out);
	if (o->val[K_ID])
		json_val(out, o->val[K_ID], V_NUM);
	else
		fputs("null", out);
	fputs(",\"kind\":", out);
	if (o->val[K_KIND])
		json_str(out, o->val[K_KIND]);
	else
		fputs("null", out);
	fputs(",\"name\":", out);
	if (o->val[K_NAME])
		json_str(out, o->val[K_NAME]);
	else
		fputs("null", out);
	for (int k = 0; k < NKEYS; k++) {
		if (k == K_TYPE || k == K_ID || k == K_KIND || k == K_NAME || !o->val[k])
			continue;
		fprintf(out, ",\"%s\":", keys[k].json);
		json_val(out, o->val[k], keys[k].t);
	}
}

static void json_objects(FILE *out, const struct objs *os, bool group)
{
	bool first = true;

	fputs("\"objects\":[", out);
	for (size_t i = 0; i < os->n; i++) {
		const struct obj *o = &os->v[i];

		if (group && group_of(os, i) != i)
			continue;
		fputs(first ? "\n{" : ",\n{", out);
		first = false;
		if (group) {
			bool f2 = true;

			json_obj_fields(out, o);
			fputs(",\"fds\":[", out);
			for (long j = (long)i; j >= 0; j = os->next[j]) {
				fprintf(out, "%s{\"pid\":%d,\"comm\":", f2 ? "" : ",", os->v[j].pid);
				json_str(out, os->v[j].comm);
				fprintf(out, ",\"fd\":%d,\"access\":\"%s\"}", os->v[j].fd,
					os->v[j].access);
				f2 = false;
			}
			fputs("]}", out);
		} else {
			fprintf(out, "\"pid\":%d,\"comm\":", o->pid);
			json_str(out, o->comm);
			fprintf(out, ",\"fd\":%d,\"access\":\"%s\",", o->fd, o->access);
			json_obj_fields(out, o);
			putc('}', out);
		}
	}
	fputs(first ? "]" : "\n]", out);
}

static void json_waits(FILE *out, const struct waits *ws, const struct objs *os)
{
	fputs(",\"waits\":[", out);
	for (size_t i = 0; i < ws->n; i++) {
		const struct wait *w = &ws->v[i];
		const struct obj *o = obj_by_id(os, wf(w, W_ID));

		fputs(i ? ",\n{" : "\n{", out);
		for (int c = 0; c < NWCOLS; c++) {
			const char *v = wf(w, c);

			fprintf(out, "%s\"%s\":", c ? "," : "", wcols[c]);
			if (c == W_FOREVER)
				json_val(out, v, V_BOOL);
			else if (c == W_COMM || c == W_TYPE || c == W_OP)
				json_str(out, v);
			else if (!strcmp(v, "-"))
				fputs("null", out);
			else
				json_val(out, v, V_NUM);
		}
		fputs(",\"holder_comm\":", out);
		if (w->holder_comm)
			json_str(out, w->holder_comm);
		else
			fputs("null", out);
		fputs(",\"name\":", out);
		if (o && o->val[K_NAME])
			json_str(out, o->val[K_NAME]);
		else
			fputs("null", out);
		fprintf(out, ",\"cycle\":%s}", w->cycle ? "true" : "false");
	}
	fputs(ws->n ? "\n]" : "]", out);
}

static void print_names(const struct names *ns, FILE *out)
{
	struct table t = { .ncols = NNCOLS };
	char *h[] = { xstrdup("NS"), xstrdup("NAME"), xstrdup("TYPE"), xstrdup("KIND"),
		      xstrdup("UID"), xstrdup("GID"), xstrdup("MODE"), xstrdup("OPENS") };

	tab_row(&t, h);
	for (size_t i = 0; i < ns->n; i++) {
		char *const *r = ns->v[i];
		char *row[] = { xstrdup(r[N_NS]), term_safe(r[N_NAME], true),
				xstrdup(r[N_TYPE]), xstrdup(name_kind(r)), xstrdup(r[N_UID]),
				xstrdup(r[N_GID]), xstrdup(r[N_MODE]), xstrdup(r[N_OPENS]) };

		tab_row(&t, row);
	}
	tab_print(&t, out);
}

static void json_names(FILE *out, const struct names *ns)
{
	fputs(",\"names\":[", out);
	for (size_t i = 0; i < ns->n; i++) {
		char *const *r = ns->v[i];
		const char *k = name_kind(r);

		fputs(i ? ",\n{" : "\n{", out);
		for (int c = 0; c < NNCOLS; c++) {
			fprintf(out, "%s\"%s\":", c ? "," : "", ncols[c]);
			if (c == N_KIND) {
				if (strcmp(k, "-"))
					json_str(out, k);
				else
					fputs("null", out);
			} else if (c == N_NAME || c == N_TYPE || c == N_MODE) {
				json_str(out, r[c]);
			} else {
				json_val(out, r[c], V_NUM);
			}
		}
		putc('}', out);
	}
	fputs(ns->n ? "\n]" : "]", out);
}

/* ------------------------------------------------------------------ */
/* Graphviz                                                             */

/* @s inside a DOT double-quoted string (which "\n" breaks into lines). */
static void dot_str(FILE *out, const char *s)
{
	char *safe = term_safe(s, false);

	for (const char *p = safe; *p; p++) {
		if (*p == '"' || *p == '\\')
			putc('\\', out);
		putc(*p, out);
	}
	free(safe);
}

static void print_dot(const struct waits *ws, const struct objs *os, FILE *out)
{
	fputs("digraph gosync_waits {\n\trankdir=LR;\n"
	      "\tnode [fontname=\"monospace\"];\n", out);
	/* Task nodes: the waiters, then holders that do not wait. */
	for (size_t i = 0; i < ws->n; i++) {
		const struct wait *w = &ws->v[i];

		fprintf(out, "\t\"task %s\" [shape=box, label=\"", wf(w, W_PID));
		dot_str(out, wf(w, W_PID));
		fputs(" ", out);
		dot_str(out, wf(w, W_COMM));
		fprintf(out, "\"%s];\n", w->cycle ? ", color=red" : "");
	}
	for (size_t i = 0; i < ws->n; i++) {
		const struct wait *w = &ws->v[i];
		bool seen = false;

		if (!strcmp(wf(w, W_HOLDER), "-") || w->next >= 0)
			continue;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(wf(&ws->v[j], W_HOLDER), wf(w, W_HOLDER)))
				seen = true;
		if (seen)
			continue;
		fprintf(out, "\t\"task %s\" [shape=box, label=\"", wf(w, W_HOLDER));
		dot_str(out, wf(w, W_HOLDER));
		fputs(" ", out);
		dot_str(out, w->holder_comm ? w->holder_comm : "?");
		fputs("\"];\n", out);
	}
	/* Object nodes, once per object (and lot word). */
	for (size_t i = 0; i < ws->n; i++) {
		const struct wait *w = &ws->v[i];
		char *label = wait_object(w, os, false), *key = wait_object(w, os, false);
		const struct obj *o = obj_by_id(os, wf(w, W_ID));
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++) {
			char *k2 = wait_object(&ws->v[j], os, false);

			seen = !strcmp(k2, key);
			free(k2);
		}
		if (!seen) {
			fputs("\t\"", out);
			dot_str(out, key);
			fputs("\" [shape=ellipse, label=\"", out);
			dot_str(out, label);
			if (o && o->val[K_NAME]) {
				fputs("\\n", out);
				dot_str(out, o->val[K_NAME]);
			}
			fputs("\"];\n", out);
		}
		free(label);
		free(key);
	}
	/* Edges: waits op, held by. */
	for (size_t i = 0; i < ws->n; i++) {
		const struct wait *w = &ws->v[i];
		char *key = wait_object(w, os, false);
		const char *red = w->cycle ? ", color=red, fontcolor=red" : "";

		fprintf(out, "\t\"task %s\" -> \"", wf(w, W_PID));
		dot_str(out, key);
		fputs("\" [label=\"waits ", out);
		dot_str(out, wf(w, W_OP));
		fprintf(out, "\"%s];\n", red);
		if (strcmp(wf(w, W_HOLDER), "-")) {
			bool seen = false;

			for (size_t j = 0; j < i && !seen; j++) {
				char *k2 = wait_object(&ws->v[j], os, false);

				seen = !strcmp(k2, key) &&
				       !strcmp(wf(&ws->v[j], W_HOLDER), wf(w, W_HOLDER));
				free(k2);
			}
			if (!seen) {
				fputs("\t\"", out);
				dot_str(out, key);
				fprintf(out, "\" -> \"task %s\" [label=\"held by\"%s];\n",
					wf(w, W_HOLDER), red);
			}
		}
		free(key);
	}
	fputs("}\n", out);
}

/* ------------------------------------------------------------------ */
/* Main                                                                 */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s [options]\n"
		"List the gosync objects of every process (or of -p PID), one row per fd.\n"
		"\n"
		"  -p PID        only this process (repeatable, or PID,PID,...)\n"
		"  -g            one row per object (its fds folded, by id)\n"
		"  --json        one JSON document: {\"objects\":[...]} (and \"waits\",\n"
		"                \"names\"); with -w, one document a frame\n"
		"  --waits       who waits for what, and which task holds it\n"
		"                (needs root and debugfs: /sys/kernel/debug/gosync/waits)\n"
		"  --dot         the wait-for graph in Graphviz DOT (implies --waits)\n"
		"  --names       every name of every IPC namespace, with or without fds\n"
		"                (root and debugfs: /sys/kernel/debug/gosync/names)\n"
		"  -w [SECONDS]  redraw every SECONDS (default 2) until interrupted\n"
		"  -n COUNT      stop after COUNT redraws (implies -w)\n"
		"  -h, --help    this text\n"
		"\n"
		"Exit status: 0 ok, 1 error, 2 bad usage.\n", prog);
}

__attribute__((format(printf, 1, 2)))
static int bad_usage(const char *fmt1, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt1);
	vfprintf(stderr, fmt1, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s -h'.\n", prog);
	return 2;
}

static bool parse_seconds(const char *s, double *v)
{
	char *end;

	if (!*s)
		return false;
	errno = 0;
	*v = strtod(s, &end);
	return !errno && !*end && isfinite(*v) && *v >= 0 && *v <= 86400.0 * 365;
}

static int add_pids(const char *arg)
{
	char *copy = xstrdup(arg), *tok, *save = NULL;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int pid;

		if (!parse_pid(tok, &pid)) {
			free(copy);
			return -1;
		}
		pids = xrealloc(pids, (npids + 1) * sizeof(*pids));
		pids[npids++] = pid;
	}
	free(copy);
	return 0;
}

/* Sleep @secs, or less if a stop signal comes (blocked until now). */
static void pause_for(double secs, const sigset_t *orig)
{
	struct timespec ts = {
		.tv_sec = (time_t)secs,
		.tv_nsec = (long)((secs - (double)(time_t)secs) * 1e9),
	};

	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	ppoll(NULL, 0, &ts, orig);
}

int main(int argc, char **argv)
{
	bool json = false, waits = false, dot = false, group = false, watch = false;
	bool names = false;
	double interval = 2.0;
	long count = -1;
	sigset_t block, orig;
	int rc = 0;
	bool tty;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return fflush(stdout) ? 1 : 0;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--waits")) {
			waits = true;
		} else if (!strcmp(a, "--names")) {
			names = true;
		} else if (!strcmp(a, "--dot")) {
			dot = waits = true;
		} else if (!strcmp(a, "-g")) {
			group = true;
		} else if (!strncmp(a, "-p", 2)) {
			const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);

			if (!v)
				return bad_usage("%s needs a PID", "-p");
			if (add_pids(v))
				return bad_usage("bad PID '%s'", v);
		} else if (!strncmp(a, "-w", 2)) {
			watch = true;
			if (a[2]) {
				if (!parse_seconds(a + 2, &interval))
					return bad_usage("bad interval '%s'", a + 2);
			} else if (i + 1 < argc && parse_seconds(argv[i + 1], &interval)) {
				i++;
			}
		} else if (!strncmp(a, "-n", 2)) {
			const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			char *end;

			if (!v)
				return bad_usage("%s needs a COUNT", "-n");
			errno = 0;
			count = strtol(v, &end, 10);
			if (errno || *end || !all_digits(v) || count < 1)
				return bad_usage("bad COUNT '%s'", v);
			watch = true;
		} else if (!strcmp(a, "--proc") || !strcmp(a, "--debugfs")) {
			if (i + 1 >= argc)
				return bad_usage("%s needs a directory", a);
			if (a[2] == 'p')
				proc_root = argv[++i];
			else
				debugfs_root = argv[++i];
		} else {
			return bad_usage("unknown option '%s'", a);
		}
	}
	if (json && dot)
		return bad_usage("%s: --json and --dot exclude each other", "--dot");
	if (names && dot)
		return bad_usage("%s: --names and --dot exclude each other", "--dot");

	for (size_t i = 0; i < npids; i++) {
		char path[PATH_MAX];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%d", proc_root, pids[i]);
		if (stat(path, &st)) {
			fprintf(stderr, "%s: no process %d\n", prog, pids[i]);
			return 1;
		}
	}

	/*
	 * SIGINT and SIGTERM end a watch (exit 0); they are taken only while
	 * it sleeps, so a frame is never cut in half. A single run keeps
	 * their default action.
	 */
	sigemptyset(&orig);
	if (watch) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGTERM);
		sigprocmask(SIG_BLOCK, &block, &orig);
	}
	tty = isatty(STDOUT_FILENO);

	for (long iter = 0; !stop; iter++) {
		struct objs os = { 0 };
		struct waits ws = { 0 };
		struct names ns = { 0 };

		if (iter)
			pause_for(interval, &orig);
		if (stop)
			break;
		if (scan(&os)) {
			rc = 1;
			break;
		}
		if ((waits && read_waits(&ws)) || (names && read_names(&ns))) {
			objs_clear(&os);
			waits_clear(&ws);
			names_clear(&ns);
			rc = 1;
			break;
		}
		if (watch && !json && !dot) {
			time_t now = time(NULL);
			struct tm tm;
			char when[32];

			if (tty)
				fputs("\033[H\033[2J", stdout);
			else if (iter)
				putchar('\n');
			localtime_r(&now, &tm);
			strftime(when, sizeof(when), "%H:%M:%S", &tm);
			printf("gsstat - %s", when);
			if (!waits && !names)
				printf(" - %zu object fds", os.n);
			if (waits)
				printf(" - %zu waiting tasks", ws.n);
			if (names)
				printf(" - %zu names", ns.n);
			fputs("\n\n", stdout);
		}
		if (json) {
			fputs("{", stdout);
			json_objects(stdout, &os, group);
			if (waits)
				json_waits(stdout, &ws, &os);
			if (names)
				json_names(stdout, &ns);
			fputs("}\n", stdout);
		} else if (dot) {
			print_dot(&ws, &os, stdout);
		} else {
			if (waits)
				print_waits(&ws, &os, stdout);
			if (waits && names)
				putchar('\n');
			if (names)
				print_names(&ns, stdout);
			if (!waits && !names)
				print_objects(&os, group, stdout);
		}
		objs_clear(&os);
		waits_clear(&ws);
		names_clear(&ns);
		if (fflush(stdout)) {
			fprintf(stderr, "%s: write: %s\n", prog, strerror(errno));
			rc = 1;
			break;
		}
		if (!watch || (count > 0 && iter + 1 >= count))
			break;
	}
	free(pids);
	if (fclose(stdout) && !rc) {
		fprintf(stderr, "%s: write: %s\n", prog, strerror(errno));
		rc = 1;
	}
	return rc;
}
