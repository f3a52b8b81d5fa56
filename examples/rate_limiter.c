// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Rate limiting with a ticker, as in Go by Example's "Rate Limiting":
 *
 *  1. a plain limiter: each request waits for the next tick of a ticker
 *     (gs_tick()), so requests are served at most one per period;
 *  2. a bursty limiter: a buffered channel of BURST tokens, full at the
 *     start, which a thread refills from the ticker. Up to BURST requests
 *     go through at once, the rest at one per tick; while no request
 *     comes, the tokens pile up again (at most BURST of them), so a later
 *     burst goes through at once too. The refilling thread stops when
 *     its context is cancelled.
 *
 * A ticker's values are the times it fired (CLOCK_MONOTONIC ns), so the
 * program can check that no request was served before its token existed.
 * It checks the rates against generous bounds (QEMU TCG timing is
 * noisy): never faster than the limit allows, never absurdly slower.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gosync.h"

#define MS		1000000ULL
#define PERIOD		(10 * MS)
#define PLAIN_REQUESTS	20
#define REQUESTS	50
#define BURST		5
/* A wait that must end (a tick, a token): its expiry is a hang. */
#define WATCHDOG	(60000 * MS)

static int failed;

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			printf("  CHECK FAILED: " __VA_ARGS__);		\
			printf("\n");					\
			failed = 1;					\
		}							\
	} while (0)

/* make(chan int, n) holding 1..n, closed: the requests of Go's example. */
static gs_chan *requests(int n)
{
	gs_chan *ch;

	if (gs_chan_make(&ch, sizeof(int), n))
		return NULL;
	for (int i = 1; i <= n; i++)
		if (gs_chan_send(ch, &i))
			return NULL;
	gs_chan_close(ch);
	return ch;
}

static void plain(void)
{
	gs_chan *reqs = requests(PLAIN_REQUESTS), *ticker;
	uint64_t start, first = 0, last = 0, tick;
	int req, served = 0, err;

	printf("plain limiter: %d requests, one per tick of %llu ms\n",
	       PLAIN_REQUESTS, PERIOD / MS);
	start = gs_now();
	err = gs_tick(&ticker, PERIOD);
	if (!reqs || err) {
		printf("  setup failed\n");
		failed = 1;
		return;
	}
	while (gs_chan_recv(reqs, &req) == 1) {
		err = gs_chan_recv_until(ticker, &tick, gs_deadline_in(WATCHDOG), 0);
		if (err != 1) {
			printf("  no tick: %s\n", gs_strerror(err));
			failed = 1;
			break;
		}
		last = gs_now();
		CHECK(last >= tick, "request %d served before its tick", req);
		if (!served++)
			first = last;
	}
	printf("  tick stopped by gs_timer_stop: %d\n", gs_timer_stop(ticker));
	gs_chan_destroy(ticker);
	gs_chan_destroy(reqs);

	double total = (last - start) / 1e6;
	double expect = PLAIN_REQUESTS * PERIOD / 1e6;

	printf("  %d served in %.1f ms (at least %.0f ms expected), first "
	       "after %.1f ms; %.1f requests/s (limit %.0f/s)\n", served,
	       total, expect, (first - start) / 1e6,
	       (served - 1) / ((last - first) / 1e9), 1e9 / PERIOD);
	/*
	 * Never faster than the limit. How much slower it is depends on the
	 * machine only (a slow one drops ticks): nothing to check.
	 */
	CHECK(served == PLAIN_REQUESTS, "served %d", served);
	CHECK(total >= expect - 1, "too fast: %.1f ms", total);
}

struct filler {
	gs_chan *ticker, *tokens;
	gs_ctx *ctx;
	int ticks, err;
};

/* go func() { for t := range ticker.C { burstyLimiter <- t } }() */
static void refill(void *arg)
{
	struct filler *f = arg;
	uint64_t t;
	int ret;

	for (;;) {
		ret = gs_chan_recv_ctx(f->ticker, &t, f->ctx);
		if (ret != 1)
			break;
		ret = gs_chan_send_ctx(f->tokens, &t, f->ctx);
		if (ret)
			break;
		f->ticks++;
	}
	f->err = ret;
}

/* Serve @n requests from @reqs; token and service times in the arrays. */
static int serve(gs_chan *reqs, gs_chan *tokens, uint64_t *token,
		 uint64_t *at, int n)
{
	int req, served = 0, err;

	while (served < n && gs_chan_recv(reqs, &req) == 1) {
		err = gs_chan_recv_until(tokens, &token[served],
					 gs_deadline_in(WATCHDOG), 0);
		if (err != 1) {
			printf("  no token: %s\n", gs_strerror(err));
			failed = 1;
			break;
		}
		at[served++] = gs_now();
	}
	return served;
}

static void bursty(void)
{
	uint64_t token[REQUESTS + BURST], at[REQUESTS + BURST];
	struct filler f = { 0 };
	gs_chan *reqs = requests(REQUESTS + BURST);
	gs_waitgroup *wg;
	uint64_t start, begun, later;
	int served, again, err;

	printf("bursty limiter: %d requests, bursts of up to %d, then one per "
	       "tick of %llu ms\n", REQUESTS, BURST, PERIOD / MS);
	err = gs_chan_make(&f.tokens, sizeof(uint64_t), BURST);
	if (!err)
		err = gs_ctx_with_cancel(gs_ctx_background(), &f.ctx);
	if (!err)
		err = gs_waitgroup_create(&wg);
	for (uint64_t zero = 0, i = 0; !err && i < BURST; i++)
		err = gs_chan_send(f.tokens, &zero);	/* the first burst */
	start = gs_now();
	if (!err)
		err = gs_tick(&f.ticker, PERIOD);
	if (!err)
		err = gs_waitgroup_go(wg, refill, &f);
	if (!reqs || err) {
		printf("  setup failed: %s\n", gs_strerror(err));
		failed = 1;
		return;
	}

	begun = gs_now();
	served = serve(reqs, f.tokens, token, at, REQUESTS);
	CHECK(served == REQUESTS, "served %d", served);
	for (int i = 0; i < served; i++) {
		if (i < BURST)
			CHECK(token[i] == 0, "request %d took a tick, not the "
			      "initial burst", i + 1);
		else
			CHECK(token[i] >= start + (uint64_t)(i - BURST + 1) * PERIOD
			      && at[i] >= token[i] && token[i] > token[i - 1],
			      "request %d: token at %.1f ms, served at %.1f ms",
			      i + 1, (token[i] - start) / 1e6,
			      (at[i] - start) / 1e6);
	}
	double burst = (at[BURST - 1] - begun) / 1e6;
	double total = (at[served - 1] - start) / 1e6;
	double expect = (REQUESTS - BURST) * PERIOD / 1e6;
	/* The requests beyond the burst over the whole time: the limit. */
	double rate = (served - BURST) / ((at[served - 1] - start) / 1e9);

	printf("  first %d served in %.2f ms (the burst); all %d in %.1f ms "
	       "(at least %.0f ms expected)\n", BURST, burst, served, total,
	       expect);
	printf("  beyond the burst: %.1f requests/s (limit %.0f/s)\n", rate,
	       1e9 / PERIOD);
	CHECK(total >= expect - 1, "too fast: %.1f ms", total);
	CHECK(rate <= 1e9 / PERIOD * 1.001, "rate %.1f/s above the limit", rate);

	/*
	 * Idle: the tokens pile up again (waited for, however slowly the
	 * refill runs), then 10 more ticks add none: BURST at most.
	 */
	struct timespec idle = { 0, 10 * PERIOD };
	uint64_t t_idle = gs_now();

	while (gs_chan_len(f.tokens) < BURST && gs_now() - t_idle < WATCHDOG)
		nanosleep(&(struct timespec){ 0, PERIOD }, NULL);
	nanosleep(&idle, NULL);
	printf("  idle for %.0f ms: %d tokens buffered (at most %d)\n",
	       (gs_now() - t_idle) / 1e6, gs_chan_len(f.tokens), BURST);
	CHECK(gs_chan_len(f.tokens) == BURST, "%d tokens after idling",
	      gs_chan_len(f.tokens));
	later = gs_now();
	again = serve(reqs, f.tokens, token, at, BURST);
	printf("  another burst of %d served in %.2f ms, from tokens %.1f to "
	       "%.1f ms old\n", again, (at[again - 1] - later) / 1e6,
	       (later - token[again - 1]) / 1e6, (later - token[0]) / 1e6);
	CHECK(again == BURST, "served %d", again);
	for (int i = 0; i < again; i++)
		CHECK(token[i] < later, "token %d is newer than the burst", i);

	/* Stop the refilling thread, then the ticker. */
	gs_ctx_cancel(f.ctx);
	err = gs_waitgroup_wait_until(wg, gs_deadline_in(WATCHDOG), 0);
	CHECK(!err, "refill thread still running: %s", gs_strerror(err));
	if (err)
		return;
	printf("  refill thread: %d ticks passed on, then %s\n", f.ticks,
	       gs_strerror(f.err));
	CHECK(f.err == -ECANCELED, "refill ended with %d", f.err);
	gs_timer_stop(f.ticker);
	gs_chan_destroy(f.ticker);
	gs_chan_destroy(f.tokens);
	gs_chan_destroy(reqs);
	gs_waitgroup_destroy(wg);
	gs_ctx_release(f.ctx);
}

int main(void)
{
	int err;

	alarm(600);	/* a watchdog (a hang), not a time it should take */
	setvbuf(stdout, NULL, _IOLBF, 0);
	err = gs_init();
	if (err) {
		fprintf(stderr, "%s\n", gs_init_error());
		return 1;
	}
	plain();
	bursty();
	printf("rate_limiter: %s\n", failed ? "FAILED" : "ok");
	return failed;
}
