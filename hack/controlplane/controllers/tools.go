//go:build tools

// Package tools pins the controllers the real-node tests run beside
// kube-apiserver (make controllers): kube-controller-manager, for the
// DaemonSet controller and the kube-root-ca.crt publisher, and
// kube-scheduler, which binds the DaemonSet's pods.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
