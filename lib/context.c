// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: package context.
 *
 * A context is a node of a tree. Three kinds:
 *  - roots (Background, TODO): static, never done;
 *  - cancelable nodes (WithCancel, WithDeadline, WithTimeout): they own
 *    the cancellation state (err, cause), the Done channel (made on first
 *    use), the list of children to cancel with them, the AfterFuncs and,
 *    for a deadline, a kernel timer channel;
 *  - value nodes (WithValue, WithoutCancel): a key and value, and for
 *    everything else the parent (WithoutCancel: never done).
 * A cancelable node registers with its nearest cancelable ancestor (its
 * "canceller"), which cancels it along with itself, as Go's
 * propagateCancel does.
 *
 * Locking: each cancelable node's @mu protects its @err/@cause writes,
 * @done, @children, @afters, @timer_reg, and the @in_list flag of each
 * child on its list. A canceller's lock is taken before a child's, never
 * the other way round: cancel() drops its own lock before it cancels the
 * children it detached, and a child unlinks itself from its canceller
 * with only the canceller's lock held.
 *
 * Lifetime: references (@refs). A child holds one on its parent; the
 * canceller's list holds none, so a child that dies first unlinks itself
 * (under the canceller's lock), and a canceller that detaches its list
 * takes a reference on each child only if it is still alive (refs > 0).
 * A deadline's timer registration holds a reference until it is retired.
 *
 * Deadlines: one library thread, the reaper, waits with epoll on the
 * timer channels of all live deadlines and cancels a context whose timer
 * fires. A registration is freed only by the reaper, after the batch of
 * events that may still name it: whoever detaches it from its context
 * queues it as retired and wakes the reaper through an eventfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gosync.h"
#include "internal.h"

enum ctx_kind { CTX_ROOT, CTX_CANCEL, CTX_VALUE, CTX_WITHOUT_CANCEL };

struct timer_reg {
	gs_chan *timer;
	gs_ctx *ctx;			/* a reference */
	struct timer_reg *next_retired;
};

struct gs_ctx {
	enum ctx_kind kind;
	atomic_int refs;
	gs_ctx *parent;			/* a reference; NULL for roots */
	/* CTX_VALUE */
	const void *key;
	void *value;
	/* CTX_CANCEL */
	pthread_mutex_t mu;
	_Atomic int err;		/* 0, -ECANCELED, -ETIMEDOUT */
	_Atomic int cause;
	uint64_t deadline;		/* GS_FOREVER: none of its own */
	int deadline_cause;
	gs_chan *done;
	gs_ctx *canceller;		/* nearest cancelable ancestor */
	bool in_list;			/* on canceller's list (its mu) */
	gs_ctx *next_child, *prev_child; /* canceller's list (its mu) */
	gs_ctx *children;
	gs_ctx *next_cancel;		/* cancel()'s private list */
	struct gs_ctx_after *afters;
	struct timer_reg *timer_reg;
};

/* An AfterFunc's call, owned by its handle until cancel() takes it. */
struct after_call {
	void (*fn)(void *arg);
	void *arg;
	struct after_call *next;
};

struct gs_ctx_after {
	gs_ctx *ctx;			/* the canceller; a reference, or NULL */
	struct after_call *call;	/* NULL once started (ctx->mu) */
	struct gs_ctx_after *next;	/* on ctx->afters (ctx->mu) */
};

static gs_ctx background = { .kind = CTX_ROOT };
static gs_ctx todo = { .kind = CTX_ROOT };

gs_ctx *gs_ctx_background(void)
{
	return &background;
}

gs_ctx *gs_ctx_todo(void)
{
	return &todo;
}

gs_ctx *gs_ctx_ref(gs_ctx *ctx)
{
	if (ctx->kind != CTX_ROOT)
		atomic_fetch_add(&ctx->refs, 1);
	return ctx;
}

/* Take a reference unless the count already reached zero (dying). */
static bool ctx_tryref(gs_ctx *ctx)
{
	int refs = atomic_load(&ctx->refs);

	do {
		if (!refs)
			return false;
	} while (!atomic_compare_exchange_weak(&ctx->refs, &refs, refs + 1));
	return true;
}

/* The cancelable node that decides whether @ctx is done, or NULL. */
static gs_ctx *ctx_canceller(gs_ctx *ctx)
{
	while (ctx && ctx->kind == CTX_VALUE)
		ctx = ctx->parent;
	return ctx && ctx->kind == CTX_CANCEL ? ctx : NULL;
}

/* ------------------------------------------------------------------ */
/* The reaper: one thread that cancels contexts whose deadline passed. */

static struct {
	pthread_once_t once;
	int start_err;
	int epfd, wakefd;
	pthread_mutex_t mu;		/* protects @retired */
	struct timer_reg *retired;
} reaper = {
	.once = PTHREAD_ONCE_INIT, .epfd = -1, .wakefd = -1,
	.mu = PTHREAD_MUTEX_INITIALIZER,
};

static void ctx_cancel(gs_ctx *ctx, int err, int cause);

static void reaper_free_retired(void)
{
	struct timer_reg *reg, *next;

	pthread_mutex_lock(&reaper.mu);
	reg = reaper.retired;
	reaper.retired = NULL;
	pthread_mutex_unlock(&reaper.mu);
	for (; reg; reg = next) {
		next = reg->next_retired;
		epoll_ctl(reaper.epfd, EPOLL_CTL_DEL, gs_chan_fd(reg->timer),
			  NULL);
		gs_chan_destroy(reg->timer);
		gs_ctx_release(reg->ctx);
		free(reg);
	}
}

static void *reaper_main(void *unused)
{
	struct epoll_event events[16];
	uint64_t count;

	(void)unused;
	for (;;) {
		int n = epoll_wait(reaper.epfd, events, 16, -1);

		for (int i = 0; i < n; i++) {
			struct timer_reg *reg = events[i].data.ptr;

			if (!reg) {
				/* Drain the eventfd; -EAGAIN if already. */
				if (read(reaper.wakefd, &count, sizeof(count)) < 0)
					count = 0;
				continue;
			}
			/* Still named by this batch: freed only below. */
			ctx_cancel(reg->ctx, -ETIMEDOUT,
				   reg->ctx->deadline_cause);
		}
		reaper_free_retired();
	}
	return NULL;
}

static void reaper_start(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;

	reaper.epfd = epoll_create1(EPOLL_CLOEXEC);
	reaper.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (reaper.epfd < 0 || reaper.wakefd < 0 ||
	    epoll_ctl(reaper.epfd, EPOLL_CTL_ADD, reaper.wakefd, &ev)) {
		reaper.start_err = -errno;
		return;
	}
	/* Signals are for the application's threads, not this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	reaper.start_err = -pthread_create(&thread, &attr, reaper_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Watch @ctx's deadline; called before anyone else can see @ctx. */
static int reaper_watch(gs_ctx *ctx)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct timer_reg *reg;
	int err;

	pthread_once(&reaper.once, reaper_start);
	if (reaper.start_err)
		return reaper.start_err;
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	err = gs_timer_at(&reg->timer, ctx->deadline, 0);
	if (err) {
		free(reg);
		return err;
	}
	reg->ctx = gs_ctx_ref(ctx);
	/* Set before the reaper can see the timer fire and cancel @ctx. */
	ctx->timer_reg = reg;
	ev.data.ptr = reg;
	if (epoll_ctl(reaper.epfd, EPOLL_CTL_ADD, gs_chan_fd(reg->timer),
		      &ev)) {
		err = -errno;
		ctx->timer_reg = NULL;
		gs_chan_destroy(reg->timer);
		atomic_fetch_sub(&ctx->refs, 1);
		free(reg);
		return err;
	}
	return 0;
}

/* Hand a registration detached from its context to the reaper to free. */
static void reaper_retire(struct timer_reg *reg)
{
	uint64_t one = 1;

	gs_timer_stop(reg->timer);
	pthread_mutex_lock(&reaper.mu);
	reg->next_retired = reaper.retired;
	reaper.retired = reg;
	pthread_mutex_unlock(&reaper.mu);
	if (write(reaper.wakefd, &one, sizeof(one)) < 0) {
		/* The counter is full: the reaper has a wake-up pending. */
	}
}

/* ------------------------------------------------------------------ */
/* Cancellation.                                                        */

static void *after_main(void *p)
{
	struct after_call call = *(struct after_call *)p;

	free(p);
	call.fn(call.arg);
	return NULL;
}

/* Start an AfterFunc on its own thread (it frees @call). */
static void after_start(struct after_call *call)
{
	pthread_attr_t attr;
	pthread_t thread;
	int err;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&thread, &attr, after_main, call);
	pthread_attr_destroy(&attr);
	if (err) {
		/* No thread to be had: run it on the cancelling thread. */
		after_main(call);
	}
}

/*
 * Cancel @ctx (a cancelable node) with @err and @cause, then its
 * children, and start its AfterFuncs. Only the first call does anything.
 */
static void ctx_cancel(gs_ctx *ctx, int err, int cause)
{
	struct after_call *call, *calls = NULL;
	gs_ctx *child, *cancel_list = NULL;
	struct gs_ctx_after *after;
	struct timer_reg *reg;
	gs_chan *done;

	pthread_mutex_lock(&ctx->mu);
	if (atomic_load(&ctx->err)) {
		pthread_mutex_unlock(&ctx->mu);
		return;
	}
	atomic_store(&ctx->cause, cause ? cause : err);
	atomic_store(&ctx->err, err);
	done = ctx->done;
	while ((child = ctx->children)) {
		ctx->children = child->next_child;
		child->in_list = false;
		if (ctx_tryref(child)) {
			child->next_cancel = cancel_list;
			cancel_list = child;
		}
	}
	/* The calls change owner; the handles stay their callers'. */
	while ((after = ctx->afters)) {
		ctx->afters = after->next;
		after->call->next = calls;
		calls = after->call;
		after->call = NULL;
	}
	reg = ctx->timer_reg;
	ctx->timer_reg = NULL;
	pthread_mutex_unlock(&ctx->mu);

	if (done)
		gs_chan_close(done);
	while ((child = cancel_list)) {
		cancel_list = child->next_cancel;
		ctx_cancel(child, err, cause);
		gs_ctx_release(child);
	}
	while ((call = calls)) {
		calls = call->next;
		after_start(call);
	}
	if (reg)
		reaper_retire(reg);
}

/* Unlink @ctx from its canceller's list, if it is still there. */
static void ctx_unlink(gs_ctx *ctx)
{
	gs_ctx *c = ctx->canceller;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	if (ctx->in_list) {
		if (ctx->prev_child)
			ctx->prev_child->next_child = ctx->next_child;
		else
			c->children = ctx->next_child;
		if (ctx->next_child)
			ctx->next_child->prev_child = ctx->prev_child;
		ctx->in_list = false;
	}
	pthread_mutex_unlock(&c->mu);
}

void gs_ctx_cancel_cause(gs_ctx *ctx, int cause)
{
	if (!ctx || ctx->kind != CTX_CANCEL)
		return;
	ctx_cancel(ctx, -ECANCELED, cause);
	/* Go's removeChild: the canceller need not keep us any more. */
	ctx_unlink(ctx);
}

void gs_ctx_cancel(gs_ctx *ctx)
{
	gs_ctx_cancel_cause(ctx, 0);
}

void gs_ctx_release(gs_ctx *ctx)
{
	if (!ctx || ctx->kind == CTX_ROOT ||
	    atomic_fetch_sub(&ctx->refs, 1) != 1)
		return;
	if (ctx->kind == CTX_CANCEL) {
		/*
		 * Nobody can reach us now but a canceller's list: leave it.
		 * No children (each holds a reference), no live timer (its
		 * registration holds one too).
		 */
		ctx_unlink(ctx);
		gs_chan_destroy(ctx->done);
		pthread_mutex_destroy(&ctx->mu);
	}
	gs_ctx_release(ctx->parent);
	free(ctx);
}

/* ------------------------------------------------------------------ */
/* Derivation.                                                          */

static gs_ctx *ctx_alloc(gs_ctx *parent, enum ctx_kind kind)
{
	gs_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->kind = kind;
	atomic_init(&ctx->refs, 1);
	ctx->parent = gs_ctx_ref(parent);
	ctx->deadline = GS_FOREVER;
	return ctx;
}

/*
 * A new cancelable child of @parent with deadline @deadline (GS_FOREVER:
 * none of its own), registered with the parent's canceller, or cancelled
 * at once if that is done already or the deadline has passed.
 */
static int ctx_new_cancel(gs_ctx *parent, uint64_t deadline, int cause,
			  gs_ctx **ctxp)
{
	gs_ctx *ctx, *c;
	int err;

	if (!parent || !ctxp)
		return -EINVAL;
	ctx = ctx_alloc(parent, CTX_CANCEL);
	if (!ctx)
		return -ENOMEM;
	pthread_mutex_init(&ctx->mu, NULL);
	ctx->deadline = deadline;
	ctx->deadline_cause = cause;
	if (deadline != GS_FOREVER && deadline > gs_now()) {
		err = reaper_watch(ctx);
		if (err) {
			gs_ctx_release(ctx);
			return err;
		}
	}

	c = ctx_canceller(parent);
	if (c) {
		pthread_mutex_lock(&c->mu);
		if (!atomic_load(&c->err)) {
			ctx->canceller = c;
			ctx->in_list = true;
			ctx->next_child = c->children;
			if (c->children)
				c->children->prev_child = ctx;
			c->children = ctx;
		}
		pthread_mutex_unlock(&c->mu);
		if (!ctx->canceller)
			ctx_cancel(ctx, atomic_load(&c->err),
				   atomic_load(&c->cause));
	}
	if (deadline != GS_FOREVER && deadline <= gs_now())
		ctx_cancel(ctx, -ETIMEDOUT, cause);
	*ctxp = ctx;
	return 0;
}

int gs_ctx_with_cancel(gs_ctx *parent, gs_ctx **ctxp)
{
	return ctx_new_cancel(parent, GS_FOREVER, 0, ctxp);
}

int gs_ctx_with_deadline_cause(gs_ctx *parent, uint64_t deadline, int cause,
			       gs_ctx **ctxp)
{
	uint64_t inherited;

	/* The parent's deadline comes first: a plain child does the same. */
	if (parent && gs_ctx_deadline(parent, &inherited) &&
	    inherited <= deadline)
		deadline = GS_FOREVER;
	return ctx_new_cancel(parent, deadline, cause, ctxp);
}

int gs_ctx_with_deadline(gs_ctx *parent, uint64_t deadline, gs_ctx **ctxp)
{
	return gs_ctx_with_deadline_cause(parent, deadline, 0, ctxp);
}

int gs_ctx_with_timeout_cause(gs_ctx *parent, uint64_t ns, int cause,
			      gs_ctx **ctxp)
{
	return gs_ctx_with_deadline_cause(parent, gs_deadline_in(ns), cause,
					  ctxp);
}

int gs_ctx_with_timeout(gs_ctx *parent, uint64_t ns, gs_ctx **ctxp)
{
	return gs_ctx_with_timeout_cause(parent, ns, 0, ctxp);
}

static int ctx_new_value(gs_ctx *parent, enum ctx_kind kind, const void *key,
			 void *value, gs_ctx **ctxp)
{
	gs_ctx *ctx;

	if (!parent || !ctxp)
		return -EINVAL;
	ctx = ctx_alloc(parent, kind);
	if (!ctx)
		return -ENOMEM;
	ctx->key = key;
	ctx->value = value;
	*ctxp = ctx;
	return 0;
}

int gs_ctx_with_value(gs_ctx *parent, const void *key, void *value,
		      gs_ctx **ctxp)
{
	if (!key)
		return -EINVAL;
	return ctx_new_value(parent, CTX_VALUE, key, value, ctxp);
}

int gs_ctx_without_cancel(gs_ctx *parent, gs_ctx **ctxp)
{
	return ctx_new_value(parent, CTX_WITHOUT_CANCEL, NULL, NULL, ctxp);
}

/* ------------------------------------------------------------------ */
/* Queries.                                                             */

int gs_ctx_err(gs_ctx *ctx)
{
	gs_ctx *c = ctx_canceller(ctx);

	return c ? atomic_load(&c->err) : 0;
}

int gs_ctx_cause(gs_ctx *ctx)
{
	gs_ctx *c = ctx_canceller(ctx);

	return c && atomic_load(&c->err) ? atomic_load(&c->cause) : 0;
}

gs_chan *gs_ctx_done(gs_ctx *ctx)
{
	gs_ctx *c = ctx_canceller(ctx);
	gs_chan *done;

	if (!c)
		return NULL;
	pthread_mutex_lock(&c->mu);
	if (!c->done && gs_chan_make(&c->done, 0, 0) == 0 &&
	    atomic_load(&c->err))
		gs_chan_close(c->done);
	done = c->done;
	pthread_mutex_unlock(&c->mu);
	return done;
}

bool gs_ctx_deadline(gs_ctx *ctx, uint64_t *deadline)
{
	for (; ctx && ctx->kind != CTX_ROOT &&
	       ctx->kind != CTX_WITHOUT_CANCEL; ctx = ctx->parent) {
		if (ctx->kind == CTX_CANCEL && ctx->deadline != GS_FOREVER) {
			if (deadline)
				*deadline = ctx->deadline;
			return true;
		}
	}
	return false;
}

void *gs_ctx_value(gs_ctx *ctx, const void *key)
{
	for (; ctx; ctx = ctx->parent)
		if (ctx->kind == CTX_VALUE && ctx->key == key)
			return ctx->value;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* AfterFunc.                                                           */

int gs_ctx_after_func(gs_ctx *ctx, void (*fn)(void *arg), void *arg,
		      gs_ctx_after **stopp)
{
	struct gs_ctx_after *after;
	struct after_call *call;
	gs_ctx *c = ctx_canceller(ctx);

	if (!fn || !stopp)
		return -EINVAL;
	after = calloc(1, sizeof(*after));
	call = malloc(sizeof(*call));
	if (!after || !call) {
		free(after);
		free(call);
		return -ENOMEM;
	}
	*call = (struct after_call){ .fn = fn, .arg = arg };
	*stopp = after;
	if (!c) {
		/* Never done: the call never runs. */
		after->call = call;
		return 0;
	}
	after->ctx = gs_ctx_ref(c);
	pthread_mutex_lock(&c->mu);
	if (!atomic_load(&c->err)) {
		after->call = call;
		after->next = c->afters;
		c->afters = after;
		call = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	if (call)
		after_start(call);	/* done already: at once */
	return 0;
}

bool gs_ctx_after_func_stop(gs_ctx_after *after)
{
	struct gs_ctx_after **p;
	gs_ctx *c = after->ctx;
	bool stopped;

	if (c)
		pthread_mutex_lock(&c->mu);
	for (p = c ? &c->afters : NULL; p && *p; p = &(*p)->next) {
		if (*p == after) {
			*p = after->next;
			break;
		}
	}
	/* Taken by a cancel (under the lock) iff it has been started. */
	stopped = after->call != NULL;
	if (c)
		pthread_mutex_unlock(&c->mu);
	free(after->call);
	gs_ctx_release(c);
	free(after);
	return stopped;
}

/* ------------------------------------------------------------------ */
/* Blocking calls with a context (see internal.h).                      */

int gs_ctx_wait_begin(gs_ctx *ctx, struct gs_ctx_wait *w)
{
	gs_chan *done;
	int err;

	if (!ctx)
		return -EINVAL;
	err = gs_ctx_err(ctx);
	if (err)
		return err;
	if (!gs_ctx_deadline(ctx, &w->deadline))
		w->deadline = GS_FOREVER;
	w->cancel_fd = -1;
	if (ctx_canceller(ctx)) {
		done = gs_ctx_done(ctx);
		if (!done)
			return -ENOMEM;
		w->cancel_fd = gs_chan_fd(done);
	}
	return 0;
}

/* Cancel every node above @ctx whose own deadline has passed. */
static void ctx_expire(gs_ctx *ctx)
{
	uint64_t now = gs_now();

	for (; ctx && ctx->kind != CTX_ROOT &&
	       ctx->kind != CTX_WITHOUT_CANCEL; ctx = ctx->parent)
		if (ctx->kind == CTX_CANCEL && ctx->deadline <= now)
			ctx_cancel(ctx, -ETIMEDOUT, ctx->deadline_cause);
}

int gs_ctx_wait_end(gs_ctx *ctx, int ret)
{
	int err;

	if (ret != -ECANCELED && ret != -ETIMEDOUT)
		return ret;
	/* The kernel saw the deadline before the reaper: no matter. */
	if (ret == -ETIMEDOUT)
		ctx_expire(ctx);
	err = gs_ctx_err(ctx);
	return err ? err : ret;
}
