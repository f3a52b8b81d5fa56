// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Uncontended semaphore acquire+release, in ns per pair:
 *   gosync fast path   gs_sem_acquire/gs_sem_release (atomics on the page)
 *   gosync ioctl path  GOSYNC_IOC_SEM_ACQUIRE/RELEASE issued directly
 *   glibc sem_t        sem_wait/sem_post on a process-shared sem_t
 * Each is measured REPS times after a warm-up; the table shows the
 * median and the best repetition. Compare rows only within one run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "gosync.h"

#define REPS 7

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

typedef int (*pair_fn)(void *ctx);

static void measure(const char *name, pair_fn fn, void *ctx, long iters)
{
	double ns[REPS];

	for (long i = 0; i < iters / 10; i++)	/* warm-up */
		if (fn(ctx)) {
			fprintf(stderr, "%s: operation failed\n", name);
			exit(1);
		}
	for (int r = 0; r < REPS; r++) {
		uint64_t t0 = gs_now();

		for (long i = 0; i < iters; i++)
			if (fn(ctx)) {
				fprintf(stderr, "%s: operation failed\n", name);
				exit(1);
			}
		ns[r] = (double)(gs_now() - t0) / (double)iters;
	}
	qsort(ns, REPS, sizeof(ns[0]), cmp_double);
	printf("| %-28s | %10.1f | %10.1f |\n", name, ns[REPS / 2], ns[0]);
}

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
	printf("| %-28s | %10s | %10s |\n", "semaphore", "median", "best");
	printf("|------------------------------|------------|------------|\n");
	measure("gosync fast path", gosync_fast_pair, sem, iters);
	measure("gosync ioctl path (forced)", gosync_ioctl_pair, sem, iters / 10);
	measure("glibc sem_t (pshared)", glibc_sem_pair, psem, iters);
	gs_sem_destroy(sem);
	return 0;
}
