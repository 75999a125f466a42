package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestShippedConfig: every config/*.json loads, validates, and is canonical
// JSON (2-space indent, trailing newline, the fields in their order).
func TestShippedConfig(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "pid-pressure-monitor*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped configs: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Load(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		canon, err := c.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(canon, b) {
			t.Errorf("%s is not canonical; want:\n%s", f, canon)
		}
	}
	d := Default()
	if d.SampleInterval.Duration != 2*time.Second || d.Thresholds.WarningPercent != 85 || !d.Sources.Kmsg.Enabled {
		t.Errorf("Default() = %+v", d)
	}
	if v := d.Verdict(); v.QuietPeriod != 5*time.Minute || v.MaxSubjects != 5 || v.MaxMessage != 1024 {
		t.Errorf("Verdict() = %+v", v)
	}
}

func TestLoadOverlaysDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(strings.NewReader(`{"thresholds":{"warningPercent":90},"sources":{"kmsg":{"enabled":false}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Thresholds.WarningPercent != 90 || c.Thresholds.RecoveryPercent != 80 || c.Sources.Kmsg.Enabled || !c.Sources.Journal.Enabled {
		t.Errorf("overlay = %+v", c)
	}
}

// TestValidateReportsEverything: all problems at once, each with its path.
func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	in := `{
	  "source": "",
	  "sampleInterval": "10ms",
	  "thresholds": {"warningPercent": 150, "recoveryPercent": 160, "quietPeriod": "0s", "minTrendSamples": 1},
	  "events": {"interval": "1m", "maxSubjects": 0, "maxMessage": 10},
	  "hostRoot": "host",
	  "metricsAddress": "20258",
	  "sources": {"pidsEvents": {"enabled": true, "cgroups": ["kubepods.slice"]}},
	  "signatures": [
	    {"id": "MyThing", "family": "app", "class": "thread", "strength": "definitive", "anchors": ["mything"], "pattern": "mything failed"},
	    {"id": "Bad", "family": "app", "class": "thread", "strength": "definitive", "anchors": ["x"], "pattern": "(unclosed"},
	    {"id": "GoThreadCreateFailed", "family": "go", "class": "thread", "strength": "definitive", "anchors": ["y"], "pattern": "y"},
	    {"id": "MyThing", "family": "app", "class": "process", "strength": "definitive", "anchors": ["z"], "pattern": "z"}
	  ]
	}`
	_, err := Load(strings.NewReader(in))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{
		"source: must not be empty",
		"sampleInterval: must be in [100ms, 5m0s], is 10ms",
		"thresholds.warningPercent: must be in (0,100]",
		"thresholds.recoveryPercent: must be in (0, warningPercent]",
		"thresholds.quietPeriod: must be positive",
		"thresholds.minTrendSamples: must be in [3, 10000], is 1",
		"events.maxSubjects: must be in [1, 100], is 0",
		"events.maxMessage: must be in [128, 32768], is 10",
		"hostRoot: must be an absolute path",
		"sources.pidsEvents.cgroups[0]: must start with /",
		`metricsAddress: must be host:port ("127.0.0.1:20258", ":20258"), is "20258"`,
		"signatures[1]: rules[0]: invalid rule Bad: pattern:",
		"signatures[2].id: GoThreadCreateFailed is a built-in signature",
		"signatures[3].id: MyThing is already used by signatures[0]",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"unknown field":   `{"sampleIntervall": "2s"}`,
		"bad duration":    `{"sampleInterval": "soon"}`,
		"number duration": `{"sampleInterval": 2}`,
		"not json":        `sampleInterval: 2s`,
		"two values":      `{} {}`,
		"empty":           ``,
		"wrong type":      `{"thresholds": {"warningPercent": "high"}}`,
	} {
		if _, err := Load(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted %q", name, in)
		}
	}
}

func TestExtraSignaturesComeFirst(t *testing.T) {
	t.Parallel()
	c, err := Load(strings.NewReader(`{"signatures":[{"id":"MyThing","family":"app","class":"thread","strength":"definitive","anchors":["mything"],"pattern":"mything failed"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Rules(); r[0].ID != "MyThing" || len(r) < 40 {
		t.Errorf("rules start %q, %d in all", r[0].ID, len(r))
	}
}

// TestValidateBounds: every numeric setting has a lower and an upper bound,
// so that a value given on the command line cannot slip past the checks the
// file gets.
func TestValidateBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		set  func(*Config)
		want string // "" is valid
	}{
		{name: "default", set: func(*Config) {}},
		{name: "event interval zero", set: func(c *Config) { c.Events.Interval.Duration = 0 }, want: "events.interval: must be in [1s, 24h0m0s], is 0s"},
		{name: "event interval below a second", set: func(c *Config) { c.Events.Interval.Duration = time.Millisecond }, want: "events.interval: must be in [1s, 24h0m0s]"},
		{name: "event interval a week", set: func(c *Config) { c.Events.Interval.Duration = 7 * 24 * time.Hour }, want: "events.interval: must be in [1s, 24h0m0s]"},
		{name: "warning zero", set: func(c *Config) { c.Thresholds.WarningPercent = 0 }, want: "thresholds.warningPercent: must be in (0,100], is 0"},
		{name: "recovery above warning", set: func(c *Config) { c.Thresholds.RecoveryPercent = 90 }, want: "thresholds.recoveryPercent: must be in (0, warningPercent], is 90"},
		{name: "negative quiet period", set: func(c *Config) { c.Thresholds.QuietPeriod.Duration = -time.Second }, want: "thresholds.quietPeriod: must be positive and at most 24h0m0s, is -1s"},
		{name: "negative failure window", set: func(c *Config) { c.Thresholds.FailureWindow.Duration = -time.Second }, want: "thresholds.failureWindow: must be positive"},
		{name: "horizon a year", set: func(c *Config) { c.Thresholds.Horizon.Duration = 365 * 24 * time.Hour }, want: "thresholds.horizon: must be positive and at most 24h0m0s"},
		{name: "sample interval an hour", set: func(c *Config) { c.SampleInterval.Duration = time.Hour }, want: "sampleInterval: must be in [100ms, 5m0s], is 1h0m0s"},
		{name: "sample interval at the bound", set: func(c *Config) { c.SampleInterval.Duration = MaxSampleInterval }},
		{name: "prewarm negative", set: func(c *Config) { c.PrewarmThreads = -1 }, want: "prewarmThreads: must be in [0, 1024], is -1"},
		{name: "prewarm huge", set: func(c *Config) { c.PrewarmThreads = 100000000 }, want: "prewarmThreads: must be in [0, 1024], is 100000000"},
		{name: "prewarm none", set: func(c *Config) { c.PrewarmThreads = 0 }},
		{name: "max message huge", set: func(c *Config) { c.Events.MaxMessage = 1 << 30 }, want: "events.maxMessage: must be in [128, 32768]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(strings.NewReader(`{}`), tt.set)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Load() = %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Load() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestUnknownFieldsDoNotHideTheRest: an unknown field is reported together
// with the validation problems of the rest, all with field paths, in the
// same order every time.
func TestUnknownFieldsDoNotHideTheRest(t *testing.T) {
	t.Parallel()
	in := `{
	  "sampleIntervall": "2s",
	  "thresholds": {"warningPercent": 0, "recoveryPercent": 0, "quietPeriod": "0s", "failureWindow": "-1s", "horizn": "1m"},
	  "events": {"interval": "0s"},
	  "signatures": [{"id": "MyThing", "family": "app", "class": "thread", "strength": "definitive", "anchors": ["m"], "pattern": "m", "patern": "x"}],
	  "Source": "upper-case keys match as encoding/json matches them"
	}`
	_, err := Load(strings.NewReader(in))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	want := strings.Join([]string{
		"sampleIntervall: unknown field",
		"signatures[0].patern: unknown field",
		"thresholds.horizn: unknown field",
		"thresholds.warningPercent: must be in (0,100], is 0",
		"thresholds.recoveryPercent: must be in (0, warningPercent], is 0",
		"thresholds.quietPeriod: must be positive and at most 24h0m0s, is 0s",
		"thresholds.failureWindow: must be positive and at most 24h0m0s, is -1s",
		"events.interval: must be in [1s, 24h0m0s], is 0s",
	}, "\n")
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Load() error mismatch (-want +got):\n%s", diff)
	}
	for range 5 {
		if _, again := Load(strings.NewReader(in)); again.Error() != err.Error() {
			t.Fatalf("order changed:\n%v\n---\n%v", err, again)
		}
	}
}
