#!/usr/bin/env bash
# Stop the real nodes of tools/realnode/up.sh (docs/real-nodes.md) and check that nothing is left: per node
# kubelet first, then every pod sandbox through CRI (crictl stopp/rmp: CNI DEL, network namespace removed),
# containerd, any containerd-shim still naming the node's socket, every mount below the node's dir, the
# pinned network namespaces the node had, its bridge, its Node object (when the API server still answers).
# The kube-scheduler goes with the last node. Safe to call when nothing runs.
# Environment: MESHOPS_CLUSTER_DIR (.cluster); MESHOPS_REALNODE_ONLY=<i> stops node i only (up.sh uses it).
# Exit 0 all gone, 1 something is still there (listed).
set -uo pipefail

case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/realnode/down.sh   (stop the real nodes; see docs/real-nodes.md)"; exit 0 ;;
  *) echo "tools/realnode/down.sh: unexpected argument '$1' (it takes none; see docs/real-nodes.md)" >&2; exit 64 ;;
esac

# shellcheck source=tools/realnode/lib.sh
. "$(dirname "$0")/lib.sh"
problems=()

sandbox_netns() {  # the network namespace paths of a node's pod sandboxes
  local i="$1" id
  for id in $(crictl_node "$i" pods -q 2>/dev/null); do
    crictl_node "$i" inspectp "$id" 2>/dev/null | python3 -c '
import json, sys
try:
    info = json.load(sys.stdin).get("info") or {}
except ValueError:
    sys.exit(0)
for ns in ((info.get("runtimeSpec") or {}).get("linux") or {}).get("namespaces") or []:
    if ns.get("type") == "network" and ns.get("path"):
        print(ns["path"])'
  done
}

remove_sandboxes() {  # through CRI, so that CNI DEL runs and containerd removes the namespaces
  local i="$1" id
  for id in $(crictl_node "$i" pods -q 2>/dev/null); do
    crictl_node "$i" stopp "$id" >/dev/null 2>&1 || true
    crictl_node "$i" rmp -f "$id" >/dev/null 2>&1 || true
  done
}

start_containerd_for_cleanup() {
  local d
  d="$(node_dir "$1")"
  [ -f "$d/containerd/config.toml" ] || return 1
  setsid nohup containerd --config "$d/containerd/config.toml" >>"$d/containerd.log" 2>&1 </dev/null &
  echo $! >"$d/containerd.pid"
  for _ in $(seq 1 100); do ctr --address "$d/containerd.sock" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

stop_node() {
  local i="$1" d name br leftover pid m ns
  d="$(node_dir "$i")"; name="$(node_name "$i")"; br="$(cat "$d/bridge" 2>/dev/null || bridge_if "$i")"
  stop_group "$d/kubelet.pid" "kubelet of $name"
  # shims outlive containerd: with sandboxes left and containerd gone, start it again to remove them via CRI
  if ! alive "$d/containerd.pid" "$d/containerd/config.toml" && [ -n "$(pids_mentioning "$d/containerd.sock")" ]; then
    rn_say "$name: shims without containerd; starting containerd to remove their sandboxes"
    start_containerd_for_cleanup "$i" || true
  fi
  if alive "$d/containerd.pid" "$d/containerd/config.toml" && [ -x "$CRICTL" ]; then
    sandbox_netns "$i" >>"$d/netns.list"
    remove_sandboxes "$i"
  fi
  stop_group "$d/containerd.pid" "containerd of $name"
  for pid in $(pids_mentioning "$d/"); do
    [ "$pid" = "$$" ] && continue
    rn_say "$name: killing leftover process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)"
    kill -KILL "$pid" 2>/dev/null
  done
  sleep 0.2
  while read -r m; do
    [ -n "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
  done < <(mounts_below "$d")
  if [ -f "$d/netns.list" ]; then
    sort -u "$d/netns.list" | while read -r ns; do
      [ -n "$ns" ] || continue
      if grep -qF " $ns " /proc/mounts; then umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null; fi
      [ -e "$ns" ] && rm -f "$ns"
    done
  fi
  ip link show "$br" >/dev/null 2>&1 && ip link del "$br"
  rm -f "$d/bridge"
  # the Node object goes too, unless up.sh restarts this node (its pods stay bound and are started again)
  if [ -z "${MESHOPS_REALNODE_ONLY:-}" ] && api_ready; then
    api_call DELETE "/api/v1/nodes/$name" >/dev/null 2>&1 || true
  fi
  # verify
  leftover="$(pids_mentioning "$d/" | tr "\n" " ")"
  [ -z "${leftover// /}" ] || problems+=("$name: processes still running: $leftover")
  [ -z "$(mounts_below "$d")" ] || problems+=("$name: mounts left: $(mounts_below "$d" | tr '\n' ' ')")
  if [ -f "$d/netns.list" ]; then
    for ns in $(sort -u "$d/netns.list"); do [ -e "$ns" ] && problems+=("$name: network namespace left: $ns"); done
    [ "${#problems[@]}" -gt 0 ] || rm -f "$d/netns.list"
  fi
  ! ip link show "$br" >/dev/null 2>&1 || problems+=("$name: interface $br left")
  rn_say "$name stopped"
}

dirs=()
if [ -n "${MESHOPS_REALNODE_ONLY:-}" ]; then
  dirs=("$(node_dir "$MESHOPS_REALNODE_ONLY")")
else
  for d in "$STATE"/realnode-[0-9]*; do [ -d "$d" ] && dirs+=("$d"); done
fi
for d in "${dirs[@]}"; do
  [ -d "$d" ] || continue
  stop_node "${d##*/realnode-}"
done

if [ -z "${MESHOPS_REALNODE_ONLY:-}" ]; then
  stop_group "$SCHED_DIR/pid" "kube-scheduler ($SCHEDULER_NAME)"
  rm -f "$STATE/realnode.env"
fi

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'realnode: FAILED: %s\n' "${problems[@]}" >&2
  exit 1
fi
[ "${#dirs[@]}" -gt 0 ] && rn_say "all stopped" || rn_say "nothing was running"
