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

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
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
 * takes permits that are free now, like sem_timedwait(). @flags may also
 * hold GS_SEM_UNDO (below). Return: 0, -ETIMEDOUT, -EINTR, -EINVAL.
 */
GS_API int gs_sem_acquire_until(gs_sem *sem, uint64_t n, uint64_t deadline,
				unsigned int flags);

/**
 * gs_sem_try_acquire() - take @n permits only if they are free now and
 * nobody is waiting (Go's TryAcquire). Return: 0, -EAGAIN, -EINVAL.
 */
GS_API int gs_sem_try_acquire(gs_sem *sem, uint64_t n);

/*
 * Undo (SysV's SEM_UNDO; GOSYNC_FEATURE_SEM_UNDO): permits acquired with
 * GS_SEM_UNDO are counted by the kernel for the calling process, and
 * whatever of them the process still holds when it exits (normally, by
 * _exit() or by a signal, SIGKILL included), execs, or closes its last
 * descriptor of the semaphore (gs_sem_destroy() of its last gs_sem of it)
 * is released by the kernel, as gs_sem_release() would: waiters are
 * served in order. Give such permits back with gs_sem_release_undo(), not
 * gs_sem_release() (the kernel would release them a second time at exit;
 * it never goes past the size, but it would free permits others hold). A
 * forked child does not inherit the parent's undo permits. Undo acquires
 * and releases always make a system call (see docs/design.md); plain
 * ones keep their fast path. -ENOSPC: 1024 processes hold undo permits of
 * this semaphore already.
 */
#define GS_SEM_UNDO		GOSYNC_SEM_UNDO

/**
 * gs_sem_acquire_undo() - gs_sem_acquire() with undo. gs_sem_acquire_until()
 * takes GS_SEM_UNDO in @flags for the same with a deadline.
 * Return: 0, -EINTR, -EINVAL (also: the module has no undo), -ENOSPC,
 * -ENOMEM.
 */
GS_API int gs_sem_acquire_undo(gs_sem *sem, uint64_t n);

/**
 * gs_sem_try_acquire_undo() - gs_sem_try_acquire() with undo.
 * Return: 0, -EAGAIN, -EINVAL, -ENOSPC, -ENOMEM.
 */
GS_API int gs_sem_try_acquire_undo(gs_sem *sem, uint64_t n);

/**
 * gs_sem_release_undo() - give back @n permits taken with undo.
 * Return: 0; -EOVERFLOW if this process holds fewer than @n with undo
 * (nothing changes); -EINVAL.
 */
GS_API int gs_sem_release_undo(gs_sem *sem, uint64_t n);

/**
 * gs_sem_undo_held() - store in *@held how many permits of @sem the calling
 * process holds with undo. Return: 0, -ENOTTY (module without undo).
 */
GS_API int gs_sem_undo_held(gs_sem *sem, uint64_t *held);

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

/* ------------------------------------------------------------------ */
/* Channels: Go's chan T.                                               */
/*
 * A channel of elements of a fixed size (0 to GOSYNC_CHAN_ELEM_MAX bytes;
 * 0 is chan struct{}) with a capacity (0 = unbuffered). Values are copied
 * in and out; they may be any bytes (no pointers between processes!).
 * Semantics are Go's (see include/uapi/gosync.h): FIFO values, FIFO
 * waiters, direct hand-off to a waiting receiver, close that drains then
 * reports ok = false. The channel is a kernel object shared by every
 * process that holds its fd; its fd polls readable when a receive would
 * not block and writable when a send would not.
 *
 * Go's panics become errors that change nothing:
 *   -EPIPE   send on a closed channel, close of a closed channel
 */
typedef struct gs_chan gs_chan;

/**
 * gs_chan_make() - make(chan T, @capacity) with sizeof(T) = @elem_size.
 * Return: 0; -EINVAL (sizes out of range); -ENOMEM (the buffer exceeds the
 * module's max_buffer_bytes, the ring would exceed the caller's
 * RLIMIT_MEMLOCK, or memory); an error of gs_init().
 */
GS_API int gs_chan_make(gs_chan **chp, size_t elem_size, uint32_t capacity);

/**
 * gs_chan_from_fd() - use a channel fd received from another process. On
 * success the gs_chan owns @fd; on failure it stays the caller's.
 * Return: 0, -ENOTTY if @fd is not a gosync channel, -EBADF.
 */
GS_API int gs_chan_from_fd(gs_chan **chp, int fd);

/**
 * gs_chan_from_fd_sized() - gs_chan_from_fd() that also requires the
 * element size to be @elem_size: -EINVAL otherwise. On failure the fd
 * stays with the caller.
 */
GS_API int gs_chan_from_fd_sized(gs_chan **chp, int fd, size_t elem_size);

/**
 * gs_chan_send() - ch <- *value: copies elem_size bytes from @value.
 * Return: 0; -EPIPE if closed (before or while waiting; not sent); -EINTR
 * if a signal handler ran (not sent). On a buffered channel with room and
 * no waiters this is done on the shared ring without a system call; a bad
 * @value is then a fault, as for memcpy() (the ioctl says -EFAULT).
 */
GS_API int gs_chan_send(gs_chan *ch, const void *value);
/** gs_chan_send_until() - gs_chan_send() with a deadline; -ETIMEDOUT. */
GS_API int gs_chan_send_until(gs_chan *ch, const void *value,
			      uint64_t deadline, unsigned int flags);
/** gs_chan_try_send() - select { case ch <- v: default: }; -EAGAIN. */
GS_API int gs_chan_try_send(gs_chan *ch, const void *value);

/**
 * gs_chan_recv() - v, ok := <-ch: stores elem_size bytes at @value.
 * Return: 1 (ok: a value), 0 (closed and drained: zeroes stored), -EINTR.
 * A value ready in a buffered channel's ring is taken without a system
 * call; @value is touched before it is taken, so a bad @value faults with
 * nothing consumed (the ioctl says -EFAULT).
 *
 * A NULL @value discards the value (Go's <-ch and _, ok := <-ch): the
 * receive is the same in every other respect, whatever the element size
 * and however it completes (from the ring, from a waiting sender,
 * blocking, try, deadline, closed, in gs_select()): the value is
 * consumed and counted, and the return value says ok as above. The same
 * holds for every receive below and for gs_case_recv().
 */
GS_API int gs_chan_recv(gs_chan *ch, void *value);
/** gs_chan_recv_until() - gs_chan_recv() with a deadline; -ETIMEDOUT. */
GS_API int gs_chan_recv_until(gs_chan *ch, void *value, uint64_t deadline,
			      unsigned int flags);
/** gs_chan_try_recv() - select { case v, ok := <-ch: default: }; -EAGAIN. */
GS_API int gs_chan_try_recv(gs_chan *ch, void *value);

/** gs_chan_close() - close(ch). Return: 0, -EPIPE if already closed. */
GS_API int gs_chan_close(gs_chan *ch);

/** gs_chan_len() - len(ch): values buffered now, or a negative errno. */
GS_API int gs_chan_len(gs_chan *ch);
/** gs_chan_cap() - cap(ch). */
GS_API uint32_t gs_chan_cap(const gs_chan *ch);
/** gs_chan_elem_size() - the element size the channel was made with. */
GS_API size_t gs_chan_elem_size(const gs_chan *ch);
/** gs_chan_fd() - the channel's fd (owned by @ch): to pass or to poll. */
GS_API int gs_chan_fd(const gs_chan *ch);
/** gs_chan_status() - a snapshot of the kernel's view of the channel. */
GS_API int gs_chan_status(gs_chan *ch, struct gosync_chan_status *st);
/** gs_chan_destroy() - close this process's fd (not close(ch)). NULL ok. */
GS_API void gs_chan_destroy(gs_chan *ch);

/*
 * Type-safe channels: GS_CHAN_DECLARE(intchan, int) declares the type
 * intchan and functions intchan_make(&c, cap), intchan_send(c, v),
 * intchan_recv(c, &v), intchan_try_send/try_recv, intchan_close(c),
 * intchan_from_fd(&c, fd) (checks the element size: -EINVAL if it
 * differs, and the fd stays the caller's) and intchan_destroy(c), so that a value of the wrong type does
 * not compile. Without declaring a type, GS_SEND(ch, T, v) sends the value
 * v of type T: GS_SEND(ch, double, 2.5).
 */
#define GS_SEND(ch, T, v) gs_chan_send((ch), &(T){ (v) })

#define GS_CHAN_DECLARE(name, T)					\
typedef struct { gs_chan *ch; } name;					\
static inline int name##_make(name *c, uint32_t capacity)		\
{ return gs_chan_make(&c->ch, sizeof(T), capacity); }			\
static inline int name##_from_fd(name *c, int fd)			\
{ return gs_chan_from_fd_sized(&c->ch, fd, sizeof(T)); }		\
static inline int name##_send(name c, T v)				\
{ return gs_chan_send(c.ch, &v); }					\
static inline int name##_try_send(name c, T v)				\
{ return gs_chan_try_send(c.ch, &v); }					\
static inline int name##_recv(name c, T *v)				\
{ return gs_chan_recv(c.ch, v); }					\
static inline int name##_try_recv(name c, T *v)				\
{ return gs_chan_try_recv(c.ch, v); }					\
static inline int name##_close(name c)					\
{ return gs_chan_close(c.ch); }						\
static inline void name##_destroy(name c)				\
{ gs_chan_destroy(c.ch); }

/* ------------------------------------------------------------------ */
/* select                                                               */
/*
 * gs_select() commits exactly one case, chosen uniformly at random among
 * the ready ones, waiting if none is (unless GS_SELECT_DEFAULT). It works
 * across processes: the waiting is done in the kernel on all channels at
 * once. A case with a NULL channel is a nil case (never ready).
 *
 * Go's idioms:
 *
 *   // select { case v := <-in: ...; case <-time.After(50ms): timeout }
 *   gs_chan *after; gs_after(&after, 50 * 1000000);
 *   uint64_t fired;
 *   gs_case cs[] = { gs_case_recv(in, &v), gs_case_recv(after, &fired) };
 *   int i = gs_select(cs, 2, 0, GS_FOREVER);  // 0: got v, 1: timed out
 *   gs_chan_destroy(after);
 *   // (or simply: gs_chan_recv_until(in, &v, gs_deadline_in(50000000), 0))
 *
 *   // select { case out <- v: sent; default: busy }
 *   gs_case c = gs_case_send(out, &v);
 *   if (gs_select(&c, 1, GS_SELECT_DEFAULT, GS_FOREVER) == -EAGAIN) busy();
 *
 *   // for { select { case <-done: return; case job := <-jobs: work(job) } }
 *   for (;;) {
 *           gs_case cs[] = { gs_case_recv(done, NULL), gs_case_recv(jobs, &job) };
 *           int i = gs_select(cs, 2, 0, GS_FOREVER);
 *           if (i == 0 || (i == 1 && !cs[1].ok)) break;  // done closed
 *           if (i == 1) work(job);
 *   }
 */
#define GS_OP_SEND		GOSYNC_SELECT_SEND
#define GS_OP_RECV		GOSYNC_SELECT_RECV
#define GS_SELECT_DEFAULT	GOSYNC_SELECT_DEFAULT
#define GS_SELECT_MAX		GOSYNC_SELECT_MAX_CASES

typedef struct gs_case {
	gs_chan *ch;		/* NULL: a nil channel */
	int op;			/* GS_OP_SEND or GS_OP_RECV */
	void *value;		/* value to send / where to receive */
	bool ok;		/* out, for the committed receive case */
} gs_case;

static inline gs_case gs_case_send(gs_chan *ch, const void *value)
{
	gs_case c = { ch, GS_OP_SEND, (void *)value, false };

	return c;
}

static inline gs_case gs_case_recv(gs_chan *ch, void *value)
{
	gs_case c = { ch, GS_OP_RECV, value, false };

	return c;
}

/**
 * gs_select() - run a select over @n cases (at most GS_SELECT_MAX).
 * @flags: GS_SELECT_DEFAULT (do not wait), GS_CLOCK_REALTIME (@deadline's
 *         clock)
 * @deadline: absolute, or GS_FOREVER
 *
 * A receive case with a NULL value discards what it receives (as
 * gs_chan_recv() does) and costs the kernel no buffer.
 *
 * Return: the index of the committed case (its ok is set for a receive);
 * -EAGAIN (default: nothing ready); -ETIMEDOUT; -EINTR; -EPIPE (a send
 * case committed on a closed channel); -EINVAL (too many cases, bad op);
 * -E2BIG (the element sizes of the send cases and of the receive cases
 * with a value exceed the module's max_select_bytes, 1 MiB by default:
 * nothing is sent or received).
 */
GS_API int gs_select(gs_case *cases, size_t n, unsigned int flags,
		     uint64_t deadline);

/* ------------------------------------------------------------------ */
/* Timer channels: time.After, time.NewTimer, time.NewTicker.            */
/*
 * A timer is a receive-only gs_chan of uint64_t (the firing time in ns):
 * receive from it, select on it, poll it; gs_chan_destroy() it when done.
 * No thread is involved: the kernel's hrtimers feed it. A ticker drops a
 * tick while the previous one is unreceived, as Go's does, and costs
 * nothing while nobody receives.
 */

/** gs_after() - a timer that fires once, @ns from now (time.After). */
GS_API int gs_after(gs_chan **timerp, uint64_t ns);

/** gs_timer_at() - a timer that fires once at absolute time @when. */
GS_API int gs_timer_at(gs_chan **timerp, uint64_t when, unsigned int flags);

/** gs_tick() - a ticker that fires every @period_ns (time.NewTicker). */
GS_API int gs_tick(gs_chan **tickerp, uint64_t period_ns);

/**
 * gs_timer_stop() - Timer.Stop / Ticker.Stop: no value is received after
 * it returns. Return: 1 if that stopped a value from being received (the
 * timer had not fired, or its value was unreceived and is discarded), 0
 * otherwise, as Go 1.23's Stop; -ENOTTY if @timer is not a timer.
 */
GS_API int gs_timer_stop(gs_chan *timer);

/** gs_timer_reset() - Timer.Reset(ns): fire once, @ns from now. 1/0 as Stop. */
GS_API int gs_timer_reset(gs_chan *timer, uint64_t ns);

/** gs_ticker_reset() - Ticker.Reset(period): tick every @period_ns from now. */
GS_API int gs_ticker_reset(gs_chan *ticker, uint64_t period_ns);

/* ------------------------------------------------------------------ */
/* The sync package: Mutex, RWMutex, WaitGroup, Once, Cond, and a        */
/* CyclicBarrier.                                                       */
/*
 * Each object is a kernel parking lot (see include/uapi/gosync.h) whose
 * page holds the object's state: every process holding the fd (fork, or
 * gs_fd_send() of gs_X_fd()) shares it, and any number of threads may use
 * one handle at once. Operations that need not wait are atomic operations
 * on that page and make no system call; the kernel is entered only to
 * sleep or to wake a sleeper.
 *
 * Common to every type X: gs_X_create(), gs_X_from_fd() (adopts a
 * received fd; -ENOTTY if it is not a gosync X, -EBADF if not open),
 * gs_X_fd() (stays owned by the handle), gs_X_destroy() (unmaps and
 * closes; the object lives on in other holders; NULL allowed).
 *
 * Go's panics become errors that change nothing: -EPERM (unlock of an
 * unlocked mutex), -EOVERFLOW (negative WaitGroup counter). Blocking
 * calls are not cut short by signals: the handler runs and the wait goes
 * on (as pthread_mutex_lock); the _until() variants take an absolute
 * deadline as gs_sem_acquire_until() does and return -ETIMEDOUT.
 *
 * A Mutex (and an RWMutex's writer lock) is robust, as a pthread robust
 * mutex: see gs_mutex_consistent(). A process that dies inside Once's
 * function leaves it unfinished for the others.
 */

/* Go's starvation threshold: a waiter that waited longer than this. */
#define GS_MUTEX_STARVATION_NS	1000000ULL

/*
 * Mutex (sync.Mutex). Not tied to a thread: any thread (or process) may
 * unlock it, as in Go, as long as the thread that locked it lives (see
 * below). Normal mode lets a running thread take a free
 * mutex before the woken waiter (throughput); a waiter that has waited
 * over GS_MUTEX_STARVATION_NS switches it to starvation mode, where the
 * mutex is handed from the unlocker straight to the oldest waiter and
 * newcomers queue, until the queue drains or a waiter is served quickly.
 */
typedef struct gs_mutex gs_mutex;

GS_API int gs_mutex_create(gs_mutex **mp);
GS_API int gs_mutex_from_fd(gs_mutex **mp, int fd);
GS_API int gs_mutex_fd(const gs_mutex *m);
GS_API void gs_mutex_destroy(gs_mutex *m);
/*
 * Each lock and trylock below also returns -EOWNERDEAD (held, its last
 * holder died) or -ENOTRECOVERABLE: see Robustness after them.
 */
/** gs_mutex_lock() - Lock. Return: 0 (checked: or -EDEADLK). */
GS_API int gs_mutex_lock(gs_mutex *m);
/** gs_mutex_lock_until() - Lock by @deadline. Return: 0, -ETIMEDOUT, -EINVAL. */
GS_API int gs_mutex_lock_until(gs_mutex *m, uint64_t deadline,
			       unsigned int flags);
/** gs_mutex_trylock() - TryLock. Return: 0, or -EBUSY if held (or starving). */
GS_API int gs_mutex_trylock(gs_mutex *m);
/** gs_mutex_unlock() - Unlock. Return: 0, or -EPERM if it is not locked. */
GS_API int gs_mutex_unlock(gs_mutex *m);

/*
 * Robustness (module feature GOSYNC_FEATURE_ROBUST_LOCK). The kernel
 * knows which thread holds a Mutex: each thread registers once, on its
 * first lock (one ioctl), then lock and unlock stay one compare-and-swap
 * each. When the thread that locked the mutex dies holding it (its
 * process is killed, exits or execs; the thread returns or calls
 * pthread_exit()), the next thread to take it (lock, lock_until,
 * lock_ctx, trylock, or a Cond's relock) gets -EOWNERDEAD and holds the
 * mutex: the data it protects may be inconsistent. Repair it, then call
 * gs_mutex_consistent() and go on as usual. Unlocking without doing so
 * makes the mutex not recoverable: every lock and trylock, current
 * waiters included, then fails with -ENOTRECOVERABLE, forever.
 * A parked waiter is woken when the holder dies. Not covered: a thread
 * that ends without running its TLS destructors (a raw exit system
 * call) is seen as dead only when a locker next parks; a thread that
 * exits while another thread was to unlock for it (Go's cross-thread
 * unlock) makes the mutex EOWNERDEAD all the same; a process that closed
 * every descriptor of /dev/gosync (libgosync keeps one) is seen as dead
 * only when a locker parks; without the feature a Mutex is not robust.
 */
/**
 * gs_mutex_consistent() - Mark a mutex taken with -EOWNERDEAD consistent.
 * Return: 0, or -EINVAL if it is not held with its holder's death pending
 * (not locked, locked normally, or not recoverable).
 */
GS_API int gs_mutex_consistent(gs_mutex *m);

/*
 * RWMutex (sync.RWMutex). A writer that waits blocks new readers, so
 * writers are not starved; when it unlocks, the readers that queued
 * meanwhile all get in before the next writer. An uncontended read lock
 * is one atomic addition.
 */
typedef struct gs_rwmutex gs_rwmutex;

GS_API int gs_rwmutex_create(gs_rwmutex **rwp);
GS_API int gs_rwmutex_from_fd(gs_rwmutex **rwp, int fd);
GS_API int gs_rwmutex_fd(const gs_rwmutex *rw);
GS_API void gs_rwmutex_destroy(gs_rwmutex *rw);
/** gs_rwmutex_lock() / _rlock() - Lock / RLock. Return: 0. */
GS_API int gs_rwmutex_lock(gs_rwmutex *rw);
GS_API int gs_rwmutex_rlock(gs_rwmutex *rw);
/** gs_rwmutex_trylock() / _tryrlock() - TryLock / TryRLock: 0 or -EBUSY. */
GS_API int gs_rwmutex_trylock(gs_rwmutex *rw);
GS_API int gs_rwmutex_tryrlock(gs_rwmutex *rw);
/** gs_rwmutex_unlock() / _runlock() - 0, or -EPERM if not so locked. */
GS_API int gs_rwmutex_unlock(gs_rwmutex *rw);
GS_API int gs_rwmutex_runlock(gs_rwmutex *rw);
/*
 * Robustness: the writers' lock is a robust Mutex. A writer that dies
 * holding the lock (or waiting for readers to leave) makes the next
 * writer's lock or trylock return -EOWNERDEAD, with the write lock held
 * and the readers that the dead writer waited for gone (a trylock never
 * waits for them: it returns -EBUSY while any is still in); readers that
 * queued behind it get in when that writer unlocks. Repair, then
 * gs_rwmutex_consistent() (as gs_mutex_consistent()); unlocking without
 * it makes the writer lock not recoverable (-ENOTRECOVERABLE for every
 * writer; readers go on). Readers are not tracked: a reader that dies
 * holding a read lock holds it forever, and writers then wait forever.
 * Not covered: a writer that dies in the few instructions between its
 * two announcement steps, or within its unlock, can leave readers or
 * the next writer waiting.
 */
GS_API int gs_rwmutex_consistent(gs_rwmutex *rw);

/*
 * Checked locks (module feature GOSYNC_FEATURE_LOCK_CHECK): opt-in
 * deadlock detection, as pthread's error-checking mutexes, across
 * processes. A checked Mutex (or RWMutex writer lock) is unlocked only by
 * the thread that holds it: another thread's unlock returns -EPERM and
 * changes nothing (Go lets any goroutine unlock; checking trades that
 * for the guarantee below). A lock of a checked mutex returns -EDEADLK,
 * holding nothing more than before, when it could never succeed:
 *  - the calling thread holds it already (the reentrancy pitfall), for
 *    every lock call, deadline or not;
 *  - or the lock waits without deadline or context (gs_mutex_lock(),
 *    gs_rwmutex_lock(), a Cond's relock) and its holder waits so for a
 *    checked mutex whose holder waits so ... for one the caller holds:
 *    a cycle, across threads and processes.
 * The kernel sees the cycle when the lock is about to sleep; it logs it
 * (a "gosync: deadlock:" line, once per pair of mutexes, rate-limited)
 * and traces it (gosync:gosync_deadlock). A wait with a deadline or a
 * context is never refused for a cycle (it ends), nor is a cycle through
 * an unchecked mutex (anyone may unlock that). Uncontended lock and
 * unlock cost the same as unchecked; only a lock that sleeps pays for
 * the check.
 *
 * Checked are: mutexes made by the _checked() constructors; every Mutex
 * and RWMutex this process makes (created, or opened with O_CREAT and
 * created) after gs_check_locks(true), or from its start when the
 * environment has GOSYNC_CHECK_LOCKS=1; and every one made anywhere
 * while the module parameter detect_deadlocks is Y (a debugging switch:
 * it gives every program the holder-only unlock above). Checking is the
 * object's, whoever uses it; gs_mutex_consistent() of a checked mutex is
 * also its holder's (-EPERM for others). Not checked: a thread whose
 * owner registration failed (an anonymous holder, see Robustness); a
 * mutex that a process linked with a libgosync older than checked locks
 * has opened (it unlocks from any thread, so from then on no cycle is
 * proved through that mutex); cycles of more than 64 mutexes. Return:
 * 0, -ENOMEM, -EMFILE, -EOPNOTSUPP (the module does not check locks).
 */
GS_API int gs_mutex_create_checked(gs_mutex **mp);
GS_API int gs_rwmutex_create_checked(gs_rwmutex **rwp);
/*
 * gs_mutex_checked() / gs_rwmutex_checked(): whether the kernel said the
 * object was checked when this handle was made (the handle keeps the
 * holder-only unlock rule from then on, even if an older library's use
 * later ends the kernel's checking).
 */
GS_API bool gs_mutex_checked(const gs_mutex *m);
GS_API bool gs_rwmutex_checked(const gs_rwmutex *rw);
/** gs_check_locks() - Make this process's new Mutexes and RWMutexes checked. */
GS_API void gs_check_locks(bool on);

/*
 * WaitGroup (sync.WaitGroup). The counter ranges over 0..2^31-1; an add
 * that would leave it outside fails with -EOVERFLOW and changes nothing.
 * A group may be reused as soon as the counter is zero; a waiter returns
 * once the counter it waited on reached zero, even if the group was
 * reused at once.
 */
typedef struct gs_waitgroup gs_waitgroup;

GS_API int gs_waitgroup_create(gs_waitgroup **wgp);
GS_API int gs_waitgroup_from_fd(gs_waitgroup **wgp, int fd);
GS_API int gs_waitgroup_fd(const gs_waitgroup *wg);
GS_API void gs_waitgroup_destroy(gs_waitgroup *wg);
/** gs_waitgroup_add() - Add(@delta). Return: 0, -EOVERFLOW. */
GS_API int gs_waitgroup_add(gs_waitgroup *wg, int64_t delta);
/** gs_waitgroup_done() - Done, that is Add(-1). Return: 0, -EOVERFLOW. */
GS_API int gs_waitgroup_done(gs_waitgroup *wg);
/** gs_waitgroup_count() - the counter now (a snapshot). */
GS_API int64_t gs_waitgroup_count(gs_waitgroup *wg);
/** gs_waitgroup_wait() - Wait until the counter is zero. Return: 0, -EOWNERDEAD (broken). */
GS_API int gs_waitgroup_wait(gs_waitgroup *wg);
/** gs_waitgroup_wait_until() - Wait by @deadline: also -ETIMEDOUT, -EINVAL. */
GS_API int gs_waitgroup_wait_until(gs_waitgroup *wg, uint64_t deadline,
				   unsigned int flags);
/*
 * A party that may die (GOSYNC_FEATURE_LOT_PARTIES; -EOPNOTSUPP from an
 * older module). The _undo calls change the counter as Add and Done do
 * and also the calling process's share, which the kernel keeps: when the
 * process exits, execs or closes its last descriptor of the group with a
 * share outstanding (SIGKILL included), the kernel removes the share from
 * the counter and breaks the group. Every Wait then returns -EOWNERDEAD
 * (waiters parked at that moment are woken) until gs_waitgroup_recover().
 * A share is not inherited by fork. These calls always enter the kernel;
 * plain Add, Done and Wait do not.
 */
/**
 * gs_waitgroup_add_undo() - Add(@delta) as the caller's share.
 * Return: 0; -EOVERFLOW (as Add); -EPERM (a negative @delta beyond the
 * caller's share); -ENOSPC (GOSYNC_LOT_MAX_PARTIES processes have shares
 * already); -ENOMEM; -EOPNOTSUPP.
 */
GS_API int gs_waitgroup_add_undo(gs_waitgroup *wg, int64_t delta);
/** gs_waitgroup_done_undo() - Done from the caller's share: add_undo(-1). */
GS_API int gs_waitgroup_done_undo(gs_waitgroup *wg);
/**
 * gs_waitgroup_adopt() - take over @n (> 0) of a counter that another
 * process added (a parent's Add(n) before it starts n workers): the
 * counter is unchanged, the caller's share grows by @n. Return: 0;
 * -EINVAL (@n <= 0); -EOVERFLOW (the shares would exceed the counter);
 * -ENOSPC; -ENOMEM; -EOPNOTSUPP.
 */
GS_API int gs_waitgroup_adopt(gs_waitgroup *wg, int64_t n);
/** gs_waitgroup_share() - the calling process's share, or a negative errno. */
GS_API int64_t gs_waitgroup_share(gs_waitgroup *wg);
/** gs_waitgroup_broken() - whether a party died with its share outstanding. */
GS_API bool gs_waitgroup_broken(gs_waitgroup *wg);
/**
 * gs_waitgroup_recover() - clear the broken state: waits wait again for
 * the counter (the dead share is already out of it). Return: 0, or
 * -EINVAL if the group is not broken.
 */
GS_API int gs_waitgroup_recover(gs_waitgroup *wg);

/**
 * gs_waitgroup_go() - WaitGroup.Go (Go 1.25): Add(1), then run @fn(@arg)
 * on a new detached thread, which calls Done when @fn returns.
 * Return: 0; -EINVAL (no @fn); -EAGAIN or -ENOMEM (no thread: the
 * counter is unchanged); -EOVERFLOW.
 */
GS_API int gs_waitgroup_go(gs_waitgroup *wg, void (*fn)(void *arg),
			   void *arg);

/**
 * gs_go() - the go statement: run @fn(@arg) on a new detached thread.
 * Return: 0, -EINVAL, -EAGAIN, -ENOMEM.
 */
GS_API int gs_go(void (*fn)(void *arg), void *arg);

/*
 * Once (sync.Once), and OnceFunc / OnceValue / OnceValues: the first
 * caller runs the function; concurrent callers, in any process, wait for
 * it to return; later callers return at once. gs_once_value()'s function
 * yields a 64-bit value and an error (0 or a negative errno), which are
 * kept in the shared page: every caller, in every process, gets that same
 * value and error (OnceValues; OnceFunc and OnceValue are the cases that
 * ignore one of them). Use one gs_once per function.
 */
typedef struct gs_once gs_once;

GS_API int gs_once_create(gs_once **op);
GS_API int gs_once_from_fd(gs_once **op, int fd);
GS_API int gs_once_fd(const gs_once *o);
GS_API void gs_once_destroy(gs_once *o);
/** gs_once_do() - Once.Do(@fn). Return: 0, or -EINVAL (no @fn). */
GS_API int gs_once_do(gs_once *o, void (*fn)(void *arg), void *arg);
/**
 * gs_once_value() - run @fn once and give every caller its result: the
 * function's error is returned and its value stored in *@value (if
 * @value is not NULL). Return: that error, or -EINVAL (no @fn).
 */
GS_API int gs_once_value(gs_once *o, int (*fn)(void *arg, uint64_t *value),
			 void *arg, uint64_t *value);
/** gs_once_done() - whether the function has run to its end. */
GS_API bool gs_once_done(gs_once *o);

/*
 * Cond (sync.Cond) with a gs_mutex as its Locker. Wait unlocks the mutex,
 * waits for a Signal or Broadcast that comes after, and locks it again
 * before returning (also on -ETIMEDOUT). A thread waits from the moment
 * it calls Wait, before the mutex is unlocked, as in Go. Signal wakes
 * exactly one of the threads waiting when it is called, the one that has
 * waited longest, and no other; Broadcast wakes all of them and none that
 * begins to wait after it; Wait never returns 0 without one of them. A
 * waiter that leaves on its deadline takes no Signal with it: the next
 * Signal goes to the next waiter (and a Signal that reached it first
 * makes its Wait return 0). The same holds between processes. Signal and
 * Broadcast make no system call when nobody waits.
 */
typedef struct gs_cond gs_cond;

GS_API int gs_cond_create(gs_cond **cp);
GS_API int gs_cond_from_fd(gs_cond **cp, int fd);
GS_API int gs_cond_fd(const gs_cond *c);
GS_API void gs_cond_destroy(gs_cond *c);
/*
 * With a checked @m (see Checked locks), the relock may fail with
 * -EDEADLK instead of deadlocking: both waits then return -EDEADLK with
 * @m NOT held.
 */
/** gs_cond_wait() - Wait; @m must be locked. Return: 0, -EPERM (it is not). */
GS_API int gs_cond_wait(gs_cond *c, gs_mutex *m);
/**
 * gs_cond_wait_until() - Wait by @deadline: 0, -ETIMEDOUT, -EPERM (@m is
 * not locked), -EINVAL (bad flags, or a Cond page written by hand).
 */
GS_API int gs_cond_wait_until(gs_cond *c, gs_mutex *m, uint64_t deadline,
			      unsigned int flags);
GS_API void gs_cond_signal(gs_cond *c);
GS_API void gs_cond_broadcast(gs_cond *c);

/*
 * CyclicBarrier, with the API of github.com/marusama/cyclicbarrier: a
 * barrier for @parties threads or processes, reusable round after round.
 * The last to arrive runs the optional action (of its own process's
 * handle) before anyone leaves; if the action fails (returns a negative
 * errno), that caller gets its error and the round is broken. A round is
 * broken when a waiter's deadline passes before the round is complete, or
 * by its action, or by a reset while parties wait: its waiters, and every
 * later Await until a reset, get -EPIPE. Reset starts a fresh round.
 * A thread arriving while the last arriver runs the action waits for the
 * next round. A party whose process dies inside await (parked, on its
 * way in, or running the action; SIGKILL included) breaks the round as a
 * deadline does (GOSYNC_FEATURE_LOT_PARTIES: every Await then enters the
 * kernel once to arrive, the last arriver's included).
 */
typedef struct gs_barrier gs_barrier;

/** gs_barrier_create() - parties 1..2^31-1 (else -EINVAL); @action may be NULL. */
GS_API int gs_barrier_create(gs_barrier **bp, uint32_t parties,
			     int (*action)(void *arg), void *arg);
GS_API int gs_barrier_from_fd(gs_barrier **bp, int fd);
GS_API int gs_barrier_fd(const gs_barrier *b);
GS_API void gs_barrier_destroy(gs_barrier *b);
/** gs_barrier_set_action() - this handle's action (a received barrier has none). */
GS_API void gs_barrier_set_action(gs_barrier *b, int (*action)(void *arg),
				  void *arg);
/**
 * gs_barrier_await() - Await. Return: 0, -EPIPE (broken), the action's
 * error; -ENOSPC (GOSYNC_LOT_MAX_PARTIES processes take part already) or
 * -ENOMEM before arriving.
 */
GS_API int gs_barrier_await(gs_barrier *b);
/** gs_barrier_await_until() - Await by @deadline; also -ETIMEDOUT, -EINVAL. */
GS_API int gs_barrier_await_until(gs_barrier *b, uint64_t deadline,
				  unsigned int flags);
/** gs_barrier_reset() - Reset: break the round if anyone waits; start anew. */
GS_API int gs_barrier_reset(gs_barrier *b);
/** gs_barrier_parties() / _waiting() / _broken() - GetParties, GetNumberWaiting, IsBroken. */
GS_API uint32_t gs_barrier_parties(const gs_barrier *b);
GS_API uint32_t gs_barrier_waiting(gs_barrier *b);
GS_API bool gs_barrier_broken(gs_barrier *b);

/* ------------------------------------------------------------------ */
/* Context (package context).                                          */
/*
 * A gs_ctx carries a cancellation signal, a deadline and values down a
 * call tree. Done() is a gosync channel (element size 0) that is closed
 * when the context is cancelled or its deadline passes, so it works as a
 * case of gs_select(), in poll/epoll, and in another process (send
 * gs_chan_fd(gs_ctx_done(ctx)) with gs_fd_send()). Cancelling a context
 * cancels its whole subtree. Deadlines are kernel timer channels watched
 * by one library thread (started on first use), not a thread per context.
 *
 * Errors: gs_ctx_err() is 0 while the context is live, then -ECANCELED
 * (context.Canceled) or -ETIMEDOUT (context.DeadlineExceeded). A cause is
 * any non-zero int (a negative errno, by convention); gs_ctx_cause()
 * returns it, or the error when no cause was given.
 *
 * Lifetime: every gs_ctx_with_*() returns a reference that the caller
 * gives back with gs_ctx_release(); gs_ctx_ref() takes another (for a
 * thread that uses the context). A context is freed when its last
 * reference is gone; a child holds a reference on its parent. Releasing
 * does not cancel: call gs_ctx_cancel() when the work is done, as Go's
 * "defer cancel()" does, so that the parent forgets the child at once.
 * Background and TODO are never cancelled, have no deadline, and need no
 * release (it is allowed and does nothing).
 *
 * A context is an object of one process (its tree, values and AfterFuncs
 * live in that process's memory; the copy a fork() leaves in the child is
 * not cancelled with the parent's). What crosses processes is Done: get
 * it (gs_ctx_done()) before fork(), or send its fd, and have the other
 * process select on that channel.
 *
 * Every blocking call has a _ctx form that returns the context's error
 * when it is done first: channel send/receive, select, semaphore acquire,
 * Mutex lock, WaitGroup wait, barrier await. The kernel watches the Done
 * channel and the deadline together with the object, so nothing polls.
 */
typedef struct gs_ctx gs_ctx;

/** gs_ctx_background() / gs_ctx_todo() - the roots: never done. */
GS_API gs_ctx *gs_ctx_background(void);
GS_API gs_ctx *gs_ctx_todo(void);

/**
 * gs_ctx_with_cancel() - WithCancel and WithCancelCause: a child that
 * gs_ctx_cancel() or gs_ctx_cancel_cause() cancels. Return: 0, -ENOMEM,
 * -EINVAL (no parent), or an error creating its Done channel.
 */
GS_API int gs_ctx_with_cancel(gs_ctx *parent, gs_ctx **ctxp);
/**
 * gs_ctx_with_deadline() - WithDeadline: also done at @deadline (ns on
 * CLOCK_MONOTONIC, as gs_now()), or at the parent's deadline if earlier.
 * gs_ctx_with_deadline_cause(): WithDeadlineCause, whose cause (when the
 * deadline passes) is @cause.
 */
GS_API int gs_ctx_with_deadline(gs_ctx *parent, uint64_t deadline,
				gs_ctx **ctxp);
GS_API int gs_ctx_with_deadline_cause(gs_ctx *parent, uint64_t deadline,
				      int cause, gs_ctx **ctxp);
/** gs_ctx_with_timeout() - WithTimeout: a deadline @ns from now. */
GS_API int gs_ctx_with_timeout(gs_ctx *parent, uint64_t ns, gs_ctx **ctxp);
GS_API int gs_ctx_with_timeout_cause(gs_ctx *parent, uint64_t ns, int cause,
				     gs_ctx **ctxp);
/**
 * gs_ctx_with_value() - WithValue: a child whose gs_ctx_value(@key) is
 * @value (keys compare as pointers; neither is copied nor freed).
 */
GS_API int gs_ctx_with_value(gs_ctx *parent, const void *key, void *value,
			     gs_ctx **ctxp);
/** gs_ctx_without_cancel() - WithoutCancel: the parent's values, never done. */
GS_API int gs_ctx_without_cancel(gs_ctx *parent, gs_ctx **ctxp);

/** gs_ctx_cancel() - CancelFunc: cancel @ctx and its subtree (once). */
GS_API void gs_ctx_cancel(gs_ctx *ctx);
/** gs_ctx_cancel_cause() - CancelCauseFunc; a @cause of 0 means Canceled. */
GS_API void gs_ctx_cancel_cause(gs_ctx *ctx, int cause);

/** gs_ctx_err() - Err: 0, -ECANCELED or -ETIMEDOUT. */
GS_API int gs_ctx_err(gs_ctx *ctx);
/** gs_ctx_cause() - Cause: 0 while live, else the cause (or the error). */
GS_API int gs_ctx_cause(gs_ctx *ctx);
/**
 * gs_ctx_done() - Done: the channel closed when @ctx is done, owned by
 * @ctx; NULL (a nil channel: never ready in gs_select) for a context that
 * can never be done. Return: the channel, or NULL also if it could not be
 * created (then gs_ctx_err() still tells).
 */
GS_API gs_chan *gs_ctx_done(gs_ctx *ctx);
/** gs_ctx_deadline() - Deadline: true and *@deadline if there is one. */
GS_API bool gs_ctx_deadline(gs_ctx *ctx, uint64_t *deadline);
/** gs_ctx_value() - Value: the nearest value for @key, or NULL. */
GS_API void *gs_ctx_value(gs_ctx *ctx, const void *key);

GS_API gs_ctx *gs_ctx_ref(gs_ctx *ctx);
GS_API void gs_ctx_release(gs_ctx *ctx);

/**
 * gs_ctx_after_func() - AfterFunc: run @fn(@arg) on a new thread once
 * @ctx is done (at once if it is). *@stopp receives a handle for
 * gs_ctx_after_func_stop(), which must be called exactly once to free it.
 * Return: 0, -ENOMEM.
 */
typedef struct gs_ctx_after gs_ctx_after;
GS_API int gs_ctx_after_func(gs_ctx *ctx, void (*fn)(void *arg), void *arg,
			     gs_ctx_after **stopp);
/**
 * gs_ctx_after_func_stop() - stop(): true if this stopped @fn from being
 * started, false if it had been started already. Frees @stop.
 */
GS_API bool gs_ctx_after_func_stop(gs_ctx_after *stop);

/* The _ctx forms of the blocking calls: the context's error when it is done. */
GS_API int gs_chan_send_ctx(gs_chan *ch, const void *value, gs_ctx *ctx);
GS_API int gs_chan_recv_ctx(gs_chan *ch, void *value, gs_ctx *ctx);
GS_API int gs_select_ctx(gs_case *cases, size_t n, gs_ctx *ctx);
GS_API int gs_sem_acquire_ctx(gs_sem *sem, uint64_t n, gs_ctx *ctx);
GS_API int gs_mutex_lock_ctx(gs_mutex *m, gs_ctx *ctx);
GS_API int gs_waitgroup_wait_ctx(gs_waitgroup *wg, gs_ctx *ctx);
GS_API int gs_barrier_await_ctx(gs_barrier *b, gs_ctx *ctx);

/* ------------------------------------------------------------------ */
/* Channel patterns: the plumbing Go programs write with goroutines.    */
/*
 * Each helper starts threads that move values between channels until
 * their inputs are closed or @ctx is done, then close their output(s):
 * consumers learn that a stage is over from the close, as in Go. Every
 * blocking step uses @ctx (gs_ctx_background() for none), so cancelling
 * it tears down a whole pipeline. The channels must stay alive (not
 * destroyed) until the helper's outputs are closed; the helpers destroy
 * nothing. Values are copied through; element sizes must match where a
 * value passes unchanged (-EINVAL otherwise).
 *
 * Why library helpers rather than examples: in Go these are five-line
 * functions over chan T; in C the same needs threads, element sizes and
 * careful closing, which is exactly what users should not rewrite.
 * Bounded parallelism is gs_errgroup_set_limit() (or gs_stage()'s worker
 * count); map-reduce is gs_stage() then gs_merge() (examples/pipeline.c).
 */

/**
 * gs_merge() - fan-in: forward every value of each of @ins to @out, then
 * close @out once all of @ins are closed (or @ctx is done). Order is
 * kept per input. Return: 0, -EINVAL, -ENOMEM, -EAGAIN (no thread).
 */
GS_API int gs_merge(gs_ctx *ctx, gs_chan *const *ins, size_t n, gs_chan *out);

/**
 * gs_tee() - send each value of @in to both @out1 and @out2 (whichever
 * is ready first first), then close both. Return: as gs_merge().
 */
GS_API int gs_tee(gs_ctx *ctx, gs_chan *in, gs_chan *out1, gs_chan *out2);

/**
 * gs_or_done() - forward @in to @out until @in is closed or @ctx is done,
 * then close @out: a receive loop on @out needs no select on Done.
 */
GS_API int gs_or_done(gs_ctx *ctx, gs_chan *in, gs_chan *out);

/* What a gs_stage() function returns besides a negative error. */
#define GS_STAGE_EMIT	0	/* send the output value */
#define GS_STAGE_SKIP	1	/* send nothing for this input */

/**
 * gs_stage() - a pipeline stage with @workers threads (fan-out): each
 * receives from @in, calls @fn(@arg, input, output) with buffers of the
 * two channels' element sizes, and sends the output unless @fn returns
 * GS_STAGE_SKIP. A negative return stops the stage and cancels @ctx (if
 * it is cancelable) with that error as its cause, which stops the rest of
 * the pipeline. @out is closed when every worker has stopped. Values
 * leave in no particular order when @workers > 1.
 */
GS_API int gs_stage(gs_ctx *ctx, gs_chan *in, gs_chan *out,
		    int (*fn)(void *arg, const void *in, void *out),
		    void *arg, unsigned int workers);

/* ------------------------------------------------------------------ */
/* errgroup (golang.org/x/sync/errgroup).                               */
/*
 * A group of calls running on their own threads, each returning 0 or an
 * error (a negative errno by convention; any non-zero int counts). Wait
 * waits for all of them and returns the first error. A group made with
 * gs_errgroup_with_context() also gives a context derived from the
 * parent that is cancelled, with the first error as its cause, when a
 * call fails or when Wait returns. SetLimit bounds how many calls run at
 * once: Go blocks until one slot frees, TryGo refuses (-EAGAIN).
 */
typedef struct gs_errgroup gs_errgroup;

/** gs_errgroup_create() - a Group (no context). Return: 0, -ENOMEM. */
GS_API int gs_errgroup_create(gs_errgroup **gp);
/**
 * gs_errgroup_with_context() - WithContext: also *@ctxp, a child of
 * @parent, which the caller releases (gs_ctx_release()) when done.
 */
GS_API int gs_errgroup_with_context(gs_ctx *parent, gs_errgroup **gp,
				    gs_ctx **ctxp);
/**
 * gs_errgroup_go() - Go: run @fn(@arg) on a new thread, after waiting for
 * a slot if a limit is set. Return: 0; -EINVAL (no @fn); -EAGAIN or
 * -ENOMEM (no thread could be started: @fn does not run).
 */
GS_API int gs_errgroup_go(gs_errgroup *g, int (*fn)(void *arg), void *arg);
/** gs_errgroup_try_go() - TryGo: as Go, but -EAGAIN at once if no slot is free. */
GS_API int gs_errgroup_try_go(gs_errgroup *g, int (*fn)(void *arg),
			      void *arg);
/**
 * gs_errgroup_set_limit() - SetLimit: at most @n calls at once; a
 * negative @n means no limit. Return: 0, or -EBUSY while calls are
 * running (Go panics), changing nothing.
 */
GS_API int gs_errgroup_set_limit(gs_errgroup *g, int n);
/** gs_errgroup_wait() - Wait: 0 or the first error. The group is then reusable. */
GS_API int gs_errgroup_wait(gs_errgroup *g);
/** gs_errgroup_destroy() - free a group whose calls have all returned (NULL allowed). */
GS_API void gs_errgroup_destroy(gs_errgroup *g);

/* ------------------------------------------------------------------ */
/* SingleFlight (golang.org/x/sync/singleflight).                       */
/*
 * Duplicate suppression: while a call for a key is in flight, callers of
 * the same key wait for it and share its result instead of calling again.
 * Keys are NUL-terminated strings (copied); values are opaque pointers
 * that the group never dereferences or frees. Within one process.
 */
typedef struct gs_singleflight gs_singleflight;

/* What DoChan delivers: the value, the error, and whether it was shared. */
struct gs_flight_result {
	void *value;
	int err;
	bool shared;
};

GS_API int gs_singleflight_create(gs_singleflight **gp);
GS_API void gs_singleflight_destroy(gs_singleflight *g);
/**
 * gs_singleflight_do() - Do: run @fn(@arg, &value) for @key unless a call
 * for @key is in flight, in which case wait for it. *@value gets the
 * value, *@shared (if not NULL) whether more than one caller got it.
 * Return: @fn's error (0 or non-zero), or -EINVAL, -ENOMEM.
 */
GS_API int gs_singleflight_do(gs_singleflight *g, const char *key,
			      int (*fn)(void *arg, void **value), void *arg,
			      void **value, bool *shared);
/**
 * gs_singleflight_do_chan() - DoChan: as Do, but at once, with *@resultp
 * a new channel (capacity 1, elements struct gs_flight_result) that
 * receives the result; the caller destroys it. The call runs on its own
 * thread if it is not in flight already. Return: 0, -EINVAL, -ENOMEM.
 */
GS_API int gs_singleflight_do_chan(gs_singleflight *g, const char *key,
				   int (*fn)(void *arg, void **value),
				   void *arg, gs_chan **resultp);
/** gs_singleflight_forget() - Forget: later calls for @key do not wait for the one in flight. */
GS_API void gs_singleflight_forget(gs_singleflight *g, const char *key);

/* ------------------------------------------------------------------ */
/* Map (sync.Map) and Pool (sync.Pool): process-local, no kernel.      */
/*
 * gs_map is Go's sync.Map on liburcu's lock-free resizable RCU hash
 * table: Load never blocks and never waits for writers; updates are
 * lock-free. It needs no /dev/gosync and no thread registration.
 *
 * Keys are byte strings (@key, @keylen), copied into the map; @keylen may
 * be 0, @key must not be NULL (-EINVAL). Keys are equal when they have
 * the same length and bytes.
 *
 * Values are opaque pointers (NULL is a value like any other), compared
 * by identity, never dereferenced and never freed by the map: the caller
 * owns what they point to. Load returns the pointer that was stored and
 * says nothing about whether the object is still alive: that is the
 * program's protocol. For values that are freed while the map is in use,
 * use RCU: read with Load (and use the value) between gs_map_read_lock()
 * and gs_map_read_unlock(); free a value that your call removed from the
 * map (Swap's previous value, LoadAndDelete's, or @old after a successful
 * CompareAndSwap or CompareAndDelete) only after gs_map_synchronize().
 * The map frees its own memory (a node per entry) after a grace period.
 *
 * Return values: a call that reports a flag returns it (1 true, 0 false);
 * errors are negative: -EINVAL (NULL map or key), -ENOMEM. Output
 * pointers may be NULL when the caller does not want the value; they
 * receive NULL when there is no value to report.
 *
 * Range, Clear and Len do not see a consistent snapshot (as in Go): an
 * entry present and unchanged for the whole call is visited (cleared,
 * counted) exactly once; one stored or deleted meanwhile may or may not
 * be. A Range callback runs in an RCU read-side section: it may call any
 * gs_map function on any map except gs_map_destroy() and
 * gs_map_synchronize(); the key it gets is valid during the call only.
 *
 * gs_map_destroy() must not run concurrently with any other use of the
 * map; it waits for the map's memory to be freed (an RCU barrier), so it
 * must not be called in a read-side section or a Range callback either.
 */
typedef struct gs_map gs_map;

/** gs_map_create() - an empty map. Return: 0, -EINVAL, -ENOMEM. */
GS_API int gs_map_create(gs_map **mp);
/** gs_map_destroy() - free the map and its keys (not the values). */
GS_API void gs_map_destroy(gs_map *m);

/** gs_map_load() - Load: 1 and *@valuep if present, else 0 (*@valuep = NULL). */
GS_API int gs_map_load(gs_map *m, const void *key, size_t keylen,
		       void **valuep);
/** gs_map_store() - Store: set @key's value. Return: 0, -EINVAL, -ENOMEM. */
GS_API int gs_map_store(gs_map *m, const void *key, size_t keylen,
			void *value);
/**
 * gs_map_load_or_store() - LoadOrStore: if @key is present, 1 and its
 * value in *@actualp; else store @value, 0 and *@actualp = @value.
 */
GS_API int gs_map_load_or_store(gs_map *m, const void *key, size_t keylen,
				void *value, void **actualp);
/** gs_map_load_and_delete() - LoadAndDelete: 1 and the value if it was present. */
GS_API int gs_map_load_and_delete(gs_map *m, const void *key, size_t keylen,
				  void **valuep);
/** gs_map_delete() - Delete: 1 if @key was present (and is deleted), else 0. */
GS_API int gs_map_delete(gs_map *m, const void *key, size_t keylen);
/**
 * gs_map_swap() - Swap: store @value; 1 and the previous value in
 * *@previousp if @key was present, else 0. Also -ENOMEM.
 */
GS_API int gs_map_swap(gs_map *m, const void *key, size_t keylen,
		       void *value, void **previousp);
/**
 * gs_map_compare_and_swap() - CompareAndSwap: if @key is present with
 * value @old (pointer identity), store @new_value and return 1; else 0.
 */
GS_API int gs_map_compare_and_swap(gs_map *m, const void *key, size_t keylen,
				   void *old, void *new_value);
/** gs_map_compare_and_delete() - CompareAndDelete: delete if the value is @old; 1 if it did. */
GS_API int gs_map_compare_and_delete(gs_map *m, const void *key,
				     size_t keylen, void *old);
/**
 * gs_map_range() - Range: call @fn for each entry until it returns
 * false. Return: 0, -EINVAL (NULL map or @fn).
 */
GS_API int gs_map_range(gs_map *m,
			bool (*fn)(const void *key, size_t keylen, void *value,
				   void *arg),
			void *arg);
/** gs_map_clear() - Clear: delete every entry. Return: 0, -EINVAL. */
GS_API int gs_map_clear(gs_map *m);
/** gs_map_len() - the number of entries, counted (O(n), not a snapshot). */
GS_API size_t gs_map_len(gs_map *m);

/*
 * The RCU read side that protects values loaded from a map (see above).
 * Sections nest; they never block writers; keep them short, since a
 * long section delays every map's memory reclamation.
 */
GS_API void gs_map_read_lock(void);
GS_API void gs_map_read_unlock(void);
/** gs_map_synchronize() - wait until every read-side section begun earlier has ended. */
GS_API void gs_map_synchronize(void);

/*
 * gs_pool is Go's sync.Pool: a cache of interchangeable objects. Each
 * thread has a private cache per pool (up to GS_POOL_CACHE_MAX objects),
 * so Get and Put usually touch nothing shared; behind them a pool keeps a
 * shared stack of up to GS_POOL_SHARED_MAX. A pool holds at most
 * GS_POOL_SHARED_MAX + GS_POOL_CACHE_MAX * (threads that used it) idle
 * objects; a Put beyond that frees the object with free_fn. When a
 * thread exits, its caches move to the shared stacks.
 *
 * new_fn (may be NULL) makes an object when the pool is empty, called
 * with no lock held. free_fn (may be NULL: then objects are dropped
 * without being freed) frees one; it is called with the pool's locks
 * held and must not call gs_pool functions. Both get the @arg given to
 * gs_pool_create(). gs_pool_destroy() frees every idle object, including
 * those in other threads' caches; no thread may use the pool during or
 * after it. An object must not be Put while anyone still uses it.
 */
#define GS_POOL_CACHE_MAX	16
#define GS_POOL_SHARED_MAX	256

typedef struct gs_pool gs_pool;

/** gs_pool_create() - Return: 0, -EINVAL (NULL @pp), -ENOMEM. */
GS_API int gs_pool_create(gs_pool **pp, void *(*new_fn)(void *arg),
			  void *arg, void (*free_fn)(void *obj, void *arg));
GS_API void gs_pool_destroy(gs_pool *p);
/**
 * gs_pool_get() - Get: an idle object (the one this thread put last, if
 * any), else new_fn(arg); NULL if the pool is empty and has no new_fn
 * (or new_fn returned NULL, or @p is NULL).
 */
GS_API void *gs_pool_get(gs_pool *p);
/** gs_pool_put() - Put: give @obj back (NULL is ignored, as Go's Put(nil)). */
GS_API void gs_pool_put(gs_pool *p, void *obj);

/*
 * Named objects (GOSYNC_FEATURE_NAMES), POSIX-IPC style: unrelated
 * processes of one IPC namespace meet by a name such as "/jobs".
 *
 * gs_X_open(&x, name, oflag, mode, create parameters...) opens the object
 * called @name, or creates it with GS_O_CREAT (then @mode & ~umask are its
 * permission bits, and it is owned by the caller's fsuid/fsgid); the
 * create parameters apply only on creation. @oflag: GS_O_CREAT, GS_O_EXCL
 * and the access: GS_O_RDWR (0, the default: unlike open(2)), GS_O_RDONLY
 * or GS_O_WRONLY. Errors: -EEXIST (GS_O_CREAT | GS_O_EXCL, name taken),
 * -ENOENT (no such name, no GS_O_CREAT), -EINVAL (a name that is not "/"
 * followed by at least one byte and no other "/", bad flags, mode above
 * 0777), -ENAMETOOLONG (beyond GOSYNC_NAME_MAX bytes), -EACCES (the mode
 * does not grant the access), -ENOTTY (the name is an object of another
 * type: another family, or Mutex vs WaitGroup...), -EINVAL (a channel of
 * another element size), -ENOSPC (the namespace's max_names reached).
 *
 * Access: a channel opened GS_O_RDONLY can receive (and watch for close
 * in select or as a context's Done), GS_O_WRONLY can send and close; both
 * work through the kernel (no shared ring). Every other family needs
 * GS_O_RDWR to be used (GS_O_RDONLY: -EACCES from the open of a sync
 * primitive, whose page is mapped; a semaphore opened so can only report
 * its status). An operation the access does not allow returns -EBADF.
 *
 * The object lives while its name or any handle (fd) refers to it;
 * gs_unlink() removes the name (-ENOENT, -EPERM unless the caller owns
 * it or has CAP_FOWNER), existing handles keep working, and the name can
 * be created again as a new object. The handle's fd (gs_X_fd()) takes
 * gs_name_stat(), gs_name_chmod() and gs_name_chown() (uid/gid -1:
 * unchanged), allowed to the owner or CAP_FOWNER (-EPERM otherwise).
 */
#define GS_O_RDWR	0
#define GS_O_RDONLY	(1 << 0)
#define GS_O_WRONLY	(1 << 1)
#define GS_O_CREAT	(1 << 2)
#define GS_O_EXCL	(1 << 3)

GS_API int gs_chan_open(gs_chan **chp, const char *name, int oflag,
			unsigned int mode, size_t elem_size, uint32_t capacity);
GS_API int gs_sem_open(gs_sem **semp, const char *name, int oflag,
		       unsigned int mode, uint64_t size);
GS_API int gs_mutex_open(gs_mutex **mp, const char *name, int oflag,
			 unsigned int mode);
GS_API int gs_rwmutex_open(gs_rwmutex **rwp, const char *name, int oflag,
			   unsigned int mode);
GS_API int gs_waitgroup_open(gs_waitgroup **wgp, const char *name, int oflag,
			     unsigned int mode);
GS_API int gs_once_open(gs_once **op, const char *name, int oflag,
			unsigned int mode);
GS_API int gs_cond_open(gs_cond **cp, const char *name, int oflag,
			unsigned int mode);
/* @parties applies on creation (1 to 2^31 - 1); no action is set. */
GS_API int gs_barrier_open(gs_barrier **bp, const char *name, int oflag,
			   unsigned int mode, uint32_t parties);
GS_API int gs_unlink(const char *name);
GS_API int gs_name_stat(int fd, struct gosync_name_stat *st);
GS_API int gs_name_chmod(int fd, unsigned int mode);
GS_API int gs_name_chown(int fd, uint32_t uid, uint32_t gid);

#ifdef __cplusplus
}
#endif

#endif /* GOSYNC_H */
