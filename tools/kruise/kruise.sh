#!/usr/bin/env bash
# The real OpenKruise kruise-manager (SidecarSet controller + pod/SidecarSet webhooks) as the reference of the
# conformance suite (tests/conformance, docs/kruise-conformance.md), out of cluster, on a control plane of its own.
#
#   tools/kruise/kruise.sh build    build kruise-manager KRUISE_VERSION from its Go module (cached; a second run builds nothing)
#   tools/kruise/kruise.sh up       build, start a control plane of its own (tools/cluster/up.sh with the KRUISE_* ports below),
#                                   install the CRD and webhook configurations from the module's config/, start kruise-manager
#                                   and wait until its webhooks answer; writes $KRUISE_CLUSTER_DIR/kruise.env
#   tools/kruise/kruise.sh down     stop kruise-manager, then that control plane (its etcd goes, so do the webhook configurations)
#   tools/kruise/kruise.sh remove   Kruise uninstalled, the control plane kept: its webhook configurations deleted, kruise-manager
#                                   stopped; the CRDs and SidecarSets stay (docs/kruise-migration.md); `up` installs it again
#   tools/kruise/kruise.sh status   exit 0 when kruise-manager and its control plane run
#   tools/kruise/kruise.sh built    exit 0 when kruise-manager is built (nothing is built)
#
# NEVER point it at the shared test cluster: its pod webhook (failurePolicy Fail) fails every pod creation while it is down.
#
# Environment (defaults): KRUISE_VERSION (versions.env), KRUISE_SUM, KRUISE_CACHE (~/.cache/meshops-sidecarset/kruise-<version>),
# KRUISE_CLUSTER_DIR (/tmp/kruise-cluster), KRUISE_APISERVER_PORT (18443), KRUISE_ETCD_PORT (25790), KRUISE_ETCD_PEER_PORT (25800),
# KRUISE_KCM_PORT (22257), KRUISE_WEBHOOK_PORT (19876), KRUISE_METRICS_PORT (18080), KRUISE_HEALTH_PORT (18000),
# K8S_VERSION (the control plane's; tools/cluster/versions.env), KRUISE_V (klog level, 2).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tools/kruise"
# shellcheck source=tools/kruise/versions.env
. "$HERE/versions.env"
KVER="${KRUISE_VERSION:-$KRUISE_VERSION_DEFAULT}"
if [ "$KVER" = "$KRUISE_VERSION_DEFAULT" ]; then KSUM="${KRUISE_SUM:-$KRUISE_SUM_DEFAULT}"; else KSUM="${KRUISE_SUM:-}"; fi
CACHE="${KRUISE_CACHE:-$HOME/.cache/meshops-sidecarset/kruise-$KVER}"
BIN="$CACHE/bin/kruise-manager"
SRC="$CACHE/src"
LOG="$CACHE/build.log"
BUILD_ID="gomod-$KVER-1"      # bump when the way the binary is built changes

CDIR="${KRUISE_CLUSTER_DIR:-/tmp/kruise-cluster}"
APORT="${KRUISE_APISERVER_PORT:-18443}"
EPORT="${KRUISE_ETCD_PORT:-25790}"
EPEER="${KRUISE_ETCD_PEER_PORT:-25800}"
KPORT="${KRUISE_KCM_PORT:-22257}"
WPORT="${KRUISE_WEBHOOK_PORT:-19876}"
MPORT="${KRUISE_METRICS_PORT:-18080}"
HPORT="${KRUISE_HEALTH_PORT:-18000}"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3

say() { echo "kruise: $*"; }
die() { echo "kruise: FAILED: $*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------------ build
built() { [ -x "$BIN" ] && [ "$(cat "$CACHE/bin/.build-id" 2>/dev/null)" = "$BUILD_ID" ] && [ -d "$SRC/config" ]; }

build() {
  mkdir -p "$CACHE/bin"
  if built; then say "kruise-manager $KVER already built: $BIN"; return 0; fi
  # one build at a time
  exec 9>"$CACHE/.build.lock"; flock 9
  if built; then say "kruise-manager $KVER already built: $BIN"; return 0; fi
  command -v go >/dev/null 2>&1 || die "no 'go' on PATH"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -modcacherw" GOWORK=off
  GOPROXY="${GOPROXY:-https://proxy.golang.org}"; export GOPROXY="${GOPROXY%,direct}"
  # The checksum DB has no record of github.com/openkruise/kruise (404): verify the pinned h1: hash ourselves.
  export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/openkruise/kruise"
  : >"$LOG"
  local start info dir sum
  start=$(date +%s)
  if listed="$(cd /tmp && go list -m -versions github.com/openkruise/kruise 2>>"$LOG")"; then
    say "versions listed by the proxy: ${listed#github.com/openkruise/kruise } (building $KVER)"
  else
    say "the proxy does not list github.com/openkruise/kruise versions (see $LOG); building the pinned $KVER"
  fi
  info="$(cd /tmp && go mod download -json "github.com/openkruise/kruise@$KVER" 2>>"$LOG")" \
    || { tail -20 "$LOG" >&2; printf '%s\n' "$info" >&2; die "go mod download github.com/openkruise/kruise@$KVER"; }
  dir="$(printf '%s' "$info" | "$PY" -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')"
  sum="$(printf '%s' "$info" | "$PY" -c 'import json,sys;print(json.load(sys.stdin)["Sum"])')"
  [ -n "$KSUM" ] || die "no pinned checksum for $KVER: set KRUISE_SUM (the module's h1: hash is $sum)"
  [ "$sum" = "$KSUM" ] || die "github.com/openkruise/kruise@$KVER has hash $sum, pinned $KSUM"
  say "building kruise-manager $KVER in a copy of $dir (log: $LOG)"
  rm -rf "$SRC" "$SRC.tmp"; cp -r "$dir" "$SRC.tmp"; chmod -R u+w "$SRC.tmp"; mv "$SRC.tmp" "$SRC"
  # as its Dockerfile: CGO_ENABLED=0 go build main.go at the module root, its own go.mod/go.sum and replaces
  if ! (cd "$SRC" && go build -ldflags "-s -w" -o "$BIN.tmp" . ) >>"$LOG" 2>&1; then
    if grep -q "missing go.sum entry" "$LOG"; then
      say "missing go.sum entries under $(go env GOVERSION): go mod tidy in the copy, then build again"
      (cd "$SRC" && go mod tidy && go build -ldflags "-s -w" -o "$BIN.tmp" . ) >>"$LOG" 2>&1 \
        || { rm -f "$BIN.tmp"; tail -40 "$LOG" >&2; die "go build (after go mod tidy)"; }
    else
      rm -f "$BIN.tmp"; tail -40 "$LOG" >&2; die "go build github.com/openkruise/kruise@$KVER"
    fi
  fi
  mv "$BIN.tmp" "$BIN"
  echo "$BUILD_ID" >"$CACHE/bin/.build-id"
  local secs=$(( $(date +%s) - start ))
  echo "$(date -u +%FT%TZ) kruise-manager $KVER $secs s $(go env GOVERSION)" >>"$CACHE/build-times"
  say "kruise-manager $KVER built in $secs s: $BIN"
}

# ------------------------------------------------------------------------------------------------ up / down
cluster() {  # cluster up|down: the control plane of its own (tools/cluster, never the shared .cluster)
  MESHOPS_CLUSTER_DIR="$CDIR" MESHOPS_APISERVER_PORT="$APORT" MESHOPS_ETCD_PORT="$EPORT" MESHOPS_ETCD_PEER_PORT="$EPEER" \
    MESHOPS_KCM_PORT="$KPORT" "$ROOT/tools/cluster/$1.sh"
}

guard() {  # refuse the shared test cluster's state dir and ports
  case "$(cd "$(dirname "$CDIR")" 2>/dev/null && pwd)/$(basename "$CDIR")" in
    "$ROOT/.cluster"|"$ROOT/.cluster/") die "KRUISE_CLUSTER_DIR=$CDIR is the shared test cluster's state dir" ;;
  esac
  local p
  for p in "$APORT" "$EPORT" "$EPEER" "$KPORT"; do
    case "$p" in 16443|23790|23800|20257) die "port $p belongs to the shared test cluster" ;; esac
  done
}

manager_pid() {  # the pid of the kruise-manager we started, if it still runs
  local pid
  pid="$(cat "$CDIR/kruise-manager.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kruise-manager" \
    && echo "$pid"
}

stop_manager() {
  local pid
  pid="$(manager_pid || true)"
  if [ -z "$pid" ]; then rm -f "$CDIR/kruise-manager.pid"; return 0; fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "kruise-manager (pid $pid) did not stop after 10 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  kill -0 "$pid" 2>/dev/null && die "kruise-manager (pid $pid) is still running"
  rm -f "$CDIR/kruise-manager.pid"
  say "stopped kruise-manager (pid $pid)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() {
  guard
  build
  local out
  out="$(cluster up 2>&1)" || { printf '%s\n' "$out" >&2; die "tools/cluster/up.sh (MESHOPS_CLUSTER_DIR=$CDIR)"; }
  printf '%s\n' "$out"
  if grep -q "already running" <<<"$out" && [ -n "$(manager_pid || true)" ]; then
    say "kruise-manager already running (pid $(manager_pid)), webhook https://127.0.0.1:$WPORT"
    return 0
  fi
  stop_manager    # a control plane (re)started under it: start afresh
  for p in "$WPORT" "$MPORT" "$HPORT"; do port_open "$p" && die "port $p is in use (KRUISE_WEBHOOK_PORT/METRICS_PORT/HEALTH_PORT)"; done
  local kubeconfig="$CDIR/kubeconfig" start
  start=$(date +%s%N)
  "$PY" "$HERE/install.py" apply --config "$SRC/config" --kubeconfig "$kubeconfig"
  mkdir -p "$CDIR/kruise-certs"
  # Out of cluster: WEBHOOK_HOST makes it write its certs to WEBHOOK_CERT_DIR (filesystem writer, IP SAN 127.0.0.1)
  # and rewrite every webhook clientConfig to https://127.0.0.1:$WPORT<path> (pkg/webhook/util). The webhook server
  # binds 0.0.0.0 (hard-coded in main.go); metrics, health and pprof are kept on 127.0.0.1 or off.
  # Feature gates: KruiseDaemon=false (no kruise-daemon: SidecarSet upgrades are image patches; this also turns
  # off the daemon-backed gates), WorkloadSpread=false and PodUnavailableBudgetDeleteGate=false (their CRDs are
  # not installed; the pod webhook would look them up); the SidecarSet gates keep Kruise's defaults
  # (PodWebhook on, EnableSortSidecarContainerByName off, SidecarSetPatchPodMetadataDefaultsAllowed off).
  KUBECONFIG="$kubeconfig" POD_NAMESPACE=kruise-system WEBHOOK_HOST=127.0.0.1 WEBHOOK_PORT="$WPORT" \
    WEBHOOK_CERT_DIR="$CDIR/kruise-certs" WEBHOOK_CERT_WRITER=fs \
    setsid nohup "$BIN" --enable-leader-election=false --metrics-addr="127.0.0.1:$MPORT" \
      --health-probe-addr="127.0.0.1:$HPORT" --enable-pprof=false \
      --feature-gates=KruiseDaemon=false,WorkloadSpread=false,PodUnavailableBudgetDeleteGate=false \
      --v="${KRUISE_V:-2}" >"$CDIR/kruise-manager.log" 2>&1 </dev/null &
  echo $! >"$CDIR/kruise-manager.pid"
  if ! "$PY" "$HERE/install.py" wait --kubeconfig "$kubeconfig" --health "http://127.0.0.1:$HPORT/readyz" --timeout 120; then
    echo "--- last 40 lines of $CDIR/kruise-manager.log ---" >&2; tail -n 40 "$CDIR/kruise-manager.log" >&2
    stop_manager
    die "kruise-manager did not become ready"
  fi
  cat >"$CDIR/kruise.env" <<ENV
export KUBECONFIG="$kubeconfig"
export K8S_AUTH_KUBECONFIG="$kubeconfig"
KRUISE_VERSION=$KVER
KRUISE_WEBHOOK=https://127.0.0.1:$WPORT
KRUISE_MANAGER_PID=$(cat "$CDIR/kruise-manager.pid")
ENV
  say "kruise-manager $KVER ready in $(( ($(date +%s%N) - start) / 1000000 )) ms (pid $(cat "$CDIR/kruise-manager.pid"), log $CDIR/kruise-manager.log)"
  say "server: $(KUBECONFIG="$kubeconfig" kubectl version -o json 2>/dev/null | "$PY" -c 'import json,sys;print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' 2>/dev/null || echo '?')"
  say "use it with: . $CDIR/kruise.env"
}

down() {
  guard
  stop_manager
  cluster down
  rm -f "$CDIR/kruise.env"
  local left=""
  for p in "$WPORT" "$MPORT" "$HPORT" "$APORT" "$EPORT"; do port_open "$p" && left="$left $p"; done
  [ -z "$left" ] || die "ports still open:$left"
  say "down (no kruise-manager, control plane in $CDIR stopped; its etcd, and with it the CRDs and webhook configurations, is gone)"
}

remove() {  # Kruise uninstalled, its control plane kept: webhook configurations deleted, kruise-manager stopped
  guard
  local kubeconfig="$CDIR/kubeconfig"
  port_open "$APORT" || die "no control plane on port $APORT (tools/kruise/kruise.sh up first)"
  # the configurations first: with failurePolicy Fail, a pod created between the manager's stop and their deletion fails
  "$PY" "$HERE/install.py" remove --kubeconfig "$kubeconfig"
  stop_manager
  "$PY" "$HERE/install.py" remove --kubeconfig "$kubeconfig"   # in case its webhook controller wrote one back meanwhile
  say "removed: no kruise-manager, no webhook configurations; the control plane, the CRDs and their objects stay (tools/kruise/kruise.sh up installs it again)"
}

status() {
  local pid
  pid="$(manager_pid || true)"
  [ -n "$pid" ] || { say "kruise-manager not running"; return 1; }
  port_open "$APORT" || { say "kruise-manager runs (pid $pid) but its control plane on $APORT does not"; return 1; }
  say "kruise-manager running (pid $pid), apiserver https://127.0.0.1:$APORT, webhook https://127.0.0.1:$WPORT"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  remove) remove ;;
  status) status ;;
  built) built && say "kruise-manager $KVER built: $BIN" || { say "kruise-manager $KVER not built (tools/kruise/kruise.sh build)"; exit 1; } ;;
  *) echo "usage: tools/kruise/kruise.sh build|built|up|down|remove|status" >&2; exit 64 ;;
esac
