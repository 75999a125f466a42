# Sourced by smoke.sh and incident.sh: etcd and kube-apiserver on loopback.
# Needs CP (the directory make controlplane printed) and openssl. After
# start_controlplane: W is the work directory, K runs kubectl as an admin,
# and the process IDs to stop are in pids (cleanup stops them, with the
# namespace init INIT if set, and removes W; it runs on exit and on signals).
W=$(mktemp -d /tmp/controlplane.XXXX)
pids=()
cleanup() {
  # A PID namespace's init ignores SIGTERM; SIGKILL to it ends the namespace.
  if [ -n "${INIT:-}" ]; then kill -KILL "$INIT" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

start_controlplane() {
  local port
  for port in 16443 23790 23800; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is in use: is another run still going?" >&2; exit 1; fi
  done
  "$CP/etcd" --data-dir "$W/etcd" --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster default=http://127.0.0.1:23800 > "$W/etcd.log" 2>&1 &
  pids+=($!)
  openssl genrsa -out "$W/sa.key" 2048 2>/dev/null
  openssl rsa -in "$W/sa.key" -pubout -out "$W/sa.pub" 2>/dev/null
  echo "admin-token,admin,admin,system:masters" > "$W/tokens.csv"
  local t0; t0=$(date +%s.%N)
  "$CP/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --bind-address=127.0.0.1 --secure-port=16443 --cert-dir="$W/certs" --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$W/sa.pub" --service-account-signing-key-file="$W/sa.key" --token-auth-file="$W/tokens.csv" \
    --authorization-mode=RBAC --service-cluster-ip-range=10.0.0.0/24 > "$W/apiserver.log" 2>&1 &
  pids+=($!)
  cat > "$W/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:16443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: admin-token}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
KC
  K="$CP/kubectl --kubeconfig $W/kubeconfig"
  local i
  for i in $(seq 1 120); do $K get --raw /readyz >/dev/null 2>&1 && break; sleep 0.5; done
  echo "apiserver ready after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
}
