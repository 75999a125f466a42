package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// procStat returns a process's RSS (KiB), threads and CPU time (ticks).
func procStat(b *testing.B, pid int) (rssKiB, threads, ticks uint64) {
	b.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rssKiB, _ = strconv.ParseUint(f[1], 10, 64)
		case "Threads:":
			threads, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return rssKiB, threads, utime + stime
}

// BenchmarkIdleFootprint starts "pidpressure tail" with all three sources
// on this machine, lets it settle, and measures over 30 idle seconds its
// resident memory, its threads and the CPU it uses.
func BenchmarkIdleFootprint(b *testing.B) {
	if b.N > 1 {
		b.Skip("run once (-benchtime 1x)")
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root for /dev/kmsg")
	}
	journald.Ensure(b)
	defer journald.Release()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	args, _ := json.Marshal([]string{"tail", "-o", "jsonl"})
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "PIDPRESSURE_AS_CLI="+string(args))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(5 * time.Second)
	_, _, t0 := procStat(b, cmd.Process.Pid)
	const idle = 30 * time.Second
	time.Sleep(idle)
	rss, threads, t1 := procStat(b, cmd.Process.Pid)
	const ticksPerSecond = 100 // USER_HZ
	cpu := float64(t1-t0) / ticksPerSecond
	b.ReportMetric(float64(rss)/1024, "rss_MiB")
	b.ReportMetric(float64(threads), "threads")
	b.ReportMetric(cpu/idle.Seconds()*100, "cpu_%")
	b.ReportMetric(cpu*1000, "cpu_ms/30s")
}
