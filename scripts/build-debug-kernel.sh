#!/bin/bash
# Build the gosync debug kernel (KASAN, lockdep, debug objects, ...) from
# Debian's linux-source-6.12, tinyconfig plus scripts/debug-kernel.config.
#
# The result is cached in $BUILD/kernel-debug; it is rebuilt only when the
# config fragment, this script or the source tarball changes. Prints nothing
# on a cache hit.
#
# Usage: build-debug-kernel.sh BUILD_DIR
set -euo pipefail

build=$(realpath -m "${1:?usage: $0 BUILD_DIR}")
here=$(dirname "$(realpath "$0")")
fragment=$here/debug-kernel.config
tarball=$(ls /usr/src/linux-source-6.12.tar.xz)
out=$build/kernel-debug
stamp_want=$(cat "$fragment" "$0" | sha256sum | cut -c1-16)-$(stat -c %s-%Y "$tarball")

if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp_want" ] &&
   [ -f "$out/obj/arch/x86/boot/bzImage" ]; then
	exit 0
fi

echo "debug kernel: building from $tarball (cached in $out afterwards)"
rm -rf "$out"
mkdir -p "$out/obj"
tar -C "$out" -xf "$tarball"
src=$out/linux-source-6.12
make -s -C "$src" O="$out/obj" tinyconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$out/obj" \
	"$out/obj/.config" "$fragment" >/dev/null
make -s -C "$src" O="$out/obj" olddefconfig

# Every option the fragment asks for must have survived olddefconfig,
# or the kernel would silently lack a debug feature the tests rely on.
missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=n) opt=${line%%=*}
		if grep -q "^$opt=" "$out/obj/.config"; then
			echo "debug kernel: $opt should be off"; missing=1
		fi ;;
	CONFIG_*) if ! grep -qx "$line" "$out/obj/.config"; then
			echo "debug kernel: $line did not survive olddefconfig"
			missing=1
		fi ;;
	esac
done < "$fragment"
[ "$missing" = 0 ] || exit 1

make -s -C "$src" O="$out/obj" -j"$(nproc)" all
echo "$stamp_want" > "$out/stamp"
echo "debug kernel: ready"
