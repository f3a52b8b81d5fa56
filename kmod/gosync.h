/* SPDX-License-Identifier: GPL-2.0 */
/*
 * gosync: internal declarations shared by the module's source files.
 */
#ifndef GOSYNC_INTERNAL_H
#define GOSYNC_INTERNAL_H

#include <linux/string.h>
#include <linux/types.h>
#include <uapi/gosync.h>

/* Feature bits this build of the module implements. */
#define GOSYNC_FEATURES		0ULL

/* True when the @size bytes at @p are all zero (reserved fields, padding). */
static inline bool gosync_all_zero(const void *p, size_t size)
{
	return !memchr_inv(p, 0, size);
}

#endif /* GOSYNC_INTERNAL_H */
