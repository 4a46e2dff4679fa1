"""The API server restarted in the middle of a ``sidecar_upgrade`` run: the run re-establishes its watch and
completes (or fails with a clear message), a re-run completes, and no pod is left with both twins on real images.

Only on the local control plane (the test restarts its kube-apiserver with the same command line)."""

import os
import signal
import subprocess
import threading
import time

import pytest

from modrun import run_module
from workloads import create_injected_deployment, images, mosn_raw, pods_of, wait_ready, write_yaml

pytestmark = pytest.mark.integration

EMPTY = "openkruise/hotupgrade-sample:empty"
# not "from conftest import": with tests/unit in the same pytest run that name is another conftest module
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATE = os.environ.get("MESHOPS_CLUSTER_DIR") or os.path.join(ROOT, ".cluster")


def apiserver_pid():
    with open(os.path.join(STATE, "kube-apiserver.pid"), encoding="utf-8") as handle:
        return int(handle.read().strip())


def restart_apiserver(kube, down_for=3.0):
    """Stop kube-apiserver (its process group, as down.sh does), wait ``down_for`` s, start the same command line
    again (detached, as up.sh does), and wait until it is ready. Returns the seconds it was unreachable."""
    pid = apiserver_pid()
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        argv = [a.decode() for a in handle.read().split(b"\0") if a]
    start = time.monotonic()
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    time.sleep(down_for)
    # detached as up.sh starts it (setsid nohup ... &, from a shell that exits): its parent is init, not pytest,
    # so that down.sh later sees it gone once killed (a child of pytest would stay a zombie)
    log = os.path.join(STATE, "kube-apiserver.log")
    out = subprocess.run(["bash", "-c", 'setsid nohup "$@" >>"$LOG" 2>&1 </dev/null & echo $!', "restart"] + argv,
                         env=dict(os.environ, LOG=log), capture_output=True, text=True, check=True)
    with open(os.path.join(STATE, "kube-apiserver.pid"), "w", encoding="utf-8") as handle:
        handle.write(out.stdout.strip())

    def ready():
        token = open(os.path.join(STATE, "tokens.csv"), encoding="utf-8").read().split(",")[0]
        probe = subprocess.run(["curl", "-sk", "--max-time", "2", "-H", "Authorization: Bearer " + token,
                                kube.host + "/readyz"], capture_output=True, text=True, check=False)
        return probe.stdout.strip() == "ok"

    kube.wait_for(ready, timeout=90, interval=0.2, message="kube-apiserver ready again")
    return time.monotonic() - start


def twins(pod):
    imgs = images(pod)
    return imgs.get("mosn-1"), imgs.get("mosn-2")


@pytest.mark.usefixtures("nodesim")
def test_api_server_restart_during_sidecar_upgrade(kube, namespace, tmp_path):
    if not kube.local:
        pytest.skip("restarts the local control plane's kube-apiserver")
    count = 6
    create_injected_deployment(kube, mosn_raw(), "test-app", namespace, count,
                               annotations={"nodesim.meshops.io/startDelay": "1.5"})
    pods = wait_ready(kube, namespace, count, timeout=90)
    uids = {p["metadata"]["uid"] for p in pods}
    v2 = write_yaml(tmp_path / "mosn-v2.yaml", mosn_raw("tinyqian/mosn:v2", namespace=namespace))
    outcome = {}

    def upgrade():
        outcome["first"] = run_module("sidecar_upgrade", dict(sidecarset=v2, namespace=namespace, timeout=180,
                                                              concurrency=2), env=kube.env)

    runner = threading.Thread(target=upgrade)
    runner.start()

    def some_upgrade_written():
        return any("tinyqian/mosn:v2" in twins(p) for p in pods_of(kube, namespace))

    kube.wait_for(some_upgrade_written, timeout=60, interval=0.05, message="the first Upgrade write")
    outage = restart_apiserver(kube)
    runner.join(timeout=400)
    assert not runner.is_alive(), "sidecar_upgrade did not return"
    first, proc = outcome["first"]
    print("API server unreachable for %.1f s; first run: %s" % (outage, first.get("summary") or first.get("msg")))
    if first.get("failed"):
        # a clear message, never a traceback or an unexplained timeout
        text = first.get("msg", "") + " ".join(str(p.get("reason", "")) for p in first.get("results") or first.get("pods") or [])
        assert "Traceback" not in text and text.strip(), proc.stdout[-3000:]
    else:
        assert first["summary"]["done"] == count, proc.stdout[-3000:]
    again, proc = run_module("sidecar_upgrade", dict(sidecarset=v2, namespace=namespace, timeout=180), env=kube.env)
    assert not again.get("failed") and again["summary"]["done"] == count, proc.stdout[-3000:]
    after = pods_of(kube, namespace)
    assert {p["metadata"]["uid"] for p in after} == uids                       # no pod recreated
    for pod in after:
        pair = twins(pod)
        assert EMPTY in pair and "tinyqian/mosn:v2" in pair, (pod["metadata"]["name"], pair)  # never two real images
