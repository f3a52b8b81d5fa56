// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A worker pool across processes, shut down by a context.
 *
 * The producer makes a buffered jobs channel, a buffered results channel
 * and a cancelable context, then forks WORKERS worker processes, which
 * inherit the three fds. Each worker loops on
 *
 *	select { case <-done: exit; case job := <-jobs: results <- job*job }
 *
 * (its send of the result also selects on done). The producer itself
 * selects between sending the next job (a nil case once all are sent, as
 * Go disables a case with a nil channel) and receiving a result, so that
 * neither side can fill its channel and wait for the other forever. Once
 * every result is in and checked (each job answered once, the squares
 * sum to the expected total), the producer cancels the context: the
 * kernel closes Done in every process at once, each worker leaves its
 * select and exits 0, and the producer reaps them all.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gosync.h"

#define WORKERS		4
#define JOBS		600
#define JOBS_CAP	16
#define RESULTS_CAP	16
/* Watchdogs (a hang): far beyond what the slowest machine takes. */
#define WATCHDOG_S	600
#define WAIT_NS		(60ULL * 1000000000)

struct result {
	int32_t worker;
	int32_t pid;
	int64_t job;
	int64_t square;
};

/* Runs in a forked process: every fd, and the Done channel, inherited. */
static int worker(int id, gs_chan *jobs, gs_chan *results, gs_chan *done)
{
	int64_t job;
	int served = 0;

	alarm(WATCHDOG_S);	/* alarms are not inherited by fork */
	for (;;) {
		gs_case cs[] = {
			gs_case_recv(done, NULL),
			gs_case_recv(jobs, &job),
		};
		int i = gs_select(cs, 2, 0, GS_FOREVER);

		if (i == 0)
			break;			/* the context was cancelled */
		if (i != 1 || !cs[1].ok) {
			fprintf(stderr, "worker %d: select on jobs: %s\n", id,
				i < 0 ? gs_strerror(i) : "jobs closed");
			return 1;
		}
		struct result r = {
			.worker = id, .pid = getpid(),
			.job = job, .square = job * job,
		};
		gs_case out[] = {
			gs_case_recv(done, NULL),
			gs_case_send(results, &r),
		};
		i = gs_select(out, 2, 0, GS_FOREVER);
		if (i == 0)
			break;
		if (i != 1) {
			fprintf(stderr, "worker %d: send result: %s\n", id,
				gs_strerror(i));
			return 1;
		}
		served++;
	}
	printf("  worker %d (pid %d): Done closed, leaving after %d jobs\n",
	       id, getpid(), served);
	return 0;
}

int main(void)
{
	gs_chan *jobs, *results, *done;
	int per_worker[WORKERS] = { 0 };
	pid_t pids[WORKERS];
	static unsigned char seen[JOBS + 1];
	int64_t next = 1, sum = 0, expected = 0;
	int received = 0, failed = 0, err;
	gs_ctx *ctx;

	alarm(WATCHDOG_S);
	setvbuf(stdout, NULL, _IOLBF, 0);
	err = gs_init();
	if (err) {
		fprintf(stderr, "%s\n", gs_init_error());
		return 1;
	}
	err = gs_chan_make(&jobs, sizeof(int64_t), JOBS_CAP);
	if (!err)
		err = gs_chan_make(&results, sizeof(struct result), RESULTS_CAP);
	if (!err)
		err = gs_ctx_with_cancel(gs_ctx_background(), &ctx);
	if (err) {
		fprintf(stderr, "setup: %s\n", gs_strerror(err));
		return 1;
	}
	/*
	 * Done is made on first use: make it before forking, so that every
	 * worker inherits the same kernel channel.
	 */
	done = gs_ctx_done(ctx);
	if (!done) {
		fprintf(stderr, "gs_ctx_done failed\n");
		return 1;
	}
	printf("producer (pid %d): %d jobs over a channel of capacity %d, "
	       "%d worker processes\n", getpid(), JOBS, JOBS_CAP, WORKERS);

	fflush(stdout);
	for (int w = 0; w < WORKERS; w++) {
		pids[w] = fork();
		if (pids[w] < 0) {
			perror("fork");
			return 1;
		}
		if (pids[w] == 0) {
			int rc = worker(w, jobs, results, done);

			fflush(stdout);
			_exit(rc);
		}
	}

	uint64_t start = gs_now();

	for (int64_t j = 1; j <= JOBS; j++)
		expected += j * j;
	while (received < JOBS) {
		struct result r;
		gs_case cs[] = {
			/* A nil case once every job is out. */
			gs_case_send(next <= JOBS ? jobs : NULL, &next),
			gs_case_recv(results, &r),
		};
		int i = gs_select(cs, 2, 0, gs_deadline_in(WAIT_NS));

		if (i == 0) {
			next++;
			continue;
		}
		if (i != 1 || !cs[1].ok) {
			fprintf(stderr, "producer: select: %s\n",
				i < 0 ? gs_strerror(i) : "results closed");
			failed = 1;
			break;
		}
		received++;
		if (r.worker < 0 || r.worker >= WORKERS || r.job < 1 ||
		    r.job > JOBS || seen[r.job]++ || r.square != r.job * r.job) {
			fprintf(stderr, "producer: bad result: worker %d job %"
				PRId64 " square %" PRId64 "\n", r.worker, r.job,
				r.square);
			failed = 1;
		} else {
			per_worker[r.worker]++;
			sum += r.square;
		}
	}
	uint64_t elapsed = gs_now() - start;

	printf("producer: %d results in %.1f ms (%.1f us per job), "
	       "sum of squares %" PRId64 " (expected %" PRId64 ")\n",
	       received, elapsed / 1e6, elapsed / 1e3 / JOBS, sum, expected);
	if (sum != expected)
		failed = 1;
	for (int w = 0; w < WORKERS; w++)
		printf("  worker %d (pid %d): %d jobs\n", w, pids[w],
		       per_worker[w]);

	/* Nothing is left to do: cancel, and every worker leaves. */
	printf("producer: cancelling the context\n");
	gs_ctx_cancel(ctx);
	for (int w = 0; w < WORKERS; w++) {
		int status;

		if (waitpid(pids[w], &status, 0) != pids[w]) {
			perror("waitpid");
			failed = 1;
			continue;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			printf("producer: worker %d ended with status %#x\n", w,
			       status);
			failed = 1;
		}
	}
	printf("producer: all %d workers reaped; ctx err: %s\n", WORKERS,
	       gs_strerror(gs_ctx_err(ctx)));
	if (gs_ctx_err(ctx) != -ECANCELED)
		failed = 1;
	if (gs_chan_len(jobs) != 0 || gs_chan_len(results) != 0) {
		printf("producer: channels not empty (jobs %d, results %d)\n",
		       gs_chan_len(jobs), gs_chan_len(results));
		failed = 1;
	}
	gs_ctx_release(ctx);
	gs_chan_destroy(jobs);
	gs_chan_destroy(results);
	printf("worker_pool: %s\n", failed ? "FAILED" : "ok");
	return failed;
}
