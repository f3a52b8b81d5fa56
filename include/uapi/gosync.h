/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * gosync: Go's concurrency primitives as kernel objects.
 *
 * This header is the ABI between gosync.ko and its users (libgosync or
 * anyone issuing the ioctls directly). It is shared verbatim by the kernel
 * module and the library.
 *
 * Conventions every ioctl follows:
 *  - Arguments are structs of fixed-size fields (__u32, __u64, ...) laid
 *    out without implicit padding; explicit padding and "reserved" fields
 *    must be zero, or the ioctl fails with -EINVAL and changes nothing.
 *  - "flags" fields accept only the documented bits; any other bit gives
 *    -EINVAL.
 *  - A bad user pointer gives -EFAULT; an unknown ioctl gives -ENOTTY.
 *  - Timeouts are absolute deadlines in nanoseconds, on CLOCK_MONOTONIC
 *    unless the ioctl's flags say GOSYNC_CLOCK_REALTIME, and as seen from
 *    the caller's time namespace. GOSYNC_DEADLINE_NONE waits forever.
 *    An interrupted wait (-EINTR, or a transparent restart) can be retried
 *    with the same argument: the deadline does not move.
 *  - Objects are created by ioctls on an open /dev/gosync and returned as
 *    new file descriptors (O_CLOEXEC); the file descriptor is the only
 *    handle and the only access control.
 */
#ifndef _UAPI_GOSYNC_H
#define _UAPI_GOSYNC_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define GOSYNC_DEVICE_PATH	"/dev/gosync"

/*
 * The ABI version. It changes whenever an existing struct or ioctl changes
 * meaning; additions are announced through feature bits instead.
 */
#define GOSYNC_ABI_VERSION	1

/* Feature bits reported by GOSYNC_IOC_VERSION. */
#define GOSYNC_FEATURE_SEM	(1ULL << 0)	/* weighted semaphores */

/* Deadline value meaning "no deadline, wait forever". */
#define GOSYNC_DEADLINE_NONE	(~(__u64)0)

/* Deadline clock selection, for the flags of every waiting ioctl. */
#define GOSYNC_CLOCK_REALTIME	(1U << 0)

/**
 * struct gosync_version - argument of GOSYNC_IOC_VERSION
 * @abi_version: out: GOSYNC_ABI_VERSION of the loaded module
 * @flags:       in: must be 0
 * @features:    out: GOSYNC_FEATURE_* bits the module implements
 * @reserved:    in: must be 0
 */
struct gosync_version {
	__u32 abi_version;
	__u32 flags;
	__u64 features;
	__u64 reserved[2];
};

#define GOSYNC_IOC_MAGIC	0xC6

/* Ioctls on /dev/gosync itself. */
#define GOSYNC_IOC_VERSION	_IOWR(GOSYNC_IOC_MAGIC, 0x00, struct gosync_version)

#endif /* _UAPI_GOSYNC_H */
