# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: connection_options
short_description: The kubernetes.core connection options set in a cluster dictionary
version_added: 0.2.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - Returns the keys of the input that are kubernetes.core connection options, exactly the keys of
    kubernetes.core's authentication argument spec (C(kubeconfig), C(context), C(host), C(api_key),
    C(validate_certs), C(ca_cert), C(client_cert), C(client_key), C(proxy) and the others), leaving out unset
    ones (null or empty).
  - The roles pass its result once, as C(module_defaults) of the C(group/meshops.sidecarset.sidecar) action
    group, to every module of the collection.
options:
  _input:
    description: A cluster entry (a dictionary; other keys such as C(name) or C(namespace) are ignored).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Every module of the collection in this block talks to the cluster of rollout_cluster
  module_defaults:
    group/meshops.sidecarset.sidecar: "{{ rollout_cluster | meshops.sidecarset.connection_options }}"
  block:
    - name: Plan
      meshops.sidecarset.sidecarset_info:
        sidecarset: sidecarset.yaml
"""

RETURN = r"""
_value:
  description: The connection options that are set.
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.meshops.sidecarset.plugins.module_utils.connection import connection_options as _options


def connection_options(cluster):
    """The connection options set in ``cluster`` (see DOCUMENTATION)."""
    if cluster is None or cluster == "":
        return {}
    if not isinstance(cluster, dict):
        raise AnsibleFilterError("connection_options: expected a dictionary of connection settings, got %r" % (cluster,))
    return _options(cluster)


class FilterModule(object):
    """meshops.sidecarset.connection_options"""

    def filters(self):
        return {"connection_options": connection_options}
