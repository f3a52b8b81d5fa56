// SPDX-License-Identifier: GPL-2.0
/*
 * gosync: Go's concurrency primitives (channels, weighted semaphores) as
 * kernel objects behind the misc device /dev/gosync.
 *
 * /dev/gosync itself holds no state: each open file is only a factory for
 * object file descriptors and answers the version query. See
 * include/uapi/gosync.h for the ABI conventions.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "gosync.h"

static long gosync_ioc_version(void __user *argp)
{
	struct gosync_version v;

	if (copy_from_user(&v, argp, sizeof(v)))
		return -EFAULT;
	if (v.flags || !gosync_all_zero(v.reserved, sizeof(v.reserved)))
		return -EINVAL;
	v.abi_version = GOSYNC_ABI_VERSION;
	v.features = GOSYNC_FEATURES;
	if (copy_to_user(argp, &v, sizeof(v)))
		return -EFAULT;
	return 0;
}

static long gosync_dev_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case GOSYNC_IOC_VERSION:
		return gosync_ioc_version(argp);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations gosync_dev_fops = {
	.owner		= THIS_MODULE,
	.open		= nonseekable_open,
	.unlocked_ioctl	= gosync_dev_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/*
 * Anyone may open the device: it grants nothing but the right to create
 * new objects, whose memory is charged to the creator's memory cgroup.
 */
static struct miscdevice gosync_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "gosync",
	.fops	= &gosync_dev_fops,
	.mode	= 0666,
};

module_misc_device(gosync_misc);

MODULE_AUTHOR("The gosync developers");
MODULE_DESCRIPTION("Go channels and semaphores as kernel objects");
MODULE_LICENSE("GPL");
