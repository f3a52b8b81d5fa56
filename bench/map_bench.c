// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * gs_map and gs_pool against what a C program would otherwise write:
 *
 *   Map, read-mostly (90% Load, 10% Store of 1024 present 8-byte keys),
 *   with 1, 2 and 4 threads, ns per operation (wall time over all
 *   threads' operations):
 *     gs_map            RCU hash table: readers take no lock
 *     mutex table       a chained hash table of the same shape (copied
 *                       byte-string keys, same hash) under one
 *                       pthread_mutex
 *     rwlock table      the same under a pthread_rwlock (readers share)
 *
 *   Pool, ns per get+put of a 256-byte object, 1, 2 and 4 threads:
 *     gs_pool           per-thread cache
 *     malloc+free       glibc's allocator (itself per-thread cached)
 *
 * Each row: median and best of REPS repetitions. Compare rows only
 * within one run (the VM's TCG makes atomics dear).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "bench.h"

#define NKEYS		1024
#define STORE_EVERY	10	/* one Store per this many operations */

/* ------------------------------------------------------------------ */
/* The locked table: a fixed array of chains, as simple as it gets.    */

#define NBUCKETS	2048

struct lnode {
	struct lnode *next;
	void *value;
	size_t keylen;
	unsigned char key[];
};

struct ltable {
	pthread_mutex_t mutex;
	pthread_rwlock_t rwlock;
	bool rw;
	struct lnode *b[NBUCKETS];
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* gs_map's hash, for the same work per lookup. */
static uint64_t hash_key(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0x1234 ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL), w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
	}
	if (len) {
		w = 0;
		memcpy(&w, p, len);
		h = mix64(h ^ w ^ 0x5851f42d4c957f2dULL);
	}
	return mix64(h ^ 0x1234);
}

static void lt_lock(struct ltable *t, bool write)
{
	if (!t->rw)
		pthread_mutex_lock(&t->mutex);
	else if (write)
		pthread_rwlock_wrlock(&t->rwlock);
	else
		pthread_rwlock_rdlock(&t->rwlock);
}

static void lt_unlock(struct ltable *t)
{
	if (t->rw)
		pthread_rwlock_unlock(&t->rwlock);
	else
		pthread_mutex_unlock(&t->mutex);
}

static struct lnode **lt_find(struct ltable *t, const void *key, size_t len)
{
	struct lnode **np = &t->b[hash_key(key, len) % NBUCKETS];

	for (; *np; np = &(*np)->next)
		if ((*np)->keylen == len && !memcmp((*np)->key, key, len))
			break;
	return np;
}

static int lt_load(struct ltable *t, const void *key, size_t len, void **v)
{
	struct lnode *n;

	lt_lock(t, false);
	n = *lt_find(t, key, len);
	if (n)
		*v = n->value;
	lt_unlock(t);
	return n != NULL;
}

/* Store as gs_map does it: a new node replaces the old one. */
static int lt_store(struct ltable *t, const void *key, size_t len, void *v)
{
	struct lnode *n = malloc(sizeof(*n) + len), **np, *old;

	if (!n)
		return -ENOMEM;
	n->value = v;
	n->keylen = len;
	memcpy(n->key, key, len);
	lt_lock(t, true);
	np = lt_find(t, key, len);
	old = *np;
	n->next = old ? old->next : NULL;
	*np = n;
	lt_unlock(t);
	free(old);
	return 0;
}

static void lt_init(struct ltable *t, bool rw)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->mutex, NULL);
	pthread_rwlock_init(&t->rwlock, NULL);
	t->rw = rw;
}

static void lt_free(struct ltable *t)
{
	for (int i = 0; i < NBUCKETS; i++) {
		while (t->b[i]) {
			struct lnode *n = t->b[i];

			t->b[i] = n->next;
			free(n);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Threads running an operation at once.                               */

struct run {
	int (*op)(void *ctx, uint64_t *rng);
	void *ctx;
	long iters;
	_Atomic int ready, go;
	_Atomic int failed;
};

static void *run_thread(void *arg)
{
	struct run *r = arg;
	uint64_t rng = (uint64_t)(uintptr_t)&rng | 1;

	atomic_fetch_add(&r->ready, 1);
	while (!atomic_load(&r->go))
		;
	for (long i = 0; i < r->iters; i++)
		if (r->op(r->ctx, &rng))
			atomic_store(&r->failed, 1);
	return NULL;
}

/* ns per operation with @nthr threads each doing @iters of them. */
static void measure_threads(const char *name, int (*op)(void *, uint64_t *),
			    void *ctx, int nthr, long iters)
{
	double ns[REPS];
	pthread_t thr[8];
	char label[64];

	for (int rep = 0; rep < REPS; rep++) {
		struct run r = { .op = op, .ctx = ctx, .iters = iters };
		uint64_t t0;

		for (int i = 0; i < nthr; i++)
			if (pthread_create(&thr[i], NULL, run_thread, &r))
				bench_fail(name);
		while (atomic_load(&r.ready) < nthr)
			;
		t0 = gs_now();
		atomic_store(&r.go, 1);
		for (int i = 0; i < nthr; i++)
			pthread_join(thr[i], NULL);
		ns[rep] = (double)(gs_now() - t0) / (double)(nthr * iters);
		if (atomic_load(&r.failed))
			bench_fail(name);
	}
	snprintf(label, sizeof(label), "%s, %d thread%s", name, nthr,
		 nthr > 1 ? "s" : "");
	print_row(label, ns, REPS);
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ------------------------------------------------------------------ */
/* The operations.                                                     */

static int map_op(void *ctx, uint64_t *rng)
{
	uint64_t r = next_rand(rng), key = r % NKEYS;
	void *v;

	if (r % STORE_EVERY == 0)
		return gs_map_store(ctx, &key, sizeof(key), (void *)(uintptr_t)r);
	return gs_map_load(ctx, &key, sizeof(key), &v) != 1;
}

static int table_op(void *ctx, uint64_t *rng)
{
	uint64_t r = next_rand(rng), key = r % NKEYS;
	void *v;

	if (r % STORE_EVERY == 0)
		return lt_store(ctx, &key, sizeof(key), (void *)(uintptr_t)r);
	return lt_load(ctx, &key, sizeof(key), &v) != 1;
}

#define OBJ_SIZE	256

static void *obj_new(void *arg)
{
	(void)arg;
	return malloc(OBJ_SIZE);
}

static void obj_free(void *obj, void *arg)
{
	(void)arg;
	free(obj);
}

static int pool_op(void *ctx, uint64_t *rng)
{
	char *obj = gs_pool_get(ctx);

	(void)rng;
	if (!obj)
		return 1;
	obj[0] = 1;	/* touch it, as a user would */
	gs_pool_put(ctx, obj);
	return 0;
}

static int malloc_op(void *ctx, uint64_t *rng)
{
	char *obj = malloc(OBJ_SIZE);

	(void)ctx;
	(void)rng;
	if (!obj)
		return 1;
	obj[0] = 1;
	__asm__ volatile("" : : "r"(obj) : "memory");	/* keep the pair */
	free(obj);
	return 0;
}

int main(void)
{
	static struct ltable mt, rwt;
	const int threads[] = { 1, 2, 4 };
	long iters = 200000;
	gs_pool *pool;
	gs_map *m;

	if (gs_map_create(&m) || gs_pool_create(&pool, obj_new, NULL, obj_free)) {
		fprintf(stderr, "map_bench: out of memory\n");
		return 1;
	}
	lt_init(&mt, false);
	lt_init(&rwt, true);
	for (uint64_t k = 0; k < NKEYS; k++) {
		if (gs_map_store(m, &k, sizeof(k), NULL) ||
		    lt_store(&mt, &k, sizeof(k), NULL) ||
		    lt_store(&rwt, &k, sizeof(k), NULL)) {
			fprintf(stderr, "map_bench: out of memory\n");
			return 1;
		}
	}

	printf("\nMap, 90%% Load / 10%% Store, %d keys: ns per operation "
	       "(%d reps of %ld per thread)\n\n", NKEYS, REPS, iters);
	print_header("map");
	for (int i = 0; i < 3; i++) {
		measure_threads("gs_map (RCU)", map_op, m, threads[i], iters);
		measure_threads("mutex table", table_op, &mt, threads[i], iters);
		measure_threads("rwlock table", table_op, &rwt, threads[i], iters);
	}

	printf("\nPool, get+put of %d bytes: ns per pair (%d reps of %ld per "
	       "thread)\n\n", OBJ_SIZE, REPS, iters * 2);
	print_header("pool");
	for (int i = 0; i < 3; i++) {
		measure_threads("gs_pool", pool_op, pool, threads[i], iters * 2);
		measure_threads("malloc+free", malloc_op, NULL, threads[i],
				iters * 2);
	}
	gs_pool_destroy(pool);
	gs_map_destroy(m);
	lt_free(&mt);
	lt_free(&rwt);
	return 0;
}
