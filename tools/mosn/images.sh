#!/usr/bin/env bash
# Build the MOSN images meshops/mosn:v1 and :v2 (docs/mosn.md): MOSN from its Go module (tools/mosn/build.sh,
# cached), a staging context in MOSN's cache (the binary and one config per build from
# examples/mosn/mosn.json.in), then tools/images (`imagetool.py build --set mosn`, cached by a hash of the
# inputs: a second call builds nothing). The empty twin is the reference sidecar's meshops/mesh-sidecar:empty
# (tools/images/build.sh). Import into a real node's containerd with
#   python3 tools/images/imagetool.py --set mosn import --address <containerd socket>
set -euo pipefail
case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/mosn/images.sh   (build the MOSN images; see docs/mosn.md)"; exit 0 ;;
  *) echo "tools/mosn/images.sh: unexpected argument '$1' (it takes none; see docs/mosn.md)" >&2; exit 64 ;;
esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
"$ROOT/tools/images/build.sh" >/dev/null           # Debian tools and the shared base (and the empty image)
BIN="$("$ROOT/tools/mosn/build.sh" | tail -n 1)"
CTX="${MESHOPS_MOSN_CONTEXT:-$(dirname "$(dirname "$BIN")")/context}"
mkdir -p "$CTX"
cmp -s "$BIN" "$CTX/mosn" || cp "$BIN" "$CTX/mosn"
for b in v1 v2; do
  sed "s/@BUILD@/$b/g" "$ROOT/examples/mosn/mosn.json.in" >"$CTX/mosn-$b.json.tmp"
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$CTX/mosn-$b.json.tmp" \
    || { echo "mosn-images: examples/mosn/mosn.json.in does not give valid JSON for $b" >&2; exit 1; }
  if cmp -s "$CTX/mosn-$b.json.tmp" "$CTX/mosn-$b.json"; then rm "$CTX/mosn-$b.json.tmp"; else mv "$CTX/mosn-$b.json.tmp" "$CTX/mosn-$b.json"; fi
done
MESHOPS_MOSN_CONTEXT="$CTX" exec python3 "$ROOT/tools/images/imagetool.py" --set mosn build
