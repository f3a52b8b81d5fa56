// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Uncontended semaphore acquire+release, in ns per pair:
 *   gosync fast path   gs_sem_acquire/gs_sem_release (atomics on the page)
 *   gosync ioctl path  GOSYNC_IOC_SEM_ACQUIRE/RELEASE issued directly
 *   gosync undo        gs_sem_acquire_undo/gs_sem_release_undo (always
 *                      the kernel: it counts the process's permits)
 *   glibc sem_t        sem_wait/sem_post on a process-shared sem_t
 * Each is measured REPS times after a warm-up; the table shows the
 * median and the best repetition. Compare rows only within one run.
 */
#define _GNU_SOURCE
#include <semaphore.h>
#include <sys/ioctl.h>

#include "bench.h"

static int gosync_fast_pair(void *ctx)
{
	gs_sem *sem = ctx;

	return gs_sem_acquire(sem, 1) || gs_sem_release(sem, 1);
}

static int gosync_ioctl_pair(void *ctx)
{
	int fd = gs_sem_fd(ctx);
	struct gosync_sem_acquire acq = {
		.count = 1, .deadline = GOSYNC_DEADLINE_NONE,
	};
	__u64 one = 1;

	return ioctl(fd, GOSYNC_IOC_SEM_ACQUIRE, &acq) ||
	       ioctl(fd, GOSYNC_IOC_SEM_RELEASE, &one);
}

static int gosync_undo_pair(void *ctx)
{
	gs_sem *sem = ctx;

	return gs_sem_acquire_undo(sem, 1) || gs_sem_release_undo(sem, 1);
}

static int glibc_sem_pair(void *ctx)
{
	sem_t *sem = ctx;

	return sem_wait(sem) || sem_post(sem);
}

int main(void)
{
	long iters = 1000000;
	gs_sem *sem;
	sem_t *psem;
	int err;

	err = gs_sem_create(&sem, 4);
	if (err) {
		fprintf(stderr, "gs_sem_create: %s\n%s\n", gs_strerror(err),
			gs_init_error());
		return 1;
	}
	psem = mmap(NULL, sizeof(*psem), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (psem == MAP_FAILED || sem_init(psem, 1, 4)) {
		perror("sem_init");
		return 1;
	}
	printf("\nUncontended acquire+release, ns per pair (%d reps of %ld)\n\n",
	       REPS, iters);
	print_header("semaphore");
	measure("gosync fast path", gosync_fast_pair, sem, iters);
	measure("gosync ioctl path (forced)", gosync_ioctl_pair, sem, iters / 10);
	measure("gosync undo (GS_SEM_UNDO)", gosync_undo_pair, sem, iters / 10);
	measure("glibc sem_t (pshared)", glibc_sem_pair, psem, iters);
	gs_sem_destroy(sem);
	return 0;
}
