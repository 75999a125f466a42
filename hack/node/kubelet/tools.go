//go:build tools

// Package tools pins the kubelet the real-node VM runs (make node-bins).
package tools

import _ "k8s.io/kubernetes/cmd/kubelet"
