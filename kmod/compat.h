/* SPDX-License-Identifier: GPL-2.0 */
/*
 * gosync: every difference between the kernel versions the module builds
 * against (Debian's 6.1 to current mainline) is handled here, and only
 * here: the other files use the current kernel's API and include this.
 * Each shim is the newer function, written with the older API, for the
 * versions that lack it.
 */
#ifndef GOSYNC_COMPAT_H
#define GOSYNC_COMPAT_H

#include <linux/hrtimer.h>
#include <linux/mm.h>
#include <linux/version.h>

/* 6.3 made vma->vm_flags read-only, to be changed through these. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline void vm_flags_clear(struct vm_area_struct *vma,
				  vm_flags_t flags)
{
	vma->vm_flags &= ~flags;
}
#endif

/*
 * 6.13 added hrtimer_setup(), which sets the callback with the clock and
 * mode; 6.15 removed hrtimer_init(), after which the callback had to be
 * assigned by hand.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 13, 0)
static inline void hrtimer_setup(struct hrtimer *timer,
				 enum hrtimer_restart (*function)(struct hrtimer *),
				 clockid_t clock_id, enum hrtimer_mode mode)
{
	hrtimer_init(timer, clock_id, mode);
	timer->function = function;
}
#endif

#endif /* GOSYNC_COMPAT_H */
