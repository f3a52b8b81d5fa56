// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * gosync demo, run by 'make demo' inside the test VM:
 *  1. the module answers the library;
 *  2. four processes share one weighted semaphore of two permits, so that
 *     at most two of them work at a time;
 *  3. two unrelated processes (each started with exec, sharing no fd)
 *     meet on a channel by its name and exchange values;
 *  4. a process killed while it holds a named Mutex: the next locker gets
 *     -EOWNERDEAD and the lock, and the Mutex is usable again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gosync.h"

#define WORKERS 4
#define ROUNDS 50

static void show_fdinfo(int fd)
{
	char path[64], line[128];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "gosync", 6) || !strncmp(line, "size", 4) ||
		    !strncmp(line, "free", 4) || !strncmp(line, "slow", 4))
			printf("    %s", line);
	fclose(f);
}

#define CHAN_NAME "/gosync-demo-readings"
#define LOCK_NAME "/gosync-demo-lock"
#define VALUES 10

struct reading {
	int sensor;
	double celsius;
};

GS_CHAN_DECLARE(reading_chan, struct reading)

/*
 * Both sides open the channel by name with GS_O_CREAT: whichever comes
 * first creates it (0600: only this uid), the other opens the same one.
 */
static int open_readings(reading_chan *ch)
{
	int err = gs_chan_open(&ch->ch, CHAN_NAME, GS_O_CREAT, 0600,
			       sizeof(struct reading), 0);

	if (err)
		fprintf(stderr, "gs_chan_open(%s): %s\n", CHAN_NAME,
			gs_strerror(err));
	return err;
}

/* Sends VALUES readings, closes the channel and removes its name. */
static int producer(void)
{
	reading_chan ch;

	if (open_readings(&ch))
		return 1;
	printf("producer (pid %d): opened %s, an unbuffered channel\n",
	       getpid(), CHAN_NAME);
	for (int i = 0; i < VALUES; i++) {
		struct reading r = { .sensor = i % 3, .celsius = 20.0 + i / 4.0 };

		if (reading_chan_send(ch, r))
			return 1;
	}
	reading_chan_close(ch);
	/* The consumer keeps its fd: the channel lives on without its name. */
	gs_unlink(CHAN_NAME);
	reading_chan_destroy(ch);
	return 0;
}

/* Drains the channel opened by name until it is closed. */
static int consumer(void)
{
	struct reading r;
	reading_chan ch;
	int got = 0;

	if (open_readings(&ch))
		return 1;
	printf("consumer (pid %d): opened %s\n", getpid(), CHAN_NAME);
	while (reading_chan_recv(ch, &r) == 1) {
		printf("consumer: sensor %d reads %.2f C\n", r.sensor, r.celsius);
		got++;
	}
	printf("consumer: channel closed after %d values\n", got);
	reading_chan_destroy(ch);
	return got == VALUES ? 0 : 1;
}

/*
 * Opens the named Mutex, locks it, says so on stdout (a pipe to the
 * demo) and waits to be killed, holding the lock.
 */
static int holder(void)
{
	gs_mutex *m;

	if (gs_mutex_open(&m, LOCK_NAME, 0, 0) || gs_mutex_lock(m))
		return 1;
	if (write(STDOUT_FILENO, "L", 1) != 1)
		return 1;
	for (;;)
		pause();
}

/*
 * Runs this program again as @role, in a process that inherits no fd
 * but, if @out_fd >= 0, that one as its stdout.
 */
static pid_t spawn(const char *self, const char *role, int out_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0)
			_exit(127);
		execl(self, self, role, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int channel_demo(const char *self)
{
	int status, failed = 0;
	pid_t p, c;

	gs_unlink(CHAN_NAME);	/* a name left by an earlier, killed run */
	printf("two processes started with exec meet on a channel named %s\n",
	       CHAN_NAME);
	fflush(stdout);
	c = spawn(self, "consumer", -1);
	p = spawn(self, "producer", -1);
	waitpid(c, &status, 0);
	failed |= !WIFEXITED(status) || WEXITSTATUS(status);
	waitpid(p, &status, 0);
	failed |= !WIFEXITED(status) || WEXITSTATUS(status);
	return failed;
}

/*
 * A process started with exec locks a named Mutex and is killed holding
 * it. The next locker gets -EOWNERDEAD and the lock, would repair what
 * the lock protects, marks it consistent, and the Mutex works as before.
 */
static int robust_demo(const char *self)
{
	int out[2], err, status;
	gs_mutex *m;
	char c;
	pid_t h;

	gs_unlink(LOCK_NAME);	/* a name left by an earlier, killed run */
	err = gs_mutex_open(&m, LOCK_NAME, GS_O_CREAT | GS_O_EXCL, 0600);
	if (err) {
		fprintf(stderr, "gs_mutex_open(%s): %s\n", LOCK_NAME,
			gs_strerror(err));
		return 1;
	}
	if (pipe(out))
		return 1;
	fflush(stdout);
	h = spawn(self, "holder", out[1]);
	close(out[1]);
	if (h < 0 || read(out[0], &c, 1) != 1 || c != 'L')
		return 1;
	close(out[0]);
	printf("process %d holds the Mutex %s; killing it\n", (int)h,
	       LOCK_NAME);
	kill(h, SIGKILL);
	waitpid(h, &status, 0);
	err = gs_mutex_lock(m);
	printf("next lock: %s (its holder died; we hold it now)\n",
	       err ? gs_strerror(err) : "0");
	if (err != -EOWNERDEAD)
		return 1;
	/* Here the data the lock protects would be repaired. */
	if (gs_mutex_consistent(m) || gs_mutex_unlock(m))
		return 1;
	err = gs_mutex_lock(m);
	printf("after gs_mutex_consistent: lock %s\n",
	       err ? gs_strerror(err) : "0");
	if (!err)
		err = gs_mutex_unlock(m);
	gs_unlink(LOCK_NAME);
	gs_mutex_destroy(m);
	return err ? 1 : 0;
}

int main(int argc, char **argv)
{
	_Atomic int *busy, *most;
	gs_sem *sem;
	int err;

	if (argc == 2 && !strcmp(argv[1], "producer"))
		return producer();
	if (argc == 2 && !strcmp(argv[1], "consumer"))
		return consumer();
	if (argc == 2 && !strcmp(argv[1], "holder"))
		return holder();

	err = gs_init();
	if (err) {
		fprintf(stderr, "%s\n", gs_init_error());
		return 1;
	}
	printf("gosync: /dev/gosync speaks ABI %d, features %#llx\n",
	       GOSYNC_ABI_VERSION, (unsigned long long)gs_features());

	err = gs_sem_create(&sem, 2);
	if (err) {
		fprintf(stderr, "gs_sem_create: %s\n", gs_strerror(err));
		return 1;
	}
	busy = mmap(NULL, 2 * sizeof(*busy), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (busy == MAP_FAILED)
		return 1;
	most = busy + 1;
	printf("%d processes share a semaphore of 2 permits, %d rounds each\n",
	       WORKERS, ROUNDS);
	for (int w = 0; w < WORKERS; w++) {
		if (fork() == 0) {
			for (int r = 0; r < ROUNDS; r++) {
				if (gs_sem_acquire(sem, 1))
					_exit(1);
				int now = atomic_fetch_add(busy, 1) + 1;
				int seen = atomic_load(most);

				while (now > seen &&
				       !atomic_compare_exchange_weak(most, &seen, now))
					;
				usleep(100);
				atomic_fetch_sub(busy, 1);
				if (gs_sem_release(sem, 1))
					_exit(1);
			}
			_exit(0);
		}
	}
	int failed = 0, status;

	while (wait(&status) > 0)
		failed |= !WIFEXITED(status) || WEXITSTATUS(status);
	printf("most processes working at once: %d (the semaphore allows 2)\n",
	       atomic_load(most));
	printf("the semaphore afterwards, from /proc/self/fdinfo:\n");
	show_fdinfo(gs_sem_fd(sem));
	gs_sem_destroy(sem);
	if (failed || atomic_load(most) > 2) {
		printf("demo: FAILED\n");
		return 1;
	}
	fflush(stdout);
	if (channel_demo(argv[0]) || robust_demo(argv[0])) {
		printf("demo: FAILED\n");
		return 1;
	}
	printf("demo: ok\n");
	return 0;
}
