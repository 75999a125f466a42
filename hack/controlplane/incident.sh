#!/bin/bash
# The incident against a real apiserver, by hand (a precursor of make demo,
# not part of make test): etcd and kube-apiserver on loopback, a Node, the NPD
# build (NPD=path) inside a PID namespace whose pid_max is 500, and bash fork
# loops that exhaust it, logged through journald. Prints the condition before,
# how long PIDExhausted took to be visible through the apiserver, kubectl
# describe node and the Events during, and the condition after the quiet
# period. CP is the directory make controlplane printed. Needs root, openssl,
# util-linux (unshare, nsenter) and systemd-journald.
set -uo pipefail
CP=${CP:?}; NPD=${NPD:?}
W=$(mktemp -d /tmp/incident.XXXX)
pids=()
cleanup() {
  # The namespace's init ignores SIGTERM; SIGKILL to it ends the namespace.
  [ -n "${INIT:-}" ] && kill -KILL "$INIT" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE
for port in 16443 23790 23800; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is in use: is another run still going?" >&2; exit 1; fi
done
if ! pgrep -x systemd-journal >/dev/null; then /lib/systemd/systemd-journald >/dev/null 2>&1 & pids+=($!); fi
sleep 1
journalctl -f -n 0 >/dev/null 2>&1 & pids+=($!)
"$CP/etcd" --data-dir "$W/etcd" --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster default=http://127.0.0.1:23800 > "$W/etcd.log" 2>&1 & pids+=($!)
openssl genrsa -out "$W/sa.key" 2048 2>/dev/null; openssl rsa -in "$W/sa.key" -pubout -out "$W/sa.pub" 2>/dev/null
echo "admin-token,admin,admin,system:masters" > "$W/tokens.csv"
"$CP/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
  --bind-address=127.0.0.1 --secure-port=16443 --cert-dir="$W/certs" --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$W/sa.pub" --service-account-signing-key-file="$W/sa.key" --token-auth-file="$W/tokens.csv" \
  --authorization-mode=RBAC --service-cluster-ip-range=10.0.0.0/24 > "$W/apiserver.log" 2>&1 & pids+=($!)
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
printf 'apiVersion: v1\nkind: Node\nmetadata: {name: incident-node}\n' | $K create -f -
cat > "$W/monitor.json" <<MON
{"sampleInterval": "500ms", "sources": {"pidsEvents": {"enabled": false}}, "thresholds": {"failureWindow": "3s", "quietPeriod": "10s"}}
MON
unshare --pid --fork --mount-proc --kill-child sh -c "echo 500 > /proc/sys/kernel/pid_max || exit 77; NODE_NAME=incident-node $NPD --config.pid-pressure-monitor=$W/monitor.json --prometheus-port=0 --apiserver-override='https://127.0.0.1:16443?inClusterConfig=false&auth=$W/kubeconfig' > $W/npd.log 2>&1 & wait" & pids+=($!)
NSPID=$!
sleep 1
INIT=$(cat /proc/$NSPID/task/$NSPID/children | awk '{print $1}')
for i in $(seq 1 60); do $K get node incident-node -o jsonpath='{.status.conditions[?(@.type=="PIDPressureRisk")].status}' | grep -q . && break; sleep 0.5; done
echo "--- before"; $K get node incident-node -o jsonpath='{range .status.conditions[*]}{.type} {.status} {.reason} {.lastTransitionTime}{"\n"}{end}'
T0=$(date +%s.%N)
setsid nsenter --target "$INIT" --pid --mount -- systemd-cat -t ppincident bash -c 'for i in $(seq 1 700); do sleep 6.321 & done; wait' &
BOMB=$!
for i in $(seq 1 100); do
  r=$($K get node incident-node -o jsonpath='{.status.conditions[?(@.type=="PIDPressureRisk")].reason}')
  [ "$r" = PIDExhausted ] && { echo "PIDExhausted visible through the apiserver $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}') s after the fork loops started"; break; }
  sleep 0.1
done
sleep 4; kill -KILL -- -$BOMB 2>/dev/null; pkill -KILL -f "sleep 6.321"; wait $BOMB 2>/dev/null
echo "--- during"; $K describe node incident-node | sed -n '/Conditions:/,/Addresses:/p'
$K get events --field-selector involvedObject.name=incident-node | head -8
for i in $(seq 1 60); do
  r=$($K get node incident-node -o jsonpath='{.status.conditions[?(@.type=="PIDPressureRisk")].reason}')
  [ "$r" = PIDHeadroomSufficient ] && break; sleep 1
done
echo "--- after"; $K get node incident-node -o jsonpath='{range .status.conditions[*]}{.type} {.status} {.reason} {.lastTransitionTime}{"\n"}{end}'
