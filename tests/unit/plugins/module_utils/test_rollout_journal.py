# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout role's bookkeeping: records, batch entries, stop decisions, journal, report."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import files
from ansible_collections.meshops.sidecarset.plugins.module_utils import rollout_journal as rj


def _pod(name, phase="done", changed=True, failed=False, namespace="shop", **extra):
    pod = {"name": name, "namespace": namespace, "phase": phase, "changed": changed, "failed": failed, "reason": "",
           "writes": ["upgrade", "reset"] if changed else [], "timings": {"upgrade": 0.1, "total": 0.5},
           "images": {"proxy-1": "v1"}, "working_after": {"proxy": "proxy-1"}, "versions": {}}
    pod.update(extra)
    return pod


def test_records_carry_cluster_batch_and_pod_key():
    records = rj.batch_records([_pod("a"), _pod("b", namespace="web")], cluster="eu", batch=3)
    assert [r["pod"] for r in records] == ["eu/shop/a", "eu/web/b"]
    assert all(r["cluster"] == "eu" and r["batch"] == 3 for r in records)


def test_reset_results_are_merged_into_the_upgrade_record():
    upgraded = [_pod("a", phase="migrated", writes=["upgrade"], timings={"upgrade": 0.2, "migration": 0.3, "total": 0.5})]
    resets = [_pod("a", phase="done", writes=["reset"], images={"proxy-1": "empty", "proxy-2": "v2"},
                   timings={"reset": 0.4, "total": 0.45})]
    (record,) = rj.batch_records(upgraded, resets)
    assert record["phase"] == "done" and record["writes"] == ["upgrade", "reset"]
    assert record["images"] == {"proxy-1": "empty", "proxy-2": "v2"}
    assert record["timings"] == {"upgrade": 0.2, "migration": 0.3, "reset": 0.4, "total": 0.95}


def test_gate_failed_pods_are_failed_and_not_merged():
    upgraded = [_pod("a", phase="migrated"), _pod("b", phase="migrated")]
    records = rj.batch_records(upgraded, [_pod("b")], gate_failed=["a"])
    by_name = {r["name"]: r for r in records}
    assert by_name["a"]["failed"] and by_name["a"]["phase"] == "failed" and by_name["a"]["reason"] == rj.GATE_FAILED_REASON
    assert by_name["b"]["phase"] == "done" and not by_name["b"]["failed"]


def _entry(records, kind="batch", size=None):
    pods = ["shop/%s" % r["name"] for r in records]
    if size is not None:
        pods = ["shop/p%d" % i for i in range(size)]
    return rj.batch_entry(records, 2, "default", kind, 4, pods, 100.0, 101.25)


def test_batch_entry_counts():
    records = rj.batch_records([_pod("a"), _pod("b", phase="failed", failed=True)])
    entry = _entry(records)
    assert entry["seconds"] == 1.25 and entry["size"] == 2 and entry["failed"] == 1
    assert entry["phases"] == {"done": 1, "failed": 1} and entry["max_unavailable"] == 4


@pytest.mark.parametrize("failed, size, limit, expect_stop", [
    (0, 4, 0, False), (1, 4, 0, True), (1, 4, 25, False), (2, 4, 25, True), (4, 4, 100, False),
])
def test_stop_reason_follows_max_fail_percentage(failed, size, limit, expect_stop):
    records = [_pod("p%d" % i, phase="failed", failed=True) for i in range(failed)] + [_pod("q%d" % i) for i in range(size - failed)]
    stopped, is_failure = rj.stop_reason(_entry(records), limit, canary_stop=False)
    assert bool(stopped) == expect_stop and is_failure == expect_stop
    if expect_stop:
        assert stopped == "batch 2 (batch) on default: %d of %d pods failed (rollout_max_fail_percentage %d%%)" % (failed, size, limit)


def test_canary_stop_stops_without_failure():
    entry = _entry([_pod("a")], kind="canary")
    assert rj.stop_reason(entry, 0, canary_stop=True) == ("canary", False)
    assert rj.stop_reason(entry, 0, canary_stop=False) == ("", False)


def test_batch_line_names_failures():
    records = rj.batch_records([_pod("a"), _pod("b", phase="failed", failed=True, reason="pull failed")])
    line = rj.batch_line(_entry(records, kind="canary"), records, 1, 5)
    assert line == "[default] batch 1/5 (canary, 2 pods): done=1, failed=1 in 1.25 s; shop/b: pull failed"


def test_journal_round_trip_and_torn_last_line(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    assert rj.read_journal(path) == ([], [])
    first = rj.batch_records([_pod("a")], batch=1)
    second = rj.batch_records([_pod("b"), _pod("c")], batch=2)
    rj.append_batch(path, _entry(first), first)
    rj.append_batch(path, _entry(second), second)
    with open(path, "a") as handle:
        handle.write('{"batch": {"index": 3}, "pods": [')  # a run killed while writing
    batches, pods = rj.read_journal(path)
    assert len(batches) == 2 and [p["name"] for p in pods] == ["a", "b", "c"]
    assert rj.count_batches(path) == 2 and rj.count_batches(str(tmp_path / "none")) == 0


def test_summary_counts():
    plans = [{"cluster": "eu", "sidecarset": "mesh", "matched": 10, "partitioned": 2, "not_upgradable": 1},
             {"cluster": "us", "sidecarset": "mesh", "matched": 5, "partitioned": 0, "not_upgradable": 0}]
    pods = rj.batch_records([_pod("a"), _pod("b", changed=False), _pod("c", phase="rolled-back", failed=True)], cluster="eu")
    summary = rj.rollout_summary(plans, [{"index": 1}, {"index": 2}], pods, "", False, 12.3456)
    assert summary == {
        "sidecarset": "mesh", "stopped": "", "failed": False, "seconds": 12.346, "clusters": ["eu", "us"], "matched": 15,
        "batches": 2, "upgraded": 1, "unchanged": 1, "failed_pods": ["eu/shop/c"], "rolled_back": 1, "partitioned": 2,
        "not_upgradable": 1, "phases": {"done": 2, "rolled-back": 1},
    }


def test_write_report_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "out" / "report.json")
    rj.write_report(path, {"result": {"upgraded": 1}})
    with open(path) as handle:
        assert json.load(handle) == {"result": {"upgraded": 1}}

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        rj.write_report(path, {"result": {"upgraded": 2}})
    with open(path) as handle:
        assert json.load(handle) == {"result": {"upgraded": 1}}  # the old report is intact
    assert os.listdir(str(tmp_path / "out")) == ["report.json"]  # no temporary file left


def test_report_durations_reads_the_upgraded_pods_of_one_cluster():
    def pod(name, cluster="c1", phase="done", changed=True, total=4.5):
        return {"cluster": cluster, "namespace": "ns", "name": name, "phase": phase, "changed": changed,
                "timings": {"total": total} if total is not None else {}}
    report = {"pods": [pod("a"), pod("b", cluster="c2"), pod("c", phase="failed"), pod("d", changed=False),
                       pod("e", total=None), pod("f", total=True), pod("g", total=-1), pod("h", total=2), "junk"]}
    assert rj.report_durations(report, "c1") == {"ns/a": 4.5, "ns/h": 2.0}
    assert rj.report_durations(report, "c2") == {"ns/b": 4.5}
    for bad in ([], {"pods": {}}, "text"):
        with pytest.raises(ValueError, match="expected the report of a rollout"):
            rj.report_durations(bad, "c1")
