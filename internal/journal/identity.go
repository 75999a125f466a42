//go:build cgo

package journal

import (
	"time"
)

// identityTTL is how long a process's trusted fields serve its next lines.
const identityTTL = time.Second

// maxIdentities bounds the processes whose trusted fields are kept.
const maxIdentities = 256

// identity is a process's trusted fields and when they were read (the
// entry's realtime, in microseconds).
type identity struct {
	fields   Entry
	realtime uint64
}

// remember keeps the trusted fields of process pid read from e.
func (s *LiveReader) remember(pid string, e Entry, realtime uint64) {
	if s.ids == nil || len(s.ids) >= maxIdentities {
		s.ids = make(map[string]identity, maxIdentities)
	}
	id := identity{fields: make(Entry, 6), realtime: realtime}
	for _, f := range []string{FieldUID, FieldComm, FieldExe, FieldUnit, FieldCgroup, FieldBootID} {
		if v, ok := e[f]; ok {
			id.fields[f] = v
		}
	}
	s.ids[pid] = id
}
