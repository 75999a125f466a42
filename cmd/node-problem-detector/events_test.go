package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientConfig checks that --apiserver-override becomes the client
// the Events are recorded with, as NPD reads it.
func TestClientConfig(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.1.2.3:6443"}}]
users: [{name: u, user: {token: secret}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		override, host, bearer, err string
		insecure                    bool
	}{
		{override: "https://127.0.0.1:6443?inClusterConfig=false&auth=" + kc, host: "https://10.1.2.3:6443", bearer: "secret"},
		{override: "https://127.0.0.1:6443?inClusterConfig=false&insecure=true", host: "https://127.0.0.1:6443", insecure: true},
		{override: "?inClusterConfig=false", err: "names no apiserver"},
		{override: "https://a?inClusterConfig=maybe", err: "inClusterConfig"},
		{override: "https://a?inClusterConfig=false&insecure=2", err: "insecure"},
		{override: "https://a?inClusterConfig=false&auth=/nonexistent/kubeconfig", err: "nonexistent"},
		{override: "", err: "KUBERNETES_SERVICE_HOST"}, // in-cluster, but not in a pod
	} {
		cfg, err := clientConfig(c.override)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one mentioning %q", c.override, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.override, err)
			continue
		}
		if cfg.Host != c.host || cfg.BearerToken != c.bearer || cfg.Insecure != c.insecure {
			t.Errorf("%q: host %q token %q insecure %v, want %q %q %v", c.override, cfg.Host, cfg.BearerToken, cfg.Insecure, c.host, c.bearer, c.insecure)
		}
	}
}
