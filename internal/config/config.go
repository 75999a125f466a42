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
	"os"
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
	// PrewarmThreads is how many OS threads a command creates at start-up
	// (agent.PrewarmThreads). It is a command-line setting only (not in the
	// file), validated with the rest.
	PrewarmThreads int `json:"-"`
}

// Bounds that Validate enforces. The upper bounds keep a typo from turning
// the agent into something else: a sampler that never samples, an Event
// aggregation that never announces, or a consumer of the very threads it
// watches.
const (
	// MinSampleInterval and MaxSampleInterval bound sampleInterval: a node
	// that fills its PID space in minutes must be seen doing it.
	MinSampleInterval = 100 * time.Millisecond
	MaxSampleInterval = 5 * time.Minute
	// MaxWindow bounds every other duration (quietPeriod, failureWindow,
	// trendWindow, horizon, events.interval).
	MaxWindow = 24 * time.Hour
	// MinEventInterval is the shortest Event aggregation interval: below it
	// a burst of lines becomes a burst of Events.
	MinEventInterval = time.Second
	// MaxEventSubjects bounds events.maxSubjects.
	MaxEventSubjects = 100
	// MaxEventWrites bounds events.maxWrites.
	MaxEventWrites = 1000
	// MaxMessage bounds events.maxMessage (bytes).
	MaxMessage = 32 << 10
	// MaxTrendSamples bounds thresholds.minTrendSamples.
	MaxTrendSamples = 10000
	// MaxPrewarmThreads bounds PrewarmThreads; the Go runtime stops the
	// program at 10000 threads.
	MaxPrewarmThreads = 1024
)

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
	// MaxWrites bounds the Events of failures written in any
	// MaxWritesWindow (the apiserver's budget for one node in a storm).
	MaxWrites       int      `json:"maxWrites"`
	MaxWritesWindow Duration `json:"maxWritesWindow"`
}

// Sources configures the live sources.
type Sources struct {
	Journal    JournalSource `json:"journal"`
	Kmsg       KmsgSource    `json:"kmsg"`
	PidsEvents PidsEvents    `json:"pidsEvents"`
	EBPF       EBPFSource    `json:"ebpf"`
}

// EBPFSource configures the eBPF counter of refused creations.
type EBPFSource struct {
	// Mode is auto (attach by fexit where the kernel allows it, at no cost
	// to other system calls), on (fexit, else the syscall tracepoints,
	// which tax every system call), or off.
	Mode string `json:"mode"`
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
	c, unknown, err := decode(Config{}, bytes.NewReader(shipped.DefaultMonitor))
	if err = errors.Join(append(unknown, err)...); err != nil {
		// The embedded file is tested (TestShippedConfig); this cannot happen
		// in a released binary.
		panic(fmt.Sprintf("embedded config/pid-pressure-monitor.json: %v", err)) //nolint:forbidigo // invariant: the shipped file is valid
	}
	c.PrewarmThreads = agent.DefaultThreads
	return c
}

// LoadFile reads the configuration file at path (the embedded default when
// path is ""), applies the overrides in order (a command's flags), and
// validates the result once. The error reports every problem at once, each
// with its field path: unknown fields first, then the values that are out of
// range. Errors name the file.
func LoadFile(path string, overrides ...func(*Config)) (Config, error) {
	if path == "" {
		return load(bytes.NewReader(shipped.DefaultMonitor), overrides)
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer func() { _ = f.Close() }() // read-only
	c, err := load(f, overrides)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Load reads a configuration file over the defaults, strictly (unknown
// fields are errors), applies the overrides, and validates the result.
func Load(r io.Reader, overrides ...func(*Config)) (Config, error) {
	return load(r, overrides)
}

func load(r io.Reader, overrides []func(*Config)) (Config, error) {
	c, unknown, err := decode(Default(), r)
	if err != nil {
		return Config{}, errors.Join(append(unknown, err)...)
	}
	for _, o := range overrides {
		o(&c)
	}
	if err := errors.Join(append(unknown, c.Validate())...); err != nil {
		return Config{}, err
	}
	return c, nil
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
		MaxWrites: c.Events.MaxWrites, MaxWritesWindow: c.Events.MaxWritesWindow.Duration,
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
		EBPF:       c.Sources.EBPF.Mode,
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
