# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of compute_status (calculateStatus), pod_report, sidecar_snapshot and the owner readers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils import hotupgrade as hu
from ansible_collections.meshops.sidecarset.plugins.module_utils import status
from ansible_collections.meshops.sidecarset.plugins.module_utils.status import compute_status, pod_report
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

SS1 = pf.sidecarset()
SS2 = pf.with_images(SS1, "hash-2", mesh="reg.example/mesh:v2")


def test_compute_status_counts(now):
    done = pf.pod("done")
    done = pf.kubelet(pf.apply_plan(done, hu.plan_next(done, SS2, 10, now)))
    done = pf.kubelet(pf.apply_plan(done, hu.plan_next(done, SS2, 10, now)))
    upgrading = pf.pod("upgrading")
    upgrading = pf.kubelet(pf.apply_plan(upgrading, hu.plan_next(upgrading, SS2, 10, now)))
    old = pf.pod("old")
    foreign = pf.pod("foreign", sets=[pf.sidecarset(name="other")])
    gone = pf.pod("gone", phase="Failed")
    assert compute_status([done, upgrading, old, foreign, gone], SS2) == {
        "matchedPods": 3, "updatedPods": 2, "readyPods": 2, "updatedReadyPods": 1}


def test_pod_report(now):
    pod = pf.pod("p1")
    pod = pf.apply_plan(pod, hu.plan_next(pod, SS2, 10, now))
    report = pod_report(pod, SS2)
    assert report == {
        "name": "p1", "namespace": "default", "node": "node-1",
        "phase": "upgrading", "reason": "mesh-2: waiting for kubelet to run reg.example/mesh:v2",
        "updated": True, "ready": False,
        "working": {"mesh": "mesh-2"}, "empty": {"mesh": "mesh-1"},
        "images": {"mesh-1": "reg.example/mesh:v1", "mesh-2": "reg.example/mesh:v2"},
        "versions": {"mesh-1": {"version": "1", "versionalt": "10"}, "mesh-2": {"version": "10", "versionalt": "1"}},
    }
    cold_set = pf.sidecarset(containers=[pf.cold("log", "l:1")])
    assert pod_report(pf.pod(sets=[cold_set]), cold_set)["images"] == {"log": "l:1"}


def test_template_drift_finds_old_templates_and_the_pods_created_from_them():
    from ansible_collections.meshops.sidecarset.plugins.module_utils.status import template_drift

    old, new = pf.sidecarset(), None
    new = pf.with_images(old, "hash-2", mesh="reg.example/mesh:v2")
    template_pod = pf.pod("t", sets=[old])

    def workload(kind, name, owned=False):
        meta = {"name": name, "namespace": "default"}
        if owned:
            meta["ownerReferences"] = [{"kind": "Deployment", "name": "web", "controller": True}]
        return {"kind": kind, "metadata": meta, "spec": {"template": {"metadata": template_pod["metadata"], "spec": template_pod["spec"]}}}

    def pod_of(name, sets, rs="web-abc"):
        pod = pf.pod(name, sets=sets)
        pod["metadata"]["labels"] = dict(pod["metadata"].get("labels") or {}, **{"pod-template-hash": "abc"})
        pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": rs, "controller": True}]
        return pod

    plain = {"kind": "Deployment", "metadata": {"name": "plain", "namespace": "default"}, "spec": {"template": {"spec": {}}}}
    workloads = [workload("Deployment", "web"), workload("ReplicaSet", "web-abc", owned=True), plain]
    pods = [pod_of("fresh", [old]), pod_of("upgraded", [new])]
    drift = template_drift(workloads, pods, new)
    assert [(w["kind"], w["name"]) for w in drift["workloads"]] == [("Deployment", "web")]
    assert drift["pods"] == [{"name": "fresh", "namespace": "default", "workload": "Deployment/web"}]
    assert template_drift(workloads, pods, old) == {"workloads": [], "pods": []}  # templates on the current revision


def test_sidecar_snapshot_one_spelling_and_the_alias(now):
    """``versionalt`` everywhere; sidecar_upgrade adds ``version_alt`` (the old spelling) for one release."""
    pod = pf.pod()
    plain = status.sidecar_snapshot(pod, pf.sidecarset())
    assert plain["versions"]["mesh-1"] == {"version": "1", "versionalt": "0"}
    assert (plain["working"], plain["empty"]) == ({"mesh": "mesh-1"}, {"mesh": "mesh-2"})
    aliased = status.sidecar_snapshot(pod, pf.sidecarset(), alias=True)
    assert aliased["versions"]["mesh-2"] == {"version": "0", "versionalt": "1", "version_alt": "1"}
    report = status.pod_report(pod, pf.sidecarset())
    assert {key: report[key] for key in plain} == plain


def test_controller_of_and_workload_of():
    rs = {"metadata": {"labels": {"pod-template-hash": "5d9f"},
                       "ownerReferences": [{"kind": "Node", "name": "n"}, {"kind": "ReplicaSet", "name": "web-5d9f", "controller": True}]}}
    assert status.controller_of(rs) == {"kind": "ReplicaSet", "name": "web-5d9f"}
    assert status.workload_of(rs) == {"kind": "Deployment", "name": "web"}
    assert status.controller_of({"metadata": {"ownerReferences": [{"kind": "Job", "name": "j"}]}}) == {"kind": "Job", "name": "j"}
    assert status.controller_of({"metadata": {}}) == status.workload_of({"metadata": {}}) == {}
