"""SidecarSet revisions without Kruise (issue 16): ``record_revision`` keeps the ControllerRevision of each spec we
inject online in ``revision_namespace`` (Kruise's name, labels and data), and ``injectionStrategy.revision`` names
one of them: online from the namespace, offline from the revisions read back through the API server."""

import json

import pytest

from modrun import run_module
from workloads import deployment, write_yaml

from ansible_collections.meshops.sidecarset.plugins.module_utils.revisions import new_revision
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import normalize_sidecarset


def _sidecarset(image, revision=None):
    spec = {"selector": {"matchLabels": {"mesh": "rev"}}, "containers": [{"name": "proxy", "image": image}]}
    if revision:
        spec["injectionStrategy"] = {"revision": revision}
    return {"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": "rev-mesh"}, "spec": spec}


def _template(kube, namespace, name):
    live = kube.plain(kube.apps.read_namespaced_deployment(name, namespace))
    return live["spec"]["template"]


def _revisions(kube, namespace):
    items = kube.plain(
        kube.apps.list_namespaced_controller_revision(namespace, label_selector="kruise.io/sidecarset-name=rev-mesh").items)
    return sorted(items, key=lambda r: r["revision"])


def test_recorded_revision_is_injected_online_and_offline(kube, namespace, tmp_path):
    v1 = write_yaml(tmp_path / "v1.yaml", _sidecarset("registry.local/mesh/proxy:1.0.0"))
    kube.apps.create_namespaced_deployment(namespace, deployment("first", namespace, 1, labels={"mesh": "rev"}))
    common = {"namespace": namespace, "revision_namespace": namespace, "record_revision": True}
    result, proc = run_module("sidecar_inject", dict(common, sidecarsets=[v1], workloads=["Deployment/first"]),
                              env=kube.env)
    assert result.get("changed") and not result.get("failed"), proc.stdout[-3000:]
    expected_name = new_revision(normalize_sidecarset(_sidecarset("registry.local/mesh/proxy:1.0.0")), namespace, 1)[
        "metadata"]["name"]
    assert result["revisions"]["rev-mesh"]["action"] == "create"
    assert result["revisions"]["rev-mesh"]["name"] == expected_name
    stored = _revisions(kube, namespace)
    assert [r["metadata"]["name"] for r in stored] == [expected_name] and stored[0]["revision"] == 1
    assert stored[0]["metadata"]["labels"]["controller.kubernetes.io/hash"] == expected_name.rsplit("-", 1)[1]
    entry = json.loads(_template(kube, namespace, "first")["metadata"]["annotations"]["kruise.io/sidecarset-hash"])
    assert entry["rev-mesh"]["controllerRevision"] == expected_name

    # v2 names the v1 revision: v2's spec is recorded too, but new workloads get v1's sidecar
    v2 = write_yaml(tmp_path / "v2.yaml", _sidecarset("registry.local/mesh/proxy:2.0.0",
                                                      {"revisionName": expected_name, "policy": "Always"}))
    kube.apps.create_namespaced_deployment(namespace, deployment("second", namespace, 1, labels={"mesh": "rev"}))
    result, proc = run_module("sidecar_inject", dict(common, sidecarsets=[v2], workloads=["Deployment/second"]),
                              env=kube.env)
    assert not result.get("failed"), proc.stdout[-3000:]
    assert result["revisions"]["rev-mesh"]["action"] == "create"
    stored = _revisions(kube, namespace)
    assert [r["revision"] for r in stored] == [1, 2]
    containers = _template(kube, namespace, "second")["spec"]["containers"]
    expected = [("proxy", "registry.local/mesh/proxy:1.0.0"), ("second", "nginx:1.20")]
    assert [(c["name"], c["image"]) for c in containers] == expected
    entry = json.loads(_template(kube, namespace, "second")["metadata"]["annotations"]["kruise.io/sidecarset-hash"])
    assert entry["rev-mesh"]["controllerRevision"] == expected_name

    # recording v2 again reuses its revision
    result, proc = run_module("sidecar_inject", dict(common, sidecarsets=[v2], workloads=["Deployment/second"]),
                              env=kube.env)
    assert not result.get("failed") and not result.get("changed"), proc.stdout[-3000:]
    assert result["revisions"]["rev-mesh"]["action"] == "none" and len(_revisions(kube, namespace)) == 2

    # offline, the revisions as read back from the API server
    app = deployment("offline", namespace, 1, labels={"mesh": "rev"})
    result, proc = run_module("sidecar_inject", {"sidecarsets": [v2], "manifests": [app],
                                                 "revisions": _revisions(kube, namespace)})
    assert not result.get("failed"), proc.stdout[-3000:]
    containers = result["documents"][0]["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "registry.local/mesh/proxy:1.0.0"


def test_a_revision_that_does_not_exist_fails_the_task(kube, namespace, tmp_path):
    gone = write_yaml(tmp_path / "gone.yaml", _sidecarset("registry.local/mesh/proxy:2.0.0", {"revisionName": "gone"}))
    kube.apps.create_namespaced_deployment(namespace, deployment("third", namespace, 1, labels={"mesh": "rev"}))
    result, proc = run_module("sidecar_inject", {"sidecarsets": [gone], "namespace": namespace,
                                                 "revision_namespace": namespace}, env=kube.env)
    assert result.get("failed"), proc.stdout[-3000:]
    assert 'spec.injectionStrategy.revision.revisionName: controllerrevisions.apps "gone" not found' in result["msg"]
    assert [c.name for c in kube.apps.read_namespaced_deployment("third", namespace).spec.template.spec.containers] == [
        "third"]


pytestmark = pytest.mark.integration
