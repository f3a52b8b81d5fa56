#!/bin/bash
# Build gosync.ko with W=1 against one kernel; any compiler warning fails.
#
# Usage: build-module.sh KDIR|stock|local DEST LOG [VAR=VALUE...]
#   KDIR   a prepared kernel build tree, or 'stock' (Debian's linux-headers
#          for linux-image-amd64) or 'local' (the running kernel's headers
#          if installed, else stock)
#   DEST   '.' for the in-place build (kmod/gosync.ko), or a directory that
#          receives a copy of the module sources and the build
#   VAR=VALUE  passed to kbuild (GOSYNC_COVERAGE=y: see kmod/Kbuild)
set -euo pipefail

top=$(dirname "$(realpath "$0")")/..
kdir=${1:?usage: build-module.sh KDIR DEST LOG}
dest=${2:?}
log=${3:?}
shift 3

case "$kdir" in
stock)	kdir=/lib/modules/$("$top/scripts/stock-kernel.sh")/build ;;
local)	kdir=/lib/modules/$(uname -r)/build
	[ -d "$kdir" ] ||
		kdir=/lib/modules/$("$top/scripts/stock-kernel.sh")/build ;;
esac
[ -d "$kdir" ] || { echo "build-module: no kernel build tree at $kdir" >&2; exit 1; }

if [ "$dest" != . ]; then
	mkdir -p "$dest/kmod" "$dest/include/uapi"
	cp "$top/Kbuild" "$dest/"
	cp "$top"/kmod/Kbuild "$top"/kmod/*.[ch] "$dest/kmod/"
	cp "$top"/include/uapi/*.h "$dest/include/uapi/"
else
	dest=$top
fi
dest=$(realpath "$dest")
mkdir -p "$(dirname "$log")"

if ! make -C "$kdir" M="$dest" W=1 "$@" modules >"$log" 2>&1; then
	cat "$log"
	echo "build-module: build against $kdir failed" >&2
	exit 1
fi
if grep -q 'warning:' "$log"; then
	grep -B2 -A6 'warning:' "$log"
	echo "build-module: W=1 warnings against $kdir (treated as errors)" >&2
	rm -f "$dest/kmod/gosync.ko"
	exit 1
fi
echo "  MODULE  $dest/kmod/gosync.ko ($kdir)"
