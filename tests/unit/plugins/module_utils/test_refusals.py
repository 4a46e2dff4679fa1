# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planners refuse a pod through ``PlanRefusal`` only: a bug's ``ValueError``/``KeyError`` crashes loudly."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import annotations as ann
from ansible_collections.meshops.sidecarset.plugins.module_utils import assessment
from ansible_collections.meshops.sidecarset.plugins.module_utils import batch
from ansible_collections.meshops.sidecarset.plugins.module_utils import hotupgrade as hu
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import (
    AnnotationError,
    ManifestError,
    MeshopsError,
    ParameterError,
    PlanRefusal,
    SidecarSetError,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.versions import InvalidVersion
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

SS1 = pf.sidecarset()
SS2 = pf.with_images(SS1, "hash-2", mesh="reg.example/mesh:v2")


def test_error_hierarchy():
    for cls in (PlanRefusal, AnnotationError, ParameterError, SidecarSetError, ManifestError, InvalidVersion):
        assert issubclass(cls, MeshopsError)
    assert issubclass(AnnotationError, PlanRefusal) and issubclass(AnnotationError, ValueError)
    assert not issubclass(PlanRefusal, ValueError)
    assert issubclass(InvalidVersion, ParameterError) and issubclass(ParameterError, ValueError)


@pytest.mark.parametrize("raw,message", [
    ("{not json", "annotation kruise.io/sidecarset-working-hotupgrade-container is not valid JSON"),
    ("[1, 2]", "annotation kruise.io/sidecarset-working-hotupgrade-container must hold a JSON object"),
    (7, "annotation kruise.io/sidecarset-working-hotupgrade-container must be a string"),
])
def test_malformed_annotation_is_an_annotation_error(raw, message):
    with pytest.raises(AnnotationError, match=message):
        ann.read_working({ann.WORKING_HOTUPGRADE_CONTAINER: raw})


def test_malformed_annotation_refuses_the_pod(now):
    pod = pf.pod()
    pod["metadata"]["annotations"][ann.WORKING_HOTUPGRADE_CONTAINER] = "{not json"
    for plan in (hu.plan_next(pod, SS2, None, now), hu.plan_next(pod, SS2, 4711, now)):
        assert plan.action == hu.ACTION_REFUSE
        assert "is not valid JSON" in plan.reason
    assert assessment.pod_sidecar_phase(pod, SS2)[0] == assessment.PHASE_NOT_UPGRADABLE


def test_malformed_hash_annotation_refuses_the_upgrade(now):
    pod = pf.pod()
    pod["metadata"]["annotations"][ann.POD_HASH] = "{broken"
    plan = hu.plan_next(pod, SS2, 4711, now)
    assert plan.action == hu.ACTION_REFUSE
    assert plan.reason.startswith("annotation kruise.io/sidecarset-hash is not valid JSON")


def test_rollback_refusal_from_inconsistent_previous_annotations(now):
    pod = pf.kubelet(pf.apply_plan(pf.pod(), hu.plan_next(pf.pod(), SS2, 4711, now)), not_ready=("mesh-2",), started=False)
    previous = dict(pf.pod()["metadata"]["annotations"])
    previous[ann.WORKING_HOTUPGRADE_CONTAINER] = ann.write_working({"mesh": "mesh-2"})
    plan = hu.plan_rollback(pod, SS2, previous, now)
    assert plan.action == hu.ACTION_REFUSE
    assert "previous annotations name mesh-2 as working" in plan.reason


@pytest.mark.parametrize("error", [ValueError("int() of a bad value"), KeyError("image"), TypeError("bug")])
def test_a_bug_in_planning_is_not_a_refusal(monkeypatch, now, error):
    """Before: any ValueError inside planning became the pod's 'not-upgradable' reason."""
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(hu, "_set_hash", broken)
    with pytest.raises(type(error)):
        hu.plan_next(pf.pod(), SS2, None, now)
    with pytest.raises(type(error)):
        hu.plan_next(pf.pod(), SS2, 4711, now)
    cold = pf.sidecarset(containers=[pf.cold("log", "reg.example/log:v1")])
    with pytest.raises(type(error)):
        hu.plan_next(pf.pod(sets=[cold]), pf.with_images(cold, "hash-2", log="reg.example/log:v2"), None, now)


def test_a_bad_now_is_a_caller_error_not_a_refusal():
    with pytest.raises(ParameterError, match="now must be a datetime"):
        hu.plan_next(pf.pod(), SS2, 4711, [])
    assert hu.plan_next(pf.pod(), SS2, 4711, None).action == hu.ACTION_UPGRADE   # None: the current time


def test_invalid_version_is_a_parameter_error(now):
    with pytest.raises(InvalidVersion, match="must be greater than every version"):
        hu.plan_next(pf.pod(), SS2, 1, now)


def test_bad_strategy_values_are_parameter_errors():
    with pytest.raises(ParameterError, match="partition must be an int or a percentage like '25%', got 'x'"):
        batch.calculate_partition("x", 4)
    with pytest.raises(ParameterError, match="maxUnavailable must not be negative"):
        batch.max_unavailable_count(-1, 4)
