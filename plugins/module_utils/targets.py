# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pods a play targets, from its hosts' variables (inventory-driven rollouts). Pure functions.

A pod host is a host with ``pod_name`` and ``pod_namespace`` (the ``pods`` inventory plugin sets them, and so does
any inventory that carries the same variables, e.g. AWX's copy of it); ``k8s_cluster`` names its cluster (default
``default``) and ``k8s_connection`` holds the cluster's connection settings (default: none, the environment).
Other hosts (``localhost``, ...) are ignored.

``pod_targets(hosts)`` takes ``[(host name, {variables})]`` and returns one entry per cluster, in the order the
clusters first appear, in the form of a ``rollout_clusters`` entry plus the pods: the first pod host's
``k8s_connection`` with ``name`` set and ``pods``: ``[{"name", "namespace", "host"}]``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError

POD_VARIABLES = ("pod_name", "pod_namespace", "k8s_cluster", "k8s_connection", "sidecarset_name")


def pod_targets(hosts):
    """Group the pod hosts of ``hosts`` by cluster (see the module docstring)."""
    clusters = {}
    order = []
    for host, variables in hosts:
        variables = variables or {}
        name, namespace = variables.get("pod_name"), variables.get("pod_namespace")
        if name in (None, "") and namespace in (None, ""):
            continue
        if name in (None, "") or namespace in (None, ""):
            raise ParameterError("host %s: a pod host needs both pod_name and pod_namespace (got pod_name=%r, pod_namespace=%r)"
                                 % (host, name, namespace))
        cluster = str(variables.get("k8s_cluster") or "default")
        connection = variables.get("k8s_connection") or {}
        if not isinstance(connection, dict):
            raise ParameterError("host %s: k8s_connection must be a dict of connection settings, got %r" % (host, connection))
        if cluster not in clusters:
            clusters[cluster] = dict(connection, name=cluster, pods=[])
            order.append(cluster)
        clusters[cluster]["pods"].append({"name": str(name), "namespace": str(namespace), "host": str(host)})
    return [clusters[name] for name in order]
