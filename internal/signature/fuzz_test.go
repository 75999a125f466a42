package signature

import (
	"testing"
	"unicode/utf8"
)

// FuzzMatch checks on any input that the matcher does not panic, agrees with
// the rules run without the prefilter, and returns bounded, valid fields.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{
		"runtime: failed to create new OS thread (have 15 already; errno=11)",
		"bash: fork: retry: Resource temporarily unavailable",
		"cgroup: fork rejected by pids controller in /kubepods.slice",
		"read udp 10.0.0.1:53: read: resource temporarily unavailable",
		"fork/exec /x: no such file or directory",
		"\xff\xfefork\x00thread",
	} {
		f.Add(s)
	}
	m := newTestMatcher(f)
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := m.MatchString(s)
		want, wantOK := bruteForce(m, s)
		if ok != wantOK || got.Signature != want.Signature {
			t.Fatalf("%q: matcher (%s, %v) != rules alone (%s, %v)", s, got.Signature, ok, want.Signature, wantOK)
		}
		if len(got.Fields.Program) > maxFieldLen || len(got.Fields.Cgroup) > maxFieldLen {
			t.Fatalf("field over %d bytes", maxFieldLen)
		}
		if utf8.ValidString(s) && (!utf8.ValidString(got.Fields.Program) || !utf8.ValidString(got.Fields.Cgroup)) {
			t.Fatalf("clip broke a rune: %q %q", got.Fields.Program, got.Fields.Cgroup)
		}
	})
}
