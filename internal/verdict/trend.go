package verdict

import (
	"math"
	"slices"
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

// Trend is the growth of the node's tasks fitted to samples. Remaining and
// Rate are zero unless Trusted.
type Trend struct {
	// Remaining is the time until the limit of the last sample at Rate (0
	// when it is already reached).
	Remaining time.Duration
	// Rate is the growth in tasks per second.
	Rate float64
	// Trusted is true when the fit is worth a prediction.
	Trusted bool
}

// maxTrendPoints bounds the points the slopes are taken between, so that a
// fit costs at most maxTrendPoints*(maxTrendPoints-1)/2 pairs (2,016)
// however many samples the window holds (301 at the default 2 s over 10
// min).
const maxTrendPoints = 64

// maxTrendMisfit is the largest misfit (see misfit) of a trusted trend.
const maxTrendMisfit = 0.6

// trendTail is how many of the last samples must lie on the line.
const trendTail = 5

// FitTrend fits the growth of samples, oldest first, and says whether it is
// worth a prediction.
//
// The rate is the Theil–Sen estimate: the median of the slopes between
// every pair of points (the samples, or, when there are more than
// maxTrendPoints, the means of as many runs of consecutive samples). Unlike
// a least-squares line it is not pulled by a few outliers, and a single
// step in a flat series gives it no slope unless the step sits near the
// middle of the window.
//
// It is trusted only when all of these hold:
//   - at least cfg.MinTrendSamples samples spanning half of cfg.TrendWindow;
//   - a positive rate that grows at least cfg.MinTrendGrowth tasks across
//     the span, so that noise and small numbers do not count;
//   - the rate of the most recent quarter of the span (at least 3 samples),
//     fitted the same way, agrees: between half and twice the whole span's.
//     A step followed by a flat line (the step sits near the middle of one
//     of the two spans at most) or a growth that has stopped fails this;
//   - the line explains the points (misfit at most maxTrendMisfit): the
//     teeth of a sawtooth lie far from the line of its rising edges;
//   - the median of the last trendTail samples lies within a quarter of the
//     span's growth of the line: just after a drop, the window before it
//     still follows the line, the samples since do not.
//
// Remaining is measured from the fitted level at the last sample (the
// median of the points carried forward along the rate), not from the last
// sample alone, so that one noisy sample does not move it.
func FitTrend(s []TrendSample, cfg Config) Trend {
	if len(s) < max(cfg.MinTrendSamples, 3) {
		return Trend{}
	}
	first, last := s[0], s[len(s)-1]
	span := last.Time.Sub(first.Time)
	if span < cfg.TrendWindow/2 || span <= 0 {
		return Trend{}
	}
	pts := make([]point, len(s))
	for i, p := range s {
		pts[i] = point{x: p.Time.Sub(first.Time).Seconds(), y: float64(p.Tasks)}
	}
	whole := reduce(pts)
	rate := theilSen(whole)
	if !(rate > 0) || rate*span.Seconds() < float64(cfg.MinTrendGrowth) {
		return Trend{}
	}
	from := pts[len(pts)-1].x - span.Seconds()/4
	i := len(pts) - 3
	for i > 0 && pts[i-1].x >= from {
		i--
	}
	if recent := theilSen(reduce(pts[i:])); !(recent >= rate/2 && recent <= rate*2) {
		return Trend{}
	}
	xl := pts[len(pts)-1].x
	carried := make([]float64, len(whole))
	for j, p := range whole {
		carried[j] = p.y + rate*(xl-p.x)
	}
	level := median(carried)
	if misfit(pts, rate, level) > maxTrendMisfit {
		return Trend{}
	}
	// The last points must lie on the line too: just after the drop of a
	// sawtooth, the few points since lie far below the line of the teeth
	// before it, which the rest of the window still follows.
	tail := pts[max(i, len(pts)-trendTail):]
	off := make([]float64, len(tail))
	for j, p := range tail {
		off[j] = p.y - (level - rate*(xl-p.x))
	}
	if math.Abs(median(off)) > rate*span.Seconds()/4 {
		return Trend{}
	}
	if last.Tasks >= last.Limit || level >= float64(last.Limit) {
		return Trend{Rate: rate, Trusted: true}
	}
	secs := (float64(last.Limit) - level) / rate
	if secs > float64(math.MaxInt64/int64(time.Second)) {
		return Trend{}
	}
	return Trend{Remaining: time.Duration(secs * float64(time.Second)), Rate: rate, Trusted: true}
}

// misfit is the mean absolute distance of the points from the line of rate
// through level at the last point, over their mean absolute deviation from
// their mean: 0 when the line explains the points, about 1 or more when it
// explains nothing. Most points of a sawtooth lie on the line of its rising
// edge, but the teeth before the last drop lie far from it.
func misfit(p []point, rate, level float64) float64 {
	xl := p[len(p)-1].x
	var mean float64
	for _, q := range p {
		mean += q.y
	}
	mean /= float64(len(p))
	var res, dev float64
	for _, q := range p {
		res += math.Abs(q.y - (level - rate*(xl-q.x)))
		dev += math.Abs(q.y - mean)
	}
	if dev == 0 {
		return math.Inf(1)
	}
	return res / dev
}

// point is a sample at x seconds since the first, with y tasks.
type point struct{ x, y float64 }

// reduce returns p, or, when it holds more than maxTrendPoints, the means of
// maxTrendPoints runs of consecutive points. A mean of a run of a line lies
// on the line, and averaging keeps the noise the thinning would lose.
func reduce(p []point) []point {
	n := len(p)
	if n <= maxTrendPoints {
		return p
	}
	out := make([]point, maxTrendPoints)
	for k := range out {
		lo, hi := k*n/maxTrendPoints, (k+1)*n/maxTrendPoints
		var sx, sy float64
		for _, q := range p[lo:hi] {
			sx, sy = sx+q.x, sy+q.y
		}
		out[k] = point{x: sx / float64(hi-lo), y: sy / float64(hi-lo)}
	}
	return out
}

// theilSen returns the median of the slopes between every pair of points at
// distinct times, NaN when there is none.
func theilSen(p []point) float64 {
	slopes := make([]float64, 0, len(p)*(len(p)-1)/2)
	for i := range p {
		for j := i + 1; j < len(p); j++ {
			if dx := p[j].x - p[i].x; dx > 0 {
				slopes = append(slopes, (p[j].y-p[i].y)/dx)
			}
		}
	}
	if len(slopes) == 0 {
		return math.NaN()
	}
	return median(slopes)
}

// median returns the median of v, which it sorts; v is not empty.
func median(v []float64) float64 {
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}
