"""The roles pass a cluster entry's connection options once (module_defaults on the collection's action group):
every module of a rollout, the status role and online injection use them, and nothing from the environment."""

import json

import pytest

from test_rollout import PLAYBOOKS, make_app, pods_of, run_playbook, sidecarset_doc, wait_ready, write_yaml

pytestmark = pytest.mark.integration

# the environment points nowhere: only the cluster entry can make the play reach the cluster
NOWHERE = {"K8S_AUTH_KUBECONFIG": "/nonexistent/kubeconfig", "KUBECONFIG": "/nonexistent/kubeconfig"}


def test_rollout_and_status_use_the_cluster_entry(nodesim, namespace, tmp_path):
    kube = nodesim
    make_app(kube, namespace, "app", 2, sidecarset_doc("mesh/proxy:v1"))
    wait_ready(kube, namespace, 2)
    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2"))
    report = tmp_path / "report.json"
    cluster = {"name": "local", "kubeconfig": kube.kubeconfig, "namespace": namespace}
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {
        "rollout_sidecarset": v2, "rollout_clusters": [cluster], "rollout_report_path": str(report)}, env=NOWHERE)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["plans"][0]["cluster"] == "local" and all(p["phase"] == "done" for p in data["pods"]), data["pods"]
    assert all("mesh/proxy:v2" in [c["image"] for c in p["spec"]["containers"]] for p in pods_of(kube, namespace))
    proc = run_playbook(kube, PLAYBOOKS / "status.yml", {
        "status_sidecarset": v2, "status_cluster": {"kubeconfig": kube.kubeconfig}, "status_namespace": namespace},
        env=NOWHERE)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
