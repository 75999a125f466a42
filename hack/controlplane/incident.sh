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
. "$(dirname "$0")/lib.sh"
if ! pgrep -x systemd-journal >/dev/null; then /lib/systemd/systemd-journald >/dev/null 2>&1 & pids+=($!); fi
sleep 1
journalctl -f -n 0 >/dev/null 2>&1 & pids+=($!)
start_controlplane
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
