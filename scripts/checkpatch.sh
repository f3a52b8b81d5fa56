#!/bin/bash
# Run the kernel's checkpatch.pl (from Debian's linux-source-6.12, extracted
# into BUILD_DIR/checkpatch, never committed) on the module and uapi header.
# Prints 'ok - checkpatch' or 'not ok - checkpatch'; errors fail, warnings
# are shown.
#
# Usage: checkpatch.sh BUILD_DIR
set -uo pipefail

top=$(dirname "$(realpath "$0")")/..
dir=$(realpath -m "${1:?usage: checkpatch.sh BUILD_DIR}")/checkpatch
if [ ! -x "$dir/scripts/checkpatch.pl" ]; then
	mkdir -p "$dir"
	tar -xJf /usr/src/linux-source-6.12.tar.xz -C "$dir" --strip-components=1 \
		linux-source-6.12/scripts/checkpatch.pl \
		linux-source-6.12/scripts/spelling.txt \
		linux-source-6.12/scripts/const_structs.checkpatch || exit 1
fi
cd "$top"
out=$("$dir/scripts/checkpatch.pl" --no-tree --strict --terse --show-types \
	-f $(git ls-files "kmod/*.[ch]" "include/uapi/*.h") 2>&1)
if grep -q ': ERROR:' <<<"$out"; then
	echo "not ok - checkpatch"
	grep -E ': (ERROR|WARNING|CHECK):' <<<"$out"
	exit 1
fi
echo "ok - checkpatch ($(grep -c ': WARNING:' <<<"$out") warnings, $(grep -c ': CHECK:' <<<"$out") checks)"
grep -E ': (WARNING|CHECK):' <<<"$out" | sed 's/^/#   /'
exit 0
