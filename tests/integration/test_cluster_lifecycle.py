"""tools/cluster/up.sh and down.sh: idempotent start, complete stop, restart.

Runs last (conftest moves `cluster_lifecycle` tests to the end): down/up empties the cluster. It
leaves the cluster UP, and is skipped when the caller supplied their own cluster via KUBECONFIG.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DIR = Path(os.environ.get("MESHOPS_CLUSTER_DIR", ROOT / ".cluster"))


def user_supplied_cluster():  # same rule as conftest.USER_KUBECONFIG
    return os.environ.get("MESHOPS_LOCAL_CLUSTER") != "1" and bool(os.environ.get("KUBECONFIG"))


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.cluster_lifecycle,
    pytest.mark.skipif(user_supplied_cluster(), reason="KUBECONFIG points at the caller's cluster"),
]

COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "nodesim"]


def run(script):
    start = time.monotonic()
    proc = subprocess.run([str(ROOT / "tools" / "cluster" / script)], cwd=str(ROOT), capture_output=True,
                          text=True, timeout=1800, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, "%s failed (%d):\n%s" % (script, proc.returncode, out)
    return out, time.monotonic() - start


def pids():
    out = {}
    for c in COMPONENTS:
        f = Path(CLUSTER_DIR) / ("%s.pid" % c)
        if f.exists():
            out[c] = int(f.read_text().strip())
    return out


def ports():
    env = {}
    for line in (Path(CLUSTER_DIR) / "env").read_text().splitlines():
        if line.startswith("MESHOPS_") and line.split("=", 1)[0].endswith("_PORT"):
            key, value = line.split("=", 1)
            env[key] = int(value)
    return env


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not running; anything else is
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_up_twice_down_up(kube):
    """kube: the session fixture has brought the cluster up before."""
    out, secs = run("up.sh")
    assert "already running" in out and secs < 10
    out = run("up.sh")[0]
    assert "already running" in out
    running = pids()
    assert set(running) == set(COMPONENTS)
    assert all(pid_alive(p) for p in running.values())
    used = ports()
    assert all(port_open(p) for k, p in used.items() if k != "MESHOPS_ETCD_PEER_PORT")

    out = run("down.sh")[0]
    assert "all stopped" in out
    assert not [c for c, p in running.items() if pid_alive(p)], "processes left after down.sh"
    assert not [p for p in used.values() if port_open(p)], "ports still open after down.sh"
    assert pids() == {}
    out = run("down.sh")[0]
    assert "nothing was running" in out

    out, secs = run("up.sh")
    assert "ready in" in out
    print("cluster up (warm, binaries cached) in %.1fs" % secs)
    assert set(pids()) == set(COMPONENTS)
    assert all(pid_alive(p) for p in pids().values())
    # the admin token survives down/up: the session's client still works
    assert kube.core.list_namespace().items
    nodes = kube.core.list_node(label_selector="nodesim.meshops.io/managed=true").items
    assert len(nodes) >= 3
