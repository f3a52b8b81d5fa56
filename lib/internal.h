/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgosync: what the library's source files share and users do not see.
 */
#ifndef GOSYNC_LIB_INTERNAL_H
#define GOSYNC_LIB_INTERNAL_H

/*
 * Issue the object-creating ioctl @cmd with @arg on /dev/gosync (opened
 * on first use). Return: the new object's fd, or a negative errno.
 */
int gs_create_object(unsigned long cmd, void *arg);

#endif /* GOSYNC_LIB_INTERNAL_H */
