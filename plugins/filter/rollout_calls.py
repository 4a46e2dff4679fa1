# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: rollout_calls
short_description: Group a rollout's batches into sidecar_upgrade invocations
version_added: 0.1.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - Takes the batches of a rollout (lists of pods, in order) and returns the invocations of
    M(meshops.sidecarset.sidecar_upgrade) that run them, each with the C(batches) it runs, their C(kind) and
    the position of its first batch (C(first), 1-based).
  - Batches whose kind is not C(batch) - C(canary), C(resume), C(window) (the rest of the rollout in one continuous
    maxUnavailable window) - get an invocation of their own (the rollout pauses, stops or reports after them); so does
    every batch when O(gated) (health gates run between its upgrade and its reset).
  - Other consecutive batches are grouped, O(per_call) to an invocation (V(0) - all of them), and run one after
    another inside it.
options:
  _input:
    description: The batches, each a list of pods.
    type: list
    elements: list
    required: true
  kinds:
    description: The kind of the first batches (C(resume), C(canary), C(window)); the batches after them are C(batch).
    type: list
    elements: str
    default: []
  per_call:
    description: Batches per invocation for the C(batch) kind; V(0) means all of them.
    type: int
    default: 1
  gated:
    description: Health gates run between each batch's upgrade and reset, so every batch is an invocation of its own.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Two canary pods alone, then the other batches five at a time
  ansible.builtin.set_fact:
    calls: "{{ [[pod_a, pod_b], [pod_c], [pod_d], [pod_e]] | meshops.sidecarset.rollout_calls(kinds=['canary'], per_call=5) }}"
  # -> [{kind: canary, first: 1, batches: [[pod_a, pod_b]]}, {kind: batch, first: 2, batches: [[pod_c], [pod_d], [pod_e]]}]
"""

RETURN = r"""
_value:
  description: The invocations, in order.
  type: list
  elements: dict
  contains:
    kind:
      description: C(resume), C(canary), C(window) or C(batch).
      type: str
    first:
      description: Position of the invocation's first batch among all batches (1-based).
      type: int
    batches:
      description: The batches the invocation runs, in order.
      type: list
      elements: list
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.meshops.sidecarset.plugins.module_utils import podlist


def rollout_calls(batches, kinds=None, per_call=1, gated=False):
    """Group ``batches`` into invocations (see DOCUMENTATION; ``podlist.rollout_calls``)."""
    if not isinstance(batches, list) or any(not isinstance(b, list) for b in batches):
        raise AnsibleFilterError("rollout_calls: expected a list of batches (lists of pods), got %r" % (batches,))
    try:
        return podlist.rollout_calls(batches, kinds, per_call, gated)
    except ValueError as exc:
        raise AnsibleFilterError("rollout_calls: %s" % exc)


class FilterModule(object):
    """meshops.sidecarset.rollout_calls"""

    def filters(self):
        return {"rollout_calls": rollout_calls}
