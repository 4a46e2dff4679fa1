#!/usr/bin/env bash
# Build the images of the real-node tests locally, without a registry (docs/real-nodes.md): the reference
# mesh sidecar (v1, v2, empty, broken), the demo app and the pause image, with Debian's debootstrap, umoci,
# skopeo and gcc (installed here when missing). Cached in ~/.cache/meshops-sidecarset/images
# (MESHOPS_IMAGES_CACHE), keyed by a hash of the inputs: a second call builds nothing.
# Prints one JSON line (built, archive, seconds, steps). Import into a containerd with
#   python3 tools/images/imagetool.py import --address <containerd socket>
set -euo pipefail

# Takes no arguments. Refusing them matters: an Ansible inventory that (mis)points at this checkout
# runs every executable in it with --list, which must not start, stop or build anything.
case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: tools/images/build.sh   (build the real-node test images; see docs/real-nodes.md)"; exit 0 ;;
  *) echo "tools/images/build.sh: unexpected argument '$1' (it takes none; see docs/real-nodes.md)" >&2; exit 64 ;;
esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"

need=()
for p in umoci skopeo debootstrap gcc libc6-dev containerd; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ "${#need[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || { echo "images: FAILED: no apt-get to install ${need[*]}" >&2; exit 2; }
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "images: apt-get install ${need[*]}" >&2
  $SUDO apt-get update -qq >&2 || { echo "images: FAILED: apt-get update" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 \
    || { echo "images: FAILED: apt-get install ${need[*]}" >&2; exit 1; }
fi
exec python3 "$ROOT/tools/images/imagetool.py" build
