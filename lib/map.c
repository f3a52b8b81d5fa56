// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: gs_map, Go's sync.Map, on liburcu's RCU lock-free resizable
 * hash table (rculfhash).
 *
 * Process-local: unlike the kernel-backed objects, a map lives in this
 * process's memory and is not shared across fork or SCM_RIGHTS.
 *
 * Keys, values and ownership
 * --------------------------
 * Keys are byte strings (pointer and length), copied into the map: the
 * caller's buffer is not used after the call returns. Byte strings cover
 * what C programs key maps by (names, paths, fixed-size structs, integers
 * in their in-memory form) with one comparison rule (length, then
 * memcmp), which is what Go's comparable types amount to for plain data.
 *
 * Values are opaque `void *`, compared by pointer identity (Go compares
 * interface values; identity is the C equivalent), never dereferenced and
 * NEVER freed by the map: the caller owns whatever they point to. A
 * value that leaves the map is either returned to the caller that removed
 * it (Swap's previous, LoadAndDelete's value, CompareAndSwap's and
 * CompareAndDelete's @old) or simply forgotten (Store over it, Delete,
 * Clear, destroy). Go's garbage collector keeps a value alive while
 * anyone holds it; C has none, so the rule for a caller of Load is: the
 * map hands back the pointer that was stored, and whether the object is
 * still alive is decided by the program's own protocol. Two protocols
 * that work:
 *  - values that need no reclamation (integers in a uintptr_t, objects
 *    that outlive the map, reference-counted objects whose count the
 *    reader takes only while it otherwise knows the object is alive);
 *  - RCU: a reader brackets Load (and its use of the value) with
 *    gs_map_read_lock()/gs_map_read_unlock(); the thread that removed a
 *    value calls gs_map_synchronize() before it frees it. Correct because
 *    a Load can return a value only if its read-side section began
 *    before the removal completed, and gs_map_synchronize() waits for
 *    every section that began before it.
 *
 * The map's own memory (one node per entry, holding the key copy) is
 * freed by call_rcu after a grace period, never under a concurrent reader.
 *
 * Why it is correct (the lock-free protocol)
 * ------------------------------------------
 * Nodes are immutable once published: a Store never writes into a node,
 * it replaces it (cds_lfht_add_replace). Every operation is therefore one
 * linearizing step of rculfhash on the key's current node:
 *  - Load: lookup (the node it finds was current at some instant of it);
 *  - Store, Swap: add_replace, which removes the old node and inserts the
 *    new one atomically (readers see exactly one of them) and returns
 *    the old node to this caller alone;
 *  - LoadOrStore: lookup; if absent, add_unique, which inserts only if no
 *    node for the key exists and otherwise returns the current one;
 *  - LoadAndDelete, Delete, CompareAndDelete: lookup, then cds_lfht_del on
 *    that node, which succeeds for exactly one caller and fails if the
 *    node was removed or replaced meanwhile; on failure the lookup is
 *    retried, so the deletion applies to the key's newer node;
 *  - CompareAndSwap: lookup, compare the value, then cds_lfht_replace of
 *    that very node, which fails (-ENOENT) if it was removed or replaced
 *    since: the comparison and the swap are atomic together; on failure
 *    it starts again from the lookup.
 * A retry happens only when another update of the same key succeeded, so
 * the whole is lock-free. add_unique and add_replace together never make
 * a duplicate key (rculfhash's guarantee), so a key has at most one node.
 * Every step runs inside an RCU read-side section, as rculfhash requires.
 * A node removed by a successful step belongs to that caller alone, which
 * hands it to call_rcu: readers that found it before the removal finish
 * their read-side sections before it is freed.
 *
 * The RCU flavour is urcu-bp ("bulletproof"): a library cannot ask its
 * users to register every thread that calls it (urcu-memb, urcu-mb and
 * urcu-signal require rcu_register_thread() before the first read lock
 * and rcu_unregister_thread() before exit; urcu-qsbr also needs periodic
 * quiescent states). urcu-bp registers a thread lazily on its first read
 * lock and reclaims the registration when the thread exits, at the price
 * of a slightly dearer read lock. We call liburcu's functions rather than
 * its inline (_LGPL_SOURCE) versions: a call per read lock is cheap next
 * to a hash lookup, and it keeps liburcu's own bookkeeping out of the
 * code ThreadSanitizer instruments (see below).
 *
 * ThreadSanitizer
 * ---------------
 * liburcu is not instrumented, so TSan does not see the ordering it
 * provides. Built with -fsanitize=thread, this file states that ordering
 * with TSan's annotations, and nothing more:
 *  - publication: a writer releases a node before rculfhash publishes
 *    it; a reader acquires each node rculfhash gives it before it reads
 *    the node (rcu_assign_pointer / rcu_dereference);
 *  - grace periods: every read-side unlock releases the sync object
 *    `gp_sync`, and the code that runs after a grace period (the call_rcu
 *    callback that frees a node, the return of gs_map_synchronize())
 *    acquires it, as the grace period orders them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <urcu-bp.h>
#include <urcu/rculfhash.h>

#include "gosync.h"

#ifdef __SANITIZE_THREAD__
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char gp_sync;
#define tsan_acquire(p)		__tsan_acquire((void *)(p))
#define tsan_release(p)		__tsan_release((void *)(p))
#else
#define tsan_acquire(p)		((void)(p))
#define tsan_release(p)		((void)(p))
#endif

/* Initial and minimum bucket count (powers of two); the table grows. */
#define MAP_INIT_BUCKETS	16

struct gs_map {
	struct cds_lfht *ht;
	uint64_t seed;		/* per map: the hash is not predictable */
};

/* An entry. Immutable from its publication until it is freed. */
struct map_node {
	struct cds_lfht_node lfht;
	struct rcu_head rcu;
	void *value;
	size_t keylen;
	unsigned char key[];
};

/* What rculfhash's match callback compares a node with. */
struct map_key {
	const void *key;
	size_t len;
};

/* ------------------------------------------------------------------ */
/* RCU read side, grace periods and node reclamation.                  */

static void read_lock(void)
{
	urcu_bp_read_lock();
}

static void read_unlock(void)
{
#ifdef __SANITIZE_THREAD__
	tsan_release(&gp_sync);
#endif
	urcu_bp_read_unlock();
}

/* After a grace period: what every earlier reader did happened before. */
static void after_grace_period(void)
{
#ifdef __SANITIZE_THREAD__
	tsan_acquire(&gp_sync);
#endif
}

static void node_free_rcu(struct rcu_head *head)
{
	after_grace_period();
	free(caa_container_of(head, struct map_node, rcu));
}

/* Free a node that this caller removed, once no reader can hold it. */
static void node_retire(struct map_node *n)
{
#ifdef __SANITIZE_THREAD__
	tsan_release(&gp_sync);	/* this thread's uses of n, too */
#endif
	urcu_bp_call_rcu(&n->rcu, node_free_rcu);
}

/* The entry holding @ln, acquired (rculfhash published it). */
static struct map_node *node_of(struct cds_lfht_node *ln)
{
	struct map_node *n;

	if (!ln)
		return NULL;
	n = caa_container_of(ln, struct map_node, lfht);
	tsan_acquire(n);
	return n;
}

void gs_map_read_lock(void)
{
	read_lock();
}

void gs_map_read_unlock(void)
{
	read_unlock();
}

void gs_map_synchronize(void)
{
	urcu_bp_synchronize_rcu();
	after_grace_period();
}

/* ------------------------------------------------------------------ */
/* Keys and nodes.                                                     */

static inline uint64_t mix64(uint64_t x)
{
	/* MurmurHash3's finalizer: every input bit affects every output bit. */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/*
 * A seeded hash of @len bytes, a word at a time. Not a keyed PRF (SipHash
 * would be), but with a random seed per map an attacker who does not
 * know it cannot aim keys at one bucket chain.
 */
static unsigned long hash_key(uint64_t seed, const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL);
	uint64_t w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
	}
	if (len) {
		w = 0;
		memcpy(&w, p, len);
		h = mix64(h ^ w ^ 0x5851f42d4c957f2dULL);
	}
	return (unsigned long)mix64(h ^ seed);
}

static int match(struct cds_lfht_node *ln, const void *arg)
{
	const struct map_key *k = arg;
	struct map_node *n = node_of(ln);

	return n->keylen == k->len && !memcmp(n->key, k->key, k->len);
}

static struct map_node *node_new(const struct map_key *k, void *value)
{
	struct map_node *n;

	if (k->len > SIZE_MAX - sizeof(*n))
		return NULL;
	n = malloc(sizeof(*n) + k->len);
	if (!n)
		return NULL;
	cds_lfht_node_init(&n->lfht);
	n->value = value;
	n->keylen = k->len;
	memcpy(n->key, k->key, k->len);
	tsan_release(n);	/* published by the rculfhash call that follows */
	return n;
}

/* The key's current node (in a read-side section), NULL if none. */
static struct map_node *lookup(gs_map *m, unsigned long hash,
			       const struct map_key *k,
			       struct cds_lfht_iter *iter)
{
	cds_lfht_lookup(m->ht, hash, match, k, iter);
	return node_of(cds_lfht_iter_get_node(iter));
}

static int check_args(const gs_map *m, const void *key)
{
	return m && key ? 0 : -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Creation and destruction.                                           */

int gs_map_create(gs_map **mp)
{
	gs_map *m;

	if (!mp)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(m->seed))
		m->seed = mix64(gs_now() ^ (uint64_t)(uintptr_t)m);
	m->ht = cds_lfht_new_flavor(MAP_INIT_BUCKETS, MAP_INIT_BUCKETS, 0,
				    CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
				    &urcu_bp_flavor, NULL);
	if (!m->ht) {
		free(m);
		return -ENOMEM;
	}
	*mp = m;
	return 0;
}

void gs_map_destroy(gs_map *m)
{
	if (!m)
		return;
	gs_map_clear(m);
	cds_lfht_destroy(m->ht, NULL);	/* empty now: cannot fail */
	/*
	 * Wait for the callbacks that free this map's nodes, so that none
	 * is pending when the caller checks for leaks or unloads us.
	 */
	urcu_bp_barrier();
	free(m);
}

/* ------------------------------------------------------------------ */
/* The operations.                                                     */

int gs_map_load(gs_map *m, const void *key, size_t keylen, void **valuep)
{
	struct map_key k = { key, keylen };
	struct cds_lfht_iter iter;
	struct map_node *n;
	void *value = NULL;
	int err = check_args(m, key);

	if (err)
		return err;
	read_lock();
	n = lookup(m, hash_key(m->seed, key, keylen), &k, &iter);
	if (n)
		value = n->value;
	read_unlock();
	if (valuep)
		*valuep = value;
	return n != NULL;
}

/* Store and Swap: the old node's value in *@previousp; 1 if there was one. */
static int replace(gs_map *m, const void *key, size_t keylen, void *value,
		   void **previousp)
{
	struct map_key k = { key, keylen };
	struct cds_lfht_node *old;
	struct map_node *n, *o;
	int err = check_args(m, key);

	if (err)
		return err;
	n = node_new(&k, value);
	if (!n)
		return -ENOMEM;
	read_lock();
	old = cds_lfht_add_replace(m->ht, hash_key(m->seed, key, keylen),
				   match, &k, &n->lfht);
	o = node_of(old);
	read_unlock();
	if (previousp)
		*previousp = o ? o->value : NULL;
	if (o)
		node_retire(o);	/* ours alone: add_replace removed it */
	return o != NULL;
}

int gs_map_store(gs_map *m, const void *key, size_t keylen, void *value)
{
	int ret = replace(m, key, keylen, value, NULL);

	return ret < 0 ? ret : 0;
}

int gs_map_swap(gs_map *m, const void *key, size_t keylen, void *value,
		void **previousp)
{
	return replace(m, key, keylen, value, previousp);
}

int gs_map_load_or_store(gs_map *m, const void *key, size_t keylen,
			 void *value, void **actualp)
{
	struct map_key k = { key, keylen };
	unsigned long hash;
	struct cds_lfht_iter iter;
	struct cds_lfht_node *got;
	struct map_node *n, *cur;
	int err = check_args(m, key);

	if (err)
		return err;
	hash = hash_key(m->seed, key, keylen);
	/* Present already (the common case): no allocation. */
	read_lock();
	cur = lookup(m, hash, &k, &iter);
	if (cur) {
		if (actualp)
			*actualp = cur->value;
		read_unlock();
		return 1;
	}
	read_unlock();

	n = node_new(&k, value);
	if (!n)
		return -ENOMEM;
	read_lock();
	got = cds_lfht_add_unique(m->ht, hash, match, &k, &n->lfht);
	cur = node_of(got);
	if (actualp)
		*actualp = cur->value;
	read_unlock();
	if (cur != n) {
		free(n);	/* never published: no grace period needed */
		return 1;
	}
	return 0;
}

/*
 * Delete the key's node if @pred(@old, its value) holds: LoadAndDelete,
 * Delete and CompareAndDelete. Return: 1 and the value in *@valuep if it
 * deleted, 0 if the key is absent or @pred said no.
 */
static int delete_if(gs_map *m, const void *key, size_t keylen,
		     bool compare, void *old, void **valuep)
{
	struct map_key k = { key, keylen };
	struct cds_lfht_iter iter;
	struct map_node *n;
	unsigned long hash;
	void *value = NULL;
	int err = check_args(m, key);

	if (err)
		return err;
	hash = hash_key(m->seed, key, keylen);
	read_lock();
	for (;;) {
		n = lookup(m, hash, &k, &iter);
		if (!n || (compare && n->value != old)) {
			n = NULL;
			break;
		}
		if (!cds_lfht_del(m->ht, &n->lfht)) {
			value = n->value;
			break;
		}
		/* Removed or replaced since the lookup: look again. */
	}
	read_unlock();
	if (valuep)
		*valuep = value;
	if (n)
		node_retire(n);
	return n != NULL;
}

int gs_map_load_and_delete(gs_map *m, const void *key, size_t keylen,
			   void **valuep)
{
	return delete_if(m, key, keylen, false, NULL, valuep);
}

int gs_map_delete(gs_map *m, const void *key, size_t keylen)
{
	return delete_if(m, key, keylen, false, NULL, NULL);
}

int gs_map_compare_and_delete(gs_map *m, const void *key, size_t keylen,
			      void *old)
{
	return delete_if(m, key, keylen, true, old, NULL);
}

int gs_map_compare_and_swap(gs_map *m, const void *key, size_t keylen,
			    void *old, void *new_value)
{
	struct map_key k = { key, keylen };
	struct map_node *n = NULL, *cur;
	struct cds_lfht_iter iter;
	unsigned long hash;
	int err = check_args(m, key);

	if (err)
		return err;
	hash = hash_key(m->seed, key, keylen);
	read_lock();
	for (;;) {
		cur = lookup(m, hash, &k, &iter);
		if (!cur || cur->value != old) {
			cur = NULL;
			break;
		}
		if (!n) {
			/* Allocated once, only when the swap may happen. */
			n = node_new(&k, new_value);
			if (!n) {
				read_unlock();
				return -ENOMEM;
			}
		}
		if (!cds_lfht_replace(m->ht, &iter, hash, match, &k, &n->lfht))
			break;
		/* -ENOENT: removed or replaced since the lookup. */
	}
	read_unlock();
	if (cur)
		node_retire(cur);
	else
		free(n);	/* unpublished, or NULL */
	return cur != NULL;
}

int gs_map_range(gs_map *m, bool (*fn)(const void *key, size_t keylen,
				       void *value, void *arg),
		 void *arg)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *ln;

	if (!m || !fn)
		return -EINVAL;
	read_lock();
	cds_lfht_for_each(m->ht, &iter, ln) {
		struct map_node *n = node_of(ln);

		if (!fn(n->key, n->keylen, n->value, arg))
			break;
	}
	read_unlock();
	return 0;
}

int gs_map_clear(gs_map *m)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *ln;

	if (!m)
		return -EINVAL;
	read_lock();
	cds_lfht_for_each(m->ht, &iter, ln) {
		struct map_node *n = node_of(ln);

		if (!cds_lfht_del(m->ht, ln))
			node_retire(n);
	}
	read_unlock();
	return 0;
}

size_t gs_map_len(gs_map *m)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *ln;
	size_t len = 0;

	if (!m)
		return 0;
	read_lock();
	cds_lfht_for_each(m->ht, &iter, ln)
		len++;
	read_unlock();
	return len;
}
