#!/bin/bash
# Summarise one 'make bench' run from its CSV, and plot it.
#
# Usage: bench/report.sh RESULTS_CSV [PNG]
#
# Prints a Markdown table setting gosync beside the best C peer and Go for
# each measurement (ratios within this one run only), and, if gnuplot is
# installed and a PNG path is given, draws throughput per mechanism (log
# scale) and ping-pong round trips into it. Exit status non-zero only if
# the CSV is missing or empty.
set -euo pipefail

csv=${1:?usage: report.sh RESULTS_CSV [PNG]}
png=${2:-}
if [ ! -s "$csv" ] || [ "$(wc -l < "$csv")" -lt 2 ]; then
	echo "report: no results in $csv" >&2
	exit 1
fi

echo
echo "## Summary: gosync against the best C peer and Go (this run only)"
echo
awk -F, '
NR == 1 { next }
{ v[$1 "|" $2 "|" $3] = $4; seen[$1] = 1; mech[$1 "|" $2] = 1 }
function is_gs(m) { return m ~ /^gosync/ }
function is_go(m) { return m ~ /^go / }
# best non-gosync, non-Go variant of bench b for metric k: lowest if low
function best(b, k, low,   key, n, m, x, r) {
	r = ""; bx = ""
	for (key in mech) {
		split(key, n, "|")
		if (n[1] != b) continue
		m = n[2]
		if (is_gs(m) || is_go(m) || !((b "|" m "|" k) in v)) continue
		x = v[b "|" m "|" k] + 0
		if (r == "" || (low ? x < bx : x > bx)) { r = m; bx = x }
	}
	bestval = bx
	return r
}
function row(what, gsname, b, k, low, goname, unit,   p, g, o) {
	if (!((b "|" gsname "|" k) in v)) return
	g = v[b "|" gsname "|" k] + 0
	p = best(b, k, low)
	o = ((b "|" goname "|" k) in v) ? v[b "|" goname "|" k] + 0 : ""
	printf "| %-26s | %-22s | %12.4g %-5s | %-24s | %12s | %11s | %12s | %11s |\n",
		what, gsname, g, unit, p == "" ? "-" : p,
		p == "" ? "-" : sprintf("%.4g", bestval),
		p == "" ? "-" : sprintf("%.3fx", low ? bestval / g : g / bestval),
		o == "" ? "-" : sprintf("%.4g", o),
		o == "" ? "-" : sprintf("%.3fx", low ? o / g : g / o)
}
END {
	printf "| %-26s | %-22s | %18s | %-24s | %12s | %11s | %12s | %11s |\n",
		"measurement", "gosync", "value", "best C peer", "its value",
		"gosync rel.", "Go", "gosync / Go"
	print "|----------------------------|------------------------|--------------------|--------------------------|--------------|-------------|--------------|-------------|"
	row("ping-pong p50", "gosync chan unbuffered", "pingpong", "p50", 1, "go chan unbuffered", "us")
	row("ping-pong p99", "gosync chan unbuffered", "pingpong", "p99", 1, "go chan unbuffered", "us")
	row("ping-pong p50", "gosync chan cap 1", "pingpong", "p50", 1, "go chan cap 1", "us")
	row("ping-pong p50", "gosync semaphore pair", "pingpong", "p50", 1, "go chan unbuffered", "us")
	row("ping-pong 1 CPU p50", "gosync chan unbuffered", "pingpong-1cpu", "p50", 1, "", "us")
	row("ping-pong 1 CPU p50", "gosync chan cap 1", "pingpong-1cpu", "p50", 1, "", "us")
	row("ping-pong 1 CPU p50", "gosync semaphore pair", "pingpong-1cpu", "p50", 1, "", "us")
	row("1P1C 8 B", "gosync chan", "throughput-1p1c-8B", "rate", 0, "go chan", "msg/s")
	row("1P1C 1 KiB", "gosync chan", "throughput-1p1c-1024B", "rate", 0, "go chan", "msg/s")
	row("4P4C 8 B", "gosync chan", "throughput-4p4c-8B", "rate", 0, "go chan", "msg/s")
	row("select over 2", "gosync gs_select", "select-2", "per_op", 1, "go select stmt", "ns")
	row("select over 8", "gosync gs_select", "select-8", "per_op", 1, "go select stmt", "ns")
	row("select over 64", "gosync gs_select", "select-64", "per_op", 1, "go reflect.Select", "ns")
	print ""
	print "gosync rel.: how many times better (> 1) or worse (< 1) gosync is than the best"
	print "C peer; gosync / Go likewise against Go (goroutines in one process: the semantic"
	print "peer, not an IPC mechanism). Select has no C peer here; Go over 64 is reflect.Select."
	print "Ping-pong 1 CPU: both processes pinned to CPU 0 (no cross-CPU wake-ups)."
}' "$csv"

[ -n "$png" ] || exit 0
if ! command -v gnuplot >/dev/null; then
	echo "report: gnuplot not installed (Debian: gnuplot-nox); no plot" >&2
	exit 0
fi

tmp=$(mktemp -d /tmp/gosync-report.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# Throughput: one row per mechanism, one column per configuration.
awk -F, 'NR > 1 && $1 ~ /^throughput-/ && $3 == "rate" {
	if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
	v[$2 "|" $1] = $4
}
END {
	split("throughput-1p1c-8B throughput-1p1c-1024B throughput-4p4c-8B", b, " ")
	for (i = 1; i <= n; i++) {
		printf "\"%s\"", order[i]
		for (j = 1; j <= 3; j++)
			printf " %s", ((order[i] "|" b[j]) in v) ? v[order[i] "|" b[j]] : "-"
		printf "\n"
	}
}' "$csv" > "$tmp/throughput.dat"
awk -F, 'NR > 1 && ($1 == "pingpong" || $1 == "pingpong-1cpu") {
	if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
	v[$1 "|" $2 "|" $3] = $4
}
function f(k) { return (k in v) ? v[k] : "-" }
END {
	for (i = 1; i <= n; i++)
		printf "\"%s\" %s %s %s\n", order[i], f("pingpong|" order[i] "|p50"),
			f("pingpong|" order[i] "|p99"), f("pingpong-1cpu|" order[i] "|p50")
}' "$csv" > "$tmp/pingpong.dat"

gnuplot <<EOF
set terminal pngcairo size 1400,1100 font "sans,10"
set output "$png"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set grid ytics
set key top right
set xtics rotate by -25 nomirror
set multiplot layout 2,1 title "gosync benchmarks: one run, one VM (compare ratios only)"
set title "Throughput, messages/s (log scale; higher is better)"
set logscale y
set ylabel "messages/s"
plot "$tmp/throughput.dat" using 2:xtic(1) title "1P1C 8 B", \
     "" using 3 title "1P1C 1 KiB", \
     "" using 4 title "4P4C 8 B"
set title "Ping-pong round trip between two processes (Go: goroutines), microseconds (log scale; lower is better)"
set ylabel "us"
plot "$tmp/pingpong.dat" using 2:xtic(1) title "p50", "" using 3 title "p99", \
     "" using 4 title "p50, both on CPU 0"
unset multiplot
EOF
echo "report: plot in $png"
