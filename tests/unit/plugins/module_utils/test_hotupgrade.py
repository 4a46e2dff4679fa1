# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the hot/cold upgrade planners against Kruise's e2e trace of versions and the failure cases."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import hotupgrade as hu
from ansible_collections.meshops.sidecarset.plugins.module_utils import versions
from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import assess, pod_sidecar_phase
from ansible_collections.meshops.sidecarset.plugins.module_utils import podstate
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

V1 = "reg.example/mesh:v1"
V2 = "reg.example/mesh:v2"
V3 = "reg.example/mesh:v3"
BROKEN = "reg.example/mesh:broken"
EMPTY = pf.EMPTY
R1 = 4711
R2 = 5000
TS = "2024-05-06T07:08:09Z"

SS1 = pf.sidecarset()
SS2 = pf.with_images(SS1, "hash-2", mesh=V2)
SS3 = pf.with_images(SS1, "hash-3", mesh=V3)


def real_slots(pod):
    """Number of twins of ``mesh`` on a real (non-empty) image."""
    return sum(1 for c in pod["spec"]["containers"] if c["name"] in ("mesh-1", "mesh-2") and c["image"] != EMPTY)


def step(pod, sset, version, now, expected_action):
    """plan_next + apply; asserts the action and the invariant that one twin always stays on a real image."""
    plan = hu.plan_next(pod, sset, version, now)
    assert plan.action == expected_action, plan
    new_pod = pf.apply_plan(pod, plan)
    assert real_slots(new_pod) >= 1
    return plan, new_pod


def test_injection_row(factory):
    assert pf.twin_row(factory.pod()) == (V1, EMPTY, "mesh-1", "1", "0", "0", "1")


def test_trace_table_over_two_upgrades(now):
    pod = pf.pod()
    # upgrade 1
    plan, pod = step(pod, SS2, R1, now, "upgrade")
    assert plan.containers == {"mesh-2": V2}
    assert pf.twin_row(pod) == (V1, V2, "mesh-2", "1", str(R1), str(R1), "1")
    assert plan.annotations["kruise.io/sidecarset-hash"] == (
        '{"mesh-set":{"updateTimestamp":"%s","hash":"hash-2","sidecarSetName":"mesh-set","sidecarList":["mesh"]}}' % TS)
    empty_id = pf.image_id(EMPTY)
    assert plan.annotations["kruise.io/sidecarset-inplace-update-state"] == (
        '{"mesh-set":{"revision":"hash-2","updateTimestamp":"%s","lastContainerStatuses":{"mesh-2":{"imageID":"%s"}}}}' % (TS, empty_id))
    assert plan.annotations["kruise.io/sidecarset-working-hotupgrade-container"] == '{"mesh":"mesh-2"}'
    assert "kruise.io/sidecarset-hash-without-image" not in plan.annotations
    assert pod_sidecar_phase(pod, SS2)[0] == "upgrading"
    # kubelet has not applied it yet: wait
    step(pod, SS2, R1, now, "wait")
    # kubelet restarted mesh-2, postStart still running
    pod = pf.kubelet(pod, not_ready=("mesh-2",), started=False)
    assert pod_sidecar_phase(pod, SS2)[0] == "migrating"
    step(pod, SS2, R1, now, "wait")
    # ready: reset 1
    pod = pf.set_status(pod, "mesh-2", ready=True, started=True)
    plan, pod = step(pod, SS2, R1, now, "reset")
    assert plan.containers == {"mesh-1": EMPTY}
    assert "kruise.io/sidecarset-hash" not in plan.annotations
    assert pf.twin_row(pod) == (EMPTY, V2, "mesh-2", "0", str(R1), str(R1), "0")
    assert plan.annotations["kruise.io/sidecarset-inplace-update-state"] == (
        '{"mesh-set":{"revision":"hash-2","updateTimestamp":"%s","lastContainerStatuses":'
        '{"mesh-1":{"imageID":"%s"},"mesh-2":{"imageID":"%s"}}}}' % (TS, pf.image_id(V1), empty_id))
    assert pod_sidecar_phase(pod, SS2)[0] == "resetting"
    step(pod, SS2, R1, now, "wait")
    pod = pf.kubelet(pod)
    assert pod_sidecar_phase(pod, SS2) == ("done", "")
    step(pod, SS2, R1, now, "none")
    # upgrade 2
    plan, pod = step(pod, SS3, R2, now, "upgrade")
    assert plan.containers == {"mesh-1": V3}
    assert pf.twin_row(pod) == (V3, V2, "mesh-1", str(R2), str(R1), str(R1), str(R2))
    pod = pf.kubelet(pod)
    plan, pod = step(pod, SS3, R2, now, "reset")
    assert plan.containers == {"mesh-2": EMPTY}
    assert pf.twin_row(pod) == (V3, EMPTY, "mesh-1", str(R2), "0", "0", str(R2))
    pod = pf.kubelet(pod)
    step(pod, SS3, R2, now, "none")
    assert podstate.is_pod_updated(pod, SS3)


def test_upgrade_write_rule2_only_bumps_hash(now):
    same_image = pf.with_images(SS1, "hash-1b")
    plan = hu.plan_next(pf.pod(), same_image, R1, now)
    assert plan.action == "upgrade"
    assert plan.containers == {}
    assert set(plan.annotations) == {"kruise.io/sidecarset-hash"}
    assert json.loads(plan.annotations["kruise.io/sidecarset-hash"])["mesh-set"]["hash"] == "hash-1b"


def test_version_must_grow(now):
    pod = pf.pod()
    with pytest.raises(ValueError):
        hu.plan_next(pod, SS2, 1, now)
    with pytest.raises(ValueError):
        hu.plan_next(pod, SS2, "7", now)
    assert versions.next_version([pod]) == 2
    assert versions.next_version([pod], floor=R1) == R1 + 1
    upgraded = pf.apply_plan(pod, hu.plan_next(pod, SS2, R1, now))
    assert versions.next_version([upgraded]) == R1 + 1
    with pytest.raises(ValueError):
        hu.plan_next(pf.kubelet(pf.apply_plan(pf.kubelet(upgraded), hu.plan_next(pf.kubelet(upgraded), SS2, None, now))), SS3, R1, now)


def test_plan_next_without_version_uses_next_version(now):
    plan = hu.plan_next(pf.pod(), SS2, None, now)
    assert plan.annotations["version.sidecarset.kruise.io/mesh-2"] == "2"


def test_broken_then_fixed_lands_in_broken_slot(now):
    broken_set = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    plan, pod = step(pf.pod(), broken_set, R1, now, "upgrade")
    assert plan.containers == {"mesh-2": BROKEN}
    pod = pf.fail_pull(pod, "mesh-2")
    assert pod_sidecar_phase(pod, broken_set)[0] == "failed"
    step(pod, broken_set, R1, now, "fail")      # before: "wait", and only the phase classifier saw the failure
    # a newer image arrives: it replaces the broken slot (rule 2), mesh-1 keeps serving
    plan, pod = step(pod, SS3, R2, now, "upgrade")
    assert plan.containers == {"mesh-2": V3}
    assert pf.twin_row(pod) == (V1, V3, "mesh-2", "1", str(R2), str(R2), "1")
    pod = pf.kubelet(pod)
    pod = pf.set_status(pod, "mesh-2", state={"running": {}})
    plan, pod = step(pod, SS3, R2, now, "reset")
    assert plan.containers == {"mesh-1": EMPTY}
    assert pf.twin_row(pod) == (EMPTY, V3, "mesh-2", "0", str(R2), str(R2), "0")


def test_failed_by_restart_growth(now):
    broken_set = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    plan, pod = step(pf.pod(), broken_set, R1, now, "upgrade")
    assert plan.annotations[podstate.RESTART_BASELINE] == '{"mesh-2":0}'
    pod = pf.kubelet(pod, not_ready=("mesh-2",))
    assert pod_sidecar_phase(pod, broken_set)[0] == "migrating"
    pod = pf.set_status(pod, "mesh-2", restartCount=2)
    assert pod_sidecar_phase(pod, broken_set) == (
        "failed", "container mesh-2 restarted 1 times since the image change and is not ready")


def test_rollback_to_image_old_twin_still_runs(now):
    broken_set = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    back_to_v1 = pf.with_images(SS1, "hash-1")
    plan, pod = step(pf.pod(), broken_set, R1, now, "upgrade")
    pod = pf.kubelet(pod, not_ready=("mesh-2",))
    # still starting (not failed): wait instead of killing a container that may be migrating
    step(pod, back_to_v1, R2, now, "wait")
    pod = pf.fail_pull(pod, "mesh-2", "CrashLoopBackOff")
    plan, pod = step(pod, back_to_v1, R2, now, "rollback")
    assert plan.containers == {"mesh-2": EMPTY}
    assert pf.twin_row(pod) == (V1, EMPTY, "mesh-1", "1", "0", "0", "1")
    assert podstate.is_pod_updated(pod, back_to_v1)
    pod = pf.kubelet(pod)
    pod = pf.set_status(pod, "mesh-2", state={"running": {}})
    assert pod_sidecar_phase(pod, back_to_v1) == ("done", "")
    step(pod, back_to_v1, R2, now, "none")


def test_plan_rollback_derived_and_previous(now):
    broken_set = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    before = pf.pod()
    pod = pf.apply_plan(before, hu.plan_next(before, broken_set, R1, now))
    pod = pf.fail_pull(pf.kubelet(pod, not_ready=("mesh-2",)), "mesh-2")
    derived = hu.plan_rollback(pod, broken_set, None, now)
    assert derived.action == "rollback"
    assert derived.containers == {"mesh-2": EMPTY}
    rolled = pf.apply_plan(pod, derived)
    assert pf.twin_row(rolled) == (V1, EMPTY, "mesh-1", "1", "0", "0", "1")
    assert derived.annotations["kruise.io/sidecarset-hash"] == "{}"
    assert not podstate.is_pod_updated(rolled, broken_set)
    restored = hu.plan_rollback(pod, broken_set, before["metadata"]["annotations"], now)
    assert restored.annotations["kruise.io/sidecarset-hash"] == before["metadata"]["annotations"]["kruise.io/sidecarset-hash"]
    assert pf.twin_row(pf.apply_plan(pod, restored)) == (V1, EMPTY, "mesh-1", "1", "0", "0", "1")


PULL_FAIL = "reg.example/mesh:pull-fail"


def test_a_failing_pull_reported_on_the_previous_instance_fails_the_upgrade(now):
    """kubelet v1.36: while the new image cannot be pulled, the status still names the empty image."""
    pull_fail_set = pf.with_images(SS1, "hash-p", mesh=PULL_FAIL)
    plan, pod = step(pf.pod(), pull_fail_set, R1, now, "upgrade")
    pod = pf.fail_pull_kubelet(pod, "mesh-2")
    assert podstate.container_status(pod, "mesh-2")["image"] == EMPTY
    assert podstate.container_failure(pod, "mesh-2") == (
        'container mesh-2 is ErrImagePull: failed to pull and unpack image "%s": not found' % PULL_FAIL)
    assert pod_sidecar_phase(pod, pull_fail_set)[0] == "failed"
    plan = hu.plan_next(pod, pull_fail_set, R2, now)
    assert (plan.action, plan.reason) == ("fail", podstate.container_failure(pod, "mesh-2"))
    assert (plan.phase, plan.phase_reason) == ("failed", plan.reason)
    assert hu.plan_rollback(pod, pull_fail_set, None, now).action == "rollback"


def test_a_stale_pull_failure_of_an_image_no_longer_in_the_spec_does_not_count(now):
    pull_fail_set = pf.with_images(SS1, "hash-p", mesh=PULL_FAIL)
    dummy, pod = step(pf.pod(), pull_fail_set, R1, now, "upgrade")
    pod = pf.fail_pull_kubelet(pod, "mesh-2", "ImagePullBackOff")
    pod["spec"]["containers"][1]["image"] = V2   # a fixed image written before kubelet resynced
    assert [c["name"] for c in pod["spec"]["containers"]][1] == "mesh-2"
    assert podstate.container_failure(pod, "mesh-2") == ""


def test_rollback_of_a_failed_pull_completes_when_the_empty_twin_runs_again(now):
    """The issue-12 case: the rollback must not record the empty image's own imageID as the pre-change one."""
    pull_fail_set = pf.with_images(SS1, "hash-p", mesh=PULL_FAIL)
    dummy, pod = step(pf.pod(), pull_fail_set, R1, now, "upgrade")
    pod = pf.fail_pull_kubelet(pod, "mesh-2")
    plan = hu.plan_rollback(pod, pull_fail_set, None, now)
    pod = pf.apply_plan(pod, plan)
    state = json.loads(plan.annotations["kruise.io/sidecarset-inplace-update-state"])["mesh-set"]
    assert state["lastContainerStatuses"]["mesh-2"] == {}
    # kubelet has not restarted it yet: still the old instance, waiting on the failed pull
    assert podstate.rollback_pending(pod, pull_fail_set) == "mesh-2: waiting for kubelet to run %s again" % EMPTY
    pod = pf.set_status(pod, "mesh-2", state={"running": {"startedAt": TS}}, restartCount=1)  # same image, same imageID
    assert podstate.rollback_pending(pod, pull_fail_set) == ""
    assert podstate.is_pod_state_consistent(pod, pull_fail_set)
    # the next run goes to the fixed image and completes
    plan, pod = step(pod, SS2, R2, now, "upgrade")
    pod = pf.kubelet(pod)
    plan, pod = step(pod, SS2, R2, now, "reset")
    pod = pf.kubelet(pod)
    assert pod_sidecar_phase(pod, SS2) == ("done", "")


def test_rollback_pending_waits_for_the_serving_twin(now):
    broken_set = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    dummy, pod = step(pf.pod(), broken_set, R1, now, "upgrade")
    pod = pf.fail_pull(pf.kubelet(pod, not_ready=("mesh-2",), started=False), "mesh-2", "CrashLoopBackOff")
    pod = pf.apply_plan(pod, hu.plan_rollback(pod, broken_set, None, now))
    assert podstate.rollback_pending(pod, broken_set).startswith("mesh-2: waiting for kubelet to run")
    pod = pf.kubelet(pod)
    pod = pf.set_status(pod, "mesh-1", ready=False)
    assert podstate.rollback_pending(pod, broken_set) == "mesh-1: waiting for the serving sidecar to be ready"
    assert podstate.rollback_pending(pf.set_status(pod, "mesh-1", ready=True), broken_set) == ""


def test_rollback_pending_waits_for_a_new_instance_of_the_replaced_twin(now):
    """kubelet may name the spec image before it has replaced the instance: a new containerID is required."""
    broken_set = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    dummy, pod = step(pf.pod(), broken_set, R1, now, "upgrade")
    pod = pf.set_status(pf.kubelet(pod, not_ready=("mesh-2",), started=False), "mesh-2", containerID="containerd://stuck")
    plan = hu.plan_rollback(pod, broken_set, None, now)
    replaced = podstate.replaced_instances(pod, plan.containers)
    assert replaced == {"mesh-2": "containerd://stuck"}
    pod = pf.apply_plan(pod, plan)
    same_instance = pf.set_status(pod, "mesh-2", image=EMPTY, state={"running": {"startedAt": TS}})
    assert podstate.rollback_pending(same_instance, broken_set) == ""
    assert podstate.rollback_pending(same_instance, broken_set, replaced).startswith("mesh-2: waiting for kubelet to run")
    new_instance = pf.set_status(same_instance, "mesh-2", containerID="containerd://new")
    assert podstate.rollback_pending(new_instance, broken_set, replaced) == ""
    # a twin whose instance already runs the empty image (kubelet never acted) is not waited for
    assert podstate.replaced_instances(pf.pod(), {"mesh-2": EMPTY}) == {}


def test_rollback_pending_until_kubelet_reports_on_the_rolled_back_spec(now):
    """A postStart hook blocks kubelet's pod worker: the status of the old instances stays, with an old
    observedGeneration."""
    broken_set = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    dummy, pod = step(pf.pod(), broken_set, R1, now, "upgrade")
    pod = pf.apply_plan(pod, hu.plan_rollback(pod, broken_set, None, now))   # status still the original instances
    assert podstate.rollback_pending(pod, broken_set) == ""                 # no generation tracking: nothing to tell
    pod["metadata"]["generation"], pod["status"]["observedGeneration"] = 3, 1
    assert podstate.rollback_pending(pod, broken_set) == (
        "kubelet has not reported on the pod's current spec yet (generation 3, status of 1)")
    pod["status"]["observedGeneration"] = 3
    assert podstate.rollback_pending(pod, broken_set) == ""


def test_plan_rollback_refuses_a_started_twin_that_is_not_ready(now):
    """postStart returned: the new twin has taken the listeners over; emptying it could leave nothing serving."""
    pod = pf.apply_plan(pf.pod(), hu.plan_next(pf.pod(), SS2, R1, now))
    pod = pf.kubelet(pod, not_ready=("mesh-2",))
    plan = hu.plan_rollback(pod, SS2, None, now)
    assert plan.action == "refuse"
    assert "mesh-2 finished postStart on the new image (it has taken over from mesh-1) but is not ready" in plan.reason
    still_in_post_start = pf.set_status(pod, "mesh-2", started=False)
    assert hu.plan_rollback(still_in_post_start, SS2, None, now).action == "rollback"


def test_plan_rollback_refuses_after_migration(now):
    pod = pf.apply_plan(pf.pod(), hu.plan_next(pf.pod(), SS2, R1, now))
    pod = pf.kubelet(pod)
    plan = hu.plan_rollback(pod, SS2, None, now)
    assert plan.action == "refuse"
    assert "mesh-2 is ready" in plan.reason
    assert hu.plan_rollback(pf.pod(), SS2, None, now).action == "none"


def test_reset_waits_until_new_container_ready(now):
    pod = pf.apply_plan(pf.pod(), hu.plan_next(pf.pod(), SS2, R1, now))
    assert assess(pod, SS2).reset_blocker == "kubelet has not yet applied the new images of mesh-2"
    pod = pf.kubelet(pod, not_ready=("mesh-2",))
    assert assess(pod, SS2).reset_blocker == "new container mesh-2 is not ready"
    assert hu.plan_next(pod, SS2, R1, now).action == "wait"
    assert assess(pf.pod(), SS2).reset_blocker == "no empty slot to reset"


def test_new_version_mid_upgrade_waits_while_ready_but_inconsistent(now):
    pod = pf.apply_plan(pf.pod(), hu.plan_next(pf.pod(), SS2, R1, now))
    plan = hu.plan_next(pod, SS3, R2, now)
    assert plan.action == "wait"
    assert "mesh-2 is ready but kubelet has not applied" in plan.reason


def test_refusals(now):
    pod = pf.pod()
    changed = pf.sidecarset(hash_value="hash-9", hash_without_image="hwi-9")
    plan = hu.plan_next(pod, changed, R1, now)
    assert plan.action == "refuse" and "hash-without-image differs" in plan.reason
    new_empty = pf.sidecarset(containers=[pf.hot("mesh", V2, empty="reg.example/mesh:empty2")], hash_value="hash-2")
    plan = hu.plan_next(pod, new_empty, R1, now)
    assert plan.action == "refuse" and "hotUpgradeEmptyImage changed" in plan.reason
    missing = pf.pod()
    missing["spec"]["containers"] = [c for c in missing["spec"]["containers"] if c["name"] != "mesh-2"]
    plan = hu.plan_next(missing, SS2, R1, now)
    assert plan.action == "refuse" and "mesh-2 is missing" in plan.reason
    other = pf.pod(sets=[pf.sidecarset(name="other")])
    assert hu.plan_next(other, SS2, R1, now).action == "refuse"
    assert hu.plan_next(other, SS2, R1, now).action == "refuse"


def test_paused_and_not_update(now):
    paused = pf.with_images(SS1, "hash-2", mesh=V2)
    paused["spec"]["updateStrategy"]["paused"] = True
    assert hu.plan_next(pf.pod(), paused, R1, now).action == "none"
    paused["spec"]["updateStrategy"] = {"type": "NotUpdate"}
    assert hu.plan_next(pf.pod(), paused, R1, now).action == "none"


def test_mixed_hot_and_cold_in_one_write(now):
    base = pf.sidecarset(containers=[pf.hot("mesh", V1), pf.cold("log", "reg.example/log:1"), pf.hot("dns", "reg.example/dns:1")])
    target = pf.with_images(base, "hash-2", mesh=V2, log="reg.example/log:2", dns="reg.example/dns:2")
    pod = pf.pod(sets=[base])
    plan = hu.plan_next(pod, target, R1, now)
    assert plan.action == "upgrade"
    assert plan.containers == {"mesh-2": V2, "log": "reg.example/log:2", "dns-2": "reg.example/dns:2"}
    assert plan.annotations["kruise.io/sidecarset-working-hotupgrade-container"] == '{"dns":"dns-2","mesh":"mesh-2"}'
    assert json.loads(plan.annotations["kruise.io/sidecarset-hash"])["mesh-set"]["sidecarList"] == ["dns", "log", "mesh"]
    body = hu.plan_patch_body(pod, plan)
    assert body["metadata"]["resourceVersion"] == "1000"
    assert body["spec"]["containers"] == [
        {"name": "mesh-2", "image": V2}, {"name": "log", "image": "reg.example/log:2"}, {"name": "dns-2", "image": "reg.example/dns:2"}]
    assert body["metadata"]["annotations"] == plan.annotations
    pod = pf.kubelet(pf.apply_plan(pod, plan))
    plan = hu.plan_next(pod, target, R1, now)
    assert plan.action == "reset"
    assert plan.containers == {"mesh-1": EMPTY, "dns-1": EMPTY}
    pod = pf.kubelet(pf.apply_plan(pod, plan))
    assert hu.plan_next(pod, target, R1, now).action == "none"


def test_cold_upgrade(now):
    base = pf.sidecarset(containers=[pf.cold("log", "reg.example/log:1")])
    target = pf.with_images(base, "hash-2", log="reg.example/log:2")
    pod = pf.pod(sets=[base])
    plan = hu.plan_next(pod, target, None, now)
    assert plan.action == "upgrade"
    assert plan.containers == {"log": "reg.example/log:2"}
    assert sorted(plan.annotations) == [
        "kruise.io/sidecarset-hash", "kruise.io/sidecarset-inplace-update-state", podstate.RESTART_BASELINE]
    pod = pf.apply_plan(pod, plan)
    assert pod_sidecar_phase(pod, target)[0] == "upgrading"
    assert hu.plan_next(pod, target, None, now).action == "wait"
    pod = pf.kubelet(pod)
    assert hu.plan_next(pod, target, None, now).action == "none"


def test_other_sidecarset_entries_are_preserved(now):
    other = pf.sidecarset(name="a-other", containers=[pf.cold("log", "reg.example/log:1")])
    pod = pf.pod(sets=[SS1, other])
    plan = hu.plan_next(pod, SS2, R1, now)
    entries = json.loads(plan.annotations["kruise.io/sidecarset-hash"])
    assert list(entries) == ["a-other", "mesh-set"]
    assert entries["a-other"]["hash"] == "hash-1"


def test_apply_plan_does_not_mutate(now):
    pod = pf.pod()
    snapshot = json.dumps(pod, sort_keys=True)
    plan = hu.plan_next(pod, SS2, R1, now)
    pf.apply_plan(pod, plan)
    hu.plan_patch_body(pod, plan)
    assert json.dumps(pod, sort_keys=True) == snapshot
    assert hu.plan_patch_body(pod, hu.Plan("wait", reason="x")) == {}
    assert plan.to_dict()["action"] == "upgrade"


def test_controller_revision_and_timestamp_formats():
    sset = pf.with_images(pf.sidecarset(revision="mesh-set-abc"), "hash-2", mesh=V2)
    plan = hu.plan_next(pf.pod(), sset, R1, "2021-06-04T05:44:26Z")
    entry = json.loads(plan.annotations["kruise.io/sidecarset-hash"])["mesh-set"]
    assert entry["controllerRevision"] == "mesh-set-abc"
    assert entry["updateTimestamp"] == "2021-06-04T05:44:26Z"
    assert versions.format_timestamp(__import__("datetime").datetime(2021, 6, 4, 5, 44, 26, 999)) == "2021-06-04T05:44:26Z"
    with pytest.raises(ValueError):
        versions.format_timestamp([])


@pytest.mark.parametrize("seed", range(8))
def test_random_walk_invariants(seed, now):
    """Random kubelet outcomes and SidecarSet releases: no plan leaves zero real twins or W on the empty image,
    and a reset only happens when the new twin is consistent and ready."""
    import random
    rng = random.Random(seed)
    images = [V1, V2, V3, BROKEN, "reg.example/mesh:v4"]
    sset, pod, version = SS1, pf.pod(), 10
    for count in range(60):
        event = rng.choice(["release", "kubelet", "kubelet-bad", "plan", "plan"])
        if event == "release":
            sset = pf.with_images(SS1, "hash-%d" % count, mesh=rng.choice(images))
        elif event == "kubelet":
            pod = pf.kubelet(pod, not_ready=("mesh-1", "mesh-2") if rng.random() < 0.3 else ())
            for twin in ("mesh-1", "mesh-2"):
                if podstate.container_image(pod, twin) == BROKEN:
                    pod = pf.fail_pull(pod, twin)
        elif event == "kubelet-bad":
            pod = pf.kubelet(pod, not_ready=("mesh-1", "mesh-2"))
        else:
            version += 1
            plan = hu.plan_next(pod, sset, version, now)
            if plan.action == "reset":
                working = podstate.working_and_empty(pod, "mesh")[0]
                assert podstate.is_pod_state_consistent(pod, sset, [working])
                assert podstate.is_container_ready(pod, working)
            pod = pf.apply_plan(pod, plan)
        assert real_slots(pod) >= 1
        working = podstate.working_and_empty(pod, "mesh")[0]
        assert podstate.container_image(pod, working) != EMPTY


def test_stale_failure_of_the_previous_image_does_not_fail_the_new_write(now):
    """Right after a fixed image is written over a broken one, kubelet still reports the broken image's
    ImagePullBackOff: that status describes the previous image and must not mark the pod failed."""
    broken_set = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    plan, pod = step(pf.pod(), broken_set, R1, now, "upgrade")
    pod = pf.fail_pull(pod, "mesh-2")
    plan, pod = step(pod, SS3, R2, now, "upgrade")
    assert podstate.container_failure(pod, "mesh-2") == ""
    assert pod_sidecar_phase(pod, SS3)[0] == "upgrading"
    pod = pf.fail_pull(pod, "mesh-2")
    assert pod_sidecar_phase(pod, SS3)[0] == "failed"
