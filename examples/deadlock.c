// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The classic deadlock, caught and explained: two processes take two
 * checked Mutexes in opposite orders.
 *
 *   process 1: lock A ............ lock B   (waits for process 2)
 *   process 2:    lock B ... lock A         (waits for process 1)
 *
 * With plain locks both would sleep forever. The Mutexes here are
 * checked (gs_mutex_create_checked()): process 2's lock of A sleeps as
 * usual, but process 1's lock of B would close the cycle A -> B -> A,
 * so the kernel refuses it with -EDEADLK (and logs a "gosync: deadlock:"
 * line). Process 1 still holds A; it lets A go, process 2 takes it and
 * finishes, and process 1 then takes A and B in that order.
 *
 * Then the reentrancy pitfall: a thread that locks a checked Mutex it
 * holds already gets -EDEADLK at once (any deadline), where a plain
 * Mutex waits for itself forever (here: until a short deadline).
 *
 * Nothing sleeps for a fixed time to let the other process get somewhere:
 * process 1 polls until process 2 sleeps parked on A (A's fdinfo says
 * "parked: 1"), under a watchdog. Exits 0 only if every call
 * returned what it should.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gosync.h"

/* The longest any step may take on a slow machine: then it is a hang. */
#define WATCHDOG_S	120
#define BLOCKED_S	60
#define NS_PER_SEC	1000000000ULL

static void watchdog(int sig)
{
	static const char msg[] = "deadlock: FAILED: no progress in "
				  "the watchdog's time (a hang)\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

/* Did @call return @want? If not, say what it returned. */
static bool expect(const char *who, const char *call, int got, int want)
{
	if (got == want)
		return true;
	fprintf(stderr, "deadlock: FAILED: %s: %s returned %d (%s), expected %d (%s)\n",
		who, call, got, gs_strerror(got), want, gs_strerror(want));
	return false;
}

/*
 * The number after @key in the fdinfo of @m's fd, or -1: "parked:" (the
 * threads asleep on it), "id:" (its id in the kernel's log).
 */
static long long fdinfo_num(gs_mutex *m, const char *key)
{
	char path[64], line[128];
	size_t len = strlen(key);
	long long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", gs_mutex_fd(m));
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, len) &&
		    sscanf(line + len, "%lld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/*
 * Sleep until a thread sleeps parked on @m (process 2 is the only one
 * that can park there): true, or false after BLOCKED_S seconds.
 */
static bool wait_until_blocked(gs_mutex *m)
{
	uint64_t t0 = gs_now();

	while (fdinfo_num(m, "parked:") != 1) {
		if (gs_now() - t0 > BLOCKED_S * NS_PER_SEC)
			return false;
		usleep(1000);
	}
	return true;
}

/*
 * The kernel's log line about the deadlock that pid @pid ran into, if
 * this process may read the log (root; best effort: it is shown, never
 * required), after @what (which Mutex is which id).
 */
static void show_kernel_line(pid_t pid, bool self, const char *what)
{
	char rec[1024], want[48], *msg;
	char found[sizeof(rec)] = "";
	ssize_t n;
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return;
	snprintf(want, sizeof(want), "pid %d (", (int)pid);
	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)	/* overwritten meanwhile */
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		msg = strchr(rec, ';');
		if (!msg || strncmp(++msg, "gosync: deadlock: ", 18) ||
		    !strstr(msg, want) || !strstr(msg, "itself") != !self)
			continue;
		msg[strcspn(msg, "\n")] = '\0';
		snprintf(found, sizeof(found), "%s", msg);
	}
	close(fd);
	if (found[0])
		printf("  kernel log (%s):\n  %s\n", what, found);
}

/* Process 2: lock B, tell process 1, lock A (sleeps until 1 lets A go). */
static int process2(gs_mutex *a, gs_mutex *b, int ready_fd)
{
	int err;

	signal(SIGALRM, watchdog);
	alarm(WATCHDOG_S);
	err = gs_mutex_lock(b);
	if (!expect("process 2", "lock B", err, 0))
		return 1;
	printf("process 2 (pid %d): locked B; now locks A...\n", (int)getpid());
	if (write(ready_fd, "B", 1) != 1)
		return 1;
	err = gs_mutex_lock(a);
	if (!expect("process 2", "lock A", err, 0))
		return 1;
	printf("process 2: got A at last, holds A and B; unlocks both, exits\n");
	if (!expect("process 2", "unlock A", gs_mutex_unlock(a), 0) ||
	    !expect("process 2", "unlock B", gs_mutex_unlock(b), 0))
		return 1;
	return 0;
}

/* Process 1's side of the cycle; @p2 is process 2, forked (*@reaped once ended). */
static bool process1(gs_mutex *a, gs_mutex *b, pid_t p2, int ready_fd,
		     bool *reaped)
{
	int err, status = 0;
	char c, ids[64];

	if (read(ready_fd, &c, 1) != 1 || c != 'B') {
		fprintf(stderr, "deadlock: FAILED: process 2 did not lock B\n");
		return false;
	}
	if (!wait_until_blocked(a)) {
		fprintf(stderr, "deadlock: FAILED: process 2 not asleep on A after %d s\n",
			BLOCKED_S);
		return false;
	}
	printf("process 1: process 2 sleeps waiting for A (A's fdinfo: parked 1)\n");
	printf("process 1: locks B...\n");
	err = gs_mutex_lock(b);
	if (!expect("process 1", "lock B", err, -EDEADLK))
		return false;
	printf("process 1: lock B: -EDEADLK (%s)\n", gs_strerror(err));
	printf("  process 1 holds A and would wait for B; process 2 holds B and\n"
	       "  waits for A: A -> B -> A, each waits for the other, forever.\n"
	       "  The kernel saw the cycle and refused the lock instead of sleeping.\n");
	snprintf(ids, sizeof(ids), "A is mutex %lld, B mutex %lld",
		 fdinfo_num(a, "id:"), fdinfo_num(b, "id:"));
	show_kernel_line(getpid(), false, ids);
	printf("process 1: still holds A (the failed lock changed nothing); unlocks A\n");
	fflush(stdout);
	if (!expect("process 1", "unlock A", gs_mutex_unlock(a), 0))
		return false;
	*reaped = waitpid(p2, &status, 0) == p2;
	if (!*reaped || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "deadlock: FAILED: process 2 ended with status %#x\n",
			status);
		return false;
	}
	if (!expect("process 1", "lock A", gs_mutex_lock(a), 0) ||
	    !expect("process 1", "lock B", gs_mutex_lock(b), 0) ||
	    !expect("process 1", "unlock B", gs_mutex_unlock(b), 0) ||
	    !expect("process 1", "unlock A", gs_mutex_unlock(a), 0))
		return false;
	printf("process 1: locked A, then B: fine (the cure: one lock order for all)\n");
	return true;
}

static bool cycle_demo(void)
{
	int ready[2], err;
	bool ok, reaped = false;
	gs_mutex *a, *b;
	pid_t p2;

	err = gs_mutex_create_checked(&a);
	if (!err)
		err = gs_mutex_create_checked(&b);
	if (err) {
		fprintf(stderr, "deadlock: FAILED: gs_mutex_create_checked: %s%s\n",
			gs_strerror(err), err == -EOPNOTSUPP ?
			" (the module does not check locks)" : "");
		return false;
	}
	if (pipe(ready))
		return false;
	printf("two processes share the checked Mutexes A and B\n");
	if (!expect("process 1", "lock A", gs_mutex_lock(a), 0))
		return false;
	printf("process 1 (pid %d): locked A\n", (int)getpid());
	fflush(stdout);
	p2 = fork();
	if (p2 < 0)
		return false;
	if (p2 == 0) {
		close(ready[0]);
		_exit(process2(a, b, ready[1]));
	}
	close(ready[1]);
	ok = process1(a, b, p2, ready[0], &reaped);
	close(ready[0]);
	if (!reaped) {
		kill(p2, SIGKILL);
		waitpid(p2, NULL, 0);
	}
	gs_mutex_destroy(a);
	gs_mutex_destroy(b);
	return ok;
}

/* Reentrancy: lock again what this thread holds. */
static bool relock_demo(void)
{
	gs_mutex *m, *plain;
	char ids[64];
	int err;

	if (gs_mutex_create_checked(&m) || gs_mutex_create(&plain))
		return false;
	printf("\na thread locks a checked Mutex it already holds:\n");
	if (!expect("relock", "lock", gs_mutex_lock(m), 0))
		return false;
	err = gs_mutex_lock(m);
	if (!expect("relock", "lock again", err, -EDEADLK))
		return false;
	printf("  lock again: -EDEADLK (%s), at once\n", gs_strerror(err));
	snprintf(ids, sizeof(ids), "this is mutex %lld", fdinfo_num(m, "id:"));
	show_kernel_line(getpid(), true, ids);
	err = gs_mutex_lock_until(m, gs_deadline_in(3600 * NS_PER_SEC), 0);
	if (!expect("relock", "lock again, 1 h deadline", err, -EDEADLK))
		return false;
	if (!expect("relock", "trylock", gs_mutex_trylock(m), -EBUSY))
		return false;
	printf("  with a deadline of an hour: -EDEADLK too; still held (trylock: -EBUSY)\n");
	if (!expect("relock", "unlock", gs_mutex_unlock(m), 0))
		return false;

	gs_mutex_destroy(m);
	/* A plain Mutex waits for itself: forever, here 100 ms. */
	if (gs_mutex_checked(plain)) {
		/* GOSYNC_CHECK_LOCKS=1, or the module's detect_deadlocks. */
		printf("  (every Mutex is checked here: no plain one to compare)\n");
		gs_mutex_destroy(plain);
		return true;
	}
	if (!expect("relock", "plain lock", gs_mutex_lock(plain), 0))
		return false;
	err = gs_mutex_lock_until(plain, gs_deadline_in(NS_PER_SEC / 10), 0);
	if (!expect("relock", "plain lock again, 100 ms deadline", err,
		    -ETIMEDOUT))
		return false;
	printf("  a plain Mutex, locked again with a 100 ms deadline: -ETIMEDOUT\n"
	       "  (without the deadline it would wait for itself forever)\n");
	if (!expect("relock", "plain unlock", gs_mutex_unlock(plain), 0))
		return false;
	gs_mutex_destroy(plain);
	return true;
}

int main(void)
{
	int err = gs_init();

	if (err) {
		fprintf(stderr, "%s\n", gs_init_error());
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, watchdog);
	alarm(WATCHDOG_S);
	if (!cycle_demo() || !relock_demo()) {
		printf("deadlock: FAILED\n");
		return 1;
	}
	printf("deadlock: ok\n");
	return 0;
}
