package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
)

// tailRecord is one line of "tail -o jsonl".
type tailRecord struct {
	Time      string            `json:"time"`
	Kind      string            `json:"kind"`
	Source    string            `json:"source,omitempty"`
	Signature string            `json:"signature,omitempty"`
	Family    string            `json:"family,omitempty"`
	Class     string            `json:"class,omitempty"`
	Strength  string            `json:"strength,omitempty"`
	Trust     string            `json:"trust,omitempty"`
	Fields    *signature.Fields `json:"fields,omitempty"`
	PID       int               `json:"pid,omitempty"`
	UID       *int              `json:"uid,omitempty"`
	Comm      string            `json:"comm,omitempty"`
	Unit      string            `json:"unit,omitempty"`
	Cgroup    string            `json:"cgroup,omitempty"`
	Pod       string            `json:"pod,omitempty"`
	Refused   uint64            `json:"rejected,omitempty"`
	Count     uint64            `json:"count,omitempty"`
	Limit     string            `json:"limit,omitempty"`
	Refusing  string            `json:"refusing,omitempty"`
	Used      *int64            `json:"used,omitempty"`
	Max       *int64            `json:"max,omitempty"`
	PIDNS     uint32            `json:"pidns,omitempty"`
	Mode      string            `json:"mode,omitempty"`
	Total     uint64            `json:"total,omitempty"`
	Message   string            `json:"message,omitempty"`
}

func newTailCmd() *cobra.Command {
	var output string
	var flags *configFlags
	cmd := &cobra.Command{
		Use:   "tail [flags]",
		Short: "Follow the journal, /dev/kmsg, pids.events and the kernel's own count and print every creation failure",
		Long: `tail runs the live sources in the foreground — the systemd journal, /dev/kmsg,
the pids.events of the cgroups that matter and, with --ebpf, the eBPF counter
of refused creations — and prints each log line that matches a signature,
each fork a pids cgroup refused, and what the kernel counted, as it happens
(records of kind "counted", at least once a second while failures happen;
their counts sum to the creations the kernel refused).

It never forks or execs and creates its OS threads at start-up, so it keeps
working when the node (or its own cgroup) has no PIDs left. With --state-dir
it resumes where it stopped: nothing is lost or repeated across restarts.
A source that is not available here (no journal, no /dev/kmsg, no pids
controller) is reported on standard error and the others carry on.

The flags override the configuration file's fields (each flag's help names
its field); the result is validated as a whole, with the file's rules. The
file's extra signatures are matched before the built-in catalog.`,
		Example: `  pidpressure tail
  pidpressure tail -o jsonl --state-dir /var/lib/pidpressure
  pidpressure tail --ebpf=on -o jsonl`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "jsonl" {
				return usageError{fmt.Errorf("unknown output %q: want text or jsonl", output)}
			}
			conf, err := flags.load()
			if err != nil {
				return err
			}
			if err := prepareStateDir(conf.StateDir); err != nil {
				return err
			}
			agent.PrewarmThreads(conf.PrewarmThreads, 0)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			m, err := signature.NewMatcher(conf.Rules())
			if err != nil {
				return err
			}
			sc := conf.Detector().Sources
			root := sc.Root
			src := agent.NewSupervisor(sc, m, clock.RealClock{}, log)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				printReports(cmd.OutOrStdout(), output, root, src.Reports())
			}()
			err = src.Run(cmd.Context())
			st := src.Stats()
			log.Info("stopped", "lines", st.Lines.Load(), "matches", st.Matches.Load(), "rejected", st.Refused.Load(), "counted", st.Counted.Load(), "dropped", st.Dropped.Load())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "text", "output form: text or jsonl (one object per line, flushed as it happens)")
	flags = newConfigFlags(f, true)
	flags.bindSources("also watch this cgroup's pids.events (path as in /proc/PID/cgroup); repeatable")
	flags.bindStateDir("keep read positions in this directory (created 0700 if missing), to resume after a restart")
	flags.bindPrewarm(agent.DefaultThreads, "OS threads to create at start-up")
	return cmd
}

// printReports writes each report until the channel closes or a write
// fails; a write never blocks the sources (they drop instead).
func printReports(w io.Writer, output string, root hostfs.Root, reports <-chan agent.Report) {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for r := range reports {
		rec := tailRecord{Time: r.Time.UTC().Format(time.RFC3339Nano), Kind: string(r.Kind)}
		switch r.Kind {
		case agent.KindMatch:
			l, h := r.Line, r.Hit
			rec.Source, rec.Signature, rec.Family, rec.Class = string(l.Source), h.Signature, h.Family, string(h.Class)
			rec.Strength, rec.Trust, rec.Message = string(h.Strength), string(h.Trust), logline.Sanitize(l.Message, 1024)
			if h.Fields != (signature.Fields{}) {
				f := h.Fields
				rec.Fields = &f
			}
			if l.Origin.PID > 0 {
				rec.PID = l.Origin.PID
			}
			if l.Source == logline.SourceJournal && l.Origin.UID != logline.Unknown {
				uid := l.Origin.UID
				rec.UID = &uid
			}
			rec.Comm, rec.Unit, rec.Cgroup = logline.Sanitize(l.Origin.Comm, 64), logline.Sanitize(l.Origin.Unit, 256), logline.Sanitize(l.Origin.Cgroup, 512)
		case agent.KindCounted:
			c := r.Counted
			rec.Source, rec.Count, rec.Limit, rec.Class, rec.Mode = "ebpf", c.Count, c.Limit.String(), c.Class.String(), string(c.Mode)
			rec.PID, rec.Comm, rec.Cgroup, rec.Refusing, rec.PIDNS = int(c.TGID), logline.Sanitize(c.Comm, 64), c.Cgroup, c.Refusing, c.PIDNS
			if c.TGID != 0 {
				uid := int(c.UID)
				rec.UID = &uid
			}
			if c.Max > 0 {
				rec.Used, rec.Max = &c.Used, &c.Max
			}
			if p := headroom.PodOfPath(root, c.Cgroup); p != nil {
				rec.Pod = p.String()
			}
		case agent.KindRefused:
			rec.Source = "pids.events"
			rec.Cgroup, rec.Refused, rec.Total = r.Refusal.Target.Path, r.Refusal.Refused, r.Refusal.Total
			if p := headroom.PodOfPath(root, r.Refusal.Target.Path); p != nil {
				rec.Pod = p.String()
			}
		}
		if output == "jsonl" {
			if enc.Encode(rec) != nil {
				return
			}
		} else if _, err := fmt.Fprintln(bw, textRecord(rec)); err != nil {
			return
		}
		if bw.Flush() != nil {
			return
		}
	}
}

func textRecord(r tailRecord) string {
	if r.Kind == string(agent.KindCounted) {
		who := "unknown processes"
		if r.PID > 0 {
			who = fmt.Sprintf("%s[%d]", dashIfEmpty(r.Comm), r.PID)
		}
		if r.Cgroup != "" {
			who += " in " + r.Cgroup
		}
		if r.Pod != "" {
			who += " (" + r.Pod + ")"
		}
		at := r.Limit
		if r.Refusing != "" {
			at += " " + r.Refusing
		}
		if r.Max != nil {
			at += fmt.Sprintf(" (%d of %d)", *r.Used, *r.Max)
		}
		return fmt.Sprintf("%s  counted  %d %s creation(s) of %s refused at %s", r.Time, r.Count, r.Class, who, at)
	}
	if r.Kind == string(agent.KindRefused) {
		who := r.Cgroup
		if r.Pod != "" {
			who += " (" + r.Pod + ")"
		}
		return fmt.Sprintf("%s  refused  %d fork(s) refused by pids.max in %s (total %d)", r.Time, r.Refused, who, r.Total)
	}
	origin := r.Source
	if r.PID > 0 {
		origin = fmt.Sprintf("%s %s[%d]", r.Source, dashIfEmpty(r.Comm), r.PID)
	}
	if r.Unit != "" {
		origin += " " + r.Unit
	}
	return fmt.Sprintf("%s  %s  %s/%s %s trust=%s  %s: %s", r.Time, r.Signature, r.Family, r.Class, r.Strength, r.Trust, origin, r.Message)
}
