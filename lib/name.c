// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: objects opened by name (GOSYNC_IOC_NAME_OPEN). The kernel
 * creates or finds the object and returns an fd on it; each family's
 * from_fd adopts that fd as it adopts one received from another process.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "gosync.h"
#include "internal.h"

#define GS_O_ALL	(GS_O_RDONLY | GS_O_WRONLY | GS_O_CREAT | GS_O_EXCL)
#define BARRIER_MAX_PARTIES	0x7fffffffU

/* Fill the access, flags and mode of @arg from @oflag and @mode. */
static int name_arg(struct gosync_name_open *arg, const char *name,
		    int oflag, unsigned int mode, uint32_t type)
{
	if (!name || (oflag & ~GS_O_ALL) ||
	    (oflag & (GS_O_RDONLY | GS_O_WRONLY)) ==
	    (GS_O_RDONLY | GS_O_WRONLY) || mode > 0777)
		return -EINVAL;
	arg->name = (uint64_t)(uintptr_t)name;
	arg->flags = (oflag & GS_O_CREAT ? GOSYNC_NAME_CREAT : 0) |
		     (oflag & GS_O_EXCL ? GOSYNC_NAME_EXCL : 0);
	arg->access = oflag & GS_O_RDONLY ? GOSYNC_NAME_READ :
		      oflag & GS_O_WRONLY ? GOSYNC_NAME_WRITE :
		      GOSYNC_NAME_READ | GOSYNC_NAME_WRITE;
	arg->mode = mode;
	arg->type = type;
	return 0;
}

static int name_open(struct gosync_name_open *arg)
{
	return gs_create_object(GOSYNC_IOC_NAME_OPEN, arg);
}

int gs_chan_open(gs_chan **chp, const char *name, int oflag,
		 unsigned int mode, size_t elem_size, uint32_t capacity)
{
	struct gosync_name_open arg = { 0 };
	int fd, err;

	if (elem_size > GOSYNC_CHAN_ELEM_MAX)
		return -EINVAL;
	err = name_arg(&arg, name, oflag, mode, GOSYNC_NAME_CHAN);
	if (err)
		return err;
	arg.create.chan.elem_size = (uint32_t)elem_size;
	arg.create.chan.capacity = capacity;
	fd = name_open(&arg);
	if (fd < 0)
		return fd;
	err = gs_chan_from_fd_sized(chp, fd, elem_size);
	if (err)
		close(fd);
	return err;
}

int gs_sem_open(gs_sem **semp, const char *name, int oflag,
		unsigned int mode, uint64_t size)
{
	struct gosync_name_open arg = { 0 };
	int fd, err;

	if (size > GOSYNC_SEM_MAX)
		return -EINVAL;
	err = name_arg(&arg, name, oflag, mode, GOSYNC_NAME_SEM);
	if (err)
		return err;
	arg.create.sem.size = size;
	fd = name_open(&arg);
	if (fd < 0)
		return fd;
	err = gs_sem_from_fd(semp, fd);
	if (err)
		close(fd);
	return err;
}

/* A lot of @kind by name; @from_fd adopts it as the family's handle. */
static int lot_open(void **objp, int (*from_fd)(void **objp, int fd),
		    const char *name, int oflag, unsigned int mode,
		    uint32_t kind, uint64_t param)
{
	struct gosync_name_open arg = { 0 };
	int fd, err;

	err = name_arg(&arg, name, oflag, mode, GOSYNC_NAME_LOT);
	if (err)
		return err;
	arg.create.lot.kind = kind;
	arg.create.lot.flags = gs_lot_create_flags(kind);
	arg.create.lot.param = param;
	fd = name_open(&arg);
	if (fd < 0)
		return fd;
	err = from_fd(objp, fd);
	if (err)
		close(fd);
	return err;
}

#define LOT_OPEN(type, KIND)						\
static int type##_adopt(void **objp, int fd)				\
{									\
	gs_##type *obj;							\
	int err = gs_##type##_from_fd(&obj, fd);			\
									\
	if (!err)							\
		*objp = obj;						\
	return err;							\
}									\
									\
int gs_##type##_open(gs_##type **objp, const char *name, int oflag,	\
		     unsigned int mode)					\
{									\
	void *obj;							\
	int err = lot_open(&obj, type##_adopt, name, oflag, mode,	\
			   KIND, 0);					\
									\
	if (!err)							\
		*objp = obj;						\
	return err;							\
}

LOT_OPEN(mutex, GOSYNC_LOT_MUTEX)
LOT_OPEN(rwmutex, GOSYNC_LOT_RWMUTEX)
LOT_OPEN(waitgroup, GOSYNC_LOT_WAITGROUP)
LOT_OPEN(once, GOSYNC_LOT_ONCE)
LOT_OPEN(cond, GOSYNC_LOT_COND)

static int barrier_adopt(void **objp, int fd)
{
	gs_barrier *b;
	int err = gs_barrier_from_fd(&b, fd);

	if (!err)
		*objp = b;
	return err;
}

int gs_barrier_open(gs_barrier **bp, const char *name, int oflag,
		    unsigned int mode, uint32_t parties)
{
	void *obj;
	int err;

	if ((oflag & GS_O_CREAT) &&
	    (parties < 1 || parties > BARRIER_MAX_PARTIES))
		return -EINVAL;
	err = lot_open(&obj, barrier_adopt, name, oflag, mode,
		       GOSYNC_LOT_BARRIER, parties);
	if (!err)
		*bp = obj;
	return err;
}

int gs_unlink(const char *name)
{
	struct gosync_name_unlink arg = { 0 };

	if (!name)
		return -EINVAL;
	arg.name = (uint64_t)(uintptr_t)name;
	return gs_create_object(GOSYNC_IOC_NAME_UNLINK, &arg);
}

int gs_name_stat(int fd, struct gosync_name_stat *st)
{
	return ioctl(fd, GOSYNC_IOC_NAME_STAT, st) < 0 ? -errno : 0;
}

int gs_name_chmod(int fd, unsigned int mode)
{
	uint32_t m = mode;

	return ioctl(fd, GOSYNC_IOC_NAME_CHMOD, &m) < 0 ? -errno : 0;
}

int gs_name_chown(int fd, uint32_t uid, uint32_t gid)
{
	struct gosync_name_chown arg = { .uid = uid, .gid = gid };

	return ioctl(fd, GOSYNC_IOC_NAME_CHOWN, &arg) < 0 ? -errno : 0;
}
