#!/usr/bin/env bash
# Run `ansible-test sanity` offline, from a copy of the checkout placed outside it at
# <tmp>/ansible_collections/meshops/sidecarset with kubernetes.core as a sibling.
# ansible-test wants a get-pip bootstrap from a host we cannot reach: we write a stand-in.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="$ROOT/.venv"
BASE="$(mktemp -d)"
trap 'rm -rf "$BASE"' EXIT
DEST="$BASE/ansible_collections/meshops/sidecarset"
mkdir -p "$DEST"
git ls-files -z --cached --others --exclude-standard | xargs -0 -r cp --parents -t "$DEST" 2>/dev/null || true
mkdir -p "$BASE/ansible_collections/kubernetes"
cp -a "$ROOT/.collections/ansible_collections/kubernetes/core" "$BASE/ansible_collections/kubernetes/core"
( cd "$DEST" && git init -q && git add -A >/dev/null 2>&1 )

pip_version="$("$VENV/bin/python" - <<'PY'
import re, ansible_test, os
path = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
text = open(path).read()
m = re.search(r"pip\s*=\s*['\"]([0-9.]+)['\"]", text)
print(m.group(1) if m else "24.2")
PY
)"
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
shim="$cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$shim" ]; then
  cat > "$shim" <<'PY'
"""Offline stand-in for ansible-test's get-pip bootstrap: ensurepip, then pip install the arguments."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
PY
fi
cd "$DEST"
export PATH="$VENV/bin:$PATH"
ansible-test sanity --local --python 3.11 --color no "$@"
