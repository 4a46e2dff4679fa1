# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout_queue filter: a thin adapter of podlist.rollout_queue (its logic is tested in test_podlist.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.meshops.sidecarset.plugins.filter.rollout_queue import FilterModule, rollout_queue

PLAN = {"order": [{"name": n, "namespace": "ns"} for n in "abcd"], "max_unavailable": 2, "in_flight": [], "reset": []}


def test_survey_strings_are_taken_as_their_values():
    queue = rollout_queue(PLAN, updated_pods="0", canary="1", window="false", per_call="0", gated="no")
    assert queue["kinds"] == ["canary"] and [len(b) for b in queue["batches"]] == [1, 2, 1]
    assert rollout_queue(PLAN, window="true")["kinds"] == ["window"]


@pytest.mark.parametrize("plan, kwargs, message", [
    ("a,b", {}, "expected the rollout plan"),
    ({"batches": []}, {}, "expected the rollout plan"),
    (PLAN, {"canary": "two"}, "whole numbers"),
    (PLAN, {"window": "maybe"}, "rollout_queue: "),
    (PLAN, {"history": ["a"]}, "rollout_queue: history: expected the report of a rollout"),
])
def test_bad_input_is_named(plan, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        rollout_queue(plan, **kwargs)


def test_filter_is_registered():
    assert FilterModule().filters()["rollout_queue"] is rollout_queue


def test_history_starts_the_slowest_pods_first():
    def done(cluster, name, total):
        return {"cluster": cluster, "namespace": "ns", "name": name, "phase": "done", "changed": True, "timings": {"total": total}}
    history = {"pods": [done("east", "c", 9), done("east", "a", 1), done("default", "d", 9), done("default", "b", 1)]}
    # unknown pods count as the lower median of the known ones (1 here)
    assert [r["name"] for r in rollout_queue(PLAN, history=history, cluster="east")["batches"][0]] == list("cabd")
    assert [r["name"] for r in rollout_queue(PLAN, history=history)["batches"][0]] == list("dabc")
