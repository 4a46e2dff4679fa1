# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One assessment of a pod: the facts, and the phase and the next action read from the same facts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import assessment as am
from ansible_collections.meshops.sidecarset.plugins.module_utils import hotupgrade as hu
from ansible_collections.meshops.sidecarset.plugins.module_utils import podstate
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

V2 = "reg.example/mesh:v2"
V3 = "reg.example/mesh:v3"
PULL_FAIL = "reg.example/mesh:pull-fail"
SS1 = pf.sidecarset()
SS2 = pf.with_images(SS1, "hash-2", mesh=V2)
R1 = 4711

PLUGINS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins")


def upgraded(sset=SS2, now=None):
    """A pod on SS1 after the upgrade write to ``sset`` (kubelet has not acted yet)."""
    pod = pf.pod()
    return pf.apply_plan(pod, hu.plan_next(pod, sset, R1, now or "2024-05-06T07:08:09Z"))


def test_facts_of_a_fresh_pod():
    facts = am.assess(pf.pod(), SS2)
    assert facts.refusal == "" and facts.held == ""
    (mesh,) = facts.sidecars
    assert (mesh.hot, mesh.working.name, mesh.empty.name, mesh.in_flight) == (True, "mesh-1", "mesh-2", False)
    assert (mesh.working.ready, mesh.working.consistent, mesh.working.failure) == (True, True, "")
    assert sorted(facts.containers) == ["mesh-1", "mesh-2"]
    assert (facts.updated, facts.consistent, facts.ready) == (False, True, True)
    assert facts.reset_blocker == "no empty slot to reset"
    assert (facts.phase, facts.action) == (am.PHASE_IDLE, am.ACTION_UPGRADE)
    step = facts.upgrade_steps()[0]
    assert (step.kind, step.target, step.older) == (am.STEP_HOT_UPGRADE, "mesh-2", "mesh-1")


def test_a_failed_new_twin_is_failed_and_its_action_is_fail_not_wait():
    """The issue-11 case: the planner said "wait" while only the phase classifier saw the failure."""
    pod = pf.fail_pull_kubelet(upgraded(pf.with_images(SS1, "hash-p", mesh=PULL_FAIL)), "mesh-2")
    sset = pf.with_images(SS1, "hash-p", mesh=PULL_FAIL)
    facts = am.assess(pod, sset)
    failure = podstate.container_failure(pod, "mesh-2")
    assert failure.startswith("container mesh-2 is ErrImagePull")
    assert facts.sidecars[0].working.failure == failure
    assert (facts.phase, facts.reason) == (am.PHASE_FAILED, failure)
    assert (facts.action, facts.action_reason) == (am.ACTION_FAIL, failure)
    assert facts.action != am.ACTION_WAIT
    plan = hu.plan_next(pod, sset, R1 + 1, "2024-05-06T07:08:09Z", assessment=facts)
    assert (plan.action, plan.reason, plan.phase) == (am.ACTION_FAIL, failure, am.PHASE_FAILED)
    assert not plan.writes


def test_a_failed_cold_sidecar_after_its_write_fails_too(now):
    base = pf.sidecarset(containers=[pf.cold("log", "reg.example/log:1")])
    target = pf.with_images(base, "hash-2", log="reg.example/log:2")
    pod = pf.pod(sets=[base])
    pod = pf.fail_pull(pf.kubelet(pf.apply_plan(pod, hu.plan_next(pod, target, None, now))), "log", "CrashLoopBackOff")
    facts = am.assess(pod, target)
    assert (facts.phase, facts.action) == (am.PHASE_FAILED, am.ACTION_FAIL)
    assert facts.reason == facts.action_reason == "container log is CrashLoopBackOff"


def test_a_failed_twin_with_a_newer_image_is_upgraded_into_the_broken_slot(now):
    """Failure does not stop a fix: the action is the upgrade (rule 2), the phase still says failed."""
    pod = pf.fail_pull(upgraded(pf.with_images(SS1, "hash-b", mesh="reg.example/mesh:broken")), "mesh-2")
    facts = am.assess(pod, pf.with_images(SS1, "hash-3", mesh=V3))
    assert (facts.phase, facts.action) == (am.PHASE_FAILED, am.ACTION_UPGRADE)
    assert facts.upgrade_steps()[0].target == "mesh-2"


@pytest.mark.parametrize("kubelet,phase,action", [
    (lambda pod: pod, am.PHASE_UPGRADING, am.ACTION_WAIT),
    (lambda pod: pf.kubelet(pod, not_ready=("mesh-2",), started=False), am.PHASE_MIGRATING, am.ACTION_WAIT),
    (pf.kubelet, am.PHASE_MIGRATING, am.ACTION_RESET),
])
def test_phase_and_action_through_the_migration(kubelet, phase, action):
    facts = am.assess(kubelet(upgraded()), SS2)
    assert (facts.phase, facts.action) == (phase, action)
    if action == am.ACTION_WAIT:
        assert facts.action_reason.startswith(phase + ": ")   # the wait names the phase it waits in


def test_resetting_then_done(now):
    pod = pf.kubelet(upgraded())
    pod = pf.apply_plan(pod, hu.plan_next(pod, SS2, R1, now))
    facts = am.assess(pod, SS2)
    assert (facts.phase, facts.action) == (am.PHASE_RESETTING, am.ACTION_WAIT)
    facts = am.assess(pf.kubelet(pod), SS2)
    assert (facts.phase, facts.reason, facts.action, facts.action_reason) == (am.PHASE_DONE, "", am.ACTION_NONE, "done")


def test_refused_and_held():
    facts = am.assess(pf.pod(sets=[]), SS2)
    assert (facts.phase, facts.action) == (am.PHASE_NOT_UPGRADABLE, am.ACTION_REFUSE)
    assert facts.reason == facts.action_reason == facts.refusal == "pod is not injected by SidecarSet mesh-set"
    paused = pf.with_images(SS1, "hash-2", mesh=V2)
    paused["spec"]["updateStrategy"]["paused"] = True
    facts = am.assess(pf.pod(), paused)
    assert (facts.phase, facts.action, facts.action_reason) == (am.PHASE_IDLE, am.ACTION_NONE, "updateStrategy is paused")


def test_rolled_back_once_kubelet_runs_the_old_twins_again(now):
    sset = pf.with_images(SS1, "hash-p", mesh=PULL_FAIL)
    pod = pf.fail_pull_kubelet(upgraded(sset), "mesh-2")
    plan = hu.plan_rollback(pod, sset, None, now)
    replaced = podstate.replaced_instances(pod, plan.containers)
    pod = pf.apply_plan(pod, plan)
    assert podstate.rollback_pending(pod, sset, replaced).startswith("mesh-2: waiting for kubelet to run")
    pod = pf.set_status(pod, "mesh-2", state={"running": {"startedAt": "2024-05-06T07:09:00Z"}}, containerID="containerd://new")
    assert podstate.rollback_pending(pod, sset, replaced) == ""


@pytest.mark.parametrize("ready_1,ready_2,target", [(True, False, "mesh-2"), (False, True, "mesh-1"), (True, True, "mesh-1")])
def test_find_container_to_hot_upgrade_by_readiness(ready_1, ready_2, target):
    """Rules 2 and 3 of ``findContainerToHotUpgrade``: with both twins on real images the not-ready one is written;
    when both are ready, ``E`` (here ``mesh-1``: ``mesh-2`` works since the upgrade)."""
    pod = pf.kubelet(upgraded())
    pod = pf.set_status(pf.set_status(pod, "mesh-1", ready=ready_1), "mesh-2", ready=ready_2)
    facts = am.assess(pod, pf.with_images(SS1, "hash-3", mesh=V3))
    assert facts.container_to_hot_upgrade(facts.sidecars[0])[0].name == target


def test_each_fact_is_computed_once_per_decision(monkeypatch, now):
    """``plan_next`` judges the pod once: one refusal check, one failure check per container."""
    calls = {"refusal": 0, "failure": 0}
    pod = pf.fail_pull(upgraded(), "mesh-2")

    def count(name, real):
        def counted(*args):
            calls[name] += 1
            return real(*args)
        return counted

    monkeypatch.setattr(am, "not_upgradable_reason", count("refusal", am.not_upgradable_reason))
    monkeypatch.setattr(am, "container_failure", count("failure", am.container_failure))
    plan = hu.plan_next(pod, SS2, R1 + 1, now)
    assert plan.action == am.ACTION_FAIL
    assert calls == {"refusal": 1, "failure": 2}


def test_the_words_are_distinct():
    phases = [value for name, value in vars(am).items() if name.startswith("PHASE_")]
    assert len(phases) == 11 and len(set(phases)) == len(phases)
    assert len(set(am.ACTIONS)) == len(am.ACTIONS)
    assert set(am.WRITE_ACTIONS) <= set(am.ACTIONS)
    assert hu.ACTIONS is am.ACTIONS


# "migrated" is also the driver's timing mark, "upgrading" also an inventory group name: other concepts
PHASE_ONLY_WORDS = {am.PHASE_MIGRATING, am.PHASE_RESETTING, am.PHASE_NOT_UPGRADABLE, am.PHASE_ROLLED_BACK, am.PHASE_PLANNED}


def _phase_uses(path):
    """String constants a Python file uses as values to test or pass: compared, passed to a call, dict keys."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            nodes.extend([node.left] + node.comparators)
        elif isinstance(node, ast.Call):
            nodes.extend(list(node.args) + [keyword.value for keyword in node.keywords])
        elif isinstance(node, ast.Dict):
            nodes.extend(key for key in node.keys if key is not None)
    found = []
    for node in nodes:
        for inner in ast.walk(node):
            if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                found.append(inner.value)
    return found


def test_phase_words_are_spelled_only_in_the_assessment():
    """Every phase word has one spelling, in assessment.py; code elsewhere names the constant."""
    found = []
    for folder, dummy, files in os.walk(PLUGINS):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and name != "assessment.py":
                found.extend((name, word) for word in _phase_uses(path) if word in PHASE_ONLY_WORDS)
    assert found == []
