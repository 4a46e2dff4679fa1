# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the rollout plan (Kruise's pick, then budget-sized batches) and of pod grouping."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.podlist import plan_rollout, rollout_queue
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


def test_plan_of_a_selection_is_decided_over_every_matched_pod():
    """--limit / inventory selection: the budget, partition and order are Kruise's over all pods; only the
    selected ones are kept, in that order, and re-cut into batches of the (global) budget."""
    everything = pods(10)
    full = plan_rollout(everything, SS2, max_unavailable="20%", partition=2)
    order = [ref["name"] for ref in full["order"]]
    chosen = [ref["namespace"] + "/" + ref["name"] for ref in full["order"][1::2]]  # every other pod of the order
    chosen.append({"namespace": full["partitioned"][0]["namespace"], "name": full["partitioned"][0]["name"]})
    chosen.append("default/gone")
    plan = plan_rollout(everything, SS2, max_unavailable="20%", partition=2, only=chosen)
    assert plan["max_unavailable"] == 2 and plan["partition"] == 2 and plan["matched"] == 10  # of all 10 pods
    assert [ref["name"] for ref in plan["order"]] == order[1::2]
    assert [len(b) for b in plan["batches"]] == [2, 2]
    assert flat(plan["batches"]) == order[1::2]
    assert plan["partitioned"] == full["partitioned"][:1]  # the partition is the last pods of the whole order
    assert plan["selected"] == 5 and plan["selection"]["requested"] == 6 and plan["selection"]["found"] == 5
    assert plan["selection"]["outside"] == 5
    assert plan["selection"]["missing"] == [{"namespace": "default", "name": "gone"}]
    assert "selection" not in full and full["selected"] == 10


def test_selected_counts_pods_that_are_not_injected():
    """The rollout report's ``matched`` (``selected``) counts every pod the SidecarSet selects: 4 pods, 3 of them
    without the sidecar, are 4 (Kruise's matchedPods: 1)."""
    plain = [pf.pod("bare-%d" % i, sets=[]) for i in range(3)]
    plan = plan_rollout(pods(1) + plain, SS2)
    assert plan["matched"] == 1 and plan["selected"] == 4 and len(plan["not_upgradable"]) == 3


def refs(*names):
    return [{"name": name, "namespace": "ns"} for name in names]


def queue_plan(order, budget=3, in_flight=(), reset=()):
    return {"order": refs(*order), "max_unavailable": budget, "in_flight": refs(*in_flight), "reset": refs(*reset)}


def test_queue_runs_in_flight_pods_then_the_canary_then_one_window():
    plan = queue_plan("abcdefg", budget=3, in_flight="x", reset="xy")
    queue = rollout_queue(plan, updated_pods=0, canary=2, window=True)
    assert queue["kinds"] == ["resume", "canary", "window"]
    assert [[r["name"] for r in b] for b in queue["batches"]] == [["x", "y"], ["a", "b"], list("cdefg")]
    assert (queue["resumed"], queue["canary"], queue["budget"], queue["to_upgrade"]) == (2, 2, 3, 7)
    assert [c["kind"] for c in queue["calls"]] == ["resume", "canary", "window"]


def test_queue_in_lock_step_batches_of_the_budget():
    queue = rollout_queue(queue_plan("abcdefg", budget=3), canary=1, window=False, per_call=0)
    assert [len(b) for b in queue["batches"]] == [1, 3, 3]
    assert queue["kinds"] == ["canary"]
    assert [(c["kind"], len(c["batches"])) for c in queue["calls"]] == [("canary", 1), ("batch", 2)]


def test_queue_canary_counts_pods_already_updated_and_never_drops_pods():
    # a re-run after its canary: more pods updated than the canary asked for; every pod of the order is still
    # queued (the Jinja this replaced sliced the order from a negative canary size and kept only its last pods)
    queue = rollout_queue(queue_plan("abcdef", budget=2), updated_pods=5, canary=2, window=False)
    assert queue["canary"] == 0 and queue["kinds"] == []
    assert [r["name"] for b in queue["batches"] for r in b] == list("abcdef")
    partly = rollout_queue(queue_plan("abcdef", budget=2), updated_pods=1, canary=2)
    assert partly["canary"] == 1 and [r["name"] for r in partly["batches"][0]] == ["a"]


def test_queue_canary_is_at_most_one_budget_and_a_zero_budget_is_one():
    queue = rollout_queue(queue_plan("abcdef", budget=0), canary=4)
    assert queue["budget"] == 1 and queue["canary"] == 1


def test_queue_of_nothing_is_empty():
    assert rollout_queue(queue_plan(""), canary=2)["batches"] == []


def test_queue_bad_numbers_are_named():
    for kwargs, message in (({"canary": -1}, "canary must be 0"), ({"canary": "x"}, "whole numbers"),
                            ({"per_call": -1}, "per_call must be 0")):
        try:
            rollout_queue(queue_plan("ab"), **kwargs)
        except ValueError as exc:
            assert message in str(exc)
        else:
            raise AssertionError("no error for %r" % (kwargs,))


def test_queue_longest_first_keeps_the_canary_and_kruise_choice():
    # durations of a previous rollout: f the slowest, then b; c and g unknown (the lower median of the queued
    # pods' durations, 6.0: x and h are not queued); e and a fast
    durations = {"ns/a": 1.0, "ns/b": 8.0, "ns/d": 6.0, "ns/e": 2.0, "ns/f": 20.0, "ns/x": 99.0, "ns/h": 3.0}
    queue = rollout_queue(queue_plan("abcdefg", budget=3, in_flight="x"), canary=1, durations=durations)
    names = [[r["name"] for r in b] for b in queue["batches"]]
    # in-flight pods first and the canary in Kruise's order; then longest first, ties (c, d, g) in Kruise's order
    assert names == [["x"], ["a"], ["f", "b", "c", "d", "g", "e"]]
    assert queue["to_upgrade"] == 7
    batches = rollout_queue(queue_plan("abcdefg", budget=3), window=False, durations=durations)["batches"]
    assert [[r["name"] for r in b] for b in batches] == [["f", "b", "c"], ["d", "g", "e"], ["a"]]


def test_queue_without_known_durations_keeps_kruise_order():
    for durations in (None, {}, {"other/a": 5.0}):
        queue = rollout_queue(queue_plan("abc"), durations=durations)
        assert [r["name"] for r in queue["batches"][0]] == list("abc")
