//go:build tools

// Package tools pins the container runtime the real-node VM runs (make
// node-bins): containerd 2.x, which Kubernetes 1.36 and later require and
// Debian does not ship, with its runc shim and ctr.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
