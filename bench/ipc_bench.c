// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * gosync channels and semaphores against the IPC mechanisms a C programmer
 * would otherwise use, between processes (fork), in one run:
 *
 *   ping-pong   round trip of an 8-byte message between two processes,
 *               each round trip timed alone: p50, p99, mean; once where
 *               the scheduler puts them, once both pinned to CPU 0
 *   throughput  one producer and one consumer process (and 4 x 4), 8-byte
 *               and 1 KiB messages, capacity 1024: messages/s and MB/s;
 *               every message is checked to arrive exactly once (count,
 *               sum and sum of squares, and per-producer FIFO order)
 *   select      a consumer selecting over 2, 8, 64 buffered channels that
 *               one producer process feeds at random: messages/s
 *
 * Markdown tables on stdout; CSV rows (bench.h csv_row()) where
 * GOSYNC_BENCH_CSV says. bench/go/chanbench.go measures Go the same way.
 * Results are comparable only as ratios within one run on one machine.
 *
 * GOSYNC_BENCH_SCALE (default 1) multiplies every iteration count.
 * Exit status 1 if any check fails, any child fails, or a deadline passes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <mqueue.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

#include "bench.h"
#include "ring.h"

#define MAX_KIDS	16
#define CHILD_TIMEOUT	120	/* s: a child still alive after this is hung */
#define TEST_TIMEOUT	150	/* s: one measurement, parent side */

static double scale = 1.0;
static int failures;

static long scaled(long n)
{
	long v = (long)((double)n * scale);

	return v < 1 ? 1 : v;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *shm_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	memset(p, 0, size);
	return p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Children and deadlines                                               */

static pid_t kids[MAX_KIDS];
static int nkids;
static const char *current_test = "";

static void on_alarm(int sig)
{
	static const char msg[] = "ipc_bench: DEADLINE passed, killing children\n";

	(void)sig;
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	if (write(2, current_test, strlen(current_test)) < 0)
		_exit(3);
	_exit(2);
}

/* Where the run is, on stderr: a hang or a slow peer shows at once. */
static void progress(const char *label)
{
	static uint64_t t_prev;
	uint64_t t = now_ns();

	if (t_prev)
		fprintf(stderr, "ipc_bench: (%.1f s)%s%s\n",
			(double)(t - t_prev) / 1e9, label ? " next: " : " done",
			label ? label : "");
	else
		fprintf(stderr, "ipc_bench: first: %s\n", label);
	t_prev = t;
}

static void start_test(const char *name)
{
	current_test = name;
	alarm(TEST_TIMEOUT);
}

/* fork a child that runs @fn(@arg) and exits with its return value. */
static void spawn(int (*fn)(void *arg, int idx), void *arg, int idx)
{
	pid_t pid;

	if (nkids == MAX_KIDS) {
		fprintf(stderr, "too many children\n");
		exit(1);
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL);
		alarm(CHILD_TIMEOUT);
		_exit(fn(arg, idx) ? 1 : 0);
	}
	kids[nkids++] = pid;
}

/* Reap child @i (in spawn order); non-zero if it did not exit 0. */
static int reap_one(int i)
{
	int status;

	while (waitpid(kids[i], &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	kids[i] = -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "%s: child killed by signal %d\n",
			current_test, WTERMSIG(status));
	else
		fprintf(stderr, "%s: child exited %d\n", current_test,
			WEXITSTATUS(status));
	return 1;
}

static int reap_all(void)
{
	int bad = 0;

	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			bad |= reap_one(i);
	nkids = 0;
	return bad;
}

static void fail(const char *fmt, const char *what, double a, double b)
{
	fprintf(stderr, "FAIL %s: ", current_test);
	fprintf(stderr, fmt, what, a, b);
	fputc('\n', stderr);
	failures++;
}

static void wait_start(_Atomic int *start)
{
	while (!atomic_load(start))
		sched_yield();
}

/* ------------------------------------------------------------------ */
/* Ping-pong: dir 0 is parent -> child, dir 1 is child -> parent.       */

struct pp {
	/* gosync */
	gs_chan *ch[2];
	gs_sem *sem[2];
	/* pipe, eventfd, socketpair: the fd to write / read for each dir */
	int wfd[2], rfd[2];
	mqd_t mq[2];
	int semid;
	/* shared memory: the payload for semaphores, the futex words,
	 * the mutex + cond pair */
	struct pp_shared {
		_Atomic uint32_t futex[2];
		uint64_t value[2];
		int full[2];
		pthread_mutex_t mutex;
		pthread_cond_t cond[2];
	} *sh;
	uint32_t futex_seen[2];	/* per process, after fork */
};

struct pp_mech {
	const char *name;
	const char *note;
	bool gosync;
	int (*setup)(struct pp *pp);
	int (*send)(struct pp *pp, int dir, uint64_t v);
	int (*recv)(struct pp *pp, int dir, uint64_t *v);
	void (*teardown)(struct pp *pp);
};

static int gs_unbuf_setup(struct pp *pp)
{
	return gs_chan_make(&pp->ch[0], 8, 0) || gs_chan_make(&pp->ch[1], 8, 0);
}

static int gs_buf_setup(struct pp *pp)
{
	return gs_chan_make(&pp->ch[0], 8, 1) || gs_chan_make(&pp->ch[1], 8, 1);
}

static int gs_chan_pp_send(struct pp *pp, int dir, uint64_t v)
{
	return gs_chan_send(pp->ch[dir], &v);
}

static int gs_chan_pp_recv(struct pp *pp, int dir, uint64_t *v)
{
	return gs_chan_recv(pp->ch[dir], v) != 1;
}

static void gs_chan_teardown(struct pp *pp)
{
	gs_chan_destroy(pp->ch[0]);
	gs_chan_destroy(pp->ch[1]);
}

/* Semaphores of one permit, taken at creation: release signals. */
static int gs_sem_setup(struct pp *pp)
{
	for (int d = 0; d < 2; d++)
		if (gs_sem_create(&pp->sem[d], 1) || gs_sem_acquire(pp->sem[d], 1))
			return 1;
	return 0;
}

static int gs_sem_pp_send(struct pp *pp, int dir, uint64_t v)
{
	pp->sh->value[dir] = v;
	return gs_sem_release(pp->sem[dir], 1);
}

static int gs_sem_pp_recv(struct pp *pp, int dir, uint64_t *v)
{
	if (gs_sem_acquire(pp->sem[dir], 1))
		return 1;
	*v = pp->sh->value[dir];
	return 0;
}

static void gs_sem_teardown(struct pp *pp)
{
	gs_sem_destroy(pp->sem[0]);
	gs_sem_destroy(pp->sem[1]);
}

static int pipe_setup(struct pp *pp)
{
	int p[2][2];

	if (pipe(p[0]) || pipe(p[1]))
		return 1;
	for (int d = 0; d < 2; d++) {
		pp->rfd[d] = p[d][0];
		pp->wfd[d] = p[d][1];
	}
	return 0;
}

static int eventfd_setup(struct pp *pp)
{
	for (int d = 0; d < 2; d++) {
		pp->rfd[d] = pp->wfd[d] = eventfd(0, EFD_CLOEXEC);
		if (pp->rfd[d] < 0)
			return 1;
	}
	return 0;
}

static int socket_setup(struct pp *pp)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 1;
	/* the parent's end is sv[0], the child's sv[1] */
	pp->wfd[0] = sv[0];
	pp->rfd[0] = sv[1];
	pp->wfd[1] = sv[1];
	pp->rfd[1] = sv[0];
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0 and @len bytes; 1 on error; -1 at EOF before the first byte. */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		if (n == 0)
			return got ? 1 : -1;
		got += (size_t)n;
	}
	return 0;
}

static int fd_pp_send(struct pp *pp, int dir, uint64_t v)
{
	return write_full(pp->wfd[dir], &v, sizeof(v));
}

static int fd_pp_recv(struct pp *pp, int dir, uint64_t *v)
{
	return read_full(pp->rfd[dir], v, sizeof(*v)) != 0;
}

static void fd_teardown(struct pp *pp)
{
	for (int d = 0; d < 2; d++) {
		close(pp->wfd[d]);
		if (pp->rfd[d] != pp->wfd[d])
			close(pp->rfd[d]);
	}
}

static void socket_teardown(struct pp *pp)
{
	close(pp->wfd[0]);
	close(pp->wfd[1]);
}

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val)
{
	return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

/* The futex word is the payload (low 32 bits); no spinning before sleep. */
static int futex_setup(struct pp *pp)
{
	pp->futex_seen[0] = pp->futex_seen[1] = 0;
	atomic_store(&pp->sh->futex[0], 0);
	atomic_store(&pp->sh->futex[1], 0);
	return 0;
}

static int futex_pp_send(struct pp *pp, int dir, uint64_t v)
{
	atomic_store(&pp->sh->futex[dir], (uint32_t)v);
	return futex(&pp->sh->futex[dir], FUTEX_WAKE, 1) < 0;
}

static int futex_pp_recv(struct pp *pp, int dir, uint64_t *v)
{
	uint32_t seen = pp->futex_seen[dir], now;

	while ((now = atomic_load(&pp->sh->futex[dir])) == seen)
		if (futex(&pp->sh->futex[dir], FUTEX_WAIT, seen) < 0 &&
		    errno != EAGAIN && errno != EINTR)
			return 1;
	pp->futex_seen[dir] = now;
	*v = now;
	return 0;
}

static int mq_pp_setup(struct pp *pp)
{
	struct mq_attr attr = { .mq_maxmsg = 1, .mq_msgsize = 8 };
	char name[64];

	for (int d = 0; d < 2; d++) {
		snprintf(name, sizeof(name), "/gosync-bench-pp%d-%d", d, getpid());
		pp->mq[d] = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
				    0600, &attr);
		if (pp->mq[d] == (mqd_t)-1)
			return 1;
		mq_unlink(name);
	}
	return 0;
}

static int mq_pp_send(struct pp *pp, int dir, uint64_t v)
{
	while (mq_send(pp->mq[dir], (const char *)&v, sizeof(v), 0))
		if (errno != EINTR)
			return 1;
	return 0;
}

static int mq_pp_recv(struct pp *pp, int dir, uint64_t *v)
{
	ssize_t n;

	while ((n = mq_receive(pp->mq[dir], (char *)v, sizeof(*v), NULL)) < 0)
		if (errno != EINTR)
			return 1;
	return n != sizeof(*v);
}

static void mq_pp_teardown(struct pp *pp)
{
	mq_close(pp->mq[0]);
	mq_close(pp->mq[1]);
}

static int condvar_setup(struct pp *pp)
{
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_condattr_init(&ca);
	pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
	if (pthread_mutex_init(&pp->sh->mutex, &ma) ||
	    pthread_cond_init(&pp->sh->cond[0], &ca) ||
	    pthread_cond_init(&pp->sh->cond[1], &ca))
		return 1;
	pp->sh->full[0] = pp->sh->full[1] = 0;
	return 0;
}

static int condvar_pp_send(struct pp *pp, int dir, uint64_t v)
{
	struct pp_shared *sh = pp->sh;

	pthread_mutex_lock(&sh->mutex);
	sh->value[dir] = v;
	sh->full[dir] = 1;
	pthread_cond_signal(&sh->cond[dir]);
	pthread_mutex_unlock(&sh->mutex);
	return 0;
}

static int condvar_pp_recv(struct pp *pp, int dir, uint64_t *v)
{
	struct pp_shared *sh = pp->sh;

	pthread_mutex_lock(&sh->mutex);
	while (!sh->full[dir])
		pthread_cond_wait(&sh->cond[dir], &sh->mutex);
	*v = sh->value[dir];
	sh->full[dir] = 0;
	pthread_mutex_unlock(&sh->mutex);
	return 0;
}

static void condvar_teardown(struct pp *pp)
{
	pthread_cond_destroy(&pp->sh->cond[0]);
	pthread_cond_destroy(&pp->sh->cond[1]);
	pthread_mutex_destroy(&pp->sh->mutex);
}

static int sysv_setup(struct pp *pp)
{
	pp->semid = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
	return pp->semid < 0;
}

static int sysv_op(int semid, int dir, short delta)
{
	struct sembuf op = { .sem_num = (unsigned short)dir, .sem_op = delta };

	while (semop(semid, &op, 1))
		if (errno != EINTR)
			return 1;
	return 0;
}

static int sysv_pp_send(struct pp *pp, int dir, uint64_t v)
{
	pp->sh->value[dir] = v;
	return sysv_op(pp->semid, dir, 1);
}

static int sysv_pp_recv(struct pp *pp, int dir, uint64_t *v)
{
	if (sysv_op(pp->semid, dir, -1))
		return 1;
	*v = pp->sh->value[dir];
	return 0;
}

static void sysv_teardown(struct pp *pp)
{
	semctl(pp->semid, 0, IPC_RMID);
}

static const struct pp_mech pp_mechs[] = {
	{ "gosync chan unbuffered", "pair of chans", true, gs_unbuf_setup,
	  gs_chan_pp_send, gs_chan_pp_recv, gs_chan_teardown },
	{ "gosync chan cap 1", "pair of chans", true, gs_buf_setup,
	  gs_chan_pp_send, gs_chan_pp_recv, gs_chan_teardown },
	{ "gosync semaphore pair", "payload in shm", true, gs_sem_setup,
	  gs_sem_pp_send, gs_sem_pp_recv, gs_sem_teardown },
	{ "pipe", "pair of pipes", false, pipe_setup, fd_pp_send, fd_pp_recv,
	  fd_teardown },
	{ "eventfd", "pair; value = payload", false, eventfd_setup, fd_pp_send,
	  fd_pp_recv, fd_teardown },
	{ "futex", "shm word; no spin", false, futex_setup, futex_pp_send,
	  futex_pp_recv, NULL },
	{ "POSIX mq", "pair, maxmsg 1", false, mq_pp_setup, mq_pp_send,
	  mq_pp_recv, mq_pp_teardown },
	{ "UNIX stream socketpair", "one pair", false, socket_setup,
	  fd_pp_send, fd_pp_recv, socket_teardown },
	{ "pthread mutex+cond", "pshared", false, condvar_setup,
	  condvar_pp_send, condvar_pp_recv, condvar_teardown },
	{ "SysV semaphore pair", "payload in shm", false, sysv_setup,
	  sysv_pp_send, sysv_pp_recv, sysv_teardown },
};

#define NPP (sizeof(pp_mechs) / sizeof(pp_mechs[0]))

struct pp_run {
	const struct pp_mech *m;
	struct pp pp;
};

/*
 * The parent stops early when a mechanism is slow (a time budget), and
 * says so with this value; parents send only odd values far below it.
 */
#define PP_STOP		0xfffffffeu
#define PP_WARM_NS	1000000000ull	/* warm-up: 2000 round trips or 1 s */
#define PP_BUDGET_NS	5000000000ull	/* measured: 20000 or 5 s */

/* The child: echo each value + 1 until told to stop. */
static int pp_child(void *arg, int idx)
{
	struct pp_run *run = arg;
	uint64_t v;

	(void)idx;
	for (;;) {
		if (run->m->recv(&run->pp, 0, &v))
			return 1;
		if ((uint32_t)v == PP_STOP)
			return 0;
		if (run->m->send(&run->pp, 1, v + 1))
			return 1;
	}
}

struct pp_result {
	double p50, p99, mean, min;
	long n;
	bool ok;
};

/*
 * @one_cpu: both processes pinned to CPU 0. Under QEMU TCG with 2 vCPUs,
 * a wake-up of a process sleeping on another vCPU from a wait queue
 * (pipe, eventfd, socket) can take milliseconds; pinned, every mechanism
 * pays a context switch instead -- the table shows both.
 */
static void ping_pong(bool one_cpu)
{
	const char *bench = one_cpu ? "pingpong-1cpu" : "pingpong";
	cpu_set_t all, cpu0;
	long warm = scaled(2000), iters = scaled(20000);
	struct pp_result res[NPP];
	uint64_t *ns = malloc(sizeof(*ns) * (size_t)iters);
	struct pp_shared *sh = shm_alloc(sizeof(*sh));
	double best_peer = INFINITY;
	char label[96];

	if (!ns)
		die("malloc");
	if (sched_getaffinity(0, sizeof(all), &all))
		die("sched_getaffinity");
	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	if (one_cpu && sched_setaffinity(0, sizeof(cpu0), &cpu0))
		die("sched_setaffinity");
	printf("\n## Ping-pong: round trip of an 8-byte message between two processes%s\n\n",
	       one_cpu ? ", both pinned to CPU 0" : ", on any CPU");
	printf("Each round trip timed alone (clock_gettime), after %ld round trips or 1 s of warm-up;\n"
	       "%ld round trips or 5 s, whichever comes first (n); microseconds.\n\n",
	       warm, iters);
	for (size_t k = 0; k < NPP; k++) {
		struct pp_run run = { .m = &pp_mechs[k] };
		uint64_t v, sum = 0, t_start, t_warm;
		int bad = 0;
		long n;

		snprintf(label, sizeof(label), "%s %s", bench, run.m->name);
		start_test(label);
		progress(label);
		run.pp.sh = sh;
		res[k].ok = false;
		if (run.m->setup(&run.pp)) {
			perror(label);
			failures++;
			continue;
		}
		spawn(pp_child, &run, 0);
		t_start = now_ns();
		t_warm = 0;
		n = 0;
		for (long i = 0; !bad; i++) {
			uint64_t t0 = now_ns(), t1, out = 2 * (uint64_t)i + 1;

			if (!t_warm && (i == warm || t0 - t_start > PP_WARM_NS))
				t_warm = t0;
			if (t_warm && (n == iters ||
				       (n >= 100 && t0 - t_warm > PP_BUDGET_NS)))
				break;
			bad = run.m->send(&run.pp, 0, out) ||
			      run.m->recv(&run.pp, 1, &v);
			t1 = now_ns();
			if (!bad && (uint32_t)v != (uint32_t)(out + 1)) {
				fail("%s: reply %.0f, expected %.0f", label,
				     (double)v, (double)(out + 1));
				bad = 1;
			}
			if (t_warm)
				ns[n++] = t1 - t0;
		}
		if (!bad)
			bad = run.m->send(&run.pp, 0, PP_STOP);
		if (bad) {
			fprintf(stderr, "%s: failed; killing the peer\n", label);
			kill(kids[0], SIGKILL);
		}
		if (reap_all() || bad) {
			failures++;
			if (run.m->teardown)
				run.m->teardown(&run.pp);
			continue;
		}
		alarm(0);
		if (run.m->teardown)
			run.m->teardown(&run.pp);
		qsort(ns, (size_t)n, sizeof(ns[0]), cmp_u64);
		for (long i = 0; i < n; i++)
			sum += ns[i];
		res[k] = (struct pp_result){
			.p50 = (double)percentile(ns, (size_t)n, 50) / 1e3,
			.p99 = (double)percentile(ns, (size_t)n, 99) / 1e3,
			.mean = (double)sum / (double)n / 1e3,
			.min = (double)ns[0] / 1e3,
			.n = n,
			.ok = true,
		};
		if (!run.m->gosync && res[k].p50 < best_peer)
			best_peer = res[k].p50;
	}
	printf("| %-24s | %-22s | %6s | %9s | %9s | %9s | %9s | %11s |\n", "mechanism",
	       "how", "n", "p50 us", "p99 us", "mean us", "min us", "p50 / best");
	printf("|--------------------------|------------------------|--------|-----------|-----------|-----------|-----------|-------------|\n");
	for (size_t k = 0; k < NPP; k++) {
		const struct pp_mech *m = &pp_mechs[k];

		if (!res[k].ok) {
			printf("| %-24s | %-22s | %6s | %9s | %9s | %9s | %9s | %11s |\n",
			       m->name, m->note, "", "FAILED", "", "", "", "");
			continue;
		}
		printf("| %-24s | %-22s | %6ld | %9.2f | %9.2f | %9.2f | %9.2f | %10.2fx |\n",
		       m->name, m->note, res[k].n, res[k].p50, res[k].p99,
		       res[k].mean, res[k].min, res[k].p50 / best_peer);
		csv_row(bench, m->name, "samples", (double)res[k].n, "count");
		csv_row(bench, m->name, "p50", res[k].p50, "us");
		csv_row(bench, m->name, "p99", res[k].p99, "us");
		csv_row(bench, m->name, "mean", res[k].mean, "us");
	}
	printf("\n(p50 / best: this row's p50 over the best non-gosync peer's p50; lower is better.)\n");
	if (one_cpu && sched_setaffinity(0, sizeof(all), &all))
		die("sched_setaffinity");
	munmap(sh, sizeof(*sh));
	free(ns);
}

/* ------------------------------------------------------------------ */
/* Throughput: producers send values 1..N (producer p the p-th slice);  */
/* value 0 is the end-of-stream sentinel for mechanisms without close.  */

#define MAX_SIDE 4

struct tp_stats {
	uint64_t count, sum, sumsq;
	uint64_t last[MAX_SIDE];	/* per producer: FIFO check */
	int order_errors;
};

struct tp {
	size_t elem;
	unsigned int cap;
	int nprod, ncons;
	long per_prod;
	gs_chan *ch;
	int rfd, wfd;
	mqd_t mq;
	struct ring *ring;
	_Atomic int *start;
	struct tp_stats *stats;	/* shared, one per consumer */
};

struct tp_mech {
	const char *name;
	const char *note;
	bool gosync, mpmc;
	int (*setup)(struct tp *tp);
	int (*send)(struct tp *tp, const void *msg);
	/* 1: a message, 0: end of stream, < 0: error */
	int (*recv)(struct tp *tp, void *msg);
	int (*finish)(struct tp *tp);	/* after the producers are done */
	void (*teardown)(struct tp *tp);
};

static int tp_gs_setup(struct tp *tp)
{
	return gs_chan_make(&tp->ch, tp->elem, tp->cap);
}

static int tp_gs_send(struct tp *tp, const void *msg)
{
	return gs_chan_send(tp->ch, msg);
}

static int tp_gs_recv(struct tp *tp, void *msg)
{
	return gs_chan_recv(tp->ch, msg);
}

static int tp_gs_finish(struct tp *tp)
{
	return gs_chan_close(tp->ch);
}

static void tp_gs_teardown(struct tp *tp)
{
	gs_chan_destroy(tp->ch);
}

/* The rest: a zero value is the sentinel, one per consumer. */
static int tp_sentinels(struct tp *tp, int (*send)(struct tp *, const void *))
{
	void *msg = calloc(1, tp->elem);
	int err = !msg;

	for (int c = 0; c < tp->ncons && !err; c++)
		err = send(tp, msg);
	free(msg);
	return err;
}

static int tp_pipe_setup(struct tp *tp)
{
	int p[2];

	if (pipe(p))
		return 1;
	tp->rfd = p[0];
	tp->wfd = p[1];
	/* room for cap messages (rounded up to pages by the kernel) */
	if (fcntl(tp->wfd, F_SETPIPE_SZ, (int)(tp->elem * tp->cap)) < 0)
		perror("F_SETPIPE_SZ");
	return 0;
}

static int tp_fd_send(struct tp *tp, const void *msg)
{
	return write_full(tp->wfd, msg, tp->elem);
}

static int tp_fd_send_atomic(struct tp *tp, const void *msg)
{
	/* elem <= PIPE_BUF: one write() is atomic among writers */
	return write(tp->wfd, msg, tp->elem) != (ssize_t)tp->elem;
}

/* One read() per message: several readers must never split one. */
static int tp_pipe_recv(struct tp *tp, void *msg)
{
	ssize_t n;
	uint64_t v;

	while ((n = read(tp->rfd, msg, tp->elem)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)tp->elem)
		return -1;
	memcpy(&v, msg, sizeof(v));
	return v != 0;
}

static int tp_fd_finish(struct tp *tp)
{
	return tp_sentinels(tp, tp_fd_send);
}

static void tp_fd_teardown(struct tp *tp)
{
	close(tp->rfd);
	close(tp->wfd);
}

static int tp_sock_setup(struct tp *tp)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 1;
	tp->wfd = sv[0];
	tp->rfd = sv[1];
	return 0;
}

static int tp_sock_recv(struct tp *tp, void *msg)
{
	uint64_t v;

	if (read_full(tp->rfd, msg, tp->elem))
		return -1;
	memcpy(&v, msg, sizeof(v));
	return v != 0;
}

static int tp_mq_setup(struct tp *tp)
{
	struct mq_attr attr = { .mq_maxmsg = tp->cap, .mq_msgsize = (long)tp->elem };
	char name[64];

	snprintf(name, sizeof(name), "/gosync-bench-tp-%d", getpid());
	tp->mq = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
	if (tp->mq == (mqd_t)-1)
		return 1;
	mq_unlink(name);
	return 0;
}

static int tp_mq_send(struct tp *tp, const void *msg)
{
	while (mq_send(tp->mq, msg, tp->elem, 0))
		if (errno != EINTR)
			return 1;
	return 0;
}

static int tp_mq_recv(struct tp *tp, void *msg)
{
	ssize_t n;
	uint64_t v;

	while ((n = mq_receive(tp->mq, msg, tp->elem, NULL)) < 0)
		if (errno != EINTR)
			return -1;
	if (n != (ssize_t)tp->elem)
		return -1;
	memcpy(&v, msg, sizeof(v));
	return v != 0;
}

static int tp_mq_finish(struct tp *tp)
{
	return tp_sentinels(tp, tp_mq_send);
}

static void tp_mq_teardown(struct tp *tp)
{
	mq_close(tp->mq);
}

static int tp_ring_setup(struct tp *tp)
{
	tp->ring = ring_create(tp->elem, tp->cap);
	return !tp->ring;
}

static int tp_ring_send(struct tp *tp, const void *msg)
{
	ring_push(tp->ring, msg);
	return 0;
}

static int tp_ring_recv(struct tp *tp, void *msg)
{
	uint64_t v;

	ring_pop(tp->ring, msg);
	memcpy(&v, msg, sizeof(v));
	return v != 0;
}

static int tp_ring_finish(struct tp *tp)
{
	return tp_sentinels(tp, tp_ring_send);
}

static void tp_ring_teardown(struct tp *tp)
{
	ring_destroy(tp->ring);
}

static const struct tp_mech tp_mechs[] = {
	{ "gosync chan", "cap 1024; close ends", true, true, tp_gs_setup,
	  tp_gs_send, tp_gs_recv, tp_gs_finish, tp_gs_teardown },
	{ "pipe", "F_SETPIPE_SZ cap*size", false, true, tp_pipe_setup,
	  tp_fd_send_atomic, tp_pipe_recv, tp_fd_finish, tp_fd_teardown },
	{ "POSIX mq", "maxmsg 1024", false, true, tp_mq_setup, tp_mq_send,
	  tp_mq_recv, tp_mq_finish, tp_mq_teardown },
	{ "UNIX stream socketpair", "default buffers", false, false,
	  tp_sock_setup, tp_fd_send, tp_sock_recv, tp_fd_finish,
	  tp_fd_teardown },
	{ "Vyukov ring (spin+yield)", "shm, 1024 cells", false, true,
	  tp_ring_setup, tp_ring_send, tp_ring_recv, tp_ring_finish,
	  tp_ring_teardown },
};

#define NTP (sizeof(tp_mechs) / sizeof(tp_mechs[0]))

struct tp_run {
	const struct tp_mech *m;
	struct tp tp;
};

static int tp_producer(void *arg, int p)
{
	struct tp_run *run = arg;
	struct tp *tp = &run->tp;
	unsigned char *msg = malloc(tp->elem);
	uint64_t base = (uint64_t)p * (uint64_t)tp->per_prod;

	if (!msg)
		return 1;
	memset(msg, 0xa5, tp->elem);
	wait_start(tp->start);
	for (long i = 1; i <= tp->per_prod; i++) {
		uint64_t v = base + (uint64_t)i;

		memcpy(msg, &v, sizeof(v));
		if (run->m->send(tp, msg)) {
			perror("send");
			return 1;
		}
	}
	free(msg);
	return 0;
}

static int tp_consumer(void *arg, int c)
{
	struct tp_run *run = arg;
	struct tp *tp = &run->tp;
	struct tp_stats *st = &tp->stats[c];
	unsigned char *msg = malloc(tp->elem);
	int r;

	if (!msg)
		return 1;
	wait_start(tp->start);
	while ((r = run->m->recv(tp, msg)) == 1) {
		uint64_t v, p;

		memcpy(&v, msg, sizeof(v));
		p = (v - 1) / (uint64_t)tp->per_prod;
		if (p >= (uint64_t)tp->nprod || v <= st->last[p])
			st->order_errors++;
		else
			st->last[p] = v;
		st->count++;
		st->sum += v;
		st->sumsq += v * v;
	}
	free(msg);
	if (r < 0)
		perror("recv");
	return r < 0;
}

struct tp_result {
	double rate;
	bool ok, run;
};

/* Messages per second, the median of @reps runs; false if a check failed. */
static bool throughput_one(const struct tp_mech *m, size_t elem, int nprod,
			   int ncons, long total, int reps, double *rate)
{
	double rates[REPS];
	char label[128];

	snprintf(label, sizeof(label), "throughput %s %dP%dC %zuB", m->name,
		 nprod, ncons, elem);
	progress(label);
	for (int r = 0; r < reps; r++) {
		struct tp_run run = { .m = m };
		struct tp *tp = &run.tp;
		uint64_t t0, t1, n, count = 0, sum = 0, sumsq = 0;
		int bad = 0, order = 0;

		start_test(label);
		tp->elem = elem;
		tp->cap = 1024;
		tp->nprod = nprod;
		tp->ncons = ncons;
		tp->per_prod = total / nprod;
		tp->start = shm_alloc(sizeof(*tp->start));
		tp->stats = shm_alloc(sizeof(*tp->stats) * (size_t)ncons);
		if (m->setup(tp)) {
			perror(label);
			failures++;
			return false;
		}
		for (int c = 0; c < ncons; c++)
			spawn(tp_consumer, &run, c);
		for (int p = 0; p < nprod; p++)
			spawn(tp_producer, &run, p);
		t0 = now_ns();
		atomic_store(tp->start, 1);
		for (int p = 0; p < nprod; p++)
			bad |= reap_one(ncons + p);
		if (!bad && m->finish(tp))
			bad = 1;
		if (bad)	/* consumers would wait forever */
			for (int c = 0; c < ncons; c++)
				kill(kids[c], SIGKILL);
		bad |= reap_all();
		t1 = now_ns();
		alarm(0);
		m->teardown(tp);
		for (int c = 0; c < ncons; c++) {
			count += tp->stats[c].count;
			sum += tp->stats[c].sum;
			sumsq += tp->stats[c].sumsq;
			order += tp->stats[c].order_errors;
		}
		n = (uint64_t)tp->per_prod * (uint64_t)nprod;
		munmap(tp->start, sizeof(*tp->start));
		munmap(tp->stats, sizeof(*tp->stats) * (size_t)ncons);
		if (bad) {
			fprintf(stderr, "FAIL %s: a process failed\n", label);
			failures++;
			return false;
		}
		{
			uint64_t esum = 0, esumsq = 0;

			for (uint64_t v = 1; v <= n; v++) {
				esum += v;
				esumsq += v * v;
			}
			if (count != n || sum != esum || sumsq != esumsq || order) {
				fprintf(stderr,
					"FAIL %s: %llu messages received of %llu, sum %s, sum of squares %s, %d out of order\n",
					label, (unsigned long long)count,
					(unsigned long long)n,
					sum == esum ? "ok" : "WRONG",
					sumsq == esumsq ? "ok" : "WRONG", order);
				failures++;
				return false;
			}
		}
		rates[r] = (double)n / ((double)(t1 - t0) / 1e9);
	}
	qsort(rates, (size_t)reps, sizeof(rates[0]), cmp_double);
	*rate = rates[reps / 2];
	return true;
}

static void throughput(void)
{
	static const struct {
		int nprod, ncons;
		size_t elem;
		long total;
	} cfgs[] = {
		{ 1, 1, 8, 40000 },
		{ 1, 1, 1024, 20000 },
		{ 4, 4, 8, 40000 },
	};
	int reps = 3;

	for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
		long total = scaled(cfgs[c].total) / cfgs[c].nprod * cfgs[c].nprod;
		struct tp_result res[NTP] = { 0 };
		double best_peer = 0;
		char bench[64];

		snprintf(bench, sizeof(bench), "throughput-%dp%dc-%zuB",
			 cfgs[c].nprod, cfgs[c].ncons, cfgs[c].elem);
		printf("\n## Throughput: %d producer%s, %d consumer%s, %zu-byte messages, capacity 1024\n\n",
		       cfgs[c].nprod, cfgs[c].nprod > 1 ? "s" : "",
		       cfgs[c].ncons, cfgs[c].ncons > 1 ? "s" : "",
		       cfgs[c].elem);
		printf("%ld messages, median of %d runs; every message checked to arrive exactly once.\n\n",
		       total, reps);
		for (size_t k = 0; k < NTP; k++) {
			const struct tp_mech *m = &tp_mechs[k];

			if (cfgs[c].nprod > 1 && !m->mpmc)
				continue;
			res[k].run = true;
			res[k].ok = throughput_one(m, cfgs[c].elem,
						   cfgs[c].nprod, cfgs[c].ncons,
						   total, reps, &res[k].rate);
			if (res[k].ok && !m->gosync && res[k].rate > best_peer)
				best_peer = res[k].rate;
		}
		printf("| %-26s | %-22s | %12s | %9s | %11s |\n", "mechanism",
		       "how", "msgs/s", "MB/s", "vs best");
		printf("|----------------------------|------------------------|--------------|-----------|-------------|\n");
		for (size_t k = 0; k < NTP; k++) {
			const struct tp_mech *m = &tp_mechs[k];
			double mbs = res[k].rate * (double)cfgs[c].elem / 1e6;

			if (!res[k].run)
				continue;
			if (!res[k].ok) {
				printf("| %-26s | %-22s | %12s | %9s | %11s |\n",
				       m->name, m->note, "FAILED", "", "");
				continue;
			}
			printf("| %-26s | %-22s | %12.0f | %9.2f | %10.3fx |\n",
			       m->name, m->note, res[k].rate, mbs,
			       res[k].rate / best_peer);
			csv_row(bench, m->name, "rate", res[k].rate, "msg/s");
			csv_row(bench, m->name, "bandwidth", mbs, "MB/s");
		}
		printf("\n(vs best: msgs/s over the best non-gosync peer's; higher is better.)\n");
	}
}

/* ------------------------------------------------------------------ */
/* Select: one consumer over N buffered channels, one producer process  */
/* sending each value to a random one of them.                          */

struct sel_run {
	gs_chan *chs[GS_SELECT_MAX];
	int n;
	long msgs;
	_Atomic int *start;
};

static int sel_producer(void *arg, int idx)
{
	struct sel_run *run = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)idx;
	wait_start(run->start);
	for (long i = 1; i <= run->msgs; i++) {
		uint64_t v = (uint64_t)i;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (gs_chan_send(run->chs[x % (uint64_t)run->n], &v))
			return 1;
	}
	return 0;
}

static void select_bench(void)
{
	static const int ns[] = { 2, 8, 64 };
#define NSEL (sizeof(ns) / sizeof(ns[0]))
	double secs[NSEL];
	long msgs = scaled(20000);
	gs_case cases[GS_SELECT_MAX];
	uint64_t vals[GS_SELECT_MAX];

	printf("\n## Select: one consumer over N channels (cap 64, 8 bytes), one producer process feeding a random one\n\n");
	printf("%ld messages per N; the consumer's gs_select() receives each.\n\n", msgs);
	for (size_t k = 0; k < NSEL; k++) {
		struct sel_run run = { .n = ns[k], .msgs = msgs };
		uint64_t t0, t1, sum = 0, esum = (uint64_t)msgs * (uint64_t)(msgs + 1) / 2;
		char label[64];
		int bad = 0;
		long got = 0;

		snprintf(label, sizeof(label), "select over %d", run.n);
		start_test(label);
		progress(label);
		run.start = shm_alloc(sizeof(*run.start));
		for (int i = 0; i < run.n; i++) {
			if (gs_chan_make(&run.chs[i], 8, 64)) {
				fprintf(stderr, "%s: gs_chan_make failed\n", label);
				exit(1);
			}
			cases[i] = gs_case_recv(run.chs[i], &vals[i]);
		}
		spawn(sel_producer, &run, 0);
		t0 = now_ns();
		atomic_store(run.start, 1);
		for (got = 0; got < msgs; got++) {
			int i = gs_select(cases, (size_t)run.n, 0, GS_FOREVER);

			if (i < 0 || i >= run.n || !cases[i].ok) {
				fprintf(stderr, "%s: gs_select: %d\n", label, i);
				bad = 1;
				kill(kids[0], SIGKILL);
				break;
			}
			sum += vals[i];
		}
		t1 = now_ns();
		bad |= reap_all();
		alarm(0);
		for (int i = 0; i < run.n; i++)
			gs_chan_destroy(run.chs[i]);
		munmap(run.start, sizeof(*run.start));
		if (bad || sum != esum) {
			fprintf(stderr, "FAIL %s: sum %s\n", label,
				sum == esum ? "ok" : "WRONG");
			failures++;
			secs[k] = -1;
			continue;
		}
		secs[k] = (double)(t1 - t0) / 1e9;
	}
	printf("| %-24s | %4s | %12s | %12s |\n", "mechanism", "N", "msgs/s",
	       "ns / select");
	printf("|--------------------------|------|--------------|--------------|\n");
	for (size_t k = 0; k < NSEL; k++) {
		char bench[32];

		if (secs[k] < 0) {
			printf("| %-24s | %4d | %12s | %12s |\n",
			       "gosync gs_select", ns[k], "FAILED", "");
			continue;
		}
		snprintf(bench, sizeof(bench), "select-%d", ns[k]);
		printf("| %-24s | %4d | %12.0f | %12.0f |\n", "gosync gs_select",
		       ns[k], (double)msgs / secs[k], secs[k] * 1e9 / (double)msgs);
		csv_row(bench, "gosync gs_select", "rate", (double)msgs / secs[k],
			"msg/s");
		csv_row(bench, "gosync gs_select", "per_op",
			secs[k] * 1e9 / (double)msgs, "ns");
	}
}

int main(int argc, char **argv)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	const char *s = getenv("GOSYNC_BENCH_SCALE");
	const char *only = argc > 1 ? argv[1] : NULL;
	gs_chan *probe;
	int err;

	if (s && atof(s) > 0)
		scale = atof(s);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	/* a POSIX mq of 1024 x 1 KiB exceeds the default 800 KiB limit */
	if (setrlimit(RLIMIT_MSGQUEUE, &unlimited))
		perror("setrlimit(RLIMIT_MSGQUEUE)");
	err = gs_chan_make(&probe, 8, 0);
	if (err) {
		fprintf(stderr, "gosync: %s\n%s\n", gs_strerror(err),
			gs_init_error());
		return 1;
	}
	gs_chan_destroy(probe);

	printf("\n# gosync IPC benchmarks (C, processes)\n");
	if (!only || !strcmp(only, "pingpong"))
		ping_pong(false);
	if (!only || !strcmp(only, "pingpong-1cpu"))
		ping_pong(true);
	if (!only || !strcmp(only, "throughput"))
		throughput();
	if (!only || !strcmp(only, "select"))
		select_bench();
	progress(NULL);
	if (failures) {
		fprintf(stderr, "ipc_bench: %d check(s) FAILED\n", failures);
		return 1;
	}
	return 0;
}
