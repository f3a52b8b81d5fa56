// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of /dev/gosync itself and of the library's device handling:
 * open, version query, ioctl conventions (-ENOTTY, -EFAULT, -EINVAL) and
 * the library's explanation when the device is missing or wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "gosync.h"
#include "gs_test.h"

FIXTURE(dev) {
	int fd;
};

FIXTURE_SETUP(dev)
{
	self->fd = open(GOSYNC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", GOSYNC_DEVICE_PATH,
				      strerror(errno));
}

FIXTURE_TEARDOWN(dev)
{
	close(self->fd);
}

TEST_F(dev, is_misc_char_device)
{
	struct stat st;

	ASSERT_EQ(0, fstat(self->fd, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(10, major(st.st_rdev));	/* MISC_MAJOR */
	EXPECT_EQ(0666, st.st_mode & 0777);
}

TEST_F(dev, version_reports_abi_and_features)
{
	struct gosync_version v;

	memset(&v, 0, sizeof(v));
	v.abi_version = 12345;	/* output only: overwritten */
	v.features = ~0ULL;
	ASSERT_EQ(0, ioctl(self->fd, GOSYNC_IOC_VERSION, &v));
	EXPECT_EQ(GOSYNC_ABI_VERSION, v.abi_version);
	EXPECT_EQ(GS_TEST_ALL_FEATURES, v.features);
	EXPECT_EQ(0, v.flags);
	EXPECT_EQ(0, v.reserved[0]);
	EXPECT_EQ(0, v.reserved[1]);
}

TEST_F(dev, unknown_ioctls_are_enotty)
{
	struct gosync_version v;
	unsigned long bad[] = {
		_IOWR(GOSYNC_IOC_MAGIC, 0xff, struct gosync_version),
		_IOR(GOSYNC_IOC_MAGIC, 0x00, struct gosync_version),
		_IOWR(GOSYNC_IOC_MAGIC, 0x00, __u64),	/* wrong size */
		_IOWR('x', 0x00, struct gosync_version),
		FIONREAD,
		0,
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&v, 0, sizeof(v));
		errno = 0;
		EXPECT_EQ(-1, ioctl(self->fd, bad[i], &v)) TH_LOG("cmd %#lx", bad[i]);
		EXPECT_EQ(ENOTTY, errno) TH_LOG("cmd %#lx", bad[i]);
		EXPECT_EQ(0, v.abi_version);	/* nothing written */
	}
}

TEST_F(dev, bad_pointers_are_efault)
{
	void *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);
	void *readonly = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);

	ASSERT_NE(MAP_FAILED, unmapped);
	ASSERT_NE(MAP_FAILED, readonly);
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, GOSYNC_IOC_VERSION, NULL));
	EXPECT_EQ(EFAULT, errno);
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, GOSYNC_IOC_VERSION, unmapped));
	EXPECT_EQ(EFAULT, errno);
	/* Readable all-zero input, but the result cannot be written back. */
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, GOSYNC_IOC_VERSION, readonly));
	EXPECT_EQ(EFAULT, errno);
	/* A struct that straddles the end of a mapping. */
	char *edge = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, edge);
	ASSERT_EQ(0, munmap(edge + 4096, 4096));
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, GOSYNC_IOC_VERSION, edge + 4096 - 8));
	EXPECT_EQ(EFAULT, errno);
	munmap(edge, 4096);
	munmap(unmapped, 4096);
	munmap(readonly, 4096);
}

TEST_F(dev, nonzero_flags_or_reserved_are_einval)
{
	struct gosync_version v;

	for (int field = 0; field < 3; field++) {
		memset(&v, 0, sizeof(v));
		if (field == 0)
			v.flags = 1;
		else
			v.reserved[field - 1] = 1ULL << 63;
		errno = 0;
		EXPECT_EQ(-1, ioctl(self->fd, GOSYNC_IOC_VERSION, &v));
		EXPECT_EQ(EINVAL, errno) TH_LOG("field %d", field);
		EXPECT_EQ(0, v.abi_version);	/* nothing written back */
		EXPECT_EQ(0, v.features);
	}
}

TEST_F(dev, read_write_mmap_are_refused)
{
	char buf[8];

	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, write(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 4096, PROT_READ, MAP_SHARED, self->fd, 0));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, lseek(self->fd, 0, SEEK_SET));
	EXPECT_EQ(ESPIPE, errno);
}

TEST(library_opens_device_and_checks_version)
{
	ASSERT_EQ(0, gs_init());
	EXPECT_STREQ("", gs_init_error());
	int fd = gs_device_fd();

	ASSERT_LE(0, fd);
	EXPECT_EQ(fd, gs_device_fd());	/* opened once */
	EXPECT_NE(-1, fcntl(fd, F_GETFD));
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_LE(0, gs_features());
}

/*
 * Runs gs_init() in a child whose GOSYNC_DEVICE points at @path; the child
 * exits with -gs_init() and writes gs_init_error() into @msg.
 */
static int init_with_device(const char *path, char *msg, size_t len)
{
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe(pipefd))
		return -1000;
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		setenv("GOSYNC_DEVICE", path, 1);
		int err = gs_init();
		const char *text = gs_init_error();

		if (write(pipefd[1], text, strlen(text)) < 0)
			_exit(255);
		_exit(-err);
	}
	close(pipefd[1]);
	n = read(pipefd[0], msg, len - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	status = reap(pid);
	if (status < 0)
		return -1001;
	return -status;
}

TEST(library_explains_missing_device)
{
	char msg[512];

	ASSERT_EQ(-ENOENT, init_with_device("/dev/gosync-missing", msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "/dev/gosync-missing")) TH_LOG("%s", msg);
	EXPECT_NE(NULL, strstr(msg, "not loaded")) TH_LOG("%s", msg);
	EXPECT_NE(NULL, strstr(msg, "insmod")) TH_LOG("%s", msg);
	EXPECT_NE(NULL, strstr(gs_strerror(-ENOENT), "not loaded"));
}

TEST(library_rejects_non_gosync_device)
{
	char msg[512];

	ASSERT_EQ(-ENOTTY, init_with_device("/dev/null", msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "not a gosync device")) TH_LOG("%s", msg);
}

/*
 * gosync_chan_pos_modulus() of the uapi header: capacity 0 (an unbuffered
 * channel has no ring) gives 0 instead of looping for ever; any other
 * capacity gives M, the largest capacity * 2^k that fits in 48 bits.
 */
TEST(chan_pos_modulus_is_defined_for_every_capacity)
{
	static const uint32_t caps[] = {
		1, 2, 3, 5, 7, 1000, 4096, 1U << 20, (1U << 31) + 1,
		UINT32_MAX,
	};
	const uint64_t limit = GOSYNC_CHAN_POS_MASK + 1;
	volatile uint32_t zero = 0;
	int status;
	pid_t pid;

	/* In a child: the old definition never returns for 0. */
	pid = fork_child();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(gosync_chan_pos_modulus(zero) == 0 ? 0 : 1);
	ASSERT_EQ(0, wait_child(pid, &status, WAIT_LIMIT_MS))
		TH_LOG("gosync_chan_pos_modulus(0) did not return");
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("gosync_chan_pos_modulus(0) is not 0");

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		uint64_t m = gosync_chan_pos_modulus(caps[i]);
		uint64_t k = m / caps[i];

		EXPECT_EQ(0, m % caps[i]) TH_LOG("capacity %u", caps[i]);
		EXPECT_EQ(0, k & (k - 1)) TH_LOG("capacity %u", caps[i]);
		EXPECT_GE(limit, m) TH_LOG("capacity %u", caps[i]);
		EXPECT_LT(limit, 2 * m) TH_LOG("capacity %u", caps[i]);
	}
}

TEST_HARNESS_MAIN
