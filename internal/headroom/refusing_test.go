package headroom

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// TestRefusalsCountWhereTheKernelCountsThem holds the two semantics of the
// kernel's refused-fork counters, with the numbers the node VM's kernel
// (Linux 6.12, cgroup v2) and this machine's cgroup v1 gave for the same
// experiment: a cgroup a with pids.max 3, a child b that forks from inside
// until refused three times.
//
//   - v2 with pids.events.local: the count is a's own, and only a's;
//     pids.events counts it in a and again in every ancestor. Reading
//     pids.events would make the parent a refusing cgroup.
//   - v1: the count is in b, the forking cgroup, whose pids.max is "max":
//     the refusing cgroup is the ancestor at its limit, a.
func TestRefusalsCountWhereTheKernelCountsThem(t *testing.T) {
	t.Parallel()
	type files map[string]string
	write := func(t *testing.T, dir string, tree map[string]files) {
		for cg, fs := range tree {
			for name, content := range fs {
				p := filepath.Join(dir, cg, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, tc := range []struct {
		name     string
		version  int
		tree     map[string]files
		counts   map[string]uint64 // ReadRejected by cgroup
		counted  string            // where the count rose
		refusing string            // RefusingCgroup of counted
	}{{
		name:    "v2 local events",
		version: 2,
		tree: map[string]files{
			"exp.slice":     {"pids.current": "3\n", "pids.max": "max\n", "pids.events": "max 3\n", "pids.events.local": "max 0\n"},
			"exp.slice/a":   {"pids.current": "3\n", "pids.max": "3\n", "pids.events": "max 3\n", "pids.events.local": "max 3\n"},
			"exp.slice/a/b": {"pids.current": "3\n", "pids.max": "max\n", "pids.events": "max 0\n", "pids.events.local": "max 0\n"},
		},
		counts:   map[string]uint64{"/exp.slice": 0, "/exp.slice/a": 3, "/exp.slice/a/b": 0},
		counted:  "/exp.slice/a",
		refusing: "/exp.slice/a",
	}, {
		name:    "v1 forking cgroup",
		version: 1,
		tree: map[string]files{
			"exp":     {"pids.current": "3\n", "pids.max": "max\n", "pids.events": "max 0\n"},
			"exp/a":   {"pids.current": "3\n", "pids.max": "3\n", "pids.events": "max 0\n"},
			"exp/a/b": {"pids.current": "3\n", "pids.max": "max\n", "pids.events": "max 3\n"},
		},
		counts:   map[string]uint64{"/exp": 0, "/exp/a": 0, "/exp/a/b": 3},
		counted:  "/exp/a/b",
		refusing: "/exp/a",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write(t, dir, tc.tree)
			h := Hierarchy{Version: tc.version, Dir: dir}
			for cg, want := range tc.counts {
				if got, err := ReadRejected(h, cg); err != nil || got != want {
					t.Errorf("ReadRejected(%s) = %d, %v; want %d", cg, got, err, want)
				}
			}
			c, err := DescribeCgroup(hostfs.New(t.TempDir()), h, tc.counted)
			if err != nil {
				t.Fatal(err)
			}
			r := RefusingCgroup(hostfs.New(t.TempDir()), h, c)
			if r.Path != tc.refusing || r.Refused != 3 || !r.AtLimit {
				t.Errorf("RefusingCgroup(%s) = %s (rejected %d, at limit %v), want %s with 3 refusals at its limit", tc.counted, r.Path, r.Refused, r.AtLimit, tc.refusing)
			}
		})
	}
}
