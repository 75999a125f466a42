package forkfail

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// Options configure Open.
type Options struct {
	// Modes are tried in order; empty means fexit, then tracepoint.
	Modes []Mode
}

// Open loads the program and attaches it in the first mode of o.Modes the
// kernel allows. Its error matches hostfs.ErrNotSupported when the kernel has no BTF,
// the agent lacks the privileges, or no mode attaches; it says why.
func Open(o Options) (*Counter, error) {
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, hostfs.NotSupported(what, fmt.Errorf("the kernel has no BTF (/sys/kernel/btf/vmlinux): %w", err))
	}
	modes := o.Modes
	if len(modes) == 0 {
		modes = []Mode{ModeFexit, ModeTracepoint}
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, hostfs.NotSupported(what, err)
	}
	var why []string
	for _, m := range modes {
		c, err := open(m, kernel)
		if err == nil {
			c.cpus = cpus
			return c, nil
		}
		why = append(why, fmt.Sprintf("%s: %s", m, explain(err)))
	}
	return nil, hostfs.NotSupported(what, errors.New(strings.Join(why, "; ")))
}

// explain turns a load or attach error into what is missing.
func explain(err error) string {
	// The loader's hint is wrong on kernels that account BPF memory to
	// the memory cgroup (5.11 and later), as every kernel this runs on does.
	msg := strings.Replace(err.Error(), " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)", "", 1)
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		return "not permitted (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN; some kernels refuse tracing programs to everyone): " + msg
	case errors.Is(err, os.ErrNotExist):
		return "not available on this kernel (for tracepoints: tracefs must be mounted at /sys/kernel/tracing): " + msg
	default:
		return msg
	}
}

// programs is what a mode loads, by the programs' names in the object.
func programs(m Mode) []string {
	switch m {
	case ModeFexit:
		return []string{forkfailProgEnterCopyProcess, forkfailProgEnterSchedFork, forkfailProgExitAllocPid, forkfailProgExitPidsCanFork, forkfailProgExitCopyProcess}
	case ModeTracepoint:
		return []string{forkfailProgExitClone, forkfailProgExitClone3, forkfailProgExitFork, forkfailProgExitVfork}
	default:
		return nil
	}
}

// open loads and attaches the programs of mode m, relocated against the
// kernel's own types only: the program reads no module's types, and a
// module loaded or unloaded while the loader lists them would fail the load
// ("load BTF for kmod edac_mce_amd: no such file", seen in the node VM).
func open(m Mode, kernel *btf.Spec) (_ *Counter, err error) {
	names := programs(m)
	if names == nil {
		return nil, fmt.Errorf("unknown mode %q", m)
	}
	spec, err := loadForkfail()
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	for n := range spec.Programs {
		if !keep[n] {
			delete(spec.Programs, n)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernel}})
	if err != nil {
		return nil, fmt.Errorf("loading: %w", err)
	}
	c := &Counter{mode: m, coll: coll, fails: coll.Maps[forkfailMapFails], totals: coll.Maps[forkfailMapTotals],
		settings: coll.Maps[forkfailMapSettings], last: map[forkfailFailKey]seen{}}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	for _, n := range names {
		p := coll.Programs[n]
		var l link.Link
		switch m {
		case ModeFexit:
			l, err = link.AttachTracing(link.TracingOptions{Program: p})
		case ModeTracepoint:
			l, err = link.Tracepoint("syscalls", "sys_"+n, p, nil) // exit_clone: sys_exit_clone
		}
		if err != nil {
			return nil, fmt.Errorf("attaching %s: %w", n, err)
		}
		c.links = append(c.links, l)
	}
	if c.rd, err = ringbuf.NewReader(coll.Maps[forkfailMapSamples]); err != nil {
		return nil, fmt.Errorf("ring buffer: %w", err)
	}
	return c, nil
}

// Close detaches the program and frees its maps; a Wait in progress
// returns.
func (c *Counter) Close() error {
	var errs []error
	if c.rd != nil {
		errs = append(errs, c.rd.Close())
	}
	for _, l := range c.links {
		errs = append(errs, l.Close())
	}
	c.links = nil
	if c.coll != nil {
		c.coll.Close()
		c.coll = nil
	}
	return errors.Join(errs...)
}

// ModeStatus says whether a mode attaches here, and why not.
type ModeStatus struct {
	Mode      Mode   `json:"mode"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
}

// Probe tries each mode (attaching it for a moment) and reports which
// attach here.
func Probe() []ModeStatus {
	var out []ModeStatus
	for _, m := range []Mode{ModeFexit, ModeTracepoint} {
		st := ModeStatus{Mode: m}
		if kernel, err := btf.LoadKernelSpec(); err != nil {
			st.Reason = "the kernel has no BTF (/sys/kernel/btf/vmlinux): " + err.Error()
		} else if c, err := open(m, kernel); err != nil {
			st.Reason = explain(err)
		} else {
			st.Available = true
			_ = c.Close()
		}
		out = append(out, st)
	}
	return out
}
