// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the parking lot (the kernel half of libgosync's sync package),
 * through the raw ioctls:
 *
 *  - creation: every kind and its param through STATUS and fdinfo, the
 *    ioctl conventions (-EINVAL, -EFAULT, -ENOTTY), O_CLOEXEC;
 *  - the shared page: zero at creation, the mmap rules, one page seen by
 *    every mapping and every process, and the words the kernel compares;
 *  - park: -EAGAIN on a changed word (only the masked bits count), the
 *    argument checks, deadlines on both clocks;
 *  - unpark: only the waiters of one word, counts, FIFO order, PARK_FRONT;
 *  - no wake-up is lost: an unpark racing a deadline or a signal is either
 *    consumed by a park that returns 0 or not counted at all, in single
 *    races and under stress, and a futex-style mutex built on a lot;
 *  - signals (-EINTR, SA_RESTART with the word compared again);
 *  - fds closed and processes killed while parked, fork and SCM_RIGHTS;
 *  - garbage written into the page while others park and unpark;
 *  - 200 threads parked on distinct words, woken word by word.
 *
 * After every operation the lot's counters (STATUS and fdinfo) are checked.
 * Worker threads never use ASSERT/EXPECT: they record what happened and the
 * test's main thread checks it. Every wait that should end by itself is
 * bounded (a deadline or WAIT_LIMIT_MS), so that a bug fails, not hangs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

#define PAGE		4096
#define WORDS		GOSYNC_LOT_WORDS
#define ALL		GOSYNC_LOT_ALL
#define FRONT		GOSYNC_LOT_PARK_FRONT
#define REALTIME	GOSYNC_CLOCK_REALTIME
/* A deadline for parks that a test ends itself: far, but not forever. */
#define LONG_MS		(2 * WAIT_LIMIT_MS)
/* How long a park that must block is watched to make sure it has not returned. */
#define BLOCKED_MS	50
/*
 * Lateness allowed to a deadline: only the watchdog of a hang (that it
 * did not end early is what the lower bounds check).
 */
#define LATE_MS		WAIT_LIMIT_MS
/* A deadline that must outlast a thread starting and parking. */
#define PARK_WINDOW_MS	1000

static const char *const kind_names[] = {
	[GOSYNC_LOT_PLAIN] = "plain",
	[GOSYNC_LOT_MUTEX] = "mutex",
	[GOSYNC_LOT_RWMUTEX] = "rwmutex",
	[GOSYNC_LOT_WAITGROUP] = "waitgroup",
	[GOSYNC_LOT_ONCE] = "once",
	[GOSYNC_LOT_COND] = "cond",
	[GOSYNC_LOT_BARRIER] = "barrier",
};

/* ------------------------------------------------------------------ */
/* Raw ioctls: each returns 0 (or an fd, or a count) or a negative errno. */

static int dev_open(void)
{
	return open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
}

static int lot_create(int dev, uint32_t kind, uint64_t param)
{
	struct gosync_lot_create arg = { .kind = kind, .param = param };

	return xioctl(dev, GOSYNC_IOC_LOT_CREATE, &arg);
}

static int lot_park(int fd, uint32_t index, uint64_t mask, uint64_t expected,
		    uint64_t deadline, uint32_t flags)
{
	struct gosync_lot_park arg = {
		.index = index, .flags = flags, .mask = mask,
		.expected = expected, .deadline = deadline,
	};

	return xioctl(fd, GOSYNC_IOC_LOT_PARK, &arg);
}

static int lot_unpark(int fd, uint32_t index, uint32_t count)
{
	struct gosync_lot_unpark arg = { .index = index, .count = count };

	return xioctl(fd, GOSYNC_IOC_LOT_UNPARK, &arg);
}

static int lot_unpark_ex(int fd, uint32_t index, uint32_t count,
			 uint32_t flags, uint32_t reserved, uint64_t add)
{
	struct gosync_lot_unpark arg = {
		.index = index, .count = count, .flags = flags,
		.reserved = reserved, .add = add,
	};

	return xioctl(fd, GOSYNC_IOC_LOT_UNPARK, &arg);
}

/* The lot's page, read-write, or NULL. */
static volatile uint64_t *lot_map(int fd)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void lot_unmap(volatile uint64_t *w)
{
	if (w)
		munmap((void *)w, PAGE);
}

static uint64_t mono_in_ms(unsigned int ms)
{
	return mono_ns() + ms * NS_PER_MS;
}

/*
 * The lot has @parked_ threads parked and has seen @parks_ parks,
 * @unparks_ unparks and @woken_ wake-ups, in STATUS and in fdinfo.
 */
#define EXPECT_LOT(fd, parked_, parks_, unparks_, woken_) do {		\
	struct gosync_lot_status st_;					\
	int fd_ = (fd);							\
	uint32_t parked_v_ = (parked_);					\
	uint64_t parks_v_ = (parks_);					\
	uint64_t unparks_v_ = (unparks_);				\
	uint64_t woken_v_ = (woken_);					\
	ASSERT_EQ(0, lot_status(fd_, &st_));				\
	EXPECT_EQ(parked_v_, st_.parked);				\
	EXPECT_EQ(parks_v_, st_.parks);					\
	EXPECT_EQ(unparks_v_, st_.unparks);				\
	EXPECT_EQ(woken_v_, st_.woken);					\
	EXPECT_EQ((long long)parked_v_, fdinfo_num(fd_, "parked"));	\
	EXPECT_EQ((long long)parks_v_, fdinfo_num(fd_, "parks"));	\
	EXPECT_EQ((long long)unparks_v_, fdinfo_num(fd_, "unparks"));	\
	EXPECT_EQ((long long)woken_v_, fdinfo_num(fd_, "woken"));	\
} while (0)

static bool fdinfo_has(int fd, const char *text)
{
	char buf[2048];

	return fdinfo_read(fd, buf, sizeof(buf)) == 0 && strstr(buf, text);
}

/* ------------------------------------------------------------------ */
/* Parker threads                                                       */

struct parker {
	int fd;
	int id;
	uint32_t index;
	uint32_t flags;
	uint64_t mask;
	uint64_t expected;
	uint64_t deadline;
	struct order *order;	/* optional: record when woken */
	pthread_t thread;
	atomic_bool done;
	int ret;
	uint64_t end_mono, end_real;
};

static void *parker_main(void *arg)
{
	struct parker *p = arg;

	p->ret = lot_park(p->fd, p->index, p->mask, p->expected, p->deadline,
			  p->flags);
	p->end_mono = mono_ns();
	p->end_real = real_ns();
	if (p->ret == 0 && p->order)
		order_add(p->order, p->id);
	atomic_store(&p->done, true);
	return NULL;
}

/* A thread parking on word @index while (word & @mask) == @expected. */
static int parker_start_mask(struct parker *p, int fd, int id, uint32_t index,
			     uint64_t mask, uint64_t expected,
			     uint64_t deadline, uint32_t flags, struct order *o)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->id = id;
	p->index = index;
	p->flags = flags;
	p->mask = mask;
	p->expected = expected;
	p->deadline = deadline;
	p->order = o;
	p->ret = 1;
	atomic_init(&p->done, false);
	return start_thread(&p->thread, parker_main, p);
}

/* A thread parking on word @index while it is 0. */
static int parker_start(struct parker *p, int fd, int id, uint32_t index,
			uint64_t deadline, uint32_t flags, struct order *o)
{
	return parker_start_mask(p, fd, id, index, ~0ULL, 0, deadline, flags,
				 o);
}

/* Wait (bounded) for the parker's call to return; true if it did. */
static bool parker_wait(struct parker *p, unsigned int ms)
{
	uint64_t end = mono_in_ms(ms);

	while (!atomic_load(&p->done)) {
		if (mono_ns() > end)
			return false;
		usleep(200);
	}
	return true;
}

/* Join a parker whose call has returned or must return by itself soon. */
static bool parker_join(struct parker *p)
{
	if (!parker_wait(p, WAIT_LIMIT_MS))
		return false;
	return join_ms(p->thread, WAIT_LIMIT_MS) == 0;
}

/*
 * Start @n parkers on the indexes @idx[i] with the flags @flags[i] (NULL:
 * 0), one after the other, each queued before the next starts: their queue
 * order is their order in the array (with FRONT ones moved to the front).
 */
static int park_in_order(struct parker *p, int n, int fd, const uint32_t *idx,
			 const uint32_t *flags, struct order *o,
			 uint32_t already)
{
	for (int i = 0; i < n; i++) {
		int ret = parker_start(&p[i], fd, i, idx[i], mono_in_ms(LONG_MS),
				       flags ? flags[i] : 0, o);

		if (ret)
			return -ret;
		ret = wait_parked(fd, already + i + 1);
		if (ret)
			return ret;
	}
	return 0;
}

/* ================================================================== */
/* 1. Creation and the ioctl conventions                                */

TEST(create_every_kind_round_trips)
{
	static const uint64_t params[] = {
		0, 1, 42, 1ULL << 32, INT64_MAX, UINT64_MAX, 1ULL << 63,
	};
	struct gosync_lot_status st;
	char link[128], path[64], line[96];
	int dev, fds[GOSYNC_LOT_KIND_MAX + 1];
	ssize_t n;

	ASSERT_EQ(GOSYNC_LOT_KIND_MAX + 1, (int)ARRAY_SIZE(kind_names));
	dev = dev_open();
	ASSERT_LE(0, dev) TH_LOG("open: %s", strerror(errno));

	for (uint32_t k = 0; k <= GOSYNC_LOT_KIND_MAX; k++) {
		uint64_t param = params[k % ARRAY_SIZE(params)];
		int fd = lot_create(dev, k, param);

		fds[k] = fd;
		ASSERT_LE(0, fd) TH_LOG("kind %u: %s", k, strerror(-fd));
		EXPECT_NE(dev, fd);
		EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
		EXPECT_EQ(O_RDWR, fcntl(fd, F_GETFL) & O_ACCMODE);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		ASSERT_LT(0, n);
		link[n] = '\0';
		EXPECT_STREQ("anon_inode:[gosync-lot]", link);

		ASSERT_EQ(0, lot_status(fd, &st));
		EXPECT_EQ(k, st.kind);
		EXPECT_EQ(param, st.param);
		EXPECT_EQ(0, st.parked);
		EXPECT_EQ(0, st.parks);
		EXPECT_EQ(0, st.unparks);
		EXPECT_EQ(0, st.woken);

		EXPECT_TRUE(fdinfo_has(fd, "\ngosync-type:\tlot\n"));
		snprintf(line, sizeof(line), "\nkind:\t%s\n", kind_names[k]);
		EXPECT_TRUE(fdinfo_has(fd, line)) TH_LOG("no %s", line + 1);
		snprintf(line, sizeof(line), "\nparam:\t%llu\n",
			 (unsigned long long)param);
		EXPECT_TRUE(fdinfo_has(fd, line)) TH_LOG("no %s", line + 1);
		EXPECT_LOT(fd, 0, 0, 0, 0);
	}
	/* Each lot is its own object: labels and counters stay apart. */
	ASSERT_EQ(0, lot_unpark(fds[1], 0, 1));
	EXPECT_LOT(fds[1], 0, 0, 1, 0);
	EXPECT_LOT(fds[2], 0, 0, 0, 0);
	for (uint32_t k = 0; k <= GOSYNC_LOT_KIND_MAX; k++) {
		ASSERT_EQ(0, lot_status(fds[k], &st));
		EXPECT_EQ(k, st.kind);
		EXPECT_EQ(params[k % ARRAY_SIZE(params)], st.param);
		close(fds[k]);
	}
	/* The library's device fd creates lots too. */
	int gfd = gs_device_fd();

	ASSERT_LE(0, gfd);
	int fd = lot_create(gfd, GOSYNC_LOT_COND, 77);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(GOSYNC_LOT_COND, st.kind);
	EXPECT_EQ(77, st.param);
	close(fd);
	close(dev);
}

TEST(create_rejects_bad_kind_flags_and_pointers)
{
	struct gosync_lot_create arg;
	struct gosync_lot_status st;
	int dev, fd, lowest;
	void *none, *ro;
	char *edge;

	dev = dev_open();
	ASSERT_LE(0, dev);
	lowest = lowest_free_fd();

	EXPECT_EQ(-EINVAL, lot_create(dev, GOSYNC_LOT_KIND_MAX + 1, 0));
	EXPECT_EQ(-EINVAL, lot_create(dev, 1U << 31, 0));
	EXPECT_EQ(-EINVAL, lot_create(dev, ~0U, 5));
	for (int i = 0; i < 3; i++) {
		memset(&arg, 0, sizeof(arg));
		arg.flags = i == 0 ? 1 : i == 1 ? 1U << 31 : ~0U;
		arg.param = 3;
		EXPECT_EQ(-EINVAL, xioctl(dev, GOSYNC_IOC_LOT_CREATE, &arg))
			TH_LOG("flags %#x", arg.flags);
	}
	EXPECT_EQ(lowest, lowest_free_fd());

	none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	edge = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, none);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_NE(MAP_FAILED, edge);
	ASSERT_EQ(0, munmap(edge + PAGE, PAGE));
	EXPECT_EQ(-EFAULT, xioctl(dev, GOSYNC_IOC_LOT_CREATE, NULL));
	EXPECT_EQ(-EFAULT, xioctl(dev, GOSYNC_IOC_LOT_CREATE, none));
	/* The struct straddles the end of the mapping. */
	EXPECT_EQ(-EFAULT, xioctl(dev, GOSYNC_IOC_LOT_CREATE, edge + PAGE - 8));
	EXPECT_EQ(lowest, lowest_free_fd());

	/* A read-only all-zero struct is a valid input: plain, param 0. */
	fd = xioctl(dev, GOSYNC_IOC_LOT_CREATE, ro);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, lot_status(fd, &st));
	EXPECT_EQ(GOSYNC_LOT_PLAIN, st.kind);
	EXPECT_EQ(0, st.param);
	close(fd);
	/* The largest kind is fine. */
	fd = lot_create(dev, GOSYNC_LOT_KIND_MAX, 9);
	ASSERT_LE(0, fd);
	close(fd);
	EXPECT_EQ(lowest, lowest_free_fd());
	munmap(none, PAGE);
	munmap(ro, PAGE);
	munmap(edge, PAGE);
	close(dev);
}

TEST(unknown_ioctls_are_enotty)
{
	unsigned long bad[] = {
		_IOW(GOSYNC_IOC_MAGIC, 0x43, struct gosync_lot_unpark),
		_IOW(GOSYNC_IOC_MAGIC, 0x4f, struct gosync_lot_park),
		_IOR(GOSYNC_IOC_MAGIC, 0x40, struct gosync_lot_park),
		_IOW(GOSYNC_IOC_MAGIC, 0x41, __u32),		/* wrong size */
		_IOWR(GOSYNC_IOC_MAGIC, 0x42, struct gosync_lot_status),
		_IOW(GOSYNC_IOC_MAGIC, 0x40, __u64),		/* wrong size */
		GOSYNC_IOC_VERSION,
		GOSYNC_IOC_LOT_CREATE,
		GOSYNC_IOC_SEM_ACQUIRE,
		GOSYNC_IOC_SEM_STATUS,
		GOSYNC_IOC_CHAN_CLOSE,
		_IO('x', 0),
		0,
	};
	unsigned long lot_cmds[] = {
		GOSYNC_IOC_LOT_PARK, GOSYNC_IOC_LOT_UNPARK, GOSYNC_IOC_LOT_STATUS,
	};
	union {
		struct gosync_lot_create create;
		struct gosync_lot_park park;
		char bytes[64];
	} arg;
	int dev, fd, lowest;

	dev = dev_open();
	ASSERT_LE(0, dev);
	fd = lot_create(dev, GOSYNC_LOT_MUTEX, 4);
	ASSERT_LE(0, fd);
	lowest = lowest_free_fd();
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&arg, 0, sizeof(arg));
		arg.park.deadline = 0;	/* a park, if taken as one, returns */
		EXPECT_EQ(-ENOTTY, xioctl(fd, bad[i], &arg))
			TH_LOG("cmd %#lx", bad[i]);
	}
	/* Lot ioctls mean nothing to /dev/gosync itself. */
	for (size_t i = 0; i < ARRAY_SIZE(lot_cmds); i++) {
		memset(&arg, 0, sizeof(arg));
		EXPECT_EQ(-ENOTTY, xioctl(dev, lot_cmds[i], &arg))
			TH_LOG("cmd %#lx", lot_cmds[i]);
	}
	EXPECT_EQ(lowest, lowest_free_fd());
	EXPECT_LOT(fd, 0, 0, 0, 0);
	close(fd);
	close(dev);
}

TEST(lot_ioctls_reject_bad_pointers)
{
	int dev, fd;
	void *none, *ro;

	dev = dev_open();
	ASSERT_LE(0, dev);
	fd = lot_create(dev, GOSYNC_LOT_PLAIN, 0);
	ASSERT_LE(0, fd);
	none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, none);
	ASSERT_NE(MAP_FAILED, ro);

	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_PARK, NULL));
	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_PARK, none));
	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_UNPARK, NULL));
	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_UNPARK, none));
	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_STATUS, NULL));
	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_STATUS, none));
	EXPECT_EQ(-EFAULT, xioctl(fd, GOSYNC_IOC_LOT_STATUS, ro));
	/* Nothing was counted. */
	EXPECT_LOT(fd, 0, 0, 0, 0);

	/*
	 * Read-only zeroes are valid inputs. Park: word 0, mask 0 (always
	 * equal), deadline 0 (past): -ETIMEDOUT. Unpark: count 0 wakes none.
	 */
	EXPECT_EQ(-ETIMEDOUT, xioctl(fd, GOSYNC_IOC_LOT_PARK, ro));
	EXPECT_LOT(fd, 0, 1, 0, 0);
	EXPECT_EQ(0, xioctl(fd, GOSYNC_IOC_LOT_UNPARK, ro));
	EXPECT_LOT(fd, 0, 1, 1, 0);
	munmap(none, PAGE);
	munmap(ro, PAGE);
	close(fd);
	close(dev);
}

/* ================================================================== */
/* 2. The shared page                                                   */

TEST(page_starts_zeroed_and_mmap_rules)
{
	volatile uint64_t *rw, *rw2, *ro;
	int dev, fd;
	void *p;

	dev = dev_open();
	ASSERT_LE(0, dev);
	fd = lot_create(dev, GOSYNC_LOT_RWMUTEX, 0);
	ASSERT_LE(0, fd);

	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PAGE);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, PAGE, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EPERM, errno);
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED,
		 fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EPERM, errno);

	ro = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, ro);
	rw = lot_map(fd);
	ASSERT_NE(NULL, rw);
	rw2 = lot_map(fd);
	ASSERT_NE(NULL, rw2);
	EXPECT_NE(rw, rw2);
	EXPECT_TRUE(all_bytes((const void *)ro, 0, PAGE));
	EXPECT_TRUE(all_bytes((const void *)rw, 0, PAGE));

	/* All views are the same page, the one the kernel compares. */
	rw[0] = 0x1122334455667788ULL;
	rw2[WORDS - 1] = 7;
	EXPECT_EQ(0x1122334455667788ULL, ro[0]);
	EXPECT_EQ(0x1122334455667788ULL, rw2[0]);
	EXPECT_EQ(7, ro[WORDS - 1]);
	EXPECT_EQ(7, rw[WORDS - 1]);
	EXPECT_EQ(-EAGAIN, lot_park(fd, 0, ~0ULL, 0, 0, 0));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0x1122334455667788ULL, 0, 0));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, WORDS - 1, ~0ULL, 7, 0, 0));
	EXPECT_EQ(-EAGAIN, lot_park(fd, WORDS - 2, ~0ULL, 7, 0, 0));
	/* The kernel never writes the page. */
	EXPECT_EQ(0x1122334455667788ULL, ro[0]);
	EXPECT_EQ(7, ro[WORDS - 1]);
	for (int i = 1; i < WORDS - 1; i++) {
		EXPECT_EQ(0, ro[i]) TH_LOG("word %d", i);
		if (ro[i])
			break;
	}
	EXPECT_LOT(fd, 0, 4, 0, 0);

	/* It can never become executable, nor grow. */
	EXPECT_EQ(-1, mprotect((void *)ro, PAGE, PROT_READ | PROT_EXEC));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(MAP_FAILED, mremap((void *)rw, PAGE, 2 * PAGE, MREMAP_MAYMOVE));
	EXPECT_EQ(EFAULT, errno);

	/* The page outlives the fd while mapped. */
	close(fd);
	EXPECT_EQ(0x1122334455667788ULL, ro[0]);
	rw[1] = 5;
	EXPECT_EQ(5, rw2[1]);
	lot_unmap(ro);
	lot_unmap(rw);
	lot_unmap(rw2);
	close(dev);
}

/* Every word is compared at its own index: the kernel reads the right word. */
TEST(every_word_is_compared_at_its_index)
{
	volatile uint64_t *w;
	uint64_t seed = 0x9e3779b97f4a7c15ULL, v[WORDS];
	int dev, fd, bad = 0;

	dev = dev_open();
	ASSERT_LE(0, dev);
	fd = lot_create(dev, GOSYNC_LOT_PLAIN, 0);
	ASSERT_LE(0, fd);
	w = lot_map(fd);
	ASSERT_NE(NULL, w);
	for (int i = 0; i < WORDS; i++) {
		v[i] = rnd64(&seed) | 1;	/* never 0, all distinct */
		w[i] = v[i];
	}
	for (int i = 0; i < WORDS && bad < 5; i++) {
		int other = (i + 1) % WORDS;
		int r1 = lot_park(fd, i, ~0ULL, v[i], 0, 0);
		int r2 = lot_park(fd, i, ~0ULL, v[other], 0, 0);
		int r3 = lot_park(fd, i, ~0ULL, 0, 0, 0);

		if (r1 != -ETIMEDOUT || r2 != -EAGAIN || r3 != -EAGAIN) {
			bad++;
			TH_LOG("word %d: %d %d %d", i, r1, r2, r3);
		}
	}
	EXPECT_EQ(0, bad);
	EXPECT_LOT(fd, 0, 3 * WORDS, 0, 0);
	lot_unmap(w);
	close(fd);
	close(dev);
}

static int child_shares_page(int fd, struct report *rep)
{
	volatile uint64_t *q = lot_map(fd);
	int ret;

	CHILD_CHECK(rep, q, "mmap: %s", strerror(errno));
	CHILD_CHECK(rep, q[1] == 111, "word 1 = %ju", (uintmax_t)q[1]);
	q[2] = 222;
	/* The kernel sees the child's value too. */
	ret = lot_park(fd, 2, ~0ULL, 222, 0, 0);
	CHILD_CHECK(rep, ret == -ETIMEDOUT, "park on 222: %d", ret);
	lot_unmap(q);
	return 0;
}

TEST(mappings_in_two_processes_share_words)
{
	volatile uint64_t *p, *inherited;
	struct report *rep;
	int dev, fd;
	pid_t pid;

	rep = report_new();
	ASSERT_NE(NULL, rep);
	dev = dev_open();
	ASSERT_LE(0, dev);
	fd = lot_create(dev, GOSYNC_LOT_ONCE, 0);
	ASSERT_LE(0, fd);
	p = lot_map(fd);
	ASSERT_NE(NULL, p);
	p[1] = 111;
	/* A mapping inherited by fork and one made in the child. */
	inherited = lot_map(fd);
	ASSERT_NE(NULL, inherited);
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int r = child_shares_page(fd, rep);

		if (!r)
			inherited[3] = 333;
		_exit(r);
	}
	EXPECT_CHILD_OK(pid, rep);
	EXPECT_EQ(222, p[2]);
	EXPECT_EQ(333, p[3]);
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 3, ~0ULL, 333, 0, 0));
	EXPECT_LOT(fd, 0, 2, 0, 0);
	lot_unmap(p);
	lot_unmap(inherited);
	close(fd);
	close(dev);
}

/* ================================================================== */
/* The "lot" fixture: a plain lot, its page mapped.                     */

FIXTURE(lot) {
	int dev;
	int fd;
	volatile uint64_t *w;
};

FIXTURE_SETUP(lot)
{
	self->dev = dev_open();
	ASSERT_LE(0, self->dev) TH_LOG("open: %s", strerror(errno));
	self->fd = lot_create(self->dev, GOSYNC_LOT_PLAIN, 0);
	ASSERT_LE(0, self->fd);
	self->w = lot_map(self->fd);
	ASSERT_NE(NULL, self->w);
}

FIXTURE_TEARDOWN(lot)
{
	lot_unmap(self->w);
	if (self->fd >= 0)
		close(self->fd);
	if (self->dev >= 0)
		close(self->dev);
}

/* ------------------------------------------------------------------ */
/* 3. Park: compare, arguments, deadlines                               */

TEST_F(lot, park_compares_only_masked_bits)
{
	int fd = self->fd;
	volatile uint64_t *w = self->w;
	uint64_t parks = 0;

	w[5] = 0xF0F0;
	/* Mismatch: -EAGAIN at once, even with no deadline at all. */
	EXPECT_EQ(-EAGAIN, lot_park(fd, 5, ~0ULL, 0, GOSYNC_DEADLINE_NONE, 0));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);
	EXPECT_EQ(-EAGAIN, lot_park(fd, 5, 0xFF00, 0xF100, GOSYNC_DEADLINE_NONE, 0));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);
	EXPECT_EQ(-EAGAIN, lot_park(fd, 5, 0xF, 0x1, GOSYNC_DEADLINE_NONE, 0));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);
	/* A mismatch is -EAGAIN even when the deadline has passed. */
	EXPECT_EQ(-EAGAIN, lot_park(fd, 5, ~0ULL, 0xF0F1, 0, 0));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);

	/* Match (only the masked bits): it would sleep; the past deadline says no. */
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 5, 0xFF00, 0xF000, 0, 0));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 5, 0xF, 0, 0, 0));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 5, 0, 0, 0, 0));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 5, ~0ULL, 0xF0F0, 0, REALTIME));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);
	/* Another word is still 0. */
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 6, ~0ULL, 0, 0, FRONT));
	EXPECT_LOT(fd, 0, ++parks, 0, 0);

	/* The top bit counts like any other. */
	w[7] = 1ULL << 63;
	EXPECT_EQ(-EAGAIN, lot_park(fd, 7, 1ULL << 63, 0, 0, 0));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 7, 1ULL << 63, 1ULL << 63, 0, 0));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 7, ~(1ULL << 63), 0, 0, 0));
	parks += 3;
	EXPECT_LOT(fd, 0, parks, 0, 0);

	/* A park that matches in the masked bits only really sleeps. */
	struct parker p;

	w[8] = 0xAB;
	ASSERT_EQ(0, parker_start_mask(&p, fd, 0, 8, 0xF0, 0xA0,
				       mono_in_ms(LONG_MS), 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_LOT(fd, 1, ++parks, 0, 0);
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&p.done));
	EXPECT_EQ(1, lot_unpark(fd, 8, 1));
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(0, p.ret);
	EXPECT_LOT(fd, 0, parks, 1, 1);
}

TEST_F(lot, park_invalid_arguments_are_einval)
{
	struct gosync_lot_park arg;
	int fd = self->fd;

	EXPECT_EQ(-EINVAL, lot_park(fd, WORDS, ~0ULL, 0, 0, 0));
	EXPECT_EQ(-EINVAL, lot_park(fd, WORDS + 1, 0, 0, 0, 0));
	EXPECT_EQ(-EINVAL, lot_park(fd, 1U << 31, 0, 0, 0, 0));
	EXPECT_EQ(-EINVAL, lot_park(fd, ~0U, 0, 0, 0, 0));
	/* The expected value must lie in the mask. */
	EXPECT_EQ(-EINVAL, lot_park(fd, 0, 0, 1, 0, 0));
	EXPECT_EQ(-EINVAL, lot_park(fd, 0, 0xF, 0x10, 0, 0));
	EXPECT_EQ(-EINVAL, lot_park(fd, 0, ~1ULL, 1, 0, 0));
	EXPECT_EQ(-EINVAL, lot_park(fd, 0, 1ULL << 63, 1, 0, 0));
	/* Unknown flags. */
	EXPECT_EQ(-EINVAL, lot_park(fd, 0, 0, 0, 0, 1U << 2));
	EXPECT_EQ(-EINVAL, lot_park(fd, 0, 0, 0, 0, 1U << 31));
	EXPECT_EQ(-EINVAL, lot_park(fd, 0, 0, 0, 0, ~0U));
	EXPECT_EQ(-EINVAL, lot_park(fd, 0, 0, 0, 0, ~(REALTIME | FRONT)));
	/* Rejected calls change nothing, not even the counters. */
	EXPECT_LOT(fd, 0, 0, 0, 0);

	EXPECT_EQ(-EINVAL, lot_unpark(fd, WORDS, 1));
	EXPECT_EQ(-EINVAL, lot_unpark(fd, ~0U, ALL));
	EXPECT_EQ(-EINVAL, lot_unpark(fd, 1U << 31, 0));
	EXPECT_LOT(fd, 0, 0, 0, 0);

	/* The edges are valid: last word, both flags, expected == mask. */
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, WORDS - 1, 0, 0, 0, REALTIME | FRONT));
	self->w[WORDS - 1] = ~0ULL;
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, WORDS - 1, ~0ULL, ~0ULL, 0, 0));
	EXPECT_EQ(0, lot_unpark(fd, WORDS - 1, ALL));
	EXPECT_LOT(fd, 0, 2, 1, 0);

	/* An invalid park leaves a parked thread alone. */
	struct parker p;

	ASSERT_EQ(0, parker_start(&p, fd, 0, 3, mono_in_ms(LONG_MS), 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	memset(&arg, 0, sizeof(arg));
	arg.index = WORDS;
	EXPECT_EQ(-EINVAL, xioctl(fd, GOSYNC_IOC_LOT_PARK, &arg));
	EXPECT_EQ(-EINVAL, lot_unpark(fd, WORDS + 3, ALL));
	EXPECT_FALSE(atomic_load(&p.done));
	EXPECT_LOT(fd, 1, 3, 1, 0);
	EXPECT_EQ(1, lot_unpark(fd, 3, ALL));
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(0, p.ret);
	EXPECT_LOT(fd, 0, 3, 2, 1);
}

TEST_F(lot, past_deadlines_time_out_at_once)
{
	int fd = self->fd;
	uint64_t t0 = mono_ns();

	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0, 0, 0));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0, 1, 0));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0, mono_ns(), 0));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0, mono_ns() - NS_PER_MS, 0));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0, 0, REALTIME));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0, real_ns(), REALTIME));
	/* A CLOCK_MONOTONIC "now" is long past on CLOCK_REALTIME. */
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0,
				       mono_ns() + 2 * LATE_MS * NS_PER_MS, REALTIME));
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0, 0, REALTIME | FRONT));
	EXPECT_GT(LATE_MS, ms_since(t0));
	EXPECT_LOT(fd, 0, 8, 0, 0);
	/* None of them stayed queued. */
	EXPECT_EQ(0, lot_unpark(fd, 0, ALL));
	EXPECT_LOT(fd, 0, 8, 1, 0);
}

static void check_deadline(struct __test_metadata *_metadata, int fd,
			   uint32_t flags, unsigned int ms)
{
	clockid_t clk = flags & REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC;
	uint64_t deadline = clock_ns(clk) + ms * NS_PER_MS, end;
	int ret;

	ret = lot_park(fd, 4, ~0ULL, 0, deadline, flags);
	end = clock_ns(clk);
	EXPECT_EQ(-ETIMEDOUT, ret);
	EXPECT_LE(deadline, end) TH_LOG("%ju ns early",
					(uintmax_t)(deadline - end));
	EXPECT_GT(deadline + LATE_MS * NS_PER_MS, end)
		TH_LOG("%ju ms late", (uintmax_t)((end - deadline) / NS_PER_MS));
}

TEST_F(lot, deadline_on_monotonic_clock)
{
	check_deadline(_metadata, self->fd, 0, 100);
	EXPECT_LOT(self->fd, 0, 1, 0, 0);
	check_deadline(_metadata, self->fd, FRONT, 30);
	EXPECT_LOT(self->fd, 0, 2, 0, 0);
	EXPECT_EQ(0, lot_unpark(self->fd, 4, ALL));
	EXPECT_LOT(self->fd, 0, 2, 1, 0);
}

TEST_F(lot, deadline_on_realtime_clock)
{
	check_deadline(_metadata, self->fd, REALTIME, 100);
	EXPECT_LOT(self->fd, 0, 1, 0, 0);
	check_deadline(_metadata, self->fd, REALTIME | FRONT, 30);
	EXPECT_LOT(self->fd, 0, 2, 0, 0);
	EXPECT_EQ(0, lot_unpark(self->fd, 4, ALL));
	EXPECT_LOT(self->fd, 0, 2, 1, 0);
}

/* A parked thread waits past a deadline on the other clock's scale. */
TEST_F(lot, deadline_beyond_ktime_and_forever_wait_for_unpark)
{
	struct parker p[3];
	int fd = self->fd;

	ASSERT_EQ(0, parker_start(&p[0], fd, 0, 1, GOSYNC_DEADLINE_NONE, 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, parker_start(&p[1], fd, 1, 1, GOSYNC_DEADLINE_NONE - 1, 0,
				  NULL));
	ASSERT_EQ(0, wait_parked(fd, 2));
	ASSERT_EQ(0, parker_start(&p[2], fd, 2, 1, (uint64_t)INT64_MAX, REALTIME,
				  NULL));
	ASSERT_EQ(0, wait_parked(fd, 3));
	sleep_ms(BLOCKED_MS);
	for (int i = 0; i < 3; i++) {
		EXPECT_FALSE(atomic_load(&p[i].done)) TH_LOG("parker %d", i);
	}
	EXPECT_LOT(fd, 3, 3, 0, 0);
	EXPECT_EQ(3, lot_unpark(fd, 1, ALL));
	for (int i = 0; i < 3; i++) {
		ASSERT_TRUE(parker_join(&p[i]));
		EXPECT_EQ(0, p[i].ret);
	}
	EXPECT_LOT(fd, 0, 3, 1, 3);
}

/* ------------------------------------------------------------------ */
/* 4. Unpark                                                            */

TEST_F(lot, unpark_with_nobody_parked_returns_zero)
{
	int fd = self->fd;

	EXPECT_EQ(0, lot_unpark(fd, 0, 1));
	EXPECT_EQ(0, lot_unpark(fd, 0, ALL));
	EXPECT_EQ(0, lot_unpark(fd, WORDS - 1, 5));
	EXPECT_EQ(0, lot_unpark(fd, 17, 0));
	EXPECT_LOT(fd, 0, 0, 4, 0);
	/* A waiter that timed out left the queue: nobody to wake. */
	EXPECT_EQ(-ETIMEDOUT, lot_park(fd, 0, ~0ULL, 0, mono_in_ms(20), 0));
	EXPECT_EQ(0, lot_unpark(fd, 0, ALL));
	EXPECT_LOT(fd, 0, 1, 5, 0);
	/* Nor one that found the word changed. */
	self->w[0] = 1;
	EXPECT_EQ(-EAGAIN, lot_park(fd, 0, ~0ULL, 0, GOSYNC_DEADLINE_NONE, 0));
	EXPECT_EQ(0, lot_unpark(fd, 0, ALL));
	EXPECT_LOT(fd, 0, 2, 6, 0);
}

/*
 * A hand-off adds to the word for each thread it wakes, before that
 * thread returns, and the thread's park returns 1.
 */
TEST_F(lot, handoff_adds_to_the_word_and_parks_return_one)
{
	int fd = self->fd;
	volatile uint64_t *w = self->w;
	struct parker p[2];

	w[3] = 100;
	/* Bad flags, reserved, or an addition without the flag. */
	EXPECT_EQ(-EINVAL, lot_unpark_ex(fd, 3, 1, 1U << 1, 0, 0));
	EXPECT_EQ(-EINVAL, lot_unpark_ex(fd, 3, 1, 0, 1, 0));
	EXPECT_EQ(-EINVAL, lot_unpark_ex(fd, 3, 1, 0, 0, 5));
	EXPECT_EQ(-EINVAL, lot_unpark_ex(fd, WORDS, 1,
					 GOSYNC_LOT_UNPARK_HANDOFF, 0, 5));
	/* Nobody parked: nothing woken, the word unchanged. */
	EXPECT_EQ(0, lot_unpark_ex(fd, 3, 1, GOSYNC_LOT_UNPARK_HANDOFF, 0,
				   (uint64_t)-30));
	EXPECT_EQ(100, w[3]);

	ASSERT_EQ(0, parker_start_mask(&p[0], fd, 0, 3, ~0ULL, 100,
				       GOSYNC_DEADLINE_NONE, 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_EQ(1, lot_unpark_ex(fd, 3, 1, GOSYNC_LOT_UNPARK_HANDOFF, 0,
				   (uint64_t)-30));
	ASSERT_TRUE(parker_join(&p[0]));
	EXPECT_EQ(1, p[0].ret);
	EXPECT_EQ(70, w[3]);

	/* Two at once: the addition is made once per thread woken. */
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, parker_start_mask(&p[i], fd, i, 3, ~0ULL, 70,
					       GOSYNC_DEADLINE_NONE, 0, NULL));
	}
	ASSERT_EQ(0, wait_parked(fd, 2));
	EXPECT_EQ(2, lot_unpark_ex(fd, 3, ALL, GOSYNC_LOT_UNPARK_HANDOFF, 0,
				   5));
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(parker_join(&p[i]));
		EXPECT_EQ(1, p[i].ret);
	}
	EXPECT_EQ(80, w[3]);

	/* A plain unpark still returns 0 to its waiter, the word untouched. */
	ASSERT_EQ(0, parker_start_mask(&p[0], fd, 0, 3, ~0ULL, 80,
				       GOSYNC_DEADLINE_NONE, 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_EQ(1, lot_unpark(fd, 3, 1));
	ASSERT_TRUE(parker_join(&p[0]));
	EXPECT_EQ(0, p[0].ret);
	EXPECT_EQ(80, w[3]);
}

TEST_F(lot, unpark_wakes_only_that_index)
{
	static const uint32_t idx[] = { 3, 4, 3, 511, 4, 0 };
	struct parker p[ARRAY_SIZE(idx)];
	int fd = self->fd;

	ASSERT_EQ(0, park_in_order(p, ARRAY_SIZE(idx), fd, idx, NULL, NULL, 0));
	EXPECT_LOT(fd, 6, 6, 0, 0);

	/* Words nobody waits on. */
	EXPECT_EQ(0, lot_unpark(fd, 5, ALL));
	EXPECT_EQ(0, lot_unpark(fd, 1, ALL));
	EXPECT_EQ(0, lot_unpark(fd, 510, 1));
	sleep_ms(BLOCKED_MS);
	for (size_t i = 0; i < ARRAY_SIZE(idx); i++) {
		EXPECT_FALSE(atomic_load(&p[i].done)) TH_LOG("parker %zu", i);
	}
	EXPECT_LOT(fd, 6, 6, 3, 0);

	EXPECT_EQ(2, lot_unpark(fd, 3, ALL));
	ASSERT_TRUE(parker_join(&p[0]));
	ASSERT_TRUE(parker_join(&p[2]));
	EXPECT_EQ(0, p[0].ret);
	EXPECT_EQ(0, p[2].ret);
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&p[1].done));
	EXPECT_FALSE(atomic_load(&p[3].done));
	EXPECT_FALSE(atomic_load(&p[4].done));
	EXPECT_FALSE(atomic_load(&p[5].done));
	EXPECT_LOT(fd, 4, 6, 4, 2);

	EXPECT_EQ(1, lot_unpark(fd, 511, ALL));
	ASSERT_TRUE(parker_join(&p[3]));
	EXPECT_EQ(0, p[3].ret);
	EXPECT_LOT(fd, 3, 6, 5, 3);

	EXPECT_EQ(1, lot_unpark(fd, 0, 1));
	ASSERT_TRUE(parker_join(&p[5]));
	EXPECT_EQ(0, p[5].ret);
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&p[1].done));
	EXPECT_FALSE(atomic_load(&p[4].done));
	EXPECT_LOT(fd, 2, 6, 6, 4);

	EXPECT_EQ(2, lot_unpark(fd, 4, ALL));
	ASSERT_TRUE(parker_join(&p[1]));
	ASSERT_TRUE(parker_join(&p[4]));
	EXPECT_EQ(0, p[1].ret);
	EXPECT_EQ(0, p[4].ret);
	EXPECT_LOT(fd, 0, 6, 7, 6);
	EXPECT_EQ(0, lot_unpark(fd, 4, ALL));
	EXPECT_LOT(fd, 0, 6, 8, 6);
}

TEST_F(lot, unpark_count_limits)
{
	static const uint32_t idx[] = { 9, 9, 9, 9, 9, 9 };
	struct parker p[ARRAY_SIZE(idx)];
	struct order o;
	int fd = self->fd;

	order_init(&o);
	ASSERT_EQ(0, park_in_order(p, ARRAY_SIZE(idx), fd, idx, NULL, &o, 0));
	EXPECT_LOT(fd, 6, 6, 0, 0);

	EXPECT_EQ(0, lot_unpark(fd, 9, 0));
	sleep_ms(BLOCKED_MS);
	EXPECT_EQ(0, order_count(&o));
	EXPECT_LOT(fd, 6, 6, 1, 0);

	EXPECT_EQ(1, lot_unpark(fd, 9, 1));
	ASSERT_EQ(0, order_wait(&o, 1));
	EXPECT_LOT(fd, 5, 6, 2, 1);

	EXPECT_EQ(2, lot_unpark(fd, 9, 2));
	ASSERT_EQ(0, order_wait(&o, 3));
	sleep_ms(BLOCKED_MS);
	EXPECT_EQ(3, order_count(&o));
	EXPECT_LOT(fd, 3, 6, 3, 3);

	/* More than are parked: all of them, and the count says how many. */
	EXPECT_EQ(3, lot_unpark(fd, 9, 100));
	ASSERT_EQ(0, order_wait(&o, 6));
	EXPECT_LOT(fd, 0, 6, 4, 6);
	EXPECT_EQ(0, lot_unpark(fd, 9, ALL));
	EXPECT_EQ(0, lot_unpark(fd, 9, ALL - 1));
	EXPECT_LOT(fd, 0, 6, 6, 6);
	for (size_t i = 0; i < ARRAY_SIZE(idx); i++) {
		ASSERT_TRUE(parker_join(&p[i]));
		EXPECT_EQ(0, p[i].ret);
	}
	/*
	 * FIFO throughout: each unpark took the oldest waiters (those woken by
	 * one unpark may return in any order).
	 */
	EXPECT_EQ(0, o.ids[0]);
	EXPECT_EQ(1 + 2, o.ids[1] + o.ids[2]);
	EXPECT_TRUE(o.ids[1] == 1 || o.ids[1] == 2);
	EXPECT_EQ(3 + 4 + 5, o.ids[3] + o.ids[4] + o.ids[5]);
	EXPECT_EQ(3 * 4 * 5, o.ids[3] * o.ids[4] * o.ids[5]);
}

TEST_F(lot, unpark_all_wakes_every_waiter_of_the_word)
{
	enum { N = 12 };
	struct parker p[N];
	uint32_t idx[N];
	int fd = self->fd;

	for (int i = 0; i < N; i++)
		idx[i] = i % 3 == 2 ? 100 : 42;	/* 8 on 42, 4 on 100 */
	ASSERT_EQ(0, park_in_order(p, N, fd, idx, NULL, NULL, 0));
	EXPECT_EQ(8, lot_unpark(fd, 42, ALL));
	for (int i = 0; i < N; i++) {
		if (idx[i] == 42) {
			ASSERT_TRUE(parker_join(&p[i]));
			EXPECT_EQ(0, p[i].ret);
		}
	}
	EXPECT_LOT(fd, 4, N, 1, 8);
	EXPECT_EQ(4, lot_unpark(fd, 100, ALL));
	for (int i = 0; i < N; i++) {
		if (idx[i] == 100) {
			ASSERT_TRUE(parker_join(&p[i]));
			EXPECT_EQ(0, p[i].ret);
		}
	}
	EXPECT_LOT(fd, 0, N, 2, N);
}

/* More waiters than the kernel wakes in one batch after dropping its lock. */
TEST_F(lot, unpark_beyond_the_wake_batch)
{
	enum { N = 60, FIRST = 25 };
	struct parker p[N];
	uint32_t idx[N];
	struct order o;
	bool seen[N] = { false };
	int fd = self->fd;

	order_init(&o);
	for (int i = 0; i < N; i++)
		idx[i] = 77;
	ASSERT_EQ(0, park_in_order(p, N, fd, idx, NULL, &o, 0));
	EXPECT_LOT(fd, N, N, 0, 0);
	/* The oldest FIRST, whatever order they return in. */
	EXPECT_EQ(FIRST, lot_unpark(fd, 77, FIRST));
	ASSERT_EQ(0, order_wait(&o, FIRST));
	for (int i = 0; i < FIRST; i++) {
		ASSERT_LE(0, o.ids[i]);
		ASSERT_GT(N, o.ids[i]);
		seen[o.ids[i]] = true;
	}
	for (int i = 0; i < FIRST; i++) {
		EXPECT_TRUE(seen[i]) TH_LOG("parker %d not woken", i);
	}
	EXPECT_LOT(fd, N - FIRST, N, 1, FIRST);
	EXPECT_EQ(N - FIRST, lot_unpark(fd, 77, ALL));
	for (int i = 0; i < N; i++) {
		ASSERT_TRUE(parker_join(&p[i])) TH_LOG("parker %d", i);
		EXPECT_EQ(0, p[i].ret);
	}
	EXPECT_EQ(N, order_count(&o));
	EXPECT_LOT(fd, 0, N, 2, N);
}

/* Wake one at a time; the order in which they return is the queue order. */
static void wake_one_by_one(struct __test_metadata *_metadata, int fd,
			    uint32_t index, struct order *o, int n,
			    const int *want)
{
	for (int i = 0; i < n; i++) {
		int base = order_count(o);

		EXPECT_EQ(1, lot_unpark(fd, index, 1));
		ASSERT_EQ(0, order_wait(o, base + 1));
		/* Nobody else was woken. */
		usleep(2000);
		ASSERT_EQ(base + 1, order_count(o));
		EXPECT_EQ(want[i], o->ids[base]) TH_LOG("wake-up %d", i);
	}
}

TEST_F(lot, unpark_wakes_in_fifo_order)
{
	enum { N = 10 };
	static const int want_even[] = { 0, 2, 4, 6, 8 };
	static const int want_odd[] = { 1, 3, 5, 7, 9 };
	struct parker p[N];
	uint32_t idx[N];
	struct order o;
	int fd = self->fd;

	order_init(&o);
	for (int i = 0; i < N; i++)
		idx[i] = i % 2 ? 21 : 20;
	ASSERT_EQ(0, park_in_order(p, N, fd, idx, NULL, &o, 0));
	EXPECT_LOT(fd, N, N, 0, 0);
	wake_one_by_one(_metadata, fd, 21, &o, 5, want_odd);
	EXPECT_LOT(fd, 5, N, 5, 5);
	wake_one_by_one(_metadata, fd, 20, &o, 5, want_even);
	EXPECT_LOT(fd, 0, N, 10, 10);
	for (int i = 0; i < N; i++) {
		ASSERT_TRUE(parker_join(&p[i]));
		EXPECT_EQ(0, p[i].ret);
	}
}

TEST_F(lot, park_front_goes_first)
{
	/* Queued A B C, then D at the front, then E at the front: E D A B C. */
	static const uint32_t idx[] = { 30, 30, 30, 30, 30, 31, 30 };
	static const uint32_t flags[] = {
		0, 0, 0, FRONT, FRONT | REALTIME, FRONT, 0,
	};
	static const int want[] = { 4, 3, 0, 1, 2, 6 };
	struct parker p[ARRAY_SIZE(idx)];
	struct order o;
	int fd = self->fd;

	order_init(&o);
	for (size_t i = 0; i < ARRAY_SIZE(idx); i++) {
		uint64_t deadline = flags[i] & REALTIME ?
			real_ns() + LONG_MS * NS_PER_MS : mono_in_ms(LONG_MS);

		ASSERT_EQ(0, parker_start(&p[i], fd, i, idx[i], deadline,
					  flags[i], &o));
		ASSERT_EQ(0, wait_parked(fd, i + 1));
	}
	EXPECT_LOT(fd, 7, 7, 0, 0);
	wake_one_by_one(_metadata, fd, 30, &o, ARRAY_SIZE(want), want);
	EXPECT_LOT(fd, 1, 7, 6, 6);
	/* The FRONT waiter of another word was left alone. */
	EXPECT_FALSE(atomic_load(&p[5].done));
	EXPECT_EQ(1, lot_unpark(fd, 31, ALL));
	for (size_t i = 0; i < ARRAY_SIZE(idx); i++) {
		ASSERT_TRUE(parker_join(&p[i]));
		EXPECT_EQ(0, p[i].ret);
	}
	EXPECT_LOT(fd, 0, 7, 7, 7);
}

/* A waiter leaving on its deadline keeps the others' order. */
TEST_F(lot, timed_out_waiter_leaves_queue_intact)
{
	static const int want[] = { 0, 2 };
	struct parker p[3];
	struct order o;
	int fd = self->fd;

	order_init(&o);
	ASSERT_EQ(0, parker_start(&p[0], fd, 0, 2, mono_in_ms(LONG_MS), 0, &o));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, parker_start(&p[1], fd, 1, 2, mono_in_ms(PARK_WINDOW_MS), 0, &o));
	ASSERT_EQ(0, wait_parked(fd, 2));
	ASSERT_EQ(0, parker_start(&p[2], fd, 2, 2, mono_in_ms(LONG_MS), 0, &o));
	ASSERT_EQ(0, wait_parked(fd, 3));
	ASSERT_TRUE(parker_join(&p[1]));
	EXPECT_EQ(-ETIMEDOUT, p[1].ret);
	EXPECT_LOT(fd, 2, 3, 0, 0);
	wake_one_by_one(_metadata, fd, 2, &o, 2, want);
	ASSERT_TRUE(parker_join(&p[0]));
	ASSERT_TRUE(parker_join(&p[2]));
	EXPECT_LOT(fd, 0, 3, 2, 2);
}

/* ------------------------------------------------------------------ */
/* 5. No wake-up is lost                                                */

/* A parker that picks its own deadline, @lead_ns after it starts. */
struct racer {
	int fd;
	uint64_t lead_ns;
	_Atomic uint64_t deadline;
	atomic_bool done;
	int ret;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	uint64_t deadline = mono_ns() + r->lead_ns;

	atomic_store(&r->deadline, deadline);
	r->ret = lot_park(r->fd, 0, ~0ULL, 0, deadline, 0);
	atomic_store(&r->done, true);
	return NULL;
}

/*
 * Unpark a parked thread at about its deadline, many times: it returns 0
 * exactly when the unpark counted it, -ETIMEDOUT otherwise.
 */
TEST_F(lot, unpark_racing_deadline_is_never_lost)
{
	enum { ROUNDS = 150 };
	uint64_t seed = 0x1234567, wins = 0;
	int fd = self->fd, mismatch = 0, timeouts = 0;
	struct gosync_lot_status st;
	struct racer rc;
	pthread_t thr;

	for (int i = 0; i < ROUNDS; i++) {
		/* -200 .. +600 us around the deadline (timers fire late) */
		int64_t jitter = (int64_t)(rnd64(&seed) % 800000) - 200000;
		uint64_t deadline, limit = mono_in_ms(WAIT_LIMIT_MS);
		int r;

		memset(&rc, 0, sizeof(rc));
		rc.fd = fd;
		rc.lead_ns = 3 * NS_PER_MS;
		ASSERT_EQ(0, start_thread(&thr, racer_main, &rc));
		while (!(deadline = atomic_load(&rc.deadline))) {
			ASSERT_GT(limit, mono_ns());
		}
		/* Parked (or already timed out) before the race begins. */
		do {
			ASSERT_EQ(0, lot_status(fd, &st));
			ASSERT_GT(limit, mono_ns());
		} while (st.parked == 0 && !atomic_load(&rc.done));
		while (mono_ns() < deadline + jitter)
			;
		r = lot_unpark(fd, 0, 1);
		ASSERT_EQ(0, join_ms(thr, WAIT_LIMIT_MS));
		if (r < 0 || r > 1 || (rc.ret != 0 && rc.ret != -ETIMEDOUT) ||
		    (r == 1) != (rc.ret == 0)) {
			if (mismatch++ < 5) {
				TH_LOG("round %d: unpark %d, park %d", i, r,
				       rc.ret);
			}
		}
		if (r == 1)
			wins++;
		if (rc.ret == -ETIMEDOUT)
			timeouts++;
	}
	EXPECT_EQ(0, mismatch);
	TH_LOG("%ju woken, %d timed out", (uintmax_t)wins, timeouts);
	EXPECT_LOT(fd, 0, ROUNDS, ROUNDS, wins);
}

/*
 * Several threads park with one shared deadline while this thread unparks
 * them one at a time across that deadline, round after round: each round,
 * the unparks counted exactly the parks that returned 0.
 */
#define CROWD		8
#define CROWD_ROUNDS	150

struct crowd {
	int fd;
	atomic_int round;	/* workers park once per new round */
	atomic_int finished;	/* workers done with the current round */
	_Atomic uint64_t deadline;
	atomic_int woken;	/* parks that returned 0 this round */
	atomic_int bad;
	atomic_int last_bad;
};

static void *crowd_main(void *arg)
{
	struct crowd *c = arg;
	int seen = 0;
	uint64_t limit = mono_in_ms(3 * WAIT_LIMIT_MS);

	for (;;) {
		int round = atomic_load(&c->round);
		int ret;

		if (round < 0 || mono_ns() > limit)
			break;
		if (round == seen) {
			usleep(50);
			continue;
		}
		seen = round;
		ret = lot_park(c->fd, 0, ~0ULL, 0, atomic_load(&c->deadline), 0);
		if (ret == 0) {
			atomic_fetch_add(&c->woken, 1);
		} else if (ret != -ETIMEDOUT) {
			atomic_fetch_add(&c->bad, 1);
			atomic_store(&c->last_bad, ret);
		}
		atomic_fetch_add(&c->finished, 1);
	}
	return NULL;
}

TEST_F(lot, unparks_across_a_shared_deadline_are_never_lost)
{
	pthread_t thr[CROWD];
	struct crowd c;
	uint64_t seed = 99, total_woken = 0, unparks = 0;
	int fd = self->fd, mismatch = 0;

	memset(&c, 0, sizeof(c));
	c.fd = fd;
	for (int i = 0; i < CROWD; i++)
		ASSERT_EQ(0, start_thread(&thr[i], crowd_main, &c));
	for (int round = 1; round <= CROWD_ROUNDS; round++) {
		uint64_t deadline = mono_ns() + 3 * NS_PER_MS;
		/* Start unparking 0 .. 200 us before the deadline. */
		uint64_t start = deadline - rnd64(&seed) % (200 * 1000);
		uint64_t limit = mono_in_ms(WAIT_LIMIT_MS);
		int sum = 0, r;

		atomic_store(&c.deadline, deadline);
		atomic_store(&c.finished, 0);
		atomic_store(&c.woken, 0);
		atomic_store(&c.round, round);
		while (mono_ns() < start)
			;
		/* Until every worker has returned, then once more. */
		do {
			r = lot_unpark(fd, 0, 1);
			unparks++;
			if (r < 0 || r > 1) {
				mismatch++;
				break;
			}
			sum += r;
			if (mono_ns() > limit) {
				mismatch++;
				break;
			}
		} while (atomic_load(&c.finished) < CROWD);
		r = lot_unpark(fd, 0, ALL);
		unparks++;
		sum += r;
		if (r != 0 || sum != atomic_load(&c.woken)) {
			if (mismatch++ < 5) {
				TH_LOG("round %d: unparks counted %d, %d parks "
				       "returned 0 (last unpark %d)", round, sum,
				       atomic_load(&c.woken), r);
			}
		}
		total_woken += sum;
	}
	atomic_store(&c.round, -1);
	for (int i = 0; i < CROWD; i++)
		ASSERT_EQ(0, join_ms(thr[i], WAIT_LIMIT_MS));
	EXPECT_EQ(0, mismatch);
	EXPECT_EQ(0, atomic_load(&c.bad)) TH_LOG("park returned %d",
						 atomic_load(&c.last_bad));
	TH_LOG("%ju of %d parks woken", (uintmax_t)total_woken,
	       CROWD * CROWD_ROUNDS);
	EXPECT_LOT(fd, 0, CROWD * CROWD_ROUNDS, unparks, total_woken);
}

/* The same with a signal (no SA_RESTART) instead of the deadline. */
TEST_F(lot, unpark_racing_signal_is_never_lost)
{
	enum { ROUNDS = 150 };
	uint64_t seed = 0xabcdef, wins = 0;
	int fd = self->fd, mismatch = 0, eintr = 0;
	struct parker p;

	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	for (int i = 0; i < ROUNDS; i++) {
		unsigned int spin = rnd64(&seed) % 20000;
		bool signal_first = rnd64(&seed) & 1;
		int r;

		ASSERT_EQ(0, parker_start(&p, fd, i, 0, mono_in_ms(LONG_MS), 0,
					  NULL));
		ASSERT_EQ(0, wait_parked(fd, 1));
		if (signal_first) {
			ASSERT_EQ(0, pthread_kill(p.thread, SIGUSR1));
			for (volatile unsigned int s = 0; s < spin; s++)
				;
			r = lot_unpark(fd, 0, 1);
		} else {
			r = lot_unpark(fd, 0, 1);
			for (volatile unsigned int s = 0; s < spin; s++)
				;
			/* The parker may have returned (and exited) already. */
			pthread_kill(p.thread, SIGUSR1);
		}
		ASSERT_TRUE(parker_join(&p));
		if (r == 1) {
			wins++;
		} else if (r == 0) {
			/* The parker left on the signal: nothing to wake. */
			eintr++;
		}
		if (r < 0 || r > 1 || (p.ret != 0 && p.ret != -EINTR) ||
		    (r == 1) != (p.ret == 0)) {
			if (mismatch++ < 5) {
				TH_LOG("round %d: unpark %d, park %d", i, r,
				       p.ret);
			}
		}
	}
	EXPECT_EQ(0, mismatch);
	TH_LOG("%ju woken, %d interrupted", (uintmax_t)wins, eintr);
	EXPECT_LOT(fd, 0, ROUNDS, ROUNDS, wins);
}

struct stress {
	int fd;
	atomic_bool stop;
	atomic_bool stop_parkers;
	uint64_t seed;
	/* parkers */
	atomic_ullong parks, ok, timedout, eintr, again, bad;
	/* unparkers */
	atomic_ullong unparks, woken, bad_unpark;
	atomic_int last_bad;
};

#define STRESS_PARKERS	6
#define STRESS_UNPARKERS 2
#define STRESS_WORDS	4

struct stress_thread {
	struct stress *s;
	pthread_t thread;
	uint64_t seed;
	int id;
};

static void *stress_parker(void *arg)
{
	struct stress_thread *t = arg;
	struct stress *s = t->s;

	while (!atomic_load(&s->stop_parkers)) {
		uint64_t r = rnd64(&t->seed);
		uint32_t flags = r & 1 ? FRONT : 0;
		/* Mostly short: many deadlines pass while unparks go on. */
		uint64_t span = (r >> 2) % 4 ? 300 * 1000 : 3 * NS_PER_MS;
		uint64_t deadline = mono_ns() + (r >> 8) % span;
		int ret;

		ret = lot_park(s->fd, (r >> 1) % STRESS_WORDS, ~0ULL, 0,
			       deadline, flags);
		atomic_fetch_add(&s->parks, 1);
		if (ret == 0) {
			atomic_fetch_add(&s->ok, 1);
		} else if (ret == -ETIMEDOUT) {
			atomic_fetch_add(&s->timedout, 1);
		} else if (ret == -EINTR) {
			atomic_fetch_add(&s->eintr, 1);
		} else {
			atomic_fetch_add(&s->bad, 1);
			atomic_store(&s->last_bad, ret);
		}
	}
	return NULL;
}

static void *stress_unparker(void *arg)
{
	struct stress_thread *t = arg;
	struct stress *s = t->s;

	while (!atomic_load(&s->stop)) {
		uint64_t r = rnd64(&t->seed);
		uint32_t count = (r >> 4) % 8 == 0 ? ALL : (r >> 4) % 4;
		int ret = lot_unpark(s->fd, r % STRESS_WORDS, count);

		atomic_fetch_add(&s->unparks, 1);
		if (ret < 0 || ret > STRESS_PARKERS ||
		    (count != ALL && (uint32_t)ret > count)) {
			atomic_fetch_add(&s->bad_unpark, 1);
			atomic_store(&s->last_bad, ret);
		} else {
			atomic_fetch_add(&s->woken, ret);
		}
		if ((r & 0xf00) == 0)
			sched_yield();
	}
	return NULL;
}

/*
 * Parkers with short deadlines, unparkers with various counts and signals
 * all at once: every wake-up an unpark counted is a park that returned 0,
 * and in the end nobody is left parked.
 */
TEST_F(lot, stress_conserves_wakeups)
{
	struct stress_thread par[STRESS_PARKERS], unp[STRESS_UNPARKERS];
	struct stress s;
	uint64_t t0, seed = 42, signals = 0;
	int fd = self->fd;

	memset(&s, 0, sizeof(s));
	s.fd = fd;
	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	for (int i = 0; i < STRESS_PARKERS; i++) {
		par[i] = (struct stress_thread){ .s = &s, .id = i,
						 .seed = 1000 + i * 7919 };
		ASSERT_EQ(0, start_thread(&par[i].thread, stress_parker, &par[i]));
	}
	for (int i = 0; i < STRESS_UNPARKERS; i++) {
		unp[i] = (struct stress_thread){ .s = &s, .id = i,
						 .seed = 5000 + i * 104729 };
		ASSERT_EQ(0, start_thread(&unp[i].thread, stress_unparker, &unp[i]));
	}
	/*
	 * This thread signals random parkers meanwhile: for 2 s, and until
	 * parks were both woken and timed out, however slow the machine.
	 */
	t0 = mono_ns();
	while (ms_since(t0) < 2000 ||
	       ((!atomic_load(&s.ok) || !atomic_load(&s.timedout)) &&
		ms_since(t0) < WAIT_LIMIT_MS)) {
		int victim = rnd64(&seed) % STRESS_PARKERS;

		pthread_kill(par[victim].thread, SIGUSR1);
		signals++;
		usleep(300 + rnd64(&seed) % 700);
	}
	/* Parkers first stop parking; unparkers keep going until they have. */
	atomic_store(&s.stop_parkers, true);
	for (int i = 0; i < STRESS_PARKERS; i++) {
		ASSERT_EQ(0, join_ms(par[i].thread, WAIT_LIMIT_MS));
	}
	atomic_store(&s.stop, true);
	for (int i = 0; i < STRESS_UNPARKERS; i++) {
		ASSERT_EQ(0, join_ms(unp[i].thread, WAIT_LIMIT_MS));
	}

	TH_LOG("%llu parks: %llu woken, %llu timed out, %llu interrupted; "
	       "%llu unparks, %ju signals",
	       (unsigned long long)s.parks, (unsigned long long)s.ok,
	       (unsigned long long)s.timedout, (unsigned long long)s.eintr,
	       (unsigned long long)s.unparks, (uintmax_t)signals);
	EXPECT_EQ(0, s.bad) TH_LOG("park returned %d", s.last_bad);
	EXPECT_EQ(0, s.bad_unpark) TH_LOG("unpark returned %d", s.last_bad);
	/* Conservation: what unparks counted is what parks reported. */
	EXPECT_EQ(s.woken, s.ok);
	EXPECT_LT(0, s.ok);
	EXPECT_LT(0, s.timedout);
	EXPECT_EQ(s.parks, s.ok + s.timedout + s.eintr + s.bad);
	EXPECT_LOT(fd, 0, s.parks, s.unparks, s.woken);
}

/*
 * Futex-style mutex on word 0 (0 free, 1 locked, 2 locked and contended):
 * a lost wake-up leaves a thread parked until its deadline, which counts as
 * a failure; the shared counter proves mutual exclusion.
 */
struct mtx {
	volatile uint64_t *w;
	int fd;
	uint64_t counter;
	atomic_int errors;
	atomic_int last_error;
};

static void mtx_lock(struct mtx *m)
{
	_Atomic uint64_t *word = (_Atomic uint64_t *)&m->w[0];
	uint64_t c = 0;

	if (atomic_compare_exchange_strong(word, &c, 1))
		return;
	if (c != 2)
		c = atomic_exchange(word, 2);
	while (c != 0) {
		int ret = lot_park(m->fd, 0, ~0ULL, 2, mono_in_ms(WAIT_LIMIT_MS),
				   0);

		if (ret && ret != -EAGAIN) {
			atomic_fetch_add(&m->errors, 1);
			atomic_store(&m->last_error, ret);
		}
		c = atomic_exchange(word, 2);
	}
}

static void mtx_unlock(struct mtx *m)
{
	_Atomic uint64_t *word = (_Atomic uint64_t *)&m->w[0];

	if (atomic_fetch_sub(word, 1) != 1) {
		atomic_store(word, 0);
		lot_unpark(m->fd, 0, 1);
	}
}

#define MTX_THREADS	4
#define MTX_ITERS	1500

static void *mtx_main(void *arg)
{
	struct mtx *m = arg;

	for (int i = 0; i < MTX_ITERS; i++) {
		mtx_lock(m);
		m->counter++;
		/* Hold the lock a while, sometimes off the CPU: others contend. */
		for (volatile int s = 0; s < 200; s++)
			;
		if (i % 32 == 0)
			usleep(20);
		else if (i % 8 == 0)
			sched_yield();
		mtx_unlock(m);
	}
	return NULL;
}

TEST_F(lot, futex_mutex_loses_no_wakeup)
{
	pthread_t thr[MTX_THREADS];
	struct gosync_lot_status st;
	struct mtx m;

	memset(&m, 0, sizeof(m));
	m.w = self->w;
	m.fd = self->fd;
	for (int i = 0; i < MTX_THREADS; i++) {
		ASSERT_EQ(0, start_thread(&thr[i], mtx_main, &m));
	}
	for (int i = 0; i < MTX_THREADS; i++) {
		ASSERT_EQ(0, join_ms(thr[i], 3 * WAIT_LIMIT_MS));
	}
	EXPECT_EQ(0, atomic_load(&m.errors))
		TH_LOG("park returned %d", atomic_load(&m.last_error));
	EXPECT_EQ((uint64_t)MTX_THREADS * MTX_ITERS, m.counter);
	EXPECT_EQ(0, self->w[0]);
	ASSERT_EQ(0, lot_status(self->fd, &st));
	EXPECT_EQ(0, st.parked);
	EXPECT_LE(st.woken, st.unparks);
	/* It was contended: the lot was used. */
	EXPECT_LT(0, st.parks);
	EXPECT_LT(0, st.woken);
	TH_LOG("%ju parks, %ju unparks, %ju woken", (uintmax_t)st.parks,
	       (uintmax_t)st.unparks, (uintmax_t)st.woken);
}

/* ------------------------------------------------------------------ */
/* 6. Signals                                                           */

TEST_F(lot, signal_without_sa_restart_is_eintr)
{
	struct parker p;
	int fd = self->fd;

	ASSERT_EQ(0, install_handler(SIGUSR1, false));
	ASSERT_EQ(0, parker_start(&p, fd, 0, 6, GOSYNC_DEADLINE_NONE, 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_LOT(fd, 1, 1, 0, 0);
	ASSERT_EQ(0, pthread_kill(p.thread, SIGUSR1));
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(-EINTR, p.ret);
	EXPECT_EQ(1, atomic_load(&sig_count));
	/* It left the queue: nobody to wake. */
	EXPECT_LOT(fd, 0, 1, 0, 0);
	EXPECT_EQ(0, lot_unpark(fd, 6, ALL));
	EXPECT_LOT(fd, 0, 1, 1, 0);

	/* The same with a deadline and at the front of a queue. */
	struct parker q;

	ASSERT_EQ(0, parker_start(&q, fd, 1, 6, mono_in_ms(LONG_MS), 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, parker_start(&p, fd, 0, 6, mono_in_ms(LONG_MS), FRONT,
				  NULL));
	ASSERT_EQ(0, wait_parked(fd, 2));
	ASSERT_EQ(0, pthread_kill(p.thread, SIGUSR1));
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(-EINTR, p.ret);
	EXPECT_LOT(fd, 1, 3, 1, 0);
	EXPECT_FALSE(atomic_load(&q.done));
	EXPECT_EQ(1, lot_unpark(fd, 6, 1));
	ASSERT_TRUE(parker_join(&q));
	EXPECT_EQ(0, q.ret);
	EXPECT_LOT(fd, 0, 3, 2, 1);
}

TEST_F(lot, signal_with_sa_restart_keeps_parking)
{
	struct parker p;
	int fd = self->fd;

	ASSERT_EQ(0, install_handler(SIGUSR1, true));
	ASSERT_EQ(0, parker_start(&p, fd, 0, 6, mono_in_ms(LONG_MS), 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, pthread_kill(p.thread, SIGUSR1));
	ASSERT_EQ(0, wait_signals(1));
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&p.done));
	ASSERT_EQ(0, wait_parked(fd, 1));	/* parked again */
	/* The restart is a new park ioctl: the word was compared again. */
	EXPECT_LOT(fd, 1, 2, 0, 0);
	EXPECT_EQ(1, lot_unpark(fd, 6, ALL));
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(0, p.ret);
	EXPECT_EQ(1, atomic_load(&sig_count));
	EXPECT_LOT(fd, 0, 2, 1, 1);
}

static volatile uint64_t *restart_word;

static void change_word_handler(int sig)
{
	(void)sig;
	*restart_word = 1;
	atomic_fetch_add(&sig_count, 1);
}

TEST_F(lot, sa_restart_compares_the_word_again)
{
	struct sigaction sa;
	struct parker p;
	int fd = self->fd;

	restart_word = &self->w[6];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = change_word_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	atomic_store(&sig_count, 0);
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));

	ASSERT_EQ(0, parker_start(&p, fd, 0, 6, mono_in_ms(LONG_MS), 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	ASSERT_EQ(0, pthread_kill(p.thread, SIGUSR1));
	/* The handler changed the word: the restarted park sees it. */
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(-EAGAIN, p.ret);
	EXPECT_EQ(1, atomic_load(&sig_count));
	EXPECT_LOT(fd, 0, 2, 0, 0);
}

/* ------------------------------------------------------------------ */
/* 7. Closing, dying, other processes                                   */

TEST(close_during_park_keeps_parker)
{
	struct parker p;
	int dev, x, y;
	uint64_t deadline;

	dev = dev_open();
	ASSERT_LE(0, dev);
	x = lot_create(dev, GOSYNC_LOT_MUTEX, 1);
	ASSERT_LE(0, x);
	y = dup(x);
	ASSERT_LE(0, y);

	ASSERT_EQ(0, parker_start(&p, x, 0, 0, mono_in_ms(LONG_MS), 0, NULL));
	ASSERT_EQ(0, wait_parked(y, 1));
	ASSERT_EQ(0, close(x));		/* from another thread than the parker's */
	sleep_ms(BLOCKED_MS);
	EXPECT_FALSE(atomic_load(&p.done));
	EXPECT_LOT(y, 1, 1, 0, 0);
	EXPECT_EQ(1, lot_unpark(y, 0, ALL));
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(0, p.ret);
	EXPECT_LOT(y, 0, 1, 1, 1);

	/* The last fd closed while parked: its deadline still ends the park. */
	deadline = mono_in_ms(PARK_WINDOW_MS);
	ASSERT_EQ(0, parker_start(&p, y, 0, 0, deadline, 0, NULL));
	ASSERT_EQ(0, wait_parked(y, 1));
	ASSERT_EQ(0, close(y));
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(-ETIMEDOUT, p.ret);
	EXPECT_LE(deadline, p.end_mono);
	EXPECT_GT(deadline + LATE_MS * NS_PER_MS, p.end_mono);
	close(dev);
}

TEST(sigkill_of_parked_processes_leaves_queue_clean)
{
	struct parker t;
	pid_t pid[3];
	int dev, fd, status;

	dev = dev_open();
	ASSERT_LE(0, dev);
	fd = lot_create(dev, GOSYNC_LOT_WAITGROUP, 0);
	ASSERT_LE(0, fd);

	/* Queue: child 0, a thread of ours, child 1; child 2 at the front. */
	for (int i = 0; i < 3; i++) {
		if (i == 1) {
			ASSERT_EQ(0, parker_start(&t, fd, 0, 0,
						  mono_in_ms(LONG_MS), 0, NULL));
			ASSERT_EQ(0, wait_parked(fd, 2));
		}
		pid[i] = fork_child();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0) {
			lot_park(fd, 0, ~0ULL, 0, mono_in_ms(LONG_MS),
				 i == 2 ? FRONT : 0);
			_exit(3);	/* must not get here */
		}
		ASSERT_EQ(0, wait_parked(fd, i < 1 ? 1 : i + 2));
	}
	EXPECT_LOT(fd, 4, 4, 0, 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, kill(pid[i], SIGKILL));
		ASSERT_EQ(0, wait_child(pid[i], &status, WAIT_LIMIT_MS));
		EXPECT_TRUE(WIFSIGNALED(status));
		if (WIFSIGNALED(status)) {
			EXPECT_EQ(SIGKILL, WTERMSIG(status));
		}
		EXPECT_LOT(fd, 3 - i, 4, 0, 0);
	}
	EXPECT_FALSE(atomic_load(&t.done));
	/* Only our thread is left, and it is woken normally. */
	EXPECT_EQ(1, lot_unpark(fd, 0, ALL));
	ASSERT_TRUE(parker_join(&t));
	EXPECT_EQ(0, t.ret);
	EXPECT_LOT(fd, 0, 4, 1, 1);
	close(fd);
	close(dev);
}

static int scm_child(int sock, struct report *rep)
{
	struct gosync_lot_status st;
	volatile uint64_t *w;
	int fd, ret;
	char ack = 'k';

	fd = gs_fd_recv(sock);
	CHILD_CHECK(rep, fd >= 0, "gs_fd_recv: %d", fd);
	CHILD_CHECK(rep, fcntl(fd, F_GETFD) & FD_CLOEXEC, "no FD_CLOEXEC");
	ret = lot_status(fd, &st);
	CHILD_CHECK(rep, ret == 0, "status: %d", ret);
	CHILD_CHECK(rep, st.kind == GOSYNC_LOT_BARRIER && st.param == 5,
		    "kind %u param %ju", st.kind, (uintmax_t)st.param);
	w = lot_map(fd);
	CHILD_CHECK(rep, w, "mmap: %s", strerror(errno));
	CHILD_CHECK(rep, w[9] == 77, "word 9 = %ju", (uintmax_t)w[9]);

	/* Park here; the parent changes the word and unparks. */
	ret = lot_park(fd, 9, ~0ULL, 77, mono_in_ms(WAIT_LIMIT_MS), 0);
	CHILD_CHECK(rep, ret == 0, "park: %d", ret);
	CHILD_CHECK(rep, w[9] == 78, "word 9 = %ju after", (uintmax_t)w[9]);

	/* The parent parks on word 10; wake it from here. */
	uint64_t end = mono_in_ms(WAIT_LIMIT_MS);

	do {
		ret = lot_status(fd, &st);
		CHILD_CHECK(rep, ret == 0, "status: %d", ret);
		if (st.parked == 1)
			break;
		usleep(200);
	} while (mono_ns() < end);
	CHILD_CHECK(rep, st.parked == 1, "parent not parked");
	w[10] = 1;
	ret = lot_unpark(fd, 10, ALL);
	CHILD_CHECK(rep, ret == 1, "unpark: %d", ret);
	CHILD_CHECK(rep, write(sock, &ack, 1) == 1, "ack");
	lot_unmap(w);
	close(fd);
	return 0;
}

TEST(scm_rights_park_in_one_process_unpark_in_other)
{
	volatile uint64_t *w;
	struct report *rep;
	int dev, fd, sv[2];
	char ack = 0;
	pid_t pid;

	rep = report_new();
	ASSERT_NE(NULL, rep);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(sv[0]);
		_exit(scm_child(sv[1], rep));
	}
	close(sv[1]);
	/* Created after the fork: the child can only get it by message. */
	dev = dev_open();
	ASSERT_LE(0, dev);
	fd = lot_create(dev, GOSYNC_LOT_BARRIER, 5);
	ASSERT_LE(0, fd);
	w = lot_map(fd);
	ASSERT_NE(NULL, w);
	w[9] = 77;
	ASSERT_EQ(0, gs_fd_send(sv[0], fd));

	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_LOT(fd, 1, 1, 0, 0);
	w[9] = 78;
	EXPECT_EQ(1, lot_unpark(fd, 9, 1));
	/* Now this process parks and the child unparks it. */
	EXPECT_EQ(0, lot_park(fd, 10, ~0ULL, 0, mono_in_ms(WAIT_LIMIT_MS), 0));
	EXPECT_EQ(1, w[10]);
	EXPECT_EQ(1, read(sv[0], &ack, 1));
	EXPECT_EQ('k', ack);
	EXPECT_CHILD_OK(pid, rep);
	EXPECT_LOT(fd, 0, 2, 2, 2);
	close(sv[0]);
	lot_unmap(w);
	close(fd);
	close(dev);
}

/* ------------------------------------------------------------------ */
/* 8. Garbage in the page                                               */

struct scribble {
	int fd;
	volatile uint64_t *w;
	atomic_bool stop;
	atomic_bool stop_users;
	atomic_ullong parks_ok, unpark_sum, calls, parks, unparks, bad;
	atomic_int last_bad, last_op;
	atomic_ullong slow;
};

struct scribble_thread {
	struct scribble *x;
	pthread_t thread;
	uint64_t seed;
};

static void *scribbler_main(void *arg)
{
	struct scribble_thread *t = arg;
	struct scribble *x = t->x;

	while (!atomic_load(&x->stop)) {
		uint64_t r = rnd64(&t->seed);

		for (int i = 0; i < WORDS; i++) {
			switch ((r >> (i % 60)) & 3) {
			case 0:
				x->w[i] = rnd64(&t->seed);
				break;
			case 1:
				x->w[i] = 0;
				break;
			case 2:
				x->w[i] = ~0ULL;
				break;
			default:
				x->w[i] = 1ULL << (r % 64);
			}
		}
		/* Another mapping comes and goes meanwhile. */
		if ((r & 15) == 0) {
			volatile uint64_t *m = lot_map(x->fd);

			if (m) {
				m[r % WORDS] = r;
				lot_unmap(m);
			}
		}
	}
	return NULL;
}

static void scribble_bad(struct scribble *x, int op, int ret)
{
	atomic_fetch_add(&x->bad, 1);
	atomic_store(&x->last_bad, ret);
	atomic_store(&x->last_op, op);
}

static void *scribble_user_main(void *arg)
{
	static const uint64_t masks[] = {
		0, 1, 0xff, 1ULL << 63, ~0ULL, 0xffffffff00000000ULL,
	};
	struct scribble_thread *t = arg;
	struct scribble *x = t->x;

	while (!atomic_load(&x->stop_users)) {
		uint64_t r = rnd64(&t->seed);
		uint32_t index = (r >> 8) % WORDS;
		int op = r % 8, ret;
		uint64_t t0 = thread_cpu_ns();	/* spinning, not waiting */

		if (op < 4) {
			uint64_t mask = op == 3 ? rnd64(&t->seed) :
					masks[(r >> 20) % ARRAY_SIZE(masks)];
			uint64_t expected = rnd64(&t->seed) & mask;
			uint32_t flags = (r >> 30) & (FRONT | REALTIME);
			uint64_t rel = (r >> 33) % (2 * NS_PER_MS);
			uint64_t deadline = (flags & REALTIME ? real_ns() :
					     mono_ns()) + rel;

			ret = lot_park(x->fd, index, mask, expected, deadline,
				       flags);
			atomic_fetch_add(&x->parks, 1);
			if (ret == 0)
				atomic_fetch_add(&x->parks_ok, 1);
			else if (ret != -EAGAIN && ret != -ETIMEDOUT)
				scribble_bad(x, op, ret);
		} else if (op < 6) {
			/* Few words, so that unparks find someone. */
			uint32_t count = r & 0x40 ? ALL : (r >> 40) % 3;

			ret = lot_unpark(x->fd, (r >> 8) % 4 == 0 ? index :
					 (r >> 12) % 4, count);
			atomic_fetch_add(&x->unparks, 1);
			if (ret < 0 || (count != ALL && (uint32_t)ret > count))
				scribble_bad(x, op, ret);
			else
				atomic_fetch_add(&x->unpark_sum, ret);
		} else if (op == 6) {
			struct gosync_lot_status st;

			ret = lot_status(x->fd, &st);
			if (ret || st.kind != GOSYNC_LOT_PLAIN ||
			    st.parked > 16)
				scribble_bad(x, op, ret ? ret : 1000);
		} else {
			/* Invalid: the expected value outside the mask. */
			ret = lot_park(x->fd, index, 0xf0, 0x0f, 0, 0);
			if (ret != -EINVAL)
				scribble_bad(x, op, ret);
		}
		if (thread_cpu_ns() - t0 > 3 * NS_PER_SEC)
			atomic_fetch_add(&x->slow, 1);
		atomic_fetch_add(&x->calls, 1);
	}
	return NULL;
}

#define SCRIBBLE_USERS	6

TEST_F(lot, scribbled_page_keeps_kernel_sane)
{
	struct scribble_thread users[SCRIBBLE_USERS], scr;
	struct scribble x;
	int fd = self->fd;

	memset(&x, 0, sizeof(x));
	x.fd = fd;
	x.w = self->w;
	scr = (struct scribble_thread){ .x = &x, .seed = 77 };
	ASSERT_EQ(0, start_thread(&scr.thread, scribbler_main, &scr));
	for (int i = 0; i < SCRIBBLE_USERS; i++) {
		users[i] = (struct scribble_thread){ .x = &x,
						     .seed = 31337 + 17 * i };
		ASSERT_EQ(0, start_thread(&users[i].thread, scribble_user_main,
					  &users[i]));
	}
	/* 1.5 s at least, and enough calls however slow the machine. */
	sleep_ms(1500);
	for (uint64_t t0 = mono_ns(); atomic_load(&x.calls) <= 100 &&
	     ms_since(t0) < WAIT_LIMIT_MS;)
		usleep(2000);
	atomic_store(&x.stop_users, true);
	/* Parkers end by their deadlines (2 ms at most) or a last unpark. */
	for (int i = 0; i < SCRIBBLE_USERS; i++) {
		ASSERT_EQ(0, join_ms(users[i].thread, WAIT_LIMIT_MS));
	}
	atomic_store(&x.stop, true);
	ASSERT_EQ(0, join_ms(scr.thread, WAIT_LIMIT_MS));

	TH_LOG("%llu calls: %llu parks (%llu woken), %llu unparks",
	       (unsigned long long)x.calls, (unsigned long long)x.parks,
	       (unsigned long long)x.parks_ok, (unsigned long long)x.unparks);
	EXPECT_EQ(0, x.bad) TH_LOG("op %d returned %d", x.last_op, x.last_bad);
	EXPECT_EQ(0, x.slow);
	EXPECT_LT(100, x.calls);
	EXPECT_EQ(x.unpark_sum, x.parks_ok);
	EXPECT_LOT(fd, 0, x.parks, x.unparks, x.unpark_sum);

	/* The lot still works after all that garbage. */
	memset((void *)self->w, 0, PAGE);
	struct parker p;

	ASSERT_EQ(0, parker_start(&p, fd, 0, 100, mono_in_ms(LONG_MS), 0, NULL));
	ASSERT_EQ(0, wait_parked(fd, 1));
	EXPECT_EQ(1, lot_unpark(fd, 100, 1));
	ASSERT_TRUE(parker_join(&p));
	EXPECT_EQ(0, p.ret);
}

/* ------------------------------------------------------------------ */
/* 9. Many waiters                                                      */

#define MANY	200

TEST_F(lot, many_waiters_on_distinct_words)
{
	struct parker *p;
	int fd = self->fd;
	uint64_t deadline = mono_in_ms(4 * WAIT_LIMIT_MS);

	p = calloc(MANY, sizeof(*p));
	ASSERT_NE(NULL, p);
	/* Parker i waits on word 2i + 1; words 2i stay free. */
	for (int i = 0; i < MANY; i++) {
		ASSERT_EQ(0, parker_start(&p[i], fd, i, 2 * i + 1, deadline, 0,
					  NULL)) TH_LOG("thread %d", i);
	}
	ASSERT_EQ(0, wait_parked(fd, MANY));
	EXPECT_LOT(fd, MANY, MANY, 0, 0);
	EXPECT_TRUE(fdinfo_has(fd, "\nparked:\t200\n"));

	/* Unpark the odd-numbered parkers word by word, from the last. */
	for (int i = MANY - 1; i >= 0; i -= 2) {
		EXPECT_EQ(1, lot_unpark(fd, 2 * i + 1, ALL)) TH_LOG("word %d", 2 * i + 1);
	}
	/* The free words in between have nobody. */
	for (int i = 0; i < MANY; i += 10) {
		EXPECT_EQ(0, lot_unpark(fd, 2 * i, ALL));
	}
	for (int i = 1; i < MANY; i += 2) {
		ASSERT_TRUE(parker_join(&p[i])) TH_LOG("parker %d", i);
		EXPECT_EQ(0, p[i].ret);
	}
	for (int i = 0; i < MANY; i += 2) {
		EXPECT_FALSE(atomic_load(&p[i].done)) TH_LOG("parker %d", i);
	}
	EXPECT_LOT(fd, MANY / 2, MANY, MANY / 2 + MANY / 10, MANY / 2);

	for (int i = 0; i < MANY; i += 2) {
		EXPECT_EQ(1, lot_unpark(fd, 2 * i + 1, 1)) TH_LOG("word %d", 2 * i + 1);
	}
	for (int i = 0; i < MANY; i += 2) {
		ASSERT_TRUE(parker_join(&p[i])) TH_LOG("parker %d", i);
		EXPECT_EQ(0, p[i].ret);
	}
	EXPECT_LOT(fd, 0, MANY, MANY + MANY / 10, MANY);
	free(p);
}

TEST_HARNESS_MAIN
