#!/bin/bash
# The node's container runtime and kubelet, as a Kubernetes node runs them:
# containerd 2.x (built from the module proxy, with its runc shim and ctr)
# started as the systemd unit containerd.service with the systemd cgroup
# driver, Debian's runc and CNI plugins, and the kubelet binary. Prints
# key=value facts for TestNodeVMRuntime. Runs as root from /mnt/host.
set -u
kv() { printf '%s=%s\n' "$1" "$2"; }

install -m 0755 /mnt/host/bin/containerd /mnt/host/bin/containerd-shim-runc-v2 /mnt/host/bin/ctr /usr/local/bin/
mkdir -p /etc/containerd
cat > /etc/containerd/config.toml <<'TOML'
version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
TOML
# As its own unit would run it: a cgroup delegated to it, its children
# (the shims) left running when it stops.
systemd-run --quiet --unit=containerd.service --property=Delegate=yes --property=KillMode=process \
	/usr/local/bin/containerd --config /etc/containerd/config.toml
# Poll, never sleep a fixed time: under emulation it takes seconds.
for _ in $(seq 1 240); do
	ctr version >/dev/null 2>&1 && break
	sleep 0.5
done
kv containerd_server "$(ctr version 2>&1 | awk '/^Server:/ {s = 1} s && $1 == "Version:" {print $2; exit}')"
kv containerd_cri "$(ctr plugins ls 2>/dev/null | awk '$1 ~ /cri/ || $2 == "cri" {print $1 "/" $2 ":" $NF}' | sort | tr '\n' ' ')"
kv containerd_unit "$(systemctl show -p ActiveState --value containerd.service)"
kv containerd_cgroup "$(systemctl show -p ControlGroup --value containerd.service)"
kv containerd_tasks "$(cat /sys/fs/cgroup/system.slice/containerd.service/pids.current 2>/dev/null)"
kv runc "$(runc --version | head -1)"
kv cni "$(ls /usr/lib/cni | tr '\n' ' ')"
kv kubelet "$(/mnt/host/bin/kubelet --version 2>&1)"
