// Package config is the pid-pressure monitor's configuration: JSON with
// lowerCamelCase keys and durations as strings ("30s"), decoded strictly
// over the defaults, and validated all at once with field paths. The
// shipped default is config/pid-pressure-monitor.json, embedded.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"time"

	shipped "github.com/pidpressure/pidpressure/config"
	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// Duration is a time.Duration written as a string ("30s", "5m").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Config is the monitor configuration.
type Config struct {
	// Source names the reporter in conditions and events.
	Source string `json:"source"`
	// SampleInterval is how often the node headroom is sampled.
	SampleInterval Duration `json:"sampleInterval"`
	// Thresholds of the condition.
	Thresholds Thresholds `json:"thresholds"`
	// Events controls aggregation.
	Events Events `json:"events"`
	// Sources says which live sources run and where they read.
	Sources Sources `json:"sources"`
	// HostRoot is where the host's /proc, /sys and /var are.
	HostRoot string `json:"hostRoot"`
	// StateDir keeps read positions and the verdict across restarts ("" keeps none).
	StateDir string `json:"stateDir"`
	// MetricsAddress is where the agent's own metrics and /healthz listen
	// (host:port; "" serves none).
	MetricsAddress string `json:"metricsAddress"`
	// Signatures are extra rules, tried before the built-in catalog.
	Signatures []signature.Rule `json:"signatures,omitempty"`
}

// Thresholds of the PIDPressureRisk condition.
type Thresholds struct {
	WarningPercent  float64  `json:"warningPercent"`
	RecoveryPercent float64  `json:"recoveryPercent"`
	QuietPeriod     Duration `json:"quietPeriod"`
	FailureWindow   Duration `json:"failureWindow"`
	TrendWindow     Duration `json:"trendWindow"`
	Horizon         Duration `json:"horizon"`
	MinTrendSamples int      `json:"minTrendSamples"`
	MinTrendGrowth  uint64   `json:"minTrendGrowth"`
	ZombieThreshold uint64   `json:"zombieThreshold"`
}

// Events controls event aggregation.
type Events struct {
	Interval    Duration `json:"interval"`
	MaxSubjects int      `json:"maxSubjects"`
	MaxMessage  int      `json:"maxMessage"`
}

// Sources configures the live sources.
type Sources struct {
	Journal    JournalSource `json:"journal"`
	Kmsg       KmsgSource    `json:"kmsg"`
	PidsEvents PidsEvents    `json:"pidsEvents"`
}

// JournalSource configures the journal.
type JournalSource struct {
	Enabled bool `json:"enabled"`
	// Dir reads one journal directory instead of the system journal.
	Dir string `json:"dir,omitempty"`
}

// KmsgSource configures /dev/kmsg.
type KmsgSource struct {
	Enabled bool   `json:"enabled"`
	Path    string `json:"path"`
}

// PidsEvents configures the pids.events watcher.
type PidsEvents struct {
	Enabled bool `json:"enabled"`
	// Cgroups are extra cgroups to watch, as in /proc/PID/cgroup.
	Cgroups []string `json:"cgroups,omitempty"`
}

// Default returns the embedded default configuration.
func Default() Config {
	c, err := decode(Config{}, bytes.NewReader(shipped.DefaultMonitor))
	if err != nil {
		// The embedded file is tested (TestShippedConfig); this cannot happen
		// in a released binary.
		panic(fmt.Sprintf("embedded config/pid-pressure-monitor.json: %v", err)) //nolint:forbidigo // invariant: the shipped file is valid
	}
	return c
}

// LoadFile reads the configuration file at path, or returns the embedded
// default when path is "". Errors name the file.
func LoadFile(path string) (Config, error) {
	if path == "" {
		return Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer func() { _ = f.Close() }() // read-only
	c, err := Load(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Load reads a configuration file over the defaults, strictly (unknown
// fields are errors), and validates it.
func Load(r io.Reader) (Config, error) {
	c, err := decode(Default(), r)
	if err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

func decode(base Config, r io.Reader) (Config, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&base); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return Config{}, errors.New("config: more than one JSON value")
	}
	return base, nil
}

// Validate returns every problem at once, each with its field path.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Source == "" {
		bad("source", "must not be empty")
	}
	if c.SampleInterval.Duration < 100*time.Millisecond {
		bad("sampleInterval", "must be at least 100ms, is %s", c.SampleInterval)
	}
	t := c.Thresholds
	if t.WarningPercent <= 0 || t.WarningPercent > 100 {
		bad("thresholds.warningPercent", "must be in (0,100], is %g", t.WarningPercent)
	}
	if t.RecoveryPercent <= 0 || t.RecoveryPercent > t.WarningPercent {
		bad("thresholds.recoveryPercent", "must be in (0, warningPercent], is %g", t.RecoveryPercent)
	}
	for name, d := range map[string]Duration{"quietPeriod": t.QuietPeriod, "failureWindow": t.FailureWindow, "trendWindow": t.TrendWindow, "horizon": t.Horizon} {
		if d.Duration <= 0 {
			bad("thresholds."+name, "must be positive, is %s", d)
		}
	}
	if t.MinTrendSamples < 3 {
		bad("thresholds.minTrendSamples", "must be at least 3, is %d", t.MinTrendSamples)
	}
	if c.Events.Interval.Duration <= 0 {
		bad("events.interval", "must be positive, is %s", c.Events.Interval)
	}
	if c.Events.MaxSubjects < 1 {
		bad("events.maxSubjects", "must be at least 1, is %d", c.Events.MaxSubjects)
	}
	if c.Events.MaxMessage < 128 {
		bad("events.maxMessage", "must be at least 128, is %d", c.Events.MaxMessage)
	}
	if c.Sources.Kmsg.Enabled && c.Sources.Kmsg.Path == "" {
		bad("sources.kmsg.path", "must be set when kmsg is enabled")
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
	return errors.Join(errs...)
}

// Verdict returns the correlator's configuration.
func (c Config) Verdict() verdict.Config {
	t := c.Thresholds
	return verdict.Config{
		WarningPercent: t.WarningPercent, RecoveryPercent: t.RecoveryPercent,
		QuietPeriod: t.QuietPeriod.Duration, FailureWindow: t.FailureWindow.Duration,
		TrendWindow: t.TrendWindow.Duration, Horizon: t.Horizon.Duration,
		MinTrendSamples: t.MinTrendSamples, MinTrendGrowth: t.MinTrendGrowth,
		EventInterval: c.Events.Interval.Duration, MaxSubjects: c.Events.MaxSubjects,
		ZombieThreshold: t.ZombieThreshold, MaxMessage: c.Events.MaxMessage,
	}
}

// Detector returns the whole detector's configuration.
func (c Config) Detector() agent.DetectorConfig {
	sc := agent.Config{
		Root:       hostfs.New(c.HostRoot),
		Journal:    c.Sources.Journal.Enabled,
		JournalDir: c.Sources.Journal.Dir,
		PidsEvents: c.Sources.PidsEvents.Enabled,
		Cgroups:    append([]string(nil), c.Sources.PidsEvents.Cgroups...),
		StateDir:   c.StateDir,
	}
	if c.Sources.Kmsg.Enabled {
		sc.KmsgPath = c.Sources.Kmsg.Path
	}
	return agent.DetectorConfig{Sources: sc, Verdict: c.Verdict(), SampleInterval: c.SampleInterval.Duration}
}

// Rules returns the extra signatures followed by the built-in catalog.
func (c Config) Rules() []signature.Rule {
	return append(append([]signature.Rule(nil), c.Signatures...), signature.Builtin()...)
}

// Canonical returns the configuration as canonical JSON (2-space indent,
// trailing newline), the form of the shipped files.
func (c Config) Canonical() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
