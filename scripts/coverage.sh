#!/bin/bash
# The module's line and branch coverage from one debug-kernel run: gcc's
# gcov over the counters the VM handed out (scripts/vm.sh puts them in
# GCDA_DIR) and the notes files of the debug build (BUILD_DIR/debug/kmod).
# Prints a table per source file; writes every line never executed to
# BUILD_DIR/coverage/unreached.txt ("file:line: source") and the annotated
# sources (*.gcov) to BUILD_DIR/coverage/.
#
# Usage: coverage.sh BUILD_DIR GCDA_DIR
set -euo pipefail

build=$(realpath "${1:?usage: coverage.sh BUILD_DIR GCDA_DIR}")
gcda=$(realpath "${2:?}")
obj=$build/debug/kmod
out=$build/coverage
ls "$gcda"/*.gcda >/dev/null 2>&1 || { echo "coverage: no counters in $gcda" >&2; exit 1; }
ls "$obj"/*.gcno >/dev/null 2>&1 || { echo "coverage: no notes in $obj (a coverage build?)" >&2; exit 1; }

mkdir -p "$out"
rm -f "$out"/*.gcov "$out/unreached.txt"
cp "$gcda"/*.gcda "$obj/"
# The module's own sources: those compiled with notes (not kbuild's
# generated gosync.mod.c).
sources=()
for gcno in "$obj"/*.gcno; do
	[ -f "${gcno%.gcno}.c" ] && sources+=("${gcno%.gcno}.c")
done
(cd "$out" && gcov -b -c -o "$obj" "${sources[@]}" >"$out/gcov.log" 2>&1) ||
	{ cat "$out/gcov.log"; exit 1; }

# Only the module's own sources (gcov also annotates included headers).
printf '  %-12s %8s %14s %9s %14s\n' file lines "(hit/all)" branches "(taken/all)"
total_hit=0 total_lines=0 total_taken=0 total_branches=0
for src in "${sources[@]}"; do
	f=$out/$(basename "$src").gcov
	[ -f "$f" ] || continue
	# Lines: '#####:' never executed, a count (possibly 'N*') executed,
	# '-:' no code. Branches: 'branch N taken M' / 'never executed'.
	read -r hit all taken branches < <(awk '
		/^ *#####:/ { all++; next }
		/^ *[0-9]+\*?:/ { all++; hit++; next }
		/^branch / { branches++; if ($4 ~ /^[0-9]+$/ && $4 > 0) taken++ }
		END { printf "%d %d %d %d\n", hit, all, taken, branches }' "$f")
	awk -v name="kmod/$(basename "$src")" -F: '/^ *#####:/ {
		line = $2 + 0; text = $0; sub(/^[^:]*:[^:]*:/, "", text)
		printf "%s:%d:%s\n", name, line, text }' "$f" >> "$out/unreached.txt"
	printf '  %-12s %7.1f%% %14s %8.1f%% %14s\n' "kmod/$(basename "$src")" \
		"$(awk -v a="$hit" -v b="$all" 'BEGIN { print b ? 100 * a / b : 0 }')" "($hit/$all)" \
		"$(awk -v a="$taken" -v b="$branches" 'BEGIN { print b ? 100 * a / b : 0 }')" "($taken/$branches)"
	total_hit=$((total_hit + hit)) total_lines=$((total_lines + all))
	total_taken=$((total_taken + taken)) total_branches=$((total_branches + branches))
done
printf '  %-12s %7.1f%% %14s %8.1f%% %14s\n' "kmod/ total" \
	"$(awk -v a="$total_hit" -v b="$total_lines" 'BEGIN { print b ? 100 * a / b : 0 }')" "($total_hit/$total_lines)" \
	"$(awk -v a="$total_taken" -v b="$total_branches" 'BEGIN { print b ? 100 * a / b : 0 }')" "($total_taken/$total_branches)"
echo "  unreached lines: $out/unreached.txt ($(wc -l < "$out/unreached.txt"))"
