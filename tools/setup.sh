#!/usr/bin/env bash
# Build the development environment from nothing; idempotent.
#  - .venv (Python 3.11) with the pinned packages of requirements-dev.txt
#  - .collections/ansible_collections/kubernetes/core, taken out of the `ansible` wheel on PyPI
#    (Ansible Galaxy cannot be reached from CI)
#  - .collections/ansible_collections/meshops/sidecarset -> this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="$ROOT/.venv"
TREE="$ROOT/.collections"
ANSIBLE_WHEEL_VERSION="12.3.0"   # bundles kubernetes.core 6.2.0 and requires ansible-core ~=2.19.5

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      PY="$(command -v "$cand")"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

stamp="$VENV/.requirements-dev.sha"
want="$(sha256sum requirements-dev.txt | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating $VENV with $PY"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
else
  echo "setup: $VENV is up to date"
fi

mkdir -p "$TREE/ansible_collections/meshops"
link="$TREE/ansible_collections/meshops/sidecarset"
if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
  rm -rf "$link"; ln -s "$ROOT" "$link"
fi

if [ ! -f "$TREE/ansible_collections/kubernetes/core/MANIFEST.json" ]; then
  echo "setup: extracting kubernetes.core from the ansible==$ANSIBLE_WHEEL_VERSION wheel"
  dl="$(mktemp -d)"
  "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$dl" "ansible==$ANSIBLE_WHEEL_VERSION"
  "$VENV/bin/python" tools/extract_collection.py "$dl"/ansible-*.whl kubernetes/core "$TREE"
  rm -rf "$dl"
fi
echo "setup: ready (.venv, .collections with kubernetes.core $("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$TREE/ansible_collections/kubernetes/core/MANIFEST.json"))"
