#!/bin/bash
# Check the manual pages in man/:
#  1. mandoc -T lint -W warning on every page (the family pages and
#     gosync.7; the one-line ".so" links are checked in 2): any message
#     fails;
#  2. every function exported from include/gosync.h (GS_API) has a page
#     man/<name>.3, either a link ".so man3/<family>.3" to a family page
#     that exists, or the family page itself, and that family page names
#     it in NAME (.Nm) and gives its prototype in SYNOPSIS (.Fn or .Fo);
#     and every link names a function of the header that still exists
#     (a GS_API function, a static inline one such as gs_case_send, or a
#     function-like macro such as GS_CHAN_DECLARE).
# Prints TAP-like lines, 'ok - man: ...' or 'not ok - man: ...' followed
# by the offending names on '#' lines. Exits 0: the caller counts the
# ok/not ok lines, as for scripts/checkpatch.sh.
#
# Usage: check-man.sh [BUILD_DIR]   (BUILD_DIR is accepted for symmetry
# with the other check scripts; nothing is written)
set -uo pipefail

top=$(dirname "$(realpath "$0")")/..
cd "$top" || exit 0
header=include/gosync.h

# A link is a page whose whole content is one ".so man3/X.3" line.
is_link() {
	[ "$(wc -l <"$1")" -le 1 ] && grep -qE '^\.so man3/[A-Za-z0-9_]+\.3$' "$1"
}

pages=()
links=()
for f in man/*.[0-9]; do
	[ -e "$f" ] || continue
	if is_link "$f"; then
		links+=("$f")
	else
		pages+=("$f")
	fi
done

# 1. mandoc lint.
if ! command -v mandoc >/dev/null 2>&1; then
	echo "not ok - man: mandoc lint (mandoc is not installed:" \
		"apt-get install -y --no-install-recommends mandoc)"
elif [ "${#pages[@]}" -eq 0 ]; then
	echo "not ok - man: mandoc lint (no pages in man/)"
else
	out=$(mandoc -T lint -W warning "${pages[@]}" 2>&1)
	if [ -n "$out" ]; then
		echo "not ok - man: mandoc lint ($(grep -c . <<<"$out") messages)"
		sed 's/^/#   /' <<<"$out"
	else
		echo "ok - man: mandoc lint clean (${#pages[@]} pages)"
	fi
fi

# 2. Every exported function has a page; every link is to a live name.
# GS_API prototypes may span lines: join the header, drop comments, and
# take the identifier before the first '(' of each GS_API declaration.
exported=$(perl -0777 -ne '
	s{/\*.*?\*/}{}gs; s{//[^\n]*}{}g;
	while (/^GS_API\b([^;]*?)\b([A-Za-z_]\w*)\s*\(/mg) { print "$2\n"; }
' "$header" | sort -u)
# Names a link may also carry: static inline functions and function-like
# macros of the header (declared for users, not exported symbols).
header_names=$( {
	echo "$exported"
	perl -0777 -ne '
		s{/\*.*?\*/}{}gs;
		while (/^static\s+inline\b[^;{(]*?\b([A-Za-z_]\w*)\s*\(/mg) { print "$1\n"; }
		while (/^#\s*define\s+([A-Za-z_]\w*)\(/mg) { print "$1\n"; }
	' "$header"
} | sort -u)

# The SYNOPSIS (or NAME) section of a page, one macro line each.
section() {
	awk -v s="$2" '/^\.Sh /{ on = ($0 == ".Sh " s) ; next } on' "$1"
}

problems=()
n=0
declare -A synopsis names
for name in $exported; do
	n=$((n + 1))
	f=man/$name.3
	if [ ! -e "$f" ]; then
		problems+=("no page: $name (man/$name.3)")
		continue
	fi
	page=$f
	if is_link "$f"; then
		target=$(sed -E 's|^\.so man3/(.*)$|\1|' "$f")
		page=man/$target
		if [ ! -e "$page" ]; then
			problems+=("broken link: man/$name.3 -> man/$target (missing)")
			continue
		fi
	fi
	if [ -z "${synopsis[$page]+set}" ]; then
		synopsis[$page]=$(section "$page" SYNOPSIS)
		names[$page]=$(section "$page" NAME)
	fi
	if ! grep -qE "^\.F[no] $name( |\$)" <<<"${synopsis[$page]}"; then
		problems+=("not in the SYNOPSIS of $page: $name")
	fi
	if ! grep -qE "^\.Nm $name( ,)?\$" <<<"${names[$page]}"; then
		problems+=("not in the NAME of $page: $name")
	fi
done
for f in "${links[@]}"; do
	name=$(basename "$f" .3)
	if ! grep -qx "$name" <<<"$header_names"; then
		problems+=("stale link: $f (no $name in $header)")
	fi
	target=man/$(sed -E 's|^\.so man3/(.*)$|\1|' "$f")
	# (an exported function's broken link is reported above)
	if [ ! -e "$target" ] && ! grep -qx "$name" <<<"$exported"; then
		problems+=("broken link: $f -> $target (missing)")
	fi
done

if [ "$n" -eq 0 ]; then
	echo "not ok - man: every exported function has a page (no GS_API function found in $header)"
elif [ "${#problems[@]}" -gt 0 ]; then
	echo "not ok - man: every exported function has a page (${#problems[@]} problems, $n functions)"
	printf '#   %s\n' "${problems[@]}"
else
	echo "ok - man: every exported function has a page ($n functions, ${#links[@]} links)"
fi
exit 0
