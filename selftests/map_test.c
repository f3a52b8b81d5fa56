// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of gs_map (Go's sync.Map) and gs_pool (Go's sync.Pool), the
 * process-local parts of libgosync (no /dev/gosync needed):
 *
 *  - every map operation's result, flags and output values, as Go's;
 *  - -EINVAL for a NULL map, key or callback; -ENOMEM (a key too big to
 *    copy) leaves the map unchanged;
 *  - keys are copied byte strings; values are compared by identity;
 *  - Range visits each entry once and stops when told; Clear; Len;
 *  - growth through many resizes;
 *  - the RCU read side: gs_map_synchronize() waits for a reader;
 *  - concurrency: writers on keys they own, CAS counters, inserters and
 *    deleters racing on shared keys, readers and Range checking what they
 *    see; oracle checks once the threads are joined;
 *  - the pool: New counts, LIFO reuse, the idle bound, a thread's cache
 *    moved to the pool at its exit, destroy freeing every object once
 *    (including other threads' caches), and never one object to two
 *    holders at once under concurrency.
 *
 * It runs in the VMs with the other selftests, and natively on the host
 * under ThreadSanitizer ('make check').
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

/*
 * A key too large to copy makes the map's allocation fail: the sanitizer
 * allocators must then return NULL as malloc does, not abort.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=64";
}

const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=64";
}

#define V(x)		((void *)(uintptr_t)(x))
#define S(s)		(s), strlen(s)	/* a C string as a key */
#define BIG_KEY		((size_t)65 << 20)	/* over the sanitizers' limit */

static void *const poison = (void *)(uintptr_t)0xdeadbeef;

/* ------------------------------------------------------------------ */
/* Map: single-threaded semantics.                                     */

FIXTURE(map) {
	gs_map *m;
};

FIXTURE_SETUP(map)
{
	ASSERT_EQ(0, gs_map_create(&self->m));
	ASSERT_NE(NULL, self->m);
}

FIXTURE_TEARDOWN(map)
{
	gs_map_destroy(self->m);
}

TEST(map_null_arguments_are_einval)
{
	gs_map *m;
	void *v = poison;
	char k = 'k';

	ASSERT_EQ(-EINVAL, gs_map_create(NULL));
	ASSERT_EQ(0, gs_map_create(&m));

	EXPECT_EQ(-EINVAL, gs_map_load(NULL, &k, 1, &v));
	EXPECT_EQ(-EINVAL, gs_map_load(m, NULL, 0, &v));
	EXPECT_EQ(poison, v);
	EXPECT_EQ(-EINVAL, gs_map_store(NULL, &k, 1, V(1)));
	EXPECT_EQ(-EINVAL, gs_map_store(m, NULL, 0, V(1)));
	EXPECT_EQ(-EINVAL, gs_map_load_or_store(NULL, &k, 1, V(1), &v));
	EXPECT_EQ(-EINVAL, gs_map_load_or_store(m, NULL, 1, V(1), &v));
	EXPECT_EQ(-EINVAL, gs_map_load_and_delete(NULL, &k, 1, &v));
	EXPECT_EQ(-EINVAL, gs_map_load_and_delete(m, NULL, 1, &v));
	EXPECT_EQ(-EINVAL, gs_map_delete(NULL, &k, 1));
	EXPECT_EQ(-EINVAL, gs_map_delete(m, NULL, 1));
	EXPECT_EQ(-EINVAL, gs_map_swap(NULL, &k, 1, V(1), &v));
	EXPECT_EQ(-EINVAL, gs_map_swap(m, NULL, 1, V(1), &v));
	EXPECT_EQ(-EINVAL, gs_map_compare_and_swap(NULL, &k, 1, V(0), V(1)));
	EXPECT_EQ(-EINVAL, gs_map_compare_and_swap(m, NULL, 1, V(0), V(1)));
	EXPECT_EQ(-EINVAL, gs_map_compare_and_delete(NULL, &k, 1, V(0)));
	EXPECT_EQ(-EINVAL, gs_map_compare_and_delete(m, NULL, 1, V(0)));
	EXPECT_EQ(-EINVAL, gs_map_range(NULL, NULL, NULL));
	EXPECT_EQ(-EINVAL, gs_map_range(m, NULL, NULL));
	EXPECT_EQ(-EINVAL, gs_map_clear(NULL));
	EXPECT_EQ(0, gs_map_len(NULL));
	EXPECT_EQ(poison, v);	/* no output written on an error */
	EXPECT_EQ(0, gs_map_len(m));	/* nothing was stored */
	gs_map_destroy(m);
	gs_map_destroy(NULL);
}

TEST_F(map, load_and_store)
{
	void *v = poison;

	EXPECT_EQ(0, gs_map_load(self->m, S("a"), &v));
	EXPECT_EQ(NULL, v);
	EXPECT_EQ(0, gs_map_store(self->m, S("a"), V(1)));
	EXPECT_EQ(1, gs_map_load(self->m, S("a"), &v));
	EXPECT_EQ(V(1), v);
	EXPECT_EQ(0, gs_map_store(self->m, S("a"), V(2)));	/* overwrite */
	EXPECT_EQ(1, gs_map_load(self->m, S("a"), &v));
	EXPECT_EQ(V(2), v);
	EXPECT_EQ(1, gs_map_load(self->m, S("a"), NULL));	/* no output */
	EXPECT_EQ(1, gs_map_len(self->m));

	/* NULL is a value like any other (Go's nil): present, loaded. */
	EXPECT_EQ(0, gs_map_store(self->m, S("nil"), NULL));
	v = poison;
	EXPECT_EQ(1, gs_map_load(self->m, S("nil"), &v));
	EXPECT_EQ(NULL, v);
	EXPECT_EQ(2, gs_map_len(self->m));
}

TEST_F(map, keys_are_copied_byte_strings)
{
	char buf[1000];
	uint32_t ik = 7;
	void *v;

	memset(buf, 'x', sizeof(buf));
	ASSERT_EQ(0, gs_map_store(self->m, buf, sizeof(buf), V(1)));
	memset(buf, 'y', sizeof(buf));	/* the map has its own copy */
	EXPECT_EQ(0, gs_map_load(self->m, buf, sizeof(buf), &v));
	memset(buf, 'x', sizeof(buf));
	EXPECT_EQ(1, gs_map_load(self->m, buf, sizeof(buf), &v));
	EXPECT_EQ(V(1), v);
	EXPECT_EQ(0, gs_map_load(self->m, buf, sizeof(buf) - 1, &v));

	/* Length counts: "ab", "ab\0" and "" are three keys. */
	ASSERT_EQ(0, gs_map_store(self->m, "ab", 2, V(2)));
	ASSERT_EQ(0, gs_map_store(self->m, "ab", 3, V(3)));
	ASSERT_EQ(0, gs_map_store(self->m, "", 0, V(4)));
	EXPECT_EQ(1, gs_map_load(self->m, "ab", 2, &v));
	EXPECT_EQ(V(2), v);
	EXPECT_EQ(1, gs_map_load(self->m, "ab\0zz", 3, &v));
	EXPECT_EQ(V(3), v);
	EXPECT_EQ(1, gs_map_load(self->m, "other", 0, &v));	/* "" */
	EXPECT_EQ(V(4), v);

	/* An integer key, by its bytes. */
	ASSERT_EQ(0, gs_map_store(self->m, &ik, sizeof(ik), V(5)));
	ik = 7;
	EXPECT_EQ(1, gs_map_load(self->m, &ik, sizeof(ik), &v));
	EXPECT_EQ(V(5), v);
	EXPECT_EQ(5, gs_map_len(self->m));
}

TEST_F(map, load_or_store)
{
	void *v = poison;

	EXPECT_EQ(0, gs_map_load_or_store(self->m, S("k"), V(1), &v));
	EXPECT_EQ(V(1), v);	/* stored: the actual value is ours */
	v = poison;
	EXPECT_EQ(1, gs_map_load_or_store(self->m, S("k"), V(2), &v));
	EXPECT_EQ(V(1), v);	/* loaded: the existing one */
	EXPECT_EQ(1, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(V(1), v);	/* and not overwritten */
	EXPECT_EQ(1, gs_map_load_or_store(self->m, S("k"), V(3), NULL));
	EXPECT_EQ(0, gs_map_load_or_store(self->m, S("k2"), NULL, &v));
	EXPECT_EQ(NULL, v);
	EXPECT_EQ(1, gs_map_load_or_store(self->m, S("k2"), V(4), &v));
	EXPECT_EQ(NULL, v);
	EXPECT_EQ(2, gs_map_len(self->m));
}

TEST_F(map, load_and_delete_and_delete)
{
	void *v = poison;

	EXPECT_EQ(0, gs_map_load_and_delete(self->m, S("k"), &v));
	EXPECT_EQ(NULL, v);
	ASSERT_EQ(0, gs_map_store(self->m, S("k"), V(9)));
	EXPECT_EQ(1, gs_map_load_and_delete(self->m, S("k"), &v));
	EXPECT_EQ(V(9), v);
	EXPECT_EQ(0, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(0, gs_map_load_and_delete(self->m, S("k"), &v));

	ASSERT_EQ(0, gs_map_store(self->m, S("d"), V(1)));
	EXPECT_EQ(1, gs_map_delete(self->m, S("d")));
	EXPECT_EQ(0, gs_map_delete(self->m, S("d")));
	EXPECT_EQ(0, gs_map_load(self->m, S("d"), NULL));
	EXPECT_EQ(0, gs_map_len(self->m));
	/* A deleted key can be stored again. */
	ASSERT_EQ(0, gs_map_load_or_store(self->m, S("d"), V(2), &v));
	EXPECT_EQ(1, gs_map_load(self->m, S("d"), &v));
	EXPECT_EQ(V(2), v);
}

TEST_F(map, swap)
{
	void *v = poison;

	EXPECT_EQ(0, gs_map_swap(self->m, S("k"), V(1), &v));
	EXPECT_EQ(NULL, v);
	EXPECT_EQ(1, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(V(1), v);
	EXPECT_EQ(1, gs_map_swap(self->m, S("k"), V(2), &v));
	EXPECT_EQ(V(1), v);
	EXPECT_EQ(1, gs_map_swap(self->m, S("k"), V(3), NULL));
	EXPECT_EQ(1, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(V(3), v);
	EXPECT_EQ(1, gs_map_len(self->m));
}

TEST_F(map, compare_and_swap)
{
	void *v;

	/* Absent: nothing to compare with; nothing is stored. */
	EXPECT_EQ(0, gs_map_compare_and_swap(self->m, S("k"), NULL, V(1)));
	EXPECT_EQ(0, gs_map_load(self->m, S("k"), &v));
	ASSERT_EQ(0, gs_map_store(self->m, S("k"), V(1)));
	EXPECT_EQ(0, gs_map_compare_and_swap(self->m, S("k"), V(2), V(3)));
	EXPECT_EQ(1, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(V(1), v);
	EXPECT_EQ(1, gs_map_compare_and_swap(self->m, S("k"), V(1), V(3)));
	EXPECT_EQ(1, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(V(3), v);
	EXPECT_EQ(0, gs_map_compare_and_swap(self->m, S("k"), V(1), V(4)));
	/* NULL values compare like any other. */
	EXPECT_EQ(1, gs_map_compare_and_swap(self->m, S("k"), V(3), NULL));
	EXPECT_EQ(1, gs_map_compare_and_swap(self->m, S("k"), NULL, V(5)));
	EXPECT_EQ(1, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(V(5), v);
	EXPECT_EQ(1, gs_map_len(self->m));
}

TEST_F(map, compare_and_delete)
{
	void *v;

	EXPECT_EQ(0, gs_map_compare_and_delete(self->m, S("k"), NULL));
	ASSERT_EQ(0, gs_map_store(self->m, S("k"), V(1)));
	EXPECT_EQ(0, gs_map_compare_and_delete(self->m, S("k"), V(2)));
	EXPECT_EQ(1, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(1, gs_map_compare_and_delete(self->m, S("k"), V(1)));
	EXPECT_EQ(0, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(0, gs_map_compare_and_delete(self->m, S("k"), V(1)));
}

TEST_F(map, allocation_failure_is_enomem_and_changes_nothing)
{
	size_t len = BIG_KEY;
	void *big, *v = poison;

	/*
	 * A key of 65 MiB (zero pages, read-only: it costs no memory) whose
	 * copy cannot be allocated: the sanitizers' allocators are told to
	 * refuse more than 64 MiB (see their default options above); for
	 * glibc's, an address-space limit leaves less than that free (this
	 * test runs in its own process).
	 */
	big = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	ASSERT_NE(MAP_FAILED, big);
	ASSERT_EQ(0, gs_map_store(self->m, S("k"), V(1)));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	{
		unsigned long pages = 0;
		FILE *f = fopen("/proc/self/statm", "r");
		struct rlimit rl;

		ASSERT_NE(NULL, f);
		ASSERT_EQ(1, fscanf(f, "%lu", &pages));
		fclose(f);
		rl.rlim_cur = rl.rlim_max = pages * (rlim_t)sysconf(_SC_PAGESIZE) +
					    ((rlim_t)32 << 20);
		ASSERT_EQ(0, setrlimit(RLIMIT_AS, &rl));
	}
#endif
	EXPECT_EQ(-ENOMEM, gs_map_store(self->m, big, len, V(2)));
	EXPECT_EQ(-ENOMEM, gs_map_swap(self->m, big, len, V(2), &v));
	EXPECT_EQ(poison, v);
	EXPECT_EQ(-ENOMEM, gs_map_load_or_store(self->m, big, len, V(2), &v));
	EXPECT_EQ(poison, v);
	EXPECT_EQ(1, gs_map_len(self->m));
	/* Calls that need no new node still answer. */
	EXPECT_EQ(0, gs_map_load(self->m, big, len, &v));
	EXPECT_EQ(0, gs_map_compare_and_swap(self->m, big, len, V(0), V(1)));
	EXPECT_EQ(0, gs_map_delete(self->m, big, len));
	EXPECT_EQ(1, gs_map_load(self->m, S("k"), &v));
	EXPECT_EQ(V(1), v);
	munmap(big, len);
}

/* Range callbacks. */
struct visits {
	gs_map *m;
	int n;			/* keys 0..n-1 (uint32 bytes) */
	int *seen;
	int calls;
	int stop_after;		/* 0: never stop */
	bool delete;		/* delete each key visited */
	bool bad;
};

static bool visit(const void *key, size_t keylen, void *value, void *arg)
{
	struct visits *vs = arg;
	uint32_t k;

	vs->calls++;
	if (keylen != sizeof(k)) {
		vs->bad = true;
		return true;
	}
	memcpy(&k, key, sizeof(k));
	if (k >= (uint32_t)vs->n || value != V(k + 1000))
		vs->bad = true;
	else
		vs->seen[k]++;
	if (vs->delete && gs_map_delete(vs->m, key, keylen) != 1)
		vs->bad = true;
	return !vs->stop_after || vs->calls < vs->stop_after;
}

static int fill(gs_map *m, int n)
{
	for (uint32_t k = 0; k < (uint32_t)n; k++) {
		int err = gs_map_store(m, &k, sizeof(k), V(k + 1000));

		if (err)
			return err;
	}
	return 0;
}

TEST_F(map, range_visits_each_entry_once)
{
	struct visits vs = { .m = self->m, .n = 3000 };

	vs.seen = calloc((size_t)vs.n, sizeof(int));
	ASSERT_NE(NULL, vs.seen);
	ASSERT_EQ(0, gs_map_range(self->m, visit, &vs));
	EXPECT_EQ(0, vs.calls);	/* empty */
	ASSERT_EQ(0, fill(self->m, vs.n));
	ASSERT_EQ(0, gs_map_range(self->m, visit, &vs));
	EXPECT_FALSE(vs.bad);
	EXPECT_EQ(vs.n, vs.calls);
	for (int key = 0; key < vs.n; key++) {
		ASSERT_EQ(1, vs.seen[key]) TH_LOG("key %d", key);
	}
	free(vs.seen);
}

TEST_F(map, range_stops_when_fn_returns_false)
{
	struct visits vs = { .m = self->m, .n = 100, .stop_after = 5 };

	vs.seen = calloc((size_t)vs.n, sizeof(int));
	ASSERT_NE(NULL, vs.seen);
	ASSERT_EQ(0, fill(self->m, vs.n));
	ASSERT_EQ(0, gs_map_range(self->m, visit, &vs));
	EXPECT_FALSE(vs.bad);
	EXPECT_EQ(5, vs.calls);
	vs.calls = 0;
	vs.stop_after = 1;
	ASSERT_EQ(0, gs_map_range(self->m, visit, &vs));
	EXPECT_EQ(1, vs.calls);
	free(vs.seen);
}

TEST_F(map, range_may_delete_what_it_visits)
{
	struct visits vs = { .m = self->m, .n = 500, .delete = true };

	vs.seen = calloc((size_t)vs.n, sizeof(int));
	ASSERT_NE(NULL, vs.seen);
	ASSERT_EQ(0, fill(self->m, vs.n));
	ASSERT_EQ(0, gs_map_range(self->m, visit, &vs));
	EXPECT_FALSE(vs.bad);
	EXPECT_EQ(vs.n, vs.calls);
	for (int i = 0; i < vs.n; i++)
		ASSERT_EQ(1, vs.seen[i]);
	EXPECT_EQ(0, gs_map_len(self->m));
	free(vs.seen);
}

TEST_F(map, clear_and_reuse)
{
	void *v;

	EXPECT_EQ(0, gs_map_clear(self->m));	/* empty: fine */
	ASSERT_EQ(0, fill(self->m, 1000));
	EXPECT_EQ(1000, gs_map_len(self->m));
	EXPECT_EQ(0, gs_map_clear(self->m));
	EXPECT_EQ(0, gs_map_len(self->m));
	for (uint32_t k = 0; k < 1000; k += 97)
		EXPECT_EQ(0, gs_map_load(self->m, &k, sizeof(k), &v));
	ASSERT_EQ(0, fill(self->m, 10));
	EXPECT_EQ(10, gs_map_len(self->m));
}

TEST_F(map, grows_through_resizes)
{
	const uint32_t n = 20000;
	void *v;

	ASSERT_EQ(0, fill(self->m, (int)n));
	EXPECT_EQ(n, gs_map_len(self->m));
	for (uint32_t k = 0; k < n; k++) {
		ASSERT_EQ(1, gs_map_load(self->m, &k, sizeof(k), &v));
		ASSERT_EQ(V(k + 1000), v);
	}
	for (uint32_t k = 0; k < n; k += 2)
		ASSERT_EQ(1, gs_map_delete(self->m, &k, sizeof(k)));
	EXPECT_EQ(n / 2, gs_map_len(self->m));
	for (uint32_t k = 0; k < n; k++)
		ASSERT_EQ((int)(k & 1), gs_map_load(self->m, &k, sizeof(k), &v));
}

/* ------------------------------------------------------------------ */
/* The RCU read side.                                                  */

struct remover {
	gs_map *m;
	atomic_int state;	/* 1: swapped, 2: grace period over */
	void *old;
};

static void *remove_and_synchronize(void *arg)
{
	struct remover *r = arg;

	gs_map_swap(r->m, S("obj"), NULL, &r->old);
	atomic_store(&r->state, 1);
	gs_map_synchronize();
	atomic_store(&r->state, 2);
	return NULL;
}

TEST_F(map, synchronize_waits_for_readers)
{
	struct remover r = { .m = self->m };
	int *obj = malloc(sizeof(*obj));
	pthread_t thr;
	uint64_t t0;
	void *v;

	ASSERT_NE(NULL, obj);
	*obj = 42;
	ASSERT_EQ(0, gs_map_store(self->m, S("obj"), obj));
	gs_map_read_lock();
	ASSERT_EQ(1, gs_map_load(self->m, S("obj"), &v));
	ASSERT_EQ(0, start_thread(&thr, remove_and_synchronize, &r));
	t0 = mono_ns();
	while (atomic_load(&r.state) < 1 && ms_since(t0) < WAIT_LIMIT_MS)
		usleep(1000);
	ASSERT_EQ(1, atomic_load(&r.state));
	sleep_ms(100);
	/* Removed, but this reader's section holds the grace period. */
	EXPECT_EQ(1, atomic_load(&r.state));
	EXPECT_EQ(42, *(int *)v);
	gs_map_read_unlock();
	ASSERT_EQ(0, join_ms(thr, WAIT_LIMIT_MS));
	EXPECT_EQ(2, atomic_load(&r.state));
	EXPECT_EQ(obj, r.old);
	free(r.old);	/* safe now: no reader can hold it */
}

/* ------------------------------------------------------------------ */
/* Map under concurrency.                                              */

#define WRITERS		3
#define OWNED_KEYS	64	/* per writer */
#define COUNTERS	4
#define CAS_THREADS	3
#define SHARED_KEYS	16
#define DELETERS	3
#define READERS		2
/* ASan under TCG (the VMs' asan run) is some 50 times slower than native. */
#ifdef __SANITIZE_ADDRESS__
#define ROUNDS		300
#else
#define ROUNDS		1500
#endif

/*
 * Values are integers, never dereferenced: owned keys hold
 * tag(key, round) with key in bits 8.., so a reader can check that a
 * value it loads belongs to the key it asked for; counters hold their
 * count; shared keys hold tokens (thread, sequence), each unique.
 */
#define OWNED_VALUE(key, round)	V(((uintptr_t)(key) << 20) | ((round) & 0xfffff))
#define OWNED_KEY_OF(v)		((uintptr_t)(v) >> 20)
#define TOKEN(t, seq)		V(((uintptr_t)(t) + 1) << 32 | (uintptr_t)(seq))

struct mix {
	gs_map *m;
	atomic_int stop;
	atomic_int bad;
	atomic_long cas_ok[COUNTERS];
	atomic_long inserted, deleted;
	atomic_long range_passes;
};

struct mix_arg {
	struct mix *mx;
	int id;
};

static void owned_key(uint32_t *k, int writer, int i)
{
	*k = (uint32_t)(writer * OWNED_KEYS + i);
}

/*
 * A writer owns keys w*OWNED_KEYS..; in round r it stores, swaps (and
 * checks the previous value it stored itself), deletes the odd ones and
 * re-inserts them with LoadOrStore. At the end even keys hold
 * OWNED_VALUE(key, ROUNDS) and odd keys are absent.
 */
static void *writer(void *arg)
{
	struct mix_arg *a = arg;
	struct mix *mx = a->mx;

	for (int r = 1; r <= ROUNDS; r++) {
		for (int i = 0; i < OWNED_KEYS; i++) {
			uint32_t k;
			void *prev;
			int ret;

			owned_key(&k, a->id, i);
			if (i % 4 == r % 4)
				continue;	/* leave some keys alone a while */
			ret = gs_map_swap(mx->m, &k, sizeof(k), OWNED_VALUE(k, r), &prev);
			if (ret < 0 || (ret == 1 && OWNED_KEY_OF(prev) != k))
				atomic_store(&mx->bad, 1);
			if (i & 1) {
				if (gs_map_load_and_delete(mx->m, &k, sizeof(k), &prev) != 1 ||
				    prev != OWNED_VALUE(k, r))
					atomic_store(&mx->bad, 2);
				if (r % 2 && gs_map_load_or_store(mx->m, &k, sizeof(k),
								  OWNED_VALUE(k, r), &prev))
					atomic_store(&mx->bad, 3);
			}
		}
	}
	/* The final state: even keys present, odd keys absent. */
	for (int i = 0; i < OWNED_KEYS; i++) {
		uint32_t k;

		owned_key(&k, a->id, i);
		if (i & 1)
			gs_map_delete(mx->m, &k, sizeof(k));
		else if (gs_map_store(mx->m, &k, sizeof(k), OWNED_VALUE(k, ROUNDS)))
			atomic_store(&mx->bad, 4);
	}
	return NULL;
}

/* CAS incrementers: every successful CAS adds one to its counter. */
static void *cas_incrementer(void *arg)
{
	struct mix_arg *a = arg;
	struct mix *mx = a->mx;
	char key[8];

	for (int r = 0; r < ROUNDS * 4; r++) {
		int c = (r + a->id) % COUNTERS;
		void *v;

		snprintf(key, sizeof(key), "ctr-%d", c);
		if (gs_map_load(mx->m, S(key), &v) != 1) {
			atomic_store(&mx->bad, 5);
			break;
		}
		switch (gs_map_compare_and_swap(mx->m, S(key), v,
						V((uintptr_t)v + 1))) {
		case 1:
			atomic_fetch_add(&mx->cas_ok[c], 1);
			break;
		case 0:
			break;
		default:
			atomic_store(&mx->bad, 6);
		}
	}
	return NULL;
}

/*
 * Inserters/deleters on shared keys: LoadOrStore a unique token, and
 * delete whatever is there (LoadAndDelete, or CompareAndDelete of a
 * loaded token). Every token inserted is deleted at most once, so at
 * the end inserted == deleted + tokens still present.
 */
static void *churner(void *arg)
{
	struct mix_arg *a = arg;
	struct mix *mx = a->mx;
	uint32_t seq = 0;

	for (int r = 0; r < ROUNDS * 2; r++) {
		char key[8];
		void *v, *tok = TOKEN(a->id, ++seq);
		int ret;

		snprintf(key, sizeof(key), "s%d", (r * 7 + a->id) % SHARED_KEYS);
		ret = gs_map_load_or_store(mx->m, S(key), tok, &v);
		if (ret == 0) {
			atomic_fetch_add(&mx->inserted, 1);
			if (v != tok)
				atomic_store(&mx->bad, 7);
		} else if (ret != 1 || (uintptr_t)v >> 32 == 0) {
			atomic_store(&mx->bad, 8);
		}
		snprintf(key, sizeof(key), "s%d", (r * 5 + a->id) % SHARED_KEYS);
		if (r & 1) {
			ret = gs_map_load_and_delete(mx->m, S(key), &v);
		} else {
			ret = gs_map_load(mx->m, S(key), &v);
			if (ret == 1)
				ret = gs_map_compare_and_delete(mx->m, S(key), v);
		}
		if (ret == 1)
			atomic_fetch_add(&mx->deleted, 1);
		else if (ret)
			atomic_store(&mx->bad, 9);
	}
	return NULL;
}

static bool check_entry(const void *key, size_t keylen, void *value, void *arg)
{
	struct mix *mx = arg;
	uint32_t k;

	if (keylen == sizeof(k)) {	/* an owned key */
		memcpy(&k, key, sizeof(k));
		if (OWNED_KEY_OF(value) != k)
			atomic_store(&mx->bad, 10);
	}
	return true;
}

static void *reader(void *arg)
{
	struct mix_arg *a = arg;
	struct mix *mx = a->mx;
	uint32_t n = 0;

	while (!atomic_load(&mx->stop)) {
		uint32_t k = (n++ * 2654435761u) % (WRITERS * OWNED_KEYS);
		void *v;
		int ret = gs_map_load(mx->m, &k, sizeof(k), &v);

		if (ret < 0 || (ret == 1 && OWNED_KEY_OF(v) != k))
			atomic_store(&mx->bad, 11);
		if (a->id == 0 && n % 256 == 0) {
			gs_map_range(mx->m, check_entry, mx);
			atomic_fetch_add(&mx->range_passes, 1);
		}
	}
	return NULL;
}

static bool count_tokens(const void *key, size_t keylen, void *value, void *arg)
{
	long *n = arg;

	if (keylen >= 2 && ((const char *)key)[0] == 's' && (uintptr_t)value >> 32)
		++*n;
	return true;
}

/* Eleven threads on the VMs' two vCPUs, under ASan and TCG: allow time. */
TEST_F(map, concurrent_mix_matches_the_oracle)
{
	struct mix mx = { .m = self->m };
	pthread_t thr[WRITERS + CAS_THREADS + DELETERS + READERS];
	struct mix_arg args[WRITERS + CAS_THREADS + DELETERS + READERS];
	int nthr = 0, nwork;
	long present = 0, total = 0;
	char key[8];
	void *v;

	for (int c = 0; c < COUNTERS; c++) {
		snprintf(key, sizeof(key), "ctr-%d", c);
		ASSERT_EQ(0, gs_map_store(self->m, S(key), V(0)));
	}
	for (int i = 0; i < WRITERS; i++, nthr++) {
		args[nthr] = (struct mix_arg){ &mx, i };
		ASSERT_EQ(0, start_thread(&thr[nthr], writer, &args[nthr]));
	}
	for (int i = 0; i < CAS_THREADS; i++, nthr++) {
		args[nthr] = (struct mix_arg){ &mx, i };
		ASSERT_EQ(0, start_thread(&thr[nthr], cas_incrementer, &args[nthr]));
	}
	for (int i = 0; i < DELETERS; i++, nthr++) {
		args[nthr] = (struct mix_arg){ &mx, i };
		ASSERT_EQ(0, start_thread(&thr[nthr], churner, &args[nthr]));
	}
	nwork = nthr;
	for (int i = 0; i < READERS; i++, nthr++) {
		args[nthr] = (struct mix_arg){ &mx, i };
		ASSERT_EQ(0, start_thread(&thr[nthr], reader, &args[nthr]));
	}
	for (int i = 0; i < nthr; i++) {
		if (i == nwork)
			atomic_store(&mx.stop, 1);	/* the workers are done */
		if (join_ms(thr[i], 120000)) {
			/* Its threads use this frame: do not return from it. */
			TH_LOG("thread %d did not finish", i);
			_exit(KSFT_FAIL);
		}
	}

	/* Quiescent: the oracle. */
	EXPECT_EQ(0, atomic_load(&mx.bad));
	for (int w = 0; w < WRITERS; w++) {
		for (int i = 0; i < OWNED_KEYS; i++) {
			uint32_t k;

			owned_key(&k, w, i);
			ASSERT_EQ(!(i & 1), gs_map_load(self->m, &k, sizeof(k), &v));
			if (!(i & 1))
				ASSERT_EQ(OWNED_VALUE(k, ROUNDS), v);
		}
	}
	for (int c = 0; c < COUNTERS; c++) {
		snprintf(key, sizeof(key), "ctr-%d", c);
		ASSERT_EQ(1, gs_map_load(self->m, S(key), &v));
		EXPECT_EQ(atomic_load(&mx.cas_ok[c]), (long)(uintptr_t)v);
		total += (long)(uintptr_t)v;
	}
	EXPECT_LT(0, total);
	ASSERT_EQ(0, gs_map_range(self->m, count_tokens, &present));
	EXPECT_EQ(atomic_load(&mx.inserted), atomic_load(&mx.deleted) + present);
	EXPECT_EQ(WRITERS * OWNED_KEYS / 2 + COUNTERS + present,
		  (long)gs_map_len(self->m));
	TH_LOG("CAS successes %ld, tokens inserted %ld, range passes %ld", total,
	       atomic_load(&mx.inserted), atomic_load(&mx.range_passes));
}

/* Range sees every stable entry exactly once while others churn. */
struct churn {
	gs_map *m;
	atomic_int stop;
	int id;
};

static void *churn_keys(void *arg)
{
	struct churn *c = arg;
	uint64_t k = (uint64_t)c->id << 32;

	/* Grow the table by thousands of keys and shrink it again. */
	while (!atomic_load(&c->stop)) {
		for (uint64_t i = 0; i < 2000; i++) {
			uint64_t kk = k | i;

			gs_map_store(c->m, &kk, sizeof(kk), V(1));
		}
		for (uint64_t i = 0; i < 2000; i++) {
			uint64_t kk = k | i;

			gs_map_delete(c->m, &kk, sizeof(kk));
		}
	}
	return NULL;
}

TEST_F(map, range_sees_stable_entries_once_during_churn)
{
	struct visits vs = { .m = self->m, .n = 300 };
	struct churn ch[2] = { { .m = self->m, .id = 1 }, { .m = self->m, .id = 2 } };
	pthread_t thr[2];
	int *seen = calloc((size_t)vs.n, sizeof(int));

	ASSERT_NE(NULL, seen);
	ASSERT_EQ(0, fill(self->m, vs.n));
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, start_thread(&thr[i], churn_keys, &ch[i]));
	for (int pass = 0; pass < 30; pass++) {
		memset(seen, 0, (size_t)vs.n * sizeof(int));
		vs.seen = seen;
		vs.calls = 0;
		ASSERT_EQ(0, gs_map_range(self->m, visit, &vs));
		/* Churned keys are 8 bytes long: visit() counts them bad. */
		for (int key = 0; key < vs.n; key++) {
			ASSERT_EQ(1, seen[key]) TH_LOG("pass %d key %d", pass, key);
		}
	}
	for (int i = 0; i < 2; i++) {
		atomic_store(&ch[i].stop, 1);
		ASSERT_EQ(0, join_ms(thr[i], 60000));
	}
	free(seen);
}

/* ------------------------------------------------------------------ */
/* Pool.                                                                */

#define OBJ_MAGIC	0x600d0b1ec7ULL

struct obj {
	uint64_t magic;
	atomic_int holder;	/* 0: in the pool; else the holder's id */
	atomic_int frees;
};

struct objs {
	atomic_int news, frees;
	pthread_mutex_t lock;
	struct obj *all[4096];	/* every object made, to check at the end */
	int nall;
};

static void *obj_new(void *arg)
{
	struct objs *os = arg;
	struct obj *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->magic = OBJ_MAGIC;
	atomic_fetch_add(&os->news, 1);
	pthread_mutex_lock(&os->lock);
	if (os->nall < (int)(sizeof(os->all) / sizeof(os->all[0])))
		os->all[os->nall++] = o;
	pthread_mutex_unlock(&os->lock);
	return o;
}

/* Counts instead of freeing: the test checks each is freed exactly once. */
static void obj_free(void *obj, void *arg)
{
	struct objs *os = arg;
	struct obj *o = obj;

	atomic_fetch_add(&o->frees, 1);
	atomic_fetch_add(&os->frees, 1);
}

static void objs_init(struct objs *os)
{
	memset(os, 0, sizeof(*os));
	pthread_mutex_init(&os->lock, NULL);
}

/* Every object made was freed exactly once; then really free them. */
static int objs_check_and_free(struct objs *os)
{
	int bad = 0;

	if (atomic_load(&os->news) != os->nall)
		bad++;
	for (int i = 0; i < os->nall; i++) {
		if (atomic_load(&os->all[i]->frees) != 1)
			bad++;
		free(os->all[i]);
	}
	pthread_mutex_destroy(&os->lock);
	return bad;
}

TEST(pool_null_arguments)
{
	gs_pool *p;
	int x;

	EXPECT_EQ(-EINVAL, gs_pool_create(NULL, NULL, NULL, NULL));
	EXPECT_EQ(NULL, gs_pool_get(NULL));
	gs_pool_put(NULL, &x);
	gs_pool_destroy(NULL);
	ASSERT_EQ(0, gs_pool_create(&p, NULL, NULL, NULL));
	EXPECT_EQ(NULL, gs_pool_get(p));	/* empty, no New */
	gs_pool_put(p, NULL);			/* Put(nil): ignored */
	EXPECT_EQ(NULL, gs_pool_get(p));
	gs_pool_put(p, &x);
	EXPECT_EQ(&x, gs_pool_get(p));
	EXPECT_EQ(NULL, gs_pool_get(p));	/* taken out */
	gs_pool_destroy(p);
}

TEST(pool_new_only_when_empty_and_lifo_reuse)
{
	struct objs os;
	struct obj *o[3], *fourth;
	gs_pool *p;

	objs_init(&os);
	ASSERT_EQ(0, gs_pool_create(&p, obj_new, &os, obj_free));
	for (int i = 0; i < 3; i++) {
		o[i] = gs_pool_get(p);
		ASSERT_NE(NULL, o[i]);
		ASSERT_EQ(OBJ_MAGIC, o[i]->magic);
	}
	EXPECT_EQ(3, atomic_load(&os.news));
	EXPECT_NE(o[0], o[1]);
	EXPECT_NE(o[1], o[2]);
	for (int i = 0; i < 3; i++)
		gs_pool_put(p, o[i]);
	/* Same thread: the last put comes back first. */
	EXPECT_EQ(o[2], gs_pool_get(p));
	EXPECT_EQ(o[1], gs_pool_get(p));
	EXPECT_EQ(o[0], gs_pool_get(p));
	EXPECT_EQ(3, atomic_load(&os.news));
	fourth = gs_pool_get(p);	/* empty again: New */
	ASSERT_NE(NULL, fourth);
	EXPECT_EQ(4, atomic_load(&os.news));
	for (int i = 0; i < 3; i++)
		EXPECT_NE(o[i], fourth);
	gs_pool_put(p, fourth);
	EXPECT_EQ(0, atomic_load(&os.frees));
	gs_pool_destroy(p);	/* frees the one idle object */
	EXPECT_EQ(1, atomic_load(&os.frees));
	EXPECT_EQ(1, atomic_load(&fourth->frees));
	/* The three still held are ours to free. */
	for (int i = 0; i < 3; i++)
		obj_free(o[i], &os);
	EXPECT_EQ(0, objs_check_and_free(&os));
}

TEST(pool_keeps_a_bounded_number_of_idle_objects)
{
	const int n = 1000;
	struct objs os;
	void **held = calloc((size_t)n, sizeof(void *));
	gs_pool *p;
	int idle;

	ASSERT_NE(NULL, held);
	objs_init(&os);
	ASSERT_EQ(0, gs_pool_create(&p, obj_new, &os, obj_free));
	for (int i = 0; i < n; i++)
		ASSERT_NE(NULL, held[i] = gs_pool_get(p));
	for (int i = 0; i < n; i++)
		gs_pool_put(p, held[i]);
	idle = n - atomic_load(&os.frees);
	EXPECT_EQ(GS_POOL_SHARED_MAX + GS_POOL_CACHE_MAX, idle);
	/* What the pool kept is handed out again, without New. */
	for (int i = 0; i < idle; i++)
		ASSERT_NE(NULL, held[i] = gs_pool_get(p));
	EXPECT_EQ(n, atomic_load(&os.news));
	for (int i = 0; i < idle; i++)
		gs_pool_put(p, held[i]);
	gs_pool_destroy(p);
	EXPECT_EQ(n, atomic_load(&os.frees));
	EXPECT_EQ(0, objs_check_and_free(&os));
	free(held);
}

struct pool_thread_arg {
	gs_pool *p;
	int n;
	void *got[64];
	pthread_barrier_t *hold;	/* wait here before exiting, if set */
};

static void *get_put_and_exit(void *arg)
{
	struct pool_thread_arg *a = arg;

	for (int i = 0; i < a->n; i++)
		a->got[i] = gs_pool_get(a->p);
	for (int i = 0; i < a->n; i++)
		gs_pool_put(a->p, a->got[i]);
	if (a->hold) {
		pthread_barrier_wait(a->hold);	/* the pool is destroyed */
		pthread_barrier_wait(a->hold);
	}
	return NULL;
}

TEST(pool_thread_cache_moves_to_pool_at_thread_exit)
{
	struct pool_thread_arg a = { .n = 10 };
	struct objs os;
	pthread_t thr;
	void *mine[10];

	objs_init(&os);
	ASSERT_EQ(0, gs_pool_create(&a.p, obj_new, &os, obj_free));
	ASSERT_EQ(0, start_thread(&thr, get_put_and_exit, &a));
	ASSERT_EQ(0, join_ms(thr, WAIT_LIMIT_MS));
	EXPECT_EQ(10, atomic_load(&os.news));
	/* Its 10 objects (in its cache when it exited) come to this thread. */
	for (int i = 0; i < 10; i++) {
		mine[i] = gs_pool_get(a.p);
		ASSERT_NE(NULL, mine[i]);
		bool found = false;

		for (int j = 0; j < 10; j++)
			found |= mine[i] == a.got[j];
		EXPECT_TRUE(found);
		for (int j = 0; j < i; j++)
			EXPECT_NE(mine[i], mine[j]);
	}
	EXPECT_EQ(10, atomic_load(&os.news));
	EXPECT_EQ(0, atomic_load(&os.frees));
	for (int i = 0; i < 10; i++)
		gs_pool_put(a.p, mine[i]);
	gs_pool_destroy(a.p);
	EXPECT_EQ(0, objs_check_and_free(&os));
}

TEST(pool_destroy_frees_other_threads_caches)
{
	struct pool_thread_arg a = { .n = 12 };
	pthread_barrier_t hold;
	struct objs os;
	gs_pool *p2;
	pthread_t thr;
	int x;

	objs_init(&os);
	pthread_barrier_init(&hold, NULL, 2);
	a.hold = &hold;
	ASSERT_EQ(0, gs_pool_create(&a.p, obj_new, &os, obj_free));
	ASSERT_EQ(0, start_thread(&thr, get_put_and_exit, &a));
	pthread_barrier_wait(&hold);	/* its cache holds 12 objects */
	gs_pool_destroy(a.p);
	EXPECT_EQ(12, atomic_load(&os.frees));
	/* A new pool (maybe at the same address) is not the dead cache's. */
	ASSERT_EQ(0, gs_pool_create(&p2, NULL, NULL, NULL));
	EXPECT_EQ(NULL, gs_pool_get(p2));
	gs_pool_put(p2, &x);
	EXPECT_EQ(&x, gs_pool_get(p2));
	gs_pool_destroy(p2);
	pthread_barrier_wait(&hold);	/* it exits with a dead cache */
	ASSERT_EQ(0, join_ms(thr, WAIT_LIMIT_MS));
	EXPECT_EQ(12, atomic_load(&os.frees));
	EXPECT_EQ(0, objs_check_and_free(&os));
	pthread_barrier_destroy(&hold);
}

#define POOL_THREADS	4
#define POOL_ROUNDS	20000

struct pool_mix {
	gs_pool *p;
	atomic_int bad;
	atomic_long gets;
};

struct pool_mix_arg {
	struct pool_mix *pm;
	int id;
};

/*
 * Each holder claims the object (holder 0 -> id), which fails if anyone
 * else holds it, checks its claim after some work, and releases it
 * before the Put. It holds 1 to 3 objects at a time.
 */
static void *pool_holder(void *arg)
{
	struct pool_mix_arg *a = arg;
	struct pool_mix *pm = a->pm;
	struct obj *o[3];

	for (int r = 0; r < POOL_ROUNDS; r++) {
		int k = 1 + (r + a->id) % 3;

		for (int i = 0; i < k; i++) {
			int zero = 0;

			o[i] = gs_pool_get(pm->p);
			if (!o[i] || o[i]->magic != OBJ_MAGIC ||
			    !atomic_compare_exchange_strong(&o[i]->holder, &zero, a->id))
				atomic_store(&pm->bad, 1);
		}
		atomic_fetch_add(&pm->gets, k);
		for (int i = k - 1; i >= 0; i--) {
			int me = a->id;

			if (!o[i])
				continue;
			if (!atomic_compare_exchange_strong(&o[i]->holder, &me, 0))
				atomic_store(&pm->bad, 2);
			gs_pool_put(pm->p, o[i]);
		}
	}
	return NULL;
}

TEST(pool_never_gives_one_object_to_two_holders)
{
	struct pool_mix pm = { 0 };
	struct pool_mix_arg args[POOL_THREADS];
	pthread_t thr[POOL_THREADS];
	struct objs os;

	objs_init(&os);
	ASSERT_EQ(0, gs_pool_create(&pm.p, obj_new, &os, obj_free));
	for (int i = 0; i < POOL_THREADS; i++) {
		args[i] = (struct pool_mix_arg){ &pm, i + 1 };
		ASSERT_EQ(0, start_thread(&thr[i], pool_holder, &args[i]));
	}
	for (int i = 0; i < POOL_THREADS; i++)
		ASSERT_EQ(0, join_ms(thr[i], 60000));
	EXPECT_EQ(0, atomic_load(&pm.bad));
	/* Reuse: far fewer objects made than handed out. */
	EXPECT_GE(POOL_THREADS * 3 * 2, atomic_load(&os.news));
	TH_LOG("%ld gets, %d objects made", atomic_load(&pm.gets),
	       atomic_load(&os.news));
	gs_pool_destroy(pm.p);
	EXPECT_EQ(atomic_load(&os.news), atomic_load(&os.frees));
	EXPECT_EQ(0, objs_check_and_free(&os));
}

TEST_HARNESS_MAIN
