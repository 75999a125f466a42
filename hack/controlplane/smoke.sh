#!/bin/bash
# A manual check, not part of make test: etcd and kube-apiserver on loopback,
# a Node object, and the NPD build (NPD=path) reporting PIDPressureRisk to it;
# prints the Node's conditions and Events. CP is the directory make controlplane
# printed; HOSTROOT (default /) is the host the monitor reads. Needs openssl.
set -euo pipefail
CP=${CP:?}
W=$(mktemp -d /tmp/smoke.XXXX)
echo "work dir $W"
cleanup() {
  local jp; jp=$(jobs -p)
  kill $jp 2>/dev/null || true
  for p in $jp; do for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE
for port in 16443 23790 23800; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is in use: is another run still going?" >&2; exit 1; fi
done
"$CP/etcd" --data-dir "$W/etcd" --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster default=http://127.0.0.1:23800 > "$W/etcd.log" 2>&1 &
openssl genrsa -out "$W/sa.key" 2048 2>/dev/null
openssl rsa -in "$W/sa.key" -pubout -out "$W/sa.pub" 2>/dev/null
echo "admin-token,admin,admin,system:masters" > "$W/tokens.csv"
t0=$(date +%s.%N)
"$CP/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
  --bind-address=127.0.0.1 --secure-port=16443 --cert-dir="$W/certs" --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$W/sa.pub" --service-account-signing-key-file="$W/sa.key" --token-auth-file="$W/tokens.csv" \
  --authorization-mode=RBAC --service-cluster-ip-range=10.0.0.0/24 > "$W/apiserver.log" 2>&1 &
cat > "$W/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:16443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: admin-token}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
KC
K="$CP/kubectl --kubeconfig $W/kubeconfig"
for i in $(seq 1 120); do $K get --raw /readyz >/dev/null 2>&1 && break; sleep 0.5; done
echo "apiserver ready after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
$K version 2>&1 | tail -2
$K create -f - <<NODE
apiVersion: v1
kind: Node
metadata: {name: smoke-node}
NODE
cat > "$W/monitor.json" <<MON
{"sampleInterval": "500ms", "hostRoot": "${HOSTROOT:-/}", "sources": {"journal": {"enabled": false}, "kmsg": {"enabled": false}, "pidsEvents": {"enabled": false}}}
MON
NODE_NAME=smoke-node "$NPD" --config.pid-pressure-monitor="$W/monitor.json" --prometheus-port=0 \
  --apiserver-override="https://127.0.0.1:16443?inClusterConfig=false&auth=$W/kubeconfig" > "$W/npd.log" 2>&1 &
for i in $(seq 1 60); do
  if $K get node smoke-node -o jsonpath='{.status.conditions[?(@.type=="PIDPressureRisk")].status}' 2>/dev/null | grep -q .; then break; fi
  sleep 0.5
done
$K describe node smoke-node | sed -n '/Conditions:/,/Addresses:/p'
$K get events -A --field-selector involvedObject.name=smoke-node 2>&1 | head -10
sleep 1
tail -5 "$W/npd.log"
