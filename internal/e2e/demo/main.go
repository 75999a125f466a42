// Command demo is the incident, end to end, in one command (make demo): it
// builds what it needs (the control plane once, cached), starts etcd and
// kube-apiserver on loopback, registers a Node, runs the agent for it inside
// a PID namespace whose pid_max is 500 (standing in for a node whose pid_max
// is too low), exhausts that namespace with bash fork loops and a Go program
// creating threads, prints `kubectl describe node`, and tears everything
// down. It exits 1 if the Node did not get PIDPressureRisk=True with reason
// PIDExhausted. It needs root (namespaces, journald).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
)

const node = "demo-node"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run(ctx context.Context) error {
	if err := testenv.Prerequisites(); err != nil {
		return err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	step("Building kube-apiserver, etcd and kubectl (once; cached) and the agent")
	bin, err := testenv.ControlPlaneBinaries(ctx, root, os.Stderr)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "pidpressure-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	npd, _, err := testenv.Build(ctx, root, work)
	if err != nil {
		return err
	}
	goThreads, err := testenv.BuildGoThreads(work)
	if err != nil {
		return err
	}
	stopJournal, err := testenv.EnsureJournald()
	if err != nil {
		return err
	}
	defer stopJournal()

	step("Starting etcd and kube-apiserver on loopback")
	c, err := testenv.Start(bin)
	if err != nil {
		return err
	}
	defer func() { _ = c.Stop() }()
	fmt.Printf("apiserver %s ready in %.1f s\n", c.URL(), c.Started.Seconds())
	if err := c.RegisterNode(ctx, node); err != nil {
		return err
	}

	step("Running the agent (node-problem-detector with the pid-pressure monitor) for Node %s in a PID namespace with pid_max 500", node)
	a, err := testenv.StartAgent(testenv.AgentSpec{NPD: npd, Node: node, Kubeconfig: c.Admin, APIServer: c.URL(),
		Dir: work + "/agent", PIDMax: 500, Monitor: &testenv.Monitor{QuietPeriod: "20s"}})
	if err != nil {
		return err
	}
	defer func() { _ = a.Stop() }()
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.WaitHealthy(hctx); err != nil {
		return err
	}
	if _, err := c.WaitCondition(ctx, node, 30*time.Second, corev1.ConditionFalse); err != nil {
		return fmt.Errorf("%w\nagent log:\n%s", err, a.Tail())
	}
	if err := printConditions(ctx, c); err != nil {
		return err
	}

	step("Reproducing the incident: bash loops fork until \"fork: retry\", a Go program creates threads until \"failed to create new OS thread\"")
	load, err := testenv.IncidentLoad(a.Init, "demo-incident", goThreads)
	if err != nil {
		return err
	}
	defer load.Stop()
	t0 := time.Now()
	cond, err := c.WaitCondition(ctx, node, 60*time.Second, corev1.ConditionTrue)
	if err != nil {
		return fmt.Errorf("%w\nagent log:\n%s", err, a.Tail())
	}
	fmt.Printf("PIDPressureRisk=True (%s) visible through the apiserver %.2f s after the load started\n", cond.Reason, time.Since(t0).Seconds())
	time.Sleep(3 * time.Second) // the Events of the first seconds
	load.Stop()

	step("kubectl describe node %s", node)
	out, err := c.Kubectl(ctx, c.Admin, "describe", "node", node)
	if err != nil {
		return err
	}
	fmt.Print(out)
	if cond.Reason != "PIDExhausted" || !strings.Contains(out, "PIDPressureRisk") {
		return fmt.Errorf("the Node got %s=%s with reason %s, want True with PIDExhausted", testenv.ConditionType, cond.Status, cond.Reason)
	}

	step("The load is gone; waiting for the condition to return to False after the quiet period (20 s here, 5 min by default)")
	if _, err := c.WaitCondition(ctx, node, 90*time.Second, corev1.ConditionFalse); err != nil {
		return err
	}
	if err := printConditions(ctx, c); err != nil {
		return err
	}
	step("Tearing down: the agent, its PID namespace, kube-apiserver and etcd")
	return nil
}

func printConditions(ctx context.Context, c *testenv.Cluster) error {
	out, err := c.Kubectl(ctx, c.Admin, "get", "node", node, "-o",
		`jsonpath={range .status.conditions[*]}{.type}={.status} {.reason} (since {.lastTransitionTime}): {.message}{"\n"}{end}`)
	fmt.Print(out)
	return err
}
