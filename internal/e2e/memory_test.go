package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// BenchmarkIdleMemory measures, side by side in one run on one machine,
// the resident memory of two idle agents reporting to the same apiserver:
// upstream NPD (the version go.mod pins, built from its own main package)
// with one custom-plugin condition — NPD refuses to start with no monitor
// at all, and this is the cheapest one that reports a condition — and this
// agent, NPD with the pid-pressure monitor, as the DaemonSet ships it.
// Each is sampled every 5 s for a minute after a minute of settling (the
// plugin has run four times by then); the medians are reported, and their
// difference, which the fleet's budget holds to 10 MiB (docs/benchmarks.md).
// Run it with make bench-e2e.
func BenchmarkIdleMemory(b *testing.B) {
	journald.Ensure(b)
	k, _ := render(b)
	upstream, err := testenv.BuildUpstreamNPD(b.Context(), root, work)
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		suffix := fmt.Sprintf("%d-%d", os.Getpid(), i)
		ours := startAgent(b, "memory-ours-"+suffix, testenv.AgentSpec{Monitor: &testenv.Monitor{Config: shippedMonitor(b, k.base, b.TempDir())}})
		dir := b.TempDir()
		npd := startAgent(b, "memory-npd-"+suffix, testenv.AgentSpec{NPD: upstream, Dir: dir, CustomPlugin: pluginConfig(b, dir)})
		time.Sleep(time.Minute) // settling: the measured span, not a wait for an event
		var o, n []float64
		for range 12 {
			o, n = append(o, rssMiB(b, ours.PID())), append(n, rssMiB(b, npd.PID()))
			time.Sleep(5 * time.Second)
		}
		mo, mn := median(o), median(n)
		b.ReportMetric(mo, "MiB-ours")
		b.ReportMetric(mn, "MiB-npd")
		b.ReportMetric(mo-mn, "MiB-more")
		b.Logf("resident memory, median of 12 samples: this agent %.1f MiB (%v), upstream NPD %.1f MiB (%v)", mo, o, mn, n)
		_ = ours.Stop()
		_ = npd.Stop()
	}
}

// rssMiB is the resident set of process pid (VmRSS), in MiB.
func rssMiB(b *testing.B, pid int) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmRSS for process %d", pid)
	return 0
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
