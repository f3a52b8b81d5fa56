#!/bin/bash
# Run gosync in VMs: the selftests ('check'), the demo ('demo'), the
# benchmarks ('bench') or the structured fuzzer alone ('fuzz'), on each
# named kernel ('debug', 'stock').
#
# Usage: run-vm-tests.sh check|demo|bench|fuzz BUILD_DIR KERNEL...
#
# For 'check', the host checks (spin models, checkpatch, the TSan run of
# map_test) count first;
# then every TAP result line of every selftest binary counts, a
# binary that dies without reporting a failure counts as one failure, and
# each VM's health (clean kernel log, rmmod, power-off in time) counts as
# one more result. The last line is 'N passed, N failed, N skipped'.
#
# GOSYNC_TESTS="sem_test chan_test" runs only those selftest binaries
# (a quicker loop while working on one of them); GOSYNC_HOST_CHECKS=0
# leaves out the host checks. On the debug and kcsan kernels 'check' also
# runs the fuzzer after the selftests, framed and counted like one:
# GOSYNC_FUZZ_SECONDS (default 100 on debug; 60 on kcsan).
# GOSYNC_STRESS_SCALE (percent) sizes the selftests' stress loops
# (gs_stress() in selftests/gs_test.h): 100 by default, 25 on the debug
# kernel, whose checkers (KASAN, lockdep, kmemleak) need every path run
# rather than the stock run's iteration counts, and which runs them about
# ten times slower; the stock, asan and kcsan runs keep the full loops.
# 'fuzz' runs it for GOSYNC_FUZZ_SECONDS (default 600) with the seed
# GOSYNC_FUZZ_SEED (default: the fuzzer picks and prints one); its TAP
# line and the VM's health are counted as for 'check'.
set -uo pipefail

top=$(dirname "$(realpath "$0")")/..
mode=${1:?usage: run-vm-tests.sh check|demo|bench|fuzz BUILD_DIR KERNEL...}
build=$(realpath "${2:?}")
shift 2

# A run is a kernel ('debug', 'stock', 'kcsan') or 'asan': the stock
# kernel with the userspace built with ASan+UBSan (from BUILD_DIR/asan).
kernel_image() {
	case "$1" in
	debug|kcsan) echo "$build/kernel-$1/obj/arch/x86/boot/bzImage" ;;
	stock|asan) echo "/boot/vmlinuz-$("$top/scripts/stock-kernel.sh")" ;;
	*)	echo "unknown run '$1' (debug, stock, asan or kcsan)" >&2; return 1 ;;
	esac
}

kernel_module() {
	case "$1" in
	asan)	echo "$build/stock/kmod/gosync.ko" ;;
	*)	echo "$build/$1/kmod/gosync.ko" ;;
	esac
}

make_payload() {
	local dir=$1 user=$build
	[ "$2" = asan ] && user=$build/asan
	rm -rf "$dir"
	mkdir -p "$dir/lib"
	# The library under its soname (what the binaries need at run time),
	# the real file it points to, and the link-time name.
	cp -a "$user"/lib/libgosync.so* "$dir/lib/"
	# The tools (gsstat), on the guest's PATH: selftests run them too
	# (gsstat_test finds ../tools/gsstat from its own directory).
	mkdir -p "$dir/tools"
	find "$build/tools" -maxdepth 1 -type f -perm -u+x -exec cp {} "$dir/tools/" \; 2>/dev/null
	# The fuzzer: alone in 'fuzz', after the selftests of the debug and
	# kcsan runs of 'check'; its settings go in fuzz.conf.
	local fuzz_s=
	case "$mode:$2" in
	fuzz:*)		fuzz_s=${GOSYNC_FUZZ_SECONDS:-600} ;;
	check:debug)	fuzz_s=${GOSYNC_FUZZ_SECONDS:-100} ;;
	check:kcsan)	fuzz_s=60 ;;
	esac
	if [ -n "$fuzz_s" ]; then
		mkdir -p "$dir/fuzz"
		cp "$build/fuzz/gosync_fuzz" "$dir/fuzz/"
		printf 'seconds=%s\nseed=%s\n' "$fuzz_s" "${GOSYNC_FUZZ_SEED:-}" > "$dir/fuzz/fuzz.conf"
	fi
	cat > "$dir/fuzz.sh" <<'FUZZ'
# Sourced by 'run': the fuzzer, framed like a selftest binary.
if [ -x /gosync/fuzz/gosync_fuzz ]; then
	. /gosync/fuzz/fuzz.conf
	echo "GOSYNC-TEST-BEGIN gosync_fuzz"
	t0=$(uptime)
	/gosync/fuzz/gosync_fuzz -t "$seconds" ${seed:+-s "$seed"}
	trc=$?
	echo "GOSYNC-TEST-TIME gosync_fuzz $(( $(uptime) - t0 ))s"
	echo "GOSYNC-TEST-END gosync_fuzz rc=$trc"
	[ $trc = 0 ] || rc=1
fi
FUZZ
	case "$mode" in
	check)
		local scale=100
		[ "$2" = debug ] && scale=25
		printf 'export GOSYNC_STRESS_SCALE=%s\n' \
			"${GOSYNC_STRESS_SCALE:-$scale}" > "$dir/stress.conf"
		mkdir -p "$dir/selftests"
		if [ -n "${GOSYNC_TESTS:-}" ]; then
			for t in $GOSYNC_TESTS; do
				[ "$t" = consumer_test ] ||
					cp "$user/selftests/$t" "$dir/selftests/"
			done
		else
			cp "$user"/selftests/*_test "$dir/selftests/"
		fi
		# The out-of-tree consumers built against the installed copy by
		# the host checks (scripts/install-check.sh), as one test.
		# (Not with the asan run's library: it needs the ASan runtime first.)
		if [[ " ${GOSYNC_TESTS:-consumer_test} " == *" consumer_test "* ]] &&
		   [ "$2" != asan ] && [ -x "$build/consumer/hello_chan" ]; then
			mkdir -p "$dir/consumer"
			cp "$build"/consumer/hello_chan* "$dir/consumer/"
			cat > "$dir/selftests/consumer_test" <<'CONSUMER'
#!/bin/sh
# The consumers of the installed libgosync (no rpath: as installed).
echo "1..2"
n=0
for c in hello_chan hello_chan_static; do
	n=$((n + 1))
	if LD_LIBRARY_PATH=/gosync/lib /gosync/consumer/$c; then
		echo "ok $n consumer $c"
	else
		echo "not ok $n consumer $c"
	fi
done
CONSUMER
			chmod +x "$dir/selftests/consumer_test"
		fi
		cat > "$dir/run" <<'RUN'
#!/bin/sh
# Each selftest binary, its output framed so the host can count it.
# (Sanitizer settings matter only to the asan run's binaries.)
export UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1
export PATH=/gosync/tools:$PATH
. /gosync/stress.conf
echo "GOSYNC_STRESS_SCALE=$GOSYNC_STRESS_SCALE"
rc=0
uptime() { read -r up _ < /proc/uptime; echo "${up%.*}"; }
for t in /gosync/selftests/*_test; do
	name=${t##*/}
	echo "GOSYNC-TEST-BEGIN $name"
	t0=$(uptime)
	# Each test's seconds after its result line (from the harness's
	# "RUN" line to its "ok"/"not ok" line; stdout is line-buffered).
	{ "$t"; echo $? > /tmp/trc; } | awk -v bin="$name" '
	function now(	l) { getline l < "/proc/uptime"; close("/proc/uptime"); split(l, a, " "); return a[1] }
	{ print; fflush() }
	/^#  RUN / { t = now() }
	/^(not )?ok [0-9]+ / && t != "" {
		n = $0; sub(/^(not )?ok [0-9]+ /, "", n); sub(/ #.*/, "", n)
		printf "GOSYNC-CASE-TIME %s %.1f %s\n", bin, now() - t, n; fflush(); t = ""
	}'
	trc=$(cat /tmp/trc)
	echo "GOSYNC-TEST-TIME $name $(( $(uptime) - t0 ))s"
	echo "GOSYNC-TEST-END $name rc=$trc"
	[ $trc = 0 ] || rc=1
done
. /gosync/fuzz.sh
exit $rc
RUN
		;;
	fuzz)
		cat > "$dir/run" <<'RUN'
#!/bin/sh
rc=0
uptime() { read -r up _ < /proc/uptime; echo "${up%.*}"; }
. /gosync/fuzz.sh
exit $rc
RUN
		;;
	demo)
		mkdir -p "$dir/examples"
		cp "$build"/examples/* "$dir/examples/"
		cat > "$dir/run" <<'RUN'
#!/bin/sh
# The demo first, then every other example; each one checks itself and
# exits non-zero if anything went wrong.
rc=0 failed=
for e in /gosync/examples/demo $(ls /gosync/examples | grep -vx demo); do
	name=${e##*/}
	echo "=== example: $name ==="
	"/gosync/examples/$name"
	erc=$?
	if [ $erc = 0 ]; then
		echo "=== example $name: ok ==="
	else
		echo "=== example $name: FAILED (exit $erc) ==="
		rc=1 failed="$failed $name"
	fi
done
if [ $rc = 0 ]; then
	echo "=== examples: all ok ==="
else
	echo "=== examples failed:$failed ==="
fi
exit $rc
RUN
		;;
	bench)
		# The programs only (not the results of an earlier run).
		mkdir -p "$dir/bench"
		find "$build/bench" -maxdepth 1 -type f -perm -u+x \
			-exec cp {} "$dir/bench/" \;
		cat > "$dir/run" <<'RUN'
#!/bin/sh
# Every benchmark in one boot: the IPC comparison (ipc_bench) and its Go
# peer (chanbench) first, then the rest. Each appends CSV rows to
# $GOSYNC_BENCH_CSV; they are printed between marker lines at the end,
# for the host to extract from the console log.
export GOSYNC_BENCH_CSV=/tmp/results.csv
: > "$GOSYNC_BENCH_CSV"
rc=0 failed=
uptime() { read -r up _ < /proc/uptime; echo "${up%.*}"; }
t_all=$(uptime)
for name in ipc_bench chanbench $(ls /gosync/bench | grep -vx -e ipc_bench -e chanbench); do
	[ -x "/gosync/bench/$name" ] || continue
	echo "=== bench: $name ==="
	t0=$(uptime)
	"/gosync/bench/$name"
	brc=$?
	echo "=== bench $name: exit $brc, $(( $(uptime) - t0 )) s ==="
	[ $brc = 0 ] || { rc=1; failed="$failed $name"; }
done
echo "=== benches: $(( $(uptime) - t_all )) s in the VM${failed:+; FAILED:$failed} ==="
echo "GOSYNC-BENCH-CSV-BEGIN"
cat "$GOSYNC_BENCH_CSV"
echo "GOSYNC-BENCH-CSV-END"
exit $rc
RUN
		;;
	esac
	chmod +x "$dir/run"
}

# Count one VM log's results: prints "passed failed skipped".
count_results() {
	awk '
	/^GOSYNC-TEST-BEGIN / { notok = 0; next }
	/^GOSYNC-TEST-END / {
		rc = $NF; sub(/^rc=/, "", rc)
		if (rc != 0 && notok == 0) {
			failed++
			print "  binary " $2 " exited " rc " without reporting a failure" > "/dev/stderr"
		}
		next
	}
	/^ok .*# SKIP/ { skipped++; next }
	/^ok / { passed++; next }
	/^not ok / { failed++; notok++; print "  " $0 > "/dev/stderr"; next }
	END { printf "%d %d %d\n", passed, failed, skipped }' "$1"
}

total_pass=0 total_fail=0 total_skip=0 status=0

# The selftests that need no /dev/gosync, natively under ThreadSanitizer
# (BUILD_DIR/tsan): their TAP lines count with the host checks. A TSan
# report fails the test it happens in (halt_on_error, exit code 66); a
# binary that exits non-zero without a 'not ok' line counts one failure.
# scripts/tsan.supp says why each suppression is a false positive.
tsan_tests() {
	local t out rc
	for t in map_test; do
		out=$(mktemp)
		TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$top/scripts/tsan.supp" \
			"$build/tsan/selftests/$t" >"$out" 2>&1
		rc=$?
		sed "s/^\(\(not \)\?ok [0-9]* \)/\1tsan $t: /" "$out"
		if [ $rc != 0 ] && ! grep -q '^not ok ' "$out"; then
			echo "not ok - tsan $t exited $rc without reporting a failure"
		fi
		rm -f "$out"
	done
}

# gsstat --dot on a two-thread cycle (a debugfs file of its format) is a
# graph Graphviz renders, with the cycle in red.
gsstat_dot_check() {
	local fake=$build/vm/gsstat-fake svg
	mkdir -p "$fake/debug/gosync" "$fake/proc"
	printf '%s\t' pid tgid comm type kind id op word since_ms forever holder >"$fake/debug/gosync/waits"
	printf 'holder_tgid\n10\t10\ta\tlot\tmutex\t1\tpark\t0\t500\t1\t11\t11\n' >>"$fake/debug/gosync/waits"
	printf '11\t11\tb\tlot\tmutex\t2\tpark\t0\t400\t1\t10\t10\n' >>"$fake/debug/gosync/waits"
	if svg=$("$build/tools/gsstat" --proc "$fake/proc" --debugfs "$fake/debug" --dot | dot -Tsvg) &&
	   [ "$(grep -c 'stroke="red"' <<<"$svg")" -ge 4 ]; then
		echo "ok - gsstat --dot renders a cycle with dot"
	else
		echo "not ok - gsstat --dot renders a cycle with dot"
	fi
}

# Host-side checks first: the protocol models, the kernel coding style,
# the ThreadSanitizer run, gsstat's graph, the exported symbols, the man
# pages, and the installation (which builds the VM's consumers).
if [ "$mode" = check ] && [ "${GOSYNC_HOST_CHECKS:-1}" = 1 ]; then
	echo "=== host checks: spin models, checkpatch, ThreadSanitizer, gsstat --dot, symbols, man pages, install ==="
	host_log=$build/vm/host-checks.log
	mkdir -p "$build/vm"
	{ "$top/spin/check.sh"; "$top/scripts/checkpatch.sh" "$build"; tsan_tests; gsstat_dot_check
	  "$top/scripts/check-symbols.sh" "$build"; "$top/scripts/check-man.sh" "$build"
	  "$top/scripts/install-check.sh" "$build"; } | tee "$host_log"
	total_pass=$(grep -c '^ok ' "$host_log")
	total_fail=$(grep -c '^not ok ' "$host_log")
fi
for k in "$@"; do
	image=$(kernel_image "$k") || exit 2
	module=$(kernel_module "$k")
	# A partial run (GOSYNC_TESTS) gets its own files, so that two of
	# them on one kernel at once do not mix their logs.
	run=$k-$mode${GOSYNC_TESTS:+-$$}
	payload=$build/vm/$run
	log=$build/vm/$run.log
	make_payload "$payload" "$k"
	echo "=== $mode on the $k kernel ($(basename "$image")) ==="
	# The debug kernel's module counts its coverage (scripts/coverage.sh).
	gcda=
	if [ "$k" = debug ] && [ "$mode" != bench ]; then
		gcda=$build/coverage/gcda${GOSYNC_TESTS:+-$$}
		rm -rf "$gcda"
	fi
	if GOSYNC_VM_GCOV_DIR=$gcda "$top/scripts/vm.sh" "$image" "$module" "$payload" "$log"; then
		vm_ok=1
	else
		vm_ok=0
		status=1
	fi
	[ -z "${GOSYNC_TESTS:-}" ] || rm -rf "$payload"
	if [ -n "$gcda" ] && [ -d "$gcda" ]; then
		echo "=== coverage of kmod/ on the $k kernel ($mode${GOSYNC_TESTS:+, only $GOSYNC_TESTS}) ==="
		"$top/scripts/coverage.sh" "$build" "$gcda" || true
	fi
	if [ "$mode" = bench ]; then
		# The CSV rows the VM printed between its markers (any console
		# line that is not a well-formed row is dropped).
		csv=$build/bench/results.csv
		mkdir -p "$build/bench"
		{
			echo "bench,variant,metric,value,unit"
			awk '/^GOSYNC-BENCH-CSV-BEGIN/ { on = 1; next }
			     /^GOSYNC-BENCH-CSV-END/ { on = 0 }
			     on && /^[^,]+,[^,]+,[^,]+,[-+0-9.eE]+,[^,]+$/' "$log"
		} > "$csv"
		echo "=== $(($(wc -l < "$csv") - 1)) result rows in $csv ==="
	fi
	[ "$mode" = check ] || [ "$mode" = fuzz ] || continue
	read -r p f s < <(count_results "$log")
	if [ "$vm_ok" = 1 ]; then
		p=$((p + 1))
	else
		f=$((f + 1))
	fi
	echo "=== $k kernel: $p passed, $f failed, $s skipped (the VM's own health counts as one) ==="
	echo "    seconds per binary:" $(awk '/^GOSYNC-TEST-TIME / { sub(/_test$/, "", $2); printf "%s %s ", $2, $3 }' "$log")
	echo "    slowest tests (seconds):" $(awk '/^GOSYNC-CASE-TIME / { print $3, $2 ":" $4 }' "$log" |
		sort -rn | head -12 | awk '{ printf "%s %s, ", $2, $1 }')
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	total_skip=$((total_skip + s))
done

if [ "$mode" = check ] || [ "$mode" = fuzz ]; then
	[ "$total_fail" = 0 ] || status=1
	echo "$total_pass passed, $total_fail failed, $total_skip skipped"
fi
exit $status
