// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * An out-of-tree consumer of an installed libgosync, built by
 * scripts/install-check.sh from a copy outside the tree with nothing but
 * pkg-config:
 *
 *	cc -o hello_chan hello_chan.c $(pkg-config --cflags --libs gosync)
 *	cc -static ... $(pkg-config --static --cflags --libs gosync)
 *
 * Two processes and a channel: the parent makes an unbuffered channel of
 * ints and a buffered one of strings, forks; the child sends 1..N on the
 * first and a greeting on the second, then closes both; the parent
 * receives everything in order, sees both closes and reaps the child.
 *
 * Exit status: 0 on success, 1 on a failure, 77 (skip) when there is no
 * /dev/gosync (the module is not loaded).
 */
#include <gosync.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 100

struct greeting {
	char text[32];
};

GS_CHAN_DECLARE(int_chan, int)
GS_CHAN_DECLARE(greeting_chan, struct greeting)

static int fail(const char *what, int err)
{
	fprintf(stderr, "hello_chan: %s: %s\n", what, gs_strerror(err));
	return 1;
}

int main(void)
{
	int_chan nums;
	greeting_chan words;
	struct greeting g;
	int err, v, status;
	pid_t pid;

	err = gs_init();
	if (err == -ENOENT) {
		fprintf(stderr, "hello_chan: skip: %s\n", gs_init_error());
		return 77;
	}
	if (err)
		return fail("gs_init", err);
	err = int_chan_make(&nums, 0);
	if (err)
		return fail("make(chan int)", err);
	err = greeting_chan_make(&words, 4);
	if (err)
		return fail("make(chan greeting, 4)", err);

	pid = fork();
	if (pid < 0)
		return fail("fork", -errno);
	if (pid == 0) {
		for (v = 1; v <= N; v++)
			if (int_chan_send(nums, v))
				_exit(1);
		memset(&g, 0, sizeof(g));
		snprintf(g.text, sizeof(g.text), "hello from %d", (int)getpid());
		if (greeting_chan_send(words, g) || int_chan_close(nums) ||
		    greeting_chan_close(words))
			_exit(1);
		_exit(0);
	}

	for (int want = 1; want <= N; want++) {
		err = int_chan_recv(nums, &v);
		if (err != 1 || v != want) {
			fprintf(stderr, "hello_chan: received %d (ok %d), expected %d\n",
				v, err, want);
			return 1;
		}
	}
	err = greeting_chan_recv(words, &g);
	if (err != 1)
		return fail("receive the greeting", err < 0 ? err : -EPIPE);
	if (int_chan_recv(nums, &v) != 0 || greeting_chan_recv(words, &g) != 0) {
		fprintf(stderr, "hello_chan: a channel is not closed\n");
		return 1;
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "hello_chan: the sender failed\n");
		return 1;
	}
	int_chan_destroy(nums);
	greeting_chan_destroy(words);
	printf("hello_chan: %d values and \"%s\" across processes: ok\n", N, g.text);
	return 0;
}
