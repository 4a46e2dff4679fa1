# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sidecar_upgrade's action plugin in the background (async, poll 0) and wait_background, which waits for such
invocations and prints their progress labelled per cluster (rollout_cluster_parallelism)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
from unittest import mock

from ansible.plugins.action import ActionBase

from ansible_collections.meshops.sidecarset.plugins.action import sidecar_upgrade as action


def snapshot(done, total=4, in_flight=0, failed=0, events=()):
    return {"total": total, "done": done, "failed": failed, "in_flight": in_flight, "left": total - done - failed - in_flight,
            "elapsed": 1.0, "rate": 1.0, "eta": 1.0, "events": [{"msg": m} for m in events]}


def write(path, data):
    with open(str(path), "w") as handle:
        json.dump(data, handle)
    return str(path)


class Clock(object):
    """A fake monotonic clock; ``sleep`` advances it and runs the script step of that moment."""

    def __init__(self, script):
        self.now, self.script, self.sleeps = 0.0, dict(script), 0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps += 1
        self.now += seconds
        step = self.script.pop(self.sleeps, None)
        if step:
            step()


def job(tmp_path, label, progress=True, limit=0, launched=0.0):
    results = write(tmp_path / ("%s.job" % label), {"started": True, "finished": False, "ansible_job_id": label})
    progress_file = str(tmp_path / ("%s.progress" % label)) if progress else ""
    return {"label": label, "results_file": results, "progress_file": progress_file, "launched": launched, "limit": limit}


def test_waits_for_every_job_and_prints_each_ones_progress_labelled(tmp_path):
    a, b = job(tmp_path, "c0"), job(tmp_path, "c1")
    write(a["progress_file"], snapshot(0, in_flight=4))
    write(b["progress_file"], snapshot(1, in_flight=3))
    lines = []
    clock = Clock({
        2: lambda: write(a["progress_file"], snapshot(2, in_flight=2)),
        4: lambda: (write(a["progress_file"], snapshot(4, events=["batch 1 done"])),
                    write(a["results_file"], {"changed": True, "pods": [{"name": "web-0"}], "stopped": ""})),
        # c1 goes on alone for a while: its lines keep coming at the interval
        9: lambda: write(b["results_file"], {"changed": False, "pods": [], "stopped": "window full"}),
    })
    results = action.wait_background([a, b], 1.0, emit=lines.append, now=lambda: 100.0, sleep=clock.sleep, clock=clock)
    assert [r["changed"] for r in results] == [True, False] and results[1]["stopped"] == "window full"
    assert all(isinstance(r["ended"], float) for r in results)
    assert "[progress c0] 2/4 done, 2 in flight, 0 failed, 0 left, 1.0 pods/s, about 1.0 s left (1.0 s elapsed)" in lines
    assert "[progress c1] 1/4 done, 3 in flight, 0 failed, 0 left, 1.0 pods/s, about 1.0 s left (1.0 s elapsed)" in lines
    assert "[progress c0] batch 1 done" in lines and any(line.startswith("[progress c0] 4/4 done") for line in lines)
    # c1's lines after c0 ended: at least one per interval (0.5 s per sleep, interval 1 s)
    after = lines[lines.index("[progress c0] batch 1 done"):]
    assert sum(1 for line in after if line.startswith("[progress c1] ")) >= 2, lines
    # the job and progress files are gone
    assert not [p for p in (a["results_file"], b["results_file"], a["progress_file"], b["progress_file"]) if os.path.exists(p)]


def test_ended_is_when_the_result_was_written(tmp_path):
    a = job(tmp_path, "c0", progress=False)
    write(a["results_file"], {"changed": True})
    os.utime(a["results_file"], (1700000000.0, 1700000000.0))
    (result,) = action.wait_background([a], 10, emit=lambda line: None, now=lambda: 1800000000.0, sleep=lambda s: None)
    assert result["ended"] == 1700000000.0


def test_interval_zero_prints_nothing(tmp_path):
    a = job(tmp_path, "c0")
    write(a["progress_file"], snapshot(1, in_flight=3))
    lines = []
    clock = Clock({3: lambda: write(a["results_file"], {"changed": True})})
    action.wait_background([a], 0, emit=lines.append, sleep=clock.sleep, clock=clock)
    assert lines == []


def test_a_job_that_never_ends_fails_after_its_limit(tmp_path):
    a = job(tmp_path, "c0", limit=60, launched=1000.0)
    times = iter([1000.0, 1100.0, 1121.0])
    (result,) = action.wait_background([a], 10, emit=lambda line: None, now=lambda: next(times), sleep=lambda s: None, grace=60)
    assert result["failed"] and "time limit of 60 s" in result["msg"]


def test_the_wrappers_own_failure_is_a_result(tmp_path):
    a = job(tmp_path, "c0", progress=False)
    write(a["results_file"], {"failed": True, "msg": "Timeout exceeded", "child_pid": 7})
    (result,) = action.wait_background([a], 10, emit=lambda line: None, sleep=lambda s: None)
    assert result["failed"] and result["msg"] == "Timeout exceeded"


def plugin(async_val, transport="local"):
    task = mock.MagicMock()
    task.async_val = async_val
    task.check_mode = False
    connection = mock.MagicMock()
    connection.transport = transport
    return action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), None)


def test_in_the_background_the_progress_file_is_named_and_returned_not_printed():
    launched = {"ansible_job_id": "j1", "results_file": "/tmp/j1", "started": True, "finished": False}
    with mock.patch.object(ActionBase, "_execute_module", return_value=dict(launched)) as execute, \
            mock.patch.object(action, "ProgressPrinter") as printer:
        result = plugin(600)._execute_module(module_name="meshops.sidecarset.sidecar_upgrade",
                                             module_args={"progress_interval": 10}, task_vars={}, wrap_async=True)
    args = execute.call_args.kwargs["module_args"]
    assert args["progress_file"].endswith(".json") and not os.path.exists(args["progress_file"])
    assert execute.call_args.kwargs["wrap_async"] is True
    assert result["progress_file"] == args["progress_file"] and result["ansible_job_id"] == "j1"
    assert isinstance(result["launched"], float)
    printer.assert_not_called()  # whoever waits for the job prints (wait_background)


def test_in_the_background_without_progress():
    with mock.patch.object(ActionBase, "_execute_module", return_value={"ansible_job_id": "j1"}) as execute:
        result = plugin(600)._execute_module(module_args={"progress_interval": 0}, task_vars={}, wrap_async=True)
    assert "progress_file" not in execute.call_args.kwargs["module_args"] and result["progress_file"] == ""


def test_async_is_supported_by_sidecar_upgrade_only():
    from ansible_collections.meshops.sidecarset.plugins.action import sidecar_inject, sidecarset_info  # pylint: disable=import-outside-toplevel

    assert action.ActionModule._supports_async is True  # pylint: disable=protected-access
    assert sidecar_inject.ActionModule._supports_async is False  # pylint: disable=protected-access
    assert sidecarset_info.ActionModule._supports_async is False  # pylint: disable=protected-access
