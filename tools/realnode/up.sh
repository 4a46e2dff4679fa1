#!/usr/bin/env bash
# Start real nodes (containerd + kubelet) next to the simulated ones of a running local control plane
# (docs/real-nodes.md). Node i is `realnode-<i>`: containerd 1.6 (Debian) with runc and the CNI bridge plugin
# (Debian), kubelet of K8S_VERSION (tools/cluster/build.sh, from Go modules), every file, socket and log under
# $MESHOPS_CLUSTER_DIR/realnode-<i>/, images from tools/images (never pulled). Labels meshops.io/node-kind=real
# and topology.kubernetes.io/zone=real-zone-<i>, taint meshops.io/node-kind=real:NoSchedule (keeps DaemonSets
# and the simulator's world away). A kube-scheduler of the same build with the profile `meshops-real` places
# the pods that ask for it (spec.schedulerName: meshops-real) on real nodes only.
#
# Environment: MESHOPS_CLUSTER_DIR (.cluster), MESHOPS_REAL_NODES (1, at most 8), MESHOPS_REALNODE_SCHEDULER_PORT
# (the control plane's KCM port + 2), MESHOPS_REALNODE_SLOT (derived from the state dir), K8S_VERSION.
# Idempotent: nodes that run and are Ready are left alone. Exit 0 ready, 1 failed (log tail printed, what it
# started is stopped again), 2 this machine cannot run a kubelet (reason printed).
set -euo pipefail

case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/realnode/up.sh   (start real nodes; see docs/real-nodes.md)"; exit 0 ;;
  *) echo "tools/realnode/up.sh: unexpected argument '$1' (it takes none; see docs/real-nodes.md)" >&2; exit 64 ;;
esac

# shellcheck source=tools/realnode/lib.sh
. "$(dirname "$0")/lib.sh"
NODES="${MESHOPS_REAL_NODES:-1}"
T0=$(date +%s.%N)

unsupported() { echo "realnode: cannot run a kubelet on this machine: $*" >&2; exit 2; }
fail() {  # fail <what> [log]
  echo "realnode: FAILED: $1" >&2
  if [ -n "${2:-}" ] && [ -f "$2" ]; then echo "--- last 30 lines of $2 ---" >&2; tail -n 30 "$2" >&2; fi
  if [ -n "${STARTED:-}" ]; then "$ROOT/tools/realnode/down.sh" >&2 || true; fi
  exit 1
}
elapsed() { awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $1 }"; }

[[ "$NODES" =~ ^[1-9][0-9]*$ ]] && [ "$NODES" -le "$MAX_NODES" ] || { echo "realnode: MESHOPS_REAL_NODES=$NODES (1..$MAX_NODES)" >&2; exit 64; }
[ "$(id -u)" -eq 0 ] || unsupported "kubelet and containerd need root (this shell is uid $(id -u))"
[ "$(uname -s)" = Linux ] || unsupported "not Linux"
[ -d /sys/fs/cgroup ] && [ -n "$(ls /sys/fs/cgroup 2>/dev/null)" ] || unsupported "no cgroup filesystem at /sys/fs/cgroup"
command -v apt-get >/dev/null 2>&1 || command -v containerd >/dev/null 2>&1 || unsupported "no apt-get to install containerd, runc and the CNI plugins"
ip link add "mrbprobe$$" type bridge 2>/dev/null && ip link del "mrbprobe$$" || unsupported "cannot create a bridge interface (no CAP_NET_ADMIN or no bridge module)"

if [ -z "${MESHOPS_REALNODE_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  export MESHOPS_REALNODE_LOCKED=1
  exec flock -o "$STATE/.realnode.lock" "$0" "$@"
fi

# kubelet's longest Unix socket: <node dir>/kubelet/root/pod-resources/<9 digits>; the kernel allows 107 bytes
longest="$(node_dir $((NODES - 1)))/kubelet/root/pod-resources/123456789"
[ "${#longest}" -le 107 ] || { echo "realnode: FAILED: MESHOPS_CLUSTER_DIR=$STATE is too long for kubelet's Unix sockets" \
  "(${#longest} > 107 bytes in $longest): use a shorter state dir" >&2; exit 1; }

api_ready || fail "no running control plane in $STATE (start it first: tools/cluster/up.sh with the same MESHOPS_CLUSTER_DIR)"

# ---------------------------------------------------------------- what it needs (Debian, Go modules, tools/images)
need=()
for p in containerd runc containernetworking-plugins; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ "${#need[@]}" -gt 0 ]; then
  rn_say "apt-get install ${need[*]}"
  apt-get update -qq >"$STATE/realnode-apt.log" 2>&1 || fail "apt-get update" "$STATE/realnode-apt.log"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$STATE/realnode-apt.log" 2>&1 \
    || fail "apt-get install ${need[*]}" "$STATE/realnode-apt.log"
fi
MESHOPS_K8S_BINARIES="kubelet kube-scheduler" "$ROOT/tools/cluster/build.sh" >"$STATE/realnode-build.log" 2>&1 \
  || fail "building kubelet and kube-scheduler $KV (tools/cluster/build.sh)" "$STATE/realnode-build.log"
if [ ! -x "$CRICTL" ]; then
  rn_say "building crictl $CRICTL_VERSION from its Go module (sigs.k8s.io/cri-tools)"
  mkdir -p "$(dirname "$CRICTL")"
  (cd /tmp && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -modcacherw" GOWORK=off GOPROXY="${GOPROXY:-https://proxy.golang.org}" \
    GOBIN="$(dirname "$CRICTL")" go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION") >"$STATE/realnode-crictl.log" 2>&1 \
    || fail "go install sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" "$STATE/realnode-crictl.log"
fi
"$ROOT/tools/images/build.sh" >"$STATE/realnode-images.log" 2>&1 || fail "building the images (tools/images/build.sh)" "$STATE/realnode-images.log"
PAUSE="$(python3 "$ROOT/tools/images/imagetool.py" list | awk '$1 ~ /\/pause:/ {print $1}')"
[ -n "$PAUSE" ] || fail "no pause image in tools/images"
T_PREP=$(elapsed "$T0")

# ---------------------------------------------------------------- kube-scheduler (one per control plane)
SCHED_PORT="${MESHOPS_REALNODE_SCHEDULER_PORT:-}"
if [ -z "$SCHED_PORT" ]; then
  kcm="$(grep -E '^MESHOPS_KCM_PORT=' "$STATE/env" 2>/dev/null | cut -d= -f2)"
  SCHED_PORT=$(( ${kcm:-10257} + 2 ))
fi
mkdir -p "$SCHED_DIR"
if ! alive "$SCHED_DIR/pid" "$SCHED_DIR/config.yaml"; then
  cat >"$SCHED_DIR/config.yaml" <<EOF
# kube-scheduler for the real nodes (tools/realnode/up.sh): only pods with schedulerName $SCHEDULER_NAME, only
# nodes labelled $KIND_LABEL=real. TaintToleration is off in this profile: the real nodes' NoSchedule taint
# keeps the default-scheduler world (DaemonSets, the simulator's binder) away, not the pods that ask for them.
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $KUBECONFIG_FILE
leaderElection:
  leaderElect: false
profiles:
  - schedulerName: $SCHEDULER_NAME
    plugins:
      multiPoint:
        disabled:
          - name: TaintToleration
    pluginConfig:
      - name: NodeAffinity
        args:
          addedAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms:
                - matchExpressions:
                    - {key: $KIND_LABEL, operator: In, values: [real]}
EOF
  if (exec 3<>"/dev/tcp/127.0.0.1/$SCHED_PORT") 2>/dev/null; then
    fail "port 127.0.0.1:$SCHED_PORT (kube-scheduler) is in use; set MESHOPS_REALNODE_SCHEDULER_PORT"
  fi
  rn_say "starting kube-scheduler $KV (profile $SCHEDULER_NAME, 127.0.0.1:$SCHED_PORT)"
  STARTED=1
  start_detached "$SCHED_DIR/pid" "$SCHED_DIR/log" "$K8S_BIN/kube-scheduler" --config="$SCHED_DIR/config.yaml" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
    --authentication-kubeconfig="$KUBECONFIG_FILE" --authorization-kubeconfig="$KUBECONFIG_FILE" --v=1
fi

# ---------------------------------------------------------------- nodes
node_ready() {
  api_get "/api/v1/nodes/$(node_name "$1")" | python3 -c '
import json, sys
try:
    node = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
status = node.get("status") if isinstance(node.get("status"), dict) else {}
conds = status.get("conditions") or []
sys.exit(0 if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds) else 1)'
}

node_running() {
  local d
  d="$(node_dir "$1")"
  alive "$d/containerd.pid" "$d/containerd/config.toml" && alive "$d/kubelet.pid" "$d/kubelet/config.yaml"
}

write_configs() {  # write_configs <i>
  local i="$1" d br ip subnet name v1
  d="$(node_dir "$i")"; br="$(bridge_if "$i")"; ip="$(node_ip "$i")"; subnet="$(pod_subnet "$i")"; name="$(node_name "$i")"
  mkdir -p "$d/containerd" "$d/cni/net.d" "$d/kubelet/root" "$d/logs/pods" "$d/runc"
  for host in _default docker.io registry.k8s.io; do
    mkdir -p "$d/certs.d/$host"
    # Every registry resolves to a closed port on loopback: a pull fails at once and never leaves this machine.
    printf 'server = "http://127.0.0.1:1"\n\n[host."http://127.0.0.1:1"]\n  capabilities = ["pull", "resolve"]\n' >"$d/certs.d/$host/hosts.toml"
  done
  cat >"$d/containerd/config.toml" <<EOF
# containerd of real node $name (tools/realnode/up.sh); containerd 1.6 config format version 2
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  # without it every sandbox fails in runc (nsexec: failed to update /proc/self/oom_score_adj: Permission denied)
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$d/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$d/certs.d"
EOF
  cat >"$d/cni/net.d/10-meshops.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "meshops-$name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$br",
      "isGateway": false,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$subnet", "gateway": "$ip", "rangeStart": "${ip%.1}.10"}]],
        "dataDir": "$d/cni/networks"
      }
    }
  ]
}
EOF
  v1=""
  if cgroup_v1; then v1="failCgroupV1: false   # cgroup v1 is mounted here; kubelet >= 1.35 refuses it by default"; fi
  cat >"$d/kubelet/config.yaml" <<EOF
# kubelet of real node $name (tools/realnode/up.sh); the settings of ../shared/reference/real-node.md
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$d/containerd.sock
imageServiceEndpoint: unix://$d/containerd.sock
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
$v1
evictionHard: {}
imageGCHighThresholdPercent: 100
address: $ip
port: 10250
readOnlyPort: 0
healthzPort: 0
# no KUBE-FIREWALL / KUBE-IPTABLES-HINT / canary chains: they would outlive the node (no kube-proxy here needs them)
makeIPTablesUtilChains: false
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
podLogsDir: $d/logs/pods
resolvConf: ""
serializeImagePulls: false
registerWithTaints:
  - {key: $KIND_LABEL, value: real, effect: NoSchedule}
EOF
}

start_node() {  # start_node <i>
  local i="$1" d br ip name t
  d="$(node_dir "$i")"; br="$(bridge_if "$i")"; ip="$(node_ip "$i")"; name="$(node_name "$i")"
  t=$(date +%s.%N)
  if ip link show "$br" >/dev/null 2>&1 && [ "$(cat "$d/bridge" 2>/dev/null)" != "$br" ]; then
    fail "interface $br exists but is not node $name's of $STATE (another state dir with slot $SLOT? set MESHOPS_REALNODE_SLOT)"
  fi
  write_configs "$i"
  rm -rf "$d/cni/networks"
  ip link show "$br" >/dev/null 2>&1 || ip link add "$br" type bridge
  echo "$br" >"$d/bridge"
  ip addr replace "$ip/24" dev "$br"
  ip link set "$br" up
  STARTED=1
  rn_say "starting containerd for $name ($d/containerd.sock)"
  start_detached "$d/containerd.pid" "$d/containerd.log" containerd --config "$d/containerd/config.toml"
  for _ in $(seq 1 100); do
    ctr --address "$d/containerd.sock" version >/dev/null 2>&1 && break
    alive "$d/containerd.pid" "$d/containerd/config.toml" || fail "containerd of $name exited during start-up" "$d/containerd.log"
    sleep 0.1
  done
  ctr --address "$d/containerd.sock" version >/dev/null 2>&1 || fail "containerd of $name not answering after 10 s" "$d/containerd.log"
  python3 "$ROOT/tools/images/imagetool.py" import --address "$d/containerd.sock" --namespace k8s.io >"$d/images.log" 2>&1 \
    || fail "importing the images into $name's containerd" "$d/images.log"
  rn_say "starting kubelet $KV as $name ($ip, zone $(zone_of "$i"))"
  start_detached "$d/kubelet.pid" "$d/kubelet.log" "$K8S_BIN/kubelet" --config="$d/kubelet/config.yaml" \
    --kubeconfig="$KUBECONFIG_FILE" --root-dir="$d/kubelet/root" --cert-dir="$d/kubelet/pki" \
    --hostname-override="$name" --node-ip="$ip" \
    --node-labels="$KIND_LABEL=real,topology.kubernetes.io/zone=$(zone_of "$i"),topology.kubernetes.io/region=$REGION" --v=1
  for _ in $(seq 1 240); do
    node_ready "$i" && break
    alive "$d/kubelet.pid" "$d/kubelet/config.yaml" || fail "kubelet of $name exited during start-up" "$d/kubelet.log"
    alive "$d/containerd.pid" "$d/containerd/config.toml" || fail "containerd of $name exited" "$d/containerd.log"
    sleep 0.25
  done
  node_ready "$i" || fail "node $name not Ready after 60 s" "$d/kubelet.log"
  # The API server's TaintNodesByCondition admission adds node.kubernetes.io/not-ready at registration; the
  # node lifecycle controller that would remove it is off in this control plane (the simulator drops it too).
  api_call PATCH "/api/v1/nodes/$name" "{\"spec\":{\"taints\":[{\"key\":\"$KIND_LABEL\",\"value\":\"real\",\"effect\":\"NoSchedule\"}]}}" \
    application/merge-patch+json >/dev/null || fail "removing the not-ready taint of $name"
  rn_say "$name Ready in $(elapsed "$t") s"
}

for i in $(seq 0 $((NODES - 1))); do
  if node_running "$i" && node_ready "$i"; then
    rn_say "$(node_name "$i") already running"
    # images added or changed since it started (a no-op when containerd has them all)
    python3 "$ROOT/tools/images/imagetool.py" import --address "$(node_dir "$i")/containerd.sock" --namespace k8s.io \
      >"$(node_dir "$i")/images.log" 2>&1 || fail "importing the images into $(node_name "$i")'s containerd" "$(node_dir "$i")/images.log"
    continue
  fi
  if [ -e "$(node_dir "$i")/containerd.pid" ] || [ -e "$(node_dir "$i")/kubelet.pid" ]; then
    rn_say "$(node_name "$i") is partly running; stopping it first"
    MESHOPS_REALNODE_ONLY="$i" "$ROOT/tools/realnode/down.sh" || fail "stopping the partly running $(node_name "$i")"
  fi
  start_node "$i"
done
alive "$SCHED_DIR/pid" "$SCHED_DIR/config.yaml" || fail "kube-scheduler exited" "$SCHED_DIR/log"

names=""
for i in $(seq 0 $((NODES - 1))); do names="$names $(node_name "$i")"; done
cat >"$STATE/realnode.env" <<EOF
MESHOPS_REAL_NODES=$NODES
MESHOPS_REALNODE_NAMES="${names# }"
MESHOPS_REALNODE_SCHEDULER=$SCHEDULER_NAME
MESHOPS_REALNODE_LABEL=$KIND_LABEL=real
MESHOPS_REALNODE_SCHEDULER_PORT=$SCHED_PORT
MESHOPS_REALNODE_SLOT=$SLOT
EOF
rn_say "ready in $(elapsed "$T0") s (builds/caches $T_PREP s):${names}; pods go there with schedulerName: $SCHEDULER_NAME"
