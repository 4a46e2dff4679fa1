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


class ActionModule(ResolvingAction):
    """Resolve paths (sidecar_inject's plugin), run the module, print its progress while it runs."""

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):  # pylint: disable=arguments-differ
        args = dict(module_args or {})
        try:
            interval = float(args.get("progress_interval", 10) or 0)
        except (TypeError, ValueError):
            interval = 0  # the module's argument validation names the bad value
        local = getattr(self._connection, "transport", "") == "local"
        if interval <= 0 or not local or self._task.check_mode or args.get("progress_file"):
            return super(ActionModule, self)._execute_module(module_name=module_name, module_args=args, task_vars=task_vars, **kwargs)
        fd, path = tempfile.mkstemp(prefix="meshops-progress-", suffix=".json")
        os.close(fd)
        os.unlink(path)
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
