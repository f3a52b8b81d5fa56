#!/bin/bash
# Build one of gosync's test kernels from Debian's linux-source-6.12:
# tinyconfig, then scripts/kernel-base.config, then the flavour's own
# fragment scripts/kernel-FLAVOUR.config ('debug': KASAN, lockdep,
# coverage, fault injection, kmemleak; 'kcsan': the data-race detector).
#
# A kernel is keyed by the hash of its fragments, this script and the
# source tarball, and kept in a machine-wide cache
# ($GOSYNC_KERNEL_CACHE, default /var/cache/gosync, when writable), so a
# machine never builds the same kernel twice, whatever clone asks;
# BUILD_DIR/kernel-FLAVOUR is a link to it (or the kernel itself when
# there is no writable cache). Prints nothing on a cache hit.
#
# Usage: build-kernel.sh FLAVOUR BUILD_DIR
set -euo pipefail

flavour=${1:?usage: $0 debug|kcsan BUILD_DIR}
build=$(realpath -m "${2:?usage: $0 FLAVOUR BUILD_DIR}")
here=$(dirname "$(realpath "$0")")
fragments=("$here/kernel-base.config" "$here/kernel-$flavour.config")
[ -f "${fragments[1]}" ] || { echo "build-kernel: no ${fragments[1]}" >&2; exit 1; }
tarball=$(ls /usr/src/linux-source-6.12.tar.xz)
key=$(cat "${fragments[@]}" "$0" | sha256sum | cut -c1-16)-$(stat -c %s-%Y "$tarball" | sha256sum | cut -c1-8)
link=$build/kernel-$flavour

cache=${GOSYNC_KERNEL_CACHE:-/var/cache/gosync}
if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
	out=$cache/kernel-$flavour-$key
else
	out=$link
fi

ready() { [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$key" ] &&
	  [ -f "$out/obj/arch/x86/boot/bzImage" ]; }
point_link() {
	[ "$out" = "$link" ] && return
	mkdir -p "$build"
	[ -L "$link" ] && [ "$(readlink "$link")" = "$out" ] && return
	rm -rf "$link"
	ln -s "$out" "$link"
}

# One builder per kernel at a time: a second clone asking for the same
# kernel waits for the first one's build instead of clobbering it.
mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
if ready; then
	point_link
	exit 0
fi

echo "$flavour kernel: building from $tarball into $out"
start=$(date +%s)
rm -rf "$out"
mkdir -p "$out/obj"
tar -C "$out" -xf "$tarball"
src=$out/linux-source-6.12
make -s -C "$src" O="$out/obj" tinyconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$out/obj" \
	"$out/obj/.config" "${fragments[@]}" >/dev/null
make -s -C "$src" O="$out/obj" olddefconfig

# Every option the fragments ask for must have survived olddefconfig,
# or the kernel would silently lack a feature the tests rely on.
missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=n) opt=${line%%=*}
		if grep -q "^$opt=" "$out/obj/.config"; then
			echo "$flavour kernel: $opt should be off"; missing=1
		fi ;;
	CONFIG_*) if ! grep -qx "$line" "$out/obj/.config"; then
			echo "$flavour kernel: $line did not survive olddefconfig"
			missing=1
		fi ;;
	esac
done < <(cat "${fragments[@]}")
[ "$missing" = 0 ] || exit 1

make -s -C "$src" O="$out/obj" -j"$(nproc)" all
echo "$key" > "$out/stamp"
point_link
echo "$flavour kernel: ready in $(( $(date +%s) - start )) s"
