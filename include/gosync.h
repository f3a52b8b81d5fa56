/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgosync: Go's concurrency primitives for C, with the waiting done in
 * the Linux kernel by gosync.ko (/dev/gosync).
 *
 * Error convention: every function that can fail returns a negative errno
 * value (-EINVAL, -ETIMEDOUT, ...) and never sets errno. 0 (or a
 * non-negative result) means success.
 *
 * The library opens /dev/gosync lazily, on the first call that needs it,
 * and checks that the module speaks the ABI version the library was built
 * for. The environment variable GOSYNC_DEVICE overrides the device path
 * (ignored in set-uid programs).
 */
#ifndef GOSYNC_H
#define GOSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "uapi/gosync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported symbols; everything else stays private. */
#define GS_API __attribute__((visibility("default")))

/**
 * gs_init() - open and check /dev/gosync now rather than on first use.
 *
 * Return: 0; -ENOENT when the device node is missing (the module is not
 * loaded); -EACCES when it cannot be opened; -ENOTTY when the path is not
 * a gosync device; -EPROTO when the module's ABI version differs from the
 * library's. gs_init_error() then says what to do. A failed gs_init() is
 * retried by the next call, so loading the module later works.
 */
GS_API int gs_init(void);

/**
 * gs_init_error() - a sentence explaining the last gs_init() failure and
 * what to do about it, or "" if the device was opened successfully.
 * The text is kept per thread, until that thread's next failing call.
 */
GS_API const char *gs_init_error(void);

/**
 * gs_device_fd() - the library's file descriptor on /dev/gosync.
 *
 * Return: the fd (opened and checked on first use), or a negative errno
 * as for gs_init(). The fd belongs to the library: do not close it.
 */
GS_API int gs_device_fd(void);

/**
 * gs_features() - GOSYNC_FEATURE_* bits of the loaded module, or a
 * negative errno as for gs_init().
 */
GS_API int64_t gs_features(void);

/**
 * gs_strerror() - describe a negative errno returned by this library,
 * with gosync's meaning where it differs from the C library's text.
 */
GS_API const char *gs_strerror(int err);

/* ------------------------------------------------------------------ */
/* Time: deadlines are absolute nanoseconds, as in the kernel ABI.      */

/* Deadline flag: the deadline is on CLOCK_REALTIME, not CLOCK_MONOTONIC. */
#define GS_CLOCK_REALTIME	GOSYNC_CLOCK_REALTIME
/* The deadline that never comes. */
#define GS_FOREVER		GOSYNC_DEADLINE_NONE

/** gs_now() - CLOCK_MONOTONIC now, in nanoseconds. */
GS_API uint64_t gs_now(void);

/** gs_deadline_in() - the CLOCK_MONOTONIC deadline @ns nanoseconds from now. */
GS_API uint64_t gs_deadline_in(uint64_t ns);

/* ------------------------------------------------------------------ */
/* Passing object fds between processes.                               */

/**
 * gs_fd_send() - send the object fd @fd over the connected UNIX socket
 * @sock (SCM_RIGHTS), with one byte of payload. Works for every gosync
 * object (and any other fd). Return: 0 or a negative errno.
 */
GS_API int gs_fd_send(int sock, int fd);

/**
 * gs_fd_recv() - receive one fd sent by gs_fd_send(). Return: the new fd
 * (O_CLOEXEC), -ECONNRESET if the peer closed the socket, -EBADMSG if the
 * message carried no fd, or another negative errno.
 */
GS_API int gs_fd_recv(int sock);

/* ------------------------------------------------------------------ */
/* Weighted semaphore: golang.org/x/sync/semaphore.Weighted.            */
/*
 * A semaphore of @size permits, all free at creation. Acquirers wait in
 * strict FIFO order: a large request at the head holds up smaller ones
 * behind it, so nobody starves. A semaphore is a kernel object shared by
 * every process that holds its fd (fork, or gs_fd_send()).
 *
 * While nobody waits, acquire and release are atomic operations on a page
 * shared with the kernel and make no system call; the kernel is entered
 * only to sleep or to wake a sleeper. Any number of threads may use one
 * gs_sem at once.
 *
 * Go panics become errors that leave the semaphore unchanged:
 *   -EOVERFLOW  release of more permits than are held
 *   -EINVAL     a count above GOSYNC_SEM_MAX, or unknown flags
 */
typedef struct gs_sem gs_sem;

/**
 * gs_sem_create() - a new semaphore with @size permits (0 to
 * GOSYNC_SEM_MAX). Return: 0 and *@semp, or -EINVAL, -ENOMEM, -EMFILE,
 * or an error of gs_init().
 */
GS_API int gs_sem_create(gs_sem **semp, uint64_t size);

/**
 * gs_sem_from_fd() - use a semaphore fd received from another process
 * (or gs_sem_fd() of another gs_sem). On success the gs_sem owns @fd and
 * gs_sem_destroy() closes it. Return: 0; -ENOTTY if @fd is not a gosync
 * semaphore; -EBADF if it is not open.
 */
GS_API int gs_sem_from_fd(gs_sem **semp, int fd);

/**
 * gs_sem_acquire() - take @n permits, waiting as long as it takes.
 * Return: 0; -EINTR if a signal handler ran (the permits are then not
 * taken); -EINVAL. An @n larger than the size waits forever, as in Go.
 */
GS_API int gs_sem_acquire(gs_sem *sem, uint64_t n);

/**
 * gs_sem_acquire_until() - gs_sem_acquire() with an absolute @deadline
 * (nanoseconds on CLOCK_MONOTONIC, or CLOCK_REALTIME with @flags =
 * GS_CLOCK_REALTIME; GS_FOREVER for none). A deadline already past still
 * takes permits that are free now, like sem_timedwait(). Return: 0,
 * -ETIMEDOUT, -EINTR, -EINVAL.
 */
GS_API int gs_sem_acquire_until(gs_sem *sem, uint64_t n, uint64_t deadline,
				unsigned int flags);

/**
 * gs_sem_try_acquire() - take @n permits only if they are free now and
 * nobody is waiting (Go's TryAcquire). Return: 0, -EAGAIN, -EINVAL.
 */
GS_API int gs_sem_try_acquire(gs_sem *sem, uint64_t n);

/**
 * gs_sem_release() - return @n permits and wake the waiters that now fit,
 * in order. Return: 0, -EOVERFLOW (more than held), -EINVAL.
 */
GS_API int gs_sem_release(gs_sem *sem, uint64_t n);

/** gs_sem_size() - the number of permits the semaphore was created with. */
GS_API uint64_t gs_sem_size(const gs_sem *sem);

/**
 * gs_sem_fd() - the semaphore's fd, to pass to another process with
 * gs_fd_send() or to poll (readable when one permit is free and nobody
 * waits). It stays owned by @sem.
 */
GS_API int gs_sem_fd(const gs_sem *sem);

/**
 * gs_sem_status() - a snapshot: size, free permits and flags (in
 * @st->state), queued waiters and the kernel's slow-path counters.
 */
GS_API int gs_sem_status(gs_sem *sem, struct gosync_sem_status *st);

/**
 * gs_sem_destroy() - unmap and close. The kernel object lives on while
 * another fd (in this or another process) refers to it. Nobody may be
 * using @sem any more. NULL is allowed.
 */
GS_API void gs_sem_destroy(gs_sem *sem);

#ifdef __cplusplus
}
#endif

#endif /* GOSYNC_H */
