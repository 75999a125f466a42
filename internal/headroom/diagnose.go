package headroom

import (
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// DiagnoseOptions selects what Diagnose samples beyond the defaults.
type DiagnoseOptions struct {
	// Cgroups are extra cgroup paths to sample, as in /proc/PID/cgroup.
	Cgroups []string
	// PID, when positive, adds the user layer of that process and an
	// attribution for a failure coming from it.
	PID int
	// TopZombieParents bounds the zombie parents listed (default 10).
	TopZombieParents int
}

// Diagnosis is every layer's headroom at one moment, with the audit.
type Diagnosis struct {
	Node        Node        `json:"node"`
	Hierarchies []Hierarchy `json:"hierarchies"`
	Cgroups     []Cgroup    `json:"cgroups"`
	// Tightest is the finite-limit cgroup closest to its limit, if any.
	Tightest *Cgroup `json:"tightest,omitempty"`
	// Scan is the walk of /proc: totals and zombies.
	Scan Scan `json:"scan"`
	// User is the user layer of the requested PID.
	User *User `json:"user,omitempty"`
	// Attribution is which limit binds for the requested PID or, without
	// one, for the node as a whole.
	Attribution Attribution `json:"attribution"`
	Audit       []Finding   `json:"audit"`
	// Errors lists what could not be read; the rest is still reported.
	Errors []string `json:"errors,omitempty"`
}

// Diagnose samples every layer of the host at root. It returns what it could
// read plus the joined errors of what it could not; only a failure to read
// the node layer is fatal.
func Diagnose(root hostfs.Root, opt DiagnoseOptions) (Diagnosis, error) {
	if opt.TopZombieParents <= 0 {
		opt.TopZombieParents = 10
	}
	var d Diagnosis
	var errs []error
	s := NewSampler(root)
	defer func() { _ = s.Close() }()
	n, err := s.Node()
	if err != nil {
		return d, err
	}
	d.Node = n
	hs, err := Hierarchies(root)
	if err != nil {
		errs = append(errs, err)
	}
	d.Hierarchies = hs
	seen := map[string]bool{}
	for _, h := range hs {
		targets, err := Discover(root, h)
		if err != nil {
			errs = append(errs, err)
		}
		for _, p := range opt.Cgroups {
			targets = append(targets, Target{Path: path.Clean("/" + p), Kind: KindNamed})
		}
		for _, t := range targets {
			key := fmt.Sprintf("%d:%s", h.Version, t.Path)
			if seen[key] {
				continue
			}
			seen[key] = true
			c, err := ReadCgroup(h, t.Path)
			if err != nil {
				if t.Kind == KindNamed || !hostfs.Vanished(err) {
					errs = append(errs, fmt.Errorf("cgroup v%d %s: %w", h.Version, t.Path, err))
				}
				continue
			}
			c.Kind, c.Pod, c.Unit = t.Kind, t.Pod, t.Unit
			if c.Kind == KindNamed {
				c.Kind = KindOf(c.Path)
				c.Pod = PodOfPath(root, c.Path)
				if c.Kind == KindUnit {
					c.Unit = path.Base(c.Path)
				}
			}
			d.Cgroups = append(d.Cgroups, c)
		}
	}
	sort.SliceStable(d.Cgroups, func(i, j int) bool { return d.Cgroups[i].Path < d.Cgroups[j].Path })
	for i := range d.Cgroups {
		c := &d.Cgroups[i]
		if c.UsedPercent == nil {
			continue
		}
		if d.Tightest == nil || *c.UsedPercent > *d.Tightest.UsedPercent {
			d.Tightest = c
		}
	}
	scan, err := Walk(root, opt.TopZombieParents)
	if err != nil {
		errs = append(errs, err)
	}
	d.Scan = scan
	origin := Origin{PID: opt.PID, UID: -1}
	if opt.PID > 0 {
		u, err := UserOf(root, opt.PID, &scan)
		if err != nil {
			errs = append(errs, fmt.Errorf("user layer of pid %d: %w", opt.PID, err))
		} else {
			d.User = &u
		}
	} else if d.Tightest != nil && d.Tightest.AtLimit {
		origin.Cgroup = d.Tightest.Path
	}
	d.Attribution = Attribute(root, n, hs, origin, func() *Scan { return &scan })
	if opt.PID <= 0 && d.Attribution.Layer == LayerNone {
		// No failure is being explained: say plainly that all is well
		// rather than explain a failure that did not happen.
		d.Attribution.Reason = reasonAllWell(n)
	}
	d.Audit = Audit(root, n, d.Cgroups)
	for _, e := range errs {
		d.Errors = append(d.Errors, e.Error())
	}
	emptyNotNil(&d)
	return d, errors.Join(errs...)
}

// emptyNotNil makes the lists of d empty rather than nil, so that JSON
// readers see [] for "none" and never null.
func emptyNotNil(d *Diagnosis) {
	if d.Hierarchies == nil {
		d.Hierarchies = []Hierarchy{}
	}
	if d.Cgroups == nil {
		d.Cgroups = []Cgroup{}
	}
	if d.Audit == nil {
		d.Audit = []Finding{}
	}
	if d.Scan.ZombieParents == nil {
		d.Scan.ZombieParents = []ZombieParent{}
	}
	if d.Scan.TopUsers == nil {
		d.Scan.TopUsers = []UserTasks{}
	}
}
