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
  max_fail_percentage:
    description: With O(batches), failed pods tolerated per batch, in percent of the batch, before the remaining batches are skipped.
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
    description: Seconds to wait for the whole batch (for each batch of O(batches)) before pods still in flight are reported failed.
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
  description: Why the remaining batches of O(batches) were not started, or an empty string.
  returned: always
  type: str
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

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import PodWatch
from ansible_collections.meshops.sidecarset.plugins.module_utils.modrunner import k8s_argument_spec, load_one_sidecarset, run_k8s_module
from ansible_collections.meshops.sidecarset.plugins.module_utils.rollout_journal import over_fail_limit
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import selector_to_string
from ansible_collections.meshops.sidecarset.plugins.module_utils.upgrade import BatchUpgrade, batch_version, summarize


def argument_spec():
    """The module's options: kubernetes.core's connection options plus ours."""
    return k8s_argument_spec(
        sidecarset=dict(type="raw", required=True),
        namespace=dict(type="str"),
        pods=dict(type="list", elements="raw"),
        batches=dict(type="list", elements="list"),
        max_fail_percentage=dict(type="int", default=0),
        label_selector=dict(type="str"),
        phase=dict(type="str", choices=["upgrade", "reset", "all"], default="all"),
        wait=dict(type="bool", default=True),
        timeout=dict(type="int", default=300, aliases=["wait_timeout"]),
        rollback=dict(type="bool", default=False),
        poll=dict(type="float", default=2.0),
        concurrency=dict(type="int", default=32),
        version=dict(type="int"),
        fail_on_pod_failure=dict(type="bool", default=True),
    )


def pods_by_namespace(pods, namespace):
    """Group the ``pods`` option into ``{namespace: [names]}`` (order kept)."""
    grouped = {}
    for item in pods:
        if isinstance(item, dict):
            name, ns = item.get("name"), item.get("namespace") or namespace
        elif isinstance(item, str) and "/" in item:
            ns, name = item.split("/", 1)
        else:
            name, ns = item, namespace
        if not name or not isinstance(name, str):
            raise ParameterError("pods: %r is not a pod name, NAMESPACE/NAME or {name, namespace}" % (item,))
        if not ns:
            raise ParameterError("pods: %r has no namespace and the namespace option is not set" % (item,))
        grouped.setdefault(ns, []).append(name)
    return grouped


def requested_batches(params):
    """The batches to run, each ``{namespace: [names] or None}`` (None: every matching pod of the namespace)."""
    if params["batches"] is not None:
        if params["pods"] is not None:
            raise ParameterError("pods and batches are mutually exclusive")
        for index, batch in enumerate(params["batches"]):
            if not isinstance(batch, list):
                raise ParameterError("batches[%d]: expected a list of pods, got %r" % (index, batch))
        return [pods_by_namespace(batch, params["namespace"]) for batch in params["batches"]]
    if params["pods"] is not None:
        return [pods_by_namespace(params["pods"], params["namespace"])]
    if params["namespace"]:
        return [{params["namespace"]: None}]
    raise ParameterError("set namespace, or list the pods as NAMESPACE/NAME")


def run_one_batch(module, client, watches, sidecarset, grouped, version):
    """Upgrade one batch (its namespaces concurrently, each on its own watch); return the ``PodProgress`` list."""
    params = module.params
    runs = []
    for namespace, names in grouped.items():
        watch = watches[namespace]
        runs.append(BatchUpgrade(
            client, watch, sidecarset, names if names is not None else sorted(watch.pods),
            phase=params["phase"], wait=params["wait"] and not module.check_mode, timeout=params["timeout"],
            rollback=params["rollback"], check_mode=module.check_mode, concurrency=params["concurrency"],
            version=version, poll=params["poll"],
        ))
    if not runs:
        return []  # an empty pods list: nothing to do
    if len(runs) == 1:
        return runs[0].run()
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return [state for result in pool.map(lambda b: b.run(), runs) for state in result]


def run(module, client):
    """Select the pods, run the batches one after another (one watch per namespace for all), build the result."""
    params = module.params
    sidecarset = load_one_sidecarset(params["sidecarset"])
    selector = params["label_selector"]
    if selector is None:
        selector = selector_to_string((sidecarset.get("spec") or {}).get("selector"))
    requested = requested_batches(params)
    multi = params["batches"] is not None
    watches = {}
    states, batch_entries, stopped = [], [], ""
    try:
        for grouped in requested:
            for namespace in grouped:
                if namespace not in watches:
                    watches[namespace] = PodWatch(client, namespace, selector).start()
        version = params["version"]
        if version is None:
            version = batch_version([p for w in watches.values() for p in w.pods.values()])
        for index, grouped in enumerate(requested, 1):
            started = time.time()
            batch_states = run_one_batch(module, client, watches, sidecarset, grouped, version)
            for state in batch_states:
                state.batch = index if multi else None
            states.extend(batch_states)
            ended = time.time()
            batch_entries.append({
                "index": index,
                "pods": ["%s/%s" % (state.namespace, state.name) for state in batch_states],
                "started": round(started, 3), "ended": round(ended, 3), "seconds": round(ended - started, 3),
                "summary": summarize(batch_states),
            })
            failed = sum(1 for state in batch_states if state.failed)
            if multi and index < len(requested) and over_fail_limit(failed, len(batch_states), params["max_fail_percentage"]):
                stopped = "batch %d: %d of %d pods failed (max_fail_percentage %d%%); %d later batches not started" % (
                    index, failed, len(batch_states), params["max_fail_percentage"], len(requested) - index)
                break
    finally:
        for watch in watches.values():
            watch.stop()
    pods = [state.to_dict() for state in states]
    requests = dict(client.requests)
    requests["total"] = client.request_count
    result = dict(
        changed=any(state.changed for state in states),
        pods=pods,
        summary=summarize(states),
        batches=batch_entries if multi else [],
        stopped=stopped,
        version=version,
        api_requests=requests,
    )
    if module._diff:
        result["diff"] = dict(
            before={p["name"]: {"working": p["working_before"], "images": p["images_before"]} for p in pods},
            after={p["name"]: {"working": p["working_after"], "images": p["images"]} for p in pods},
        )
    failed = [p for p in pods if p["failed"]]
    if failed and params["fail_on_pod_failure"]:
        result["failed"] = True
        result["msg"] = "%d of %d pods failed: %s" % (
            len(failed), len(pods), "; ".join("%s/%s: %s" % (p["namespace"], p["name"], p["reason"]) for p in failed[:10]))
    return result


def main():
    run_k8s_module(argument_spec(), run)


if __name__ == "__main__":
    main()
