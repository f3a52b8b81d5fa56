#!/bin/bash
# Boot a kernel under QEMU on a throw-away initramfs, load gosync.ko, run a
# payload, unload the module and power off, carrying the payload's exit
# status and the kernel log out to the host.
#
# Usage: vm.sh KERNEL_IMAGE MODULE PAYLOAD_DIR LOG_FILE
#
# PAYLOAD_DIR is copied to /gosync in the guest; its executable 'run' is
# started there with the module loaded. Shared libraries needed by the ELF
# files in it are found with ldd and copied along.
#
# Environment:
#   GOSYNC_KVM=1          use KVM instead of TCG (where nested KVM works)
#   GOSYNC_VM_TIMEOUT=S   whole-VM timeout in seconds (default 1200)
#   GOSYNC_VM_MEM=MiB     guest memory (default 2048)
#   GOSYNC_VM_CPUS=N      guest vCPUs (default 2)
#
# Exit status: 0 only if the payload exited 0, rmmod succeeded, the VM
# rebooted (ending QEMU) by itself in time and the kernel log has no splat. On failure
# the reasons are printed; the full console is in LOG_FILE.
set -euo pipefail

kernel=${1:?usage: vm.sh KERNEL_IMAGE MODULE PAYLOAD_DIR LOG_FILE}
module=${2:?}
payload=$(realpath "${3:?}")
log=${4:?}
timeout_s=${GOSYNC_VM_TIMEOUT:-1200}

work=$(mktemp -d /tmp/gosync-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,etc,lib,lib64,usr/lib}

cp /bin/busybox "$root/bin/busybox"
for cmd in sh mount umount mkdir insmod rmmod lsmod dmesg reboot cat \
	   echo sleep ls grep uname ln sync awk env kill ps; do
	ln -s busybox "$root/bin/$cmd"
done
cp -a "$payload" "$root/gosync"
cp "$module" "$root/gosync/gosync.ko"

# Shared libraries of every ELF file in the payload (not those that come
# with the payload itself), at the paths the dynamic loader expects.
find "$root/gosync" -type f -perm -u+x | while read -r f; do
	file -b "$f" | grep -q '^ELF' || continue
	# A static ELF has no libraries: ldd says so and fails.
	{ ldd "$f" 2>/dev/null || true; } |
		awk '/=>/ { print $3 } /^\t\// { print $1 }'
done | sort -u | while read -r lib; do
	[ -n "$lib" ] && [ -e "$lib" ] || continue
	case "$lib" in "$payload"/*|*/build/*) continue ;; esac
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done

cat > "$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/shm /dev/mqueue /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
echo "GOSYNC-VM: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus"
rc=1
if insmod /gosync/gosync.ko; then
	cd /gosync && ./run
	rc=$?
	cd /
	if rmmod gosync; then
		echo "GOSYNC-VM-RMMOD ok"
	else
		echo "GOSYNC-VM-RMMOD failed"
		lsmod
	fi
else
	echo "GOSYNC-VM-INSMOD failed"
fi
echo "GOSYNC-VM-DMESG-BEGIN"
dmesg
echo "GOSYNC-VM-DMESG-END"
echo "GOSYNC-VM-EXIT $rc"
sync
# QEMU runs with -no-reboot: a reboot ends it, with or without ACPI.
reboot -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"

accel=(-accel tcg -cpu max)
if [ "${GOSYNC_KVM:-0}" = 1 ]; then
	accel=(-accel kvm -cpu host)
fi

mkdir -p "$(dirname "$log")"
status=0
timeout --foreground -k 10 "$timeout_s" \
	qemu-system-x86_64 "${accel[@]}" -nodefaults -no-reboot \
	-m "${GOSYNC_VM_MEM:-2048}" -smp "${GOSYNC_VM_CPUS:-2}" \
	-display none -monitor none -serial stdio \
	-kernel "$kernel" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 quiet printk.time=1 panic=-1 rdinit=/init" \
	</dev/null 2>&1 | tr -d '\r' | tee "$log" |
	awk '/^GOSYNC-VM-DMESG-BEGIN/ { hide = 1 } !hide { print; fflush() }
	     /^GOSYNC-VM-DMESG-END/ { hide = 0 }' || status=$?

fail() { echo "vm: FAIL: $*"; failed=1; }
failed=0
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
	fail "the VM did not finish within ${timeout_s}s (hang?)"
fi
grep -q '^GOSYNC-VM-EXIT 0$' "$log" ||
	fail "payload exit status: $(sed -n 's/^GOSYNC-VM-EXIT //p' "$log" | tail -1)"
grep -q '^GOSYNC-VM-RMMOD ok$' "$log" || fail "rmmod gosync did not succeed"

# Kernel splats: anywhere in kernel lines on the console or in the dmesg
# dump taken after the payload ran.
splat='BUG:|WARNING:|Oops|general protection fault|kernel BUG at|KASAN|UBSAN|'
splat+='possible circular locking|inconsistent lock state|possible recursive locking|'
splat+='DEBUG_LOCKS_WARN_ON|suspicious RCU usage|INFO: task .* blocked for more than|'
splat+='soft lockup|hard LOCKUP|list_add corruption|list_del corruption|ODEBUG|'
splat+='refcount_t:|Kernel panic|Call Trace:|sleeping function called from invalid context|'
splat+='scheduling while atomic|bad unlock balance|held when returning|leaked'
splats=$(awk '/^GOSYNC-VM-DMESG-BEGIN/ { in_dmesg = 1; next }
	      /^GOSYNC-VM-DMESG-END/ { in_dmesg = 0; next }
	      in_dmesg || /^\[ *[0-9]+\.[0-9]+\]/' "$log" | grep -E "$splat" || true)
if [ -n "$splats" ]; then
	fail "kernel log reports problems:"
	echo "$splats" | head -40
	echo "--- kernel log ---"
	awk '/^GOSYNC-VM-DMESG-BEGIN/,/^GOSYNC-VM-DMESG-END/' "$log" | tail -200
fi
if [ "$failed" = 1 ]; then
	[ -n "$splats" ] || { echo "--- console tail ($log) ---"; tail -60 "$log"; }
	exit 1
fi
exit 0
