package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/config"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/metrics"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// watchRecord is one line of "watch -o jsonl".
type watchRecord struct {
	Time               string `json:"time"`
	Kind               string `json:"kind"`
	Type               string `json:"type"`
	Status             string `json:"status,omitempty"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
	LastTransitionTime string `json:"lastTransitionTime,omitempty"`
	Subject            string `json:"subject,omitempty"`
	Count              int    `json:"count,omitempty"`
}

func newWatchCmd() *cobra.Command {
	var (
		output, configPath, hostRoot, kmsgPath, journalDir, stateDir, metricsAddr string
		noJournal, noPidsEvents                                                   bool
		cgroups                                                                   []string
		threads                                                                   int
		sampleEvery                                                               time.Duration
	)
	def := config.Default()
	cfg := def.Verdict()
	cmd := &cobra.Command{
		Use:   "watch [flags]",
		Short: "Run the whole detector in the foreground and print the condition and events",
		Long: `watch runs the detector on this machine, with no cluster: the live sources
(journal, /dev/kmsg, pids.events), the headroom sampler and the verdict. It
prints the node condition PIDPressureRisk when it changes (the first record is
the initial condition) and every Event, as they happen.

Each failure is attributed, at the moment it is seen, to the limit that binds:
kernel.pid_max or kernel.threads-max, a pids cgroup (a pod, a node component's
unit), a user's RLIMIT_NPROC, or none. Log text alone never turns the
condition True.`,
		Example: `  pidpressure watch
  pidpressure watch -o jsonl --state-dir /var/lib/pidpressure`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "jsonl" {
				return usageError{fmt.Errorf("unknown output %q: want text or jsonl", output)}
			}
			conf, err := config.LoadFile(configPath)
			if err != nil {
				return err
			}
			vc, sc := resolveWatchConfig(cmd.Flags(), conf, cfg, agent.Config{
				KmsgPath: kmsgPath, Journal: !noJournal, JournalDir: journalDir, PidsEvents: !noPidsEvents, Cgroups: cgroups, StateDir: stateDir,
			}, hostRoot, &sampleEvery)
			agent.PrewarmThreads(threads, 0)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			m, err := signature.NewMatcher(conf.Rules())
			if err != nil {
				return err
			}
			d := agent.NewDetector(agent.DetectorConfig{Sources: sc, Verdict: vc, SampleInterval: sampleEvery},
				m, clock.RealClock{}, log, newRecordWriter(cmd.OutOrStdout(), output))
			if cmd.Flags().Changed("metrics-address") {
				conf.MetricsAddress = metricsAddr
			}
			if conf.MetricsAddress != "" {
				if err := metrics.Serve(cmd.Context(), conf.MetricsAddress, d, log); err != nil {
					return err
				}
			}
			return d.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "text", "output form: text or jsonl (one object per condition change or event, flushed as it happens)")
	f.StringVar(&configPath, "config", "", "monitor configuration file (JSON); default: the embedded config/pid-pressure-monitor.json; flags given explicitly override it")
	f.StringVar(&hostRoot, "host-root", "/", "directory the host's /proc, /sys and /var are under")
	f.StringVar(&kmsgPath, "kmsg-path", "/dev/kmsg", "kernel log device; empty disables it")
	f.BoolVar(&noJournal, "no-journal", false, "do not read the journal")
	f.StringVar(&journalDir, "journal-dir", "", "read the journal files of this directory instead of the system journal")
	f.BoolVar(&noPidsEvents, "no-pids-events", false, "do not watch pids.events")
	f.StringArrayVar(&cgroups, "cgroup", nil, "also watch this cgroup (path as in /proc/PID/cgroup); repeatable")
	f.StringVar(&stateDir, "state-dir", "", "keep read positions in this directory, to resume after a restart")
	f.StringVar(&metricsAddr, "metrics-address", "", "serve Prometheus metrics (/metrics) and /healthz on this host:port; default: the config's metricsAddress (none)")
	f.IntVar(&threads, "prewarm-threads", agent.DefaultThreads, "OS threads to create at start-up")
	f.DurationVar(&sampleEvery, "sample-interval", def.SampleInterval.Duration, "how often the node headroom is sampled")
	f.Float64Var(&cfg.WarningPercent, "warning-percent", cfg.WarningPercent, "node usage (percent of the usable limit) that turns the condition True")
	f.Float64Var(&cfg.RecoveryPercent, "recovery-percent", cfg.RecoveryPercent, "node usage below which the condition may turn False")
	f.DurationVar(&cfg.QuietPeriod, "quiet-period", cfg.QuietPeriod, "how long without a reason before the condition turns False")
	f.DurationVar(&cfg.FailureWindow, "failure-window", cfg.FailureWindow, "how long a node-level failure keeps PIDExhausted")
	f.DurationVar(&cfg.Horizon, "horizon", cfg.Horizon, "predicted exhaustion within it is PIDExhaustionPredicted")
	f.DurationVar(&cfg.EventInterval, "event-interval", cfg.EventInterval, "a subject's repeated events are announced at most once per interval")
	return cmd
}

// resolveWatchConfig starts from the configuration file and applies the
// flags that were given explicitly.
func resolveWatchConfig(fs *pflag.FlagSet, conf config.Config, vflags verdict.Config, sflags agent.Config, hostRoot string, sampleEvery *time.Duration) (verdict.Config, agent.Config) {
	vc := conf.Verdict()
	set := fs.Changed
	if set("warning-percent") {
		vc.WarningPercent = vflags.WarningPercent
	}
	if set("recovery-percent") {
		vc.RecoveryPercent = vflags.RecoveryPercent
	}
	if set("quiet-period") {
		vc.QuietPeriod = vflags.QuietPeriod
	}
	if set("failure-window") {
		vc.FailureWindow = vflags.FailureWindow
	}
	if set("horizon") {
		vc.Horizon = vflags.Horizon
	}
	if set("event-interval") {
		vc.EventInterval = vflags.EventInterval
	}
	sc := conf.Detector().Sources
	if set("host-root") {
		sc.Root = hostfs.New(hostRoot)
	}
	sc.Cgroups = append(sc.Cgroups, sflags.Cgroups...)
	if set("kmsg-path") {
		sc.KmsgPath = sflags.KmsgPath
	}
	if set("no-journal") {
		sc.Journal = sflags.Journal
	}
	if set("journal-dir") {
		sc.JournalDir = sflags.JournalDir
	}
	if set("no-pids-events") {
		sc.PidsEvents = sflags.PidsEvents
	}
	if set("state-dir") {
		sc.StateDir = sflags.StateDir
	}
	if !set("sample-interval") {
		*sampleEvery = conf.SampleInterval.Duration
	}
	return vc, sc
}

type recordWriter struct {
	bw     *bufio.Writer
	enc    *json.Encoder
	output string
}

func newRecordWriter(w io.Writer, output string) *recordWriter {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &recordWriter{bw: bw, enc: enc, output: output}
}

// Condition prints a condition record.
func (rw *recordWriter) Condition(c verdict.Condition) {
	status := "False"
	if c.Status {
		status = "True"
	}
	rw.write(watchRecord{Time: now(), Kind: "condition", Type: c.Type, Status: status, Reason: string(c.Reason), Message: c.Message,
		LastTransitionTime: c.LastTransitionTime.UTC().Format(time.RFC3339)})
}

// Event prints an event record.
func (rw *recordWriter) Event(e verdict.Event) {
	typ := "Normal"
	if e.Warning {
		typ = "Warning"
	}
	rw.write(watchRecord{Time: now(), Kind: "event", Type: typ, Reason: string(e.Reason), Subject: e.Subject, Count: e.Count, Message: e.Message})
}

func (rw *recordWriter) write(r watchRecord) {
	switch {
	case rw.output == "jsonl":
		_ = rw.enc.Encode(r)
	case r.Kind == "condition":
		_, _ = fmt.Fprintf(rw.bw, "%s  %s=%s  %s: %s\n", r.Time, r.Type, r.Status, r.Reason, r.Message)
	default:
		_, _ = fmt.Fprintf(rw.bw, "%s  %s event %s  [%s] x%d: %s\n", r.Time, r.Type, r.Reason, r.Subject, r.Count, r.Message)
	}
	_ = rw.bw.Flush()
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }
