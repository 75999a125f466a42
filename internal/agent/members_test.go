package agent

import (
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

func TestMembers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var m members
	pod := headroom.Cgroup{Path: "/kubepods/pod1", Kind: "pod"}
	m.remember(0, pod, t0) // no PID: nothing to remember
	m.remember(42, pod, t0)
	if _, ok := m.lookup(0, t0, time.Minute); ok {
		t.Error("pid 0 remembered")
	}
	if c, ok := m.lookup(42, t0.Add(time.Minute), time.Minute); !ok || c.Path != pod.Path {
		t.Errorf("lookup(42) within the window = %+v, %v", c, ok)
	}
	if _, ok := m.lookup(42, t0.Add(time.Minute+time.Nanosecond), time.Minute); ok {
		t.Error("lookup(42) after the window still found")
	}
	// Bounded: filling past maxMembers forgets the oldest half first.
	for i := range maxMembers + 10 {
		m.remember(1000+i, pod, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(m) > maxMembers {
		t.Errorf("%d remembered, bound %d", len(m), maxMembers)
	}
	last := t0.Add(time.Duration(maxMembers+9) * time.Millisecond)
	if _, ok := m.lookup(1000+maxMembers+9, last, time.Hour); !ok {
		t.Error("the newest was forgotten")
	}
	if _, ok := m.lookup(1000, last, time.Hour); ok {
		t.Error("the oldest was kept")
	}
}
