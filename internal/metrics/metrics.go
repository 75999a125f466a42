// Package metrics serves the detector's own Prometheus metrics and /healthz
// on their own listener. Everything is read from the detector at scrape
// time (agent.View, and the cgroups sampled then), so the numbers are as
// fresh as the scrape and nothing is kept twice.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// Viewer is what the collector reads: the detector, through its View and
// its cgroups.
type Viewer interface {
	View() agent.View
	Cgroups() []headroom.Cgroup
}

const ns = "pidpressure"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

// Collector is a prometheus.Collector over a detector.
type Collector struct {
	src Viewer

	condition, conditionTrue, nodeTasks, nodeLimit, nodeHeadroom, nodeBinding, nodeUsed *prometheus.Desc
	predicted, predicting                                                               *prometheus.Desc
	cgTasks, cgLimit, cgHeadroom, cgRefusedTotal                                        *prometheus.Desc
	matches, refused, counted, events                                                   *prometheus.Desc
	srcUp, srcEnabled, srcLines, srcOverruns, srcLag, srcDropped, sampleOK              *prometheus.Desc
}

// NewCollector returns a collector reading src at every scrape.
func NewCollector(src Viewer) *Collector {
	return &Collector{
		src:           src,
		condition:     desc("condition_reason", "1 for the PIDPressureRisk condition's current reason, 0 for the others.", "reason"),
		conditionTrue: desc("condition_true", "1 while the PIDPressureRisk condition is True."),
		nodeTasks:     desc("node_tasks", "Tasks (processes and threads) counting against the node limits."),
		nodeLimit:     desc("node_limit_tasks", "Tasks the node limit can hold: kernel.pid_max (less the PIDs below 300 the kernel no longer hands out) or kernel.threads-max.", "limit"),
		nodeHeadroom:  desc("node_headroom_tasks", "Tasks that can still be created before the limit.", "limit"),
		nodeBinding:   desc("node_binding_limit", "1 for the node limit that binds (the lower), 0 for the other.", "limit"),
		nodeUsed:      desc("node_used_ratio", "Node tasks as a fraction of the binding limit."),
		predicted:     desc("predicted_exhaustion_seconds", "Seconds until the binding node limit at the current growth; only while a trend is trusted (see pidpressure_prediction_trusted)."),
		predicting:    desc("prediction_trusted", "1 while the growth trend is worth trusting, else 0."),
		cgTasks:       desc("cgroup_tasks", "pids.current of a cgroup that matters to the node (kubepods, QoS class, pod, node component unit).", "cgroup", "kind", "namespace", "pod"),
		cgLimit:       desc("cgroup_limit_tasks", "pids.max of the cgroup (absent when unlimited). A unit's pids.max is its systemd TasksMax.", "cgroup", "kind", "namespace", "pod"),
		cgHeadroom:    desc("cgroup_headroom_tasks", "pids.max minus pids.current (absent when unlimited).", "cgroup", "kind", "namespace", "pod"),
		cgRefusedTotal: desc("cgroup_pids_max_events_total", "The kernel's count of forks the cgroup refused at pids.max (pids.events \"max\").",
			"cgroup", "kind", "namespace", "pod"),
		matches: desc("matches_total", "Log lines that matched a signature, by signature, family and trust of their origin.", "signature", "family", "trust"),
		refused: desc("rejected_forks_total", "Forks refused by pids.max seen by the pids.events watcher since start, per cgroup (at most 256; the rest as \"other\").", "cgroup"),
		counted: desc("kernel_refused_creations_total", "Process and thread creations the kernel refused (EAGAIN), counted in the kernel by the eBPF source since it attached, by the limit that refused (pid_max, threads_max, cgroup, nproc, unknown), what it limits (node, pod, unit, cgroup, user, namespace, unknown) and class (process, thread).",
			"limit", "subject", "class"),
		events:      desc("events_total", "Event occurrences by reason and what became of them: announced (a new Event), aggregated (counted into an Event already announced), summary (a later \"N times since\" Event), deferred (a new one held back by the write budget, events.maxWrites, and announced when it has room).", "reason", "outcome"),
		srcUp:       desc("source_up", "1 while the source runs.", "source"),
		srcEnabled:  desc("source_enabled", "1 if the source is configured on and supported here.", "source"),
		srcLines:    desc("source_records_total", "Records read (journal, kmsg), refusals seen (pids.events) or counted (ebpf).", "source"),
		srcOverruns: desc("source_overruns_total", "kmsg records overwritten in the ring before they were read.", "source"),
		srcLag:      desc("source_lag_seconds", "How old the last record was when it was read.", "source"),
		srcDropped:  desc("reports_dropped_total", "Source reports dropped because the detector fell behind."),
		sampleOK:    desc("node_sampled", "1 once the node headroom has been sampled."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.condition, c.conditionTrue, c.nodeTasks, c.nodeLimit, c.nodeHeadroom, c.nodeBinding, c.nodeUsed,
		c.predicted, c.predicting, c.cgTasks, c.cgLimit, c.cgHeadroom, c.cgRefusedTotal, c.matches, c.refused, c.counted, c.events,
		c.srcUp, c.srcEnabled, c.srcLines, c.srcOverruns, c.srcLag, c.srcDropped, c.sampleOK} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	v := c.src.View()
	gauge := func(d *prometheus.Desc, val float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, val, labels...)
	}
	counter := func(d *prometheus.Desc, val float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, val, labels...)
	}

	gauge(c.conditionTrue, b2f(v.Condition.Status))
	for _, r := range []verdict.Reason{verdict.ReasonExhausted, verdict.ReasonPredicted, verdict.ReasonLow, verdict.ReasonSufficient} {
		gauge(c.condition, b2f(v.Condition.Reason == r), string(r))
	}

	gauge(c.sampleOK, b2f(v.HasNode))
	if n := v.Node; v.HasNode {
		gauge(c.nodeTasks, float64(n.Tasks))
		for _, l := range []struct {
			name  string
			limit uint64
			b     headroom.Binding
		}{{"kernel.pid_max", n.PIDLimit, headroom.BindingPIDMax}, {"kernel.threads-max", n.ThreadsMax, headroom.BindingThreadsMax}} {
			gauge(c.nodeLimit, float64(l.limit), l.name)
			gauge(c.nodeHeadroom, float64(l.limit)-float64(n.Tasks), l.name)
			gauge(c.nodeBinding, b2f(n.Binding == l.b), l.name)
		}
		gauge(c.nodeUsed, n.UsedPercent/100)
	}
	gauge(c.predicting, b2f(v.Predicting))
	if v.Predicting {
		gauge(c.predicted, v.Prediction.Seconds())
	}

	for _, cg := range c.src.Cgroups() {
		ns, pod := "", ""
		if cg.Pod != nil {
			ns, pod = cg.Pod.Namespace, cg.Pod.Name
		}
		labels := []string{cg.Path, string(cg.Kind), ns, pod}
		gauge(c.cgTasks, float64(cg.Current), labels...)
		if !cg.Max.Unlimited {
			gauge(c.cgLimit, float64(cg.Max.Value), labels...)
			gauge(c.cgHeadroom, float64(cg.Max.Value)-float64(cg.Current), labels...)
		}
		if !cg.Estimated {
			counter(c.cgRefusedTotal, float64(cg.Refused), labels...)
		}
	}

	for k, n := range v.Matches {
		counter(c.matches, float64(n), k.Signature, k.Family, k.Trust)
	}
	for cg, n := range v.Refused {
		counter(c.refused, float64(n), cg)
	}
	for k, n := range v.Counted {
		counter(c.counted, float64(n), k.Limit, k.Subject, k.Class)
	}
	for _, r := range verdict.EventReasons() {
		t := v.Events[r]
		counter(c.events, float64(t.Announced), string(r), "announced")
		counter(c.events, float64(t.Aggregated), string(r), "aggregated")
		counter(c.events, float64(t.Summaries), string(r), "summary")
		counter(c.events, float64(t.Deferred), string(r), "deferred")
	}

	for _, s := range v.Sources {
		gauge(c.srcUp, b2f(s.Up), s.Name)
		gauge(c.srcEnabled, b2f(s.Enabled && !s.Unsupported), s.Name)
		counter(c.srcLines, float64(s.Lines), s.Name)
		if s.Name == "kmsg" {
			counter(c.srcOverruns, float64(s.Overruns), s.Name)
		}
		if s.Name != "pids.events" && s.Name != "ebpf" {
			gauge(c.srcLag, s.Lag.Seconds(), s.Name)
		}
	}
	counter(c.srcDropped, float64(v.Dropped))
}

// Health is nil when every source that is on and supported here runs and
// the node has been sampled; otherwise it says what is wrong.
func Health(v agent.View) error {
	var errs []string
	if !v.HasNode {
		errs = append(errs, "the node headroom has not been sampled")
	}
	if v.Sources == nil && v.HasNode {
		errs = append(errs, "the sources have not started")
	}
	for _, s := range v.Sources {
		if s.Enabled && !s.Unsupported && !s.Up {
			msg := "source " + s.Name + " is down"
			if s.Err != "" {
				msg += ": " + s.Err
			}
			errs = append(errs, msg)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func sourceState(s agent.SourceStat) string {
	switch {
	case !s.Enabled:
		return "off"
	case s.Unsupported:
		return "not supported here: " + s.Err
	case s.Up:
		return "up"
	case s.Err != "":
		return "down: " + s.Err
	}
	return "starting"
}

// Handler returns the HTTP handler: /metrics (this collector plus the Go
// runtime and process collectors) and /healthz (200 "ok", or 503 with the
// reasons).
func Handler(src Viewer) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		v := src.View()
		if err := Health(v); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, err)
		} else {
			_, _ = fmt.Fprintln(w, "ok")
		}
		for _, s := range v.Sources {
			_, _ = fmt.Fprintf(w, "%s: %s\n", s.Name, sourceState(s))
		}
	})
	return mux
}

// Serve listens on addr and serves Handler until ctx is done. The listener
// is opened before Serve returns, so an address in use is an error at once.
func Serve(ctx context.Context, addr string, src Viewer, log *slog.Logger) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	srv := &http.Server{Handler: Handler(src), ReadHeaderTimeout: 10 * time.Second}
	log.Info("metrics listening", "address", l.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}
