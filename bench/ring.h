/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A bounded multi-producer multi-consumer ring in shared memory, after
 * Dmitry Vyukov's design (1024cores.net, "Bounded MPMC queue"): each cell
 * carries a sequence number that says whose turn it is, so a producer or a
 * consumer claims a cell with one compare-and-swap on its position counter
 * and publishes it with one release store. No system call at all: a full
 * or empty ring is waited out with sched_yield(). It is the practical
 * speed limit for a queue between processes that spins; it cannot sleep,
 * cannot be polled, and a process that dies holding a claimed cell stalls
 * everyone behind it -- what a kernel object gives on top costs time.
 *
 * Elements have a fixed size chosen at creation; cells are padded to a
 * cache line.
 */
#ifndef GOSYNC_BENCH_RING_H
#define GOSYNC_BENCH_RING_H

#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

struct ring {
	_Alignas(64) _Atomic uint64_t enqueue_pos;
	_Alignas(64) _Atomic uint64_t dequeue_pos;
	_Alignas(64) uint64_t mask;
	size_t elem_size, stride;
	size_t map_size;
	_Alignas(64) unsigned char cells[];
};

struct ring_cell {
	_Atomic uint64_t seq;
	unsigned char data[];
};

static inline struct ring_cell *ring_cell(struct ring *r, uint64_t pos)
{
	return (struct ring_cell *)(r->cells + (pos & r->mask) * r->stride);
}

/* A ring of @cap (a power of two) cells of @elem_size bytes, MAP_SHARED. */
static inline struct ring *ring_create(size_t elem_size, uint64_t cap)
{
	size_t stride = (sizeof(struct ring_cell) + elem_size + 63) & ~(size_t)63;
	size_t size = sizeof(struct ring) + stride * cap;
	struct ring *r;

	if (!cap || (cap & (cap - 1)))
		return NULL;
	r = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		 -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	r->mask = cap - 1;
	r->elem_size = elem_size;
	r->stride = stride;
	r->map_size = size;
	for (uint64_t i = 0; i < cap; i++)
		atomic_store_explicit(&ring_cell(r, i)->seq, i,
				      memory_order_relaxed);
	atomic_store(&r->enqueue_pos, 0);
	atomic_store(&r->dequeue_pos, 0);
	return r;
}

static inline void ring_destroy(struct ring *r)
{
	munmap(r, r->map_size);
}

/* Non-blocking: 0 and the element enqueued, or -1 if the ring is full. */
static inline int ring_try_push(struct ring *r, const void *value)
{
	uint64_t pos = atomic_load_explicit(&r->enqueue_pos, memory_order_relaxed);
	struct ring_cell *cell;

	for (;;) {
		int64_t dif;

		cell = ring_cell(r, pos);
		dif = (int64_t)(atomic_load_explicit(&cell->seq, memory_order_acquire) - pos);
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&r->enqueue_pos,
					&pos, pos + 1, memory_order_relaxed,
					memory_order_relaxed))
				break;
		} else if (dif < 0) {
			return -1;
		} else {
			pos = atomic_load_explicit(&r->enqueue_pos, memory_order_relaxed);
		}
	}
	memcpy(cell->data, value, r->elem_size);
	atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
	return 0;
}

/* Non-blocking: 0 and the element dequeued, or -1 if the ring is empty. */
static inline int ring_try_pop(struct ring *r, void *value)
{
	uint64_t pos = atomic_load_explicit(&r->dequeue_pos, memory_order_relaxed);
	struct ring_cell *cell;

	for (;;) {
		int64_t dif;

		cell = ring_cell(r, pos);
		dif = (int64_t)(atomic_load_explicit(&cell->seq, memory_order_acquire) - (pos + 1));
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&r->dequeue_pos,
					&pos, pos + 1, memory_order_relaxed,
					memory_order_relaxed))
				break;
		} else if (dif < 0) {
			return -1;
		} else {
			pos = atomic_load_explicit(&r->dequeue_pos, memory_order_relaxed);
		}
	}
	memcpy(value, cell->data, r->elem_size);
	atomic_store_explicit(&cell->seq, pos + r->mask + 1, memory_order_release);
	return 0;
}

/* Blocking by spinning: yield the CPU while full / empty. */
static inline void ring_push(struct ring *r, const void *value)
{
	while (ring_try_push(r, value))
		sched_yield();
}

static inline void ring_pop(struct ring *r, void *value)
{
	while (ring_try_pop(r, value))
		sched_yield();
}

#endif /* GOSYNC_BENCH_RING_H */
