# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: version_pair_env
short_description: SIDECARSET_VERSION / SIDECARSET_VERSION_ALT of a hot-upgrade sidecar pair
version_added: 0.1.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - From a pod (or just its annotations) and the name C(N) of a HotUpgrade sidecar, returns the
    working and standby containers (C(N-1)/C(N-2)) and the values the two env vars
    C(SIDECARSET_VERSION) and C(SIDECARSET_VERSION_ALT) hold in each, as Kruise wires them through
    the downward API from the annotations C(version.sidecarset.kruise.io/<container>) and
    C(versionalt.sidecarset.kruise.io/<container>).
  - With O(phase=after_upgrade) it returns the values after the next Upgrade write (the standby gets
    O(new_version)), with O(phase=after_reset) after the Reset write. These are the values
    M(meshops.sidecarset.sidecar_upgrade) writes.
options:
  _input:
    description: A pod (as returned by the Kubernetes API) or a dictionary of pod annotations.
    type: dict
    required: true
  sidecar:
    description: The SidecarSet container name C(N) (not C(N-1)/C(N-2)).
    type: str
    required: true
  phase:
    description: Which moment to describe.
    type: str
    default: current
    choices: [current, after_upgrade, after_reset]
  new_version:
    description:
      - The version the Upgrade writes, for O(phase=after_upgrade). Defaults to one more than the
        highest version found on the pod, so versions only grow.
    type: int
"""

EXAMPLES = r"""
- name: Env of the twins right after injection
  ansible.builtin.debug:
    msg: "{{ pod | meshops.sidecarset.version_pair_env('mosn') }}"
  # {"working": "mosn-1", "standby": "mosn-2",
  #  "mosn-1": {"SIDECARSET_VERSION": "1", "SIDECARSET_VERSION_ALT": "0"},
  #  "mosn-2": {"SIDECARSET_VERSION": "0", "SIDECARSET_VERSION_ALT": "1"}}

- name: What the Upgrade write will set
  ansible.builtin.set_fact:
    next_pair: "{{ pod.metadata.annotations | meshops.sidecarset.version_pair_env('mosn', phase='after_upgrade', new_version=5) }}"
  # mosn-2 becomes the working container with SIDECARSET_VERSION=5 and SIDECARSET_VERSION_ALT=1
"""

RETURN = r"""
_value:
  description:
    - C(working) and C(standby) container names, and for each of the two containers a dictionary with
      C(SIDECARSET_VERSION) and C(SIDECARSET_VERSION_ALT) (strings, as env values are).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshops.sidecarset.plugins.module_utils.version_pair import version_pair


def version_pair_env(pod_or_annotations, sidecar, phase="current", new_version=None):
    """Filter entry point; see DOCUMENTATION."""
    if not isinstance(pod_or_annotations, dict):
        raise AnsibleFilterError("version_pair_env: input must be a pod or a dictionary of annotations, got %s" % type(pod_or_annotations).__name__)
    if not isinstance(sidecar, str) or not sidecar:
        raise AnsibleFilterError("version_pair_env: the sidecar name must be a non-empty string")
    if new_version is not None:
        try:
            new_version = int(new_version)
        except (TypeError, ValueError):
            raise AnsibleFilterError("version_pair_env: new_version must be an integer, got %r" % (new_version,))
    try:
        return version_pair(pod_or_annotations, sidecar, phase=phase, new_version=new_version)
    except ValueError as exc:
        raise AnsibleFilterError("version_pair_env: %s" % exc)


class FilterModule(object):
    """Filters of meshops.sidecarset."""

    def filters(self):
        return {"version_pair_env": version_pair_env}
