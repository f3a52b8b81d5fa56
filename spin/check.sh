#!/bin/bash
# Model-check every Promela model in spin/ (safety: assertions and invalid
# end states, exhaustive search). Prints one TAP-like line per model:
# 'ok - spin NAME' or 'not ok - spin NAME', and exits non-zero on failure.
set -uo pipefail

here=$(dirname "$(realpath "$0")")
work=$(mktemp -d /tmp/gosync-spin.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
for model in "$here"/*.pml; do
	name=$(basename "$model" .pml)
	mkdir -p "$work/$name"
	cp "$model" "$work/$name/"
	if (cd "$work/$name" && spin -a "$name.pml" >spin.log 2>&1 &&
	    cc -O2 -DSAFETY -DCOLLAPSE -o pan pan.c >>spin.log 2>&1 &&
	    ./pan -m100000 >pan.log 2>&1 &&
	    grep -q 'errors: 0' pan.log && ! grep -q 'error:\|violated' pan.log); then
		echo "ok - spin $name ($(grep -o '[0-9.e+]* states, stored' "$work/$name/pan.log"))"
	else
		echo "not ok - spin $name"
		cat "$work/$name/spin.log" "$work/$name/pan.log" 2>/dev/null | tail -30
		status=1
	fi
done
exit $status
