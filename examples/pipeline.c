// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A pipeline with fan-out, fan-in and cancellation (Go's "Pipelines and
 * cancellation" blog post, with gosync's channel patterns):
 *
 *	generator --nums--> gs_stage "A" (3 workers: n*n) --sqA--+
 *	              \                                        gs_merge --out--> consumer (sum)
 *	               `--> gs_stage "B" (3 workers: n*n) --sqB--+
 *
 * Both stages read the same input channel, so the numbers are shared out
 * between six workers; gs_merge() joins the two outputs. Every thread
 * uses one context, and each helper closes its output when it stops, so
 * a consumer learns that the pipeline is over from the close of "out".
 *
 * Three runs of the same pipeline:
 *  1. to the end: the generator closes "nums", the stages and the merge
 *     drain and close in turn; the sum is checked against n(n+1)(2n+1)/6;
 *  2. the consumer cancels the context after K results: the generator
 *     stops sending, every stage and the merge stop, every channel gets
 *     closed (the consumer's loop ends), Err and Cause are Canceled;
 *  3. the stage function fails on one input (-ERANGE): gs_stage cancels the
 *     context with that cause, and the whole pipeline stops the same way.
 * In each run, the channels are destroyed only once every output is
 * closed and the generator thread has returned.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gosync.h"

#define N		1000
#define WORKERS		3
#define CANCEL_AFTER	50
#define BAD_INPUT	137

struct gen {
	gs_chan *nums;
	gs_ctx *ctx;
	int64_t sent;
	int err;
};

/* The generator: 1..N into nums, until done; then close(nums). */
static void generate(void *arg)
{
	struct gen *g = arg;

	for (int64_t n = 1; n <= N; n++) {
		g->err = gs_chan_send_ctx(g->nums, &n, g->ctx);
		if (g->err)
			break;
		g->sent++;
	}
	gs_chan_close(g->nums);
}

struct stage_arg {
	const char *name;
	atomic_int calls;
	int64_t fail_on;	/* 0: never */
};

static int square(void *arg, const void *in, void *out)
{
	struct stage_arg *s = arg;
	int64_t n = *(const int64_t *)in;

	atomic_fetch_add(&s->calls, 1);
	if (n == s->fail_on) {
		printf("  stage %s: cannot square %" PRId64 ", returning "
		       "-ERANGE\n", s->name, n);
		return -ERANGE;
	}
	*(int64_t *)out = n * n;
	return GS_STAGE_EMIT;
}

/* Receive until @ch is closed; how many values were still in it. */
static int drain(gs_chan *ch, const char *name, int *failed)
{
	int64_t v;
	int ret, left = 0;

	while ((ret = gs_chan_recv_until(ch, &v, gs_deadline_in(60000000000ULL),
					 0)) == 1)
		left++;
	if (ret != 0) {
		printf("  %s: not closed (%s)\n", name, gs_strerror(ret));
		*failed = 1;
	}
	return left;
}

enum mode { TO_THE_END, CONSUMER_CANCELS, STAGE_FAILS };

static int run(enum mode mode)
{
	struct stage_arg a = { .name = "A" }, b = { .name = "B" };
	gs_chan *nums, *sqA, *sqB, *out;
	struct gen gen = { 0 };
	gs_waitgroup *wg;
	gs_ctx *ctx;
	int64_t v, sum = 0, expected = (int64_t)N * (N + 1) * (2 * N + 1) / 6;
	int received = 0, ret, failed = 0, err;

	switch (mode) {
	case TO_THE_END:
		printf("run 1: to the end\n");
		break;
	case CONSUMER_CANCELS:
		printf("run 2: the consumer cancels after %d results\n",
		       CANCEL_AFTER);
		break;
	case STAGE_FAILS:
		/* Both stages share the input: either may get it. */
		a.fail_on = b.fail_on = BAD_INPUT;
		printf("run 3: squaring %d fails\n", BAD_INPUT);
		break;
	}
	err = gs_ctx_with_cancel(gs_ctx_background(), &ctx);
	if (!err)
		err = gs_waitgroup_create(&wg);
	if (!err)
		err = gs_chan_make(&nums, sizeof(int64_t), 8);
	if (!err)
		err = gs_chan_make(&sqA, sizeof(int64_t), 4);
	if (!err)
		err = gs_chan_make(&sqB, sizeof(int64_t), 4);
	if (!err)
		err = gs_chan_make(&out, sizeof(int64_t), 0);
	if (err) {
		fprintf(stderr, "setup: %s\n", gs_strerror(err));
		return 1;
	}
	gen.nums = nums;
	gen.ctx = ctx;

	gs_chan *squares[] = { sqA, sqB };
	uint64_t start = gs_now();

	err = gs_waitgroup_go(wg, generate, &gen);
	if (!err)
		err = gs_stage(ctx, nums, sqA, square, &a, WORKERS);
	if (!err)
		err = gs_stage(ctx, nums, sqB, square, &b, WORKERS);
	if (!err)
		err = gs_merge(ctx, squares, 2, out);
	if (err) {
		fprintf(stderr, "starting the pipeline: %s\n", gs_strerror(err));
		return 1;
	}

	/* The consumer: until "out" is closed. */
	while ((ret = gs_chan_recv_until(out, &v,
					 gs_deadline_in(60000000000ULL), 0)) == 1) {
		sum += v;
		if (++received == CANCEL_AFTER && mode == CONSUMER_CANCELS) {
			printf("  consumer: %d results, cancelling\n", received);
			gs_ctx_cancel(ctx);
		}
	}
	uint64_t elapsed = gs_now() - start;

	if (ret != 0) {
		printf("  consumer: out not closed: %s\n", gs_strerror(ret));
		gs_ctx_cancel(ctx);
		failed = 1;
	}
	printf("  consumer: out closed after %d results (sum %" PRId64
	       ") in %.1f ms\n", received, sum, elapsed / 1e6);

	/* Every stage has stopped: each output is closed (and drained). */
	int leftA = drain(sqA, "sqA", &failed);
	int leftB = drain(sqB, "sqB", &failed);

	err = gs_waitgroup_wait_until(wg, gs_deadline_in(60000000000ULL), 0);
	if (err) {
		printf("  generator still running: %s\n", gs_strerror(err));
		return 1;	/* channels still in use: leak them */
	}
	int leftN = drain(nums, "nums", &failed);

	printf("  generator sent %" PRId64 " numbers (%s); stage A squared %d, "
	       "stage B %d\n", gen.sent, gen.err ? gs_strerror(gen.err) :
	       "all of them", atomic_load(&a.calls), atomic_load(&b.calls));
	printf("  all four channels closed; left unread: nums %d, sqA %d, "
	       "sqB %d\n", leftN, leftA, leftB);
	printf("  ctx: err %d (%s), cause %d (%s)\n", gs_ctx_err(ctx),
	       gs_ctx_err(ctx) ? gs_strerror(gs_ctx_err(ctx)) : "live",
	       gs_ctx_cause(ctx),
	       gs_ctx_cause(ctx) ? gs_strerror(gs_ctx_cause(ctx)) : "none");

	switch (mode) {
	case TO_THE_END:
		if (received != N || sum != expected || gen.sent != N ||
		    gs_ctx_err(ctx) ||
		    atomic_load(&a.calls) + atomic_load(&b.calls) != N)
			failed = 1;
		printf("  sum of squares 1..%d: %" PRId64 " (expected %" PRId64
		       ")\n", N, sum, expected);
		break;
	case CONSUMER_CANCELS:
		if (received < CANCEL_AFTER || received >= N ||
		    gen.sent >= N || gen.err != -ECANCELED ||
		    gs_ctx_err(ctx) != -ECANCELED ||
		    gs_ctx_cause(ctx) != -ECANCELED)
			failed = 1;
		break;
	case STAGE_FAILS:
		if (received >= N || gen.sent >= N ||
		    gen.err != -ECANCELED ||
		    gs_ctx_err(ctx) != -ECANCELED ||
		    gs_ctx_cause(ctx) != -ERANGE)
			failed = 1;
		break;
	}
	gs_ctx_cancel(ctx);	/* Go's defer cancel() */
	gs_ctx_release(ctx);
	gs_waitgroup_destroy(wg);
	gs_chan_destroy(nums);
	gs_chan_destroy(sqA);
	gs_chan_destroy(sqB);
	gs_chan_destroy(out);
	printf("  %s\n", failed ? "FAILED" : "ok");
	return failed;
}

int main(void)
{
	int failed = 0, err;

	alarm(600);	/* a watchdog (a hang), not a time it should take */
	setvbuf(stdout, NULL, _IOLBF, 0);
	err = gs_init();
	if (err) {
		fprintf(stderr, "%s\n", gs_init_error());
		return 1;
	}
	failed |= run(TO_THE_END);
	failed |= run(CONSUMER_CANCELS);
	failed |= run(STAGE_FAILS);
	printf("pipeline: %s\n", failed ? "FAILED" : "ok");
	return failed;
}
