// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Mutex and RWMutex, gosync against process-shared pthread locks:
 *   uncontended   lock+unlock on one thread, ns per pair, beside a bare
 *                 compare-and-swap pair (the floor of any atomic lock)
 *                 and the other fast paths (semaphore acquire+release,
 *                 buffered channel send+receive of 8 bytes), and Cond
 *                 Signal and Broadcast with nobody waiting (no system
 *                 call: checked by the lot's counters after the run)
 *   parties       WaitGroup add+done plainly and as a share the kernel
 *                 undoes at death, and a one-party barrier's await (an
 *                 arrival in the kernel) beside pthread_barrier_wait
 *   contended     2 and 4 processes each incrementing a shared counter
 *                 under the lock; ns per critical section (wall time over
 *                 all increments), the counter checked after each run
 * Compare rows only within one run.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/ioctl.h>

#include "bench.h"

struct shared {
	pthread_mutex_t mutex;
	pthread_rwlock_t rwlock;
	_Atomic uint64_t word;
	long counter;
	gs_mutex *gm;
	gs_rwmutex *grw;
	gs_sem *sem;
	gs_chan *ch;
	gs_cond *cond;
	pthread_cond_t pcond;
	gs_waitgroup *wg;
	gs_barrier *barrier;
	pthread_barrier_t pbarrier;
};

static int cas_pair(void *ctx)
{
	struct shared *sh = ctx;
	uint64_t expected = 0;

	if (!atomic_compare_exchange_strong(&sh->word, &expected, 1))
		return 1;
	expected = 1;
	return !atomic_compare_exchange_strong(&sh->word, &expected, 0);
}

static int gs_mutex_pair(void *ctx)
{
	struct shared *sh = ctx;

	return gs_mutex_lock(sh->gm) || gs_mutex_unlock(sh->gm);
}

static int pthread_mutex_pair(void *ctx)
{
	struct shared *sh = ctx;

	return pthread_mutex_lock(&sh->mutex) ||
	       pthread_mutex_unlock(&sh->mutex);
}

static int gs_rlock_pair(void *ctx)
{
	struct shared *sh = ctx;

	return gs_rwmutex_rlock(sh->grw) || gs_rwmutex_runlock(sh->grw);
}

static int pthread_rdlock_pair(void *ctx)
{
	struct shared *sh = ctx;

	return pthread_rwlock_rdlock(&sh->rwlock) ||
	       pthread_rwlock_unlock(&sh->rwlock);
}

static int gs_wlock_pair(void *ctx)
{
	struct shared *sh = ctx;

	return gs_rwmutex_lock(sh->grw) || gs_rwmutex_unlock(sh->grw);
}

static int gs_sem_pair(void *ctx)
{
	struct shared *sh = ctx;

	return gs_sem_acquire(sh->sem, 1) || gs_sem_release(sh->sem, 1);
}

static int gs_chan_pair(void *ctx)
{
	struct shared *sh = ctx;
	uint64_t v = 7;

	return gs_chan_send(sh->ch, &v) || gs_chan_recv(sh->ch, &v) != 1;
}

static int gs_signal(void *ctx)
{
	struct shared *sh = ctx;

	gs_cond_signal(sh->cond);
	return 0;
}

static int gs_broadcast(void *ctx)
{
	struct shared *sh = ctx;

	gs_cond_broadcast(sh->cond);
	return 0;
}

static int pthread_signal(void *ctx)
{
	struct shared *sh = ctx;

	return pthread_cond_signal(&sh->pcond);
}

static int pthread_broadcast(void *ctx)
{
	struct shared *sh = ctx;

	return pthread_cond_broadcast(&sh->pcond);
}

static int gs_wg_pair(void *ctx)
{
	struct shared *sh = ctx;

	return gs_waitgroup_add(sh->wg, 1) || gs_waitgroup_done(sh->wg);
}

/* The same, as the caller's share (the kernel undoes it at death). */
static int gs_wg_undo_pair(void *ctx)
{
	struct shared *sh = ctx;

	return gs_waitgroup_add_undo(sh->wg, 1) ||
	       gs_waitgroup_done_undo(sh->wg);
}

/* A barrier of one party: every await is the last arrival. */
static int gs_barrier_one(void *ctx)
{
	struct shared *sh = ctx;

	return gs_barrier_await(sh->barrier);
}

static int pthread_barrier_one(void *ctx)
{
	struct shared *sh = ctx;
	int ret = pthread_barrier_wait(&sh->pbarrier);

	return ret && ret != PTHREAD_BARRIER_SERIAL_THREAD;
}

static int gs_mutex_increment(void *ctx)
{
	struct shared *sh = ctx;

	if (gs_mutex_lock(sh->gm))
		return 1;
	sh->counter++;
	return gs_mutex_unlock(sh->gm);
}

static int pthread_mutex_increment(void *ctx)
{
	struct shared *sh = ctx;

	if (pthread_mutex_lock(&sh->mutex))
		return 1;
	sh->counter++;
	return pthread_mutex_unlock(&sh->mutex);
}

/* Every increment counted once; reset for the next repetition. */
static int counter_check(void *ctx, long calls)
{
	struct shared *sh = ctx;
	int lost = sh->counter != calls;

	if (lost)
		fprintf(stderr, "counter %ld, expected %ld\n", sh->counter,
			calls);
	sh->counter = 0;
	return lost;
}

int main(void)
{
	long iters = 1000000, contended_iters = 20000;
	pthread_mutexattr_t mattr;
	pthread_rwlockattr_t rwattr;
	pthread_barrierattr_t battr;
	pthread_condattr_t cattr;
	struct gosync_lot_status st;
	struct shared *sh;
	char name[64];
	int err;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	err = gs_mutex_create(&sh->gm);
	if (!err)
		err = gs_rwmutex_create(&sh->grw);
	if (!err)
		err = gs_sem_create(&sh->sem, 1);
	if (!err)
		err = gs_chan_make(&sh->ch, sizeof(uint64_t), 64);
	if (!err)
		err = gs_cond_create(&sh->cond);
	if (!err)
		err = gs_waitgroup_create(&sh->wg);
	if (!err)
		err = gs_barrier_create(&sh->barrier, 1, NULL, NULL);
	if (err) {
		fprintf(stderr, "gosync: %s\n%s\n", gs_strerror(err),
			gs_init_error());
		return 1;
	}
	pthread_mutexattr_init(&mattr);
	pthread_mutexattr_setpshared(&mattr, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&sh->mutex, &mattr);
	pthread_rwlockattr_init(&rwattr);
	pthread_rwlockattr_setpshared(&rwattr, PTHREAD_PROCESS_SHARED);
	pthread_rwlock_init(&sh->rwlock, &rwattr);
	pthread_condattr_init(&cattr);
	pthread_condattr_setpshared(&cattr, PTHREAD_PROCESS_SHARED);
	pthread_cond_init(&sh->pcond, &cattr);
	pthread_barrierattr_init(&battr);
	pthread_barrierattr_setpshared(&battr, PTHREAD_PROCESS_SHARED);
	pthread_barrier_init(&sh->pbarrier, &battr, 1);

	printf("\nUncontended fast paths, ns per pair (%d reps of %ld)\n\n",
	       REPS, iters);
	print_header("pair");
	measure("bare CAS pair (floor)", cas_pair, sh, iters);
	measure("gosync Mutex", gs_mutex_pair, sh, iters);
	measure("pthread_mutex (pshared)", pthread_mutex_pair, sh, iters);
	measure("gosync RWMutex read", gs_rlock_pair, sh, iters);
	measure("pthread_rwlock read (pshared)", pthread_rdlock_pair, sh,
		iters);
	measure("gosync RWMutex write", gs_wlock_pair, sh, iters);
	measure("gosync semaphore acquire+release", gs_sem_pair, sh, iters);
	measure("gosync chan cap 64 send+recv 8 B", gs_chan_pair, sh, iters);
	measure("gosync Cond Signal (no waiter)", gs_signal, sh, iters);
	measure("gosync Cond Broadcast (no waiter)", gs_broadcast, sh, iters);
	measure("pthread cond signal (pshared)", pthread_signal,
		sh, iters);
	measure("pthread cond broadcast (pshared)",
		pthread_broadcast, sh, iters);
	if (ioctl(gs_cond_fd(sh->cond), GOSYNC_IOC_LOT_STATUS, &st) ||
	    st.parks || st.unparks) {
		fprintf(stderr, "Cond without waiters entered the kernel: %llu parks, %llu notifies\n",
			(unsigned long long)st.parks,
			(unsigned long long)st.unparks);
		return 1;
	}

	/*
	 * What a party that may die costs: the WaitGroup's _undo forms and
	 * every barrier await enter the kernel (GOSYNC_FEATURE_LOT_PARTIES).
	 */
	printf("\nParties that may die, ns per pair or await (%d reps of %ld)\n\n",
	       REPS, iters / 10);
	print_header("pair");
	measure("gosync WaitGroup add+done", gs_wg_pair, sh, iters / 10);
	measure("gosync WaitGroup add_undo+done_undo", gs_wg_undo_pair, sh,
		iters / 10);
	measure("gosync barrier await, 1 party", gs_barrier_one, sh,
		iters / 10);
	measure("pthread_barrier_wait, 1 party (pshared)",
		pthread_barrier_one, sh, iters / 10);

	printf("\nContended: P processes increment one counter under the lock, ns per increment (5 reps of %ld per process)\n\n",
	       contended_iters);
	print_header("lock, processes");
	for (int nproc = 2; nproc <= 4; nproc *= 2) {
		snprintf(name, sizeof(name), "gosync Mutex, %d", nproc);
		measure_procs(name, gs_mutex_increment, sh, nproc,
			      contended_iters, 5, counter_check);
		snprintf(name, sizeof(name), "pthread_mutex (pshared), %d",
			 nproc);
		measure_procs(name, pthread_mutex_increment, sh, nproc,
			      contended_iters, 5, counter_check);
	}
	gs_mutex_destroy(sh->gm);
	gs_rwmutex_destroy(sh->grw);
	gs_sem_destroy(sh->sem);
	gs_chan_destroy(sh->ch);
	gs_cond_destroy(sh->cond);
	gs_waitgroup_destroy(sh->wg);
	gs_barrier_destroy(sh->barrier);
	return 0;
}
