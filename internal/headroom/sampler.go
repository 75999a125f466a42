package headroom

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// Sampler reads the node layer cheaply: the files it needs stay open and are
// re-read from their start. It is safe for concurrent use.
type Sampler struct {
	root hostfs.Root

	mu         sync.Mutex
	loadavg    *hostfs.File
	pidMax     *hostfs.File
	threadsMax *hostfs.File
	lastPID    *hostfs.File
	nested     *bool
	// outside caches, in the initial namespace, the count of the tasks
	// holding PIDs below 300 (mostly kernel threads started at boot) and
	// at or above pid_max (taken before it was lowered): no new task takes
	// such a PID, so they are counted once for each pid_max, outsideFor.
	outside    *TaskCount
	outsideFor uint64
}

// NewSampler returns a sampler of the host at root. Files are opened on first use.
func NewSampler(root hostfs.Root) *Sampler { return &Sampler{root: root} }

// Close closes the files kept open.
func (s *Sampler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, f := range []**hostfs.File{&s.loadavg, &s.pidMax, &s.threadsMax, &s.lastPID} {
		if *f != nil {
			errs = append(errs, (*f).Close())
			*f = nil
		}
	}
	return errors.Join(errs...)
}

func (s *Sampler) read(f **hostfs.File, path string) ([]byte, error) {
	if *f == nil {
		o, err := hostfs.OpenFile(path)
		if err != nil {
			return nil, err
		}
		*f = o
	}
	return (*f).Read()
}

func (s *Sampler) readUint(f **hostfs.File, path string) (uint64, error) {
	b, err := s.read(f, path)
	if err != nil {
		return 0, err
	}
	return parseUintBytes(b, path)
}

// initPIDNSLink is what /proc/self/ns/pid reads in the initial PID
// namespace: its inode is the constant PROC_PID_INIT_INO, 0xEFFFFFFC
// (include/linux/proc_ns.h).
const initPIDNSLink = "pid:[4026531836]"

// nestedLocked reports whether the sampler reads a PID namespace below the
// initial one. Then /proc/loadavg's task count is system-wide and the
// namespace's own tasks must be counted from /proc. It reads the
// /proc/self/ns/pid link (the initial namespace has a fixed inode); where
// the link is missing (fake trees) it falls back to NSpid of
// /proc/self/status, which lists more than one PID only when the proc mount
// can see the parent namespace. s.mu is held.
func (s *Sampler) nestedLocked() (bool, error) {
	if s.nested != nil {
		return *s.nested, nil
	}
	var nested bool
	if link, err := os.Readlink(s.root.ProcPath("self", "ns", "pid")); err == nil {
		nested = link != initPIDNSLink
	} else {
		b, err := hostfs.ReadSmall(s.root.ProcPath("self", "status"))
		if err != nil {
			return false, err
		}
		n, ok := parseNSpid(b)
		nested = ok && n > 1
	}
	s.nested = &nested
	return nested, nil
}

// Node samples the node layer. In the initial PID namespace it costs four
// reads of open files; in a nested one it also lists /proc/*/task.
func (s *Sampler) Node() (Node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n Node
	var err error
	if n.PIDMax, err = s.readUint(&s.pidMax, s.root.ProcPath("sys", "kernel", "pid_max")); err != nil {
		return n, fmt.Errorf("reading kernel.pid_max: %w", err)
	}
	if n.ThreadsMax, err = s.readUint(&s.threadsMax, s.root.ProcPath("sys", "kernel", "threads-max")); err != nil {
		return n, fmt.Errorf("reading kernel.threads-max: %w", err)
	}
	nested, err := s.nestedLocked()
	if err != nil {
		return n, fmt.Errorf("telling the PID namespace: %w", err)
	}
	if nested {
		n.Namespace, n.TasksSource = "nested", "proc"
		c, err := CountTasks(s.root, n.PIDMax)
		if err != nil {
			return n, fmt.Errorf("counting the namespace's tasks: %w", err)
		}
		n.Tasks, n.LowTasks, n.AboveTasks = c.Tasks, c.Low, c.Above
		// ns_last_pid is the namespace's; loadavg's last PID is too, but read
		// the dedicated file where it exists.
		if last, err := s.readUint(&s.lastPID, s.root.ProcPath("sys", "kernel", "ns_last_pid")); err == nil {
			n.LastPID = last
		}
	} else {
		n.Namespace, n.TasksSource = "initial", "loadavg"
		b, err := s.read(&s.loadavg, s.root.ProcPath("loadavg"))
		if err != nil {
			return n, fmt.Errorf("reading loadavg: %w", err)
		}
		if n.Tasks, n.LastPID, err = parseLoadavg(b); err != nil {
			return n, err
		}
		if s.outside == nil || s.outsideFor != n.PIDMax {
			c, err := CountTasks(s.root, n.PIDMax)
			if err != nil {
				return n, fmt.Errorf("counting tasks with PIDs below %d or from pid_max %d: %w", ReservedPIDs, n.PIDMax, err)
			}
			s.outside, s.outsideFor = &c, n.PIDMax
		}
		n.LowTasks, n.AboveTasks = s.outside.Low, s.outside.Above
	}
	n.derive()
	return n, nil
}

func parseUintBytes(b []byte, path string) (uint64, error) {
	var n uint64
	digits := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			d := uint64(c - '0')
			if n > (^uint64(0)-d)/10 {
				return 0, fmt.Errorf("%s: number overflows", path)
			}
			n = n*10 + d
			digits++
		case c == '\n' || c == ' ' || c == '\t':
			if digits > 0 {
				return n, nil
			}
		default:
			return 0, fmt.Errorf("%s: %q is not a number", path, b)
		}
	}
	if digits == 0 {
		return 0, fmt.Errorf("%s: empty", path)
	}
	return n, nil
}
