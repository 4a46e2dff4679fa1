"""The seed's MOSN proxy hot-upgraded in place under traffic on a real kubelet node (issue 15, docs/mosn.md).

Runs the scenario of ``make demo MESH=mosn`` (examples/mosn/demo.py) with shorter traffic: the seed's SidecarSet
with its ``postStar`` typo reported, the corrected one injected into the seed's test-app on a real node, traffic
through MOSN to the pod IP (keep-alive and new connections), ``playbooks/rollout.yml`` v1 -> v2, and the demo's own
checks (0 failed requests, same uid, restarts +2, v2 answering, the old twin on the empty image, v1 then v2).
Skipped, with the reason, where the cluster has no real node (docs/real-nodes.md).
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# as tests/integration/conftest.py (not imported from it: with tests/unit in the same run "conftest" is another module)
CLUSTER_DIR = Path(os.environ.get("MESHOPS_CLUSTER_DIR", ROOT / ".cluster"))
KIND_LABEL = "meshops.io/node-kind"


def test_mosn_hot_upgrade_under_traffic_on_a_real_node(kube, tmp_path):
    nodes = kube.ready_nodes(KIND_LABEL + "=real")
    if not nodes:
        pytest.skip("no real node (label %s=real) in this cluster: MOSN runs only on a real kubelet "
                    "(REAL_NODES=1 on the local control plane, docs/real-nodes.md)" % KIND_LABEL)
    build = subprocess.run([str(ROOT / "tools" / "mosn" / "images.sh")], capture_output=True, text=True, timeout=3000, check=False)
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    sockets = sorted(CLUSTER_DIR.glob("realnode-*/containerd.sock"))
    if not sockets:
        pytest.skip("the real nodes of this cluster are not this checkout's (no %s/realnode-*/containerd.sock): "
                    "their containerd cannot be given the MOSN images" % CLUSTER_DIR)
    for sock in sockets:
        imp = subprocess.run([sys.executable, str(ROOT / "tools" / "images" / "imagetool.py"), "--set", "mosn", "import",
                              "--address", str(sock), "--namespace", "k8s.io"], capture_output=True, text=True, timeout=600, check=False)
        assert imp.returncode == 0, (imp.stdout + imp.stderr)[-4000:]
    namespace = "it-mosn-" + uuid.uuid4().hex[:6]
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "mosn" / "demo.py"), "--kubeconfig", kube.kubeconfig,
                           "--node", nodes[0], "--namespace", namespace, "--out", str(out), "--warmup", "2", "--cooldown", "2"],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=900, check=False)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    result = json.loads((out / "result.json").read_text())
    assert result["ok"] and result["traffic"]["failed"] == 0 and result["traffic"]["requests"] > 0, result
    assert result["order"] == ["mosn-v1", "mosn-v2"], result["order"]
    assert "postStar" in proc.stdout and "did you mean 'postStart'" in proc.stdout
