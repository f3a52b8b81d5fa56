// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: weighted semaphores.
 *
 * The userspace half of the fast-path protocol described in
 * include/uapi/gosync.h and kmod/sem.c: acquire and release are one
 * compare-and-swap on the shared state word while the kernel's flags
 * allow it, and an ioctl otherwise. The kernel sets WAITERS under its
 * lock before it sleeps anyone and re-reads the count after, so a swap
 * that succeeds here is either seen by that re-read or makes the kernel's
 * flag-setting swap retry; a swap that fails re-reads the flags.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gosync.h"
#include "internal.h"

struct gs_sem {
	int fd;
	uint64_t size;
	/* The mapped state word, or NULL when mmap failed (ioctls only). */
	_Atomic uint64_t *state;
};

static long page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

static int sem_open(gs_sem **semp, int fd)
{
	struct gosync_sem_status st;
	gs_sem *sem;
	void *page;

	if (ioctl(fd, GOSYNC_IOC_SEM_STATUS, &st) < 0)
		return errno == EINVAL ? -ENOTTY : -errno;
	sem = calloc(1, sizeof(*sem));
	if (!sem)
		return -ENOMEM;
	sem->fd = fd;
	sem->size = st.size;
	page = mmap(NULL, (size_t)page_size(), PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	sem->state = page == MAP_FAILED ? NULL : page;
	*semp = sem;
	return 0;
}

int gs_sem_create(gs_sem **semp, uint64_t size)
{
	struct gosync_sem_create arg = { .size = size };
	int fd, err;

	if (size > GOSYNC_SEM_MAX)
		return -EINVAL;
	fd = gs_create_object(GOSYNC_IOC_SEM_CREATE, &arg);
	if (fd < 0)
		return fd;
	err = sem_open(semp, fd);
	if (err)
		close(fd);
	return err;
}

int gs_sem_from_fd(gs_sem **semp, int fd)
{
	return sem_open(semp, fd);
}

/* Take @n permits with one swap, unless someone waits or they are short. */
static bool fast_acquire(gs_sem *sem, uint64_t n)
{
	uint64_t state;

	if (!sem->state)
		return false;
	state = atomic_load_explicit(sem->state, memory_order_relaxed);
	do {
		if ((state & GOSYNC_SEM_WAITERS) ||
		    n > (state & GOSYNC_SEM_COUNT_MASK))
			return false;
	} while (!atomic_compare_exchange_weak_explicit(sem->state, &state,
							state - n,
							memory_order_acquire,
							memory_order_relaxed));
	return true;
}

/* Acquire, waiting in the kernel until @deadline or @cancel_fd's close. */
static int sem_acquire(gs_sem *sem, uint64_t n, uint64_t deadline,
		       unsigned int flags, int cancel_fd)
{
	struct gosync_sem_acquire arg = {
		.count = n, .deadline = deadline, .flags = flags,
	};

	if (n > GOSYNC_SEM_MAX)
		return -EINVAL;
	/* Undo permits are the kernel's to count: no fast path. */
	if (!(flags & GOSYNC_SEM_UNDO) && fast_acquire(sem, n))
		return 0;
	if (cancel_fd >= 0) {
		arg.flags |= GOSYNC_WAIT_CANCEL_FD;
		arg.cancel_fd = cancel_fd;
	}
	return ioctl(sem->fd, GOSYNC_IOC_SEM_ACQUIRE, &arg) < 0 ? -errno : 0;
}

int gs_sem_acquire_until(gs_sem *sem, uint64_t n, uint64_t deadline,
			 unsigned int flags)
{
	if (flags & ~(GS_CLOCK_REALTIME | GS_SEM_UNDO))
		return -EINVAL;
	return sem_acquire(sem, n, deadline, flags, -1);
}

int gs_sem_acquire_undo(gs_sem *sem, uint64_t n)
{
	return sem_acquire(sem, n, GS_FOREVER, GS_SEM_UNDO, -1);
}

int gs_sem_try_acquire_undo(gs_sem *sem, uint64_t n)
{
	/* A deadline already past: take what is free now, else time out. */
	int ret = sem_acquire(sem, n, 0, GS_SEM_UNDO, -1);

	return ret == -ETIMEDOUT ? -EAGAIN : ret;
}

int gs_sem_release_undo(gs_sem *sem, uint64_t n)
{
	if (n > GOSYNC_SEM_MAX)
		return -EINVAL;
	return ioctl(sem->fd, GOSYNC_IOC_SEM_RELEASE_UNDO, &n) < 0 ? -errno : 0;
}

int gs_sem_undo_held(gs_sem *sem, uint64_t *held)
{
	return ioctl(sem->fd, GOSYNC_IOC_SEM_UNDO_HELD, held) < 0 ? -errno : 0;
}

int gs_sem_acquire_ctx(gs_sem *sem, uint64_t n, gs_ctx *ctx)
{
	struct gs_ctx_wait w;
	int ret = gs_ctx_wait_begin(ctx, &w);

	if (ret)
		return ret;
	return gs_ctx_wait_end(ctx, sem_acquire(sem, n, w.deadline, 0,
						w.cancel_fd));
}

int gs_sem_acquire(gs_sem *sem, uint64_t n)
{
	return gs_sem_acquire_until(sem, n, GS_FOREVER, 0);
}

int gs_sem_try_acquire(gs_sem *sem, uint64_t n)
{
	if (n > GOSYNC_SEM_MAX)
		return -EINVAL;
	if (fast_acquire(sem, n))
		return 0;
	if (sem->state) {
		/* The flags or the count said no; no need to ask the kernel. */
		return -EAGAIN;
	}
	return ioctl(sem->fd, GOSYNC_IOC_SEM_TRY_ACQUIRE, &n) < 0 ? -errno : 0;
}

int gs_sem_release(gs_sem *sem, uint64_t n)
{
	uint64_t state, free;

	if (n > GOSYNC_SEM_MAX)
		return -EINVAL;
	if (!sem->state)
		goto slow;
	state = atomic_load_explicit(sem->state, memory_order_relaxed);
	do {
		if (state & (GOSYNC_SEM_WAITERS | GOSYNC_SEM_POLLED))
			goto slow;
		free = state & GOSYNC_SEM_COUNT_MASK;
		if (free > sem->size || n > sem->size - free)
			return -EOVERFLOW;
	} while (!atomic_compare_exchange_weak_explicit(sem->state, &state,
							state + n,
							memory_order_release,
							memory_order_relaxed));
	return 0;
slow:
	return ioctl(sem->fd, GOSYNC_IOC_SEM_RELEASE, &n) < 0 ? -errno : 0;
}

uint64_t gs_sem_size(const gs_sem *sem)
{
	return sem->size;
}

int gs_sem_fd(const gs_sem *sem)
{
	return sem->fd;
}

int gs_sem_status(gs_sem *sem, struct gosync_sem_status *st)
{
	return ioctl(sem->fd, GOSYNC_IOC_SEM_STATUS, st) < 0 ? -errno : 0;
}

void gs_sem_destroy(gs_sem *sem)
{
	if (!sem)
		return;
	if (sem->state)
		munmap((void *)sem->state, (size_t)page_size());
	close(sem->fd);
	free(sem);
}
