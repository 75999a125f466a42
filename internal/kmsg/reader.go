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

// Start says where a new reader begins.
type Start int

// The start positions.
const (
	// StartAtEnd reads only records written after Open.
	StartAtEnd Start = iota
	// StartAtBeginning reads the whole ring first.
	StartAtBeginning
	// StartAfterSeq reads the ring from the beginning but skips every record
	// up to and including the given sequence number (same boot only). A
	// sequence number beyond the ring's last record starts at the end
	// instead (see [Opened]).
	StartAfterSeq
)

// String returns the start's name, for logs.
func (s Start) String() string {
	switch s {
	case StartAtEnd:
		return "end"
	case StartAtBeginning:
		return "beginning"
	case StartAfterSeq:
		return "after_seq"
	}
	return "start(" + strconv.Itoa(int(s)) + ")"
}

// Resume is what is known, when the kmsg source starts, about where an
// earlier reader stopped.
type Resume struct {
	// BootID is this boot's ID ("" when unknown).
	BootID string
	// SavedBootID and SavedSeq are the position saved by an earlier run:
	// the boot and the sequence number of the last record it handled (or
	// the end of the ring when it started, if it read nothing).
	SavedBootID string
	SavedSeq    uint64
	// Fresh is true when no state was saved at all (a first start, or a
	// state file that was lost or corrupt).
	Fresh bool
	// Reached is the position a reader of this run stood at, valid when
	// InRun is true: the source is restarting within one run.
	Reached uint64
	InRun   bool
}

// StartFor decides where a new reader starts: after the position reached
// within this run when the source restarts; at the end on a first start or
// when the boot is unknown on either side (losing a few records beats
// replaying the whole ring as new, as Node Problem Detector's kmsg watcher
// also reasons); after the saved sequence number in the same boot; and at
// the beginning after a reboot, since everything in the ring happened after
// the last run.
func StartFor(r Resume) (Start, uint64) {
	switch {
	case r.InRun:
		return StartAfterSeq, r.Reached
	case r.Fresh || r.BootID == "" || r.SavedBootID == "":
		return StartAtEnd, 0
	case r.SavedBootID == r.BootID:
		return StartAfterSeq, r.SavedSeq
	default:
		return StartAtBeginning, 0
	}
}

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

// Opened says where Open left a reader.
type Opened struct {
	// End is the sequence number of the last record in the ring when the
	// reader was opened; Empty is true when there was none.
	End   uint64
	Empty bool
	// Start is where the reader starts: the one asked for, or StartAtEnd
	// when SeqBeyondRing.
	Start Start
	// SeqBeyondRing is true when StartAfterSeq was asked with a sequence
	// number past the ring's last record. In one boot that cannot be a
	// record already handled (a state file from another host or a copied
	// disk, or an emulated device): skipping up to it would read nothing
	// until the kernel got there, so the reader starts at the end instead.
	SeqBeyondRing bool
}

// Reader reads /dev/kmsg records as lines. Next and Close may be called from
// different goroutines; Next must not be called concurrently with itself.
type Reader struct {
	f        *os.File
	buf      []byte
	opt      Options
	opened   Opened
	lastSeq  atomic.Uint64
	overruns atomic.Uint64
	bad      atomic.Uint64
	closed   atomic.Bool
}

var _ logline.Reader = (*Reader)(nil)

// maxRecord is the largest record /dev/kmsg returns (PRINTK_MESSAGE_MAX plus
// the prefix and dictionary).
const maxRecord = 16 << 10

// maxDrain bounds the records Open reads to find the end of the ring; a
// ring still being written faster than it is read ends the scan there.
const maxDrain = 1 << 20

// Open opens the kmsg device at path. It returns an error wrapping
// an error matching hostfs.ErrNotSupported when the device is missing or
// not readable (dmesg_restrict without CAP_SYSLOG).
//
// Open reads the ring once to its end, so that the reader knows the
// sequence number it stands at before any new record arrives (see
// [Reader.LastSeq] and [Reader.Opened]): /dev/kmsg has no call that tells
// the sequence number at its end, and seeking there (SEEK_END) leaves it
// unknown until the next record, which on a quiet host may never come.
func Open(path string, opt Options) (*Reader, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, hostfs.NotSupported("kmsg", fmt.Errorf("opening %s: %w", path, err))
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	buf := make([]byte, maxRecord)
	opened, err := drain(fd, buf)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	opened.Start = opt.Start
	if opt.Start == StartAfterSeq && (opened.Empty || opt.AfterSeq > opened.End) {
		opened.Start, opened.SeqBeyondRing = StartAtEnd, true
	}
	// The descriptor stands at the end of the ring; go back to its first
	// record to read the ring.
	if opened.Start != StartAtEnd {
		if _, err := syscall.Seek(fd, 0, 0); err != nil { // SEEK_SET: the first record still in the ring
			_ = syscall.Close(fd)
			return nil, fmt.Errorf("seeking to the start of %s: %w", path, err)
		}
	}
	// A non-blocking descriptor makes the File pollable: reads wait in the
	// runtime's poller, deadlines work, and Close unblocks a pending read.
	r := &Reader{f: os.NewFile(uintptr(fd), path), buf: buf, opt: opt, opened: opened}
	r.opt.Start = opened.Start
	switch opened.Start {
	case StartAtEnd:
		r.lastSeq.Store(opened.End)
	case StartAfterSeq:
		r.lastSeq.Store(opt.AfterSeq)
	case StartAtBeginning:
		// The first record read sets the position.
	}
	return r, nil
}

// drain reads the records of fd up to the end of the ring and returns the
// last one's sequence number. A record it cannot parse or an overrun
// (EPIPE) is passed over: only the position matters here.
func drain(fd int, buf []byte) (Opened, error) {
	o := Opened{Empty: true}
	for i := 0; i < maxDrain; i++ {
		n, err := syscall.Read(fd, buf)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return o, nil
		case errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return o, err
		case n == 0:
			return o, nil // not a kmsg device: a file at its end
		}
		if seq, ok := parseSeq(buf[:n]); ok {
			o.End, o.Empty = seq, false
		}
	}
	// Still being written: stand at the end; the records passed over
	// since the last one counted are not reported.
	if _, err := syscall.Seek(fd, 0, 2); err != nil { // SEEK_END
		return o, err
	}
	return o, nil
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

// LastSeq returns the position of the reader, to persist: the sequence
// number of the last record returned or, before the first, of the last
// record it passed over at Open (the end of the ring for StartAtEnd, the
// resume point for StartAfterSeq; zero for StartAtBeginning).
func (r *Reader) LastSeq() uint64 { return r.lastSeq.Load() }

// Opened says where Open left the reader.
func (r *Reader) Opened() Opened { return r.opened }

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
