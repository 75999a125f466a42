package journal

import (
	"strconv"
	"time"

	"github.com/pidpressure/pidpressure/internal/logline"
)

// Entry is one journal entry: field name to value. Binary values are kept as
// their raw bytes in a string.
type Entry map[string]string

// The journal fields a line is built from.
const (
	FieldMessage   = "MESSAGE"
	FieldRealtime  = "__REALTIME_TIMESTAMP"
	FieldCursor    = "__CURSOR"
	FieldPriority  = "PRIORITY"
	FieldFacility  = "SYSLOG_FACILITY"
	FieldPID       = "_PID"
	FieldUID       = "_UID"
	FieldComm      = "_COMM"
	FieldExe       = "_EXE"
	FieldUnit      = "_SYSTEMD_UNIT"
	FieldCgroup    = "_SYSTEMD_CGROUP"
	FieldTransport = "_TRANSPORT"
	FieldBootID    = "_BOOT_ID"
)

// Fields lists every field [Translate] reads, for readers that fetch fields
// one by one.
func Fields() []string {
	return []string{FieldMessage, FieldRealtime, FieldPriority, FieldFacility, FieldPID, FieldUID,
		FieldComm, FieldExe, FieldUnit, FieldCgroup, FieldTransport, FieldBootID}
}

// Translate builds a line from an entry. Fields that are absent or not
// numbers where numbers belong are left unknown; a journal entry always
// yields a line.
func Translate(e Entry) logline.Line {
	l := logline.New(logline.SourceJournal, e[FieldMessage])
	if us, err := strconv.ParseInt(e[FieldRealtime], 10, 64); err == nil && us > 0 {
		l.Time = time.UnixMicro(us).UTC()
	}
	l.Priority = smallInt(e[FieldPriority], 7)
	l.Facility = smallInt(e[FieldFacility], 23)
	l.Origin = logline.Origin{
		PID:       id(e[FieldPID]),
		UID:       id(e[FieldUID]),
		Comm:      e[FieldComm],
		Exe:       e[FieldExe],
		Unit:      e[FieldUnit],
		Cgroup:    e[FieldCgroup],
		Transport: e[FieldTransport],
		BootID:    e[FieldBootID],
	}
	l.Cursor = e[FieldCursor]
	return l
}

func smallInt(s string, max int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return logline.Unknown
	}
	return n
}

func id(s string) int {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return logline.Unknown
	}
	return int(n)
}
