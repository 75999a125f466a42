package headroom

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// These tests read the fake host trees under testdata/hosts: layouts this
// machine cannot have (cgroup v2 pod hierarchies of both kubelet drivers,
// nodes near their limits, a nested PID namespace). Each tree's README says
// where its layout comes from.
func host(name string) hostfs.Root {
	return hostfs.New(filepath.Join("..", "..", "testdata", "hosts", name))
}

func cgroupByPath(t *testing.T, d Diagnosis, suffix string) Cgroup {
	t.Helper()
	for _, c := range d.Cgroups {
		if strings.HasSuffix(c.Path, suffix) {
			return c
		}
	}
	t.Fatalf("no cgroup ending in %s among %d", suffix, len(d.Cgroups))
	return Cgroup{}
}

func hasFinding(d Diagnosis, check string) bool {
	for _, f := range d.Audit {
		if f.Check == check {
			return true
		}
	}
	return false
}

func TestHostCgroupV1Cgroupfs(t *testing.T) {
	t.Parallel()
	d, err := Diagnose(host("cgroupv1-cgroupfs"), DiagnoseOptions{})
	if err != nil {
		t.Fatalf("Diagnose() error = %v", err)
	}
	pod := cgroupByPath(t, d, "/kubepods/burstable/pod0f3e1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b")
	if pod.Version != 1 || pod.Kind != "pod" || pod.Pod == nil || pod.Pod.Name != "api-7d9f8-x2x4z" || pod.Peak != nil {
		t.Errorf("pod = %+v", pod)
	}
	docker := cgroupByPath(t, d, "docker.service")
	if docker.Max != Finite(4915) || !hasFinding(d, "UnitTasksMaxFinite") {
		t.Errorf("docker.service = %+v, audit %+v", docker, d.Audit)
	}
	if !hasFinding(d, "PIDMaxLow") || !hasFinding(d, "KubeletConfigUnreadable") {
		t.Errorf("audit = %+v", d.Audit)
	}
	u, err := UserOf(host("cgroupv1-cgroupfs"), 2210, &d.Scan)
	if err != nil || u.Comm != "dockerd" || u.Tasks != 41 || !u.Exempt || u.AtLimit {
		t.Errorf("UserOf(2210) = %+v, %v", u, err)
	}
	// Root is exempt from RLIMIT_NPROC: without a census its tasks are not
	// counted at all (no walk of /proc for it).
	if u, err := UserOf(host("cgroupv1-cgroupfs"), 2210, nil); err != nil || !u.Exempt || u.Tasks != 0 || u.AtLimit {
		t.Errorf("UserOf(2210, nil) = %+v, %v", u, err)
	}
}

func TestHostHybridNoPidsController(t *testing.T) {
	t.Parallel()
	root := host("hybrid-no-pids-controller")
	if _, err := Hierarchies(root); !errors.Is(err, hostfs.ErrNotSupported) {
		t.Errorf("Hierarchies() error = %v, want ErrNotSupported", err)
	}
	d, err := Diagnose(root, DiagnoseOptions{})
	if !errors.Is(err, hostfs.ErrNotSupported) {
		t.Errorf("Diagnose() error = %v, want one wrapping ErrNotSupported", err)
	}
	if d.Node.PIDMax != 4194304 || d.Node.Tasks != 640 || len(d.Errors) == 0 {
		t.Errorf("node layer must still be reported: %+v, errors %v", d.Node, d.Errors)
	}
	// Without the controller, a cgroup is counted from its task list.
	c, err := ReadCgroup(Hierarchy{Version: 1, Dir: root.SysPath("fs", "cgroup", "systemd")}, "/system.slice/kubelet.service")
	if err != nil || !c.Estimated || c.Current != 3 || !c.Max.Unlimited {
		t.Errorf("estimated cgroup = %+v, %v", c, err)
	}
}

func TestHostIncident(t *testing.T) {
	t.Parallel()
	d, err := Diagnose(host("pidmax-97pct"), DiagnoseOptions{PID: 3124})
	if err != nil {
		t.Fatalf("Diagnose() error = %v", err)
	}
	n := d.Node
	if n.PIDMax != 32768 || n.Tasks != 31616 || n.Binding != BindingPIDMax || n.Limit != 32468 || n.Free() != 852 {
		t.Errorf("node = %+v", n)
	}
	if d.User == nil || d.User.Soft != Finite(249047) || d.User.AtLimit {
		t.Errorf("kubelet's user layer = %+v: ulimit -u is not the binding limit", d.User)
	}
	f := findingOf(d, "PIDMaxLow")
	if f == nil || f.Severity != SeverityCritical || !strings.Contains(f.Remedy, "raise kernel.pid_max (now 32768) to 4194304") {
		t.Errorf("PIDMaxLow finding = %+v", f)
	}
	// With 852 free (2.6 %) a refused fork is the node's: pid_max binds.
	if a := d.Attribution; a.Layer != LayerNode || a.Limit != "pid_max" || !strings.Contains(a.Reason, "kernel.pid_max=32768") {
		t.Errorf("attribution at 97 %% = %+v", a)
	}
	// With 10 % free it is not: the limit is not identified.
	n.Tasks = n.Limit - n.Limit/10
	n.UsedPercent = 90
	if a := Attribute(host("pidmax-97pct"), n, d.Hierarchies, Origin{PID: 3124}, nil); a.Layer != LayerNone {
		t.Errorf("attribution at 90 %% = %+v, want none", a)
	}
}

func findingOf(d Diagnosis, check string) *Finding {
	for i := range d.Audit {
		if d.Audit[i].Check == check {
			return &d.Audit[i]
		}
	}
	return nil
}

func TestHostThreadsMaxBinding(t *testing.T) {
	t.Parallel()
	d, err := Diagnose(host("threads-max-binding"), DiagnoseOptions{})
	if err != nil {
		t.Fatalf("Diagnose() error = %v", err)
	}
	if d.Node.Binding != BindingThreadsMax || d.Node.Limit != 20000 || d.Node.Free() != 50 {
		t.Errorf("node = %+v", d.Node)
	}
	if f := findingOf(d, "ThreadsMaxBinding"); f == nil || f.Severity != SeverityWarning {
		t.Errorf("threads-max 20000 binding: finding %+v, want warning", f)
	}
	if d.Attribution.Layer != LayerNode || d.Attribution.Limit != "threads_max" {
		t.Errorf("attribution %+v, audit %+v", d.Attribution, d.Audit)
	}
}

func TestHostNestedNamespace(t *testing.T) {
	t.Parallel()
	d, err := Diagnose(host("nested-pid-namespace"), DiagnoseOptions{})
	if err != nil && !errors.Is(err, hostfs.ErrNotSupported) {
		t.Fatalf("Diagnose() error = %v", err)
	}
	n := d.Node
	if n.Namespace != "nested" || n.TasksSource != "proc" || n.Tasks != 388 || n.LowTasks != 298 || n.PIDMax != 400 || n.Limit != 398 {
		t.Errorf("node = %+v", n)
	}
	if !hasFinding(d, "NotHostPIDNamespace") {
		t.Errorf("audit lacks NotHostPIDNamespace: %+v", d.Audit)
	}
}

func TestMissingHost(t *testing.T) {
	t.Parallel()
	_, err := Diagnose(hostfs.New(t.TempDir()), DiagnoseOptions{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Diagnose(empty root) error = %v, want not-exist", err)
	}
}

// TestAttributeUser: a failure from a UID at its RLIMIT_NPROC names the
// user layer, also when the failing PID has exited (judged by a live
// process of the same UID). Built inline: a node with room, uid 1000 at 3 of 3.
func TestAttributeUser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/77/status", "Name:\tworker\nState:\tS (sleeping)\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\nThreads:\t3\n")
	write("proc/77/limits", "Max processes             3                    3                    processes\n")
	write("proc/78/status", "Name:\troot-thing\nState:\tS (sleeping)\nPPid:\t1\nUid:\t0\t0\t0\t0\nThreads:\t1\n")
	root := hostfs.New(dir)
	n := Node{Tasks: 4, PIDMax: 4194304, ThreadsMax: 100000, LastPID: 80}
	n.derive()
	tests := []struct {
		name string
		o    Origin
		want Layer
	}{
		{name: "live pid", o: Origin{PID: 77, UID: -1}, want: LayerUser},
		{name: "pid gone, uid known", o: Origin{PID: 4242, UID: 1000}, want: LayerUser},
		{name: "root is exempt", o: Origin{PID: 78, UID: 0}, want: LayerNone},
		{name: "nothing known", o: Origin{UID: -1}, want: LayerNone},
	}
	scan, err := Walk(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		a := Attribute(root, n, nil, tt.o, func() *Scan { return &scan })
		if a.Layer != tt.want {
			t.Errorf("%s: layer %s (%s), want %s", tt.name, a.Layer, a.Reason, tt.want)
		}
		if tt.want == LayerUser && (a.Limit != "RLIMIT_NPROC" || a.Used != 3 || a.Max != 3) {
			t.Errorf("%s: %+v", tt.name, a)
		}
	}
}

// TestAttributeCgroupThatRefused: a Go program dies of "failed to create
// new OS thread" in a unit at its TasksMax and takes its threads with it;
// when its last line is read the unit is far below the limit, but its
// kernel counter shows the refusals. The unit is named, not "no limit".
func TestAttributeCgroupThatRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unit := filepath.Join(dir, "sys", "fs", "cgroup", "pids", "system.slice", "kubelet.service")
	idle := filepath.Join(dir, "sys", "fs", "cgroup", "pids", "system.slice", "idle.service")
	for d, files := range map[string]map[string]string{
		unit: {"pids.current": "0\n", "pids.max": "12\n", "pids.events": "max 20\n"},
		idle: {"pids.current": "1\n", "pids.max": "12\n", "pids.events": "max 0\n"},
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	root := hostfs.New(dir)
	hs := []Hierarchy{{Version: 1, Dir: filepath.Join(dir, "sys", "fs", "cgroup", "pids")}}
	n := Node{Tasks: 155, PIDMax: 32768, ThreadsMax: 100000, LastPID: 9000}
	n.derive()
	a := Attribute(root, n, hs, Origin{UID: -1, Cgroup: "/system.slice/kubelet.service"}, nil)
	if a.Layer != LayerCgroup || a.Cgroup == nil || a.Cgroup.Unit != "kubelet.service" || a.Cgroup.Refused != 20 || a.Used != 0 || a.Max != 12 {
		t.Errorf("a unit that refused 20 forks: %+v (cgroup %+v)", a, a.Cgroup)
	}
	if !strings.Contains(a.Reason, "refused 20 forks") {
		t.Errorf("reason %q", a.Reason)
	}
	if a := Attribute(root, n, hs, Origin{UID: -1, Cgroup: "/system.slice/idle.service"}, nil); a.Layer != LayerNone {
		t.Errorf("a unit that never refused a fork was blamed: %+v", a)
	}
}

// TestHostCapturedFromTheNodeVM reads the tree captured from the real node
// (make capture-hosts; testdata/hosts/cgroupv2-node-vm-pod-at-limit): the
// kernel's own pids files, with pod default/forker at its podPidsLimit.
// The pod holds the refusals; the slices above it, whose pids.events count
// them again, hold none of their own; the containers are named with their
// pod.
func TestHostCapturedFromTheNodeVM(t *testing.T) {
	t.Parallel()
	d, err := Diagnose(host("cgroupv2-node-vm-pod-at-limit"), DiagnoseOptions{})
	if err != nil {
		t.Fatalf("Diagnose() error = %v", err)
	}
	if len(d.Hierarchies) != 1 || d.Hierarchies[0].Version != 2 {
		t.Errorf("hierarchies = %+v, want one v2", d.Hierarchies)
	}
	var pod, ctr *Cgroup
	for i, c := range d.Cgroups {
		switch {
		case c.Kind == KindPod && c.Pod != nil && c.Pod.String() == "default/forker":
			pod = &d.Cgroups[i]
		case c.Kind == KindContainer && c.Pod != nil && c.Pod.String() == "default/forker":
			ctr = &d.Cgroups[i]
		case c.Kind == KindKubepods || c.Kind == KindQoS:
			if c.Refused != 0 {
				t.Errorf("%s counts %d refusals as its own", c.Path, c.Refused)
			}
		}
	}
	if pod == nil || pod.Max != Finite(300) || pod.Refused == 0 || !pod.AtLimit {
		t.Fatalf("pod default/forker = %+v, want at pids.max 300 with refusals", pod)
	}
	// systemd gives the container's scope its DefaultTasksMax (15 % of
	// threads-max here): finite, far from reached, no refusals.
	if ctr == nil || ctr.Refused != 0 || ctr.AtLimit {
		t.Errorf("its container = %+v, want below its limit and no refusals of its own", ctr)
	}
	// pids.events, which the agent no longer reads on this kernel, counts
	// the pod's refusals in kubepods.slice too (fewer here: the capture
	// read it first, while the pod went on being refused).
	b, err := os.ReadFile(filepath.Join(host("cgroupv2-node-vm-pod-at-limit").SysPath("fs", "cgroup"), "kubepods.slice", "pids.events"))
	if err != nil {
		t.Fatal(err)
	}
	if hier, err := parseEvents(b); err != nil || hier == 0 {
		t.Errorf("kubepods.slice's pids.events max = %d, %v; want the pod's refusals counted there too", hier, err)
	}
	if pod.Pod == nil || pod.Pod.Namespace != "default" || pod.Pod.Name != "forker" || pod.Peak == nil {
		t.Errorf("pod identity = %+v, peak %v", pod.Pod, pod.Peak)
	}
	if d.Attribution.Layer != LayerCgroup || d.Attribution.Cgroup == nil || d.Attribution.Cgroup.Kind != KindPod {
		t.Errorf("attribution = %+v", d.Attribution)
	}
	// kubepods.slice holds the node's allocatable PIDs: threads-max less
	// systemReserved.
	kp := cgroupByPath(t, d, "/kubepods.slice")
	if kp.Kind != KindKubepods || kp.Max.Unlimited {
		t.Errorf("kubepods = %+v", kp)
	}
	if unit := cgroupByPath(t, d, "kubelet.service"); unit.Kind != KindUnit || unit.Unit != "kubelet.service" {
		t.Errorf("kubelet unit = %+v", unit)
	}
	// The node: threads-max (23696 with 3 GiB) binds before pid_max
	// (4194304); the kubelet sets podPidsLimit but no pid.available.
	if f := findingOf(d, "ThreadsMaxBinding"); f == nil || f.Severity != SeverityWarning {
		t.Errorf("threads-max binding: finding %+v, want warning", f)
	}
	if !hasFinding(d, "PIDEvictionThresholdUnset") {
		t.Errorf("audit lacks PIDEvictionThresholdUnset: %+v", d.Audit)
	}
	for _, check := range []string{"PIDMaxLow", "PodPidsLimitUnset", "PodsUnlimited"} {
		if hasFinding(d, check) {
			t.Errorf("audit has %s but the node does not warrant it", check)
		}
	}
}

// TestHostCapturedUnitAtTasksMax: the real node with containerd.service at
// its TasksMax (captured by TestNode/UnitAtItsTasksMax): the unit with its
// finite TasksMax and its refusals, and the audit's finding.
func TestHostCapturedUnitAtTasksMax(t *testing.T) {
	t.Parallel()
	d, err := Diagnose(host("cgroupv2-node-vm-unit-at-tasksmax"), DiagnoseOptions{})
	if err != nil {
		t.Fatalf("Diagnose() error = %v", err)
	}
	unit := cgroupByPath(t, d, "containerd.service")
	if unit.Kind != KindUnit || unit.Unit != "containerd.service" || unit.Max.Unlimited || unit.Refused == 0 {
		t.Errorf("containerd.service = %+v, want a finite TasksMax that refused forks", unit)
	}
	if f := findingOf(d, "UnitTasksMaxFinite"); f == nil || !strings.Contains(f.Message, "containerd.service") {
		t.Errorf("UnitTasksMaxFinite: %+v", f)
	}
	// The kubelet's unit has systemd's DefaultTasksMax (15 % of
	// threads-max), far from reached.
	if kubelet := cgroupByPath(t, d, "kubelet.service"); kubelet.Refused != 0 || kubelet.AtLimit {
		t.Errorf("kubelet.service = %+v, want below its limit and no refusals", kubelet)
	}
}

// TestHostCapturedZombies: the real node with pods whose processes never
// reap their children (captured by TestNode/Zombies): the census names the
// parent in pod default/zombies.
func TestHostCapturedZombies(t *testing.T) {
	t.Parallel()
	d, err := Diagnose(host("cgroupv2-node-vm-zombies"), DiagnoseOptions{})
	if err != nil {
		t.Fatalf("Diagnose() error = %v", err)
	}
	found := false
	for _, z := range d.Scan.ZombieParents {
		if z.Comm == "workload" && z.Pod != nil && z.Pod.String() == "default/zombies" && z.Zombies > 0 {
			found = true
		}
	}
	if !found || d.Scan.Zombies == 0 {
		t.Errorf("zombies = %d, parents %+v; want workload of pod default/zombies", d.Scan.Zombies, d.Scan.ZombieParents)
	}
}
