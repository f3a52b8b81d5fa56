#!/bin/bash
# Model-check every Promela model in spin/ (safety: assertions and invalid
# end states, exhaustive search). Prints one TAP-like line per model:
# 'ok - spin NAME' or 'not ok - spin NAME', and exits non-zero on failure.
# With arguments, only the models named (check.sh cond mutex). The longest
# is cond.pml (the ticketed Cond): about 1 min CPU and 0.8 GB.
set -uo pipefail

here=$(dirname "$(realpath "$0")")
work=$(mktemp -d /tmp/gosync-spin.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
models=("$here"/*.pml)
if [ $# -gt 0 ]; then
	models=()
	for name in "$@"; do models+=("$here/${name%.pml}.pml"); done
fi
for model in "${models[@]}"; do
	name=$(basename "$model" .pml)
	mkdir -p "$work/$name"
	# Every model, for those that #include another (mutex_death.pml).
	cp "$here"/*.pml "$work/$name/"
	if (cd "$work/$name" && spin -a "$name.pml" >spin.log 2>&1 &&
	    cc -O2 -DSAFETY -DCOLLAPSE -o "$name-verifier" pan.c >>spin.log 2>&1 &&
	    "./$name-verifier" -m100000 >pan.log 2>&1 &&
	    grep -q 'errors: 0' pan.log && ! grep -q 'error:\|violated' pan.log); then
		echo "ok - spin $name ($(grep -o '[0-9.e+]* states, stored' "$work/$name/pan.log"), $(grep -o 'elapsed time [0-9.e+]*' "$work/$name/pan.log") s)"
	else
		echo "not ok - spin $name"
		cat "$work/$name/spin.log" "$work/$name/pan.log" 2>/dev/null | tail -30
		status=1
	fi
done
exit $status
