"""Template refresh of OnDelete workloads (issue 13): after a hot upgrade from v1 to v2, a StatefulSet with
``updateStrategy: OnDelete`` and a Deployment (RollingUpdate) still carry v1 in their templates. ``converge.yml``
with ``converge_refresh_on_delete=true`` hot-upgrades the pod the StatefulSet created from its old template, then
writes v2 into the StatefulSet's template (no pod recreated: same uids) and leaves the Deployment's alone, reported
skipped with its kind and strategy; status then reports drift for the Deployment only, and a second converge writes
nothing."""

import time

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import pod_hash
from ansible_collections.meshops.sidecarset.plugins.module_utils.manifests import inject_manifest
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import get_hash, load_sidecarsets
from test_rollout import (PLAYBOOKS, custom_stats, make_app, pods_of, run_playbook, sidecarset_doc, task_messages,
                          total_changed, wait_ready, working_image, write_yaml)

LABEL = "mesh-ondel"


def scoped(image, namespace):
    doc = sidecarset_doc(image, label=LABEL, max_unavailable=2)
    doc["spec"]["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return doc


def make_statefulset(kube, namespace, name, replicas, sidecarset):
    """A StatefulSet with ``updateStrategy: OnDelete`` whose template is injected with ``sidecarset``."""
    doc = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "OnDelete"},
            "template": {"metadata": {"labels": {"app": name, LABEL: "on"}},
                         "spec": {"containers": [{"name": "app", "image": "app:1"}], "terminationGracePeriodSeconds": 0}},
        },
    }
    injected, status, reason = inject_manifest(doc, load_sidecarsets([sidecarset]))
    assert status == "injected", reason
    kube.apps.create_namespaced_stateful_set(namespace, injected)


def template_hash(obj):
    return pod_hash(obj["spec"]["template"]["metadata"].get("annotations") or {}, "mesh")


def read(kube, namespace):
    sts = kube.plain(kube.apps.read_namespaced_stateful_set("db", namespace))
    deploy = kube.plain(kube.apps.read_namespaced_deployment("shop", namespace))
    return sts, deploy


def settled(kube, namespace):
    """The StatefulSet and the Deployment once their controllers have observed their latest spec."""
    def check():
        sts, deploy = read(kube, namespace)
        done = all((o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"] for o in (sts, deploy))
        return (sts, deploy) if done else None
    return kube.wait_for(check, timeout=30, message="StatefulSet db and Deployment shop observed")


def uids(kube, namespace):
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods_of(kube, namespace)}


@pytest.mark.slow
def test_converge_refreshes_only_the_on_delete_template(nodesim, namespace, tmp_path):
    kube = nodesim
    v1_doc, v2_doc = scoped("mesh/proxy:v1", namespace), scoped("mesh/proxy:v2", namespace)
    v1_hash, v2_hash = (get_hash(load_sidecarsets([d])[0]) for d in (v1_doc, v2_doc))
    make_app(kube, namespace, "shop", 2, v1_doc, label=LABEL)
    make_statefulset(kube, namespace, "db", 2, v1_doc)
    wait_ready(kube, namespace, 4)

    v2 = write_yaml(tmp_path / "v2.yaml", v2_doc)
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": v2})
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert all(working_image(p) == "mesh/proxy:v2" for p in pods_of(kube, namespace))

    # the StatefulSet recreates a deleted pod from its old template: on v1
    old_db1 = uids(kube, namespace)["db-1"]
    kube.core.delete_namespaced_pod("db-1", namespace, grace_period_seconds=0)
    kube.wait_for(lambda: uids(kube, namespace).get("db-1") not in (None, old_db1), timeout=60, message="db-1 recreated")
    pods = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, 4)}
    assert working_image(pods["db-1"]) == "mesh/proxy:v1"
    sts, deploy = settled(kube, namespace)
    assert template_hash(sts) == v1_hash and template_hash(deploy) == v1_hash
    before_uids = uids(kube, namespace)
    deploy_rv = deploy["metadata"]["resourceVersion"]

    converge = run_playbook(kube, PLAYBOOKS / "converge.yml",
                            {"converge_sidecarset": v2, "converge_refresh_on_delete": True})
    assert converge.returncode == 0, converge.stdout[-6000:]
    stats = custom_stats(converge)["sidecar_converge"]
    assert stats["drifted_workloads"] == 2 and stats["drifted_pods"] == 1 and stats["upgraded"] == 1, stats
    assert stats["refreshed_workloads"] == 1 and stats["refresh_skipped"] == 1, stats
    shown = task_messages(converge, "Show the template refresh")
    assert "%s/StatefulSet/db: injected" % namespace in " ".join(shown), shown
    assert any(line.startswith("%s/Deployment/shop: skipped (Deployment: strategy RollingUpdate: a template change "
                               "recreates its pods" % namespace) for line in shown), shown

    time.sleep(3)  # give the StatefulSet controller time to act on the new template (it must not)
    sts, deploy = settled(kube, namespace)
    assert template_hash(sts) == v2_hash  # the next pod it creates starts on v2
    assert "mesh/proxy:v2" in [c["image"] for c in sts["spec"]["template"]["spec"]["containers"]]
    assert template_hash(deploy) == v1_hash and deploy["metadata"]["resourceVersion"] == deploy_rv
    after = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, 4)}
    assert uids(kube, namespace) == before_uids  # no pod recreated
    assert all(working_image(p) == "mesh/proxy:v2" for p in after.values())

    status = run_playbook(kube, PLAYBOOKS / "status.yml", {"status_sidecarset": v2})
    assert status.returncode == 0, status.stdout[-4000:]
    shown = status.stdout.split("Show the template drift", 1)[-1].split("TASK [", 1)[0]
    assert "%s/Deployment/shop" % namespace in shown and "StatefulSet/db" not in shown, shown
    assert custom_stats(status)["sidecarset_status"]["drifted_workloads"] == 1

    versions = {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in after.values()}
    sts_rv = sts["metadata"]["resourceVersion"]
    again = run_playbook(kube, PLAYBOOKS / "converge.yml",
                         {"converge_sidecarset": v2, "converge_refresh_on_delete": True})
    assert again.returncode == 0, again.stdout[-4000:]
    assert total_changed(again) == 0
    stats = custom_stats(again)["sidecar_converge"]
    assert stats["drifted_workloads"] == 1 and stats["refreshed_workloads"] == 0 and stats["refresh_skipped"] == 1, stats
    sts, deploy = read(kube, namespace)
    assert sts["metadata"]["resourceVersion"] == sts_rv and deploy["metadata"]["resourceVersion"] == deploy_rv
    assert {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in pods_of(kube, namespace)} == versions
