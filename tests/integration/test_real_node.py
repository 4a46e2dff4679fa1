"""The hot upgrade on a real kubelet (tools/realnode: containerd + kubelet v1.36, images from tools/images).

Needs real nodes (label ``meshops.io/node-kind=real``) in the cluster under test. With none, and
``REAL_NODES=1`` on the local control plane, the fixture starts them (tools/realnode/up.sh) and stops them
again at the end of the session; where a kubelet cannot run (up.sh exit 2: not root, no cgroups, no apt), or
without ``REAL_NODES=1``, the tests are skipped with the reason. Pods go to real nodes through the
``meshops-real`` scheduler (spec.schedulerName); test traffic goes only to the pods' own IPs on the node's bridge.

Figures (pod start, the phases of one hot upgrade) are printed and written to out/real-node/measure.json;
docs/real-nodes.md has the measured ones.
"""

import copy
import http.client
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.meshops.sidecarset.plugins.module_utils.manifests import inject_manifest
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import load_sidecarsets
from chaoskit import kill_tree, wait_gone
from kubeclient import pod_ready as is_ready
from modrun import ANSIBLE_PLAYBOOK, ROOT, ansible_env, run_module
from workloads import deployment, images, pods_of, restart_counts, write_yaml

# as tests/integration/conftest.py (not imported from it: with tests/unit in the same run "conftest" is another module)
CLUSTER_DIR = Path(os.environ.get("MESHOPS_CLUSTER_DIR", Path(__file__).resolve().parents[2] / ".cluster"))

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KIND_LABEL = "meshops.io/node-kind"
SCHEDULER = "meshops-real"
SIDECARSET = os.path.join(ROOT, "examples", "demo", "sidecarset.yaml")
V1, V2, EMPTY = "meshops/mesh-sidecar:v1", "meshops/mesh-sidecar:v2", "meshops/mesh-sidecar:empty"
APP = "meshops/demo-app:1"
TWINS = ("mesh-sidecar-1", "mesh-sidecar-2")
WORKING = "kruise.io/sidecarset-working-hotupgrade-container"
SIDECAR_PORT = 15001
OUT = os.path.join(ROOT, "out", "real-node")


def ready_real_nodes(kube):
    nodes = kube.core.list_node(label_selector=KIND_LABEL + "=real").items
    return [n.metadata.name for n in nodes
            if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))]


@pytest.fixture(scope="session")
def real_node(kube):
    """The name of a Ready real node (started here with REAL_NODES=1 on the local control plane)."""
    names = ready_real_nodes(kube)
    if names:
        yield names[0]
        return
    if os.environ.get("REAL_NODES") != "1" or not kube.local:
        pytest.skip("no real node (label %s=real) in this cluster: start them with tools/realnode/up.sh "
                    "(same MESHOPS_CLUSTER_DIR), or set REAL_NODES=1 on the local control plane" % KIND_LABEL)
    env = dict(os.environ, MESHOPS_CLUSTER_DIR=str(CLUSTER_DIR))
    env.pop("MESHOPS_REALNODE_LOCKED", None)
    proc = subprocess.run([os.path.join(ROOT, "tools", "realnode", "up.sh")], env=env, capture_output=True, text=True,
                          timeout=3600, check=False)
    if proc.returncode == 2:
        pytest.skip("a kubelet cannot run on this machine:\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        pytest.fail("tools/realnode/up.sh failed (exit %d):\n%s" % (proc.returncode, (proc.stdout + proc.stderr)[-6000:]))
    yield ready_real_nodes(kube)[0]
    subprocess.run([os.path.join(ROOT, "tools", "realnode", "down.sh")], env=env, capture_output=True, timeout=300, check=False)


def sidecarset_raw(image=V1):
    with open(SIDECARSET) as handle:
        raw = yaml.safe_load(handle)
    raw["spec"]["containers"][0]["image"] = image
    return raw


def real_deployment(name, namespace, node, grace_period=15):
    doc = deployment(name, namespace, 1, labels={"mesh-sidecar": "enabled"}, app_image=APP, container="app",
                     grace_period=grace_period)
    spec = doc["spec"]["template"]["spec"]
    spec["schedulerName"] = SCHEDULER
    spec["nodeSelector"] = {KIND_LABEL: "real", "kubernetes.io/hostname": node}
    spec["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    injected, status, reason = inject_manifest(doc, load_sidecarsets([sidecarset_raw()]))
    assert status == "injected", reason
    return injected


def statuses(pod):
    return {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}


def http_get(ip, timeout=5.0):
    conn = http.client.HTTPConnection(ip, SIDECAR_PORT, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-sidecar-build"), resp.getheader("x-sidecar-version")
    finally:
        conn.close()


class Traffic(threading.Thread):
    """Sequential GETs to the pod's own IP (a new connection each, no retries): every failure counts."""

    def __init__(self, ip, interval=0.05):
        super().__init__(daemon=True)
        self.ip, self.interval = ip, interval
        self.stop_event = threading.Event()
        self.ok, self.failed, self.builds, self.errors = 0, 0, {}, []

    def run(self):
        while not self.stop_event.is_set():
            try:
                status, build = http_get(self.ip)[:2]
                if status == 200:
                    self.ok += 1
                    self.builds[build] = self.builds.get(build, 0) + 1
                else:
                    self.failed += 1
                    self.errors.append("status %s" % status)
            except (OSError, http.client.HTTPException) as exc:
                self.failed += 1
                self.errors.append(repr(exc))
            self.stop_event.wait(self.interval)

    def stop(self):
        self.stop_event.set()
        self.join(10)


def wait_answer(ip, build, timeout=30.0):
    """Wait until the pod IP answers 200 from ``build``: a Ready pod's app may not listen yet (the sidecar says 502)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = http_get(ip)[:2]
            if last == (200, build):
                return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError("the pod IP %s did not answer 200 from %s within %ss (last: %r)" % (ip, build, timeout, last))


def wait_pod(kube, namespace, predicate, timeout, message):
    deadline = time.monotonic() + timeout
    pods = []
    while time.monotonic() < deadline:
        pods = pods_of(kube, namespace)
        if len(pods) == 1 and predicate(pods[0]):
            return pods[0]
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s: %s" % (timeout, message, json.dumps(
        [{"name": p["metadata"]["name"], "node": p["spec"].get("nodeName"), "status": p.get("status")} for p in pods])[:4000]))


def record(name, data):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "measure.json")
    try:
        with open(path) as handle:
            allm = json.load(handle)
    except (OSError, ValueError):
        allm = {}
    allm[name] = data
    with open(path, "w") as handle:
        json.dump(allm, handle, indent=1, sort_keys=True)
    print("\nreal-node %s: %s" % (name, json.dumps(data, sort_keys=True)))


def test_reference_sidecar_hot_upgrade_on_a_real_kubelet(kube, namespace, real_node, tmp_path):
    # ---- pod start: Deployment create -> pod bound to the real node -> all three containers Ready
    t0 = time.monotonic()
    kube.apps.create_namespaced_deployment(namespace, real_deployment("rn-app", namespace, real_node))
    marks = {}

    def progress(pod):
        now = round(time.monotonic() - t0, 2)
        marks.setdefault("pod_created", now)
        if pod["spec"].get("nodeName"):
            marks.setdefault("scheduled", now)
        st = statuses(pod)
        if len(st) == 3 and all((s.get("state") or {}).get("running") for s in st.values()):
            marks.setdefault("all_running", now)
        return is_ready(pod)

    pod = wait_pod(kube, namespace, progress, 120, "the injected pod Ready on %s" % real_node)
    marks["ready"] = round(time.monotonic() - t0, 2)
    assert pod["spec"]["nodeName"] == real_node
    assert [c["name"] for c in pod["spec"]["containers"]] == ["mesh-sidecar-1", "mesh-sidecar-2", "app"]
    assert images(pod) == {"mesh-sidecar-1": V1, "mesh-sidecar-2": EMPTY, "app": APP}
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    assert ip and ip != pod["status"].get("hostIP"), pod["status"]
    record("pod_start", marks)
    before = statuses(pod)
    wait_answer(ip, "v1")

    # ---- one hot upgrade, phase by phase, under traffic to the pod's own IP
    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_raw(V2))
    traffic = Traffic(ip)
    traffic.start()
    time.sleep(1.0)
    try:
        t = time.monotonic()
        up, proc = run_module("sidecar_upgrade", dict(sidecarset=v2, namespace=namespace, phase="upgrade", timeout=180), env=kube.env)
        upgrade_call = round(time.monotonic() - t, 2)
        assert not up.get("failed"), proc.stdout[-4000:]
        pod = pods_of(kube, namespace)[0]
        assert pod["metadata"]["uid"] == uid
        assert images(pod) == {"mesh-sidecar-1": V1, "mesh-sidecar-2": V2, "app": APP}
        assert json.loads(pod["metadata"]["annotations"][WORKING]) == {"mesh-sidecar": "mesh-sidecar-2"}
        # exactly the standby twin was restarted by the kubelet
        assert restart_counts(pod) == {"mesh-sidecar-1": 0, "mesh-sidecar-2": 1, "app": 0}
        st = statuses(pod)
        assert st["mesh-sidecar-1"]["containerID"] == before["mesh-sidecar-1"]["containerID"]
        assert st["app"]["containerID"] == before["app"]["containerID"]
        assert st["mesh-sidecar-2"]["containerID"] != before["mesh-sidecar-2"]["containerID"]
        assert st["mesh-sidecar-2"]["imageID"] != before["mesh-sidecar-2"]["imageID"]
        assert all(s["ready"] for s in st.values())
        assert http_get(ip)[:2] == (200, "v2")
        time.sleep(1.0)
        t = time.monotonic()
        reset, proc = run_module("sidecar_upgrade", dict(sidecarset=v2, namespace=namespace, phase="reset", timeout=180), env=kube.env)
        reset_call = round(time.monotonic() - t, 2)
        assert not reset.get("failed"), proc.stdout[-4000:]
        time.sleep(1.0)
    finally:
        traffic.stop()
    pod = pods_of(kube, namespace)[0]
    assert pod["metadata"]["uid"] == uid
    assert images(pod) == {"mesh-sidecar-1": EMPTY, "mesh-sidecar-2": V2, "app": APP}
    assert restart_counts(pod) == {"mesh-sidecar-1": 1, "mesh-sidecar-2": 1, "app": 0}
    assert is_ready(pod)
    assert reset["pods"][0]["phase"] == "done", reset["pods"][0]
    assert http_get(ip)[:2] == (200, "v2")
    assert traffic.failed == 0, traffic.errors[:10]
    assert traffic.builds.get("v1") and traffic.builds.get("v2"), traffic.builds

    st = statuses(pod)
    kubelet = {}
    for twin in TWINS:
        last = (st[twin].get("lastState") or {}).get("terminated") or {}
        kubelet[twin] = {"exit": last.get("exitCode"), "finished": last.get("finishedAt"),
                         "started": ((st[twin].get("state") or {}).get("running") or {}).get("startedAt")}
    record("hot_upgrade", {
        "upgrade_module_call_s": upgrade_call, "reset_module_call_s": reset_call,
        "upgrade_timings": up["pods"][0]["timings"], "reset_timings": reset["pods"][0]["timings"],
        "traffic": {"ok": traffic.ok, "failed": traffic.failed, "builds": traffic.builds},
        "kubelet": kubelet,
    })
    # the old twin went through SIGTERM and its drain, the new one runs the empty image: both exited 0
    assert kubelet["mesh-sidecar-1"]["exit"] == 0 and kubelet["mesh-sidecar-2"]["exit"] == 0, kubelet
    assert copy.deepcopy(st["mesh-sidecar-1"]["image"]).endswith("mesh-sidecar:empty")


def test_two_hot_upgrades_alternate_the_slots_on_a_real_kubelet(kube, namespace, real_node, tmp_path):
    kube.apps.create_namespaced_deployment(namespace, real_deployment("rn-app", namespace, real_node))
    pod = wait_pod(kube, namespace, is_ready, 120, "the injected pod Ready on %s" % real_node)
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    image_ids = {}
    for step, (image, working, empty_slot) in enumerate(((V2, "mesh-sidecar-2", "mesh-sidecar-1"), (V1, "mesh-sidecar-1", "mesh-sidecar-2")), 1):
        path = write_yaml(tmp_path / ("s%d.yaml" % step), sidecarset_raw(image))
        result, proc = run_module("sidecar_upgrade", dict(sidecarset=path, namespace=namespace, timeout=180), env=kube.env)
        assert not result.get("failed"), proc.stdout[-4000:]
        assert result["pods"][0]["writes"] == ["upgrade", "reset"]
        pod = pods_of(kube, namespace)[0]
        assert pod["metadata"]["uid"] == uid and is_ready(pod)
        assert json.loads(pod["metadata"]["annotations"][WORKING]) == {"mesh-sidecar": working}
        assert images(pod)[working] == image and images(pod)[empty_slot] == EMPTY
        # every upgrade restarts each twin once: +2 per upgrade, the app never
        assert restart_counts(pod) == {"mesh-sidecar-1": step, "mesh-sidecar-2": step, "app": 0}
        assert http_get(ip)[:2] == (200, image.rsplit(":", 1)[1])
        for name, status in statuses(pod).items():
            image_ids.setdefault(status["image"], set()).add(status["imageID"])
    # containerd reports the image's config digest: one imageID per image, whatever the container or restart
    assert all(len(ids) == 1 and next(iter(ids)).startswith("sha256:") for ids in image_ids.values()), image_ids


def container_logs(kube, namespace, pod):
    """The last lines of every container's log (and its previous instance's), for a failure message."""
    out = []
    for name in statuses(pod):
        for previous in (False, True):
            try:
                text = kube.core.read_namespaced_pod_log(pod["metadata"]["name"], namespace, container=name, previous=previous,
                                                         tail_lines=15)
            except Exception as exc:  # noqa: BLE001 - diagnostics only
                text = "(%s)" % str(exc).splitlines()[0]
            out.append("--- %s%s:\n%s" % (name, " (previous)" if previous else "", text))
    return "\n" + "\n".join(out)


def running_image(pod, name):
    """The image a container's status names while it runs, or None when it is not running."""
    st = statuses(pod).get(name) or {}
    return st.get("image") if (st.get("state") or {}).get("running") else None


@pytest.mark.parametrize("bad, timeout, fixed_timeout", [
    ("meshops/mesh-sidecar:broken", 60, 180),       # pulled, exits at once: postStart fails, CrashLoopBackOff
    ("meshops/mesh-sidecar:pull-fail", 20, 60),     # never imported: ErrImagePull (kubelet reports the old instance)
    ("meshops/mesh-sidecar:stuck", 45, 180),        # runs, never finishes its hand-over: postStart hangs, never ready
])
def test_broken_image_rolls_back_then_the_fixed_image_lands(kube, namespace, real_node, tmp_path, bad, timeout, fixed_timeout):
    kube.apps.create_namespaced_deployment(namespace, real_deployment("rn-app", namespace, real_node))
    pod = wait_pod(kube, namespace, is_ready, 120, "the injected pod Ready on %s" % real_node)
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    wait_answer(ip, "v1")
    path = write_yaml(tmp_path / "bad.yaml", sidecarset_raw(bad))
    traffic = Traffic(ip)
    traffic.start()
    try:
        t = time.monotonic()
        result, proc = run_module("sidecar_upgrade", dict(sidecarset=path, namespace=namespace, timeout=timeout, rollback=True),
                                  env=kube.env)
        bad_call = round(time.monotonic() - t, 2)
        # "rolled back" is reported only once kubelet runs the empty image in the rolled-back twin again
        pod = pods_of(kube, namespace)[0]
        entry = result["pods"][0]
        assert result.get("failed") and entry["phase"] == "rolled-back", proc.stdout[-4000:]
        assert (running_image(pod, "mesh-sidecar-2") or "").endswith("meshops/mesh-sidecar:empty"), statuses(pod)["mesh-sidecar-2"]
    finally:
        traffic.stop()
    after_rollback = {"pod_annotations": pod["metadata"]["annotations"], "status": statuses(pod)["mesh-sidecar-2"]}
    assert images(pod) == {"mesh-sidecar-1": V1, "mesh-sidecar-2": EMPTY, "app": APP}
    assert statuses(pod)["mesh-sidecar-1"]["ready"] and http_get(ip)[:2] == (200, "v1")   # the old sidecar kept serving
    assert traffic.failed == 0 and set(traffic.builds) == {"v1"}, (traffic.builds, traffic.errors[:10])
    path = write_yaml(tmp_path / "fixed.yaml", sidecarset_raw(V2))
    t = time.monotonic()
    result, proc = run_module("sidecar_upgrade", dict(sidecarset=path, namespace=namespace, timeout=fixed_timeout), env=kube.env)
    fixed_call = round(time.monotonic() - t, 2)
    assert not result.get("failed"), (proc.stdout[-3000:] + container_logs(kube, namespace, pods_of(kube, namespace)[0])
                                      + "\nafter the rollback: " + json.dumps(after_rollback))
    pod = pods_of(kube, namespace)[0]
    assert pod["metadata"]["uid"] == uid and is_ready(pod)
    assert images(pod) == {"mesh-sidecar-1": EMPTY, "mesh-sidecar-2": V2, "app": APP}
    assert http_get(ip)[:2] == (200, "v2")
    record("bad_image_" + bad.rsplit(":", 1)[1], {"bad_call_s": bad_call, "reason": entry["reason"], "fixed_call_s": fixed_call,
                                                  "traffic": {"ok": traffic.ok, "failed": traffic.failed}})


def test_a_run_killed_between_upgrade_and_reset_resumes(kube, namespace, real_node, tmp_path):
    """SIGKILL to the whole tree (ansible-playbook, its worker, the module) right after the Upgrade write."""
    kube.apps.create_namespaced_deployment(namespace, real_deployment("rn-app", namespace, real_node))
    pod = wait_pod(kube, namespace, is_ready, 120, "the injected pod Ready on %s" % real_node)
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    wait_answer(ip, "v1")
    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_raw(V2))
    play = write_yaml(tmp_path / "play.yml", [{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"meshops.sidecarset.sidecar_upgrade": dict(sidecarset=v2, namespace=namespace, timeout=180)}]}])
    traffic = Traffic(ip)
    traffic.start()
    try:
        proc = subprocess.Popen([ANSIBLE_PLAYBOOK, play], cwd=ROOT, env=ansible_env(kube.env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            pod = wait_pod(kube, namespace, lambda p: images(p)["mesh-sidecar-2"] == V2, 120, "the Upgrade write")
            tree = kill_tree(proc.pid)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        # the playbook, its worker, the module; a SIGKILLed process takes a moment to exit and be reaped
        assert len(tree) >= 3 and not wait_gone(tree, 10), tree
        pod = pods_of(kube, namespace)[0]
        assert images(pod) == {"mesh-sidecar-1": V1, "mesh-sidecar-2": V2, "app": APP}   # stopped between Upgrade and Reset
        result, out = run_module("sidecar_upgrade", dict(sidecarset=v2, namespace=namespace, timeout=180), env=kube.env)
        time.sleep(1.0)
    finally:
        traffic.stop()
    assert not result.get("failed"), out.stdout[-4000:]
    assert result["pods"][0]["phase"] == "done"
    pod = pods_of(kube, namespace)[0]
    assert pod["metadata"]["uid"] == uid and is_ready(pod)
    assert images(pod) == {"mesh-sidecar-1": EMPTY, "mesh-sidecar-2": V2, "app": APP}
    assert restart_counts(pod) == {"mesh-sidecar-1": 1, "mesh-sidecar-2": 1, "app": 0}
    assert traffic.failed == 0, traffic.errors[:10]
    assert traffic.builds.get("v1") and traffic.builds.get("v2"), traffic.builds
    record("killed_between_upgrade_and_reset", {"killed_processes": len(tree), "traffic": {"ok": traffic.ok, "failed": traffic.failed}})
