package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/config"
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
	var output string
	var flags *configFlags
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
condition True. With every source disabled it still samples the node
headroom and reports the condition.

The flags override the configuration file's fields (each flag's help names
its field); the result is validated as a whole, with the file's rules.`,
		Example: `  pidpressure watch
  pidpressure watch -o jsonl --state-dir /var/lib/pidpressure`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "jsonl" {
				return usageError{fmt.Errorf("unknown output %q: want text or jsonl", output)}
			}
			conf, err := flags.load()
			if err != nil {
				return err
			}
			if err := prepareStateDir(conf.StateDir); err != nil {
				return err
			}
			agent.PrewarmThreads(conf.PrewarmThreads, 0)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			m, err := signature.NewMatcher(conf.Rules())
			if err != nil {
				return err
			}
			d := agent.NewDetector(conf.Detector(), m, clock.RealClock{}, log, newRecordWriter(cmd.OutOrStdout(), output))
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
	flags = newConfigFlags(f, true)
	flags.bindSources("also watch this cgroup (path as in /proc/PID/cgroup); repeatable")
	flags.bindStateDir("keep read positions and the verdict in this directory (created 0700 if missing), to resume after a restart")
	bindFlag(flags, f.StringVar, "metrics-address", "metricsAddress", "serve Prometheus metrics (/metrics) and /healthz on this host:port", func(c *config.Config) *string { return &c.MetricsAddress })
	flags.bindPrewarm(agent.DefaultThreads, "OS threads to create at start-up")
	flags.bindVerdict()
	return cmd
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
