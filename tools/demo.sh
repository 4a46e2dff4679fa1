#!/usr/bin/env bash
# make demo: the whole system on one machine, with real sidecar processes and real traffic.
#
# 1. starts a local control plane of its own (tools/cluster/up.sh with MESHOPS_CLUSTER_DIR=.cluster/demo
#    and its own ports, so it never disturbs the cluster of the tests) with a real kubelet node
#    (tools/realnode: kubelet + containerd + runc, images built here; docs/real-nodes.md). Where no
#    kubelet can run (no root, no cgroups, ...) it says why and runs on the node simulator's process
#    mode instead (examples/demo/nodesim-processes.yaml: the mesh-sidecar images and the demo app are
#    real processes on 127.0.0.1, each pod with its own port block and volume directories);
# 2. examples/demo/demo.py: a 5-replica Deployment, the sample SidecarSet injected (playbooks/inject.yml),
#    traffic through every pod's sidecar (the pods' own IPs on a real node), playbooks/rollout.yml
#    v1 -> v2 (maxUnavailable 2), traffic stopped, the rollout report and the checks (0 failed requests,
#    every pod on v2 in its working slot with the other slot empty, same pod UIDs), and the node kind;
# 3. stops that control plane, its nodes and every process (unless KEEP_CLUSTER=1).
#
# Environment: DEMO_NODES (auto: a real node where a kubelet can run, else process mode, saying so;
# real: a real node or exit 2; process: the simulator's process mode),
# KEEP_CLUSTER=1 (leave the demo cluster running to explore it), DEMO_OUT (out/demo),
# DEMO_CLUSTER_DIR (.cluster/demo), DEMO_BASE_PORT (21000: pod k uses 127.0.0.1:DEMO_BASE_PORT+10k..+9),
# MESHOPS_APISERVER_PORT (26443), MESHOPS_ETCD_PORT (33790), MESHOPS_ETCD_PEER_PORT (33800),
# MESHOPS_KCM_PORT (30257), DEMO_ARGS (extra arguments of examples/demo/demo.py, e.g. "--rate 40").
# Exit codes: 0 every check passed, 1 a check failed, 2 a step could not run, or up.sh's code.
set -euo pipefail
NODES_MODE="${DEMO_NODES:-auto}"
case "$NODES_MODE" in
  auto|real) export REAL_NODES=1 ;;
  process) export REAL_NODES=0 ;;
  *) echo "tools/demo.sh: DEMO_NODES=$NODES_MODE is not known (auto, real or process)" >&2; exit 64 ;;
esac

case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "tools/demo.sh: unexpected argument '$1' (it takes none; see --help)" >&2; exit 64 ;;
esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
export MESHOPS_CLUSTER_DIR="${DEMO_CLUSTER_DIR:-$ROOT/.cluster/demo}"
export MESHOPS_APISERVER_PORT="${MESHOPS_APISERVER_PORT:-26443}"
export MESHOPS_ETCD_PORT="${MESHOPS_ETCD_PORT:-33790}"
export MESHOPS_ETCD_PEER_PORT="${MESHOPS_ETCD_PEER_PORT:-33800}"
export MESHOPS_KCM_PORT="${MESHOPS_KCM_PORT:-30257}"
export NODESIM_CONFIG="$ROOT/examples/demo/nodesim-processes.yaml"
export NODESIM_NODES=3
export NODESIM_PROCESS_BASE_PORT="${DEMO_BASE_PORT:-21000}"
OUT="${DEMO_OUT:-$ROOT/out/demo}"
KUBECONFIG_FILE="$MESHOPS_CLUSTER_DIR/kubeconfig"
unset MESHOPS_UP_LOCKED KUBECONFIG

say() { echo "demo: $*"; }

# A short directory: Unix socket paths (the sidecars' control sockets live in the pods' volumes) are
# limited to 107 bytes.
PROCS="$(mktemp -d /tmp/meshops-demo.XXXXXX)"
WHERE=(--process-dir "$PROCS")
export NODESIM_ARGS="--process-dir $PROCS"
mkdir -p "$OUT"

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${KEEP_CLUSTER:-0}" = "1" ] && [ "${WHERE[0]:-}" = --real-node ]; then
    cat <<MSG

demo: KEEP_CLUSTER=1: the demo cluster keeps running (its pods run on the real node ${WHERE[1]}):
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl -n mesh-demo get pods -o wide
  curl -si http://<a pod's IP>:15001/     # x-sidecar-build: v2
  logs: $MESHOPS_CLUSTER_DIR/*.log, $MESHOPS_CLUSTER_DIR/realnode-0/*.log
stop it with:
  MESHOPS_CLUSTER_DIR=$MESHOPS_CLUSTER_DIR tools/cluster/down.sh && rm -rf $PROCS
MSG
  elif [ "${KEEP_CLUSTER:-0}" = "1" ]; then
    cat <<MSG

demo: KEEP_CLUSTER=1: the demo cluster keeps running (its pods are real processes on 127.0.0.1):
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl -n mesh-demo get pods -o wide
  cat $PROCS/pods.json     # each pod's ports (app, sidecar), volume directories and processes
  curl -si http://127.0.0.1:<a pod's sidecar port>/     # x-sidecar-build: v2
  logs: $MESHOPS_CLUSTER_DIR/*.log, $PROCS/p*/*.log
stop it with:
  MESHOPS_CLUSTER_DIR=$MESHOPS_CLUSTER_DIR tools/cluster/down.sh && rm -rf $PROCS
MSG
  else
    say "stopping the demo cluster and every process it ran"
    tools/cluster/down.sh >"$OUT/cluster-down.log" 2>&1 || { cat "$OUT/cluster-down.log" >&2; [ "$rc" -ne 0 ] || rc=1; }
    rm -rf "$PROCS"
    say "nothing left running (KEEP_CLUSTER=1 make demo keeps the cluster for exploring)"
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A demo cluster left by an earlier KEEP_CLUSTER=1 run runs another process directory: start afresh.
if ls "$MESHOPS_CLUSTER_DIR"/*.pid >/dev/null 2>&1; then
  say "stopping the demo cluster left by an earlier run"
  tools/cluster/down.sh >"$OUT/cluster-down.log" 2>&1 || true
fi

say "starting a local control plane of its own in $MESHOPS_CLUSTER_DIR (apiserver 127.0.0.1:$MESHOPS_APISERVER_PORT; DEMO_NODES=$NODES_MODE)"
t0=$(date +%s)
tools/cluster/up.sh >"$OUT/cluster-up.log" 2>&1 || { rc=$?; cat "$OUT/cluster-up.log" >&2; exit "$rc"; }
say "control plane ready in $(( $(date +%s) - t0 ))s"

if [ "$REAL_NODES" = 1 ]; then
  NODE="$("$PY" tools/kubeclient.py --kubeconfig "$KUBECONFIG_FILE" ready-nodes meshops.io/node-kind=real)"
  NODE="${NODE%%$'\n'*}"   # the first one
  if [ -n "$NODE" ]; then
    say "real node $NODE is Ready: the pods run on a real kubelet (containerd, runc, images built here)"
    WHERE=(--real-node "$NODE")
  else
    # up.sh's own words on why no kubelet could start
    reason="$(grep -E '^realnode: |REAL_NODES=1 but' "$OUT/cluster-up.log" | tail -n 3 || true)"
    [ -n "$reason" ] || reason="(no real node is Ready; see $OUT/cluster-up.log)"
    if [ "$NODES_MODE" = real ]; then
      printf '%s\n' "$reason" >&2
      say "FAILED: DEMO_NODES=real but no real node could start here"
      exit 2
    fi
    printf '%s\n' "$reason"
    say "no real node could start on this machine (above): running on the node simulator's process mode instead"
  fi
else
  say "DEMO_NODES=process: the node simulator's process mode (real processes on 127.0.0.1)"
fi

# shellcheck disable=SC2086
"$PY" examples/demo/demo.py --kubeconfig "$KUBECONFIG_FILE" "${WHERE[@]}" --out "$OUT" ${DEMO_ARGS:-}
