/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the benchmarks share: timing an operation in a loop (median and
 * best of REPS repetitions after a warm-up) and timing N processes that
 * run a loop at once. Results are meaningful only as ratios between rows
 * of one run, on one machine.
 */
#ifndef GOSYNC_BENCH_H
#define GOSYNC_BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gosync.h"

#define REPS 7

/* One iteration of a measured loop; non-zero means it failed. */
typedef int (*bench_fn)(void *ctx);

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline void bench_fail(const char *name)
{
	fprintf(stderr, "%s: operation failed\n", name);
	exit(1);
}

static inline void print_row(const char *name, double *ns, int reps)
{
	qsort(ns, (size_t)reps, sizeof(ns[0]), cmp_double);
	printf("| %-34s | %10.1f | %10.1f |\n", name, ns[reps / 2], ns[0]);
}

static inline void print_header(const char *what)
{
	printf("| %-34s | %10s | %10s |\n", what, "median", "best");
	printf("|------------------------------------|------------|------------|\n");
}

/* ns per call of @fn, on this thread alone. */
static inline void measure(const char *name, bench_fn fn, void *ctx, long iters)
{
	double ns[REPS];

	for (long i = 0; i < iters / 10; i++)	/* warm-up */
		if (fn(ctx))
			bench_fail(name);
	for (int r = 0; r < REPS; r++) {
		uint64_t t0 = gs_now();

		for (long i = 0; i < iters; i++)
			if (fn(ctx))
				bench_fail(name);
		ns[r] = (double)(gs_now() - t0) / (double)iters;
	}
	print_row(name, ns, REPS);
}

/*
 * ns per call of @fn with @nproc processes (forked, sharing what @ctx
 * points to if it is shared memory) each calling it @iters times at once:
 * the wall time from a common start to the last finish, divided by the
 * calls of all processes. @check, if set, runs after each repetition and
 * fails the benchmark if it returns non-zero (a lost update, say).
 */
static inline void measure_procs(const char *name, bench_fn fn, void *ctx,
			  int nproc, long iters, int reps,
			  int (*check)(void *ctx, long calls))
{
	_Atomic int *start = mmap(NULL, sizeof(*start), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	double ns[REPS];

	if (start == MAP_FAILED)
		bench_fail(name);
	for (int r = 0; r < reps && r < REPS; r++) {
		uint64_t t0;
		int status, failed = 0;

		atomic_store(start, 0);
		for (int p = 0; p < nproc; p++) {
			pid_t pid = fork();

			if (pid < 0)
				bench_fail(name);
			if (pid == 0) {
				while (!atomic_load(start))
					;
				for (long i = 0; i < iters; i++)
					if (fn(ctx))
						_exit(1);
				_exit(0);
			}
		}
		t0 = gs_now();
		atomic_store(start, 1);
		while (wait(&status) > 0)
			failed |= !WIFEXITED(status) || WEXITSTATUS(status);
		ns[r] = (double)(gs_now() - t0) / (double)(nproc * iters);
		if (failed || (check && check(ctx, nproc * iters)))
			bench_fail(name);
	}
	munmap(start, sizeof(*start));
	print_row(name, ns, reps < REPS ? reps : REPS);
}

/*
 * Machine-readable results: when GOSYNC_BENCH_CSV names a file, every
 * csv_row() appends "bench,variant,metric,value,unit" to it (no header;
 * the collector adds one). Names must not contain commas.
 */
static inline void csv_row(const char *bench, const char *variant,
			   const char *metric, double value, const char *unit)
{
	static FILE *csv;
	static int tried;

	if (!tried) {
		const char *path = getenv("GOSYNC_BENCH_CSV");

		tried = 1;
		if (path && *path) {
			csv = fopen(path, "a");
			if (!csv)
				perror(path);
		}
	}
	if (!csv)
		return;
	fprintf(csv, "%s,%s,%s,%.6g,%s\n", bench, variant, metric, value, unit);
	fflush(csv);
}

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The @pct percentile (nearest rank) of @n sorted samples. */
static inline uint64_t percentile(const uint64_t *sorted, size_t n, double pct)
{
	size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

#endif /* GOSYNC_BENCH_H */
