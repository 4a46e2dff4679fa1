# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the podstate predicates and of pod_sidecar_phase."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import podstate as ps
from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import assess, pod_sidecar_phase
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64


@pytest.mark.parametrize("image,expected", [
    ("busybox@" + DIGEST, True),
    ("docker.io/library/busybox:1.36@" + DIGEST, True),
    ("reg.example:5000/team/app@" + DIGEST, True),
    ("busybox:1.36", False),
    ("busybox@sha256:abc", False),
    ("", False),
    (None, False),
])
def test_is_digest_image(image, expected):
    assert ps.is_digest_image(image) is expected


def test_images_equal_normalises_docker_hub():
    assert ps.images_equal("busybox@" + DIGEST, "docker.io/library/busybox@" + DIGEST)
    assert ps.images_equal("busybox@" + DIGEST, "docker-pullable://busybox@" + DIGEST)
    assert not ps.images_equal("busybox@" + DIGEST, "busybox@" + OTHER_DIGEST)
    assert not ps.images_equal("busybox@" + DIGEST, "other@" + DIGEST)


def test_container_status_and_working_and_empty():
    pod = pf.pod()
    assert ps.container_status(pod, "mesh-1")["image"] == "reg.example/mesh:v1"
    assert ps.container_status(pod, "nope") is None
    assert ps.working_and_empty(pod, "mesh") == ("mesh-1", "mesh-2")
    pod["metadata"]["annotations"]["kruise.io/sidecarset-working-hotupgrade-container"] = '{"mesh":"weird"}'
    assert ps.working_and_empty(pod, "mesh") == ("mesh-2", "mesh-1")


def test_consistency_via_inplace_state():
    pod = pf.pod()
    sset = pf.sidecarset()
    assert ps.is_pod_state_consistent(pod, sset)
    pod["spec"]["containers"][1]["image"] = "reg.example/mesh:v2"
    state = {"mesh-set": {"revision": "h", "updateTimestamp": "t",
                          "lastContainerStatuses": {"mesh-2": {"imageID": pf.image_id(pf.EMPTY)}}}}
    pod["metadata"]["annotations"]["kruise.io/sidecarset-inplace-update-state"] = json.dumps(state)
    assert not ps.is_pod_state_consistent(pod, sset)
    assert ps.is_pod_state_consistent(pod, sset, ["mesh-1"])
    assert ps.is_pod_state_consistent(pf.kubelet(pod), sset)
    pod["metadata"]["annotations"]["kruise.io/sidecarset-inplace-update-state"] = "{not json"
    assert not ps.is_pod_state_consistent(pod, sset)


def test_consistency_count_mismatch():
    pod = pf.pod()
    pod["status"]["containerStatuses"].pop()
    assert not ps.is_pod_state_consistent(pod, pf.sidecarset())


def test_consistency_by_digest():
    pinned = "reg.example/mesh@" + DIGEST
    sset = pf.sidecarset(containers=[pf.cold("log", pinned)])
    pod = pf.pod(sets=[sset])
    assert not ps.is_pod_state_consistent(pod, sset)  # the factory's imageID has another digest
    pod = pf.set_status(pod, "log", imageID="containerd://reg.example/mesh@" + DIGEST)
    assert ps.is_pod_state_consistent(pod, sset)


def test_is_sidecarset_upgradable():
    """``IsSidecarSetUpgradable`` as facts of the assessment: ``refusal`` is (false, false), ``unapplied`` (true, false)."""
    sset = pf.sidecarset()
    pod = pf.pod()
    assert (assess(pod, sset).refusal, assess(pod, sset).unapplied) == ("", "")
    changed = pf.sidecarset(hash_without_image="hwi-2")
    assert assess(pod, changed).refusal == "hash-without-image differs (pod hwi-1, SidecarSet hwi-2): a non-image field changed"
    pod["spec"]["containers"][1]["image"] = "reg.example/mesh:v2"
    pod["metadata"]["annotations"]["kruise.io/sidecarset-inplace-update-state"] = json.dumps(
        {"mesh-set": {"lastContainerStatuses": {"mesh-2": {"imageID": pf.image_id(pf.EMPTY)}}}})
    pod["metadata"]["annotations"]["version.sidecarset.kruise.io/mesh-2"] = "5"
    facts = assess(pod, sset)
    assert facts.refusal == "" and facts.unapplied == "container mesh-2 is ready but kubelet has not applied its new image yet"


def test_is_pod_ready_requires_empty_slot_on_empty_image():
    sset = pf.sidecarset()
    pod = pf.pod()
    assert ps.is_pod_ready(pod, sset)
    pod["spec"]["containers"][1]["image"] = "reg.example/mesh:v2"
    assert not ps.is_pod_ready(pod, sset)
    assert not ps.is_pod_ready(pf.pod(ready=False), sset)
    deleting = pf.pod()
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not ps.is_pod_ready(deleting, sset)
    assert not ps.is_pod_active(deleting)
    assert not ps.is_pod_active(pf.pod(phase="Succeeded"))


def test_is_pod_updated():
    sset = pf.sidecarset()
    assert ps.is_pod_updated(pf.pod(), sset)
    assert not ps.is_pod_updated(pf.pod(), pf.with_images(sset, "hash-2"))
    legacy = pf.pod()
    legacy["metadata"]["annotations"]["kruise.io/sidecarset-hash"] = '{"mesh-set":"hash-1"}'
    assert ps.is_pod_updated(legacy, sset)


def test_is_pod_matching():
    sset = pf.sidecarset()
    assert ps.is_pod_matching(pf.pod(), sset)
    assert not ps.is_pod_matching(pf.pod(sets=[]), sset)
    no_entry = pf.pod()
    no_entry["metadata"]["annotations"]["kruise.io/sidecarset-working-hotupgrade-container"] = "{}"
    assert ps.matching_problem(no_entry, sset) == "working-container annotation has no entry for mesh"
    no_twin = pf.pod()
    no_twin["spec"]["containers"].pop(0)
    assert ps.matching_problem(no_twin, sset) == "hot-upgrade pair of mesh is incomplete: mesh-1 is missing"
    cold_set = pf.sidecarset(containers=[pf.cold("log", "l:1")])
    assert ps.matching_problem(pf.pod(sets=[pf.sidecarset(name="mesh-set")]), cold_set) == "container log is missing from the pod"


def test_empty_image_problem():
    pod = pf.pod()
    assert ps.empty_image_problem(pod, pf.sidecarset()) == ""
    new_empty = pf.sidecarset(containers=[pf.hot("mesh", "reg.example/mesh:v1", empty="e:2")])
    assert ps.empty_image_problem(pod, new_empty) == (
        "hotUpgradeEmptyImage changed: mesh-2 is recorded empty but runs reg.example/mesh:empty, not e:2")
    del pod["metadata"]["annotations"]["versionalt.sidecarset.kruise.io/mesh-1"]
    assert ps.empty_image_problem(pod, pf.sidecarset()) == "version annotations of mesh-1 are missing"


def test_phases_idle_done_not_upgradable():
    sset = pf.sidecarset()
    assert pod_sidecar_phase(pf.pod(), sset) == ("done", "")
    assert pod_sidecar_phase(pf.pod(), pf.with_images(sset, "hash-2"))[0] == "idle"
    assert pod_sidecar_phase(pf.pod(sets=[]), sset) == ("not-upgradable", "pod is not injected by SidecarSet mesh-set")
    not_ready = pf.set_status(pf.pod(), "app", ready=False)
    assert pod_sidecar_phase(not_ready, sset) == ("migrating", "pod is not Running and Ready")


def test_failed_waiting_reason_on_cold_sidecar():
    sset = pf.sidecarset(containers=[pf.cold("log", "l:1")])
    pod = pf.fail_pull(pf.pod(sets=[sset]), "log", "ErrImagePull")
    assert pod_sidecar_phase(pod, sset) == ("failed", "container log is ErrImagePull")


def test_restart_baseline_roundtrip():
    text = ps.write_restart_baseline({"b": 2, "a": 1})
    assert text == '{"a":1,"b":2}'
    assert ps.read_restart_baseline({ps.RESTART_BASELINE: text}) == {"a": 1, "b": 2}
    assert ps.read_restart_baseline({ps.RESTART_BASELINE: "oops"}) == {}


def test_failed_working_twin_after_reset_and_cold_in_flight_when_not_updated(now):
    from ansible_collections.meshops.sidecarset.plugins.module_utils import hotupgrade as hu
    sset = pf.sidecarset()
    crashing = pf.fail_pull(pf.pod(), "mesh-1", "CrashLoopBackOff")
    assert pod_sidecar_phase(crashing, sset) == ("failed", "container mesh-1 is CrashLoopBackOff")
    base = pf.sidecarset(containers=[pf.cold("log", "l:1")])
    second = pf.with_images(base, "hash-2", log="l:2")
    third = pf.with_images(base, "hash-3", log="l:3")
    pod = pf.pod(sets=[base])
    pod = pf.apply_plan(pod, hu.plan_next(pod, second, None, now))
    assert pod_sidecar_phase(pod, third)[0] == "upgrading"
    assert pod_sidecar_phase(pf.kubelet(pod), third)[0] == "idle"
