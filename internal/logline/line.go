package logline

import (
	"context"
	"time"
)

// Source names where a line came from.
type Source string

// The sources a line can come from.
const (
	// SourceText is a plain text line with no trusted metadata (replay of a saved log).
	SourceText Source = "text"
	// SourceKmsg is a /dev/kmsg record.
	SourceKmsg Source = "kmsg"
	// SourceJournal is a systemd journal entry.
	SourceJournal Source = "journal"
)

// Unknown marks an integer field (PID, UID, priority, facility) that the
// source did not provide.
const Unknown = -1

// Origin is who wrote a line, as recorded by the kernel or journald (never
// as claimed by the writer). Integer fields are [Unknown] when absent.
type Origin struct {
	// PID is journald's _PID.
	PID int
	// UID is journald's _UID.
	UID int
	// Comm is journald's _COMM.
	Comm string
	// Exe is journald's _EXE.
	Exe string
	// Unit is journald's _SYSTEMD_UNIT.
	Unit string
	// Cgroup is journald's _SYSTEMD_CGROUP.
	Cgroup string
	// Transport is journald's _TRANSPORT (kernel, syslog, journal, stdout, …).
	Transport string
	// BootID is journald's _BOOT_ID.
	BootID string
}

// Line is one log record.
type Line struct {
	// Source is where the line came from.
	Source Source
	// Time is when the record was written; zero when unknown.
	Time time.Time
	// Priority is the syslog level 0–7, or [Unknown].
	Priority int
	// Facility is the syslog facility (0 = kernel), or [Unknown].
	Facility int
	// Message is the text of the record.
	Message string
	// Origin holds the trusted origin fields; zero values when the source has none.
	Origin Origin
	// Seq is the kmsg sequence number or the record's position in its input.
	Seq uint64
	// Cursor is the journal cursor of the entry, empty for other sources.
	Cursor string
}

// New returns a text line with every integer field set to [Unknown].
func New(source Source, message string) Line {
	return Line{
		Source:   source,
		Priority: Unknown,
		Facility: Unknown,
		Message:  message,
		Origin:   Origin{PID: Unknown, UID: Unknown},
	}
}

// Trust is how far a line's origin can be believed.
type Trust string

// The trust levels, from strongest to weakest.
const (
	// TrustKernel: the kernel wrote the line (kmsg facility 0, journal _TRANSPORT=kernel).
	TrustKernel Trust = "kernel"
	// TrustAttributed: journald attributed the line to a process (_PID etc.).
	TrustAttributed Trust = "attributed"
	// TrustNone: nothing about the origin is known (plain text).
	TrustNone Trust = "none"
	// TrustForged: the line claims to be from the kernel but its origin is
	// known and is not the kernel.
	TrustForged Trust = "forged"
)

// FromKernel reports whether the kernel itself wrote the line. Userspace
// cannot write facility 0 to /dev/kmsg (the kernel stores such writes as
// LOG_USER). journald copies every kmsg record with _TRANSPORT=kernel, those
// written from userspace included, so a journal line is the kernel's only
// when its SYSLOG_FACILITY is 0 as well (checked here: a write of
// "<12>x: …" to /dev/kmsg is journaled with _TRANSPORT=kernel, SYSLOG_FACILITY=1).
func (l Line) FromKernel() bool {
	switch l.Source {
	case SourceKmsg:
		return l.Facility == 0
	case SourceJournal:
		return l.Origin.Transport == "kernel" && l.Facility == 0
	default:
		return false
	}
}

// OriginKnown reports whether the line's origin was recorded by a trusted
// producer, so that a claim to be the kernel can be checked.
func (l Line) OriginKnown() bool {
	return l.Source == SourceKmsg || l.Source == SourceJournal
}

// Trust classifies the line's origin. kernelClaim says whether the message
// text is a kernel signature; such a line from a known non-kernel origin is
// [TrustForged].
func (l Line) Trust(kernelClaim bool) Trust {
	switch {
	case l.FromKernel():
		return TrustKernel
	case kernelClaim && l.OriginKnown():
		return TrustForged
	case l.Source == SourceJournal && l.Origin.PID != Unknown:
		return TrustAttributed
	default:
		return TrustNone
	}
}

// Reader is a pull-based source of lines. Next blocks until a line is
// available, ctx is done, or the reader is closed; Close unblocks Next.
type Reader interface {
	Next(ctx context.Context) (Line, error)
	Close() error
}
