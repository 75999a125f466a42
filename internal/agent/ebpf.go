package agent

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/forkfail"
	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/state"
)

// The eBPF source's modes (Config.EBPF).
const (
	// EBPFOff never loads the counter.
	EBPFOff = "off"
	// EBPFAuto attaches where it costs nothing to other system calls: by
	// fexit on the kernel's fork path. The tracepoints tax every system call
	// of every thread (+42 % on a getppid loop, +34 % on 1-byte reads on
	// this project's CI machine: docs/ebpf.md, make bench), far over the
	// 5 % that auto accepts, so auto never picks them.
	EBPFAuto = "auto"
	// EBPFOn attaches by fexit, else by the tracepoints.
	EBPFOn = "on"
)

// ebpfName names the source.
const ebpfName = "ebpf"

// drainGap is the least time between two drains of the counter: the ring
// buffer rings at once on a new failure, and a storm is read at this pace.
const drainGap = 100 * time.Millisecond

// drainEvery is the longest time between two drains while failures happen.
const drainEvery = time.Second

// Counted is a failure the kernel counted (KindCounted): the counter's
// record, with its cgroups' paths.
type Counted struct {
	forkfail.Record
	// Cgroup is the path of the forker's pids cgroup; Refusing that of the
	// pids cgroup whose pids.max refused (LimitCgroup); "" when unknown.
	Cgroup, Refusing string
	// Hierarchy is the pids hierarchy both paths are in.
	Hierarchy headroom.Hierarchy
	// NodeNamespace is true when the refusing PID namespace (LimitPIDMax)
	// is the node's: the one whose /proc the agent reads.
	NodeNamespace bool
	// Mode is how the counter was attached.
	Mode forkfail.Mode
}

// ebpfSource counts refused creations in the kernel (internal/forkfail).
// It keeps no position: its counts start when it attaches.
type ebpfSource struct {
	s    *Supervisor
	mode atomic.Pointer[forkfail.Mode]
}

func (e *ebpfSource) name() string { return ebpfName }
func (e *ebpfSource) enabled() bool {
	return e.s.cfg.EBPF == EBPFAuto || e.s.cfg.EBPF == EBPFOn
}
func (e *ebpfSource) load(state.State, bool)   {}
func (e *ebpfSource) position(st *state.State) {}

// modes are the attach modes the configuration allows, in order.
func (e *ebpfSource) modes() []forkfail.Mode {
	if e.s.cfg.EBPF == EBPFOn {
		return []forkfail.Mode{forkfail.ModeFexit, forkfail.ModeTracepoint}
	}
	return []forkfail.Mode{forkfail.ModeFexit}
}

func (e *ebpfSource) run(ctx context.Context, c *sourceCounters) error {
	s := e.s
	ctr, err := forkfail.Open(forkfail.Options{Modes: e.modes()})
	if err != nil {
		if e.s.cfg.EBPF == EBPFAuto {
			return fmt.Errorf("%w (auto does not use the syscall tracepoints: --ebpf=on does)", err)
		}
		return err
	}
	defer func() { _ = ctr.Close() }()
	mode := ctr.Mode()
	e.mode.Store(&mode)
	hs, _ := s.hierarchies()
	r := newCountedReader(s.cfg.Root, ctr, s.clock, hs)
	defer func() { _ = r.sampler.Close() }() // its open files
	c.up.Store(true)
	defer c.up.Store(false)
	s.log.Info("source started", "source", ebpfName, "mode", string(mode))

	rang := make(chan struct{}, 1)
	go func() {
		for ctr.Wait() == nil {
			select {
			case rang <- struct{}{}:
			default:
			}
		}
	}()
	tick := s.clock.NewTicker(drainEvery)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			_ = ctr.Close() // ends the waiting goroutine
			return ctx.Err()
		case <-rang:
			if gap := s.clock.Since(last); gap < drainGap {
				select {
				case <-ctx.Done():
					continue
				case <-s.clock.After(drainGap - gap):
				}
			}
		case <-tick.C():
		}
		last = s.clock.Now()
		recs, err := r.read(last)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			rec.Mode = mode
			s.stats.Counted.Add(rec.Count)
			c.lines.Add(rec.Count)
			s.deliver(Report{Kind: KindCounted, Time: last, Counted: rec})
		}
	}
}

// countedReader drains the counter and completes its records: the
// cgroups' paths, the node's PID namespace, and threads-max, which the BPF
// program cannot read.
type countedReader struct {
	ctr     *forkfail.Counter
	sampler *headroom.Sampler
	pids    *headroom.CgroupIDs
	h       headroom.Hierarchy
	nodeNS  uint32
}

func newCountedReader(root hostfs.Root, ctr *forkfail.Counter, clk clock.PassiveClock, hs []headroom.Hierarchy) *countedReader {
	r := &countedReader{ctr: ctr, sampler: headroom.NewSampler(root), nodeNS: headroom.PIDNamespace(root)}
	if n, err := r.sampler.Node(); err == nil {
		_ = ctr.SetHostPIDMax(int64(n.PIDMax))
	}
	// PIDs as the node's /proc numbers them (the same as the kernel's own
	// where the agent shares the host's PID namespace, as in the DaemonSet).
	_ = ctr.SetPIDNamespace(root.ProcPath("1", "ns", "pid"))
	if len(hs) > 0 {
		r.h = hs[0]
		r.pids = headroom.NewCgroupIDs(hs[0], clk)
	}
	return r
}

func (r *countedReader) read(now time.Time) ([]Counted, error) {
	var n headroom.Node
	sampled := false
	sample := func() {
		if !sampled {
			n, _ = r.sampler.Node()
			sampled = true
			if n.PIDMax > 0 {
				_ = r.ctr.SetHostPIDMax(int64(n.PIDMax))
			}
		}
	}
	recs, err := r.ctr.Drain(now)
	if err != nil {
		return nil, err
	}
	out := make([]Counted, 0, len(recs))
	for _, rec := range recs {
		c := Counted{Record: rec, Hierarchy: r.h}
		if rec.Limit == forkfail.LimitUnknown {
			// threads-max: the one limit the program cannot read.
			sample()
			if n.ThreadsMax > 0 && n.Tasks+n.ThreadsMax/100 >= n.ThreadsMax {
				c.Limit, c.Used, c.Max = forkfail.LimitThreadsMax, int64(n.Tasks), int64(n.ThreadsMax)
			}
		}
		if c.Limit == forkfail.LimitThreadsMax {
			c.NodeNamespace = true
		}
		if c.Limit == forkfail.LimitPIDMax {
			c.NodeNamespace = r.nodeNS != 0 && rec.PIDNS == r.nodeNS
		}
		if r.pids != nil {
			c.Cgroup, _ = r.pids.Path(rec.PidsCgroup)
			c.Refusing, _ = r.pids.Path(rec.Refusing)
		}
		out = append(out, c)
	}
	if len(recs) > 0 {
		// Kernels before 6.14 keep one pid_max, which the program needs:
		// it may have changed.
		sample()
	}
	return out, nil
}

// EBPFMode is how the eBPF source attached ("" while it has not).
func (s *Supervisor) EBPFMode() forkfail.Mode {
	for _, src := range s.list {
		if e, ok := src.(*ebpfSource); ok {
			if m := e.mode.Load(); m != nil {
				return *m
			}
		}
	}
	return ""
}
