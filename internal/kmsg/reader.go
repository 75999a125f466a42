package kmsg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
)

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("kmsg reader closed")

// ErrNotSupported is returned by Open when /dev/kmsg cannot be read here
// (missing, or not permitted: dmesg_restrict without CAP_SYSLOG).
var ErrNotSupported = errors.New("kmsg not supported")

// Start says where a new reader begins.
type Start int

// The start positions.
const (
	// StartAtEnd reads only records written after Open.
	StartAtEnd Start = iota
	// StartAtBeginning reads the whole ring first.
	StartAtBeginning
	// StartAfterSeq reads the ring from the beginning but skips every record
	// up to and including the given sequence number (same boot only).
	StartAfterSeq
)

// Options configure a Reader.
type Options struct {
	// Start is where to begin.
	Start Start
	// AfterSeq is the last sequence number already handled, for StartAfterSeq.
	AfterSeq uint64
	// Boot is the wall-clock time of boot, to date records; zero leaves
	// them undated.
	Boot time.Time
	// Poll bounds how long Next waits in one read before it checks its
	// context again (default 1s).
	Poll time.Duration
}

// Stats count what a reader skipped.
type Stats struct {
	// Overruns is the number of times records were overwritten before they
	// were read (EPIPE from /dev/kmsg).
	Overruns uint64
	// Malformed is the number of records that could not be parsed.
	Malformed uint64
}

// Reader reads /dev/kmsg records as lines. Next and Close may be called from
// different goroutines; Next must not be called concurrently with itself.
type Reader struct {
	f        *os.File
	buf      []byte
	opt      Options
	lastSeq  atomic.Uint64
	overruns atomic.Uint64
	bad      atomic.Uint64
	closed   atomic.Bool
}

var _ logline.Reader = (*Reader)(nil)

// maxRecord is the largest record /dev/kmsg returns (PRINTK_MESSAGE_MAX plus
// the prefix and dictionary).
const maxRecord = 16 << 10

// Open opens the kmsg device at path. It returns an error wrapping
// ErrNotSupported when the device is missing or not readable.
func Open(path string, opt Options) (*Reader, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("%w: opening %s: %w", ErrNotSupported, path, err)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if opt.Start == StartAtEnd {
		if _, err := syscall.Seek(fd, 0, 2); err != nil { // SEEK_END: the next record written
			_ = syscall.Close(fd)
			return nil, fmt.Errorf("seeking to the end of %s: %w", path, err)
		}
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	// A non-blocking descriptor makes the File pollable: reads wait in the
	// runtime's poller, deadlines work, and Close unblocks a pending read.
	r := &Reader{f: os.NewFile(uintptr(fd), path), buf: make([]byte, maxRecord), opt: opt}
	if opt.Start == StartAfterSeq {
		r.lastSeq.Store(opt.AfterSeq)
	}
	return r, nil
}

// Next returns the next record. It skips (and counts) overruns and
// malformed records, and records at or before the resume point.
func (r *Reader) Next(ctx context.Context) (logline.Line, error) {
	for {
		if err := ctx.Err(); err != nil {
			return logline.Line{}, err
		}
		if err := r.f.SetReadDeadline(time.Now().Add(r.opt.Poll)); err != nil { //nolint:forbidigo // a poll deadline on the device, not an event time
			return logline.Line{}, r.closedOr(err)
		}
		n, err := r.f.Read(r.buf)
		switch {
		case errors.Is(err, syscall.EPIPE):
			// The ring wrapped past us: records were lost. Count, go on.
			r.overruns.Add(1)
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case err != nil:
			return logline.Line{}, r.closedOr(err)
		}
		rec, err := Parse(string(r.buf[:n]))
		if err != nil {
			r.bad.Add(1)
			continue
		}
		if r.opt.Start == StartAfterSeq && rec.Seq <= r.opt.AfterSeq {
			continue
		}
		r.lastSeq.Store(rec.Seq)
		return rec.Line(r.opt.Boot), nil
	}
}

func (r *Reader) closedOr(err error) error {
	if r.closed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}

// LastSeq returns the sequence number of the last record returned (or the
// resume point), to persist.
func (r *Reader) LastSeq() uint64 { return r.lastSeq.Load() }

// Stats returns the skip counters.
func (r *Reader) Stats() Stats {
	return Stats{Overruns: r.overruns.Load(), Malformed: r.bad.Load()}
}

// Close closes the device; a Next blocked in it returns ErrClosed.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	return r.f.Close()
}

// BootID returns the kernel's boot ID (/proc/sys/kernel/random/boot_id),
// which changes at every boot: kmsg sequence numbers are only comparable
// within one.
func BootID(root hostfs.Root) (string, error) {
	return hostfs.ReadString(root.ProcPath("sys", "kernel", "random", "boot_id"))
}

// BootTime returns the wall-clock time of boot: now less the uptime of
// /proc/uptime ("350735.47 234388.90": seconds up, seconds idle).
func BootTime(root hostfs.Root, now time.Time) (time.Time, error) {
	s, err := hostfs.ReadString(root.ProcPath("uptime"))
	if err != nil {
		return time.Time{}, err
	}
	up, _, _ := strings.Cut(s, " ")
	secs, err := strconv.ParseFloat(up, 64)
	if err != nil || secs < 0 {
		return time.Time{}, fmt.Errorf("uptime %q: not a number of seconds", s)
	}
	return now.Add(-time.Duration(secs * float64(time.Second))), nil
}
