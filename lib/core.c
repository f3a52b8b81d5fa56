// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: lazy opening and version check of /dev/gosync, and errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "gosync.h"
#include "internal.h"

/*
 * The device fd, once opened and checked; -1 until then. Threads race to
 * open it: the first compare-exchange wins and the losers close their fd.
 */
static atomic_int device_fd = -1;
static atomic_llong device_features;

/*
 * The explanation of the last failure. Written only on failure, by the
 * failing thread; concurrent failures may interleave, which is harmless
 * for a message that only says what to do.
 */
static _Thread_local char init_error[256];

static const char *device_path(void)
{
	const char *path = secure_getenv("GOSYNC_DEVICE");

	return path && *path ? path : GOSYNC_DEVICE_PATH;
}

static int fail(int err, const char *path, const char *advice)
{
	snprintf(init_error, sizeof(init_error), "gosync: %s: %s: %s", path,
		 strerror(-err), advice);
	return err;
}

static int open_device(void)
{
	const char *path = device_path();
	struct gosync_version v = { 0 };
	int fd, err;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ENOENT)
			return fail(err, path,
				    "the gosync kernel module is not loaded; load it with 'sudo insmod kmod/gosync.ko' from a build of gosync");
		if (err == -EACCES || err == -EPERM)
			return fail(err, path,
				    "no permission to open the device; check its mode (the module creates it 0666)");
		return fail(err, path, "cannot open the gosync device");
	}
	if (ioctl(fd, GOSYNC_IOC_VERSION, &v) < 0) {
		err = -errno;
		close(fd);
		if (err == -ENOTTY || err == -EINVAL)
			err = -ENOTTY;
		return fail(err, path,
			    "this is not a gosync device; unset GOSYNC_DEVICE or point it at /dev/gosync");
	}
	if (v.abi_version != GOSYNC_ABI_VERSION) {
		close(fd);
		snprintf(init_error, sizeof(init_error),
			 "gosync: %s speaks ABI version %u but this libgosync expects %u; rebuild and reload the module and library from the same gosync tree",
			 path, v.abi_version, GOSYNC_ABI_VERSION);
		return -EPROTO;
	}
	atomic_store(&device_features, (long long)v.features);
	return fd;
}

int gs_device_fd(void)
{
	int fd = atomic_load_explicit(&device_fd, memory_order_acquire);
	int expected = -1;

	if (fd >= 0)
		return fd;
	fd = open_device();
	if (fd < 0)
		return fd;
	if (!atomic_compare_exchange_strong_explicit(&device_fd, &expected, fd,
						     memory_order_acq_rel,
						     memory_order_acquire)) {
		close(fd);
		return expected;
	}
	init_error[0] = '\0';
	return fd;
}

int gs_create_object(unsigned long cmd, void *arg)
{
	int dev = gs_device_fd();
	int fd;

	if (dev < 0)
		return dev;
	fd = ioctl(dev, cmd, arg);
	return fd < 0 ? -errno : fd;
}

int gs_init(void)
{
	int fd = gs_device_fd();

	return fd < 0 ? fd : 0;
}

const char *gs_init_error(void)
{
	return init_error;
}

int64_t gs_features(void)
{
	int fd = gs_device_fd();

	return fd < 0 ? fd : (int64_t)atomic_load(&device_features);
}

const char *gs_strerror(int err)
{
	switch (-err) {
	case 0:
		return "success";
	case ENOENT:
		return "/dev/gosync is missing: the gosync module is not loaded";
	case EPROTO:
		return "the gosync module and library ABI versions differ";
	case ETIMEDOUT:
		return "the deadline passed";
	default:
		return strerror(-err);
	}
}

uint64_t gs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t gs_deadline_in(uint64_t ns)
{
	uint64_t now = gs_now();

	return ns >= GS_FOREVER - now ? GS_FOREVER : now + ns;
}

int gs_fd_send(int sock, int fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	char byte = 'G';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg;

	memset(&control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int gs_fd_recv(int sock)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg;
	ssize_t n;
	int fd;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_level != SOL_SOCKET ||
	    cmsg->cmsg_type != SCM_RIGHTS ||
	    cmsg->cmsg_len != CMSG_LEN(sizeof(int)))
		return -EBADMSG;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}
