"""Online injection by namespace and the SidecarSet's selector (no workload names), as a new user runs it:
``playbooks/inject.yml -e mode=online -e inject_namespace=N``. The Deployment's template is injected, its
ReplicaSet is left to the Deployment controller and reported skipped, and every pod comes back with the sidecar."""

import pytest

from test_rollout import PLAYBOOKS, run_playbook, task_messages
from workloads import deployment, pods_of, wait_ready, write_yaml


def test_playbook_online_by_selector_4_replicas_all_get_the_sidecar(kube, namespace, tmp_path):
    kube.apps.create_namespaced_deployment(namespace, deployment("shop", namespace, 4, labels={"app": "shop"}))
    wait_ready(kube, namespace, 4, selector="app=shop")
    ss = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "by-selector"},
          "spec": {"selector": {"matchLabels": {"app": "shop"}}, "namespace": namespace,
                   "containers": [{"name": "proxy", "image": "registry.local/mesh/proxy:1.0.0"}]}}
    proc = run_playbook(kube, PLAYBOOKS / "inject.yml", string_vars={
        "sidecarset": write_yaml(tmp_path / "ss.yaml", ss), "mode": "online", "inject_namespace": namespace})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    lines = task_messages(proc, "Report each document or workload")
    assert any(" Deployment/shop: injected" in line for line in lines), lines
    rs_lines = [line for line in lines if " ReplicaSet/shop-" in line]
    # the ReplicaSet(s) (the new one may already exist when they are listed) are left to the Deployment
    assert rs_lines and all(": skipped (managed by Deployment/shop" in line for line in rs_lines), lines

    def all_injected():
        pods = pods_of(kube, namespace, "app=shop")
        ok = len(pods) == 4 and all([c["name"] for c in p["spec"]["containers"]] == ["proxy", "shop"] for p in pods)
        return ok and wait_ready(kube, namespace, 4, selector="app=shop", timeout=1)

    pods = kube.wait_for(all_injected, timeout=120, message="4 of 4 pods recreated with the sidecar and Ready")
    assert len(pods) == 4
    # the ReplicaSet that owns the pods now is the Deployment's new one, and nothing wrote the old one's template
    replicasets = kube.apps.list_namespaced_replica_set(namespace, label_selector="app=shop").items
    old = [rs for rs in replicasets if not rs.spec.replicas]
    assert old and all([c.name for c in rs.spec.template.spec.containers] == ["shop"] for rs in old)


pytestmark = pytest.mark.integration
