# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the rollout plan (Kruise's pick, then budget-sized batches) and of pod grouping."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.podlist import plan_rollout
from ansible_collections.meshops.sidecarset.plugins.module_utils.upgrade import batch_version
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

SS1 = pf.sidecarset()
SS2 = pf.with_images(SS1, "hash-2", mesh="reg.example/mesh:v2")


def pods(count):
    return [pf.pod("pod-%02d" % i, sets=[SS1], created="2024-01-01T00:00:%02dZ" % i) for i in range(count)]


def flat(batches):
    return [ref["name"] for batch in batches for ref in batch]


def test_plan_splits_the_order_into_budget_sized_batches_and_keeps_the_partition():
    plan = plan_rollout(pods(10), SS2, max_unavailable="25%", partition=3)
    assert plan["max_unavailable"] == 3 and plan["partition"] == 3 and plan["matched"] == 10
    assert [len(b) for b in plan["batches"]] == [3, 3, 1]
    assert len(plan["partitioned"]) == 3
    assert set(flat(plan["batches"])).isdisjoint(ref["name"] for ref in plan["partitioned"])
    assert flat(plan["batches"]) == [ref["name"] for ref in plan["order"]]


def test_plan_of_a_paused_sidecarset_has_no_batches():
    paused = pf.with_images(SS2, "hash-2")
    paused["spec"]["updateStrategy"]["paused"] = True
    plan = plan_rollout(pods(4), paused)
    assert plan["batches"] == [] and plan["stopped"] == "updateStrategy is paused"


def test_plan_of_updated_pods_is_empty():
    plan = plan_rollout(pods(3), SS1)
    assert plan["batches"] == [] and plan["order"] == []


def test_batch_version_is_above_every_version_on_the_batch():
    batch = pods(2)
    batch[1]["metadata"]["annotations"]["version.sidecarset.kruise.io/mesh-1"] = "41"
    assert batch_version(batch) == 42
    assert batch_version(batch, floor=100) == 101
    assert batch_version([]) == 2
