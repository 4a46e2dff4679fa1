#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's `kubernetes`
# source package (see docs/local-control-plane.md). Idempotent: binaries are cached in
# $MESHOPS_CACHE (default ~/.cache/meshops-sidecarset/k8s-1.20.2) and a second call builds nothing.
set -euo pipefail

CACHE="${MESHOPS_CACHE:-$HOME/.cache/meshops-sidecarset/k8s-1.20.2}"
BIN="$CACHE/bin"
LOG="$CACHE/build.log"
mkdir -p "$CACHE" "$BIN"

if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
  echo "cluster-build: binaries already built in $BIN"
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
if [ ! -d "$TREE" ]; then
  mkdir -p "$SRC"
  echo "cluster-build: downloading Debian source package kubernetes"
  (cd "$SRC" && apt-get source --download-only kubernetes >>"$LOG" 2>&1) || fail "apt-get source kubernetes"
  tarball="$(ls "$SRC"/kubernetes_*.orig.tar.gz | head -n1)"
  (cd "$SRC" && tar xzf "$tarball") || fail "extract $tarball"
fi

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
# The build tree is 1.5 GB; keep only the binaries.
rm -rf "$TREE/_output" 
"$BIN/kube-apiserver" --version
