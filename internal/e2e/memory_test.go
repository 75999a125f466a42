package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
// The private (anonymous) memory is reported apart.
//
// Both start from binaries whose pages are not in the page cache: a
// binary that was just written (built, or pulled) is cached whole, and the
// kernel then maps far more of it than the program touches (measured here:
// this agent's whole text and read-only data, 39 MiB, resident at once);
// how much depends on the cache's state, not on the program. Run it with
// make bench-e2e.
func BenchmarkIdleMemory(b *testing.B) {
	journald.Ensure(b)
	k, _ := render(b)
	upstream, err := testenv.BuildUpstreamNPD(b.Context(), root, work)
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		suffix := fmt.Sprintf("%d-%d", os.Getpid(), i)
		ours := startAgent(b, "memory-ours-"+suffix, testenv.AgentSpec{NPD: coldCopy(b, npdBin), Monitor: &testenv.Monitor{Config: shippedMonitor(b, k.base, b.TempDir())}})
		dir := b.TempDir()
		npd := startAgent(b, "memory-npd-"+suffix, testenv.AgentSpec{NPD: coldCopy(b, upstream), Dir: dir, CustomPlugin: pluginConfig(b, dir)})
		time.Sleep(time.Minute) // settling: the measured span, not a wait for an event
		var o, n, oa, na []float64
		for range 12 {
			r, a := rssMiB(b, ours.PID())
			o, oa = append(o, r), append(oa, a)
			r, a = rssMiB(b, npd.PID())
			n, na = append(n, r), append(na, a)
			time.Sleep(5 * time.Second)
		}
		mo, mn := median(o), median(n)
		b.ReportMetric(mo, "MiB-ours")
		b.ReportMetric(mn, "MiB-npd")
		b.ReportMetric(mo-mn, "MiB-more")
		b.ReportMetric(median(oa)-median(na), "MiB-more-anon")
		b.Logf("resident memory, median of 12 samples: this agent %.1f MiB (%.1f anonymous), upstream NPD %.1f MiB (%.1f anonymous)", mo, median(oa), mn, median(na))
		_ = ours.Stop()
		_ = npd.Stop()
	}
}

// rssMiB is the resident set of process pid (VmRSS) and its anonymous
// part (RssAnon), in MiB.
func rssMiB(b *testing.B, pid int) (rss, anon float64) {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	found := 0
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "VmRSS:" && f[0] != "RssAnon:" {
			continue
		}
		kb, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			b.Fatal(err)
		}
		if f[0] == "VmRSS:" {
			rss = kb / 1024
		} else {
			anon = kb / 1024
		}
		found++
	}
	if found != 2 {
		b.Fatalf("no VmRSS and RssAnon for process %d", pid)
	}
	return rss, anon
}

// coldCopy copies the binary at src into a directory of the benchmark's
// and drops the copy's pages from the page cache (written out, then
// POSIX_FADV_DONTNEED), so that the program starts as after a reboot.
func coldCopy(b *testing.B, src string) string {
	b.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(b.TempDir(), filepath.Base(src))
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Write(raw); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
	return dst
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
