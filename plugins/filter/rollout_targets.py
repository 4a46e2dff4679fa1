# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: rollout_targets
short_description: The pods a play's hosts stand for, grouped by cluster (inventory-driven rollouts)
version_added: 0.2.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - Takes host names (normally C(ansible_play_hosts), what remains after C(--limit), host patterns and AWX's
    Limit) and C(hostvars), and returns the pods among them, one entry per cluster.
  - A pod host has C(pod_name) and C(pod_namespace) (the C(meshops.sidecarset.pods) inventory plugin sets them,
    and so does any inventory carrying the same variables, such as AWX's copy of that inventory); C(k8s_cluster)
    names its cluster (default C(default)) and C(k8s_connection) holds the cluster's connection settings
    (default none, the C(K8S_AUTH_*) environment). Other hosts, such as C(localhost), are ignored.
  - Only those variables are read from each host.
options:
  _input:
    description: Host names.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: The pods of the play, cluster by cluster
  ansible.builtin.set_fact:
    rollout_targets: "{{ ansible_play_hosts | meshops.sidecarset.rollout_targets(hostvars) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: One entry per cluster, in order of appearance (a C(rollout_clusters) entry plus C(pods)); empty when no host is a pod.
  type: list
  elements: dict
  contains:
    name:
      description: The cluster's name (C(k8s_cluster)).
      type: str
    kubeconfig:
      description: The cluster's connection settings (the keys of C(k8s_connection), C(kubeconfig), C(context),
        C(host), ...) are copied in, so that an entry is a C(rollout_clusters) entry.
      type: str
    pods:
      description: The cluster's pods, C(name), C(namespace) and C(host) (the inventory host name).
      type: list
      elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import to_plain
from ansible_collections.meshops.sidecarset.plugins.module_utils.targets import POD_VARIABLES, pod_targets


def rollout_targets(hosts, hostvars):
    """See DOCUMENTATION."""
    if hosts is None:
        return []
    if isinstance(hosts, str):
        hosts = [hosts]
    pairs = []
    for host in hosts:
        try:
            variables = hostvars[host]
        except KeyError:
            raise AnsibleFilterError("rollout_targets: host %s is not in hostvars" % host)
        pairs.append((str(host), dict((key, to_plain(variables.get(key))) for key in POD_VARIABLES if key in variables)))
    try:
        return pod_targets(pairs)
    except ParameterError as exc:
        raise AnsibleFilterError("rollout_targets: %s" % exc)


class FilterModule(object):
    """meshops.sidecarset.rollout_targets"""

    def filters(self):
        return {"rollout_targets": rollout_targets}
