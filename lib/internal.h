/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgosync: what the library's source files share and users do not see.
 */
#ifndef GOSYNC_LIB_INTERNAL_H
#define GOSYNC_LIB_INTERNAL_H

#include "gosync.h"

/*
 * Issue the object-creating ioctl @cmd with @arg on /dev/gosync (opened
 * on first use). Return: the new object's fd, or a negative errno.
 */
int gs_create_object(unsigned long cmd, void *arg);
/* The creation flags of a new lot of @kind: checked by default or not. */
uint32_t gs_lot_create_flags(uint32_t kind);

/*
 * A blocking call with a context: gs_ctx_wait_begin() gives the deadline
 * and the Done channel's fd (-1: none) to pass to the kernel, or the
 * context's error if it is done already; gs_ctx_wait_end() turns the
 * call's -ECANCELED (Done closed) or -ETIMEDOUT (its deadline) into the
 * context's error and passes any other result through.
 */
struct gs_ctx_wait {
	uint64_t deadline;
	int cancel_fd;
};

int gs_ctx_wait_begin(gs_ctx *ctx, struct gs_ctx_wait *w);
int gs_ctx_wait_end(gs_ctx *ctx, int ret);

#endif /* GOSYNC_LIB_INTERNAL_H */
