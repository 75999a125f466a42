package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
				_, out, errOut := runCLI(t, "", "diagnose", "-o", form, "--host-root", dir)
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
