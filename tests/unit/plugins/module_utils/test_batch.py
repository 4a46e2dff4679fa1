# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of partition/maxUnavailable arithmetic, pod ordering and batch picking (``GetNextUpgradePods``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import random

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import batch
from ansible_collections.meshops.sidecarset.plugins.module_utils import hotupgrade as hu
from ansible_collections.meshops.sidecarset.plugins.module_utils import podstate
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

SS1 = pf.sidecarset()
SS2 = pf.with_images(SS1, "hash-2", mesh="reg.example/mesh:v2")


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def with_strategy(sset, **fields):
    result = pf.with_images(sset, sset["metadata"]["annotations"]["kruise.io/sidecarset-hash"])
    result["spec"]["updateStrategy"].update(fields)
    return result


@pytest.mark.parametrize("partition,replicas,expected", [
    (None, 5, 0), (0, 5, 0), (2, 5, 2), (9, 5, 5), (-1, 5, 0), ("3", 5, 3),
    ("0%", 5, 0), ("1%", 5, 1), ("50%", 5, 3), ("99%", 5, 4), ("100%", 5, 5),
    ("99%", 1, 1), ("50%", 0, 0), ("100%", 1, 1),
])
def test_calculate_partition(partition, replicas, expected):
    assert batch.calculate_partition(partition, replicas) == expected


@pytest.mark.parametrize("value,matched,expected", [
    (None, 10, 1), (0, 10, 0), (3, 10, 3), ("25%", 10, 3), ("5%", 6, 1), ("100%", 7, 7), ("0%", 7, 0), ("2", 7, 2),
])
def test_max_unavailable_count(value, matched, expected):
    assert batch.max_unavailable_count(value, matched) == expected


@pytest.mark.parametrize("bad", ["x", "25.5%", -1, True])
def test_max_unavailable_rejects(bad):
    with pytest.raises(ValueError):
        batch.max_unavailable_count(bad, 4)


def test_active_pods_order():
    unscheduled = pf.pod("unscheduled", node="")
    pending = pf.pod("pending", phase="Pending")
    not_ready = pf.pod("not-ready", ready=False)
    ready_recent = pf.pod("ready-recent")
    ready_recent["status"]["conditions"][0]["lastTransitionTime"] = "2024-03-01T00:00:00Z"
    ready_old = pf.pod("ready-old")
    restarts = pf.pod("restarts")
    restarts["status"]["conditions"][0]["lastTransitionTime"] = "2024-01-01T00:00:00Z"
    restarts["status"]["containerStatuses"][0]["restartCount"] = 3
    newer = pf.pod("newer", created="2024-02-01T00:00:00Z")
    pods = [ready_old, newer, restarts, ready_recent, not_ready, pending, unscheduled]
    assert names(batch.sort_pods(pods, SS2)) == [
        "unscheduled", "pending", "not-ready", "ready-recent", "restarts", "newer", "ready-old"]


def _reference_active_pods_less(first, second):
    """The pairwise ``controller.ActivePods.Less`` that ``batch._active_pods_key`` replaced (kept as the oracle)."""
    node1 = (first.get("spec") or {}).get("nodeName") or ""
    node2 = (second.get("spec") or {}).get("nodeName") or ""
    if node1 != node2 and (not node1 or not node2):
        return not node1
    phase1 = batch._PHASE_ORDINAL.get((first.get("status") or {}).get("phase"), 0)
    phase2 = batch._PHASE_ORDINAL.get((second.get("status") or {}).get("phase"), 0)
    if phase1 != phase2:
        return phase1 < phase2
    ready1, ready2 = podstate.is_pod_ready_condition(first), podstate.is_pod_ready_condition(second)
    if ready1 != ready2:
        return not ready1

    def after_or_zero(time1, time2):
        return time1 is None if time1 is None or time2 is None else time1 > time2

    if ready1 and ready2:
        time1, time2 = [batch._parse_time((podstate.pod_condition(p, "Ready") or {}).get("lastTransitionTime"))
                        for p in (first, second)]
        if time1 != time2:
            return after_or_zero(time1, time2)
    restarts1, restarts2 = [max([s.get("restartCount") or 0 for s in (p.get("status") or {}).get("containerStatuses") or []] or [0])
                            for p in (first, second)]
    if restarts1 != restarts2:
        return restarts1 > restarts2
    created1, created2 = [batch._parse_time((p.get("metadata") or {}).get("creationTimestamp")) for p in (first, second)]
    if created1 != created2:
        return after_or_zero(created1, created2)
    return False


@pytest.mark.parametrize("seed", range(40))
def test_active_pods_key_matches_the_pairwise_less(seed):
    rng = random.Random(seed)
    times = [None, "", "1969-12-31T23:59:59.999999Z", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.0000005Z",
             "2024-01-01T00:00:00.000001Z", "2024-01-01T01:00:00+01:00", "2024-03-01T00:00:00Z"]
    pods = []
    for index in range(rng.randint(0, 30)):
        pod = pf.pod("p%d" % index, node=rng.choice(["", "n1", "n2"]), ready=rng.random() < 0.6,
                     phase=rng.choice(["Pending", "Unknown", "Running", "Failed", None]), created=rng.choice(times))
        condition = pod["status"]["conditions"][0]
        condition["lastTransitionTime"] = rng.choice(times)
        if rng.random() < 0.1:
            condition["status"] = "Unknown"
        if rng.random() < 0.1:
            pod["status"]["conditions"] = []
        for status in pod["status"]["containerStatuses"]:
            status["restartCount"] = rng.choice([None, 0, 1, 3])
        pods.append(pod)

    def compare(one, other):
        return -1 if _reference_active_pods_less(one, other) else 1 if _reference_active_pods_less(other, one) else 0

    assert names(sorted(pods, key=batch._active_pods_key)) == names(sorted(pods, key=functools.cmp_to_key(compare)))


def _reference_group_by_density(total_matched, total_unmatched, update_matched, update_unmatched):
    """``calculateGroupByDensity`` as first ported (the oracle of ``batch._group_by_density``)."""
    update_group = batch._scatter_group(update_matched, update_unmatched)
    if total_unmatched * update_matched >= update_unmatched * total_matched:
        return update_group
    total_group = batch._scatter_group(total_matched, total_unmatched)
    group = {"matched": total_group["matched"], "unmatched": total_group["unmatched"]}
    if update_matched // group["matched"] < update_unmatched // group["unmatched"]:
        group["groups"] = update_matched // group["matched"]
    else:
        group["groups"] = update_unmatched // group["unmatched"]
    group["remainder"] = update_unmatched - group["groups"] * group["unmatched"]
    return group


def test_group_by_density_matches_the_first_port():
    """Every count ``_scatter_by_term`` can pass: at least one matched and unmatched pod left to update (it
    returns early otherwise), the totals at least the pods to update."""
    for update_matched in range(1, 9):
        for update_unmatched in range(1, 9):
            for total_matched in range(update_matched, 13):
                for total_unmatched in range(update_unmatched, 13):
                    counts = (total_matched, total_unmatched, update_matched, update_unmatched)
                    assert batch._group_by_density(*counts) == _reference_group_by_density(*counts), counts


def test_weight_priority_is_stable():
    sset = with_strategy(SS2, priorityStrategy={"weightPriority": [
        {"weight": 50, "matchSelector": {"matchLabels": {"tier": "canary"}}},
        {"weight": 10, "matchSelector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
    ]})
    pods = [pf.pod("p0", labels={"zone": "b"}), pf.pod("p1", labels={"zone": "a"}),
            pf.pod("p2", labels={"tier": "canary"}), pf.pod("p3", labels={"zone": "a"})]
    assert names(batch.sort_pods(pods, sset)) == ["p2", "p1", "p3", "p0"]


def test_order_priority():
    sset = with_strategy(SS2, priorityStrategy={"orderPriority": [{"orderedKey": "first"}, {"orderedKey": "second"}]})
    pods = [pf.pod("second-9", labels={"second": "x9"}), pf.pod("first-1", labels={"first": "v1"}),
            pf.pod("first-12", labels={"first": "v12"}), pf.pod("none", labels={})]
    assert names(batch.sort_pods(pods, sset)) == ["none", "first-12", "first-1", "second-9"]


def test_scatter_spreads_matched_pods_and_keeps_one_for_the_end():
    sset = with_strategy(SS2, scatterStrategy=[{"key": "zone", "value": "a"}])
    pods = [pf.pod("a%d" % i, labels={"zone": "a"}) for i in range(3)] + [pf.pod("b%d" % i, labels={"zone": "b"}) for i in range(3)]
    assert names(batch.sort_pods(pods, sset)) == ["a0", "b0", "b1", "a1", "b2", "a2"]


def test_scatter_wildcard_expands_values():
    sset = with_strategy(SS2, scatterStrategy=[{"key": "zone", "value": "*"}])
    pods = [pf.pod("a0", labels={"zone": "a"}), pf.pod("a1", labels={"zone": "a"}), pf.pod("a2", labels={"zone": "a"}),
            pf.pod("b0", labels={"zone": "b"}), pf.pod("b1", labels={"zone": "b"})]
    ordered = names(batch.sort_pods(pods, sset))
    assert sorted(ordered) == sorted(names(pods))
    assert ordered != names(pods)


def test_scatter_terms_most_matched_first_ties_in_order_unmatched_dropped():
    zone = {"key": "zone", "value": "*"}
    pods = [pf.pod("p%d" % i, labels={"zone": z, "rack": r}) for i, (z, r) in enumerate(["ab", "ab", "bc", "cd", "cd", "cd"])]
    waiting = pods[:5]
    terms = batch._scatter_terms([zone, {"key": "rack", "value": "b"}, {"key": "rack", "value": "x"}], pods, waiting)
    assert terms == [{"key": "zone", "value": "a"}, {"key": "zone", "value": "c"}, {"key": "rack", "value": "b"},
                     {"key": "zone", "value": "b"}]  # 2, 2, 2 (ties in expansion order), 1; rack=x: none
    assert batch._scatter_terms([{"key": "rack", "value": "x"}], pods, waiting) == [{"key": "rack", "value": "x"}]


def test_pick_batch_respects_max_unavailable_and_not_ready_pods_are_free():
    pods = [pf.pod("p%d" % i) for i in range(4)] + [pf.pod("sick", ready=False)]
    result = batch.pick_batch(pods, SS2)
    assert names(result["batch"]) == ["sick", "p0"]
    assert names(result["waiting"]) == ["p1", "p2", "p3"]
    assert (result["matched"], result["unavailable"], result["max_unavailable"]) == (5, 0, 1)
    result = batch.pick_batch(pods, SS2, max_unavailable="50%")
    assert names(result["batch"]) == ["sick", "p0", "p1", "p2"]


def test_pick_batch_counts_in_flight_pods(now):
    busy = pf.pod("busy")
    busy = pf.apply_plan(busy, hu.plan_next(busy, SS2, 10, now))
    pods = [busy, pf.pod("p1"), pf.pod("p2")]
    result = batch.pick_batch(pods, SS2)
    assert names(result["in_flight"]) == ["busy"]
    assert result["unavailable"] == 1
    assert result["batch"] == []
    assert names(result["waiting"]) == ["p1", "p2"]
    ready_for_reset = pf.kubelet(busy)
    result = batch.pick_batch([ready_for_reset, pf.pod("p1")], SS2)
    assert names(result["reset"]) == ["busy"]


def test_pick_batch_partition_and_not_upgradable():
    pods = [pf.pod("p%d" % i) for i in range(4)] + [pf.pod("foreign", sets=[pf.sidecarset(name="other")])]
    result = batch.pick_batch(pods, SS2, max_unavailable=10, partition=2)
    assert names(result["batch"]) == ["p0", "p1"]
    assert names(result["partitioned"]) == ["p2", "p3"]
    assert [(p["metadata"]["name"], reason) for p, reason in result["not_upgradable"]] == [
        ("foreign", "pod is not injected by SidecarSet mesh-set")]
    changed = pf.sidecarset(hash_value="hash-9", hash_without_image="hwi-9")
    result = batch.pick_batch([pf.pod("p0")], changed)
    assert result["batch"] == [] and result["not_upgradable"][0][1].startswith("hash-without-image differs")


def test_pick_batch_selector_and_paused():
    sset = with_strategy(SS2, selector={"matchLabels": {"canary": "true"}})
    pods = [pf.pod("p0"), pf.pod("p1", labels={"app": "demo", "canary": "true"})]
    assert names(batch.pick_batch(pods, sset)["batch"]) == ["p1"]
    paused = with_strategy(SS2, paused=True)
    result = batch.pick_batch(pods, paused)
    assert result["batch"] == [] and result["stopped"] == "updateStrategy is paused"
    assert names(result["waiting"]) == ["p0", "p1"]
