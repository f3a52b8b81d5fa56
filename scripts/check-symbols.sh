#!/bin/bash
# Check that lib/libgosync.map (the linker version script) lists exactly
# the GS_API functions of include/gosync.h, and, given BUILD_DIR, that the
# built libgosync.so.0.1.0 exports exactly those, versioned, under the
# soname libgosync.so.0. Prints TAP-like 'ok - ' / 'not ok - ' lines.
#
# Usage: check-symbols.sh [BUILD_DIR]
set -uo pipefail

top=$(dirname "$(realpath "$0")")/..
build=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0

# The header: each declaration starting with 'GS_API' (the #define aside),
# joined up to its first '('; the name is the identifier before it.
awk '
/^#/ { next }
/^GS_API[ \t]/ { decl = ""; on = 1 }
on { decl = decl " " $0
	if (index(decl, "(")) {
		sub(/\(.*/, "", decl)
		n = split(decl, w, /[^A-Za-z0-9_]+/)
		while (n > 0 && w[n] == "") n--
		print w[n]
		on = 0
	}
}' "$top/include/gosync.h" | sort > "$tmp/header"

# The map: the names in every 'global:' part, comments removed.
sed -e 's|/\*.*\*/||g' -e '/\/\*/,/\*\//d' "$top/lib/libgosync.map" | awk '
/global:/ { on = 1; sub(/.*global:/, "") }
/local:/ { on = 0 }
on { gsub(/[{};]/, " "); for (i = 1; i <= NF; i++) if ($i ~ /^[A-Za-z_][A-Za-z0-9_]*$/) print $i }
' | sort > "$tmp/map"

if [ ! -s "$tmp/header" ]; then
	echo "not ok - symbols: no GS_API function found in include/gosync.h"
	exit 1
fi
dups=$(uniq -d "$tmp/map")
uniq "$tmp/map" > "$tmp/mapu" && mv "$tmp/mapu" "$tmp/map"
missing=$(comm -23 "$tmp/header" "$tmp/map")
extra=$(comm -13 "$tmp/header" "$tmp/map")
if [ -z "$missing$extra$dups" ]; then
	echo "ok - symbols: lib/libgosync.map lists the $(wc -l < "$tmp/header") GS_API functions of gosync.h"
else
	echo "not ok - symbols: lib/libgosync.map and the GS_API functions of gosync.h differ"
	[ -n "$missing" ] && sed 's/^/#   missing from the map: /' <<<"$missing"
	[ -n "$extra" ] && sed 's/^/#   in the map, not GS_API in gosync.h: /' <<<"$extra"
	[ -n "$dups" ] && sed 's/^/#   listed twice in the map: /' <<<"$dups"
	rc=1
fi

[ -n "$build" ] || exit $rc
so=$build/lib/libgosync.so.0.1.0
if [ ! -f "$so" ]; then
	echo "not ok - symbols: no $so (run make first)"
	exit 1
fi
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
# Exported functions and their versions ('name@@GOSYNC_0.1').
nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }' | sort > "$tmp/dyn"
unversioned=$(grep -v '@@GOSYNC_' "$tmp/dyn")
sed 's/@.*//' "$tmp/dyn" > "$tmp/dynnames"
if [ "$soname" = libgosync.so.0 ] && [ -z "$unversioned" ] &&
   cmp -s "$tmp/dynnames" "$tmp/map"; then
	echo "ok - symbols: $so (soname $soname) exports exactly the map's $(wc -l < "$tmp/dyn") functions, versioned"
else
	echo "not ok - symbols: $so exports something other than the map"
	[ "$soname" = libgosync.so.0 ] || echo "#   soname '$soname', expected libgosync.so.0"
	[ -n "$unversioned" ] && sed 's/^/#   unversioned: /' <<<"$unversioned"
	comm -23 "$tmp/map" "$tmp/dynnames" | sed 's/^/#   in the map, not exported (not defined?): /'
	comm -13 "$tmp/map" "$tmp/dynnames" | sed 's/^/#   exported, not in the map: /'
	rc=1
fi
exit $rc
