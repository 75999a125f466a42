package config

import (
	"errors"
	"fmt"
	"net"
	"path"

	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/signature"
)

// Validate returns every problem at once, each with its field path.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Source == "" {
		bad("source", "must not be empty")
	}
	if d := c.SampleInterval.Duration; d < MinSampleInterval || d > MaxSampleInterval {
		bad("sampleInterval", "must be in [%s, %s], is %s", MinSampleInterval, MaxSampleInterval, c.SampleInterval)
	}
	t := c.Thresholds
	if !(t.WarningPercent > 0 && t.WarningPercent <= 100) {
		bad("thresholds.warningPercent", "must be in (0,100], is %g", t.WarningPercent)
	}
	if !(t.RecoveryPercent > 0 && t.RecoveryPercent <= t.WarningPercent) {
		bad("thresholds.recoveryPercent", "must be in (0, warningPercent], is %g", t.RecoveryPercent)
	}
	for _, w := range []struct {
		name string
		d    Duration
	}{{"quietPeriod", t.QuietPeriod}, {"failureWindow", t.FailureWindow}, {"trendWindow", t.TrendWindow}, {"horizon", t.Horizon}} {
		if w.d.Duration <= 0 || w.d.Duration > MaxWindow {
			bad("thresholds."+w.name, "must be positive and at most %s, is %s", MaxWindow, w.d)
		}
	}
	if t.MinTrendSamples < 3 || t.MinTrendSamples > MaxTrendSamples {
		bad("thresholds.minTrendSamples", "must be in [3, %d], is %d", MaxTrendSamples, t.MinTrendSamples)
	}
	if d := c.Events.Interval.Duration; d < MinEventInterval || d > MaxWindow {
		bad("events.interval", "must be in [%s, %s], is %s", MinEventInterval, MaxWindow, c.Events.Interval)
	}
	if c.Events.MaxSubjects < 1 || c.Events.MaxSubjects > MaxEventSubjects {
		bad("events.maxSubjects", "must be in [1, %d], is %d", MaxEventSubjects, c.Events.MaxSubjects)
	}
	if c.Events.MaxWrites < 1 || c.Events.MaxWrites > MaxEventWrites {
		bad("events.maxWrites", "must be in [1, %d], is %d", MaxEventWrites, c.Events.MaxWrites)
	}
	if d := c.Events.MaxWritesWindow.Duration; d < c.Events.Interval.Duration || d > MaxWindow {
		bad("events.maxWritesWindow", "must be in [events.interval, %s], is %s", MaxWindow, c.Events.MaxWritesWindow)
	}
	if c.Events.MaxMessage < 128 || c.Events.MaxMessage > MaxMessage {
		bad("events.maxMessage", "must be in [128, %d], is %d", MaxMessage, c.Events.MaxMessage)
	}
	if c.Sources.Kmsg.Enabled && c.Sources.Kmsg.Path == "" {
		bad("sources.kmsg.path", "must be set when kmsg is enabled")
	}
	switch c.Sources.EBPF.Mode {
	case agent.EBPFAuto, agent.EBPFOn, agent.EBPFOff:
	default:
		bad("sources.ebpf.mode", "must be auto, on or off, is %q", c.Sources.EBPF.Mode)
	}
	if c.HostRoot == "" || !path.IsAbs(c.HostRoot) {
		bad("hostRoot", "must be an absolute path, is %q", c.HostRoot)
	}
	if c.MetricsAddress != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddress); err != nil || port == "" {
			bad("metricsAddress", "must be host:port (\"127.0.0.1:20258\", \":20258\"), is %q", c.MetricsAddress)
		}
	}
	for i, p := range c.Sources.PidsEvents.Cgroups {
		if !path.IsAbs(p) {
			bad(fmt.Sprintf("sources.pidsEvents.cgroups[%d]", i), "must start with /, is %q", p)
		}
	}
	builtin := map[string]bool{}
	for _, r := range signature.Builtin() {
		builtin[r.ID] = true
	}
	seen := map[string]int{}
	for i, r := range c.Signatures {
		field := fmt.Sprintf("signatures[%d]", i)
		if _, err := signature.NewMatcher([]signature.Rule{r}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
		if builtin[r.ID] {
			bad(field+".id", "%s is a built-in signature", r.ID)
		}
		if j, dup := seen[r.ID]; dup {
			bad(field+".id", "%s is already used by signatures[%d]", r.ID, j)
		}
		seen[r.ID] = i
	}
	if c.PrewarmThreads < 0 || c.PrewarmThreads > MaxPrewarmThreads {
		bad("prewarmThreads", "must be in [0, %d], is %d", MaxPrewarmThreads, c.PrewarmThreads)
	}
	return errors.Join(errs...)
}
