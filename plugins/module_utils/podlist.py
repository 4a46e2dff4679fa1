# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the pods a SidecarSet selects in a live cluster (Kruise ``getMatchingPods``), and plan the rollout batches.

``list_sidecarset_pods(client, sidecarset, namespace=None, label_selector=None)`` returns the active pods
selected by the SidecarSet's ``selector`` (or ``label_selector``) in ``namespace``, or, when it is ``None``,
in every namespace its ``namespaceSelector`` selects (all namespaces when it has none).

``plan_rollout(pods, sidecarset, max_unavailable=None, partition=None, only=None)`` is pure: Kruise's pick for
this round (``batch.pick_batch``), then the remaining upgradable pods in order, chunked by the budget, as
the list of batches a rollout runs one after another. With ``only`` (pod references, e.g. the pods of an
inventory selection) the plan is decided over all the pods exactly as without it (order, partition, the
maxUnavailable budget and the pods already unavailable count over every matched pod, as Kruise counts them) and
then keeps only the selected pods, in that order; ``selection`` says how many were found and which are missing.
``selected`` counts every active pod the SidecarSet selects (in the selection, with ``only``), injected or not.
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


def list_sidecarset_pods(client, sidecarset, namespace=None, label_selector=None, within=None):
    """Return the active pods the SidecarSet selects (see module docstring); ``within``: only these namespaces."""
    if label_selector is None:
        label_selector = selector_to_string((sidecarset.get("spec") or {}).get("selector"))
    namespaces = [namespace] if namespace else selected_namespaces(client, sidecarset)
    if within:
        namespaces = [name for name in (within if namespaces is None else namespaces) if name in within]
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


def ref_key(ref):
    """``(namespace, name)`` of a pod reference: a dict with ``name`` and ``namespace``, or ``"namespace/name"``."""
    if isinstance(ref, dict):
        return (str(ref.get("namespace") or ""), str(ref.get("name") or ""))
    namespace, _sep, name = str(ref).rpartition("/")
    return (namespace, name)


def plan_rollout(pods, sidecarset, max_unavailable=None, partition=None, only=None):
    """Return the rollout plan: Kruise's batch for now, then the rest of the order in budget-sized chunks."""
    picked = pick_batch(pods, sidecarset, max_unavailable=max_unavailable, partition=partition)
    budget = max(int(picked["max_unavailable"]), 1)
    keep = None
    selection = None
    if only is not None:
        wanted = [ref_key(ref) for ref in only]
        present = set((ref["namespace"], ref["name"]) for ref in (pod_ref(pod) for pod in pods))
        keep = set(wanted) & present
        selection = {"requested": len(set(wanted)), "found": len(keep),
                     "missing": [{"namespace": ns, "name": name} for ns, name in sorted(set(wanted) - present)],
                     "outside": len(present - keep)}

    def refs(items):
        out = [pod_ref(pod) for pod in items]
        return out if keep is None else [ref for ref in out if (ref["namespace"], ref["name"]) in keep]

    first = refs(picked["batch"])
    rest = refs(picked["waiting"])
    if keep is None:
        batches = [first] if first else []
        chunked = rest
    else:  # the selection: one order, cut into batches of the budget
        batches, chunked = [], first + rest
    if not picked["stopped"]:
        batches.extend(chunked[i:i + budget] for i in range(0, len(chunked), budget))
    plan = {
        "order": first + rest,
        "batches": batches,
        "partitioned": refs(picked["partitioned"]),
        "not_upgradable": [dict(pod_ref(pod), reason=reason) for pod, reason in picked["not_upgradable"]
                           if keep is None or ref_key(pod_ref(pod)) in keep],
        "in_flight": refs(picked["in_flight"]),
        "reset": refs(picked["reset"]),
        "max_unavailable": picked["max_unavailable"],
        "partition": picked["partition"],
        "unavailable": picked["unavailable"],
        "matched": picked["matched"],
        "selected": sum(1 for pod in pods if is_pod_active(pod)) if keep is None else len(keep),
        "stopped": picked["stopped"],
    }
    if selection is not None:
        plan["selection"] = selection
    return plan


def rollout_calls(batches, kinds=None, per_call=1, gated=False):
    """Group ``batches`` into ``sidecar_upgrade`` invocations ``{"kind", "first", "batches"}`` (``first`` 1-based).

    A batch whose kind is not ``batch`` (``resume``, ``canary``, ``window``: the rollout pauses, stops or reports after
    it) gets an invocation of its own, and so does every batch when ``gated`` (health gates run between its upgrade
    and its reset); consecutive ``batch`` batches are grouped, ``per_call`` to an invocation (0: all of them).
    """
    try:
        per_call = int(per_call)
    except (TypeError, ValueError):
        raise ValueError("per_call must be a whole number, got %r" % (per_call,))
    if per_call < 0:
        raise ValueError("per_call must be 0 (all) or more, got %d" % per_call)
    kinds = list(kinds or [])
    calls = []
    for position, batch in enumerate(batches, 1):
        kind = kinds[position - 1] if position <= len(kinds) else "batch"
        last = calls[-1] if calls else None
        if (last is not None and kind == "batch" and last["kind"] == "batch" and not gated
                and (per_call == 0 or len(last["batches"]) < per_call)):
            last["batches"].append(batch)
        else:
            calls.append({"kind": kind, "first": position, "batches": [batch]})
    return calls


def longest_first(refs, durations):
    """``refs`` (pod references) longest first by ``durations`` (``{"namespace/name": seconds}``, e.g. a previous
    rollout's, ``rollout_journal.report_durations``): a pod without one counts as the (lower) median of the others,
    and pods of equal duration keep their order. Longest-processing-time first: a window that starts the slow pods
    last ends when they do, one that starts them first fills its places with the short ones meanwhile."""
    keys = ["%s/%s" % (ref.get("namespace"), ref.get("name")) for ref in refs]
    known = sorted(durations[key] for key in keys if key in durations)
    if not known:
        return list(refs)
    median = known[(len(known) - 1) // 2]
    order = sorted(range(len(refs)), key=lambda index: -durations.get(keys[index], median))
    return [refs[index] for index in order]


def rollout_queue(plan, updated_pods=0, canary=0, window=True, per_call=1, gated=False, durations=None):
    """The queue a rollout runs on one cluster, from a ``plan_rollout`` plan (what ``sidecarset_info`` returns).

    In order: the pods in flight or due for their reset (``resume``, so that an interrupted rollout finishes them
    first), the canary (``canary`` pods counted with the ``updated_pods`` already updated, at most one budget), then
    the rest of the order as one continuous ``window`` or as maxUnavailable-sized batches (``batch``); with
    ``durations`` that rest starts ``longest_first`` (which pods are upgraded stays Kruise's choice). Returns
    ``{"batches", "kinds", "calls", "budget", "canary", "resumed", "to_upgrade"}``; ``kinds`` names the first batches
    (the rest are ``batch``) and ``calls`` groups them into invocations (``rollout_calls``).
    """
    try:
        canary, updated_pods = int(canary), int(updated_pods)
    except (TypeError, ValueError):
        raise ValueError("canary and updated_pods must be whole numbers, got %r and %r" % (canary, updated_pods))
    if canary < 0:
        raise ValueError("canary must be 0 or more, got %d" % canary)
    order = list(plan.get("order") or [])
    budget = max(int(plan.get("max_unavailable") or 0), 1)
    resume = []
    for ref in list(plan.get("in_flight") or []) + list(plan.get("reset") or []):
        if ref not in resume:
            resume.append(ref)
    canary_size = max(min(canary - updated_pods, budget, len(order)), 0) if canary else 0
    rest = longest_first(order[canary_size:], durations) if durations else order[canary_size:]
    batches, kinds = [], []
    if resume:
        batches.append(resume)
        kinds.append("resume")
    if canary_size:
        batches.append(order[:canary_size])
        kinds.append("canary")
    if window:
        if rest:
            batches.append(rest)
            kinds.append("window")
    else:
        batches.extend(rest[i:i + budget] for i in range(0, len(rest), budget))
    return {"batches": batches, "kinds": kinds, "calls": rollout_calls(batches, kinds, per_call, gated),
            "budget": budget, "canary": canary_size, "resumed": len(resume), "to_upgrade": len(order)}
