#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's `kubernetes`
# source package (see docs/local-control-plane.md). Idempotent: binaries are cached in
# $MESHOPS_CACHE (default ~/.cache/meshops-sidecarset/k8s-1.20.2) and a second call builds nothing.
set -euo pipefail

# Takes no arguments. Refusing them matters: an Ansible inventory that (mis)points at this checkout
# runs every executable in it with --list, which must not start, stop or build anything.
case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/cluster/build.sh   (build kube-apiserver and kube-controller-manager; see docs/local-control-plane.md)"; exit 0 ;;
  *) echo "tools/cluster/build.sh: unexpected argument '$1' (it takes none; see docs/local-control-plane.md)" >&2; exit 64 ;;
esac

CACHE="${MESHOPS_CACHE:-$HOME/.cache/meshops-sidecarset/k8s-1.20.2}"
BIN="$CACHE/bin"
LOG="$CACHE/build.log"
mkdir -p "$CACHE" "$BIN"

# Bump when the way the binaries are built changes: cached binaries without this stamp are rebuilt.
BUILD_ID="k8s-1.20.2+reflect2-1.0.2"
built() { [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ "$(cat "$BIN/.build-id" 2>/dev/null)" = "$BUILD_ID" ]; }
have_runtime() { command -v etcd >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; }
if built && have_runtime; then
  echo "cluster-build: binaries already built in $BIN"
  exit 0
fi

# One build at a time (make cluster-up from two shells, or pytest workers).
if [ -z "${MESHOPS_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  export MESHOPS_BUILD_LOCKED=1
  exec flock -o "$CACHE/.build.lock" "$0" "$@"
fi
if built && have_runtime; then
  echo "cluster-build: binaries already built in $BIN (by a concurrent build)"
  exit 0
fi

fail() {
  echo "cluster-build: FAILED: $*" >&2
  if [ -f "$LOG" ]; then echo "--- last 40 lines of $LOG ---" >&2; tail -n 40 "$LOG" >&2; fi
  exit 1
}

if ! command -v apt-get >/dev/null 2>&1; then
  cat >&2 <<MSG
cluster-build: this machine has no apt-get, so the local control plane (kube-apiserver v1.20.2 built
from Debian's source package) cannot be built here.
Point the tests at another cluster instead, e.g. a kind cluster:
    kind create cluster && export KUBECONFIG=\$HOME/.kube/config && make test
MSG
  exit 2
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# deb-src entry for bookworm main on the same mirror as the existing deb entries
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  echo "cluster-build: adding a deb-src entry for bookworm main"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | $SUDO tee /etc/apt/sources.list.d/meshops-deb-src.sources >/dev/null
  APT_UPDATE=1
fi

need=()
dpkg -s golang-1.19-go >/dev/null 2>&1 || need+=(golang-1.19-go)
dpkg -s rsync >/dev/null 2>&1 || need+=(rsync)
dpkg -s jq >/dev/null 2>&1 || need+=(jq)
dpkg -s etcd-server >/dev/null 2>&1 || need+=(etcd-server)
dpkg -s openssl >/dev/null 2>&1 || need+=(openssl)
dpkg -s curl >/dev/null 2>&1 || need+=(curl)
dpkg -s golang-github-modern-go-reflect2-dev >/dev/null 2>&1 || need+=(golang-github-modern-go-reflect2-dev)
if [ "${#need[@]}" -gt 0 ] || [ -n "${APT_UPDATE:-}" ]; then
  echo "cluster-build: apt-get install ${need[*]:-(update only)}"
  $SUDO apt-get update -qq >"$LOG" 2>&1 || fail "apt-get update"
  if [ "${#need[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >>"$LOG" 2>&1 || fail "apt-get install ${need[*]}"
  fi
  # Debian's etcd package starts its own etcd.service on 2379; we run our own on other ports,
  # but stop it anyway so it does not hold memory.
  (command -v systemctl >/dev/null 2>&1 && $SUDO systemctl disable --now etcd >/dev/null 2>&1) || true
fi

GO_BIN_DIR="$(dirname "$(dpkg -L golang-1.19-go | grep -m1 '/bin/go$')")"
export PATH="$GO_BIN_DIR:$PATH"

SRC="$CACHE/src"
TREE="$SRC/kubernetes-1.20.2"
if built; then
  echo "cluster-build: binaries already built in $BIN"
  exit 0
fi
if [ "$(cat "$BIN/.build-id" 2>/dev/null)" != "$BUILD_ID" ]; then
  rm -f "$BIN/kube-apiserver" "$BIN/kube-controller-manager" "$BIN/.build-id"
fi
if [ ! -d "$TREE" ]; then
  mkdir -p "$SRC"
  echo "cluster-build: downloading Debian source package kubernetes"
  (cd "$SRC" && apt-get source --download-only kubernetes >>"$LOG" 2>&1) || fail "apt-get source kubernetes"
  tarball="$(ls "$SRC"/kubernetes_*.orig.tar.gz | head -n1)"
  (cd "$SRC" && tar xzf "$tarball") || fail "extract $tarball"
fi

# The vendored github.com/modern-go/reflect2 v1.0.1 breaks under Go >= 1.18: built with Go 1.19 the
# apiserver panics (nil pointer in reflect2.(*frozenConfig).Type2, from json-iterator decoding a map)
# on e.g. POST /api/v1/nodes. Use Debian's reflect2 1.0.2 sources instead.
R2_SRC="$(dpkg -L golang-github-modern-go-reflect2-dev | grep -m1 '/github.com/modern-go/reflect2$')"
[ -n "$R2_SRC" ] && [ -f "$R2_SRC/reflect2.go" ] || fail "reflect2 sources not found in golang-github-modern-go-reflect2-dev"
rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
mkdir -p "$TREE/vendor/github.com/modern-go/reflect2"
cp -r "$R2_SRC/." "$TREE/vendor/github.com/modern-go/reflect2/"
rm -rf "$TREE/vendor/github.com/modern-go/reflect2/"*_test.go "$TREE/vendor/github.com/modern-go/reflect2/test"*

export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20
cd "$TREE"
for what in kube-apiserver kube-controller-manager; do
  if [ ! -x "$BIN/$what" ]; then
    echo "cluster-build: building $what (about 5 minutes cold on 2 cores; log: $LOG)"
    start=$(date +%s)
    make WHAT="cmd/$what" >>"$LOG" 2>&1 || fail "make WHAT=cmd/$what"
    cp "_output/bin/$what" "$BIN/$what.tmp" && mv "$BIN/$what.tmp" "$BIN/$what"
    echo "cluster-build: $what built in $(( $(date +%s) - start )) s"
  fi
done
echo "$BUILD_ID" >"$BIN/.build-id"
# The build tree is 1.5 GB (+350 MB of sources); keep only the binaries and the source tarball.
cd "$CACHE"
rm -rf "$TREE"
"$BIN/kube-apiserver" --version
