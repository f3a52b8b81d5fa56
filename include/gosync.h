/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgosync: Go's concurrency primitives for C, with the waiting done in
 * the Linux kernel by gosync.ko (/dev/gosync).
 *
 * Error convention: every function that can fail returns a negative errno
 * value (-EINVAL, -ETIMEDOUT, ...) and never sets errno. 0 (or a
 * non-negative result) means success.
 *
 * The library opens /dev/gosync lazily, on the first call that needs it,
 * and checks that the module speaks the ABI version the library was built
 * for. The environment variable GOSYNC_DEVICE overrides the device path
 * (ignored in set-uid programs).
 */
#ifndef GOSYNC_H
#define GOSYNC_H

#include <stdint.h>

#include "uapi/gosync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported symbols; everything else stays private. */
#define GS_API __attribute__((visibility("default")))

/**
 * gs_init() - open and check /dev/gosync now rather than on first use.
 *
 * Return: 0; -ENOENT when the device node is missing (the module is not
 * loaded); -EACCES when it cannot be opened; -ENOTTY when the path is not
 * a gosync device; -EPROTO when the module's ABI version differs from the
 * library's. gs_init_error() then says what to do. A failed gs_init() is
 * retried by the next call, so loading the module later works.
 */
GS_API int gs_init(void);

/**
 * gs_init_error() - a sentence explaining the last gs_init() failure and
 * what to do about it, or "" if the device was opened successfully.
 * The text is kept per thread, until that thread's next failing call.
 */
GS_API const char *gs_init_error(void);

/**
 * gs_device_fd() - the library's file descriptor on /dev/gosync.
 *
 * Return: the fd (opened and checked on first use), or a negative errno
 * as for gs_init(). The fd belongs to the library: do not close it.
 */
GS_API int gs_device_fd(void);

/**
 * gs_features() - GOSYNC_FEATURE_* bits of the loaded module, or a
 * negative errno as for gs_init().
 */
GS_API int64_t gs_features(void);

/**
 * gs_strerror() - describe a negative errno returned by this library,
 * with gosync's meaning where it differs from the C library's text.
 */
GS_API const char *gs_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* GOSYNC_H */
