# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Grouping a rollout's batches into sidecar_upgrade invocations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.meshops.sidecarset.plugins.filter.rollout_calls import FilterModule, rollout_calls

BATCHES = [["r1"], ["c1", "c2"], ["a"], ["b"], ["c"], ["d"], ["e"]]
KINDS = ["resume", "canary"]


def shape(calls):
    return [(c["kind"], c["first"], len(c["batches"])) for c in calls]


def test_one_call_per_batch_by_default():
    calls = rollout_calls(BATCHES, KINDS)
    assert shape(calls) == [("resume", 1, 1), ("canary", 2, 1)] + [("batch", i, 1) for i in range(3, 8)]
    assert [b for c in calls for b in c["batches"]] == BATCHES


@pytest.mark.parametrize("per_call, expected", [
    (0, [("resume", 1, 1), ("canary", 2, 1), ("batch", 3, 5)]),
    (2, [("resume", 1, 1), ("canary", 2, 1), ("batch", 3, 2), ("batch", 5, 2), ("batch", 7, 1)]),
    ("3", [("resume", 1, 1), ("canary", 2, 1), ("batch", 3, 3), ("batch", 6, 2)]),  # survey answers are strings
])
def test_batches_after_the_canary_are_grouped(per_call, expected):
    calls = rollout_calls(BATCHES, KINDS, per_call=per_call)
    assert shape(calls) == expected
    assert [b for c in calls for b in c["batches"]] == BATCHES  # order kept, nothing lost


def test_health_gates_keep_every_batch_alone():
    assert shape(rollout_calls(BATCHES[2:], [], per_call=0, gated=True)) == [("batch", i, 1) for i in range(1, 6)]


def test_no_batches():
    assert rollout_calls([], KINDS, per_call=0) == []


@pytest.mark.parametrize("batches, per_call, message", [
    ("a,b", 1, "expected a list of batches"),
    ([["a"], "b"], 1, "expected a list of batches"),
    ([["a"]], "x", "per_call must be a whole number"),
    ([["a"]], -1, "per_call must be 0"),
])
def test_bad_input_is_named(batches, per_call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        rollout_calls(batches, per_call=per_call)


def test_filter_is_registered():
    assert FilterModule().filters()["rollout_calls"] is rollout_calls


def test_the_window_is_a_call_of_its_own():
    calls = rollout_calls([["r"], ["c1", "c2"], ["w1", "w2", "w3"]], kinds=["resume", "canary", "window"], per_call=0)
    assert [(c["kind"], c["first"], c["batches"]) for c in calls] == [
        ("resume", 1, [["r"]]), ("canary", 2, [["c1", "c2"]]), ("window", 3, [["w1", "w2", "w3"]])]
