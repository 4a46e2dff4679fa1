"""sidecar_upgrade / sidecarset_info / sidecar_inject (online) against the real kube-apiserver."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import yaml

from modrun import ANSIBLE_PLAYBOOK, ROOT, ansible_env, run_module
from workloads import create_injected_deployment, images, mosn_raw, pods_of, restart_counts, wait_ready, write_yaml

pytestmark = pytest.mark.integration

EMPTY = "openkruise/hotupgrade-sample:empty"
SELECTOR = "mesh.apsara-edge.com/mosn-injected=true"


def annotations(pod):
    return pod["metadata"].get("annotations") or {}


def versions(pod):
    ann = annotations(pod)
    return tuple(ann.get(k) for k in ("version.sidecarset.kruise.io/mosn-1", "versionalt.sidecarset.kruise.io/mosn-1",
                                      "version.sidecarset.kruise.io/mosn-2", "versionalt.sidecarset.kruise.io/mosn-2"))


def working(pod):
    return json.loads(annotations(pod)["kruise.io/sidecarset-working-hotupgrade-container"])["mosn"]


@pytest.fixture
def one_pod(kube, namespace):
    create_injected_deployment(kube, mosn_raw(), "test-app", namespace, 1)
    return wait_ready(kube, namespace, 1)[0]


def upgrade(kube, path, namespace, **extra):
    args = dict(sidecarset=path, namespace=namespace, timeout=60)
    args.update(extra)
    return run_module("sidecar_upgrade", args, env=kube.env)


def test_two_hot_upgrades_follow_the_trace_table(kube, namespace, one_pod, tmp_path):
    uid = one_pod["metadata"]["uid"]
    assert versions(one_pod) == ("1", "0", "0", "1") and working(one_pod) == "mosn-1"
    v2 = write_yaml(tmp_path / "v2.yaml", mosn_raw("tinyqian/mosn:v2"))
    # upgrade 1, phase by phase: the Upgrade write, then the Reset
    result, proc = upgrade(kube, v2, namespace, phase="upgrade")
    assert not result.get("failed"), proc.stdout
    pod = pods_of(kube, namespace)[0]
    r1 = result["version"]
    assert r1 > 1
    assert images(pod)["mosn-1"] == "tinyqian/mosn:v1" and images(pod)["mosn-2"] == "tinyqian/mosn:v2"
    assert working(pod) == "mosn-2"
    assert versions(pod) == ("1", str(r1), str(r1), "1")
    result, proc = upgrade(kube, v2, namespace, phase="reset")
    assert not result.get("failed"), proc.stdout
    pod = pods_of(kube, namespace)[0]
    assert images(pod)["mosn-1"] == EMPTY and images(pod)["mosn-2"] == "tinyqian/mosn:v2"
    assert versions(pod) == ("0", str(r1), str(r1), "0")
    assert restart_counts(pod) == {"mosn-1": 1, "mosn-2": 1, "test-app": 0}
    # upgrade 2, all phases in one call: the slots alternate back to mosn-1
    v3 = write_yaml(tmp_path / "v3.yaml", mosn_raw("tinyqian/mosn:v3"))
    result, proc = upgrade(kube, v3, namespace)
    assert not result.get("failed"), proc.stdout
    r2 = result["version"]
    assert r2 > r1
    pod = pods_of(kube, namespace)[0]
    assert images(pod)["mosn-1"] == "tinyqian/mosn:v3" and images(pod)["mosn-2"] == EMPTY
    assert working(pod) == "mosn-1"
    assert versions(pod) == (str(r2), "0", "0", str(r2))
    assert restart_counts(pod) == {"mosn-1": 2, "mosn-2": 2, "test-app": 0}
    assert pod["metadata"]["uid"] == uid
    entry = result["pods"][0]
    assert entry["phase"] == "done" and entry["writes"] == ["upgrade", "reset"]
    assert entry["working_before"] == {"mosn": "mosn-2"} and entry["working_after"] == {"mosn": "mosn-1"}
    assert set(entry["timings"]) >= {"upgrade", "migration", "reset", "total"}
    # a second run changes nothing
    again, proc = upgrade(kube, v3, namespace)
    assert again["changed"] is False, proc.stdout
    assert again["pods"][0]["phase"] == "done"
    info, proc = run_module("sidecarset_info", dict(sidecarset=v3, namespace=namespace), env=kube.env)
    assert info["status"] == {"matchedPods": 1, "updatedPods": 1, "readyPods": 1, "updatedReadyPods": 1}, proc.stdout
    assert info["pods"][0]["phase"] == "done" and info["pods"][0]["working"] == {"mosn": "mosn-1"}


def test_mosn_example_end_to_end_online_inject_then_upgrade(kube, namespace, tmp_path):
    manifest = yaml.safe_load(open(os.path.join(ROOT, "examples", "manifests", "test-app.yaml")))
    manifest["metadata"]["namespace"] = namespace
    kube.apps.create_namespaced_deployment(namespace, manifest)
    plain = wait_ready(kube, namespace, 1, selector="app=test-app")[0]
    assert [c["name"] for c in plain["spec"]["containers"]] == ["test-app"]
    v1 = write_yaml(tmp_path / "mosn.yaml", mosn_raw(namespace=namespace))
    result, proc = run_module("sidecar_inject", dict(sidecarsets=[v1], namespace=namespace, workloads=["Deployment/test-app"]), env=kube.env)
    assert result["changed"] is True, proc.stdout
    assert any("recreate" in w for w in result.get("warnings", [])), result
    again, proc = run_module("sidecar_inject", dict(sidecarsets=[v1], namespace=namespace, workloads=["Deployment/test-app"]), env=kube.env)
    assert again["changed"] is False and again["results"][0]["status"] == "unchanged", proc.stdout

    def injected_ready():
        pods = pods_of(kube, namespace, "app=test-app")
        if len(pods) != 1 or [c["name"] for c in pods[0]["spec"]["containers"]] != ["mosn-1", "mosn-2", "test-app"]:
            return False
        return wait_ready(kube, namespace, 1, selector="app=test-app", timeout=1)
    kube.wait_for(injected_ready, timeout=60, message="the injected pod to be 3/3 Running")
    pod = pods_of(kube, namespace, "app=test-app")[0]
    uid = pod["metadata"]["uid"]
    v2 = write_yaml(tmp_path / "mosn-v2.yaml", mosn_raw("tinyqian/mosn:v2", namespace=namespace))
    result, proc = upgrade(kube, v2, namespace)
    assert result["summary"]["done"] == 1, proc.stdout
    pod = pods_of(kube, namespace, "app=test-app")[0]
    assert pod["metadata"]["uid"] == uid
    assert images(pod) == {"mosn-1": EMPTY, "mosn-2": "tinyqian/mosn:v2", "test-app": "nginx:1.20"}


def test_check_mode_writes_nothing(kube, namespace, one_pod, tmp_path):
    v2 = write_yaml(tmp_path / "v2.yaml", mosn_raw("tinyqian/mosn:v2"))
    before = one_pod["metadata"]["resourceVersion"]
    result, proc = run_module("sidecar_upgrade", dict(sidecarset=v2, namespace=namespace), env=kube.env, check=True)
    assert result["changed"] is True, proc.stdout
    assert result["pods"][0]["phase"] == "planned"
    assert "diff" in result
    pod = pods_of(kube, namespace)[0]
    assert pod["metadata"]["resourceVersion"] == before
    assert images(pod)["mosn-2"] == EMPTY


def test_broken_image_keeps_old_sidecar_then_fixed_image_lands(kube, namespace, one_pod, tmp_path):
    broken = write_yaml(tmp_path / "broken.yaml", mosn_raw("tinyqian/mosn:broken"))
    result, proc = upgrade(kube, broken, namespace, timeout=8)
    assert result.get("failed") is True, proc.stdout
    entry = result["pods"][0]
    assert entry["failed"] and "not reset" in entry["reason"], entry
    pod = pods_of(kube, namespace)[0]
    assert images(pod)["mosn-1"] == "tinyqian/mosn:v1"  # the old sidecar still serves
    statuses = {s["name"]: s for s in pod["status"]["containerStatuses"]}
    assert statuses["mosn-1"]["ready"] is True
    assert images(pod)["mosn-2"] == "tinyqian/mosn:broken"
    fixed = write_yaml(tmp_path / "fixed.yaml", mosn_raw("tinyqian/mosn:v2"))
    result, proc = upgrade(kube, fixed, namespace)
    assert not result.get("failed"), proc.stdout
    pod = pods_of(kube, namespace)[0]
    # the fixed image lands in the slot that held the broken one, the other slot is emptied
    assert images(pod)["mosn-2"] == "tinyqian/mosn:v2" and images(pod)["mosn-1"] == EMPTY
    assert working(pod) == "mosn-2"


def test_rollback_returns_failed_pod_to_old_image(kube, namespace, one_pod, tmp_path):
    broken = write_yaml(tmp_path / "broken.yaml", mosn_raw("tinyqian/mosn:broken"))
    result, proc = upgrade(kube, broken, namespace, timeout=8, rollback=True)
    assert result.get("failed") is True, proc.stdout
    assert result["pods"][0]["phase"] == "rolled-back"
    pod = pods_of(kube, namespace)[0]
    assert images(pod)["mosn-1"] == "tinyqian/mosn:v1" and images(pod)["mosn-2"] == EMPTY
    assert working(pod) == "mosn-1"
    assert versions(pod)[0] == "1" and versions(pod)[2] == "0"


def test_refuses_when_a_non_image_field_changed(kube, namespace, one_pod, tmp_path):
    raw = mosn_raw("tinyqian/mosn:v2")
    raw["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    changed = write_yaml(tmp_path / "env.yaml", raw)
    result, proc = upgrade(kube, changed, namespace)
    assert result.get("failed") is True, proc.stdout
    assert result["pods"][0]["phase"] == "not-upgradable"
    assert "non-image" in result["pods"][0]["reason"]
    assert images(pods_of(kube, namespace)[0])["mosn-2"] == EMPTY


def serving_watch(kube, namespace, stop, violations):
    """Record any moment where a pod has no twin on a real image (nobody could serve)."""
    while not stop.is_set():
        for pod in pods_of(kube, namespace):
            twins = [pod_images for name, pod_images in images(pod).items() if name.startswith("mosn-")]
            if all(image == EMPTY for image in twins):
                violations.append((pod["metadata"]["name"], images(pod)))
        time.sleep(0.05)


def test_interrupted_run_resumes_and_never_leaves_zero_serving_slots(kube, namespace, tmp_path):
    slow_hooks = {"nodesim.meshops.io/mosn-1.post-start-duration": "2s", "nodesim.meshops.io/mosn-2.post-start-duration": "2s"}
    create_injected_deployment(kube, mosn_raw(), "app", namespace, 3, annotations=slow_hooks)
    wait_ready(kube, namespace, 3, timeout=90)
    stop, violations = threading.Event(), []
    watcher = threading.Thread(target=serving_watch, args=(kube, namespace, stop, violations), daemon=True)
    watcher.start()
    v2 = write_yaml(tmp_path / "v2.yaml", mosn_raw("tinyqian/mosn:v2"))
    play = write_yaml(tmp_path / "play.yml", [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "upgrade", "meshops.sidecarset.sidecar_upgrade": {"sidecarset": v2, "namespace": namespace, "timeout": 60}}]}])
    proc = subprocess.Popen([ANSIBLE_PLAYBOOK, play], cwd=ROOT, env=ansible_env(kube.env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        kube.wait_for(lambda: all(images(p)["mosn-2"] == "tinyqian/mosn:v2" for p in pods_of(kube, namespace)), timeout=30,
                      message="the Upgrade writes")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    mid = pods_of(kube, namespace)
    assert all(images(p)["mosn-1"] == "tinyqian/mosn:v1" for p in mid), "killed before any reset"
    result, out = upgrade(kube, v2, namespace)
    stop.set()
    watcher.join()
    assert result["summary"]["done"] == 3, out.stdout
    for pod in pods_of(kube, namespace):
        assert images(pod)["mosn-1"] == EMPTY and images(pod)["mosn-2"] == "tinyqian/mosn:v2"
    assert violations == []


def test_concurrent_writer_annotations_are_never_lost(kube, namespace, tmp_path):
    create_injected_deployment(kube, mosn_raw(), "busy", namespace, 20)
    pods = wait_ready(kube, namespace, 20, timeout=120)
    names = [p["metadata"]["name"] for p in pods]
    stop = threading.Event()
    written = {}

    def writer():
        n = 0
        while not stop.is_set():
            for name in names:
                n += 1
                body = {"metadata": {"labels": {"writer": str(n % 7)}, "annotations": {"writer.example.com/%d" % (n % 50): str(n)}}}
                kube.core.patch_namespaced_pod(name, namespace, body, _content_type="application/merge-patch+json")
                written.setdefault(name, {})["writer.example.com/%d" % (n % 50)] = str(n)
                if stop.wait(0.05):
                    break
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        v2 = write_yaml(tmp_path / "v2.yaml", mosn_raw("tinyqian/mosn:v2"))
        result, proc = upgrade(kube, v2, namespace, label_selector="app=busy", timeout=120)
    finally:
        stop.set()
        thread.join()
    assert result["summary"]["done"] == 20, proc.stdout
    for pod in pods_of(kube, namespace):
        ann = annotations(pod)
        for key, value in written.get(pod["metadata"]["name"], {}).items():
            assert ann.get(key) == value, (pod["metadata"]["name"], key)
        assert images(pod)["mosn-2"] == "tinyqian/mosn:v2"


def test_least_privilege_token_can_upgrade(kube, namespace, one_pod, least_privilege, tmp_path):
    v2 = write_yaml(tmp_path / "v2.yaml", mosn_raw("tinyqian/mosn:v2"))
    env = dict(least_privilege.env)
    result, proc = run_module("sidecar_upgrade", dict(sidecarset=v2, namespace=namespace, timeout=60), env=env)
    assert result["summary"]["done"] == 1, proc.stdout
    info, proc = run_module("sidecarset_info", dict(sidecarset=v2, namespace=namespace), env=env)
    assert info["status"]["updatedReadyPods"] == 1, proc.stdout


def test_one_batch_across_two_namespaces(kube, namespace, tmp_path):
    other = namespace + "-b"
    kube.core.create_namespace({"metadata": {"name": other}})
    try:
        create_injected_deployment(kube, mosn_raw(), "left", namespace, 2)
        create_injected_deployment(kube, mosn_raw(), "right", other, 2)
        left = wait_ready(kube, namespace, 2)
        right = wait_ready(kube, other, 2)
        v2 = write_yaml(tmp_path / "v2.yaml", mosn_raw("tinyqian/mosn:v2"))
        refs = ["%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"]) for p in left] + \
            [{"namespace": p["metadata"]["namespace"], "name": p["metadata"]["name"]} for p in right]
        result, proc = run_module("sidecar_upgrade", dict(sidecarset=v2, pods=refs, timeout=60), env=kube.env)
        assert result["summary"]["done"] == 4, proc.stdout
        for ns in (namespace, other):
            for pod in pods_of(kube, ns):
                assert images(pod)["mosn-2"] == "tinyqian/mosn:v2" and images(pod)["mosn-1"] == EMPTY
    finally:
        kube.core.delete_namespace(other)


def test_rollback_in_a_later_call_restores_the_old_state(kube, namespace, one_pod, tmp_path):
    broken = write_yaml(tmp_path / "broken.yaml", mosn_raw("tinyqian/mosn:broken"))
    result, proc = upgrade(kube, broken, namespace, timeout=8)
    assert result["pods"][0]["phase"] == "failed", proc.stdout
    result, proc = upgrade(kube, broken, namespace, timeout=20, rollback=True)
    assert result["pods"][0]["phase"] == "rolled-back", proc.stdout
    pod = pods_of(kube, namespace)[0]
    assert images(pod)["mosn-1"] == "tinyqian/mosn:v1" and images(pod)["mosn-2"] == EMPTY
    assert working(pod) == "mosn-1"
    assert versions(pod)[0] == "1" and versions(pod)[2] == "0"
    info, proc = run_module("sidecarset_info", dict(sidecarset=broken, namespace=namespace), env=kube.env)
    assert info["status"]["updatedPods"] == 0, proc.stdout  # the broken hash is not recorded as reached


def test_batches_run_one_after_another_and_stop_after_a_failed_batch(kube, namespace, tmp_path):
    """``batches``: three batches in one invocation run strictly in turn (each starts after the previous ended, so
    never more than one batch is in flight); with a broken image the first batch fails and the other two are not
    started - their pods keep their containers untouched."""
    create_injected_deployment(kube, mosn_raw(), "test-app", namespace, 6)
    before = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, 6)}
    names = sorted(before)
    batches = [names[0:2], names[2:4], ["%s/%s" % (namespace, n) for n in names[4:6]]]

    v2 = write_yaml(tmp_path / "v2.yaml", mosn_raw("tinyqian/mosn:v2"))
    result, proc = upgrade(kube, v2, namespace, batches=batches)
    assert not result.get("failed"), proc.stdout[-3000:]
    assert result["stopped"] == "" and [b["index"] for b in result["batches"]] == [1, 2, 3]
    assert [b["pods"] for b in result["batches"]] == [["%s/%s" % (namespace, n) for n in names[i:i + 2]] for i in (0, 2, 4)]
    for first, second in zip(result["batches"], result["batches"][1:]):
        assert first["ended"] <= second["started"], result["batches"]
    assert {p["name"]: p["batch"] for p in result["pods"]} == {n: 1 + i // 2 for i, n in enumerate(names)}
    assert all(p["phase"] == "done" and p["writes"] == ["upgrade", "reset"] for p in result["pods"]), result["pods"]
    upgraded = {p["metadata"]["name"]: p for p in pods_of(kube, namespace)}
    assert all(images(upgraded[n])["mosn-2"] == "tinyqian/mosn:v2" for n in names)
    assert result["api_requests"]["list"] == 1 and result["api_requests"]["watch"] == 1  # one watch for all batches

    broken = write_yaml(tmp_path / "broken.yaml", mosn_raw("tinyqian/mosn:broken"))
    result, proc = upgrade(kube, broken, namespace, batches=batches, timeout=30, fail_on_pod_failure=False)
    assert "batch 1: 2 of 2 pods failed (max_fail_percentage 0%); 2 later batches not started" == result["stopped"], result
    assert [b["index"] for b in result["batches"]] == [1]
    assert {p["name"] for p in result["pods"]} == set(names[0:2])
    assert all(p["failed"] for p in result["pods"])
    after = {p["metadata"]["name"]: p for p in pods_of(kube, namespace)}
    for name in names[2:]:
        assert images(after[name]) == images(upgraded[name]), name  # never touched
        assert after[name]["metadata"]["resourceVersion"] == upgraded[name]["metadata"]["resourceVersion"], name
    for name in names[0:2]:
        assert images(after[name])["mosn-2"] == "tinyqian/mosn:v2"  # the old sidecar keeps serving
        assert images(after[name])["mosn-1"] == "tinyqian/mosn:broken"
