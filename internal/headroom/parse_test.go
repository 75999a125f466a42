package headroom

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

func TestParseLoadavg(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		in                string
		wantTasks, wantPI uint64
		wantErr           bool
	}{
		{name: "this machine", in: "0.07 0.04 0.01 1/78 1965\n", wantTasks: 78, wantPI: 1965},
		{name: "incident", in: "3.12 2.85 2.40 9/31616 32101\n", wantTasks: 31616, wantPI: 32101},
		{name: "too few fields", in: "0.07 0.04 0.01 1/78", wantErr: true},
		{name: "no slash", in: "0.07 0.04 0.01 178 1965", wantErr: true},
		{name: "bad total", in: "0.07 0.04 0.01 1/x 1965", wantErr: true},
		{name: "bad last pid", in: "0.07 0.04 0.01 1/7 -3", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tasks, last, err := parseLoadavg([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseLoadavg(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if tasks != tt.wantTasks || last != tt.wantPI {
				t.Errorf("parseLoadavg(%q) = %d, %d; want %d, %d", tt.in, tasks, last, tt.wantTasks, tt.wantPI)
			}
		})
	}
}

func TestParseLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Limit
		wantErr bool
	}{
		{in: "max\n", want: Unlimited()},
		{in: "4096\n", want: Finite(4096)},
		{in: "0", want: Finite(0)},
		{in: "18446744073709551615", want: Finite(18446744073709551615)},
		{in: "", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "infinity", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseLimit([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseLimit(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLimitJSON(t *testing.T) {
	t.Parallel()
	for _, l := range []Limit{Unlimited(), Finite(0), Finite(1024)} {
		b, err := l.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Limit
		if err := back.UnmarshalJSON(b); err != nil || back != l {
			t.Errorf("%v -> %s -> %v, %v", l, b, back, err)
		}
	}
	if b, _ := Unlimited().MarshalJSON(); string(b) != "null" {
		t.Errorf("unlimited marshals as %s, want null", b)
	}
}

func TestParseEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "max 3187\n", want: 3187},
		{in: "max 0\n", want: 0},
		{in: "max 5\nmax.imposed 9\n", want: 5},
		{in: "max.imposed 9\nmax 5\n", want: 5},
		{in: "future 1\n", want: 0},
		{in: "", want: 0},
		{in: "max x\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseEvents([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseEvents(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	good := "Name:\tkube let\nState:\tZ (zombie)\nPPid:\t42\nUid:\t1000\t0\t0\t0\nThreads:\t15\nNSpid:\t4242\t12\n"
	got, err := parseStatus([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(status{name: "kube let", state: 'Z', ppid: 42, uid: 1000, threads: 15}, got, cmp.AllowUnexported(status{})); diff != "" {
		t.Errorf("parseStatus() mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		"", "Name:\tx\n", strings.Replace(good, "PPid:\t42", "PPid:\tx", 1),
		strings.Replace(good, "Uid:\t1000\t0\t0\t0", "Uid:", 1), strings.Replace(good, "Threads:\t15", "Threads:\t-1", 1),
	} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q) accepted", bad)
		}
	}
	if n, ok := parseNSpid([]byte(good)); !ok || n != 2 {
		t.Errorf("parseNSpid = %d, %v; want 2", n, ok)
	}
	if _, ok := parseNSpid([]byte("Name:\tx\n")); ok {
		t.Error("parseNSpid found NSpid in a status without it")
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	real := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n" +
		"Max processes             249047               249047               processes \n"
	soft, hard, err := parseLimits([]byte(real))
	if err != nil || soft != Finite(249047) || hard != Finite(249047) {
		t.Errorf("parseLimits = %v, %v, %v", soft, hard, err)
	}
	soft, hard, err = parseLimits([]byte("Max processes             unlimited            unlimited            processes\n"))
	if err != nil || !soft.Unlimited || !hard.Unlimited {
		t.Errorf("unlimited: %v, %v, %v", soft, hard, err)
	}
	for _, bad := range []string{"", "Max processes\n", "Max processes  12x  5 processes\n"} {
		if _, _, err := parseLimits([]byte(bad)); err == nil {
			t.Errorf("parseLimits(%q) accepted", bad)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	t.Parallel()
	v1 := "12:pids:/system.slice/docker.service\n11:cpu,cpuacct:/x\n1:name=systemd:/init.scope\n0::/unified/path\n"
	if p, err := parseProcCgroup([]byte(v1), 1); err != nil || p != "/system.slice/docker.service" {
		t.Errorf("v1 = %q, %v", p, err)
	}
	if p, err := parseProcCgroup([]byte(v1), 2); err != nil || p != "/unified/path" {
		t.Errorf("v2 = %q, %v", p, err)
	}
	if _, err := parseProcCgroup([]byte("1:name=systemd:/x\n"), 1); err == nil {
		t.Error("no pids line accepted")
	}
}

func TestNodeDerive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		n           Node
		wantLimit   uint64
		wantBinding Binding
	}{
		{name: "fresh boot, before wrap", n: Node{PIDMax: 32768, ThreadsMax: 192730, LastPID: 250}, wantLimit: 32767, wantBinding: BindingPIDMax},
		{name: "after wrap, low tasks count", n: Node{PIDMax: 32768, ThreadsMax: 192730, LastPID: 1965, LowTasks: 67}, wantLimit: 32535, wantBinding: BindingPIDMax},
		{name: "threads-max binds", n: Node{PIDMax: 4194304, ThreadsMax: 20000, LastPID: 9000}, wantLimit: 20000, wantBinding: BindingThreadsMax},
		{name: "namespace pid_max 400", n: Node{PIDMax: 400, ThreadsMax: 192730, LastPID: 399, LowTasks: 298}, wantLimit: 398, wantBinding: BindingPIDMax},
		// The real node's incident: pid_max lowered to 741 under 172 tasks,
		// 70 of them holding PIDs above it; 573 tasks fill it.
		{name: "pid_max lowered under running tasks", n: Node{PIDMax: 741, ThreadsMax: 23696, LastPID: 740, LowTasks: 62, AboveTasks: 70}, wantLimit: 573, wantBinding: BindingPIDMax},
	}
	for _, tt := range tests {
		n := tt.n
		n.derive()
		if n.Limit != tt.wantLimit || n.Binding != tt.wantBinding {
			t.Errorf("%s: limit %d binding %s; want %d %s", tt.name, n.Limit, n.Binding, tt.wantLimit, tt.wantBinding)
		}
	}
}

// TestCountTasksOutsideTheAllocatableRange counts, by TID, the tasks that
// hold PIDs no new task can take: below 300, and at or above a pid_max
// lowered after they started (a process's threads can be on either side).
func TestCountTasksOutsideTheAllocatableRange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for pid, tids := range map[string][]string{
		"1":   {"1"},
		"250": {"250", "251", "900"},
		"500": {"500", "741", "5000"},
		"900": {"900"},
	} {
		for _, tid := range tids {
			if err := os.MkdirAll(filepath.Join(dir, "proc", pid, "task", tid), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "proc", "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := CountTasks(hostfs.New(dir), 741)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TaskCount{Tasks: 8, Low: 3, Above: 4}); got != want {
		t.Errorf("CountTasks(pid_max 741) = %+v, want %+v", got, want)
	}
}

func FuzzParseCgroupFile(f *testing.F) {
	f.Add("max 3187\nmax.imposed 2\n")
	f.Add("max\n")
	f.Add("0.07 0.04 0.01 1/78 1965\n")
	f.Fuzz(func(_ *testing.T, s string) {
		_, _ = parseEvents([]byte(s))
		_, _ = parseLimit([]byte(s))
		_, _, _ = parseLoadavg([]byte(s))
		_, _ = parseStatus([]byte(s))
		_, _, _ = parseLimits([]byte(s))
		_, _ = parseProcCgroup([]byte(s), 1)
		_, _ = parseUintBytes([]byte(s), "x")
	})
}

func TestParsePIDNamespace(t *testing.T) {
	t.Parallel()
	for link, want := range map[string]uint32{
		"pid:[4026531836]":   4026531836,
		"pid:[4026532175]\n": 4026532175,
		"net:[4026531840]":   0,
		"pid:[]":             0,
		"":                   0,
	} {
		if got := parsePIDNamespace(link); got != want {
			t.Errorf("parsePIDNamespace(%q) = %d, want %d", link, got, want)
		}
	}
}
