# shellcheck shell=bash
# Shared by tools/realnode/up.sh and down.sh (docs/real-nodes.md): names, paths and helpers of the real
# nodes (containerd + kubelet) of one local control plane, whose state dir is MESHOPS_CLUSTER_DIR.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${MESHOPS_CLUSTER_DIR:-$ROOT/.cluster}"
STATE="$(mkdir -p "$STATE" && cd "$STATE" && pwd)"
# shellcheck source=tools/cluster/versions.env
. "$ROOT/tools/cluster/versions.env"
KV="${K8S_VERSION:-$K8S_VERSION_DEFAULT}"
K8S_BIN="${MESHOPS_CACHE:-$HOME/.cache/meshops-sidecarset/k8s-$KV}/bin"
CRICTL_VERSION="${MESHOPS_CRICTL_VERSION:-v1.37.0}"
CRICTL="$HOME/.cache/meshops-sidecarset/tools/crictl-$CRICTL_VERSION/crictl"
KUBECONFIG_FILE="$STATE/kubeconfig"
NODE_PREFIX="${MESHOPS_REALNODE_PREFIX:-realnode-}"
KIND_LABEL="meshops.io/node-kind"
SCHEDULER_NAME="meshops-real"      # pods ask for a real node with spec.schedulerName: meshops-real
REGION="real"
SCHED_DIR="$STATE/realnode-scheduler"

# One "slot" per cluster state dir, so that two control planes on one machine (the tests' and a developer's)
# get different interfaces and subnets: node i of slot s has the pod subnet 10.(88+i).s.0/24 on its own bridge,
# whose address 10.(88+i).s.1 is also the node's InternalIP (kubectl exec/logs reach the kubelet there; the
# kernel has no dummy interfaces here). The simulator's invented addresses are 10.100-249.x.
SLOT="${MESHOPS_REALNODE_SLOT:-$(( $(printf '%s' "$STATE" | cksum | cut -d' ' -f1) % 250 ))}"
MAX_NODES=8

rn_say() { echo "realnode: $*"; }

node_name() { echo "$NODE_PREFIX$1"; }
node_dir() { echo "$STATE/realnode-$1"; }
pod_subnet() { echo "10.$((88 + $1)).$SLOT.0/24"; }
node_ip() { echo "10.$((88 + $1)).$SLOT.1"; }
bridge_if() { echo "mrb${SLOT}n$1"; }
zone_of() { echo "real-zone-$1"; }

token() { cut -d, -f1 "$STATE/tokens.csv"; }
api_url() {
  grep -m1 'server:' "$KUBECONFIG_FILE" 2>/dev/null | awk '{print $2}'
}
api_get() { curl -sk --max-time 5 -H "Authorization: Bearer $(token)" "$(api_url)$1"; }
api_call() {  # api_call METHOD PATH [BODY [CONTENT-TYPE]]
  curl -sk --max-time 10 -X "$1" -H "Authorization: Bearer $(token)" -H "Content-Type: ${4:-application/json}" \
    ${3:+--data "$3"} "$(api_url)$2"
}
api_ready() { [ -f "$KUBECONFIG_FILE" ] && [ -f "$STATE/tokens.csv" ] && [ "$(api_get /readyz)" = "ok" ]; }

pid_of() { cat "$1" 2>/dev/null; }
# alive <pidfile> <pattern>: the recorded pid runs and its command line contains pattern
alive() {
  local pid
  pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}
group_alive() { [ -n "$(ps -o pid= -g "$1" 2>/dev/null)" ]; }

start_detached() {  # start_detached <pidfile> <logfile> <command...>: own session, pid = process group
  local pidfile="$1" log="$2"; shift 2
  : >"$log"
  setsid nohup "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

stop_group() {  # stop_group <pidfile> <what>: TERM the process group, up to 15 s, then KILL
  local pid
  pid="$(pid_of "$1")"
  [ -n "$pid" ] || { rm -f "$1"; return 0; }
  if group_alive "$pid" || kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 150); do group_alive "$pid" || kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if group_alive "$pid" || kill -0 "$pid" 2>/dev/null; then
      rn_say "$2 (pid $pid) did not stop after 15 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
      for _ in $(seq 1 50); do group_alive "$pid" || kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rn_say "stopped $2 (pid $pid)"
  fi
  rm -f "$1"
}

# pids whose command line mentions a path (kubelet, containerd and the shims of one node all name its dir),
# and all their descendants (a shim's containers); never this shell or the scan itself
pids_mentioning() {
  python3 - "$1" "$$" <<'PY'
import os, sys
needle, me = sys.argv[1].encode(), {os.getpid(), os.getppid(), int(sys.argv[2])}
parent, hits = {}, set()
for name in os.listdir("/proc"):
    if not name.isdigit():
        continue
    pid = int(name)
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            parent[pid] = int(handle.read().rsplit(b")", 1)[1].split()[1])
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            if needle in handle.read().replace(b"\0", b" ") and pid not in me:
                hits.add(pid)
    except (OSError, ValueError, IndexError):
        continue
found = set(hits)
grown = True
while grown:
    grown = False
    for pid, ppid in parent.items():
        if ppid in found and pid not in found and pid not in me:
            found.add(pid)
            grown = True
print("\n".join(str(p) for p in sorted(found)))
PY
}

# mount points at or below a directory, deepest first (octal escapes of /proc/mounts decoded)
mounts_below() {
  awk -v d="$1" '{ p = $2; gsub(/\\040/, " ", p); if (p == d || index(p, d "/") == 1) print length(p) "\t" p }' /proc/mounts \
    | sort -rn | cut -f2-
}

crictl_node() {  # crictl_node <i> <args...>
  local d
  d="$(node_dir "$1")"; shift
  "$CRICTL" --runtime-endpoint "unix://$d/containerd.sock" --image-endpoint "unix://$d/containerd.sock" --timeout 20s "$@"
}

cgroup_v1() { [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" != "cgroup2fs" ]; }
