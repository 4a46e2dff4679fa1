"""Hot-upgrade and status conformance: the same image change done by Kruise's SidecarSet controller and by our
sidecar_upgrade, on identical pods (Kruise's hot-upgrade sample on its hot-upgrade app).

After injection and after each upgrade (Upgrade, Migration and Reset all done) the pods' user views (compare.py:
containers with their images and env, annotations version / versionalt / working container / both hashes /
in-place-update-state, volumes) are equal modulo the documented differences, and Kruise's SidecarSet status
counters equal our sidecarset_info counters. The version number is Kruise's choice (the SidecarSet's
resourceVersion at the upgrade); our sidecar_upgrade is given the same number through its ``version`` option (by
default it writes one more than the highest version on the pods: docs/kruise-conformance.md). Then Kruise's own
e2e steps (test/e2e/apps/v1beta1/sidecarset_hotupgrade.go): two consecutive image changes, and an env-only change
that is not hot-upgradable (updated 0, nothing written).
"""

import copy
import json
import os
import time

import pytest
import yaml

import compare
from kruiseref import ROOT, newest_pods, ready, record, run_injection, run_tasks, wait_for, write_yaml

pytestmark = pytest.mark.conformance

EMPTY = "openkruise/hotupgrade-sample:empty"
V1 = "openkruise/hotupgrade-sample:sidecarv1"
V2 = "openkruise/hotupgrade-sample:sidecarv2"
STANDARD = ("PodScheduled", "Initialized", "ContainersReady", "Ready", "PodReadyToStartContainers")
COUNTERS = ("matchedPods", "updatedPods", "readyPods", "updatedReadyPods")


def example(name):
    with open(os.path.join(ROOT, "examples", name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def images(pod):
    return {c["name"]: c["image"] for c in pod["spec"]["containers"]}


def working(pod):
    return json.loads(pod["metadata"]["annotations"]["kruise.io/sidecarset-working-hotupgrade-container"])["sidecar"]


def versions(pod):
    ann = pod["metadata"]["annotations"]
    return tuple(ann.get(k) for k in ("version.sidecarset.kruise.io/sidecar-1", "versionalt.sidecarset.kruise.io/sidecar-1",
                                      "version.sidecarset.kruise.io/sidecar-2", "versionalt.sidecarset.kruise.io/sidecar-2"))


def kruise_status(kruise, name):
    obj = kruise.get_sidecarset(name)
    status = obj.get("status") or {}
    return obj, {k: status.get(k, 0) for k in COUNTERS}


def wait_kruise(kruise, name, namespace, expected, image, timeout=120):
    """WaitForSidecarSetUpgradeComplete (status counters and observedGeneration), then the Reset of every pod: the
    working twin on ``image``, the other on the empty image."""
    def done():
        obj, counters = kruise_status(kruise, name)
        if obj["status"].get("observedGeneration") != obj["metadata"]["generation"] or counters != expected:
            return None
        pods = newest_pods(kruise, namespace, "app", expected["matchedPods"])
        if not pods or not all(ready(p) for p in pods):
            return None
        for pod in pods:
            imgs = images(pod)
            if imgs[working(pod)] != image or sorted(imgs[t] for t in ("sidecar-1", "sidecar-2")) != sorted([image, EMPTY]):
                return None
        return pods
    return wait_for(done, timeout=timeout, interval=0.5, message="Kruise's upgrade of %s to %s" % (name, image))


def compare_pods(kruise, kruise_pods, our_pods, phase, entry):
    assert len(kruise_pods) == len(our_pods)
    for index, (theirs, ours) in enumerate(zip(kruise_pods, our_pods)):
        reference = compare.flatten(compare.user_view(theirs))
        mine = compare.flatten(compare.user_view(ours))
        known, unexplained = compare.classify(compare.diff(reference, mine))
        entry["compared_fields"] += len(set(reference) | set(mine))
        entry["phases"].append({"phase": phase, "pod": index, "known": known, "unexplained": [list(d) for d in unexplained]})
        assert not unexplained, "%s, pod %d: undocumented differences:\n%s" % (phase, index, "\n".join(
            "  %s\n    kruise: %r\n    ours:   %r" % d for d in unexplained))
        allowed = {"controller-revision"} | ({"restart-baseline"} if phase.startswith("upgrade") else set())
        assert set(known) <= allowed, known


def record_conditions(kruise, kns, ons, replicas, entry, phase):
    """The pod conditions that are not kubelet's (Kruise's SidecarSetUpgradable): recorded, not compared."""
    def extra(pods):
        return [[{k: c.get(k) for k in ("type", "status", "reason", "message")}
                 for c in (p.get("status") or {}).get("conditions") or () if c["type"] not in STANDARD] for p in pods]
    entry.setdefault("conditions", []).append({"phase": phase, "kruise": extra(newest_pods(kruise, kns, "app", replicas)),
                                               "ours": extra(our_pods(kruise, ons, replicas))})


def our_pods(kruise, namespace, replicas):
    pods = newest_pods(kruise, namespace, "app", replicas)
    assert pods, "our pods in %s" % namespace
    return pods


@pytest.mark.parametrize("replicas", [1, 2])
def test_hot_upgrade_twice_then_env_change(kruise, case, tmp_path, request, replicas):
    c = case()
    raw = example("sidecarsets/hotupgrade-sample.yaml")
    result = run_injection(kruise, c, lambda ns: [raw], copy.deepcopy(example("manifests/hotupgrade-app.yaml")["spec"]["template"]),
                           tmp_path, offline=False, replicas=replicas)
    kns, ons = c.namespaces["kruise"], c.namespaces["online"]
    name = raw["metadata"]["name"]
    entry = {"case": request.node.name, "kruise": kruise.version, "kubernetes": kruise.server_version,
             "compared_fields": 0, "phases": [], "status": []}
    t0 = time.monotonic()
    expected = dict(matchedPods=replicas, updatedPods=replicas, readyPods=replicas, updatedReadyPods=replicas)
    theirs = wait_kruise(kruise, name, kns, expected, V1)
    wait_for(lambda: all(ready(p) for p in our_pods(kruise, ons, replicas)), timeout=60, message="our pods ready")
    for pod in theirs:    # Kruise's e2e, test 1
        assert versions(pod) == ("1", "0", "0", "1") and working(pod) == "sidecar-1"
        assert images(pod) == {"sidecar-1": V1, "sidecar-2": EMPTY, "busybox": "openkruise/hotupgrade-sample:busybox"}
    compare_pods(kruise, theirs, our_pods(kruise, ons, replicas), "injected", entry)
    record_conditions(kruise, kns, ons, replicas, entry, "injected")
    info, proc = run_tasks([("sidecarset_info", {"sidecarset": result["online_files"][0], "namespace": ons})], kruise.env)
    assert info[0]["status"] == kruise_status(kruise, name)[1], proc.stdout[-2000:]
    entry["status"].append({"phase": "injected", "kruise": kruise_status(kruise, name)[1], "ours": info[0]["status"]})

    previous_rv = None
    for step, (image, slot) in enumerate(((V2, "sidecar-2"), (V1, "sidecar-1")), start=1):
        # Kruise: the image change on the SidecarSet; its controller upgrades, then resets
        patch = {"spec": {"containers": [dict(raw["spec"]["containers"][0], image=image)]}}
        kruise.patch_sidecarset(name, patch)
        theirs = wait_kruise(kruise, name, kns, expected, image)
        # Kruise writes the SidecarSet's resourceVersion at the moment it upgrades each pod: with maxUnavailable 1
        # the pods of one rollout go one after the other, and its status writes in between give each its own number
        pod_versions = [int(p["metadata"]["annotations"]["version.sidecarset.kruise.io/" + slot]) for p in theirs]
        assert min(pod_versions) > 1 and (previous_rv is None or min(pod_versions) > previous_rv)
        previous_rv = max(pod_versions)
        entry.setdefault("kruise_versions", []).append(pod_versions)
        for pod in theirs:   # Kruise's e2e, test 2
            assert working(pod) == slot and images(pod)[slot] == image
        # us: the same change through sidecar_upgrade, with Kruise's version number of the corresponding pod
        new = copy.deepcopy(raw)
        new["spec"]["containers"][0]["image"] = image
        path = write_yaml(tmp_path / ("step-%d.yaml" % step), new)
        mine = our_pods(kruise, ons, replicas)
        tasks = [("sidecar_upgrade", {"sidecarset": path, "namespace": ons, "timeout": 120, "version": version,
                                      "pods": [pod["metadata"]["name"]]}) for pod, version in zip(mine, pod_versions)]
        results, proc = run_tasks(tasks + [("sidecarset_info", {"sidecarset": path, "namespace": ons})], kruise.env)
        info = results[-1]
        for upgraded in results[:-1]:
            assert not upgraded.get("failed"), (upgraded, proc.stdout[-3000:])
            assert upgraded["summary"]["done"] == 1, upgraded["summary"]
        compare_pods(kruise, theirs, our_pods(kruise, ons, replicas), "upgrade %d" % step, entry)
        record_conditions(kruise, kns, ons, replicas, entry, "upgrade %d" % step)
        counters = kruise_status(kruise, name)[1]
        entry["status"].append({"phase": "upgrade %d" % step, "kruise": counters, "ours": info["status"]})
        assert info["status"] == counters

    # an env-only change is not hot-upgradable: Kruise counts no pod updated and writes nothing; so do we
    def views(namespace):
        return {p["metadata"]["name"]: compare.flatten(compare.user_view(p)) for p in newest_pods(kruise, namespace, "app", replicas)}
    before = views(kns)
    env = [{"name": "PROXY", "value": "127.0.0.1"}]
    kruise.patch_sidecarset(name, {"spec": {"containers": [dict(raw["spec"]["containers"][0], image=V1, env=env)]}})
    changed = dict(expected, updatedPods=0, updatedReadyPods=0)

    def settled():
        obj, counters = kruise_status(kruise, name)
        return counters if obj["status"].get("observedGeneration") == obj["metadata"]["generation"] and counters == changed else None
    wait_for(settled, timeout=60, message="Kruise's status after the env change")
    time.sleep(5)    # Kruise's e2e waits 30 s; nothing may be written to the pods in that time
    assert views(kns) == before
    new = copy.deepcopy(raw)
    new["spec"]["containers"][0]["env"] = env
    path = write_yaml(tmp_path / "env.yaml", new)
    ours_before = views(ons)
    (upgraded, info), proc = run_tasks([
        ("sidecar_upgrade", {"sidecarset": path, "namespace": ons, "timeout": 30}),
        ("sidecarset_info", {"sidecarset": path, "namespace": ons}),
    ], kruise.env)
    assert all(p["phase"] == "not-upgradable" for p in upgraded["pods"]), upgraded["pods"]
    assert views(ons) == ours_before
    counters = kruise_status(kruise, name)[1]
    entry["status"].append({"phase": "env change", "kruise": counters, "ours": info["status"]})
    record_conditions(kruise, kns, ons, replicas, entry, "env change")
    assert info["status"] == counters
    entry["seconds"] = round(time.monotonic() - t0, 1)
    record(entry)
