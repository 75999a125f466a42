package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/pidpressure/pidpressure/internal/config"
)

// configFlags binds a command's flags onto the fields of a config.Config.
// The file (or the embedded default) is read first, each flag given
// explicitly then overrides its field, and the result goes through
// config.Validate once: a value is checked the same whether it comes from the
// file or the command line.
type configFlags struct {
	fs      *pflag.FlagSet
	def     config.Config
	path    string
	applies []func(*config.Config)
}

func newConfigFlags(fs *pflag.FlagSet, withConfigFlag bool) *configFlags {
	b := &configFlags{fs: fs, def: config.Default()}
	if withConfigFlag {
		fs.StringVar(&b.path, "config", "", "monitor configuration file (JSON); default: the embedded config/pid-pressure-monitor.json; flags given explicitly override it")
	}
	return b
}

// on registers what flag name does to the config when it is given.
func (b *configFlags) on(name string, apply func(*config.Config)) {
	b.applies = append(b.applies, func(c *config.Config) {
		if b.fs.Changed(name) {
			apply(c)
		}
	})
}

// load reads the configuration, applies the flags given and validates the
// result; the error lists every problem with its field path.
func (b *configFlags) load() (config.Config, error) {
	return config.LoadFile(b.path, func(c *config.Config) {
		for _, a := range b.applies {
			a(c)
		}
	})
}

// bindFlag defines a flag whose value replaces the field at key (named in the
// help) when the flag is given; its default is the embedded config's.
func bindFlag[T any](b *configFlags, define func(p *T, name string, value T, usage string), name, key, usage string, field func(*config.Config) *T) {
	v := new(T)
	define(v, name, *field(&b.def), fmt.Sprintf("%s (config: %s)", usage, key))
	b.on(name, func(c *config.Config) { *field(c) = *v })
}

// bindSources defines the flags of the live sources and the host.
func (b *configFlags) bindSources(cgroupUsage string) {
	f := b.fs
	b.bindHostRoot()
	kmsgPath := f.String("kmsg-path", b.def.Sources.Kmsg.Path, "kernel log device; empty disables it (config: sources.kmsg)")
	b.on("kmsg-path", func(c *config.Config) {
		c.Sources.Kmsg.Path, c.Sources.Kmsg.Enabled = *kmsgPath, *kmsgPath != ""
	})
	noJournal := f.Bool("no-journal", false, "do not read the journal (config: sources.journal.enabled)")
	b.on("no-journal", func(c *config.Config) { c.Sources.Journal.Enabled = !*noJournal })
	bindFlag(b, f.StringVar, "journal-dir", "sources.journal.dir", "read the journal files of this directory instead of the system journal", func(c *config.Config) *string { return &c.Sources.Journal.Dir })
	noPidsEvents := f.Bool("no-pids-events", false, "do not watch pids.events (config: sources.pidsEvents.enabled)")
	b.on("no-pids-events", func(c *config.Config) { c.Sources.PidsEvents.Enabled = !*noPidsEvents })
	bindFlag(b, f.StringVar, "ebpf", "sources.ebpf.mode", "the eBPF counter of refused creations: auto (by fexit, where the kernel allows it), on (fexit, else the syscall tracepoints, which tax every system call), or off", func(c *config.Config) *string { return &c.Sources.EBPF.Mode })
	cgroups := f.StringArray("cgroup", nil, cgroupUsage+" (config: sources.pidsEvents.cgroups, added to)")
	b.on("cgroup", func(c *config.Config) {
		c.Sources.PidsEvents.Cgroups = append(c.Sources.PidsEvents.Cgroups, *cgroups...)
	})
}

// bindHostRoot defines --host-root. A relative directory is taken from the
// working directory (the file's hostRoot must be absolute: relative to what
// would be unclear).
func (b *configFlags) bindHostRoot() {
	root := b.fs.String("host-root", b.def.HostRoot, "directory the host's /proc, /sys and /var are under (config: hostRoot)")
	b.on("host-root", func(c *config.Config) {
		c.HostRoot = *root
		if abs, err := filepath.Abs(*root); err == nil && *root != "" {
			c.HostRoot = abs
		}
	})
}

// bindStateDir defines --state-dir.
func (b *configFlags) bindStateDir(usage string) {
	bindFlag(b, b.fs.StringVar, "state-dir", "stateDir", usage, func(c *config.Config) *string { return &c.StateDir })
}

// bindPrewarm defines --prewarm-threads with the command's own default.
func (b *configFlags) bindPrewarm(def int, usage string) {
	n := b.fs.Int("prewarm-threads", def, fmt.Sprintf("%s; at most %d", usage, config.MaxPrewarmThreads))
	b.applies = append(b.applies, func(c *config.Config) { c.PrewarmThreads = *n })
}

// bindVerdict defines the flags of the sampler and the condition.
func (b *configFlags) bindVerdict() {
	f := b.fs
	dur := func(name, key, usage string, field func(*config.Config) *config.Duration) {
		bindFlag(b, f.DurationVar, name, key, usage, func(c *config.Config) *time.Duration { return &field(c).Duration })
	}
	dur("sample-interval", "sampleInterval", "how often the node headroom is sampled", func(c *config.Config) *config.Duration { return &c.SampleInterval })
	bindFlag(b, f.Float64Var, "warning-percent", "thresholds.warningPercent", "node usage (percent of the usable limit) that turns the condition True", func(c *config.Config) *float64 { return &c.Thresholds.WarningPercent })
	bindFlag(b, f.Float64Var, "recovery-percent", "thresholds.recoveryPercent", "node usage below which the condition may turn False", func(c *config.Config) *float64 { return &c.Thresholds.RecoveryPercent })
	dur("quiet-period", "thresholds.quietPeriod", "how long without a reason before the condition turns False", func(c *config.Config) *config.Duration { return &c.Thresholds.QuietPeriod })
	dur("failure-window", "thresholds.failureWindow", "how long a node-level failure keeps PIDExhausted", func(c *config.Config) *config.Duration { return &c.Thresholds.FailureWindow })
	dur("horizon", "thresholds.horizon", "predicted exhaustion within it is PIDExhaustionPredicted", func(c *config.Config) *config.Duration { return &c.Thresholds.Horizon })
	dur("event-interval", "events.interval", "a subject's repeated events are announced at most once per interval", func(c *config.Config) *config.Duration { return &c.Events.Interval })
}

// prepareStateDir creates the state directory (0700) when it is missing and
// checks at start that a file can be written in it, so that a directory that
// cannot hold the state stops the command with one clear error instead of a
// warning at every save.
func prepareStateDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	probe, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("state directory %s is not writable: %w", dir, err)
	}
	name := probe.Name()
	return errors.Join(probe.Close(), os.Remove(name))
}
