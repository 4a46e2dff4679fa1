#!/usr/bin/env bash
# Stop the local control plane started by tools/cluster/up.sh: every component by the pid it
# recorded in .cluster/*.pid (whole process group: TERM, wait, KILL), then verify that none of those
# processes and none of the ports are left. Safe to call when nothing runs.
set -uo pipefail

# Takes no arguments. Refusing them matters: an Ansible inventory that (mis)points at this checkout
# runs every executable in it with --list, which must not start, stop or build anything.
case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/cluster/down.sh   (stop the local control plane; see docs/local-control-plane.md)"; exit 0 ;;
  *) echo "tools/cluster/down.sh: unexpected argument '$1' (it takes none; see docs/local-control-plane.md)" >&2; exit 64 ;;
esac

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${MESHOPS_CLUSTER_DIR:-$ROOT/.cluster}"
COMPONENTS=(nodesim kube-controller-manager kube-apiserver etcd)   # stop order
say() { echo "cluster-down: $*"; }

ports=()
if [ -f "$STATE/env" ]; then
  # shellcheck disable=SC1091
  ports=($(grep -E '^MESHOPS_(APISERVER|ETCD|ETCD_PEER|KCM)_PORT=' "$STATE/env" | cut -d= -f2))
fi

ours() {  # ours <pid> <component>: the pid still runs the program we started
  kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}

# a zombie (killed, not yet reaped by a parent that is not ours) runs nothing and holds no port: not alive
group_alive() { [ -n "$(ps -o stat= -g "$1" 2>/dev/null | grep -v '^Z')" ]; }

# real kubelet nodes first (they use this control plane; docs/real-nodes.md)
if ls -d "$STATE"/realnode-* >/dev/null 2>&1 && [ -x "$ROOT/tools/realnode/down.sh" ]; then
  MESHOPS_CLUSTER_DIR="$STATE" "$ROOT/tools/realnode/down.sh" || { say "FAILED: tools/realnode/down.sh" >&2; exit 1; }
fi

stopped=0
for c in "${COMPONENTS[@]}"; do
  f="$STATE/$c.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  if [ -z "$pid" ] || ! { ours "$pid" "$c" || group_alive "$pid"; }; then
    rm -f "$f"; continue
  fi
  # up.sh started each component with setsid: its pid is also its process-group id.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do
    group_alive "$pid" || ours "$pid" "$c" || break
    sleep 0.1
  done
  if group_alive "$pid" || ours "$pid" "$c"; then
    say "$c (pid $pid) did not stop after 10 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 1 50); do group_alive "$pid" || ours "$pid" "$c" || break; sleep 0.1; done
  fi
  if group_alive "$pid" || ours "$pid" "$c"; then
    say "FAILED: $c (pid $pid) is still running" >&2
    exit 1
  fi
  rm -f "$f"
  stopped=$((stopped + 1))
  say "stopped $c (pid $pid)"
done
rm -f "$STATE/nodesim.ready"

for port in "${ports[@]}"; do
  for _ in $(seq 1 30); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || continue 2
    sleep 0.1
  done
  say "FAILED: port 127.0.0.1:$port is still in use" >&2
  exit 1
done
if [ "$stopped" -eq 0 ]; then say "nothing was running"; else say "all stopped"; fi
