# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test builders: SidecarSet dicts, pods injected as the Kruise webhook would, and a kubelet simulator."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json

INJECTED_AT = "2024-01-01T00:00:00Z"
EMPTY = "reg.example/mesh:empty"


def hot(name, image, empty=EMPTY):
    """A HotUpgrade SidecarSet container."""
    return {"name": name, "image": image, "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": empty}}


def cold(name, image):
    """A ColdUpgrade SidecarSet container."""
    return {"name": name, "image": image, "upgradeStrategy": {"upgradeType": "ColdUpgrade"}}


def sidecarset(name="mesh-set", containers=None, hash_value="hash-1", hash_without_image="hwi-1", strategy=None, revision=None):
    """A normalised SidecarSet with both hash annotations set to fixed strings."""
    result = {
        "metadata": {
            "name": name,
            "annotations": {"kruise.io/sidecarset-hash": hash_value, "kruise.io/sidecarset-hash-without-image": hash_without_image},
        },
        "spec": {
            "selector": {"matchLabels": {"app": "demo"}},
            "containers": containers if containers is not None else [hot("mesh", "reg.example/mesh:v1")],
            "updateStrategy": strategy or {"type": "RollingUpdate", "maxUnavailable": 1, "partition": 0},
        },
    }
    if revision:
        result["status"] = {"latestRevision": revision}
    return result


def with_images(base, hash_value, **images):
    """Copy of a SidecarSet with new images per container name (``mesh="img"``) and a new hash."""
    result = copy.deepcopy(base)
    result["metadata"]["annotations"]["kruise.io/sidecarset-hash"] = hash_value
    for container in result["spec"]["containers"]:
        if container["name"] in images:
            container["image"] = images[container["name"]]
    return result


def image_id(image):
    """A deterministic runtime imageID for an image reference."""
    repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image.split("@")[0]
    return "%s@sha256:%s" % (repo, hashlib.sha256(image.encode("utf-8")).hexdigest())


def _running_status(name, image, ready=True):
    return {
        "name": name,
        "image": image,
        "imageID": image_id(image),
        "ready": ready,
        "started": True,
        "restartCount": 0,
        "state": {"running": {"startedAt": INJECTED_AT}},
    }


def _entries(sets, key):
    entries = {}
    for sset in sets:
        name = sset["metadata"]["name"]
        entries[name] = {
            "updateTimestamp": INJECTED_AT,
            "hash": sset["metadata"]["annotations"][key],
            "sidecarSetName": name,
            "sidecarList": sorted(c["name"] for c in sset["spec"]["containers"]),
        }
    return json.dumps(entries, separators=(",", ":"))


def pod(name="pod-0", sets=None, labels=None, node="node-1", phase="Running", created="2024-01-01T00:00:00Z", ready=True, rv="1000"):
    """A pod injected by ``sets`` (list of SidecarSets): containers, annotations and a Running status."""
    sets = sets if sets is not None else [sidecarset()]
    containers = []
    annotations = {}
    working = {}
    for sset in sets:
        for sidecar in sset["spec"]["containers"]:
            if sidecar["upgradeStrategy"]["upgradeType"] == "HotUpgrade":
                first, second = sidecar["name"] + "-1", sidecar["name"] + "-2"
                containers.append({"name": first, "image": sidecar["image"]})
                containers.append({"name": second, "image": sidecar["upgradeStrategy"]["hotUpgradeEmptyImage"]})
                working[sidecar["name"]] = first
                annotations.update({
                    "version.sidecarset.kruise.io/" + first: "1",
                    "versionalt.sidecarset.kruise.io/" + first: "0",
                    "version.sidecarset.kruise.io/" + second: "0",
                    "versionalt.sidecarset.kruise.io/" + second: "1",
                })
            else:
                containers.append({"name": sidecar["name"], "image": sidecar["image"]})
    containers.append({"name": "app", "image": "reg.example/app:1"})
    if sets:
        annotations["kruise.io/sidecarset-hash"] = _entries(sets, "kruise.io/sidecarset-hash")
        annotations["kruise.io/sidecarset-hash-without-image"] = _entries(sets, "kruise.io/sidecarset-hash-without-image")
        annotations["kruise.io/sidecarset-injected-list"] = ",".join(sorted(s["metadata"]["name"] for s in sets))
    if working:
        annotations["kruise.io/sidecarset-working-hotupgrade-container"] = json.dumps(working, sort_keys=True, separators=(",", ":"))
    result = {
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": rv,
            "creationTimestamp": created,
            "labels": dict(labels or {"app": "demo"}),
            "annotations": annotations,
        },
        "spec": {"nodeName": node, "containers": containers},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": INJECTED_AT}],
            "containerStatuses": [_running_status(c["name"], c["image"], ready) for c in containers],
        },
    }
    return result


def status_of(obj, name):
    """The container status called ``name``."""
    for status in obj["status"]["containerStatuses"]:
        if status["name"] == name:
            return status
    raise KeyError(name)


def refresh_ready_condition(obj):
    """Set the Ready condition from the container statuses."""
    ready = all(s["ready"] for s in obj["status"]["containerStatuses"])
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition["status"] = "True" if ready else "False"
    return obj


def kubelet(obj, ready=True, not_ready=(), started=True):
    """Simulate kubelet: restart every container whose spec image differs from its status image.

    Restarted containers get the new image, its imageID, ``restartCount + 1`` and ``ready`` (False for names in
    ``not_ready``). Returns a new pod; the Ready condition is recomputed.
    """
    result = copy.deepcopy(obj)
    for container in result["spec"]["containers"]:
        status = status_of(result, container["name"])
        if status["image"] != container["image"]:
            status["image"] = container["image"]
            status["imageID"] = image_id(container["image"])
            status["restartCount"] += 1
            status["ready"] = ready and container["name"] not in not_ready
            status["started"] = started
            status["state"] = {"running": {"startedAt": "2024-01-01T01:00:00Z"}}
    return refresh_ready_condition(result)


def set_status(obj, name, **fields):
    """Return a copy with fields of one container status replaced; the Ready condition is recomputed."""
    result = copy.deepcopy(obj)
    status_of(result, name).update(fields)
    return refresh_ready_condition(result)


def fail_pull(obj, name, reason="ImagePullBackOff"):
    """Return a copy where container ``name`` (on its spec image, as kubelet reports it) is waiting with ``reason``."""
    image = next(c["image"] for c in obj["spec"]["containers"] if c["name"] == name)
    return set_status(obj, name, image=image, ready=False, started=False, state={"waiting": {"reason": reason}})


def fail_pull_kubelet(obj, name, reason="ErrImagePull"):
    """Return a copy where the pull of container ``name``'s spec image fails the way kubelet v1.36 reports it.

    kubelet keeps the previous instance in the status (its ``image``, ``imageID`` and ``restartCount``), the old
    instance in ``lastState.terminated``, and quotes the image it cannot pull in ``state.waiting.message``
    (docs/real-nodes.md, "Broken images on a real node").
    """
    image = next(c["image"] for c in obj["spec"]["containers"] if c["name"] == name)
    message = ('Back-off pulling image "%s"' % image if reason == "ImagePullBackOff"
               else 'failed to pull and unpack image "%s": not found' % image)
    previous = status_of(obj, name)
    return set_status(obj, name, ready=False, started=False, state={"waiting": {"reason": reason, "message": message}},
                      lastState={"terminated": {"exitCode": 0, "reason": "Completed", "containerID": previous.get("containerID")}})


def twin_row(obj, sidecar="mesh"):
    """``(image N-1, image N-2, working, v(N-1), va(N-1), v(N-2), va(N-2))``, the values Kruise's e2e test traces."""
    annotations = obj["metadata"]["annotations"]
    images = {c["name"]: c["image"] for c in obj["spec"]["containers"]}
    first, second = sidecar + "-1", sidecar + "-2"
    working = json.loads(annotations["kruise.io/sidecarset-working-hotupgrade-container"])[sidecar]
    return (
        images[first], images[second], working,
        annotations["version.sidecarset.kruise.io/" + first], annotations["versionalt.sidecarset.kruise.io/" + first],
        annotations["version.sidecarset.kruise.io/" + second], annotations["versionalt.sidecarset.kruise.io/" + second],
    )


def apply_plan(pod, plan):
    """Return a deep copy of ``pod`` with the plan's images and annotations applied (for a PUT)."""
    new_pod = copy.deepcopy(pod)
    for container in (new_pod.get("spec") or {}).get("containers") or []:
        if container.get("name") in plan.containers:
            container["image"] = plan.containers[container["name"]]
    if plan.annotations:
        metadata = new_pod.setdefault("metadata", {})
        annotations = metadata.get("annotations") or {}
        for key, value in plan.annotations.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        metadata["annotations"] = annotations
    return new_pod
