package signature

import "testing"

// The lines of the real node (TestNode/UnitAtItsTasksMax: containerd.service
// at its TasksMax, a CNI plugin it runs cannot create a thread), as the
// kubelet and containerd logged them, cut after the Go runtime's first
// words (the goroutine dump that follows is some 20 KB).
const (
	kubeletRelay  = `E1207 22:30:21.770118     516 remote_runtime.go:325] "RunPodSandbox from runtime service failed" err="rpc error: code = Unknown desc = failed to setup network for sandbox \"d53cebe725647f6c4e166a6c626107d8a2c1a1da6ccd864bff0841088e269908\": plugin type=\"loopback\" failed (add): netplugin failed: \"runtime/cgo: pthread_create failed: Resource temporarily unavailable\\nSIGABRT: abort\\nPC=0x7f7287ee169c m=0 sigcode=18446744073709551610\\n"`
	containerdOwn = `time="2026-12-07T22:30:21.721928559Z" level=error msg="Failed to destroy network for sandbox \"d53cebe725647f6c4e166a6c626107d8a2c1a1da6ccd864bff0841088e269908\"" error="plugin type=\"loopback\" failed (delete): netplugin failed: \"runtime/cgo: pthread_create failed: Resource temporarily unavailable\\nSIGABRT: abort\\n"`
)

// TestRelayedThroughGRPC: a failure reported through a gRPC error is marked
// relayed (the process that logged it is not the one that failed); the
// same failure logged by the program that ran the failing one is not.
func TestRelayedThroughGRPC(t *testing.T) {
	t.Parallel()
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
