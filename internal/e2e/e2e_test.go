package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
	"github.com/pidpressure/pidpressure/internal/forkfail"
	hosttest "github.com/pidpressure/pidpressure/internal/testenv"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// Shared by the tests, set once by TestMain: one control plane, one build
// of the agent.
var (
	root      string
	cluster   *testenv.Cluster
	npdBin    string
	cliBin    string
	goThreads string
	work      string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped under -short")
		os.Exit(0)
	}
	os.Exit(setUp(m))
}

func setUp(m *testing.M) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "e2e:", err); return 1 }
	if err := testenv.Prerequisites(); err != nil {
		return fail(err)
	}
	ctx := context.Background()
	var err error
	if root, err = testenv.RepoRoot(); err != nil {
		return fail(err)
	}
	bin, err := testenv.ControlPlaneBinaries(ctx, root, os.Stderr)
	if err != nil {
		return fail(err)
	}
	if work, err = os.MkdirTemp("", "pidpressure-e2e-bin-"); err != nil {
		return fail(err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	if npdBin, cliBin, err = testenv.Build(ctx, root, work); err != nil {
		return fail(err)
	}
	if goThreads, err = testenv.BuildGoThreads(work); err != nil {
		return fail(err)
	}
	if cluster, err = testenv.Start(bin); err != nil {
		return fail(err)
	}
	fmt.Printf("e2e: etcd and kube-apiserver up at %s in %.1f s\n", cluster.URL(), cluster.Started.Seconds())
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the control plane:", err)
	}
	journald.Release()
	return code
}

// startAgent registers node and runs the agent for it, stopped at the end
// of the test (the agent's log is printed if the test failed).
func startAgent(t testing.TB, node string, spec testenv.AgentSpec) *testenv.Agent {
	t.Helper()
	ctx := context.Background()
	if err := cluster.RegisterNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	// Each agent is a user of its own, whose requests the audit log
	// records (testenv.Cluster.Requests).
	kubeconfig, err := cluster.AddUser(testenv.AgentUser(node), "system:masters", testenv.AgentGroup)
	if err != nil {
		t.Fatal(err)
	}
	if spec.NPD == "" {
		spec.NPD = npdBin
	}
	spec.Node, spec.Kubeconfig, spec.APIServer = node, kubeconfig, cluster.URL()
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	}
	a, err := testenv.StartAgent(spec)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, a)
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.WaitHealthy(hctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// stopAtEnd stops the agent when the test ends, and prints its log if the
// test failed.
func stopAtEnd(t testing.TB, a *testenv.Agent) {
	t.Helper()
	t.Cleanup(func() {
		_ = a.Stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", a.Tail())
		}
	})
}

// record is one observed state of the condition.
type record struct {
	at     time.Time
	status corev1.ConditionStatus
	reason string
	msg    string
	ltt    time.Time
}

// conditionLog watches the node and records every change of the
// condition's status, reason, message or lastTransitionTime.
type conditionLog struct {
	mu   sync.Mutex
	recs []record
}

func watchCondition(t *testing.T, node string) *conditionLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cl := &conditionLog{}
	go func() {
		for ctx.Err() == nil {
			w, err := cluster.Client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", node).String()})
			if err != nil {
				time.Sleep(200 * time.Millisecond) // the apiserver may be down on purpose
				continue
			}
			for ev := range w.ResultChan() {
				n, ok := ev.Object.(*corev1.Node)
				if !ok || ev.Type == watch.Error {
					continue
				}
				for _, c := range n.Status.Conditions {
					if c.Type == testenv.ConditionType {
						cl.add(record{time.Now(), c.Status, c.Reason, c.Message, c.LastTransitionTime.Time})
					}
				}
			}
		}
	}()
	return cl
}

func (cl *conditionLog) add(r record) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if n := len(cl.recs); n > 0 {
		l := cl.recs[n-1]
		if l.status == r.status && l.reason == r.reason && l.msg == r.msg && l.ltt.Equal(r.ltt) {
			return
		}
	}
	cl.recs = append(cl.recs, r)
}

func (cl *conditionLog) snapshot() []record {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]record(nil), cl.recs...)
}

// waitFor waits for the latest record to satisfy ok.
func (cl *conditionLog) waitFor(t *testing.T, timeout time.Duration, what string, ok func(record) bool) record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if rs := cl.snapshot(); len(rs) > 0 && ok(rs[len(rs)-1]) {
			return rs[len(rs)-1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s within %s; the condition went: %s", what, timeout, cl)
	return record{}
}

func (cl *conditionLog) String() string {
	var b strings.Builder
	for _, r := range cl.snapshot() {
		fmt.Fprintf(&b, "\n  %s %s %s (since %s): %s", r.at.Format("15:04:05.000"), r.status, r.reason, r.ltt.Format("15:04:05"), r.msg)
	}
	return b.String()
}

// waitEvents waits until the node has an Event for which ok holds.
func waitEvents(t *testing.T, node string, timeout time.Duration, what string, ok func(corev1.Event) bool) corev1.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []corev1.Event
	for time.Now().Before(deadline) {
		evs, err := cluster.Events(context.Background(), node)
		if err == nil {
			last = evs
			for _, e := range evs {
				if ok(e) {
					return e
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	var b strings.Builder
	for _, e := range last {
		fmt.Fprintf(&b, "\n  %s %s ×%d: %s", e.Type, e.Reason, e.Count, e.Message)
	}
	t.Fatalf("no %s Event for %s within %s; Events:%s", what, node, timeout, b.String())
	return corev1.Event{}
}

func reasonIs(reason string) func(corev1.Event) bool {
	return func(e corev1.Event) bool { return e.Reason == reason }
}

func isFalse(r record) bool {
	return r.status == corev1.ConditionFalse && r.reason == "PIDHeadroomSufficient"
}

// TestIncident is the incident, for real: the agent runs in a PID namespace
// whose pid_max is 500 (as it runs with hostPID on a node whose pid_max is
// low); bash loops and a Go program exhaust it; the Node gets
// PIDPressureRisk=True (PIDExhausted, naming pid_max and the numbers) and
// Events; kubectl describe node shows both; when the programs are gone the
// condition returns to False after the quiet period, and
// lastTransitionTime moved exactly twice.
func TestIncident(t *testing.T) {
	journald.Ensure(t)
	node := "incident-node"
	cl := watchCondition(t, node)
	started := time.Now()
	// The eBPF counter on where it loads (the tracepoints here): the
	// condition is backed by the kernel's own count of refused creations.
	a := startAgent(t, node, testenv.AgentSpec{PIDMax: 500, Monitor: &testenv.Monitor{QuietPeriod: "10s", EBPF: "on"}})
	before := cl.waitFor(t, 30*time.Second, "initial False condition", isFalse)

	load, err := testenv.IncidentLoad(a.Init, "ppincident", goThreads)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	during := cl.waitFor(t, 30*time.Second, "PIDExhausted", func(r record) bool {
		return r.status == corev1.ConditionTrue && r.reason == "PIDExhausted"
	})
	t.Logf("PIDExhausted visible through the apiserver %.2f s after the load started: %s", time.Since(t0).Seconds(), during.msg)
	for _, want := range []string{"kernel.pid_max=500", "tasks", "of"} {
		if !strings.Contains(during.msg, want) {
			t.Errorf("the condition's message does not name %q: %s", want, during.msg)
		}
	}
	// The first failure read may be a log line; the kernel's count backs
	// the condition as soon as it is drained (the message refreshes on
	// NPD's heartbeat).
	if ebpfLoads(t) {
		counted := cl.waitFor(t, 30*time.Second, "PIDExhausted backed by the kernel's count", func(r record) bool {
			return r.status == corev1.ConditionTrue && r.reason == "PIDExhausted" && strings.Contains(r.msg, "the kernel counted ")
		})
		t.Logf("backed by the kernel's count: %s", counted.msg)
	}
	// The journal is the machine's: a failure elsewhere on it (another
	// run's namespace) may show up too, so the incident's own Events are
	// picked by who failed.
	proc := waitEvents(t, node, 30*time.Second, "ProcessCreationFailed naming pid_max", func(e corev1.Event) bool {
		return e.Reason == "ProcessCreationFailed" && strings.HasPrefix(e.Message, "bash (") && strings.Contains(e.Message, "binding limit kernel.pid_max=500")
	})
	// The Go program dies of its failure and frees its threads before its
	// last line is read; its Event must still name the limit.
	thr := waitEvents(t, node, 30*time.Second, "ThreadCreationFailed of the Go program", func(e corev1.Event) bool {
		return e.Reason == "ThreadCreationFailed" && strings.HasPrefix(e.Message, "gothreads (")
	})
	for _, e := range []corev1.Event{proc, thr} {
		if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Message, "binding limit kernel.pid_max=500") {
			t.Errorf("Event %s: type %s, message %q; want a Warning naming pid_max as the binding limit", e.Reason, e.Type, e.Message)
		}
	}

	describe, err := cluster.Kubectl(context.Background(), cluster.Admin, "describe", "node", node)
	if err != nil {
		t.Fatal(err)
	}
	saveDescribe(t, "incident", node, describe)
	for _, want := range []string{"PIDPressureRisk", "True", "PIDExhausted", "ProcessCreationFailed", "ThreadCreationFailed"} {
		if !strings.Contains(describe, want) {
			t.Errorf("kubectl describe node lacks %q:\n%s", want, describe)
		}
	}
	load.Stop()

	after := cl.waitFor(t, 60*time.Second, "return to False", isFalse)
	t.Logf("back to False %.1f s after the load stopped", time.Since(t0).Seconds())
	ltts := map[time.Time]bool{}
	for _, r := range cl.snapshot() {
		ltts[r.ltt] = true
	}
	if len(ltts) != 3 || !before.ltt.Before(during.ltt) || !during.ltt.Before(after.ltt) {
		t.Errorf("lastTransitionTime should move exactly twice (False → True → False); the condition went: %s", cl)
	}
	if !a.Alive() {
		t.Errorf("the agent exited: %s", a.Tail())
	}
	// What the incident cost the apiserver (docs/benchmarks.md): from the
	// agent's start to the condition's return to False.
	// The start-up audit's Events are outside the write budget (a start
	// costs them once).
	reqs := requests(t, testenv.AgentUser(node), started, time.Now())
	evs, err := cluster.Events(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	audit := 0
	for _, e := range evs {
		if e.Reason == "PIDLimitMisconfigured" {
			audit++
		}
	}
	t.Logf("requests through the incident (%v): %v; %d of the Events the start-up audit's", time.Since(started).Round(time.Second), reqs, audit)
	if ev := reqs["create events"] + reqs["patch events"] - audit; ev > 10 {
		t.Errorf("the incident made %d Event writes besides the audit's; want at most 10", ev)
	}
}

// saveDescribe keeps kubectl's output in the test's log and, with
// E2E_DESCRIBE_DIR set, in a file (the docs quote it), and checks the docs'
// examples of it.
func saveDescribe(t *testing.T, name, node, out string) {
	t.Helper()
	t.Logf("kubectl describe node:\n%s", out)
	checkDocExamples(t, node, out)
	if dir := os.Getenv("E2E_DESCRIBE_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// ebpfLoads reports whether the eBPF counter attaches here in some mode;
// where the run requires it (make test as root), not attaching fails the
// test.
func ebpfLoads(t *testing.T) bool {
	t.Helper()
	c, err := forkfail.Open(forkfail.Options{})
	if err == nil {
		_ = c.Close()
	}
	return hosttest.Supported(t, err)
}
