// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: channel patterns (fan-in, tee, or-done, pipeline stages).
 *
 * Each helper call makes one struct plumbing shared by the threads it
 * starts. @live counts them, plus one for the starter while it starts
 * them; whoever drops @live to zero (the last thread to stop, or the
 * starter if every thread stopped before it finished starting) closes the
 * outputs and frees the plumbing. So the outputs close exactly once,
 * after every value that will ever be sent to them was sent, and nothing
 * touches a channel after that close. Every receive and send goes
 * through the _ctx forms, so a cancelled context stops every thread at
 * its next blocking step.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "gosync.h"

struct plumbing {
	gs_ctx *ctx;			/* a reference */
	atomic_int live;
	gs_chan *in;			/* tee, or-done, stage */
	gs_chan *out, *out2;		/* closed when @live drops to zero */
	int (*fn)(void *arg, const void *in, void *out);
	void *arg;
};

/* A thread's share: the plumbing, and its own input (merge). */
struct arm {
	struct plumbing *p;
	gs_chan *in;
};

static void plumbing_put(struct plumbing *p)
{
	if (atomic_fetch_sub(&p->live, 1) != 1)
		return;
	gs_chan_close(p->out);
	if (p->out2)
		gs_chan_close(p->out2);
	gs_ctx_release(p->ctx);
	free(p);
}

static void *elem_buf(gs_chan *ch)
{
	size_t size = gs_chan_elem_size(ch);

	return malloc(size ? size : 1);
}

/* Copy values from @in to @out until either ends or the context does. */
static void forward(gs_ctx *ctx, gs_chan *in, gs_chan *out)
{
	void *buf = elem_buf(in);

	while (buf && gs_chan_recv_ctx(in, buf, ctx) > 0 &&
	       !gs_chan_send_ctx(out, buf, ctx))
		;
	free(buf);
}

static void arm_forward(void *a)
{
	struct arm *arm = a;

	forward(arm->p->ctx, arm->in, arm->p->out);
	plumbing_put(arm->p);
	free(arm);
}

static void tee_main(void *a)
{
	struct plumbing *p = a;
	void *buf = elem_buf(p->in);

	while (buf && gs_chan_recv_ctx(p->in, buf, p->ctx) > 0) {
		gs_case both[] = {
			gs_case_send(p->out, buf), gs_case_send(p->out2, buf),
		};
		int first = gs_select_ctx(both, 2, p->ctx);

		if (first < 0 ||
		    gs_chan_send_ctx(first ? p->out : p->out2, buf, p->ctx))
			break;
	}
	free(buf);
	plumbing_put(p);
}

static void stage_main(void *a)
{
	struct plumbing *p = a;
	void *in = elem_buf(p->in), *out = elem_buf(p->out);
	int ret;

	while (in && out && gs_chan_recv_ctx(p->in, in, p->ctx) > 0) {
		ret = p->fn(p->arg, in, out);
		if (ret < 0) {
			gs_ctx_cancel_cause(p->ctx, ret);
			break;
		}
		if (ret != GS_STAGE_SKIP &&
		    gs_chan_send_ctx(p->out, out, p->ctx))
			break;
	}
	free(in);
	free(out);
	plumbing_put(p);
}

static struct plumbing *plumbing_new(gs_ctx *ctx, gs_chan *in, gs_chan *out,
				     gs_chan *out2)
{
	struct plumbing *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->ctx = gs_ctx_ref(ctx);
	atomic_init(&p->live, 1);	/* the starter's */
	p->in = in;
	p->out = out;
	p->out2 = out2;
	return p;
}

/* Start @fn(@arg) as one of @p's threads. */
static int plumbing_go(struct plumbing *p, void (*fn)(void *), void *arg)
{
	int err;

	atomic_fetch_add(&p->live, 1);
	err = gs_go(fn, arg);
	if (err)
		atomic_fetch_sub(&p->live, 1);
	return err;
}

static bool same_elem(gs_chan *a, gs_chan *b)
{
	return gs_chan_elem_size(a) == gs_chan_elem_size(b);
}

int gs_merge(gs_ctx *ctx, gs_chan *const *ins, size_t n, gs_chan *out)
{
	struct plumbing *p;
	int err = 0;

	if (!ctx || !out || (n && !ins))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!ins[i] || !same_elem(ins[i], out))
			return -EINVAL;
	p = plumbing_new(ctx, NULL, out, NULL);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n && !err; i++) {
		struct arm *arm = malloc(sizeof(*arm));

		if (!arm) {
			err = -ENOMEM;
			break;
		}
		*arm = (struct arm){ .p = p, .in = ins[i] };
		err = plumbing_go(p, arm_forward, arm);
		if (err)
			free(arm);
	}
	plumbing_put(p);
	return err;
}

int gs_tee(gs_ctx *ctx, gs_chan *in, gs_chan *out1, gs_chan *out2)
{
	struct plumbing *p;
	int err;

	if (!ctx || !in || !out1 || !out2 || !same_elem(in, out1) ||
	    !same_elem(in, out2))
		return -EINVAL;
	p = plumbing_new(ctx, in, out1, out2);
	if (!p)
		return -ENOMEM;
	err = plumbing_go(p, tee_main, p);
	plumbing_put(p);
	return err;
}

int gs_or_done(gs_ctx *ctx, gs_chan *in, gs_chan *out)
{
	gs_chan *ins[] = { in };

	return in ? gs_merge(ctx, ins, 1, out) : -EINVAL;
}

int gs_stage(gs_ctx *ctx, gs_chan *in, gs_chan *out,
	     int (*fn)(void *arg, const void *in, void *out),
	     void *arg, unsigned int workers)
{
	struct plumbing *p;
	int err = 0;

	if (!ctx || !in || !out || !fn || !workers)
		return -EINVAL;
	p = plumbing_new(ctx, in, out, NULL);
	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	for (unsigned int i = 0; i < workers && !err; i++)
		err = plumbing_go(p, stage_main, p);
	plumbing_put(p);
	return err;
}
