# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SidecarSet status counters (Kruise ``sidecarset_processor.go:calculateStatus``) and a per-pod report. Pure functions.

``template_drift(workloads, pods, sidecarset)`` finds the workloads whose pod template was injected with an
older revision of the SidecarSet (so every pod they create, on a scale-up, an eviction or a node failure, starts
on the old sidecar: we have no webhook to correct it as Kruise has) and the pods created that way.

``compute_status`` counts over the matching pods (``sidecarset_processor.go:getMatchingPods``) only: ``updatedPods`` compares the pod hash with the
SidecarSet hash; ``readyPods`` needs ``is_pod_state_consistent`` (all sidecar containers) and ``is_pod_ready``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import hot_upgrade_names, version_alt_key, version_key
from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import assess
from ansible_collections.meshops.sidecarset.plugins.module_utils.kinds import pod_template
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import (
    container_image,
    is_pod_matching,
    is_pod_ready,
    is_pod_state_consistent,
    is_pod_updated,
    pod_annotations,
    recorded_hash,
    working_and_empty,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    get_hash,
    is_hot_upgrade,
    sidecar_containers,
    sidecarset_name,
)

# The per-twin version keys of a report. ``version_alt`` is the spelling of sidecar_upgrade's earlier releases: kept
# as an alias of ``versionalt`` for one release (changelogs/fragments/one-assessment.yml), then removed.
VERSION_KEYS = ("version", "versionalt")
VERSION_ALT_ALIAS = "version_alt"


def _is_ready(pod, sidecarset):
    return is_pod_state_consistent(pod, sidecarset) and is_pod_ready(pod, sidecarset)


def compute_status(pods, sidecarset):
    """Return ``{"matchedPods", "updatedPods", "readyPods", "updatedReadyPods"}`` as ``calculateStatus`` does."""
    matched = [pod for pod in pods if is_pod_matching(pod, sidecarset)]
    updated = [pod for pod in matched if is_pod_updated(pod, sidecarset)]
    ready = [pod for pod in matched if _is_ready(pod, sidecarset)]
    return {
        "matchedPods": len(matched),
        "updatedPods": len(updated),
        "readyPods": len(ready),
        "updatedReadyPods": sum(1 for pod in updated if _is_ready(pod, sidecarset)),
    }


def sidecar_snapshot(pod, sidecarset, alias=False):
    """The sidecars of the SidecarSet on ``pod``: ``{"working", "empty", "images", "versions"}``.

    ``working``/``empty`` map each hot sidecar ``N`` to its ``W``/``E`` twin (``podstate.working_and_empty``); ``images`` maps every sidecar pod container
    (twins and cold containers) to its spec image; ``versions`` maps each twin to ``{"version", "versionalt"}``
    (``None`` when the annotation is missing), plus ``version_alt`` (the same value) with ``alias``.
    """
    annotations = pod_annotations(pod)
    snapshot = {"working": {}, "empty": {}, "images": {}, "versions": {}}
    for sidecar in sidecar_containers(sidecarset):
        name = sidecar["name"]
        if not is_hot_upgrade(sidecar):
            snapshot["images"][name] = container_image(pod, name)
            continue
        snapshot["working"][name], snapshot["empty"][name] = working_and_empty(pod, name)
        for twin in hot_upgrade_names(name):
            snapshot["images"][twin] = container_image(pod, twin)
            values = dict(zip(VERSION_KEYS, (annotations.get(version_key(twin)), annotations.get(version_alt_key(twin)))))
            if alias:
                values[VERSION_ALT_ALIAS] = values["versionalt"]
            snapshot["versions"][twin] = values
    return snapshot


def pod_report(pod, sidecarset):
    """Describe one pod for this SidecarSet: ``{"name", "namespace", "node", "phase", "reason", "updated",
    "ready", "working", "empty", "images", "versions"}`` (``sidecar_snapshot`` for the last four). ``phase``,
    ``reason``, ``updated`` and ``ready`` (consistent and ``IsPodReady``) come from the pod's assessment."""
    metadata = pod.get("metadata") or {}
    assessment = assess(pod, sidecarset)
    report = {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "phase": assessment.phase,
        "reason": assessment.reason,
        "updated": assessment.updated,
        "ready": assessment.consistent and assessment.ready,
    }
    report.update(sidecar_snapshot(pod, sidecarset))
    return report


def controller_of(pod):
    """The pod's controlling owner reference as ``{"kind", "name"}`` (the first owner when none is marked
    controller; ``{}`` for a bare pod)."""
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    return {"kind": ref.get("kind"), "name": ref.get("name") or ""} if ref else {}


def workload_of(pod):
    """``{"kind", "name"}`` of the workload that owns the pod's template; a ReplicaSet ``<deploy>-<pod-template-hash>``
    is its Deployment. Empty for a bare pod."""
    owner = controller_of(pod)
    template_hash = ((pod.get("metadata") or {}).get("labels") or {}).get("pod-template-hash")
    if owner.get("kind") == "ReplicaSet" and template_hash and owner["name"].endswith("-" + template_hash):
        return {"kind": "Deployment", "name": owner["name"][: -len(template_hash) - 1]}
    return owner


def template_drift(workloads, pods, sidecarset):
    """``{"workloads": [...], "pods": [...]}``: the workloads (``kind``, ``name``, ``namespace``,
    ``template_hash``, ``hash``) whose template records another hash of this SidecarSet than its current one, and
    the pods (``name``, ``namespace``, ``workload``) of those workloads that carry the template's old hash (created
    from it since the last rollout). Workloads owned by another workload (a Deployment's ReplicaSets) are left to
    their owner; templates the SidecarSet never injected are not drift."""
    name = sidecarset_name(sidecarset)
    current = get_hash(sidecarset)
    drifted = {}
    for obj in workloads:
        meta = obj.get("metadata") or {}
        if any(r.get("controller") for r in meta.get("ownerReferences") or []):
            continue
        recorded = recorded_hash((pod_template(obj).get("metadata") or {}).get("annotations"), name)
        if recorded is None or recorded == current:
            continue
        drifted[(meta.get("namespace"), obj.get("kind"), meta.get("name"))] = {
            "kind": obj.get("kind"), "name": meta.get("name"), "namespace": meta.get("namespace"),
            "template_hash": recorded, "hash": current}
    created = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        owner = workload_of(pod)
        entry = drifted.get((meta.get("namespace"), owner.get("kind"), owner.get("name")))
        if entry and recorded_hash(meta.get("annotations"), name) == entry["template_hash"]:
            created.append({"name": meta.get("name"), "namespace": meta.get("namespace"),
                            "workload": "%s/%s" % (entry["kind"], entry["name"])})
    workloads_out = [drifted[key] for key in sorted(drifted)]
    created.sort(key=lambda ref: (ref["namespace"], ref["name"]))
    return {"workloads": workloads_out, "pods": created}
