# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The driver acts on the assessment's ``fail``: a pod whose new twin failed is failed with the container's reason
at once, not after the timeout (before: the planner said "wait" and only a second phase call saw the failure)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import PHASE_FAILED
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils.test_upgrade import BROKEN, SS1, FakeCluster, run


def test_a_failed_new_twin_fails_the_pod_with_its_reason_before_the_timeout():
    broken = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    started = time.monotonic()
    driver, (states, dummy, stopped) = run(FakeCluster(["pod-00"]), [["pod-00"]], sidecarset=broken, window=1, timeout=30)
    elapsed = time.monotonic() - started
    (state,) = states
    assert state.phase == PHASE_FAILED and state.failed
    assert state.reason.startswith("container mesh-2 is ImagePullBackOff"), state.reason
    assert "timed out" not in state.reason
    assert elapsed < 15, elapsed
