#!/usr/bin/env bash
# Build the MOSN proxy (mosn.io/mosn@MOSN_VERSION, main package mosn.io/mosn/cmd/mosn/main) from its Go
# module, for the MOSN images of the real-node demo and test (docs/mosn.md). MOSN's go.mod has two
# replace directives, so `go install …@version` refuses it: the module is downloaded through the Go
# proxy and built in a copy of it (its own go.mod and go.sum), outside the checkout.
# Cached in ~/.cache/meshops-sidecarset/mosn-<version> (MESHOPS_MOSN_CACHE); a second call builds nothing.
# Go's module and build caches stay where Go keeps them (GOMODCACHE, GOCACHE).
#
# Attempts, in order (shared/reference go-module-backends.md §3.2), each logged in build.log:
#   1. the local Go (GOTOOLCHAIN=local, CGO_ENABLED=0)
#   2. the same with -ldflags=-checklinkname=0 (Go >= 1.23 refuses some go:linkname references)
#   3. Debian's golang-1.19-go (the Go of MOSN's own CI), installed with apt-get when missing
# and, when the Go proxy refuses modules of the Seata filter (below), 1. and 2. again without that filter.
# Prints the binary's path on its last line.
set -euo pipefail

case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/mosn/build.sh   (build MOSN from its Go module; see docs/mosn.md)"; exit 0 ;;
  *) echo "tools/mosn/build.sh: unexpected argument '$1' (it takes none; see docs/mosn.md)" >&2; exit 64 ;;
esac

MV="${MOSN_VERSION:-v1.6.1}"
[[ "$MV" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "mosn-build: MOSN_VERSION='$MV' is not a tag like v1.6.1" >&2; exit 64; }
CACHE="${MESHOPS_MOSN_CACHE:-$HOME/.cache/meshops-sidecarset/mosn-$MV}"
BIN="$CACHE/bin/mosn"
LOG="$CACHE/build.log"
SRC="$CACHE/src"
# Bump when the way the binary is built changes: a binary without this stamp is rebuilt.
BUILD_ID="gomod-$MV-1"
mkdir -p "$CACHE/bin"

built() { [ -x "$BIN" ] && [ "$(cat "$CACHE/.build-id" 2>/dev/null)" = "$BUILD_ID" ]; }
if built; then
  echo "mosn-build: MOSN $MV already built ($(cat "$CACHE/build-how" 2>/dev/null || echo '?'))"
  echo "$BIN"; exit 0
fi

if [ -z "${MESHOPS_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  export MESHOPS_BUILD_LOCKED=1
  exec flock -o "$CACHE/.build.lock" "$0" "$@"
fi
built && { echo "mosn-build: MOSN $MV already built"; echo "$BIN"; exit 0; }

fail() {
  echo "mosn-build: FAILED: $*" >&2
  [ -f "$LOG" ] && { echo "--- last 30 lines of $LOG ---" >&2; tail -n 30 "$LOG" >&2; }
  exit 1
}
: >"$LOG"
command -v go >/dev/null 2>&1 || fail "no 'go' on PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -modcacherw -buildvcs=false" GOWORK=off
GOPROXY="${GOPROXY:-https://proxy.golang.org}"; GOPROXY="${GOPROXY%,direct}"; export GOPROXY

if [ ! -f "$SRC/.ready" ] || [ "$(cat "$SRC/.ready")" != "$MV" ]; then
  echo "mosn-build: downloading mosn.io/mosn@$MV through $GOPROXY"
  info="$(cd /tmp && go mod download -json "mosn.io/mosn@$MV" 2>>"$LOG")" || fail "go mod download mosn.io/mosn@$MV"
  dir="$(printf '%s' "$info" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$SRC"; cp -r "$dir" "$SRC"; chmod -R u+w "$SRC"
  echo "$MV" >"$SRC/.ready"
fi

LDF="-s -w -X main.Version=$MV"
try() {  # try <label> <go binary> [extra ldflags]
  local label="$1" gobin="$2" extra="${3:-}" start secs
  echo "mosn-build: attempt '$label' with $("$gobin" version) (log: $LOG)"
  echo "=== attempt $label: $("$gobin" version) ldflags: $LDF $extra" >>"$LOG"
  start=$(date +%s)
  # shellcheck disable=SC2086
  if (cd "$SRC" && "$gobin" build -ldflags "$LDF $extra" -o "$BIN.tmp" ./cmd/mosn/main) >>"$LOG" 2>&1; then
    secs=$(( $(date +%s) - start ))
    mv "$BIN.tmp" "$BIN"
    echo "$label, $("$gobin" version | awk '{print $3}'), ${secs}s" >"$CACHE/build-how"
    echo "$BUILD_ID" >"$CACHE/.build-id"
    echo "mosn-build: MOSN $MV built in ${secs}s ($label)"
    return 0
  fi
  echo "mosn-build: attempt '$label' failed after $(( $(date +%s) - start ))s: $(tail -n 1 "$LOG" | tail -c 300)"
  rm -f "$BIN.tmp"; return 1
}

# The Go proxy refuses every module under vimagination.zapto.org ("403 Forbidden: This module version is
# not available"; its vanity host is not reachable either). MOSN needs them only for its Seata stream
# filter (pkg/filter/stream/seata imports vimagination.zapto.org/byteio, which requires .../memio).
# So the copy is built without that filter: its blank import is removed from the main package and each
# refused module is replaced by an empty local module (a go.mod only), never compiled. Recorded in
# build-how and in `mosn version`'s build (main.Version gets the suffix "-noseata").
patch_refused() {
  local i out m
  for i in $(seq 10); do
    out="$(cd "$SRC" && "$1" list -deps ./cmd/mosn/main 2>&1 >/dev/null | tail -n 3)" && return 0
    m="$(printf '%s' "$out" | sed -n 's/^go: \([^@ ]*\)@[^:]*: reading .*403 Forbidden.*/\1/p' | head -n 1)"
    if [ -z "$m" ]; then echo "$out" >>"$LOG"; return 1; fi
    case "$m" in vimagination.zapto.org/*) ;; *) echo "$out" >>"$LOG"; return 1 ;; esac
    echo "mosn-build: the Go proxy refuses $m (403): building without MOSN's Seata filter, $m replaced by an empty module"
    sed -i '\#_ "mosn.io/mosn/pkg/filter/stream/seata"#d' "$SRC/cmd/mosn/main/mosn.go"
    mkdir -p "$SRC/.stub/$m"; printf 'module %s\n\ngo 1.13\n' "$m" >"$SRC/.stub/$m/go.mod"
    (cd "$SRC" && "$1" mod edit -replace "$m=./.stub/$m")
    LDF="-s -w -X main.Version=$MV-noseata"; echo "noseata" >"$SRC/.patched"
  done
  return 1
}

GO="$(command -v go)"
[ -f "$SRC/.patched" ] && LDF="-s -w -X main.Version=$MV-noseata"
try "local go$([ -f "$SRC/.patched" ] && echo ', without the Seata filter')" "$GO" && { echo "$BIN"; exit 0; }
if grep -q 'vimagination.zapto.org/.*403 Forbidden' "$LOG" && patch_refused "$GO"; then
  try "local go, without the Seata filter" "$GO" && { echo "$BIN"; exit 0; }
fi
try "local go, -checklinkname=0" "$GO" "-checklinkname=0" && { echo "$BIN"; exit 0; }
GO119=/usr/lib/go-1.19/bin/go
if [ ! -x "$GO119" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "mosn-build: apt-get install golang-1.19-go"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-1.19-go >>"$LOG" 2>&1 || true
fi
[ -x "$GO119" ] && GOFLAGS="-trimpath -modcacherw" try "Debian golang-1.19-go" "$GO119" && { echo "$BIN"; exit 0; }
fail "MOSN $MV did not build with $("$GO" version | awk '{print $3}') (plain, -checklinkname=0) nor with Debian's Go 1.19"
