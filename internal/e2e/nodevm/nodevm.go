// Package nodevm boots the real-node VM that hack/nodevm builds (Debian
// trixie: kernel 6.12, systemd as PID 1, cgroup v2) under QEMU with TCG,
// runs one script in it and returns the script's output and exit code.
//
// The guest has no network device. Files reach it over a 9p share (a fresh
// temporary directory mounted at /mnt/host); its unit nodevm-run.service runs
// /mnt/host/run.sh once the share is mounted, writes the output to
// /mnt/host/out.log and the exit code to /mnt/host/rc, prints both on the
// serial console and powers the VM off. The image is opened with
// snapshot=on, so no run changes it and runs can share it.
//
// TCG rather than KVM: this machine's /dev/kvm is paravirtual and does not
// boot a stock kernel (SeaBIOS runs, the kernel's decompressor spins). TCG
// makes forks slow, so guest scripts poll rather than sleep a fixed time.
package nodevm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The console markers printed by the guest's nodevm-run (hack/nodevm/guest).
const (
	startMarker = "NODEVM-START"
	rcMarker    = "NODEVM-RC="
)

// The files of an image directory, as hack/nodevm/build.sh writes them.
const (
	kernelFile = "vmlinuz"
	initrdFile = "initrd.img"
	rootFile   = "node.img"
)

// Defaults for the zero fields of Options.
const (
	DefaultTimeout  = 5 * time.Minute
	DefaultMemoryMB = 2048
	DefaultCPUs     = 2
)

// QEMU is the emulator Run starts.
const QEMU = "qemu-system-x86_64"

// Options says what Run boots and what the guest runs.
type Options struct {
	// ImageDir holds vmlinuz, initrd.img and node.img (make node-image).
	ImageDir string
	// Script is run.sh, run in the guest by bash as root from /mnt/host.
	Script string
	// Files are more files for the share, by path relative to /mnt/host.
	Files map[string]string
	// Timeout bounds the whole run, boot to power-off (DefaultTimeout if 0).
	Timeout time.Duration
	// MemoryMB and CPUs size the guest (DefaultMemoryMB, DefaultCPUs if 0).
	MemoryMB, CPUs int
	// BootCPUs, when between 1 and CPUs, boots the guest with only that
	// many CPUs online (maxcpus=); the script brings the others online
	// (/sys/devices/system/cpu/cpuN/online). Kernel code patched while one
	// CPU runs cannot be met half-patched by another: multi-threaded TCG
	// can run a stale copy of code the kernel has just rewritten (a static
	// key flipped), and the guest oopses (see testdata/node/run.sh).
	BootCPUs int
	// Console, if set, receives the serial console as it arrives.
	Console io.Writer
	// TempDir is where the share is created (os.TempDir() if empty).
	TempDir string
	// Forward gives the guest a network device whose only way out is to
	// these ports of this machine's 127.0.0.1 (QEMU's user network with
	// restrict=on, and a socat per connection): the guest reaches each at
	// GuestAddr:GuestPort. Without it the guest has no network device.
	Forward []Forward
	// Stop, when it is closed, puts the file "stop" in the share, for a
	// guest script that runs until told to (it polls /mnt/host/stop).
	Stop <-chan struct{}
	// Share, if set, is an existing empty directory to use as the share,
	// which the caller creates, writes into while the guest runs (commands
	// for a guest that serves them) and removes.
	Share string
}

// GuestAddr is where the guest reaches a forwarded port: an address that
// exists only inside QEMU's user-mode network.
const GuestAddr = "10.0.2.100"

// Forward is one port forwarded from the guest to this machine's loopback.
type Forward struct {
	GuestPort int
	HostPort  int
}

// Result is what one run gave.
type Result struct {
	// Output is run.sh's standard output and error, from the share.
	Output string
	// Console is everything the guest printed on its serial console.
	Console string
	// ExitCode is run.sh's exit status in the guest.
	ExitCode int
	// FirstCommand is the time from QEMU's start to the guest starting
	// run.sh (its first command), seen on the console.
	FirstCommand time.Duration
	// GuestUptime is the guest kernel's uptime when run.sh started.
	GuestUptime time.Duration
	// Elapsed is the time from QEMU's start to its exit.
	Elapsed time.Duration
}

// Run boots the image, runs opts.Script in the guest and waits for the
// guest to power off. It returns an error, with the end of the console,
// when QEMU fails, the run times out or the guest never reports an exit
// code; a script that fails is not an error (see Result.ExitCode). QEMU is
// killed by its PID and the share removed on every path.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = DefaultMemoryMB
	}
	if opts.CPUs == 0 {
		opts.CPUs = DefaultCPUs
	}
	if err := CheckImage(opts.ImageDir); err != nil {
		return Result{}, err
	}
	if len(opts.Forward) > 0 {
		if _, err := exec.LookPath("socat"); err != nil {
			return Result{}, fmt.Errorf("forwarding ports to the guest needs socat (make nodevm-tools installs it): %w", err)
		}
	}
	share := opts.Share
	if share == "" {
		dir, err := os.MkdirTemp(opts.TempDir, "pidpressure-nodevm-")
		if err != nil {
			return Result{}, fmt.Errorf("creating the share: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		share = dir
	}
	if err := writeShare(share, opts.Script, opts.Files); err != nil {
		return Result{}, err
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if opts.Stop != nil {
		go func() {
			select {
			case <-opts.Stop:
				_ = os.WriteFile(filepath.Join(share, "stop"), nil, 0o644)
			case <-ctx.Done():
			}
		}()
	}
	console := &consoleWriter{mirror: opts.Console}
	cmd := exec.CommandContext(ctx, QEMU, qemuArgs(opts, share)...)
	cmd.Stdin = nil
	cmd.Stdout = console
	cmd.Stderr = console
	// QEMU dies with the test process, and on ctx's end it is killed by
	// its PID (CommandContext's Cancel); WaitDelay bounds the console copy.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	console.start = start
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("starting %s: %w", QEMU, err)
	}
	waitErr := cmd.Wait()
	res := Result{Elapsed: time.Since(start)}
	res.Console, res.FirstCommand = console.snapshot()
	res.GuestUptime = guestUptime(res.Console)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return res, fmt.Errorf("the node VM did not power off within %s: %w\n%s", opts.Timeout, ctxErr, Tail(res.Console))
	}
	if waitErr != nil {
		return res, fmt.Errorf("%s: %w\n%s", QEMU, waitErr, Tail(res.Console))
	}
	out, err := os.ReadFile(filepath.Join(share, "out.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("reading the script's output: %w", err)
	}
	res.Output = string(out)
	rcFile, err := os.ReadFile(filepath.Join(share, "rc"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("reading the script's exit code: %w", err)
	}
	res.ExitCode, err = exitCode(string(rcFile), res.Console)
	if err != nil {
		return res, fmt.Errorf("%w\n%s", err, Tail(res.Console))
	}
	return res, nil
}

// CheckImage returns an error naming the first file of an image directory
// that is missing.
func CheckImage(dir string) error {
	if dir == "" {
		return errors.New("no node VM image directory (make node-image prints it)")
	}
	for _, f := range []string{kernelFile, initrdFile, rootFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("node VM image incomplete (run make node-image): %w", err)
		}
	}
	return nil
}

// qemuArgs is QEMU's command line: TCG on every host CPU thread, no network
// device, the root image in snapshot mode, the share over virtio-9p and the
// serial console on standard output. -no-reboot and panic=-1 turn a guest
// panic into QEMU's exit rather than a wait for the timeout.
func qemuArgs(opts Options, share string) []string {
	nic := "none"
	if len(opts.Forward) > 0 {
		// restrict=on: the guest reaches nothing but the forwards, and
		// each forward's only target is this machine's 127.0.0.1.
		nic = "user,model=virtio-net-pci,restrict=on"
		for _, f := range opts.Forward {
			nic += fmt.Sprintf(",guestfwd=tcp:%s:%d-cmd:socat - TCP:127.0.0.1:%d", GuestAddr, f.GuestPort, f.HostPort)
		}
	}
	return []string{
		"-accel", "tcg,thread=multi", "-cpu", "max",
		"-m", strconv.Itoa(opts.MemoryMB), "-smp", strconv.Itoa(opts.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
		"-nic", nic, "-no-reboot",
		"-kernel", filepath.Join(opts.ImageDir, kernelFile),
		"-initrd", filepath.Join(opts.ImageDir, initrdFile),
		"-drive", "file=" + filepath.Join(opts.ImageDir, rootFile) + ",format=raw,if=virtio,snapshot=on",
		"-virtfs", "local,path=" + share + ",mount_tag=hostshare,security_model=none,id=hostshare",
		"-append", cmdline(opts),
	}
}

// cmdline is the guest kernel's command line.
func cmdline(opts Options) string {
	s := "console=ttyS0 root=/dev/vda rw quiet panic=-1 mitigations=off tsc=reliable no_timer_check i8042.noaux i8042.nopnp"
	if opts.BootCPUs > 0 && opts.BootCPUs < opts.CPUs {
		s += " maxcpus=" + strconv.Itoa(opts.BootCPUs)
	}
	return s
}

// writeShare lays out run.sh and the other files in the share.
func writeShare(share, script string, files map[string]string) error {
	if err := os.WriteFile(filepath.Join(share, "run.sh"), []byte(script), 0o755); err != nil {
		return fmt.Errorf("writing run.sh: %w", err)
	}
	for name, content := range files {
		if !filepath.IsLocal(name) || name == "run.sh" || name == "out.log" || name == "rc" {
			return fmt.Errorf("share file %q: not a free relative path", name)
		}
		p := filepath.Join(share, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("share file %q: %w", name, err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			return fmt.Errorf("share file %q: %w", name, err)
		}
	}
	return nil
}

var (
	rcLine     = regexp.MustCompile(`(?m)^` + rcMarker + `(\d+)\r?$`)
	uptimeLine = regexp.MustCompile(startMarker + ` uptime=(\d+(?:\.\d+)?)`)
)

// exitCode takes the script's exit code from the share's rc file and
// checks it against the console's NODEVM-RC line; either alone will do.
func exitCode(rcFile, console string) (int, error) {
	fromFile, fromConsole := -1, -1
	if s := strings.TrimSpace(rcFile); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return -1, fmt.Errorf("the share's rc file holds %q: %w", s, err)
		}
		fromFile = n
	}
	if m := rcLine.FindAllStringSubmatch(console, -1); len(m) > 0 {
		n, err := strconv.Atoi(m[len(m)-1][1])
		if err != nil {
			return -1, fmt.Errorf("console exit code: %w", err)
		}
		fromConsole = n
	}
	switch {
	case fromFile < 0 && fromConsole < 0:
		return -1, errors.New("the guest powered off without reporting the script's exit code")
	case fromFile < 0:
		return fromConsole, nil
	case fromConsole >= 0 && fromConsole != fromFile:
		return -1, fmt.Errorf("exit code %d in the share but %d on the console", fromFile, fromConsole)
	}
	return fromFile, nil
}

// guestUptime is the guest kernel's uptime on the NODEVM-START line, or 0.
func guestUptime(console string) time.Duration {
	m := uptimeLine.FindStringSubmatch(console)
	if m == nil {
		return 0
	}
	s, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// Tail is the end of a console, to show with an error.
func Tail(console string) string {
	const keep = 40
	lines := strings.Split(strings.TrimRight(console, "\n"), "\n")
	if len(lines) > keep {
		lines = lines[len(lines)-keep:]
	}
	return "console (last lines):\n" + strings.Join(lines, "\n")
}

// consoleWriter keeps the serial console and notes when the start marker
// first arrives.
type consoleWriter struct {
	mirror io.Writer
	start  time.Time

	mu    sync.Mutex
	buf   bytes.Buffer
	first time.Duration
}

func (c *consoleWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if c.first == 0 && bytes.Contains(c.buf.Bytes(), []byte(startMarker)) {
		c.first = time.Since(c.start)
	}
	if c.mirror != nil {
		_, _ = c.mirror.Write(p)
	}
	return len(p), nil
}

func (c *consoleWriter) snapshot() (string, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.first
}
