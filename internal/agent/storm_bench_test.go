//go:build cgo

package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// The storm: stormRate matched lines a second for stormSeconds, on a node
// with stormProcesses extra processes.
const (
	stormRate      = 10000
	stormSeconds   = 30
	stormProcesses = 5000
)

// stormSender writes rate journal entries a second for secs seconds to the
// journal socket given, one datagram each, and prints how many it sent.
// A blocking datagram send waits for journald rather than losing a line.
const stormSender = `use strict; use IO::Socket::UNIX; use Socket; use Time::HiRes qw(time sleep);
my ($path, $rate, $secs) = @ARGV;
my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Peer => $path) or die "socket: $!";
my $msg = "MESSAGE=runtime: failed to create new OS thread (have 15 already; errno=11)\nSYSLOG_IDENTIFIER=worker\n";
my ($n, $t0) = (0, time);
while (1) {
  my $el = time - $t0;
  last if $el >= $secs;
  my $due = int($el * $rate);
  while ($n < $due) { defined($s->send($msg)) or die "send: $!"; $n++ }
  sleep(0.001);
}
print "$n\n";
`

// fullCgroup creates a v1 pids cgroup with pids.max 1 and returns its
// directory and a function that removes it once its process is gone.
func fullCgroup(b *testing.B) string {
	b.Helper()
	dir := filepath.Join("/sys/fs/cgroup/pids", fmt.Sprintf("ppstorm-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Skipf("no v1 pids hierarchy to make a full cgroup in: %v", err)
	}
	b.Cleanup(func() { _ = os.Remove(dir) })
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte("1"), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkStorm is a failure storm against the whole detector: a process
// of UID 65534 alone in a pids cgroup at its pids.max (1) sends 10,000
// matched lines a second for 30 s through a real journald, on a node with
// 5,000 extra processes, while the detector follows that journal, samples
// the node and judges every line. It reports the detector's CPU (this
// process's; the sender, journald and the sleepers are other processes) as
// cores over the storm (target ≤ 0.2), and checks that the Events account
// for every line sent: announced plus aggregated equals the lines.
func BenchmarkStorm(b *testing.B) {
	if b.N > 1 {
		b.Skip("run once (-benchtime 1x)")
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root (journald, cgroups, setpriv)")
	}
	for _, tool := range []string{"perl", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("no %s", tool)
		}
	}
	name := fmt.Sprintf("ppstorm%d", os.Getpid())
	// journald's per-service rate limit (10,000 lines in 30 s by default)
	// would drop most of the storm: off for this namespace.
	conf := "/etc/systemd/journald@" + name + ".conf"
	if err := os.WriteFile(conf, []byte("[Journal]\nRateLimitBurst=0\nRateLimitIntervalSec=0\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.Remove(conf) })
	ns := journald.StartNamespace(b, name)
	cg := fullCgroup(b)
	stopSleepers := sleepers(b, stormProcesses)
	defer stopSleepers()

	m, err := signature.NewDefault()
	if err != nil {
		b.Fatal(err)
	}
	d := NewDetector(DetectorConfig{
		Sources: Config{Root: hostfs.New("/"), Journal: true, JournalDir: ns.Dir, PidsEvents: true},
		Verdict: verdict.DefaultConfig(),
	}, m, clock.RealClock{}, quietLog(), discardSink{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitUntil(b, 30*time.Second, "the journal source to start", func() bool {
		v := d.View()
		return len(v.Sources) > 0 && v.Sources[indexOf(b, d.src.Load(), "journal")].Up
	})

	// The sender enters the cgroup (now at its pids.max) and becomes
	// perl as UID 65534 without a fork.
	sender := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec setpriv --reuid=65534 --regid=65534 --clear-groups perl -e "$2" "$3" "$4" "$5"`,
		"sh", cg, stormSender, ns.Socket, strconv.Itoa(stormRate), strconv.Itoa(stormSeconds))
	start := cpuTime()
	wall := time.Now()
	out, err := sender.Output()
	if err != nil {
		b.Fatalf("sender: %v", err)
	}
	sent, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("sender printed %q", out)
	}
	judged := func() uint64 {
		t := d.View().Events[verdict.EventThreadCreationFailed]
		return t.Announced + t.Aggregated
	}
	deadline := time.Now().Add(2 * time.Minute)
	for judged() < sent {
		if time.Now().After(deadline) {
			v := d.View()
			src := d.src.Load()
			b.Fatalf("after 2m: %d lines sent, %d judged, source read %d lines and %d matches, %d dropped; journal %+v",
				sent, judged(), src.Stats().Lines.Load(), src.Stats().Matches.Load(), v.Dropped, v.Sources[indexOf(b, src, "journal")])
		}
		time.Sleep(20 * time.Millisecond)
	}
	cpu, elapsed := cpuTime()-start, time.Since(wall)
	cores := cpu.Seconds() / elapsed.Seconds()
	v := d.View()
	tally := v.Events[verdict.EventThreadCreationFailed]
	b.ReportMetric(cores, "cores")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "lines/s")
	fmt.Printf("storm: %d lines in %v (%.0f/s) from a full cgroup, %d extra processes: detector CPU %v = %.3f cores (target <= 0.2); ThreadCreationFailed announced %d + aggregated %d = %d; dropped %d\n",
		sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds(), stormProcesses, cpu.Round(time.Millisecond), cores,
		tally.Announced, tally.Aggregated, tally.Announced+tally.Aggregated, v.Dropped)
	if got := tally.Announced + tally.Aggregated; got != sent {
		b.Errorf("ThreadCreationFailed events account for %d lines, %d sent; %d dropped", got, sent, v.Dropped)
	}
	if tally.Announced > 10 {
		b.Errorf("%d Events announced for one storm of one subject", tally.Announced)
	}
	if cores > 0.2 {
		b.Errorf("detector CPU %.3f cores, over 0.2", cores)
	}
	cancel()
	if err := <-done; err != nil {
		b.Errorf("detector: %v", err)
	}
}
