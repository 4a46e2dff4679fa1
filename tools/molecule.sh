#!/usr/bin/env bash
# Run the molecule "default" scenario (extensions/molecule/default) against the local control plane.
# Offline: prerun is off; the collections tree .collections holds this checkout and kubernetes.core.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.collections"
export K8S_AUTH_KUBECONFIG="${K8S_AUTH_KUBECONFIG:-$ROOT/.cluster/kubeconfig}"
export PYTHONWARNINGS=ignore
export PATH="$ROOT/.venv/bin:$PATH"
tools/cluster/up.sh >/dev/null
exec molecule test -s "${1:-default}"
