"""Fleet convergence: after a rollout, a scale-up creates pods from the Deployment's template, which still carries
the old injection. ``status`` reports the template drift and those pods, ``playbooks/converge.yml`` hot-upgrades
exactly them in place, and a second converge changes nothing."""

import pytest

from test_rollout import (PLAYBOOKS, custom_stats, make_app, pods_of, run_playbook, sidecarset_doc,
                          total_changed, wait_ready, working_image, write_yaml)


def scoped(image, namespace):
    doc = sidecarset_doc(image, label="mesh-conv", max_unavailable=2)
    doc["spec"]["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return doc


@pytest.mark.slow
def test_scale_up_after_rollout_drift_reported_converged_once(nodesim, namespace, tmp_path):
    kube = nodesim
    make_app(kube, namespace, "shop", 3, scoped("mesh/proxy:v1", namespace), label="mesh-conv")
    wait_ready(kube, namespace, 3)
    v2 = write_yaml(tmp_path / "v2.yaml", scoped("mesh/proxy:v2", namespace))
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": v2})
    assert proc.returncode == 0, proc.stdout[-4000:]
    upgraded = {p["metadata"]["name"] for p in pods_of(kube, namespace)}
    assert all(working_image(p) == "mesh/proxy:v2" for p in pods_of(kube, namespace))

    kube.apps.patch_namespaced_deployment_scale("shop", namespace, {"spec": {"replicas": 5}})
    pods = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, 5)}
    new = set(pods) - upgraded
    assert len(new) == 2 and all(working_image(pods[n]) == "mesh/proxy:v1" for n in new)  # the old sidecar

    status = run_playbook(kube, PLAYBOOKS / "status.yml", {"status_sidecarset": v2})
    assert status.returncode == 0, status.stdout[-4000:]
    shown = status.stdout.split("Show the template drift", 1)[-1].split("TASK [", 1)[0]
    assert "template drift: %s/Deployment/shop" % namespace in shown, shown
    assert "pods created from a drifted template: " in shown and all("%s/%s" % (namespace, n) in shown for n in new), shown
    stats = custom_stats(status)["sidecarset_status"]
    assert stats["drifted_workloads"] == 1 and stats["drifted_pods"] == 2

    converge = run_playbook(kube, PLAYBOOKS / "converge.yml", {"converge_sidecarset": v2})
    assert converge.returncode == 0, converge.stdout[-5000:]
    after = {p["metadata"]["name"]: p for p in pods_of(kube, namespace)}
    assert set(after) == set(pods)  # in place: the same pods
    for name, pod in after.items():
        assert pod["metadata"]["uid"] == pods[name]["metadata"]["uid"]
        assert working_image(pod) == "mesh/proxy:v2", name
        if name in upgraded:  # the pods of the rollout were not touched
            assert pod["metadata"]["resourceVersion"] == pods[name]["metadata"]["resourceVersion"], name
    stats = custom_stats(converge)
    assert stats["sidecar_converge"]["drifted_pods"] == 2 and stats["sidecar_converge"]["upgraded"] == 2, stats
    # the template is not rewritten (its controller would recreate every pod): the drift stays, its pods are gone
    assert stats["sidecar_converge"]["drifted_workloads"] == 1

    again = run_playbook(kube, PLAYBOOKS / "converge.yml", {"converge_sidecarset": v2})
    assert again.returncode == 0, again.stdout[-4000:]
    assert total_changed(again) == 0
    assert custom_stats(again)["sidecar_converge"]["drifted_pods"] == 0
    assert {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in pods_of(kube, namespace)} == \
        {n: p["metadata"]["resourceVersion"] for n, p in after.items()}
