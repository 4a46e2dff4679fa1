# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive the in-place upgrade of a batch of pods: the thin loop around the pure planners.

``upgrade_pods`` works on many pods at once. For every pod it asks ``hotupgrade.plan_next`` what to do
next, from the pod as it is now (so a run interrupted at any point continues from where each pod is),
performs the write (one strategic-merge patch carrying the pod's resourceVersion; a 409 re-reads and
re-plans), and waits on a shared ``kube.PodWatch`` (one LIST + one WATCH for the whole batch, no polling
per pod). Phases per pod:

* **Upgrade**: the standby twin gets the new image and the version annotations in one write
  (ColdUpgrade sidecars: the image in place);
* **Migration**: wait until the new twin runs the new imageID, finished postStart and is ready;
* **Reset**: one write puts the old twin back on the empty image, then wait until kubelet applied it.

``phase="upgrade"`` stops after Migration, ``phase="reset"`` only resets pods whose migration finished,
``phase="all"`` does all three. A pod whose new twin fails (pull error, postStart failure, crash) or does
not become ready within ``timeout`` is reported failed and is never reset, so the old sidecar keeps
serving; with ``rollback=True`` the new twin goes back to the empty image and the previous annotations
are restored.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshops.sidecarset.plugins.module_utils.hotupgrade import (
    ACTION_FAIL,
    ACTION_NONE,
    ACTION_REFUSE,
    ACTION_RESET,
    ACTION_ROLLBACK,
    ACTION_UPGRADE,
    ACTION_WAIT,
    plan_next,
    plan_patch_body,
    plan_rollback,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError, read_modify_write
from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import (
    PHASE_DONE,
    PHASE_FAILED,
    PHASE_MIGRATED,
    PHASE_MISSING,
    PHASE_NOT_UPGRADABLE,
    PHASE_PLANNED,
    PHASE_ROLLED_BACK,
    pod_sidecar_phase,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import (
    pod_annotations,
    replaced_instances,
    rollback_pending,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.status import sidecar_snapshot as status_snapshot
from ansible_collections.meshops.sidecarset.plugins.module_utils.versions import next_version as batch_version, utcnow

PHASES = ("upgrade", "reset", "all")


def sidecar_snapshot(pod, sidecarset):
    """Working slots, images and versions of the SidecarSet's sidecars on ``pod`` (``status.sidecar_snapshot``, with
    the ``version_alt`` alias of ``versionalt`` for one release)."""
    return status_snapshot(pod, sidecarset, alias=True)


class PodProgress:
    """What happened to one pod during a run (becomes one entry of the module's ``pods`` result)."""

    def __init__(self, pod, sidecarset, started):
        meta = pod.get("metadata") or {}
        self.name = meta.get("name")
        self.namespace = meta.get("namespace")
        self.node = (pod.get("spec") or {}).get("nodeName")
        self.pod_ip = (pod.get("status") or {}).get("podIP")
        self.host_ip = (pod.get("status") or {}).get("hostIP")
        self.before = sidecar_snapshot(pod, sidecarset)
        self.after = self.before
        self.previous_annotations = dict(pod_annotations(pod))
        self.started = started
        self.marks = {}
        self.phase = pod_sidecar_phase(pod, sidecarset)[0]
        self.changed = False
        self.failed = False
        self.finished = False
        self.reason = ""
        self.writes = []
        self.busy = False
        self.evaluated = None
        self.recheck = False
        self.batch = None
        self.rollback_refused = ""
        self.rollback_replaced = {}

    def mark(self, label, when):
        self.marks.setdefault(label, when)

    def finish(self, phase, reason="", failed=False):
        self.phase = phase
        self.reason = reason
        self.failed = failed
        self.finished = True

    def timings(self):
        """Seconds spent in each phase: upgrade (write applied), migration, reset, total."""
        marks = self.marks
        out = {}
        if "upgrade_written" in marks:
            out["upgrade"] = round(marks["upgrade_written"] - self.started, 3)
        if "migrated" in marks:
            out["migration"] = round(marks["migrated"] - marks.get("upgrade_written", self.started), 3)
        if "done" in marks and "reset_written" in marks:
            out["reset"] = round(marks["done"] - marks.get("migrated", marks["reset_written"]), 3)
        if "end" in marks:
            out["total"] = round(marks["end"] - self.started, 3)
        return out

    def to_dict(self):
        return {
            "name": self.name,
            "namespace": self.namespace,
            "node": self.node,
            "pod_ip": self.pod_ip,
            "host_ip": self.host_ip,
            "working_before": self.before["working"],
            "working_after": self.after["working"],
            "images_before": self.before["images"],
            "images": self.after["images"],
            "versions": self.after["versions"],
            "phase": self.phase,
            "timings": self.timings(),
            "writes": self.writes,
            "changed": self.changed,
            "failed": self.failed,
            "reason": self.reason,
            "batch": self.batch,
        }


class BatchUpgrade:
    """One invocation: a SidecarSet, a batch of pods, a shared watch. See the module docstring."""

    def __init__(self, client, watch, sidecarset, names, phase="all", wait=True, timeout=300, rollback=False,
                 check_mode=False, concurrency=16, version=None, clock=time.monotonic, now=utcnow, poll=2.0):
        if phase not in PHASES:
            raise ValueError("phase must be one of %s" % ", ".join(PHASES))
        self.client = client
        self.watch = watch
        self.sidecarset = sidecarset
        self.names = list(dict.fromkeys(names))
        self.phase = phase
        self.wait = wait
        self.timeout = timeout
        self.rollback = rollback
        self.check_mode = check_mode
        self.concurrency = max(1, int(concurrency))
        self.clock = clock
        self.now = now
        self.poll = max(0.05, float(poll))
        pods = [watch.snapshot(n) for n in self.names]
        self.version = version if version is not None else batch_version([p for p in pods if p])
        self.progress = {}

    # -- decisions -----------------------------------------------------------------------------
    def _decide(self, state, pod):
        """Return the write action to perform for ``pod`` now, or ``None``; finish ``state`` when done."""
        if ACTION_ROLLBACK in state.writes:
            # rolled back: reported once kubelet runs the old twins again (or at once with wait=false)
            pending = rollback_pending(pod, self.sidecarset, state.rollback_replaced)
            if not pending or not self.wait:
                state.finish(PHASE_ROLLED_BACK, "rolled back: " + (state.reason or "failure") + ("; " + pending if pending else ""), failed=True)
            return None
        plan = plan_next(pod, self.sidecarset, self.version, self.now())
        action = plan.action
        now = self.clock()
        if action == ACTION_REFUSE:
            state.finish(PHASE_NOT_UPGRADABLE, plan.reason, failed=True)
        elif action == ACTION_NONE:
            state.mark("done", now)
            state.finish(PHASE_DONE, plan.reason if plan.reason != "done" else "")
        elif action == ACTION_UPGRADE:
            if self.phase == "reset":
                state.finish(pod_sidecar_phase(pod, self.sidecarset)[0], "not upgraded: phase=reset only resets pods whose migration finished")
            else:
                return action
        elif action == ACTION_RESET:
            state.mark("migrated", now)
            if self.phase == "upgrade":
                state.finish(PHASE_MIGRATED, "new sidecar serving; reset not requested (phase=upgrade)")
            else:
                return action
        elif action == ACTION_ROLLBACK:
            return action
        elif action == ACTION_FAIL:
            state.phase = plan.phase
            return self._fail(state, pod, plan.reason)
        elif action == ACTION_WAIT:
            state.phase = plan.phase
            if not self.wait and state.writes:
                state.finish(plan.phase, "not waiting (wait=false)")
        return None

    def _fail(self, state, pod, reason):
        if self.rollback and "rollback" not in state.writes:
            state.reason = reason
            return ACTION_ROLLBACK
        state.finish(PHASE_FAILED, reason + ("" if self.rollback else "; not reset, the old sidecar keeps serving"), failed=True)
        return None

    # -- writes --------------------------------------------------------------------------------
    def _compute(self, action, state):
        def compute(pod):
            if action == ACTION_ROLLBACK:
                # the annotations seen at the start are "previous" only when this run wrote the upgrade;
                # for a pod that failed in an earlier run the planner derives them from the pod
                previous = state.previous_annotations if ACTION_UPGRADE in state.writes else None
                plan = plan_rollback(pod, self.sidecarset, previous, self.now())
                state.rollback_refused = plan.reason if plan.action == ACTION_REFUSE else ""
                state.rollback_replaced = replaced_instances(pod, plan.containers)
            else:
                plan = plan_next(pod, self.sidecarset, self.version, self.now())
            if plan.action != action:
                return None
            return plan_patch_body(pod, plan)
        return compute

    def _write(self, action, state):
        pod = self.watch.snapshot(state.name)
        try:
            new_pod, wrote, attempts = read_modify_write(self.client, state.namespace, state.name, self._compute(action, state), pod=pod)
        except KubeError as exc:
            return action, state, None, exc
        return action, state, (new_pod if wrote else None), attempts

    def _record_write(self, action, state, new_pod):
        now = self.clock()
        state.writes.append(action)
        state.changed = True
        if action == ACTION_UPGRADE:
            state.mark("upgrade_written", now)
        elif action == ACTION_RESET:
            state.mark("reset_written", now)
        elif action == ACTION_ROLLBACK:
            state.mark("rollback_written", now)  # _decide reports it once kubelet has restored the old twins
        if new_pod is not None and not self.check_mode:
            self.watch.update(new_pod)
        if self.check_mode:
            state.finish(PHASE_PLANNED, "check mode: would %s" % action)

    # -- loop ----------------------------------------------------------------------------------
    def run(self):
        """Run until every pod is finished or the timeout passes; return the list of ``PodProgress``."""
        start = self.clock()
        deadline = start + self.timeout
        for name in self.names:
            pod = self.watch.snapshot(name)
            if pod is None:
                state = PodProgress({"metadata": {"name": name, "namespace": self.watch.namespace}}, self.sidecarset, start)
                state.finish(PHASE_MISSING, "pod not found in namespace %s" % self.watch.namespace, failed=True)
            else:
                state = PodProgress(pod, self.sidecarset, start)
            self.progress[name] = state
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = []
            seen = -1
            next_poll = start + self.poll
            while True:
                for fut in [f for f in futures if f.done()]:
                    futures.remove(fut)
                    action, state, new_pod, info = fut.result()
                    state.busy = False
                    state.recheck = True
                    if isinstance(info, KubeError):
                        state.finish(state.phase, "%s write failed: %s" % (action, info), failed=True)
                    elif new_pod is not None or self.check_mode:
                        self._record_write(action, state, new_pod)
                    elif action == ACTION_ROLLBACK and state.rollback_refused:
                        state.finish(PHASE_FAILED, "%s; rollback refused: %s" % (state.reason or "failure", state.rollback_refused), failed=True)
                pending = [s for s in self.progress.values() if not s.finished]
                if not pending:
                    break
                fatal = self.watch.fatal_error()
                if fatal is not None and not futures:
                    for state in pending:
                        state.finish(state.phase, "watching the pods of namespace %s failed: %s" % (self.watch.namespace, fatal), failed=True)
                    break
                if self.clock() >= deadline and not futures:
                    for state in pending:
                        pod = self.watch.snapshot(state.name)
                        reason = "timed out after %ss in phase %s" % (self.timeout, state.phase)
                        if self.watch.error is not None:
                            reason += " (the pod watch is failing: %s)" % self.watch.error
                        if ACTION_ROLLBACK in state.writes:
                            left = rollback_pending(pod, self.sidecarset, state.rollback_replaced) if pod is not None else "pod disappeared"
                            state.finish(PHASE_FAILED, "rolled back (%s), but not restored in time: %s" % (state.reason or "failure", left),
                                         failed=True)
                        elif self.rollback and pod is not None and "upgrade" in state.writes:
                            state.reason = reason
                            futures.append(self._submit(pool, ACTION_ROLLBACK, state))
                        else:
                            state.finish(state.phase, reason + "; not reset, the old sidecar keeps serving", failed=True)
                    if not futures and all(s.finished for s in pending):
                        break
                    # the rollbacks just started: time for the writes and for kubelet to run the old twins again
                    deadline = self.clock() + max(30, self.timeout)
                seen = self.watch.changes
                dirty = self.watch.take_dirty()
                if self.clock() >= next_poll:
                    # a periodic full re-check, in case the watch missed something
                    dirty = set(self.progress)
                    next_poll = self.clock() + self.poll
                for state in pending:
                    if state.busy or state.finished:
                        continue
                    if state.evaluated is not None and not state.recheck and state.name not in dirty:
                        continue  # nothing changed on this pod since the last decision
                    pod = self.watch.snapshot(state.name)
                    if pod is None:
                        state.finish(PHASE_MISSING, "pod disappeared", failed=True)
                        continue
                    state.evaluated, state.recheck = pod["metadata"].get("resourceVersion"), False
                    action = self._decide(state, pod)
                    if action:
                        futures.append(self._submit(pool, action, state))
                if all(s.finished for s in self.progress.values()) and not futures:
                    break
                if not any(f.done() for f in futures):
                    self.watch.wait_for_change(seen, max(0.01, min(self.poll, next_poll - self.clock(), deadline - self.clock())))
        end = self.clock()
        for state in self.progress.values():
            state.mark("end", end)
            pod = self.watch.snapshot(state.name)
            if pod is not None:
                state.after = sidecar_snapshot(pod, self.sidecarset)
        return [self.progress[n] for n in self.names]

    def _submit(self, pool, action, state):
        """Start a write in the pool; its completion wakes the loop through the watch."""
        state.busy = True
        future = pool.submit(self._write, action, state)
        future.add_done_callback(lambda dummy: self.watch.notify())
        return future


def summarize(states):
    """Counts for the module result: total, changed, done, failed, by phase."""
    summary = {"total": len(states), "changed": 0, "done": 0, "failed": 0, "phases": {}}
    for state in states:
        summary["changed"] += 1 if state.changed else 0
        summary["failed"] += 1 if state.failed else 0
        summary["done"] += 1 if state.phase == "done" else 0
        summary["phases"][state.phase] = summary["phases"].get(state.phase, 0) + 1
    return summary
