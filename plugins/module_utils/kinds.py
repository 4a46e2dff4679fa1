# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one table of workload kinds: API group/version, resource plural, pod template path and update strategy path.

Offline injection (``manifests``), online injection (``online``) and the API client (``kube``) all read this
table, so a kind's API version is written once. Versions are the GA ones every supported Kubernetes (1.33-1.36)
serves; ``batch/v1beta1`` CronJobs were removed in 1.25.

* ``WORKLOAD_KINDS``: the kinds online injection lists and rewrites, in the order it visits them.
* ``kind_info(kind)``: the ``Kind`` row of any kind that has a pod template (``Pod`` has the empty path), or ``None``;
  ``pod_template(obj)`` walks its path.
* ``update_strategy(obj)``: the type of a workload's update strategy, with the API server's default applied.
* ``pods_kept_on_template_change(obj)``: whether a change of the workload's pod template leaves its running pods
  alone (``updateStrategy: OnDelete``) or makes its controller recreate them, with the reason in one sentence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple

# strategy_path: where the kind keeps its update strategy (``None``: it has none); its ``type`` defaults to
# RollingUpdate in all three (apps/v1 defaulting: Deployment ``spec.strategy``, StatefulSet and DaemonSet
# ``spec.updateStrategy``). Only StatefulSet and DaemonSet accept ``OnDelete``.
Kind = namedtuple("Kind", "api_version plural template_path strategy_path")

_KINDS = {
    "Deployment": Kind("apps/v1", "deployments", ("spec", "template"), ("spec", "strategy")),
    "StatefulSet": Kind("apps/v1", "statefulsets", ("spec", "template"), ("spec", "updateStrategy")),
    "DaemonSet": Kind("apps/v1", "daemonsets", ("spec", "template"), ("spec", "updateStrategy")),
    "ReplicaSet": Kind("apps/v1", "replicasets", ("spec", "template"), None),
    "Job": Kind("batch/v1", "jobs", ("spec", "template"), None),
    "CronJob": Kind("batch/v1", "cronjobs", ("spec", "jobTemplate", "spec", "template"), None),
    "ReplicationController": Kind("v1", "replicationcontrollers", ("spec", "template"), None),
    "PodTemplate": Kind("v1", "podtemplates", ("template",), None),
    "Pod": Kind("v1", "pods", (), None),
}

DEFAULT_STRATEGY = "RollingUpdate"
ON_DELETE = "OnDelete"

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def kind_info(kind):
    """Return the ``Kind`` row of ``kind`` or ``None`` when it is not a kind with a pod template."""
    return _KINDS.get(kind)


def get_path(obj, path):
    """The value at the key ``path`` of nested mappings, ``None`` when a step is missing or not a mapping."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def pod_template(obj):
    """The pod template of a workload object (the object itself for a Pod or an unknown kind), ``{}`` when missing."""
    return get_path(obj, getattr(_KINDS.get((obj or {}).get("kind")), "template_path", ())) or {}


def api_prefix(kind):
    """``/apis/apps/v1`` for Deployment, ``/api/v1`` for Pod; ``None`` for an unknown kind."""
    info = _KINDS.get(kind)
    if info is None:
        return None
    return "/api/" + info.api_version if "/" not in info.api_version else "/apis/" + info.api_version


def update_strategy(obj):
    """The ``type`` of ``obj``'s update strategy (``spec.strategy`` of a Deployment, ``spec.updateStrategy`` of a
    StatefulSet or DaemonSet), ``RollingUpdate`` when unset as the API server defaults it; ``None`` for a kind
    without one."""
    info = _KINDS.get((obj or {}).get("kind"))
    if info is None or info.strategy_path is None:
        return None
    return get_path(obj, info.strategy_path + ("type",)) or DEFAULT_STRATEGY


def pods_kept_on_template_change(obj):
    """``(kept, reason)``: ``kept`` is true when a change of ``obj``'s pod template recreates none of its pods by
    the contract of its update strategy: a StatefulSet or DaemonSet with ``updateStrategy.type: OnDelete``, whose
    controller uses the new template only for the pods it creates next (after a deletion, a scale-up, a new node).
    Every other workload is ``kept`` false: a Deployment (RollingUpdate or Recreate) and a StatefulSet or DaemonSet
    on RollingUpdate replace every pod; the kinds without an update strategy give no such contract."""
    kind = (obj or {}).get("kind")
    strategy = update_strategy(obj)
    field = "strategy" if kind == "Deployment" else "updateStrategy"
    if strategy is None:
        return False, "%s: has no updateStrategy OnDelete (only StatefulSets and DaemonSets have one)" % kind
    if strategy == ON_DELETE:
        return True, "%s: %s OnDelete: a template change recreates no pod, the pods it creates next use it" % (kind, field)
    return False, "%s: %s %s: a template change recreates its pods" % (kind, field, strategy)
