package verdict

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// usable is the usable limit of node(): pid_max 32768 less the 300 PIDs
// that cannot be reused.
const usable = 32468

// trendEvery is the agent's sample interval.
const trendEvery = 2 * time.Second

// slide feeds the samples of series, one every trendEvery for length, to
// FitTrend over the trend window as the correlator keeps it, and calls
// check after each sample with the time since the start and the fit.
func slide(cfg Config, length time.Duration, series func(sec float64) float64, check func(at time.Duration, tasks float64, tr Trend)) {
	var win []TrendSample
	for at := time.Duration(0); at <= length; at += trendEvery {
		now := t0.Add(at)
		tasks := math.Round(series(at.Seconds()))
		win = append(win, TrendSample{Time: now, Tasks: uint64(tasks), Limit: usable})
		cut := 0
		for cut < len(win) && now.Sub(win[cut].Time) > cfg.TrendWindow {
			cut++
		}
		win = win[cut:]
		check(at, tasks, FitTrend(win, cfg))
	}
}

// noise returns a deterministic noise of amplitude ±amp per sample time.
func noise(seed uint64, amp float64) func(sec float64) float64 {
	return func(sec float64) float64 {
		r := rand.New(rand.NewPCG(seed, uint64(sec*1000)))
		return (r.Float64()*2 - 1) * amp
	}
}

// sawtooth rises from 20,000 tasks by amp over rise seconds, then drops back at once.
func sawtooth(amp, rise float64) func(sec float64) float64 {
	return func(sec float64) float64 { return 20000 + amp*math.Mod(sec, rise)/rise }
}

// TestTrendNeverPredicts: shapes that are not a sustained growth never give
// a trusted trend, at any moment of a long run sampled every 2 s (the
// window slides over every position of a step).
func TestTrendNeverPredicts(t *testing.T) {
	t.Parallel()
	step := func(at float64) func(sec float64) float64 {
		return func(sec float64) float64 {
			if sec < at {
				return 20000
			}
			return 22500
		}
	}
	n50 := noise(1, 50)
	n400 := noise(2, 400)
	tests := []struct {
		name   string
		series func(sec float64) float64
		// from is when the shape is established: before its first
		// drop, a sawtooth is a growth like any other, and a drop is
		// seen when most of the last trendTail samples show it.
		from time.Duration
	}{
		{name: "one step then flat", series: step(300)},
		{name: "one step then flat, with noise", series: func(s float64) float64 { return step(300)(s) + n50(s) }},
		{name: "sawtooth, 2 min period", series: sawtooth(3000, 120), from: 2 * time.Minute},
		{name: "sawtooth, 3.5 min period", series: sawtooth(3000, 210), from: 210 * time.Second},
		{name: "sawtooth, 7 min period", series: sawtooth(3000, 420), from: 7 * time.Minute},
		{name: "sawtooth, 4 min period, with noise", series: func(s float64) float64 { return sawtooth(2500, 240)(s) + n50(s) }, from: 4 * time.Minute},
		{name: "triangle wave, 4 min period", series: func(s float64) float64 { return 20000 + 3000*math.Abs(math.Mod(s, 240)-120)/120 }, from: 2 * time.Minute},
		{name: "noise around a flat line", series: func(s float64) float64 { return 20000 + n400(s) }},
		{name: "flat", series: func(float64) float64 { return 20000 }},
		{name: "small numbers below minTrendGrowth", series: func(s float64) float64 { return 100 + 0.5*s }},
		{name: "shrinking", series: func(s float64) float64 { return 26000 - 2*s }},
	}
	cfg := DefaultConfig()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bad := 0
			slide(cfg, 30*time.Minute, tt.series, func(at time.Duration, tasks float64, tr Trend) {
				if at >= tt.from+trendTail/2*trendEvery && tr.Trusted {
					if bad == 0 {
						t.Errorf("at %s (%.0f tasks): trusted, the limit in %s at %.2f tasks/s", at, tasks, tr.Remaining, tr.Rate)
					}
					bad++
				}
			})
			if bad > 0 {
				t.Errorf("trusted at %d of %d samples", bad, int(30*time.Minute/trendEvery)+1)
			}
		})
	}
}

// TestTrendFollowsGrowth: a real growth is predicted as soon as the window
// is half full, the rate and the time to the limit within a few % of the
// truth; when it stops, the prediction stops within the recent part of the
// window.
func TestTrendFollowsGrowth(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	recent := cfg.TrendWindow / 4
	tests := []struct {
		name   string
		rate   float64       // tasks/s while growing
		start  float64       // tasks at 0
		noise  float64       // amplitude of the noise: ±noise
		tol    float64       // of the rate and the time to the limit
		until  time.Duration // growth stops here (0: never)
		length time.Duration
	}{
		{name: "linear growth", rate: 1.5, start: 15000, tol: 0.001, length: 15 * time.Minute},
		{name: "linear growth with noise", rate: 1.5, start: 15000, noise: 30, tol: 0.03, length: 15 * time.Minute},
		{name: "linear growth with much noise", rate: 1.5, start: 15000, noise: 100, tol: 0.06, length: 15 * time.Minute},
		{name: "slow growth, just above minTrendGrowth", rate: 1, start: 5000, noise: 30, tol: 0.03, length: 20 * time.Minute},
		{name: "fast growth", rate: 20, start: 1000, noise: 200, tol: 0.03, length: 20 * time.Minute},
		{name: "growth then plateau", rate: 2, start: 15000, tol: 0.001, until: 10 * time.Minute, length: 25 * time.Minute},
		{name: "growth then plateau, with noise", rate: 2, start: 15000, noise: 30, tol: 0.03, until: 10 * time.Minute, length: 25 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nz := noise(7, tt.noise)
			truth := func(sec float64) float64 {
				if tt.until > 0 {
					sec = min(sec, tt.until.Seconds())
				}
				return tt.start + tt.rate*sec
			}
			var errs []string
			trusted := 0
			slide(cfg, tt.length, func(s float64) float64 { return truth(s) + nz(s) }, func(at time.Duration, tasks float64, tr Trend) {
				growing := tt.until == 0 || at <= tt.until
				level := truth(at.Seconds())
				switch {
				case at < cfg.TrendWindow/2 || tt.rate*min(at, cfg.TrendWindow).Seconds() < 1.1*float64(cfg.MinTrendGrowth) || level >= usable:
					// Too early to judge (less than minTrendGrowth, with
					// a margin for the noise), or past the limit.
				case growing && !tr.Trusted:
					errs = append(errs, "not trusted while growing at "+at.String())
				case growing:
					trusted++
					want := time.Duration((usable - level) / tt.rate * float64(time.Second))
					if rel := math.Abs(tr.Rate-tt.rate) / tt.rate; rel > tt.tol {
						errs = append(errs, fmt.Sprintf("rate %.3f, want %.3f at %s", tr.Rate, tt.rate, at))
					}
					if rel := math.Abs(float64(tr.Remaining-want)) / float64(want); rel > tt.tol && (tr.Remaining-want).Abs() > 10*time.Second {
						errs = append(errs, "time to the limit "+tr.Remaining.Round(time.Second).String()+", want "+want.Round(time.Second).String()+" at "+at.String())
					}
				case at >= tt.until+recent && tr.Trusted:
					errs = append(errs, "still trusted at "+at.String()+", "+(at-tt.until).String()+" into the plateau")
				}
			})
			if trusted == 0 && tt.until == 0 {
				t.Error("never trusted")
			}
			if len(errs) > 0 {
				t.Errorf("%d wrong fits, the first: %s", len(errs), strings.Join(errs[:min(5, len(errs))], "; "))
			}
		})
	}
}

// TestTrendCases covers the edges of FitTrend on hand-made samples.
func TestTrendCases(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	linear := func(n int, every time.Duration, start, perSample uint64) []TrendSample {
		s := make([]TrendSample, n)
		for i := range s {
			s[i] = TrendSample{Time: t0.Add(time.Duration(i) * every), Tasks: start + uint64(i)*perSample, Limit: usable}
		}
		return s
	}
	atLimit := linear(11, time.Minute, 26468, 600)
	tests := []struct {
		name    string
		samples []TrendSample
		want    Trend
	}{
		{name: "no samples", want: Trend{}},
		{name: "too few samples", samples: linear(5, 2*time.Minute, 20000, 1200), want: Trend{}},
		{name: "less than half the window", samples: linear(100, 2*time.Second, 20000, 10), want: Trend{}},
		{name: "one a minute, 10 minutes", samples: linear(11, time.Minute, 20000, 600),
			want: Trend{Remaining: time.Duration(float64(usable-26000) / 10 * float64(time.Second)), Rate: 10, Trusted: true}},
		{name: "already at the limit", samples: atLimit, want: Trend{Rate: 10, Trusted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := FitTrend(tt.samples, cfg)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })); diff != "" {
				t.Errorf("FitTrend() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTrendCostIsBounded: hours of samples (a window far longer than the
// default) cost no more pairs than the default window, and the fit is
// still right.
func TestTrendCostIsBounded(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.TrendWindow = 6 * time.Hour
	s := make([]TrendSample, int(cfg.TrendWindow/trendEvery)+1)
	for i := range s {
		s[i] = TrendSample{Time: t0.Add(time.Duration(i) * trendEvery), Tasks: 1000 + uint64(i)/2, Limit: 4194304}
	}
	tr := FitTrend(s, cfg)
	if !tr.Trusted || math.Abs(tr.Rate-0.25) > 0.25*0.03 {
		t.Errorf("FitTrend over %d samples = %+v, want trusted at 0.25 tasks/s", len(s), tr)
	}
	pts := make([]point, len(s))
	for i, p := range s {
		pts[i] = point{x: p.Time.Sub(s[0].Time).Seconds(), y: float64(p.Tasks)}
	}
	if got := len(reduce(pts)); got > maxTrendPoints {
		t.Errorf("%d samples are fitted as %d points, more than %d", len(s), got, maxTrendPoints)
	}
}

// TestStepIsNotPredicted is the incident: one flat step from 20,000 to
// 22,500 tasks (pid_max 32,768) with no growth at all, sampled every 2 s by
// the correlator, must never read PIDExhaustionPredicted.
func TestStepIsNotPredicted(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	for at := time.Duration(0); at <= 30*time.Minute; at += trendEvery {
		tasks := uint64(20000)
		if at >= 5*time.Minute {
			tasks = 22500
		}
		c.Record(node(tasks))
		if cond, _ := c.Evaluate(); cond.Reason == ReasonPredicted {
			t.Fatalf("at %s after the start (%d tasks): %s", at, tasks, cond.Message)
		}
		if d, ok := c.Prediction(); ok {
			t.Fatalf("at %s: Prediction() = %s, true", at, d)
		}
		clk.Step(trendEvery)
	}
}

func BenchmarkFitTrend(b *testing.B) {
	cfg := DefaultConfig()
	s := make([]TrendSample, int(cfg.TrendWindow/trendEvery)+1)
	nz := noise(3, 100)
	for i := range s {
		sec := float64(i) * trendEvery.Seconds()
		s[i] = TrendSample{Time: t0.Add(time.Duration(i) * trendEvery), Tasks: uint64(20000 + 1.5*sec + nz(sec)), Limit: usable}
	}
	for b.Loop() {
		FitTrend(s, cfg)
	}
}
