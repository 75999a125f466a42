#!/bin/bash
# A real node joins the control plane on the host and serves the host's
# commands until told to stop (TestNode). In order:
#  - its network: one device whose only way out is the forwarded apiserver
#    (10.0.2.100:6443), the kubernetes Service's address sent there and the
#    pods' traffic masqueraded, as kube-proxy and the CNI would do it;
#  - containerd 2.x as containerd.service, with the images the host made
#    (images/*.tar) imported, a bridge CNI configuration, and the kubelet as
#    kubelet.service (Restart=always, as a node's unit is) with the systemd
#    cgroup driver, a podPidsLimit and systemReserved;
#  - the commands: the host writes cmd/N.sh into the share; each is run by
#    bash, its output written to cmd/N.out and its exit code to cmd/N.rc.
# On "stop" it prints key=value facts and stops the units.
set -u
kv() { printf '%s=%s\n' "$1" "$2"; }
fail() { echo "node: $*"; journalctl -u kubelet.service -u containerd.service --no-pager -n 60 2>/dev/null; exit 1; }
# A wait that forks nothing (sleep would): the commands go on being served
# while the node cannot create a process.
mkfifo /run/nap.fifo
nap() { read -r -t "$1" <>/run/nap.fifo; true; }

modprobe virtio_net || fail "no virtio_net"
udevadm settle --timeout=30 # the device's final name (ens2), not eth0
dev=""
for _ in $(seq 1 100); do
	dev=$(ls /sys/class/net | grep -v '^lo$' | head -1)
	[ -n "$dev" ] && break
	nap 0.1
done
[ -n "$dev" ] || fail "no network device"
ip addr add 10.0.2.15/24 dev "$dev" && ip link set "$dev" up && ip link set lo up || fail "addressing $dev"
kv netdev "$dev"
sysctl -qw net.ipv4.ip_forward=1
nft -f - <<NFT || fail "nftables"
table ip node {
	chain pre { type nat hook prerouting priority dstnat; ip daddr 10.0.0.1 tcp dport 443 dnat to 10.0.2.100:6443; }
	chain out { type nat hook output priority dstnat; ip daddr 10.0.0.1 tcp dport 443 dnat to 10.0.2.100:6443; }
	chain post { type nat hook postrouting priority srcnat; ip saddr 10.88.0.0/24 ip daddr != 10.88.0.0/24 masquerade; }
}
NFT

# The guest boots with one CPU online (maxcpus=1). Multi-threaded TCG can
# run a stale copy of kernel code the kernel has just rewritten: flipping a
# static key patches the code at each of its uses, and the guest oopsed in
# the scheduler (int3 in check_preempt_wakeup_fair, a torn jump in
# dequeue_entities) when the agent's pod, the first with a CPU limit,
# turned CFS bandwidth on while the other CPU ran. So the keys are flipped
# now, on one CPU: nftables' hooks above, and CFS bandwidth, kept on for
# good by an empty cgroup with a quota. Then the other CPUs come online.
echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/cfs-bandwidth.pin
echo "100000000 100000" >/sys/fs/cgroup/cfs-bandwidth.pin/cpu.max || fail "turning CFS bandwidth on"
for c in /sys/devices/system/cpu/cpu[1-9]*/online; do
	[ -e "$c" ] && { echo 1 >"$c" || fail "bringing $c online"; }
done
kv cpus "$(nproc)"

install -m 0755 /mnt/host/bin/containerd /mnt/host/bin/containerd-shim-runc-v2 /mnt/host/bin/ctr /mnt/host/bin/kubelet /usr/local/bin/
mkdir -p /etc/containerd /etc/cni/net.d /etc/kubernetes /var/lib/kubelet
cat > /etc/containerd/config.toml <<'TOML'
version = 3
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'pidpressure.test/pause:1'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
TOML
# Pods get addresses on the node's own bridge. Debian installs the CNI
# plugins in /usr/lib/cni; containerd looks in /opt/cni/bin.
mkdir -p /opt/cni && ln -sfn /usr/lib/cni /opt/cni/bin
cat > /etc/cni/net.d/10-bridge.conflist <<'JSON'
{"cniVersion": "1.0.0", "name": "pods", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}]}
JSON
cp /mnt/host/kubelet.conf /etc/kubernetes/kubelet.conf
cat > /var/lib/kubelet/config.yaml <<'YAML'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
podPidsLimit: 300
systemReserved: {pid: "1000"}
failSwapOn: false
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
YAML
touch /etc/resolv.conf

systemd-run --quiet --unit=containerd.service --property=Delegate=yes --property=KillMode=process \
	--property=Restart=always /usr/local/bin/containerd --config /etc/containerd/config.toml
for _ in $(seq 1 240); do ctr version >/dev/null 2>&1 && break; nap 0.5; done
ctr version >/dev/null 2>&1 || fail "containerd did not start"
for img in /mnt/host/images/*.tar; do
	ctr -n k8s.io images import "$img" >/dev/null || fail "importing $img"
done
kv images "$(ctr -n k8s.io images ls -q | sort | tr '\n' ' ')"
systemd-run --quiet --unit=kubelet.service --property=Delegate=yes --property=Restart=always --property=RestartSec=2 \
	/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf \
	--hostname-override=vm-node --node-ip=10.0.2.15
kv kubelet_started "$(systemctl show -p ActiveState --value kubelet.service)"

# The host's commands, until it says stop (at most 40 minutes).
mkdir -p /mnt/host/cmd
for _ in $(seq 1 12000); do
	[ -e /mnt/host/stop ] && break
	for f in /mnt/host/cmd/*.sh; do
		[ -e "$f" ] || continue
		base=${f%.sh}
		[ -e "$base.rc" ] && continue
		bash "$f" >"$base.tmp" 2>&1
		echo $? >"$base.rctmp"
		mv "$base.tmp" "$base.out"
		mv "$base.rctmp" "$base.rc"
	done
	nap 0.2
done
kv stopped_by_host "$([ -e /mnt/host/stop ] && echo yes || echo no)"
kv kubelet_unit "$(systemctl show -p ActiveState --value kubelet.service)"
kv kubelet_cgroup "$(systemctl show -p ControlGroup --value kubelet.service)"
kv kubepods "$(ls -d /sys/fs/cgroup/kubepods.slice 2>/dev/null)"
systemctl stop kubelet.service containerd.service
