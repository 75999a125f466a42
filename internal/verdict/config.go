package verdict

import (
	"time"
)

// Config holds the thresholds.
type Config struct {
	// WarningPercent of the node limit turns the condition True (PIDHeadroomLow).
	WarningPercent float64
	// RecoveryPercent: the condition turns False only below it.
	RecoveryPercent float64
	// QuietPeriod: and only after this long without a reason to be True.
	QuietPeriod time.Duration
	// FailureWindow: a node-level failure keeps PIDExhausted this long.
	FailureWindow time.Duration
	// TrendWindow is the span of samples the trend is fitted over.
	TrendWindow time.Duration
	// Horizon: a predicted exhaustion within it is PIDExhaustionPredicted.
	Horizon time.Duration
	// MinTrendSamples and MinTrendGrowth keep the prediction off noise and
	// tiny numbers: the fit needs that many samples and that many tasks of
	// growth over its span.
	MinTrendSamples int
	MinTrendGrowth  uint64
	// EventInterval: a subject's repeats are announced at most once per it.
	EventInterval time.Duration
	// MaxSubjects announced per interval per reason; the rest are folded
	// into one event per reason.
	MaxSubjects int
	// MaxWrites bounds the Events of occurrences (failures, zombies)
	// announced in any MaxWritesWindow: a storm costs the apiserver at most
	// that. Beyond it, occurrences are counted and announced, summarised,
	// once the window has room. The start-up audit's findings, a bounded
	// standing state, are not counted. 0 is no bound.
	MaxWrites       int
	MaxWritesWindow time.Duration
	// ZombieThreshold: a parent holding this many zombies is announced.
	ZombieThreshold uint64
	// MaxMessage bounds messages (bytes).
	MaxMessage int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		WarningPercent:  85,
		RecoveryPercent: 80,
		QuietPeriod:     5 * time.Minute,
		FailureWindow:   2 * time.Minute,
		TrendWindow:     10 * time.Minute,
		Horizon:         30 * time.Minute,
		MinTrendSamples: 6,
		MinTrendGrowth:  500,
		EventInterval:   5 * time.Minute,
		MaxSubjects:     5,
		MaxWrites:       10,
		MaxWritesWindow: 10 * time.Minute,
		ZombieThreshold: 50,
		MaxMessage:      1024,
	}
}
