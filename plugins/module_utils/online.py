# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inject SidecarSets into the pod templates of live workloads.

``inject_workloads(client, sidecarsets, namespaces, kinds, names)`` lists the workloads of ``kinds`` in
each namespace, renders the injection with the pure engine (``manifests.inject_manifest``, with the
namespace's real labels for ``namespaceSelector``), and writes each changed workload with a PUT carrying
its resourceVersion (a 409 re-reads and re-renders). Running pods are never touched: the workload's
controller rolls them. In dry-run mode (check mode) the API server validates the PUT without storing it.

With ``only_on_delete`` only the workloads whose controller recreates no pod on a template change are written
(StatefulSets and DaemonSets with ``updateStrategy: OnDelete``, ``kinds.pods_kept_on_template_change``); every other
workload that needs a write is reported ``skipped`` with the reason. The strategy is read from the object the PUT
replaces (re-read after a 409), so the write carries the strategy it was decided on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError
from ansible_collections.meshops.sidecarset.plugins.module_utils.kinds import WORKLOAD_KINDS, kind_info, pod_template, pods_kept_on_template_change
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError
from ansible_collections.meshops.sidecarset.plugins.module_utils.manifests import inject_manifest


def parse_workload_ref(ref):
    """``"Deployment/web"`` or ``{"kind": "Deployment", "name": "web"}`` -> ``("Deployment", "web")``."""
    if isinstance(ref, dict):
        kind, name = ref.get("kind"), ref.get("name")
    elif isinstance(ref, str) and "/" in ref:
        kind, name = ref.split("/", 1)
    else:
        raise ValueError("workloads: %r is not KIND/NAME or {kind, name}" % (ref,))
    matches = [k for k in WORKLOAD_KINDS if k.lower() == str(kind).lower()]
    if not matches or not name:
        raise ValueError("workloads: %r: kind must be one of %s" % (ref, ", ".join(WORKLOAD_KINDS)))
    return matches[0], name


ONLY_ON_DELETE_NOTE = "only_on_delete writes only StatefulSets and DaemonSets with updateStrategy OnDelete"


def inject_one(client, sidecarsets, obj, namespace_labels, retries=5, only_on_delete=False):
    """Render and write one workload; return ``(status, reason, before_template, after_template, pods_kept)``,
    ``pods_kept`` from ``kinds.pods_kept_on_template_change`` of the object last read.

    With ``only_on_delete``, a workload whose controller would recreate its pods is not written: ``skipped``."""
    kind = obj["kind"]
    namespace = obj["metadata"]["namespace"]
    name = obj["metadata"]["name"]
    for attempt in range(retries + 1):
        new_obj, status, reason = inject_manifest(obj, sidecarsets, namespace_labels={namespace: namespace_labels})
        kept, why = pods_kept_on_template_change(obj)
        if status != "injected":
            return status, reason, pod_template(obj), pod_template(obj), kept
        if only_on_delete and not kept:
            return "skipped", "%s; %s" % (why, ONLY_ON_DELETE_NOTE), pod_template(obj), pod_template(obj), kept
        if only_on_delete:
            reason = "%s (%s)" % (reason, why)
        try:
            client.replace_workload(kind, namespace, name, new_obj)
            return status, reason, pod_template(obj), pod_template(new_obj), kept
        except KubeError as exc:
            if exc.status != 409 or attempt == retries:
                raise
            obj = client.get_workload(kind, namespace, name)
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", kind_info(kind).api_version)
    raise KubeError(409, "conflict retries exhausted for %s/%s" % (kind, name))


def managing_workload(obj):
    """``(kind, name)`` of the workload controller that owns ``obj`` (a Deployment's ReplicaSet, a CronJob's Job),
    or ``None``."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") in WORKLOAD_KINDS:
            return ref.get("kind"), ref.get("name")
    return None


def inject_workloads(client, sidecarsets, namespaces, kinds=WORKLOAD_KINDS, names=None, only_on_delete=False):
    """Inject into every matching workload; return one result dict per workload looked at.

    ``namespaces`` is a list of namespace names; ``names`` (optional) a list of ``(kind, name)`` to limit to;
    ``only_on_delete`` writes only the workloads whose pods a template change does not recreate (see above).
    Each rendered workload's result has ``pods_kept`` (a template change recreates none of its pods).
    """
    results = []
    wanted = set(names or [])
    for namespace in namespaces:
        ns_labels = (client.get_namespace(namespace).get("metadata") or {}).get("labels") or {}
        for kind in kinds:
            if kind not in WORKLOAD_KINDS:
                continue
            if wanted and not any(k == kind for k, dummy in wanted):
                continue
            for obj in client.list_workloads(kind, namespace):
                name = obj["metadata"]["name"]
                if wanted and (kind, name) not in wanted:
                    continue
                owner = managing_workload(obj)
                if owner:
                    # A Deployment's ReplicaSet or a CronJob's Job: its controller owns the template. Rewriting it
                    # makes the Deployment adopt the rewritten old ReplicaSet as its new one, and the pods keep
                    # running without sidecars; inject the owner instead.
                    results.append({"kind": kind, "name": name, "namespace": namespace, "status": "skipped",
                                    "reason": "managed by %s/%s: inject that workload instead" % owner})
                    continue
                obj["kind"] = kind
                obj["apiVersion"] = kind_info(kind).api_version
                try:
                    status, reason, before, after, kept = inject_one(
                        client, sidecarsets, obj, ns_labels, only_on_delete=only_on_delete)
                except ManifestError as exc:  # name the workload (offline names the file)
                    if exc.source is None:
                        exc.source = "%s/%s/%s" % (namespace, kind, name)
                    raise
                results.append({"kind": kind, "name": name, "namespace": namespace, "status": status, "reason": reason,
                                "before": before, "after": after, "pods_kept": kept})
    if wanted:
        found = {(r["kind"], r["name"]) for r in results}
        for kind, name in sorted(wanted - found):
            results.append({"kind": kind, "name": name, "namespace": ",".join(namespaces), "status": "missing",
                            "reason": "no %s named %s in namespace %s" % (kind, name, ", ".join(namespaces))})
    return results
