"""Migration both ways between the real kruise-manager and us (docs/kruise-migration.md).

* ``test_migration_from_kruise``: pods injected and hot-upgraded by Kruise; Kruise removed (``kruise.sh remove``:
  its webhook configurations deleted, kruise-manager stopped; its CRDs stay) and the SidecarSet object deleted after
  it was exported; then ``playbooks/rollout.yml`` with the exported SidecarSet (only the image changed) upgrades the
  same pods further in place, twice: same uids, +2 restarts of the hot sidecar's twins per upgrade and none of the
  app, the working slot alternating from the one Kruise left, versions above Kruise's. Then the way back: Kruise
  installed again with the SidecarSet as our last rollout left it counts every pod updated and writes nothing.
* ``test_migration_to_kruise``: Kruise not installed; our online injection of the Deployment and our rollout
  (v1 -> v2); then Kruise installed with the same SidecarSet: its status counts every pod matched, updated and
  ready, it restarts nothing and writes nothing to the pods; a pod created afterwards from our injected template
  goes through Kruise's webhook without a duplicate container; Kruise's next image change upgrades our pods in
  place from the slot we left.

Both end with Kruise installed again (the other cases need it), whatever happens.
"""

import copy
import json
import os
import subprocess
import time

import pytest

import compare
from kruiseref import ROOT, app_deployment, kruise_sh, newest_pods, ready, record, run_tasks, scope_to, wait_for, write_yaml
from modrun import ANSIBLE_PLAYBOOK, ansible_env
from test_kruise_hotupgrade import EMPTY, V1, V2, example, images, kruise_status, versions, wait_kruise, working

pytestmark = pytest.mark.conformance

V3 = "openkruise/hotupgrade-sample:sidecarv3"
TWINS = ("sidecar-1", "sidecar-2")
REPLICAS = 2


def restarts(pod):
    return {s["name"]: s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or ()}


def snapshot(pods):
    """What must not change across a migration step, per pod name: uid, restart counts, the user view."""
    return {p["metadata"]["name"]: {"uid": p["metadata"]["uid"], "restarts": restarts(p), "working": working(p),
                                    "annotations": dict(p["metadata"]["annotations"]),
                                    "view": compare.flatten(compare.user_view(p))} for p in pods}


def revision(snap):
    """The ``controllerRevision`` of the pod's ``kruise.io/sidecarset-hash`` entry (None when absent)."""
    return (json.loads(snap["annotations"]["kruise.io/sidecarset-hash"]).get("hotupgrade-sidecarset") or {}).get("controllerRevision")


def all_ready(pods):
    return pods if pods and all(ready(p) for p in pods) else None


def remove_kruise():
    proc = kruise_sh("remove", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def install_kruise():
    proc = kruise_sh("up", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def kruise_back(kruise):
    """Kruise installed again after the test, whatever happened in it."""
    yield kruise
    if kruise_sh("status", timeout=30).returncode != 0:
        install_kruise()


def exported(kruise, name):
    """The SidecarSet as ``kubectl get sidecarset <name> -o yaml`` gives it (v1beta1, with metadata and status)."""
    return kruise.get_sidecarset(name)


def with_image(raw, image):
    new = copy.deepcopy(raw)
    new["spec"]["containers"][0]["image"] = image
    return new


def rollout(kruise, sidecarset_file, namespace, report):
    """playbooks/rollout.yml as a user runs it; returns the report."""
    cmd = [ANSIBLE_PLAYBOOK, os.path.join(ROOT, "playbooks", "rollout.yml"), "-e", "rollout_sidecarset=%s" % sidecarset_file,
           "-e", "rollout_namespace=%s" % namespace, "-e", "rollout_report_path=%s" % report, "-e", "rollout_timeout=120"]
    proc = subprocess.run(cmd, cwd=str(ROOT), env=ansible_env(kruise.env), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    with open(report, encoding="utf-8") as handle:
        return json.load(handle)


def pods_of(kruise, namespace, replicas=REPLICAS):
    return wait_for(lambda: newest_pods(kruise, namespace, "app", replicas), timeout=60, message="the pods of %s/app" % namespace)


def assert_upgraded_in_place(before, after, image, entry, step):
    """Same pods; per pod +2 restarts over the twins (the new twin started on ``image``, the old one reset to the empty
    image), none of the app; the working slot moved to the other twin; versions: the new twin's above every version
    the pod had, the pair as Kruise's trace has it after a reset (v(W) = va(E) = new, v(E) = va(W) = 0)."""
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in after} == {n: s["uid"] for n, s in before.items()}, \
        "%s: the pods were recreated" % step
    for pod in after:
        old = before[pod["metadata"]["name"]]
        now = restarts(pod)
        twins = sum(now[t] - old["restarts"][t] for t in TWINS)
        assert twins == 2 and now["busybox"] == old["restarts"]["busybox"], (step, old["restarts"], now)
        slot = working(pod)
        assert slot != old["working"], "%s: the working twin stayed %s" % (step, slot)
        other = TWINS[1] if slot == TWINS[0] else TWINS[0]
        assert images(pod)[slot] == image and images(pod)[other] == EMPTY, (step, images(pod))
        ann = pod["metadata"]["annotations"]
        new = int(ann["version.sidecarset.kruise.io/" + slot])
        had = max(int(old["annotations"].get("%s.sidecarset.kruise.io/%s" % (kind, t), 0))
                  for kind in ("version", "versionalt") for t in TWINS)
        assert new > had, (step, new, had)
        assert ann["versionalt.sidecarset.kruise.io/" + other] == str(new), (step, versions(pod))
        assert ann["version.sidecarset.kruise.io/" + other] == "0" and ann["versionalt.sidecarset.kruise.io/" + slot] == "0", \
            (step, versions(pod))
        entry["steps"].append({"step": step, "pod": pod["metadata"]["name"], "working": slot, "versions": versions(pod),
                               "twin_restarts": twins})


def assert_kruise_leaves_alone(kruise, namespace, name, before, entry, seconds=8):
    """Kruise's status counts every pod updated and ready, and for ``seconds`` it changes nothing on them."""
    expected = {k: len(before) for k in ("matchedPods", "updatedPods", "readyPods", "updatedReadyPods")}

    def settled():
        obj, counters = kruise_status(kruise, name)
        return counters if obj["status"].get("observedGeneration") == obj["metadata"]["generation"] and counters == expected \
            else None
    wait_for(settled, timeout=60, message="Kruise's status %s (last: %s)" % (expected, kruise_status(kruise, name)[1]))
    time.sleep(seconds)
    after = snapshot(pods_of(kruise, namespace, len(before)))
    assert {n: s["uid"] for n, s in after.items()} == {n: s["uid"] for n, s in before.items()}
    for pod_name, snap in after.items():
        assert snap["restarts"] == before[pod_name]["restarts"], (pod_name, before[pod_name]["restarts"], snap["restarts"])
        changed = compare.diff(before[pod_name]["view"], snap["view"])
        assert not changed, "Kruise changed pod %s: %s" % (pod_name, changed)
        entry["compared_fields"] += len(snap["view"])
    counters = kruise_status(kruise, name)[1]
    assert counters == expected, counters
    entry["kruise_status"] = counters


def test_migration_from_kruise(kruise_back, case, tmp_path, request):
    kruise = kruise_back
    c = case()
    kns = c.namespaces["kruise"]
    raw = scope_to(example("sidecarsets/hotupgrade-sample.yaml"), "kruise")
    name = raw["metadata"]["name"]
    entry = {"case": request.node.name, "kruise": kruise.version, "compared_fields": 0, "steps": []}
    t0 = time.monotonic()
    # Kruise injects and hot-upgrades (v1 -> v2)
    kruise.create_sidecarset(raw)
    c.sidecarsets.append(name)
    kruise.wait_sidecarset_observed(name)
    kruise.apps.create_namespaced_deployment(kns, app_deployment("app", kns, example("manifests/hotupgrade-app.yaml")["spec"]["template"],
                                                                 REPLICAS))
    full = {k: REPLICAS for k in ("matchedPods", "updatedPods", "readyPods", "updatedReadyPods")}
    injected = snapshot(wait_kruise(kruise, name, kns, full, V1))
    kruise.patch_sidecarset(name, {"spec": {"containers": [with_image(raw, V2)["spec"]["containers"][0]]}})
    theirs = wait_kruise(kruise, name, kns, full, V2)
    assert_upgraded_in_place(injected, theirs, V2, entry, "kruise v1->v2")
    left = snapshot(theirs)
    assert all(working(p) == "sidecar-2" for p in theirs)

    # Kruise removed: the SidecarSet exported first (verbatim: metadata, status), deleted after the uninstall
    export = exported(kruise, name)
    remove_kruise()
    kruise.delete_sidecarset(name)
    c.sidecarsets.remove(name)
    # no webhook any more: a pod is created (dry run) without Kruise and without a sidecar
    plain = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "probe-", "labels": {"app": "hotupgrade"}},
             "spec": {"containers": [{"name": "app", "image": "probe"}]}}
    probe = kruise.core.create_namespaced_pod(kns, plain, dry_run="All")
    assert [x.name for x in probe.spec.containers] == ["app"]

    # our rollout, twice, on the pods Kruise left (the exported SidecarSet, only the image changed)
    before = left
    for step, image in enumerate((V3, V1), start=1):
        path = write_yaml(tmp_path / ("exported-%d.yaml" % step), with_image(export, image))
        report = rollout(kruise, path, kns, str(tmp_path / ("report-%d.json" % step)))
        assert [p["phase"] for p in report["pods"]] == ["done"] * REPLICAS, report["pods"]
        ours = pods_of(kruise, kns)
        assert_upgraded_in_place(before, ours, image, entry, "ours %d" % step)
        before = snapshot(ours)
    entry["controller_revisions"] = {n: revision(s) for n, s in before.items()}

    # and back: Kruise installed again with the SidecarSet our last rollout used: everything updated, nothing touched
    install_kruise()
    kruise.create_sidecarset(with_image(raw, V1))
    c.sidecarsets.append(name)
    assert_kruise_leaves_alone(kruise, kns, name, before, entry)
    # the controllerRevision our rollout wrote, if any, names the revision Kruise makes of that spec (the exported
    # status.latestRevision named the revision of the spec before the edit: dropped when the hash differs)
    latest = kruise.get_sidecarset(name)["status"]["latestRevision"]
    entry["kruise_latest_revision"] = latest
    stale = {n: r for n, r in entry["controller_revisions"].items() if r not in (None, latest)}
    assert not stale, "controllerRevision of another spec: %s (Kruise's: %s)" % (stale, latest)
    entry["seconds"] = round(time.monotonic() - t0, 1)
    record(entry)


def test_migration_to_kruise(kruise_back, case, tmp_path, request):
    kruise = kruise_back
    c = case()
    kns = c.namespaces["kruise"]     # an ordinary namespace: Kruise's webhook would inject here once installed
    raw = scope_to(example("sidecarsets/hotupgrade-sample.yaml"), "kruise")
    name = raw["metadata"]["name"]
    entry = {"case": request.node.name, "kruise": kruise.version, "compared_fields": 0, "steps": []}
    t0 = time.monotonic()
    remove_kruise()
    # ours: online injection of the Deployment, then our rollout v1 -> v2
    template = example("manifests/hotupgrade-app.yaml")["spec"]["template"]
    kruise.apps.create_namespaced_deployment(kns, app_deployment("app", kns, template, REPLICAS))
    v1_file = write_yaml(tmp_path / "v1.yaml", raw)
    results, proc = run_tasks([("sidecar_inject", {"sidecarsets": [v1_file], "namespace": kns, "workloads": ["Deployment/app"]})],
                              kruise.env)
    assert not results[0].get("failed"), (results[0], proc.stdout[-3000:])
    injected = wait_for(lambda: all_ready(newest_pods(kruise, kns, "app", REPLICAS)), timeout=60, message="our injected pods ready")
    assert all(working(p) == "sidecar-1" and images(p)["sidecar-1"] == V1 for p in injected)
    report = rollout(kruise, write_yaml(tmp_path / "v2.yaml", with_image(raw, V2)), kns, str(tmp_path / "report.json"))
    assert [p["phase"] for p in report["pods"]] == ["done"] * REPLICAS, report["pods"]
    ours = pods_of(kruise, kns)
    assert_upgraded_in_place(snapshot(injected), ours, V2, entry, "ours v1->v2")
    before = snapshot(ours)

    # Kruise installed, the same SidecarSet created: it counts our pods updated and leaves them alone
    install_kruise()
    kruise.create_sidecarset(with_image(raw, V2))
    c.sidecarsets.append(name)
    kruise.wait_sidecarset_observed(name)
    assert_kruise_leaves_alone(kruise, kns, name, before, entry)

    # a pod created now from our injected template (still v1) goes through Kruise's webhook: re-injected at v2
    kruise.apps.patch_namespaced_deployment_scale("app", kns, {"spec": {"replicas": REPLICAS + 1}})
    grown = pods_of(kruise, kns, REPLICAS + 1)
    new_pod = [p for p in grown if p["metadata"]["name"] not in before]
    assert len(new_pod) == 1
    names = [x["name"] for x in new_pod[0]["spec"]["containers"]]
    assert sorted(names) == sorted(["sidecar-1", "sidecar-2", "busybox"]), names
    assert working(new_pod[0]) == "sidecar-1" and images(new_pod[0])["sidecar-1"] == V2, images(new_pod[0])
    entry["scaled_pod"] = {"containers": names, "images": images(new_pod[0]), "versions": versions(new_pod[0])}

    # Kruise's next image change upgrades our pods in place, from the slot we left
    full = {k: REPLICAS + 1 for k in ("matchedPods", "updatedPods", "readyPods", "updatedReadyPods")}
    wait_for(lambda: kruise_status(kruise, name)[1] == full, timeout=60, message="Kruise's status %s" % full)
    kruise.patch_sidecarset(name, {"spec": {"containers": [with_image(raw, V3)["spec"]["containers"][0]]}})
    theirs = wait_kruise(kruise, name, kns, full, V3, timeout=180)
    assert_upgraded_in_place(before, [p for p in theirs if p["metadata"]["name"] in before], V3, entry, "kruise v2->v3")
    entry["seconds"] = round(time.monotonic() - t0, 1)
    record(entry)
