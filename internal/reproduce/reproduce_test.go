package reproduce

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/journal"
	"github.com/pidpressure/pidpressure/internal/kmsg"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/testenv"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

func TestMain(m *testing.M) {
	code := m.Run()
	journald.Release()
	os.Exit(code)
}

func live(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("live-host test (skipped under -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for cgroups and PID namespaces")
	}
}

// cgroupMax is a pids.max that lets each runtime start, then fail.
func cgroupMax(p Program) int {
	switch p.Name {
	case "java-threads":
		return 60
	case "node-spawn":
		return 40
	default:
		return 20
	}
}

func timeout(p Program) time.Duration {
	if p.Name == "bash-fork" {
		return 6 * time.Second // bash retries a refused fork for a while; its first retry is what counts
	}
	return 20 * time.Second
}

// hits matches output line by line in one stream and returns the signatures.
func hits(t *testing.T, out string) map[string]int {
	t.Helper()
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	s := m.NewStream()
	got := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if h, ok := s.Match(logline.New(logline.SourceText, l)); ok {
			got[h.Signature]++
		}
	}
	return got
}

func expectAny(t *testing.T, p Program, got map[string]int, out string) {
	t.Helper()
	for _, e := range p.Expect {
		if got[e] > 0 {
			return
		}
	}
	if len(out) > 2000 {
		out = out[:2000] + "…"
	}
	t.Errorf("%s: no %v among the signatures %v of its output:\n%s", p.Name, p.Expect, got, out)
}

func build(t *testing.T, p Program) []string {
	t.Helper()
	argv, err := p.Build(t.TempDir())
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return argv
}

// TestProgramsInPidsCgroup: each program, in a pids cgroup with a small
// pids.max, fails for real, the kernel counts the refusals, and what the
// program prints is recognised by the catalog.
func TestProgramsInPidsCgroup(t *testing.T) {
	live(t)
	if _, err := PidsHierarchy(); err != nil {
		t.Skip(err)
	}
	for _, p := range Programs() {
		t.Run(p.Name, func(t *testing.T) {
			argv := build(t, p)
			res, err := Run(context.Background(), argv, Limit{CgroupMax: cgroupMax(p)}, Options{Timeout: timeout(p)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Refused == 0 {
				t.Errorf("pids.events counted no refused fork")
			}
			expectAny(t, p, hits(t, res.Output), res.Output)
		})
	}
}

// TestProgramsInPIDNamespace: the same programs in a new PID namespace whose
// pid_max is 400 exhaust the namespace's PIDs, not a cgroup's.
func TestProgramsInPIDNamespace(t *testing.T) {
	live(t)
	for _, p := range Programs() {
		if p.Name == "java-threads" || p.Name == "node-spawn" {
			continue // their runtimes start hundreds of tasks' worth slowly; the cgroup test covers them
		}
		t.Run(p.Name, func(t *testing.T) {
			argv := build(t, p)
			res, err := Run(context.Background(), argv, Limit{PIDMax: 400}, Options{Timeout: timeout(p)})
			if errors.Is(err, ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			expectAny(t, p, hits(t, res.Output), res.Output)
		})
	}
}

// TestDetectedFromJournalAndKmsg: each program fails in its own pids cgroup
// with its output going to journald. The failure must be read from the
// journal with journald's attribution, and the kernel's record of the
// cgroup refusing the fork from /dev/kmsg as kernel truth.
func TestDetectedFromJournalAndKmsg(t *testing.T) {
	live(t)
	if _, err := PidsHierarchy(); err != nil {
		t.Skip(err)
	}
	journald.Ensure(t)
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Programs() {
		if p.Name == "java-threads" || p.Name == "node-spawn" {
			continue // covered by TestProgramsInPidsCgroup; slow to start
		}
		t.Run(p.Name, func(t *testing.T) {
			argv := build(t, p)
			src, err := journal.OpenLive(journal.LiveOptions{})
			testenv.SkipIfNotSupported(t, err)
			defer func() { _ = src.Close() }()
			kr, err := kmsg.Open("/dev/kmsg", kmsg.Options{Start: kmsg.StartAtEnd})
			if err != nil {
				t.Skip(err)
			}
			defer func() { _ = kr.Close() }()
			tag := "pprepro-" + p.Name
			res, err := Run(context.Background(), argv, Limit{CgroupMax: cgroupMax(p)}, Options{Timeout: timeout(p), JournalTag: tag})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			// From the journal: a hit, attributed by journald to the process.
			js := m.NewStream()
			found := false
			for !found {
				l, err := src.Next(ctx)
				if err != nil {
					t.Fatalf("journal: no %v from %s: %v", p.Expect, p.Name, err)
				}
				h, ok := js.Match(l)
				if !ok || l.Origin.PID <= 0 {
					continue
				}
				for _, e := range p.Expect {
					if h.Signature == e && h.Trust == logline.TrustAttributed && l.Origin.UID == 0 {
						found = true
					}
				}
			}
			// From kmsg: the kernel's own record for this cgroup.
			for {
				l, err := kr.Next(ctx)
				if err != nil {
					t.Fatalf("kmsg: no fork-rejected record for %s: %v", res.Cgroup, err)
				}
				h, ok := m.Match(l)
				if ok && h.Signature == "PidsControllerForkRejected" && h.Fields.Cgroup == res.Cgroup {
					if h.Trust != logline.TrustKernel {
						t.Errorf("kernel record trust = %s", h.Trust)
					}
					break
				}
			}
		})
	}
}
