// SPDX-License-Identifier: GPL-2.0
/*
 * gosync: named objects, POSIX-IPC style (see include/uapi/gosync.h).
 *
 * A named object (struct gosync_named) holds the object's own file, the
 * one its constructor made, and the name's attributes (owner, group,
 * mode). It is counted: one reference for the name while it is linked,
 * one for every file opened by name ("a view"). A view is a file of its
 * own, with the access it was opened with in its f_mode, whose operations
 * check that access and then call the object's file operations on the
 * object's file; select and cancel fds reach the object through
 * gosync_name_target(). When the last reference goes, the object's file
 * is put, and the object lives on only while mappings of it do.
 *
 * Scope: the names of an IPC namespace. The module can neither pin an
 * IPC namespace without keeping it alive forever (the names would be the
 * reason it lives) nor learn when it dies, so a namespace is known by its
 * POSIX mqueue mount, ns->mq_mnt, which exists as long as the namespace
 * and is unique to it: each namespace record holds a reference to that
 * mount (mntget), so the mount, hence the key, cannot be reused by
 * another namespace while the record exists. put_ipc_ns() clears the
 * mount's superblock's s_fs_info (the namespace) when the namespace dies:
 * a record whose superblock no longer points at a namespace is dead, and
 * its names are dropped by the next operation on the table (every open,
 * unlink and listing sweeps), never found by a lookup (which compares
 * with the live caller's own mount).
 *
 * Locking: names_lock (a mutex) protects the records, the names, their
 * counts and every named object's attributes and @linked. Nothing else
 * is taken under it but allocations and the creation of files.
 */
#include <linux/anon_inodes.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/debugfs.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/ipc_namespace.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/nsproxy.h>
#include <linux/poll.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include "gosync.h"

static unsigned int max_names = 1024;
module_param(max_names, uint, 0644);
MODULE_PARM_DESC(max_names, "Names per IPC namespace (default 1024)");

#ifdef CONFIG_POSIX_MQUEUE

/* The names of one IPC namespace. */
struct gosync_nsrec {
	struct list_head node;		/* in gosync_nsrecs */
	struct vfsmount *mnt;		/* the namespace's mq_mnt, held */
	unsigned int inum;		/* for the listing */
	unsigned int nr_names;
	struct list_head names;
};

struct gosync_named {
	struct kref ref;		/* the name, and each view */
	struct file *obj;		/* the object's own file */
	u32 type, kind, elem_size;
	kuid_t uid;			/* names_lock */
	kgid_t gid;			/* names_lock */
	umode_t mode;			/* names_lock */
	bool linked;			/* names_lock */
	atomic_t opens;			/* live views */
	unsigned int inum;		/* the IPC namespace's */
	struct user_namespace *user_ns;	/* owns the IPC namespace */
	struct list_head node;		/* in its nsrec's names while linked */
	char name[];
};

static DEFINE_MUTEX(names_lock);
static LIST_HEAD(gosync_nsrecs);
static const struct file_operations view_fops;

static void named_free(struct kref *ref)
{
	struct gosync_named *n = container_of(ref, struct gosync_named, ref);

	fput(n->obj);
	put_user_ns(n->user_ns);
	kfree(n);
}

static void named_put(struct gosync_named *n)
{
	kref_put(&n->ref, named_free);
}

static bool nsrec_dead(const struct gosync_nsrec *r)
{
	return !READ_ONCE(r->mnt->mnt_sb->s_fs_info);
}

/*
 * Under names_lock: unlink every name of @r onto @dead and take @r off
 * the table; the caller drops the names' references and frees @r, with
 * its mount, once unlocked (names_release()).
 */
static void nsrec_drop(struct gosync_nsrec *r, struct list_head *dead)
{
	struct gosync_named *n, *t;

	list_for_each_entry_safe(n, t, &r->names, node) {
		n->linked = false;
		list_move(&n->node, dead);
	}
	list_del(&r->node);
}

/* Under names_lock: drop the names of dead namespaces (see the top). */
static void names_sweep(struct list_head *dead, struct list_head *mnts)
{
	struct gosync_nsrec *r, *t;

	list_for_each_entry_safe(r, t, &gosync_nsrecs, node) {
		if (!nsrec_dead(r) && r->nr_names)
			continue;
		nsrec_drop(r, dead);
		list_add(&r->node, mnts);
	}
}

/* After names_lock: put what names_sweep() and unlink collected. */
static void names_release(struct list_head *dead, struct list_head *mnts)
{
	struct gosync_named *n, *tn;
	struct gosync_nsrec *r, *tr;

	list_for_each_entry_safe(n, tn, dead, node) {
		list_del_init(&n->node);
		named_put(n);
	}
	list_for_each_entry_safe(r, tr, mnts, node) {
		mntput(r->mnt);
		kfree(r);
	}
	INIT_LIST_HEAD(mnts);	/* the lists may be used again (a retry) */
}

static struct gosync_nsrec *nsrec_find(struct vfsmount *mnt)
{
	struct gosync_nsrec *r;

	list_for_each_entry(r, &gosync_nsrecs, node)
		if (r->mnt == mnt)
			return r;
	return NULL;
}

static struct gosync_named *name_find(struct gosync_nsrec *r,
				      const char *name)
{
	struct gosync_named *n;

	if (!r)
		return NULL;
	list_for_each_entry(n, &r->names, node)
		if (!strcmp(n->name, name))
			return n;
	return NULL;
}

/* Copy and check a name: "/" then 1..GOSYNC_NAME_MAX - 1 bytes, no "/". */
static char *name_copy(u64 uname)
{
	char *name = kmalloc(GOSYNC_NAME_MAX + 1, GOSYNC_GFP);
	long len;

	if (!name)
		return ERR_PTR(-ENOMEM);
	len = strncpy_from_user(name, u64_to_user_ptr(uname),
				GOSYNC_NAME_MAX + 1);
	if (len < 0) {
		kfree(name);
		return ERR_PTR(len);
	}
	if (len > GOSYNC_NAME_MAX) {
		kfree(name);
		return ERR_PTR(-ENAMETOOLONG);
	}
	if (len < 2 || name[0] != '/' || strchr(name + 1, '/')) {
		kfree(name);
		return ERR_PTR(-EINVAL);
	}
	return name;
}

/* The caller's IPC namespace key; NULL when it has none (exiting). */
static struct ipc_namespace *caller_ipc_ns(void)
{
	return current->nsproxy ? current->nsproxy->ipc_ns : NULL;
}

/*
 * May the caller have @access (GOSYNC_NAME_READ/WRITE) on @n? As POSIX
 * mqueue's generic permission check does on its inodes: the owner bits if
 * the fsuid is the owner, else the group bits if the caller is in the
 * group, else the other bits; CAP_IPC_OWNER in the namespace's user
 * namespace overrides them, as ipcperms() does for SysV IPC.
 */
static int named_permission(struct gosync_named *n, u32 access)
{
	unsigned int want = (access & GOSYNC_NAME_READ ? 4 : 0) |
			    (access & GOSYNC_NAME_WRITE ? 2 : 0);
	unsigned int mode = n->mode;

	if (uid_eq(current_fsuid(), n->uid))
		mode >>= 6;
	else if (in_group_p(n->gid))
		mode >>= 3;
	if (!(want & ~mode & 7))
		return 0;
	if (ns_capable(n->user_ns, CAP_IPC_OWNER))
		return 0;
	return -EACCES;
}

/* May the caller change @n's attributes or unlink it? */
static bool named_owner(struct gosync_named *n)
{
	return uid_eq(current_fsuid(), n->uid) ||
	       ns_capable(n->user_ns, CAP_FOWNER);
}

/* The file name each family's constructor gives its objects. */
static const char *type_file_name(u32 type)
{
	switch (type) {
	case GOSYNC_NAME_SEM:
		return "[gosync-sem]";
	case GOSYNC_NAME_CHAN:
		return "[gosync-chan]";
	default:
		return "[gosync-lot]";
	}
}

/*
 * Make the object with its family's constructor, from the create argument
 * in userspace (@uarg's union), and take its file out of the fd table it
 * was installed in. Another thread of the caller that closed and reused
 * that fd meanwhile can only make this fail (the file found is checked)
 * or lose its own fd: it hurts only its own process.
 */
static struct file *named_create_obj(struct gosync_name_open __user *uarg,
				     u32 type)
{
	struct file *file;
	long fd;

	switch (type) {
	case GOSYNC_NAME_SEM:
		fd = gosync_sem_create(&uarg->create.sem);
		break;
	case GOSYNC_NAME_CHAN:
		fd = gosync_chan_create(&uarg->create.chan);
		break;
	default:
		fd = gosync_lot_create(&uarg->create.lot);
		break;
	}
	if (fd < 0)
		return ERR_PTR(fd);
	file = fget(fd);
	close_fd(fd);
	if (!file)
		return ERR_PTR(-EBADF);
	if (file->f_op->owner != THIS_MODULE || file->f_op == &view_fops ||
	    strcmp(file->f_path.dentry->d_name.name, type_file_name(type))) {
		fput(file);
		return ERR_PTR(-EBADF);
	}
	return file;
}

static int view_install(struct gosync_named *n, u32 access)
{
	int flags = access == GOSYNC_NAME_READ ? O_RDONLY :
		    access == GOSYNC_NAME_WRITE ? O_WRONLY : O_RDWR;
	struct file *file;
	int fd;

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0)
		return fd;
	file = anon_inode_getfile("[gosync-name]", &view_fops, n, flags);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		return PTR_ERR(file);
	}
	kref_get(&n->ref);
	atomic_inc(&n->opens);
	fd_install(fd, file);
	return fd;
}

static int open_check_arg(const struct gosync_name_open *arg)
{
	if (arg->flags & ~(GOSYNC_NAME_CREAT | GOSYNC_NAME_EXCL))
		return -EINVAL;
	if (!arg->access ||
	    arg->access & ~(GOSYNC_NAME_READ | GOSYNC_NAME_WRITE))
		return -EINVAL;
	if (arg->mode & ~0777U)
		return -EINVAL;
	if (arg->type < GOSYNC_NAME_SEM || arg->type > GOSYNC_NAME_LOT)
		return -EINVAL;
	return 0;
}

/* The shape an opener must match: -ENOTTY another type, -EINVAL size. */
static int named_match(const struct gosync_named *n,
		       const struct gosync_name_open *arg)
{
	if (n->type != arg->type)
		return -ENOTTY;
	if (n->type == GOSYNC_NAME_LOT && n->kind != arg->create.lot.kind)
		return -ENOTTY;
	if (n->type == GOSYNC_NAME_CHAN &&
	    n->elem_size != arg->create.chan.elem_size)
		return -EINVAL;
	return 0;
}

static struct gosync_named *named_new(struct gosync_name_open __user *uarg,
				      const struct gosync_name_open *arg,
				      const char *name,
				      struct ipc_namespace *ns)
{
	size_t len = strlen(name) + 1;
	struct gosync_named *n;
	struct file *obj;

	n = kzalloc(struct_size(n, name, len), GOSYNC_GFP);
	if (!n)
		return ERR_PTR(-ENOMEM);
	obj = named_create_obj(uarg, arg->type);
	if (IS_ERR(obj)) {
		kfree(n);
		return ERR_CAST(obj);
	}
	kref_init(&n->ref);
	n->obj = obj;
	n->type = arg->type;
	n->kind = arg->type == GOSYNC_NAME_LOT ? arg->create.lot.kind : 0;
	n->elem_size = arg->type == GOSYNC_NAME_CHAN ?
		       arg->create.chan.elem_size : 0;
	n->uid = current_fsuid();
	n->gid = current_fsgid();
	n->mode = arg->mode & ~current_umask() & 0777;
	n->inum = ns->ns.inum;
	n->user_ns = get_user_ns(ns->user_ns);
	atomic_set(&n->opens, 0);
	memcpy(n->name, name, len);
	return n;
}

/*
 * Open or create. Nothing touches userspace under names_lock (a fault
 * there could be held up by its owner, a FUSE daemon say, and with it
 * every namespace's names): a creation makes its object first, unlocked,
 * then looks again, and drops its object if the name appeared meanwhile.
 */
long gosync_name_open(struct gosync_name_open __user *uarg)
{
	struct gosync_nsrec *r, *newrec = NULL;
	struct gosync_named *n, *newn = NULL;
	struct gosync_name_open arg;
	struct ipc_namespace *ns;
	LIST_HEAD(dead);
	LIST_HEAD(mnts);
	char *name;
	long ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	ret = open_check_arg(&arg);
	if (ret)
		return ret;
	name = name_copy(arg.name);
	if (IS_ERR(name))
		return PTR_ERR(name);
	ns = caller_ipc_ns();
	if (!ns) {
		kfree(name);
		return -ESRCH;
	}
again:
	mutex_lock(&names_lock);
	names_sweep(&dead, &mnts);
	r = nsrec_find(ns->mq_mnt);
	n = name_find(r, name);
	if (n) {
		ret = -EEXIST;
		if ((arg.flags & (GOSYNC_NAME_CREAT | GOSYNC_NAME_EXCL)) ==
		    (GOSYNC_NAME_CREAT | GOSYNC_NAME_EXCL))
			goto out;
		ret = named_permission(n, arg.access);
		if (!ret)
			ret = named_match(n, &arg);
		if (!ret)
			ret = view_install(n, arg.access);
		goto out;
	}
	ret = -ENOENT;
	if (!(arg.flags & GOSYNC_NAME_CREAT))
		goto out;
	ret = -ENOSPC;
	if (r ? r->nr_names >= READ_ONCE(max_names) : !READ_ONCE(max_names))
		goto out;
	if (!newn) {
		mutex_unlock(&names_lock);
		names_release(&dead, &mnts);
		newrec = kzalloc(sizeof(*newrec), GOSYNC_GFP);
		newn = newrec ? named_new(uarg, &arg, name, ns) :
				ERR_PTR(-ENOMEM);
		if (IS_ERR(newn)) {
			kfree(newrec);
			kfree(name);
			return PTR_ERR(newn);
		}
		goto again;
	}
	/* The creator may ask for an access its own mode denies (as open). */
	ret = view_install(newn, arg.access);
	if (ret < 0)
		goto out;
	if (!r) {
		r = newrec;
		newrec = NULL;
		r->mnt = mntget(ns->mq_mnt);
		r->inum = ns->ns.inum;
		INIT_LIST_HEAD(&r->names);
		list_add(&r->node, &gosync_nsrecs);
	}
	newn->linked = true;
	list_add_tail(&newn->node, &r->names);
	r->nr_names++;
	newn = NULL;			/* the name's reference now */
out:
	mutex_unlock(&names_lock);
	names_release(&dead, &mnts);
	if (!IS_ERR_OR_NULL(newn))
		named_put(newn);	/* not linked: the name appeared */
	kfree(newrec);
	kfree(name);
	return ret;
}

long gosync_name_unlink(struct gosync_name_unlink __user *uarg)
{
	struct gosync_name_unlink arg;
	struct ipc_namespace *ns;
	struct gosync_named *n;
	struct gosync_nsrec *r;
	LIST_HEAD(dead);
	LIST_HEAD(mnts);
	char *name;
	long ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved)
		return -EINVAL;
	name = name_copy(arg.name);
	if (IS_ERR(name))
		return PTR_ERR(name);
	ns = caller_ipc_ns();
	if (!ns) {
		kfree(name);
		return -ESRCH;
	}
	mutex_lock(&names_lock);
	r = nsrec_find(ns->mq_mnt);
	n = name_find(r, name);
	ret = -ENOENT;
	if (n) {
		ret = -EPERM;
		if (named_owner(n)) {
			n->linked = false;
			list_move(&n->node, &dead);
			r->nr_names--;
			ret = 0;
		}
	}
	names_sweep(&dead, &mnts);	/* frees @r too if it is now empty */
	mutex_unlock(&names_lock);
	names_release(&dead, &mnts);
	kfree(name);
	return ret;
}

/*
 * The object behind @file if it is opened by name and has @need
 * (FMODE_READ/FMODE_WRITE), ERR_PTR(-EBADF) if it lacks it; @file
 * itself if it is not opened by name. The object's file lives as long as
 * @file.
 */
struct file *gosync_name_target(struct file *file, fmode_t need)
{
	struct gosync_named *n;

	if (file->f_op != &view_fops)
		return file;
	n = file->private_data;
	if ((file->f_mode & need) != need)
		return ERR_PTR(-EBADF);
	return n->obj;
}

/* What each ioctl on a named object needs (see the uapi header). */
static fmode_t view_ioctl_need(const struct gosync_named *n, unsigned int cmd)
{
	const fmode_t rw = FMODE_READ | FMODE_WRITE;

	switch (n->type) {
	case GOSYNC_NAME_CHAN:
		switch (cmd) {
		case GOSYNC_IOC_CHAN_RECV:
			return FMODE_READ;
		case GOSYNC_IOC_CHAN_SEND:
		case GOSYNC_IOC_CHAN_CLOSE:
			return FMODE_WRITE;
		case GOSYNC_IOC_CHAN_STATUS:
		case GOSYNC_IOC_CHAN_KICK:
			return 0;
		default:
			return rw;
		}
	case GOSYNC_NAME_SEM:
		return cmd == GOSYNC_IOC_SEM_STATUS ? FMODE_READ : rw;
	default:
		return cmd == GOSYNC_IOC_LOT_STATUS ||
		       cmd == GOSYNC_IOC_LOT_STATUS_V1 ? FMODE_READ : rw;
	}
}

static long view_stat(struct file *file, struct gosync_name_stat __user *u)
{
	struct gosync_named *n = file->private_data;
	struct user_namespace *uns = current_user_ns();
	struct gosync_name_stat st = {
		.type = n->type,
		.kind = n->kind,
		.access = (file->f_mode & FMODE_READ ? GOSYNC_NAME_READ : 0) |
			  (file->f_mode & FMODE_WRITE ? GOSYNC_NAME_WRITE : 0),
		.opens = atomic_read(&n->opens),
		.ns_id = n->inum,
	};

	mutex_lock(&names_lock);
	st.uid = from_kuid_munged(uns, n->uid);
	st.gid = from_kgid_munged(uns, n->gid);
	st.mode = n->mode;
	st.linked = n->linked;
	mutex_unlock(&names_lock);
	return copy_to_user(u, &st, sizeof(st)) ? -EFAULT : 0;
}

static long view_chmod(struct gosync_named *n, const u32 __user *u)
{
	long ret = -EPERM;
	u32 mode;

	if (get_user(mode, u))
		return -EFAULT;
	if (mode & ~0777U)
		return -EINVAL;
	mutex_lock(&names_lock);
	if (named_owner(n)) {
		n->mode = mode;
		ret = 0;
	}
	mutex_unlock(&names_lock);
	return ret;
}

static long view_chown(struct gosync_named *n,
		       const struct gosync_name_chown __user *u)
{
	struct user_namespace *uns = current_user_ns();
	struct gosync_name_chown arg;
	kuid_t uid = INVALID_UID;
	kgid_t gid = INVALID_GID;
	long ret = -EPERM;

	if (copy_from_user(&arg, u, sizeof(arg)))
		return -EFAULT;
	if (arg.uid != (u32)-1) {
		uid = make_kuid(uns, arg.uid);
		if (!uid_valid(uid))
			return -EINVAL;
	}
	if (arg.gid != (u32)-1) {
		gid = make_kgid(uns, arg.gid);
		if (!gid_valid(gid))
			return -EINVAL;
	}
	mutex_lock(&names_lock);
	if (named_owner(n)) {
		if (uid_valid(uid))
			n->uid = uid;
		if (gid_valid(gid))
			n->gid = gid;
		ret = 0;
	}
	mutex_unlock(&names_lock);
	return ret;
}

static long view_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct gosync_named *n = file->private_data;
	void __user *argp = (void __user *)arg;
	fmode_t need;

	switch (cmd) {
	case GOSYNC_IOC_NAME_STAT:
		return view_stat(file, argp);
	case GOSYNC_IOC_NAME_CHMOD:
		return view_chmod(n, argp);
	case GOSYNC_IOC_NAME_CHOWN:
		return view_chown(n, argp);
	}
	need = view_ioctl_need(n, cmd);
	if ((file->f_mode & need) != need)
		return -EBADF;
	if (!n->obj->f_op->unlocked_ioctl)
		return -ENOTTY;
	return n->obj->f_op->unlocked_ioctl(n->obj, cmd, arg);
}

static __poll_t view_poll(struct file *file, poll_table *pt)
{
	struct gosync_named *n = file->private_data;

	return vfs_poll(n->obj, pt);
}

/* The mapping is the object's: it holds the object's file, not ours. */
static int view_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct gosync_named *n = file->private_data;

	if ((file->f_mode & (FMODE_READ | FMODE_WRITE)) !=
	    (FMODE_READ | FMODE_WRITE))
		return -EACCES;
	if (!n->obj->f_op->mmap)
		return -ENODEV;
	vma_set_file(vma, n->obj);
	return n->obj->f_op->mmap(n->obj, vma);
}

static void view_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct gosync_named *n = file->private_data;

	seq_puts(m, "gosync-name:\t");
	seq_escape(m, n->name, " \t\n\\");
	seq_putc(m, '\n');
	mutex_lock(&names_lock);
	seq_printf(m, "name-linked:\t%u\n", n->linked);
	seq_printf(m, "name-mode:\t%04o\n", n->mode);
	mutex_unlock(&names_lock);
	seq_printf(m, "name-opens:\t%d\n", atomic_read(&n->opens));
	if (n->obj->f_op->show_fdinfo)
		n->obj->f_op->show_fdinfo(m, n->obj);
}

/*
 * A view's close is a close of the object for what its flush undoes (a
 * semaphore's undo, a WaitGroup share, a barrier round, a robust lock's
 * lost unpark): gosync_flush_is_last() counts views as the object's.
 */
static int view_flush(struct file *file, fl_owner_t id)
{
	struct gosync_named *n = file->private_data;

	return n->obj->f_op->flush ? n->obj->f_op->flush(n->obj, id) : 0;
}

static int view_release(struct inode *inode, struct file *file)
{
	struct gosync_named *n = file->private_data;

	atomic_dec(&n->opens);
	named_put(n);
	return 0;
}

static const struct file_operations view_fops = {
	.owner		= THIS_MODULE,
	.release	= view_release,
	.flush		= view_flush,
	.unlocked_ioctl	= view_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.poll		= view_poll,
	.mmap		= view_mmap,
	.show_fdinfo	= view_show_fdinfo,
	.llseek		= noop_llseek,
};

static const char *const type_names[] = {
	[GOSYNC_NAME_SEM] = "sem",
	[GOSYNC_NAME_CHAN] = "chan",
	[GOSYNC_NAME_LOT] = "lot",
};

/*
 * debugfs "gosync/names" (root only): every name of every live IPC
 * namespace, one a line: ns, name, type, kind, uid, gid (as the init
 * user namespace sees them), mode, open fds.
 */
static int names_show(struct seq_file *m, void *unused)
{
	struct gosync_named *n;
	struct gosync_nsrec *r;
	LIST_HEAD(dead);
	LIST_HEAD(mnts);

	mutex_lock(&names_lock);
	names_sweep(&dead, &mnts);
	seq_puts(m, "ns\tname\ttype\tkind\tuid\tgid\tmode\topens\n");
	list_for_each_entry(r, &gosync_nsrecs, node) {
		list_for_each_entry(n, &r->names, node) {
			seq_printf(m, "%u\t", r->inum);
			seq_escape(m, n->name, " \t\n\\");
			seq_printf(m, "\t%s\t%u\t%u\t%u\t%04o\t%d\n",
				   type_names[n->type], n->kind,
				   from_kuid(&init_user_ns, n->uid),
				   from_kgid(&init_user_ns, n->gid),
				   n->mode, atomic_read(&n->opens));
		}
	}
	mutex_unlock(&names_lock);
	names_release(&dead, &mnts);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(names);

int gosync_names_init(struct dentry *debugfs_dir)
{
	debugfs_create_file("names", 0400, debugfs_dir, NULL, &names_fops);
	return 0;
}

/* Every name pins the module (its object's file does): none are left. */
void gosync_names_exit(void)
{
	WARN_ON_ONCE(!list_empty(&gosync_nsrecs));
}

#else /* !CONFIG_POSIX_MQUEUE: no key for an IPC namespace, no names */

long gosync_name_open(struct gosync_name_open __user *uarg)
{
	return -EOPNOTSUPP;
}

long gosync_name_unlink(struct gosync_name_unlink __user *uarg)
{
	return -EOPNOTSUPP;
}

struct file *gosync_name_target(struct file *file, fmode_t need)
{
	return file;
}

int gosync_names_init(void)
{
	return 0;
}

void gosync_names_exit(void)
{
}

#endif /* CONFIG_POSIX_MQUEUE */
