package main

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/node-problem-detector/cmd/options"
	"k8s.io/node-problem-detector/pkg/exporters/k8sexporter/condition"
	"k8s.io/node-problem-detector/pkg/exporters/k8sexporter/problemclient"
	"k8s.io/node-problem-detector/pkg/types"
	"k8s.io/node-problem-detector/pkg/util"
	"k8s.io/utils/clock"
)

// conditionExporter is NPD's Kubernetes exporter put together from NPD's
// own parts — its problem client, its condition manager (the writes, the
// heartbeat, the retries) and its /healthz and /conditions server — with
// one difference: a condition whose status, reason and transition time are
// unchanged and whose message alone moved is not handed to the condition
// manager, which would write it at once; it rides the manager's next write
// instead (its heartbeat, or another condition's change). So the message
// on the Node stays current (NPD's own exporter re-sends the message of the
// last transition at every heartbeat, for days) and the apiserver sees no
// write beyond NPD's heartbeats and real transitions.
//
// NPD builds its exporter's client and manager inside NewExporterOrDie and
// does not let a caller wrap the client, hence this assembly.
type conditionExporter struct {
	client      *refreshingClient
	manager     condition.ConditionManager
	writeEvents bool
	update      bool

	mu    sync.Mutex
	given map[string]v1.NodeCondition // what the manager holds, by type

	gate *startGate // nil: the manager runs from the start
}

// newConditionExporter starts the exporter as NPD's NewExporterOrDie does,
// but without its blocking wait for the apiserver: it serves /healthz and
// /conditions on NPD's server port at once, and starts the condition
// manager once the apiserver has returned the Node (bounded by NPD's
// apiserver wait timeout) and the node's first-write delay has passed. The
// monitor starts at once either way: found on a real node, NPD's blocking
// wait kept the monitor, its metrics and /healthz down for as long as the
// apiserver was unreachable, and the DaemonSet's liveness probe restarted
// the pod after two minutes of it. It returns nil when NPD's Kubernetes
// exporter is disabled.
func newConditionExporter(ctx context.Context, npdo *options.NodeProblemDetectorOptions) types.Exporter {
	if !npdo.EnableK8sExporter {
		return nil
	}
	c := &refreshingClient{Client: problemclient.NewClientOrDie(npdo)}
	// The heartbeat and the first write are spread over the fleet
	// (jitter.go).
	spreadOpts := *npdo
	spreadOpts.K8sExporterHeartbeatPeriod = jitteredHeartbeat(npdo.K8sExporterHeartbeatPeriod, npdo.NodeName)
	e := newConditionExporterWith(c, clock.RealClock{}, &spreadOpts)
	e.serve(npdo)
	e.gate = newStartGate()
	delay := firstWriteDelay(npdo.NodeName)
	klog.Infof("Node conditions: first write within %v of the apiserver's answer, heartbeat every %v (spread over the fleet by node name)", delay, spreadOpts.K8sExporterHeartbeatPeriod)
	ready := make(chan struct{})
	go func() {
		defer close(ready)
		klog.Infof("Waiting for kube-apiserver to be ready (timeout %v)...", npdo.APIServerWaitTimeout)
		err := wait.PollUntilContextTimeout(ctx, npdo.APIServerWaitInterval, npdo.APIServerWaitTimeout, true, func(ctx context.Context) (bool, error) {
			if _, err := c.GetNode(ctx); err != nil {
				klog.Errorf("Can't get node object: %v", err)
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			klog.Warningf("kube-apiserver did not become ready: timed out on waiting for kube-apiserver to return the node object: %v", err)
		}
	}()
	e.gate.open(ctx, clock.RealClock{}, ready, delay, func() { e.manager.Start(ctx) })
	return e
}

// newConditionExporterWith builds the exporter around a client and a clock.
func newConditionExporterWith(c *refreshingClient, clk clock.WithTicker, npdo *options.NodeProblemDetectorOptions) *conditionExporter {
	return &conditionExporter{
		client:      c,
		manager:     condition.NewConditionManager(c, clk, npdo.K8sExporterHeartbeatPeriod),
		writeEvents: npdo.K8sExporterWriteEvents,
		update:      npdo.K8sExporterUpdateNodeConditions,
		given:       map[string]v1.NodeCondition{},
	}
}

// ExportProblems implements types.Exporter.
func (e *conditionExporter) ExportProblems(status *types.Status) {
	if e.gate != nil {
		e.gate.see(status)
	}
	if e.writeEvents {
		for _, ev := range status.Events {
			e.client.Eventf(util.ConvertToAPIEventType(ev.Severity), status.Source, ev.Reason, ev.Message)
		}
	}
	if !e.update {
		return
	}
	for _, c := range status.Conditions {
		api := util.ConvertToAPICondition(c)
		e.mu.Lock()
		prev, ok := e.given[c.Type]
		if ok && sameState(prev, api) {
			e.client.refresh(api)
			e.mu.Unlock()
			continue
		}
		e.given[c.Type] = api
		e.client.forget(api.Type)
		e.mu.Unlock()
		e.manager.UpdateCondition(c)
	}
}

// sameState reports whether two conditions differ at most in their message.
func sameState(a, b v1.NodeCondition) bool {
	return a.Type == b.Type && a.Status == b.Status && a.Reason == b.Reason && a.LastTransitionTime.Equal(&b.LastTransitionTime)
}

// serve starts NPD's status server (/healthz, /conditions, pprof) as NPD's
// Kubernetes exporter does.
func (e *conditionExporter) serve(npdo *options.NodeProblemDetectorOptions) {
	if npdo.ServerPort <= 0 {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("/conditions", func(w http.ResponseWriter, _ *http.Request) {
		util.ReturnHTTPJson(w, e.manager.GetConditions())
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	addr := net.JoinHostPort(npdo.ServerAddress, strconv.Itoa(npdo.ServerPort))
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil { //nolint:gosec // NPD's own status server, as upstream serves it
			klog.Fatalf("Failed to start server: %v", err)
		}
	}()
}

// refreshingClient is NPD's problem client whose writes of the Node's
// conditions carry the newest message of each condition whose state is
// unchanged since the condition manager took it.
type refreshingClient struct {
	problemclient.Client

	mu     sync.Mutex
	latest map[v1.NodeConditionType]v1.NodeCondition
}

// refresh keeps c's message for the next write.
func (r *refreshingClient) refresh(c v1.NodeCondition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest == nil {
		r.latest = map[v1.NodeConditionType]v1.NodeCondition{}
	}
	r.latest[c.Type] = c
}

// forget drops a kept message: the condition changed state.
func (r *refreshingClient) forget(t v1.NodeConditionType) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.latest, t)
}

// SetConditions writes conditions with the kept messages.
func (r *refreshingClient) SetConditions(ctx context.Context, conditions []v1.NodeCondition) error {
	r.mu.Lock()
	for i := range conditions {
		if c, ok := r.latest[conditions[i].Type]; ok && sameState(c, conditions[i]) {
			conditions[i].Message = c.Message
		}
	}
	r.mu.Unlock()
	return r.Client.SetConditions(ctx, conditions)
}
