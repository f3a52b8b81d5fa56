// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * gosync demo, run by 'make demo' inside the test VM: the module answers
 * the library, then four processes share one weighted semaphore of two
 * permits, so that at most two of them work at a time.
 */
#define _GNU_SOURCE
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

int main(void)
{
	_Atomic int *busy, *most;
	gs_sem *sem;
	int err;

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
	printf("demo: ok\n");
	return 0;
}
