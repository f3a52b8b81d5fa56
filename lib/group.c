// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: golang.org/x/sync's errgroup and singleflight.
 *
 * errgroup
 * --------
 * As in Go: a WaitGroup that Wait waits on, an optional limit semaphore,
 * the first error (kept with a compare-and-swap from 0, so exactly one
 * error wins: the first one recorded, whatever the others), and for
 * WithContext a cancelable child context that the first error cancels
 * with itself as the cause and that Wait cancels on its way out.
 *
 *  - Wait uses a gs_waitgroup: it is what Go uses, and it gives Wait its
 *    happens-before edge from every call's end (the counter's atomics).
 *  - The limit is a gs_sem of @n permits: Go blocks in gs_sem_acquire(),
 *    TryGo uses gs_sem_try_acquire(), the call's thread releases its
 *    permit when the function returns. The kernel's FIFO queue makes the
 *    blocked Go callers start in arrival order. A semaphore's size is
 *    fixed, so SetLimit makes a new one.
 *  - A pthread mutex protects @sem (the pointer) and @active, the number
 *    of Go/TryGo calls between entry and the end of their thread,
 *    including those still waiting for a permit. SetLimit swaps the
 *    semaphore only when @active is 0 (-EBUSY otherwise; Go panics), so
 *    nobody can be using the old one: a caller reads @sem and increments
 *    @active under the same lock, and a thread releases its permit before
 *    it decrements @active. The mutex is a pthread one because it is held
 *    for a few instructions, never across a wait, within one process: a
 *    kernel object would buy nothing.
 *  - A call's thread ends with: release the permit, @active--, Done. So
 *    once Wait returns, @active is 0 again (SetLimit works, as in Go).
 *  - Lifetime: the group is reference-counted (the creator holds one,
 *    each started call one). gs_waitgroup_done() may still touch the
 *    WaitGroup (its unpark) after a waiter has seen the counter reach 0
 *    and returned, so destroy after Wait must not free the WaitGroup
 *    under a call's thread: the last reference frees the group.
 *  - The first error stays for the group's life, as Go's errOnce does:
 *    a group reused after Wait returns that error again, and its context
 *    (cancelled by the first Wait) stays cancelled.
 *
 * singleflight
 * ------------
 * A pthread mutex protects a hash table of the calls in flight: 64
 * buckets of singly linked chains, keyed by a copy of the string (FNV-1a).
 * The number of keys in flight at once is the number of concurrent
 * distinct requests, small in the uses singleflight is for; a fixed table
 * keeps the code short, and its chains stay short at that scale.
 *
 * A call holds its result, a condition variable (on the group's mutex)
 * that Do's duplicate callers wait on, @dups for the shared flag, the
 * list of DoChan channels to deliver to, and a reference count (the
 * caller that runs it, and each waiter) under the group's mutex. The
 * runner stores the result, marks the call done, removes it from the
 * table if it is still there (Forget may have removed it, and a newer
 * call for the key may have taken its place: it checks @in_table, not
 * the key), detaches the channel list and broadcasts, all under the lock.
 * Nothing can join a call once it is out of the table, so the list and
 * @dups are final then; the channels are sent to after the lock is
 * dropped. Each is a fresh channel of capacity 1 that gets exactly one
 * value, so gs_chan_try_send() never has to wait (and never blocks the
 * runner if the caller misused the channel).
 *
 * DoChan gives the caller one fd of the channel and keeps a dup of it for
 * the runner, so a caller that gives up and destroys its channel before
 * the result (select with a timeout) cannot pull it from under the
 * runner: the kernel object lives until both are closed, as a Go channel
 * lives while someone refers to it. The group is reference-counted for
 * the same reason as errgroup: a DoChan thread may still be finishing
 * after its result was received.
 *
 * If DoChan cannot start the thread, the new call ends at once with
 * that error (for whoever joined it meanwhile) and DoChan returns it.
 *
 * Condition variables rather than a gs_waitgroup per call: a call is
 * in-process, short-lived and waited on under the table's mutex anyway;
 * a kernel object per call would cost an fd, a mapping and system calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gosync.h"
#include "internal.h"

/* ------------------------------------------------------------------ */
/* errgroup                                                             */

struct gs_errgroup {
	atomic_int refs;		/* the creator's, and one per call */
	gs_waitgroup *wg;
	gs_ctx *ctx;			/* WithContext: our reference */
	_Atomic int err;		/* the first error, 0 until then */
	pthread_mutex_t mu;		/* protects @sem and @active */
	gs_sem *sem;			/* NULL: no limit */
	long active;			/* Go/TryGo calls not yet finished */
};

struct eg_call {
	gs_errgroup *g;
	gs_sem *sem;			/* the semaphore the permit is from */
	int (*fn)(void *arg);
	void *arg;
};

static void eg_put(gs_errgroup *g)
{
	if (atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	gs_waitgroup_destroy(g->wg);
	gs_sem_destroy(g->sem);
	if (g->ctx)
		gs_ctx_release(g->ctx);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

int gs_errgroup_create(gs_errgroup **gp)
{
	gs_errgroup *g = calloc(1, sizeof(*g));
	int err;

	if (!g)
		return -ENOMEM;
	err = gs_waitgroup_create(&g->wg);
	if (err) {
		free(g);
		return err;
	}
	atomic_init(&g->refs, 1);
	atomic_init(&g->err, 0);
	pthread_mutex_init(&g->mu, NULL);
	*gp = g;
	return 0;
}

int gs_errgroup_with_context(gs_ctx *parent, gs_errgroup **gp, gs_ctx **ctxp)
{
	gs_errgroup *g;
	gs_ctx *ctx;
	int err;

	if (!parent || !gp || !ctxp)
		return -EINVAL;
	err = gs_errgroup_create(&g);
	if (err)
		return err;
	err = gs_ctx_with_cancel(parent, &ctx);
	if (err) {
		eg_put(g);
		return err;
	}
	g->ctx = ctx;
	*ctxp = gs_ctx_ref(ctx);
	*gp = g;
	return 0;
}

/* Record @err if it is the first; cancel the context with it as cause. */
static void eg_fail(gs_errgroup *g, int err)
{
	int none = 0;

	if (atomic_compare_exchange_strong(&g->err, &none, err) && g->ctx)
		gs_ctx_cancel_cause(g->ctx, err);
}

/* Undo eg_enter(): the permit, @active, in this order (see the head). */
static void eg_leave(gs_errgroup *g, gs_sem *sem)
{
	if (sem)
		gs_sem_release(sem, 1);
	pthread_mutex_lock(&g->mu);
	g->active--;
	pthread_mutex_unlock(&g->mu);
}

static void eg_thread(void *p)
{
	struct eg_call call = *(struct eg_call *)p;
	gs_errgroup *g = call.g;
	int err;

	free(p);
	err = call.fn(call.arg);
	if (err)
		eg_fail(g, err);
	eg_leave(g, call.sem);
	gs_waitgroup_done(g->wg);
	eg_put(g);
}

/* Go (@block) or TryGo. */
static int eg_go(gs_errgroup *g, int (*fn)(void *arg), void *arg, bool block)
{
	struct eg_call *call;
	gs_sem *sem;
	int err;

	if (!fn)
		return -EINVAL;
	call = malloc(sizeof(*call));
	if (!call)
		return -ENOMEM;
	pthread_mutex_lock(&g->mu);
	g->active++;
	sem = g->sem;
	pthread_mutex_unlock(&g->mu);
	if (sem) {
		if (block) {
			do
				err = gs_sem_acquire(sem, 1);
			while (err == -EINTR);
		} else {
			err = gs_sem_try_acquire(sem, 1);
		}
		if (err) {
			eg_leave(g, NULL);
			free(call);
			return err;
		}
	}
	err = gs_waitgroup_add(g->wg, 1);
	if (err)
		goto fail;
	*call = (struct eg_call){ .g = g, .sem = sem, .fn = fn, .arg = arg };
	atomic_fetch_add(&g->refs, 1);
	err = gs_go(eg_thread, call);
	if (!err)
		return 0;
	atomic_fetch_sub(&g->refs, 1);	/* ours is still held */
	gs_waitgroup_done(g->wg);
fail:
	eg_leave(g, sem);
	free(call);
	return err;
}

int gs_errgroup_go(gs_errgroup *g, int (*fn)(void *arg), void *arg)
{
	return eg_go(g, fn, arg, true);
}

int gs_errgroup_try_go(gs_errgroup *g, int (*fn)(void *arg), void *arg)
{
	return eg_go(g, fn, arg, false);
}

int gs_errgroup_set_limit(gs_errgroup *g, int n)
{
	gs_sem *sem = NULL, *old;
	int err;

	if (n >= 0) {
		err = gs_sem_create(&sem, (uint64_t)n);
		if (err)
			return err;
	}
	pthread_mutex_lock(&g->mu);
	if (g->active) {
		pthread_mutex_unlock(&g->mu);
		gs_sem_destroy(sem);
		return -EBUSY;
	}
	old = g->sem;
	g->sem = sem;
	pthread_mutex_unlock(&g->mu);
	/* @active was 0: no caller or thread refers to @old. */
	gs_sem_destroy(old);
	return 0;
}

int gs_errgroup_wait(gs_errgroup *g)
{
	int err;

	gs_waitgroup_wait(g->wg);	/* 0: not cut short by signals */
	err = atomic_load(&g->err);
	if (g->ctx)
		gs_ctx_cancel_cause(g->ctx, err);
	return err;
}

void gs_errgroup_destroy(gs_errgroup *g)
{
	if (g)
		eg_put(g);
}

/* ------------------------------------------------------------------ */
/* singleflight                                                         */

#define SF_BUCKETS	64

struct sf_chan {
	gs_chan *ch;			/* the runner's handle (a dup'ed fd) */
	struct sf_chan *next;
};

struct sf_call {
	struct sf_call *next;		/* bucket chain (g->mu) */
	bool in_table;			/* (g->mu) */
	bool done;			/* (g->mu) */
	int refs;			/* runner + waiters (g->mu) */
	int dups;			/* (g->mu) */
	pthread_cond_t cond;		/* Do's waiters, on g->mu */
	struct sf_chan *chans;		/* DoChan's (g->mu) */
	void *value;			/* the result, set before @done */
	int err;
	char key[];
};

struct gs_singleflight {
	atomic_int refs;		/* the creator's, one per DoChan thread */
	pthread_mutex_t mu;
	struct sf_call *table[SF_BUCKETS];
};

static unsigned int sf_hash(const char *key)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % SF_BUCKETS;
}

static struct sf_call **sf_slot(gs_singleflight *g, const char *key)
{
	struct sf_call **p = &g->table[sf_hash(key)];

	while (*p && strcmp((*p)->key, key))
		p = &(*p)->next;
	return p;
}

static struct sf_call *sf_call_new(const char *key)
{
	size_t len = strlen(key) + 1;
	struct sf_call *c = calloc(1, sizeof(*c) + len);

	if (!c)
		return NULL;
	memcpy(c->key, key, len);
	pthread_cond_init(&c->cond, NULL);
	c->refs = 1;
	return c;
}

static void sf_call_put(struct sf_call *c)	/* g->mu held */
{
	if (--c->refs)
		return;
	pthread_cond_destroy(&c->cond);
	free(c);
}

static void sf_put(gs_singleflight *g)
{
	if (atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	/* Calls in flight hold a reference: the table is empty now. */
	pthread_mutex_destroy(&g->mu);
	free(g);
}

int gs_singleflight_create(gs_singleflight **gp)
{
	gs_singleflight *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	atomic_init(&g->refs, 1);
	pthread_mutex_init(&g->mu, NULL);
	*gp = g;
	return 0;
}

void gs_singleflight_destroy(gs_singleflight *g)
{
	if (g)
		sf_put(g);
}

/*
 * Store the result of @c, take it out of the table, wake Do's waiters,
 * deliver to DoChan's channels, and drop the runner's reference.
 * Return: whether the call was shared.
 */
static bool sf_finish(gs_singleflight *g, struct sf_call *c, void *value,
		      int err)
{
	struct gs_flight_result r;
	struct sf_chan *chans, *next;
	bool shared;

	pthread_mutex_lock(&g->mu);
	c->value = value;
	c->err = err;
	c->done = true;
	if (c->in_table) {
		*sf_slot(g, c->key) = c->next;
		c->in_table = false;
	}
	shared = c->dups > 0;
	chans = c->chans;
	c->chans = NULL;
	pthread_cond_broadcast(&c->cond);
	sf_call_put(c);
	pthread_mutex_unlock(&g->mu);

	memset(&r, 0, sizeof(r));	/* no stray padding bytes */
	r.value = value;
	r.err = err;
	r.shared = shared;
	for (; chans; chans = next) {
		next = chans->next;
		gs_chan_try_send(chans->ch, &r);
		gs_chan_destroy(chans->ch);
		free(chans);
	}
	return shared;
}

int gs_singleflight_do(gs_singleflight *g, const char *key,
		       int (*fn)(void *arg, void **value), void *arg,
		       void **value, bool *shared)
{
	struct sf_call *c, **slot, *fresh;
	void *v = NULL;
	bool sh;
	int err;

	if (!g || !key || !fn)
		return -EINVAL;
	/* Allocated before the lock, so that nothing fails under it. */
	fresh = sf_call_new(key);
	if (!fresh)
		return -ENOMEM;
	pthread_mutex_lock(&g->mu);
	slot = sf_slot(g, key);
	c = *slot;
	if (c) {
		/* In flight: wait for it and share its result. */
		c->dups++;
		c->refs++;
		while (!c->done)
			pthread_cond_wait(&c->cond, &g->mu);
		v = c->value;
		err = c->err;
		sf_call_put(c);
		pthread_mutex_unlock(&g->mu);
		sf_call_put(fresh);	/* never published: no lock needed */
		if (value)
			*value = v;
		if (shared)
			*shared = true;
		return err;
	}
	c = fresh;
	c->in_table = true;
	*slot = c;
	pthread_mutex_unlock(&g->mu);

	err = fn(arg, &v);
	sh = sf_finish(g, c, v, err);
	if (value)
		*value = v;
	if (shared)
		*shared = sh;
	return err;
}

struct sf_run {
	gs_singleflight *g;
	struct sf_call *c;
	int (*fn)(void *arg, void **value);
	void *arg;
};

static void sf_thread(void *p)
{
	struct sf_run run = *(struct sf_run *)p;
	void *v = NULL;
	int err;

	free(p);
	err = run.fn(run.arg, &v);
	sf_finish(run.g, run.c, v, err);
	sf_put(run.g);
}

/* A channel for the caller (*@mine) and a handle of it for the runner. */
static int sf_chan_pair(gs_chan **mine, struct sf_chan **theirs)
{
	struct sf_chan *node = malloc(sizeof(*node));
	int err, fd;

	if (!node)
		return -ENOMEM;
	err = gs_chan_make(mine, sizeof(struct gs_flight_result), 1);
	if (err)
		goto free_node;
	fd = fcntl(gs_chan_fd(*mine), F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto destroy;
	}
	err = gs_chan_from_fd_sized(&node->ch, fd,
				    sizeof(struct gs_flight_result));
	if (err) {
		close(fd);
		goto destroy;
	}
	node->next = NULL;
	*theirs = node;
	return 0;
destroy:
	gs_chan_destroy(*mine);
free_node:
	free(node);
	return err;
}

int gs_singleflight_do_chan(gs_singleflight *g, const char *key,
			    int (*fn)(void *arg, void **value), void *arg,
			    gs_chan **resultp)
{
	struct sf_call *c, **slot, *fresh;
	struct sf_chan *node = NULL;
	struct sf_run *run;
	gs_chan *mine = NULL;
	int err;

	if (!g || !key || !fn || !resultp)
		return -EINVAL;
	err = sf_chan_pair(&mine, &node);
	if (err)
		return err;
	fresh = sf_call_new(key);
	run = malloc(sizeof(*run));
	if (!fresh || !run) {
		err = -ENOMEM;
		goto fail;
	}
	pthread_mutex_lock(&g->mu);
	slot = sf_slot(g, key);
	c = *slot;
	if (c) {
		c->dups++;
		node->next = c->chans;
		c->chans = node;
		pthread_mutex_unlock(&g->mu);
		free(run);
		sf_call_put(fresh);	/* never published */
		*resultp = mine;
		return 0;
	}
	c = fresh;
	c->in_table = true;
	c->chans = node;
	*slot = c;
	pthread_mutex_unlock(&g->mu);

	*run = (struct sf_run){ .g = g, .c = c, .fn = fn, .arg = arg };
	atomic_fetch_add(&g->refs, 1);
	err = gs_go(sf_thread, run);
	if (err) {
		/*
		 * No thread: the call ends with this error for whoever
		 * joined it meanwhile; this caller gets the error instead
		 * of a channel (its node's handle gets the result, unread).
		 */
		atomic_fetch_sub(&g->refs, 1);
		free(run);
		sf_finish(g, c, NULL, err);
		gs_chan_destroy(mine);
		return err;
	}
	*resultp = mine;
	return 0;
fail:
	free(run);
	if (fresh)
		sf_call_put(fresh);
	gs_chan_destroy(node->ch);
	free(node);
	gs_chan_destroy(mine);
	return err;
}

void gs_singleflight_forget(gs_singleflight *g, const char *key)
{
	struct sf_call **slot, *c;

	if (!g || !key)
		return;
	pthread_mutex_lock(&g->mu);
	slot = sf_slot(g, key);
	c = *slot;
	if (c) {
		*slot = c->next;
		c->next = NULL;
		c->in_table = false;
	}
	pthread_mutex_unlock(&g->mu);
}
