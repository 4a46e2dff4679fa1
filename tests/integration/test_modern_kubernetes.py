"""What a modern API server (1.33-1.36) stores of our online injection: CronJobs on batch/v1, native sidecars
(``initContainers[].restartPolicy: Always``) kept, owned ReplicaSets left to their Deployment, server warnings and
unknown fields refused with their path."""

import json

import pytest

from modrun import run_module
from workloads import deployment, pods_of, wait_ready, write_yaml

pytestmark = pytest.mark.integration

SELECTOR = {"matchLabels": {"app": "shop"}}


def sidecarset(name, namespace, containers=None, init_containers=None):
    spec = {"selector": SELECTOR, "namespace": namespace}
    if containers:
        spec["containers"] = containers
    if init_containers:
        spec["initContainers"] = init_containers
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name}, "spec": spec}


PROXY = {"name": "proxy", "image": "registry.local/mesh/proxy:1.0.0", "env": [{"name": "MODE", "value": "sidecar"}]}
NATIVE = {"name": "native-proxy", "image": "registry.local/mesh/proxy:1.0.0", "restartPolicy": "Always",
          "volumeMounts": [{"name": "mesh-run", "mountPath": "/run/mesh"}]}


def is_subset(written, stored, path="$"):
    """Every field we wrote is stored unchanged (the server may add defaults around it)."""
    if isinstance(written, dict):
        assert isinstance(stored, dict), "%s: stored %r" % (path, stored)
        for key, value in written.items():
            assert key in stored, "%s.%s: dropped by the server" % (path, key)
            is_subset(value, stored[key], "%s.%s" % (path, key))
    elif isinstance(written, list):
        assert isinstance(stored, list) and len(stored) == len(written), "%s: %r != %r" % (path, stored, written)
        for i, (a, b) in enumerate(zip(written, stored)):
            is_subset(a, b, "%s[%d]" % (path, i))
    else:
        assert written == stored, "%s: wrote %r, stored %r" % (path, written, stored)


def without_timestamps(template):
    """The template with the hash annotations' ``updateTimestamp`` removed (the time of each rendering)."""
    out = json.loads(json.dumps(template))
    annotations = (out.get("metadata") or {}).get("annotations") or {}
    for key in ("kruise.io/sidecarset-hash", "kruise.io/sidecarset-hash-without-image"):
        if key in annotations:
            entries = json.loads(annotations[key])
            for entry in entries.values():
                entry.pop("updateTimestamp", None)
            annotations[key] = entries
    return out


def inject(kube, tmp_path, ss, namespace, workloads=None):
    args = dict(sidecarsets=[write_yaml(tmp_path / ("%s.yaml" % ss["metadata"]["name"]), ss)], namespace=namespace)
    if workloads:
        args["workloads"] = workloads
    return run_module("sidecar_inject", args, env=kube.env)


def test_cronjob_on_batch_v1_injected_online_reads_back_as_written(kube, namespace, tmp_path):
    job_template = {"metadata": {"labels": {"app": "shop"}}, "spec": {"restartPolicy": "OnFailure", "containers": [
        {"name": "app", "image": "nginx:1.20"}]}}
    kube.batch.create_namespaced_cron_job(namespace, {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "suspend": True, "jobTemplate": {"spec": {"template": job_template}}}})
    ss = sidecarset("cron-mesh", namespace, containers=[PROXY])
    result, proc = inject(kube, tmp_path, ss, namespace, ["CronJob/nightly"])
    assert result["changed"] is True and result["results"][0]["status"] == "injected", proc.stdout + proc.stderr
    stored = kube.plain(kube.batch.read_namespaced_cron_job("nightly", namespace))
    assert stored["apiVersion"] == "batch/v1"
    template = stored["spec"]["jobTemplate"]["spec"]["template"]
    assert [c["name"] for c in template["spec"]["containers"]] == ["proxy", "app"]
    offline, proc = run_module("sidecar_inject", dict(sidecarsets=[write_yaml(tmp_path / "again.yaml", ss)], manifests=[
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": namespace},
         "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": job_template}}}}]), env=kube.env)
    written = offline["documents"][0]["spec"]["jobTemplate"]["spec"]["template"]
    is_subset(without_timestamps(written), without_timestamps(template))
    again, proc = inject(kube, tmp_path, ss, namespace, ["CronJob/nightly"])
    assert again["changed"] is False and again["results"][0]["status"] == "unchanged", proc.stdout


def test_native_sidecar_round_trips_and_runs(kube, namespace, tmp_path):
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", namespace, 1, labels={"app": "shop"}))
    wait_ready(kube, namespace, 1, selector="app=shop")
    ss = sidecarset("native", namespace, init_containers=[NATIVE])
    ss["spec"]["volumes"] = [{"name": "mesh-run", "emptyDir": {}}]
    ss["spec"]["updateStrategy"] = {"type": "NotUpdate"}  # Kruise's rule for native sidecars
    result, proc = inject(kube, tmp_path, ss, namespace, ["Deployment/shop"])
    assert result["changed"] is True, proc.stdout + proc.stderr
    stored = kube.plain(kube.apps.read_namespaced_deployment("shop", namespace))
    init = stored["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["native-proxy"]
    assert init[0]["restartPolicy"] == "Always"  # 1.20 dropped this field silently
    assert {"name": "mesh-run", "mountPath": "/run/mesh"}.items() <= init[0]["volumeMounts"][0].items()

    def injected_pod_ready():
        pods = pods_of(kube, namespace, "app=shop")
        if len(pods) != 1 or not (pods[0]["spec"].get("initContainers") or []):
            return None
        return wait_ready(kube, namespace, 1, selector="app=shop", timeout=1)[0]

    pod = kube.wait_for(injected_pod_ready, timeout=60, message="the pod with the native sidecar to be Ready")
    assert pod["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    if kube.nodesim:
        status = pod["status"]["initContainerStatuses"][0]
        assert status["name"] == "native-proxy" and status["started"] and status["ready"]
        assert "running" in status["state"] and status["state"]["running"]


def test_selector_injection_leaves_the_deployments_replicaset_alone(kube, namespace, tmp_path):
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", namespace, 2, labels={"app": "shop"}))
    wait_ready(kube, namespace, 2, selector="app=shop")
    ss = sidecarset("by-selector", namespace, containers=[PROXY])
    result, proc = inject(kube, tmp_path, ss, namespace)
    by_kind = {(r["kind"], r["status"]) for r in result["results"]}
    assert ("Deployment", "injected") in by_kind and ("ReplicaSet", "skipped") in by_kind, proc.stdout
    rs = [r for r in result["results"] if r["kind"] == "ReplicaSet"][0]
    assert rs["reason"].startswith("managed by Deployment/shop")

    def all_injected():
        pods = pods_of(kube, namespace, "app=shop")
        ok = len(pods) == 2 and all([c["name"] for c in p["spec"]["containers"]][0] == "proxy" for p in pods)
        return ok and wait_ready(kube, namespace, 2, selector="app=shop", timeout=1)

    kube.wait_for(all_injected, timeout=90, message="both pods recreated with the sidecar")


def test_unknown_field_is_refused_with_its_path_and_nothing_written(kube, namespace, tmp_path):
    """An unknown pod-template field in a SidecarSet fails the run with its path and leaves the workload as it was.
    (Our validation refuses it before the API server's fieldValidation=Strict would: that the PUT asks for Strict
    is checked in tests/unit/plugins/module_utils/test_kube.py.)"""
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", namespace, 1, labels={"app": "shop"}))
    ss = sidecarset("strict", namespace, containers=[dict(PROXY, volumeMounts=[{"name": "odd", "mountPath": "/x"}])])
    ss["spec"]["volumes"] = [{"name": "odd", "emptyDir": {}, "emptyDirr": {}}]
    result, proc = inject(kube, tmp_path, ss, namespace, ["Deployment/shop"])
    assert result.get("failed"), (result, proc.stdout)
    assert "spec.volumes[0].emptyDirr: unknown field" in result["msg"], result
    stored = kube.plain(kube.apps.read_namespaced_deployment("shop", namespace))
    assert [c["name"] for c in stored["spec"]["template"]["spec"]["containers"]] == ["shop"]
