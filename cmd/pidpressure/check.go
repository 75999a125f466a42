package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/config"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// The exit codes of NPD's custom plugin protocol.
const (
	checkOK      = 0
	checkProblem = 1
	checkUnknown = 2
)

// checkLineMax bounds the one line check prints (NPD cuts at its
// max_output_length; this keeps the reason and the start of the message).
const checkLineMax = 512

// minCheckWindow and maxCheckWindow bound --window: long enough to read the
// sources once, short enough to answer within NPD's plugin timeout (10 s in
// config/pid-pressure-plugin.json).
const (
	minCheckWindow = 100 * time.Millisecond
	maxCheckWindow = time.Minute
)

// checkStateDir is where check keeps its state when neither the file nor
// --state-dir names a directory.
const checkStateDir = "/var/lib/pidpressure/check"

// eventSink keeps nothing: check reports the condition, which already
// reflects the events' evidence.
type eventSink struct{}

func (eventSink) Condition(verdict.Condition) {}
func (eventSink) Event(verdict.Event)         {}

func newCheckCmd() *cobra.Command {
	var (
		flags  *configFlags
		window time.Duration
	)
	cmd := &cobra.Command{
		Use:   "check [flags]",
		Short: "One check in NPD's custom plugin protocol: exit 0 fine, 1 problem, 2 unknown, one line on stdout",
		Long: `check samples the node headroom once and reads what the journal, /dev/kmsg
and pids.events gained since the last check (positions and the verdict are
kept in --state-dir), for --window, then prints one line — the
PIDPressureRisk reason and message — and exits 0 (False), 1 (True) or
2 (unknown: the check itself failed).

It is for nodes that keep a stock Node Problem Detector: see
config/pid-pressure-plugin.json. An exec-based check cannot start when the
node cannot fork, which is when it matters most; the in-process monitor
(node-problem-detector --config.pid-pressure-monitor) keeps reporting then
and is the recommended form.`,
		Example: `  pidpressure check --state-dir /var/lib/pidpressure/check`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			unknown := func(err error) error {
				_, _ = fmt.Fprintln(out, logline.Sanitize(string(verdict.ReasonUnknown)+": "+err.Error(), checkLineMax))
				return exitCodeError{checkUnknown}
			}
			conf, err := flags.load()
			if err != nil {
				return unknown(err)
			}
			if window < minCheckWindow || window > maxCheckWindow {
				return unknown(fmt.Errorf("--window must be in [%s, %s], is %s", minCheckWindow, maxCheckWindow, window))
			}
			if err := prepareStateDir(conf.StateDir); err != nil {
				return unknown(err)
			}
			dc := conf.Detector()
			agent.PrewarmThreads(conf.PrewarmThreads, 0)
			m, err := signature.NewMatcher(conf.Rules())
			if err != nil {
				return unknown(err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			d := agent.NewDetector(dc, m, clock.RealClock{}, log, eventSink{})
			ctx, cancel := context.WithTimeout(cmd.Context(), window)
			defer cancel()
			if err := d.Run(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return unknown(err)
			}
			c := d.View().Condition
			_, _ = fmt.Fprintln(out, logline.Sanitize(string(c.Reason)+": "+c.Message, checkLineMax))
			if c.Status {
				return exitCodeError{checkProblem}
			}
			return nil
		},
	}
	f := cmd.Flags()
	flags = newConfigFlags(f, true)
	flags.bindHostRoot()
	stateDir := f.String("state-dir", checkStateDir, "keep read positions and the verdict here between checks, created 0700 if missing (\"\" keeps none: each check sees only its window) (config: stateDir; used when the file sets none)")
	flags.on("state-dir", func(c *config.Config) { c.StateDir = *stateDir })
	flags.applies = append(flags.applies, func(c *config.Config) {
		if c.StateDir == "" && !f.Changed("state-dir") {
			c.StateDir = checkStateDir
		}
	})
	f.DurationVar(&window, "window", 3*time.Second, fmt.Sprintf("how long to read the sources and sample before answering, in [%s, %s]", minCheckWindow, maxCheckWindow))
	flags.bindPrewarm(0, "OS threads to create at start-up (a short-lived check needs none)")
	return cmd
}
