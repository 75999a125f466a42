package signature

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// relayedLines are the lines of the real node in
// testdata/journal/node-vm-relayed.txt: the kubelet's, which relays
// containerd's failure, and containerd's own.
func relayedLines(t *testing.T) (kubelet, containerd string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "journal", "node-vm-relayed.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("node-vm-relayed.txt: %d lines, want 2", len(lines))
	}
	return lines[0], lines[1]
}

// TestRelayedThroughGRPC: a failure reported through a gRPC error is marked
// relayed (the process that logged it is not the one that failed); the
// same failure logged by the program that ran the failing one is not.
func TestRelayedThroughGRPC(t *testing.T) {
	t.Parallel()
	kubeletRelay, containerdOwn := relayedLines(t)
	m, err := NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, line string
		relayed    bool
	}{
		{"the kubelet relays containerd's CNI plugin", kubeletRelay, true},
		{"containerd's own line", containerdOwn, false},
		{"a Go program's own", "runtime/cgo: pthread_create failed: Resource temporarily unavailable", false},
		{"the words after the failure do not make it relayed", "runtime/cgo: pthread_create failed: Resource temporarily unavailable (rpc error: code = Unknown desc = x)", false},
	} {
		h, ok := m.MatchString(tt.line)
		if !ok {
			t.Errorf("%s: no match", tt.name)
			continue
		}
		if h.Fields.Relayed != tt.relayed {
			t.Errorf("%s: relayed %v, want %v (%s)", tt.name, h.Fields.Relayed, tt.relayed, h.Signature)
		}
	}
}
