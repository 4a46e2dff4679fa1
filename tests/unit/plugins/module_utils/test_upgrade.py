# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The upgrade driver (``upgrade.UpgradeDriver``) against a fake API server and a fake kubelet.

As kubernetes.core tests its ``Waiter`` with a mock client: ``FakeCluster`` stores pods, applies the driver's
strategic-merge patches (resourceVersion checked: a stale write gets 409), and feeds a fake ``PodWatch``; a
kubelet thread applies each written image after the pod's own delay (``podfactory.kubelet``). The assertions are
properties of the schedule (how many pods were in flight at once, what started after what), never durations.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import threading
import time

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import upgrade
from ansible_collections.meshops.sidecarset.plugins.module_utils.hotupgrade import plan_next
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError
from ansible_collections.meshops.sidecarset.plugins.module_utils.window import over_fail_limit, progress, progress_line, window_capacity
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

SS1 = pf.sidecarset()
SS2 = pf.with_images(SS1, "hash-2", mesh="reg.example/mesh:v2")
BROKEN = "reg.example/mesh:broken"


class FakeWatch:
    """The parts of ``kube.PodWatch`` the driver uses, on a shared condition."""

    def __init__(self, namespace, condition):
        self.namespace = namespace
        self.pods = {}
        self.changes = 0
        self.dirty = set()
        self.error = None
        self._cond = condition

    def update(self, pod):
        with self._cond:
            current = self.pods.get(pod["metadata"]["name"])
            if current is None or int(pod["metadata"]["resourceVersion"]) >= int(current["metadata"]["resourceVersion"]):
                self.pods[pod["metadata"]["name"]] = pod
                self.dirty.add(pod["metadata"]["name"])
                self.changes += 1
            self._cond.notify_all()

    def take_dirty(self):
        with self._cond:
            names, self.dirty = self.dirty, set()
            return names

    def snapshot(self, name):
        with self._cond:
            return self.pods.get(name)

    def notify(self):
        with self._cond:
            self.changes += 1
            self._cond.notify_all()

    def fatal_error(self):
        return self.error if isinstance(self.error, KubeError) and self.error.status in (401, 403, 404) else None


def merge_patch(pod, body):
    """The strategic merge patch the driver sends: annotations (None deletes), containers merged by name."""
    result = copy.deepcopy(pod)
    annotations = result["metadata"].setdefault("annotations", {})
    for key, value in ((body.get("metadata") or {}).get("annotations") or {}).items():
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    for patch in (body.get("spec") or {}).get("containers") or []:
        for container in result["spec"]["containers"]:
            if container["name"] == patch["name"]:
                container.update(patch)
    return result


class FakeCluster:
    """API server + kubelet: pods, patches with resourceVersion, a kubelet applying images after per-pod delays."""

    def __init__(self, names, delays=None, broken=(), not_ready_before=()):
        self.condition = threading.Condition()
        self.watch = FakeWatch("default", self.condition)
        self.rv = 1000
        self.delays = delays or {}
        self.broken = set(broken)
        self.timeline = []        # (time, event, pod)
        self.lock = threading.Lock()
        self.requests = {"patch": 0}
        self.request_count = 0
        for name in names:
            pod = pf.pod(name, sets=[SS1], rv=str(self._next_rv()), ready=name not in not_ready_before)
            self.watch.update(pod)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._kubelet, daemon=True)
        self.thread.start()

    def _next_rv(self):
        self.rv += 1
        return self.rv

    # the KubeClient methods read_modify_write calls
    def get_pod(self, namespace, name):
        pod = self.watch.snapshot(name)
        if pod is None:
            raise KubeError(404, "pods %s not found" % name)
        return copy.deepcopy(pod)

    def patch_pod(self, namespace, name, body):
        with self.lock:
            self.requests["patch"] += 1
            self.request_count += 1
            current = self.watch.snapshot(name)
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise KubeError(409, "conflict")
            pod = merge_patch(current, body)
            pod["metadata"]["resourceVersion"] = str(self._next_rv())
            self.timeline.append((time.monotonic(), "write", name, [c["image"] for c in pod["spec"]["containers"]]))
            self.watch.update(pod)
            return copy.deepcopy(pod)

    def _kubelet(self):
        pending = {}
        while not self.stop.is_set():
            now = time.monotonic()
            for name, pod in list(self.watch.pods.items()):
                images = [c["image"] for c in pod["spec"]["containers"]]
                if images != [s["image"] for s in pod["status"]["containerStatuses"]]:
                    due = pending.setdefault((name, tuple(images)), now + self.delays.get(name, 0.001))
                    if now >= due:
                        with self.lock:
                            current = self.watch.snapshot(name)
                            if BROKEN in images:
                                new = pf.fail_pull(current, next(c["name"] for c in current["spec"]["containers"] if c["image"] == BROKEN))
                            else:
                                new = pf.kubelet(current)
                            new["metadata"]["resourceVersion"] = str(self._next_rv())
                            self.timeline.append((time.monotonic(), "kubelet", name, images))
                            self.watch.update(new)
            time.sleep(0.001)

    def close(self):
        self.stop.set()
        self.thread.join()


def run(cluster, groups, sidecarset=SS2, **options):
    options.setdefault("poll", 0.05)
    options.setdefault("timeout", 20)
    gate = options.pop("gate", None) or upgrade.http_gate
    driver = upgrade.UpgradeDriver(cluster, {"default": cluster.watch}, sidecarset, upgrade.Options(**options),
                                   condition=cluster.condition, gate=gate)
    try:
        return driver, driver.run([[("default", n) for n in g] for g in groups])
    finally:
        cluster.close()


def max_in_flight(cluster, names):
    """Most pods between their Upgrade write and their Reset applied by the kubelet, at any moment."""
    events = []
    writes = {}
    for when, what, name, images in cluster.timeline:
        if name not in names:
            continue
        if what == "write":
            writes[name] = writes.get(name, 0) + 1
            if writes[name] == 1:
                events.append((when, 1))
        elif what == "kubelet" and writes.get(name) == 2 and "reg.example/mesh:empty" in images:
            events.append((when, -1))
    level = peak = 0
    for dummy, delta in sorted(events):
        level += delta
        peak = max(peak, level)
    return peak


def test_window_keeps_at_most_window_pods_in_flight_and_finishes_all():
    names = ["pod-%02d" % i for i in range(12)]
    cluster = FakeCluster(names, delays=dict((n, 0.002 * (i % 5)) for i, n in enumerate(names)))
    driver, (states, entries, stopped) = run(cluster, [names], window=3)
    assert stopped == ""
    assert [s.phase for s in states] == ["done"] * 12
    assert all(s.writes == ["upgrade", "reset"] for s in states)
    assert max_in_flight(cluster, set(names)) <= 3
    assert [s.name for s in states] == names  # the report keeps the given order


def test_window_starts_the_next_pod_when_one_finishes_not_per_batch():
    # pod-00 is slow; with a window of 2 the others go through the second slot one by one while it migrates
    names = ["pod-00", "pod-01", "pod-02", "pod-03"]
    cluster = FakeCluster(names, delays={"pod-00": 0.4})
    driver, (states, dummy, dummy2) = run(cluster, [names], window=2)
    done_at = dict((s.name, s.marks["done"]) for s in states)
    assert done_at["pod-03"] < done_at["pod-00"]  # lock-step batches of 2 would finish pod-00 first


def test_lock_step_groups_wait_for_the_slowest():
    names = ["pod-00", "pod-01", "pod-02", "pod-03"]
    cluster = FakeCluster(names, delays={"pod-00": 0.2})
    driver, (states, entries, stopped) = run(cluster, [names[:2], names[2:]])
    by = dict((s.name, s) for s in states)
    assert by["pod-02"].started >= by["pod-00"].marks["done"]
    assert [e["index"] for e in entries] == [1, 2] and [s.batch for s in states] == [1, 1, 2, 2]


def test_window_stop_rule_over_the_run_and_failed_pods_keep_their_slot():
    names = ["pod-%02d" % i for i in range(6)]
    cluster = FakeCluster(names)
    broken = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    driver, (states, dummy, stopped) = run(cluster, [names], sidecarset=broken, window=2, max_fail_percentage=0, timeout=5)
    assert "max_fail_percentage" in stopped
    assert all(s.phase == "failed" for s in states)
    assert len(states) == 2  # the window was full when the first failure stopped the run; nothing else started
    assert "not reset" in states[0].reason


def test_window_stalls_into_a_clear_stop_when_failed_pods_hold_it():
    names = ["pod-%02d" % i for i in range(5)]
    cluster = FakeCluster(names)
    broken = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    driver, (states, dummy, stopped) = run(cluster, [names], sidecarset=broken, window=2, max_fail_percentage=100, timeout=5)
    assert "held by 2 failed" in stopped and len(states) == 2


def test_pods_already_unavailable_outside_the_run_take_window_places():
    names = ["pod-%02d" % i for i in range(4)]
    cluster = FakeCluster(names + ["other"])
    # "other" is updated to v2 but its new twin is not ready: unavailable, as Kruise counts it
    other = cluster.watch.snapshot("other")
    plan = plan_next(other, SS2, 5, upgrade.utcnow())
    other = pf.kubelet(pf.apply_plan(other, plan), not_ready=("mesh-2",))
    cluster.stop.set()
    cluster.thread.join()
    cluster.watch.update(other)
    options = upgrade.Options(window=1, poll=0.05, timeout=1)
    driver = upgrade.UpgradeDriver(cluster, {"default": cluster.watch}, SS2, options, condition=cluster.condition)
    states, dummy, stopped = driver.run([[("default", n) for n in names]])
    assert states == [] and "1 other unavailable" in stopped


def test_health_gate_fails_a_pod_before_its_reset():
    names = ["pod-00", "pod-01"]
    cluster = FakeCluster(names)
    seen = []

    def gate(url, status, retries, delay):
        seen.append(url)
        return ("pod-01" not in url), "fake"

    driver, (states, dummy, stopped) = run(cluster, [names], window=2, max_fail_percentage=100,
                                           health={"url": "http://x/{name}", "status": 200, "retries": 1, "delay": 0}, gate=gate)
    by = dict((s.name, s) for s in states)
    assert sorted(seen) == ["http://x/pod-00", "http://x/pod-01"]
    assert by["pod-00"].phase == "done" and by["pod-00"].writes == ["upgrade", "reset"]
    assert by["pod-01"].phase == "failed" and by["pod-01"].writes == ["upgrade"] and "health check failed" in by["pod-01"].reason


def test_rollback_after_a_failure_and_progress_records():
    names = ["pod-00"]
    cluster = FakeCluster(names)
    broken = pf.with_images(SS1, "hash-b", mesh=BROKEN)
    records = []
    options = upgrade.Options(window=1, poll=0.05, timeout=5, rollback=True)
    driver = upgrade.UpgradeDriver(cluster, {"default": cluster.watch}, broken, options, condition=cluster.condition, report=records.append)
    try:
        states, dummy, stopped = driver.run([[("default", "pod-00")]])
    finally:
        cluster.close()
    assert states[0].phase == "rolled-back" and states[0].writes == ["upgrade", "rollback"]
    assert records[-1]["failed"] == 1 and records[-1]["left"] == 0 and records[-1]["total"] == 1


def test_missing_pod_and_check_mode():
    cluster = FakeCluster(["pod-00"])
    driver, (states, dummy, stopped) = run(cluster, [["pod-00", "gone"]], check_mode=True, window=1)
    by = dict((s.name, s) for s in states)
    assert by["gone"].phase == "missing" and by["gone"].failed
    assert by["pod-00"].phase == "planned" and cluster.requests["patch"] == 1  # the dry-run write only


def test_options_are_checked():
    with pytest.raises(TypeError):
        upgrade.Options(windw=3)
    with pytest.raises(upgrade.ParameterError, match="phase"):
        upgrade.Options(phase="later")


def test_window_rules():
    assert over_fail_limit(1, 10, 0) and not over_fail_limit(1, 10, 10) and over_fail_limit(2, 10, 10)
    assert not over_fail_limit(0, 10, 0)
    assert window_capacity(0, 5) == float("inf")
    assert window_capacity(10, 7, 2) == 1 and window_capacity(3, 3, 1) == 0
    snap = progress(100, 40, 2, 10, 0.0, 21.0)
    assert snap["left"] == 48 and snap["rate"] == 2.0 and snap["eta"] == 29.0
    assert progress_line(snap, "c1") == "[c1] 40/100 done, 10 in flight, 2 failed, 48 left, 2.0 pods/s, about 29.0 s left (21.0 s elapsed)"


def test_a_finished_pod_frees_its_place_at_once_not_at_the_next_poll():
    # one place, a poll of 30 s and no other pod changing: the next pod must start when the first one is done,
    # not when the periodic re-check comes round
    cluster = FakeCluster(["pod-00", "pod-01"])
    driver, (states, dummy, stopped) = run(cluster, [["pod-00", "pod-01"]], window=1, poll=30, timeout=60)
    assert [s.phase for s in states] == ["done", "done"]
    assert states[1].started - states[0].marks["done"] < 5


def test_a_pod_of_the_queue_in_flight_in_another_run_takes_a_place():
    # pod-01 is queued here, but another run has it in flight (updated, its new twin not ready): it is unavailable,
    # so with a window of 1 nothing may start until it is available again (here: never, so the run gives up)
    names = ["pod-00", "pod-01", "pod-02"]
    cluster = FakeCluster(names)
    busy = cluster.watch.snapshot("pod-01")
    busy = pf.kubelet(pf.apply_plan(busy, plan_next(busy, SS2, 5, upgrade.utcnow())), not_ready=("mesh-2",))
    cluster.stop.set()
    cluster.thread.join()
    cluster.watch.update(busy)
    driver = upgrade.UpgradeDriver(cluster, {"default": cluster.watch}, SS2, upgrade.Options(window=1, poll=0.05, timeout=1),
                                   condition=cluster.condition)
    states, dummy, stopped = driver.run([[("default", n) for n in names]])
    assert states == [] and "0 failed and 1 other unavailable" in stopped and "3 pods not started" in stopped
