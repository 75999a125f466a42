// Package npd is the pid-pressure monitor as a Node Problem Detector
// problem daemon: Register adds the type "pid-pressure-monitor" to NPD's
// registry, and each configured file becomes a Monitor that runs the whole
// detector in-process and turns its verdicts into NPD statuses. In-process
// matters: an exec-based check cannot run on a node that cannot fork, which
// is exactly when this monitor has something to say.
package npd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/node-problem-detector/pkg/problemdaemon"
	"k8s.io/node-problem-detector/pkg/types"
	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/config"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/metrics"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// DaemonType is the problem daemon type, and so the flag
// --config.pid-pressure-monitor.
const DaemonType types.ProblemDaemonType = "pid-pressure-monitor"

// Register adds the monitor to NPD's registry. Call it before NPD's
// options add their flags: the --config.<type> flag comes from the registry.
// metricsAddress, read when a monitor is created (after the flags are
// parsed), overrides the files' metricsAddress when it is not empty.
func Register(metricsAddress *string) {
	problemdaemon.Register(DaemonType, types.ProblemDaemonHandler{
		CreateProblemDaemonOrDie: func(path string) types.Monitor {
			m := newMonitorOrDie(path)
			if metricsAddress != nil && *metricsAddress != "" {
				m.conf.MetricsAddress = *metricsAddress
			}
			return m
		},
		CmdOptionDescription: "Set to config file paths of the PID pressure monitor (PIDPressureRisk).",
	})
}

func newMonitorOrDie(path string) *Monitor {
	m, err := NewMonitor(path)
	if err != nil {
		klog.Fatalf("pid-pressure-monitor: %v", err)
	}
	return m
}

// Monitor is one configured detector as an NPD types.Monitor.
type Monitor struct {
	conf   config.Config
	log    *slog.Logger
	clock  clock.Clock
	det    *agent.Detector
	statc  chan *types.Status
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex // guards cond
	cond *verdict.Condition
}

// statusBuffer lets the detector run ahead of a slow exporter for a while;
// after that it waits: statuses are never dropped.
const statusBuffer = 64

// NewMonitor loads the configuration at path ("" is the embedded default)
// and builds the detector. A bad file is an error naming every problem.
func NewMonitor(path string) (*Monitor, error) {
	conf, err := config.LoadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := signature.NewMatcher(conf.Rules())
	if err != nil {
		return nil, fmt.Errorf("%s: signatures: %w", path, err)
	}
	mon := &Monitor{conf: conf, clock: clock.RealClock{}, statc: make(chan *types.Status, statusBuffer)}
	log := slog.New(logr.ToSlogHandler(klog.Background().WithName(string(DaemonType))))
	mon.log = log
	mon.det = agent.NewDetector(conf.Detector(), m, clock.RealClock{}, log, mon)
	return mon, nil
}

// Start runs the detector. The first status carries the initial condition.
func (m *Monitor) Start() (<-chan *types.Status, error) {
	initMetrics()
	agent.PrewarmThreads(agent.DefaultThreads, 0)
	ctx, cancel := context.WithCancel(context.Background())
	m.ctx, m.cancel, m.done = ctx, cancel, make(chan struct{})
	if m.conf.MetricsAddress != "" {
		if err := metrics.Serve(ctx, m.conf.MetricsAddress, m.det, m.log); err != nil {
			cancel()
			return nil, err
		}
	}
	go func() {
		defer close(m.done)
		if err := m.det.Run(ctx); err != nil {
			// The node layer cannot be read: say so rather than go quiet.
			klog.Errorf("pid-pressure-monitor stopped: %v", err)
			m.unknown(err)
		}
	}()
	return m.statc, nil
}

// Stop stops the detector and waits for it; the state (if configured) is
// saved on the way out.
func (m *Monitor) Stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.done
}

// Condition implements agent.Sink.
func (m *Monitor) Condition(c verdict.Condition) {
	m.mu.Lock()
	m.cond = &c
	m.mu.Unlock()
	recordCondition(c)
	m.send(Status(m.conf.Source, &c, nil))
}

// Refresh implements agent.Refresher: the condition's message moved while
// its status and reason held. The status carries it to the exporters; this
// build's Kubernetes exporter writes it with NPD's next heartbeat, never on
// its own.
func (m *Monitor) Refresh(c verdict.Condition) {
	m.mu.Lock()
	m.cond = &c
	m.mu.Unlock()
	m.send(Status(m.conf.Source, &c, nil))
}

// Event implements agent.Sink.
func (m *Monitor) Event(e verdict.Event) {
	m.mu.Lock()
	c := m.cond
	m.mu.Unlock()
	recordEvent(e)
	m.send(Status(m.conf.Source, c, &e))
}

func (m *Monitor) unknown(err error) {
	m.mu.Lock()
	c := m.cond
	m.mu.Unlock()
	s := &types.Status{Source: m.conf.Source, Conditions: []types.Condition{{
		Type: verdict.ConditionType, Status: types.Unknown, Transition: m.clock.Now(),
		Reason: string(verdict.ReasonUnknown), Message: logline.Sanitize("the pid-pressure monitor stopped: "+err.Error(), m.conf.Events.MaxMessage),
	}}}
	if c != nil && !c.Status {
		s.Conditions[0].Transition = c.LastTransitionTime
	}
	m.send(s)
}

// send waits for NPD to take the status, unless the monitor is stopping
// (NPD stops reading before it calls Stop).
func (m *Monitor) send(s *types.Status) {
	select {
	case m.statc <- s:
	case <-m.ctx.Done():
	}
}

// Status turns a verdict condition and, optionally, an event into an NPD
// status. Every status carries the current condition, as NPD's own
// monitors do, so the exporter never sees a status without it.
func Status(source string, c *verdict.Condition, e *verdict.Event) *types.Status {
	s := &types.Status{Source: source}
	if c != nil {
		st := types.False
		if c.Status {
			st = types.True
		}
		s.Conditions = []types.Condition{{Type: c.Type, Status: st, Transition: c.LastTransitionTime, Reason: string(c.Reason), Message: c.Message}}
	}
	if e != nil {
		sev := types.Info
		if e.Warning {
			sev = types.Warn
		}
		// NPD's Kubernetes exporter hands the message to client-go's
		// recorder as a format string (Eventf(…, event.Message)): a "%" in
		// "97.4 % of" would come out as "%!o(MISSING)". Seen against a real
		// kube-apiserver; escaped here.
		s.Events = []types.Event{{Severity: sev, Timestamp: e.LastTime, Reason: string(e.Reason), Message: strings.ReplaceAll(e.Message, "%", "%%")}}
	}
	return s
}
