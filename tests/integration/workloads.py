"""Helpers for integration tests: SidecarSets from the examples, injected Deployments, pod waits."""

import copy
import os

import yaml

from ansible_collections.meshops.sidecarset.plugins.module_utils.manifests import inject_manifest
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import load_sidecarsets
from kubeclient import WaitTimeout  # tools/kubeclient.py (tools/ on sys.path: the root conftest.py)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mosn_raw(image="tinyqian/mosn:v1", namespace=None):
    """The MOSN example SidecarSet as a raw dict, scoped to ``namespace`` (v1alpha1 ``spec.namespace``)."""
    with open(os.path.join(ROOT, "examples", "sidecarsets", "mosn.yaml")) as handle:
        raw = yaml.safe_load(handle)
    raw["spec"]["containers"][0]["image"] = image
    if namespace:
        raw["spec"]["namespace"] = namespace
    else:
        raw["spec"].pop("namespace", None)
    return raw


def with_image(raw, image):
    new = copy.deepcopy(raw)
    new["spec"]["containers"][0]["image"] = image
    return new


def write_yaml(path, data):
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    return str(path)


def deployment(name, namespace, replicas, labels=None, app_image="nginx:1.20", annotations=None, container=None, grace_period=1):
    """A Deployment whose pods carry ``labels`` (default: the MOSN injection label) and ``app: <name>``."""
    labels = dict(labels or {"mesh.apsara-edge.com/mosn-injected": "true"})
    labels["app"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": dict(annotations or {})},
                "spec": {"containers": [{"name": container or name, "image": app_image}], "terminationGracePeriodSeconds": grace_period},
            },
        },
    }


def create_injected_deployment(kube, raw_sidecarset, name, namespace, replicas, **kwargs):
    """Inject with the engine and create the Deployment; return the injected object."""
    sidecarset = load_sidecarsets([raw_sidecarset])[0]
    doc, status, reason = inject_manifest(deployment(name, namespace, replicas, **kwargs), [sidecarset])
    assert status == "injected", reason
    kube.apps.create_namespaced_deployment(namespace, doc)
    return doc


def pods_of(kube, namespace, selector=None):
    """The live pods of ``namespace`` as plain dicts (``kubeclient.KubeClient.pods``: the raw JSON)."""
    return kube.pods(namespace, selector)


def wait_ready(kube, namespace, count, selector=None, timeout=60):
    """Until exactly ``count`` live pods are Running with every container ready; return them. A test failure
    (AssertionError) naming each pod's phase and ready containers otherwise."""
    try:
        return kube.wait_pods_ready(namespace, count, selector, timeout=timeout, interval=0.2)
    except WaitTimeout as exc:
        raise AssertionError(str(exc)) from None


def restart_counts(pod):
    return {s["name"]: s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or []}


def images(pod):
    return {c["name"]: c["image"] for c in pod["spec"]["containers"]}
