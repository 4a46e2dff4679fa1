"""Status conformance during and after a rollout: Kruise's SidecarSet status counters vs our sidecarset_info on
identical pods, with a partition, and with a broken image (Kruise's e2e test 3: maxUnavailable holds the rollout).

Kruise's counters are polled while its controller rolls out; our rollout is driven by hand the way the rollout role
does it (sidecarset_info's plan, then sidecar_upgrade on each batch). Ours must end on Kruise's final counters, and
every state we pass through after a batch must be one Kruise passed through.
"""

import copy
import threading
import time

import pytest

from kruiseref import newest_pods, ready, record, run_injection, run_tasks, wait_for, write_yaml
from test_kruise_hotupgrade import COUNTERS, EMPTY, V1, V2, example, images, kruise_status, working

pytestmark = pytest.mark.conformance
BROKEN = "openkruise/hotupgrade-sample:broken"     # the node simulator fails its pull (nodesim BUILTIN_RULES)


class StatusWatch:
    """Polls Kruise's SidecarSet status every 0.2 s and keeps every distinct counter set it saw."""

    def __init__(self, kruise, name):
        self.kruise, self.name = kruise, name
        self.seen, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                counters = kruise_status(self.kruise, self.name)[1]
                if not self.seen or self.seen[-1] != counters:
                    self.seen.append(counters)
            except Exception:  # pylint: disable=broad-except
                pass
            time.sleep(0.2)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        return self.seen


def settle(kruise, name, expected, timeout=120, hold=3.0):
    """Kruise's counters equal ``expected`` at the current generation and stay so for ``hold`` seconds."""
    def stable():
        obj, counters = kruise_status(kruise, name)
        if obj["status"].get("observedGeneration") != obj["metadata"]["generation"] or counters != expected:
            return None
        time.sleep(hold)
        return kruise_status(kruise, name)[1] == expected
    wait_for(stable, timeout=timeout, interval=0.5, message="Kruise's status %s" % expected)


def info(kruise, path, namespace, **extra):
    (result,), proc = run_tasks([("sidecarset_info", dict({"sidecarset": path, "namespace": namespace}, **extra))], kruise.env)
    assert not result.get("failed"), (result, proc.stdout[-2000:])
    return result


def test_rollout_with_partition(kruise, case, tmp_path, request):
    """3 pods, partition 1, maxUnavailable 1: Kruise upgrades 2 pods one at a time and leaves 1."""
    c = case()
    raw = example("sidecarsets/hotupgrade-sample.yaml")
    raw["spec"]["updateStrategy"] = {"type": "RollingUpdate", "partition": 1, "maxUnavailable": 1}
    template = copy.deepcopy(example("manifests/hotupgrade-app.yaml")["spec"]["template"])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path, offline=False, replicas=3)
    kns, ons, name = c.namespaces["kruise"], c.namespaces["online"], raw["metadata"]["name"]
    full = dict(matchedPods=3, updatedPods=3, readyPods=3, updatedReadyPods=3)
    settle(kruise, name, full, hold=0)
    wait_for(lambda: all(ready(p) for p in newest_pods(kruise, ons, "app", 3)), timeout=60, message="our pods ready")
    assert info(kruise, result["online_files"][0], ons)["status"] == full
    # Kruise's rollout
    watch = StatusWatch(kruise, name)
    kruise.patch_sidecarset(name, {"spec": {"containers": [dict(raw["spec"]["containers"][0], image=V2)]}})
    final = dict(matchedPods=3, updatedPods=2, readyPods=3, updatedReadyPods=2)
    settle(kruise, name, final)
    wait_for(lambda: sorted(images(p)[working(p)] for p in newest_pods(kruise, kns, "app", 3)) == [V1, V2, V2], timeout=60,
             message="Kruise's resets")
    seen = watch.close()
    # ours, as the rollout role: the plan, then one batch at a time
    new = copy.deepcopy(raw)
    new["spec"]["containers"][0]["image"] = V2
    path = write_yaml(tmp_path / "v2.yaml", new)
    plan = info(kruise, path, ons)["rollout"]
    assert plan["partition"] == 1 and plan["matched"] == 3 and len(plan["partitioned"]) == 1
    assert [len(b) for b in plan["batches"]] == [1, 1], plan["batches"]
    ours = []
    for batch in plan["batches"]:
        (upgraded, status), proc = run_tasks([
            ("sidecar_upgrade", {"sidecarset": path, "namespace": ons, "timeout": 120, "pods": [p["name"] for p in batch]}),
            ("sidecarset_info", {"sidecarset": path, "namespace": ons})], kruise.env)
        assert not upgraded.get("failed"), (upgraded, proc.stdout[-3000:])
        ours.append(status["status"])
    record({"case": request.node.name, "kruise": kruise.version, "kubernetes": kruise.server_version,
            "compared_fields": len(COUNTERS) * (len(ours) + 1), "status": {"kruise_seen": seen, "ours_after_batches": ours}})
    assert ours[-1] == final
    # between batches ours rests at {3, k, 3, k}; Kruise starts its next pod as soon as the previous one is ready and
    # reset, so it passes {3, k, 3, k} only for an instant (its counters dip: the restarting twin makes the pod not
    # ready); both only ever count updated pods that have the new hash, and never more than maxUnavailable down
    assert ours == [dict(matchedPods=3, updatedPods=k, readyPods=3, updatedReadyPods=k) for k in (1, 2)], ours
    assert all(s["matchedPods"] - s["readyPods"] <= 1 for s in seen), seen
    assert sorted(images(p)[working(p)] for p in newest_pods(kruise, ons, "app", 3)) == [V1, V2, V2]
    assert info(kruise, path, ons)["rollout"]["batches"] == []


def test_broken_image_then_fix(kruise, case, tmp_path, request):
    """Kruise's e2e test 3 on 2 pods: a broken image takes one pod down and maxUnavailable stops there
    ({2, 1, 0, 1}); the fixed image then lands on both ({2, 2, 2, 2}), working twin sidecar-2 on both."""
    c = case()
    raw = example("sidecarsets/hotupgrade-sample.yaml")
    template = copy.deepcopy(example("manifests/hotupgrade-app.yaml")["spec"]["template"])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path, offline=False, replicas=2)
    kns, ons, name = c.namespaces["kruise"], c.namespaces["online"], raw["metadata"]["name"]
    full = dict(matchedPods=2, updatedPods=2, readyPods=2, updatedReadyPods=2)
    settle(kruise, name, full, hold=0)
    wait_for(lambda: all(ready(p) for p in newest_pods(kruise, ons, "app", 2)), timeout=60, message="our pods ready")
    entry = {"case": request.node.name, "kruise": kruise.version, "kubernetes": kruise.server_version,
             "compared_fields": 0, "status": []}
    broken_state = dict(matchedPods=2, updatedPods=1, readyPods=1, updatedReadyPods=0)
    kruise.patch_sidecarset(name, {"spec": {"containers": [dict(raw["spec"]["containers"][0], image=BROKEN)]}})
    settle(kruise, name, broken_state, hold=5)
    broken = copy.deepcopy(raw)
    broken["spec"]["containers"][0]["image"] = BROKEN
    path = write_yaml(tmp_path / "broken.yaml", broken)
    plan = info(kruise, path, ons)["rollout"]
    (upgraded, status), proc = run_tasks([
        ("sidecar_upgrade", {"sidecarset": path, "namespace": ons, "timeout": 10, "pods": [p["name"] for p in plan["batches"][0]]}),
        ("sidecarset_info", {"sidecarset": path, "namespace": ons})], kruise.env)
    assert upgraded.get("failed"), upgraded
    entry["status"].append({"phase": "broken", "kruise": broken_state, "ours": status["status"]})
    assert status["status"] == broken_state
    # the next plan holds the rollout, as Kruise's maxUnavailable does
    held = info(kruise, path, ons)
    entry["plan_after_broken"] = held["rollout"]
    entry["pods_after_broken"] = held["pods"]
    record(entry)
    # Kruise's maxUnavailable is spent by the broken pod: it picks nothing now; so does our plan (no batch "for
    # now": the failed pod is in flight and counts as unavailable). rollout.batches still lists the waiting pod as
    # the next batch (podlist.plan_rollout: "the first is what Kruise would pick now" holds only when there is one)
    assert held["rollout"]["unavailable"] == held["rollout"]["max_unavailable"] == 1, held["rollout"]
    assert [p["name"] for p in held["rollout"]["in_flight"]] == [p["name"] for p in held["pods"] if p["phase"] == "failed"]
    # the fix
    kruise.patch_sidecarset(name, {"spec": {"containers": [dict(raw["spec"]["containers"][0], image=V2)]}})
    settle(kruise, name, full)
    wait_for(lambda: all(working(p) == "sidecar-2" and images(p)["sidecar-2"] == V2 and images(p)["sidecar-1"] == EMPTY
                         for p in newest_pods(kruise, kns, "app", 2)), timeout=60, message="Kruise's pods on the fixed image")
    fixed = copy.deepcopy(raw)
    fixed["spec"]["containers"][0]["image"] = V2
    path = write_yaml(tmp_path / "fixed.yaml", fixed)
    for unused_round in range(3):      # batches of maxUnavailable 1, as the rollout role plans them
        batches = info(kruise, path, ons)["rollout"]["batches"]
        if not batches:
            break
        (upgraded,), proc = run_tasks([("sidecar_upgrade", {"sidecarset": path, "namespace": ons, "timeout": 120,
                                                            "pods": [p["name"] for p in batches[0]]})], kruise.env)
        assert not upgraded.get("failed"), (upgraded, proc.stdout[-3000:])
    status = info(kruise, path, ons)["status"]
    entry["status"].append({"phase": "fixed", "kruise": full, "ours": status})
    assert status == full
    pods = newest_pods(kruise, ons, "app", 2)
    entry["working"] = {"kruise": [working(p) for p in newest_pods(kruise, kns, "app", 2)], "ours": [working(p) for p in pods]}
    assert all(working(p) == "sidecar-2" and images(p)["sidecar-2"] == V2 and images(p)["sidecar-1"] == EMPTY for p in pods), \
        [images(p) for p in pods]
    entry["compared_fields"] = len(COUNTERS) * 2 + 2 * 3
