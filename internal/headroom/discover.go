package headroom

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// NodeUnits returns the systemd units of node components whose TasksMax
// (their cgroup's pids.max) must not bind.
func NodeUnits() []string {
	return []string{"kubelet.service", "containerd.service", "crio.service", "docker.service", "cri-docker.service"}
}

// runtimeUnits are the container runtimes' units, in the order looked for.
func runtimeUnits() []string {
	return []string{"containerd.service", "crio.service", "docker.service"}
}

// RuntimeUnit returns the unit of the container runtime on the host: the
// first of containerd, CRI-O and Docker whose cgroup is in one of hs, or
// "". The processes the runtime runs (shims, runc, CNI plugins) start in
// its cgroup, under its TasksMax.
func RuntimeUnit(hs []Hierarchy) string {
	for _, u := range runtimeUnits() {
		for _, h := range hs {
			if isDir(filepath.Join(h.Dir, "system.slice", u)) {
				return u
			}
		}
	}
	return ""
}

// podDir recognises a pod's cgroup directory, for the systemd driver
// (kubepods-burstable-pod0f3e1a2b_4c5d_….slice, kubepods-pod….slice) and the
// cgroupfs driver (pod0f3e1a2b-4c5d-…).
var podDir = regexp.MustCompile(`^(?:kubepods(?:-[a-z]+)?-)?pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12})(?:\.slice)?$`)

// Target is a cgroup worth sampling and why.
type Target struct {
	Path string
	Kind Kind
	Pod  *Pod
	Unit string
}

// Discover lists the cgroups of a hierarchy that matter to a Kubernetes
// node: the cgroup above all pods (kubepods.slice or kubepods), its QoS
// children, each pod and each container, and the units of node components.
// Pods are named from /var/log/pods when the directory is there.
func Discover(root hostfs.Root, h Hierarchy) ([]Target, error) {
	names := podNames(root)
	var out []Target
	for _, kp := range []string{"kubepods.slice", "kubepods"} {
		if !isDir(filepath.Join(h.Dir, kp)) {
			continue
		}
		out = append(out, Target{Path: "/" + kp, Kind: KindKubepods})
		children, err := subdirs(filepath.Join(h.Dir, kp))
		if err != nil {
			return out, err
		}
		for _, c := range children {
			p := path.Join("/", kp, c)
			if pod := podOf(c, names); pod != nil {
				out = append(out, podTargets(h, p, pod)...)
				continue
			}
			if !isQoS(c) {
				continue
			}
			out = append(out, Target{Path: p, Kind: KindQoS})
			grand, err := subdirs(filepath.Join(h.Dir, filepath.FromSlash(p)))
			if err != nil && !hostfs.Vanished(err) {
				return out, err
			}
			for _, g := range grand {
				if pod := podOf(g, names); pod != nil {
					out = append(out, podTargets(h, path.Join(p, g), pod)...)
				}
			}
		}
	}
	for _, u := range NodeUnits() {
		p := "/system.slice/" + u
		if isDir(filepath.Join(h.Dir, "system.slice", u)) {
			out = append(out, Target{Path: p, Kind: KindUnit, Unit: u})
		}
	}
	return out, nil
}

func podTargets(h Hierarchy, p string, pod *Pod) []Target {
	out := []Target{{Path: p, Kind: KindPod, Pod: pod}}
	containers, err := subdirs(filepath.Join(h.Dir, filepath.FromSlash(p)))
	if err != nil {
		return out
	}
	for _, c := range containers {
		out = append(out, Target{Path: path.Join(p, c), Kind: KindContainer, Pod: pod})
	}
	return out
}

func isQoS(name string) bool {
	switch name {
	case "burstable", "besteffort", "kubepods-burstable.slice", "kubepods-besteffort.slice":
		return true
	}
	return false
}

// podOf returns the pod a cgroup directory name belongs to, or nil.
func podOf(name string, names map[string]Pod) *Pod {
	m := podDir.FindStringSubmatch(name)
	if m == nil {
		return nil
	}
	uid := strings.ToLower(strings.ReplaceAll(m[1], "_", "-"))
	if p, ok := names[uid]; ok {
		return &p
	}
	return &Pod{UID: uid}
}

// podNames maps pod UIDs to namespace/name from the kubelet's log
// directories, /var/log/pods/<namespace>_<name>_<uid>. Namespaces and names
// cannot contain '_', so the split is unambiguous.
func podNames(root hostfs.Root) map[string]Pod {
	out := map[string]Pod{}
	entries, err := os.ReadDir(root.VarPath("log", "pods"))
	if err != nil {
		return out
	}
	for _, e := range entries {
		parts := strings.Split(e.Name(), "_")
		if len(parts) != 3 || parts[2] == "" {
			continue
		}
		out[strings.ToLower(parts[2])] = Pod{Namespace: parts[0], Name: parts[1], UID: strings.ToLower(parts[2])}
	}
	return out
}

// PodOfPath returns the pod whose cgroup contains path, or nil.
func PodOfPath(root hostfs.Root, p string) *Pod {
	names := podNames(root)
	for seg := range strings.SplitSeq(p, "/") {
		if pod := podOf(seg, names); pod != nil {
			return pod
		}
	}
	return nil
}

func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
