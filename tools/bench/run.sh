#!/usr/bin/env bash
# make bench: every benchmark (tools/bench/bench_*.py), each printing JSON lines on stdout.
#
# The cluster benchmarks run on control planes of their own, started fresh here and stopped at the end
# (never the test cluster of .cluster/):
#   * profile "default": the control plane exactly as the integration tests run it;
#   * profile "bench":   the same, with the node simulator's Events off (tools/bench/benchenv.py says why).
# bench_upgrade runs on both, bench_rollout on "bench". With KUBECONFIG set, every benchmark uses that
# cluster instead (profile "external") and nothing is started. BENCH_ONLY=bench_rollout runs one benchmark alone.
set -uo pipefail
export REAL_NODES=0   # its control plane of its own runs on simulated nodes only (docs/real-nodes.md)
cd "$(dirname "$0")/../.."
ROOT="$PWD"
PY=.venv/bin/python
status=0

want() {  # want <script>: BENCH_ONLY=<name> (e.g. bench_rollout) runs that benchmark alone
  [ -z "${BENCH_ONLY:-}" ] || [ "$BENCH_ONLY" = "$(basename "$1" .py)" ]
}

run() {  # run <script>: one benchmark, its failure recorded as a JSON line
  want "$1" || return 0
  echo "# $1 (profile ${MESHOPS_BENCH_PROFILE:-none})" >&2
  "$PY" "$1" || { echo "{\"bench\": \"$(basename "$1" .py)\", \"profile\": \"${MESHOPS_BENCH_PROFILE:-none}\", \"error\": \"exit $?\"}"; status=1; }
}

cluster() {  # cluster <profile> <dir> <port offset>: start a fresh control plane for one profile
  local profile="$1" dir="$2" off="$3"
  export MESHOPS_CLUSTER_DIR="$dir" MESHOPS_APISERVER_PORT=$((17443 + off)) MESHOPS_ETCD_PORT=$((24790 + off)) \
    MESHOPS_ETCD_PEER_PORT=$((24800 + off)) MESHOPS_KCM_PORT=$((21257 + off))
  if [ "$profile" = bench ]; then
    export NODESIM_ARGS="--no-events"
  else
    unset NODESIM_ARGS
  fi
  tools/cluster/down.sh >/dev/null 2>&1
  tools/cluster/up.sh >&2 || return 1
  export KUBECONFIG="$dir/kubeconfig" MESHOPS_BENCH_PROFILE="$profile"
}

stop_all() {
  for dir in "$ROOT/.bench/cluster-default" "$ROOT/.bench/cluster-bench"; do
    [ -d "$dir" ] && MESHOPS_CLUSTER_DIR="$dir" tools/cluster/down.sh >/dev/null 2>&1
  done
}

MESHOPS_BENCH_PROFILE=none run tools/bench/bench_inject.py
MESHOPS_BENCH_PROFILE=none run tools/bench/bench_handover.py

if [ -n "${KUBECONFIG:-}" ]; then
  export MESHOPS_BENCH_PROFILE=external
  run tools/bench/bench_upgrade.py
  run tools/bench/bench_rollout.py
  exit $status
fi

trap stop_all EXIT
mkdir -p .bench
if ! want tools/bench/bench_upgrade.py; then
  :  # the default profile runs bench_upgrade only
elif cluster default "$ROOT/.bench/cluster-default" 0; then
  run tools/bench/bench_upgrade.py
else
  echo '{"bench": "cluster", "profile": "default", "error": "control plane did not start"}'; status=1
fi
MESHOPS_CLUSTER_DIR="$ROOT/.bench/cluster-default" tools/cluster/down.sh >/dev/null 2>&1
if cluster bench "$ROOT/.bench/cluster-bench" 100; then
  run tools/bench/bench_upgrade.py
  run tools/bench/bench_rollout.py
else
  echo '{"bench": "cluster", "profile": "bench", "error": "control plane did not start"}'; status=1
fi
MESHOPS_CLUSTER_DIR="$ROOT/.bench/cluster-bench" tools/cluster/down.sh >/dev/null 2>&1
# The rollout race (issue 14): Kruise's controller against our rollout, on a control plane of its own with the real
# kruise-manager (.bench/cluster-kruise, its own ports; it starts and stops it). Only when kruise-manager is built
# (tools/kruise/kruise.sh build) or with BENCH_KRUISE=1 (then it is built first).
if want tools/bench/bench_kruise_race.py; then
  if [ "${BENCH_KRUISE:-}" = 1 ] || tools/kruise/kruise.sh built >/dev/null 2>&1; then
    MESHOPS_BENCH_PROFILE=bench run tools/bench/bench_kruise_race.py
  else
    echo "# bench_kruise_race skipped: kruise-manager not built (tools/kruise/kruise.sh build, or BENCH_KRUISE=1)" >&2
  fi
fi
exit $status
