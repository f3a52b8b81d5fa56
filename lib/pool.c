// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: gs_pool, Go's sync.Pool.
 *
 * Process-local, like gs_map: a pool caches objects of this process.
 *
 * Layout
 * ------
 * Each thread has, for each pool it has used, a private cache: a LIFO
 * array of up to POOL_CACHE_MAX objects, reached through a thread-local
 * list, so that a Get or Put that finds room (or an object) there touches
 * no cache line another thread writes. Behind the caches each pool has a
 * shared stack of up to POOL_SHARED_MAX objects under a mutex. A Put to a
 * full cache moves its older half (POOL_BATCH objects) to the shared
 * stack; a Get from an empty cache takes up to POOL_BATCH from it; so a
 * thread that only puts or only gets takes the mutex once per POOL_BATCH
 * calls. Objects that find no room in the shared stack are freed with
 * free_fn. A pool therefore keeps at most
 *     POOL_SHARED_MAX + POOL_CACHE_MAX * (threads that used it)
 * idle objects. (Go's pool also drops its objects at garbage collections;
 * without a collector, the bound is what keeps a burst from pinning
 * memory forever.)
 *
 * Lifetimes, and why they are safe
 * --------------------------------
 * A cache is linked into two lists: its thread's (through tnext, changed
 * only by that thread) and its pool's (through pnext/pprev, changed only
 * under pools_lock). Its objects belong to its thread, except that
 * gs_pool_destroy() takes them (the caller promises that no thread uses
 * the pool any more, so no thread is in a Get or Put of it).
 *  - A thread finds its cache by the pool's id, a number never reused,
 *    which it compares with the cache's id, written before the cache was
 *    published and never again. A cache whose pool was destroyed keeps
 *    its id, which no live pool has, so it is never matched; reading the
 *    id of such a dead cache races with nothing (destroy writes only the
 *    cache's pool pointer and objects).
 *  - gs_pool_destroy() frees the objects of every cache on the pool's
 *    list and marks each dead (pool = NULL) under pools_lock. The cache
 *    itself stays on its thread's list: only its thread may unlink it.
 *  - A thread frees its dead caches under pools_lock when it adds a cache
 *    (prune) and when it exits.
 *  - Thread exit: a pthread key destructor moves each live cache's
 *    objects to its pool's shared stack (freeing what does not fit) and
 *    frees the caches, under pools_lock, so a concurrent destroy either
 *    ran first (the cache is dead, its objects already freed) or runs
 *    after (the objects are on the shared stack, which it frees).
 * Lock order: pools_lock, then a pool's mutex. free_fn is called with
 * locks held in destroy and at thread exit, so it must not call gs_pool
 * functions; new_fn is called with no lock held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gosync.h"

#define POOL_CACHE_MAX		GS_POOL_CACHE_MAX
#define POOL_BATCH		(POOL_CACHE_MAX / 2)
#define POOL_SHARED_MAX		GS_POOL_SHARED_MAX

struct pool_cache {
	struct pool_cache *tnext;	/* its thread's list: that thread only */
	struct pool_cache *pnext;	/* its pool's list: under pools_lock */
	struct pool_cache **pprev;
	uint64_t id;			/* the pool's id; never changes */
	gs_pool *pool;			/* NULL once dead: under pools_lock */
	unsigned int n;
	void *objs[POOL_CACHE_MAX];
};

struct gs_pool {
	uint64_t id;
	void *(*new_fn)(void *arg);
	void (*free_fn)(void *obj, void *arg);
	void *arg;
	struct pool_cache *caches;	/* under pools_lock */
	pthread_mutex_t lock;		/* the shared stack */
	size_t nshared;
	void *shared[POOL_SHARED_MAX];
};

/* A thread's caches; the key's destructor empties them at its exit. */
struct pool_thread {
	struct pool_cache *caches;
	struct pool_cache *last;	/* the one used last: checked first */
};

static __thread struct pool_thread pool_tls
	__attribute__((tls_model("initial-exec")));
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pool_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t pool_key;
static bool pool_key_ok;
static _Atomic uint64_t pool_next_id = 1;

static void free_objs(gs_pool *p, void **objs, size_t n)
{
	if (p->free_fn)
		for (size_t i = 0; i < n; i++)
			p->free_fn(objs[i], p->arg);
}

/*
 * Push @n objects onto @p's shared stack; free those that do not fit
 * (after unlocking). Called with pools_lock or nothing held.
 */
static void spill(gs_pool *p, void **objs, size_t n)
{
	size_t room, k;

	pthread_mutex_lock(&p->lock);
	room = POOL_SHARED_MAX - p->nshared;
	k = n < room ? n : room;
	memcpy(&p->shared[p->nshared], objs, k * sizeof(objs[0]));
	p->nshared += k;
	pthread_mutex_unlock(&p->lock);
	free_objs(p, objs + k, n - k);
}

static void cache_unlink(struct pool_cache *c)
{
	*c->pprev = c->pnext;
	if (c->pnext)
		c->pnext->pprev = c->pprev;
}

static void pool_thread_exit(void *arg)
{
	struct pool_thread *t = arg;
	struct pool_cache *c;

	pthread_mutex_lock(&pools_lock);
	while ((c = t->caches)) {
		t->caches = c->tnext;
		if (c->pool) {
			cache_unlink(c);
			spill(c->pool, c->objs, c->n);
		}
		free(c);
	}
	t->last = NULL;
	pthread_mutex_unlock(&pools_lock);
}

static void pool_key_create(void)
{
	pool_key_ok = !pthread_key_create(&pool_key, pool_thread_exit);
}

/*
 * This thread's new cache for @p, or NULL (no memory, or no pthread key:
 * the pool then works on its shared stack alone).
 */
static struct pool_cache *cache_new(gs_pool *p)
{
	struct pool_thread *t = &pool_tls;
	struct pool_cache *c, **cp;

	if (!pool_key_ok || pthread_setspecific(pool_key, t))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->id = p->id;
	pthread_mutex_lock(&pools_lock);
	for (cp = &t->caches; *cp;) {	/* prune the dead */
		struct pool_cache *d = *cp;

		if (d->pool) {
			cp = &d->tnext;
		} else {
			*cp = d->tnext;
			free(d);
		}
	}
	c->pool = p;
	c->pnext = p->caches;
	c->pprev = &p->caches;
	if (p->caches)
		p->caches->pprev = &c->pnext;
	p->caches = c;
	pthread_mutex_unlock(&pools_lock);
	c->tnext = t->caches;
	t->caches = c;
	t->last = c;
	return c;
}

/* This thread's cache for @p (made on first use), or NULL. */
static struct pool_cache *cache_of(gs_pool *p)
{
	struct pool_thread *t = &pool_tls;
	struct pool_cache *c = t->last;

	if (c && c->id == p->id)
		return c;
	for (c = t->caches; c; c = c->tnext) {
		if (c->id == p->id) {
			t->last = c;
			return c;
		}
	}
	return cache_new(p);
}

int gs_pool_create(gs_pool **pp, void *(*new_fn)(void *arg),
		   void *arg, void (*free_fn)(void *obj, void *arg))
{
	gs_pool *p;

	if (!pp)
		return -EINVAL;
	pthread_once(&pool_key_once, pool_key_create);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (pthread_mutex_init(&p->lock, NULL)) {
		free(p);
		return -ENOMEM;
	}
	p->id = atomic_fetch_add_explicit(&pool_next_id, 1,
					  memory_order_relaxed);
	p->new_fn = new_fn;
	p->free_fn = free_fn;
	p->arg = arg;
	*pp = p;
	return 0;
}

void gs_pool_destroy(gs_pool *p)
{
	struct pool_cache *c;

	if (!p)
		return;
	pthread_mutex_lock(&pools_lock);
	while ((c = p->caches)) {
		cache_unlink(c);
		free_objs(p, c->objs, c->n);
		c->n = 0;
		c->pool = NULL;	/* its thread frees it */
	}
	pthread_mutex_unlock(&pools_lock);
	free_objs(p, p->shared, p->nshared);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void *gs_pool_get(gs_pool *p)
{
	struct pool_cache *c;
	void *obj = NULL;

	if (!p)
		return NULL;
	c = cache_of(p);
	if (c && c->n)
		return c->objs[--c->n];
	/* Empty cache: refill it from the shared stack. */
	pthread_mutex_lock(&p->lock);
	if (p->nshared) {
		obj = p->shared[--p->nshared];
		if (c) {
			size_t k = p->nshared < POOL_BATCH - 1 ?
				   p->nshared : POOL_BATCH - 1;

			p->nshared -= k;
			memcpy(c->objs, &p->shared[p->nshared],
			       k * sizeof(obj));
			c->n = (unsigned int)k;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (obj)
		return obj;
	return p->new_fn ? p->new_fn(p->arg) : NULL;
}

void gs_pool_put(gs_pool *p, void *obj)
{
	struct pool_cache *c;

	if (!p || !obj)
		return;
	c = cache_of(p);
	if (c && c->n < POOL_CACHE_MAX) {
		c->objs[c->n++] = obj;
		return;
	}
	if (!c) {
		spill(p, &obj, 1);
		return;
	}
	/* Full cache: its older half goes to the shared stack. */
	spill(p, c->objs, POOL_BATCH);
	memmove(c->objs, c->objs + POOL_BATCH,
		(POOL_CACHE_MAX - POOL_BATCH) * sizeof(obj));
	c->n = POOL_CACHE_MAX - POOL_BATCH;
	c->objs[c->n++] = obj;
}
