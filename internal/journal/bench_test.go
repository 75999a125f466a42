//go:build cgo

package journal

import (
	"context"
	"fmt"
	"os"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"

	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// benchEntries is the number of entries of the benchmark's journal.
const benchEntries = 50000

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fillJournal starts a journal namespace of its own and writes benchEntries
// normal node log lines to it, one in a thousand a failure line from the
// signature corpus, like the matcher benchmark's input.
func fillJournal(b *testing.B) string {
	b.Helper()
	ns := journald.StartNamespace(b, fmt.Sprintf("ppbench%d", os.Getpid()))
	positives := []string{
		"runtime: failed to create new OS thread (have 15 already; errno=11)",
		"bash: fork: retry: Resource temporarily unavailable",
		"java.lang.OutOfMemoryError: unable to create new native thread",
		"runtime/cgo: pthread_create failed: Resource temporarily unavailable",
	}
	batch := make([]map[string]string, 0, 1000)
	for i := 0; i < benchEntries; i++ {
		msg := fmt.Sprintf(`I1124 10:02:11.%06d    3124 kubelet.go:2412] "SyncLoop (PLEG): event for pod" pod="default/web-%d" event={"Type":"ContainerStarted","ID":"%08x"}`, i, i%97, i*7919)
		if i%1000 == 500 {
			msg = positives[(i/1000)%len(positives)]
		}
		batch = append(batch, map[string]string{"MESSAGE": msg, "SYSLOG_IDENTIFIER": "kubelet", "PRIORITY": "6"})
		if len(batch) == cap(batch) {
			ns.Send(b, batch...)
			batch = batch[:0]
		}
	}
	ns.Send(b, batch...)
	// Wait until journald has written them all.
	for i := 0; i < 100; i++ {
		if j, err := sdjournal.NewJournalFromDir(ns.Dir); err == nil {
			_ = j.SeekHead()
			n := 0
			for {
				c, err := j.Next()
				if err != nil || c == 0 {
					break
				}
				n++
			}
			_ = j.Close()
			if n >= benchEntries {
				return ns.Dir
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatal("journald did not write the benchmark's entries")
	return ""
}

// BenchmarkJournalIngest compares the agent's journal ingest — LiveReader.Next
// (the fields a line needs) plus the matcher — with the ceiling: a bare
// sd_journal_next + GetDataValue("MESSAGE") loop, over the same journal in
// the same process. It reports entries per CPU-second of each and their
// ratio (target ≥ 0.75).
func BenchmarkJournalIngest(b *testing.B) {
	if b.N > 1 {
		b.Skip("run once (-benchtime 1x)")
	}
	dir := fillJournal(b)
	n := benchEntries
	m, err := signature.NewDefault()
	if err != nil {
		b.Fatal(err)
	}
	bare := func() (int, time.Duration) {
		j, err := sdjournal.NewJournalFromDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = j.Close() }()
		_ = j.SeekHead()
		start := cpuTime()
		k := 0
		for {
			c, err := j.Next()
			if err != nil || c == 0 {
				break
			}
			if _, err := j.GetDataValue("MESSAGE"); err == nil {
				k++
			}
		}
		return k, cpuTime() - start
	}
	ours := func() (int, time.Duration) {
		s, err := OpenLive(LiveOptions{Dir: dir, Head: true, Poll: time.Millisecond, Lazy: true})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		ctx := context.Background()
		contextLines := func() []string { return s.Context(signature.ContextLines) }
		start := cpuTime()
		k := 0
		for k < n {
			l, err := s.Next(ctx)
			if err != nil {
				break
			}
			// What the agent does per entry: match MESSAGE; read the trusted
			// fields (and context) only for the lines that need them.
			if _, ok := m.MatchWith(l.Message, contextLines); ok {
				if err := s.Fill(&l); err != nil {
					b.Fatal(err)
				}
			}
			k++
		}
		return k, cpuTime() - start
	}
	nextOnly := func() (int, time.Duration) {
		s, err := OpenLive(LiveOptions{Dir: dir, Head: true, Poll: time.Millisecond, Lazy: true})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		start := cpuTime()
		k := 0
		for k < n {
			if _, err := s.Next(context.Background()); err != nil {
				break
			}
			k++
		}
		return k, cpuTime() - start
	}
	if os.Getenv("PP_NEXT_ONLY") != "" {
		for i := 0; i < 3; i++ {
			bn, bt := bare()
			nn, nt := nextOnly()
			fmt.Fprintf(os.Stderr, "next only: %.0f/s vs bare %.0f/s = %.2f\n", float64(nn)/nt.Seconds(), float64(bn)/bt.Seconds(), (float64(nn)/nt.Seconds())/(float64(bn)/bt.Seconds()))
		}
	}
	var ratios, bareRates, ourRates []float64
	for round := 0; round < 15; round++ {
		// Alternate which loop runs first, so that neither always gets the
		// page cache warmed by the other.
		var bn, on int
		var bt, ot time.Duration
		if round%2 == 0 {
			bn, bt = bare()
			on, ot = ours()
		} else {
			on, ot = ours()
			bn, bt = bare()
		}
		br, or := float64(bn)/bt.Seconds(), float64(on)/ot.Seconds()
		bareRates, ourRates, ratios = append(bareRates, br), append(ourRates, or), append(ratios, or/br)
	}
	med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
	b.ReportMetric(float64(n), "entries")
	b.ReportMetric(med(bareRates), "bare_entries/cpu-s")
	b.ReportMetric(med(ourRates), "ingest_entries/cpu-s")
	b.ReportMetric(med(ratios), "ratio")
	fmt.Fprintf(os.Stderr, "journal ingest: %d entries; ratios %v\n", n, ratios)
}
