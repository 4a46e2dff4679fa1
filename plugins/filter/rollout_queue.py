# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: rollout_queue
short_description: The queue a rollout runs on one cluster, from the plan of sidecarset_info
version_added: 0.3.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - Takes the RV(meshops.sidecarset.sidecarset_info#module:rollout) plan of a cluster and returns what the
    C(meshops.sidecarset.rollout) role runs there, in order. First the pods in flight or due for their reset
    (C(resume), so that an interrupted rollout finishes them first). Then the canary, O(canary) pods counted with the
    O(updated_pods) already updated, at most one maxUnavailable budget. Then the rest of Kruise's order, as one
    continuous maxUnavailable C(window) or as maxUnavailable-sized batches (C(batch)).
  - The C(status) role shows the same queue, so what it prints is what a rollout would run.
options:
  _input:
    description: The C(rollout) return value of M(meshops.sidecarset.sidecarset_info).
    type: dict
    required: true
  updated_pods:
    description: Pods already updated (C(status.updatedPods) of M(meshops.sidecarset.sidecarset_info)); they count toward the canary.
    type: int
    default: 0
  canary:
    description: Canary size (pods updated before the rest); V(0) for none.
    type: int
    default: 0
  window:
    description: The rest as one continuous window (V(true)) or as maxUnavailable-sized batches (V(false)).
    type: bool
    default: true
  per_call:
    description: Batches per M(meshops.sidecarset.sidecar_upgrade) invocation for the C(batch) kind (V(0) - all), as in C(meshops.sidecarset.rollout_calls).
    type: int
    default: 1
  gated:
    description: Health gates run between each batch's upgrade and reset, so every batch is an invocation of its own.
    type: bool
    default: false
  history:
    description:
      - The report of a previous rollout (the JSON the C(rollout) role writes to C(rollout_report_path)). When set, the
        pods after the canary start longest first, by how long each took in that report (a pod it does not name counts
        as the lower median of the queued pods' known durations). Which pods are upgraded, the canary and the
        maxUnavailable budget stay Kruise's.
    type: dict
  cluster:
    description: The cluster whose pods O(history) is read for (the C(cluster) of the report's pods).
    type: str
    default: default
"""

EXAMPLES = r"""
- name: Cut the plan into the rollout's queue
  ansible.builtin.set_fact:
    queue: "{{ plan.rollout | meshops.sidecarset.rollout_queue(updated_pods=plan.status.updatedPods, canary=2) }}"

- name: The same queue, the slowest pods of the last rollout first
  ansible.builtin.set_fact:
    queue: >-
      {{ plan.rollout | meshops.sidecarset.rollout_queue(updated_pods=plan.status.updatedPods, canary=2,
         history=lookup('ansible.builtin.file', 'rollout-report.json') | from_json) }}
"""

RETURN = r"""
_value:
  description: The queue.
  type: dict
  contains:
    batches:
      description: The batches (lists of pods, C(name) and C(namespace)), in order.
      type: list
      elements: list
    kinds:
      description: The kinds of the first batches (C(resume), C(canary), C(window)); the batches after them are C(batch).
      type: list
      elements: str
    calls:
      description: The batches grouped into invocations, as C(meshops.sidecarset.rollout_calls) returns them.
      type: list
      elements: dict
    budget:
      description: The maxUnavailable budget as a count (at least 1).
      type: int
    canary:
      description: Pods in the canary batch.
      type: int
    resumed:
      description: Pods in the C(resume) batch.
      type: int
    to_upgrade:
      description: Pods of Kruise's order left to upgrade.
      type: int
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.meshops.sidecarset.plugins.module_utils import podlist
from ansible_collections.meshops.sidecarset.plugins.module_utils.rollout_journal import report_durations


def rollout_queue(plan, updated_pods=0, canary=0, window=True, per_call=1, gated=False, history=None, cluster="default"):
    """The queue (see DOCUMENTATION; ``podlist.rollout_queue``)."""
    if not isinstance(plan, dict) or not isinstance(plan.get("order"), list):
        raise AnsibleFilterError("rollout_queue: expected the rollout plan of sidecarset_info (a dict with order), got %r" % (plan,))
    try:
        durations = report_durations(history, cluster) if history else None
    except ValueError as exc:
        raise AnsibleFilterError("rollout_queue: history: %s" % exc)
    try:
        return podlist.rollout_queue(plan, updated_pods, canary, boolean(window), per_call, boolean(gated), durations)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("rollout_queue: %s" % exc)


class FilterModule(object):
    """meshops.sidecarset.rollout_queue"""

    def filters(self):
        return {"rollout_queue": rollout_queue}
