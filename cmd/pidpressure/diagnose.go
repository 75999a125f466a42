package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pidpressure/pidpressure/internal/forkfail"
	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
)

func newDiagnoseCmd() *cobra.Command {
	var (
		output   string
		hostRoot string
		cgroups  []string
		pid      int
		top      int
		noEBPF   bool
	)
	cmd := &cobra.Command{
		Use:   "diagnose [flags]",
		Short: "Show every layer's PID headroom, the binding limit and the audit",
		Long: `diagnose does the manual investigation of a node that cannot create
processes or threads: the node layer (tasks against kernel.pid_max and
kernel.threads-max, and which binds), every pids cgroup that matters (the
cgroup above the pods, each pod and container, the units of kubelet and the
container runtime, and any --cgroup), zombies by parent, the user layer of
--pid, which limit binds, and the start-up audit with remedies.

-o json prints one object; its schema is documented in docs/diagnose.md.
Errors reading one layer are listed and the others are still reported.`,
		Example: `  pidpressure diagnose
  pidpressure diagnose -o json --host-root /host
  pidpressure diagnose --cgroup /system.slice/kubelet.service --pid 3124`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("unknown output %q: want text or json", output)}
			}
			d, err := headroom.Diagnose(hostfs.New(hostRoot), headroom.DiagnoseOptions{Cgroups: cgroups, PID: pid, TopZombieParents: top})
			if err != nil && d.Node.PIDMax == 0 {
				return err // not even the node layer: nothing to show
			}
			out := diagnosis{Diagnosis: d}
			if !noEBPF {
				out.EBPF = forkfail.Probe()
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			return printDiagnosis(cmd.OutOrStdout(), out)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output form: text or json")
	cmd.Flags().StringVar(&hostRoot, "host-root", "/", "directory the host's /proc, /sys and /var are under")
	cmd.Flags().StringArrayVar(&cgroups, "cgroup", nil, "also sample this cgroup (path as in /proc/PID/cgroup); repeatable")
	cmd.Flags().IntVar(&pid, "pid", 0, "also show the user layer (RLIMIT_NPROC) of this process and attribute a failure from it")
	cmd.Flags().IntVar(&top, "top", 10, "zombie parents to list")
	cmd.Flags().BoolVar(&noEBPF, "no-ebpf-probe", false, "do not try whether the eBPF counter attaches here (the probe attaches it for a moment)")
	return cmd
}

// printf writes to a strings.Builder or a tabwriter over one; neither can fail.
func printf(w io.Writer, format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }

// diagnosis is what diagnose prints: the host's layers and whether the
// eBPF counter attaches here.
type diagnosis struct {
	headroom.Diagnosis
	// EBPF is each attach mode of the counter, available or why not
	// (absent with --no-ebpf-probe).
	EBPF []forkfail.ModeStatus `json:"ebpf,omitempty"`
}

func printDiagnosis(w io.Writer, dg diagnosis) error {
	d := dg.Diagnosis
	var b strings.Builder
	n := d.Node
	printf(&b, "NODE (%s PID namespace, tasks from %s)\n", n.Namespace, n.TasksSource)
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	printf(tw, "  LIMIT\tVALUE\tUSABLE\tTASKS\tUSED\t\n")
	mark := func(bd headroom.Binding) string {
		if n.Binding == bd {
			return "<- binds"
		}
		return ""
	}
	printf(tw, "  kernel.pid_max\t%d\t%d\t%d\t%.1f%%\t%s\n", n.PIDMax, n.PIDLimit, n.Tasks, pct(n.Tasks, n.PIDLimit), mark(headroom.BindingPIDMax))
	printf(tw, "  kernel.threads-max\t%d\t%d\t%d\t%.1f%%\t%s\n", n.ThreadsMax, n.ThreadsMax, n.Tasks, pct(n.Tasks, n.ThreadsMax), mark(headroom.BindingThreadsMax))
	_ = tw.Flush()
	printf(&b, "  free: %d tasks before fork fails at the node level\n\n", n.Free())

	printf(&b, "CGROUPS (pids controller)\n")
	if len(d.Cgroups) == 0 {
		printf(&b, "  none found\n")
	} else {
		tw = tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		printf(tw, "  CGROUP\tKIND\tCURRENT\tMAX\tUSED\tREJECTED\tAT LIMIT\tWHO\n")
		paths := make(map[string]bool, len(d.Cgroups))
		for _, c := range d.Cgroups {
			paths[c.Path] = true
		}
		for _, c := range d.Cgroups {
			used := "-"
			if c.UsedPercent != nil {
				used = fmt.Sprintf("%.1f%%", *c.UsedPercent)
			}
			cur := fmt.Sprint(c.Current)
			if c.Estimated {
				cur += "~"
			}
			who := c.Unit
			if c.Pod != nil {
				who = c.Pod.String()
			}
			at := ""
			if c.AtLimit {
				at = "YES"
			}
			printf(tw, "  %s\tv%d %s\t%s\t%s\t%s\t%d\t%s\t%s\n", treeLabel(c.Path, paths), c.Version, c.Kind, cur, c.Max, used, c.Refused, at, dashIfEmpty(who))
		}
		_ = tw.Flush()
	}
	printf(&b, "\n")

	printf(&b, "PROCESSES: %d, tasks: %d, zombies: %d (%d exited during the walk)\n", d.Scan.Processes, d.Scan.Tasks, d.Scan.Zombies, d.Scan.Skipped)
	if len(d.Scan.TopUsers) > 0 {
		var us []string
		for _, u := range d.Scan.TopUsers {
			us = append(us, fmt.Sprintf("uid %d: %d", u.UID, u.Tasks))
		}
		printf(&b, "  tasks by user: %s\n", strings.Join(us, ", "))
	}
	for _, z := range d.Scan.ZombieParents {
		printf(&b, "  %d zombies held by pid %d (%s) in %s %s\n", z.Zombies, z.PID, dashIfEmpty(z.Comm), dashIfEmpty(z.Cgroup), z.Pod.String())
	}
	if u := d.User; u != nil {
		printf(&b, "\nUSER of pid %d (%s): uid %d has %d tasks; RLIMIT_NPROC soft %s hard %s", u.PID, dashIfEmpty(u.Comm), u.UID, u.Tasks, u.Soft, u.Hard)
		if u.Exempt {
			printf(&b, " (root: exempt with CAP_SYS_RESOURCE)")
		}
		printf(&b, "\n")
	}
	printf(&b, "\nBINDING: %s\n", d.Attribution.Reason)

	printf(&b, "\nAUDIT\n")
	if len(d.Audit) == 0 {
		printf(&b, "  no findings\n")
	}
	for _, f := range d.Audit {
		printf(&b, "  [%s] %s: %s\n      remedy: %s\n", f.Severity, f.Check, f.Message, f.Remedy)
	}
	if len(dg.EBPF) > 0 {
		printf(&b, "\nEBPF COUNTER (sources.ebpf.mode: auto uses fexit only; on also the tracepoints)\n")
		for _, m := range dg.EBPF {
			if m.Available {
				printf(&b, "  %s: available\n", m.Mode)
			} else {
				printf(&b, "  %s: not available: %s\n", m.Mode, m.Reason)
			}
		}
	}
	if len(d.Errors) > 0 {
		printf(&b, "\nNOT READ\n")
		for _, e := range d.Errors {
			printf(&b, "  %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// containerID matches a 64-hex container ID inside a cgroup name.
var containerID = regexp.MustCompile(`[0-9a-f]{64}`)

// treeLabel renders a cgroup as a tree row: indented under the nearest
// listed ancestor, showing the last path element, container IDs shortened.
// The full path is in the JSON output.
func treeLabel(p string, listed map[string]bool) string {
	depth := 0
	for a := path.Dir(p); a != "/" && a != "."; a = path.Dir(a) {
		if listed[a] {
			depth++
		}
	}
	label := p
	if depth > 0 {
		label = path.Base(p)
	}
	label = containerID.ReplaceAllStringFunc(label, func(id string) string { return id[:12] + "…" })
	return strings.Repeat("  ", depth) + label
}

func pct(used, limit uint64) float64 {
	if limit == 0 {
		return 0
	}
	return float64(used) * 100 / float64(limit)
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
