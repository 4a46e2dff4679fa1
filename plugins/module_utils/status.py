# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SidecarSet status counters (reference section 1.7) and a per-pod report. Pure functions.

``compute_status`` counts over the matching pods (3.3) only: ``updatedPods`` compares the pod hash with the
SidecarSet hash; ``readyPods`` needs ``is_pod_state_consistent`` (all sidecar containers) and ``is_pod_ready``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import (
    hot_upgrade_names,
    version_alt_key,
    version_key,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import (
    container_image,
    is_hot_sidecar,
    is_pod_matching,
    is_pod_ready,
    is_pod_state_consistent,
    is_pod_updated,
    pod_annotations,
    pod_sidecar_phase,
    sidecar_containers,
    working_and_empty,
)


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


def pod_report(pod, sidecarset):
    """Describe one pod for this SidecarSet.

    Returns ``{"name", "namespace", "node", "phase", "reason", "updated", "ready", "working", "empty", "images",
    "versions"}``: ``working``/``empty`` map each hot sidecar ``N`` to its ``W``/``E`` twin; ``images`` maps every
    sidecar pod container (twins and cold containers) to its spec image; ``versions`` maps each twin to
    ``{"version", "versionalt"}`` (``None`` when the annotation is missing).
    """
    metadata = pod.get("metadata") or {}
    annotations = pod_annotations(pod)
    phase, reason = pod_sidecar_phase(pod, sidecarset)
    report = {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "phase": phase,
        "reason": reason,
        "updated": is_pod_updated(pod, sidecarset),
        "ready": _is_ready(pod, sidecarset),
        "working": {},
        "empty": {},
        "images": {},
        "versions": {},
    }
    for sidecar in sidecar_containers(sidecarset):
        name = sidecar["name"]
        if not is_hot_sidecar(sidecar):
            report["images"][name] = container_image(pod, name)
            continue
        report["working"][name], report["empty"][name] = working_and_empty(pod, name)
        for twin in hot_upgrade_names(name):
            report["images"][twin] = container_image(pod, twin)
            report["versions"][twin] = {"version": annotations.get(version_key(twin)), "versionalt": annotations.get(version_alt_key(twin))}
    return report
