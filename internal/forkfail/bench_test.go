package forkfail_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"

	"github.com/pidpressure/pidpressure/internal/forkfail"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/testenv"
)

// BenchmarkCost measures what the counter costs the node's workloads, as
// ratios of the cost per operation with the counter attached to the cost
// without, in alternating rounds of one run (medians of six): fork and
// exit (what the counter watches), and the cheapest system calls, getppid
// and a 1-byte read, which pay the tracepoints' tax (every system call of
// every thread takes the slow path while a syscall tracepoint is enabled).
// Each attach mode the kernel allows is measured (here: tracepoint; in the
// node VM: fexit too). Run with -benchtime 1x (make bench).
func BenchmarkCost(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	bin := testenv.CProgram(b, costEnv, "testdata/cost.c")
	// Under emulation (the node VM) a fork takes milliseconds: fewer.
	scale := 1
	if s, err := strconv.Atoi(os.Getenv("PIDPRESSURE_COST_DIVISOR")); err == nil && s > 0 {
		scale = s
	}
	for range b.N {
		for _, m := range []forkfail.Mode{forkfail.ModeFexit, forkfail.ModeTracepoint} {
			c, err := forkfail.Open(forkfail.Options{Modes: []forkfail.Mode{m}})
			if errors.Is(err, hostfs.ErrNotSupported) {
				b.Logf("%s: %v", m, err)
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			_ = c.Close()
			for _, w := range []struct {
				name string
				n    int
			}{{"fork", 2000 / scale}, {"getppid", 2000000 / scale}, {"read", 2000000 / scale}} {
				var without, with []float64
				for range 6 {
					without = append(without, costOf(b, bin, w.name, w.n))
					c, err := forkfail.Open(forkfail.Options{Modes: []forkfail.Mode{m}})
					if err != nil {
						b.Fatal(err)
					}
					with = append(with, costOf(b, bin, w.name, w.n))
					_ = c.Close()
				}
				a, z := median(with), median(without)
				b.ReportMetric(a/z, fmt.Sprintf("%s-%s-ratio", m, w.name))
				b.Logf("%s %s: %.1f ns attached, %.1f ns without, ratio %.3f", m, w.name, a, z, a/z)
			}
		}
	}
}

func costOf(b *testing.B, bin, workload string, n int) float64 {
	b.Helper()
	out, err := exec.Command(bin, workload, fmt.Sprint(n)).Output()
	if err != nil {
		b.Fatalf("cost %s: %v", workload, err)
	}
	var ns float64
	if _, err := fmt.Sscanf(string(out), "ns=%f", &ns); err != nil {
		b.Fatalf("cost printed %q", out)
	}
	return ns
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
