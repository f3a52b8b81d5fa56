// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Mutex and RWMutex, gosync against process-shared pthread locks:
 *   uncontended   lock+unlock on one thread, ns per pair, beside a bare
 *                 compare-and-swap pair (the floor of any atomic lock)
 *                 and the other fast paths (semaphore acquire+release,
 *                 buffered channel send+receive of 8 bytes), and Cond
 *                 Signal and Broadcast with nobody waiting (no system
 *                 call: checked by the lot's counters after the run)
 *   checked       the same Mutex pair on a plain and on a checked Mutex
 *                 (deadlock detection, gs_mutex_create_checked()), timed
 *                 in alternation in one run, and their ratio: checking
 *                 costs nothing until a lock sleeps (no system call:
 *                 checked by the lot's counters); CSV rows "lock-check"
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

/* Lock+unlock of the Mutex @ctx: one loop, for the plain and the checked. */
static int mutex_pair_of(void *ctx)
{
	gs_mutex *m = ctx;

	return gs_mutex_lock(m) || gs_mutex_unlock(m);
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

/* ns per call of @fn over @iters calls (one repetition of measure()). */
static double time_loop(const char *name, bench_fn fn, void *ctx, long iters)
{
	uint64_t t0 = gs_now();

	for (long i = 0; i < iters; i++)
		if (fn(ctx))
			bench_fail(name);
	return (double)(gs_now() - t0) / (double)iters;
}

#define CHECK_REPS	(3 * REPS)

/*
 * Uncontended lock+unlock of a plain and of a checked Mutex, the same
 * loop (mutex_pair_of) on each, in CHECK_REPS repetitions that alternate
 * plain-checked, checked-plain, ... so that the machine's noise and drift
 * hit both alike. Rows: median and best ns per pair of each, and the
 * ratio checked / plain: the median of the per-repetition ratios (each of
 * two adjacent loops) and the ratio of the bests. Returns non-zero if a
 * pair entered the kernel (the lots' park counters) or a Mutex is not
 * what it should be.
 */
static int measure_checked(long iters)
{
	double plain[CHECK_REPS], checked[CHECK_REPS], ratio[CHECK_REPS];
	double plain_med, checked_med, plain_best, checked_best;
	struct gosync_lot_status st[2];
	gs_mutex *m[2];
	int err;

	printf("\nChecked Mutex (deadlock detection) against plain, uncontended lock+unlock,\n"
	       "ns per pair (%d alternating reps of %ld each)\n\n", CHECK_REPS, iters);
	err = gs_mutex_create(&m[0]);
	if (err)
		bench_fail("gs_mutex_create");
	err = gs_mutex_create_checked(&m[1]);
	if (err == -EOPNOTSUPP) {
		printf("(skipped: the module does not check locks)\n");
		gs_mutex_destroy(m[0]);
		return 0;
	}
	if (err)
		bench_fail("gs_mutex_create_checked");
	if (!gs_mutex_checked(m[1])) {
		fprintf(stderr, "gs_mutex_create_checked made an unchecked Mutex\n");
		return 1;
	}
	if (gs_mutex_checked(m[0])) {
		printf("(skipped: every Mutex is checked here: detect_deadlocks or GOSYNC_CHECK_LOCKS)\n");
		gs_mutex_destroy(m[0]);
		gs_mutex_destroy(m[1]);
		return 0;
	}
	for (int k = 0; k < 2; k++)		/* warm-up */
		time_loop("checked warm-up", mutex_pair_of, m[k], iters / 10);
	for (int r = 0; r < CHECK_REPS; r++) {
		if (r % 2) {
			checked[r] = time_loop("checked Mutex", mutex_pair_of,
					       m[1], iters);
			plain[r] = time_loop("plain Mutex", mutex_pair_of,
					     m[0], iters);
		} else {
			plain[r] = time_loop("plain Mutex", mutex_pair_of,
					     m[0], iters);
			checked[r] = time_loop("checked Mutex", mutex_pair_of,
					       m[1], iters);
		}
		ratio[r] = checked[r] / plain[r];
	}
	for (int k = 0; k < 2; k++) {
		if (ioctl(gs_mutex_fd(m[k]), GOSYNC_IOC_LOT_STATUS, &st[k]) ||
		    st[k].parks || st[k].unparks) {
			fprintf(stderr, "uncontended %s Mutex entered the kernel: %llu parks, %llu unparks\n",
				k ? "checked" : "plain",
				(unsigned long long)st[k].parks,
				(unsigned long long)st[k].unparks);
			return 1;
		}
	}
	if (!(st[1].flags & GOSYNC_LOT_CHECKED) ||
	    (st[0].flags & GOSYNC_LOT_CHECKED)) {
		fprintf(stderr, "checked: the lots' flags are %#x (plain), %#x (checked)\n",
			st[0].flags, st[1].flags);
		return 1;
	}
	print_header("pair");
	print_row("gosync Mutex, plain", plain, CHECK_REPS);
	print_row("gosync Mutex, checked", checked, CHECK_REPS);
	/* print_row() sorted them: [0] is the best, the middle the median. */
	plain_med = plain[CHECK_REPS / 2];
	plain_best = plain[0];
	checked_med = checked[CHECK_REPS / 2];
	checked_best = checked[0];
	qsort(ratio, CHECK_REPS, sizeof(ratio[0]), cmp_double);
	printf("| %-34s | %10.3f | %10.3f |\n", "ratio checked / plain", ratio[CHECK_REPS / 2],
	       checked_best / plain_best);
	printf("\nratio: median of the %d per-rep ratios (range %.3f..%.3f); best: of the bests.\n"
	       "Neither Mutex entered the kernel (0 parks): the check runs only when a lock sleeps.\n",
	       CHECK_REPS, ratio[0], ratio[CHECK_REPS - 1]);
	csv_row("lock-check", "gosync Mutex plain", "median", plain_med, "ns");
	csv_row("lock-check", "gosync Mutex plain", "best", plain_best, "ns");
	csv_row("lock-check", "gosync Mutex checked", "median", checked_med, "ns");
	csv_row("lock-check", "gosync Mutex checked", "best", checked_best, "ns");
	csv_row("lock-check", "checked / plain", "ratio", ratio[CHECK_REPS / 2], "x");
	gs_mutex_destroy(m[0]);
	gs_mutex_destroy(m[1]);
	return 0;
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

	if (measure_checked(iters))
		return 1;

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
