package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		"sampleInterval: must be at least 100ms",
		"thresholds.warningPercent: must be in (0,100]",
		"thresholds.recoveryPercent: must be in (0, warningPercent]",
		"thresholds.quietPeriod: must be positive",
		"thresholds.minTrendSamples: must be at least 3",
		"events.maxSubjects: must be at least 1",
		"events.maxMessage: must be at least 128",
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
