#!/usr/bin/env bash
# Start the local control plane for the integration tests (docs/local-control-plane.md):
# etcd + kube-apiserver and kube-controller-manager of K8S_VERSION (tools/cluster/versions.env, built from
# Go modules by build.sh) + the node simulator (tools/nodesim),
# all on 127.0.0.1, detached (setsid/nohup), pids and logs in .cluster/, admin kubeconfig in
# .cluster/kubeconfig. Idempotent: if it already runs, says so and exits 0.
#
# Environment (all optional):
#   MESHOPS_APISERVER_PORT   (16443)   MESHOPS_ETCD_PORT (23790)   MESHOPS_ETCD_PEER_PORT (23800)
#   MESHOPS_KCM_PORT         (20257)   NODESIM_NODES (3)           NODESIM_CONFIG (behaviour file)
#   NODESIM_ARGS (extra args, e.g. --zero-delay)   MESHOPS_CLUSTER_DIR (.cluster)
#   REAL_NODES (0; 1 adds MESHOPS_REAL_NODES real kubelet nodes with tools/realnode/up.sh, docs/real-nodes.md)
#   MESHOPS_APISERVER_ARGS (extra kube-apiserver flags, e.g. --v=2)
#   K8S_VERSION (default in tools/cluster/versions.env)
#   MESHOPS_CACHE (binary cache, ~/.cache/meshops-sidecarset/k8s-<version>)
# Exit codes: 0 running, 1 failed (log tail printed, nothing left running), 2 unsupported machine.
set -euo pipefail

# Takes no arguments. Refusing them matters: an Ansible inventory that (mis)points at this checkout
# runs every executable in it with --list, which must not start, stop or build anything.
case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/cluster/up.sh   (start the local control plane; see docs/local-control-plane.md)"; exit 0 ;;
  *) echo "tools/cluster/up.sh: unexpected argument '$1' (it takes none; see docs/local-control-plane.md)" >&2; exit 64 ;;
esac

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${MESHOPS_CLUSTER_DIR:-$ROOT/.cluster}"
# shellcheck source=tools/cluster/versions.env
. "$ROOT/tools/cluster/versions.env"
KV="${K8S_VERSION:-$K8S_VERSION_DEFAULT}"
CACHE="${MESHOPS_CACHE:-$HOME/.cache/meshops-sidecarset/k8s-$KV}"
BIN="$CACHE/bin"
API_PORT="${MESHOPS_APISERVER_PORT:-16443}"
ETCD_PORT="${MESHOPS_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${MESHOPS_ETCD_PEER_PORT:-23800}"
KCM_PORT="${MESHOPS_KCM_PORT:-20257}"
NODES="${NODESIM_NODES:-3}"
PY="${MESHOPS_PYTHON:-$ROOT/.venv/bin/python}"
API="https://127.0.0.1:$API_PORT"
COMPONENTS=(nodesim kube-controller-manager kube-apiserver etcd)   # stop order

say() { echo "cluster-up: $*"; }
mkdir -p "$STATE"

# one cluster-up at a time
if [ -z "${MESHOPS_UP_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  export MESHOPS_UP_LOCKED=1
  exec flock -o "$STATE/.up.lock" "$0" "$@"
fi

alive() {  # alive <component>: the recorded pid runs and is ours
  local f="$STATE/$1.pid" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1" || return 1
}

token() { cut -d, -f1 "$STATE/tokens.csv"; }
api_get() { curl -sk --max-time 5 -H "Authorization: Bearer $(token)" "$API$1"; }

nodes_ready() {
  api_get "/api/v1/nodes?labelSelector=nodesim.meshops.io%2Fmanaged%3Dtrue" | "$PY" -c '
import json, sys
want = int(sys.argv[1])
try:
    items = json.load(sys.stdin).get("items") or []
except ValueError:
    sys.exit(1)
ready = [n for n in items if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (n.get("status") or {}).get("conditions") or [])]
sys.exit(0 if len(ready) >= want else 1)' "$NODES"
}

running() {  # running <component>: the pid we just started exists and is no zombie (no cmdline
  # check: right after the fork the child may not have exec'd its program yet)
  local pid state
  pid="$(cat "$STATE/$1.pid" 2>/dev/null)" || return 1
  state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [ -n "$state" ] && [ "$state" != "Z" ]
}

all_alive() { local c; for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done; }

# ---------------------------------------------------------------- start / fail helpers
fail() {
  local what="$1" log="$2"
  echo "cluster-up: FAILED: $what" >&2
  if [ -n "$log" ] && [ -f "$log" ]; then echo "--- last 30 lines of $log ---" >&2; tail -n 30 "$log" >&2; fi
  "$ROOT/tools/cluster/down.sh" >&2 || true
  exit 1
}

start() {  # start <component> <command...>: detached, own session/process group, log in .cluster
  local name="$1"; shift
  : >"$STATE/$name.log"
  # Without job control a background job is no process-group leader, so setsid execs in place:
  # $! is the pid of the session leader, and down.sh can kill the whole group.
  setsid nohup "$@" >>"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

wait_for() {  # wait_for <component> <seconds> <check command...>
  local name="$1" secs="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    running "$name" || fail "$name exited during start-up" "$STATE/$name.log"
    [ "$(date +%s)" -lt "$deadline" ] || fail "$name not ready after ${secs}s" "$STATE/$name.log"
    sleep 0.3
  done
}

start_nodesim() {
  say "starting the node simulator ($NODES nodes)"
  # shellcheck disable=SC2086
  start nodesim env PYTHONPATH="$ROOT/tools" "$PY" -m nodesim --kubeconfig "$STATE/kubeconfig" --nodes "$NODES" \
    ${NODESIM_CONFIG:+--config "$NODESIM_CONFIG"} --ready-file "$STATE/nodesim.ready" ${NODESIM_ARGS:-}
  nodesim_ok() { [ -f "$STATE/nodesim.ready" ] && nodes_ready; }
  wait_for nodesim 60 nodesim_ok
  nodesim_version >"$STATE/nodesim.version"
}

start_real_nodes() {  # REAL_NODES=1: real kubelet nodes beside the simulated ones (idempotent)
  [ "${REAL_NODES:-0}" = "1" ] || return 0
  local rc=0
  MESHOPS_CLUSTER_DIR="$STATE" "$ROOT/tools/realnode/up.sh" || rc=$?
  if [ "$rc" -eq 2 ]; then
    say "REAL_NODES=1 but no kubelet can run on this machine (message above): only simulated nodes (the real-node tests are skipped and say why)"
  elif [ "$rc" -ne 0 ]; then
    echo "cluster-up: FAILED: tools/realnode/up.sh (exit $rc)" >&2
    exit 1
  fi
}

nodesim_version() { cat "$ROOT"/tools/nodesim/*.py ${NODESIM_CONFIG:+"$NODESIM_CONFIG"} 2>/dev/null | sha256sum | cut -c1-16; }

running_version="$(sed -n 's/^K8S_VERSION=//p' "$STATE/env" 2>/dev/null || true)"
if all_alive && [ -n "$running_version" ] && [ "$running_version" != "$KV" ]; then
  say "a control plane of $running_version runs; $KV was asked for, so it is stopped first"
  "$ROOT/tools/cluster/down.sh"
fi
if all_alive && [ "$(api_get /readyz)" = "ok" ]; then
  if [ "$(cat "$STATE/nodesim.version" 2>/dev/null)" != "$(nodesim_version)" ]; then
    # keep the dev loop short: a changed simulator is restarted alone (pods are resumed, not restarted)
    say "the node simulator's code or config changed; restarting it"
    pid="$(cat "$STATE/nodesim.pid")"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _i in $(seq 1 50); do running nodesim || break; sleep 0.1; done
    running nodesim && kill -KILL -- "-$pid" 2>/dev/null
    rm -f "$STATE/nodesim.pid" "$STATE/nodesim.ready"
    start_nodesim
  fi
  start_real_nodes
  say "already running (apiserver $API, kubeconfig $STATE/kubeconfig)"
  exit 0
fi
if alive etcd && alive kube-apiserver && alive kube-controller-manager && [ "$(api_get /readyz)" = "ok" ]; then
  say "the control plane runs but the node simulator does not; restarting it"
  rm -f "$STATE/nodesim.pid" "$STATE/nodesim.ready"
  start_nodesim
  say "ready: $API, $NODES simulated nodes"
  exit 0
fi
if ls "$STATE"/*.pid >/dev/null 2>&1; then
  say "found a partly running or stale cluster; stopping it first"
  "$ROOT/tools/cluster/down.sh"
fi

# ---------------------------------------------------------------- prerequisites
# build.sh builds nothing when the binaries of $KV are cached; on failure it prints the log tail and how to
# use an existing cluster instead (KUBECONFIG), and nothing has been started yet.
export K8S_VERSION="$KV" MESHOPS_CACHE="$CACHE"
"$ROOT/tools/cluster/build.sh" || { rc=$?; echo "cluster-up: FAILED: building the control plane (build.sh exit $rc)" >&2; exit "$rc"; }
if [ ! -x "$PY" ]; then
  say "no $PY yet; running tools/setup.sh"
  "$ROOT/tools/setup.sh" >"$STATE/setup.log" 2>&1 || { tail -n 30 "$STATE/setup.log" >&2; echo "cluster-up: FAILED: tools/setup.sh" >&2; exit 1; }
fi

for port in "$API_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$KCM_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "cluster-up: FAILED: port 127.0.0.1:$port is already in use by another process (set MESHOPS_*_PORT)" >&2
    exit 1
  fi
done

# ---------------------------------------------------------------- state (keys/token survive down/up)
[ -f "$STATE/sa.key" ] || openssl genrsa -out "$STATE/sa.key" 2048 2>/dev/null
if [ ! -f "$STATE/tokens.csv" ]; then
  echo "$(openssl rand -hex 32),admin,admin,system:masters" >"$STATE/tokens.csv"
fi
chmod 600 "$STATE/sa.key" "$STATE/tokens.csv"
rm -rf "$STATE/etcd" "$STATE/nodesim.ready"   # every start is a fresh, empty cluster
mkdir -p "$STATE/pki"
cat >"$STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: meshops-local
  cluster:
    server: $API
    insecure-skip-tls-verify: true
users:
- name: meshops-admin
  user:
    token: $(token)
contexts:
- name: meshops-local
  context:
    cluster: meshops-local
    user: meshops-admin
    namespace: default
current-context: meshops-local
EOF
chmod 600 "$STATE/kubeconfig"

t0=$(date +%s.%N)
say "starting etcd on 127.0.0.1:$ETCD_PORT"
start etcd etcd --name meshops --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "meshops=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
  --quota-backend-bytes 2147483648 --snapshot-count 50000
etcd_ok() { curl -s --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
wait_for etcd 30 etcd_ok

say "starting kube-apiserver $KV on $API"
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --endpoint-reconciler-type=none \
  --cert-dir="$STATE/pki" \
  --token-auth-file="$STATE/tokens.csv" --authorization-mode=RBAC \
  --service-account-key-file="$STATE/sa.key" --service-account-signing-key-file="$STATE/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-cluster-ip-range=10.96.0.0/24 \
  --allow-privileged=true --profiling=false --event-ttl=30m \
  --kubelet-preferred-address-types=InternalIP,Hostname ${MESHOPS_APISERVER_ARGS:-}
api_ok() { [ "$(api_get /readyz)" = "ok" ]; }
wait_for kube-apiserver 90 api_ok

say "starting kube-controller-manager"
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$STATE/kubeconfig" --authentication-kubeconfig="$STATE/kubeconfig" \
  --authorization-kubeconfig="$STATE/kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
  --service-account-private-key-file="$STATE/sa.key" --root-ca-file="$STATE/pki/apiserver.crt" \
  --use-service-account-credentials=false \
  --controllers='*,-node-ipam-controller,-node-lifecycle-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller,-ttl-controller,-persistentvolume-attach-detach-controller,-persistentvolume-binder-controller,-persistentvolume-expander-controller,-persistentvolumeclaim-protection-controller,-persistentvolume-protection-controller' \
  --concurrent-deployment-syncs=10 --concurrent-replicaset-syncs=10 --kube-api-qps=200 --kube-api-burst=400
sa_ok() { api_get /api/v1/namespaces/default/serviceaccounts/default | grep -q '"uid"'; }
wait_for kube-controller-manager 90 sa_ok

start_nodesim

cat >"$STATE/env" <<EOF
export KUBECONFIG="$STATE/kubeconfig"
export K8S_AUTH_KUBECONFIG="$STATE/kubeconfig"
MESHOPS_APISERVER="$API"
MESHOPS_APISERVER_PORT=$API_PORT
MESHOPS_ETCD_PORT=$ETCD_PORT
MESHOPS_ETCD_PEER_PORT=$ETCD_PEER_PORT
MESHOPS_KCM_PORT=$KCM_PORT
K8S_VERSION=$KV
EOF
start_real_nodes
say "ready in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s: $API, $NODES simulated nodes; logs and pids in $STATE"
say "use it with: export KUBECONFIG=$STATE/kubeconfig"
