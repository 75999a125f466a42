package signature

import (
	"strings"
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

// TestGramFilterSound: every anchor, in any ASCII case and embedded in
// text, passes the filter.
func TestGramFilterSound(t *testing.T) {
	t.Parallel()
	m := newTestMatcher(t)
	if !m.grams.enabled {
		t.Fatal("the built-in catalog disables the 4-gram filter (an anchor under 4 bytes?)")
	}
	for _, r := range Builtin() {
		for _, a := range r.Anchors {
			for _, variant := range []string{a, strings.ToUpper(a), strings.Title(a)} { //nolint:staticcheck // ASCII title case is what logs use
				if !m.grams.mayMatch("xx " + variant + " yy") {
					t.Errorf("filter hides anchor %q (%s)", variant, r.ID)
				}
			}
		}
	}
	if m.grams.mayMatch("I1124 10:02:11.182934 3124 kubelet.go:2412] SyncLoop (PLEG): event for pod") {
		t.Log("a normal kubelet line passes the filter (a false positive, harmless)")
	}
}
