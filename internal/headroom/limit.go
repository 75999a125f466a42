package headroom

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/pidpressure/pidpressure/internal/logline"
)

// Limit is a maximum that may be unlimited ("max" in pids.max, "unlimited"
// in /proc/PID/limits).
type Limit struct {
	Value     uint64
	Unlimited bool
}

// Finite returns a limit of n.
func Finite(n uint64) Limit { return Limit{Value: n} }

// Unlimited is no limit.
func Unlimited() Limit { return Limit{Unlimited: true} }

// String renders the limit as the kernel does.
func (l Limit) String() string {
	if l.Unlimited {
		return "max"
	}
	return strconv.FormatUint(l.Value, 10)
}

// MarshalJSON writes null for unlimited.
func (l Limit) MarshalJSON() ([]byte, error) {
	if l.Unlimited {
		return []byte("null"), nil
	}
	return json.Marshal(l.Value)
}

// UnmarshalJSON reads null as unlimited.
func (l *Limit) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = Unlimited()
		return nil
	}
	l.Unlimited = false
	return json.Unmarshal(b, &l.Value)
}

// parseLimit parses a pids.max value: "max" or a decimal.
//
// Format: "max\n" or "4096\n" (Documentation/admin-guide/cgroup-v2.rst, pids.max).
func parseLimit(b []byte) (Limit, error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return Unlimited(), nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return Limit{}, fmt.Errorf("limit %q: %w", clip(s), err)
	}
	return Finite(n), nil
}

// Percent returns used as a percentage of the limit, and false when the
// limit is unlimited or zero.
func Percent(used uint64, l Limit) (float64, bool) {
	if l.Unlimited || l.Value == 0 {
		return 0, false
	}
	return float64(used) * 100 / float64(l.Value), true
}

func clip(s string) string { return logline.Clip(s, 40) }
