# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout role's bookkeeping: per-pod records, batch entries, stop decisions and the final report.

Pure functions on plain dicts (the per-pod results of ``sidecar_upgrade``), plus a journal: a JSON-lines file
the role appends one line per batch to, so that the records of 1,000 pods never travel through Ansible
variables (templating a 1,000-pod list costs seconds in ansible-core 2.19). Contract:

* ``batch_records(upgraded, resets, gate_failed, cluster, batch)`` merges a batch's upgrade results with the
  results of its reset call (health gates) and marks the pods that failed a gate; each record gets ``cluster``,
  ``batch`` and ``pod`` (``cluster/namespace/name``).
* ``batch_entry(...)`` summarises one batch; ``stop_reason(...)`` says whether the rollout stops after it, by
  ``window.over_fail_limit(failed, size, max_fail_percentage)``, the upgrade driver's stop rule.
* ``append_batch(path, entry, records)`` / ``read_journal(path)`` write and read the journal; a partial last
  line (a run killed while writing) is ignored; ``count_batches(path)`` counts its complete lines.
* ``rollout_summary(plans, batches, pods, stopped, failed, seconds)`` is the ``rollout_result`` of the role.
* ``host_outcomes(targets, plans, pods, stopped)`` is each pod host's outcome in an inventory-driven rollout
  (``targets`` from ``targets.pod_targets``): ``{host: {"phase", "reason", "changed", "failed", "msg"}}``.
* ``report_durations(report, cluster)`` reads a cluster's per-pod durations back from a report (the longest-first
  order of the next rollout, ``podlist.longest_first``).
* ``write_report(path, report)`` writes the JSON report atomically (temporary file, then rename);
  ``timeline_path(report_path)`` is where its timeline picture (``timeline.timeline_svg``) goes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json
import os

from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import (
    PHASE_DONE,
    PHASE_FAILED,
    PHASE_MISSING,
    PHASE_NOT_UPGRADABLE,
    PHASE_ROLLED_BACK,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.files import write as write_file
from ansible_collections.meshops.sidecarset.plugins.module_utils.window import over_fail_limit

GATE_FAILED_REASON = "health check failed; not reset (the new sidecar serves, the old one is idle)"


def _phase_counts(records):
    return dict(collections.Counter(record.get("phase") for record in records))


def batch_records(upgraded, resets=None, gate_failed=None, cluster="default", batch=1):
    """One record per pod of ``upgraded``, merged with its reset result and its gate verdict."""
    reset_by_key = dict(((p.get("namespace"), p.get("name")), p) for p in (resets or []))
    gate_failed = set(gate_failed or [])
    out = []
    for pod in upgraded:
        record = dict(pod)
        record.update(cluster=cluster, batch=batch, pod="%s/%s/%s" % (cluster, pod.get("namespace"), pod.get("name")))
        reset = reset_by_key.get((pod.get("namespace"), pod.get("name")))
        if reset is not None:
            timings = dict(pod.get("timings") or {})
            reset_timings = reset.get("timings") or {}
            timings["reset"] = reset_timings.get("reset", 0)
            timings["total"] = round((timings.get("total") or 0) + (reset_timings.get("total") or 0), 3)
            record.update(
                phase=reset.get("phase"), failed=reset.get("failed"), reason=reset.get("reason"),
                changed=bool(pod.get("changed") or reset.get("changed")),
                writes=list(pod.get("writes") or []) + list(reset.get("writes") or []),
                images=reset.get("images"), working_after=reset.get("working_after"), versions=reset.get("versions"),
                timings=timings,
            )
        elif pod.get("name") in gate_failed:
            record.update(phase=PHASE_FAILED, failed=True, reason=GATE_FAILED_REASON)
        out.append(record)
    return out


def batch_entry(records, index, cluster, kind, max_unavailable, pods, started, ended):
    """The report's entry for one batch (``pods`` are ``namespace/name`` strings)."""
    return {
        "index": index,
        "cluster": cluster,
        "kind": kind,
        "max_unavailable": int(max_unavailable),
        "size": len(pods),
        "pods": list(pods),
        "started": float(started),
        "ended": float(ended),
        "seconds": round(float(ended) - float(started), 3),
        "failed": sum(1 for r in records if r.get("failed")),
        "phases": _phase_counts(records),
    }


def stop_reason(entry, max_fail_percentage, canary_stop):
    """``(stopped, failed)`` after a batch: over the failure limit stops the rollout as failed; a canary with
    ``canary_stop`` stops it as ``"canary"``; otherwise ``("", False)``."""
    failed, size = entry["failed"], entry["size"]
    if over_fail_limit(failed, size, max_fail_percentage):
        return ("batch %d (%s) on %s: %d of %d pods failed (rollout_max_fail_percentage %d%%)"
                % (entry["index"], entry["kind"], entry["cluster"], failed, size, int(max_fail_percentage))), True
    if entry["kind"] == "canary" and canary_stop:
        return "canary", False
    return "", False


def batch_line(entry, records, position, total):
    """The progress line the role prints for a batch (``position`` of ``total`` batches of its cluster)."""
    phases = ", ".join("%s=%d" % item for item in sorted(entry["phases"].items(), key=lambda kv: str(kv[0])))
    line = "[%s] batch %d/%d (%s, %d pods): %s in %s s" % (
        entry["cluster"], position, total, entry["kind"], entry["size"], phases, entry["seconds"])
    for record in records:
        if record.get("failed"):
            line += "; %s/%s: %s" % (record.get("namespace"), record.get("name"), record.get("reason"))
    return line


def append_batch(path, entry, records):
    """Append one batch (its entry and its records) to the journal as one JSON line."""
    line = json.dumps({"batch": entry, "pods": records}, sort_keys=True, default=str) + "\n"
    with open(path, "a") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def count_batches(path):
    """How many complete batch lines the journal holds (without parsing the records)."""
    if not path or not os.path.exists(path):
        return 0
    with open(path, "rb") as handle:
        return handle.read().count(b"\n")


def read_journal(path):
    """``(batches, pods)`` from the journal; a missing file is empty, a torn last line is skipped."""
    batches, pods = [], []
    if not path or not os.path.exists(path):
        return batches, pods
    with open(path) as handle:
        for line in handle:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            batches.append(item["batch"])
            pods.extend(item["pods"])
    return batches, pods


def rollout_summary(plans, batches, pods, stopped, failed, seconds):
    """The role's ``rollout_result``: counts over all clusters and batches."""
    plans = plans or []
    return {
        "sidecarset": plans[0].get("sidecarset", "") if plans else "",
        "stopped": stopped or "",
        "failed": bool(failed),
        "seconds": round(float(seconds), 3),
        "clusters": [p.get("cluster") for p in plans],
        "matched": sum(int(p.get("matched") or 0) for p in plans),
        "batches": len(batches),
        "upgraded": sum(1 for p in pods if p.get("changed") and p.get("phase") == PHASE_DONE),
        "unchanged": sum(1 for p in pods if not p.get("changed") and p.get("phase") == PHASE_DONE),
        "failed_pods": [p.get("pod") for p in pods if p.get("failed")],
        "rolled_back": sum(1 for p in pods if p.get("phase") == PHASE_ROLLED_BACK),
        "partitioned": sum(int(p.get("partitioned") or 0) for p in plans),
        "not_upgradable": sum(int(p.get("not_upgradable") or 0) for p in plans),
        "phases": _phase_counts(pods),
    }


def report_durations(report, cluster):
    """The per-pod durations (upgrade write to the end of the reset) of the pods of ``cluster`` that a rollout
    upgraded, from its report (``write_report``): ``{"namespace/name": seconds}``."""
    if not isinstance(report, dict) or not isinstance(report.get("pods"), list):
        raise ValueError("expected the report of a rollout (a JSON object with a pods list), got %s" % type(report).__name__)
    out = {}
    for pod in report["pods"]:
        if not isinstance(pod, dict) or pod.get("cluster") != cluster or pod.get("phase") != PHASE_DONE or not pod.get("changed"):
            continue
        total = (pod.get("timings") or {}).get("total")
        if isinstance(total, (int, float)) and not isinstance(total, bool) and total >= 0:
            out["%s/%s" % (pod.get("namespace"), pod.get("name"))] = float(total)
    return out


def _keys(refs):
    return set((r.get("namespace"), r.get("name")) for r in refs or [])


def host_outcomes(targets, plans, pods, stopped=""):
    """Each pod host's outcome: its last record in the journal, or why it has none (partition, not upgradable,
    gone, the rollout stopped, or already on the current SidecarSet)."""
    records = {}
    for record in pods or []:
        records[(record.get("cluster"), record.get("namespace"), record.get("name"))] = record
    plans_by_cluster = dict((p.get("cluster"), p) for p in plans or [])
    out = {}
    for target in targets or []:
        cluster = target.get("name")
        plan = plans_by_cluster.get(cluster) or {}
        partitioned = _keys(plan.get("partitioned_pods"))
        missing = _keys(plan.get("missing_pods"))
        blocked = dict(((r.get("namespace"), r.get("name")), r.get("reason")) for r in plan.get("not_upgradable_pods") or [])
        for pod in target.get("pods") or []:
            key = (pod.get("namespace"), pod.get("name"))
            record = records.get((cluster,) + key)
            if record is not None:
                outcome = {"phase": record.get("phase"), "reason": record.get("reason") or "",
                           "changed": bool(record.get("changed")), "failed": bool(record.get("failed"))}
            elif key in missing:
                outcome = {"phase": PHASE_MISSING, "reason": "not found among the pods the SidecarSet selects (deleted since the inventory was read?)"}
            elif key in partitioned:
                outcome = {"phase": "partitioned", "reason": "kept on the old sidecar by partition"}
            elif key in blocked:
                outcome = {"phase": PHASE_NOT_UPGRADABLE, "reason": blocked[key]}
            elif not plan:
                outcome = {"phase": "not-reached", "reason": "cluster not rolled out: the rollout stopped (%s)" % stopped}
            elif stopped:
                outcome = {"phase": "not-reached", "reason": "not upgraded: the rollout stopped (%s)" % stopped}
            else:
                outcome = {"phase": PHASE_DONE, "reason": "already on the current SidecarSet"}
            outcome.setdefault("changed", False)
            outcome.setdefault("failed", False)
            outcome["msg"] = "%s/%s/%s: %s%s" % (cluster, key[0], key[1], outcome["phase"],
                                                 (" - " + outcome["reason"]) if outcome["reason"] else "")
            out[pod.get("host") or "%s/%s/%s" % ((cluster,) + key)] = outcome
    return out


def timeline_path(report_path):
    """Where the timeline picture of a report goes: the same name with ``.svg`` instead of ``.json``."""
    base = report_path[:-len(".json")] if report_path.endswith(".json") else report_path
    return base + ".svg"


def write_report(path, report):
    """Write ``report`` as indented JSON to ``path`` atomically (``files.write``); a string ``report`` is written
    as it is."""
    write_file(path, report if isinstance(report, str) else json.dumps(report, indent=4, sort_keys=True, default=str) + "\n")
