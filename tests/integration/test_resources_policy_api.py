"""Kruise v1.9 ``resourcesPolicy`` round-tripped through the API server (issue 16): the example SidecarSet
(examples/sidecarsets/resources-policy.yaml) on the example app (examples/manifests/sized-app.yaml), injected
offline (the module returns the documents, we create them) and online (the module writes the live Deployment's
template). Both times the API server stores exactly the computed quantities, the Deployment's pods carry them,
and a second online run finds nothing to change (what we compute is what the API server keeps)."""

import copy
import os

import pytest
import yaml

from modrun import ROOT, run_module
from workloads import pods_of, wait_ready

SIDECARSET = os.path.join(ROOT, "examples", "sidecarsets", "resources-policy.yaml")
APP = os.path.join(ROOT, "examples", "manifests", "sized-app.yaml")

# the values docs/resources-policy.md and the example's header give
EXPECTED = {
    "proxy": {"limits": {"cpu": "300m", "memory": "200Mi"}, "requests": {"cpu": "150m", "memory": "100Mi"}},
    "log-agent": {"requests": {"cpu": "20m", "memory": "32Mi"}},
}
ORDER = ["proxy", "web", "worker", "metrics", "log-agent"]


def _app(namespace):
    with open(APP) as handle:
        doc = yaml.safe_load(handle)
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = namespace
    return doc


def _sidecar_resources(containers):
    return {c["name"]: c.get("resources") or {} for c in containers if c["name"] in EXPECTED}


def _check_pods(kube, namespace):
    def recreated():
        pods = pods_of(kube, namespace, "app=sized")
        good = len(pods) == 2 and all([c["name"] for c in p["spec"]["containers"]] == ORDER for p in pods)
        return good and wait_ready(kube, namespace, 2, selector="app=sized", timeout=1)

    pods = kube.wait_for(recreated, timeout=120, message="2 pods with the sized sidecars, Ready")
    for pod in pods:
        assert _sidecar_resources(pod["spec"]["containers"]) == EXPECTED, pod["metadata"]["name"]


def test_offline_documents_created_as_computed(kube, namespace):
    result, proc = run_module("sidecar_inject", {"sidecarsets": [SIDECARSET], "manifests": [_app(namespace)]})
    assert not result.get("failed"), proc.stdout[-3000:]
    doc = result["documents"][0]
    assert _sidecar_resources(doc["spec"]["template"]["spec"]["containers"]) == EXPECTED
    kube.apps.create_namespaced_deployment(namespace, doc)
    live = kube.plain(kube.apps.read_namespaced_deployment("sized-app", namespace))
    assert _sidecar_resources(live["spec"]["template"]["spec"]["containers"]) == EXPECTED
    _check_pods(kube, namespace)


def test_online_template_written_as_computed_and_second_run_is_a_no_op(kube, namespace):
    kube.apps.create_namespaced_deployment(namespace, _app(namespace))
    wait_ready(kube, namespace, 2, selector="app=sized")
    args = {"sidecarsets": [SIDECARSET], "namespace": namespace, "workloads": ["Deployment/sized-app"]}
    result, proc = run_module("sidecar_inject", args, env=kube.env)
    assert result.get("changed") and not result.get("failed"), proc.stdout[-3000:]
    live = kube.plain(kube.apps.read_namespaced_deployment("sized-app", namespace))
    containers = live["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ORDER
    assert _sidecar_resources(containers) == EXPECTED
    _check_pods(kube, namespace)
    again, proc = run_module("sidecar_inject", args, env=kube.env)
    assert not again.get("failed") and not again.get("changed"), proc.stdout[-3000:]


def test_online_pod_without_a_target_is_refused_and_nothing_written(kube, namespace, tmp_path):
    """The webhook refuses a pod none of whose containers the regex selects; we refuse the workload."""
    with open(SIDECARSET) as handle:
        raw = yaml.safe_load(handle)
    raw["spec"]["containers"] = raw["spec"]["containers"][:1]
    raw["spec"]["containers"][0]["resourcesPolicy"]["targetContainersNameRegex"] = "^nothing$"
    path = tmp_path / "no-target.yaml"
    path.write_text(yaml.safe_dump(raw))
    kube.apps.create_namespaced_deployment(namespace, _app(namespace))
    before = kube.apps.read_namespaced_deployment("sized-app", namespace).metadata.generation
    result, proc = run_module("sidecar_inject", {"sidecarsets": [str(path)], "namespace": namespace}, env=kube.env)
    assert result.get("failed"), proc.stdout[-3000:]
    assert 'no containers match the regex pattern "^nothing$"' in result["msg"]
    assert result["msg"].startswith("manifest (%s/Deployment/sized-app): spec.template.spec.containers: " % namespace)
    # the Deployment controller writes status (resourceVersion moves); the spec was not written
    live = kube.apps.read_namespaced_deployment("sized-app", namespace)
    assert live.metadata.generation == before
    assert [c.name for c in live.spec.template.spec.containers] == ["web", "worker", "metrics"]


pytestmark = pytest.mark.integration
