#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sidecar_upgrade
short_description: Upgrade the sidecars of a batch of running pods in place (HotUpgrade and ColdUpgrade)
version_added: 0.1.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - Brings the sidecar containers of running pods to the images of a SidecarSet without recreating the
    pods, as OpenKruise's SidecarSet controller does, for many pods concurrently in one invocation.
  - "HotUpgrade sidecars, three phases per pod: B(Upgrade) (one write: the standby twin gets the new image
    together with the version, version-alt, working-container, in-place-update-state and hash annotations),
    B(Migration) (wait until the new twin runs the new imageID, finished its postStart hook, and is ready),
    B(Reset) (one write: the old twin goes back to the empty image with version C(0)). Repeated upgrades
    alternate between C(N-1) and C(N-2)."
  - ColdUpgrade sidecars get their image patched in place; kubelet restarts only that container.
  - Each pod's progress is read from the pod itself, so running the module again after an interruption at
    any point continues where every pod is; a pod already upgraded reports no change.
  - Every write carries the pod's resourceVersion and is re-planned on a conflict (HTTP 409), so
    annotations written by others are never lost.
  - A pod whose new twin fails (image pull error, postStart failure, crash) or is not ready within
    O(timeout) is reported failed and is not reset, so the old sidecar keeps serving. With O(rollback=true)
    its new twin goes back to the empty image and the previous annotations are restored.
  - Pods are refused, with the reason, when a non-image field of a sidecar differs from what they run
    (C(kruise.io/sidecarset-hash-without-image)), when the C(-1)/C(-2) pair is missing, or when the
    SidecarSet changed C(hotUpgradeEmptyImage). Pods injected by OpenKruise itself are adopted.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshops.sidecarset.sidecarset
options:
  namespace:
    description:
      - Namespace of the pods. Required unless every item of O(pods) names its namespace.
    type: str
  pods:
    description:
      - The pods to upgrade, each a name (in O(namespace)), C(NAMESPACE/NAME), or a dictionary with C(name) and
        C(namespace). A batch may span namespaces; each namespace gets its own watch, all run concurrently.
      - When omitted, every pod of O(namespace) that matches O(label_selector) (default, the SidecarSet's
        selector) is upgraded.
    type: list
    elements: raw
  batches:
    description:
      - Several batches in one invocation, each a list of pods in the forms of O(pods). They run one after
        another - a batch starts only when every pod of the previous one is done, failed or timed out - so at
        most one batch is unavailable at a time, as with one invocation per batch, without paying the start of
        a module and of its watches for every batch.
      - After a batch whose failed pods exceed O(max_fail_percentage) of the batch, the remaining batches are not
        started (RV(stopped) says why).
      - Mutually exclusive with O(pods).
    type: list
    elements: list
  window:
    description:
      - At most this many pods of a batch in flight at any moment (between their Upgrade and a finished Reset),
        as OpenKruise's controller keeps C(maxUnavailable); the next pod, in the given order, starts as soon as one
        finishes. Matched pods of the same namespaces that are unavailable already (and not part of the batch) take
        a place in the window; a failed pod keeps its place (it is unavailable), a rolled-back one frees it; a pod
        that was not ready before its upgrade takes none (Kruise counts the same way).
      - V(0) - every pod of a batch at once.
    type: int
    default: 0
  max_fail_percentage:
    description:
      - With O(batches), failed pods tolerated per batch, in percent of the batch, before the remaining batches are skipped.
      - With O(window), failed pods tolerated in percent of the batch's pods; once over it no more pods start
        (RV(stopped) says why, RV(not_started) how many).
    type: int
    default: 0
  label_selector:
    description: Label selector for the pods, in the API's string form (C(app=web,tier!=db)). Defaults to the SidecarSet's C(spec.selector).
    type: str
  phase:
    description:
      - C(upgrade) writes the Upgrade and waits for the Migration; C(reset) resets pods whose migration has
        finished; C(all) does the three phases.
    type: str
    choices: [upgrade, reset, all]
    default: all
  wait:
    description: Wait for each phase to complete. With V(false) the module returns after the writes.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for the whole batch (for each batch of O(batches)) before pods still in flight are reported failed.
      - With O(window), for each pod from the moment it starts.
    type: int
    default: 300
    aliases: [wait_timeout]
  poll:
    description:
      - Pods are followed with one watch per namespace; every O(poll) seconds all pods are also re-checked from
        the watch's cache, in case an event was missed.
    type: float
    default: 2.0
  rollback:
    description: Put the standby twin of a failed pod back on the empty image and restore its previous annotations.
    type: bool
    default: false
  concurrency:
    description: How many pod writes run at the same time (the client keeps this many connections open, plus 4).
    type: int
    default: 32
  version:
    description:
      - The version (C(SIDECARSET_VERSION)) written for the new twins. Defaults to one more than the highest
        version found on any pod of the batch; it must be greater than every version already on each pod.
    type: int
  health_url:
    description:
      - An HTTP URL checked for each pod after its migration and before its reset; a pod that does not answer
        O(health_status) within O(health_retries) attempts is reported failed and not reset (the new sidecar serves,
        the old one stays idle). C({name}), C({namespace}), C({pod_ip}), C({host_ip}), C({node}) are replaced per pod.
    type: str
  health_status:
    description: The HTTP status O(health_url) must return.
    type: int
    default: 200
  health_retries:
    description: Attempts of the health check per pod.
    type: int
    default: 3
  health_delay:
    description: Seconds between attempts of the health check.
    type: float
    default: 2.0
  progress_interval:
    description:
      - Print a progress line (done, in flight, failed, left, rate, estimated time left) at least every this many
        seconds while the module runs, and one at every batch and stop event; V(0) - none. Printed by the action
        plugin on the controller (terminal and AWX job output) when the module runs there (a local connection, for
        example C(delegate_to=localhost)).
    type: float
    default: 10.0
  progress_file:
    description: Where the module writes its progress record (set by the action plugin; leave unset).
    type: path
  fail_on_pod_failure:
    description: Fail the task when any pod failed or was refused (the per-pod results are returned either way).
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Each pod's next write is sent with C(dryRun=All) (validated by the API server, not stored); nothing is waited for.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Shows the sidecar images, working slots and versions of each pod before and after.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
requirements:
  - python >= 3.11
  - kubernetes >= 24.2.0
  - PyYAML
seealso:
  - module: meshops.sidecarset.sidecarset_info
  - module: meshops.sidecarset.sidecar_inject
"""

EXAMPLES = r"""
- name: Hot-upgrade the MOSN sidecar of two pods (all three phases)
  meshops.sidecarset.sidecar_upgrade:
    sidecarset: examples/sidecarsets/mosn.yaml
    namespace: default
    pods: [test-app-5d9c7b-abcde, test-app-5d9c7b-fghij]
    timeout: 120

- name: Upgrade every matching pod of a namespace, but leave the reset to a later task
  meshops.sidecarset.sidecar_upgrade:
    sidecarset: "{{ lookup('file', 'sidecarset.yaml') | from_yaml }}"
    namespace: shop
    phase: upgrade
  register: upgraded

- name: Reset them after an external health check
  meshops.sidecarset.sidecar_upgrade:
    sidecarset: "{{ lookup('file', 'sidecarset.yaml') | from_yaml }}"
    namespace: shop
    pods: "{{ upgraded.pods | map(attribute='name') | list }}"
    phase: reset

- name: Three batches of two pods in one invocation, one batch after another; stop after a batch with a failure
  meshops.sidecarset.sidecar_upgrade:
    sidecarset: examples/sidecarsets/mosn.yaml
    namespace: default
    batches:
      - [web-0, web-1]
      - [web-2, web-3]
      - [web-4, shop/cart-0]
    max_fail_percentage: 0
  register: waves

- name: A continuous window of 10 pods over the whole list, an HTTP check per pod before its reset
  meshops.sidecarset.sidecar_upgrade:
    sidecarset: examples/sidecarsets/mosn.yaml
    namespace: default
    pods: "{{ pod_names }}"
    window: 10
    max_fail_percentage: 5
    health_url: "http://{pod_ip}:15021/healthz/ready"

- name: With the credentials of an AWX Kubernetes credential (K8S_AUTH_* environment) and rollback
  meshops.sidecarset.sidecar_upgrade:
    sidecarset: sidecarsets/envoy.yaml
    namespace: payments
    label_selector: app=checkout
    rollback: true
"""

RETURN = r"""
pods:
  description: One entry per pod.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pod name.
      type: str
    namespace:
      description: Pod namespace.
      type: str
    node:
      description: Node the pod runs on.
      type: str
    pod_ip:
      description: The pod's IP address (C(status.podIP)), for per-pod health checks.
      type: str
    host_ip:
      description: The IP address of the pod's node (C(status.hostIP)).
      type: str
    working_before:
      description: Working twin of each HotUpgrade sidecar before the run, for example C(mosn=mosn-1).
      type: dict
    working_after:
      description: Working twin of each HotUpgrade sidecar after the run.
      type: dict
    images_before:
      description: Image of each sidecar container (both twins) before the run.
      type: dict
    images:
      description: Image of each sidecar container (both twins) after the run.
      type: dict
    versions:
      description:
        - C(version)/C(versionalt) annotation values of each twin after the run (the keys of M(meshops.sidecarset.sidecarset_info)).
        - C(version_alt) repeats C(versionalt), the spelling of earlier releases; deprecated, it is removed in the next release.
      type: dict
    phase:
      description:
        - Phase reached; C(done), C(migrated) (phase=upgrade), C(planned) (check mode), C(upgrading),
          C(migrating), C(resetting), C(failed), C(rolled-back), C(not-upgradable), C(missing).
      type: str
    timings:
      description: Seconds spent in C(upgrade) (until the write), C(migration), C(reset), and C(total).
      type: dict
    writes:
      description: The writes made to the pod, in order (C(upgrade), C(reset), C(rollback)).
      type: list
      elements: str
    changed:
      description: Whether the pod was written.
      type: bool
    failed:
      description: Whether the pod failed, was refused or timed out.
      type: bool
    reason:
      description: Why a pod failed or was refused, or what is left to do.
      type: str
    batch:
      description: With O(batches), the index of the pod's batch (1-based).
      type: int
    started_at:
      description: When the pod started (seconds since the epoch); its phases follow as RV(pods[].timings) says.
      type: float
  sample:
    - name: test-app-5d9c7b-abcde
      namespace: default
      node: sim-node-0
      pod_ip: 10.100.0.12
      host_ip: 10.240.0.10
      working_before: {mosn: mosn-1}
      working_after: {mosn: mosn-2}
      images: {mosn-1: "openkruise/hotupgrade-sample:empty", mosn-2: "tinyqian/mosn:v2"}
      phase: done
      timings: {upgrade: 0.01, migration: 0.8, reset: 0.5, total: 1.4}
      writes: [upgrade, reset]
      changed: true
      failed: false
      reason: ""
batches:
  description: With O(batches), one entry per batch that ran.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: Position of the batch in O(batches) (1-based).
      type: int
    pods:
      description: The batch's pods as C(NAMESPACE/NAME).
      type: list
      elements: str
    started:
      description: When the batch started (seconds since the epoch).
      type: float
    ended:
      description: When its last pod finished (seconds since the epoch).
      type: float
    seconds:
      description: How long the batch took.
      type: float
    summary:
      description: Counts over the batch, as RV(summary).
      type: dict
  sample: [{index: 1, pods: [default/web-0, default/web-1], started: 1764621000.5, ended: 1764621001.9, seconds: 1.4,
            summary: {total: 2, changed: 2, done: 2, failed: 0, phases: {done: 2}}}]
stopped:
  description: Why the remaining batches of O(batches) (or pods of O(window)) were not started, or an empty string.
  returned: always
  type: str
not_started:
  description: How many of the requested pods were not started (the run stopped).
  returned: always
  type: int
summary:
  description: Counts over the batch.
  returned: always
  type: dict
  sample: {total: 2, changed: 2, done: 2, failed: 0, phases: {done: 2}}
version:
  description: The version written for the new twins of this batch.
  returned: always
  type: int
api_requests:
  description: API requests made by this invocation, in total and per verb.
  returned: always
  type: dict
  sample: {total: 7, list: 1, watch: 1, patch: 4}
"""

from ansible_collections.meshops.sidecarset.plugins.module_utils.modrunner import k8s_argument_spec, run_k8s_module
from ansible_collections.meshops.sidecarset.plugins.module_utils.upgrade import run_sidecar_upgrade


def argument_spec():
    """The module's options: kubernetes.core's connection options plus ours."""
    return k8s_argument_spec(
        sidecarset=dict(type="raw", required=True),
        namespace=dict(type="str"),
        pods=dict(type="list", elements="raw"),
        batches=dict(type="list", elements="list"),
        window=dict(type="int", default=0),
        max_fail_percentage=dict(type="int", default=0),
        label_selector=dict(type="str"),
        phase=dict(type="str", choices=["upgrade", "reset", "all"], default="all"),
        wait=dict(type="bool", default=True),
        timeout=dict(type="int", default=300, aliases=["wait_timeout"]),
        rollback=dict(type="bool", default=False),
        poll=dict(type="float", default=2.0),
        concurrency=dict(type="int", default=32),
        version=dict(type="int"),
        health_url=dict(type="str"),
        health_status=dict(type="int", default=200),
        health_retries=dict(type="int", default=3),
        health_delay=dict(type="float", default=2.0),
        progress_interval=dict(type="float", default=10.0),
        progress_file=dict(type="path"),
        fail_on_pod_failure=dict(type="bool", default=True),
    )


def main():
    run_k8s_module(argument_spec(), run_sidecar_upgrade, mutually_exclusive=[("pods", "batches")])


if __name__ == "__main__":
    main()
