// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The H2O factory (the "building H2O" exercise), with two weighted
 * semaphores and a CyclicBarrier.
 *
 * Every atom is a thread (started with gs_waitgroup_go(), Go 1.25's
 * WaitGroup.Go). A hydrogen takes one permit of a semaphore of 2, an
 * oxygen one permit of a semaphore of 1, so at most two hydrogens and one
 * oxygen are bonding at any moment. Then the atom records itself in the
 * molecule being built and waits on a barrier of 3 parties. The barrier's
 * action, run by the last atom to arrive before any of the three leaves,
 * checks the molecule (exactly two H and one O), prints it and counts
 * it; a wrong molecule makes the action fail, which breaks the barrier
 * (every waiter then gets -EPIPE) and the program fails. Once out of the
 * barrier, the atom gives its permit back, letting the next atom of its
 * kind in. The threads start in a shuffled order, so molecules form as
 * HHO, HOH or OHH.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gosync.h"

#define HYDROGENS	40
#define OXYGENS		20
#define ATOMS		(HYDROGENS + OXYGENS)
#define MOLECULES	(OXYGENS)

struct atom {
	char kind;		/* 'H' or 'O' */
	int id;
};

static gs_sem *hydrogen, *oxygen;
static gs_barrier *barrier;
static gs_mutex *bench_lock;		/* protects bench[] and benched */
static struct atom bench[3];		/* the molecule being bonded */
static int benched;
static int molecules, bad_molecules;	/* written by the action only */
static atomic_int failures;
static char shapes[MOLECULES + 8][4];

/* The barrier's action: the three atoms of a round are all benched. */
static int bond(void *arg)
{
	int h = 0, o = 0, n, ret = 0;
	char line[64] = "";

	(void)arg;
	gs_mutex_lock(bench_lock);
	n = benched;
	for (int i = 0; i < n && i < 3; i++) {
		h += bench[i].kind == 'H';
		o += bench[i].kind == 'O';
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 " %c%-2d", bench[i].kind, bench[i].id);
		if (molecules < MOLECULES + 8)
			shapes[molecules][i] = bench[i].kind;
	}
	benched = 0;
	gs_mutex_unlock(bench_lock);

	molecules++;
	if (n != 3 || h != 2 || o != 1) {
		bad_molecules++;
		ret = -EPROTO;	/* breaks the barrier */
	}
	printf("  molecule %2d:%s  %s%s\n", molecules, line,
	       molecules <= MOLECULES + 8 ? shapes[molecules - 1] : "",
	       ret ? "  <-- WRONG" : "");
	return ret;
}

static void atom_main(void *arg)
{
	struct atom *a = arg;
	gs_sem *sem = a->kind == 'H' ? hydrogen : oxygen;
	int err;

	err = gs_sem_acquire(sem, 1);
	if (err) {
		fprintf(stderr, "%c%d: acquire: %s\n", a->kind, a->id,
			gs_strerror(err));
		atomic_fetch_add(&failures, 1);
		return;
	}
	gs_mutex_lock(bench_lock);
	if (benched < 3)
		bench[benched] = *a;
	benched++;
	gs_mutex_unlock(bench_lock);

	err = gs_barrier_await(barrier);
	if (err) {
		fprintf(stderr, "%c%d: barrier: %s\n", a->kind, a->id,
			gs_strerror(err));
		atomic_fetch_add(&failures, 1);
	}
	err = gs_sem_release(sem, 1);
	if (err) {
		fprintf(stderr, "%c%d: release: %s\n", a->kind, a->id,
			gs_strerror(err));
		atomic_fetch_add(&failures, 1);
	}
}

int main(void)
{
	static struct atom atoms[ATOMS];
	struct gosync_sem_status hs, os;
	gs_waitgroup *wg;
	int err, hho = 0, hoh = 0, ohh = 0, failed = 0;

	alarm(600);	/* a watchdog (a hang), not a time it should take */
	setvbuf(stdout, NULL, _IOLBF, 0);
	err = gs_init();
	if (err) {
		fprintf(stderr, "%s\n", gs_init_error());
		return 1;
	}
	err = gs_sem_create(&hydrogen, 2);
	if (!err)
		err = gs_sem_create(&oxygen, 1);
	if (!err)
		err = gs_mutex_create(&bench_lock);
	if (!err)
		err = gs_barrier_create(&barrier, 3, bond, NULL);
	if (!err)
		err = gs_waitgroup_create(&wg);
	if (err) {
		fprintf(stderr, "setup: %s\n", gs_strerror(err));
		return 1;
	}

	/* 40 H and 20 O, started in a shuffled order. */
	for (int i = 0; i < ATOMS; i++)
		atoms[i] = i < HYDROGENS ?
			(struct atom){ 'H', i + 1 } :
			(struct atom){ 'O', i - HYDROGENS + 1 };
	srand((unsigned int)(gs_now() ^ getpid()));
	for (int i = ATOMS - 1; i > 0; i--) {
		int j = rand() % (i + 1);
		struct atom t = atoms[i];

		atoms[i] = atoms[j];
		atoms[j] = t;
	}
	printf("%d hydrogen and %d oxygen threads; H semaphore of %llu, "
	       "O semaphore of %llu, barrier of %u\n", HYDROGENS, OXYGENS,
	       (unsigned long long)gs_sem_size(hydrogen),
	       (unsigned long long)gs_sem_size(oxygen),
	       gs_barrier_parties(barrier));
	for (int i = 0; i < ATOMS; i++) {
		err = gs_waitgroup_go(wg, atom_main, &atoms[i]);
		if (err) {
			fprintf(stderr, "gs_waitgroup_go: %s\n", gs_strerror(err));
			return 1;
		}
	}
	err = gs_waitgroup_wait_until(wg, gs_deadline_in(300ULL * 1000000000), 0);
	if (err) {
		printf("h2o: atoms still waiting after 300 s (%s), %u at the "
		       "barrier\nh2o: FAILED\n", gs_strerror(err),
		       gs_barrier_waiting(barrier));
		return 1;
	}

	for (int m = 0; m < molecules && m < MOLECULES + 8; m++) {
		hho += !strcmp(shapes[m], "HHO");
		hoh += !strcmp(shapes[m], "HOH");
		ohh += !strcmp(shapes[m], "OHH");
	}
	printf("%d molecules (%d HHO, %d HOH, %d OHH), %d wrong; %d atoms "
	       "failed; %d atoms left over\n", molecules, hho, hoh, ohh,
	       bad_molecules, atomic_load(&failures), benched);
	if (molecules != MOLECULES || bad_molecules ||
	    atomic_load(&failures) || benched ||
	    hho + hoh + ohh != MOLECULES || gs_barrier_broken(barrier))
		failed = 1;
	if (!gs_sem_status(hydrogen, &hs) && !gs_sem_status(oxygen, &os)) {
		printf("semaphores afterwards: H %llu/%llu free, O %llu/%llu "
		       "free\n",
		       (unsigned long long)(hs.state & GOSYNC_SEM_COUNT_MASK),
		       (unsigned long long)gs_sem_size(hydrogen),
		       (unsigned long long)(os.state & GOSYNC_SEM_COUNT_MASK),
		       (unsigned long long)gs_sem_size(oxygen));
		if ((hs.state & GOSYNC_SEM_COUNT_MASK) != 2 ||
		    (os.state & GOSYNC_SEM_COUNT_MASK) != 1)
			failed = 1;
	}
	gs_waitgroup_destroy(wg);
	gs_barrier_destroy(barrier);
	gs_mutex_destroy(bench_lock);
	gs_sem_destroy(hydrogen);
	gs_sem_destroy(oxygen);
	printf("h2o: %s\n", failed ? "FAILED" : "ok");
	return failed;
}
