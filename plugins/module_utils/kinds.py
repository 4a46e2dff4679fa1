# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one table of workload kinds: API group/version, resource plural and pod template path.

Offline injection (``manifests``), online injection (``online``) and the API client (``kube``) all read this
table, so a kind's API version is written once. Versions are the GA ones every supported Kubernetes (1.33-1.36)
serves; ``batch/v1beta1`` CronJobs were removed in 1.25.

* ``WORKLOAD_KINDS``: the kinds online injection lists and rewrites, in the order it visits them.
* ``kind_info(kind)``: the ``Kind`` row of any kind that has a pod template (``Pod`` has the empty path), or ``None``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple

Kind = namedtuple("Kind", "api_version plural template_path")

_KINDS = {
    "Deployment": Kind("apps/v1", "deployments", ("spec", "template")),
    "StatefulSet": Kind("apps/v1", "statefulsets", ("spec", "template")),
    "DaemonSet": Kind("apps/v1", "daemonsets", ("spec", "template")),
    "ReplicaSet": Kind("apps/v1", "replicasets", ("spec", "template")),
    "Job": Kind("batch/v1", "jobs", ("spec", "template")),
    "CronJob": Kind("batch/v1", "cronjobs", ("spec", "jobTemplate", "spec", "template")),
    "ReplicationController": Kind("v1", "replicationcontrollers", ("spec", "template")),
    "PodTemplate": Kind("v1", "podtemplates", ("template",)),
    "Pod": Kind("v1", "pods", ()),
}

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def kind_info(kind):
    """Return the ``Kind`` row of ``kind`` or ``None`` when it is not a kind with a pod template."""
    return _KINDS.get(kind)


def api_prefix(kind):
    """``/apis/apps/v1`` for Deployment, ``/api/v1`` for Pod; ``None`` for an unknown kind."""
    info = _KINDS.get(kind)
    if info is None:
        return None
    return "/api/" + info.api_version if "/" not in info.api_version else "/apis/" + info.api_version
