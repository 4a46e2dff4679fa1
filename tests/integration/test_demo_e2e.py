"""End to end, what ``make demo`` does: tools/demo.sh on a control plane of its own, both ways it runs.

A local control plane in a temporary directory on free ports (never the one of the other tests) and
either a real kubelet node of its own (DEMO_NODES=real: kubelet + containerd, the pods' own IPs;
skipped, with up.sh's reason, where no kubelet can run) or its node simulator in process mode
(DEMO_NODES=process, the fallback: the mesh-sidecar v1/v2, its empty twin and the demo app are real
processes on 127.0.0.1). A 5-replica Deployment injected with examples/demo/sidecarset.yaml, traffic
through every pod's sidecar during ``playbooks/rollout.yml`` v1 -> v2 (maxUnavailable 2). Asserts 0
failed requests, every pod on v2 in its working slot with the other slot on the empty image, the
same pod UIDs, the node kind in the closing line, and that nothing is left running afterwards.
"""

import json
import os
import random
import socket
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


def _free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count, span=1, low=40000, high=60000):
    """``count`` ports p whose [p, p + span) are all free on 127.0.0.1 right now."""
    rng = random.Random()
    found = []
    for _attempt in range(500):
        port = rng.randrange(low, high - span)
        if any(abs(port - other) < max(span, 10) for other in found):
            continue
        if all(_free(p) for p in range(port, port + span)):
            found.append(port)
            if len(found) == count:
                return found
    pytest.skip("could not find free loopback ports")
    return []


def _listening(port):
    """Something accepts on 127.0.0.1:port (a bind test would also fail on TIME_WAIT leftovers)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes_mentioning(text):
    """Command lines of running processes that name ``text`` (a real node's kubelet, containerd and shims do)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline[:200])
    return found


@pytest.mark.parametrize("nodes", ["real", "process"])
def test_make_demo_rollout_without_failed_requests(nodes):
    # a short state dir: a real node's kubelet puts Unix sockets (107 bytes at most) three levels below it
    short = Path(tempfile.mkdtemp(prefix="demo-", dir="/tmp"))
    cluster = short / "c"
    out = ROOT / "out" / ("demo-e2e-" + nodes)   # kept after the run: logs, rollout.json, result.json
    shutil.rmtree(out, ignore_errors=True)
    api, etcd, peer, kcm = _free_ports(4)
    (base,) = _free_ports(1, span=200)
    env = dict(os.environ)
    for key in ("KUBECONFIG", "MESHOPS_UP_LOCKED", "KEEP_CLUSTER", "DEMO_ARGS"):
        env.pop(key, None)
    env.update(
        DEMO_CLUSTER_DIR=str(cluster), DEMO_OUT=str(out), DEMO_BASE_PORT=str(base),
        # down.sh in the finally below reads MESHOPS_CLUSTER_DIR: without it, it would stop the test cluster
        MESHOPS_CLUSTER_DIR=str(cluster),
        MESHOPS_APISERVER_PORT=str(api), MESHOPS_ETCD_PORT=str(etcd), MESHOPS_ETCD_PEER_PORT=str(peer),
        MESHOPS_KCM_PORT=str(kcm), DEMO_NODES=nodes,
    )
    try:
        proc = subprocess.run([str(ROOT / "tools" / "demo.sh")], cwd=str(ROOT), env=env, capture_output=True,
                              text=True, timeout=1200, check=False)
    finally:
        # whatever happened, nothing of this cluster may survive the test
        subprocess.run([str(ROOT / "tools" / "cluster" / "down.sh")], cwd=str(ROOT), env=env,
                       capture_output=True, timeout=120, check=False)
        leftover = _processes_mentioning(str(cluster))
        if not leftover:
            shutil.rmtree(short, ignore_errors=True)
    output = proc.stdout + proc.stderr
    up_log = out / "cluster-up.log"
    if proc.returncode == 2 and up_log.exists() and "cannot be installed" in up_log.read_text():
        pytest.skip("local control plane unavailable on this machine")
    if nodes == "real" and proc.returncode == 2 and "no real node could start here" in output:
        pytest.skip("no kubelet can run on this machine: " + output[-600:])
    result_path = out / "result.json"
    assert result_path.exists(), output[-6000:]
    result = json.loads(result_path.read_text())
    assert proc.returncode == 0, output[-6000:]

    # 0 failed requests, traffic really went through every pod's sidecar, and both versions answered
    traffic = result["traffic"]
    assert traffic["total"]["failed"] == 0, traffic["total"]["errors"]
    assert traffic["total"]["requests"] > 1000
    assert len(traffic["per_port"]) == 5
    assert all(p["requests"] > 0 and p["failed"] == 0 for p in traffic["per_port"].values())
    assert set(traffic["total"]["by_build"]) == {"v1", "v2"}

    # the rollout: maxUnavailable 2 -> one window of the 5 pods, at most 2 in flight at any moment, every pod done
    assert result["rollout"]["rc"] == 0
    report = result["rollout"]["report"]
    assert report["result"]["upgraded"] == 5 and not report["result"]["failed"]
    assert [(b["kind"], b["size"], b["max_unavailable"]) for b in report["batches"]] == [("window", 5, 2)]
    spans = sorted([(p["started_at"], 1) for p in report["pods"]]
                   + [(p["started_at"] + p["timings"]["total"] - 0.002, -1) for p in report["pods"]])  # both rounded to 1 ms
    assert max(sum(delta for dummy, delta in spans[:i + 1]) for i in range(len(spans))) <= 2

    # every pod on v2 in its working slot, the other slot empty, same UIDs
    assert result["checks"] == {
        "rollout_ok": True, "traffic_ran": True, "zero_failed_requests": True, "same_pod_uids": True,
        "every_pod_v2_working_other_empty": True,
    }
    assert len(result["pods"]) == 5
    for row in result["pods"]:
        assert row["ok"], row
        assert row["working_image"] == "meshops/mesh-sidecar:v2"
        assert row["other_image"] == "meshops/mesh-sidecar:empty"
        assert row["answers"].startswith("200 v2")

    # make demo leaves nothing running
    # the closing traffic line names what the pods ran on
    traffic_line = [ln for ln in output.splitlines() if " requests in " in ln and "ran on " in ln]
    assert traffic_line, output[-3000:]
    kind = result["node_kind"]
    assert kind.startswith("real (node ") if nodes == "real" else kind.startswith("simulated"), kind
    assert kind in traffic_line[-1]
    if nodes == "real":   # what ran, as the kubelet reported it: no process table of ours
        assert all(not row.get("processes") for row in result["pods"])
        assert all(t.split(":")[0].startswith("10.") for t in traffic["per_port"]), traffic["per_port"]

    assert "nothing left running" in output
    assert not list(cluster.glob("*.pid"))
    assert not _processes_mentioning(str(cluster)), "left running: %s" % _processes_mentioning(str(cluster))
    for row in result["pods"]:
        for info in (row.get("processes") or {}).values():
            assert not _alive(info["pid"]), info
    sidecar_ports = [int(t.rsplit(":", 1)[1]) for t in traffic["per_port"] if t.startswith("127.0.0.1:")]
    for port in [api, etcd] + sidecar_ports:
        assert not _listening(port), port
