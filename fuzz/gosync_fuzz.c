// SPDX-License-Identifier: GPL-2.0
/*
 * gosync_fuzz: a structured fuzzer for /dev/gosync.
 *
 *   gosync_fuzz [-s SEED] [-t SECONDS] [-p PROCESSES] [-j THREADS]
 *
 * A supervisor forks PROCESSES workers of THREADS threads each. Every
 * thread issues a random sequence of gosync operations built from the ABI
 * (include/uapi/gosync.h): valid arguments most of the time, mutated ones
 * (bad flags, reserved bits, huge counts, unmapped, read-only, unaligned
 * and overlapping user pointers, fds of the wrong type or closed) the
 * rest. Besides the ioctls it maps, unmaps, remaps and mprotects the
 * objects' shared pages, runs the userspace ring and semaphore protocols
 * on them and scribbles hostile bytes into them while other threads use
 * the objects, closes objects while others wait on them, forks during
 * waits and passes fds between workers with SCM_RIGHTS. The supervisor
 * sends signals (SIGUSR1 for -EINTR, SIGSTOP/SIGCONT, SIGKILL) and
 * respawns the workers it killed.
 *
 * Every blocking call has a deadline of at most FUZZ_MAX_WAIT_MS, so a
 * thread whose operation has run for HANG_SECONDS is a hang. The run fails
 * on a hang, on a worker that dies of a signal the supervisor did not
 * send, and on a kernel splat logged to /dev/kmsg during the run; it then
 * prints the seed and the last operations of every thread, from a ring
 * each thread keeps in memory shared with the supervisor.
 *
 * Reproducible: thread j of worker i in its g-th life draws its operations
 * from (SEED, i, j, g), and the supervisor's signals from SEED; the
 * interleaving is the scheduler's.
 *
 * The last line is TAP: "ok 1 fuzz: ..." (exit 0) or "not ok 1 fuzz: ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "uapi/gosync.h"

#define MAX_PROCS	16
#define MAX_THREADS	16
#define OPS_KEPT	16		/* recent operations kept per thread */
#define NOBJ		24		/* fd table entries per worker */
#define NMAP		12		/* mapping slots per worker */
#define MAP_SLOT	(4UL << 20)	/* bytes reserved per mapping slot */
#define FUZZ_MAX_WAIT_MS 40		/* the longest deadline of any wait */
#define HANG_SECONDS	120		/* an operation this long is a hang */
#define PAGE		4096UL

/* ---------------------------------------------------------------------- */
/* Memory shared between the supervisor and the workers. */

struct op_rec {
	uint16_t op;
	uint16_t obj;
	int32_t ret;		/* result, -errno; RUNNING while in progress */
	uint64_t arg;
};
#define RUNNING INT32_MIN

struct thr_slot {
	_Atomic uint64_t nops;
	_Atomic uint64_t start_ns;	/* of the operation in progress, or 0 */
	_Atomic uint32_t pos;
	struct op_rec ring[OPS_KEPT];
};

struct worker_slot {
	_Atomic pid_t pid;
	uint32_t gen;
	_Atomic int our_signal;		/* the fatal signal the supervisor sent */
	uint64_t dead_ops;		/* operations of earlier lives */
	struct thr_slot thr[MAX_THREADS];
};

static struct worker_slot *shm;
static int nprocs = 4, nthreads = 4;
static uint64_t seed;
static int sock[2];			/* SOCK_DGRAM pair for SCM_RIGHTS */

/* ---------------------------------------------------------------------- */
/* Random numbers: splitmix64 for seeding, xorshift64* for the stream. */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static _Thread_local uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static bool chance(unsigned int pct)
{
	return below(100) < pct;
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* A value the kernel must treat carefully: boundaries and bit patterns. */
static uint64_t hostile64(void)
{
	static const uint64_t v[] = {
		0, 1, 2, 7, 8, 63, 64, 4095, 4096, 65535, 65536, 65537,
		0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ULL,
		GOSYNC_SEM_MAX, GOSYNC_SEM_MAX + 1, GOSYNC_CHAN_POS_MASK,
		GOSYNC_CHAN_POS_MASK + 1, 1ULL << 62, 1ULL << 63,
		~0ULL, ~0ULL - 1, 0x5555555555555555ULL, 0xaaaaaaaaaaaaaaaaULL,
	};

	if (chance(30))
		return rnd();
	return v[below(sizeof(v) / sizeof(v[0]))];
}

/* ---------------------------------------------------------------------- */
/* A worker's objects. */

enum kind { K_NONE, K_SEM, K_CHAN, K_TIMER, K_LOT, K_COND, K_DEV, K_PIPE,
	    K_NULL, K_EVENTFD, K_OTHER };

struct obj {
	_Atomic int fd;
	_Atomic int kind;
	_Atomic uint32_t elem, cap;	/* channels */
};

struct mapping {
	char *base;			/* MAP_SLOT bytes reserved */
	_Atomic size_t len;		/* mapped length, 0 when unmapped */
	_Atomic int kind;
	_Atomic uint32_t elem, cap;
};

static int devfd;
/* This thread's robust owner handle (GOSYNC_IOC_ROBUST_REGISTER), or 0. */
static __thread uint32_t robust_handle;
static struct obj objs[NOBJ];
static struct mapping maps[NMAP];
static char *arena_lo, *arena_hi;	/* where the slots are */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static char *ro_page;			/* a read-only page */
static char *none_page;			/* an inaccessible page */
static struct worker_slot *me;
static _Thread_local struct thr_slot *self;
static _Thread_local sigjmp_buf guard_jmp;
static _Thread_local volatile sig_atomic_t guarded;
static pthread_t threads[MAX_THREADS];
static _Atomic int nstarted;		/* entries of threads[] set */
static _Atomic int all_started;		/* every thread is made */

/* Faults in guarded sections (touching shared pages that another thread
 * may unmap or mprotect at any moment) are expected; any other is not. */
/* Append @v in hex to @p (async-signal-safe, unlike printf). */
static char *put_hex(char *p, uint64_t v)
{
	int shift;

	*p++ = '0';
	*p++ = 'x';
	for (shift = 60; shift >= 0; shift -= 4)
		*p++ = "0123456789abcdef"[(v >> shift) & 15];
	return p;
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
	static const char what[] = "# unexpected fault at ";
	char line[96], *p = line;

	if (guarded) {
		guarded = 0;
		siglongjmp(guard_jmp, 1);
	}
	/* Where, for the report; the fuzzer's own addresses (PIE). */
	memcpy(p, what, sizeof(what) - 1);
	p = put_hex(p + sizeof(what) - 1, (uint64_t)(uintptr_t)si->si_addr);
	*p++ = ' ';
	p = put_hex(p, (uint64_t)((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP] -
		    (uint64_t)(uintptr_t)on_fault);
	memcpy(p, " from on_fault\n", 15);
	(void)!write(2, line, (size_t)(p + 15 - line));
	(void)sig;
	signal(sig, SIG_DFL);	/* returns, faults again, dies: reported */
}

static void on_usr1(int sig)
{
	(void)sig;
}

/*
 * Fault handlers run on a stack of their own, so that a fault whose
 * thread stack is unusable is still reported (where, and by whom).
 */
static void use_alt_stack(void)
{
	static _Thread_local char alt[64 * 1024];
	stack_t ss = { .ss_sp = alt, .ss_size = sizeof(alt) };

	sigaltstack(&ss, NULL);
}

#define GUARD_BEGIN	if (!sigsetjmp(guard_jmp, 1)) { guarded = 1;
#define GUARD_END	guarded = 0; }

/* ---------------------------------------------------------------------- */
/* Operation records. */

enum op {
	OP_VERSION, OP_SEM_CREATE, OP_CHAN_CREATE, OP_TIMER_CREATE,
	OP_LOT_CREATE, OP_SEM_ACQUIRE, OP_SEM_TRY, OP_SEM_RELEASE,
	OP_SEM_STATUS, OP_SEM_FAST, OP_CHAN_SEND, OP_CHAN_RECV, OP_CHAN_CLOSE,
	OP_CHAN_STATUS, OP_CHAN_KICK, OP_RING_PUSH, OP_RING_POP, OP_SELECT,
	OP_TIMER_STOP, OP_TIMER_RESET, OP_LOT_PARK, OP_LOT_UNPARK,
	OP_LOT_STATUS, OP_COND_WAIT, OP_COND_NOTIFY, OP_MMAP, OP_UNMAP,
	OP_MPROTECT, OP_MREMAP, OP_SCRIBBLE, OP_CLOSE, OP_DUP, OP_OTHER_FD,
	OP_FORK, OP_SCM_SEND, OP_SCM_RECV, OP_POLL, OP_RW, OP_BAD_IOCTL,
	OP_ROBUST, OP_TGKILL, OP_WG_ADD, OP_ARRIVE, OP_NR
};

static const char *const op_names[OP_NR] = {
	"version", "sem_create", "chan_create", "timer_create", "lot_create",
	"sem_acquire", "sem_try", "sem_release", "sem_status", "sem_fast",
	"chan_send", "chan_recv", "chan_close", "chan_status", "chan_kick",
	"ring_push", "ring_pop", "select", "timer_stop", "timer_reset",
	"lot_park", "lot_unpark", "lot_status", "cond_wait", "cond_notify",
	"mmap", "unmap", "mprotect", "mremap", "scribble", "close", "dup",
	"other_fd", "fork", "scm_send", "scm_recv", "poll", "read_write",
	"bad_ioctl", "robust", "tgkill", "wg_add", "arrive",
};

static struct op_rec *op_begin(int op, int obj, uint64_t arg)
{
	uint32_t pos = atomic_load_explicit(&self->pos, memory_order_relaxed);
	struct op_rec *r = &self->ring[pos % OPS_KEPT];

	r->op = op;
	r->obj = obj;
	r->arg = arg;
	r->ret = RUNNING;
	atomic_store(&self->pos, pos + 1);
	atomic_store(&self->start_ns, now_ns(CLOCK_MONOTONIC));
	return r;
}

static void op_end(struct op_rec *r, long ret)
{
	r->ret = ret < 0 ? -errno : (int32_t)ret;
	atomic_store(&self->start_ns, 0);
	atomic_fetch_add_explicit(&self->nops, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------------- */
/* Argument builders. */

/* A deadline: mostly a few ms ahead, sometimes past, on either clock. */
static uint64_t deadline(uint32_t *flags)
{
	clockid_t clk = CLOCK_MONOTONIC;

	if (chance(10)) {
		*flags |= GOSYNC_CLOCK_REALTIME;
		clk = CLOCK_REALTIME;
	}
	if (chance(10))
		return chance(50) ? 0 : now_ns(clk) - below(1000000000);
	return now_ns(clk) + below(FUZZ_MAX_WAIT_MS * 1000000ULL);
}

/* Flags: the valid ones mostly, sometimes a stray bit. */
static uint32_t mutate_flags(uint32_t valid)
{
	uint32_t f = (uint32_t)rnd() & valid;

	if (chance(4))
		f |= 1U << below(32);
	return f;
}

static int pick_obj(void)
{
	return (int)below(NOBJ);
}

/* An fd of the wanted kind most of the time, else any fd or junk. */
static int pick_fd(int want, int *idx)
{
	int start = pick_obj(), i;

	*idx = start;
	if (chance(85)) {
		for (i = 0; i < NOBJ; i++) {
			int j = (start + i) % NOBJ;

			if (atomic_load(&objs[j].kind) == want) {
				*idx = j;
				return atomic_load(&objs[j].fd);
			}
		}
	}
	if (chance(5)) {
		static const int junk[] = { -1, -100, 0, 1, 2, 1000, 65535 };

		return junk[below(sizeof(junk) / sizeof(junk[0]))];
	}
	return atomic_load(&objs[start].fd);
}

/*
 * A wait's deadline, and now and then a cancelling channel and stray
 * flags: the limits every waiting ioctl takes.
 */
static uint64_t wait_limits(uint32_t *flags, int32_t *cancel_fd)
{
	uint64_t dl = deadline(flags);
	int ci = 0;

	if (chance(15)) {
		*flags |= GOSYNC_WAIT_CANCEL_FD;
		*cancel_fd = pick_fd(K_CHAN, &ci);
	}
	if (chance(3))
		*flags = mutate_flags(~0U);
	return dl;
}

static _Thread_local char buf[2 * GOSYNC_CHAN_ELEM_MAX + 4096] __attribute__((aligned(64)));

/*
 * A user pointer for @len bytes: our buffer most of the time (sometimes
 * unaligned), else NULL, unmapped, read-only, kernel, non-canonical, one
 * overlapping a shared page, or one straddling the end of a mapping.
 */
static uint64_t user_ptr(size_t len, bool write)
{
	unsigned int c = below(100);
	int m;

	(void)write;
	if (c < 75)
		return (uint64_t)(uintptr_t)(buf + (chance(20) ? below(8) : 0));
	switch (c % 8) {
	case 0: return 0;
	case 1: return (uint64_t)(uintptr_t)none_page;
	case 2: return (uint64_t)(uintptr_t)ro_page + below(PAGE);
	case 3: return 0xffff888000000000ULL + below(1 << 20);
	case 4: return 0x0000800000000000ULL - below(64);
	case 5:
		m = (int)below(NMAP);
		return (uint64_t)(uintptr_t)maps[m].base + below(2 * PAGE);
	case 6:
		m = (int)below(NMAP);
		return (uint64_t)(uintptr_t)maps[m].base +
			atomic_load(&maps[m].len) - (len ? below(len) : 0);
	default: return hostile64();
	}
}

/* ---------------------------------------------------------------------- */
/* Object table maintenance. */

static void obj_set(int i, int fd, int kind, uint32_t elem, uint32_t cap)
{
	int old;

	pthread_mutex_lock(&table_lock);
	old = atomic_exchange(&objs[i].fd, fd);
	atomic_store(&objs[i].kind, kind);
	atomic_store(&objs[i].elem, elem);
	atomic_store(&objs[i].cap, cap);
	pthread_mutex_unlock(&table_lock);
	/* Others may still be using (or waiting on) the old fd: close it. */
	if (old > 2 && old != devfd && old != sock[0] && old != sock[1])
		close(old);
}

static int make_sem(uint64_t size)
{
	struct gosync_sem_create a = { .size = size };

	if (chance(5))
		a.flags = mutate_flags(~0U);
	if (chance(5))
		a.reserved = (uint32_t)rnd();
	return ioctl(devfd, GOSYNC_IOC_SEM_CREATE, &a);
}

static int make_chan(uint32_t elem, uint32_t cap)
{
	struct gosync_chan_create a = { .elem_size = elem, .capacity = cap };

	if (chance(5))
		a.flags = mutate_flags(~0U);
	if (chance(5))
		a.reserved = (uint32_t)rnd();
	return ioctl(devfd, GOSYNC_IOC_CHAN_CREATE, &a);
}

static void chan_shape(uint32_t *elem, uint32_t *cap)
{
	static const uint32_t elems[] = { 0, 1, 4, 8, 13, 64, 100, 4096,
					  GOSYNC_CHAN_ELEM_MAX };
	static const uint32_t caps[] = { 0, 0, 1, 1, 2, 3, 4, 7, 16, 64 };

	*elem = elems[below(sizeof(elems) / sizeof(elems[0]))];
	*cap = caps[below(sizeof(caps) / sizeof(caps[0]))];
	/* Keep rings small (root's rings are not bounded by MEMLOCK). */
	if ((uint64_t)GOSYNC_CHAN_SLOT_SIZE(*elem) * *cap > (256U << 10))
		*cap = 2;
	if (chance(3)) {
		*elem = chance(50) ? GOSYNC_CHAN_ELEM_MAX + 1 : (uint32_t)rnd();
		*cap = chance(50) ? (uint32_t)hostile64() : 1U << 20;
	}
}

static int make_timer(void)
{
	struct gosync_timer_set a = { 0 };
	clockid_t clk = CLOCK_MONOTONIC;

	if (chance(10)) {
		a.flags = GOSYNC_CLOCK_REALTIME;
		clk = CLOCK_REALTIME;
	}
	a.when = chance(10) ? GOSYNC_DEADLINE_NONE :
		now_ns(clk) + below(5000000);
	if (chance(40))
		a.period = GOSYNC_TIMER_MIN_PERIOD + below(2000000);
	if (chance(5))
		a.period = below(GOSYNC_TIMER_MIN_PERIOD);
	if (chance(3))
		a.reserved = 1;
	if (chance(3))
		a.flags = mutate_flags(~0U);
	return ioctl(devfd, GOSYNC_IOC_TIMER_CREATE, &a);
}

static int make_lot(uint32_t kind)
{
	/* A small param now and then: a barrier whose rounds can pass. */
	struct gosync_lot_create a = {
		.kind = kind, .param = chance(50) ? 1 + below(4) : rnd(),
	};

	if (chance(3))
		a.kind = (uint32_t)hostile64();
	if (chance(3))
		a.flags = mutate_flags(~0U);
	return ioctl(devfd, GOSYNC_IOC_LOT_CREATE, &a);
}

/* Replace table entry @i by a new object of a random kind. */
static long new_object(int i, int op)
{
	uint32_t elem = 0, cap = 0;
	int fd, kind;

	switch (op) {
	case OP_SEM_CREATE:
		kind = K_SEM;
		fd = make_sem(chance(80) ? below(8) : hostile64());
		break;
	case OP_CHAN_CREATE:
		kind = K_CHAN;
		chan_shape(&elem, &cap);
		fd = make_chan(elem, cap);
		break;
	case OP_TIMER_CREATE:
		kind = K_TIMER;
		elem = 8;
		cap = 1;
		fd = make_timer();
		break;
	default:
		kind = chance(50) ? K_COND : K_LOT;
		fd = make_lot(kind == K_COND ? GOSYNC_LOT_COND :
			      (uint32_t)below(GOSYNC_LOT_KIND_MAX + 1));
		break;
	}
	if (fd >= 0)
		obj_set(i, fd, kind, elem, cap);
	return fd;
}

/* ---------------------------------------------------------------------- */
/* The shared pages. */

static size_t chan_ring_len(uint32_t elem, uint32_t cap)
{
	size_t slots = (size_t)GOSYNC_CHAN_SLOT_SIZE(elem) * cap;

	return PAGE + ((slots + PAGE - 1) & ~(PAGE - 1));
}

/*
 * Every change of a mapping stays inside the slots: one outside would
 * change the fuzzer's own memory (its code, its stacks), a fuzzer bug.
 */
static void in_slots(const char *what, const char *p, size_t len)
{
	char line[160];
	int n;

	if (p >= arena_lo && len <= (size_t)(arena_hi - p))
		return;
	n = snprintf(line, sizeof(line), "# fuzzer bug: %s of %p + %zu outside the slots %p..%p\n",
		     what, (const void *)p, len, (void *)arena_lo, (void *)arena_hi);
	(void)!write(2, line, (size_t)n);
	abort();
}

/* Reserve (again) a slot's range as inaccessible anonymous memory. */
static void map_reserve(char *addr, size_t len)
{
	in_slots("reserve", addr, len);
	mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
	     MAP_FIXED | MAP_NORESERVE, -1, 0);
}

static long op_mmap(int m)
{
	struct mapping *mp = &maps[m];
	int idx, kind = (int)below(K_OTHER) + 1;
	int fd = pick_fd(chance(50) ? K_CHAN : kind, &idx);
	size_t len = PAGE;
	int prot = PROT_READ | PROT_WRITE, flags = MAP_SHARED | MAP_FIXED;
	off_t off = 0;
	void *p;

	kind = atomic_load(&objs[idx].kind);
	if (kind == K_CHAN)
		len = chan_ring_len(atomic_load(&objs[idx].elem),
				    atomic_load(&objs[idx].cap));
	if (chance(10))
		len = chance(50) ? len + PAGE : (len > PAGE ? len - PAGE : 2 * PAGE);
	if (len > MAP_SLOT)
		len = MAP_SLOT;
	if (chance(5))
		off = (off_t)(PAGE * (1 + below(4)));
	if (chance(5))
		flags = MAP_PRIVATE | MAP_FIXED;
	if (chance(5))
		prot = (int)below(8);
	in_slots("mmap", mp->base, len);
	p = mmap(mp->base, len, prot, flags, fd, off);
	if (p == MAP_FAILED)
		return -1;
	atomic_store(&mp->len, len);
	atomic_store(&mp->kind, kind);
	atomic_store(&mp->elem, atomic_load(&objs[idx].elem));
	atomic_store(&mp->cap, atomic_load(&objs[idx].cap));
	return 0;
}

static long op_unmap(int m)
{
	struct mapping *mp = &maps[m];
	size_t len = atomic_exchange(&mp->len, 0);

	if (!len)
		return 0;
	if (chance(30)) {
		/*
		 * Part of it unmapped, by mapping the reserve over it at once
		 * (a munmap first would leave a hole another mapping could
		 * take, such as a new thread's stack).
		 */
		size_t cut = PAGE * below(len / PAGE + 1);

		map_reserve(mp->base + cut, len - cut);	/* unmaps it */
		atomic_store(&mp->len, cut);
		return (long)cut;
	}
	map_reserve(mp->base, MAP_SLOT);
	return 0;
}

static long op_mprotect(int m)
{
	struct mapping *mp = &maps[m];
	size_t len = atomic_load(&mp->len);
	static const int prots[] = { PROT_NONE, PROT_READ, PROT_WRITE,
				     PROT_READ | PROT_WRITE, PROT_EXEC,
				     PROT_READ | PROT_EXEC };

	size_t first, pages;

	if (!len)
		len = PAGE;
	/*
	 * Pages of this slot only: a range running past the slot (past the
	 * arena, for the last one) would change the protection of whatever
	 * lies beyond, such as a thread's stack.
	 */
	pages = len / PAGE;
	first = below(pages);
	in_slots("mprotect", mp->base, len);
	return mprotect(mp->base + PAGE * first,
			PAGE * (1 + below(pages - first)),
			prots[below(sizeof(prots) / sizeof(prots[0]))]);
}

static long op_mremap(int m)
{
	struct mapping *mp = &maps[m], *dst = &maps[below(NMAP)];
	size_t len = atomic_load(&mp->len), nlen;
	void *p;

	if (!len)
		return 0;
	nlen = chance(50) ? len : (chance(50) ? len + PAGE : PAGE);
	if (nlen > MAP_SLOT)	/* a move must stay within its slot */
		nlen = MAP_SLOT;
	if (dst == mp || chance(30)) {
		/* In place: shrinking works, growing hits VM_DONTEXPAND. */
		in_slots("mremap", mp->base, len > nlen ? len : nlen);
		p = mremap(mp->base, len, nlen, 0);
		if (p == MAP_FAILED)
			return -1;
		if (nlen < len)
			map_reserve(mp->base + nlen, len - nlen);
		atomic_store(&mp->len, nlen);
		return 0;
	}
	/* Moved onto another slot (whatever that slot had is replaced). */
	in_slots("mremap", mp->base, len);
	in_slots("mremap to", dst->base, nlen);
	p = mremap(mp->base, len, nlen, MREMAP_MAYMOVE | MREMAP_FIXED,
		   dst->base);
	if (p == MAP_FAILED)
		return -1;
	map_reserve(mp->base, len);
	atomic_store(&mp->len, 0);
	atomic_store(&dst->kind, atomic_load(&mp->kind));
	atomic_store(&dst->elem, atomic_load(&mp->elem));
	atomic_store(&dst->cap, atomic_load(&mp->cap));
	atomic_store(&dst->len, nlen);
	return 0;
}

/* Hostile bytes into a shared page, while others use the object. */
static long op_scribble(int m)
{
	struct mapping *mp = &maps[m];
	size_t len = atomic_load(&mp->len);
	volatile long n = 0;

	if (!len)
		return 0;
	GUARD_BEGIN
	volatile uint64_t *w = (volatile uint64_t *)mp->base;
	unsigned int k = 1 + (unsigned int)below(8);

	while (k--) {
		size_t at;

		switch (below(4)) {
		case 0:		/* the first words: sem state, ring tail/head */
			at = below(2) * 8;
			break;
		case 1:		/* a ring slot's sequence */
			at = PAGE / 8 + below((len - PAGE) / 8 + 1);
			break;
		default:
			at = below(len / 8);
			break;
		}
		if (at >= len / 8)
			at = 0;
		if (chance(50))
			w[at] ^= 1ULL << below(64);
		else
			w[at] = hostile64();
		n++;
	}
	GUARD_END
	return n;
}

/* The userspace side of the ring protocol, done right (mostly). */
static long op_ring(int m, bool push)
{
	struct mapping *mp = &maps[m];
	size_t len = atomic_load(&mp->len);
	uint32_t cap = atomic_load(&mp->cap), elem = atomic_load(&mp->elem);
	volatile long ret = -2;

	if (!len || atomic_load(&mp->kind) != K_CHAN || !cap ||
	    chan_ring_len(elem, cap) != len)
		return -3;
	GUARD_BEGIN
	_Atomic uint64_t *tail = (_Atomic uint64_t *)mp->base;
	_Atomic uint64_t *head = tail + 8;
	uint64_t mod = gosync_chan_pos_modulus(cap), p, seq;
	size_t ssz = GOSYNC_CHAN_SLOT_SIZE(elem);
	int tries = 8;

	ret = 0;
	while (tries--) {
		uint64_t t = atomic_load(push ? tail : head);
		_Atomic uint64_t *slot;

		p = t & GOSYNC_CHAN_POS_MASK;
		slot = (_Atomic uint64_t *)(mp->base + PAGE + (p % cap) * ssz);
		seq = atomic_load_explicit(slot, memory_order_acquire);
		if (push) {
			if (t & ~GOSYNC_CHAN_POS_MASK || seq != 2 * p)
				break;
			if (!atomic_compare_exchange_strong(tail, &t,
							    (p + 1) % mod))
				continue;
			memset((char *)(slot + 1), (int)p, elem);
			atomic_store_explicit(slot, 2 * p + 1,
					      memory_order_release);
		} else {
			if (seq != 2 * p + 1)
				break;
			if (!atomic_compare_exchange_strong(head, &t,
							    (p + 1) % mod))
				continue;
			atomic_store_explicit(slot, 2 * ((p + cap) % mod),
					      memory_order_release);
		}
		ret = 1;
		break;
	}
	atomic_thread_fence(memory_order_seq_cst);
	GUARD_END
	return ret;
}

/* The semaphore's userspace fast path on a mapped page. */
static long op_sem_fast(int m)
{
	struct mapping *mp = &maps[m];
	volatile long ret = -2;

	if (!atomic_load(&mp->len))
		return -3;
	GUARD_BEGIN
	_Atomic uint64_t *w = (_Atomic uint64_t *)mp->base;
	uint64_t s = atomic_load(w), n = 1 + below(2);

	ret = 0;
	if (!(s & GOSYNC_SEM_WAITERS)) {
		if (chance(50) && (s & GOSYNC_SEM_COUNT_MASK) >= n)
			ret = atomic_compare_exchange_strong(w, &s, s - n);
		else if (!(s & GOSYNC_SEM_POLLED))
			ret = atomic_compare_exchange_strong(w, &s, s + n);
	}
	GUARD_END
	return ret;
}

/* ---------------------------------------------------------------------- */
/* The ioctls on objects. */

static long op_sem(int op, int *idx)
{
	int fd = pick_fd(K_SEM, idx);
	uint64_t n = chance(90) ? below(4) : hostile64();

	switch (op) {
	case OP_SEM_ACQUIRE: {
		struct gosync_sem_acquire a = { .count = n };
		int ci = 0;

		a.deadline = deadline(&a.flags);
		if (chance(15)) {
			a.flags |= GOSYNC_WAIT_CANCEL_FD;
			a.cancel_fd = pick_fd(K_CHAN, &ci);
		}
		if (chance(3))
			a.flags = mutate_flags(~0U);
		if (chance(3))
			return ioctl(fd, GOSYNC_IOC_SEM_ACQUIRE,
				     (void *)(uintptr_t)user_ptr(sizeof(a), false));
		return ioctl(fd, GOSYNC_IOC_SEM_ACQUIRE, &a);
	}
	case OP_SEM_TRY:
		return ioctl(fd, GOSYNC_IOC_SEM_TRY_ACQUIRE, &n);
	case OP_SEM_RELEASE:
		return ioctl(fd, GOSYNC_IOC_SEM_RELEASE, &n);
	default: {
		struct gosync_sem_status st;

		return ioctl(fd, GOSYNC_IOC_SEM_STATUS,
			     chance(90) ? (void *)&st :
			     (void *)(uintptr_t)user_ptr(sizeof(st), true));
	}
	}
}

static long op_chan(int op, int *idx)
{
	int fd = pick_fd(chance(85) ? K_CHAN : K_TIMER, idx);
	uint32_t elem = atomic_load(&objs[*idx].elem);
	struct gosync_chan_xfer x = { 0 };

	switch (op) {
	case OP_CHAN_SEND:
	case OP_CHAN_RECV:
		x.value = user_ptr(elem, op == OP_CHAN_RECV);
		if (op == OP_CHAN_SEND && chance(3))
			x.value = (uint64_t)(uintptr_t)&x;	/* overlapping */
		x.deadline = deadline(&x.flags);
		if (chance(30))
			x.flags |= GOSYNC_CHAN_TRY;
		if (chance(3))
			x.flags = mutate_flags(~0U);
		if (chance(3))
			x.reserved = 1;
		return ioctl(fd, op == OP_CHAN_SEND ? GOSYNC_IOC_CHAN_SEND :
			     GOSYNC_IOC_CHAN_RECV,
			     chance(97) ? (void *)&x :
			     (void *)(uintptr_t)user_ptr(sizeof(x), false));
	case OP_CHAN_CLOSE:
		return ioctl(fd, GOSYNC_IOC_CHAN_CLOSE);
	case OP_CHAN_KICK:
		return ioctl(fd, GOSYNC_IOC_CHAN_KICK);
	default: {
		struct gosync_chan_status st;

		return ioctl(fd, GOSYNC_IOC_CHAN_STATUS,
			     chance(90) ? (void *)&st :
			     (void *)(uintptr_t)user_ptr(sizeof(st), true));
	}
	}
}

static long op_select(int *idx)
{
	/*
	 * The cases live inside buf, GOSYNC_CHAN_ELEM_MAX bytes before its
	 * end, so that a receive into the case array itself (an overlapping
	 * buffer) stays within our memory.
	 */
	struct gosync_select_case *cases = (struct gosync_select_case *)
		(buf + sizeof(buf) - GOSYNC_CHAN_ELEM_MAX - 64 -
		 (GOSYNC_SELECT_MAX_CASES + 2) * sizeof(*cases));
	struct gosync_select s = { 0 };
	uint32_t n = chance(90) ? (uint32_t)below(9) :
		(uint32_t)below(GOSYNC_SELECT_MAX_CASES + 2);
	uint32_t i;
	int first = -1;

	for (i = 0; i < n; i++) {
		int ci = 0;

		if (i && chance(15)) {
			cases[i] = cases[below(i)];	/* a duplicate */
			continue;
		}
		cases[i].fd = chance(5) ? GOSYNC_SELECT_NIL :
			pick_fd(chance(80) ? K_CHAN : K_TIMER, &ci);
		if (first < 0)
			first = ci;
		cases[i].op = chance(50) ? GOSYNC_SELECT_SEND : GOSYNC_SELECT_RECV;
		if (chance(2))
			cases[i].op = (uint32_t)below(5);
		cases[i].value = chance(20) ? 0 : user_ptr(atomic_load(&objs[ci].elem),
							  cases[i].op == GOSYNC_SELECT_RECV);
		if (chance(2))	/* a receive into the case array itself */
			cases[i].value = (uint64_t)(uintptr_t)&cases[0];
	}
	*idx = first < 0 ? 0 : first;
	s.cases = (uint64_t)(uintptr_t)cases;
	if (chance(3))
		s.cases = user_ptr(n * sizeof(cases[0]), false);
	s.ncases = n;
	s.deadline = deadline(&s.flags);
	if (chance(30))
		s.flags |= GOSYNC_SELECT_DEFAULT;
	if (chance(3))
		s.flags = mutate_flags(~0U);
	return ioctl(chance(97) ? devfd : pick_fd(K_CHAN, idx),
		     GOSYNC_IOC_SELECT, &s);
}

static long op_timer(int op, int *idx)
{
	int fd = pick_fd(chance(90) ? K_TIMER : K_CHAN, idx);
	struct gosync_timer_set a = { 0 };
	clockid_t clk = CLOCK_MONOTONIC;

	if (op == OP_TIMER_STOP)
		return ioctl(fd, GOSYNC_IOC_TIMER_STOP);
	if (chance(10)) {
		a.flags = GOSYNC_CLOCK_REALTIME;
		clk = CLOCK_REALTIME;
	}
	a.when = chance(10) ? GOSYNC_DEADLINE_NONE :
		chance(10) ? 0 : now_ns(clk) + below(3000000);
	if (chance(40))
		a.period = GOSYNC_TIMER_MIN_PERIOD + below(1000000);
	if (chance(5))
		a.period = hostile64();
	if (chance(3))
		a.reserved = (uint32_t)rnd();
	if (chance(3))
		a.flags = mutate_flags(~0U);
	return ioctl(fd, GOSYNC_IOC_TIMER_RESET, &a);
}

/* A mapped lot of the entry's object, if some slot maps one. */
static _Atomic uint64_t *lot_words(void)
{
	int m = (int)below(NMAP), i;

	for (i = 0; i < NMAP; i++, m = (m + 1) % NMAP) {
		int k = atomic_load(&maps[m].kind);

		if ((k == K_LOT || k == K_COND) && atomic_load(&maps[m].len))
			return (_Atomic uint64_t *)maps[m].base;
	}
	return NULL;
}

static long op_lot(int op, int *idx)
{
	int fd = pick_fd(op == OP_COND_WAIT || op == OP_COND_NOTIFY ?
			 K_COND : (chance(60) ? K_LOT : K_COND), idx);
	uint32_t word = chance(70) ? (uint32_t)below(4) :
		(chance(90) ? (uint32_t)below(GOSYNC_LOT_WORDS) : (uint32_t)hostile64());

	switch (op) {
	case OP_LOT_PARK: {
		struct gosync_lot_park a = { .index = word };
		_Atomic uint64_t *w = lot_words();
		volatile uint64_t v = 0;
		int ci = 0;

		if (w && word < GOSYNC_LOT_WORDS) {
			GUARD_BEGIN
			v = atomic_load(&w[word]);
			GUARD_END
		}
		a.mask = chance(80) ? ~0ULL : hostile64();
		a.expected = chance(80) ? (v & a.mask) : hostile64();
		a.deadline = deadline(&a.flags);
		if (chance(20))
			a.flags |= GOSYNC_LOT_PARK_FRONT;
		if (chance(15)) {
			a.flags |= GOSYNC_WAIT_CANCEL_FD;
			a.cancel_fd = pick_fd(K_CHAN, &ci);
		}
		if (chance(3))
			a.flags = mutate_flags(~0U);
		if (chance(3))
			a.reserved = 1;
		if (chance(15)) {
			/* A robust park: the kernel looks at word 0's holder. */
			a.flags |= GOSYNC_LOT_PARK_ROBUST;
			if (chance(90))
				a.index = 0;
			a.owner = chance(70) ? robust_handle : (uint32_t)hostile64();
		}
		return ioctl(fd, GOSYNC_IOC_LOT_PARK, &a);
	}
	case OP_LOT_UNPARK: {
		struct gosync_lot_unpark a = { .index = word };

		a.count = chance(30) ? GOSYNC_LOT_ALL : (uint32_t)below(4);
		if (chance(30)) {
			a.flags = GOSYNC_LOT_UNPARK_HANDOFF;
			a.add = chance(80) ? 1 : hostile64();
			if (chance(30))
				a.flags |= GOSYNC_LOT_UNPARK_OWNER;
		}
		if (chance(3))
			a.flags = mutate_flags(~0U);
		if (chance(3))
			a.add = rnd();
		return ioctl(fd, GOSYNC_IOC_LOT_UNPARK, &a);
	}
	case OP_COND_WAIT: {
		struct gosync_lot_cond_wait a = { 0 };
		_Atomic uint64_t *w = lot_words();
		volatile uint64_t tk = below(64);

		if (w && chance(70)) {
			GUARD_BEGIN
			tk = atomic_fetch_add(&w[GOSYNC_COND_TICKETS], 1);
			GUARD_END
		}
		a.ticket = tk;
		if (chance(5))
			a.ticket = hostile64();
		a.deadline = wait_limits(&a.flags, &a.cancel_fd);
		return ioctl(fd, GOSYNC_IOC_LOT_COND_WAIT, &a);
	}
	case OP_WG_ADD: {
		struct gosync_lot_wg_add a = {
			.delta = chance(50) ? 1 : -(int64_t)below(3),
		};

		if (chance(20))
			a.flags = GOSYNC_WG_ADOPT;
		if (chance(5))
			a.delta = (int64_t)hostile64();
		if (chance(3))
			a.flags = mutate_flags(~0U);
		if (chance(3))
			a.reserved = 1;
		return ioctl(fd, GOSYNC_IOC_LOT_WG_ADD, &a);
	}
	case OP_ARRIVE: {
		_Atomic uint64_t *w = lot_words();
		struct gosync_lot_arrive a = { 0 };
		volatile uint64_t v = 0;

		if (w) {
			GUARD_BEGIN
			v = atomic_load(&w[0]);
			GUARD_END
		}
		a.round = chance(90) ? v >> GOSYNC_BARRIER_ROUND_SHIFT :
				       hostile64();
		a.deadline = wait_limits(&a.flags, &a.cancel_fd);
		return ioctl(fd, GOSYNC_IOC_LOT_ARRIVE, &a);
	}
	case OP_COND_NOTIFY: {
		uint32_t n = chance(50) ? 1 : GOSYNC_LOT_ALL;

		if (chance(5))
			n = (uint32_t)hostile64();
		return ioctl(fd, GOSYNC_IOC_LOT_COND_NOTIFY, &n);
	}
	default: {
		struct gosync_lot_status st;

		return ioctl(fd, GOSYNC_IOC_LOT_STATUS,
			     chance(90) ? (void *)&st :
			     (void *)(uintptr_t)user_ptr(sizeof(st), true));
	}
	}
}

/* ---------------------------------------------------------------------- */
/* Processes and fds. */

/* Fork while other threads wait: the child waits too, briefly, and exits. */
static long op_fork(void)
{
	pid_t pid = fork();
	int st, idx;

	if (pid < 0)
		return -1;
	if (!pid) {
		struct gosync_chan_xfer x = { .value = 0 };
		struct gosync_sem_acquire a = { .count = 1 };

		x.deadline = now_ns(CLOCK_MONOTONIC) + 5000000;
		a.deadline = x.deadline;
		ioctl(pick_fd(K_CHAN, &idx), GOSYNC_IOC_CHAN_RECV, &x);
		ioctl(pick_fd(K_SEM, &idx), GOSYNC_IOC_SEM_ACQUIRE, &a);
		if (chance(50))
			ioctl(pick_fd(K_CHAN, &idx), GOSYNC_IOC_CHAN_CLOSE);
		_exit(0);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static long op_scm_send(int *idx)
{
	int fds[3], n = 1 + (int)below(3), i;
	char cbuf[CMSG_SPACE(sizeof(fds))] = { 0 };
	char byte = 'f';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	for (i = 0; i < n; i++) {
		*idx = pick_obj();
		fds[i] = atomic_load(&objs[*idx].fd);
		if (fds[i] < 0)
			fds[i] = devfd;
	}
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	return sendmsg(sock[0], &msg, MSG_DONTWAIT);
}

static long op_scm_recv(int *idx)
{
	int fds[3];
	char cbuf[CMSG_SPACE(sizeof(fds))];
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	long n = recvmsg(sock[1], &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int i, k;

	if (n < 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (k > (int)(sizeof(fds) / sizeof(fds[0])))	/* never more */
			k = (int)(sizeof(fds) / sizeof(fds[0]));
		memcpy(fds, CMSG_DATA(c), k * sizeof(int));
		for (i = 0; i < k; i++) {
			struct gosync_chan_status cs;
			struct gosync_sem_status ss;
			struct gosync_lot_status ls;
			int kind = K_OTHER;
			uint32_t elem = 0, cap = 0;

			/* Learn what came with the status ioctls. */
			if (!ioctl(fds[i], GOSYNC_IOC_CHAN_STATUS, &cs)) {
				kind = ioctl(fds[i], GOSYNC_IOC_TIMER_STOP) < 0 ?
					K_CHAN : K_TIMER;
				elem = cs.elem_size;
				cap = cs.capacity;
			} else if (!ioctl(fds[i], GOSYNC_IOC_SEM_STATUS, &ss)) {
				kind = K_SEM;
			} else if (!ioctl(fds[i], GOSYNC_IOC_LOT_STATUS, &ls)) {
				kind = ls.kind == GOSYNC_LOT_COND ? K_COND : K_LOT;
			}
			*idx = pick_obj();
			obj_set(*idx, fds[i], kind, elem, cap);
		}
	}
	return n;
}

static long op_other_fd(int i)
{
	int p[2], fd = -1, kind;

	switch (below(4)) {
	case 0:
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
			return -1;
		close(p[1]);
		fd = p[0];
		kind = K_PIPE;
		break;
	case 1:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		kind = K_NULL;
		break;
	case 2:
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		kind = K_EVENTFD;
		break;
	default:
		fd = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
		kind = K_DEV;
		break;
	}
	if (fd >= 0)
		obj_set(i, fd, kind, 0, 0);
	return fd;
}

static long op_poll(int *idx)
{
	struct pollfd p[4];
	int n = 1 + (int)below(4), i;

	for (i = 0; i < n; i++) {
		*idx = pick_obj();
		p[i].fd = atomic_load(&objs[*idx].fd);
		p[i].events = (short)(chance(80) ? (POLLIN | POLLOUT) : rnd());
	}
	return poll(p, n, (int)below(5));
}

/* Ioctl numbers near gosync's: wrong sizes, directions and numbers. */
static long op_bad_ioctl(int *idx)
{
	static const unsigned long cmds[] = {
		GOSYNC_IOC_VERSION, GOSYNC_IOC_SEM_CREATE, GOSYNC_IOC_CHAN_CREATE,
		GOSYNC_IOC_SELECT, GOSYNC_IOC_TIMER_CREATE, GOSYNC_IOC_LOT_CREATE,
		GOSYNC_IOC_SEM_TRY_ACQUIRE, GOSYNC_IOC_SEM_RELEASE,
		GOSYNC_IOC_CHAN_CLOSE, GOSYNC_IOC_CHAN_KICK, GOSYNC_IOC_TIMER_STOP,
		GOSYNC_IOC_LOT_UNPARK, GOSYNC_IOC_LOT_COND_NOTIFY,
		GOSYNC_IOC_LOT_WG_ADD, GOSYNC_IOC_LOT_ARRIVE,
	};
	unsigned long cmd = cmds[below(sizeof(cmds) / sizeof(cmds[0]))];
	int fd = chance(30) ? devfd : atomic_load(&objs[*idx = pick_obj()].fd);

	switch (below(4)) {
	case 0: cmd ^= 1UL << (16 + below(14)); break;	/* size */
	case 1: cmd ^= 1UL << (30 + below(2)); break;	/* direction */
	case 2: cmd = (cmd & ~0xffUL) | below(256); break;
	default: break;
	}
	memset(buf, (int)rnd(), 256);
	return ioctl(fd, cmd, chance(80) ? (void *)buf :
		     (void *)(uintptr_t)user_ptr(256, true));
}

/* ---------------------------------------------------------------------- */
/* One operation. */

static void one_op(int tid)
{
	int op = (int)below(OP_NR), idx = pick_obj(), m = (int)below(NMAP);
	struct op_rec *r;
	long ret;

	/* Bias: the waiting and transferring ioctls are the deep ones. */
	if (chance(35)) {
		static const int hot[] = { OP_CHAN_SEND, OP_CHAN_RECV, OP_SELECT,
					   OP_SEM_ACQUIRE, OP_SEM_RELEASE,
					   OP_LOT_PARK, OP_LOT_UNPARK,
					   OP_COND_WAIT, OP_COND_NOTIFY,
					   OP_RING_PUSH, OP_RING_POP, OP_ARRIVE };

		op = hot[below(sizeof(hot) / sizeof(hot[0]))];
	}
	r = op_begin(op, idx, (uint64_t)m);
	errno = 0;
	switch (op) {
	case OP_VERSION: {
		struct gosync_version v = { 0 };

		if (chance(5))
			v.flags = mutate_flags(~0U);
		if (chance(5))
			v.reserved[below(2)] = 1;
		ret = ioctl(chance(90) ? devfd : atomic_load(&objs[idx].fd),
			    GOSYNC_IOC_VERSION, chance(95) ? (void *)&v :
			    (void *)(uintptr_t)user_ptr(sizeof(v), true));
		break;
	}
	case OP_SEM_CREATE:
	case OP_CHAN_CREATE:
	case OP_TIMER_CREATE:
	case OP_LOT_CREATE:
		ret = new_object(idx, op);
		break;
	case OP_SEM_ACQUIRE:
	case OP_SEM_TRY:
	case OP_SEM_RELEASE:
	case OP_SEM_STATUS:
		ret = op_sem(op, &idx);
		break;
	case OP_SEM_FAST:
		ret = op_sem_fast(m);
		break;
	case OP_CHAN_SEND:
	case OP_CHAN_RECV:
	case OP_CHAN_CLOSE:
	case OP_CHAN_STATUS:
	case OP_CHAN_KICK:
		if (op == OP_CHAN_CLOSE && chance(70)) {
			ret = 0;	/* closes are rarer: channels live on */
			break;
		}
		ret = op_chan(op, &idx);
		break;
	case OP_RING_PUSH:
	case OP_RING_POP:
		ret = op_ring(m, op == OP_RING_PUSH);
		if (ret == 1 || chance(10)) {
			int f = pick_fd(K_CHAN, &idx);

			ioctl(f, GOSYNC_IOC_CHAN_KICK);
		}
		break;
	case OP_SELECT:
		ret = op_select(&idx);
		break;
	case OP_TIMER_STOP:
	case OP_TIMER_RESET:
		ret = op_timer(op, &idx);
		break;
	case OP_LOT_PARK:
	case OP_LOT_UNPARK:
	case OP_LOT_STATUS:
	case OP_COND_WAIT:
	case OP_COND_NOTIFY:
	case OP_WG_ADD:
	case OP_ARRIVE:
		ret = op_lot(op, &idx);
		break;
	case OP_MMAP:
		ret = op_mmap(m);
		break;
	case OP_UNMAP:
		ret = op_unmap(m);
		break;
	case OP_MPROTECT:
		ret = op_mprotect(m);
		break;
	case OP_MREMAP:
		ret = op_mremap(m);
		break;
	case OP_SCRIBBLE:
		ret = chance(30) ? op_scribble(m) : 0;
		break;
	case OP_CLOSE:
		obj_set(idx, -1, K_NONE, 0, 0);
		ret = 0;
		break;
	case OP_DUP: {
		int fd = fcntl(atomic_load(&objs[idx].fd), F_DUPFD_CLOEXEC, 3);
		int j = pick_obj();

		ret = fd;
		if (fd >= 0)
			obj_set(j, fd, atomic_load(&objs[idx].kind),
				atomic_load(&objs[idx].elem),
				atomic_load(&objs[idx].cap));
		break;
	}
	case OP_OTHER_FD:
		ret = chance(30) ? op_other_fd(idx) : 0;
		break;
	case OP_FORK:
		ret = chance(10) ? op_fork() : 0;
		break;
	case OP_SCM_SEND:
		ret = op_scm_send(&idx);
		break;
	case OP_SCM_RECV:
		ret = op_scm_recv(&idx);
		break;
	case OP_POLL:
		ret = op_poll(&idx);
		break;
	case OP_RW: {
		int fd = atomic_load(&objs[idx].fd);

		ret = chance(50) ? read(fd, buf, below(64)) :
			write(fd, buf, below(64));
		break;
	}
	case OP_BAD_IOCTL:
		ret = op_bad_ioctl(&idx);
		break;
	case OP_ROBUST:
		/* Register, or die (the kernel's death walk over every lot). */
		ret = ioctl(chance(95) ? devfd : atomic_load(&objs[idx].fd),
			    chance(60) ? GOSYNC_IOC_ROBUST_REGISTER :
					 GOSYNC_IOC_ROBUST_EXIT,
			    chance(95) ? 0UL : (unsigned long)hostile64());
		if (ret > 0)
			robust_handle = (uint32_t)ret;
		break;
	default: {
		int t = (int)below((uint64_t)nthreads);

		ret = t == tid || t >= atomic_load(&nstarted) ? 0 :
			pthread_kill(threads[t], SIGUSR1);
		break;
	}
	}
	r->obj = idx;
	op_end(r, ret);
}

static void *thread_main(void *arg)
{
	int tid = (int)(intptr_t)arg;

	use_alt_stack();
	/*
	 * No operation before every thread is made: a thread's stack is
	 * mapped wherever the kernel finds room, and the mapping slots'
	 * changes must never leave room for one among them.
	 */
	while (!atomic_load(&all_started))
		sched_yield();
	self = &me->thr[tid];
	rng = mix(mix(mix(seed) ^ (uint64_t)(me - shm)) ^ (uint64_t)tid) ^
		mix(me->gen);
	if (!rng)
		rng = 1;
	for (;;)
		one_op(tid);
	return NULL;
}

static void worker(int i)
{
	struct sigaction sa = { 0 };
	int t;

	me = &shm[i];
	rng = mix(seed ^ (uint64_t)i ^ ((uint64_t)me->gen << 32)) | 1;
	/* Half the workers restart interrupted waits, half see -EINTR. */
	sa.sa_handler = on_usr1;
	sa.sa_flags = chance(50) ? SA_RESTART : 0;
	sigaction(SIGUSR1, &sa, NULL);
	use_alt_stack();
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_NODEFER | SA_SIGINFO | SA_ONSTACK;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The supervisor blocked it across fork(), until the handler is set. */
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &sa.sa_mask, NULL);

	devfd = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (devfd < 0) {
		perror("fuzz: " GOSYNC_DEVICE_PATH);
		_exit(2);
	}
	ro_page = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	none_page = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/*
	 * The slots, and one slot more that no operation maps: a pointer
	 * near the end of the last slot's mapping, for a value larger than
	 * the builder thought (its fd changed meanwhile), must run into this
	 * reserve (-EFAULT), never into whatever lies beyond.
	 */
	char *arena = mmap(NULL, (NMAP + 1) * MAP_SLOT, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (arena == MAP_FAILED || ro_page == MAP_FAILED || none_page == MAP_FAILED)
		_exit(2);
	arena_lo = arena;
	arena_hi = arena + NMAP * MAP_SLOT;
	for (t = 0; t < NMAP; t++)
		maps[t].base = arena + t * MAP_SLOT;
	/* A table of valid objects to start from. */
	for (t = 0; t < NOBJ; t++) {
		atomic_store(&objs[t].fd, -1);
		self = &me->thr[0];
		switch (t % 6) {
		case 0: new_object(t, OP_SEM_CREATE); break;
		case 1: case 2: new_object(t, OP_CHAN_CREATE); break;
		case 3: new_object(t, OP_TIMER_CREATE); break;
		default: new_object(t, OP_LOT_CREATE); break;
		}
	}
	for (t = 0; t < nthreads; t++) {
		if (pthread_create(&threads[t], NULL, thread_main,
				   (void *)(intptr_t)t)) {
			fprintf(stderr, "fuzz: pthread_create failed\n");
			_exit(2);
		}
		atomic_store(&nstarted, t + 1);
	}
	atomic_store(&all_started, 1);
	for (;;)
		pause();
}

/* ---------------------------------------------------------------------- */
/* The supervisor. */

static pid_t spawn(int i)
{
	sigset_t usr1, old;
	pid_t pid;

	/* A SIGUSR1 that came before the worker's handler would kill it. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("fuzz: fork");
		exit(2);
	}
	if (!pid)
		worker(i);	/* unblocks it once its handler is set */
	sigprocmask(SIG_SETMASK, &old, NULL);
	atomic_store(&shm[i].pid, pid);
	return pid;
}

static void print_ops(void)
{
	int i, t, k;

	for (i = 0; i < nprocs; i++) {
		for (t = 0; t < nthreads; t++) {
			struct thr_slot *s = &shm[i].thr[t];
			uint32_t pos = atomic_load(&s->pos);

			printf("# worker %d (life %u) thread %d, last operations (oldest first):\n",
			       i, shm[i].gen, t);
			for (k = OPS_KEPT; k > 0; k--) {
				struct op_rec *r;

				if (pos < (uint32_t)k)
					continue;
				r = &s->ring[(pos - k) % OPS_KEPT];
				if (r->ret == RUNNING)
					printf("#   %-12s obj %2u slot %2" PRIu64 " -> (running)\n",
					       op_names[r->op % OP_NR], r->obj, r->arg);
				else
					printf("#   %-12s obj %2u slot %2" PRIu64 " -> %d%s%s\n",
					       op_names[r->op % OP_NR], r->obj, r->arg,
					       r->ret, r->ret < 0 ? " " : "",
					       r->ret < 0 ? strerror(-r->ret) : "");
			}
		}
	}
}

/* Kernel log lines that are a failure. */
static bool is_splat(const char *l)
{
	static const char *const pat[] = {
		"BUG:", "WARNING:", "Oops", "general protection fault",
		"kernel BUG at", "KASAN", "UBSAN", "KCSAN", "DEBUG_LOCKS_WARN_ON",
		"suspicious RCU usage", "blocked for more than", "soft lockup",
		"hard LOCKUP", "list_add corruption", "list_del corruption",
		"ODEBUG", "possible circular locking", "unreferenced object",
		"refcount_t:", "Call Trace",
	};
	size_t i;

	for (i = 0; i < sizeof(pat) / sizeof(pat[0]); i++)
		if (strstr(l, pat[i]))
			return true;
	return false;
}

/*
 * Read the kernel log records logged since @fd was opened; count splats.
 * A KCSAN report (KCSAN kernel) counts only when one of its two racing
 * accesses is the module's: the first frame after a "read/write ... by"
 * line names '[gosync]' (the rule scripts/vm.sh applies too); KCSAN also
 * reports races inside the kernel's own code, which are not gosync's.
 */
static int scan_kmsg(int fd)
{
	static char rec[8192];
	int splats = 0, kcsan = 0, top = 0, ours = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	for (;;) {
		char *msg;

		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0) {
			if (errno == EPIPE)	/* overwritten records */
				continue;
			break;
		}
		rec[n] = 0;
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		if (strstr(msg, "BUG: KCSAN:")) {
			kcsan = 1, top = 0, ours = 0;
			printf("# kernel log: %s", msg);
			continue;
		}
		if (kcsan) {
			if (strstr(msg, " by ") && (strstr(msg, "read") ||
						    strstr(msg, "write"))) {
				top = 1;
			} else if (top && strstr(msg, "+0x")) {
				ours |= strstr(msg, "[gosync]") != NULL;
				top = 0;
			} else if (strstr(msg, "=========")) {
				kcsan = 0;
				printf("#   (%s)\n", ours ? "a race in gosync" :
				       "inside the kernel, not counted");
				splats += ours;
			}
			continue;
		}
		if (is_splat(msg)) {
			if (!splats)
				printf("# kernel log:\n");
			printf("#   %s", msg);
			splats++;
		}
	}
	return splats;
}

static uint64_t count_ops(void)
{
	uint64_t total = 0;
	int i, t;

	for (i = 0; i < nprocs; i++) {
		total += shm[i].dead_ops;
		for (t = 0; t < nthreads; t++)
			total += atomic_load(&shm[i].thr[t].nops);
	}
	return total;
}

static void usage(void)
{
	fprintf(stderr, "usage: gosync_fuzz [-s SEED] [-t SECONDS] [-p PROCESSES 1-%d] [-j THREADS 1-%d]\n",
		MAX_PROCS, MAX_THREADS);
	exit(2);
}

int main(int argc, char **argv)
{
	double seconds = 60;
	uint64_t t0, end, total, srng, next_report;

	/*
	 * Without glibc's rseq registration. With it, workers died on the
	 * kcsan kernel (not seen on the debug one) of a SIGSEGV forced on
	 * return from a successful ioctl, the kernel's answer to an rseq
	 * area it found invalid, once in some 10^5 operations; without it,
	 * none in 7 * 10^5. What corrupts the area is not found yet (see the
	 * README; GOSYNC_FUZZ_RSEQ=1 keeps the registration, to look for it).
	 */
	if (!getenv("GOSYNC_FUZZ_RSEQ")) {
		setenv("GOSYNC_FUZZ_RSEQ", "0", 1);
		setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
		execv("/proc/self/exe", argv);
	}
	int c, i, kmsg, failures = 0, respawns = 0, kills = 0, splats;
	const char *why = "";
	bool have_seed = false;

	while ((c = getopt(argc, argv, "s:t:p:j:")) != -1) {
		switch (c) {
		case 's': seed = strtoull(optarg, NULL, 0); have_seed = true; break;
		case 't': seconds = strtod(optarg, NULL); break;
		case 'p': nprocs = atoi(optarg); break;
		case 'j': nthreads = atoi(optarg); break;
		default: usage();
		}
	}
	if (nprocs < 1 || nprocs > MAX_PROCS || nthreads < 1 ||
	    nthreads > MAX_THREADS || !(seconds > 0))
		usage();
	if (!have_seed)
		seed = now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("1..1\n");
	printf("# gosync_fuzz: seed %" PRIu64 ", %.0f s, %d processes x %d threads (replay: gosync_fuzz -s %" PRIu64 " -p %d -j %d)\n",
	       seed, seconds, nprocs, nthreads, seed, nprocs, nthreads);

	shm = mmap(NULL, sizeof(*shm) * MAX_PROCS, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sock)) {
		perror("fuzz: setup");
		return 2;
	}
	/* The kernel log from now on (records logged before are not ours). */
	/*
	 * A worker that dies of a signal nobody sent (one the kernel forced,
	 * which no handler sees) is described by the kernel: its registers.
	 */
	c = open("/proc/sys/kernel/print-fatal-signals", O_WRONLY | O_CLOEXEC);
	if (c >= 0) {
		(void)!write(c, "1", 1);
		close(c);
	}
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg >= 0)
		lseek(kmsg, 0, SEEK_END);
	signal(SIGPIPE, SIG_IGN);

	for (i = 0; i < nprocs; i++)
		spawn(i);
	srng = mix(seed ^ 0x5eed);
	t0 = now_ns(CLOCK_MONOTONIC);
	end = t0 + (uint64_t)(seconds * 1e9);
	next_report = t0 + 30000000000ULL;
	while (!failures && now_ns(CLOCK_MONOTONIC) < end) {
		int st;
		pid_t pid;

		usleep(20000);
		if (now_ns(CLOCK_MONOTONIC) > next_report) {
			next_report += 30000000000ULL;
			printf("# %.0f s, %" PRIu64 " ops, %d workers respawned\n",
			       (now_ns(CLOCK_MONOTONIC) - t0) / 1e9, count_ops(),
			       respawns);
		}
		/* Reap: a worker killed by anything but us is a failure. */
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (i = 0; i < nprocs; i++)
				if (atomic_load(&shm[i].pid) == pid)
					break;
			if (i == nprocs)
				continue;
			if (WIFSIGNALED(st) && WTERMSIG(st) == atomic_load(&shm[i].our_signal)) {
				int t;

				for (t = 0; t < nthreads; t++) {
					shm[i].dead_ops += atomic_load(&shm[i].thr[t].nops);
					atomic_store(&shm[i].thr[t].nops, 0);
					atomic_store(&shm[i].thr[t].start_ns, 0);
				}
				atomic_store(&shm[i].our_signal, 0);
				shm[i].gen++;
				respawns++;
				spawn(i);
				continue;
			}
			printf("# worker %d (pid %d) %s %d\n", i, pid,
			       WIFSIGNALED(st) ? "died of signal" : "exited with status",
			       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			why = "a worker died";
			failures++;
			atomic_store(&shm[i].pid, 0);
		}
		if (failures)
			break;
		/* The hang watchdog. */
		for (i = 0; i < nprocs; i++) {
			int t;

			for (t = 0; t < nthreads; t++) {
				uint64_t s = atomic_load(&shm[i].thr[t].start_ns);

				if (s && now_ns(CLOCK_MONOTONIC) - s > HANG_SECONDS * 1000000000ULL) {
					printf("# worker %d thread %d: one operation for over %d s\n",
					       i, t, HANG_SECONDS);
					why = "a hang";
					failures++;
				}
			}
		}
		/* Signals: EINTR often, a stop now and then, a kill sometimes. */
		srng = mix(srng);
		i = (int)(srng % nprocs);
		pid = atomic_load(&shm[i].pid);
		if (!pid || atomic_load(&shm[i].our_signal))
			continue;
		switch ((srng >> 8) % 100) {
		case 0 ... 29:
			kill(pid, SIGUSR1);
			break;
		case 30:
			kill(pid, SIGSTOP);
			usleep(5000);
			kill(pid, SIGCONT);
			break;
		case 31 ... 32:
			atomic_store(&shm[i].our_signal, SIGKILL);
			kill(pid, SIGKILL);
			kills++;
			break;
		default:
			break;
		}
	}
	/* Stop everybody, then look at the kernel log. */
	for (i = 0; i < nprocs; i++) {
		pid_t pid = atomic_load(&shm[i].pid);

		if (pid) {
			atomic_store(&shm[i].our_signal, SIGKILL);
			kill(pid, SIGKILL);
		}
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	close(sock[0]);
	close(sock[1]);
	usleep(200000);		/* let timers of the dead fire and log */
	splats = scan_kmsg(kmsg);
	if (splats && !failures) {
		why = "kernel log splat";
		failures++;
	}
	total = count_ops();
	{
		double secs = (now_ns(CLOCK_MONOTONIC) - t0) / 1e9;

		if (failures) {
			printf("# FAILED (%s), seed %" PRIu64 "\n", why, seed);
			print_ops();
		}
		printf("# %d workers killed and respawned, %d kernel log splats\n",
		       respawns, splats);
		printf("%sok 1 fuzz: seed %" PRIu64 ", %" PRIu64 " ops in %.0f s (%.0f ops/s), %d processes x %d threads%s%s\n",
		       failures ? "not " : "", seed, total, secs, total / secs,
		       nprocs, nthreads, failures ? ": " : "", why);
	}
	(void)kills;
	return failures ? 1 : 0;
}
