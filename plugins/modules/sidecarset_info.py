#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sidecarset_info
short_description: Status of a SidecarSet's pods, as Kruise computes it, and the rollout plan
version_added: 0.1.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - Reads the pods a SidecarSet selects and reports what OpenKruise would put in the SidecarSet's
    status (C(matchedPods), C(updatedPods), C(readyPods), C(updatedReadyPods)), and for every pod its
    working twin, images, versions and upgrade phase (C(idle), C(upgrading), C(migrating), C(resetting),
    C(done), C(failed), C(not-upgradable)) with the reason.
  - "Also returns the rollout plan a rollout follows: the upgradable pods in Kruise's order (not-ready
    first, then priority and scatter strategies), without the C(partition) pods, split into batches of
    C(maxUnavailable)."
  - Read only.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshops.sidecarset.sidecarset
options:
  namespace:
    description:
      - Only look at this namespace. By default every namespace the SidecarSet's C(namespaceSelector)
        (or v1alpha1 C(namespace)) selects, or all namespaces when it has none.
    type: str
  label_selector:
    description: Pod label selector (API string form). Defaults to the SidecarSet's C(spec.selector).
    type: str
  max_unavailable:
    description: Overrides C(spec.updateStrategy.maxUnavailable) for the plan (an int or a percent such as C(25%)).
    type: raw
  partition:
    description: Overrides C(spec.updateStrategy.partition) for the plan (an int or a percent).
    type: raw
  pods:
    description:
      - Restrict the plan (RV(rollout)) to these pods (dicts with C(name) and C(namespace), or C(namespace/name)
        strings), e.g. the pod hosts an inventory limit selected. The plan is decided over all the pods the
        SidecarSet selects, as Kruise decides it (order, partition, the maxUnavailable budget and the pods already
        unavailable count over every matched pod), then only the selected pods are kept, in that order.
        RV(status) and RV(pods) are not restricted.
    type: list
    elements: raw
  template_drift:
    description:
      - Also read the workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) of the namespaces
        looked at and return RV(drift) - the workloads whose pod template carries an older revision of this
        SidecarSet (new pods they create start on the old sidecar) and the pods created that way.
    type: bool
    default: false
  pod_details:
    description:
      - Return RV(pods), one entry per matching pod. With V(false) RV(pods) is empty and only the counters and
        the plan are returned, which keeps the result small for thousands of pods (the rollout role plans this way).
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Read only; behaves the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
requirements:
  - python >= 3.11
  - kubernetes >= 24.2.0
  - PyYAML
seealso:
  - module: meshops.sidecarset.sidecar_upgrade
"""

EXAMPLES = r"""
- name: How far is the MOSN rollout?
  meshops.sidecarset.sidecarset_info:
    sidecarset: examples/sidecarsets/mosn.yaml
  register: mosn

- name: Show the counts
  ansible.builtin.debug:
    msg: "{{ mosn.status.updatedReadyPods }}/{{ mosn.status.matchedPods }} pods upgraded and ready"

- name: Plan batches of 25% keeping 3 pods on the old version
  meshops.sidecarset.sidecarset_info:
    sidecarset: examples/sidecarsets/mosn.yaml
    namespace: default
    max_unavailable: 25%
    partition: 3
  register: plan
"""

RETURN = r"""
status:
  description: The SidecarSet status counters, computed as Kruise's C(calculateStatus).
  returned: always
  type: dict
  sample: {matchedPods: 3, updatedPods: 1, readyPods: 2, updatedReadyPods: 1}
pods:
  description: One entry per pod the SidecarSet selects (empty with O(pod_details=false)).
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
      description: Node name.
      type: str
    owner:
      description: The pod's controlling owner (C(kind), C(name)).
      type: dict
    labels:
      description: The pod's labels.
      type: dict
    phase:
      description: C(idle), C(upgrading), C(migrating), C(resetting), C(done), C(failed) or C(not-upgradable).
      type: str
    reason:
      description: Why the pod is in that phase.
      type: str
    updated:
      description: The pod carries the SidecarSet's current hash.
      type: bool
    ready:
      description: Consistent and ready as Kruise counts C(readyPods).
      type: bool
    working:
      description: Working twin of each HotUpgrade sidecar.
      type: dict
    empty:
      description: Standby twin of each HotUpgrade sidecar.
      type: dict
    images:
      description: Image of every sidecar container.
      type: dict
    versions:
      description: C(version)/C(versionalt) of each twin.
      type: dict
drift:
  description: With O(template_drift=true), template drift (docs/rollout.md, "Template drift and convergence").
  returned: when O(template_drift=true)
  type: dict
  contains:
    workloads:
      description: Workloads whose template records an older SidecarSet hash (C(kind), C(name), C(namespace),
        C(template_hash), C(hash)).
      type: list
      elements: dict
    pods:
      description: Pods of those workloads carrying the template's old hash (C(name), C(namespace), C(workload)).
      type: list
      elements: dict
rollout:
  description: The rollout plan.
  returned: always
  type: dict
  contains:
    order:
      description: Upgradable pods (C(name), C(namespace)) in the order they would be upgraded, partition excluded.
      type: list
      elements: dict
    batches:
      description: C(order) split into batches; the first is what Kruise would pick now, the others hold C(max_unavailable) pods.
      type: list
      elements: list
    partitioned:
      description: Pods kept on the old version by C(partition).
      type: list
      elements: dict
    not_upgradable:
      description: Pods that cannot be upgraded in place, with C(reason).
      type: list
      elements: dict
    in_flight:
      description: Pods with an upgrade in progress.
      type: list
      elements: dict
    reset:
      description: Pods whose migration finished and that are waiting for their reset.
      type: list
      elements: dict
    max_unavailable:
      description: The maxUnavailable budget as a pod count.
      type: int
    partition:
      description: The partition as a pod count.
      type: int
    unavailable:
      description: Updated pods that are currently unavailable.
      type: int
    matched:
      description: Number of matching pods (Kruise's C(matchedPods)), the base of a percent C(maxUnavailable) or C(partition).
      type: int
    selected:
      description: Every active pod the SidecarSet selects, injected or not (with O(pods), those of the selection found).
      type: int
    selection:
      description: With O(pods) only, C(requested), C(found), C(outside) (selected pods not in O(pods)) and C(missing)
        (pods of O(pods) the SidecarSet does not select, or that are gone).
      type: dict
      returned: when O(pods) is set
    stopped:
      description: Why nothing would be upgraded (NotUpdate, paused), or empty.
      type: str
"""

from ansible_collections.meshops.sidecarset.plugins.module_utils.modrunner import k8s_argument_spec, load_one_sidecarset, run_k8s_module
from ansible_collections.meshops.sidecarset.plugins.module_utils.kinds import WORKLOAD_KINDS
from ansible_collections.meshops.sidecarset.plugins.module_utils.podlist import list_sidecarset_pods, plan_rollout, selected_namespaces
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import get_hash, sidecarset_name
from ansible_collections.meshops.sidecarset.plugins.module_utils.status import compute_status, controller_of, pod_report, template_drift


def argument_spec():
    """The module's options: kubernetes.core's connection options plus ours."""
    return k8s_argument_spec(
        sidecarset=dict(type="raw", required=True),
        namespace=dict(type="str"),
        label_selector=dict(type="str"),
        max_unavailable=dict(type="raw"),
        partition=dict(type="raw"),
        pods=dict(type="list", elements="raw"),
        template_drift=dict(type="bool", default=False),
        pod_details=dict(type="bool", default=True),
    )


def run(module, client):
    """Read the pods and build the report."""
    params = module.params
    sidecarset = load_one_sidecarset(params["sidecarset"])
    pods = list_sidecarset_pods(client, sidecarset, params["namespace"], params["label_selector"])
    pods.sort(key=lambda p: (p["metadata"].get("namespace"), p["metadata"]["name"]))
    reports = []
    for pod in pods if params["pod_details"] else []:
        report = pod_report(pod, sidecarset)
        report["owner"] = controller_of(pod)
        report["labels"] = dict(pod["metadata"].get("labels") or {})
        reports.append(report)
    extra = {}
    if params["template_drift"]:
        namespaces = [params["namespace"]] if params["namespace"] else selected_namespaces(client, sidecarset)
        if namespaces is None:
            namespaces = sorted({(p.get("metadata") or {}).get("namespace") for p in pods})
        workloads = []
        for namespace in namespaces:
            for kind in WORKLOAD_KINDS:
                for obj in client.list_workloads(kind, namespace):
                    obj["kind"] = kind
                    workloads.append(obj)
        extra["drift"] = template_drift(workloads, pods, sidecarset)
    return dict(
        extra,
        changed=False,
        sidecarset={"name": sidecarset_name(sidecarset), "hash": get_hash(sidecarset)},
        status=compute_status(pods, sidecarset),
        pods=reports,
        rollout=plan_rollout(pods, sidecarset, params["max_unavailable"], params["partition"], only=params["pods"]),
    )


def main():
    run_k8s_module(argument_spec(), run)


if __name__ == "__main__":
    main()
