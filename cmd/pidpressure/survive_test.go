package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// TestTailSurvivesFullCgroup runs "pidpressure tail" inside a pids cgroup,
// then sets the cgroup's pids.max to exactly the tasks it holds, so that no
// thread or process can be created in it. The agent must keep reading the
// journal and /dev/kmsg, keep reporting the cgroup's refused forks — from
// pids.events and, where it loads, from the eBPF counter, exactly — and stay
// alive: three runs out of three.
func TestTailSurvivesFullCgroup(t *testing.T) {
	skipLive(t)
	hier, _ := pidsCgroupRoot(t)
	journald.Ensure(t)
	for run := 1; run <= 3; run++ {
		t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) { survivalRun(t, hier, run) })
	}
}

func survivalRun(t *testing.T, hier string, run int) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("pptest-survive-%d-%d", os.Getpid(), run)
	dir := makeCgroup(t, hier, name, 1000)
	sources, ebpf := 3, ebpfSupported(t)
	args := []string{"tail", "-o", "jsonl", "--cgroup", "/" + name, "--ebpf", "off"}
	if ebpf {
		sources, args[len(args)-1] = 4, "on"
	}
	argv, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec "$SELF"`, dir))
	cmd.Env = append(os.Environ(), "SELF="+self, "PIDPRESSURE_AS_CLI="+string(argv))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var mu sync.Mutex
	var out []map[string]any
	var errLog strings.Builder
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		n := 0
		for sc.Scan() {
			mu.Lock()
			errLog.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), `msg="source started"`) {
				if n++; n == sources {
					close(started)
				}
			}
		}
	}()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				mu.Lock()
				out = append(out, m)
				mu.Unlock()
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the agent did not start its %d sources:\n%s", sources, errLog.String())
	}

	// Freeze the cgroup's task budget at what it holds now.
	current := readUintFile(t, filepath.Join(dir, "pids.current"))
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatUint(current, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	threadsBefore := countTasks(t, cmd.Process.Pid)

	mark := fmt.Sprintf("pptest-survive-%d-%d", os.Getpid(), run)
	const rounds = 5
	for i := 0; i < rounds; i++ {
		writeKmsgLine(t, fmt.Sprintf("<12>bash: fork: retry: Resource temporarily unavailable %s kmsg %d", mark, i))
		journald.Cat(t, "pptest", fmt.Sprintf("runtime: failed to create new OS thread (have 15 already; errno=11) %s journal %d", mark, i))
		// A shell moved into the full cgroup tries to fork: refused.
		sh := exec.Command("sh", "-c", "read go; /bin/true")
		in, _ := sh.StdinPipe()
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(sh.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(in, "go\n")
		_ = sh.Wait()
		time.Sleep(500 * time.Millisecond)
	}
	deadline := time.Now().Add(15 * time.Second)
	// Each line once, from its own source: the journal's copies of kmsg
	// records are not reported twice. The kernel's own record of the first
	// refusal in this cgroup arrives once, through kmsg, as kernel truth.
	var kmsgSeen, journalSeen, kernelSeen int
	var refused, counted float64
	count := func() {
		kmsgSeen, journalSeen, kernelSeen, refused, counted = 0, 0, 0, 0, 0
		mu.Lock()
		defer mu.Unlock()
		for _, m := range out {
			msg, _ := m["message"].(string)
			switch {
			case m["kind"] == "match" && strings.Contains(msg, mark+" kmsg"):
				if m["source"] == "kmsg" {
					kmsgSeen++
				} else {
					kmsgSeen += 100 // the journal's copy must not be reported
				}
			case m["kind"] == "match" && strings.Contains(msg, mark+" journal") && m["source"] == "journal":
				journalSeen++
			case m["kind"] == "match" && m["signature"] == "PidsControllerForkRejected" && strings.HasSuffix(msg, "/"+name):
				if m["trust"] == "kernel" && m["source"] == "kmsg" {
					kernelSeen++
				} else {
					kernelSeen += 100
				}
			case m["kind"] == "rejected" && m["cgroup"] == "/"+name:
				r, _ := m["rejected"].(float64)
				refused += r
			case m["kind"] == "counted" && m["refusing"] == "/"+name && m["comm"] == "sh":
				r, _ := m["count"].(float64)
				counted += r
			}
		}
	}
	for time.Now().Before(deadline) {
		if count(); kmsgSeen == rounds && journalSeen == rounds && kernelSeen == 1 && refused >= rounds && (!ebpf || counted >= rounds) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let any duplicate arrive, then count once more
	if count(); kmsgSeen != rounds || journalSeen != rounds || kernelSeen != 1 || refused < rounds {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("with its cgroup full the agent reported %d/%d kmsg lines, %d/%d journal lines, %d/1 kernel records, %.0f/%d refused forks\nstderr:\n%s",
			kmsgSeen, rounds, journalSeen, rounds, kernelSeen, refused, rounds, errLog.String())
	}
	// Each shell tried one fork, and the kernel refused it: the counter
	// counts exactly that many.
	if ebpf && counted != rounds {
		t.Errorf("the eBPF counter counted %.0f refused forks of the shells, want %d", counted, rounds)
	}
	events := readUintFileField(t, filepath.Join(dir, "pids.events"))
	if events < rounds {
		t.Errorf("pids.events max = %d: the cgroup did not refuse the forks the test relies on", events)
	}
	if after := countTasks(t, cmd.Process.Pid); after > threadsBefore {
		t.Errorf("the agent's threads grew from %d to %d in a full cgroup", threadsBefore, after)
	}
	// Still alive: a clean stop on SIGTERM.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("the agent died: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the agent did not stop cleanly: %v\n%s", err, errLog.String())
	}
}

func countTasks(t *testing.T, pid int) int {
	t.Helper()
	ts, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatalf("the agent (pid %d) is gone: %v", pid, err)
	}
	return len(ts)
}

func writeKmsgLine(t *testing.T, s string) {
	t.Helper()
	if err := os.WriteFile("/dev/kmsg", []byte(s+"\n"), 0); err != nil {
		t.Skipf("cannot write /dev/kmsg: %v", err)
	}
}

func readUintFileField(t *testing.T, p string) uint64 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "max "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
