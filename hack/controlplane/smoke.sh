#!/bin/bash
# A manual check, not part of make test: etcd and kube-apiserver on loopback,
# a Node object, and the NPD build (NPD=path) reporting PIDPressureRisk to it;
# prints the Node's conditions and Events. CP is the directory make controlplane
# printed; HOSTROOT (default /) is the host the monitor reads. Needs openssl.
set -euo pipefail
CP=${CP:?}; NPD=${NPD:?}
. "$(dirname "$0")/lib.sh"
start_controlplane
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
pids+=($!)
for i in $(seq 1 60); do
  if $K get node smoke-node -o jsonpath='{.status.conditions[?(@.type=="PIDPressureRisk")].status}' 2>/dev/null | grep -q .; then break; fi
  sleep 0.5
done
$K describe node smoke-node | sed -n '/Conditions:/,/Addresses:/p'
$K get events -A --field-selector involvedObject.name=smoke-node 2>&1 | head -10
sleep 1
tail -5 "$W/npd.log"
