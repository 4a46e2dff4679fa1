#!/usr/bin/env bash
# Build the local control plane's Kubernetes binaries of K8S_VERSION (tools/cluster/versions.env) with
# `go build` from published Go modules (docs/local-control-plane.md): a wrapper module that requires
# k8s.io/kubernetes@K8S_VERSION and replaces each staging module it requires at v0.0.0 with the
# published k8s.io/<name>@v0.<minor>.<patch>. Version-stamped as upstream's hack/lib/version.sh does.
# Cached in $MESHOPS_CACHE (~/.cache/meshops-sidecarset/k8s-<version>); a second call builds nothing.
# Go's module and build caches stay where Go keeps them (GOMODCACHE, GOCACHE), outside the checkout.
#
# Environment: K8S_VERSION, MESHOPS_CACHE, MESHOPS_K8S_BINARIES (default: "kube-apiserver
# kube-controller-manager"; the real-node tooling adds kubelet and kube-scheduler).
set -euo pipefail

# Takes no arguments. Refusing them matters: an Ansible inventory that (mis)points at this checkout
# runs every executable in it with --list, which must not start, stop or build anything.
case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/cluster/build.sh   (build the control plane binaries; see docs/local-control-plane.md)"; exit 0 ;;
  *) echo "tools/cluster/build.sh: unexpected argument '$1' (it takes none; see docs/local-control-plane.md)" >&2; exit 64 ;;
esac

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tools/cluster/versions.env
. "$ROOT/tools/cluster/versions.env"
KV="${K8S_VERSION:-$K8S_VERSION_DEFAULT}"
if ! [[ "$KV" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "cluster-build: K8S_VERSION='$KV' is not a release version like v1.36.3" >&2; exit 64
fi
MINOR="${BASH_REMATCH[1]}"
SV="v0.${KV#v1.}"                                   # v1.36.3 -> v0.36.3
CACHE="${MESHOPS_CACHE:-$HOME/.cache/meshops-sidecarset/k8s-$KV}"
BIN="$CACHE/bin"
LOG="$CACHE/build.log"
WRAP="$CACHE/wrapper"
WANT="${MESHOPS_K8S_BINARIES:-kube-apiserver kube-controller-manager}"
mkdir -p "$CACHE" "$BIN"

# Bump when the way the binaries are built changes: a binary without this stamp is rebuilt.
BUILD_ID="gomod-$KV-1"
built_one() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.build-id" 2>/dev/null)" = "$BUILD_ID" ]; }
all_built() { local b; for b in $WANT; do built_one "$b" || return 1; done; }
have_runtime() { command -v etcd >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; }
if all_built && have_runtime; then
  echo "cluster-build: $KV binaries already built in $BIN"
  exit 0
fi

# One build at a time (make cluster-up from two shells, or pytest workers).
if [ -z "${MESHOPS_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  export MESHOPS_BUILD_LOCKED=1
  exec flock -o "$CACHE/.build.lock" "$0" "$@"
fi

fail() {
  echo "cluster-build: FAILED: $*" >&2
  if [ -f "$LOG" ]; then echo "--- last 40 lines of $LOG ---" >&2; tail -n 40 "$LOG" >&2; fi
  cat >&2 <<MSG
cluster-build: nothing was started. To run the tests against an existing cluster instead:
    export KUBECONFIG=/path/to/kubeconfig && make test
MSG
  exit 1
}
: >>"$LOG"

# ---------------------------------------------------------------- runtime packages (Debian)
need=()
for p in etcd-server openssl curl; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ "${#need[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cluster-build: this machine has no apt-get to install ${need[*]}" >&2; fail "missing ${need[*]}"
  fi
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "cluster-build: apt-get install ${need[*]}"
  $SUDO apt-get update -qq >>"$LOG" 2>&1 || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >>"$LOG" 2>&1 || fail "apt-get install ${need[*]}"
  # Debian's etcd package starts its own etcd.service on 2379; we run our own on other ports.
  (command -v systemctl >/dev/null 2>&1 && $SUDO systemctl disable --now etcd >/dev/null 2>&1) || true
  pkill -x etcd 2>/dev/null || true
fi
all_built && { echo "cluster-build: $KV binaries already built in $BIN"; exit 0; }

# ---------------------------------------------------------------- Go toolchain
command -v go >/dev/null 2>&1 || fail "no 'go' on PATH (Go >= 1.26 is needed to build Kubernetes $KV from its modules)"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -modcacherw" GOWORK=off
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
GOPROXY="${GOPROXY%,direct}"      # a module the proxy lacks fails fast instead of trying git
export GOPROXY

# ---------------------------------------------------------------- wrapper module
if [ ! -f "$WRAP/.ready" ] || [ "$(cat "$WRAP/.ready")" != "$BUILD_ID" ]; then
  echo "cluster-build: resolving k8s.io/kubernetes@$KV and its staging modules through $GOPROXY"
  rm -rf "$WRAP"; mkdir -p "$WRAP"
  info="$(cd /tmp && go mod download -json "k8s.io/kubernetes@$KV" 2>>"$LOG")" \
    || fail "go mod download k8s.io/kubernetes@$KV (is $KV a published version? go list -m -versions k8s.io/kubernetes)"
  GOMOD="$(printf '%s' "$info" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')"
  (
    cd "$WRAP"
    go mod init kbuild.local >>"$LOG" 2>&1
    go mod edit -go="$(awk '/^go /{print $2; exit}' "$GOMOD")" -require="k8s.io/kubernetes@$KV"
    gd="$(awk '/^godebug /{print $2; exit}' "$GOMOD")"
    [ -z "$gd" ] || go mod edit -godebug="$gd"
    # every staging module k8s.io/kubernetes requires at v0.0.0 gets its published twin
    awk '/^\t(k8s\.io\/[a-z0-9-]+) v0\.0\.0$/{print $1}' "$GOMOD" | sort -u | while read -r m; do
      go mod edit -replace="$m=$m@$SV"
    done
    tools=""
    for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do tools="$tools k8s.io/kubernetes/cmd/$b@$KV"; done
    # shellcheck disable=SC2086
    go get -tool $tools >>"$LOG" 2>&1
  ) || fail "resolving the wrapper module for $KV in $WRAP"
  echo "$BUILD_ID" >"$WRAP/.ready"
fi

COMMIT="$(cd /tmp && go mod download -json "k8s.io/kubernetes@$KV" 2>/dev/null | python3 -c 'import json,sys;print(json.load(sys.stdin).get("Origin",{}).get("Hash",""))' || true)"
DATE="$(cd "$WRAP" && date -u -r go.mod +%Y-%m-%dT%H:%M:%SZ)"
LDF="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF="$LDF -X '$p.gitVersion=$KV' -X '$p.gitMajor=1' -X '$p.gitMinor=$MINOR' -X '$p.gitCommit=$COMMIT' -X '$p.gitTreeState=clean' -X '$p.buildDate=$DATE'"
done

for b in $WANT; do
  built_one "$b" && continue
  echo "cluster-build: building $b $KV from Go modules (log: $LOG)"
  start=$(date +%s)
  (cd "$WRAP" && go build -tags selinux,notest,grpcnotrace -ldflags "$LDF" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b") >>"$LOG" 2>&1 \
    || { rm -f "$BIN/$b.tmp"; fail "go build k8s.io/kubernetes/cmd/$b@$KV"; }
  mv "$BIN/$b.tmp" "$BIN/$b"
  echo "$BUILD_ID" >"$BIN/.$b.build-id"
  secs=$(( $(date +%s) - start ))
  echo "$b $secs" >>"$CACHE/build-times"
  echo "cluster-build: $b built in $secs s"
done
for b in $WANT; do printf "cluster-build: %s " "$b"; "$BIN/$b" --version 2>/dev/null | head -n1; done
