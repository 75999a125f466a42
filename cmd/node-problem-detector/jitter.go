package main

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	"k8s.io/node-problem-detector/pkg/types"
	"k8s.io/utils/clock"
)

// A fleet's agents must not write in the same second: a DaemonSet rollout
// or an apiserver restart starts thousands of them together, and NPD's
// heartbeat, counted from each agent's last write, would keep them together
// (the synchronised spikes of NPD issues 661 and 662). Each node spreads
// its first write over firstWriteSpread and lengthens its heartbeat by up
// to heartbeatSpread, by a fraction fixed for its name, so the writes of
// agents started together fan out at once and drift further apart with
// every heartbeat. Lengthened, not shortened: no agent writes more often
// than NPD's configured heartbeat would (the idle budget in
// docs/benchmarks.md is NPD's own).
const (
	firstWriteSpread = 10 * time.Second
	heartbeatSpread  = 0.1
)

// spread is a fraction in [0, 1) fixed for the node: the FNV-1a hash of its
// name. Stable across restarts, different from node to node.
func spread(node string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node))
	return float64(h.Sum64()>>11) / (1 << 53)
}

// firstWriteDelay is how long the node's agent waits before its first
// write while nothing is wrong.
func firstWriteDelay(node string) time.Duration {
	return time.Duration(spread(node) * float64(firstWriteSpread))
}

// jitteredHeartbeat is the node's heartbeat: period plus up to a tenth.
func jitteredHeartbeat(period time.Duration, node string) time.Duration {
	return period + time.Duration(spread(node)*heartbeatSpread*float64(period))
}

// startGate starts the condition manager after the node's first-write
// delay, or at once when a condition turns True before it: a spread start
// must never delay news.
type startGate struct {
	urgent chan struct{}
	once   sync.Once
}

func newStartGate() *startGate { return &startGate{urgent: make(chan struct{})} }

// open starts start once ready is closed and delay on clk has passed
// after it, or at once when urgent is called: waiting for the apiserver
// must hold up neither the detection nor a True condition.
func (g *startGate) open(ctx context.Context, clk clock.Clock, ready <-chan struct{}, delay time.Duration, start func()) {
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-g.urgent:
			start()
			return
		case <-ready:
		}
		select {
		case <-ctx.Done():
			return
		case <-g.urgent:
		case <-clk.After(delay):
		}
		start()
	}()
}

// see lets a status through the gate at once if a condition in it is True.
func (g *startGate) see(status *types.Status) {
	for _, c := range status.Conditions {
		if c.Status == types.True {
			g.once.Do(func() { close(g.urgent) })
			return
		}
	}
}
