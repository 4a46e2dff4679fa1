#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rollout_journal
short_description: Bookkeeping of a batched sidecar rollout (records, stop decision, JSON report)
version_added: 0.1.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - The controller-side bookkeeping of the P(meshops.sidecarset.rollout#role) role, usable in your own
    orchestration around M(meshops.sidecarset.sidecar_upgrade).
  - O(step=start) creates an empty journal (a JSON-lines file in Ansible's temporary directory of the run).
  - O(step=batch) turns the per-pod results of one batch (the registered M(meshops.sidecarset.sidecar_upgrade)
    result of the upgrade call, and of the reset call when health gates ran between them) into report records,
    appends them to the journal and says whether the rollout stops after this batch (failures over
    O(max_fail_percentage), or a canary with O(canary_stop)).
  - O(step=finish) sums the journal up (C(rollout_result)), writes the JSON report to O(report_path) atomically
    and removes the journal.
  - O(step=wait) waits for M(meshops.sidecarset.sidecar_upgrade) invocations started in the background (C(async)
    with C(poll=0), on the controller; the P(meshops.sidecarset.rollout#role) role does this for C(rollout_cluster_parallelism) clusters at a time),
    prints each one's live progress line labelled with its cluster (C([progress NAME])) at least every
    O(progress_interval) seconds and at each batch and stop event, and returns their results. It fails, once all of
    them have ended, when any invocation failed (as the task of a failing invocation would).
  - The records of every pod stay in the journal, not in Ansible variables, so a rollout of thousands of pods
    costs no templating of per-pod lists.
  - This is an action plugin; it runs on the controller and talks to no cluster.
options:
  step:
    description: What to do.
    type: str
    required: true
    choices: [start, batch, finish, wait]
  journal:
    description: The journal path returned by O(step=start). Required for O(step=batch) and O(step=finish).
    type: path
  batches:
    description:
      - The batches of the M(meshops.sidecarset.sidecar_upgrade) invocation, in order, each a list of pods (dicts with
        C(name) and C(namespace), or C(namespace/name) strings). O(step=batch); this or O(pods).
      - With several batches (the module's C(batches) option) each is recorded as a batch of its own, timed as the
        module reports it.
    type: list
    elements: list
  pods:
    description: Shorthand for O(batches) with one batch - its pods.
    type: list
    elements: raw
  upgrade:
    description:
      - The registered result of the batch's M(meshops.sidecarset.sidecar_upgrade) task (looped over namespaces
        or not), or a list of its per-pod results. O(step=batch).
    type: raw
  reset:
    description: The registered result of the batch's reset call (health gates), same forms as O(upgrade).
    type: raw
  gate_failed:
    description: Names of the pods of the batch that failed a health gate (they are reported failed, not reset).
    type: list
    elements: str
    default: []
  cluster:
    description: Name of the cluster of the batch.
    type: str
    default: default
  kind:
    description: The kind of batch, C(canary), C(resume) or C(batch).
    type: str
    default: batch
  max_unavailable:
    description: The batch budget (maxUnavailable as a number of pods), recorded in the report.
    type: int
  position:
    description: Position of the batch among the batches of its cluster (1-based), for the progress line.
    type: int
  total:
    description: Number of batches of the cluster, for the progress line.
    type: int
  started:
    description: When the batch started (seconds since the epoch).
    type: float
  ended:
    description:
      - When the batch ended (seconds since the epoch); default now. O(step=batch) with one batch (several batches
        are timed by the module).
      - For an invocation run in the background, the C(ended) of RV(results) of O(step=wait).
    type: float
  max_fail_percentage:
    description: Failed pods tolerated in the batch, in percent of the batch; above it the rollout stops as failed.
    type: int
    default: 0
  canary_stop:
    description: With O(kind=canary), stop the rollout after this batch (a later run continues).
    type: bool
    default: false
  plans:
    description: The per-cluster plans of the run (recorded in the report and summed up). O(step=finish).
    type: list
    elements: dict
  stopped:
    description: Why the rollout stopped (empty when it did not). O(step=finish).
    type: str
  failed:
    description: Whether the rollout stopped on failed pods. O(step=finish).
    type: bool
    default: false
  targets:
    description:
      - Inventory-driven rollouts - the pod hosts of the run, one entry per cluster (C(name), C(pods) with C(name),
        C(namespace), C(host)), as the C(meshops.sidecarset.rollout_targets) filter returns them. With it,
        O(step=finish) also returns RV(host_outcomes). O(step=finish).
    type: list
    elements: dict
  report_path:
    description:
      - Write the JSON report (result, plans, batches, pods) here. Empty means no report. O(step=finish).
      - The timeline picture of the run (SVG, one row per pod, its phases coloured) is written next to it, with the
        same name and the suffix C(.svg) instead of C(.json).
    type: path
  keep_journal:
    description: Keep the journal file after O(step=finish).
    type: bool
    default: false
  jobs:
    description:
      - O(step=wait) - the background invocations, each a dict with C(cluster) (its name, for the progress lines),
        C(job) (the registered result of the M(meshops.sidecarset.sidecar_upgrade) task run with C(async) and
        C(poll=0), with C(results_file), C(progress_file) and C(launched)) and optionally C(limit) (the task's C(async)
        seconds; a job with no result a minute after it is reported failed).
    type: list
    elements: dict
  progress_interval:
    description: O(step=wait) - seconds between progress lines of each invocation; V(0) - none.
    type: float
    default: 10
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: In check mode O(step=finish) writes no report; the journal (temporary state of the run) is kept as usual.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Never reports a change; it records the run and manages no state.
"""

EXAMPLES = r"""
- name: Start the bookkeeping of a rollout
  meshops.sidecarset.rollout_journal:
    step: start
  register: journal

- name: Upgrade one batch
  meshops.sidecarset.sidecar_upgrade:
    sidecarset: mosn-v2.yaml
    namespace: shop
    pods: "{{ batch_pods | map(attribute='name') | list }}"
    fail_on_pod_failure: false
  register: upgraded

- name: Record the batch
  meshops.sidecarset.rollout_journal:
    step: batch
    journal: "{{ journal.journal }}"
    batches: ["{{ batch_pods }}"]
    upgrade: "{{ upgraded }}"
    max_unavailable: 10
  register: recorded

- name: Write the report
  meshops.sidecarset.rollout_journal:
    step: finish
    journal: "{{ journal.journal }}"
    report_path: out/rollout.json
  register: summary
"""

RETURN = r"""
journal:
  description: Path of the new journal.
  returned: step=start
  type: str
started:
  description: When the journal was started (seconds since the epoch).
  returned: step=start
  type: float
batch:
  description: The (last) batch entry (index, cluster, kind, max_unavailable, size, started, ended, seconds, failed, phases).
  returned: step=batch
  type: dict
  sample: {index: 1, cluster: default, kind: canary, max_unavailable: 8, size: 2, seconds: 1.4, failed: 0, phases: {done: 2}}
stopped:
  description: Why the rollout stops after this batch, or an empty string.
  returned: step=batch
  type: str
rollout_failed:
  description: Whether the rollout stops because too many pods of the batch failed.
  returned: step=batch
  type: bool
failed_pods:
  description: The failed pods of the batch as C(cluster/namespace/name).
  returned: step=batch
  type: list
  elements: str
msgs:
  description: The progress line of each batch recorded.
  returned: step=batch
  type: list
  elements: str
  sample: ["[default] batch 1/5 (canary, 2 pods): done=2 in 1.4 s"]
msg:
  description: The same lines, one string.
  returned: step=batch
  type: str
rollout_result:
  description: Counts over the run (sidecarset, stopped, failed, seconds, clusters, matched, batches, upgraded,
    unchanged, failed_pods, rolled_back, partitioned, not_upgradable, phases).
  returned: step=finish
  type: dict
report_path:
  description: The report written, or an empty string.
  returned: step=finish
  type: str
timeline_path:
  description: The timeline picture written next to the report, or an empty string.
  returned: step=finish
  type: str
results:
  description:
    - O(step=wait) - the final result of each invocation of O(jobs), in order (what the task would have registered
      without C(async)), plus C(ended) (when it ended, seconds since the epoch) and C(launched).
  returned: step=wait
  type: list
  elements: dict
host_outcomes:
  description:
    - Each pod host's outcome, by inventory host name - C(phase) (the pod's phase, or C(partitioned),
      C(not-upgradable), C(missing), C(not-reached)), C(reason), C(changed), C(failed) and C(msg) (one line).
  returned: step=finish with O(targets)
  type: dict
  sample: {"sim/shop/web-1": {"phase": "done", "reason": "", "changed": true, "failed": false, "msg": "sim/shop/web-1: done"}}
"""
