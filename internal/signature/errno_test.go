package signature

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestErrnoDecides: for a rule whose errno decides, EAGAIN is definitive, no
// errno or ECHILD needs corroboration, and ENOMEM (memory) and EINTR (never
// the errno of a failed task creation) reject the line; bash's "fork:
// Interrupted system call" ends its EAGAIN retries and is ShellForkRetry.
func TestErrnoDecides(t *testing.T) {
	t.Parallel()
	type result struct {
		Signature string
		Strength  Strength
		Errno     int
	}
	tests := []struct {
		name string
		in   string
		want *result // nil: no match
	}{
		{name: "go EAGAIN", in: "runtime: failed to create new OS thread (have 2 already; errno=11)", want: &result{"GoThreadCreateFailed", Definitive, 11}},
		{name: "go ENOMEM", in: "runtime: failed to create new OS thread (have 2 already; errno=12)"},
		{name: "go without errno", in: "runtime: failed to create new OS thread", want: &result{"GoThreadCreateFailed", Corroborate, 0}},
		{name: "cgo ENOMEM", in: "runtime/cgo: pthread_create failed: Cannot allocate memory"},
		{name: "fork/exec ENOMEM", in: "Error: fork/exec /usr/bin/git: cannot allocate memory"},
		{name: "bash ENOMEM", in: "-bash: fork: Cannot allocate memory"},
		{name: "generic fork ENOMEM", in: "fork failed: Cannot allocate memory"},
		{name: "generic thread ENOMEM", in: "pthread_create failed: Cannot allocate memory"},
		{name: "node ENOMEM", in: "Error: spawn /usr/local/bin/node ENOMEM"},
		{name: "bash EINTR ends its EAGAIN retries", in: "bash: fork: Interrupted system call", want: &result{"ShellForkRetry", Definitive, 4}},
		{name: "bash script EINTR", in: "/usr/local/bin/entrypoint: line 7: fork: Interrupted system call", want: &result{"ShellForkRetry", Definitive, 4}},
		{name: "zsh EINTR", in: "zsh: fork failed: interrupted system call"},
		{name: "generic thread EINTR", in: "pthread_create failed: Interrupted system call"},
		{name: "generic fork EINTR", in: "fork failed: Interrupted system call"},
		{name: "systemd ECHILD", in: "systemd[1]: Failed to fork: No child processes", want: &result{"SystemdForkFailed", Corroborate, 10}},
		{name: "bash retry ECHILD", in: "-bash: fork: retry: No child processes", want: &result{"ShellForkRetry", Definitive, 10}},
		{name: "dash without errno", in: "dash: 0: Cannot fork", want: &result{"ShellForkFailed", Corroborate, 0}},
	}
	m := newTestMatcher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got *result
			if h, ok := m.MatchString(tt.in); ok {
				got = &result{h.Signature, h.Strength, h.Fields.Errno}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("MatchString(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
