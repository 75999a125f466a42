#!/bin/bash
# A real node joins the control plane on the host: its network (one device
# whose only way out is the forwarded apiserver port), containerd 2.x as
# containerd.service, a bridge CNI configuration, and the kubelet as
# kubelet.service with the systemd cgroup driver, a podPidsLimit and
# systemReserved. It runs until the host puts "stop" in the share, then
# prints key=value facts. Runs as root from /mnt/host (TestNodeJoins).
set -u
kv() { printf '%s=%s\n' "$1" "$2"; }
fail() { echo "join: $*"; journalctl -u kubelet.service --no-pager -n 40 2>/dev/null; exit 1; }

# The network: the guest's only address is QEMU's, its only peer the
# forwarded apiserver at 10.0.2.100:6443.
modprobe virtio_net || fail "no virtio_net"
dev=""
for _ in $(seq 1 100); do
	dev=$(ls /sys/class/net | grep -v '^lo$' | head -1)
	[ -n "$dev" ] && break
	sleep 0.1
done
[ -n "$dev" ] || fail "no network device"
ip addr add 10.0.2.15/24 dev "$dev" && ip link set "$dev" up && ip link set lo up || fail "addressing $dev"
kv netdev "$dev"

install -m 0755 /mnt/host/bin/containerd /mnt/host/bin/containerd-shim-runc-v2 /mnt/host/bin/ctr /usr/local/bin/
install -m 0755 /mnt/host/bin/kubelet /usr/local/bin/
mkdir -p /etc/containerd /etc/cni/net.d /etc/kubernetes /var/lib/kubelet
cat > /etc/containerd/config.toml <<'TOML'
version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
TOML
# Pods get addresses on the node's own bridge; nothing routes beyond it.
cat > /etc/cni/net.d/10-bridge.conflist <<'JSON'
{"cniVersion": "1.0.0", "name": "pods", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]]}},
  {"type": "loopback"}]}
JSON
cp /mnt/host/kubelet.conf /etc/kubernetes/kubelet.conf
cat > /etc/kubernetes/kubelet.yaml <<'YAML'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
podPidsLimit: 1024
systemReserved: {pid: "1000"}
failSwapOn: false
resolvConf: /etc/resolv.conf
YAML
touch /etc/resolv.conf

systemd-run --quiet --unit=containerd.service --property=Delegate=yes --property=KillMode=process \
	/usr/local/bin/containerd --config /etc/containerd/config.toml
for _ in $(seq 1 240); do ctr version >/dev/null 2>&1 && break; sleep 0.5; done
ctr version >/dev/null 2>&1 || fail "containerd did not start"
systemd-run --quiet --unit=kubelet.service --property=Delegate=yes \
	/usr/local/bin/kubelet --config=/etc/kubernetes/kubelet.yaml --kubeconfig=/etc/kubernetes/kubelet.conf \
	--hostname-override=vm-node --node-ip=10.0.2.15
kv kubelet_started "$(systemctl show -p ActiveState --value kubelet.service)"

# Until the host has seen what it needs (at most 8 minutes).
for _ in $(seq 1 960); do
	[ -e /mnt/host/stop ] && break
	[ "$(systemctl show -p ActiveState --value kubelet.service)" = active ] || fail "kubelet.service stopped"
	sleep 0.5
done
kv stopped_by_host "$([ -e /mnt/host/stop ] && echo yes || echo no)"
kv kubelet_unit "$(systemctl show -p ActiveState --value kubelet.service)"
kv kubelet_cgroup "$(systemctl show -p ControlGroup --value kubelet.service)"
kv kubepods "$(ls -d /sys/fs/cgroup/kubepods.slice 2>/dev/null)"
systemctl stop kubelet.service containerd.service
