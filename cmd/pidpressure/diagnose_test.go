package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestDiagnoseGolden runs diagnose over every fake host tree in text and
// JSON and compares with testdata/golden/diagnose. Rewrite with -update.
func TestDiagnoseGolden(t *testing.T) {
	t.Parallel()
	hosts, err := filepath.Glob(filepath.Join("..", "..", "testdata", "hosts", "*", "README.md"))
	if err != nil || len(hosts) == 0 {
		t.Fatalf("no fake hosts: %v", err)
	}
	for _, readme := range hosts {
		dir := filepath.Dir(readme)
		name := filepath.Base(dir)
		for _, form := range []string{"text", "json"} {
			t.Run(name+"-"+form, func(t *testing.T) {
				t.Parallel()
				// The eBPF probe is of this machine, not of the fake host.
				_, out, errOut := runCLI(t, "", "diagnose", "-o", form, "--host-root", dir, "--no-ebpf-probe")
				if out == "" {
					t.Fatalf("no output; stderr %q", errOut)
				}
				// Paths under the fake root differ per checkout; keep them relative.
				abs, _ := filepath.Abs(dir)
				out = strings.ReplaceAll(strings.ReplaceAll(out, abs, "$HOST"), dir, "$HOST")
				ext := ".txt"
				if form == "json" {
					ext = ".json"
				}
				golden := filepath.Join("..", "..", "testdata", "golden", "diagnose", name+ext)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./cmd/pidpressure -run Golden -update)", err)
				}
				if out != string(want) {
					t.Errorf("diagnose output differs from %s; rerun with -update and review the diff\n%s", golden, out)
				}
			})
		}
	}
}

// TestDiagnoseJSONListsNeverNull: an empty list is [] in diagnose -o json,
// never null, on every fake host (some have no cgroup hierarchy, most no
// zombie parent).
func TestDiagnoseJSONListsNeverNull(t *testing.T) {
	t.Parallel()
	hosts, err := filepath.Glob(filepath.Join("..", "..", "testdata", "hosts", "*", "README.md"))
	if err != nil || len(hosts) == 0 {
		t.Fatalf("no fake hosts: %v", err)
	}
	for _, readme := range hosts {
		dir := filepath.Dir(readme)
		_, out, errOut := runCLI(t, "", "diagnose", "-o", "json", "--host-root", dir)
		var d struct {
			Hierarchies, Cgroups, Audit *[]json.RawMessage
			Scan                        struct {
				ZombieParents *[]json.RawMessage `json:"zombie_parents"`
				TopUsers      *[]json.RawMessage `json:"top_users"`
			}
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%s: %v; stderr %q", dir, err, errOut)
		}
		for name, l := range map[string]*[]json.RawMessage{"hierarchies": d.Hierarchies, "cgroups": d.Cgroups, "audit": d.Audit,
			"scan.zombie_parents": d.Scan.ZombieParents, "scan.top_users": d.Scan.TopUsers} {
			if l == nil {
				t.Errorf("%s: %s is null or missing, want a list", filepath.Base(dir), name)
			}
		}
	}
}

// TestDiagnoseHealthyWording: on a host where nothing is at its limit,
// diagnose says so plainly; the explanation of a failure that no limit
// explains is kept for an actual failure.
func TestDiagnoseHealthyWording(t *testing.T) {
	t.Parallel()
	root := hostfs.New(filepath.Join("..", "..", "testdata", "hosts", "cgroupv1-cgroupfs"))
	d, _ := headroom.Diagnose(root, headroom.DiagnoseOptions{})
	if r := d.Attribution.Reason; d.Attribution.Layer != headroom.LayerNone || !strings.HasPrefix(r, "nothing is at its limit: node tasks ") || strings.Contains(r, "failure") {
		t.Errorf("healthy diagnosis: layer %q, reason %q", d.Attribution.Layer, r)
	}
	hs, _ := headroom.Hierarchies(root)
	a := headroom.Attribute(root, d.Node, hs, headroom.Origin{UID: -1}, nil)
	if !strings.Contains(a.Reason, "A failure now is not explained by a PID limit") {
		t.Errorf("a failure no limit explains: reason %q", a.Reason)
	}
}
