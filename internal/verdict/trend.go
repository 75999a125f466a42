package verdict

import (
	"math"
	"time"
)

// TrendSample is one node sample as the trend sees it.
type TrendSample struct {
	Time time.Time
	// Tasks is the node's task count.
	Tasks uint64
	// Limit is the usable binding node limit at that time.
	Limit uint64
}

// Trend is the growth of the node's tasks fitted to samples.
type Trend struct {
	// Remaining is the time until the limit of the last sample at Rate (0
	// when it is already reached).
	Remaining time.Duration
	// Rate is the growth in tasks per second.
	Rate float64
	// Trusted is true when the fit is worth a prediction.
	Trusted bool
}

// FitTrend fits a line to samples, oldest first (least squares), and
// returns the time until the limit, the growth rate, and whether the fit is
// worth trusting: enough samples over half the window at least, real
// growth, and a line that explains the points.
func FitTrend(s []TrendSample, cfg Config) Trend {
	if len(s) < cfg.MinTrendSamples || len(s) == 0 {
		return Trend{}
	}
	span := s[len(s)-1].Time.Sub(s[0].Time)
	if span < cfg.TrendWindow/2 {
		return Trend{}
	}
	var sx, sy, sxx, sxy float64
	n := float64(len(s))
	for _, p := range s {
		x := p.Time.Sub(s[0].Time).Seconds()
		y := float64(p.Tasks)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return Trend{}
	}
	slope := (n*sxy - sx*sy) / den
	if slope <= 0 || slope*span.Seconds() < float64(cfg.MinTrendGrowth) {
		return Trend{}
	}
	// Coefficient of determination: noise around a flat line is not a trend.
	mean := sy / n
	icept := (sy - slope*sx) / n
	var ssTot, ssRes float64
	for _, p := range s {
		x := p.Time.Sub(s[0].Time).Seconds()
		y := float64(p.Tasks)
		ssTot += (y - mean) * (y - mean)
		ssRes += (y - (icept + slope*x)) * (y - (icept + slope*x))
	}
	if ssTot == 0 || 1-ssRes/ssTot < 0.6 {
		return Trend{}
	}
	last := s[len(s)-1]
	if last.Tasks >= last.Limit {
		return Trend{Rate: slope, Trusted: true}
	}
	secs := float64(last.Limit-last.Tasks) / slope
	if secs > float64(math.MaxInt64/int64(time.Second)) {
		return Trend{}
	}
	return Trend{Remaining: time.Duration(secs * float64(time.Second)), Rate: slope, Trusted: true}
}
