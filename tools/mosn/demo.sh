#!/usr/bin/env bash
# make demo MESH=mosn: the seed's MOSN proxy hot-upgraded in place under traffic on a real kubelet node
# (docs/mosn.md). Uses the local control plane of `make cluster-up` with its real nodes (REAL_NODES=1; started
# here when not running), builds MOSN from its Go module and the MOSN images (cached), imports them into every
# real node's containerd, then runs examples/mosn/demo.py (the seed's SidecarSet with its `postStar` typo reported,
# test-app, traffic through MOSN to the pod IPs, playbooks/rollout.yml v1 -> v2, the checks). Exit 0 when every
# check passed. Where no kubelet can run, it stops with exit 2 and says why: the simulator's process mode runs the
# reference sidecar only, so it cannot stand in for MOSN (plain `make demo` does).
set -euo pipefail
case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/mosn/demo.sh   (make demo MESH=mosn; see docs/mosn.md)"; exit 0 ;;
  *) echo "tools/mosn/demo.sh: unexpected argument '$1' (it takes none; see docs/mosn.md)" >&2; exit 64 ;;
esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${MESHOPS_CLUSTER_DIR:-$ROOT/.cluster}"
PY="$ROOT/.venv/bin/python"
say() { echo "demo-mosn: $*"; }
say "the local control plane with real nodes ($STATE; tools/cluster/up.sh REAL_NODES=1)"
rc=0
REAL_NODES=1 MESHOPS_CLUSTER_DIR="$STATE" "$ROOT/tools/cluster/up.sh" || rc=$?
[ "$rc" -eq 0 ] || { say "FAILED: tools/cluster/up.sh exit $rc"; exit 1; }
export KUBECONFIG="$STATE/kubeconfig"
NODE="$("$PY" "$ROOT/tools/kubeclient.py" --kubeconfig "$KUBECONFIG" ready-nodes meshops.io/node-kind=real)"
NODE="${NODE%%$'\n'*}"   # the first one
if [ -z "$NODE" ]; then
  say "no real node is Ready in $STATE (a kubelet cannot run on this machine: see the realnode lines above)."
  say "The MOSN demo needs a real kubelet: the simulator's process mode runs only the reference sidecar. Run 'make demo'."
  exit 2
fi
say "building MOSN and its images (tools/mosn/images.sh; cached)"
"$ROOT/tools/mosn/images.sh" >"$STATE/mosn-images.log" 2>&1 || { tail -n 20 "$STATE/mosn-images.log" >&2; say "FAILED: tools/mosn/images.sh"; exit 1; }
for sock in "$STATE"/realnode-*/containerd.sock; do
  [ -S "$sock" ] || continue
  python3 "$ROOT/tools/images/imagetool.py" --set mosn import --address "$sock" --namespace k8s.io >>"$STATE/mosn-images.log" 2>&1 \
    || { tail -n 20 "$STATE/mosn-images.log" >&2; say "FAILED: importing the MOSN images into $sock"; exit 1; }
done
say "running the scenario on $NODE (real node: kubelet + containerd)"
exec "$PY" "$ROOT/examples/mosn/demo.py" --kubeconfig "$KUBECONFIG" --node "$NODE" --out "$ROOT/out/mosn-demo" ${DEMO_ARGS:-}
