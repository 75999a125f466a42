// Package forkfail counts, in the kernel, every process and thread creation
// refused with EAGAIN, and names the limit that refused it: the PID space
// (kernel.pid_max, of the node or of a PID namespace), threads-max, a pids
// cgroup's pids.max, or the user's RLIMIT_NPROC.
//
// A small BPF program (bpf/forkfail.bpf.c, compiled by bpf2go) counts the
// failures by process, cgroup, class and limit in bounded kernel maps and
// rings a bounded ring buffer; Drain reads what was counted since the last
// call. The counts are exact: a failure the keyed map had no room for still
// counts in an exact per-limit total, and Drain reports it as a record
// without a process.
package forkfail

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// what names the counter in a hostfs.NotSupportedError: Open's error matches
// hostfs.ErrNotSupported when the kernel or the agent's privileges do not
// allow the counter, and says what is missing.
const what = "eBPF fork-failure counter"

// Mode is how the counter is attached.
type Mode string

// The attach modes.
const (
	// ModeFexit attaches to the kernel's fork path (copy_process and what it
	// calls): exact labels, and no cost to any other system call.
	ModeFexit Mode = "fexit"
	// ModeTracepoint attaches to the exit tracepoints of clone, clone3, fork
	// and vfork: every system call of every thread pays a few nanoseconds
	// while they are enabled.
	ModeTracepoint Mode = "tracepoint"
)

// Limit is what refused a creation.
type Limit uint32

// The limits, numbered as the BPF program numbers them.
const (
	LimitUnknown Limit = iota
	LimitPIDMax
	LimitThreadsMax
	LimitCgroup
	LimitNproc
	limits
)

// String is the limit's name in records, metrics and messages.
func (l Limit) String() string {
	switch l {
	case LimitPIDMax:
		return "pid_max"
	case LimitThreadsMax:
		return "threads_max"
	case LimitCgroup:
		return "cgroup"
	case LimitNproc:
		return "nproc"
	default:
		return "unknown"
	}
}

// Class says whether the refused creation was of a thread or a process.
type Class uint32

// The classes.
const (
	ClassProcess Class = iota
	ClassThread
)

// String is "process" or "thread".
func (c Class) String() string {
	if c == ClassThread {
		return "thread"
	}
	return "process"
}

// The totals map's layout (bpf/forkfail.bpf.c).
const (
	totalKeysFull = uint32(limits) * 2
	totalSlots    = totalKeysFull + 1
)

// Record is what was counted for one key since the last Drain.
type Record struct {
	// Count is the number of failures since the last record of this key.
	Count uint64
	// TGID, TID and Comm name the process that failed (TID: the last
	// thread seen). A record with TGID 0 counts failures the keyed map
	// had no room for: the process is not known.
	TGID, TID uint32
	Comm      string
	UID       uint32
	Class     Class
	Limit     Limit
	// PIDNS is the inode number of the PID namespace: the one whose pid_max
	// refused for LimitPIDMax, the forker's otherwise.
	PIDNS uint32
	// Cgroup is the forker's cgroup v2 id; PidsCgroup its pids cgroup's id
	// (v1 or v2); Refusing the pids cgroup whose pids.max refused
	// (LimitCgroup). An id is the inode number of the cgroup's directory.
	Cgroup, PidsCgroup, Refusing uint64
	// Used and Max are the refusing limit's numbers when last seen.
	Used, Max int64
}

// Counter is the loaded and attached program. Drain and Close must not be
// called concurrently with each other; Wait may run beside Drain.
type Counter struct {
	mode                    Mode
	coll                    *ebpf.Collection
	links                   []link.Link
	fails, totals, settings *ebpf.Map
	rd                      *ringbuf.Reader
	set                     forkfailNodeSettings // what settings holds

	last     map[forkfailFailKey]seen
	counted  [totalSlots]uint64 // per limit and class: what the keyed records carried
	residual [totalSlots]uint64 // and what the residual records carried
	cpus     int
}

type seen struct {
	count  uint64
	active time.Time
}

// maxKeys is the keyed map's size (bpf/forkfail.bpf.c); idle keys are
// pruned once it is three quarters full.
const maxKeys = 4096

// idleKey is how long a key must be quiet to be pruned.
const idleKey = time.Minute

// Mode is how the counter is attached.
func (c *Counter) Mode() Mode { return c.mode }

// SetHostPIDMax tells the program the host's kernel.pid_max, for kernels
// whose PID namespaces do not carry their own (before 6.14).
func (c *Counter) SetHostPIDMax(v int64) error {
	c.set.HostPidMax = v
	return c.settings.Put(uint32(0), c.set)
}

// SetPIDNamespace makes the program report PIDs as the PID namespace of
// the nsfs file path (as /proc/PID/ns/pid) numbers them, for the processes
// in it: those the agent's /proc shows. By default they are the initial
// namespace's, which are the same for an agent that shares the host's.
func (c *Counter) SetPIDNamespace(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("the PID namespace: %w", err)
	}
	c.set.NsDev, c.set.NsIno = st.Dev, st.Ino
	return c.settings.Put(uint32(0), c.set)
}

// Wait blocks until the program has rung: a failure of a key not sampled
// in the last 100 ms. It returns an error once Close is called.
func (c *Counter) Wait() error {
	_, err := c.rd.Read()
	return err
}

// Drain returns what was counted since the last call. The counts of a run
// sum exactly to the failures the kernel refused while the counter was
// attached.
func (c *Counter) Drain(now time.Time) ([]Record, error) {
	// The totals first: the program counts under the key before the total,
	// so every failure a total includes is in the keys read after it, or
	// was lost by them.
	totals, err := c.readTotals()
	if err != nil {
		return nil, err
	}
	var out []Record
	var k forkfailFailKey
	var v forkfailFailVal
	it := c.fails.Iterate()
	for it.Next(&k, &v) {
		s := c.last[k]
		if v.Count > s.count {
			d := v.Count - s.count
			out = append(out, recordOf(k, v, d))
			c.counted[uint32(k.Limit)*2+k.Class] += d
			s.count, s.active = v.Count, now
		} else if s.active.IsZero() {
			s.active = now
		}
		c.last[k] = s
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("reading the counts: %w", err)
	}
	// What the totals hold beyond the keyed counts was lost by the keys
	// (the map was full, or a key was pruned as it counted).
	for l := range uint32(limits) {
		for cl := range uint32(2) {
			i := l*2 + cl
			if totals[i] > c.counted[i]+c.residual[i] {
				d := totals[i] - c.counted[i] - c.residual[i]
				c.residual[i] += d
				out = append(out, Record{Count: d, Limit: Limit(l), Class: Class(cl)})
			}
		}
	}
	c.prune(now)
	return out, nil
}

// prune deletes the keys quiet for idleKey once the map is three quarters
// full, so that new processes keep their own keys.
func (c *Counter) prune(now time.Time) {
	if len(c.last) < maxKeys*3/4 {
		return
	}
	for k, s := range c.last {
		if now.Sub(s.active) >= idleKey {
			_ = c.fails.Delete(k)
			delete(c.last, k)
		}
	}
}

func (c *Counter) readTotals() ([totalSlots]uint64, error) {
	var out [totalSlots]uint64
	per := make([]uint64, c.cpus)
	for i := range totalSlots {
		if err := c.totals.Lookup(i, &per); err != nil {
			return out, fmt.Errorf("reading the totals: %w", err)
		}
		for _, v := range per {
			out[i] += v
		}
	}
	return out, nil
}

func recordOf(k forkfailFailKey, v forkfailFailVal, d uint64) Record {
	return Record{Count: d, TGID: k.Tgid, TID: v.LastTid, Comm: comm(k.Comm), UID: k.Uid, Class: Class(k.Class), Limit: Limit(k.Limit),
		PIDNS: k.Pidns, Cgroup: k.Cgroup, PidsCgroup: k.PidsCgroup, Refusing: k.Refusing, Used: v.Used, Max: v.Max}
}

func comm(b [16]int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
