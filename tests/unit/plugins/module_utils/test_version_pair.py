# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""version_pair must predict exactly what the planners write."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import hotupgrade as hu
from ansible_collections.meshops.sidecarset.plugins.module_utils.version_pair import version_pair
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

SS1 = pf.sidecarset()
SS2 = pf.with_images(SS1, "hash-2", mesh="reg.example/mesh:v2")
SS3 = pf.with_images(SS1, "hash-3", mesh="reg.example/mesh:v3")


def env(version, alt):
    return {"SIDECARSET_VERSION": version, "SIDECARSET_VERSION_ALT": alt}


def test_current_after_injection():
    assert version_pair(pf.pod(), "mesh") == {
        "working": "mesh-1", "standby": "mesh-2", "mesh-1": env("1", "0"), "mesh-2": env("0", "1")}
    assert version_pair(pf.pod()["metadata"]["annotations"], "mesh")["working"] == "mesh-1"


def test_predictions_match_planner_writes(now):
    pod = pf.pod()
    for target, version in ((SS2, 10), (SS3, 20)):
        predicted = version_pair(pod, "mesh", phase="after_upgrade", new_version=version)
        pod = pf.kubelet(pf.apply_plan(pod, hu.plan_next(pod, target, version, now)))
        assert version_pair(pod, "mesh") == predicted
        predicted = version_pair(pod, "mesh", phase="after_reset")
        pod = pf.kubelet(pf.apply_plan(pod, hu.plan_next(pod, target, version, now)))
        assert version_pair(pod, "mesh") == predicted
    assert version_pair(pod, "mesh") == {
        "working": "mesh-1", "standby": "mesh-2", "mesh-1": env("20", "0"), "mesh-2": env("0", "20")}


def test_after_upgrade_defaults_and_errors():
    assert version_pair(pf.pod(), "mesh", phase="after_upgrade")["mesh-2"] == env("2", "1")
    with pytest.raises(ValueError):
        version_pair(pf.pod(), "mesh", phase="after_upgrade", new_version=1)
    with pytest.raises(ValueError):
        version_pair(pf.pod(), "mesh", phase="later")
    assert version_pair(pf.pod(), "mesh", phase="after_reset") == version_pair(pf.pod(), "mesh")
