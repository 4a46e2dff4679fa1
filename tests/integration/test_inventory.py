"""ansible-inventory with the meshops.sidecarset.pods plugin against the real API server."""

import json
import subprocess

import pytest
import yaml

from test_rollout import ANSIBLE_BIN, ROOT, ansible_env, make_app, sidecarset_doc, wait_ready, write_yaml


def inventory(kube, path, *args):
    proc = subprocess.run([str(ANSIBLE_BIN / "ansible-inventory"), "-i", str(path)] + list(args), cwd=str(ROOT),
                          env=ansible_env(kube), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Failed to parse" not in proc.stderr, proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_inventory_graph_groups_and_hostvars(nodesim, namespace, tmp_path):
    kube = nodesim
    v1 = sidecarset_doc("mesh/proxy:v1")
    make_app(kube, namespace, "alpha", 3, v1)
    make_app(kube, namespace, "beta", 2, v1)
    wait_ready(kube, namespace, 5)
    # v1alpha1-style namespace restriction, as a kubernetes.io/metadata.name namespaceSelector
    v2 = sidecarset_doc("mesh/proxy:v2")
    v2["spec"]["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    write_yaml(tmp_path / "v2.yaml", v2)
    config = tmp_path / "mesh.pods.yml"
    config.write_text(yaml.safe_dump({
        "plugin": "meshops.sidecarset.pods",
        "sidecarset": "v2.yaml",  # relative to the inventory file
        "clusters": [{"name": "sim", "kubeconfig": kube.kubeconfig}],
        "keyed_groups": [{"key": "pod_labels.app", "prefix": "app"}],
        "compose": {"proxy_image": "sidecar_images['proxy-1']"},
        "groups": {"big_app": "pod_owner.name == 'alpha'"},
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"),
    }))
    graph = inventory(kube, config, "--graph")
    ns_group = "namespace_" + namespace.replace("-", "_")
    for group in ("@cluster_sim", "@" + ns_group, "@owner_deployment_alpha", "@owner_deployment_beta",
                  "@needs_upgrade", "@updated", "@not_upgradable", "@app_alpha", "@big_app", "@zone_zone_a", "@node_sim_node_0"):
        assert group in graph, graph
    hosts = json.loads(inventory(kube, config, "--list"))
    names = [h for h in hosts["_meta"]["hostvars"] if h.startswith("sim/%s/" % namespace)]
    assert len(names) == 5
    assert sorted(hosts["needs_upgrade"]["hosts"]) == sorted(names)
    host = hosts["_meta"]["hostvars"][names[0]]

    def plain(value):
        return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value

    assert plain(host["ansible_connection"]) == "local"
    assert host["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
    assert plain(host["pod_namespace"]) == namespace
    assert plain(host["pod_zone"]).startswith("zone-")
    assert plain(host["pod_owner"]["kind"]) == "Deployment"
    assert plain(host["sidecar_phase"]) == "idle"
    assert plain(host["k8s_connection"]["kubeconfig"]) == kube.kubeconfig
    assert plain(host["proxy_image"]) == "mesh/proxy:v1"
    assert "__ansible_unsafe" in json.dumps(host["pod_labels"])  # cluster data is never templated
    assert list((tmp_path / "cache").iterdir())  # the inventory cache was written
    # the hosts work as targets: connection local, the playbook's python
    proc = subprocess.run([str(ANSIBLE_BIN / "ansible"), "-i", str(config), "owner_deployment_beta", "-m", "ansible.builtin.ping"],
                          cwd=str(ROOT), env=ansible_env(kube), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.count("SUCCESS") == 2, proc.stdout + proc.stderr
