# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the pods a SidecarSet selects in a live cluster (reference 3.3), and plan the rollout batches.

``list_sidecarset_pods(client, sidecarset, namespace=None, label_selector=None)`` returns the active pods
selected by the SidecarSet's ``selector`` (or ``label_selector``) in ``namespace``, or, when it is ``None``,
in every namespace its ``namespaceSelector`` selects (all namespaces when it has none).

``plan_rollout(pods, sidecarset, max_unavailable=None, partition=None)`` is pure: Kruise's pick for this
round (``batch.pick_batch``), then the remaining upgradable pods in order, chunked by the budget, as
the list of batches a rollout runs one after another.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.batch import pick_batch
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import is_pod_active
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import select_namespaces, selector_to_string


def selected_namespaces(client, sidecarset):
    """Names of the namespaces the SidecarSet's ``namespaceSelector`` selects, or ``None`` for all."""
    selector = (sidecarset.get("spec") or {}).get("namespaceSelector")
    if not selector:
        return None
    return select_namespaces(client.list_namespaces(), selector)


def list_sidecarset_pods(client, sidecarset, namespace=None, label_selector=None):
    """Return the active pods the SidecarSet selects (see module docstring)."""
    if label_selector is None:
        label_selector = selector_to_string((sidecarset.get("spec") or {}).get("selector"))
    if namespace:
        namespaces = [namespace]
    else:
        namespaces = selected_namespaces(client, sidecarset)
    pods = []
    if namespaces is None:
        pods = client.list_pods(None, label_selector)[0]
    else:
        for name in namespaces:
            pods.extend(client.list_pods(name, label_selector)[0])
    return [pod for pod in pods if is_pod_active(pod)]


def pod_ref(pod):
    """``{"name", "namespace"}`` of a pod."""
    meta = pod.get("metadata") or {}
    return {"name": meta.get("name"), "namespace": meta.get("namespace")}


def plan_rollout(pods, sidecarset, max_unavailable=None, partition=None):
    """Return the rollout plan: Kruise's batch for now, then the rest of the order in budget-sized chunks."""
    picked = pick_batch(pods, sidecarset, max_unavailable=max_unavailable, partition=partition)
    budget = max(int(picked["max_unavailable"]), 1)
    first = [pod_ref(pod) for pod in picked["batch"]]
    rest = [pod_ref(pod) for pod in picked["waiting"]]
    batches = [first] if first else []
    if not picked["stopped"]:
        batches.extend(rest[i:i + budget] for i in range(0, len(rest), budget))
    return {
        "order": first + rest,
        "batches": batches,
        "partitioned": [pod_ref(pod) for pod in picked["partitioned"]],
        "not_upgradable": [dict(pod_ref(pod), reason=reason) for pod, reason in picked["not_upgradable"]],
        "in_flight": [pod_ref(pod) for pod in picked["in_flight"]],
        "reset": [pod_ref(pod) for pod in picked["reset"]],
        "max_unavailable": picked["max_unavailable"],
        "partition": picked["partition"],
        "unavailable": picked["unavailable"],
        "matched": picked["matched"],
        "stopped": picked["stopped"],
    }
