#!/usr/bin/env bash
# Offline injection of the examples: Kruise's MOSN SidecarSet into the test-app Deployment, no cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$PWD/.collections" ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
.venv/bin/ansible-playbook playbooks/inject.yml -e sidecarset=examples/sidecarsets/mosn.yaml -e src=examples/manifests -e dest="$out/"
echo
echo "=== $out/test-app.yaml (injected) ==="
cat "$out/test-app.yaml"
