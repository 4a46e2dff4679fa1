# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of sidecar_upgrade: the path resolution of sidecar_inject's action plugin, plus live progress.

Ansible prints a task's result only when the task ends, and an ``async_status`` loop prints nothing of its own
but "FAILED - RETRYING" lines; so while the module runs, this plugin reads the progress record the module rewrites
(``progress_file``, a temporary file it chooses) and prints a line through ``Display``: at each batch or stop event
at once, otherwise at least every ``progress_interval`` seconds. ``Display`` output of a worker reaches the
terminal and, under ansible-runner, a job event of its own (AWX's job output). Only when the module runs on the
controller (local connection, e.g. ``delegate_to: localhost``), where the file can be read.

In the background (``async`` with ``poll: 0``, the rollout role's ``rollout_cluster_parallelism``) the plugin only
names the ``progress_file`` and returns it, with ``launched`` (epoch seconds), beside the job id; whoever waits for
the job prints its progress: ``wait_background`` (the ``rollout_journal`` action's ``step=wait``), one labelled
``ProgressPrinter`` per job, which also returns each job's result and when it ended.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile
import threading
import time

from ansible.utils.display import Display

from ansible_collections.meshops.sidecarset.plugins.action.sidecar_inject import ActionModule as ResolvingAction
from ansible_collections.meshops.sidecarset.plugins.module_utils.window import progress_line

display = Display()


class ProgressPrinter(threading.Thread):
    """Prints the module's progress record: each new event at once, a line at least every ``interval`` seconds."""

    def __init__(self, path, interval, label, emit=display.display, clock=time.monotonic):
        super(ProgressPrinter, self).__init__(name="sidecar-upgrade-progress", daemon=True)
        self.path, self.interval, self.label, self.emit, self.clock = path, float(interval), label, emit, clock
        self.stopping = threading.Event()
        self.events_seen = 0
        self.last_line = clock()

    def poll(self):
        try:
            with open(self.path) as handle:
                snapshot = json.load(handle)
        except (OSError, ValueError):
            return
        events = snapshot.get("events") or []
        for event in events[self.events_seen:]:
            self.emit("%s%s" % (("[%s] " % self.label) if self.label else "", event["msg"]))
        if len(events) > self.events_seen or self.clock() - self.last_line >= self.interval:
            self.events_seen = len(events)
            self.emit(progress_line(snapshot, self.label))
            self.last_line = self.clock()

    def run(self):
        while not self.stopping.wait(0.5):
            self.poll()


def _progress_path():
    """A fresh path for a progress record (the module creates the file)."""
    fd, path = tempfile.mkstemp(prefix="meshops-progress-", suffix=".json")
    os.close(fd)
    os.unlink(path)
    return path


def _job_state(results_file):
    """``None`` while a background job runs, else its final result (as ``async_status`` reads the file: a record
    without ``started`` is the module's result, or the async wrapper's own failure)."""
    try:
        with open(results_file) as handle:
            data = json.load(handle)
    except ValueError:
        return None  # being written: the wrapper renames a complete file into place, so this is rare
    if not isinstance(data, dict):
        return {"failed": True, "msg": "unexpected content in %s" % results_file}
    if data.get("started") and not data.get("finished"):
        return None
    return data


def wait_background(jobs, interval, emit=display.display, now=time.time, sleep=time.sleep, clock=time.monotonic, grace=60.0):
    """Wait for background ``sidecar_upgrade`` jobs (``async``, ``poll: 0``) on the controller.

    ``jobs``: dicts with ``label`` (the cluster's name), ``results_file`` (the async job's), ``progress_file``
    (empty for none), ``launched`` (epoch seconds) and ``limit`` (the job's async time limit in seconds, 0 for none).
    While any runs, each job's progress is printed as the foreground call prints it, labelled
    ``[progress <label>]``: events at once, a line at least every ``interval`` seconds (0: nothing). Returns the
    jobs' final results in order, each with ``ended`` (when its results file was written, epoch seconds); the
    results and progress files are removed. A job still running ``grace`` seconds after its ``limit`` (its async
    wrapper died without a word) gets a failed result saying so. Raises ``OSError`` when a results file is gone.
    """
    printers = [ProgressPrinter(job["progress_file"], interval, "progress %s" % job["label"], emit, clock)
                if job.get("progress_file") and interval > 0 else None for job in jobs]
    results = [None] * len(jobs)
    pending = list(range(len(jobs)))
    while pending:
        for index in list(pending):
            job = jobs[index]
            state = _job_state(job["results_file"])
            if state is None and job.get("limit") and now() > float(job.get("launched") or 0) + float(job["limit"]) + grace:
                state = {"failed": True, "msg": "no result %d s after the time limit of %d s (the async wrapper of %s died?)"
                         % (grace, int(job["limit"]), job["results_file"])}
            if printers[index] is not None:
                printers[index].poll()
            if state is None:
                continue
            state = dict(state)
            state["ended"] = os.path.getmtime(job["results_file"]) if os.path.exists(job["results_file"]) else now()
            results[index] = state
            pending.remove(index)
            for path in (job["results_file"], job.get("progress_file")):
                if path and os.path.exists(path):
                    os.unlink(path)
        if pending:
            sleep(0.5)
    return results


class ActionModule(ResolvingAction):
    """Resolve paths (sidecar_inject's plugin), run the module, print its progress while it runs."""

    # async + poll 0: the rollout role's clusters in parallel (rollout_cluster_parallelism); see wait_background
    _supports_async = True

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):  # pylint: disable=arguments-differ
        args = dict(module_args or {})
        try:
            interval = float(args.get("progress_interval", 10) or 0)
        except (TypeError, ValueError):
            interval = 0  # the module's argument validation names the bad value
        local = getattr(self._connection, "transport", "") == "local"
        printable = interval > 0 and local and not self._task.check_mode and not args.get("progress_file")
        if kwargs.get("wrap_async"):
            if printable:
                args["progress_file"] = _progress_path()
            launched = time.time()
            result = super(ActionModule, self)._execute_module(module_name=module_name, module_args=args, task_vars=task_vars, **kwargs)
            result.update(progress_file=args.get("progress_file") or "", launched=launched)
            return result
        if not printable:
            return super(ActionModule, self)._execute_module(module_name=module_name, module_args=args, task_vars=task_vars, **kwargs)
        path = _progress_path()
        args["progress_file"] = path
        printer = ProgressPrinter(path, interval, "progress")
        printer.start()
        try:
            return super(ActionModule, self)._execute_module(module_name=module_name, module_args=args, task_vars=task_vars, **kwargs)
        finally:
            printer.stopping.set()
            printer.join()
            printer.poll()
            if os.path.exists(path):
                os.unlink(path)
