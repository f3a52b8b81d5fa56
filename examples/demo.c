// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * gosync demo, run by 'make demo' inside the test VM:
 *  1. the module answers the library;
 *  2. four processes share one weighted semaphore of two permits, so that
 *     at most two of them work at a time;
 *  3. two unrelated processes (each started with exec, sharing no fd)
 *     exchange values over a channel: one makes it and hands its fd to
 *     the other through a UNIX socket bound to a path.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
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

#define SOCKET_PATH "/tmp/gosync-demo.sock"
#define VALUES 10

struct reading {
	int sensor;
	double celsius;
};

GS_CHAN_DECLARE(reading_chan, struct reading)

static int unix_socket(struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	strcpy(addr->sun_path, SOCKET_PATH);
	return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Makes the channel, passes its fd to whoever connects, then sends. */
static int producer(void)
{
	struct sockaddr_un addr;
	int sock = unix_socket(&addr), conn;
	reading_chan ch;

	if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(sock, 1) || reading_chan_make(&ch, 0))
		return 1;
	conn = accept(sock, NULL, NULL);
	if (conn < 0 || gs_fd_send(conn, gs_chan_fd(ch.ch)))
		return 1;
	printf("producer (pid %d): made an unbuffered channel, sent its fd\n",
	       getpid());
	for (int i = 0; i < VALUES; i++) {
		struct reading r = { .sensor = i % 3, .celsius = 20.0 + i / 4.0 };

		if (reading_chan_send(ch, r))
			return 1;
	}
	reading_chan_close(ch);
	reading_chan_destroy(ch);
	return 0;
}

/* Receives the channel's fd and drains the channel until it is closed. */
static int consumer(void)
{
	struct sockaddr_un addr;
	int sock = unix_socket(&addr), fd, got = 0;
	struct reading r;
	reading_chan ch;

	for (int tries = 0; connect(sock, (struct sockaddr *)&addr,
				    sizeof(addr)); tries++) {
		if (tries == 6000)	/* 60 s: a watchdog, not a window */
			return 1;
		usleep(10000);
	}
	fd = gs_fd_recv(sock);
	if (fd < 0 || reading_chan_from_fd(&ch, fd))
		return 1;
	printf("consumer (pid %d): received the channel's fd %d\n", getpid(), fd);
	while (reading_chan_recv(ch, &r) == 1) {
		printf("consumer: sensor %d reads %.2f C\n", r.sensor, r.celsius);
		got++;
	}
	printf("consumer: channel closed after %d values\n", got);
	reading_chan_destroy(ch);
	return got == VALUES ? 0 : 1;
}

/* Runs this program again as @role, in a process that inherits no fd. */
static pid_t spawn(const char *self, const char *role)
{
	pid_t pid = fork();

	if (pid == 0) {
		execl(self, self, role, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int channel_demo(const char *self)
{
	int status, failed = 0;
	pid_t p, c;

	unlink(SOCKET_PATH);
	printf("two processes started with exec share a channel through %s\n",
	       SOCKET_PATH);
	fflush(stdout);
	p = spawn(self, "producer");
	c = spawn(self, "consumer");
	waitpid(c, &status, 0);
	failed |= !WIFEXITED(status) || WEXITSTATUS(status);
	waitpid(p, &status, 0);
	failed |= !WIFEXITED(status) || WEXITSTATUS(status);
	unlink(SOCKET_PATH);
	return failed;
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
	if (channel_demo(argv[0])) {
		printf("demo: FAILED\n");
		return 1;
	}
	printf("demo: ok\n");
	return 0;
}
