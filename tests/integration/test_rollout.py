"""The rollout role/playbook against the real API server (local control plane + node simulator).

Also holds the helpers the other rollout/inventory/AWX tests import (``rollout_env``, ``make_app``,
``run_playbook``, ...).
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from workloads import create_injected_deployment, pods_of

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_BIN = Path(sys.executable).parent
PLAYBOOKS = ROOT / "playbooks"
EMPTY = "mesh/proxy:empty"


# ------------------------------------------------------------------------------------------ helpers


def sidecarset_doc(image, name="mesh", label="mesh", max_unavailable=None, partition=None, post_start=True):
    container = {
        "name": "proxy",
        "image": image,
        "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": EMPTY},
    }
    if post_start:
        container["lifecycle"] = {"postStart": {"exec": {"command": ["/bin/sh", "-c", "/migrate.sh"]}}}
    strategy = {"type": "RollingUpdate"}
    if max_unavailable is not None:
        strategy["maxUnavailable"] = max_unavailable
    if partition is not None:
        strategy["partition"] = partition
    return {
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {label: "on"}}, "containers": [container], "updateStrategy": strategy},
    }


def write_yaml(path, doc):
    path = Path(path)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def make_app(kube, namespace, name, replicas, sidecarset, label="mesh", app_image="app:1"):
    """Create a Deployment whose pod template is injected with ``sidecarset`` (a dict)."""
    create_injected_deployment(kube, sidecarset, name, namespace, replicas, labels={label: "on"}, app_image=app_image,
                               container="app", grace_period=0)


def is_ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def wait_ready(kube, namespace, count, timeout=120):
    def ready():
        pods = pods_of(kube, namespace)
        return pods if len(pods) == count and all(is_ready(p) for p in pods) else None

    return kube.wait_for(ready, timeout=timeout, message="%d ready pods in %s" % (count, namespace))


def images(pod):
    return {c["name"]: c["image"] for c in pod["spec"]["containers"]}


def container_ids(pod):
    return {c["name"]: c.get("containerID") for c in (pod.get("status") or {}).get("containerStatuses") or []}


def working_image(pod):
    """The image of the twin that serves (the one that is not on the empty image)."""
    real = [image for name, image in images(pod).items() if name.startswith("proxy-") and image != EMPTY]
    assert len(real) == 1, images(pod)
    return real[0]


def ansible_env(kube, **extra):
    env = dict(os.environ)
    env.update(kube.env)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PIPELINING="1",
        PYTHONWARNINGS="ignore",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_playbook(kube, playbook, extra_vars=None, string_vars=None, json_output=True, timeout=600, env=None, args=()):
    """Run a playbook; ``extra_vars`` go through a JSON file (typed), ``string_vars`` as ``-e k=v`` strings."""
    cmd = [str(ANSIBLE_BIN / "ansible-playbook"), str(playbook)]
    tmp = None
    if extra_vars:
        import tempfile  # pylint: disable=import-outside-toplevel

        tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(extra_vars, tmp)
        tmp.close()
        cmd += ["-e", "@" + tmp.name]
    for key, value in (string_vars or {}).items():
        cmd += ["-e", "%s=%s" % (key, value)]
    cmd += list(args)
    run_env = ansible_env(kube, **(env or {}))
    try:
        proc = subprocess.run(cmd, cwd=str(ROOT), env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        if tmp:
            os.unlink(tmp.name)
    return proc


def custom_stats(proc):
    """The ``set_stats`` data (``show_custom_stats`` prints it as ``RUN: {json}``)."""
    for line in proc.stdout.splitlines():
        if line.strip().startswith("RUN: {"):
            return json.loads(line.strip()[len("RUN: "):])
    return {}


def total_changed(proc):
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", proc.stdout.split("PLAY RECAP")[-1]))


def task_messages(proc, name_part):
    """The ``msg`` lines printed by debug tasks whose name contains ``name_part``."""
    out = []
    for block in proc.stdout.split("\nTASK [")[1:]:
        if name_part in block.split("]", 1)[0] or name_part in block.split("\n", 1)[0]:
            out += re.findall(r'"msg": "(.*)"', block)
    return out


class ReadinessWatch:
    """Counts, from a pod watch, the most pods of a namespace that were not Ready at the same time."""

    def __init__(self, kube, namespace):
        from kubernetes import watch  # pylint: disable=import-outside-toplevel

        self.kube, self.namespace = kube, namespace
        self.watch = watch.Watch()
        self.not_ready = set()
        self.max_not_ready = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self._stream()
        except Exception:  # pylint: disable=broad-except
            pass  # the stream is closed by stop()

    def _stream(self):
        pods = self.kube.core.list_namespaced_pod(self.namespace)
        for event in self.watch.stream(self.kube.core.list_namespaced_pod, self.namespace,
                                       resource_version=pods.metadata.resource_version, timeout_seconds=600):
            pod = self.kube.plain(event["object"])
            name = pod["metadata"]["name"]
            if event["type"] == "DELETED" or is_ready(pod):
                self.not_ready.discard(name)
            else:
                self.not_ready.add(name)
            self.max_not_ready = max(self.max_not_ready, len(self.not_ready))

    def __enter__(self):
        self.thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)
        self.watch.stop()


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.slow
@pytest.mark.parametrize("strategy,per_call", [("window", 1), ("batches", 1), ("batches", 0)],
                         ids=["window", "one-call-per-batch", "batches-grouped"])
def test_rollout_30_pods_3_zones_canary_partition(nodesim, namespace, tmp_path, strategy, per_call):
    """30 pods, 3 zones, 25%, partition 3, canary 2 with a pause; in a continuous window (the default), with one
    sidecar_upgrade call per batch, and with the batches after the canary grouped into one call
    (rollout_batches_per_call=0): never more than maxUnavailable pods unavailable."""
    kube = nodesim
    v1 = sidecarset_doc("mesh/proxy:v1", max_unavailable="25%", partition=3)
    for app in ("alpha", "beta", "gamma"):
        make_app(kube, namespace, app, 10, v1)
    before = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, 30)}
    nodes = {n.metadata.name: n.metadata.labels.get("topology.kubernetes.io/zone") for n in kube.core.list_node().items}
    assert len({nodes[p["spec"]["nodeName"]] for p in before.values()}) == 3

    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2", max_unavailable="25%", partition=3))
    report = tmp_path / "report.json"
    variables = {
        "rollout_sidecarset": v2, "rollout_namespace": namespace, "rollout_canary": 2,
        "rollout_canary_pause_seconds": 2, "rollout_report_path": str(report), "rollout_batches_per_call": per_call,
        "rollout_strategy": strategy,
    }
    with ReadinessWatch(kube, namespace) as watch:
        proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", variables)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]

    data = json.loads(report.read_text())
    plan = data["plans"][0]
    assert plan["matched"] == 30 and plan["max_unavailable"] == 8 and plan["partition"] == 3
    partitioned = {p["name"] for p in plan["partitioned_pods"]}
    assert len(partitioned) == 3

    after = {p["metadata"]["name"]: p for p in pods_of(kube, namespace)}
    assert set(after) == set(before)  # same pods: nothing was recreated
    for name, pod in after.items():
        assert pod["metadata"]["uid"] == before[name]["metadata"]["uid"]
        if name in partitioned:
            assert images(pod) == images(before[name]) and container_ids(pod) == container_ids(before[name])
        else:
            assert working_image(pod) == "mesh/proxy:v2", name
            assert container_ids(pod)["app"] == container_ids(before[name])["app"]  # the app never restarted
        assert is_ready(pod)

    # batches: canary of 2, then maxUnavailable (8) at most, one after another, and the pause after the canary
    batches = data["batches"]
    assert [b["kind"] for b in batches][0] == "canary" and batches[0]["size"] == 2
    if strategy == "window":
        _check_window(data, batches, watch, proc)
        return
    assert [b["size"] for b in batches] == [2, 8, 8, 8, 1]
    assert all(b["size"] <= b["max_unavailable"] == 8 for b in batches)
    for first, second in zip(batches, batches[1:]):
        assert first["ended"] <= second["started"]
    assert batches[1]["started"] - batches[0]["ended"] >= 2.0  # the canary pause
    by_batch = {}
    for pod in data["pods"]:
        by_batch.setdefault(pod["batch"], []).append(pod)
        assert pod["phase"] == "done" and pod["writes"] == ["upgrade", "reset"], pod
        # each pod was unavailable (from its upgrade write to the end of its reset) inside its batch's window
        assert pod["timings"]["total"] <= batches[pod["batch"] - 1]["seconds"] + 0.01
    assert sorted(len(v) for v in by_batch.values()) == sorted(b["size"] for b in batches)
    assert {p["name"] for p in data["pods"]} == set(before) - partitioned
    # the live watch agrees: never more than maxUnavailable pods not ready at once
    assert 1 <= watch.max_not_ready <= 8, watch.max_not_ready

    stats = custom_stats(proc)["sidecar_rollout"]
    assert stats["upgraded"] == 27 and stats["failed"] == 0 and stats["partitioned"] == 3
    assert stats["batches"] == 5 and stats["matched"] == 30 and stats["stopped"] == ""
    assert any("batch 1/5 (canary, 2 pods): done=2" in m for m in task_messages(proc, "Report the batch"))
    lines = task_messages(proc, "Report the batch")
    assert len(lines) == 5 and all("batch %d/5" % (i + 1) in line for i, line in enumerate(lines)), lines
    # one sidecar_upgrade invocation per batch, or the canary alone and the other four batches in one
    assert proc.stdout.count("TASK [meshops.sidecarset.rollout : Upgrade the batch") == (5 if per_call == 1 else 2)

    # re-running changes nothing
    again = run_playbook(kube, PLAYBOOKS / "rollout.yml", variables)
    assert again.returncode == 0, again.stdout[-3000:]
    assert total_changed(again) == 0
    stats = custom_stats(again)["sidecar_rollout"]
    assert stats["upgraded"] == 0 and stats["batches"] == 0 and stats["partitioned"] == 3
    assert {p["metadata"]["name"]: container_ids(p) for p in pods_of(kube, namespace)} == {n: container_ids(p) for n, p in after.items()}


def _check_window(data, batches, watch, proc):
    """The window run: the canary, then one window of 25 pods; at most 8 in flight at any moment (from the
    per-pod start and end times of the report, and from a live watch of readiness)."""
    assert [(b["kind"], b["size"]) for b in batches] == [("canary", 2), ("window", 25)]
    assert batches[0]["ended"] <= batches[1]["started"] and batches[1]["started"] - batches[0]["ended"] >= 2.0
    spans = []
    for pod in data["pods"]:
        assert pod["phase"] == "done" and pod["writes"] == ["upgrade", "reset"], pod
        spans.append((pod["started_at"], 1))
        # both figures are rounded to 1 ms: a pod that started right after another ended may seem to overlap it
        spans.append((pod["started_at"] + pod["timings"]["total"] - 0.002, -1))
    level = peak = 0
    for dummy, delta in sorted(spans, key=lambda item: (item[0], item[1])):
        level += delta
        peak = max(peak, level)
    assert 2 <= peak <= 8, peak
    assert 1 <= watch.max_not_ready <= 8, watch.max_not_ready
    lines = task_messages(proc, "Report the batch")
    assert len(lines) == 2 and "batch 2/2 (window, 25 pods): done=25" in lines[1], lines
    assert custom_stats(proc)["sidecar_rollout"]["upgraded"] == 27


def _broken_canary(kube, namespace, tmp_path, rollback):
    v1 = sidecarset_doc("mesh/proxy:v1", max_unavailable=2)
    make_app(kube, namespace, "web", 6, v1)
    before = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, 6)}
    broken = write_yaml(tmp_path / "broken.yaml", sidecarset_doc("mesh/proxy:broken", max_unavailable=2))
    report = tmp_path / "report.json"
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {
        "rollout_sidecarset": broken, "rollout_namespace": namespace, "rollout_canary": 2,
        "rollout_canary_pause_seconds": 1, "rollout_report_path": str(report), "rollout_timeout": 60,
        "rollout_rollback_on_failure": rollback,
    })
    assert proc.returncode != 0, proc.stdout[-3000:]
    data = json.loads(report.read_text())
    assert len(data["batches"]) == 1 and data["batches"][0]["kind"] == "canary"
    assert "2 of 2 pods failed" in data["result"]["stopped"]
    canary = {p["name"] for p in data["pods"]}
    assert len(canary) == 2
    # the batch that stops the rollout still prints its line
    lines = task_messages(proc, "Report the batch")
    assert len(lines) == 1 and "(canary, 2 pods)" in lines[0] and ("rolled-back=2" if rollback else "failed=2") in lines[0], lines
    return before, canary, data, proc


@pytest.mark.slow
def test_broken_canary_stops_with_old_sidecars_serving(nodesim, namespace, tmp_path):
    kube = nodesim
    before, canary, data, proc = _broken_canary(kube, namespace, tmp_path, rollback=False)
    assert all(p["phase"] == "failed" for p in data["pods"])
    assert custom_stats(proc)["sidecar_rollout"]["failed"] == 2
    for pod in pods_of(kube, namespace):
        name = pod["metadata"]["name"]
        old = before[name]
        if name in canary:
            # the old twin still runs the old image, never restarted; the new twin cannot pull
            (old_twin,) = [n for n, i in images(old).items() if i == "mesh/proxy:v1"]
            assert images(pod)[old_twin] == "mesh/proxy:v1"
            assert container_ids(pod)[old_twin] == container_ids(old)[old_twin]
            assert "mesh/proxy:broken" in images(pod).values()
        else:
            assert images(pod) == images(old) and container_ids(pod) == container_ids(old)


@pytest.mark.slow
def test_broken_canary_rolls_back(nodesim, namespace, tmp_path):
    kube = nodesim
    before, canary, data, dummy = _broken_canary(kube, namespace, tmp_path, rollback=True)
    assert all(p["phase"] == "rolled-back" for p in data["pods"]), data["pods"]

    def back():
        pods = {p["metadata"]["name"]: p for p in pods_of(kube, namespace)}
        return pods if all(images(pods[n]) == images(before[n]) and is_ready(pods[n]) for n in pods) else None

    pods = kube.wait_for(back, timeout=60, message="canary pods back on the old images")
    for name in set(pods) - canary:
        assert container_ids(pods[name]) == container_ids(before[name])
