#!/bin/bash
# Check the installation on the host, as a distribution or a user would
# see it:
#  - 'make install DESTDIR=BUILD_DIR/stage PREFIX=/usr' lays out each
#    expected file (and nothing else); INSTALL_MODULES_LOAD=1 adds the
#    modules-load.d file;
#  - the installed gosync.h compiles alone, from an empty directory, with
#    only -I<stage>/usr/include;
#  - an out-of-tree consumer (selftests/consumer/hello_chan.c, copied out
#    of the tree) builds with nothing but pkg-config pointed at the stage,
#    shared (NEEDED libgosync.so.0) and static (pkg-config --static); both
#    run (a skip without /dev/gosync, as on a host without the module);
#    the binaries are left in BUILD_DIR/consumer/;
#  - 'make uninstall' leaves no file in the stage;
#  - if dkms is installed (and we are root), 'make dkms' builds the module
#    in a DKMS tree under BUILD_DIR/dkms (not /usr/src or /var/lib/dkms),
#    for the running kernel if its headers are installed, else for Debian's
#    stock kernel, and 'make dkms-remove' takes it out again.
# Prints TAP-like 'ok - ' / 'not ok - ' lines; exits 1 if any failed.
# Run it after 'make' (it builds nothing but what 'make install' needs).
#
# Usage: install-check.sh BUILD_DIR
set -uo pipefail

top=$(dirname "$(realpath "$0")")/..
build=$(realpath -m "${1:?usage: install-check.sh BUILD_DIR}")
stage=$build/stage
logs=$build/install-check
rc=0

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; rc=1; }
check() {	# check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

rm -rf "$stage" "$logs" "$build/consumer"
mkdir -p "$stage" "$logs" "$build/consumer"
scratch=$(mktemp -d /tmp/gosync-install-check.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

make_in_top() {	# make_in_top LOG TARGET VAR=VALUE...
	local log=$1
	shift
	make -C "$top" --no-print-directory BUILD="$build" "$@" >"$log" 2>&1 ||
		{ sed 's/^/#   /' "$log" | tail -20; return 1; }
}

# --- make install --------------------------------------------------------
if ! make_in_top "$logs/install.log" install DESTDIR="$stage" PREFIX=/usr; then
	not_ok "make install DESTDIR=$stage PREFIX=/usr"
	exit 1
fi
ok "make install DESTDIR=$stage PREFIX=/usr"

man_pages=()
for m in "$top"/man/*.3 "$top"/man/*.7; do
	[ -e "$m" ] || continue
	man_pages+=("usr/share/man/man${m##*.}/${m##*/}")
done
expected=(
	usr/lib/libgosync.so.0.1.0 usr/lib/libgosync.so.0 usr/lib/libgosync.so
	usr/lib/libgosync.a usr/lib/pkgconfig/gosync.pc
	usr/include/gosync.h usr/include/uapi/gosync.h
	usr/bin/gsstat usr/lib/udev/rules.d/60-gosync.rules
)
echo "# laid out in $stage (${#man_pages[@]} man pages not shown):"
(cd "$stage" && find . \( -type f -o -type l \) -printf '%P\n' | sort |
	grep -v '^usr/share/man/' | sed 's/^/#   /')

for f in "${expected[@]}"; do
	check "install lays out /$f" test -e "$stage/$f" -o -L "$stage/$f"
done
lib=$stage/usr/lib
check "install: libgosync.so.0.1.0 is the library, soname libgosync.so.0" \
	bash -c "[ -f '$lib/libgosync.so.0.1.0' ] && [ ! -L '$lib/libgosync.so.0.1.0' ] &&
		readelf -d '$lib/libgosync.so.0.1.0' | grep -q 'SONAME.*\[libgosync.so.0\]'"
check "install: libgosync.so.0 and libgosync.so are symlinks to libgosync.so.0.1.0" \
	bash -c "[ \"\$(readlink '$lib/libgosync.so.0')\" = libgosync.so.0.1.0 ] &&
		[ \"\$(readlink '$lib/libgosync.so')\" = libgosync.so.0.1.0 ]"
missing_man=0
for m in "${man_pages[@]}"; do
	[ -f "$stage/$m" ] || { echo "#   missing: /$m"; missing_man=$((missing_man + 1)); }
done
if [ ${#man_pages[@]} = 0 ]; then
	echo "ok - install lays out the man pages # SKIP no man/ pages in the tree"
else
	check "install lays out the ${#man_pages[@]} man pages of man/ in /usr/share/man" \
		test $missing_man = 0
fi
check "install: gsstat is executable" test -x "$stage/usr/bin/gsstat"
check "install: the udev rule gives /dev/gosync mode 0666" \
	grep -qx 'KERNEL=="gosync", MODE="0666"' "$stage/usr/lib/udev/rules.d/60-gosync.rules"
unexpected=$(cd "$stage" && find . \( -type f -o -type l \) -printf '%P\n' |
	grep -vxF -f <(printf '%s\n' "${expected[@]}" "${man_pages[@]}"))
check "install lays out nothing else (no modules-load.d without INSTALL_MODULES_LOAD)" \
	test -z "$unexpected"
[ -z "$unexpected" ] || sed 's/^/#   unexpected: /' <<<"$unexpected"

if make_in_top "$logs/install-modules-load.log" install DESTDIR="$stage" PREFIX=/usr \
		INSTALL_MODULES_LOAD=1 &&
   grep -qx gosync "$stage/etc/modules-load.d/gosync.conf"; then
	ok "install INSTALL_MODULES_LOAD=1 adds /etc/modules-load.d/gosync.conf (gosync)"
else
	not_ok "install INSTALL_MODULES_LOAD=1 adds /etc/modules-load.d/gosync.conf (gosync)"
fi

# --- the installed header and pkg-config --------------------------------
mkdir -p "$scratch/empty"
printf '#include <gosync.h>\nint main(void) { return gs_init(); }\n' > "$scratch/empty/h.c"
if out=$(cd "$scratch/empty" && cc -std=c11 -Wall -Wextra -Werror -I"$stage/usr/include" \
		-fsyntax-only h.c 2>&1); then
	ok "installed gosync.h compiles alone, with only -I/usr/include of the stage"
else
	sed 's/^/#   /' <<<"$out"
	not_ok "installed gosync.h compiles alone, with only -I/usr/include of the stage"
fi
rm -f "$scratch/empty/h.c"

export PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_PATH=$stage/usr/lib/pkgconfig
check "pkg-config gosync: version 0.1.0" \
	test "$(pkg-config --modversion gosync 2>&1)" = 0.1.0
libs=$(pkg-config --libs gosync 2>&1)
slibs=$(pkg-config --static --libs gosync 2>&1)
echo "#   pkg-config --cflags --libs gosync: $(pkg-config --cflags gosync) $libs"
echo "#   pkg-config --static --libs gosync: $slibs"
check "pkg-config gosync: -lgosync; --static adds -lurcu-cds -lurcu-bp -pthread" \
	bash -c "grep -qw -- -lgosync <<<'$libs' && ! grep -q urcu <<<'$libs' &&
		grep -qw -- -lurcu-cds <<<'$slibs' && grep -qw -- -lurcu-bp <<<'$slibs' &&
		grep -qw -- -pthread <<<'$slibs'"

# --- the out-of-tree consumer -------------------------------------------
cp "$top/selftests/consumer/hello_chan.c" "$scratch/"
run_consumer() {	# run_consumer NAME BINARY [ENV...]
	local name=$1 bin=$2 out erc
	shift 2
	out=$(env "$@" "$bin" 2>&1)
	erc=$?
	sed 's/^/#   /' <<<"$out"
	case $erc in
	0)	ok "$name runs" ;;
	77)	ok "$name runs # SKIP no /dev/gosync (the module is not loaded)" ;;
	*)	not_ok "$name runs (exit $erc)" ;;
	esac
}

if (cd "$scratch" && cc -Wall -Wextra -Werror -o hello_chan hello_chan.c \
		$(pkg-config --cflags --libs gosync)) >"$logs/consumer.log" 2>&1; then
	ok "consumer builds with pkg-config --cflags --libs gosync"
	cp "$scratch/hello_chan" "$build/consumer/"
	needed=$(readelf -d "$build/consumer/hello_chan" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr "\n" " " | sed "s/ $//")
	check "consumer: NEEDED libgosync.so.0 ($needed)" grep -qw 'libgosync\.so\.0' <<<"$needed"
	run_consumer "consumer (shared, LD_LIBRARY_PATH=/usr/lib of the stage)" \
		"$build/consumer/hello_chan" LD_LIBRARY_PATH="$stage/usr/lib"
else
	sed 's/^/#   /' "$logs/consumer.log"
	not_ok "consumer builds with pkg-config --cflags --libs gosync"
fi

if (cd "$scratch" && cc -static -Wall -Wextra -Werror -o hello_chan_static hello_chan.c \
		$(pkg-config --static --cflags --libs gosync)) >"$logs/consumer-static.log" 2>&1; then
	ok "consumer builds static with pkg-config --static --cflags --libs gosync"
	cp "$scratch/hello_chan_static" "$build/consumer/"
	check "consumer (static): no shared library needed" \
		bash -c "! readelf -d '$build/consumer/hello_chan_static' 2>/dev/null | grep -q NEEDED"
	run_consumer "consumer (static)" "$build/consumer/hello_chan_static"
else
	sed 's/^/#   /' "$logs/consumer-static.log"
	not_ok "consumer builds static with pkg-config --static --cflags --libs gosync"
fi
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH

# --- make uninstall -------------------------------------------------------
if make_in_top "$logs/uninstall.log" uninstall DESTDIR="$stage" PREFIX=/usr; then
	ok "make uninstall DESTDIR=$stage PREFIX=/usr"
else
	not_ok "make uninstall DESTDIR=$stage PREFIX=/usr"
fi
left=$(cd "$stage" && find . \( -type f -o -type l \) -printf '%P\n')
check "uninstall leaves no file in the stage" test -z "$left"
[ -z "$left" ] || sed 's/^/#   left: /' <<<"$left"

# --- DKMS -----------------------------------------------------------------
if ! command -v dkms >/dev/null; then
	echo "ok - dkms build # SKIP dkms is not installed"
elif [ "$(id -u)" != 0 ]; then
	echo "ok - dkms build # SKIP not root (dkms wants root)"
else
	kver=$(uname -r)
	[ -d "/lib/modules/$kver/build" ] || kver=$("$top/scripts/stock-kernel.sh")
	dk=$build/dkms
	rm -rf "$dk"
	mkdir -p "$dk/src" "$dk/tree"
	dkms_vars=(DKMS_SRC="$dk/src" DKMS_FLAGS="--dkmstree $dk/tree")
	ko=$dk/tree/gosync/0.1.0/$kver/$(uname -m)/module/gosync.ko
	if make_in_top "$logs/dkms.log" dkms "${dkms_vars[@]}" DKMS_KERNEL="$kver" &&
	   [ -f "$ko" ] && modinfo -F vermagic "$ko" | grep -q "^$kver "; then
		ok "dkms build (make dkms, kernel $kver)"
	else
		not_ok "dkms build (make dkms, kernel $kver; log: $logs/dkms.log)"
	fi
	if make_in_top "$logs/dkms-remove.log" dkms-remove "${dkms_vars[@]}" &&
	   [ ! -e "$dk/src/gosync-0.1.0" ] && [ ! -e "$dk/tree/gosync" ]; then
		ok "make dkms-remove"
	else
		not_ok "make dkms-remove (log: $logs/dkms-remove.log)"
	fi
fi
exit $rc
