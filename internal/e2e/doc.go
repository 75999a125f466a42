// Package e2e holds the end-to-end tests: the agent built from this
// repository reporting to a real kube-apiserver (testenv), on scenarios
// that really exhaust PIDs on this machine. It is its own Go module: the
// harness links controller-runtime's envtest and client-go v0.37, while the
// agent (Node Problem Detector v1.36.0) is built with client-go v0.35, and
// the tests drive the agent and kubectl as processes.
package e2e
