// SPDX-License-Identifier: LGPL-2.1-or-later

// chanbench measures Go's channels the way bench/ipc_bench.c measures
// gosync's, so that the two can be compared as ratios within one run:
//
//	ping-pong   two goroutines, a pair of unbuffered channels (and of
//	            cap-1 channels), 8-byte values; each round trip timed
//	throughput  1 producer / 1 consumer, cap 1024, int64 and [1024]byte
//	            values; 4 producers / 4 consumers, int64; every value
//	            checked to arrive exactly once
//	select      one consumer over N channels (cap 64) fed at random by one
//	            producer goroutine: a select statement for N = 2 and 8,
//	            reflect.Select for every N (the only way to select over 64
//	            channels without generated code)
//
// Goroutines are not processes: Go's channels never leave one address
// space, so these are the semantic peer of gosync, not an IPC mechanism.
// Markdown tables on stdout; CSV rows appended to $GOSYNC_BENCH_CSV.
// GOSYNC_BENCH_SCALE multiplies the iteration counts as in ipc_bench.
package main

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"time"
)

var (
	scale    = 1.0
	csvFile  *os.File
	failures = 0
)

func scaled(n int) int {
	v := int(float64(n) * scale)
	if v < 1 {
		v = 1
	}
	return v
}

func csvRow(bench, variant, metric string, value float64, unit string) {
	if csvFile != nil {
		fmt.Fprintf(csvFile, "%s,%s,%s,%.6g,%s\n", bench, variant, metric, value, unit)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL "+format+"\n", args...)
	failures++
}

// ------------------------------------------------------------------
// Ping-pong

func pingPong() {
	warm, iters := scaled(2000), scaled(20000)
	fmt.Printf("\n## Go ping-pong: round trip of an 8-byte value between two goroutines\n\n")
	fmt.Printf("Each round trip timed alone, after %d round trips or 1 s of warm-up; %d or 5 s (n); microseconds. GOMAXPROCS=%d.\n\n",
		warm, iters, runtime.GOMAXPROCS(0))
	fmt.Printf("| %-24s | %6s | %9s | %9s | %9s | %9s |\n", "mechanism", "n", "p50 us", "p99 us", "mean us", "min us")
	fmt.Printf("|--------------------------|--------|-----------|-----------|-----------|-----------|\n")
	for _, c := range []struct {
		name string
		cap  int
	}{{"go chan unbuffered", 0}, {"go chan cap 1", 1}} {
		ping, pong := make(chan uint64, c.cap), make(chan uint64, c.cap)
		go func() {
			for v := range ping {
				pong <- v + 1
			}
		}()
		// As ipc_bench: warm-up of warm round trips or 1 s, then
		// iters or 5 s, whichever comes first.
		ns := make([]int64, 0, iters)
		ok := true
		start := time.Now()
		var warmed time.Time
		for i := 0; ok; i++ {
			out := uint64(2*i + 1)
			t0 := time.Now()
			if warmed.IsZero() && (i == warm || t0.Sub(start) > time.Second) {
				warmed = t0
			}
			if !warmed.IsZero() && (len(ns) == iters || (len(ns) >= 100 && t0.Sub(warmed) > 5*time.Second)) {
				break
			}
			ping <- out
			v := <-pong
			d := time.Since(t0)
			if v != out+1 {
				ok = false
			}
			if !warmed.IsZero() {
				ns = append(ns, int64(d))
			}
		}
		close(ping)
		iters := len(ns)
		if !ok {
			fail("ping-pong %s: wrong reply", c.name)
			continue
		}
		sort.Slice(ns, func(a, b int) bool { return ns[a] < ns[b] })
		var sum int64
		for _, d := range ns {
			sum += d
		}
		p50 := float64(pct(ns, 50)) / 1e3
		p99 := float64(pct(ns, 99)) / 1e3
		mean := float64(sum) / float64(iters) / 1e3
		fmt.Printf("| %-24s | %6d | %9.2f | %9.2f | %9.2f | %9.2f |\n", c.name, iters, p50, p99, mean, float64(ns[0])/1e3)
		csvRow("pingpong", c.name, "samples", float64(iters), "count")
		csvRow("pingpong", c.name, "p50", p50, "us")
		csvRow("pingpong", c.name, "p99", p99, "us")
		csvRow("pingpong", c.name, "mean", mean, "us")
	}
}

// pct is the nearest-rank percentile of sorted samples, as bench.h's.
func pct(sorted []int64, p float64) int64 {
	rank := int(p/100*float64(len(sorted)) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// ------------------------------------------------------------------
// Throughput

type stats struct {
	count, sum, sumsq uint64
	orderErrors       int
}

// run nprod producers sending values 1..total (producer p its own
// slice, in order) through ch and ncons consumers until close; returns
// messages/s and whether every value arrived exactly once and in
// per-producer order.
func runThroughput[T any](nprod, ncons, total int, mk func(uint64) T, get func(*T) uint64) (float64, bool) {
	per := total / nprod
	n := per * nprod
	ch := make(chan T, 1024)
	res := make(chan stats, ncons)
	start := make(chan struct{})
	done := make(chan struct{}, nprod)
	for c := 0; c < ncons; c++ {
		go func() {
			var st stats
			last := make([]uint64, nprod)
			<-start
			for m := range ch {
				v := get(&m)
				p := int((v - 1) / uint64(per))
				if p >= nprod || v <= last[p] {
					st.orderErrors++
				} else {
					last[p] = v
				}
				st.count++
				st.sum += v
				st.sumsq += v * v
			}
			res <- st
		}()
	}
	for p := 0; p < nprod; p++ {
		go func(p int) {
			<-start
			base := uint64(p * per)
			for i := 1; i <= per; i++ {
				ch <- mk(base + uint64(i))
			}
			done <- struct{}{}
		}(p)
	}
	t0 := time.Now()
	close(start)
	for p := 0; p < nprod; p++ {
		<-done
	}
	close(ch)
	var tot stats
	for c := 0; c < ncons; c++ {
		st := <-res
		tot.count += st.count
		tot.sum += st.sum
		tot.sumsq += st.sumsq
		tot.orderErrors += st.orderErrors
	}
	secs := time.Since(t0).Seconds()
	var esum, esumsq uint64
	for v := uint64(1); v <= uint64(n); v++ {
		esum += v
		esumsq += v * v
	}
	ok := tot.count == uint64(n) && tot.sum == esum && tot.sumsq == esumsq && tot.orderErrors == 0
	if !ok {
		fail("throughput %dP%dC: %d of %d values, sum ok %v, sumsq ok %v, %d out of order",
			nprod, ncons, tot.count, n, tot.sum == esum, tot.sumsq == esumsq, tot.orderErrors)
	}
	return float64(n) / secs, ok
}

type kib [1024]byte

func throughput() {
	fmt.Printf("\n## Go throughput: producers and consumers over one channel, capacity 1024\n\n")
	fmt.Printf("Median of 3 runs; every value checked to arrive exactly once. Same message counts as ipc_bench.\n\n")
	fmt.Printf("| %-26s | %-22s | %12s | %9s |\n", "bench", "mechanism", "msgs/s", "MB/s")
	fmt.Printf("|----------------------------|------------------------|--------------|-----------|\n")
	mk8 := func(v uint64) uint64 { return v }
	get8 := func(m *uint64) uint64 { return *m }
	mk1k := func(v uint64) kib {
		var b kib
		for i := 8; i < len(b); i++ {
			b[i] = 0xa5
		}
		for i := 0; i < 8; i++ {
			b[i] = byte(v >> (8 * i))
		}
		return b
	}
	get1k := func(m *kib) uint64 {
		var v uint64
		for i := 0; i < 8; i++ {
			v |= uint64(m[i]) << (8 * i)
		}
		return v
	}
	for _, c := range []struct {
		nprod, ncons, elem, total int
	}{{1, 1, 8, 40000}, {1, 1, 1024, 20000}, {4, 4, 8, 40000}} {
		total := scaled(c.total) / c.nprod * c.nprod
		rates := []float64{}
		ok := true
		for r := 0; r < 3 && ok; r++ {
			var rate float64
			if c.elem == 8 {
				rate, ok = runThroughput(c.nprod, c.ncons, total, mk8, get8)
			} else {
				rate, ok = runThroughput(c.nprod, c.ncons, total, mk1k, get1k)
			}
			rates = append(rates, rate)
		}
		bench := fmt.Sprintf("throughput-%dp%dc-%dB", c.nprod, c.ncons, c.elem)
		name := "go chan"
		if !ok {
			fmt.Printf("| %-26s | %-22s | %12s | %9s |\n", bench, name, "FAILED", "")
			continue
		}
		sort.Float64s(rates)
		rate := rates[len(rates)/2]
		mbs := rate * float64(c.elem) / 1e6
		fmt.Printf("| %-26s | %-22s | %12.0f | %9.2f |\n", bench, name, rate, mbs)
		csvRow(bench, name, "rate", rate, "msg/s")
		csvRow(bench, name, "bandwidth", mbs, "MB/s")
	}
}

// ------------------------------------------------------------------
// Select

func xorshift(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	return x
}

func produce(chs []chan uint64, msgs int) {
	x := uint64(0x9e3779b97f4a7c15)
	for i := 1; i <= msgs; i++ {
		x = xorshift(x)
		chs[x%uint64(len(chs))] <- uint64(i)
	}
}

func selectStmt(chs []chan uint64, msgs int) uint64 {
	var sum uint64
	switch len(chs) {
	case 2:
		for i := 0; i < msgs; i++ {
			select {
			case v := <-chs[0]:
				sum += v
			case v := <-chs[1]:
				sum += v
			}
		}
	case 8:
		for i := 0; i < msgs; i++ {
			select {
			case v := <-chs[0]:
				sum += v
			case v := <-chs[1]:
				sum += v
			case v := <-chs[2]:
				sum += v
			case v := <-chs[3]:
				sum += v
			case v := <-chs[4]:
				sum += v
			case v := <-chs[5]:
				sum += v
			case v := <-chs[6]:
				sum += v
			case v := <-chs[7]:
				sum += v
			}
		}
	}
	return sum
}

func selectReflect(chs []chan uint64, msgs int) uint64 {
	cases := make([]reflect.SelectCase, len(chs))
	for i, ch := range chs {
		cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)}
	}
	var sum uint64
	for i := 0; i < msgs; i++ {
		_, v, ok := reflect.Select(cases)
		if ok {
			sum += v.Uint()
		}
	}
	return sum
}

func selectBench() {
	msgs := scaled(20000)
	esum := uint64(msgs) * uint64(msgs+1) / 2
	fmt.Printf("\n## Go select: one consumer over N channels (cap 64), one producer goroutine feeding a random one\n\n")
	fmt.Printf("%d messages per N. 'select stmt' is a select statement written out (N = 2, 8); 'reflect.Select' builds the cases at run time (any N).\n\n", msgs)
	fmt.Printf("| %-24s | %4s | %12s | %12s |\n", "mechanism", "N", "msgs/s", "ns / select")
	fmt.Printf("|--------------------------|------|--------------|--------------|\n")
	for _, n := range []int{2, 8, 64} {
		for _, kind := range []string{"go select stmt", "go reflect.Select"} {
			if kind == "go select stmt" && n > 8 {
				continue
			}
			chs := make([]chan uint64, n)
			for i := range chs {
				chs[i] = make(chan uint64, 64)
			}
			t0 := time.Now()
			go produce(chs, msgs)
			var sum uint64
			if kind == "go select stmt" {
				sum = selectStmt(chs, msgs)
			} else {
				sum = selectReflect(chs, msgs)
			}
			secs := time.Since(t0).Seconds()
			if sum != esum {
				fail("select %s over %d: sum wrong", kind, n)
				fmt.Printf("| %-24s | %4d | %12s | %12s |\n", kind, n, "FAILED", "")
				continue
			}
			rate := float64(msgs) / secs
			fmt.Printf("| %-24s | %4d | %12.0f | %12.0f |\n", kind, n, rate, secs*1e9/float64(msgs))
			bench := fmt.Sprintf("select-%d", n)
			csvRow(bench, kind, "rate", rate, "msg/s")
			csvRow(bench, kind, "per_op", secs*1e9/float64(msgs), "ns")
		}
	}
}

func main() {
	if s := os.Getenv("GOSYNC_BENCH_SCALE"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			scale = f
		}
	}
	if p := os.Getenv("GOSYNC_BENCH_CSV"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		csvFile = f
		defer f.Close()
	}
	// Nothing here may hang: a deadline for the whole program.
	time.AfterFunc(300*time.Second, func() {
		fmt.Fprintln(os.Stderr, "chanbench: DEADLINE passed")
		os.Exit(2)
	})
	fmt.Printf("\n# Go channel benchmarks (%s, goroutines in one process)\n", runtime.Version())
	only := ""
	if len(os.Args) > 1 {
		only = os.Args[1]
	}
	if only == "" || only == "pingpong" {
		pingPong()
	}
	if only == "" || only == "throughput" {
		throughput()
	}
	if only == "" || only == "select" {
		selectBench()
	}
	if failures > 0 {
		fmt.Fprintf(os.Stderr, "chanbench: %d check(s) FAILED\n", failures)
		csvFile.Close()
		os.Exit(1)
	}
}
