# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout role's bookkeeping on the controller (documented in plugins/modules/rollout_journal.py).

A thin adapter: arguments in, ``module_utils.rollout_journal`` (pure functions + the journal file), result out.
It runs no module, so the per-pod records of a batch are handled as Python objects in the worker process
instead of being templated through Ansible variables.

The arguments are validated and coerced with ``ActionBase.validate_argument_spec`` against the options of the
module documentation, read from it (``argument_spec_from_doc``): one table, so the string ``"false"`` is false,
``"3"`` is 3, and an unknown option or a wrong type fails the task the way a module's would.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile
import time

import yaml
from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.meshops.sidecarset.plugins.action.sidecar_upgrade import wait_background
from ansible_collections.meshops.sidecarset.plugins.module_utils.rollout_journal import (
    append_batch,
    batch_entry,
    batch_line,
    batch_records,
    count_batches,
    host_outcomes,
    read_journal,
    rollout_summary,
    stop_reason,
    timeline_path,
    write_report,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.timeline import timeline_svg
from ansible_collections.meshops.sidecarset.plugins.modules.rollout_journal import DOCUMENTATION

SPEC_KEYS = ("type", "required", "default", "choices", "elements", "aliases")


def argument_spec_from_doc(documentation):
    """The argument spec of a module's ``options`` documentation (type, required, default, choices, elements)."""
    options = yaml.safe_load(documentation)["options"]
    return {name: {key: value for key, value in option.items() if key in SPEC_KEYS} for name, option in options.items()}


ARGUMENT_SPEC = argument_spec_from_doc(DOCUMENTATION)


def _pods_of(value, option):
    """The per-pod results from a registered ``sidecar_upgrade`` result (looped or not) or a plain list."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        if "results" in value:
            return [pod for item in value["results"] or [] for pod in (item.get("pods") or [])]
        return list(value.get("pods") or [])
    if isinstance(value, list):
        return list(value)
    raise AnsibleActionFail("%s: expected a registered sidecar_upgrade result or a list of pods, got %s" % (option, type(value).__name__))


def _pod_key(pod):
    if isinstance(pod, dict):
        return "%s/%s" % (pod.get("namespace"), pod.get("name"))
    return str(pod)


class ActionModule(ActionBase):
    """start: a new journal; batch: record one batch, decide whether to stop; finish: summary and report;
    wait: wait for background sidecar_upgrade invocations, printing their progress."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _require(self, args, *names):
        missing = [name for name in names if args.get(name) in (None, "")]
        if missing:
            raise AnsibleActionFail("rollout_journal step=%s: missing %s" % (args.get("step"), ", ".join(missing)))

    def _start(self, args):
        directory = C.DEFAULT_LOCAL_TMP if os.path.isdir(C.DEFAULT_LOCAL_TMP) else None
        fd, path = tempfile.mkstemp(prefix="meshops-rollout-", suffix=".jsonl", dir=directory)
        os.close(fd)
        return {"journal": path, "started": time.time()}

    def _batch(self, args):
        self._require(args, "journal")
        if not args.get("batches") and not args.get("pods"):
            raise AnsibleActionFail("rollout_journal step=batch: set batches (or pods, for a single batch)")
        journal = args["journal"]
        done = count_batches(journal)
        cluster = str(args.get("cluster") or "default")
        call_batches = args.get("batches") or [args["pods"]]
        upgrade = args.get("upgrade")
        upgraded = _pods_of(upgrade, "upgrade")
        ran = (upgrade.get("batches") if isinstance(upgrade, dict) else None) or []
        now = time.time()
        if len(call_batches) > 1:
            # one invocation ran several batches: split its pods by their batch, time each batch as the module did
            parts = [([p for p in upgraded if p.get("batch") == item["index"]], call_batches[item["index"] - 1],
                      item.get("started", now), item.get("ended", now)) for item in ran]
        else:
            parts = [(upgraded, call_batches[0], float(args.get("started") or now), float(args.get("ended") or now))]
        position = int(args.get("position") or done + 1)
        total = int(args.get("total") or position + len(call_batches) - 1)
        # a reset call (health gates) only follows a single batch
        resets = _pods_of(args.get("reset"), "reset") if len(parts) == 1 else []
        result = {"stopped": "", "rollout_failed": False, "failed_pods": [], "msgs": [], "batch": {}}
        for offset, (pods, batch_pods, started, ended) in enumerate(parts):
            index = done + 1 + offset
            records = batch_records(pods, resets, args.get("gate_failed") or [], cluster, index)
            entry = batch_entry(records, index, cluster, str(args.get("kind") or "batch"), args.get("max_unavailable") or 0,
                                [_pod_key(p) for p in batch_pods], started, ended)
            append_batch(journal, entry, records)
            result["batch"] = dict((k, v) for k, v in entry.items() if k != "pods")
            result["failed_pods"].extend(r["pod"] for r in records if r.get("failed"))
            result["msgs"].append(batch_line(entry, records, position + offset, total))
            stopped, failed = stop_reason(entry, args.get("max_fail_percentage") or 0, bool(args.get("canary_stop")))
            if stopped:
                result.update(stopped=stopped, rollout_failed=failed)
                break
        module_stopped = upgrade.get("stopped") if isinstance(upgrade, dict) else ""
        if module_stopped and not result["stopped"]:
            # the window stopped for a reason of its own (its places held by failed and unavailable pods)
            result.update(stopped="%s on %s: %s" % (str(args.get("kind") or "batch"), cluster, module_stopped), rollout_failed=True)
            result["msgs"].append("[%s] stopped: %s" % (cluster, module_stopped))
        result["msg"] = "\n".join(result["msgs"])
        return result

    def _wait(self, args):
        jobs = []
        for item in args.get("jobs") or []:
            job = item.get("job") if isinstance(item, dict) else None
            if not isinstance(job, dict) or not job.get("results_file"):
                raise AnsibleActionFail("rollout_journal step=wait: each of jobs needs job, the registered result of a "
                                        "sidecar_upgrade task run with async and poll 0 (got %r)" % (item,))
            jobs.append({"label": str(item.get("cluster") or "default"), "results_file": job["results_file"],
                         "progress_file": job.get("progress_file") or "", "launched": job.get("launched") or 0,
                         "limit": int(item.get("limit") or 0)})
        results = wait_background(jobs, float(args.get("progress_interval") or 0))
        for job, result in zip(jobs, results):
            result["launched"] = job["launched"]
        failed = ["%s: %s" % (job["label"], result.get("msg") or "failed") for job, result in zip(jobs, results) if result.get("failed")]
        if failed:
            raise AnsibleActionFail("sidecar_upgrade failed on %s" % "; ".join(failed), result={"results": results})
        return {"results": results}

    def _finish(self, args, check_mode):
        self._require(args, "journal")
        batches, pods = read_journal(args["journal"])
        plans = args.get("plans") or []
        started = float(args.get("started") or time.time())
        summary = rollout_summary(plans, batches, pods, args.get("stopped") or "", args.get("failed"), time.time() - started)
        report_path = args.get("report_path") or ""
        written = False
        if report_path and not check_mode:
            write_report(report_path, {"result": summary, "plans": plans, "batches": batches, "pods": pods})
            write_report(timeline_path(report_path), timeline_svg(pods, "rollout of %s" % summary["sidecarset"]))
            written = True
        if not args.get("keep_journal") and os.path.exists(args["journal"]):
            os.unlink(args["journal"])
        result = {"rollout_result": summary, "report_path": report_path if written else "",
                  "timeline_path": timeline_path(report_path) if written else ""}
        if args.get("targets"):
            result["host_outcomes"] = host_outcomes(args["targets"], plans, pods, args.get("stopped") or "")
        return result

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        step = args["step"]  # required, one of start/batch/finish (the spec says so)
        try:
            if step == "start":
                result.update(self._start(args))
            elif step == "batch":
                result.update(self._batch(args))
            elif step == "wait":
                result.update(self._wait(args))
            else:
                result.update(self._finish(args, self._task.check_mode))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AnsibleActionFail("rollout_journal step=%s: %s" % (step, exc))
        # Bookkeeping of the run, not managed state: never a change.
        result["changed"] = False
        return result
