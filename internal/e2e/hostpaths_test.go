package e2e

import (
	"encoding/json"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// mount is one of the container's volume mounts; host is where it comes
// from on the node, "" for a volume that is not a hostPath.
type mount struct {
	path, host string
	readOnly   bool
}

// daemonSetMounts returns the first container's mounts with their volumes
// resolved.
func daemonSetMounts(t *testing.T, ds map[string]any) []mount {
	t.Helper()
	b, _ := json.Marshal(ds)
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Mounts []struct {
							Name, MountPath, SubPath string
							ReadOnly                 bool
						} `json:"volumeMounts"`
					} `json:"containers"`
					Volumes []struct {
						Name     string
						HostPath *struct{ Path string } `json:"hostPath"`
					} `json:"volumes"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	ps := d.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	host := map[string]string{}
	for _, v := range ps.Volumes {
		if v.HostPath != nil {
			host[v.Name] = v.HostPath.Path
		}
	}
	var out []mount
	for _, m := range ps.Containers[0].Mounts {
		h := host[m.Name]
		if h != "" && m.SubPath != "" {
			h = path.Join(h, m.SubPath)
		}
		out = append(out, mount{path: path.Clean(m.MountPath), host: h, readOnly: m.ReadOnly})
	}
	return out
}

// resolve returns the host path that the container sees at p (through the
// most specific mount above it, as the runtime stacks them) and that
// mount; ok is false when p is on the image's own filesystem.
func resolve(mounts []mount, p string) (host string, m mount, ok bool) {
	for _, c := range mounts {
		if (p == c.path || strings.HasPrefix(p, c.path+"/")) && len(c.path) >= len(m.path) {
			m, ok = c, true
		}
	}
	if !ok || m.host == "" {
		return "", m, ok
	}
	return path.Join(m.host, strings.TrimPrefix(p, m.path)), m, true
}

// TestDeployHostPaths checks that every rendering mounts what the agent
// reads, as its monitor config there tells it to: each of hostfs.Paths
// under hostRoot from the same path on the host, read-only; the journal
// where libsystemd reads the system journal (or the configured directory);
// /dev/kmsg when that source is on; the state directory, writable.
func TestDeployHostPaths(t *testing.T) {
	k, h := render(t)
	chart := filepath.Join(root, "deploy", "helm", "pidpressure")
	allOn := run(t, tool(t, "helm"), "template", "pidpressure", chart, "--kube-version", "1.37.2", "--namespace", "pidpressure",
		"--set", "kmsg.enabled=true,prometheus.enabled=true,admissionPolicy.enabled=true")
	for _, c := range []struct {
		name   string
		stream []byte
	}{
		{"kustomize base", k.base}, {"kustomize prometheus", k.prometheus}, {"kustomize kmsg", k.kmsg},
		{"helm defaults", h.base}, {"helm prometheus", h.prometheus}, {"helm kmsg", h.kmsg}, {"helm all on", allOn},
	} {
		objs := parse(t, c.stream)
		ds := objs["DaemonSet/pidpressure/pidpressure"]
		if ds == nil {
			t.Fatalf("%s: no DaemonSet", c.name)
		}
		conf := monitorJSON(t, objs)
		mounts := daemonSetMounts(t, ds)

		type need struct {
			in, host, why string // host "" takes any host path
			writable      bool
		}
		var needs []need
		hostRoot, _ := conf["hostRoot"].(string)
		if hostRoot == "" {
			t.Fatalf("%s: no hostRoot in the monitor config", c.name)
		}
		for _, p := range hostfs.Paths() {
			needs = append(needs, need{in: path.Join(hostRoot, p), host: "/" + p, why: "read under hostRoot " + hostRoot})
		}
		sources, _ := conf["sources"].(map[string]any)
		journal, _ := sources["journal"].(map[string]any)
		if journal["enabled"] == true {
			if dir, _ := journal["dir"].(string); dir != "" {
				needs = append(needs, need{in: dir, why: "sources.journal.dir"})
			} else {
				// sd_journal_open(SD_JOURNAL_LOCAL_ONLY): the persistent and
				// volatile journals, and the machine ID that names this
				// machine's files in them.
				for _, p := range []string{"/var/log/journal", "/run/log/journal", "/etc/machine-id"} {
					needs = append(needs, need{in: p, host: p, why: "the system journal"})
				}
			}
		}
		kmsg, _ := sources["kmsg"].(map[string]any)
		if kmsg["enabled"] == true {
			p, _ := kmsg["path"].(string)
			needs = append(needs, need{in: p, host: "/dev/kmsg", why: "sources.kmsg"})
		}
		if dir, _ := conf["stateDir"].(string); dir != "" {
			needs = append(needs, need{in: dir, why: "stateDir", writable: true})
		}

		for _, n := range needs {
			host, m, ok := resolve(mounts, n.in)
			switch {
			case !ok:
				t.Errorf("%s: %s (%s) is not mounted", c.name, n.in, n.why)
			case m.host == "":
				t.Errorf("%s: %s (%s) is on the non-host volume mounted at %s", c.name, n.in, n.why, m.path)
			case n.host != "" && host != n.host:
				t.Errorf("%s: %s (%s) is the host's %s, want %s (mounted at %s from %s)", c.name, n.in, n.why, host, n.host, m.path, m.host)
			case n.writable && m.readOnly:
				t.Errorf("%s: %s (%s) is mounted read-only", c.name, n.in, n.why)
			case !n.writable && !m.readOnly:
				t.Errorf("%s: %s (%s) is mounted writable", c.name, n.in, n.why)
			}
		}
	}
}
