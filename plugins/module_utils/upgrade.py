# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one upgrade driver: the thin loop around the pure planners (``hotupgrade``, ``podstate``).

``UpgradeDriver(client, watches, sidecarset, options).run(groups)`` upgrades pods in place. ``groups`` are
lists of ``(namespace, name)``, run one after another (lock-step batches: a group starts when every pod of the
previous one has finished); inside a group at most ``options.window`` pods are in flight at any moment
(0: all of them at once), the next pod starting as soon as one finishes, as Kruise's controller keeps
``maxUnavailable`` (``sidecarset_strategy.go``: ``calculateUpgradeCount``; here continuously, not per round).
For every pod the driver asks ``hotupgrade.plan_next`` what to do next, from the pod as it is now (so a run
interrupted at any point continues from where each pod is), performs the write (one strategic-merge patch
carrying the resourceVersion; a 409 re-reads and re-plans) and follows the pods with one ``kube.PodWatch`` per
namespace (one LIST + one WATCH, no polling per pod). Per pod: Upgrade, Migration, the optional health gate
(``options.health``: an HTTP GET with retries) and Reset, as docs/design.md ("Hot upgrade of one pod") describes.

The loop is three small steps, repeated until every pod has finished: ``harvest`` (the writes and gates that
finished), ``expire`` (pods over their ``timeout``: failed, or rolled back with ``rollback``), ``dispatch`` (start
the next pods the window allows, then the next write of every pod that changed). The stop rule is the driver's
(``window.over_fail_limit``): after a group whose failures exceed ``max_fail_percentage`` of the group the next
groups are not started; inside a windowed group no more pods start once the failures exceed that percentage of
the group's pods. A pod whose new twin fails is never reset (the old sidecar keeps serving); with ``rollback`` its
new twin goes back to the empty image and the previous annotations are restored.

``run_sidecar_upgrade(module, client)`` is the ``sidecar_upgrade`` module: options in, driver, result out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshops.sidecarset.plugins.module_utils.batch import is_unavailable
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError
from ansible_collections.meshops.sidecarset.plugins.module_utils.files import write as write_file
from ansible_collections.meshops.sidecarset.plugins.module_utils.hotupgrade import plan_next, plan_patch_body, plan_rollback
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError, PodWatch, read_modify_write
from ansible_collections.meshops.sidecarset.plugins.module_utils.modrunner import load_one_sidecarset
from ansible_collections.meshops.sidecarset.plugins.module_utils.rollout_journal import GATE_FAILED_REASON
from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import (
    ACTION_FAIL,
    ACTION_NONE,
    ACTION_REFUSE,
    ACTION_RESET,
    ACTION_ROLLBACK,
    ACTION_UPGRADE,
    ACTION_WAIT,
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
    is_pod_ready,
    pod_annotations,
    replaced_instances,
    rollback_pending,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.status import sidecar_snapshot
from ansible_collections.meshops.sidecarset.plugins.module_utils.versions import next_version as batch_version, utcnow
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import selector_to_string
from ansible_collections.meshops.sidecarset.plugins.module_utils.window import over_fail_limit, progress, window_capacity

PHASES = ("upgrade", "reset", "all")
ACTION_GATE = "gate"          # the driver's own step: the per-pod health check before the reset


class Options:
    """The driver's options, one object. ``health``: ``None`` or ``{url, status, retries, delay}`` (``url`` with
    the per-pod placeholders ``{name} {namespace} {pod_ip} {host_ip} {node}``)."""

    DEFAULTS = dict(phase="all", wait=True, timeout=300, rollback=False, check_mode=False, concurrency=32, version=None,
                    poll=2.0, max_fail_percentage=0, window=0, health=None)

    def __init__(self, **values):
        unknown = set(values) - set(self.DEFAULTS)
        if unknown:
            raise TypeError("unknown upgrade options: %s" % ", ".join(sorted(unknown)))
        for key, default in self.DEFAULTS.items():
            setattr(self, key, values.get(key, default))
        if self.phase not in PHASES:
            raise ParameterError("phase must be one of %s, got %r" % (", ".join(PHASES), self.phase))
        if int(self.window or 0) < 0:
            raise ParameterError("window must be 0 (no window) or more, got %r" % (self.window,))
        self.concurrency = max(1, int(self.concurrency))
        self.poll = max(0.05, float(self.poll))
        self.window = int(self.window or 0)


class PodProgress:
    """What happened to one pod (one entry of the module's ``pods`` result); no scheduler state."""

    def __init__(self, pod, sidecarset, started, wall):
        meta = pod.get("metadata") or {}
        self.name = meta.get("name")
        self.namespace = meta.get("namespace")
        self.node = (pod.get("spec") or {}).get("nodeName")
        self.pod_ip = (pod.get("status") or {}).get("podIP")
        self.host_ip = (pod.get("status") or {}).get("hostIP")
        self.before = self.after = sidecar_snapshot(pod, sidecarset, alias=True) if pod.get("spec") else {"working": {}, "images": {}, "versions": {}}
        self.started, self.wall = started, wall
        self.marks = {}
        self.phase = pod_sidecar_phase(pod, sidecarset)[0] if pod.get("spec") else PHASE_MISSING
        self.changed = self.failed = self.finished = False
        self.reason = ""
        self.writes = []
        self.batch = None

    def mark(self, label, when):
        self.marks.setdefault(label, when)

    def finish(self, phase, reason="", failed=False):
        self.phase, self.reason, self.failed, self.finished = phase, reason, failed, True

    def timings(self):
        """Seconds spent in each phase: upgrade (write applied), migration, reset (with the gate), total."""
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
            "name": self.name, "namespace": self.namespace, "node": self.node, "pod_ip": self.pod_ip, "host_ip": self.host_ip,
            "working_before": self.before["working"], "working_after": self.after["working"],
            "images_before": self.before["images"], "images": self.after["images"], "versions": self.after["versions"],
            "phase": self.phase, "started_at": round(self.wall, 3), "timings": self.timings(), "writes": self.writes,
            "changed": self.changed, "failed": self.failed, "reason": self.reason, "batch": self.batch,
        }


class _Slot:
    """The driver's bookkeeping for one pod (never reported)."""

    def __init__(self, deadline, previous_annotations, counts):
        self.deadline = deadline
        self.previous_annotations = previous_annotations
        self.counts = counts          # holds a window slot (False: the pod was not ready before, as Kruise counts)
        self.busy = False
        self.evaluated = None
        self.recheck = False
        self.gated = False
        self.rollback_refused = ""
        self.rollback_replaced = {}


def fill_url(url, state):
    """The health URL for one pod (plain placeholders, as the rollout role documents them)."""
    for key, value in (("{name}", state.name), ("{namespace}", state.namespace), ("{pod_ip}", state.pod_ip),
                       ("{host_ip}", state.host_ip), ("{node}", state.node)):
        url = url.replace(key, value or "")
    return url


def http_gate(url, status=200, retries=3, delay=2.0, sleep=time.sleep):
    """GET ``url`` up to ``retries`` times, ``delay`` s apart; return ``(ok, detail)``."""
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel
    detail = ""
    for attempt in range(max(1, int(retries))):
        if attempt:
            sleep(float(delay))
        try:
            code = open_url(url, timeout=10, validate_certs=False).getcode()
        except Exception as exc:  # pylint: disable=broad-except
            code = getattr(exc, "code", None)
            detail = "%s: %s" % (url, getattr(exc, "reason", exc))
        else:
            detail = "%s: HTTP %s" % (url, code)
        if code == int(status):
            return True, detail
    return False, detail


class UpgradeDriver:
    """One run over a set of pods (see the module docstring)."""

    def __init__(self, client, watches, sidecarset, options, clock=time.monotonic, now=utcnow, gate=http_gate,
                 report=None, condition=None):
        self.client = client
        self.watches = watches
        self.sidecarset = sidecarset
        self.options = options
        self.clock, self.now, self.gate, self.report = clock, now, gate, report
        self.condition = condition or threading.Condition()
        pods = [p for w in watches.values() for p in w.pods.values()]
        self.version = options.version if options.version is not None else batch_version(pods)
        self.states, self.slots = {}, {}
        self.futures = []
        self.events = []
        self.started = clock()
        self.next_report = 0.0
        self.totals = {"total": 0}

    # -- decisions -----------------------------------------------------------------------------
    def _decide(self, state, slot, pod):
        """The next action for ``pod`` (a write or the gate), or ``None``; finish ``state`` when done."""
        opts = self.options
        if ACTION_ROLLBACK in state.writes:
            # rolled back: reported once kubelet runs the old twins again (or at once with wait=false)
            pending = rollback_pending(pod, self.sidecarset, slot.rollback_replaced)
            if not pending or not opts.wait:
                state.finish(PHASE_ROLLED_BACK, "rolled back: " + (state.reason or "failure") + ("; " + pending if pending else ""), failed=True)
            return None
        plan = plan_next(pod, self.sidecarset, self.version, self.now())
        action, now = plan.action, self.clock()
        if action == ACTION_REFUSE:
            state.finish(PHASE_NOT_UPGRADABLE, plan.reason, failed=True)
        elif action == ACTION_NONE:
            state.mark("done", now)
            state.finish(PHASE_DONE, plan.reason if plan.reason != "done" else "")
        elif action == ACTION_UPGRADE:
            if opts.phase != "reset":
                return action
            state.finish(pod_sidecar_phase(pod, self.sidecarset)[0], "not upgraded: phase=reset only resets pods whose migration finished")
        elif action == ACTION_RESET:
            state.mark("migrated", now)
            if opts.phase == "upgrade":
                state.finish(PHASE_MIGRATED, "new sidecar serving; reset not requested (phase=upgrade)")
            elif opts.health and not slot.gated and not opts.check_mode:
                return ACTION_GATE
            else:
                return action
        elif action == ACTION_ROLLBACK:
            return action
        elif action == ACTION_FAIL:
            state.phase = plan.phase
            return self._fail(state, plan.reason)
        elif action == ACTION_WAIT:
            state.phase = plan.phase
            if not opts.wait and state.writes:
                state.finish(plan.phase, "not waiting (wait=false)")
        return None

    def _fail(self, state, reason):
        if self.options.rollback and ACTION_ROLLBACK not in state.writes:
            state.reason = reason
            return ACTION_ROLLBACK
        state.finish(PHASE_FAILED, reason + ("" if self.options.rollback else "; not reset, the old sidecar keeps serving"), failed=True)
        return None

    # -- work in the pool ----------------------------------------------------------------------
    def _compute(self, action, state, slot):
        def compute(pod):
            if action == ACTION_ROLLBACK:
                # the annotations seen at the start are "previous" only when this run wrote the upgrade;
                # for a pod that failed in an earlier run the planner derives them from the pod
                previous = slot.previous_annotations if ACTION_UPGRADE in state.writes else None
                plan = plan_rollback(pod, self.sidecarset, previous, self.now())
                slot.rollback_refused = plan.reason if plan.action == ACTION_REFUSE else ""
                slot.rollback_replaced = replaced_instances(pod, plan.containers)
            else:
                plan = plan_next(pod, self.sidecarset, self.version, self.now())
            return plan_patch_body(pod, plan) if plan.action == action else None
        return compute

    def _work(self, action, state, slot):
        """Runs in the pool: the gate, or one write; returns ``(action, state, slot, outcome)``."""
        if action == ACTION_GATE:
            health = self.options.health
            return action, state, slot, self.gate(fill_url(health["url"], state), health.get("status", 200),
                                                  health.get("retries", 3), health.get("delay", 2))
        watch = self.watches[state.namespace]
        try:
            new_pod, wrote, dummy = read_modify_write(self.client, state.namespace, state.name, self._compute(action, state, slot),
                                                      pod=watch.snapshot(state.name))
        except KubeError as exc:
            return action, state, slot, exc
        return action, state, slot, (new_pod if wrote else None)

    def _submit(self, pool, action, state, slot):
        slot.busy = True
        future = pool.submit(self._work, action, state, slot)
        future.add_done_callback(lambda dummy: self.watches[state.namespace].notify())
        self.futures.append(future)

    # -- the three steps -----------------------------------------------------------------------
    def harvest(self):
        """Take the results of the writes and gates that finished."""
        for future in [f for f in self.futures if f.done()]:
            self.futures.remove(future)
            action, state, slot, outcome = future.result()
            slot.busy, slot.recheck = False, True
            if action == ACTION_GATE:
                ok, detail = outcome
                slot.gated = ok
                if not ok:
                    state.finish(PHASE_FAILED, "%s (%s)" % (GATE_FAILED_REASON, detail), failed=True)
            elif isinstance(outcome, KubeError):
                state.finish(state.phase, "%s write failed: %s" % (action, outcome), failed=True)
            elif outcome is not None or self.options.check_mode:
                self._record_write(action, state, outcome)
            elif action == ACTION_ROLLBACK and slot.rollback_refused:
                state.finish(PHASE_FAILED, "%s; rollback refused: %s" % (state.reason or "failure", slot.rollback_refused), failed=True)

    def _record_write(self, action, state, new_pod):
        now = self.clock()
        state.writes.append(action)
        state.changed = True
        state.mark({ACTION_UPGRADE: "upgrade_written", ACTION_RESET: "reset_written"}.get(action, "rollback_written"), now)
        if self.options.check_mode:
            state.finish(PHASE_PLANNED, "check mode: would %s" % action)
        elif new_pod is not None:
            self.watches[state.namespace].update(new_pod)

    def expire(self, pool, active):
        """Fail (or roll back) the pods over their deadline, and every pod of a namespace whose watch cannot work."""
        now = self.clock()
        for key in active:
            state, slot = self.states[key], self.slots[key]
            if state.finished or slot.busy:
                continue
            watch = self.watches[state.namespace]
            fatal = watch.fatal_error()
            if fatal is not None:
                state.finish(state.phase, "watching the pods of namespace %s failed: %s" % (state.namespace, fatal), failed=True)
                continue
            if now < slot.deadline:
                continue
            pod = watch.snapshot(state.name)
            reason = "timed out after %ss in phase %s" % (self.options.timeout, state.phase)
            if watch.error is not None:
                reason += " (the pod watch is failing: %s)" % watch.error
            if ACTION_ROLLBACK in state.writes:
                left = rollback_pending(pod, self.sidecarset, slot.rollback_replaced) if pod is not None else "pod disappeared"
                state.finish(PHASE_FAILED, "rolled back (%s), but not restored in time: %s" % (state.reason or "failure", left), failed=True)
            elif self.options.rollback and pod is not None and ACTION_UPGRADE in state.writes:
                state.reason = reason
                # time for the write and for kubelet to run the old twins again
                slot.deadline = now + max(30, self.options.timeout)
                self._submit(pool, ACTION_ROLLBACK, state, slot)
            else:
                state.finish(state.phase, reason + "; not reset, the old sidecar keeps serving", failed=True)

    def _admit(self, key, index):
        namespace, name = key
        pod = self.watches[namespace].snapshot(name)
        now = self.clock()
        state = PodProgress(pod or {"metadata": {"name": name, "namespace": namespace}}, self.sidecarset, now, time.time())
        state.batch = index
        # a place in the window: every pod but one that was not ready before and is not in flight (Kruise upgrades
        # those without counting them); a pod another run has in flight is unavailable and counts
        counts = pod is not None and (is_pod_ready(pod, self.sidecarset) or is_unavailable(pod, self.sidecarset))
        self.states[key] = state
        self.slots[key] = _Slot(now + self.options.timeout, dict(pod_annotations(pod)) if pod else {}, counts)
        if pod is None:
            state.finish(PHASE_MISSING, "pod not found in namespace %s" % namespace, failed=True)

    def _unavailable_outside(self, keys, started, found):
        """Update ``found`` (a set of keys) for ``keys``: matched pods not started by this group (other pods, and pods
        of its queue, e.g. in flight in another run) that are unavailable now, as Kruise counts them."""
        for key in keys:
            pod = None if key in started else self.watches[key[0]].snapshot(key[1])
            if pod is not None and is_unavailable(pod, self.sidecarset):
                found.add(key)
            else:
                found.discard(key)
        return found

    def _all_keys(self):
        keys = []
        for namespace, watch in self.watches.items():
            with self.condition:
                keys.extend((namespace, name) for name in watch.pods)
        return keys

    def dispatch(self, pool, queue, running, dirty, free, index):
        """Start up to ``free`` pods from the front of ``queue``, then the next step of every running pod that changed."""
        while queue and free > 0:
            key = queue.pop(0)
            self._admit(key, index)
            running.append(key)
            free -= 1 if self.slots[key].counts else 0
        for key in running:
            state, slot = self.states[key], self.slots[key]
            if slot.busy or state.finished:
                continue
            if slot.evaluated is not None and not slot.recheck and key not in dirty:
                continue  # nothing changed on this pod since the last decision
            pod = self.watches[state.namespace].snapshot(state.name)
            if pod is None:
                state.finish(PHASE_MISSING, "pod disappeared", failed=True)
                continue
            slot.evaluated, slot.recheck = pod["metadata"].get("resourceVersion"), False
            action = self._decide(state, slot, pod)
            if action:
                self._submit(pool, action, state, slot)

    # -- the loop ------------------------------------------------------------------------------
    def _changes(self):
        return sum(w.changes for w in self.watches.values())

    def _wait(self, seen, timeout):
        deadline = time.monotonic() + timeout
        with self.condition:
            while self._changes() == seen and not any(f.done() for f in self.futures):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.condition.wait(remaining)

    def _dirty(self):
        return set((ns, name) for ns, w in self.watches.items() for name in w.take_dirty())

    def event(self, message):
        self.events.append({"time": round(time.time(), 3), "msg": message})
        self._report(force=True)

    def _report(self, force=False):
        if self.report is None or (not force and self.clock() < self.next_report):
            return
        self.next_report = self.clock() + 1.0
        finished = [s for s in self.states.values() if s.finished]
        failed = sum(1 for s in finished if s.failed)
        self.report(progress(self.totals["total"], len(finished) - failed, failed, len(self.states) - len(finished),
                             self.started, self.clock(), self.events))

    def run_group(self, pool, keys, index):
        """Run one group to its end; return ``(states, stopped)``."""
        opts = self.options
        window = 0 if opts.check_mode else opts.window
        queue = list(dict.fromkeys(keys))
        size = len(queue)
        running, ended = [], []
        holding = failed = 0   # finished pods still holding a window slot (failed, not rolled back); failed pods
        stopped = ""
        next_poll = self.clock() + opts.poll
        started = set()
        stalled = 0
        outside = self._unavailable_outside(self._all_keys(), started, set()) if window else set()
        while True:
            self.harvest()
            seen = self._changes()
            self.expire(pool, running)
            for key in [k for k in running if self.states[k].finished]:
                running.remove(key)
                ended.append(key)
                state = self.states[key]
                state.mark("end", self.clock())
                failed += 1 if state.failed else 0
                holding += 1 if self.slots[key].counts and state.phase == PHASE_FAILED else 0
            if window and queue and not stopped and over_fail_limit(failed, size, opts.max_fail_percentage):
                stopped = "%d of %d pods failed (max_fail_percentage %d%%); %d pods not started" % (
                    failed, size, opts.max_fail_percentage, len(queue))
                self.event("stop: " + stopped)
            dirty = self._dirty()
            if window:
                self._unavailable_outside([k for k in dirty if k not in started], started, outside)
            if self.clock() >= next_poll:
                dirty = set(running)  # a periodic full re-check, in case the watch missed something
                next_poll = self.clock() + opts.poll
                if window:
                    outside = self._unavailable_outside(self._all_keys(), started, set())
            occupying = holding + sum(1 for key in running if self.slots[key].counts)
            free = 0 if stopped else window_capacity(window, occupying, len(outside))
            admitted = len(running)
            self.dispatch(pool, queue, running, dirty, free, index)
            for key in running[admitted:]:
                started.add(key)
                outside.discard(key)
            self._report()
            if not self.futures and all(self.states[k].finished for k in running):
                if not queue or stopped:
                    break
                # nothing in flight and no place: our own failed pods hold the window (stop now), or other
                # unavailable pods do (another run's: wait for them, up to the timeout)
                stalled = stalled or self.clock()
                if free == 0 and (holding >= window or self.clock() - stalled >= opts.timeout):
                    stopped = "the maxUnavailable window (%d) is held by %d failed and %d other unavailable pods; %d pods not started" % (
                        window, holding, len(outside), len(queue))
                    self.event("stop: " + stopped)
                    break
            else:
                stalled = 0
            if any(self.states[k].finished for k in running):
                continue  # a pod just finished: free its place in the window now, not at the next event
            if not any(f.done() for f in self.futures):
                self._wait(seen, max(0.01, min(opts.poll, next_poll - self.clock())))
        end = self.clock()
        for key in ended + running:
            state = self.states[key]
            state.mark("end", end)
            pod = self.watches[state.namespace].snapshot(state.name)
            if pod is not None:
                state.after = sidecar_snapshot(pod, self.sidecarset, alias=True)
        return [self.states[k] for k in dict.fromkeys(keys) if k in self.states], stopped

    def run(self, groups):
        """Run the groups one after another; return ``(states, entries, stopped)`` (``entries``: one per group run)."""
        opts = self.options
        self.totals["total"] = sum(len(g) for g in groups)
        states, entries, stopped = [], [], ""
        with ThreadPoolExecutor(max_workers=opts.concurrency) as pool:
            for index, keys in enumerate(groups, 1):
                started = time.time()
                group_states, stopped = self.run_group(pool, keys, index)
                states.extend(group_states)
                ended = time.time()
                failed = sum(1 for s in group_states if s.failed)
                entries.append({"index": index, "pods": ["%s/%s" % (s.namespace, s.name) for s in group_states],
                                "started": round(started, 3), "ended": round(ended, 3), "seconds": round(ended - started, 3),
                                "summary": summarize(group_states)})
                if len(groups) > 1:
                    self.event("batch %d/%d: %d pods, %d failed, %.1f s" % (index, len(groups), len(group_states), failed, ended - started))
                if not stopped and index < len(groups) and over_fail_limit(failed, len(group_states), opts.max_fail_percentage):
                    stopped = "batch %d: %d of %d pods failed (max_fail_percentage %d%%); %d later batches not started" % (
                        index, failed, len(group_states), opts.max_fail_percentage, len(groups) - index)
                    self.event("stop: " + stopped)
                if stopped:
                    break
        self._report(force=True)
        return states, entries, stopped


def summarize(states):
    """Counts for the module result: total, changed, done, failed, by phase."""
    summary = {"total": len(states), "changed": 0, "done": 0, "failed": 0, "phases": {}}
    for state in states:
        summary["changed"] += 1 if state.changed else 0
        summary["failed"] += 1 if state.failed else 0
        summary["done"] += 1 if state.phase == PHASE_DONE else 0
        summary["phases"][state.phase] = summary["phases"].get(state.phase, 0) + 1
    return summary


# -- the module ----------------------------------------------------------------------------------

def pod_keys(pods, namespace):
    """The ``pods`` option as ``[(namespace, name)]`` (order kept)."""
    keys = []
    for item in pods:
        if isinstance(item, dict):
            name, ns = item.get("name"), item.get("namespace") or namespace
        elif isinstance(item, str) and "/" in item:
            ns, name = item.split("/", 1)
        else:
            name, ns = item, namespace
        if not name or not isinstance(name, str):
            raise ParameterError("pods: %r is not a pod name, NAMESPACE/NAME or {name, namespace}" % (item,))
        if not ns:
            raise ParameterError("pods: %r has no namespace and the namespace option is not set" % (item,))
        keys.append((ns, name))
    return keys


def requested_groups(params):
    """The groups to run, each a list of ``(namespace, name)``, or ``None`` for every matching pod of ``namespace``."""
    if params["batches"] is not None:
        if params["pods"] is not None:
            raise ParameterError("pods and batches are mutually exclusive")
        for index, batch in enumerate(params["batches"]):
            if not isinstance(batch, list):
                raise ParameterError("batches[%d]: expected a list of pods, got %r" % (index, batch))
        return [pod_keys(batch, params["namespace"]) for batch in params["batches"]]
    if params["pods"] is not None:
        return [pod_keys(params["pods"], params["namespace"])]
    if params["namespace"]:
        return None
    raise ParameterError("set namespace, or list the pods as NAMESPACE/NAME")


class ProgressFile:
    """Rewrites ``path`` with the latest progress record (atomically), for the action plugin to print."""

    def __init__(self, path):
        self.path = path

    def __call__(self, snapshot):
        write_file(self.path, json.dumps(snapshot), mode=0o600, durable=False)


def options_from_params(params, check_mode):
    """The driver's options from the module's parameters."""
    health = None
    if params.get("health_url"):
        health = {"url": params["health_url"], "status": params["health_status"], "retries": params["health_retries"],
                  "delay": params["health_delay"]}
    return Options(phase=params["phase"], wait=params["wait"] and not check_mode, timeout=params["timeout"],
                   rollback=params["rollback"], check_mode=check_mode, concurrency=params["concurrency"], version=params["version"],
                   poll=params["poll"], max_fail_percentage=params["max_fail_percentage"], window=params["window"], health=health)


def run_sidecar_upgrade(module, client):
    """The ``sidecar_upgrade`` module: watches, the driver, the result (documented in the module)."""
    params = module.params
    sidecarset = load_one_sidecarset(params["sidecarset"])
    selector = params["label_selector"]
    if selector is None:
        selector = selector_to_string((sidecarset.get("spec") or {}).get("selector"))
    groups = requested_groups(params)
    options = options_from_params(params, module.check_mode)
    multi = params["batches"] is not None
    condition = threading.Condition()
    namespaces = [params["namespace"]] if groups is None else list(dict.fromkeys(ns for group in groups for ns, name in group))
    watches = {}
    try:
        for namespace in namespaces:
            watches[namespace] = PodWatch(client, namespace, selector, condition=condition).start()
        if groups is None:
            groups = [[(params["namespace"], name) for name in sorted(watches[params["namespace"]].pods)]]
        report = ProgressFile(params["progress_file"]) if params.get("progress_file") else None
        driver = UpgradeDriver(client, watches, sidecarset, options, report=report, condition=condition)
        states, entries, stopped = driver.run(groups)
    finally:
        for watch in watches.values():
            watch.stop()
    if not multi:
        for state in states:
            state.batch = None
    pods = [state.to_dict() for state in states]
    requests = dict(client.requests)
    requests["total"] = client.request_count
    result = dict(changed=any(state.changed for state in states), pods=pods, summary=summarize(states),
                  batches=entries if multi else [], stopped=stopped, version=driver.version, api_requests=requests,
                  not_started=sum(len(g) for g in groups) - len(states))
    if module._diff:
        result["diff"] = dict(
            before={p["name"]: {"working": p["working_before"], "images": p["images_before"]} for p in pods},
            after={p["name"]: {"working": p["working_after"], "images": p["images"]} for p in pods},
        )
    failed = [p for p in pods if p["failed"]]
    if failed and params["fail_on_pod_failure"]:
        result["failed"] = True
        result["msg"] = "%d of %d pods failed: %s" % (
            len(failed), len(pods), "; ".join("%s/%s: %s" % (p["namespace"], p["name"], p["reason"]) for p in failed[:10]))
    return result
