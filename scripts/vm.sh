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
#   GOSYNC_VM_IDLE_TIMEOUT=S  the VM is hung when its console prints
#                         nothing for S seconds (default 1800: longer than
#                         the selftests' own per-test watchdog, 1200 s)
#   GOSYNC_VM_TIMEOUT=S   whole-VM watchdog in seconds (default 21600, 20
#                         times the slowest whole run seen)
#   GOSYNC_VM_MEM=MiB     guest memory (default 2048)
#   GOSYNC_VM_CPUS=N      guest vCPUs (default 2); the guest must see all
#                         of them, or the run fails without running the
#                         payload
#   GOSYNC_VM_GCOV_DIR=D  where the module's gcov counters (.gcda files)
#                         go, on a kernel with CONFIG_GCOV_KERNEL
#
# Neither watchdog is a time the run should take: a slow machine only
# makes the run longer; a watchdog that expires is a hang.
#
# Exit status: 0 only if the guest saw every vCPU, the payload exited 0,
# rmmod succeeded, the VM rebooted (ending QEMU) by itself, kmemleak
# (where the kernel has it) found no leak and the kernel log has no splat
# (KCSAN reports count when a frame is gosync's: see below). On failure the reasons are printed; the full console
# is in LOG_FILE.
set -euo pipefail

kernel=${1:?usage: vm.sh KERNEL_IMAGE MODULE PAYLOAD_DIR LOG_FILE}
module=${2:?}
payload=$(realpath "${3:?}")
log=${4:?}
timeout_s=${GOSYNC_VM_TIMEOUT:-21600}
idle_s=${GOSYNC_VM_IDLE_TIMEOUT:-1800}
cpus=${GOSYNC_VM_CPUS:-2}

work=$(mktemp -d /tmp/gosync-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,etc,lib,lib64,usr/lib}

cp /bin/busybox "$root/bin/busybox"
for cmd in sh mount umount mkdir insmod rmmod lsmod dmesg reboot cat \
	   echo sleep ls grep uname ln sync awk env kill ps find tar gzip base64; do
	ln -s busybox "$root/bin/$cmd"
done
cp -a "$payload" "$root/gosync"
cp "$module" "$root/gosync/gosync.ko"
# How many CPUs the guest must see (read by init).
echo "$cpus" > "$root/etc/gosync-vm-cpus"

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
cpus=$(grep -c ^processor /proc/cpuinfo)
want=$(cat /etc/gosync-vm-cpus)
echo "GOSYNC-VM: kernel $(uname -r), $cpus cpus"
rc=1
if [ "$cpus" -lt "$want" ]; then
	# Not the machine the tests claim to run on: no cross-CPU race
	# would be exercised. Fail without running anything.
	echo "GOSYNC-VM-CPUS failed: $cpus online, $want requested"
elif echo "gosync-vm: boot done, inserting the module" > /dev/kmsg &&
     insmod /gosync/gosync.ko; then
	# kmemleak (debug kernel): what the boot leaked is not ours.
	leaks=/sys/kernel/debug/kmemleak
	[ -w $leaks ] && echo clear > $leaks
	cd /gosync && ./run
	rc=$?
	cd /
	if [ -w $leaks ]; then
		# Every gosync object is gone once the payload's processes
		# are: what is left unreferenced, and older than kmemleak's
		# minimum age (5 s), is a leak. Scanned before rmmod, so its
		# backtraces still name the module's functions.
		sleep 6
		echo scan > $leaks
		echo scan > $leaks
		echo "GOSYNC-VM-KMEMLEAK-BEGIN"
		cat $leaks
		echo "GOSYNC-VM-KMEMLEAK-END"
	fi
	if rmmod gosync; then
		echo "GOSYNC-VM-RMMOD ok"
	else
		echo "GOSYNC-VM-RMMOD failed"
		lsmod
	fi
else
	echo "GOSYNC-VM-INSMOD failed"
fi
# The module's coverage counters (debug kernel), kept after rmmod: debugfs
# files report no size, so each is read into a file before tar sees it.
if [ -d /sys/kernel/debug/gcov ]; then
	mkdir -p /tmp/gcov
	for f in $(find /sys/kernel/debug/gcov -name '*.gcda'); do
		cat "$f" > "/tmp/gcov/${f##*/}"
	done
	echo "GOSYNC-VM-GCOV-BEGIN"
	tar -C /tmp/gcov -cf - . | gzip | base64
	echo "GOSYNC-VM-GCOV-END"
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
: > "$log"

# The console watchdog: QEMU is stopped once the log has not grown for
# idle_s seconds (the log is written line by line).
watch_console() {
	local size last=-1 quiet=0
	while sleep 5; do
		size=$(stat -c %s "$log" 2>/dev/null || echo 0)
		if [ "$size" != "$last" ]; then
			last=$size quiet=0
			continue
		fi
		quiet=$((quiet + 5))
		if [ "$quiet" -ge "$idle_s" ] && [ -s "$work/qemu.pid" ]; then
			touch "$work/idle"
			kill "$(cat "$work/qemu.pid")" 2>/dev/null
			return
		fi
	done
}
watch_console &
watcher=$!

status=0
timeout --foreground -k 10 "$timeout_s" \
	qemu-system-x86_64 "${accel[@]}" -nodefaults -no-reboot \
	-m "${GOSYNC_VM_MEM:-2048}" -smp "$cpus" \
	-display none -monitor none -serial stdio -pidfile "$work/qemu.pid" \
	-kernel "$kernel" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 quiet printk.time=1 panic=-1 rdinit=/init" \
	</dev/null 2>&1 | stdbuf -oL tr -d '\r' | tee "$log" |
	awk '/^GOSYNC-VM-(DMESG|GCOV)-BEGIN/ { hide = 1 } !hide { print; fflush() }
	     /^GOSYNC-VM-(DMESG|GCOV)-END/ { hide = 0 }' || status=$?
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true

fail() { echo "vm: FAIL: $*"; failed=1; }
failed=0
if [ -e "$work/idle" ]; then
	fail "the VM's console was silent for ${idle_s}s (GOSYNC_VM_IDLE_TIMEOUT): a hang"
elif [ "$status" = 124 ] || [ "$status" = 137 ]; then
	fail "the VM did not finish within ${timeout_s}s (GOSYNC_VM_TIMEOUT): a hang"
fi
if [ -e "$work/idle" ] || [ "$status" = 124 ] || [ "$status" = 137 ]; then
	:	# what follows would only repeat that it did not finish
elif grep -q '^GOSYNC-VM-CPUS failed' "$log"; then
	fail "the guest does not see the $cpus vCPUs it was given ($(sed -n 's/^GOSYNC-VM-CPUS failed: //p' "$log")): nothing was run"
else
	grep -q '^GOSYNC-VM-EXIT 0$' "$log" ||
		fail "payload exit status: $(sed -n 's/^GOSYNC-VM-EXIT //p' "$log" | tail -1)"
	grep -q '^GOSYNC-VM-RMMOD ok$' "$log" || fail "rmmod gosync did not succeed"
fi

if [ -n "${GOSYNC_VM_GCOV_DIR:-}" ] && grep -q '^GOSYNC-VM-GCOV-END' "$log"; then
	mkdir -p "$GOSYNC_VM_GCOV_DIR"
	awk '/^GOSYNC-VM-GCOV-BEGIN/ { on = 1; next } /^GOSYNC-VM-GCOV-END/ { on = 0 } on' "$log" |
		base64 -d | tar -xzf - -C "$GOSYNC_VM_GCOV_DIR" ||
		fail "the coverage counters did not come out of the VM"
fi

leaks=$(awk '/^GOSYNC-VM-KMEMLEAK-BEGIN/ { on = 1; next } /^GOSYNC-VM-KMEMLEAK-END/ { on = 0 } on' "$log")
if grep -q 'unreferenced object' <<<"$leaks"; then
	fail "kmemleak: $(grep -c 'unreferenced object' <<<"$leaks") leaked objects:"
	head -80 <<<"$leaks"
fi

# Kernel lines: on the console, or in the dmesg dump taken at the end.
kernel_lines() {
	awk '/^GOSYNC-VM-DMESG-BEGIN/ { in_dmesg = 1; next }
	     /^GOSYNC-VM-DMESG-END/ { in_dmesg = 0; next }
	     in_dmesg || /^\[ *[0-9]+\.[0-9]+\]/' "$log"
}

# KCSAN (kcsan kernel) reports every data race it samples, the kernel's
# own included; a report is gosync's when one of its two racing accesses
# is made by the module: the top frame of that access's stack (the line
# after "read/write ... by task/interrupt") is a '[gosync]' one. A race
# inside the kernel's hrtimer code that merely has gosync lower in its
# stack (a sleep that gosync started) is the kernel's. Those of gosync
# fail the run like any splat; the others are listed, not counted. Each
# report runs from its 'BUG: KCSAN:' line to its closing '=====' rule.
kcsan=$(kernel_lines | awk '
	/BUG: KCSAN:/ { on = 1; title = $0; sub(/.*BUG: KCSAN: /, "", title); ours = 0; top = 0; next }
	on && / (read|write).* to 0x.* by / { top = 1; next }
	on && top && /\+0x/ { if (/\[gosync\]/) ours = 1; top = 0 }
	on && /=========/ { on = 0; print (ours ? "gosync " : "kernel ") title }' | sort | uniq -c)
if [ -n "$kcsan" ]; then
	if grep -q ' gosync ' <<<"$kcsan"; then
		fail "KCSAN: data races in gosync code:"
		grep ' gosync ' <<<"$kcsan"
		kernel_lines | awk '/BUG: KCSAN:/ { on = 1 } on { print } on && /=========/ { on = 0 }' |
			grep -B2 -A30 'BUG: KCSAN' | head -150
	fi
	if grep -q ' kernel ' <<<"$kcsan"; then
		echo "vm: KCSAN races outside gosync (not counted):"
		grep ' kernel ' <<<"$kcsan" | head -20
	fi
fi

# Kernel splats: anywhere in kernel lines (KCSAN reports were judged
# above: their lines are left out here).
splat='BUG:|WARNING:|Oops|general protection fault|kernel BUG at|KASAN|UBSAN|'
splat+='possible circular locking|inconsistent lock state|possible recursive locking|'
splat+='DEBUG_LOCKS_WARN_ON|suspicious RCU usage|INFO: task .* blocked for more than|'
splat+='soft lockup|hard LOCKUP|list_add corruption|list_del corruption|ODEBUG|'
splat+='refcount_t:|Kernel panic|Call Trace:|sleeping function called from invalid context|'
splat+='scheduling while atomic|bad unlock balance|held when returning|leaked'
# What the kernel reported while it booted, before the module was
# inserted (the marker the init script writes), is the test kernel's own:
# listed, not counted. Each copy of the log (console, dmesg dump) starts
# at boot.
kernel_lines_loaded() {
	# No marker (the VM died before it): every line counts.
	if ! grep -q 'gosync-vm: boot done' "$log"; then
		[ "${1:-0}" = 1 ] || kernel_lines
		return
	fi
	kernel_lines | awk -v boot="${1:-0}" '/gosync-vm: boot done/ { loaded = 1; next }
		/^\[ *0\.0+\]/ { loaded = 0 }
		(boot && !loaded) || (!boot && loaded)'
}
boot_splats=$(kernel_lines_loaded 1 | grep -E "$splat" || true)
if [ -n "$boot_splats" ]; then
	echo "vm: the kernel reported problems at boot, before gosync was loaded (not counted):"
	echo "$boot_splats" | head -20
fi
splats=$(kernel_lines_loaded | awk '/BUG: KCSAN:/ { on = 1 } !on { print } on && /=========/ { on = 0 }' |
	grep -E "$splat" || true)
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
